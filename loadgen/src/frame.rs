//! Forward protocol frames of Docker-driver-shaped records, encoded once and patched in place.
//!
//! Sending must cost the load generator much less than receiving costs the router, so nothing
//! is encoded while the load runs. [`Frames`] holds frames back to back in one buffer, with the
//! positions of every record's sequence number (fixed-width ASCII digits inside its `log`
//! line), every EventTime and every `chunk` id. Overwriting those bytes turns the frames into
//! the next ones: no length changes, so they stay valid msgpack.
//!
//! CompressedPackedForward is the exception: its records sit inside a gzip stream, so its frames
//! are encoded (and compressed) before the load starts, sequence numbers and times included;
//! only their `chunk` ids are patched.

use std::io::Write;
use std::ops::Range;

use flate2::Compression;
use flate2::write::GzEncoder;

/// Digits of the sequence number in each `log` line (zero-padded; wraps past 10^10 - 1).
pub const SEQ_WIDTH: usize = 10;
/// The varying part of a `log` line: `SEQ&rid=HEX16`, the sequence number and a request id
/// derived from it (so lines differ like real ones, and gzip does not shrink them 60:1).
const VAR: &[u8] = b"0000000000&rid=0000000000000000";
/// Length of a `chunk` id: Base64 of 16 bytes, as Docker's driver sends it.
pub const CHUNK_LEN: usize = 24;

/// How records are put into frames (the Forward protocol's four modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `[tag, time, record, option]`, one record a frame, as Docker's driver sends.
    Message,
    /// `[tag, [[time, record], ...], option?]`.
    Forward,
    /// `[tag, bin(<<[time, record]>>...), option?]`.
    Packed,
    /// `[tag, bin(gzip(<<[time, record]>>...)), {"compressed": "gzip", ...}]`.
    Compressed,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "message" => Mode::Message,
            "forward" => Mode::Forward,
            "packed" | "packedforward" => Mode::Packed,
            "compressed" | "compressedpackedforward" => Mode::Compressed,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Message => "message",
            Mode::Forward => "forward",
            Mode::Packed => "packed",
            Mode::Compressed => "compressed",
        }
    }
}

/// The fields of the records one client sends: Docker's driver writes `container_id` (64 hex),
/// `container_name` (with its leading `/`), `source` and the line as `log`.
#[derive(Clone, Debug)]
pub struct Shape {
    pub tag: String,
    pub container_id: String,
    pub container_name: String,
    pub source: &'static str,
    /// An nginx combined-format access line; at `seq_at`, `SEQ_WIDTH` digits of sequence
    /// number and a 16-hex request id derived from it.
    pub log: String,
    pub seq_at: usize,
}

impl Shape {
    /// The records of container number `n`, with `log` lines of `log_bytes` bytes (or the
    /// shortest line that holds every field, if `log_bytes` is smaller than that, about 235).
    pub fn docker(tag: &str, n: usize, log_bytes: usize) -> Shape {
        let mut id = String::with_capacity(64);
        let mut x = n as u64;
        for _ in 0..4 {
            x = splitmix64(x);
            id.push_str(&format!("{x:016x}"));
        }
        let head = format!(
            "172.17.{}.{} - - [21/Nov/2026:10:00:00 +0000] \"GET /api/v1/items?page=2&seq=",
            (n / 250) % 250,
            n % 250 + 2
        );
        let seq_at = head.len();
        let mut log = head;
        log.push_str(std::str::from_utf8(VAR).expect("ASCII"));
        log.push_str(
            " HTTP/1.1\" 200 5316 \"https://example.com/list\" \"Mozilla/5.0 (X11; Linux x86_64) \
             AppleWebKit/537.36 Chrome/120.0.0.0 Safari/537.36",
        );
        // Pad the user agent so the whole line (with its closing quote) is `log_bytes` long.
        let pad = log_bytes.saturating_sub(log.len() + 1);
        if pad > 0 {
            log.push(' ');
            log.push_str(&"x".repeat(pad - 1));
        }
        log.push('"');
        Shape {
            tag: tag.to_string(),
            container_id: id,
            container_name: format!("/bench-nginx-{n}"),
            source: "stdout",
            log,
            seq_at,
        }
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Sequence numbers (by record index in the frame) and time baked into a compressed frame.
struct Baked<'a> {
    seq: &'a dyn Fn(u64) -> u64,
    time: (u32, u32),
}

/// Frames back to back in one buffer, with where their patchable bytes are.
#[derive(Clone, Debug, Default)]
pub struct Frames {
    pub buf: Vec<u8>,
    /// End of each frame in `buf` (a frame starts where the previous one ends).
    ends: Vec<usize>,
    /// Index of each frame's first record in `seq_sites` / `time_sites`, plus the total.
    first_record: Vec<usize>,
    /// Where each record's sequence digits are (empty for compressed frames).
    seq_sites: Vec<usize>,
    /// Where each record's EventTime payload (8 bytes) is (empty for compressed frames).
    time_sites: Vec<usize>,
    /// Where each frame's `chunk` id (`CHUNK_LEN` bytes) is, when acks are asked for.
    chunk_sites: Vec<usize>,
    /// Records in each frame.
    records: Vec<usize>,
}

impl Frames {
    /// `frames` patchable frames of `per_frame` records each (Message mode: one). Sequence
    /// numbers start as zeros and times as 0: patch them before sending.
    pub fn template(
        shape: &Shape,
        mode: Mode,
        per_frame: usize,
        frames: usize,
        ack: bool,
    ) -> Frames {
        assert!(
            mode != Mode::Compressed,
            "compressed frames are built with Frames::compressed"
        );
        let per_frame = if mode == Mode::Message {
            1
        } else {
            per_frame.max(1)
        };
        let mut f = Frames::default();
        for _ in 0..frames {
            f.push_frame(shape, mode, per_frame, ack, None);
        }
        f
    }

