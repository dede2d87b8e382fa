#!/usr/bin/env bash
# bench_det_alt.sh — runs bench/det_alt.c, the paired alternation of the
# detector's kernel side (its programs attached and detached chunk by chunk
# in one process, and an empty sys_enter program as the floor), with the
# machine's state around it. Needs root, a kernel with BTF and a cgroup2
# mount. See bench/README.md.
#
#   bench/bench_det_alt.sh [det_alt options]     e.g. --pairs 600 --modes detector,floor,control
#
# Environment: DET_ALT=path to a det_alt binary (default: build Release into
# build-bench first); BENCH_LOCK=FILE takes that lock (flock) around the
# measurement only, never around the build; BENCH_VMSTAT=0 skips the
# `vmstat 1 3` before and after. Speed is never asserted: det_alt fails only
# when something does not work (loading, attaching, the cgroup, a workload).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench=bench_det_alt
bench_need_ebpf

det_alt=
bench_binary det_alt det_alt bench/det_alt "${DET_ALT:-}"

# What else puts the machine's system calls on the sys_enter path: other
# detectors' programs (det_sys_enter) and the raw_syscalls trace event. Either
# makes the detached chunks pay the tracepoint's slow path too.
others() {
  local progs ev=/sys/kernel/tracing/events/raw_syscalls/sys_enter/enable
  progs=$(bpftool prog show 2>/dev/null | grep -c ' name det_sys_enter ' || true)
  echo "other sys_enter users: ${progs:-?} det_sys_enter programs loaded;" \
    "raw_syscalls/sys_enter trace event: $(cat "$ev" 2>/dev/null || echo unknown)"
}

measure() {
  if [ "${BENCH_VMSTAT:-1}" != 0 ]; then
    echo "vmstat before:"
    vmstat 1 3
  fi
  others
  "$det_alt" --commit "$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)" "$@"
  if [ "${BENCH_VMSTAT:-1}" != 0 ]; then
    echo "vmstat after:"
    vmstat 1 3
  fi
}

if [ -n "${BENCH_LOCK:-}" ]; then
  exec 9>"$BENCH_LOCK"
  flock 9
fi
measure "$@"
