//! A fast path for regexes that split a line into delimited fields, such as the access-log
//! parsers: one pass, no backtracking, runs of a byte class skipped with `memchr`.
//!
//! It applies only to regexes that are anchored with `^` and deterministic with one byte of
//! lookahead: every repetition is of a single-byte class that cannot also start what follows it,
//! every optional part and alternative is chosen by its first byte. For those, the only way the
//! regex can match is the path this matcher takes, so both give the same captures (the tests
//! compare them on many inputs). Anything else (look-arounds, nested repetitions, ambiguous
//! choices, unanchored searches) is left to the `regex` crate.
//!
//! Unicode classes count when their non-ASCII part is "every character" (`[^ ]`, `.`, `\S`
//! is not): on valid UTF-8 they then match exactly the bytes this matcher takes.

use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// A set of bytes.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    fn insert_range(&mut self, lo: u8, hi: u8) {
        for b in lo..=hi {
            self.insert(b);
        }
    }

    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    fn union(self, o: ByteSet) -> ByteSet {
        ByteSet(std::array::from_fn(|i| self.0[i] | o.0[i]))
    }

    fn intersects(&self, o: &ByteSet) -> bool {
        (0..4).any(|i| self.0[i] & o.0[i] != 0)
    }

    fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }

    /// The bytes not in the set, if there are at most three (for `memchr`).
    fn few_outside(&self) -> Option<Vec<u8>> {
        let out: Vec<u8> = (0..=255u8).filter(|&b| !self.contains(b)).take(4).collect();
        (out.len() <= 3).then_some(out)
    }
}

/// A node of the source regex, reduced to what the matcher understands.
enum Item {
    Byte(ByteSet),
    Rep {
        set: ByteSet,
        min: u32,
        max: u32,
        greedy: bool,
    },
    Group(usize, Vec<Item>),
    Opt(Vec<Item>),
    Alt(Vec<Vec<Item>>),
    Start,
    End,
}

/// A compiled step.
enum Node {
    Byte(ByteSet),
    /// `min..=max` bytes of `set`; `stop` lists the (at most three) bytes outside it.
    Run {
        set: ByteSet,
        min: u32,
        max: u32,
        stop: Option<Vec<u8>>,
    },
    Save(usize),
    /// Taken when the next byte is in `first`.
    Opt {
        first: ByteSet,
        body: Vec<Node>,
    },
    Alt(Vec<(ByteSet, Vec<Node>)>),
    End,
}

/// A deterministic field matcher compiled from a regex.
pub struct FieldMatcher {
    nodes: Vec<Node>,
    slots: usize,
}

impl std::fmt::Debug for FieldMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FieldMatcher({} steps, {} slots)",
            self.nodes.len(),
            self.slots
        )
    }
}

impl FieldMatcher {
    /// Compiles `pattern` when it has the shape described above; `None` otherwise.
    pub fn compile(pattern: &str) -> Option<Self> {
        let hir = regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(pattern)
            .ok()?;
        let mut items = Vec::new();
        let mut groups = 0;
        flatten(&hir, &mut items, &mut groups)?;
        // Anchored at the start, with `$` (if any) only at the very end.
        if !matches!(items.first(), Some(Item::Start)) {
            return None;
        }
        items.remove(0);
        let end = matches!(items.last(), Some(Item::End));
        if end {
            items.pop();
        }
        if contains_anchor(&items) {
            return None;
        }
        let mut nodes = lower(
            &items,
            Follow {
                set: ByteSet::default(),
                may_end: !end,
            },
        )?;
        if end {
            nodes.push(Node::End);
        }
        Some(FieldMatcher {
            nodes,
            slots: 2 * (groups + 1),
        })
    }

    /// Capture slot count (two per group, group 0 the whole match), as `CaptureLocations`.
    pub fn slot_count(&self) -> usize {
        self.slots
    }

    /// Matches `text`, filling `slots` (start, end per group; `None` when a group did not take
    /// part). Returns whether it matched.
    pub fn captures(&self, text: &[u8], slots: &mut [Option<usize>]) -> bool {
        slots.iter_mut().for_each(|s| *s = None);
        match run(&self.nodes, text, 0, slots) {
            Some(end) => {
                slots[0] = Some(0);
                slots[1] = Some(end);
                true
            }
            None => false,
        }
    }
}

