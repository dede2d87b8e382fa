/*
 * test_ce_json.c — unit tests for the JSON event format in core/ce_json.c.
 * Decoding: required attributes (missing, empty, null, wrong JSON type),
 * specversion, attribute name case, value rules, extension types (int32
 * range, booleans, non-scalars), null as unset, the data forms (JSON kept
 * byte for byte, strings under textual types, data_base64 with and without a
 * content type, "data": null vs no data), duplicates, malformed documents,
 * nesting and size limits (64 KB and 1 MiB events), and batches (all or
 * nothing, err.index). Encoding: which data form is written for which
 * content type (checked by parsing the output with cJSON), typed extensions,
 * escaping, errors, batches, and round trips that must give equal events.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "core/ce.h"

#include "test_util.h"

/* The four required members, to splice into test documents. */
#define REQ "\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/src\",\"type\":\"t\""

#undef T
#define T(f) T_LIM(f)

static int decode(const char *json, ce_event **ev, ce_err *err) {
  memset(err, 0, sizeof *err);
  *ev = NULL;
  return ce_json_decode(json, strlen(json), &lim, ev, err);
}

/* Decodes json, expects rc, and when attr is non-NULL that err names it. */
static void expect_fail(const char *json, int rc, const char *attr) {
  ce_event *ev;
  ce_err err;
  CTX("%s", json);
  EXPECT_RC(decode(json, &ev, &err), rc);
  EXPECT_TRUE(ev == NULL);
  if (attr) EXPECT_STR(err.attr, attr);
  EXPECT_TRUE(err.reason[0] != '\0');
  EXPECT_INT(err.index, -1);
  ce_event_free(ev);
}

static ce_event *decode_ok(const char *json) {
  ce_event *ev;
  ce_err err;
  CTX("%s", json);
  int rc = decode(json, &ev, &err);
  if (rc != 0)
    fail_msg("%s: rc %d (%s), attr \"%s\": %s", json, rc, errname(rc), err.attr, err.reason);
  assert_non_null(ev);
  return ev;
}

static void decode_minimal(void **state) {
  ce_event *ev = decode_ok("{" REQ "}");
  EXPECT_INT(ce_event_attr_count(ev), 4);
  EXPECT_STR(ce_event_get_str(ev, "specversion"), "1.0");
  EXPECT_STR(ce_event_get_str(ev, "id"), "1");
  EXPECT_STR(ce_event_get_str(ev, "source"), "/src");
  EXPECT_STR(ce_event_get_str(ev, "type"), "t");
  EXPECT_INT(ce_event_get(ev, "source")->type, CE_TYPE_URI_REF);
  EXPECT_INT(ce_event_get(ev, "id")->type, CE_TYPE_STRING);
  EXPECT_TRUE(!ce_event_has_data(ev));
  ce_event_free(ev);
}

/* The example from the JSON format specification, plus dataschema. */
static void decode_spec_example(void **state) {
  ce_event *ev = decode_ok(
      "{\n  \"specversion\" : \"1.0\",\n  \"type\" : \"com.github.pull_request.opened\",\n"
      "  \"source\" : \"https://github.com/cloudevents/spec/pull\",\n  \"subject\" : \"123\",\n"
      "  \"id\" : \"A234-1234-1234\",\n  \"time\" : \"2018-04-05T17:31:00Z\",\n"
      "  \"comexampleextension1\" : \"value\",\n  \"comexampleothervalue\" : 5,\n"
      "  \"dataschema\" : \"https://example.com/schema\",\n"
      "  \"datacontenttype\" : \"text/xml\",\n  \"data\" : \"<much wow=\\\"xml\\\"/>\"\n}\n");
  EXPECT_INT(ce_event_attr_count(ev), 10);
  EXPECT_STR(ce_event_get_str(ev, "subject"), "123");
  EXPECT_STR(ce_event_get_str(ev, "comexampleextension1"), "value");
  EXPECT_INT(ce_event_get(ev, "comexampleothervalue")->type, CE_TYPE_INTEGER);
  EXPECT_INT(ce_event_get(ev, "comexampleothervalue")->integer, 5);
  EXPECT_INT(ce_event_get(ev, "dataschema")->type, CE_TYPE_URI);
  EXPECT_STR(ce_event_get_str(ev, "dataschema"), "https://example.com/schema");
  EXPECT_STR(ce_event_get_str(ev, "datacontenttype"), "text/xml");
  const ce_attr *t = ce_event_get(ev, "time");
  assert_non_null(t);
  EXPECT_INT(t->type, CE_TYPE_TIMESTAMP);
  int64_t sec = 0;
  int32_t nsec = -1;
  EXPECT_RC(ce_timestamp_parse(t->value, t->value_len, &sec, &nsec), 0);
  EXPECT_INT(sec, 1522949460);
  EXPECT_INT(nsec, 0);
  size_t len;
  const uint8_t *d = ce_event_data(ev, &len);
  EXPECT_MEM(d, len, "<much wow=\"xml\"/>", 17);
  ce_event_free(ev);
}

