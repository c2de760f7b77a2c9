#!/usr/bin/env bash
# The group-state fold at scale: how fast `tim-relay materialize` folds events, how much memory
# its groups take, and how long a restarted instance takes to rebuild them from the state topic.
#
#   bash scripts/state-bench.sh            # one million groups
#   STATE_BENCH_GROUPS=200000 bash scripts/state-bench.sh
#
# 1. Writes STATE_BENCH_GROUPS created events (3 members, name, 2 custom fields each) and as
#    many info-changed events (one per group) to a fresh topic with STATE_BENCH_PARTITIONS (6)
#    partitions, in the relay's event format.
# 2. Starts one release-built materializer and times the fold of all of them: events per
#    second, from its first transaction to the last (the events_total counter against time).
# 3. Reads its resident memory (VmRSS, VmHWM) with every group held: bytes per group.
# 4. Stops it (SIGTERM), starts it again and times the rebuild of every partition from the
#    compacted state topic (tim_relay_state_rebuild_duration_seconds), and the memory after.
#
# A measurement, not a test: it is not part of the suite. Runs its own broker (scripts/kafka.sh
# on STATE_BENCH_KAFKA_PORT 39092 / 39093, data in target/kafka-state-bench, reset at the
# start, stopped at the end). Installs kcat (Debian) if missing. Logs go to target/state-bench/.
# Knobs: STATE_BENCH_GROUPS (1000000), STATE_BENCH_PARTITIONS (6), STATE_BENCH_BIN (skip the
# build), STATE_BENCH_ADMIN_PORT (18390).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
# shellcheck source=lib/common.sh
source scripts/lib/common.sh

NGROUPS=${STATE_BENCH_GROUPS:-1000000}
PARTITIONS=${STATE_BENCH_PARTITIONS:-6}
ADMIN_PORT=${STATE_BENCH_ADMIN_PORT:-18390}
OUT=$REPO/target/state-bench
TOPIC=tim.state-bench
export KAFKA_PORT=${STATE_BENCH_KAFKA_PORT:-39092}
export KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
export KAFKA_DATA_DIR=$REPO/target/kafka-state-bench
export KAFKA_HEAP=${KAFKA_HEAP:--Xmx1g -Xms512m}
kafka() { bash "$REPO/scripts/kafka.sh" "$@"; }

if ! command -v kcat >/dev/null; then
  say "installing kcat"
  apt_install kcat
fi

BIN=${STATE_BENCH_BIN:-}
if [[ -z $BIN ]]; then
  bash scripts/deps.sh
  cargo build --release --locked --bin tim-relay
  BIN=$REPO/target/release/tim-relay
fi

mkdir -p "$OUT"
materializer= broker_started=0
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  if [[ -n $materializer ]]; then kill -TERM "$materializer" 2>/dev/null || true; wait "$materializer" 2>/dev/null || true; fi
  if ((broker_started)); then kafka stop 2>/dev/null || true; fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

kafka reset >/dev/null 2>&1 || true
kafka start
broker_started=1
BOOT=127.0.0.1:$KAFKA_PORT
kafka topics --bootstrap-server "$BOOT" --create --topic "$TOPIC" --partitions "$PARTITIONS" >/dev/null

say "writing $NGROUPS created and $NGROUPS info-changed events"
python3 - "$NGROUPS" >"$OUT/events.txt" <<'EOF'
import json, sys, uuid
n = int(sys.argv[1])
out = sys.stdout
base = 1_760_000_000_000
for phase in ("created", "info_changed"):
    for g in range(n):
        gid = f"@TGS#bench{g}"
        e = {"id": str(uuid.uuid4()), "type": f"tim.group.{phase}", "schema_version": 1,
             "sdk_app_id": "1400000000", "group_id": gid, "group_type": "Public",
             "operator": "admin", "event_time_ms": base + g + (0 if phase == "created" else 10_000_000),
             "received_at": "2026-11-26T00:00:00.000Z"}
        if phase == "created":
            e.update({"owner": f"owner{g}", "name": f"group {g}",
                      "members": [f"owner{g}", f"user{g}a", f"user{g}b"],
                      "custom": {"level": "1", "region": "eu"}})
        else:
            e["changes"] = {"name": f"group {g} renamed", "custom": {"level": "2"}}
        out.write(gid + "|" + json.dumps(e, separators=(",", ":")) + "\n")
EOF
TOTAL=$((NGROUPS * 2))
kcat -P -b "$BOOT" -t "$TOPIC" -K'|' -X linger.ms=20 -X batch.num.messages=10000 -X compression.type=lz4 <"$OUT/events.txt"
rm -f "$OUT/events.txt"

metric() {
  curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" 2>/dev/null | awk -v m="$1" 'index($0, m) == 1 { print $NF; exit }'
}
folded() {
  local sum=0 v
  for o in applied duplicate stale not_state invalid; do
    v=$(metric "tim_relay_state_events_total{outcome=\"$o\"}")
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
start() {
  KAFKA_BOOTSTRAP_SERVERS=$BOOT KAFKA_TOPIC=$TOPIC KAFKA_STATE_TOPIC=$TOPIC.state \
    RELAY_STATE_INSTANCE_ID=bench RELAY_ADMIN_LISTEN=127.0.0.1:$ADMIN_PORT \
    "$BIN" materialize >>"$OUT/materialize.log" 2>&1 &
  materializer=$!
}
ready() {
  for _ in $(seq 1 1200); do
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  say "the materializer did not become ready"; exit 1
}
rss() { awk -v k="$1:" '$1 == k { printf "%.1f", $2 / 1024 }' "/proc/$materializer/status"; }
now() { date +%s.%N; }

: >"$OUT/materialize.log"
start
ready
say "folding $TOTAL events"
first= t0=
while :; do
  n=$(folded)
  if [[ -z $first && $n -gt 0 ]]; then first=$n; t0=$(now); fi
  ((n >= TOTAL)) && break
  sleep 0.2
done
t1=$(now)
fold_rate=$(python3 -c "print(round(($TOTAL - $first) / ($t1 - $t0)))")
groups=$(metric tim_relay_state_groups)
rss_fold=$(rss VmRSS) hwm_fold=$(rss VmHWM)

say "restarting to time the rebuild"
kill -TERM "$materializer"; wait "$materializer" || true
start
ready
rebuild=$(metric tim_relay_state_rebuild_duration_seconds_sum)
rebuilt=$(metric tim_relay_state_rebuilt_groups_total)
sleep 2
rss_rebuilt=$(rss VmRSS) hwm_rebuilt=$(rss VmHWM)

per_group() { python3 -c "print(round($1 * 1048576 / $groups))"; }
cat <<EOF
groups                 $groups (state topic, $PARTITIONS partitions)
fold                   $fold_rate events/s ($TOTAL events: one created and one info-changed per group)
memory after the fold  RSS $rss_fold MiB (peak $hwm_fold MiB), $(per_group "$rss_fold") bytes per group
rebuild                $rebuilt groups in $(printf '%.1f' "$rebuild") s ($(python3 -c "print(round($rebuilt / $rebuild))") groups/s)
memory after rebuild   RSS $rss_rebuilt MiB (peak $hwm_rebuilt MiB), $(per_group "$rss_rebuilt") bytes per group
EOF
