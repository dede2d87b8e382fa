/*
 * test_ce_buf.c — unit tests for the small containers in core/ce_buf.c: the
 * growable byte buffer (append, NUL termination, reset keeping memory,
 * reserve), the owned header list (copies, lengths, case-insensitive find,
 * first match wins), the event batch (push, ownership) and the decoder limit
 * defaults (ce_limits_init). Memory ownership is checked by running under
 * ASan: a leak or double free fails the test.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ce.h"

#include "test_util.h"

static void limits_defaults(void **state) {
  ce_limits fresh;
  memset(&fresh, 0xff, sizeof fresh);
  ce_limits_init(&fresh);
  EXPECT_INT(fresh.max_body, 1048576);
  EXPECT_INT(fresh.max_headers, 100);
  EXPECT_INT(fresh.max_header_size, 8192);
  EXPECT_INT(fresh.max_batch, 1000);
  EXPECT_INT(fresh.max_depth, 64);
}

static void buf_append(void **state) {
  ce_buf b;
  ce_buf_init(&b);
  EXPECT_INT(b.len, 0);
  EXPECT_RC(ce_buf_append(&b, "abc", 3), 0);
  EXPECT_MEM(b.data, b.len, "abc", 3);
  EXPECT_INT(b.data[3], '\0');
  EXPECT_TRUE(b.cap >= 4);
  EXPECT_RC(ce_buf_append_str(&b, "de"), 0);
  EXPECT_STR(b.data, "abcde");
  EXPECT_INT(b.len, 5);
  /* Zero bytes is a no-op, not an error. */
  EXPECT_RC(ce_buf_append(&b, "zzz", 0), 0);
  EXPECT_INT(b.len, 5);
  EXPECT_RC(ce_buf_append_str(&b, ""), 0);
  EXPECT_STR(b.data, "abcde");
  ce_buf_cleanup(&b);
}

static void buf_embedded_nul(void **state) {
  ce_buf b;
  ce_buf_init(&b);
  EXPECT_RC(ce_buf_append(&b, "a\0b", 3), 0);
  EXPECT_MEM(b.data, b.len, "a\0b", 3);
  EXPECT_INT(b.data[3], '\0');
  ce_buf_cleanup(&b);
}

static void buf_reset_keeps_memory(void **state) {
  ce_buf b;
  ce_buf_init(&b);
  EXPECT_RC(ce_buf_append_str(&b, "hello, world"), 0);
  size_t cap = b.cap;
  ce_buf_reset(&b);
  EXPECT_INT(b.len, 0);
  EXPECT_INT(b.cap, cap);
  /* cap > 0, so the (now empty) contents must be NUL-terminated. */
  EXPECT_INT(b.data[0], '\0');
  EXPECT_RC(ce_buf_append_str(&b, "x"), 0);
  EXPECT_STR(b.data, "x");
  ce_buf_cleanup(&b);
}

static void buf_reserve(void **state) {
  ce_buf b;
  ce_buf_init(&b);
  EXPECT_RC(ce_buf_append_str(&b, "ab"), 0);
  EXPECT_RC(ce_buf_reserve(&b, 1000), 0);
  EXPECT_TRUE(b.cap >= b.len + 1000);
  EXPECT_INT(b.len, 2);
  EXPECT_STR(b.data, "ab");
  ce_buf_cleanup(&b);
}

static void buf_grows_large(void **state) {
  enum { N = 1 << 20 };
  char *chunk = malloc(4096);
  assert_non_null(chunk);
  ce_buf b;
  ce_buf_init(&b);
  for (size_t i = 0; i < N / 4096; i++) {
    memset(chunk, 'a' + (int)(i % 26), 4096);
    EXPECT_RC(ce_buf_append(&b, chunk, 4096), 0);
  }
  EXPECT_INT(b.len, N);
  EXPECT_INT(b.data[N], '\0');
  EXPECT_INT(b.data[0], 'a');
  EXPECT_INT(b.data[4096], 'b');
  EXPECT_INT(b.data[N - 1], 'a' + (int)((N / 4096 - 1) % 26));
  ce_buf_cleanup(&b);
  free(chunk);
}

