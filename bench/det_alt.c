/*
 * det_alt.c — the detector's kernel side measured by paired alternation.
 * bench_detector.sh compares whole runs, seconds apart, with and without an
 * `outpost detector`; on a noisy machine their ratios spread far wider than
 * the few per cent in question. Here one process moves itself into a fresh
 * cgroup2 directory, loads the detector's real programs through its loader
 * (the cgroup watched, a watched path prefix in its policy, a thread draining
 * the ring) and times short chunks of a workload (10-30 ms) with the
 * programs attached and detached (detector_bpf_attach), one of each per
 * pair, in an order drawn from a fixed-seed generator. Each pair gives a
 * ratio of two chunks milliseconds apart, so the machine's drift mostly
 * cancels, and hundreds of pairs give a median with a distribution-free
 * confidence interval. The programs run in the workload's own context, so
 * they show in its thread CPU time (CLOCK_THREAD_CPUTIME_ID), which other
 * processes on the machine hardly touch; wall time is measured too.
 *
 * A second mode attaches, instead of the detector, a program that only
 * returns 0 on the sys_enter BTF tracepoint: what any sys_enter-based
 * detector pays on this kernel (the system calls' slow path into the
 * tracepoint and one program call), the floor under the detector's figure.
 * A third, the control, attaches that program where no workload goes (the
 * sched_kthread_stop tracepoint): the same switching, nothing on the
 * workload's path, so its ratios say how far the alternation alone moves
 * them.
 *
 * Left out: the detector's user side and the broker (its CPU per event, on
 * another CPU): bench_detector.sh measures those. See bench/README.md.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include "det_work.h"
#include "detector/detector.h"

/* ------------------------------------------------------------ options */

enum { W_MIX, W_LOOP, W_EXEC, W_GETPID, W_MAX };
enum { M_DETECTOR, M_FLOOR, M_CONTROL, M_MAX };

typedef struct alt_opts {
  long pairs;           /* pairs per workload and mode */
  double chunk_ms;      /* an in-process chunk's length, calibrated at start */
  double exec_chunk_ms; /* the exec storm's */
  uint64_t seed;        /* of the generator that orders each pair */
  uint64_t rate_limit;  /* detector_bpf_opts.rate_limit */
  unsigned workloads;   /* bit 1 << W_* */
  unsigned modes;       /* bit 1 << M_* */
  const char *commit;   /* printed as given */
} alt_opts;

static const char *const wl_keys[W_MAX] = {"mix", "loop", "exec", "getpid"};
static const char *const mode_keys[M_MAX] = {"detector", "floor", "control"};
/* The raw tracepoints of the floor and the control programs. */
static const char *const mode_tps[M_MAX] = {NULL, "sys_enter", "sched_kthread_stop"};

static void usage(FILE *f) {
  fprintf(f, "usage: det_alt [--pairs N] [--chunk-ms MS] [--exec-chunk-ms MS] [--seed S]\n"
             "               [--rate-limit N] [--workloads mix,loop,exec,getpid]\n"
             "               [--modes detector,floor,control] [--commit TEXT]\n"
             "  --pairs N          pairs (one chunk attached, one detached) per workload and\n"
             "                     mode (default 300)\n"
             "  --chunk-ms MS      length of an in-process chunk, calibrated (default 20)\n"
             "  --exec-chunk-ms MS length of an exec-storm chunk (default 30)\n"
             "  --seed S           of the generator that orders each pair (default 1)\n"
             "  --rate-limit N     the detector's per-cgroup budget, events/s (default 10000,\n"
             "                     as outpost detector; 0: none)\n"
             "  --workloads LIST   which to run (default all)\n"
             "  --modes LIST       what is attached: the detector's programs, the floor (an\n"
             "                     empty program on sys_enter), the control (an empty program\n"
             "                     on a tracepoint no workload reaches); default detector,floor\n"
             "Needs root, a kernel with BTF and a cgroup2 mount.\n");
}

