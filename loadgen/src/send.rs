//! The load: blocking sockets, frames from [`Frames`] patched and written on a schedule.
//!
//! Pacing is a token schedule per connection: record `k` of a connection is due at
//! `start + phase + k / r` (`r` = the connection's share of `--rate`, `phase` spreads the
//! connections over one interval), and a connection writes whatever is due when its thread
//! wakes, and a thread wakes at most once a `tick` (1 ms by default): 100 records/s are 100
//! writes of one frame, 10,000 records/s on one connection about 1,000 writes of ten. Batch
//! modes send a batch when its last record is due. At `--rate 0` every write is as large as
//! allowed (64 KiB of frames, or one batch) and the router's reading sets the pace.
//!
//! Threads: one a connection at `--rate 0` or with acks (a connection waiting for the router
//! holds up nobody else); paced connections share threads, 500 a thread by default, because
//! on this kind of machine a wake-up costs tens of microseconds of CPU and a thousand
//! connections at 10 records/s would otherwise cost the load generator more than the router.
//!
//! A frame counts as sent once all its bytes are written. With `--duration`, writes time out
//! every 100 ms so the deadline is seen; past it, a connection finishes the frame it is in the
//! middle of (a router that is not reading delays that) and stops.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::frame::{CHUNK_LEN, Frames, Mode, Shape};

/// Where the router listens.
#[derive(Clone, Debug)]
pub enum Target {
    Tcp(String),
    Unix(PathBuf),
}

/// What to send, and how fast, for how long.
#[derive(Clone, Debug)]
pub struct Load {
    pub target: Target,
    pub mode: Mode,
    /// Records a frame in the batch modes.
    pub batch: usize,
    /// Records a second over all connections; 0 = as fast as the router reads.
    pub rate: f64,
    pub duration: Option<Duration>,
    /// Records in all, over all connections.
    pub count: Option<u64>,
    pub connections: usize,
    pub ack: bool,
    pub ack_timeout: Duration,
    pub tag: String,
    pub log_bytes: usize,
    /// Compressed mode at `--rate 0` with `--duration`: records pre-encoded (over all
    /// connections) and sent again in a loop, sequence numbers included.
    pub ring: u64,
    /// Shortest time between two wake-ups of a paced sending thread.
    pub tick: Duration,
    /// Sending threads for paced connections without acks (default: one per 500).
    pub threads: Option<usize>,
    /// Most bytes of frames a write (Message mode; batches are written whole).
    pub write_bytes: usize,
}

/// What one connection did.
#[derive(Debug, Default)]
pub struct ConnStats {
    pub records: u64,
    pub frames: u64,
    pub bytes: u64,
    pub acks: u64,
    pub ack_timeouts: u64,
    pub ack_mismatches: u64,
    /// Longest a record waited past its due time (paced runs): the router slowing the client.
    pub max_lag: Duration,
    /// Time from the end of a frame's write to its ack: total and longest.
    pub ack_wait: Duration,
    pub max_ack_wait: Duration,
    pub error: Option<String>,
    pub end: Option<Instant>,
}

/// Everything the threads share to start together.
struct Start {
    ready: Barrier,
    go: Barrier,
    at: OnceLock<Instant>,
}

/// The result of a whole run.
pub struct Run {
    pub conns: Vec<ConnStats>,
    pub start: Instant,
    pub end: Instant,
    pub prep: Duration,
    pub cpu: Duration,
}

/// Sending threads: one a connection at `--rate 0` or with acks (a blocked connection blocks
/// only itself); paced connections share threads, up to 500 a thread (or `--threads`), so a
/// thousand slow connections cost a thousand wake-ups a second, not ten thousand.
pub fn thread_count(load: &Load) -> usize {
    let n = if load.rate == 0.0 || load.ack {
        load.connections
    } else {
        load.threads.unwrap_or(load.connections.div_ceil(500))
    };
    n.clamp(1, load.connections)
}

