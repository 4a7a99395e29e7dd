//! The Datadog output through the real binary, against a local intake that enforces the
//! documented API contract: every record once after injected 500s and 429s, an over-limit burst
//! split into valid requests, 403 not retried (and the API key never logged), `provider ecs`.

mod common;

use std::collections::VecDeque;
use std::io::{BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http::{read_request, respond};
use common::{Router, mp, wait_until};
use serde_json::{Value, json};

const KEY: &str = "0123456789abcdef0123456789abcdef";

/// A request the intake answered.
#[derive(Debug, Clone)]
struct Seen {
    status: u16,
    entries: usize,
    bytes: usize,
    gzip: bool,
}

struct Intake {
    port: u16,
    accepted: Arc<Mutex<Vec<Value>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// The status the intake gives a request, per its documented contract.
fn judge(req: &common::http::Request, body: &[u8]) -> Result<Vec<Value>, (u16, String)> {
    if !req.head[0].starts_with("POST /api/v2/logs ") {
        return Err((404, "not found".into()));
    }
    match req.header("dd-api-key") {
        None => {
            return Err((
                401,
                r#"{"errors":[{"status":"401","title":"Unauthorized"}]}"#.into(),
            ));
        }
        Some(k) if k != KEY => {
            return Err((
                403,
                r#"{"errors":[{"status":"403","title":"Forbidden","detail":"Invalid API key"}]}"#
                    .into(),
            ));
        }
        _ => {}
    }
    if body.len() > 5_000_000 {
        return Err((
            413,
            r#"{"errors":[{"status":"413","title":"Payload too large"}]}"#.into(),
        ));
    }
    let Ok(Value::Array(entries)) = serde_json::from_slice::<Value>(body) else {
        return Err((400, "body is not a JSON array".into()));
    };
    if entries.len() > 1000 {
        return Err((400, "more than 1000 entries".into()));
    }
    for e in &entries {
        let Some(obj) = e.as_object() else {
            return Err((400, "an entry is not an object".into()));
        };
        for reserved in [
            "ddsource", "ddtags", "hostname", "service", "message", "status",
        ] {
            if obj.get(reserved).is_some_and(|v| !v.is_string()) {
                return Err((400, format!("{reserved} must be a string")));
            }
        }
        if serde_json::to_vec(e).unwrap().len() > 1_000_000 {
            return Err((400, "an entry is over 1 MB".into()));
        }
    }
    Ok(entries)
}

impl Intake {
    fn start(mut fail_first: VecDeque<u16>) -> Intake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (acc, log) = (accepted.clone(), seen.clone());
        let script = Arc::new(Mutex::new(std::mem::take(&mut fail_first)));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (acc, log, script) = (acc.clone(), log.clone(), script.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut writer = stream;
                    while let Some(req) = read_request(&mut reader) {
                        let gzip = req.header("content-encoding") == Some("gzip");
                        let body = if gzip {
                            let mut out = Vec::new();
                            flate2::read::GzDecoder::new(&req.body[..])
                                .read_to_end(&mut out)
                                .unwrap();
                            out
                        } else {
                            req.body.clone()
                        };
                        let injected = script.lock().unwrap().pop_front();
                        let (status, reply, entries) = match injected {
                            Some(s) => (s, format!(r#"{{"errors":[{{"status":"{s}"}}]}}"#), 0),
                            None => match judge(&req, &body) {
                                Ok(entries) => {
                                    let n = entries.len();
                                    acc.lock().unwrap().extend(entries);
                                    (202, "{}".to_string(), n)
                                }
                                Err((s, msg)) => (s, msg, 0),
                            },
                        };
                        log.lock().unwrap().push(Seen {
                            status,
                            entries,
                            bytes: body.len(),
                            gzip,
                        });
                        respond(
                            &mut writer,
                            status,
                            &["content-type: application/json".to_string()],
                            reply.as_bytes(),
                        );
                    }
                });
            }
        });
        Intake {
            port,
            accepted,
            seen,
        }
    }

    fn accepted(&self) -> Vec<Value> {
        self.accepted.lock().unwrap().clone()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn config(port: u16, key: &str, extra: &str) -> String {
    format!(
        "
[SERVICE]
    Flush          0.2
    scheduler.base 0.1
    scheduler.cap  0.5
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[OUTPUT]
    Name           datadog
    Match          *
    Host           127.0.0.1
    Port           {port}
    TLS            Off
    apikey         ${{DD_API_KEY}}
    dd_message_key log
    Retry_Limit    False
{extra}
"
    )
    .replace("${DD_API_KEY}", key)
}

fn send(router: &Router, n: usize, log_len: usize) {
    let mut s = router.tcp(0);
    let log = "x".repeat(log_len);
    for i in 0..n {
        let seq = i.to_string();
        s.write_all(&mp::message(
            "app",
            1_700_000_000,
            0,
            &[("seq", &seq), ("log", &log)],
        ))
        .unwrap();
    }
}

fn seqs(intake: &Intake, n: usize) -> Vec<usize> {
    let mut got = Vec::new();
    wait_until(Duration::from_secs(30), || {
        got = intake
            .accepted()
            .iter()
            .map(|e| e["seq"].as_str().unwrap().parse().unwrap())
            .collect();
        got.len() >= n
    });
    got.sort_unstable();
    got
}

#[test]
fn every_record_arrives_once_after_500s_and_429s() {
    let intake = Intake::start(VecDeque::from([500, 429, 503, 429]));
    let router = Router::start(&config(intake.port, KEY, "    compress gzip"), 1);
    send(&router, 200, 50);
    assert_eq!(seqs(&intake, 200), (0..200).collect::<Vec<_>>());
    let seen = intake.seen();
    assert_eq!(
        seen.iter()
            .filter(|s| s.status == 429 || s.status >= 500)
            .count(),
        4
    );
    assert!(seen.iter().all(|s| s.gzip));
}

#[test]
fn an_over_limit_burst_is_split_into_valid_requests() {
    let intake = Intake::start(VecDeque::new());
    let router = Router::start(&config(intake.port, KEY, "    Workers 1"), 1);
    // 2,500 small logs (over 1,000 entries), 12 of 700 KB (over 5 MB), one of 1.5 MB.
    send(&router, 2500, 20);
    let mut s = router.tcp(0);
    let big = "b".repeat(700_000);
    for i in 0..12 {
        let seq = (2500 + i).to_string();
        s.write_all(&mp::message("app", 1, 0, &[("seq", &seq), ("log", &big)]))
            .unwrap();
    }
    let huge = "h".repeat(1_500_000);
    s.write_all(&mp::message(
        "app.huge",
        1,
        0,
        &[("seq", "2512"), ("log", &huge)],
    ))
    .unwrap();
    assert_eq!(seqs(&intake, 2513), (0..2513).collect::<Vec<_>>());
    let seen = intake.seen();
    assert!(seen.iter().all(|s| s.status == 202), "{seen:?}");
    assert!(
        seen.iter()
            .all(|s| s.entries <= 1000 && s.bytes <= 5_000_000)
    );
    let truncated = intake
        .accepted()
        .into_iter()
        .find(|e| e["seq"] == "2512")
        .unwrap();
    let msg = truncated["message"].as_str().unwrap();
    assert!(
        msg.len() < 1_000_000 && msg.len() > 900_000,
        "{}",
        msg.len()
    );
    assert!(router.wait_log("log of tag 'app.huge' was 15000", Duration::from_secs(2)));
    assert!(router.wait_log("message truncated", Duration::from_secs(1)));
}

#[test]
fn a_403_is_not_retried_and_the_key_is_never_logged() {
    let intake = Intake::start(VecDeque::new());
    let wrong = "ffffffffffffffffffffffffffffffff";
    let mut router = Router::start(&config(intake.port, wrong, ""), 1);
    send(&router, 5, 10);
    assert!(
        router.wait_log("rejected 5 entries with HTTP 403", Duration::from_secs(10)),
        "{}",
        router.logs().join("\n")
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(intake.seen().len(), 1, "not retried");
    assert!(router.stop(Duration::from_secs(10)).success());
    let logs = router.logs().join("\n");
    assert!(
        logs.contains("Invalid API key"),
        "the response body is logged"
    );
    assert!(logs.contains("permanent_error=5"), "{logs}");
    assert!(!logs.contains(wrong), "the API key must never be logged");
}

#[test]
fn provider_ecs_moves_ecs_fields_into_ddtags() {
    let intake = Intake::start(VecDeque::new());
    let router = Router::start(
        &config(
            intake.port,
            KEY,
            "    provider ecs\n    dd_service shop\n    dd_source nginx\n    dd_hostname host-1\n    dd_tags env:prod,team:web\n    include_tag_key On",
        ),
        1,
    );
    let mut s = router.tcp(0);
    s.write_all(&mp::message(
        "web-firelens-abc",
        1_700_000_000,
        123_456_789,
        &[
            ("container_id", "9f3c2a1b0e7d"),
            ("container_name", "/ecs-web-1-app"),
            ("source", "stdout"),
            ("log", "GET / 200"),
            (
                "ecs_cluster",
                "arn:aws:ecs:eu-west-1:111122223333:cluster/prod",
            ),
            (
                "ecs_task_arn",
                "arn:aws:ecs:eu-west-1:111122223333:task/prod/5b1f0c2e",
            ),
            ("ecs_task_definition", "web-task:42"),
        ],
    ))
    .unwrap();
    assert!(wait_until(Duration::from_secs(10), || !intake
        .accepted()
        .is_empty()));
    assert_eq!(
        intake.accepted()[0],
        json!({
            "timestamp": 1_700_000_000_123i64,
            "ddsource": "nginx",
            "service": "shop",
            "hostname": "host-1",
            "ddtags": "container_id:9f3c2a1b0e7d,container_name:ecs-web-1-app,cluster_name:prod,task_family:web-task,task_version:42,task_arn:arn:aws:ecs:eu-west-1:111122223333:task/prod/5b1f0c2e,task_id:5b1f0c2e,region:eu-west-1,env:prod,team:web",
            "source": "stdout",
            "message": "GET / 200",
            "tagkey": "web-firelens-abc"
        })
    );
}
