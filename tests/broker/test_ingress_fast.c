/*
 * test_ingress_fast.c — the ingress's fast path (broker__ingress_fast: one
 * binary-mode event straight into its record) against the checked path
 * (broker__ingress_checked: ce_http_decode, stamp, broker__batch_encode,
 * what post_events runs when the fast path declines). For valid requests
 * (every optional attribute, extensions, percent-encoded UTF-8, quoted
 * values, a TTL present or not, odd spacing and case, Content-Type
 * parameters, no body, no Content-Type, the bench's request) the fast path
 * accepts and gives the same record, header for header and byte for byte;
 * for requests breaking each rule once it declines and the checked path
 * refuses; and for a few thousand deterministic mutants of the valid
 * requests (bytes changed, headers dropped, doubled, cut) it never accepts
 * what the checked path refuses, nor writes other bytes. A request's W3C
 * trace context: the fast path declines it, the checked path gives it to
 * each event without one of its own, valid ones only. Label unit.
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

#include "broker/broker.h"
#include "broker/broker_int.h"
#include "tests/broker/record_diff.h"
#include "tests/unit/test_util.h"

static const char now[] = "2026-11-22T03:31:00.123456789Z";

enum { MAX_H = 48, NAME_MAX_ = 64, VALUE_MAX = 256, BODY_MAX = 512 };

/* A request as its bytes, changeable by the mutation loop. */
typedef struct msg {
  size_t n;
  char name[MAX_H][NAME_MAX_];
  size_t name_len[MAX_H];
  char value[MAX_H][VALUE_MAX];
  size_t value_len[MAX_H];
  char body[BODY_MAX];
  size_t body_len;
} msg;

/* A request in the tables: "Name:value" lines (the value as sent, spaces
 * kept), a body (body_len 0: strlen). */
typedef struct seed {
  const char *what;
  const char *h[MAX_H];
  const char *body;
  size_t body_len;
} seed;

static void build(const seed *s, msg *m) {
  memset(m, 0, sizeof *m);
  for (size_t i = 0; s->h[i]; i++) {
    const char *colon = strchr(s->h[i], ':');
    assert_non_null(colon);
    size_t nl = (size_t)(colon - s->h[i]), vl = strlen(colon + 1);
    assert_true(nl < NAME_MAX_ && vl < VALUE_MAX && m->n < MAX_H);
    memcpy(m->name[m->n], s->h[i], nl);
    m->name_len[m->n] = nl;
    memcpy(m->value[m->n], colon + 1, vl);
    m->value_len[m->n] = vl;
    m->n++;
  }
  const char *body = s->body ? s->body : "";
  m->body_len = s->body_len ? s->body_len : strlen(body);
  assert_true(m->body_len <= BODY_MAX);
  memcpy(m->body, body, m->body_len);
}

static size_t kvs(const msg *m, ce_kv *kv) {
  for (size_t i = 0; i < m->n; i++)
    kv[i] = (ce_kv){m->name[i], m->name_len[i], m->value[i], m->value_len[i]};
  return m->n;
}

/* The request as text, for a failure's message. */
static const char *dump(const msg *m) {
  static char out[8192];
  char part[600];
  size_t o = 0;
  for (size_t i = 0; i < m->n && o < sizeof out - 1200; i++) {
    o += (size_t)snprintf(out + o, sizeof out - o, "\n  %s",
                          show(m->name[i], m->name_len[i], part, sizeof part));
    o += (size_t)snprintf(out + o, sizeof out - o, ": %s",
                          show(m->value[i], m->value_len[i], part, sizeof part));
  }
  snprintf(out + o, sizeof out - o, "\n  body %zu bytes", m->body_len);
  return out;
}

/* What both paths did with one request. */
enum outcome { FAST_SAME, DECLINED_ACCEPTED, DECLINED_REFUSED };

/* Runs both paths on m. Fails the test when the fast path accepts what the
 * checked path refuses or makes other bytes, or returns what it may not. */
