#!/usr/bin/env bash
# Fault tests against a three-node Kafka cluster with two relays in front (tests/cluster.rs,
# issue 13): the leader of partition 0 killed twice, a rolling restart, two nodes stopped for
# 10 s, the active controller killed. Each prints a tally: sent, answered OK, in topic, lost,
# duplicates, out of order within one relay and across the two. Then the group-state fold
# (tests/cluster_state.rs): the broker that coordinates its transactions killed while it folds;
# its tally: events produced, state records read, mismatches with the model, how long the fold
# stalled, when the coordinator moved, restarts. scripts/test.sh runs it bounded
# (CLUSTER_FAULTS_SECS=20); this full run takes several minutes.
#
#   bash scripts/cluster-faults.sh [TEST NAME FILTER...]
#
# Builds the tests, starts a fresh cluster (scripts/kafka-cluster.sh; its data dir is wiped at
# the start), runs `cargo test --test cluster -- --ignored --test-threads 1 --nocapture`, then
# the same for `--test cluster_state`, stops the cluster (also on failure or Ctrl-C) and prints
# the tallies (also kept in target/cluster-logs/summary.txt; relay and materializer logs with the
# timeline beside it).
#
# Its cluster has a data dir of its own; its ports are kafka-cluster.sh's defaults, clear of
# tests/fault.rs (run by scripts/test.sh, so by CI), which holds 19092/19093. Brokers on CLUSTER_FAULTS_PORT_BASE (19292..19294), controllers on
# CLUSTER_FAULTS_CONTROLLER_PORT_BASE (19392..19394), data in CLUSTER_FAULTS_DIR
# (target/kafka-cluster-faults). Other knobs: CLUSTER_FAULTS_SECS (each scenario's load runs at
# least this long, default 60), KAFKA_PRODUCER_* and RELAY_ACK_TIMEOUT_MS (reach both relays),
# CLUSTER_FAULTS_PEERS=0 (relays without RELAY_PEERS), and kafka-cluster.sh's own
# KAFKA_CLUSTER_HEAP / _OPTS / _SESSION_TIMEOUT_MS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export KAFKA_CLUSTER_PORT_BASE=${CLUSTER_FAULTS_PORT_BASE:-19292}
export KAFKA_CLUSTER_CONTROLLER_PORT_BASE=${CLUSTER_FAULTS_CONTROLLER_PORT_BASE:-19392}
export KAFKA_CLUSTER_DIR=${CLUSTER_FAULTS_DIR:-$PWD/target/kafka-cluster-faults}
export CLUSTER_FAULTS_SECS=${CLUSTER_FAULTS_SECS:-60}
export CLUSTER_LOGS_DIR=$PWD/target/cluster-logs   # where tests/cluster_state.rs writes too
[[ $CLUSTER_FAULTS_SECS =~ ^[0-9]+$ ]] || { echo "CLUSTER_FAULTS_SECS must be a number of seconds" >&2; exit 2; }

# shellcheck source=lib/common.sh
source scripts/lib/common.sh
started=$SECONDS

# One run at a time: two would share the cluster's ports and data dir.
mkdir -p target/cluster-logs
exec 8>target/cluster-logs/cluster-faults.lock
if ! flock -n 8; then
  say "another cluster-faults.sh run holds target/cluster-logs/cluster-faults.lock; waiting"
  flock 8
fi

bash scripts/deps.sh
say "building"
cargo test --locked --test cluster --test cluster_state --no-run

# shellcheck disable=SC2317  # called by the EXIT trap
stop_cluster() {
  say "stopping the cluster"
  bash scripts/kafka-cluster.sh stop || say "kafka-cluster.sh stop failed; try: KAFKA_CLUSTER_PORT_BASE=$KAFKA_CLUSTER_PORT_BASE KAFKA_CLUSTER_CONTROLLER_PORT_BASE=$KAFKA_CLUSTER_CONTROLLER_PORT_BASE KAFKA_CLUSTER_DIR=$KAFKA_CLUSTER_DIR bash scripts/kafka-cluster.sh kill"
}
on_exit stop_cluster

bash scripts/kafka-cluster.sh reset
bash scripts/kafka-cluster.sh start
rm -f target/cluster-logs/summary.txt

status=0
cargo test --locked --test cluster -- --ignored --test-threads 1 --nocapture "$@" || status=$?
cargo test --locked --test cluster_state -- --ignored --test-threads 1 --nocapture "$@" || status=$?

echo
echo "cluster fault tests (tests/cluster.rs, tests/cluster_state.rs), $((SECONDS - started)) s in all, CLUSTER_FAULTS_SECS=$CLUSTER_FAULTS_SECS:"
if [[ -f target/cluster-logs/summary.txt ]]; then
  cat target/cluster-logs/summary.txt
else
  echo "(no scenario got as far as its tally)"
fi
exit "$status"
