/*
 * test_detector_attach.c — detector_bpf_attach: an exec in a watched cgroup
 * is reported while the programs are attached, not after they are detached,
 * and again once they are attached back; attaching twice reports it once.
 * Needs root (label root;ebpf).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "det_util.h"

static detector_bpf *d;
static testcg cg;

static int run_true(void *arg) {
  (void)arg;
  execl("/bin/true", "true", (char *)NULL);
  return 127;
}

/* The exec events of one child that joins cg and execs /bin/true. Its
 * records are all committed by the time it is reaped (fork in this process,
 * exec and exit in the child's), so draining the ring then reads them all. */
static size_t execs_of_child(void) {
  evlog log = {0};
  pid_t pid = spawn_in(&cg, run_true, NULL);
  int rc;

  EXPECT_INT(WEXITSTATUS(reap(pid)), 0);
  while ((rc = detector_bpf_poll(d, 0, evlog_push, &log)) > 0) continue;
  if (rc < 0) fail_msg("detector_bpf_poll: %d", rc);
  size_t n = evlog_count(&log, DETECTOR_EXEC, pid);
  evlog_free(&log);
  return n;
}

static int open_watching(void **state) {
  char err[256] = "";
  evlog log = {0};

  if (!(d = detector_bpf_open(NULL, err, sizeof err))) {
    fprintf(stderr, "detector_bpf_open: %s\n", err);
    return -1;
  }
  cg_make(&cg, "attach");
  while (detector_bpf_poll(d, 0, evlog_push, &log) > 0) continue;
  evlog_free(&log);
  return detector_bpf_watch(d, cg.id, 1);
}

static int close_watching(void **state) {
  detector_bpf_free(d);
  d = NULL;
  cg_remove(&cg);
  return 0;
}

static void test_detach_and_attach_again(void **state) {
  const detector_hooks *h = detector_bpf_hooks(d);

  EXPECT_INT(execs_of_child(), 1);
  EXPECT_RC(detector_bpf_attach(d, false), 0);
  EXPECT_TRUE(!h->exec && !h->syscall && !h->exit && !h->fork);
  EXPECT_INT(execs_of_child(), 0);
  EXPECT_RC(detector_bpf_attach(d, false), 0); /* already detached */
  EXPECT_INT(execs_of_child(), 0);
  EXPECT_RC(detector_bpf_attach(d, true), 0);
  EXPECT_TRUE(h->exec && h->syscall && h->exit && h->fork);
  EXPECT_INT(execs_of_child(), 1);
}

/* A second attach must not attach the programs a second time, which would
 * report every exec twice. */
static void test_attach_twice_reports_once(void **state) {
  EXPECT_RC(detector_bpf_attach(d, true), 0);
  EXPECT_INT(execs_of_child(), 1);
  EXPECT_RC(detector_bpf_attach(d, false), 0);
  EXPECT_RC(detector_bpf_attach(d, true), 0);
  EXPECT_RC(detector_bpf_attach(d, true), 0);
  EXPECT_INT(execs_of_child(), 1);
}

int main(void) {
  int rc = det_can_run();
  if (rc) return rc;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_detach_and_attach_again, open_watching, close_watching),
      cmocka_unit_test_setup_teardown(test_attach_twice_reports_once, open_watching,
                                      close_watching),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
