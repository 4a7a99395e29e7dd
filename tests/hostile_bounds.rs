//! Hostile shapes that are valid msgpack: huge tags, records with very many keys, frames of
//! millions of events. Each costs time linear in its bytes and memory within the limits, and a
//! canary client on another connection keeps getting its acks promptly meanwhile.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Router, mp, wait_lines, wait_until};

const CONFIG: &str = concat!(
    service!(),
    "[INPUT]
    Name            forward
    Listen          127.0.0.1
    Port            0
    Buffer_Chunk_Size 64K
    Buffer_Max_Size   8M
[OUTPUT]
    Name  file
    Match canary
    Path  {dir}
    File  canary.log
[OUTPUT]
    Name  file
    Match big*
    Path  {dir}
    File  big.log
[OUTPUT]
    Name  null
    Match *
"
);

/// Sends one acked record every 50 ms until stopped; returns the slowest ack seen.
struct Canary {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Duration>,
}

impl Canary {
    fn start(port: u16) -> Canary {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut slowest = Duration::ZERO;
            let mut n = 0u32;
            while !s.load(Ordering::Relaxed) {
                let chunk = format!("canary-{n}");
                let sent = Instant::now();
                c.write_all(&mp::message_with_chunk(
                    "canary",
                    1,
                    &[("n", &n.to_string())],
                    &chunk,
                ))
                .unwrap();
                let want = mp::ack(&chunk);
                let mut got = vec![0; want.len()];
                c.read_exact(&mut got).unwrap();
                assert_eq!(got, want);
                slowest = slowest.max(sent.elapsed());
                n += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            slowest
        });
        Canary { stop, thread }
    }

    fn finish(self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// The slowest canary ack allowed while the router works through a hostile frame. Unloaded,
/// an ack takes about a millisecond; the quadratic rendering this guards against stalled
/// every client for 2.4 s at 20,000 keys and over a minute at 200,000. Generous, as tests
/// run a debug build on a busy machine.
const ACK_BOUND: Duration = Duration::from_millis(1500);

#[test]
fn a_record_with_200000_keys_does_not_stall_other_clients() {
    let router = Router::start(CONFIG, 1);
    let mut f = vec![0x94];
    mp::str(&mut f, "big");
    mp::event_time(&mut f, 1, 0);
    rmp::encode::write_map_len(&mut f, 200_000).unwrap();
    for i in 0..200_000 {
        mp::str(&mut f, &format!("k{i}"));
        mp::str(&mut f, "v");
    }
    f.push(0x80);
    let canary = Canary::start(router.port(0));
    std::thread::sleep(Duration::from_millis(200));
    let mut s = router.tcp(0);
    s.write_all(&f).unwrap();
    let lines = wait_lines(&router.dir.path("big.log"), 1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    let slowest = canary.finish();
    assert_eq!(lines.len(), 1);
    let record = lines[0].record.as_object().unwrap();
    assert_eq!(record.len(), 200_000, "every key is kept");
    assert_eq!(record["k199999"], "v");
    eprintln!("slowest canary ack {slowest:?}");
    assert!(slowest < ACK_BOUND, "slowest canary ack {slowest:?}");
}

#[test]
fn a_packed_forward_of_a_million_events_does_not_starve_other_clients() {
    let router = Router::start(CONFIG, 1);
    // [tag, bin(entries)] with 1,000,000 entries [t, {"n":i % 100}] (about 7 MB).
    let mut entries = Vec::new();
    for i in 0..1_000_000u32 {
        entries.extend_from_slice(&[0x92, 0x01, 0x81, 0xa1, b'n', (i % 100) as u8]);
    }
    let mut f = vec![0x92];
    mp::str(&mut f, "many");
    rmp::encode::write_bin(&mut f, &entries).unwrap();
    let before = router.rss_kib();
    let canary = Canary::start(router.port(0));
    std::thread::sleep(Duration::from_millis(200));
    let mut s = router.tcp(0);
    for _ in 0..3 {
        s.write_all(&f).unwrap();
    }
    // A record after them on the same connection arrives once they are all through.
    s.write_all(&mp::message("big.after", 1, 0, &[("done", "yes")]))
        .unwrap();
    let lines = wait_lines(&router.dir.path("big.log"), 1, Duration::from_secs(60));
    let slowest = canary.finish();
    assert_eq!(lines.len(), 1);
    let peak = router.peak_rss_kib();
    eprintln!("peak RSS {peak} KiB from {before} KiB");
    eprintln!("slowest canary ack {slowest:?}");
    assert!(slowest < ACK_BOUND, "slowest canary ack {slowest:?}");
    // Three 7 MB frames in flight, each read into one buffer: at most the frame, its
    // events' descriptors for one step, and the output's queue.
    assert!(
        peak < before + 64 * 1024,
        "peak RSS {peak} KiB from {before} KiB"
    );
}

#[test]
fn tags_past_the_limit_are_refused_and_distinct_tags_do_not_grow_memory() {
    let router = Router::start(CONFIG, 1);
    let before = router.rss_kib();
    let mut s = router.tcp(0);
    // 400 frames with distinct 1 MiB tags, as an attacker would send them.
    let mut tag = "x".repeat(1 << 20);
    for i in 0..400u32 {
        tag.replace_range(..4, &format!("{i:04}"));
        let mut f = vec![0x92];
        mp::str(&mut f, &tag);
        f.push(0x90);
        s.write_all(&f).unwrap();
    }
    // Then 2,000 distinct tags just under the limit, which are accepted.
    let mut near = "y".repeat(4090);
    for i in 0..2000u32 {
        near.replace_range(..4, &format!("{i:04}"));
        s.write_all(&mp::message(&near, 1, 0, &[("n", &i.to_string())]))
            .unwrap();
    }
    s.write_all(&mp::message("big.after", 1, 0, &[("done", "yes")]))
        .unwrap();
    let lines = wait_lines(&router.dir.path("big.log"), 1, Duration::from_secs(30));
    assert_eq!(lines.len(), 1);
    assert!(
        router.wait_log(
            "tag is 1048576 bytes long; the longest accepted is 4096",
            Duration::from_secs(2)
        ),
        "log: {}",
        router.logs().join("\n")
    );
    let after = router.rss_kib();
    eprintln!("RSS {before} -> {after} KiB");
    assert!(
        after < before + 40 * 1024,
        "RSS {before} -> {after} KiB for 400 1 MiB tags and 2,000 4 KiB ones"
    );
    let refused = wait_until(Duration::from_secs(3), || {
        let (_, text) = common::http::get(router.http_port(), "/api/v2/metrics/prometheus");
        common::http::prom_value(
            &text,
            "logrouter_dropped_records_total",
            "plugin=\"input\",name=\"forward.0\",reason=\"refused_frame\"",
        )
        .is_some_and(|v| v >= 400.0)
    });
    assert!(refused, "the 400 refused frames are counted");
}

const LIMITS: &str = concat!(
    service!(),
    "[INPUT]
    Name            forward
    Listen          127.0.0.1
    Port            0
    Frame_Timeout   1s
    Max_Connections 5
[OUTPUT]
    Name  file
    Match *
    Path  {dir}
    File  out.log
"
);

fn input_counter(router: &Router, name: &str) -> f64 {
    let (_, text) = common::http::get(router.http_port(), "/api/v2/metrics/prometheus");
    common::http::prom_value(&text, name, "name=\"forward.0\"").unwrap_or(-1.0)
}

#[test]
fn a_frame_sent_a_byte_at_a_time_is_cut_off_but_idle_clients_are_not() {
    let router = Router::start(LIMITS, 1);
    let mut idle = router.tcp(0);
    let mut slow = router.tcp(0);
    slow.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let frame = mp::message("slow", 1, 0, &[("n", "1")]);
    let started = Instant::now();
    let mut closed = false;
    for b in &frame {
        if slow.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 16];
        match slow.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    assert!(closed, "the slow frame's connection is closed");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    // The idle connection (no partial frame) has been open as long and still works.
    idle.write_all(&mp::message("idle", 1, 0, &[("n", "2")]))
        .unwrap();
    let lines = wait_lines(&router.dir.path("out.log"), 1, Duration::from_secs(5));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].tag, "idle");
    assert_eq!(
        input_counter(&router, "logrouter_input_timed_out_connections_total"),
        1.0
    );
    assert!(router.wait_log(
        "did not complete within Frame_Timeout",
        Duration::from_secs(1)
    ));
}

