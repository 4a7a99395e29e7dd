//! The Firehose output against a local stub that accepts every PutRecordBatch at once, so the
//! router's side is what is measured: records/s, bytes/s, and CPU per million records of the
//! thread that runs the output (JSON encoding, batching, the SDK's request building and signing,
//! HTTP). Run: `cargo bench --bench firehose`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use logrouter::config::{Location, Section, SectionKind, Service};
use logrouter::output::{Chunk, build};
use logrouter::record::{Batch, Event, EventTime};

fn stub() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut len = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    let n = body.windows(7).filter(|w| w == b"\"Data\":").count();
                    let mut resp = String::from(
                        r#"{"FailedPutCount":0,"Encrypted":false,"RequestResponses":["#,
                    );
                    for i in 0..n {
                        if i > 0 {
                            resp.push(',');
                        }
                        resp.push_str(r#"{"RecordId":"r"}"#);
                    }
                    resp.push_str("]}");
                    // One write: split writes meet Nagle and delayed ACKs (40 ms a call).
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{resp}",
                        resp.len()
                    );
                    let _ = writer.write_all(reply.as_bytes());
                }
            });
        }
    });
    format!("http://{addr}")
}

fn thread_cpu() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_THREAD, ru.as_mut_ptr());
        ru.assume_init()
    };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a quick smoke test.
    let bench = std::env::args().any(|a| a == "--bench");
    let (records, rounds) = if bench { (200_000, 3) } else { (2_000, 1) };
    // SAFETY: set before any other thread exists.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "bench");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "bench");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    let endpoint = stub();
    let loc = Location::command_line();
    let mut s = Section::new(SectionKind::Output, loc.clone());
    for (k, v) in [
        ("Name", "firehose"),
        ("delivery_stream", "bench"),
        ("region", "us-east-1"),
        ("endpoint", endpoint.as_str()),
    ] {
        s.push(k, v, loc.clone());
    }
    let spec = build(&s, 0, &Service::default()).unwrap();
    let line = r#"172.17.0.1 - - [21/Nov/2026:10:00:00 +0000] "GET /api/v1/items?page=2 HTTP/1.1" 200 5316 "https://example.com/list" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0""#;
    let mut batch = Batch::new(Arc::from("web-firelens-1"));
    for i in 0..records {
        batch.push(Event::from_pairs(
            EventTime::from_parts(1_800_000_000, i as u32),
            &[
                ("container_id", "5f2a9c0d1e2f3a4b5c6d7e8f"),
                ("container_name", "/web"),
                ("source", "stdout"),
                ("log", line),
            ],
        ));
    }
    let batches: Vec<Arc<Batch>> = vec![Arc::new(batch)];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Warm up: client, connection, credentials.
    rt.block_on(async {
        let mut warm = Chunk::new(vec![Arc::new({
            let mut b = Batch::new(Arc::from("w"));
            b.push(Event::from_pairs(EventTime::default(), &[("a", "b")]));
            b
        })]);
        spec.output.flush(&mut warm).await.unwrap();
    });
    let mut best = f64::MAX;
    let mut report = String::new();
    for _ in 0..rounds {
        let mut chunk = Chunk::new(batches.clone());
        let (cpu0, t0) = (thread_cpu(), Instant::now());
        rt.block_on(spec.output.flush(&mut chunk)).unwrap();
        let (cpu, wall) = (thread_cpu() - cpu0, t0.elapsed().as_secs_f64());
        let bytes = (line.len() + 110) * records;
        if cpu < best {
            best = cpu;
            report = format!(
                "firehose output, {records} records (~{} bytes of JSON each), batches of 500:\n  \
                 {:.0} records/s, {:.1} MB/s of record data (wall {wall:.2} s)\n  \
                 CPU of the output thread: {:.2} s per million records",
                line.len() + 110,
                records as f64 / wall,
                bytes as f64 / wall / 1e6,
                cpu / records as f64 * 1e6
            );
        }
    }
    if bench {
        println!("{report}");
    }
}
