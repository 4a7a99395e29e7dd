//! One output's delivery: gathers queued batches into chunks, flushes a chunk every `Flush`
//! seconds or as soon as it is full (2 MB, or a whole request of the output), and retries failed chunks with backoff up to
//! `Retry_Limit`. With `Workers N`, up to N chunks are in flight at once (N = 1 keeps order).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::emitter::Queued;
use super::metrics::{DropReason, OutputMetrics};
use crate::config::RetryLimit;
use crate::output::{Chunk, FlushError, Output};
use crate::record::Batch;

/// A chunk is flushed as soon as it holds this many bytes, without waiting for the timer.
pub const CHUNK_BYTES: usize = 2_000_000;

/// Exponential backoff with full jitter: retry n waits a random time between `base` and
/// `min(cap, base * 2^n)`, as Fluent Bit's scheduler does.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    pub fn wait(&self, retry: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(retry.min(31)))
            .min(self.cap)
            .max(self.base);
        let span = (ceiling - self.base).as_millis() as u64;
        self.base + Duration::from_millis(fastrand::u64(0..=span))
    }
}

/// Settings of one output lane.
#[derive(Debug, Clone)]
pub struct LaneSettings {
    pub name: String,
    pub flush: Duration,
    pub retry_limit: RetryLimit,
    pub backoff: Backoff,
    pub workers: usize,
}

/// Runs until every sender of `queue` is gone and everything received is delivered or dropped.
pub async fn run(
    output: Arc<dyn Output>,
    mut queue: UnboundedReceiver<Queued>,
    settings: Arc<LaneSettings>,
    metrics: Arc<OutputMetrics>,
) {
    output.start().await;
    let workers = Arc::new(Semaphore::new(settings.workers));
    let mut pending: Vec<Queued> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut pending_records = 0usize;
    let full_records = output.records_per_request().unwrap_or(usize::MAX);
    let mut deadline: Option<Instant> = None;
    loop {
        let full = tokio::select! {
            item = queue.recv() => match item {
                Some(q) => {
                    if pending.is_empty() {
                        deadline = Some(Instant::now() + settings.flush);
                    }
                    pending_bytes += q.batch.bytes;
                    pending_records += q.batch.len();
                    pending.push(q);
                    pending_bytes >= CHUNK_BYTES || pending_records >= full_records
                }
                None => break,
            },
            () = sleep_until(deadline) => true,
        };
        if full {
            let chunk = std::mem::take(&mut pending);
            pending_bytes = 0;
            pending_records = 0;
            deadline = None;
            let Ok(permit) = workers.clone().acquire_owned().await else {
                break;
            };
            let (output, settings, metrics) = (output.clone(), settings.clone(), metrics.clone());
            tokio::spawn(async move {
                deliver(&*output, chunk, &settings, &metrics).await;
                drop(permit);
            });
        }
    }
    if !pending.is_empty() {
        deliver(&*output, pending, &settings, &metrics).await;
    }
    // Wait for chunks still in flight.
    let _all = workers.acquire_many(settings.workers as u32).await;
    output.shutdown().await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Flushes one chunk until it is delivered, fails for good, or runs out of retries.
async fn deliver(
    output: &dyn Output,
    chunk: Vec<Queued>,
    settings: &LaneSettings,
    metrics: &OutputMetrics,
) {
    let batches: Vec<Arc<Batch>> = chunk.iter().map(|q| q.batch.clone()).collect();
    let records: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let bytes: u64 = batches.iter().map(|b| b.bytes as u64).sum();
    let mut work = Chunk::new(batches.clone());
    let mut retries = 0u32;
    loop {
        match output.flush(&mut work).await {
            Ok(()) => {
                metrics.proc_records.add(records - work.dropped());
                metrics.proc_bytes.add(bytes);
                if retries > 0 {
                    tracing::info!(
                        "[{}] flush of {records} records succeeded at retry {retries}",
                        settings.name
                    );
                }
                break;
            }
            Err(FlushError::Permanent(e)) => {
                metrics.errors.inc();
                // What the output delivered before the failure stays delivered.
                let settled = work.settled();
                metrics.proc_records.add(settled - work.dropped());
                let records = records - settled;
                metrics.dropped.add(DropReason::PermanentError, records);
                tracing::error!(
                    "[{}] dropped {records} records (tags: {}): {e}; not retried",
                    settings.name,
                    tags(&batches)
                );
                break;
            }
            Err(FlushError::Retry(e)) => {
                metrics.errors.inc();
                if !settings.retry_limit.allows(retries) {
                    metrics.retries_failed.inc();
                    let settled = work.settled();
                    metrics.proc_records.add(settled - work.dropped());
                    let records = records - settled;
                    metrics.dropped.add(DropReason::RetriesExhausted, records);
                    tracing::error!(
                        "[{}] dropped {records} records (tags: {}) after {retries} retries: {e}",
                        settings.name,
                        tags(&batches)
                    );
                    break;
                }
                retries += 1;
                metrics.retries.inc();
                metrics.retried_records.add(records - work.settled());
                let wait = settings.backoff.wait(retries);
                tracing::warn!(
                    "[{}] failed to flush {records} records: {e}; retry {retries} in {:.1}s",
                    settings.name,
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
    metrics.queued_records.sub(records);
    metrics.queued_bytes.sub(bytes);
}

/// The distinct tags of a chunk, for log lines.
fn tags(batches: &[Arc<Batch>]) -> String {
    let mut tags: Vec<&str> = batches.iter().map(|b| &*b.tag).collect();
    tags.sort_unstable();
    tags.dedup();
    tags.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_base_and_cap() {
        let b = Backoff {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(20),
        };
        for _ in 0..100 {
            let w1 = b.wait(1);
            assert!(w1 >= Duration::from_secs(5) && w1 <= Duration::from_secs(10));
            let w9 = b.wait(9);
            assert!(w9 >= Duration::from_secs(5) && w9 <= Duration::from_secs(20));
        }
    }
}
