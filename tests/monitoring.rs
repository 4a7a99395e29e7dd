//! The monitoring HTTP server through real HTTP while traffic flows: build info, uptime,
//! counters in JSON and Prometheus form, and the health check flipping with an output's
//! failures. Also the `tcp` input FireLens uses as its health-probe target.

mod common;

use std::io::Write;
use std::time::Duration;

use common::http::{get, prom_value};
use common::{Router, mp, wait_lines, wait_until};

const SERVICE: &str = "
[SERVICE]
    Flush        0.2
    HTTP_Server  On
    HTTP_Listen  127.0.0.1
    HTTP_Port    0
";

fn prometheus(port: u16) -> String {
    let (status, body) = get(port, "/api/v1/metrics/prometheus");
    assert_eq!(status, 200);
    body
}

fn metric(port: u16, name: &str, labels: &str) -> f64 {
    let text = prometheus(port);
    prom_value(&text, name, labels).unwrap_or_else(|| panic!("no {name}{{{labels}}} in:\n{text}"))
}

/// Sends `n` Message frames tagged `tag`; returns the bytes sent.
fn send(router: &Router, tag: &str, first: usize, n: usize) -> usize {
    let mut s = router.tcp(0);
    let mut bytes = 0;
    for i in first..first + n {
        let f = mp::message(tag, 1_700_000_000, 0, &[("log", &format!("line {i}"))]);
        bytes += f.len();
        s.write_all(&f).unwrap();
    }
    bytes
}

#[test]
fn counters_move_by_exactly_what_was_sent() {
    let router = Router::start(
        &format!(
            "{SERVICE}
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[OUTPUT]
    Name  file
    Match app
    Path  {{dir}}
    File  out.txt
"
        ),
        1,
    );
    let port = router.http_port();
    let out = router.dir.path("out.txt");

    let (status, body) = get(port, "/");
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["fluent-bit"]["version"], env!("CARGO_PKG_VERSION"));
    let (status, body) = get(port, "/api/v1/uptime");
    assert_eq!(status, 200);
    let uptime: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(uptime["uptime_sec"].as_u64().is_some(), "{body}");
    assert!(uptime["uptime_hr"].as_str().unwrap().contains("running"));
    // Without Health_Check On there is no health endpoint, as in Fluent Bit.
    assert_eq!(get(port, "/api/v1/health").0, 404);
    assert_eq!(get(port, "/no/such/path").0, 404);

    let input = r#"name="forward.0""#;
    let output = r#"name="file.0""#;
    assert_eq!(metric(port, "fluentbit_input_records_total", input), 0.0);

    let mut bytes = send(&router, "app", 0, 300);
    bytes += send(&router, "nobody", 0, 7);
    assert_eq!(wait_lines(&out, 300, Duration::from_secs(10)).len(), 300);
    assert!(wait_until(Duration::from_secs(5), || {
        metric(port, "fluentbit_output_proc_records_total", output) == 300.0
    }));
    let text = prometheus(port);
    assert_eq!(
        prom_value(&text, "fluentbit_input_records_total", input),
        Some(307.0)
    );
    assert_eq!(
        prom_value(&text, "fluentbit_input_bytes_total", input),
        Some(bytes as f64)
    );
    assert_eq!(
        prom_value(
            &text,
            "logrouter_dropped_records_total",
            r#"plugin="input",name="forward.0",reason="no_route""#
        ),
        Some(7.0)
    );
    assert_eq!(
        prom_value(&text, "fluentbit_output_errors_total", output),
        Some(0.0)
    );
    assert_eq!(
        prom_value(&text, "logrouter_output_queue_records", output),
        Some(0.0)
    );
    assert_eq!(
        prom_value(&text, "logrouter_output_queue_limit_bytes", output),
        Some(64_000_000.0)
    );
    assert!(prom_value(&text, "process_resident_memory_bytes", "").unwrap() > 1e6);
    assert!(prom_value(&text, "process_cpu_seconds_total", "").is_some());
    // The same names under the v2 path.
    let (status, v2) = get(port, "/api/v2/metrics/prometheus");
    assert_eq!(status, 200);
    assert!(v2.contains("fluentbit_output_proc_records_total{name=\"file.0\"} 300"));

    // The next 200 move every counter by exactly 200.
    let more = send(&router, "app", 300, 200);
    assert_eq!(wait_lines(&out, 500, Duration::from_secs(10)).len(), 500);
    assert!(wait_until(Duration::from_secs(5), || {
        metric(port, "fluentbit_output_proc_records_total", output) == 500.0
    }));
    let (status, body) = get(port, "/api/v1/metrics");
    assert_eq!(status, 200);
    let m: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(m["input"]["forward.0"]["records"], 507);
    assert_eq!(m["input"]["forward.0"]["bytes"], (bytes + more) as u64);
    assert_eq!(m["input"]["forward.0"]["dropped_by_reason"]["no_route"], 7);
    assert_eq!(m["output"]["file.0"]["proc_records"], 500);
    assert_eq!(m["output"]["file.0"]["dropped_records"], 0);
    assert!(m["process"]["resident_memory_bytes"].as_u64().unwrap() > 1_000_000);
}

