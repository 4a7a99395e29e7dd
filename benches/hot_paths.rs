//! Hot pieces of a record's path, one Docker-driver-shaped nginx line at a time:
//! finding and decoding Message frames, writing a JSON line, matching a tag.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use logrouter::input::forward::frame;
use logrouter::msgpack::json::JsonStyle;
use logrouter::msgpack::{Scanner, ScannerLimits};
use logrouter::output::{DateFormat, JsonRecord};
use logrouter::record::{Event, EventTime};
use logrouter::router::Matcher;

const LINE: &str = r#"172.17.0.1 - - [21/Nov/2026:10:00:00 +0000] "GET /api/v1/items?page=2 HTTP/1.1" 200 5316 "https://example.com/list" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36""#;

/// `[tag, EventTime, {container_id, container_name, source, log}, {}]` as Docker sends it.
fn docker_frame(seq: u32) -> Vec<u8> {
    let mut f = vec![0x94];
    logrouter::msgpack::write_str(&mut f, b"web-firelens-5f2a9c");
    f.extend_from_slice(&[0xd7, 0x00]);
    f.extend_from_slice(&1_795_000_000u32.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.push(0x84);
    for (k, v) in [
        (
            "container_id",
            "5f2a9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b",
        ),
        ("container_name", "/ecs-web-1-nginx"),
        ("source", "stdout"),
        ("log", LINE),
    ] {
        logrouter::msgpack::write_str(&mut f, k.as_bytes());
        logrouter::msgpack::write_str(&mut f, v.as_bytes());
    }
    f.push(0x80);
    f
}

/// The record map of [`docker_frame`].
fn docker_record() -> Vec<u8> {
    let f = docker_frame(0);
    // After the fixarray marker, the tag and the 10-byte EventTime; before the empty options.
    let tag_len = 1 + "web-firelens-5f2a9c".len();
    f[1 + tag_len + 10..f.len() - 1].to_vec()
}

/// `[EventTime, record]` entries, concatenated, as Forward-mode batches carry them.
fn entries(n: u32) -> Vec<u8> {
    let record = docker_record();
    let mut out = Vec::new();
    for seq in 0..n {
        out.push(0x92);
        out.extend_from_slice(&[0xd7, 0x00]);
        out.extend_from_slice(&1_795_000_000u32.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&record);
    }
    out
}

/// A batch frame of `n` entries: Forward (an array of entries), PackedForward (a bin of
/// entries) or CompressedPackedForward (a bin of gzipped entries).
fn batch_frame(mode: &str, n: u32) -> Vec<u8> {
    let mut f = vec![0x93];
    logrouter::msgpack::write_str(&mut f, b"web-firelens-5f2a9c");
    let body = entries(n);
    match mode {
        "forward" => {
            f.push(0xdd);
            f.extend_from_slice(&n.to_be_bytes());
            f.extend_from_slice(&body);
            f.push(0x80);
        }
        _ => {
            let payload = if mode == "compressed" {
                use std::io::Write;
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&body).unwrap();
                gz.finish().unwrap()
            } else {
                body
            };
            f.push(0xc6);
            f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            f.extend_from_slice(&payload);
            if mode == "compressed" {
                f.push(0x81);
                logrouter::msgpack::write_str(&mut f, b"compressed");
                logrouter::msgpack::write_str(&mut f, b"gzip");
            } else {
                f.push(0x80);
            }
        }
    }
    f
}