/* Sets the bits of the comma-separated names found in keys; -1 on a name
 * it does not know. */
static int parse_set(const char *s, const char *const *keys, int nkeys, unsigned *out) {
  char buf[128], *save = NULL;

  snprintf(buf, sizeof buf, "%s", s);
  *out = 0;
  for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    int k = 0;
    while (k < nkeys && strcmp(tok, keys[k]) != 0) k++;
    if (k == nkeys) return -1;
    *out |= 1u << k;
  }
  return *out ? 0 : -1;
}

static int parse_num(const char *s, double lo, double *out) {
  char *end;
  errno = 0;
  *out = strtod(s, &end);
  return errno || end == s || *end || *out < lo ? -1 : 0;
}

static int opts_parse(alt_opts *o, int argc, char **argv) {
  *o = (alt_opts){.pairs = 300,
                  .chunk_ms = 20,
                  .exec_chunk_ms = 30,
                  .seed = 1,
                  .rate_limit = 10000,
                  .workloads = (1u << W_MAX) - 1,
                  .modes = 1u << M_DETECTOR | 1u << M_FLOOR,
                  .commit = "unknown"};
  for (int i = 1; i < argc; i += 2) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    double x;
    int rc = 0;

    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return 1;
    if (!v) return -1;
    if (strcmp(a, "--pairs") == 0 && !(rc = parse_num(v, 6, &x)))
      o->pairs = (long)x;
    else if (strcmp(a, "--chunk-ms") == 0 && !(rc = parse_num(v, 0.1, &x)))
      o->chunk_ms = x;
    else if (strcmp(a, "--exec-chunk-ms") == 0 && !(rc = parse_num(v, 1, &x)))
      o->exec_chunk_ms = x;
    else if (strcmp(a, "--seed") == 0 && !(rc = parse_num(v, 0, &x)))
      o->seed = (uint64_t)x;
    else if (strcmp(a, "--rate-limit") == 0 && !(rc = parse_num(v, 0, &x)))
      o->rate_limit = (uint64_t)x;
    else if (strcmp(a, "--workloads") == 0)
      rc = parse_set(v, wl_keys, W_MAX, &o->workloads);
    else if (strcmp(a, "--modes") == 0)
      rc = parse_set(v, mode_keys, M_MAX, &o->modes);
    else if (strcmp(a, "--commit") == 0)
      o->commit = v;
    else
      return -1;
    if (rc) return -1;
  }
  return 0;
}

/* ------------------------------------------------------------ the cgroup */

typedef struct alt_cg {
  char root[256];  /* the cgroup2 mount */
  char home[1300]; /* the cgroup we came from, to go back to */
  char path[512];  /* ours, made here */
  uint64_t id;     /* its inode number: what bpf_get_current_cgroup_id says */
} alt_cg;

static int cg_root_find(alt_cg *cg) {
  char line[1024];
  FILE *f = fopen("/proc/self/mountinfo", "r");

  if (!f) return -errno;
  cg->root[0] = '\0';
  while (fgets(line, sizeof line, f))
    if (strstr(line, " - cgroup2 ") && sscanf(line, "%*s %*s %*s %*s %255s", cg->root) == 1) break;
  fclose(f);
  return cg->root[0] ? 0 : -ENOENT;
}

/* Our cgroup2 directory: the "0::" line of /proc/self/cgroup. */
static int cg_home_find(alt_cg *cg) {
  char line[1024];
  FILE *f = fopen("/proc/self/cgroup", "r");
  int rc = -ENOENT;

  if (!f) return -errno;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "0::", 3) != 0) continue;
    line[strcspn(line, "\n")] = '\0';
    snprintf(cg->home, sizeof cg->home, "%s%s", cg->root, strcmp(line + 3, "/") ? line + 3 : "");
    rc = 0;
    break;
  }
  fclose(f);
  return rc;
}

