//! What the forward targets share: a connection's path from bytes to events.

use bytes::Bytes;
use logrouter::input::forward::frame::{self, FrameError};
use logrouter::msgpack::{Scanner, ScannerLimits};
use logrouter::record::Event;

/// The forward input's nesting limit (src/input/forward/conn.rs `MAX_DEPTH`).
pub const MAX_DEPTH: usize = 64;

/// Touches every field of every event, as an output formatting it would.
fn walk(events: &[Event]) {
    for e in events {
        let _ = e.size();
        let mut fields = e.fields();
        while let Some(f) = fields.next_raw() {
            if f.is_err() {
                break;
            }
        }
    }
}

/// Decodes one frame as the connection does (`open`, then `Entries::read` in steps of
/// `step` bytes) and checks that the result is the same as `decode`'s in one go.
pub fn frame(frame: &Bytes, max_inflated: usize, step: usize) {
    let mut stepped = Vec::new();
    let opened = frame::open(frame, max_inflated);
    let mut whole = Vec::new();
    let decoded = frame::decode(frame, max_inflated, &mut whole);
    let (info, mut entries) = match opened {
        Ok(Some(f)) => f,
        Ok(None) => {
            assert!(
                matches!(decoded, Ok(None)),
                "open: heartbeat, decode: {decoded:?}"
            );
            return;
        }
        Err(e) => {
            assert!(decoded.is_err(), "open: {e}, decode: {decoded:?}");
            return;
        }
    };
    let mut invalid = info.invalid;
    let mut error: Option<FrameError> = None;
    while !entries.is_done() {
        let before = stepped.len();
        match entries.read(&mut stepped, step) {
            Ok(n) => {
                invalid += n;
                // Every read makes progress: an event, a skipped entry, or the end.
                assert!(
                    stepped.len() > before || n > 0 || entries.is_done(),
                    "a read made no progress"
                );
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    walk(&stepped);
    match (decoded, error) {
        (Ok(Some(d)), None) => {
            assert_eq!(d.invalid, invalid, "invalid counts differ");
            assert_eq!(d.tag, info.tag);
            assert_eq!(d.chunk, info.chunk);
            assert_eq!(whole.len(), stepped.len(), "event counts differ");
            for (a, b) in whole.iter().zip(&stepped) {
                assert_eq!(a.time.as_nanos(), b.time.as_nanos());
                assert_eq!(a.record, b.record);
            }
        }
        (Err(_), Some(_)) => {}
        (d, e) => panic!("decode: {d:?}, stepped read error: {e:?}"),
    }
}

/// Scans `stream` in pieces of `piece` bytes as a connection's reads would deliver it, and
/// decodes each frame found. Returns how many frames were found.
pub fn connection(stream: &[u8], max_size: usize, piece: usize, step: usize) -> usize {
    let mut scanner = Scanner::new(ScannerLimits {
        max_bytes: max_size,
        max_depth: MAX_DEPTH,
    });
    let mut buf = bytes::BytesMut::new();
    let mut frames = 0;
    for chunk in stream.chunks(piece.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            match scanner.advance(&buf) {
                Ok(Some(len)) => {
                    assert!(len <= buf.len());
                    let f = buf.split_to(len).freeze();
                    frame(&f, max_size, step);
                    frames += 1;
                }
                Ok(None) => break,
                // The connection is closed.
                Err(_) => return frames,
            }
        }
    }
    frames
}
