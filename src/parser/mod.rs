//! `[PARSER]` sections: named ways to turn a text field into a structured record.
//!
//! A parser is checked once at load (regex syntax, time format, types), so a broken definition
//! is an error with file and line, and parsing a line costs no allocation beyond the record it
//! builds. A regex is compiled only when a filter uses its parser ([`Parser::prepare`]), and
//! not at all when the one-pass field matcher runs it: a parsers file holds many parsers that a
//! config never uses, and compiled automata are the largest part of an idle router's heap.
//! Every format funnels its fields through one path that applies `Time_Key` / `Time_Keep`,
//! `Types` and `Skip_Empty_Values`, as Fluent Bit does.

pub mod fields;
pub mod json;
pub mod logfmt;
pub mod ltsv;
pub mod time;

use std::sync::{Mutex, OnceLock};

use regex::bytes::{CaptureLocations, Regex};

use crate::config::{ConfigError, Location, Section};
use crate::msgpack::{Reader, ValueRef, write};
use crate::record::{EventTime, Fields, RecordBuilder};
use fields::FieldMatcher;
use time::TimeFormat;

/// Capture slots the fast path keeps on the stack (two per group).
const FAST_SLOTS: usize = 64;

/// How a parser reads its input.
#[derive(Debug)]
enum Format {
    /// A regular expression whose named groups become fields, with a pool of capture slots so
    /// concurrent callers do not allocate.
    Regex {
        pattern: Box<str>,
        /// Where `Regex` was set, for a compile error.
        loc: Location,
        /// The compiled regex, built by `prepare` (`None`: it did not compile).
        compiled: OnceLock<Option<Regex>>,
        /// The one-pass matcher, when the regex is a sequence of delimited fields.
        fast: Option<FieldMatcher>,
        /// Group index and name of each named group, in pattern order.
        groups: Vec<(usize, Box<[u8]>)>,
        slots: Mutex<Vec<CaptureLocations>>,
    },
    Json,
    Logfmt,
    Ltsv,
}

/// `Types`: how a field's text is converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldType {
    Integer,
    Float,
    Bool,
    Hex,
    String,
}

/// `Types`: per key, its conversion.
type Types = Vec<(Box<[u8]>, FieldType)>;

/// `Time_Key` and how to read it.
#[derive(Debug)]
struct TimeSpec {
    key: Box<[u8]>,
    format: TimeFormat,
    keep: bool,
    offset: i64,
}