static void decode_extension_types(void **state) {
  ce_event *ev = decode_ok("{" REQ ",\"bt\":true,\"bf\":false,\"min\":-2147483648,"
                           "\"max\":2147483647,\"zero\":0,\"s\":\"x\",\"u\":\"https://x\","
                           "\"pair\":\"\\ud83d\\ude00 \\u00E9\\/\"}");
  const ce_attr *a;
  EXPECT_INT((a = ce_event_get(ev, "bt"))->type, CE_TYPE_BOOLEAN);
  EXPECT_INT(a->boolean, true);
  EXPECT_STR(a->value, "true");
  EXPECT_INT((a = ce_event_get(ev, "bf"))->type, CE_TYPE_BOOLEAN);
  EXPECT_INT(a->boolean, false);
  EXPECT_STR(a->value, "false");
  EXPECT_INT((a = ce_event_get(ev, "min"))->type, CE_TYPE_INTEGER);
  EXPECT_INT(a->integer, INT32_MIN);
  EXPECT_STR(a->value, "-2147483648");
  EXPECT_INT((a = ce_event_get(ev, "max"))->integer, INT32_MAX);
  EXPECT_STR(a->value, "2147483647");
  EXPECT_INT((a = ce_event_get(ev, "zero"))->type, CE_TYPE_INTEGER);
  EXPECT_INT(a->integer, 0);
  EXPECT_INT(ce_event_get(ev, "s")->type, CE_TYPE_STRING);
  EXPECT_INT(ce_event_get(ev, "u")->type, CE_TYPE_STRING);
  EXPECT_STR(ce_event_get_str(ev, "pair"), "\xf0\x9f\x98\x80 \xc3\xa9/");
  EXPECT_STR(ce_event_get_str(ev, "u"), "https://x");
  ce_event_free(ev);
}

static void decode_bad_extensions(void **state) {
  static const char *bad[] = {"2147483648", "-2147483649",          "1.5", "1.0", "1e3",
                              "1E3",        "99999999999999999999", "{}",  "[]",  "[1]",
                              "{\"a\":1}"};
  char json[256];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(json, sizeof json, "{" REQ ",\"ext\":%s}", bad[i]);
    expect_fail(json, -EINVAL, "ext");
  }
}

static void decode_required(void **state) {
  static const char *name[] = {"specversion", "id", "source", "type"};
  static const char *value[] = {"\"1.0\"", "\"1\"", "\"/src\"", "\"t\""};
  for (size_t miss = 0; miss < 4; miss++) {
    /* Absent, null, empty, and of the wrong JSON type. */
    static const char *how[] = {NULL, "null", "\"\"", "1", "true", "{}"};
    for (size_t h = 0; h < sizeof how / sizeof how[0]; h++) {
      char json[256] = "{";
      for (size_t i = 0; i < 4; i++) {
        const char *v = i == miss ? how[h] : value[i];
        if (!v) continue;
        if (json[1]) strcat(json, ",");
        snprintf(json + strlen(json), sizeof json - strlen(json), "\"%s\":%s", name[i], v);
      }
      strcat(json, "}");
      expect_fail(json, -EINVAL, name[miss]);
    }
  }
}

