//! Signed requests to one AWS service in one region.

use std::sync::Arc;
use std::time::SystemTime;

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;

use super::{CredentialsProvider, Error};

/// A service as SigV4 names it, with the signing rules it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Firehose,
    S3,
    Sts,
    Logs,
}

impl Service {
    fn signing_name(self) -> &'static str {
        match self {
            Service::Firehose => "firehose",
            Service::S3 => "s3",
            Service::Sts => "sts",
            Service::Logs => "logs",
        }
    }

    fn settings(self) -> SigningSettings {
        let mut s = SigningSettings::default();
        if self == Service::S3 {
            // S3 signs the path as sent (no second encoding, no normalisation) and wants the
            // payload hash in a header.
            s.percent_encoding_mode = PercentEncodingMode::Single;
            s.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            s.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        s
    }
}

/// One request: the body is in memory (`Bytes`) and is hashed for the signature, or is streamed
/// from a reader (a file), sent with `UNSIGNED-PAYLOAD` (S3 only).
pub struct Request {
    pub method: reqwest::Method,
    /// Path and query, already percent-encoded (`/`, `/bucket/key?uploads`).
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

pub enum Body {
    Bytes(Bytes),
    Stream {
        reader: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
        len: u64,
    },
}

impl Request {
    pub fn new(method: reqwest::Method, path: impl Into<String>, body: Bytes) -> Self {
        Request {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: Body::Bytes(body),
        }
    }

    /// A PUT of `len` bytes read from `reader`.
    pub fn stream(
        path: impl Into<String>,
        reader: impl tokio::io::AsyncRead + Send + Unpin + 'static,
        len: u64,
    ) -> Self {
        Request {
            method: reqwest::Method::PUT,
            path: path.into(),
            headers: Vec::new(),
            body: Body::Stream {
                reader: Box::new(reader),
                len,
            },
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// A successful (2xx) answer.
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

/// Sends signed requests to one endpoint of one service.
pub struct Client {
    http: reqwest::Client,
    service: Service,
    region: String,
    /// Scheme, host and port, no trailing slash (`https://firehose.us-east-1.amazonaws.com`).
    endpoint: String,
    credentials: Arc<CredentialsProvider>,
}

impl Client {
    pub fn new(
        http: reqwest::Client,
        service: Service,
        region: String,
        endpoint: String,
        credentials: Arc<CredentialsProvider>,
    ) -> Self {
        Client {
            http,
            service,
            region,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            credentials,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Fetches the credentials now, so that a problem shows at start rather than at a flush.
    pub async fn check_credentials(&self) -> Result<(), Error> {
        self.credentials.get().await.map(|_| ())
    }

    /// Signs and sends `req`; a non-2xx answer becomes [`Error::Service`] with the service's
    /// error code and message.
    pub async fn send(&self, req: Request) -> Result<Response, Error> {
        let creds = self.credentials.get().await?;
        let url = format!("{}{}", self.endpoint, req.path);
        let host = host_header(&self.endpoint);
        let now = SystemTime::now();
        let identity = aws_credential_types::Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.clone(),
            creds.session_token.clone(),
            None,
            "logrouter",
        )
        .into();
        let settings = self.service.settings();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service.signing_name())
            .time(now)
            .settings(settings)
            .build()
            .map_err(|e| Error::Sign(e.to_string()))?
            .into();
        let mut headers: Vec<(&str, &str)> = vec![("host", host)];
        headers.extend(req.headers.iter().map(|(k, v)| (*k, v.as_str())));
        let body = match &req.body {
            Body::Bytes(b) => SignableBody::Bytes(b),
            Body::Stream { .. } => SignableBody::UnsignedPayload,
        };
        let signable = SignableRequest::new(req.method.as_str(), &url, headers.into_iter(), body)
            .map_err(|e| Error::Sign(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| Error::Sign(e.to_string()))?
            .into_parts();
        // The Host signed is the Host sent (hyper would leave out a default port).
        let mut builder = self
            .http
            .request(req.method.clone(), &url)
            .header("host", host);
        for (k, v) in &req.headers {
            builder = builder.header(*k, v);
        }
        for (k, v) in instructions.headers() {
            builder = builder.header(k, v);
        }
        builder = match req.body {
            Body::Bytes(b) => builder.body(b),
            Body::Stream { reader, len } => {
                builder.header(reqwest::header::CONTENT_LENGTH, len).body(
                    reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(reader)),
                )
            }
        };
        let resp = builder.send().await.map_err(|source| Error::Http {
            url: url.clone(),
            source,
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|source| Error::Http {
            url: url.clone(),
            source,
        })?;
        if (200..300).contains(&status) {
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
        Err(service_error(status, &headers, &body))
    }
}

/// The `Host` header for an endpoint URL: what follows the scheme, up to the path.
fn host_header(endpoint: &str) -> &str {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// The error an AWS service answered: JSON (`__type`, `message`) for the JSON protocols, XML
/// (`<Code>`, `<Message>`) for S3 and STS.
pub(super) fn service_error(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> Error {
    let text = String::from_utf8_lossy(body);
    let mut code = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v).to_string());
    let mut message = None;
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if code.is_none() {
            code = v["__type"].as_str().or(v["code"].as_str()).map(|t| {
                // "com.amazonaws.firehose#ResourceNotFoundException" -> the last part.
                t.rsplit('#').next().unwrap_or(t).to_string()
            });
        }
        message = v["message"]
            .as_str()
            .or(v["Message"].as_str())
            .map(str::to_string);
    } else if text.contains("<Error") {
        code = code.or_else(|| super::xml_text(&text, "Code"));
        message = super::xml_text(&text, "Message");
    }
    let message = message.unwrap_or_else(|| {
        let t = text.trim();
        let cut = t.char_indices().nth(200).map_or(t.len(), |(i, _)| i);
        t[..cut].to_string()
    });
    Error::Service {
        status,
        code: code.unwrap_or_else(|| format!("HTTP{status}")),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_from_json_xml_and_headers() {
        let h = reqwest::header::HeaderMap::new();
        let e = service_error(
            400,
            &h,
            br#"{"__type":"com.amazonaws#ResourceNotFoundException","message":"no stream"}"#,
        );
        assert_eq!(e.code(), Some("ResourceNotFoundException"));
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("no stream"), "{e}");
        let e = service_error(
            403,
            &h,
            b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>no</Message></Error>",
        );
        assert_eq!(e.code(), Some("AccessDenied"));
        assert!(!e.is_retryable());
        let e = service_error(
            400,
            &h,
            br#"{"__type":"ThrottlingException","message":"slow down"}"#,
        );
        assert!(e.is_retryable());
        let e = service_error(503, &h, b"busy");
        assert_eq!(e.code(), Some("HTTP503"));
        assert!(e.is_retryable());
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "x-amzn-errortype",
            "ServiceUnavailableException:http://x".parse().unwrap(),
        );
        assert_eq!(
            service_error(500, &h, b"").code(),
            Some("ServiceUnavailableException")
        );
        assert_eq!(host_header("https://h.example:8443/x"), "h.example:8443");
    }
}
