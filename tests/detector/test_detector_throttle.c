/*
 * test_detector_throttle.c — the per-cgroup event budget in the kernel: a
 * burst of setuid no-ops (the cheapest reported call) from a watched cgroup
 * past a small limit is reported up to the budget (a token bucket of a
 * tenth of a second's worth) and counted as throttled beyond it, with nothing lost between the two
 * (read + throttled + ring drops = calls made), per kind and per cgroup; a second cgroup's few
 * events survive a flood that, without the limit, fills the ring before them; a forbidden binary
 * past the budget is still killed and reported; the limit changes at run time and 0 turns it off.
 * Needs root (label root;ebpf).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/syscall.h>

#include <cmocka.h>

#include "det_util.h"

#define LIMIT 200
#define BURST 5000

static detector_bpf *d;
static testcg cg, quiet;
static char made[256];

/* setuid to the current uid: a no-op the kernel side reports. */
static int setuid_child(void *arg) {
  long n = (long)(intptr_t)arg;
  uid_t uid = getuid();
  for (long i = 0; i < n; i++)
    if (syscall(SYS_setuid, uid) != 0) return 1;
  return 0;
}

static int open_limited(void **state) {
  detector_bpf_opts o = {.rate_limit = LIMIT};
  char err[256] = "";
  (void)state;
  if (!(d = detector_bpf_open(&o, err, sizeof err))) {
    fprintf(stderr, "detector_bpf_open: %s\n", err);
    return -1;
  }
  cg_make(&cg, "thr");
  cg_make(&quiet, "thr-quiet");
  if (detector_bpf_watch(d, cg.id, 3) || detector_bpf_watch(d, quiet.id, 4)) return -1;
  return 0;
}

static int close_limited(void **state) {
  (void)state;
  detector_bpf_free(d);
  d = NULL;
  cg_remove(&cg);
  cg_remove(&quiet);
  unlink(made);
  return 0;
}

static void drain(evlog *log) {
  while (detector_bpf_poll(d, 200, evlog_push, log) > 0) continue;
}

/* The per-cgroup counts of cgroup_id, found by detector_bpf_throttled_each. */
typedef struct find_cg {
  uint64_t cgroup_id;
  detector_throttled found;
  int times;
} find_cg;

static int find_one(const detector_throttled *t, void *opaque) {
  find_cg *f = opaque;
  if (t->cgroup_id == f->cgroup_id) {
    f->found = *t;
    f->times++;
  }
  return 0;
}

static void test_burst_reported_up_to_the_budget(void **state) {
  uint64_t thr[DETECTOR_KIND_MAX], drops[DETECTOR_KIND_MAX];
  evlog log = {0};
  (void)state;

  pid_t pid = spawn_in(&cg, setuid_child, (void *)(intptr_t)BURST);
  EXPECT_INT(WEXITSTATUS(reap(pid)), 0);
  drain(&log);
  EXPECT_RC(detector_bpf_throttled(d, thr), 0);
  EXPECT_RC(detector_bpf_drops(d, drops), 0);
  size_t read = evlog_count(&log, DETECTOR_SETUID, pid);
  fprintf(stderr, "setuid: %zu read, %llu throttled, %llu ring drops of %d (limit %d/s)\n", read,
          (unsigned long long)thr[DETECTOR_SETUID], (unsigned long long)drops[DETECTOR_SETUID],
          BURST, LIMIT);
  /* Every call is read, throttled or dropped at the ring: none vanishes. */
  EXPECT_INT(read + thr[DETECTOR_SETUID] + drops[DETECTOR_SETUID], BURST);
  EXPECT_INT(drops[DETECTOR_SETUID], 0); /* 1 MiB holds 2,000 of them */
  /* The burst takes milliseconds: the bucket's tenth of a second of budget,
   * and what refilled meanwhile, not a whole second's. */
  EXPECT_TRUE(read >= LIMIT / 10 && read < LIMIT / 2);
  EXPECT_TRUE(thr[DETECTOR_SETUID] > BURST - LIMIT / 2);
  uint64_t sum = 0;
  for (int k = 1; k < DETECTOR_KIND_MAX; k++) sum += thr[k];
  EXPECT_INT(thr[0], sum);

  /* The same counts for the cgroup, with its environment. */
  find_cg f = {.cgroup_id = cg.id};
  EXPECT_RC(detector_bpf_throttled_each(d, find_one, &f), 0);
  EXPECT_INT(f.times, 1);
  EXPECT_INT(f.found.env_id, 3);
  EXPECT_INT(f.found.counts[DETECTOR_SETUID], thr[DETECTOR_SETUID]);
  EXPECT_INT(f.found.counts[0], thr[0]); /* its exit, too, when it came past the budget */
  /* The quiet cgroup made nothing: no entry. */
  find_cg q = {.cgroup_id = quiet.id};
  EXPECT_RC(detector_bpf_throttled_each(d, find_one, &q), 0);
  EXPECT_INT(q.times, 0);
  evlog_free(&log);

  /* Limit 0, set at run time: everything is read. */
  EXPECT_RC(detector_bpf_rate_limit_set(d, 0), 0);
  pid = spawn_in(&cg, setuid_child, (void *)(intptr_t)1000);
  EXPECT_INT(WEXITSTATUS(reap(pid)), 0);
  drain(&log);
  uint64_t thr2[DETECTOR_KIND_MAX];
  EXPECT_RC(detector_bpf_throttled(d, thr2), 0);
  EXPECT_INT(evlog_count(&log, DETECTOR_SETUID, pid), 1000);
  EXPECT_INT(thr2[0], thr[0]);
  evlog_free(&log);
  EXPECT_RC(detector_bpf_rate_limit_set(d, LIMIT), 0);

  /* Unwatching deletes the cgroup's entry: watched again, it starts afresh. */
  EXPECT_RC(detector_bpf_unwatch(d, cg.id), 0);
  f.times = 0;
  EXPECT_RC(detector_bpf_throttled_each(d, find_one, &f), 0);
  EXPECT_INT(f.times, 0);
  EXPECT_RC(detector_bpf_watch(d, cg.id, 3), 0);
}

