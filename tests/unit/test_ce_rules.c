/*
 * test_ce_rules.c — unit tests for the validation rules in core/ce_rules.c,
 * one table per rule: attribute names, strings (control characters), UTF-8
 * well-formedness (overlongs, surrogates, truncation), absolute URIs,
 * URI-references, RFC 3339 timestamps (any number of fraction digits,
 * numeric offsets, leap years, out-of-range fields, lower-case t/z), media
 * types, the JSON media type test, base64; then ce_timestamp_parse and
 * ce_timestamp_format against known epoch values and each other.
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

/* A table row: the input (with its length, so it may hold NULs) and whether
 * the rule accepts it. */
typedef struct row {
  const char *s;
  size_t len;
  bool ok;
} row;
#define Y(lit)                                                                                     \
  { lit, sizeof(lit) - 1, true }
#define N(lit)                                                                                     \
  { lit, sizeof(lit) - 1, false }

static void run_rows(const char *rule, bool (*fn)(const char *, size_t), const row *rows,
                     size_t n) {
  for (size_t i = 0; i < n; i++) {
    char shown[128];
    CTX("%s(\"%s\")", rule, show(rows[i].s, rows[i].len, shown, sizeof shown));
    EXPECT_INT(fn(rows[i].s, rows[i].len), rows[i].ok);
  }
}
#define RUN(fn, rows) run_rows(#fn, fn, rows, sizeof rows / sizeof rows[0])

static void names(void **state) {
  static const row rows[] = {
      Y("a"),        Y("id"),
      Y("abc123"),   Y("0"),
      Y("x1y2"),     Y("abcdefghijklmnopqrstuvwxyz0123"), /* long is a SHOULD NOT, still valid */
      N(""),         N("A"),
      N("Id"),       N("myExt"),
      N("my-ext"),   N("my_ext"),
      N("a b"),      N("a.b"),
      N("\xc3\xa9"), N("a\0b"),
  };
  RUN(ce_valid_name, rows);
  /* Only len bytes count. */
  EXPECT_TRUE(ce_valid_name("abC", 2));
}

static void strings(void **state) {
  static const row rows[] = {
      Y(""),         Y("hello"),    Y("Euro \xe2\x82\xac \xf0\x9f\x98\x80"),
      Y(" ~"),       Y("\xc2\xa0"), /* U+00A0, first after the C1 controls */
      N("\t"),       N("a\nb"),     N("\r"),
      N("\x1f"),     N("\x7f"),     N("\0"),
      N("ab\0"),     N("\xc2\x80"), /* U+0080 */
      N("\xc2\x9f"),                /* U+009F */
      N("\xc0\xa0"),                /* overlong space */
      N("\xff"),
  };
  RUN(ce_valid_string, rows);
}

static void utf8(void **state) {
  static const row rows[] = {
      Y(""),
      Y("abc"),
      Y("\x01\x7f"), /* control characters are still well-formed */
      Y("a\0b"),
      Y("\xc2\xa9"),
      Y("\xe2\x82\xac"),
      Y("\xf0\x9f\x98\x80"),
      Y("\xed\x9f\xbf"),     /* U+D7FF */
      Y("\xee\x80\x80"),     /* U+E000 */
      Y("\xf4\x8f\xbf\xbf"), /* U+10FFFF */
      N("\xc0\xa0"),         /* overlong */
      N("\xc1\xbf"),
      N("\xe0\x80\x80"),
      N("\xe0\x9f\xbf"),
      N("\xf0\x80\x80\x80"),
      N("\xf0\x8f\xbf\xbf"),
      N("\xed\xa0\x80"),     /* U+D800, a surrogate */
      N("\xed\xbf\xbf"),     /* U+DFFF */
      N("\xf4\x90\x80\x80"), /* past U+10FFFF */
      N("\xf5\x80\x80\x80"),
      N("\xff"),
      N("\xfe"),
      N("\x80"), /* lone continuation */
      N("a\xbf"),
      N("\xc2"), /* truncated */
      N("\xe2\x82"),
      N("\xf0\x9f\x98"),
      N("\xc2\x41"), /* bad continuation */
      N("\xe2\x28\xa1"),
  };
  RUN(ce_valid_utf8, rows);
  /* A sequence cut by len is truncated even when the bytes go on. */
  EXPECT_TRUE(!ce_valid_utf8("\xe2\x82\xac", 2));
}

