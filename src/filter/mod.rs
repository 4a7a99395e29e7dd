//! Filters: each maps one event to zero or more events, possibly under a new tag.
//!
//! Filters run in config order, on events whose tag their `Match` takes, before routing to the
//! outputs. An event a filter emits under a new tag (`rewrite_tag`) continues with the filters
//! after that one, matched against its new tag, and is then routed by its new tag.

pub mod accessor;
mod ecs;
mod grep;
mod modify;
mod multiline;
mod parser;
mod record_modifier;
mod rewrite_tag;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;

use crate::config::{ConfigError, Entry, Section};
use crate::engine::metrics::FilterMetrics;
use crate::parser::Parser;
use crate::record::{Batch, Event, RecordBuilder, Tag};
use crate::router::Matcher;

/// One filter plugin instance.
pub trait Filter: Send + Sync {
    /// Handles one event: emit it (changed or not) to keep it, emit nothing to drop it.
    fn filter(&self, tag: &Tag, event: Event, out: &mut FilterOutput<'_>);

    /// For filters that hold events between calls: how often [`Filter::flush_held`] runs.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Emits (with `emit_as`, under their tags) held events that waited too long, or all of
    /// them when `shutting_down`.
    fn flush_held(&self, _shutting_down: bool, _out: &mut FilterOutput<'_>) {}
}

/// Where a filter puts what it emits.
pub struct FilterOutput<'a> {
    same_tag: &'a mut Vec<Event>,
    retagged: &'a mut Vec<(Tag, Event)>,
    /// Shared space for the records filters build, so building one allocates nothing.
    arena: &'a mut BytesMut,
}

impl FilterOutput<'_> {
    /// Starts building a new record.
    pub fn builder(&mut self) -> RecordBuilder<'_> {
        RecordBuilder::new(self.arena)
    }

    /// Emits an event under the tag it came with.
    pub fn emit(&mut self, event: Event) {
        self.same_tag.push(event);
    }

    /// Emits an event under another tag.
    pub fn emit_as(&mut self, tag: Tag, event: Event) {
        self.retagged.push((tag, event));
    }
}

/// A filter with the tags it applies to, its instance name (`grep.0`) and its counters.
pub struct FilterStage {
    pub name: String,
    pub matcher: Matcher,
    pub filter: Box<dyn Filter>,
    pub metrics: Arc<FilterMetrics>,
}

/// The filters of a config, in order.
#[derive(Default)]
pub struct FilterChain {
    stages: Vec<FilterStage>,
}

impl FilterChain {
    pub fn new(stages: Vec<FilterStage>) -> Self {
        FilterChain { stages }
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = (&str, &Matcher)> {
        self.stages.iter().map(|s| (s.name.as_str(), &s.matcher))
    }

    pub fn metrics(&self) -> Vec<Arc<FilterMetrics>> {
        self.stages.iter().map(|s| s.metrics.clone()).collect()
    }

    /// Stages that hold events, with how often they must be flushed.
    pub fn tickers(&self) -> Vec<(usize, Duration)> {
        self.stages
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.filter.tick_interval().map(|d| (i, d)))
            .collect()
    }

    /// Flushes what stage `index` holds (everything when `shutting_down`) and runs it through
    /// the stages after it.
    pub fn flush_held(&self, index: usize, shutting_down: bool) -> Vec<Batch> {
        let Some(stage) = self.stages.get(index) else {
            return Vec::new();
        };
        let (mut same, mut retagged, mut arena) = (Vec::new(), Vec::new(), BytesMut::new());
        stage.filter.flush_held(
            shutting_down,
            &mut FilterOutput {
                same_tag: &mut same,
                retagged: &mut retagged,
                arena: &mut arena,
            },
        );
        let mut done = Vec::new();
        for (tag, events) in group_by_tag(retagged) {
            let mut b = Batch::new(tag);
            events.into_iter().for_each(|e| b.push(e));
            self.run_from(index + 1, b, &mut done);
        }
        done
    }

    /// Runs `batch` through every stage that matches its tag. Returns the resulting batches: the
    /// original tag's first, then one per tag that filters gave events.
    pub fn apply(&self, batch: Batch) -> Vec<Batch> {
        let mut done = Vec::new();
        self.run_from(0, batch, &mut done);
        done
    }

