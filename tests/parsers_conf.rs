//! The shipped conf/parsers.conf: every parser against real-looking lines (field by field, with
//! the time read from the line) and against lines it must not match.

use bytes::BytesMut;
use logrouter::config::loader::Loader;
use logrouter::msgpack::json::JsonStyle;
use logrouter::parser::Parser;
use logrouter::record::{Event, EventTime, RecordBuilder};
use serde_json::{Value, json};

fn parser(name: &str) -> Parser {
    let mut l = Loader::new();
    l.load_file(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/parsers.conf").as_ref())
        .unwrap();
    let section = l
        .sections
        .iter()
        .find(|s| s.str("name") == Some(name))
        .unwrap_or_else(|| panic!("parser {name} not shipped"));
    Parser::from_section(section).unwrap()
}

/// The parsed record as JSON and the time, or None when the line does not match.
fn parse(p: &Parser, line: &str) -> Option<(Value, Option<(i64, u32)>)> {
    let mut arena = BytesMut::new();
    let mut b = RecordBuilder::new(&mut arena);
    let time = p.parse(line.as_bytes(), &mut b)?;
    let e = Event::new(EventTime::default(), b.finish()).unwrap();
    let mut out = Vec::new();
    JsonStyle {
        escape_unicode: false,
    }
    .value(&mut out, &e.record);
    Some((
        serde_json::from_slice(&out).unwrap(),
        time.map(|t| (t.secs(), t.subsec_nanos())),
    ))
}

/// 2023-11-14T22:13:20Z
const T: i64 = 1_700_000_000;

#[test]
fn nginx() {
    let p = parser("nginx");
    let (rec, time) = parse(
        &p,
        r#"172.17.0.1 - alice [15/Nov/2023:07:13:20 +0900] "GET /api/items?page=2 HTTP/1.1" 200 5316 "https://example.com/list" "Mozilla/5.0 (X11; Linux x86_64)" "10.0.0.9""#,
    )
    .unwrap();
    assert_eq!(
        rec,
        json!({"remote": "172.17.0.1", "host": "-", "user": "alice", "method": "GET",
               "path": "/api/items?page=2", "code": "200", "size": "5316",
               "referer": "https://example.com/list", "agent": "Mozilla/5.0 (X11; Linux x86_64)"})
    );
    assert_eq!(time, Some((T, 0)));
    // A request line without path (a malformed client) still parses.
    let (rec, _) = parse(
        &p,
        r#"10.0.0.1 - - [14/Nov/2023:22:13:20 +0000] "-" 400 0 "-" "-""#,
    )
    .unwrap();
    assert_eq!(rec["method"], "-");
    assert_eq!(rec["code"], "400");
    assert!(parse(&p, "hello world").is_none());
    assert!(
        parse(
            &p,
            r#"10.0.0.1 - - [14/Nov/2023:22:13:20 +0000] "GET / HTTP/1.1" 200 1"#
        )
        .is_none(),
        "nginx needs referer and agent"
    );
}

#[test]
fn apache_and_apache2() {
    let common = r#"192.168.0.7 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#;
    let (rec, time) = parse(&parser("apache"), common).unwrap();
    assert_eq!(
        rec,
        json!({"host": "192.168.0.7", "user": "frank", "method": "GET", "path": "/apache_pb.gif", "code": "200", "size": "2326"})
    );
    assert_eq!(time, Some((971_211_336, 0)));
    let combined =
        format!(r#"{common} "http://example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#);
    let (rec, _) = parse(&parser("apache2"), &combined).unwrap();
    assert_eq!(rec["referer"], "http://example.com/start.html");
    assert_eq!(rec["agent"], "Mozilla/4.08 [en] (Win98; I ;Nav)");
    assert!(parse(&parser("apache"), "192.168.0.7 - frank GET /").is_none());
}

#[test]
fn apache_error() {
    let (rec, time) = parse(
        &parser("apache_error"),
        "[Wed Oct 11 14:32:52 2000] [error] [pid 4242] [client 127.0.0.1] client denied by server configuration: /export/home/live/ap/htdocs/test",
    )
    .unwrap();
    assert_eq!(
        rec,
        json!({"time": "Oct 11 14:32:52 2000", "level": "error", "pid": "4242", "client": "127.0.0.1",
               "message": "client denied by server configuration: /export/home/live/ap/htdocs/test"})
    );
    assert_eq!(time, None);
    assert!(parse(&parser("apache_error"), "error: no brackets").is_none());
}

#[test]
fn json_and_docker() {
    let (rec, time) = parse(
        &parser("json"),
        r#"{"time":"14/Nov/2023:22:13:20 +0000","level":"info","n":3}"#,
    )
    .unwrap();
    assert_eq!(rec, json!({"level": "info", "n": 3}));
    assert_eq!(time, Some((T, 0)));
    assert!(parse(&parser("json"), "not json").is_none());
    let (rec, time) = parse(
        &parser("docker"),
        r#"{"log":"hello\n","stream":"stdout","time":"2023-11-14T22:13:20.123456789Z"}"#,
    )
    .unwrap();
    assert_eq!(
        rec,
        json!({"log": "hello\n", "stream": "stdout", "time": "2023-11-14T22:13:20.123456789Z"})
    );
    assert_eq!(time, Some((T, 123_456_789)));
}

#[test]
fn cri() {
    let p = parser("cri");
    let (rec, time) = parse(&p, "2023-11-14T22:13:20.5+00:00 stderr P part one ").unwrap();
    assert_eq!(
        rec,
        json!({"time": "2023-11-14T22:13:20.5+00:00", "stream": "stderr", "logtag": "P", "message": "part one "})
    );
    assert_eq!(time, Some((T, 500_000_000)));
    assert!(parse(&p, "2023-11-14T22:13:20Z stdin F x").is_none());
}

#[test]
fn syslog() {
    let (rec, time) = parse(
        &parser("syslog-rfc5424"),
        r#"<165>1 2023-11-14T22:13:20.003Z mymachine.example.com evntslog 1234 ID47 [exampleSDID@32473 iut="3" eventSource="Application"] An application event"#,
    )
    .unwrap();
    assert_eq!(
        rec,
        json!({"pri": "165", "time": "2023-11-14T22:13:20.003Z", "host": "mymachine.example.com",
               "ident": "evntslog", "pid": "1234", "msgid": "ID47",
               "extradata": "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\"]",
               "message": "An application event"})
    );
    assert_eq!(time, Some((T, 3_000_000)));
    let (rec, _) = parse(
        &parser("syslog-rfc5424"),
        "<34>1 2023-11-14T22:13:20.1Z host app - - -",
    )
    .unwrap();
    assert_eq!(rec["extradata"], "-");
    assert!(rec.get("message").is_none());

    let (rec, time) = parse(
        &parser("syslog-rfc3164"),
        "<34>Nov 14 22:13:20 mymachine su[230]: 'su root' failed for lonvick",
    )
    .unwrap();
    assert_eq!(
        rec,
        json!({"pri": "34", "time": "Nov 14 22:13:20", "host": "mymachine", "ident": "su", "pid": "230",
               "message": "'su root' failed for lonvick"})
    );
    let (secs, _) = time.unwrap();
    assert_eq!(
        (secs - T).rem_euclid(86_400),
        0,
        "same time of day, this year"
    );
    let (rec, _) = parse(
        &parser("syslog-rfc3164"),
        "<13>Nov  4 01:02:03 host cron: job done",
    )
    .unwrap();
    assert!(rec.get("pid").is_none());
    assert!(parse(&parser("syslog-rfc3164"), "Nov 14 22:13:20 no priority").is_none());
}

#[test]
fn logfmt() {
    let (rec, _) = parse(
        &parser("logfmt"),
        r#"level=info msg="request done" took=12ms cached"#,
    )
    .unwrap();
    assert_eq!(
        rec,
        json!({"level": "info", "msg": "request done", "took": "12ms", "cached": true})
    );
}
