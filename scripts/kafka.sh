#!/usr/bin/env bash
# Run a real single-node Apache Kafka 4.x (KRaft, combined broker+controller)
# on 127.0.0.1 without Docker: the jars come from Maven Central through `mvn`
# (scripts/kafka/pom.xml) and run with the machine's `java` (17+).
#
#   scripts/kafka.sh fetch|start|stop|kill|status|reset
#   scripts/kafka.sh wait [SECONDS]
#   scripts/kafka.sh topics ARGS...            (org.apache.kafka.tools.TopicCommand)
#   scripts/kafka.sh console-consumer ARGS...  (org.apache.kafka.tools.consumer.ConsoleConsumer)
#   scripts/kafka.sh perf-producer ARGS...     (org.apache.kafka.tools.ProducerPerformance)
#
# `stop` keeps the data dir, so the next `start` serves the same topics and
# records (fault tests stop/kill and restart the broker); `reset` wipes it.
# Messages go to stderr; only `status` (and the tools' own output) use stdout.
#
# Knobs: KAFKA_VERSION (4.4.0), KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093),
# KAFKA_DATA_DIR (<repo>/target/kafka-data), KAFKA_HEAP (-Xmx512m -Xms256m),
# KAFKA_OPTS (extra broker JVM flags; -XX:TieredStopAtLevel=1 starts ~2 s
# faster but runs slower), KAFKA_NUM_PARTITIONS (3), KAFKA_WAIT_TIMEOUT (60 s),
# KAFKA_CDS (1: keep JVM class archives to start faster; 0: off), KAFKA_AUTO_CREATE_TOPICS
# (true; false: the broker creates no topic on first use),
# TIM_RELAY_CACHE (~/.cache/tim-relay: jars live in kafka-<version>/libs).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=lib/common.sh
source "$HERE/lib/common.sh"
# shellcheck source=lib/kafka.sh
source "$HERE/lib/kafka.sh"   # the jars, KAFKA_VERSION, KAFKA_CDS, TIM_RELAY_CACHE

KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_DATA_DIR=${KAFKA_DATA_DIR:-$REPO/target/kafka-data}
KAFKA_HEAP=${KAFKA_HEAP:--Xmx512m -Xms256m}
KAFKA_OPTS=${KAFKA_OPTS:-}
KAFKA_NUM_PARTITIONS=${KAFKA_NUM_PARTITIONS:-3}
KAFKA_WAIT_TIMEOUT=${KAFKA_WAIT_TIMEOUT:-60}

# Absolute path: the data dir is baked into server.properties and is how we
# recognise "our" broker process in /proc.
KAFKA_DATA_DIR=$(realpath -m "$KAFKA_DATA_DIR")
PROPS=$KAFKA_DATA_DIR/server.properties
PID_FILE=$KAFKA_DATA_DIR/kafka.pid
LOG=$KAFKA_DATA_DIR/kafka.log
BROKER_JSA_PART=$KAFKA_DATA_DIR/broker.jsa.part
BOOTSTRAP=127.0.0.1:$KAFKA_PORT

# ---- tools ----------------------------------------------------------------------------------

# For humans: add --bootstrap-server unless the caller gave one.
run_tool() {
  local main=$1; shift
  fetch_jars
  if [[ " $* " != *" --bootstrap-server "* ]]; then set -- --bootstrap-server "$BOOTSTRAP" "$@"; fi
  exec_tool "$main" "$@"
}

# ---- process state ------------------------------------------------------------

broker_pid() { [[ -f $PID_FILE ]] && cat "$PID_FILE"; }
running() { kafka_running "$PID_FILE" "$PROPS"; }

# Ready = a real metadata round trip (list topics) with Kafka's own admin
# client, given at most $1 seconds.
probe() {
  local part=$KAFKA_DATA_DIR/tools.jsa.part.$$
  cds_for tools "$part"
  # C1 only: a one-shot JVM exits long before C2 would pay off.
  if ! timeout "$1" java "${TOOL_JVM[@]}" "${CDS[@]}" -XX:TieredStopAtLevel=1 \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
    --command-config "$KAFKA_DATA_DIR/probe.properties" --list >/dev/null 2>&1; then
    rm -f "$part"; return 1
  fi
  if [[ -s $part ]]; then mv -f "$part" "$CACHE/tools.jsa"; fi
}

wait_ready() {
  if ! running; then
    [[ -f $PID_FILE ]] && log_tail "$LOG" 40   # it was started and has died: say why
    die "no broker running from $KAFKA_DATA_DIR; run: $0 start"
  fi
  local limit=${1:-$KAFKA_WAIT_TIMEOUT}
  local deadline=$((SECONDS + limit))
  # The port is free to watch and shows a crashed broker at once; the broker
  # opens it only once caught up and unfenced, so the probe (a JVM start,
  # ~1-2 s) usually succeeds on the first try.
  until port_open "$KAFKA_PORT" && probe $((deadline > SECONDS ? deadline - SECONDS : 1)); do
    running || { log_tail "$LOG" 40; die "broker exited during startup; see $LOG"; }
    if ((SECONDS >= deadline)); then
      log_tail "$LOG" 40; die "broker not ready after ${limit}s; see $LOG, then try: $0 stop"
    fi
    sleep 0.2
  done
}

# ---- lifecycle ------------------------------------------------------------------

