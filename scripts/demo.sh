#!/usr/bin/env bash
# Quick start: builds sluice, runs it, posts a burst of PagerDuty events, and shows the
# incidents that came out of Kafka, with the count of events in and incidents out.
#
#   scripts/demo.sh                 # embedded in-memory broker: works in minutes, not durable
#   scripts/demo.sh --real-broker   # a tansu broker in its own process (installed if missing)
#
# Its own knobs are SLUICEDEV_DEMO_PORT (18080), SLUICEDEV_DEMO_KAFKA_PORT (19092) and
# SLUICEDEV_DEMO_BIN (a sluice binary to run instead of building one; the tests use it):
# SLUICE_* variables are sluice's config overrides, and sluice refuses one it does not know.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=embedded
[ "${1:-}" = "--real-broker" ] && mode=real

port=${SLUICEDEV_DEMO_PORT:-18080}
url="http://127.0.0.1:$port"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${SLUICEDEV_DEMO_BIN:-}" ]; then
  bin=$SLUICEDEV_DEMO_BIN
else
  echo "==> building sluice (release)"
  cargo build --release --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/sluice"
fi

if [ "$mode" = real ]; then
  scripts/install-tools.sh
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
  kport=${SLUICEDEV_DEMO_KAFKA_PORT:-19092}
  echo "==> starting tansu on 127.0.0.1:$kport (in-memory storage, its own process)"
  RUST_LOG=warn tansu broker --storage-engine memory://tansu/ \
    --listener-url "tcp://127.0.0.1:$kport" --advertised-listener-url "tcp://127.0.0.1:$kport" \
    >"$work/tansu.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$kport") 2>/dev/null && break; sleep 0.1; done
  export SLUICE_KAFKA_BROKERS="127.0.0.1:$kport"
fi

echo "==> starting sluice on $url (config/sluice.toml)"
SLUICE_LISTEN="127.0.0.1:$port" "$bin" serve --config config/sluice.toml 2>"$work/sluice.log" &
sluice_pid=$!
pids+=($sluice_pid)
for _ in $(seq 200); do
  curl -fs "$url/readyz" >/dev/null 2>&1 && break
  if ! kill -0 "$sluice_pid" 2>/dev/null; then
    echo "sluice exited before it was ready; its log:" >&2
    cat "$work/sluice.log" >&2
    exit 1
  fi
  sleep 0.1
done
curl -fs "$url/readyz" >/dev/null || { echo "sluice not ready after 20 s; its log:" >&2; cat "$work/sluice.log" >&2; exit 1; }
brokers=${SLUICE_KAFKA_BROKERS:-$(grep -o 'bootstrap="[^"]*"' "$work/sluice.log" | head -1 | cut -d'"' -f2)}
echo "    incidents go to Kafka at $brokers"

echo "==> a storm: 400 triggers, 40 distinct alerts on 4 hosts"
"$bin" send --url "$url" --routing-key demo-service --count 400 --keys 40 --sources 4
wait_s=$(grep -m1 '^group_wait' config/sluice.toml | grep -o '[0-9]*')
echo "==> waiting out group_wait (${wait_s}s) while sluice collects the storm"
sleep $((wait_s + 1))
echo "==> the problem is fixed: resolving all 40 alerts"
"$bin" send --url "$url" --routing-key demo-service --count 40 --keys 40 --sources 4 --action resolve

echo "==> what a Kafka consumer reads (sluice tail --brokers $brokers)"
"$bin" tail --brokers "$brokers" --idle-exit 3s --format json >"$work/tail.jsonl"
curl -fs "$url/metrics" >"$work/metrics.txt"
python3 - "$work/tail.jsonl" "$work/metrics.txt" <<'PY'
import json, sys
# Incidents only: each sluice instance also writes a liveness record there now and then.
msgs = [m for m in map(json.loads, open(sys.argv[1])) if "incident_id" in m["value"]]
events_in = sum(float(l.split()[-1]) for l in open(sys.argv[2]) if l.startswith("sluice_events_received_total"))
print(f"    {'type':9} {'seq':>3}  {'incident_id':38} {'group_key':22} {'alerts':>6} {'events':>6}  status")
for m in msgs:
    v = m["value"]
    print(f"    {v['type']:9} {v['seq']:>3}  {v['incident_id']:38} {json.dumps(v['group_key']):22} "
          f"{v['alert_count']:>6} {v['event_count']:>6}  {v['status']}")
if msgs:
    m = msgs[0]
    print("\n    one message in full: key =", m["key"])
    print("    headers:", json.dumps(m["headers"]))
    v = dict(m["value"]); v["alerts"] = v["alerts"][:2] + (["..."] if len(v["alerts"]) > 2 else [])
    print("    body:", json.dumps(v, indent=2).replace("\n", "\n    "))
incidents = {m["value"]["incident_id"] for m in msgs}
print(f"\n==> events in: {events_in:.0f} (sluice_events_received_total)   incidents out: {len(incidents)}"
      f"   messages on the topic: {len(msgs)}")
PY

echo "==> SIGTERM: sluice drains, publishes what is pending, flushes Kafka"
kill -TERM "$sluice_pid"
wait "$sluice_pid" && echo "    sluice exited cleanly" || { echo "    sluice exit code $?"; tail -5 "$work/sluice.log"; exit 1; }
