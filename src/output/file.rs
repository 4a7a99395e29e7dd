//! `file`: appends events to a file per tag (or the one named by `File`) under `Path`, in Fluent
//! Bit's formats:
//!
//! - `out_file` (default): `tag: [SEC.NNNNNNNNN, {"k":"v"}]`;
//! - `plain`: the record as one JSON line;
//! - `msgpack`: each event as `[[EventTime, {}], record]`, Fluent Bit's chunk layout.
//!
//! The file is opened for each flush in append mode and closed after, so it can be rotated
//! or removed under the router. Failing to open or write is retried: the disk may come back.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use async_trait::async_trait;

use super::{Chunk, FlushError, JsonRecord, Output};
use crate::config::{ConfigError, Section, Service};
use crate::msgpack::json::JsonStyle;
use crate::record::Event;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    OutFile,
    Plain,
    Msgpack,
}

pub struct File {
    dir: Option<PathBuf>,
    file: Option<String>,
    format: Format,
    mkdir: bool,
    json: JsonStyle,
}

impl File {
    pub fn from_section(section: &Section, service: &Service) -> Result<Self, ConfigError> {
        let format = section
            .parse("format", |s| match s.to_ascii_lowercase().as_str() {
                "out_file" => Ok(Format::OutFile),
                "plain" => Ok(Format::Plain),
                "msgpack" => Ok(Format::Msgpack),
                "csv" | "ltsv" | "template" => Err(format!("format '{s}' is not supported yet")),
                _ => Err(format!(
                    "'{s}' is not a file format (out_file, plain, msgpack)"
                )),
            })?
            .unwrap_or(Format::OutFile);
        Ok(File {
            dir: section
                .str("path")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            file: section.str("file").map(str::to_string),
            format,
            mkdir: section.bool("mkdir", false)?,
            json: JsonRecord::from_section(section, "date", service)?.style,
        })
    }

    fn path_for(&self, tag: &str) -> PathBuf {
        let name = match &self.file {
            Some(f) => f.clone(),
            None => sanitize_tag(tag),
        };
        match &self.dir {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        }
    }

    fn render(&self, out: &mut Vec<u8>, tag: &str, event: &Event) {
        match self.format {
            Format::OutFile => {
                let _ = write!(
                    out,
                    "{tag}: [{}.{:09}, ",
                    event.time.secs(),
                    event.time.subsec_nanos()
                );
                self.json.value(out, &event.record);
                out.extend_from_slice(b"]\n");
            }
            Format::Plain => {
                self.json.value(out, &event.record);
                out.push(b'\n');
            }
            Format::Msgpack => {
                let t = event.time;
                let mut ext = [0u8; 8];
                ext[..4].copy_from_slice(&(t.secs() as u32).to_be_bytes());
                ext[4..].copy_from_slice(&t.subsec_nanos().to_be_bytes());
                out.extend_from_slice(&[0x92, 0x92, 0xd7, 0x00]);
                out.extend_from_slice(&ext);
                out.push(0x80);
                out.extend_from_slice(&event.record);
            }
        }
    }
}

/// A tag made safe as a file name, as Fluent Bit does: path separators split it, `.`/`..` parts
/// become `_`, characters outside `[A-Za-z0-9._-]` become `_`.
fn sanitize_tag(tag: &str) -> String {
    let parts: Vec<String> = tag
        .split(['/', '\\'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            if p == "." || p == ".." {
                "_".to_string()
            } else {
                p.chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect()
            }
        })
        .collect();
    if parts.is_empty() {
        "_".to_string()
    } else {
        parts.join("_")
    }
}

#[async_trait]
impl Output for File {
    async fn flush(&self, chunk: &mut Chunk) -> Result<(), FlushError> {
        let chunk = chunk.batches();
        // One buffer per destination file, in arrival order within each file.
        let mut files: BTreeMap<PathBuf, Vec<u8>> = BTreeMap::new();
        for batch in chunk {
            let buf = files.entry(self.path_for(&batch.tag)).or_default();
            for event in &batch.events {
                self.render(buf, &batch.tag, event);
            }
        }
        let mkdir = self.mkdir;
        tokio::task::spawn_blocking(move || {
            for (path, bytes) in files {
                append(&path, &bytes, mkdir)
                    .map_err(|e| FlushError::Retry(format!("{}: {e}", path.display())))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| FlushError::Retry(format!("file writer task failed: {e}")))?
    }
}

fn append(path: &std::path::Path, bytes: &[u8], mkdir: bool) -> std::io::Result<()> {
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    };
    let mut f = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && mkdir => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            open()?
        }
        other => other?,
    };
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::{Location, SectionKind};
    use crate::record::EventTime;

    fn file(format: &str) -> File {
        let mut s = Section::new(SectionKind::Output, Location::command_line());
        s.push("format", format, Location::command_line());
        File::from_section(&s, &Service::default()).unwrap()
    }

    #[test]
    fn line_formats() {
        let e = Event::from_pairs(EventTime::from_parts(1_700_000_000, 5), &[("k", "v")]);
        let render = |f: &str| {
            let mut out = Vec::new();
            file(f).render(&mut out, "app.x", &e);
            out
        };
        assert_eq!(
            render("out_file"),
            b"app.x: [1700000000.000000005, {\"k\":\"v\"}]\n"
        );
        assert_eq!(render("plain"), b"{\"k\":\"v\"}\n");
        let mut want = vec![0x92, 0x92, 0xd7, 0x00];
        want.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        want.extend_from_slice(&5u32.to_be_bytes());
        want.push(0x80);
        want.extend_from_slice(&e.record);
        assert_eq!(render("msgpack"), want);
    }

    #[test]
    fn tags_become_safe_file_names() {
        assert_eq!(sanitize_tag("app.web-1"), "app.web-1");
        assert_eq!(sanitize_tag("../etc/passwd"), "__etc_passwd");
        assert_eq!(sanitize_tag("a b:c"), "a_b_c");
        assert_eq!(sanitize_tag("/"), "_");
    }
}
