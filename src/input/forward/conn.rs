//! Serves one Forward connection: read, find whole frames, decode them into batches, hand the
//! batches to the engine, then ack.
//!
//! The read buffer is only held while there is data: an idle connection waits for readiness
//! without a buffer, so thousands of idle clients cost little. Frames are split off the buffer
//! without copying and their records stay slices of it. A frame is scanned once however many
//! reads bring it in (see [`Scanner`]).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::Settings;
use super::frame::{self, FrameError};
use super::handshake::{self, HandshakeError};
use super::socket::Socket;
use crate::engine::{Closed, DropReason, Emitter};
use crate::msgpack::{DecodeError, Scanner, ScannerLimits};
use crate::record::{Batch, Event, Tag};

/// Bytes read at a time when no large frame is pending.
const READ_SIZE: usize = 16 * 1024;
/// Batches are handed over once they hold this much, even mid-read.
const EMIT_BYTES: usize = 1_000_000;
/// Deepest msgpack nesting accepted in a frame.
const MAX_DEPTH: usize = 64;
/// After stop, a client silent for this long is done.
const DRAIN_IDLE: Duration = Duration::from_millis(200);
/// A client that writes small frames in quick succession (Docker's driver writes one record a
/// write) is read at most this often, so that one wake-up and one read take many frames.
const COALESCE: Duration = Duration::from_millis(20);

/// Sleeps `COALESCE` (or until `stop`) with the socket out of the poller: without that, epoll
/// wakes the thread for every packet the client sends while the connection waits, which costs
/// more than reading them (a context switch each; 1,000 a second at 10,000 lines/s).
async fn coalesce<S: Socket>(sock: S, stop: &CancellationToken) -> io::Result<S> {
    let parked = sock.into_std()?;
    tokio::select! {
        () = tokio::time::sleep(COALESCE) => {}
        () = stop.cancelled() => {}
    }
    S::from_std(parked)
}