static enum outcome both(const msg *m, const ce_limits *l, int32_t ttl) {
  ce_kv kv[MAX_H];
  size_t n = kvs(m, kv);
  broker_batch fast = {0}, checked = {0};
  ce_err err = {.index = -1};
  int frc = broker__ingress_fast(kv, n, m->body, m->body_len, l, ttl, now, &fast);
  int crc = broker__ingress_checked(kv, n, m->body, m->body_len, l, ttl, now, &checked, &err);
  enum outcome o = crc > 0 ? DECLINED_ACCEPTED : DECLINED_REFUSED;
  if (frc == 0) {
    if (crc != 1)
      fail_msg("%s%sthe fast path accepts what the checked path refuses (%s, %s: %s):%s", WHERE,
               errname(crc), err.attr, err.reason, dump(m));
    const char *why = record_differ(&fast, &checked);
    if (why) fail_msg("%s%sthe records differ: %s; request:%s", WHERE, why, dump(m));
    o = FAST_SAME;
  } else {
    if (frc != -EAGAIN) fail_msg("%s%sthe fast path returned %d:%s", WHERE, frc, dump(m));
    if (fast.recs || fast.n || fast.mem) fail_msg("%s%sa declined batch is not empty", WHERE);
  }
  broker_batch_cleanup(&fast);
  broker_batch_cleanup(&checked);
  return o;
}

#define SV  "ce-specversion:1.0"
#define ID  "ce-id:1"
#define SRC "ce-source:/s"
#define TY  "ce-type:t"

#define BENCH_BODY                                                                                 \
  "{\"orderId\":\"ord-000123\",\"customer\":\"c-42\",\"items\":3,\"total\":129.95,"                \
  "\"currency\":\"EUR\",\"express\":false}"

/* The request of bench/ingress.lua as wrk sends it: valid[0]. */
static const seed valid[] = {
    {"bench",
     {"Host: 127.0.0.1:18080", "Content-Length: 100", "ce-specversion: 1.0", "ce-id: 1-42",
      "ce-source: /bench/ingress", "ce-type: dev.outpost.bench.order",
      "Content-Type: application/json"},
     BENCH_BODY,
     0},
    {"every optional attribute",
     {"ce-specversion: 1.0", "ce-id: A234-1234-1234", "ce-source: https://example.com/a/b?q=1#f",
      "ce-type: com.example.object.deleted.v2", "ce-subject: mynewfile.jpg",
      "ce-time: 2026-11-22T03:31:00.5+01:00", "ce-dataschema: https://example.com/schema.json",
      "ce-partitionkey: env-1", "ce-comexampleextension1: value", "ce-knativebrokerttl: 12",
      "Content-Type: application/json; charset=utf-8"},
     "{\"a\":1}",
     0},
    {"percent-encoded UTF-8",
     {SV, "ce-id: %41b%63", "ce-source: /caf%25C3%25A9", TY,
      "ce-subject: caf%C3%A9%20%e2%82%ac %F0%9F%98%80 %25", "ce-ext: " EURO_ENC,
      "ce-partitionkey: p%C3%A9"},
     "x",
     0},
    {"quoted values",
     {SV, "ce-id: \"id-1\"", SRC, TY, "ce-subject: \"a \\\"b\\\" c%20d\"", "ce-ext: \"\""},
     NULL,
     0},
    {"a TTL with spaces and tabs", {SV, ID, SRC, TY, "ce-knativebrokerttl: \t 7 \t"}, "d", 0},
    {"a percent-encoded TTL", {"ce-knativebrokerttl:%31%30", SV, ID, SRC, TY}, "d", 0},
    {"the largest TTL", {SV, ID, SRC, TY, "ce-knativebrokerttl:2147483647"}, NULL, 0},
    {"upper-case names",
     {"CE-SPECVERSION: 1.0", "Ce-Id: 1", "cE-SOURCE: /s", "CE-TYPE: t", "CE-MYEXT: v",
      "CONTENT-TYPE: TEXT/PLAIN", "CE-KNATIVEBROKERTTL: 3"},
     "hello",
     0},
    {"Content-Type with parameters and spaces",
     {SV, ID, SRC, TY, "Content-Type:  text/plain ; charset=\"utf-8\" ;format=flowed\t"},
     "hello",
     0},
    {"no body, no Content-Type", {SV, ID, SRC, TY}, NULL, 0},
    {"no body, a Content-Type", {SV, ID, SRC, TY, "Content-Type: application/json"}, NULL, 0},
    {"Content-Type first, other headers between",
     {"content-type:application/octet-stream", "Host: h", SV, "Accept: */*", ID, "X-Ce-Id: 9", SRC,
      "ce_id: 7", TY, "User-Agent: wrk"},
     "\x00\x01\x02\xff\xfe",
     5},
    {"an arrival time of its own, replaced",
     {SV, "ce-knativearrivaltime: 2020-01-01T00:00:00Z", ID, SRC, TY, "ce-z: 1"},
     NULL,
     0},
    {"empty extension values and partition key",
     {SV, ID, SRC, TY, "ce-empty:", "ce-partitionkey:", "ce-blank:   "},
     "b",
     0},
    {"many extensions",
     {SV,          ID,          SRC,         TY,          "ce-e1:1",   "ce-e2:2",   "ce-e3:3",
      "ce-e4:4",   "ce-e5:5",   "ce-e6:6",   "ce-e7:7",   "ce-e8:8",   "ce-e9:9",   "ce-e10:10",
      "ce-e11:11", "ce-e12:12", "ce-e13:13", "ce-e14:14", "ce-e15:15", "ce-e16:16", "ce-e17:17",
      "ce-e18:18", "ce-e19:19", "ce-e20:20", "ce-e21:21", "ce-e22:22", "ce-e23:23", "ce-e24:24",
      "ce-e25:25", "ce-e26:26", "ce-e27:27", "ce-e28:28"},
     "{}",
     0},
    {"a URN source, a lower-case time",
     {SV, ID, "ce-source: urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", TY,
      "ce-time: 2026-11-22t03:31:00z", "ce-dataschema: urn:x"},
     NULL,
     0},
    {"names with digits, values with every printable byte",
     {SV, ID, SRC, TY, "ce-a1b2: !#$&'()*+,-./:;<=>?@[]^_`{|}~", "ce-9: \\ back"},
     NULL,
     0},
};

