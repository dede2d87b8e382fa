#!/usr/bin/env bash
# bench_ingress_pairs.sh — the broker's HTTP ingress as a ratio to nginx
# `return 202`, by paired alternation. bench_ingress.sh compares one broker run
# with one nginx run taken just before it; on this shared 2-core VM (host
# steal, bursts of contention lasting seconds) a burst that hits one side and
# not the other moves a round's ratio by half (the default's ranged from 0.34
# to 0.64). Here one nginx and one broker run for the whole measurement and
# short wrk chunks alternate between them: each pair gives the ratio of two
# chunks seconds apart, nginx first in odd pairs and the broker first in even
# ones so that drift cancels, and the median of the pairs' ratios comes with
# a distribution-free 95 % interval (the order statistics of bench/det_alt.c).
# Each pair's line also gives the share of the machine's CPU the host stole
# over it: pairing cancels what slows both sides alike, and steal does not
# (see bench/README.md).
#
# The load is bench_ingress.sh's: wrk with bench/ingress.lua (one binary-mode
# CloudEvent per POST to /default/default), 64 connections, 2 wrk threads.
# The broker is `outpost broker --data DIR/broker.db $BENCH_BROKER_ARGS` (the
# default configuration, its "outpost sqlite (default)" row, when that is
# empty), and nginx answers `return 202`; each is warmed up by a 2 s wrk run
# first. The broker keeps ONE log for the whole run, so the log grows: 30
# pairs of 2 s at some 50k events/s are over 3 M events, about 1.6 GB (some
# 500 bytes an event), in the temporary directory, which is removed at exit
# with everything in it. The later pairs measure a broker with a bigger log
# (this is how a retention pass that walked the whole log was found).
#
# Environment: OUTPOST=path to an outpost binary (default: build Release into
# build-bench), BENCH_PAIRS=pairs (default 30), BENCH_CHUNK=seconds of wrk per
# chunk (default 2), BENCH_QUIET_STEAL=percent (default 2: the summary's
# second ratio is over the pairs the host stole at most that share of the
# CPU from), BENCH_BROKER_ARGS=broker flags, split at blanks (e.g.
# '--epoll --threads 2'), BENCH_LOCK=FILE takes that lock (flock) around the
# measurement only, never around the build. Run it alone on the machine:
# either BENCH_LOCK=/tmp/outpost-bench.lock or
# `flock -o /tmp/outpost-bench.lock bash bench/bench_ingress_pairs.sh` (not
# both with the same file: the script would wait for its own lock forever).
# Installs wrk and nginx-light when missing (needs root then). Exits non-zero
# when wrk fails or counts any error (a status of 400 or more, a socket
# error, a timeout), or when the broker's /metrics disagree with wrk (every
# request wrk completed accepted, none rejected); it stops at the first
# failed pair and summarizes the pairs before it.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pairs=${BENCH_PAIRS:-30}
chunk=${BENCH_CHUNK:-2}
quiet_steal=${BENCH_QUIET_STEAL:-2}
warmup=2
connections=64
wrk_threads=2
lua="$here/ingress.lua"
target=/default/default
read -r -a broker_args <<<"${BENCH_BROKER_ARGS:-}"

want_whole BENCH_PAIRS "$pairs"
want_whole BENCH_QUIET_STEAL "$quiet_steal" 0
want_whole BENCH_CHUNK "$chunk"

bench_setup bench_ingress_pairs
bench_tools
bench_outpost

# --- helpers -----------------------------------------------------------------

# wrk_run PORT FILE SECS: SECS of the load against PORT, wrk's output in FILE;
# sets $result to the Lua done() line. Fails when wrk fails or any request
# failed.
wrk_run() {
  if ! wrk -t"$wrk_threads" -c"$connections" -d"${3}s" -s "$lua" \
    "http://127.0.0.1:$1$target" >"$2" 2>&1; then
    echo "  wrk failed:" >&2
    indent <"$2" >&2
    return 1
  fi
  wrk_result "$2" ingress
}

# nginx_chunk: one chunk against nginx; sets n_rps.
nginx_chunk() {
  wrk_run "$nginx_port" "$work/nginx.wrk" "$chunk" || return 1
  n_rps=$(field "$result" rps)
}

# group_commits BEFORE AFTER: the embedded log's group commits between two
# /metrics responses: "GROUP COMMIT_US", the mean appends per commit (how
# many requests shared a sync) and the mean commit's time in µs; "- -" when
# the log has no such metrics (Kafka) or made no commit.
group_commits() {
  awk 'FNR == 1 { f++ }
    $1 == "outpost_log_commits_total{result=\"ok\"}" { c[f] = $2 }
    $1 == "outpost_log_appends_total" { a[f] = $2 }
    $1 == "outpost_log_commit_duration_seconds_sum" { s[f] = $2 }
    END {
      n = c[2] - c[1]
      if (n > 0) printf "%.1f %.0f\n", (a[2] - a[1]) / n, 1e6 * (s[2] - s[1]) / n
      else print "- -"
    }' "$1" "$2"
}

