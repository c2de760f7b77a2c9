#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS_PER_TARGET seconds (default 30), each from
# a fresh working corpus seeded with fuzz/seeds/<target>/. Prints one summary line per target
# and exits non-zero if any target found a crash, naming the reproducing input.
#
# Installs what it needs once and reuses it: a nightly toolchain (falls back to stable with
# RUSTC_BOOTSTRAP=1 when nightly cannot be installed) and cargo-fuzz.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET]
#   FUZZ_TARGETS="body_event" FUZZ_SANITIZER=none bash scripts/fuzz.sh 600
#   reproduce a crash: cargo +nightly fuzz run --sanitizer none <target> fuzz/artifacts/<target>/crash-...
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS_PER_TARGET=${1:-30}
CARGO_FUZZ_VERSION=0.13.2
SEED=${FUZZ_SEED:-20261126}
# No sanitizer by default: with -Zsanitizer=address the cc crate also instruments the C code it
# builds (zstd-sys), and librdkafka's ./configure then fails to link its checks against that
# libzstd.a (the main crate's rdkafka dependency cannot be built). The targets exercise safe
# Rust, where libFuzzer still catches panics, timeouts and -rss_limit_mb; -malloc_limit_mb
# needs a sanitizer's malloc hooks and only takes effect with FUZZ_SANITIZER=address.
SANITIZER=${FUZZ_SANITIZER:-none}
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
# shellcheck source=lib/common.sh
source scripts/lib/common.sh

log() { echo "fuzz.sh [+${SECONDS}s]: $*" >&2; }

# The C pieces the main crate's librdkafka and OpenSSL build against (as scripts/deps.sh,
# without requiring Java and Maven, which fuzzing does not use).
need=()
for pkg in build-essential pkg-config libssl-dev zlib1g-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  log "installing ${need[*]}"
  apt_install --update "${need[@]}"
fi

# libFuzzer needs a nightly compiler (-Z sanitizer flags).
TOOLCHAIN=+nightly
if ! cargo +nightly --version >/dev/null 2>&1; then
  log "installing the nightly toolchain"
  # Judge by the result, not rustup's exit status (a failed self-update check is not fatal).
  rustup toolchain install nightly --profile minimal --no-self-update >&2 || true
  if ! cargo +nightly --version >/dev/null 2>&1; then
    log "nightly unavailable: using stable with RUSTC_BOOTSTRAP=1"
    TOOLCHAIN=+stable
    export RUSTC_BOOTSTRAP=1
  fi
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked >&2
fi

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
# Per-target input size bound: a query string is short; a body may be up to 64 KiB here
# (the relay's real limit is 1 MiB, but the parser's behaviour does not change past a few KiB).
max_len() { case $1 in query_auth) echo 4096 ;; *) echo 65536 ;; esac; }

start=$SECONDS
log "building ($TOOLCHAIN, sanitizer $SANITIZER)"
cargo "$TOOLCHAIN" fuzz build --sanitizer "$SANITIZER" >&2
log "built in $((SECONDS - start)) s"

failed=0
for target in $targets; do
  corpus=fuzz/corpus/$target
  artifacts=fuzz/artifacts/$target
  rm -rf "$corpus"
  mkdir -p "$corpus" "$artifacts"
  cp fuzz/seeds/"$target"/* "$corpus"/
  run_log=fuzz/artifacts/$target.log
  status=0
  cargo "$TOOLCHAIN" fuzz run --sanitizer "$SANITIZER" "$target" "$corpus" -- \
    -max_total_time="$SECONDS_PER_TARGET" -seed="$SEED" -rss_limit_mb=512 -malloc_limit_mb=256 \
    -max_len="$(max_len "$target")" -timeout=10 -dict=fuzz/dict/json.dict -print_final_stats=1 \
    >"$run_log" 2>&1 || status=$?
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$run_log" | tail -n1 || true)
  runs=$(grep -oE '^Done [0-9]+ runs' "$run_log" | tail -n1 | grep -oE '[0-9]+' || true)
  cov=$(grep -oE 'cov: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+' || true)
  ft=$(grep -oE 'ft: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+' || true)
  corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' <<<"$done_line" | cut -d' ' -f2 || true)
  execs=$(grep -oE 'exec/s: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+' || true)
  if ((status == 0)) && [[ -n $runs ]]; then
    echo "$target: OK  runs=$runs cov=${cov:-?} ft=${ft:-?} corpus=${corp:-?} exec/s=${execs:-?} (${SECONDS_PER_TARGET}s, log $run_log)"
  else
    failed=1
    artifact=$(grep -oE 'Test unit written to [^ ]+' "$run_log" | tail -n1 | cut -d' ' -f5 || true)
    reason=$(grep -m1 -A1 -E "panicked at|==[0-9]+== ERROR" "$run_log" | tr '\n' ' ' || true)
    echo "$target: CRASH (exit $status) artifact=${artifact:-none} ${reason:+reason: $reason} (log $run_log)"
    if [[ -n $artifact ]]; then
      echo "  reproduce: cargo $TOOLCHAIN fuzz run --sanitizer $SANITIZER $target $artifact"
    fi
  fi
done
exit "$failed"