/* Valid requests the fast path leaves to the checked path. */
static const seed declined[] = {
    {"ce-datacontenttype", {SV, ID, SRC, TY, "ce-datacontenttype: text/plain"}, "x", 0},
    {"ce-datacontenttype and Content-Type",
     {SV, ID, "ce-datacontenttype: a/b", SRC, TY, "Content-Type: text/plain"},
     "x",
     0},
    {"structured mode",
     {"Content-Type: application/cloudevents+json"},
     "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}",
     0},
    {"batched mode",
     {"Content-Type: application/cloudevents-batch+json"},
     "[{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}]",
     0},
    {"33 attributes",
     {SV,          ID,          SRC,         TY,          "ce-e1:1",   "ce-e2:2",   "ce-e3:3",
      "ce-e4:4",   "ce-e5:5",   "ce-e6:6",   "ce-e7:7",   "ce-e8:8",   "ce-e9:9",   "ce-e10:10",
      "ce-e11:11", "ce-e12:12", "ce-e13:13", "ce-e14:14", "ce-e15:15", "ce-e16:16", "ce-e17:17",
      "ce-e18:18", "ce-e19:19", "ce-e20:20", "ce-e21:21", "ce-e22:22", "ce-e23:23", "ce-e24:24",
      "ce-e25:25", "ce-e26:26", "ce-e27:27", "ce-e28:28", "ce-e29:29"},
     NULL,
     0},
};

