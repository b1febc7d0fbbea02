#!/usr/bin/env bash
# Ingest through Kafka mode against memory mode, measured side by side in one run: the same
# sluice binary, the same config (load-tests/sluice.toml) and the same broker (tansu in its own
# process, fresh for every run), 50-alert Alertmanager API batches of new alerts
# (gen.py's s2_api50_new), closed loop `wrk -t1 -c$CONNS -d${DURATION}s`, $REPS alternating
# repetitions. Memory mode answers once the shard queue has the events; Kafka mode once the
# events topic has them (acks=all, idempotent), so the ratio is what durability costs at the
# door. Prints a markdown report (machine, commit and command on top). Not part of CI.
#
#   load-tests/kafka-mode.sh                 # REPS=3 DURATION=10, about 2 minutes
set -euo pipefail

REPS=${REPS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-16}
PORT=${SLUICEDEV_PORT:-18280}
TANSU_PORT=${TANSU_PORT:-18292}

here=$(cd "$(dirname "$0")" && pwd)
name=kafkamode
# shellcheck source=load-tests/kafka-lib.sh
. "$here/kafka-lib.sh"
python3 "$here/gen.py" "$work" >&2
bodies="$work/s2_api50_new.jsonl"

run() { # mode rep
  local mode=$1 rep=$2
  start_tansu "$TANSU_PORT"
  SLUICE_LISTEN="127.0.0.1:$PORT" SLUICE_KAFKA_BROKERS="127.0.0.1:$TANSU_PORT" \
    SLUICE_PIPELINE="$mode" "$sluice_bin" serve --config "$here/sluice.toml" >"$work/server.log" 2>&1 &
  local server_pid=$!
  pids+=("$server_pid")
  wait_ready "http://127.0.0.1:$PORT/readyz" "$work/server.log"
  local line
  line=$(LT_BODIES="$bodies" LT_PATH=/api/v2/alerts LT_RUN="$mode-$rep-$$" \
    wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$here/bodies.lua" "http://127.0.0.1:$PORT" 2>&1 |
    grep '^LT_RESULT')
  kill "$server_pid" "$tansu_pid" 2>/dev/null || true
  wait "$server_pid" "$tansu_pid" 2>/dev/null || true
  echo "$mode $rep $(sed 's/[a-z0-9_]*=//g; s/^LT_RESULT //' <<<"$line")" >>"$work/results"
  say "$mode rep $rep: $line"
}

for rep in $(seq 1 "$REPS"); do
  run memory "$rep"
  run kafka "$rep"
done

echo "# Ingest: Kafka mode against memory mode"
echo
report_header
echo "- a fresh broker for every run"
echo "- command: REPS=$REPS DURATION=$DURATION CONNS=$CONNS load-tests/kafka-mode.sh"
echo
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
# mode rep requests duration_us non2xx socket_errors p50_us p99_us
by = {}
for r in rows:
    mode, rep, req, dur, non2xx, sock, p50, p99 = r[:8]
    # Goodput: events of requests answered 2xx (memory mode sheds load with 503 when its
    # queues are full; those events are not counted).
    eps = (int(req) - int(non2xx)) * 50 / (int(dur) / 1e6)
    by.setdefault(mode, []).append((eps, int(non2xx), int(sock), int(p50) / 1000, int(p99) / 1000))
print("| mode | accepted events/s (median, min-max) | non-2xx answers | p50 ms | p99 ms (at saturation, median) |")
print("|---|---|---|---|---|")
for mode in ("memory", "kafka"):
    runs = by.get(mode, [])
    eps = [r[0] for r in runs]
    print(f"| {mode} | {statistics.median(eps):,.0f} ({min(eps):,.0f}-{max(eps):,.0f}) | "
          f"{sum(r[1] for r in runs)} | {statistics.median(r[3] for r in runs):.2f} | "
          f"{statistics.median(r[4] for r in runs):.2f} |")
m, k = statistics.median(r[0] for r in by["memory"]), statistics.median(r[0] for r in by["kafka"])
print()
print(f"Kafka mode / memory mode: {k / m:.2f}x accepted events/s (the goal is at least 0.5x).")
print()
print("p99 per run (ms): " + ", ".join(f"{mode} {r[4]:.1f}" for mode in ("memory", "kafka") for r in by[mode]))
PY
