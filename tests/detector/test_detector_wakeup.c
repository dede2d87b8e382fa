/*
 * test_detector_wakeup.c — the ring buffer's wake-up batching
 * (detector_bpf_opts.batch_ms): a record that finds the reader waiting wakes
 * it at once, whatever the period, and the records of a burst that come
 * while the reader is busy are read together instead of each waking it.
 * Needs root (label root;ebpf).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "det_util.h"

#define BURST 500

static int one_setuid(void *arg) {
  (void)arg;
  return setuid(getuid()) ? 1 : 0;
}

/* Spread over about 100 ms: each record comes after the reader caught up
 * with the one before, so that without batching each would wake it. */
static int setuid_burst(void *arg) {
  (void)arg;
  for (int i = 0; i < BURST; i++) {
    if (setuid(getuid())) return 1;
    nanosleep(&(struct timespec){0, 100000}, NULL);
  }
  return 0;
}

static detector_bpf *d;
static testcg cg;
static uint64_t first_ms; /* when the callback first saw an event */

static int push_timed(const detector_event *e, void *opaque) {
  if (!first_ms) first_ms = now_ms();
  return evlog_push(e, opaque);
}

/* A long period, so that the checks below tell batching from a wake-up per
 * record even on a slow machine. */
static int open_batched(void **state) {
  detector_bpf_opts o = {.batch_ms = 200, .kinds = 1u << DETECTOR_SETUID};
  char err[256] = "";

  if (!(d = detector_bpf_open(&o, err, sizeof err))) {
    fprintf(stderr, "detector_bpf_open: %s\n", err);
    return -1;
  }
  cg_make(&cg, "wakeup");
  return detector_bpf_watch(d, cg.id, 1);
}

static int close_batched(void **state) {
  detector_bpf_free(d);
  d = NULL;
  cg_remove(&cg);
  return 0;
}

/* The reader waits with a 5 s timeout; one event must reach the callback
 * long before it, and well within one period of 200 ms: an isolated event
 * pays no batching delay (the reader sleeps its period after it). */
static void test_waiting_reader_woken_at_once(void **state) {
  evlog log = {0};

  /* Drain whatever came before, so that the reader is in its waiting state. */
  while (detector_bpf_poll(d, 0, evlog_push, &log) > 0) continue;
  evlog_free(&log);
  first_ms = 0;
  pid_t pid = spawn_in(&cg, one_setuid, NULL);
  uint64_t t0 = now_ms();
  int n = 0;
  while (n == 0 && now_ms() - t0 < 5000) {
    int rc = detector_bpf_poll(d, 5000, push_timed, &log);
    if (rc < 0 && rc != -EINTR) fail_msg("detector_bpf_poll: %d", rc);
    n = (int)evlog_count(&log, DETECTOR_SETUID, pid);
  }
  uint64_t waited = first_ms ? first_ms - t0 : 5000;
  EXPECT_INT(WEXITSTATUS(reap(pid)), 0);
  evlog_free(&log);
  fprintf(stderr, "one event read after %llu ms\n", (unsigned long long)waited);
  EXPECT_INT(n, 1);
  EXPECT_TRUE(waited < 150);
}

/* BURST records within about one period: the first wakes the reader, the
 * rest wait for its next drains. With a wake-up per record the reader would
 * come back for them in hundreds of small reads. */
static void test_burst_read_in_few_drains(void **state) {
  evlog log = {0};
  int reads = 0;

  while (detector_bpf_poll(d, 0, evlog_push, &log) > 0) continue;
  evlog_free(&log);
  pid_t pid = spawn_in(&cg, setuid_burst, NULL);
  uint64_t t0 = now_ms();
  while (evlog_count(&log, DETECTOR_SETUID, pid) < BURST && now_ms() - t0 < 10000) {
    int rc = detector_bpf_poll(d, 1000, evlog_push, &log);
    if (rc < 0 && rc != -EINTR) fail_msg("detector_bpf_poll: %d", rc);
    if (rc > 0) reads++;
  }
  EXPECT_INT(WEXITSTATUS(reap(pid)), 0);
  size_t got = evlog_count(&log, DETECTOR_SETUID, pid);
  evlog_free(&log);
  fprintf(stderr, "%zu events in %d reads, %llu ms\n", got, reads,
          (unsigned long long)(now_ms() - t0));
  EXPECT_INT(got, BURST);
  EXPECT_TRUE(reads <= 10);
}

int main(void) {
  int rc = det_can_run();
  if (rc) return rc;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_waiting_reader_woken_at_once, open_batched,
                                      close_batched),
      cmocka_unit_test_setup_teardown(test_burst_read_in_few_drains, open_batched, close_batched),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
