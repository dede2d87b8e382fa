#!/usr/bin/env bash
# Prepares this Debian 12 machine to run lab environments under podman, as
# root: installs podman with runc (crun fails on hybrid cgroup v1/v2 hosts),
# writes the engine settings Outpost relies on, and builds the offline lab
# image (no image registry is reachable): a minimal Debian with a C compiler
# made by debootstrap and `podman import`ed as localhost/outpost-lab-c.
# Idempotent and quiet when everything is there: a cached image is kept.
# scripts/setup.sh calls it; OUTPOST_SKIP_PODMAN=1 skips it (non-root hosts).
set -euo pipefail

LAB_IMAGE=${OUTPOST_LAB_IMAGE:-localhost/outpost-lab-c:latest}
MIRROR=${OUTPOST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# podman and runc run environments; debootstrap builds the lab image;
# containernetworking-plugins and iptables give templates that allow network
# a bridge; curl pings the service (scripts/podman_service.sh); debootstrap
# checks the mirror's signatures with Debian's archive keyring.
PODMAN_PKGS=(podman runc debootstrap debian-archive-keyring containernetworking-plugins iptables curl)
CONF=/etc/containers/containers.conf
MARK="# written by outpost scripts/setup_podman.sh"

log() { echo "setup_podman: $*"; }

if [ "${OUTPOST_SKIP_PODMAN:-0}" = 1 ]; then
  log "OUTPOST_SKIP_PODMAN=1: skipped"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  log "not root: podman is not set up (the podman tests will skip)" >&2
  exit 0
fi

install_packages() {
  local missing=() p
  for p in "${PODMAN_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
      missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# runc, because crun cannot set up cgroups on this kind of host; the ulimits
# because podman's default (the service's own, often 1M open files) would
# hand every environment far more than a lab needs.
configure_engine() {
  if [ -f "$CONF" ] && grep -qF "$MARK" "$CONF"; then return 0; fi
  if [ -f "$CONF" ]; then
    cp -p "$CONF" "$CONF.outpost-backup"
    log "kept the previous $CONF as $CONF.outpost-backup"
  fi
  mkdir -p "$(dirname "$CONF")"
  cat >"$CONF" <<EOF
$MARK
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
EOF
  log "wrote $CONF (runtime runc)"
}

build_lab_image() {
  if podman image exists "$LAB_IMAGE"; then return 0; fi
  local t0 root
  t0=$(date +%s)
  root=$(mktemp -d /var/tmp/outpost-lab-root.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$root' '$root.log'" EXIT
  log "building $LAB_IMAGE: debootstrap bookworm minbase + gcc, libc6-dev from $MIRROR"
  # minbase and no recommends keep the image small and the build short
  # (e2fsprogs, "required" in bookworm, has no use in a container); every
  # 20th progress line is shown so that a slow mirror is visible.
  if ! debootstrap --variant=minbase --include=gcc,libc6-dev --exclude=e2fsprogs \
    bookworm "$root" "$MIRROR" 2>&1 | tee "$root.log" |
    grep --line-buffered -E '^I: (Retrieving|Validating|Installing|Configuring|Base)' |
    awk 'NR % 20 == 1 || /Base system/ { print "setup_podman:   " $0; fflush() }'; then
    log "debootstrap failed; the end of its output:"
    tail -n 20 "$root.log" >&2
    exit 1
  fi
  rm -f "$root.log"
  # Caches only slow the import and grow every environment's image.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
  log "importing into podman"
  tar -C "$root" --numeric-owner -c . |
    podman import --quiet --change 'CMD ["/bin/sh"]' --change 'WORKDIR /root' \
      --message 'outpost C compiler lab' - "$LAB_IMAGE" >/dev/null
  rm -rf "$root"
  trap - EXIT
  log "built $LAB_IMAGE in $(($(date +%s) - t0)) s"
}

install_packages
configure_engine
build_lab_image
log "ok"
