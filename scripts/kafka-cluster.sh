#!/usr/bin/env bash
# Run a local three-node Apache Kafka 4.x cluster on 127.0.0.1 without Docker,
# for fault tests: leader moves, rolling restarts, NOT_ENOUGH_REPLICAS, a new
# controller. Each node is a combined KRaft broker+controller; the three
# controllers are the metadata quorum. Same jars as scripts/kafka.sh (which
# fetches them); kafka.sh's single broker is a separate thing and left alone.
#
#   scripts/kafka-cluster.sh start|stop|kill|status|reset
#   scripts/kafka-cluster.sh start-node N|stop-node N|kill-node N   (N: 1, 2, 3)
#   scripts/kafka-cluster.sh wait [SECONDS]
#   scripts/kafka-cluster.sh bootstrap               (prints the bootstrap list)
#   scripts/kafka-cluster.sh leader TOPIC PARTITION  (prints its leader's node id, -1 if none)
#   scripts/kafka-cluster.sh controller              (prints the active controller's node id)
#   scripts/kafka-cluster.sh txn-coordinator TRANSACTIONAL_ID  (prints its transaction coordinator's node id)
#   scripts/kafka-cluster.sh topics ARGS...          (org.apache.kafka.tools.TopicCommand)
#   scripts/kafka-cluster.sh quorum ARGS...          (org.apache.kafka.tools.MetadataQuorumCommand)
#
# Node N (1-3): broker 127.0.0.1:1929[234], controller :1939[234], data in
# target/kafka-cluster/node-N (log: node-N/kafka.log). `start` returns once all
# three brokers are registered and unfenced, `start-node N` once broker N is.
# stop/stop-node: SIGTERM (controlled shutdown: leadership moves away first),
# then wait for the exit; kill/kill-node: SIGKILL. Data is kept; `reset` wipes
# it. bootstrap, leader, controller, txn-coordinator and status print to stdout,
# messages go to stderr. status: one line per node; exit 0 if all run, 3 if
# none, else 1.
#
# Knobs: KAFKA_CLUSTER_PORT_BASE (19292), KAFKA_CLUSTER_CONTROLLER_PORT_BASE
# (19392), KAFKA_CLUSTER_DIR (<repo>/target/kafka-cluster), KAFKA_CLUSTER_HEAP
# (-Xmx384m -Xms192m, each node), KAFKA_CLUSTER_OPTS (JVM flags; default
# -XX:TieredStopAtLevel=1, C1 only: starts ~2x faster; empty: full JIT),
# KAFKA_CLUSTER_NUM_PARTITIONS (6), KAFKA_CLUSTER_SESSION_TIMEOUT_MS (4000),
# KAFKA_CLUSTER_WAIT_TIMEOUT (120 s), KAFKA_CLUSTER_STOP_TIMEOUT (30 s),
# KAFKA_CLUSTER_KCAT (auto: kcat, when installed, for quick metadata reads;
# 0: Kafka's Java tools only); and kafka.sh's KAFKA_VERSION, KAFKA_CDS,
# TIM_RELAY_CACHE. Settings and measurements: docs/cluster.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
SELF=$HERE/$(basename "${BASH_SOURCE[0]}")
# shellcheck source=lib/common.sh
source "$HERE/lib/common.sh"
# Shared with kafka.sh (same defaults): it fetches into $CACHE/libs.
# shellcheck source=lib/kafka.sh
source "$HERE/lib/kafka.sh"
export KAFKA_VERSION KAFKA_CDS TIM_RELAY_CACHE

