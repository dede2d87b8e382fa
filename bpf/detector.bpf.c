// SPDX-License-Identifier: GPL-2.0
/*
 * detector.bpf.c — the kernel side of the detector: BTF tracepoints (tp_btf)
 * that report what processes of watched cgroups do (exec, exit, fork, and a
 * set of security-relevant system calls) into one ring buffer, and kill them
 * when a policy forbids what they do. Tracepoints because they exist on every
 * kernel we target (kprobes, fentry and LSM may be missing or refused); the
 * scope is decided here, first thing, so that the host and unwatched
 * processes cost one hash lookup at most. Enforcement never depends on the
 * ring buffer: a rule is checked before a record is reserved, and a record
 * that finds no room is counted per kind in det_drops. Each watched cgroup
 * has a budget of records per second (det_rate_limit; a token bucket):
 * past it a record is not reserved but counted as throttled, so that one
 * flooding environment cannot fill the ring for every other; a kill is
 * never throttled.
 *
 * GPL because bpf_send_signal and the tracing helpers are GPL-only.
 */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "detector.h"

char LICENSE[] SEC("license") = "GPL";

#define SIGKILL   9
#define AF_INET   2
#define AF_INET6  10
#define TS_COMPAT 0x0002 /* x86: a 32-bit system call is running */
#define CWD_STEPS 24     /* dentries and mount crossings walked for the cwd */
#define RULE_HDR  9      /* cgroup id and kind before the path in a rule key */

/* x86_64 system call numbers (this file is built with __TARGET_ARCH_x86). */
enum {
  NR_open = 2,
  NR_connect = 42,
  NR_ptrace = 101,
  NR_setuid = 105,
  NR_setgid = 106,
  NR_setreuid = 113,
  NR_setregid = 114,
  NR_setresuid = 117,
  NR_setresgid = 119,
  NR_setfsuid = 122,
  NR_setfsgid = 123,
  NR_capset = 126,
  NR_mount = 165,
  NR_init_module = 175,
  NR_openat = 257,
  NR_unshare = 272,
  NR_setns = 308,
  NR_finit_module = 313,
  NR_memfd_create = 319,
  NR_bpf = 321,
  NR_execveat = 322,
  NR_openat2 = 437,
};

/* Which kinds user space asked for (bit 1 << kind); set before load. */
const volatile __u32 det_kinds = 0xffffffff;

/* Wake-up batching, set before load: with det_batch_ns 0 every record wakes
 * a waiting reader (the ring's own rule); else records are committed without
 * a wake-up while the reader is busy, and it drains them every det_batch_ns.
 * A wake-up is forced when the reader waits for the next record
 * (det_reader_ns 0), when it has not drained for twice its period, or when
 * det_wake_bytes are unread: a wake-up costs the writer an interrupt (and on
 * a virtual machine an exit to the host), which batching pays once per
 * period instead of once per record. */
const volatile __u64 det_batch_ns = 0;
const volatile __u64 det_wake_bytes = 1 << 18;
/* Written by the reader (mmapped .bss): when it last drained while busy, in
 * boot-clock ns, or 0 when it waits. Read here with no lock: a stale value
 * delays a record by one of the reader's timeouts at most. */
volatile __u64 det_reader_ns = 0;
/* Records per second each watched cgroup may reserve; 0: no limit. In the
 * mmapped .bss, so user space changes it at any time without a reload. */
volatile __u64 det_rate_limit = 0;
/* Which kinds of rule cgroup 0 (every watched cgroup) has: bit 1 << the
 * det_rule_kind for paths, DET_GLOBAL_DESTS for destinations. Kept by user
 * space (a bit is set before the first such rule is written and cleared
 * after the last is deleted), so that the lookups under cgroup 0, which
 * `outpost detector` never fills, cost nothing when they cannot match: one
 * LPM lookup of every open and exec, and two hash lookups of every connect. */
