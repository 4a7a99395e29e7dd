//! MessagePack, read without building a tree.
//!
//! Records travel through the router as the msgpack bytes they arrived in, so the pieces here work
//! on byte slices: [`header`] decodes one value's header (marker plus length), [`Scanner`] finds
//! where a top-level value ends in a stream that arrives in pieces, [`Reader`] walks a complete
//! value, and [`json`] writes a value as JSON. Encoding uses the `rmp` crate.

pub mod json;
pub mod print;
mod reader;
mod scanner;

pub use reader::{Reader, ValueRef};
pub use scanner::{Scanner, ScannerLimits};

use rmp::Marker;

/// Why a byte sequence is not msgpack the router accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid msgpack marker 0x{0:02x}")]
    InvalidMarker(u8),
    #[error("msgpack value truncated")]
    Truncated,
    #[error("msgpack nesting deeper than {0}")]
    TooDeep(usize),
    #[error("declared msgpack length {declared} exceeds the limit of {limit} bytes")]
    TooLarge { declared: u64, limit: usize },
    #[error("expected {expected}, found {found}")]
    Type {
        expected: &'static str,
        found: &'static str,
    },
}

/// What one msgpack header announces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Header {
    Nil,
    Bool(bool),
    /// Non-negative integers (msgpack's positive fixint and uint family).
    UInt(u64),
    /// Negative integers, and non-negative ones sent in a signed encoding.
    Int(i64),
    F32(f32),
    F64(f64),
    /// A string of this many bytes follows the header.
    Str(u32),
    Bin(u32),
    /// An extension value: its type and payload length.
    Ext(i8, u32),
    /// An array of this many values follows.
    Array(u32),
    /// A map of this many key/value pairs follows.
    Map(u32),
}

impl Header {
    /// Bytes of payload that follow the header (not counting nested values).
    pub fn payload_len(&self) -> u64 {
        match *self {
            Header::Str(n) | Header::Bin(n) | Header::Ext(_, n) => u64::from(n),
            _ => 0,
        }
    }

    /// How many nested values follow (a map's pairs count twice).
    pub fn children(&self) -> u64 {
        match *self {
            Header::Array(n) => u64::from(n),
            Header::Map(n) => 2 * u64::from(n),
            _ => 0,
        }
    }

    /// A short name for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Header::Nil => "nil",
            Header::Bool(_) => "bool",
            Header::UInt(_) | Header::Int(_) => "integer",
            Header::F32(_) | Header::F64(_) => "float",
            Header::Str(_) => "str",
            Header::Bin(_) => "bin",
            Header::Ext(..) => "ext",
            Header::Array(_) => "array",
            Header::Map(_) => "map",
        }
    }
}

fn be<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at + N)?.try_into().ok()
}

