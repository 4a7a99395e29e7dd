//! Record accessor: `log`, `$log`, `$kubernetes['labels']['app']`, `$list[0]`: a path to a
//! value inside a record, as Fluent Bit's filters write keys.

use crate::msgpack::{Reader, ValueRef};
use crate::record::{Event, Fields};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(Box<[u8]>),
    Index(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accessor {
    steps: Vec<Step>,
}

impl Accessor {
    /// Parses `$key['sub'][0]` or a plain key name.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("'{s}' is not a record accessor (e.g. log, $log, $kubernetes['labels']['app'])")
        };
        let Some(rest) = s.strip_prefix('$') else {
            if s.is_empty() {
                return Err(bad());
            }
            return Ok(Accessor {
                steps: vec![Step::Key(s.as_bytes().into())],
            });
        };
        let first_end = rest.find('[').unwrap_or(rest.len());
        if first_end == 0 {
            return Err(bad());
        }
        let mut steps = vec![Step::Key(rest.as_bytes()[..first_end].into())];
        let mut tail = &rest[first_end..];
        while !tail.is_empty() {
            let inner_end = tail.find(']').ok_or_else(bad)?;
            let inner = tail.get(1..inner_end).ok_or_else(bad)?;
            let step = if let Some(q) = inner
                .strip_prefix('\'')
                .and_then(|i| i.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|i| i.strip_suffix('"')))
            {
                Step::Key(q.as_bytes().into())
            } else {
                Step::Index(inner.trim().parse().map_err(|_| bad())?)
            };
            steps.push(step);
            tail = &tail[inner_end + 1..];
        }
        Ok(Accessor { steps })
    }

    /// The top-level key this accessor starts from.
    pub fn root(&self) -> &[u8] {
        match &self.steps[0] {
            Step::Key(k) => k,
            Step::Index(_) => b"",
        }
    }

    /// The value the path leads to in `event`, if any.
    pub fn get<'a>(&self, event: &'a Event) -> Option<ValueRef<'a>> {
        let mut current = lookup(event.fields(), self.root())?;
        for step in &self.steps[1..] {
            current = match (step, current) {
                (Step::Key(k), ValueRef::Map(n, body)) => lookup(Fields::from_body(n, body), k)?,
                (Step::Index(i), ValueRef::Array(n, body)) if *i < n => {
                    let mut r = Reader::new(body);
                    for _ in 0..*i {
                        r.skip().ok()?;
                    }
                    r.value().ok()?
                }
                _ => return None,
            };
        }
        Some(current)
    }
}

/// The last value under `key` (a later duplicate wins, as in the JSON output).
fn lookup<'a>(fields: Fields<'a>, key: &[u8]) -> Option<ValueRef<'a>> {
    fields
        .filter_map(Result::ok)
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .last()
}

/// A value as text for matching: strings and binaries as they are, numbers and booleans
/// written out; containers and nil have no text.
pub fn value_text<'a>(v: &ValueRef<'a>, scratch: &'a mut String) -> Option<&'a [u8]> {
    use std::fmt::Write;
    scratch.clear();
    match v {
        ValueRef::Str(s) | ValueRef::Bin(s) => return Some(s),
        ValueRef::UInt(n) => write!(scratch, "{n}").ok()?,
        ValueRef::Int(n) => write!(scratch, "{n}").ok()?,
        ValueRef::F64(f) => write!(scratch, "{f}").ok()?,
        ValueRef::Bool(b) => write!(scratch, "{b}").ok()?,
        _ => return None,
    }
    Some(scratch.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::EventTime;
    use bytes::Bytes;

    fn nested() -> Event {
        // {"log": "x", "kubernetes": {"labels": {"app": "web"}}, "list": [1, "two"]}
        let mut b = Vec::new();
        b.push(0x83);
        crate::msgpack::write_str(&mut b, b"log");
        crate::msgpack::write_str(&mut b, b"x");
        crate::msgpack::write_str(&mut b, b"kubernetes");
        b.push(0x81);
        crate::msgpack::write_str(&mut b, b"labels");
        b.push(0x81);
        crate::msgpack::write_str(&mut b, b"app");
        crate::msgpack::write_str(&mut b, b"web");
        crate::msgpack::write_str(&mut b, b"list");
        b.push(0x92);
        b.push(0x01);
        crate::msgpack::write_str(&mut b, b"two");
        Event::new(EventTime::default(), Bytes::from(b)).unwrap()
    }

    #[test]
    fn paths() {
        let e = nested();
        let get = |p: &str| Accessor::parse(p).unwrap().get(&e);
        assert_eq!(get("log"), Some(ValueRef::Str(b"x")));
        assert_eq!(get("$log"), Some(ValueRef::Str(b"x")));
        assert_eq!(
            get("$kubernetes['labels']['app']"),
            Some(ValueRef::Str(b"web"))
        );
        assert_eq!(get("$list[1]"), Some(ValueRef::Str(b"two")));
        assert_eq!(get("$list[2]"), None);
        assert_eq!(get("$kubernetes['nope']"), None);
        assert_eq!(get("$log['deeper']"), None);
    }

    #[test]
    fn bad_accessors() {
        for bad in ["", "$", "$['a']", "$a['b'", "$a[x]"] {
            assert!(Accessor::parse(bad).is_err(), "{bad}");
        }
    }
}