volatile __u32 det_global_rules = 0;

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 20); /* user space sets the real size */
} det_ring SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, DET_EV_MAX);
  __type(key, __u32);
  __type(value, __u64);
} det_drops SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u64);
  __type(value, struct det_cgroup);
} det_cgroups SEC(".maps");

/* Records not reserved because their cgroup's budget was spent, per kind and
 * per CPU (the /metrics counters: they outlive the cgroups). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, DET_EV_MAX);
  __type(key, __u32);
  __type(value, __u64);
} det_throttled SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096); /* as det_cgroups: one per watched cgroup */
  __type(key, __u64);
  __type(value, struct det_rate);
} det_rates SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 16384);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct det_path_key);
  __type(value, struct det_rule);
} det_paths SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, struct det_dest_key);
  __type(value, struct det_rule);
} det_dests SEC(".maps");

/* A rule key is too large for the 512-byte stack next to everything else. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct det_path_key);
} det_scratch SEC(".maps");

static __always_inline bool wanted(__u32 kind) {
  return det_kinds & (1u << kind);
}

/* The watched cgroup of the current task, or NULL: the early exit that keeps
 * unwatched processes cheap. */
static __always_inline const struct det_cgroup *watched(__u64 *cgid) {
  *cgid = bpf_get_current_cgroup_id();
  return bpf_map_lookup_elem(&det_cgroups, cgid);
}

static __always_inline void count_drop(__u32 kind) {
  __u64 *c = bpf_map_lookup_elem(&det_drops, &kind);
  if (c) __sync_fetch_and_add(c, 1);
}

static __always_inline struct det_rate *rate_get(__u64 cgid) {
  struct det_rate *r = bpf_map_lookup_elem(&det_rates, &cgid), zero;

  if (r) return r;
  __builtin_memset(&zero, 0, sizeof zero);
  /* Two CPUs may both miss: NOEXIST lets one make it, the other finds it. */
  bpf_map_update_elem(&det_rates, &cgid, &zero, BPF_NOEXIST);
  return bpf_map_lookup_elem(&det_rates, &cgid);
}

/* True when the cgroup has spent its budget: the record of this kind is
 * then counted, not reserved. Callers ask only for records that report (a
 * kill is never asked about), after every policy check.
 *
 * A token bucket of a tenth of a second's budget, refilled at the limit,
 * kept as one word (det_rate.tat_ns, the generic cell rate algorithm)
 * rather than tokens and a refill time, which would have to change together
 * under a lock that tracing programs may not take. Not fixed one-second
 * windows: a flood would spend each window's whole budget in its first
 * milliseconds, a burst of thousands of records that overflows the ring for
 * every other cgroup, and a burst straddling two windows could reach twice
 * the limit; the bucket spreads a flood's records over the second and
 * allows at most the limit plus a tenth in any second. CPUs race on the
 * word (two may read it before either adds, and a reset to now may
 * overwrite an add), so the budget is approximate by a few records; the
 * throttled counts are atomic adds and never lose one. */
static __always_inline bool throttled(__u64 cgid, const struct det_cgroup *cg, __u32 kind) {
  __u64 limit = det_rate_limit, now, tat, step, burst;
  struct det_rate *r;

  if (limit == 0 || kind >= DET_EV_MAX) return false;
  if (!(r = rate_get(cgid))) return false; /* no room for the entry: report rather than lose */
  now = bpf_ktime_get_boot_ns();
  step = 1000000000ull / limit;
  if (step == 0) step = 1;
  burst = step > DET_RATE_BURST_NS ? step : DET_RATE_BURST_NS; /* at least one record */
  tat = r->tat_ns;
  if (tat < now) { /* the bucket is full: it cannot hold more than its size */
    tat = now;
    r->tat_ns = now;
  }
  if (tat + step <= now + burst) {
    __sync_fetch_and_add(&r->tat_ns, step);
    return false;
  }
  __sync_fetch_and_add(&r->throttled[kind], 1);
  r->env_id = cg->env_id;
  if (kind == DET_EV_FORK) {
    r->fork_ns = now;
    r->fork_pid = bpf_get_current_pid_tgid() >> 32;
  }
  __u64 *c = bpf_map_lookup_elem(&det_throttled, &kind);
  if (c) __sync_fetch_and_add(c, 1);
  return true;
}

