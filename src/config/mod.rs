//! Fluent Bit's classic configuration: the file format ([`loader`]), typed values ([`value`]),
//! sections with file:line on every entry ([`section`]), and the `[SERVICE]` settings.
//!
//! Plugins read their own keys from their [`Section`]; whatever no plugin read is reported as an
//! unknown key (a warning, since FireLens copies every task-definition option into outputs).

pub mod loader;
pub mod section;
pub mod value;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use section::{ConfigError, Entry, Location, Section, SectionKind};
pub use value::RetryLimit;

/// `[SERVICE]` settings.
#[derive(Debug, Clone)]
pub struct Service {
    /// How often outputs flush what they hold (`Flush`, seconds, default 1).
    pub flush: Duration,
    /// How long shutdown may take to deliver what is queued (`Grace`, default 5 s).
    pub grace: Duration,
    pub log_level: Option<String>,
    /// Retry backoff: first wait up to `scheduler.base`, growing to at most `scheduler.cap`.
    pub scheduler_base: Duration,
    pub scheduler_cap: Duration,
    /// `json.escape_unicode`: write non-ASCII as `\uXXXX` in JSON outputs (Fluent Bit's default).
    pub json_escape_unicode: bool,
    /// The monitoring HTTP server (`HTTP_Server`), when on.
    pub http: Option<HttpServer>,
}

/// `HTTP_Listen`, `HTTP_Port` and the `/api/v1/health` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpServer {
    pub listen: String,
    pub port: u16,
    /// `Health_Check`: serve `/api/v1/health`.
    pub health: Option<HealthCheck>,
}

/// Unhealthy when, over the last `period`, the outputs' failed flushes exceed `errors` or their
/// chunks that ran out of retries exceed `retry_failures` (Fluent Bit's `HC_*` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub errors: u64,
    pub retry_failures: u64,
    pub period: Duration,
}

impl Default for Service {
    fn default() -> Self {
        Service {
            flush: Duration::from_secs(1),
            grace: Duration::from_secs(5),
            log_level: None,
            scheduler_base: Duration::from_secs(5),
            scheduler_cap: Duration::from_secs(2000),
            json_escape_unicode: true,
            http: None,
        }
    }
}

/// Service keys that have no meaning here and are accepted silently.
const SERVICE_KEYS_IGNORED: &[&str] = &[
    "daemon",
    "coro_stack_size",
    "plugins_file",
    "streams_file",
    "json.convert_nan_to_null",
];

impl Service {
    fn from_section(s: &Section, warnings: &mut Vec<String>) -> Result<Self, ConfigError> {
        let d = Service::default();
        let service = Service {
            flush: s.duration("flush", d.flush)?,
            grace: s.duration("grace", d.grace)?,
            log_level: s.str("log_level").map(str::to_ascii_lowercase),
            scheduler_base: s.duration("scheduler.base", d.scheduler_base)?,
            scheduler_cap: s.duration("scheduler.cap", d.scheduler_cap)?,
            json_escape_unicode: s.bool("json.escape_unicode", d.json_escape_unicode)?,
            http: HttpServer::from_section(s)?,
        };
        if service.flush.is_zero() {
            let loc = s.entry("flush").map_or(&s.loc, |e| &e.loc);
            return Err(ConfigError::new(loc, "Flush must be greater than 0"));
        }
        for key in SERVICE_KEYS_IGNORED {
            s.all(key).for_each(drop);
        }
        for e in s.entries() {
            if e.key.to_ascii_lowercase().starts_with("storage.") {
                s.all(&e.key).for_each(drop);
                warnings.push(format!(
                    "{}: [SERVICE] {} accepted, but on-disk buffering is not implemented yet",
                    e.loc, e.key
                ));
            }
        }
        Ok(service)
    }
}

impl HttpServer {
    /// Fluent Bit's defaults: `0.0.0.0:2020`; health: 5 errors, 5 retry failures, 60 s.
    fn from_section(s: &Section) -> Result<Option<Self>, ConfigError> {
        let port = s.port("http_port")?.unwrap_or(2020);
        let listen = s.str("http_listen").unwrap_or("0.0.0.0").to_string();
        let count = |key: &str| -> Result<u64, ConfigError> { Ok(s.uint(key)?.unwrap_or(5)) };
        let health = HealthCheck {
            errors: count("hc_errors_count")?,
            retry_failures: count("hc_retry_failure_count")?,
            period: s.duration("hc_period", Duration::from_secs(60))?,
        };
        if health.period.is_zero() {
            let loc = s.entry("hc_period").map_or(&s.loc, |e| &e.loc);
            return Err(ConfigError::new(loc, "HC_Period must be greater than 0"));
        }
        let health = s.bool("health_check", false)?.then_some(health);
        Ok(s.bool("http_server", false)?.then_some(HttpServer {
            listen,
            port,
            health,
        }))
    }
}

