//! Writes msgpack values as JSON text, straight from the encoded bytes, the way Fluent Bit does:
//! compact, floats as C's `%.16g` (`%.1f` when integral), non-ASCII as `\uXXXX` unless
//! `json.escape_unicode` is off, and when a map repeats a key the last one wins.
//!
//! Where Fluent Bit writes invalid JSON we write valid JSON instead: bytes that are not UTF-8
//! (Docker does not validate log lines) become U+FFFD, NaN and infinities `null`, EventTime
//! extensions float seconds, other extensions `null`, and non-string keys `""`.

use super::{Reader, ValueRef};
use crate::record::{EventTime, Fields};

/// Nesting beyond this is written as `null` (receivers already refuse deeper frames).
const MAX_DEPTH: usize = 64;

/// How strings are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonStyle {
    /// Write non-ASCII characters as `\uXXXX` escapes (Fluent Bit's default) or as raw UTF-8.
    pub escape_unicode: bool,
}

impl Default for JsonStyle {
    fn default() -> Self {
        JsonStyle {
            escape_unicode: true,
        }
    }
}

impl JsonStyle {
    /// Writes one encoded value (header included). Undecodable bytes are written as `null`.
    pub fn value(self, out: &mut Vec<u8>, encoded: &[u8]) {
        match Reader::new(encoded).value() {
            Ok(v) => self.value_ref(out, v, 0),
            Err(_) => out.extend_from_slice(b"null"),
        }
    }

    /// Writes the pairs of a map as JSON members without braces, each preceded by a comma when
    /// `comma_first` (so a caller can put its own members first).
    pub fn members(self, out: &mut Vec<u8>, fields: Fields<'_>, comma_first: bool) {
        self.members_at(out, fields, comma_first, 1);
    }

    fn members_at(self, out: &mut Vec<u8>, fields: Fields<'_>, comma: bool, depth: usize) {
        // A later pair with the same key replaces an earlier one. Duplicates are rare, so the
        // pairs are written in one pass while a 16-bit fingerprint of each key is kept; only
        // when two fingerprints (then two keys) agree is the map written again, dropping the
        // replaced pairs. Every path is linear in the map's size.
        let start = out.len();
        let mut prints = [0u16; MAX_KEYS];
        let mut keys: [&[u8]; MAX_KEYS] = [&[]; MAX_KEYS];
        let mut n = 0;
        let mut maybe_duplicates = false;
        let mut first = !comma;
        let mut f = fields.clone();
        while let Some(Ok((key, value))) = f.next() {
            if n < MAX_KEYS {
                let print = fingerprint(key);
                if prints[..n].contains(&print) {
                    maybe_duplicates |= (0..n).any(|j| prints[j] == print && keys[j] == key);
                }
                prints[n] = print;
                keys[n] = key;
            } else {
                maybe_duplicates = true; // too many to remember: check them all below
            }
            n += 1;
            if !first {
                out.push(b',');
            }
            first = false;
            self.str(out, key);
            out.push(b':');
            self.value_ref(out, value, depth);
        }
        if maybe_duplicates {
            out.truncate(start);
            self.members_deduplicated(out, fields, comma, depth);
        }
    }

