#!/usr/bin/env bash
# Installs what the tests and the real-broker demo need, skipping whatever is already there:
#   - tansu, an Apache Kafka-compatible broker (crates.io), built with its in-memory storage.
#     Its first build takes about 30 minutes on 2 cores; later runs find the binary and skip it.
# Idempotent: safe to run before every test run.
set -euo pipefail

TANSU_VERSION=${TANSU_VERSION:-0.6.0}
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"

have_tansu() {
  local bin
  bin=$(command -v tansu 2>/dev/null || echo "$cargo_bin/tansu")
  [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$TANSU_VERSION"
}

if have_tansu; then
  echo "install-tools: tansu $TANSU_VERSION already installed"
else
  echo "install-tools: installing tansu $TANSU_VERSION (first build takes ~30 minutes on 2 cores)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore
fi
