#!/usr/bin/env bash
# Runs every test: unit tests, golden and property tests, and the end-to-end tests that start
# a real tansu broker, the real sluice binary and a real Kafka consumer. Installs missing tools
# first (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo test --all-targets "$@"
