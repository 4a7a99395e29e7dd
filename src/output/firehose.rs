//! `firehose` / `kinesis_firehose`: sends records to an Amazon Kinesis Data Firehose delivery
//! stream with PutRecordBatch.
//!
//! Each record is the event as JSON followed by `\n` (or only the `log_key` field's value, or only
//! the `data_keys` fields), optionally with the time under `time_key`, optionally gzip-compressed
//! one by one, optionally packed several to a Firehose record (`simple_aggregation`). Calls
//! respect Firehose's limits: 500 records and 4 MiB a call, 1,024,000 bytes a record; a bigger
//! record is dropped (or its `log` field truncated with `truncate_records On`), logged with tag
//! and size, and counted, and the rest goes on.
//!
//! When Firehose rejects some records of a call (`FailedPutCount`), only those are sent again,
//! after a short backoff; records it accepted are marked in the chunk, so even a retry of the
//! whole flush by the engine does not send them twice (Fluent Bit resends the whole chunk).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::aws::AwsSettings;
use super::format::TimeKeyFormat;
use super::{Chunk, FlushError, Output};
use crate::aws::{self, Request};
use crate::config::{ConfigError, Section, Service};
use crate::engine::metrics::{DropReason, OutputMetrics};
use crate::msgpack::json::JsonStyle;
use crate::msgpack::{Reader, ValueRef};
use crate::record::Event;

/// Firehose's limits.
const MAX_RECORDS: usize = 500;
const MAX_RECORD_BYTES: usize = 1_024_000;
const MAX_CALL_BYTES: usize = 4 * 1024 * 1024;
/// Times a call's rejected records are resent within one flush before the engine's retry.
const PARTIAL_RETRIES: u32 = 4;

pub struct Firehose {
    name: String,
    stream: String,
    aws: AwsSettings,
    client: OnceCell<aws::Client>,
    json: JsonStyle,
    time_key: Option<(String, TimeKeyFormat)>,
    log_key: Option<String>,
    data_keys: Vec<String>,
    gzip: bool,
    aggregate: bool,
    truncate: bool,
    metrics: Arc<OutputMetrics>,
}

impl Firehose {
    pub fn from_section(
        section: &Section,
        service: &Service,
        name: &str,
        metrics: Arc<OutputMetrics>,
    ) -> Result<Self, ConfigError> {
        let stream = section
            .str("delivery_stream")
            .ok_or_else(|| {
                ConfigError::new(&section.loc, "firehose output needs 'delivery_stream'")
            })?
            .to_string();
        let time_key = match section.str("time_key") {
            None => None,
            Some(k) => {
                let format = section
                    .str("time_key_format")
                    .unwrap_or("%Y-%m-%dT%H:%M:%S");
                let f = TimeKeyFormat::new(format).map_err(|m| {
                    let loc = section
                        .entry("time_key_format")
                        .map_or(&section.loc, |e| &e.loc);
                    ConfigError::new(loc, format!("time_key_format: {m}"))
                })?;
                Some((k.to_string(), f))
            }
        };
        let gzip = super::gzip_option(section)?;
        Ok(Firehose {
            name: name.to_string(),
            stream,
            aws: AwsSettings::from_section(section, &format!("output:firehose:{name}"))?,
            client: OnceCell::new(),
            json: JsonStyle {
                escape_unicode: service.json_escape_unicode,
            },
            time_key,
            log_key: section.str("log_key").map(str::to_string),
            data_keys: section
                .str("data_keys")
                .map(|k| {
                    k.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            gzip,
            aggregate: section.bool("simple_aggregation", false)?,
            truncate: section.bool("truncate_records", false)?,
            metrics,
        })
    }

    async fn client(&self) -> Result<&aws::Client, FlushError> {
        self.client
            .get_or_try_init(|| async {
                self.aws
                    .client(aws::Service::Firehose, |region| {
                        aws::endpoint("firehose", region)
                    })
                    .map_err(|e| FlushError::Retry(e.to_string()))
            })
            .await
    }

    /// One event as a Firehose record (before compression): JSON (or the `log_key` value) + `\n`.
    fn encode(&self, event: &Event, out: &mut Vec<u8>) {
        if let Some(key) = &self.log_key {
            if let Some(raw) = raw_value(event, key.as_bytes()) {
                match Reader::new(raw).value() {
                    Ok(ValueRef::Str(s) | ValueRef::Bin(s)) => out.extend_from_slice(s),
                    _ => self.json.value(out, raw),
                }
            }
        } else {
            out.push(b'{');
            let mut comma = false;
            if self.data_keys.is_empty() {
                self.json.members(out, event.fields(), false);
                comma = out.len() > 1;
            } else {
                let mut f = event.fields();
                while let Some(Ok((k, v))) = f.next_raw() {
                    if !self.data_keys.iter().any(|d| d.as_bytes() == k) {
                        continue;
                    }
                    if comma {
                        out.push(b',');
                    }
                    comma = true;
                    self.json.str(out, k);
                    out.push(b':');
                    self.json.value(out, v);
                }
            }
            if let Some((key, format)) = &self.time_key {
                if comma {
                    out.push(b',');
                }
                self.json.str(out, key.as_bytes());
                out.push(b':');
                self.json.str(out, format.format(event.time).as_bytes());
            }
            out.push(b'}');
        }
        out.push(b'\n');
    }
}

/// The encoded value of the last field `key` of `event` (a later duplicate wins).
fn raw_value<'a>(event: &'a Event, key: &[u8]) -> Option<&'a [u8]> {
    let mut f = event.fields();
    let mut found = None;
    while let Some(Ok((k, v))) = f.next_raw() {
        if k == key {
            found = Some(v);
        }
    }
    found
}