    fn run_from(&self, first_stage: usize, mut batch: Batch, done: &mut Vec<Batch>) {
        // This batch goes before the batches its events are re-tagged into, in their order.
        let position = done.len();
        for (i, stage) in self.stages.iter().enumerate().skip(first_stage) {
            if batch.is_empty() {
                return;
            }
            if !stage.matcher.matches(&batch.tag) {
                continue;
            }
            let mut kept = Batch::new(batch.tag.clone());
            let mut same = Vec::with_capacity(1);
            let mut retagged = Vec::new();
            let mut arena = BytesMut::with_capacity(crate::record::arena_for(batch.bytes));
            let records_in = batch.len();
            for event in std::mem::take(&mut batch.events) {
                let mut out = FilterOutput {
                    same_tag: &mut same,
                    retagged: &mut retagged,
                    arena: &mut arena,
                };
                stage.filter.filter(&batch.tag, event, &mut out);
                for e in same.drain(..) {
                    kept.push(e);
                }
            }
            let m = &stage.metrics;
            m.records_in.add(records_in as u64);
            m.records_out.add(kept.len() as u64);
            m.retagged.add(retagged.len() as u64);
            batch = kept;
            for (tag, events) in group_by_tag(retagged) {
                let mut b = Batch::new(tag);
                events.into_iter().for_each(|e| b.push(e));
                self.run_from(i + 1, b, done);
            }
        }
        if !batch.is_empty() {
            done.insert(position, batch);
        }
    }
}

fn group_by_tag(events: Vec<(Tag, Event)>) -> Vec<(Tag, Vec<Event>)> {
    let mut groups: Vec<(Tag, Vec<Event>)> = Vec::new();
    for (tag, event) in events {
        match groups.iter_mut().find(|(t, _)| *t == tag) {
            Some((_, v)) => v.push(event),
            None => groups.push((tag, vec![event])),
        }
    }
    groups
}

/// What filters may refer to when they are built.
pub struct FilterContext<'a> {
    pub parsers: &'a [Arc<Parser>],
}

/// Builds a filter plugin instance from its section.
pub fn build(
    section: &Section,
    index: usize,
    ctx: &FilterContext<'_>,
) -> Result<FilterStage, ConfigError> {
    let name = section.name()?;
    let matcher = Matcher::from_section(section)?.ok_or_else(|| {
        ConfigError::new(
            &section.loc,
            format!("filter '{name}' has no Match or Match_Regex rule"),
        )
    })?;
    let instance = format!("{name}.{index}");
    let metrics = Arc::new(FilterMetrics::new(&instance));
    let Some(filter) = plugin(&name, section, ctx, &metrics)? else {
        let loc = section.entry("name").map_or(&section.loc, |e| &e.loc);
        return Err(ConfigError::new(
            loc,
            format!("filter plugin '{name}' is not known"),
        ));
    };
    Ok(FilterStage {
        name: instance,
        matcher,
        filter,
        metrics,
    })
}

/// The filter plugins by `Name`.
fn plugin(
    name: &str,
    section: &Section,
    ctx: &FilterContext<'_>,
    metrics: &Arc<FilterMetrics>,
) -> Result<Option<Box<dyn Filter>>, ConfigError> {
    Ok(Some(match name {
        "parser" => Box::new(parser::ParserFilter::from_section(
            section,
            ctx,
            metrics.clone(),
        )?),
        "record_modifier" => Box::new(record_modifier::RecordModifier::from_section(section)?),
        "grep" => Box::new(grep::Grep::from_section(section)?),
        "modify" => Box::new(modify::Modify::from_section(section)?),
        "rewrite_tag" => Box::new(rewrite_tag::RewriteTag::from_section(
            section,
            metrics.clone(),
        )?),
        "ecs" => Box::new(ecs::Ecs::from_section(section)?),
        "multiline" => Box::new(multiline::Multiline::from_section(
            section,
            metrics.clone(),
        )?),
        _ => return Ok(None),
    }))
}

/// Splits a config value into whitespace-separated tokens; double quotes group a token with
/// spaces. At most `max` tokens: the last one takes the rest of the line.
pub fn tokens(entry: &Entry, max: usize) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    let mut rest = entry.value.trim();
    while !rest.is_empty() {
        if out.len() + 1 == max {
            out.push(unquote(rest).to_string());
            break;
        }
        let (tok, tail) = if let Some(q) = rest.strip_prefix('"') {
            let end = q.find('"').ok_or_else(|| {
                ConfigError::new(&entry.loc, format!("{}: unclosed quote", entry.key))
            })?;
            (&q[..end], &q[end + 1..])
        } else {
            rest.split_at(rest.find(char::is_whitespace).unwrap_or(rest.len()))
        };
        out.push(tok.to_string());
        rest = tail.trim_start();
    }
    Ok(out)
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(s)
}

/// A filter that emits under a fixed tag: used by tests of the chain.
#[cfg(test)]
struct Retag(Tag);

#[cfg(test)]
impl Filter for Retag {
    fn filter(&self, _tag: &Tag, event: Event, out: &mut FilterOutput<'_>) {
        out.emit_as(self.0.clone(), event);
    }
}

/// A filter that drops events whose `drop` field is set.
#[cfg(test)]
struct DropMarked;

