"""The report: the machine it ran on, results/bench.md's tables (the relay against its ceilings,
earlier revisions, variants and the Go relay; the open loop; the mixed commands; issue 12's goals)
and results/bench.png. Everything here reads the report dict that bench/run.py fills in."""

import datetime
import os
import platform
import re
import shutil
import subprocess

from .processes import log
from .settings import GO_RELAY, GROUPS, REPO


def machine(s):
    """This machine, this commit and the tools' versions, for the report's head."""
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
    if (s.go_relay_bin or s.openloop_bin) and shutil.which("go"):
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
        "kafka": s.kafka_version,
        "workers": s.workers,
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
        ax.set_xticks(r["settings"]["levels"], [str(c) for c in r["settings"]["levels"]])
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
