/*
 * detector.h — the detector's public interface: load the eBPF programs of
 * bpf/, choose which cgroups they watch and what they forbid there, read
 * their events decoded, and turn an event into a CloudEvent.
 *
 * Two halves. detector_bpf_* owns the kernel side: the programs, their maps
 * and the ring buffer (needs root, or CAP_BPF with CAP_PERFMON, and a kernel
 * with BTF). detector_event_* is pure user space: from a decoded event and
 * the environment it belongs to, a CloudEvent with the type catalogue of
 * detector/README.md.
 *
 * Errors are negative errno values:
 *   -EINVAL        a bad argument (a ring size that is not a power of two, a
 *                  cgroup id of 0 where one is needed, an unknown family)
 *   -ENAMETOOLONG  a policy path longer than DETECTOR_RULE_PATH_MAX
 *   -ENOSPC        a kernel map is full
 *   -ENOENT        unwatching a cgroup that is not watched
 *   -ENOMEM        out of memory
 *   others         what the bpf(2) system call returned
 */
#ifndef OUTPOST_DETECTOR_DETECTOR_H
#define OUTPOST_DETECTOR_DETECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ce.h"

/* ---------------------------------------------------------------- events */

/* What happened. The values are those of enum det_kind in bpf/detector.h. */
typedef enum detector_kind {
  DETECTOR_EXEC = 1, /* a process ran a new program */
  DETECTOR_EXIT,     /* a process ended (its last thread) */
  DETECTOR_FORK,     /* a process made a process (threads are not reported) */
  DETECTOR_CONNECT,  /* connect(2) to an IPv4 or IPv6 address */
  DETECTOR_OPEN,     /* open, openat or openat2 of a watched or forbidden path */
  DETECTOR_SETUID,   /* setuid, setreuid, setresuid, setfsuid */
  DETECTOR_SETGID,   /* setgid, setregid, setresgid, setfsgid */
  DETECTOR_CAPSET,   /* capset(2) */
  DETECTOR_PTRACE,   /* ptrace(2) */
  DETECTOR_MODULE,   /* init_module, finit_module */
  DETECTOR_MOUNT,    /* mount(2) */
  DETECTOR_UNSHARE,  /* unshare(2) */
  DETECTOR_SETNS,    /* setns(2) */
  DETECTOR_MEMFD,    /* memfd_create(2) */
  DETECTOR_EXECVEAT, /* execveat(2), the way to run a file that has no path */
  DETECTOR_BPF,      /* bpf(2) */
  DETECTOR_KIND_MAX
} detector_kind;

typedef enum detector_action {
  DETECTOR_ACTION_NONE = 0,
  DETECTOR_ACTION_KILLED = 1, /* a policy matched: the process got SIGKILL */
} detector_action;

#define DETECTOR_COMM_LEN  16
#define DETECTOR_PATH_MAX  256
#define DETECTOR_ARGS_MAX  512
#define DETECTOR_STR_MAX   128
#define DETECTOR_SYSNAME   16
#define DETECTOR_ADDR_TEXT 46 /* INET6_ADDRSTRLEN */

/* detector_event.flags */
#define DETECTOR_F_TRUNC_ARGS 0x1 /* arguments or a string argument were cut */
#define DETECTOR_F_TRUNC_CWD  0x2 /* cwd is incomplete (too deep) */
#define DETECTOR_F_TRUNC_PATH 0x4 /* the path or binary may have been cut */
#define DETECTOR_F_ADDR_FAULT 0x8 /* a user pointer could not be read */

/* One decoded kernel event. A plain value: every string is an array inside
 * it, NUL-terminated, so it may be copied and kept. Which member of u is
 * filled follows from kind: exec, exit, fork, connect, open, or sys for
 * every system call kind after DETECTOR_OPEN. */
