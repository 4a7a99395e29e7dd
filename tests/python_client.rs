//! The real Python `fluent-logger` client (from PyPI, installed by scripts/test.sh) sends over
//! TCP and the Unix socket; the file output must hold exactly what it sent.

mod common;

use std::time::Duration;

use common::{Router, wait_lines};
use serde_json::json;

const SENDER: &str = r#"
import sys
from fluent import sender, event
host, port = sys.argv[1], int(sys.argv[2])
s = sender.FluentSender('app', host=host, port=port, nanosecond_precision=True)
for i in range(100):
    ok = s.emit_with_time('web', sender.EventTime(1700000000.25), {
        'seq': i, 'log': 'GET /index.html 200', 'nested': {'a': [1, 2.5, None, True]},
        'text': 'caf\u00e9 "quoted"',
    })
    if not ok:
        raise SystemExit('send failed: %r' % (s.last_error,))
s.close()
"#;

fn send(host: &str, port: u16) {
    common::python_ok(&["-c", SENDER, host, &port.to_string()]);
}

const CONFIG: &str = "
[SERVICE]
    Flush 0.2
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[INPUT]
    Name      forward
    unix_path {dir}/fluent.sock
[OUTPUT]
    Name  file
    Match app.*
    Path  {dir}
";

fn check(router: &Router) {
    let lines = wait_lines(&router.dir.path("app.web"), 100, Duration::from_secs(10));
    assert_eq!(lines.len(), 100);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l.tag, "app.web");
        assert_eq!(l.time_ns, 1_700_000_000_250_000_000);
        assert_eq!(
            l.record,
            json!({"seq": i, "log": "GET /index.html 200", "nested": {"a": [1, 2.5, null, true]},
                   "text": "café \"quoted\""})
        );
    }
}

#[test]
fn python_fluent_logger_over_tcp() {
    let router = Router::start(CONFIG, 2);
    send("127.0.0.1", router.port(0));
    check(&router);
}

#[test]
fn python_fluent_logger_over_the_unix_socket() {
    let router = Router::start(CONFIG, 2);
    let path = router.listening[1].clone();
    send(&path, 0);
    check(&router);
}
