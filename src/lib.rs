//! logrouter: a container log router. It receives the Fluentd Forward protocol, reads Fluent
//! Bit's classic configuration, routes records by tag through filters, and delivers them to
//! outputs through bounded, retrying queues.
//!
//! A record's path, top to bottom: [`input`] (socket → frame) → [`record`] (the shared event
//! type) → [`engine::emitter`] (filters from [`filter`], routing by [`router`], bounded queues)
//! → [`engine::delivery`] (flush, retry) → [`output`]. [`config`] and [`cli`] build the plan.

pub mod aws;
pub mod cli;
pub mod config;
pub mod engine;
pub mod filter;
pub mod http;
pub mod input;
pub mod logging;
pub mod monitoring;
pub mod msgpack;
pub mod output;
pub mod parser;
pub mod record;
pub mod router;

/// The version banner: `logrouter v0.1.0`.
pub const BANNER: &str = concat!("logrouter v", env!("CARGO_PKG_VERSION"));

/// The commit the binary was built from, when known.
pub const COMMIT: &str = match option_env!("LOGROUTER_GIT_COMMIT") {
    Some(c) => c,
    None => "unknown",
};
