//! Outputs: each receives chunks of batches and answers delivered, retry later, or failed for
//! good. One plugin a file, named after its config `Name`.

pub mod file;
mod format;
pub mod null;
pub mod stdout;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{ConfigError, RetryLimit, Section, Service};
use crate::record::Batch;
use crate::router::Matcher;

pub use format::{DateFormat, JsonRecord};

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

/// One output plugin instance.
#[async_trait]
pub trait Output: Send + Sync {
    /// Delivers every event of every batch, or says why not. A retried chunk is the same chunk.
    async fn flush(&self, chunk: &[Arc<Batch>]) -> Result<(), FlushError>;

    /// Called once after the last flush, before the router exits.
    async fn shutdown(&self) {}
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
}

/// Builds an output plugin instance from its section.
pub fn build(
    section: &Section,
    index: usize,
    service: &Service,
) -> Result<OutputSpec, ConfigError> {
    let plugin = section.name()?;
    let output: Arc<dyn Output> = match plugin.as_str() {
        "stdout" => Arc::new(stdout::Stdout::from_section(section, service)?),
        "file" => Arc::new(file::File::from_section(section, service)?),
        "null" => Arc::new(null::Null::from_section(section)?),
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
        name: section
            .str("alias")
            .map_or_else(|| format!("{plugin}.{index}"), str::to_string),
        matcher: Matcher::from_section(section)?,
        retry_limit: section.retry_limit()?,
        workers,
        queue_limit: section
            .size("queue_limit")?
            .unwrap_or(DEFAULT_QUEUE_LIMIT)
            .max(1),
        plugin,
        output,
    })
}
