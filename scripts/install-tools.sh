#!/usr/bin/env bash
# Installs what the tests and the real-broker demo need, skipping whatever is already there:
#   - tansu, an Apache Kafka-compatible broker (crates.io), built with the storage engines the
#     tests use: in-memory (dynostore) and SQLite (libsql, which keeps data across a broker
#     restart). Its first build takes 15-30 minutes on 2 cores; later runs find the binary,
#     check its version and features (cargo's install record), and skip the build.
#   - Prometheus Alertmanager (Debian's prometheus-alertmanager), for the test that fires alerts
#     through a real Alertmanager into sluice's webhook endpoint. Installed with apt-get, as
#     root or through sudo; `apt-get update` runs only when the package is not yet known.
# Idempotent: safe to run before every test run.
set -euo pipefail

TANSU_VERSION=0.6.0
TANSU_FEATURES=dynostore,libsql
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
cargo_bin="$cargo_home/bin"

# The features cargo recorded when it installed tansu (empty when it did not install it).
tansu_features() {
  python3 - "$cargo_home/.crates2.json" <<'PY' 2>/dev/null || true
import json, sys
installs = json.load(open(sys.argv[1])).get("installs", {})
for key, info in installs.items():
    if key.startswith("tansu "):
        print(",".join(sorted(info.get("features", []))))
PY
}

have_tansu() {
  local bin
  bin=$(command -v tansu 2>/dev/null || echo "$cargo_bin/tansu")
  [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$TANSU_VERSION" &&
    [ "$(tansu_features)" = "$TANSU_FEATURES" ]
}

if have_tansu; then
  echo "install-tools: tansu $TANSU_VERSION ($TANSU_FEATURES) already installed"
else
  echo "install-tools: installing tansu $TANSU_VERSION with $TANSU_FEATURES" \
    "(first build takes 15-30 minutes on 2 cores)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features "$TANSU_FEATURES"
fi

have_alertmanager() {
  command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1
}

if have_alertmanager; then
  echo "install-tools: Alertmanager already installed"
elif command -v apt-get >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  if ! apt-cache show prometheus-alertmanager >/dev/null 2>&1; then
    echo "install-tools: apt-get update (prometheus-alertmanager is not in the package lists yet)"
    $sudo apt-get update
  fi
  echo "install-tools: installing prometheus-alertmanager with apt-get"
  # Only the binary is needed: the tests start their own instance, never the system service.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    prometheus-alertmanager
else
  echo "install-tools: no apt-get here; install Prometheus Alertmanager yourself and put" \
    "'alertmanager' (or set SLUICEDEV_ALERTMANAGER) on the PATH for the Alertmanager test" >&2
fi
