#!/usr/bin/env bash
# Side-by-side load comparison: sluice vs Alertmanager 0.25 vs a bare hyper server (the floor),
# on loopback, with the seeded corpus of gen.py. Prints one report (markdown tables) on stdout,
# progress on stderr. load-tests/README.md describes every scenario and column.
#
#   load-tests/compare.sh                  # the default run, about 12 minutes on 2 cores
#   REPS=1 DURATION=2 RATE_DURATION=2 load-tests/compare.sh     # a quick check of the script
#   PIN=1 load-tests/compare.sh            # server on CPU 1, load generator on CPU 0
#   PHASES="max rate" load-tests/compare.sh                     # only some phases
#
# Phases (PHASES, default all three):
#   max   closed loop, `wrk -t1 -c$CONNS -d${DURATION}s`, scenarios 1-5, $REPS alternating
#         repetitions; requests/s, events/s, latency at saturation, CPU seconds per million
#         events (utime+stime of the server process over the run), the server's own count.
#         Scenario 5 goes end to end: sluice publishes to tansu (its own process) and a Kafka
#         consumer (`sluice tail`) counts what reached the topic.
#   rate  open loop at a fixed rate, `oha -q RATE --latency-correction`, $RATE_REPS alternating
#         repetitions of ${RATE_DURATION}s: half of sluice's median maximum req/s of scenario 1
#         (sluice and the floor) and of scenario 2 x50 (sluice, and Alertmanager at the same rate
#         when its own maximum reaches it, else at half its own); p50/p99/p99.9. Needs the max
#         phase's figures (or RATE_S1 and RATE_X50 set by hand).
#   rss   RSS per open alert: each of sluice and Alertmanager started fresh, $RSS_ALERTS distinct
#         firing alerts posted to /api/v2/alerts in 256-alert batches, RSS before and after;
#         $RSS_REPS repetitions.
#
# Each run starts its target afresh (no state carried over) and stops it. Everything listens on
# 127.0.0.1 only, every process this script starts is stopped on exit or interruption, and the
# script gives up $DEADLINE seconds after its builds. Installs, when missing and only then: wrk
# (Debian), oha (cargo install --locked), Alertmanager and tansu (scripts/install-tools.sh;
# tansu's first build takes about 30 minutes). Not part of CI.
set -euo pipefail

REPS=${REPS:-5}
DURATION=${DURATION:-5}
CONNS=${CONNS:-16}
RATE_DURATION=${RATE_DURATION:-5}
RATE_REPS=${RATE_REPS:-$REPS}
RSS_ALERTS=${RSS_ALERTS:-100096}
RSS_REPS=${RSS_REPS:-3}
PIN=${PIN:-0}
PHASES=${PHASES:-max rate rss}
RATE_S1_SET=${RATE_S1:-}
RATE_X50_SET=${RATE_X50:-}
DEADLINE=${DEADLINE:-870}
SLUICEDEV_PORT=${SLUICEDEV_PORT:-18180}
FLOOR_PORT=${FLOOR_PORT:-18190}
AM_PORT=${AM_PORT:-18193}
TANSU_PORT=${TANSU_PORT:-18192}

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/sluice-perf-target}
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-loadtest.XXXXXX")
started_at=$(date +%s)
server_pid=""
broker_pid=""
client_pid=""
watchdog_pid=""

say() { echo "==> $*" >&2; }
die() { echo "compare.sh: $*" >&2; exit 1; }

