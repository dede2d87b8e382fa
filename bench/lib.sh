# lib.sh — what the bench/*.sh scripts share, sourced by them (not run):
# their working directory and its clean-up, installing wrk and nginx-light,
# building or finding `outpost`, HTTP without curl, free ports, and starting
# our own nginx and `outpost broker`. See bench/README.md.
#
# The sourcing script checks its settings (want_whole), then calls
# bench_setup (with its name, for messages), bench_tools and bench_outpost,
# in that order.
# shellcheck shell=bash

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(dirname "$here")

bench=bench
work=
nginx_bin=
nginx_pid=
nginx_port=
broker_pid=
broker_port=
our_policy=
outpost=

# want_whole NAME VALUE [MIN]: a setting checked before anything starts.
# Returns when VALUE is a whole number of at least MIN (default 1); else says
# which setting wanted what (the script's name first) and exits 2.
want_whole() {
  local min=${3:-1} me=${0##*/}
  case $2 in
  '' | *[!0-9]*) ;;
  *) if ((10#$2 >= min)); then return 0; fi ;;
  esac
  echo "${me%.sh}: $1 wants a whole number >= $min, not '$2'" >&2
  exit 2
}

bench_cleanup() {
  local pid
  for pid in "$nginx_pid" "$broker_pid"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ -n "$our_policy" ]; then rm -f "$our_policy"; fi
  if [ -n "$work" ]; then rm -rf "$work"; fi
}

# bench_setup NAME: the temporary directory everything is made in ($work),
# and the traps that stop what we started and remove it at exit.
bench_setup() {
  bench=$1
  work=$(mktemp -d "${TMPDIR:-/tmp}/outpost-$bench.XXXXXX")
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# bench_tools: wrk and nginx, installed when missing (needs root then);
# sets nginx_bin.
bench_tools() {
  nginx_bin=$(command -v nginx || true)
  if [ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ]; then nginx_bin=/usr/sbin/nginx; fi
  local missing=()
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  [ -n "$nginx_bin" ] || missing+=(nginx-light)
  ((${#missing[@]})) || return 0
  if [ "$(id -u)" != 0 ]; then
    echo "$bench: missing ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "$bench: installing ${missing[*]}"
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
}

# bench_build TARGET: the CMake target built Release into build-bench.
bench_build() {
  echo "$bench: building Release into build-bench"
  (cd "$top" &&
    cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null &&
    cmake --build build-bench -j2 --target "$1" >/dev/null)
}

# bench_need_ebpf: exits with a message unless we are root, the kernel has
# BTF and cgroup2 is mounted (what loading the detector's programs into a
# cgroup of our own needs); sets cg2 to the cgroup2 mount.
bench_need_ebpf() {
  if [ "$(id -u)" != 0 ]; then
    echo "$bench: needs root (it loads eBPF programs and makes cgroups)" >&2
    exit 1
  fi
  if [ ! -r /sys/kernel/btf/vmlinux ]; then
    echo "$bench: the kernel has no BTF (/sys/kernel/btf/vmlinux)" >&2
    exit 1
  fi
  cg2=$(awk '$0 ~ / - cgroup2 / { print $5; exit }' /proc/self/mountinfo)
  if [ -z "$cg2" ]; then
    echo "$bench: no cgroup2 mount" >&2
    exit 1
  fi
}

# bench_binary VAR TARGET PATH [GIVEN]: sets VAR to the binary to measure:
# GIVEN (made absolute: the broker runs in a directory of its own), or the
# CMake TARGET built Release into build-bench, at PATH below it. Exits when
# there is no such executable.
bench_binary() {
  local -n bin_=$1
  if [ -n "${4:-}" ]; then
    bin_=$4
    case $bin_ in
    /*) ;;
    */*) bin_="$PWD/$bin_" ;;
    *) bin_=$(command -v "$bin_" || echo "$PWD/$bin_") ;;
    esac
  else
    bench_build "$2"
    bin_="$top/build-bench/$3"
  fi
  if [ ! -x "$bin_" ]; then
    echo "$bench: no $2 binary at $bin_" >&2
    exit 1
  fi
}

# bench_outpost: the binary to measure ($OUTPOST, or Release built into
# build-bench); sets outpost to an absolute path.
bench_outpost() {
  bench_binary outpost outpost cmd/outpost "${OUTPOST:-}"
}

# bench_header: date, kernel, cores and commit, for the report.
bench_header() {
  echo "date:   $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "kernel: $(uname -srm)"
  echo "nproc:  $(nproc)"
  echo "commit: $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)"
}

# --- HTTP and ports ----------------------------------------------------------

# http_get PORT PATH: the whole response (headers and body), without curl.
http_get() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3
    timeout 10 cat <&3
  )
}

