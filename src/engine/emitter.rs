//! How inputs hand batches to the outputs: filters, then routing by tag, then each matching
//! output's bounded queue.
//!
//! Queues are bounded in bytes by semaphores: a batch takes permits for its size from every
//! output it goes to (and from its input's `Mem_Buf_Limit`, if set) and gives them back once
//! delivered or dropped. When an output is full, `emit` waits, so the connection that called it
//! stops reading its socket: backpressure reaches the client instead of memory growing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

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

    /// Waits for `bytes` of room, adding the time waited to `waited_ns`. A batch bigger than
    /// the whole budget takes all of it, so it still passes (alone).
    async fn reserve(
        &self,
        bytes: usize,
        waited_ns: &Counter,
    ) -> Result<OwnedSemaphorePermit, Closed> {
        let n = bytes.min(self.limit as usize).max(1) as u32;
        if let Ok(permit) = self.permits.clone().try_acquire_many_owned(n) {
            return Ok(permit);
        }
        let since = Instant::now();
        let permit = self.permits.clone().acquire_many_owned(n).await;
        waited_ns.add(since.elapsed().as_nanos() as u64);
        permit.map_err(|_| Closed)
    }
}

/// An output as the emitter sees it: its rule and its queue.
pub struct Lane {
    pub matcher: Option<Matcher>,
    pub queue: UnboundedSender<Queued>,
    pub space: Budget,
    pub metrics: Arc<OutputMetrics>,
}

/// Filters and outputs, shared by every input. A reload swaps in a new one; the old one is
/// dropped once the batches being emitted into it are queued, which closes its outputs' queues
/// so they drain and stop.
pub struct Pipeline {
    filters: FilterChain,
    lanes: Vec<Lane>,
    /// Tells emitters that their route cache belongs to another pipeline.
    generation: u64,
    unrouted: Arc<Counter>,
    /// Tags already logged as matching no output (bounded, so hostile tags cannot grow it).
    logged_unrouted: Mutex<LoggedTags>,
}

/// Tags logged once: at most this many, of at most this many bytes in all. Past that, new
/// tags are still counted as unrouted but not logged.
const MAX_LOGGED_UNROUTED: usize = 1000;
const MAX_LOGGED_UNROUTED_BYTES: usize = 64 * 1024;
/// Each emitter (one per connection) caches routes for at most this many tags, of at most
/// this many bytes in all; a full cache starts over. Routing a tag is cheap, so this only
/// spares the matching for the few tags a connection repeats.
const MAX_CACHED_ROUTES: usize = 64;
const MAX_CACHED_ROUTE_BYTES: usize = 16 * 1024;

#[derive(Default)]
struct LoggedTags {
    tags: HashSet<String>,
    bytes: usize,
}

impl LoggedTags {
    /// Whether `tag` is new and fits; it is remembered if so.
    fn first_time(&mut self, tag: &str) -> bool {
        if self.tags.len() >= MAX_LOGGED_UNROUTED
            || self.bytes + tag.len() > MAX_LOGGED_UNROUTED_BYTES
            || self.tags.contains(tag)
        {
            return false;
        }
        self.bytes += tag.len();
        self.tags.insert(tag.to_string())
    }
}

