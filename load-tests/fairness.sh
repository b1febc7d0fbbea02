#!/usr/bin/env bash
# Overload and fairness, measured (README "Security and hardening"): memory mode, sluice
# publishing to tansu (its own process, fresh for every run), on loopback. Three phases:
#
#   overload  capacity first: closed loop `oha -c $CONNS -z ${DURATION}s`, 50-alert Alertmanager
#             API batches (gen.py's s2_api50_new with one token: 10,000 alerts re-sent), goodput
#             = events answered 2xx per second. Then open loop at $OVERLOAD x that many requests
#             per second (`oha -q`) on a fresh instance: goodput as a share of capacity, the
#             share of 503 answers, p50/p99 of all answers (from sending, not from when oha
#             meant to send: on 2 cores oha may not reach the rate; the rate answered is shown).
#             Then the same with a capacity oha can exceed: limits.global = $GLOBAL events/s
#             (a burst of a tenth of that), offered at $OVERLOAD x.
#   limits    per-key rate limits (SLUICE_RATE_LIMIT_PER_ROUTING_KEY=$LIMIT): a noisy key sends
#             PagerDuty events at 10 x $LIMIT per second while a quiet key sends $QUIET_RATE
#             per second; the quiet key's loss and p50/p99, against the quiet key alone.
#   fair      fair admission, no rate limit: a noisy key floods, closed loop, 50-alert batches
#             and single PagerDuty events on $CONNS/2 connections each (more than the shards
#             take; the single events fill what room a batch cannot), while the quiet key
#             sends $QUIET_RATE PagerDuty events per second; limits.fair_admission on and off.
#
# After every run each alert the run sent is resolved (its last event: a repeated trigger
# changes nothing an incident publishes, a resolve does), sluice gets SIGTERM (it publishes every
# pending update and flushes), a consumer (`sluice tail`) reads the incident topic from the
# beginning, and each incident's last message says how many events it took (`event_count`).
# Their sum must equal the events sluice accepted (sluice_events_received_total) less those it
# dropped with a reason (sluice_events_dropped_total: a resolve for an alert a short run never
# sent), and each PagerDuty key's incident must count every event oha saw answered 2xx, and
# its resolve (more when oha missed the answer to a request in flight as its run ended). The
# config (written below) publishes everything: no pause, no learned pause, no inhibition, no
# flap hold. $REPS alternating repetitions of the limits and fair phases. Prints a markdown
# report (machine, commit, load and command on top). Not part of CI.
#
#   load-tests/fairness.sh                     # DURATION=10 REPS=3, about 6 minutes
#   PHASES="limits" REPS=1 load-tests/fairness.sh
#   PIN=1 load-tests/fairness.sh               # sluice and tansu on CPU 1, oha on CPU 0
#   QUEUE=512 PHASES=fair load-tests/fairness.sh  # correlate.queue_capacity of the runs (16384)
set -euo pipefail

DURATION=${DURATION:-10}
REPS=${REPS:-3}
CONNS=${CONNS:-16}
OVERLOAD=${OVERLOAD:-3}
LIMIT=${LIMIT:-500}
GLOBAL=${GLOBAL:-50000}
QUEUE=${QUEUE:-16384}
QUIET_RATE=${QUIET_RATE:-50}
PHASES=${PHASES:-overload limits fair}
PIN=${PIN:-0}
PORT=${SLUICEDEV_PORT:-18380}
TANSU_PORT=${TANSU_PORT:-18392}

here=$(cd "$(dirname "$0")" && pwd)
name=fairness
# shellcheck source=load-tests/kafka-lib.sh
. "$here/kafka-lib.sh"
python3 "$here/gen.py" "$work" >&2
# 200 bodies of 50 alerts with one token: 10,000 distinct alerts, re-sent (oha -Z draws a line
# at random for every request), so memory stays flat however long the run.
sed 's/@@N@@/fair/g' "$work/s2_api50_new.jsonl" >"$work/x50.jsonl"
oha_bin=$(command -v oha || echo "${CARGO_HOME:-$HOME/.cargo}/bin/oha")
if [ ! -x "$oha_bin" ]; then
  say "installing oha (cargo install oha --locked)"
  (cd / && env -u CARGO_TARGET_DIR cargo install oha --locked >&2)
