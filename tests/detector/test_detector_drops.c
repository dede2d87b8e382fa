/*
 * test_detector_drops.c — no silent loss: with a one-page ring buffer that
 * nobody reads, a child in a watched cgroup forks a burst of children; once
 * the ring is full the kernel counts what it could not report, and for each
 * kind the events received plus the events counted as dropped equal the
 * events that happened. Needs root (label root;ebpf).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "det_util.h"

#define BURST 300

static int burst_child(void *arg) {
  (void)arg;
  for (int i = 0; i < BURST; i++) {
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
  }
  return 0;
}

static detector_bpf *d;
static testcg cg;

/* In a setup and a teardown, so that a failed check leaves no cgroup behind. */
static int open_tiny(void **state) {
  detector_bpf_opts o = {.ring_bytes = (size_t)sysconf(_SC_PAGESIZE)};
  char err[256] = "";

  if (!(d = detector_bpf_open(&o, err, sizeof err))) {
    fprintf(stderr, "detector_bpf_open: %s\n", err);
    return -1;
  }
  cg_make(&cg, "drops");
  return detector_bpf_watch(d, cg.id, 1);
}

static int close_tiny(void **state) {
  detector_bpf_free(d);
  d = NULL;
  cg_remove(&cg);
  return 0;
}

static void test_full_ring_counts_drops(void **state) {
  uint64_t drops[DETECTOR_KIND_MAX];
  evlog log = {0};

  pid_t pid = spawn_in(&cg, burst_child, NULL);
  EXPECT_INT(WEXITSTATUS(reap(pid)), 0);
  /* Read only now: everything that did not fit has been counted. */
  while (detector_bpf_poll(d, 200, evlog_push, &log) > 0) continue;
  EXPECT_RC(detector_bpf_drops(d, drops), 0);

  size_t forks = evlog_count(&log, DETECTOR_FORK, pid);
  size_t exits = evlog_count(&log, DETECTOR_EXIT, 0);
  evlog_free(&log);
  fprintf(stderr, "forks: %zu received, %llu dropped; exits: %zu received, %llu dropped\n", forks,
          (unsigned long long)drops[DETECTOR_FORK], exits,
          (unsigned long long)drops[DETECTOR_EXIT]);
  EXPECT_TRUE(drops[DETECTOR_FORK] > 0);
  EXPECT_TRUE(forks > 0);
  EXPECT_INT(forks + drops[DETECTOR_FORK], BURST);
  /* Every grandchild's exit and the child's own. */
  EXPECT_INT(exits + drops[DETECTOR_EXIT], BURST + 1);
  uint64_t sum = 0;
  for (int k = 1; k < DETECTOR_KIND_MAX; k++) sum += drops[k];
  EXPECT_INT(drops[0], sum);
}

static void test_ring_size_checked(void **state) {
  detector_bpf_opts o = {.ring_bytes = 3 * (size_t)sysconf(_SC_PAGESIZE)};
  char err[256] = "";
  errno = 0;
  EXPECT_TRUE(detector_bpf_open(&o, err, sizeof err) == NULL);
  EXPECT_INT(errno, EINVAL);
  EXPECT_TRUE(strstr(err, "power of two") != NULL);
}

int main(void) {
  int rc = det_can_run();
  if (rc) return rc;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_full_ring_counts_drops, open_tiny, close_tiny),
      T(test_ring_size_checked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
