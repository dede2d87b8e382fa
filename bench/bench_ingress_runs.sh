#!/usr/bin/env bash
# bench_ingress_runs.sh — the issue-3 goal (the embedded log at 0.6 of nginx
# `return 202` or more) over several independent runs of
# bench_ingress_pairs.sh. One run's 95 % interval is about that run: on this
# VM the broker's and nginx's rates move by some 10 % from one run to the next
# with nothing stolen (bench/README.md), so a run's median is one sample of
# the ratio, and the goal is judged over runs: the mean of the runs' medians
# with a 95 % Student t interval.
#
# Each run is bench_ingress_pairs.sh as it is (a fresh nginx, a fresh broker
# and log, BENCH_PAIRS pairs), started one after the other. A run's figure is
# its median over the pairs the host stole at most BENCH_QUIET_STEAL % from
# (the pairs script's second ratio); a run counts only when at least half of
# its pairs were such: a run the host kept busy is reported, not counted.
#
# Environment: BENCH_RUNS=runs (default 10: a run takes about 4 minutes, and
# a t interval over fewer runs is wide), BENCH_GOAL=the ratio to judge
# against (default 0.6); OUTPOST, BENCH_PAIRS, BENCH_CHUNK, BENCH_QUIET_STEAL
# and BENCH_BROKER_ARGS go to each run as bench_ingress_pairs.sh reads them
# (the binary is built once, first, when OUTPOST is not given); BENCH_LOCK=FILE
# takes that lock (flock) around each run's measurement, as there. Each run's
# whole output is kept beside the summary when BENCH_KEEP=DIR names a
# directory. Exits non-zero when a run fails (as the pairs script does: any
# error wrk counts, or /metrics disagreeing with wrk) or when no run counts;
# the goal's verdict is printed, not the exit status.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
runs=${BENCH_RUNS:-10}
goal=${BENCH_GOAL:-0.6}
want_whole BENCH_RUNS "$runs" 2
case $goal in
'' | *[!0-9.]* | *.*.*)
  echo "bench_ingress_runs: BENCH_GOAL wants a ratio such as 0.6, not '$goal'" >&2
  exit 2
  ;;
esac

bench_setup bench_ingress_runs
bench_outpost
keep=${BENCH_KEEP:-}
if [ -n "$keep" ]; then mkdir -p "$keep"; fi

echo "bench_ingress_runs: $runs runs of bench_ingress_pairs.sh on $outpost"
bench_header
echo

# One line a run: run all-pairs-median quiet-median quiet-pairs pairs steal-median
# nginx-median (events/s: how busy the host was; a busy host slows nginx,
# which keeps both cores full, more than the broker, and raises the ratio).
: >"$work/runs"
for ((r = 1; r <= runs; r++)); do
  out="$work/run$r.txt"
  if ! OUTPOST=$outpost bash "$here/bench_ingress_pairs.sh" >"$out" 2>&1; then
    echo "bench_ingress_runs: run $r failed; its output:" >&2
    cat "$out" >&2
    exit 1
  fi
  if [ -n "$keep" ]; then cp "$out" "$keep/run$r.txt"; fi
  # "ratio median M, ..." over all pairs, then "... over the N pairs with st % <= S";
  # "over P pairs:" heads the summary; "st % median X".
  awk -v r="$r" '
    /^over [0-9]+ pairs:/ { pairs = $2 }
    /^  ratio +median/ {
      m = $3; sub(/,$/, "", m)
      if (/ over the [0-9]+ pairs with st/) {
        quiet = m
        for (i = 1; i <= NF; i++) if ($i == "the") n = $(i + 1)
      } else all = m
    }
    /^  st % +median/ { st = $4 }
    /^  nginx +median/ { ng = $3 }
    END {
      if (all == "" || ng == "") exit 1
      if (quiet == "") { quiet = "-"; n = 0 }
      print r, all, quiet, n, pairs, st, ng
    }' "$out" >>"$work/runs" || {
    echo "bench_ingress_runs: no summary in run $r's output:" >&2
    cat "$out" >&2
    exit 1
  }
  tail -n 1 "$work/runs" | awk '{
    printf "run %d: median %s over all %d pairs, %s over the %d steal-free ones (steal median %s %%, nginx %s events/s)\n",
      $1, $2, $5, $3, $4, $6, $7 }'
done

echo
awk -v goal="$goal" '
  # Two-sided 95 % critical values of Student t, by degrees of freedom.
  BEGIN {
    split("12.706 4.303 3.182 2.776 2.571 2.447 2.365 2.306 2.262 2.228 " \
          "2.201 2.179 2.160 2.145 2.131 2.120 2.110 2.101 2.093 2.086", t, " ")
  }
  $4 * 2 >= $5 && $3 != "-" {
    x[++k] = $3 + 0; sum += $3
    if (k == 1 || $7 < nlo) nlo = $7
    if (k == 1 || $7 > nhi) nhi = $7
  }
  $4 * 2 < $5 || $3 == "-" { skipped = skipped " " $1 }
  END {
    if (skipped != "") printf "not counted (fewer than half of their pairs steal-free): run%s\n", skipped
    if (k < 2) { print "bench_ingress_runs: fewer than two runs count: no interval"; exit 1 }
    mean = sum / k
    for (i = 1; i <= k; i++) ss += (x[i] - mean) ^ 2
    sd = sqrt(ss / (k - 1))
    tc = k - 1 <= 20 ? t[k - 1] : 1.96 + 2.5 / (k - 1)
    half = tc * sd / sqrt(k)
    lo = hi = x[1]
    for (i = 2; i <= k; i++) { if (x[i] < lo) lo = x[i]; if (x[i] > hi) hi = x[i] }
    printf "over %d counted runs: mean of the medians %.3f, 95 %% interval [%.3f, %.3f] (Student t), sd %.3f, min-max %.3f-%.3f\n",
      k, mean, mean - half, mean + half, sd, lo, hi
    printf "nginx: %d-%d events/s (run medians) over the counted runs\n", nlo, nhi
    if (mean - half > goal) verdict = "above the goal of " goal
    else if (mean + half < goal) verdict = "below the goal of " goal
    else verdict = "not told apart from the goal of " goal
    printf "goal:  the interval is %s\n", verdict
  }' "$work/runs"
