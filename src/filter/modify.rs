//! `modify`: edits top-level keys with rules applied one after another in config order, each
//! seeing the previous one's result, as Fluent Bit does:
//!
//! - `Set K V` removes every `K` and appends `K: V`; `Add K V` appends only if `K` is absent;
//! - `Remove K`, `Remove_wildcard PREFIX`, `Remove_regex REGEX`;
//! - `Rename A B` in place if `B` is absent, `Hard_rename A B` replacing any `B`;
//! - `Copy A B` right after `A` if `B` is absent, `Hard_copy A B` replacing a single `B`;
//! - `Move_to_start PREFIX`, `Move_to_end PREFIX`.
//!
//! `Condition` lines (all must hold, checked on the original record) gate every rule.

use regex::bytes::Regex;

use super::accessor::Accessor;
use super::{Filter, FilterOutput, tokens};
use crate::config::{ConfigError, Entry, Section};
use crate::msgpack::ValueRef;
use crate::record::{Event, Tag};

enum Rule {
    Set(Box<[u8]>, Box<[u8]>),
    Add(Box<[u8]>, Box<[u8]>),
    Remove(Box<[u8]>),
    RemoveWildcard(Box<[u8]>),
    RemoveRegex(Regex),
    Rename {
        from: Box<[u8]>,
        to: Box<[u8]>,
        hard: bool,
    },
    Copy {
        from: Box<[u8]>,
        to: Box<[u8]>,
        hard: bool,
    },
    MoveToStart(Box<[u8]>),
    MoveToEnd(Box<[u8]>),
}

enum Condition {
    KeyExists(Accessor),
    KeyDoesNotExist(Accessor),
    AKeyMatches(Regex),
    NoKeyMatches(Regex),
    ValueEquals(Accessor, Box<[u8]>),
    ValueDoesNotEqual(Accessor, Box<[u8]>),
    ValueMatches(Accessor, Regex),
    ValueDoesNotMatch(Accessor, Regex),
    MatchingKeysHaveMatchingValues(Regex, Regex),
    MatchingKeysDoNotHaveMatchingValues(Regex, Regex),
}

pub struct Modify {
    rules: Vec<Rule>,
    conditions: Vec<Condition>,
}

fn regex(e: &Entry, pattern: &str) -> Result<Regex, ConfigError> {
    Regex::new(pattern).map_err(|err| {
        ConfigError::new(&e.loc, format!("{}: regex does not compile: {err}", e.key))
    })
}

fn accessor(e: &Entry, s: &str) -> Result<Accessor, ConfigError> {
    Accessor::parse(s).map_err(|m| ConfigError::new(&e.loc, m))
}

fn b(s: &str) -> Box<[u8]> {
    s.as_bytes().into()
}

impl Modify {
    pub fn from_section(section: &Section) -> Result<Self, ConfigError> {
        let mut rules = Vec::new();
        let mut conditions = Vec::new();
        for e in section.entries() {
            let op = e.key.to_ascii_lowercase();
            let args = |n: usize| -> Result<Vec<String>, ConfigError> {
                let t = tokens(e, n)?;
                if t.len() == n {
                    Ok(t)
                } else {
                    Err(ConfigError::new(
                        &e.loc,
                        format!("{} needs {n} argument(s)", e.key),
                    ))
                }
            };
            let rule = match op.as_str() {
                "set" => {
                    let a = args(2)?;
                    Rule::Set(b(&a[0]), b(&a[1]))
                }
                "add" | "add_if_not_present" => {
                    let a = args(2)?;
                    Rule::Add(b(&a[0]), b(&a[1]))
                }
                "remove" => Rule::Remove(b(&args(1)?[0])),
                "remove_wildcard" => Rule::RemoveWildcard(b(args(1)?[0].trim_end_matches('*'))),
                "remove_regex" => Rule::RemoveRegex(regex(e, &args(1)?[0])?),
                "rename" | "hard_rename" => {
                    let a = args(2)?;
                    Rule::Rename {
                        from: b(&a[0]),
                        to: b(&a[1]),
                        hard: op == "hard_rename",
                    }
                }
                "copy" | "hard_copy" => {
                    let a = args(2)?;
                    Rule::Copy {
                        from: b(&a[0]),
                        to: b(&a[1]),
                        hard: op == "hard_copy",
                    }
                }
                "move_to_start" => Rule::MoveToStart(b(args(1)?[0].trim_end_matches('*'))),
                "move_to_end" => Rule::MoveToEnd(b(args(1)?[0].trim_end_matches('*'))),
                "condition" => {
                    conditions.push(condition(e)?);
                    section.all(&e.key).for_each(drop);
                    continue;
                }
                _ => continue,
            };
            section.all(&e.key).for_each(drop);
            rules.push(rule);
        }
        if rules.is_empty() {
            return Err(ConfigError::new(&section.loc, "filter modify has no rules"));
        }
        Ok(Modify { rules, conditions })
    }
}

