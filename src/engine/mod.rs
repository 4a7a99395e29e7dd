//! The delivery engine: builds the plugin instances of a config, binds the inputs, runs the
//! output lanes, and shuts down in order (stop inputs, drain, flush within `Grace`).
//!
//! [`emitter`] is how batches reach the outputs' bounded queues; [`delivery`] flushes and
//! retries them; [`metrics`] counts everything.

pub mod delivery;
pub mod emitter;
pub mod metrics;

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, RetryLimit, Service};
use crate::filter::{self, FilterChain};
use crate::input::{self, BindError, InputContext, InputSpec};
use crate::monitoring;
use crate::output::{self, OutputSpec};
use crate::parser::Parser;
use crate::router::Matcher;
use delivery::{Backoff, LaneSettings};
pub use emitter::{Budget, Closed, Emitter, Lane, Pipeline};
use metrics::{Counter, FilterMetrics, Registry, Snapshot};
pub use metrics::{DropReason, InputMetrics, OutputMetrics};

/// A validated configuration, every plugin built, nothing bound or running yet.
pub struct Plan {
    pub service: Service,
    /// Parsers by name, for the filters that use them.
    pub parsers: Vec<Arc<Parser>>,
    pub inputs: Vec<InputSpec>,
    pub filters: FilterChain,
    pub outputs: Vec<OutputSpec>,
}

/// Instance numbers per plugin name: the second `forward` input is `forward.1`.
#[derive(Default)]
struct Numbering(HashMap<String, usize>);

impl Numbering {
    fn next(&mut self, section: &crate::config::Section) -> usize {
        let name = section.str("name").unwrap_or_default().to_ascii_lowercase();
        let n = self.0.entry(name).or_default();
        *n += 1;
        *n - 1
    }
}

impl Plan {
    /// Builds every plugin of `config`; the first error stops the build. Warnings (unknown keys,
    /// outputs that match nothing) are added to `config.warnings`.
    pub fn build(config: &mut Config) -> Result<Plan, ConfigError> {
        let mut parsers: Vec<Arc<Parser>> = Vec::new();
        for s in &config.parsers {
            if s.kind != crate::config::SectionKind::Parser {
                continue; // multiline parsers are read with the multiline filter
            }
            let p = Parser::from_section(s)?;
            if parsers.iter().any(|q| q.name == p.name) {
                config.warnings.push(format!(
                    "{}: parser '{}' is defined again; the later one is used",
                    s.loc, p.name
                ));
                parsers.retain(|q| q.name != p.name);
            }
            parsers.push(Arc::new(p));
        }
        let mut numbers = Numbering::default();
        let mut inputs = Vec::new();
        for s in &config.inputs {
            inputs.push(input::build(s, numbers.next(s))?);
        }
        let mut stages = Vec::new();
        for s in &config.filters {
            let ctx = filter::FilterContext { parsers: &parsers };
            stages.push(filter::build(s, numbers.next(s), &ctx)?);
        }
        let mut outputs = Vec::new();
        for s in &config.outputs {
            outputs.push(output::build(s, numbers.next(s), &config.service)?);
        }
        // As in Fluent Bit, a lone output of a lone input takes everything.
        if inputs.len() == 1 && outputs.len() == 1 && outputs[0].matcher.is_none() {
            outputs[0].matcher = Some(Matcher::wildcard("*"));
        }
        for o in &outputs {
            if o.matcher.is_none() {
                config.warnings.push(format!(
                    "output '{}' has no Match or Match_Regex rule: it will receive nothing",
                    o.name
                ));
            }
        }
        let sections: Vec<_> = config
            .inputs
            .iter()
            .chain(&config.filters)
            .chain(&config.outputs)
            .chain(
                config
                    .parsers
                    .iter()
                    .filter(|s| s.kind == crate::config::SectionKind::Parser),
            )
            .cloned()
            .collect();
        for s in &sections {
            // Keys the engine itself reads for every plugin.
            for key in ["name", "alias", "match", "match_regex", "log_level"] {
                s.all(key).for_each(drop);
            }
            config.warn_unread(s);
        }
        Ok(Plan {
            service: config.service.clone(),
            parsers,
            inputs,
            filters: FilterChain::new(stages),
            outputs,
        })
    }