static __always_inline void hdr_fill(struct det_hdr *h, __u32 kind, __u64 cgid,
                                     const struct det_cgroup *cg, __s32 nr, __u16 action) {
  struct task_struct *t = bpf_get_current_task_btf();
  __u64 pid_tgid = bpf_get_current_pid_tgid();
  __u64 uid_gid = bpf_get_current_uid_gid();

  h->ts_boot_ns = bpf_ktime_get_boot_ns();
  h->cgroup_id = cgid;
  h->kind = kind;
  h->env_id = cg->env_id;
  h->pid = pid_tgid >> 32;
  h->tid = (__u32)pid_tgid;
  h->ppid = BPF_CORE_READ(t, real_parent, tgid);
  h->uid = (__u32)uid_gid;
  h->gid = uid_gid >> 32;
  h->action = action;
  h->flags = 0;
  h->nr = nr;
  h->pad = 0;
  bpf_get_current_comm(h->comm, sizeof h->comm);
}

static __always_inline void *reserve(__u64 size, __u32 kind) {
  void *e = bpf_ringbuf_reserve(&det_ring, size, 0);
  if (!e) count_drop(kind);
  return e;
}

/* Commits a reserved record whose header says when it was made. */
static __always_inline void submit(void *e, __u64 now) {
  __u64 last, flags = 0;

  if (det_batch_ns) {
    last = det_reader_ns;
    flags = BPF_RB_NO_WAKEUP;
    if (last == 0 || now - last >= 2 * det_batch_ns ||
        bpf_ringbuf_query(&det_ring, BPF_RB_AVAIL_DATA) >= det_wake_bytes) {
      flags = BPF_RB_FORCE_WAKEUP;
      det_reader_ns = now; /* the records behind this one need no wake-up of their own */
    }
  }
  bpf_ringbuf_submit(e, flags);
}

static __always_inline __u16 kill_if(__u32 action) {
  if (action != DET_RULE_KILL) return DET_ACT_NONE;
  bpf_send_signal(SIGKILL);
  return DET_ACT_KILLED;
}

/* ------------------------------------------------------------ path rules */

static __always_inline struct det_path_key *rule_key(__u64 cgid, __u8 kind) {
  __u32 zero = 0;
  struct det_path_key *k = bpf_map_lookup_elem(&det_scratch, &zero);
  if (!k) return NULL;
  __builtin_memcpy(k->data, &cgid, sizeof cgid);
  k->data[8] = kind;
  return k;
}

/* Looks the path already in k (len bytes with its NUL) up under the cgroup
 * and, when it has rules of this kind, under cgroup 0 (rules for every
 * watched cgroup); the stronger rule wins. Returns 0 when no rule matches. */
static __always_inline __u32 rule_lookup(struct det_path_key *k, __u64 cgid, long len, __u8 kind) {
  __u64 all = 0;
  __u32 action = 0;
  struct det_rule *r;

  if (len <= 0) return 0;
  k->prefixlen = (RULE_HDR + (__u32)len) * 8;
  r = bpf_map_lookup_elem(&det_paths, k);
  if (r) action = r->action;
  if (!(det_global_rules & (1u << kind))) return action;
  __builtin_memcpy(k->data, &all, sizeof all);
  r = bpf_map_lookup_elem(&det_paths, k);
  if (r && r->action > action) action = r->action;
  __builtin_memcpy(k->data, &cgid, sizeof cgid);
  return action;
}

/* ------------------------------------------------------------ exec, exit, fork */

/* Writes the cwd's components, leaf first, each NUL-terminated: a verifier
 * cannot follow a right-to-left copy, so user space reverses them. Crosses
 * mounts up to the root of the task's mount namespace. The offset and the
 * "reached the root" flag live in the record, not in registers: the verifier
 * then sees the same state at the top of every iteration whichever branch
 * ran, instead of one state per path through the loop (which exceeds its
 * budget). */
