/*
 * rt_expect.h — what the runtime tests (Docker and Kubernetes backends)
 * share: return codes by name, and checks that print both sides and the
 * runtime's message. Include after <cmocka.h>.
 */
#ifndef OUTPOST_TESTS_POSTS_RT_EXPECT_H
#define OUTPOST_TESTS_POSTS_RT_EXPECT_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

static inline const char *errname(long long rc) {
  static char other[32];
  switch (rc) {
  case 0:
    return "0";
  case -ENOENT:
    return "-ENOENT";
  case -EEXIST:
    return "-EEXIST";
  case -EBUSY:
    return "-EBUSY";
  case -EINVAL:
    return "-EINVAL";
  case -EACCES:
    return "-EACCES";
  case -ETIMEDOUT:
    return "-ETIMEDOUT";
  case -ECANCELED:
    return "-ECANCELED";
  case -ECONNREFUSED:
    return "-ECONNREFUSED";
  case -ENOTSUP:
    return "-ENOTSUP";
  case -EPROTO:
    return "-EPROTO";
  case -EIO:
    return "-EIO";
  default:
    snprintf(other, sizeof other, "%lld", rc);
    return other;
  }
}

/* Checks a return code, printing both sides and the runtime's message. */
#define EXPECT_RC(got, want, err)                                                                  \
  do {                                                                                             \
    long long g_ = (long long)(got), w_ = (long long)(want);                                       \
    if (g_ != w_)                                                                                  \
      fail_msg("%s = %s, want %s (%s)", #got, errname(g_), errname(w_),                            \
               (err)->msg[0] ? (err)->msg : "no message");                                         \
  } while (0)

#define EXPECT_STR(got, want)                                                                      \
  do {                                                                                             \
    const char *g_ = (got), *w_ = (want);                                                          \
    if (!g_ || strcmp(g_, w_) != 0)                                                                \
      fail_msg("%s = \"%s\", want \"%s\"", #got, g_ ? g_ : "(null)", w_);                          \
  } while (0)

#define EXPECT_HAS(hay, needle)                                                                    \
  do {                                                                                             \
    const char *h_ = (hay);                                                                        \
    if (!h_ || !strstr(h_, needle))                                                                \
      fail_msg("%s = \"%s\", want it to hold \"%s\"", #hay, h_ ? h_ : "(null)", needle);           \
  } while (0)

#endif
