#!/usr/bin/env bash
# Kafka mode's chaos runs, longer than CI's: the correlator SIGKILLed at KILLS random points of
# a storm (default 10), and 1 -> 3 -> 2 correlators under a storm, ROUNDS times each (default
# 3), against a real tansu with real sluice processes (tests/e2e/chaos.rs). Prints one
# markdown report: machine, commit and command on top, one line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS="${KILLS:-10}"
ROUNDS="${ROUNDS:-3}"
scripts/install-tools.sh >&2
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo test --test e2e --no-run >&2
echo "# Kafka mode chaos"
echo
echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "- commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with local changes)')"
echo "- tansu: $(tansu --version 2>/dev/null | head -1 || echo unknown)"
echo "- command: KILLS=$KILLS ROUNDS=$ROUNDS load-tests/chaos.sh"
echo
echo "| run | round | result | kill points | accepted triggers | seconds |"
echo "|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
  for test in correlators_killed_mid_storm one_then_three_then_two; do
    log=$(mktemp)
    start=$(date +%s)
    if SLUICEDEV_CHAOS_KILLS="$KILLS" cargo test -q --test e2e "chaos::$test" -- --nocapture >"$log" 2>&1; then
      result=pass
    else
      result=FAIL
      cp "$log" "/tmp/sluice-chaos-$test-$round.log"
    fi
    secs=$(( $(date +%s) - start ))
    kills=$(grep -c '^kill ' "$log" || true)
    accepted=$(sed -n 's/^accepted keys: \([0-9]*\).*/\1/p' "$log" | tail -1)
    echo "| $test | $round | $result | $kills | ${accepted:--} | $secs |"
    rm -f "$log"
  done
done