/* Requests breaking one rule each: the checked path refuses them. */
static const seed invalid[] = {
    {"no specversion", {ID, SRC, TY}, NULL, 0},
    {"no id", {SV, SRC, TY}, NULL, 0},
    {"no source", {SV, ID, TY}, NULL, 0},
    {"no type", {SV, ID, SRC}, NULL, 0},
    {"nothing", {"Host: h"}, "x", 0},
    {"empty specversion", {"ce-specversion:", ID, SRC, TY}, NULL, 0},
    {"empty id", {SV, "ce-id:  ", SRC, TY}, NULL, 0},
    {"empty source", {SV, ID, "ce-source:", TY}, NULL, 0},
    {"empty type", {SV, ID, SRC, "ce-type:"}, NULL, 0},
    {"empty subject", {SV, ID, SRC, TY, "ce-subject:"}, NULL, 0},
    {"empty time", {SV, ID, SRC, TY, "ce-time:"}, NULL, 0},
    {"empty dataschema", {SV, ID, SRC, TY, "ce-dataschema:"}, NULL, 0},
    {"specversion 0.3", {"ce-specversion:0.3", ID, SRC, TY}, NULL, 0},
    {"specversion 1.00", {"ce-specversion:1.00", ID, SRC, TY}, NULL, 0},
    {"specversion 1", {"ce-specversion:1", ID, SRC, TY}, NULL, 0},
    {"specversion with a NUL", {"ce-specversion:1.0%00", ID, SRC, TY}, NULL, 0},
    {"source with a space", {SV, ID, "ce-source:/a%20b", TY}, NULL, 0},
    {"source with a colon first", {SV, ID, "ce-source::x", TY}, NULL, 0},
    {"source with a bad escape", {SV, ID, "ce-source:/a%25zz", TY}, NULL, 0},
    {"source with two fragments", {SV, ID, "ce-source:/a#b#c", TY}, NULL, 0},
    {"relative dataschema", {SV, ID, SRC, TY, "ce-dataschema:/schema"}, NULL, 0},
    {"dataschema with a fragment", {SV, ID, SRC, TY, "ce-dataschema:https://x/#f"}, NULL, 0},
    {"dataschema with a space", {SV, ID, SRC, TY, "ce-dataschema:http://x/a%20b"}, NULL, 0},
    {"month 13", {SV, ID, SRC, TY, "ce-time:2026-13-01T00:00:00Z"}, NULL, 0},
    {"February 30", {SV, ID, SRC, TY, "ce-time:2026-02-30T00:00:00Z"}, NULL, 0},
    {"time without offset", {SV, ID, SRC, TY, "ce-time:2026-11-22T03:31:00"}, NULL, 0},
    {"time in words", {SV, ID, SRC, TY, "ce-time:yesterday"}, NULL, 0},
    {"underscore in a name", {SV, ID, SRC, TY, "ce-ext_1:x"}, NULL, 0},
    {"hyphen in a name", {SV, ID, SRC, TY, "ce-ext-1:x"}, NULL, 0},
    {"dot in a name", {SV, ID, SRC, TY, "ce-ext.1:x"}, NULL, 0},
    {"no name", {SV, ID, SRC, TY, "ce-:x"}, NULL, 0},
    {"data as a name", {SV, ID, SRC, TY, "ce-data:x"}, NULL, 0},
    {"non-ASCII name", {SV, ID, SRC, TY, "ce-\xc3\xa9:x"}, NULL, 0},
    {"TTL 0", {SV, ID, SRC, TY, "ce-knativebrokerttl:0"}, NULL, 0},
    {"TTL -1", {SV, ID, SRC, TY, "ce-knativebrokerttl:-1"}, NULL, 0},
    {"TTL -0", {SV, ID, SRC, TY, "ce-knativebrokerttl:-0"}, NULL, 0},
    {"TTL garbage", {SV, ID, SRC, TY, "ce-knativebrokerttl:abc"}, NULL, 0},
    {"TTL empty", {SV, ID, SRC, TY, "ce-knativebrokerttl:"}, NULL, 0},
    {"TTL spaces", {SV, ID, SRC, TY, "ce-knativebrokerttl:   "}, NULL, 0},
    {"TTL 01", {SV, ID, SRC, TY, "ce-knativebrokerttl:01"}, NULL, 0},
    {"TTL +5", {SV, ID, SRC, TY, "ce-knativebrokerttl:+5"}, NULL, 0},
    {"TTL 1.5", {SV, ID, SRC, TY, "ce-knativebrokerttl:1.5"}, NULL, 0},
    {"TTL past 32 bits", {SV, ID, SRC, TY, "ce-knativebrokerttl:2147483648"}, NULL, 0},
    {"TTL of 11 digits", {SV, ID, SRC, TY, "ce-knativebrokerttl:10000000000"}, NULL, 0},
    {"id twice", {SV, ID, SRC, TY, "ce-id:2"}, NULL, 0},
    {"id twice, other case", {SV, ID, SRC, TY, "CE-ID:1"}, NULL, 0},
    {"specversion twice", {SV, ID, SRC, TY, SV}, NULL, 0},
    {"TTL twice", {SV, ID, SRC, TY, "ce-knativebrokerttl:5", "ce-knativebrokerttl:5"}, NULL, 0},
    {"arrival time twice",
     {SV, ID, SRC, TY, "ce-knativearrivaltime:x", "ce-knativearrivaltime:y"},
     NULL,
     0},
    {"partition key twice", {SV, ID, SRC, TY, "ce-partitionkey:a", "ce-partitionkey:b"}, NULL, 0},
    {"extension twice", {SV, ID, SRC, TY, "ce-e:a", "Ce-E:a"}, NULL, 0},
    {"Content-Type twice", {SV, ID, SRC, TY, "Content-Type:a/b", "content-type:a/b"}, NULL, 0},
    {"a lone %", {SV, ID, SRC, TY, "ce-subject:%"}, NULL, 0},
    {"a cut escape", {SV, ID, SRC, TY, "ce-subject:ab%4"}, NULL, 0},
    {"a non-hex escape", {SV, ID, SRC, TY, "ce-subject:%zz"}, NULL, 0},
    {"a cut UTF-8 sequence", {SV, ID, SRC, TY, "ce-subject:%C3"}, NULL, 0},
    {"a bad UTF-8 sequence", {SV, ID, SRC, TY, "ce-e:%C3%28"}, NULL, 0},
    {"a surrogate", {SV, ID, SRC, TY, "ce-e:%ED%A0%80"}, NULL, 0},
    {"an overlong form", {SV, ID, SRC, TY, "ce-e:%C0%AF"}, NULL, 0},
    {"a NUL", {SV, ID, SRC, TY, "ce-e:a%00b"}, NULL, 0},
    {"a DEL", {SV, ID, SRC, TY, "ce-e:%7F"}, NULL, 0},
    {"a C1 control", {SV, ID, SRC, TY, "ce-e:%C2%85"}, NULL, 0},
    {"a noncharacter", {SV, ID, SRC, TY, "ce-e:%EF%BF%BE"}, NULL, 0},
    {"a raw control byte", {SV, ID, SRC, TY, "ce-e:a\x01"}, NULL, 0},
    {"a raw tab inside", {SV, ID, SRC, TY, "ce-subject:a\tb"}, NULL, 0},
    {"a raw byte past ASCII", {SV, ID, SRC, TY, "ce-e:\xff"}, NULL, 0},
    {"a control in the replaced arrival time",
     {SV, ID, SRC, TY, "ce-knativearrivaltime:%01"},
     NULL,
     0},
    {"an unterminated quote", {SV, ID, SRC, TY, "ce-e:\"abc"}, NULL, 0},
    {"text after a quote", {SV, ID, SRC, TY, "ce-e:\"a\"b"}, NULL, 0},
    {"an empty Content-Type", {SV, ID, SRC, TY, "Content-Type: \t "}, "x", 0},
    {"Content-Type not a media type", {SV, ID, SRC, TY, "Content-Type: json"}, "x", 0},
    {"Content-Type without subtype", {SV, ID, SRC, TY, "Content-Type: text/"}, "x", 0},
    {"Content-Type parameter without value", {SV, ID, SRC, TY, "Content-Type: a/b; c"}, "x", 0},
    {"Content-Type with a control byte", {SV, ID, SRC, TY, "Content-Type: a/b\x01"}, "x", 0},
    {"Content-Type with words after", {SV, ID, SRC, TY, "Content-Type: a/b c"}, "x", 0},
    {"an unsupported event format",
     {SV, ID, SRC, TY, "Content-Type: application/cloudevents+xml"},
     "x",
     0},
    {"structured mode in Latin-1",
     {"Content-Type: application/cloudevents+json; charset=latin1"},
     "{}",
     0},
    {"structured mode, invalid", {"Content-Type: application/cloudevents+json"}, "{}", 0},
    {"an empty batch", {"Content-Type: application/cloudevents-batch+json"}, "[]", 0},
};