/* The point of the limit: with a ring of 16 pages (about 130 system-call
 * records) that nobody reads during the flood, a flood without a limit
 * leaves no room for the quiet cgroup's 5 calls; with one, all 5 are read. */
static void quiet_after_flood(uint64_t limit, size_t *quiet_read, uint64_t *quiet_dropped) {
  detector_bpf_opts o = {.ring_bytes = 16 * (size_t)sysconf(_SC_PAGESIZE), .rate_limit = limit};
  char err[256] = "";
  evlog log = {0};
  uint64_t before[DETECTOR_KIND_MAX], after[DETECTOR_KIND_MAX];
  detector_bpf *small = detector_bpf_open(&o, err, sizeof err);
  if (!small) fail_msg("detector_bpf_open: %s", err);
  EXPECT_RC(detector_bpf_watch(small, cg.id, 3), 0);
  EXPECT_RC(detector_bpf_watch(small, quiet.id, 4), 0);
  EXPECT_RC(detector_bpf_drops(small, before), 0);
  pid_t flood = spawn_in(&cg, setuid_child, (void *)(intptr_t)20000);
  EXPECT_INT(WEXITSTATUS(reap(flood)), 0);
  pid_t pid = spawn_in(&quiet, setuid_child, (void *)(intptr_t)5);
  EXPECT_INT(WEXITSTATUS(reap(pid)), 0);
  while (detector_bpf_poll(small, 200, evlog_push, &log) > 0) continue;
  EXPECT_RC(detector_bpf_drops(small, after), 0);
  *quiet_read = evlog_count(&log, DETECTOR_SETUID, pid);
  *quiet_dropped = after[DETECTOR_SETUID] - before[DETECTOR_SETUID];
  fprintf(stderr, "limit %llu: flood %zu read; quiet %zu of 5 read; %llu setuid ring drops\n",
          (unsigned long long)limit, evlog_count(&log, DETECTOR_SETUID, flood), *quiet_read,
          (unsigned long long)*quiet_dropped);
  evlog_free(&log);
  detector_bpf_free(small);
}

static void test_quiet_cgroup_keeps_its_events(void **state) {
  size_t got;
  uint64_t dropped;
  (void)state;
  quiet_after_flood(0, &got, &dropped);
  EXPECT_TRUE(got < 5); /* without a limit the flood took the ring */
  EXPECT_TRUE(dropped > 0);
  quiet_after_flood(50, &got, &dropped);
  EXPECT_INT(got, 5);
  EXPECT_INT(dropped, 0);
}

/* Spends the budget, then execs argv[0]. */
static int flood_then_exec(void *arg) {
  char *const *argv = arg;
  setuid_child((void *)(intptr_t)100);
  execv(argv[0], argv);
  return 97;
}

static void test_kill_never_throttled(void **state) {
  const char *bins[] = {"/bin/touch"};
  detector_policy p = {.forbidden_binaries = bins, .n_forbidden_binaries = 1};
  uint64_t before[DETECTOR_KIND_MAX], after[DETECTOR_KIND_MAX];
  evlog log = {0};
  (void)state;

  snprintf(made, sizeof made, "/tmp/outpost-det-thr-%d", (int)getpid());
  EXPECT_RC(detector_bpf_policy_set(d, cg.id, &p), 0);
  /* One record a second: the flood takes it, and the next comes a second
   * later, so nothing refills between the flood and the exec. */
  EXPECT_RC(detector_bpf_rate_limit_set(d, 1), 0);
  /* An allowed exec past the budget is throttled: the budget is spent. */
  char *tru[] = {"/bin/true", NULL};
  EXPECT_RC(detector_bpf_throttled(d, before), 0);
  pid_t pid = spawn_in(&cg, flood_then_exec, tru);
  int status = reap(pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  drain(&log);
  EXPECT_RC(detector_bpf_throttled(d, after), 0);
  EXPECT_INT(evlog_count(&log, DETECTOR_EXEC, pid), 0);
  EXPECT_INT(after[DETECTOR_EXEC] - before[DETECTOR_EXEC], 1);

  /* A forbidden one past the budget is killed and reported all the same. */
  char *touch[] = {"/bin/touch", made, NULL};
  pid = spawn_in(&cg, flood_then_exec, touch);
  status = reap(pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_INT(access(made, F_OK), -1);
  drain(&log);
  const detector_event *e = evlog_find(&log, DETECTOR_EXEC, pid, 0);
  assert_non_null(e);
  EXPECT_INT(e->action, DETECTOR_ACTION_KILLED);
  EXPECT_STR(e->u.exec.binary, "/bin/touch");
  EXPECT_INT(e->env_id, 3);
  EXPECT_RC(detector_bpf_throttled(d, before), 0);
  EXPECT_INT(before[DETECTOR_EXEC], after[DETECTOR_EXEC]); /* not counted as throttled */
  EXPECT_RC(detector_bpf_policy_set(d, cg.id, NULL), 0);
  EXPECT_RC(detector_bpf_rate_limit_set(d, LIMIT), 0);
  evlog_free(&log);
}

int main(void) {
  int rc = det_can_run();
  if (rc) return rc;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_burst_reported_up_to_the_budget),
      cmocka_unit_test(test_quiet_cgroup_keeps_its_events),
      cmocka_unit_test(test_kill_never_throttled),
  };
  return cmocka_run_group_tests(tests, open_limited, close_limited);
}