stop_pid() { # pid: TERM, up to 5 s, then KILL
  local pid=$1
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
stop_server() { stop_pid "$server_pid"; server_pid=""; }
stop_broker() { stop_pid "$broker_pid"; broker_pid=""; }

cleanup() {
  stop_pid "$client_pid"
  stop_server
  stop_broker
  if [ -n "$watchdog_pid" ]; then kill "$watchdog_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "compare.sh: interrupted" >&2; exit 130' INT TERM

# Load generators run in the background and are waited for, so that an interruption or the
# deadline stops them at once (bash runs its traps only between foreground commands).
run_client() { # output-file command...
  local out=$1 rc=0
  shift
  "$@" >"$out" 2>&1 &
  client_pid=$!
  wait "$client_pid" || rc=$?
  client_pid=""
  return "$rc"
}

# Pinning (PIN=1): the server (and tansu) on CPU 1, the load generator on CPU 0. sluice sizes
# its shards and runtime threads from the CPUs it may use, so pinned it runs one of each.
srv_pin=()
cli_pin=()
if [ "$PIN" = 1 ]; then
  [ "$(nproc)" -ge 2 ] || die "PIN=1 needs 2 CPUs"
  srv_pin=(taskset -c 1)
  cli_pin=(taskset -c 0)
fi

# --- tools -----------------------------------------------------------------------------------
apt_install() { # package
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if ! apt-cache show "$1" >/dev/null 2>&1; then $sudo apt-get update; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1" >&2
}
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
if ! command -v wrk >/dev/null 2>&1; then say "installing wrk (Debian)"; apt_install wrk; fi
oha_bin=$(command -v oha || echo "$cargo_bin/oha")
if [ ! -x "$oha_bin" ]; then
  say "installing oha (cargo install oha --locked; about 5 minutes on 2 cores)"
  # Its own target directory, not the one sluice is built in.
  (cd / && env -u CARGO_TARGET_DIR cargo install oha --locked >&2)
fi
am_bin=${SLUICEDEV_ALERTMANAGER:-$(command -v prometheus-alertmanager || command -v alertmanager || true)}
tansu_bin=${SLUICEDEV_TANSU:-$(command -v tansu || echo "$cargo_bin/tansu")}
if [ -z "$am_bin" ] || [ ! -x "$tansu_bin" ]; then
  say "Alertmanager or tansu missing: running scripts/install-tools.sh"
  "$root/scripts/install-tools.sh" >&2
  am_bin=${SLUICEDEV_ALERTMANAGER:-$(command -v prometheus-alertmanager || command -v alertmanager)}
  tansu_bin=${SLUICEDEV_TANSU:-$(command -v tansu || echo "$cargo_bin/tansu")}
fi

if [ -n "${SLUICEDEV_BIN:-}" ]; then
  # A build made beforehand (comparing two commits, one run each, alternating by hand).
  [ -x "$SLUICEDEV_BIN" ] || die "SLUICEDEV_BIN=$SLUICEDEV_BIN is not an executable"
  sluice_bin=$SLUICEDEV_BIN
  say "measuring $sluice_bin; building the floor (release, its own target dir)"
else
  say "building sluice (release) and the floor (release, its own target dir)"
  (cd "$root" && cargo build --release --quiet)
  sluice_bin="$CARGO_TARGET_DIR/release/sluice"
fi
(cd "$here/floor" && CARGO_TARGET_DIR="$CARGO_TARGET_DIR/floor" cargo build --release --quiet)
floor_bin="$CARGO_TARGET_DIR/floor/release/sluice-floor"

# The measuring is bounded (installs and builds, which a fresh machine needs first, are not):
# past the deadline the watchdog stops this script (and the trap stops the server, the broker
# and the load generator).
(
  sleep "$DEADLINE" &
  sleep_pid=$!
  trap 'kill "$sleep_pid" 2>/dev/null; exit 0' TERM
  wait "$sleep_pid"
  echo "compare.sh: deadline of ${DEADLINE}s reached, giving up" >&2
  kill -TERM $$
) &
watchdog_pid=$!

say "generating the corpus (fixed seed)"
python3 "$here/gen.py" "$work/corpus" >&2
corpus="$work/corpus"

# --- the machine -----------------------------------------------------------------------------
first_line() { "$@" 2>&1 | head -1 || true; }
report="$work/report.md"
{
  echo "Machine: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), nproc $(nproc)," \
    "$(uname -sr), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "Versions: $(first_line "$sluice_bin" --version); $(first_line "$am_bin" --version);" \
    "$(first_line wrk -v | cut -d' ' -f1-2); $(first_line "$oha_bin" --version);" \
    "$(first_line "$tansu_bin" --version)"
  if [ "$PIN" = 1 ]; then
    echo "Pinned: server (and tansu) on CPU 1, load generator on CPU 0 (taskset)"
  else
    echo "Not pinned: server, broker and load generator share the $(nproc) CPUs"
  fi
  echo
} >"$report"

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
  die "$1 not ready after 30s"
}

start_broker() {
  stop_broker
  port_free "$TANSU_PORT"
  local url="tcp://127.0.0.1:$TANSU_PORT"
  RUST_LOG=warn "${srv_pin[@]}" "$tansu_bin" broker --storage-engine memory://tansu/ \
    --listener-url "$url" --advertised-listener-url "$url" >"$work/broker.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 1 300); do
    kill -0 "$broker_pid" 2>/dev/null || { tail -20 "$work/broker.log" >&2; die "tansu exited during start-up"; }
    if (: >"/dev/tcp/127.0.0.1/$TANSU_PORT") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "tansu not listening after 30s"
}

port_free() { # port
  ! (: >"/dev/tcp/127.0.0.1/$1") 2>/dev/null || die "127.0.0.1:$1 is already in use (another run?)"
}

start_target() { # target [brokers]
  stop_server
  port_free "$(port_of "$1")"
  case $1 in
    sluice)
      # With a second argument, a real broker instead of the embedded one (as the e2e harness
      # does: SLUICE_KAFKA_BROKERS, the topics created at start-up).
      # This script's own variables are SLUICEDEV_*, outside the SLUICE_* the binary reads.
      SLUICE_LISTEN="127.0.0.1:$SLUICEDEV_PORT" \
        SLUICE_KAFKA_BROKERS="${2:-embedded}" "${srv_pin[@]}" "$sluice_bin" serve \
        --config "$here/sluice.toml" >"$work/server.log" 2>&1 &
      server_pid=$!
      wait_ready "http://127.0.0.1:$SLUICEDEV_PORT/readyz" ;;
    floor)
      "${srv_pin[@]}" "$floor_bin" "127.0.0.1:$FLOOR_PORT" >"$work/server.log" 2>&1 &
      server_pid=$!
      # The floor answers any POST; readiness is the port answering.
      for _ in $(seq 1 100); do
        kill -0 "$server_pid" 2>/dev/null || { tail -20 "$work/server.log" >&2; die "the floor exited during start-up"; }
        curl -fsS -o /dev/null --max-time 1 -X POST -d '{}' "http://127.0.0.1:$FLOOR_PORT/" 2>/dev/null && break
        sleep 0.1
      done ;;
    alertmanager)
      rm -rf "$work/am-data"; mkdir -p "$work/am-data"
      "${srv_pin[@]}" "$am_bin" --config.file="$here/alertmanager.yml" --storage.path="$work/am-data" \
        --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= \
        --log.level=warn >"$work/server.log" 2>&1 &
      server_pid=$!
      wait_ready "http://127.0.0.1:$AM_PORT/-/ready" ;;
  esac
}