/// A Firehose record and the chunk events it carries.
struct Outgoing {
    data: Vec<u8>,
    events: Events,
}

/// The chunk events of one Firehose record: one, or several with `simple_aggregation` (one
/// allocation less per record in the common case).
enum Events {
    One(usize),
    Many(Vec<usize>),
}

impl Events {
    fn push(&mut self, i: usize) {
        match self {
            Events::One(first) => *self = Events::Many(vec![*first, i]),
            Events::Many(v) => v.push(i),
        }
    }

    fn as_slice(&self) -> &[usize] {
        match self {
            Events::One(i) => std::slice::from_ref(i),
            Events::Many(v) => v,
        }
    }
}

/// Bytes a record adds to a PutRecordBatch request body (base64 plus JSON framing).
fn call_bytes(data_len: usize) -> usize {
    data_len.div_ceil(3) * 4 + 16
}

impl Firehose {
    /// Encodes the chunk's pending events into Firehose records, dropping (or truncating)
    /// the ones over the record limit.
    fn records(&self, chunk: &mut Chunk) -> Vec<Outgoing> {
        let mut out: Vec<Outgoing> = Vec::new();
        let mut dropped = Vec::new();
        // Records of a chunk are alike: each is encoded straight into a buffer of the size of
        // the one before.
        let mut size_hint = 0;
        for (i, tag, event) in chunk.pending() {
            let mut data = Vec::with_capacity(size_hint);
            self.encode(event, &mut data);
            if data.len() <= 1 {
                // Nothing to send (an empty log_key value): Fluent Bit skips these too.
                dropped.push((i, None));
                continue;
            }
            size_hint = data.len() + data.len() / 8;
            if self.gzip {
                data = super::gzip(&data);
            }
            if data.len() > MAX_RECORD_BYTES
                && self.truncate
                && let Some(t) = self.truncated(event, data.len())
            {
                data = t;
            }
            if data.len() > MAX_RECORD_BYTES {
                tracing::warn!(
                    "[output:firehose:{}] record of tag '{tag}' is {} bytes, over Firehose's {MAX_RECORD_BYTES}-byte limit: dropped",
                    self.name,
                    data.len()
                );
                dropped.push((i, Some(DropReason::Oversize)));
                continue;
            }
            match out.last_mut() {
                Some(last)
                    if self.aggregate
                        && last.data.len() + data.len() <= MAX_RECORD_BYTES
                        && !self.gzip =>
                {
                    last.data.extend_from_slice(&data);
                    last.events.push(i);
                }
                _ => out.push(Outgoing {
                    data,
                    events: Events::One(i),
                }),
            }
        }
        for (i, reason) in dropped {
            chunk.mark_dropped(i);
            if let Some(r) = reason {
                self.metrics.dropped.add(r, 1);
            }
        }
        out
    }

