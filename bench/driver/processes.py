"""The processes a benchmark run starts and watches: spawning and stopping them (every child is
stopped at the end), waiting for their HTTP answers, scripts/kafka.sh's tools, the relays and
their logs, and what /proc says about their CPU and memory."""

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from .settings import GO_RELAY, KAFKA_SH, RELAY_BIN, REPO, RESULTS, APP_ID, TOKEN

CLK_TCK = os.sysconf("SC_CLK_TCK")

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


def broker_pid(pid_file):
    """The broker scripts/kafka.sh runs (it shares the 2 cores with the relay and wrk)."""
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class Usage:
    """What one load run costs: the server's CPU and peak RSS, the broker's CPU, and the CPU of the
    children reaped meanwhile (only the load tool), over the wall time from `__init__` to `stop`.
    Call `stop` in a `finally` (it ends the RSS sampler), then `figures`."""

    def __init__(self, server_pid, kafka_pid_file):
        self.server_pid, self.kafka_pid = server_pid, broker_pid(kafka_pid_file)
        self.cpu0 = cpu_seconds(server_pid)
        self.kafka_cpu0 = cpu_seconds(self.kafka_pid)
        self.tool_cpu0 = children_cpu()
        self.sampler = RssSampler(server_pid)
        self.sampler.start()
        self.wall0 = time.monotonic()
        self.rss_max_kib = 0

    def stop(self):
        self.rss_max_kib = self.sampler.finish()

    def figures(self):
        """(wall s, server CPU s, load tool CPU s, Kafka CPU s or None, server peak RSS KiB)."""
        wall = time.monotonic() - self.wall0
        cpu = cpu_seconds(self.server_pid) - self.cpu0
        tool_cpu = children_cpu() - self.tool_cpu0
        kafka_cpu1 = cpu_seconds(self.kafka_pid)
        kafka_cpu = kafka_cpu1 - self.kafka_cpu0 if self.kafka_cpu0 is not None and kafka_cpu1 is not None else None
        return wall, cpu, tool_cpu, kafka_cpu, self.rss_max_kib




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


# The mixed load's other two topics (set by run.py's main); older relays ignore the variables.
EXTRA_TOPICS = {}


def start_relay(bootstrap, topic, port, spool_dir, binary=RELAY_BIN, name="relay", extra_env=None):
    """Starts a relay on broker `bootstrap` and waits until /readyz says it reaches the broker."""
    admin_port = free_port()
    env = {
        **os.environ,
        "TIM_SDK_APP_ID": APP_ID,
        "TIM_CALLBACK_TOKEN": TOKEN,
        "RELAY_LISTEN": f"127.0.0.1:{port}",
        "RELAY_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
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