static __always_inline void cwd_fill(struct det_exec *e, struct task_struct *t) {
  struct dentry *d, *up;
  struct vfsmount *vm;
  struct mount *m, *parent;
  __u64 mnt_off = bpf_core_field_offset(struct mount, mnt);

  d = BPF_CORE_READ(t, fs, pwd.dentry);
  vm = BPF_CORE_READ(t, fs, pwd.mnt);
  m = (void *)vm - mnt_off;
  e->cwd_len = 0;
  e->h.flags |= DET_F_TRUNC_CWD;
  for (int i = 0; i < CWD_STEPS; i++) {
    if (d == BPF_CORE_READ(vm, mnt_root)) {
      parent = BPF_CORE_READ(m, mnt_parent);
      if (parent == m) {
        e->h.flags &= ~DET_F_TRUNC_CWD;
        break;
      }
      d = BPF_CORE_READ(m, mnt_mountpoint);
      m = parent;
      vm = (void *)m + mnt_off;
      continue;
    }
    up = BPF_CORE_READ(d, d_parent);
    if (up == d) {
      e->h.flags &= ~DET_F_TRUNC_CWD;
      break;
    }
    __u32 off = e->cwd_len;
    if (off >= DET_CWD_MAX) break;
    long n = bpf_probe_read_kernel_str(&e->cwd[off & (DET_CWD_MAX - 1)], DET_NAME_CAP,
                                       BPF_CORE_READ(d, d_name.name));
    if (n <= 0) break;
    e->cwd_len = off + (__u32)n;
    d = up;
  }
}

static __always_inline void args_fill(struct det_exec *e, struct task_struct *t) {
  struct mm_struct *mm = BPF_CORE_READ(t, mm);
  unsigned long start = BPF_CORE_READ(mm, arg_start);
  __u64 len = BPF_CORE_READ(mm, arg_end) - start;

  e->args_len = 0;
  if (len > DET_ARGS_MAX) {
    len = DET_ARGS_MAX;
    e->h.flags |= DET_F_TRUNC_ARGS;
  }
  if (bpf_probe_read_user(e->args, len, (const void *)start) == 0) e->args_len = len;
}

/* After the new image is in place and before it runs a single instruction of
 * its own: the moment to kill a forbidden binary. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(det_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm) {
  const struct det_cgroup *cg;
  struct det_path_key *k;
  struct det_exec *e;
  const char *binary;
  __u64 cgid;
  __u16 action;
  long len;

  if (!(cg = watched(&cgid))) return 0;
  if (!(k = rule_key(cgid, DET_RULE_EXEC))) return 0;
  binary = BPF_CORE_READ(bprm, filename);
  len = bpf_probe_read_kernel_str(&k->data[RULE_HDR], DET_RULE_PATH_MAX, binary);
  action = kill_if(rule_lookup(k, cgid, len, DET_RULE_EXEC));
  if (!wanted(DET_EV_EXEC) && action == DET_ACT_NONE) return 0;
  if (action == DET_ACT_NONE && throttled(cgid, cg, DET_EV_EXEC)) return 0;
  if (!(e = reserve(sizeof *e, DET_EV_EXEC))) return 0;
  hdr_fill(&e->h, DET_EV_EXEC, cgid, cg, -1, action);
  if (bpf_probe_read_kernel_str(e->binary, sizeof e->binary, binary) == sizeof e->binary)
    e->h.flags |= DET_F_TRUNC_PATH;
  args_fill(e, p);
  cwd_fill(e, p);
  submit(e, e->h.ts_boot_ns);
  return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(det_exit, struct task_struct *p) {
  const struct det_cgroup *cg;
  struct det_exit *e;
  __u64 cgid;

  /* One record per process: the last thread out sees no live threads. */
  if (BPF_CORE_READ(p, signal, live.counter) != 0) return 0;
  if (!(cg = watched(&cgid))) return 0;
  if (throttled(cgid, cg, DET_EV_EXIT)) return 0;
  if (!(e = reserve(sizeof *e, DET_EV_EXIT))) return 0;
  hdr_fill(&e->h, DET_EV_EXIT, cgid, cg, -1, DET_ACT_NONE);
  e->status = BPF_CORE_READ(p, exit_code);
  e->pad = 0;
  submit(e, e->h.ts_boot_ns);
  return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(det_fork, struct task_struct *parent, struct task_struct *child) {
  const struct det_cgroup *cg;
  struct det_fork *e;
  __u64 cgid;

  /* New threads are not processes; a fork bomb shows in process forks. */
  if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid)) return 0;
  if (!(cg = watched(&cgid))) return 0;
  /* A throttled fork still reaches the fork-rate alarm: user space adds the
   * cgroup's throttled forks to the forks it read (detector/README.md). */
  if (throttled(cgid, cg, DET_EV_FORK)) return 0;
  if (!(e = reserve(sizeof *e, DET_EV_FORK))) return 0;
  hdr_fill(&e->h, DET_EV_FORK, cgid, cg, -1, DET_ACT_NONE);
  e->child_pid = BPF_CORE_READ(child, tgid);
  e->pad = 0;
  submit(e, e->h.ts_boot_ns);
  return 0;
}

