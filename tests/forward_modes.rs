//! Every Forward protocol mode, over TCP and the Unix socket, checked record by record in what
//! the file output wrote: tag, time to the nanosecond, fields.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{Router, mp, wait_lines};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;

const CONFIG: &str = "
[SERVICE]
    Flush 0.2
    Log_Level info
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[INPUT]
    Name      forward
    unix_path {dir}/fluent.sock
[OUTPUT]
    Name  file
    Match *
    Path  {dir}
    File  out.log
";

/// Frames of every mode; each contributes records tagged `mode.<name>`.
fn frames() -> Vec<Vec<u8>> {
    // A heartbeat (nil) first: tolerated, nothing emitted.
    let mut frames = vec![vec![0xc0]];

    // Message, 3 elements, integer time (Python fluent-logger shape).
    let mut f = vec![0x93];
    mp::str(&mut f, "mode.message3");
    f.extend_from_slice(&[0xce, 0x55, 0xec, 0xe6, 0xf8]); // 1441588984
    mp::record(&mut f, &[("k", "int-time")]);
    frames.push(f);

    // Message, 4 elements, EventTime fixext8 (Docker driver shape), Go's int32 for a second one.
    frames.push(mp::message(
        "mode.message4",
        1_441_588_984,
        123_456_789,
        &[("k", "eventtime")],
    ));
    let mut f = vec![0x94];
    mp::str(&mut f, "mode.message4");
    f.extend_from_slice(&[0xd2, 0x55, 0xec, 0xe6, 0xf9]); // int32 1441588985
    mp::record(&mut f, &[("k", "int32")]);
    f.push(0xc0); // nil option, as old Docker sends
    frames.push(f);

    // Message with EventTime as ext8 (len 8) and a float time.
    let mut f = vec![0x93];
    mp::str(&mut f, "mode.message_ext8");
    f.extend_from_slice(&[0xc7, 0x08, 0x00]);
    f.extend_from_slice(&1_441_588_984u32.to_be_bytes());
    f.extend_from_slice(&5u32.to_be_bytes());
    mp::record(&mut f, &[("k", "ext8")]);
    frames.push(f);
    let mut f = vec![0x93];
    mp::str(&mut f, "mode.message_float");
    f.push(0xcb);
    f.extend_from_slice(&1_441_588_984.5f64.to_be_bytes());
    mp::record(&mut f, &[("k", "float")]);
    frames.push(f);

    // Forward: entries with EventTime, integer time, and v1.5 [[time, meta], record].
    let mut f = vec![0x92];
    mp::str(&mut f, "mode.forward");
    f.push(0x93);
    f.push(0x92);
    mp::event_time(&mut f, 1_500_000_000, 1);
    mp::record(&mut f, &[("k", "fwd-1")]);
    f.push(0x92);
    f.extend_from_slice(&[0xce]);
    f.extend_from_slice(&1_500_000_001u32.to_be_bytes());
    mp::record(&mut f, &[("k", "fwd-2")]);
    f.extend_from_slice(&[0x92, 0x92]);
    mp::event_time(&mut f, 1_500_000_002, 999_999_999);
    f.push(0x81);
    mp::str(&mut f, "otel");
    mp::str(&mut f, "meta");
    mp::record(&mut f, &[("k", "fwd-3")]);
    frames.push(f);

    // PackedForward as bin and as str (Fluentd sends str32).
    let mut entries = Vec::new();
    for i in 0..3u32 {
        entries.push(0x92);
        mp::event_time(&mut entries, 1_600_000_000 + i, i);
        mp::record(&mut entries, &[("k", &format!("packed-{i}"))]);
    }
    let mut f = vec![0x93];
    mp::str(&mut f, "mode.packed_bin");
    rmp::encode::write_bin(&mut f, &entries).unwrap();
    f.push(0x81);
    mp::str(&mut f, "size");
    f.push(0x03);
    frames.push(f);
    let mut f = vec![0x92];
    mp::str(&mut f, "mode.packed_str");
    f.push(0xdb);
    f.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    f.extend_from_slice(&entries);
    frames.push(f);

    // CompressedPackedForward: two concatenated gzip members.
    let mut z = Vec::new();
    for _ in 0..2 {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(&entries).unwrap();
        z.extend_from_slice(&e.finish().unwrap());
    }
    let mut f = vec![0x93];
    mp::str(&mut f, "mode.compressed");
    rmp::encode::write_bin(&mut f, &z).unwrap();
    f.push(0x82);
    mp::str(&mut f, "compressed");
    mp::str(&mut f, "gzip");
    mp::str(&mut f, "size");
    f.push(0x06);
    frames.push(f);
    frames
}

