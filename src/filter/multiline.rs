//! `multiline`: reassembles lines a container runtime split.
//!
//! - `Mode partial_message`: Docker's log driver splits lines longer than 16 KiB into pieces
//!   marked `partial_message`, `partial_id`, `partial_ordinal`, `partial_last`. Pieces are
//!   grouped by tag and `partial_id` and joined in ordinal order when the last one arrives. The
//!   merged record is the first piece's fields without the `partial_*` ones, with the content
//!   key (`multiline.key_content`, default `log`) last, at the first piece's time, as Fluent Bit
//!   writes it.
//! - `multiline.parser cri`: CRI lines parsed into `stream`, `logtag` (`P` partial, `F` full) and
//!   the content key (default `message`); `P` lines are held per tag and stream and joined when
//!   the `F` line arrives; the first line's record carries the whole text.
//!
//! A group that waits longer than `flush_ms` (default 2000) is flushed as it is, and a group
//! that grows past `buffer_limit` (default 2 MB) is flushed early; both are counted. What all
//! groups hold together is bounded too (`emitter_mem_buf_limit`, default 10M, and at most
//! 10,000 groups): past it the oldest groups are flushed as they are, so pieces that never end
//! (a client inventing ids) cannot grow memory.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Filter, FilterOutput};
use crate::config::{ConfigError, Section};
use std::sync::Arc;

use crate::engine::metrics::FilterMetrics;
use crate::msgpack::ValueRef;
use crate::record::{Event, Tag};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    DockerPartial,
    Cri,
}

/// Pieces of one line waiting for the rest.
struct Group {
    first: Event,
    /// (ordinal, content) in arrival order; sorted by ordinal when joined.
    pieces: Vec<(u64, Vec<u8>)>,
    bytes: usize,
    updated: Instant,
    /// Ordinal of the piece marked last, once it has arrived.
    last: Option<u64>,
}

/// Pieces are grouped by tag and partial id (Docker) or stream (CRI).
type GroupKey = (Tag, Box<[u8]>);

/// Most groups held at once.
const MAX_GROUPS: usize = 10_000;
const DEFAULT_TOTAL_LIMIT: u64 = 10_000_000;

/// The open groups, their bytes, and the order they were opened in (oldest first; keys of
/// groups already closed are skipped when met, and swept when they are half the list).
#[derive(Default)]
struct Held {
    groups: HashMap<GroupKey, Group>,
    opened: VecDeque<GroupKey>,
    bytes: usize,
}

impl Held {
    fn remove(&mut self, key: &GroupKey) -> Option<Group> {
        let g = self.groups.remove(key)?;
        self.bytes -= g.bytes + g.first.size();
        if self.opened.len() > 2 * self.groups.len() + 64 {
            let groups = &self.groups;
            self.opened.retain(|k| groups.contains_key(k));
        }
        Some(g)
    }

    /// Closes the oldest groups (never `keep`) until at most `limit` bytes and `MAX_GROUPS`
    /// groups are held.
    fn evict(&mut self, limit: usize, keep: &GroupKey) -> Vec<(Tag, Group)> {
        let mut out = Vec::new();
        while self.bytes > limit || self.groups.len() > MAX_GROUPS {
            let Some(key) = self.opened.pop_front() else {
                break;
            };
            if key == *keep {
                self.opened.push_back(key);
                if self.groups.len() == 1 {
                    break;
                }
                continue;
            }
            if let Some(g) = self.remove(&key) {
                out.push((key.0, g));
            }
        }
        out
    }
}

pub struct Multiline {
    mode: Mode,
    key: Box<[u8]>,
    flush_after: Duration,
    limit: usize,
    /// Most bytes held by all groups together.
    total_limit: usize,
    held: Mutex<Held>,
    metrics: Arc<FilterMetrics>,
}

const DEFAULT_LIMIT: u64 = 2_000_000;

