#!/usr/bin/env bash
# bench_ingress.sh — the broker's HTTP ingress under load, as a ratio to nginx
# answering `return 202` on the same machine in the same run (the machines we
# have are noisy; only same-run ratios mean anything). See bench/README.md.
#
# wrk (bench/ingress.lua) POSTs one binary-mode CloudEvent per request to
# /default/default over 64 connections from 2 threads: `outpost broker` on
# the embedded durable log by default (the fast lane in front of both
# pools), without the lane (--no-fast-lane), an epoll pool of 1, 2 and 4
# HTTP threads, a poll pool (--poll) and a thread per connection, and on the
# Kafka mock log, each right after an nginx run it is compared with. Each
# measured run follows a 2 s warm-up.
#
# Environment: OUTPOST=path to an outpost binary (default: build Release into
# build-bench), BENCH_DURATION=seconds per measured run (default 10),
# BENCH_ROUNDS=times the whole list runs (default 1; from 2 on, a summary of
# each configuration's rounds follows the table, and even rounds run the list
# backwards), BENCH_ONLY=an extended regular expression: only the
# configurations whose label matches it (e.g. 'default|--epoll -t 2').
# Installs wrk and nginx-light when missing (needs root then). Exits non-zero
# when any run failed or the broker answered anything but 202.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
duration=${BENCH_DURATION:-10}
rounds=${BENCH_ROUNDS:-1}
warmup=2
connections=64
wrk_threads=2
lua="$here/ingress.lua"
target=/default/default

want_whole BENCH_DURATION "$duration"
want_whole BENCH_ROUNDS "$rounds"

bench_setup bench_ingress
bench_tools
bench_outpost

# --- helpers -----------------------------------------------------------------

# settled_metrics and cpu_ticks: lib.sh.

# load PORT LOG [METRICS PID]: warm-up, then the measured run (with METRICS,
# the broker's /metrics between the two, and PID's CPU ticks over the
# measured run in $ticks); sets $result to the Lua done() line. Fails when
# wrk fails or any request failed.
load() {
  local url="http://127.0.0.1:$1$target" what t0=
  result=
  ticks=
  for what in warmup measured; do
    local secs=$warmup
    [ "$what" = measured ] && secs=$duration
    [ "$what" = measured ] && [ -n "${4:-}" ] && t0=$(cpu_ticks "$4")
    if ! wrk -t"$wrk_threads" -c"$connections" -d"${secs}s" -s "$lua" "$url" >"$2.$what" 2>&1; then
      echo "  wrk failed ($what):" >&2
      sed 's/^/    /' "$2.$what" >&2
      return 1
    fi
    [ -n "$t0" ] && ticks=$(($(cpu_ticks "$4") - t0))
    if [ "$what" = warmup ] && [ -n "${3:-}" ]; then
      # Counters before the measured run, to compare with what wrk completed.
      settled_metrics "$1" "$3" || return 1
    fi
  done
  wrk_result "$2.measured" ingress
}

labels=()
rps=()
p50=()
p99=()
cpu=() # the broker's CPU per request, us ("-" for nginx)
status=()
base=() # for each row, the index of the nginx run it is compared with
last_nginx=-1
failed=0

record() { # label, then result line or empty for a failure, then CPU us per request
  case $1 in nginx*) last_nginx=${#labels[@]} ;; esac
  base+=("$last_nginx")
  labels+=("$1")
  if [ -n "$2" ]; then
    rps+=("$(field "$2" rps)")
    p50+=("$(field "$2" p50_ms)")
    p99+=("$(field "$2" p99_ms)")
    cpu+=("${3:--}")
    status+=(ok)
  else
    rps+=(-)
    p50+=(-)
    p99+=(-)
    cpu+=(-)
    status+=(FAILED)
    failed=1
  fi
}

run_nginx() { # label
  local dir="$work/nginx" rc=0
  nginx_up "$dir" 202 || return 1
  load "$nginx_port" "$dir/wrk" || rc=1
  nginx_down "$dir"
  return "$rc"
}

run_broker() { # label, then broker flags
  shift
  # A fresh log per run.
  local dir="$work/broker" port completed rc=0
  if ! broker_up "$dir" "$@"; then
    broker_down "$dir" 2>/dev/null || true
    return 1
  fi
  port=$broker_port
  if load "$port" "$dir/wrk" "$dir/metrics.before" "$broker_pid"; then
    completed=$(field "$result" requests)
    if ! settled_metrics "$port" "$dir/metrics.after" ||
      ! metrics_agree "$dir/metrics.before" "$dir/metrics.after" "$completed" "$connections"; then
      rc=1
    else
      cpu_us=$(us_per_request "$ticks" "$completed")
    fi
  else
    rc=1
  fi
  broker_down "$dir" || rc=1
  return "$rc"
}

