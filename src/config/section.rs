//! One `[SECTION]` of a config: its entries with where each was written, and typed accessors
//! that remember which keys were read, so keys nobody read can be reported.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::value::{self, RetryLimit};

/// Where a config line is: `file:line`. Line 0 means the whole file or the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<Path>,
    pub line: usize,
}

impl Location {
    pub fn new(file: Arc<Path>, line: usize) -> Self {
        Location { file, line }
    }

    /// For sections built from command-line flags.
    pub fn command_line() -> Self {
        Location {
            file: Arc::from(Path::new("command line")),
            line: 0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)
        }
    }
}

/// A config error, always with the place it refers to.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{loc}: {message}")]
pub struct ConfigError {
    pub loc: Location,
    pub message: String,
}

impl ConfigError {
    pub fn new(loc: &Location, message: impl Into<String>) -> Self {
        ConfigError {
            loc: loc.clone(),
            message: message.into(),
        }
    }
}

/// The kinds of section the classic format has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    Service,
    Input,
    Filter,
    Output,
    Parser,
    MultilineParser,
}

impl SectionKind {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "SERVICE" => SectionKind::Service,
            "INPUT" => SectionKind::Input,
            "FILTER" => SectionKind::Filter,
            "OUTPUT" => SectionKind::Output,
            "PARSER" => SectionKind::Parser,
            "MULTILINE_PARSER" => SectionKind::MultilineParser,
            _ => return None,
        })
    }

    /// The word used in messages: "input plugin 'x' is not known".
    pub fn noun(self) -> &'static str {
        match self {
            SectionKind::Service => "service",
            SectionKind::Input => "input",
            SectionKind::Filter => "filter",
            SectionKind::Output => "output",
            SectionKind::Parser => "parser",
            SectionKind::MultilineParser => "multiline parser",
        }
    }
}

/// One `Key value` line.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub loc: Location,
}

/// A section and its entries in file order.
#[derive(Debug, Clone)]
pub struct Section {
    pub kind: SectionKind,
    pub loc: Location,
    entries: Vec<Entry>,
    used: Vec<Cell<bool>>,
    /// Warnings plugins raised while reading it, shown once logging is up (see [`Section::warn`]).
    warnings: RefCell<Vec<String>>,
}

impl Section {
    pub fn new(kind: SectionKind, loc: Location) -> Self {
        Section {
            kind,
            loc,
            entries: Vec::new(),
            used: Vec::new(),
            warnings: RefCell::new(Vec::new()),
        }
    }

    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>, loc: Location) {
        self.entries.push(Entry {
            key: key.into(),
            value: value.into(),
            loc,
        });
        self.used.push(Cell::new(false));
    }

    /// Records a warning about this section's settings. Plugins are built before the router's
    /// log is set up, so warnings are collected and shown with the config's own.
    pub fn warn(&self, message: impl Into<String>) {
        self.warnings.borrow_mut().push(message.into());
    }

    /// The warnings recorded so far, leaving none.
    pub fn take_warnings(&self) -> Vec<String> {
        self.warnings.take()
    }

    /// Every entry named `key` (any case), marking them read.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .zip(&self.used)
            .filter(move |(e, _)| e.key.eq_ignore_ascii_case(key))
            .map(|(e, used)| {
                used.set(true);
                e
            })
    }

    /// The last entry named `key`: a later line overrides an earlier one.
    pub fn entry<'a>(&'a self, key: &'a str) -> Option<&'a Entry> {
        self.all(key).last()
    }

    pub fn str<'a>(&'a self, key: &'a str) -> Option<&'a str> {
        self.entry(key).map(|e| e.value.as_str())
    }

    /// The plugin name (`Name`), lower-cased.
    pub fn name(&self) -> Result<String, ConfigError> {
        match self.str("name") {
            Some(n) if !n.is_empty() => Ok(n.to_ascii_lowercase()),
            _ => Err(ConfigError::new(
                &self.loc,
                format!(
                    "[{}] section has no 'Name'",
                    self.kind.noun().to_uppercase()
                ),
            )),
        }
    }

    /// Parses `key` with `parse`; a bad value is an error at the key's line.
    pub fn parse<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.entry(key) {
            None => Ok(None),
            Some(e) => parse(&e.value)
                .map(Some)
                .map_err(|msg| ConfigError::new(&e.loc, format!("{}: {msg}", e.key))),
        }
    }

    pub fn size(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        self.parse(key, value::parse_size)
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        Ok(self.parse(key, value::parse_bool)?.unwrap_or(default))
    }

    pub fn duration(&self, key: &str, default: Duration) -> Result<Duration, ConfigError> {
        Ok(self.parse(key, value::parse_duration)?.unwrap_or(default))
    }

    /// A TCP port number.
    pub fn port(&self, key: &str) -> Result<Option<u16>, ConfigError> {
        self.parse(key, |s| {
            s.trim()
                .parse::<u16>()
                .map_err(|_| format!("'{s}' is not a port number"))
        })
    }

    pub fn uint(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        self.parse(key, value::parse_uint)
    }

    pub fn retry_limit(&self) -> Result<RetryLimit, ConfigError> {
        Ok(self
            .parse("retry_limit", value::parse_retry_limit)?
            .unwrap_or(RetryLimit::DEFAULT))
    }

    /// Entries no accessor has read: keys the plugin does not know.
    pub fn unread(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .zip(&self.used)
            .filter(|(_, used)| !used.get())
            .map(|(e, _)| e)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> Section {
        let file: Arc<Path> = Arc::from(Path::new("t.conf"));
        let mut s = Section::new(SectionKind::Input, Location::new(file.clone(), 1));
        s.push("Name", "forward", Location::new(file.clone(), 2));
        s.push("Buffer_Max_Size", "lots", Location::new(file.clone(), 3));
        s.push("PORT", "1", Location::new(file.clone(), 4));
        s.push("port", "2", Location::new(file, 5));
        s
    }

    #[test]
    fn keys_are_case_insensitive_and_later_lines_win() {
        let s = section();
        assert_eq!(s.name().unwrap(), "forward");
        assert_eq!(s.str("Port"), Some("2"));
    }

    #[test]
    fn bad_values_name_the_line() {
        let err = section().size("buffer_max_size").unwrap_err();
        assert_eq!(err.loc.line, 3);
        assert!(
            err.to_string()
                .starts_with("t.conf:3: Buffer_Max_Size: 'lots' is not a size")
        );
    }

    #[test]
    fn unread_keys_are_reported() {
        let s = section();
        s.name().unwrap();
        let unread: Vec<_> = s.unread().map(|e| e.key.as_str()).collect();
        assert_eq!(unread, vec!["Buffer_Max_Size", "PORT", "port"]);
    }
}