PORT_BASE=${KAFKA_CLUSTER_PORT_BASE:-19292}
CPORT_BASE=${KAFKA_CLUSTER_CONTROLLER_PORT_BASE:-19392}
DIR=${KAFKA_CLUSTER_DIR:-$REPO/target/kafka-cluster}
HEAP=${KAFKA_CLUSTER_HEAP:--Xmx384m -Xms192m}
# C1 only by default: three JVMs on 2 cores start in half the time, and over
# a test's few minutes use less CPU than with C2 compiling (docs/cluster.md).
# KAFKA_CLUSTER_OPTS= (empty) restores the full JIT for a long soak.
OPTS=${KAFKA_CLUSTER_OPTS--XX:TieredStopAtLevel=1}
NUM_PARTITIONS=${KAFKA_CLUSTER_NUM_PARTITIONS:-6}
SESSION_TIMEOUT_MS=${KAFKA_CLUSTER_SESSION_TIMEOUT_MS:-4000}
WAIT_TIMEOUT=${KAFKA_CLUSTER_WAIT_TIMEOUT:-120}
STOP_TIMEOUT=${KAFKA_CLUSTER_STOP_TIMEOUT:-30}
USE_KCAT=${KAFKA_CLUSTER_KCAT:-auto}

# Absolute: each node's data dir is baked into its server.properties, which is
# how we recognise "our" node processes in /proc.
DIR=$(realpath -m "$DIR")
NODES=(1 2 3)
BPORT=() CPORT=() BOOTSTRAP='' CONTROLLERS='' VOTERS=''
for n in "${NODES[@]}"; do
  BPORT[n]=$((PORT_BASE + n - 1))
  CPORT[n]=$((CPORT_BASE + n - 1))
  BOOTSTRAP+=${BOOTSTRAP:+,}127.0.0.1:${BPORT[n]}
  CONTROLLERS+=${CONTROLLERS:+,}127.0.0.1:${CPORT[n]}
  VOTERS+=${VOTERS:+,}$n@127.0.0.1:${CPORT[n]}
done

# ---- jars and JVMs ------------------------------------------------------------

# `kafka.sh fetch` is the one way jars arrive. It waits for kafka.sh's lock,
# which a starting single broker holds for a while, so skip it when kafka.sh's
# marker says this pom's jars are complete (any doubt: ask kafka.sh).
fetch() {
  [[ -d $LIBS ]] && jars_complete && return 0
  bash "$HERE/kafka.sh" fetch
}

# Tool JVMs here are one-shot: C1 only. Class-data archives are only mapped
# (cds_for without a second argument), never recorded.
TOOL_JVM+=(-XX:TieredStopAtLevel=1)

# Admin client settings for our own look-ups: fail within seconds, not 60 s.
admin_props() {  # [api timeout ms] [request timeout ms]
  printf 'default.api.timeout.ms=%s\nrequest.timeout.ms=%s\n' "${1:-15000}" "${2:-5000}"
}

have_kcat() { [[ $USE_KCAT != 0 ]] && command -v kcat >/dev/null; }

# ---- process state --------------------------------------------------------------

node_pid() { [[ -f $DIR/node-$1/kafka.pid ]] && cat "$DIR/node-$1/kafka.pid"; }
running() { kafka_running "$DIR/node-$1/kafka.pid" "$DIR/node-$1/server.properties"; }
node_log_tail() { log_tail "$DIR/node-$1/kafka.log" 30; }

check_node() {
  [[ ${1:-} =~ ^[123]$ ]] || die "N must be 1, 2 or 3 (got '${1:-}')"
}

# ---- metadata -------------------------------------------------------------------

# Ids of the brokers that metadata from bootstrap list $1 shows (registered
# and unfenced only), one a line; fails if no broker answers.
brokers_seen() {
  local out
  if have_kcat; then
    # "  broker 2 at 127.0.0.1:19293"
    out=$(timeout 10 kcat -L -b "$1" -m 5 2>/dev/null) || return 1
    awk '$1 == "broker" && $3 == "at" {print $2}' <<<"$out"
  else
    # "ID HOST PORT RACK STATE ENDPOINT_TYPE", then "1 127.0.0.1 19292 null unfenced broker"
    out=$(timeout 20 java "${TOOL_JVM[@]}" "${CDS[@]}" org.apache.kafka.tools.ClusterTool list-endpoints \
      --bootstrap-server "$1" --command-config <(admin_props) 2>/dev/null) || return 1
    awk 'NR > 1 && $5 == "unfenced" {print $1}' <<<"$out"
  fi
}

