#!/usr/bin/env bash
# Prepares this Debian 12 machine to run a real Kubernetes API server for the
# tests (tests/k8s, scripts/kube_up.sh), as root and offline: no image
# registry or Go proxy is reachable, so kube-apiserver is built from Debian's
# `kubernetes` source package, whose Go dependencies are vendored, with
# Debian's Go 1.19; etcd comes as a Debian binary package. Only the
# kube-apiserver binary is built (Debian ships kubectl, not the server).
# The binary is cached as $OUTPOST_KUBE_CACHE/kube-apiserver-<version>
# (default /var/cache/outpost/kube), linked as kube-apiserver there for
# kube_up.sh, next to the Go build cache (go-build/, 1.2 GB, kept so that a
# rebuild takes seconds; delete it freely); the unpacked source is removed.
# Idempotent: with the packages installed and the binary cached it only checks
# and exits (no network), well under a second. scripts/setup.sh calls it;
# OUTPOST_SKIP_KUBE=1 skips it (the k8s tests then skip).
set -euo pipefail

CACHE=${OUTPOST_KUBE_CACHE:-/var/cache/outpost/kube}
# golang-go builds; etcd-server is the apiserver's store (etcd-client's
# etcdctl helps to debug it); dpkg-dev unpacks the source with `apt-get
# source`; openssl makes kube_up.sh's certificates; curl checks readiness.
KUBE_PKGS=(golang-go etcd-server etcd-client dpkg-dev openssl curl)
SRC_LIST=/etc/apt/sources.list.d/outpost-deb-src.sources

log() { echo "setup-kube: $*"; }

if [ "${OUTPOST_SKIP_KUBE:-0}" = 1 ]; then
  log "OUTPOST_SKIP_KUBE=1: skipped"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  log "not root: kube-apiserver is not built (the k8s tests will skip)" >&2
  exit 0
fi

# The Kubernetes version of the Debian package: "1.20.5+really1.20.2-1.1+deb12u1"
# is upstream 1.20.2. The binary package kubernetes-client comes from the same
# source, so its candidate version names the source to fetch without deb-src.
deb_version() {
  apt-cache policy kubernetes-client 2>/dev/null | awk '/Candidate:/ { print $2 }'
}

missing_packages() {
  local installed p
  # One dpkg-query for all, as this runs on every setup.sh; it fails when a
  # package was never installed, which only means "missing" here.
  installed=" $({ dpkg-query -W -f='${Package} ${Status}\n' "${KUBE_PKGS[@]}" 2>/dev/null || true; } |
    awk '/ install ok installed$/ { printf "%s ", $1 }')"
  for p in "${KUBE_PKGS[@]}"; do
    [[ "$installed" == *" $p "* ]] || echo "$p"
  done
  # kubectl for tests and debugging; any kubectl will do (Google's Cloud SDK
  # ships one that would clash with Debian's package over /usr/bin/kubectl).
  command -v kubectl >/dev/null 2>&1 || echo kubernetes-client
}

install_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# deb-src for the same mirrors as the system's own deb822 list, in a file of
# our own so that the system's list stays untouched.
enable_deb_src() {
  local created=0
  if [ ! -f "$SRC_LIST" ]; then
    cat >"$SRC_LIST" <<'EOF'
# written by outpost scripts/setup_kube.sh: Debian's source packages, to build
# kube-apiserver from the `kubernetes` source package
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    log "wrote $SRC_LIST (deb-src)"
    created=1
  fi
  # grep reads all (no -q): an early exit would fail apt-cache's pipe.
  if ((created)) || ! apt-cache showsrc kubernetes 2>/dev/null | grep '^Package: kubernetes$' >/dev/null; then
    log "apt-get update (source lists)"
    apt-get update -qq
  fi
}

# Fetches the source package pinned to version $1 into $2 and moves its tree
# to $2/gopath/src/k8s.io/kubernetes. Kubernetes 1.20 builds in GOPATH mode
# (its hack/lib/init.sh sets GO111MODULE=off): its go.mod and
# vendor/modules.txt do not pass Go 1.19's -mod=vendor checks ("updates to
# go.mod needed"), while GOPATH mode resolves every import through vendor/
# (where k8s.io/api and the other staging repositories are symlinks).
fetch_source() {
  local debver=$1 work=$2 src
  log "fetching and unpacking the kubernetes $debver source package"
  # Root downloads unsandboxed (the _apt user cannot write here); that is fine.
  if ! (cd "$work" && apt-get source -qq "kubernetes=$debver" >"$work/source.log" 2>&1); then
    log "apt-get source failed:"
    tail -n 20 "$work/source.log" >&2
    exit 1
  fi
  src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)
  if [ -z "$src" ] || [ ! -d "$src/vendor" ]; then
    log "no vendored source tree under $work" >&2
    exit 1
  fi
  mkdir -p "$work/gopath/src/k8s.io"
  mv "$src" "$work/gopath/src/k8s.io/kubernetes"
  rm -f "$work"/kubernetes_*
}