/// Connects every connection, pre-encodes, then runs the load; `on_start` is called when
/// sending begins (after connecting and encoding).
pub fn run(load: &Load, on_start: impl FnOnce()) -> Run {
    let begun = Instant::now();
    let load = Arc::new(load.clone());
    let threads = thread_count(&load);
    let start = Arc::new(Start {
        ready: Barrier::new(threads + 1),
        go: Barrier::new(threads + 1),
        at: OnceLock::new(),
    });
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (load, start) = (load.clone(), start.clone());
            let conns: Vec<usize> = (t..load.connections).step_by(threads).collect();
            std::thread::Builder::new()
                .name(format!("send-{t}"))
                // Small, since there may be a thousand; 1 MiB is what a debug build needs.
                .stack_size(1024 * 1024)
                .spawn(move || sender_thread(&conns, &load, &start, nonce))
                .expect("spawn a sending thread")
        })
        .collect();
    start.ready.wait();
    let prep = begun.elapsed();
    let cpu0 = cpu_time();
    let at = Instant::now() + Duration::from_millis(5);
    let _ = start.at.set(at);
    start.go.wait();
    on_start();
    let mut conns: Vec<(usize, ConnStats)> = handles
        .into_iter()
        .flat_map(|t| t.join().expect("sending thread"))
        .collect();
    conns.sort_by_key(|(c, _)| *c);
    let conns: Vec<ConnStats> = conns.into_iter().map(|(_, s)| s).collect();
    let end = conns
        .iter()
        .filter_map(|c| c.end)
        .max()
        .unwrap_or_else(Instant::now);
    Run {
        conns,
        start: at,
        end,
        prep,
        cpu: cpu_time().saturating_sub(cpu0),
    }
}

/// User + system CPU time of this process.
pub fn cpu_time() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    let t = |v: libc::timeval| Duration::new(v.tv_sec as u64, v.tv_usec as u32 * 1000);
    t(ru.ru_utime) + t(ru.ru_stime)
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn open(target: &Target) -> io::Result<Conn> {
        // The router may still be binding; a few quick retries.
        let mut tries = 0;
        loop {
            let r = match target {
                Target::Tcp(addr) => TcpStream::connect(addr).map(|s| {
                    let _ = s.set_nodelay(true);
                    Conn::Tcp(s)
                }),
                Target::Unix(path) => UnixStream::connect(path).map(Conn::Unix),
            };
            match r {
                Err(e) if tries < 50 && e.kind() == io::ErrorKind::ConnectionRefused => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                r => return r,
            }
        }
    }

    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_write_timeout(t),
            Conn::Unix(s) => s.set_write_timeout(t),
        }
    }

    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_read_timeout(t),
            Conn::Unix(s) => s.set_read_timeout(t),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

/// What a connection sends from: patchable templates, or pre-encoded compressed frames.
enum Source {
    /// `main` holds as many frames as one write may carry; `last` the short final batch of a
    /// `--count` run whose count is not a multiple of the batch.
    Template {
        main: Frames,
        last: Option<Frames>,
    },
    Baked {
        frames: Frames,
        cursor: usize,
    },
}

/// This connection's share of `total`: connections before `total % n` take one more.
fn share(total: u64, n: usize, c: usize) -> u64 {
    total / n as u64 + u64::from((c as u64) < total % n as u64)
}

fn prepare(c: usize, load: &Load, limit: Option<u64>) -> Source {
    let shape = Shape::docker(&load.tag, c, load.log_bytes);
    let n = load.connections as u64;
    let seq = move |i: u64| i * n + c as u64;
    if load.mode == Mode::Compressed {
        let per_conn_rate = load.rate / load.connections as f64;
        let total = match (limit, load.duration) {
            (Some(l), _) => l,
            (None, Some(d)) if load.rate > 0.0 => (per_conn_rate * d.as_secs_f64()).ceil() as u64,
            _ => share(load.ring, load.connections, c).max(load.batch as u64),
        };
        let now = now_wall();
        let frames = Frames::compressed(&shape, load.batch, total.max(1), seq, now, load.ack);
        return Source::Baked { frames, cursor: 0 };
    }
    let one = Frames::template(&shape, load.mode, load.batch, 1, load.ack);
    let group = if load.ack || load.mode != Mode::Message {
        1
    } else {
        (load.write_bytes / one.buf.len()).max(1)
    };
    let per_frame = one.records(0) as u64;
    let main = if group == 1 {
        one
    } else {
        Frames::template(&shape, load.mode, load.batch, group, load.ack)
    };
    let last = limit
        .filter(|l| l % per_frame != 0)
        .map(|l| Frames::template(&shape, load.mode, (l % per_frame) as usize, 1, load.ack));
    Source::Template { main, last }
}

