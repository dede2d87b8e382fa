#!/usr/bin/env bash
# bench_detector.sh — what `outpost detector` costs the processes it watches,
# and how many events per second its user side sustains. Needs root (eBPF,
# cgroups). See bench/README.md.
#
# Overhead. Two workloads (bench/det_load.c, built here with cc) run in a
# fresh cgroup2 directory: an exec storm (fork + exec /bin/true + wait) and a
# system-call loop (open of a watched prefix, open of another path, connect
# to a closed port on 127.0.0.1, setuid no-op, getppid: three reported events
# a round out of nine calls; the worst case), and a third, an ordinary
# system-call-heavy program (pread, pwrite, stat, getpid, mmap, munmap,
# none reported, and an open of a watched path every 64th round: one
# reported call in 386). Each round times the three without the detector,
# and with it running and the cgroup watched (PUT /v1/environments with
# cgroupPath, the prefix watched by policy), and, with it running, both in
# a second cgroup it does not watch. Runs without the detector come before
# the first round and after every round, and a round is compared with the
# mean of those just before and after it (a linear drift cancels). Between runs the detector is let settle
# (buffer empty, nothing more read) so one run's tail is not the next one's
# load. The figure is the median over rounds of the ratio of the workload's
# own time (with / without), each ratio taken within one round: on a busy
# shared VM only same-run, adjacent ratios mean anything. Beside the median
# come the ratios' interquartile range (25th to 75th percentile, interpolated
# between the sorted ratios: with 21 rounds the 6th and 16th), their range
# (min-max) and n, the number of rounds they come from: one round on a noisy
# neighbour moves the range but hardly the quartiles. Both the elapsed
# time and the workload's own CPU time (user + system, children included:
# the kernel side runs in the workload's context) are reported. Hyperfine is not
# used: its runs of one command are back to back, and the detector has to
# come and go between them. The detector publishes to a real
# `outpost broker` (embedded log, no triggers) that runs throughout, with or
# without the detector, so its work when events arrive is in the ratio:
# that is what a node pays when broker and detector share it.
#
# The kernel side's own cost, in the workload's context. Wall ratios on a
# shared 2-vCPU VM spread wider than a few percent, so each round also runs
# each workload once more, watched, with kernel.bpf_stats_enabled=1 (set
# only around these runs, which are not in the ratios): the run time and
# run count of the detector's programs (read from /proc/PID/fdinfo of its
# program fds) over the run, divided by the workload's CPU time without the
# detector in the same round. That is the part of the slowdown paid inside
# the workload's own system calls, and it does not depend on the
# neighbours. It leaves out the tracepoint path's own entry cost and the
# ring buffer's wake-ups (not counted in run_time_ns), and includes the
# stats' own two clock reads per run.
#
# Sustained events/s. A fresh detector, one watched cgroup, and setuid
# no-ops paced at a growing rate (doubling, BENCH_STEP seconds each): setuid
# because it is the cheapest call the kernel side reports, so the generator
# outruns the user side and the limit found is the detector's, not the
# generator's. Each step reports the events read from the ring per second,
# those the broker acknowledged during the step, the buffer at its end and
# the new drops (ring: outpost_detector_ring_drops_total; publisher:
# outpost_detector_dropped_events_total), all from /metrics. The ramp stops
# at the first step with drops. "Sustained" is the highest step with no
# drops whose events were also delivered as fast as they came (published/s
# at least 95% of read/s). Its baseline, measured in the same run: the
# events per second of the fastest exec storm one process makes without the
# detector (3 events per exec: fork, exec, exit), so a ratio above 1 means
# the user side keeps up with such a storm; the raw setuid rate one process
# makes unpaced is printed too, for scale.
#
# Environment: OUTPOST=path to an outpost binary (default: build Release into
# build-bench), BENCH_ROUNDS (default 7), BENCH_EXECS (exec storm size,
# default 2000), BENCH_SYSCALLS (rounds of the loop, default 200000),
# BENCH_MIX (rounds of the ordinary program, default 100000), BENCH_BPF_STATS
# (0: no kernel-side runs),
# BENCH_STEP (seconds per ramp step, default 4), BENCH_DETECTOR_ARGS (more
# flags for `outpost detector`, e.g. "--ring-wakeup-ms 0" or "--rate-limit
# 0"; the ramp always runs with --rate-limit 0). A/B in one run:
# BENCH_B_OUTPOST (another outpost binary) and/or BENCH_B_ARGS (its detector
# flags instead of BENCH_DETECTOR_ARGS) add a second detector, B, whose
# watched and unwatched runs come in the same rounds as A's (the order
# alternating round by round), compared with the same runs without a
# detector; the ramp runs A only. BENCH_RAMP=0 skips the ramp. Exits
# non-zero when a run failed.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rounds=${BENCH_ROUNDS:-7}
execs=${BENCH_EXECS:-2000}
syscalls=${BENCH_SYSCALLS:-200000}
mix=${BENCH_MIX:-100000}
step=${BENCH_STEP:-4}
bpf_stats=${BENCH_BPF_STATS:-1}

