//! A cursor over a complete msgpack value: reads headers and borrows payloads, allocating nothing.

use super::{DecodeError, Header, header};

/// A borrowed view of one msgpack value. Containers keep their encoded bytes (header included)
/// and their element count, so they can be walked again with a [`Reader`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Nil,
    Bool(bool),
    UInt(u64),
    Int(i64),
    F64(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Ext(i8, &'a [u8]),
    /// Element count and the encoded elements (after the header).
    Array(u32, &'a [u8]),
    /// Pair count and the encoded pairs (after the header).
    Map(u32, &'a [u8]),
}

/// Reads values one after another from a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Offset of the next value.
    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Reads the next header without its payload.
    pub fn header(&mut self) -> Result<Header, DecodeError> {
        let (h, len) = header(&self.buf[self.pos..])?.ok_or(DecodeError::Truncated)?;
        self.pos += len;
        Ok(h)
    }

    fn take(&mut self, len: u32) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(len as usize)
            .filter(|&end| end <= self.buf.len())
            .ok_or(DecodeError::Truncated)?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// Skips one whole value, nested values included, and returns its encoded bytes.
    pub fn skip(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let mut owed: u64 = 1;
        while owed > 0 {
            let h = self.header()?;
            self.take(h.payload_len() as u32)?;
            owed = owed - 1 + h.children();
        }
        Ok(&self.buf[start..self.pos])
    }

    /// Reads one value; containers are skipped over and returned as their encoded body.
    pub fn value(&mut self) -> Result<ValueRef<'a>, DecodeError> {
        let h = self.header()?;
        Ok(match h {
            Header::Nil => ValueRef::Nil,
            Header::Bool(b) => ValueRef::Bool(b),
            Header::UInt(v) => ValueRef::UInt(v),
            Header::Int(v) if v >= 0 => ValueRef::UInt(v as u64),
            Header::Int(v) => ValueRef::Int(v),
            Header::F32(v) => ValueRef::F64(f64::from(v)),
            Header::F64(v) => ValueRef::F64(v),
            Header::Str(n) => ValueRef::Str(self.take(n)?),
            Header::Bin(n) => ValueRef::Bin(self.take(n)?),
            Header::Ext(t, n) => ValueRef::Ext(t, self.take(n)?),
            Header::Array(n) | Header::Map(n) => {
                let start = self.pos;
                for _ in 0..h.children() {
                    self.skip()?;
                }
                let body = &self.buf[start..self.pos];
                if matches!(h, Header::Array(_)) {
                    ValueRef::Array(n, body)
                } else {
                    ValueRef::Map(n, body)
                }
            }
        })
    }

    /// Reads a string or binary value (msgpack senders use either for text).
    pub fn str_or_bin(&mut self) -> Result<&'a [u8], DecodeError> {
        match self.value()? {
            ValueRef::Str(s) | ValueRef::Bin(s) => Ok(s),
            other => Err(DecodeError::Type {
                expected: "str",
                found: other.type_name(),
            }),
        }
    }
}

impl ValueRef<'_> {
    pub fn type_name(&self) -> &'static str {
        match self {
            ValueRef::Nil => "nil",
            ValueRef::Bool(_) => "bool",
            ValueRef::UInt(_) | ValueRef::Int(_) => "integer",
            ValueRef::F64(_) => "float",
            ValueRef::Str(_) => "str",
            ValueRef::Bin(_) => "bin",
            ValueRef::Ext(..) => "ext",
            ValueRef::Array(..) => "array",
            ValueRef::Map(..) => "map",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_values_and_skips_containers() {
        // [{"a": [1, 2]}, "x"]
        let buf = [0x92, 0x81, 0xa1, b'a', 0x92, 0x01, 0x02, 0xa1, b'x'];
        let mut r = Reader::new(&buf);
        assert_eq!(r.header().unwrap(), Header::Array(2));
        let map = r.value().unwrap();
        assert_eq!(map, ValueRef::Map(1, &buf[2..7]));
        assert_eq!(r.str_or_bin().unwrap(), b"x");
        assert!(r.is_empty());
    }

    #[test]
    fn truncated_payloads_are_errors() {
        let mut r = Reader::new(&[0xa5, b'a']);
        assert_eq!(r.value(), Err(DecodeError::Truncated));
        let mut r = Reader::new(&[0x92, 0x01]);
        assert_eq!(r.skip(), Err(DecodeError::Truncated));
    }
}
