//! LTSV: `label:value` fields separated by tabs.

fn label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Calls `field` for each `label:value` of the first line. As Fluent Bit does, a field with a bad
/// label or no `:` ends the record there; returns whether any field was found.
pub fn pairs<'a>(text: &'a [u8], mut field: impl FnMut(&'a [u8], &'a [u8])) -> bool {
    let end = text
        .iter()
        .position(|&b| matches!(b, b'\n' | b'\r' | 0))
        .unwrap_or(text.len());
    let mut any = false;
    for part in text[..end].split(|&b| b == b'\t') {
        let label_len = part.iter().take_while(|&&b| label_byte(b)).count();
        if label_len == 0 || part.get(label_len) != Some(&b':') {
            break;
        }
        field(&part[..label_len], &part[label_len + 1..]);
        any = true;
    }
    any
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
        let mut got = Vec::new();
        assert!(pairs(b"a:1\tbad label:2\tc:3", |k, v| got.push((k, v))));
        assert_eq!(got, vec![(&b"a"[..], &b"1"[..])], "stops at the bad label");
    }
}
