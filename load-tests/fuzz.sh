#!/usr/bin/env bash
# Long fuzz runs that add to the committed corpora (fuzz/README.md). Resumable: every run
# starts from fuzz/corpus/<target>/ (plus the seeds made from the golden fixtures, the example
# config and the README), minimizes what it found back into it (`cargo fuzz cmin` on edge
# coverage), and appends one row per target to fuzz/RESULTS.md, whose totals table it
# rewrites. Commit the corpus, any crash file under fuzz/artifacts/ and RESULTS.md afterwards.
#
#   TARGETS="format wire config router signatures" SECS=600 load-tests/fuzz.sh
#
# SECS is each target's fuzzing time (libFuzzer's -max_total_time); UNIT_TIMEOUT (default 10)
# the seconds one input may take before libFuzzer reports it as a timeout. One fuzzing
# process at a time, at nice 19. A crash stops its target (libFuzzer's way): the row counts
# it, the input is in fuzz/artifacts/<target>/, and the other targets still run.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGETS="${TARGETS:-format wire config router signatures}"
SECS="${SECS:-600}"
UNIT_TIMEOUT="${UNIT_TIMEOUT:-10}"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
RESULTS=fuzz/RESULTS.md
SEEDS="$PWD/fuzz/target/seeds"
LOGS=fuzz/target/logs

command -v cargo-fuzz >/dev/null || nice -n 19 cargo +nightly install cargo-fuzz
# cargo fuzz at nice 19, always in fuzz/target: a CARGO_TARGET_DIR meant for the main build
# (the seeds' test honours it) would put the sanitizer build there, under that build's lock.
fuzz() { env -u CARGO_TARGET_DIR nice -n 19 cargo +nightly fuzz "$@"; }

# The seeds, regenerated so that a new fixture joins the corpus (the ordinary test writes them).
rm -rf "$SEEDS"
SLUICEDEV_FUZZ_SEEDS="$SEEDS" nice -n 19 cargo test -q --lib fuzzing::tests::seeds_never_panic >&2
fuzz build >&2
mkdir -p "$LOGS"

count() { find "$1" -maxdepth 1 -type f 2>/dev/null | wc -l; }

# Rewrites the totals between the markers from every run row (rows start with "| 20").
totals() {
  local table
  table=$(mktemp)
  awk -F'|' '
    /^\| 20/ {
      t = $4; gsub(/ /, "", t)
      if (!(t in runs)) order[n++] = t
      runs[t]++; secs[t] += $5; execs[t] += $6; crashes[t] += $9
    }
    END {
      print "| target | runs | hours | executions | crashes |"
      print "|---|---:|---:|---:|---:|"
      for (i = 0; i < n; i++) {
        t = order[i]
        printf "| %s | %d | %.2f | %.0f | %d |\n", t, runs[t], secs[t] / 3600, execs[t], crashes[t]
        all_s += secs[t]; all_e += execs[t]; all_c += crashes[t]; all_r += runs[t]
      }
      printf "| all | %d | %.2f | %.0f | %d |\n", all_r, all_s / 3600, all_e, all_c
    }' "$RESULTS" >"$table"
  awk -v table="$table" '
    /<!-- totals:begin -->/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
    /<!-- totals:end -->/ { skip = 0 }
    !skip' "$RESULTS" >"$RESULTS.new"
  mv "$RESULTS.new" "$RESULTS"
  rm -f "$table"
}

if [ ! -f "$RESULTS" ]; then
  cat >"$RESULTS" <<'EOF'
# Fuzzing results

Written by `load-tests/fuzz.sh` (one row per target and run; the totals are rewritten from
the rows). Seconds and executions are libFuzzer's (`Done N runs in S second(s)`,
`stat::number_of_executed_units`; after a crash, the run's wall time), one process at nice 19;
the corpus sizes are files before the run and after `cmin`.

## Totals

<!-- totals:begin -->
<!-- totals:end -->

## Runs

| started (UTC) | commit | target | seconds | executions | corpus before | corpus after | crashes |
|---|---|---|---:|---:|---:|---:|---:|
<!-- runs:end -->

## Found and fixed

EOF
fi

commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo '+')"
for t in $TARGETS; do
  corpus="fuzz/corpus/$t"
  artifacts="fuzz/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  cp -n "$SEEDS/$t"/* "$corpus/" 2>/dev/null || true
  before=$(count "$corpus")
  ls "$artifacts" >"$LOGS/$t.artifacts.before"
  started=$(date -u '+%Y-%m-%d %H:%M')
  log="$LOGS/$t-$(date -u +%Y%m%dT%H%M%S).log"
  fuzz build "$t" >&2
  echo "fuzzing $t for ${SECS}s from $before inputs (log: $log)" >&2
  start=$(date +%s)
  # -max_total_time bounds the run; timeout is only a backstop (SIGINT: libFuzzer prints its
  # final stats and exits).
  timeout --signal=INT "$((SECS + 300))" env -u CARGO_TARGET_DIR nice -n 19 cargo +nightly fuzz run "$t" "$corpus" -- \
    -max_total_time="$SECS" -timeout="$UNIT_TIMEOUT" -print_final_stats=1 >"$log" 2>&1 || true
  # libFuzzer's own count of seconds ("Done N runs in S second(s)"); after a crash, the wall time.
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  [ -n "$secs" ] || secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  crashes=$(ls "$artifacts" | grep -cvxFf "$LOGS/$t.artifacts.before" || true)
  # Minimized on edges alone (hit counts left out): a third of the files, and a run finds the
  # counts again within minutes.
  fuzz cmin "$t" "$corpus" -- -use_counters=0 >>"$log" 2>&1
  after=$(count "$corpus")
  row="| $started | $commit | $t | $secs | ${execs:-0} | $before | $after | $crashes |"
  awk -v row="$row" '/<!-- runs:end -->/ { print row } { print }' "$RESULTS" >"$RESULTS.new"
  mv "$RESULTS.new" "$RESULTS"
  echo "$row" >&2
  if [ "$crashes" -gt 0 ]; then
    echo "$t: $crashes new file(s) in $artifacts (see $log)" >&2
  fi
done
totals