/* Moves the whole process (every thread) into the cgroup at dir. */
static int cg_join(const char *dir) {
  char procs[1320];
  int fd, rc = 0;

  snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
  if ((fd = open(procs, O_WRONLY | O_CLOEXEC)) < 0) return -errno;
  if (write(fd, "0", 1) != 1) rc = -errno;
  close(fd);
  return rc;
}

static int cg_make(alt_cg *cg) {
  struct stat st;
  int rc;

  if ((rc = cg_root_find(cg)) || (rc = cg_home_find(cg))) return rc;
  snprintf(cg->path, sizeof cg->path, "%s/outpost-det-alt-%d", cg->root, (int)getpid());
  if (mkdir(cg->path, 0755) != 0) {
    rc = -errno;
    cg->path[0] = '\0';
    return rc;
  }
  if (stat(cg->path, &st) != 0) return -errno;
  cg->id = (uint64_t)st.st_ino;
  return cg_join(cg->path);
}

static void cg_remove(alt_cg *cg) {
  if (!cg->path[0]) return;
  if (cg_join(cg->home) != 0) fprintf(stderr, "det_alt: could not leave %s\n", cg->path);
  if (rmdir(cg->path) != 0) fprintf(stderr, "det_alt: rmdir %s: %s\n", cg->path, strerror(errno));
  cg->path[0] = '\0';
}

/* ------------------------------------------------------------ workloads */

typedef struct fixture {
  char dir[64];      /* scratch directory */
  char prefix[128];  /* the watched prefix, dir/watched/ */
  char watched[160]; /* a file under it: its opens are reported */
  char other[160];   /* a file outside it: looked up, not reported */
  char data[160];    /* the ordinary mix's file */
  int data_fd;
  int closed_fd; /* bound, never listening: connects to it are refused */
  struct sockaddr_in closed;
  uid_t uid;
} fixture;

/* pread and pwrite 4 KiB, stat, getpid, mmap and munmap 64 KiB: 6 calls
 * the detector does not report; every 64th round an open of a watched file
 * (reported) and its close. */
static int wl_mix(const fixture *f, long n) {
  char buf[DET_MIX_BUF];

  memset(buf, 'x', sizeof buf);
  for (long i = 0; i < n; i++)
    if (det_mix_round(i, f->data_fd, f->data, f->watched, buf)) return -1;
  return 0;
}

/* The worst case: open+close under the watched prefix (reported), another
 * open+close (looked up), a refused TCP connect (reported), a setuid no-op
 * (reported), getppid: 9 calls, 3 reported. */
static int wl_loop(const fixture *f, long n) {
  for (long i = 0; i < n; i++)
    if (det_loop_round(f->watched, f->other, &f->closed, f->uid))
      return -1; /* -2: something listens */
  return 0;
}

/* fork, exec /bin/true, wait: fork, exec and exit events. */
static int wl_exec(const fixture *f, long n) {
  (void)f;
  for (long i = 0; i < n; i++)
    if (det_exec_once()) return -1;
  return 0;
}

static int wl_getpid(const fixture *f, long n) {
  (void)f;
  for (long i = 0; i < n; i++) (void)syscall(SYS_getpid);
  return 0;
}

typedef struct workload {
  const char *name;
  int (*run)(const fixture *f, long n);
  double ops;       /* per round: system calls, or execs */
  const char *unit; /* what an op is */
  bool children;    /* its CPU includes its children's */
} workload;

static const workload workloads[W_MAX] = {
    [W_MIX] = {"ordinary mix", wl_mix, 6 + 2.0 / DET_MIX_OPEN_EVERY, "call", false},
    [W_LOOP] = {"worst-case loop", wl_loop, 9, "call", false},
    [W_EXEC] = {"exec storm", wl_exec, 1, "exec", true},
    [W_GETPID] = {"getpid loop", wl_getpid, 1, "call", false},
};

