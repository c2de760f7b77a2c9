#!/usr/bin/env bash
# Benchmark: the relay's throughput, latency, memory and CPU at 1, 16, 64 and 256 concurrent
# keep-alive connections, next to two ceilings measured in the same run: a trivial actix-web
# server answering the same POST (examples/ok_server.rs) and Kafka's own producer
# performance tool at the relay's record size. Beside it, in the same run, a Go relay of the
# same contract written for the benchmark (bench/go-relay: net/http + franz-go, acks=all,
# idempotent, franz-go's defaults otherwise) on the same load and broker, rounds alternating.
# Then an open loop: each relay (and the HTTP ceiling) at fixed rates, 1,000 and 5,000 req/s,
# reporting p50, p99 and p99.9.
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
# BENCH_GO (1): run the Go relay beside the relay (then BENCH_ROUNDS defaults to 3); 0 skips it.
# BENCH_OPEN_RATES (1000,5000): the open loop's rates in req/s; empty or 0 skips the open loop.
# BENCH_OPEN_SECONDS (20): measured per rate and server, after 2 s sent but not measured.
# BENCH_OPEN_CONNECTIONS (128): the most requests the open loop keeps in flight.
# BENCH_OPEN_CLIENT (raw): bench/openloop speaks HTTP/1.1 itself; nethttp: Go's net/http client.
# BENCH_PARTITIONS (3): partitions of every bench topic.
# BENCH_VARIANTS (none): the current relay again with other settings, beside it in the same run,
# `label:VAR=value VAR=value;label:...`; BENCH_TOPIC_PARTITIONS=N gives a variant's topic N
# partitions, e.g.
#   BENCH_VARIANTS='linger0:KAFKA_PRODUCER_LINGER_MS=0;linger0-p6:KAFKA_PRODUCER_LINGER_MS=0 BENCH_TOPIC_PARTITIONS=6'
#
# Installs what is missing: Debian's wrk, and matplotlib in a venv cached under
# ~/.cache/tim-relay/bench-venv (without it there is no plot). The load generator is wrk
# because its Lua hooks can send a different body per request (GroupId over 10,000 groups,
# so Kafka keys and partitions vary as in production); oha cannot vary the body.
# wrk runs a closed loop (each connection waits for its answer), which hides queueing: a slow
# answer slows the load too. The open loop is bench/openloop, a small Go load generator
# (standard library only) that sends at the fixed rate whatever the answers and measures each
# request from the time it was due, so a stall counts against every request it delayed (no
# coordinated omission); it sends the bodies bench/callback.lua builds. wrk2 does the same but
# is not in Debian; vegeta times a request from when it is sent, not when it was due, and only
# checks the status code, not the OK body.
# The Go relay and bench/openloop need Go (1.26+, or an older go that may fetch that toolchain:
# franz-go's go.mod asks for it); their modules come through the Go proxy. Both binaries are
# cached in target/bench and rebuilt when their sources, go.mod, go.sum or the Go version change.
# Starts the local Kafka broker if it is not running, and stops it at the end in that case
# only. All traffic goes to 127.0.0.1. The measurement itself is bench/run.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=lib/common.sh
source scripts/lib/common.sh

bash scripts/deps.sh

if ! command -v wrk >/dev/null; then
  say "installing wrk"
  apt_install wrk
fi

BENCH_GO=${BENCH_GO:-1}
BENCH_OPEN_RATES=${BENCH_OPEN_RATES-1000,5000}
[[ $BENCH_OPEN_RATES == 0 ]] && BENCH_OPEN_RATES=
export BENCH_OPEN_RATES
if [[ $BENCH_GO == 1 || -n $BENCH_OPEN_RATES ]] && ! command -v go >/dev/null; then
  say "go not found: the Go relay (bench/go-relay) and the open-loop load generator (bench/openloop)"
  say "are built with Go 1.26+ (https://go.dev/doc/install); BENCH_GO=0 BENCH_OPEN_RATES= skips both"
  exit 2
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

# The Go peer and the open-loop load generator, each built once into target/bench and again only
# when its sources, go.mod, go.sum or the Go version change.
go_build() {  # $1 = bench/<name> (a Go module), $2 = the binary to write
  local src=$1 out=$2 stamp files
  files=("$src"/go.mod "$src"/*.go)
  [[ -f $src/go.sum ]] && files+=("$src/go.sum")
  stamp=$({ go env GOVERSION; cat "${files[@]}"; } | sha256sum | cut -d' ' -f1)
  if [[ -x $out && -f $out.stamp && $(<"$out.stamp") == "$stamp" ]]; then return 0; fi
  say "building $src into $out"
  mkdir -p "$(dirname "$out")"
  rm -f "$out.stamp"
  (cd "$src" && go build -buildvcs=false -trimpath -o "$out" .)
  echo "$stamp" >"$out.stamp"
}
BENCH_GO_RELAY='' BENCH_OPENLOOP=''
if [[ $BENCH_GO == 1 ]]; then
  BENCH_GO_RELAY=$PWD/target/bench/go-relay
  go_build bench/go-relay "$BENCH_GO_RELAY"
fi
if [[ -n $BENCH_OPEN_RATES ]]; then
  BENCH_OPENLOOP=$PWD/target/bench/openloop
  go_build bench/openloop "$BENCH_OPENLOOP"
fi
export BENCH_GO_RELAY BENCH_OPENLOOP

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
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  if [[ -n $driver ]] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    wait "$driver" 2>/dev/null || true
  fi
  if ((STARTED_KAFKA)); then bash scripts/kafka.sh stop || true; fi
  exit "$code"
}
on_exit cleanup

# The broker: started here only if it is not already running, and then stopped at the end.
start_kafka

# In the background so that a signal reaches the trap at once (bash runs traps only between
# commands); the driver stops the relay, the HTTP ceiling and wrk on SIGTERM.
"$PY" bench/run.py &
driver=$!
wait "$driver"