static void headers_add_copies(void **state) {
  ce_headers h;
  ce_headers_init(&h);
  EXPECT_INT(h.n, 0);
  char name[] = "Content-TypeXXX";
  char value[] = "text/plainYYY";
  EXPECT_RC(ce_headers_add(&h, name, 12, value, 10), 0);
  /* The list keeps NUL-terminated copies, not the caller's memory. */
  memset(name, 'Q', sizeof name - 1);
  memset(value, 'Q', sizeof value - 1);
  EXPECT_INT(h.n, 1);
  EXPECT_STR(h.items[0].name, "Content-Type");
  EXPECT_INT(h.items[0].name_len, 12);
  EXPECT_STR(h.items[0].value, "text/plain");
  EXPECT_INT(h.items[0].value_len, 10);
  ce_headers_cleanup(&h);
}

static void headers_empty_value(void **state) {
  ce_headers h;
  ce_headers_init(&h);
  EXPECT_RC(ce_headers_add(&h, "ce-x", 4, "", 0), 0);
  const ce_kv *kv = ce_headers_find(&h, "ce-x");
  assert_non_null(kv);
  EXPECT_INT(kv->value_len, 0);
  EXPECT_STR(kv->value, "");
  ce_headers_cleanup(&h);
}

static void headers_find(void **state) {
  ce_headers h;
  ce_headers_init(&h);
  EXPECT_TRUE(ce_headers_find(&h, "ce-id") == NULL);
  EXPECT_RC(ce_headers_add(&h, "ce-id", 5, "1", 1), 0);
  EXPECT_RC(ce_headers_add(&h, "Content-Type", 12, "text/plain", 10), 0);
  EXPECT_RC(ce_headers_add(&h, "CE-ID", 5, "2", 1), 0);
  static const struct {
    const char *name, *want;
  } cases[] = {
      {"ce-id", "1"},
      {"CE-Id", "1"}, /* case-insensitive, and the first match wins */
      {"content-type", "text/plain"},
      {"CONTENT-TYPE", "text/plain"},
      {"ce-i", NULL},
      {"ce-idx", NULL},
      {"", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CTX("find \"%s\"", cases[i].name);
    const ce_kv *kv = ce_headers_find(&h, cases[i].name);
    EXPECT_STR(kv ? kv->value : NULL, cases[i].want);
  }
  ce_headers_cleanup(&h);
}

static void headers_reset_and_grow(void **state) {
  ce_headers h;
  ce_headers_init(&h);
  char name[32], value[32];
  for (int i = 0; i < 500; i++) {
    int nl = snprintf(name, sizeof name, "h%d", i);
    int vl = snprintf(value, sizeof value, "v%d", i);
    EXPECT_RC(ce_headers_add(&h, name, (size_t)nl, value, (size_t)vl), 0);
  }
  EXPECT_INT(h.n, 500);
  EXPECT_STR(h.items[0].name, "h0");
  EXPECT_STR(h.items[499].value, "v499");
  const ce_kv *kv = ce_headers_find(&h, "H250");
  assert_non_null(kv);
  EXPECT_STR(kv->value, "v250");
  ce_headers_reset(&h);
  EXPECT_INT(h.n, 0);
  EXPECT_TRUE(ce_headers_find(&h, "h0") == NULL);
  EXPECT_RC(ce_headers_add(&h, "a", 1, "b", 1), 0);
  EXPECT_INT(h.n, 1);
  EXPECT_STR(h.items[0].name, "a");
  ce_headers_cleanup(&h);
}

static void batch_push_owns(void **state) {
  ce_batch b;
  ce_batch_init(&b);
  EXPECT_INT(b.n, 0);
  ce_event *evs[40];
  for (int i = 0; i < 40; i++) {
    evs[i] = ce_event_new();
    assert_non_null(evs[i]);
    EXPECT_RC(ce_batch_push(&b, evs[i]), 0);
  }
  EXPECT_INT(b.n, 40);
  for (int i = 0; i < 40; i++) {
    CTX("event %d", i);
    EXPECT_TRUE(b.ev[i] == evs[i]);
  }
  /* Frees all 40 events: ASan reports a leak otherwise. */
  ce_batch_cleanup(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(limits_defaults),        T(buf_append),          T(buf_embedded_nul),
      T(buf_reset_keeps_memory), T(buf_reserve),         T(buf_grows_large),
      T(headers_add_copies),     T(headers_empty_value), T(headers_find),
      T(headers_reset_and_grow), T(batch_push_owns),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
