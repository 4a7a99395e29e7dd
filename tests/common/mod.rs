//! Shared pieces of the end-to-end tests: start the real `logrouter` binary on a config in a
//! private temp dir, learn its ports from its log, send frames, read what it wrote, stop it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod aws;
pub mod http;

pub const BIN: &str = env!("CARGO_BIN_EXE_logrouter");

/// A `[SERVICE]` with fast flushes and the monitoring server on a free port (for the
/// counters), as a literal for `concat!` (`#[macro_use] mod common;`).
#[allow(unused_macros)]
macro_rules! service {
    () => {
        "
[SERVICE]
    Flush 0.2
    HTTP_Server On
    HTTP_Listen 127.0.0.1
    HTTP_Port   0
"
    };
}

/// A private directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "lr-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running router process.
pub struct Router {
    child: Child,
    pub dir: TempDir,
    logs: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<u8>>>,
    /// Addresses it listens on, in input order: `127.0.0.1:PORT` or `unix:///path`.
    pub listening: Vec<String>,
}

impl Router {
    /// Starts the router on `config`, where `{dir}` stands for the router's temp dir, and waits
    /// for `listeners` inputs to report their address.
    pub fn start(config: &str, listeners: usize) -> Router {
        Self::start_with(config, listeners, &[])
    }

    pub fn start_with(config: &str, listeners: usize, env: &[(&str, &str)]) -> Router {
        let dir = TempDir::new();
        let text = config.replace("{dir}", dir.0.to_str().unwrap());
        let conf = dir.path("fluent-bit.conf");
        std::fs::write(&conf, text).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start logrouter");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let l = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                l.lock().unwrap().push(line);
            }
        });
        let stdout_buf = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().unwrap();
        let s = stdout_buf.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let mut router = Router {
            child,
            dir,
            logs,
            stdout: stdout_buf,
            listening: Vec::new(),
        };
        let ok = wait_until(Duration::from_secs(10), || {
            router.listening = router
                .logs()
                .iter()
                .filter_map(|l| l.split("listening on ").nth(1).map(str::to_string))
                .collect();
            router.listening.len() >= listeners
        });
        assert!(
            ok,
            "router did not start; log:\n{}",
            router.logs().join("\n")
        );
        router
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    pub fn stdout(&self) -> Vec<u8> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits until a log line contains `text`.
    pub fn wait_log(&self, text: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.logs().iter().any(|l| l.contains(text)))
    }

    /// The port of the monitoring HTTP server, from its start-up line.
    pub fn http_port(&self) -> u16 {
        let mut port = None;
        wait_until(Duration::from_secs(10), || {
            port = self.logs().iter().find_map(|l| {
                l.split("[http_server] listen iface=")
                    .nth(1)?
                    .split("tcp_port=")
                    .nth(1)?
                    .parse()
                    .ok()
            });
            port.is_some()
        });
        port.unwrap_or_else(|| panic!("no HTTP server; log:\n{}", self.logs().join("\n")))
    }

    /// The TCP port of the `i`th listener.
    pub fn port(&self, i: usize) -> u16 {
        self.listening[i]
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("listener {i} is not TCP: {}", self.listening[i]))
    }

    pub fn tcp(&self, i: usize) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port(i))).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    pub fn unix(&self, i: usize) -> UnixStream {
        let path = self.listening[i]
            .strip_prefix("unix://")
            .expect("unix listener");
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Sends SIGTERM and waits for the exit (at most `timeout`).
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < end,
                "router did not exit; log:\n{}",
                self.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS")
    }

    /// Peak resident memory in KiB, from /proc.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM")
    }

    fn status_kib(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One line of the file output's default format: `tag: [SEC.NNNNNNNNN, {json}]`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutLine {
    pub tag: String,
    pub time_ns: i128,
    pub record: serde_json::Value,
}

pub fn parse_out_file(text: &str) -> Vec<OutLine> {
    text.lines()
        .map(|l| {
            let (tag, rest) = l
                .split_once(": [")
                .unwrap_or_else(|| panic!("bad line {l}"));
            let (time, json) = rest.split_once(", ").unwrap();
            let json = json.strip_suffix(']').unwrap();
            let (s, ns) = time.split_once('.').unwrap();
            assert_eq!(ns.len(), 9, "nanoseconds are 9 digits: {l}");
            OutLine {
                tag: tag.to_string(),
                time_ns: s.parse::<i128>().unwrap() * 1_000_000_000 + ns.parse::<i128>().unwrap(),
                record: serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}")),
            }
        })
        .collect()
}

