/*
 * fuzz_common.c — input conventions and property checks shared by the
 * libFuzzer targets. A broken property prints what is needed to understand it
 * without a debugger (the events, the encoded bytes) and then abort()s, which
 * libFuzzer reports as a crash and saves the input for.
 */
#include "tests/fuzz/fuzz_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Five selector bytes after '#': body, header count, header size, batch size
 * and depth. The mappings keep every limit small, and a 0 selects "no limit"
 * so that case is explored too. */
void fuzz_limits_pick(const uint8_t **data, size_t *size, ce_limits *lim) {
  const uint8_t *p = *data;

  ce_limits_init(lim);
  if (*size < 6 || p[0] != '#') return;
  lim->max_body = (size_t)p[1] * 8;
  lim->max_headers = p[2] % 32;
  lim->max_header_size = p[3];
  lim->max_batch = p[4] % 8;
  lim->max_depth = p[5] % 16;
  *data += 6;
  *size -= 6;
}

void fuzz_limits_unbounded(ce_limits *lim) {
  memset(lim, 0, sizeof(*lim));
}

int fuzz_frame_split(const uint8_t *data, size_t size, fuzz_frame *fr) {
  size_t cap = 1, pos = 0;

  memset(fr, 0, sizeof(*fr));
  /* One header per '\n' at most, plus a last unterminated line. */
  for (size_t i = 0; i < size; i++) cap += data[i] == '\n';
  fr->headers = calloc(cap, sizeof(*fr->headers));
  if (!fr->headers) return -ENOMEM;

  while (pos < size) {
    const uint8_t *line = data + pos;
    const uint8_t *nl = memchr(line, '\n', size - pos);
    size_t line_len = nl ? (size_t)(nl - line) : size - pos;
    const uint8_t *colon;
    ce_kv *kv;

    pos += line_len + (nl ? 1 : 0);
    if (line_len == 0 && nl) {
      /* The empty line: everything after it is the body, maybe empty. */
      fr->body = data + pos;
      fr->body_len = size - pos;
      return 0;
    }
    kv = &fr->headers[fr->n_headers++];
    colon = memchr(line, ':', line_len);
    kv->name = (const char *)line;
    if (!colon) {
      /* No colon: a header with an empty value, for the decoder to judge. */
      kv->name_len = line_len;
      kv->value = (const char *)line + line_len;
      kv->value_len = 0;
      continue;
    }
    kv->name_len = (size_t)(colon - line);
    kv->value = (const char *)colon + 1;
    kv->value_len = line_len - kv->name_len - 1;
    /* Drop the one conventional space; further whitespace stays, so the
     * decoders' trimming is exercised. */
    if (kv->value_len > 0 && kv->value[0] == ' ') {
      kv->value++;
      kv->value_len--;
    }
  }
  return 0;
}

void fuzz_frame_cleanup(fuzz_frame *fr) {
  free(fr->headers);
  memset(fr, 0, sizeof(*fr));
}

static bool terminated(const char *s, size_t size) {
  return memchr(s, '\0', size) != NULL;
}

void fuzz_check_rc(const char *what, int rc, bool allow_positive, const ce_err *err) {
  char msg[512];

  if (rc == 0 || (rc > 0 && allow_positive)) return;
  if (rc > 0) {
    snprintf(msg, sizeof(msg), "returned %d where 0 was the only success value", rc);
    fuzz_fail(what, msg, NULL, 0);
  }
  if (rc != -EINVAL && rc != -EMSGSIZE && rc != -E2BIG && rc != -ENOTSUP && rc != -ENOMEM) {
    snprintf(msg, sizeof(msg), "returned %d, not an errno ce.h documents", rc);
    fuzz_fail(what, msg, NULL, 0);
  }
  /* The callers fill *err with a non-NUL pattern first, so these also catch
   * an error path that does not fill it at all. */
  if (!terminated(err->attr, sizeof(err->attr)) || !terminated(err->reason, sizeof(err->reason))) {
    snprintf(msg, sizeof(msg), "returned %d with err->attr or err->reason not filled", rc);
    fuzz_fail(what, msg, NULL, 0);
  }
  if (rc != -ENOMEM && err->reason[0] == '\0') {
    snprintf(msg, sizeof(msg), "returned %d with an empty err->reason (attr \"%s\")", rc,
             err->attr);
    fuzz_fail(what, msg, NULL, 0);
  }
  if (err->index < -1) {
    snprintf(msg, sizeof(msg), "returned %d with err->index %d", rc, err->index);
    fuzz_fail(what, msg, NULL, 0);
  }
}

