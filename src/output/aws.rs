//! What the AWS outputs share: region, endpoint and credentials settings, and the SDK
//! configuration built from them.
//!
//! Credentials come from the SDK's standard chain (environment, profile, ECS container
//! credentials, web identity, instance metadata), optionally through STS AssumeRole
//! (`role_arn`, `external_id`, `sts_endpoint`). The configuration is loaded on first use,
//! inside the runtime; a missing region or unusable credentials make that flush fail with a
//! clear message and the data is retried.

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::config::{ConfigError, Section};

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
}

impl AwsSettings {
    pub fn from_section(section: &Section) -> Result<Self, ConfigError> {
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
                Some(e) => Ok(Some(e.value.clone())),
                None => Ok(None),
            }
        };
        // Fluent Bit's TLS detail keys: rustls with the system roots here.
        for key in [
            "tls.verify",
            "tls.ca_file",
            "tls.debug",
            "auto_retry_requests",
        ] {
            section.all(key).for_each(drop);
        }
        Ok(AwsSettings {
            region: section.str("region").map(str::to_string),
            endpoint,
            role_arn: section.str("role_arn").map(str::to_string),
            external_id: section.str("external_id").map(str::to_string),
            sts_endpoint: url("sts_endpoint")?,
            profile: section.str("profile").map(str::to_string),
        })
    }

    /// Loads the SDK configuration: region, credentials (assuming `role_arn` if set), endpoint.
    pub async fn load(&self) -> Result<SdkConfig, String> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = &self.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(p) = &self.profile {
            loader = loader.profile_name(p);
        }
        if let Some(e) = &self.endpoint {
            loader = loader.endpoint_url(e);
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(
                "no AWS region: set 'region' in the output section, or AWS_REGION in the environment"
                    .into(),
            );
        }
        let Some(role) = &self.role_arn else {
            return Ok(config);
        };
        let mut sts = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = config.region() {
            sts = sts.region(region.clone());
        }
        if let Some(e) = &self.sts_endpoint {
            sts = sts.endpoint_url(e);
        }
        let sts = sts.load().await;
        let mut provider =
            aws_config::sts::AssumeRoleProvider::builder(role).session_name("logrouter");
        if let Some(id) = &self.external_id {
            provider = provider.external_id(id);
        }
        let provider = provider.configure(&sts).build().await;
        Ok(config
            .into_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(provider),
            )
            .build())
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
        AwsSettings::from_section(&s).unwrap()
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
    }
}
