//! The classic config loader and the whole config build.
//!
//! The input is written as `main.conf` in a temporary directory that also holds an include
//! file and a parsers file, so `@INCLUDE` and `Parsers_File` (plain names and globs) reach
//! real files. Inputs whose `@INCLUDE`, `@SET` or `Parsers_File` lines hold `/` or `\`
//! are skipped and the environment is emptied at start (so `${VAR}` cannot produce one):
//! nothing names a file outside the directory.
//! `Config::from_file` then `Plan::build` run on it (outputs that build HTTP clients are
//! dropped first: they are slow to build and not what this target is about). Errors are
//! fine; panics are not.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use logrouter::config::Config;
use logrouter::engine::Plan;

const INCLUDED: &str = "\
[INPUT]
    Name forward
    Port 24299
    Tag  ${FUZZ_TAG}
";

const PARSERS: &str = "\
[PARSER]
    Name   p1
    Format regex
    Regex  ^(?<a>[^ ]*) (?<b>.*)$
[MULTILINE_PARSER]
    Name ml
    Type regex
    Rule \"start_state\" \"/^a/\" \"cont\"
";

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // SAFETY: called once, before anything else in this process reads the environment.
        for (k, _) in std::env::vars_os() {
            unsafe { std::env::remove_var(k) };
        }
        unsafe { std::env::set_var("FUZZ_TAG", "fuzz.env") };
        let d = std::env::temp_dir().join(format!("logrouter-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("inc.conf"), INCLUDED).unwrap();
        std::fs::write(d.join("parsers.conf"), PARSERS).unwrap();
        d
    })
}

/// Whether a line that can name a file (`@INCLUDE`, `Parsers_File`, or `@SET`, whose values
/// `${VAR}` can put in one) holds a path separator.
fn names_outside(data: &[u8]) -> bool {
    data.split(|&b| b == b'\n' || b == b'\r').any(|line| {
        let l = line.to_ascii_lowercase();
        let names_file = [&b"include"[..], b"@set", b"parsers_file"]
            .iter()
            .any(|k| l.windows(k.len()).any(|w| w == *k));
        names_file && l.iter().any(|&b| b == b'/' || b == b'\\')
    })
}

const HTTP_OUTPUTS: [&str; 4] = ["datadog", "s3", "firehose", "kinesis_firehose"];

fuzz_target!(|data: &[u8]| {
    if names_outside(data) {
        return;
    }
    let dir = dir();
    let main = dir.join("main.conf");
    std::fs::write(&main, data).unwrap();
    let Ok(mut config) = Config::from_file(&main, &[]) else {
        return;
    };
    config.outputs.retain(|s| {
        s.str("name").is_none_or(|n| {
            !HTTP_OUTPUTS
                .iter()
                .any(|h| n.trim().eq_ignore_ascii_case(h))
        })
    });
    if let Ok(plan) = Plan::build(&mut config) {
        let _ = plan.describe();
    }
});
