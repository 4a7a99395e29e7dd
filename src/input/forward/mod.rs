//! `forward`: the Fluentd Forward protocol v1 receiver, on TCP or a Unix socket.
//!
//! This file holds the settings and the listener; [`conn`] serves one connection (over a
//! [`socket`]: TCP, Unix or [`tls`]), after the [`handshake`] when a shared key is set, and
//! [`frame`] decodes one frame.

mod conn;
pub mod frame;
pub mod handshake;
mod socket;
pub mod tls;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use super::listener::{Accepted, DEFAULT_MAX_CONNECTIONS, Listener};
use super::{BindError, Input, InputContext};
use crate::config::{ConfigError, Section};

/// Fluent Bit's defaults.
const DEFAULT_PORT: u16 = 24224;
const DEFAULT_CHUNK_SIZE: u64 = 1_024_000;
const DEFAULT_MAX_SIZE: u64 = 6_144_000;
/// logrouter's own limit (Fluent Bit has none): a slow link still sends a frame within a minute.
const DEFAULT_FRAME_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Settings shared by the connections of one forward input.
#[derive(Debug, Clone)]
pub struct Settings {
    pub name: String,
    pub listen: String,
    pub port: u16,
    pub unix_path: Option<PathBuf>,
    pub unix_perm: Option<u32>,
    /// Most bytes read into a connection's buffer at once.
    pub chunk_size: usize,
    /// Largest frame accepted (and largest inflated payload).
    pub max_size: usize,
    pub tag_prefix: Option<String>,
    pub tag: Option<String>,
    /// Most connections open at once (0: no limit).
    pub max_connections: usize,
    /// How long a frame may take to arrive once its first byte has (`None`: no limit).
    pub frame_timeout: Option<std::time::Duration>,
    /// The shared-key handshake, when on.
    pub auth: Option<Arc<handshake::Auth>>,
    /// TLS on the TCP listener, when on.
    pub tls: Option<tls::Acceptor>,
}

impl Settings {
    fn from_section(section: &Section, name: &str) -> Result<Self, ConfigError> {
        // Fluent Bit's threading keys: one event loop serves every connection here.
        for key in ["threaded", "workers"] {
            section.all(key).for_each(drop);
        }
        let port = section.port("port")?.unwrap_or(DEFAULT_PORT);
        let unix_perm = section.parse("unix_perm", |s| {
            u32::from_str_radix(s.trim().trim_start_matches("0o"), 8)
                .map(|m| m & 0o7777)
                .map_err(|_| format!("'{s}' is not an octal file mode (e.g. 0660)"))
        })?;
        let chunk_size = section
            .size("buffer_chunk_size")?
            .unwrap_or(DEFAULT_CHUNK_SIZE)
            .max(1024);
        let max_size = section
            .size("buffer_max_size")?
            .unwrap_or(DEFAULT_MAX_SIZE)
            .max(chunk_size);
        Ok(Settings {
            name: name.to_string(),
            listen: section.str("listen").unwrap_or("0.0.0.0").to_string(),
            port,
            unix_path: section.str("unix_path").map(PathBuf::from),
            unix_perm,
            chunk_size: chunk_size.min(u32::MAX as u64) as usize,
            max_size: max_size.min(u32::MAX as u64) as usize,
            tag_prefix: section.str("tag_prefix").map(str::to_string),
            tag: section.str("tag").map(str::to_string),
            max_connections: section
                .uint("max_connections")?
                .unwrap_or(DEFAULT_MAX_CONNECTIONS)
                .min(usize::MAX as u64) as usize,
            frame_timeout: Some(section.duration("frame_timeout", DEFAULT_FRAME_TIMEOUT)?)
                .filter(|d| !d.is_zero()),
            auth: handshake::Auth::from_section(section)?.map(Arc::new),
            tls: tls::Acceptor::from_section(section, &format!("input:forward:{name}"))?,
        })
    }

    fn address(&self) -> String {
        match &self.unix_path {
            Some(p) => format!("unix://{}", p.display()),
            None => format!("{}:{}", self.listen, self.port),
        }
    }
}

pub struct Forward {
    settings: Arc<Settings>,
    listener: Option<Listener>,
}

impl Forward {
    pub fn from_section(section: &Section, name: &str) -> Result<Self, ConfigError> {
        Ok(Forward {
            settings: Arc::new(Settings::from_section(section, name)?),
            listener: None,
        })
    }

    fn bind_error(&self, source: std::io::Error) -> BindError {
        BindError {
            input: self.settings.name.clone(),
            address: self.settings.address(),
            source,
        }
    }
}

#[async_trait]
impl Input for Forward {
    async fn bind(&mut self) -> Result<(), BindError> {
        let s = self.settings.clone();
        let listener = match &s.unix_path {
            Some(path) => Listener::unix(path, s.unix_perm),
            None => Listener::tcp(&s.listen, s.port).await,
        }
        .map_err(|e| self.bind_error(e))?;
        tracing::info!(
            "[input:forward:{}] listening on {}",
            s.name,
            listener.shown(&s.address())
        );
        self.listener = Some(listener);
        Ok(())
    }

    async fn run(self: Box<Self>, ctx: InputContext) {
        let Some(listener) = self.listener else {
            return;
        };
        let shared = conn::Shared {
            settings: self.settings.clone(),
            emitter: ctx.emitter.clone(),
            stop: ctx.stop.clone(),
            drain: ctx.drain,
        };
        let name = format!("forward:{}", self.settings.name);
        listener
            .serve(
                &name,
                &ctx.stop,
                self.settings.max_connections,
                ctx.emitter.metrics(),
                |accepted| {
                    let shared = shared.clone();
                    async move {
                        match (accepted, &shared.settings.tls) {
                            (Accepted::Tcp(stream), None) => conn::serve(stream, shared).await,
                            (Accepted::Tcp(stream), Some(tls)) => {
                                let timeout = shared.settings.frame_timeout;
                                match tls.accept(stream, timeout, &shared.stop).await {
                                    Ok(stream) => conn::serve(stream, shared).await,
                                    Err(e) => {
                                        let m = shared.emitter.metrics();
                                        m.errors.inc();
                                        m.auth_failures.inc();
                                        tracing::warn!(
                                            "[input:forward:{}] TLS handshake failed: {e}",
                                            shared.settings.name
                                        );
                                    }
                                }
                            }
                            (Accepted::Unix(stream), _) => conn::serve(stream, shared).await,
                        }
                    }
                },
            )
            .await;
    }

    fn describe(&self) -> String {
        let s = &self.settings;
        let mut d = format!("forward on {}", s.address());
        if let Some(tls) = &s.tls {
            d += if tls.verify {
                " over TLS (client certificates checked)"
            } else {
                " over TLS"
            };
        }
        if let Some(auth) = &s.auth {
            d += &format!(" with the shared-key handshake ({})", auth.summary());
        }
        d
    }
}
