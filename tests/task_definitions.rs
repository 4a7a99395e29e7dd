//! The deployment files, checked the way a user would before shipping them: every config in
//! `docker/` and `ecs-task-definitions/` loads (`--dry-run`) where the container reads it, and each
//! ECS task definition agrees with the config FireLens generates from it.
//!
//! Neither Docker nor AWS is needed: the container's filesystem is laid out in a temp dir from
//! the Dockerfiles' COPY lines (so a Dockerfile that stops copying a file fails here), and the
//! absolute paths of `@INCLUDE` and `Parsers_File` lines are pointed into it, as
//! `ecs-task-definitions/dry-run.sh` does for people. `--dry-run` binds no socket.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::{BIN, TempDir};

/// Where FireLens mounts the config it generates, and where the image keeps its default one.
const FIRELENS_CONFIG: &str = "/fluent-bit/etc/fluent-bit.conf";
const UPTIME_CHECK: &str = "curl -f http://127.0.0.1:2020/api/v1/uptime || exit 1";
const HEALTH_CHECK: &str = "curl -f http://127.0.0.1:2020/api/v1/health || exit 1";
/// The FireLens task examples, one directory each under ecs-task-definitions/.
const TASK_EXAMPLES: &[&str] = &["nginx-firehose", "split-s3-datadog"];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn string<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, found {v}"))
}

fn on(v: Option<&str>) -> bool {
    v.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "on" | "true" | "yes" | "1"))
}

// ---- Dockerfiles ---------------------------------------------------------------------------

/// The instruction lines of a Dockerfile's last stage (comments and blank lines left out).
fn last_stage(dockerfile: &str) -> Vec<&str> {
    let mut stage = Vec::new();
    for line in dockerfile.lines() {
        let body = line.trim();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let first = body.split_whitespace().next().unwrap_or("");
        if first.eq_ignore_ascii_case("FROM") {
            stage.clear();
        }
        stage.push(body);
    }
    stage
}

/// `COPY` lines of the last stage: `(source, destination, from another stage)`.
fn copies(dockerfile: &str) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for line in last_stage(dockerfile) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !words[0].eq_ignore_ascii_case("COPY") {
            continue;
        }
        let from_stage = words.iter().any(|w| w.starts_with("--from"));
        let args: Vec<&str> = words[1..]
            .iter()
            .copied()
            .filter(|w| !w.starts_with("--"))
            .collect();
        assert_eq!(args.len(), 2, "one source per COPY line, please: {line}");
        let mut dest = args[1].to_string();
        if dest.ends_with('/') {
            let name = Path::new(args[0]).file_name().unwrap().to_string_lossy();
            dest.push_str(&name);
        }
        out.push((args[0].to_string(), dest, from_stage));
    }
    out
}

/// The JSON-array form of an instruction (`ENTRYPOINT`, `CMD`) in the last stage.
fn exec_form(dockerfile: &str, instruction: &str) -> Vec<String> {
    let line = last_stage(dockerfile)
        .into_iter()
        .rev()
        .find(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(instruction))
        })
        .unwrap_or_else(|| panic!("no {instruction} in the last stage"));
    let array = line[instruction.len()..].trim();
    serde_json::from_str(array).unwrap_or_else(|e| panic!("{instruction} {array}: {e}"))
}

/// A container's filesystem, in a temp dir.
struct Root(TempDir);

impl Root {
    fn new() -> Root {
        Root(TempDir::new())
    }

    /// Where `in_container` (an absolute path) is in the temp dir.
    fn path(&self, in_container: &str) -> PathBuf {
        self.0.0.join(in_container.trim_start_matches('/'))
    }

