/*
 * test_util.h — the assertion helpers every unit test shares: a context
 * string naming the table case being run, and EXPECT_* macros that print
 * both sides (as decimals, errno names, or escaped bytes) when they fail.
 * Include after <cmocka.h>.
 */
#ifndef OUTPOST_TESTS_UNIT_TEST_UTIL_H
#define OUTPOST_TESTS_UNIT_TEST_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/ce.h"
#include "tests/unit/show.h"

/* The case a table-driven test is running, printed with every failure. */
static char ctx[256] __attribute__((unused));
#define CTX(...) snprintf(ctx, sizeof ctx, __VA_ARGS__)
static inline int reset_ctx(void **state) {
  (void)state;
  ctx[0] = '\0';
  return 0;
}
#define T(f) cmocka_unit_test_setup(f, reset_ctx)

static inline const char *errname(long long rc) {
  switch (rc) {
  case 0:
    return "0";
  case -EINVAL:
    return "-EINVAL";
  case -EMSGSIZE:
    return "-EMSGSIZE";
  case -E2BIG:
    return "-E2BIG";
  case -ENOTSUP:
    return "-ENOTSUP";
  case -ENOMEM:
    return "-ENOMEM";
  case -ENOENT:
    return "-ENOENT";
  case -ETIMEDOUT:
    return "-ETIMEDOUT";
  case -ECONNREFUSED:
    return "-ECONNREFUSED";
  case -EHOSTUNREACH:
    return "-EHOSTUNREACH";
  case -EPROTO:
    return "-EPROTO";
  case -ECANCELED:
    return "-ECANCELED";
  case -EAGAIN:
    return "-EAGAIN";
  case -EIO:
    return "-EIO";
  case -ENOSPC:
    return "-ENOSPC";
  case -EFBIG:
    return "-EFBIG";
  case -ELOOP:
    return "-ELOOP";
  default:
    return rc > 0 ? "positive" : "other";
  }
}

#define WHERE ctx, ctx[0] ? ": " : ""

#define EXPECT_INT(got, want)                                                                      \
  do {                                                                                             \
    long long g_ = (long long)(got), w_ = (long long)(want);                                       \
    if (g_ != w_) fail_msg("%s%s%s = %lld, want %lld", WHERE, #got, g_, w_);                       \
  } while (0)

#define EXPECT_RC(got, want)                                                                       \
  do {                                                                                             \
    long long g_ = (long long)(got), w_ = (long long)(want);                                       \
    if (g_ != w_)                                                                                  \
      fail_msg("%s%s%s = %lld (%s), want %lld (%s)", WHERE, #got, g_, errname(g_), w_,             \
               errname(w_));                                                                       \
  } while (0)

#define EXPECT_TRUE(cond)                                                                          \
  do {                                                                                             \
    if (!(cond)) fail_msg("%s%sexpected %s", WHERE, #cond);                                        \
  } while (0)

#define EXPECT_MEM_(label, got, glen, want, wlen)                                                  \
  do {                                                                                             \
    const void *g_ = (got), *w_ = (want);                                                          \
    size_t gl_ = (glen), wl_ = (wlen);                                                             \
    if (g_ == NULL || w_ == NULL ? g_ != w_ : gl_ != wl_ || memcmp(g_, w_, gl_) != 0) {            \
      char gs_[200], ws_[200];                                                                     \
      fail_msg("%s%s%s = \"%s\" (%zu bytes), want \"%s\" (%zu bytes)", WHERE, label,               \
               show(g_, gl_, gs_, sizeof gs_), gl_, show(w_, wl_, ws_, sizeof ws_), wl_);          \
    }                                                                                              \
  } while (0)

#define EXPECT_MEM(got, glen, want, wlen) EXPECT_MEM_(#got, got, glen, want, wlen)

#define EXPECT_STR(got, want)                                                                      \
  do {                                                                                             \
    const char *gs1_ = (got), *ws1_ = (want);                                                      \
    EXPECT_MEM_(#got, gs1_, gs1_ ? strlen(gs1_) : 0, ws1_, ws1_ ? strlen(ws1_) : 0);               \
  } while (0)

/* The spec's percent-encoding example (HTTP binding 3.1.3.2). */
#define EURO     "Euro \xe2\x82\xac \xf0\x9f\x98\x80"
#define EURO_ENC "Euro%20%E2%82%AC%20%F0%9F%98%80"

/* Default decoder limits, reset before each test registered with T_LIM. */
static ce_limits lim __attribute__((unused));
static inline int init_limits(void **state) {
  ce_limits_init(&lim);
  return reset_ctx(state);
}
#define T_LIM(f) cmocka_unit_test_setup(f, init_limits)

/* A new event holding only the four required attributes (id "1", source
 * "/src", type "t"). */
static inline ce_event *new_min(void) {
  ce_event *ev = ce_event_new();
  assert_non_null(ev);
  EXPECT_RC(ce_event_set_str(ev, "specversion", "1.0", NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "id", "1", NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "source", "/src", NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "type", "t", NULL), 0);
  return ev;
}

#endif
