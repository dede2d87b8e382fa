/*
 * test_ce_kafka.c — unit tests for the Kafka binding in core/ce_kafka.c.
 * Binary mode: ce_<name> headers with raw UTF-8 values (no percent-decoding),
 * the content-type header as datacontenttype, tombstones (no value: no data)
 * versus an empty value (empty data), every required attribute missing or
 * empty, bad values and duplicates. Structured mode: the JSON format under
 * content-type application/cloudevents+json. Size limits for 64 KB and 1 MiB
 * events. Encoding: headers, key from the partitionkey extension, has_key
 * and has_value, and round trips that must give equal events.
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

#include <cmocka.h>

#include "core/ce.h"

#include "binding_headers.h"
#include "test_util.h"

#undef T
#define T(f) T_LIM(f)

#define REQ_HDRS                                                                                   \
  {"ce_specversion", "1.0"}, {"ce_id", "1"}, {"ce_source", "/src"}, {                              \
    "ce_type", "t"                                                                                 \
  }

/* Runs ce_kafka_decode on h[0..n) + extra[0..n_extra); value may be NULL. */
static int decode(const hp *h, size_t n, const hp *extra, size_t n_extra, const char *value,
                  size_t value_len, ce_event **out, ce_err *err) {
  ce_kv *kv = hp_kv(h, n, extra, n_extra);
  memset(err, 0, sizeof *err);
  *out = NULL;
  int rc = ce_kafka_decode(kv, n + n_extra, value, value_len, &lim, out, err);
  free(kv);
  return rc;
}

static void decode_binary(void **state) {
  static const hp h[] = {REQ_HDRS,
                         {"ce_subject", EURO},
                         {"ce_pct", "%41%20"},
                         {"ce_quoted", "\"q\""},
                         {"ce_count", "42"},
                         {"ce_time", "2018-04-05T17:31:00Z"},
                         {"content-type", "text/plain"},
                         {"other", "ignored"}};
  ce_event *ev;
  ce_err err;
  EXPECT_RC(decode(h, NH(h), NULL, 0, "hello", 5, &ev, &err), CE_MODE_BINARY);
  assert_non_null(ev);
  EXPECT_INT(ce_event_attr_count(ev), 10);
  EXPECT_STR(ce_event_get_str(ev, "id"), "1");
  EXPECT_STR(ce_event_get_str(ev, "source"), "/src");
  EXPECT_INT(ce_event_get(ev, "source")->type, CE_TYPE_URI_REF);
  EXPECT_STR(ce_event_get_str(ev, "subject"), EURO);
  EXPECT_STR(ce_event_get_str(ev, "pct"), "%41%20"); /* raw, no percent-decoding */
  EXPECT_STR(ce_event_get_str(ev, "quoted"), "\"q\"");
  int32_t n = 0;
  EXPECT_RC(ce_event_get_int(ev, "count", &n), 0);
  EXPECT_INT(n, 42);
  EXPECT_INT(ce_event_get(ev, "time")->type, CE_TYPE_TIMESTAMP);
  EXPECT_STR(ce_event_get_str(ev, "datacontenttype"), "text/plain");
  EXPECT_TRUE(ce_event_get(ev, "other") == NULL);
  size_t len;
  const uint8_t *d = ce_event_data(ev, &len);
  EXPECT_MEM(d, len, "hello", 5);
  ce_event_free(ev);
}

static void decode_binary_value(void **state) {
  static const hp h[] = {REQ_HDRS};
  ce_event *ev;
  ce_err err;
  CTX("tombstone");
  EXPECT_RC(decode(h, 4, NULL, 0, NULL, 0, &ev, &err), CE_MODE_BINARY);
  EXPECT_TRUE(!ce_event_has_data(ev));
  EXPECT_TRUE(ce_event_data(ev, NULL) == NULL);
  ce_event_free(ev);
  CTX("empty value");
  EXPECT_RC(decode(h, 4, NULL, 0, "", 0, &ev, &err), CE_MODE_BINARY);
  EXPECT_TRUE(ce_event_has_data(ev));
  size_t len = 99;
  EXPECT_TRUE(ce_event_data(ev, &len) != NULL);
  EXPECT_INT(len, 0);
  ce_event_free(ev);
  CTX("binary bytes");
  EXPECT_RC(decode(h, 4, NULL, 0, "\x00\xff\x00", 3, &ev, &err), CE_MODE_BINARY);
  const uint8_t *d = ce_event_data(ev, &len);
  EXPECT_MEM(d, len, "\x00\xff\x00", 3);
  ce_event_free(ev);
}

