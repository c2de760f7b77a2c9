#!/usr/bin/env bash
# The whole test suite: unit tests, end-to-end tests against a real Kafka broker, and the
# deployment checks (scripts/check-deploy.sh: the Kubernetes layout rendered and validated
# offline, the alert rules checked and unit-tested with promtool).
# Without KAFKA_BOOTSTRAP_SERVERS it starts the local broker (scripts/kafka.sh) and stops it
# again afterwards if it was not already running. Extra arguments go to `cargo test`.
# Then the fault tests against a three-node cluster (tests/cluster.rs, scripts/cluster-faults.sh),
# bounded to CLUSTER_FAULTS_SECS=20 of load per scenario (the full run, 60 s each, is
# `bash scripts/cluster-faults.sh`); TEST_CLUSTER_FAULTS_SECS changes the bound.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh
bash scripts/check-deploy.sh
if [[ -z ${KAFKA_BOOTSTRAP_SERVERS:-} ]]; then
  if ! bash scripts/kafka.sh status >/dev/null 2>&1; then
    trap 'bash scripts/kafka.sh stop' EXIT
  fi
  bash scripts/kafka.sh start
  export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:${KAFKA_PORT:-9092}
fi
rm -f target/fault-logs/summary.txt
cargo test --locked --all-targets "$@"
if [[ -f target/fault-logs/summary.txt ]]; then
  echo "fault tests (tests/fault.rs):"
  cat target/fault-logs/summary.txt
fi
CLUSTER_FAULTS_SECS=${TEST_CLUSTER_FAULTS_SECS:-20} bash scripts/cluster-faults.sh