fi
# PIN=1: the server and the broker on CPU 1, the load generator on CPU 0 (sluice then runs one
# shard and one runtime thread), so that oha can offer more than sluice takes.
srv_pin=()
cli_pin=()
if [ "$PIN" = 1 ]; then
  srv_pin=(taskset -c 1)
  cli_pin=(taskset -c 0)
fi
started_at=$(date +%s)
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
url="http://127.0.0.1:$PORT"
pd_body() { # routing-key
  printf '{"routing_key":"%s","event_action":"trigger","dedup_key":"%s-disk","payload":{"summary":"disk full on %s-db","source":"%s-db","severity":"critical"}}' "$1" "$1" "$1" "$1"
}
config="$work/sluice.toml"
cat >"$config" <<'TOML'
# load-tests/fairness.sh: every incident is published, so that the incidents account for every
# event (load-tests/sluice.toml's grouping, without the noise reduction that holds some back).
instance = "sluice-fairness"
[server]
shutdown_grace = "60s"
[kafka]
linger = "5ms"
queue_max_messages = 100000
[correlate]
queue_capacity = @QUEUE@
symptom_inhibition = false
learned_pause = "0s"
[[correlate.rules]]
name = "by-host"
group_by = ["source"]
group_wait = "2s"
group_interval = "1m"
pause_transient = "0s"
flap = false
[integrations.alertmanager_api]
routing_key = "loadtest"
[log]
level = "warn"
TOML
sed -i "s/@QUEUE@/$QUEUE/" "$config"
printf '[limits]\nfair_admission = false\n' | cat "$config" - >"$work/unfair.toml"

# Resolves what a run sent: every alert of x50.jsonl under routing key $2, or PagerDuty key $2's
# alert; refusals (a rate limit, a full queue) are retried after their Retry-After.
resolve() { # x50|pd routing-key
  python3 - "$url" "$1" "$2" "$work/x50.jsonl" <<'PY'
import http.client, json, sys, time, urllib.parse
url, what, key, x50 = sys.argv[1:]
u = urllib.parse.urlsplit(url)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
def post(path, body, headers):
    deadline = time.time() + 120
    while True:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
        r = conn.getresponse()
        answer = r.read()
        if 200 <= r.status < 300:
            return
        if r.status in (429, 503) and time.time() < deadline:
            time.sleep(float(r.getheader("Retry-After", "1")))
            continue
        sys.exit(f"resolve: {path} answered {r.status}: {answer[:300]!r}")
if what == "x50":
    # Ended a second ago (and after their startsAt): resolved.
    ended = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    for line in open(x50):
        alerts = json.loads(line)
        for a in alerts:
            a["endsAt"] = ended
        post("/api/v2/alerts", json.dumps(alerts), {"X-Routing-Key": key})
else:
    body = {"routing_key": key, "event_action": "resolve", "dedup_key": key + "-disk"}
    post("/v2/enqueue", json.dumps(body), {})
PY
}
: >"$work/runs.tsv"

start_sluice() { # config-file [VAR=value...]: memory mode, publishing to a fresh tansu
  local config=$1
  shift
  start_tansu "$TANSU_PORT"
  [ "$PIN" = 1 ] && taskset -pc 1 "$tansu_pid" >/dev/null
  env SLUICE_LISTEN="127.0.0.1:$PORT" SLUICE_KAFKA_BROKERS="127.0.0.1:$TANSU_PORT" "$@" \
    "${srv_pin[@]}" "$sluice_bin" serve --config "$config" >"$work/server.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  wait_ready "$url/readyz" "$work/server.log"
}

