//! `tcp`: newline-delimited text over TCP, as Fluent Bit's `in_tcp`. `Format json` takes one
//! JSON object a line; `Format none` puts each line in a `log` field. FireLens generates one on
//! 127.0.0.1:8877 as a health probe target routed to `null`.
//!
//! Records get the time they arrived. A line longer than `Buffer_Size` is discarded and counted,
//! and the connection goes on after the next separator.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::listener::{Accepted, DEFAULT_MAX_CONNECTIONS, Listener};
use super::{BindError, Input, InputContext};
use crate::config::{ConfigError, Section};
use crate::engine::{DropReason, Emitter};
use crate::record::{Batch, EventTime, RecordBuilder, Tag};

/// Fluent Bit's defaults: port 5170, 32 KB reads, and a line may be as long as a read.
const DEFAULT_PORT: u16 = 5170;
const DEFAULT_CHUNK_SIZE: u64 = 32_000;
/// After stop, a client silent for this long is done.
const DRAIN_IDLE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    None,
}

#[derive(Debug)]
struct Settings {
    name: String,
    listen: String,
    port: u16,
    format: Format,
    separator: Vec<u8>,
    chunk_size: usize,
    /// Longest line kept.
    buffer_size: usize,
    tag: Tag,
    /// Most connections open at once (0: no limit).
    max_connections: usize,
}

pub struct Tcp {
    settings: Arc<Settings>,
    listener: Option<Listener>,
}

impl Tcp {
    pub fn from_section(section: &Section, name: &str) -> Result<Self, ConfigError> {
        let format = match section
            .str("format")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("json") => Format::Json,
            Some("none") => Format::None,
            Some(other) => {
                let loc = section.entry("format").map_or(&section.loc, |e| &e.loc);
                return Err(ConfigError::new(
                    loc,
                    format!("format: '{other}' is not a tcp input format (json or none)"),
                ));
            }
        };
        let separator = section
            .str("separator")
            .map_or_else(|| b"\n".to_vec(), unescape);
        if separator.is_empty() {
            let loc = section.entry("separator").map_or(&section.loc, |e| &e.loc);
            return Err(ConfigError::new(loc, "separator: must not be empty"));
        }
        // Fluent Bit reads Chunk_Size and Buffer_Size in kilobytes when given as plain numbers.
        let kb = |key: &str| -> Result<Option<u64>, ConfigError> {
            section.parse(key, |v| {
                let v = v.trim();
                match v.parse::<u64>() {
                    Ok(n) => Ok(n * 1000),
                    Err(_) => crate::config::value::parse_size(v),
                }
            })
        };
        let chunk_size = kb("chunk_size")?.unwrap_or(DEFAULT_CHUNK_SIZE).max(1024);
        let buffer_size = kb("buffer_size")?.unwrap_or(chunk_size).max(chunk_size);
        Ok(Tcp {
            settings: Arc::new(Settings {
                name: name.to_string(),
                listen: section.str("listen").unwrap_or("0.0.0.0").to_string(),
                port: section.port("port")?.unwrap_or(DEFAULT_PORT),
                format,
                separator,
                chunk_size: chunk_size.min(u32::MAX as u64) as usize,
                buffer_size: buffer_size.min(u32::MAX as u64) as usize,
                tag: Arc::from(section.str("tag").unwrap_or(name)),
                max_connections: section
                    .uint("max_connections")?
                    .unwrap_or(DEFAULT_MAX_CONNECTIONS)
                    .min(usize::MAX as u64) as usize,
            }),
            listener: None,
        })
    }

    fn address(&self) -> String {
        format!("{}:{}", self.settings.listen, self.settings.port)
    }
}

/// `\n`, `\r`, `\t` and `\\` in a configured separator.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b't') => out.push(b'\t'),
            Some(other) => out.push(other),
            None => out.push(b'\\'),
        }
    }
    out
}

#[async_trait]
impl Input for Tcp {
    async fn bind(&mut self) -> Result<(), BindError> {
        let s = self.settings.clone();
        let listener = Listener::tcp(&s.listen, s.port)
            .await
            .map_err(|source| BindError {
                input: s.name.clone(),
                address: self.address(),
                source,
            })?;
        tracing::info!(
            "[input:tcp:{}] listening on {}",
            s.name,
            listener.shown(&self.address())
        );
        self.listener = Some(listener);
        Ok(())
    }

    async fn run(self: Box<Self>, ctx: InputContext) {
        let Some(listener) = self.listener else {
            return;
        };
        let settings = self.settings;
        let name = format!("tcp:{}", settings.name);
        listener
            .serve(
                &name,
                &ctx.stop,
                settings.max_connections,
                ctx.emitter.metrics(),
                |accepted| {
                    let conn = Connection {
                        settings: settings.clone(),
                        emitter: ctx.emitter.clone(),
                        buf: BytesMut::new(),
                        scratch: Vec::new(),
                        arena: BytesMut::with_capacity(crate::record::arena_for(0)),
                        discarding: false,
                    };
                    let stop = ctx.stop.clone();
                    let drain = ctx.drain;
                    async move {
                        if let Accepted::Tcp(stream) = accepted {
                            conn.serve(stream, stop, drain).await;
                        }
                    }
                },
            )
            .await;
    }