# broker_chunk: one chunk against the broker; sets b_rps, b_p50, b_p99,
# b_cpu (its user+system CPU over the chunk per request wrk completed, us),
# b_group and b_commit (group_commits). Fails when /metrics disagree with wrk
# (metrics_agree).
broker_chunk() {
  local f="$work/broker.wrk" t0 ticks completed
  settled_metrics "$broker_port" "$f.before" || return 1
  t0=$(cpu_ticks "$broker_pid")
  wrk_run "$broker_port" "$f" "$chunk" || return 1
  ticks=$(($(cpu_ticks "$broker_pid") - t0))
  settled_metrics "$broker_port" "$f.after" || return 1
  completed=$(field "$result" requests)
  metrics_agree "$f.before" "$f.after" "$completed" "$connections" || return 1
  b_rps=$(field "$result" rps)
  b_p50=$(field "$result" p50_ms)
  b_p99=$(field "$result" p99_ms)
  b_cpu=$(us_per_request "$ticks" "$completed")
  read -r b_group b_commit < <(group_commits "$f.before" "$f.after")
}

# cpu_steal: the machine's CPU time so far, all of it and the part the host
# stole, in clock ticks ("total steal", from /proc/stat).
cpu_steal() {
  awk '$1 == "cpu" { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $9; exit }' /proc/stat
}

# order_stats: the numbers on stdin, sorted; prints "n median lo hi min max",
# lo and hi the k-th and (n + 1 - k)-th values, which bracket the median with
# at least 95 % confidence whatever the distribution: the count of values
# below the median is binomial(n, 1/2), and k is the largest with
# P(B < k) <= 0.025 (det_alt.c's median_ci_rank). lo and hi are "n/a" when n
# is too small (k = 0, fewer than 6 values). The median of an even count is
# the mean of the middle two.
order_stats() {
  sort -g | awk '
    { v[++n] = $1 }
    END {
      if (!n) { print "0 - n/a n/a - -"; exit }
      k = 0; cdf = 0; lp = -n * log(2)      # lp: log P(B = i), from i = 0
      for (i = 0; i < n; i++) {
        if (cdf + exp(lp) > 0.025) break
        cdf += exp(lp); k = i + 1
        lp += log(n - i) - log(i + 1)
      }
      med = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
      if (k) print n, med, v[k], v[n + 1 - k], v[1], v[n]
      else print n, med, "n/a", "n/a", v[1], v[n]
    }'
}

# --- the run -----------------------------------------------------------------

echo "bench_ingress_pairs: $outpost, $pairs pairs of ${chunk}s chunks (nginx, broker;" \
  "order alternating), $connections connections, $wrk_threads wrk threads"
echo "bench_ingress_pairs: broker flags: --data <tmp>/broker/broker.db ${broker_args[*]:-(default configuration)}"
if pgrep -x nginx >/dev/null 2>&1; then
  echo "bench_ingress_pairs: note: another nginx is running on this machine (left alone)"
fi

if [ -n "${BENCH_LOCK:-}" ]; then
  exec 9>"$BENCH_LOCK"
  echo "bench_ingress_pairs: waiting for $BENCH_LOCK"
  flock 9
fi

nginx_up "$work/nginx" 202
if ! broker_up "$work/broker" --data "$work/broker/broker.db" "${broker_args[@]}"; then
  broker_down "$work/broker" 2>/dev/null || true
  exit 1
fi
echo "bench_ingress_pairs: warm-up, ${warmup}s each"
wrk_run "$nginx_port" "$work/nginx.warmup" "$warmup"
wrk_run "$broker_port" "$work/broker.warmup" "$warmup"

echo
bench_header
echo "load:   wrk $connections connections, $wrk_threads threads, ${chunk}s chunks" \
  "(after ${warmup}s warm-up of each), one binary-mode CloudEvent (100-byte JSON) per POST"
echo "broker: ${broker_args[*]:-default configuration}, one log for the whole run"
echo
printf '%4s %5s %10s %10s %7s %8s %8s %8s %6s %9s %5s\n' pair order nginx/s broker/s ratio \
  "p50 ms" "p99 ms" "cpu us" group "commit us" "st %"
