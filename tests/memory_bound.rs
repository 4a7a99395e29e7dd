//! Memory is bounded by configuration, whatever clients do: with the output stalled, many
//! clients trickling small records fill the queue up to `queue_limit` and no further, and the
//! router's resident memory stays within the bound the README states (a fixed base, the queue
//! limits, and a small amount per connection), read from /proc with a generous margin. Records
//! are slices of read buffers and filter arenas: neither may keep much more alive than the
//! records' own bytes, which is what the limits count.

mod common;

use std::ffi::CString;
use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Router, mp};

fn mkfifo(path: &Path) {
    let c = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// A Docker-shaped record of about 300 bytes.
fn frame(n: usize) -> Vec<u8> {
    let log = format!(
        "10.0.0.{} - - [02/Dec/2026:10:00:00 +0000] \"GET /api/items/{n:08} HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\" rt=0.012 uct=0.001 uht=0.011 urt=0.011 request_id={n:032x}",
        n % 250
    );
    mp::message(
        "app.web",
        1_764_669_600,
        0,
        &[
            ("container_id", &"c".repeat(64)),
            ("container_name", "/web"),
            ("source", "stdout"),
            ("log", &log),
        ],
    )
}

#[test]
fn a_stalled_output_with_300_trickling_clients_stays_within_the_queue_limit() {
    common::raise_nofile();
    let router = Router::start(
        "
[SERVICE]
    Flush 0.2
    Grace 1
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
# A filter that rebuilds every record: rebuilt records must not pin big arenas either.
[FILTER]
    Name   record_modifier
    Match  *
    Record cluster test
[OUTPUT]
    Name        file
    Match       *
    Path        {dir}
    File        sink.fifo
    Format      plain
    queue_limit 5M
",
        1,
    );
    // Nobody reads the FIFO: the output's first flush blocks opening it.
    mkfifo(&router.dir.path("sink.fifo"));
    let base_kib = router.rss_kib();
    let port = router.port(0);
    let mut clients: Vec<TcpStream> = (0..300)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    // Each client writes one record at a time, round robin, as Docker's driver does, until
    // the router has stopped taking them (every socket full) or 20 s have passed.
    let mut sent = 0usize;
    let mut blocked_rounds = 0;
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end && blocked_rounds < 20 {
        let mut progressed = false;
        for (i, c) in clients.iter_mut().enumerate() {
            let f = frame(sent + i);
            match c.write(&f) {
                Ok(n) if n == f.len() => {
                    sent += 1;
                    progressed = true;
                }
                // A part of a frame went out: finish it blocking-free later by closing; count
                // it as the end of this client.
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("client write failed: {e}"),
            }
        }
        if progressed {
            blocked_rounds = 0;
        } else {
            blocked_rounds += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(500));
    let peak = router.peak_rss_kib();
    let queued_mb = 5.0;
    // The records the router holds are its queue (5 MB counted) plus, per connection, at
    // most one read of frames waiting for room; a limit 16x over (the old behaviour, each
    // small record pinning its whole read buffer) is far outside this.
    let bound_kib = base_kib + (4.0 * queued_mb * 1024.0) as u64 + 300 * 20;
    eprintln!(
        "base {base_kib} KiB, peak {peak} KiB, bound {bound_kib} KiB, {sent} records written"
    );
    assert!(
        sent as f64 * 300.0 > 2.0 * queued_mb * 1e6,
        "the clients wrote {sent} records: the queue was never full"
    );
    assert!(
        peak <= bound_kib,
        "peak RSS {peak} KiB over {bound_kib} KiB (base {base_kib} KiB, {sent} records written)"
    );
}

#[test]
fn a_fast_client_beside_1000_idle_connections_uses_little_memory_per_connection() {
    common::raise_nofile();
    let router = Router::start(
        "
[SERVICE]
    Flush 0.2
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[OUTPUT]
    Name        null
    Match       *
    queue_limit 5M
",
        1,
    );
    let base_kib = router.rss_kib();
    let port = router.port(0);
    // Idle connections, each having sent one record (so each has been read from once).
    let idle: Vec<TcpStream> = (0..1000)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(&frame(i)).unwrap();
            s
        })
        .collect();
    let mut fast = router.tcp(0);
    let batch: Vec<u8> = (0..1000).flat_map(frame).collect();
    for _ in 0..200 {
        fast.write_all(&batch).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss = router.rss_kib();
    let peak = router.peak_rss_kib();
    eprintln!("base {base_kib} KiB, RSS {rss} KiB, peak {peak} KiB");
    // 1,000 idle connections must not each keep a read buffer: a few KiB each at most.
    assert!(
        rss <= base_kib + 1000 * 8 + 12 * 1024,
        "RSS {rss} KiB with 1,000 idle connections (base {base_kib} KiB)"
    );
    assert!(
        peak <= base_kib + 1000 * 8 + 4 * 5 * 1024,
        "peak RSS {peak} KiB (base {base_kib} KiB)"
    );
    drop(idle);
}