/// A value as a format produces it: text, or an already-encoded msgpack value (JSON).
#[derive(Clone, Copy)]
enum Field<'a> {
    Text(&'a [u8]),
    Encoded(&'a [u8]),
}

/// A parser definition.
#[derive(Debug)]
pub struct Parser {
    pub name: String,
    format: Format,
    time: Option<TimeSpec>,
    types: Types,
    skip_empty: bool,
}

impl Parser {
    pub fn from_section(section: &Section) -> Result<Self, ConfigError> {
        let name = section
            .str("name")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ConfigError::new(&section.loc, "[PARSER] section has no 'Name'"))?
            .to_string();
        let format_entry = section.entry("format").ok_or_else(|| {
            ConfigError::new(&section.loc, format!("parser '{name}' has no 'Format'"))
        })?;
        let format = match format_entry.value.to_ascii_lowercase().as_str() {
            "regex" => regex(section, &name)?,
            "json" => Format::Json,
            "logfmt" => Format::Logfmt,
            "ltsv" => Format::Ltsv,
            other => {
                return Err(ConfigError::new(
                    &format_entry.loc,
                    format!(
                        "parser '{name}': format '{other}' is not known (regex, json, logfmt, ltsv)"
                    ),
                ));
            }
        };
        // As in Fluent Bit, time handling needs Time_Format; Time_Key defaults to "time".
        let key = section.str("time_key").unwrap_or("time").as_bytes().into();
        let keep = section.bool("time_keep", false)?;
        let time = match section.entry("time_format") {
            None => None,
            Some(e) => Some(TimeSpec {
                key,
                format: TimeFormat::new(&e.value)
                    .map_err(|err| ConfigError::new(&e.loc, format!("parser '{name}': {err}")))?,
                keep,
                offset: section
                    .parse("time_offset", time::parse_offset)?
                    .unwrap_or(0),
            }),
        };
        let types = match section.entry("types") {
            None => Vec::new(),
            Some(e) => parse_types(&e.value)
                .map_err(|msg| ConfigError::new(&e.loc, format!("parser '{name}': {msg}")))?,
        };
        // Keys accepted for compatibility whose behaviour is the default here.
        for key in [
            "time_strict",
            "time_system_timezone",
            "decode_field",
            "decode_field_as",
        ] {
            section.all(key).for_each(drop);
        }
        Ok(Parser {
            name,
            format,
            time,
            types,
            skip_empty: section.bool("skip_empty_values", true)?,
        })
    }

    /// Parses `text` into `out`'s record. `None`: the text does not match (nothing useful was
    /// written; the caller discards the builder). `Some(time)`: matched, with the time read
    /// from `Time_Key` if there was one and it parsed.
    pub fn parse(&self, text: &[u8], out: &mut RecordBuilder<'_>) -> Option<Option<EventTime>> {
        let mut time = None;
        match &self.format {
            Format::Regex {
                fast: Some(fm),
                groups,
                ..
            } => {
                let mut slots = [None; FAST_SLOTS];
                if !fm.captures(text, &mut slots[..fm.slot_count()]) {
                    return None;
                }
                for (i, name) in groups {
                    let (s, e) = slots[2 * i].zip(slots[2 * i + 1]).unwrap_or((0, 0));
                    self.field(name, Field::Text(&text[s..e]), out, &mut time);
                }
            }
            Format::Regex {
                pattern,
                compiled,
                groups,
                slots,
                ..
            } => {
                let Some(regex) = compiled.get_or_init(|| Regex::new(pattern).ok()) else {
                    return None;
                };
                let mut locs = slots
                    .lock()
                    .ok()
                    .and_then(|mut s| s.pop())
                    .unwrap_or_else(|| regex.capture_locations());
                let matched = regex.captures_read(&mut locs, text).is_some();
                if matched {
                    for (i, name) in groups {
                        let (s, e) = locs.get(*i).unwrap_or((0, 0));
                        self.field(name, Field::Text(&text[s..e]), out, &mut time);
                    }
                }
                if let Ok(mut s) = slots.lock() {
                    s.push(locs);
                }
                if !matched {
                    return None;
                }
            }
            Format::Json => {
                let mut map = Vec::with_capacity(text.len() + 16);
                json::object_to_msgpack(text, &mut map)?;
                let mut fields = Fields::new(&map);
                while let Some(Ok((k, v))) = fields.next_raw() {
                    self.field(k, Field::Encoded(v), out, &mut time);
                }
            }
            Format::Logfmt => {
                let mut scratch = Vec::new();
                let mut ok = true;
                let any = logfmt::pairs(text, &mut scratch, |k, v| {
                    ok &= match v {
                        Some(v) => self.field(k, Field::Text(v), out, &mut time),
                        // A bare key (or `k=`) is a flag.
                        None => self.field(k, Field::Encoded(&[0xc3]), out, &mut time),
                    };
                });
                if !(any && ok) {
                    return None;
                }
            }
            Format::Ltsv => {
                let mut ok = true;
                let any = ltsv::pairs(text, |k, v| {
                    ok &= self.field(k, Field::Text(v), out, &mut time);
                });
                if !(any && ok) {
                    return None;
                }
            }
        }
        Some(time)
    }

    /// One parsed field: the time key is consumed (unless `Time_Keep`), empty regex captures
    /// skipped (unless `Skip_Empty_Values Off`), `Types` applied to text. Returns false when a
    /// time that does not parse must fail the whole record (logfmt, ltsv); regex drops the
    /// field and JSON keeps it, as Fluent Bit does.
    fn field(
        &self,
        key: &[u8],
        value: Field<'_>,
        out: &mut RecordBuilder<'_>,
        time: &mut Option<EventTime>,
    ) -> bool {
        if self.skip_empty
            && matches!(self.format, Format::Regex { .. })
            && matches!(value, Field::Text(t) if t.is_empty())
        {
            return true;
        }
        if let Some(spec) = &self.time
            && *spec.key == *key
        {
            let parsed = match value {
                Field::Text(t) => spec.parse(t),
                Field::Encoded(e) => match Reader::new(e).value() {
                    Ok(ValueRef::Str(t)) => spec.parse(t),
                    _ => None,
                },
            };
            match (parsed, &self.format) {
                (Some(t), _) => {
                    *time = Some(t);
                    if !spec.keep {
                        return true;
                    }
                }
                (None, Format::Regex { .. }) => return true,
                (None, Format::Logfmt | Format::Ltsv) => return false,
                (None, Format::Json) => {}
            }
        }
        let ty = self
            .types
            .iter()
            .find(|(k, _)| **k == *key)
            .map(|(_, t)| *t);
        match (value, ty) {
            (Field::Text(t), Some(ty)) => write_typed(out, key, t, ty),
            (Field::Text(t), None) => out.str(key, t),
            // JSON values keep their own types.
            (Field::Encoded(e), _) => out.raw(key, e),
        }
        true
    }
}

