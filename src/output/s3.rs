//! `s3`: writes records to Amazon S3 objects, buffering them in files under `store_dir`.
//!
//! A flush appends the events as JSON lines to the tag's buffer file, so once it returns the
//! data is on disk. A file is sealed when it reaches `total_file_size` or has been open for
//! `upload_timeout`, and a background uploader sends sealed files: PutObject, or a multipart
//! upload in `upload_chunk_size` parts for files of 5 MiB or more (unless `use_put_object`).
//! Files left by a crash or a stop are uploaded when the router starts again; at shutdown every
//! file is sealed and uploaded (within `Grace`). A failed upload keeps its file and is retried
//! with backoff; `store_dir_limit_size` bounds the disk used, and a full store makes flushes
//! wait (backpressure) rather than drop.
//!
//! Keys come from `s3_key_format` with `$TAG`, `$TAG[n]` (split on
//! `s3_key_format_tag_delimiters`), `$UUID`, `$INDEX` and strftime of the file's first record
//! time. Without `$UUID` or `$INDEX` a random suffix is added, so two uploads never collide.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::{Mutex, Notify, OnceCell};

use super::aws::AwsSettings;
use super::{Chunk, FlushError, JsonRecord, Output};
use crate::aws::{self, Request, xml_escape, xml_text};
use crate::config::{ConfigError, Section, Service};
use crate::engine::metrics::OutputMetrics;
use crate::msgpack::ValueRef;
use crate::record::{EventTime, Tag};

const MIN_PART: u64 = 5 * 1024 * 1024;

/// Settings of an S3 output.
struct Settings {
    name: String,
    bucket: String,
    key_format: String,
    tag_delimiters: String,
    total_file_size: u64,
    upload_chunk_size: u64,
    upload_timeout: Duration,
    use_put_object: bool,
    gzip: bool,
    content_type: Option<String>,
    storage_class: Option<String>,
    canned_acl: Option<String>,
    log_key: Option<String>,
    json: JsonRecord,
    dir: PathBuf,
    dir_limit: u64,
}

/// The file a tag's records are being appended to.
struct Active {
    path: PathBuf,
    size: u64,
    opened: Instant,
}

struct Inner {
    s: Settings,
    aws: AwsSettings,
    client: OnceCell<aws::Client>,
    active: Mutex<HashMap<Tag, Active>>,
    /// Bytes in the store (active and sealed files).
    stored: AtomicU64,
    wake: Notify,
    index: AtomicU64,
    metrics: Arc<OutputMetrics>,
}

