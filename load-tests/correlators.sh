#!/usr/bin/env bash
# Kafka mode: 1, 2 and 3 correlator processes working off the same backlog on one broker. An
# ingest-only sluice fills the events topic (PagerDuty events over 48 routing keys, so every
# partition gets some, each event a new alert) for $LOAD seconds; then, for K = 1, 2, 3, K
# correlate-only processes of a fresh consumer group start together and the time until they
# have consumed every record of the topic is measured (rebalances and restores included, as
# they happen when instances start). Prints a markdown report. Not part of CI.
#
#   load-tests/correlators.sh            # LOAD=10, about 2 minutes
set -euo pipefail

LOAD=${LOAD:-10}
CONNS=${CONNS:-16}
PORT=${SLUICEDEV_PORT:-18480}
TANSU_PORT=${TANSU_PORT:-18492}

here=$(cd "$(dirname "$0")" && pwd)
name=correlators
# shellcheck source=load-tests/kafka-lib.sh
. "$here/kafka-lib.sh"

python3 - "$work/bodies.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(48):
        f.write(json.dumps({
            "routing_key": f"svc-{i:02d}", "event_action": "trigger",
            "dedup_key": f"k-{i}-@@N@@",
            "payload": {"summary": "disk full", "source": f"host-{i % 7}", "severity": "error"},
        }) + "\n")
PY

start_tansu "$TANSU_PORT"

config() { # group
  cat "$here/sluice.toml"
  printf '[pipeline]\ngroup_id = "%s"\nstate_topic = "sluice.state.%s"\nsnapshot_interval = "1h"\n' "$1" "$1"
}
config fill >"$work/fill.toml"
SLUICE_LISTEN="127.0.0.1:$PORT" SLUICE_KAFKA_BROKERS="127.0.0.1:$TANSU_PORT" SLUICE_PIPELINE=kafka \
  SLUICE_ROLES=ingest "$sluice_bin" serve --config "$work/fill.toml" >"$work/ingest.log" 2>&1 &
ingest_pid=$!
pids+=("$ingest_pid")
wait_ready "http://127.0.0.1:$PORT/readyz" "$work/ingest.log"
say "filling the events topic for ${LOAD}s"
fill=$(LT_BODIES="$work/bodies.jsonl" LT_PATH=/v2/enqueue LT_RUN="fill$$" \
  wrk -t1 -c"$CONNS" -d"${LOAD}s" -s "$here/bodies.lua" "http://127.0.0.1:$PORT" 2>&1 | grep '^LT_RESULT')
kill "$ingest_pid"; wait "$ingest_pid" 2>/dev/null || true
events=$(sed 's/.*requests=\([0-9]*\) .*non2xx=\([0-9]*\) .*/\1 \2/' <<<"$fill" | awk '{print $1 - $2}')
records=$("$sluice_bin" tail --brokers "127.0.0.1:$TANSU_PORT" --topic sluice.events --format json \
  --idle-exit 3s --repeats 2>/dev/null | wc -l)
say "$events events accepted, $records events-topic messages"

metric_sum() { # name port...
  local name=$1 total=0 v
  shift
  for port in "$@"; do
    v=$(curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null | awk -v n="$name" '$1 == n {print $2}')
    total=$(python3 -c "print(int($total + float(${v:-0})))")
  done
  echo "$total"
}

echo "# Kafka mode: correlators working off a backlog"
echo
report_header
echo "- backlog: $events events in $records events-topic messages over 12 partitions (48 routing keys)"
echo "- command: LOAD=$LOAD CONNS=$CONNS load-tests/correlators.sh"
echo
echo "| correlators | seconds to consume the backlog | events/s | restore records (rebalances) |"
echo "|---|---|---|---|"
for k in 1 2 3; do
  config "bench-$k" >"$work/c$k.toml"
  ports=()
  started=$(date +%s.%N)
  for i in $(seq 1 "$k"); do
    port=$((PORT + i))
    ports+=("$port")
    SLUICE_LISTEN="127.0.0.1:$port" SLUICE_KAFKA_BROKERS="127.0.0.1:$TANSU_PORT" SLUICE_PIPELINE=kafka \
      SLUICE_ROLES=correlate SLUICE_INSTANCE="c$k-$i" "$sluice_bin" serve --config "$work/c$k.toml" \
      >"$work/c$k-$i.log" 2>&1 &
    pids+=($!)
  done
  deadline=$(( $(date +%s) + 300 ))
  while :; do
    done_records=$(metric_sum sluice_event_records_consumed_total "${ports[@]}")
    restored=$(metric_sum sluice_restore_records_total "${ports[@]}")
    # Records restored by a later owner were consumed before by an earlier one.
    [ "$done_records" -ge "$records" ] && break
    [ "$(date +%s)" -lt "$deadline" ] || { echo "| $k | did not finish in 300 s | | |"; break; }
    sleep 0.2
  done
  secs=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
  eps=$(python3 -c "print(f'{$events / $secs:,.0f}')")
  echo "| $k | $secs | $eps | $restored |"
  for p in "${pids[@]:2}"; do kill "$p" 2>/dev/null || true; done
  wait "${pids[@]:2}" 2>/dev/null || true
  pids=("${pids[@]:0:2}")
done
echo
echo "Seconds include starting the processes, joining the group and the rebalances as the K"
echo "processes join; on 2 cores the K processes share the same two cores with the broker. Done"
echo "means the records consumed live, summed over the K processes, reach the topic's count: a"
echo "record consumed twice across a rebalance counts twice, which flatters K > 1 slightly."