static int fixture_init(fixture *f) {
  socklen_t len = sizeof f->closed;
  char buf[4096] = {0};
  int fd;

  f->data_fd = f->closed_fd = -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/outpost-det-alt.XXXXXX");
  if (!mkdtemp(f->dir)) {
    f->dir[0] = '\0';
    return -errno;
  }
  snprintf(f->prefix, sizeof f->prefix, "%s/watched/", f->dir);
  snprintf(f->watched, sizeof f->watched, "%sfile", f->prefix);
  snprintf(f->other, sizeof f->other, "%s/other", f->dir);
  snprintf(f->data, sizeof f->data, "%s/data", f->dir);
  if (mkdir(f->prefix, 0755) != 0) return -errno;
  if ((fd = open(f->watched, O_CREAT | O_WRONLY | O_CLOEXEC, 0644)) < 0) return -errno;
  close(fd);
  if ((fd = open(f->other, O_CREAT | O_WRONLY | O_CLOEXEC, 0644)) < 0) return -errno;
  close(fd);
  if ((f->data_fd = open(f->data, O_CREAT | O_RDWR | O_CLOEXEC, 0644)) < 0) return -errno;
  f->closed = (struct sockaddr_in){.sin_family = AF_INET};
  f->closed.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if ((f->closed_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
      bind(f->closed_fd, (struct sockaddr *)&f->closed, len) ||
      getsockname(f->closed_fd, (struct sockaddr *)&f->closed, &len))
    return -errno;
  f->uid = geteuid();
  return pwrite(f->data_fd, buf, sizeof buf, 0) == (ssize_t)sizeof buf ? 0 : -EIO;
}

static void fixture_cleanup(fixture *f) {
  if (f->data_fd >= 0) close(f->data_fd);
  if (f->closed_fd >= 0) close(f->closed_fd);
  if (!f->dir[0]) return;
  unlink(f->watched);
  unlink(f->other);
  unlink(f->data);
  rmdir(f->prefix);
  rmdir(f->dir);
}

/* ------------------------------------------------------------ what is attached */

typedef struct alt_bpf {
  detector_bpf *d;
  int prog[M_MAX];            /* the floor's and the control's "return 0", loaded */
  int link[M_MAX];            /* their links while attached, else -1 */
  double switch_ms[M_MAX][2]; /* time spent detaching [0] and attaching [1] */
  long switches[M_MAX][2];
  /* The drain thread's. */
  pthread_t drain;
  bool draining;
  atomic_bool stop;
  atomic_ullong events;
  int drain_rc;
} alt_bpf;

/* "r0 = 0; exit" as a tp_btf program on the raw tracepoint tp, whose BTF
 * target is the typedef the kernel declares for each one. */
static int empty_load(const char *tp) {
  struct bpf_insn insns[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0},
      {.code = BPF_JMP | BPF_EXIT},
  };
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_TRACE_RAW_TP);
  struct btf *vmlinux = btf__load_vmlinux_btf();
  char name[128];
  int id, fd;

  if (!vmlinux) return -errno;
  snprintf(name, sizeof name, "btf_trace_%s", tp);
  id = btf__find_by_name_kind(vmlinux, name, BTF_KIND_TYPEDEF);
  btf__free(vmlinux);
  if (id < 0) return id;
  opts.attach_btf_id = (__u32)id;
  fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, "outpost_empty", "GPL", insns, 2, &opts);
  return fd < 0 ? -errno : fd;
}

static int count_event(const detector_event *e, void *opaque) {
  (void)e;
  atomic_fetch_add_explicit((atomic_ullong *)opaque, 1, memory_order_relaxed);
  return 0;
}

/* Reads the ring while the workload runs, so that records find room as they
 * would with `outpost detector` reading it. */
static void *drain(void *arg) {
  alt_bpf *b = arg;

  while (!atomic_load(&b->stop)) {
    int rc = detector_bpf_poll(b->d, 50, count_event, &b->events);
    if (rc < 0 && rc != -EINTR) {
      b->drain_rc = rc;
      break;
    }
  }
  return NULL;
}