    fn describe(&self) -> String {
        let format = match self.settings.format {
            Format::Json => "json",
            Format::None => "none",
        };
        format!("tcp on {} (format {format})", self.address())
    }
}

struct Connection {
    settings: Arc<Settings>,
    emitter: Emitter,
    buf: BytesMut,
    /// A JSON line converted to msgpack.
    scratch: Vec<u8>,
    arena: BytesMut,
    /// Skipping the rest of a line that was too long.
    discarding: bool,
}

impl Connection {
    async fn serve(mut self, mut sock: TcpStream, stop: CancellationToken, drain: Duration) {
        self.emitter.metrics().connections.add(1);
        let mut drain_until = None;
        loop {
            self.buf.reserve(self.settings.chunk_size);
            let read = match drain_until {
                None => tokio::select! {
                    r = sock.read_buf(&mut self.buf) => r,
                    () = stop.cancelled() => {
                        drain_until = Some(tokio::time::Instant::now() + drain);
                        continue;
                    }
                },
                Some(until) => {
                    let idle = tokio::time::Instant::now() + DRAIN_IDLE;
                    match tokio::time::timeout_at(idle.min(until), sock.read_buf(&mut self.buf))
                        .await
                    {
                        Ok(r) => r,
                        Err(_) => break,
                    }
                }
            };
            match read {
                Ok(0) | Err(_) => break,
                Ok(n) => self.emitter.metrics().bytes.add(n as u64),
            }
            let batch = self.lines(false);
            if self.emitter.emit(batch).await.is_err() {
                break;
            }
            if self.buf.is_empty() {
                self.buf = BytesMut::new();
            }
        }
        // What is left after the last separator is a last line.
        let batch = self.lines(true);
        let _ = self.emitter.emit(batch).await;
        self.emitter.metrics().connections.sub(1);
    }

    /// Takes every whole line out of the buffer (and the rest too at `eof`) as a batch.
    fn lines(&mut self, eof: bool) -> Batch {
        let settings = self.settings.clone();
        let mut batch = Batch::new(settings.tag.clone());
        let now = EventTime::now();
        loop {
            let line = match memchr::memmem::find(&self.buf, &settings.separator) {
                Some(at) => {
                    let line = self.buf.split_to(at);
                    self.buf.advance(settings.separator.len());
                    if std::mem::take(&mut self.discarding) {
                        continue; // the tail of a line already refused
                    }
                    line
                }
                None if eof && !self.buf.is_empty() && !self.discarding => self.buf.split(),
                None => {
                    if self.buf.len() > settings.buffer_size {
                        if !self.discarding {
                            self.refuse_long_line(self.buf.len());
                        }
                        self.discarding = true;
                        // Keep what could be the start of a separator cut by the read.
                        let keep = settings.separator.len() - 1;
                        self.buf.advance(self.buf.len() - keep);
                    }
                    break;
                }
            };
            if line.len() > settings.buffer_size {
                self.refuse_long_line(line.len());
            } else {
                self.record(&line, now, &mut batch);
            }
        }
        batch
    }

    fn refuse_long_line(&self, len: usize) {
        let m = self.emitter.metrics();
        m.errors.inc();
        m.dropped.add(DropReason::InvalidEvent, 1);
        tracing::warn!(
            "[input:tcp:{}] a line of over {len} bytes exceeds Buffer_Size {}; discarded",
            self.settings.name,
            self.settings.buffer_size
        );
    }

    fn record(&mut self, line: &[u8], now: EventTime, batch: &mut Batch) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let event = match self.settings.format {
            Format::None => {
                let mut b = RecordBuilder::new(&mut self.arena);
                b.str(b"log", line);
                b.finish_event(now)
            }
            Format::Json => {
                self.scratch.clear();
                let event = crate::parser::json::object_to_msgpack(line, &mut self.scratch)
                    .and_then(|()| {
                        crate::record::Event::new(now, bytes::Bytes::copy_from_slice(&self.scratch))
                            .ok()
                    });
                match event {
                    Some(e) => e,
                    None => {
                        let m = self.emitter.metrics();
                        m.errors.inc();
                        m.dropped.add(DropReason::InvalidEvent, 1);
                        tracing::warn!(
                            "[input:tcp:{}] a line is not a JSON object; discarded ({} bytes)",
                            self.settings.name,
                            line.len()
                        );
                        return;
                    }
                }
            }
        };
        self.emitter.metrics().records.inc();
        batch.push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_are_unescaped() {
        assert_eq!(unescape("\\n"), b"\n");
        assert_eq!(unescape("\\r\\n"), b"\r\n");
        assert_eq!(unescape("||"), b"||");
        assert_eq!(unescape("a\\"), b"a\\");
    }
}