/* The limits the "too large" cases run under. */
static const seed large[] = {
    {"a body past max_body", {SV, ID, SRC, TY}, "0123456789abcdefg", 0},
    {"headers past max_headers", {SV, ID, SRC, TY, "A:1", "B:2", "C:3"}, NULL, 0},
    {"a header past max_header_size",
     {SV, ID, SRC, TY, "ce-e:01234567890123456789012345678"},
     NULL,
     0},
    {"a header past max_header_size, not an attribute",
     {SV, ID, SRC, TY, "X-Long:0123456789012345678901234567"},
     NULL,
     0},
};

static const int32_t ttls[] = {255, 1, 10, 99, 2147483647};

static void valid_requests_same_record(void **state) {
  (void)state;
  ce_limits l;
  ce_limits_init(&l);
  msg m;
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
    for (size_t t = 0; t < sizeof ttls / sizeof ttls[0]; t++) {
      CTX("%s, default TTL %d", valid[i].what, ttls[t]);
      build(&valid[i], &m);
      EXPECT_INT(both(&m, &l, ttls[t]), FAST_SAME);
    }
}

/* Looks at one record by hand too: the bench's, with what stamp adds. */
static void bench_request_record(void **state) {
  (void)state;
  ce_limits l;
  ce_limits_init(&l);
  msg m;
  ce_kv kv[MAX_H];
  build(&valid[0], &m);
  size_t n = kvs(&m, kv);
  broker_batch b = {0};
  EXPECT_RC(broker__ingress_fast(kv, n, m.body, m.body_len, &l, 255, now, &b), 0);
  EXPECT_INT(b.n, 1);
  const broker_record *r = &b.recs[0];
  const char *want[][2] = {{"ce_specversion", "1.0"},
                           {"ce_id", "1-42"},
                           {"ce_source", "/bench/ingress"},
                           {"ce_type", "dev.outpost.bench.order"},
                           {"content-type", "application/json"},
                           {"ce_knativebrokerttl", "255"},
                           {"ce_knativearrivaltime", now}};
  EXPECT_INT(r->n_headers, 7);
  for (size_t i = 0; i < 7; i++) {
    CTX("header %zu", i);
    EXPECT_MEM(r->headers[i].name, r->headers[i].name_len, want[i][0], strlen(want[i][0]));
    EXPECT_MEM(r->headers[i].value, r->headers[i].value_len, want[i][1], strlen(want[i][1]));
  }
  EXPECT_INT(r->partition, -1);
  EXPECT_TRUE(r->key == NULL);
  EXPECT_MEM(r->value, r->value_len, BENCH_BODY, strlen(BENCH_BODY));
  broker_batch_cleanup(&b);
}

