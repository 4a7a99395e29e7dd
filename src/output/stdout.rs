//! `stdout`: writes events to standard output, in Fluent Bit's formats.
//!
//! - `msgpack` (default): `[N] tag: [[SEC.NNNNNNNNN, {}], {"k"=>"v"}]`, N counting from 0 in
//!   each flush;
//! - `json_lines`: one JSON object a line; `json`: one JSON array a flush; `json_stream`: objects
//!   back to back, a newline a flush.

use std::io::Write;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::{Chunk, FlushError, JsonRecord, Output};
use crate::config::{ConfigError, Section, Service};
use crate::msgpack::print;
use crate::record::Batch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Msgpack,
    Json,
    JsonLines,
    JsonStream,
}

pub struct Stdout {
    format: Format,
    json: JsonRecord,
}

/// Every stdout instance shares the one standard output: a flush is written whole.
static STDOUT: Mutex<()> = Mutex::const_new(());

impl Stdout {
    pub fn from_section(section: &Section, service: &Service) -> Result<Self, ConfigError> {
        let format = section
            .parse("format", |s| match s.to_ascii_lowercase().as_str() {
                "msgpack" => Ok(Format::Msgpack),
                "json" => Ok(Format::Json),
                "json_lines" => Ok(Format::JsonLines),
                "json_stream" => Ok(Format::JsonStream),
                _ => Err(format!(
                    "'{s}' is not a stdout format (msgpack, json, json_lines, json_stream)"
                )),
            })?
            .unwrap_or(Format::Msgpack);
        Ok(Stdout {
            format,
            json: JsonRecord::from_section(section, "date", service)?,
        })
    }

    /// The bytes one flush writes.
    fn render(&self, chunk: &[Arc<Batch>]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.iter().map(|b| b.bytes).sum::<usize>() * 2);
        let mut n = 0usize;
        if self.format == Format::Json {
            out.push(b'[');
        }
        for batch in chunk {
            for event in &batch.events {
                match self.format {
                    Format::Msgpack => {
                        let _ = write!(
                            out,
                            "[{n}] {}: [[{}.{:09}, {{}}], ",
                            batch.tag,
                            event.time.secs() as i32,
                            event.time.subsec_nanos()
                        );
                        print::write_fields(&mut out, event.fields());
                        out.extend_from_slice(b"]\n");
                    }
                    Format::Json => {
                        if n > 0 {
                            out.push(b',');
                        }
                        self.json.write(&mut out, event);
                    }
                    Format::JsonLines => {
                        self.json.write(&mut out, event);
                        out.push(b'\n');
                    }
                    Format::JsonStream => self.json.write(&mut out, event),
                }
                n += 1;
            }
        }
        match self.format {
            Format::Json => out.extend_from_slice(b"]\n"),
            Format::JsonStream => out.push(b'\n'),
            Format::Msgpack | Format::JsonLines => {}
        }
        out
    }
}

#[async_trait]
impl Output for Stdout {
    async fn flush(&self, chunk: &mut Chunk) -> Result<(), FlushError> {
        let chunk = chunk.batches();
        let bytes = self.render(chunk);
        let _guard = STDOUT.lock().await;
        let mut stdout = tokio::io::stdout();
        stdout
            .write_all(&bytes)
            .await
            .map_err(|e| FlushError::Retry(format!("writing to standard output: {e}")))?;
        stdout
            .flush()
            .await
            .map_err(|e| FlushError::Retry(format!("writing to standard output: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Location, SectionKind};
    use crate::record::{Event, EventTime};

    fn stdout(format: &str) -> Stdout {
        let mut s = Section::new(SectionKind::Output, Location::command_line());
        s.push("format", format, Location::command_line());
        Stdout::from_section(&s, &Service::default()).unwrap()
    }

    fn chunk() -> Vec<Arc<Batch>> {
        let mut b = Batch::new(Arc::from("app"));
        let t = EventTime::from_parts(1_700_000_000, 123_456_789);
        b.push(Event::from_pairs(t, &[("k", "v")]));
        b.push(Event::from_pairs(t, &[("k", "w")]));
        vec![Arc::new(b)]
    }

    #[test]
    fn formats() {
        let text = |f| String::from_utf8(stdout(f).render(&chunk())).unwrap();
        assert_eq!(
            text("msgpack"),
            "[0] app: [[1700000000.123456789, {}], {\"k\"=>\"v\"}]\n[1] app: [[1700000000.123456789, {}], {\"k\"=>\"w\"}]\n"
        );
        assert_eq!(
            text("json_lines"),
            "{\"date\":1700000000.123457,\"k\":\"v\"}\n{\"date\":1700000000.123457,\"k\":\"w\"}\n"
        );
        assert_eq!(
            text("json"),
            "[{\"date\":1700000000.123457,\"k\":\"v\"},{\"date\":1700000000.123457,\"k\":\"w\"}]\n"
        );
        assert_eq!(
            text("json_stream"),
            "{\"date\":1700000000.123457,\"k\":\"v\"}{\"date\":1700000000.123457,\"k\":\"w\"}\n"
        );
    }
}
