/*
 * test_predict.c — the pool's warm-target predictor (posts/predict.h) on
 * synthetic claim traces: periodic demand gets a pre-warm window and a
 * keep-alive window around its period; irregular or sparse demand falls back
 * to the fixed keep-alive; bursts raise the target with the claim rate and
 * classes with their size; and no demand means zero warm environments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "posts/predict.h"
#include "test_util.h"

#define MIN (60 * 1000LL)

static void no_claims_no_environments(void **state) {
  (void)state;
  pool_predict p;
  assert_int_equal(pool_predict_init(&p, NULL), 0);
  pool_predict_advice a = pool_predict_target(&p, 5 * MIN, 2000);
  assert_int_equal(a.target, 0);
  assert_int_equal(a.why, POOL_PREDICT_NO_DEMAND);
}

static void bad_options_refused(void **state) {
  (void)state;
  pool_predict p;
  pool_predict_opts o;
  pool_predict_opts_init(&o);
  o.bins = 0;
  assert_int_equal(pool_predict_init(&p, &o), -EINVAL);
  pool_predict_opts_init(&o);
  o.bins = POOL_PREDICT_MAX_BINS + 1;
  assert_int_equal(pool_predict_init(&p, &o), -EINVAL);
  pool_predict_opts_init(&o);
  o.head_pct = 99;
  o.tail_pct = 5;
  assert_int_equal(pool_predict_init(&p, &o), -EINVAL);
}

/* A claim every 30 minutes, like a class that starts a lab each half hour:
 * nothing warm right after a claim, warm again before the next is due, and
 * cold well past it. */
static void periodic_demand_prewarms_before_the_period(void **state) {
  (void)state;
  pool_predict p;
  pool_predict_init(&p, NULL);
  int64_t t = 0;
  for (int i = 0; i < 20; i++, t += 30 * MIN) pool_predict_claim(&p, t);
  t -= 30 * MIN; /* the last claim */
  pool_predict_advice a = pool_predict_target(&p, t + 5 * MIN, 2000);
  assert_true(a.histogram);
  assert_int_equal(a.why, POOL_PREDICT_PREWARM);
  assert_int_equal(a.target, 0);
  /* The windows bracket the period: pre-warm 30 min less 10 %, keep-alive
   * 31 min (the bin's upper edge) plus 10 %. */
  EXPECT_INT(a.prewarm_ms, 27 * MIN);
  EXPECT_INT(a.keepalive_ms, (int64_t)(31 * MIN * 1.1));
  a = pool_predict_target(&p, t + 29 * MIN, 2000);
  assert_int_equal(a.why, POOL_PREDICT_WARM);
  assert_true(a.target >= 1);
  a = pool_predict_target(&p, t + 40 * MIN, 2000);
  assert_int_equal(a.why, POOL_PREDICT_IDLE);
  assert_int_equal(a.target, 0);
}

/* The refill time brings pre-warming forward: an environment that takes
 * two minutes to make is started two minutes before the window opens. */
static void slow_refill_starts_earlier(void **state) {
  (void)state;
  pool_predict p;
  pool_predict_init(&p, NULL);
  int64_t t = 0;
  for (int i = 0; i < 20; i++, t += 30 * MIN) pool_predict_claim(&p, t);
  t -= 30 * MIN;
  EXPECT_INT(pool_predict_target(&p, t + 26 * MIN, 1000).why, POOL_PREDICT_PREWARM);
  EXPECT_INT(pool_predict_target(&p, t + 26 * MIN, 2 * MIN).why, POOL_PREDICT_WARM);
}

/* Gaps spread evenly over the range: no pattern, so the fixed keep-alive. */
static void flat_histogram_falls_back_to_keepalive(void **state) {
  (void)state;
  pool_predict p;
  pool_predict_init(&p, NULL);
  int64_t t = 0;
  for (int i = 0; i < 240; i++) {
    pool_predict_claim(&p, t);
    t += (int64_t)((i * 7) % 240) * MIN + MIN / 2;
  }
  pool_predict_advice a = pool_predict_target(&p, p.last_ms + 2 * MIN, 2000);
  assert_false(a.histogram);
  EXPECT_INT(a.keepalive_ms, 10 * MIN);
  assert_int_equal(a.why, POOL_PREDICT_WARM);
  assert_int_equal(pool_predict_target(&p, p.last_ms + 11 * MIN, 2000).why, POOL_PREDICT_IDLE);
}

/* Gaps mostly past the four-hour range: the histogram is not trusted. */
static void out_of_range_gaps_fall_back(void **state) {
  (void)state;
  pool_predict p;
  pool_predict_init(&p, NULL);
  int64_t t = 0;
  for (int i = 0; i < 20; i++, t += 300 * MIN) pool_predict_claim(&p, t);
  assert_false(pool_predict_target(&p, p.last_ms + MIN, 2000).histogram);
}

/* Too few gaps to trust: the fixed keep-alive, warm right after a claim. */
static void few_samples_fall_back(void **state) {
  (void)state;
  pool_predict p;
  pool_predict_init(&p, NULL);
  pool_predict_claim(&p, 0);
  pool_predict_claim(&p, 30 * MIN);
  pool_predict_advice a = pool_predict_target(&p, 32 * MIN, 2000);
  assert_false(a.histogram);
  assert_int_equal(a.why, POOL_PREDICT_WARM);
  assert_int_equal(a.target, 1);
}

