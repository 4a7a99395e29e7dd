//! `logrouter-loadgen`: drives a logrouter over the Forward protocol the way Docker's driver and
//! forwarders do, and reports what it sent as one line of JSON; `firehose-stub` is the local
//! Firehose endpoint the benchmarks deliver to.
//!
//! It must cost much less CPU than the router it drives: frames are encoded before the load
//! starts and only patched while it runs ([`frame`]); sockets are blocking, one thread a
//! connection ([`send`]).

mod frame;
mod send;
mod stub;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use frame::Mode;
use send::{Load, Target};

const USAGE: &str = "\
usage: logrouter-loadgen (--tcp HOST:PORT | --unix PATH) [options]
       logrouter-loadgen firehose-stub [--listen ADDR] [--port PORT] [--stdin]

Sends Docker-driver-shaped records (container_id, container_name, source, log: an nginx
combined line with a unique sequence number), EventTime times, and prints one line of JSON
when done: records, frames, bytes, seconds, rate, acks, cpu_s (this process, while sending).
Exits 1 if a connection failed (refused, reset, ack timeout); the JSON line is printed anyway.

  --mode M           message (default: one record a frame, [tag, time, record, {}] as Docker
                     sends) | forward | packed | compressed (gzip)
  --batch N          records a frame in forward/packed/compressed modes (1000)
  --rate R           records a second over all connections, paced evenly; 0 = as fast as the
                     router reads (default 0)
  --duration S       send for S seconds (default 10 unless --count is given)
  --count N          send N records in all, then stop
  --connections C    connections (1); records and rate are split evenly
  --ack              ask for acks (option chunk) and wait for each before the next frame
  --ack-timeout S    give up on a connection whose ack is this late (30)
  --tag T            the frames' tag (loadgen)
  --log-bytes N      length of the log line (250; at least ~235)
  --tick-ms MS       shortest time between two wake-ups of a paced sending thread (1)
  --threads N        sending threads for paced connections without --ack (one per 500
                     connections); at --rate 0 or with --ack, one per connection
  --ring N           compressed mode with --duration at --rate 0: records encoded up front and
                     sent again in a loop (200000)

