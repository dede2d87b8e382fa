/*
 * test_detector_throttled.c — the user side of the event budget without a
 * kernel: the tracker turns per-cgroup totals into per-environment counts
 * (growth only, a cgroup watched afresh, two cgroups of one environment, a
 * report taking and clearing them, unwatched cgroups swept), throttled
 * forks counted into the fork rate, and the dev.outpost.detector.throttled
 * CloudEvent. Label unit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "detector/detector.h"
#include "tests/unit/test_util.h"

#define MS 1000000ull

typedef struct taken {
  uint32_t env_id[8];
  uint64_t counts[8][DETECTOR_KIND_MAX];
  size_t n;
} taken;

static void take_cb(uint32_t env_id, const uint64_t counts[DETECTOR_KIND_MAX], void *opaque) {
  taken *t = opaque;
  assert_true(t->n < 8);
  t->env_id[t->n] = env_id;
  memcpy(t->counts[t->n], counts, sizeof t->counts[0]);
  t->n++;
}

static detector_throttled totals(uint64_t cgroup, uint32_t env, uint64_t setuid, uint64_t fork) {
  detector_throttled t = {.cgroup_id = cgroup, .env_id = env};
  t.counts[DETECTOR_SETUID] = setuid;
  t.counts[DETECTOR_FORK] = fork;
  t.counts[0] = setuid + fork;
  return t;
}

static void test_growth_per_environment(void **state) {
  (void)state;
  detector_throttle *tt = detector_throttle_new();
  taken got = {0};
  uint64_t forks = 99;
  assert_non_null(tt);
  detector_throttled a = totals(100, 1, 40, 2), b = totals(200, 1, 5, 0), c = totals(300, 2, 0, 0);
  EXPECT_RC(detector_throttle_note(tt, &a, &forks), 0);
  EXPECT_INT(forks, 2);
  EXPECT_RC(detector_throttle_note(tt, &b, NULL), 0);
  EXPECT_RC(detector_throttle_note(tt, &c, &forks), 0); /* nothing throttled: no report */
  EXPECT_INT(forks, 0);
  /* Noted again with the same totals (a scan may hand a cgroup out twice). */
  EXPECT_RC(detector_throttle_note(tt, &a, &forks), 0);
  EXPECT_INT(forks, 0);
  EXPECT_INT(detector_throttle_take(tt, take_cb, &got), 1);
  EXPECT_INT(got.env_id[0], 1);
  EXPECT_INT(got.counts[0][0], 47); /* both cgroups of environment 1 */
  EXPECT_INT(got.counts[0][DETECTOR_SETUID], 45);
  EXPECT_INT(got.counts[0][DETECTOR_FORK], 2);
  /* Taken: the next report has only what grew since. */
  got.n = 0;
  EXPECT_INT(detector_throttle_take(tt, take_cb, &got), 0);
  a = totals(100, 1, 50, 2);
  EXPECT_RC(detector_throttle_note(tt, &a, &forks), 0);
  EXPECT_INT(detector_throttle_take(tt, take_cb, &got), 1);
  EXPECT_INT(got.counts[0][0], 10);
  EXPECT_INT(got.counts[0][DETECTOR_SETUID], 10);
  /* Watched afresh (totals went down): all of the new totals count. */
  got.n = 0;
  a = totals(100, 3, 7, 1);
  EXPECT_RC(detector_throttle_note(tt, &a, &forks), 0);
  EXPECT_INT(forks, 1);
  EXPECT_INT(detector_throttle_take(tt, take_cb, &got), 1);
  EXPECT_INT(got.env_id[0], 3);
  EXPECT_INT(got.counts[0][0], 8);
  detector_throttle_free(tt);
  detector_throttle_free(NULL);
}

