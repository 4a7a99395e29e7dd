//! Inputs: each produces batches of events and hands them to an [`Emitter`]. One plugin a
//! folder or file, named after its config `Name`.

pub mod forward;
mod listener;
pub mod tcp;

use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, Section};
use crate::engine::Emitter;

/// An input could not open what it listens on.
#[derive(Debug, thiserror::Error)]
#[error("[{input}] cannot listen on {address}: {source}")]
pub struct BindError {
    pub input: String,
    pub address: String,
    pub source: std::io::Error,
}

/// What a running input gets from the engine.
pub struct InputContext {
    pub emitter: Emitter,
    /// Fires when the router stops: stop accepting, finish reading what clients sent, return.
    pub stop: CancellationToken,
    /// After `stop`, how long to keep reading clients that still have data.
    pub drain: Duration,
}

/// One input plugin instance.
#[async_trait]
pub trait Input: Send {
    /// Opens sockets. Called for every input before any runs, so a failure starts nothing.
    async fn bind(&mut self) -> Result<(), BindError>;

    /// Serves until `ctx.stop` fires and what clients sent is read.
    async fn run(self: Box<Self>, ctx: InputContext);

    /// What it listens on, for `--dry-run` and the start-up log.
    fn describe(&self) -> String;
}

/// An input instance with the engine settings of its section.
pub struct InputSpec {
    /// Instance name: `forward.0`, or the section's `Alias`.
    pub name: String,
    /// `Mem_Buf_Limit`: bytes of this input's events that may be queued before it pauses.
    pub mem_buf_limit: Option<u64>,
    pub input: Box<dyn Input>,
    /// The section's settings in a canonical form: a reload keeps an input running (with its
    /// connections) when its name and settings are unchanged.
    pub fingerprint: String,
}

/// Builds an input plugin instance from its section.
pub fn build(section: &Section, index: usize) -> Result<InputSpec, ConfigError> {
    let plugin = section.name()?;
    let name = section
        .str("alias")
        .map_or_else(|| format!("{plugin}.{index}"), str::to_string);
    let input: Box<dyn Input> = match plugin.as_str() {
        "forward" => Box::new(forward::Forward::from_section(section, &name)?),
        "tcp" => Box::new(tcp::Tcp::from_section(section, &name)?),
        _ => {
            let loc = section.entry("name").map_or(&section.loc, |e| &e.loc);
            return Err(ConfigError::new(
                loc,
                format!("input plugin '{plugin}' is not known"),
            ));
        }
    };
    let mut settings: Vec<String> = section
        .entries()
        .iter()
        .map(|e| format!("{}={}", e.key.to_ascii_lowercase(), e.value))
        .collect();
    settings.sort();
    Ok(InputSpec {
        mem_buf_limit: section.size("mem_buf_limit")?.filter(|&n| n > 0),
        name,
        input,
        fingerprint: settings.join("\n"),
    })
}