/// A whole configuration, sections sorted by kind, each list in file order.
#[derive(Debug, Default)]
pub struct Config {
    pub service: Service,
    pub inputs: Vec<Section>,
    pub filters: Vec<Section>,
    pub outputs: Vec<Section>,
    pub parsers: Vec<Section>,
    /// Parsers files read, in order.
    pub parsers_files: Vec<PathBuf>,
    /// Things worth telling the user that do not stop the router.
    pub warnings: Vec<String>,
    /// Every `[SERVICE]` key so far, later sections after earlier ones (so later keys win).
    service_keys: Option<Section>,
}

impl Config {
    /// Reads a main config file, its includes and parsers files, plus `extra_parsers` (`-R`).
    pub fn from_file(path: &Path, extra_parsers: &[PathBuf]) -> Result<Self, ConfigError> {
        let mut loader = loader::Loader::new();
        loader.load_file(path)?;
        let mut config = Config::default();
        let mut parsers_files = Vec::new();
        for section in &loader.sections {
            if section.kind == SectionKind::Service {
                for e in section.all("parsers_file") {
                    parsers_files.push(loader::resolve(path, &e.value));
                }
            }
        }
        parsers_files.extend(extra_parsers.iter().cloned());
        config.add_sections(loader.sections)?;
        for file in &parsers_files {
            let mut l = loader::Loader::new();
            l.load_file(file)?;
            config.add_sections(l.sections)?;
        }
        config.parsers_files = parsers_files;
        for (name, loc) in loader.undefined_vars {
            config.warnings.push(format!(
                "{loc}: variable ${{{name}}} is not defined (by @SET or the environment); using an empty value"
            ));
        }
        Ok(config)
    }

    /// Sorts sections into the lists; later `[SERVICE]` sections override earlier keys.
    pub fn add_sections(&mut self, sections: Vec<Section>) -> Result<(), ConfigError> {
        for section in sections {
            match section.kind {
                SectionKind::Service => {
                    // This section's own errors and warnings, with its own lines...
                    Service::from_section(&section, &mut self.warnings)?;
                    self.warn_unread(&section);
                    // ...and the values of all of them merged, as Fluent Bit does.
                    let merged = match self.service_keys.take() {
                        None => section,
                        Some(mut merged) => {
                            for e in section.entries() {
                                merged.push(e.key.clone(), e.value.clone(), e.loc.clone());
                            }
                            merged
                        }
                    };
                    self.service = Service::from_section(&merged, &mut Vec::new())?;
                    self.service_keys = Some(merged);
                }
                SectionKind::Input => self.inputs.push(section),
                SectionKind::Filter => self.filters.push(section),
                SectionKind::Output => self.outputs.push(section),
                SectionKind::Parser | SectionKind::MultilineParser => self.parsers.push(section),
            }
        }
        Ok(())
    }

    /// Collects the warnings plugins raised about `section`, and one for each key nothing read.
    pub fn warn_unread(&mut self, section: &Section) {
        self.warnings.extend(section.take_warnings());
        let owner = match section.str("name") {
            Some(name) => format!("{} plugin '{}'", section.kind.noun(), name),
            None => format!("[{}]", section.kind.noun().to_uppercase()),
        };
        for e in section.unread() {
            self.warnings.push(format!(
                "{}: unknown key '{}' for {owner}; ignored",
                e.loc, e.key
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_service_sections_add_to_earlier_ones() {
        let dir = std::env::temp_dir().join(format!("lr-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("two-services.conf");
        std::fs::write(
            &path,
            "[SERVICE]\n    Flush 5\n    Log_Level debug\n    HTTP_Server On\n[SERVICE]\n    Grace 3\n    HTTP_Port 2021\n[INPUT]\n    Name forward\n",
        )
        .unwrap();
        let config = Config::from_file(&path, &[]);
        std::fs::remove_dir_all(&dir).unwrap();
        let s = config.unwrap().service;
        assert_eq!(s.flush, Duration::from_secs(5), "kept from the first");
        assert_eq!(s.log_level.as_deref(), Some("debug"));
        assert_eq!(s.grace, Duration::from_secs(3), "added by the second");
        assert_eq!(s.http.map(|h| h.port), Some(2021));
    }
}
