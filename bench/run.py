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

The driver's parts live in bench/driver/: settings.py (every knob, read once), processes.py
(spawning, stopping and watching processes, the relays), load.py (wrk, the open loop, the
producer ceiling) and report.py (results/bench.md and the plot). This file is the run's order.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from driver.load import bench_ok_server, bench_relays, event_size, producer_ceiling
from driver.processes import EXTRA_TOPICS, Stop, free_port, kafka_tool, log, on_signal, stop_all
from driver.report import machine, markdown, plot
from driver.settings import GO_RELAY, GROUPS, OPEN_WARMUP_SECONDS, RELAY_BIN, RESULTS, Settings


def main():
    s = Settings.from_env()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    RESULTS.mkdir(exist_ok=True)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    relay_topic, perf_topic = f"tim-relay-bench-{run_id}-relay", f"tim-relay-bench-{run_id}-perf"
    port = s.port or free_port()
    spool_dir = tempfile.mkdtemp(prefix="tim-relay-bench-spool-")
    spool_dirs = [spool_dir]
    started = time.monotonic()
    report = {"machine": machine(s), "settings": {
        "seconds": s.seconds, "warmup_seconds": s.warmup_seconds, "levels": s.levels, "groups": GROUPS,
        "port": port, "relay_topic": relay_topic, "perf_topic": perf_topic, "perf_records": s.perf_records,
        "rounds": s.rounds, "waiting_us": s.waiting_us, "open_rates": s.open_rates, "open_seconds": s.open_seconds,
        "open_warmup_seconds": OPEN_WARMUP_SECONDS, "open_connections": s.open_connections,
        "open_client": s.open_client, "partitions": s.partitions,
        "go_relay": s.go_relay_bin},
        "baselines": []}
    created = []
    try:
        log(f"topics {relay_topic} and {perf_topic} ({s.partitions} partitions); port {port}")
        baseline_topics = [f"tim-relay-bench-{run_id}-base{i}" for i in range(len(s.baselines))]
        variant_topics = [f"tim-relay-bench-{run_id}-variant{i}" for i in range(len(s.variants))]
        go_topic = f"tim-relay-bench-{run_id}-go"
        go_topics = [go_topic] if s.go_relay_bin else []
        EXTRA_TOPICS.update({"KAFKA_MESSAGES_TOPIC": f"{relay_topic}-messages",
                             "KAFKA_OTHER_TOPIC": f"{relay_topic}-other"})
        partitions = {t: v[2] for t, v in zip(variant_topics, s.variants)}
        for topic in (relay_topic, perf_topic, *baseline_topics, *variant_topics, *go_topics,
                      *EXTRA_TOPICS.values()):
            kafka_tool("topics", "--create", "--topic", topic, "--partitions", str(partitions.get(topic, s.partitions)),
                       "--replication-factor", "1")
            created.append(topic)

        # Baselines (earlier revisions) and variants (this relay, other settings) in one list.
        compared = []
        for (label, binary), topic in zip(s.baselines, baseline_topics):
            log(f"baseline: the relay at {label} ({binary})")
            compared.append({"label": label, "name": f"relay @ {label}", "what": f"the relay at {label}",
                             "binary": binary, "env": {},
                             "partitions": s.partitions, "topic": topic})
        for (label, env, parts), topic in zip(s.variants, variant_topics):
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
        if s.go_relay_bin:
            # Same environment as the relay (it reads the same variable names); no spool.
            log(f"peer: the Go relay ({s.go_relay_bin}) on topic {go_topic}")
            relays.append((GO_RELAY, go_topic, free_port(), spool_dir, s.go_relay_bin, None))
        results = bench_relays(s, relays)
        for c in compared:
            _, rows, outcomes, opened = results[c["name"]]
            report["baselines"].append({**c, "rows": rows, "outcomes": outcomes, "open_loop": opened})
        (report["relay_warmup"], report["relay"], report["relay_outcomes_total"],
         report["relay_open_loop"]) = results["relay"]
        report["body_bytes"] = report["relay_warmup"]["body_bytes"]
        report["event_bytes"], report["event_size_sample"] = event_size(
            relay_topic, report["body_bytes"]["mean"] or 600)
        log(f"mean change event: {report['event_bytes']} B over {report['event_size_sample']} records")
        if s.go_relay_bin:
            _, report["go_relay"], _, report["go_relay_open_loop"] = results[GO_RELAY]
            report["go_event_bytes"], report["go_event_size_sample"] = event_size(go_topic, 0)
            log(f"Go relay: mean change event {report['go_event_bytes']} B "
                f"over {report['go_event_size_sample']} records")

        log(f"producer ceiling: {s.perf_records} records of {report['event_bytes']} B")
        report["producer_ceiling"] = producer_ceiling(s, perf_topic, report["event_bytes"])
        log(f"producer ceiling: {report['producer_ceiling']['summary_line']}")

        if s.mix:
            log("mixed commands: the relay alone, BENCH_MIX=1 (bench/callback.lua)")
            os.environ["BENCH_MIX"] = "1"
            try:
                mixed_spool = tempfile.mkdtemp(prefix="tim-relay-bench-spool-")
                spool_dirs.append(mixed_spool)
                mixed = bench_relays(s, [("relay, mixed commands", relay_topic, free_port(), mixed_spool, RELAY_BIN, None)],
                                     open_loop=False)
                report["relay_mixed"] = mixed["relay, mixed commands"][1]
                report["relay_mixed_outcomes_total"] = mixed["relay, mixed commands"][2]
            finally:
                os.environ.pop("BENCH_MIX", None)

        report["http_ceiling"], report["http_ceiling_open_loop"] = bench_ok_server(s, port)
        if s.waiting_us:
            report["http_waiting"], _ = bench_ok_server(s, port, s.waiting_us)
    finally:
        stop_all()
        for d in spool_dirs:
            shutil.rmtree(d, ignore_errors=True)
        if created and not s.keep_topics:
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