fn run(nodes: &[Node], text: &[u8], mut pos: usize, slots: &mut [Option<usize>]) -> Option<usize> {
    for node in nodes {
        match node {
            Node::Byte(set) => {
                if !set.contains(*text.get(pos)?) {
                    return None;
                }
                pos += 1;
            }
            Node::Run {
                set,
                min,
                max,
                stop,
            } => {
                let limit = text.len().min(pos.saturating_add(*max as usize));
                let window = &text[pos..limit];
                let n = match stop.as_deref() {
                    Some([a]) => memchr::memchr(*a, window),
                    Some([a, b]) => memchr::memchr2(*a, *b, window),
                    Some([a, b, c]) => memchr::memchr3(*a, *b, *c, window),
                    _ => window.iter().position(|&b| !set.contains(b)),
                }
                .unwrap_or(window.len());
                if n < *min as usize {
                    return None;
                }
                pos += n;
            }
            Node::Save(slot) => slots[*slot] = Some(pos),
            Node::Opt { first, body } => {
                if text.get(pos).is_some_and(|b| first.contains(*b)) {
                    pos = run(body, text, pos, slots)?;
                }
            }
            Node::Alt(branches) => {
                let b = *text.get(pos)?;
                let (_, body) = branches.iter().find(|(first, _)| first.contains(b))?;
                pos = run(body, text, pos, slots)?;
            }
            Node::End => {
                if pos != text.len() {
                    return None;
                }
            }
        }
    }
    Some(pos)
}

/// A single-byte class as a byte set, when it is one.
fn class_set(class: &Class) -> Option<ByteSet> {
    let mut set = ByteSet::default();
    match class {
        Class::Bytes(c) => {
            for r in c.ranges() {
                set.insert_range(r.start(), r.end());
            }
        }
        Class::Unicode(c) => {
            // ASCII members, plus all of the rest of Unicode or none of it.
            let mut non_ascii: u64 = 0;
            for r in c.ranges() {
                let (lo, hi) = (u32::from(r.start()), u32::from(r.end()));
                if lo < 0x80 {
                    set.insert_range(lo as u8, hi.min(0x7f) as u8);
                }
                if hi >= 0x80 {
                    let lo = lo.max(0x80);
                    // Ranges may or may not skip the surrogates: count scalar values only.
                    let surrogates = hi
                        .min(0xDFFF)
                        .saturating_add(1)
                        .saturating_sub(lo.max(0xD800));
                    non_ascii += u64::from(hi - lo + 1 - surrogates);
                }
            }
            // Every scalar value from U+0080 up: 0x10FFFF - 0x7F minus the 2048 surrogates.
            const ALL_NON_ASCII: u64 = 0x10_FFFF - 0x7F - 2048;
            match non_ascii {
                0 => {}
                ALL_NON_ASCII => set.insert_range(0x80, 0xff),
                _ => return None,
            }
        }
    }
    Some(set)
}

fn flatten(hir: &Hir, out: &mut Vec<Item>, groups: &mut usize) -> Option<()> {
    match hir.kind() {
        HirKind::Empty => {}
        HirKind::Literal(lit) => {
            for &b in lit.0.iter() {
                let mut s = ByteSet::default();
                s.insert(b);
                out.push(Item::Byte(s));
            }
        }
        HirKind::Class(c) => {
            let set = class_set(c)?;
            // A Unicode class matches whole characters: one byte only when it is ASCII-only.
            if matches!(c, Class::Unicode(_)) && set.contains(0x80) {
                out.push(Item::Rep {
                    set,
                    min: 1,
                    max: 1,
                    greedy: true,
                });
            } else {
                out.push(Item::Byte(set));
            }
        }
        HirKind::Look(Look::Start) => out.push(Item::Start),
        HirKind::Look(Look::End) => out.push(Item::End),
        HirKind::Look(_) => return None,
        HirKind::Repetition(rep) => {
            let set = match rep.sub.kind() {
                HirKind::Class(c) => class_set(c)?,
                HirKind::Literal(lit) if lit.0.len() == 1 => {
                    let mut s = ByteSet::default();
                    s.insert(lit.0[0]);
                    s
                }
                _ => {
                    // `(...)?` of a sequence: an optional part.
                    if rep.min == 0 && rep.max == Some(1) {
                        let mut body = Vec::new();
                        flatten(&rep.sub, &mut body, groups)?;
                        out.push(Item::Opt(body));
                        return Some(());
                    }
                    return None;
                }
            };
            out.push(Item::Rep {
                set,
                min: rep.min,
                max: rep.max.unwrap_or(u32::MAX),
                greedy: rep.greedy,
            });
        }
        HirKind::Capture(cap) => {
            *groups = (*groups).max(cap.index as usize);
            let mut body = Vec::new();
            flatten(&cap.sub, &mut body, groups)?;
            out.push(Item::Group(cap.index as usize, body));
        }
        HirKind::Concat(subs) => {
            for s in subs {
                flatten(s, out, groups)?;
            }
        }
        HirKind::Alternation(subs) => {
            let mut branches = Vec::new();
            for s in subs {
                let mut body = Vec::new();
                flatten(s, &mut body, groups)?;
                branches.push(body);
            }
            out.push(Item::Alt(branches));
        }
    }
    Some(())
}

