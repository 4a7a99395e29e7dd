//! Msgpack encoding into any `BufMut` (a `Vec<u8>` or a `BytesMut` arena), smallest form first.

use bytes::BufMut;

/// A string: header then bytes. Lengths are capped at u32 (frames are far smaller).
pub fn write_str(out: &mut impl BufMut, s: &[u8]) {
    let n = s.len();
    if n < 32 {
        out.put_u8(0xa0 | n as u8);
    } else if n < 256 {
        out.put_u8(0xd9);
        out.put_u8(n as u8);
    } else if n < 65_536 {
        out.put_u8(0xda);
        out.put_u16(n as u16);
    } else {
        out.put_u8(0xdb);
        out.put_u32(n as u32);
    }
    out.put_slice(s);
}

/// A binary value: header then bytes.
pub fn write_bin(out: &mut impl BufMut, b: &[u8]) {
    let n = b.len();
    if n < 256 {
        out.put_u8(0xc4);
        out.put_u8(n as u8);
    } else if n < 65_536 {
        out.put_u8(0xc5);
        out.put_u16(n as u16);
    } else {
        out.put_u8(0xc6);
        out.put_u32(n as u32);
    }
    out.put_slice(b);
}

pub fn write_map_len(out: &mut impl BufMut, n: u32) {
    if n < 16 {
        out.put_u8(0x80 | n as u8);
    } else if n < 65_536 {
        out.put_u8(0xde);
        out.put_u16(n as u16);
    } else {
        out.put_u8(0xdf);
        out.put_u32(n);
    }
}

pub fn write_array_len(out: &mut impl BufMut, n: u32) {
    if n < 16 {
        out.put_u8(0x90 | n as u8);
    } else if n < 65_536 {
        out.put_u8(0xdc);
        out.put_u16(n as u16);
    } else {
        out.put_u8(0xdd);
        out.put_u32(n);
    }
}

pub fn write_int(out: &mut impl BufMut, v: i64) {
    if v >= 0 {
        write_uint(out, v as u64);
    } else if v >= -32 {
        out.put_i8(v as i8);
    } else if v >= i64::from(i8::MIN) {
        out.put_u8(0xd0);
        out.put_i8(v as i8);
    } else if v >= i64::from(i16::MIN) {
        out.put_u8(0xd1);
        out.put_i16(v as i16);
    } else if v >= i64::from(i32::MIN) {
        out.put_u8(0xd2);
        out.put_i32(v as i32);
    } else {
        out.put_u8(0xd3);
        out.put_i64(v);
    }
}

pub fn write_uint(out: &mut impl BufMut, v: u64) {
    if v < 128 {
        out.put_u8(v as u8);
    } else if v < 256 {
        out.put_u8(0xcc);
        out.put_u8(v as u8);
    } else if v < 65_536 {
        out.put_u8(0xcd);
        out.put_u16(v as u16);
    } else if v <= u64::from(u32::MAX) {
        out.put_u8(0xce);
        out.put_u32(v as u32);
    } else {
        out.put_u8(0xcf);
        out.put_u64(v);
    }
}

pub fn write_f64(out: &mut impl BufMut, v: f64) {
    out.put_u8(0xcb);
    out.put_f64(v);
}

pub fn write_bool(out: &mut impl BufMut, v: bool) {
    out.put_u8(if v { 0xc3 } else { 0xc2 });
}

pub fn write_nil(out: &mut impl BufMut) {
    out.put_u8(0xc0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack::{Reader, ValueRef};

    #[test]
    fn round_trips_through_the_reader() {
        let mut b = Vec::new();
        write_array_len(&mut b, 7);
        for v in [0i64, -1, -100, 300, -40_000, 5_000_000_000, -5_000_000_000] {
            write_int(&mut b, v);
        }
        let mut r = Reader::new(&b);
        r.header().unwrap();
        let got: Vec<_> = (0..7).map(|_| r.value().unwrap()).collect();
        assert_eq!(
            got,
            vec![
                ValueRef::UInt(0),
                ValueRef::Int(-1),
                ValueRef::Int(-100),
                ValueRef::UInt(300),
                ValueRef::Int(-40_000),
                ValueRef::UInt(5_000_000_000),
                ValueRef::Int(-5_000_000_000)
            ]
        );
        let long = "x".repeat(70_000);
        let mut s = Vec::new();
        write_str(&mut s, long.as_bytes());
        assert_eq!(
            Reader::new(&s).value().unwrap(),
            ValueRef::Str(long.as_bytes())
        );
    }
}
