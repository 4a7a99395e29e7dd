//! What the AWS outputs share: the region, endpoint, credentials and TLS keys of a section, and
//! the [`aws::Client`] built from them.
//!
//! Credentials come from the standard chain ([`aws::credentials`]), optionally through STS
//! AssumeRole (`role_arn`, `external_id`, `sts_endpoint`). The client is built on first use,
//! inside the runtime; a missing region or unusable credentials make that flush fail with a
//! clear message and the data is retried.

use std::sync::Arc;
use std::time::Duration;

use crate::aws::{self, CredentialsProvider, Service};
use crate::config::{ConfigError, Section};
use crate::http::TlsSettings;

/// How long one AWS request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The AWS keys of an output section.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub region: Option<String>,
    /// Full endpoint URL (`http://127.0.0.1:4566`), from `endpoint` as a URL or Fluent Bit's
    /// host-only form with `port` and `tls`.
    pub endpoint: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub sts_endpoint: Option<String>,
    pub profile: Option<String>,
    pub tls: TlsSettings,
}

impl AwsSettings {
    pub fn from_section(section: &Section, plugin: &str) -> Result<Self, ConfigError> {
        let port = section.uint("port")?;
        let tls = section.bool("tls", true)?;
        let endpoint = section.str("endpoint").map(|e| {
            if e.contains("://") {
                e.trim_end_matches('/').to_string()
            } else {
                let scheme = if tls { "https" } else { "http" };
                match port {
                    Some(p) => format!("{scheme}://{e}:{p}"),
                    None => format!("{scheme}://{e}"),
                }
            }
        });
        let url = |key: &str| -> Result<Option<String>, ConfigError> {
            match section.entry(key) {
                Some(e) if !e.value.contains("://") => Ok(Some(format!("https://{}", e.value))),
                Some(e) => Ok(Some(e.value.trim_end_matches('/').to_string())),
                None => Ok(None),
            }
        };
        // Retries are the engine's (Retry_Limit); Fluent Bit's immediate retry adds nothing.
        section.all("auto_retry_requests").for_each(drop);
        Ok(AwsSettings {
            region: section.str("region").map(str::to_string),
            endpoint,
            role_arn: section.str("role_arn").map(str::to_string),
            external_id: section.str("external_id").map(str::to_string),
            sts_endpoint: url("sts_endpoint")?,
            profile: section.str("profile").map(str::to_string),
            tls: TlsSettings::from_section(section, plugin)?,
        })
    }

    /// The region: the section's, else the environment's or the profile's.
    pub fn resolved_region(&self) -> Result<String, aws::Error> {
        self.region
            .clone()
            .filter(|r| !r.is_empty())
            .or_else(|| aws::default_region(self.profile.as_deref()))
            .ok_or(aws::Error::NoRegion)
    }

    /// A client for `service`: `endpoint` if the section sets one, else `default_endpoint` of
    /// the region.
    pub fn client(
        &self,
        service: Service,
        default_endpoint: impl FnOnce(&str) -> String,
    ) -> Result<aws::Client, aws::Error> {
        let region = self.resolved_region()?;
        let http = crate::http::client(&self.tls, REQUEST_TIMEOUT, None)?;
        let mut credentials = Arc::new(CredentialsProvider::chain(
            http.clone(),
            self.profile.clone(),
            region.clone(),
            self.sts_endpoint.clone(),
        ));
        if let Some(role) = &self.role_arn {
            let sts = aws::Client::new(
                http.clone(),
                Service::Sts,
                region.clone(),
                self.sts_endpoint
                    .clone()
                    .unwrap_or_else(|| aws::endpoint("sts", &region)),
                credentials,
            );
            credentials = Arc::new(CredentialsProvider::assume_role(
                http.clone(),
                sts,
                role.clone(),
                self.external_id.clone(),
            ));
        }
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| default_endpoint(&region));
        Ok(aws::Client::new(
            http,
            service,
            region,
            endpoint,
            credentials,
        ))
    }

    /// Where requests go, for messages.
    pub fn describe(&self) -> String {
        match (&self.endpoint, &self.region) {
            (Some(e), _) => e.clone(),
            (None, Some(r)) => format!("region {r}"),
            (None, None) => "the region from the environment".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Location, SectionKind};

    fn settings(lines: &[(&str, &str)]) -> AwsSettings {
        let loc = Location::command_line();
        let mut s = Section::new(SectionKind::Output, loc.clone());
        for (k, v) in lines {
            s.push(*k, *v, loc.clone());
        }
        AwsSettings::from_section(&s, "output:test").unwrap()
    }

    #[test]
    fn endpoint_as_url_or_fluent_bit_host_port_tls() {
        let e = |lines: &[(&str, &str)]| settings(lines).endpoint;
        assert_eq!(
            e(&[("endpoint", "http://127.0.0.1:4566/")]),
            Some("http://127.0.0.1:4566".into())
        );
        assert_eq!(
            e(&[("endpoint", "vpce-1.firehose.eu-west-1.vpce.amazonaws.com")]),
            Some("https://vpce-1.firehose.eu-west-1.vpce.amazonaws.com".into())
        );
        assert_eq!(
            e(&[("endpoint", "127.0.0.1"), ("port", "4566"), ("tls", "Off")]),
            Some("http://127.0.0.1:4566".into())
        );
        assert_eq!(e(&[]), None);
        let s = settings(&[
            ("sts_endpoint", "sts.example.com"),
            ("role_arn", "arn:aws:iam::1:role/r"),
        ]);
        assert_eq!(s.sts_endpoint.as_deref(), Some("https://sts.example.com"));
        assert_eq!(
            aws::endpoint("firehose", "cn-north-1"),
            "https://firehose.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn tls_keys_are_read_and_a_bad_ca_file_is_a_config_error() {
        let s = settings(&[("tls.verify", "Off")]);
        assert!(!s.tls.verify);
        let loc = Location::command_line();
        let mut sec = Section::new(SectionKind::Output, loc.clone());
        sec.push("tls.ca_file", "/nonexistent/ca.pem", loc.clone());
        let err = AwsSettings::from_section(&sec, "output:test").unwrap_err();
        assert!(err.to_string().contains("tls.ca_file"), "{err}");
    }
}
