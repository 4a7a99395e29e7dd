//! The Prometheus text exposition of the counters. Metrics Fluent Bit also has keep its names
//! and `name` label, so existing dashboards and alerts work; the others are `logrouter_*` (and
//! the standard `process_*`).

use std::fmt::Write;

use crate::engine::metrics::{DropReason, Snapshot};

/// One metric family: its help line, type and samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                escape_label(self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A family with one sample per plugin instance.
macro_rules! per_plugin {
    ($out:expr, $list:expr, $name:literal, $kind:literal, $help:literal, |$m:ident| $value:expr) => {{
        let mut f = Family::new($out, $name, $kind, $help);
        for $m in $list.iter() {
            f.sample($name, &[("name", &$m.name)], $value);
        }
    }};
}

/// Process-wide values the caller reads.
pub struct Process {
    pub uptime_secs: u64,
    pub start_time_secs: f64,
    pub rss_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
}

pub fn render(s: &Snapshot, p: &Process) -> String {
    let mut out = String::with_capacity(8192);
    let o = &mut out;
    Family::new(
        o,
        "fluentbit_uptime",
        "counter",
        "Seconds the router has been running.",
    )
    .sample("fluentbit_uptime", &[], p.uptime_secs);
    Family::new(
        o,
        "fluentbit_hot_reloaded_times",
        "gauge",
        "Configuration reloads applied since start.",
    )
    .sample("fluentbit_hot_reloaded_times", &[], s.reloads);
    let mut f = Family::new(
        o,
        "logrouter_reload_not_applied",
        "gauge",
        "Plugins of the last reload that could not start (1 each).",
    );
    for name in &s.not_applied {
        f.sample("logrouter_reload_not_applied", &[("name", name)], 1);
    }
    Family::new(
        o,
        "fluentbit_build_info",
        "gauge",
        "Build version of the router (logrouter).",
    )
    .sample(
        "fluentbit_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("edition", "logrouter"),
            ("os", std::env::consts::OS),
        ],
        1,
    );
    Family::new(
        o,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch, in seconds.",
    )
    .sample("process_start_time_seconds", &[], p.start_time_secs);
    if let Some(rss) = p.rss_bytes {
        Family::new(
            o,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        )
        .sample("process_resident_memory_bytes", &[], rss);
    }
    if let Some(cpu) = p.cpu_seconds {
        Family::new(
            o,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
        )
        .sample("process_cpu_seconds_total", &[], cpu);
    }

    per_plugin!(
        o,
        s.inputs,
        "fluentbit_input_records_total",
        "counter",
        "Number of input records.",
        |m| m.records.get()
    );
    per_plugin!(
        o,
        s.inputs,
        "fluentbit_input_bytes_total",
        "counter",
        "Number of input bytes.",
        |m| m.bytes.get()
    );
    per_plugin!(
        o,
        s.inputs,
        "logrouter_input_errors_total",
        "counter",
        "Frames or lines refused and connections closed for bad input.",
        |m| m.errors.get()
    );
    per_plugin!(
        o,
        s.inputs,
        "logrouter_input_connections",
        "gauge",
        "Open client connections.",
        |m| m.connections.get()
    );
    per_plugin!(
        o,
        s.inputs,
        "logrouter_input_refused_connections_total",
        "counter",
        "Connections closed on accept because Max_Connections were open.",
        |m| m.refused_connections.get()
    );
    per_plugin!(
        o,
        s.inputs,
        "logrouter_input_timed_out_connections_total",
        "counter",
        "Connections closed because a frame did not complete within Frame_Timeout.",
        |m| m.timed_out_connections.get()
    );
    per_plugin!(
        o,
        s.inputs,
        "logrouter_input_auth_failures_total",
        "counter",
        "Connections closed because the TLS or forward handshake failed.",
        |m| m.auth_failures.get()
    );
    per_plugin!(
        o,
        s.inputs,
        "logrouter_input_backpressure_seconds_total",
        "counter",
        "Time connections waited for queue room, in seconds.",
        |m| m.backpressure_ns.get() as f64 / 1e9
    );

    per_plugin!(
        o,
        s.filters,
        "fluentbit_filter_records_total",
        "counter",
        "Number of records the filter received.",
        |m| m.records_in.get()
    );
    per_plugin!(
        o,
        s.filters,
        "fluentbit_filter_drop_records_total",
        "counter",
        "Number of records the filter dropped.",
        |m| m
            .records_in
            .get()
            .saturating_sub(m.records_out.get() + m.retagged.get())
    );
    per_plugin!(
        o,
        s.filters,
        "fluentbit_filter_add_records_total",
        "counter",
        "Number of records the filter added.",
        |m| (m.records_out.get() + m.retagged.get()).saturating_sub(m.records_in.get())
    );
    per_plugin!(
        o,
        s.filters,
        "logrouter_filter_retagged_records_total",
        "counter",
        "Records emitted under a new tag.",
        |m| m.retagged.get()
    );
    per_plugin!(
        o,
        s.filters,
        "logrouter_filter_tag_too_long_records_total",
        "counter",
        "Records left under their tag because the new tag was too long.",
        |m| m.tag_too_long.get()
    );
    per_plugin!(
        o,
        s.filters,
        "logrouter_filter_incomplete_records_total",
        "counter",
        "Lines the multiline filter flushed before their last piece (timeout, size, memory bound, shutdown).",
        |m| m.incomplete.get()
    );

    per_plugin!(
        o,
        s.outputs,
        "fluentbit_output_proc_records_total",
        "counter",
        "Number of processed output records.",
        |m| m.proc_records.get()
    );
    per_plugin!(
        o,
        s.outputs,
        "fluentbit_output_proc_bytes_total",
        "counter",
        "Number of processed output bytes.",
        |m| m.proc_bytes.get()
    );
    per_plugin!(
        o,
        s.outputs,
        "fluentbit_output_errors_total",
        "counter",
        "Number of output errors (failed flushes).",
        |m| m.errors.get()
    );
    per_plugin!(
        o,
        s.outputs,
        "fluentbit_output_retries_total",
        "counter",
        "Number of output retries.",
        |m| m.retries.get()
    );
    per_plugin!(
        o,
        s.outputs,
        "fluentbit_output_retries_failed_total",
        "counter",
        "Number of abandoned batches because the maximum number of re-tries was reached.",
        |m| m.retries_failed.get()
    );
    per_plugin!(
        o,
        s.outputs,
        "fluentbit_output_dropped_records_total",
        "counter",
        "Number of dropped records.",
        |m| m.dropped.total()
    );
    per_plugin!(
        o,
        s.outputs,
        "fluentbit_output_retried_records_total",
        "counter",
        "Number of retried records.",
        |m| m.retried_records.get()
    );
    per_plugin!(
        o,
        s.outputs,
        "logrouter_output_truncated_records_total",
        "counter",
        "Records shortened to fit the destination's record limit.",
        |m| m.truncated.get()
    );
    per_plugin!(
        o,
        s.outputs,
        "logrouter_output_queue_records",
        "gauge",
        "Records queued or in flight.",
        |m| m.queued_records.get()
    );
    per_plugin!(
        o,
        s.outputs,
        "logrouter_output_queue_bytes",
        "gauge",
        "Bytes queued or in flight.",
        |m| m.queued_bytes.get()
    );
    per_plugin!(
        o,
        s.outputs,
        "logrouter_output_queue_limit_bytes",
        "gauge",
        "Bound on the bytes queued; inputs wait when it is reached.",
        |m| m.queue_limit
    );

    let mut f = Family::new(
        o,
        "logrouter_dropped_records_total",
        "counter",
        "Records dropped on purpose, by plugin and reason.",
    );
    for m in &s.inputs {
        for r in DropReason::ALL {
            let n = m.dropped.get(r);
            if n > 0 || r.on_input() {
                f.sample(
                    "logrouter_dropped_records_total",
                    &[
                        ("plugin", "input"),
                        ("name", &m.name),
                        ("reason", r.label()),
                    ],
                    n,
                );
            }
        }
    }
    for m in &s.outputs {
        for r in DropReason::ALL {
            let n = m.dropped.get(r);
            if n > 0 || !r.on_input() {
                f.sample(
                    "logrouter_dropped_records_total",
                    &[
                        ("plugin", "output"),
                        ("name", &m.name),
                        ("reason", r.label()),
                    ],
                    n,
                );
            }
        }
    }
    out
}