    /// CompressedPackedForward frames holding `total` records, `per_frame` a frame (the last
    /// may hold fewer), record `i` numbered `seq(i)`, all stamped `time` (seconds, nanos).
    pub fn compressed(
        shape: &Shape,
        per_frame: usize,
        total: u64,
        seq: impl Fn(u64) -> u64,
        time: (u32, u32),
        ack: bool,
    ) -> Frames {
        let per_frame = per_frame.max(1) as u64;
        let mut f = Frames::default();
        let mut i = 0;
        while i < total {
            let n = per_frame.min(total - i);
            let first = i;
            f.push_frame(
                shape,
                Mode::Compressed,
                n as usize,
                ack,
                Some(Baked {
                    seq: &|k| seq(first + k),
                    time,
                }),
            );
            i += n;
        }
        f
    }

    fn push_frame(
        &mut self,
        shape: &Shape,
        mode: Mode,
        n: usize,
        ack: bool,
        baked: Option<Baked<'_>>,
    ) {
        let out = &mut self.buf;
        self.first_record.push(self.seq_sites.len());
        match mode {
            Mode::Message => {
                put_array(out, 4);
                put_str(out, shape.tag.as_bytes());
                self.time_sites.push(put_event_time(out, 0, 0));
                self.seq_sites.push(put_record(out, shape));
                put_options(out, ack, false, &mut self.chunk_sites);
            }
            Mode::Forward => {
                put_array(out, if ack { 3 } else { 2 });
                put_str(out, shape.tag.as_bytes());
                put_array(out, n);
                for _ in 0..n {
                    out.push(0x92);
                    self.time_sites.push(put_event_time(out, 0, 0));
                    self.seq_sites.push(put_record(out, shape));
                }
                if ack {
                    put_options(out, true, false, &mut self.chunk_sites);
                }
            }
            Mode::Packed => {
                let mut entries = Vec::new();
                let (mut seqs, mut times) = (Vec::new(), Vec::new());
                for _ in 0..n {
                    entries.push(0x92);
                    times.push(put_event_time(&mut entries, 0, 0));
                    seqs.push(put_record(&mut entries, shape));
                }
                put_array(out, if ack { 3 } else { 2 });
                put_str(out, shape.tag.as_bytes());
                put_bin_header(out, entries.len());
                let base = out.len();
                out.extend_from_slice(&entries);
                self.seq_sites.extend(seqs.iter().map(|s| s + base));
                self.time_sites.extend(times.iter().map(|s| s + base));
                if ack {
                    put_options(out, true, false, &mut self.chunk_sites);
                }
            }
            Mode::Compressed => {
                let Baked {
                    seq,
                    time: (secs, nanos),
                } = baked.expect("compressed frames need their numbers");
                let mut entries = Vec::new();
                for k in 0..n {
                    entries.push(0x92);
                    put_event_time(&mut entries, secs, nanos);
                    let at = put_record(&mut entries, shape);
                    put_var(&mut entries[at..at + VAR.len()], seq(k as u64));
                }
                let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
                gz.write_all(&entries).expect("gzip into memory");
                let payload = gz.finish().expect("gzip into memory");
                put_array(out, 3);
                put_str(out, shape.tag.as_bytes());
                put_bin_header(out, payload.len());
                out.extend_from_slice(&payload);
                put_options(out, ack, true, &mut self.chunk_sites);
            }
        }
        self.ends.push(self.buf.len());
        self.records.push(n);
    }