impl Multiline {
    pub fn from_section(
        section: &Section,
        metrics: Arc<FilterMetrics>,
    ) -> Result<Self, ConfigError> {
        let mode_entry = section.entry("mode");
        let parser = section.str("multiline.parser").map(str::to_ascii_lowercase);
        let mode = match (
            mode_entry.map(|e| e.value.to_ascii_lowercase()),
            parser.as_deref(),
        ) {
            (Some(m), _) if m == "partial_message" => Mode::DockerPartial,
            (None | Some(_), Some("cri")) => Mode::Cri,
            (Some(m), _) => {
                let loc = mode_entry.map_or(&section.loc, |e| &e.loc);
                return Err(ConfigError::new(
                    loc,
                    format!(
                        "multiline: mode '{m}' is not supported (partial_message, or multiline.parser cri)"
                    ),
                ));
            }
            (None, other) => {
                return Err(ConfigError::new(
                    &section.loc,
                    format!(
                        "multiline: set 'Mode partial_message' or 'multiline.parser cri' (got parser {})",
                        other.unwrap_or("none")
                    ),
                ));
            }
        };
        let default_key = if mode == Mode::Cri { "message" } else { "log" };
        let flush_ms = section.uint("flush_ms")?.unwrap_or(2000).max(1);
        for key in [
            "buffer",
            "emitter_name",
            "emitter_storage.type",
            "debug_flush",
        ] {
            section.all(key).for_each(drop);
        }
        Ok(Multiline {
            mode,
            key: section
                .str("multiline.key_content")
                .unwrap_or(default_key)
                .as_bytes()
                .into(),
            flush_after: Duration::from_millis(flush_ms),
            limit: section.size("buffer_limit")?.unwrap_or(DEFAULT_LIMIT) as usize,
            total_limit: section
                .size("emitter_mem_buf_limit")?
                .unwrap_or(DEFAULT_TOTAL_LIMIT)
                .min(usize::MAX as u64) as usize,
            held: Mutex::new(Held::default()),
            metrics,
        })
    }

    /// What makes `event` a piece: its group id, ordinal, whether it is the last piece, and
    /// its content. `None` for a complete line.
    fn piece<'a>(&self, event: &'a Event) -> Option<(&'a [u8], u64, bool, &'a [u8])> {
        let text = |k: &str| match event.get(k) {
            Some(ValueRef::Str(s) | ValueRef::Bin(s)) => Some(s),
            _ => None,
        };
        let content = match event.get(std::str::from_utf8(&self.key).unwrap_or("log")) {
            Some(ValueRef::Str(s) | ValueRef::Bin(s)) => s,
            _ => return None,
        };
        match self.mode {
            Mode::DockerPartial => {
                if !text("partial_message")?
                    .to_ascii_lowercase()
                    .starts_with(b"true")
                {
                    return None;
                }
                let id = text("partial_id")?;
                let ordinal = text("partial_ordinal")
                    .and_then(|o| std::str::from_utf8(o).ok()?.parse().ok())
                    .unwrap_or(u64::MAX);
                let last = text("partial_last")
                    .is_some_and(|l| l.to_ascii_lowercase().starts_with(b"true"));
                Some((id, ordinal, last, content))
            }
            Mode::Cri => {
                let tag = text("logtag").or_else(|| text("_p"))?;
                let stream = text("stream").unwrap_or(b"");
                match tag {
                    b"F" | b"" => None,
                    _ => Some((stream, 0, false, content)),
                }
            }
        }
    }

    /// For CRI, whether `event` is the full line that ends a held group.
    fn cri_final<'a>(&self, event: &'a Event) -> Option<(&'a [u8], &'a [u8])> {
        let text = |k: &str| match event.get(k) {
            Some(ValueRef::Str(s) | ValueRef::Bin(s)) => Some(s),
            _ => None,
        };
        let tag = text("logtag").or_else(|| text("_p"))?;
        if tag != b"F" {
            return None;
        }
        let content = text(std::str::from_utf8(&self.key).ok()?)?;
        Some((text("stream").unwrap_or(b""), content))
    }

    /// Builds the joined record of a group.
    fn join(&self, group: Group, out: &mut FilterOutput<'_>) -> Event {
        let mut pieces = group.pieces;
        pieces.sort_by_key(|(ordinal, _)| *ordinal);
        let mut content = Vec::with_capacity(group.bytes);
        for (_, p) in &pieces {
            content.extend_from_slice(p);
        }
        let mut b = out.builder();
        match self.mode {
            Mode::DockerPartial => {
                let key = &*self.key;
                b.copy_fields(group.first.fields(), |k| {
                    k != key && !k.starts_with(b"partial_")
                });
                b.str(key, &content);
            }
            Mode::Cri => {
                let mut fields = group.first.fields();
                while let Some(Ok((k, v))) = fields.next_raw() {
                    if k == &*self.key {
                        b.str(k, &content);
                    } else {
                        b.raw(k, v);
                    }
                }
            }
        }
        b.finish_event(group.first.time)
    }

    fn take_expired(&self, now: Instant, all: bool) -> Vec<(Tag, Group)> {
        let Ok(mut held) = self.held.lock() else {
            return Vec::new();
        };
        let expired: Vec<_> = held
            .groups
            .iter()
            .filter(|(_, g)| all || now.duration_since(g.updated) >= self.flush_after)
            .map(|(k, _)| k.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|k| held.remove(&k).map(|g| (k.0, g)))
            .collect()
    }
}

