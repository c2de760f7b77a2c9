"""The benchmark's settings: every knob read from the environment, once, in `Settings.from_env`,
and the constants the other modules share (paths, the app id and token, the load's shape)."""

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
RESULTS = REPO / "results"
LUA = REPO / "bench" / "callback.lua"
KAFKA_SH = ["bash", str(REPO / "scripts" / "kafka.sh")]
RELAY_BIN = REPO / "target" / "release" / "tim-relay"
OK_SERVER_BIN = REPO / "target" / "release" / "examples" / "ok_server"

APP_ID = "1400000000"
TOKEN = "bench-token"
GROUPS = 10_000
CALLBACK_PATH = "/callback"
GO_RELAY = "Go relay"  # the Go relay's name in logs and tables
OPEN_WARMUP_SECONDS = 2
WRK_TIMEOUT = "10s"  # long enough that slow answers are measured, not dropped as timeouts


def parse_variants(text, partitions):
    """BENCH_VARIANTS: this commit's relay again, with other settings, beside the relay in the same
    run. `label:VAR=value VAR=value;label:...`; the pseudo-variable BENCH_TOPIC_PARTITIONS gives
    the variant's topic that many partitions (else `partitions`, BENCH_PARTITIONS). Returns
    [(label, env, partitions)]."""
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
        parts = int(env.pop("BENCH_TOPIC_PARTITIONS", partitions))
        if not env and parts == partitions:
            raise RuntimeError(f"BENCH_VARIANTS: `{entry}` is the relay itself")
        variants.append((label.strip(), env, parts))
    return variants


@dataclass(frozen=True)
class Settings:
    """What one run measures and how; the knobs are listed in bench/run.py's docstring."""

    seconds: int  # BENCH_SECONDS: per level
    warmup_seconds: int  # BENCH_WARMUP_SECONDS
    levels: list  # BENCH_LEVELS: concurrent connections
    perf_records: int  # BENCH_PERF_RECORDS: records the producer ceiling sends
    keep_topics: bool  # BENCH_KEEP_TOPICS: keep the bench topics at the end
    baselines: list  # BENCH_BASELINES: [(label, binary)], set by scripts/bench.sh from BENCH_COMPARE
    partitions: int  # BENCH_PARTITIONS: of every bench topic; a variant may set its own
    variants: list  # BENCH_VARIANTS: [(label, env, partitions)], see parse_variants
    go_relay_bin: str | None  # BENCH_GO_RELAY: the Go relay (bench/go-relay); None: not run
    openloop_bin: str | None  # BENCH_OPENLOOP: the open-loop load generator; None: no open loop
    open_rates: list  # BENCH_OPEN_RATES: req/s
    open_seconds: int  # BENCH_OPEN_SECONDS: measured per rate and server
    open_connections: int  # BENCH_OPEN_CONNECTIONS: the most requests in flight
    open_client: str  # BENCH_OPEN_CLIENT: raw (bench/openloop speaks HTTP/1.1 itself) or nethttp
    rounds: int  # BENCH_ROUNDS: per level, the median reported
    waiting_us: int  # BENCH_WAITING_CEILING_US: the HTTP ceiling again, waiting before each answer
    mix: bool  # BENCH_MIX_PASS: a second pass of the relay with a mix of commands
    port: int | None  # BENCH_PORT: the relay's port; None: a free one
    bootstrap: str  # KAFKA_PORT: the broker scripts/kafka.sh runs
    kafka_pid_file: Path  # KAFKA_DATA_DIR: where that broker's pid is
    kafka_version: str  # KAFKA_VERSION, for the report
    workers: int  # RELAY_WORKERS: the relay's HTTP workers, for the report

    @classmethod
    def from_env(cls, env=os.environ):
        """Reads and checks every knob; a RuntimeError names the one that is wrong."""
        baselines = [tuple(pair.split("=", 1)) for pair in env.get("BENCH_BASELINES", "").split(",") if pair]
        partitions = int(env.get("BENCH_PARTITIONS") or 3)
        variants = parse_variants(env.get("BENCH_VARIANTS", ""), partitions)
        go_relay_bin = env.get("BENCH_GO_RELAY") or None
        s = cls(
            seconds=int(env.get("BENCH_SECONDS", "10")),
            warmup_seconds=int(env.get("BENCH_WARMUP_SECONDS", "3")),
            levels=[int(c) for c in env.get("BENCH_LEVELS", "1,16,64,256").split(",")],
            perf_records=int(env.get("BENCH_PERF_RECORDS", "300000")),
            keep_topics=env.get("BENCH_KEEP_TOPICS", "0") == "1",
            baselines=baselines,
            partitions=partitions,
            variants=variants,
            go_relay_bin=go_relay_bin,
            openloop_bin=env.get("BENCH_OPENLOOP") or None,
            open_rates=[int(r) for r in env.get("BENCH_OPEN_RATES", "1000,5000").split(",")
                        if r.strip() not in ("", "0")],
            open_seconds=int(env.get("BENCH_OPEN_SECONDS") or 20),
            open_connections=int(env.get("BENCH_OPEN_CONNECTIONS") or 128),
            open_client=env.get("BENCH_OPEN_CLIENT") or "raw",
            # With a baseline, a variant or the Go relay, 3 alternating rounds and the median, since
            # one 10 s run on a shared 2-core machine can differ from the next by a third.
            rounds=int(env.get("BENCH_ROUNDS") or (3 if baselines or variants or go_relay_bin else 1)),
            waiting_us=int(env.get("BENCH_WAITING_CEILING_US") or 0),
            mix=env.get("BENCH_MIX_PASS", "1") == "1",
            port=int(env["BENCH_PORT"]) if env.get("BENCH_PORT") else None,
            bootstrap=f"127.0.0.1:{env.get('KAFKA_PORT', '9092')}",
            kafka_pid_file=Path(env.get("KAFKA_DATA_DIR") or REPO / "target" / "kafka-data") / "kafka.pid",
            kafka_version=env.get("KAFKA_VERSION", "4.4.0"),
            workers=int(env.get("RELAY_WORKERS") or len(os.sched_getaffinity(0))),
        )
        s.check()
        return s

    def check(self):
        # Every request of a run carries the RequestTime (and Sign) computed when it started.
        if not 1 <= self.seconds <= 50:
            raise RuntimeError("BENCH_SECONDS must be 1-50: the relay refuses a RequestTime more than 60 s old")
        if self.open_rates and not 1 <= self.open_seconds <= 50:
            raise RuntimeError("BENCH_OPEN_SECONDS must be 1-50: the relay refuses a RequestTime more than 60 s old")
        if self.open_rates and not self.openloop_bin:
            raise RuntimeError("BENCH_OPEN_RATES is set but BENCH_OPENLOOP (the load generator) is not; "
                               "run through scripts/bench.sh")
