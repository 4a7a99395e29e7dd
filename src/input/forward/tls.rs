//! TLS on the forward TCP listener (rustls, `ring` provider), with Fluent Bit's keys: `tls`,
//! `tls.verify`, `tls.crt_file`, `tls.key_file`, `tls.ca_file`.
//!
//! With `tls.verify On` (the default, as in Fluent Bit) clients must present a certificate
//! signed by a CA of `tls.ca_file`; `tls.verify Off` accepts any client.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::socket::Tls;
use crate::config::{ConfigError, Location, Section};

/// Fluent Bit keys that change nothing here: accepted with a warning.
const UNSUPPORTED: &[&str] = &[
    "tls.ca_path",
    "tls.vhost",
    "tls.verify_hostname",
    "tls.min_version",
    "tls.max_version",
    "tls.ciphers",
];

/// A configured TLS listener side, ready to accept connections.
#[derive(Clone)]
pub struct Acceptor {
    inner: TlsAcceptor,
    /// Whether client certificates are checked (for `--dry-run` and the start-up log).
    pub verify: bool,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

impl Acceptor {
    /// `None` when `tls` is off. Files are read now, so a bad one stops the start (or the
    /// reload) with its file and line.
    pub fn from_section(section: &Section, plugin: &str) -> Result<Option<Self>, ConfigError> {
        let tls_on = section.bool("tls", false)?;
        let verify = section.bool("tls.verify", true)?;
        section.all("tls.debug").for_each(drop);
        if !tls_on {
            // Keys of a disabled TLS are not errors, as in Fluent Bit.
            for key in [
                "tls.crt_file",
                "tls.key_file",
                "tls.ca_file",
                "tls.key_passwd",
            ]
            .iter()
            .chain(UNSUPPORTED)
            {
                section.all(key).for_each(drop);
            }
            return Ok(None);
        }
        let tls_loc = section.entry("tls").map_or(&section.loc, |e| &e.loc);
        if let Some(e) = section.entry("unix_path") {
            return Err(ConfigError::new(
                &e.loc,
                "tls applies to TCP listeners; remove unix_path or tls",
            ));
        }
        for key in UNSUPPORTED {
            if let Some(e) = section.entry(key) {
                section.warn(format!(
                    "{}: [{plugin}] '{key}' is not supported by logrouter and has no effect",
                    e.loc
                ));
            }
        }
        if let Some(e) = section.entry("tls.key_passwd") {
            return Err(ConfigError::new(
                &e.loc,
                "tls.key_passwd: encrypted private keys are not supported; give tls.key_file unencrypted",
            ));
        }
        let certs = match section.entry("tls.crt_file") {
            Some(e) => read_certs(&e.value, &e.loc, "tls.crt_file")?,
            None => return Err(ConfigError::new(tls_loc, "tls On needs tls.crt_file")),
        };
        let (key, key_loc) = match section.entry("tls.key_file") {
            Some(e) => {
                let key = PrivateKeyDer::from_pem_file(Path::new(&e.value)).map_err(|err| {
                    ConfigError::new(
                        &e.loc,
                        format!(
                            "tls.key_file '{}': no usable PEM private key ({err})",
                            e.value
                        ),
                    )
                })?;
                (key, &e.loc)
            }
            None => return Err(ConfigError::new(tls_loc, "tls On needs tls.key_file")),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::new(tls_loc, format!("tls: {e}")))?;
        let builder = if verify {
            let Some(e) = section.entry("tls.ca_file") else {
                return Err(ConfigError::new(
                    section.entry("tls.verify").map_or(tls_loc, |e| &e.loc),
                    "tls.verify On checks client certificates against tls.ca_file: set tls.ca_file, or tls.verify Off to accept any client",
                ));
            };
            let mut roots = RootCertStore::empty();
            for cert in read_certs(&e.value, &e.loc, "tls.ca_file")? {
                roots.add(cert).map_err(|err| {
                    ConfigError::new(&e.loc, format!("tls.ca_file '{}': {err}", e.value))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|err| {
                    ConfigError::new(&e.loc, format!("tls.ca_file '{}': {err}", e.value))
                })?;
            builder.with_client_cert_verifier(verifier)
        } else {
            section.all("tls.ca_file").for_each(drop);
            section.warn(format!(
                "{tls_loc}: [{plugin}] tls.verify Off: clients are not asked for a certificate"
            ));
            builder.with_no_client_auth()
        };
        let config = builder.with_single_cert(certs, key).map_err(|e| {
            ConfigError::new(
                key_loc,
                format!("tls.key_file does not match tls.crt_file: {e}"),
            )
        })?;
        Ok(Some(Acceptor {
            inner: TlsAcceptor::from(Arc::new(config)),
            verify,
        }))
    }

    /// Completes the TLS handshake within `timeout` (a client that never finishes it holds a
    /// connection slot like a slowloris). `Err` says why it failed, for the log.
    pub(super) async fn accept(
        &self,
        stream: TcpStream,
        timeout: Option<Duration>,
        stop: &CancellationToken,
    ) -> Result<Tls, String> {
        let accept = self.inner.accept(stream);
        let deadline = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = accept => r.map(Tls::new).map_err(|e| e.to_string()),
            () = deadline => Err("TLS handshake not complete within Frame_Timeout".to_string()),
            () = stop.cancelled() => Err("the router is stopping".to_string()),
        }
    }
}

fn read_certs(
    path: &str,
    loc: &Location,
    key: &str,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_file_iter(Path::new(path))
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|err| ConfigError::new(loc, format!("{key} '{path}': {err}")))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            loc,
            format!("{key} '{path}' holds no PEM certificate"),
        ));
    }
    Ok(certs)
}
