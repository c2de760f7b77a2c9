#!/usr/bin/env bash
# Memory of the relay through a Kafka outage: resident memory in every phase (idle, load, the
# spool filling with Kafka down, full, draining, drained), PASS or FAIL against
# MEMORY_LIMIT_MIB (128), the drain rate, and whether every callback answered OK reached the
# topic. It is scripts/spool-bench.sh, which measures all of that and the spool's speed and
# size beside it; this name and its knobs are kept for the figures in docs/spool.md:
#
#   bash scripts/memory.sh
#
# Knobs, each passed on as spool-bench.sh's: MEMORY_SPOOL_MAX_BYTES, MEMORY_LIMIT_MIB (128),
# MEMORY_CONNECTIONS (64), MEMORY_LOAD_SECONDS (15: the direct path's load), MEMORY_FULL_SECONDS
# (10), MEMORY_IDLE_SECONDS (5), MEMORY_FILL_TIMEOUT, MEMORY_DRAIN_TIMEOUT (1800 s),
# MEMORY_PORT (18380), METRICS_URL, MEMORY_RELAY_BIN, MEMORY_KAFKA_PORT (29092).
set -euo pipefail
map() { [[ -n ${!1:-} ]] && export "$2=${!1}"; return 0; }
map MEMORY_SPOOL_MAX_BYTES SPOOL_BENCH_MAX_BYTES
map MEMORY_LIMIT_MIB SPOOL_BENCH_LIMIT_MIB
map MEMORY_CONNECTIONS SPOOL_BENCH_CONNECTIONS
map MEMORY_LOAD_SECONDS SPOOL_BENCH_DIRECT_SECONDS
map MEMORY_IDLE_SECONDS SPOOL_BENCH_IDLE_SECONDS
map MEMORY_FILL_TIMEOUT SPOOL_BENCH_FILL_TIMEOUT
map MEMORY_DRAIN_TIMEOUT SPOOL_BENCH_DRAIN_TIMEOUT
map MEMORY_RELAY_BIN SPOOL_BENCH_RELAY_BIN
map MEMORY_KAFKA_PORT SPOOL_BENCH_KAFKA_PORT
export SPOOL_BENCH_FULL_SECONDS=${MEMORY_FULL_SECONDS:-10}
export SPOOL_BENCH_PORT=${MEMORY_PORT:-18380}
exec bash "$(dirname "${BASH_SOURCE[0]}")/spool-bench.sh"
