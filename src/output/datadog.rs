//! `datadog`: sends records to the Datadog Logs HTTP intake (`POST /api/v2/logs`).
//!
//! Each record becomes an entry `{"timestamp": <ms>, "ddsource", "service", "hostname",
//! "ddtags", ...record}` with the `dd_message_key` field renamed `message`, as Fluent Bit writes
//! it; with `provider ecs` the ECS fields move into `ddtags`. Requests respect the intake's
//! limits (at most 1,000 entries and 5 MB before compression; a log over 1 MB has its message
//! truncated, or is dropped when that is not enough), where Fluent Bit sends one array per chunk
//! whatever its size. 408, 429, 5xx and network errors are retried; 400, 401, 403 and 413 are
//! not: they are logged with the response body and counted. TLS is on by default (Fluent Bit's
//! default is off, which sends the API key in clear text). The API key never appears in logs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Chunk, FlushError, Output};
use crate::config::{ConfigError, Section, Service};
use crate::engine::metrics::{DropReason, OutputMetrics};
use crate::msgpack::json::JsonStyle;
use crate::msgpack::{Reader, ValueRef};
use crate::record::{Event, Tag};

/// The intake's limits.
const MAX_ENTRIES: usize = 1000;
const MAX_REQUEST_BYTES: usize = 5_000_000;
const MAX_LOG_BYTES: usize = 1_000_000;

pub struct Datadog {
    name: String,
    url: String,
    api_key: String,
    client: reqwest::Client,
    gzip: bool,
    service: Option<String>,
    source: Option<String>,
    tags: Option<String>,
    hostname: Option<String>,
    message_key: Option<String>,
    date_key: Option<String>,
    tag_key: Option<String>,
    ecs: bool,
    headers: Vec<(String, String)>,
    json: JsonStyle,
    metrics: Arc<OutputMetrics>,
}

