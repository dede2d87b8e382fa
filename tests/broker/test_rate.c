/*
 * test_rate.c — broker/rate.c, the ingress's per-client rate limit, on a
 * clock of the test's own: a burst at once then one event per 1/rate s,
 * the wait until the next is due, clients apart, a batch that leaves its
 * client owing, a burst of 0 as 1, and clients dropped once their bucket is
 * full again without a change of what they may send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "broker/broker_int.h"

#define MS UINT64_C(1000000)

static const uint64_t t0 = UINT64_C(5000000000); /* a monotonic clock's now */

/* Client n's address key (n's bytes at its end, as IPv4 in IPv6 is). */
static httpd_addr key(uint32_t n) {
  httpd_addr a = {{0}};
  for (int i = 0; i < 4; i++) a.b[15 - i] = (uint8_t)(n >> (8 * i));
  return a;
}

/* broker__rate_take for client n. */
static uint64_t take(broker_rate *r, uint32_t n, size_t events, uint64_t now) {
  httpd_addr a = key(n);
  return broker__rate_take(r, &a, events, now);
}

static void burst_then_rate(void **state) {
  (void)state;
  broker_rate *r = broker__rate_new(10, 5); /* 10 a second, 5 at once */
  assert_non_null(r);
  for (int i = 0; i < 5; i++) assert_int_equal(take(r, 1, 1, t0), 0);
  assert_int_equal(take(r, 1, 1, t0), 100 * MS); /* the next in 100 ms */
  assert_int_equal(take(r, 1, 1, t0 + 40 * MS), 60 * MS);
  assert_int_equal(take(r, 2, 1, t0), 0); /* another client */
  assert_int_equal(take(r, 1, 1, t0 + 100 * MS), 0);
  assert_int_equal(take(r, 1, 1, t0 + 100 * MS), 100 * MS);
  /* A second idle fills the bucket again, and no more than that. */
  for (int i = 0; i < 5; i++) assert_int_equal(take(r, 1, 1, t0 + 5000 * MS), 0);
  assert_int_not_equal(take(r, 1, 1, t0 + 5000 * MS), 0);
  broker__rate_free(r);
}

static void batch_owes(void **state) {
  (void)state;
  broker_rate *r = broker__rate_new(10, 5);
  /* 12 at once with 5 of room: admitted, 7 owed; the next is due when the
   * debt is paid and one event's room is back: 800 ms. */
  assert_int_equal(take(r, 1, 12, t0), 0);
  assert_int_equal(take(r, 1, 1, t0), 800 * MS);
  assert_int_equal(take(r, 1, 1, t0 + 800 * MS), 0);
  /* A batch with one event's room left is admitted too. */
  assert_int_equal(take(r, 2, 4, t0), 0);
  assert_int_equal(take(r, 2, 9, t0), 0);
  assert_int_equal(take(r, 2, 1, t0), 900 * MS);
  broker__rate_free(r);
}

static void burst_zero_is_one(void **state) {
  (void)state;
  assert_null(broker__rate_new(0, 5)); /* no limit */
  broker_rate *r = broker__rate_new(4, 0);
  assert_int_equal(take(r, 7, 1, t0), 0);
  assert_int_equal(take(r, 7, 1, t0), 250 * MS);
  assert_int_equal(take(r, 7, 1, t0 + 250 * MS), 0);
  broker__rate_free(r);
}

/* Past the first sweep (1024 clients), those whose bucket is full again
 * are dropped; each client is limited as before. */
static void sweeps_keep_the_limit(void **state) {
  (void)state;
  broker_rate *r = broker__rate_new(1, 2);
  for (uint32_t a = 1; a <= 5000; a++) {
    uint64_t now = t0 + a * MS; /* a client a millisecond */
    assert_int_equal(take(r, a, 2, now), 0);
    assert_int_not_equal(take(r, a, 1, now), 0);
  }
  /* 10 s on, all full again (swept or not): two each at once, not three. */
  for (uint32_t a = 1; a <= 5000; a += 499) {
    uint64_t now = t0 + 20000 * MS;
    assert_int_equal(take(r, a, 1, now), 0);
    assert_int_equal(take(r, a, 1, now), 0);
    assert_int_equal(take(r, a, 1, now), 1000 * MS);
  }
  broker__rate_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(burst_then_rate),
      cmocka_unit_test(batch_owes),
      cmocka_unit_test(burst_zero_is_one),
      cmocka_unit_test(sweeps_keep_the_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
