//! The forward input's shared-key handshake and TLS, against real clients: Node's
//! fluent-logger (`security`, `tls`), Fluent Bit 5.1.1's out_forward (`Shared_Key`, `tls On`),
//! and a Python client speaking the protocol with msgpack, hashlib and ssl.

#[macro_use]
mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{Router, TempDir, fluent_bit, make_certs, node_sender, python, wait_lines};
use serde_json::{Value, json};

/// Every test's output: a file the test reads back.
macro_rules! out_log {
    () => {
        "[OUTPUT]
    Name  file
    Match *
    Path  {dir}
    File  out.log
"
    };
}

const SHARED_KEY: &str = concat!(
    service!(),
    "[INPUT]
    Name          forward
    Listen        127.0.0.1
    Port          0
    Shared_Key    s3cr3t-key
    Self_Hostname router.example
[INPUT]
    Name          forward
    unix_path     {dir}/fluent.sock
    Shared_Key    s3cr3t-key
    Self_Hostname router.example
",
    out_log!()
);

const USERS: &str = concat!(
    service!(),
    "[INPUT]
    Name           forward
    Listen         127.0.0.1
    Port           0
    Shared_Key     s3cr3t-key
    Security.Users alice pa55word
    Security.Users bob   other
",
    out_log!()
);

fn node(cfg: Value) -> Output {
    Command::new("node")
        .arg(node_sender())
        .arg(cfg.to_string())
        .output()
        .expect("run node")
}

fn auth_failures(router: &Router, input: &str) -> f64 {
    let (_, text) = common::http::get(router.http_port(), "/api/v2/metrics/prometheus");
    common::http::prom_value(
        &text,
        "logrouter_input_auth_failures_total",
        &format!("name=\"{input}\""),
    )
    .unwrap_or(-1.0)
}

fn out_lines(router: &Router, n: usize) -> Vec<common::OutLine> {
    wait_lines(&router.dir.path("out.log"), n, Duration::from_secs(10))
}

#[test]
fn node_fluent_logger_with_the_right_key_is_served_and_a_wrong_key_is_refused() {
    let router = Router::start(SHARED_KEY, 2);
    let port = router.port(0);
    let ok = node(
        json!({"host": "127.0.0.1", "port": port, "count": 20, "tag": "node",
        "security": {"clientHostname": "app.example", "sharedKey": "s3cr3t-key"}}),
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let lines = out_lines(&router, 20);
    assert_eq!(lines.len(), 20);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l.tag, "node.web");
        assert_eq!(l.time_ns, 1_700_000_000_250_000_000, "EventTime kept");
        assert_eq!(l.record, json!({"seq": i, "msg": "hello from node"}));
    }

    let wrong = node(
        json!({"host": "127.0.0.1", "port": port, "count": 1, "tag": "node",
        "security": {"clientHostname": "app.example", "sharedKey": "not-the-key"}}),
    );
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.contains("Authentication failed: shared_key mismatch"),
        "{err}"
    );
    // A client without the handshake gets nowhere either: its frame is taken for a bad PING.
    let plain = node(json!({"host": "127.0.0.1", "port": port, "count": 1, "tag": "node"}));
    assert!(!plain.status.success());
    assert!(router.wait_log(
        "handshake refused: invalid ping message",
        Duration::from_secs(5)
    ));
    assert_eq!(auth_failures(&router, "forward.0"), 2.0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        out_lines(&router, 20).len(),
        20,
        "nothing from the refused clients"
    );
    let logs = router.logs().join("\n");
    assert!(
        !logs.contains("s3cr3t-key") && !logs.contains("not-the-key"),
        "{logs}"
    );
}

#[test]
fn node_fluent_logger_logs_in_as_a_user() {
    let router = Router::start(USERS, 1);
    let port = router.port(0);
    let send = |user: &str, password: &str| {
        node(
            json!({"host": "127.0.0.1", "port": port, "count": 3, "tag": user,
            "security": {"clientHostname": "app.example", "sharedKey": "s3cr3t-key",
                         "username": user, "password": password}}),
        )
    };
    let ok = send("alice", "pa55word");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let ok = send("bob", "other");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for bad in [send("alice", "other"), send("mallory", "pa55word")] {
        assert!(!bad.status.success());
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(
            err.contains("Authentication failed: username/password mismatch"),
            "{err}"
        );
    }
    let lines = out_lines(&router, 6);
    let tags: Vec<&str> = lines.iter().map(|l| l.tag.as_str()).collect();
    assert_eq!(
        tags,
        ["alice.web"; 3]
            .iter()
            .chain(&["bob.web"; 3])
            .copied()
            .collect::<Vec<_>>()
    );
    assert_eq!(auth_failures(&router, "forward.0"), 2.0);
    assert!(!router.logs().join("\n").contains("pa55word"));
}