    /// The event re-encoded with its `log` (or `log_key`) value cut so the record fits.
    fn truncated(&self, event: &Event, size: usize) -> Option<Vec<u8>> {
        let key = self.log_key.as_deref().unwrap_or("log");
        let Some(ValueRef::Str(text)) = event.get(key) else {
            return None;
        };
        let mut keep = text.len().saturating_sub(size - MAX_RECORD_BYTES + 64);
        for _ in 0..4 {
            while keep > 0 && std::str::from_utf8(&text[..keep]).is_err() {
                keep -= 1;
            }
            let mut b = bytes::BytesMut::new();
            let mut rb = crate::record::RecordBuilder::new(&mut b);
            let mut f = event.fields();
            while let Some(Ok((k, v))) = f.next_raw() {
                if k == key.as_bytes() {
                    rb.str(k, &text[..keep]);
                } else {
                    rb.raw(k, v);
                }
            }
            let short = rb.finish_event(event.time);
            let mut buf = Vec::new();
            self.encode(&short, &mut buf);
            let data = if self.gzip { super::gzip(&buf) } else { buf };
            if data.len() <= MAX_RECORD_BYTES {
                self.metrics.truncated.inc();
                return Some(data);
            }
            keep = keep.saturating_sub(data.len() - MAX_RECORD_BYTES + 1024);
        }
        None
    }

    /// The PutRecordBatch request body, written once: each record base64-encoded in place.
    fn body(&self, batch: &[Outgoing]) -> Vec<u8> {
        let size = 64
            + self.stream.len()
            + batch
                .iter()
                .map(|o| call_bytes(o.data.len()))
                .sum::<usize>();
        let mut b = Vec::with_capacity(size);
        b.extend_from_slice(b"{\"DeliveryStreamName\":");
        self.json.str(&mut b, self.stream.as_bytes());
        b.extend_from_slice(b",\"Records\":[");
        for (i, o) in batch.iter().enumerate() {
            if i > 0 {
                b.push(b',');
            }
            b.extend_from_slice(b"{\"Data\":\"");
            // SIMD base64 (the crate is in the tree already, through aws-sigv4's types).
            let at = b.len();
            let b64 = base64_simd::STANDARD;
            b.resize(at + b64.encoded_length(o.data.len()), 0);
            let n = b64
                .encode(&o.data, base64_simd::Out::from_slice(&mut b[at..]))
                .len();
            b.truncate(at + n);
            b.extend_from_slice(b"\"}");
        }
        b.extend_from_slice(b"]}");
        b
    }