static int link_set(alt_bpf *b, int mode, bool on) {
  if (on && b->link[mode] < 0) {
    b->link[mode] = bpf_link_create(b->prog[mode], 0, BPF_TRACE_RAW_TP, NULL);
    return b->link[mode] < 0 ? -errno : 0;
  }
  if (!on && b->link[mode] >= 0) {
    close(b->link[mode]);
    b->link[mode] = -1;
  }
  return 0;
}

static double clock_ns(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Attaches or detaches what the mode measures; times it, for the report. */
static int mode_set(alt_bpf *b, int mode, bool on) {
  double t0 = clock_ns(CLOCK_MONOTONIC);
  int rc = mode == M_DETECTOR ? detector_bpf_attach(b->d, on) : link_set(b, mode, on);

  b->switch_ms[mode][on] += (clock_ns(CLOCK_MONOTONIC) - t0) / 1e6;
  b->switches[mode][on]++;
  return rc;
}

/* Loads the detector and the empty programs, watches the cgroup with the
 * policy of bench_detector.sh (a watched prefix) and starts the drain
 * thread; everything detached. */
static int bpf_setup(alt_bpf *b, const alt_opts *o, uint64_t cgid, const char *prefix) {
  detector_bpf_opts dopts = {.rate_limit = o->rate_limit};
  const char *watch[1] = {prefix};
  detector_policy p = {.watched_prefixes = watch, .n_watched_prefixes = 1};
  char err[256] = "";
  int rc;

  if (!(b->d = detector_bpf_open(&dopts, err, sizeof err))) {
    fprintf(stderr, "det_alt: detector_bpf_open: %s\n", err);
    return -1;
  }
  if ((rc = detector_bpf_watch(b->d, cgid, 1)) || (rc = detector_bpf_policy_set(b->d, cgid, &p)) ||
      (rc = detector_bpf_attach(b->d, false))) {
    fprintf(stderr, "det_alt: watching the cgroup: %s\n", strerror(-rc));
    return -1;
  }
  for (int m = M_FLOOR; m < M_MAX; m++)
    if ((b->prog[m] = empty_load(mode_tps[m])) < 0) {
      fprintf(stderr, "det_alt: loading an empty program on %s: %s\n", mode_tps[m],
              strerror(-b->prog[m]));
      return -1;
    }
  if ((rc = pthread_create(&b->drain, NULL, drain, b))) {
    fprintf(stderr, "det_alt: drain thread: %s\n", strerror(rc));
    return -1;
  }
  b->draining = true;
  return 0;
}

static void bpf_cleanup(alt_bpf *b) {
  if (b->draining) {
    atomic_store(&b->stop, true);
    pthread_join(b->drain, NULL);
  }
  for (int m = M_FLOOR; m < M_MAX; m++) {
    if (b->link[m] >= 0) close(b->link[m]);
    if (b->prog[m] >= 0) close(b->prog[m]);
  }
  detector_bpf_free(b->d);
}

/* ------------------------------------------------------------ measuring */

typedef struct sample {
  double cpu_ns;  /* the thread's CPU, and its children's for the exec storm */
  double wall_ns; /* CLOCK_MONOTONIC */
} sample;

static double children_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  return ((double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec) * 1e9 +
         ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e3;
}

static int chunk_time(const workload *w, const fixture *f, long n, sample *s) {
  double k0 = w->children ? children_ns() : 0;
  double c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID), t0 = clock_ns(CLOCK_MONOTONIC);

  if (w->run(f, n)) return -1;
  s->wall_ns = clock_ns(CLOCK_MONOTONIC) - t0;
  s->cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
  if (w->children) s->cpu_ns += children_ns() - k0;
  return 0;
}

/* The rounds that make a chunk last about ms, nothing attached: doubled up
 * to a quarter of it (which warms caches too), then scaled. */
static long calibrate(const workload *w, const fixture *f, double ms) {
  sample s;
  long n = 1;

  for (;;) {
    if (chunk_time(w, f, n, &s)) return -1;
    if (s.wall_ns >= ms * 1e6 / 4 || n > (1L << 40)) break;
    n *= 2;
  }
  n = (long)((double)n * ms * 1e6 / s.wall_ns) + 1;
  if (w->run == wl_mix) n = (n + DET_MIX_OPEN_EVERY - 1) / DET_MIX_OPEN_EVERY * DET_MIX_OPEN_EVERY;
  return n;
}

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

