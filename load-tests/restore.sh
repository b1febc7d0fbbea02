#!/usr/bin/env bash
# Restoring a Kafka mode partition that holds OPEN open alerts (default 100000), measured in one
# run against a plain consumer reading the same records: tansu in its own process (memory
# engine), one events partition, 50-alert Alertmanager API batches of new alerts (gen.py's
# s2_api50_new, one record of 50 events each). Three figures:
#   1. restore from history (no snapshot): every record replayed through the correlator;
#   2. `sluice tail --max N` reading the same records (a librdkafka consumer that prints each
#      message to /dev/null): the plain consumer the restore is compared with;
#   3. restore from a snapshot (written after the alerts were in): what a restart costs.
#   4. `sluice migrate` of that partition to 4 partitions of new topics, and the restore of the
#      migrated state by an instance of the new config.
# Prints a markdown report (machine, commit and command on top). Not part of CI.
#
#   load-tests/restore.sh                 # OPEN=100000, about 2 minutes
set -euo pipefail

OPEN=${OPEN:-100000}
PORT=${SLUICEDEV_PORT:-18380}
TANSU_PORT=${TANSU_PORT:-18392}

here=$(cd "$(dirname "$0")" && pwd)
name=restore
# shellcheck source=load-tests/kafka-lib.sh
. "$here/kafka-lib.sh"
python3 "$here/gen.py" "$work" >&2
bodies="$work/s2_api50_new.jsonl"
requests=$((OPEN / 50))
url="http://127.0.0.1:$PORT"

config() { # snapshot_interval
  cat "$here/sluice.toml"
  printf '\n[pipeline]\npartitions = 1\nsnapshot_interval = "%s"\n' "$1"
}
config 1h >"$work/history.toml"
config 2s >"$work/snapshot.toml"
{
  cat "$here/sluice.toml"
  printf '\n[pipeline]\npartitions = 4\nsnapshot_interval = "1h"\n'
  printf 'events_topic = "sluice.events.4"\nstate_topic = "sluice.state.4"\ngroup_id = "sluice-correlators.4"\n'
} >"$work/migrated.toml"

serve() { # config file; sets server_pid
  SLUICE_LISTEN="127.0.0.1:$PORT" SLUICE_KAFKA_BROKERS="127.0.0.1:$TANSU_PORT" SLUICE_PIPELINE=kafka \
    SLUICE_LOG_LEVEL=info \
    "$sluice_bin" serve --config "$1" >>"$work/server.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  wait_ready "$url/readyz" "$work/server.log"
}

metric() { # name: its value, summed over label sets
  curl -fsS "$url/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { print s + 0 }'
}

wait_metric() { # name value
  for _ in $(seq 1 600); do
    [ "$(metric "$1")" = "$2" ] && return 0
    sleep 0.2
  done
  echo "$1 never reached $2 (at $(metric "$1"))" >&2
  exit 1
}

stop() {
  kill -TERM "$server_pid"
  wait "$server_pid" 2>/dev/null || true
}

start_tansu "$TANSU_PORT"
say "filling one partition with $OPEN open alerts ($requests requests)"
serve "$work/history.toml"
python3 "$here/post.py" "$url/api/v2/alerts" "$bodies" "$requests" restore >&2
wait_metric sluice_alerts_open "$OPEN"
stop

say "restore from history"
serve "$work/history.toml"
history_s=$(metric sluice_restore_duration_seconds_sum)
history_records=$(metric sluice_restore_records_total)
history_open=$(metric sluice_alerts_open)
stop
if [ "${history_records%.*}" -eq 0 ]; then
  cp "$work/server.log" /tmp/sluice-restore-server.log
  echo "the restore replayed no records: nothing to compare (log: /tmp/sluice-restore-server.log)" >&2
  exit 1
fi

say "a plain consumer reading the same records"
start_ns=$(date +%s%N)
"$sluice_bin" tail --brokers "127.0.0.1:$TANSU_PORT" --topic sluice.events --from beginning \
  --max "$history_records" --format text >/dev/null
plain_s=$(awk -v ns="$(( $(date +%s%N) - start_ns ))" 'BEGIN { printf "%.3f", ns / 1e9 }')

say "snapshot, then restore from it"
serve "$work/snapshot.toml"
wait_metric sluice_snapshots_written_total 1
snapshot_bytes=$(metric sluice_snapshot_bytes_total)
stop
serve "$work/snapshot.toml"
snapshot_s=$(metric sluice_restore_duration_seconds_sum)
snapshot_records=$(metric sluice_restore_records_total)
snapshot_open=$(metric sluice_alerts_open)
stop

say "migrate to 4 partitions, then restore the migrated state"
start_ns=$(date +%s%N)
SLUICE_KAFKA_BROKERS="127.0.0.1:$TANSU_PORT" SLUICE_PIPELINE=kafka \
  "$sluice_bin" migrate --from "$work/snapshot.toml" --to "$work/migrated.toml" 2>>"$work/migrate.log"
migrate_s=$(awk -v ns="$(( $(date +%s%N) - start_ns ))" 'BEGIN { printf "%.3f", ns / 1e9 }')
cat "$work/migrate.log" >&2
serve "$work/migrated.toml"
migrated_s=$(metric sluice_restore_duration_seconds_sum)
migrated_open=$(metric sluice_alerts_open)
stop

echo "# Restoring a partition of $OPEN open alerts"
echo
report_header
echo "- command: OPEN=$OPEN load-tests/restore.sh"
echo
python3 - "$OPEN" "$history_records" "$history_s" "$history_open" "$plain_s" \
  "$snapshot_records" "$snapshot_s" "$snapshot_open" "$snapshot_bytes" \
  "$migrate_s" "$migrated_s" "$migrated_open" <<'PY'
import sys
opened, h_rec, h_s, h_open, plain_s, s_rec, s_s, s_open, s_bytes, m_s, mr_s, m_open = sys.argv[1:]
m_s, mr_s, m_open = float(m_s), float(mr_s), int(float(m_open))
opened, h_rec, h_open, s_rec, s_open = map(lambda v: int(float(v)), (opened, h_rec, h_open, s_rec, s_open))
h_s, plain_s, s_s = float(h_s), float(plain_s), float(s_s)
print("| read | records (50 events each) | seconds | records/s | open alerts after |")
print("|---|---|---|---|---|")
print(f"| restore from history | {h_rec} | {h_s:.2f} | {h_rec / h_s:,.0f} | {h_open} |")
print(f"| plain consumer (`sluice tail`) | {h_rec} | {plain_s:.2f} | {h_rec / plain_s:,.0f} | |")
print(f"| restore from a snapshot ({float(s_bytes) / 1e6:.1f} MB) | {s_rec} after it | {s_s:.2f} | | {s_open} |")
print(f"| `sluice migrate` to 4 partitions (whole command) | | {m_s:.2f} | | |")
print(f"| restore of the migrated state (4 snapshots, summed) | 0 | {mr_s:.2f} | | {m_open} |")
print()
print(f"Restore from history reads at {plain_s / h_s:.2f}x the plain consumer's records/s (goal >= 0.5x).")
PY