/// Why a connection was closed by the router.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("invalid frame, closing the connection: {0}")]
    Framing(#[from] DecodeError),
    #[error(transparent)]
    Closed(#[from] Closed),
}

struct Connection {
    settings: Arc<Settings>,
    buf: BytesMut,
    /// Frames completed so far.
    frames: u64,
    scanner: Scanner,
    /// Batches decoded but not yet handed over, in arrival order.
    pending: Vec<Batch>,
    pending_bytes: usize,
    /// Acks for frames in `pending`, written once those are accepted.
    acks: Vec<u8>,
    /// Last tag seen on the wire and the tag it became, to share one `Arc` across frames.
    /// (A copy, not a slice: a slice would pin the read buffer while the connection idles.)
    last_tag: Option<(Box<[u8]>, Tag)>,
    scratch: Vec<Event>,
}

/// What every connection of a listener gets.
#[derive(Clone)]
pub(super) struct Shared {
    pub settings: Arc<Settings>,
    pub emitter: Emitter,
    pub stop: CancellationToken,
    /// After `stop`, how long to keep reading a client that still sends.
    pub drain: Duration,
}

pub(super) async fn serve<S: Socket>(sock: S, shared: Shared) {
    let Shared {
        settings,
        mut emitter,
        stop,
        drain,
    } = shared;
    let metrics_name = settings.name.clone();
    emitter.metrics().connections.add(1);
    let mut conn = Connection {
        scanner: Scanner::new(ScannerLimits {
            max_bytes: settings.max_size,
            max_depth: MAX_DEPTH,
        }),
        settings,
        buf: BytesMut::new(),
        pending: Vec::new(),
        pending_bytes: 0,
        acks: Vec::new(),
        last_tag: None,
        scratch: Vec::new(),
        frames: 0,
    };
    let mut sock = sock;
    if let Some(auth) = conn.settings.auth.clone() {
        match handshake::run(&mut sock, &auth, conn.settings.frame_timeout, &stop).await {
            // What the client sent after its PING is the start of its data.
            Ok(rest) => conn.buf = rest,
            Err(e) => {
                let m = emitter.metrics();
                match e {
                    HandshakeError::Refused(_) => {
                        m.auth_failures.inc();
                        tracing::warn!("[input:forward:{metrics_name}] handshake refused: {e}");
                    }
                    HandshakeError::TimedOut => {
                        m.timed_out_connections.inc();
                        tracing::warn!("[input:forward:{metrics_name}] closing a connection: {e}");
                    }
                    HandshakeError::Stopped | HandshakeError::Io(_) => {
                        tracing::debug!("[input:forward:{metrics_name}] handshake ended: {e}");
                    }
                }
                m.connections.sub(1);
                return;
            }
        }
    }
    // Data already read (after the PING) is processed before waiting for more.
    let mut primed = !conn.buf.is_empty();
    let mut drain_until = None;
    // When the last read happened, whether it was small, and whether its frames asked for acks.
    let mut last_read = tokio::time::Instant::now();
    // The read before it: a client whose reads come close together is writing fast.
    let mut prev_read = last_read;
    let mut trickle = false;
    // When the first byte of the frame being received arrived (slowloris guard).
    let mut frame_deadline: Option<tokio::time::Instant> = None;
    loop {
        if primed {
            primed = false;
            emitter.metrics().bytes.add(conn.buf.len() as u64);
            last_read = tokio::time::Instant::now();
        } else {
            let ready = match drain_until {
                None => tokio::select! {
                    r = sock.readable() => r,
                    () = stop.cancelled() => {
                        drain_until = Some(tokio::time::Instant::now() + drain);
                        continue;
                    }
                    () = sleep_until(frame_deadline) => {
                        emitter.metrics().timed_out_connections.inc();
                        tracing::warn!(
                            "[input:forward:{metrics_name}] closing a connection whose frame did not complete within Frame_Timeout ({} bytes received)",
                            conn.buf.len()
                        );
                        break;
                    }
                },
                Some(until) => {
                    let idle = tokio::time::Instant::now() + DRAIN_IDLE;
                    match tokio::time::timeout_at(idle.min(until), sock.readable()).await {
                        Ok(r) => r,
                        Err(_) => break,
                    }
                }
            };
            if ready.is_err() {
                break;
            }
            // Frames trickling in (the last read was small and recent) wait a little for the
            // ones behind them. Not while draining, and not for clients waiting for acks.
            // (Readiness stays set after a read that did not empty the socket, so "readable" alone
            // does not mean new data: a client writing every 100 ms must not be parked each time.)
            if trickle
                && drain_until.is_none()
                && last_read.elapsed() < COALESCE
                && last_read - prev_read < 2 * COALESCE
            {
                sock = match coalesce(sock, &stop).await {
                    Ok(s) => s,
                    Err(_) => break,
                };
            }
            conn.buf.reserve(conn.read_size());
            match sock.try_read_buf(&mut conn.buf) {
                Ok(0) => break,
                Ok(n) => {
                    emitter.metrics().bytes.add(n as u64);
                    trickle = n < READ_SIZE / 2;
                    prev_read = last_read;
                    last_read = tokio::time::Instant::now();
                    conn.compact();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => break,
            }
        }
        let frames_before = conn.frames;
        let processing = tokio::time::Instant::now();
        if let Err(e) = conn.process(&mut emitter).await {
            if let ConnError::Framing(_) = e {
                emitter.metrics().errors.inc();
                tracing::warn!("[input:forward:{metrics_name}] {e}");
            }
            break;
        }
        if !conn.acks.is_empty() {
            trickle = false;
            if sock.write_all(&conn.acks).await.is_err() || sock.flush().await.is_err() {
                break;
            }
            conn.acks.clear();
        }
        if conn.buf.is_empty() {
            // Release the buffer while idle; records still in flight keep their own slices.
            conn.buf = BytesMut::new();
            frame_deadline = None;
        } else if frame_deadline.is_none() || conn.frames != frames_before {
            // A frame has begun: the clock starts at its first read.
            frame_deadline = conn.settings.frame_timeout.map(|t| last_read + t);
        } else if let Some(d) = &mut frame_deadline {
            // Time spent waiting for queue room (backpressure) is ours, not the client's.
            *d += processing.elapsed();
        }
    }
    if !conn.buf.is_empty() {
        tracing::debug!(
            "[input:forward:{metrics_name}] connection closed with {} bytes of an incomplete frame",
            conn.buf.len()
        );
    }
    emitter.metrics().connections.sub(1);
}

impl Connection {
    /// Records are slices of the buffer they were read into, and keep all of it alive while
    /// they wait in queues, which count only the records' own bytes. A small read into a
    /// mostly empty buffer is therefore moved to an allocation of its own size, so the memory
    /// held stays within twice what the budgets count. Large reads (a buffer reserved for a
    /// big frame) fill their buffer and are kept as they are: no copy, and no quadratic
    /// re-copying of a frame that arrives over many reads.
    fn compact(&mut self) {
        let cap = self.buf.capacity();
        if cap <= 2 * READ_SIZE && self.buf.len() * 2 < cap {
            self.buf = BytesMut::from(&self.buf[..]);
        }
    }

    /// How much to read next: enough for the frame being received, within the chunk size.
    fn read_size(&self) -> usize {
        let owed = (self.scanner.scanned() as usize).saturating_sub(self.buf.len());
        owed.clamp(READ_SIZE, self.settings.chunk_size.max(READ_SIZE))
    }

    /// Decodes every whole frame in the buffer and hands the batches over.
    async fn process(&mut self, emitter: &mut Emitter) -> Result<(), ConnError> {
        while let Some(len) = self.scanner.advance(&self.buf)? {
            self.frames += 1;
            let frame = self.buf.split_to(len).freeze();
            self.handle(&frame, emitter).await?;
        }
        self.emit(emitter).await?;
        Ok(())
    }

    /// Adds one frame's events to the pending batches, handing them over every `EMIT_BYTES`
    /// and then letting other connections run: a read, or one frame, of millions of events
    /// is handled in steps of bounded size and time.
    async fn handle(&mut self, frame: &bytes::Bytes, emitter: &mut Emitter) -> Result<(), Closed> {
        let (decoded, mut entries) = match frame::open(frame, self.settings.max_size) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()), // heartbeat
            Err(e) => {
                refuse(&self.settings.name, emitter, &e);
                return Ok(());
            }
        };
        let tag = self.tag(&decoded.tag);
        let mut invalid = decoded.invalid;
        while !entries.is_done() {
            let room = EMIT_BYTES.saturating_sub(self.pending_bytes);
            match entries.read(&mut self.scratch, room) {
                Ok(n) => invalid += n,
                Err(e) => {
                    // The scanner checked the frame's msgpack, so this is not expected; what
                    // was read before stays accepted.
                    refuse(&self.settings.name, emitter, &e);
                    break;
                }
            }
            self.take_scratch(&tag, emitter);
            if self.pending_bytes >= EMIT_BYTES {
                self.emit(emitter).await?;
                tokio::task::yield_now().await;
            }
        }
        self.take_scratch(&tag, emitter);
        if invalid > 0 {
            emitter
                .metrics()
                .dropped
                .add(DropReason::InvalidEvent, invalid as u64);
            tracing::warn!(
                "[input:forward:{}] skipped {} invalid entries (bad time or record not a map) in a frame tagged '{}'",
                self.settings.name,
                invalid,
                String::from_utf8_lossy(&decoded.tag)
            );
        }
        if let Some(chunk) = decoded.chunk {
            // {"ack": <chunk as sent>}
            self.acks.extend_from_slice(&[0x81, 0xa3, b'a', b'c', b'k']);
            self.acks.extend_from_slice(&chunk);
        }
        Ok(())
    }

    /// Moves the decoded events into the pending batch for `tag`.
    fn take_scratch(&mut self, tag: &Tag, emitter: &Emitter) {
        if self.scratch.is_empty() {
            return;
        }
        emitter.metrics().records.add(self.scratch.len() as u64);
        let batch = match self.pending.last_mut() {
            Some(b) if b.tag == *tag => b,
            _ => {
                self.pending.push(Batch::new(tag.clone()));
                let last = self.pending.len() - 1;
                &mut self.pending[last]
            }
        };
        for event in self.scratch.drain(..) {
            self.pending_bytes += event.size();
            batch.push(event);
        }
    }

    /// The tag events are routed by: `Tag_Prefix` + wire tag, else `Tag`, else the wire tag.
    fn tag(&mut self, wire: &bytes::Bytes) -> Tag {
        if let Some((raw, tag)) = &self.last_tag
            && raw[..] == wire[..]
        {
            return tag.clone();
        }
        // The decoder checked the tag is UTF-8.
        let wire_str = String::from_utf8_lossy(wire);
        let tag: Tag = match (&self.settings.tag_prefix, &self.settings.tag) {
            (Some(prefix), _) => Arc::from(format!("{prefix}{wire_str}")),
            (None, Some(fixed)) => Arc::from(fixed.as_str()),
            (None, None) => Arc::from(wire_str.as_ref()),
        };
        self.last_tag = Some((Box::from(&wire[..]), tag.clone()));
        tag
    }

    async fn emit(&mut self, emitter: &mut Emitter) -> Result<(), Closed> {
        for batch in self.pending.drain(..) {
            emitter.emit(batch).await?;
        }
        self.pending_bytes = 0;
        Ok(())
    }
}

fn refuse(input: &str, emitter: &Emitter, e: &FrameError) {
    emitter.metrics().errors.inc();
    emitter.metrics().dropped.add(DropReason::RefusedFrame, 1);
    tracing::warn!("[input:forward:{input}] frame refused: {e}");
}

/// Waits until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