    /// Writes a config file where the container has it, its absolute `@INCLUDE` and
    /// `Parsers_File` paths pointed into the temp dir.
    fn put(&self, in_container: &str, text: &str) {
        let mut mapped = String::new();
        for line in text.lines() {
            let body = line.trim_start();
            let indent = &line[..line.len() - body.len()];
            let (key, value) = body
                .split_once(char::is_whitespace)
                .map_or((body, ""), |(k, v)| (k, v.trim()));
            let reads_a_file =
                key.eq_ignore_ascii_case("@include") || key.eq_ignore_ascii_case("parsers_file");
            if reads_a_file && value.starts_with('/') {
                mapped.push_str(&format!("{indent}{key} {}\n", self.path(value).display()));
            } else {
                mapped.push_str(line);
                mapped.push('\n');
            }
        }
        let path = self.path(in_container);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, mapped).unwrap();
    }

    /// Does what the `COPY` lines of `dockerfile`'s last stage do, from the build `context`.
    fn build(&self, dockerfile: &Path, context: &Path) {
        for (src, dest, from_stage) in copies(&read(dockerfile)) {
            if !from_stage {
                self.put(&dest, &read(&context.join(&src)));
            }
        }
    }

    /// The image built by docker/Dockerfile.
    fn image() -> Root {
        let root = Root::new();
        root.build(&repo("docker/Dockerfile"), &repo(""));
        root
    }
}

// ---- Configs -------------------------------------------------------------------------------

/// A section of a classic config with its entries in order; an `@INCLUDE` line is a section of
/// kind `@INCLUDE` with one entry, `path`.
#[derive(Debug)]
struct Sec {
    kind: String,
    entries: Vec<(String, String)>,
}

impl Sec {
    fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    fn is(&self, kind: &str, name: &str) -> bool {
        self.kind == kind
            && self
                .get("Name")
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
    }
}

fn sections(text: &str) -> Vec<Sec> {
    let mut out: Vec<Sec> = Vec::new();
    for line in text.lines() {
        let body = line.trim();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let (key, value) = body
            .split_once(char::is_whitespace)
            .map_or((body, ""), |(k, v)| (k, v.trim()));
        if let Some(name) = body.strip_prefix('[').and_then(|b| b.strip_suffix(']')) {
            out.push(Sec {
                kind: name.trim().to_ascii_uppercase(),
                entries: Vec::new(),
            });
        } else if key.eq_ignore_ascii_case("@include") {
            out.push(Sec {
                kind: "@INCLUDE".into(),
                entries: vec![("path".into(), value.into())],
            });
        } else {
            let sec = out.last_mut().expect("an entry before any section");
            sec.entries.push((key.into(), value.into()));
        }
    }
    out
}

/// The last `[SERVICE]` section of a config.
fn service(text: &str) -> Sec {
    sections(text)
        .into_iter()
        .rev()
        .find(|s| s.kind == "SERVICE")
        .expect("a [SERVICE] section")
}

struct DryRun {
    stdout: String,
    stderr: String,
}

/// `logrouter --dry-run -c config` must succeed.
fn assert_loads(config: &Path, env: &[(String, String)]) -> DryRun {
    let out = Command::new(BIN)
        .arg("--dry-run")
        .arg("-c")
        .arg(config)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run logrouter");
    let run = DryRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        out.status.success() && run.stderr.contains("configuration test is successful"),
        "{} does not load:\n{}{}",
        config.display(),
        run.stdout,
        run.stderr
    );
    run
}

// ---- The log router container --------------------------------------------------------------

