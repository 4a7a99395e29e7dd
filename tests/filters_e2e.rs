//! Filters through the real binary: Docker-driver records carrying nginx lines parsed into
//! fields with the line's time; a FireLens-generated config; seed 003's split of access, error
//! and application logs with rewrite_tag.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{Router, mp, wait_lines};
use serde_json::json;

const PARSERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/parsers.conf");

fn docker_record<'a>(line: &'a str, source: &'a str) -> [(&'a str, &'a str); 4] {
    [
        (
            "container_id",
            "5f2a9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b",
        ),
        ("container_name", "/ecs-web-1-nginx"),
        ("source", source),
        ("log", line),
    ]
}

#[test]
fn nginx_lines_from_docker_become_fields_with_the_lines_time() {
    let config = format!(
        "
[SERVICE]
    Flush        0.2
    Parsers_File {PARSERS}
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
    Name  file
    Match *
    Path  {{dir}}
    File  out.log
"
    );
    let router = Router::start(&config, 1);
    let mut s = router.tcp(0);
    let lines = [
        r#"172.17.0.1 - - [14/Nov/2023:22:13:20 +0000] "GET /index.html HTTP/1.1" 200 612 "-" "curl/8.5.0""#,
        r#"10.1.2.3 - bob [15/Nov/2023:07:13:21 +0900] "POST /api/login HTTP/2.0" 401 57 "https://shop.example/" "Mozilla/5.0""#,
        "nginx: [warn] not an access line",
    ];
    for (i, l) in lines.iter().enumerate() {
        // The arrival time differs from the line's time, so the check below is meaningful.
        s.write_all(&mp::message(
            "web",
            1_800_000_000 + i as u32,
            7,
            &docker_record(l, "stdout"),
        ))
        .unwrap();
    }
    let out = wait_lines(&router.dir.path("out.log"), 3, Duration::from_secs(10));
    assert_eq!(out[0].time_ns, 1_700_000_000_000_000_000);
    assert_eq!(
        out[0].record,
        json!({"remote": "172.17.0.1", "host": "-", "user": "-", "method": "GET", "path": "/index.html",
               "code": "200", "size": "612", "referer": "-", "agent": "curl/8.5.0",
               "container_id": "5f2a9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b",
               "container_name": "/ecs-web-1-nginx", "source": "stdout"})
    );
    assert_eq!(out[1].time_ns, 1_700_000_001_000_000_000);
    assert_eq!(out[1].record["user"], "bob");
    assert_eq!(out[1].record["code"], "401");
    // A line no parser matches passes unchanged, with its arrival time.
    assert_eq!(out[2].time_ns, 1_800_000_002_000_000_007);
    assert_eq!(out[2].record["log"], "nginx: [warn] not an access line");
}

