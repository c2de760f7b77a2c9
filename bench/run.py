#!/usr/bin/env python3
"""Benchmark driver for scripts/bench.sh (issues 5 and 12): the relay against its two ceilings
and a Go relay of the same contract.

Expects what scripts/bench.sh prepares: `wrk` on PATH, release builds of the relay and of
examples/ok_server, the Go relay and the open-loop load generator (BENCH_GO_RELAY and
BENCH_OPENLOOP: their binaries; empty: not run), and a Kafka broker on 127.0.0.1:9092
(KAFKA_PORT). Then, on 127.0.0.1 only:

  0. baselines: the relay built from earlier revisions (BENCH_COMPARE in scripts/bench.sh, passed
               here as BENCH_BASELINES=label=binary,...), each exactly like step 1, so the
               report can give each change as a before/after ratio from one run;
  1. relay:    target/release/tim-relay (Sign checking on, a fresh topic of BENCH_PARTITIONS (3), a temp
               spool), a warm-up, then each concurrency level with wrk + bench/callback.lua;
               the Go relay (bench/go-relay: net/http + franz-go, acks=all, idempotent) runs
               beside it on a topic of its own, same load, rounds alternating; then, while they
               still run, the open loop: each relay at each fixed rate (BENCH_OPEN_RATES) with
               bench/openloop, the same bodies, latency from each request's scheduled time;
  2. record size: the mean size of the change events the relay produced (consumed back);
  3. producer ceiling: Kafka's ProducerPerformance with that record size, acks=all, idempotent;
  4. HTTP ceiling: examples/ok_server (same listener, same worker count) under the same wrk levels,
     and the open loop at the same rates (what the load tool and a bare answer cost);
  5. results/bench.md (also printed), results/bench.json, results/bench.png.

Why wrk: its Lua hooks build a different request per call, so the GroupId (and with it the
Kafka key and partition) varies over 10,000 groups and every body is realistic; oha and ab
repeat one fixed body. wrk (not wrk2) runs a closed loop: N connections, each sending its
next request as soon as the previous answer arrives, so a slow answer also slows the load and
queueing stays hidden. The open loop is bench/openloop (Go, standard library): it sends at a
fixed rate whatever the answers, over up to BENCH_OPEN_CONNECTIONS connections, and measures
each request from the time it was due, so a stall is charged to every request it delayed (no
coordinated omission). It sends the bodies bench/callback.lua builds (written out with
BENCH_DUMP). wrk2 would do the same but is not packaged by Debian; vegeta, also open-loop,
times a request from when it is actually sent and only checks the status code.

Knobs (environment): BENCH_SECONDS (10) per level, BENCH_WARMUP_SECONDS (3),
BENCH_LEVELS (1,16,64,256), BENCH_PORT (a free port), BENCH_PERF_RECORDS (300000),
BENCH_KEEP_TOPICS (0: the bench topics are deleted at the end), BENCH_ROUNDS (1, or 3 with a
baseline or the Go relay: rounds per level, median reported), BENCH_WAITING_CEILING_US (0: off;
else the HTTP ceiling runs again, waiting that long before each answer, as the relay waits for
Kafka), BENCH_OPEN_RATES (1000,5000 req/s; empty or 0: no open loop), BENCH_OPEN_SECONDS (20
per rate and server, after 2 s sent but not measured), BENCH_OPEN_CONNECTIONS (128: most
requests in flight), BENCH_PARTITIONS (3), BENCH_VARIANTS (see parse_variants: this relay again
with other settings, beside it in the same run).
Only the standard library is needed; matplotlib, when importable, draws the plot.
"""

import datetime
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"
LUA = REPO / "bench" / "callback.lua"
KAFKA_SH = ["bash", str(REPO / "scripts" / "kafka.sh")]
BOOTSTRAP = f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"  # the broker scripts/kafka.sh runs

APP_ID = "1400000000"
TOKEN = "bench-token"
GROUPS = 10_000
CALLBACK_PATH = "/callback"

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
WARMUP_SECONDS = int(os.environ.get("BENCH_WARMUP_SECONDS", "3"))
LEVELS = [int(c) for c in os.environ.get("BENCH_LEVELS", "1,16,64,256").split(",")]
PERF_RECORDS = int(os.environ.get("BENCH_PERF_RECORDS", "300000"))
KEEP_TOPICS = os.environ.get("BENCH_KEEP_TOPICS", "0") == "1"
# label=binary pairs set by scripts/bench.sh from BENCH_COMPARE.
BASELINES = [tuple(pair.split("=", 1)) for pair in os.environ.get("BENCH_BASELINES", "").split(",") if pair]
# Partitions of every bench topic (BENCH_PARTITIONS); a variant may set its own.
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS") or 3)


def parse_variants(text):
    """BENCH_VARIANTS: this commit's relay again, with other settings, beside the relay in the same
    run. `label:VAR=value VAR=value;label:...`; the pseudo-variable BENCH_TOPIC_PARTITIONS gives
    the variant's topic that many partitions. Returns [(label, env, partitions)]."""
    variants = []
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        label, _, assignments = entry.partition(":")
        env = {}
        for a in assignments.split():
            var, eq, value = a.partition("=")
            if not eq or not var:
                raise RuntimeError(f"BENCH_VARIANTS: `{a}` in `{entry}` is not VAR=value")
            env[var] = value
        if not label.strip() or not env:
            raise RuntimeError(f"BENCH_VARIANTS: `{entry}` is not label:VAR=value ...")
        partitions = int(env.pop("BENCH_TOPIC_PARTITIONS", PARTITIONS))
        if not env and partitions == PARTITIONS:
            raise RuntimeError(f"BENCH_VARIANTS: `{entry}` is the relay itself")
        variants.append((label.strip(), env, partitions))
    return variants


VARIANTS = parse_variants(os.environ.get("BENCH_VARIANTS", ""))
RELAY_BIN = REPO / "target" / "release" / "tim-relay"
# The Go relay of the same contract (bench/go-relay) and the open-loop load generator
# (bench/openloop), built by scripts/bench.sh; empty: not run.
GO_RELAY_BIN = os.environ.get("BENCH_GO_RELAY") or None
GO_RELAY = "Go relay"
OPENLOOP_BIN = os.environ.get("BENCH_OPENLOOP") or None
OPEN_RATES = [int(r) for r in os.environ.get("BENCH_OPEN_RATES", "1000,5000").split(",") if r.strip() not in ("", "0")]
OPEN_SECONDS = int(os.environ.get("BENCH_OPEN_SECONDS") or 20)
OPEN_WARMUP_SECONDS = 2
OPEN_CONNECTIONS = int(os.environ.get("BENCH_OPEN_CONNECTIONS") or 128)
# raw: bench/openloop writes and reads HTTP/1.1 itself; nethttp: through Go's net/http client.
OPEN_CLIENT = os.environ.get("BENCH_OPEN_CLIENT") or "raw"
# Rounds per level: with a baseline or the Go relay, 3 alternating rounds and the median, since
# one 10 s run on a shared 2-core machine can differ from the next by a third.
ROUNDS = int(os.environ.get("BENCH_ROUNDS") or (3 if BASELINES or VARIANTS or GO_RELAY_BIN else 1))
# When set, the HTTP ceiling runs a second time waiting this long before each answer, as the
# relay waits for Kafka: the cost of the HTTP exchange alone when answers are not immediate.
WAITING_US = int(os.environ.get("BENCH_WAITING_CEILING_US") or 0)
# A second pass of the current relay with a mix of commands (bench/callback.lua, BENCH_MIX).
MIX = os.environ.get("BENCH_MIX_PASS", "1") == "1"
WRK_TIMEOUT = "10s"  # long enough that slow answers are measured, not dropped as timeouts
CLK_TCK = os.sysconf("SC_CLK_TCK")
KAFKA_PID_FILE = Path(os.environ.get("KAFKA_DATA_DIR") or REPO / "target" / "kafka-data") / "kafka.pid"

