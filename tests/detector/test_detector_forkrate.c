/*
 * test_detector_forkrate.c — the fork-rate tracker without a kernel: the
 * rate over the sliding window, one alarm per environment per window
 * however long the burst lasts, environments counted apart, late events,
 * a quiet environment forgotten, and the alarm's CloudEvent. Label unit.
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

/* n forks of env evenly over [from, from + span) ns; the alarms due. */
static int burst(detector_forkrate *fr, uint32_t env, uint64_t from, uint64_t span, int n,
                 double *rate) {
  int alarms = 0;
  for (int i = 0; i < n; i++) {
    int rc = detector_forkrate_note(fr, env, from + span * (uint64_t)i / (uint64_t)n, rate);
    assert_true(rc >= 0);
    alarms += rc;
  }
  return alarms;
}

static void test_below_threshold_no_alarm(void **state) {
  (void)state;
  detector_forkrate *fr = detector_forkrate_new(1000, 50);
  assert_non_null(fr);
  double rate = 0;
  /* 40 forks a second for 5 s: never above 50/s. */
  assert_int_equal(burst(fr, 1, 1000 * MS, 5000 * MS, 200, &rate), 0);
  assert_true(rate > 30 && rate <= 40);
  detector_forkrate_free(fr);
}

static void test_one_alarm_per_window(void **state) {
  (void)state;
  detector_forkrate *fr = detector_forkrate_new(1000, 50);
  double rate = 0;
  /* 1000 forks a second for 3.5 s: one alarm as the rate passes 50, then
   * one per window while it lasts (at 1.0x, 2.0x, 3.0x s after the first). */
  assert_int_equal(burst(fr, 7, 10000 * MS, 3500 * MS, 3500, &rate), 4);
  assert_true(rate > 850 && rate <= 1000);
  /* Quiet for a window: the rate falls, and a new burst alarms at once. */
  assert_int_equal(detector_forkrate_note(fr, 7, 15000 * MS, &rate), 0);
  assert_true(rate < 2);
  assert_int_equal(burst(fr, 7, 15100 * MS, 100 * MS, 60, &rate), 1);
  detector_forkrate_free(fr);
}

static void test_environments_apart(void **state) {
  (void)state;
  detector_forkrate *fr = detector_forkrate_new(1000, 50);
  double rate;
  int alarms[3] = {0};
  /* Interleaved: env 1 forks 100/s, env 2 30/s, env 3 30/s; only 1 alarms. */
  for (int i = 0; i < 300; i++) {
    uint64_t t = 1000 * MS + (uint64_t)i * 10 * MS;
    alarms[0] += detector_forkrate_note(fr, 1, t, &rate);
    if (i % 3 == 0) alarms[1] += detector_forkrate_note(fr, 2, t, &rate);
    if (i % 3 == 1) alarms[2] += detector_forkrate_note(fr, 3, t, &rate);
  }
  assert_int_equal(alarms[0], 3);
  assert_int_equal(alarms[1], 0);
  assert_int_equal(alarms[2], 0);
  detector_forkrate_free(fr);
}

static void test_many_environments_and_late_events(void **state) {
  (void)state;
  detector_forkrate *fr = detector_forkrate_new(100, 50);
  double rate;
  /* More environments than the table starts with; quiet ones are forgotten
   * as it grows, and each still has its own count. */
  for (uint32_t env = 1; env <= 1000; env++) {
    uint64_t t = (uint64_t)env * 200 * MS;
    assert_int_equal(detector_forkrate_note(fr, env, t, &rate), 0);
    assert_true(rate > 9 && rate < 11); /* one fork in 100 ms */
  }
  /* A fork 50 ms older than the newest still counts in its bucket; one
   * older than the window counts in the newest (never lost). */
  assert_int_equal(detector_forkrate_note(fr, 1000, 1000 * 200 * MS - 50 * MS, &rate), 0);
  assert_true(rate > 19 && rate < 21);
  assert_int_equal(detector_forkrate_note(fr, 1000, 1000 * 200 * MS - 500 * MS, &rate), 0);
  assert_true(rate > 29 && rate < 31);
  detector_forkrate_free(fr);
}

static void test_bad_arguments(void **state) {
  (void)state;
  assert_null(detector_forkrate_new(5, 50));
  assert_null(detector_forkrate_new(1000, 0));
  detector_forkrate_free(NULL);
}

static void test_alarm_event(void **state) {
  (void)state;
  detector_env env = {.node = "node-1", .environment = "env-a", .tenant = "t1", .ns = "course-x"};
  detector_event e = {.kind = DETECTOR_FORK,
                      .time_sec = 1700000000,
                      .time_nsec = 123456789,
                      .env_id = 4,
                      .pid = 321};
  ce_event *ev = NULL;
  ce_err err = {0};
  assert_int_equal(detector_forkrate_to_ce(&env, &e, 812.5, 1000, 50, &ev, &err), 0);
  const char *want[][2] = {{"type", "dev.outpost.process.forkrate"},
                           {"source", "/nodes/node-1/environments/env-a"},
                           {"subject", "env-a"},
                           {"id", "1700000000.123456789-4-forkrate"},
                           {"time", "2023-11-14T22:13:20.123456789Z"},
                           {"severity", "critical"},
                           {"action", "none"},
                           {"tenant", "t1"},
                           {"namespace", "course-x"},
                           {"environment", "env-a"},
                           {"node", "node-1"},
                           {"partitionkey", "env-a"}};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    const char *v = ce_event_get_str(ev, want[i][0]);
    assert_non_null(v);
    assert_string_equal(v, want[i][1]);
  }
  size_t len = 0;
  const void *d = ce_event_data(ev, &len);
  cJSON *j = cJSON_ParseWithLength(d, len);
  assert_non_null(j);
  assert_true(cJSON_GetObjectItem(j, "rate")->valuedouble == 812.5);
  assert_int_equal(cJSON_GetObjectItem(j, "window_ms")->valueint, 1000);
  assert_int_equal(cJSON_GetObjectItem(j, "threshold")->valueint, 50);
  assert_int_equal(cJSON_GetObjectItem(j, "pid")->valueint, 321);
  cJSON_Delete(j);
  ce_event_free(ev);
  env.tenant = NULL;
  assert_int_equal(detector_forkrate_to_ce(&env, &e, 1, 1000, 50, &ev, &err), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_below_threshold_no_alarm),
      cmocka_unit_test(test_one_alarm_per_window),
      cmocka_unit_test(test_environments_apart),
      cmocka_unit_test(test_many_environments_and_late_events),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_alarm_event),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
