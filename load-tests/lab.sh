#!/usr/bin/env bash
# The scenario lab's comparison run: every generated storm (tests/e2e/scenarios/) through
# sluice's default config (replayed in simulated time) and through Debian's real Prometheus
# Alertmanager, once per group_by choice, in real time scaled by LAB_TIME_SCALE, all scored by
# the same scorer. Prints one markdown report on stdout (date, machine, commit and command on
# top), progress on stderr. tests/e2e/scenarios/README.md describes the scenarios, the scoring
# and the scaling.
#
#   load-tests/lab.sh                                    # everything, about 15 minutes on 2 cores
#   LAB_SCENARIOS=composite load-tests/lab.sh            # only the composite storm, 6 seeds
#   LAB_SEEDS=holdout LAB_TIME_SCALE=120 load-tests/lab.sh
#
# LAB_TIME_SCALE (default 60: an hour of scenario in a minute; Alertmanager's timers are
# divided by it), LAB_JOBS (scenario runs at once, default 8; each runs one Alertmanager per
# group_by choice, 5), LAB_SCENARIOS (comma-separated names, default all), LAB_SEEDS (tuning,
# holdout or all). Needs Alertmanager (scripts/install-tools.sh installs it). Everything
# listens on 127.0.0.1; every Alertmanager is killed when its run ends. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export LAB_TIME_SCALE="${LAB_TIME_SCALE:-60}"
export LAB_JOBS="${LAB_JOBS:-8}"
export LAB_SCENARIOS="${LAB_SCENARIOS:-}"
export LAB_SEEDS="${LAB_SEEDS:-all}"

am=$(command -v prometheus-alertmanager || command -v alertmanager || echo "${SLUICEDEV_ALERTMANAGER:-}")
if [ -z "$am" ] || [ ! -x "$am" ]; then
  echo "lab.sh: Prometheus Alertmanager is not installed: run scripts/install-tools.sh" >&2
  exit 1
fi

cargo test --test e2e --no-run >&2

echo "# Scenario lab: sluice's default config vs Alertmanager"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "- machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "- commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml config tests || echo ' (with local changes)')"
echo "- Alertmanager: $("$am" --version 2>&1 | head -1)"
echo "- command: LAB_TIME_SCALE=$LAB_TIME_SCALE LAB_JOBS=$LAB_JOBS LAB_SCENARIOS=$LAB_SCENARIOS LAB_SEEDS=$LAB_SEEDS load-tests/lab.sh"
echo

start=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! cargo test -q --test e2e scenarios::alertmanager::alertmanager_comparison \
    -- --ignored --exact --nocapture >"$log"; then
  cat "$log" >&2
  echo "lab.sh: the comparison failed" >&2
  exit 1
fi
# The report without the test harness' own lines.
grep -v -E '^(running [0-9]+ tests?$|test result:|test scenarios::|\.+$)' "$log"
echo
echo "(lab.sh took $(( $(date +%s) - start )) s after the build)"