static void decode_bad_values(void **state) {
  static const struct {
    const char *member, *attr;
  } cases[] = {
      {"\"specversion\":\"0.3\"", "specversion"},
      {"\"specversion\":\"2.0\"", "specversion"},
      {"\"specversion\":\"1\"", "specversion"},
      {"\"specversion\":1.0", "specversion"},
      {"\"source\":\"a b\"", "source"},
      {"\"source\":\"%zz\"", "source"},
      {"\"dataschema\":\"no-scheme\"", "dataschema"},
      {"\"dataschema\":\"/relative\"", "dataschema"},
      {"\"dataschema\":5", "dataschema"},
      {"\"time\":\"2018-04-05\"", "time"},
      {"\"time\":\"2019-02-29T00:00:00Z\"", "time"},
      {"\"time\":\"2018-04-05T25:00:00Z\"", "time"},
      {"\"time\":1522949460", "time"},
      {"\"datacontenttype\":\"nope\"", "datacontenttype"},
      {"\"subject\":\"a\\u0001b\"", "subject"},
      {"\"subject\":\"a\\nb\"", "subject"},
      {"\"subject\":\"\\u0085\"", "subject"},
      {"\"subject\":false", "subject"},
      {"\"ext\":\"\\u007f\"", "ext"},
      {"\"ext\":\"a\\u0000b\"", "ext"},
      {"\"subject\":\"\\ud800\"", NULL}, /* a lone surrogate is not UTF-8 */
      {"\"subject\":\"\xc0\xa0\"", NULL},
      {"\"subject\":\"\xff\"", NULL},
      {"\"ID\":\"x\"", "ID"},
      {"\"Type\":\"x\"", "Type"},
      {"\"myExt\":\"x\"", "myExt"},
      {"\"my-ext\":\"x\"", "my-ext"},
      {"\"my_ext\":1", "my_ext"},
      {"\"\":\"x\"", ""},
  };
  char json[256];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    /* Put the member last so that it replaces nothing in REQ: a repeated
     * required member is a duplicate, so those go in their own document. */
    if (strncmp(cases[i].member, "\"specversion\"", 13) == 0 ||
        strncmp(cases[i].member, "\"source\"", 8) == 0)
      snprintf(json, sizeof json, "{\"id\":\"1\",\"type\":\"t\",%s,%s}", cases[i].member,
               cases[i].member[3] == 'p' ? "\"source\":\"/s\"" : "\"specversion\":\"1.0\"");
    else
      snprintf(json, sizeof json, "{" REQ ",%s}", cases[i].member);
    expect_fail(json, -EINVAL, cases[i].attr);
  }
}

/* A null optional attribute or extension is as if absent. */
static void decode_null_is_unset(void **state) {
  ce_event *ev = decode_ok("{" REQ ",\"subject\":null,\"ext\":null,\"time\":null,"
                           "\"dataschema\":null,\"datacontenttype\":null}");
  EXPECT_INT(ce_event_attr_count(ev), 4);
  EXPECT_TRUE(ce_event_get(ev, "subject") == NULL);
  EXPECT_TRUE(ce_event_get(ev, "ext") == NULL);
  EXPECT_TRUE(!ce_event_has_data(ev));
  ce_event_free(ev);
}

static void decode_data_forms(void **state) {
  static const struct {
    const char *members;
    bool has;
    const char *bytes;
    size_t len;
  } cases[] = {
#define D(m, b) {m, true, b, sizeof(b) - 1}
      D("\"data\":{\"a\": [1, 2]}", "{\"a\": [1, 2]}"),
      D("\"datacontenttype\":\"application/json\",\"data\":{\"a\": [1, 2]}", "{\"a\": [1, 2]}"),
      D("\"data\":{\n  \"a\" : 1\n}", "{\n  \"a\" : 1\n}"),
      D("\"datacontenttype\":\"application/json\",\"data\":\"hello\"", "\"hello\""),
      D("\"data\":\"hello\"", "\"hello\""),
      D("\"data\":\"\\u00e9\"", "\"\\u00e9\""),
      D("\"data\":-1.5e3", "-1.5e3"),
      D("\"data\":true", "true"),
      D("\"data\":null", "null"),
      D("\"datacontenttype\":\"application/vnd.x+json\",\"data\":[1, \"two\", null]",
        "[1, \"two\", null]"),
      D("\"datacontenttype\":\"text/json\",\"data\":{}", "{}"),
      D("\"datacontenttype\":\"Application/JSON; charset=utf-8\",\"data\":{\"x\":1}", "{\"x\":1}"),
      D("\"datacontenttype\":\"text/plain\",\"data\":\"hello\"", "hello"),
      D("\"datacontenttype\":\"text/plain\",\"data\":\"caf\\u00e9 \\\"q\\\"\"",
        "caf\xc3\xa9 \"q\""),
      D("\"datacontenttype\":\"text/plain\",\"data\":\"\"", ""),
      D("\"datacontenttype\":\"text/plain\",\"data\":\"a\\u0000b\"", "a\0b"),
      D("\"datacontenttype\":\"text/plain\",\"data\":\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80"),
      D("\"datacontenttype\":\"application/xml\",\"data\":\"<a/>\"", "<a/>"),
      D("\"data_base64\":\"aGVsbG8=\"", "hello"),
      D("\"datacontenttype\":\"application/octet-stream\",\"data_base64\":\"AAEC/w==\"",
        "\x00\x01\x02\xff"),
      D("\"datacontenttype\":\"application/json\",\"data_base64\":\"e30=\"", "{}"),
      D("\"data_base64\":\"\"", ""),
#undef D
      {"\"datacontenttype\":\"text/plain\"", false, NULL, 0},
      {"\"subject\":\"no data\"", false, NULL, 0},
  };
  char json[512];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(json, sizeof json, "{" REQ ",%s}", cases[i].members);
    ce_event *ev = decode_ok(json);
    EXPECT_INT(ce_event_has_data(ev), cases[i].has);
    size_t len = 12345;
    const uint8_t *d = ce_event_data(ev, &len);
    if (cases[i].has) {
      EXPECT_TRUE(d != NULL);
      EXPECT_MEM(d, len, cases[i].bytes, cases[i].len);
    } else {
      EXPECT_TRUE(d == NULL);
    }
    ce_event_free(ev);
  }
}

