//! JSON text to msgpack, streamed by serde without building a tree, keeping key order.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::msgpack::write;

/// Converts a JSON object to an encoded msgpack map in `out`. `None` if `text` is not one
/// JSON object (with only whitespace after it).
pub fn object_to_msgpack(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let first = text.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    Value(out).deserialize(&mut de).ok()?;
    de.end().ok()
}

/// Writes the next JSON value as msgpack.
struct Value<'a>(&'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for Value<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// Placeholder 32-bit container header, patched once the count is known.
fn open(out: &mut Vec<u8>, marker: u8) -> usize {
    out.extend_from_slice(&[marker, 0, 0, 0, 0]);
    out.len() - 4
}

fn close(out: &mut [u8], at: usize, count: u32) {
    out[at..at + 4].copy_from_slice(&count.to_be_bytes());
}

impl<'de> Visitor<'de> for Value<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        write::write_bool(self.0, v);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        write::write_int(self.0, v);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        write::write_uint(self.0, v);
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        write::write_f64(self.0, v);
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        write::write_str(self.0, v.as_bytes());
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        write::write_nil(self.0);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let at = open(self.0, 0xdd);
        let mut n = 0u32;
        while seq.next_element_seed(Value(self.0))?.is_some() {
            n += 1;
        }
        close(self.0, at, n);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let at = open(self.0, 0xdf);
        let mut n = 0u32;
        while map.next_key_seed(Key(self.0))?.is_some() {
            map.next_value_seed(Value(self.0))?;
            n += 1;
        }
        close(self.0, at, n);
        Ok(())
    }
}

/// Writes a JSON object key as a msgpack string.
struct Key<'a>(&'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        write::write_str(self.0, v.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack::json::JsonStyle;

    fn roundtrip(text: &str) -> Option<String> {
        let mut mp = Vec::new();
        object_to_msgpack(text.as_bytes(), &mut mp)?;
        let mut out = Vec::new();
        JsonStyle {
            escape_unicode: false,
        }
        .value(&mut out, &mp);
        Some(String::from_utf8(out).unwrap())
    }

    #[test]
    fn objects_keep_key_order_and_types() {
        assert_eq!(
            roundtrip(r#" {"z":1,"a":[true,null,-2,1.5,"s"],"m":{"k":"v"}} "#).as_deref(),
            Some(r#"{"z":1,"a":[true,null,-2,1.5,"s"],"m":{"k":"v"}}"#)
        );
    }

    #[test]
    fn only_whole_objects_are_accepted() {
        assert_eq!(roundtrip("[1,2]"), None);
        assert_eq!(roundtrip("\"x\""), None);
        assert_eq!(roundtrip("{\"a\":1} trailing"), None);
        assert_eq!(roundtrip("{\"a\":"), None);
        assert_eq!(roundtrip(""), None);
    }

    #[test]
    fn numbers_come_out_as_they_went_in() {
        // The two doubles the review found one unit off, random ones, and integer edges.
        // Floats are written with 16 significant digits (C's %.16g, as Fluent Bit), so every
        // double given with at most 16 digits must come out as the same double.
        let mut numbers = vec![
            "0.9219680153833101".to_string(),
            "0.9730747170467917".to_string(),
            "2.225073858507201e-308".to_string(),
            "4.940656458412465e-324".to_string(),
            "1.797693134862315e308".to_string(),
            i64::MIN.to_string(),
            i64::MAX.to_string(),
            u64::MAX.to_string(),
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let v = f64::from_bits(rng.u64(..));
            if v.is_finite() && v != 0.0 {
                numbers.push(format!("{v:.15e}"));
            }
            numbers.push(format!("{:.15e}", rng.f64() * 10f64.powi(rng.i32(-20..20))));
        }
        for n in numbers {
            let text = format!("{{\"n\":{n}}}");
            let got = roundtrip(&text).unwrap();
            let back = got.trim_start_matches("{\"n\":").trim_end_matches('}');
            if n.contains(['.', 'e', 'E']) {
                let (want, have): (f64, f64) = (n.parse().unwrap(), back.parse().unwrap());
                assert_eq!(want.to_bits(), have.to_bits(), "{n} came out as {back}");
            } else {
                assert_eq!(back, n);
            }
        }
    }
}