/// (tag, time_ns, k) of every record `frames()` carries, in order.
fn expected() -> Vec<(String, i128, String)> {
    let s = |t: &str| format!("mode.{t}");
    let mut v = vec![
        (
            s("message3"),
            1_441_588_984_000_000_000,
            "int-time".to_string(),
        ),
        (s("message4"), 1_441_588_984_123_456_789, "eventtime".into()),
        (s("message4"), 1_441_588_985_000_000_000, "int32".into()),
        (s("message_ext8"), 1_441_588_984_000_000_005, "ext8".into()),
        (
            s("message_float"),
            1_441_588_984_500_000_000,
            "float".into(),
        ),
        (s("forward"), 1_500_000_000_000_000_001, "fwd-1".into()),
        (s("forward"), 1_500_000_001_000_000_000, "fwd-2".into()),
        (s("forward"), 1_500_000_002_999_999_999, "fwd-3".into()),
    ];
    for tag in ["packed_bin", "packed_str", "compressed", "compressed"] {
        for i in 0..3i128 {
            v.push((
                s(tag),
                (1_600_000_000 + i) * 1_000_000_000 + i,
                format!("packed-{i}"),
            ));
        }
    }
    v
}

fn check(router: &Router) {
    let want = expected();
    let got = wait_lines(
        &router.dir.path("out.log"),
        want.len(),
        Duration::from_secs(10),
    );
    let got: Vec<_> = got
        .iter()
        .map(|l| {
            assert_eq!(
                l.record.as_object().unwrap().len(),
                1,
                "only the sent fields: {l:?}"
            );
            (
                l.tag.clone(),
                l.time_ns,
                l.record["k"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn every_mode_over_tcp_in_one_write() {
    let router = Router::start(CONFIG, 2);
    let mut s = router.tcp(0);
    s.write_all(&frames().concat()).unwrap();
    check(&router);
}

#[test]
fn every_mode_over_the_unix_socket_one_byte_at_a_time() {
    let router = Router::start(CONFIG, 2);
    let mut s = router.unix(1);
    for b in frames().concat() {
        s.write_all(&[b]).unwrap();
    }
    check(&router);
}

#[test]
fn the_unix_socket_is_replaced_if_stale_and_removed_at_exit() {
    let dir = common::TempDir::new();
    let sock = dir.path("stale.sock");
    // A socket file left behind by a process that is gone.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let config = format!(
        "[INPUT]\n    Name forward\n    unix_path {}\n    unix_perm 0600\n[OUTPUT]\n    Name null\n    Match *\n",
        sock.display()
    );
    let mut router = Router::start(&config, 1);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
    assert!(router.stop(Duration::from_secs(10)).success());
    assert!(!sock.exists(), "socket file removed at exit");
}

#[test]
fn tag_prefix_and_tag_rewrite_the_tag() {
    let router = Router::start(
        "
[SERVICE]
    Flush 0.2
[INPUT]
    Name       forward
    Listen     127.0.0.1
    Port       0
    Tag_Prefix ecs.
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
    Tag    fixed
[OUTPUT]
    Name  file
    Match *
    Path  {dir}
    File  out.log
",
        2,
    );
    router
        .tcp(0)
        .write_all(&mp::message("web", 1, 0, &[("n", "1")]))
        .unwrap();
    let lines = wait_lines(&router.dir.path("out.log"), 1, Duration::from_secs(10));
    assert_eq!(lines[0].tag, "ecs.web");
    router
        .tcp(1)
        .write_all(&mp::message("web", 1, 0, &[("n", "2")]))
        .unwrap();
    let lines = wait_lines(&router.dir.path("out.log"), 2, Duration::from_secs(10));
    assert_eq!(lines[1].tag, "fixed");
    assert_eq!(lines[1].record, json!({"n": "2"}));
}
