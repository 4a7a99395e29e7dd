//! How inputs hand batches to the outputs: filters, then routing by tag, then each matching
//! output's bounded queue.
//!
//! Queues are bounded in bytes by semaphores: a batch takes permits for its size from every
//! output it goes to (and from its input's `Mem_Buf_Limit`, if set) and gives them back once
//! delivered or dropped. When an output is full, `emit` waits, so the connection that called it
//! stops reading its socket: backpressure reaches the client instead of memory growing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::metrics::{Counter, DropReason, InputMetrics, OutputMetrics};
use crate::filter::FilterChain;
use crate::record::{Batch, Tag};
use crate::router::Matcher;

/// The engine is shutting down and takes no more batches.
#[derive(Debug, thiserror::Error)]
#[error("the router is shutting down")]
pub struct Closed;

/// A batch in an output's queue, holding its share of the memory bounds until dropped.
pub struct Queued {
    pub batch: Arc<Batch>,
    _input_memory: Option<Arc<OwnedSemaphorePermit>>,
    _queue_space: OwnedSemaphorePermit,
}

/// A byte budget: a semaphore with one permit per byte, up to `limit`.
#[derive(Clone)]
pub struct Budget {
    permits: Arc<Semaphore>,
    limit: u32,
}

impl Budget {
    pub fn new(limit: u64) -> Self {
        let limit = limit.clamp(1, u64::from(u32::MAX)) as u32;
        Budget {
            permits: Arc::new(Semaphore::new(limit as usize)),
            limit,
        }
    }

    /// Waits for `bytes` of room. A batch bigger than the whole budget takes all of it, so it
    /// still passes (alone).
    async fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit, Closed> {
        let n = bytes.min(self.limit as usize).max(1) as u32;
        self.permits
            .clone()
            .acquire_many_owned(n)
            .await
            .map_err(|_| Closed)
    }
}

/// An output as the emitter sees it: its rule and its queue.
pub struct Lane {
    pub matcher: Option<Matcher>,
    pub queue: UnboundedSender<Queued>,
    pub space: Budget,
    pub metrics: Arc<OutputMetrics>,
}

/// Filters and outputs, shared by every input.
pub struct Pipeline {
    filters: FilterChain,
    lanes: Vec<Lane>,
    unrouted: Arc<Counter>,
    /// Tags already logged as matching no output (bounded, so hostile tags cannot grow it).
    logged_unrouted: Mutex<HashSet<String>>,
}

const MAX_LOGGED_UNROUTED: usize = 1000;
const MAX_CACHED_ROUTES: usize = 4096;

impl Pipeline {
    pub fn new(filters: FilterChain, lanes: Vec<Lane>) -> Self {
        Pipeline {
            filters,
            lanes,
            unrouted: Arc::default(),
            logged_unrouted: Mutex::new(HashSet::new()),
        }
    }

    /// Counts records that matched no output (shared, so it outlives the pipeline).
    pub fn unrouted(&self) -> Arc<Counter> {
        self.unrouted.clone()
    }

    fn route(&self, tag: &str) -> Arc<[usize]> {
        self.lanes
            .iter()
            .enumerate()
            .filter(|(_, l)| l.matcher.as_ref().is_some_and(|m| m.matches(tag)))
            .map(|(i, _)| i)
            .collect()
    }

    fn note_unrouted(&self, input: &InputMetrics, batch: &Batch) {
        let n = batch.len() as u64;
        self.unrouted.add(n);
        input.dropped.add(DropReason::NoRoute, n);
        let Ok(mut logged) = self.logged_unrouted.lock() else {
            return;
        };
        if logged.len() < MAX_LOGGED_UNROUTED && logged.insert(batch.tag.to_string()) {
            tracing::warn!(
                "[{}] no output matches tag '{}': its records are dropped (logged once per tag)",
                input.name,
                batch.tag
            );
        }
    }
}

/// An input's (or connection's) handle on the pipeline. Cloning gives a fresh route cache.
pub struct Emitter {
    pipeline: Arc<Pipeline>,
    input: Arc<InputMetrics>,
    memory: Option<Budget>,
    routes: HashMap<Tag, Arc<[usize]>>,
}

impl Clone for Emitter {
    fn clone(&self) -> Self {
        Emitter {
            pipeline: self.pipeline.clone(),
            input: self.input.clone(),
            memory: self.memory.clone(),
            routes: HashMap::new(),
        }
    }
}

impl Emitter {
    pub fn new(pipeline: Arc<Pipeline>, input: Arc<InputMetrics>, memory: Option<Budget>) -> Self {
        Emitter {
            pipeline,
            input,
            memory,
            routes: HashMap::new(),
        }
    }

    pub fn metrics(&self) -> &InputMetrics {
        &self.input
    }

    /// Filters `batch`, then queues it for every output whose rule matches its tag, waiting for
    /// room in each. When this returns Ok, the events are accepted: they will be delivered or
    /// counted as dropped.
    pub async fn emit(&mut self, batch: Batch) -> Result<(), Closed> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.pipeline.filters.is_empty() {
            return self.queue(batch).await;
        }
        for b in self.pipeline.filters.apply(batch) {
            self.queue(b).await?;
        }
        Ok(())
    }

    /// Emits what filter stage `stage` holds (all of it when `shutting_down`), through the
    /// stages after it.
    pub async fn emit_held(&mut self, stage: usize, shutting_down: bool) -> Result<(), Closed> {
        for b in self.pipeline.filters.flush_held(stage, shutting_down) {
            self.queue(b).await?;
        }
        Ok(())
    }

    async fn queue(&mut self, batch: Batch) -> Result<(), Closed> {
        let route = match self.routes.get(&batch.tag) {
            Some(r) => r.clone(),
            None => {
                if self.routes.len() >= MAX_CACHED_ROUTES {
                    self.routes.clear();
                }
                let r = self.pipeline.route(&batch.tag);
                self.routes.insert(batch.tag.clone(), r.clone());
                r
            }
        };
        if route.is_empty() {
            self.pipeline.note_unrouted(&self.input, &batch);
            return Ok(());
        }
        let bytes = batch.bytes;
        let records = batch.len() as u64;
        let memory = match &self.memory {
            Some(budget) => Some(Arc::new(budget.reserve(bytes).await?)),
            None => None,
        };
        let batch = Arc::new(batch);
        for &i in route.iter() {
            let lane = &self.pipeline.lanes[i];
            let space = lane.space.reserve(bytes).await?;
            lane.metrics.queued_records.add(records);
            lane.metrics.queued_bytes.add(bytes as u64);
            lane.queue
                .send(Queued {
                    batch: batch.clone(),
                    _input_memory: memory.clone(),
                    _queue_space: space,
                })
                .map_err(|_| Closed)?;
        }
        Ok(())
    }
}