/* ------------------------------------------------------------ system calls */

/* The destination under the cgroup, then (when it has any) under cgroup 0;
 * each with its port, then with port 0 (every port). */
static __always_inline __u32 dest_lookup(struct det_dest_key *k) {
  __u32 action = 0;
  struct det_rule *r;
  __u16 port = k->port;
  int passes = det_global_rules & DET_GLOBAL_DESTS ? 4 : 2;

  for (int pass = 0; pass < 4; pass++) {
    if (pass == passes) break;
    k->port = pass & 1 ? 0 : port;
    if (pass == 2) k->cgroup_id = 0;
    r = bpf_map_lookup_elem(&det_dests, k);
    if (r && r->action > action) action = r->action;
  }
  return action;
}

static __always_inline int on_connect(struct pt_regs *regs, __u64 cgid,
                                      const struct det_cgroup *cg) {
  const void *uaddr = (const void *)BPF_CORE_READ(regs, si);
  struct det_dest_key k = {.cgroup_id = cgid};
  struct sockaddr_in6 sin6;
  struct sockaddr_in sin;
  struct det_connect *e;
  __u16 family = 0, action;

  if (bpf_probe_read_user(&family, sizeof family, uaddr)) return 0;
  if (family == AF_INET) {
    if (bpf_probe_read_user(&sin, sizeof sin, uaddr)) return 0;
    k.port = bpf_ntohs(sin.sin_port);
    __builtin_memcpy(k.addr, &sin.sin_addr, 4);
  } else if (family == AF_INET6) {
    if (bpf_probe_read_user(&sin6, sizeof sin6, uaddr)) return 0;
    k.port = bpf_ntohs(sin6.sin6_port);
    __builtin_memcpy(k.addr, &sin6.sin6_addr, 16);
  } else {
    return 0; /* Unix and other local sockets are not network connections */
  }
  k.family = family;
  __u16 port = k.port;
  action = kill_if(dest_lookup(&k));
  if (!wanted(DET_EV_CONNECT) && action == DET_ACT_NONE) return 0;
  if (action == DET_ACT_NONE && throttled(cgid, cg, DET_EV_CONNECT)) return 0;
  if (!(e = reserve(sizeof *e, DET_EV_CONNECT))) return 0;
  hdr_fill(&e->h, DET_EV_CONNECT, cgid, cg, NR_connect, action);
  e->fd = (__s32)BPF_CORE_READ(regs, di);
  e->family = family;
  e->port = port;
  __builtin_memcpy(e->addr, k.addr, sizeof e->addr);
  submit(e, e->h.ts_boot_ns);
  return 0;
}

/* open, openat, openat2: reported only under a watched prefix. The path is
 * matched as the caller passed it; see detector/README.md for what that
 * means for relative paths. */
