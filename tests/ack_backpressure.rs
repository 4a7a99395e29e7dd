//! Acks come only once records are queued for every output; a blocked output fills its queue,
//! the router stops reading the client (which is slowed, not dropped), memory stays bounded,
//! and everything arrives once the output recovers.
//!
//! The blocked output is a `file` output writing into a FIFO: opening it blocks until the test
//! opens the reading end, exactly like a sink that stopped answering.

mod common;

use std::ffi::CString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Router, mp};

fn mkfifo(path: &Path) {
    let c = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Reads the FIFO (reopening after each writer closes it) into a shared buffer.
fn drain_fifo(path: PathBuf, into: Arc<Mutex<Vec<u8>>>, until: Instant) {
    std::thread::spawn(move || {
        while Instant::now() < until {
            let Ok(mut f) = std::fs::File::open(&path) else {
                return;
            };
            let mut buf = [0u8; 65536];
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 {
                    break;
                }
                into.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        }
    });
}

fn config(queue_limit: &str) -> String {
    config_with(queue_limit, "")
}

fn config_with(queue_limit: &str, input_extra: &str) -> String {
    format!(
        "
[SERVICE]
    Flush 0.1
    Grace 2
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
{input_extra}
[OUTPUT]
    Name        file
    Match       *
    Path        {{dir}}
    File        sink.fifo
    Format      plain
    queue_limit {queue_limit}
"
    )
}

fn read_exact_timeout(s: &mut std::net::TcpStream, n: usize, timeout: Duration) -> Option<Vec<u8>> {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).ok().map(|_| buf)
}

#[test]
fn ack_arrives_for_accepted_frames_byte_exact() {
    let router = Router::start(
        "
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[OUTPUT]
    Name  null
    Match *
",
        1,
    );
    let mut s = router.tcp(0);
    // Fluentd's out_forward ends its chunk id with a newline: it must come back unchanged.
    for chunk in ["p8n9gmxTQVC8/nh2wlKKeQ==", "p8n9gmxTQVC8/nh2wlKKeQ==\n"] {
        s.write_all(&mp::message_with_chunk("app", 1, &[("a", "b")], chunk))
            .unwrap();
        let want = mp::ack(chunk);
        let got = read_exact_timeout(&mut s, want.len(), Duration::from_secs(5)).expect("ack");
        assert_eq!(got, want);
    }
    // A frame without `chunk` gets no reply.
    s.write_all(&mp::message("app", 1, 0, &[("a", "b")]))
        .unwrap();
    assert!(read_exact_timeout(&mut s, 1, Duration::from_millis(500)).is_none());
}

#[test]
fn no_ack_while_the_output_is_blocked_then_ack_once_it_drains() {
    let router = Router::start(&config("1"), 1);
    let fifo = router.dir.path("sink.fifo");
    mkfifo(&fifo);
    let mut s = router.tcp(0);

    // The first frame fits in the empty queue: acked, then stuck in the blocked flush.
    s.write_all(&mp::message_with_chunk("app", 1, &[("n", "1")], "chunk-1"))
        .unwrap();
    let ack1 = mp::ack("chunk-1");
    assert_eq!(
        read_exact_timeout(&mut s, ack1.len(), Duration::from_secs(5)),
        Some(ack1)
    );
    std::thread::sleep(Duration::from_millis(300));

    // The queue is full: the second frame is not accepted, so it is not acked.
    s.write_all(&mp::message_with_chunk("app", 1, &[("n", "2")], "chunk-2"))
        .unwrap();
    let ack2 = mp::ack("chunk-2");
    assert_eq!(
        read_exact_timeout(&mut s, ack2.len(), Duration::from_millis(1500)),
        None
    );

    // The output recovers: both records are delivered, and the ack follows.
    let out = Arc::new(Mutex::new(Vec::new()));
    drain_fifo(fifo, out.clone(), Instant::now() + Duration::from_secs(10));
    assert_eq!(
        read_exact_timeout(&mut s, ack2.len(), Duration::from_secs(5)),
        Some(ack2)
    );
    assert!(common::wait_until(Duration::from_secs(5), || {
        String::from_utf8_lossy(&out.lock().unwrap())
            .lines()
            .count()
            == 2
    }));
    assert_eq!(
        String::from_utf8_lossy(&out.lock().unwrap()),
        "{\"n\":\"1\"}\n{\"n\":\"2\"}\n"
    );
}

#[test]
fn a_blocked_output_slows_the_client_bounds_memory_and_loses_nothing() {
    blocked_output(&config("2M"));
}

#[test]
fn mem_buf_limit_on_the_input_bounds_memory_the_same_way() {
    blocked_output(&config_with("64M", "    Mem_Buf_Limit 2M"));
}

fn blocked_output(config: &str) {
    const RECORDS: usize = 40_000;
    let router = Router::start(config, 1);
    let fifo = router.dir.path("sink.fifo");
    mkfifo(&fifo);
    let rss_before = router.rss_kib();

    // ~12 MB of Docker-shaped frames, far more than the 2 MB queue.
    let line = "x".repeat(250);
    let sent = Arc::new(AtomicUsize::new(0));
    let port = router.port(0);
    let counter = sent.clone();
    let client = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        for i in 0..RECORDS {
            let seq = i.to_string();
            let frame = mp::message("app", 1, 0, &[("seq", &seq), ("log", &line)]);
            s.write_all(&frame).unwrap();
            counter.fetch_add(1, Ordering::Relaxed);
        }
        s
    });

    // The client is slowed: after a while it has still not managed to send everything.
    std::thread::sleep(Duration::from_secs(2));
    let stalled_at = sent.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sent.load(Ordering::Relaxed),
        stalled_at,
        "client is blocked, not dropped"
    );
    assert!(
        stalled_at < RECORDS,
        "client should be slowed (sent {stalled_at})"
    );
    // Memory: queue limit plus buffers, nowhere near the 12 MB sent.
    let rss = router.rss_kib();
    eprintln!(
        "client stalled after {stalled_at} of {RECORDS} frames; RSS {rss_before} -> {rss} KiB"
    );
    assert!(
        rss < rss_before + 12 * 1024,
        "RSS grew from {rss_before} KiB to {rss} KiB"
    );

    // The output recovers: every record arrives, once, in order.
    let out = Arc::new(Mutex::new(Vec::new()));
    drain_fifo(fifo, out.clone(), Instant::now() + Duration::from_secs(60));
    let _conn = client.join().unwrap();
    assert!(common::wait_until(Duration::from_secs(30), || {
        out.lock().unwrap().iter().filter(|&&b| b == b'\n').count() >= RECORDS
    }));
    let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
    let seqs: Vec<usize> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["seq"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(seqs, (0..RECORDS).collect::<Vec<_>>());
}