/// Decodes the header at the start of `buf`: `Ok(None)` when `buf` is too short to hold it.
/// Returns the header and its length in bytes.
pub fn header(buf: &[u8]) -> Result<Option<(Header, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    // The markers log records are made of, decoded without the general table below: this
    // function runs for every value of every record (BENCHMARKS.md, "msgpack header").
    match first {
        0xa0..=0xbf => return Ok(Some((Header::Str(u32::from(first & 0x1f)), 1))),
        0x80..=0x8f => return Ok(Some((Header::Map(u32::from(first & 0x0f)), 1))),
        0x90..=0x9f => return Ok(Some((Header::Array(u32::from(first & 0x0f)), 1))),
        0x00..=0x7f => return Ok(Some((Header::UInt(u64::from(first)), 1))),
        0xd9 => {
            return Ok(buf.get(1).map(|&n| (Header::Str(u32::from(n)), 2)));
        }
        _ => {}
    }
    macro_rules! read {
        ($t:ty, $n:expr) => {
            match be::<$n>(buf, 1) {
                Some(b) => <$t>::from_be_bytes(b),
                None => return Ok(None),
            }
        };
    }
    let h = match Marker::from_u8(first) {
        Marker::FixPos(v) => (Header::UInt(u64::from(v)), 1),
        Marker::FixNeg(v) => (Header::Int(i64::from(v)), 1),
        Marker::Null => (Header::Nil, 1),
        Marker::True => (Header::Bool(true), 1),
        Marker::False => (Header::Bool(false), 1),
        Marker::U8 => (Header::UInt(u64::from(read!(u8, 1))), 2),
        Marker::U16 => (Header::UInt(u64::from(read!(u16, 2))), 3),
        Marker::U32 => (Header::UInt(u64::from(read!(u32, 4))), 5),
        Marker::U64 => (Header::UInt(read!(u64, 8)), 9),
        Marker::I8 => (Header::Int(i64::from(read!(i8, 1))), 2),
        Marker::I16 => (Header::Int(i64::from(read!(i16, 2))), 3),
        Marker::I32 => (Header::Int(i64::from(read!(i32, 4))), 5),
        Marker::I64 => (Header::Int(read!(i64, 8)), 9),
        Marker::F32 => (Header::F32(read!(f32, 4)), 5),
        Marker::F64 => (Header::F64(read!(f64, 8)), 9),
        Marker::FixStr(n) => (Header::Str(u32::from(n)), 1),
        Marker::Str8 => (Header::Str(u32::from(read!(u8, 1))), 2),
        Marker::Str16 => (Header::Str(u32::from(read!(u16, 2))), 3),
        Marker::Str32 => (Header::Str(read!(u32, 4)), 5),
        Marker::Bin8 => (Header::Bin(u32::from(read!(u8, 1))), 2),
        Marker::Bin16 => (Header::Bin(u32::from(read!(u16, 2))), 3),
        Marker::Bin32 => (Header::Bin(read!(u32, 4)), 5),
        Marker::FixArray(n) => (Header::Array(u32::from(n)), 1),
        Marker::Array16 => (Header::Array(u32::from(read!(u16, 2))), 3),
        Marker::Array32 => (Header::Array(read!(u32, 4)), 5),
        Marker::FixMap(n) => (Header::Map(u32::from(n)), 1),
        Marker::Map16 => (Header::Map(u32::from(read!(u16, 2))), 3),
        Marker::Map32 => (Header::Map(read!(u32, 4)), 5),
        Marker::FixExt1
        | Marker::FixExt2
        | Marker::FixExt4
        | Marker::FixExt8
        | Marker::FixExt16 => {
            let len = match Marker::from_u8(first) {
                Marker::FixExt1 => 1,
                Marker::FixExt2 => 2,
                Marker::FixExt4 => 4,
                Marker::FixExt8 => 8,
                _ => 16,
            };
            (Header::Ext(read!(i8, 1), len), 2)
        }
        Marker::Ext8 => {
            let Some([len, ty]) = be::<2>(buf, 1) else {
                return Ok(None);
            };
            (Header::Ext(ty as i8, u32::from(len)), 3)
        }
        Marker::Ext16 => {
            let Some([a, b, ty]) = be::<3>(buf, 1) else {
                return Ok(None);
            };
            (
                Header::Ext(ty as i8, u32::from(u16::from_be_bytes([a, b]))),
                4,
            )
        }
        Marker::Ext32 => {
            let Some([a, b, c, d, ty]) = be::<5>(buf, 1) else {
                return Ok(None);
            };
            (Header::Ext(ty as i8, u32::from_be_bytes([a, b, c, d])), 6)
        }
        Marker::Reserved => return Err(DecodeError::InvalidMarker(first)),
    };
    Ok(Some(h))
}

pub mod write;

pub use write::write_str;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_header_form() {
        assert_eq!(header(&[0x05]).unwrap(), Some((Header::UInt(5), 1)));
        assert_eq!(header(&[0xff]).unwrap(), Some((Header::Int(-1), 1)));
        assert_eq!(
            header(&[0xd2, 0x65, 0x53, 0xf1, 0x00]).unwrap(),
            Some((Header::Int(0x6553_f100), 5))
        );
        assert_eq!(header(&[0xce, 0, 0]).unwrap(), None);
        assert_eq!(header(&[0xd7, 0x00]).unwrap(), Some((Header::Ext(0, 8), 2)));
        assert_eq!(
            header(&[0xc7, 0x08, 0x00]).unwrap(),
            Some((Header::Ext(0, 8), 3))
        );
        assert_eq!(
            header(&[0xdb, 0, 0, 1, 0]).unwrap(),
            Some((Header::Str(256), 5))
        );
        assert_eq!(header(&[0xc1]), Err(DecodeError::InvalidMarker(0xc1)));
        assert_eq!(header(&[]).unwrap(), None);
    }
}
