//! Decodes one complete Forward protocol frame into events.
//!
//! The mode is told by the second element: a time (integer, float or EventTime) means Message
//! `[tag, time, record, option?]`; an array means Forward `[tag, [[time, record], ...], option?]`;
//! str or bin means PackedForward `[tag, <entries>, option?]`, gzip-compressed when the option
//! says `compressed: "gzip"` or the payload starts with gzip's magic bytes.
//!
//! Records are not copied: each event's record is a slice of the frame (or of the inflated
//! payload). A frame whose shape is wrong is refused whole; a single bad entry (bad time, a
//! record that is not a map) is skipped and counted, and the rest of the frame is kept.

use std::io::Read;

use bytes::Bytes;

use crate::msgpack::{DecodeError, Header, Reader, ValueRef};
use crate::record::{Event, EventTime, MAX_TAG_BYTES};

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame is a {0}, not an array")]
    NotArray(&'static str),
    #[error("frame array has {0} elements; a Forward frame has 2 to 4")]
    BadLength(u32),
    #[error("tag is a {0}, not a string")]
    BadTag(&'static str),
    #[error("tag is {0} bytes long; the longest accepted is {MAX_TAG_BYTES}")]
    TagTooLong(usize),
    #[error("tag is not valid UTF-8")]
    TagNotUtf8,
    #[error("second element is a {0}: not a time, an entry array or packed entries")]
    BadMode(&'static str),
    #[error("option is a {0}, not a map")]
    BadOption(&'static str),
    #[error("option 'chunk' is a {0}, not a string")]
    BadChunk(&'static str),
    #[error("compression '{0}' is not supported (only gzip)")]
    UnsupportedCompression(String),
    #[error("gzip payload is invalid: {0}")]
    Gzip(String),
    #[error("gzip payload inflates past {0} bytes (Buffer_Max_Size)")]
    InflatedTooLarge(usize),
    #[error("{0}")]
    Decode(#[from] DecodeError),
}

/// What a decoded frame carries besides its events.
#[derive(Debug)]
pub struct Frame {
    /// The tag as sent (before Tag/Tag_Prefix).
    pub tag: Bytes,
    /// The `chunk` option's encoded value, echoed byte for byte in the ack.
    pub chunk: Option<Bytes>,
    /// Entries skipped because their time or record was invalid.
    pub invalid: usize,
}

/// Decodes `frame`, appending all its valid events to `events`. Returns `None` for a
/// heartbeat (`nil`). `max_inflated` bounds a compressed payload once inflated.
pub fn decode(
    frame: &Bytes,
    max_inflated: usize,
    events: &mut Vec<Event>,
) -> Result<Option<Frame>, FrameError> {
    let Some((mut info, mut entries)) = open(frame, max_inflated)? else {
        return Ok(None);
    };
    while !entries.is_done() {
        info.invalid += entries.read(events, usize::MAX)?;
    }
    Ok(Some(info))
}

/// A frame's entries, decoded a slice at a time (see [`Entries::read`]), so that a frame of
/// millions of small events is neither held as millions of events at once nor handled in
/// one step that would keep the event loop from other connections.
pub struct Entries(Source);

enum Source {
    Done,
    /// Message mode: its one event.
    One(Event),
    /// Forward mode: `left` entries from `pos` of an array's body.
    Array {
        body: Bytes,
        pos: usize,
        left: u32,
    },
    /// PackedForward: entries from `pos` to the payload's end.
    Packed {
        body: Bytes,
        pos: usize,
    },
}

impl Entries {
    pub fn is_done(&self) -> bool {
        matches!(self.0, Source::Done)
    }

    /// Appends events to `out` until their sizes (and skipped entries' wire sizes) reach
    /// `max_bytes` (at least one entry is read) or the entries end. Returns how many invalid
    /// entries were skipped.
    pub fn read(&mut self, out: &mut Vec<Event>, max_bytes: usize) -> Result<usize, FrameError> {
        let max_bytes = max_bytes.max(1);
        let mut invalid = 0;
        let mut size = 0;
        match std::mem::replace(&mut self.0, Source::Done) {
            Source::Done => {}
            Source::One(event) => out.push(event),
            Source::Array {
                body,
                mut pos,
                mut left,
            } => {
                while left > 0 && size < max_bytes {
                    let mut r = Reader::new(&body[pos..]);
                    let e = entry(&mut r)?;
                    pos += r.pos();
                    left -= 1;
                    match e {
                        Some((time, rec)) => size += push(out, time, body.slice_ref(rec)),
                        // Skipped entries count by their wire size, so a run of them is
                        // stepped through too.
                        None => {
                            invalid += 1;
                            size += r.pos();
                        }
                    }
                }
                if left > 0 {
                    self.0 = Source::Array { body, pos, left };
                }
            }
            Source::Packed { body, mut pos } => {
                while pos < body.len() && size < max_bytes {
                    let mut r = Reader::new(&body[pos..]);
                    match entry(&mut r) {
                        Ok(Some((time, rec))) => size += push(out, time, body.slice_ref(rec)),
                        Ok(None) => {
                            invalid += 1;
                            size += r.pos();
                        }
                        // Trailing bytes that are not a whole entry: skip them.
                        Err(_) => {
                            invalid += 1;
                            pos = body.len();
                            break;
                        }
                    }
                    pos += r.pos();
                }
                if pos < body.len() {
                    self.0 = Source::Packed { body, pos };
                }
            }
        }
        Ok(invalid)
    }
}

/// Appends an event; returns its [`Event::size`].
fn push(out: &mut Vec<Event>, time: EventTime, record: Bytes) -> usize {
    let event = Event { time, record };
    let size = event.size();
    out.push(event);
    size
}

/// Checks `frame`'s shape and reads its tag and options; its entries are read afterwards
/// through [`Entries`]. Returns `None` for a heartbeat (`nil`). `max_inflated` bounds a
/// compressed payload once inflated.
pub fn open(frame: &Bytes, max_inflated: usize) -> Result<Option<(Frame, Entries)>, FrameError> {
    let mut r = Reader::new(frame);
    let len = match r.header()? {
        Header::Nil => return Ok(None),
        Header::Array(n) => n,
        other => return Err(FrameError::NotArray(other.type_name())),
    };
    if !(2..=4).contains(&len) {
        return Err(FrameError::BadLength(len));
    }
    let tag = match r.value()? {
        ValueRef::Str(t) => t,
        other => return Err(FrameError::BadTag(other.type_name())),
    };
    if tag.len() > MAX_TAG_BYTES {
        return Err(FrameError::TagTooLong(tag.len()));
    }
    if std::str::from_utf8(tag).is_err() {
        return Err(FrameError::TagNotUtf8);
    }
    let tag = frame.slice_ref(tag);
    let second = r.value()?;
    let mut invalid = 0;
    let chunk;
    let source = match second {
        ValueRef::UInt(_) | ValueRef::Int(_) | ValueRef::F64(_) | ValueRef::Ext(..) => {
            if len < 3 {
                return Err(FrameError::BadLength(len));
            }
            let record = r.skip()?;
            let option = options(&mut r, len > 3)?;
            chunk = option.chunk.map(|c| frame.slice_ref(c));
            match (event_time(second), is_map(record)) {
                (Some(time), true) => Source::One(Event {
                    time,
                    record: frame.slice_ref(record),
                }),
                _ => {
                    invalid += 1;
                    Source::Done
                }
            }
        }
        ValueRef::Array(n, body) => {
            let option = options(&mut r, len > 2)?;
            chunk = option.chunk.map(|c| frame.slice_ref(c));
            Source::Array {
                body: frame.slice_ref(body),
                pos: 0,
                left: n,
            }
        }
        ValueRef::Str(payload) | ValueRef::Bin(payload) => {
            let option = options(&mut r, len > 2)?;
            chunk = option.chunk.map(|c| frame.slice_ref(c));
            let gzip = match option.compressed {
                Some(b"gzip") => true,
                Some(b"zstd") => return Err(FrameError::UnsupportedCompression("zstd".into())),
                // "text" and anything else mean uncompressed, but gzip's magic bytes win.
                _ => payload.starts_with(&[0x1f, 0x8b]),
            };
            let body = if gzip {
                inflate(payload, max_inflated)?
            } else {
                frame.slice_ref(payload)
            };
            Source::Packed { body, pos: 0 }
        }
        other => return Err(FrameError::BadMode(other.type_name())),
    };
    Ok(Some((
        Frame {
            tag,
            chunk,
            invalid,
        },
        Entries(source),
    )))
}

/// The option keys the receiver acts on, borrowed from the frame.
#[derive(Default)]
struct Options<'a> {
    chunk: Option<&'a [u8]>,
    compressed: Option<&'a [u8]>,
}

/// Reads the option element if present: a map, or nil (old Docker versions send nil).
fn options<'a>(r: &mut Reader<'a>, present: bool) -> Result<Options<'a>, FrameError> {
    let mut o = Options::default();
    if !present {
        return Ok(o);
    }
    let (n, body) = match r.value()? {
        ValueRef::Nil => return Ok(o),
        ValueRef::Map(n, body) => (n, body),
        other => return Err(FrameError::BadOption(other.type_name())),
    };
    let mut m = Reader::new(body);
    for _ in 0..n {
        let key = m.value()?;
        let start = m.pos();
        let value = m.value()?;
        match (key, value) {
            (ValueRef::Str(b"chunk"), ValueRef::Str(_) | ValueRef::Bin(_)) => {
                o.chunk = Some(&body[start..m.pos()]);
            }
            (ValueRef::Str(b"chunk"), other) => {
                return Err(FrameError::BadChunk(other.type_name()));
            }
            (ValueRef::Str(b"compressed"), ValueRef::Str(c) | ValueRef::Bin(c)) => {
                o.compressed = Some(c);
            }
            _ => {}
        }
    }
    Ok(o)
}

/// Reads one `[time, record]` entry. `Ok(None)`: a well-formed value that is not a valid entry.
fn entry<'a>(r: &mut Reader<'a>) -> Result<Option<(EventTime, &'a [u8])>, DecodeError> {
    let ValueRef::Array(n, body) = r.value()? else {
        return Ok(None);
    };
    if n < 2 {
        return Ok(None);
    }
    let mut e = Reader::new(body);
    let time = event_time(e.value()?);
    let record = e.skip()?;
    Ok(time.filter(|_| is_map(record)).map(|t| (t, record)))
}

fn is_map(encoded: &[u8]) -> bool {
    matches!(
        crate::msgpack::header(encoded),
        Ok(Some((Header::Map(_), _)))
    )
}

/// An event time: integer seconds, float seconds, EventTime (ext 0, 8 bytes), or the v1.5 form
/// `[time, metadata]`.
fn event_time(v: ValueRef<'_>) -> Option<EventTime> {
    match v {
        ValueRef::UInt(s) => Some(EventTime::from_parts(s.min(i64::MAX as u64) as i64, 0)),
        ValueRef::F64(f) if f.is_finite() && f >= 0.0 => Some(EventTime::from_f64(f)),
        ValueRef::Ext(0, b) if b.len() == 8 => {
            let secs = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let nanos = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            (nanos < 1_000_000_000).then(|| EventTime::from_parts(i64::from(secs), nanos))
        }
        ValueRef::Array(2, body) => match Reader::new(body).value() {
            Ok(inner @ (ValueRef::UInt(_) | ValueRef::F64(_) | ValueRef::Ext(..))) => {
                event_time(inner)
            }
            _ => None,
        },
        _ => None,
    }
}

/// Inflates gzip (any number of concatenated members), refusing to go past `max` bytes.
fn inflate(payload: &[u8], max: usize) -> Result<Bytes, FrameError> {
    let mut out = Vec::with_capacity((payload.len() * 4).min(max));
    let mut decoder = flate2::read::MultiGzDecoder::new(payload).take(max as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| FrameError::Gzip(e.to_string()))?;
    if out.len() > max {
        return Err(FrameError::InflatedTooLarge(max));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn s(out: &mut Vec<u8>, v: &str) {
        crate::msgpack::write_str(out, v.as_bytes());
    }

    fn record(out: &mut Vec<u8>, k: &str, v: &str) {
        out.push(0x81);
        s(out, k);
        s(out, v);
    }

    fn event_time_ext(out: &mut Vec<u8>, secs: u32, nanos: u32) {
        out.extend_from_slice(&[0xd7, 0x00]);
        out.extend_from_slice(&secs.to_be_bytes());
        out.extend_from_slice(&nanos.to_be_bytes());
    }

    fn run(frame: Vec<u8>) -> (Result<Option<Frame>, FrameError>, Vec<Event>) {
        let mut events = Vec::new();
        let r = decode(&Bytes::from(frame), 1 << 20, &mut events);
        (r, events)
    }

    #[test]
    fn message_mode_with_eventtime_and_chunk() {
        let mut f = vec![0x94];
        s(&mut f, "app");
        event_time_ext(&mut f, 1_441_588_984, 123_456_789);
        record(&mut f, "log", "hello");
        f.push(0x81);
        s(&mut f, "chunk");
        s(&mut f, "p8n9gmxTQVC8/nh2wlKKeQ==");
        let (r, events) = run(f);
        let frame = r.unwrap().unwrap();
        assert_eq!(&frame.tag[..], b"app");
        assert_eq!(frame.chunk.as_deref().unwrap()[0], 0xb8);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].time.as_nanos(), 1_441_588_984_123_456_789);
        assert_eq!(events[0].get("log"), Some(ValueRef::Str(b"hello")));
    }

    #[test]
    fn forward_mode_keeps_good_entries_and_counts_bad_ones() {
        let mut f = vec![0x92];
        s(&mut f, "app");
        f.push(0x94);
        // [1, {"a":"1"}], [[EventTime, {}], {"a":"2"}], [-1, {...}], [2, "not a map"]
        f.extend_from_slice(&[0x92, 0x01]);
        record(&mut f, "a", "1");
        f.extend_from_slice(&[0x92, 0x92]);
        event_time_ext(&mut f, 2, 5);
        f.push(0x80);
        record(&mut f, "a", "2");
        f.extend_from_slice(&[0x92, 0xff]);
        record(&mut f, "a", "3");
        f.extend_from_slice(&[0x92, 0x02]);
        s(&mut f, "x");
        let (r, events) = run(f);
        assert_eq!(r.unwrap().unwrap().invalid, 2);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].time, EventTime::from_parts(2, 5));
    }

    fn packed_entries() -> Vec<u8> {
        let mut p = Vec::new();
        for i in 0..3 {
            p.extend_from_slice(&[0x92, 0x10 + i]);
            record(&mut p, "n", &i.to_string());
        }
        p
    }

    #[test]
    fn packed_forward_as_bin_or_str() {
        for marker in [0xc4u8, 0xd9] {
            let entries = packed_entries();
            let mut f = vec![0x92];
            s(&mut f, "app");
            f.extend_from_slice(&[marker, entries.len() as u8]);
            f.extend_from_slice(&entries);
            let (r, events) = run(f);
            assert!(r.unwrap().is_some());
            assert_eq!(events.len(), 3);
            assert_eq!(events[2].time.secs(), 0x12);
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn compressed_packed_forward_with_concatenated_members() {
        let entries = packed_entries();
        let mut z = gzip(&entries);
        z.extend_from_slice(&gzip(&entries));
        let mut f = vec![0x93];
        s(&mut f, "app");
        f.push(0xc4);
        f.push(z.len() as u8);
        f.extend_from_slice(&z);
        f.push(0x81);
        s(&mut f, "compressed");
        s(&mut f, "gzip");
        let (r, events) = run(f);
        assert!(r.unwrap().is_some());
        assert_eq!(events.len(), 6);
    }

    #[test]
    fn a_gzip_bomb_is_refused() {
        let z = gzip(&vec![0u8; 2 << 20]);
        let mut f = vec![0x93];
        s(&mut f, "app");
        f.push(0xc5);
        f.extend_from_slice(&(z.len() as u16).to_be_bytes());
        f.extend_from_slice(&z);
        f.push(0x81);
        s(&mut f, "compressed");
        s(&mut f, "gzip");
        let (r, _) = run(f);
        assert!(matches!(r, Err(FrameError::InflatedTooLarge(_))));
    }

    #[test]
    fn bad_shapes_are_refused() {
        let (r, _) = run(vec![0x81, 0xa1, b'a', 0x01]);
        assert!(matches!(r, Err(FrameError::NotArray("map"))));
        let (r, _) = run(vec![0x93, 0x01, 0x01, 0x80]);
        assert!(matches!(r, Err(FrameError::BadTag("integer"))));
        let (r, _) = run(vec![0x92, 0xa1, b't', 0xc0]);
        assert!(matches!(r, Err(FrameError::BadMode("nil"))));
        let (r, _) = run(vec![0x93, 0xa1, b't', 0x90, 0x01]);
        assert!(matches!(r, Err(FrameError::BadOption("integer"))));
        let (r, _) = run(vec![0x93, 0xa2, 0xff, 0xfe, 0x90, 0x80]);
        assert!(matches!(r, Err(FrameError::TagNotUtf8)));
        let (r, _) = run(vec![0xc0]);
        assert!(r.unwrap().is_none(), "nil is a heartbeat");
    }
    #[test]
    fn a_tag_longer_than_the_limit_is_refused_before_anything_else() {
        let long = "t".repeat(MAX_TAG_BYTES + 1);
        let mut f = vec![0x92];
        s(&mut f, &long);
        f.push(0x90);
        let (r, _) = run(f);
        assert!(matches!(r, Err(FrameError::TagTooLong(n)) if n == MAX_TAG_BYTES + 1));
        let mut f = vec![0x92];
        s(&mut f, &long[1..]);
        f.push(0x90);
        assert!(
            run(f).0.unwrap().is_some(),
            "a tag of exactly the limit is fine"
        );
    }

    #[test]
    fn entries_are_read_in_steps_of_bounded_size() {
        let mut packed = Vec::new();
        for i in 0..100u8 {
            packed.extend_from_slice(&[0x92, i & 0x7f]);
            record(&mut packed, "n", "0123456789");
        }
        let mut f = vec![0x92];
        s(&mut f, "app");
        f.push(0xc5);
        f.extend_from_slice(&(packed.len() as u16).to_be_bytes());
        f.extend_from_slice(&packed);
        let (frame, mut entries) = open(&Bytes::from(f), 1 << 20).unwrap().unwrap();
        assert_eq!(&frame.tag[..], b"app");
        let (mut total, mut steps) = (0, 0);
        while !entries.is_done() {
            let mut out = Vec::new();
            assert_eq!(entries.read(&mut out, 1).unwrap(), 0);
            assert_eq!(
                out.len(),
                1,
                "a step below one event's size still reads one"
            );
            total += out.len();
            steps += 1;
        }
        assert_eq!((total, steps), (100, 100));

        let (_, mut entries) = open(&Bytes::from(forward_frame(50)), 1 << 20)
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        entries.read(&mut out, usize::MAX).unwrap();
        assert_eq!(out.len(), 50);
        assert!(entries.is_done());
    }

    fn forward_frame(n: u8) -> Vec<u8> {
        let mut f = vec![0x92];
        s(&mut f, "app");
        f.push(0xdc);
        f.extend_from_slice(&(n as u16).to_be_bytes());
        for i in 0..n {
            f.extend_from_slice(&[0x92, i & 0x7f]);
            record(&mut f, "n", "x");
        }
        f
    }
}
