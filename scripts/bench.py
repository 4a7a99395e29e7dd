#!/usr/bin/env python3
"""End-to-end benchmarks of the release router beside Fluent Bit, driven by logrouter-loadgen.

For every scenario and every run, logrouter and then Fluent Bit (the order alternates from one
run to the next) are each started on the same generated config, driven with the same load, and
measured the same way: the script waits until the router has delivered (the Firehose stub's
count, the FIFO's lines, or the `fluentbit_output_proc_records_total{name="null.0"}` counter
both routers serve on their HTTP server), and reads the router's CPU time (utime + stime from
/proc/PID/stat, all threads) over that window and its peak RSS (VmHWM). Each column is the
median over --runs; a second table gives logrouter / Fluent Bit ratios of those medians.

The Firehose scenarios go over HTTPS (Fluent Bit's AWS outputs speak nothing else): once per
invocation the script makes a private CA and a server certificate for 127.0.0.1 with `openssl`,
and puts a TLS-terminating proxy (in this process) in front of the plain-HTTP stub
(`logrouter-loadgen firehose-stub`). --firehose-plain points logrouter straight at the stub
instead (Fluent Bit then sits those scenarios out).

Python 3.11 standard library only.

    scripts/bench.py all                     # every scenario, 30 s each, both routers
    scripts/bench.py fb -d 10 --runs 3       # the scenarios compared with Fluent Bit
    scripts/bench.py seed max-message --no-fluent-bit
    scripts/bench.py --list

See BENCHMARKS.md ("End to end") for what each scenario is and how to read the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PARSERS = ROOT / "conf" / "parsers.conf"
DEFAULT_FLUENT_BIT = ROOT.parent / "shared" / "peers" / "fluent-bit-5.1.1"

LOGROUTER, FLUENT_BIT = "logrouter", "fluent-bit"


@dataclass(frozen=True)
class Scenario:
    desc: str
    # Why Fluent Bit does not run it (None: it does).
    fluent_bit_skip: str | None = None


SCENARIOS = {
    "seed-100": Scenario("100 lines/s, Message mode, parser nginx -> Firehose stub (HTTPS)"),
    "seed-1000": Scenario("1,000 lines/s, Message mode, parser nginx -> Firehose stub (HTTPS)"),
    "seed-10000": Scenario("10,000 lines/s, Message mode, parser nginx -> Firehose stub (HTTPS)"),
    "null-10000": Scenario("10,000 lines/s, Message mode, parser nginx -> null"),
    "max-message": Scenario("as fast as the router reads, 4 connections, Message mode (one record a frame), parser nginx -> null"),
    "max-packed": Scenario("as fast as the router reads, 4 connections, PackedForward batches of 1,000, no parser -> null"),
    "max-compressed": Scenario("as fast as the router reads, 4 connections, CompressedPackedForward (gzip) batches of 1,000, no parser -> null"),
    "overload": Scenario(
        "file output into a FIFO nobody reads, Mem_Buf_Limit on the input, client keeps sending; then the FIFO is read",
        fluent_bit_skip="when Mem_Buf_Limit pauses Fluent Bit's forward input it drops the "
                        "message and closes the connection (the load generator fails with EPIPE)"),
    "conns-1000": Scenario("1,000 connections at 10 records/s each, Message mode, parser nginx -> null"),
    "idle": Scenario("no traffic: CPU and RSS of a router with a forward input, parser and null output"),
}
GROUPS = {
    "all": list(SCENARIOS),
    "seed": ["seed-100", "seed-1000", "seed-10000"],
    "max": ["max-message", "max-packed", "max-compressed"],
    "fb": ["seed-100", "seed-1000", "seed-10000", "null-10000",
           "max-message", "max-packed", "max-compressed", "idle"],
}
MAX_CONNECTIONS = 4  # load generator connections in the max-* scenarios


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class Skip(Exception):
    """This router does not run this scenario (the reason goes into the table)."""


# ---------------------------------------------------------------------------------------------
# /proc and sockets


def proc_cpu(pid: int, stat: str | None = None) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(stat or f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def thread_cpu(tid: int) -> float:
    """utime + stime of one thread of this process."""
    return proc_cpu(tid, f"/proc/self/task/{tid}/stat")


def proc_status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts(addr: int | Path) -> bool:
    """Whether a TCP port on 127.0.0.1 (int) or a Unix socket (Path) accepts a connection."""
    try:
        if isinstance(addr, Path):
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1)
                s.connect(str(addr))
        else:
            with socket.create_connection(("127.0.0.1", addr), timeout=1):
                pass
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# The routers


@dataclass(frozen=True)
class RouterSpec:
    """Which router: `name` is logrouter or fluent-bit (the table's router column)."""

    name: str
    binary: Path  # the snapshot this invocation runs (see snapshot_binary)
    source: Path  # where it came from


def snapshot_binary(path: Path, into: Path) -> Path:
    """A hard link (or copy) of the binary in this invocation's temp dir, so that a rebuild of
    target/release while the bench runs cannot change the binary between runs. Waits for the
    binary to appear (another build may be replacing it) and checks that it runs."""
    deadline = time.monotonic() + 900
    while True:
        if path.is_file():
            dest = into / path.name
            dest.unlink(missing_ok=True)
            try:
                os.link(path, dest)
            except OSError:
                shutil.copy2(path, dest)
            ok = subprocess.run([str(dest), "--version"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, timeout=30).returncode == 0
            if ok:
                return dest
        if time.monotonic() > deadline:
            sys.exit(f"{path} is missing or does not run")
        log(f"{path} missing or not runnable yet (a build?); retrying in 60 s")
        time.sleep(60)


@dataclass
class Config:
    """One generated config: its text (the same for both routers) and where it listens."""

    text: str
    forward: int | Path  # the forward input: a TCP port on 127.0.0.1, or a Unix socket
    http_port: int

    def target_args(self) -> list[str]:
        if isinstance(self.forward, Path):
            return ["--unix", str(self.forward)]
        return ["--tcp", f"127.0.0.1:{self.forward}"]


class Router:
    """logrouter or Fluent Bit on a config, stdout and stderr into a log file in the workdir.

    Both take `-c FILE` and read the same classic config; the script chooses the ports (the
    forward input's and the HTTP server's) and waits until both accept connections. Use it as a
    context manager: on an exception it prints the tail of the log and kills the process."""

    def __init__(self, spec: RouterSpec, cfg: Config, workdir: Path, env: dict):
        self.name = spec.name
        self.cfg = cfg
        self.conf = workdir / f"{spec.name}.conf"
        self.conf.write_text(cfg.text)
        self.logfile = workdir / f"{spec.name}.log"
        self.metrics = Metrics(cfg.http_port)
        self.summary: dict[str, dict[str, int]] = {}
        with open(self.logfile, "wb") as out:
            self.proc = subprocess.Popen(
                [str(spec.binary), "-c", str(self.conf)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            )
        self.pid = self.proc.pid
        deadline = time.monotonic() + 30
        while not (accepts(cfg.forward) and accepts(cfg.http_port)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                self.print_tail()
                last = (self.errors() or self.tail(1) or ["no output"])[-1]
                raise RuntimeError(f"{self.name} did not start (exit {self.proc.returncode}): "
                                   f"{last}")
            time.sleep(0.05)

    def __enter__(self) -> "Router":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if exc is not None:
            self.print_tail()
        self.kill()

    def print_tail(self, n: int = 20) -> None:
        log(f"{self.name} failed; the end of {self.logfile}:")
        for line in self.tail(n):
            print(f"    {line}", file=sys.stderr)

    def lines(self) -> list[str]:
        try:
            return self.logfile.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def tail(self, n: int) -> list[str]:
        """The last n log lines (Fluent Bit's banner left out)."""
        return [l for l in self.lines() if l.startswith("[")][-n:]

    def cpu(self) -> float:
        return proc_cpu(self.pid)

    def hwm_mb(self) -> float:
        return proc_status_kb(self.pid, "VmHWM") / 1024

    def rss_mb(self) -> float:
        return proc_status_kb(self.pid, "VmRSS") / 1024

    def stop(self, timeout: float = 60) -> dict:
        """SIGTERM, wait, and parse logrouter's exit summary: {'input forward.0': {...},
        'output null.0': {...}} (Fluent Bit prints none: {})."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop within {timeout:g} s of SIGTERM; killed")
            self.kill()
        for l in self.lines():
            m = re.search(r"\[engine\] (input|filter|output) (\S+): (.*)", l)
            if m:
                self.summary[f"{m.group(1)} {m.group(2)}"] = {
                    k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(3))
                }
        return self.summary

    def errors(self) -> list[str]:
        return [l for l in self.lines() if "] [error]" in l or "] [ warn]" in l]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Metrics:
    """A router's Prometheus endpoint (/api/v1/metrics/prometheus): logrouter serves the same
    `fluentbit_*` counters with the same `name` labels as Fluent Bit."""

    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}/api/v1/metrics/prometheus"

    def scrape(self) -> dict[tuple[str, str], float] | None:
        try:
            with urllib.request.urlopen(self.url, timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        # Fluent Bit adds a timestamp after the value.
        return {
            (m.group(1), m.group(2)): float(m.group(3))
            for m in re.finditer(r'^(\w+)\{name="([^"]*)"\} (\S+)', text, re.M)
        }

    def get(self, metric: str, name: str) -> int | None:
        values = self.scrape()
        v = None if values is None else values.get((metric, name))
        return None if v is None else int(v)

    def output_records(self, name: str) -> int | None:
        return self.get("fluentbit_output_proc_records_total", name)


# ---------------------------------------------------------------------------------------------
# Firehose stub, certificates and the TLS proxy


class Stub:
    """logrouter-loadgen firehose-stub: answers PutRecordBatch over plain HTTP, counts records."""

    def __init__(self, loadgen: Path):
        self.proc = subprocess.Popen(
            [str(loadgen), "firehose-stub", "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = json.loads(self.proc.stdout.readline())["port"]

    def count(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/count", timeout=5) as r:
            return json.loads(r.read())["records"]

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        out = self.proc.stdout.read()
        self.proc.wait(10)
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass(frozen=True)
class Certs:
    ca: Path  # the private CA's certificate: the routers' tls.ca_file
    cert: Path  # the proxy's certificate for 127.0.0.1, signed by the CA
    key: Path


def make_certs(directory: Path) -> Certs:
    """A private CA and a separate server certificate for IP 127.0.0.1 signed by it (rustls
    refuses a CA certificate presented as the server's own), with the openssl command."""
    if not shutil.which("openssl"):
        sys.exit("the Firehose scenarios need the openssl command (or --firehose-plain)")
    d = directory
    (d / "server.ext").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "7", "-subj", "/CN=logrouter bench CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "7", "-extfile", "server.ext"],
        ["verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "server.pem"],
    ]
    for args in steps:
        r = subprocess.run(["openssl", *args], cwd=d, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"openssl {' '.join(args[:2])} failed:\n{r.stderr}")
    return Certs(ca=d / "ca.pem", cert=d / "server.pem", key=d / "server.key")


class TlsProxy:
    """Accepts TLS on a free loopback port and pipes the bytes both ways to a plain TCP port
    (the stub), one upstream connection per client connection; it does not look at HTTP, so
    keep-alive connections carry as many requests as the client sends. asyncio on its own thread
    of this process (the ssl module through memory BIOs: one thread owns every TLS object)."""

    def __init__(self, certs: Certs, upstream: int):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certs.cert, certs.key)
        self.upstream = upstream
        self.connections = 0
        self.handshake_errors: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._on_error)
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError("TLS proxy did not start")

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.tid = threading.get_native_id()
        server = self.loop.run_until_complete(asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=self.ctx, ssl_handshake_timeout=10))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()
        server.close()
        self.loop.close()

    def _on_error(self, loop, context: dict) -> None:
        # A failed handshake (e.g. the client does not trust the CA) lands here.
        self.handshake_errors.append(str(context.get("exception") or context.get("message")))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(1 << 16):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ssl.SSLError):
                pass
            finally:
                dst.close()  # either side closing closes the other

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cpu(self) -> float:
        return thread_cpu(self.tid)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# ---------------------------------------------------------------------------------------------
# The load generator


class Loadgen:
    """One run of the load generator; `started` is set (and `t0` taken) when it starts sending."""

    def __init__(self, binary: Path, args: list[str], on_start=None):
        self.before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.started = threading.Event()
        self.t0: float | None = None
        self.on_start = on_start
        self.proc = subprocess.Popen(
            [str(binary), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.err: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            if "sending" in line and not self.started.is_set():
                self.t0 = time.monotonic()
                if self.on_start:
                    self.on_start()
                self.started.set()
            else:
                self.err.append(line.rstrip("\n"))

    def wait(self) -> dict:
        out = self.proc.stdout.read()
        self.proc.wait()
        # Only this child is reaped in between: the difference is its CPU time.
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.reader.join(5)
        self.end = time.monotonic()
        lines = out.strip().splitlines()
        if self.proc.returncode != 0:
            why = json.loads(lines[-1]).get("first_error") if lines else "\n".join(self.err[-5:])
            raise RuntimeError(f"loadgen failed ({self.proc.returncode}): {why}")
        summary = json.loads(lines[-1])
        summary["cpu_total_s"] = (after.ru_utime - self.before.ru_utime) + (
            after.ru_stime - self.before.ru_stime
        )
        return summary


# ---------------------------------------------------------------------------------------------
# Waiting for the router to finish


def wait_for_count(get, target: int, quiet: float, timeout: float) -> tuple[int, float]:
    """Polls get() until it reaches target, or has not moved for `quiet` seconds, or timeout.
    Returns the last value and when it last changed."""
    last, changed = get(), time.monotonic()
    end = time.monotonic() + timeout
    while last < target and time.monotonic() < end and time.monotonic() - changed < quiet:
        time.sleep(0.1)
        v = get()
        if v != last:
            last, changed = v, time.monotonic()
    return last, changed


def wait_cpu_quiet(router: Router, quiet: float, timeout: float) -> float:
    """Waits until the router's CPU time has not grown by more than one tick for `quiet`
    seconds; returns when it last grew."""
    last, changed = router.cpu(), time.monotonic()
    end = time.monotonic() + timeout
    while time.monotonic() < end and time.monotonic() - changed < quiet:
        time.sleep(0.1)
        v = router.cpu()
        if v - last > 1.5 / CLK_TCK:
            last, changed = v, time.monotonic()
    return changed


# ---------------------------------------------------------------------------------------------
# The config: one generator, the same text for both routers


PARSER_FILTER = """[FILTER]
    Name         parser
    Match        *
    Key_Name     log
    Parser       nginx
    Reserve_Data On
"""

NULL_OUTPUT = """[OUTPUT]
    Name  null
    Match *
"""


def router_config(opts, workdir: Path, output: str, *, parser: bool = True, grace: int = 2,
                  input_extra: str = "") -> Config:
    """[SERVICE] (HTTP server on a free port), a forward input (a free TCP port, or a Unix
    socket with --unix), the nginx parser filter if `parser`, and `output`. Fluent Bit and
    logrouter read this text alike; the ports are chosen here because Fluent Bit takes
    `Port 0` as unset (it listens on 24224) where logrouter binds a free port."""
    http_port = free_port()
    forward: int | Path
    if opts.unix:
        forward = workdir / "forward.sock"
        inp = f"[INPUT]\n    Name      forward\n    unix_path {forward}\n"
    else:
        forward = free_port()
        inp = f"[INPUT]\n    Name   forward\n    Listen 127.0.0.1\n    Port   {forward}\n"
    text = f"""[SERVICE]
    Flush        1
    Grace        {grace}
    Log_Level    info
    Parsers_File {PARSERS}
    HTTP_Server  On
    HTTP_Listen  127.0.0.1
    HTTP_Port    {http_port}
""" + inp + input_extra + (PARSER_FILTER if parser else "") + output
    return Config(text, forward, http_port)


def firehose_output(port: int, ca_file: Path | None) -> str:
    """`kinesis_firehose` (logrouter's alias of `firehose`, Fluent Bit's only name for it) to
    127.0.0.1:port, over TLS trusting ca_file, or plain HTTP when ca_file is None (logrouter
    only). No `tls On`: TLS is the default of both, and Fluent Bit's AWS outputs refuse the
    key ("does not support TLS": they always use it)."""
    tls = f"    tls.ca_file     {ca_file}\n" if ca_file else "    tls             Off\n"
    return f"""[OUTPUT]
    Name            kinesis_firehose
    Match           *
    region          us-east-1
    delivery_stream bench
    endpoint        127.0.0.1
    port            {port}
""" + tls


def router_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="dummy",
        AWS_SECRET_ACCESS_KEY="dummy",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


# ---------------------------------------------------------------------------------------------
# Scenarios. Each returns a Result (one run of one router).


@dataclass
class Result:
    sent: int = 0
    out: int = 0
    cpu: float = 0.0
    wall: float = 0.0
    rss_mb: float = 0.0
    loadgen_cpu: float = 0.0
    loadgen_cpu_total: float = 0.0
    extra: dict = field(default_factory=dict)

    def numbers(self) -> dict:
        d = {
            "sent": self.sent,
            "out": self.out,
            "cpu": self.cpu,
            "wall": self.wall,
            "vcpu": self.cpu / self.wall if self.wall > 0 else 0.0,
            "per_cpu_s": (self.out / self.cpu if self.cpu > 0 else 0.0)
            if self.sent or self.out else None,  # idle: none to count
            "rss_mb": self.rss_mb,
            "loadgen_cpu": self.loadgen_cpu,
            "loadgen_cpu_total": self.loadgen_cpu_total,
        }
        d.update(self.extra)
        return d


class RssSampler:
    """Samples the router's VmRSS twice a second while the load runs (to see growth)."""

    def __init__(self, router: Router):
        self.samples: list[float] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(router,), daemon=True)
        self.thread.start()

    def _run(self, router: Router) -> None:
        while not self.stopping.wait(0.5):
            try:
                self.samples.append(router.rss_mb())
            except OSError:
                return

    def stop(self) -> dict:
        self.stopping.set()
        self.thread.join(2)
        s = self.samples
        if len(s) < 4:
            return {}
        # RSS a quarter of the way in, and at the end: growth shows as end >> quarter.
        return {
            "rss_quarter_mb": s[len(s) // 4],
            "rss_end_mb": s[-1],
            "rss_series_mb": [round(v, 1) for v in s[::2]],  # one a second, for --json
        }


def measured_load(opts, router: Router, load_args: list[str], count_out, null_name: str | None):
    """Runs the loadgen against the router and waits for the router to drain.

    count_out: a function returning records delivered so far (None for the null output, where
    the metrics endpoint or, lacking it, the CPU going quiet tells when it is done)."""
    cpu0 = router.cpu()
    sampler = RssSampler(router)
    lg = Loadgen(opts.loadgen, router.cfg.target_args() + load_args)
    summary = lg.wait()
    sent = summary["records"]
    metrics = router.metrics
    how = "output"
    if count_out is None and metrics.output_records(null_name or "") is not None:
        seen = [0]

        def count_out() -> int:  # the last good reading if one request fails
            v = metrics.output_records(null_name)
            seen[0] = seen[0] if v is None else v
            return seen[0]

        how = "metrics"
    if count_out is not None:
        out, t_end = wait_for_count(count_out, sent, quiet=opts.quiet, timeout=opts.drain_timeout)
    else:
        # No counter to watch: done when the router's CPU stops moving; the count comes from
        # its exit summary.
        out, t_end = None, wait_cpu_quiet(router, quiet=1.0, timeout=opts.drain_timeout)
        how = "cpu-quiet"
    summary["drained_by"] = how
    cpu = router.cpu() - cpu0
    rss = router.hwm_mb()
    summary["rss"] = sampler.stop()
    return summary, lg, sent, out, cpu, t_end - lg.t0, rss


def loaded_result(summary: dict, sent: int, cpu: float, wall: float, rss: float) -> Result:
    res = Result(sent=sent, cpu=cpu, wall=wall, rss_mb=rss,
                 loadgen_cpu=summary["cpu_s"], loadgen_cpu_total=summary["cpu_total_s"])
    res.extra.update(summary.get("rss", {}))
    res.extra["loadgen_prep_s"] = summary["prep_s"]
    res.extra["drained_by"] = summary.get("drained_by")
    return res


def finish(router: Router, res: Result, out, out_name: str, in_name: str = "forward.0"):
    """Stops the router and fills in records out (when not counted), drops and retries: from
    logrouter's exit summary, or from the metrics read just before stopping (Fluent Bit has no
    exit summary)."""
    m = router.metrics.scrape() or {}
    s = router.stop()
    o = s.get(f"output {out_name}")
    i = s.get(f"input {in_name}")
    if o is None:  # no exit summary: the same counters from the metrics
        def metric(k: str, name: str = out_name) -> int:
            return int(m.get((k, name), 0))

        o = {"proc_records": metric("fluentbit_output_proc_records_total"),
             "retries": metric("fluentbit_output_retries_total"),
             "retries_failed": metric("fluentbit_output_retries_failed_total"),
             "dropped_records": metric("fluentbit_output_dropped_records_total")}
        i = {"records": metric("fluentbit_input_records_total", in_name)}
    i = i or {}
    res.out = out if out is not None else o.get("proc_records", 0)
    dropped = {k: v for k, v in o.items() if k in (
        "retries_exhausted", "permanent_error", "shutdown_timeout", "oversize",
        "retries_failed", "dropped_records") and v}
    dropped.update({k: v for k, v in i.items() if k in (
        "invalid_event", "refused_frame", "no_route") and v})
    unparsed = s.get("filter parser.0", {}).get("unparsed", 0)
    if unparsed:
        res.extra["unparsed"] = unparsed  # the nginx parser did not match: a broken load
    res.extra["router_in"] = i.get("records", -1)
    res.extra["router_proc"] = o.get("proc_records", -1)
    res.extra["retries"] = o.get("retries", 0)
    res.extra["drops"] = dropped
    res.extra["errors_logged"] = len([l for l in router.errors() if "] [error]" in l])


def run_seed(opts, spec: RouterSpec, rate: int, workdir: Path) -> Result:
    """Message mode at `rate` lines/s -> parser -> Firehose: the stub behind the TLS proxy, or
    the stub itself with --firehose-plain."""
    if opts.firehose_plain and spec.name == FLUENT_BIT:
        raise Skip("--firehose-plain: Fluent Bit's kinesis_firehose only speaks HTTPS")
    stub = Stub(opts.loadgen)
    proxy = None if opts.firehose_plain else TlsProxy(opts.certs, stub.port)
    try:
        port, ca = (stub.port, None) if proxy is None else (proxy.port, opts.certs.ca)
        cfg = router_config(opts, workdir, firehose_output(port, ca))
        with Router(spec, cfg, workdir, router_env()) as router:
            stub_cpu0 = stub.cpu()
            proxy_cpu0 = proxy.cpu() if proxy else 0.0
            args = ["--mode", "message", "--rate", str(rate), "--duration", str(opts.duration),
                    "--tag", "web-firelens-bench"]
            summary, lg, sent, out, cpu, wall, rss = measured_load(
                opts, router, args, stub.count, None)
            res = loaded_result(summary, sent, cpu, wall, rss)
            res.extra["stub_cpu"] = stub.cpu() - stub_cpu0
            res.extra["achieved_rate"] = summary["rate"]
            res.extra["max_lag_s"] = summary["max_lag_s"]
            if proxy:
                res.extra["proxy_cpu"] = proxy.cpu() - proxy_cpu0
                res.extra["proxy_connections"] = proxy.connections
                res.extra["tls_errors"] = len(proxy.handshake_errors)
                if proxy.handshake_errors:
                    res.extra["tls_error"] = proxy.handshake_errors[0][:200]
            finish(router, res, out, "kinesis_firehose.0")
            res.extra["stub_final"] = stub.stop()["records"]
            return res
    finally:
        if proxy:
            proxy.stop()
        stub.kill()


def run_paced(opts, spec: RouterSpec, rate: int, connections: int, workdir: Path) -> Result:
    """Message mode at `rate` lines/s over `connections` -> parser -> null (null-*, conns-*)."""
    cfg = router_config(opts, workdir, NULL_OUTPUT)
    with Router(spec, cfg, workdir, router_env()) as router:
        args = ["--mode", "message", "--connections", str(connections), "--rate", str(rate),
                "--duration", str(opts.duration)]
        summary, lg, sent, out, cpu, wall, rss = measured_load(opts, router, args, None, "null.0")
        res = loaded_result(summary, sent, cpu, wall, rss)
        res.extra["achieved_rate"] = summary["rate"]
        res.extra["max_lag_s"] = summary["max_lag_s"]
        res.extra["loadgen_errors"] = summary["errors"]
        finish(router, res, out, "null.0")
        return res


def run_max(opts, spec: RouterSpec, mode: str, parser: bool, workdir: Path) -> Result:
    cfg = router_config(opts, workdir, NULL_OUTPUT, parser=parser)
    with Router(spec, cfg, workdir, router_env()) as router:
        args = ["--mode", mode, "--connections", str(MAX_CONNECTIONS), "--rate", "0",
                "--duration", str(opts.duration), "--batch", "1000", "--ring", "1000000"]
        summary, lg, sent, out, cpu, wall, rss = measured_load(opts, router, args, None, "null.0")
        res = loaded_result(summary, sent, cpu, wall, rss)
        res.extra["achieved_rate"] = summary["rate"]
        finish(router, res, out, "null.0")
        return res


def run_idle(opts, spec: RouterSpec, workdir: Path) -> Result:
    cfg = router_config(opts, workdir, NULL_OUTPUT)
    with Router(spec, cfg, workdir, router_env()) as router:
        time.sleep(1)  # past start-up
        cpu0, t0 = router.cpu(), time.monotonic()
        time.sleep(opts.duration)
        res = Result(cpu=router.cpu() - cpu0, wall=time.monotonic() - t0, rss_mb=router.hwm_mb())
        res.extra["rss_now_mb"] = router.rss_mb()
        finish(router, res, 0, "null.0")
        return res


class FifoReader:
    """Reads a FIFO (reopening after each writer closes it), counting lines."""

    def __init__(self, path: Path):
        self.path, self.lines, self.stopping = path, 0, False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping:
            with open(self.path, "rb", buffering=0) as f:
                while chunk := f.read(1 << 16):
                    self.lines += chunk.count(b"\n")

    def stop(self) -> None:
        self.stopping = True
        try:  # wake a reader blocked in open()
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass
        self.thread.join(5)


def run_overload(opts, spec: RouterSpec, workdir: Path) -> Result:
    fifo = workdir / "sink.fifo"
    os.mkfifo(fifo)
    limit = opts.mem_buf_limit
    output = f"""[OUTPUT]
    Name   file
    Match  *
    Path   {workdir}
    File   sink.fifo
    Format plain
"""
    cfg = router_config(opts, workdir, output, grace=30,
                        input_extra=f"    Mem_Buf_Limit {limit}\n")
    reader = None
    with Router(spec, cfg, workdir, router_env()) as router:
        try:
            rate = opts.overload_rate
            args = cfg.target_args() + [
                "--mode", "message", "--rate", str(rate), "--duration", str(opts.duration),
            ]
            cpu0 = router.cpu()
            lg = Loadgen(opts.loadgen, args)
            if not lg.started.wait(60):
                raise RuntimeError("loadgen did not start")
            # While the output is blocked: watch memory.
            peak_rss = 0.0
            blocked_until = lg.t0 + opts.duration + 1
            while time.monotonic() < blocked_until:
                peak_rss = max(peak_rss, router.rss_mb())
                time.sleep(0.2)
            hwm_blocked = router.hwm_mb()
            # The output recovers: read the FIFO; the client finishes; everything must arrive.
            reader = FifoReader(fifo)
            summary = lg.wait()
            sent = summary["records"]
            out, t_end = wait_for_count(lambda: reader.lines, sent, quiet=opts.quiet,
                                        timeout=opts.drain_timeout)
            cpu = router.cpu() - cpu0
            res = Result(sent=sent, cpu=cpu, wall=t_end - lg.t0, rss_mb=router.hwm_mb(),
                         loadgen_cpu=summary["cpu_s"], loadgen_cpu_total=summary["cpu_total_s"])
            res.extra.update(
                offered=int(rate * opts.duration),
                max_lag_s=summary["max_lag_s"],
                rss_blocked_mb=max(peak_rss, hwm_blocked),
                mem_buf_limit_mb=size_bytes(limit) / 1e6,
            )
            finish(router, res, out, "file.0")
            return res
        finally:
            if reader:
                reader.stop()


def size_bytes(s: str) -> int:
    m = re.fullmatch(r"(\d+)\s*([KMG]?)B?", s.strip().upper())
    if not m:
        raise ValueError(f"not a size: {s}")
    return int(m.group(1)) * {"": 1, "K": 1000, "M": 1000**2, "G": 1000**3}[m.group(2)]


def run_one(opts, name: str, spec: RouterSpec) -> Result:
    skip = SCENARIOS[name].fluent_bit_skip
    if skip and spec.name == FLUENT_BIT:
        raise Skip(skip)
    workdir = Path(tempfile.mkdtemp(prefix=f"lr-bench-{name}-{spec.name}-"))
    try:
        if name.startswith("seed-"):
            return run_seed(opts, spec, int(name.split("-")[1]), workdir)
        if name.startswith("null-"):
            return run_paced(opts, spec, int(name.split("-")[1]), 1, workdir)
        if name == "max-message":
            return run_max(opts, spec, "message", True, workdir)
        if name == "max-packed":
            return run_max(opts, spec, "packed", False, workdir)
        if name == "max-compressed":
            return run_max(opts, spec, "compressed", False, workdir)
        if name == "conns-1000":
            return run_paced(opts, spec, 10000, 1000, workdir)
        if name == "idle":
            return run_idle(opts, spec, workdir)
        if name == "overload":
            return run_overload(opts, spec, workdir)
        raise ValueError(name)
    finally:
        if not opts.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir}")


# ---------------------------------------------------------------------------------------------
# Report


def median(runs: list[dict], key: str):
    vals = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
    return statistics.median(vals) if vals else None


def fmt_int(v) -> str:
    return "–" if v is None else f"{int(round(v)):,}"


def fmt(v, digits=2) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


def ok_runs(runs: list[dict]) -> list[dict]:
    return [r for r in runs if "failed" not in r and "skipped" not in r]


def notes(name: str, runs: list[dict]) -> str:
    parts = []
    skipped = [r["skipped"] for r in runs if "skipped" in r]
    if skipped:
        return f"not run: {skipped[0]}"
    failed = [r["failed"] for r in runs if "failed" in r]
    if failed:
        parts.append(f"FAILED {len(failed)} of {len(runs)} run(s): {failed[0]}")
    runs = ok_runs(runs)
    if not runs:
        return "; ".join(parts)
    lost = [r["sent"] - r["out"] for r in runs]
    drops = [r["drops"] for r in runs if r.get("drops")]
    if name != "idle":
        parts.append("lost 0" if not any(lost) else f"LOST {lost} (sent − out per run)")
    if drops:
        parts.append(f"DROPS {drops}")
    if any(r.get("retries") for r in runs):
        parts.append(f"output retries {[r.get('retries', 0) for r in runs]}")
    if any(r.get("tls_errors") for r in runs):
        parts.append(f"TLS ERRORS {[r.get('tls_errors', 0) for r in runs]}: "
                     f"{next(r['tls_error'] for r in runs if r.get('tls_error'))}")
    if any(r.get("unparsed") for r in runs):
        parts.append(f"UNPARSED by nginx {[r.get('unparsed', 0) for r in runs]}")
    if any(r.get("errors_logged") for r in runs):
        parts.append(f"router error lines {[r['errors_logged'] for r in runs]}")
    if any(r.get("loadgen_errors") for r in runs):
        parts.append(f"loadgen errors {[r.get('loadgen_errors', 0) for r in runs]}")
    if name.startswith("seed-") or name.startswith("null-"):
        parts.append(f"achieved {fmt(median(runs, 'achieved_rate'), 0)}/s")
    if name.startswith("seed-"):
        parts.append(f"stub CPU {fmt(median(runs, 'stub_cpu'))} s")
        if median(runs, "proxy_cpu") is not None:
            parts.append(f"TLS proxy CPU {fmt(median(runs, 'proxy_cpu'))} s, "
                         f"{fmt_int(median(runs, 'proxy_connections'))} connection(s)")
    if name.startswith("max-") or name == "conns-1000":
        lg, cpu = median(runs, "loadgen_cpu"), median(runs, "cpu")
        if lg is not None and cpu:
            parts.append(f"loadgen/router CPU {lg / cpu:.2f}")
    if name.startswith("max-"):
        parts.append(f"loadgen wrote {fmt(median(runs, 'achieved_rate'), 0)}/s")
    if name == "conns-1000":
        parts.append(f"achieved {fmt(median(runs, 'achieved_rate'), 0)}/s, "
                     f"max lag {fmt(median(runs, 'max_lag_s'))} s")
    if name == "overload":
        parts.append(
            f"Mem_Buf_Limit {fmt(median(runs, 'mem_buf_limit_mb'), 1)} MB, RSS while blocked "
            f"{fmt(median(runs, 'rss_blocked_mb'), 1)} MB; client sent "
            f"{fmt_int(median(runs, 'sent'))} of {fmt_int(median(runs, 'offered'))} offered "
            f"(max lag {fmt(median(runs, 'max_lag_s'), 1)} s)")
    q, e = median(runs, "rss_quarter_mb"), median(runs, "rss_end_mb")
    if q is not None and e is not None:
        parts.append(f"RSS {fmt(q, 1)} MB at ¼ of the load, {fmt(e, 1)} MB at its end")
    extra_lg = median(runs, "loadgen_cpu_total")
    if extra_lg is not None and extra_lg - (median(runs, "loadgen_cpu") or 0) > 0.1:
        parts.append(f"loadgen CPU incl. pre-encoding {fmt(extra_lg)} s")
    if name == "idle":
        parts.append(f"RSS at end {fmt(median(runs, 'rss_now_mb'), 1)} MB")
    return "; ".join(parts)


def table(results: dict[str, dict[str, list[dict]]]) -> str:
    head = ("| scenario | router | records sent | records out | router CPU-s | wall-s | vCPU "
            "| records / CPU-s | peak RSS MB | loadgen CPU-s | notes |")
    rows = [head, "|" + "---|" * 11]
    for name, by_router in results.items():
        for router, all_runs in by_router.items():
            runs = ok_runs(all_runs)
            rows.append(
                f"| {name} | {router} | {fmt_int(median(runs, 'sent'))} "
                f"| {fmt_int(median(runs, 'out'))} "
                f"| {fmt(median(runs, 'cpu'))} | {fmt(median(runs, 'wall'), 1)} "
                f"| {fmt(median(runs, 'vcpu'), 3)} | {fmt_int(median(runs, 'per_cpu_s'))} "
                f"| {fmt(median(runs, 'rss_mb'), 1)} | {fmt(median(runs, 'loadgen_cpu'))} "
                f"| {notes(name, all_runs)} |"
            )
    return "\n".join(rows)


def ratio(a, b, digits=2) -> str:
    return "–" if a is None or b is None or b == 0 or a == 0 else f"{a / b:.{digits}f}"


def ratio_table(results: dict[str, dict[str, list[dict]]]) -> str | None:
    """logrouter / Fluent Bit for each scenario both ran, from the medians of this invocation.
    Below 1 means logrouter uses less (vCPU, RSS); above 1 means it does more per CPU-second."""
    head = ("| scenario | vCPU logrouter / Fluent Bit | vCPU Fluent Bit / logrouter "
            "| peak RSS logrouter / Fluent Bit | peak RSS Fluent Bit / logrouter "
            "| records per CPU-s logrouter / Fluent Bit | medians (logrouter vs Fluent Bit) |")
    rows = [head, "|" + "---|" * 7]
    for name, by_router in results.items():
        lr, fb = ok_runs(by_router.get(LOGROUTER, [])), ok_runs(by_router.get(FLUENT_BIT, []))
        if not lr or not fb:
            continue
        m = {k: (median(lr, k), median(fb, k)) for k in ("vcpu", "rss_mb", "per_cpu_s", "cpu")}
        (lv, fv), (lm, fm), (lp, fp), (lc, fc) = m["vcpu"], m["rss_mb"], m["per_cpu_s"], m["cpu"]
        detail = (f"vCPU {fmt(lv, 3)} vs {fmt(fv, 3)}; {fmt(lm, 1)} vs {fmt(fm, 1)} MB; "
                  f"{fmt_int(lp)} vs {fmt_int(fp)} records/CPU-s")
        if name == "idle":
            detail = f"CPU {fmt(lc)} vs {fmt(fc)} s; {fmt(lm, 1)} vs {fmt(fm, 1)} MB"
        lost = [(r["sent"] - r["out"]) for r in lr + fb if name != "idle"]
        if any(lost):
            detail += "; records were lost: see the table above"
        rows.append(f"| {name} | {ratio(lv, fv)} | {ratio(fv, lv)} | {ratio(lm, fm)} "
                    f"| {ratio(fm, lm)} | {ratio(lp, fp)} | {detail} |")
    return "\n".join(rows) if len(rows) > 2 else None


# ---------------------------------------------------------------------------------------------


def find_loadgen(given: str | None) -> Path:
    candidates = [given, os.environ.get("LOADGEN")] if given or os.environ.get("LOADGEN") else [
        ROOT / "target/release/logrouter-loadgen",
        ROOT / "loadgen/target/release/logrouter-loadgen",
        Path("/tmp/loadgen-target/release/logrouter-loadgen"),
    ]
    for _ in range(15):  # a build may be replacing it
        for c in candidates:
            if c and Path(c).is_file():
                return Path(c)
        log("logrouter-loadgen not found (a build?); retrying in 60 s")
        time.sleep(60)
    sys.exit("logrouter-loadgen not found; build it with\n"
             "    (cd loadgen && cargo build --release)\n"
             "or give --loadgen PATH")


def list_scenarios() -> None:
    for k, v in SCENARIOS.items():
        who = f"logrouter only ({v.fluent_bit_skip})" if v.fluent_bit_skip else "both routers"
        print(f"{k:16} {v.desc}; {who}")
    for k, v in GROUPS.items():
        print(f"{k:16} = {' '.join(v)}")


def default_router() -> Path:
    """The build that ships (scripts/build-release.sh: static, not position-independent) if
    there is one, else the plain release build."""
    host = subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout
    triple = next((l.split()[1] for l in host.splitlines() if l.startswith("host:")), "")
    shipped = ROOT / "target" / triple / "release" / "logrouter"
    return shipped if triple and shipped.exists() else ROOT / "target/release/logrouter"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", default=["all"],
                    help="scenario names, or all / seed / max / fb (default all)")
    ap.add_argument("-d", "--duration", type=float, default=30,
                    help="seconds of load (or of idling) per run (30)")
    ap.add_argument("-r", "--runs", type=int, default=1, help="runs per scenario; the median is shown (1)")
    ap.add_argument("--router", default=str(default_router()),
                    help="the logrouter binary (default: the shipped build of scripts/build-release.sh "
                         "when present, else target/release/logrouter)")
    ap.add_argument("--fluent-bit", metavar="PATH",
                    help=f"the Fluent Bit binary to run beside logrouter ({DEFAULT_FLUENT_BIT}, "
                         "when it exists)")
    ap.add_argument("--no-fluent-bit", action="store_true", help="run logrouter only")
    ap.add_argument("--no-logrouter", action="store_true", help="run Fluent Bit only")
    ap.add_argument("--firehose-plain", action="store_true",
                    help="seed-*: logrouter straight to the stub over plain HTTP, no TLS proxy "
                         "(Fluent Bit, HTTPS only, then sits them out)")
    ap.add_argument("--loadgen", help="logrouter-loadgen binary (found in the usual target dirs)")
    ap.add_argument("--unix", action="store_true", help="drive the routers over a Unix socket instead of TCP")
    ap.add_argument("--mem-buf-limit", default="5M", help="overload: the input's Mem_Buf_Limit (5M)")
    ap.add_argument("--overload-rate", type=int, default=20000,
                    help="overload: records/s the client offers while the output is blocked (20000)")
    ap.add_argument("--quiet", type=float, default=10,
                    help="give up waiting for delivery when the output count has not moved for this long (10)")
    ap.add_argument("--drain-timeout", type=float, default=120)
    ap.add_argument("--json", help="also write every run's numbers, both routers, to this file")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temp dirs (configs, router logs, FIFOs, certificates)")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    opts = ap.parse_args()
    if opts.list:
        list_scenarios()
        return
    names: list[str] = []
    for s in opts.scenarios:
        for n in GROUPS.get(s, [s]):
            if n not in SCENARIOS:
                sys.exit(f"unknown scenario {n!r}; --list shows them")
            if n not in names:
                names.append(n)

    fb_path = None
    if not opts.no_fluent_bit:
        if opts.fluent_bit:
            fb_path = Path(opts.fluent_bit)
            if not fb_path.is_file():
                sys.exit(f"--fluent-bit {fb_path}: no such file")
        elif DEFAULT_FLUENT_BIT.is_file():
            fb_path = DEFAULT_FLUENT_BIT
        else:
            log(f"{DEFAULT_FLUENT_BIT} not found: logrouter only (--fluent-bit PATH to give one)")
    if opts.no_logrouter and fb_path is None:
        sys.exit("--no-logrouter and no Fluent Bit: nothing to run")

    scratch = Path(tempfile.mkdtemp(prefix="lr-bench-"))
    try:
        opts.loadgen = find_loadgen(opts.loadgen)
        specs: list[RouterSpec] = []
        if not opts.no_logrouter:
            src = Path(opts.router)
            specs.append(RouterSpec(LOGROUTER, snapshot_binary(src, scratch), src))
        if fb_path:
            specs.append(RouterSpec(FLUENT_BIT, fb_path, fb_path))
        opts.certs = None
        if any(n.startswith("seed-") for n in names) and not opts.firehose_plain:
            opts.certs = make_certs(scratch)
            log(f"TLS: CA {opts.certs.ca}, server certificate {opts.certs.cert} (127.0.0.1)")
        results = run_all(opts, names, specs)
    finally:
        if opts.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    who = " and ".join(f"{s.name} {s.source}" for s in specs)
    firehose = "plain HTTP to the stub" if opts.firehose_plain else "HTTPS through a TLS proxy"
    print(f"\nEnd-to-end benchmarks: {opts.duration:g} s a run, median of {opts.runs} run(s), "
          f"{'Unix socket' if opts.unix else 'TCP'}, Firehose over {firehose}; {who}; "
          f"in each run the routers go one after the other, alternating which goes first\n")
    print(table(results))
    ratios = ratio_table(results)
    if ratios:
        print("\nlogrouter against Fluent Bit, from the medians above (vCPU and RSS: below 1 "
              "in the logrouter / Fluent Bit columns means logrouter uses less; records per "
              "CPU-s: above 1 means logrouter does more with a CPU-second)\n")
        print(ratios)
    if opts.json:
        Path(opts.json).write_text(json.dumps({
            "options": {"duration": opts.duration, "runs": opts.runs, "unix": opts.unix,
                        "firehose_plain": opts.firehose_plain,
                        "routers": {s.name: str(s.source) for s in specs}},
            "results": results,
        }, indent=2))


def run_all(opts, names: list[str], specs: list[RouterSpec]) -> dict[str, dict[str, list[dict]]]:
    """Every scenario, every run, each router back to back; the first router alternates."""
    results: dict[str, dict[str, list[dict]]] = {}
    for name in names:
        results[name] = {s.name: [] for s in specs}
        for k in range(opts.runs):
            order = specs if k % 2 == 0 else specs[::-1]
            for position, spec in enumerate(order):
                log(f"{name} run {k + 1}/{opts.runs}, {spec.name} ({opts.duration:g} s)")
                try:
                    r = run_one(opts, name, spec).numbers()
                except Skip as e:
                    r = {"skipped": str(e)}
                except Exception as e:  # one failed run must not lose the others
                    log(f"{name} run {k + 1}, {spec.name} FAILED: {e!r}")
                    r = {"failed": f"{type(e).__name__}: {e}".splitlines()[0][:200]}
                r["run"], r["position"] = k + 1, position
                log(f"{name} {spec.name}: " + json.dumps(r))
                results[name][spec.name].append(r)
    return results


if __name__ == "__main__":
    main()
