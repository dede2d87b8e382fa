#!/usr/bin/env bash
# bench_ingress.sh — the broker's HTTP ingress under load, as a ratio to nginx
# answering `return 202` on the same machine in the same run (the machines we
# have are noisy; only same-run ratios mean anything). See bench/README.md.
#
# wrk (bench/ingress.lua) POSTs one binary-mode CloudEvent per request to
# /default/default over 64 connections from 2 threads: `outpost broker` on
# the embedded durable log with an epoll pool of 1, 2 and 4 HTTP threads and
# with a thread per connection, and on the Kafka mock log, each right after
# an nginx run it is compared with. Each measured run follows a 2 s warm-up.
#
# Environment: OUTPOST=path to an outpost binary (default: build Release into
# build-bench), BENCH_DURATION=seconds per measured run (default 10).
# Installs wrk and nginx-light when missing (needs root then). Exits non-zero
# when any run failed or the broker answered anything but 202.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(dirname "$here")
duration=${BENCH_DURATION:-10}
warmup=2
connections=64
wrk_threads=2
lua="$here/ingress.lua"
target=/default/default

case $duration in
'' | *[!0-9]* | 0)
  echo "bench_ingress: BENCH_DURATION wants whole seconds > 0, not '$duration'" >&2
  exit 2
  ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/outpost-bench-ingress.XXXXXX")
nginx_pid=
nginx_port=
broker_pid=
our_policy=

cleanup() {
  local pid
  for pid in "$nginx_pid" "$broker_pid"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ -n "$our_policy" ]; then rm -f "$our_policy"; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- tools -------------------------------------------------------------------

nginx_bin=$(command -v nginx || true)
if [ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ]; then nginx_bin=/usr/sbin/nginx; fi
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[ -n "$nginx_bin" ] || missing+=(nginx-light)
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "bench_ingress: missing ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "bench_ingress: installing ${missing[*]}"
  # Debian's nginx starts a system service on port 80 when installed, and the
  # install fails when something else holds port 80. Neither is wanted: we run
  # our own nginx on a high port. A policy-rc.d that refuses every start keeps
  # the package from starting it (it is removed again right after).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    our_policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$our_policy"
    chmod 755 "$our_policy"
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y --no-install-recommends "${missing[@]}"
  if [ -n "$our_policy" ]; then
    rm -f "$our_policy"
    our_policy=
  fi
  nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
fi

if [ -n "${OUTPOST:-}" ]; then
  outpost=$OUTPOST
  # The broker runs in a directory of its own: the path must not be relative.
  case $outpost in
  /*) ;;
  */*) outpost="$PWD/$outpost" ;;
  *) outpost=$(command -v "$outpost" || echo "$PWD/$outpost") ;;
  esac
else
  echo "bench_ingress: building Release into build-bench"
  (cd "$top" &&
    cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null &&
    cmake --build build-bench -j2 --target outpost >/dev/null)
  outpost="$top/build-bench/cmd/outpost"
fi
if [ ! -x "$outpost" ]; then
  echo "bench_ingress: no outpost binary at $outpost" >&2
  exit 1
fi

# --- helpers -----------------------------------------------------------------

# http_get PORT PATH: the whole response (headers and body), without curl.
http_get() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3
    timeout 10 cat <&3
  )
}

