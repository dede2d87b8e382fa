/*
 * fuzz_lane.c — libFuzzer target for the fast lane's request parser
 * (httpd__fast_parse, core/httpd_fast.c): the bytes at the start of a
 * connection, as the lane peeks at them (at most HTTPD_FAST_PEEK). An input
 * that starts with '%' and has at least 4 bytes takes three limit bytes
 * first: max_header_bytes (byte × 64; 0 is the parser's 16 KiB), max_headers
 * (byte mod 64) and max_body (byte × 64), 0 meaning none.
 *
 * What the parser takes (HTTPD__TAKE) must be what the lane may serve, which
 * this file checks on its own terms: within the bytes and the limits; "POST",
 * a plain path and " HTTP/1.1"; header lines inside the head and in order,
 * each name a token; one Content-Length, whose digits are the body's length;
 * a Host; no Transfer-Encoding, Expect or Upgrade; a Connection only of
 * keep-alive. The same request must come out of exactly its own bytes (what
 * follows it is the next request's), and HTTPD__MORE out of any shorter
 * prefix, each copied to a buffer of its own size so that AddressSanitizer
 * sees a read past it. Any other result, or another answer the second time,
 * aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/httpd.h"
#include "core/httpd_int.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_LINES = 128 };

static const uint8_t *input;
static size_t input_len;

static void broken(const char *msg) {
  fuzz_fail("httpd__fast_parse", msg, input, input_len);
}

static bool is_token(const char *s, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i], lc = c | 0x20;
    bool alnum = (c >= '0' && c <= '9') || (lc >= 'a' && lc <= 'z');
    if (c >= 0x80 || !(alnum || (c && strchr("!#$%&'*+-.^_`|~", c)))) return false;
  }
  return true;
}

static bool named(const httpd__line *l, const char *name) {
  return l->name_len == strlen(name) && strncasecmp(l->name, name, l->name_len) == 0;
}

/* Parses a copy of b[0..n) in a buffer of exactly n bytes. */
static httpd__parse_rc parse_copy(const httpd_opts *o, const char *b, size_t n, httpd__line *lines,
                                  httpd__parsed *p, char **copy) {
  *copy = malloc(n ? n : 1);
  if (!*copy) abort();
  if (n) memcpy(*copy, b, n);
  return httpd__fast_parse(o, *copy, n, lines, MAX_LINES, p);
}

/* What a taken request must be, checked against its bytes b[0..n). */
static void check_taken(const httpd_opts *o, const char *b, size_t n, const httpd__parsed *p) {
  size_t limit = o->max_header_bytes ? o->max_header_bytes : HTTPD_HEADER_BYTES;
  if (p->total > n || p->head > p->total || p->body_len != p->total - p->head)
    broken("the request is not within the bytes");
  if (p->head > limit || (o->max_body && p->body_len > o->max_body) || p->total > HTTPD_FAST_PEEK ||
      p->n_lines > MAX_LINES || (o->max_headers && p->n_lines > o->max_headers))
    broken("taken past a limit");
  if (p->head < 4 || memcmp(b + p->head - 4, "\r\n\r\n", 4)) broken("the head does not end");
  if (memcmp(b, "POST ", 5) || p->path != b + 5 || p->path_len == 0 || p->path[0] != '/')
    broken("not a POST to a path");
  for (size_t i = 0; i < p->path_len; i++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-._~",
                p->path[i]) ||
        p->path[i] == '\0')
      broken("a path character the lane does not take");
  if (5 + p->path_len + 11 > p->head || memcmp(p->path + p->path_len, " HTTP/1.1\r\n", 11))
    broken("not HTTP/1.1");
  const char *after = p->path + p->path_len + 11, *end = b + p->head - 2;
  size_t lengths = 0, hosts = 0;
  for (size_t i = 0; i < p->n_lines; i++) {
    const httpd__line *l = &p->lines[i];
    if (l->name < after || l->value < l->name + l->name_len + 1 || l->value + l->value_len > end)
      broken("a header line outside the head, or out of order");
    after = l->value + l->value_len;
    if (!is_token(l->name, l->name_len) || l->name[l->name_len] != ':')
      broken("a header name that is not a token before a colon");
    for (size_t k = 0; k < l->value_len; k++)
      if ((unsigned char)l->value[k] < 0x20 && l->value[k] != '\t')
        broken("a control character in a header value");
    if (named(l, "content-length")) {
      size_t v = 0;
      lengths++;
      if (l->value_len == 0) broken("an empty Content-Length");
      for (size_t k = 0; k < l->value_len; k++) {
        if (l->value[k] < '0' || l->value[k] > '9') broken("a Content-Length not in digits");
        v = v * 10 + (size_t)(l->value[k] - '0');
      }
      if (v != p->body_len) broken("the body is not the Content-Length");
    } else if (named(l, "host")) {
      hosts++;
    } else if (named(l, "transfer-encoding") || named(l, "expect") || named(l, "upgrade")) {
      broken("taken with a header the lane leaves to libmicrohttpd");
    } else if (named(l, "connection") &&
               !(l->value_len == 10 && strncasecmp(l->value, "keep-alive", 10) == 0)) {
      broken("taken with a Connection other than keep-alive");
    }
  }
  if (lengths != 1 || hosts == 0) broken("taken without one Content-Length and a Host");
}

