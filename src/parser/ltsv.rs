//! LTSV: `label:value` fields separated by tabs.

/// Calls `field` for each `label:value`. Returns false if a field has no `:` or an empty label.
pub fn pairs<'a>(text: &'a [u8], mut field: impl FnMut(&'a [u8], &'a [u8])) -> bool {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    if text.is_empty() {
        return false;
    }
    for part in text.split(|&b| b == b'\t') {
        match part.iter().position(|&b| b == b':') {
            Some(0) | None => return false,
            Some(i) => field(&part[..i], &part[i + 1..]),
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_values() {
        let mut got = Vec::new();
        assert!(pairs(
            b"host:127.0.0.1\ttime:[10/Oct/2000:13:55:36 -0700]\treq:GET / HTTP/1.0",
            |k, v| got.push((k, v))
        ));
        assert_eq!(got[1], (&b"time"[..], &b"[10/Oct/2000:13:55:36 -0700]"[..]));
        assert_eq!(got[2].1, b"GET / HTTP/1.0");
        assert!(!pairs(b"no label here", |_, _| {}));
        assert!(!pairs(b":empty", |_, _| {}));
    }
}