fn condition(e: &Entry) -> Result<Condition, ConfigError> {
    let t = tokens(e, 3)?;
    let kind = t
        .first()
        .map(|k| k.to_ascii_lowercase())
        .unwrap_or_default();
    let need = |n: usize| {
        if t.len() == n + 1 {
            Ok(())
        } else {
            Err(ConfigError::new(
                &e.loc,
                format!("Condition {kind} needs {n} argument(s)"),
            ))
        }
    };
    Ok(match kind.as_str() {
        "key_exists" => {
            need(1)?;
            Condition::KeyExists(accessor(e, &t[1])?)
        }
        "key_does_not_exist" => {
            need(1)?;
            Condition::KeyDoesNotExist(accessor(e, &t[1])?)
        }
        "a_key_matches" => {
            need(1)?;
            Condition::AKeyMatches(regex(e, &t[1])?)
        }
        "no_key_matches" => {
            need(1)?;
            Condition::NoKeyMatches(regex(e, &t[1])?)
        }
        "key_value_equals" => {
            need(2)?;
            Condition::ValueEquals(accessor(e, &t[1])?, b(&t[2]))
        }
        "key_value_does_not_equal" => {
            need(2)?;
            Condition::ValueDoesNotEqual(accessor(e, &t[1])?, b(&t[2]))
        }
        "key_value_matches" => {
            need(2)?;
            Condition::ValueMatches(accessor(e, &t[1])?, regex(e, &t[2])?)
        }
        "key_value_does_not_match" => {
            need(2)?;
            Condition::ValueDoesNotMatch(accessor(e, &t[1])?, regex(e, &t[2])?)
        }
        "matching_keys_have_matching_values" => {
            need(2)?;
            Condition::MatchingKeysHaveMatchingValues(regex(e, &t[1])?, regex(e, &t[2])?)
        }
        "matching_keys_do_not_have_matching_values" => {
            need(2)?;
            Condition::MatchingKeysDoNotHaveMatchingValues(regex(e, &t[1])?, regex(e, &t[2])?)
        }
        _ => {
            return Err(ConfigError::new(
                &e.loc,
                format!("'{kind}' is not a modify condition"),
            ));
        }
    })
}

/// String value for comparisons; booleans count as their text for regex matches.
fn text<'a>(v: Option<ValueRef<'a>>, bools: bool) -> Option<&'a [u8]> {
    match v? {
        ValueRef::Str(s) | ValueRef::Bin(s) => Some(s),
        ValueRef::Bool(true) if bools => Some(b"true"),
        ValueRef::Bool(false) if bools => Some(b"false"),
        _ => None,
    }
}

impl Condition {
    fn holds(&self, event: &Event) -> bool {
        let keys = || event.fields().filter_map(Result::ok);
        match self {
            Condition::KeyExists(a) => a.get(event).is_some(),
            Condition::KeyDoesNotExist(a) => a.get(event).is_none(),
            Condition::AKeyMatches(r) => keys().any(|(k, _)| r.is_match(k)),
            Condition::NoKeyMatches(r) => !keys().any(|(k, _)| r.is_match(k)),
            Condition::ValueEquals(a, v) => text(a.get(event), false) == Some(v),
            Condition::ValueDoesNotEqual(a, v) => {
                text(a.get(event), false).is_some_and(|t| t != &**v)
            }
            Condition::ValueMatches(a, r) => {
                text(a.get(event), true).is_some_and(|t| r.is_match(t))
            }
            Condition::ValueDoesNotMatch(a, r) => {
                text(a.get(event), true).is_some_and(|t| !r.is_match(t))
            }
            Condition::MatchingKeysHaveMatchingValues(kr, vr) => {
                let mut any = false;
                let all = keys().filter(|(k, _)| kr.is_match(k)).all(|(_, v)| {
                    any = true;
                    text(Some(v), true).is_some_and(|t| vr.is_match(t))
                });
                any && all
            }
            Condition::MatchingKeysDoNotHaveMatchingValues(kr, vr) => {
                let mut any = false;
                let none = keys().filter(|(k, _)| kr.is_match(k)).all(|(_, v)| {
                    any = true;
                    !text(Some(v), true).is_some_and(|t| vr.is_match(t))
                });
                any && none
            }
        }
    }
}

/// A field during editing: key and encoded value, borrowed from the record or owned.
type Pair<'a> = (std::borrow::Cow<'a, [u8]>, std::borrow::Cow<'a, [u8]>);

fn encoded_str(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() + 5);
    crate::msgpack::write_str(&mut out, v);
    out
}