# free_port: a TCP port nothing on 127.0.0.1 answers on, outside the
# kernel's ephemeral range (where wrk's own connections could hold it).
free_port() {
  local lo=32768 hi=60999 from=10000 span p i
  read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  span=$((lo - from))
  if ((span < 1000)); then
    from=$((hi + 1))
    span=$((65536 - from))
  fi
  if ((span < 100)); then
    from=20000
    span=40000
  fi
  for ((i = 0; i < 100; i++)); do
    p=$((from + RANDOM % span))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# wait_http PID PORT: waits until PID answers HTTP on PORT; fails if it exits.
wait_http() {
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$1" 2>/dev/null || return 1
    if http_get "$2" /healthz 2>/dev/null | head -1 | grep -q '^HTTP/1'; then return 0; fi
    sleep 0.1
  done
  return 1
}

# field LINE NAME: the value of NAME=value in a result line.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

# metric FILE NAME: the sum of NAME's samples in a /metrics response.
metric() {
  awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%d\n", s }' "$1"
}

# settled_metrics PORT FILE: /metrics into FILE once the broker has answered
# everything it received (nothing in flight, the accepted count still), so
# the tail of the previous wrk run is not counted in the next.
settled_metrics() {
  local i prev=-1 now
  for ((i = 0; i < 50; i++)); do
    http_get "$1" /metrics >"$2" || return 1
    now=$(metric "$2" outpost_ingress_events_accepted_total)
    if [ "$(metric "$2" outpost_ingress_inflight_requests)" = 0 ] && [ "$now" = "$prev" ]; then
      return 0
    fi
    prev=$now
    sleep 0.1
  done
  echo "  the broker did not settle after wrk stopped" >&2
  return 1
}

# load PORT LOG [METRICS]: warm-up, then the measured run (with METRICS, the
# broker's /metrics between the two); sets $result to the Lua done() line.
# Fails when wrk fails or any request failed.
load() {
  local url="http://127.0.0.1:$1$target" what n
  result=
  for what in warmup measured; do
    local secs=$warmup
    [ "$what" = measured ] && secs=$duration
    if ! wrk -t"$wrk_threads" -c"$connections" -d"${secs}s" -s "$lua" "$url" >"$2.$what" 2>&1; then
      echo "  wrk failed ($what):" >&2
      sed 's/^/    /' "$2.$what" >&2
      return 1
    fi
    if [ "$what" = warmup ] && [ -n "${3:-}" ]; then
      # Counters before the measured run, to compare with what wrk completed.
      settled_metrics "$1" "$3" || return 1
    fi
  done
  result=$(grep '^ingress-result ' "$2.measured" || true)
  if [ -z "$result" ]; then
    echo "  no result line from ingress.lua:" >&2
    sed 's/^/    /' "$2.measured" >&2
    return 1
  fi
  for n in status_errors connect_errors read_errors write_errors timeouts; do
    if [ "$(field "$result" "$n")" != 0 ]; then
      echo "  $n=$(field "$result" "$n") in the measured run (anything but 2xx/3xx is status_errors)" >&2
      return 1
    fi
  done
  if [ "$(field "$result" requests)" = 0 ]; then
    echo "  no request completed" >&2
    return 1
  fi
}

labels=()
rps=()
p50=()
p99=()
status=()
base=() # for each row, the index of the nginx run it is compared with
last_nginx=-1
failed=0

record() { # label, then result line or empty for a failure
  case $1 in nginx*) last_nginx=${#labels[@]} ;; esac
  base+=("$last_nginx")
  labels+=("$1")
  if [ -n "$2" ]; then
    rps+=("$(field "$2" rps)")
    p50+=("$(field "$2" p50_ms)")
    p99+=("$(field "$2" p99_ms)")
    status+=(ok)
  else
    rps+=(-)
    p50+=(-)
    p99+=(-)
    status+=(FAILED)
    failed=1
  fi
}

# start_nginx DIR: our own nginx on a free port, everything it writes in DIR;
# sets nginx_pid and nginx_port.
start_nginx() {
  local dir=$1
  rm -rf "$dir"
  mkdir -p "$dir"
  nginx_port=$(free_port) || {
    echo "  no free port" >&2
    return 1
  }
  # Nothing goes to /var/log, /var/lib or /run, and no system config is read.
  cat >"$dir/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  # nginx closes a connection after 1000 requests by default, which wrk
  # would count against it; the broker keeps connections open.
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nginx_port;
    location / { return 202; }
  }
}
EOF
  "$nginx_bin" -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log" >"$dir/stdout" 2>&1 &
  nginx_pid=$!
  wait_http "$nginx_pid" "$nginx_port" && return 0
  kill -TERM "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
  nginx_pid=
  return 1
}

run_nginx() { # label
  local dir="$work/nginx" try
  # A port free when probed can be taken before nginx binds it: try others.
  for try in 1 2 3 4 5; do
    start_nginx "$dir" && break
    if ((try == 5)) || ! grep -q 'Address already in use' "$dir/error.log" 2>/dev/null; then
      echo "  nginx did not start:" >&2
      cat "$dir/stdout" "$dir/error.log" 2>/dev/null | sed 's/^/    /' >&2
      return 1
    fi
  done
  local rc=0
  load "$nginx_port" "$dir/wrk" || rc=1
  kill -TERM "$nginx_pid"
  wait "$nginx_pid" 2>/dev/null || true
  nginx_pid=
  rm -rf "$dir"
  return "$rc"
}

