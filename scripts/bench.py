#!/usr/bin/env python3
"""End-to-end benchmarks of the release router, driven by logrouter-loadgen over a socket.

Each scenario writes a config into a temp dir, starts target/release/logrouter on it, drives it
with the load generator, waits until the router has delivered (or, for the null output,
stopped working), and reads the router's own CPU time (utime + stime from /proc/PID/stat) over
that window and its peak RSS (VmHWM). Every scenario runs --runs times; the table shows the
median of each column. Python 3.11 standard library only.

    scripts/bench.py all                     # every scenario, 30 s each
    scripts/bench.py seed max-message -d 10  # the seed table and one max scenario, 10 s each
    scripts/bench.py --list

See BENCHMARKS.md ("End to end") for what each scenario is and how to read the table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
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

# name -> what it is (shown by --list and in the table's legend)
SCENARIOS = {
    "seed-100": "100 lines/s, Message mode, parser nginx -> Firehose stub",
    "seed-1000": "1,000 lines/s, Message mode, parser nginx -> Firehose stub",
    "seed-10000": "10,000 lines/s, Message mode, parser nginx -> Firehose stub",
    "max-message": "as fast as the router reads, Message mode (one record a frame), parser nginx -> null",
    "max-packed": "as fast as the router reads, PackedForward batches of 1,000, no parser -> null",
    "max-compressed": "as fast as the router reads, CompressedPackedForward (gzip) batches of 1,000, no parser -> null",
    "overload": "file output into a FIFO nobody reads, Mem_Buf_Limit on the input, client keeps sending; then the FIFO is read",
    "conns-1000": "1,000 connections at 10 records/s each, Message mode, parser nginx -> null",
    "idle": "no traffic: CPU and RSS of a router with a forward input, parser and null output",
}
GROUPS = {
    "all": list(SCENARIOS),
    "seed": ["seed-100", "seed-1000", "seed-10000"],
    "max": ["max-message", "max-packed", "max-compressed"],
}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# /proc


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


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


# ---------------------------------------------------------------------------------------------
# Processes


class Router:
    """The router on a config, its stderr collected; knows its listeners and exit summary."""

    def __init__(self, binary: Path, config: str, workdir: Path, env: dict, inputs: int = 1):
        self.conf = workdir / "fluent-bit.conf"
        self.conf.write_text(config)
        for _ in range(120):  # another build may be replacing the binary
            if binary.exists():
                break
            time.sleep(0.5)
        self.proc = subprocess.Popen(
            [str(binary), "-c", str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            errors="replace",
        )
        self.pid = self.proc.pid
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 20
        while len(self.listening()) < inputs:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("router did not start:\n" + "\n".join(self.lines[-20:]))
            time.sleep(0.05)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def listening(self) -> list[str]:
        return [
            l.split("listening on ", 1)[1].strip()
            for l in list(self.lines)
            if "[input:forward:" in l and "listening on " in l
        ]

    def http_port(self) -> int | None:
        for l in list(self.lines):
            m = re.search(r"\[http_server\] listen iface=\S+ tcp_port=(\d+)", l)
            if m:
                return int(m.group(1))
        return None

    def cpu(self) -> float:
        return proc_cpu(self.pid)

    def hwm_mb(self) -> float:
        return proc_status_kb(self.pid, "VmHWM") / 1024

    def rss_mb(self) -> float:
        return proc_status_kb(self.pid, "VmRSS") / 1024

    def stop(self, timeout: float = 60) -> dict:
        """SIGTERM, wait, and parse the exit summary: {'input forward.0': {...}, 'output null.0': {...}}."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)
        summary: dict[str, dict[str, int]] = {}
        for l in self.lines:
            m = re.search(r"\[engine\] (input|filter|output) (\S+): (.*)", l)
            if m:
                summary[f"{m.group(1)} {m.group(2)}"] = {
                    k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(3))
                }
        self.summary = summary
        return summary

    def errors(self) -> list[str]:
        return [l for l in self.lines if "] [error]" in l or "] [ warn]" in l]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Metrics:
    """The router's Prometheus endpoint, when it has one."""

    def __init__(self, port: int | None):
        self.url = f"http://127.0.0.1:{port}/api/v1/metrics/prometheus" if port else None

    def output_records(self, name: str) -> int | None:
        if not self.url:
            return None
        try:
            with urllib.request.urlopen(self.url, timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        m = re.search(
            r'^fluentbit_output_proc_records_total\{name="%s"\} (\d+(?:\.\d+)?)' % re.escape(name),
            text,
            re.M,
        )
        return int(float(m.group(1))) if m else None


class Stub:
    """logrouter-loadgen firehose-stub: answers PutRecordBatch, counts records."""

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
# Configs


def service(http_port: int, grace: int = 10) -> str:
    return f"""[SERVICE]
    Flush        1
    Grace        {grace}
    Log_Level    info
    Parsers_File {PARSERS}
    HTTP_Server  On
    HTTP_Listen  127.0.0.1
    HTTP_Port    {http_port}
"""


def forward_input(opts, workdir: Path, extra: str = "") -> tuple[str, list[str]]:
    """The forward input section and the loadgen's target arguments."""
    if opts.unix:
        path = workdir / "forward.sock"
        return (
            f"[INPUT]\n    Name      forward\n    unix_path {path}\n{extra}",
            ["--unix", str(path)],
        )
    return f"[INPUT]\n    Name   forward\n    Listen 127.0.0.1\n    Port   0\n{extra}", []


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


def firehose_output(port: int) -> str:
    return f"""[OUTPUT]
    Name            firehose
    Match           *
    region          us-east-1
    delivery_stream bench
    endpoint        http://127.0.0.1:{port}
"""


def router_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="dummy",
        AWS_SECRET_ACCESS_KEY="dummy",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def target_args(router: Router, unix_args: list[str]) -> list[str]:
    if unix_args:
        return unix_args
    return ["--tcp", router.listening()[0]]


# ---------------------------------------------------------------------------------------------
# Scenarios. Each returns a dict of numbers (one run).


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
            "per_cpu_s": self.out / self.cpu if self.cpu > 0 else 0.0,
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
    lg = Loadgen(opts.loadgen, load_args)
    summary = lg.wait()
    sent = summary["records"]
    metrics = Metrics(router.http_port() or opts.http_port)
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


def finish(router: Router, res: Result, out, out_name: str, summary_in: str = "input forward.0"):
    """Stops the router and fills in records out (from the summary when not counted) and drops."""
    s = router.stop()
    o = s.get(f"output {out_name}", {})
    res.out = out if out is not None else o.get("proc_records", 0)
    dropped = {k: v for k, v in o.items() if k in (
        "retries_exhausted", "permanent_error", "shutdown_timeout", "oversize") and v}
    i = s.get(summary_in, {})
    dropped.update({k: v for k, v in i.items() if k in (
        "invalid_event", "refused_frame", "no_route") and v})
    unparsed = s.get("filter parser.0", {}).get("unparsed", 0)
    if unparsed:
        res.extra["unparsed"] = unparsed  # the nginx parser did not match: a broken load
    res.extra["router_in"] = i.get("records", -1)
    res.extra["router_proc"] = o.get("proc_records", -1)
    res.extra["drops"] = dropped
    res.extra["errors_logged"] = len([l for l in router.errors() if "] [error]" in l])


def run_seed(opts, rate: int, workdir: Path) -> Result:
    stub = Stub(opts.loadgen)
    inp, unix_args = forward_input(opts, workdir)
    config = service(opts.http_port) + inp + PARSER_FILTER + firehose_output(stub.port)
    router = Router(opts.router, config, workdir, router_env())
    try:
        stub_cpu0 = stub.cpu()
        args = target_args(router, unix_args) + [
            "--mode", "message", "--rate", str(rate), "--duration", str(opts.duration),
            "--tag", "web-firelens-bench",
        ]
        summary, lg, sent, out, cpu, wall, rss = measured_load(
            opts, router, args, stub.count, None)
        res = loaded_result(summary, sent, cpu, wall, rss)
        res.extra["stub_cpu"] = stub.cpu() - stub_cpu0
        res.extra["achieved_rate"] = summary["rate"]
        res.extra["max_lag_s"] = summary["max_lag_s"]
        finish(router, res, out, "firehose.0")
        res.extra["stub_final"] = stub.stop()["records"]
        return res
    finally:
        router.kill()
        if stub.proc.poll() is None:
            stub.proc.kill()


def run_max(opts, mode: str, parser: bool, workdir: Path) -> Result:
    inp, unix_args = forward_input(opts, workdir)
    config = service(opts.http_port) + inp + (PARSER_FILTER if parser else "") + NULL_OUTPUT
    router = Router(opts.router, config, workdir, router_env())
    try:
        args = target_args(router, unix_args) + [
            "--mode", mode, "--rate", "0", "--duration", str(opts.duration), "--batch", "1000",
            "--ring", "1000000",
        ]
        summary, lg, sent, out, cpu, wall, rss = measured_load(opts, router, args, None, "null.0")
        res = loaded_result(summary, sent, cpu, wall, rss)
        res.extra["achieved_rate"] = summary["rate"]
        finish(router, res, out, "null.0")
        return res
    finally:
        router.kill()


def run_conns(opts, workdir: Path) -> Result:
    inp, unix_args = forward_input(opts, workdir)
    config = service(opts.http_port) + inp + PARSER_FILTER + NULL_OUTPUT
    router = Router(opts.router, config, workdir, router_env())
    try:
        args = target_args(router, unix_args) + [
            "--mode", "message", "--connections", "1000", "--rate", "10000",
            "--duration", str(opts.duration),
        ]
        summary, lg, sent, out, cpu, wall, rss = measured_load(opts, router, args, None, "null.0")
        res = loaded_result(summary, sent, cpu, wall, rss)
        res.extra["achieved_rate"] = summary["rate"]
        res.extra["max_lag_s"] = summary["max_lag_s"]
        res.extra["loadgen_errors"] = summary["errors"]
        finish(router, res, out, "null.0")
        return res
    finally:
        router.kill()


def run_idle(opts, workdir: Path) -> Result:
    inp, _ = forward_input(opts, workdir)
    config = service(opts.http_port) + inp + PARSER_FILTER + NULL_OUTPUT
    router = Router(opts.router, config, workdir, router_env())
    try:
        time.sleep(1)  # past start-up
        cpu0, t0 = router.cpu(), time.monotonic()
        time.sleep(opts.duration)
        res = Result(cpu=router.cpu() - cpu0, wall=time.monotonic() - t0, rss_mb=router.hwm_mb())
        res.extra["rss_now_mb"] = router.rss_mb()
        finish(router, res, 0, "null.0")
        return res
    finally:
        router.kill()


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


def run_overload(opts, workdir: Path) -> Result:
    fifo = workdir / "sink.fifo"
    os.mkfifo(fifo)
    limit = opts.mem_buf_limit
    inp, unix_args = forward_input(opts, workdir, f"    Mem_Buf_Limit {limit}\n")
    output = f"""[OUTPUT]
    Name   file
    Match  *
    Path   {workdir}
    File   sink.fifo
    Format plain
"""
    config = service(opts.http_port, grace=30) + inp + PARSER_FILTER + output
    router = Router(opts.router, config, workdir, router_env())
    reader = None
    try:
        rate = opts.overload_rate
        args = target_args(router, unix_args) + [
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
        router.kill()


def size_bytes(s: str) -> int:
    m = re.fullmatch(r"(\d+)\s*([KMG]?)B?", s.strip().upper())
    if not m:
        raise ValueError(f"not a size: {s}")
    return int(m.group(1)) * {"": 1, "K": 1000, "M": 1000**2, "G": 1000**3}[m.group(2)]


def run_one(opts, name: str) -> Result:
    workdir = Path(tempfile.mkdtemp(prefix=f"lr-bench-{name}-"))
    try:
        if name.startswith("seed-"):
            return run_seed(opts, int(name.split("-")[1]), workdir)
        if name == "max-message":
            return run_max(opts, "message", True, workdir)
        if name == "max-packed":
            return run_max(opts, "packed", False, workdir)
        if name == "max-compressed":
            return run_max(opts, "compressed", False, workdir)
        if name == "conns-1000":
            return run_conns(opts, workdir)
        if name == "idle":
            return run_idle(opts, workdir)
        if name == "overload":
            return run_overload(opts, workdir)
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


def notes(name: str, runs: list[dict]) -> str:
    parts = []
    failed = [r["failed"] for r in runs if "failed" in r]
    if failed:
        parts.append(f"FAILED {len(failed)} of {len(runs)} run(s): {failed[0]}")
    runs = [r for r in runs if "failed" not in r]
    if not runs:
        return "; ".join(parts)
    lost = [r["sent"] - r["out"] for r in runs]
    drops = [r["drops"] for r in runs if r.get("drops")]
    if name != "idle":
        parts.append("lost 0" if not any(lost) else f"LOST {lost} (sent − out per run)")
    if drops:
        parts.append(f"DROPS {drops}")
    if any(r.get("unparsed") for r in runs):
        parts.append(f"UNPARSED by nginx {[r.get('unparsed', 0) for r in runs]}")
    if any(r.get("errors_logged") for r in runs):
        parts.append(f"router error lines {[r['errors_logged'] for r in runs]}")
    if name.startswith("seed-"):
        parts.append(f"achieved {fmt(median(runs, 'achieved_rate'), 0)}/s")
        parts.append(f"stub CPU {fmt(median(runs, 'stub_cpu'))} s")
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


def table(results: dict[str, list[dict]], opts) -> str:
    head = ("| scenario | records sent | records out | router CPU-s | wall-s | vCPU "
            "| records / CPU-s | peak RSS MB | loadgen CPU-s | notes |")
    rows = [head, "|" + "---|" * 10]
    for name, runs in results.items():
        rows.append(
            f"| {name} | {fmt_int(median(runs, 'sent'))} | {fmt_int(median(runs, 'out'))} "
            f"| {fmt(median(runs, 'cpu'))} | {fmt(median(runs, 'wall'), 1)} "
            f"| {fmt(median(runs, 'vcpu'), 3)} | {fmt_int(median(runs, 'per_cpu_s'))} "
            f"| {fmt(median(runs, 'rss_mb'), 1)} | {fmt(median(runs, 'loadgen_cpu'))} "
            f"| {notes(name, runs)} |"
        )
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------------


def find_loadgen(given: str | None) -> Path:
    candidates = [given, os.environ.get("LOADGEN")] if given or os.environ.get("LOADGEN") else [
        ROOT / "target/release/logrouter-loadgen",
        ROOT / "loadgen/target/release/logrouter-loadgen",
        Path("/tmp/loadgen-target/release/logrouter-loadgen"),
    ]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    sys.exit("logrouter-loadgen not found; build it with\n"
             "    (cd loadgen && cargo build --release)\n"
             "or give --loadgen PATH")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", default=["all"],
                    help="scenario names, or all / seed / max (default all)")
    ap.add_argument("-d", "--duration", type=float, default=30,
                    help="seconds of load (or of idling) per run (30)")
    ap.add_argument("-r", "--runs", type=int, default=1, help="runs per scenario; the median is shown (1)")
    ap.add_argument("--router", default=str(ROOT / "target/release/logrouter"))
    ap.add_argument("--loadgen", help="logrouter-loadgen binary (found in the usual target dirs)")
    ap.add_argument("--unix", action="store_true", help="drive the router over a Unix socket instead of TCP")
    ap.add_argument("--mem-buf-limit", default="5M", help="overload: the input's Mem_Buf_Limit (5M)")
    ap.add_argument("--overload-rate", type=int, default=20000,
                    help="overload: records/s the client offers while the output is blocked (20000)")
    ap.add_argument("--quiet", type=float, default=10,
                    help="give up waiting for delivery when the output count has not moved for this long (10)")
    ap.add_argument("--drain-timeout", type=float, default=120)
    ap.add_argument("--json", help="also write every run's numbers to this file")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs (configs, FIFOs)")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    opts = ap.parse_args()
    if opts.list:
        for k, v in SCENARIOS.items():
            print(f"{k:16} {v}")
        for k, v in GROUPS.items():
            print(f"{k:16} = {' '.join(v)}")
        return
    names: list[str] = []
    for s in opts.scenarios:
        for n in GROUPS.get(s, [s]):
            if n not in SCENARIOS:
                sys.exit(f"unknown scenario {n!r}; --list shows them")
            if n not in names:
                names.append(n)
    opts.router = Path(opts.router)
    opts.loadgen = find_loadgen(opts.loadgen)
    opts.http_port = free_port()
    results: dict[str, list[dict]] = {}
    for name in names:
        results[name] = []
        for k in range(opts.runs):
            log(f"{name} run {k + 1}/{opts.runs} ({opts.duration:g} s)")
            try:
                r = run_one(opts, name).numbers()
            except Exception as e:  # one failed run must not lose the others
                log(f"{name} run {k + 1} FAILED: {e!r}")
                r = {"failed": f"{type(e).__name__}: {e}".splitlines()[0][:200]}
            log(f"{name}: " + json.dumps(r))
            results[name].append(r)
    print(f"\nlogrouter end-to-end benchmarks: {opts.duration:g} s a run, median of {opts.runs} "
          f"run(s), {'Unix socket' if opts.unix else 'TCP'}; router {opts.router}\n")
    print(table(results, opts))
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
