//! Reads Fluent Bit's classic format into sections: `[SECTION]` headers, indented `Key value`
//! lines, `#` comments, `@INCLUDE` (relative to the including file, globs allowed), `@SET` and
//! `${VAR}` expansion (from `@SET`, then the environment).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::section::{ConfigError, Location, Section, SectionKind};

/// Deepest `@INCLUDE` chain, to stop include cycles.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Sections read from a file and everything it includes, in order.
#[derive(Debug, Default)]
pub struct Loader {
    pub sections: Vec<Section>,
    vars: HashMap<String, String>,
    /// Variables used but defined nowhere (expanded to empty, as Fluent Bit does): warned about.
    pub undefined_vars: Vec<(String, Location)>,
}

impl Loader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `path` and its includes, appending their sections.
    pub fn load_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        self.load(path, None, 0)
    }

    fn load(
        &mut self,
        path: &Path,
        from: Option<&Location>,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let file: Arc<Path> = Arc::from(path);
        let whole = Location::new(file.clone(), 0);
        if depth > MAX_INCLUDE_DEPTH {
            return Err(ConfigError::new(
                from.unwrap_or(&whole),
                format!("@INCLUDE nested deeper than {MAX_INCLUDE_DEPTH} (an include cycle?)"),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            let what = format!("cannot read config file '{}': {e}", path.display());
            ConfigError::new(from.unwrap_or(&whole), what)
        })?;

        // Indentation of entries: as in Fluent Bit, the first entry of a file sets it for the file.
        let mut indent: Option<&str> = None;
        for (n, raw) in text.lines().enumerate() {
            let loc = Location::new(file.clone(), n + 1);
            let line = raw.trim_end();
            let body = line.trim_start();
            if body.is_empty() || body.starts_with('#') {
                continue;
            }
            let lead = &line[..line.len() - body.len()];

            if let Some(rest) = strip_directive(body, "@include") {
                self.include(&file, rest, &loc, depth)?;
                continue;
            }
            if let Some(rest) = strip_directive(body, "@set") {
                let (k, v) = rest
                    .split_once('=')
                    .ok_or_else(|| ConfigError::new(&loc, "@SET needs KEY=VALUE"))?;
                let v = self.expand(v.trim(), &loc);
                self.vars.insert(k.trim().to_string(), v);
                continue;
            }
            if let Some(name) = body.strip_prefix('[') {
                let name = name.strip_suffix(']').ok_or_else(|| {
                    ConfigError::new(&loc, format!("section header '{body}' has no closing ']'"))
                })?;
                let kind = SectionKind::from_name(name.trim()).ok_or_else(|| {
                    ConfigError::new(&loc, format!("unknown section [{}]", name.trim()))
                })?;
                self.sections.push(Section::new(kind, loc));
                continue;
            }

            let (key, value) = match body.split_once(|c: char| c.is_whitespace()) {
                Some((k, v)) => (k, v.trim()),
                None => (body, ""),
            };
            // Errors name the key, never the value: it may be a secret.
            let Some(section) = self.sections.last_mut() else {
                return Err(ConfigError::new(
                    &loc,
                    format!("key '{key}' is outside any [SECTION]"),
                ));
            };
            if lead.is_empty() {
                return Err(ConfigError::new(
                    &loc,
                    format!("key '{key}' must be indented under its section header"),
                ));
            }
            match indent {
                None => indent = Some(lead),
                Some(i) if i != lead => {
                    return Err(ConfigError::new(
                        &loc,
                        "invalid indentation level: entries must be indented like the first entry of the file",
                    ));
                }
                Some(_) => {}
            }
            if value.is_empty() {
                return Err(ConfigError::new(&loc, format!("key '{key}' has no value")));
            }
            let value = expand_vars(value, &self.vars, &mut self.undefined_vars, &loc);
            section.push(key, value, loc);
        }
        Ok(())
    }

    fn expand(&mut self, value: &str, loc: &Location) -> String {
        expand_vars(value, &self.vars, &mut self.undefined_vars, loc)
    }

    fn include(
        &mut self,
        file: &Path,
        pattern: &str,
        loc: &Location,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let pattern = self.expand(pattern.trim(), loc);
        if pattern.is_empty() {
            return Err(ConfigError::new(loc, "@INCLUDE needs a file name"));
        }
        let path = resolve(file, &pattern);
        let is_glob = pattern.contains(['*', '?', '[']);
        if !is_glob {
            if !path.exists() {
                return Err(ConfigError::new(
                    loc,
                    format!("@INCLUDE file '{}' does not exist", path.display()),
                ));
            }
            return self.load(&path, Some(loc), depth + 1);
        }
        let matches = glob::glob(&path.to_string_lossy())
            .map_err(|e| ConfigError::new(loc, format!("bad @INCLUDE pattern: {e}")))?;
        let mut paths: Vec<PathBuf> = matches.filter_map(Result::ok).collect();
        if paths.is_empty() {
            return Err(ConfigError::new(
                loc,
                format!("@INCLUDE pattern '{}' matches no file", path.display()),
            ));
        }
        paths.sort();
        for p in paths {
            self.load(&p, Some(loc), depth + 1)?;
        }
        Ok(())
    }
}

