//! The data every stage shares: an event (time + record) and a batch of events under one tag.
//!
//! A record is kept as the msgpack map it arrived as, sliced out of the connection's read buffer
//! (`Bytes` shares the allocation), so receiving a Docker log line costs no copy and no allocation
//! per field. Stages that only read a record walk it with [`Event::fields`]; stages that change
//! it write a new map.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};

use crate::msgpack::{self, DecodeError, Header, Reader, ValueRef};

/// Longest tag accepted, in bytes. Real tags are short (Kubernetes', the longest, are a few
/// hundred bytes); a longer one is refused so that tags cached per connection and per
/// pipeline stay small.
pub const MAX_TAG_BYTES: usize = 4096;

/// A tag, shared by every event of a batch.
pub type Tag = Arc<str>;

/// An event's time, in nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct EventTime(i64);

impl EventTime {
    pub const NANOS_PER_SEC: i64 = 1_000_000_000;

    pub fn from_parts(secs: i64, nanos: u32) -> Self {
        EventTime(
            secs.saturating_mul(Self::NANOS_PER_SEC)
                .saturating_add(i64::from(nanos)),
        )
    }

    pub fn from_nanos(nanos: i64) -> Self {
        EventTime(nanos)
    }

    /// Seconds as a float, as senders without EventTime support send them.
    pub fn from_f64(secs: f64) -> Self {
        EventTime((secs * Self::NANOS_PER_SEC as f64) as i64)
    }

    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        EventTime::from_parts(d.as_secs() as i64, d.subsec_nanos())
    }

    pub fn as_nanos(self) -> i64 {
        self.0
    }

    pub fn secs(self) -> i64 {
        self.0.div_euclid(Self::NANOS_PER_SEC)
    }

    pub fn subsec_nanos(self) -> u32 {
        self.0.rem_euclid(Self::NANOS_PER_SEC) as u32
    }

    pub fn as_f64(self) -> f64 {
        self.secs() as f64 + f64::from(self.subsec_nanos()) / 1e9
    }
}

/// One log event: its time and its record, a msgpack map.
#[derive(Clone, PartialEq)]
pub struct Event {
    pub time: EventTime,
    /// The record as an encoded msgpack map (header included). Always a map: the receivers check.
    pub record: Bytes,
}

impl Event {
    /// Builds an event from an encoded map, checking that it is one.
    pub fn new(time: EventTime, record: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(&record);
        match r.header()? {
            Header::Map(_) => Ok(Event { time, record }),
            other => Err(DecodeError::Type {
                expected: "map",
                found: other.type_name(),
            }),
        }
    }

    /// Builds an event from string pairs (tests, generated records).
    pub fn from_pairs(time: EventTime, pairs: &[(&str, &str)]) -> Self {
        let mut buf = Vec::with_capacity(16 + pairs.len() * 16);
        let _ = rmp::encode::write_map_len(&mut buf, pairs.len() as u32);
        for (k, v) in pairs {
            crate::msgpack::write_str(&mut buf, k.as_bytes());
            crate::msgpack::write_str(&mut buf, v.as_bytes());
        }
        Event {
            time,
            record: Bytes::from(buf),
        }
    }

    /// The record's key/value pairs, in their order on the wire.
    pub fn fields(&self) -> Fields<'_> {
        Fields::new(&self.record)
    }

    /// The value of the first field named `key`.
    pub fn get(&self, key: &str) -> Option<ValueRef<'_>> {
        self.fields()
            .filter_map(Result::ok)
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// Bytes this event holds in memory, for queue accounting.
    pub fn size(&self) -> usize {
        self.record.len() + std::mem::size_of::<Event>()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut json = Vec::new();
        crate::msgpack::json::JsonStyle::default().value(&mut json, &self.record);
        write!(
            f,
            "Event({}, {})",
            self.time.as_nanos(),
            String::from_utf8_lossy(&json)
        )
    }
}

/// Writes a new record (a msgpack map) into a shared arena: records built one after another
/// share the arena's allocations, so building one costs no allocation of its own.
pub struct RecordBuilder<'a> {
    arena: &'a mut BytesMut,
    count: u32,
}

/// The largest arena a batch gets at once.
const ARENA_CHUNK: usize = 16 * 1024;

/// The arena capacity for rebuilding a batch of `bytes`: records held in queues keep their
/// arena's whole allocation alive, so a small batch gets a small arena (a record of a trickling
/// client would otherwise pin 16 KiB).
pub fn arena_for(bytes: usize) -> usize {
    (bytes + bytes / 2).clamp(512, ARENA_CHUNK)
}

impl<'a> RecordBuilder<'a> {
    /// Starts a record. The arena must hold no unfinished record. When the arena is used up it
    /// grows by its first allocation's size (`bytes` keeps that as the arena's original
    /// capacity, at least 1 KiB): size it with [`arena_for`].
    pub fn new(arena: &'a mut BytesMut) -> Self {
        arena.clear();
        if arena.capacity() < 512 {
            arena.reserve(512);
        }
        // map32 header, count patched by `finish`.
        arena.extend_from_slice(&[0xdf, 0, 0, 0, 0]);
        RecordBuilder { arena, count: 0 }
    }

    /// Starts a field; the caller writes its value with [`RecordBuilder::buf`].
    pub fn key(&mut self, key: &[u8]) -> &mut BytesMut {
        self.count += 1;
        msgpack::write_str(self.arena, key);
        self.arena
    }

    pub fn str(&mut self, key: &[u8], value: &[u8]) {
        let buf = self.key(key);
        msgpack::write_str(buf, value);
    }