static void decode_bad_documents(void **state) {
  static const char *bad[] = {
      "{" REQ ",\"data\":{},\"data_base64\":\"e30=\"}",
      "{" REQ ",\"data_base64\":\"e30=\",\"data\":null}",
      "{" REQ ",\"data_base64\":\"a\"}",
      "{" REQ ",\"data_base64\":\"aGVs bG8=\"}",
      "{" REQ ",\"data_base64\":5}",
      "{" REQ ",\"id\":\"2\"}",
      "{" REQ ",\"ext\":1,\"ext\":1}",
      "{" REQ ",\"data\":1,\"data\":2}",
      "{" REQ ",\"data\":{\"a\":}}",
      "",
      "   ",
      "{",
      "{" REQ,
      "{" REQ ",}",
      "{" REQ "} x",
      "{" REQ "}{" REQ "}",
      "[{" REQ "}]",
      "null",
      "42",
      "\"str\"",
      "{'id':'1'}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_fail(bad[i], -EINVAL, NULL);
  /* Embedded NUL inside the buffer. */
  ce_event *ev = NULL;
  ce_err err;
  static const char nul[] = "{" REQ "}\0";
  CTX("trailing NUL byte");
  EXPECT_RC(ce_json_decode(nul, sizeof nul - 1, &lim, &ev, &err), -EINVAL);
  EXPECT_TRUE(ev == NULL);
}

/* A document whose data is `depth` nested arrays around 1. */
static char *nested(size_t depth) {
  char *s = malloc(depth * 2 + 128);
  assert_non_null(s);
  size_t o = (size_t)sprintf(s, "{" REQ ",\"data\":");
  memset(s + o, '[', depth);
  o += depth;
  s[o++] = '1';
  memset(s + o, ']', depth);
  o += depth;
  strcpy(s + o, "}");
  return s;
}

static void decode_depth(void **state) {
  ce_event *ev;
  ce_err err;
  char *s = nested(64);
  CTX("data nested 64 deep");
  EXPECT_RC(decode(s, &ev, &err), 0);
  size_t len;
  ce_event_data(ev, &len);
  EXPECT_INT(len, 64 * 2 + 1);
  ce_event_free(ev);
  free(s);

  s = nested(65);
  CTX("data nested 65 deep");
  EXPECT_RC(decode(s, &ev, &err), -EINVAL);
  EXPECT_TRUE(ev == NULL);
  lim.max_depth = 200;
  EXPECT_RC(decode(s, &ev, &err), 0);
  ce_event_free(ev);
  free(s);

  s = nested(100000);
  CTX("data nested 100000 deep, default limit");
  ce_limits_init(&lim);
  EXPECT_RC(decode(s, &ev, &err), -EINVAL);
  CTX("data nested 100000 deep, max_depth 0 must not overflow the stack");
  lim.max_depth = 0;
  int rc = decode(s, &ev, &err);
  EXPECT_TRUE(rc == 0 || rc == -EINVAL);
  ce_event_free(ev);
  free(s);
}

/* {REQ,"datacontenttype":"text/plain","data":"aaa..."} with n bytes of data. */
static char *big_event(size_t n, size_t *len) {
  static const char head[] = "{" REQ ",\"datacontenttype\":\"text/plain\",\"data\":\"";
  char *s = malloc(sizeof head + n + 2);
  assert_non_null(s);
  memcpy(s, head, sizeof head - 1);
  memset(s + sizeof head - 1, 'a', n);
  memcpy(s + sizeof head - 1 + n, "\"}", 3);
  *len = sizeof head - 1 + n + 2;
  return s;
}

static void decode_sizes(void **state) {
  size_t len;
  ce_event *ev = NULL;
  ce_err err;
  char *s = big_event(65536, &len);
  CTX("64 KB data");
  EXPECT_RC(ce_json_decode(s, len, &lim, &ev, &err), 0);
  size_t dlen = 0;
  const uint8_t *d = ce_event_data(ev, &dlen);
  EXPECT_INT(dlen, 65536);
  EXPECT_TRUE(d && d[0] == 'a' && d[65535] == 'a');
  ce_event_free(ev);
  free(s);

  s = big_event(1048576, &len);
  CTX("1 MiB data, default limits");
  ev = NULL;
  memset(&err, 0, sizeof err);
  EXPECT_RC(ce_json_decode(s, len, &lim, &ev, &err), -EMSGSIZE);
  EXPECT_TRUE(ev == NULL);
  EXPECT_TRUE(err.reason[0] != '\0');
  CTX("1 MiB data, max_body 4 MiB");
  lim.max_body = 4u << 20;
  EXPECT_RC(ce_json_decode(s, len, &lim, &ev, &err), 0);
  ce_event_data(ev, &dlen);
  EXPECT_INT(dlen, 1048576);
  ce_event_free(ev);
  free(s);

  /* The limit is inclusive: a body of exactly max_body bytes is fine. */
  static const char small[] = "{" REQ "}";
  CTX("body == max_body");
  lim.max_body = sizeof small - 1;
  EXPECT_RC(ce_json_decode(small, sizeof small - 1, &lim, &ev, &err), 0);
  ce_event_free(ev);
  CTX("body == max_body + 1");
  lim.max_body = sizeof small - 2;
  ev = NULL;
  EXPECT_RC(ce_json_decode(small, sizeof small - 1, &lim, &ev, &err), -EMSGSIZE);
  EXPECT_TRUE(ev == NULL);
}

static void decode_batch(void **state) {
  ce_batch b;
  ce_batch_init(&b);
  ce_event *first = ce_event_new();
  EXPECT_RC(ce_batch_push(&b, first), 0);
  ce_err err;
  static const char two[] = "[{" REQ "}, {\"specversion\":\"1.0\",\"id\":\"2\",\"source\":\"/s\","
                            "\"type\":\"t\",\"data\":[1]}]";
  CTX("two events");
  EXPECT_RC(ce_json_decode_batch(two, sizeof two - 1, &lim, &b, &err), 2);
  EXPECT_INT(b.n, 3);
  EXPECT_TRUE(b.ev[0] == first);
  EXPECT_STR(ce_event_get_str(b.ev[1], "id"), "1");
  EXPECT_STR(ce_event_get_str(b.ev[2], "id"), "2");
  size_t len;
  const uint8_t *d = ce_event_data(b.ev[2], &len);
  EXPECT_MEM(d, len, "[1]", 3);

  CTX("empty array");
  EXPECT_RC(ce_json_decode_batch(" [ ] ", 5, &lim, &b, &err), 0);
  EXPECT_INT(b.n, 3);

  static const struct {
    const char *json;
    int index;
    const char *attr;
  } bad[] = {
      {"[{\"specversion\":\"1.0\",\"source\":\"/s\",\"type\":\"t\"}]", 0, "id"},
      {"[{" REQ "},{\"specversion\":\"1.0\",\"source\":\"/s\",\"type\":\"t\"}]", 1, "id"},
      {"[{" REQ "},{" REQ "},{" REQ ",\"time\":\"x\"}]", 2, "time"},
      {"[{" REQ "},{\"specversion\":\"0.3\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}]", 1,
       "specversion"},
      {"[{" REQ "},1]", 1, NULL},
      {"[{" REQ "},[]]", 1, NULL},
      {"{" REQ "}", -1, NULL},
      {"[{" REQ "}", -1, NULL},
      {"", -1, NULL},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CTX("%s", bad[i].json);
    memset(&err, 0, sizeof err);
    EXPECT_RC(ce_json_decode_batch(bad[i].json, strlen(bad[i].json), &lim, &b, &err), -EINVAL);
    EXPECT_INT(err.index, bad[i].index);
    if (bad[i].attr) EXPECT_STR(err.attr, bad[i].attr);
    EXPECT_INT(b.n, 3); /* all or nothing */
  }

  CTX("max_batch");
  static const char three[] = "[{" REQ "},{" REQ "},{" REQ "}]";
  lim.max_batch = 3;
  EXPECT_RC(ce_json_decode_batch(three, sizeof three - 1, &lim, &b, &err), 3);
  EXPECT_INT(b.n, 6);
  lim.max_batch = 2;
  EXPECT_RC(ce_json_decode_batch(three, sizeof three - 1, &lim, &b, &err), -EMSGSIZE);
  EXPECT_INT(err.index, 2); /* the first event past the limit */
  EXPECT_INT(b.n, 6);
  CTX("batch over max_body");
  lim.max_batch = 0;
  lim.max_body = sizeof three - 2;
  EXPECT_RC(ce_json_decode_batch(three, sizeof three - 1, &lim, &b, &err), -EMSGSIZE);
  EXPECT_INT(b.n, 6);
  ce_batch_cleanup(&b);
}

/* ------------------------------------------------------------ encoding */

/* Encodes ev, checks the result parses as a JSON object and, when
 * round_trip, decodes it again and checks the two events are equal. Returns
 * the parsed object. */
static cJSON *encode_check(const ce_event *ev, bool round_trip) {
  ce_buf out;
  ce_buf_init(&out);
  ce_err err;
  memset(&err, 0, sizeof err);
  int rc = ce_json_encode(ev, &out, &err);
  if (rc)
    fail_msg("%s%sencode: rc %d (%s) attr \"%s\": %s", WHERE, rc, errname(rc), err.attr,
             err.reason);
  cJSON *obj = cJSON_ParseWithLength(out.data, out.len);
  char shown[200];
  if (!cJSON_IsObject(obj))
    fail_msg("%s%snot a JSON object: %s", WHERE, show(out.data, out.len, shown, sizeof shown));
  ce_event *back = NULL;
  if (!round_trip) goto done;
  rc = ce_json_decode(out.data, out.len, &lim, &back, &err);
  if (rc)
    fail_msg("%s%sdecode of %s: rc %d attr \"%s\": %s", WHERE, out.data, rc, err.attr, err.reason);
  if (!ce_event_equal(ev, back))
    fail_msg("%s%sround trip through %s gives a different event", WHERE,
             show(out.data, out.len, shown, sizeof shown));
done:
  ce_event_free(back);
  ce_buf_cleanup(&out);
  return obj;
}
#define encode_round_trip(ev) encode_check(ev, true)

static void encode_minimal(void **state) {
  ce_event *ev = new_min();
  cJSON *o = encode_round_trip(ev);
  EXPECT_INT(cJSON_GetArraySize(o), 4);
  EXPECT_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "specversion")), "1.0");
  EXPECT_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "id")), "1");
  EXPECT_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "source")), "/src");
  EXPECT_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "type")), "t");
  cJSON_Delete(o);
  ce_event_free(ev);
}