#[cfg(test)]
impl Filter for DropMarked {
    fn filter(&self, _tag: &Tag, event: Event, out: &mut FilterOutput<'_>) {
        if event.get("drop").is_none() {
            out.emit(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::EventTime;
    use std::sync::Arc;

    fn batch(tag: &str, n: usize) -> Batch {
        let mut b = Batch::new(Arc::from(tag));
        for i in 0..n {
            let v = i.to_string();
            let pairs: Vec<(&str, &str)> = if i % 2 == 1 {
                vec![("n", &v), ("drop", "y")]
            } else {
                vec![("n", &v)]
            };
            b.push(Event::from_pairs(EventTime::default(), &pairs));
        }
        b
    }

    fn stage(m: &str, filter: Box<dyn Filter>) -> FilterStage {
        FilterStage {
            name: "t.0".into(),
            matcher: Matcher::wildcard(m),
            filter,
            metrics: Arc::default(),
        }
    }

    #[test]
    fn filters_apply_only_to_matching_tags() {
        let chain = FilterChain::new(vec![stage("app.*", Box::new(DropMarked))]);
        assert_eq!(chain.apply(batch("app.x", 4))[0].len(), 2);
        assert_eq!(chain.apply(batch("web", 4))[0].len(), 4);
    }

    #[test]
    fn retagged_events_skip_the_stages_already_passed() {
        let chain = FilterChain::new(vec![
            stage("*", Box::new(DropMarked)),
            stage("in", Box::new(Retag(Arc::from("out")))),
            stage("in", Box::new(DropMarked)),
            stage("out", Box::new(Retag(Arc::from("final")))),
        ]);
        let out = chain.apply(batch("in", 4));
        assert_eq!(out.len(), 1);
        assert_eq!(&*out[0].tag, "final");
        assert_eq!(out[0].len(), 2);
    }

    #[test]
    fn the_original_tag_comes_first_then_new_tags_in_order() {
        struct Split;
        impl Filter for Split {
            fn filter(&self, _tag: &Tag, event: Event, out: &mut FilterOutput<'_>) {
                match event.get("n") {
                    Some(crate::msgpack::ValueRef::Str(b"1")) => {
                        out.emit_as(Arc::from("one"), event)
                    }
                    Some(crate::msgpack::ValueRef::Str(b"2")) => {
                        out.emit_as(Arc::from("two"), event)
                    }
                    _ => out.emit(event),
                }
            }
        }
        let chain = FilterChain::new(vec![stage("*", Box::new(Split))]);
        let tags: Vec<_> = chain
            .apply(batch("in", 4))
            .iter()
            .map(|b| b.tag.to_string())
            .collect();
        assert_eq!(tags, ["in", "one", "two"]);
    }
}

/// Helpers for the filters' unit tests: build a filter from `Key value` lines and run JSON
/// records through it.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::config::{Location, SectionKind};
    use crate::msgpack::json::JsonStyle;
    use crate::record::EventTime;

    pub fn section(lines: &[(&str, &str)]) -> Section {
        let mut s = Section::new(SectionKind::Filter, Location::command_line());
        for (i, (k, v)) in lines.iter().enumerate() {
            s.push(*k, *v, Location::new(Location::command_line().file, i + 1));
        }
        s
    }

    pub fn event(json: &str) -> Event {
        let mut mp = Vec::new();
        crate::parser::json::object_to_msgpack(json.as_bytes(), &mut mp).expect("test JSON");
        Event::new(EventTime::from_parts(1, 0), bytes::Bytes::from(mp)).unwrap()
    }

    pub fn to_json(e: &Event) -> String {
        let mut out = Vec::new();
        JsonStyle {
            escape_unicode: false,
        }
        .value(&mut out, &e.record);
        String::from_utf8(out).unwrap()
    }

    /// Runs records through `filter` under `tag`; returns (tag, record JSON) of what came out,
    /// same-tag records first.
    pub fn run(filter: &dyn Filter, tag: &str, records: &[&str]) -> Vec<(String, String)> {
        let tag: Tag = Arc::from(tag);
        let (mut same, mut retagged, mut arena) = (Vec::new(), Vec::new(), BytesMut::new());
        for r in records {
            let mut out = FilterOutput {
                same_tag: &mut same,
                retagged: &mut retagged,
                arena: &mut arena,
            };
            filter.filter(&tag, event(r), &mut out);
        }
        same.iter()
            .map(|e| (tag.to_string(), to_json(e)))
            .chain(retagged.iter().map(|(t, e)| (t.to_string(), to_json(e))))
            .collect()
    }

    /// Just the record JSON of what `run` returns.
    pub fn records(filter: &dyn Filter, records: &[&str]) -> Vec<String> {
        run(filter, "t", records)
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    }
}
