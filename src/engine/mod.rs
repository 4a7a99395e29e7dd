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
use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, RetryLimit, Service};
use crate::filter::{self, FilterChain};
use crate::input::{self, BindError, InputContext, InputSpec};
use crate::output::{self, OutputSpec};
use crate::parser::Parser;
use crate::router::Matcher;
use delivery::{Backoff, LaneSettings};
pub use emitter::{Budget, Closed, Emitter, Lane, Pipeline};
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

    /// Binds every input (a failure starts nothing), runs until `stop` completes, then shuts
    /// down: inputs stop accepting and drain, outputs flush, all within `Grace`.
    pub async fn run(mut self, stop: impl Future<Output = ()>) -> Result<Report, BindError> {
        for spec in &mut self.inputs {
            spec.input.bind().await?;
        }
        let backoff = Backoff {
            base: self.service.scheduler_base,
            cap: self.service.scheduler_cap,
        };
        let mut lanes = Vec::new();
        let mut lane_tasks = Vec::new();
        let mut output_metrics = Vec::new();
        for o in self.outputs {
            let (tx, rx) = mpsc::unbounded_channel();
            let metrics = o.metrics.clone();
            let settings = Arc::new(LaneSettings {
                name: format!("output:{}:{}", o.plugin, o.name),
                flush: self.service.flush,
                retry_limit: o.retry_limit,
                backoff,
                workers: o.workers,
            });
            lane_tasks.push(tokio::spawn(delivery::run(
                o.output,
                rx,
                settings,
                metrics.clone(),
            )));
            lanes.push(Lane {
                matcher: o.matcher,
                queue: tx,
                space: Budget::new(o.queue_limit),
                metrics: metrics.clone(),
            });
            output_metrics.push(metrics);
        }
        let filter_metrics = self.filters.metrics();
        let tickers = self.filters.tickers();
        let pipeline = Arc::new(Pipeline::new(self.filters, lanes));
        // Filters that hold events (multiline) flush on their own clock, into the stages after
        // them; at shutdown, once inputs are done, they flush everything.
        let held_stop = CancellationToken::new();
        let mut held_tasks = Vec::new();
        for (stage, every) in tickers {
            let name = format!("emitter_for_{}", filter_metrics[stage].name);
            let mut emitter =
                Emitter::new(pipeline.clone(), Arc::new(InputMetrics::new(name)), None);
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
        let stopping = CancellationToken::new();
        let mut input_tasks = Vec::new();
        let mut input_metrics = Vec::new();
        for spec in self.inputs {
            let metrics = Arc::new(InputMetrics::new(&spec.name));
            input_metrics.push(metrics.clone());
            let emitter = Emitter::new(
                pipeline.clone(),
                metrics,
                spec.mem_buf_limit.map(Budget::new),
            );
            input_tasks.push(tokio::spawn(spec.input.run(InputContext {
                emitter,
                stop: stopping.clone(),
                drain: self.service.grace / 2,
            })));
        }
        // From here on only the inputs hold the pipeline: when they end, the queues close.
        let unrouted = pipeline.unrouted();
        drop(pipeline);

        stop.await;
        let grace = self.service.grace;
        tracing::info!(
            "[engine] stopping: inputs stop accepting; queued records are flushed within Grace {}s",
            grace.as_secs_f64()
        );
        stopping.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        let finished = tokio::time::timeout_at(deadline, async {
            for t in input_tasks {
                let _ = t.await;
            }
            held_stop.cancel();
            for t in held_tasks {
                let _ = t.await;
            }
            for t in lane_tasks {
                let _ = t.await;
            }
        })
        .await
        .is_ok();
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
                "[engine] filter {}: records_in={} records_out={} retagged={} unparsed={} incomplete={}",
                m.name,
                m.records_in.get(),
                m.records_out.get(),
                m.retagged.get(),
                m.unparsed.get(),
                m.incomplete.get(),
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
        Ok(Report {
            inputs: input_metrics,
            outputs: output_metrics,
            unrouted: unrouted.get(),
            undelivered,
        })
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