/// What makes a container definition a sound FireLens log router; returns its config-file-value.
fn check_log_router(c: &Value, what: &str) -> String {
    assert_eq!(
        c["essential"].as_bool(),
        Some(true),
        "{what}: the log router should be essential, so a router that cannot start stops the task"
    );
    assert_eq!(c["user"].as_str(), Some("0"), "{what}: FireLens needs root");
    let firelens = &c["firelensConfiguration"];
    assert_eq!(firelens["type"].as_str(), Some("fluentbit"), "{what}");
    let options = &firelens["options"];
    assert_eq!(options["config-file-type"].as_str(), Some("file"), "{what}");
    assert_eq!(
        options["enable-ecs-log-metadata"].as_str(),
        Some("true"),
        "{what}"
    );
    let file = string(&options["config-file-value"], "config-file-value");
    assert!(
        file.starts_with('/'),
        "{what}: config-file-value is a path in the container"
    );
    assert_ne!(
        file, FIRELENS_CONFIG,
        "{what}: FireLens mounts its generated config there; the user file needs another path"
    );

    let check = &c["healthCheck"];
    let command: Vec<&str> = check["command"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: healthCheck.command"))
        .iter()
        .map(|v| string(v, "healthCheck.command"))
        .collect();
    assert!(
        command == ["CMD-SHELL", UPTIME_CHECK] || command == ["CMD-SHELL", HEALTH_CHECK],
        "{what}: unexpected health check {command:?}"
    );
    assert_eq!(check["interval"].as_u64(), Some(10), "{what}");
    assert_eq!(check["timeout"].as_u64(), Some(5), "{what}");
    assert_eq!(check["retries"].as_u64(), Some(2), "{what}");
    assert_eq!(check["startPeriod"].as_u64(), Some(30), "{what}");
    assert!(c["stopTimeout"].as_u64().is_some(), "{what}: stopTimeout");
    assert!(
        c["memoryReservation"].as_u64().is_some(),
        "{what}: memoryReservation (FireLens derives Mem_Buf_Limit from it)"
    );
    file.to_string()
}

/// The router's own settings in its config file agree with its container definition.
fn check_router_settings(config: &str, router: &Value, what: &str) {
    let s = service(config);
    let grace: u64 = s
        .get("Grace")
        .unwrap_or_else(|| panic!("{what}: set Grace"))
        .trim_end_matches('s')
        .parse()
        .unwrap_or_else(|e| panic!("{what}: Grace in whole seconds: {e}"));
    let stop = router["stopTimeout"].as_u64().unwrap();
    assert_eq!(
        grace, stop,
        "{what}: Grace should use the whole stopTimeout (SIGTERM to SIGKILL)"
    );
    assert!(
        on(s.get("HTTP_Server")),
        "{what}: the health check needs HTTP_Server On"
    );
    assert_eq!(s.get("HTTP_Port"), Some("2020"), "{what}");
    if router["healthCheck"]["command"][1].as_str() == Some(HEALTH_CHECK) {
        assert!(
            on(s.get("Health_Check")),
            "{what}: /api/v1/health needs Health_Check On"
        );
    }
}

/// The log router of each task is the one documented in log-router/container-definition.json.
fn check_same_router(router: &Value, what: &str) {
    let documented = json(&repo(
        "ecs-task-definitions/log-router/container-definition.json",
    ));
    for key in [
        "name",
        "essential",
        "user",
        "stopTimeout",
        "healthCheck",
        "firelensConfiguration",
    ] {
        assert_eq!(
            router[key], documented[key],
            "{what}: {key} differs from log-router/container-definition.json"
        );
    }
}

// ---- FireLens task examples ----------------------------------------------------------------

fn check_task_example(name: &str) {
    let dir = repo("ecs-task-definitions").join(name);
    let task = json(&dir.join("task-definition.json"));
    let family = string(&task["family"], "family");
    let containers = task["containerDefinitions"]
        .as_array()
        .expect("containerDefinitions");
    let routers: Vec<&Value> = containers
        .iter()
        .filter(|c| c.get("firelensConfiguration").is_some())
        .collect();
    assert_eq!(routers.len(), 1, "{name}: one log router per task");
    let router = routers[0];
    let user_file = check_log_router(router, name);
    check_same_router(router, name);

    let generated_text = read(&dir.join("generated/fluent-bit.conf"));
    let generated = sections(&generated_text);

    // The agent's order: inputs, filters, the user's file, outputs.
    let rank = |kind: &str| match kind {
        "INPUT" => 0,
        "FILTER" => 1,
        "@INCLUDE" => 2,
        "OUTPUT" => 3,
        other => panic!("{name}: FireLens writes no [{other}] section"),
    };
    let ranks: Vec<i32> = generated.iter().map(|s| rank(&s.kind)).collect();
    assert!(
        ranks.is_sorted(),
        "{name}: sections out of FireLens's order: {ranks:?}"
    );
    let includes: Vec<&str> = generated
        .iter()
        .filter(|s| s.kind == "@INCLUDE")
        .filter_map(|s| s.get("path"))
        .collect();
    assert_eq!(
        includes,
        [user_file.as_str()],
        "{name}: @INCLUDE of config-file-value"
    );

    // The Unix socket input, with Mem_Buf_Limit = memoryReservation / 2 in MB (25MB if unset).
    let unix = generated
        .iter()
        .find(|s| s.is("INPUT", "forward") && s.get("unix_path").is_some())
        .unwrap_or_else(|| panic!("{name}: no forward input on the Unix socket"));
    assert_eq!(
        unix.get("unix_path"),
        Some("/var/run/fluent.sock"),
        "{name}"
    );
    let reservation = router
        .get("memoryReservation")
        .or_else(|| router.get("memory"))
        .and_then(Value::as_u64);
    let limit = reservation.map_or_else(|| "25MB".to_string(), |mb| format!("{}MB", mb / 2));
    assert_eq!(unix.get("Mem_Buf_Limit"), Some(limit.as_str()), "{name}");

    // TCP forward and the health-check input and output, by network mode.
    let network = task["networkMode"].as_str().unwrap_or("bridge");
    let tcp_forward: Vec<&Sec> = generated
        .iter()
        .filter(|s| s.is("INPUT", "forward") && s.get("Port").is_some())
        .collect();
    let health_in: Vec<&Sec> = generated.iter().filter(|s| s.is("INPUT", "tcp")).collect();
    let health_out: Vec<&Sec> = generated
        .iter()
        .filter(|s| s.is("OUTPUT", "null"))
        .collect();
    if network == "awsvpc" || network == "bridge" {
        let listen = if network == "awsvpc" {
            "127.0.0.1"
        } else {
            "0.0.0.0"
        };
        assert_eq!(tcp_forward.len(), 1, "{name}: one TCP forward input");
        assert_eq!(tcp_forward[0].get("Listen"), Some(listen), "{name}");
        assert_eq!(tcp_forward[0].get("Port"), Some("24224"), "{name}");
        assert_eq!(health_in.len(), 1, "{name}: the health-check tcp input");
        assert_eq!(health_in[0].get("Tag"), Some("firelens-healthcheck"));
        assert_eq!(health_in[0].get("Listen"), Some("127.0.0.1"));
        assert_eq!(health_in[0].get("Port"), Some("8877"));
        assert_eq!(health_out.len(), 1, "{name}: the health-check null output");
        assert_eq!(health_out[0].get("Match"), Some("firelens-healthcheck"));
    } else {
        assert!(
            tcp_forward.is_empty() && health_in.is_empty() && health_out.is_empty(),
            "{name}: network mode {network} gets no TCP inputs"
        );
    }

    // ECS metadata on every record.
    let meta = generated
        .iter()
        .find(|s| s.is("FILTER", "record_modifier"))
        .unwrap_or_else(|| panic!("{name}: no ECS metadata filter"));
    assert_eq!(meta.get("Match"), Some("*"), "{name}");
    let records: BTreeMap<&str, &str> = meta
        .entries
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Record"))
        .map(|(_, v)| v.split_once(' ').expect("Record KEY VALUE"))
        .collect();
    assert!(records.contains_key("ecs_cluster"), "{name}");
    assert!(records.contains_key("ecs_task_arn"), "{name}");
    assert!(
        records
            .get("ecs_task_definition")
            .is_some_and(|d| d.starts_with(&format!("{family}:"))),
        "{name}: ecs_task_definition is family:revision"
    );
    let on_ec2 = task["requiresCompatibilities"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v.as_str() == Some("EC2")));
    assert_eq!(
        records.contains_key("ec2_instance_id"),
        on_ec2,
        "{name}: ec2_instance_id is added on EC2 only"
    );

    // One [OUTPUT] per app container, from its logConfiguration; secrets as ${name_index}.
    let mut env: Vec<(String, String)> = Vec::new();
    let mut app_outputs = 0;
    for (index, c) in containers.iter().enumerate() {
        let log = &c["logConfiguration"];
        if log["logDriver"].as_str() != Some("awsfirelens") {
            continue;
        }
        let container = string(&c["name"], "name");
        let tag_match = format!("{container}-firelens*");
        let has_grep = |rule: &str, pattern: &str| {
            let want = format!("log {pattern}");
            generated.iter().any(|s| {
                s.is("FILTER", "grep")
                    && s.get("Match") == Some(tag_match.as_str())
                    && s.get(rule) == Some(want.as_str())
            })
        };
        let no_options = serde_json::Map::new();
        let options = log["options"].as_object().unwrap_or(&no_options);
        let mut expected: Vec<(String, String)> = Vec::new();
        for (key, value) in options {
            let value = string(value, key);
            match key.as_str() {
                "Name" | "log-driver-buffer-limit" => {}
                "include-pattern" => assert!(
                    has_grep("Regex", value),
                    "{name}: include-pattern of {container} is a grep Regex filter"
                ),
                "exclude-pattern" => assert!(
                    has_grep("Exclude", value),
                    "{name}: exclude-pattern of {container} is a grep Exclude filter"
                ),
                _ => expected.push((key.clone(), value.to_string())),
            }
        }
        if let Some(secrets) = log["secretOptions"].as_array() {
            for secret in secrets {
                let key = string(&secret["name"], "secretOptions name");
                let var = format!("{key}_{index}");
                expected.push((key.to_string(), format!("${{{var}}}")));
                env.push((var, "dry-run-secret".to_string()));
            }
        }
        let Some(plugin) = options.get("Name") else {
            assert!(
                expected.is_empty(),
                "{name}: FireLens refuses output options without Name ({container})"
            );
            continue;
        };
        let output = generated
            .iter()
            .find(|s| s.kind == "OUTPUT" && s.get("Match") == Some(tag_match.as_str()))
            .unwrap_or_else(|| panic!("{name}: no [OUTPUT] with Match {tag_match}"));
        assert_eq!(output.get("Name"), Some(string(plugin, "Name")), "{name}");
        for (key, value) in &expected {
            let found = output
                .entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str());
            assert_eq!(found, Some(value.as_str()), "{name}: {key} of {container}");
        }
        assert_eq!(
            output.entries.len(),
            expected.len() + 2,
            "{name}: the [OUTPUT] of {container} has entries its options do not: {:?}",
            output.entries
        );
        app_outputs += 1;
    }
    let outputs = generated.iter().filter(|s| s.kind == "OUTPUT").count();
    assert_eq!(
        outputs,
        app_outputs + health_out.len(),
        "{name}: FireLens writes no other outputs"
    );

    // The router image with this task's file, and the generated config where FireLens mounts it.
    let root = Root::image();
    root.build(&dir.join("Dockerfile"), &dir);
    assert!(
        root.path(&user_file).exists(),
        "{name}: the image has no {user_file}: the example's Dockerfile must COPY it there"
    );
    root.put(FIRELENS_CONFIG, &generated_text);
    assert_loads(&root.path(FIRELENS_CONFIG), &env);
    check_router_settings(&read(&root.path(&user_file)), router, name);
}

