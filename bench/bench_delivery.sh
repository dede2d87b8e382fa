#!/usr/bin/env bash
# bench_delivery.sh — the trigger dispatcher's delivery rate to a local
# subscriber, unordered and ordered, each as a ratio to wrk's request rate
# to the same subscriber measured right before it (the machines we have are
# noisy; only same-run ratios mean anything). See bench/README.md.
#
# The subscriber is our own nginx answering `return 200` (empty body). For
# each mode: a fresh `outpost broker` on the embedded log, with no trigger,
# is filled with BENCH_EVENTS events (batched POSTs of 1000; partitionkeys
# over 64 keys; 100-byte JSON data); then wrk measures the subscriber; then
# one Trigger whose subscriber is that nginx is applied through
# PUT /v1/triggers (the dispatcher's consumer starts with its first trigger,
# from the beginning of the log), and the time from the PUT until /metrics
# counts every event delivered (polled every 50 ms) gives events/s. The
# ordered run's trigger has kafka.eventing.knative.dev/delivery.order:
# ordered: one event of a key in flight at a time, 64 keys in parallel.
#
# The baseline is wrk, 1 thread, 64 connections, POSTing the request the
# dispatcher sends (delivery.lua: the same ce- headers, Prefer, Accept and
# body). 64 connections because that is the dispatcher's concurrency here:
# its HTTP client opens at most 64 connections to a host (httpc
# max_per_host); unordered delivery has up to 256 records in flight
# (--window) but they wait for those 64, and ordered delivery over 64 keys
# has at most 64 requests out. 1 thread because every delivery goes through
# the one libcurl multi loop on the client's thread: wrk is the same shape
# of client doing nothing but HTTP. The ratio is then the share of that
# rate the dispatcher keeps while it also reads the log, decodes, matches
# and commits (on threads of their own, so above 1 is not impossible; wrk
# with 2 threads measured within noise of 1 on the 2-core machine used).
#
# Environment: OUTPOST=path to an outpost binary (default: build Release into
# build-bench), BENCH_EVENTS=events per run (default 50000: the PUT, the
# consumer's start and the 64 connections' set-up take about 0.1 s, and the
# poll up to 50 ms, which at 20000 events made the rate some 10% low),
# BENCH_DURATION=seconds of each wrk run (default 5, after a 2 s warm-up).
# Installs wrk and nginx-light when missing (needs root then). Exits non-zero
# when a run did not deliver every event within 60 s + 2 ms per event, when
# any event ended otherwise or was retried, or when anything else failed.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
events=${BENCH_EVENTS:-50000}
duration=${BENCH_DURATION:-5}
warmup=2
connections=64
wrk_threads=1
keys=64
batch=1000
poll=0.05
lua="$here/delivery.lua"

want_whole BENCH_EVENTS "$events"
want_whole BENCH_DURATION "$duration"
timeout_s=$((60 + events / 500))

bench_setup bench_delivery
bench_tools
bench_outpost

# --- helpers -----------------------------------------------------------------

# now: seconds since the epoch, to the microsecond.
now() { echo "$EPOCHREALTIME"; }

# fill PORT: BENCH_EVENTS events into default/default, $batch per POST in
# batched mode; fails unless every POST is answered 202.
fill() {
  local from n resp code
  local data='{"orderId":"ord-000123","customer":"c-42","items":3,"total":129.95,"currency":"EUR","express":false}'
  for ((from = 0; from < events; from += batch)); do
    n=$((events - from < batch ? events - from : batch))
    awk -v from="$from" -v n="$n" -v keys="$keys" -v data="$data" 'BEGIN {
      printf "["
      for (i = from; i < from + n; i++)
        printf "%s{\"specversion\":\"1.0\",\"id\":\"ev-%d\",\"source\":\"/bench/delivery\"," \
          "\"type\":\"dev.outpost.bench.order\",\"datacontenttype\":\"application/json\"," \
          "\"partitionkey\":\"key-%d\",\"data\":%s}", (i > from ? "," : ""), i, i % keys, data
      printf "]"
    }' >"$work/batch.json"
    resp=$(http_send "$1" POST /default/default application/cloudevents-batch+json "$work/batch.json")
    code=$(http_status "$resp")
    if [ "$code" != 202 ]; then
      echo "  filling the log: events $from-$((from + n - 1)) answered ${code:-nothing}:" >&2
      indent <<<"$resp" >&2
      return 1
    fi
  done
}

# wrk_run PORT LOG: warm-up, then the measured run; sets $result to the Lua
# done() line. Fails when wrk fails or any request failed.
wrk_run() {
  wrk_runs "http://127.0.0.1:$1/" "$2" delivery
}

# trigger_yaml MODE SUBSCRIBER-PORT: the Trigger; every event matches it.
trigger_yaml() {
  cat <<EOF
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: bench-$1
  namespace: default
EOF
  if [ "$1" = ordered ]; then
    printf '  annotations:\n    kafka.eventing.knative.dev/delivery.order: ordered\n'
  fi
  cat <<EOF
spec:
  broker: default
  filter:
    attributes:
      type: dev.outpost.bench.order
  subscriber:
    uri: http://127.0.0.1:$2/
EOF
}

