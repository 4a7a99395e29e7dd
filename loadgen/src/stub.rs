//! `firehose-stub`: a local endpoint that answers every Firehose PutRecordBatch at once with
//! success, so a benchmark measures the router, not an emulator; it counts what it received.
//!
//! Plain HTTP/1.1 over `std::net`, one thread a connection, keep-alive, bodies by
//! `Content-Length` (or chunked). A `POST` is taken as PutRecordBatch (the SDK sends
//! `x-amz-target: Firehose_20150804.PutRecordBatch`): the length of the body's `Records` array is
//! counted and answered with that many `RecordId`s and `FailedPutCount` 0. `GET /count` answers
//! `{"records":N,"requests":N,"bytes":N}`; the same line is printed on stdout at SIGTERM/SIGINT,
//! or when stdin closes with `--stdin`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

static RECORDS: AtomicU64 = AtomicU64::new(0);
static REQUESTS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);

/// A record id shaped like Firehose's (they are opaque to the client).
const RECORD_ID: &str = "49543463076548007577105092703039560359975228518395019266";

pub struct StubArgs {
    pub listen: String,
    pub port: u16,
    pub stdin: bool,
}

pub fn run(args: &StubArgs) -> io::Result<()> {
    let listener = TcpListener::bind((args.listen.as_str(), args.port))?;
    let port = listener.local_addr()?.port();
    println!("{{\"port\":{port}}}");
    io::stdout().flush()?;
    extern "C" fn on_signal(_: libc::c_int) {
        STOP.store(true, Ordering::Relaxed);
    }
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
    std::thread::spawn(|| {
        while !STOP.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        finish();
    });
    if args.stdin {
        std::thread::spawn(|| {
            let _ = io::copy(&mut io::stdin(), &mut io::sink());
            finish();
        });
    }
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || {
            let _ = serve(stream);
        });
    }
    Ok(())
}

fn totals() -> String {
    format!(
        "{{\"records\":{},\"requests\":{},\"bytes\":{}}}",
        RECORDS.load(Ordering::Relaxed),
        REQUESTS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed)
    )
}

fn finish() -> ! {
    println!("{}", totals());
    let _ = io::stdout().flush();
    std::process::exit(0);
}

/// One connection: requests until the client closes it.
fn serve(stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let (mut length, mut chunked, mut expect, mut close) = (0usize, false, false, false);
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let Some((name, value)) = l.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "expect" => expect = value.eq_ignore_ascii_case("100-continue"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        if expect {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        body.clear();
        if chunked {
            read_chunked(&mut reader, &mut body)?;
        } else {
            body.resize(length, 0);
            reader.read_exact(&mut body)?;
        }
        let (status, reply) = respond(&method, &path, &body);
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\n\
             x-amzn-requestid: 00000000-0000-0000-0000-000000000000\r\ncontent-length: {}\r\n\r\n",
            reply.len()
        );
        // One write: split writes meet Nagle and delayed ACKs.
        let mut out = head.into_bytes();
        out.extend_from_slice(reply.as_bytes());
        writer.write_all(&out)?;
        if close {
            return Ok(());
        }
    }
}