    /// The map's members where a key repeats: each key once, with its last value, in the order
    /// of those last pairs (as Fluent Bit's JSON writer leaves them). Linear with a hash set.
    fn members_deduplicated(
        self,
        out: &mut Vec<u8>,
        fields: Fields<'_>,
        mut comma: bool,
        depth: usize,
    ) {
        let pairs: Vec<(&[u8], ValueRef<'_>)> = fields.map_while(Result::ok).collect();
        let mut seen = std::collections::HashSet::with_capacity(pairs.len());
        // Walking back, a key seen already is replaced by a later pair.
        let mut keep = vec![false; pairs.len()];
        for (i, (k, _)) in pairs.iter().enumerate().rev() {
            keep[i] = seen.insert(*k);
        }
        for ((key, value), keep) in pairs.into_iter().zip(keep) {
            if !keep {
                continue;
            }
            if comma {
                out.push(b',');
            }
            comma = true;
            self.str(out, key);
            out.push(b':');
            self.value_ref(out, value, depth);
        }
    }

    fn value_ref(self, out: &mut Vec<u8>, value: ValueRef<'_>, depth: usize) {
        match value {
            ValueRef::Nil => out.extend_from_slice(b"null"),
            ValueRef::Bool(true) => out.extend_from_slice(b"true"),
            ValueRef::Bool(false) => out.extend_from_slice(b"false"),
            ValueRef::UInt(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            ValueRef::Int(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            ValueRef::F64(v) => write_f64(out, v),
            ValueRef::Str(s) | ValueRef::Bin(s) => self.str(out, s),
            ValueRef::Ext(0, b) if b.len() == 8 => {
                let secs = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                let nanos = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                write_f64(out, EventTime::from_parts(i64::from(secs), nanos).as_f64());
            }
            ValueRef::Ext(..) => out.extend_from_slice(b"null"),
            _ if depth >= MAX_DEPTH => out.extend_from_slice(b"null"),
            ValueRef::Array(n, body) => {
                out.push(b'[');
                let mut r = Reader::new(body);
                for i in 0..n {
                    if i > 0 {
                        out.push(b',');
                    }
                    match r.value() {
                        Ok(v) => self.value_ref(out, v, depth + 1),
                        Err(_) => out.extend_from_slice(b"null"),
                    }
                }
                out.push(b']');
            }
            ValueRef::Map(n, body) => {
                out.push(b'{');
                self.members_at(out, Fields::from_body(n, body), false, depth + 1);
                out.push(b'}');
            }
        }
    }

    /// Writes `s` as a quoted JSON string.
    pub fn str(self, out: &mut Vec<u8>, s: &[u8]) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        // Most log text is ASCII: no UTF-8 decoding needed.
        if s.is_ascii() {
            write_escaped(out, s);
            out.push(b'"');
            return;
        }
        for chunk in s.utf8_chunks() {
            let valid = chunk.valid();
            if self.escape_unicode && !valid.is_ascii() {
                for c in valid.chars() {
                    if c.is_ascii() {
                        write_escaped(out, &[c as u8]);
                    } else {
                        let mut units = [0u16; 2];
                        for u in c.encode_utf16(&mut units) {
                            write_u_escape(out, *u);
                        }
                    }
                }
            } else {
                write_escaped(out, valid.as_bytes());
            }
            if !chunk.invalid().is_empty() {
                if self.escape_unicode {
                    write_u_escape(out, 0xfffd);
                } else {
                    out.extend_from_slice("\u{FFFD}".as_bytes());
                }
            }
        }
        out.push(b'"');
    }
}

/// A key's fingerprint for the duplicate check (FNV-1a folded to 16 bits).
fn fingerprint(key: &[u8]) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in key {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h ^ (h >> 16)) as u16
}

/// Keys of one map remembered for the duplicate check.
const MAX_KEYS: usize = 64;

/// Writes a float as Fluent Bit does: `%.1f` when integral, else `%.16g`. JSON has no NaN or
/// infinity, so those become `null`.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    use std::io::Write;
    if !v.is_finite() {
        out.extend_from_slice(b"null");
    } else if v == v.trunc() && v.abs() < 9.2e18 {
        let _ = write!(out, "{v:.1}");
    } else {
        write_g16(out, v);
    }
}

/// C's `%.16g`: 16 significant digits, trailing zeros dropped, exponent form when the exponent
/// is below -4 or at least 16.
fn write_g16(out: &mut Vec<u8>, v: f64) {
    use std::io::Write;
    let sci = format!("{v:.15e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..16).contains(&exp) {
        let m = mantissa.trim_end_matches('0').trim_end_matches('.');
        let sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "{m}e{sign}{:02}", exp.abs());
    } else {
        let decimals = (15 - exp).max(0) as usize;
        let fixed = format!("{v:.decimals$}");
        let fixed = if fixed.contains('.') {
            fixed.trim_end_matches('0').trim_end_matches('.')
        } else {
            &fixed
        };
        out.extend_from_slice(fixed.as_bytes());
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_u_escape(out: &mut Vec<u8>, unit: u16) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((unit >> shift) & 0xf)]);
    }
}