/// Reads the out_file-format lines of `path` (empty if it does not exist yet). A last line
/// still being written (no newline yet) is left for the next read.
pub fn read_out_file(path: &Path) -> Vec<OutLine> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let whole = text.rfind('\n').map_or("", |i| &text[..=i]);
    parse_out_file(whole)
}

/// Waits until `path` holds at least `n` lines, and returns them.
pub fn wait_lines(path: &Path, n: usize, timeout: Duration) -> Vec<OutLine> {
    let mut lines = Vec::new();
    wait_until(timeout, || {
        lines = read_out_file(path);
        lines.len() >= n
    });
    lines
}

/// msgpack builders for raw frames.
pub mod mp {
    pub fn str(out: &mut Vec<u8>, s: &str) {
        rmp::encode::write_str(out, s).unwrap();
    }

    pub fn event_time(out: &mut Vec<u8>, secs: u32, nanos: u32) {
        out.extend_from_slice(&[0xd7, 0x00]);
        out.extend_from_slice(&secs.to_be_bytes());
        out.extend_from_slice(&nanos.to_be_bytes());
    }

    pub fn record(out: &mut Vec<u8>, pairs: &[(&str, &str)]) {
        rmp::encode::write_map_len(out, pairs.len() as u32).unwrap();
        for (k, v) in pairs {
            str(out, k);
            str(out, v);
        }
    }

    /// A Docker-driver-shaped Message frame: `[tag, EventTime, record, {}]`.
    pub fn message(tag: &str, secs: u32, nanos: u32, pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut f = vec![0x94];
        str(&mut f, tag);
        event_time(&mut f, secs, nanos);
        record(&mut f, pairs);
        f.push(0x80);
        f
    }

    /// A Message frame asking for an ack: `[tag, EventTime, record, {"chunk": id}]`.
    pub fn message_with_chunk(
        tag: &str,
        secs: u32,
        pairs: &[(&str, &str)],
        chunk: &str,
    ) -> Vec<u8> {
        let mut f = vec![0x94];
        str(&mut f, tag);
        event_time(&mut f, secs, 0);
        record(&mut f, pairs);
        f.push(0x81);
        str(&mut f, "chunk");
        str(&mut f, chunk);
        f
    }

    /// The ack the router must send for `chunk`.
    pub fn ack(chunk: &str) -> Vec<u8> {
        let mut a = vec![0x81];
        str(&mut a, "ack");
        str(&mut a, chunk);
        a
    }
}

/// Writes all of `bytes`, then reads until EOF or timeout; true if the peer closed.
pub fn closed_by_peer(stream: &mut (impl Read + Write)) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// The Python interpreter of the test venv (made by scripts/test.sh).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("LOGROUTER_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.exists(),
        "the Python test venv is missing: run scripts/test.sh (or set LOGROUTER_TEST_PYTHON)"
    );
    venv
}

/// Runs the test venv's Python with `args`, fails the test (with Python's stderr) if it does
/// not exit 0, and returns what it printed.
pub fn python_ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Vec<u8> {
    let out = Command::new(python()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Raises this test process's open-files soft limit to the hard limit (many client sockets).
pub fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only touch the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Node's fluent-logger sender (tests/node/send.js, modules installed by scripts/test.sh).
pub fn node_sender() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        dir.join("node_modules/fluent-logger").exists(),
        "Node's fluent-logger is missing: run scripts/test.sh (or npm ci --prefix tests/node)"
    );
    dir.join("send.js")
}

/// Fluent Bit 5.1.1, to send to the router from the real thing: `LOGROUTER_TEST_FLUENT_BIT`, or
/// the build beside the project (../shared/peers). `None` when neither exists.
pub fn fluent_bit() -> Option<PathBuf> {
    let p = match std::env::var("LOGROUTER_TEST_FLUENT_BIT") {
        Ok(p) => PathBuf::from(p),
        Err(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/peers/fluent-bit-5.1.1"),
    };
    p.is_file().then_some(p)
}

/// A test CA and, signed by it, a server certificate for localhost / 127.0.0.1 and a client
/// certificate, made with the openssl CLI: `{ca,server,client}.{crt,key}` in `dir`.
pub fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=logrouter test CA",
        ],
    ]
    .concat());
    for (name, ext) in [
        (
            "server",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        (
            "client",
            "subjectAltName=DNS:client.example\nextendedKeyUsage=clientAuth\n",
        ),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        let (key, csr, crt, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        ]
        .concat());
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &extfile,
        ]);
    }
}