fn read_chunked(reader: &mut impl BufRead, body: &mut Vec<u8>) -> io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or("");
        let n = usize::from_str_radix(size, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if n == 0 {
            // Trailers, then the empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(());
                }
            }
        }
        let at = body.len();
        body.resize(at + n, 0);
        reader.read_exact(&mut body[at..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

fn respond(method: &str, path: &str, body: &[u8]) -> (&'static str, String) {
    if method == "GET" && path == "/count" {
        return ("200 OK", totals());
    }
    if method != "POST" {
        return ("404 Not Found", "{}".into());
    }
    let Some(n) = count_records(body) else {
        return (
            "400 Bad Request",
            r#"{"__type":"SerializationException","message":"no Records array"}"#.into(),
        );
    };
    RECORDS.fetch_add(n as u64, Ordering::Relaxed);
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(body.len() as u64, Ordering::Relaxed);
    ("200 OK", put_record_batch_response(n))
}

/// `{"FailedPutCount":0,"Encrypted":false,"RequestResponses":[{"RecordId":"..."} × n]}`.
pub fn put_record_batch_response(n: usize) -> String {
    let mut s = String::with_capacity(64 + n * (RECORD_ID.len() + 16));
    s.push_str(r#"{"FailedPutCount":0,"Encrypted":false,"RequestResponses":["#);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(r#"{"RecordId":""#);
        s.push_str(RECORD_ID);
        s.push_str(r#""}"#);
    }
    s.push_str("]}");
    s
}

/// Length of the top-level `Records` array of a JSON object, or `None` if there is none.
pub fn count_records(body: &[u8]) -> Option<usize> {
    let mut p = Json { s: body, i: 0 };
    p.ws();
    p.eat(b'{')?;
    loop {
        p.ws();
        if p.peek()? == b'}' {
            return None;
        }
        let key = p.string()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        if key == b"Records" {
            p.eat(b'[')?;
            let mut n = 0;
            p.ws();
            if p.peek()? == b']' {
                return Some(0);
            }
            loop {
                p.ws();
                p.skip_value()?;
                n += 1;
                p.ws();
                match p.next()? {
                    b',' => {}
                    b']' => return Some(n),
                    _ => return None,
                }
            }
        }
        p.skip_value()?;
        p.ws();
        if p.next()? != b',' {
            return None;
        }
    }
}

/// Just enough of a JSON reader to skip values.
struct Json<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Json<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    /// A string's raw bytes (escapes left as they are).
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match self.next()? {
                b'"' => return Some(&self.s[start..self.i - 1]),
                b'\\' => {
                    self.next()?;
                }
                _ => {}
            }
        }
    }

    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                // Count brackets, stepping over strings.
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                // Number, true, false, null.
                let start = self.i;
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n')
                ) {
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_records_array() {
        let body = br#"{"DeliveryStreamName":"s","Records":[{"Data":"eyJhIjoiYiJ9Cg=="},{"Data":"e30K"}]}"#;
        assert_eq!(count_records(body), Some(2));
        let nested = br#"{ "X": {"Records": [1,2,3]}, "Y": "a\"]}", "Records" : [ {"Data":"x","K":[1,{"a":"]"}]} , 7 ] }"#;
        assert_eq!(count_records(nested), Some(2));
        assert_eq!(count_records(br#"{"Records":[]}"#), Some(0));
        assert_eq!(count_records(br#"{"DeliveryStreamName":"s"}"#), None);
        assert_eq!(count_records(b"not json"), None);
        assert_eq!(count_records(br#"{"Records":[1,2"#), None);
    }

    #[test]
    fn response_has_one_id_per_record() {
        let r = put_record_batch_response(3);
        assert!(r.starts_with(
            r#"{"FailedPutCount":0,"Encrypted":false,"RequestResponses":[{"RecordId":""#
        ));
        assert_eq!(r.matches("RecordId").count(), 3);
        assert!(r.ends_with("\"}]}"));
        assert_eq!(
            put_record_batch_response(0),
            r#"{"FailedPutCount":0,"Encrypted":false,"RequestResponses":[]}"#
        );
    }

    #[test]
    fn answers_over_http_with_keep_alive() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let _ = serve(s);
        });
        let mut s = TcpStream::connect(addr).unwrap();
        let body = r#"{"DeliveryStreamName":"s","Records":[{"Data":"YQo="},{"Data":"Ygo="}]}"#;
        let mut reader = BufReader::new(s.try_clone().unwrap());
        for _ in 0..2 {
            write!(
                s,
                "POST / HTTP/1.1\r\nhost: x\r\nx-amz-target: Firehose_20150804.PutRecordBatch\r\n\
                 content-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut status = String::new();
            reader.read_line(&mut status).unwrap();
            assert_eq!(status, "HTTP/1.1 200 OK\r\n");
            let mut len = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h == "\r\n" {
                    break;
                }
                if let Some(v) = h.strip_prefix("content-length: ") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut reply = vec![0; len];
            reader.read_exact(&mut reply).unwrap();
            assert_eq!(
                String::from_utf8(reply).unwrap(),
                put_record_batch_response(2)
            );
        }
        // Chunked bodies too, then the count.
        write!(
            s,
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{{\"Rec\r\n{:x}\r\nords\":[1]}}\r\n0\r\n\r\n",
            "ords\":[1]}".len()
        )
        .unwrap();
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK\r\n");
        assert!(RECORDS.load(Ordering::Relaxed) >= 5);
    }
}
