//! Outputs: each receives chunks of batches and answers delivered, retry later, or failed for
//! good. One plugin a file, named after its config `Name`.

mod aws;
pub mod datadog;
pub mod file;
pub mod firehose;
mod format;
pub mod null;
pub mod s3;
pub mod stdout;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{ConfigError, RetryLimit, Section, Service};
use crate::engine::metrics::OutputMetrics;
use crate::record::{Batch, Event, Tag};
use crate::router::Matcher;

pub use format::{DateFormat, JsonRecord, TimeKeyFormat};

/// Why a flush did not deliver.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    /// Worth trying again later (network, throttling, a full disk).
    #[error("{0}")]
    Retry(String),
    /// Will fail however often it is tried (bad request, rejected credentials).
    #[error("{0}")]
    Permanent(String),
}

/// The events an output is asked to deliver, with those already delivered (or dropped) marked,
/// so that a retry sends only the rest. Outputs that deliver all or nothing can ignore the marks.
pub struct Chunk {
    batches: Vec<Arc<Batch>>,
    /// Per event, in order across batches: already delivered or dropped. Empty until used.
    done: Vec<bool>,
    dropped: u64,
}

impl Chunk {
    pub fn new(batches: Vec<Arc<Batch>>) -> Self {
        Chunk {
            batches,
            done: Vec::new(),
            dropped: 0,
        }
    }

    pub fn batches(&self) -> &[Arc<Batch>] {
        &self.batches
    }

    pub fn records(&self) -> usize {
        self.batches.iter().map(|b| b.len()).sum()
    }

    /// Events not yet delivered, with their index in the chunk and their tag.
    pub fn pending(&self) -> impl Iterator<Item = (usize, &Tag, &Event)> {
        self.batches
            .iter()
            .flat_map(|b| b.events.iter().map(move |e| (&b.tag, e)))
            .enumerate()
            .filter(|(i, _)| !self.done.get(*i).copied().unwrap_or(false))
            .map(|(i, (t, e))| (i, t, e))
    }

    /// Marks event `index` delivered: a retry will not send it again.
    pub fn mark_delivered(&mut self, index: usize) {
        if self.done.is_empty() {
            self.done = vec![false; self.records()];
        }
        if let Some(d) = self.done.get_mut(index) {
            *d = true;
        }
    }

    /// Marks event `index` dropped on purpose (the output logs and counts why).
    pub fn mark_dropped(&mut self, index: usize) {
        self.mark_delivered(index);
        self.dropped += 1;
    }

    /// Events dropped on purpose by the output.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Events delivered or dropped so far.
    pub fn settled(&self) -> u64 {
        self.done.iter().filter(|d| **d).count() as u64
    }
}

/// One output plugin instance.
#[async_trait]
pub trait Output: Send + Sync {
    /// Delivers the chunk's pending events, or says why not. On `Retry` the same chunk comes back,
    /// with whatever this call marked delivered.
    async fn flush(&self, chunk: &mut Chunk) -> Result<(), FlushError>;

    /// Called once when the router starts, before any flush (connect, check settings; problems
    /// are logged, and flushes retry).
    async fn start(&self) {}

    /// Called once after the last flush, before the router exits.
    async fn shutdown(&self) {}

    /// The most records one request of this output carries (Firehose: 500). A chunk that
    /// holds that many is flushed at once instead of waiting for `Flush`: waiting would send
    /// the same requests later while holding the records in memory meanwhile.
    fn records_per_request(&self) -> Option<usize> {
        None
    }

    /// Whether this output keeps state outside itself (files in a store dir) that the instance
    /// it replaces on reload may still be using: if so, it starts once the old one is done.
    fn waits_for_predecessor(&self) -> bool {
        false
    }
}

/// Default bound on what an output holds in memory (queued and in flight).
pub const DEFAULT_QUEUE_LIMIT: u64 = 64_000_000;

/// An output instance with the engine settings of its section.
pub struct OutputSpec {
    /// Instance name: `stdout.0`, or the section's `Alias`.
    pub name: String,
    pub plugin: String,
    pub matcher: Option<Matcher>,
    pub retry_limit: RetryLimit,
    pub workers: usize,
    /// Bytes of events this output may hold before inputs feeding it must wait.
    pub queue_limit: u64,
    pub output: Arc<dyn Output>,
    pub metrics: Arc<OutputMetrics>,
}

/// Compresses `data` as one gzip member (fast level: outputs compress on the hot path).
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 3 + 32),
        flate2::Compression::fast(),
    );
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// `compression`: none, or `gzip` (the one the AWS outputs support).
fn gzip_option(section: &Section) -> Result<bool, ConfigError> {
    match section
        .str("compression")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("") | Some("none") => Ok(false),
        Some("gzip") => Ok(true),
        Some(other) => {
            let loc = section
                .entry("compression")
                .map_or(&section.loc, |e| &e.loc);
            Err(ConfigError::new(
                loc,
                format!("compression '{other}' is not supported (gzip)"),
            ))
        }
    }
}

/// Builds an output plugin instance from its section.
pub fn build(
    section: &Section,
    index: usize,
    service: &Service,
) -> Result<OutputSpec, ConfigError> {
    let plugin = section.name()?;
    let name = section
        .str("alias")
        .map_or_else(|| format!("{plugin}.{index}"), str::to_string);
    let queue_limit = section
        .size("queue_limit")?
        .unwrap_or(DEFAULT_QUEUE_LIMIT)
        .max(1);
    let metrics = Arc::new(OutputMetrics::new(&name, queue_limit));
    let output: Arc<dyn Output> = match plugin.as_str() {
        "stdout" => Arc::new(stdout::Stdout::from_section(section, service)?),
        "file" => Arc::new(file::File::from_section(section, service)?),
        "null" => Arc::new(null::Null::from_section(section)?),
        "datadog" => Arc::new(datadog::Datadog::from_section(
            section,
            service,
            &name,
            metrics.clone(),
        )?),
        "s3" => Arc::new(s3::S3::from_section(
            section,
            service,
            &name,
            metrics.clone(),
        )?),
        "firehose" | "kinesis_firehose" => Arc::new(firehose::Firehose::from_section(
            section,
            service,
            &name,
            metrics.clone(),
        )?),
        _ => {
            let loc = section.entry("name").map_or(&section.loc, |e| &e.loc);
            return Err(ConfigError::new(
                loc,
                format!("output plugin '{plugin}' is not known"),
            ));
        }
    };
    let workers = section.uint("workers")?.unwrap_or(1).clamp(1, 64) as usize;
    Ok(OutputSpec {
        name,
        matcher: Matcher::from_section(section)?,
        retry_limit: section.retry_limit()?,
        workers,
        queue_limit,
        plugin,
        output,
        metrics,
    })
}