# deliver BROKER-DIR MODE: applies the trigger and waits until /metrics
# counts every event delivered; sets $seconds. Fails on a timeout, or when
# any event ended otherwise or needed a retry.
deliver() {
  local dir=$1 mode=$2 resp code t0 t1 done_n=0 other retries
  local ours="trigger=\"bench-$mode\"" # the label text of our trigger's samples
  trigger_yaml "$mode" "$nginx_port" >"$dir/trigger.yaml"
  t0=$(now)
  resp=$(http_send "$broker_port" PUT /v1/triggers application/yaml "$dir/trigger.yaml")
  code=$(http_status "$resp")
  if [ "$code" != 200 ] && [ "$code" != 201 ]; then
    echo "  PUT /v1/triggers answered ${code:-nothing}:" >&2
    indent <<<"$resp" >&2
    return 1
  fi
  while :; do
    if http_get "$broker_port" /metrics >"$dir/metrics" 2>/dev/null; then
      done_n=$(metric "$dir/metrics" outpost_trigger_events_total "$ours,outcome=\"delivered\"")
      ((done_n >= events)) && break
      # Every event ended, not all delivered: no use waiting for the rest.
      (($(metric "$dir/metrics" outpost_trigger_events_total "$ours") >= events)) && break
    fi
    t1=$(now)
    if awk -v a="$t0" -v b="$t1" -v t="$timeout_s" 'BEGIN { exit !(b - a > t) }'; then
      echo "  timed out after ${timeout_s}s: $done_n of $events events delivered" >&2
      grep '^outpost_trigger_' "$dir/metrics" | grep -v '_bucket{' | indent >&2 || true
      return 1
    fi
    sleep "$poll"
  done
  t1=$(now)
  seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  other=$(($(metric "$dir/metrics" outpost_trigger_events_total "$ours") - done_n))
  retries=$(metric "$dir/metrics" outpost_trigger_retries_total "$ours")
  if ((done_n != events || other != 0 || retries != 0)); then
    echo "  /metrics: $done_n delivered of $events, $other ended otherwise, $retries retries" >&2
    return 1
  fi
}

labels=()
rates=()
secs=()
status=()
base=() # for each row, the index of the wrk run it is compared with
last_wrk=-1
failed=0

record() { # label, events/s or empty for a failure, seconds or -
  case $1 in nginx*) last_wrk=${#labels[@]} ;; esac
  base+=("$last_wrk")
  labels+=("$1")
  secs+=("$3")
  if [ -n "$2" ]; then
    rates+=("$2")
    status+=(ok)
  else
    rates+=(-)
    status+=(FAILED)
    failed=1
  fi
}

# run MODE: fills a fresh broker, measures nginx with wrk, then delivery;
# records two rows.
run() {
  local mode=$1 dir="$work/broker" ndir="$work/nginx" rc=0
  echo "bench_delivery: $mode: filling a fresh log with $events events"
  seconds=
  result=
  if ! broker_up "$dir" --data "$dir/broker.db" || ! fill "$broker_port"; then
    broker_down "$dir" 2>/dev/null || true
    record "nginx return 200 (wrk)" "" -
    record "dispatcher $mode" "" -
    return 0
  fi
  if ! nginx_up "$ndir" 200; then
    broker_down "$dir" || true
    record "nginx return 200 (wrk)" "" -
    record "dispatcher $mode" "" -
    return 0
  fi
  echo "bench_delivery: $mode: wrk to nginx"
  if wrk_run "$nginx_port" "$ndir/wrk"; then
    record "nginx return 200 (wrk)" "$(field "$result" rps)" "$(field "$result" seconds)"
  else
    record "nginx return 200 (wrk)" "" -
  fi
  echo "bench_delivery: $mode: delivering"
  deliver "$dir" "$mode" || rc=1
  broker_down "$dir" || rc=1
  nginx_down "$ndir"
  if ((rc == 0)); then
    record "dispatcher $mode" "$(awk -v n="$events" -v s="$seconds" 'BEGIN { printf "%.1f", n / s }')" \
      "$seconds"
  else
    record "dispatcher $mode" "" "${seconds:--}"
  fi
}

# --- runs --------------------------------------------------------------------

echo "bench_delivery: $outpost, $events events per run ($keys partitionkeys), wrk" \
  "$connections connections, $wrk_threads thread, ${duration}s after ${warmup}s warm-up"
if pgrep -x nginx >/dev/null 2>&1; then
  echo "bench_delivery: note: another nginx is running on this machine (left alone)"
fi

run unordered
run ordered

# --- report ------------------------------------------------------------------

echo
bench_header
echo "load:   $events events (100-byte JSON, $keys partitionkeys) in the embedded log, one" \
  "trigger matching all; wrk $connections connections, $wrk_threads thread, ${duration}s" \
  "(after ${warmup}s warm-up), the dispatcher's request"
echo
printf '%-26s %10s %9s %7s\n' run events/s seconds ratio
printf '%-26s %10s %9s %7s\n' -------------------------- ---------- --------- -------
for i in "${!labels[@]}"; do
  ratio=-
  b=${base[i]}
  if [ "${rates[i]}" != - ] && [ "$b" -ge 0 ] && [ "${rates[b]}" != - ]; then
    ratio=$(awk -v a="${rates[i]}" -v b="${rates[b]}" 'BEGIN { printf "%.2f", a / b }')
  fi
  line=$(printf '%-26s %10s %9s %7s' "${labels[i]}" \
    "$(awk -v v="${rates[i]}" 'BEGIN { if (v == "-") print v; else printf "%.0f", v }')" \
    "${secs[i]}" "$ratio")
  [ "${status[i]}" = ok ] || line="$line  FAILED"
  echo "$line"
done
echo "ratio: events/s over the requests/s of the wrk run just before, to the same nginx"

if [ "$failed" != 0 ]; then
  echo "bench_delivery: FAILED (see above)" >&2
  exit 1
fi
