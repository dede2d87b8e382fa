/*
 * det_util.h — what the detector's kernel tests share: the reasons to skip
 * (not root, no BTF, no cgroup2), a fresh cgroup2 directory per test whose
 * inode number is the id the kernel reports, children that move themselves
 * into a cgroup and then act, and a log of the events a detector hands out.
 * Include after <cmocka.h>.
 */
#ifndef OUTPOST_TESTS_DETECTOR_DET_UTIL_H
#define OUTPOST_TESTS_DETECTOR_DET_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "detector/detector.h"
#include "tests/unit/test_util.h"

#define SKIP_CODE 77

/* The cgroup2 mount point ("/sys/fs/cgroup" or, on hybrid hosts,
 * "/sys/fs/cgroup/unified"), or "" when there is none. */
static char cg2_root[256] __attribute__((unused));

static inline int find_cg2_root(void) {
  char line[1024];
  FILE *f = fopen("/proc/self/mountinfo", "r");
  if (!f) return -errno;
  cg2_root[0] = '\0';
  while (fgets(line, sizeof line, f)) {
    char mnt[256];
    const char *sep = strstr(line, " - cgroup2 ");
    if (!sep || sscanf(line, "%*s %*s %*s %*s %255s", mnt) != 1) continue;
    snprintf(cg2_root, sizeof cg2_root, "%s", mnt);
    break;
  }
  fclose(f);
  return cg2_root[0] ? 0 : -ENOENT;
}

/* Returns 0 when the kernel tests can run, else prints why and returns the
 * CTest skip code. */
static inline int det_can_run(void) {
  if (geteuid() != 0) {
    fprintf(stderr, "SKIP: the eBPF tests need root\n");
    return SKIP_CODE;
  }
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
    fprintf(stderr, "SKIP: the kernel has no BTF (/sys/kernel/btf/vmlinux)\n");
    return SKIP_CODE;
  }
  if (find_cg2_root() != 0) {
    fprintf(stderr, "SKIP: no cgroup2 mount\n");
    return SKIP_CODE;
  }
  return 0;
}

/* A cgroup2 directory made for one test. */
typedef struct testcg {
  char path[512];
  uint64_t id; /* the inode number: bpf_get_current_cgroup_id() of its members */
} testcg;

static inline void cg_make(testcg *cg, const char *tag) {
  static int seq;
  struct stat st;
  snprintf(cg->path, sizeof cg->path, "%s/outpost-test-%d-%s-%d", cg2_root, (int)getpid(), tag,
           seq++);
  if (mkdir(cg->path, 0755) != 0) fail_msg("mkdir %s: %s", cg->path, strerror(errno));
  if (stat(cg->path, &st) != 0) fail_msg("stat %s: %s", cg->path, strerror(errno));
  cg->id = (uint64_t)st.st_ino;
}

static inline void cg_remove(testcg *cg) {
  if (cg->path[0] && rmdir(cg->path) != 0)
    fprintf(stderr, "rmdir %s: %s\n", cg->path, strerror(errno));
  cg->path[0] = '\0';
}

/* In a child: joins the cgroup ("0" names the writer). Exits 99 on failure. */
static inline void cg_enter(const testcg *cg) {
  char procs[600];
  snprintf(procs, sizeof procs, "%s/cgroup.procs", cg->path);
  int fd = open(procs, O_WRONLY);
  if (fd < 0 || write(fd, "0", 1) != 1) _exit(99);
  close(fd);
}

/* Forks a child that joins cg and runs fn(arg); its return value is the
 * child's exit code (fn may also exec). Returns the child's pid. */
static inline pid_t spawn_in(const testcg *cg, int (*fn)(void *), void *arg) {
  pid_t pid = fork();
  if (pid < 0) fail_msg("fork: %s", strerror(errno));
  if (pid == 0) {
    cg_enter(cg);
    _exit(fn(arg));
  }
  return pid;
}

/* Waits for the child and returns its wait status. */
static inline int reap(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) fail_msg("waitpid: %s", strerror(errno));
  return status;
}

/* The events a detector handed out. */
typedef struct evlog {
  detector_event *ev;
  size_t n, cap;
} evlog;

static inline int evlog_push(const detector_event *e, void *opaque) {
  evlog *log = opaque;
  if (log->n == log->cap) {
    size_t cap = log->cap ? log->cap * 2 : 64;
    detector_event *p = realloc(log->ev, cap * sizeof *p);
    if (!p) return -ENOMEM;
    log->ev = p;
    log->cap = cap;
  }
  log->ev[log->n++] = *e;
  return 0;
}

static inline void evlog_free(evlog *log) {
  free(log->ev);
  *log = (evlog){0};
}

static inline const detector_event *evlog_find(const evlog *log, detector_kind kind, pid_t pid,
                                               size_t nth) {
  for (size_t i = 0; i < log->n; i++)
    if (log->ev[i].kind == kind && (pid == 0 || log->ev[i].pid == pid) && nth-- == 0)
      return &log->ev[i];
  return NULL;
}

static inline size_t evlog_count(const evlog *log, detector_kind kind, pid_t pid) {
  size_t n = 0;
  for (size_t i = 0; i < log->n; i++)
    if ((kind == 0 || log->ev[i].kind == kind) && (pid == 0 || log->ev[i].pid == pid)) n++;
  return n;
}

static inline uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Polls until the exit event of pid is in the log, or 10 s pass: a process's
 * exit is the last thing the kernel reports of it. */
static inline void poll_until_exit(detector_bpf *d, evlog *log, pid_t pid) {
  uint64_t deadline = now_ms() + 10000;
  while (!evlog_find(log, DETECTOR_EXIT, pid, 0)) {
    if (now_ms() > deadline) fail_msg("no exit event of pid %d within 10 s", (int)pid);
    int rc = detector_bpf_poll(d, 100, evlog_push, log);
    if (rc < 0 && rc != -EINTR) fail_msg("detector_bpf_poll: %d", rc);
  }
}

#endif