impl TimeSpec {
    fn parse(&self, text: &[u8]) -> Option<EventTime> {
        self.format.parse(text, self.offset)
    }
}

/// Writes `text` converted to `ty`, as leniently as C's `atoll`/`atof`/`strtoull` (Fluent Bit's
/// casts): `12abc` is 12, `abc` is 0. Only `bool` can fail (text starting with neither true nor false),
/// and then the text stays a string.
fn write_typed(out: &mut RecordBuilder<'_>, key: &[u8], text: &[u8], ty: FieldType) {
    let s = std::str::from_utf8(text).unwrap_or("").trim_start();
    match ty {
        FieldType::Integer => write::write_int(out.key(key), leading_int(s)),
        FieldType::Float => write::write_f64(out.key(key), leading_float(s)),
        FieldType::Hex => {
            let digits = s
                .strip_prefix("0x")
                .or_else(|| s.strip_prefix("0X"))
                .unwrap_or(s);
            let end = digits
                .find(|c: char| !c.is_ascii_hexdigit())
                .unwrap_or(digits.len());
            let v = u64::from_str_radix(&digits[..end], 16).unwrap_or(0);
            write::write_uint(out.key(key), v);
        }
        FieldType::Bool => {
            let lower = s.to_ascii_lowercase();
            if lower.starts_with("true") {
                write::write_bool(out.key(key), true);
            } else if lower.starts_with("false") {
                write::write_bool(out.key(key), false);
            } else {
                out.str(key, text);
            }
        }
        FieldType::String => out.str(key, text),
    }
}

/// The integer at the start of `s` (sign and digits), 0 if none; saturates on overflow.
fn leading_int(s: &str) -> i64 {
    let b = s.as_bytes();
    let (neg, mut i) = match b.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let mut v: i64 = 0;
    while let Some(d @ b'0'..=b'9') = b.get(i) {
        v = v.saturating_mul(10).saturating_add(i64::from(d - b'0'));
        i += 1;
    }
    if neg { -v } else { v }
}

