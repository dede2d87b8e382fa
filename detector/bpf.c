/*
 * bpf.c — the detector's loader: probes what the kernel offers, opens the
 * skeleton of bpf/detector.bpf.c, sizes its ring buffer, attaches the
 * tracepoints it needs, and then keeps its maps (watched cgroups, policies)
 * and its per-cgroup event budget, and reads its ring buffer, drop and
 * throttle counters for the rest of the component.
 * libbpf's return values (negative errno since libbpf 1.0) pass through
 * unchanged, except "map full" (-E2BIG), which becomes -ENOSPC.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include "bpf/detector.h"
#include "detector.skel.h"
#include "detector/detector.h"
#include "detector/detector_int.h"

#define RING_DEFAULT  (1u << 20)
#define BATCH_DEFAULT 5 /* ms */

struct detector_bpf {
  struct detector_skel *skel;
  struct ring_buffer *rb;
  /* Wake-up batching (batch_ms > 0): the reader's mark in the BPF object's
   * .bss, and an edge-triggered epoll on the ring, which only a wake-up
   * ends; libbpf's own is level-triggered and returns at once while records
   * wait, which would turn the batching sleep into a busy loop. */
  int batch_ms;
  int ep;
  volatile __u64 *reader_ns;
  detector_hooks hooks;
  /* detector_bpf_opts.kinds: which programs attach_all attaches. */
  uint32_t kinds;
  pthread_mutex_t policy_lock; /* policy_set reads, then rewrites, a cgroup's keys */
  /* Set for the duration of one detector_bpf_poll. */
  detector_event_cb cb;
  void *opaque;
  int64_t boot_to_wall_ns;
  detector_event ev; /* decoded here rather than on the stack: it is 1.5 KB */
};

static void errf(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (!err || errlen == 0) return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int64_t detector__boot_to_wall_ns(void) {
  struct timespec rt, bt;
  clock_gettime(CLOCK_REALTIME, &rt);
  clock_gettime(CLOCK_BOOTTIME, &bt);
  return ((int64_t)rt.tv_sec - bt.tv_sec) * 1000000000 + (rt.tv_nsec - bt.tv_nsec);
}

/* ------------------------------------------------------------ probing */

/* Loads "return 0" as a program of the given type attached to a kernel
 * function: the question is whether the kernel lets us, not what it would
 * do. Returns 0 or the negative errno of the load. */
static int probe_hook(struct btf *vmlinux, enum bpf_prog_type type, enum bpf_attach_type at,
                      const char *func) {
  struct bpf_insn insns[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0},
      {.code = BPF_JMP | BPF_EXIT},
  };
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = at);
  int id, fd;

  if (!vmlinux) return -ENOENT;
  id = btf__find_by_name_kind(vmlinux, func, BTF_KIND_FUNC);
  if (id < 0) return id;
  opts.attach_btf_id = (__u32)id;
  fd = bpf_prog_load(type, "outpost_probe", "GPL", insns, 2, &opts);
  if (fd < 0) return fd;
  close(fd);
  return 0;
}

/* The kernel runs BPF LSM programs only when "bpf" is among the active LSMs. */
static int lsm_active(void) {
  char buf[512];
  FILE *f = fopen("/sys/kernel/security/lsm", "r");
  size_t n;

  if (!f) return 0; /* securityfs not mounted: let the load probe decide */
  n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  for (char *tok = strtok(buf, ",\n"); tok; tok = strtok(NULL, ",\n"))
    if (strcmp(tok, "bpf") == 0) return 0;
  return -EOPNOTSUPP;
}

static const char *probe_text(int rc, char *buf, size_t size) {
  if (rc == 0) return "available, not used yet";
  snprintf(buf, size, "unavailable (%s)", strerror(-rc));
  return buf;
}

static void hooks_probe(detector_hooks *h) {
  struct btf *vmlinux = btf__load_vmlinux_btf();

  h->fentry = probe_hook(vmlinux, BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY, "security_file_open");
  h->lsm = probe_hook(vmlinux, BPF_PROG_TYPE_LSM, BPF_LSM_MAC, "bpf_lsm_file_open");
  if (h->lsm == 0) h->lsm = lsm_active();
  btf__free(vmlinux);
}

static void hooks_summarize(detector_hooks *h) {
  char a[64], b[64];
  snprintf(h->summary, sizeof h->summary, "tp_btf:%s%s%s%s; fentry: %s; lsm: %s",
           h->exec ? " sched_process_exec" : "", h->exit ? " sched_process_exit" : "",
           h->fork ? " sched_process_fork" : "", h->syscall ? " sys_enter" : "",
           probe_text(h->fentry, a, sizeof a), probe_text(h->lsm, b, sizeof b));
}

/* ------------------------------------------------------------ open, free */

