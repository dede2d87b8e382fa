/*
 * detector_int.h — what the files of detector/ share and nothing else may
 * include: the system call names of the decoder, the clock offset the loader
 * and the tests both need.
 */
#ifndef OUTPOST_DETECTOR_DETECTOR_INT_H
#define OUTPOST_DETECTOR_DETECTOR_INT_H

#include <stdint.h>

#include "detector/detector.h"

/* The name of an x86_64 system call the kernel side reports, or "". */
const char *detector__sysname(int nr);

/* CLOCK_REALTIME minus CLOCK_BOOTTIME, in nanoseconds: added to a kernel
 * timestamp (bpf_ktime_get_boot_ns) it gives the wall clock. */
int64_t detector__boot_to_wall_ns(void);

/* Replaces the rules of a cgroup in the det_paths and det_dests maps (see
 * detector_bpf_policy_set); p NULL removes them. The caller serialises. */
int detector__policy_apply(int paths_fd, int dests_fd, uint64_t cgroup_id,
                           const detector_policy *p);

/* A detector's own event about one environment (the fork-rate alarm, the
 * throttled report): id "<sec>.<nsec>-<env_id>-<what>", source
 * /nodes/<node>/environments/<env>, the environment as subject and
 * partitionkey, its tenant, namespace, environment and node extensions,
 * severity, action none, and data (JSON). 0 with *out, -EINVAL when env
 * lacks a name, -ENOMEM, or the validation's error. */
int detector__env_event(const detector_env *env, uint32_t env_id, const char *what,
                        const char *type, const char *severity, int64_t sec, int32_t nsec,
                        const char *data, size_t len, ce_event **out, ce_err *err);

#endif