typedef struct detector_event {
  detector_kind kind;
  detector_action action;
  int64_t time_sec; /* wall clock (UTC) of the event, from the kernel's boot clock */
  int32_t time_nsec;
  uint64_t boot_ns; /* CLOCK_BOOTTIME when it happened */
  uint64_t cgroup_id;
  uint32_t env_id; /* what detector_bpf_watch was given for the cgroup */
  int32_t pid;     /* process (thread group) id, in the initial pid namespace */
  int32_t tid;
  int32_t ppid;
  uint32_t uid, gid;
  uint32_t flags;                   /* DETECTOR_F_* */
  int32_t syscall;                  /* x86_64 system call number, or -1 */
  char sysname[DETECTOR_SYSNAME];   /* its name ("openat"), or "" */
  char comm[DETECTOR_COMM_LEN + 1]; /* the task's name */
  union {
    struct {
      char binary[DETECTOR_PATH_MAX]; /* the path given to execve */
      char args[DETECTOR_ARGS_MAX];   /* argv, each NUL-terminated */
      size_t args_len;                /* bytes of args used */
      size_t argc;                    /* strings in args */
      char cwd[DETECTOR_PATH_MAX];    /* in its mount namespace, or "" when unknown */
    } exec;
    struct {
      int32_t status; /* as wait(2) reports it */
      int32_t code;   /* exit code, when it exited */
      int32_t signal; /* the signal that ended it, else 0 */
    } exit;
    struct {
      int32_t child_pid;
    } fork;
    struct {
      int32_t fd;
      int family; /* AF_INET or AF_INET6 */
      uint16_t port;
      uint8_t addr[16];              /* network order; the first 4 bytes for IPv4 */
      char text[DETECTOR_ADDR_TEXT]; /* the address as text */
    } connect;
    struct {
      int32_t dirfd; /* AT_FDCWD (-100) for open(2) */
      int32_t flags;
      uint32_t mode;
      char path[DETECTOR_PATH_MAX]; /* as the caller passed it */
    } open;
    /* The arguments as detector/README.md lists them per call: pointers to
     * user memory are 0, strings they pointed to are in str. */
    struct {
      int64_t args[6];
      char str[3][DETECTOR_STR_MAX];
    } sys;
  } u;
} detector_event;

/* The "dev.outpost.<area>.<what>" type of a kind, or NULL for an unknown one. */
const char *detector_kind_type(detector_kind kind);
/* A short name ("exec", "connect"), or "unknown". */
const char *detector_kind_name(detector_kind kind);

/* ---------------------------------------------------------------- CloudEvents */

/* Where an event comes from, as the runtime knows it. Every field must be
 * set; names are DNS labels in practice (they go into the source URI). */
typedef struct detector_env {
  const char *node;
  const char *environment;
  const char *tenant;
  const char *ns; /* the Kubernetes-style namespace */
} detector_env;

/* Builds the CloudEvent of e: type from the catalogue, source
 * "/nodes/<node>/environments/<environment>", subject (the binary, path,
 * address or call), time with nanoseconds, id unique per source, extensions
 * tenant, namespace, environment, node, severity, action and partitionkey
 * (the environment, so that one environment's events stay in order), and
 * JSON data with the event's fields. Bytes that are not UTF-8 (arguments and
 * paths may hold anything) become U+FFFD in the data.
 * On success *out is a new validated event owned by the caller. Returns 0,
 * -EINVAL (an unknown kind, a missing env field, or a value the CloudEvents
 * rules refuse: *err says which, when err is non-NULL) or -ENOMEM. */
int detector_event_to_ce(const detector_event *e, const detector_env *env, ce_event **out,
                         ce_err *err);

/* The same event as detector_event_to_ce followed by ce_json_encode (the
 * same attributes, extensions and data; members may come in another order),
 * written straight into out in the JSON event format, without building a
 * ce_event: the attributes are valid by construction (the catalogue's names,
 * the environment's plain names, the decoder's numbers) and strings from
 * the process are escaped as the builder does (bytes that are not UTF-8
 * become U+FFFD; in the subject, control characters and noncharacters do
 * too). What publishing to an ingress needs per kernel event, for a fraction
 * of the CPU. Appends to out; on failure out is as it was. Returns 0,
 * -EINVAL (an unknown kind), -ENOTSUP (a name in env that is not
 * [A-Za-z0-9._-]{1,255}, or a time_nsec outside a second: build it with
 * detector_event_to_ce, which checks it) or -ENOMEM. */
int detector_event_json(const detector_event *e, const detector_env *env, ce_buf *out);

/* ---------------------------------------------------------------- fork rate */

/* Forks per second per environment over a sliding window, from fork events
 * (see detector/forkrate.c). Not thread-safe: one thread notes forks. */
typedef struct detector_forkrate detector_forkrate;

/* window_ms: the window (at least 10 ms; it is kept in tenths); threshold:
 * forks per second above which an alarm is due. Returns NULL with errno
 * EINVAL or ENOMEM. Freed with detector_forkrate_free (NULL does nothing). */
