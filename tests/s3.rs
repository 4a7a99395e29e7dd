//! The S3 output against moto, through the real binary: key format and gzip, rotation by size
//! and by time, multipart uploads, kill -9 and restart with nothing lost, delivery at SIGTERM,
//! and keys that never collide.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::aws::Moto;
use common::{Router, TempDir, mp, wait_until};

const AWS_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

fn config(endpoint: &str, store: &std::path::Path, extra: &str) -> String {
    format!(
        "
[SERVICE]
    Flush 0.2
    Grace 10
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   0
[OUTPUT]
    Name      s3
    Match     *
    bucket    sink
    region    us-east-1
    endpoint  {endpoint}
    store_dir {}
{extra}
",
        store.display()
    )
}

fn send(router: &Router, tag: &str, from: usize, n: usize, size: usize) {
    let mut s = router.tcp(0);
    let pad = "p".repeat(size);
    for i in from..from + n {
        let seq = i.to_string();
        s.write_all(&mp::message(
            tag,
            1_700_000_000,
            0,
            &[("seq", &seq), ("pad", &pad)],
        ))
        .unwrap();
    }
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The `seq` of every record in the bucket (objects gunzipped when named .gz).
fn seqs(moto: &Moto) -> Vec<usize> {
    let mut all = Vec::new();
    for (key, body) in moto.objects("sink") {
        let body = if key.ends_with(".gz") {
            gunzip(&body)
        } else {
            body
        };
        for line in String::from_utf8(body).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            all.push(v["seq"].as_str().unwrap().parse().unwrap());
        }
    }
    all.sort_unstable();
    all
}

fn all_once(moto: &Moto, n: usize) {
    let mut got = Vec::new();
    wait_until(Duration::from_secs(60), || {
        got = seqs(moto);
        got.len() >= n
    });
    assert_eq!(got, (0..n).collect::<Vec<_>>(), "every record exactly once");
}

#[test]
fn key_format_gzip_and_upload_timeout() {
    let moto = Moto::start();
    moto.setup("sink", None);
    let store = TempDir::new();
    let router = Router::start_with(
        &config(
            &moto.endpoint,
            &store.0,
            "    s3_key_format /logs/$TAG[1]/%Y/%m/%d/%H-%M-%S-$UUID\n    compression gzip\n    upload_timeout 1s\n    json_date_key false",
        ),
        1,
        AWS_ENV,
    );
    send(&router, "app.web", 0, 100, 10);
    all_once(&moto, 100);
    let objects = moto.objects("sink");
    assert_eq!(objects.len(), 1);
    let (key, body) = &objects[0];
    assert!(
        key.starts_with("logs/web/2023/11/14/22-13-20-") && key.ends_with(".gz"),
        "{key}"
    );
    let first = String::from_utf8(gunzip(body))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        first,
        format!(r#"{{"seq":"0","pad":"{}"}}"#, "p".repeat(10))
    );
}

#[test]
fn size_rotation_multipart_and_keys_that_never_collide() {
    let moto = Moto::start();
    moto.setup("sink", None);
    let store = TempDir::new();
    // 12,000 records of ~1 KB: files sealed at 6 MB go up as multipart (5 MB parts); the same
    // tag, second and key format for every file, yet every object keeps its own key.
    let router = Router::start_with(
        &config(
            &moto.endpoint,
            &store.0,
            "    s3_key_format /$TAG/%Y%m%d%H%M%S\n    total_file_size 6M\n    upload_timeout 2s",
        ),
        1,
        AWS_ENV,
    );
    send(&router, "big", 0, 12_000, 1000);
    all_once(&moto, 12_000);
    let objects = moto.objects("sink");
    assert!(objects.len() >= 2, "{} objects", objects.len());
    assert!(
        objects.iter().any(|(_, b)| b.len() > 5 * 1024 * 1024),
        "a multipart-sized object"
    );
    assert!(
        router.logs().iter().all(|l| !l.contains("failed")),
        "{}",
        router.logs().join("\n")
    );
}

#[test]
fn kill_9_then_restart_uploads_what_was_buffered() {
    let moto = Moto::start();
    moto.setup("sink", None);
    let store = TempDir::new();
    let conf = config(&moto.endpoint, &store.0, "    upload_timeout 1h");
    let mut router = Router::start_with(&conf, 1, AWS_ENV);
    send(&router, "app", 0, 500, 100);
    // Wait until everything is in buffer files, then die without a chance to upload.
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_dir(store.path("sink"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "data"))
                    .map(|e| {
                        std::fs::read_to_string(e.path())
                            .unwrap_or_default()
                            .lines()
                            .count()
                    })
                    .sum::<usize>()
            })
            .unwrap_or(0)
            == 500
    }));
    // SAFETY: killing our own child process.
    unsafe { libc::kill(router.pid(), libc::SIGKILL) };
    let _ = router.stop(Duration::from_secs(5));
    assert!(moto.objects("sink").is_empty());
    let again = Router::start_with(&conf, 1, AWS_ENV);
    all_once(&moto, 500);
    assert!(again.wait_log(
        "buffered files from an earlier run will be uploaded",
        Duration::from_secs(1)
    ));
}

#[test]
fn sigterm_uploads_everything_buffered() {
    let moto = Moto::start();
    moto.setup("sink", None);
    let store = TempDir::new();
    let mut router = Router::start_with(
        &config(
            &moto.endpoint,
            &store.0,
            "    upload_timeout 1h\n    use_put_object On",
        ),
        1,
        AWS_ENV,
    );
    send(&router, "app", 0, 300, 100);
    send(&router, "other", 300, 200, 100);
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        moto.objects("sink").is_empty(),
        "nothing uploaded before the timeout"
    );
    assert!(router.stop(Duration::from_secs(15)).success());
    assert_eq!(seqs(&moto), (0..500).collect::<Vec<_>>());
    assert_eq!(moto.objects("sink").len(), 2, "one object per tag");
}

#[test]
fn index_keys_keep_counting_across_restarts() {
    let moto = Moto::start();
    moto.setup("sink", None);
    let store = TempDir::new();
    let conf = config(
        &moto.endpoint,
        &store.0,
        "    s3_key_format /part-$INDEX\n    upload_timeout 1h",
    );
    for run in 0..2 {
        let mut router = Router::start_with(&conf, 1, AWS_ENV);
        send(&router, "app", run * 10, 10, 10);
        std::thread::sleep(Duration::from_millis(500));
        assert!(router.stop(Duration::from_secs(15)).success());
    }
    let mut keys: Vec<String> = moto.objects("sink").into_iter().map(|(k, _)| k).collect();
    keys.sort();
    assert_eq!(keys, ["part-0", "part-1"]);
    assert_eq!(seqs(&moto), (0..20).collect::<Vec<_>>());
}
