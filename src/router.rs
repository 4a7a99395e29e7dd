//! `Match` and `Match_Regex`: which tags a filter or output takes, with Fluent Bit's semantics.
//!
//! `Match` is a wildcard where `*` matches any run of bytes, dots included (`**` is the same as
//! `*`), case-sensitive, over the whole tag. `Match_Regex` is anchored at the start of the tag
//! only and must match at least one byte (Fluent Bit runs Onigmo's `onig_match` at offset 0).
//! When both are set, either one matching is enough.

use regex::Regex;

use crate::config::{ConfigError, Section};

#[derive(Debug, Clone)]
pub struct Matcher {
    wildcard: Option<String>,
    regex: Option<Regex>,
}

impl Matcher {
    /// A matcher from a section's `Match`/`Match_Regex`; `None` when the section has neither.
    pub fn from_section(section: &Section) -> Result<Option<Self>, ConfigError> {
        let wildcard = section.str("match").map(str::to_string);
        let regex = match section.entry("match_regex") {
            None => None,
            Some(e) => Some(Regex::new(&format!("^(?:{})", e.value)).map_err(|err| {
                ConfigError::new(
                    &e.loc,
                    format!("Match_Regex '{}' is invalid: {err}", e.value),
                )
            })?),
        };
        if wildcard.is_none() && regex.is_none() {
            return Ok(None);
        }
        Ok(Some(Matcher { wildcard, regex }))
    }

    pub fn wildcard(pattern: &str) -> Self {
        Matcher {
            wildcard: Some(pattern.to_string()),
            regex: None,
        }
    }

    pub fn matches(&self, tag: &str) -> bool {
        if let Some(re) = &self.regex
            && re.find(tag).is_some_and(|m| !m.is_empty())
        {
            return true;
        }
        self.wildcard
            .as_deref()
            .is_some_and(|p| wildcard_match(p.as_bytes(), tag.as_bytes()))
    }

    /// The rule as written, for messages.
    pub fn describe(&self) -> String {
        match (&self.wildcard, &self.regex) {
            (Some(w), None) => format!("Match {w}"),
            (None, Some(r)) => format!("Match_Regex {}", &r.as_str()[4..r.as_str().len() - 1]),
            (Some(w), Some(r)) => format!(
                "Match {w} or Match_Regex {}",
                &r.as_str()[4..r.as_str().len() - 1]
            ),
            (None, None) => "nothing".to_string(),
        }
    }
}

/// Glob match where `*` is the only special byte. Iterative with one backtrack point, so it is
/// linear in practice and never recursive.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_fluent_bit() {
        assert!(wildcard_match(b"*", b""));
        assert!(wildcard_match(b"*", b"a.b.c"));
        assert!(wildcard_match(b"**", b"a.b"));
        assert!(wildcard_match(b"app.*", b"app."));
        assert!(wildcard_match(b"app.*", b"app.a.b"));
        assert!(wildcard_match(b"a*c", b"abcbc"));
        assert!(wildcard_match(b"web-firelens*", b"web-firelens-5f2a"));
        assert!(!wildcard_match(b"*.log", b"x.log.1"));
        assert!(!wildcard_match(b"App.*", b"app.x"));
        assert!(!wildcard_match(b"app", b"app.x"));
    }

    #[test]
    fn regex_is_anchored_at_the_start_only() {
        let m = Matcher {
            wildcard: None,
            regex: Some(Regex::new("^(?:app)").unwrap()),
        };
        assert!(m.matches("app.log"));
        assert!(!m.matches("my.app"));
        let m = Matcher {
            wildcard: None,
            regex: Some(Regex::new("^(?:log$)").unwrap()),
        };
        assert!(!m.matches("app.log"));
        let empty = Matcher {
            wildcard: None,
            regex: Some(Regex::new("^(?:x*)").unwrap()),
        };
        assert!(!empty.matches("abc"), "a zero-length match is no match");
        assert_eq!(empty.describe(), "Match_Regex x*");
    }
}
