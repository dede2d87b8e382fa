/*
 * fuzz_cesql.c — libFuzzer target for the CESQL filter language
 * (trigger/cesql.h): the input is an expression. What does not compile must
 * fail with a documented code, a position inside the text and a message;
 * what compiles is evaluated against a fixed event, and the result must be
 * well formed (a known type and error, a NUL-terminated UTF-8 string), the
 * same twice, agree with cesql_expr_match, and agree with the equality
 * cesql_expr_required_exact reports.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ce.h"
#include "tests/fuzz/fuzz_common.h"
#include "trigger/cesql.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The event every expression runs against: each attribute type, a missing
 * optional attribute (subject), numbers at the 32-bit bounds, and UTF-8. */
static ce_event *fixed_event(void) {
  static ce_event *ev;
  if (ev) return ev;
  ev = ce_event_new();
  if (!ev) abort();
  int rc = ce_event_set_str(ev, "specversion", "1.0", NULL) |
           ce_event_set_str(ev, "id", "1", NULL) |
           ce_event_set_str(ev, "source", "https://example.com/a", NULL) |
           ce_event_set_str(ev, "type", "com.example.x", NULL) |
           ce_event_set_str(ev, "time", "2024-01-02T03:04:05Z", NULL) |
           ce_event_set_int(ev, "n", 42, NULL) | ce_event_set_int(ev, "max", INT32_MAX, NULL) |
           ce_event_set_int(ev, "min", INT32_MIN, NULL) | ce_event_set_bool(ev, "b", true, NULL) |
           ce_event_set_str(ev, "s", "5", NULL) |
           ce_event_set_str(ev, "u", "Euro \xe2\x82\xac \xf0\x9f\x98\x80", NULL);
  if (rc) abort();
  return ev;
}

static void check_failure(const uint8_t *data, size_t size, const cesql_err *err) {
  if (err->code != -EINVAL && err->code != -ENOMEM)
    fuzz_fail("cesql_expr_compile", "failed with an undocumented code", data, size);
  if (!memchr(err->msg, '\0', sizeof err->msg) || err->msg[0] == '\0')
    fuzz_fail("cesql_expr_compile", "failed without a message", data, size);
  size_t chars = 0;
  for (size_t i = 0; i < size; i++) chars += (data[i] & 0xC0) != 0x80;
  if (err->position < 0 || (size_t)err->position > chars + 1)
    fuzz_fail("cesql_expr_compile", "error position outside the text", data, size);
  if (size > CESQL_MAX_TEXT && err->position != 0)
    fuzz_fail("cesql_expr_compile", "a text over the limit is not blamed as a whole", data, size);
}

static bool same_value(const cesql_value *a, const cesql_value *b) {
  if (a->type != b->type) return false;
  if (a->type == CESQL_INT) return a->i == b->i;
  if (a->type == CESQL_BOOL) return a->b == b->b;
  return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  cesql_err err;
  memset(&err, 'A', sizeof err);
  cesql_expr *expr = cesql_expr_compile(text, size, &err);
  if (!expr) {
    check_failure(data, size, &err);
    return 0;
  }
  if (size > CESQL_MAX_TEXT)
    fuzz_fail("cesql_expr_compile", "accepted a text over the limit", data, size);

  const ce_event *ev = fixed_event();
  cesql_value v, again;
  cesql_error_kind kind, kind2;
  int rc = cesql_expr_eval(expr, ev, &v, &kind);
  if (rc == -ENOMEM) goto cleanup;
  if (rc != 0) fuzz_fail("cesql_expr_eval", "returned an undocumented code", data, size);
  if ((unsigned)kind > CESQL_ERR_GENERIC || (unsigned)v.type > CESQL_STRING)
    fuzz_fail("cesql_expr_eval", "unknown error kind or type", data, size);
  if (v.type == CESQL_STRING && (!v.s || v.s[v.len] != '\0' || !ce_valid_utf8(v.s, v.len)))
    fuzz_fail("cesql_expr_eval", "a string result that is not NUL-terminated UTF-8", data, size);
  if (v.type != CESQL_STRING && v.s)
    fuzz_fail("cesql_expr_eval", "a string pointer with a non-string result", data, size);

  if (cesql_expr_eval(expr, ev, &again, &kind2) == 0) {
    if (kind2 != kind || !same_value(&v, &again))
      fuzz_fail("cesql_expr_eval", "two evaluations differ", data, size);
    cesql_value_cleanup(&again);
  }

  bool want = kind == CESQL_OK && v.type == CESQL_BOOL && v.b;
  bool got = cesql_expr_match(expr, ev);
  if (got != want) fuzz_fail("cesql_expr_match", "disagrees with cesql_expr_eval", data, size);

  const char *attr = NULL, *value = NULL;
  if (cesql_expr_required_exact(expr, &attr, &value)) {
    if (!attr || !value)
      fuzz_fail("cesql_expr_required_exact", "returned 1 without both", data, size);
    const char *have = ce_event_get_str(ev, attr);
    if (got && (!have || strcmp(have, value) != 0))
      fuzz_fail("cesql_expr_required_exact", "matched an event without the equality", data, size);
  }
  cesql_value_cleanup(&v);
cleanup:
  cesql_expr_free(expr);
  return 0;
}