/* One workload in one mode: its chunk size and its pairs so far. */
typedef struct combo {
  int wl, mode;
  long n;           /* rounds per chunk */
  sample *on, *off; /* [pairs] */
} combo;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

/* One chunk attached and one detached, in the order given; a short
 * untimed run after each switch lets the first calls' cold caches (the
 * program's, the switch's own) fall outside the timed chunk. Everything is
 * detached again before it returns. */
static int pair_run(alt_bpf *b, const fixture *f, combo *c, long i, bool on_first) {
  const workload *w = &workloads[c->wl];
  int rc;

  for (int k = 0; k < 2; k++) {
    bool on = k == 0 ? on_first : !on_first;
    if ((rc = mode_set(b, c->mode, on))) {
      fprintf(stderr, "det_alt: %s %s: %s\n", on ? "attaching" : "detaching", mode_keys[c->mode],
              strerror(-rc));
      return -1;
    }
    if (w->run(f, c->n / 16 + 1) || chunk_time(w, f, c->n, on ? &c->on[i] : &c->off[i])) {
      fprintf(stderr, "det_alt: %s failed: %s\n", w->name, strerror(errno));
      mode_set(b, c->mode, false);
      return -1;
    }
    if (on && (rc = mode_set(b, c->mode, false))) {
      fprintf(stderr, "det_alt: detaching %s: %s\n", mode_keys[c->mode], strerror(-rc));
      return -1;
    }
  }
  return 0;
}

/* ------------------------------------------------------------ statistics */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The p-quantile of sorted v, interpolated at rank (n - 1) p (from 0). */
static double quantile(const double *v, long n, double p) {
  double r = (double)(n - 1) * p;
  long lo = (long)r;
  return lo + 1 < n ? v[lo] + (r - (double)lo) * (v[lo + 1] - v[lo]) : v[n - 1];
}

/* The rank k (from 1) such that the k-th and (n + 1 - k)-th of n sorted
 * values bracket the median with at least 95% confidence, whatever the
 * distribution: the number of values below the median is binomial(n, 1/2),
 * and k is the largest with P(B <= k - 1) <= 0.025. 0 when n is too small. */
static long median_ci_rank(long n) {
  double cdf = 0;
  long k = 0;

  for (long i = 0; i < n; i++) {
    double lp = lgamma((double)n + 1) - lgamma((double)i + 1) - lgamma((double)(n - i) + 1) -
                (double)n * log(2.0);
    if (cdf + exp(lp) > 0.025) break;
    cdf += exp(lp);
    k = i + 1;
  }
  return k;
}

typedef struct summary {
  double median, lo, hi, q1, q3; /* lo, hi: the 95% interval, NAN when n is too small */
} summary;

static void summarize(double *v, long n, summary *s) {
  long k = median_ci_rank(n);

  qsort(v, (size_t)n, sizeof *v, cmp_double);
  s->median = quantile(v, n, 0.5);
  s->q1 = quantile(v, n, 0.25);
  s->q3 = quantile(v, n, 0.75);
  s->lo = k ? v[k - 1] : NAN;
  s->hi = k ? v[n - k] : NAN;
}