    /// What the router would run, one line a plugin.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let s = &self.service;
        let _ = writeln!(
            out,
            "[SERVICE] Flush {}s, Grace {}s",
            s.flush.as_secs_f64(),
            s.grace.as_secs_f64()
        );
        if let Some(h) = &s.http {
            let health = h.health.as_ref().map_or_else(
                || "health check off".to_string(),
                |c| {
                    format!(
                        "health check: HC_Errors_Count {}, HC_Retry_Failure_Count {}, HC_Period {}s",
                        c.errors,
                        c.retry_failures,
                        c.period.as_secs_f64()
                    )
                },
            );
            let _ = writeln!(
                out,
                "[SERVICE] HTTP server on {}:{} ({health})",
                h.listen, h.port
            );
        }
        for i in &self.inputs {
            let limit = i
                .mem_buf_limit
                .map_or_else(|| "none".to_string(), |n| format!("{n} bytes"));
            let _ = writeln!(
                out,
                "[INPUT]   {}: {} (Mem_Buf_Limit {limit})",
                i.name,
                i.input.describe()
            );
        }
        for p in &self.parsers {
            let _ = writeln!(out, "[PARSER]  {}", p.name);
        }
        for (name, matcher) in self.filters.names() {
            let _ = writeln!(out, "[FILTER]  {name}: {}", matcher.describe());
        }
        for o in &self.outputs {
            let rule = o
                .matcher
                .as_ref()
                .map_or("nothing".into(), Matcher::describe);
            let retry = match o.retry_limit {
                RetryLimit::Unlimited => "no limit".to_string(),
                RetryLimit::Limited(n) => n.to_string(),
            };
            let _ = writeln!(
                out,
                "[OUTPUT]  {}: {rule} (Retry_Limit {retry}, Workers {}, queue limit {} bytes)",
                o.name, o.workers, o.queue_limit
            );
        }
        out
    }

    /// Binds every input (a failure starts nothing) and runs until told to stop (or until
    /// `control` closes), applying reloads as they come; then shuts down: inputs stop
    /// accepting and drain, outputs flush, all within `Grace`.
    pub async fn run(self, mut control: mpsc::Receiver<Control>) -> Result<Report, BindError> {
        let mut engine = Engine::start(self).await?;
        while let Some(c) = control.recv().await {
            match c {
                Control::Stop => break,
                Control::Reload(plan) => engine.reload(*plan).await,
            }
        }
        Ok(engine.shutdown().await)
    }
}

/// What the running engine is told.
pub enum Control {
    /// Replace the configuration with this one.
    Reload(Box<Plan>),
    Stop,
}

/// An input that is serving.
struct RunningInput {
    name: String,
    fingerprint: String,
    metrics: Arc<InputMetrics>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The filters and outputs of one configuration, running.
struct Generation {
    lane_tasks: Vec<JoinHandle<()>>,
    /// Stops the tasks that flush holding filters (multiline) on their clock.
    held_stop: CancellationToken,
    held_tasks: Vec<JoinHandle<()>>,
    filters: Vec<Arc<FilterMetrics>>,
    outputs: Vec<Arc<OutputMetrics>>,
    /// Cancelled once every lane has finished.
    done: CancellationToken,
}

/// A replaced generation, draining on its own task.
struct Retired {
    outputs: Vec<Arc<OutputMetrics>>,
    task: JoinHandle<()>,
}

/// The running router: inputs, the current pipeline, and the outputs of replaced
/// configurations that are still draining.
struct Engine {
    service: Service,
    started: Instant,
    /// The current pipeline; inputs' emitters read it at every batch.
    pipeline: watch::Sender<Arc<Pipeline>>,
    unrouted: Arc<Counter>,
    inputs: Vec<RunningInput>,
    current: Generation,
    retired: Vec<Retired>,
    registry: Arc<Registry>,
    http: Option<monitoring::Server>,
    reloads: u64,
    /// What the last reload could not start, by plugin name.
    not_applied: Vec<String>,
}

impl Engine {
    async fn start(mut plan: Plan) -> Result<Engine, BindError> {
        for spec in &mut plan.inputs {
            spec.input.bind().await?;
        }
        let started = Instant::now();
        let registry = Arc::new(Registry::default());
        let http = match &plan.service.http {
            Some(settings) => Some(
                monitoring::Server::start(settings, registry.clone(), started)
                    .await
                    .map_err(|source| BindError {
                        input: "http_server".into(),
                        address: format!("{}:{}", settings.listen, settings.port),
                        source,
                    })?,
            ),
            None => None,
        };
        let unrouted = Arc::new(Counter::default());
        let (current, pipeline) = Generation::start(
            &plan.service,
            plan.filters,
            plan.outputs,
            0,
            &unrouted,
            None,
        );
        let (pipeline, _) = watch::channel(pipeline);
        let mut engine = Engine {
            service: plan.service,
            started,
            pipeline,
            unrouted,
            inputs: Vec::new(),
            current,
            retired: Vec::new(),
            registry,
            http,
            reloads: 0,
            not_applied: Vec::new(),
        };
        for spec in plan.inputs {
            engine.spawn_input(spec);
        }
        engine.publish();
        Ok(engine)
    }