static void valid_requests_declined(void **state) {
  (void)state;
  ce_limits l;
  ce_limits_init(&l);
  msg m;
  for (size_t i = 0; i < sizeof declined / sizeof declined[0]; i++) {
    CTX("%s", declined[i].what);
    build(&declined[i], &m);
    EXPECT_INT(both(&m, &l, 255), DECLINED_ACCEPTED);
  }
  /* A default TTL not above 0 (the checked path stamps it as it is). */
  build(&valid[0], &m);
  for (int32_t ttl = -1; ttl <= 0; ttl++) {
    CTX("default TTL %d", ttl);
    EXPECT_INT(both(&m, &l, ttl), DECLINED_ACCEPTED);
  }
}

static void invalid_requests_refused(void **state) {
  (void)state;
  ce_limits l;
  ce_limits_init(&l);
  msg m;
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    CTX("%s", invalid[i].what);
    build(&invalid[i], &m);
    EXPECT_INT(both(&m, &l, 255), DECLINED_REFUSED);
  }
  l.max_body = 16;
  l.max_headers = 6;
  l.max_header_size = 32;
  for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) {
    CTX("%s", large[i].what);
    build(&large[i], &m);
    EXPECT_INT(both(&m, &l, 255), DECLINED_REFUSED);
  }
  /* And just within those limits, taken. */
  CTX("at the limits");
  build(
      &(seed){
          "", {SV, ID, SRC, TY, "A:1", "ce-e:012345678901234567890123456"}, "0123456789abcdef", 0},
      &m);
  EXPECT_INT(both(&m, &l, 255), FAST_SAME);
}

#define TP_IDS "-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TP     "00" TP_IDS

/* The record's header name's value, or NULL. */
static const char *record_header(const broker_record *r, const char *name, size_t *len) {
  for (size_t i = 0; i < r->n_headers; i++)
    if (r->headers[i].name_len == strlen(name) && !memcmp(r->headers[i].name, name, strlen(name))) {
      *len = r->headers[i].value_len;
      return r->headers[i].value;
    }
  return NULL;
}

/* A request's W3C trace context: the fast path declines it, and the checked
 * path gives it to each event that has none of its own, valid ones only. */