fn contains_anchor(items: &[Item]) -> bool {
    items.iter().any(|i| match i {
        Item::Start | Item::End => true,
        Item::Group(_, s) | Item::Opt(s) => contains_anchor(s),
        Item::Alt(bs) => bs.iter().any(|b| contains_anchor(b)),
        _ => false,
    })
}

/// What may come after a point: bytes that can start it, and whether the match may end there.
#[derive(Clone, Copy)]
struct Follow {
    set: ByteSet,
    may_end: bool,
}

/// The bytes that can start `items`, and whether `items` can match nothing.
fn first(items: &[Item]) -> (ByteSet, bool) {
    let mut set = ByteSet::default();
    for item in items {
        let (s, nullable) = match item {
            Item::Byte(s) => (*s, false),
            Item::Rep { set, min, .. } => (*set, *min == 0),
            Item::Group(_, sub) => first(sub),
            Item::Opt(sub) => (first(sub).0, true),
            Item::Alt(bs) => bs
                .iter()
                .map(|b| first(b))
                .fold((ByteSet::default(), false), |(a, n), (s, m)| {
                    (a.union(s), n || m)
                }),
            Item::Start | Item::End => (ByteSet::default(), true),
        };
        set = set.union(s);
        if !nullable {
            return (set, false);
        }
    }
    (set, true)
}

