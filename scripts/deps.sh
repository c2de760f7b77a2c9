#!/usr/bin/env bash
# Installs what building and testing need beyond the machine's Rust, Java and Maven:
# the C toolchain pieces librdkafka and OpenSSL build against, and kcat, which
# scripts/kafka-cluster.sh reads the cluster's metadata with (0.1 s a call, against 2-3 s for
# Kafka's Java tools). Only missing packages are installed, so a warm machine pays nothing.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

need=()
for pkg in build-essential pkg-config libssl-dev zlib1g-dev curl kcat; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  say "installing ${need[*]}"
  apt_install --update "${need[@]}"
fi
for tool in cargo java mvn; do
  command -v "$tool" >/dev/null || die "$tool is required but not installed"
done