static void uris(void **state) {
  static const row rows[] = {
      Y("https://example.com"),
      Y("https://example.com/a/b?c=d&e=f"),
      Y("http://x/y"),
      Y("urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"),
      Y("mailto:a@example.com"),
      Y("a+b-c.d:x"),
      Y("https://[::1]:8080/p"),
      Y("https://user@host:8080/p%20q"),
      Y("file:///tmp/x"),
      N(""),
      N("/relative/path"),
      N("relative"),
      N("example.com/path"),
      N("//host/path"),
      N("1http://x"),
      N("://x"),
      N("ht tp://x"),
      N("https://x/a b"),
      N("https://x/%zz"),
      N("https://x/%4"),
      N("https://x/a\"b"),
      N("https://x/<a>"),
      N("https://x/\xc3\xa9"), /* an IRI, not a URI */
      N("https://x/\x7f"),
  };
  RUN(ce_valid_uri, rows);
}

static void uri_refs(void **state) {
  static const row rows[] = {
      Y("/a/b"),
      Y("https://x/y"),
      Y("urn:x"),
      Y("a"),
      Y("../x"),
      Y("./a:b"),
      Y("?q=1"),
      Y("#frag"),
      Y("//host/path"),
      Y("x/y?z#w"),
      Y("/%41%2f"),
      Y("/mycontext"),
      Y("https://github.com/cloudevents/spec/pull/123"),
      Y("/sparkles/bae4b5a4-b8a1-4a0a-9c32-ab7e0f38f3b6"),
      N("a b"),
      N("%zz"),
      N("/%4"),
      N("/a\"b"),
      N("<x>"),
      N("/a{b}"),
      N("\\x"),
      N("/\xc3\xa9"),
      N("/a\x01"),
      N("a#b#c"),
      N("1a:b"), /* not a scheme, and a colon in a first relative segment */
  };
  RUN(ce_valid_uri_ref, rows);
}

static void timestamps(void **state) {
  static const row rows[] = {
      Y("2018-04-05T17:31:00Z"),
      Y("1985-04-12T23:20:50.52Z"),
      Y("2018-04-05T17:31:00.1Z"),
      Y("2018-04-05T17:31:00.123456789Z"),
      Y("2018-04-05T17:31:00.1234567891234Z"), /* any number of digits */
      Y("2018-04-05T17:31:00+01:00"),
      Y("1996-12-19T16:39:57-08:00"),
      Y("2018-04-05T17:31:00-05:30"),
      Y("2018-04-05T17:31:00+00:00"),
      Y("2018-04-05T17:31:00-00:00"),
      Y("2018-04-05T17:31:00+23:59"),
      Y("2018-04-05t17:31:00z"),
      Y("2018-04-05t17:31:00.5+14:00"),
      Y("2020-02-29T00:00:00Z"),
      Y("2000-02-29T00:00:00Z"),
      Y("2018-01-31T23:59:59Z"),
      Y("2018-04-30T00:00:00Z"),
      Y("0001-01-01T00:00:00Z"),
      Y("9999-12-31T23:59:59Z"),
      N(""),
      N("2018-04-05"),
      N("17:31:00Z"),
      N("2018-04-05T17:31Z"),
      N("2018-04-05T17:31:00"),
      N("2018-04-05T17:31:00.Z"),
      N("2018-04-05T17:31:00,5Z"),
      N("2019-02-29T00:00:00Z"),
      N("1900-02-29T00:00:00Z"),
      N("2018-02-30T00:00:00Z"),
      N("2018-04-31T00:00:00Z"),
      N("2018-13-01T00:00:00Z"),
      N("2018-00-01T00:00:00Z"),
      N("2018-04-00T00:00:00Z"),
      N("2018-04-32T00:00:00Z"),
      N("2018-04-05T24:00:00Z"),
      N("2018-04-05T17:60:00Z"),
      N("2018-04-05T17:31:61Z"),
      N("2018-04-05T17:31:00+24:00"),
      N("2018-04-05T17:31:00+01:60"),
      N("2018-04-05T17:31:00+0100"),
      N("2018-04-05T17:31:00+1"),
      N("2018-4-05T17:31:00Z"),
      N("18-04-05T17:31:00Z"),
      N("2018-04-05T7:31:00Z"),
      N("2018-04-05T17:31:00Zx"),
      N("2018-04-05T17:31:00Z "),
      N(" 2018-04-05T17:31:00Z"),
      N("2018-04-05X17:31:00Z"),
      N("2018-04-05T17:31:00z\0"),
      N("+2018-04-05T17:31:00Z"),
      N("2018-04-05T17:31:0aZ"),
  };
  RUN(ce_valid_timestamp, rows);
}