write_props() {
  cat >"$PROPS" <<EOP
# Written by scripts/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA_DIR/logs
num.partitions=$KAFKA_NUM_PARTITIONS
auto.create.topics.enable=${KAFKA_AUTO_CREATE_TOPICS:-true}
default.replication.factor=1
min.insync.replicas=1
# One node: internal topics cannot have 3 replicas. One partition each also
# makes their lazy creation (first consumer group / transaction) quick.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests should not wait 3 s for a consumer group's first rebalance.
group.initial.rebalance.delay.ms=0
# After a SIGKILL the restarted broker cannot register until its old session
# expires (default 9 s); 4 s still allows for a starved JVM on 2 cores.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
EOP
  # Admin client settings for the readiness probe: fail fast, retry from here.
  printf 'default.api.timeout.ms=10000\nrequest.timeout.ms=5000\n' >"$KAFKA_DATA_DIR/probe.properties"
}

format_storage() {
  # meta.properties is what the broker itself checks; formatting twice fails.
  [[ -f $KAFKA_DATA_DIR/logs/meta.properties ]] && return 0
  local id out
  id=$(tool_java kafka.tools.StorageTool random-uuid) || die "kafka.tools.StorageTool random-uuid failed"
  # Its chatty success output is only worth showing when it fails.
  out=$(tool_java kafka.tools.StorageTool format -t "$id" -c "$PROPS" 2>&1) \
    || { echo "$out" >&2; die "formatting $KAFKA_DATA_DIR/logs failed; try: $0 reset"; }
  say "formatted $KAFKA_DATA_DIR/logs (cluster id $id)"
}

start() {
  fetch_jars
  if running; then
    wait_ready
    say "already running (pid $(broker_pid)) on $BOOTSTRAP"
    return 0
  fi
  rm -f "$PID_FILE"
  local p
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    port_open "$p" && die "port $p on 127.0.0.1 is taken by another process; stop it or set KAFKA_PORT / KAFKA_CONTROLLER_PORT"
  done
  mkdir -p "$KAFKA_DATA_DIR"
  write_props
  format_storage
  say "starting Kafka $KAFKA_VERSION on $BOOTSTRAP (data: $KAFKA_DATA_DIR)"
  cds_for broker "$BROKER_JSA_PART"   # recorded at a clean `stop`, see stop()
  launch_kafka "$KAFKA_HEAP" "$KAFKA_OPTS" "$PROPS" "$LOG" "$PID_FILE"
  wait_ready
  say "ready on $BOOTSTRAP (pid $(broker_pid))"
}

# Wait up to $2 tenths of a second for process $1 to die.
wait_gone() {
  local i
  for ((i = 0; i < $2; i++)); do
    dead "$1" && return 0
    sleep 0.1
  done
  return 1
}

# halt TERM (`stop`): SIGTERM, then SIGKILL after 20 s; halt KILL (`kill`):
# SIGKILL at once. Both keep the data dir.
halt() {
  if ! running; then rm -f "$PID_FILE"; say "not running"; return 0; fi
  local pid; pid=$(broker_pid)
  if [[ $1 == TERM ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    if wait_gone "$pid" 200; then
      # A clean exit wrote the class archive (first time only): publish it.
      if [[ -s $BROKER_JSA_PART ]]; then mv -f "$BROKER_JSA_PART" "$CACHE/broker.jsa"; fi
    else
      say "broker did not stop within 20s; sending SIGKILL"
    fi
  fi
  if ! dead "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 50 || die "pid $pid survives SIGKILL"
  fi
  rm -f "$PID_FILE" "$BROKER_JSA_PART"   # a half-written archive is no use
  say "$2 (data kept in $KAFKA_DATA_DIR)"
}

# Cheap on purpose (no JVM): use `wait` for a real readiness check.
status() {
  if ! running; then echo "stopped"; return 3; fi
  if port_open "$KAFKA_PORT"; then
    echo "running pid=$(broker_pid) bootstrap=$BOOTSTRAP"
  else
    echo "starting pid=$(broker_pid) bootstrap=$BOOTSTRAP"; return 1
  fi
}

reset() {
  halt TERM stopped
  [[ -d $KAFKA_DATA_DIR ]] || return 0
  # Refuse to wipe a folder that does not look like one of ours.
  if [[ -n $(ls -A "$KAFKA_DATA_DIR") && ! -f $PROPS && ! -d $KAFKA_DATA_DIR/logs ]]; then
    die "$KAFKA_DATA_DIR does not look like a kafka.sh data dir; not deleting it"
  fi
  rm -rf "${KAFKA_DATA_DIR:?}"
  say "deleted $KAFKA_DATA_DIR"
}


cmd=${1:-}; [[ $# -gt 0 ]] && shift
# One lifecycle change at a time (e.g. parallel tests all calling `start`: the
# first starts the broker, the rest wait and then find it running). The lock
# is on our own pom, opened read-only; the broker must not inherit it (9<&-).
case $cmd in
  fetch | start | stop | kill | reset)
    hold_lock "$POM" "$cmd"
    ;;
esac
case $cmd in
  fetch) fetch_jars ;;
  start) start ;;
  wait) wait_ready "${1:-}"; say "ready on $BOOTSTRAP" ;;
  stop) halt TERM stopped ;;
  kill) halt KILL killed ;;
  status) status ;;
  reset) reset ;;
  topics) run_tool org.apache.kafka.tools.TopicCommand "$@" ;;
  console-consumer) run_tool org.apache.kafka.tools.consumer.ConsoleConsumer "$@" ;;
  # Arguments pass through untouched (it takes bootstrap.servers in --producer-props).
  perf-producer) fetch_jars; exec_tool org.apache.kafka.tools.ProducerPerformance "$@" ;;
  -h | --help | help) usage "$0" 21 0 ;;
  *) usage "$0" 21 2 ;;
esac
