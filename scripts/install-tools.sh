#!/usr/bin/env bash
# Installs what the tests and the real-broker demo need, skipping whatever is already there:
#   - tansu, an Apache Kafka-compatible broker (crates.io), built with the storage engines the
#     tests use: in-memory (dynostore) and SQLite (libsql, which keeps data across a broker
#     restart). Its first build takes 15-30 minutes on 2 cores; later runs find the binary,
#     check its version and features (cargo's install record), and skip the build.
#   - OpenSSL's headers and pkg-config (Debian's libssl-dev, pkg-config), which building sluice
#     needs: librdkafka is built with OpenSSL (the default kafka-ssl feature) for TLS and SASL
#     SCRAM to the brokers. Skipped when pkg-config already finds openssl.
#   - Prometheus Alertmanager (Debian's prometheus-alertmanager), for the test that fires alerts
#     through a real Alertmanager into sluice's webhook endpoint.
#   - Chromium (Debian's chromium) and the DejaVu fonts (fonts-dejavu-core), for the status
#     page's test: headless Chromium renders the page, runs its script and takes screenshots.
# The Debian packages are installed with apt-get, as root or through sudo; `apt-get update` runs
# only when a package is not yet known.
# Idempotent: safe to run before every test run.
set -euo pipefail

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi

# apt-get install of the packages given, after `apt-get update` if one of them is not known yet.
apt_install() {
  local pkg
  for pkg in "$@"; do
    if ! apt-cache show "$pkg" >/dev/null 2>&1; then
      echo "install-tools: apt-get update ($pkg is not in the package lists yet)"
      $sudo apt-get update
      break
    fi
  done
  echo "install-tools: installing $* with apt-get"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

have_openssl_dev() {
  command -v pkg-config >/dev/null 2>&1 && pkg-config --exists openssl
}

if have_openssl_dev; then
  echo "install-tools: OpenSSL headers and pkg-config already installed"
elif command -v apt-get >/dev/null 2>&1; then
  apt_install libssl-dev pkg-config
else
  echo "install-tools: no apt-get here; install OpenSSL's development files and pkg-config" \
    "yourself (building librdkafka with TLS needs them)" >&2
fi

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
  # Only the binary is needed: the tests start their own instance, never the system service.
  apt_install prometheus-alertmanager
else
  echo "install-tools: no apt-get here; install Prometheus Alertmanager yourself and put" \
    "'alertmanager' (or set SLUICEDEV_ALERTMANAGER) on the PATH for the Alertmanager test" >&2
fi

have_chromium() {
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

have_dejavu() {
  [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]
}

if have_chromium && have_dejavu; then
  echo "install-tools: Chromium and the DejaVu fonts already installed"
elif command -v apt-get >/dev/null 2>&1; then
  # Only headless use: the test reads the rendered DOM and takes screenshots.
  apt_install chromium fonts-dejavu-core
else
  echo "install-tools: no apt-get here; install Chromium yourself and put 'chromium' (or set" \
    "SLUICEDEV_CHROMIUM) on the PATH for the status page test" >&2
fi

# For the checks of deploy/ (tests/e2e/deploy.rs), about 20 s on a machine with none of them
# (measured: apt-get install prometheus 11 s, pip install kubernetes-validate 7 s):
#   - promtool, from Debian's prometheus: `promtool check rules`, `test rules` and
#     `check config` on deploy/prometheus/. Only promtool is used; a Prometheus service that
#     the package's install started is stopped and disabled again.
#   - kubernetes-validate (PyPI), which carries the Kubernetes JSON schemas (1.25 to 1.37) in
#     its wheel, so the manifests of deploy/kubernetes/ are validated offline; PyYAML, which
#     the test also uses to read the manifests, comes with it.
#   - systemd-analyze, from Debian's systemd: `verify` and `security --offline` on
#     deploy/systemd/sluice.service.
if command -v promtool >/dev/null 2>&1; then
  echo "install-tools: promtool already installed"
elif command -v apt-get >/dev/null 2>&1; then
  apt_install prometheus
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    echo "install-tools: stopping the Prometheus service the package started (only promtool is needed)"
    $sudo systemctl disable --now prometheus || true
  fi
else
  echo "install-tools: no apt-get here; install Prometheus's promtool yourself for the" \
    "deploy/prometheus checks" >&2
fi

KUBERNETES_VALIDATE_VERSION=1.37.0
have_kubernetes_validate() {
  python3 - "$KUBERNETES_VALIDATE_VERSION" <<'PY' 2>/dev/null
import importlib.metadata, sys
import yaml  # noqa: F401 (the test reads the manifests with it)
sys.exit(importlib.metadata.version("kubernetes-validate") != sys.argv[1])
PY
}

if have_kubernetes_validate; then
  echo "install-tools: kubernetes-validate $KUBERNETES_VALIDATE_VERSION already installed"
elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
  echo "install-tools: installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION with pip"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
else
  echo "install-tools: no python3 with pip here; install kubernetes-validate" \
    "$KUBERNETES_VALIDATE_VERSION yourself for the deploy/kubernetes checks" >&2
fi

if command -v systemd-analyze >/dev/null 2>&1; then
  echo "install-tools: systemd-analyze already installed"
elif command -v apt-get >/dev/null 2>&1; then
  apt_install systemd
else
  echo "install-tools: no apt-get here; install systemd's systemd-analyze yourself for the" \
    "deploy/systemd checks" >&2
fi