metric_sum() { # name [label-text]
  curl -fsS --max-time 5 "$url/metrics" |
    awk -v name="$1" -v labels="${2:-}" '
      { series = $1; sub(/[{].*/, "", series) }
      series == name && index($1, labels) { s += $NF }
      END { printf "%d", s }'
}

# SIGTERM, wait for the drain, then read every incident back: one line per routing key,
# "<key> <events in incidents> <incidents>", and sluice's own counts.
stop_and_count() { # out-file
  local received dropped
  received=$(metric_sum sluice_events_received_total)
  dropped=$(metric_sum sluice_events_dropped_total)
  kill -TERM "$server_pid"
  local rc=0
  wait "$server_pid" || rc=$?
  [ "$rc" = 0 ] || say "sluice exited with $rc (undelivered messages?): $(tail -3 "$work/server.log")"
  timeout 120 "$sluice_bin" tail --brokers "127.0.0.1:$TANSU_PORT" --topic sluice.incidents \
    --from beginning --idle-exit 3s --format json >"$work/topic.jsonl" 2>"$work/tail.log" || true
  kill "$tansu_pid" 2>/dev/null || true
  wait "$tansu_pid" 2>/dev/null || true
  python3 - "$work/topic.jsonl" "$received" "$dropped" >"$1" <<'PY'
import json, sys
last = {}
for line in open(sys.argv[1]):
    m = json.loads(line)["value"]
    # Only incidents: change events and each instance's liveness records are skipped.
    if m.get("type") == "change" or "incident_id" not in m:
        continue
    key = m["incident_id"]
    if key not in last or m["seq"] > last[key]["seq"]:
        last[key] = m
by_key = {}
for m in last.values():
    n, i = by_key.get(m["routing_key"], (0, 0))
    by_key[m["routing_key"]] = (n + m["event_count"], i + 1)
print("received", sys.argv[2], 0)
print("dropped", sys.argv[3], 0)
print("total", sum(n for n, _ in by_key.values()), len(last))
for k, (n, i) in sorted(by_key.items()):
    print(k, n, i)
PY
}

oha_run() { # out-json oha-args...: open or closed loop for $DURATION
  local out=$1
  shift
  timeout $((DURATION + 60)) "${cli_pin[@]}" "$oha_bin" --no-tui --output-format json -z "${DURATION}s" \
    -m POST -H 'Content-Type: application/json' "$@" >"$out"
}

# phase, run, rep, what, oha json, events per request, counts file -> one row of runs.tsv
record() {
  python3 - "$@" >>"$work/runs.tsv" <<'PY'
import json, sys
phase, run, rep, who, path, per, counts, duration = sys.argv[1:]
r = json.load(open(path))
codes = {int(c): n for c, n in r.get("statusCodeDistribution", {}).items()}
# oha cancels what is in flight (or due) when its run ends: "aborted due to deadline". Not an
# answer of sluice's; counted apart from real errors (connections refused, reset, timed out).
dist = r.get("errorDistribution", {})
aborted = sum(n for e, n in dist.items() if "deadline" in e)
errors = sum(dist.values()) - aborted
p = r["latencyPercentiles"]
ok = sum(n for c, n in codes.items() if 200 <= c < 300)
counted = {l.split()[0]: int(l.split()[1]) for l in open(counts)}
print(phase, run, rep, who, int(per), float(duration), round(r["summary"]["requestsPerSec"], 1),
      ok, codes.get(503, 0), codes.get(429, 0), sum(codes.values()) - ok - codes.get(503, 0) - codes.get(429, 0),
      errors, round((p["p50"] or 0) * 1000, 2), round((p["p99"] or 0) * 1000, 2),
      round((p["p99.9"] or 0) * 1000, 2), counted.get("received", -1), counted.get(who, 0),
      counted.get("total", 0), counted.get("dropped", 0), aborted, sep="\t")
PY
}

has_phase() { [[ " $PHASES " == *" $1 "* ]]; }

capacity=0
if has_phase overload; then
  say "overload: capacity, closed loop, $CONNS connections, 50-alert batches"
  start_sluice "$config"
  oha_run "$work/cap.json" -c "$CONNS" -Z "$work/x50.jsonl" "$url/api/v2/alerts"
  resolve x50 loadtest
  stop_and_count "$work/cap.counts"
  record overload capacity 1 loadtest "$work/cap.json" 50 "$work/cap.counts" "$DURATION"
  capacity=$(awk -F'\t' '$2 == "capacity" { printf "%d", $8 * 50 / $6 }' "$work/runs.tsv")
  rate=$((capacity * OVERLOAD / 50))
  say "capacity $capacity events/s; offering $rate requests/s ($OVERLOAD x)"
  start_sluice "$config"
  # No latency correction here: when oha cannot send at the rate asked, its own backlog would
  # count as sluice's latency. The report gives the rate asked and the rate answered.
  oha_run "$work/over.json" -c "$CONNS" -q "$rate" -Z "$work/x50.jsonl" \
    "$url/api/v2/alerts"
  resolve x50 loadtest
  stop_and_count "$work/over.counts"
  record overload "${OVERLOAD}x" 1 loadtest "$work/over.json" 50 "$work/over.counts" "$DURATION"
  # A burst of a tenth of a second, so that goodput over the run is the rate.
  printf '[limits]\nglobal = %d\nglobal_burst = %d\n' "$GLOBAL" $((GLOBAL / 10)) |
    cat "$config" - >"$work/global.toml"
  rate=$((GLOBAL * OVERLOAD / 50))
  say "overload: limits.global = $GLOBAL events/s, offering $rate requests/s ($OVERLOAD x)"
  start_sluice "$work/global.toml"
  oha_run "$work/global.json" -c "$CONNS" -q "$rate" -Z "$work/x50.jsonl" "$url/api/v2/alerts"
  resolve x50 loadtest
  stop_and_count "$work/global.counts"
  record overload "global" 1 loadtest "$work/global.json" 50 "$work/global.counts" "$DURATION"
fi

# Noisy and quiet at once: the noisy client in the background, the quiet one in front.
noisy_and_quiet() { # phase run rep noisy-oha-args...
  local phase=$1 run=$2 rep=$3
  shift 3
  if [ $# -gt 0 ]; then
    oha_run "$work/noisy.json" "$@" &
    local noisy_pid=$!
    pids+=("$noisy_pid")
  fi
  if [ "$phase" = fair ]; then
    # Single events of the noisy key besides its batches: a queue with no room for a batch
    # may still have room for one event, and these take it (as a sender of single events does).
    oha_run "$work/singles.json" -c $((CONNS / 2)) -d "$(pd_body noisy)" "$url/v2/enqueue" &
    local singles_pid=$!
    pids+=("$singles_pid")
  fi
  oha_run "$work/quiet.json" -c 4 -q "$QUIET_RATE" --latency-correction -d "$(pd_body quiet)" \
    "$url/v2/enqueue"
  [ -z "${noisy_pid:-}" ] || wait "$noisy_pid"
  [ -z "${singles_pid:-}" ] || wait "$singles_pid"
  resolve pd quiet
  if [ -n "${noisy_pid:-}" ]; then
    if [ "$phase" = fair ]; then resolve x50 noisy; fi
    resolve pd noisy
  fi
  stop_and_count "$work/nq.counts"
  record "$phase" "$run" "$rep" quiet "$work/quiet.json" 1 "$work/nq.counts" "$DURATION"
  if [ -n "${noisy_pid:-}" ]; then
    local per=1
    [ "$phase" = fair ] && per=50
    record "$phase" "$run" "$rep" noisy "$work/noisy.json" "$per" "$work/nq.counts" "$DURATION"
  fi
  if [ -n "${singles_pid:-}" ]; then
    record "$phase" "$run" "$rep" noisy "$work/singles.json" 1 "$work/nq.counts" "$DURATION"
  fi
}

for rep in $(seq 1 "$REPS"); do
  if has_phase limits; then
    say "limits rep $rep: the quiet key alone, then beside a noisy key at 10 x $LIMIT events/s"
    start_sluice "$config" SLUICE_RATE_LIMIT_PER_ROUTING_KEY="$LIMIT"
    noisy_and_quiet limits alone "$rep"
    start_sluice "$config" SLUICE_RATE_LIMIT_PER_ROUTING_KEY="$LIMIT"
    noisy_and_quiet limits noisy "$rep" -c "$CONNS" -q $((LIMIT * 10)) --latency-correction \
      -d "$(pd_body noisy)" "$url/v2/enqueue"
  fi
  if has_phase fair; then
    for run in on off; do
      say "fair rep $rep: fair admission $run, a noisy key flooding 50-alert batches and single events"
      cfg=$config
      [ "$run" = off ] && cfg="$work/unfair.toml"
      start_sluice "$cfg"
      noisy_and_quiet fair "$run" "$rep" -c $((CONNS / 2)) -H 'X-Routing-Key: noisy' \
        -Z "$work/x50.jsonl" "$url/api/v2/alerts"
    done
  fi
done

echo "# Overload and fairness"
echo
report_header
echo "- load average at start $load_at_start, at the end $(cut -d' ' -f1-3 /proc/loadavg); wall time $(($(date +%s) - started_at)) s"
echo "- $("$oha_bin" --version | head -1); a fresh tansu and sluice for every run (memory mode; load-tests/sluice.toml's grouping with nothing held back, written by the script)"
if [ "$PIN" = 1 ]; then
  echo "- pinned: sluice and tansu on CPU 1, oha on CPU 0 (taskset)"
else
  echo "- not pinned: sluice, tansu and oha share the $(nproc) CPUs"
fi
echo "- command: DURATION=$DURATION REPS=$REPS CONNS=$CONNS OVERLOAD=$OVERLOAD LIMIT=$LIMIT GLOBAL=$GLOBAL QUEUE=$QUEUE QUIET_RATE=$QUIET_RATE PIN=$PIN PHASES=\"$PHASES\" load-tests/fairness.sh"
echo
python3 - "$work/runs.tsv" "$capacity" "$OVERLOAD" "$LIMIT" "$GLOBAL" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
capacity, overload, limit, global_limit = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
F = dict(phase=0, run=1, rep=2, who=3, per=4, dur=5, rps=6, ok=7, s503=8, s429=9, other=10,
         errors=11, p50=12, p99=13, p999=14, received=15, in_incidents=16, total=17, dropped=18,
         aborted=19)
def get(r, k, f=float):
    return f(r[F[k]])
def med(xs):
    xs = list(xs)
    return statistics.median(xs) if xs else float("nan")
def span(xs, fmt="{:.2f}"):
    xs = list(xs)
    if not xs:
        return "-"
    m = fmt.format(med(xs))
    return m if len(xs) == 1 else f"{m} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"
def lost(r):
    # Events oha saw answered 2xx that the key's incidents do not count (0 expected). A
    # PagerDuty key's one alert also took its resolve; a batch key's incidents also count the
    # resolves of its alerts, so for it this is a floor.
    per = get(r, "per", int)
    accepted = get(r, "ok", int) * per + (1 if per == 1 else 0)
    return max(0, accepted - get(r, "in_incidents", int))
def exact(r):
    # Every event sluice accepted is in an incident, or dropped with a reason.
    return get(r, "received", int) - get(r, "dropped", int) == get(r, "total", int)

over = [r for r in rows if r[0] == "overload"]
if over:
    print("## Overload (50-alert Alertmanager API batches, one routing key)")
    print()
    print("| run | offered req/s | answered req/s | 2xx | 503 | other / errors | goodput events/s | share of capacity | share of 503 | p50 ms | p99 ms | accepted = in incidents + dropped | 2xx events not in an incident |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in over:
        answered = get(r, "ok", int) + get(r, "s503", int) + get(r, "s429", int) + get(r, "other", int)
        good = get(r, "ok", int) * 50 / get(r, "dur")
        cap = global_limit if r[1] == "global" else capacity
        offered = "closed loop" if r[1] == "capacity" else f"{cap * int(overload) // 50:,}"
        share = good / cap if cap else float("nan")
        label = {"capacity": "capacity (closed loop)", "global": f"limits.global = {global_limit:,}, at {overload}x"}.get(r[1], f"{overload}x capacity")
        print(f"| {label} | {offered} | {get(r, 'rps'):,.0f} | {get(r, 'ok', int):,} | {get(r, 's503', int):,} | "
              f"{get(r, 'other', int)} / {get(r, 'errors', int)} | {good:,.0f} | {share:.2f} | "
              f"{get(r, 's503', int) / max(1, answered):.2f} | {get(r, 'p50'):.2f} | {get(r, 'p99'):.2f} | "
              f"{'yes' if exact(r) else 'NO'} ({get(r, 'total', int):,} of {get(r, 'received', int):,}, "
              f"{get(r, 'dropped', int):,} dropped) | {lost(r)} |")
    print()

for phase, title, runs in (
    ("limits", f"Per-key rate limit ({limit} events/s): noisy key at 10x, PagerDuty events", ("alone", "noisy")),
    ("fair", "Fair admission, no rate limit: noisy key flooding 50-alert batches and single events (closed loop)", ("on", "off")),
):
    mine = [r for r in rows if r[0] == phase]
    if not mine:
        continue
    print(f"## {title}")
    print()
    print("| run | quiet: sent | quiet: non-2xx (loss) | quiet p50 ms | quiet p99 ms | quiet p99.9 ms | noisy: 2xx events/s | noisy: refused (429 / 503) | accepted = in incidents, every 2xx in one |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        q = [r for r in mine if r[1] == run and r[3] == "quiet"]
        n = [r for r in mine if r[1] == run and r[3] == "noisy"]
        if not q:
            continue
        sent = sum(get(r, "ok", int) + get(r, "s503", int) + get(r, "s429", int) + get(r, "other", int) + get(r, "errors", int) for r in q)
        loss = sum(get(r, "s503", int) + get(r, "s429", int) + get(r, "other", int) + get(r, "errors", int) for r in q)
        per_rep = {}
        for r in n:
            per_rep[r[2]] = per_rep.get(r[2], 0) + get(r, "ok", int) * get(r, "per", int) / get(r, "dur")
        noisy_good = span(per_rep.values(), "{:,.0f}") if n else "-"
        refused = f"{sum(get(r, 's429', int) for r in n):,} / {sum(get(r, 's503', int) for r in n):,}" if n else "-"
        complete = all(lost(r) == 0 and exact(r) for r in q + n)
        label = {"alone": "quiet key alone", "noisy": "with the noisy key", "on": "fair admission on", "off": "fair admission off"}[run]
        print(f"| {label} | {sent:,} | {loss} ({loss / max(1, sent):.1%}) | {span(get(r, 'p50') for r in q)} | "
              f"{span(get(r, 'p99') for r in q)} | {span(get(r, 'p999') for r in q)} | {noisy_good} | {refused} | "
              f"{'yes' if complete else 'NO'} ({len(q)} run(s)) |")
    print()
print("Rows in full (phase, run, rep, client, events per request, s, answered req/s, 2xx, 503, 429, other, errors, p50, p99, p99.9 ms, sluice's received, that key's events in incidents, all events in incidents, sluice's dropped, aborted by oha at its deadline):")
print()
print("```")
for r in rows:
    print(" ".join(r))
print("```")
PY
