/*
 * record_diff.h — how two paths' records are told apart: the fast path's
 * (broker__ingress_fast) and the checked path's (broker__ingress_checked)
 * must be one record each, header for header and byte for byte, with the
 * same key and value. Shared by test_ingress_fast.c and the fuzz target
 * fuzz_ingress.c (which has no cmocka: hence show.h, not test_util.h).
 */
#ifndef OUTPOST_TESTS_BROKER_RECORD_DIFF_H
#define OUTPOST_TESTS_BROKER_RECORD_DIFF_H

#include <stdio.h>
#include <string.h>

#include "broker/broker_int.h"
#include "tests/unit/show.h"

/* Why the two records differ, or NULL when they are the same. */
static inline const char *record_differ(const broker_batch *a, const broker_batch *b) {
  static char why[400];
  char x[200], y[200];
  if (a->n != 1 || b->n != 1) return "not one record each";
  const broker_record *f = &a->recs[0], *c = &b->recs[0];
  if (f->partition != c->partition || f->offset != c->offset || f->timestamp_ms != c->timestamp_ms)
    return "partition, offset or timestamp";
  if (f->n_headers != c->n_headers) {
    snprintf(why, sizeof why, "%zu headers, the checked path %zu", f->n_headers, c->n_headers);
    return why;
  }
  for (size_t i = 0; i < f->n_headers; i++) {
    const ce_kv *p = &f->headers[i], *q = &c->headers[i];
    if (p->name_len != q->name_len || memcmp(p->name, q->name, p->name_len) ||
        p->value_len != q->value_len || memcmp(p->value, q->value, p->value_len)) {
      snprintf(why, sizeof why, "header %zu: %s=", i, show(p->name, p->name_len, x, sizeof x));
      size_t o = strlen(why);
      snprintf(why + o, sizeof why - o, "%s, the checked path ",
               show(p->value, p->value_len, x, sizeof x));
      o = strlen(why);
      snprintf(why + o, sizeof why - o, "%s=", show(q->name, q->name_len, y, sizeof y));
      o = strlen(why);
      snprintf(why + o, sizeof why - o, "%s", show(q->value, q->value_len, y, sizeof y));
      return why;
    }
  }
  if ((f->key == NULL) != (c->key == NULL) || f->key_len != c->key_len ||
      (f->key_len && memcmp(f->key, c->key, f->key_len)))
    return "the key";
  if ((f->value == NULL) != (c->value == NULL) || f->value_len != c->value_len ||
      (f->value_len && memcmp(f->value, c->value, f->value_len)))
    return "the value";
  return NULL;
}

#endif