static void media_types(void **state) {
  static const row rows[] = {
      Y("application/json"),
      Y("text/plain"),
      Y("application/cloudevents+json"),
      Y("text/plain; charset=utf-8"),
      Y("text/plain;charset=\"utf-8\""),
      Y("application/vnd.apache.kafka+json"),
      Y("Application/JSON"),
      Y("multipart/form-data; boundary=x; a=b"),
      Y("application/octet-stream"),
      N(""),
      N("json"),
      N("application/"),
      N("/json"),
      N("application json"),
      N("a/b/c"),
      N("text/pl ain"),
      N("text/plain; charset"),
      N("text/plain\x01"),
      N("text/\xc3\xa9"),
      /* Whitespace only before a ';' (a binary-mode hop would trim it). */
      N("image/png "),
      N("image/png\t"),
      N("image/png; a=b "),
      N("image/png; "),
      Y("image/png ; a=b"),
  };
  RUN(ce_valid_media_type, rows);
}

static void media_type_is_json(void **state) {
  static const row rows[] = {
      Y("application/json"),
      Y("text/json"),
      Y("application/cloudevents+json"),
      Y("application/vnd.foo+json; charset=utf-8"),
      Y("Application/JSON"),
      Y("APPLICATION/JSON;charset=UTF-8"),
      Y("application/json ; x=y"),
      Y("TEXT/JSON"),
      N("text/plain"),
      N("application/xml"),
      N("application/jsonx"),
      N("application/json-seq"),
      N("application/x-json"),
      N("application/json+xml"),
      N("text/jsonl"),
      N("application/octet-stream"),
      N("json"),
  };
  RUN(ce_media_type_is_json, rows);
  CTX("NULL");
  EXPECT_TRUE(ce_media_type_is_json(NULL, 0));
}

static void base64(void **state) {
  static const row rows[] = {
      Y(""),          Y("aGVsbG8="), Y("aGVsbA=="),     Y("aGVs"), Y("+/+/"),
      Y("AAAA"),      N("a"),        N("aGVsbG8=="),    N("a==="), N("aGV$"),
      N("aGVs bG8="), N("=aGV"),     N("aGVsbG8=aGVs"), N("-_-_"), N("aGVs\n"),
      N("aGVsbA=\0"),
  };
  RUN(ce_valid_base64, rows);
}