    /// A field whose value is already encoded.
    pub fn raw(&mut self, key: &[u8], encoded: &[u8]) {
        self.key(key).extend_from_slice(encoded);
    }

    /// Copies every field of `fields` for which `keep` holds.
    pub fn copy_fields(&mut self, mut fields: Fields<'_>, mut keep: impl FnMut(&[u8]) -> bool) {
        while let Some(Ok((k, v))) = fields.next_raw() {
            if keep(k) {
                self.raw(k, v);
            }
        }
    }

    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The finished record.
    pub fn finish(self) -> Bytes {
        self.arena[1..5].copy_from_slice(&self.count.to_be_bytes());
        self.arena.split().freeze()
    }

    /// The finished record as an event at `time`.
    pub fn finish_event(self, time: EventTime) -> Event {
        Event {
            time,
            record: self.finish(),
        }
    }
}

/// Iterator over a record's pairs. Keys are the raw bytes of a str or bin key; a pair whose key
/// is of another type (possible from a hostile sender) is yielded with an empty key.
#[derive(Clone)]
pub struct Fields<'a> {
    reader: Reader<'a>,
    left: u32,
}

impl<'a> Fields<'a> {
    /// Walks an encoded map (header included).
    pub fn new(map: &'a [u8]) -> Self {
        let mut reader = Reader::new(map);
        let left = match reader.header() {
            Ok(Header::Map(n)) => n,
            _ => 0,
        };
        Fields { reader, left }
    }

    /// Walks a map body of `pairs` pairs (as in [`ValueRef::Map`]).
    pub fn from_body(pairs: u32, body: &'a [u8]) -> Self {
        Fields {
            reader: Reader::new(body),
            left: pairs,
        }
    }
}

/// A key and its still-encoded value.
pub type RawField<'a> = (&'a [u8], &'a [u8]);

impl<'a> Fields<'a> {
    /// The next pair with its value still encoded.
    pub fn next_raw(&mut self) -> Option<Result<RawField<'a>, DecodeError>> {
        self.next_with(Reader::skip)
    }

    /// Reads the next key, then the value with `value`; stops for good at the first error.
    fn next_with<T>(
        &mut self,
        value: impl FnOnce(&mut Reader<'a>) -> Result<T, DecodeError>,
    ) -> Option<Result<(&'a [u8], T), DecodeError>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let key = match self.reader.value() {
            Ok(ValueRef::Str(k) | ValueRef::Bin(k)) => Ok(k),
            Ok(_) => Ok(&[][..]),
            Err(e) => Err(e),
        };
        let pair = key.and_then(|k| Ok((k, value(&mut self.reader)?)));
        if pair.is_err() {
            self.left = 0;
        }
        Some(pair)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(&'a [u8], ValueRef<'a>), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_with(Reader::value)
    }
}

/// Events under one tag, the unit that moves between stages.
#[derive(Debug, Clone)]
pub struct Batch {
    pub tag: Tag,
    pub events: Vec<Event>,
    /// Bytes it holds, for queue accounting: the events' [`Event::size`] plus its tag and
    /// itself, so that many batches of small records under distinct tags are counted too.
    pub bytes: usize,
}

impl Batch {
    pub fn new(tag: Tag) -> Self {
        Batch {
            bytes: tag.len() + std::mem::size_of::<Batch>(),
            tag,
            events: Vec::new(),
        }
    }

    pub fn push(&mut self, event: Event) {
        self.bytes += event.size();
        self.events.push(event);
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_splits_into_seconds_and_nanos() {
        let t = EventTime::from_parts(1_441_588_984, 123_456_789);
        assert_eq!(t.secs(), 1_441_588_984);
        assert_eq!(t.subsec_nanos(), 123_456_789);
        assert_eq!(t.as_nanos(), 1_441_588_984_123_456_789);
    }

    #[test]
    fn fields_walk_the_map_in_order() {
        let e = Event::from_pairs(
            EventTime::default(),
            &[("log", "hello"), ("source", "stdout")],
        );
        let keys: Vec<_> = e.fields().map(|f| f.unwrap().0.to_vec()).collect();
        assert_eq!(keys, vec![b"log".to_vec(), b"source".to_vec()]);
        assert_eq!(e.get("source"), Some(ValueRef::Str(b"stdout")));
        assert_eq!(e.get("missing"), None);
    }

    #[test]
    fn builder_writes_records_back_to_back_in_one_arena() {
        let mut arena = BytesMut::new();
        let src = Event::from_pairs(
            EventTime::default(),
            &[("a", "1"), ("drop", "x"), ("b", "2")],
        );
        let mut b = RecordBuilder::new(&mut arena);
        b.str(b"first", b"yes");
        b.copy_fields(src.fields(), |k| k != b"drop");
        let one = Event::new(EventTime::default(), b.finish()).unwrap();
        let mut b = RecordBuilder::new(&mut arena);
        b.str(b"second", b"ok");
        let two = Event::new(EventTime::default(), b.finish()).unwrap();
        let keys: Vec<_> = one.fields().map(|f| f.unwrap().0.to_vec()).collect();
        assert_eq!(keys, vec![b"first".to_vec(), b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(one.get("b"), Some(ValueRef::Str(b"2")));
        assert_eq!(two.get("second"), Some(ValueRef::Str(b"ok")));
    }

    #[test]
    fn new_refuses_a_record_that_is_not_a_map() {
        assert!(Event::new(EventTime::default(), Bytes::from_static(&[0x91, 0x01])).is_err());
    }
}
