#!/usr/bin/env bash
# Ingest through Kafka mode against memory mode, measured side by side in one run: the same
# sluice binary, the same config (load-tests/sluice.toml) and the same broker (tansu in its own
# process, fresh for every run), 50-alert Alertmanager API batches of new alerts
# (gen.py's s2_api50_new), closed loop `wrk -t1 -c$CONNS -d${DURATION}s`, $REPS alternating
# repetitions. Memory mode answers once the shard queue has the events; Kafka mode once the
# events topic has them (acks=all, idempotent), so the ratio is what durability costs at the
# door. Then latency at a fixed rate, half of Kafka mode's median maximum, open loop
# (`oha -q RATE --latency-correction`, $RATE_REPS alternating repetitions of $RATE_DURATION s):
# memory mode, Kafka mode, and the floor under Kafka mode, a bare librdkafka produce-and-ack
# round trip of the same record with sluice's producer settings at the same rate
# (examples/produce_round_trip.rs), alone and with a plain consumer reading the topic meanwhile
# (as Kafka mode's correlator reads what its ingest writes). Prints a markdown report (machine, commit and command on
# top). Not part of CI.
#
#   load-tests/kafka-mode.sh                 # REPS=3 DURATION=10 RATE_REPS=3 RATE_DURATION=15, about 5 minutes
set -euo pipefail

REPS=${REPS:-3}
DURATION=${DURATION:-10}
RATE_REPS=${RATE_REPS:-3}
RATE_DURATION=${RATE_DURATION:-15}
CONNS=${CONNS:-16}
PORT=${SLUICEDEV_PORT:-18280}
TANSU_PORT=${TANSU_PORT:-18292}

here=$(cd "$(dirname "$0")" && pwd)
name=kafkamode
# shellcheck source=load-tests/kafka-lib.sh
. "$here/kafka-lib.sh"
python3 "$here/gen.py" "$work" >&2
bodies="$work/s2_api50_new.jsonl"
# oha sends the lines as they are: each request a batch of 50 alerts, drawn from 200.
sed 's/@@N@@/rate/g' "$bodies" >"$work/rate_x50.jsonl"
oha_bin=$(command -v oha || echo "${CARGO_HOME:-$HOME/.cargo}/bin/oha")
if [ ! -x "$oha_bin" ]; then
  say "installing oha (cargo install oha --locked; about 5 minutes on 2 cores)"
  (cd / && env -u CARGO_TARGET_DIR cargo install oha --locked >&2)
fi
say "building the bare produce round trip (release)"
(cd "$root" && cargo build --release --example produce_round_trip >&2)
round_trip_bin="$CARGO_TARGET_DIR/release/examples/produce_round_trip"

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

# Half of Kafka mode's median maximum, in requests per second.
rate=$(python3 - "$work/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.startswith("kafka ")]
rps = [(int(r[2]) - int(r[4])) / (int(r[3]) / 1e6) for r in rows]
print(max(1, int(statistics.median(rps) / 2)))
PY
)
: >"$work/rate"
rate_run() { # what rep
  local what=$1 rep=$2
  start_tansu "$TANSU_PORT"
  if [ "$what" = bare ] || [ "$what" = bare_read ]; then
    local consume=""
    [ "$what" = bare_read ] && consume=consume
    line=$("$round_trip_bin" "127.0.0.1:$TANSU_PORT" sluice.events 12 "$work/rate_x50.jsonl" "$rate" "$RATE_DURATION" $consume)
    echo "$what $rep $(sed 's/[a-z0-9_]*=//g; s/^LT_PRODUCE //' <<<"$line")" >>"$work/rate"
  else
    SLUICE_LISTEN="127.0.0.1:$PORT" SLUICE_KAFKA_BROKERS="127.0.0.1:$TANSU_PORT" \
      SLUICE_PIPELINE="$what" "$sluice_bin" serve --config "$here/sluice.toml" >"$work/server.log" 2>&1 &
    local server_pid=$!
    pids+=("$server_pid")
    wait_ready "http://127.0.0.1:$PORT/readyz" "$work/server.log"
    "$oha_bin" --no-tui --output-format json -z "${RATE_DURATION}s" -q "$rate" --latency-correction \
      -c "$CONNS" -m POST -H 'Content-Type: application/json' -Z "$work/rate_x50.jsonl" \
      "http://127.0.0.1:$PORT/api/v2/alerts" >"$work/oha.json"
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    python3 - "$work/oha.json" "$what" "$rep" >>"$work/rate" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
bad = sum(n for c, n in codes.items() if not c.startswith("2")) + sum(r.get("errorDistribution", {}).values())
print(sys.argv[2], sys.argv[3], sum(codes.values()), bad, int(p["p50"] * 1e6), int(p["p99"] * 1e6), "-")
PY
  fi
  kill "$tansu_pid" 2>/dev/null || true
  wait "$tansu_pid" 2>/dev/null || true
  say "rate $what rep $rep: $(tail -1 "$work/rate")"
}
for rep in $(seq 1 "$RATE_REPS"); do
  for what in memory kafka bare bare_read; do
    rate_run "$what" "$rep"
  done
done

echo "# Ingest: Kafka mode against memory mode"
echo
report_header
echo "- a fresh broker for every run"
echo "- command: REPS=$REPS DURATION=$DURATION CONNS=$CONNS RATE_REPS=$RATE_REPS RATE_DURATION=$RATE_DURATION load-tests/kafka-mode.sh"
echo "- $("$oha_bin" --version | head -1)"
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
echo
echo "### Latency at $rate requests/s (half of Kafka mode's median maximum), open loop"
echo
python3 - "$work/rate" <<'PY'
import statistics, sys
# what rep requests errors p50_us p99_us record_bytes
by = {}
for l in open(sys.argv[1]):
    what, rep, req, err, p50, p99, size = l.split()[:7]
    by.setdefault(what, []).append((int(req), int(err), int(p50) / 1000, int(p99) / 1000, size))
names = {"memory": "memory mode (oha)", "kafka": "Kafka mode (oha)",
         "bare": "bare librdkafka produce round trip",
         "bare_read": "the same, a plain consumer reading the topic meanwhile"}
print("| path | requests | errors / non-2xx | p50 ms (median) | p99 ms (median) | p99 per run |")
print("|---|---|---|---|---|---|")
for what in ("memory", "kafka", "bare", "bare_read"):
    runs = by.get(what, [])
    if not runs:
        continue
    print(f"| {names[what]} | {sum(r[0] for r in runs)} | {sum(r[1] for r in runs)} | "
          f"{statistics.median(r[2] for r in runs):.2f} | {statistics.median(r[3] for r in runs):.2f} | "
          + ", ".join(f"{r[3]:.1f}" for r in runs) + " |")
size = next((r[4] for r in by.get("bare", []) if r[4] != "-"), "?")
print()
print(f"The bare round trip produces one {size}-byte record per request (the 50 events of a batch in"
      " the wire format), with sluice's producer settings.")
PY
