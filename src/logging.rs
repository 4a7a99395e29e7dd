//! The router's own log lines, on stderr, in Fluent Bit's shape so the same greps work:
//! `[2026/11/21 10:00:00] [ info] [input:forward:forward.0] listening on 127.0.0.1:24224`.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

struct FluentBitStyle;

impl<S, N> FormatEvent<S, N> for FluentBitStyle
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => " warn",
            Level::INFO => " info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        let now = chrono::Local::now().format("%Y/%m/%d %H:%M:%S");
        write!(writer, "[{now}] [{level}] ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Parses a level name as Fluent Bit spells them (`off`, `error`, `warn`/`warning`, `info`,
/// `debug`, `trace`).
pub fn parse_level(s: &str) -> Result<Option<Level>, String> {
    Ok(Some(match s.to_ascii_lowercase().as_str() {
        "off" => return Ok(None),
        "error" => Level::ERROR,
        "warn" | "warning" => Level::WARN,
        "info" => Level::INFO,
        "debug" => Level::DEBUG,
        "trace" => Level::TRACE,
        _ => {
            return Err(format!(
                "'{s}' is not a log level (off, error, warn, info, debug, trace)"
            ));
        }
    }))
}

/// Installs the stderr logger at `level` (`None`: silent).
pub fn init(level: Option<Level>) {
    let filter = match level {
        Some(l) => tracing_subscriber::filter::LevelFilter::from_level(l),
        None => tracing_subscriber::filter::LevelFilter::OFF,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(filter)
        .event_format(FluentBitStyle)
        .try_init();
}
