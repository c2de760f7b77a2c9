#!/usr/bin/env bash
# Memory of the relay through a Kafka outage: resident memory (VmRSS, from /proc) sampled every
# 0.5 s while the relay idles, takes load, fills its spool with Kafka down, refuses callbacks
# with the spool full, drains the spool once Kafka is back, and idles again.
#
#   bash scripts/memory.sh
#
# Prints, per phase (idle, load, filling, full, draining, drained), the peak RSS in MiB, then
# PASS or FAIL against MEMORY_LIMIT_MIB (128), the drain rate (events/s and MB/s), and whether
# every callback answered OK reached the topic: the relay's
# tim_relay_callbacks_total{outcome="ok"} against the records and distinct GroupIds (one per
# request, bench/memory.lua) read back from the topic. Samples go to target/memory/rss.csv,
# relay and broker logs to target/memory/. A measurement, not a test: it is not part of the
# suite.
#
# Runs its own broker (scripts/kafka.sh on MEMORY_KAFKA_PORT 29092 / 29093, data in
# target/kafka-memory, reset at the start, stopped at the end) and a release build of the relay
# with default settings except the addresses and a fresh spool dir. Installs wrk and kcat
# (Debian packages) if missing. Stops everything it started, also on Ctrl-C.
#
# Knobs: MEMORY_SPOOL_MAX_BYTES (unset: the relay's default, 1 GiB), MEMORY_LIMIT_MIB (128),
# MEMORY_CONNECTIONS (64), MEMORY_LOAD_SECONDS (15), MEMORY_FULL_SECONDS (10),
# MEMORY_IDLE_SECONDS (5), MEMORY_FILL_TIMEOUT (1800 s), MEMORY_DRAIN_TIMEOUT (1800 s),
# MEMORY_PORT (18380; the admin listener is MEMORY_PORT+1), METRICS_URL (default: the admin
# listener's /metrics), MEMORY_RELAY_BIN (skip the build and measure this binary, e.g. an
# earlier revision's), MEMORY_KAFKA_PORT (29092; the controller takes the next port).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

say() { echo "memory.sh: $*" >&2; }