/// The float at the start of `s`, 0.0 if none.
fn leading_float(s: &str) -> f64 {
    let end = s
        .char_indices()
        .take_while(|(i, c)| {
            c.is_ascii_digit()
                || matches!(c, '.' | 'e' | 'E')
                || (*i == 0 && matches!(c, '-' | '+'))
        })
        .count();
    (1..=end)
        .rev()
        .find_map(|n| s[..n].parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .unwrap_or(0.0)
}

/// `Types key:integer key2:float ...`
fn parse_types(s: &str) -> Result<Types, String> {
    s.split_whitespace()
        .map(|item| {
            let (k, t) = item
                .split_once(':')
                .ok_or_else(|| format!("Types entry '{item}' is not key:type"))?;
            let t = match t.to_ascii_lowercase().as_str() {
                "integer" | "int" => FieldType::Integer,
                "float" | "double" => FieldType::Float,
                "bool" | "boolean" => FieldType::Bool,
                "hex" => FieldType::Hex,
                "string" => FieldType::String,
                other => {
                    return Err(format!(
                        "Types: '{other}' is not a type (integer, float, bool, hex, string)"
                    ));
                }
            };
            Ok((k.as_bytes().into(), t))
        })
        .collect()
}

/// Checks a parser's `Regex`: its syntax must be valid and it must name at least one group.
/// Compiling waits for [`Parser::prepare`].
fn regex(section: &Section, name: &str) -> Result<Format, ConfigError> {
    let entry = section.entry("regex").ok_or_else(|| {
        ConfigError::new(
            &section.loc,
            format!("parser '{name}' has Format regex but no 'Regex'"),
        )
    })?;
    let hint = if entry.value.contains("(?[") || entry.value.contains("(?)") {
        " (a group starting '(?' needs a name: '(?<name>...)')"
    } else {
        ""
    };
    // The syntax as `regex::bytes::Regex` reads it (Unicode on, not limited to UTF-8).
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(&entry.value)
        .map_err(|e| {
            ConfigError::new(
                &entry.loc,
                format!("parser '{name}': Regex does not compile{hint}:\n{e}"),
            )
        })?;
    let mut groups: Vec<(usize, Box<[u8]>)> = Vec::new();
    named_groups(&hir, &mut groups);
    groups.sort_by_key(|(i, _)| *i);
    if groups.is_empty() {
        return Err(ConfigError::new(
            &entry.loc,
            format!("parser '{name}': Regex has no named groups, so it would produce no fields"),
        ));
    }
    let fast = FieldMatcher::compile(&entry.value).filter(|f| f.slot_count() <= FAST_SLOTS);
    Ok(Format::Regex {
        pattern: entry.value.as_str().into(),
        loc: entry.loc.clone(),
        compiled: OnceLock::new(),
        fast,
        groups,
        slots: Mutex::new(Vec::new()),
    })
}

/// Index and name of every named capture group, as the regex crate numbers them.
fn named_groups(hir: &regex_syntax::hir::Hir, out: &mut Vec<(usize, Box<[u8]>)>) {
    use regex_syntax::hir::HirKind;
    match hir.kind() {
        HirKind::Capture(c) => {
            if let Some(n) = &c.name {
                out.push((c.index as usize, n.as_bytes().into()));
            }
            named_groups(&c.sub, out);
        }
        HirKind::Concat(hs) | HirKind::Alternation(hs) => {
            hs.iter().for_each(|h| named_groups(h, out));
        }
        HirKind::Repetition(r) => named_groups(&r.sub, out),
        _ => {}
    }
}

impl Parser {
    /// Readies the parser for use by a filter: compiles its regex unless the one-pass matcher
    /// runs it. A regex that parses but does not compile (too large) is an error here.
    pub fn prepare(&self) -> Result<(), ConfigError> {
        if let Format::Regex {
            pattern,
            loc,
            compiled,
            fast: None,
            ..
        } = &self.format
        {
            let mut error = None;
            compiled.get_or_init(|| {
                Regex::new(pattern)
                    .map_err(|e| error = Some(e.to_string()))
                    .ok()
            });
            if let Some(e) = error {
                return Err(ConfigError::new(
                    loc,
                    format!("parser '{}': Regex does not compile:\n{e}", self.name),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Location, SectionKind};
    use crate::record::Event;
    use bytes::BytesMut;

    #[test]
    fn regexes_compile_only_when_a_filter_prepares_them() {
        let p = parser(&[
            ("Name", "alt"),
            ("Format", "regex"),
            ("Regex", "^(?<a>a|ab)(?<b>c)?$"),
        ])
        .unwrap();
        let Format::Regex {
            compiled,
            fast,
            groups,
            ..
        } = &p.format
        else {
            panic!("a regex parser");
        };
        assert!(fast.is_none(), "needs the regex engine");
        assert_eq!(groups.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1, 2]);
        assert!(compiled.get().is_none(), "not compiled at load");
        p.prepare().unwrap();
        assert!(matches!(compiled.get(), Some(Some(_))));
        let mut b = BytesMut::new();
        let mut rb = RecordBuilder::new(&mut b);
        assert!(p.parse(b"abc", &mut rb).is_some());
        let e = rb.finish_event(EventTime::default());
        assert_eq!(e.get("a"), Some(ValueRef::Str(b"ab")));
        // Syntax errors are still found at load, with the line.
        assert!(parser(&[("Name", "bad"), ("Format", "regex"), ("Regex", "(?<a>x")]).is_err());
    }

    fn parser(pairs: &[(&str, &str)]) -> Result<Parser, ConfigError> {
        let mut s = Section::new(SectionKind::Parser, Location::command_line());
        for (i, (k, v)) in pairs.iter().enumerate() {
            let loc = Location::new(Location::command_line().file, i + 2);
            s.push(*k, *v, loc);
        }
        Parser::from_section(&s)
    }

    /// Parses `text`; returns the record as JSON and the time.
    fn run(p: &Parser, text: &str) -> Option<(String, Option<(i64, u32)>)> {
        let mut arena = BytesMut::new();
        let mut b = RecordBuilder::new(&mut arena);
        let t = p.parse(text.as_bytes(), &mut b)?;
        let e = Event::new(EventTime::default(), b.finish()).unwrap();
        let mut json = Vec::new();
        crate::msgpack::json::JsonStyle {
            escape_unicode: false,
        }
        .value(&mut json, &e.record);
        Some((
            String::from_utf8(json).unwrap(),
            t.map(|t| (t.secs(), t.subsec_nanos())),
        ))
    }

    #[test]
    fn the_seed_nginx_regex_with_a_lost_group_name_is_refused() {
        let seed = r#"^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^\"]*?)(?: +\S*)?)?" (?[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\"]*)" "(?<agent>[^\"]*)")?$"#;
        let err = parser(&[("Name", "nginx"), ("Format", "regex"), ("Regex", seed)]).unwrap_err();
        assert_eq!(err.loc.line, 4);
        assert!(err.message.contains("needs a name"), "{err}");
        let fixed = seed.replace("(?[^ ]*)", "(?<code>[^ ]*)");
        assert!(parser(&[("Name", "nginx"), ("Format", "regex"), ("Regex", &fixed)]).is_ok());
    }

    #[test]
    fn bad_definitions_are_refused() {
        assert!(parser(&[("Format", "json")]).is_err());
        assert!(parser(&[("Name", "x")]).is_err());
        assert!(parser(&[("Name", "x"), ("Format", "xml")]).is_err());
        assert!(parser(&[("Name", "x"), ("Format", "regex"), ("Regex", "^(a)(b)$")]).is_err());
        assert!(
            parser(&[
                ("Name", "x"),
                ("Format", "regex"),
                ("Regex", "(?<a>x)(?<a>y)")
            ])
            .is_err()
        );
        assert!(parser(&[("Name", "j"), ("Format", "json"), ("Types", "a:blob")]).is_err());
        assert!(
            parser(&[
                ("Name", "j"),
                ("Format", "json"),
                ("Time_Key", "t"),
                ("Time_Format", "%Q")
            ])
            .is_err()
        );
        assert!(parser(&[("Name", "j"), ("Format", "json"), ("Time_Key", "time")]).is_ok());
    }

    #[test]
    fn regex_fields_time_and_types() {
        let p = parser(&[
            ("Name", "t"),
            ("Format", "regex"),
            (
                "Regex",
                r"^(?<time>\S+) (?<code>\d+) (?<msg>.*?)(?: (?<opt>x))?$",
            ),
            ("Time_Key", "time"),
            ("Time_Format", "%Y-%m-%dT%H:%M:%S.%L%z"),
            ("Types", "code:integer"),
        ])
        .unwrap();
        assert_eq!(
            run(&p, "2023-11-14T22:13:20.25Z 200 hello world"),
            Some((
                r#"{"code":200,"msg":"hello world"}"#.into(),
                Some((1_700_000_000, 250_000_000))
            ))
        );
        assert_eq!(run(&p, "no match"), None);
    }

    #[test]
    fn types_are_lenient_like_c() {
        let p = parser(&[
            ("Name", "t"),
            ("Format", "regex"),
            (
                "Regex",
                r"^(?<i>\S*) (?<f>\S*) (?<h>\S*) (?<b>\S*) (?<c>\S*)$",
            ),
            ("Types", "i:integer f:float h:hex b:bool c:bool"),
        ])
        .unwrap();
        assert_eq!(
            run(&p, "12abc 2.5x ff trueish maybe").unwrap().0,
            r#"{"i":12,"f":2.5,"h":255,"b":true,"c":"maybe"}"#
        );
        assert_eq!(
            run(&p, "abc x 0x1f FALSE no").unwrap().0,
            r#"{"i":0,"f":0.0,"h":31,"b":false,"c":"no"}"#
        );
    }

    #[test]
    fn a_time_that_does_not_parse() {
        // regex: the field is dropped even with Time_Keep; logfmt: the record fails.
        let p = parser(&[
            ("Name", "r"),
            ("Format", "regex"),
            ("Regex", r"^(?<time>\S+) (?<m>.*)$"),
            ("Time_Format", "%s"),
            ("Time_Keep", "On"),
        ])
        .unwrap();
        assert_eq!(run(&p, "soon hi"), Some((r#"{"m":"hi"}"#.into(), None)));
        let p = parser(&[("Name", "l"), ("Format", "logfmt"), ("Time_Format", "%s")]).unwrap();
        assert_eq!(run(&p, "time=soon a=1"), None);
        assert_eq!(run(&p, "time=5 a=1").unwrap().1, Some((5, 0)));
    }

    #[test]
    fn time_keep_and_unparsable_times_keep_the_field() {
        let p = parser(&[
            ("Name", "j"),
            ("Format", "json"),
            ("Time_Key", "t"),
            ("Time_Format", "%s"),
            ("Time_Keep", "On"),
        ])
        .unwrap();
        assert_eq!(
            run(&p, r#"{"t":"1700000000","a":1}"#),
            Some((
                r#"{"t":"1700000000","a":1}"#.into(),
                Some((1_700_000_000, 0))
            ))
        );
        let p = parser(&[
            ("Name", "j"),
            ("Format", "json"),
            ("Time_Key", "t"),
            ("Time_Format", "%s"),
        ])
        .unwrap();
        assert_eq!(
            run(&p, r#"{"t":"soon","a":1}"#),
            Some((r#"{"t":"soon","a":1}"#.into(), None))
        );
    }

    #[test]
    fn logfmt_and_ltsv() {
        let p = parser(&[("Name", "l"), ("Format", "logfmt"), ("Types", "n:integer")]).unwrap();
        assert_eq!(
            run(&p, r#"level=info n=3 msg="a b" debug"#).unwrap().0,
            r#"{"level":"info","n":3,"msg":"a b","debug":true}"#
        );
        assert_eq!(run(&p, "a=b=c").unwrap().0, r#"{"a":"b","c":true}"#);
        let p = parser(&[("Name", "l"), ("Format", "ltsv")]).unwrap();
        assert_eq!(run(&p, "a:1\tb:x y").unwrap().0, r#"{"a":"1","b":"x y"}"#);
    }
}
