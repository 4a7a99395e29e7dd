//! `ecs`: adds ECS task metadata to records, from the task metadata endpoint v4.
//!
//! At start the filter reads `${ECS_CONTAINER_METADATA_URI_V4}/task` once (a missing variable or
//! an unreachable endpoint is a start-up error, not a per-record one) and keeps it. Each
//! `ADD key TEMPLATE` appends `key` with the template's variables filled in:
//! `$ClusterName`, `$ClusterARN`, `$TaskARN`, `$TaskID`, `$TaskDefinitionFamily`,
//! `$TaskDefinitionVersion`, `$AvailabilityZone`, `$LaunchType`, and for the record's container
//! (its `container_id` joined to the task's `DockerId`, or the tag after `ECS_Tag_Prefix`):
//! `$ContainerID`, `$ECSContainerName`, `$DockerContainerName`, `$ContainerImage`,
//! `$ContainerImageID`. A container the task does not list leaves its variables empty.

use std::time::Duration;

use serde_json::Value;

use super::{Filter, FilterOutput, tokens};
use crate::config::{ConfigError, Section};
use crate::msgpack::ValueRef;
use crate::record::{Event, Tag};

const TASK_VARS: &[&str] = &[
    "ClusterName",
    "ClusterARN",
    "TaskARN",
    "TaskID",
    "TaskDefinitionFamily",
    "TaskDefinitionVersion",
    "AvailabilityZone",
    "LaunchType",
];
const CONTAINER_VARS: &[&str] = &[
    "ContainerID",
    "ECSContainerName",
    "DockerContainerName",
    "ContainerImage",
    "ContainerImageID",
];

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Task(usize),
    Container(usize),
}

/// One container of the task: its `DockerId` and the values of `CONTAINER_VARS`.
struct Container {
    docker_id: String,
    values: Vec<String>,
}

pub struct Ecs {
    adds: Vec<(Box<[u8]>, Vec<Part>)>,
    task: Vec<String>,
    containers: Vec<Container>,
    tag_prefix: Option<String>,
}

impl Ecs {
    pub fn from_section(section: &Section) -> Result<Self, ConfigError> {
        let mut adds = Vec::new();
        for e in section.all("add") {
            let t = tokens(e, 2)?;
            let [key, template] = t.as_slice() else {
                return Err(ConfigError::new(&e.loc, "ADD needs a key and a template"));
            };
            let parts = parse_template(template).map_err(|m| ConfigError::new(&e.loc, m))?;
            adds.push((key.as_bytes().into(), parts));
        }
        if adds.is_empty() {
            return Err(ConfigError::new(
                &section.loc,
                "filter ecs needs at least one ADD",
            ));
        }
        for key in [
            "ecs_meta_cache_ttl",
            "ecs_meta_host",
            "ecs_meta_port",
            "agent_endpoint_retries",
            "cluster_metadata_only",
        ] {
            section.all(key).for_each(drop);
        }
        let uri = std::env::var("ECS_CONTAINER_METADATA_URI_V4").map_err(|_| {
            ConfigError::new(
                &section.loc,
                "filter ecs: ECS_CONTAINER_METADATA_URI_V4 is not set (is the router running in an ECS task?)",
            )
        })?;
        let url = format!("{}/task", uri.trim_end_matches('/'));
        let doc = fetch(&url).map_err(|e| {
            ConfigError::new(
                &section.loc,
                format!("filter ecs: cannot read task metadata from {url}: {e}"),
            )
        })?;
        let (task, containers) = read_task(&doc).map_err(|e| {
            ConfigError::new(
                &section.loc,
                format!("filter ecs: task metadata from {url}: {e}"),
            )
        })?;
        tracing::info!(
            "[filter:ecs] task {} of cluster {}: {} containers",
            task[3],
            task[0],
            containers.len()
        );
        Ok(Ecs {
            adds,
            task,
            containers,
            tag_prefix: section.str("ecs_tag_prefix").map(str::to_string),
        })
    }

    fn container(&self, tag: &str, event: &Event) -> Option<&Container> {
        let by_id = |id: &[u8]| {
            let id = std::str::from_utf8(id).ok()?;
            (id.len() >= 12).then_some(())?;
            self.containers.iter().find(|c| c.docker_id.starts_with(id))
        };
        if let Some(ValueRef::Str(id)) = event.get("container_id") {
            return by_id(id);
        }
        let prefix = self.tag_prefix.as_deref()?;
        by_id(tag.strip_prefix(prefix)?.as_bytes())
    }
}