pub struct S3 {
    inner: Arc<Inner>,
    uploader: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl S3 {
    pub fn from_section(
        section: &Section,
        service: &Service,
        name: &str,
        metrics: Arc<OutputMetrics>,
    ) -> Result<Self, ConfigError> {
        let bucket = section
            .str("bucket")
            .ok_or_else(|| ConfigError::new(&section.loc, "s3 output needs 'bucket'"))?
            .to_string();
        let total_file_size = section
            .size("total_file_size")?
            .unwrap_or(100_000_000)
            .max(1);
        let upload_chunk_size = section.size("upload_chunk_size")?.unwrap_or(5_242_880);
        if upload_chunk_size < MIN_PART {
            let loc = section
                .entry("upload_chunk_size")
                .map_or(&section.loc, |e| &e.loc);
            return Err(ConfigError::new(
                loc,
                format!("upload_chunk_size must be at least {MIN_PART} bytes (S3's smallest part)"),
            ));
        }
        let gzip = super::gzip_option(section)?;
        let key_format = section
            .str("s3_key_format")
            .unwrap_or("/fluent-bit-logs/$TAG/%Y/%m/%d/%H/%M/%S")
            .to_string();
        let s = Settings {
            name: name.to_string(),
            dir: PathBuf::from(section.str("store_dir").unwrap_or("/tmp/fluent-bit/s3"))
                .join(&bucket),
            bucket,
            tag_delimiters: section
                .str("s3_key_format_tag_delimiters")
                .unwrap_or(".")
                .to_string(),
            total_file_size,
            upload_chunk_size,
            upload_timeout: section.duration("upload_timeout", Duration::from_secs(600))?,
            use_put_object: section.bool("use_put_object", false)?,
            gzip,
            content_type: section.str("content_type").map(str::to_string),
            storage_class: section.str("storage_class").map(str::to_string),
            canned_acl: section.str("canned_acl").map(str::to_string),
            log_key: section.str("log_key").map(str::to_string),
            json: JsonRecord::from_section(section, "date", service)?,
            dir_limit: section.size("store_dir_limit_size")?.unwrap_or(0),
            key_format,
        };
        // The key format must render: check it now, not at the first upload.
        render_key(&s, "app.web", EventTime::default(), 0).map_err(|m| {
            let loc = section
                .entry("s3_key_format")
                .map_or(&section.loc, |e| &e.loc);
            ConfigError::new(loc, format!("s3_key_format: {m}"))
        })?;
        for key in [
            "static_file_path",
            "send_content_md5",
            "preserve_data_ordering",
            "retry_exhausted_action",
            "format",
        ] {
            section.all(key).for_each(drop);
        }
        Ok(S3 {
            inner: Arc::new(Inner {
                s,
                aws: AwsSettings::from_section(section, &format!("output:s3:{name}"))?,
                client: OnceCell::new(),
                active: Mutex::new(HashMap::new()),
                stored: AtomicU64::new(0),
                wake: Notify::new(),
                index: AtomicU64::new(0),
                metrics,
            }),
            uploader: std::sync::Mutex::new(None),
            stop: tokio_util::sync::CancellationToken::new(),
        })
    }
}

/// The object key for a file of `tag` whose first record is at `time`.
fn render_key(s: &Settings, tag: &str, time: EventTime, index: u64) -> Result<String, String> {
    let parts: Vec<&str> = tag.split(|c| s.tag_delimiters.contains(c)).collect();
    let mut key = s.key_format.clone();
    for (i, p) in parts.iter().enumerate().rev() {
        key = key.replace(&format!("$TAG[{i}]"), p);
    }
    let unique = key.contains("$UUID") || key.contains("$INDEX");
    key = key
        .replace("$TAG", tag)
        .replace("$UUID", &random_id())
        .replace("$INDEX", &index.to_string());
    if key.contains("$TAG[") {
        return Err(format!(
            "'{}' uses a $TAG[n] part the tag does not have",
            s.key_format
        ));
    }
    let items = chrono::format::StrftimeItems::new(&key)
        .parse()
        .map_err(|_| format!("'{}' is not a valid strftime format", s.key_format))?;
    let dt = chrono::DateTime::from_timestamp(time.secs(), time.subsec_nanos()).unwrap_or_default();
    let mut key = dt.format_with_items(items.into_iter()).to_string();
    if !unique {
        key.push('-');
        key.push_str(&random_id());
    }
    if s.gzip && !key.ends_with(".gz") {
        key.push_str(".gz");
    }
    Ok(key.trim_start_matches('/').to_string())
}

fn random_id() -> String {
    (0..8)
        .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
        .collect()
}

/// What a buffer file holds, kept beside it so a restart can upload it under the right key.
fn meta_path(data: &Path) -> PathBuf {
    data.with_extension("meta")
}

impl Inner {
    async fn client(&self) -> Result<&aws::Client, String> {
        self.client
            .get_or_try_init(|| async {
                let path_style = self.path_style();
                let bucket = &self.s.bucket;
                self.aws
                    .client(aws::Service::S3, |region| {
                        let base = aws::endpoint("s3", region);
                        if path_style {
                            base
                        } else {
                            base.replacen("https://", &format!("https://{bucket}."), 1)
                        }
                    })
                    .map_err(|e| e.to_string())
            })
            .await
    }

    /// Virtual-hosted style on AWS (`bucket.s3.region...`); path style for a custom endpoint,
    /// and for bucket names with dots, which a TLS certificate cannot name as hosts.
    fn path_style(&self) -> bool {
        self.aws.endpoint.is_some() || self.s.bucket.contains('.')
    }

    /// The request path of object `key`, with the bucket for path-style endpoints.
    fn object_path(&self, key: &str) -> String {
        let key = utf8_percent_encode(key, KEY_SET);
        if self.path_style() {
            format!("/{}/{key}", self.s.bucket)
        } else {
            format!("/{key}")
        }
    }

    /// The object headers of PutObject and CreateMultipartUpload.
    fn object_headers(&self, mut req: Request) -> Request {
        if let Some(t) = &self.s.content_type {
            req = req.header("content-type", t.clone());
        }
        if self.s.gzip {
            req = req.header("content-encoding", "gzip");
        }
        if let Some(c) = &self.s.storage_class {
            req = req.header("x-amz-storage-class", c.clone());
        }
        if let Some(a) = &self.s.canned_acl {
            req = req.header("x-amz-acl", a.clone());
        }
        req
    }