static int attach_one(struct bpf_program *prog, struct bpf_link **link, bool *flag) {
  *link = bpf_program__attach(prog);
  if (!*link) return -errno;
  *flag = true;
  return 0;
}

/* exec and sys_enter carry the policies, so they are always attached. */
static int attach_all(detector_bpf *d, char *err, size_t errlen) {
  struct detector_skel *s = d->skel;
  detector_hooks *h = &d->hooks;
  int rc;

  if ((rc = attach_one(s->progs.det_exec, &s->links.det_exec, &h->exec)) ||
      (rc = attach_one(s->progs.det_sys_enter, &s->links.det_sys_enter, &h->syscall)) ||
      ((d->kinds & (1u << DET_EV_EXIT)) &&
       (rc = attach_one(s->progs.det_exit, &s->links.det_exit, &h->exit))) ||
      ((d->kinds & (1u << DET_EV_FORK)) &&
       (rc = attach_one(s->progs.det_fork, &s->links.det_fork, &h->fork)))) {
    errf(err, errlen, "attach: %s", strerror(-rc));
    return rc;
  }
  return 0;
}

static void detach_all(detector_bpf *d) {
  struct detector_skel *s = d->skel;
  struct bpf_link **links[] = {&s->links.det_exec, &s->links.det_sys_enter, &s->links.det_exit,
                               &s->links.det_fork};

  for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
    bpf_link__destroy(*links[i]);
    *links[i] = NULL;
  }
  d->hooks.exec = d->hooks.syscall = d->hooks.exit = d->hooks.fork = false;
}

int detector_bpf_attach(detector_bpf *d, bool on) {
  int rc = 0;

  /* det_exec is attached first and detached with the rest, so its link says
   * whether the set is attached: attaching twice attaches once. */
  if (!on)
    detach_all(d);
  else if (!d->skel->links.det_exec && (rc = attach_all(d, NULL, 0)))
    detach_all(d); /* all or nothing */
  hooks_summarize(&d->hooks);
  return rc;
}

static int on_record(void *ctx, void *data, size_t size);

static int ring_size(const detector_bpf_opts *o, uint32_t *out) {
  size_t n = o && o->ring_bytes ? o->ring_bytes : RING_DEFAULT;
  long page = sysconf(_SC_PAGESIZE);

  if (n < (size_t)page || (n & (n - 1)) || n > (1u << 30)) return -EINVAL;
  *out = (uint32_t)n;
  return 0;
}

static int batch_init(detector_bpf *d) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET};

  if (!d->skel->bss) return -ENOTSUP; /* .bss not mmapped: kernel before 5.5 */
  d->reader_ns = &d->skel->bss->det_reader_ns;
  if ((d->ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
      epoll_ctl(d->ep, EPOLL_CTL_ADD, bpf_map__fd(d->skel->maps.det_ring), &ev))
    return -errno;
  return 0;
}

detector_bpf *detector_bpf_open(const detector_bpf_opts *o, char *err, size_t errlen) {
  uint32_t kinds = o && o->kinds ? o->kinds : ~0u, ring;
  detector_bpf *d;
  int rc;

  if ((rc = ring_size(o, &ring))) {
    errf(err, errlen, "ring_bytes must be a power of two from the page size to 1 GiB");
    goto fail;
  }
  if (!(d = calloc(1, sizeof *d))) {
    rc = -ENOMEM;
    goto fail;
  }
  d->ep = -1;
  d->kinds = kinds;
  pthread_mutex_init(&d->policy_lock, NULL);
  hooks_probe(&d->hooks);
  if (!(d->skel = detector_skel__open())) {
    rc = -errno;
    errf(err, errlen, "open the BPF object: %s", strerror(-rc));
    goto free_d;
  }
  d->skel->rodata->det_kinds = kinds;
  d->batch_ms = !o || o->batch_ms == 0 ? BATCH_DEFAULT : o->batch_ms < 0 ? 0 : o->batch_ms;
  d->skel->rodata->det_batch_ns = (uint64_t)d->batch_ms * 1000000;
  d->skel->rodata->det_wake_bytes = ring / 4;
  if (!d->skel->bss) {
    rc = -ENOTSUP; /* the budget and the reader's mark live there */
    errf(err, errlen, "the BPF object has no .bss (kernel before 5.5?)");
    goto free_d;
  }
  d->skel->bss->det_rate_limit = o ? o->rate_limit : 0;
  if ((rc = bpf_map__set_max_entries(d->skel->maps.det_ring, ring)) ||
      (rc = bpf_program__set_autoload(d->skel->progs.det_exit, kinds & (1u << DET_EV_EXIT))) ||
      (rc = bpf_program__set_autoload(d->skel->progs.det_fork, kinds & (1u << DET_EV_FORK)))) {
    errf(err, errlen, "configure the BPF object: %s", strerror(-rc));
    goto free_d;
  }
  if ((rc = detector_skel__load(d->skel))) {
    errf(err, errlen, "load the BPF programs: %s (root, or CAP_BPF and CAP_PERFMON, needed)",
         strerror(-rc));
    goto free_d;
  }
  if ((rc = attach_all(d, err, errlen))) goto free_d;
  if (!(d->rb = ring_buffer__new(bpf_map__fd(d->skel->maps.det_ring), on_record, d, NULL))) {
    rc = -errno;
    errf(err, errlen, "ring buffer: %s", strerror(-rc));
    goto free_d;
  }
  if (d->batch_ms && (rc = batch_init(d))) {
    errf(err, errlen, "ring buffer wake-ups: %s", strerror(-rc));
    goto free_d;
  }
  hooks_summarize(&d->hooks);
  return d;

free_d:
  detector_bpf_free(d);
fail:
  errno = -rc;
  return NULL;
}