    /// Number of frames.
    pub fn frame_count(&self) -> usize {
        self.ends.len()
    }

    /// Records in frame `f`.
    pub fn records(&self, f: usize) -> usize {
        self.records[f]
    }

    /// Bytes of frames `frames` (consecutive) in `buf`.
    pub fn span(&self, frames: Range<usize>) -> Range<usize> {
        let start = if frames.start == 0 {
            0
        } else {
            self.ends[frames.start - 1]
        };
        let end = if frames.end == 0 {
            0
        } else {
            self.ends[frames.end - 1]
        };
        start..end
    }

    /// End offsets of frames `frames`, relative to the start of the first one.
    pub fn relative_ends(&self, frames: Range<usize>) -> impl Iterator<Item = usize> + '_ {
        let base = self.span(frames.clone()).start;
        self.ends[frames].iter().map(move |e| e - base)
    }

    /// Numbers the records of frames `frames` in order with `first, first + 1, ...` mapped by
    /// `seq`. Does nothing for compressed frames (their numbers are baked in).
    pub fn patch_seq(&mut self, frames: Range<usize>, first: u64, seq: impl Fn(u64) -> u64) {
        if self.seq_sites.is_empty() {
            return;
        }
        let recs = self.first_record[frames.start]..self.record_end(frames.end);
        for (k, r) in recs.enumerate() {
            let at = self.seq_sites[r];
            put_var(&mut self.buf[at..at + VAR.len()], seq(first + k as u64));
        }
    }

    /// Stamps every record of frames `frames` with the time `secs`.`nanos`.
    pub fn patch_time(&mut self, frames: Range<usize>, secs: u32, nanos: u32) {
        if self.time_sites.is_empty() {
            return;
        }
        let recs = self.first_record[frames.start]..self.record_end(frames.end);
        let mut t = [0u8; 8];
        t[..4].copy_from_slice(&secs.to_be_bytes());
        t[4..].copy_from_slice(&nanos.to_be_bytes());
        for r in recs {
            let at = self.time_sites[r];
            self.buf[at..at + 8].copy_from_slice(&t);
        }
    }

    /// Sets frame `f`'s `chunk` id to the Base64 of `id`; returns the ack the server must send.
    pub fn patch_chunk(&mut self, f: usize, id: &[u8; 16]) -> Option<[u8; 6 + CHUNK_LEN]> {
        let at = *self.chunk_sites.get(f)?;
        base64_16(id, (&mut self.buf[at..at + CHUNK_LEN]).try_into().unwrap());
        let mut ack = [0u8; 6 + CHUNK_LEN];
        ack[..6].copy_from_slice(&[0x81, 0xa3, b'a', b'c', b'k', 0xa0 | CHUNK_LEN as u8]);
        ack[6..].copy_from_slice(&self.buf[at..at + CHUNK_LEN]);
        Some(ack)
    }

    fn record_end(&self, frame_end: usize) -> usize {
        self.first_record
            .get(frame_end)
            .copied()
            .unwrap_or(self.seq_sites.len())
    }
}

/// The option map: `{}` (Message mode without acks), with `chunk` when acks are asked for,
/// with `compressed` for CompressedPackedForward.
fn put_options(out: &mut Vec<u8>, ack: bool, compressed: bool, chunks: &mut Vec<usize>) {
    put_map(out, usize::from(ack) + usize::from(compressed));
    if compressed {
        put_str(out, b"compressed");
        put_str(out, b"gzip");
    }
    if ack {
        put_str(out, b"chunk");
        out.push(0xa0 | CHUNK_LEN as u8);
        chunks.push(out.len());
        out.extend_from_slice(&[b'A'; CHUNK_LEN]);
    }
}