want_whole BENCH_ROUNDS "$rounds"
want_whole BENCH_EXECS "$execs"
want_whole BENCH_SYSCALLS "$syscalls"
want_whole BENCH_MIX "$mix"
want_whole BENCH_STEP "$step"
bench=bench_detector
bench_need_ebpf
if ! command -v cc >/dev/null 2>&1; then
  echo "bench_detector: needs a C compiler (cc) for bench/det_load.c" >&2
  exit 1
fi

det_pid=
det_port=
cg_w=
cg_u=
stats_was=
if [ "$bpf_stats" != 0 ] && [ ! -w /proc/sys/kernel/bpf_stats_enabled ]; then
  echo "bench_detector: no kernel.bpf_stats_enabled: the kernel-side figures are skipped" >&2
  bpf_stats=0
fi

det_cleanup() {
  if [ -n "$det_pid" ] && kill -0 "$det_pid" 2>/dev/null; then
    kill -TERM "$det_pid" 2>/dev/null || true
    wait "$det_pid" 2>/dev/null || true
  fi
  if [ -n "$stats_was" ]; then echo "$stats_was" >/proc/sys/kernel/bpf_stats_enabled; fi
  local d
  for d in "$cg_w" "$cg_u"; do
    if [ -n "$d" ] && [ -d "$d" ]; then rmdir "$d" 2>/dev/null || true; fi
  done
}

bench_setup bench_detector
trap 'det_cleanup; bench_cleanup' EXIT
bench_outpost

load="$work/det_load"
cc -O2 -Wall -Wextra -o "$load" "$here/det_load.c"
cg_w="$cg2/outpost-bench-$$-watched"
cg_u="$cg2/outpost-bench-$$-unwatched"
mkdir "$cg_w" "$cg_u"
mkdir -p "$work/watched"
watched_file="$work/watched/file"
other_file="$work/other"
: >"$watched_file"
: >"$other_file"
closed_port=$(free_port)

# --- helpers -----------------------------------------------------------------

# put PATH JSON: PUT to the detector's admin API; fails unless 200 or 201.
put() {
  local resp st
  printf '%s' "$2" >"$work/body.json"
  resp=$(http_send "$det_port" PUT "$1" application/json "$work/body.json")
  st=$(http_status "$resp")
  if [ "$st" != 200 ] && [ "$st" != 201 ]; then
    echo "  PUT $1: $st" >&2
    indent <<<"$resp" >&2
    return 1
  fi
}

# detector_up [FLAG...]: `outpost detector` publishing to our broker, cgroup
# cg_w watched as environment bench-env with the watched prefix; the flags
# come after BENCH_DETECTOR_ARGS (the last of a flag wins).
# The variant in $cur (A or B) says which binary and flags.
cur=A
declare -A det_bin det_args
detector_up() {
  local i
  det_port=$(free_port)
  : >"$work/det.out"
  # shellcheck disable=SC2086 # the flags are words
  "${det_bin[$cur]}" detector --broker-url "http://127.0.0.1:$broker_port/default/default" \
    --listen "127.0.0.1:$det_port" --node bench ${det_args[$cur]} "$@" \
    >"$work/det.out" 2>"$work/det.err" &
  det_pid=$!
  for ((i = 0; i < 100; i++)); do
    grep -q '^listening on' "$work/det.out" && break
    kill -0 "$det_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! wait_http "$det_pid" "$det_port"; then
    echo "  outpost detector did not start:" >&2
    indent <"$work/det.err" >&2
    return 1
  fi
  put /v1/environments/bench-env \
    "{\"cgroupPath\":\"$cg_w\",\"tenant\":\"bench\",\"namespace\":\"bench\"}" &&
    put /v1/environments/bench-env/policy "{\"watchedPaths\":[\"$work/watched/\"]}"
}

