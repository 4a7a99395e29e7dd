//! JSON records as Fluent Bit's outputs write them: `{"date":<time>, ...record}`, with the date
//! key and format from `json_date_key` / `json_date_format`.

use std::io::Write;

use crate::config::{ConfigError, Section, Service};
use crate::msgpack::json::{JsonStyle, write_f64};
use crate::record::{Event, EventTime};

/// How the event time is written (`json_date_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateFormat {
    /// Float seconds: `1700000000.123457`.
    Double,
    /// Integer seconds.
    Epoch,
    /// Integer milliseconds.
    EpochMs,
    /// `"2023-11-14T22:13:20.123456Z"`.
    Iso8601,
    /// `"2023-11-14 22:13:20.123456"`.
    JavaSqlTimestamp,
}

impl DateFormat {
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "double" => DateFormat::Double,
            "epoch" => DateFormat::Epoch,
            "epoch_ms" | "epoch_millis" | "epoch_milliseconds" => DateFormat::EpochMs,
            "iso8601" => DateFormat::Iso8601,
            "java_sql_timestamp" => DateFormat::JavaSqlTimestamp,
            _ => {
                return Err(format!(
                    "'{s}' is not a date format (double, epoch, epoch_ms, iso8601, java_sql_timestamp)"
                ));
            }
        })
    }

    /// Writes `t` as a JSON value in this format.
    pub fn write(self, out: &mut Vec<u8>, t: EventTime) {
        let micros = t.subsec_nanos() / 1000;
        let calendar = |out: &mut Vec<u8>, sep: char, zone: &str| {
            let dt = chrono::DateTime::from_timestamp(t.secs(), 0).unwrap_or_default();
            let _ = write!(
                out,
                "\"{}{sep}{}.{micros:06}{zone}\"",
                dt.format("%Y-%m-%d"),
                dt.format("%H:%M:%S")
            );
        };
        match self {
            DateFormat::Double => {
                write_f64(out, t.secs() as f64 + f64::from(t.subsec_nanos()) / 1e9)
            }
            DateFormat::Epoch => {
                out.extend_from_slice(itoa::Buffer::new().format(t.secs()).as_bytes())
            }
            DateFormat::EpochMs => {
                let ms = t.as_nanos().div_euclid(1_000_000);
                out.extend_from_slice(itoa::Buffer::new().format(ms).as_bytes());
            }
            DateFormat::Iso8601 => calendar(out, 'T', "Z"),
            DateFormat::JavaSqlTimestamp => calendar(out, ' ', ""),
        }
    }
}

/// `time_key_format`: strftime, plus `%L` / `%3N` (milliseconds), `%6N` (microseconds) and
/// `%9N` (nanoseconds) as Fluent Bit's AWS outputs accept. Compiled once.
#[derive(Debug, Clone)]
pub struct TimeKeyFormat {
    pieces: Vec<TimePiece>,
}

#[derive(Debug, Clone)]
enum TimePiece {
    Strftime(Vec<chrono::format::Item<'static>>),
    Fraction(u32),
}

impl TimeKeyFormat {
    pub fn new(format: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = format;
        let strftime = |s: &str, pieces: &mut Vec<TimePiece>| -> Result<(), String> {
            if !s.is_empty() {
                let items = chrono::format::StrftimeItems::new(s)
                    .parse_to_owned()
                    .map_err(|_| format!("'{s}' is not a valid strftime format"))?;
                pieces.push(TimePiece::Strftime(items));
            }
            Ok(())
        };
        loop {
            let next = [("%L", 3), ("%3N", 3), ("%6N", 6), ("%9N", 9)]
                .iter()
                .filter_map(|(tok, digits)| rest.find(tok).map(|i| (i, *tok, *digits)))
                .min_by_key(|(i, _, _)| *i);
            match next {
                Some((i, tok, digits)) => {
                    strftime(&rest[..i], &mut pieces)?;
                    pieces.push(TimePiece::Fraction(digits));
                    rest = &rest[i + tok.len()..];
                }
                None => {
                    strftime(rest, &mut pieces)?;
                    break;
                }
            }
        }
        Ok(TimeKeyFormat { pieces })
    }

