"""The load and what it measures: wrk's closed loop level by level, bench/openloop's open loop at
fixed rates, one signed callback by hand before either, the relay's counters, the size of the events
it wrote, and Kafka's own producer at that size. Each function that runs load takes the run's
Settings as `s`."""

import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .processes import (ADMIN_PORTS, HTTP, Usage, http_get, kafka_tool, log, log_path, proc_status_kib,
                        spawn, start_relay, stop, stop_relay, wait_http)
from .settings import (APP_ID, CALLBACK_PATH, GROUPS, LUA, OK_SERVER_BIN, OPEN_WARMUP_SECONDS, REPO, TOKEN,
                       WRK_TIMEOUT)


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


def counter_delta(before, after):
    delta = {}
    for key, value in after.items():
        d = value - before.get(key, 0) if key != "spool_events" else value
        if d:
            delta[key] = int(d)
    return delta




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


def in_ms(result, *names):
    """The load tool's NAME_us figures as NAME_ms, in the order given."""
    return {f"{name}_ms": result[f"{name}_us"] / 1000 for name in names}


def run_wrk(s, port, connections, seconds, server_pid):
    """One wrk run; returns the figures of that level, measured on `server_pid`."""
    threads = min(connections, 2)
    cmd = ["wrk", "-c", str(connections), "-t", str(threads), "-d", f"{seconds}s",
           "--timeout", WRK_TIMEOUT, "-s", str(LUA), f"http://127.0.0.1:{port}{CALLBACK_PATH}"]
    env = {**os.environ, **sign_env()}
    before = relay_counters(port)
    usage = Usage(server_pid, s.kafka_pid_file)  # only wrk is reaped meanwhile: its own CPU
    proc = spawn(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=seconds + 60)
    finally:
        stop(proc)
        usage.stop()
    wall, cpu, wrk_cpu, kafka_cpu, rss_max = usage.figures()
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
        **in_ms(w, "p50", "p90", "p99", "p999", "max", "mean"),
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