static void trace_context(void **state) {
  (void)state;
  ce_limits l;
  ce_limits_init(&l);
  static const struct {
    seed s;
    const char *traceparent, *tracestate; /* what the record gets; NULL: none */
  } cases[] = {
      {{"both headers", {SV, ID, SRC, TY, "traceparent: " TP, "TraceState: rojo=00f067aa"}, "x", 0},
       TP,
       "rojo=00f067aa"},
      {{"traceparent alone", {SV, ID, SRC, TY, "Traceparent:" TP}, "x", 0}, TP, NULL},
      {{"a later version, one more field",
        {SV, ID, SRC, TY, "traceparent: 01" TP_IDS "-ab"},
        "x",
        0},
       "01" TP_IDS "-ab",
       NULL},
      {{"the event's own", {SV, ID, SRC, TY, "ce-traceparent: mine", "traceparent: " TP}, "x", 0},
       "mine",
       NULL},
      {{"a zero trace id",
        {SV, ID, SRC, TY, "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01",
         "tracestate: a=b"},
        "x",
        0},
       NULL,
       NULL},
      {{"upper-case hex",
        {SV, ID, SRC, TY, "traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"},
        "x",
        0},
       NULL,
       NULL},
      {{"version ff", {SV, ID, SRC, TY, "traceparent: ff" TP_IDS}, "x", 0}, NULL, NULL},
      {{"version 00, one more field", {SV, ID, SRC, TY, "traceparent: " TP "-ab"}, "x", 0},
       NULL,
       NULL},
      {{"one character short",
        {SV, ID, SRC, TY, "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"},
        "x",
        0},
       NULL,
       NULL},
      {{"a tracestate with a control character",
        {SV, ID, SRC, TY, "traceparent: " TP, "tracestate: a=\x01"},
        "x",
        0},
       TP,
       NULL},
  };
  msg m;
  ce_kv kv[MAX_H];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CTX("%s", cases[i].s.what);
    build(&cases[i].s, &m);
    EXPECT_INT(both(&m, &l, 255), DECLINED_ACCEPTED);
    size_t n = kvs(&m, kv), len = 0;
    broker_batch b = {0};
    ce_err err = {.index = -1};
    EXPECT_INT(broker__ingress_checked(kv, n, m.body, m.body_len, &l, 255, now, &b, &err), 1);
    const char *tp = record_header(&b.recs[0], "ce_traceparent", &len);
    if (cases[i].traceparent)
      EXPECT_MEM(tp, len, cases[i].traceparent, strlen(cases[i].traceparent));
    else
      EXPECT_TRUE(tp == NULL);
    const char *ts = record_header(&b.recs[0], "ce_tracestate", &len);
    if (cases[i].tracestate)
      EXPECT_MEM(ts, len, cases[i].tracestate, strlen(cases[i].tracestate));
    else
      EXPECT_TRUE(ts == NULL);
    broker_batch_cleanup(&b);
  }
  /* A batch: every event of it, but for the one with its own. */
  static const char batch[] =
      "[{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"},"
      "{\"specversion\":\"1.0\",\"id\":\"2\",\"source\":\"/s\",\"type\":\"t\","
      "\"traceparent\":\"mine\"},"
      "{\"specversion\":\"1.0\",\"id\":\"3\",\"source\":\"/s\",\"type\":\"t\"}]";
  const ce_kv h[] = {{"Content-Type", 12, "application/cloudevents-batch+json", 34},
                     {"traceparent", 11, TP, strlen(TP)}};
  broker_batch b = {0};
  ce_err err = {.index = -1};
  EXPECT_INT(broker__ingress_checked(h, 2, batch, strlen(batch), &l, 255, now, &b, &err), 3);
  const char *want[] = {TP, "mine", TP};
  for (size_t i = 0; i < 3; i++) {
    CTX("batch event %zu", i);
    size_t len = 0;
    const char *tp = record_header(&b.recs[i], "ce_traceparent", &len);
    EXPECT_MEM(tp, len, want[i], strlen(want[i]));
  }
  broker_batch_cleanup(&b);
}

/* ---- the mutation loop ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next(uint32_t bound) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng % bound);
}

/* Bytes that matter to some rule, more often than any byte. */
static char pick_byte(void) {
  static const char bytes[] = "%\"\\ \t019AaZzfFgG:/#[]-_.;=T+@?\x01\x7f\x80\xc3\xa9\xff\xed\xef";
  if (next(4) == 0) return (char)next(256);
  return bytes[next(sizeof bytes - 1)];
}

static void edit(char *s, size_t *len, size_t cap) {
  size_t at = *len ? next((uint32_t)*len) : 0;
  switch (next(4)) {
  case 0: /* change one byte */
    if (*len) s[at] = pick_byte();
    break;
  case 1: /* insert one */
    if (*len + 1 < cap) {
      memmove(s + at + 1, s + at, *len - at);
      s[at] = pick_byte();
      (*len)++;
    }
    break;
  case 2: /* delete one */
    if (*len) {
      memmove(s + at, s + at + 1, *len - at - 1);
      (*len)--;
    }
    break;
  default: /* cut */
    *len = at;
  }
}

/* A header some rule or the record treats apart, with a value from a pool
 * of good and bad ones, as one more header or replacing header i. */