detector_down() {
  if [ -n "$det_pid" ]; then
    kill -TERM "$det_pid" 2>/dev/null || true
    if ! wait "$det_pid"; then
      echo "  outpost detector did not stop cleanly:" >&2
      indent <"$work/det.err" >&2
      det_pid=
      return 1
    fi
  fi
  det_pid=
}

# metrics FILE: the detector's /metrics.
metrics() { http_get "$det_port" /metrics >"$1"; }

# settle FILE: /metrics into FILE once the detector has read and delivered
# everything (buffer empty, the events read unchanged for 0.3 s; at most 60 s).
settle() {
  local i prev=-1 now
  for ((i = 0; i < 200; i++)); do
    metrics "$1" || return 1
    now=$(metric "$1" outpost_detector_kernel_events_total)
    if [ "$(metric "$1" outpost_detector_buffer_events)" = 0 ] && [ "$now" = "$prev" ]; then
      return 0
    fi
    prev=$now
    sleep 0.3
  done
  echo "  the detector did not settle" >&2
  return 1
}

# work_run CGROUP exec|sys|mix KEY: one workload; its wall-clock and CPU
# seconds into wall[KEY] and cpu[KEY].
declare -A wall cpu
work_run() {
  local out
  if [ "$2" = exec ]; then
    out=$("$load" "$1" exec "$execs")
  elif [ "$2" = mix ]; then
    out=$("$load" "$1" mix "$mix" "$watched_file" "$other_file")
  else
    out=$("$load" "$1" sys "$syscalls" "$watched_file" "$other_file" "$closed_port")
  fi
  wall[$3]=$(field "$out" secs)
  cpu[$3]=$(field "$out" cpu)
}

# sum_of FILE METRIC...: the sum of those metrics' samples.
sum_of() {
  local f=$1 s=0 m
  shift
  for m in "$@"; do s=$((s + $(metric "$f" "$m"))); done
  echo "$s"
}

# prog_stats PID: "RUN_TIME_NS RUN_CNT", summed over the BPF programs the
# process holds (their fdinfo counts only while kernel.bpf_stats_enabled is 1).
prog_stats() {
  awk 'FNR == 1 { id = "" } /^prog_id:/ { id = $2 } /^run_time_ns:/ && id != "" { t[id] = $2 }
    /^run_cnt:/ && id != "" { c[id] = $2 }
    END { for (i in t) { T += t[i]; C += c[i] } printf "%.0f %.0f\n", T, C }' /proc/"$1"/fdinfo/* 2>/dev/null
}

# task_ns PID: the CPU time of all the process's threads, in ns (schedstat).
task_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }

# stats_run exec|sys|mix: the workload once more in the watched cgroup, with
# the programs' run time counted: nanoseconds and runs into
# bpf_ns[W_cur] and bpf_runs[W_cur]; the detector's own CPU time from the
# run's start until it settled into det_ns[W_cur], its events into det_evs.
declare -A bpf_ns bpf_runs det_ns det_evs
stats_run() {
  local a b c0 c1 e0 e1
  metrics "$work/m5" || return 1
  e0=$(metric "$work/m5" outpost_detector_kernel_events_total)
  c0=$(task_ns "$det_pid")
  echo 1 >/proc/sys/kernel/bpf_stats_enabled
  read -r -a a <<<"$(prog_stats "$det_pid")"
  work_run "$cg_w" "$1" "stats"
  read -r -a b <<<"$(prog_stats "$det_pid")"
  echo 0 >/proc/sys/kernel/bpf_stats_enabled
  settle "$work/m5" || return 1
  c1=$(task_ns "$det_pid")
  e1=$(metric "$work/m5" outpost_detector_kernel_events_total)
  bpf_ns[${1}_$cur]=$((b[0] - a[0]))
  bpf_runs[${1}_$cur]=$((b[1] - a[1]))
  det_ns[${1}_$cur]=$((c1 - c0))
  det_evs[${1}_$cur]=$((e1 - e0))
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a / b }'; }

# median of the arguments.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f-%.3f", lo, hi }'; }
# quartiles of the arguments, "Q1-Q3": the 25th and 75th percentiles, each
# interpolated between the two sorted values around rank (n - 1) p + 1.
quartiles() {
  printf '%s\n' "$@" | sort -g | awk 'function q(p, h, i) {
      h = (NR - 1) * p + 1
      i = int(h)
      return (i < NR) ? v[i] + (h - i) * (v[i + 1] - v[i]) : v[i]
    }
    { v[NR] = $1 } END { printf "%.3f-%.3f", q(0.25), q(0.75) }'
}