/// A raw client: reads HELO, sends PING (salt as bin) pipelined with three frames in one
/// write, checks the PONG's digest, reads the acks. `data_first` sends a frame instead of PING.
const RAW_CLIENT: &str = r#"
import hashlib, json, socket, ssl, sys
import msgpack
cfg = json.loads(sys.argv[1])
if 'unix' in cfg:
    s = socket.socket(socket.AF_UNIX)
    s.connect(cfg['unix'])
else:
    s = socket.create_connection(('127.0.0.1', cfg['port']))
if 'tls' in cfg:
    ctx = ssl.create_default_context(cafile=cfg['tls']['ca'])
    if 'cert' in cfg['tls']:
        ctx.load_cert_chain(cfg['tls']['cert'], cfg['tls']['key'])
    s = ctx.wrap_socket(s, server_hostname='localhost')
s.settimeout(10)
unpacker = msgpack.Unpacker(raw=False)
def recv():
    while True:
        for obj in unpacker:
            return obj
        data = s.recv(4096)
        if not data:
            return None
        unpacker.feed(data)
out = {}
helo = recv()
out['helo'] = [helo[0], sorted(helo[1].keys()), type(helo[1]['nonce']).__name__,
               len(helo[1]['nonce']), len(helo[1]['auth'])]
nonce, auth = helo[1]['nonce'], helo[1]['auth']
key, host = cfg['key'].encode(), b'raw.example'
frames = [msgpack.packb(['raw', 1700000000, {'n': i}, {'chunk': 'c%d' % i}]) for i in range(3)]
if cfg.get('data_first'):
    s.sendall(frames[0])
else:
    salt = b'0123456789abcdef'
    digest = hashlib.sha512(salt + host + nonce + key).hexdigest()
    s.sendall(msgpack.packb(['PING', host, salt, digest, '', '']) + b''.join(frames))
pong = recv()
out['pong'] = pong[:4]
if pong[1]:
    expected = hashlib.sha512(salt + pong[3].encode() + nonce + key).hexdigest()
    out['pong_digest_ok'] = pong[4] == expected
    out['acks'] = [recv() for _ in frames]
else:
    out['closed'] = recv() is None
print(json.dumps(out))
"#;

fn raw(cfg: Value) -> Value {
    serde_json::from_slice(&common::python_ok(&["-c", RAW_CLIENT, &cfg.to_string()])).unwrap()
}

#[test]
fn a_raw_client_over_tcp_and_the_unix_socket_and_one_that_skips_the_ping() {
    let router = Router::start(SHARED_KEY, 2);
    let unix = router.listening[1]
        .strip_prefix("unix://")
        .unwrap()
        .to_string();
    for target in [json!({"port": router.port(0)}), json!({"unix": unix})] {
        let mut cfg = target.clone();
        cfg["key"] = json!("s3cr3t-key");
        let got = raw(cfg);
        assert_eq!(
            got["helo"],
            json!(["HELO", ["auth", "keepalive", "nonce"], "bytes", 16, 0])
        );
        assert_eq!(got["pong"], json!(["PONG", true, "", "router.example"]));
        assert_eq!(got["pong_digest_ok"], json!(true));
        assert_eq!(
            got["acks"],
            json!([{"ack": "c0"}, {"ack": "c1"}, {"ack": "c2"}])
        );
    }
    assert_eq!(out_lines(&router, 6).len(), 6);

    let mut cfg = json!({"port": router.port(0), "key": "wrong"});
    assert_eq!(
        raw(cfg.clone())["pong"],
        json!(["PONG", false, "shared_key mismatch", ""])
    );
    cfg["data_first"] = json!(true);
    let got = raw(cfg);
    assert_eq!(
        got["pong"],
        json!(["PONG", false, "invalid ping message", ""])
    );
    assert_eq!(got["closed"], json!(true));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        out_lines(&router, 6).len(),
        6,
        "the refused frame was not ingested"
    );
    assert_eq!(auth_failures(&router, "forward.0"), 2.0);
}

#[test]
fn empty_shared_key_on_means_the_empty_key() {
    let router = Router::start(
        "[INPUT]\n    Name forward\n    Listen 127.0.0.1\n    Port 0\n    Empty_Shared_Key On\n[OUTPUT]\n    Name file\n    Match *\n    Path {dir}\n    File out.log\n",
        1,
    );
    let got = raw(json!({"port": router.port(0), "key": ""}));
    assert_eq!(got["pong"], json!(["PONG", true, "", "localhost"]));
    assert_eq!(
        got["acks"],
        json!([{"ack": "c0"}, {"ack": "c1"}, {"ack": "c2"}])
    );
    let got = raw(json!({"port": router.port(0), "key": "some-key"}));
    assert_eq!(
        got["pong"],
        json!(["PONG", false, "shared_key mismatch", ""])
    );
}

