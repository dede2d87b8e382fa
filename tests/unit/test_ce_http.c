/*
 * test_ce_http.c — unit tests for the HTTP binding in core/ce_http.c: header
 * value percent-encoding and decoding (the spec's "Euro € 😀" vector both
 * ways, lower-case hex, overlong %C0%A0, bad escapes, quoted-strings,
 * whitespace), mode selection from Content-Type, binary-mode decoding
 * (header name case, required attributes, duplicates, Content-Type, empty
 * bodies), structured and batched decoding, the limits (body, header count,
 * header size; 64 KB and 1 MiB events), and encoding in all three modes with
 * round trips that must give equal events.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "core/ce.h"

#include "binding_headers.h"
#include "test_util.h"

#undef T
#define T(f) T_LIM(f)

#define REQ_HDRS                                                                                   \
  {"ce-specversion", "1.0"}, {"ce-id", "1"}, {"ce-source", "/src"}, {                              \
    "ce-type", "t"                                                                                 \
  }

/* Runs ce_http_decode on n headers (plus extra[0..n_extra) appended) and the
 * body; err is zeroed first. */
static int decode(const hp *h, size_t n, const hp *extra, size_t n_extra, const char *body,
                  size_t body_len, ce_batch *out, ce_err *err) {
  ce_kv *kv = hp_kv(h, n, extra, n_extra);
  memset(err, 0, sizeof *err);
  int rc = ce_http_decode(kv, n + n_extra, body, body_len, &lim, out, err);
  free(kv);
  return rc;
}

static void header_encode(void **state) {
  static const struct {
    const char *in, *want;
  } cases[] = {
      {EURO, EURO_ENC}, {"a\"b%c d", "a%22b%25c%20d"}, {"AZaz09-._~", "AZaz09-._~"}, {"", ""},
      {"%41", "%2541"},
  };
  for (size_t i = 0; i < NH(cases); i++) {
    CTX("encode \"%s\"", cases[i].in);
    ce_buf b;
    ce_buf_init(&b);
    EXPECT_RC(ce_buf_append_str(&b, ">"), 0);
    EXPECT_RC(ce_http_header_encode(cases[i].in, strlen(cases[i].in), &b), 0);
    EXPECT_MEM(b.data, b.len > 0 ? 1 : 0, ">", 1);
    EXPECT_MEM(b.data + 1, b.len - 1, cases[i].want, strlen(cases[i].want));
    ce_buf_cleanup(&b);
  }
  /* Every printable ASCII character: the encoding has no space, '"' or
   * character outside U+0021..U+007E, and decodes back to the input. */
  char all[96];
  for (int c = 0x20; c < 0x7f; c++) all[c - 0x20] = (char)c;
  ce_buf enc, dec;
  ce_buf_init(&enc);
  ce_buf_init(&dec);
  CTX("all printable ASCII");
  EXPECT_RC(ce_http_header_encode(all, 95, &enc), 0);
  for (size_t i = 0; i < enc.len; i++)
    EXPECT_TRUE(enc.data[i] > 0x20 && enc.data[i] < 0x7f && enc.data[i] != '"');
  EXPECT_RC(ce_http_header_decode(enc.data, enc.len, &dec), 0);
  EXPECT_MEM(dec.data, dec.len, all, 95);
  ce_buf_cleanup(&enc);
  ce_buf_cleanup(&dec);
}