port_of() { case $1 in sluice) echo "$SLUICEDEV_PORT" ;; floor) echo "$FLOOR_PORT" ;; alertmanager) echo "$AM_PORT" ;; esac; }

# CPU time (utime + stime, in clock ticks) and resident set (KiB) of the server process.
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/${1:-$server_pid}/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status"; }

metric_sum() { # url name [label-text]: the sum of the series of that name (whose labels contain
  # label-text), or "-" when there is none
  curl -fsS --max-time 5 "$1" 2>/dev/null |
    awk -v name="$2" -v labels="${3:-}" '
      { series = $1; sub(/[{].*/, "", series) }
      series == name && index($1, labels) { s += $NF; n++ }
      END { if (n) printf "%d", s; else print "-" }' || echo "-"
}

# Events the server itself counted (a cross-check on the load generator's count), or "-".
server_count() { # target
  case $1 in
    sluice) metric_sum "http://127.0.0.1:$SLUICEDEV_PORT/metrics" sluice_events_received_total ;;
    alertmanager) metric_sum "http://127.0.0.1:$AM_PORT/metrics" alertmanager_alerts_received_total ;;
    *) echo "-" ;;
  esac
}

# Requests a sluice refused, by reason, from its own counter (e.g. overloaded:3400), or "-".
server_rejects() { # target
  [ "$1" = sluice ] || { echo "-"; return 0; }
  curl -fsS --max-time 5 "http://127.0.0.1:$SLUICEDEV_PORT/metrics" 2>/dev/null |
    awk '/^sluice_events_rejected_total[{]/ && $NF > 0 {
           match($1, /reason="[^"]*"/); r = substr($1, RSTART + 8, RLENGTH - 9); n[r] += $NF }
         END { s = ""; for (r in n) s = s (s ? "," : "") r ":" n[r]; print (s ? s : "-") }' || echo "-"
}