ratios=()
b_all=()
n_all=()
cpu_all=()
group_all=()
commit_all=()
st_all=()
failed=0
for ((p = 1; p <= pairs; p++)); do
  if ((p % 2)); then
    order=NB first=nginx_chunk second=broker_chunk
  else
    order=BN first=broker_chunk second=nginx_chunk
  fi
  read -r t0 s0 < <(cpu_steal)
  if ! "$first" || ! "$second"; then
    echo "pair $p ($order) FAILED (see above)"
    failed=1
    break
  fi
  read -r t1 s1 < <(cpu_steal)
  st=$(awk -v t=$((t1 - t0)) -v s=$((s1 - s0)) 'BEGIN { printf "%.0f", (t > 0 ? 100 * s / t : 0) }')
  ratio=$(awk -v a="$b_rps" -v b="$n_rps" 'BEGIN { printf "%.4f", a / b }')
  ratios+=("$ratio")
  b_all+=("$b_rps")
  n_all+=("$n_rps")
  cpu_all+=("$b_cpu")
  if [ "$b_group" != - ]; then
    group_all+=("$b_group")
    commit_all+=("$b_commit")
  fi
  st_all+=("$st")
  printf '%4d %5s %10.0f %10.0f %7.3f %8.2f %8.2f %8s %6s %9s %5s\n' "$p" "$order" "$n_rps" \
    "$b_rps" "$ratio" "$b_p50" "$b_p99" "$b_cpu" "$b_group" "$b_commit" "$st"
done
echo "order: NB = nginx's chunk first, BN = the broker's; ratio: broker events/s over nginx's" \
  "in the same pair; cpu us: the broker's user+system CPU per request over its chunk;" \
  "group: requests per group commit of the embedded log, commit us: a group commit's mean time" \
  "(outpost_log_*; - on Kafka);" \
  "st %: the share of the machine's CPU time the host stole over the pair (/proc/stat)"

# --- summary -----------------------------------------------------------------

if ((${#ratios[@]})); then
  read -r n med lo hi min max < <(printf '%s\n' "${ratios[@]}" | order_stats)
  ci="n/a (fewer than 6 pairs)"
  if [ "$lo" != n/a ]; then ci=$(printf '[%.3f, %.3f] (order statistics)' "$lo" "$hi"); fi
  echo
  echo "over $n pairs:"
  printf '  ratio     median %.3f, 95 %% interval %s, min-max %.3f-%.3f\n' \
    "$med" "$ci" "$min" "$max"
  # The same over the pairs the host stole little from: steal slows the
  # broker's durable write far more than nginx (bench/README.md), so this is
  # the figure of a machine of one's own. The bound is fixed before the run.
  quiet=()
  for i in "${!ratios[@]}"; do
    if ((st_all[i] <= quiet_steal)); then quiet+=("${ratios[i]}"); fi
  done
  if ((${#quiet[@]})); then
    read -r n med lo hi min max < <(printf '%s\n' "${quiet[@]}" | order_stats)
    ci="n/a (fewer than 6 pairs)"
    if [ "$lo" != n/a ]; then ci=$(printf '[%.3f, %.3f]' "$lo" "$hi"); fi
    printf '  ratio     median %.3f, 95 %% interval %s over the %d pairs with st %% <= %d\n' \
      "$med" "$ci" "$n" "$quiet_steal"
  else
    echo "  ratio     no pair with st % <= $quiet_steal"
  fi
  read -r _ med _ _ min max < <(printf '%s\n' "${b_all[@]}" | order_stats)
  printf '  broker    median %.0f events/s (min-max %.0f-%.0f)\n' "$med" "$min" "$max"
  read -r _ med _ _ min max < <(printf '%s\n' "${n_all[@]}" | order_stats)
  printf '  nginx     median %.0f events/s (min-max %.0f-%.0f)\n' "$med" "$min" "$max"
  read -r _ med _ _ min max < <(printf '%s\n' "${cpu_all[@]}" | order_stats)
  printf '  cpu us    median %.1f per request (min-max %.1f-%.1f)\n' "$med" "$min" "$max"
  if ((${#group_all[@]})); then
    read -r _ med _ _ min max < <(printf '%s\n' "${group_all[@]}" | order_stats)
    printf '  group     median %.1f requests per group commit (min-max %.1f-%.1f)\n' "$med" "$min" "$max"
    read -r _ med _ _ min max < <(printf '%s\n' "${commit_all[@]}" | order_stats)
    printf '  commit    median %.0f us per group commit, begin to sync (min-max %.0f-%.0f)\n' \
      "$med" "$min" "$max"
  fi
  read -r _ med _ _ min max < <(printf '%s\n' "${st_all[@]}" | order_stats)
  printf '  st %%      median %.1f (min-max %.0f-%.0f)\n' "$med" "$min" "$max"
  echo "  log       $(metric "$work/broker.wrk.after" outpost_ingress_events_accepted_total)" \
    "events accepted in all, $(du -sm "$work/broker" | cut -f1) MB on disk"
fi

nginx_down "$work/nginx"
broker_down "$work/broker" || failed=1
vmstat 1 3

if ((failed)); then
  echo "bench_ingress_pairs: FAILED (see above)" >&2
  exit 1
fi