static __always_inline int on_open(struct pt_regs *regs, long nr, __u64 cgid,
                                   const struct det_cgroup *cg) {
  const char *upath =
      (const char *)(nr == NR_open ? BPF_CORE_READ(regs, di) : BPF_CORE_READ(regs, si));
  struct det_path_key *k;
  struct det_open *e;
  __u32 rule;
  __u16 action;
  long len;

  if (!(k = rule_key(cgid, DET_RULE_OPEN))) return 0;
  len = bpf_probe_read_user_str(&k->data[RULE_HDR], DET_RULE_PATH_MAX, upath);
  if (!(rule = rule_lookup(k, cgid, len, DET_RULE_OPEN))) return 0;
  action = kill_if(rule);
  if (!wanted(DET_EV_OPEN) && action == DET_ACT_NONE) return 0;
  if (action == DET_ACT_NONE && throttled(cgid, cg, DET_EV_OPEN)) return 0;
  if (!(e = reserve(sizeof *e, DET_EV_OPEN))) return 0;
  hdr_fill(&e->h, DET_EV_OPEN, cgid, cg, nr, action);
  e->pad = 0;
  if (nr == NR_open) {
    e->dirfd = -100; /* AT_FDCWD */
    e->flags = (__s32)BPF_CORE_READ(regs, si);
    e->mode = (__u32)BPF_CORE_READ(regs, dx);
  } else if (nr == NR_openat) {
    e->dirfd = (__s32)BPF_CORE_READ(regs, di);
    e->flags = (__s32)BPF_CORE_READ(regs, dx);
    e->mode = (__u32)BPF_CORE_READ(regs, r10);
  } else {
    __u64 how[2] = {0, 0}; /* struct open_how: flags, mode */
    bpf_probe_read_user(how, sizeof how, (const void *)BPF_CORE_READ(regs, dx));
    e->dirfd = (__s32)BPF_CORE_READ(regs, di);
    e->flags = (__s32)how[0];
    e->mode = (__u32)how[1];
  }
  if (bpf_probe_read_user_str(e->path, sizeof e->path, upath) == sizeof e->path)
    e->h.flags |= DET_F_TRUNC_PATH;
  submit(e, e->h.ts_boot_ns);
  return 0;
}

static __always_inline void sys_str(struct det_sys *e, int i, __u64 uptr) {
  long n;

  e->str[i][0] = '\0';
  if (!uptr) return;
  n = bpf_probe_read_user_str(e->str[i], DET_STR_MAX, (const void *)uptr);
  if (n == DET_STR_MAX) e->h.flags |= DET_F_TRUNC_ARGS;
  if (n < 0) e->h.flags |= DET_F_ADDR_FAULT;
}

/* capset: the header's version and pid, then the three sets of the two
 * 32-bit halves that _LINUX_CAPABILITY_VERSION_3 passes. */
static __always_inline void capset_fill(struct det_sys *e, __u64 hdrp, __u64 datap) {
  __u32 h[2] = {0, 0}, d[6] = {0, 0, 0, 0, 0, 0};

  if (bpf_probe_read_user(h, sizeof h, (const void *)hdrp) ||
      bpf_probe_read_user(d, sizeof d, (const void *)datap))
    e->h.flags |= DET_F_ADDR_FAULT;
  e->args[0] = h[0];
  e->args[1] = (__s32)h[1];
  e->args[2] = 0;
  e->args[3] = (__s64)((__u64)d[3] << 32 | d[0]);
  e->args[4] = (__s64)((__u64)d[4] << 32 | d[1]);
  e->args[5] = (__s64)((__u64)d[5] << 32 | d[2]);
}

