//! logfmt: `key=value key2="quoted value" flag`, pairs separated by spaces.

/// Bytes that separate logfmt tokens (Fluent Bit skips them between pairs).
fn garbage(b: u8) -> bool {
    b <= b' ' || b == b'"' || b == b'='
}

/// Calls `field` for each pair of the first line; a bare key (or `key=` with nothing after it)
/// gets `None`. Quoted values have their escapes undone into `scratch`; an unclosed quote runs
/// to the end. Returns whether any pair was found.
pub fn pairs<'a>(
    text: &'a [u8],
    scratch: &mut Vec<u8>,
    mut field: impl FnMut(&'a [u8], Option<&[u8]>),
) -> bool {
    let line_end = text.iter().position(|&b| b == b'\n').unwrap_or(text.len());
    let text = &text[..line_end];
    let mut i = 0;
    let mut any = false;
    loop {
        while i < text.len() && garbage(text[i]) {
            i += 1;
        }
        if i >= text.len() {
            return any;
        }
        let key_start = i;
        while i < text.len() && !garbage(text[i]) {
            i += 1;
        }
        let key = &text[key_start..i];
        any = true;
        if i >= text.len() || text[i] != b'=' {
            field(key, None);
            continue;
        }
        i += 1; // '='
        match text.get(i) {
            Some(b'"') => {
                i += 1;
                scratch.clear();
                while let Some(&c) = text.get(i) {
                    i += 1;
                    match c {
                        b'"' => break,
                        b'\\' if i < text.len() => {
                            scratch.push(match text[i] {
                                b'n' => b'\n',
                                b't' => b'\t',
                                b'r' => b'\r',
                                other => other,
                            });
                            i += 1;
                        }
                        _ => scratch.push(c),
                    }
                }
                field(key, Some(scratch));
            }
            Some(&c) if !garbage(c) => {
                let v_start = i;
                while i < text.len() && !garbage(text[i]) {
                    i += 1;
                }
                field(key, Some(&text[v_start..i]));
            }
            _ => field(key, None),
        }
    }
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
    fn fluent_bit_edge_cases() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            parse(r#"a="unterminated"#).unwrap(),
            vec![("a".into(), s("unterminated"))]
        );
        assert_eq!(
            parse("k= x=1").unwrap(),
            vec![("k".into(), None), ("x".into(), s("1"))]
        );
        assert_eq!(parse("a=1\nb=2").unwrap(), vec![("a".into(), s("1"))]);
        assert!(parse("   ").is_none());
    }
}
