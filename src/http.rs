//! The router's one outgoing HTTP stack: reqwest on hyper 1, with rustls and the `ring`
//! provider. The outputs and the AWS credential providers build their clients here, so the TLS
//! keys of a section (`tls.verify`, `tls.ca_file`) mean the same for every plugin.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ConfigError, Section};

/// Fluent Bit's TLS keys of an output section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Check the server's certificate (`tls.verify`, On by default).
    pub verify: bool,
    /// Trust only the certificates of this PEM file (`tls.ca_file`) instead of the system's.
    pub ca_file: Option<PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            verify: true,
            ca_file: None,
        }
    }
}

/// Keys Fluent Bit has that change nothing here; they are accepted with a warning.
const UNSUPPORTED: &[&str] = &[
    "tls.ca_path",
    "tls.crt_file",
    "tls.key_file",
    "tls.key_passwd",
    "tls.vhost",
    "tls.verify_hostname",
    "tls.min_version",
    "tls.max_version",
    "tls.ciphers",
];

impl TlsSettings {
    /// Reads `tls.verify` and `tls.ca_file`; the file must be a readable PEM with a certificate.
    pub fn from_section(section: &Section, plugin: &str) -> Result<Self, ConfigError> {
        let verify = section.bool("tls.verify", true)?;
        let ca_file = match section.entry("tls.ca_file") {
            None => None,
            Some(e) => {
                let path = PathBuf::from(&e.value);
                let pem = std::fs::read(&path).map_err(|err| {
                    ConfigError::new(&e.loc, format!("tls.ca_file '{}': {err}", e.value))
                })?;
                match reqwest::Certificate::from_pem_bundle(&pem) {
                    Ok(certs) if !certs.is_empty() => {}
                    _ => {
                        return Err(ConfigError::new(
                            &e.loc,
                            format!("tls.ca_file '{}' holds no PEM certificate", e.value),
                        ));
                    }
                }
                Some(path)
            }
        };
        // Fluent Bit's TLS debug level: the router's own log level covers it.
        section.all("tls.debug").for_each(drop);
        for key in UNSUPPORTED {
            if let Some(e) = section.entry(key) {
                section.warn(format!(
                    "{}: [{plugin}] '{key}' is not supported by logrouter and has no effect",
                    e.loc
                ));
            }
        }
        if !verify {
            section.warn(format!(
                "{}: [{plugin}] tls.verify Off: the server's certificate is not checked",
                section.loc
            ));
        }
        Ok(TlsSettings { verify, ca_file })
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("reading tls.ca_file {path}: {source}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("building the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

/// A pooled HTTP/1.1 client (HTTPS through rustls) with these TLS settings.
pub fn client(
    tls: &TlsSettings,
    timeout: Duration,
    proxy: Option<reqwest::Proxy>,
) -> Result<reqwest::Client, ClientError> {
    // reqwest is built without a crypto provider so that only `ring` is linked; installing it
    // twice is harmless (the second call reports the first).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(50))
        .tls_danger_accept_invalid_certs(!tls.verify);
    if let Some(path) = &tls.ca_file {
        let pem = std::fs::read(path).map_err(|source| ClientError::CaFile {
            path: path.clone(),
            source,
        })?;
        b = b.tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem)?);
    }
    // Without an explicit proxy, HTTP_PROXY / HTTPS_PROXY / NO_PROXY apply, as in Fluent Bit.
    if let Some(p) = proxy {
        b = b.proxy(p);
    }
    Ok(b.build()?)
}
