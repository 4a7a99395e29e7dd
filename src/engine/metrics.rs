//! Counters per input and output. They live here so every stage can count; the monitoring
//! endpoint that exposes them reads the same structs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (queue occupancy).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why records were dropped on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// An event with a bad time or a record that is not a map.
    InvalidEvent,
    /// A whole frame refused (bad shape, bad tag, bad compression).
    RefusedFrame,
    /// No output's rule matched the tag.
    NoRoute,
    /// Delivery kept failing past `Retry_Limit`.
    RetriesExhausted,
    /// The output said the records can never be delivered.
    PermanentError,
    /// Still queued when the shutdown grace period ended.
    ShutdownTimeout,
    /// Larger than the destination accepts for one record.
    Oversize,
}

impl DropReason {
    pub const ALL: [DropReason; 7] = [
        DropReason::InvalidEvent,
        DropReason::RefusedFrame,
        DropReason::NoRoute,
        DropReason::RetriesExhausted,
        DropReason::PermanentError,
        DropReason::ShutdownTimeout,
        DropReason::Oversize,
    ];

    /// Whether inputs (rather than outputs) drop for this reason.
    pub fn on_input(self) -> bool {
        matches!(
            self,
            DropReason::InvalidEvent | DropReason::RefusedFrame | DropReason::NoRoute
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            DropReason::InvalidEvent => "invalid_event",
            DropReason::RefusedFrame => "refused_frame",
            DropReason::NoRoute => "no_route",
            DropReason::RetriesExhausted => "retries_exhausted",
            DropReason::PermanentError => "permanent_error",
            DropReason::ShutdownTimeout => "shutdown_timeout",
            DropReason::Oversize => "oversize",
        }
    }
}

/// Dropped records, by reason.
#[derive(Debug, Default)]
pub struct Drops([Counter; 7]);

impl Drops {
    pub fn add(&self, reason: DropReason, n: u64) {
        self.0[reason as usize].add(n);
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason as usize].get()
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(Counter::get).sum()
    }
}

#[derive(Debug, Default)]
pub struct InputMetrics {
    /// Instance name, e.g. `forward.0`.
    pub name: String,
    pub records: Counter,
    pub bytes: Counter,
    /// Frames refused and connections closed for bad input.
    pub errors: Counter,
    pub connections: Gauge,
    /// Connections closed on accept because `Max_Connections` were open.
    pub refused_connections: Counter,
    /// Connections closed because a frame did not complete within `Frame_Timeout`.
    pub timed_out_connections: Counter,
    /// Connections closed because the forward handshake failed (bad key, user or PING).
    pub auth_failures: Counter,
    pub dropped: Drops,
    /// Nanoseconds its connections spent waiting for queue room (backpressure).
    pub backpressure_ns: Counter,
}

impl InputMetrics {
    pub fn new(name: impl Into<String>) -> Self {
        InputMetrics {
            name: name.into(),
            ..Default::default()
        }
    }
}

/// Counters of one filter instance.
#[derive(Debug, Default)]
pub struct FilterMetrics {
    /// Instance name, e.g. `grep.0`.
    pub name: String,
    pub records_in: Counter,
    /// Records emitted under their own tag (`records_in - records_out - retagged` were dropped
    /// on purpose, e.g. by grep).
    pub records_out: Counter,
    pub retagged: Counter,
    /// Records the parser filter passed unchanged because no parser matched.
    pub unparsed: Counter,
    /// Groups the multiline filter flushed before their last piece (timeout, size, shutdown).
    pub incomplete: Counter,
    /// Records `rewrite_tag` left under their tag because the new one was longer than a tag
    /// may be.
    pub tag_too_long: Counter,
}

impl FilterMetrics {
    pub fn new(name: impl Into<String>) -> Self {
        FilterMetrics {
            name: name.into(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Default)]
pub struct OutputMetrics {
    /// Instance name, e.g. `file.0`.
    pub name: String,
    /// Records and bytes delivered.
    pub proc_records: Counter,
    pub proc_bytes: Counter,
    /// Failed flush attempts.
    pub errors: Counter,
    /// Retries scheduled, and chunks whose retries ran out.
    pub retries: Counter,
    pub retries_failed: Counter,
    /// Records in the chunks that were retried, once per retry.
    pub retried_records: Counter,
    pub dropped: Drops,
    /// Records shortened to fit the destination's record limit.
    pub truncated: Counter,
    /// Records and bytes queued or in flight, and the bound on the bytes.
    pub queued_records: Gauge,
    pub queued_bytes: Gauge,
    pub queue_limit: u64,
}

impl OutputMetrics {
    pub fn new(name: impl Into<String>, queue_limit: u64) -> Self {
        OutputMetrics {
            name: name.into(),
            queue_limit,
            ..Default::default()
        }
    }
}

/// The counters of the running configuration, for the monitoring server. A reload puts in a
/// new set: inputs kept across the reload keep their counters, new plugins start at zero.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub inputs: Vec<Arc<InputMetrics>>,
    pub filters: Vec<Arc<FilterMetrics>>,
    pub outputs: Vec<Arc<OutputMetrics>>,
    /// Reloads applied since start.
    pub reloads: u64,
    /// What the last reload could not start (an input that could not bind, the HTTP server).
    pub not_applied: Vec<String>,
}

impl Snapshot {
    /// Failed flushes and chunks out of retries, summed over the outputs (what the health
    /// check watches).
    pub fn output_failures(&self) -> (u64, u64) {
        self.outputs.iter().fold((0, 0), |(e, r), o| {
            (e + o.errors.get(), r + o.retries_failed.get())
        })
    }
}

/// Where the monitoring server finds the current [`Snapshot`].
#[derive(Debug, Default)]
pub struct Registry {
    current: RwLock<Arc<Snapshot>>,
}

impl Registry {
    pub fn set(&self, snapshot: Snapshot) {
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(snapshot);
        }
    }

    pub fn get(&self) -> Arc<Snapshot> {
        self.current.read().map(|s| s.clone()).unwrap_or_default()
    }
}