# Runs "$@" in the tree at $tree with the offline Go environment: GOPATH
# mode, no module proxy or checksum database, the build cache under $CACHE
# (not in root's home). GOROOT is explicit because openapi-gen, built with
# -trimpath, would otherwise look for the standard library under /usr/src.
go_env() {
  (cd "$tree" && env GO111MODULE=off GOPATH="$gopath" GOPROXY=off GOSUMDB=off GOFLAGS= \
    CGO_ENABLED=0 GOCACHE="$CACHE/go-build" GOROOT="$(go env GOROOT)" "$@")
}

# pkg/generated/openapi is not in the source (make's generated_files target
# writes it): generate it as Makefile.generated_files does, with openapi-gen
# from vendor/ over every package that carries a +k8s:openapi-gen tag (the
# other generated files the apiserver needs are in the source).
gen_openapi() {
  local dirs
  go_env go build -trimpath -o "$work/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen ||
    return 1
  dirs=$(cd "$tree" &&
    find . \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune -o -type f -name '*.go' -print0 |
    xargs -0 grep -l '^// *+k8s:' | xargs grep -l '+k8s:openapi-gen=' |
    sed 's|^\./||; s|^staging/src/|vendor/|; s|/[^/]*$||' |
    grep -v -E '^vendor/k8s\.io/(code-generator|sample-apiserver)/' | LC_ALL=C sort -u |
    sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
  go_env "$work/openapi-gen" --logtostderr -i "$dirs" \
    -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
    -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
    -r "$work/openapi-violations.report" -o "$gopath/src"
}

# Builds kube-apiserver $3 from the source package pinned to version $1 into
# $2, in a scratch directory under $CACHE that is removed afterwards (the
# unpacked source is 500 MB; the build cache stays for a faster rebuild).
build_apiserver() {
  local debver=$1 out=$2 version=$3 t0 work gopath tree
  t0=$(date +%s)
  mkdir -p "$CACHE"
  work=$(mktemp -d "$CACHE/src.XXXXXX")
  gopath="$work/gopath"
  tree="$gopath/src/k8s.io/kubernetes"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  fetch_source "$debver" "$work"

  log "building kube-apiserver $version from Debian's source (about 10 minutes on 2 cores)"
  # The version variables are the ones hack/lib/version.sh sets, so that
  # /version says v$version; -s -w drop the symbol tables (a third smaller).
  local pkg ldflags=() major minor
  major=${version%%.*}
  minor=${version#*.}
  minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    pkg="k8s.io/kubernetes/vendor/$pkg"
    ldflags+=("-X $pkg.gitVersion=v$version" "-X $pkg.gitMajor=$major"
      "-X $pkg.gitMinor=$minor" "-X $pkg.gitTreeState=clean"
      "-X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)")
  done
  if ! { gen_openapi && go_env go build -trimpath -ldflags "-s -w ${ldflags[*]}" \
    -o "$out.tmp" ./cmd/kube-apiserver; } >"$work/build.log" 2>&1; then
    log "the build failed; the end of its output:"
    tail -n 30 "$work/build.log" >&2
    exit 1
  fi
  mv -f "$out.tmp" "$out"
  ln -sfn "${out##*/}" "$CACHE/kube-apiserver"
  rm -rf "$work"
  trap - EXIT
  log "built $out in $(($(date +%s) - t0)) s"
}

main() {
  local debver version out
  # Fast path: the packages are there and kube_up.sh's link points at a built
  # binary. No apt-cache here: it can take seconds (without a package cache).
  # A newer Debian version is only picked up once the link is removed.
  if [ -x "$CACHE/kube-apiserver" ] && [ -z "$(missing_packages)" ]; then
    exit 0
  fi
  install_packages
  debver=$(deb_version)
  if [ -z "$debver" ] || [ "$debver" = "(none)" ]; then
    log "apt-get update (no kubernetes-client candidate yet)"
    apt-get update -qq
    debver=$(deb_version)
  fi
  if [ -z "$debver" ] || [ "$debver" = "(none)" ]; then
    log "Debian has no kubernetes package here" >&2
    exit 1
  fi
  version=${debver#*really}
  version=${version%%-*}
  version=${version#*:}
  out="$CACHE/kube-apiserver-$version"
  if [ -x "$out" ]; then
    ln -sfn "${out##*/}" "$CACHE/kube-apiserver"
  else
    enable_deb_src
    build_apiserver "$debver" "$out" "$version"
  fi
  log "ok ($out)"
}

# exit on the same line: bash reads a script while running it, and this
# script runs for minutes, during which it may be edited or replaced.
main "$@"; exit