enum form { AS_JSON, AS_STRING, AS_BASE64 };

static void encode_data_forms(void **state) {
  static const struct {
    const char *ct; /* NULL: no datacontenttype */
    const char *data;
    size_t len;
    enum form form;
    const char *want; /* the compact JSON, the string, or the base64 */
  } cases[] = {
#define C(ct, d, f, w) {ct, d, sizeof(d) - 1, f, w}
      C(NULL, "{\"a\": [1, 2]}", AS_JSON, "{\"a\":[1,2]}"),
      C("application/json", "[1,2]", AS_JSON, "[1,2]"),
      C("application/json", "\"hi\"", AS_JSON, "\"hi\""),
      C("application/vnd.x+json", "{\n \"k\" : true\n}", AS_JSON, "{\"k\":true}"),
      C("text/json", "-1.5e3", AS_JSON, "-1500"),
      C(NULL, "null", AS_JSON, "null"),
      C("application/json", "hello", AS_BASE64, "aGVsbG8="),
      C("application/json", "{\"a\":1} x", AS_BASE64, "eyJhIjoxfSB4"),
      C(NULL, "", AS_BASE64, ""),
      C("text/plain", "hello", AS_STRING, "hello"),
      C("text/plain", "{\"a\":1}", AS_STRING, "{\"a\":1}"),
      C("text/plain", "", AS_STRING, ""),
      C("text/plain", "a\0b", AS_STRING, "a"), /* cJSON's C string stops at the NUL */
      C("text/plain", "Euro \xe2\x82\xac \"q\" \\ \n", AS_STRING, "Euro \xe2\x82\xac \"q\" \\ \n"),
      C("text/xml", "<a/>", AS_STRING, "<a/>"),
      C("application/xml", "<a/>", AS_STRING, "<a/>"),
      C("application/atom+xml", "<feed/>", AS_STRING, "<feed/>"),
      C("application/x-foo; charset=utf-8", "h\xc3\xa9llo", AS_STRING, "h\xc3\xa9llo"),
      C("application/octet-stream", "\x00\x01\x02\xff", AS_BASE64, "AAEC/w=="),
      C("text/plain", "\xff\xfe", AS_BASE64, "//4="),
      C("image/png", "hello", AS_BASE64, "aGVsbG8="),
      /* Found by fuzzing: JSON with whitespace around it, or a JSON type whose
       * bytes are not JSON, must come back byte for byte, so they go as base64. */
      C(NULL, " 1 ", AS_BASE64, "IDEg"),
      C("application/json", "{}\n", AS_BASE64, "e30K"),
      C("text/json", "x", AS_BASE64, "eA=="),
      C("application/json; charset=utf-8", "not json", AS_BASE64, "bm90IGpzb24="),
#undef C
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char shown[128];
    CTX("ct %s data \"%s\"", cases[i].ct ? cases[i].ct : "(none)",
        show(cases[i].data, cases[i].len, shown, sizeof shown));
    ce_event *ev = new_min();
    if (cases[i].ct) EXPECT_RC(ce_event_set_str(ev, "datacontenttype", cases[i].ct, NULL), 0);
    EXPECT_RC(ce_event_set_data(ev, cases[i].data, cases[i].len), 0);
    cJSON *o = encode_round_trip(ev);
    cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
    cJSON *b64 = cJSON_GetObjectItemCaseSensitive(o, "data_base64");
    switch (cases[i].form) {
    case AS_JSON: {
      EXPECT_TRUE(data != NULL && b64 == NULL);
      char *p = cJSON_PrintUnformatted(data);
      EXPECT_STR(p, cases[i].want);
      cJSON_free(p);
      break;
    }
    case AS_STRING:
      EXPECT_TRUE(cJSON_IsString(data) && b64 == NULL);
      EXPECT_STR(cJSON_GetStringValue(data), cases[i].want);
      break;
    case AS_BASE64:
      EXPECT_TRUE(cJSON_IsString(b64) && data == NULL);
      EXPECT_STR(cJSON_GetStringValue(b64), cases[i].want);
      break;
    }
    cJSON_Delete(o);
    ce_event_free(ev);
  }
}