#[test]
fn health_fails_while_an_output_keeps_failing_and_recovers() {
    let router = Router::start(
        &format!(
            "{SERVICE}
    Health_Check            On
    HC_Errors_Count         1
    HC_Retry_Failure_Count  1
    HC_Period               3
    scheduler.base          1
    scheduler.cap           1
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[OUTPUT]
    Name        file
    Match       *
    Path        {{dir}}/blocked/out
    Mkdir       On
    File        out.txt
    Retry_Limit no_limits
"
        ),
        1,
    );
    let port = router.http_port();
    // A file where the output's directory should be: every flush fails until it is removed.
    let blocker = router.dir.path("blocked");
    std::fs::write(&blocker, "not a directory").unwrap();
    assert_eq!(get(port, "/api/v1/health"), (200, "ok\n".to_string()));

    send(&router, "app", 0, 10);
    assert!(
        wait_until(Duration::from_secs(15), || get(port, "/api/v1/health").0
            == 500),
        "health never turned unhealthy; metrics:\n{}",
        prometheus(port)
    );
    assert_eq!(get(port, "/api/v1/health").1, "error\n");
    assert!(metric(port, "fluentbit_output_errors_total", r#"name="file.0""#) >= 2.0);
    assert!(metric(port, "fluentbit_output_retries_total", r#"name="file.0""#) >= 2.0);
    assert_eq!(
        metric(
            port,
            "fluentbit_output_retried_records_total",
            r#"name="file.0""#
        ) % 10.0,
        0.0,
        "each retry resends the 10 records"
    );

    // The output recovers: the records arrive and, once the failures are older than
    // HC_Period, the check passes again.
    std::fs::remove_file(&blocker).unwrap();
    let out = router.dir.path("blocked/out/out.txt");
    assert_eq!(
        wait_lines(&out, 10, Duration::from_secs(15)).len(),
        10,
        "log:\n{}",
        router.logs().join("\n")
    );
    assert!(
        wait_until(Duration::from_secs(15), || get(port, "/api/v1/health").0
            == 200),
        "health did not recover"
    );
    assert_eq!(
        metric(
            port,
            "fluentbit_output_proc_records_total",
            r#"name="file.0""#
        ),
        10.0
    );
}

#[test]
fn tcp_input_takes_json_and_plain_lines() {
    let router = Router::start(
        &format!(
            "{SERVICE}
[INPUT]
    Name   tcp
    Tag    firelens-healthcheck
    Listen 127.0.0.1
    Port   0
[INPUT]
    Name   tcp
    Tag    plain
    Format none
    Listen 127.0.0.1
    Port   0
[OUTPUT]
    Name  null
    Match firelens-healthcheck
[OUTPUT]
    Name  file
    Match *
    Path  {{dir}}
    File  out.txt
"
        ),
        2,
    );
    let port = router.http_port();
    // FireLens's legacy probe, then a JSON record, a line that is not JSON, and a record
    // split across two writes.
    let mut s = router.tcp(0);
    s.write_all(b"{\"health\":\"check\"}\n{\"a\":1,\"b\":\"x\"}\nnot json\n{\"c\":")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(b"true}\n").unwrap();
    drop(s);
    let mut p = router.tcp(1);
    p.write_all(b"hello world\r\nsecond line").unwrap(); // the last line ends at EOF
    drop(p);

    let lines = wait_lines(&router.dir.path("out.txt"), 5, Duration::from_secs(10));
    let mut got: Vec<(String, String)> = lines
        .iter()
        .map(|l| (l.tag.clone(), l.record.to_string()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("firelens-healthcheck".into(), r#"{"a":1,"b":"x"}"#.into()),
            ("firelens-healthcheck".into(), r#"{"c":true}"#.into()),
            (
                "firelens-healthcheck".into(),
                r#"{"health":"check"}"#.into()
            ),
            ("plain".into(), r#"{"log":"hello world"}"#.into()),
            ("plain".into(), r#"{"log":"second line"}"#.into()),
        ]
    );
    assert!(wait_until(Duration::from_secs(5), || {
        metric(
            port,
            "fluentbit_output_proc_records_total",
            r#"name="null.0""#,
        ) == 3.0
    }));
    let text = prometheus(port);
    assert_eq!(
        prom_value(&text, "fluentbit_input_records_total", r#"name="tcp.0""#),
        Some(3.0)
    );
    assert_eq!(
        prom_value(&text, "logrouter_input_errors_total", r#"name="tcp.0""#),
        Some(1.0)
    );
    assert!(
        router
            .logs()
            .iter()
            .any(|l| l.contains("not a JSON object"))
    );
}