# Never through a proxy: every request of this driver goes to 127.0.0.1.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class Stop(Exception):
    """SIGTERM (scripts/bench.sh forwards Ctrl-C as SIGTERM): unwind and clean up."""


def on_signal(signum, _frame):
    # Ctrl-C reaches both this process and scripts/bench.sh, which then sends SIGTERM too:
    # unwind once, and let the clean-up (bounded by its own timeouts) finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stop(f"signal {signum}")


# ---- processes -------------------------------------------------------------------------

CHILDREN = []  # every process we started and have not stopped yet


def spawn(cmd, **kw):
    proc = subprocess.Popen(cmd, **kw)
    CHILDREN.append(proc)
    return proc


def stop(proc, timeout=15):
    """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"pid {proc.pid} ignored SIGTERM for {timeout}s; SIGKILL")
            proc.kill()
            proc.wait()
    if proc in CHILDREN:
        CHILDREN.remove(proc)
    return proc.returncode


def stop_all():
    for proc in list(CHILDREN):
        stop(proc, timeout=10)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=5):
    with HTTP.open(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, r.read().decode("utf-8", "replace")


# Callback port -> the port serving /readyz and /metrics (the admin listener; revisions before
# it served them on the callback port, which BENCH_COMPARE may run).
ADMIN_PORTS = {}


def wait_http(proc, port, path, what, limit=90, fallback_port=None):
    """Until GET path answers 200 on port (or fallback_port); returns the port that answered."""
    deadline = time.monotonic() + limit
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} during start-up")
        for candidate in [p for p in (port, fallback_port) if p]:
            try:
                status, text = http_get(candidate, path, timeout=3)
                if status == 200:
                    return candidate
                last = f"{status} {text.strip()}"
            except urllib.error.HTTPError as e:
                last = f"{e.code} {e.read().decode('utf-8', 'replace').strip()}"
            except OSError as e:
                last = str(e)
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready on port {port} after {limit}s: {last}")


def kafka_tool(*args, timeout=180):
    """Runs a scripts/kafka.sh subcommand; returns stdout (stderr passes through)."""
    proc = spawn(KAFKA_SH + list(args), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        stop(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"kafka.sh {' '.join(args)} failed with code {proc.returncode}")
    return out


# ---- /proc sampling ------------------------------------------------------------------------


def proc_status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads), in seconds; None if it is gone."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After "pid (comm)": fields[0] is state (field 3), so utime (14) and stime (15) are 11 and 12.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class RssSampler(threading.Thread):
    """Max VmRSS of `pid`, sampled every 100 ms until stopped."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.max_kib, self._done = pid, 0, threading.Event()

    def run(self):
        while not self._done.is_set():
            try:
                self.max_kib = max(self.max_kib, proc_status_kib(self.pid, "VmRSS"))
            except OSError:
                return
            self._done.wait(0.1)

    def finish(self):
        self._done.set()
        self.join()
        return self.max_kib


# ---- relay metrics ----------------------------------------------------------------------------

METRIC_LINE = re.compile(r'^(tim_relay_[a-z_]+)(?:\{outcome="([a-z_]+)"\})? ([0-9.e+-]+)$')


def relay_counters(port):
    """Callback outcomes and spool counters from /metrics (empty for the ok_server)."""
    try:
        _, text = http_get(ADMIN_PORTS.get(port, port), "/metrics")
    except (OSError, urllib.error.HTTPError):
        return {}
    counters = {}
    for line in text.splitlines():
        m = METRIC_LINE.match(line)
        if not m:
            continue
        name, outcome, value = m.groups()
        if name == "tim_relay_callbacks_total" and outcome:
            counters[outcome] = float(value)
        elif name in ("tim_relay_spooled_total", "tim_relay_duplicates_total", "tim_relay_spool_events"):
            counters[name.removeprefix("tim_relay_")] = float(value)
    return counters


