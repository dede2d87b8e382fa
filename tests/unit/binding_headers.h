/*
 * binding_headers.h — what the tests of the two binary-mode bindings (HTTP
 * in test_ce_http.c, Kafka in test_ce_kafka.c) share: a header as a pair of C
 * strings, the ce_kv array a decoder takes, and the four required headers
 * with one of them left out or empty. Include after <cmocka.h>.
 */
#ifndef OUTPOST_TESTS_UNIT_BINDING_HEADERS_H
#define OUTPOST_TESTS_UNIT_BINDING_HEADERS_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/ce.h"

/* A header as a pair of C strings. */
typedef struct hp {
  const char *n, *v;
} hp;
#define NH(a) (sizeof(a) / sizeof((a)[0]))

/* h[0..n) then extra[0..n_extra) as a ce_kv array (one spare entry), for
 * the caller to free. */
static inline ce_kv *hp_kv(const hp *h, size_t n, const hp *extra, size_t n_extra) {
  ce_kv *kv = calloc(n + n_extra + 1, sizeof *kv);
  assert_non_null(kv);
  for (size_t i = 0; i < n + n_extra; i++) {
    const hp *p = i < n ? &h[i] : &extra[i - n];
    kv[i] = (ce_kv){p->n, strlen(p->n), p->v, strlen(p->v)};
  }
  return kv;
}

/* The four required headers all[0..4) into out, but for all[miss], which is
 * left out or, when empty, given an empty value; how many are in out. */
static inline size_t hp_required_but(const hp all[4], size_t miss, bool empty, hp out[4]) {
  size_t n = 0;
  for (size_t i = 0; i < 4; i++) {
    if (i != miss)
      out[n++] = all[i];
    else if (empty)
      out[n++] = (hp){all[i].n, ""};
  }
  return n;
}

/* The attributes of the required headers, in REQ_HDRS's order. */
static const char *const hp_required_attr[4] = {"specversion", "id", "source", "type"};

#endif
