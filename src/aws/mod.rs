//! A small AWS client: credentials from the standard chain, SigV4 signing (the `aws-sigv4`
//! crate) and requests over the router's one HTTP stack ([`crate::http`]).
//!
//! The outputs build their request bodies themselves, straight from the records (a
//! PutRecordBatch body is written once, with the records base64-encoded in place), so nothing is
//! serialised twice and no SDK runtime (with its own HTTP and TLS stacks) is linked.

mod client;
pub mod credentials;
mod xml;

pub use client::{Client, Request, Response, Service};
pub use credentials::{Credentials, CredentialsProvider};
pub use xml::{xml_escape, xml_text};

/// What went wrong talking to AWS; [`Error::is_retryable`] decides retry or give up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no AWS region: set 'region' in the output section, or AWS_REGION in the environment")]
    NoRegion,
    #[error("no AWS credentials found ({0})")]
    NoCredentials(String),
    #[error("AWS credentials from {source_name}: {message}")]
    Credentials {
        source_name: &'static str,
        message: String,
    },
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The service answered with an error.
    #[error("{code}: {message} (HTTP {status})")]
    Service {
        status: u16,
        code: String,
        message: String,
    },
    #[error("signing the request: {0}")]
    Sign(String),
    #[error("{0}")]
    Client(#[from] crate::http::ClientError),
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

/// Error codes that no retry can fix: the request or the account is wrong.
const PERMANENT_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "InvalidAccessKeyId",
    "InvalidArgumentException",
    "InvalidParameterException",
    "InvalidParameterValue",
    "NoSuchBucket",
    "ResourceNotFoundException",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "ValidationException",
];

impl Error {
    /// Whether trying the same request later can succeed: everything but a service's answer
    /// that the request or the account is wrong. (Missing region or credentials are retried:
    /// the environment or the credential source may come right, and records wait meanwhile.)
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Service { status, code, .. } => {
                !(PERMANENT_CODES.contains(&code.as_str()) && *status < 500)
            }
            _ => true,
        }
    }

    /// The service's error code, if the service answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Service { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The region from the environment (`AWS_REGION`, `AWS_DEFAULT_REGION`) or the shared config
/// file's profile, when the section does not name one.
pub fn default_region(profile: Option<&str>) -> Option<String> {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty())
        .or_else(|| credentials::profile_value(profile, "region"))
}

/// The standard endpoint of `service` in `region` (`https://firehose.eu-west-1.amazonaws.com`).
pub fn endpoint(prefix: &str, region: &str) -> String {
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{prefix}.{region}.{domain}")
}