/// Bytes JSON needs escaped: control characters, DEL, `"` and `\`.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[0x7f] = true;
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Escapes ASCII as JSON requires; other bytes are copied. Runs of plain bytes are copied in
/// one go.
fn write_escaped(out: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0;
    while let Some(offset) = s[start..]
        .iter()
        .position(|&b| NEEDS_ESCAPE[usize::from(b)])
    {
        let i = start + offset;
        let b = s[i];
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => b"",
        };
        out.extend_from_slice(&s[start..i]);
        if short.is_empty() {
            write_u_escape(out, u16::from(b));
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(encoded: &[u8]) -> String {
        let mut out = Vec::new();
        JsonStyle::default().value(&mut out, encoded);
        String::from_utf8(out).unwrap()
    }

    fn float(v: f64) -> String {
        let mut out = Vec::new();
        write_f64(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_follow_c_formats() {
        assert_eq!(float(1_700_000_000.123_456_7), "1700000000.123457");
        assert_eq!(float(1_700_000_000.5), "1700000000.5");
        assert_eq!(float(1_700_000_000.0), "1700000000.0");
        assert_eq!(float(2.0), "2.0");
        assert_eq!(float(0.072), "0.07199999999999999");
        assert_eq!(float(1e-5), "1e-05");
        assert_eq!(float(1.5e20), "1.5e+20");
        assert_eq!(float(3.5), "3.5");
        assert_eq!(float(f64::NAN), "null");
    }

    #[test]
    fn later_duplicate_keys_win() {
        // {"a":1,"b":2,"a":3}
        let buf = [0x83, 0xa1, b'a', 0x01, 0xa1, b'b', 0x02, 0xa1, b'a', 0x03];
        assert_eq!(json(&buf), r#"{"b":2,"a":3}"#);
    }

    #[test]
    fn a_map_of_200000_keys_renders_in_one_linear_pass() {
        // The shape that stalled the router for over a minute when each pair was checked
        // against the rest of the map: 200,000 distinct keys, then one repeated.
        let n = 200_000u32;
        let mut buf = vec![0xdf];
        buf.extend_from_slice(&(n + 1).to_be_bytes());
        for i in 0..n {
            crate::msgpack::write::write_str(&mut buf, format!("{i}").as_bytes());
            buf.push(0);
        }
        crate::msgpack::write::write_str(&mut buf, b"7");
        buf.push(1);
        let out = json(&buf);
        assert_eq!(out.matches(':').count(), n as usize);
        assert!(out.ends_with(r#","7":1}"#) && !out.contains(r#""7":0"#));
    }

    #[test]
    fn later_duplicate_keys_win_in_large_maps() {
        // k0..k{n-1} with values 0..n-1, then "k5": 7 and the last key again: 8. 60 pairs
        // fit the remembered keys, 100 do not.
        for pairs in [60, 100] {
            let mut buf = vec![0xde];
            buf.extend_from_slice(&((pairs + 2) as u16).to_be_bytes());
            let mut expected = Vec::new();
            for i in 0..pairs {
                crate::msgpack::write::write_str(&mut buf, format!("k{i}").as_bytes());
                buf.push(i as u8);
                if i != 5 && i != pairs - 1 {
                    expected.push(format!("\"k{i}\":{i}"));
                }
            }
            for (k, v) in [(5u8, 7u8), ((pairs - 1) as u8, 8)] {
                crate::msgpack::write::write_str(&mut buf, format!("k{k}").as_bytes());
                buf.push(v);
                expected.push(format!("\"k{k}\":{v}"));
            }
            assert_eq!(
                json(&buf),
                format!("{{{}}}", expected.join(",")),
                "{pairs} pairs"
            );
        }
    }

    #[test]
    fn non_ascii_is_escaped_by_default() {
        let mut out = Vec::new();
        JsonStyle::default().str(&mut out, "é/あ😀".as_bytes());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""\u00e9/\u3042\ud83d\ude00""#
        );
        let mut out = Vec::new();
        JsonStyle {
            escape_unicode: false,
        }
        .str(&mut out, "é".as_bytes());
        assert_eq!(String::from_utf8(out).unwrap(), "\"é\"");
    }

    #[test]
    fn writes_nested_values() {
        // {"a": [1, -2, 1.5, nil, true], "b": {"c": "d"}}
        let buf = [
            0x82, 0xa1, b'a', 0x95, 0x01, 0xfe, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xc0, 0xc3,
            0xa1, b'b', 0x81, 0xa1, b'c', 0xa1, b'd',
        ];
        assert_eq!(json(&buf), r#"{"a":[1,-2,1.5,null,true],"b":{"c":"d"}}"#);
    }

    #[test]
    fn escapes_strings_and_repairs_bad_utf8() {
        let mut out = Vec::new();
        let raw = JsonStyle {
            escape_unicode: false,
        };
        raw.str(&mut out, b"a\"b\\c\n\x01\x7f\xff\xc3\xa9");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\n\\u0001\\u007f\u{FFFD}\u{e9}\""
        );
    }
}
