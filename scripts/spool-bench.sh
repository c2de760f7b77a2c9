#!/usr/bin/env bash
# The spool's speed and size through a Kafka outage, next to the direct path in the same run:
# wrk load with Kafka up (the direct path), then Kafka stopped and the same load until the spool
# is full (callbacks get 503), a few seconds full, then Kafka started and the spool drained.
# scripts/memory.sh runs this script under its older knob names.
#
#   bash scripts/spool-bench.sh
#   SPOOL_BENCH_MAX_BYTES=268435456 bash scripts/spool-bench.sh     # a quicker, 256 MiB spool
#
# Prints (and writes to target/spool-bench/report.txt):
# - the direct path's callbacks/s (Kafka up, same wrk load and connections, before the outage);
# - for the fill, per tenth of RELAY_SPOOL_MAX_BYTES (by tim_relay_spool_bytes): when it was
#   reached, the callbacks/s answered OK during that tenth, and the spool file's size on disk
#   at its end (ls size and du) against RELAY_SPOOL_MAX_BYTES and RELAY_SPOOL_MAX_FILE_BYTES;
#   then the fill by time (SPOOL_BENCH_WINDOW s windows) and each growth of the file;
# - the file when the spool is full and after the drain;
# - the drain: per tenth and overall, events/s and MB/s;
# - peak RSS per phase (idle, direct, filling, full, draining, drained) and VmHWM, PASS or FAIL
#   against SPOOL_BENCH_LIMIT_MIB;
# - whether every callback answered OK reached the topic (tim_relay_callbacks_total{outcome="ok"}
#   against the distinct GroupIds read back with kcat, one per request, bench/memory.lua).
# Samples (every SPOOL_BENCH_SAMPLE_SECONDS) go to target/spool-bench/samples.csv, relay, broker
# and wrk logs to target/spool-bench/. A measurement, not a test: it is not part of the suite.
#
# Runs its own broker (scripts/kafka.sh on SPOOL_BENCH_KAFKA_PORT 29092 / 29093, data in
# target/kafka-spool-bench, reset at the start, stopped at the end) and a release build of the relay with default settings
# except the addresses, a fresh spool dir and the knobs below. Installs wrk and kcat (Debian
# packages) if missing. Stops everything it started, also on Ctrl-C.
#
# Knobs: SPOOL_BENCH_LIMIT_MIB (128: PASS/FAIL for the peak resident memory), SPOOL_BENCH_MAX_BYTES (unset: the relay's default RELAY_SPOOL_MAX_BYTES, 1 GiB),
# SPOOL_BENCH_MAX_FILE_BYTES (unset: the relay's default, 2.5 x the max bytes),
# SPOOL_BENCH_CONNECTIONS (64), SPOOL_BENCH_DIRECT_SECONDS (15), SPOOL_BENCH_FULL_SECONDS (5),
# SPOOL_BENCH_IDLE_SECONDS (5), SPOOL_BENCH_FILL_TIMEOUT (1800 s), SPOOL_BENCH_DRAIN_TIMEOUT
# (1800 s), SPOOL_BENCH_SAMPLE_SECONDS (0.5), SPOOL_BENCH_WINDOW (5 s: the fill by time),
# SPOOL_BENCH_OUTAGE (idle: Kafka is stopped between the direct load and the fill's, as
# memory.sh does; load: the fill's load starts 3 s before Kafka is stopped, so the outage
# begins under load), SPOOL_BENCH_RELAY_ENV (extra VAR=value words for the relay, e.g.
# "RELAY_ACK_TIMEOUT_MS=500 KAFKA_PRODUCER_RECONNECT_BACKOFF_MS=1000"), SPOOL_BENCH_PORT (18390;
# the admin listener is +1), SPOOL_BENCH_RELAY_BIN (skip the build and measure this binary),
# SPOOL_BENCH_KAFKA_PORT (29092; the controller takes the next port), SPOOL_BENCH_SPOOL_DIR
# (unset: a fresh dir under target/spool-bench; a dir of your own is kept, so a second run
# fills the file an earlier run grew, drained and left at its size: growth out of the way).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

