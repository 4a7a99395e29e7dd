//! The command line and config errors, as a user meets them: `--dry-run` on broken configs
//! names file and line; warnings do not stop the router; quick mode and the banner work.

mod common;

use std::io::Write;
use std::process::{Command, Output};
use std::time::Duration;

use common::{BIN, Router, TempDir, mp};

fn dry_run(files: &[(&str, &str)]) -> (Output, TempDir) {
    dry_run_env(files, &[])
}

fn dry_run_env(files: &[(&str, &str)], env: &[(&str, &str)]) -> (Output, TempDir) {
    let dir = TempDir::new();
    for (name, text) in files {
        let p = dir.path(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text.replace("{dir}", dir.0.to_str().unwrap())).unwrap();
    }
    let out = Command::new(BIN)
        .arg("--dry-run")
        .arg("-c")
        .arg(dir.path(files[0].0))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (out, dir)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The config fails with a message naming `file:line` and saying `what`.
fn fails_at(files: &[(&str, &str)], file: &str, line: usize, what: &str) {
    let (out, dir) = dry_run(files);
    let err = stderr(&out);
    assert!(!out.status.success(), "should fail: {err}");
    let at = format!("{}:{line}: ", dir.path(file).display());
    assert!(err.contains(&at), "expected '{at}' in: {err}");
    assert!(err.contains(what), "expected '{what}' in: {err}");
}

#[test]
fn unknown_section() {
    fails_at(
        &[(
            "f.conf",
            "[INPUT]\n    Name forward\n\n[INPTU]\n    Name x\n",
        )],
        "f.conf",
        4,
        "unknown section [INPTU]",
    );
}

#[test]
fn missing_name() {
    fails_at(
        &[(
            "f.conf",
            "[INPUT]\n    Name forward\n[OUTPUT]\n    Match *\n",
        )],
        "f.conf",
        3,
        "[OUTPUT] section has no 'Name'",
    );
}

#[test]
fn unknown_plugins() {
    fails_at(
        &[(
            "f.conf",
            "[INPUT]\n    Name forward\n[OUTPUT]\n    Name  kafkaa\n    Match *\n",
        )],
        "f.conf",
        4,
        "output plugin 'kafkaa' is not known",
    );
    fails_at(
        &[("f.conf", "[INPUT]\n    Name tail\n")],
        "f.conf",
        2,
        "input plugin 'tail' is not known",
    );
}

#[test]
fn a_key_of_the_wrong_type() {
    fails_at(
        &[(
            "f.conf",
            "[INPUT]\n    Name forward\n    Buffer_Max_Size lots\n",
        )],
        "f.conf",
        3,
        "'lots' is not a size",
    );
    fails_at(
        &[("f.conf", "[SERVICE]\n    Flush soon\n")],
        "f.conf",
        2,
        "'soon' is not a duration",
    );
    fails_at(
        &[(
            "f.conf",
            "[OUTPUT]\n    Name stdout\n    Retry_Limit sometimes\n",
        )],
        "f.conf",
        3,
        "is not a retry limit",
    );
}

#[test]
fn an_include_that_does_not_exist() {
    fails_at(
        &[(
            "main.conf",
            "[SERVICE]\n    Flush 1\n@INCLUDE outputs.conf\n",
        )],
        "main.conf",
        3,
        "does not exist",
    );
}

#[test]
fn errors_inside_an_include_name_the_included_file() {
    fails_at(
        &[
            ("main.conf", "@INCLUDE conf.d/*.conf\n"),
            (
                "conf.d/out.conf",
                "[OUTPUT]\n    Name stdout\n    Format yaml\n",
            ),
        ],
        "conf.d/out.conf",
        3,
        "'yaml' is not a stdout format",
    );
}

#[test]
fn the_seed_articles_nginx_regex_is_refused_with_file_and_line() {
    let seed_parser = r#"[PARSER]
    Name   nginx
    Format regex
    Regex ^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^\"]*?)(?: +\S*)?)?" (?[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\"]*)" "(?<agent>[^\"]*)")? \"-\"$
    Time_Key time
    Time_Format %d/%b/%Y:%H:%M:%S %z
"#;
    fails_at(
        &[
            (
                "fluent-bit.conf",
                "[SERVICE]\n    Parsers_File parsers.conf\n[INPUT]\n    Name forward\n",
            ),
            ("parsers.conf", seed_parser),
        ],
        "parsers.conf",
        4,
        "parser 'nginx': Regex does not compile (a group starting '(?' needs a name",
    );
}

#[test]
fn unknown_keys_warn_but_do_not_fail() {
    // FireLens copies every task-definition option into the output section.
    let (out, _dir) = dry_run(&[(
        "f.conf",
        "[INPUT]\n    Name forward\n[OUTPUT]\n    Name stdout\n    Match *\n    delivery_stream x\n    Workers 2\n",
    )]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(":6: unknown key 'delivery_stream' for output plugin 'stdout'; ignored"),
        "{err}"
    );
    assert!(err.contains("configuration test is successful"));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("stdout.0: Match * (Retry_Limit 1, Workers 2"),
        "{plan}"
    );
}

#[test]
fn variables_come_from_set_and_the_environment() {
    let (out, _dir) = dry_run_env(
        &[(
            "f.conf",
            "@SET listen=127.0.0.1\n[INPUT]\n    Name   forward\n    Listen ${listen}\n    Port   ${LR_TEST_PORT}\n",
        )],
        &[("LR_TEST_PORT", "24555")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("forward.0: forward on 127.0.0.1:24555"),
        "{plan}"
    );
}

#[test]
fn a_failed_start_leaves_nothing_behind() {
    // The second input cannot bind: the first one's socket file must not stay behind.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = TempDir::new();
    let sock = dir.path("in.sock");
    let conf = dir.path("f.conf");
    std::fs::write(
        &conf,
        format!(
            "[INPUT]\n    Name forward\n    unix_path {}\n[INPUT]\n    Name forward\n    Listen 127.0.0.1\n    Port {port}\n[OUTPUT]\n    Name null\n    Match *\n",
            sock.display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN).arg("-c").arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("[forward.1] cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!sock.exists(), "socket of the first input removed");
}

#[test]
fn version_banner_and_help() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("logrouter v{}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let out = Command::new(BIN).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "no config: help and failure");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: logrouter"));
}

#[test]
fn quick_mode_runs_without_a_file() {
    let mut child = Command::new(BIN)
        .args([
            "-i",
            "forward",
            "-p",
            "listen=127.0.0.1",
            "-p",
            "port=0",
            "-o",
            "stdout",
            "-m",
            "*",
        ])
        .args(["-p", "format=json_lines", "-f", "0.1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let port: u16 = loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0);
        if let Some(addr) = line.trim().split("listening on ").nth(1) {
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&mp::message(
        "quick",
        1_700_000_000,
        500_000_000,
        &[("hello", "world")],
    ))
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"date\":1700000000.5,\"hello\":\"world\"}\n"
    );
}

#[test]
fn the_default_config_prints_records_as_json_lines() {
    // conf/fluent-bit.conf with its fixed port and socket swapped for private ones.
    let conf =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/fluent-bit.conf"))
            .unwrap()
            .replace("Port         24224", "Port         0")
            .replace("/tmp/logrouter.sock", "{dir}/logrouter.sock")
            .replace("Parsers_File parsers.conf", "");
    let router = Router::start(&conf, 2);
    let mut s = router.unix(1);
    s.write_all(&mp::message(
        "docker.web",
        1_700_000_000,
        0,
        &[("log", "hi")],
    ))
    .unwrap();
    assert!(common::wait_until(Duration::from_secs(5), || !router
        .stdout()
        .is_empty()));
    assert_eq!(
        String::from_utf8_lossy(&router.stdout()),
        "{\"date\":1700000000.0,\"log\":\"hi\"}\n"
    );
}

#[test]
fn secrets_never_appear_in_dry_run_output_or_config_errors() {
    let secret = "dd-SECRET-0123456789abcdef";
    let both = |o: &Output| format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o));
    // A valid config with an API key, set directly and through a variable.
    let (out, _dir) = dry_run_env(
        &[(
            "fluent-bit.conf",
            &format!(
                "[INPUT]\n    Name forward\n[OUTPUT]\n    Name datadog\n    Match a\n    apikey {secret}\n[OUTPUT]\n    Name datadog\n    Match b\n    apikey ${{DD_API_KEY}}\n"
            ),
        )],
        &[("DD_API_KEY", &format!("{secret}-env"))],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!both(&out).contains("SECRET"), "{}", both(&out));
    // Broken lines holding a key: the error names the key, never its value.
    for text in [
        format!("    apikey {secret}\n"),
        format!("[OUTPUT]\nName datadog\napikey {secret}\n"),
        format!("[OUTPUT]\n    Name datadog\n    Match *\n    apikey {secret}\n  tls.verify off\n"),
    ] {
        let (out, _dir) = dry_run(&[("fluent-bit.conf", &text)]);
        assert!(!out.status.success());
        assert!(!both(&out).contains("SECRET"), "{}", both(&out));
    }
}

#[test]
fn output_tls_settings_that_weaken_or_do_nothing_are_warned_about_at_start() {
    let (out, _dir) = dry_run(&[(
        "fluent-bit.conf",
        "[INPUT]\n    Name forward\n[OUTPUT]\n    Name datadog\n    Match *\n    apikey k\n    tls.verify Off\n    tls.vhost example.com\n",
    )]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("fluent-bit.conf:3: [output:datadog")
            && err.contains("tls.verify Off: the server's certificate is not checked"),
        "{err}"
    );
    assert!(
        err.contains(":8: [output:datadog")
            && err.contains("'tls.vhost' is not supported by logrouter and has no effect"),
        "{err}"
    );
}