void detector_bpf_free(detector_bpf *d) {
  if (!d) return;
  ring_buffer__free(d->rb);
  if (d->ep >= 0) close(d->ep);
  detector_skel__destroy(d->skel);
  pthread_mutex_destroy(&d->policy_lock);
  free(d);
}

const detector_hooks *detector_bpf_hooks(const detector_bpf *d) {
  return &d->hooks;
}

/* ------------------------------------------------------------ events */

static int on_record(void *ctx, void *data, size_t size) {
  detector_bpf *d = ctx;
  int rc = detector_event_decode(data, size, d->boot_to_wall_ns, &d->ev);

  /* Kernel and user side are built from one header: a record that does not
   * decode is a bug, reported rather than skipped. */
  if (rc) return -EPROTO;
  return d->cb(&d->ev, d->opaque);
}

static uint64_t boot_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_BOOTTIME, &t);
  return (uint64_t)t.tv_sec * 1000000000 + (uint64_t)t.tv_nsec;
}

/* Sleeps until the kernel side wakes the ring's readers, or ms pass. */
static int batch_wait(detector_bpf *d, int ms) {
  struct epoll_event ev;
  if (ms == 0) return 0;
  return epoll_wait(d->ep, &ev, 1, ms) < 0 ? -errno : 0;
}

/* Drains the ring, waiting for a wake-up first when it is empty. When
 * records were read the reader is busy: it says so with the time the drain
 * began (the kernel side then commits without waking it) and sleeps what is
 * left of one period while more gather; a drain that took the whole period
 * does not sleep. Before waiting on an empty ring it says it waits (0) and
 * drains once more, for a record committed before the kernel side could see
 * that: the next record then wakes it at once. */
static int batch_poll(detector_bpf *d, int timeout_ms) {
  uint64_t t0 = boot_ns(), spent;
  int n = ring_buffer__consume(d->rb), rc;

  if (n == 0) {
    *d->reader_ns = 0;
    atomic_thread_fence(memory_order_seq_cst);
    if ((n = ring_buffer__consume(d->rb)) == 0) {
      if ((rc = batch_wait(d, timeout_ms))) return rc;
      t0 = boot_ns();
      n = ring_buffer__consume(d->rb);
    }
  }
  if (n <= 0) return n;
  *d->reader_ns = t0;
  spent = (boot_ns() - t0) / 1000000;
  rc = spent < (uint64_t)d->batch_ms ? batch_wait(d, d->batch_ms - (int)spent) : 0;
  return rc ? rc : n;
}

int detector_bpf_poll(detector_bpf *d, int timeout_ms, detector_event_cb cb, void *opaque) {
  int rc;

  if (!cb) return -EINVAL;
  d->cb = cb;
  d->opaque = opaque;
  /* Read the offset afresh: the wall clock may have been stepped. */
  d->boot_to_wall_ns = detector__boot_to_wall_ns();
  rc = d->batch_ms ? batch_poll(d, timeout_ms) : ring_buffer__poll(d->rb, timeout_ms);
  d->cb = NULL;
  d->opaque = NULL;
  return rc;
}

/* Sums a per-CPU array of counters per kind into out; out[0] is the total. */
static int percpu_kinds(int fd, uint64_t out[DETECTOR_KIND_MAX]) {
  int ncpu = libbpf_num_possible_cpus();
  uint64_t *vals;
  int rc = 0;

  if (ncpu <= 0) return ncpu < 0 ? ncpu : -EINVAL;
  if (!(vals = calloc((size_t)ncpu, sizeof *vals))) return -ENOMEM;
  memset(out, 0, DETECTOR_KIND_MAX * sizeof *out);
  for (uint32_t k = 1; k < DETECTOR_KIND_MAX; k++) {
    if ((rc = bpf_map_lookup_elem(fd, &k, vals))) break;
    for (int c = 0; c < ncpu; c++) out[k] += vals[c];
    out[0] += out[k];
  }
  free(vals);
  return rc;
}