impl Rule {
    fn apply(&self, pairs: &mut Vec<Pair<'_>>) {
        use std::borrow::Cow;
        let count =
            |pairs: &Vec<Pair<'_>>, k: &[u8]| pairs.iter().filter(|(pk, _)| **pk == *k).count();
        match self {
            Rule::Set(k, v) => {
                pairs.retain(|(pk, _)| **pk != **k);
                pairs.push((Cow::Owned(k.to_vec()), Cow::Owned(encoded_str(v))));
            }
            Rule::Add(k, v) => {
                if count(pairs, k) == 0 {
                    pairs.push((Cow::Owned(k.to_vec()), Cow::Owned(encoded_str(v))));
                }
            }
            Rule::Remove(k) => pairs.retain(|(pk, _)| **pk != **k),
            Rule::RemoveWildcard(p) => pairs.retain(|(pk, _)| !pk.starts_with(p)),
            Rule::RemoveRegex(r) => pairs.retain(|(pk, _)| !r.is_match(pk)),
            Rule::Rename { from, to, hard } => {
                if count(pairs, from) == 0 || (!hard && count(pairs, to) > 0) {
                    return;
                }
                if *hard {
                    pairs.retain(|(pk, _)| **pk != **to);
                }
                for (pk, _) in pairs.iter_mut() {
                    if **pk == **from {
                        *pk = Cow::Owned(to.to_vec());
                    }
                }
            }
            Rule::Copy { from, to, hard } => {
                if count(pairs, from) != 1 {
                    return;
                }
                match count(pairs, to) {
                    0 => {}
                    1 if *hard => pairs.retain(|(pk, _)| **pk != **to),
                    _ => return,
                }
                if let Some(i) = pairs.iter().position(|(pk, _)| **pk == **from) {
                    let value = pairs[i].1.clone();
                    pairs.insert(i + 1, (Cow::Owned(to.to_vec()), value));
                }
            }
            Rule::MoveToStart(p) => {
                let (mut moved, rest): (Vec<_>, Vec<_>) =
                    pairs.drain(..).partition(|(pk, _)| pk.starts_with(p));
                moved.extend(rest);
                *pairs = moved;
            }
            Rule::MoveToEnd(p) => {
                let (moved, mut rest): (Vec<_>, Vec<_>) =
                    pairs.drain(..).partition(|(pk, _)| pk.starts_with(p));
                rest.extend(moved);
                *pairs = rest;
            }
        }
    }
}

impl Filter for Modify {
    fn filter(&self, _tag: &Tag, event: Event, out: &mut FilterOutput<'_>) {
        if !self.conditions.iter().all(|c| c.holds(&event)) {
            return out.emit(event);
        }
        let mut pairs: Vec<Pair<'_>> = Vec::new();
        let mut fields = event.fields();
        while let Some(Ok((k, v))) = fields.next_raw() {
            pairs.push((k.into(), v.into()));
        }
        for rule in &self.rules {
            rule.apply(&mut pairs);
        }
        let mut b = out.builder();
        for (k, v) in &pairs {
            b.raw(k, v);
        }
        let built = b.finish_event(event.time);
        out.emit(built);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testing::{records, section};

    fn modify(lines: &[(&str, &str)]) -> Modify {
        Modify::from_section(&section(lines)).unwrap()
    }

    #[test]
    fn rules_apply_in_order_with_fluent_bit_positions() {
        let m = modify(&[("Set", "a 9"), ("Copy", "b c"), ("Rename", "b z")]);
        assert_eq!(
            records(&m, &[r#"{"a":"1","b":"2"}"#]),
            [r#"{"z":"2","c":"2","a":"9"}"#]
        );
    }

    #[test]
    fn every_operation() {
        let m = modify(&[
            ("Add", "a no"),
            ("Add", "new \"with space\""),
            ("Remove", "gone"),
            ("Remove_wildcard", "tmp_"),
            ("Remove_regex", "^x[0-9]$"),
            ("Rename", "r1 r2"),
            ("Hard_rename", "h1 h2"),
            ("Hard_copy", "c1 c2"),
            ("Move_to_start", "first"),
            ("Move_to_end", "a"),
        ]);
        let out = records(
            &m,
            &[
                r#"{"a":1,"gone":1,"tmp_1":1,"tmp_2":1,"x1":1,"r1":1,"r2":2,"h1":1,"h2":2,"c1":"v","c2":"old","first":0}"#,
            ],
        );
        assert_eq!(
            out,
            [r#"{"first":0,"r1":1,"r2":2,"h2":1,"c1":"v","c2":"v","new":"with space","a":1}"#]
        );
    }

    #[test]
    fn conditions_gate_the_rules() {
        let m = modify(&[
            ("Condition", "Key_value_equals level error"),
            ("Set", "alert yes"),
        ]);
        let out = records(
            &m,
            &[r#"{"level":"error"}"#, r#"{"level":"info"}"#, r#"{"x":1}"#],
        );
        assert_eq!(
            out,
            [
                r#"{"level":"error","alert":"yes"}"#,
                r#"{"level":"info"}"#,
                r#"{"x":1}"#
            ]
        );
        let m = modify(&[
            ("Condition", "Key_value_does_not_equal level error"),
            ("Remove", "level"),
        ]);
        assert_eq!(
            records(&m, &[r#"{"level":"info"}"#, r#"{"x":1}"#]),
            ["{}", r#"{"x":1}"#]
        );
        let m = modify(&[("Condition", "A_key_matches ^kube"), ("Add", "k8s true")]);
        assert_eq!(
            records(&m, &[r#"{"kubernetes":1}"#]),
            [r#"{"kubernetes":1,"k8s":"true"}"#]
        );
        assert!(
            Modify::from_section(&section(&[("Condition", "Sometimes x"), ("Set", "a b")]))
                .is_err()
        );
        assert!(Modify::from_section(&section(&[("Set", "only-key")])).is_err());
    }
}