static void encode_attributes(void **state) {
  ce_event *ev = new_min();
  EXPECT_RC(ce_event_set_int(ev, "count", 42, NULL), 0);
  EXPECT_RC(ce_event_set_int(ev, "min", INT32_MIN, NULL), 0);
  EXPECT_RC(ce_event_set_bool(ev, "flag", true, NULL), 0);
  EXPECT_RC(ce_event_set_bool(ev, "off", false, NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "str", "42", NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "subject", "Euro \xe2\x82\xac \xf0\x9f\x98\x80 \"q\" \\ /", NULL),
            0);
  EXPECT_RC(ce_event_set_str(ev, "time", "2018-04-05T17:31:00.5+01:00", NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "dataschema", "https://example.com/s?a=1", NULL), 0);
  cJSON *o = encode_round_trip(ev);
  cJSON *m;
  EXPECT_TRUE(cJSON_IsNumber(m = cJSON_GetObjectItemCaseSensitive(o, "count")));
  EXPECT_INT(m->valuedouble, 42);
  EXPECT_TRUE(cJSON_IsNumber(m = cJSON_GetObjectItemCaseSensitive(o, "min")));
  EXPECT_INT(m->valuedouble, INT32_MIN);
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "flag")));
  EXPECT_TRUE(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "off")));
  EXPECT_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "str")), "42");
  EXPECT_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "subject")),
             "Euro \xe2\x82\xac \xf0\x9f\x98\x80 \"q\" \\ /");
  EXPECT_TRUE(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "time")));
  EXPECT_TRUE(cJSON_GetObjectItemCaseSensitive(o, "data") == NULL);
  EXPECT_TRUE(cJSON_GetObjectItemCaseSensitive(o, "data_base64") == NULL);
  cJSON_Delete(o);
  /* JSON has no binary type: a binary extension is written as its base64
   * string (and so comes back as a string, not equal in type). */
  EXPECT_RC(ce_event_set(ev, "bin", CE_TYPE_BINARY, "aGk=", 4, NULL), 0);
  o = encode_check(ev, false);
  EXPECT_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "bin")), "aGk=");
  cJSON_Delete(o);
  ce_event_free(ev);
}

