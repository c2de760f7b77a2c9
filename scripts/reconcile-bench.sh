#!/usr/bin/env bash
# The reconciler's benchmark (benches/reconcile.rs): sweeps of BENCH_GROUPS (100,000) groups
# held by the Tencent emulator, against the broker at KAFKA_BOOTSTRAP_SERVERS (started with
# scripts/kafka.sh when none is configured and none runs), with the release binary. Prints
# each sweep's wall time, REST calls per group, events published and peak RSS, then the state
# index's memory for BENCH_INDEX_GROUPS (1,000,000) groups; the output is also written to
# target/reconcile-bench/report.txt. A measurement, not a test: it is not part of the suite.
#
#   bash scripts/reconcile-bench.sh
#   BENCH_GROUPS=10000 BENCH_QPS=50 BENCH_SWEEPS=1 bash scripts/reconcile-bench.sh   # the default budget
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/common.sh
if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  bash scripts/kafka.sh start
  export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092
fi
mkdir -p target/reconcile-bench
cargo bench --locked --bench reconcile 2>&1 | tee target/reconcile-bench/report.txt