    /// Appends `lines` to the tag's buffer file, sealing it when full or old.
    async fn append(&self, tag: &Tag, first_time: EventTime, lines: &[u8]) -> std::io::Result<()> {
        let mut active = self.active.lock().await;
        if !active.contains_key(tag) {
            tokio::fs::create_dir_all(&self.s.dir).await?;
            let base = format!("{}-{}", first_time.as_nanos(), random_id());
            let path = self.s.dir.join(format!("{base}.data"));
            let meta =
                serde_json::json!({"tag": &**tag, "time": first_time.as_nanos()}).to_string();
            tokio::fs::write(meta_path(&path), meta).await?;
            active.insert(
                tag.clone(),
                Active {
                    path,
                    size: 0,
                    opened: Instant::now(),
                },
            );
        }
        let Some(file) = active.get_mut(tag) else {
            return Ok(());
        };
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file.path)
            .await?;
        f.write_all(lines).await?;
        f.flush().await?;
        file.size += lines.len() as u64;
        self.stored.fetch_add(lines.len() as u64, Ordering::Relaxed);
        if file.size >= self.s.total_file_size {
            active.remove(tag);
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Seals files open longer than `upload_timeout` (all of them when `all`).
    async fn seal_expired(&self, all: bool) {
        let mut active = self.active.lock().await;
        active.retain(|_, f| !all && f.opened.elapsed() < self.s.upload_timeout);
    }

    /// Buffer files that are not being appended to, oldest first.
    async fn sealed(&self) -> Vec<PathBuf> {
        // Files are created under this lock: holding it while listing, none can be half-made.
        let active = self.active.lock().await;
        let open: Vec<PathBuf> = active.values().map(|f| f.path.clone()).collect();
        let Ok(mut dir) = tokio::fs::read_dir(&self.s.dir).await else {
            return Vec::new();
        };
        let mut files = Vec::new();
        while let Ok(Some(e)) = dir.next_entry().await {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "data") && !open.contains(&p) {
                files.push(p);
            }
        }
        files.sort();
        files
    }

    /// Uploads every sealed file; returns whether all went up.
    async fn upload_sealed(&self) -> bool {
        let mut ok = true;
        for path in self.sealed().await {
            match self.upload(&path).await {
                Ok(key) => {
                    let size = tokio::fs::metadata(&path)
                        .await
                        .map(|m| m.len())
                        .unwrap_or(0);
                    let _ = tokio::fs::remove_file(meta_path(&path)).await;
                    let _ = tokio::fs::remove_file(&path).await;
                    self.stored.fetch_sub(
                        size.min(self.stored.load(Ordering::Relaxed)),
                        Ordering::Relaxed,
                    );
                    tracing::info!(
                        "[output:s3:{}] uploaded s3://{}/{key} ({size} bytes)",
                        self.s.name,
                        self.s.bucket
                    );
                }
                Err(e) => {
                    ok = false;
                    self.metrics.errors.inc();
                    tracing::warn!(
                        "[output:s3:{}] upload of {} failed, will retry: {e}",
                        self.s.name,
                        path.display()
                    );
                }
            }
        }
        ok
    }

    async fn upload(&self, path: &Path) -> Result<String, String> {
        let meta: serde_json::Value = tokio::fs::read(meta_path(path))
            .await
            .ok()
            .and_then(|m| serde_json::from_slice(&m).ok())
            .unwrap_or_default();
        let tag = meta["tag"].as_str().unwrap_or("unknown");
        let time = EventTime::from_nanos(meta["time"].as_i64().unwrap_or(0));
        let index = self.index.fetch_add(1, Ordering::Relaxed);
        // Persisted, so `$INDEX` keys of a later run do not overwrite this run's objects.
        tokio::fs::write(self.s.dir.join("index"), (index + 1).to_string())
            .await
            .map_err(|e| format!("saving $INDEX in {}: {e}", self.s.dir.display()))?;
        let key = render_key(&self.s, tag, time, index)?;
        let client = self.client().await?;
        // Compressed files are written beside the buffer file, so memory stays one part.
        let source = if self.s.gzip {
            let (from, to) = (path.to_path_buf(), path.with_extension("gz"));
            let target = to.clone();
            tokio::task::spawn_blocking(move || gzip_file(&from, &target))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("compressing {}: {e}", path.display()))?;
            to
        } else {
            path.to_path_buf()
        };
        let result = self.send_file(client, &source, &key).await;
        if self.s.gzip {
            let _ = tokio::fs::remove_file(&source).await;
        }
        result.map(|()| key)
    }