# run LABEL KIND [FLAGS...]: one row of the table.
run() {
  local label=$1 kind=$2
  shift 2
  echo "bench_ingress: $label"
  result=
  cpu_us=
  if "run_$kind" "$label" "$@"; then
    record "$label" "$result" "$cpu_us"
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
  "outpost sqlite (default)|--data $work/broker/broker.db"
  "outpost sqlite --no-fast-lane|--data $work/broker/broker.db --no-fast-lane"
  "outpost sqlite --epoll -t 1|--data $work/broker/broker.db --epoll --threads 1"
  "outpost sqlite --epoll -t 2|--data $work/broker/broker.db --epoll --threads 2"
  "outpost sqlite --epoll -t 4|--data $work/broker/broker.db --epoll --threads 4"
  "outpost sqlite --poll|--data $work/broker/broker.db --poll"
  "outpost sqlite thread/conn|--data $work/broker/broker.db --thread-per-connection"
  "outpost --kafka mock|--kafka mock"
)
if [ -n "${BENCH_ONLY:-}" ]; then
  chosen=()
  for c in "${configs[@]}"; do
    if printf '%s\n' "${c%%|*}" | grep -Eq -- "$BENCH_ONLY"; then chosen+=("$c"); fi
  done
  if [ "${#chosen[@]}" = 0 ]; then
    echo "bench_ingress: BENCH_ONLY '$BENCH_ONLY' matches no configuration" >&2
    exit 2
  fi
  configs=("${chosen[@]}")
fi
for ((r = 1; r <= rounds; r++)); do
  order=("${configs[@]}")
  if ((r % 2 == 0)); then
    order=()
    for ((i = ${#configs[@]} - 1; i >= 0; i--)); do order+=("${configs[i]}"); done
  fi
  for c in "${order[@]}"; do
    run "nginx return 202" nginx
    # shellcheck disable=SC2086 # the flags are words
    run "${c%%|*}" broker ${c#*|}
  done
done

# --- report ------------------------------------------------------------------

echo
bench_header
echo "load:   wrk $connections connections, $wrk_threads threads, ${duration}s" \
  "(after ${warmup}s warm-up), one binary-mode CloudEvent (100-byte JSON) per POST"
echo
printf '%-30s %10s %8s %8s %7s %8s\n' configuration events/s "p50 ms" "p99 ms" ratio "cpu us"
printf '%-30s %10s %8s %8s %7s %8s\n' ------------------------------ ---------- -------- -------- ------- --------
ratios=()
for i in "${!labels[@]}"; do
  ratio=-
  b=${base[i]}
  if [ "${rps[i]}" != - ] && [ "$b" -ge 0 ] && [ "${rps[b]}" != - ]; then
    ratio=$(awk -v a="${rps[i]}" -v b="${rps[b]}" 'BEGIN { printf "%.2f", a / b }')
  fi
  ratios+=("$ratio")
  line=$(printf '%-30s %10s %8s %8s %7s %8s' "${labels[i]}" \
    "$(awk -v v="${rps[i]}" 'BEGIN { if (v == "-") print v; else printf "%.0f", v }')" \
    "$(awk -v v="${p50[i]}" 'BEGIN { if (v == "-") print v; else printf "%.2f", v }')" \
    "$(awk -v v="${p99[i]}" 'BEGIN { if (v == "-") print v; else printf "%.2f", v }')" \
    "$ratio" "${cpu[i]}")
  [ "${status[i]}" = ok ] || line="$line  FAILED"
  echo "$line"
done
echo "ratio: events/s over those of the nginx run just before;" \
  "cpu us: the broker's user+system CPU per request over the measured run"

# median_of VALUES...: the median of the numbers given ("-" left out), or "-".
median_of() {
  printf '%s\n' "$@" | grep -v '^-$' | sort -g |
    awk '{ v[NR] = $1 } END { if (!NR) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
                                else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

if ((rounds > 1)); then
  echo
  echo "over $rounds rounds: median (min-max) of each configuration's rows"
  printf '%-30s %3s %7s %11s %10s %8s\n' configuration n ratio range events/s "cpu us"
  for c in "${configs[@]}"; do
    label=${c%%|*}
    rs=() es=() cs=()
    for i in "${!labels[@]}"; do
      [ "${labels[i]}" = "$label" ] || continue
      rs+=("${ratios[i]}")
      es+=("${rps[i]}")
      cs+=("${cpu[i]}")
    done
    ok=$(printf '%s\n' "${rs[@]}" | grep -cv '^-$' || true)
    range=$(printf '%s\n' "${rs[@]}" | grep -v '^-$' | sort -g | sed -n '1p;$p' | paste -sd- -)
    printf '%-30s %3s %7s %11s %10s %8s\n' "$label" "$ok" "$(median_of "${rs[@]}")" \
      "${range:--}" "$(median_of "${es[@]}" | awk '{ if ($1 == "-") print; else printf "%.0f", $1 }')" \
      "$(median_of "${cs[@]}")"
  done
fi

if [ "$failed" != 0 ]; then
  echo "bench_ingress: FAILED (see above)" >&2
  exit 1
fi
