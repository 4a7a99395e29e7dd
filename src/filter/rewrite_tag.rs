//! `rewrite_tag`: re-emits records under a new tag when a field matches.
//!
//! `Rule $KEY REGEX NEW_TAG KEEP`: the first rule whose regex matches the field (a string) wins.
//! NEW_TAG may use `$TAG`, `$TAG[n]` (the tag split on dots), `$0`..`$9` (the regex's captures)
//! and record accessors (`$key`, `$key['sub']`). With KEEP true the original record also goes
//! on under its old tag. The re-tagged record continues with the filters after this one and
//! is routed by its new tag (so a rule cannot loop back into itself).
//!
//! A new tag is built from record content, so it is bounded like a tag on the wire: a record
//! whose new tag would be longer than `MAX_TAG_BYTES` stays under its tag, and is counted
//! (`tag_too_long`) and logged (the first time, and then every 10,000th).

use std::sync::Arc;

use regex::bytes::Regex;

use super::accessor::{Accessor, value_text};
use super::{Filter, FilterOutput, tokens};
use crate::config::{ConfigError, Entry, Section};
use crate::engine::metrics::FilterMetrics;
use crate::msgpack::ValueRef;
use crate::record::{Event, MAX_TAG_BYTES, Tag};

#[derive(Debug)]
enum Part {
    Text(String),
    Tag,
    TagElement(usize),
    Capture(usize),
    Field(Accessor),
}

struct Rule {
    key: Accessor,
    regex: Regex,
    tag: Vec<Part>,
    keep: bool,
}

pub struct RewriteTag {
    rules: Vec<Rule>,
    metrics: Arc<FilterMetrics>,
}

impl RewriteTag {
    pub fn from_section(
        section: &Section,
        metrics: Arc<FilterMetrics>,
    ) -> Result<Self, ConfigError> {
        let mut rules = Vec::new();
        for e in section.all("rule") {
            let t = tokens(e, 4)?;
            let [key, pattern, tag, keep] = t.as_slice() else {
                return Err(ConfigError::new(
                    &e.loc,
                    "Rule needs four parts: $KEY REGEX NEW_TAG KEEP",
                ));
            };
            rules.push(Rule {
                key: Accessor::parse(key).map_err(|m| ConfigError::new(&e.loc, m))?,
                regex: Regex::new(pattern).map_err(|err| {
                    ConfigError::new(&e.loc, format!("Rule: regex does not compile: {err}"))
                })?,
                tag: template(e, tag)?,
                keep: crate::config::value::parse_bool(keep)
                    .map_err(|m| ConfigError::new(&e.loc, format!("Rule KEEP: {m}")))?,
            });
        }
        if rules.is_empty() {
            return Err(ConfigError::new(
                &section.loc,
                "filter rewrite_tag needs at least one Rule",
            ));
        }
        // Fluent Bit's emitter settings: re-tagged records need no separate emitter here.
        for key in [
            "emitter_name",
            "emitter_storage.type",
            "emitter_mem_buf_limit",
        ] {
            section.all(key).for_each(drop);
        }
        Ok(RewriteTag { rules, metrics })
    }
}

/// Parses a NEW_TAG template.
fn template(e: &Entry, s: &str) -> Result<Vec<Part>, ConfigError> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        text.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        // The accessor runs over name characters and ['...'] / [n] steps.
        let mut end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(after.len());
        while after[end..].starts_with('[') {
            match after[end..].find(']') {
                Some(close) => end += close + 1,
                None => break,
            }
        }
        let token = &after[..end];
        if token.is_empty() {
            text.push('$');
            rest = after;
            continue;
        }
        if !text.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut text)));
        }
        let part = if token == "TAG" {
            Part::Tag
        } else if let Some(n) = token.strip_prefix("TAG[").and_then(|t| t.strip_suffix(']')) {
            Part::TagElement(
                n.parse()
                    .map_err(|_| ConfigError::new(&e.loc, format!("'$TAG[{n}]' needs a number")))?,
            )
        } else if token.len() == 1 && token.as_bytes()[0].is_ascii_digit() {
            Part::Capture(usize::from(token.as_bytes()[0] - b'0'))
        } else {
            Part::Field(
                Accessor::parse(&format!("${token}")).map_err(|m| ConfigError::new(&e.loc, m))?,
            )
        };
        parts.push(part);
        rest = &after[end..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

impl Rule {
    /// The new tag if this rule matches `event`.
    fn apply(&self, tag: &str, event: &Event) -> Option<String> {
        let Some(ValueRef::Str(value) | ValueRef::Bin(value)) = self.key.get(event) else {
            return None;
        };
        let caps = self.regex.captures(value)?;
        let mut out = String::new();
        for part in &self.tag {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Tag => out.push_str(tag),
                Part::TagElement(n) => out.push_str(tag.split('.').nth(*n).unwrap_or("")),
                Part::Capture(n) => {
                    if let Some(m) = caps.get(*n) {
                        out.push_str(&String::from_utf8_lossy(m.as_bytes()));
                    }
                }
                Part::Field(a) => {
                    let mut scratch = String::new();
                    if let Some(v) = a.get(event)
                        && let Some(t) = value_text(&v, &mut scratch)
                    {
                        out.push_str(&String::from_utf8_lossy(t));
                    }
                }
            }
        }
        Some(out)
    }
}