int detector_bpf_drops(detector_bpf *d, uint64_t out[DETECTOR_KIND_MAX]) {
  return percpu_kinds(bpf_map__fd(d->skel->maps.det_drops), out);
}

/* ------------------------------------------------------------ the budget */

int detector_bpf_rate_limit_set(detector_bpf *d, uint64_t per_sec) {
  /* A plain store into the mmapped .bss: the programs read it at their next
   * record; a 64-bit aligned store is not torn on x86_64. */
  __atomic_store_n(&d->skel->bss->det_rate_limit, per_sec, __ATOMIC_RELAXED);
  return 0;
}

int detector_bpf_throttled(detector_bpf *d, uint64_t out[DETECTOR_KIND_MAX]) {
  return percpu_kinds(bpf_map__fd(d->skel->maps.det_throttled), out);
}

int detector_bpf_throttled_each(detector_bpf *d, detector_throttled_cb cb, void *opaque) {
  int fd = bpf_map__fd(d->skel->maps.det_rates);
  uint64_t key, next;
  struct det_rate v;
  detector_throttled t;
  int rc;

  /* A key deleted meanwhile makes get_next_key start again from the first:
   * a cgroup may then be handed out twice, with the same or larger counts. */
  for (rc = bpf_map_get_next_key(fd, NULL, &next); rc == 0;
       rc = bpf_map_get_next_key(fd, &key, &next)) {
    key = next;
    if (bpf_map_lookup_elem(fd, &key, &v)) continue; /* deleted since */
    memset(&t, 0, sizeof t);
    t.cgroup_id = key;
    t.env_id = v.env_id;
    t.fork_ns = v.fork_ns;
    t.fork_pid = (int32_t)v.fork_pid;
    for (int k = 1; k < DETECTOR_KIND_MAX; k++) {
      t.counts[k] = v.throttled[k];
      t.counts[0] += v.throttled[k];
    }
    if ((rc = cb(&t, opaque))) return rc;
  }
  return rc == -ENOENT ? 0 : rc;
}

/* ------------------------------------------------------------ watching */

static int map_rc(int rc) {
  return rc == -E2BIG ? -ENOSPC : rc;
}

int detector_bpf_watch(detector_bpf *d, uint64_t cgroup_id, uint32_t env_id) {
  struct det_cgroup v = {.env_id = env_id};

  if (cgroup_id == 0) return -EINVAL;
  return map_rc(
      bpf_map_update_elem(bpf_map__fd(d->skel->maps.det_cgroups), &cgroup_id, &v, BPF_ANY));
}

int detector_bpf_unwatch(detector_bpf *d, uint64_t cgroup_id) {
  int rc;

  if (cgroup_id == 0) return -EINVAL;
  rc = bpf_map_delete_elem(bpf_map__fd(d->skel->maps.det_cgroups), &cgroup_id);
  /* Its budget goes with it (-ENOENT when it never reported): a cgroup
   * watched again starts afresh, and the map holds watched cgroups only. */
  bpf_map_delete_elem(bpf_map__fd(d->skel->maps.det_rates), &cgroup_id);
  int prc = detector_bpf_policy_set(d, cgroup_id, NULL);
  return rc ? rc : prc;
}

/* The det_global_rules bits of a policy for cgroup 0. */
static uint32_t global_rules(const detector_policy *p) {
  uint32_t bits = 0;
  if (!p) return 0;
  if (p->n_forbidden_binaries) bits |= 1u << DET_RULE_EXEC;
  if (p->n_watched_prefixes || p->n_forbidden_prefixes) bits |= 1u << DET_RULE_OPEN;
  if (p->n_forbidden_dests) bits |= DET_GLOBAL_DESTS;
  return bits;
}

int detector_bpf_policy_set(detector_bpf *d, uint64_t cgroup_id, const detector_policy *p) {
  volatile uint32_t *global = &d->skel->bss->det_global_rules;
  uint32_t bits = global_rules(p);
  int rc;

  pthread_mutex_lock(&d->policy_lock);
  /* Cgroup 0's rules are looked up only for the kinds its bits name: a bit
   * is on before its first rule is in and off after its last is out, so
   * that no rule is ever in the map unlooked-at (on failure both stay on). */
  if (cgroup_id == 0) __atomic_store_n(global, *global | bits, __ATOMIC_SEQ_CST);
  rc = detector__policy_apply(bpf_map__fd(d->skel->maps.det_paths),
                              bpf_map__fd(d->skel->maps.det_dests), cgroup_id, p);
  if (cgroup_id == 0 && rc == 0) __atomic_store_n(global, bits, __ATOMIC_SEQ_CST);
  pthread_mutex_unlock(&d->policy_lock);
  return map_rc(rc);
}