impl Datadog {
    pub fn from_section(
        section: &Section,
        service: &Service,
        name: &str,
        metrics: Arc<OutputMetrics>,
    ) -> Result<Self, ConfigError> {
        let api_key = section
            .str("apikey")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ConfigError::new(
                    &section.loc,
                    "datadog output needs 'apikey' (e.g. ${DD_API_KEY})",
                )
            })?
            .to_string();
        let tls = section.bool("tls", true)?;
        let host = match (section.str("host"), section.str("site")) {
            (Some(h), _) => h.to_string(),
            (None, Some(site)) => format!("http-intake.logs.{site}"),
            (None, None) => "http-intake.logs.datadoghq.com".to_string(),
        };
        let port = section.uint("port")?.unwrap_or(if tls { 443 } else { 80 });
        let scheme = if tls { "https" } else { "http" };
        let url = format!("{scheme}://{host}:{port}/api/v2/logs");
        let proxy = match section.entry("proxy") {
            Some(p) => Some(reqwest::Proxy::all(&p.value).map_err(|e| {
                ConfigError::new(&p.loc, format!("proxy '{}' is not usable: {e}", p.value))
            })?),
            None => None,
        };
        let tls_settings =
            crate::http::TlsSettings::from_section(section, &format!("output:datadog:{name}"))?;
        let client =
            crate::http::client(&tls_settings, Duration::from_secs(30), proxy).map_err(|e| {
                ConfigError::new(
                    &section.loc,
                    format!("datadog: cannot build the HTTP client: {e}"),
                )
            })?;
        let mut headers = Vec::new();
        for e in section.all("header") {
            let (k, v) = e
                .value
                .split_once(char::is_whitespace)
                .ok_or_else(|| ConfigError::new(&e.loc, "header needs a name and a value"))?;
            headers.push((k.to_string(), v.trim().to_string()));
        }
        let date_key = match section.str("json_date_key") {
            None => Some("timestamp".to_string()),
            Some(v) if crate::config::value::parse_bool(v) == Ok(false) => None,
            Some(v) => Some(v.to_string()),
        };
        let gzip = match section
            .str("compress")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") | Some("none") | Some("off") | Some("false") => false,
            Some("gzip") | Some("on") | Some("true") => true,
            Some(other) => {
                let loc = section.entry("compress").map_or(&section.loc, |e| &e.loc);
                return Err(ConfigError::new(
                    loc,
                    format!("compress '{other}' is not supported (gzip)"),
                ));
            }
        };
        let include_tag = section.bool("include_tag_key", false)?;
        let tag_key = section.str("tag_key").unwrap_or("tagkey").to_string();
        Ok(Datadog {
            name: name.to_string(),
            url,
            api_key,
            client,
            gzip,
            service: section.str("dd_service").map(str::to_string),
            source: section.str("dd_source").map(str::to_string),
            tags: section.str("dd_tags").map(str::to_string),
            hostname: section.str("dd_hostname").map(str::to_string),
            message_key: section.str("dd_message_key").map(str::to_string),
            date_key,
            tag_key: include_tag.then_some(tag_key),
            ecs: section
                .str("provider")
                .is_some_and(|p| p.eq_ignore_ascii_case("ecs")),
            headers,
            json: JsonStyle {
                escape_unicode: service.json_escape_unicode,
            },
            metrics,
        })
    }

    /// One intake entry for `event`. `message_limit` cuts the message text (for oversize logs).
    fn entry(&self, tag: &Tag, event: &Event, message_limit: Option<usize>, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut comma = false;
        let mut member = |out: &mut Vec<u8>, key: &[u8]| {
            if comma {
                out.push(b',');
            }
            comma = true;
            self.json.str(out, key);
            out.push(b':');
        };
        if let Some(k) = &self.date_key {
            member(out, k.as_bytes());
            let ms = event.time.as_nanos().div_euclid(1_000_000);
            out.extend_from_slice(itoa::Buffer::new().format(ms).as_bytes());
        }
        for (key, value) in [
            ("ddsource", &self.source),
            ("service", &self.service),
            ("hostname", &self.hostname),
        ] {
            if let Some(v) = value {
                member(out, key.as_bytes());
                self.json.str(out, v.as_bytes());
            }
        }
        let ecs_tags = if self.ecs {
            ecs_tags(event)
        } else {
            Vec::new()
        };
        let mut ddtags: Vec<String> = ecs_tags.iter().map(|(t, _)| t.clone()).collect();
        if let Some(t) = &self.tags {
            ddtags.push(t.clone());
        }
        if !ddtags.is_empty() {
            member(out, b"ddtags");
            self.json.str(out, ddtags.join(",").as_bytes());
        }
        let mut fields = event.fields();
        while let Some(Ok((k, v))) = fields.next_raw() {
            if ecs_tags.iter().any(|(_, field)| field.as_bytes() == k) {
                continue;
            }
            let is_message = self
                .message_key
                .as_deref()
                .is_some_and(|m| m.as_bytes() == k);
            member(out, if is_message { b"message".as_slice() } else { k });
            match (is_message, message_limit, Reader::new(v).value()) {
                (true, Some(limit), Ok(ValueRef::Str(text))) if text.len() > limit => {
                    let mut cut = limit;
                    while cut > 0 && std::str::from_utf8(&text[..cut]).is_err() {
                        cut -= 1;
                    }
                    self.json.str(out, &text[..cut]);
                }
                _ => self.json.value(out, v),
            }
        }
        if let Some(k) = &self.tag_key {
            member(out, k.as_bytes());
            self.json.str(out, tag.as_bytes());
        }
        out.push(b'}');
    }

    /// Sends one request body; classifies the answer.
    async fn send(&self, body: Vec<u8>, entries: usize) -> Result<(), FlushError> {
        let body = if self.gzip { super::gzip(&body) } else { body };
        let mut req = self
            .client
            .post(&self.url)
            .header("DD-API-KEY", &self.api_key)
            .header("Content-Type", "application/json")
            .header("DD-EVP-ORIGIN", "logrouter")
            .header("DD-EVP-ORIGIN-VERSION", env!("CARGO_PKG_VERSION"));
        if self.gzip {
            req = req.header("Content-Encoding", "gzip");
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = req.body(body).send().await.map_err(|e| {
            // reqwest errors name the URL, never the headers: the key stays out of the logs.
            FlushError::Retry(format!("POST {}: {}", self.url, error_chain(&e)))
        })?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let text = text.replace(&self.api_key, "<apikey>");
        let msg = format!(
            "{} rejected {entries} entries with HTTP {status}: {}",
            self.url,
            text.trim()
        );
        match status {
            408 | 429 | 500..=599 => Err(FlushError::Retry(msg)),
            _ => Err(FlushError::Permanent(msg)),
        }
    }
}