#[test]
fn a_firelens_generated_config_loads_and_behaves() {
    let dir = common::TempDir::new();
    // The user's own config, included the way FireLens includes config-file-value.
    std::fs::write(
        dir.path("extra.conf"),
        "[FILTER]\n    Name  modify\n    Match *\n    Add   team payments\n",
    )
    .unwrap();
    let config = format!(
        r#"
[INPUT]
    Name forward
    Mem_Buf_Limit 25MB
    unix_path {{dir}}/fluent.sock

[INPUT]
    Name forward
    Listen 127.0.0.1
    Port 0

[FILTER]
    Name grep
    Match app-firelens*
    Regex log ^(?:ERROR|WARN)

[FILTER]
    Name record_modifier
    Match *
    Record ecs_cluster prod-cluster
    Record ecs_task_arn arn:aws:ecs:eu-west-1:111122223333:task/prod-cluster/5b1f0c2e9d8a4e6f
    Record ecs_task_definition web-task:42

@INCLUDE {}

[OUTPUT]
    Name file
    Match app-firelens*
    Path {{dir}}
    File app.log
    retry_limit 2
"#,
        dir.path("extra.conf").display()
    );
    let router = Router::start(&config, 2);
    let tag = "app-firelens-5b1f0c2e9d8a4e6f";
    let mut unix = router.unix(0);
    for line in ["ERROR payment failed", "INFO all good", "WARN slow"] {
        unix.write_all(&mp::message(
            tag,
            1_700_000_000,
            0,
            &docker_record(line, "stderr"),
        ))
        .unwrap();
    }
    let out = wait_lines(&router.dir.path("app.log"), 2, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let out2 = common::read_out_file(&router.dir.path("app.log"));
    assert_eq!(out2.len(), 2, "grep dropped the INFO line");
    assert_eq!(out[0].tag, tag);
    assert_eq!(out[0].record["log"], "ERROR payment failed");
    assert_eq!(out[0].record["ecs_cluster"], "prod-cluster");
    assert_eq!(out[0].record["ecs_task_definition"], "web-task:42");
    assert_eq!(out[0].record["team"], "payments");
    assert_eq!(out[1].record["log"], "WARN slow");
}

#[test]
fn seed_003_split_access_error_and_app_logs_with_rewrite_tag() {
    let config = format!(
        r#"
[SERVICE]
    Flush        0.2
    Parsers_File {PARSERS}
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[FILTER]
    Name  rewrite_tag
    Match *-firelens*
    Rule  $log ^\S+\s\S+\s\S+\s\[ access.$TAG false
    Rule  $log (?i)\b(error|exception|fatal)\b error.$TAG false
    Rule  $log .* application.$TAG false
[FILTER]
    Name     parser
    Match    access.*
    Key_Name log
    Parser   nginx
[OUTPUT]
    Name  file
    Match access.*
    Path  {{dir}}
    File  s3-access.log
[OUTPUT]
    Name  file
    Match_Regex ^(error|application)\.
    Path  {{dir}}
    File  datadog.log
"#
    );
    let router = Router::start(&config, 1);
    let mut s = router.tcp(0);
    let tag = "web-firelens-abc";
    for line in [
        r#"10.0.0.1 - - [14/Nov/2023:22:13:20 +0000] "GET / HTTP/1.1" 200 10 "-" "curl""#,
        "2023-11-14 22:13:21 ERROR NullPointerException in checkout",
        "2023-11-14 22:13:22 user 42 added item to cart",
    ] {
        s.write_all(&mp::message(
            tag,
            1_700_000_100,
            0,
            &docker_record(line, "stdout"),
        ))
        .unwrap();
    }
    let access = wait_lines(
        &router.dir.path("s3-access.log"),
        1,
        Duration::from_secs(10),
    );
    let dd = wait_lines(&router.dir.path("datadog.log"), 2, Duration::from_secs(10));
    assert_eq!(access[0].tag, "access.web-firelens-abc");
    assert_eq!(
        access[0].record["code"], "200",
        "the re-tagged record went through the parser"
    );
    assert_eq!(access[0].time_ns, 1_700_000_000_000_000_000);
    let tags: Vec<_> = dd.iter().map(|l| l.tag.as_str()).collect();
    assert_eq!(
        tags,
        ["error.web-firelens-abc", "application.web-firelens-abc"]
    );
    assert_eq!(
        dd[0].record["log"],
        "2023-11-14 22:13:21 ERROR NullPointerException in checkout"
    );
}

#[test]
fn docker_16k_splits_from_two_containers_are_reassembled() {
    let router = Router::start(
        "
[SERVICE]
    Flush 0.2
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[FILTER]
    Name                  multiline
    Match                 *
    Mode                  partial_message
    multiline.key_content log
    flush_ms              500
[OUTPUT]
    Name  file
    Match *
    Path  {dir}
    File  out.log
",
        1,
    );
    // Two 40,000-byte lines, split as Docker does (16,384-byte pieces), pieces interleaved.
    let line = |c: char| c.to_string().repeat(40_000);
    let (a, b) = (line('a'), line('b'));
    let pieces = |text: &str, id: &str, name: &str| -> Vec<Vec<u8>> {
        let chunks: Vec<&str> = text
            .as_bytes()
            .chunks(16_384)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let n = chunks.len();
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let ordinal = (i + 1).to_string();
                let last = if i + 1 == n { "true" } else { "false" };
                mp::message(
                    "app",
                    1_700_000_000,
                    0,
                    &[
                        ("container_name", name),
                        ("source", "stdout"),
                        ("log", c),
                        ("partial_message", "true"),
                        ("partial_id", id),
                        ("partial_ordinal", &ordinal),
                        ("partial_last", last),
                    ],
                )
            })
            .collect()
    };
    let pa = pieces(&a, "idA", "/web");
    let pb = pieces(&b, "idB", "/worker");
    let mut s = router.tcp(0);
    for i in 0..pa.len() {
        s.write_all(&pa[i]).unwrap();
        s.write_all(&pb[i]).unwrap();
    }
    // An unfinished line: flushed as it is after flush_ms.
    s.write_all(&mp::message(
        "app",
        1_700_000_001,
        0,
        &[
            ("log", "no end"),
            ("partial_message", "true"),
            ("partial_id", "idC"),
            ("partial_ordinal", "1"),
            ("partial_last", "false"),
        ],
    ))
    .unwrap();
    let out = wait_lines(&router.dir.path("out.log"), 3, Duration::from_secs(10));
    assert_eq!(out.len(), 3);
    assert_eq!(
        out[0].record,
        json!({"container_name": "/web", "source": "stdout", "log": a})
    );
    assert_eq!(
        out[1].record,
        json!({"container_name": "/worker", "source": "stdout", "log": b})
    );
    assert_eq!(out[2].record, json!({"log": "no end"}));
    assert_eq!(out[2].time_ns, 1_700_000_001_000_000_000);
}