    fn spawn_input(&mut self, spec: InputSpec) {
        let metrics = Arc::new(InputMetrics::new(&spec.name));
        let emitter = Emitter::new(
            self.pipeline.subscribe(),
            metrics.clone(),
            spec.mem_buf_limit.map(Budget::new),
        );
        let stop = CancellationToken::new();
        let task = tokio::spawn(spec.input.run(InputContext {
            emitter,
            stop: stop.clone(),
            drain: self.service.grace / 2,
        }));
        self.inputs.push(RunningInput {
            name: spec.name,
            fingerprint: spec.fingerprint,
            metrics,
            stop,
            task,
        });
    }

    /// Shows the current plugins' counters to the monitoring server.
    fn publish(&self) {
        self.registry.set(Snapshot {
            inputs: self.inputs.iter().map(|i| i.metrics.clone()).collect(),
            filters: self.current.filters.clone(),
            outputs: self.current.outputs.clone(),
            reloads: self.reloads,
            not_applied: self.not_applied.clone(),
        });
    }

    /// Applies a new configuration. Inputs whose name and settings are unchanged keep running
    /// with their connections; the others stop (draining what their clients sent) before the
    /// new ones bind. New batches go to the new filters and outputs at once, while the old
    /// outputs deliver what they had queued and then stop.
    async fn reload(&mut self, mut plan: Plan) {
        let mut kept = Vec::new();
        let mut stopping = Vec::new();
        for running in std::mem::take(&mut self.inputs) {
            let same = plan
                .inputs
                .iter()
                .position(|s| s.name == running.name && s.fingerprint == running.fingerprint);
            match same {
                Some(i) => {
                    plan.inputs.remove(i);
                    kept.push(running);
                }
                None => stopping.push(running),
            }
        }
        self.inputs = kept;
        for old in &stopping {
            tracing::info!(
                "[reload] input {} is not in the new configuration as it was: stopping it",
                old.name
            );
            old.stop.cancel();
        }
        for mut old in stopping {
            if tokio::time::timeout(self.service.grace, &mut old.task)
                .await
                .is_err()
            {
                // Its connections would otherwise keep emitting into the pipeline.
                old.task.abort();
                tracing::warn!(
                    "[reload] input {} did not finish draining within Grace; closed",
                    old.name
                );
            }
        }

        let generation = self.pipeline.borrow().generation() + 1;
        let (next, pipeline) = Generation::start(
            &plan.service,
            plan.filters,
            plan.outputs,
            generation,
            &self.unrouted,
            Some(self.current.done.clone()),
        );
        // From here on every batch goes to the new pipeline; the old one is dropped once the
        // batches being emitted into it are queued, which closes its outputs' queues.
        drop(self.pipeline.send_replace(pipeline));
        let old = std::mem::replace(&mut self.current, next);
        self.retired.retain(|r| !r.task.is_finished());
        self.retired.push(Retired {
            outputs: old.outputs.clone(),
            task: tokio::spawn(old.finish()),
        });
        self.service = plan.service;

        let mut not_applied = Vec::new();
        for mut spec in plan.inputs {
            match spec.input.bind().await {
                Ok(()) => self.spawn_input(spec),
                Err(e) => {
                    tracing::error!("[reload] {e}; the input is not started");
                    not_applied.push(spec.name.clone());
                }
            }
        }
        if self.http.as_ref().map(|h| &h.settings) != self.service.http.as_ref() {
            if let Some(old) = self.http.take() {
                old.stop().await;
            }
            if let Some(settings) = &self.service.http {
                match monitoring::Server::start(settings, self.registry.clone(), self.started).await
                {
                    Ok(server) => self.http = Some(server),
                    Err(e) => {
                        tracing::error!(
                            "[reload] http_server: cannot listen on {}:{}: {e}",
                            settings.listen,
                            settings.port
                        );
                        not_applied.push("http_server".to_string());
                    }
                }
            }
        }
        self.reloads += 1;
        self.not_applied = not_applied;
        self.publish();
        let counts = format!(
            "{} inputs, {} filters, {} outputs",
            self.inputs.len(),
            self.current.filters.len(),
            self.current.outputs.len()
        );
        if self.not_applied.is_empty() {
            tracing::info!("[reload] configuration reloaded: {counts}");
        } else {
            tracing::error!(
                "[reload] configuration reloaded in part: {counts} running; not started: {}",
                self.not_applied.join(", ")
            );
        }
    }