static void header_decode(void **state) {
  static const struct {
    const char *in;
    int rc;
    const char *want;
  } cases[] = {
      {EURO_ENC, 0, EURO},
      {"Euro%20%e2%82%ac%20%f0%9f%98%80", 0, EURO},
      {"%41", 0, "A"},
      {"%2541", 0, "%41"}, /* decoded once */
      {"a%20b", 0, "a b"},
      {"plain", 0, "plain"},
      {"", 0, ""},
      {"  abc  ", 0, "abc"},
      {"\tabc\t", 0, "abc"},
      {"\"abc\"", 0, "abc"},
      {"\"a b\"", 0, "a b"},
      {"\"a\\\"b\"", 0, "a\"b"},
      {"\"%41\"", 0, "A"},
      {" \"x\" ", 0, "x"},
      {"%C0%A0", -EINVAL, NULL},
      {"%c0%a0", -EINVAL, NULL},
      {"%ED%A0%80", -EINVAL, NULL},
      {"%FF", -EINVAL, NULL},
      {"%E2%82", -EINVAL, NULL},
      {"\xff", -EINVAL, NULL},
      {"%4", -EINVAL, NULL},
      {"%", -EINVAL, NULL},
      {"%zz", -EINVAL, NULL},
      {"%4g", -EINVAL, NULL},
      {"a%", -EINVAL, NULL},
  };
  for (size_t i = 0; i < NH(cases); i++) {
    CTX("decode \"%s\"", cases[i].in);
    ce_buf b;
    ce_buf_init(&b);
    EXPECT_RC(ce_buf_append_str(&b, ">"), 0);
    EXPECT_RC(ce_http_header_decode(cases[i].in, strlen(cases[i].in), &b), cases[i].rc);
    if (cases[i].rc == 0) {
      EXPECT_MEM(b.data, 1, ">", 1);
      EXPECT_MEM(b.data + 1, b.len - 1, cases[i].want, strlen(cases[i].want));
    }
    ce_buf_cleanup(&b);
  }
}

static void mode(void **state) {
  static const struct {
    const char *ct;
    int want;
  } cases[] = {
      {NULL, CE_MODE_BINARY},
      {"application/json", CE_MODE_BINARY},
      {"text/plain; charset=utf-8", CE_MODE_BINARY},
      {"application/cloudevents+json", CE_MODE_STRUCTURED},
      {"Application/CloudEvents+JSON; charset=utf-8", CE_MODE_STRUCTURED},
      {"APPLICATION/CLOUDEVENTS+JSON", CE_MODE_STRUCTURED},
      {"application/cloudevents-batch+json", CE_MODE_BATCH},
      {"Application/CloudEvents-Batch+JSON; charset=UTF-8", CE_MODE_BATCH},
      {"application/cloudevents+avro", -ENOTSUP},
      {"application/cloudevents+protobuf", -ENOTSUP},
      {"application/cloudevents-batch+avro", -ENOTSUP},
  };
  for (size_t i = 0; i < NH(cases); i++) {
    CTX("mode of %s", cases[i].ct ? cases[i].ct : "(none)");
    EXPECT_RC(ce_http_mode(cases[i].ct, cases[i].ct ? strlen(cases[i].ct) : 0), cases[i].want);
  }
}

static void decode_binary(void **state) {
  static const hp h[] = {{"Host", "example.com"},
                         {"CE-SpecVersion", "1.0"},
                         {"ce-ID", "A234-1234-1234"},
                         {"Ce-Source", "https://example.com/src"},
                         {"ce-type", "com.example.t"},
                         {"ce-subject", EURO_ENC},
                         {"ce-time", "2018-04-05T17:31:00Z"},
                         {"CE-MYEXT", "\"quoted value\""},
                         {"ce-count", "42"},
                         {"Content-Type", "text/plain; charset=utf-8"},
                         {"X-Other", "ignored"}};
  ce_batch b;
  ce_batch_init(&b);
  ce_batch_push(&b, ce_event_new());
  ce_err err;
  EXPECT_RC(decode(h, NH(h), NULL, 0, "hello", 5, &b, &err), CE_MODE_BINARY);
  EXPECT_INT(b.n, 2);
  ce_event *ev = b.ev[1];
  EXPECT_INT(ce_event_attr_count(ev), 9);
  EXPECT_STR(ce_event_get_str(ev, "specversion"), "1.0");
  EXPECT_STR(ce_event_get_str(ev, "id"), "A234-1234-1234");
  EXPECT_STR(ce_event_get_str(ev, "source"), "https://example.com/src");
  EXPECT_STR(ce_event_get_str(ev, "type"), "com.example.t");
  EXPECT_STR(ce_event_get_str(ev, "subject"), EURO);
  EXPECT_INT(ce_event_get(ev, "time")->type, CE_TYPE_TIMESTAMP);
  EXPECT_STR(ce_event_get_str(ev, "myext"), "quoted value");
  int32_t n = 0;
  EXPECT_RC(ce_event_get_int(ev, "count", &n), 0);
  EXPECT_INT(n, 42);
  EXPECT_STR(ce_event_get_str(ev, "datacontenttype"), "text/plain; charset=utf-8");
  EXPECT_TRUE(ce_event_get(ev, "host") == NULL && ce_event_get(ev, "xother") == NULL);
  size_t len;
  const uint8_t *d = ce_event_data(ev, &len);
  EXPECT_MEM(d, len, "hello", 5);
  ce_batch_cleanup(&b);
}