detector_forkrate *detector_forkrate_new(int window_ms, uint32_t threshold);
void detector_forkrate_free(detector_forkrate *fr);

/* Counts a fork of environment env_id at boot_ns (the event's boot_ns) and
 * puts the environment's rate (forks per second over the window) in *rate
 * when rate is not NULL. Returns 1 when an alarm is due: the rate is above
 * the threshold and no alarm was due for this environment in the window
 * before this fork; else 0, or -ENOMEM. */
int detector_forkrate_note(detector_forkrate *fr, uint32_t env_id, uint64_t boot_ns, double *rate);

/* Builds the dev.outpost.process.forkrate event of an alarm: the source,
 * extensions and partitionkey of env's other events, severity critical,
 * subject the environment, time and id from e (the fork that crossed the
 * threshold), data {"rate", "window_ms", "threshold", "pid"}. On success *out
 * is a new validated event owned by the caller. Returns 0, -EINVAL or
 * -ENOMEM. */
int detector_forkrate_to_ce(const detector_env *env, const detector_event *e, double rate,
                            int window_ms, uint32_t threshold, ce_event **out, ce_err *err);

/* Adds n forks of environment env_id at boot_ns, as detector_forkrate_note
 * does one: for forks known by their count only (those the kernel throttled,
 * detector_throttled), all placed at the time given. n 0 only reads the
 * rate. Same returns. */
int detector_forkrate_add(detector_forkrate *fr, uint32_t env_id, uint64_t boot_ns, uint64_t n,
                          double *rate);

/* ---------------------------------------------------------------- throttling */

/* What one watched cgroup had throttled, as the kernel counts it. */
typedef struct detector_throttled {
  uint64_t cgroup_id;
  uint32_t env_id; /* its env_id when it was last throttled */
  /* Per kind since the cgroup was watched (counts[0] is their sum); they
   * only grow while it stays watched, and start again at 0 when it is
   * unwatched and watched again. */
  uint64_t counts[DETECTOR_KIND_MAX];
  uint64_t fork_ns; /* CLOCK_BOOTTIME of its last throttled fork, 0 if none */
  int32_t fork_pid; /* the process that made that fork */
} detector_throttled;

/* Turns the kernel's throttle counts (totals per cgroup, detector_throttled)
 * into counts per environment since the last report (see
 * detector/throttle.c). _note and _take may run on different threads. */
typedef struct detector_throttle detector_throttle;

/* Returns NULL with errno ENOMEM. Freed with detector_throttle_free (NULL
 * does nothing). */
detector_throttle *detector_throttle_new(void);
void detector_throttle_free(detector_throttle *tt);

/* Notes one cgroup's totals: their growth since the cgroup's last note (all
 * of them for a cgroup not noted before, or whose totals went down: it was
 * watched afresh) is added to the pending counts of t->env_id. *new_forks,
 * when not NULL, gets the fork part of that growth. Returns 0 or -ENOMEM
 * (the growth is then noted at the next call). */
int detector_throttle_note(detector_throttle *tt, const detector_throttled *t, uint64_t *new_forks);

/* Forgets the cgroups not noted since the last sweep (unwatched ones), so
 * that the tracker holds only live cgroups. Call after noting every cgroup. */
void detector_throttle_sweep(detector_throttle *tt);

/* Called by detector_throttle_take for each environment with pending counts
 * (counts[0] is their sum, at least 1). */
typedef void (*detector_throttle_cb)(uint32_t env_id, const uint64_t counts[DETECTOR_KIND_MAX],
                                     void *opaque);

/* Hands the pending counts to cb, one environment at a time, and clears
 * them. Returns how many environments were handed out. */
size_t detector_throttle_take(detector_throttle *tt, detector_throttle_cb cb, void *opaque);

/* Builds the dev.outpost.detector.throttled event of one environment and
 * period: the source, extensions and partitionkey of env's other events,
 * severity warning, action none, subject the environment, time (sec, nsec)
 * and id "<s>.<ns>-<env_id>-throttled", data {"throttled": counts[0],
 * "kinds": {kind: count, only those above 0}, "limit", "interval_ms"}. On
 * success *out is a new validated event owned by the caller. Returns 0,
 * -EINVAL or -ENOMEM. */
