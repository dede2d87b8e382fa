#!/usr/bin/env bash
# Starts, checks or stops the podman service that serves the Docker Engine
# API on a unix socket, which is how Outpost's runtime talks to podman.
# There is no systemd on the machines we run on, so the service is a plain
# background process; `start` returns once the socket answers /_ping (or
# fails after OUTPOST_PODMAN_WAIT seconds, 30 by default), and does nothing
# when something already answers there. `stop` stops only a service this
# script started (by the pid it wrote).
#   usage: podman_service.sh start|stop|status
set -euo pipefail

SOCK=${OUTPOST_PODMAN_SOCK:-/run/podman/podman.sock}
RUN=$(dirname "$SOCK")
PIDFILE=$RUN/outpost-podman-service.pid
LOGFILE=$RUN/outpost-podman-service.log
WAIT=${OUTPOST_PODMAN_WAIT:-30}

log() { echo "podman_service: $*" >&2; }

answers() {
  [ -S "$SOCK" ] &&
    [ "$(curl -s --max-time 2 --unix-socket "$SOCK" http://d/_ping 2>/dev/null)" = OK ]
}

start() {
  if answers; then return 0; fi
  command -v podman >/dev/null || { log "podman is not installed (scripts/setup_podman.sh)"; exit 1; }
  mkdir -p "$RUN"
  # A socket left by a killed service would make the new one fail to bind.
  rm -f "$SOCK"
  # --time=0: never exit for idleness; setsid: outlive the shell that
  # started it (the test run) without its signals.
  setsid podman system service --time=0 "unix://$SOCK" >"$LOGFILE" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local i
  for ((i = 0; i < WAIT * 10; i++)); do
    if answers; then
      log "started (pid $(cat "$PIDFILE"), socket $SOCK)"
      return 0
    fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      log "the service exited; its log ($LOGFILE):"
      cat "$LOGFILE" >&2
      exit 1
    fi
    sleep 0.1
  done
  log "no answer on $SOCK after ${WAIT}s; log in $LOGFILE"
  exit 1
}

stop() {
  [ -f "$PIDFILE" ] || return 0
  local pid
  pid=$(cat "$PIDFILE")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$PIDFILE"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status)
  if answers; then echo "podman service answers on $SOCK"; else echo "no podman service on $SOCK"; exit 1; fi
  ;;
*)
  echo "usage: $0 start|stop|status" >&2
  exit 2
  ;;
esac