# http_send PORT METHOD PATH CONTENT-TYPE FILE: sends FILE as the body;
# prints the whole response.
http_send() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf '%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n' "$2" "$3" >&3
    printf 'Content-Type: %s\r\nContent-Length: %d\r\n\r\n' "$4" "$(wc -c <"$5")" >&3
    cat "$5" >&3
    timeout 30 cat <&3
  )
}

# http_status RESPONSE: the status code of a response http_get or http_send
# printed.
http_status() { sed -n '1s|^HTTP/1\.[01] \([0-9]*\).*|\1|p' <<<"$1"; }

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

# indent: stdin to stdout, each line indented, for quoting output in messages.
indent() { sed 's/^/    /'; }

# field LINE NAME: the value of NAME=value in a result line.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

# metric FILE NAME [LABEL-TEXT]: the sum of NAME's samples in a /metrics
# response, of those whose labels contain LABEL-TEXT when it is given.
metric() {
  awk -v n="$2" -v l="${3:-}" '($1 == n || index($1, n "{") == 1) && (l == "" || index($1, l)) { s += $2 }
    END { printf "%d\n", s }' "$1"
}

# wrk_result FILE TAG: sets result to the "TAG-result" line the wrk script's
# done() wrote into FILE (wrk's output); fails when there is none, when any
# request failed (a status of 400 or more, a socket error, a timeout) or
# when none completed.
wrk_result() {
  local n
  result=$(grep "^$2-result " "$1" || true)
  if [ -z "$result" ]; then
    echo "  no result line from $2.lua:" >&2
    indent <"$1" >&2
    return 1
  fi
  for n in status_errors connect_errors read_errors write_errors timeouts; do
    if [ "$(field "$result" "$n")" != 0 ]; then
      echo "  $n=$(field "$result" "$n") in the measured run" \
        "(anything but 2xx/3xx is status_errors)" >&2
      return 1
    fi
  done
  if [ "$(field "$result" requests)" = 0 ]; then
    echo "  no request completed" >&2
    return 1
  fi
}

# wrk_runs URL LOG TAG: a warm-up of $warmup s, then the measured run of
# $duration s, both wrk -t$wrk_threads -c$connections -s $lua against URL
# (each run's output in LOG.warmup, LOG.measured); sets $result to the TAG
# line of the measured run (wrk_result). Fails when wrk fails or any request
# failed.
wrk_runs() {
  local what secs
  result=
  for what in warmup measured; do
    secs=$warmup
    [ "$what" = measured ] && secs=$duration
    if ! wrk -t"$wrk_threads" -c"$connections" -d"${secs}s" -s "$lua" "$1" >"$2.$what" 2>&1; then
      echo "  wrk failed ($what):" >&2
      indent <"$2.$what" >&2
      return 1
    fi
  done
  wrk_result "$2.measured" "$3"
}

# --- nginx -------------------------------------------------------------------

# start_nginx DIR STATUS [CERT KEY]: our own nginx on a free port, answering
# every request with STATUS and an empty body, everything it writes in DIR;
# with CERT and KEY (PEM files), over TLS 1.2 and 1.3 only. Sets nginx_pid
# and nginx_port.
start_nginx() {
  local dir=$1 status=$2 cert=${3:-} key=${4:-} listen i
  rm -rf "$dir"
  mkdir -p "$dir"
  nginx_port=$(free_port) || {
    echo "  no free port" >&2
    return 1
  }
  listen="listen 127.0.0.1:$nginx_port;"
  if [ -n "$cert" ]; then
    listen="listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;"
  fi
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
    $listen
    location / { return $status; }
  }
}
EOF
  "$nginx_bin" -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log" >"$dir/stdout" 2>&1 &
  nginx_pid=$!
  if [ -z "$cert" ]; then
    wait_http "$nginx_pid" "$nginx_port" && return 0
  else
    for ((i = 0; i < 100; i++)); do
      kill -0 "$nginx_pid" 2>/dev/null || break
      curl -sk -o /dev/null "https://127.0.0.1:$nginx_port/" && return 0
      sleep 0.1
    done
  fi
  kill -TERM "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
  nginx_pid=
  return 1
}