/* One row of the table: c's first n pairs. */
static int combo_print(const combo *c, long n) {
  const workload *w = &workloads[c->wl];
  double ops = (double)c->n * w->ops, sum = 0, sum2 = 0, *v = malloc((size_t)n * sizeof *v);
  summary cpu, wall, off;

  if (!v) return -ENOMEM;
  for (long i = 0; i < n; i++) v[i] = c->on[i].cpu_ns / c->off[i].cpu_ns;
  summarize(v, n, &cpu);
  for (long i = 0; i < n; i++) v[i] = c->on[i].wall_ns / c->off[i].wall_ns;
  summarize(v, n, &wall);
  for (long i = 0; i < n; i++) v[i] = c->off[i].cpu_ns / ops;
  summarize(v, n, &off);
  free(v);
  for (long i = 0; i < n; i++) {
    double added = (c->on[i].cpu_ns - c->off[i].cpu_ns) / ops;
    sum += added;
    sum2 += added * added;
  }
  double mean = sum / (double)n, sd = sqrt(fmax(0, (sum2 - (double)n * mean * mean) / (n - 1)));
  printf("  %-16s %-8s %5ld  %.4f [%.4f, %.4f] %.4f-%.4f   %.4f [%.4f, %.4f] %.4f-%.4f  "
         "%9.1f %+8.1f +-%.1f ns/%s\n",
         w->name, mode_keys[c->mode], n, cpu.median, cpu.lo, cpu.hi, cpu.q1, cpu.q3, wall.median,
         wall.lo, wall.hi, wall.q1, wall.q3, off.median, mean, 1.96 * sd / sqrt((double)n),
         w->unit);
  return 0;
}

/* ------------------------------------------------------------ main */

static void header_print(const alt_opts *o) {
  char date[64];
  struct utsname u;
  time_t t = time(NULL);

  strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
  uname(&u);
  printf("date:   %s\nkernel: %s %s %s\nnproc:  %ld\ncommit: %s\n", date, u.sysname, u.release,
         u.machine, sysconf(_SC_NPROCESSORS_ONLN), o->commit);
  printf("pairs: %ld per workload and mode; chunks of %.0f ms (exec storm %.0f ms); seed %llu; "
         "detector rate limit %llu/s\n",
         o->pairs, o->chunk_ms, o->exec_chunk_ms, (unsigned long long)o->seed,
         (unsigned long long)o->rate_limit);
}

static int combos_make(const alt_opts *o, const fixture *f, combo *cs, int *ncs) {
  long n[W_MAX] = {0};

  *ncs = 0;
  printf("chunk sizes (calibrated, nothing attached):");
  for (int w = 0; w < W_MAX; w++) {
    if (!(o->workloads & (1u << w))) continue;
    n[w] = calibrate(&workloads[w], f, w == W_EXEC ? o->exec_chunk_ms : o->chunk_ms);
    if (n[w] < 0) {
      fprintf(stderr, "\ndet_alt: %s failed: %s\n", workloads[w].name, strerror(errno));
      return -1;
    }
    printf(" %s %ld rounds;", workloads[w].name, n[w]);
  }
  printf("\n");
  for (int w = 0; w < W_MAX; w++)
    for (int m = 0; m < M_MAX; m++) {
      if (!n[w] || !(o->modes & (1u << m))) continue;
      combo *c = &cs[(*ncs)++];
      *c = (combo){.wl = w, .mode = m, .n = n[w]};
      c->on = calloc((size_t)o->pairs, sizeof *c->on);
      c->off = calloc((size_t)o->pairs, sizeof *c->off);
      if (!c->on || !c->off) return -1;
    }
  return 0;
}

/* Pair i of every combo, then pair i + 1: each combo's pairs are spread
 * over the whole run, alike for all. Returns the pairs done, or -1. */
static long pairs_run(const alt_opts *o, alt_bpf *b, const fixture *f, combo *cs, int ncs) {
  uint64_t rng = o->seed;
  long i;

  for (i = 0; i < o->pairs && !interrupted; i++)
    for (int k = 0; k < ncs; k++)
      if (pair_run(b, f, &cs[k], i, splitmix64(&rng) & 1)) return -1;
  return i;
}