# --- the broker ---------------------------------------------------------------

det_bin[A]=$outpost
det_args[A]=${BENCH_DETECTOR_ARGS:-}
variants=(A)
if [ -n "${BENCH_B_OUTPOST:-}${BENCH_B_ARGS:-}" ]; then
  det_bin[B]=$(realpath "${BENCH_B_OUTPOST:-$outpost}")
  det_args[B]=${BENCH_B_ARGS:-}
  variants=(A B)
  echo "bench_detector: B is ${det_bin[B]} ${det_args[B]}"
fi
echo "bench_detector: $outpost ${BENCH_DETECTOR_ARGS:-}; $rounds rounds of $execs execs and $syscalls syscall-loop rounds"
broker_up "$work/broker" --data "$work/broker/broker.db" --broker default/default

# --- overhead -------------------------------------------------------------------

# ratios[ROW] is a list of same-round ratios, ROW one of the report's rows.
declare -A ratios
rows=("exec storm, watched|exec_on" "syscall loop, watched|sys_on"
  "exec storm, unwatched cgroup|exec_un" "syscall loop, unwatched cgroup|sys_un"
  "ordinary syscalls, watched|mix_on" "ordinary syscalls, unwatched|mix_un")
off_exec_rates=()
# Per workload: events read, ring drops, publisher drops, throttled (summed over rounds).
declare -A evs alarms
for v in A B; do
  for k in exec_read exec_ring exec_pub exec_thr sys_read sys_ring sys_pub sys_thr \
    mix_read mix_ring mix_pub mix_thr; do
    evs[${v}_$k]=0
  done
  alarms[$v]=0
done
failed=0

off_phase() {
  work_run "$cg_w" exec exec_off
  work_run "$cg_w" sys sys_off
  work_run "$cg_w" mix mix_off
}

# on_phase V: detector V up; the unwatched cgroup first, then the watched
# one, each after the detector settled; events and drops per workload.
on_phase() {
  local a b v=$1
  cur=$v
  detector_up || return 1
  settle "$work/m0" || return 1
  work_run "$cg_u" exec "exec_un_$v"
  work_run "$cg_u" sys "sys_un_$v"
  work_run "$cg_u" mix "mix_un_$v"
  settle "$work/m1" || return 1
  work_run "$cg_w" exec "exec_on_$v"
  settle "$work/m2" || return 1
  work_run "$cg_w" sys "sys_on_$v"
  settle "$work/m3" || return 1
  work_run "$cg_w" mix "mix_on_$v"
  settle "$work/m4" || return 1
  local m w x k
  for m in read:outpost_detector_kernel_events_total ring:outpost_detector_ring_drops_total \
    pub:outpost_detector_dropped_events_total thr:outpost_detector_throttled_events_total; do
    k=${m%%:*}
    a=$(metric "$work/m1" "${m#*:}")
    b=$(metric "$work/m2" "${m#*:}")
    w=$(metric "$work/m3" "${m#*:}")
    x=$(metric "$work/m4" "${m#*:}")
    evs[${v}_exec_$k]=$((${evs[${v}_exec_$k]} + b - a))
    evs[${v}_sys_$k]=$((${evs[${v}_sys_$k]} + w - b))
    evs[${v}_mix_$k]=$((${evs[${v}_mix_$k]} + x - w))
  done
  alarms[$v]=$((${alarms[$v]} + $(metric "$work/m3" outpost_detector_forkrate_events_total)))
  if [ "$(sum_of "$work/m0" outpost_detector_kernel_events_total)" != \
    "$(sum_of "$work/m1" outpost_detector_kernel_events_total)" ]; then
    echo "  events were read from the unwatched cgroup" >&2
    return 1
  fi
  if [ "$bpf_stats" != 0 ]; then
    for k in exec sys mix; do
      stats_run "$k" || return 1
    done
  fi
  detector_down
}

