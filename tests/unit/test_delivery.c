/*
 * test_delivery.c — the delivery rules: which answers are retried, the
 * backoff of each policy with Retry-After and its cap, and the dead-letter
 * event's extensions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"
#include "trigger/delivery.h"

static void retryable(void **state) {
  (void)state;
  static const struct {
    long status;
    bool want;
  } cases[] = {{0, true},    {200, false}, {202, false}, {204, false}, {299, false}, {301, false},
               {400, false}, {401, false}, {403, false}, {404, true},  {405, false}, {408, true},
               {409, true},  {410, false}, {413, false}, {415, false}, {422, false}, {429, true},
               {500, true},  {502, true},  {503, true},  {504, true},  {599, true}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    CTX("status %ld", cases[i].status);
    EXPECT_INT(trigger_delivery_retryable(cases[i].status), cases[i].want);
  }
}

static void backoff(void **state) {
  (void)state;
  trigger_delivery lin = {.backoff_delay_ms = 200, .exponential = false};
  trigger_delivery exp = {.backoff_delay_ms = 200, .exponential = true};
  trigger_delivery capped = {
      .backoff_delay_ms = 100, .exponential = true, .retry_after_max_ms = 2000};
  static const struct {
    const char *policy;
    int32_t n;
    long status;
    int64_t retry_after, want;
  } cases[] = {
      {"linear", 1, 500, -1, 200},
      {"linear", 2, 500, -1, 400},
      {"linear", 10, 0, -1, 2000},
      {"linear", 2000000, 500, -1, TRIGGER_BACKOFF_MAX_MS},
      {"exponential", 1, 500, -1, 200},
      {"exponential", 2, 500, -1, 400},
      {"exponential", 5, 500, -1, 3200},
      {"exponential", 60, 500, -1, TRIGGER_BACKOFF_MAX_MS},
      {"exponential", 1000000, 500, -1, TRIGGER_BACKOFF_MAX_MS},
      /* Retry-After counts on 429 and 503 only, and only when longer. */
      {"exponential", 1, 429, 5000, 5000},
      {"exponential", 1, 503, 5000, 5000},
      {"exponential", 1, 500, 5000, 200},
      {"exponential", 1, 502, 5000, 200},
      {"exponential", 3, 429, 100, 800},
      {"exponential", 1, 429, -1, 200},
      {"exponential", 1, 429, 10LL * 3600 * 1000, TRIGGER_BACKOFF_MAX_MS},
      /* retryAfterMax caps Retry-After, not the backoff itself. */
      {"capped", 1, 429, 60000, 2000},
      {"capped", 6, 429, 60000, 3200},
      {"capped", 1, 503, 1500, 1500},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    CTX("%s retry %d after %ld, Retry-After %lld", cases[i].policy, cases[i].n, cases[i].status,
        (long long)cases[i].retry_after);
    const trigger_delivery *d = cases[i].policy[0] == 'l'   ? &lin
                                : cases[i].policy[0] == 'e' ? &exp
                                                            : &capped;
    EXPECT_INT(trigger_delivery_backoff_ms(d, cases[i].n, cases[i].status, cases[i].retry_after),
               cases[i].want);
  }
}

static void dead_letter(void **state) {
  (void)state;
  ce_event *ev = new_min();
  EXPECT_RC(ce_event_set_str(ev, "subject", "s", NULL), 0);
  EXPECT_RC(ce_event_set_data(ev, "{\"a\":1}", 7), 0);
  CTX("an answer with a body");
  const char body[] = "boom\0\xff";
  ce_event *dl = trigger_delivery_dead_letter(ev, "http://sub.example/x", 500, body, 6);
  assert_non_null(dl);
  EXPECT_STR(ce_event_get_str(dl, "knativeerrordest"), "http://sub.example/x");
  int32_t code = 0;
  EXPECT_RC(ce_event_get_int(dl, "knativeerrorcode", &code), 0);
  EXPECT_INT(code, 500);
  EXPECT_STR(ce_event_get_str(dl, "knativeerrordata"), "Ym9vbQD/");
  /* The rest is the original, data included, and the original is untouched. */
  EXPECT_STR(ce_event_get_str(dl, "subject"), "s");
  EXPECT_STR(ce_event_get_str(dl, "id"), "1");
  size_t n;
  const uint8_t *data = ce_event_data(dl, &n);
  EXPECT_MEM(data, n, "{\"a\":1}", 7);
  EXPECT_TRUE(ce_event_get(ev, "knativeerrorcode") == NULL);
  ce_err err = {.index = -1};
  EXPECT_RC(ce_event_validate(dl, &err), 0);
  ce_event_free(dl);

  CTX("no answer, no body");
  dl = trigger_delivery_dead_letter(ev, "http://sub.example/x", 0, NULL, 0);
  assert_non_null(dl);
  EXPECT_RC(ce_event_get_int(dl, "knativeerrorcode", &code), 0);
  EXPECT_INT(code, 0);
  EXPECT_TRUE(ce_event_get(dl, "knativeerrordata") == NULL);
  ce_event_free(dl);

  CTX("a long body is cut at 1024 bytes before encoding");
  char big[3000];
  memset(big, 'x', sizeof big);
  dl = trigger_delivery_dead_letter(ev, "http://sub.example/x", 503, big, sizeof big);
  assert_non_null(dl);
  EXPECT_INT(strlen(ce_event_get_str(dl, "knativeerrordata")),
             (TRIGGER_ERROR_DATA_MAX + 2) / 3 * 4);
  ce_event_free(dl);
  ce_event_free(ev);
}

int main(void) {
  const struct CMUnitTest tests[] = {T(retryable), T(backoff), T(dead_letter)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