void fuzz_check_limits(const char *what, const fuzz_frame *fr, const ce_limits *lim) {
  if (lim->max_body && fr->body_len > lim->max_body)
    fuzz_fail(what, "accepted a body over max_body", NULL, 0);
  if (lim->max_headers && fr->n_headers > lim->max_headers)
    fuzz_fail(what, "accepted more headers than max_headers", NULL, 0);
  for (size_t i = 0; lim->max_header_size && i < fr->n_headers; i++)
    if (fr->headers[i].name_len + fr->headers[i].value_len > lim->max_header_size)
      fuzz_fail(what, "accepted a header over max_header_size", fr->headers[i].name,
                fr->headers[i].name_len);
}

void fuzz_check_valid(const char *what, const ce_event *ev) {
  ce_err err;
  char msg[512];

  if (ce_event_validate(ev, &err) == 0) return;
  fuzz_dump_event("decoded", ev);
  snprintf(msg, sizeof(msg), "decoded an event that fails validation: %s: %s", err.attr,
           err.reason);
  fuzz_fail(what, msg, NULL, 0);
}

void fuzz_check_equal(const char *what, const ce_event *a, const ce_event *b, const void *bytes,
                      size_t len) {
  if (ce_event_equal(a, b)) return;
  fuzz_dump_event("first decode", a);
  fuzz_dump_event("after re-encode and decode", b);
  fuzz_fail(what, "round trip changed the event", bytes, len);
}

static bool same_values(const ce_event *a, const ce_event *b) {
  size_t na = ce_event_attr_count(a), la = 0, lb = 0;
  const uint8_t *da = ce_event_data(a, &la), *db = ce_event_data(b, &lb);

  if (na != ce_event_attr_count(b) || ce_event_has_data(a) != ce_event_has_data(b)) return false;
  if (la != lb || (la && memcmp(da, db, la) != 0)) return false;
  for (size_t i = 0; i < na; i++) {
    const ce_attr *x = ce_event_attr_at(a, i), *y = ce_event_get(b, x->name);
    if (!y || x->value_len != y->value_len || memcmp(x->value, y->value, x->value_len) != 0)
      return false;
  }
  return true;
}

void fuzz_check_same_values(const char *what, const ce_event *a, const ce_event *b,
                            const void *bytes, size_t len) {
  if (same_values(a, b)) return;
  fuzz_dump_event("first decode", a);
  fuzz_dump_event("after re-encode in the other mode and decode", b);
  fuzz_fail(what, "cross-mode round trip changed the event", bytes, len);
}

void fuzz_fail(const char *what, const char *msg, const void *bytes, size_t len) {
  fprintf(stderr, "\n==== property broken in %s: %s\n", what, msg);
  if (bytes) fuzz_dump_bytes("encoded form", bytes, len, 4096);
  abort();
}

static const char *type_name(ce_type t) {
  static const char *names[] = {"string", "boolean", "integer",  "binary",
                                "uri",    "uriref",  "timestamp"};
  return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

void fuzz_dump_event(const char *label, const ce_event *ev) {
  size_t n = ce_event_attr_count(ev), len = 0;
  const uint8_t *data = ce_event_data(ev, &len);

  fprintf(stderr, "---- %s: %zu attributes\n", label, n);
  for (size_t i = 0; i < n; i++) {
    const ce_attr *a = ce_event_attr_at(ev, i);
    fprintf(stderr, "  %s (%s) = ", a->name, type_name(a->type));
    fuzz_dump_bytes(NULL, a->value, a->value_len, 512);
  }
  if (!ce_event_has_data(ev)) {
    fprintf(stderr, "  no data\n");
    return;
  }
  fprintf(stderr, "  data (%zu bytes) = ", len);
  fuzz_dump_bytes(NULL, data, len, 1024);
}

void fuzz_dump_bytes(const char *label, const void *bytes, size_t len, size_t max) {
  const uint8_t *p = bytes;
  size_t n = len < max ? len : max;

  if (label) fprintf(stderr, "%s (%zu bytes): ", label, len);
  fputc('"', stderr);
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '"' || p[i] == '\\')
      fprintf(stderr, "\\%c", p[i]);
    else if (p[i] == '\n')
      fputs("\\n", stderr);
    else if (p[i] >= 0x20 && p[i] < 0x7f)
      fputc(p[i], stderr);
    else
      fprintf(stderr, "\\x%02x\"\"", p[i]); /* "" stops \x eating the next hex digit */
  }
  fprintf(stderr, "\"%s\n", n < len ? " ..." : "");
}