fn now_wall() -> (u32, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as u32, d.subsec_nanos())
}

/// Runs connections `conns` on this thread: connect and encode, wait for the others, then
/// wake for whatever is due (at most once a tick when paced) until every one is done.
fn sender_thread(
    conns: &[usize],
    load: &Load,
    start: &Start,
    nonce: u32,
) -> Vec<(usize, ConnStats)> {
    let opened: Vec<_> = conns
        .iter()
        .map(|&c| {
            let limit = load.count.map(|n| share(n, load.connections, c));
            (c, Conn::open(&load.target), prepare(c, load, limit), limit)
        })
        .collect();
    start.ready.wait();
    start.go.wait();
    let at = *start
        .at
        .get()
        .expect("start time is set before the threads go");
    let mut done = Vec::new();
    let mut senders = Vec::new();
    for (c, conn, source, limit) in opened {
        match conn.and_then(|conn| Sender::new(c, load, conn, source, limit, at, nonce)) {
            Ok(s) => senders.push(s),
            Err(e) => {
                let stats = ConnStats {
                    error: Some(format!("connect: {e}")),
                    end: Some(at),
                    ..ConnStats::default()
                };
                done.push((c, stats));
            }
        }
    }
    let paced = load.rate > 0.0;
    let deadline = load.duration.map(|d| at + d);
    // One clock read per pass (and one after each write): with a thousand connections on a
    // thread, reading the clock per connection would cost more than the writes.
    while !senders.is_empty() {
        let pass = Instant::now();
        let mut now = pass;
        let past_deadline = deadline.is_some_and(|d| now >= d);
        let mut wrote = false;
        let mut i = 0;
        while i < senders.len() {
            let s = &mut senders[i];
            let mut finished = past_deadline || s.remaining() == 0;
            if !finished && s.next_at <= now {
                match s.send_due() {
                    Ok(stopped) => {
                        wrote = true;
                        now = Instant::now();
                        finished = stopped || s.remaining() == 0;
                        s.next_at = s.ready_at();
                    }
                    Err(e) => {
                        s.stats.error = Some(e.to_string());
                        finished = true;
                    }
                }
            }
            if finished {
                let mut s = senders.swap_remove(i);
                s.stats.end = Some(Instant::now());
                done.push((s.c, s.stats));
            } else {
                i += 1;
            }
        }
        let Some(mut wake) = senders.iter().map(|s| s.next_at).min() else {
            break;
        };
        if paced && wrote && !load.ack {
            wake = wake.max(pass + load.tick);
        }
        if let Some(d) = deadline {
            wake = wake.min(d);
        }
        let now = Instant::now();
        if wake > now {
            std::thread::sleep(wake - now);
        }
    }
    done
}

/// One connection while the load runs.
struct Sender<'a> {
    c: usize,
    load: &'a Load,
    conn: Conn,
    source: Source,
    limit: Option<u64>,
    start: Instant,
    deadline: Option<Instant>,
    /// This connection's records a second; 0 = as fast as the router reads.
    rate: f64,
    /// Where this connection's schedule starts within the first interval.
    phase: Duration,
    nonce: u32,
    chunk_no: u64,
    /// When the next frame may go (`ready_at`, kept from the last send).
    next_at: Instant,
    stats: ConnStats,
}