static void encode_errors_and_append(void **state) {
  ce_buf out;
  ce_buf_init(&out);
  EXPECT_RC(ce_buf_append_str(&out, "XY"), 0);
  static const char *req[] = {"specversion", "id", "source", "type"};
  for (size_t i = 0; i < 4; i++) {
    CTX("encode without %s", req[i]);
    ce_event *ev = new_min();
    EXPECT_RC(ce_event_unset(ev, req[i]), 0);
    ce_err err;
    memset(&err, 0, sizeof err);
    EXPECT_RC(ce_json_encode(ev, &out, &err), -EINVAL);
    EXPECT_STR(err.attr, req[i]);
    EXPECT_INT(out.len, 2); /* nothing appended */
    EXPECT_RC(ce_json_encode(ev, &out, NULL), -EINVAL);
    ce_event_free(ev);
  }
  CTX("append");
  ce_event *ev = new_min();
  EXPECT_RC(ce_json_encode(ev, &out, NULL), 0);
  EXPECT_MEM(out.data, 2, "XY", 2);
  cJSON *o = cJSON_ParseWithLength(out.data + 2, out.len - 2);
  EXPECT_TRUE(cJSON_IsObject(o));
  cJSON_Delete(o);
  ce_event_free(ev);
  ce_buf_cleanup(&out);
}

