#!/usr/bin/env bash
# RSS per open alert of one sluice binary, as compare.sh's RSS phase measures it (the same
# corpus, config and real broker), without Alertmanager and without building: for comparing
# builds and allocator settings quickly. One run; run it several times, RSS varies by ~10 %.
#
#   load-tests/rss-probe.sh BINARY [NAME=VALUE ...]    # e.g. MIMALLOC_PURGE_DELAY=0
#
# Prints the RSS 3, 10 and 30 seconds after the last batch was answered. Listens on 127.0.0.1
# only, stops what it started, gives up after 120 s. Needs tansu (scripts/install-tools.sh).
set -euo pipefail

bin=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-rss.XXXXXX")
port=${SLUICEDEV_PORT:-18280}
broker_port=${TANSU_PORT:-18292}
alerts=${RSS_ALERTS:-100096}
tansu_bin=${SLUICEDEV_TANSU:-$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
( sleep 120; echo "rss-probe: gave up after 120 s" >&2; kill -TERM $$ ) & pids+=($!)

python3 "$here/gen.py" "$work/corpus" >/dev/null
RUST_LOG=warn "$tansu_bin" broker --storage-engine memory://tansu/ \
  --listener-url "tcp://127.0.0.1:$broker_port" \
  --advertised-listener-url "tcp://127.0.0.1:$broker_port" >"$work/broker.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do (: >"/dev/tcp/127.0.0.1/$broker_port") 2>/dev/null && break; sleep 0.1; done
env "$@" SLUICE_LISTEN="127.0.0.1:$port" SLUICE_KAFKA_BROKERS="127.0.0.1:$broker_port" \
  "$bin" serve --config "$here/sluice.toml" >"$work/server.log" 2>&1 &
server=$!
pids+=($server)
for _ in $(seq 1 150); do curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.2; done
sleep 1
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$server/status"; }
rss0=$(rss)
python3 "$here/post.py" "http://127.0.0.1:$port/api/v2/alerts" "$work/corpus/rss_api256.jsonl" \
  $(((alerts + 255) / 256)) probe
held=$(curl -fs "http://127.0.0.1:$port/metrics" | awk '/^sluice_alerts_open / { print $2 }')
waited=0
for at in 3 10 30; do
  sleep $((at - waited))
  waited=$at
  rss1=$(rss)
  echo "after ${at}s: held=$held rss_before_kib=$rss0 rss_after_kib=$rss1 bytes_per_open_alert=$(((rss1 - rss0) * 1024 / held))"
done