static void decode_binary_data(void **state) {
  static const hp req[] = {REQ_HDRS};
  static const hp json[] = {{"content-type", "application/json"}};
  ce_batch b;
  ce_batch_init(&b);
  ce_err err;
  CTX("empty body: no data");
  EXPECT_RC(decode(req, NH(req), json, 1, "", 0, &b, &err), CE_MODE_BINARY);
  EXPECT_TRUE(!ce_event_has_data(b.ev[0]));
  EXPECT_STR(ce_event_get_str(b.ev[0], "datacontenttype"), "application/json");
  CTX("body without Content-Type");
  EXPECT_RC(decode(req, NH(req), NULL, 0, "\x00\x01", 2, &b, &err), CE_MODE_BINARY);
  EXPECT_TRUE(ce_event_get(b.ev[1], "datacontenttype") == NULL);
  size_t len;
  const uint8_t *d = ce_event_data(b.ev[1], &len);
  EXPECT_MEM(d, len, "\x00\x01", 2);
  CTX("JSON body kept as bytes");
  EXPECT_RC(decode(req, NH(req), json, 1, "{\"a\": 1}", 8, &b, &err), CE_MODE_BINARY);
  d = ce_event_data(b.ev[2], &len);
  EXPECT_MEM(d, len, "{\"a\": 1}", 8);
  ce_batch_cleanup(&b);
}

static void decode_binary_required(void **state) {
  static const hp all[] = {REQ_HDRS};
  for (size_t miss = 0; miss < 4; miss++) {
    for (int empty = 0; empty < 2; empty++) {
      CTX("%s %s", empty ? "empty" : "without", hp_required_attr[miss]);
      hp h[4];
      size_t n = hp_required_but(all, miss, empty, h);
      ce_batch b;
      ce_batch_init(&b);
      ce_err err;
      EXPECT_RC(decode(h, n, NULL, 0, "x", 1, &b, &err), -EINVAL);
      EXPECT_STR(err.attr, hp_required_attr[miss]);
      EXPECT_TRUE(err.reason[0] != '\0');
      EXPECT_INT(err.index, -1);
      EXPECT_INT(b.n, 0);
      ce_batch_cleanup(&b);
    }
  }
}

static void decode_binary_invalid(void **state) {
  static const hp req[] = {REQ_HDRS};
  static const struct {
    hp extra[2];
    size_t n;
    const char *attr;  /* NULL: not checked */
    const char *attr2; /* also accepted: the header name */
  } cases[] = {
      {{{"ce-subject", "%C0%A0"}}, 1, "subject", "ce-subject"},
      {{{"ce-subject", "%4"}}, 1, "subject", "ce-subject"},
      {{{"ce-subject", "%zz"}}, 1, "subject", "ce-subject"},
      {{{"ce-subject", "a%01b"}}, 1, "subject", "ce-subject"},
      {{{"ce-time", "yesterday"}}, 1, "time", "ce-time"},
      {{{"ce-dataschema", "no-scheme"}}, 1, "dataschema", "ce-dataschema"},
      {{{"ce-id", "2"}}, 1, "id", "ce-id"},
      {{{"CE-ID", "1"}}, 1, "id", "CE-ID"},
      {{{"ce-ext", "a"}, {"ce-ext", "a"}}, 2, "ext", "ce-ext"},
      {{{"ce-data", "x"}}, 1, "data", "ce-data"},
      {{{"ce-my_ext", "x"}}, 1, "my_ext", "ce-my_ext"},
      {{{"ce-my.ext", "x"}}, 1, "my.ext", "ce-my.ext"},
      {{{"content-type", "not a media type"}}, 1, "datacontenttype", "content-type"},
  };
  for (size_t i = 0; i < NH(cases); i++) {
    CTX("%s: %s", cases[i].extra[0].n, cases[i].extra[0].v);
    ce_batch b;
    ce_batch_init(&b);
    ce_err err;
    EXPECT_RC(decode(req, NH(req), cases[i].extra, cases[i].n, "", 0, &b, &err), -EINVAL);
    if (strcmp(err.attr, cases[i].attr2) != 0) EXPECT_STR(err.attr, cases[i].attr);
    EXPECT_INT(b.n, 0);
    ce_batch_cleanup(&b);
  }
  static const struct {
    hp h;
    const char *attr;
  } sv[] = {{{"ce-specversion", "0.3"}, "specversion"},
            {{"ce-specversion", "2.0"}, "specversion"},
            {{"ce-source", "a%20b"}, "source"}};
  for (size_t i = 0; i < NH(sv); i++) {
    CTX("%s: %s", sv[i].h.n, sv[i].h.v);
    hp h[4];
    for (size_t k = 0; k < 4; k++) h[k] = strcmp(req[k].n, sv[i].h.n) ? req[k] : sv[i].h;
    ce_batch b;
    ce_batch_init(&b);
    ce_err err;
    EXPECT_RC(decode(h, 4, NULL, 0, "", 0, &b, &err), -EINVAL);
    EXPECT_STR(err.attr, sv[i].attr);
    ce_batch_cleanup(&b);
  }
}

