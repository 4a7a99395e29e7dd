//! Writes msgpack values the way msgpack-c's `msgpack_object_print` does, which is what Fluent
//! Bit's `stdout` output prints by default: `{"k"=>"v", "n"=>1}`, strings unescaped, floats with
//! six decimals, binary bytes as `\xNN` when not printable.

use std::io::Write;

use super::{Reader, ValueRef};
use crate::record::Fields;

const MAX_DEPTH: usize = 64;

/// Writes one encoded value (header included).
pub fn write_value(out: &mut Vec<u8>, encoded: &[u8]) {
    match Reader::new(encoded).value() {
        Ok(v) => write_ref(out, v, 0),
        Err(_) => out.extend_from_slice(b"nil"),
    }
}

fn write_ref(out: &mut Vec<u8>, value: ValueRef<'_>, depth: usize) {
    match value {
        ValueRef::Nil => out.extend_from_slice(b"nil"),
        ValueRef::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        ValueRef::UInt(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
        ValueRef::Int(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
        ValueRef::F64(v) => {
            let _ = write!(out, "{v:.6}");
        }
        ValueRef::Str(s) => {
            out.push(b'"');
            out.extend_from_slice(s);
            out.push(b'"');
        }
        ValueRef::Bin(b) => write_bytes(out, b),
        ValueRef::Ext(t, b) => {
            let _ = write!(out, "(ext: {t})");
            write_bytes(out, b);
        }
        _ if depth >= MAX_DEPTH => out.extend_from_slice(b"nil"),
        ValueRef::Array(n, body) => {
            out.push(b'[');
            let mut r = Reader::new(body);
            for i in 0..n {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                match r.value() {
                    Ok(v) => write_ref(out, v, depth + 1),
                    Err(_) => break,
                }
            }
            out.push(b']');
        }
        ValueRef::Map(n, body) => {
            out.push(b'{');
            let mut r = Reader::new(body);
            for i in 0..n {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                let (Ok(k), Ok(v)) = (r.value(), r.value()) else {
                    break;
                };
                write_ref(out, k, depth + 1);
                out.extend_from_slice(b"=>");
                write_ref(out, v, depth + 1);
            }
            out.push(b'}');
        }
    }
}

/// Writes a map given as [`Fields`] (a record).
pub fn write_fields(out: &mut Vec<u8>, fields: Fields<'_>) {
    out.push(b'{');
    for (i, pair) in fields.enumerate() {
        let Ok((k, v)) = pair else { break };
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        write_ref(out, ValueRef::Str(k), 1);
        out.extend_from_slice(b"=>");
        write_ref(out, v, 1);
    }
    out.push(b'}');
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            0x20..=0x7e => out.push(b),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_msgpack_c() {
        // {"k": "v\n", "n": [1, 2.0, nil], "b": bin("a\x01")}
        let buf = [
            0x83, 0xa1, b'k', 0xa2, b'v', b'\n', 0xa1, b'n', 0x93, 0x01, 0xcb, 0x40, 0, 0, 0, 0, 0,
            0, 0, 0xc0, 0xa1, b'b', 0xc4, 0x02, b'a', 0x01,
        ];
        let mut out = Vec::new();
        write_value(&mut out, &buf);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"k\"=>\"v\n\", \"n\"=>[1, 2.000000, nil], \"b\"=>\"a\\x01\"}"
        );
    }
}