#[test]
fn nginx_firehose() {
    check_task_example("nginx-firehose");
}

#[test]
fn split_s3_datadog() {
    check_task_example("split-s3-datadog");
}

#[test]
fn every_task_example_is_checked() {
    let mut found: Vec<String> = std::fs::read_dir(repo("ecs-task-definitions"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("task-definition.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, TASK_EXAMPLES, "add a test for each task example");
}

#[test]
fn log_router_container_definitions() {
    let dir = repo("ecs-task-definitions/log-router");
    for file in [
        "container-definition.json",
        "container-definition-deep-health.json",
    ] {
        let router = json(&dir.join(file));
        let user_file = check_log_router(&router, file);
        let root = Root::image();
        root.build(&dir.join("Dockerfile"), &dir);
        assert!(
            root.path(&user_file).exists(),
            "{file}: log-router/Dockerfile does not put {user_file} in the image"
        );
        assert_loads(&root.path(&user_file), &[]);
        check_router_settings(&read(&root.path(&user_file)), &router, file);
    }
}

// ---- Docker's fluentd log driver on a host ------------------------------------------------

#[test]
fn docker_host_setup() {
    let dir = repo("ecs-task-definitions/docker-host");
    let daemon = json(&dir.join("daemon.json"));
    assert_eq!(daemon["log-driver"].as_str(), Some("fluentd"));
    let opts = daemon["log-opts"].as_object().expect("log-opts");
    for (key, value) in opts {
        assert!(
            value.is_string(),
            "daemon.json: log-opts values are strings ({key})"
        );
    }
    let address = string(&opts["fluentd-address"], "fluentd-address");
    let host_socket = address
        .strip_prefix("unix://")
        .expect("fluentd-address is a Unix socket");
    assert_eq!(opts["fluentd-async"].as_str(), Some("true"));
    assert_eq!(opts["fluentd-sub-second-precision"].as_str(), Some("true"));
    assert!(opts.contains_key("tag"));

    let config_text = read(&dir.join("fluent-bit.conf"));
    let config = sections(&config_text);
    let unix_path = config
        .iter()
        .find(|s| s.is("INPUT", "forward"))
        .and_then(|s| s.get("unix_path"))
        .expect("a forward input on a Unix socket");

    // What run-logrouter.sh gives `docker run`.
    let script = read(&dir.join("run-logrouter.sh"));
    let code: Vec<&str> = script
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    let code = code.join(" ");
    let words: Vec<&str> = code.split_whitespace().collect();
    let flag = |names: &[&str]| -> Vec<String> {
        words
            .windows(2)
            .filter(|w| names.contains(&w[0]))
            .map(|w| w[1].trim_matches('"').to_string())
            .collect()
    };
    let mounts: Vec<(String, String)> = flag(&["--volume", "-v"])
        .iter()
        .map(|v| {
            let mut parts = v.split(':');
            let host = parts.next().unwrap().to_string();
            let container = parts.next().expect("--volume HOST:CONTAINER").to_string();
            (host, container)
        })
        .collect();
    let socket_on_host = mounts.iter().find_map(|(host, container)| {
        Path::new(unix_path)
            .strip_prefix(container)
            .ok()
            .map(|rest| Path::new(host).join(rest))
    });
    assert_eq!(
        socket_on_host.as_deref(),
        Some(Path::new(host_socket)),
        "the router's socket ({unix_path} in its container) must be daemon.json's fluentd-address"
    );
    assert!(
        mounts
            .iter()
            .any(|(h, c)| c == FIRELENS_CONFIG && h.ends_with("/fluent-bit.conf")),
        "run-logrouter.sh mounts fluent-bit.conf over the image's config"
    );
    let driver = flag(&["--log-driver"]);
    assert!(
        driver.len() == 1 && driver[0] != "fluentd",
        "the router's own log must not go through the driver it serves"
    );
    let stop = flag(&["--stop-timeout"]);
    let grace = service(&config_text).get("Grace").map(str::to_string);
    assert_eq!(stop.first(), grace.as_ref(), "--stop-timeout = Grace");

    let root = Root::image();
    root.put(FIRELENS_CONFIG, &config_text);
    assert_loads(&root.path(FIRELENS_CONFIG), &[]);
}

// ---- The image -----------------------------------------------------------------------------

#[test]
fn the_image_layout_loads_its_default_config() {
    let dockerfile = read(&repo("docker/Dockerfile"));
    let copied = copies(&dockerfile);
    let dest = |path: &str| copied.iter().any(|(_, d, _)| d == path);
    assert!(dest(FIRELENS_CONFIG), "the image has a default config");
    assert!(
        dest("/fluent-bit/etc/parsers.conf"),
        "the image has the parsers"
    );

    let mut argv = exec_form(&dockerfile, "ENTRYPOINT");
    argv.extend(exec_form(&dockerfile, "CMD"));
    assert!(dest(&argv[0]), "the entrypoint {} is copied in", argv[0]);
    assert_eq!(argv[0], "/fluent-bit/bin/logrouter");
    let config = argv
        .windows(2)
        .find(|w| w[0] == "-c")
        .map(|w| w[1].as_str());
    assert_eq!(
        config,
        Some(FIRELENS_CONFIG),
        "the image runs -c {FIRELENS_CONFIG}"
    );

    // The task definitions' health check runs `curl` through a shell in this image.
    assert!(
        last_stage(&dockerfile)
            .iter()
            .any(|l| l.contains("apt-get install") && l.split_whitespace().any(|w| w == "curl")),
        "the runtime image installs curl for the health check"
    );

    let root = Root::image();
    let run = assert_loads(&root.path(FIRELENS_CONFIG), &[]);
    assert!(
        run.stdout.contains("/var/run/fluent.sock"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("0.0.0.0:24224"), "{}", run.stdout);
}