firehose-stub answers every POST as a successful PutRecordBatch (one RecordId per record of
the request's Records array), prints {\"port\":N} once listening, counts records, answers
GET /count with {\"records\":N,\"requests\":N,\"bytes\":N}, and prints that line and exits on
SIGTERM/SIGINT, or when stdin closes with --stdin. --port 0 (default) picks a free port.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("firehose-stub") {
        stub_args(&args[1..]).and_then(|a| {
            stub::run(&a)
                .map(|()| true)
                .map_err(|e| format!("firehose-stub: {e}"))
        })
    } else {
        load_args(&args).map(|load| drive(&load))
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("logrouter-loadgen: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Runs the load and prints its summary; false if a connection failed.
fn drive(load: &Load) -> bool {
    raise_open_files_limit();
    let run = send::run(load, || eprintln!("logrouter-loadgen: sending"));
    let sum = |f: fn(&send::ConnStats) -> u64| run.conns.iter().map(f).sum::<u64>();
    let records = sum(|c| c.records);
    let seconds = run.end.saturating_duration_since(run.start).as_secs_f64();
    let errors: Vec<&String> = run.conns.iter().filter_map(|c| c.error.as_ref()).collect();
    let max_lag = run
        .conns
        .iter()
        .map(|c| c.max_lag)
        .max()
        .unwrap_or_default();
    let acks = sum(|c| c.acks);
    let ack_wait: Duration = run.conns.iter().map(|c| c.ack_wait).sum();
    let max_ack_wait = run
        .conns
        .iter()
        .map(|c| c.max_ack_wait)
        .max()
        .unwrap_or_default();
    println!(
        "{{\"mode\":\"{}\",\"connections\":{},\"batch\":{},\"rate_target\":{},\"records\":{records},\
         \"frames\":{},\"bytes\":{},\"seconds\":{seconds:.3},\"rate\":{:.1},\"acks\":{},\
         \"ack_wait_mean_ms\":{:.3},\"ack_wait_max_ms\":{:.3},\"ack_timeouts\":{},\"ack_mismatches\":{},\"errors\":{},\"first_error\":{},\
         \"max_lag_s\":{:.3},\"cpu_s\":{:.3},\"prep_s\":{:.3}}}",
        load.mode.name(),
        load.connections,
        if load.mode == Mode::Message {
            1
        } else {
            load.batch
        },
        load.rate,
        sum(|c| c.frames),
        sum(|c| c.bytes),
        if seconds > 0.0 {
            records as f64 / seconds
        } else {
            0.0
        },
        acks,
        if acks > 0 {
            ack_wait.as_secs_f64() * 1e3 / acks as f64
        } else {
            0.0
        },
        max_ack_wait.as_secs_f64() * 1e3,
        sum(|c| c.ack_timeouts),
        sum(|c| c.ack_mismatches),
        errors.len(),
        errors
            .first()
            .map_or("null".to_string(), |e| json_string(e)),
        max_lag.as_secs_f64(),
        run.cpu.as_secs_f64(),
        run.prep.as_secs_f64(),
    );
    errors.is_empty()
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Many connections need many descriptors: take the hard limit, as the router does.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Pairs of `--flag value` (and bare flags) in order; `Err("")` asks for the usage text.
fn flags(args: &[String], bare: &[&str]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-h" || a == "--help" {
            return Err(String::new());
        }
        if !a.starts_with("--") {
            return Err(format!("unexpected argument '{a}'"));
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        if bare.contains(&name.as_str()) {
            out.push((name, String::new()));
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))?,
        };
        out.push((name, value));
    }
    Ok(out)
}

fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{name}: '{v}' is not a valid number"))
}

fn load_args(args: &[String]) -> Result<Load, String> {
    let mut load = Load {
        target: Target::Tcp(String::new()),
        mode: Mode::Message,
        batch: 1000,
        rate: 0.0,
        duration: None,
        count: None,
        connections: 1,
        ack: false,
        ack_timeout: Duration::from_secs(30),
        tag: "loadgen".into(),
        log_bytes: 250,
        ring: 200_000,
        tick: Duration::from_millis(1),
        threads: None,
        write_bytes: 64 * 1024,
    };
    let mut target = None;
    for (name, v) in flags(args, &["--ack"])? {
        match name.as_str() {
            "--tcp" => target = Some(Target::Tcp(v)),
            "--unix" => target = Some(Target::Unix(PathBuf::from(v))),
            "--mode" => {
                load.mode = Mode::parse(&v.to_ascii_lowercase()).ok_or_else(|| {
                    format!("--mode: '{v}' is not message, forward, packed or compressed")
                })?;
            }
            "--batch" => load.batch = num(&name, &v)?,
            "--rate" => load.rate = num(&name, &v)?,
            "--duration" => {
                let s: f64 = num(&name, &v)?;
                load.duration = Some(Duration::from_secs_f64(s.max(0.0)));
            }
            "--count" => load.count = Some(num(&name, &v)?),
            "--connections" => load.connections = num(&name, &v)?,
            "--ack" => load.ack = true,
            "--ack-timeout" => load.ack_timeout = Duration::from_secs_f64(num(&name, &v)?),
            "--tag" => load.tag = v,
            "--log-bytes" => load.log_bytes = num(&name, &v)?,
            "--tick-ms" => load.tick = Duration::from_secs_f64(num::<f64>(&name, &v)? / 1000.0),
            "--ring" => load.ring = num(&name, &v)?,
            "--threads" => load.threads = Some(num(&name, &v)?),
            _ => return Err(format!("unknown option {name}")),
        }
    }
    load.target = target.ok_or("give --tcp HOST:PORT or --unix PATH")?;
    if load.connections == 0 || load.batch == 0 {
        return Err("--connections and --batch must be at least 1".into());
    }
    if !(load.rate >= 0.0 && load.rate.is_finite()) {
        return Err("--rate must be 0 or more".into());
    }
    if load.duration.is_none() && load.count.is_none() {
        load.duration = Some(Duration::from_secs(10));
    }
    Ok(load)
}

fn stub_args(args: &[String]) -> Result<stub::StubArgs, String> {
    let mut a = stub::StubArgs {
        listen: "127.0.0.1".into(),
        port: 0,
        stdin: false,
    };
    for (name, v) in flags(args, &["--stdin"])? {
        match name.as_str() {
            "--listen" => a.listen = v,
            "--port" => a.port = num(&name, &v)?,
            "--stdin" => a.stdin = true,
            _ => return Err(format!("unknown option {name}")),
        }
    }
    Ok(a)
}