impl<'a> Sender<'a> {
    fn new(
        c: usize,
        load: &'a Load,
        conn: Conn,
        source: Source,
        limit: Option<u64>,
        start: Instant,
        nonce: u32,
    ) -> io::Result<Self> {
        let deadline = load.duration.map(|d| start + d);
        if deadline.is_some() {
            conn.set_write_timeout(Some(Duration::from_millis(100)))?;
        }
        if load.ack {
            conn.set_read_timeout(Some(load.ack_timeout))?;
        }
        let rate = load.rate / load.connections as f64;
        let phase = if rate > 0.0 {
            Duration::from_secs_f64(c as f64 / load.connections as f64 / rate)
        } else {
            Duration::ZERO
        };
        let mut s = Sender {
            c,
            load,
            conn,
            source,
            limit,
            start,
            deadline,
            rate,
            phase,
            nonce,
            chunk_no: 0,
            next_at: start,
            stats: ConnStats::default(),
        };
        s.next_at = s.ready_at();
        Ok(s)
    }

    fn remaining(&self) -> u64 {
        self.limit.map_or(u64::MAX, |l| l - self.stats.records)
    }

    /// When record `k` of this connection is due (paced runs).
    fn due_at(&self, k: u64) -> Instant {
        self.start + self.phase + Duration::from_secs_f64(k as f64 / self.rate)
    }

    /// Records in the next frame.
    fn unit(&self) -> u64 {
        match &self.source {
            Source::Template { main, last } => match last {
                Some(l) if self.remaining() < main.records(0) as u64 => l.records(0) as u64,
                _ => main.records(0) as u64,
            },
            Source::Baked { frames, cursor } => frames.records(*cursor) as u64,
        }
    }

    /// When the next frame may go: when its last record is due, or at once at `--rate 0`.
    fn ready_at(&self) -> Instant {
        if self.rate > 0.0 {
            self.due_at(self.stats.records + self.unit() - 1)
        } else {
            self.start
        }
    }

    /// Sends the frames due now (as many as one write takes at `--rate 0`), then waits for
    /// the ack if asked to. Returns true when the deadline passed in the middle of the write.
    fn send_due(&mut self) -> io::Result<bool> {
        let now = Instant::now();
        let remaining = self.remaining();
        let unit = self.unit();
        let first_due = self.stats.records;
        let mut frames_now = u64::MAX;
        if self.rate > 0.0 {
            let elapsed = (now - self.start).saturating_sub(self.phase);
            let due = (elapsed.as_secs_f64() * self.rate) as u64 + 1;
            frames_now = (due.saturating_sub(self.stats.records) / unit).max(1);
        }
        frames_now = frames_now.min(remaining.div_ceil(unit));
        let (secs, nanos) = now_wall();
        let c = self.c;
        let n = self.load.connections as u64;
        let seq = move |i: u64| i * n + c as u64;
        let (frames, range) = match &mut self.source {
            Source::Template { main, last } => {
                let f = match last {
                    Some(l) if remaining < main.records(0) as u64 => l,
                    _ => main,
                };
                let k = (frames_now as usize).min(f.frame_count());
                f.patch_seq(0..k, self.stats.records, seq);
                f.patch_time(0..k, secs, nanos);
                (f, 0..k)
            }
            Source::Baked { frames, cursor } => {
                let first = *cursor;
                let mut k = first + 1;
                if !self.load.ack {
                    // As many whole frames as fit in one write, without wrapping.
                    while k < frames.frame_count()
                        && (k - first) < frames_now as usize
                        && frames.span(first..k + 1).len() <= self.load.write_bytes
                    {
                        k += 1;
                    }
                }
                // Past the last frame, start again (only a --duration run gets there).
                *cursor = k % frames.frame_count();
                (frames, first..k)
            }
        };
        let mut ack = None;
        if self.load.ack {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&(c as u32).to_be_bytes());
            id[4..8].copy_from_slice(&self.nonce.to_be_bytes());
            id[8..].copy_from_slice(&self.chunk_no.to_be_bytes());
            self.chunk_no += 1;
            ack = frames.patch_chunk(range.start, &id);
        }
        let bytes = frames.span(range.clone());
        let ends: Vec<usize> = frames.relative_ends(range.clone()).collect();
        let (done, err) = write_frames(
            &mut self.conn,
            &frames.buf[bytes.clone()],
            &ends,
            self.deadline,
        );
        let stats = &mut self.stats;
        for f in range.start..range.start + done {
            stats.records += frames.records(f) as u64;
        }
        stats.frames += done as u64;
        stats.bytes += if done == 0 { 0 } else { ends[done - 1] as u64 };
        if self.rate > 0.0 && done > 0 {
            // How late the first of these records went out: the router slowing the client.
            let lag = Instant::now().saturating_duration_since(self.due_at(first_due));
            self.stats.max_lag = self.stats.max_lag.max(lag);
        }
        if let Some(e) = err {
            return Err(e);
        }
        if done < ends.len() {
            return Ok(true); // the deadline passed mid-write; the frame in progress was finished
        }
        if let Some(ack) = ack {
            self.wait_ack(&ack)?;
        }
        Ok(false)
    }

    fn wait_ack(&mut self, want: &[u8]) -> io::Result<()> {
        let mut got = [0u8; 6 + CHUNK_LEN];
        let written = Instant::now();
        let read = self.conn.read_exact(&mut got);
        let waited = written.elapsed();
        let stats = &mut self.stats;
        stats.ack_wait += waited;
        stats.max_ack_wait = stats.max_ack_wait.max(waited);
        match read {
            Ok(()) if got[..] == *want => {
                stats.acks += 1;
                Ok(())
            }
            Ok(()) => {
                stats.ack_mismatches += 1;
                Err(io::Error::other("ack does not match the chunk id sent"))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                stats.ack_timeouts += 1;
                Err(io::Error::other(format!(
                    "no ack within {:?}",
                    self.load.ack_timeout
                )))
            }
            Err(e) => Err(e),
        }
    }
}

