/*
 * detector.h — the records bpf/detector.bpf.c writes into its ring buffer and
 * the keys and values of its maps, shared with detector/ (user space). The
 * kernel side includes it after vmlinux.h, user space after <linux/types.h>.
 * Every struct has a fixed size so that the kernel can reserve it in one call;
 * strings are NUL-terminated within their arrays. Only detector/ reads this
 * header: other components use detector/detector.h.
 */
#ifndef OUTPOST_BPF_DETECTOR_H
#define OUTPOST_BPF_DETECTOR_H

#define DET_COMM_LEN 16
#define DET_PATH_MAX 256 /* exec binary, open path */
#define DET_ARGS_MAX 512 /* exec arguments, NUL-separated; a power of two */
#define DET_CWD_MAX  256 /* cwd components, leaf first; a power of two */
#define DET_NAME_CAP 64  /* bytes of one cwd component read at a time */
#define DET_STR_MAX  128 /* each string argument of a system call */
#define DET_STR_N    3   /* string arguments a system call record carries */

/* Path rules live in one LPM trie whose key data is the cgroup id (8 bytes,
 * host order), a byte naming the rule's kind, then the path. The trie allows
 * 256 bytes of data, hence the path limit. */
#define DET_RULE_PATH_MAX 247
#define DET_RULE_DATA_LEN (8 + 1 + DET_RULE_PATH_MAX)

/* Event kinds: the index of the drop counters, too. */
enum det_kind {
  DET_EV_EXEC = 1,
  DET_EV_EXIT,
  DET_EV_FORK,
  DET_EV_CONNECT,
  DET_EV_OPEN,
  DET_EV_SETUID,
  DET_EV_SETGID,
  DET_EV_CAPSET,
  DET_EV_PTRACE,
  DET_EV_MODULE,
  DET_EV_MOUNT,
  DET_EV_UNSHARE,
  DET_EV_SETNS,
  DET_EV_MEMFD,
  DET_EV_EXECVEAT,
  DET_EV_BPF,
  DET_EV_MAX
};

enum det_action {
  DET_ACT_NONE = 0,
  DET_ACT_KILLED = 1, /* bpf_send_signal(SIGKILL) was sent */
};

/* det_hdr.flags */
#define DET_F_TRUNC_ARGS 0x1 /* the arguments (or a string argument) were cut */
#define DET_F_TRUNC_CWD  0x2 /* the cwd walk stopped before the root */
#define DET_F_TRUNC_PATH 0x4 /* a path may have been cut */
#define DET_F_ADDR_FAULT 0x8 /* a user pointer could not be read */

/* What every record starts with. ts is CLOCK_BOOTTIME (bpf_ktime_get_boot_ns). */
struct det_hdr {
  __u64 ts_boot_ns;
  __u64 cgroup_id;
  __u32 kind; /* enum det_kind */
  __u32 env_id;
  __u32 pid; /* thread group id */
  __u32 tid;
  __u32 ppid; /* the real parent's thread group id */
  __u32 uid;
  __u32 gid;
  __u16 action; /* enum det_action */
  __u16 flags;  /* DET_F_* */
  __s32 nr;     /* system call number, -1 for the scheduler tracepoints */
  __u32 pad;
  char comm[DET_COMM_LEN];
};

struct det_exec {
  struct det_hdr h;
  __u32 args_len; /* bytes of args used, NULs included */
  __u32 cwd_len;  /* bytes of cwd used */
  char binary[DET_PATH_MAX];
  char args[DET_ARGS_MAX];
  /* Path components from the cwd up to the root, each NUL-terminated; the
   * room past DET_CWD_MAX lets the kernel read a component at any offset it
   * accepted without the verifier having to prove a smaller bound. */
  char cwd[DET_CWD_MAX + DET_NAME_CAP];
};

struct det_exit {
  struct det_hdr h;
  __s32 status; /* wait(2) status: exit code << 8, or the signal */
  __u32 pad;
};

struct det_fork {
  struct det_hdr h;
  __u32 child_pid;
  __u32 pad;
};

struct det_connect {
  struct det_hdr h;
  __s32 fd;
  __u16 family; /* AF_INET, AF_INET6, or whatever the caller passed */
  __u16 port;   /* host order */
  __u8 addr[16];
};

struct det_open {
  struct det_hdr h;
  __s32 dirfd;
  __s32 flags;
  __u32 mode;
  __u32 pad;
  char path[DET_PATH_MAX];
};

/* Every other system call: the raw arguments, and up to DET_STR_N of them
 * that are user strings copied (which ones depends on the call; see
 * detector/README.md). capset puts the effective, permitted and inheritable
 * sets it reads from user memory in args[3], args[4] and args[5]. */
struct det_sys {
  struct det_hdr h;
  __s64 args[6];
  char str[DET_STR_N][DET_STR_MAX];
};

/* det_cgroups: watched cgroup id -> this. */
struct det_cgroup {
  __u32 env_id;
  __u32 pad;
};

/* How much of a second's budget a cgroup may spend at once: a tenth, so
 * that a flood's records are spread over the second rather than reserved
 * in a burst larger than the ring buffer holds (at the default 5000/s, 500
 * records: a 1 MiB ring holds about 2,000 system-call records). */
#define DET_RATE_BURST_NS 100000000ull

/* det_rates: watched cgroup id -> its event budget and what it cost. The
 * kernel side makes the entry at the cgroup's first record while a limit is
 * set and is the only writer; user space reads entries and deletes one when
 * it unwatches the cgroup. Kept apart from det_cgroups because user space
 * rewrites that entry (a PUT of the same environment): a rewrite replaces the
 * value, which would reset the budget and lose counts that CPUs are adding
 * to the old one. */
struct det_rate {
  /* The budget, a token bucket in one word (the generic cell rate
   * algorithm): the boot-clock time at which the bucket would be full
   * again. Each record reserved pushes it 1/limit s later; a record that
   * would push it more than DET_RATE_BURST_NS past now is throttled. */
  __u64 tat_ns;
  __u64 fork_ns;  /* boot-clock time of the last fork throttled */
  __u32 fork_pid; /* the process that made it */
  __u32 env_id;   /* the cgroup's environment when it was last throttled */
  /* Records not reserved because the budget was spent, per kind, since the
   * entry was made; only ever incremented, atomically. [0] is unused. */
  __u64 throttled[DET_EV_MAX];
};

/* det_paths key kinds. */
enum det_rule_kind {
  DET_RULE_EXEC = 1, /* a binary, matched whole (the path ends with its NUL) */
  DET_RULE_OPEN = 2, /* a prefix of a path opened */
};

/* det_global_rules: cgroup 0 has destination rules (path rule kinds use
 * bit 1 << their det_rule_kind). */
#define DET_GLOBAL_DESTS (1u << 3)

/* det_paths and det_dests values. */
enum det_rule_action {
  DET_RULE_WATCH = 1, /* report */
  DET_RULE_KILL = 2,  /* report and SIGKILL */
};

struct det_path_key {
  __u32 prefixlen; /* bits of data that must match */
  __u8 data[DET_RULE_DATA_LEN];
};

struct det_rule {
  __u32 action; /* enum det_rule_action */
};

/* det_dests key: a forbidden connect destination; port 0 matches any port. */
struct det_dest_key {
  __u64 cgroup_id;
  __u16 family;
  __u16 port;
  __u32 pad;
  __u8 addr[16];
};

#endif
