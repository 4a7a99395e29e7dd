//! `record_modifier`: removes keys (`Remove_key`) or keeps only some (`Allowlist_key`), then
//! appends `Record KEY VALUE` pairs and an optional `Uuid_key`, as Fluent Bit does: appended
//! even when the key exists, key matching case-insensitive, a trailing `*` matching a prefix.
//! FireLens adds `ecs_cluster`, `ecs_task_arn` and `ecs_task_definition` this way.

use super::{Filter, FilterOutput, tokens};
use crate::config::{ConfigError, Section};
use crate::record::{Event, Tag};

/// A key pattern: exact (case-insensitive) or a prefix when written with a trailing `*`.
struct KeyPattern {
    text: Box<[u8]>,
    prefix: bool,
}

impl KeyPattern {
    fn new(s: &str) -> Self {
        match s.strip_suffix('*') {
            Some(p) => KeyPattern {
                text: p.as_bytes().into(),
                prefix: true,
            },
            None => KeyPattern {
                text: s.as_bytes().into(),
                prefix: false,
            },
        }
    }

    fn matches(&self, key: &[u8]) -> bool {
        if self.prefix {
            key.len() >= self.text.len() && key[..self.text.len()].eq_ignore_ascii_case(&self.text)
        } else {
            key.eq_ignore_ascii_case(&self.text)
        }
    }
}

/// A `Record KEY VALUE` pair.
type Field = (Box<[u8]>, Box<[u8]>);

pub struct RecordModifier {
    records: Vec<Field>,
    remove: Vec<KeyPattern>,
    allow: Vec<KeyPattern>,
    uuid_key: Option<Box<[u8]>>,
}

impl RecordModifier {
    pub fn from_section(section: &Section) -> Result<Self, ConfigError> {
        let mut records = Vec::new();
        for e in section.all("record") {
            let t = tokens(e, 2)?;
            let [k, v] = t.as_slice() else {
                return Err(ConfigError::new(&e.loc, "Record needs a key and a value"));
            };
            records.push((k.as_bytes().into(), v.as_bytes().into()));
        }
        let remove: Vec<_> = section
            .all("remove_key")
            .map(|e| KeyPattern::new(&e.value))
            .collect();
        let allow: Vec<_> = section
            .all("allowlist_key")
            .chain(section.all("whitelist_key"))
            .map(|e| KeyPattern::new(&e.value))
            .collect();
        if !remove.is_empty() && !allow.is_empty() {
            return Err(ConfigError::new(
                &section.loc,
                "record_modifier: Remove_key and Allowlist_key cannot be used together",
            ));
        }
        Ok(RecordModifier {
            records,
            remove,
            allow,
            uuid_key: section.str("uuid_key").map(|k| k.as_bytes().into()),
        })
    }
}

impl Filter for RecordModifier {
    fn filter(&self, _tag: &Tag, event: Event, out: &mut FilterOutput<'_>) {
        let mut b = out.builder();
        b.copy_fields(event.fields(), |k| {
            if !self.allow.is_empty() {
                self.allow.iter().any(|p| p.matches(k))
            } else {
                !self.remove.iter().any(|p| p.matches(k))
            }
        });
        for (k, v) in &self.records {
            b.str(k, v);
        }
        if let Some(k) = &self.uuid_key {
            b.str(k, uuid_v4().as_bytes());
        }
        let built = b.finish_event(event.time);
        out.emit(built);
    }
}

/// A random (version 4) UUID.
fn uuid_v4() -> String {
    let mut b = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testing::{records, section};

    #[test]
    fn removes_then_appends_as_fluent_bit() {
        let f = RecordModifier::from_section(&section(&[
            ("Remove_key", "host"),
            ("Record", "env prod"),
        ]))
        .unwrap();
        assert_eq!(
            records(&f, &[r#"{"a":1,"Host":"x"}"#]),
            [r#"{"a":1,"env":"prod"}"#]
        );
        // FireLens's ECS fields, with a value that has spaces; an existing key is duplicated.
        let f = RecordModifier::from_section(&section(&[
            ("Record", "ecs_cluster my cluster"),
            ("Record", "a again"),
        ]))
        .unwrap();
        let e = crate::filter::testing::event(r#"{"a":"first"}"#);
        let mut arena = bytes::BytesMut::new();
        let (mut same, mut re) = (Vec::new(), Vec::new());
        f.filter(
            &std::sync::Arc::from("t"),
            e,
            &mut FilterOutput {
                same_tag: &mut same,
                retagged: &mut re,
                arena: &mut arena,
            },
        );
        let pairs: Vec<_> = same[0].fields().map(|p| p.unwrap().0.to_vec()).collect();
        assert_eq!(
            pairs,
            [b"a".to_vec(), b"ecs_cluster".to_vec(), b"a".to_vec()]
        );
        assert_eq!(
            same[0].get("ecs_cluster"),
            Some(crate::msgpack::ValueRef::Str(b"my cluster"))
        );
    }

    #[test]
    fn allowlist_with_prefix_and_uuid() {
        let f = RecordModifier::from_section(&section(&[
            ("Allowlist_key", "keep*"),
            ("Whitelist_key", "LOG"),
            ("Uuid_key", "id"),
        ]))
        .unwrap();
        let out = records(&f, &[r#"{"log":"x","keep_a":1,"drop":2,"keeper":3}"#]);
        let prefix = r#"{"log":"x","keep_a":1,"keeper":3,"id":""#;
        assert!(out[0].starts_with(prefix), "{}", out[0]);
        let id = &out[0][prefix.len()..out[0].len() - 2];
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(
            RecordModifier::from_section(&section(&[("Allowlist_key", "a"), ("Remove_key", "b")]))
                .is_err()
        );
    }
}