def broker_pid():
    """The broker scripts/kafka.sh runs (it shares the 2 cores with the relay and wrk)."""
    try:
        return int(KAFKA_PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def counter_delta(before, after):
    delta = {}
    for key, value in after.items():
        d = value - before.get(key, 0) if key != "spool_events" else value
        if d:
            delta[key] = int(d)
    return delta


# ---- load ----------------------------------------------------------------------------------------


def sign_env():
    """A fresh RequestTime and its Sign: the relay refuses a RequestTime more than 60 s off."""
    t = str(int(time.time()))
    return {
        "BENCH_REQUEST_TIME": t,
        "BENCH_SIGN": hashlib.sha256((TOKEN + t).encode()).hexdigest(),
        "BENCH_APP_ID": APP_ID,
        "BENCH_PATH": CALLBACK_PATH,
        "BENCH_GROUPS": str(GROUPS),
    }


def run_wrk(port, connections, seconds, server_pid):
    """One wrk run; returns the figures of that level, measured on `server_pid`."""
    threads = min(connections, 2)
    cmd = ["wrk", "-c", str(connections), "-t", str(threads), "-d", f"{seconds}s",
           "--timeout", WRK_TIMEOUT, "-s", str(LUA), f"http://127.0.0.1:{port}{CALLBACK_PATH}"]
    env = {**os.environ, **sign_env()}
    before = relay_counters(port)
    cpu0 = cpu_seconds(server_pid)
    kafka_pid = broker_pid()
    kafka_cpu0 = cpu_seconds(kafka_pid)
    wrk_cpu0 = children_cpu()  # only wrk is reaped in between, so the delta is wrk's own CPU
    sampler = RssSampler(server_pid)
    sampler.start()
    wall0 = time.monotonic()
    proc = spawn(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=seconds + 60)
    finally:
        stop(proc)
        rss_max = sampler.finish()
    wall = time.monotonic() - wall0
    cpu = cpu_seconds(server_pid) - cpu0
    wrk_cpu = children_cpu() - wrk_cpu0
    kafka_cpu1 = cpu_seconds(kafka_pid)
    kafka_cpu = kafka_cpu1 - kafka_cpu0 if kafka_cpu0 is not None and kafka_cpu1 is not None else None
    vmhwm = proc_status_kib(server_pid, "VmHWM")
    line = next((l for l in out.splitlines() if l.startswith("BENCH_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (code {proc.returncode}):\n{out}\n{err}")
    w = json.loads(line.removeprefix("BENCH_RESULT "))
    socket_errors = w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeouts"]
    return {
        "connections": connections,
        "threads": threads,
        "seconds": w["duration_us"] / 1e6,
        "requests": w["requests"],
        "rps": w["requests"] / (w["duration_us"] / 1e6),
        "p50_ms": w["p50_us"] / 1000,
        "p90_ms": w["p90_us"] / 1000,
        "p99_ms": w["p99_us"] / 1000,
        "p999_ms": w["p999_us"] / 1000,
        "max_ms": w["max_us"] / 1000,
        "mean_ms": w["mean_us"] / 1000,
        # response() counts every non-200 (or not-OK) answer, which includes wrk's own
        # "Non-2xx or 3xx responses" (non2xx3xx, kept for cross-checking).
        "errors": max(w["non200"], w["non2xx3xx"]) + socket_errors,
        "non200": w["non200"],
        "non2xx3xx": w["non2xx3xx"],
        "socket_errors": {k: w[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")},
        "sample_error": {"status": w["sample_status"], "body": w["sample_body"]} if w["non200"] else None,
        "rss_max_mib": rss_max / 1024,
        "vmhwm_mib": vmhwm / 1024,
        "cpu_s": cpu,
        "cpu_cores": cpu / wall,
        "wrk_cpu_s": wrk_cpu,
        "kafka_cpu_s": kafka_cpu,
        "relay_counters": counter_delta(before, relay_counters(port)),
        "body_bytes": {"min": w["body_min"], "max": w["body_max"], "mean": w["body_mean"]},
        "wrk_stderr": err.strip(),
    }


def dump_requests(port, path):
    """The requests bench/callback.lua builds (fresh RequestTime and Sign), written to `path` as
    PATH<TAB>BODY lines for bench/openloop. wrk runs the script's init() and exits before its
    load starts; it only opens one test connection to `port` first, which must be listening."""
    env = {**os.environ, **sign_env(), "BENCH_DUMP": str(path)}
    cmd = ["wrk", "-t", "1", "-c", "1", "-d", "1s", "-s", str(LUA), f"http://127.0.0.1:{port}{CALLBACK_PATH}"]
    proc = spawn(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        stop(proc)
    if proc.returncode != 0 or not Path(path).is_file() or not Path(path).stat().st_size:
        raise RuntimeError(f"wrk could not write the requests for the open loop (code {proc.returncode}):\n{out}\n{err}")


def run_open_loop(port, rate, server_pid):
    """One open-loop run at `rate` req/s: bench/openloop, OPEN_SECONDS measured after
    OPEN_WARMUP_SECONDS at the same rate; the server's CPU and RSS over the whole run."""
    with tempfile.TemporaryDirectory(prefix="tim-relay-bench-open-") as tmp:
        requests_file = Path(tmp) / "requests.txt"
        dump_requests(port, requests_file)
        cmd = [OPENLOOP_BIN, "-url", f"http://127.0.0.1:{port}", "-requests", str(requests_file),
               "-rate", str(rate), "-duration", f"{OPEN_SECONDS}s", "-warmup", f"{OPEN_WARMUP_SECONDS}s",
               "-connections", str(OPEN_CONNECTIONS), "-timeout", WRK_TIMEOUT, "-client", OPEN_CLIENT]
        cpu0 = cpu_seconds(server_pid)
        kafka_pid = broker_pid()
        kafka_cpu0 = cpu_seconds(kafka_pid)
        tool_cpu0 = children_cpu()  # only the load tool is reaped in between
        sampler = RssSampler(server_pid)
        sampler.start()
        wall0 = time.monotonic()
        proc = spawn(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=OPEN_SECONDS + OPEN_WARMUP_SECONDS + 90)
        finally:
            stop(proc)
            rss_max = sampler.finish()
    wall = time.monotonic() - wall0
    cpu = cpu_seconds(server_pid) - cpu0
    tool_cpu = children_cpu() - tool_cpu0
    kafka_cpu1 = cpu_seconds(kafka_pid)
    kafka_cpu = kafka_cpu1 - kafka_cpu0 if kafka_cpu0 is not None and kafka_cpu1 is not None else None
    line = next((l for l in out.splitlines() if l.startswith("OPENLOOP_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"bench/openloop failed (code {proc.returncode}):\n{out}\n{err}")
    o = json.loads(line.removeprefix("OPENLOOP_RESULT "))
    # The server's CPU over the whole run (warm-up included), per request sent in that time.
    sent = round(rate * (OPEN_SECONDS + OPEN_WARMUP_SECONDS))
    return {
        "rate": rate,
        "seconds": OPEN_SECONDS,
        "connections": OPEN_CONNECTIONS,
        "requests": o["requests"],
        "sent_rps": o["sent_rps"],
        "answered_rps": o["answered_rps"],
        "p50_ms": o["p50_us"] / 1000,
        "p90_ms": o["p90_us"] / 1000,
        "p99_ms": o["p99_us"] / 1000,
        "p999_ms": o["p999_us"] / 1000,
        "max_ms": o["max_us"] / 1000,
        "mean_ms": o["mean_us"] / 1000,
        "errors": o["errors"],
        "sample_error": o["sample_error"] or None,
        "wait_p99_ms": o["wait_p99_us"] / 1000,
        # From when the tool's scheduler handed the request out: without its own timer lateness.
        "dispatch_p50_ms": o["dispatch_p50_us"] / 1000,
        "dispatch_p99_ms": o["dispatch_p99_us"] / 1000,
        "dispatch_p999_ms": o["dispatch_p999_us"] / 1000,
        "sched_lag_p99_ms": o["sched_lag_p99_us"] / 1000,
        "sched_lag_max_ms": o["sched_lag_max_us"] / 1000,
        "max_in_flight": o["max_in_flight"],
        "rss_max_mib": rss_max / 1024,
        "cpu_s": cpu,
        "cpu_cores": cpu / wall,
        "cpu_us_per_req": cpu / sent * 1e6,
        "loadgen_cpu_s": tool_cpu,
        "kafka_cpu_s": kafka_cpu,
        "openloop_stderr": err.strip(),
    }


def open_loops(servers):
    """Every rate in OPEN_RATES for every server [(name, proc, port)], the order alternating
    from one rate to the next. Returns {name: [row per rate]}."""
    rows = {name: [] for name, _, _ in servers}
    if not (OPEN_RATES and OPENLOOP_BIN):
        return rows
    for i, rate in enumerate(OPEN_RATES):
        for name, proc, port in (servers if i % 2 == 0 else servers[::-1]):
            log(f"{name}: open loop at {rate} req/s for {OPEN_SECONDS}s (+{OPEN_WARMUP_SECONDS}s unmeasured)")
            row = run_open_loop(port, rate, proc.pid)
            log(f"{name}: open loop {rate} req/s: answered {row['answered_rps']:.0f} req/s, "
                f"p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, p99.9 {row['p999_ms']:.2f} ms, "
                f"errors {row['errors']}, CPU {row['cpu_us_per_req']:.1f} µs/req, "
                f"scheduler lag p99 {row['sched_lag_p99_ms']:.2f} ms")
            if row["errors"]:
                log(f"{name} open loop {rate} req/s: {row['errors']} errors; sample: {row['sample_error']}")
            rows[name].append(row)
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode} during the open loop")
    return rows


def preflight(name, port):
    """One callback by hand before any load: a bad Sign or a refused body shows here, with its answer."""
    env = sign_env()
    query = (f"SdkAppid={APP_ID}&CallbackCommand=Group.CallbackAfterGroupInfoChanged&contenttype=json"
             f"&ClientIP=127.0.0.1&OptPlatform=RESTAPI&Sign={env['BENCH_SIGN']}&RequestTime={env['BENCH_REQUEST_TIME']}")
    body = json.dumps({"CallbackCommand": "Group.CallbackAfterGroupInfoChanged", "GroupId": "@TGS#bench0",
                       "Type": "Public", "Operator_Account": "bench", "Name": "预检 ✅"}, ensure_ascii=False)
    req = urllib.request.Request(f"http://127.0.0.1:{port}{CALLBACK_PATH}?{query}", data=body.encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with HTTP.open(req, timeout=10) as r:
            status, text = r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode("utf-8", "replace")
    if status != 200 or '"ActionStatus":"OK"' not in text:
        raise RuntimeError(f"{name} refused a well-formed signed callback: {status} {text}")


def run_levels(servers):
    """Every level for every server in `servers` [(name, proc, port)], ROUNDS times. With more
    than one server (a baseline next to the relay), each level alternates between them, in
    reversed order every other round, so that a slow moment of the machine or the broker hits
    both alike. Per level, the round with the median req/s is the one reported.
    Returns {name: (warm-up row, [row per level])}."""
    warm = {}
    for name, proc, port in servers:
        preflight(name, port)
        log(f"{name}: warm-up {WARMUP_SECONDS}s at 16 connections")
        warm[name] = run_wrk(port, 16, WARMUP_SECONDS, proc.pid)
        report_errors(name, "warm-up", warm[name])
    rows = {name: [] for name, _, _ in servers}
    for c in LEVELS:
        runs = {name: [] for name, _, _ in servers}
        for r in range(ROUNDS):
            for name, proc, port in (servers if r % 2 == 0 else servers[::-1]):
                round_note = f" (round {r + 1}/{ROUNDS})" if ROUNDS > 1 else ""
                log(f"{name}: {c} connections for {SECONDS}s{round_note}")
                row = run_wrk(port, c, SECONDS, proc.pid)
                report_errors(name, f"{c} connections", row)
                log(f"{name}: {c} conns: {row['rps']:.0f} req/s, p50 {row['p50_ms']:.2f} ms, "
                    f"p99 {row['p99_ms']:.2f} ms, errors {row['errors']}, "
                    f"RSS {row['rss_max_mib']:.1f} MiB, CPU {row['cpu_s']:.1f} s")
                runs[name].append(row)
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {proc.returncode} during the run")
        for name, level_runs in runs.items():
            median = sorted(level_runs, key=lambda row: row["rps"])[len(level_runs) // 2]
            # Errors count over every round, not just the reported one.
            rows[name].append({**median, "rounds_rps": [round(row["rps"]) for row in level_runs],
                               "errors": sum(row["errors"] for row in level_runs)})
    return {name: (warm[name], rows[name]) for name in rows}


def report_errors(name, what, row):
    if not row["errors"]:
        return
    log(f"{name} {what}: {row['errors']} errors: non-200 {row['non200']}, socket {row['socket_errors']}")
    if row["sample_error"]:
        log(f"  sample answer: {row['sample_error']['status']} {row['sample_error']['body']}")
    if row["relay_counters"]:
        log(f"  relay outcomes in this level: {row['relay_counters']}")
    if row["wrk_stderr"]:
        log(f"  wrk: {row['wrk_stderr'][:500]}")
    server_log = log_path(name)
    tail = server_log.read_text(errors="replace").splitlines()[-5:]
    if tail:
        log(f"  last lines of {server_log.relative_to(REPO)}:\n    " + "\n    ".join(tail))


# ---- the three measurements -------------------------------------------------------------------------


def log_path(name):
    """results/relay.log, results/ok_server.log, results/relay-<label>.log for a baseline,
    results/go-relay.log."""
    if name == GO_RELAY:
        return RESULTS / "go-relay.log"
    if name == "http-ceiling":
        return RESULTS / "ok_server.log"
    if name.startswith("http-waiting"):
        return RESULTS / "ok_server-waiting.log"
    return RESULTS / (re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("relay @ ", "relay-")) + ".log")


# The mixed load's other two topics (set in main); older relays ignore the variables.
EXTRA_TOPICS = {}


def start_relay(topic, port, spool_dir, binary=RELAY_BIN, name="relay", extra_env=None):
    """Starts a relay and waits until /readyz says it reaches the broker."""
    admin_port = free_port()
    env = {
        **os.environ,
        "TIM_SDK_APP_ID": APP_ID,
        "TIM_CALLBACK_TOKEN": TOKEN,
        "RELAY_LISTEN": f"127.0.0.1:{port}",
        "RELAY_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "KAFKA_TOPIC": topic,
        "RELAY_SPOOL_DIR": spool_dir,
        "RUST_LOG": "warn",
        **EXTRA_TOPICS,
        **(extra_env or {}),
    }
    with open(log_path(name), "wb") as relay_log:
        proc = spawn([str(binary)], env=env, stdin=subprocess.DEVNULL, stdout=relay_log, stderr=subprocess.STDOUT)
    ADMIN_PORTS[port] = wait_http(proc, admin_port, "/readyz", name, fallback_port=port)
    return proc


def stop_relay(name, proc):
    code = stop(proc)
    if code != 0:
        log(f"{name} exited with code {code}; see {log_path(name).relative_to(REPO)}")


def bench_relays(relays, open_loop=True):
    """relays: [(name, topic, port, spool_dir, binary, extra env)]; all run at once, measured in
    turn. Returns {name: (warm-up row, rows, final counters, open-loop rows)}."""
    servers = []
    try:
        for name, topic, port, spool_dir, binary, extra_env in relays:
            servers.append((name, start_relay(topic, port, spool_dir, binary, name, extra_env), port))
        results = run_levels(servers)
        opened = open_loops(servers) if open_loop else {name: [] for name, _, _ in servers}
        return {name: (*results[name], relay_counters(port), opened[name]) for name, _, port in servers}
    finally:
        for name, proc, _ in servers:
            stop_relay(name, proc)


def bench_ok_server(port, delay_us=0):
    env = {**os.environ, "RELAY_LISTEN": f"127.0.0.1:{port}", "OK_SERVER_DELAY_US": str(delay_us)}
    name = "http-ceiling" if not delay_us else f"http-waiting-{delay_us}us"
    with open(log_path(name), "wb") as server_log:
        proc = spawn([str(REPO / "target/release/examples/ok_server")], env=env, stdin=subprocess.DEVNULL,
                     stdout=server_log, stderr=subprocess.STDOUT)
    try:
        wait_http(proc, port, "/healthz", "ok_server")
        rows = run_levels([(name, proc, port)])[name][1]
        # The open loop against the bare answer: what the load tool itself adds to the latencies.
        return rows, (open_loops([(name, proc, port)])[name] if not delay_us else [])
    finally:
        stop(proc)


def event_size(topic, fallback):
    """Mean size in bytes of the change-event JSON the relay wrote (the Kafka record value)."""
    out = kafka_tool("console-consumer", "--topic", topic, "--from-beginning",
                     "--max-messages", "1000", "--timeout-ms", "30000")
    values = [v for v in out.split(b"\n") if v.strip()]
    if not values:
        log(f"could not read events back from {topic}; using the body size {fallback} B instead")
        return fallback, 0
    return round(sum(map(len, values)) / len(values)), len(values)


PERF_SUMMARY = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th")


def producer_ceiling(topic, record_size):
    cmd = ["perf-producer", "--topic", topic, "--num-records", str(PERF_RECORDS),
           "--record-size", str(record_size), "--throughput", "-1",
           # Keyed like the relay's records (by GroupId), over the same number of groups.
           "--key-distribution", "random", "--record-key-range", str(GROUPS),
           "--command-property", f"bootstrap.servers={BOOTSTRAP}", "acks=all", "enable.idempotence=true"]
    out = kafka_tool(*cmd, timeout=600).decode()
    summaries = [m for m in map(PERF_SUMMARY.search, out.splitlines()) if m]
    if not summaries:
        raise RuntimeError(f"no summary line in the producer tool's output:\n{out}")
    m = summaries[-1]
    return {
        "records": int(m[1]), "record_size": record_size, "rps": float(m[2]), "mb_per_s": float(m[3]),
        "avg_ms": float(m[4]), "max_ms": float(m[5]), "p50_ms": int(m[6]), "p95_ms": int(m[7]),
        "p99_ms": int(m[8]), "p999_ms": int(m[9]), "summary_line": m[0],
    }


# ---- report ---------------------------------------------------------------------------------------


def machine():
    def first(path, key):
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        return "?"

    def git(*args):
        r = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    mem_kib = int(first("/proc/meminfo", "MemTotal").split()[0])
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    go_version = None
    if (GO_RELAY_BIN or OPENLOOP_BIN) and shutil.which("go"):
        go_version = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True).stdout.strip()
    franz_go = re.search(r"github\.com/twmb/franz-go (v\S+)", (REPO / "bench/go-relay/go.mod").read_text())
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": first("/proc/cpuinfo", "model name"),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "commit": commit,
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        "wrk": wrk_version.split(" Copyright")[0].strip(),
        "kafka": os.environ.get("KAFKA_VERSION", "4.4.0"),
        "workers": int(os.environ.get("RELAY_WORKERS") or len(os.sched_getaffinity(0))),
        "go": go_version,
        "franz_go": franz_go[1] if franz_go else None,
    }


def fmt(x):
    return "n/a" if x is None else f"{x:.2f}"


def cpu_us(row):
    """The server's CPU time per answered request, in microseconds."""
    return f"{row['cpu_s'] / row['requests'] * 1e6:.1f}" if row["requests"] else "n/a"


def both_ceilings(http, producer):
    """The rate at which this machine could do both jobs, one HTTP exchange and one produced
    record per callback, if each cost what it costs alone: each ceiling saturates the same
    CPUs, so their costs per event add up: 1 / (1/HTTP + 1/producer)."""
    if not (producer and producer["rps"] and http["rps"]):
        return None
    return 1 / (1 / http["rps"] + 1 / producer["rps"])


def dispatched(o):
    """The open-loop latency from dispatch, p50 / p99 / p99.9 (absent from older reports)."""
    if "dispatch_p99_ms" not in o:
        return "n/a"
    return f"{o['dispatch_p50_ms']:.2f} / {o['dispatch_p99_ms']:.2f} / {o['dispatch_p999_ms']:.2f}"


GOAL_LEVELS = (1, 64, 256)  # issue 12: at least 2x the Go relay's req/s, p99 no worse
GOAL_OPEN_RATE, GOAL_OPEN_P99_MS, GOAL_RSS_MIB = 5000, 1.0, 64


def goal_lines(r, baselines, go):
    """Issue 12's goals for the relay and every variant or baseline, each against the Go relay of
    the same run: one row per server, `met` or the shortfall in each cell."""
    go_at = {g["connections"]: g for g in go}
    go_open = {o["rate"]: o for o in r.get("go_relay_open_loop") or []}
    levels = [c for c in GOAL_LEVELS if c in go_at]
    head = [f"{c} conn{'s' if c > 1 else ''}: 2x req/s, p99 <= Go" for c in levels]
    lines = ["", "Issue 12's goals against the Go relay of this run (req/s ÷ Go's; p99 ms against Go's; "
             f"open-loop p99 at {GOAL_OPEN_RATE:,} req/s under {GOAL_OPEN_P99_MS:g} ms; RSS at 256 connections "
             f"under {GOAL_RSS_MIB} MiB):", "",
             "| server | " + " | ".join(head) + f" | open loop {GOAL_OPEN_RATE:,}/s p99 | RSS at 256 |",
             "|---|" + "--:|" * (len(levels) + 2)]
    servers = [(b["name"], b["rows"], b.get("open_loop") or []) for b in baselines]
    servers.append(("relay", r["relay"], r.get("relay_open_loop") or []))
    for name, rows, opened in servers:
        at = {row["connections"]: row for row in rows}
        cells = []
        for c in levels:
            row, g = at.get(c), go_at[c]
            if not row or not g["rps"]:
                cells.append("n/a")
                continue
            ratio = row["rps"] / g["rps"]
            ok = ratio >= 2 and row["p99_ms"] <= g["p99_ms"]
            cells.append(f"{'met' if ok else 'no'}: {ratio:.2f}x, {row['p99_ms']:.2f} / {g['p99_ms']:.2f}")
        o = next((x for x in opened if x["rate"] == GOAL_OPEN_RATE), None)
        cells.append(f"{'met' if o['p99_ms'] < GOAL_OPEN_P99_MS else 'no'}: {o['p99_ms']:.2f} ms"
                     + (f", {o['dispatch_p99_ms']:.2f} from dispatch" if "dispatch_p99_ms" in o else "")
                     + (f" (Go {go_open[GOAL_OPEN_RATE]['p99_ms']:.2f})" if GOAL_OPEN_RATE in go_open else "")
                     if o else "n/a")
        top = at.get(256)
        cells.append(f"{'met' if top['rss_max_mib'] < GOAL_RSS_MIB else 'no'}: {top['rss_max_mib']:.1f} MiB"
                     if top else "n/a")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def markdown(r):
    m, p, settings = r["machine"], r["producer_ceiling"], r["settings"]
    lines = [
        "# tim-relay benchmark",
        "",
        f"- machine: {m['nproc']} CPUs, {m['cpu']}, {m['memory_gib']} GiB RAM, Linux {m['kernel']}",
        f"- date: {m['date']}; commit {m['commit']}; load average at start {' '.join(m['loadavg_at_start'])}",
        f"- load: {m['wrk']}, `wrk -c N -t min(N,2) -d {settings['seconds']}s` + bench/callback.lua, keep-alive, "
        f"{GROUPS} GroupIds, bodies {r['body_bytes']['min']}-{r['body_bytes']['max']} B "
        f"(mean {r['body_bytes']['mean']} B), Sign checked; warm-up {settings['warmup_seconds']}s"
        + (f"; each level run {settings['rounds']} times, alternating between the relays, and the round "
           "with the median req/s reported (errors summed over all rounds)" if settings.get("rounds", 1) > 1 else ""),
        f"- relay: target/release/tim-relay, {m['workers']} HTTP workers, topic with "
        f"{settings.get('partitions', 3)} partitions, acks=all, "
        f"RUST_LOG=warn; HTTP ceiling: examples/ok_server ({m['workers']} workers, same listener, "
        "reads the body and answers the fixed OK body)",
    ]
    if r.get("go_relay"):
        lines.append(
            f"- Go relay: bench/go-relay, net/http + franz-go {m.get('franz_go') or '?'} ({m.get('go') or 'go ?'}), "
            "the same checks (app id, Sign) and the same event (mean "
            f"{r.get('go_event_bytes')} B against the relay's {r.get('event_bytes')} B), ProduceSync per "
            "callback, franz-go's defaults (acks=all, idempotent); a topic of its own with "
            f"{settings.get('partitions', 3)} partitions, same broker, same load")
    lines += [
        "- everything (wrk, servers, Kafka broker) shares this machine; errors = non-200 answers + socket "
        "errors; RSS max = highest VmRSS sampled every 100 ms during the level; CPU s = the server's "
        "utime+stime during the level (CPU cores = that over the wall time; CPU µs/req = that per answered "
        "request); wrk and Kafka CPU s likewise",
        "- relay / both = relay req/s over 1 / (1/HTTP ceiling + 1/producer ceiling): the rate this machine "
        "could reach if answering the HTTP request and producing the record each cost what it costs alone "
        "(both ceilings saturate the same CPUs, so their costs per event add up)",
        "",
        "| server | conns | req/s | p50 ms | p99 ms | p99.9 ms | errors | RSS max MiB | VmHWM MiB "
        "| CPU s | CPU cores | CPU µs/req | wrk CPU s | Kafka CPU s | relay / HTTP | relay / producer | relay / both |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    baselines = r.get("baselines") or []
    waiting = r.get("http_waiting") or []
    go = r.get("go_relay") or []
    for i, (relay, http) in enumerate(zip(r["relay"], r["http_ceiling"])):
        servers = [(b["name"], b["rows"][i]) for b in baselines]
        servers.append(("relay", relay))
        if go:
            servers.append((GO_RELAY, go[i]))
        servers.append(("HTTP ceiling", http))
        if waiting:
            servers.append((f"HTTP waiting {r['settings']['waiting_us']} µs", waiting[i]))
        for name, row in servers:
            ratio_http = ratio_prod = ratio_both = ""
            if name.startswith("relay") or name == GO_RELAY:
                ratio_http = f"{row['rps'] / http['rps']:.1%}" if http["rps"] else "n/a"
                ratio_prod = f"{row['rps'] / p['rps']:.1%}" if p and p["rps"] else "n/a"
                both = both_ceilings(http, p)
                ratio_both = f"{row['rps'] / both:.1%}" if both else "n/a"
            lines.append(
                f"| {name} | {row['connections']} | {row['rps']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} "
                f"| {row['p999_ms']:.2f} | {row['errors']} | {row['rss_max_mib']:.1f} | {row['vmhwm_mib']:.1f} "
                f"| {row['cpu_s']:.2f} | {row['cpu_cores']:.2f} | {cpu_us(row)} | {row['wrk_cpu_s']:.2f} "
                f"| {fmt(row['kafka_cpu_s'])} | {ratio_http} | {ratio_prod} | {ratio_both} |")
    for b in baselines:
        lines += ["", f"Before/after: this commit's relay against {b.get('what') or 'the relay at ' + b['label']}, "
                  "same run, same load:", "",
                  "| conns | req/s before | req/s after | after / before | p99 ms before | p99 ms after "
                  "| p99 after / before | CPU µs/req before | after |",
                  "|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for old, new in zip(b["rows"], r["relay"]):
            lines.append(
                f"| {new['connections']} | {old['rps']:,.0f} | {new['rps']:,.0f} | {new['rps'] / old['rps']:.2f}x "
                f"| {old['p99_ms']:.2f} | {new['p99_ms']:.2f} | {new['p99_ms'] / old['p99_ms']:.2f}x "
                f"| {cpu_us(old)} | {cpu_us(new)} |")
    if go:
        lines += ["", "The relay against the Go relay (net/http + franz-go), same run, same load, same broker:", "",
                  "| conns | req/s relay | req/s Go | relay / Go | p50 ms relay | Go | p99 ms relay | Go "
                  "| p99.9 ms relay | Go | CPU µs/req relay | Go | RSS max MiB relay | Go | errors relay | Go |",
                  "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for rust, g in zip(r["relay"], go):
            lines.append(
                f"| {rust['connections']} | {rust['rps']:,.0f} | {g['rps']:,.0f} | {rust['rps'] / g['rps']:.2f}x "
                f"| {rust['p50_ms']:.2f} | {g['p50_ms']:.2f} | {rust['p99_ms']:.2f} | {g['p99_ms']:.2f} "
                f"| {rust['p999_ms']:.2f} | {g['p999_ms']:.2f} | {cpu_us(rust)} | {cpu_us(g)} "
                f"| {rust['rss_max_mib']:.1f} | {g['rss_max_mib']:.1f} | {rust['errors']} | {g['errors']} |")
    if go:
        lines += goal_lines(r, baselines, go)
    open_series = [(b["name"], b.get("open_loop") or []) for b in baselines]
    open_series.append(("relay", r.get("relay_open_loop") or []))
    if go:
        open_series.append((GO_RELAY, r.get("go_relay_open_loop") or []))
    open_series.append(("HTTP ceiling", r.get("http_ceiling_open_loop") or []))
    if any(rows for _, rows in open_series):
        st = r["settings"]
        lines += ["", f"Open loop (bench/openloop, {st.get('open_client', 'nethttp')} client): requests sent at a fixed rate whatever the answers, up to "
                  f"{st['open_connections']} in flight, {st['open_seconds']} s measured per rate after "
                  f"{st['open_warmup_seconds']} s unmeasured; latency from each request's scheduled send time, so "
                  "time queued behind a slow answer counts. Queue p99 = scheduled time to the start of the send; "
                  "sched lag = how late the tool's own scheduler woke (Go's timers sleep at least 1 ms, so this is "
                  "part of every latency); from dispatch = the same latency counted from when the scheduler handed "
                  "the request out (its lateness left out, a wait for a free connection still in); CPU µs/req = "
                  "the server's CPU over the run per request sent:", "",
                  "| server | rate req/s | answered req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors "
                  "| from dispatch p50 / p99 / p99.9 ms "
                  "| CPU µs/req | RSS max MiB | most in flight | queue p99 ms | sched lag p99 ms | load tool CPU s "
                  "| Kafka CPU s |",
                  "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for i, rate in enumerate(st["open_rates"]):
            for name, rows in open_series:
                if i >= len(rows):
                    continue
                o = rows[i]
                lines.append(
                    f"| {name} | {rate:,} | {o['answered_rps']:,.0f} | {o['p50_ms']:.2f} | {o['p90_ms']:.2f} "
                    f"| {o['p99_ms']:.2f} | {o['p999_ms']:.2f} | {o['max_ms']:.2f} | {o['errors']} "
                    f"| {dispatched(o)} | {o['cpu_us_per_req']:.1f} | {o['rss_max_mib']:.1f} | {o['max_in_flight']} "
                    f"| {o['wait_p99_ms']:.2f} | {o['sched_lag_p99_ms']:.2f} | {o['loadgen_cpu_s']:.2f} "
                    f"| {fmt(o['kafka_cpu_s'])} |")
    mixed = r.get("relay_mixed") or []
    if mixed:
        lines += ["", "Mixed commands (BENCH_MIX=1, the current relay alone): per ten requests 4 GroupInfoChanged, "
                  "2 group messages, 1 member joined, 1 member exited (three topics), 1 C2C message (other topic), "
                  "1 before-callback (answered allow), against GroupInfoChanged alone in the same run:", "",
                  "| conns | req/s mixed | req/s GroupInfoChanged | mixed / alone | p99 ms mixed | p99 ms alone "
                  "| errors | CPU µs/req mixed | alone |",
                  "|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for mix, alone in zip(mixed, r["relay"]):
            lines.append(
                f"| {mix['connections']} | {mix['rps']:,.0f} | {alone['rps']:,.0f} | {mix['rps'] / alone['rps']:.2f}x "
                f"| {mix['p99_ms']:.2f} | {alone['p99_ms']:.2f} | {mix['errors']} | {cpu_us(mix)} | {cpu_us(alone)} |")
    lines += ["", "Producer ceiling (Kafka ProducerPerformance, acks=all, idempotent, keyed over "
              f"{GROUPS} keys, same {r['settings'].get('partitions', 3)}-partition topic layout):", ""]
    if p:
        lines += [
            "| records | record size B | records/s | MB/s | avg ms | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms |",
            "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
            f"| {p['records']:,} | {p['record_size']} | {p['rps']:,.0f} | {p['mb_per_s']:.2f} | {p['avg_ms']:.1f} "
            f"| {p['p50_ms']} | {p['p95_ms']} | {p['p99_ms']} | {p['p999_ms']} | {p['max_ms']:.0f} |",
            "",
            f"Record size = mean change-event JSON (record value) over {r['event_size_sample']} events "
            "the relay produced in this run; the relay's records also carry the GroupId key and "
            "CloudEvents headers. The tool sends as fast as it can (`--throughput -1`), so its latencies "
            "are mostly time queued in its own buffer: compare its records/s, not its latency.",
        ]
    else:
        lines.append("(not measured)")
    outcomes = dict(r.get("relay_outcomes_total") or {})
    if outcomes:
        left = outcomes.pop("spool_events", 0)
        lines += ["", "Relay counters over the whole run, warm-up included (/metrics): "
                  + ", ".join(f"{k}={v:.0f}" for k, v in sorted(outcomes.items()))
                  + f"; events left in the spool at the end: {left:.0f}"]
    return "\n".join(lines) + "\n"


def plot(r, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not importable: no plot")
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    series = [(b["name"], b["rows"], "^:") for b in r.get("baselines") or []]
    series.append(("relay", r["relay"], "o-"))
    if r.get("go_relay"):
        series.append((GO_RELAY, r["go_relay"], "v-"))
    series.append(("HTTP ceiling", r["http_ceiling"], "s--"))
    if r.get("http_waiting"):
        series.append((f"HTTP waiting {r['settings']['waiting_us']} µs", r["http_waiting"], "d-."))
    for name, rows, style in series:
        x = [row["connections"] for row in rows]
        ax1.plot(x, [row["rps"] for row in rows], style, label=name)
        ax2.plot(x, [row["p99_ms"] for row in rows], style, label=name)
    if r["producer_ceiling"]:
        ax1.axhline(r["producer_ceiling"]["rps"], color="gray", linestyle=":", label="producer ceiling")
    for ax, title, ylabel in ((ax1, "Throughput", "requests/s"), (ax2, "p99 latency", "ms")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(LEVELS, [str(c) for c in LEVELS])
        ax.set_xlabel("concurrent connections")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax1.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    m = r["machine"]
    fig.suptitle(f"tim-relay, {m['nproc']} CPUs, {m['date']}, commit {m['commit'].split()[0]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main():
    if not 1 <= SECONDS <= 50:
        # Every request of a wrk run carries the RequestTime (and Sign) computed when it started.
        raise RuntimeError("BENCH_SECONDS must be 1-50: the relay refuses a RequestTime more than 60 s old")
    if OPEN_RATES and not 1 <= OPEN_SECONDS <= 50:
        raise RuntimeError("BENCH_OPEN_SECONDS must be 1-50: the relay refuses a RequestTime more than 60 s old")
    if OPEN_RATES and not OPENLOOP_BIN:
        raise RuntimeError("BENCH_OPEN_RATES is set but BENCH_OPENLOOP (the load generator) is not; "
                           "run through scripts/bench.sh")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    RESULTS.mkdir(exist_ok=True)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    relay_topic, perf_topic = f"tim-relay-bench-{run_id}-relay", f"tim-relay-bench-{run_id}-perf"
    port = int(os.environ.get("BENCH_PORT") or free_port())
    spool_dir = tempfile.mkdtemp(prefix="tim-relay-bench-spool-")
    spool_dirs = [spool_dir]
    started = time.monotonic()
    report = {"machine": machine(), "settings": {
        "seconds": SECONDS, "warmup_seconds": WARMUP_SECONDS, "levels": LEVELS, "groups": GROUPS,
        "port": port, "relay_topic": relay_topic, "perf_topic": perf_topic, "perf_records": PERF_RECORDS,
        "rounds": ROUNDS, "waiting_us": WAITING_US, "open_rates": OPEN_RATES, "open_seconds": OPEN_SECONDS,
        "open_warmup_seconds": OPEN_WARMUP_SECONDS, "open_connections": OPEN_CONNECTIONS,
        "open_client": OPEN_CLIENT, "partitions": PARTITIONS,
        "go_relay": GO_RELAY_BIN},
        "baselines": []}
    created = []
    try:
        log(f"topics {relay_topic} and {perf_topic} ({PARTITIONS} partitions); port {port}")
        baseline_topics = [f"tim-relay-bench-{run_id}-base{i}" for i in range(len(BASELINES))]
        variant_topics = [f"tim-relay-bench-{run_id}-variant{i}" for i in range(len(VARIANTS))]
        go_topic = f"tim-relay-bench-{run_id}-go"
        go_topics = [go_topic] if GO_RELAY_BIN else []
        EXTRA_TOPICS.update({"KAFKA_MESSAGES_TOPIC": f"{relay_topic}-messages",
                             "KAFKA_OTHER_TOPIC": f"{relay_topic}-other"})
        partitions = {t: v[2] for t, v in zip(variant_topics, VARIANTS)}
        for topic in (relay_topic, perf_topic, *baseline_topics, *variant_topics, *go_topics,
                      *EXTRA_TOPICS.values()):
            kafka_tool("topics", "--create", "--topic", topic, "--partitions", str(partitions.get(topic, PARTITIONS)),
                       "--replication-factor", "1")
            created.append(topic)

        # Baselines (earlier revisions) and variants (this relay, other settings) in one list.
        compared = []
        for (label, binary), topic in zip(BASELINES, baseline_topics):
            log(f"baseline: the relay at {label} ({binary})")
            compared.append({"label": label, "name": f"relay @ {label}", "what": f"the relay at {label}",
                             "binary": binary, "env": {},
                             "partitions": PARTITIONS, "topic": topic})
        for (label, env, parts), topic in zip(VARIANTS, variant_topics):
            settings = " ".join(f"{k}={v}" for k, v in env.items()) or "its defaults"
            log(f"variant: the relay with {settings} ({parts} partitions)")
            compared.append({"label": f"{label}: {settings}, {parts} partitions", "name": f"relay ({label})",
                             "what": f"the same relay with {settings}, topic of {parts} partitions",
                             "binary": str(RELAY_BIN), "env": env, "partitions": parts, "topic": topic})
        relays = []
        for c in compared:
            base_spool = tempfile.mkdtemp(prefix="tim-relay-bench-spool-")
            spool_dirs.append(base_spool)
            relays.append((c["name"], c["topic"], free_port(), base_spool, c["binary"], c["env"]))
        relays.append(("relay", relay_topic, port, spool_dir, RELAY_BIN, None))
        if GO_RELAY_BIN:
            # Same environment as the relay (it reads the same variable names); no spool.
            log(f"peer: the Go relay ({GO_RELAY_BIN}) on topic {go_topic}")
            relays.append((GO_RELAY, go_topic, free_port(), spool_dir, GO_RELAY_BIN, None))
        results = bench_relays(relays)
        for c in compared:
            _, rows, outcomes, opened = results[c["name"]]
            report["baselines"].append({**c, "rows": rows, "outcomes": outcomes, "open_loop": opened})
        (report["relay_warmup"], report["relay"], report["relay_outcomes_total"],
         report["relay_open_loop"]) = results["relay"]
        report["body_bytes"] = report["relay_warmup"]["body_bytes"]
        report["event_bytes"], report["event_size_sample"] = event_size(
            relay_topic, report["body_bytes"]["mean"] or 600)
        log(f"mean change event: {report['event_bytes']} B over {report['event_size_sample']} records")
        if GO_RELAY_BIN:
            _, report["go_relay"], _, report["go_relay_open_loop"] = results[GO_RELAY]
            report["go_event_bytes"], report["go_event_size_sample"] = event_size(go_topic, 0)
            log(f"Go relay: mean change event {report['go_event_bytes']} B "
                f"over {report['go_event_size_sample']} records")

        log(f"producer ceiling: {PERF_RECORDS} records of {report['event_bytes']} B")
        report["producer_ceiling"] = producer_ceiling(perf_topic, report["event_bytes"])
        log(f"producer ceiling: {report['producer_ceiling']['summary_line']}")

        if MIX:
            log("mixed commands: the relay alone, BENCH_MIX=1 (bench/callback.lua)")
            os.environ["BENCH_MIX"] = "1"
            try:
                mixed_spool = tempfile.mkdtemp(prefix="tim-relay-bench-spool-")
                spool_dirs.append(mixed_spool)
                mixed = bench_relays([("relay, mixed commands", relay_topic, free_port(), mixed_spool, RELAY_BIN, None)],
                                     open_loop=False)
                report["relay_mixed"] = mixed["relay, mixed commands"][1]
                report["relay_mixed_outcomes_total"] = mixed["relay, mixed commands"][2]
            finally:
                os.environ.pop("BENCH_MIX", None)

        report["http_ceiling"], report["http_ceiling_open_loop"] = bench_ok_server(port)
        if WAITING_US:
            report["http_waiting"], _ = bench_ok_server(port, WAITING_US)
    finally:
        stop_all()
        for d in spool_dirs:
            shutil.rmtree(d, ignore_errors=True)
        if created and not KEEP_TOPICS:
            try:
                # --delete takes a regular expression: one JVM for both topics.
                kafka_tool("topics", "--delete", "--topic", f"tim-relay-bench-{run_id}-.*", timeout=120)
            except (RuntimeError, subprocess.TimeoutExpired, Stop) as e:
                log(f"could not delete the bench topics {created}: {e}")

    report["elapsed_s"] = round(time.monotonic() - started, 1)
    (RESULTS / "bench.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    text = markdown(report)
    (RESULTS / "bench.md").write_text(text)
    has_plot = plot(report, RESULTS / "bench.png")
    print(text)
    log(f"wrote results/bench.md, results/bench.json{', results/bench.png' if has_plot else ''} "
        f"in {report['elapsed_s']} s")


if __name__ == "__main__":
    try:
        main()
    except Stop as e:
        log(f"stopped by {e}; cleaned up")
        sys.exit(130)
    except RuntimeError as e:
        log(f"error: {e}")
        sys.exit(1)