run_broker() { # label, then broker flags
  shift
  # A fresh log per run; the broker runs in its own directory so that
  # nothing it creates lands elsewhere.
  local dir="$work/broker" port
  rm -rf "$dir"
  mkdir -p "$dir"
  # Created here: the background shell may open them after we first look.
  : >"$dir/stdout"
  : >"$dir/stderr"
  (cd "$dir" && exec "$outpost" broker --listen 127.0.0.1:0 "$@") >"$dir/stdout" 2>"$dir/stderr" &
  broker_pid=$!
  local i
  for ((i = 0; i < 100; i++)); do
    port=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$dir/stdout")
    [ -n "$port" ] && break
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$port" ] || ! wait_http "$broker_pid" "$port"; then
    echo "  outpost broker did not start:" >&2
    sed 's/^/    /' "$dir/stdout" "$dir/stderr" >&2
    return 1
  fi
  local rc=0
  if load "$port" "$dir/wrk" "$dir/metrics.before"; then
    # Every event wrk saw acknowledged is counted, and at most one more per
    # connection (answered after wrk stopped counting); nothing refused.
    if ! settled_metrics "$port" "$dir/metrics.after"; then
      rc=1
    else
      local before after rejected completed
      before=$(metric "$dir/metrics.before" outpost_ingress_events_accepted_total)
      after=$(metric "$dir/metrics.after" outpost_ingress_events_accepted_total)
      rejected=$(metric "$dir/metrics.after" outpost_ingress_requests_rejected_total)
      completed=$(field "$result" requests)
      if ((after - before < completed || after - before > completed + connections || rejected != 0)); then
        echo "  /metrics disagrees with wrk: accepted $((after - before)) during the run," \
          "wrk completed $completed, rejected $rejected" >&2
        rc=1
      fi
    fi
  else
    rc=1
  fi
  kill -TERM "$broker_pid"
  if ! wait "$broker_pid"; then
    echo "  outpost broker did not stop cleanly:" >&2
    sed 's/^/    /' "$dir/stderr" >&2
    rc=1
  fi
  broker_pid=
  rm -rf "$dir"
  return "$rc"
}

# run LABEL KIND [FLAGS...]: one row of the table.
run() {
  local label=$1 kind=$2
  shift 2
  echo "bench_ingress: $label"
  result=
  if "run_$kind" "$label" "$@"; then
    record "$label" "$result"
  else
    record "$label" ""
  fi
}

# --- runs --------------------------------------------------------------------

echo "bench_ingress: $outpost, ${duration}s per run after ${warmup}s warm-up," \
  "$connections connections, $wrk_threads wrk threads"
if pgrep -x nginx >/dev/null 2>&1; then
  echo "bench_ingress: note: another nginx is running on this machine (left alone)"
fi

# Each configuration right after an nginx run of its own, and compared with
# it: on a shared 2-core VM, nginx alone drifts by half from minute to minute.
configs=(
  "outpost sqlite --threads 1|--data $work/broker/broker.db --threads 1"
  "outpost sqlite --threads 2|--data $work/broker/broker.db --threads 2"
  "outpost sqlite --threads 4|--data $work/broker/broker.db --threads 4"
  "outpost sqlite thread/conn|--data $work/broker/broker.db --thread-per-connection"
  "outpost --kafka mock|--kafka mock"
)
for c in "${configs[@]}"; do
  run "nginx return 202" nginx
  # shellcheck disable=SC2086 # the flags are words
  run "${c%%|*}" broker ${c#*|}
done

# --- report ------------------------------------------------------------------

echo
echo "date:   $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "kernel: $(uname -srm)"
echo "nproc:  $(nproc)"
echo "commit: $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)"
echo "load:   wrk $connections connections, $wrk_threads threads, ${duration}s" \
  "(after ${warmup}s warm-up), one binary-mode CloudEvent (100-byte JSON) per POST"
echo
printf '%-30s %10s %8s %8s %7s\n' configuration events/s "p50 ms" "p99 ms" ratio
printf '%-30s %10s %8s %8s %7s\n' ------------------------------ ---------- -------- -------- -------
for i in "${!labels[@]}"; do
  ratio=-
  b=${base[i]}
  if [ "${rps[i]}" != - ] && [ "$b" -ge 0 ] && [ "${rps[b]}" != - ]; then
    ratio=$(awk -v a="${rps[i]}" -v b="${rps[b]}" 'BEGIN { printf "%.2f", a / b }')
  fi
  line=$(printf '%-30s %10s %8s %8s %7s' "${labels[i]}" \
    "$(awk -v v="${rps[i]}" 'BEGIN { if (v == "-") print v; else printf "%.0f", v }')" \
    "$(awk -v v="${p50[i]}" 'BEGIN { if (v == "-") print v; else printf "%.2f", v }')" \
    "$(awk -v v="${p99[i]}" 'BEGIN { if (v == "-") print v; else printf "%.2f", v }')" \
    "$ratio")
  [ "${status[i]}" = ok ] || line="$line  FAILED"
  echo "$line"
done
echo "ratio: events/s over those of the nginx run just before"

if [ "$failed" != 0 ]; then
  echo "bench_ingress: FAILED (see above)" >&2
  exit 1
fi
