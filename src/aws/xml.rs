//! Just enough XML for the answers of S3 and STS, whose shapes are fixed: the text of the first
//! element with a given name, and escaping for the few bodies the router writes.

/// The unescaped text of the first `<name>…</name>` element of `doc`.
pub fn xml_text(doc: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = doc.find(&open)? + open.len();
    let len = doc[start..].find(&close)?;
    Some(unescape(&doc[start..start + len]))
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `s` with `&`, `<` and `>` escaped, for element text.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_of_the_first_element_unescaped() {
        let doc = "<Error><Code>AccessDenied</Code><Message>a &amp; b &lt;c&gt; &#x41;&#66; &bogus; &</Message></Error>";
        assert_eq!(xml_text(doc, "Code").as_deref(), Some("AccessDenied"));
        assert_eq!(
            xml_text(doc, "Message").as_deref(),
            Some("a & b <c> AB &bogus; &")
        );
        assert_eq!(xml_text(doc, "Missing"), None);
        assert_eq!(xml_escape("\"e&t<>\""), "\"e&amp;t&lt;&gt;\"");
    }
}