    pub fn format(&self, t: EventTime) -> String {
        let dt = chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()).unwrap_or_default();
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                TimePiece::Strftime(items) => {
                    let _ = std::fmt::Write::write_fmt(
                        &mut out,
                        format_args!("{}", dt.format_with_items(items.iter())),
                    );
                }
                TimePiece::Fraction(digits) => {
                    let v = t.subsec_nanos() / 10u32.pow(9 - digits);
                    let _ = std::fmt::Write::write_fmt(
                        &mut out,
                        format_args!("{v:0width$}", width = *digits as usize),
                    );
                }
            }
        }
        out
    }
}

/// Writes events as JSON objects with the event time under a date key.
#[derive(Debug, Clone)]
pub struct JsonRecord {
    /// `None` when `json_date_key` is false: no date member.
    pub date_key: Option<String>,
    pub date_format: DateFormat,
    pub style: JsonStyle,
}

impl JsonRecord {
    /// Reads `json_date_key` (default `default_key`) and `json_date_format` (default double).
    pub fn from_section(
        section: &Section,
        default_key: &str,
        service: &Service,
    ) -> Result<Self, ConfigError> {
        let date_key = match section.str("json_date_key") {
            None => Some(default_key.to_string()),
            Some(v) if crate::config::value::parse_bool(v) == Ok(false) => None,
            Some(v) => Some(v.to_string()),
        };
        Ok(JsonRecord {
            date_key,
            date_format: section
                .parse("json_date_format", DateFormat::parse)?
                .unwrap_or(DateFormat::Double),
            style: JsonStyle {
                escape_unicode: service.json_escape_unicode,
            },
        })
    }

    /// Writes `event` as one JSON object (no newline). As in Fluent Bit, a record field named
    /// like the date key replaces the date.
    pub fn write(&self, out: &mut Vec<u8>, event: &Event) {
        out.push(b'{');
        let mut comma = false;
        if let Some(key) = &self.date_key
            && event.get(key).is_none()
        {
            self.style.str(out, key.as_bytes());
            out.push(b':');
            self.date_format.write(out, event.time);
            comma = true;
        }
        self.style.members(out, event.fields(), comma);
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(format: DateFormat, nanos: u32) -> String {
        let mut out = Vec::new();
        format.write(&mut out, EventTime::from_parts(1_700_000_000, nanos));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn date_formats_match_fluent_bit() {
        assert_eq!(date(DateFormat::Double, 123_456_789), "1700000000.123457");
        assert_eq!(date(DateFormat::Double, 500_000_000), "1700000000.5");
        assert_eq!(date(DateFormat::Double, 0), "1700000000.0");
        assert_eq!(date(DateFormat::Epoch, 123_456_789), "1700000000");
        assert_eq!(date(DateFormat::EpochMs, 123_456_789), "1700000000123");
        assert_eq!(
            date(DateFormat::Iso8601, 123_456_789),
            "\"2023-11-14T22:13:20.123456Z\""
        );
        assert_eq!(
            date(DateFormat::JavaSqlTimestamp, 123_456_789),
            "\"2023-11-14 22:13:20.123456\""
        );
    }

    #[test]
    fn time_key_formats() {
        let t = EventTime::from_parts(1_700_000_000, 123_456_789);
        assert_eq!(
            TimeKeyFormat::new("%Y-%m-%dT%H:%M:%S").unwrap().format(t),
            "2023-11-14T22:13:20"
        );
        assert_eq!(
            TimeKeyFormat::new("%Y-%m-%dT%H:%M:%S.%LZ")
                .unwrap()
                .format(t),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            TimeKeyFormat::new("%s.%9N").unwrap().format(t),
            "1700000000.123456789"
        );
        assert_eq!(
            TimeKeyFormat::new("%H:%M:%S.%6N").unwrap().format(t),
            "22:13:20.123456"
        );
    }

    #[test]
    fn a_record_field_named_like_the_date_key_wins() {
        let rec = JsonRecord {
            date_key: Some("date".into()),
            date_format: DateFormat::Epoch,
            style: JsonStyle::default(),
        };
        let t = EventTime::from_parts(1_700_000_000, 0);
        let mut out = Vec::new();
        rec.write(&mut out, &Event::from_pairs(t, &[("k", "v")]));
        assert_eq!(out, br#"{"date":1700000000,"k":"v"}"#);
        out.clear();
        rec.write(
            &mut out,
            &Event::from_pairs(t, &[("date", "mine"), ("k", "v")]),
        );
        assert_eq!(out, br#"{"date":"mine","k":"v"}"#);
    }
}