impl Filter for Multiline {
    fn filter(&self, tag: &Tag, event: Event, out: &mut FilterOutput<'_>) {
        let now = Instant::now();
        if self.mode == Mode::Cri
            && let Some((stream, content)) = self.cri_final(&event)
        {
            let group = self
                .held
                .lock()
                .ok()
                .and_then(|mut h| h.remove(&(tag.clone(), stream.into())));
            return match group {
                Some(mut group) => {
                    group
                        .pieces
                        .push((group.pieces.len() as u64, content.to_vec()));
                    group.bytes += content.len();
                    let joined = self.join(group, out);
                    out.emit(joined);
                }
                None => out.emit(event),
            };
        }
        let Some((id, ordinal, last, content)) = self.piece(&event) else {
            return out.emit(event);
        };
        let key = (tag.clone(), Box::from(id));
        let ordinal = if self.mode == Mode::Cri {
            u64::MAX
        } else {
            ordinal
        };
        let piece = content.to_vec();
        let (done, overflow, evicted) = {
            let Ok(mut held) = self.held.lock() else {
                return out.emit(event);
            };
            let held = &mut *held;
            let group = match held.groups.entry(key.clone()) {
                std::collections::hash_map::Entry::Occupied(g) => g.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    held.bytes += event.size();
                    held.opened.push_back(key.clone());
                    v.insert(Group {
                        first: event.clone(),
                        pieces: Vec::new(),
                        bytes: 0,
                        updated: now,
                        last: None,
                    })
                }
            };
            let ordinal = if ordinal == u64::MAX {
                group.pieces.len() as u64 + 1
            } else {
                ordinal
            };
            group.bytes += piece.len();
            held.bytes += piece.len();
            group.pieces.push((ordinal, piece));
            group.updated = now;
            if last {
                group.last = Some(ordinal);
            }
            // Complete once the last piece and every piece before it (ordinals 1..=last) are in.
            let complete = group.last.is_some_and(|n| group.pieces.len() as u64 >= n);
            let overflow = group.bytes >= self.limit;
            if complete || overflow {
                (held.remove(&key), overflow && !complete, Vec::new())
            } else {
                (None, false, held.evict(self.total_limit, &key))
            }
        };
        if !evicted.is_empty() {
            let n = self.metrics.incomplete.get();
            if n.is_multiple_of(10_000) {
                tracing::warn!(
                    "[filter:multiline] more than {} bytes or {MAX_GROUPS} lines held waiting for their last piece: flushing the oldest as they are ({} so far)",
                    self.total_limit,
                    n + 1
                );
            }
        }
        for (tag, group) in evicted {
            self.metrics.incomplete.inc();
            let joined = self.join(group, out);
            out.emit_as(tag, joined);
        }
        if let Some(group) = done {
            if overflow {
                self.metrics.incomplete.inc();
                tracing::warn!(
                    "[filter:multiline] line of tag '{tag}' passed {} bytes before its last piece; flushed as is",
                    self.limit
                );
            }
            let joined = self.join(group, out);
            out.emit(joined);
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.flush_after / 2)
    }

    fn flush_held(&self, shutting_down: bool, out: &mut FilterOutput<'_>) {
        for (tag, group) in self.take_expired(Instant::now(), shutting_down) {
            self.metrics.incomplete.inc();
            let joined = self.join(group, out);
            out.emit_as(tag, joined);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testing::{records, run, section};

    fn docker() -> Multiline {
        Multiline::from_section(
            &section(&[
                ("Mode", "partial_message"),
                ("multiline.key_content", "log"),
                ("flush_ms", "50"),
            ]),
            Arc::default(),
        )
        .unwrap()
    }

    fn piece(id: &str, ordinal: u32, last: bool, log: &str) -> String {
        format!(
            r#"{{"container_id":"{id}c","log":"{log}","source":"stdout","partial_message":"true","partial_id":"{id}","partial_ordinal":"{ordinal}","partial_last":"{last}"}}"#
        )
    }

    #[test]
    fn pieces_that_never_end_are_flushed_oldest_first_past_the_total_limit() {
        let metrics = Arc::new(FilterMetrics::default());
        let f = Multiline::from_section(
            &section(&[
                ("Mode", "partial_message"),
                ("emitter_mem_buf_limit", "4k"),
                ("flush_ms", "60000"),
            ]),
            metrics.clone(),
        )
        .unwrap();
        // 1,000 lines whose last piece never comes, each under its own id.
        let input: Vec<String> = (0..1000)
            .map(|i| piece(&format!("id{i}"), 1, false, &"x".repeat(100)))
            .collect();
        let refs: Vec<&str> = input.iter().map(String::as_str).collect();
        let out = records(&f, &refs);
        let held = f.held.lock().unwrap();
        assert!(held.bytes <= 4096, "held {} bytes", held.bytes);
        assert!(held.opened.len() <= 2 * held.groups.len() + 64);
        assert_eq!(
            out.len() + held.groups.len(),
            1000,
            "every line flushed or held"
        );
        assert_eq!(metrics.incomplete.get(), out.len() as u64);
        // The oldest went first, as they were.
        assert!(out[0].contains("\"container_id\":\"id0c\""), "{}", out[0]);
    }

    #[test]
    fn interleaved_pieces_join_per_id_in_ordinal_order() {
        let f = docker();
        let input = [
            piece("a", 1, false, "A1-"),
            piece("b", 2, false, "B2-"),
            r#"{"log":"whole line"}"#.to_string(),
            piece("b", 1, false, "B1-"),
            piece("a", 3, true, "A3"),
            piece("a", 2, false, "A2-"),
            piece("b", 3, true, "B3"),
        ];
        let refs: Vec<&str> = input.iter().map(String::as_str).collect();
        let out = records(&f, &refs);
        assert_eq!(
            out,
            [
                r#"{"log":"whole line"}"#,
                // "a"'s last piece came before its second: joined once all three are in.
                r#"{"container_id":"ac","source":"stdout","log":"A1-A2-A3"}"#,
                r#"{"container_id":"bc","source":"stdout","log":"B1-B2-B3"}"#,
            ]
        );
    }

    #[test]
    fn pieces_in_order_from_two_containers() {
        let f = docker();
        let input = [
            piece("a", 1, false, "A1-"),
            piece("b", 1, false, "B1-"),
            piece("b", 2, true, "B2"),
            piece("a", 2, false, "A2-"),
            piece("a", 3, true, "A3"),
        ];
        let refs: Vec<&str> = input.iter().map(String::as_str).collect();
        assert_eq!(
            records(&f, &refs),
            [
                r#"{"container_id":"bc","source":"stdout","log":"B1-B2"}"#,
                r#"{"container_id":"ac","source":"stdout","log":"A1-A2-A3"}"#
            ]
        );
    }

    #[test]
    fn unfinished_lines_flush_after_the_timeout_and_at_shutdown() {
        let f = docker();
        assert!(records(&f, &[&piece("a", 1, false, "half")]).is_empty());
        let flush = |shutting_down| {
            let (mut same, mut re, mut arena) = (Vec::new(), Vec::new(), bytes::BytesMut::new());
            f.flush_held(
                shutting_down,
                &mut FilterOutput {
                    same_tag: &mut same,
                    retagged: &mut re,
                    arena: &mut arena,
                },
            );
            re.into_iter()
                .map(|(t, e)| (t.to_string(), crate::filter::testing::to_json(&e)))
                .collect::<Vec<_>>()
        };
        assert!(flush(false).is_empty(), "not yet expired");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            flush(false),
            [(
                "t".to_string(),
                r#"{"container_id":"ac","source":"stdout","log":"half"}"#.to_string()
            )]
        );
        records(&f, &[&piece("z", 1, false, "held")]);
        assert_eq!(flush(true).len(), 1, "shutdown flushes everything");
        assert_eq!(f.metrics.incomplete.get(), 2);
    }

    #[test]
    fn a_line_past_the_limit_is_flushed_as_is() {
        let f = Multiline::from_section(
            &section(&[("Mode", "partial_message"), ("buffer_limit", "10")]),
            Arc::default(),
        )
        .unwrap();
        let out = records(
            &f,
            &[
                &piece("a", 1, false, "0123456"),
                &piece("a", 2, false, "789ab"),
            ],
        );
        assert_eq!(
            out,
            [r#"{"container_id":"ac","source":"stdout","log":"0123456789ab"}"#]
        );
        assert_eq!(f.metrics.incomplete.get(), 1);
    }

    #[test]
    fn cri_partial_lines() {
        let f = Multiline::from_section(&section(&[("multiline.parser", "cri")]), Arc::default())
            .unwrap();
        let out = run(
            &f,
            "kube",
            &[
                r#"{"time":"t1","stream":"stdout","logtag":"P","message":"hello "}"#,
                r#"{"time":"t2","stream":"stderr","logtag":"F","message":"err line"}"#,
                r#"{"time":"t3","stream":"stdout","logtag":"P","message":"big "}"#,
                r#"{"time":"t4","stream":"stdout","logtag":"F","message":"world"}"#,
            ],
        );
        let recs: Vec<_> = out.into_iter().map(|(_, r)| r).collect();
        assert_eq!(
            recs,
            [
                r#"{"time":"t2","stream":"stderr","logtag":"F","message":"err line"}"#,
                r#"{"time":"t1","stream":"stdout","logtag":"P","message":"hello big world"}"#
            ]
        );
        assert!(Multiline::from_section(&section(&[("Mode", "regex")]), Arc::default()).is_err());
    }
}