static void decode_binary_required(void **state) {
  static const hp all[] = {REQ_HDRS};
  for (size_t miss = 0; miss < 4; miss++) {
    for (int empty = 0; empty < 2; empty++) {
      CTX("%s %s", empty ? "empty" : "without", hp_required_attr[miss]);
      hp h[4];
      size_t n = hp_required_but(all, miss, empty, h);
      ce_event *ev;
      ce_err err;
      EXPECT_RC(decode(h, n, NULL, 0, "x", 1, &ev, &err), -EINVAL);
      EXPECT_TRUE(ev == NULL);
      EXPECT_STR(err.attr, hp_required_attr[miss]);
      EXPECT_TRUE(err.reason[0] != '\0');
      EXPECT_INT(err.index, -1);
    }
  }
}

static void decode_binary_invalid(void **state) {
  static const hp req[] = {REQ_HDRS};
  static const struct {
    hp extra[2];
    size_t n;
    const char *attr, *attr2; /* attr2: the header name, also accepted */
  } cases[] = {
      {{{"ce_subject", "\xc0\xa0"}}, 1, "subject", "ce_subject"},
      {{{"ce_subject", "\xff"}}, 1, "subject", "ce_subject"},
      {{{"ce_subject", "a\x01"}}, 1, "subject", "ce_subject"},
      {{{"ce_time", "2019-02-29T00:00:00Z"}}, 1, "time", "ce_time"},
      {{{"ce_dataschema", "no-scheme"}}, 1, "dataschema", "ce_dataschema"},
      {{{"ce_source", "a b"}}, 1, "source", "ce_source"},
      {{{"ce_id", "2"}}, 1, "id", "ce_id"},
      {{{"ce_ext", "a"}, {"ce_ext", "b"}}, 2, "ext", "ce_ext"},
      {{{"ce_data", "x"}}, 1, "data", "ce_data"},
      {{{"ce_my-ext", "x"}}, 1, "my-ext", "ce_my-ext"},
      {{{"content-type", "not a media type"}}, 1, "datacontenttype", "content-type"},
  };
  for (size_t i = 0; i < NH(cases); i++) {
    CTX("%s: %s", cases[i].extra[0].n, cases[i].extra[0].v);
    ce_event *ev;
    ce_err err;
    EXPECT_RC(decode(req, 4, cases[i].extra, cases[i].n, "x", 1, &ev, &err), -EINVAL);
    EXPECT_TRUE(ev == NULL);
    if (strcmp(err.attr, cases[i].attr2) != 0) EXPECT_STR(err.attr, cases[i].attr);
  }
  static const char *sv[] = {"0.3", "2.0", "1.0 "};
  for (size_t i = 0; i < NH(sv); i++) {
    CTX("ce_specversion \"%s\"", sv[i]);
    hp h[] = {{"ce_specversion", sv[i]}, {"ce_id", "1"}, {"ce_source", "/s"}, {"ce_type", "t"}};
    ce_event *ev;
    ce_err err;
    EXPECT_RC(decode(h, 4, NULL, 0, NULL, 0, &ev, &err), -EINVAL);
    EXPECT_STR(err.attr, "specversion");
  }
}

#define MIN_JSON "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/src\",\"type\":\"t\"}"

static void decode_structured(void **state) {
  static const char *cts[] = {"application/cloudevents+json",
                              "Application/CloudEvents+JSON; charset=utf-8"};
  ce_event *want = new_min();
  for (size_t i = 0; i < NH(cts); i++) {
    CTX("content-type %s", cts[i]);
    hp h[] = {{"content-type", cts[i]}};
    ce_event *ev;
    ce_err err;
    EXPECT_RC(decode(h, 1, NULL, 0, MIN_JSON, strlen(MIN_JSON), &ev, &err), CE_MODE_STRUCTURED);
    EXPECT_TRUE(ev != NULL && ce_event_equal(ev, want));
    ce_event_free(ev);
  }
  ce_event_free(want);
  static const struct {
    const char *ct, *value;
    int rc;
  } bad[] = {
      {"application/cloudevents+avro", MIN_JSON, -ENOTSUP},
      {"application/cloudevents+json", NULL, -EINVAL},
      {"application/cloudevents+json", "", -EINVAL},
      {"application/cloudevents+json", "{\"id\":\"1\"}", -EINVAL},
      {"application/cloudevents+json", "not json", -EINVAL},
  };
  for (size_t i = 0; i < NH(bad); i++) {
    CTX("%s with %s", bad[i].ct, bad[i].value ? bad[i].value : "no value");
    hp h[] = {{"content-type", bad[i].ct}};
    ce_event *ev;
    ce_err err;
    EXPECT_RC(
        decode(h, 1, NULL, 0, bad[i].value, bad[i].value ? strlen(bad[i].value) : 0, &ev, &err),
        bad[i].rc);
    EXPECT_TRUE(ev == NULL);
  }
}

