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

/// Serves `body` for GET <prefix>/task on a loopback port; returns the base URI.
fn metadata_server(body: &'static str) -> String {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
            }
            let (status, body) = if request_line.starts_with("GET /v4/c0ffee/task ") {
                ("200 OK", body)
            } else {
                ("404 Not Found", "{}")
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}/v4/c0ffee")
}

const TASK_DOC: &str = r#"{"Cluster":"arn:aws:ecs:eu-west-1:111122223333:cluster/prod-cluster","ServiceName":"web",
 "TaskARN":"arn:aws:ecs:eu-west-1:111122223333:task/prod-cluster/5b1f0c2e9d8a4e6fa1b2c3d4e5f60718",
 "Family":"web-task","Revision":"42","DesiredStatus":"RUNNING","KnownStatus":"RUNNING",
 "Limits":{"CPU":0.5,"Memory":1024},"AvailabilityZone":"eu-west-1b","LaunchType":"FARGATE",
 "Containers":[
  {"DockerId":"9f3c2a1b0e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a4938271605f4e3d","Name":"app",
   "DockerName":"ecs-web-task-42-app-d2f4a6c8e0b1c3d5e701","Image":"111122223333.dkr.ecr.eu-west-1.amazonaws.com/web:1.9.0",
   "ImageID":"sha256:0c7d5e9b","Labels":{"com.amazonaws.ecs.container-name":"app"},"Type":"NORMAL",
   "Networks":[{"NetworkMode":"awsvpc","IPv4Addresses":["10.0.1.5"]}]},
  {"DockerId":"1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef","Name":"log_router",
   "DockerName":"ecs-web-task-42-log-router","Image":"logrouter:latest","ImageID":"sha256:aa"}]}"#;

const ECS_CONFIG: &str = "
[SERVICE]
    Flush 0.2
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[FILTER]
    Name  ecs
    Match *
    ADD   ecs_cluster $ClusterName
    ADD   ecs_task_id $TaskID
    ADD   ecs_task_definition $TaskDefinitionFamily:$TaskDefinitionVersion
    ADD   az $AvailabilityZone
    ADD   launch_type $LaunchType
    ADD   ecs_container_name $ECSContainerName
    ADD   image $ContainerImage
[OUTPUT]
    Name  file
    Match *
    Path  {dir}
    File  out.log
";

#[test]
fn ecs_metadata_is_added_by_container_id() {
    let uri = metadata_server(TASK_DOC);
    let router = Router::start_with(ECS_CONFIG, 1, &[("ECS_CONTAINER_METADATA_URI_V4", &uri)]);
    let mut s = router.tcp(0);
    s.write_all(&mp::message(
        "app-firelens-x",
        1,
        0,
        &[
            (
                "container_id",
                "9f3c2a1b0e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a4938271605f4e3d",
            ),
            ("log", "hi"),
        ],
    ))
    .unwrap();
    s.write_all(&mp::message(
        "other",
        1,
        0,
        &[("container_id", "ffffffffffffffff"), ("log", "?")],
    ))
    .unwrap();
    let out = wait_lines(&router.dir.path("out.log"), 2, Duration::from_secs(10));
    assert_eq!(
        out[0].record,
        json!({"container_id": "9f3c2a1b0e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a4938271605f4e3d", "log": "hi",
               "ecs_cluster": "prod-cluster", "ecs_task_id": "5b1f0c2e9d8a4e6fa1b2c3d4e5f60718",
               "ecs_task_definition": "web-task:42", "az": "eu-west-1b", "launch_type": "FARGATE",
               "ecs_container_name": "app", "image": "111122223333.dkr.ecr.eu-west-1.amazonaws.com/web:1.9.0"})
    );
    // A container the task does not list: task fields, empty container fields.
    assert_eq!(out[1].record["ecs_cluster"], "prod-cluster");
    assert_eq!(out[1].record["ecs_container_name"], "");
}

#[test]
fn ecs_without_an_endpoint_fails_at_start_with_a_clear_error() {
    let dir = common::TempDir::new();
    let conf = dir.path("f.conf");
    std::fs::write(&conf, ECS_CONFIG.replace("{dir}", dir.0.to_str().unwrap())).unwrap();
    let out = std::process::Command::new(common::BIN)
        .arg("-c")
        .arg(&conf)
        .env_remove("ECS_CONTAINER_METADATA_URI_V4")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ECS_CONTAINER_METADATA_URI_V4 is not set"),
        "{err}"
    );
    // Set, but nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!(
        "http://127.0.0.1:{}/v4/x",
        closed.local_addr().unwrap().port()
    );
    drop(closed);
    let out = std::process::Command::new(common::BIN)
        .arg("-c")
        .arg(&conf)
        .env("ECS_CONTAINER_METADATA_URI_V4", &uri)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read task metadata from"), "{err}");
}