/// Writes `buf`, made of frames ending at `ends`; returns how many frames were written whole,
/// and the error that stopped it. Past `deadline`, it stops at the end of the current frame.
fn write_frames(
    w: &mut impl Write,
    buf: &[u8],
    ends: &[usize],
    deadline: Option<Instant>,
) -> (usize, Option<io::Error>) {
    let mut pos = 0;
    let mut limit = buf.len();
    let mut err = None;
    while pos < limit {
        match w.write(&buf[pos..limit]) {
            Ok(0) => {
                err = Some(io::ErrorKind::WriteZero.into());
                break;
            }
            Ok(n) => pos += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                err = Some(e);
                break;
            }
        }
        if limit == buf.len() && deadline.is_some_and(|d| Instant::now() >= d) {
            limit = ends
                .iter()
                .copied()
                .find(|&e| e >= pos)
                .unwrap_or(buf.len());
        }
    }
    (ends.iter().take_while(|&&e| e <= pos).count(), err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `step` bytes a call and fails with a timeout every other call.
    struct Slow {
        out: Vec<u8>,
        step: usize,
        calls: usize,
    }

    impl Write for Slow {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(2) {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let n = buf.len().min(self.step);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_and_timeouts_still_write_whole_frames() {
        let buf: Vec<u8> = (0..100).collect();
        let mut w = Slow {
            out: Vec::new(),
            step: 7,
            calls: 0,
        };
        let (done, err) = write_frames(&mut w, &buf, &[30, 60, 100], None);
        assert_eq!((done, err.is_none()), (3, true));
        assert_eq!(w.out, buf);
    }

    #[test]
    fn past_the_deadline_only_the_frame_in_progress_is_finished() {
        let buf: Vec<u8> = (0..100).collect();
        let mut w = Slow {
            out: Vec::new(),
            step: 7,
            calls: 0,
        };
        let past = Instant::now() - Duration::from_secs(1);
        let (done, err) = write_frames(&mut w, &buf, &[30, 60, 100], Some(past));
        assert!(err.is_none());
        assert_eq!(done, 1);
        assert_eq!(w.out, &buf[..30]);
    }

    #[test]
    fn shares_add_up() {
        assert_eq!(
            (0..3).map(|c| share(10, 3, c)).collect::<Vec<_>>(),
            [4, 3, 3]
        );
        assert_eq!((0..1000).map(|c| share(999, 1000, c)).sum::<u64>(), 999);
    }

    /// A Unix socket that reads `conns` connections to the end, each in its own thread;
    /// returns its path and what each connection sent.
    fn sink(name: &str, conns: usize) -> (PathBuf, std::thread::JoinHandle<Vec<Vec<u8>>>) {
        use std::os::unix::net::UnixListener;
        let dir = std::env::temp_dir().join(format!("lg-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let reader = std::thread::spawn(move || {
            let readers: Vec<_> = (0..conns)
                .map(|_| {
                    let (mut s, _) = listener.accept().unwrap();
                    std::thread::spawn(move || {
                        let mut got = Vec::new();
                        s.read_to_end(&mut got).unwrap();
                        got
                    })
                })
                .collect();
            readers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        (path, reader)
    }

    fn load(path: &std::path::Path, mode: Mode) -> Load {
        Load {
            target: Target::Unix(path.to_path_buf()),
            mode,
            batch: 7,
            rate: 0.0,
            duration: None,
            count: None,
            connections: 1,
            ack: false,
            ack_timeout: Duration::from_secs(1),
            tag: "t".into(),
            log_bytes: 250,
            ring: 100,
            tick: Duration::from_millis(1),
            threads: None,
            write_bytes: 65536,
        }
    }

    #[test]
    fn sends_exact_counts_over_a_socket() {
        let (path, reader) = sink("count", 2);
        let load = Load {
            count: Some(45),
            connections: 2,
            ..load(&path, Mode::Packed)
        };
        let r = run(&load, || {});
        let records: u64 = r.conns.iter().map(|c| c.records).sum();
        let frames: u64 = r.conns.iter().map(|c| c.frames).sum();
        assert_eq!(records, 45);
        // 23 = 3×7 + 2 and 22 = 3×7 + 1 records: four frames each.
        assert_eq!(frames, 8);
        let got = reader.join().unwrap();
        let bytes: u64 = r.conns.iter().map(|c| c.bytes).sum();
        assert_eq!(got.iter().map(Vec::len).sum::<usize>() as u64, bytes);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn compressed_duration_runs_go_round_the_ring() {
        let (path, reader) = sink("ring", 1);
        let load = Load {
            duration: Some(Duration::from_millis(200)),
            ring: 21, // three frames of 7
            ..load(&path, Mode::Compressed)
        };
        let r = run(&load, || {});
        assert!(r.conns[0].error.is_none(), "{:?}", r.conns[0].error);
        assert!(
            r.conns[0].frames > 3,
            "went round: {} frames",
            r.conns[0].frames
        );
        assert_eq!(r.conns[0].records, r.conns[0].frames * 7);
        assert_eq!(reader.join().unwrap()[0].len() as u64, r.conns[0].bytes);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn paced_connections_share_threads_and_keep_the_rate() {
        let (path, reader) = sink("paced", 40);
        let load = Load {
            rate: 2000.0,
            duration: Some(Duration::from_millis(500)),
            connections: 40,
            threads: Some(2),
            ..load(&path, Mode::Message)
        };
        assert_eq!(thread_count(&load), 2);
        let r = run(&load, || {});
        let records: u64 = r.conns.iter().map(|c| c.records).sum();
        // 2,000/s for 0.5 s, each connection 25 records (give or take the last one).
        assert!((960..=1040).contains(&records), "{records} records");
        assert!(r.conns.iter().all(|c| (24..=26).contains(&c.records)));
        let got = reader.join().unwrap();
        assert_eq!(
            got.iter().map(Vec::len).sum::<usize>() as u64,
            r.conns.iter().map(|c| c.bytes).sum::<u64>()
        );
        // Unpaced or with acks: one thread a connection.
        assert_eq!(
            thread_count(&Load {
                rate: 0.0,
                ..load.clone()
            }),
            40
        );
        assert_eq!(
            thread_count(&Load {
                ack: true,
                ..load.clone()
            }),
            40
        );
        assert_eq!(
            thread_count(&Load {
                threads: None,
                connections: 1000,
                ..load
            }),
            2
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
