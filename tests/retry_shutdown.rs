//! Retries with backoff up to Retry_Limit, drops that are logged with output, tag and count,
//! and SIGTERM: stop accepting, drain, deliver within Grace, exit 0.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Router, mp, wait_lines};

#[test]
fn a_failing_output_is_retried_until_it_recovers() {
    let router = Router::start(
        "
[SERVICE]
    Flush          0.1
    scheduler.base 0.1
    scheduler.cap  0.3
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[OUTPUT]
    Name        file
    Match       *
    Path        {dir}/later
    File        out.log
    Retry_Limit False
",
        1,
    );
    let mut s = router.tcp(0);
    for i in 0..5 {
        s.write_all(&mp::message("app", 1, i, &[("n", &i.to_string())]))
            .unwrap();
    }
    assert!(router.wait_log("failed to flush 5 records", Duration::from_secs(5)));
    assert!(router.wait_log("retry 2 in", Duration::from_secs(5)));
    // The directory appears: the retried chunk is delivered, whole and once.
    std::fs::create_dir_all(router.dir.path("later")).unwrap();
    let lines = wait_lines(&router.dir.path("later/out.log"), 5, Duration::from_secs(5));
    assert_eq!(lines.len(), 5);
    assert!(router.wait_log("succeeded at retry", Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        common::read_out_file(&router.dir.path("later/out.log")).len(),
        5
    );
}

#[test]
fn retries_run_out_and_the_drop_is_logged_while_other_outputs_carry_on() {
    let mut router = Router::start(
        "
[SERVICE]
    Flush          0.1
    scheduler.base 0.1
    scheduler.cap  0.2
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[OUTPUT]
    Name  file
    Match *
    Path  {dir}/missing
    File  out.log
[OUTPUT]
    Name  file
    Match *
    Path  {dir}
    File  ok.log
",
        1,
    );
    let mut s = router.tcp(0);
    for i in 0..3 {
        s.write_all(&mp::message("web.access", 1, i, &[("n", "x")]))
            .unwrap();
    }
    // Retry_Limit defaults to 1: one retry, then the chunk is dropped, with output, tag, count.
    assert!(router.wait_log(
        "[output:file:file.0] dropped 3 records (tags: web.access) after 1 retries",
        Duration::from_secs(10)
    ));
    assert_eq!(
        wait_lines(&router.dir.path("ok.log"), 3, Duration::from_secs(5)).len(),
        3
    );
    assert!(router.stop(Duration::from_secs(10)).success());
}

#[test]
fn sigterm_delivers_everything_already_sent_before_exiting() {
    const RECORDS: usize = 20_000;
    // A long Flush: without the shutdown flush the records would still be waiting.
    let mut router = Router::start(
        "
[SERVICE]
    Flush 30
    Grace 10
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[OUTPUT]
    Name  file
    Match *
    Path  {dir}
    File  out.log
",
        1,
    );
    let mut s = router.tcp(0);
    let mut all = Vec::new();
    for i in 0..RECORDS {
        all.extend_from_slice(&mp::message("app", 1, 0, &[("seq", &i.to_string())]));
    }
    s.write_all(&all).unwrap();
    let started = Instant::now();
    let status = router.stop(Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let lines = common::read_out_file(&router.dir.path("out.log"));
    let seqs: Vec<usize> = lines
        .iter()
        .map(|l| l.record["seq"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(seqs, (0..RECORDS).collect::<Vec<_>>());
    assert!(
        router
            .logs()
            .iter()
            .any(|l| l.contains("all queued records delivered"))
    );
}

#[test]
fn sigterm_with_a_stuck_output_exits_after_grace_and_reports_what_was_lost() {
    let mut router = Router::start(
        "
[SERVICE]
    Flush 0.1
    Grace 1
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[OUTPUT]
    Name  file
    Match *
    Path  {dir}
    File  sink.fifo
",
        1,
    );
    let fifo = std::ffi::CString::new(router.dir.path("sink.fifo").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let mut s = router.tcp(0);
    for i in 0..4 {
        s.write_all(&mp::message("app", 1, i, &[("n", "x")]))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let status = router.stop(Duration::from_secs(10));
    assert!(status.success());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "Grace bounds the shutdown"
    );
    assert!(
        router.wait_log("output file.0: 4 records", Duration::from_secs(1)),
        "{}",
        router.logs().join("\n")
    );
}

#[test]
fn records_no_output_matches_are_counted_and_logged_once_per_tag() {
    let mut router = Router::start(
        "
[SERVICE]
    Flush 0.1
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[OUTPUT]
    Name  file
    Match app.*
    Path  {dir}
    File  out.log
",
        1,
    );
    let mut s = router.tcp(0);
    for i in 0..3 {
        s.write_all(&mp::message("other", 1, i, &[("n", "x")]))
            .unwrap();
        s.write_all(&mp::message("app.web", 1, i, &[("n", "y")]))
            .unwrap();
    }
    assert_eq!(
        wait_lines(&router.dir.path("out.log"), 3, Duration::from_secs(5)).len(),
        3
    );
    assert!(router.stop(Duration::from_secs(10)).success());
    let logs = router.logs();
    let warnings = logs
        .iter()
        .filter(|l| l.contains("no output matches tag 'other'"))
        .count();
    assert_eq!(warnings, 1, "{}", logs.join("\n"));
    assert!(
        logs.iter()
            .any(|l| l.contains("input forward.0: records=6") && l.contains("no_route=3")),
        "{}",
        logs.join("\n")
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("output file.0: proc_records=3"))
    );
}
