#!/usr/bin/env bash
# Runs every test: unit tests, golden and property tests, the benchmarks once each as tests,
# and the end-to-end tests that start a real tansu broker, the real sluice binary, Debian's
# Alertmanager and a real Kafka consumer. Installs missing tools first (idempotent). Ends with
# one line totalling every test binary's result.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
# Under CI the deploy/ checks fail instead of skipping when one of their tools is missing.
if [ "${CI:-}" = true ]; then export SLUICEDEV_REQUIRE_DEPLOY_TOOLS=1; fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --all-targets "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