static void encode_batch(void **state) {
  ce_event *evs[3] = {new_min(), new_min(), new_min()};
  EXPECT_RC(ce_event_set_str(evs[1], "id", "2", NULL), 0);
  EXPECT_RC(ce_event_set_data(evs[1], "{\"a\": 1}", 8), 0);
  EXPECT_RC(ce_event_set_str(evs[2], "datacontenttype", "application/octet-stream", NULL), 0);
  EXPECT_RC(ce_event_set_data(evs[2], "\x00\xff", 2), 0);
  ce_buf out;
  ce_buf_init(&out);
  ce_err err;
  CTX("zero events");
  EXPECT_RC(ce_json_encode_batch(evs, 0, &out, &err), 0);
  cJSON *a = cJSON_ParseWithLength(out.data, out.len);
  EXPECT_TRUE(cJSON_IsArray(a) && cJSON_GetArraySize(a) == 0);
  cJSON_Delete(a);

  CTX("three events");
  ce_buf_reset(&out);
  EXPECT_RC(ce_json_encode_batch(evs, 3, &out, &err), 0);
  a = cJSON_ParseWithLength(out.data, out.len);
  EXPECT_TRUE(cJSON_IsArray(a) && cJSON_GetArraySize(a) == 3);
  cJSON_Delete(a);
  ce_batch b;
  ce_batch_init(&b);
  EXPECT_RC(ce_json_decode_batch(out.data, out.len, &lim, &b, &err), 3);
  for (size_t i = 0; i < 3; i++) {
    CTX("event %zu after batch round trip", i);
    EXPECT_TRUE(ce_event_equal(b.ev[i], evs[i]));
  }
  ce_batch_cleanup(&b);

  CTX("invalid event at index 1");
  EXPECT_RC(ce_event_unset(evs[1], "source"), 0);
  ce_buf_reset(&out);
  memset(&err, 0, sizeof err);
  EXPECT_RC(ce_json_encode_batch(evs, 3, &out, &err), -EINVAL);
  EXPECT_STR(err.attr, "source");
  EXPECT_INT(err.index, 1);
  for (size_t i = 0; i < 3; i++) ce_event_free(evs[i]);
  ce_buf_cleanup(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(decode_minimal),         T(decode_spec_example),
      T(decode_extension_types), T(decode_bad_extensions),
      T(decode_required),        T(decode_bad_values),
      T(decode_null_is_unset),   T(decode_data_forms),
      T(decode_bad_documents),   T(decode_depth),
      T(decode_sizes),           T(decode_batch),
      T(encode_minimal),         T(encode_data_forms),
      T(encode_attributes),      T(encode_errors_and_append),
      T(encode_batch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
