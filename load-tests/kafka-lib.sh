# Shared by load-tests/kafka-mode.sh and load-tests/correlators.sh (sourced, not run): the work
# folder and the processes to stop on exit, the tools (tansu, wrk), sluice's release build, a
# tansu broker, readiness, and the report's header lines.
# Needs `here` (the load-tests folder) and `name` (of the work folder) set by the caller.

root=$(dirname "$here")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/sluice-perf-target}
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-$name.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
say() { echo "==> $*" >&2; }

"$root/scripts/install-tools.sh" >&2
command -v wrk >/dev/null || { say "installing wrk"; sudo apt-get install -y wrk >&2 || apt-get install -y wrk >&2; }
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
say "building sluice (release)"
(cd "$root" && cargo build --release --bin sluice >&2)
sluice_bin="$CARGO_TARGET_DIR/release/sluice"

start_tansu() { # port; sets tansu_pid (memory engine: a fresh broker every time)
  tansu broker --storage-engine memory://tansu/ --listener-url "tcp://127.0.0.1:$1" \
    --advertised-listener-url "tcp://127.0.0.1:$1" >"$work/tansu.log" 2>&1 &
  tansu_pid=$!
  pids+=("$tansu_pid")
  for _ in $(seq 1 100); do (: >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "tansu not listening on $1" >&2
  exit 1
}

wait_ready() { # url log
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  tail -20 "$2" >&2
  echo "not ready: $1" >&2
  exit 1
}

report_header() { # what the run is
  echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
  echo "- commit: $(cd "$root" && git rev-parse --short HEAD)$(cd "$root" && git diff --quiet || echo ' (with local changes)')"
  echo "- broker: $(tansu --version 2>/dev/null | head -1) (memory engine, its own process)"
}