# Runs without the detector before the first round and after each one: a
# round's runs with it are compared with the mean of the runs just before
# and just after, which cancels a drift of the machine's speed that is
# linear over the round.
off_phase
prev_exec=${wall[exec_off]} prev_sys=${wall[sys_off]} prev_mix=${wall[mix_off]}
prev_cexec=${cpu[exec_off]} prev_csys=${cpu[sys_off]} prev_cmix=${cpu[mix_off]}
if [ "$bpf_stats" != 0 ]; then
  stats_was=$(cat /proc/sys/kernel/bpf_stats_enabled)
  echo 0 >/proc/sys/kernel/bpf_stats_enabled
fi
for ((r = 1; r <= rounds; r++)); do
  echo "bench_detector: overhead round $r/$rounds"
  order=("${variants[@]}")
  if ((r % 2 == 0 && ${#variants[@]} == 2)); then order=(B A); fi
  for v in "${order[@]}"; do
    on_phase "$v" || {
      failed=1
      break
    }
  done
  ((failed)) && break
  off_phase
  mean() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", (a + b) / 2 }'; }
  wall[exec_base]=$(mean "$prev_exec" "${wall[exec_off]}")
  wall[sys_base]=$(mean "$prev_sys" "${wall[sys_off]}")
  cpu[exec_base]=$(mean "$prev_cexec" "${cpu[exec_off]}")
  cpu[sys_base]=$(mean "$prev_csys" "${cpu[sys_off]}")
  wall[mix_base]=$(mean "$prev_mix" "${wall[mix_off]}")
  cpu[mix_base]=$(mean "$prev_cmix" "${cpu[mix_off]}")
  prev_exec=${wall[exec_off]} prev_sys=${wall[sys_off]} prev_mix=${wall[mix_off]}
  prev_cexec=${cpu[exec_off]} prev_csys=${cpu[sys_off]} prev_cmix=${cpu[mix_off]}
  for v in "${variants[@]}"; do
    for row in "${rows[@]}"; do
      key=${row#*|}
      base=${key%_*}_base
      ratios[wall_${key}_$v]+="$(ratio "${wall[${key}_$v]}" "${wall[$base]}") "
      ratios[cpu_${key}_$v]+="$(ratio "${cpu[${key}_$v]}" "${cpu[$base]}") "
    done
    if [ "$bpf_stats" != 0 ]; then
      for k in exec sys mix; do
        # The programs' time over the workload's own CPU without the detector.
        ratios[bpf_${k}_$v]+="$(awk -v n="${bpf_ns[${k}_$v]}" -v c="${cpu[${k}_base]}" 'BEGIN { printf "%.4f", n / (c * 1e9) * 100 }') "
        ratios[bpfrun_${k}_$v]+="$(ratio "${bpf_ns[${k}_$v]}" "$((bpf_runs[${k}_$v] > 0 ? bpf_runs[${k}_$v] : 1))") "
        ratios[bpfcnt_${k}_$v]+="${bpf_runs[${k}_$v]} "
        ratios[detms_${k}_$v]+="$(awk -v n="${det_ns[${k}_$v]}" 'BEGIN { printf "%.2f", n / 1e6 }') "
        ratios[detus_${k}_$v]+="$(awk -v n="${det_ns[${k}_$v]}" -v e="${det_evs[${k}_$v]}" 'BEGIN { printf "%.2f", (e > 0) ? n / e / 1e3 : 0 }') "
      done
    fi
  done
  off_exec_rates+=("$(awk -v n="$execs" -v t="${wall[exec_base]}" 'BEGIN { printf "%.1f", n / t }')")
  for v in "${variants[@]}"; do
    echo "  $v wall s: exec ${wall[exec_base]} without (mean of the runs around), ${wall[exec_on_$v]} watched," \
      "${wall[exec_un_$v]} unwatched; sys ${wall[sys_base]} without, ${wall[sys_on_$v]} watched," \
      "${wall[sys_un_$v]} unwatched; mix ${wall[mix_base]} without, ${wall[mix_on_$v]} watched," \
      "${wall[mix_un_$v]} unwatched"
    echo "  $v cpu s:  exec ${cpu[exec_base]} without, ${cpu[exec_on_$v]} watched," \
      "${cpu[exec_un_$v]} unwatched; sys ${cpu[sys_base]} without, ${cpu[sys_on_$v]} watched," \
      "${cpu[sys_un_$v]} unwatched; mix ${cpu[mix_base]} without, ${cpu[mix_on_$v]} watched," \
      "${cpu[mix_un_$v]} unwatched"
    if [ "$bpf_stats" != 0 ]; then
      echo "  $v programs: exec ${bpf_ns[exec_$v]} ns in ${bpf_runs[exec_$v]} runs;" \
        "sys ${bpf_ns[sys_$v]} ns in ${bpf_runs[sys_$v]}; mix ${bpf_ns[mix_$v]} ns in ${bpf_runs[mix_$v]};" \
        "detector CPU ns/events: exec ${det_ns[exec_$v]}/${det_evs[exec_$v]}," \
        "sys ${det_ns[sys_$v]}/${det_evs[sys_$v]}, mix ${det_ns[mix_$v]}/${det_evs[mix_$v]}"
    fi
  done
done
if ((failed)); then
  echo "bench_detector: FAILED in the overhead rounds" >&2
  exit 1
fi

# --- sustained events/s -----------------------------------------------------------

ramp=${BENCH_RAMP:-1}
cur=A
if [ "$ramp" != 0 ]; then
  raw_setuid=$(field "$("$load" - rate 0 2)" rate)
  # Without the per-environment limit: the ramp measures the user side, which
  # a limit would hide (one environment would be throttled at it).
  detector_up --rate-limit 0
  settle "$work/s0"
  steps=()
  sustained=0
  first_drop=

  # ramp_step RATE: one step of the ramp; adds its line to steps and sets
  # clean (no drops, delivery kept up: published/s >= 95% of read/s).
  ramp_step() {
    local out secs made read_n pub_n buf ring pubd
    echo "bench_detector: ramp $1 setuid/s"
    out=$("$load" "$cg_w" rate "$1" "$step")
    metrics "$work/s1"
    settle "$work/s2" || return 1
    secs=$(field "$out" secs)
    made=$(field "$out" n)
    read_n=$(($(metric "$work/s1" outpost_detector_kernel_events_total) - $(metric "$work/s0" outpost_detector_kernel_events_total)))
    pub_n=$(($(metric "$work/s1" outpost_detector_published_events_total) - $(metric "$work/s0" outpost_detector_published_events_total)))
    buf=$(metric "$work/s1" outpost_detector_buffer_events)
    ring=$(($(metric "$work/s2" outpost_detector_ring_drops_total) - $(metric "$work/s0" outpost_detector_ring_drops_total)))
    pubd=$(($(metric "$work/s2" outpost_detector_dropped_events_total) - $(metric "$work/s0" outpost_detector_dropped_events_total)))
    steps+=("$(awk -v r="$1" -v m="$made" -v s="$secs" -v rd="$read_n" -v p="$pub_n" -v b="$buf" \
      -v rg="$ring" -v pd="$pubd" 'BEGIN { printf "%9d %10.0f %10.0f %12.0f %8d %9d %8d", r, m / s, rd / s, p / s, b, rg, pd }')")
    cp "$work/s2" "$work/s0"
    clean=0
    if ((ring + pubd > 0)); then
      local at
      at=$(awk -v m="$made" -v s="$secs" 'BEGIN { printf "%.0f", m / s }')
      if [ -z "$first_drop" ] || ((at < first_drop)); then first_drop=$at; fi
      return 0
    fi
    if awk -v rd="$read_n" -v p="$pub_n" 'BEGIN { exit !(p >= 0.95 * rd) }'; then
      clean=1
      local got
      got=$(awk -v rd="$read_n" -v s="$secs" 'BEGIN { printf "%.0f", rd / s }')
      if ((got > sustained)); then sustained=$got; fi
    fi
  }

  # Doubling until the first drops, then two halvings of the last interval.
  lo=0
  hi=0
  rate=2000
  while ((rate <= 1024000)); do
    ramp_step "$rate" || {
      failed=1
      break
    }
    if ((clean)); then lo=$rate; else hi=$rate; fi
    if [ -n "$first_drop" ]; then break; fi
    rate=$((rate * 2))
  done
  if ((!failed && lo > 0 && hi > lo)); then
    for _ in 1 2; do
      mid=$(((lo + hi) / 2))
      ramp_step "$mid" || {
        failed=1
        break
      }
      if ((clean)); then lo=$mid; else hi=$mid; fi
    done
  fi
  detector_down || failed=1
fi

# --- report -----------------------------------------------------------------------

exec_rate=$(median "${off_exec_rates[@]}")
storm_events=$(awk -v e="$exec_rate" 'BEGIN { printf "%.0f", 3 * e }')
echo
bench_header
echo "rounds: $rounds; exec storm $execs execs; syscall loop $syscalls rounds (3 reported events each);"
echo "ordinary syscalls $mix rounds (6 unreported calls each, an open of a watched path every 64th)"
echo
echo "overhead: the workload's time with the detector over its time without, n same-round"
echo "ratios (n = rounds): median, interquartile range (25th-75th percentile) and range (min-max);"
echo "wall = elapsed, cpu = the workload's own user+system CPU"
printf '  %-32s %3s %7s %13s %13s   %7s %13s %13s\n' "" n wall iqr range cpu iqr range
for v in "${variants[@]}"; do
  if ((${#variants[@]} > 1)); then echo "$v: ${det_bin[$v]} ${det_args[$v]}"; fi
  for row in "${rows[@]}"; do
    key=${row#*|}_$v
    # shellcheck disable=SC2086 # the lists are words
    printf '  %-32s %3s %7s %13s %13s   %7s %13s %13s\n' "${row%|*}" "$(wc -w <<<"${ratios[wall_$key]}")" \
      "$(median ${ratios[wall_$key]})" "$(quartiles ${ratios[wall_$key]})" "$(range ${ratios[wall_$key]})" \
      "$(median ${ratios[cpu_$key]})" "$(quartiles ${ratios[cpu_$key]})" "$(range ${ratios[cpu_$key]})"
  done
  for w in exec sys mix; do
    echo "  events per watched $w run: $((evs[${v}_${w}_read] / rounds)) read from the ring," \
      "$((evs[${v}_${w}_ring] / rounds)) ring drops, $((evs[${v}_${w}_pub] / rounds)) publisher drops," \
      "$((evs[${v}_${w}_thr] / rounds)) throttled"
  done
  echo "  forkrate alarms per run: $((alarms[$v] / rounds))"
done
if [ "$bpf_stats" != 0 ]; then
  echo
  echo "kernel side in the workload's own context (kernel.bpf_stats_enabled, one more watched run"
  echo "a round): the programs' run time over the workload's CPU time without the detector,"
  echo "median of $rounds (range); ns per program run; program runs per workload run (all the"
  echo "host's system calls meanwhile, not the workload's alone); and outpost detector's own CPU"
  echo "(all threads, from the run's start until it delivered everything), ms and us per event read"
  printf '  %-32s %9s %15s %9s %11s %9s %8s\n' "" "share" range "ns/run" "runs" "det ms" "det us/ev"
  for v in "${variants[@]}"; do
    if ((${#variants[@]} > 1)); then echo "$v: ${det_bin[$v]} ${det_args[$v]}"; fi
    for row in "exec storm, watched|exec" "syscall loop, watched|sys" "ordinary syscalls, watched|mix"; do
      key=${row#*|}_$v
      # shellcheck disable=SC2086 # the lists are words
      printf '  %-32s %8.2f%% %15s %9.0f %11.0f %9.1f %8.1f\n' "${row%|*}" "$(median ${ratios[bpf_$key]})" \
        "$(printf '%s\n' ${ratios[bpf_$key]} | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f%%", lo, hi }')" \
        "$(median ${ratios[bpfrun_$key]})" "$(median ${ratios[bpfcnt_$key]})" \
        "$(median ${ratios[detms_$key]})" "$(median ${ratios[detus_$key]})"
    done
  done
fi
echo "  exec storm without the detector: $exec_rate execs/s (median)"
echo
if [ "$ramp" = 0 ]; then
  echo "(no ramp: BENCH_RAMP=0)"
  exit $((failed))
fi
echo "sustained events/s (setuid no-ops at a paced rate, ${step}s a step; detector -> broker, embedded log;"
echo "--rate-limit 0)"
printf '  %9s %10s %10s %12s %8s %9s %8s\n' target made/s read/s published/s buffer ring_drop pub_drop
for l in "${steps[@]}"; do echo "  $l"; done
echo "  sustained (no drops, published >= 95% of read): $sustained events/s"
if [ -n "$first_drop" ]; then
  echo "  drops began at: $first_drop events/s made"
else
  echo "  no drops up to the last step"
fi
echo "  baseline: exec storm without the detector = $storm_events events/s (3 x $exec_rate execs/s)"
echo "  ratio sustained / baseline: $(ratio "$sustained" "$storm_events")"
echo "  (for scale: one process makes $raw_setuid setuid calls/s unpaced, without the detector)"

if ((failed)); then
  echo "bench_detector: FAILED (see above)" >&2
  exit 1
fi