/// Lowers `items` followed by `after`, checking at each choice that one byte decides it.
fn lower(items: &[Item], after: Follow) -> Option<Vec<Node>> {
    let mut nodes = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let (rest, rest_nullable) = first(&items[i + 1..]);
        let follow = Follow {
            set: if rest_nullable {
                rest.union(after.set)
            } else {
                rest
            },
            may_end: rest_nullable && after.may_end,
        };
        match item {
            Item::Byte(s) => nodes.push(Node::Byte(*s)),
            Item::Rep {
                set,
                min,
                max,
                greedy,
            } => {
                if set.intersects(&follow.set) || (!greedy && follow.may_end) {
                    return None;
                }
                nodes.push(Node::Run {
                    set: *set,
                    min: *min,
                    max: *max,
                    stop: set.few_outside(),
                });
            }
            Item::Group(index, sub) => {
                nodes.push(Node::Save(2 * index));
                nodes.extend(lower(sub, follow)?);
                nodes.push(Node::Save(2 * index + 1));
            }
            Item::Opt(sub) => {
                let (f, nullable) = first(sub);
                if nullable || f.is_empty() || f.intersects(&follow.set) {
                    return None;
                }
                nodes.push(Node::Opt {
                    first: f,
                    body: lower(sub, follow)?,
                });
            }
            Item::Alt(branches) => {
                let mut lowered: Vec<(ByteSet, Vec<Node>)> = Vec::new();
                for b in branches {
                    let (f, nullable) = first(b);
                    if nullable || lowered.iter().any(|(g, _)| g.intersects(&f)) {
                        return None;
                    }
                    lowered.push((f, lower(b, follow)?));
                }
                nodes.push(Node::Alt(lowered));
            }
            Item::Start | Item::End => return None,
        }
    }
    Some(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::bytes::Regex;

    /// The fast path and the regex crate agree on `text`.
    fn agree(pattern: &str, fm: &FieldMatcher, re: &Regex, text: &[u8]) {
        let mut slots = vec![None; fm.slot_count()];
        let fast = fm.captures(text, &mut slots);
        let mut locs = re.capture_locations();
        let slow = re.captures_read(&mut locs, text).is_some();
        assert_eq!(
            fast,
            slow,
            "match differs for {pattern} on {:?}",
            String::from_utf8_lossy(text)
        );
        if fast {
            for g in 0..locs.len() {
                let want = locs.get(g);
                let got = slots[2 * g].zip(slots[2 * g + 1]);
                assert_eq!(
                    got,
                    want,
                    "group {g} of {pattern} on {:?}",
                    String::from_utf8_lossy(text)
                );
            }
        }
    }

    const NGINX: &str = r#"^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>[^ "]*)(?: (?<path>[^ "]*)(?: [^"]*)?)?" (?<code>[^ ]*) (?<size>[^ ]*) "(?<referer>[^"]*)" "(?<agent>[^"]*)""#;

    #[test]
    fn applies_to_delimited_fields_and_not_to_ambiguous_regexes() {
        assert!(FieldMatcher::compile(NGINX).is_some());
        assert!(FieldMatcher::compile(r"^(?<a>[0-9]{1,3})-(?<b>[a-z]+)$").is_some());
        assert!(FieldMatcher::compile(r"^(?<s>out|err) (?<m>.*)$").is_some());
        for no in [
            r"(?<a>[^ ]*) x",           // unanchored
            r"^(?<a>\S+) (?<b>.*)$",    // \S: only part of Unicode
            r"^(?<a>.*) (?<b>.*)$",     // the first .* could stop at any space
            r#"^(?<a>[^"]*?)(?<b>x)?"#, // lazy at the end
            r"^(?<s>stdout|stderr)",    // both branches start with s
            r"^(?:ab)+",                // repeated sequence
            r"^a\bb",                   // word boundary
            r"^(?<n>\d+)",              // \d: Unicode digits too
        ] {
            assert!(FieldMatcher::compile(no).is_none(), "{no}");
        }
    }

    #[test]
    fn agrees_with_the_regex_crate() {
        let patterns = [
            NGINX,
            r"^(?<a>[0-9]{1,3})-(?<b>[a-z]+)$",
            r"^(?<s>out|err) (?<m>.*)$",
            r"^(?i-u)(?<level>[a-z]+): (?<n>[0-9]{2,4})(?: (?<rest>[^\n]*))?",
            r"^<(?<pri>[0-9]{1,3})>(?<x>[^ ]*) é(?<e>[^ ]*)",
        ];
        let seeds: &[&[u8]] = &[
            br#"172.17.0.1 - - [21/Nov/2026:10:00:00 +0000] "GET /a?b=1 HTTP/1.1" 200 5316 "https://r/" "Mozilla/5.0 (X11)""#,
            br#"1.2.3.4 - bob [x] "-" 400 0 "-" "-""#,
            br#"1.2.3.4 - - [x] "GET /a b c" 200 1 "" """#,
            b"12-abc",
            b"out hello world",
            b"err ",
            b"WARN: 123 rest of it",
            b"<34>mm \xc3\xa9caf x",
        ];
        let alphabet: &[u8] = b" \"[]-/aZ09:<>\n\t\xc3\xa9";
        let mut rng = fastrand::Rng::with_seed(7);
        for p in patterns {
            let fm = FieldMatcher::compile(p).unwrap_or_else(|| panic!("{p} should compile"));
            let re = Regex::new(p).unwrap();
            for seed in seeds {
                agree(p, &fm, &re, seed);
                for _ in 0..400 {
                    let mut t = seed.to_vec();
                    for _ in 0..rng.usize(1..4) {
                        let at = rng.usize(0..=t.len());
                        match rng.u8(0..3) {
                            0 if at < t.len() => {
                                t.remove(at);
                            }
                            1 if at < t.len() => t[at] = alphabet[rng.usize(0..alphabet.len())],
                            _ => t.insert(at, alphabet[rng.usize(0..alphabet.len())]),
                        }
                    }
                    if std::str::from_utf8(&t).is_ok() {
                        agree(p, &fm, &re, &t);
                    }
                }
            }
        }
    }
}
