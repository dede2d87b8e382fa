#!/usr/bin/env bash
# bench_ingress.sh — the broker's HTTP ingress under load, as a ratio to nginx
# answering `return 202` on the same machine in the same run (the machines we
# have are noisy; only same-run ratios mean anything). See bench/README.md.
#
# wrk (bench/ingress.lua) POSTs one binary-mode CloudEvent per request to
# /default/default over 64 connections from 2 threads: `outpost broker` on
# the embedded durable log with an epoll pool of 1, 2 and 4 HTTP threads, a
# poll pool (--poll) and a thread per connection, and on the Kafka mock log,
# each right after an nginx run it is compared with. Each measured run
# follows a 2 s warm-up.
#
# Environment: OUTPOST=path to an outpost binary (default: build Release into
# build-bench), BENCH_DURATION=seconds per measured run (default 10).
# Installs wrk and nginx-light when missing (needs root then). Exits non-zero
# when any run failed or the broker answered anything but 202.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
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

bench_setup bench_ingress
bench_tools
bench_outpost

# --- helpers -----------------------------------------------------------------

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
  local url="http://127.0.0.1:$1$target" what
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
  wrk_result "$2.measured" ingress
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
  local dir="$work/broker" port rc=0
  if ! broker_up "$dir" "$@"; then
    broker_down "$dir" 2>/dev/null || true
    return 1
  fi
  port=$broker_port
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
  broker_down "$dir" || rc=1
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
  "outpost sqlite --poll|--data $work/broker/broker.db --poll"
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
bench_header
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