fn decode_batches(c: &mut Criterion) {
    let mut g = c.benchmark_group("forward");
    g.throughput(Throughput::Elements(1000));
    for mode in ["forward", "packed", "compressed"] {
        let frame = Bytes::from(batch_frame(mode, 1000));
        g.bench_function(format!("decode 1 {mode} frame of 1000 entries"), |b| {
            let mut events = Vec::with_capacity(1024);
            b.iter(|| {
                events.clear();
                frame::decode(&frame, 64_000_000, &mut events).unwrap();
                assert_eq!(events.len(), 1000);
            })
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    // One 64 KiB read's worth of frames, scanned and decoded as a connection does.
    let frames: Vec<u8> = (0..200).flat_map(docker_frame).collect();
    let mut g = c.benchmark_group("forward");
    g.throughput(Throughput::Elements(200));
    g.bench_function("scan+decode 200 Message frames", |b| {
        let mut events = Vec::with_capacity(256);
        b.iter(|| {
            let mut buf = BytesMut::from(&frames[..]);
            let mut scanner = Scanner::new(ScannerLimits {
                max_bytes: 6_144_000,
                max_depth: 64,
            });
            events.clear();
            while let Ok(Some(len)) = scanner.advance(&buf) {
                let f: Bytes = buf.split_to(len).freeze();
                let _ = frame::decode(&f, 6_144_000, &mut events);
            }
            assert_eq!(events.len(), 200);
        })
    });
    g.finish();
}

fn json(c: &mut Criterion) {
    let f = Bytes::from(docker_frame(1));
    let mut events = Vec::new();
    frame::decode(&f, 6_144_000, &mut events).unwrap();
    let event: Event = events.pop().unwrap();
    let rec = JsonRecord {
        date_key: Some("date".into()),
        date_format: DateFormat::Double,
        style: JsonStyle::default(),
    };
    let mut g = c.benchmark_group("json");
    g.throughput(Throughput::Elements(1));
    g.bench_function("json_lines record", |b| {
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            out.clear();
            rec.write(&mut out, &event);
            out.push(b'\n');
        })
    });
    // A Firehose batch: 500 records as the nginx parser leaves them (13 fields with the Docker
    // ones), each rendered as a JSON line.
    let parsed: Vec<Event> = (0..500)
        .map(|i| {
            let size = (5316 + i).to_string();
            Event::from_pairs(
                EventTime::from_parts(1_795_000_000, i),
                &[
                    ("remote", "172.17.0.1"),
                    ("host", "-"),
                    ("user", "-"),
                    ("method", "GET"),
                    ("path", "/api/v1/items?page=2"),
                    ("code", "200"),
                    ("size", &size),
                    ("referer", "https://example.com/list"),
                    (
                        "agent",
                        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
                    ),
                    (
                        "container_id",
                        "5f2a9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d",
                    ),
                    ("container_name", "/ecs-web-1-nginx"),
                    ("source", "stdout"),
                    ("ecs_cluster", "prod"),
                ],
            )
        })
        .collect();
    g.throughput(Throughput::Elements(500));
    g.bench_function("Firehose batch of 500 parsed nginx records", |b| {
        let mut out = Vec::with_capacity(512 * 1024);
        b.iter(|| {
            out.clear();
            for e in &parsed {
                rec.write(&mut out, e);
                out.push(b'\n');
            }
        })
    });
    g.finish();
}

/// The nginx parser of conf/parsers.conf, alone and as the parser filter in a chain.
fn parsing(c: &mut Criterion) {
    use logrouter::config::loader::Loader;
    use logrouter::parser::Parser;
    use logrouter::record::RecordBuilder;

    let mut loader = Loader::new();
    loader
        .load_file(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/parsers.conf").as_ref())
        .unwrap();
    let section = loader
        .sections
        .iter()
        .find(|s| s.str("name") == Some("nginx"))
        .unwrap();
    let nginx = Parser::from_section(section).unwrap();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("nginx line", |b| {
        let mut arena = BytesMut::new();
        b.iter(|| {
            let mut rec = RecordBuilder::new(&mut arena);
            let t = nginx.parse(LINE.as_bytes(), &mut rec).unwrap();
            (t, rec.finish())
        })
    });
    g.finish();

    // parser (nginx, Reserve_Data) + record_modifier (FireLens's ECS fields) + grep, on a
    // batch of 200 Docker-driver records.
    let dir = std::env::temp_dir().join(format!("lr-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("bench.conf");
    std::fs::write(
        &conf,
        format!(
            "[SERVICE]\n    Parsers_File {}/conf/parsers.conf\n\
[FILTER]\n    Name parser\n    Match *\n    Key_Name log\n    Parser nginx\n    Reserve_Data On\n\
[FILTER]\n    Name record_modifier\n    Match *\n    Record ecs_cluster prod\n    Record ecs_task_arn arn:aws:ecs:eu-west-1:1:task/prod/5b1f\n\
[FILTER]\n    Name grep\n    Match *\n    Exclude path ^/health\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    let mut config = logrouter::config::Config::from_file(&conf, &[]).unwrap();
    let plan = logrouter::engine::Plan::build(&mut config).unwrap();
    let f = Bytes::from((0..200).flat_map(docker_frame).collect::<Vec<u8>>());
    let mut events = Vec::new();
    let mut scanner = Scanner::new(ScannerLimits {
        max_bytes: 6_144_000,
        max_depth: 64,
    });
    let mut buf = BytesMut::from(&f[..]);
    while let Ok(Some(len)) = scanner.advance(&buf) {
        let frame = buf.split_to(len).freeze();
        frame::decode(&frame, 6_144_000, &mut events).unwrap();
    }
    let mut batch = logrouter::record::Batch::new(Arc::from("web-firelens-5f2a9c"));
    events.into_iter().for_each(|e| batch.push(e));
    let mut g = c.benchmark_group("filters");
    g.throughput(Throughput::Elements(200));
    g.bench_function("parser+record_modifier+grep, 200 records", |b| {
        b.iter(|| plan.filters.apply(batch.clone()))
    });
    g.finish();
    let _ = std::fs::remove_dir_all(dir);
}

fn routing(c: &mut Criterion) {
    let m = Matcher::wildcard("web-firelens*");
    let tag: Arc<str> = Arc::from("web-firelens-5f2a9c0d1e2f3a4b");
    c.bench_function("match wildcard", |b| b.iter(|| m.matches(&tag)));
}

criterion_group!(benches, decode, decode_batches, json, parsing, routing);
criterion_main!(benches);