static void test_sweep_forgets_unwatched(void **state) {
  (void)state;
  detector_throttle *tt = detector_throttle_new();
  taken got = {0};
  detector_throttled a = totals(100, 1, 30, 0), b = totals(200, 2, 30, 0);
  EXPECT_RC(detector_throttle_note(tt, &a, NULL), 0);
  EXPECT_RC(detector_throttle_note(tt, &b, NULL), 0);
  detector_throttle_sweep(tt);
  EXPECT_INT(detector_throttle_take(tt, take_cb, &got), 2);
  /* Only a is still there; b, swept, is new again when it comes back with
   * the same totals (its entry was made again). */
  EXPECT_RC(detector_throttle_note(tt, &a, NULL), 0);
  detector_throttle_sweep(tt);
  EXPECT_RC(detector_throttle_note(tt, &b, NULL), 0);
  EXPECT_RC(detector_throttle_note(tt, &a, NULL), 0);
  got.n = 0;
  EXPECT_INT(detector_throttle_take(tt, take_cb, &got), 1);
  EXPECT_INT(got.env_id[0], 2);
  EXPECT_INT(got.counts[0][0], 30);
  detector_throttle_free(tt);
}

static void test_forks_added_as_a_count(void **state) {
  (void)state;
  detector_forkrate *fr = detector_forkrate_new(1000, 50);
  double rate = 0;
  /* 30 forks read, then 200 the kernel throttled, known as one count. */
  for (int i = 0; i < 30; i++)
    EXPECT_INT(detector_forkrate_note(fr, 5, 1000 * MS + (uint64_t)i * MS, &rate), 0);
  EXPECT_INT(detector_forkrate_add(fr, 5, 1100 * MS, 0, &rate), 0); /* reads only */
  EXPECT_TRUE(rate > 29 && rate < 31);
  EXPECT_INT(detector_forkrate_add(fr, 5, 1100 * MS, 200, &rate), 1);
  EXPECT_TRUE(rate > 229 && rate < 231);
  EXPECT_INT(detector_forkrate_add(fr, 5, 1200 * MS, 200, &rate), 0); /* once per window */
  detector_forkrate_free(fr);
}

static void test_throttled_event(void **state) {
  (void)state;
  detector_env env = {.node = "node-1", .environment = "env-a", .tenant = "t1", .ns = "course-x"};
  uint64_t counts[DETECTOR_KIND_MAX] = {0};
  counts[DETECTOR_SETUID] = 4800;
  counts[DETECTOR_EXIT] = 1;
  counts[0] = 4801;
  ce_event *ev = NULL;
  ce_err err = {0};
  EXPECT_RC(detector_throttle_to_ce(&env, 4, counts, 200, 10000, 1700000000, 123456789, &ev, &err),
            0);
  const char *want[][2] = {{"type", "dev.outpost.detector.throttled"},
                           {"source", "/nodes/node-1/environments/env-a"},
                           {"subject", "env-a"},
                           {"id", "1700000000.123456789-4-throttled"},
                           {"time", "2023-11-14T22:13:20.123456789Z"},
                           {"severity", "warning"},
                           {"action", "none"},
                           {"tenant", "t1"},
                           {"namespace", "course-x"},
                           {"environment", "env-a"},
                           {"node", "node-1"},
                           {"partitionkey", "env-a"}};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    EXPECT_STR(ce_event_get_str(ev, want[i][0]), want[i][1]);
  size_t len = 0;
  const void *d = ce_event_data(ev, &len);
  EXPECT_MEM(d, len,
             "{\"throttled\":4801,\"kinds\":{\"exit\":1,\"setuid\":4800},\"limit\":200,"
             "\"interval_ms\":10000}",
             strlen("{\"throttled\":4801,\"kinds\":{\"exit\":1,\"setuid\":4800},\"limit\":200,"
                    "\"interval_ms\":10000}"));
  ce_event_free(ev);
  env.ns = NULL;
  EXPECT_RC(detector_throttle_to_ce(&env, 4, counts, 200, 10000, 0, 0, &ev, &err), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_growth_per_environment),
      cmocka_unit_test(test_sweep_forgets_unwatched),
      cmocka_unit_test(test_forks_added_as_a_count),
      cmocka_unit_test(test_throttled_event),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
