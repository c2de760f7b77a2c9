#!/usr/bin/env bash
# Profile: where this machine's CPU goes while the relay is under load, one concurrency level.
#
#   bash scripts/profile.sh [CONNECTIONS (64)] [SECONDS (10)]
#
# Builds the relay with frame pointers and line tables (otherwise the release profile) into
# target/prof, starts the local broker if it is not running (and stops it again at the end),
# starts the relay on a free port with a fresh 3-partition topic and Sign checking on, drives it
# with wrk and bench/callback.lua exactly as scripts/bench.sh does, and records every CPU with
# `perf record -a -g` for the middle of the run. Writes results/profile/:
#   perf.data        for `perf report -i results/profile/perf.data`
#   summary.txt      (also printed) wrk's figures; the share of all samples per process and per
#                    relay thread; the relay's hottest functions, inclusive and self
#   flamegraph.svg   when inferno is available (installed once with cargo into the cache)
#
# Needs perf (Debian's linux-perf, installed if missing) and root or kernel.perf_event_paranoid
# <= 1. Everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CONNECTIONS=${1:-64}
SECONDS_=${2:-10}
OUT=results/profile
CACHE=${TIM_RELAY_CACHE:-$HOME/.cache/tim-relay}
APP_ID=1400000000
TOKEN=profile-token
# shellcheck source=lib/common.sh
source scripts/lib/common.sh

bash scripts/deps.sh
for tool in perf wrk; do
  if ! command -v "$tool" >/dev/null; then
    pkg=$tool
    [[ $tool == perf ]] && pkg=linux-perf
    say "installing $pkg"
    apt_install --update "$pkg"
  fi
done
INFERNO=$CACHE/inferno/bin
if [[ ! -x $INFERNO/inferno-flamegraph ]]; then
  say "installing inferno (flame graphs) into $CACHE/inferno"
  cargo install --quiet --locked inferno --root "$CACHE/inferno" || say "no inferno: there will be no flamegraph.svg"
fi

# Frame pointers make `perf record -g` stacks through Rust code cheap and complete; librdkafka
# and libc frames without them still show, attributed to their nearest known caller.
CARGO_PROFILE_RELEASE_DEBUG=line-tables-only RUSTFLAGS="-C force-frame-pointers=yes" \
  cargo build --release --bin tim-relay --target-dir target/prof

relay_pid=
topic=tim-relay-profile-$(date +%Y%m%d-%H%M%S)
spool=$(mktemp -d -t tim-relay-profile-spool-XXXXXX)
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  if [[ -n $relay_pid ]]; then kill -TERM "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null || true; fi
  rm -rf "$spool"
  bash scripts/kafka.sh topics --delete --topic "$topic" >/dev/null 2>&1 || true
  if ((STARTED_KAFKA)); then bash scripts/kafka.sh stop || true; fi
  exit "$code"
}
on_exit cleanup

start_kafka
bash scripts/kafka.sh topics --create --topic "$topic" --partitions 3 --replication-factor 1 >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
admin_port=$(free_port)
mkdir -p "$OUT"
TIM_SDK_APP_ID=$APP_ID TIM_CALLBACK_TOKEN=$TOKEN RELAY_LISTEN=127.0.0.1:$port RELAY_ADMIN_LISTEN=127.0.0.1:$admin_port \
  KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:${KAFKA_PORT:-9092} KAFKA_TOPIC=$topic RELAY_SPOOL_DIR=$spool \
  RUST_LOG=warn target/prof/release/tim-relay >"$OUT/relay.log" 2>&1 &
relay_pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null && break
  kill -0 "$relay_pid" 2>/dev/null || { say "the relay exited; see $OUT/relay.log"; exit 1; }
  sleep 0.2
done

drive() { # connections seconds
  local t
  t=$(date +%s)
  BENCH_REQUEST_TIME=$t BENCH_SIGN=$(printf '%s%s' "$TOKEN" "$t" | sha256sum | cut -d' ' -f1) \
    BENCH_APP_ID=$APP_ID BENCH_PATH=/callback BENCH_GROUPS=10000 \
    wrk -c "$1" -t "$(($1 < 2 ? 1 : 2))" -d "${2}s" --timeout 10s -s bench/callback.lua \
    "http://127.0.0.1:$port/callback" | grep -v '^BENCH_RESULT'
}

say "warm-up: 16 connections for 3 s"
drive 16 3 >/dev/null
say "$CONNECTIONS connections for $SECONDS_ s; perf records the middle $((SECONDS_ - 2)) s"
drive "$CONNECTIONS" "$SECONDS_" >"$OUT/wrk.txt" &
wrk_pid=$!
sleep 1
perf record -F 999 -a -g -o "$OUT/perf.data" -- sleep $((SECONDS_ - 2)) 2>"$OUT/perf-record.log" >/dev/null
wait "$wrk_pid"

# `head` and `grep` end these pipelines early or empty; that is not a failure here.
set +o pipefail
{
  echo "# tim-relay profile: $CONNECTIONS connections, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short=12 HEAD)"
  echo
  cat "$OUT/wrk.txt"
  echo
  echo "## Share of all samples (every CPU) by process / thread name"
  perf report -i "$OUT/perf.data" --no-children --sort comm -q -g none 2>/dev/null | head -12
  echo
  echo "## The relay's hottest functions, inclusive (children counted), all relay threads"
  perf report -i "$OUT/perf.data" --children --pid "$relay_pid" --sort sym -q -g none 2>/dev/null |
    grep -E 'tim_relay::|actix_http::h1::dispatcher::InnerDispatcher|rd_kafka_(producev|broker_serve|poll)|sys_(sendto|recvfrom|epoll_wait|write|poll|futex)' |
    head -30
  echo
  echo "## The relay's hottest functions, self time"
  perf report -i "$OUT/perf.data" --no-children --pid "$relay_pid" --sort dso,sym -q -g none 2>/dev/null | head -30
} >"$OUT/summary.txt"
cat "$OUT/summary.txt"

if [[ -x $INFERNO/inferno-flamegraph ]]; then
  perf script -i "$OUT/perf.data" 2>/dev/null | "$INFERNO/inferno-collapse-perf" | "$INFERNO/inferno-flamegraph" \
    --title "tim-relay, $CONNECTIONS connections, all CPUs" >"$OUT/flamegraph.svg"
  say "wrote $OUT/flamegraph.svg"
fi
say "wrote $OUT/summary.txt and $OUT/perf.data"