/// The error and its sources, without the request's headers.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// With `provider ecs`: (ddtag, record field it replaces) for the ECS fields of `event`.
fn ecs_tags(event: &Event) -> Vec<(String, &'static str)> {
    let text = |k: &str| match event.get(k) {
        Some(ValueRef::Str(s)) => Some(String::from_utf8_lossy(s).into_owned()),
        _ => None,
    };
    let mut tags = Vec::new();
    if let Some(v) = text("container_id") {
        tags.push((format!("container_id:{v}"), "container_id"));
    }
    if let Some(v) = text("container_name") {
        tags.push((
            format!("container_name:{}", v.trim_start_matches('/')),
            "container_name",
        ));
    }
    if let Some(v) = text("container_image") {
        tags.push((format!("container_image:{v}"), "container_image"));
    }
    if let Some(v) = text("ecs_cluster") {
        let name = v.rsplit_once("cluster/").map_or(v.as_str(), |(_, n)| n);
        tags.push((format!("cluster_name:{name}"), "ecs_cluster"));
    }
    if let Some(v) = text("ecs_task_definition") {
        let (family, version) = v.split_once(':').unwrap_or((&v, ""));
        tags.push((
            format!("task_family:{family},task_version:{version}"),
            "ecs_task_definition",
        ));
    }
    if let Some(v) = text("ecs_task_arn") {
        let id = v.rsplit('/').next().unwrap_or_default();
        let region = v.split(':').nth(3).unwrap_or_default();
        tags.push((
            format!("task_arn:{v},task_id:{id},region:{region}"),
            "ecs_task_arn",
        ));
    }
    tags
}

#[async_trait]
impl Output for Datadog {
    fn records_per_request(&self) -> Option<usize> {
        Some(MAX_ENTRIES)
    }

    async fn flush(&self, chunk: &mut Chunk) -> Result<(), FlushError> {
        // Entries of this chunk not yet delivered, encoded; oversize logs shortened or dropped.
        let mut entries: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut dropped = Vec::new();
        for (i, tag, event) in chunk.pending() {
            let mut e = Vec::with_capacity(event.record.len() * 2);
            self.entry(tag, event, None, &mut e);
            if e.len() > MAX_LOG_BYTES {
                let over = e.len() - MAX_LOG_BYTES;
                let mut cut = Vec::new();
                let limit = event_message_len(self, event).saturating_sub(over + 64);
                self.entry(tag, event, Some(limit), &mut cut);
                if cut.len() <= MAX_LOG_BYTES && self.message_key.is_some() {
                    self.metrics.truncated.inc();
                    tracing::warn!(
                        "[output:datadog:{}] log of tag '{tag}' was {} bytes, over the intake's 1 MB: message truncated",
                        self.name,
                        e.len()
                    );
                    e = cut;
                } else {
                    tracing::warn!(
                        "[output:datadog:{}] log of tag '{tag}' is {} bytes, over the intake's 1 MB: dropped",
                        self.name,
                        e.len()
                    );
                    dropped.push(i);
                    continue;
                }
            }
            entries.push((i, e));
        }
        for i in dropped {
            chunk.mark_dropped(i);
            self.metrics.dropped.add(DropReason::Oversize, 1);
        }
        // Requests of at most 1,000 entries and 5 MB; each delivered one is marked, so a retry
        // resends only what is left.
        let mut start = 0;
        while start < entries.len() {
            let mut end = start;
            let mut size = 2;
            while end < entries.len()
                && end - start < MAX_ENTRIES
                && size + entries[end].1.len() < MAX_REQUEST_BYTES
            {
                size += entries[end].1.len() + 1;
                end += 1;
            }
            let mut body = Vec::with_capacity(size);
            body.push(b'[');
            for (n, (_, e)) in entries[start..end].iter().enumerate() {
                if n > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(e);
            }
            body.push(b']');
            match self.send(body, end - start).await {
                Ok(()) => entries[start..end]
                    .iter()
                    .for_each(|(i, _)| chunk.mark_delivered(*i)),
                // Not retried when permanent: the engine drops and counts what is left.
                Err(e) => return Err(e),
            }
            start = end;
        }
        Ok(())
    }
}

/// Length of the event's message text, for truncation.
fn event_message_len(dd: &Datadog, event: &Event) -> usize {
    match dd.message_key.as_deref().and_then(|k| event.get(k)) {
        Some(ValueRef::Str(s)) => s.len(),
        _ => 0,
    }
}