impl Filter for RewriteTag {
    fn filter(&self, tag: &Tag, event: Event, out: &mut FilterOutput<'_>) {
        for rule in &self.rules {
            if let Some(new_tag) = rule.apply(tag, &event) {
                if new_tag.len() > MAX_TAG_BYTES {
                    let n = self.metrics.tag_too_long.get();
                    self.metrics.tag_too_long.inc();
                    if n.is_multiple_of(10_000) {
                        tracing::warn!(
                            "[filter:{}] a rule built a tag of {} bytes (at most {MAX_TAG_BYTES}) from a record tagged '{tag}': the record stays under its tag ({} so far)",
                            self.metrics.name,
                            new_tag.len(),
                            n + 1
                        );
                    }
                    break;
                }
                if rule.keep {
                    out.emit(event.clone());
                }
                out.emit_as(Arc::from(new_tag), event);
                return;
            }
        }
        out.emit(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testing::{run, section};

    fn rw(rules: &[&str]) -> RewriteTag {
        let lines: Vec<(&str, &str)> = rules.iter().map(|r| ("Rule", *r)).collect();
        RewriteTag::from_section(&section(&lines), Arc::default()).unwrap()
    }

    #[test]
    fn templates_captures_and_keep() {
        let f = rw(&[
            r"$log ^(error|warn)\b logs.$1.$TAG[1].$app false",
            r"$log . all.$TAG true",
        ]);
        let out = run(
            &f,
            "web.nginx",
            &[
                r#"{"log":"error boom","app":"shop"}"#,
                r#"{"log":"hello"}"#,
                r#"{"x":1}"#,
            ],
        );
        assert_eq!(
            out,
            [
                ("web.nginx".to_string(), r#"{"log":"hello"}"#.to_string()),
                ("web.nginx".to_string(), r#"{"x":1}"#.to_string()),
                (
                    "logs.error.nginx.shop".to_string(),
                    r#"{"log":"error boom","app":"shop"}"#.to_string()
                ),
                (
                    "all.web.nginx".to_string(),
                    r#"{"log":"hello"}"#.to_string()
                ),
            ]
        );
    }

    #[test]
    fn quoted_regex_with_spaces_and_bad_rules() {
        let f = rw(&[r#"$msg "^access log" access false"#]);
        let out = run(&f, "t", &[r#"{"msg":"access log line"}"#]);
        assert_eq!(out[0].0, "access");
        assert!(RewriteTag::from_section(&section(&[("Rule", "$a b")]), Arc::default()).is_err());
        assert!(
            RewriteTag::from_section(&section(&[("Rule", "$a ( t false")]), Arc::default())
                .is_err()
        );
        assert!(
            RewriteTag::from_section(&section(&[("Rule", "$a x t maybe")]), Arc::default())
                .is_err()
        );
    }

    #[test]
    fn a_new_tag_built_too_long_leaves_the_record_under_its_tag() {
        let metrics = Arc::new(FilterMetrics::new("rewrite_tag.0"));
        let lines = [("Rule", r"$log ^(.*)$ x.$1 false")];
        let f = RewriteTag::from_section(&section(&lines), metrics.clone()).unwrap();
        let long = format!(r#"{{"log":"{}"}}"#, "a".repeat(MAX_TAG_BYTES));
        let out = run(&f, "t", &[&long, r#"{"log":"ok"}"#]);
        assert_eq!(out[0], ("t".to_string(), long.clone()));
        assert_eq!(out[1].0, "x.ok");
        assert_eq!(metrics.tag_too_long.get(), 1);
    }
}