# Wait until each node in $@ runs, has its broker port open (a broker opens it
# once caught up with the metadata and unfenced) and shows in the metadata.
# Metadata comes from those nodes' own ports, so a registration left over from
# a killed incarnation cannot count.
wait_brokers() {
  local limit=$1; shift
  local deadline=$((SECONDS + limit)) n bs='' seen='' missing
  for n in "$@"; do
    if ! running "$n"; then
      [[ -f $DIR/node-$n/kafka.pid ]] && node_log_tail "$n"   # started, then died: say why
      die "node $n is not running; run: $0 start-node $n (or $0 start)"
    fi
    bs+=${bs:+,}127.0.0.1:${BPORT[n]}
  done
  cds_for tools
  while :; do
    missing=''
    for n in "$@"; do port_open "${BPORT[n]}" || missing+=" $n"; done
    if [[ -z $missing ]]; then
      seen=$(brokers_seen "$bs" | sort -n | tr '\n' ' ') || seen=''
      for n in "$@"; do [[ " $seen" == *" $n "* ]] || missing+=" $n"; done
      [[ -z $missing ]] && return 0
    fi
    for n in "$@"; do
      running "$n" || { node_log_tail "$n"; die "node $n exited during startup; see $DIR/node-$n/kafka.log"; }
    done
    if ((SECONDS >= deadline)); then
      die "broker(s)$missing not registered after ${limit}s (metadata shows: ${seen:-nothing}); see $DIR/node-N/kafka.log"
    fi
    sleep 0.3
  done
}