static char *filled(size_t n, char c) {
  char *s = malloc(n + 1);
  assert_non_null(s);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

static void decode_limits(void **state) {
  static const hp req[] = {REQ_HDRS};
  ce_batch b;
  ce_batch_init(&b);
  ce_err err;

  CTX("body of max_body and max_body + 1 bytes");
  lim.max_body = 10;
  EXPECT_RC(decode(req, 4, NULL, 0, "0123456789", 10, &b, &err), CE_MODE_BINARY);
  EXPECT_RC(decode(req, 4, NULL, 0, "0123456789a", 11, &b, &err), -EMSGSIZE);
  EXPECT_INT(b.n, 1);
  ce_limits_init(&lim);

  /* In binary mode the body is the data: 1 MiB of data is exactly max_body,
   * which is allowed ("over max_body" is refused); one byte more is not. */
  CTX("64 KB, 1 MiB and 1 MiB + 1 bytes of data, then a 4 MiB limit");
  char *body = filled(1048577, 'b');
  EXPECT_RC(decode(req, 4, NULL, 0, body, 65536, &b, &err), CE_MODE_BINARY);
  EXPECT_RC(decode(req, 4, NULL, 0, body, 1048576, &b, &err), CE_MODE_BINARY);
  EXPECT_RC(decode(req, 4, NULL, 0, body, 1048577, &b, &err), -EMSGSIZE);
  EXPECT_INT(b.n, 3);
  lim.max_body = 4u << 20;
  EXPECT_RC(decode(req, 4, NULL, 0, body, 1048577, &b, &err), CE_MODE_BINARY);
  ce_limits_init(&lim);
  size_t len;
  ce_event_data(b.ev[1], &len);
  EXPECT_INT(len, 65536);
  ce_event_data(b.ev[2], &len);
  EXPECT_INT(len, 1048576);
  free(body);

  CTX("100 headers, then 101");
  hp *many = calloc(97, sizeof *many);
  for (size_t i = 0; i < 97; i++) many[i] = (hp){"X-Filler", "1"};
  EXPECT_RC(decode(req, 4, many, 96, "", 0, &b, &err), CE_MODE_BINARY);
  EXPECT_RC(decode(req, 4, many, 97, "", 0, &b, &err), -E2BIG);
  lim.max_headers = 5;
  EXPECT_RC(decode(req, 4, many, 1, "", 0, &b, &err), CE_MODE_BINARY);
  EXPECT_RC(decode(req, 4, many, 2, "", 0, &b, &err), -E2BIG);
  free(many);
  ce_limits_init(&lim);

  CTX("a header of 8192 bytes (name + value), then 8193");
  char *v = filled(8192 - strlen("ce-subject") + 1, 'v');
  hp big = {"ce-subject", v};
  EXPECT_RC(decode(req, 4, &big, 1, "", 0, &b, &err), -E2BIG);
  v[8192 - strlen("ce-subject")] = '\0';
  EXPECT_RC(decode(req, 4, &big, 1, "", 0, &b, &err), CE_MODE_BINARY);
  big.n = "X-Not-A-Ce-Header"; /* every header counts */
  v[8192 - strlen(big.n)] = 'v';
  EXPECT_RC(decode(req, 4, &big, 1, "", 0, &b, &err), -E2BIG);
  free(v);
  EXPECT_INT(b.n, 7);
  ce_batch_cleanup(&b);
}

/* The structured body for the event of new_min(). */
#define MIN_JSON "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/src\",\"type\":\"t\"}"

static void decode_structured(void **state) {
  static const char *cts[] = {"application/cloudevents+json",
                              "Application/CloudEvents+JSON; charset=utf-8",
                              "application/cloudevents+json;charset=UTF-8"};
  ce_event *want = new_min();
  for (size_t i = 0; i < NH(cts); i++) {
    CTX("Content-Type: %s", cts[i]);
    hp h[] = {{"Content-Type", cts[i]}};
    ce_batch b;
    ce_batch_init(&b);
    ce_err err;
    EXPECT_RC(decode(h, 1, NULL, 0, MIN_JSON, strlen(MIN_JSON), &b, &err), CE_MODE_STRUCTURED);
    EXPECT_INT(b.n, 1);
    EXPECT_TRUE(ce_event_equal(b.ev[0], want));
    ce_batch_cleanup(&b);
  }
  ce_event_free(want);

  static const struct {
    const char *ct, *body;
    int rc;
  } bad[] = {
      {"application/cloudevents+avro", MIN_JSON, -ENOTSUP},
      {"application/cloudevents+json; charset=iso-8859-1", MIN_JSON, -ENOTSUP},
      {"application/cloudevents+json", "{", -EINVAL},
      {"application/cloudevents+json", "", -EINVAL},
      {"application/cloudevents+json", "[" MIN_JSON "]", -EINVAL},
      {"application/cloudevents+json", "{\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}", -EINVAL},
  };
  for (size_t i = 0; i < NH(bad); i++) {
    CTX("%s with %s", bad[i].ct, bad[i].body);
    hp h[] = {{"content-type", bad[i].ct}};
    ce_batch b;
    ce_batch_init(&b);
    ce_err err;
    EXPECT_RC(decode(h, 1, NULL, 0, bad[i].body, strlen(bad[i].body), &b, &err), bad[i].rc);
    EXPECT_INT(b.n, 0);
    ce_batch_cleanup(&b);
  }

  /* A structured message and a one-event batch around 64 KB and 1 MiB of
   * text data: the first fits the default limits, the second does not. */
  static const char head[] =
      "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
      "\"datacontenttype\":\"text/plain\",\"data\":\"";
  static const size_t sizes[] = {65536, 1048576};
  static const char *media[] = {CE_MEDIA_JSON, CE_MEDIA_BATCH};
  char *body = malloc(sizeof head + 1048576 + 8);
  assert_non_null(body);
  for (size_t i = 0; i < 4; i++) {
    size_t n = sizes[i % 2], len = 0;
    bool batch = i >= 2;
    CTX("%s, %zu bytes of data", media[batch], n);
    if (batch) body[len++] = '[';
    memcpy(body + len, head, sizeof head - 1);
    len += sizeof head - 1;
    memset(body + len, 'x', n);
    len += n;
    memcpy(body + len, batch ? "\"}]" : "\"}", batch ? 3 : 2);
    len += batch ? 3 : 2;
    hp h[] = {{"Content-Type", media[batch]}};
    int mode_want = batch ? CE_MODE_BATCH : CE_MODE_STRUCTURED;
    ce_batch b;
    ce_batch_init(&b);
    ce_err err;
    ce_limits_init(&lim);
    EXPECT_RC(decode(h, 1, NULL, 0, body, len, &b, &err), n == 65536 ? mode_want : -EMSGSIZE);
    lim.max_body = 4u << 20;
    if (n != 65536) EXPECT_RC(decode(h, 1, NULL, 0, body, len, &b, &err), mode_want);
    EXPECT_INT(b.n, 1);
    size_t dlen = 0;
    ce_event_data(b.ev[0], &dlen);
    EXPECT_INT(dlen, n);
    ce_batch_cleanup(&b);
  }
  free(body);
}

static void decode_batch(void **state) {
  static const hp h[] = {{"Content-Type", "application/cloudevents-batch+json"}};
  static const char two[] = "[" MIN_JSON "," MIN_JSON "]";
  ce_batch b;
  ce_batch_init(&b);
  ce_err err;
  EXPECT_RC(decode(h, 1, NULL, 0, two, sizeof two - 1, &b, &err), CE_MODE_BATCH);
  EXPECT_INT(b.n, 2);
  EXPECT_RC(decode(h, 1, NULL, 0, "[]", 2, &b, &err), CE_MODE_BATCH);
  EXPECT_INT(b.n, 2);
  static const char bad[] = "[" MIN_JSON "," MIN_JSON ",{\"specversion\":\"1.0\"}]";
  EXPECT_RC(decode(h, 1, NULL, 0, bad, sizeof bad - 1, &b, &err), -EINVAL);
  EXPECT_INT(err.index, 2);
  EXPECT_INT(b.n, 2);
  EXPECT_RC(decode(h, 1, NULL, 0, MIN_JSON, strlen(MIN_JSON), &b, &err), -EINVAL);
  EXPECT_INT(b.n, 2);
  ce_batch_cleanup(&b);
}

/* Encodes ev in mode, then decodes the result and expects an equal event. */
static void round_trip(const ce_event *ev, ce_mode m, ce_headers *h, ce_buf *body) {
  ce_err err;
  memset(&err, 0, sizeof err);
  int rc = ce_http_encode(ev, m, h, body, &err);
  if (rc) fail_msg("%s%sencode: rc %d (%s) attr \"%s\"", WHERE, rc, errname(rc), err.attr);
  ce_batch b;
  ce_batch_init(&b);
  rc = ce_http_decode(h->items, h->n, body->data, body->len, &lim, &b, &err);
  if (rc != (int)m) fail_msg("%s%sdecode: rc %d attr \"%s\": %s", WHERE, rc, err.attr, err.reason);
  EXPECT_INT(b.n, 1);
  EXPECT_TRUE(ce_event_equal(ev, b.ev[0]));
  ce_batch_cleanup(&b);
}

static void encode_binary(void **state) {
  ce_event *ev = new_min();
  EXPECT_RC(ce_event_set_str(ev, "subject", EURO, NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "myext", "a\"b%c d", NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "time", "2018-04-05T17:31:00Z", NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "datacontenttype", "text/plain", NULL), 0);
  EXPECT_RC(ce_event_set_data(ev, "hi", 2), 0);
  ce_headers h;
  ce_buf body;
  ce_headers_init(&h);
  ce_buf_init(&body);
  round_trip(ev, CE_MODE_BINARY, &h, &body);
  static const struct {
    const char *name, *value;
  } want[] = {{"ce-specversion", "1.0"},     {"ce-id", "1"},
              {"ce-source", "/src"},         {"ce-type", "t"},
              {"ce-subject", EURO_ENC},      {"ce-myext", "a%22b%25c%20d"},
              {"content-type", "text/plain"}};
  for (size_t i = 0; i < NH(want); i++) {
    CTX("header %s", want[i].name);
    const ce_kv *kv = ce_headers_find(&h, want[i].name);
    EXPECT_STR(kv ? kv->value : NULL, want[i].value);
  }
  CTX("binary headers");
  EXPECT_TRUE(ce_headers_find(&h, "ce-datacontenttype") == NULL);
  EXPECT_TRUE(ce_headers_find(&h, "ce-time") != NULL);
  EXPECT_INT(h.n, 8);
  EXPECT_MEM(body.data, body.len, "hi", 2);

  CTX("typed extensions and no data");
  ce_event_free(ev);
  ev = new_min();
  EXPECT_RC(ce_event_set_int(ev, "count", -42, NULL), 0);
  EXPECT_RC(ce_event_set_bool(ev, "flag", true, NULL), 0);
  ce_headers_reset(&h);
  ce_buf_reset(&body);
  EXPECT_RC(ce_http_encode(ev, CE_MODE_BINARY, &h, &body, NULL), 0);
  EXPECT_STR(ce_headers_find(&h, "ce-count")->value, "-42");
  EXPECT_STR(ce_headers_find(&h, "ce-flag")->value, "true");
  EXPECT_TRUE(ce_headers_find(&h, "content-type") == NULL);
  EXPECT_INT(body.len, 0);

  CTX("a CloudEvents format as datacontenttype cannot go in binary mode");
  EXPECT_RC(ce_event_set_str(ev, "datacontenttype", "application/cloudevents+json", NULL), 0);
  EXPECT_RC(ce_event_set_data(ev, "{}", 2), 0);
  ce_headers_reset(&h);
  ce_buf_reset(&body);
  ce_err err;
  EXPECT_RC(ce_http_encode(ev, CE_MODE_BINARY, &h, &body, &err), -EINVAL);
  EXPECT_STR(err.attr, "datacontenttype");
  EXPECT_INT(h.n, 0);
  EXPECT_RC(ce_http_encode(ev, CE_MODE_STRUCTURED, &h, &body, NULL), 0);
  ce_event_free(ev);
  ce_headers_cleanup(&h);
  ce_buf_cleanup(&body);
}

static void encode_structured_and_batch(void **state) {
  ce_event *evs[2] = {new_min(), new_min()};
  EXPECT_RC(ce_event_set_str(evs[1], "subject", EURO, NULL), 0);
  EXPECT_RC(ce_event_set_data(evs[1], "{\"a\": [1, 2]}", 13), 0);
  ce_headers h;
  ce_buf body;
  ce_headers_init(&h);
  ce_buf_init(&body);
  CTX("structured");
  round_trip(evs[1], CE_MODE_STRUCTURED, &h, &body);
  const ce_kv *ct = ce_headers_find(&h, "content-type");
  assert_non_null(ct);
  EXPECT_TRUE(strncasecmp(ct->value, CE_MEDIA_JSON, strlen(CE_MEDIA_JSON)) == 0);
  cJSON *o = cJSON_ParseWithLength(body.data, body.len);
  EXPECT_TRUE(cJSON_IsObject(o));
  EXPECT_TRUE(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "data")));
  cJSON_Delete(o);

  CTX("batch");
  ce_headers_reset(&h);
  ce_buf_reset(&body);
  ce_err err;
  EXPECT_RC(ce_http_encode_batch(evs, 2, &h, &body, &err), 0);
  ct = ce_headers_find(&h, "content-type");
  assert_non_null(ct);
  EXPECT_TRUE(strncasecmp(ct->value, CE_MEDIA_BATCH, strlen(CE_MEDIA_BATCH)) == 0);
  ce_batch b;
  ce_batch_init(&b);
  EXPECT_RC(ce_http_decode(h.items, h.n, body.data, body.len, &lim, &b, &err), CE_MODE_BATCH);
  EXPECT_INT(b.n, 2);
  EXPECT_TRUE(b.n == 2 && ce_event_equal(b.ev[0], evs[0]) && ce_event_equal(b.ev[1], evs[1]));
  ce_batch_cleanup(&b);

  CTX("invalid event");
  EXPECT_RC(ce_event_unset(evs[0], "type"), 0);
  static const ce_mode modes[] = {CE_MODE_BINARY, CE_MODE_STRUCTURED};
  for (size_t i = 0; i < 2; i++) {
    ce_headers_reset(&h);
    ce_buf_reset(&body);
    memset(&err, 0, sizeof err);
    EXPECT_RC(ce_http_encode(evs[0], modes[i], &h, &body, &err), -EINVAL);
    EXPECT_STR(err.attr, "type");
  }
  memset(&err, 0, sizeof err);
  EXPECT_RC(ce_http_encode_batch(evs, 2, &h, &body, &err), -EINVAL);
  EXPECT_STR(err.attr, "type");
  EXPECT_INT(err.index, 0);
  ce_event_free(evs[0]);
  ce_event_free(evs[1]);
  ce_headers_cleanup(&h);
  ce_buf_cleanup(&body);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(header_encode),         T(header_decode),      T(mode),
      T(decode_binary),         T(decode_binary_data), T(decode_binary_required),
      T(decode_binary_invalid), T(decode_limits),      T(decode_structured),
      T(decode_batch),          T(encode_binary),      T(encode_structured_and_batch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
