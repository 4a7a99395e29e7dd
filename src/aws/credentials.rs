//! AWS credentials, from the standard chain that the AWS SDKs and Fluent Bit walk, in the same
//! order:
//!
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//! 2. the shared files: `~/.aws/credentials` (`AWS_SHARED_CREDENTIALS_FILE`) and `~/.aws/config`
//!    (`AWS_CONFIG_FILE`, keys or `credential_process`), profile `profile` / `AWS_PROFILE` /
//!    `default`;
//! 3. web identity (EKS IRSA): `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, through STS
//!    AssumeRoleWithWebIdentity;
//! 4. the container endpoint (ECS task role, EKS Pod Identity):
//!    `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or `..._FULL_URI` with
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)`;
//! 5. the EC2 instance metadata service (IMDSv2), unless `AWS_EC2_METADATA_DISABLED=true`.
//!
//! With `role_arn` the credentials found are used to call STS AssumeRole. Credentials are cached
//! and fetched again five minutes before they expire.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::{Client, Error, Request, xml_text};

/// Refresh this long before expiry.
const REFRESH_EARLY: Duration = Duration::from_secs(300);
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub expires: Option<SystemTime>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log line.
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    fn usable_for(&self, margin: Duration) -> bool {
        self.expires.is_none_or(|e| SystemTime::now() + margin < e)
    }
}

enum Source {
    Chain,
    AssumeRole {
        sts: Client,
        role_arn: String,
        external_id: Option<String>,
    },
}

/// Where an output's credentials come from, with the last ones cached.
pub struct CredentialsProvider {
    source: Source,
    http: reqwest::Client,
    profile: Option<String>,
    region: String,
    sts_endpoint: Option<String>,
    cache: tokio::sync::Mutex<Option<Credentials>>,
}

impl CredentialsProvider {
    /// The standard chain. `region` and `sts_endpoint` are where web identity tokens are
    /// exchanged.
    pub fn chain(
        http: reqwest::Client,
        profile: Option<String>,
        region: String,
        sts_endpoint: Option<String>,
    ) -> Self {
        CredentialsProvider {
            source: Source::Chain,
            http,
            profile,
            region,
            sts_endpoint,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// Credentials of `role_arn`, assumed through `sts` (whose client signs with the base
    /// credentials).
    pub fn assume_role(
        http: reqwest::Client,
        sts: Client,
        role_arn: String,
        external_id: Option<String>,
    ) -> Self {
        CredentialsProvider {
            source: Source::AssumeRole {
                sts,
                role_arn,
                external_id,
            },
            http,
            profile: None,
            region: String::new(),
            sts_endpoint: None,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// Current credentials: cached ones while they last, else fetched again.
    pub async fn get(&self) -> Result<Credentials, Error> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref()
            && c.usable_for(REFRESH_EARLY)
        {
            return Ok(c.clone());
        }
        // Boxed: assuming a role signs with another provider's credentials.
        match Box::pin(self.fetch()).await {
            Ok(c) => {
                *cache = Some(c.clone());
                Ok(c)
            }
            // A refresh that fails while the old credentials still work is not yet an error.
            Err(e) => match cache.as_ref() {
                Some(old) if old.usable_for(Duration::from_secs(10)) => {
                    tracing::warn!(
                        "refreshing AWS credentials failed, using the current ones: {e}"
                    );
                    Ok(old.clone())
                }
                _ => Err(e),
            },
        }
    }

    async fn fetch(&self) -> Result<Credentials, Error> {
        match &self.source {
            Source::Chain => self.walk_chain().await,
            Source::AssumeRole {
                sts,
                role_arn,
                external_id,
            } => {
                let mut form = vec![
                    ("Action", "AssumeRole"),
                    ("Version", "2011-06-15"),
                    ("RoleArn", role_arn.as_str()),
                    ("RoleSessionName", "logrouter"),
                ];
                if let Some(id) = external_id {
                    form.push(("ExternalId", id));
                }
                let req = Request::new(reqwest::Method::POST, "/", Bytes::from(form_body(&form)))
                    .header(
                        "content-type",
                        "application/x-www-form-urlencoded; charset=utf-8",
                    );
                let resp = sts.send(req).await.map_err(|e| Error::Credentials {
                    source_name: "STS AssumeRole",
                    message: format!("{role_arn} at {}: {e}", sts.endpoint()),
                })?;
                sts_credentials(&resp.body, "STS AssumeRole")
            }
        }
    }

    async fn walk_chain(&self) -> Result<Credentials, Error> {
        if let Some(c) = from_env() {
            return Ok(c);
        }
        let profile = profile_name(self.profile.as_deref());
        if let Some(c) = from_shared_files(&profile)? {
            return Ok(c);
        }
        if let Some(c) = from_process(&profile).await? {
            return Ok(c);
        }
        if let (Some(token_file), Some(role)) =
            (env("AWS_WEB_IDENTITY_TOKEN_FILE"), env("AWS_ROLE_ARN"))
        {
            return self.web_identity(&token_file, &role).await;
        }
        if let Some(c) = self.container_endpoint().await? {
            return Ok(c);
        }
        let imds =
            if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
                "instance metadata disabled".to_string()
            } else {
                match self.instance_metadata().await {
                    Ok(c) => return Ok(c),
                    Err(e) => format!("instance metadata: {e}"),
                }
            };
        Err(Error::NoCredentials(format!(
            "tried the environment (AWS_ACCESS_KEY_ID), profile '{profile}' of the shared credentials and config files, web identity, the container endpoint, {imds}"
        )))
    }

    async fn web_identity(&self, token_file: &str, role: &str) -> Result<Credentials, Error> {
        let fail = |message: String| Error::Credentials {
            source_name: "web identity",
            message,
        };
        let token = std::fs::read_to_string(token_file)
            .map_err(|e| fail(format!("reading {token_file}: {e}")))?;
        let session = env("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "logrouter".into());
        let body = form_body(&[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", role),
            ("RoleSessionName", &session),
            ("WebIdentityToken", token.trim()),
        ]);
        let url = self
            .sts_endpoint
            .clone()
            .unwrap_or_else(|| super::endpoint("sts", &self.region));
        let resp = self
            .http
            .post(&url)
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| fail(format!("{url}: {e}")))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| fail(format!("{url}: {e}")))?;
        if !(200..300).contains(&status) {
            return Err(fail(format!(
                "{url}: {}",
                super::client::service_error(status, &headers, &body)
            )));
        }
        sts_credentials(&body, "web identity")
    }

    async fn container_endpoint(&self) -> Result<Option<Credentials>, Error> {
        let url = if let Some(rel) = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            format!("http://169.254.170.2{rel}")
        } else if let Some(full) = env("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            full
        } else {
            return Ok(None);
        };
        let fail = |message: String| Error::Credentials {
            source_name: "the container credentials endpoint",
            message,
        };
        let token = match env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
            Some(f) => Some(
                std::fs::read_to_string(&f)
                    .map_err(|e| fail(format!("reading {f}: {e}")))?
                    .trim()
                    .to_string(),
            ),
            None => env("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
        };
        let mut req = self.http.get(&url).timeout(METADATA_TIMEOUT * 2);
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        let body = fetch_text(req)
            .await
            .map_err(|e| fail(format!("{url}: {e}")))?;
        json_credentials(&body)
            .map(Some)
            .map_err(|e| fail(format!("{url}: {e}")))
    }

    async fn instance_metadata(&self) -> Result<Credentials, String> {
        let base = env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .unwrap_or_else(|| "http://169.254.169.254".into());
        let base = base.trim_end_matches('/');
        let token = fetch_text(
            self.http
                .put(format!("{base}/latest/api/token"))
                .header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
                .timeout(METADATA_TIMEOUT),
        )
        .await?;
        let get = |path: String| {
            fetch_text(
                self.http
                    .get(format!(
                        "{base}/latest/meta-data/iam/security-credentials/{path}"
                    ))
                    .header("x-aws-ec2-metadata-token", token.trim())
                    .timeout(METADATA_TIMEOUT),
            )
        };
        let roles = get(String::new()).await?;
        let role = roles
            .lines()
            .next()
            .filter(|r| !r.is_empty())
            .ok_or("the instance has no IAM role")?
            .to_string();
        json_credentials(&get(role).await?)
    }
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

fn from_env() -> Option<Credentials> {
    Some(Credentials {
        access_key_id: env("AWS_ACCESS_KEY_ID")?,
        secret_access_key: env("AWS_SECRET_ACCESS_KEY")?,
        session_token: env("AWS_SESSION_TOKEN"),
        expires: None,
    })
}

fn profile_name(configured: Option<&str>) -> String {
    configured
        .map(str::to_string)
        .or_else(|| env("AWS_PROFILE"))
        .unwrap_or_else(|| "default".into())
}

fn aws_file(env_key: &str, name: &str) -> Option<PathBuf> {
    env(env_key)
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".aws").join(name)))
}

/// The `key = value` pairs of section `[name]` of an INI file.
fn ini_section(text: &str, name: &str) -> Option<HashMap<String, String>> {
    let mut found = None;
    let mut current = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = h.trim() == name;
            if current {
                found.get_or_insert_with(HashMap::new);
            }
            continue;
        }
        if current
            && let Some((k, v)) = line.split_once('=')
            && let Some(map) = found.as_mut()
        {
            map.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    found
}

/// The profile's section of the config file (`[profile NAME]`, or `[default]`).
fn config_profile(profile: &str) -> Option<HashMap<String, String>> {
    let text = std::fs::read_to_string(aws_file("AWS_CONFIG_FILE", "config")?).ok()?;
    ini_section(&text, &format!("profile {profile}")).or_else(|| {
        (profile == "default")
            .then(|| ini_section(&text, "default"))
            .flatten()
    })
}

/// A value of the profile in the shared config file, e.g. its `region`.
pub fn profile_value(profile: Option<&str>, key: &str) -> Option<String> {
    config_profile(&profile_name(profile))?
        .remove(key)
        .filter(|v| !v.is_empty())
}

fn keys_of(map: &HashMap<String, String>) -> Option<Credentials> {
    Some(Credentials {
        access_key_id: map
            .get("aws_access_key_id")
            .filter(|v| !v.is_empty())?
            .clone(),
        secret_access_key: map
            .get("aws_secret_access_key")
            .filter(|v| !v.is_empty())?
            .clone(),
        session_token: map.get("aws_session_token").cloned(),
        expires: None,
    })
}

fn from_shared_files(profile: &str) -> Result<Option<Credentials>, Error> {
    if let Some(path) = aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials")
        && let Ok(text) = std::fs::read_to_string(&path)
        && let Some(c) = ini_section(&text, profile).as_ref().and_then(keys_of)
    {
        return Ok(Some(c));
    }
    Ok(config_profile(profile).as_ref().and_then(keys_of))
}

/// `credential_process` of the profile: a command that prints the credentials as JSON.
async fn from_process(profile: &str) -> Result<Option<Credentials>, Error> {
    let Some(cmd) = config_profile(profile).and_then(|mut p| p.remove("credential_process")) else {
        return Ok(None);
    };
    let fail = |message: String| Error::Credentials {
        source_name: "credential_process",
        message,
    };
    let run = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .map_err(|_| fail("did not finish within 30 s".into()))?
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(format!("exited with {}", out.status)));
    }
    json_credentials(&String::from_utf8_lossy(&out.stdout))
        .map(Some)
        .map_err(fail)
}

async fn fetch_text(req: reqwest::RequestBuilder) -> Result<String, String> {
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    Ok(text)
}

fn expiry(s: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(SystemTime::from)
}

/// The JSON of the container endpoint, IMDS and `credential_process`.
fn json_credentials(text: &str) -> Result<Credentials, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON credentials: {e}"))?;
    let field = |k: &str| v[k].as_str().filter(|s| !s.is_empty()).map(str::to_string);
    Ok(Credentials {
        access_key_id: field("AccessKeyId").ok_or("no AccessKeyId in the answer")?,
        secret_access_key: field("SecretAccessKey").ok_or("no SecretAccessKey in the answer")?,
        session_token: field("Token").or_else(|| field("SessionToken")),
        expires: field("Expiration").and_then(|e| expiry(&e)),
    })
}

/// The `<Credentials>` of an STS answer.
fn sts_credentials(body: &[u8], source_name: &'static str) -> Result<Credentials, Error> {
    let text = String::from_utf8_lossy(body);
    let field = |k: &str| xml_text(&text, k).filter(|s| !s.is_empty());
    let missing = || Error::Credentials {
        source_name,
        message: "the answer holds no credentials".into(),
    };
    Ok(Credentials {
        access_key_id: field("AccessKeyId").ok_or_else(missing)?,
        secret_access_key: field("SecretAccessKey").ok_or_else(missing)?,
        session_token: field("SessionToken"),
        expires: field("Expiration").and_then(|e| expiry(&e)),
    })
}

/// `application/x-www-form-urlencoded` of the pairs.
fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections_and_json_and_sts_answers() {
        let text = "# c\n[default]\naws_access_key_id = A\naws_secret_access_key=B\n\n[profile x]\nregion = eu-west-1\n";
        let d = ini_section(text, "default").unwrap();
        let c = keys_of(&d).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("A", "B")
        );
        assert_eq!(
            ini_section(text, "profile x").unwrap()["region"],
            "eu-west-1"
        );
        assert!(ini_section(text, "nope").is_none());

        let c = json_credentials(
            r#"{"Code":"Success","AccessKeyId":"K","SecretAccessKey":"s3cr3t","Token":"t0k3n","Expiration":"2030-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(c.session_token.as_deref(), Some("t0k3n"));
        assert!(c.usable_for(REFRESH_EARLY));
        assert!(json_credentials("{}").is_err());
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("s3cr3t") && !debug.contains("t0k3n"),
            "{debug}"
        );

        let c = sts_credentials(
            b"<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>K</AccessKeyId><SecretAccessKey>S</SecretAccessKey><SessionToken>T</SessionToken><Expiration>2000-01-01T00:00:00.000Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>",
            "sts",
        )
        .unwrap();
        assert!(!c.usable_for(Duration::ZERO), "expired in 2000");
        assert_eq!(form_body(&[("a", "x y/z"), ("b", "c")]), "a=x%20y%2Fz&b=c");
    }
}