static void timestamp_parse(void **state) {
  static const struct {
    const char *s;
    int64_t sec;
    int32_t nsec;
  } cases[] = {
      {"1970-01-01T00:00:00Z", 0, 0},
      {"2018-04-05T17:31:00Z", 1522949460, 0},
      {"2018-04-05t17:31:00z", 1522949460, 0},
      {"2018-04-05T17:31:00.123456789Z", 1522949460, 123456789},
      {"2018-04-05T17:31:00.1Z", 1522949460, 100000000},
      {"2018-04-05T17:31:00.000000001Z", 1522949460, 1},
      {"2018-04-05T17:31:00.1234567891Z", 1522949460, 123456789},
      {"2018-04-05T17:31:00.9999999999999Z", 1522949460, 999999999},
      {"2018-04-05T18:31:00+01:00", 1522949460, 0},
      {"2018-04-05T12:01:00-05:30", 1522949460, 0},
      {"2018-04-05T17:31:00-00:00", 1522949460, 0},
      {"2018-04-06T03:31:00.5+10:00", 1522949460, 500000000},
      {"2000-02-29T12:00:00Z", 951825600, 0},
      {"2020-02-29T00:00:00Z", 1582934400, 0},
      {"1969-12-31T23:59:59Z", -1, 0},
      {"1969-12-31T23:59:59.5Z", -1, 500000000},
      {"1900-03-01T00:00:00Z", -2203891200LL, 0},
      {"9999-12-31T23:59:59Z", 253402300799LL, 0},
      {"2026-11-21T17:46:29.123456789Z", 1795283189, 123456789},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CTX("parse \"%s\"", cases[i].s);
    int64_t sec = 7;
    int32_t nsec = 7;
    EXPECT_RC(ce_timestamp_parse(cases[i].s, strlen(cases[i].s), &sec, &nsec), 0);
    EXPECT_INT(sec, cases[i].sec);
    EXPECT_INT(nsec, cases[i].nsec);
  }
  static const char *bad[] = {"",
                              "2019-02-29T00:00:00Z",
                              "2018-04-05T17:31:00",
                              "2018-13-01T00:00:00Z",
                              "2018-04-05T24:00:00Z",
                              "2018-04-05T17:31:00.Z"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CTX("parse \"%s\"", bad[i]);
    int64_t sec;
    int32_t nsec;
    EXPECT_RC(ce_timestamp_parse(bad[i], strlen(bad[i]), &sec, &nsec), -EINVAL);
  }
  /* Only len bytes are read: the "Z" cut off leaves no offset. */
  CTX("length-limited");
  int64_t sec;
  int32_t nsec;
  EXPECT_RC(ce_timestamp_parse("2018-04-05T17:31:00Z", 19, &sec, &nsec), -EINVAL);
}

static void timestamp_format(void **state) {
  static const struct {
    int64_t sec;
    int32_t nsec;
    const char *want;
  } cases[] = {
      {0, 0, "1970-01-01T00:00:00.000000000Z"},
      {1522949460, 123456789, "2018-04-05T17:31:00.123456789Z"},
      {1522949460, 1, "2018-04-05T17:31:00.000000001Z"},
      {951825600, 0, "2000-02-29T12:00:00.000000000Z"},
      {-1, 500000000, "1969-12-31T23:59:59.500000000Z"},
      {-2203891200LL, 0, "1900-03-01T00:00:00.000000000Z"},
      {253402300799LL, 999999999, "9999-12-31T23:59:59.999999999Z"},
      {1795283189, 123456789, "2026-11-21T17:46:29.123456789Z"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CTX("format %lld.%09d", (long long)cases[i].sec, (int)cases[i].nsec);
    char out[31];
    memset(out, 'X', sizeof out);
    size_t n = ce_timestamp_format(cases[i].sec, cases[i].nsec, out, sizeof out);
    EXPECT_INT(n, strlen(cases[i].want));
    EXPECT_STR(out, cases[i].want);
    /* What format writes, parse reads back, and the rule accepts. */
    EXPECT_TRUE(ce_valid_timestamp(out, n));
    int64_t sec;
    int32_t nsec;
    EXPECT_RC(ce_timestamp_parse(out, n, &sec, &nsec), 0);
    EXPECT_INT(sec, cases[i].sec);
    EXPECT_INT(nsec, cases[i].nsec);
  }
  /* Truncation as snprintf does it: the length that would have been
   * written, the buffer cut and terminated. */
  for (size_t size = 0; size < 32; size++) {
    CTX("format into %zu bytes", size);
    char out[32], want[32];
    memset(out, 'X', sizeof out);
    size_t n = ce_timestamp_format(1522949460, 123456789, out, size);
    EXPECT_INT(n, 30);
    snprintf(want, sizeof want, "%.*s", size ? (int)size - 1 : 0, "2018-04-05T17:31:00.123456789Z");
    if (size) EXPECT_STR(out, want);
    EXPECT_INT(out[size < 31 ? size : 31], size < 31 ? 'X' : out[31]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(names),
      T(strings),
      T(utf8),
      T(uris),
      T(uri_refs),
      T(timestamps),
      T(media_types),
      T(media_type_is_json),
      T(base64),
      T(timestamp_parse),
      T(timestamp_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
