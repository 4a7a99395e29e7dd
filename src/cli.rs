//! The command line, in Fluent Bit's habits: `-c FILE`, `-R FILE`, `--dry-run`, and quick mode
//! (`-i forward -p port=24225 -o stdout -m '*'`) where `-p`, `-t` and `-m` apply to the plugin
//! named just before them.

use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::config::{Config, ConfigError, Location, Section, SectionKind};

/// Where FireLens writes the generated config; loaded when no `-c` is given.
pub const FIRELENS_CONFIG: &str = "/fluent-bit/etc/fluent-bit.conf";

pub fn command() -> Command {
    let many = |id: &'static str, short: char, long: &'static str, help: &'static str| {
        Arg::new(id)
            .short(short)
            .long(long)
            .action(ArgAction::Append)
            .value_name("NAME")
            .help(help)
    };
    Command::new("logrouter")
        .about("Container log router: Fluentd Forward in, Fluent Bit config, outputs with retries")
        .disable_version_flag(true)
        .arg(
            Arg::new("config")
                .short('c')
                .long("config")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help(format!(
                    "Fluent Bit classic config file (default: {FIRELENS_CONFIG} if it exists)"
                )),
        )
        .arg(
            many("parser", 'R', "parser", "Add a parsers file")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf)),
        )
        .arg(
            Arg::new("dry_run")
                .short('D')
                .long("dry-run")
                .action(ArgAction::SetTrue)
                .help("Load and check the config, print what would run, and exit"),
        )
        .arg(many(
            "input",
            'i',
            "input",
            "Quick mode: add an input plugin",
        ))
        .arg(many(
            "filter",
            'F',
            "filter",
            "Quick mode: add a filter plugin",
        ))
        .arg(many(
            "output",
            'o',
            "output",
            "Quick mode: add an output plugin",
        ))
        .arg(
            many(
                "prop",
                'p',
                "prop",
                "Set KEY=VALUE on the plugin given last",
            )
            .value_name("KEY=VALUE"),
        )
        .arg(many("tag", 't', "tag", "Set the tag of the input given last").value_name("TAG"))
        .arg(
            many(
                "match",
                'm',
                "match",
                "Set Match on the filter or output given last",
            )
            .value_name("PATTERN"),
        )
        .arg(
            Arg::new("flush")
                .short('f')
                .long("flush")
                .value_name("SECONDS")
                .help("Flush interval (overrides [SERVICE] Flush)"),
        )
        .arg(
            Arg::new("log_level")
                .long("log-level")
                .visible_alias("log_level")
                .value_name("LEVEL")
                .help("off, error, warn, info, debug or trace (overrides [SERVICE] Log_Level)"),
        )
        .arg(
            Arg::new("quiet")
                .short('q')
                .long("quiet")
                .action(ArgAction::SetTrue)
                .help("No log output"),
        )
        .arg(
            Arg::new("version")
                .short('V')
                .long("version")
                .action(ArgAction::SetTrue)
                .help("Print the version banner and exit"),
        )
}

/// Quick-mode plugin sections, in command-line order.
pub fn quick_sections(m: &ArgMatches) -> Result<Vec<Section>, ConfigError> {
    let mut items: Vec<(usize, &str, String)> = Vec::new();
    for id in ["input", "filter", "output", "prop", "tag", "match"] {
        if let (Some(values), Some(indices)) = (m.get_many::<String>(id), m.indices_of(id)) {
            for (v, i) in values.zip(indices) {
                items.push((i, id, v.clone()));
            }
        }
    }
    items.sort_by_key(|(i, _, _)| *i);
    let loc = Location::command_line();
    let mut sections: Vec<Section> = Vec::new();
    for (_, id, value) in items {
        let kind = match id {
            "input" => Some(SectionKind::Input),
            "filter" => Some(SectionKind::Filter),
            "output" => Some(SectionKind::Output),
            _ => None,
        };
        if let Some(kind) = kind {
            let mut s = Section::new(kind, loc.clone());
            s.push("Name", value, loc.clone());
            sections.push(s);
            continue;
        }
        let Some(last) = sections.last_mut() else {
            return Err(ConfigError::new(
                &loc,
                format!(
                    "-{} '{value}' must follow a plugin (-i, -F or -o)",
                    flag(id)
                ),
            ));
        };
        match id {
            "prop" => {
                let (k, v) = value.split_once('=').ok_or_else(|| {
                    ConfigError::new(&loc, format!("-p '{value}' is not KEY=VALUE"))
                })?;
                last.push(k.trim(), v.trim(), loc.clone());
            }
            "tag" => last.push("Tag", value, loc.clone()),
            _ if last.kind == SectionKind::Input => {
                return Err(ConfigError::new(
                    &loc,
                    format!("-m '{value}' must follow a filter or output (-F or -o)"),
                ));
            }
            _ => last.push("Match", value, loc.clone()),
        }
    }
    Ok(sections)
}

fn flag(id: &str) -> char {
    match id {
        "prop" => 'p',
        "tag" => 't',
        _ => 'm',
    }
}

/// Builds the config from the file (if any), quick-mode flags and overrides.
pub fn load_config(m: &ArgMatches, file: Option<&Path>) -> Result<Config, ConfigError> {
    let parsers: Vec<PathBuf> = m
        .get_many::<PathBuf>("parser")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    for p in &parsers {
        if !p.exists() {
            return Err(ConfigError::new(
                &Location::command_line(),
                format!("parsers file '{}' does not exist", p.display()),
            ));
        }
    }
    let mut config = match file {
        Some(path) => Config::from_file(path, &parsers)?,
        None => {
            let mut c = Config::default();
            for p in &parsers {
                let mut l = crate::config::loader::Loader::new();
                l.load_file(p)?;
                c.add_sections(l.sections)?;
            }
            c.parsers_files = parsers;
            c
        }
    };
    config.add_sections(quick_sections(m)?)?;
    if let Some(f) = m.get_one::<String>("flush") {
        config.service.flush = crate::config::value::parse_duration(f)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                ConfigError::new(
                    &Location::command_line(),
                    format!("-f '{f}' is not a flush interval"),
                )
            })?;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections(args: &[&str]) -> Result<Vec<Section>, ConfigError> {
        let m = command().try_get_matches_from(args).unwrap();
        quick_sections(&m)
    }

    #[test]
    fn props_apply_to_the_plugin_before_them() {
        let s = sections(&[
            "logrouter",
            "-i",
            "forward",
            "-p",
            "port=24225",
            "-t",
            "app",
            "-o",
            "stdout",
            "-m",
            "*",
            "-p",
            "format=json_lines",
        ])
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].str("port"), Some("24225"));
        assert_eq!(s[0].str("tag"), Some("app"));
        assert_eq!(s[1].str("match"), Some("*"));
        assert_eq!(s[1].str("format"), Some("json_lines"));
    }

    #[test]
    fn misplaced_flags_are_errors() {
        assert!(sections(&["logrouter", "-p", "port=1", "-i", "forward"]).is_err());
        assert!(sections(&["logrouter", "-i", "forward", "-m", "*"]).is_err());
        assert!(sections(&["logrouter", "-i", "forward", "-p", "port"]).is_err());
    }
}