static __always_inline int on_sys(struct pt_regs *regs, long nr, __u32 kind, __u64 cgid,
                                  const struct det_cgroup *cg) {
  __u64 a[6];
  struct det_sys *e;

  if (!wanted(kind) || throttled(cgid, cg, kind)) return 0;
  a[0] = BPF_CORE_READ(regs, di);
  a[1] = BPF_CORE_READ(regs, si);
  a[2] = BPF_CORE_READ(regs, dx);
  a[3] = BPF_CORE_READ(regs, r10);
  a[4] = BPF_CORE_READ(regs, r8);
  a[5] = BPF_CORE_READ(regs, r9);
  if (!(e = reserve(sizeof *e, kind))) return 0;
  hdr_fill(&e->h, kind, cgid, cg, nr, DET_ACT_NONE);
  for (int i = 0; i < 6; i++) e->args[i] = (__s64)a[i];
  e->str[0][0] = e->str[1][0] = e->str[2][0] = '\0';
  /* User pointers mean nothing to a reader: they become 0 once copied. */
  switch (nr) {
  case NR_capset:
    capset_fill(e, a[0], a[1]);
    break;
  case NR_init_module:
    sys_str(e, 0, a[2]);
    e->args[0] = e->args[2] = 0;
    break;
  case NR_finit_module:
    sys_str(e, 0, a[1]);
    e->args[1] = 0;
    break;
  case NR_mount:
    sys_str(e, 0, a[0]);
    sys_str(e, 1, a[1]);
    sys_str(e, 2, a[2]);
    e->args[0] = e->args[1] = e->args[2] = e->args[4] = 0;
    break;
  case NR_memfd_create:
    sys_str(e, 0, a[0]);
    e->args[0] = 0;
    break;
  case NR_execveat:
    sys_str(e, 0, a[1]);
    e->args[1] = e->args[2] = e->args[3] = 0;
    break;
  case NR_bpf:
    e->args[1] = 0;
    break;
  }
  submit(e, e->h.ts_boot_ns);
  return 0;
}

static __always_inline __u32 sys_kind(long nr) {
  switch (nr) {
  case NR_connect:
    return DET_EV_CONNECT;
  case NR_open:
  case NR_openat:
  case NR_openat2:
    return DET_EV_OPEN;
  case NR_setuid:
  case NR_setreuid:
  case NR_setresuid:
  case NR_setfsuid:
    return DET_EV_SETUID;
  case NR_setgid:
  case NR_setregid:
  case NR_setresgid:
  case NR_setfsgid:
    return DET_EV_SETGID;
  case NR_capset:
    return DET_EV_CAPSET;
  case NR_ptrace:
    return DET_EV_PTRACE;
  case NR_init_module:
  case NR_finit_module:
    return DET_EV_MODULE;
  case NR_mount:
    return DET_EV_MOUNT;
  case NR_unshare:
    return DET_EV_UNSHARE;
  case NR_setns:
    return DET_EV_SETNS;
  case NR_memfd_create:
    return DET_EV_MEMFD;
  case NR_execveat:
    return DET_EV_EXECVEAT;
  case NR_bpf:
    return DET_EV_BPF;
  }
  return 0;
}

/* Every system call of every process passes here: the call number is tested
 * before anything else, then the cgroup. 32-bit (compat) calls use other
 * numbers and are left alone rather than misread. */
SEC("tp_btf/sys_enter")
int BPF_PROG(det_sys_enter, struct pt_regs *regs, long id) {
  const struct det_cgroup *cg;
  struct task_struct *t;
  __u32 kind = sys_kind(id);
  __u64 cgid;

  if (!kind) return 0;
  /* connect and open carry policies, checked even when not reported. */
  if (!wanted(kind) && kind != DET_EV_CONNECT && kind != DET_EV_OPEN) return 0;
  if (!(cg = watched(&cgid))) return 0;
  t = bpf_get_current_task_btf();
  if (bpf_core_field_exists(t->thread_info.status) &&
      (BPF_CORE_READ(t, thread_info.status) & TS_COMPAT))
    return 0;
  if (kind == DET_EV_CONNECT) return on_connect(regs, cgid, cg);
  if (kind == DET_EV_OPEN) return on_open(regs, id, cgid, cg);
  return on_sys(regs, id, kind, cgid, cg);
}
