#!/usr/bin/env bash
# Benchmark: the relay's throughput, latency, memory and CPU at 1, 16, 64 and 256 concurrent
# keep-alive connections, next to two ceilings measured in the same run: a trivial actix-web
# server answering the same POST (examples/ok_server.rs) and Kafka's own producer
# performance tool at the relay's record size.
#
#   bash scripts/bench.sh
#
# Writes results/bench.md (also printed), results/bench.json and results/bench.png.
# Knobs: BENCH_SECONDS (10 per level), BENCH_WARMUP_SECONDS (3), BENCH_LEVELS (1,16,64,256),
# BENCH_PORT (a free port), BENCH_PERF_RECORDS (300000), BENCH_KEEP_TOPICS (0),
# BENCH_COMPARE (none): git revisions (comma-separated) whose relay runs in the same run, before
# the current one, so each change is shown as a before/after ratio measured side by side, e.g.
#   BENCH_COMPARE=HEAD~3 bash scripts/bench.sh
# Each revision is built once from `git archive` into target/bench-compare (cached by commit).
# With a baseline, every level runs BENCH_ROUNDS (3) times, alternating between the relays,
# and the median round is reported. BENCH_WAITING_CEILING_US (off): also measure the HTTP
# ceiling waiting that long before each answer, as the relay waits for Kafka, e.g. 2500.
# BENCH_MIX_PASS (1): also run the current relay under a mix of commands (group state and
# message events on their topics, a C2C message on the other topic, a before-callback) and
# print it beside GroupInfoChanged alone; 0 skips it.
#
# Installs what is missing: Debian's wrk, and matplotlib in a venv cached under
# ~/.cache/tim-relay/bench-venv (without it there is no plot). The load generator is wrk
# because its Lua hooks can send a different body per request (GroupId over 10,000 groups,
# so Kafka keys and partitions vary as in production); oha cannot vary the body.
# Starts the local Kafka broker if it is not running, and stops it at the end in that case
# only. All traffic goes to 127.0.0.1. The measurement itself is bench/run.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "bench.sh: $*" >&2; }

bash scripts/deps.sh

if ! command -v wrk >/dev/null; then
  say "installing wrk"
  if [[ $(id -u) -eq 0 ]]; then SUDO=; else SUDO=sudo; fi
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
  fi
fi

VENV=${TIM_RELAY_CACHE:-$HOME/.cache/tim-relay}/bench-venv
PY=$VENV/bin/python
if ! { [[ -x $PY ]] && "$PY" -c 'import matplotlib' 2>/dev/null; }; then
  say "installing matplotlib into $VENV"
  if ! { python3 -m venv "$VENV" && "$PY" -m pip install -q --disable-pip-version-check matplotlib; }; then
    say "could not install matplotlib; the results will have no plot"
    PY=python3
  fi
fi

cargo build --release --bin tim-relay --example ok_server

# Earlier revisions to compare with: exported to bench/run.py as label=binary pairs.
BENCH_BASELINES=
if [[ -n ${BENCH_COMPARE:-} ]]; then
  compare_dir=$PWD/target/bench-compare
  mkdir -p "$compare_dir/bin"
  for rev in ${BENCH_COMPARE//,/ }; do
    sha=$(git rev-parse --short=12 "$rev^{commit}") || { say "BENCH_COMPARE: no such revision: $rev"; exit 2; }
    bin=$compare_dir/bin/tim-relay-$sha
    if [[ ! -x $bin ]]; then
      say "building the relay at $rev ($sha) for comparison"
      src=$compare_dir/src-$sha
      rm -rf "$src" && mkdir -p "$src"
      git archive "$sha" | tar -x -C "$src"
      # One target directory for every compared revision: dependencies build once.
      cargo build --release --bin tim-relay --manifest-path "$src/Cargo.toml" \
        --target-dir "$compare_dir/target"
      cp "$compare_dir/target/release/tim-relay" "$bin"
      rm -rf "$src"
    fi
    label=$rev
    [[ $sha == "$rev"* ]] || label="$rev ($sha)"
    BENCH_BASELINES+="${BENCH_BASELINES:+,}$label=$bin"
  done
fi
export BENCH_BASELINES

driver=
started_kafka=0
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  if [[ -n $driver ]] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    wait "$driver" 2>/dev/null || true
  fi
  if ((started_kafka)); then bash scripts/kafka.sh stop || true; fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The broker: started here only if it is not already running, and then stopped at the end.
# (`status` exits 3 for stopped; `start` is idempotent and waits until the broker answers.)
kafka_status=0
bash scripts/kafka.sh status >/dev/null 2>&1 || kafka_status=$?
if ((kafka_status == 3)); then started_kafka=1; fi
bash scripts/kafka.sh start

# In the background so that a signal reaches the trap at once (bash runs traps only between
# commands); the driver stops the relay, the HTTP ceiling and wrk on SIGTERM.
"$PY" bench/run.py &
driver=$!
wait "$driver"
