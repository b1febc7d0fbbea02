#!/usr/bin/env bash
# Side-by-side load comparison: sluice vs Alertmanager 0.25 vs a bare hyper server (the floor),
# on loopback, with wrk (closed loop) and the corpus from gen.py. Prints one table.
#
#   load-tests/compare.sh            # REPS=5 DURATION=5 CONNS=16 by default
#
# For every repetition, every case runs once, the targets of a scenario one after the other
# (A/B alternation); each run starts its target afresh (no alerts carried over), runs
# `wrk -t1 -c$CONNS -d${DURATION}s`, and stops it. Everything listens on 127.0.0.1 only, every
# process it starts is stopped on exit, and the whole script gives up after $DEADLINE seconds.
# Installs wrk (Debian) when missing; Alertmanager comes from scripts/install-tools.sh.
# Not part of CI.
set -euo pipefail

REPS=${REPS:-5}
DURATION=${DURATION:-5}
CONNS=${CONNS:-16}
DEADLINE=${DEADLINE:-840}
SLUICE_PORT=${SLUICE_PORT:-18180}
FLOOR_PORT=${FLOOR_PORT:-18190}
AM_PORT=${AM_PORT:-18193}

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/sluice-perf-target}
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-loadtest.XXXXXX")
server_pid=""
watchdog_pid=""

stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}

cleanup() {
  stop_server
  if [ -n "$watchdog_pid" ]; then kill "$watchdog_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "compare.sh: interrupted" >&2; exit 130' INT TERM

# The whole run is bounded: past the deadline the watchdog stops this script (and the trap
# stops the server).
(
  sleep "$DEADLINE" &
  sleep_pid=$!
  trap 'kill "$sleep_pid" 2>/dev/null; exit 0' TERM
  wait "$sleep_pid"
  echo "compare.sh: deadline of ${DEADLINE}s reached, giving up" >&2
  kill -TERM $$
) &
watchdog_pid=$!

say() { echo "==> $*" >&2; }

# --- tools -----------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  say "installing wrk (Debian)"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if ! apt-cache show wrk >/dev/null 2>&1; then $sudo apt-get update; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk
fi
am_bin=${SLUICE_ALERTMANAGER:-$(command -v prometheus-alertmanager || command -v alertmanager || true)}
if [ -z "$am_bin" ]; then
  say "Alertmanager missing: running scripts/install-tools.sh"
  "$root/scripts/install-tools.sh"
  am_bin=$(command -v prometheus-alertmanager || command -v alertmanager)
fi

say "building sluice (release) and the floor (release, its own target dir)"
(cd "$root" && cargo build --release --quiet)
(cd "$here/floor" && CARGO_TARGET_DIR="$CARGO_TARGET_DIR/floor" cargo build --release --quiet)
sluice_bin="$CARGO_TARGET_DIR/release/sluice"
floor_bin="$CARGO_TARGET_DIR/floor/release/sluice-floor"

say "generating the corpus (fixed seed)"
python3 "$here/gen.py" "$work/corpus" >&2

# --- targets ---------------------------------------------------------------------------------
wait_ready() { # url
  for _ in $(seq 1 300); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "compare.sh: the server exited during start-up; its log:" >&2
      tail -20 "$work/server.log" >&2
      exit 1
    fi
    if curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "compare.sh: $1 not ready after 30s" >&2
  exit 1
}

start_target() { # target
  stop_server
  case $1 in
    sluice)
      SLUICE_LISTEN="127.0.0.1:$SLUICE_PORT" "$sluice_bin" serve --config "$here/sluice.toml" \
        >"$work/server.log" 2>&1 &
      server_pid=$!
      wait_ready "http://127.0.0.1:$SLUICE_PORT/readyz" ;;
    floor)
      "$floor_bin" "127.0.0.1:$FLOOR_PORT" >"$work/server.log" 2>&1 &
      server_pid=$!
      # The floor answers any POST; readiness is the port answering.
      for _ in $(seq 1 100); do
        curl -fsS -o /dev/null --max-time 1 -X POST -d '{}' "http://127.0.0.1:$FLOOR_PORT/" 2>/dev/null && break
        sleep 0.1
      done ;;
    alertmanager)
      rm -rf "$work/am-data"; mkdir -p "$work/am-data"
      "$am_bin" --config.file="$here/alertmanager.yml" --storage.path="$work/am-data" \
        --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= \
        --log.level=warn >"$work/server.log" 2>&1 &
      server_pid=$!
      wait_ready "http://127.0.0.1:$AM_PORT/-/ready" ;;
  esac
}

port_of() { case $1 in sluice) echo "$SLUICE_PORT" ;; floor) echo "$FLOOR_PORT" ;; alertmanager) echo "$AM_PORT" ;; esac; }

# Events the server itself counted (a cross-check on wrk's count), or "-".
server_count() { # target
  case $1 in
    sluice) curl -fsS --max-time 2 "http://127.0.0.1:$SLUICE_PORT/metrics" |
      awk '/^sluice_events_received_total/ {s += $2} END {printf "%d", s}' ;;
    alertmanager) curl -fsS --max-time 2 "http://127.0.0.1:$AM_PORT/metrics" |
      awk '/^alertmanager_alerts_received_total/ {s += $2} END {printf "%d", s}' ;;
    *) echo "-" ;;
  esac
}

