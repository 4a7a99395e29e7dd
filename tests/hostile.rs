//! Hostile and malformed input: each is refused with a log line, the connection is closed only
//! where the stream cannot be resynchronised, memory stays bounded, and other clients never
//! notice.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{Router, closed_by_peer, mp, wait_lines};

const CONFIG: &str = "
[SERVICE]
    Flush 0.1
[INPUT]
    Name            forward
    Listen          127.0.0.1
    Port            0
    Buffer_Chunk_Size 64K
    Buffer_Max_Size   1M
[OUTPUT]
    Name  file
    Match *
    Path  {dir}
    File  out.log
";

fn good(n: u32) -> Vec<u8> {
    mp::message("good", 1, n, &[("n", &n.to_string())])
}

/// Sends `bad` then a good frame on the same connection; returns whether the good one arrived
/// (the connection survived) and checks the log mentions `log`.
fn refused_but_connection_kept(bad: &[u8], log: &str) {
    let router = Router::start(CONFIG, 1);
    let mut s = router.tcp(0);
    s.write_all(bad).unwrap();
    s.write_all(&good(7)).unwrap();
    let lines = wait_lines(&router.dir.path("out.log"), 1, Duration::from_secs(5));
    assert_eq!(lines.len(), 1, "the good frame after the bad one arrives");
    assert_eq!(lines[0].tag, "good");
    assert!(
        router.wait_log(log, Duration::from_secs(2)),
        "log: {}",
        router.logs().join("\n")
    );
}

/// Sends `bad` and expects the router to close the connection, while another connection
/// opened before keeps working.
fn connection_closed(bad: &[u8], log: &str) {
    let router = Router::start(CONFIG, 1);
    let mut other = router.tcp(0);
    let mut s = router.tcp(0);
    s.write_all(bad).unwrap();
    assert!(closed_by_peer(&mut s), "connection is closed");
    other.write_all(&good(1)).unwrap();
    let lines = wait_lines(&router.dir.path("out.log"), 1, Duration::from_secs(5));
    assert_eq!(lines.len(), 1, "other clients never notice");
    assert!(
        router.wait_log(log, Duration::from_secs(2)),
        "log: {}",
        router.logs().join("\n")
    );
}

#[test]
fn invalid_msgpack_closes_only_that_connection() {
    connection_closed(&[0x93, 0xc1, 0x00], "invalid msgpack marker 0xc1");
}

#[test]
fn a_declared_length_past_buffer_max_size_is_refused_before_it_arrives() {
    // [tag, bin32 of 100 MB ...] with no payload sent.
    let mut f = vec![0x92];
    mp::str(&mut f, "t");
    f.extend_from_slice(&[0xc6, 0x05, 0xf5, 0xe1, 0x00]);
    connection_closed(&f, "exceeds the limit of 1000000 bytes");
}

#[test]
fn nesting_too_deep_closes_the_connection() {
    connection_closed(&[0x91; 200], "nesting deeper than");
}

#[test]
fn a_frame_that_is_not_an_array_is_refused() {
    let mut f = vec![0x81];
    mp::str(&mut f, "a");
    mp::str(&mut f, "b");
    refused_but_connection_kept(&f, "frame refused: frame is a map, not an array");
}

#[test]
fn a_tag_that_is_not_a_string_is_refused() {
    let mut f = vec![0x93, 0x2a, 0x01];
    mp::record(&mut f, &[("a", "b")]);
    refused_but_connection_kept(&f, "frame refused: tag is a integer, not a string");
}

#[test]
fn a_record_that_is_not_a_map_is_skipped_and_counted() {
    let mut f = vec![0x93];
    mp::str(&mut f, "bad");
    f.push(0x01);
    mp::str(&mut f, "not a map");
    refused_but_connection_kept(&f, "skipped 1 invalid entries");
}

#[test]
fn a_gzip_bomb_is_refused_with_memory_bounded() {
    use flate2::write::GzEncoder;
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&vec![0u8; 64 << 20]).unwrap();
    let z = e.finish().unwrap();
    let mut f = vec![0x93];
    mp::str(&mut f, "bomb");
    rmp::encode::write_bin(&mut f, &z).unwrap();
    f.push(0x81);
    mp::str(&mut f, "compressed");
    mp::str(&mut f, "gzip");
    let router = Router::start(CONFIG, 1);
    let before = router.rss_kib();
    let mut s = router.tcp(0);
    for _ in 0..5 {
        s.write_all(&f).unwrap();
    }
    s.write_all(&good(1)).unwrap();
    let lines = wait_lines(&router.dir.path("out.log"), 1, Duration::from_secs(10));
    assert_eq!(lines.len(), 1);
    assert!(router.wait_log("inflates past 1000000 bytes", Duration::from_secs(2)));
    let after = router.rss_kib();
    assert!(
        after < before + 16 * 1024,
        "RSS {before} -> {after} KiB for 5 x 64 MB bombs"
    );
}

#[test]
fn an_unknown_compression_is_refused() {
    let mut f = vec![0x93];
    mp::str(&mut f, "z");
    rmp::encode::write_bin(&mut f, &[1, 2, 3]).unwrap();
    f.push(0x81);
    mp::str(&mut f, "compressed");
    mp::str(&mut f, "zstd");
    refused_but_connection_kept(&f, "compression 'zstd' is not supported");
}

#[test]
fn a_truncated_frame_at_disconnect_is_discarded_and_harms_nothing() {
    let router = Router::start(CONFIG, 1);
    let mut s = router.tcp(0);
    let frame = good(1);
    s.write_all(&frame[..frame.len() - 3]).unwrap();
    drop(s);
    let mut s2 = router.tcp(0);
    s2.write_all(&good(2)).unwrap();
    let lines = wait_lines(&router.dir.path("out.log"), 1, Duration::from_secs(5));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].record["n"], "2");
}

#[test]
fn garbage_from_many_clients_does_not_disturb_a_good_one() {
    let router = Router::start(CONFIG, 1);
    let port = router.port(0);
    let attackers: Vec<_> = (0..20)
        .map(|i| {
            std::thread::spawn(move || {
                for _ in 0..20 {
                    if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                        let junk: Vec<u8> = (0..4096).map(|_| fastrand::u8(..)).collect();
                        let _ = s.write_all(&junk);
                        let _ = s.write_all(&[0x92, 0xa1, b'x', 0xc1 ^ (i & 1)]);
                    }
                }
            })
        })
        .collect();
    let mut s = router.tcp(0);
    for n in 0..200 {
        s.write_all(&good(n)).unwrap();
    }
    for a in attackers {
        a.join().unwrap();
    }
    let lines = wait_lines(&router.dir.path("out.log"), 200, Duration::from_secs(10));
    let good_lines = lines.iter().filter(|l| l.tag == "good").count();
    assert_eq!(good_lines, 200);
}

#[test]
fn thousands_of_concurrent_connections_are_served() {
    common::raise_nofile();
    let router = Router::start(CONFIG, 1);
    let mut conns: Vec<TcpStream> = (0..2000).map(|_| router.tcp(0)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(&good(i as u32)).unwrap();
    }
    let lines = wait_lines(&router.dir.path("out.log"), 2000, Duration::from_secs(20));
    assert_eq!(lines.len(), 2000);
}