static void special(msg *m, size_t i) {
  static const char *const names[] = {"ce-time",
                                      "ce-dataschema",
                                      "ce-source",
                                      "ce-knativebrokerttl",
                                      "ce-specversion",
                                      "ce-id",
                                      "ce-knativearrivaltime",
                                      "ce-partitionkey",
                                      "ce-subject",
                                      "ce-data",
                                      "ce-datacontenttype",
                                      "Content-Type",
                                      "ce-type",
                                      "ce-x"};
  static const char *const values[] = {"",
                                       " ",
                                       "0",
                                       "1",
                                       "255",
                                       "-1",
                                       "01",
                                       "1.0",
                                       "2026-11-22T03:31:00Z",
                                       "https://x/y",
                                       "/rel",
                                       "a b",
                                       "%41",
                                       "%zz",
                                       "text/plain",
                                       "application/cloudevents+json",
                                       "application/cloudevents-batch+json",
                                       "\"q\"",
                                       "caf%C3%A9"};
  if (i == m->n) {
    if (m->n == MAX_H) return;
    m->n++;
  }
  const char *n = names[next(sizeof names / sizeof names[0])];
  const char *v = values[next(sizeof values / sizeof values[0])];
  m->name_len[i] = strlen(n);
  memcpy(m->name[i], n, m->name_len[i]);
  m->value_len[i] = strlen(v);
  memcpy(m->value[i], v, m->value_len[i]);
}

static void mutate(msg *m) {
  size_t i = m->n ? next((uint32_t)m->n) : 0;
  switch (next(9)) {
  case 7: /* a special header more */
    special(m, m->n);
    break;
  case 8: /* one replaced by a special header */
    if (m->n) special(m, i);
    break;
  case 0:
  case 1:
    if (m->n) edit(m->value[i], &m->value_len[i], VALUE_MAX);
    break;
  case 2:
    if (m->n) edit(m->name[i], &m->name_len[i], NAME_MAX_);
    break;
  case 3: /* drop a header */
    if (m->n) {
      m->n--;
      memmove(m->name[i], m->name[i + 1], (m->n - i) * sizeof m->name[0]);
      memmove(m->name_len + i, m->name_len + i + 1, (m->n - i) * sizeof m->name_len[0]);
      memmove(m->value[i], m->value[i + 1], (m->n - i) * sizeof m->value[0]);
      memmove(m->value_len + i, m->value_len + i + 1, (m->n - i) * sizeof m->value_len[0]);
    }
    break;
  case 4: /* the same header again, sometimes with another name case */
    if (m->n && m->n < MAX_H) {
      memcpy(m->name[m->n], m->name[i], m->name_len[i]);
      m->name_len[m->n] = m->name_len[i];
      memcpy(m->value[m->n], m->value[i], m->value_len[i]);
      m->value_len[m->n] = m->value_len[i];
      if (next(2) && m->name_len[m->n]) m->name[m->n][0] ^= 0x20;
      m->n++;
    }
    break;
  case 5: /* change a name's case */
    if (m->n && m->name_len[i]) {
      size_t k = next((uint32_t)m->name_len[i]);
      m->name[i][k] ^= 0x20;
    }
    break;
  default:
    edit(m->body, &m->body_len, BODY_MAX);
  }
}

static void mutants_never_differ(void **state) {
  (void)state;
  ce_limits l;
  ce_limits_init(&l);
  size_t counts[3] = {0};
  msg m;
  enum { ROUNDS = 6000 };
  for (unsigned r = 0; r < ROUNDS; r++) {
    size_t s = next(sizeof valid / sizeof valid[0]);
    build(&valid[s], &m);
    unsigned edits = 1 + next(3);
    for (unsigned k = 0; k < edits; k++) mutate(&m);
    CTX("mutant %u of \"%s\"", r, valid[s].what);
    counts[both(&m, &l, ttls[next(sizeof ttls / sizeof ttls[0])])]++;
  }
  print_message("%u mutants: %zu taken by the fast path (same bytes), %zu declined and taken by "
                "the checked path, %zu refused\n",
                (unsigned)ROUNDS, counts[FAST_SAME], counts[DECLINED_ACCEPTED],
                counts[DECLINED_REFUSED]);
  /* The loop tells something only when it sees both sides. */
  EXPECT_TRUE(counts[FAST_SAME] > ROUNDS / 10);
  EXPECT_TRUE(counts[DECLINED_REFUSED] > ROUNDS / 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(valid_requests_same_record), T(bench_request_record), T(valid_requests_declined),
      T(invalid_requests_refused),   T(trace_context),        T(mutants_never_differ),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