static bool same(const httpd__parsed *a, const httpd__parsed *b, const char *abase,
                 const char *bbase) {
  if (a->total != b->total || a->head != b->head || a->body_len != b->body_len ||
      a->path - abase != b->path - bbase || a->path_len != b->path_len || a->n_lines != b->n_lines)
    return false;
  for (size_t i = 0; i < a->n_lines; i++) {
    const httpd__line *x = &a->lines[i], *y = &b->lines[i];
    if (x->name - abase != y->name - bbase || x->name_len != y->name_len ||
        x->value - abase != y->value - bbase || x->value_len != y->value_len)
      return false;
  }
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  httpd_opts o;
  memset(&o, 0, sizeof o);
  input = data;
  input_len = size;
  if (size >= 4 && data[0] == '%') {
    o.max_header_bytes = (size_t)data[1] * 64;
    o.max_headers = data[2] % 64;
    o.max_body = (size_t)data[3] * 64;
    data += 4, size -= 4;
  }
  if (size > HTTPD_FAST_PEEK) size = HTTPD_FAST_PEEK;
  const char *b = (const char *)data;
  static httpd__line lines[MAX_LINES], again_lines[MAX_LINES], cut_lines[MAX_LINES];
  httpd__parsed p, again, cut;
  char *copy, *copy2;
  httpd__parse_rc rc = parse_copy(&o, b, size, lines, &p, &copy);
  if (rc != HTTPD__TAKE && rc != HTTPD__MORE && rc != HTTPD__DECLINE) broken("an unknown result");
  if (parse_copy(&o, b, size, again_lines, &again, &copy2) != rc ||
      (rc == HTTPD__TAKE && !same(&p, &again, copy, copy2)))
    broken("another answer the second time");
  free(copy2);
  if (rc == HTTPD__TAKE) {
    check_taken(&o, copy, size, &p);
    /* Exactly its own bytes: the same request. */
    if (parse_copy(&o, b, p.total, cut_lines, &cut, &copy2) != HTTPD__TAKE ||
        !same(&p, &cut, copy, copy2))
      broken("not the same request from exactly its bytes");
    free(copy2);
    /* Any shorter prefix: wait for more. */
    size_t cuts[] = {1, 4, 5, p.head / 2, p.head - 1, p.head, p.total - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
      if (cuts[i] == 0 || cuts[i] >= p.total) continue;
      if (parse_copy(&o, b, cuts[i], cut_lines, &cut, &copy2) != HTTPD__MORE) {
        fprintf(stderr, "prefix of %zu bytes of a %zu-byte request\n", cuts[i], p.total);
        broken("a prefix of a taken request is not waited on");
      }
      free(copy2);
    }
  }
  free(copy);
  return 0;
}