# Warnings and errors the server logged during a run (sluice's embedded-broker notice aside),
# without their timestamps, for the report's last section.
anomalies="$work/anomalies.tsv"
: >"$anomalies"
scan_log() { # label
  grep -E ' (WARN|ERROR) |level=(warn|error)' "$work/server.log" 2>/dev/null |
    grep -v 'EMBEDDED BROKER' |
    sed -E 's/^[0-9T:.-]+Z +//; s/ts=[^ ]+ //; s/caller=[^ ]+ //' | cut -c1-300 | sort -u |
    while IFS= read -r l; do printf '%s	%s
' "$1" "$l"; done >>"$anomalies" || true
}

check_body() { # target file path: the first body must be accepted (2xx) before measuring
  local body code
  body=$(head -1 "$corpus/$2" | sed 's/@@N@@/check/g')
  code=$(curl -sS -o "$work/check.out" -w '%{http_code}' --max-time 10 -X POST \
    -H 'Content-Type: application/json' --data-binary @- "http://127.0.0.1:$(port_of "$1")$3" <<<"$body")
  [ "${code:0:1}" = 2 ] || die "$1 answered $code on $3 ($2): $(head -c 300 "$work/check.out")"
}

has_phase() { [[ " $PHASES " == *" $1 "* ]]; }

# --- phase 1: maximum throughput, closed loop --------------------------------------------------
# case: scenario target corpus-file path events-per-request [warm-up-file]
cases=(
  "1:pd-v2-1k-keys       floor        s1_pd_recurring.jsonl /v2/enqueue 1"
  "1:pd-v2-1k-keys       sluice       s1_pd_recurring.jsonl /v2/enqueue 1"
  "2:new-key-pd-v2       sluice       s2_pd_new.jsonl       /v2/enqueue 1"
  "2:new-key-api-x1      sluice       s2_api1_new.jsonl     /api/v2/alerts 1"
  "2:new-key-api-x1      alertmanager s2_api1_new.jsonl     /api/v2/alerts 1"
  "2:new-key-api-x50     sluice       s2_api50_new.jsonl    /api/v2/alerts 50"
  "2:new-key-api-x50     alertmanager s2_api50_new.jsonl    /api/v2/alerts 50"
  "3:am-webhook-x50      sluice       s3_webhook50.jsonl    /integrations/alertmanager_webhook/loadtest 50"
  "3:am-webhook-x50      alertmanager s3_api50.jsonl        /api/v2/alerts 50"
  "3:am-webhook-x250     sluice       s3_webhook250.jsonl   /integrations/alertmanager_webhook/loadtest 250"
  "3:am-webhook-x250     alertmanager s3_api250.jsonl       /api/v2/alerts 250"
  "4:prom-resend-x64     sluice       s4_api64.jsonl        /api/v2/alerts 64 s4_api64_warm.jsonl"
  "4:prom-resend-x64     alertmanager s4_api64.jsonl        /api/v2/alerts 64 s4_api64_warm.jsonl"
  "4:prom-resend-x256    sluice       s4_api256.jsonl       /api/v2/alerts 256 s4_api256_warm.jsonl"
  "4:prom-resend-x256    alertmanager s4_api256.jsonl       /api/v2/alerts 256 s4_api256_warm.jsonl"
  "5:e2e-tansu-api-x50   sluice+tansu s2_api50_new.jsonl    /api/v2/alerts 50"
)