static void decode_sizes(void **state) {
  static const hp req[] = {REQ_HDRS};
  size_t big = 1048577;
  char *value = malloc(big + 256);
  assert_non_null(value);
  memset(value, 'k', big);
  ce_event *ev;
  ce_err err;
  size_t len;
  CTX("binary, 64 KB");
  EXPECT_RC(decode(req, 4, NULL, 0, value, 65536, &ev, &err), CE_MODE_BINARY);
  ce_event_data(ev, &len);
  EXPECT_INT(len, 65536);
  ce_event_free(ev);
  CTX("binary, exactly max_body");
  EXPECT_RC(decode(req, 4, NULL, 0, value, 1048576, &ev, &err), CE_MODE_BINARY);
  ce_event_free(ev);
  CTX("binary, max_body + 1");
  EXPECT_RC(decode(req, 4, NULL, 0, value, big, &ev, &err), -EMSGSIZE);
  EXPECT_TRUE(ev == NULL);
  lim.max_body = 4u << 20;
  EXPECT_RC(decode(req, 4, NULL, 0, value, big, &ev, &err), CE_MODE_BINARY);
  ce_event_free(ev);
  ce_limits_init(&lim);

  /* Structured: the envelope around 64 KB / 1 MiB of text data. */
  static const char head[] =
      "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
      "\"datacontenttype\":\"text/plain\",\"data\":\"";
  static const size_t sizes[] = {65536, 1048576};
  static const hp ct[] = {{"content-type", CE_MEDIA_JSON}};
  for (size_t i = 0; i < 2; i++) {
    CTX("structured, %zu bytes of data", sizes[i]);
    size_t n = sizes[i], vlen = sizeof head - 1 + n + 2;
    memcpy(value, head, sizeof head - 1);
    memset(value + sizeof head - 1, 'k', n);
    memcpy(value + vlen - 2, "\"}", 2);
    ce_limits_init(&lim);
    int rc = decode(ct, 1, NULL, 0, value, vlen, &ev, &err);
    EXPECT_RC(rc, i == 0 ? CE_MODE_STRUCTURED : -EMSGSIZE);
    ce_event_free(ev);
    lim.max_body = 4u << 20;
    EXPECT_RC(decode(ct, 1, NULL, 0, value, vlen, &ev, &err), CE_MODE_STRUCTURED);
    ce_event_data(ev, &len);
    EXPECT_INT(len, n);
    ce_event_free(ev);
  }
  free(value);
}

/* Everything ce_kafka_encode produces. */
typedef struct rec {
  ce_headers h;
  ce_buf key, value;
  bool has_key, has_value;
} rec;

static int encode(const ce_event *ev, ce_mode m, rec *r, ce_err *err) {
  ce_headers_init(&r->h);
  ce_buf_init(&r->key);
  ce_buf_init(&r->value);
  r->has_key = r->has_value = true;
  if (err) memset(err, 0, sizeof *err);
  return ce_kafka_encode(ev, m, &r->h, &r->key, &r->has_key, &r->value, &r->has_value, err);
}

static void rec_cleanup(rec *r) {
  ce_headers_cleanup(&r->h);
  ce_buf_cleanup(&r->key);
  ce_buf_cleanup(&r->value);
}

/* Decodes the record r and expects an event equal to ev. */
static void expect_decodes_to(const rec *r, ce_mode m, const ce_event *ev) {
  ce_event *back = NULL;
  ce_err err;
  int rc = ce_kafka_decode(r->h.items, r->h.n, r->has_value ? r->value.data : NULL,
                           r->has_value ? r->value.len : 0, &lim, &back, &err);
  if (rc != (int)m) fail_msg("%s%sdecode: rc %d attr \"%s\": %s", WHERE, rc, err.attr, err.reason);
  EXPECT_TRUE(ce_event_equal(ev, back));
  ce_event_free(back);
}