LIMIT_MIB=${MEMORY_LIMIT_MIB:-128}
CONNECTIONS=${MEMORY_CONNECTIONS:-64}
LOAD_SECONDS=${MEMORY_LOAD_SECONDS:-15}
FULL_SECONDS=${MEMORY_FULL_SECONDS:-10}
IDLE_SECONDS=${MEMORY_IDLE_SECONDS:-5}
FILL_TIMEOUT=${MEMORY_FILL_TIMEOUT:-1800}
DRAIN_TIMEOUT=${MEMORY_DRAIN_TIMEOUT:-1800}
PORT=${MEMORY_PORT:-18380}
ADMIN_PORT=$((PORT + 1))
METRICS_URL=${METRICS_URL:-http://127.0.0.1:$ADMIN_PORT/metrics}
TOPIC=tim.memory
OUT=$REPO/target/memory
export KAFKA_PORT=${MEMORY_KAFKA_PORT:-29092}
export KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
export KAFKA_DATA_DIR=$REPO/target/kafka-memory
kafka() { bash "$REPO/scripts/kafka.sh" "$@"; }

for pkg in wrk kcat; do
  command -v "$pkg" >/dev/null && continue
  say "installing $pkg"
  if [[ $(id -u) -eq 0 ]]; then SUDO=; else SUDO=sudo; fi
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg" >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg" >/dev/null
  fi
done

RELAY_BIN=${MEMORY_RELAY_BIN:-}
if [[ -z $RELAY_BIN ]]; then
  bash scripts/deps.sh
  cargo build --release --locked --bin tim-relay
  RELAY_BIN=$REPO/target/release/tim-relay
fi

relay= sampler= load= broker_started=0
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  for pid in $load $sampler $relay; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $load $sampler $relay; do
    wait "$pid" 2>/dev/null || true
  done
  if ((broker_started)); then kafka stop 2>/dev/null || true; fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$OUT" && mkdir -p "$OUT"
START=$SECONDS
kafka reset
broker_started=1
kafka start
kafka topics --create --topic "$TOPIC" --partitions 3 --replication-factor 1 >/dev/null

# ---- the relay: defaults, except where it listens and a fresh spool ----------------------
spool_env=()
[[ -n ${MEMORY_SPOOL_MAX_BYTES:-} ]] && spool_env=("RELAY_SPOOL_MAX_BYTES=$MEMORY_SPOOL_MAX_BYTES")
env -i PATH="$PATH" RUST_LOG=info TIM_SDK_APP_ID=1400000000 \
  RELAY_LISTEN=127.0.0.1:$PORT RELAY_ADMIN_LISTEN=127.0.0.1:$ADMIN_PORT \
  KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT KAFKA_TOPIC=$TOPIC \
  RELAY_SPOOL_DIR="$OUT/spool" "${spool_env[@]}" \
  "$RELAY_BIN" 2>"$OUT/relay.log" &
relay=$!

metrics() { curl -sf --max-time 5 "$METRICS_URL" || true; }
# metric NAME [LABELS]: its value in the last scrape ($SCRAPE), 0 if absent.
metric() {
  awk -v m="$1${2:-}" '$1 == m { v = $2 } END { printf "%.0f\n", v + 0 }' <<<"$SCRAPE"
}
for ((i = 0; i < 100; i++)); do
  SCRAPE=$(metrics)
  [[ -n $SCRAPE ]] && break
  kill -0 "$relay" 2>/dev/null || { tail "$OUT/relay.log" >&2; say "the relay exited"; exit 1; }
  sleep 0.2
done
[[ -n $SCRAPE ]] || { say "no metrics at $METRICS_URL (set METRICS_URL?)"; exit 1; }

# Seconds since $1 (an $EPOCHREALTIME), to 0.1 s.
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# ---- RSS sampler: t, phase, VmRSS KiB, VmHWM KiB ------------------------------------------
echo idle >"$OUT/phase"
(
  echo "seconds,phase,rss_kib,hwm_kib"
  t0=$EPOCHREALTIME
  while [[ -r /proc/$relay/status ]]; do
    read -r rss hwm < <(awk '/^VmRSS:/ {r = $2} /^VmHWM:/ {h = $2} END {print r, h}' "/proc/$relay/status")
    [[ -n $rss ]] || break
    printf '%s,%s,%s,%s\n' "$(elapsed "$t0")" "$(<"$OUT/phase")" "$rss" "$hwm"
    sleep 0.5
  done
) >"$OUT/rss.csv" &
sampler=$!
phase() { echo "$1" >"$OUT/phase"; say "phase: $1"; }

# wrk in the background, its pid in $load (SIGINT stops it and still prints its summary).
start_wrk() {  # seconds
  MEMORY_RUN=$RUN$(<"$OUT/phase") wrk -t2 -c"$CONNECTIONS" -d"$1s" --timeout 10s -s bench/memory.lua \
    "http://127.0.0.1:$PORT/callback" >>"$OUT/wrk.log" 2>&1 &
  load=$!
}
RUN=m$(date +%s)

phase idle
sleep "$IDLE_SECONDS"

phase load
start_wrk "$LOAD_SECONDS"
wait "$load" || true
load=

kafka stop
phase filling
start_wrk "$FILL_TIMEOUT"
fill_start=$SECONDS
while :; do
  sleep 1
  SCRAPE=$(metrics)
  (($(metric tim_relay_callbacks_total '{outcome="spool_full"}') > 0)) && break
  kill -0 "$load" 2>/dev/null || { say "wrk stopped before the spool was full"; exit 1; }
  ((SECONDS - fill_start < FILL_TIMEOUT)) || { say "spool not full after ${FILL_TIMEOUT}s"; exit 1; }
done
fill_seconds=$((SECONDS - fill_start))
phase full
sleep "$FULL_SECONDS"
kill -INT "$load" 2>/dev/null || true
wait "$load" || true
load=
SCRAPE=$(metrics)
spooled_events=$(metric tim_relay_spool_events)
spooled_bytes=$(metric tim_relay_spool_bytes)
say "spool full after ${fill_seconds}s: $spooled_events events, $spooled_bytes bytes"

phase draining
kafka start
drain_start=$EPOCHREALTIME
while :; do
  SCRAPE=$(metrics)
  (($(metric tim_relay_spool_events) == 0)) && break
  kill -0 "$relay" 2>/dev/null || { say "the relay exited"; exit 1; }
  (($(elapsed "$drain_start" | cut -d. -f1) < DRAIN_TIMEOUT)) || { say "not drained after ${DRAIN_TIMEOUT}s"; exit 1; }
  sleep 0.5
done
drain_seconds=$(elapsed "$drain_start")

phase drained
sleep $((IDLE_SECONDS * 2))
SCRAPE=$(metrics)
ok=$(metric tim_relay_callbacks_total '{outcome="ok"}')
dead=$(metric tim_relay_spool_dead_events)
kill -TERM "$relay"
wait "$relay" || true
relay=
wait "$sampler" 2>/dev/null || true
sampler=

# ---- what reached the topic ----------------------------------------------------------------
kcat -C -b "127.0.0.1:$KAFKA_PORT" -t "$TOPIC" -e -q -f '%k\n' >"$OUT/keys.txt"
in_topic=$(wc -l <"$OUT/keys.txt")
distinct=$(sort -u "$OUT/keys.txt" | wc -l)

# ---- report ----------------------------------------------------------------------------------
{
  printf '%-10s %14s %8s\n' phase "peak RSS MiB" samples
  awk -F, 'NR > 1 {
      if (!($2 in peak)) order[n++] = $2
      if ($3 > peak[$2]) peak[$2] = $3
      count[$2]++
      if ($3 > top) top = $3
      hwm = $4
    }
    END {
      for (i = 0; i < n; i++) printf "%-10s %14.1f %8d\n", order[i], peak[order[i]] / 1024, count[order[i]]
      printf "%-10s %14.1f\n", "all", top / 1024
      printf "%-10s %14.1f   (VmHWM: the peak between samples too)\n", "VmHWM", hwm / 1024
    }' "$OUT/rss.csv"
  echo
  echo "spool: filled in ${fill_seconds}s to $spooled_events events, $spooled_bytes bytes (max ${MEMORY_SPOOL_MAX_BYTES:-default})"
  awk -v e="$spooled_events" -v b="$spooled_bytes" -v s="$drain_seconds" 'BEGIN {
      printf "drain: %.1f s, %.0f events/s, %.2f MB/s\n", s, e / s, b / s / 1e6 }'
  wrk_ok=$(grep -ho 'MEMORY_RESULT.* ok=[0-9]*' "$OUT/wrk.log" | awk -F'ok=' '{ n += $2 } END { print n + 0 }')
  echo "answered OK: $ok (wrk saw $wrk_ok; it stops counting at SIGINT); in topic: $in_topic records, $distinct distinct GroupIds; dead: $dead"
  echo "run time: $((SECONDS - START)) s"
} | tee "$OUT/summary.txt"

verdict=0
hwm_mib=$(awk -F, 'END { printf "%d", $4 / 1024 }' "$OUT/rss.csv")
if ((hwm_mib <= LIMIT_MIB)); then
  echo "PASS: peak resident memory ${hwm_mib} MiB <= ${LIMIT_MIB} MiB"
else
  echo "FAIL: peak resident memory ${hwm_mib} MiB > ${LIMIT_MIB} MiB"
  verdict=1
fi
if ((ok <= distinct)); then
  echo "PASS: nothing answered OK is missing ($ok OK <= $distinct distinct in topic)"
else
  echo "FAIL: $((ok - distinct)) events answered OK are not in the topic"
  verdict=1
fi
exit "$verdict"