# nginx_up DIR STATUS [CERT KEY]: start_nginx, trying other ports when the
# one found free was taken before nginx bound it.
nginx_up() {
  local try
  for try in 1 2 3 4 5; do
    start_nginx "$@" && return 0
    if ((try == 5)) || ! grep -q 'Address already in use' "$1/error.log" 2>/dev/null; then
      echo "  nginx did not start:" >&2
      cat "$1/stdout" "$1/error.log" 2>/dev/null | sed 's/^/    /' >&2
      return 1
    fi
  done
}

# nginx_down DIR: stops the nginx we started and removes DIR.
nginx_down() {
  if [ -n "$nginx_pid" ]; then
    kill -TERM "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
  fi
  nginx_pid=
  rm -rf "$1"
}

# --- outpost broker ----------------------------------------------------------

# broker_up DIR [FLAGS...]: `outpost broker FLAGS` on a port of its own,
# run in DIR (made afresh, so that nothing it creates lands elsewhere);
# sets broker_pid and broker_port once it answers.
broker_up() {
  local dir=$1 i
  shift
  rm -rf "$dir"
  mkdir -p "$dir"
  # Created here: the background shell may open them after we first look.
  : >"$dir/stdout"
  : >"$dir/stderr"
  (cd "$dir" && exec "$outpost" broker --listen 127.0.0.1:0 "$@") >"$dir/stdout" 2>"$dir/stderr" &
  broker_pid=$!
  broker_port=
  for ((i = 0; i < 100; i++)); do
    broker_port=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$dir/stdout")
    [ -n "$broker_port" ] && break
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$broker_port" ] || ! wait_http "$broker_pid" "$broker_port"; then
    echo "  outpost broker did not start:" >&2
    sed 's/^/    /' "$dir/stdout" "$dir/stderr" >&2
    return 1
  fi
}

# settled_metrics PORT FILE: the broker's /metrics into FILE once it has
# answered everything it received (nothing in flight, the accepted count
# still), so the tail of one wrk run is not counted in the next.
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

# cpu_ticks PID: the process's user+system CPU so far (all its threads), in
# clock ticks.
cpu_ticks() {
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# us_per_request TICKS N: TICKS of CPU over N requests, in microseconds a
# request ("-" when N is 0).
us_per_request() {
  awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v n="$2" \
    'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }'
}

# metrics_agree BEFORE AFTER COMPLETED CONNECTIONS: the broker's /metrics
# files around a wrk run agree with the COMPLETED requests wrk counted: every
# event wrk saw acknowledged is counted, and at most one more per connection
# (answered after wrk stopped counting); nothing refused. Says why and fails
# otherwise.
metrics_agree() {
  local before after rejected
  before=$(metric "$1" outpost_ingress_events_accepted_total)
  after=$(metric "$2" outpost_ingress_events_accepted_total)
  rejected=$(metric "$2" outpost_ingress_requests_rejected_total)
  if ((after - before < $3 || after - before > $3 + $4 || rejected != 0)); then
    echo "  /metrics disagree with wrk: accepted $((after - before)) during the load," \
      "wrk completed $3, rejected $rejected" >&2
    return 1
  fi
}

# broker_down DIR: stops the broker (SIGTERM) and removes DIR; fails when it
# did not exit cleanly.
broker_down() {
  local rc=0
  if [ -n "$broker_pid" ]; then
    kill -TERM "$broker_pid" 2>/dev/null || true
    if ! wait "$broker_pid"; then
      echo "  outpost broker did not stop cleanly:" >&2
      sed 's/^/    /' "$1/stderr" >&2
      rc=1
    fi
  fi
  broker_pid=
  rm -rf "$1"
  return "$rc"
}