say() { echo "spool-bench.sh: $*" >&2; }

MAX_BYTES=${SPOOL_BENCH_MAX_BYTES:-}
MAX_FILE_BYTES=${SPOOL_BENCH_MAX_FILE_BYTES:-}
CONNECTIONS=${SPOOL_BENCH_CONNECTIONS:-64}
DIRECT_SECONDS=${SPOOL_BENCH_DIRECT_SECONDS:-15}
FULL_SECONDS=${SPOOL_BENCH_FULL_SECONDS:-5}
IDLE_SECONDS=${SPOOL_BENCH_IDLE_SECONDS:-5}
FILL_TIMEOUT=${SPOOL_BENCH_FILL_TIMEOUT:-1800}
DRAIN_TIMEOUT=${SPOOL_BENCH_DRAIN_TIMEOUT:-1800}
SAMPLE_SECONDS=${SPOOL_BENCH_SAMPLE_SECONDS:-0.5}
WINDOW=${SPOOL_BENCH_WINDOW:-5}
OUTAGE=${SPOOL_BENCH_OUTAGE:-idle}
LIMIT_MIB=${SPOOL_BENCH_LIMIT_MIB:-128}
read -r -a EXTRA_ENV <<<"${SPOOL_BENCH_RELAY_ENV:-}"
PORT=${SPOOL_BENCH_PORT:-18390}
ADMIN_PORT=$((PORT + 1))
METRICS_URL=${METRICS_URL:-http://127.0.0.1:$ADMIN_PORT/metrics}
TOPIC=tim.spool-bench
OUT=$REPO/target/spool-bench
SPOOL_DIR=${SPOOL_BENCH_SPOOL_DIR:-$OUT/spool}
SPOOL_FILE=$SPOOL_DIR/spool.redb
export KAFKA_PORT=${SPOOL_BENCH_KAFKA_PORT:-29092}
export KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
export KAFKA_DATA_DIR=$REPO/target/kafka-spool-bench
kafka() { bash "$REPO/scripts/kafka.sh" "$@"; }
[[ $OUTAGE == idle || $OUTAGE == load ]] || { say "SPOOL_BENCH_OUTAGE is idle or load"; exit 2; }

for pkg in wrk kcat; do
  command -v "$pkg" >/dev/null && continue
  say "installing $pkg"
  if [[ $(id -u) -eq 0 ]]; then SUDO=; else SUDO=sudo; fi
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg" >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg" >/dev/null
  fi
done

RELAY_BIN=${SPOOL_BENCH_RELAY_BIN:-}
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
if [[ -s $SPOOL_FILE ]]; then
  say "using the spool file left in $SPOOL_DIR ($(stat -c %s "$SPOOL_FILE") bytes)"
fi
START=$SECONDS
kafka reset
broker_started=1
kafka start
kafka topics --create --topic "$TOPIC" --partitions 3 --replication-factor 1 >/dev/null

# ---- the relay: defaults, except where it listens, a fresh spool and the knobs -----------
relay_env=()
[[ -n $MAX_BYTES ]] && relay_env+=("RELAY_SPOOL_MAX_BYTES=$MAX_BYTES")
[[ -n $MAX_FILE_BYTES ]] && relay_env+=("RELAY_SPOOL_MAX_FILE_BYTES=$MAX_FILE_BYTES")
env -i PATH="$PATH" RUST_LOG=info TIM_SDK_APP_ID=1400000000 \
  RELAY_LISTEN=127.0.0.1:$PORT RELAY_ADMIN_LISTEN=127.0.0.1:$ADMIN_PORT \
  KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT KAFKA_TOPIC=$TOPIC \
  RELAY_SPOOL_DIR="$SPOOL_DIR" "${relay_env[@]}" "${EXTRA_ENV[@]}" \
  "$RELAY_BIN" 2>"$OUT/relay.log" &
relay=$!

metrics() { curl -sf --max-time 5 "$METRICS_URL" || true; }
# metric NAME [LABELS]: its value in $SCRAPE, 0 if absent.
metric() {
  awk -v m="$1${2:-}" '$1 == m { v = $2 } END { printf "%.0f\n", v + 0 }' <<<"$SCRAPE"
}
for ((i = 0; i < 100; i++)); do
  SCRAPE=$(metrics)
  [[ -n $SCRAPE ]] && break
  kill -0 "$relay" 2>/dev/null || { tail "$OUT/relay.log" >&2; say "the relay exited"; exit 1; }
  sleep 0.2
done
[[ -n $SCRAPE ]] || { say "no metrics at $METRICS_URL"; exit 1; }
MAX_BYTES=$(metric tim_relay_spool_max_bytes)
MAX_FILE_BYTES=$(metric tim_relay_spool_file_max_bytes)
((MAX_BYTES > 0 && MAX_FILE_BYTES > 0)) || { say "the relay shows no spool bounds in /metrics"; exit 1; }

# ---- sampler: one line per SAMPLE_SECONDS -------------------------------------------------
# t (epoch s), phase, callbacks answered OK, refused (spool_full + spool_disk_full), spool
# events, spool bytes, tim_relay_spool_file_bytes, the file's ls size and du bytes, forwarded,
# OK callbacks that took over 1 s, VmRSS and VmHWM (KiB).
echo idle >"$OUT/phase"
(
  echo "t,phase,ok,refused,events,bytes,file_metric,ls,du,forwarded,ok_over_1s,rss_kib,hwm_kib"
  while [[ -r /proc/$relay/status ]]; do
    t=$EPOCHREALTIME
    line=$(curl -sf --max-time 2 "$METRICS_URL" | awk '
      $1 == "tim_relay_callbacks_total{outcome=\"ok\"}" { ok = $2 }
      $1 == "tim_relay_callbacks_total{outcome=\"spool_full\"}" { full = $2 }
      $1 == "tim_relay_callbacks_total{outcome=\"spool_disk_full\"}" { disk = $2 }
      $1 == "tim_relay_spool_events" { ev = $2 }
      $1 == "tim_relay_spool_bytes" { by = $2 }
      $1 == "tim_relay_spool_file_bytes" { fb = $2 }
      $1 == "tim_relay_forwarded_total" { fw = $2 }
      $1 == "tim_relay_callback_duration_seconds_bucket{outcome=\"ok\",le=\"1\"}" { le1 = $2 }
      $1 == "tim_relay_callback_duration_seconds_count{outcome=\"ok\"}" { cnt = $2 }
      END { if (NR) printf "%d,%d,%d,%d,%d,%d,%d", ok, full + disk, ev, by, fb, fw, cnt - le1 }')
    [[ -n $line ]] || { sleep "$SAMPLE_SECONDS"; continue; }
    read -r ls du < <(stat -c '%s %b %B' "$SPOOL_FILE" 2>/dev/null | awk '{ print $1, $2 * $3 }' || true)
    read -r rss hwm < <(awk '/^VmRSS:/ {r = $2} /^VmHWM:/ {h = $2} END {print r, h}' "/proc/$relay/status" 2>/dev/null || true)
    [[ -n ${rss:-} ]] || break
    IFS=, read -r ok refused ev by fb fw slow <<<"$line"
    printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$t" "$(<"$OUT/phase")" "$ok" "$refused" \
      "$ev" "$by" "$fb" "${ls:-0}" "${du:-0}" "$fw" "$slow" "$rss" "$hwm"
    sleep "$SAMPLE_SECONDS"
  done
) >"$OUT/samples.csv" &
sampler=$!
phase() { echo "$1" >"$OUT/phase"; echo "$1 $EPOCHREALTIME" >>"$OUT/phases.txt"; say "phase: $1"; }
# The last sample's field N (1-based): 4 is the refused count.
sample_field() {
  awk -F, -v n="$1" 'NR > 1 { v = $n } END { print v + 0 }' "$OUT/samples.csv"
}

# wrk in the background, its pid in $load (SIGINT stops it and still prints its summary).
start_wrk() {  # seconds, log name
  MEMORY_RUN=$RUN$2 wrk -t2 -c"$CONNECTIONS" -d"$1s" --timeout 10s -s bench/memory.lua \
    "http://127.0.0.1:$PORT/callback" >"$OUT/wrk-$2.log" 2>&1 &
  load=$!
}
stop_wrk() {
  kill -INT "$load" 2>/dev/null || true
  wait "$load" || true
  load=
}
RUN=s$(date +%s)

phase idle
sleep "$IDLE_SECONDS"

# ---- the direct path: Kafka up -----------------------------------------------------------
phase direct
SCRAPE=$(metrics)
direct_ok0=$(metric tim_relay_callbacks_total '{outcome="ok"}') direct_t0=$EPOCHREALTIME
start_wrk "$DIRECT_SECONDS" direct
wait "$load" || true
load=
SCRAPE=$(metrics)
direct_ok1=$(metric tim_relay_callbacks_total '{outcome="ok"}') direct_t1=$EPOCHREALTIME
direct_spooled=$(metric tim_relay_spooled_total)

# ---- the fill: Kafka down until callbacks get 503 ----------------------------------------
if [[ $OUTAGE == load ]]; then
  start_wrk "$FILL_TIMEOUT" fill
  sleep 3
  fill_t0=$EPOCHREALTIME
  phase filling
  kafka stop
else
  kafka stop
  phase filling
  fill_t0=$EPOCHREALTIME
  start_wrk "$FILL_TIMEOUT" fill
fi
SCRAPE=$(metrics)
fill_ok0=$(metric tim_relay_callbacks_total '{outcome="ok"}')
fill_start=$SECONDS
sleep 1
while (($(sample_field 4) == 0)); do
  sleep 0.5
  kill -0 "$load" 2>/dev/null || { say "wrk stopped before the spool was full"; exit 1; }
  kill -0 "$relay" 2>/dev/null || { say "the relay exited"; exit 1; }
  ((SECONDS - fill_start < FILL_TIMEOUT)) || { say "spool not full after ${FILL_TIMEOUT}s"; exit 1; }
done
phase full
sleep "$FULL_SECONDS"
stop_wrk
sleep 1
SCRAPE=$(metrics)
full_events=$(metric tim_relay_spool_events)
full_bytes=$(metric tim_relay_spool_bytes)
say "spool full: $full_events events, $full_bytes bytes"

# ---- the drain: Kafka up again, no load ----------------------------------------------------
phase draining
kafka start
drain_t0=$EPOCHREALTIME
drain_start=$SECONDS
while :; do
  SCRAPE=$(metrics)
  (($(metric tim_relay_spool_events) == 0)) && break
  kill -0 "$relay" 2>/dev/null || { say "the relay exited"; exit 1; }
  ((SECONDS - drain_start < DRAIN_TIMEOUT)) || { say "not drained after ${DRAIN_TIMEOUT}s"; exit 1; }
  sleep 0.2
done
drain_t1=$EPOCHREALTIME
phase drained
sleep $((IDLE_SECONDS * 2))
SCRAPE=$(metrics)
ok=$(metric tim_relay_callbacks_total '{outcome="ok"}')
dead=$(metric tim_relay_spool_dead_events)
forwarded=$(metric tim_relay_forwarded_total)
spooled=$(metric tim_relay_spooled_total)
restarts=$(metric tim_relay_producer_restarts_total)
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
wrk_rps() { awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$OUT/wrk-$1.log"; }
{
  mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
  echo "spool-bench: RELAY_SPOOL_MAX_BYTES $MAX_BYTES ($(mib "$MAX_BYTES") MiB), RELAY_SPOOL_MAX_FILE_BYTES $MAX_FILE_BYTES ($(mib "$MAX_FILE_BYTES") MiB), $CONNECTIONS connections, outage while $OUTAGE${SPOOL_BENCH_RELAY_ENV:+, relay env: $SPOOL_BENCH_RELAY_ENV}"
  awk -v ok0="$direct_ok0" -v ok1="$direct_ok1" -v t0="$direct_t0" -v t1="$direct_t1" \
    -v wrk="$(wrk_rps direct)" -v spooled="$direct_spooled" 'BEGIN {
      printf "direct path (Kafka up, %.1f s): %.0f callbacks/s answered OK (wrk: %s requests/s); spooled meanwhile: %d\n",
        t1 - t0, (ok1 - ok0) / (t1 - t0), wrk, spooled }'
  echo
  awk -F, -v t0="$fill_t0" -v ok0="$fill_ok0" -v max="$MAX_BYTES" -v fmax="$MAX_FILE_BYTES" \
    -v window="$WINDOW" '
    function mb(x) { return x / 1048576 }
    NR == 1 || ($2 != "filling" && $2 != "full") { next }
    { n++; t[n] = $1; ok[n] = $3; ref[n] = $4; by[n] = $6; ls[n] = $8; du[n] = $9; slow[n] = $11; rss[n] = $12
      if (!fullat && $4 > 0) fullat = n }
    END {
      if (!fullat) { print "the spool never got full"; exit }
      full = by[fullat]
      printf "fill, Kafka stopped: per tenth of RELAY_SPOOL_MAX_BYTES (by tim_relay_spool_bytes); file size at the end of the tenth\n"
      printf "%-9s %8s %12s %10s %10s %12s %12s\n", "tenth", "at s", "callbacks/s", "ls MiB", "du MiB", "ls/max_bytes", "ls/max_file"
      pt = t0; pok = ok0; k = 1; i = 1
      while (k <= 10 && i <= n) {
        target = k < 10 ? max * k / 10 : full
        if (by[i] < target) { i++; continue }
        if (i == 1 || by[i] == by[i - 1]) { T = t[i]; O = ok[i] }
        else { f = (target - by[i - 1]) / (by[i] - by[i - 1]); T = t[i - 1] + f * (t[i] - t[i - 1]); O = ok[i - 1] + f * (ok[i] - ok[i - 1]) }
        rate = T > pt ? (O - pok) / (T - pt) : 0
        printf "%3d-%3d%%  %8.1f %12.0f %10.0f %10.0f %12.2f %12.2f\n", (k - 1) * 10, k * 10, T - t0, rate, mb(ls[i]), mb(du[i]), ls[i] / max, ls[i] / fmax
        rates[k] = rate; pt = T; pok = O; k++
      }
      printf "full after %.1f s: %.0f callbacks answered OK in the fill (%.0f/s overall); ok callbacks over 1 s so far: %d\n",
        pt - t0, pok - ok0, (pok - ok0) / (pt - t0), slow[fullat]
      print ""
      printf "fill by time (%s s windows from the outage; callbacks/s answered OK, spool and file at the window end)\n", window
      printf "%-11s %12s %12s %10s %10s\n", "seconds", "callbacks/s", "spool MiB", "ls MiB", "du MiB"
      w = window; pt = t0; pok = ok0
      for (i = 1; i <= fullat; i++) {
        if (t[i] - t0 < w && i < fullat) continue
        printf "%4.0f-%-6.1f %12.0f %12.1f %10.0f %10.0f\n", pt - t0, t[i] - t0, (ok[i] - pok) / (t[i] - pt), mb(by[i]), mb(ls[i]), mb(du[i])
        pt = t[i]; pok = ok[i]
        while (w <= t[i] - t0) w += window
      }
      print ""
      printf "file growths during the fill (sampled; the spool content when the new size was first seen)\n"
      for (i = 2; i <= n; i++) if (ls[i] != ls[i - 1])
        printf "  at %6.1f s, spool %7.1f MiB: file %5.0f -> %5.0f MiB (du %5.0f MiB)\n", t[i] - t0, mb(by[i]), mb(ls[i - 1]), mb(ls[i]), mb(du[i])
      printf "file when full: ls %.0f MiB, du %.0f MiB = %.2f x RELAY_SPOOL_MAX_BYTES, %.2f x RELAY_SPOOL_MAX_FILE_BYTES (spool content %.1f MiB, %.1f%% of max)\n",
        mb(ls[n]), mb(du[n]), ls[n] / max, ls[n] / fmax, mb(by[n]), 100 * by[n] / max
    }' "$OUT/samples.csv"
  echo
  awk -F, -v t0="$drain_t0" -v t1="$drain_t1" -v e="$full_events" -v b="$full_bytes" '
    function mb(x) { return x / 1048576 }
    NR == 1 || ($2 != "draining" && $2 != "drained") || done { next }
    $2 == "drained" { done = 1 }
    { n++; t[n] = $1; by[n] = $6; ev[n] = $5; fw[n] = $10; ls[n] = $8; du[n] = $9
      if (!first && n > 1 && fw[n] > fw[1]) first = n }
    END {
      printf "drain, Kafka started (no load): %.1f s from kafka.sh start returning (broker ready) to an empty spool: %.0f events/s, %.2f MB/s\n",
        t1 - t0, e / (t1 - t0), b / (t1 - t0) / 1e6
      if (first) {
        d = t[first - 1] - t0
        printf "  forwarding began %.1f s %s kafka.sh start returned; from then to an empty spool: %.1f s, %.0f events/s, %.2f MB/s\n",
          d < 0 ? -d : d, d < 0 ? "before" : "after", t1 - t[first - 1], e / (t1 - t[first - 1]), b / (t1 - t[first - 1]) / 1e6
      }
      printf "%-9s %8s %10s %8s\n", "tenth", "at s", "events/s", "MB/s"
      pt = t0; pf = fw[1]; pb = b; k = 1; i = 1
      while (k <= 10 && i <= n) {
        target = b * (10 - k) / 10
        if (by[i] > target) { i++; continue }
        if (i == 1 || by[i] == by[i - 1]) { T = t[i]; F = fw[i] }
        else { f = (by[i - 1] - target) / (by[i - 1] - by[i]); T = t[i - 1] + f * (t[i] - t[i - 1]); F = fw[i - 1] + f * (fw[i] - fw[i - 1]) }
        if (T > pt) printf "%3d-%3d%%  %8.1f %10.0f %8.2f\n", (k - 1) * 10, k * 10, T - t0, (F - pf) / (T - pt), (pb - target) / (T - pt) / 1e6
        pt = T; pf = F; pb = target; k++
      }
      printf "file after the drain: ls %.0f MiB, du %.0f MiB (redb keeps its file)\n", mb(ls[n]), mb(du[n])
    }' "$OUT/samples.csv"
  echo
  printf '%-10s %14s %8s\n' phase "peak RSS MiB" samples
  awk -F, 'NR > 1 {
      if (!($2 in peak)) order[n++] = $2
      if ($12 > peak[$2]) peak[$2] = $12
      count[$2]++
      hwm = $13
    }
    END {
      for (i = 0; i < n; i++) printf "%-10s %14.1f %8d\n", order[i], peak[order[i]] / 1024, count[order[i]]
      printf "%-10s %14.1f   (the peak between samples too)\n", "VmHWM", hwm / 1024
    }' "$OUT/samples.csv"
  hwm_mib=$(awk -F, 'NR > 1 {h = $13} END {printf "%d", h / 1024}' "$OUT/samples.csv")
  if ((hwm_mib <= LIMIT_MIB)); then
    echo "PASS: peak resident memory ${hwm_mib} MiB <= ${LIMIT_MIB} MiB"
  else
    echo "FAIL: peak resident memory ${hwm_mib} MiB > ${LIMIT_MIB} MiB"
  fi
  echo
  echo "answered OK: $ok; spooled: $spooled; forwarded: $forwarded; in topic: $in_topic records, $distinct distinct GroupIds; dead: $dead; producer restarts: $restarts"
  if ((ok <= distinct)); then
    echo "PASS: every callback answered OK reached the topic ($ok OK <= $distinct distinct in the topic)"
  else
    echo "FAIL: $((ok - distinct)) callbacks answered OK are not in the topic"
  fi
  echo "run time: $((SECONDS - START)) s"
} | tee "$OUT/report.txt"
! grep -q '^FAIL' "$OUT/report.txt"