    async fn send_file(
        &self,
        client: &aws::Client,
        source: &Path,
        key: &str,
    ) -> Result<(), String> {
        let size = tokio::fs::metadata(source)
            .await
            .map_err(|e| e.to_string())?
            .len();
        if size == 0 {
            return Ok(());
        }
        let err = |e: &dyn std::fmt::Display| {
            format!(
                "s3://{}/{key} at {}: {e}",
                self.s.bucket,
                self.aws.describe()
            )
        };
        let path = self.object_path(key);
        // Bodies are streamed from the file (UNSIGNED-PAYLOAD): memory stays flat whatever the
        // file or part size.
        if self.s.use_put_object || size < MIN_PART {
            let req = file_range(source, &path, 0, size)
                .await
                .map_err(|e| err(&e))?;
            client
                .send(self.object_headers(req))
                .await
                .map_err(|e| err(&e))?;
            return Ok(());
        }
        let create = Request::new(
            reqwest::Method::POST,
            format!("{path}?uploads"),
            bytes::Bytes::new(),
        );
        let answer = client
            .send(self.object_headers(create))
            .await
            .map_err(|e| err(&e))?;
        let id = xml_text(&String::from_utf8_lossy(&answer.body), "UploadId")
            .ok_or_else(|| err(&"CreateMultipartUpload answered no UploadId"))?;
        let id_q = utf8_percent_encode(&id, NON_ALPHANUMERIC).to_string();
        let result: Result<(), String> = async {
            let mut parts = String::new();
            let mut number = 0;
            let mut offset = 0;
            while offset < size {
                let len = self.s.upload_chunk_size.min(size - offset);
                number += 1;
                let mut req = file_range(source, &path, offset, len)
                    .await
                    .map_err(|e| err(&e))?;
                req.path = format!("{path}?partNumber={number}&uploadId={id_q}");
                let out = client.send(req).await.map_err(|e| err(&e))?;
                let etag = out
                    .headers
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                parts.push_str(&format!(
                    "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
                    xml_escape(etag)
                ));
                offset += len;
            }
            let body = format!(
                "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{parts}</CompleteMultipartUpload>"
            );
            let complete = Request::new(
                reqwest::Method::POST,
                format!("{path}?uploadId={id_q}"),
                body.into(),
            )
            .header("content-type", "application/xml");
            let answer = client.send(complete).await.map_err(|e| err(&e))?;
            // S3 can answer 200 and still report an error in the body.
            let text = String::from_utf8_lossy(&answer.body);
            if text.contains("<Error>") {
                return Err(err(&format!(
                    "CompleteMultipartUpload: {}: {}",
                    xml_text(&text, "Code").unwrap_or_default(),
                    xml_text(&text, "Message").unwrap_or_default()
                )));
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            let abort = Request::new(
                reqwest::Method::DELETE,
                format!("{path}?uploadId={id_q}"),
                bytes::Bytes::new(),
            );
            let _ = client.send(abort).await;
        }
        result
    }

    /// Uploads sealed files when woken or every second, with backoff after failures.
    async fn run_uploader(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut backoff = Duration::from_secs(1);
        loop {
            self.seal_expired(false).await;
            let ok = self.upload_sealed().await;
            let wait = if ok {
                backoff = Duration::from_secs(1);
                Duration::from_secs(1).min(self.s.upload_timeout)
            } else {
                backoff = (backoff * 2).min(Duration::from_secs(60));
                backoff
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// A PUT to `path` of `len` bytes of the file from `offset`, streamed.
async fn file_range(source: &Path, path: &str, offset: u64, len: u64) -> std::io::Result<Request> {
    let mut f = tokio::fs::File::open(source).await?;
    f.seek(std::io::SeekFrom::Start(offset)).await?;
    Ok(Request::stream(path, f.take(len), len))
}

/// Key characters sent as they are: RFC 3986's unreserved ones and `/`.
const KEY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Compresses `from` into `to` as one gzip member, streaming.
fn gzip_file(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut input = std::fs::File::open(from)?;
    let mut e =
        flate2::write::GzEncoder::new(std::fs::File::create(to)?, flate2::Compression::default());
    std::io::copy(&mut input, &mut e)?;
    e.finish()?.sync_all()
}

#[async_trait]
impl Output for S3 {
    /// The buffer files and the `$INDEX` counter in `store_dir` belong to one instance at a
    /// time.
    fn waits_for_predecessor(&self) -> bool {
        true
    }

    async fn start(&self) {
        if let Ok(text) = tokio::fs::read_to_string(self.inner.s.dir.join("index")).await
            && let Ok(n) = text.trim().parse()
        {
            self.inner.index.store(n, Ordering::Relaxed);
        }
        // Files left by an earlier run are sealed already: the uploader sends them first.
        let leftovers = self.inner.sealed().await;
        if !leftovers.is_empty() {
            tracing::info!(
                "[output:s3:{}] {} buffered files from an earlier run will be uploaded",
                self.inner.s.name,
                leftovers.len()
            );
            for p in &leftovers {
                let size = tokio::fs::metadata(p).await.map(|m| m.len()).unwrap_or(0);
                self.inner.stored.fetch_add(size, Ordering::Relaxed);
            }
        }
        if let Err(e) = self.inner.client().await {
            tracing::error!(
                "[output:s3:{}] {e}; records stay buffered and uploads are retried",
                self.inner.s.name
            );
        }
        let task = tokio::spawn(self.inner.clone().run_uploader(self.stop.clone()));
        if let Ok(mut u) = self.uploader.lock() {
            *u = Some(task);
        }
    }

    async fn flush(&self, chunk: &mut Chunk) -> Result<(), FlushError> {
        let s = &self.inner.s;
        for batch in chunk.batches() {
            let mut lines = Vec::with_capacity(batch.bytes * 2);
            for event in &batch.events {
                match &s.log_key {
                    Some(key) => match event.get(key) {
                        Some(ValueRef::Str(v) | ValueRef::Bin(v)) => lines.extend_from_slice(v),
                        Some(_) => {
                            let mut f = event.fields();
                            while let Some(Ok((k, raw))) = f.next_raw() {
                                if k == key.as_bytes() {
                                    s.json.style.value(&mut lines, raw);
                                }
                            }
                        }
                        None => continue,
                    },
                    None => s.json.write(&mut lines, event),
                }
                lines.push(b'\n');
            }
            if s.dir_limit > 0
                && self.inner.stored.load(Ordering::Relaxed) + lines.len() as u64 > s.dir_limit
            {
                return Err(FlushError::Retry(format!(
                    "store_dir {} is full ({} of {} bytes): waiting for uploads",
                    s.dir.display(),
                    self.inner.stored.load(Ordering::Relaxed),
                    s.dir_limit
                )));
            }
            let first = batch.events.first().map_or_else(EventTime::now, |e| e.time);
            self.inner
                .append(&batch.tag, first, &lines)
                .await
                .map_err(|e| {
                    FlushError::Retry(format!(
                        "writing the buffer file in {}: {e}",
                        s.dir.display()
                    ))
                })?;
        }
        Ok(())
    }

    async fn shutdown(&self) {
        self.stop.cancel();
        let task = self.uploader.lock().ok().and_then(|mut u| u.take());
        if let Some(t) = task {
            let _ = t.await;
        }
        self.inner.seal_expired(true).await;
        let mut wait = Duration::from_millis(200);
        // Grace bounds this: the engine stops waiting when it runs out.
        while !self.inner.upload_sealed().await {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Location, SectionKind};

    fn s3(lines: &[(&str, &str)]) -> Result<S3, ConfigError> {
        let loc = Location::command_line();
        let mut s = Section::new(SectionKind::Output, loc.clone());
        s.push("Name", "s3", loc.clone());
        for (k, v) in lines {
            s.push(*k, *v, loc.clone());
        }
        S3::from_section(&s, &Service::default(), "s3.0", Arc::default())
    }

    #[test]
    fn keys_follow_the_format_and_never_collide() {
        let out = s3(&[
            ("bucket", "b"),
            ("s3_key_format", "/logs/$TAG[1]/$TAG/%Y/%m/%d/%H%M%S"),
        ])
        .unwrap();
        let t = EventTime::from_parts(1_700_000_000, 0);
        let k1 = render_key(&out.inner.s, "app.web", t, 0).unwrap();
        let k2 = render_key(&out.inner.s, "app.web", t, 0).unwrap();
        assert!(
            k1.starts_with("logs/web/app.web/2023/11/14/221320-"),
            "{k1}"
        );
        assert_ne!(k1, k2);
        let out = s3(&[
            ("bucket", "b"),
            ("s3_key_format", "x/$INDEX"),
            ("compression", "gzip"),
        ])
        .unwrap();
        assert_eq!(render_key(&out.inner.s, "t", t, 7).unwrap(), "x/7.gz");
    }

    #[test]
    fn bad_settings_are_config_errors() {
        assert!(s3(&[]).is_err());
        assert!(s3(&[("bucket", "b"), ("upload_chunk_size", "1M")]).is_err());
        assert!(s3(&[("bucket", "b"), ("compression", "zstd")]).is_err());
        assert!(s3(&[("bucket", "b"), ("s3_key_format", "/x/%Q")]).is_err());
    }
}