int detector_throttle_to_ce(const detector_env *env, uint32_t env_id,
                            const uint64_t counts[DETECTOR_KIND_MAX], uint64_t limit,
                            int interval_ms, int64_t sec, int32_t nsec, ce_event **out,
                            ce_err *err);

/* ---------------------------------------------------------------- the kernel side */

/* Opaque. One loaded and attached set of programs with their own maps. */
typedef struct detector_bpf detector_bpf;

typedef struct detector_bpf_opts {
  /* Bytes of the ring buffer: a power of two, at least the page size.
   * 0 means 1 MiB. */
  size_t ring_bytes;
  /* Kinds to report, bit (1u << kind); 0 means all. sched_process_exit and
   * sched_process_fork are attached only for DETECTOR_EXIT and
   * DETECTOR_FORK; sched_process_exec and sys_enter always are, because the
   * policies are enforced there whatever this says. */
  uint32_t kinds;
  /* Wake-up batching (bpf/detector.bpf.c, det_batch_ns): while the reader
   * is busy, records wait up to this many milliseconds to be read together
   * instead of each waking it; a record that finds the reader waiting still
   * wakes it at once. 0 means 5; negative: every record wakes the reader. */
  int batch_ms;
  /* Records per second each watched cgroup may report (bpf/detector.bpf.c,
   * det_rate_limit): past it a record is counted as throttled instead (see
   * detector_bpf_throttled); a kill is always reported. 0: no limit.
   * detector_bpf_rate_limit_set changes it later. */
  uint64_t rate_limit;
} detector_bpf_opts;

/* What the kernel offers and what is in use. */
typedef struct detector_hooks {
  int fentry;   /* 0 when an fentry program loads, else the negative errno */
  int lsm;      /* 0 when a BPF LSM program loads, else the negative errno */
  bool exec;    /* tp_btf/sched_process_exec attached */
  bool exit;    /* tp_btf/sched_process_exit attached */
  bool fork;    /* tp_btf/sched_process_fork attached */
  bool syscall; /* tp_btf/sys_enter attached */
  /* One line for the log: "tp_btf: sched_process_exec, ...; fentry:
   * unavailable (EPERM), not used; lsm: unavailable (EPERM), not used". */
  char summary[256];
} detector_hooks;

/* Probes the kernel, loads the programs and attaches them. o may be NULL for
 * the defaults. Returns NULL on failure with the reason in err (errlen bytes,
 * may be NULL/0) and errno set. The result is freed with detector_bpf_free.
 * Nothing is watched yet: the programs return at once for every process. */
detector_bpf *detector_bpf_open(const detector_bpf_opts *o, char *err, size_t errlen);

/* Detaches and unloads everything. detector_bpf_free(NULL) does nothing.
 * Events still in the ring buffer are lost (they were never handed out). */
void detector_bpf_free(detector_bpf *d);

/* What was probed at open and what is attached now. Valid until
 * detector_bpf_free. */
const detector_hooks *detector_bpf_hooks(const detector_bpf *d);

/* Detaches every program (on false) or attaches again those that open
 * attached (on true); the maps, the ring buffer and what they hold stay.
 * While detached none of them runs: nothing is enforced, reported or
 * counted. Asking for the state already in place does nothing. For
 * benchmarks and tests, which compare the kernel with and without the
 * programs in one process. Returns 0, or the negative errno of an attach,
 * after which everything is detached. */
int detector_bpf_attach(detector_bpf *d, bool on);

/* Watches the processes of the cgroup (v2) with this id: from now on their
 * events carry env_id. Watching a watched cgroup changes its env_id. The
 * cgroup id is the inode number of its directory in the cgroup2 mount. */
int detector_bpf_watch(detector_bpf *d, uint64_t cgroup_id, uint32_t env_id);

/* Stops watching the cgroup and removes its policy. -ENOENT when it was not
 * watched (its policy, if any, is removed all the same). */
int detector_bpf_unwatch(detector_bpf *d, uint64_t cgroup_id);

/* A destination that connect(2) must not reach. */
typedef struct detector_dest {
  int family; /* AF_INET or AF_INET6 */
  uint8_t addr[16];
  uint16_t port; /* host order; 0 means every port */
} detector_dest;

/* The longest path a policy may hold. */
#define DETECTOR_RULE_PATH_MAX 246

