//! `/api/v1/metrics`: Fluent Bit's JSON shape (`input` / `filter` / `output` maps keyed by
//! instance name), with logrouter's extra counters beside Fluent Bit's.

use serde_json::{Map, Value, json};

use crate::engine::metrics::{DropReason, Drops, Snapshot};

fn drops(d: &Drops, input: bool) -> Value {
    DropReason::ALL
        .iter()
        .filter(|r| r.on_input() == input)
        .map(|r| (r.label().to_string(), json!(d.get(*r))))
        .collect::<Map<_, _>>()
        .into()
}

pub fn render(s: &Snapshot, process: Value) -> Value {
    let inputs: Map<String, Value> = s
        .inputs
        .iter()
        .map(|m| {
            let v = json!({
                "records": m.records.get(),
                "bytes": m.bytes.get(),
                "errors": m.errors.get(),
                "connections": m.connections.get(),
                "backpressure_seconds": m.backpressure_ns.get() as f64 / 1e9,
                "dropped_records": m.dropped.total(),
                "dropped_by_reason": drops(&m.dropped, true),
            });
            (m.name.clone(), v)
        })
        .collect();
    let filters: Map<String, Value> = s
        .filters
        .iter()
        .map(|m| {
            let (i, o) = (m.records_in.get(), m.records_out.get() + m.retagged.get());
            let v = json!({
                "records": i,
                "drop_records": i.saturating_sub(o),
                "add_records": o.saturating_sub(i),
                "retagged_records": m.retagged.get(),
                "tag_too_long_records": m.tag_too_long.get(),
            });
            (m.name.clone(), v)
        })
        .collect();
    let outputs: Map<String, Value> = s
        .outputs
        .iter()
        .map(|m| {
            let v = json!({
                "proc_records": m.proc_records.get(),
                "proc_bytes": m.proc_bytes.get(),
                "errors": m.errors.get(),
                "retries": m.retries.get(),
                "retries_failed": m.retries_failed.get(),
                "dropped_records": m.dropped.total(),
                "retried_records": m.retried_records.get(),
                "dropped_by_reason": drops(&m.dropped, false),
                "truncated_records": m.truncated.get(),
                "queue_records": m.queued_records.get(),
                "queue_bytes": m.queued_bytes.get(),
                "queue_limit_bytes": m.queue_limit,
            });
            (m.name.clone(), v)
        })
        .collect();
    json!({
        "input": inputs,
        "filter": filters,
        "output": outputs,
        "process": process,
    })
}