results="$work/max.tsv"
e2e="$work/e2e.tsv"
: >"$results"
: >"$e2e"
if has_phase max; then
  total=$((REPS * ${#cases[@]}))
  n=0
  for rep in $(seq 1 "$REPS"); do
    for c in "${cases[@]}"; do
      read -r scenario target file path events warm <<<"$c"
      n=$((n + 1))
      say "[$n/$total] rep $rep: $target, scenario $scenario"
      server=$target
      if [ "$target" = sluice+tansu ]; then
        server=sluice
        start_broker
        start_target sluice "127.0.0.1:$TANSU_PORT"
      else
        start_target "$target"
      fi
      if [ -n "$warm" ]; then
        # Scenario 4's steady state: the whole population posted once, firing, unmeasured.
        run_client "$work/post.out" python3 "$here/post.py" "http://127.0.0.1:$(port_of "$server")$path" \
          "$corpus/$warm" || die "the warm-up failed: $(cat "$work/post.out")"
      fi
      check_body "$server" "$file" "$path"
      cpu0=$(cpu_ticks)
      [ -n "$broker_pid" ] && broker0=$(cpu_ticks "$broker_pid")
      run_client "$work/wrk.out" "${cli_pin[@]}" env LT_BODIES="$corpus/$file" LT_PATH="$path" \
        LT_RUN="r$rep$RANDOM" timeout $((DURATION + 30)) wrk -t1 -c"$CONNS" -d"${DURATION}s" \
        --timeout 5s -s "$here/bodies.lua" "http://127.0.0.1:$(port_of "$server")" ||
        die "wrk failed: $(cat "$work/wrk.out")"
      cpu1=$(cpu_ticks)
      [ -n "$broker_pid" ] && broker1=$(cpu_ticks "$broker_pid")
      line=$(grep '^LT_RESULT' "$work/wrk.out") || die "no result from wrk: $(cat "$work/wrk.out")"
      counted=$(server_count "$server")
      rejects=$(server_rejects "$server")
      if [ "$target" = sluice+tansu ]; then
        # Wait for the incidents still in group_wait (2 s) to be published: group_wait, then
        # until the published count holds still for 1 s (at most 20 s in all). Then read the
        # topic from the beginning with a consumer (sluice tail, see README) until it has every
        # published message or has seen nothing new for 3 s.
        metrics="http://127.0.0.1:$SLUICEDEV_PORT/metrics"
        sleep 2
        last=-1 still=0
        for _ in $(seq 1 36); do
          now=$(metric_sum "$metrics" sluice_messages_published_total)
          if [ "$now" = "$last" ]; then still=$((still + 1)); else still=0; fi
          last=$now
          [ "$still" -ge 2 ] && break
          sleep 0.5
        done
        opened=$(metric_sum "$metrics" sluice_incidents_opened_total)
        failed=$(metric_sum "$metrics" sluice_messages_failed_total)
        max_arg=()
        [ "$last" -gt 0 ] 2>/dev/null && max_arg=(--max "$last")
        run_client "$work/topic.out" timeout 60 "$sluice_bin" tail --brokers "127.0.0.1:$TANSU_PORT" \
          --topic sluice.incidents --from beginning --idle-exit 3s "${max_arg[@]}" --format text ||
          die "sluice tail failed: $(tail -5 "$work/topic.out")"
        delivered=$(grep -c '^key=' "$work/topic.out" || true)
        distinct=$(awk '/^key=/ { print $1 }' "$work/topic.out" | sort -u | grep -c . || true)
        echo "$rep $opened $last $failed $delivered $distinct $((broker1 - broker0))" >>"$e2e"
      fi
      stop_server
      stop_broker
      scan_log "$scenario $target"
      # shellcheck disable=SC2001
      echo "$target $scenario $rep $events $counted $((cpu1 - cpu0)) $rejects $(sed 's/[a-z0-9_]*=//g; s/^LT_RESULT //' <<<"$line")" >>"$results"
    done
  done
  say "max phase done: $REPS repetitions x ${#cases[@]} cases, wrk -t1 -c$CONNS -d${DURATION}s each"
fi

# --- phase 2: latency at a fixed rate, open loop -----------------------------------------------
median_rps() { # target scenario
  python3 - "$results" "$1" "$2" <<'PY'
import statistics, sys
path, target, scenario = sys.argv[1:]
rps = [int(f[7]) / (int(f[8]) / 1e6) for f in (l.split() for l in open(path)) if f[0] == target and f[1] == scenario]
print(int(statistics.median(rps)) if rps else 0)
PY
}

rate="$work/rate.tsv"
: >"$rate"
if has_phase rate; then
  s1_max=$(median_rps sluice 1:pd-v2-1k-keys)
  x50_max=$(median_rps sluice 2:new-key-api-x50)
  am_x50_max=$(median_rps alertmanager 2:new-key-api-x50)
  RATE_S1=${RATE_S1:-$((s1_max / 2))}
  RATE_X50=${RATE_X50:-$((x50_max / 2))}
  if [ "$RATE_S1" -le 0 ] || [ "$RATE_X50" -le 0 ]; then
    die "the rate phase needs the max phase's figures (or RATE_S1 and RATE_X50)"
  fi
  # Alertmanager runs x50 at sluice's rate only if its own maximum reaches it; otherwise at half
  # its own maximum, and the report says so.
  am_rate=$RATE_X50
  am_note="same rate"
  if [ "$am_x50_max" -gt 0 ] && [ "$am_x50_max" -lt "$RATE_X50" ]; then
    am_rate=$((am_x50_max / 2))
    am_note="cannot sustain $RATE_X50 req/s (its maximum: $am_x50_max); run at half its own maximum"
  fi
  # oha -Z sends a line of the file, drawn at random, with every request (it substitutes nothing).
  # Scenario 1: the 4,000 bodies of the closed-loop run (1,000 recurring keys). x50: the 200
  # 50-alert bodies of scenario 2 with one fixed token, i.e. 10,000 distinct alerts, posted once
  # beforehand (unmeasured): every measured request re-sends 50 alerts the target holds, a steady
  # re-send and not a storm of new alerts (a file of distinct bodies for a whole run would take
  # hundreds of MB).
  sed 's/@@N@@/rate/g' "$corpus/s2_api50_new.jsonl" >"$corpus/rate_x50.jsonl"
  # A rate set by hand is said to be so (without the max phase there is no maximum to quote).
  of_max() { if [ -n "$1" ]; then echo "set by hand"; else echo "$2"; fi; }
  echo "Fixed rates: scenario 1 at $RATE_S1 req/s ($(of_max "$RATE_S1_SET" "sluice's median maximum: $s1_max"))," \
    "x50 at $RATE_X50 req/s ($(of_max "$RATE_X50_SET" "sluice's median maximum: $x50_max; Alertmanager's: $am_x50_max"))" >"$work/rates.txt"
  rate_cases=(
    "1:pd-v2-1k-keys   floor        $RATE_S1  s1_pd_recurring.jsonl /v2/enqueue    1  -"
    "1:pd-v2-1k-keys   sluice       $RATE_S1  s1_pd_recurring.jsonl /v2/enqueue    1  -"
    "2:api-x50-resend  sluice       $RATE_X50 rate_x50.jsonl        /api/v2/alerts 50 -"
    "2:api-x50-resend  alertmanager $am_rate  rate_x50.jsonl        /api/v2/alerts 50 ${am_note// /_}"
  )
  total=$((RATE_REPS * ${#rate_cases[@]}))
  n=0
  for rep in $(seq 1 "$RATE_REPS"); do
    for c in "${rate_cases[@]}"; do
      read -r scenario target qps file path events note <<<"$c"
      n=$((n + 1))
      say "[$n/$total] rate rep $rep: $target, $scenario at $qps req/s"
      start_target "$target"
      if [ "$events" -gt 1 ]; then
        run_client "$work/post.out" python3 "$here/post.py" "http://127.0.0.1:$(port_of "$target")$path" \
          "$corpus/$file" || die "the warm-up failed: $(cat "$work/post.out")"
      fi
      cpu0=$(cpu_ticks)
      run_client "$work/oha.json" "${cli_pin[@]}" timeout $((RATE_DURATION + 30)) "$oha_bin" \
        --no-tui --output-format json -z "${RATE_DURATION}s" -w -q "$qps" --latency-correction \
        -c "$CONNS" -m POST -H 'Content-Type: application/json' -Z "$corpus/$file" \
        "http://127.0.0.1:$(port_of "$target")$path" || die "oha failed: $(head -c 500 "$work/oha.json")"
      cpu1=$(cpu_ticks)
      rejects=$(server_rejects "$target")
      stop_server
      scan_log "rate $scenario $target"
      python3 - "$work/oha.json" "$target" "$scenario" "$rep" "$qps" "$events" "$((cpu1 - cpu0))" "$note" "$rejects" >>"$rate" <<'PY'
import json, sys
path, target, scenario, rep, qps, events, cpu, note, rejects = sys.argv[1:]
r = json.load(open(path))
p = r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
ok = sum(n for c, n in codes.items() if c.startswith("2"))
bad = sum(n for c, n in codes.items() if not c.startswith("2"))
errors = sum(r.get("errorDistribution", {}).values())
# What the answers that were not 2xx were: each status code and each client error, counted.
what = ["%s x%d" % (c, n) for c, n in codes.items() if not c.startswith("2")]
what += ["%s x%d" % (e, n) for e, n in r.get("errorDistribution", {}).items()]
# Which of sluice's gates refused (sluice_events_rejected_total by reason: a full shard queue is
# `overloaded`, fair admission `over_share`), counted in events, warm-up included.
if rejects != "-":
    what.append("events refused by sluice: " + rejects)
detail = "; ".join(what).replace("\t", " ") or "-"
print(target, scenario, rep, qps, events, cpu, r["summary"]["requestsPerSec"], ok, bad, errors,
      p["p50"], p["p99"], p["p99.9"], note, detail, sep="\t")
PY
    done
  done
fi

# --- phase 3: RSS per open alert -----------------------------------------------------------------
rss="$work/rss.tsv"
: >"$rss"
if has_phase rss; then
  batches=$(((RSS_ALERTS + 255) / 256))
  for rep in $(seq 1 "$RSS_REPS"); do
    for target in sluice alertmanager; do
      say "rss rep $rep: $target, $((batches * 256)) alerts"
      if [ "$target" = sluice ]; then
        # A real broker in its own process, so that the embedded broker's copy of the published
        # messages is not counted in sluice's memory.
        start_broker
        start_target sluice "127.0.0.1:$TANSU_PORT"
      else
        start_target alertmanager
      fi
      sleep 1
      rss0=$(rss_kib)
      run_client "$work/post.out" python3 "$here/post.py" "http://127.0.0.1:$(port_of "$target")/api/v2/alerts" \
        "$corpus/rss_api256.jsonl" "$batches" "rss$rep" || die "posting the RSS alerts failed: $(cat "$work/post.out")"
      # Let group_wait (2 s) pass, so that sluice has published its incidents, then read.
      sleep 3
      rss1=$(rss_kib)
      if [ "$target" = sluice ]; then
        held=$(metric_sum "http://127.0.0.1:$SLUICEDEV_PORT/metrics" sluice_alerts_open)
      else
        # Every state (active, suppressed, unprocessed: with a null receiver most stay
        # unprocessed): the alerts Alertmanager holds.
        held=$(metric_sum "http://127.0.0.1:$AM_PORT/metrics" alertmanager_alerts)
      fi
      secs=$(awk '{ print $NF }' "$work/post.out" | sed 's/seconds=//')
      echo "$target $rep $((batches * 256)) $held $rss0 $rss1 $secs" >>"$rss"
      stop_server
      scan_log "rss $target"
      stop_broker
    done
  done
fi

# --- the report --------------------------------------------------------------------------------
elapsed=$(($(date +%s) - started_at))
{
  python3 "$here/report.py" "$clk_tck" "$results" "$e2e" "$rate" "$rss" "$anomalies"
  if [ -s "$work/rates.txt" ]; then echo; cat "$work/rates.txt"; fi
  echo
  echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); wall time ${elapsed}s."
  echo "Command: REPS=$REPS DURATION=$DURATION CONNS=$CONNS RATE_REPS=$RATE_REPS" \
    "RATE_DURATION=$RATE_DURATION${RATE_S1_SET:+ RATE_S1=$RATE_S1}${RATE_X50_SET:+ RATE_X50=$RATE_X50}" \
    "RSS_ALERTS=$RSS_ALERTS RSS_REPS=$RSS_REPS PIN=$PIN PHASES=\"$PHASES\" load-tests/compare.sh"
} >>"$report"
cat "$report"
