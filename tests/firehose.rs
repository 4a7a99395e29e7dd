//! The Firehose output against moto (Firehose delivering into S3), through the real binary:
//! the seed pipeline, Firehose's limits, injected faults and partial failures, oversize records,
//! and a missing region.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use common::aws::{Fault, FaultProxy, Moto};
use common::{Router, mp, wait_until};
use serde_json::Value;

const AWS_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

fn config(endpoint: &str, extra: &str) -> String {
    format!(
        "
[SERVICE]
    Flush          0.2
    scheduler.base 0.2
    scheduler.cap  1
    Parsers_File   {}/conf/parsers.conf
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[FILTER]
    Name         parser
    Match        *
    Key_Name     log
    Parser       nginx
    Reserve_Data On
[OUTPUT]
    Name            kinesis_firehose
    Match           *
    delivery_stream logs
    region          us-east-1
    endpoint        {endpoint}
    Retry_Limit     False
{extra}
",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Every record moto delivered into the bucket, parsed, in object order.
fn delivered(moto: &Moto) -> Vec<Value> {
    let mut objects = moto.objects("sink");
    objects.sort_by(|a, b| a.0.cmp(&b.0));
    objects
        .iter()
        .flat_map(|(_, body)| {
            let text = String::from_utf8(body.clone()).unwrap();
            assert!(text.ends_with('\n'), "each record ends with a newline");
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn send_nginx(router: &Router, n: usize, log_len: usize) {
    let mut s = router.tcp(0);
    let agent = "a".repeat(log_len);
    for i in 0..n {
        let line = format!(
            r#"10.0.0.{} - - [14/Nov/2023:22:13:20 +0000] "GET /item/{i} HTTP/1.1" 200 {i} "-" "{agent}""#,
            i % 250
        );
        let seq = i.to_string();
        s.write_all(&mp::message(
            "web-firelens-1",
            1_800_000_000,
            0,
            &[
                ("container_id", "abc"),
                ("source", "stdout"),
                ("seq", &seq),
                ("log", &line),
            ],
        ))
        .unwrap();
    }
}

/// Waits until `n` records are in the bucket; checks each `seq` arrived exactly once.
fn exactly_once(moto: &Moto, n: usize) -> Vec<Value> {
    let mut records = Vec::new();
    wait_until(Duration::from_secs(60), || {
        records = delivered(moto);
        records.len() >= n
    });
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    for r in &records {
        *seen
            .entry(r["seq"].as_str().unwrap().parse().unwrap())
            .or_default() += 1;
    }
    let dupes: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(dupes.is_empty(), "records sent twice: {dupes:?}");
    assert_eq!(seen.len(), n, "every record arrived");
    records
}

#[test]
fn the_seed_pipeline_nginx_through_firehose_into_s3() {
    let moto = Moto::start();
    moto.setup("sink", Some("logs"));
    let router = Router::start_with(&config(&moto.endpoint, ""), 1, AWS_ENV);
    send_nginx(&router, 1000, 40);
    let records = exactly_once(&moto, 1000);
    let r = records.iter().find(|r| r["seq"] == "7").unwrap();
    assert_eq!(r["remote"], "10.0.0.7");
    assert_eq!(r["method"], "GET");
    assert_eq!(r["path"], "/item/7");
    assert_eq!(r["code"], "200");
    assert_eq!(r["container_id"], "abc");
    assert!(r.get("log").is_none(), "parsed into fields");
}

#[test]
fn calls_respect_firehose_limits_and_oversize_records_are_dropped_and_logged() {
    let moto = Moto::start();
    moto.setup("sink", Some("logs"));
    let proxy = FaultProxy::start(&moto.endpoint, vec![]);
    let router = Router::start_with(&config(&proxy.endpoint, "    Workers 1"), 1, AWS_ENV);
    // 1,200 small records (more than 500 a call), then 12 of ~600 KB (more than 4 MiB in all).
    send_nginx(&router, 1200, 20);
    exactly_once(&moto, 1200);
    let mut s = router.tcp(0);
    let big = "b".repeat(600_000);
    for i in 0..12 {
        let seq = format!("big-{i}");
        s.write_all(&mp::message("big", 1, 0, &[("seq", &seq), ("log", &big)]))
            .unwrap();
    }
    // One over the 1,024,000-byte record limit: dropped, logged with tag and size.
    let huge = "h".repeat(1_100_000);
    s.write_all(&mp::message(
        "huge.tag",
        1,
        0,
        &[("seq", "huge"), ("log", &huge)],
    ))
    .unwrap();
    assert!(wait_until(Duration::from_secs(60), || delivered(&moto)
        .len()
        >= 1212));
    assert!(
        router.wait_log("record of tag 'huge.tag' is 1100", Duration::from_secs(10)),
        "{}",
        router.logs().join("\n")
    );
    assert!(
        router.wait_log(
            "bytes, over Firehose's 1024000-byte limit: dropped",
            Duration::from_secs(10)
        ),
        "{}",
        router.logs().join("\n")
    );
    for c in proxy.calls() {
        assert!(c.records <= 500, "{} records in one call", c.records);
        assert!(c.bytes <= 4 * 1024 * 1024, "{} bytes in one call", c.bytes);
    }
    assert!(proxy.calls().iter().any(|c| c.records == 500));
}

#[test]
fn faults_and_partial_failures_lose_nothing_and_duplicate_nothing() {
    let moto = Moto::start();
    moto.setup("sink", Some("logs"));
    let script = vec![
        Fault::Status(500, "InternalFailure"),
        Fault::Status(503, "ServiceUnavailableException"),
        Fault::FailEvery(3),
        Fault::FailEvery(2),
        Fault::Status(400, "ServiceUnavailableException"),
        Fault::FailEvery(1),
        Fault::FailEvery(5),
    ];
    let proxy = FaultProxy::start(&moto.endpoint, script);
    let router = Router::start_with(&config(&proxy.endpoint, ""), 1, AWS_ENV);
    send_nginx(&router, 900, 30);
    exactly_once(&moto, 900);
    let calls = proxy.calls();
    assert!(
        calls
            .iter()
            .any(|c| matches!(c.fault, Some(Fault::FailEvery(3)))),
        "{calls:?}"
    );
    // After a partial failure the next call carries only the rejected records.
    let i = calls
        .iter()
        .position(|c| matches!(c.fault, Some(Fault::FailEvery(3))))
        .unwrap();
    assert_eq!(
        calls[i + 1].records,
        calls[i].records.div_ceil(3),
        "{calls:?}"
    );
    assert!(router.wait_log(
        "were rejected (ServiceUnavailableException); only those are resent",
        Duration::from_secs(1)
    ));
}

#[test]
fn without_a_region_the_error_is_clear_and_records_wait() {
    let moto = Moto::start();
    moto.setup("sink", Some("logs"));
    let config = config(&moto.endpoint, "").replace("    region          us-east-1\n", "");
    let env: Vec<(&str, &str)> = AWS_ENV.to_vec();
    let router = Router::start_with(&config, 1, &env);
    assert!(
        router.wait_log(
            "no AWS region: set 'region' in the output section, or AWS_REGION",
            Duration::from_secs(10)
        ),
        "{}",
        router.logs().join("\n")
    );
    send_nginx(&router, 3, 10);
    // Each flush fails with the same clear error and schedules a retry: nothing is dropped.
    assert!(
        router.wait_log(
            "failed to flush 3 records: no AWS region",
            Duration::from_secs(10)
        ),
        "{}",
        router.logs().join("\n")
    );
    assert!(router.wait_log("retry 2 in", Duration::from_secs(10)));
    assert!(!router.logs().iter().any(|l| l.contains("dropped")));
    assert!(delivered(&moto).is_empty());
}

#[test]
fn without_credentials_the_error_is_clear_and_records_wait_for_them() {
    let moto = Moto::start();
    moto.setup("sink", Some("logs"));
    let home = common::TempDir::new();
    let env = [
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("HOME", home.0.to_str().unwrap()),
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
    ];
    let router = Router::start_with(&config(&moto.endpoint, ""), 1, &env);
    send_nginx(&router, 3, 10);
    assert!(
        router.wait_log("failed to flush 3 records", Duration::from_secs(10)),
        "{}",
        router.logs().join("\n")
    );
    let logs = router.logs().join("\n");
    assert!(logs.contains("credentials"), "{logs}");
    assert!(delivered(&moto).is_empty());
}

#[test]
fn role_arn_assumes_the_role_through_sts() {
    let moto = Moto::start();
    moto.setup("sink", Some("logs"));
    let extra = format!(
        "    role_arn     arn:aws:iam::123456789012:role/log-router\n    external_id  ext-42\n    sts_endpoint {}",
        moto.endpoint
    );
    let router = Router::start_with(&config(&moto.endpoint, &extra), 1, AWS_ENV);
    send_nginx(&router, 20, 10);
    exactly_once(&moto, 20);
}

#[test]
fn a_full_request_goes_out_without_waiting_for_flush() {
    let moto = Moto::start();
    moto.setup("sink", Some("logs"));
    let proxy = FaultProxy::start(&moto.endpoint, vec![]);
    // Flush 60: only whole PutRecordBatch requests (500 records) may leave before it.
    let conf =
        config(&proxy.endpoint, "    Workers 1").replace("Flush          0.2", "Flush          60");
    let router = Router::start_with(&conf, 1, AWS_ENV);
    send_nginx(&router, 1000, 20);
    assert!(
        wait_until(Duration::from_secs(20), || proxy
            .calls()
            .iter()
            .map(|c| c.records)
            .sum::<usize>()
            >= 500),
        "a full request's worth should have gone out long before Flush; calls: {:?}",
        proxy.calls().iter().map(|c| c.records).collect::<Vec<_>>()
    );
    assert!(proxy.calls().iter().all(|c| c.records <= 500));
    assert!(delivered(&moto).len() >= 500);
}