/* Classes of 30 claiming within three minutes, every 90 minutes: the gaps
 * inside a class are not idle times; the pool learns the class size and has
 * that many warm before the next class, none in between, and during a class
 * what the class has still to claim. */
static void classes_get_a_class_worth_of_warm_environments(void **state) {
  (void)state;
  pool_predict p;
  pool_predict_init(&p, NULL);
  int64_t t = 0;
  for (int c = 0; c < 12; c++, t += 90 * MIN)
    for (int i = 0; i < 30; i++) pool_predict_claim(&p, t + i * 6000);
  int64_t last = p.last_ms;
  pool_predict_advice a = pool_predict_target(&p, last + 30 * MIN, 2000);
  assert_true(a.histogram);
  EXPECT_INT(a.why, POOL_PREDICT_PREWARM);
  EXPECT_INT(a.target, 0);
  assert_true(a.burst > 29.9 && a.burst < 30.1);
  a = pool_predict_target(&p, last + 87 * MIN, 2000);
  EXPECT_INT(a.why, POOL_PREDICT_WARM);
  EXPECT_INT(a.target, 30);
  /* Ten students into the next class: twenty still to come. */
  t = last + 87 * MIN;
  for (int i = 0; i < 10; i++) pool_predict_claim(&p, t + i * 6000);
  a = pool_predict_target(&p, p.last_ms + 1000, 2000);
  EXPECT_INT(a.why, POOL_PREDICT_BURST);
  EXPECT_INT(a.target, 20);
}

/* A burst (a class of 60 claiming within a minute) raises the target to
 * the claims expected while one environment is made, and it decays after. */
static void burst_raises_target_with_rate(void **state) {
  (void)state;
  pool_predict p;
  pool_predict_init(&p, NULL);
  int64_t t = 0;
  for (int i = 0; i < 60; i++, t += 1000) pool_predict_claim(&p, t);
  pool_predict_advice a = pool_predict_target(&p, t, 10000);
  /* About one claim a second sustained for a minute, with a one-minute
   * half-life: the average is near half a claim a second, so five or so in
   * ten seconds. */
  assert_true(a.rate > 0.3 && a.rate < 1.0);
  assert_true(a.target >= 3 && a.target <= 10);
  /* Five minutes on the rate has decayed; the burst is over and learnt
   * (no next claim needed): inside the keep-alive, a class's worth. */
  pool_predict_advice later = pool_predict_target(&p, t + 5 * MIN, 10000);
  assert_true(later.rate < a.rate / 16);
  EXPECT_INT(later.why, POOL_PREDICT_WARM);
  assert_true(later.burst > 59.9 && later.burst < 60.1);
  EXPECT_INT(later.target, 60);
  /* Past the keep-alive: zero. */
  pool_predict_advice idle = pool_predict_target(&p, t + 11 * MIN, 10000);
  EXPECT_INT(idle.why, POOL_PREDICT_IDLE);
  EXPECT_INT(idle.target, 0);
}

/* A burst is learnt once it is over (burst_gap_ms after its last claim),
 * and only once, however often the target is asked for. */
static void burst_learnt_when_over(void **state) {
  (void)state;
  pool_predict p;
  pool_predict_init(&p, NULL);
  for (int i = 0; i < 8; i++) pool_predict_claim(&p, i * 1000);
  pool_predict_advice a = pool_predict_target(&p, 7000 + 30000, 2000);
  EXPECT_INT(a.why, POOL_PREDICT_BURST);
  assert_true(a.burst < 0.1); /* under way: not learnt yet */
  for (int k = 0; k < 3; k++) a = pool_predict_target(&p, 7000 + 61000 + k * 1000, 2000);
  EXPECT_INT(a.why, POOL_PREDICT_WARM);
  assert_true(a.burst > 7.9 && a.burst < 8.1);
  EXPECT_INT(a.target, 8);
  /* The next class of 4: the average moves once, by the weight (0.3). */
  for (int i = 0; i < 4; i++) pool_predict_claim(&p, 30 * MIN + i * 1000);
  a = pool_predict_target(&p, 30 * MIN + 3000 + 61000, 2000);
  a = pool_predict_target(&p, 30 * MIN + 3000 + 62000, 2000);
  assert_true(a.burst > 0.3 * 4 + 0.7 * 8 - 0.01 && a.burst < 0.3 * 4 + 0.7 * 8 + 0.01);
}

static void names(void **state) {
  (void)state;
  assert_string_equal(pool_predict_why_name(POOL_PREDICT_PREWARM), "prewarm");
  assert_string_equal(pool_predict_why_name(POOL_PREDICT_IDLE), "idle");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(no_claims_no_environments),
      cmocka_unit_test(bad_options_refused),
      cmocka_unit_test(periodic_demand_prewarms_before_the_period),
      cmocka_unit_test(slow_refill_starts_earlier),
      cmocka_unit_test(flat_histogram_falls_back_to_keepalive),
      cmocka_unit_test(out_of_range_gaps_fall_back),
      cmocka_unit_test(few_samples_fall_back),
      cmocka_unit_test(burst_raises_target_with_rate),
      cmocka_unit_test(burst_learnt_when_over),
      cmocka_unit_test(classes_get_a_class_worth_of_warm_environments),
      cmocka_unit_test(names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