    /// Sends `batch` until every record is accepted; rejected records are resent alone.
    async fn put(
        &self,
        client: &aws::Client,
        mut batch: Vec<Outgoing>,
        chunk: &mut Chunk,
    ) -> Result<(), FlushError> {
        let mut attempt = 0;
        loop {
            let req = Request::new(reqwest::Method::POST, "/", self.body(&batch).into())
                .header("content-type", "application/x-amz-json-1.1")
                .header("x-amz-target", "Firehose_20150804.PutRecordBatch");
            let reply = client.send(req).await.map_err(|e| self.classify(e))?;
            let reply: PutReply = serde_json::from_slice(&reply.body).map_err(|e| {
                FlushError::Retry(format!(
                    "PutRecordBatch to '{}' at {}: unreadable answer: {e}",
                    self.stream,
                    self.aws.describe()
                ))
            })?;
            let responses = reply.responses;
            let mut failed = Vec::new();
            let mut reason = String::new();
            for (i, o) in batch.into_iter().enumerate() {
                match responses.get(i).map(|r| r.error_code.as_deref()) {
                    Some(None) => o
                        .events
                        .as_slice()
                        .iter()
                        .for_each(|&e| chunk.mark_delivered(e)),
                    code => {
                        if reason.is_empty() {
                            reason = code
                                .flatten()
                                .unwrap_or("no response for the record")
                                .to_string();
                        }
                        failed.push(o);
                    }
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            attempt += 1;
            let msg = format!(
                "{} of {} records were rejected ({reason}); only those are resent",
                failed.len(),
                responses.len().max(failed.len())
            );
            if attempt > PARTIAL_RETRIES {
                return Err(FlushError::Retry(msg));
            }
            tracing::warn!("[output:firehose:{}] {msg}", self.name);
            self.metrics.retries.inc();
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            batch = failed;
        }
    }

    fn classify(&self, e: aws::Error) -> FlushError {
        let msg = format!(
            "PutRecordBatch to '{}' at {}: {e}",
            self.stream,
            self.aws.describe(),
        );
        if e.is_retryable() {
            FlushError::Retry(msg)
        } else {
            FlushError::Permanent(msg)
        }
    }
}

/// What the router reads of a PutRecordBatch answer: per record, in order, an error or not.
#[derive(serde::Deserialize)]
struct PutReply {
    #[serde(rename = "RequestResponses", default)]
    responses: Vec<PutEntry>,
}

#[derive(serde::Deserialize)]
struct PutEntry {
    #[serde(rename = "ErrorCode", default)]
    error_code: Option<String>,
}

#[async_trait]
impl Output for Firehose {
    async fn start(&self) {
        let checked = match self.client().await {
            Ok(c) => c.check_credentials().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = checked {
            tracing::error!(
                "[output:firehose:{}] {e}; records are kept and retried",
                self.name
            );
        }
    }

    fn records_per_request(&self) -> Option<usize> {
        // With simple_aggregation many events share one Firehose record.
        (!self.aggregate).then_some(MAX_RECORDS)
    }

    async fn flush(&self, chunk: &mut Chunk) -> Result<(), FlushError> {
        let client = self.client().await?;
        let records = self.records(chunk);
        // Calls of at most 500 records and 4 MiB, in order.
        let mut batch: Vec<Outgoing> = Vec::new();
        let mut bytes = 0;
        for r in records {
            let size = call_bytes(r.data.len());
            if !batch.is_empty() && (batch.len() == MAX_RECORDS || bytes + size > MAX_CALL_BYTES) {
                self.put(client, std::mem::take(&mut batch), chunk).await?;
                bytes = 0;
            }
            bytes += size;
            batch.push(r);
        }
        if !batch.is_empty() {
            self.put(client, batch, chunk).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Location, SectionKind};
    use crate::record::{Batch, EventTime};

    fn firehose(lines: &[(&str, &str)]) -> Firehose {
        let loc = Location::command_line();
        let mut s = Section::new(SectionKind::Output, loc.clone());
        s.push("delivery_stream", "x", loc.clone());
        for (k, v) in lines {
            s.push(*k, *v, loc.clone());
        }
        Firehose::from_section(&s, &Service::default(), "firehose.0", Arc::default()).unwrap()
    }

    fn encode(f: &Firehose, pairs: &[(&str, &str)]) -> String {
        let mut out = Vec::new();
        f.encode(
            &Event::from_pairs(EventTime::from_parts(1_700_000_000, 5_000_000), pairs),
            &mut out,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn record_encodings() {
        let rec = [("log", "hi"), ("n", "1")];
        assert_eq!(
            encode(&firehose(&[]), &rec),
            "{\"log\":\"hi\",\"n\":\"1\"}\n"
        );
        assert_eq!(encode(&firehose(&[("log_key", "log")]), &rec), "hi\n");
        assert_eq!(
            encode(&firehose(&[("data_keys", "n")]), &rec),
            "{\"n\":\"1\"}\n"
        );
        assert_eq!(
            encode(
                &firehose(&[
                    ("time_key", "ts"),
                    ("time_key_format", "%Y-%m-%dT%H:%M:%S.%LZ")
                ]),
                &rec
            ),
            "{\"log\":\"hi\",\"n\":\"1\",\"ts\":\"2023-11-14T22:13:20.005Z\"}\n"
        );
    }

    fn chunk(logs: &[String]) -> Chunk {
        let mut b = Batch::new(Arc::from("t"));
        for l in logs {
            b.push(Event::from_pairs(EventTime::default(), &[("log", l)]));
        }
        Chunk::new(vec![Arc::new(b)])
    }

    #[test]
    fn oversize_records_are_dropped_or_truncated() {
        let logs = vec!["a".repeat(10), "b".repeat(1_100_000), "c".repeat(10)];
        let f = firehose(&[]);
        let mut c = chunk(&logs);
        let out = f.records(&mut c);
        assert_eq!(out.len(), 2);
        assert_eq!(c.dropped(), 1);
        assert_eq!(f.metrics.dropped.get(DropReason::Oversize), 1);
        let f = firehose(&[("truncate_records", "On")]);
        let mut c = chunk(&logs);
        let out = f.records(&mut c);
        assert_eq!(out.len(), 3);
        assert!(out[1].data.len() <= MAX_RECORD_BYTES && out[1].data.len() > 1_000_000);
        assert!(out[1].data.ends_with(b"\"}\n"), "still a whole JSON record");
        assert_eq!(f.metrics.truncated.get(), 1);
    }

    #[test]
    fn aggregation_and_compression() {
        let logs: Vec<String> = (0..10).map(|i| format!("line {i}")).collect();
        let f = firehose(&[("simple_aggregation", "On")]);
        let out = f.records(&mut chunk(&logs));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].events.as_slice().len(), 10);
        assert_eq!(String::from_utf8_lossy(&out[0].data).lines().count(), 10);
        let f = firehose(&[("compression", "gzip")]);
        let out = f.records(&mut chunk(&logs));
        assert_eq!(out.len(), 10);
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&out[0].data[..]),
            &mut text,
        )
        .unwrap();
        assert_eq!(text, "{\"log\":\"line 0\"}\n");
    }
}
