//! SIGHUP reloads the configuration: under load nothing is lost and the client's connection
//! stays open; a config with errors is refused and the running one goes on.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use common::{Router, mp, read_out_file, wait_until};

fn config(file: &str) -> String {
    format!(
        "
[SERVICE]
    Flush 2
    Grace 10
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[OUTPUT]
    Name  file
    Match *
    Path  {{dir}}
    File  {file}
"
    )
}

fn hangup(router: &Router) {
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(router.pid(), libc::SIGHUP) };
}

fn seqs(router: &Router, files: &[&str]) -> Vec<u64> {
    files
        .iter()
        .flat_map(|f| read_out_file(&router.dir.path(f)))
        .map(|l| l.record["seq"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn reload_under_load_loses_nothing_and_keeps_the_connection() {
    const TOTAL: u64 = 20_000;
    let mut router = Router::start(&config("before.txt"), 1);
    let conf = router.dir.path("fluent-bit.conf");
    let new_config = config("after.txt").replace("{dir}", router.dir.0.to_str().unwrap());
    let mut client = router.tcp(0);
    let sender = std::thread::spawn(move || {
        // About 4 s of traffic at ~5,000 records/s on one connection.
        for seq in 0..TOTAL {
            let f = mp::message(
                "app",
                1_700_000_000,
                0,
                &[("seq", &seq.to_string()), ("log", "x".repeat(100).as_str())],
            );
            client
                .write_all(&f)
                .expect("the connection stays open across the reload");
            if seq % 100 == 99 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        client
    });
    std::thread::sleep(Duration::from_millis(1500));
    // With Flush 2, the old output still holds queued records at this point.
    std::fs::write(&conf, new_config).unwrap();
    hangup(&router);
    assert!(router.wait_log("configuration reloaded", Duration::from_secs(10)));
    let client = sender.join().unwrap();
    // A new connection after the reload reaches the new output too.
    let mut late = router.tcp(0);
    for seq in TOTAL..TOTAL + 100 {
        late.write_all(&mp::message(
            "app",
            1_700_000_000,
            0,
            &[("seq", &seq.to_string())],
        ))
        .unwrap();
    }
    drop((client, late));

    let files = ["before.txt", "after.txt"];
    assert!(
        wait_until(Duration::from_secs(20), || seqs(&router, &files).len()
            >= (TOTAL + 100) as usize),
        "only {} of {} records arrived; log:\n{}",
        seqs(&router, &files).len(),
        TOTAL + 100,
        router.logs().join("\n")
    );
    let got = seqs(&router, &files);
    let unique: HashSet<u64> = got.iter().copied().collect();
    assert_eq!(got.len(), unique.len(), "no record twice");
    assert_eq!(unique, (0..TOTAL + 100).collect::<HashSet<u64>>());
    let before = read_out_file(&router.dir.path("before.txt")).len();
    let after = read_out_file(&router.dir.path("after.txt")).len();
    assert!(before > 0 && after >= 100, "before {before}, after {after}");
    assert!(router.stop(Duration::from_secs(15)).success());
}

#[test]
fn a_config_with_errors_is_refused_and_the_old_one_keeps_running() {
    let mut router = Router::start(&config("out.txt"), 1);
    let conf = router.dir.path("fluent-bit.conf");
    let good = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        format!("{good}[OUTPUT]\n    Name no_such_plugin\n    Match *\n"),
    )
    .unwrap();
    hangup(&router);
    assert!(router.wait_log("the running one is kept", Duration::from_secs(10)));
    let logs = router.logs().join("\n");
    let line = good.lines().count() + 2;
    assert!(
        logs.contains(&format!("fluent-bit.conf:{line}")) && logs.contains("no_such_plugin"),
        "the error names file:line; log:\n{logs}"
    );
    // Still serving on the same listener with the same output.
    let mut s = router.tcp(0);
    for seq in 0..50 {
        s.write_all(&mp::message(
            "app",
            1_700_000_000,
            0,
            &[("seq", &seq.to_string())],
        ))
        .unwrap();
    }
    drop(s);
    assert!(wait_until(Duration::from_secs(10), || seqs(
        &router,
        &["out.txt"]
    )
    .len()
        == 50));
    assert!(router.stop(Duration::from_secs(15)).success());
}

#[test]
fn a_reload_whose_new_input_cannot_bind_says_so_in_the_log_and_the_metrics() {
    let router = Router::start(
        "
[SERVICE]
    Flush 0.2
    HTTP_Server On
    HTTP_Listen 127.0.0.1
    HTTP_Port   0
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
    // A port that is taken: the new input cannot bind it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let conf = router.dir.path("fluent-bit.conf");
    let good = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        format!("{good}[INPUT]\n    Name   forward\n    Alias  second\n    Listen 127.0.0.1\n    Port   {port}\n"),
    )
    .unwrap();
    hangup(&router);
    assert!(router.wait_log(
        "configuration reloaded in part: 1 inputs, 0 filters, 1 outputs running; not started: second",
        Duration::from_secs(10)
    ));
    assert!(
        !router
            .logs()
            .iter()
            .any(|l| l.contains("[reload] configuration reloaded:")),
        "a partial reload is not reported as done"
    );
    let (_, text) = common::http::get(router.http_port(), "/api/v2/metrics/prometheus");
    assert_eq!(
        common::http::prom_value(&text, "logrouter_reload_not_applied", "name=\"second\""),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        common::http::prom_value(&text, "fluentbit_hot_reloaded_times", ""),
        Some(1.0)
    );
    // The input that was running still is.
    let mut s = router.tcp(0);
    s.write_all(&mp::message("app", 1, 0, &[("a", "b")]))
        .unwrap();
    drop(taken);
}