/// The record map; returns where its sequence digits are.
fn put_record(out: &mut Vec<u8>, shape: &Shape) -> usize {
    put_map(out, 4);
    put_str(out, b"container_id");
    put_str(out, shape.container_id.as_bytes());
    put_str(out, b"container_name");
    put_str(out, shape.container_name.as_bytes());
    put_str(out, b"source");
    put_str(out, shape.source.as_bytes());
    put_str(out, b"log");
    put_str(out, shape.log.as_bytes());
    out.len() - shape.log.len() + shape.seq_at
}

/// EventTime as fixext8 (`d7 00`, u32 BE seconds, u32 BE nanoseconds); returns where the
/// 8-byte payload is.
fn put_event_time(out: &mut Vec<u8>, secs: u32, nanos: u32) -> usize {
    out.extend_from_slice(&[0xd7, 0x00]);
    let at = out.len();
    out.extend_from_slice(&secs.to_be_bytes());
    out.extend_from_slice(&nanos.to_be_bytes());
    at
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n < 256 {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else if n < 65536 {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

fn put_bin_header(out: &mut Vec<u8>, n: usize) {
    if n < 256 {
        out.extend_from_slice(&[0xc4, n as u8]);
    } else if n < 65536 {
        out.push(0xc5);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn put_array(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x90 | n as u8);
    } else if n < 65536 {
        out.push(0xdc);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn put_map(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x80 | n as u8);
    } else {
        out.push(0xde);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    }
}

/// Writes `v` as `dst.len()` zero-padded decimal digits (the high digits are lost if too few).
fn put_digits(dst: &mut [u8], mut v: u64) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Fills the `VAR` part of a line for sequence number `seq`.
fn put_var(dst: &mut [u8], seq: u64) {
    let seq = seq % 10u64.pow(SEQ_WIDTH as u32);
    put_digits(&mut dst[..SEQ_WIDTH], seq);
    let mut id = splitmix64(seq);
    for d in dst[SEQ_WIDTH + 5..].iter_mut().rev() {
        *d = b"0123456789abcdef"[(id & 15) as usize];
        id >>= 4;
    }
}

/// Standard Base64 (with `==` padding) of 16 bytes.
fn base64_16(id: &[u8; 16], out: &mut [u8; CHUNK_LEN]) {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (i, c) in id.chunks(3).enumerate() {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for k in 0..4 {
            out[i * 4 + k] = ABC[(n >> (18 - 6 * k) & 63) as usize];
        }
    }
    out[22] = b'=';
    out[23] = b'=';
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use rmp::Marker;
    use rmp::decode;
    use std::io::Read;

    fn string(rd: &mut &[u8]) -> String {
        let n = decode::read_str_len(rd).unwrap() as usize;
        let s = String::from_utf8(rd[..n].to_vec()).unwrap();
        *rd = &rd[n..];
        s
    }

    fn event_time(rd: &mut &[u8]) -> (u32, u32) {
        let meta = decode::read_ext_meta(rd).unwrap();
        assert_eq!(
            (meta.typeid, meta.size),
            (0, 8),
            "EventTime is ext type 0, 8 bytes"
        );
        let secs = u32::from_be_bytes(rd[..4].try_into().unwrap());
        let nanos = u32::from_be_bytes(rd[4..8].try_into().unwrap());
        *rd = &rd[8..];
        (secs, nanos)
    }

    /// The record's fields in wire order.
    fn record(rd: &mut &[u8]) -> Vec<(String, String)> {
        let n = decode::read_map_len(rd).unwrap();
        (0..n).map(|_| (string(rd), string(rd))).collect()
    }

    /// The sequence number of a record's line (checking the request id that goes with it).
    fn seq_of(rec: &[(String, String)]) -> u64 {
        let log = &rec.iter().find(|(k, _)| k == "log").unwrap().1;
        let at = log.find("&seq=").unwrap() + 5;
        let seq = log[at..at + SEQ_WIDTH].parse().unwrap();
        let rid = &log[at + SEQ_WIDTH..at + VAR.len()];
        assert_eq!(rid, format!("&rid={:016x}", splitmix64(seq)));
        seq
    }

    fn options(rd: &mut &[u8]) -> Vec<(String, String)> {
        record(rd)
    }

    type Entry = ((u32, u32), Vec<(String, String)>);

    /// `[time, record]` entries until `rd` is empty.
    fn entries(mut rd: &[u8]) -> Vec<Entry> {
        let mut out = Vec::new();
        while !rd.is_empty() {
            assert_eq!(decode::read_array_len(&mut rd).unwrap(), 2);
            let t = event_time(&mut rd);
            out.push((t, record(&mut rd)));
        }
        out
    }

    fn shape() -> Shape {
        Shape::docker("web-firelens-1", 7, 250)
    }

    #[test]
    fn docker_record_fields() {
        let s = shape();
        assert_eq!(s.container_id.len(), 64);
        assert!(s.container_id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(s.container_name.starts_with('/'));
        assert_eq!(s.log.len(), 250);
        assert!(s.log.ends_with('"'));
        assert_eq!(
            &s.log[s.seq_at..s.seq_at + VAR.len()],
            "0000000000&rid=0000000000000000"
        );
        assert_eq!(Shape::docker("t", 7, 400).log.len(), 400);
        // Too short to hold the fields: the shortest complete line.
        let short = Shape::docker("t", 7, 10);
        assert!(short.log.len() > 200 && short.log.len() < 250);
        assert!(short.log.ends_with("Safari/537.36\""));
        assert_ne!(Shape::docker("t", 8, 250).container_id, s.container_id);
    }

    #[test]
    fn message_frame_is_dockers_shape() {
        let mut f = Frames::template(&shape(), Mode::Message, 1, 3, false);
        assert_eq!(f.frame_count(), 3);
        f.patch_seq(0..3, 41, |i| i * 2 + 1);
        f.patch_time(0..3, 1_800_000_000, 123_456_789);
        let span = f.span(1..2);
        let mut rd = &f.buf[span];
        assert_eq!(decode::read_array_len(&mut rd).unwrap(), 4);
        assert_eq!(string(&mut rd), "web-firelens-1");
        assert_eq!(event_time(&mut rd), (1_800_000_000, 123_456_789));
        let rec = record(&mut rd);
        let keys: Vec<_> = rec.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["container_id", "container_name", "source", "log"]);
        assert_eq!(rec[2].1, "stdout");
        assert_eq!(rec[3].1.len(), 250);
        assert_eq!(seq_of(&rec), 42 * 2 + 1);
        assert!(
            options(&mut rd).is_empty(),
            "Docker always sends the option map"
        );
        assert!(rd.is_empty());
    }

    #[test]
    fn patching_numbers_keeps_frames_valid() {
        let mut f = Frames::template(&shape(), Mode::Message, 1, 4, true);
        let before = f.buf.len();
        for round in 0..3u64 {
            f.patch_seq(0..4, round * 4, |i| i + 9_999_999_980);
            f.patch_time(0..4, 1_800_000_000 + round as u32, 0);
            for k in 0..4 {
                let id = [round as u8 * 4 + k as u8; 16];
                let ack = f.patch_chunk(k, &id).unwrap();
                assert_eq!(&ack[..6], b"\x81\xa3ack\xb8");
                let mut rd = &f.buf[f.span(k..k + 1)];
                assert_eq!(decode::read_array_len(&mut rd).unwrap(), 4);
                string(&mut rd);
                assert_eq!(event_time(&mut rd).0, 1_800_000_000 + round as u32);
                assert_eq!(
                    seq_of(&record(&mut rd)),
                    round * 4 + k as u64 + 9_999_999_980
                );
                let opt = options(&mut rd);
                assert_eq!(opt.len(), 1);
                assert_eq!(opt[0].0, "chunk");
                assert_eq!(opt[0].1.as_bytes(), &ack[6..]);
                assert!(rd.is_empty());
            }
        }
        assert_eq!(f.buf.len(), before);
        // Past ten digits the number wraps instead of growing the frame.
        f.patch_seq(0..1, 10_000_000_123, |i| i);
        let mut rd = &f.buf[f.span(0..1)];
        decode::read_array_len(&mut rd).unwrap();
        string(&mut rd);
        event_time(&mut rd);
        assert_eq!(seq_of(&record(&mut rd)), 123);
    }

    #[test]
    fn chunk_ids_are_base64_of_16_bytes() {
        let mut out = [0u8; CHUNK_LEN];
        // 16 bytes 0xa7 0xc9 ... from the protocol spec's example chunk id.
        let id: [u8; 16] = [
            0xa7, 0xc9, 0xfd, 0x82, 0x6c, 0x53, 0x41, 0x50, 0xbc, 0xfe, 0x78, 0x76, 0xc2, 0x52,
            0x8a, 0x79,
        ];
        base64_16(&id, &mut out);
        assert_eq!(&out, b"p8n9gmxTQVC8/nh2wlKKeQ==");
    }

    #[test]
    fn forward_frame_holds_its_entries() {
        let mut f = Frames::template(&shape(), Mode::Forward, 20, 2, false);
        f.patch_seq(0..2, 0, |i| i);
        f.patch_time(0..2, 5, 6);
        let mut rd = &f.buf[f.span(1..2)];
        assert_eq!(decode::read_array_len(&mut rd).unwrap(), 2);
        assert_eq!(string(&mut rd), "web-firelens-1");
        assert_eq!(decode::read_array_len(&mut rd).unwrap(), 20);
        let mut seqs = Vec::new();
        for _ in 0..20 {
            assert_eq!(decode::read_array_len(&mut rd).unwrap(), 2);
            assert_eq!(event_time(&mut rd), (5, 6));
            seqs.push(seq_of(&record(&mut rd)));
        }
        assert!(rd.is_empty());
        assert_eq!(seqs, (20..40).collect::<Vec<_>>());
        assert_eq!(f.records(1), 20);
    }

    #[test]
    fn packed_frame_is_bin_of_entries_with_chunk() {
        let mut f = Frames::template(&shape(), Mode::Packed, 1000, 1, true);
        f.patch_seq(0..1, 0, |i| 3 * i);
        f.patch_time(0..1, 1_800_000_000, 1);
        f.patch_chunk(0, &[1; 16]).unwrap();
        let mut rd = &f.buf[..];
        assert_eq!(decode::read_array_len(&mut rd).unwrap(), 3);
        string(&mut rd);
        assert_eq!(decode::read_marker(&mut rd).unwrap(), Marker::Bin32);
        let n = u32::from_be_bytes(rd[..4].try_into().unwrap()) as usize;
        rd = &rd[4..];
        let ents = entries(&rd[..n]);
        rd = &rd[n..];
        assert_eq!(ents.len(), 1000);
        assert!(ents.iter().all(|(t, _)| *t == (1_800_000_000, 1)));
        assert_eq!(seq_of(&ents[999].1), 2997);
        let opt = options(&mut rd);
        assert_eq!(opt[0].0, "chunk");
        assert!(rd.is_empty());
    }

    #[test]
    fn compressed_frames_carry_their_numbers_inside_gzip() {
        let mut f = Frames::compressed(&shape(), 400, 1000, |i| i + 100, (1_800_000_000, 9), true);
        assert_eq!(f.frame_count(), 3);
        assert_eq!((f.records(0), f.records(2)), (400, 200));
        f.patch_seq(0..3, 0, |i| i); // no effect: the numbers are inside the gzip stream
        f.patch_chunk(2, &[2; 16]).unwrap();
        let mut seqs = Vec::new();
        for k in 0..3 {
            let mut rd = &f.buf[f.span(k..k + 1)];
            assert_eq!(decode::read_array_len(&mut rd).unwrap(), 3);
            string(&mut rd);
            let n = decode::read_bin_len(&mut rd).unwrap() as usize;
            let mut raw = Vec::new();
            GzDecoder::new(&rd[..n]).read_to_end(&mut raw).unwrap();
            rd = &rd[n..];
            for (t, rec) in entries(&raw) {
                assert_eq!(t, (1_800_000_000, 9));
                seqs.push(seq_of(&rec));
            }
            let opt = options(&mut rd);
            assert_eq!(opt[0], ("compressed".to_string(), "gzip".to_string()));
            assert_eq!(opt[1].0, "chunk");
            assert!(rd.is_empty());
        }
        assert_eq!(seqs, (100..1100).collect::<Vec<_>>());
    }

    #[test]
    fn spans_and_ends_cover_consecutive_frames() {
        let f = Frames::template(&shape(), Mode::Message, 1, 5, false);
        let one = f.span(0..1).len();
        assert_eq!(f.span(1..4), one..4 * one);
        assert_eq!(
            f.relative_ends(1..4).collect::<Vec<_>>(),
            [one, 2 * one, 3 * one]
        );
        assert_eq!(f.span(0..5).end, f.buf.len());
    }
}