#[test]
fn connections_past_max_connections_are_closed_and_counted() {
    let router = Router::start(LIMITS, 1);
    let mut open: Vec<TcpStream> = (0..5).map(|_| router.tcp(0)).collect();
    // Each of the five is being served before the sixth connects.
    for (i, c) in open.iter_mut().enumerate() {
        c.write_all(&mp::message("ok", 1, 0, &[("n", &i.to_string())]))
            .unwrap();
    }
    wait_lines(&router.dir.path("out.log"), 5, Duration::from_secs(5));
    let mut sixth = router.tcp(0);
    sixth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(common::closed_by_peer(&mut sixth), "the sixth is closed");
    assert_eq!(
        input_counter(&router, "logrouter_input_refused_connections_total"),
        1.0
    );
    // Once one closes, a new client is served again.
    drop(open.pop());
    let served = wait_until(Duration::from_secs(5), || {
        let mut c = router.tcp(0);
        let _ = c.write_all(&mp::message("again", 1, 0, &[("n", "9")]));
        std::thread::sleep(Duration::from_millis(200));
        common::read_out_file(&router.dir.path("out.log"))
            .iter()
            .any(|l| l.tag == "again")
    });
    assert!(served, "a connection under the limit is served");
    assert!(router.wait_log(
        "5 connections are open (Max_Connections)",
        Duration::from_secs(1)
    ));
}

#[test]
fn the_tcp_input_caps_its_connections_too() {
    let router = Router::start(
        concat!(
            service!(),
            "[INPUT]
    Name            tcp
    Listen          127.0.0.1
    Port            0
    Tag             lines
    Max_Connections 2
[OUTPUT]
    Name  file
    Match *
    Path  {dir}
    File  out.log
"
        ),
        1,
    );
    let mut open: Vec<TcpStream> = (0..2).map(|_| router.tcp(0)).collect();
    for (i, c) in open.iter_mut().enumerate() {
        writeln!(c, "{{\"n\":{i}}}").unwrap();
    }
    assert_eq!(
        wait_lines(&router.dir.path("out.log"), 2, Duration::from_secs(5)).len(),
        2
    );
    let mut third = router.tcp(0);
    assert!(common::closed_by_peer(&mut third), "the third is closed");
    let (_, text) = common::http::get(router.http_port(), "/api/v2/metrics/prometheus");
    assert_eq!(
        common::http::prom_value(
            &text,
            "logrouter_input_refused_connections_total",
            "name=\"tcp.0\""
        ),
        Some(1.0)
    );
}
