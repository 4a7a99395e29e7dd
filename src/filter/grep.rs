//! `grep`: keeps or drops records by matching a field against a regex, with Fluent Bit's rules.
//!
//! `Regex KEY REGEX` and `Exclude KEY REGEX` (KEY a record accessor). The value must be a string:
//! a missing key or any other type is "no match". `Logical_Op legacy` (default) walks the rules
//! in order: a Regex that does not match drops, one that matches keeps at once; an Exclude that
//! matches drops. `AND` / `OR` combine rules of one kind (mixing them is a config error).
//! FireLens turns a container's `include-pattern` / `exclude-pattern` into these rules.

use regex::bytes::Regex;

use super::accessor::Accessor;
use super::{Filter, FilterOutput, tokens};
use crate::config::{ConfigError, Section};
use crate::msgpack::ValueRef;
use crate::record::{Event, Tag};

struct Rule {
    exclude: bool,
    key: Accessor,
    regex: Regex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogicalOp {
    Legacy,
    And,
    Or,
}

pub struct Grep {
    rules: Vec<Rule>,
    op: LogicalOp,
}

impl Grep {
    pub fn from_section(section: &Section) -> Result<Self, ConfigError> {
        let mut rules = Vec::new();
        // Rules keep their config order across both kinds.
        for e in section.entries() {
            let exclude = if e.key.eq_ignore_ascii_case("regex") {
                false
            } else if e.key.eq_ignore_ascii_case("exclude") {
                true
            } else {
                continue;
            };
            section.all(&e.key).for_each(drop);
            let t = tokens(e, 2)?;
            let [key, pattern] = t.as_slice() else {
                return Err(ConfigError::new(
                    &e.loc,
                    format!("{} needs a key and a regex", e.key),
                ));
            };
            rules.push(Rule {
                exclude,
                key: Accessor::parse(key).map_err(|m| ConfigError::new(&e.loc, m))?,
                regex: Regex::new(pattern).map_err(|err| {
                    ConfigError::new(&e.loc, format!("{}: regex does not compile: {err}", e.key))
                })?,
            });
        }
        if rules.is_empty() {
            return Err(ConfigError::new(
                &section.loc,
                "filter grep needs a Regex or Exclude rule",
            ));
        }
        let op = section
            .parse("logical_op", |s| match s.to_ascii_lowercase().as_str() {
                "legacy" => Ok(LogicalOp::Legacy),
                "and" => Ok(LogicalOp::And),
                "or" => Ok(LogicalOp::Or),
                _ => Err(format!("'{s}' is not a Logical_Op (legacy, and, or)")),
            })?
            .unwrap_or(LogicalOp::Legacy);
        if op != LogicalOp::Legacy
            && rules.iter().any(|r| r.exclude)
            && rules.iter().any(|r| !r.exclude)
        {
            return Err(ConfigError::new(
                &section.loc,
                "grep: with Logical_Op AND or OR, Regex and Exclude cannot both be set",
            ));
        }
        Ok(Grep { rules, op })
    }

    fn keep(&self, event: &Event) -> bool {
        let matches = |r: &Rule| match r.key.get(event) {
            Some(ValueRef::Str(s) | ValueRef::Bin(s)) => r.regex.is_match(s),
            _ => false,
        };
        match self.op {
            LogicalOp::Legacy => {
                for r in &self.rules {
                    match (r.exclude, matches(r)) {
                        (false, false) | (true, true) => return false,
                        (false, true) => return true,
                        (true, false) => {}
                    }
                }
                true
            }
            LogicalOp::And | LogicalOp::Or => {
                let hit = if self.op == LogicalOp::And {
                    self.rules.iter().all(matches)
                } else {
                    self.rules.iter().any(matches)
                };
                // Every rule is of one kind here.
                hit != self.rules[0].exclude
            }
        }
    }
}

impl Filter for Grep {
    fn filter(&self, _tag: &Tag, event: Event, out: &mut FilterOutput<'_>) {
        if self.keep(&event) {
            out.emit(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testing::{records, section};

    fn grep(lines: &[(&str, &str)]) -> Grep {
        Grep::from_section(&section(lines)).unwrap()
    }

    #[test]
    fn legacy_keeps_on_the_first_matching_regex() {
        let g = grep(&[("Regex", "a ^x"), ("Regex", "b ^y")]);
        assert_eq!(
            records(&g, &[r#"{"a":"x1","b":"z"}"#, r#"{"a":"q","b":"y"}"#]),
            [r#"{"a":"x1","b":"z"}"#]
        );
    }

    #[test]
    fn exclude_and_patterns_with_spaces() {
        let g = grep(&[("Exclude", "log health check")]);
        let out = records(
            &g,
            &[r#"{"log":"GET /health check"}"#, r#"{"log":"GET /"}"#],
        );
        assert_eq!(out, [r#"{"log":"GET /"}"#]);
    }

    #[test]
    fn and_or_and_types() {
        let and = grep(&[
            ("Regex", "a x"),
            ("Regex", "$k['n'] ^1$"),
            ("Logical_Op", "AND"),
        ]);
        let or = grep(&[
            ("Regex", "a x"),
            ("Regex", "$k['n'] ^1$"),
            ("Logical_Op", "or"),
        ]);
        let recs = [
            r#"{"a":"x","k":{"n":"1"}}"#,
            r#"{"a":"x","k":{"n":1}}"#,
            r#"{"b":"x"}"#,
        ];
        assert_eq!(records(&and, &recs), [recs[0]]);
        assert_eq!(
            records(&or, &recs),
            [recs[0], recs[1]],
            "a number never matches"
        );
        let err = Grep::from_section(&section(&[
            ("Regex", "a x"),
            ("Exclude", "b y"),
            ("Logical_Op", "and"),
        ]));
        assert!(err.is_err());
        assert!(Grep::from_section(&section(&[("Regex", "a (")])).is_err());
    }
}