/* What a cgroup's processes may not do, and which paths are reported when
 * opened. Strings are byte prefixes of the path as the process passes it to
 * open (no resolution of "..", symlinks or relative paths: see
 * detector/README.md); binaries are matched whole against the path given to
 * execve. A longer matching prefix wins over a shorter one. Arrays may be
 * NULL when their count is 0. */
typedef struct detector_policy {
  const char *const *forbidden_binaries; /* exec of these: SIGKILL before they run */
  size_t n_forbidden_binaries;
  const char *const *forbidden_prefixes; /* open under these: SIGKILL */
  size_t n_forbidden_prefixes;
  const char *const *watched_prefixes; /* open under these: reported */
  size_t n_watched_prefixes;
  const detector_dest *forbidden_dests; /* connect to these: SIGKILL */
  size_t n_forbidden_dests;
} detector_policy;

/* Replaces the policy of a cgroup (p NULL: removes it). cgroup_id 0 holds a
 * policy that applies to every watched cgroup besides its own. The new rules
 * are in place before the old ones go, so that a rule kept across the change
 * never lapses. Nothing is copied from p after the call. On failure the
 * cgroup may hold a mix of the old and the new rules. */
int detector_bpf_policy_set(detector_bpf *d, uint64_t cgroup_id, const detector_policy *p);

/* Called for each event. Return 0 to go on, or a negative errno to stop:
 * detector_bpf_poll then returns it. e is valid during the call only (copy
 * it: it is a plain value). */
typedef int (*detector_event_cb)(const detector_event *e, void *opaque);

/* Hands each event in the ring to cb, then waits: up to timeout_ms (-1: for
 * ever, 0: not at all) for the next record when there were none, and for the
 * batching period (detector_bpf_opts.batch_ms) when there were, so that
 * records gather while the reader is busy. Returns the number handled, or a
 * negative errno (-EINTR when a signal interrupted the wait). */
int detector_bpf_poll(detector_bpf *d, int timeout_ms, detector_event_cb cb, void *opaque);

/* Events the kernel could not report because the ring buffer was full, per
 * kind since open (out[kind], out[0] is the total); out has DETECTOR_KIND_MAX
 * entries. Returns 0 or a negative errno. */
int detector_bpf_drops(detector_bpf *d, uint64_t out[DETECTOR_KIND_MAX]);

/* Sets the per-cgroup budget, records per second (0: no limit), at once,
 * without reloading; a cgroup's bucket keeps what it spent. Returns 0. */
int detector_bpf_rate_limit_set(detector_bpf *d, uint64_t per_sec);

/* Records the kernel did not reserve because their cgroup had spent its
 * budget, per kind since open (out[0] is the total), whichever cgroup made
 * them. Returns 0 or a negative errno. */
int detector_bpf_throttled(detector_bpf *d, uint64_t out[DETECTOR_KIND_MAX]);

/* Called for each cgroup; return 0 to go on or a negative errno to stop
 * (detector_bpf_throttled_each then returns it). t is valid during the call. */
typedef int (*detector_throttled_cb)(const detector_throttled *t, void *opaque);

/* Hands cb the counts of every watched cgroup that reported a record since
 * a limit was set. A cgroup unwatched meanwhile may be missing; one may be
 * handed out twice (the counts are totals, so that is harmless). Returns 0
 * or a negative errno. */
int detector_bpf_throttled_each(detector_bpf *d, detector_throttled_cb cb, void *opaque);

/* Decodes one ring-buffer record (what the kernel wrote) into *e, with the
 * given offset from the boot clock to the wall clock in nanoseconds. For
 * tests and tools; detector_bpf_poll does this itself. Returns 0 or -EINVAL
 * for a record too short for its kind or of an unknown kind. */
int detector_event_decode(const void *rec, size_t len, int64_t boot_to_wall_ns, detector_event *e);

/* `outpost detector` (detector/main.c): flags in argv (argv[0] is
 * "detector"); returns the exit code: 0, 1 (a failure), 2 (bad flags), 3
 * (the kernel side is unavailable: not root, no BTF). */
int detector_main(int argc, char **argv);

/* Thread rules: detector_bpf_poll runs on one thread at a time.
 * detector_bpf_watch, _unwatch, _policy_set, _drops, _rate_limit_set,
 * _throttled and _throttled_each may be called from any
 * thread, also while another polls; policy changes are serialised inside.
 * detector_bpf_attach may run while another thread polls, but not beside
 * itself or detector_bpf_hooks. detector_bpf_free must not run while any
 * other call does. */

#endif
