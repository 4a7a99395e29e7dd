//! logfmt: `key=value key2="quoted value" flag`, pairs separated by spaces.

/// Calls `field` for each pair; a bare key gets `None`. Quoted values have `\"` and `\\`
/// unescaped into `scratch`. Returns false if the text is not logfmt (an unterminated quote,
/// a pair with no key).
pub fn pairs<'a>(
    text: &'a [u8],
    scratch: &mut Vec<u8>,
    mut field: impl FnMut(&'a [u8], Option<&[u8]>),
) -> bool {
    let mut i = 0;
    let mut any = false;
    while i < text.len() {
        while i < text.len() && text[i] <= b' ' {
            i += 1;
        }
        if i >= text.len() {
            break;
        }
        let key_start = i;
        while i < text.len() && text[i] > b' ' && text[i] != b'=' && text[i] != b'"' {
            i += 1;
        }
        let key = &text[key_start..i];
        if key.is_empty() {
            return false;
        }
        any = true;
        if i >= text.len() || text[i] != b'=' {
            field(key, None);
            continue;
        }
        i += 1; // '='
        if i < text.len() && text[i] == b'"' {
            i += 1;
            scratch.clear();
            loop {
                match text.get(i) {
                    None => return false,
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < text.len() => {
                        scratch.push(match text[i + 1] {
                            b'n' => b'\n',
                            b't' => b'\t',
                            b'r' => b'\r',
                            c => c,
                        });
                        i += 2;
                    }
                    Some(&c) => {
                        scratch.push(c);
                        i += 1;
                    }
                }
            }
            field(key, Some(scratch));
        } else {
            let v_start = i;
            while i < text.len() && text[i] > b' ' {
                i += 1;
            }
            field(key, Some(&text[v_start..i]));
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Option<Vec<(String, Option<String>)>> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let ok = pairs(s.as_bytes(), &mut scratch, |k, v| {
            out.push((
                String::from_utf8_lossy(k).into_owned(),
                v.map(|v| String::from_utf8_lossy(v).into_owned()),
            ))
        });
        ok.then_some(out)
    }

    #[test]
    fn pairs_quotes_and_flags() {
        let got = parse(r#"level=info msg="hello \"world\"" took=5ms debug empty="""#).unwrap();
        let want = [
            ("level", Some("info")),
            ("msg", Some("hello \"world\"")),
            ("took", Some("5ms")),
            ("debug", None),
            ("empty", Some("")),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn not_logfmt() {
        assert!(parse(r#"a="unterminated"#).is_none());
        assert!(parse("=value").is_none());
        assert!(parse("   ").is_none());
    }
}