/// `path` as written in `file`: absolute paths stay, relative ones are taken from the file's folder.
pub fn resolve(file: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        file.parent().unwrap_or(Path::new(".")).join(p)
    }
}

fn strip_directive<'a>(line: &'a str, directive: &str) -> Option<&'a str> {
    let head = line.get(..directive.len())?;
    let rest = &line[directive.len()..];
    (head.eq_ignore_ascii_case(directive) && rest.starts_with(char::is_whitespace)).then_some(rest)
}

/// Replaces `${NAME}` with a `@SET` value or the environment variable; an undefined name becomes
/// empty and is recorded.
fn expand_vars(
    value: &str,
    vars: &HashMap<String, String>,
    undefined: &mut Vec<(String, Location)>,
    loc: &Location,
) -> String {
    if !value.contains("${") {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        match vars.get(name).cloned().or_else(|| std::env::var(name).ok()) {
            Some(v) => out.push_str(&v),
            None => undefined.push((name.to_string(), loc.clone())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Loader, ConfigError> {
        let dir = tempdir();
        let path = dir.join("main.conf");
        std::fs::write(&path, text).unwrap();
        let mut l = Loader::new();
        l.load_file(&path).map(|_| l)
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "logrouter-loader-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn reads_sections_keys_and_comments() {
        let l = load(
            "# top comment\n[SERVICE]\n    Flush 1\n    # indented comment\n\n[INPUT]\n    Name   forward\n    Tag    a b  c \n",
        )
        .unwrap();
        assert_eq!(l.sections.len(), 2);
        assert_eq!(l.sections[1].str("tag"), Some("a b  c"));
        assert_eq!(l.sections[1].entries()[0].loc.line, 7);
    }

    #[test]
    fn set_and_environment_variables_expand() {
        // SAFETY of the test: the variable name is unique to this test.
        unsafe { std::env::set_var("LOGROUTER_TEST_LOADER_VAR", "from-env") };
        let l = load(
            "@SET port=24299\n[INPUT]\n    Name forward\n    Port ${port}\n    Tag ${LOGROUTER_TEST_LOADER_VAR}.x${NOPE_NOT_SET}\n",
        )
        .unwrap();
        assert_eq!(l.sections[0].str("port"), Some("24299"));
        assert_eq!(l.sections[0].str("tag"), Some("from-env.x"));
        assert_eq!(l.undefined_vars[0].0, "NOPE_NOT_SET");
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = load("[INPUT]\n    Name forward\n[BOGUS]\n").unwrap_err();
        assert_eq!(err.loc.line, 3);
        assert!(err.message.contains("unknown section [BOGUS]"), "{err}");

        let err = load("[INPUT]\nName forward\n").unwrap_err();
        assert_eq!(err.loc.line, 2);
        assert!(err.message.contains("must be indented"), "{err}");

        let err = load("[INPUT]\n    Name forward\n  Port 1\n").unwrap_err();
        assert!(err.message.contains("indentation"), "{err}");

        let err = load("[INPUT]\n    Name forward\n@INCLUDE missing.conf\n").unwrap_err();
        assert_eq!(err.loc.line, 3);
        assert!(err.message.contains("does not exist"), "{err}");
    }

    #[test]
    fn includes_are_relative_and_globbed() {
        let dir = tempdir();
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("conf.d/b.conf"), "[OUTPUT]\n    Name null\n").unwrap();
        std::fs::write(dir.join("conf.d/a.conf"), "[OUTPUT]\n    Name stdout\n").unwrap();
        std::fs::write(dir.join("main.conf"), "@INCLUDE conf.d/*.conf\n").unwrap();
        let mut l = Loader::new();
        l.load_file(&dir.join("main.conf")).unwrap();
        let names: Vec<_> = l.sections.iter().map(|s| s.name().unwrap()).collect();
        assert_eq!(names, vec!["stdout", "null"]);
    }

    #[test]
    fn include_cycles_are_refused() {
        let dir = tempdir();
        std::fs::write(dir.join("loop.conf"), "@INCLUDE loop.conf\n").unwrap();
        let err = Loader::new().load_file(&dir.join("loop.conf")).unwrap_err();
        assert!(err.message.contains("cycle"), "{err}");
    }
}