static int report(const alt_opts *o, alt_bpf *b, combo *cs, int ncs, long done, double secs) {
  uint64_t drops[DETECTOR_KIND_MAX], thr[DETECTOR_KIND_MAX];
  unsigned long long ev;

  printf("\nratio = attached / detached, per pair; median [95%% CI of the median, order "
         "statistics]\nand interquartile range; cpu = the workload's thread CPU (+ its children's "
         "for the\nexec storm); the last columns: the detached chunks' cpu per op (median) and "
         "the mean\ncpu added per op (+- 1.96 standard errors)\n");
  printf("  %-16s %-8s %5s  %-24s %-13s   %-24s %-13s  %9s %8s\n", "workload", "mode", "pairs",
         "cpu ratio [95% CI]", "cpu IQR", "wall ratio [95% CI]", "wall IQR", "ns/op", "added");
  for (int k = 0; k < ncs; k++)
    if (combo_print(&cs[k], done)) return -1;
  printf("switching, mean ms to attach / detach:");
  for (int m = 0; m < M_MAX; m++)
    if (b->switches[m][1])
      printf(" %s %.2f / %.2f;", mode_keys[m], b->switch_ms[m][1] / (double)b->switches[m][1],
             b->switch_ms[m][0] / (double)b->switches[m][0]);
  printf("\n");
  atomic_store(&b->stop, true);
  pthread_join(b->drain, NULL);
  b->draining = false;
  while (detector_bpf_poll(b->d, 0, count_event, &b->events) > 0) continue;
  ev = atomic_load(&b->events);
  if (detector_bpf_drops(b->d, drops) || detector_bpf_throttled(b->d, thr)) return -1;
  printf("detector: %llu events read, %llu ring drops, %llu throttled; %.0f s in all%s\n", ev,
         (unsigned long long)drops[0], (unsigned long long)thr[0], secs,
         interrupted ? " (interrupted)" : "");
  if (b->drain_rc) {
    fprintf(stderr, "det_alt: reading the ring: %s\n", strerror(-b->drain_rc));
    return -1;
  }
  /* The mix, the loop and the exec storm report events while attached: none
   * read means the programs were not running when they should have been. */
  if ((o->modes & (1u << M_DETECTOR)) && (o->workloads & ~(1u << W_GETPID)) && ev == 0) {
    fprintf(stderr, "det_alt: no event read: the detector's programs did not run\n");
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  alt_opts o;
  alt_cg cg = {0};
  fixture f = {.data_fd = -1, .closed_fd = -1};
  alt_bpf b = {.prog = {-1, -1, -1}, .link = {-1, -1, -1}};
  combo cs[W_MAX * M_MAX] = {0};
  int ncs = 0, rc = 1, prc;
  long done;

  if ((prc = opts_parse(&o, argc, argv))) {
    usage(prc > 0 ? stdout : stderr);
    return prc > 0 ? 0 : 2;
  }
  if (geteuid() != 0) {
    fprintf(stderr, "det_alt: needs root (it loads eBPF programs and makes a cgroup)\n");
    return 1;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  header_print(&o);
  fflush(stdout);
  double t0 = clock_ns(CLOCK_MONOTONIC);
  if ((prc = cg_make(&cg))) {
    fprintf(stderr, "det_alt: a cgroup2 directory to run in: %s\n", strerror(-prc));
    goto cleanup;
  }
  if ((prc = fixture_init(&f))) {
    fprintf(stderr, "det_alt: scratch files: %s\n", strerror(-prc));
    goto cleanup;
  }
  if (bpf_setup(&b, &o, cg.id, f.prefix) || combos_make(&o, &f, cs, &ncs)) goto cleanup;
  fflush(stdout);
  if ((done = pairs_run(&o, &b, &f, cs, ncs)) < 6) goto cleanup;
  /* Interrupted: what was measured is printed, and the exit code says it is short. */
  if (report(&o, &b, cs, ncs, done, (clock_ns(CLOCK_MONOTONIC) - t0) / 1e9) == 0)
    rc = interrupted ? 130 : 0;

cleanup:
  bpf_cleanup(&b);
  fixture_cleanup(&f);
  cg_remove(&cg);
  for (int k = 0; k < ncs; k++) {
    free(cs[k].on);
    free(cs[k].off);
  }
  return rc;
}