static void encode_binary(void **state) {
  ce_event *ev = new_min();
  EXPECT_RC(ce_event_set_str(ev, "subject", EURO " \"%41\"", NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "partitionkey", "pk-1", NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "datacontenttype", "application/json", NULL), 0);
  EXPECT_RC(ce_event_set_int(ev, "count", 42, NULL), 0);
  EXPECT_RC(ce_event_set_bool(ev, "flag", false, NULL), 0);
  EXPECT_RC(ce_event_set_data(ev, "{\"a\": 1}", 8), 0);
  rec r;
  EXPECT_RC(encode(ev, CE_MODE_BINARY, &r, NULL), 0);
  static const struct {
    const char *name, *value;
  } want[] = {{"ce_specversion", "1.0"},
              {"ce_id", "1"},
              {"ce_source", "/src"},
              {"ce_type", "t"},
              {"ce_subject", EURO " \"%41\""},
              {"content-type", "application/json"},
              {"ce_count", "42"},
              {"ce_flag", "false"}};
  for (size_t i = 0; i < NH(want); i++) {
    CTX("header %s", want[i].name);
    const ce_kv *kv = ce_headers_find(&r.h, want[i].name);
    EXPECT_STR(kv ? kv->value : NULL, want[i].value);
  }
  CTX("record");
  EXPECT_TRUE(ce_headers_find(&r.h, "ce_datacontenttype") == NULL);
  EXPECT_TRUE(r.has_key);
  EXPECT_MEM(r.key.data, r.key.len, "pk-1", 4);
  EXPECT_TRUE(r.has_value);
  EXPECT_MEM(r.value.data, r.value.len, "{\"a\": 1}", 8);
  rec_cleanup(&r);
  ce_event_free(ev);

  /* String attributes only, so that binary mode keeps every type. */
  ev = new_min();
  EXPECT_RC(ce_event_set_str(ev, "subject", EURO, NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "time", "2018-04-05T17:31:00Z", NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "myext", "%41 \"x\"", NULL), 0);
  CTX("round trip, no data");
  EXPECT_RC(encode(ev, CE_MODE_BINARY, &r, NULL), 0);
  EXPECT_TRUE(!r.has_value);
  EXPECT_TRUE(!r.has_key);
  EXPECT_TRUE(ce_headers_find(&r.h, "content-type") == NULL);
  expect_decodes_to(&r, CE_MODE_BINARY, ev);
  rec_cleanup(&r);
  CTX("round trip, empty data");
  EXPECT_RC(ce_event_set_data(ev, "", 0), 0);
  EXPECT_RC(encode(ev, CE_MODE_BINARY, &r, NULL), 0);
  EXPECT_TRUE(r.has_value);
  EXPECT_INT(r.value.len, 0);
  expect_decodes_to(&r, CE_MODE_BINARY, ev);
  rec_cleanup(&r);
  CTX("round trip, bytes");
  EXPECT_RC(ce_event_set_str(ev, "datacontenttype", "application/octet-stream", NULL), 0);
  EXPECT_RC(ce_event_set_data(ev, "\x00\x01\xff", 3), 0);
  EXPECT_RC(encode(ev, CE_MODE_BINARY, &r, NULL), 0);
  expect_decodes_to(&r, CE_MODE_BINARY, ev);
  rec_cleanup(&r);
  ce_event_free(ev);
}

static void encode_structured(void **state) {
  ce_event *ev = new_min();
  EXPECT_RC(ce_event_set_int(ev, "count", 7, NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "partitionkey", "k", NULL), 0);
  EXPECT_RC(ce_event_set_data(ev, "[1, 2]", 6), 0);
  rec r;
  EXPECT_RC(encode(ev, CE_MODE_STRUCTURED, &r, NULL), 0);
  const ce_kv *ct = ce_headers_find(&r.h, "content-type");
  assert_non_null(ct);
  EXPECT_TRUE(strncasecmp(ct->value, CE_MEDIA_JSON, strlen(CE_MEDIA_JSON)) == 0);
  EXPECT_TRUE(r.has_key);
  EXPECT_MEM(r.key.data, r.key.len, "k", 1);
  EXPECT_TRUE(r.has_value);
  expect_decodes_to(&r, CE_MODE_STRUCTURED, ev);
  rec_cleanup(&r);

  CTX("structured, no data, no partitionkey");
  EXPECT_RC(ce_event_unset(ev, "partitionkey"), 0);
  ce_event_clear_data(ev);
  EXPECT_RC(encode(ev, CE_MODE_STRUCTURED, &r, NULL), 0);
  EXPECT_TRUE(!r.has_key);
  EXPECT_TRUE(r.has_value);
  expect_decodes_to(&r, CE_MODE_STRUCTURED, ev);
  rec_cleanup(&r);

  CTX("invalid event");
  EXPECT_RC(ce_event_unset(ev, "id"), 0);
  static const ce_mode modes[] = {CE_MODE_BINARY, CE_MODE_STRUCTURED};
  for (size_t i = 0; i < 2; i++) {
    ce_err err;
    EXPECT_RC(encode(ev, modes[i], &r, &err), -EINVAL);
    EXPECT_STR(err.attr, "id");
    rec_cleanup(&r);
  }
  ce_event_free(ev);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(decode_binary),         T(decode_binary_value), T(decode_binary_required),
      T(decode_binary_invalid), T(decode_structured),   T(decode_sizes),
      T(encode_binary),         T(encode_structured),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