/// Runs Fluent Bit with a dummy input forwarding to `port` with `output` keys, until `done`.
fn run_fluent_bit(
    fb: &std::path::Path,
    dir: &TempDir,
    port: u16,
    output: &str,
    done: impl Fn() -> bool,
) {
    let conf = dir.path("fb.conf");
    std::fs::write(
        &conf,
        format!(
            "[SERVICE]
    Flush     0.2
    Log_Level info
[INPUT]
    Name    dummy
    Tag     fb.dummy
    Dummy   {{\"msg\":\"from fluent bit\"}}
    Samples 5
    Rate    20
[OUTPUT]
    Name                 forward
    Match                *
    Host                 127.0.0.1
    Port                 {port}
    Self_Hostname        fb.example
    Require_ack_response true
    Retry_Limit          False
{output}"
        ),
    )
    .unwrap();
    let mut child = Command::new(fb)
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_until(Duration::from_secs(15), &done);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn fluent_bit_out_forward_with_shared_key() {
    let Some(fb) = fluent_bit() else {
        eprintln!("skipped: no Fluent Bit 5.1.1 (set LOGROUTER_TEST_FLUENT_BIT)");
        return;
    };
    let router = Router::start(SHARED_KEY, 2);
    let dir = TempDir::new();
    let out = router.dir.path("out.log");
    run_fluent_bit(
        &fb,
        &dir,
        router.port(0),
        "    Shared_Key s3cr3t-key\n",
        || common::read_out_file(&out).len() >= 5,
    );
    let lines = out_lines(&router, 5);
    assert_eq!(lines.len(), 5);
    assert!(
        lines
            .iter()
            .all(|l| l.tag == "fb.dummy" && l.record == json!({"msg": "from fluent bit"}))
    );

    run_fluent_bit(
        &fb,
        &dir,
        router.port(0),
        "    Shared_Key wrong-key\n",
        || {
            router
                .logs()
                .iter()
                .any(|l| l.contains("handshake refused: shared_key mismatch"))
        },
    );
    assert!(router.wait_log(
        "handshake refused: shared_key mismatch",
        Duration::from_secs(1)
    ));
    assert_eq!(out_lines(&router, 5).len(), 5, "nothing from the wrong key");
}

fn tls_config(dir: &std::path::Path, verify: bool) -> String {
    let d = dir.display();
    format!(
        concat!(
            service!(),
            "[INPUT]
    Name          forward
    Listen        127.0.0.1
    Port          0
    Shared_Key    s3cr3t-key
    Self_Hostname router.example
    tls           On
    tls.verify    {verify}
    tls.crt_file  {d}/server.crt
    tls.key_file  {d}/server.key
    tls.ca_file   {d}/ca.crt
"
        ),
        verify = if verify { "On" } else { "Off" },
        d = d
    ) + out_log!()
}

#[test]
fn tls_with_client_certificates_and_the_handshake_inside() {
    let certs = TempDir::new();
    make_certs(&certs.0);
    let c = |f: &str| certs.path(f).display().to_string();
    let router = Router::start(&tls_config(&certs.0, true), 1);
    let port = router.port(0);

    // Python's ssl with a client certificate, then the handshake inside TLS.
    let got = raw(json!({"port": port, "key": "s3cr3t-key",
        "tls": {"ca": c("ca.crt"), "cert": c("client.crt"), "key": c("client.key")}}));
    assert_eq!(got["pong"], json!(["PONG", true, "", "router.example"]));
    assert_eq!(
        got["acks"],
        json!([{"ack": "c0"}, {"ack": "c1"}, {"ack": "c2"}])
    );

    // Node over TLS with a client certificate and the shared key.
    let ok = node(
        json!({"host": "127.0.0.1", "port": port, "count": 10, "tag": "node",
        "security": {"clientHostname": "app.example", "sharedKey": "s3cr3t-key"},
        "tls": {"ca": c("ca.crt"), "cert": c("client.crt"), "key": c("client.key")}}),
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(out_lines(&router, 13).len(), 13);

    // Without a client certificate: refused in the TLS handshake.
    let out = Command::new(python())
        .args([
            "-c",
            RAW_CLIENT,
            &json!({"port": port, "key": "s3cr3t-key",
            "tls": {"ca": c("ca.crt")}})
            .to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a client without a certificate was served"
    );
    assert!(router.wait_log("TLS handshake failed", Duration::from_secs(5)));

    // Fluent Bit's out_forward with tls On, its client certificate and the shared key.
    if let Some(fb) = fluent_bit() {
        let dir = TempDir::new();
        let out = router.dir.path("out.log");
        let keys = format!(
            "    Shared_Key   s3cr3t-key
    tls          On
    tls.verify   On
    tls.ca_file  {}
    tls.crt_file {}
    tls.key_file {}
",
            c("ca.crt"),
            c("client.crt"),
            c("client.key")
        );
        run_fluent_bit(&fb, &dir, port, &keys, || {
            common::read_out_file(&out).len() >= 18
        });
        let lines = out_lines(&router, 18);
        assert_eq!(lines.iter().filter(|l| l.tag == "fb.dummy").count(), 5);
    } else {
        eprintln!("Fluent Bit part skipped: no Fluent Bit 5.1.1 (set LOGROUTER_TEST_FLUENT_BIT)");
    }
}

#[test]
fn tls_verify_off_serves_clients_without_a_certificate() {
    let certs = TempDir::new();
    make_certs(&certs.0);
    let router = Router::start(&tls_config(&certs.0, false), 1);
    assert!(router.wait_log("tls.verify Off", Duration::from_secs(1)));
    let got = raw(json!({"port": router.port(0), "key": "s3cr3t-key",
        "tls": {"ca": certs.path("ca.crt").display().to_string()}}));
    assert_eq!(
        got["acks"],
        json!([{"ack": "c0"}, {"ack": "c1"}, {"ack": "c2"}])
    );
    // Plain TCP to a TLS listener: nothing is ingested.
    let mut s = router.tcp(0);
    std::io::Write::write_all(&mut s, &common::mp::message("plain", 1, 0, &[("a", "b")])).unwrap();
    assert!(common::closed_by_peer(&mut s));
    assert_eq!(out_lines(&router, 3).len(), 3);
}

fn start_error(config: &str) -> String {
    let dir = TempDir::new();
    let conf = dir.path("fluent-bit.conf");
    std::fs::write(&conf, config.replace("{dir}", dir.0.to_str().unwrap())).unwrap();
    let out = Command::new(common::BIN)
        .arg("--dry-run")
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success(), "config accepted: {config}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_tls_and_handshake_settings_are_config_errors_with_file_and_line() {
    let certs = TempDir::new();
    make_certs(&certs.0);
    let d = certs.0.display();
    let input = |keys: &str| {
        format!(
            "[INPUT]\n    Name forward\n    Port 0\n{keys}[OUTPUT]\n    Name null\n    Match *\n"
        )
    };
    let cases = [
        (
            format!(
                "    tls On\n    tls.verify Off\n    tls.crt_file {d}/missing.crt\n    tls.key_file {d}/server.key\n"
            ),
            ":6: tls.crt_file '",
            "missing.crt",
        ),
        (
            format!(
                "    tls On\n    tls.verify Off\n    tls.crt_file {d}/server.key\n    tls.key_file {d}/server.key\n"
            ),
            ":6: tls.crt_file '",
            "holds no PEM certificate",
        ),
        (
            format!(
                "    tls On\n    tls.verify Off\n    tls.crt_file {d}/server.crt\n    tls.key_file {d}/client.key\n"
            ),
            ":7: tls.key_file does not match",
            "",
        ),
        (
            format!(
                "    tls On\n    tls.crt_file {d}/server.crt\n    tls.key_file {d}/server.key\n"
            ),
            ":4: tls.verify On checks client certificates against tls.ca_file",
            "",
        ),
        (
            "    tls On\n".to_string(),
            ":4: tls On needs tls.crt_file",
            "",
        ),
        (
            "    Security.Users alice pass\n".to_string(),
            ":4: Security.Users: users need a Shared_Key",
            "",
        ),
        (
            "    Shared_Key k\n    Security.Users alice\n".to_string(),
            ":5: Security.Users: expected 'USER PASSWORD'",
            "",
        ),
    ];
    for (keys, want, also) in cases {
        let err = start_error(&input(&keys));
        assert!(
            err.contains("fluent-bit.conf") && err.contains(want) && err.contains(also),
            "{keys}\n{err}"
        );
    }
}

#[test]
fn dry_run_shows_the_handshake_and_tls_but_no_secret() {
    let dir = TempDir::new();
    let conf = dir.path("fluent-bit.conf");
    std::fs::write(
        &conf,
        "[INPUT]\n    Name forward\n    Port 0\n    Shared_Key s3cr3t-key\n    Security.Users alice pa55word\n[OUTPUT]\n    Name null\n    Match *\n",
    )
    .unwrap();
    let out = Command::new(common::BIN)
        .arg("--dry-run")
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("with the shared-key handshake (Self_Hostname localhost, 1 users)"),
        "{all}"
    );
    assert!(
        !all.contains("s3cr3t-key") && !all.contains("pa55word"),
        "{all}"
    );
}
