#!/usr/bin/env bash
# Stops the etcd and kube-apiserver that scripts/kube_up.sh started for DIR:
# SIGTERM, then SIGKILL after 10 s. Only processes whose pid file is in DIR
# and whose command line names DIR are signalled, so a reused pid or another
# DIR's cluster is never touched. Keeps certificates, tokens, kubeconfigs,
# logs and etcd data unless --clean is given, which removes what kube_up.sh
# wrote (and DIR itself when nothing else is left in it).
#
# Usage: scripts/kube_down.sh DIR [--clean]
set -euo pipefail

log() { echo "kube-down: $*"; }

case "$#:${2:-}" in
  1:) clean=0 ;;
  2:--clean) clean=1 ;;
  *)
    echo "usage: kube_down.sh DIR [--clean]" >&2
    exit 2
    ;;
esac
[ -d "$1" ] || {
  log "no $1: nothing to stop"
  exit 0
}
DIR=$(cd "$1" && pwd)

# $1 name: the pid in DIR/$1.pid when that process is alive and ours.
our_pid() {
  local pid cmd
  pid=$(cat "$DIR/$1.pid" 2>/dev/null) || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline")
  [[ "$cmd" == *" $DIR/"* ]] || return 1
  echo "$pid"
}

stop() {
  local name=$1 pid n
  if pid=$(our_pid "$name"); then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((n = 0; n < 100; n++)); do
      [ -d "/proc/$pid" ] || break
      sleep 0.1
    done
    if [ -d "/proc/$pid" ]; then
      log "$name did not stop within 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  # No pid file means "not running" to kube_up.sh and tests/k8s/kube.py.
  rm -f "$DIR/$name.pid"
}

# The apiserver first: it should not see its store vanish under it.
stop apiserver
stop etcd

if ((clean)); then
  log "removing the cluster's files in $DIR"
  rm -rf "$DIR/etcd" "$DIR/pki"
  rm -f "$DIR"/{kubeconfig,kubeconfig-limited,ca.crt,admin.token,limited.token,server} \
    "$DIR"/{etcd,apiserver}.log
  rmdir "$DIR" 2>/dev/null || true
fi
