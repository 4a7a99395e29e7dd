//! `[PARSER]` sections: named ways to turn a text field into a structured record.
//!
//! This module checks parser definitions when the config loads, so a broken one is an error
//! with file and line rather than a silent mismatch later; the parser filter that applies them
//! builds on [`Parser`].

use regex::Regex;

use crate::config::{ConfigError, Section};

/// How a parser reads its input.
#[derive(Debug, Clone)]
pub enum Format {
    /// A regular expression whose named groups become fields.
    Regex(Regex),
    Json,
    Logfmt,
    Ltsv,
}

/// A parser definition.
#[derive(Debug, Clone)]
pub struct Parser {
    pub name: String,
    pub format: Format,
    pub time_key: Option<String>,
    pub time_format: Option<String>,
}

impl Parser {
    pub fn from_section(section: &Section) -> Result<Self, ConfigError> {
        let name = section
            .str("name")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ConfigError::new(&section.loc, "[PARSER] section has no 'Name'"))?
            .to_string();
        let format_entry = section.entry("format").ok_or_else(|| {
            ConfigError::new(&section.loc, format!("parser '{name}' has no 'Format'"))
        })?;
        let format = match format_entry.value.to_ascii_lowercase().as_str() {
            "regex" => Format::Regex(regex(section, &name)?),
            "json" => Format::Json,
            "logfmt" => Format::Logfmt,
            "ltsv" => Format::Ltsv,
            other => {
                return Err(ConfigError::new(
                    &format_entry.loc,
                    format!(
                        "parser '{name}': format '{other}' is not known (regex, json, logfmt, ltsv)"
                    ),
                ));
            }
        };
        // Keys the parser filter will apply.
        for key in [
            "time_keep",
            "time_offset",
            "types",
            "skip_empty_values",
            "decode_field",
            "decode_field_as",
            "time_system_timezone",
            "time_strict",
        ] {
            section.all(key).for_each(drop);
        }
        Ok(Parser {
            name,
            format,
            time_key: section.str("time_key").map(str::to_string),
            time_format: section.str("time_format").map(str::to_string),
        })
    }
}

/// Compiles a parser's `Regex`: it must compile and name at least one group.
fn regex(section: &Section, name: &str) -> Result<Regex, ConfigError> {
    let entry = section.entry("regex").ok_or_else(|| {
        ConfigError::new(
            &section.loc,
            format!("parser '{name}' has Format regex but no 'Regex'"),
        )
    })?;
    let hint = if entry.value.contains("(?[") || entry.value.contains("(?)") {
        " (a group starting '(?' needs a name: '(?<name>...)')"
    } else {
        ""
    };
    let re = Regex::new(&entry.value).map_err(|e| {
        ConfigError::new(
            &entry.loc,
            format!("parser '{name}': Regex does not compile{hint}:\n{e}"),
        )
    })?;
    if re.capture_names().flatten().next().is_none() {
        return Err(ConfigError::new(
            &entry.loc,
            format!("parser '{name}': Regex has no named groups, so it would produce no fields"),
        ));
    }
    Ok(re)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Location, SectionKind};

    fn parser(pairs: &[(&str, &str)]) -> Result<Parser, ConfigError> {
        let mut s = Section::new(SectionKind::Parser, Location::command_line());
        for (i, (k, v)) in pairs.iter().enumerate() {
            let loc = Location::new(Location::command_line().file, i + 2);
            s.push(*k, *v, loc);
        }
        Parser::from_section(&s)
    }

    #[test]
    fn the_seed_nginx_regex_with_a_lost_group_name_is_refused() {
        let seed = r#"^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^\"]*?)(?: +\S*)?)?" (?[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\"]*)" "(?<agent>[^\"]*)")?$"#;
        let err = parser(&[("Name", "nginx"), ("Format", "regex"), ("Regex", seed)]).unwrap_err();
        assert_eq!(err.loc.line, 4);
        assert!(err.message.contains("needs a name"), "{err}");
        let fixed = seed.replace("(?[^ ]*)", "(?<code>[^ ]*)");
        assert!(parser(&[("Name", "nginx"), ("Format", "regex"), ("Regex", &fixed)]).is_ok());
    }

    #[test]
    fn bad_definitions_are_refused() {
        assert!(parser(&[("Format", "json")]).is_err());
        assert!(parser(&[("Name", "x")]).is_err());
        assert!(parser(&[("Name", "x"), ("Format", "xml")]).is_err());
        assert!(parser(&[("Name", "x"), ("Format", "regex"), ("Regex", "^(a)(b)$")]).is_err());
        assert!(
            parser(&[
                ("Name", "x"),
                ("Format", "regex"),
                ("Regex", "(?<a>x)(?<a>y)")
            ])
            .is_err()
        );
        assert!(parser(&[("Name", "j"), ("Format", "json"), ("Time_Key", "time")]).is_ok());
    }
}