impl Pipeline {
    /// `unrouted` counts records that matched no output; it is shared so that it outlives
    /// the pipeline.
    pub fn new(
        filters: FilterChain,
        lanes: Vec<Lane>,
        generation: u64,
        unrouted: Arc<Counter>,
    ) -> Self {
        Pipeline {
            filters,
            lanes,
            generation,
            unrouted,
            logged_unrouted: Mutex::new(LoggedTags::default()),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
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
        if logged.first_time(&batch.tag) {
            tracing::warn!(
                "[{}] no output matches tag '{}': its records are dropped (logged once per tag)",
                input.name,
                batch.tag
            );
        }
    }
}

/// Where emitters find the current pipeline. Emitters hold the pipeline only while emitting,
/// so that an idle connection does not keep a replaced pipeline (and its outputs) alive.
pub type PipelineSource = watch::Receiver<Arc<Pipeline>>;

/// A source that always gives `pipeline` (for tasks bound to one pipeline's filters).
pub fn fixed(pipeline: Arc<Pipeline>) -> PipelineSource {
    watch::channel(pipeline).1
}

/// An input's (or connection's) handle on the pipeline. Cloning gives a fresh route cache.
pub struct Emitter {
    source: PipelineSource,
    input: Arc<InputMetrics>,
    memory: Option<Budget>,
    /// Output lanes by tag, for the pipeline of generation `routes_generation`.
    routes: HashMap<Tag, Arc<[usize]>>,
    /// Bytes of the tags in `routes`.
    routes_bytes: usize,
    routes_generation: u64,
}

impl Clone for Emitter {
    fn clone(&self) -> Self {
        Emitter {
            source: self.source.clone(),
            input: self.input.clone(),
            memory: self.memory.clone(),
            routes: HashMap::new(),
            routes_bytes: 0,
            routes_generation: self.routes_generation,
        }
    }
}

impl Emitter {
    pub fn new(source: PipelineSource, input: Arc<InputMetrics>, memory: Option<Budget>) -> Self {
        let routes_generation = source.borrow().generation;
        Emitter {
            source,
            input,
            memory,
            routes: HashMap::new(),
            routes_bytes: 0,
            routes_generation,
        }
    }

    /// The current pipeline, clearing the route cache if it was swapped.
    fn pipeline(&mut self) -> Arc<Pipeline> {
        let pipeline = self.source.borrow_and_update().clone();
        if pipeline.generation != self.routes_generation {
            self.routes.clear();
            self.routes_bytes = 0;
            self.routes_generation = pipeline.generation;
        }
        pipeline
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
        let pipeline = self.pipeline();
        if pipeline.filters.is_empty() {
            return self.queue(&pipeline, batch).await;
        }
        for b in pipeline.filters.apply(batch) {
            self.queue(&pipeline, b).await?;
        }
        Ok(())
    }

    /// Emits what filter stage `stage` holds (all of it when `shutting_down`), through the
    /// stages after it.
    pub async fn emit_held(&mut self, stage: usize, shutting_down: bool) -> Result<(), Closed> {
        let pipeline = self.pipeline();
        for b in pipeline.filters.flush_held(stage, shutting_down) {
            self.queue(&pipeline, b).await?;
        }
        Ok(())
    }

    async fn queue(&mut self, pipeline: &Pipeline, batch: Batch) -> Result<(), Closed> {
        let route = match self.routes.get(&batch.tag) {
            Some(r) => r.clone(),
            None => {
                if self.routes.len() >= MAX_CACHED_ROUTES
                    || self.routes_bytes + batch.tag.len() > MAX_CACHED_ROUTE_BYTES
                {
                    self.routes.clear();
                    self.routes_bytes = 0;
                }
                let r = pipeline.route(&batch.tag);
                self.routes_bytes += batch.tag.len();
                self.routes.insert(batch.tag.clone(), r.clone());
                r
            }
        };
        if route.is_empty() {
            pipeline.note_unrouted(&self.input, &batch);
            return Ok(());
        }
        let bytes = batch.bytes;
        let records = batch.len() as u64;
        let memory = match &self.memory {
            Some(budget) => Some(Arc::new(
                budget.reserve(bytes, &self.input.backpressure_ns).await?,
            )),
            None => None,
        };
        let batch = Arc::new(batch);
        for &i in route.iter() {
            let lane = &pipeline.lanes[i];
            let space = lane
                .space
                .reserve(bytes, &self.input.backpressure_ns)
                .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_logged_once_are_bounded_in_count_and_bytes() {
        let mut logged = LoggedTags::default();
        assert!(logged.first_time("a"));
        assert!(!logged.first_time("a"), "once per tag");
        let big = "b".repeat(MAX_LOGGED_UNROUTED_BYTES);
        assert!(!logged.first_time(&big), "past the byte bound");
        for i in 0..2 * MAX_LOGGED_UNROUTED {
            logged.first_time(&i.to_string());
        }
        assert_eq!(logged.tags.len(), MAX_LOGGED_UNROUTED);
        assert!(logged.bytes <= MAX_LOGGED_UNROUTED_BYTES);
    }
}
