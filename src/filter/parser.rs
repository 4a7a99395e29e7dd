//! `parser`: parses one field of each record with the named parsers (the first that matches
//! wins) and replaces the record with the parsed fields.
//!
//! As Fluent Bit: with `Reserve_Data`, the parsed fields come first, then the original fields
//! in their order (the parsed key itself only with `Preserve_Key`); without it, only the parsed
//! fields remain (plus the key, at the end, with `Preserve_Key`). The record time becomes the
//! parsed time when the parser read one. A record whose field is missing, not text, or matched
//! by no parser passes unchanged, and is counted.

use std::sync::Arc;

use super::{Filter, FilterContext, FilterOutput};
use crate::config::{ConfigError, Section};
use crate::engine::metrics::FilterMetrics;
use crate::msgpack::ValueRef;
use crate::parser::Parser;
use crate::record::{Event, Tag};

pub struct ParserFilter {
    key: Box<[u8]>,
    parsers: Vec<Arc<Parser>>,
    reserve_data: bool,
    preserve_key: bool,
    unescape: bool,
    metrics: Arc<FilterMetrics>,
}

impl ParserFilter {
    pub fn from_section(
        section: &Section,
        ctx: &FilterContext<'_>,
        metrics: Arc<FilterMetrics>,
    ) -> Result<Self, ConfigError> {
        let key = section
            .str("key_name")
            .ok_or_else(|| ConfigError::new(&section.loc, "filter parser needs 'Key_Name'"))?;
        let mut parsers = Vec::new();
        for e in section.all("parser") {
            let p = ctx
                .parsers
                .iter()
                .find(|p| p.name == e.value)
                .ok_or_else(|| {
                    ConfigError::new(
                        &e.loc,
                        format!(
                            "parser '{}' is not defined (is its Parsers_File loaded?)",
                            e.value
                        ),
                    )
                })?;
            p.prepare()?;
            parsers.push(p.clone());
        }
        if parsers.is_empty() {
            return Err(ConfigError::new(
                &section.loc,
                "filter parser needs at least one 'Parser'",
            ));
        }
        Ok(ParserFilter {
            key: key.as_bytes().into(),
            parsers,
            reserve_data: section.bool("reserve_data", false)?,
            preserve_key: section.bool("preserve_key", false)?,
            unescape: section.bool("unescape_key", false)?,
            metrics,
        })
    }
}

impl Filter for ParserFilter {
    fn filter(&self, _tag: &Tag, event: Event, out: &mut FilterOutput<'_>) {
        let mut fields = event.fields();
        let mut found: Option<(&[u8], &[u8])> = None;
        // The last field of that name wins, as in the JSON output.
        while let Some(Ok((k, v))) = fields.next_raw() {
            if k == &*self.key {
                found = Some((k, v));
            }
        }
        let text = found.and_then(|(_, raw)| match crate::msgpack::Reader::new(raw).value() {
            Ok(ValueRef::Str(t) | ValueRef::Bin(t)) => Some(t),
            _ => None,
        });
        let Some(text) = text else {
            return out.emit(event);
        };
        let unescaped;
        let text = if self.unescape && text.contains(&b'\\') {
            unescaped = unescape(text);
            &unescaped[..]
        } else {
            text
        };
        for parser in &self.parsers {
            let mut b = out.builder();
            let Some(time) = parser.parse(text, &mut b) else {
                continue;
            };
            if self.reserve_data {
                let key = &*self.key;
                let keep_key = self.preserve_key;
                b.copy_fields(event.fields(), |k| keep_key || k != key);
            } else if self.preserve_key
                && let Some((k, raw)) = found
            {
                b.raw(k, raw);
            }
            let built = b.finish_event(time.unwrap_or(event.time));
            return out.emit(built);
        }
        self.metrics.unparsed.inc();
        out.emit(event);
    }
}

/// Undoes backslash escapes (`\n`, `\t`, `\"`, `\\`, ...) in a value before parsing.
fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && i + 1 < s.len() {
            out.push(match s[i + 1] {
                b'n' => b'\n',
                b't' => b'\t',
                b'r' => b'\r',
                c => c,
            });
            i += 2;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testing::{records, section};

    fn filter(extra: &[(&str, &str)]) -> ParserFilter {
        let logfmt =
            Parser::from_section(&section(&[("Name", "kv"), ("Format", "logfmt")])).unwrap();
        let json = Parser::from_section(&section(&[
            ("Name", "js"),
            ("Format", "json"),
            ("Time_Key", "t"),
            ("Time_Format", "%s"),
        ]))
        .unwrap();
        let parsers = vec![Arc::new(json), Arc::new(logfmt)];
        let mut lines = vec![("Key_Name", "log"), ("Parser", "js"), ("Parser", "kv")];
        lines.extend_from_slice(extra);
        ParserFilter::from_section(
            &section(&lines),
            &FilterContext { parsers: &parsers },
            Arc::default(),
        )
        .unwrap()
    }

    const REC: &str = r#"{"a":"1","log":"x=2 y=3","b":"4"}"#;

    #[test]
    fn reserve_data_and_preserve_key_orders() {
        assert_eq!(records(&filter(&[]), &[REC]), [r#"{"x":"2","y":"3"}"#]);
        assert_eq!(
            records(&filter(&[("Reserve_Data", "On")]), &[REC]),
            [r#"{"x":"2","y":"3","a":"1","b":"4"}"#]
        );
        assert_eq!(
            records(
                &filter(&[("Reserve_Data", "On"), ("Preserve_Key", "On")]),
                &[REC]
            ),
            [r#"{"x":"2","y":"3","a":"1","log":"x=2 y=3","b":"4"}"#]
        );
        assert_eq!(
            records(&filter(&[("Preserve_Key", "On")]), &[REC]),
            [r#"{"x":"2","y":"3","log":"x=2 y=3"}"#]
        );
    }

    #[test]
    fn first_matching_parser_wins_and_sets_the_time() {
        let f = filter(&[]);
        let out =
            crate::filter::testing::run(&f, "t", &[r#"{"log":"{\"t\":\"1700000000\",\"k\":1}"}"#]);
        assert_eq!(out[0].1, r#"{"k":1}"#);
    }

    #[test]
    fn unparsable_missing_or_non_text_fields_pass_unchanged_and_are_counted() {
        let f = filter(&[]);
        let inputs = [r#"{"log":"   "}"#, r#"{"other":"x=1"}"#, r#"{"log":5}"#];
        assert_eq!(records(&f, &inputs), inputs);
        assert_eq!(f.metrics.unparsed.get(), 1);
    }

    #[test]
    fn unknown_parser_is_a_config_error() {
        let err = ParserFilter::from_section(
            &section(&[("Key_Name", "log"), ("Parser", "nope")]),
            &FilterContext { parsers: &[] },
            Arc::default(),
        )
        .err()
        .unwrap();
        assert!(err.message.contains("parser 'nope' is not defined"));
    }
}
