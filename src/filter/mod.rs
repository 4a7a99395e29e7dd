//! Filters: each maps one event to zero or more events, possibly under a new tag.
//!
//! Filters run in config order, on events whose tag their `Match` takes, before routing to the
//! outputs. An event a filter emits under a new tag (`rewrite_tag`) continues with the filters
//! after that one, matched against its new tag, and is then routed by its new tag.

use crate::config::{ConfigError, Section};
use crate::record::{Batch, Event, Tag};
use crate::router::Matcher;

/// One filter plugin instance.
pub trait Filter: Send + Sync {
    /// Handles one event: emit it (changed or not) to keep it, emit nothing to drop it.
    fn filter(&self, tag: &Tag, event: Event, out: &mut FilterOutput<'_>);
}

/// Where a filter puts what it emits.
pub struct FilterOutput<'a> {
    same_tag: &'a mut Vec<Event>,
    retagged: &'a mut Vec<(Tag, Event)>,
}

impl FilterOutput<'_> {
    /// Emits an event under the tag it came with.
    pub fn emit(&mut self, event: Event) {
        self.same_tag.push(event);
    }

    /// Emits an event under another tag.
    pub fn emit_as(&mut self, tag: Tag, event: Event) {
        self.retagged.push((tag, event));
    }
}

/// A filter with the tags it applies to and its instance name (`grep.0`).
pub struct FilterStage {
    pub name: String,
    pub matcher: Matcher,
    pub filter: Box<dyn Filter>,
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

    /// Runs `batch` through every stage that matches its tag. Returns the resulting batches: the
    /// original tag's first, then one per tag that filters gave events.
    pub fn apply(&self, batch: Batch) -> Vec<Batch> {
        let mut done = Vec::new();
        self.run_from(0, batch, &mut done);
        done
    }

    fn run_from(&self, first_stage: usize, mut batch: Batch, done: &mut Vec<Batch>) {
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
            for event in std::mem::take(&mut batch.events) {
                let mut out = FilterOutput {
                    same_tag: &mut same,
                    retagged: &mut retagged,
                };
                stage.filter.filter(&batch.tag, event, &mut out);
                for e in same.drain(..) {
                    kept.push(e);
                }
            }
            batch = kept;
            for (tag, events) in group_by_tag(retagged) {
                let mut b = Batch::new(tag);
                events.into_iter().for_each(|e| b.push(e));
                self.run_from(i + 1, b, done);
            }
        }
        if !batch.is_empty() {
            done.insert(0, batch);
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

/// Builds a filter plugin instance from its section.
pub fn build(section: &Section, index: usize) -> Result<FilterStage, ConfigError> {
    let name = section.name()?;
    let matcher = Matcher::from_section(section)?.ok_or_else(|| {
        ConfigError::new(
            &section.loc,
            format!("filter '{name}' has no Match or Match_Regex rule"),
        )
    })?;
    let Some(filter) = plugin(&name, section)? else {
        let loc = section.entry("name").map_or(&section.loc, |e| &e.loc);
        return Err(ConfigError::new(
            loc,
            format!("filter plugin '{name}' is not known"),
        ));
    };
    Ok(FilterStage {
        name: format!("{name}.{index}"),
        matcher,
        filter,
    })
}

/// The filter plugins by `Name`. None exist yet: parsers and filters are the next piece of work.
fn plugin(_name: &str, _section: &Section) -> Result<Option<Box<dyn Filter>>, ConfigError> {
    Ok(None)
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
}