# case: scenario target corpus-file path events-per-request
cases=(
  "1:pd-v2-1k-keys        floor        s1_pd_recurring.jsonl  /v2/enqueue 1"
  "1:pd-v2-1k-keys        sluice       s1_pd_recurring.jsonl  /v2/enqueue 1"
  "2:new-key-pd-v2        sluice       s2_pd_new.jsonl        /v2/enqueue 1"
  "2:new-key-api-x1       sluice       s2_api1_new.jsonl      /api/v2/alerts 1"
  "2:new-key-api-x1       alertmanager s2_api1_new.jsonl      /api/v2/alerts 1"
  "2:new-key-api-x50      sluice       s2_api50_new.jsonl     /api/v2/alerts 50"
  "2:new-key-api-x50      alertmanager s2_api50_new.jsonl     /api/v2/alerts 50"
  "3:am-webhook-x50       sluice       s3_webhook50.jsonl     /integrations/alertmanager_webhook/loadtest 50"
  "3:am-webhook-x50       alertmanager s3_api50.jsonl         /api/v2/alerts 50"
  "3:am-webhook-x250      sluice       s3_webhook250.jsonl    /integrations/alertmanager_webhook/loadtest 250"
  "3:am-webhook-x250      alertmanager s3_api250.jsonl        /api/v2/alerts 250"
)

# Every target must accept every body it is given before anything is measured.
say "checking that every target accepts its bodies"
for c in "${cases[@]}"; do
  read -r scenario target file path _ <<<"$c"
  start_target "$target"
  body=$(head -1 "$work/corpus/$file" | sed 's/@@N@@/check/g')
  code=$(curl -sS -o "$work/check.out" -w '%{http_code}' --max-time 5 -X POST \
    -H 'Content-Type: application/json' --data-binary @- "http://127.0.0.1:$(port_of "$target")$path" <<<"$body")
  if [ "${code:0:1}" != 2 ]; then
    echo "compare.sh: $target answered $code to $scenario on $path: $(head -c 300 "$work/check.out")" >&2
    exit 1
  fi
done
stop_server

results="$work/results.tsv"
: >"$results"
total=$((REPS * ${#cases[@]}))
n=0
for rep in $(seq 1 "$REPS"); do
  for c in "${cases[@]}"; do
    read -r scenario target file path events <<<"$c"
    n=$((n + 1))
    start_target "$target"
    say "[$n/$total] rep $rep: $target, scenario $scenario"
    out=$(LT_BODIES="$work/corpus/$file" LT_PATH="$path" LT_RUN="r$rep$RANDOM" \
      timeout $((DURATION + 30)) wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s \
      -s "$here/bodies.lua" "http://127.0.0.1:$(port_of "$target")" 2>&1) || {
      echo "compare.sh: wrk failed: $out" >&2
      exit 1
    }
    line=$(grep '^LT_RESULT' <<<"$out") || { echo "compare.sh: no result from wrk: $out" >&2; exit 1; }
    counted=$(server_count "$target" || echo "-")
    stop_server
    # shellcheck disable=SC2001
    echo "$target $scenario $rep $events $counted $(sed 's/[a-z0-9_]*=//g; s/^LT_RESULT //' <<<"$line")" >>"$results"
  done
done

say "done: $REPS repetitions x ${#cases[@]} cases, wrk -t1 -c$CONNS -d${DURATION}s each"
python3 - "$results" <<'PY'
import statistics, sys
from collections import OrderedDict

rows = OrderedDict()
for line in open(sys.argv[1]):
    target, scenario, rep, events, counted, req, dur_us, non2xx, sockerr, p50, p99 = line.split()
    secs = int(dur_us) / 1e6
    ok = int(req) - int(non2xx)
    rows.setdefault((scenario, target), []).append(dict(
        rps=int(req) / secs, eps=ok * int(events) / secs, p50=int(p50) / 1000, p99=int(p99) / 1000,
        bad=int(non2xx) + int(sockerr), sent=ok * int(events),
        counted=None if counted == "-" else int(counted)))

def num(x):
    return "%.0f" % x if x < 1000 else ("%.1fk" % (x / 1000) if x < 10**6 else "%.2fM" % (x / 10**6))

hdr = ("scenario", "target", "req/s median (min-max)", "events/s median (min-max)",
       "p50 ms", "p99 ms", "non-2xx+errors", "server counted")
table = [hdr]
for (scenario, target), runs in rows.items():
    med = lambda k: statistics.median(r[k] for r in runs)
    rng = lambda k: "%s (%s-%s)" % (num(med(k)), num(min(r[k] for r in runs)), num(max(r[k] for r in runs)))
    counted = [r for r in runs if r["counted"] is not None]
    ck = "-" if not counted else "%d/%d runs match" % (
        sum(1 for r in counted if r["counted"] >= r["sent"]), len(counted))
    table.append((scenario, target, rng("rps"), rng("eps"), "%.2f" % med("p50"), "%.2f" % med("p99"),
                  str(sum(r["bad"] for r in runs)), ck))
widths = [max(len(row[i]) for row in table) for i in range(len(hdr))]
for i, row in enumerate(table):
    print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
    if i == 0:
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")

print()
eps = {k: statistics.median(r["eps"] for r in v) for k, v in rows.items()}
for (scenario, target), e in eps.items():
    if target == "sluice":
        for other in ("floor", "alertmanager"):
            if (scenario, other) in eps:
                print("%-22s sluice / %-12s = %.2fx (events/s medians)" % (scenario, other, e / eps[(scenario, other)]))
PY