def run_open_loop(s, port, rate, server_pid):
    """One open-loop run at `rate` req/s: bench/openloop, BENCH_OPEN_SECONDS measured after
    OPEN_WARMUP_SECONDS at the same rate; the server's CPU and RSS over the whole run."""
    with tempfile.TemporaryDirectory(prefix="tim-relay-bench-open-") as tmp:
        requests_file = Path(tmp) / "requests.txt"
        dump_requests(port, requests_file)
        cmd = [s.openloop_bin, "-url", f"http://127.0.0.1:{port}", "-requests", str(requests_file),
               "-rate", str(rate), "-duration", f"{s.open_seconds}s", "-warmup", f"{OPEN_WARMUP_SECONDS}s",
               "-connections", str(s.open_connections), "-timeout", WRK_TIMEOUT, "-client", s.open_client]
        usage = Usage(server_pid, s.kafka_pid_file)  # only the load tool is reaped meanwhile
        proc = spawn(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=s.open_seconds + OPEN_WARMUP_SECONDS + 90)
        finally:
            stop(proc)
            usage.stop()
    wall, cpu, tool_cpu, kafka_cpu, rss_max = usage.figures()
    line = next((l for l in out.splitlines() if l.startswith("OPENLOOP_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"bench/openloop failed (code {proc.returncode}):\n{out}\n{err}")
    o = json.loads(line.removeprefix("OPENLOOP_RESULT "))
    # The server's CPU over the whole run (warm-up included), per request sent in that time.
    sent = round(rate * (s.open_seconds + OPEN_WARMUP_SECONDS))
    return {
        "rate": rate,
        "seconds": s.open_seconds,
        "connections": s.open_connections,
        "requests": o["requests"],
        "sent_rps": o["sent_rps"],
        "answered_rps": o["answered_rps"],
        **in_ms(o, "p50", "p90", "p99", "p999", "max", "mean"),
        "errors": o["errors"],
        "sample_error": o["sample_error"] or None,
        **in_ms(o, "wait_p99"),
        # From when the tool's scheduler handed the request out: without its own timer lateness.
        **in_ms(o, "dispatch_p50", "dispatch_p99", "dispatch_p999", "sched_lag_p99", "sched_lag_max"),
        "max_in_flight": o["max_in_flight"],
        "rss_max_mib": rss_max / 1024,
        "cpu_s": cpu,
        "cpu_cores": cpu / wall,
        "cpu_us_per_req": cpu / sent * 1e6,
        "loadgen_cpu_s": tool_cpu,
        "kafka_cpu_s": kafka_cpu,
        "openloop_stderr": err.strip(),
    }


def open_loops(s, servers):
    """Every rate in BENCH_OPEN_RATES for every server [(name, proc, port)], the order alternating
    from one rate to the next. Returns {name: [row per rate]}."""
    rows = {name: [] for name, _, _ in servers}
    if not (s.open_rates and s.openloop_bin):
        return rows
    for i, rate in enumerate(s.open_rates):
        for name, proc, port in (servers if i % 2 == 0 else servers[::-1]):
            log(f"{name}: open loop at {rate} req/s for {s.open_seconds}s (+{OPEN_WARMUP_SECONDS}s unmeasured)")
            row = run_open_loop(s, port, rate, proc.pid)
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


def run_levels(s, servers):
    """Every level for every server in `servers` [(name, proc, port)], BENCH_ROUNDS times. With more
    than one server (a baseline next to the relay), each level alternates between them, in
    reversed order every other round, so that a slow moment of the machine or the broker hits
    both alike. Per level, the round with the median req/s is the one reported.
    Returns {name: (warm-up row, [row per level])}."""
    warm = {}
    for name, proc, port in servers:
        preflight(name, port)
        log(f"{name}: warm-up {s.warmup_seconds}s at 16 connections")
        warm[name] = run_wrk(s, port, 16, s.warmup_seconds, proc.pid)
        report_errors(name, "warm-up", warm[name])
    rows = {name: [] for name, _, _ in servers}
    for c in s.levels:
        runs = {name: [] for name, _, _ in servers}
        for r in range(s.rounds):
            for name, proc, port in (servers if r % 2 == 0 else servers[::-1]):
                round_note = f" (round {r + 1}/{s.rounds})" if s.rounds > 1 else ""
                log(f"{name}: {c} connections for {s.seconds}s{round_note}")
                row = run_wrk(s, port, c, s.seconds, proc.pid)
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


def bench_relays(s, relays, open_loop=True):
    """relays: [(name, topic, port, spool_dir, binary, extra env)]; all run at once, measured in
    turn. Returns {name: (warm-up row, rows, final counters, open-loop rows)}."""
    servers = []
    try:
        for name, topic, port, spool_dir, binary, extra_env in relays:
            servers.append((name, start_relay(s.bootstrap, topic, port, spool_dir, binary, name, extra_env), port))
        results = run_levels(s, servers)
        opened = open_loops(s, servers) if open_loop else {name: [] for name, _, _ in servers}
        return {name: (*results[name], relay_counters(port), opened[name]) for name, _, port in servers}
    finally:
        for name, proc, _ in servers:
            stop_relay(name, proc)


def bench_ok_server(s, port, delay_us=0):
    env = {**os.environ, "RELAY_LISTEN": f"127.0.0.1:{port}", "OK_SERVER_DELAY_US": str(delay_us)}
    name = "http-ceiling" if not delay_us else f"http-waiting-{delay_us}us"
    with open(log_path(name), "wb") as server_log:
        proc = spawn([str(OK_SERVER_BIN)], env=env, stdin=subprocess.DEVNULL,
                     stdout=server_log, stderr=subprocess.STDOUT)
    try:
        wait_http(proc, port, "/healthz", "ok_server")
        rows = run_levels(s, [(name, proc, port)])[name][1]
        # The open loop against the bare answer: what the load tool itself adds to the latencies.
        return rows, (open_loops(s, [(name, proc, port)])[name] if not delay_us else [])
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


def producer_ceiling(s, topic, record_size):
    cmd = ["perf-producer", "--topic", topic, "--num-records", str(s.perf_records),
           "--record-size", str(record_size), "--throughput", "-1",
           # Keyed like the relay's records (by GroupId), over the same number of groups.
           "--key-distribution", "random", "--record-key-range", str(GROUPS),
           "--command-property", f"bootstrap.servers={s.bootstrap}", "acks=all", "enable.idempotence=true"]
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