fn parse_template(t: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find('$') {
        if i > 0 {
            parts.push(Part::Text(rest[..i].to_string()));
        }
        let after = &rest[i + 1..];
        let end = after
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        let name = &after[..end];
        let part = if let Some(n) = TASK_VARS.iter().position(|v| *v == name) {
            Part::Task(n)
        } else if let Some(n) = CONTAINER_VARS.iter().position(|v| *v == name) {
            Part::Container(n)
        } else {
            return Err(format!(
                "'${name}' is not an ECS variable (known: {}, {})",
                TASK_VARS.join(", "),
                CONTAINER_VARS.join(", ")
            ));
        };
        parts.push(part);
        rest = &after[end..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

/// The task's variables (in `TASK_VARS` order) and its containers.
fn read_task(doc: &Value) -> Result<(Vec<String>, Vec<Container>), String> {
    let s = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let task_arn = s(doc, "TaskARN");
    if task_arn.is_empty() {
        return Err("no TaskARN in the document".into());
    }
    let cluster = s(doc, "Cluster");
    let task = vec![
        cluster.rsplit('/').next().unwrap_or_default().to_string(),
        cluster,
        task_arn.clone(),
        task_arn.rsplit('/').next().unwrap_or_default().to_string(),
        s(doc, "Family"),
        s(doc, "Revision"),
        s(doc, "AvailabilityZone"),
        s(doc, "LaunchType"),
    ];
    let containers = doc
        .get("Containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| Container {
                    docker_id: s(c, "DockerId"),
                    values: vec![
                        s(c, "DockerId"),
                        s(c, "Name"),
                        s(c, "DockerName"),
                        s(c, "Image"),
                        s(c, "ImageID"),
                    ],
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((task, containers))
}

/// GETs `url` (plain HTTP: the metadata endpoint is link-local) and parses the JSON, on a
/// thread of its own so it works whether or not a runtime is running.
fn fetch(url: &str) -> Result<Value, String> {
    let url = url.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), get(&url))
                .await
                .map_err(|_| "timed out after 5s".to_string())?
        })
    })
    .join()
    .map_err(|_| "metadata fetch thread failed".to_string())?
}

async fn get(url: &str) -> Result<Value, String> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;

    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// metadata endpoints are supported".into());
    }
    let host = uri.host().ok_or("URL has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, host)
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
}

impl Filter for Ecs {
    fn filter(&self, tag: &Tag, event: Event, out: &mut FilterOutput<'_>) {
        let container = self.container(tag, &event);
        let mut b = out.builder();
        b.copy_fields(event.fields(), |_| true);
        let mut value = String::new();
        for (key, parts) in &self.adds {
            value.clear();
            for p in parts {
                match p {
                    Part::Text(t) => value.push_str(t),
                    Part::Task(i) => value.push_str(&self.task[*i]),
                    Part::Container(i) => {
                        if let Some(c) = container {
                            value.push_str(&c.values[*i]);
                        }
                    }
                }
            }
            b.str(key, value.as_bytes());
        }
        let built = b.finish_event(event.time);
        out.emit(built);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_task_documents() {
        assert!(parse_template("$Nope").is_err());
        let parts = parse_template("task/$TaskID@$ClusterName").unwrap();
        assert_eq!(parts.len(), 4);
        let doc: Value = serde_json::from_str(
            r#"{"Cluster":"arn:aws:ecs:eu-west-1:1:cluster/prod","TaskARN":"arn:aws:ecs:eu-west-1:1:task/prod/abc123",
               "Family":"web","Revision":"42","AvailabilityZone":"eu-west-1b","LaunchType":"FARGATE",
               "Containers":[{"DockerId":"d1","Name":"app","DockerName":"ecs-web-42-app","Image":"img:1","ImageID":"sha256:1"}]}"#,
        )
        .unwrap();
        let (task, containers) = read_task(&doc).unwrap();
        assert_eq!(
            task,
            [
                "prod",
                "arn:aws:ecs:eu-west-1:1:cluster/prod",
                "arn:aws:ecs:eu-west-1:1:task/prod/abc123",
                "abc123",
                "web",
                "42",
                "eu-west-1b",
                "FARGATE"
            ]
        );
        assert_eq!(containers[0].values[1], "app");
        assert!(read_task(&serde_json::json!({})).is_err());
    }
}