    async fn shutdown(self) -> Report {
        let grace = self.service.grace;
        tracing::info!(
            "[engine] stopping: inputs stop accepting; queued records are flushed within Grace {}s",
            grace.as_secs_f64()
        );
        for i in &self.inputs {
            i.stop.cancel();
        }
        let input_metrics: Vec<_> = self.inputs.iter().map(|i| i.metrics.clone()).collect();
        let filter_metrics = self.current.filters.clone();
        let mut output_metrics = Vec::new();
        for outputs in self
            .retired
            .iter()
            .map(|r| &r.outputs)
            .chain([&self.current.outputs])
        {
            output_metrics.extend(outputs.iter().cloned());
        }
        let deadline = tokio::time::Instant::now() + grace;
        let self_unrouted = self.unrouted.get();
        let Engine {
            inputs,
            current,
            retired,
            pipeline,
            http,
            ..
        } = self;
        let finished = tokio::time::timeout_at(deadline, async {
            for i in inputs {
                let _ = i.task.await;
            }
            // With the inputs done, the pipeline is only held here and by the holding filters'
            // tasks: once they flush, the output queues close and the lanes finish.
            drop(pipeline);
            // Every generation flushes and drains at once: a retired output still retrying
            // must not hold back the current filters' final flush.
            let current = tokio::spawn(current.finish());
            for task in retired.into_iter().map(|r| r.task).chain([current]) {
                let _ = task.await;
            }
        })
        .await
        .is_ok();
        if let Some(server) = http {
            server.stop().await;
        }
        let mut undelivered = 0;
        for m in &output_metrics {
            let left = m.queued_records.get();
            if left > 0 {
                undelivered += left;
                m.dropped.add(DropReason::ShutdownTimeout, left);
                tracing::error!(
                    "[engine] output {}: {left} records ({} bytes) not delivered within Grace {}s",
                    m.name,
                    m.queued_bytes.get(),
                    grace.as_secs_f64()
                );
            }
        }
        if finished {
            tracing::info!("[engine] all queued records delivered; stopped");
        }
        for m in &input_metrics {
            tracing::info!(
                "[engine] input {}: records={} bytes={} errors={} dropped: invalid_event={} refused_frame={} no_route={}",
                m.name,
                m.records.get(),
                m.bytes.get(),
                m.errors.get(),
                m.dropped.get(DropReason::InvalidEvent),
                m.dropped.get(DropReason::RefusedFrame),
                m.dropped.get(DropReason::NoRoute),
            );
        }
        for m in &filter_metrics {
            tracing::info!(
                "[engine] filter {}: records_in={} records_out={} retagged={} unparsed={} incomplete={} tag_too_long={}",
                m.name,
                m.records_in.get(),
                m.records_out.get(),
                m.retagged.get(),
                m.unparsed.get(),
                m.incomplete.get(),
                m.tag_too_long.get(),
            );
        }
        for m in &output_metrics {
            tracing::info!(
                "[engine] output {}: proc_records={} proc_bytes={} errors={} retries={} retries_failed={} truncated={} dropped: retries_exhausted={} permanent_error={} shutdown_timeout={} oversize={}",
                m.name,
                m.proc_records.get(),
                m.proc_bytes.get(),
                m.errors.get(),
                m.retries.get(),
                m.retries_failed.get(),
                m.truncated.get(),
                m.dropped.get(DropReason::RetriesExhausted),
                m.dropped.get(DropReason::PermanentError),
                m.dropped.get(DropReason::ShutdownTimeout),
                m.dropped.get(DropReason::Oversize),
            );
        }
        Report {
            inputs: input_metrics,
            outputs: output_metrics,
            unrouted: self_unrouted,
            undelivered,
        }
    }
}

impl Generation {
    /// Starts the output lanes and the holding filters' clocks of a configuration, and builds
    /// the pipeline that feeds them.
    fn start(
        service: &Service,
        filters: FilterChain,
        outputs: Vec<OutputSpec>,
        generation: u64,
        unrouted: &Arc<Counter>,
        predecessor: Option<CancellationToken>,
    ) -> (Generation, Arc<Pipeline>) {
        let backoff = Backoff {
            base: service.scheduler_base,
            cap: service.scheduler_cap,
        };
        let mut lanes = Vec::new();
        let mut lane_tasks = Vec::new();
        let mut output_metrics = Vec::new();
        for o in outputs {
            let (tx, rx) = mpsc::unbounded_channel();
            let metrics = o.metrics.clone();
            let settings = Arc::new(LaneSettings {
                name: format!("output:{}:{}", o.plugin, o.name),
                flush: service.flush,
                retry_limit: o.retry_limit,
                backoff,
                workers: o.workers,
            });
            let wait = predecessor
                .clone()
                .filter(|_| o.output.waits_for_predecessor());
            let run = delivery::run(o.output, rx, settings, metrics.clone());
            lane_tasks.push(tokio::spawn(async move {
                if let Some(previous) = wait {
                    previous.cancelled().await;
                }
                run.await;
            }));
            lanes.push(Lane {
                matcher: o.matcher,
                queue: tx,
                space: Budget::new(o.queue_limit),
                metrics: metrics.clone(),
            });
            output_metrics.push(metrics);
        }
        let filter_metrics = filters.metrics();
        let tickers = filters.tickers();
        let pipeline = Arc::new(Pipeline::new(filters, lanes, generation, unrouted.clone()));
        // Filters that hold events (multiline) flush on their own clock, into the stages after
        // them; when the generation ends, they flush everything.
        let held_stop = CancellationToken::new();
        let mut held_tasks = Vec::new();
        for (stage, every) in tickers {
            let name = format!("emitter_for_{}", filter_metrics[stage].name);
            let mut emitter = Emitter::new(
                emitter::fixed(pipeline.clone()),
                Arc::new(InputMetrics::new(name)),
                None,
            );
            let stop = held_stop.clone();
            held_tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(every) => {
                            if emitter.emit_held(stage, false).await.is_err() { break; }
                        }
                        () = stop.cancelled() => {
                            let _ = emitter.emit_held(stage, true).await;
                            break;
                        }
                    }
                }
            }));
        }
        (
            Generation {
                lane_tasks,
                held_stop,
                held_tasks,
                filters: filter_metrics,
                outputs: output_metrics,
                done: CancellationToken::new(),
            },
            pipeline,
        )
    }

    /// Flushes the holding filters and waits for the outputs to deliver what is queued. The
    /// pipeline must be released first (the output queues close when it is dropped).
    async fn finish(self) {
        self.held_stop.cancel();
        for t in self.held_tasks {
            let _ = t.await;
        }
        for t in self.lane_tasks {
            let _ = t.await;
        }
        self.done.cancel();
    }
}

/// Counters at the end of a run.
pub struct Report {
    pub inputs: Vec<Arc<InputMetrics>>,
    pub outputs: Vec<Arc<OutputMetrics>>,
    pub unrouted: u64,
    /// Records still queued when `Grace` ran out.
    pub undelivered: u64,
}