leader() {  # TOPIC PARTITION
  local topic=$1 part=$2 out id
  [[ $part =~ ^[0-9]+$ ]] || die "PARTITION must be a number (got '$part')"
  if have_kcat; then
    # "    partition 0, leader 2, replicas: 2,3,1, isrs: 2,3,1"; an unknown topic
    # has no partition lines. No auto-creation from a look-up.
    out=$(timeout 15 kcat -L -b "$BOOTSTRAP" -m 5 -t "$topic" -X allow.auto.create.topics=false 2>&1) \
      || die "kcat could not read the metadata: $out"
    id=$(awk -v p="$part," '$1 == "partition" && $2 == p && $3 == "leader" {sub(",", "", $4); print $4}' <<<"$out")
  else
    # "Topic: t<TAB>Partition: 0<TAB>Leader: 2<TAB>Replicas: 2,3,1<TAB>Isr: ..."
    # (--topic is a pattern: match the name too).
    out=$(tool_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
      --command-config <(admin_props) --describe --topic "$topic" 2>&1) || die "TopicCommand failed: $(first_error "$out")"
    id=$(awk -v t="$topic" -v p="$part" '
      { name = ""; part = ""; lead = ""
        for (i = 1; i < NF; i++) {
          if ($i == "Topic:") name = $(i + 1)
          if ($i == "Partition:") part = $(i + 1)
          if ($i == "Leader:") lead = $(i + 1)
        }
        if (name == t && part == p && lead != "") print lead }' <<<"$out")
  fi
  [[ -n $id ]] || die "no partition $part of topic '$topic' in the metadata"
  [[ $id == none ]] && id=-1
  echo "$id"
}

# A Java tool's failure without its stack trace: the first exception line.
first_error() {
  local e
  e=$(grep -m1 -oE '[A-Za-z0-9_.$]+(Exception|Error): .*' <<<"$1") || e=$1
  echo "$e"
}

# Asks the controllers themselves (DescribeQuorum is answered by the quorum
# leader), so it works while brokers are down. Right after the active
# controller dies, one admin client can stay pointed at it until it times out,
# so this retries with fresh short-lived ones, for up to 30 s.
controller() {
  local deadline=$((SECONDS + 30)) n bs alive out id err=''
  while :; do
    alive=$(alive_count)
    ((alive >= 2)) || die "no active controller: $alive of 3 nodes run, and a quorum needs 2"
    bs=''
    for n in "${NODES[@]}"; do running "$n" && bs+=${bs:+,}127.0.0.1:${CPORT[n]}; done
    if out=$(tool_java org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-controller "$bs" \
      --command-config <(admin_props 3000 1500) describe --status 2>&1); then
      id=$(awk '$1 == "LeaderId:" {print $2}' <<<"$out")
      if [[ $id =~ ^[0-9]+$ ]]; then echo "$id"; return 0; fi
      err="no LeaderId in: $out"
    else
      err=$(first_error "$out")
    fi
    ((SECONDS < deadline)) || die "no answer from an active controller within 30s: $err"
    sleep 0.5
  done
}

# The node that coordinates transactional id $1's transactions (the leader of its partition of
# __transaction_state), as that coordinator itself says: Kafka's TransactionsCommand describe
# asks the coordinator, and prints its id in column CoordinatorId. Right after the coordinator's
# node dies, the look-up fails (not the coordinator, coordinator loading) until the new one has
# loaded the transaction log, so this retries with fresh short-lived clients for up to 30 s. An
# id the cluster does not know fails at once.
txn_coordinator() {
  local tid=$1 deadline=$((SECONDS + 30)) out id err=''
  [[ -n $tid ]] || die "usage: $0 txn-coordinator TRANSACTIONAL_ID"
  while :; do
    if out=$(tool_java org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$BOOTSTRAP" \
      --command-config <(admin_props 10000 3000) describe --transactional-id "$tid" 2>&1); then
      # "CoordinatorId TransactionalId ProducerId ...", then one row (padded columns).
      id=$(awk -v t="$tid" '
        !c { for (i = 1; i <= NF; i++) { if ($i == "CoordinatorId") c = i; if ($i == "TransactionalId") n = i }; next }
        n && $n == t { print $c; exit }' <<<"$out")
      if [[ $id =~ ^[0-9]+$ ]]; then echo "$id"; return 0; fi
      err="no CoordinatorId for $tid in: $out"
    else
      err=$(grep -m1 -e 'Failed to describe' <<<"$out") || err=$(first_error "$out")
      [[ $err == *"could not be found"* ]] && die "the cluster knows no transactional id '$tid': $err"
    fi
    ((SECONDS < deadline)) || die "no answer from the transaction coordinator of '$tid' within 30s: $err"
    sleep 0.5
  done
}

# ---- lifecycle ------------------------------------------------------------------

write_props() {  # node
  local n=$1
  cat >"$DIR/node-$n/server.properties" <<EOP
# Written by scripts/kafka-cluster.sh on every start of this node; edit the
# script, not this file. Why each setting: docs/cluster.md.
process.roles=broker,controller
node.id=$n
# Static 3-voter quorum: every node knows all voters from its config, and
# formatting needs no directory ids (a dynamic quorum would).
controller.quorum.voters=$VOTERS
listeners=PLAINTEXT://127.0.0.1:${BPORT[n]},CONTROLLER://127.0.0.1:${CPORT[n]}
advertised.listeners=PLAINTEXT://127.0.0.1:${BPORT[n]}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/node-$n/logs

# Production-like durability: every partition on all three nodes, a write
# with acks=all needs two in sync, and an out-of-sync replica never becomes
# leader (it would lose acknowledged records).
num.partitions=$NUM_PARTITIONS
auto.create.topics.enable=true
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
# The same for the internal topics (consumer offsets, transaction state, share
# groups). 6 partitions instead of 50: created quickly on first use, and still
# spread over all three nodes, so killing a coordinator's node moves it.
offsets.topic.replication.factor=3
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
share.coordinator.state.topic.num.partitions=6

# Quick failover. A SIGKILLed node is fenced, and its partitions get new
# leaders, once its session expires: $SESSION_TIMEOUT_MS ms instead of 9 s, with heartbeats
# every $((SESSION_TIMEOUT_MS / 4)) ms so a JVM starved for a second or two on 2 cores is not
# fenced by mistake. (SIGTERM moves leadership at once: controlled shutdown.)
broker.heartbeat.interval.ms=$((SESSION_TIMEOUT_MS / 4))
broker.session.timeout.ms=$SESSION_TIMEOUT_MS
# A live follower that stops fetching leaves the ISR after 10 s, not 30 s,
# which fits in a test; short of that, so busy JVMs do not flap in and out.
replica.lag.time.max.ms=10000
# Kafka's defaults, spelled out: a quorum follower that hears nothing from the
# active controller for 2 s starts an election (~1 s).
controller.quorum.fetch.timeout.ms=2000
controller.quorum.election.timeout.ms=1000
# Leadership returns to the preferred replica within ~10 s of a node coming
# back (default 300 s), so each fault test starts from a balanced cluster.
auto.leader.rebalance.enable=true
leader.imbalance.check.interval.seconds=10
# Tests should not wait 3 s for a consumer group's first rebalance.
group.initial.rebalance.delay.ms=0
EOP
}

# One cluster id for all nodes, kept beside them. Kafka's Uuid text form is 16
# random bytes in URL-safe base64 without padding, never starting with '-'.
cluster_id() {
  local f=$DIR/cluster.id id n
  if [[ -s $f ]]; then cat "$f"; return 0; fi
  for n in "${NODES[@]}"; do   # cluster.id lost but a node formatted: use its id
    if [[ -f $DIR/node-$n/logs/meta.properties ]]; then
      id=$(sed -n 's/^cluster\.id=//p' "$DIR/node-$n/logs/meta.properties")
      [[ -n $id ]] && { echo "$id" >"$f"; echo "$id"; return 0; }
    fi
  done
  id=-
  while [[ $id == -* ]]; do id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='); done
  echo "$id" >"$f"
  echo "$id"
}

# Format the nodes in $@ that are not yet (in parallel: a JVM each).
format_nodes() {
  local id n jobs=() failed=''
  id=$(cluster_id)
  for n in "$@"; do
    [[ -f $DIR/node-$n/logs/meta.properties ]] && continue
    tool_java kafka.tools.StorageTool format -t "$id" -c "$DIR/node-$n/server.properties" \
      >"$DIR/node-$n/format.log" 2>&1 &
    jobs[n]=$!
  done
  for n in "${!jobs[@]}"; do
    if wait "${jobs[n]}"; then
      say "formatted node $n (cluster id $id)"
    else
      cat "$DIR/node-$n/format.log" >&2; failed+=" $n"
    fi
  done
  [[ -z $failed ]] || die "formatting node(s)$failed failed; try: $0 reset"
}

launch() {  # node (props written, storage formatted)
  local d=$DIR/node-$1
  cds_for broker
  launch_kafka "$HEAP" "$OPTS" "$d/server.properties" "$d/kafka.log" "$d/kafka.pid"
}

# Start the nodes in $@ that are not running; returns without waiting.
start_nodes() {
  local n p todo=()
  fetch
  mkdir -p "$DIR"
  for n in "$@"; do
    running "$n" && continue
    for p in "${BPORT[n]}" "${CPORT[n]}"; do
      port_open "$p" && die "port $p on 127.0.0.1 (node $n) is taken by another process; stop it or set KAFKA_CLUSTER_PORT_BASE / KAFKA_CLUSTER_CONTROLLER_PORT_BASE"
    done
    todo+=("$n")
  done
  ((${#todo[@]})) || return 0
  for n in "${todo[@]}"; do
    mkdir -p "$DIR/node-$n"
    rm -f "$DIR/node-$n/kafka.pid"
    write_props "$n"
  done
  format_nodes "${todo[@]}"
  for n in "${todo[@]}"; do
    say "starting node $n: broker 127.0.0.1:${BPORT[n]}, controller 127.0.0.1:${CPORT[n]}"
    launch "$n"
  done
}

now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((t / 1000)); }

# Live node processes (not yet exiting zombies).
alive_count() {
  local n c=0
  for n in "${NODES[@]}"; do
    if running "$n" && ! dead "$(node_pid "$n")"; then c=$((c + 1)); fi
  done
  echo "$c"
}

# True while node $1's broker waits for a controller to grant its controlled
# shutdown (its log says so; the log starts afresh with each start).
awaiting_grant() {
  local log=$DIR/node-$1/kafka.log
  grep -q 'Beginning controlled shutdown' "$log" 2>/dev/null \
    && ! grep -q -e 'asked us to exit controlled shutdown' -e 'Transitioning from PENDING_CONTROLLED_SHUTDOWN' "$log"
}

# halt TERM|KILL NODES...: signal them all at once, then wait for each to exit.
# Data dirs are kept. TERM: a broker's controlled shutdown needs an active
# controller, i.e. 2 of the 3 nodes up. The last node of a full `stop`, or a
# lone node, can lose that race and would wait 5 minutes for a controller: if
# it still waits 3 s after fewer than 2 nodes are left, it gets SIGKILL (its
# logs are then recovered at the next start; nothing acknowledged is lost,
# the kernel has the writes). Any node gets SIGKILL after STOP_TIMEOUT s.
halt() {
  local sig=$1 n pid t0 lost='' pending=() pids=() forced=()
  shift
  t0=$(now_ms)
  for n in "$@"; do
    if running "$n"; then
      pid=$(node_pid "$n"); pids[n]=$pid; pending+=("$n")
      kill -"$sig" "$pid" 2>/dev/null || true
    else
      rm -f "$DIR/node-$n/kafka.pid"
      say "node $n: not running"
    fi
  done
  local deadline=$((t0 + 5000)) now left why what
  [[ $sig == TERM ]] && deadline=$((t0 + STOP_TIMEOUT * 1000))
  while ((${#pending[@]})); do
    now=$(now_ms) left=() why=''
    for n in "${pending[@]}"; do
      if dead "${pids[n]}"; then
        rm -f "$DIR/node-$n/kafka.pid"
        if [[ $sig == TERM && -z ${forced[n]:-} ]]; then what=stopped; else what=killed; fi
        say "node $n $what ($(((now - t0) / 1000)).$(((now - t0) % 1000 / 100))s)"
      else
        left+=("$n")
      fi
    done
    pending=("${left[@]}")
    ((${#pending[@]})) || break
    if [[ $sig == TERM ]]; then
      if (($(alive_count) < 2)); then lost=${lost:-$now}; else lost=''; fi
      if [[ -n $lost ]] && ((now - lost >= 3000)); then
        for n in "${pending[@]}"; do
          if [[ -n ${forced[n]:-} ]] || ! awaiting_grant "$n"; then continue; fi
          forced[n]=1
          say "node $n: its controlled shutdown waits for a controller quorum, and fewer than 2 nodes are left; sending SIGKILL"
          kill -KILL "${pids[n]}" 2>/dev/null || true
        done
      fi
      if ((now >= deadline)); then
        why="did not stop within ${STOP_TIMEOUT}s"
      fi
      if [[ -n $why ]]; then
        for n in "${pending[@]}"; do
          say "node $n: $why; sending SIGKILL"
          kill -KILL "${pids[n]}" 2>/dev/null || true
        done
        sig=KILL deadline=$((now + 5000))
      fi
    elif ((now >= deadline)); then
      die "node(s) ${pending[*]} survive SIGKILL"
    fi
    sleep 0.1
  done
}

# Cheap on purpose (no JVM, no network beyond a connect): `wait` checks for real.
status() {
  local n up=0 alive=0
  for n in "${NODES[@]}"; do
    local where="broker=127.0.0.1:${BPORT[n]} controller=127.0.0.1:${CPORT[n]}"
    if running "$n"; then
      alive=$((alive + 1))
      if port_open "${BPORT[n]}"; then
        up=$((up + 1)); echo "node=$n state=running pid=$(node_pid "$n") $where"
      else
        echo "node=$n state=starting pid=$(node_pid "$n") $where"
      fi
    else
      echo "node=$n state=stopped $where"
    fi
  done
  ((up == ${#NODES[@]})) && return 0
  ((alive == 0)) && return 3
  return 1
}

reset() {
  halt KILL "${NODES[@]}"   # the data goes anyway: no need for a clean stop
  [[ -d $DIR ]] || return 0
  # Refuse to wipe a folder that does not look like ours.
  if [[ -n $(ls -A "$DIR") && ! -f $DIR/cluster.id && ! -d $DIR/node-1 ]]; then
    die "$DIR does not look like a kafka-cluster.sh data dir; not deleting it"
  fi
  rm -rf "${DIR:?}"
  say "deleted $DIR"
}


cmd=${1:-}; [[ $# -gt 0 ]] && shift
# One lifecycle change at a time (lock on this script, opened read-only; the
# nodes do not inherit it).
case $cmd in
  start | stop | kill | reset | start-node | stop-node | kill-node)
    hold_lock "$SELF" "$cmd"
    ;;
esac
case $cmd in
  start)
    start_nodes "${NODES[@]}"
    wait_brokers "$WAIT_TIMEOUT" "${NODES[@]}"
    say "ready: 3 brokers on $BOOTSTRAP (${SECONDS}s)"
    ;;
  start-node)
    check_node "${1:-}"
    start_nodes "$1"
    wait_brokers "$WAIT_TIMEOUT" "$1"
    say "node $1 ready on 127.0.0.1:${BPORT[$1]} (${SECONDS}s)"
    ;;
  wait)
    [[ -z ${1:-} || $1 =~ ^[0-9]+$ ]] || die "SECONDS must be a number (got '$1')"
    wait_brokers "${1:-$WAIT_TIMEOUT}" "${NODES[@]}"
    say "ready: 3 brokers on $BOOTSTRAP"
    ;;
  stop) halt TERM "${NODES[@]}" ;;
  kill) halt KILL "${NODES[@]}" ;;
  stop-node) check_node "${1:-}"; halt TERM "$1" ;;
  kill-node) check_node "${1:-}"; halt KILL "$1" ;;
  status) status ;;
  reset) reset ;;
  bootstrap) echo "$BOOTSTRAP" ;;
  leader)
    [[ $# -eq 2 ]] || die "usage: $0 leader TOPIC PARTITION"
    fetch; leader "$1" "$2"
    ;;
  controller) fetch; controller ;;
  txn-coordinator)
    [[ $# -eq 1 ]] || die "usage: $0 txn-coordinator TRANSACTIONAL_ID"
    fetch; txn_coordinator "$1"
    ;;
  topics | quorum)
    fetch
    main=org.apache.kafka.tools.TopicCommand
    opt=--bootstrap-server val=$BOOTSTRAP
    if [[ $cmd == quorum ]]; then
      main=org.apache.kafka.tools.MetadataQuorumCommand opt=--bootstrap-controller val=$CONTROLLERS
    fi
    if [[ " $* " != *" --bootstrap-server "* && " $* " != *" --bootstrap-controller "* ]]; then
      set -- "$opt" "$val" "$@"
    fi
    exec_tool "$main" "$@"
    ;;
  -h | --help | help) usage "$SELF" 35 0 ;;
  *) usage "$SELF" 35 2 ;;
esac
