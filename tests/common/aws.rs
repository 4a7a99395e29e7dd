//! AWS emulation for the output tests: a moto server in its own process, and a fault-injecting
//! HTTP proxy in front of it that fails calls or individual records on a script.

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use super::http::{Request, read_request, respond};
use super::{python, wait_until};

fn venv_bin(name: &str) -> PathBuf {
    python().parent().unwrap().join(name)
}

/// A moto server on a free loopback port, stopped on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Moto binds port 0 itself and prints the port it got, so no other process can take the
    /// port between choosing it and binding it (tests run in parallel).
    pub fn start() -> Moto {
        use std::io::BufRead;
        let mut child = Command::new(venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moto_server (run scripts/test.sh to install it)");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the start-up line, then keeps draining moto's request log so it never blocks.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .split("Running on http://127.0.0.1:")
                    .nth(1)
                    .and_then(|p| p.trim().parse::<u16>().ok())
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("moto server did not say which port it listens on");
        assert!(
            wait_until(Duration::from_secs(20), || TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "moto server does not accept connections"
        );
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    fn helper(&self, args: &[&str]) -> String {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/aws_helper.py");
        let mut all = vec![script, self.endpoint.as_str()];
        all.extend_from_slice(args);
        String::from_utf8(super::python_ok(&all)).unwrap()
    }

    /// Creates `bucket`, and a Firehose delivery stream into it when `stream` is given.
    pub fn setup(&self, bucket: &str, stream: Option<&str>) {
        let mut args = vec!["setup", bucket];
        args.extend(stream);
        self.helper(&args);
    }

    /// Every object of `bucket`: (key, body).
    pub fn objects(&self, bucket: &str) -> Vec<(String, Vec<u8>)> {
        self.helper(&["objects", bucket])
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let body = base64::engine::general_purpose::STANDARD
                    .decode(v["body_b64"].as_str().unwrap())
                    .unwrap();
                (v["key"].as_str().unwrap().to_string(), body)
            })
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the proxy does to one PutRecordBatch call.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this HTTP status and AWS error type; nothing reaches moto.
    Status(u16, &'static str),
    /// Forward all but every n-th record (from the first); report those as failed.
    FailEvery(usize),
}

/// One PutRecordBatch call the proxy saw.
#[derive(Debug, Clone)]
pub struct Call {
    pub records: usize,
    /// Sum of the records' decoded sizes.
    pub bytes: usize,
    pub fault: Option<Fault>,
}

/// A loopback HTTP proxy to `upstream` applying `script` to successive PutRecordBatch calls.
pub struct FaultProxy {
    pub endpoint: String,
    pub calls: Arc<Mutex<Vec<Call>>>,
}

/// Sends `req` (with `body`) to `upstream` and returns (status line + headers, body).
fn forward(upstream: &str, req: &Request, body: &[u8]) -> (u16, Vec<String>, Vec<u8>) {
    let addr = upstream.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(req.head[0].as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in &req.head[1..] {
        let k = h.split(':').next().unwrap_or("").to_ascii_lowercase();
        if k != "content-length" && k != "connection" {
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    s.write_all(&out).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head: Vec<String> = String::from_utf8_lossy(&resp[..split])
        .lines()
        .map(str::to_string)
        .collect();
    let status = head[0].split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head[1..].to_vec(), resp[split + 4..].to_vec())
}

impl FaultProxy {
    pub fn start(upstream: &str, script: Vec<Fault>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.into_iter()));
        let upstream = upstream.to_string();
        let log = calls.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (upstream, script, log) = (upstream.clone(), script.clone(), log.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut writer = stream;
                    while let Some(req) = read_request(&mut reader) {
                        let is_put = req
                            .head
                            .iter()
                            .any(|h| h.to_ascii_lowercase().contains("putrecordbatch"));
                        if !is_put {
                            let (status, headers, body) = forward(&upstream, &req, &req.body);
                            respond(&mut writer, status, &headers, &body);
                            continue;
                        }
                        let json: Value = serde_json::from_slice(&req.body).unwrap();
                        let records = json["Records"].as_array().unwrap().clone();
                        let sizes: Vec<usize> = records
                            .iter()
                            .map(|r| {
                                base64::engine::general_purpose::STANDARD
                                    .decode(r["Data"].as_str().unwrap())
                                    .unwrap()
                                    .len()
                            })
                            .collect();
                        let fault = script.lock().unwrap().next();
                        log.lock().unwrap().push(Call {
                            records: records.len(),
                            bytes: sizes.iter().sum(),
                            fault: fault.clone(),
                        });
                        match fault {
                            Some(Fault::Status(code, kind)) => {
                                let body = json!({"__type": kind, "message": "injected by the test proxy"}).to_string();
                                let headers = vec![
                                    format!("x-amzn-errortype: {kind}"),
                                    "content-type: application/x-amz-json-1.1".to_string(),
                                ];
                                respond(&mut writer, code, &headers, body.as_bytes());
                            }
                            Some(Fault::FailEvery(n)) => {
                                let failed = |i: usize| i.is_multiple_of(n);
                                let kept: Vec<Value> = records
                                    .iter()
                                    .enumerate()
                                    .filter(|(i, _)| !failed(*i))
                                    .map(|(_, r)| r.clone())
                                    .collect();
                                let (headers, up) = if kept.is_empty() {
                                    // Nothing to forward: moto would store an empty object.
                                    (
                                        vec![
                                            "content-type: application/x-amz-json-1.1".to_string(),
                                        ],
                                        json!({"RequestResponses": []}),
                                    )
                                } else {
                                    let mut fwd = json.clone();
                                    fwd["Records"] = Value::Array(kept);
                                    let (status, headers, body) =
                                        forward(&upstream, &req, fwd.to_string().as_bytes());
                                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                                    (headers, serde_json::from_slice(&body).unwrap())
                                };
                                let mut ok = up["RequestResponses"].as_array().unwrap().iter();
                                let responses: Vec<Value> = (0..records.len())
                                    .map(|i| {
                                        if failed(i) {
                                            json!({"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."})
                                        } else {
                                            ok.next().unwrap().clone()
                                        }
                                    })
                                    .collect();
                                let failed_count =
                                    (0..records.len()).filter(|&i| failed(i)).count();
                                let body = json!({"FailedPutCount": failed_count, "Encrypted": false, "RequestResponses": responses}).to_string();
                                respond(&mut writer, 200, &headers, body.as_bytes());
                            }
                            None => {
                                let (status, headers, body) = forward(&upstream, &req, &req.body);
                                respond(&mut writer, status, &headers, &body);
                            }
                        }
                    }
                });
            }
        });
        FaultProxy { endpoint, calls }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}
