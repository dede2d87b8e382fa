/*
 * test_ce_event.c — unit tests for the CloudEvent model in core/ce_event.c:
 * set/get/unset/replace of attributes (order of first set kept), the typed
 * shorthands and the canonical string forms they store, known attributes
 * keeping their own type, rejection of bad names and values leaving the event
 * unchanged, ce_event_get_int on typed and string attributes, data that is
 * present, empty or absent, deep clone, ce_event_equal, ce_event_validate
 * (required attributes, specversion) and ce_event_free(NULL).
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

/* A new event holding the four required attributes. */
static ce_event *new_example(void) {
  ce_event *ev = ce_event_new();
  assert_non_null(ev);
  EXPECT_RC(ce_event_set_str(ev, "specversion", "1.0", NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "id", "A234-1234-1234", NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "source", "/mycontext", NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "type", "com.example.someevent", NULL), 0);
  return ev;
}

static void free_null(void **state) {
  ce_event_free(NULL);
}

static void new_is_empty(void **state) {
  ce_event *ev = ce_event_new();
  assert_non_null(ev);
  EXPECT_INT(ce_event_attr_count(ev), 0);
  EXPECT_TRUE(!ce_event_has_data(ev));
  size_t len = 99;
  EXPECT_TRUE(ce_event_data(ev, &len) == NULL);
  EXPECT_TRUE(ce_event_get(ev, "id") == NULL);
  EXPECT_TRUE(ce_event_get_str(ev, "id") == NULL);
  EXPECT_RC(ce_event_unset(ev, "id"), -ENOENT);
  ce_event_free(ev);
}

static void set_get_string(void **state) {
  ce_event *ev = ce_event_new();
  ce_err err;
  EXPECT_RC(ce_event_set_str(ev, "subject", "hello", &err), 0);
  const ce_attr *a = ce_event_get(ev, "subject");
  assert_non_null(a);
  EXPECT_STR(a->name, "subject");
  EXPECT_STR(a->value, "hello");
  EXPECT_INT(a->value_len, 5);
  EXPECT_INT(a->type, CE_TYPE_STRING);
  EXPECT_STR(ce_event_get_str(ev, "subject"), "hello");
  /* The value need not be NUL-terminated: only len bytes are copied. */
  char buf[] = "worldXYZ";
  EXPECT_RC(ce_event_set(ev, "myext", CE_TYPE_STRING, buf, 5, NULL), 0);
  memset(buf, 'Q', sizeof buf - 1);
  EXPECT_STR(ce_event_get_str(ev, "myext"), "world");
  EXPECT_INT(ce_event_get(ev, "myext")->value_len, 5);
  /* The empty string is a valid extension value. */
  EXPECT_RC(ce_event_set_str(ev, "empty", "", NULL), 0);
  EXPECT_STR(ce_event_get_str(ev, "empty"), "");
  ce_event_free(ev);
}

static void replace_keeps_order(void **state) {
  ce_event *ev = new_example();
  EXPECT_RC(ce_event_set_str(ev, "id", "second", NULL), 0);
  EXPECT_INT(ce_event_attr_count(ev), 4);
  static const char *order[] = {"specversion", "id", "source", "type"};
  for (size_t i = 0; i < 4; i++) {
    CTX("attr_at(%zu)", i);
    const ce_attr *a = ce_event_attr_at(ev, i);
    assert_non_null(a);
    EXPECT_STR(a->name, order[i]);
  }
  EXPECT_STR(ce_event_get_str(ev, "id"), "second");
  EXPECT_STR(ce_event_attr_at(ev, 1)->value, "second");
  /* Replacing with a different type changes the type. */
  EXPECT_RC(ce_event_set_str(ev, "ext", "x", NULL), 0);
  EXPECT_RC(ce_event_set_int(ev, "ext", 7, NULL), 0);
  EXPECT_INT(ce_event_get(ev, "ext")->type, CE_TYPE_INTEGER);
  EXPECT_STR(ce_event_get_str(ev, "ext"), "7");
  EXPECT_INT(ce_event_attr_count(ev), 5);
  ce_event_free(ev);
}

static void unset(void **state) {
  ce_event *ev = new_example();
  EXPECT_RC(ce_event_unset(ev, "id"), 0);
  EXPECT_TRUE(ce_event_get(ev, "id") == NULL);
  EXPECT_INT(ce_event_attr_count(ev), 3);
  EXPECT_STR(ce_event_attr_at(ev, 0)->name, "specversion");
  EXPECT_STR(ce_event_attr_at(ev, 1)->name, "source");
  EXPECT_STR(ce_event_attr_at(ev, 2)->name, "type");
  EXPECT_RC(ce_event_unset(ev, "id"), -ENOENT);
  EXPECT_RC(ce_event_unset(ev, "nosuch"), -ENOENT);
  /* Set again after unset: goes to the end. */
  EXPECT_RC(ce_event_set_str(ev, "id", "back", NULL), 0);
  EXPECT_STR(ce_event_attr_at(ev, 3)->name, "id");
  ce_event_free(ev);
}

static void typed_shorthands(void **state) {
  ce_event *ev = ce_event_new();
  static const struct {
    int32_t v;
    const char *s;
  } ints[] = {
      {0, "0"}, {-12, "-12"}, {42, "42"}, {INT32_MAX, "2147483647"}, {INT32_MIN, "-2147483648"}};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
    CTX("set_int %s", ints[i].s);
    EXPECT_RC(ce_event_set_int(ev, "n", ints[i].v, NULL), 0);
    const ce_attr *a = ce_event_get(ev, "n");
    assert_non_null(a);
    EXPECT_INT(a->type, CE_TYPE_INTEGER);
    EXPECT_INT(a->integer, ints[i].v);
    EXPECT_STR(a->value, ints[i].s);
    EXPECT_INT(a->value_len, strlen(ints[i].s));
    int32_t got = 1;
    EXPECT_RC(ce_event_get_int(ev, "n", &got), 0);
    EXPECT_INT(got, ints[i].v);
  }
  CTX("set_bool");
  EXPECT_RC(ce_event_set_bool(ev, "t", true, NULL), 0);
  EXPECT_RC(ce_event_set_bool(ev, "f", false, NULL), 0);
  EXPECT_INT(ce_event_get(ev, "t")->type, CE_TYPE_BOOLEAN);
  EXPECT_INT(ce_event_get(ev, "t")->boolean, true);
  EXPECT_STR(ce_event_get(ev, "t")->value, "true");
  EXPECT_INT(ce_event_get(ev, "f")->boolean, false);
  EXPECT_STR(ce_event_get(ev, "f")->value, "false");
  ce_event_free(ev);
}

/* ce_event_set with an explicit type and a canonical string. */
static void set_typed_values(void **state) {
  static const struct {
    ce_type type;
    const char *value;
    int rc;
  } cases[] = {
      {CE_TYPE_INTEGER, "42", 0},
      {CE_TYPE_INTEGER, "-2147483648", 0},
      {CE_TYPE_INTEGER, "2147483648", -EINVAL},
      {CE_TYPE_INTEGER, "-2147483649", -EINVAL},
      {CE_TYPE_INTEGER, "12a", -EINVAL},
      {CE_TYPE_INTEGER, "1.5", -EINVAL},
      {CE_TYPE_INTEGER, "", -EINVAL},
      {CE_TYPE_BOOLEAN, "true", 0},
      {CE_TYPE_BOOLEAN, "false", 0},
      {CE_TYPE_BOOLEAN, "TRUE", -EINVAL},
      {CE_TYPE_BOOLEAN, "1", -EINVAL},
      {CE_TYPE_BINARY, "aGVsbG8=", 0},
      {CE_TYPE_BINARY, "a$==", -EINVAL},
      {CE_TYPE_BINARY, "aGVsbG8=aGVs", -EINVAL},
      {CE_TYPE_URI, "https://example.com/x", 0},
      {CE_TYPE_URI, "/relative", -EINVAL},
      {CE_TYPE_URI_REF, "/relative", 0},
      {CE_TYPE_URI_REF, "a b", -EINVAL},
      {CE_TYPE_TIMESTAMP, "2018-04-05T17:31:00Z", 0},
      {CE_TYPE_TIMESTAMP, "2018-04-05", -EINVAL},
      {CE_TYPE_STRING, "a\x01z", -EINVAL},
      {CE_TYPE_STRING, "\xc0\xa0", -EINVAL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CTX("type %d value \"%s\"", (int)cases[i].type, cases[i].value);
    ce_event *ev = ce_event_new();
    ce_err err;
    memset(&err, 0, sizeof err);
    int rc = ce_event_set(ev, "ext", cases[i].type, cases[i].value, strlen(cases[i].value), &err);
    EXPECT_RC(rc, cases[i].rc);
    if (rc == 0) {
      const ce_attr *a = ce_event_get(ev, "ext");
      EXPECT_INT(a->type, cases[i].type);
      /* A timestamp may be stored normalised; the others exactly as given. */
      if (cases[i].type != CE_TYPE_TIMESTAMP) EXPECT_STR(a->value, cases[i].value);
      if (cases[i].type == CE_TYPE_INTEGER) EXPECT_INT(a->integer, atol(cases[i].value));
      if (cases[i].type == CE_TYPE_BOOLEAN) EXPECT_INT(a->boolean, cases[i].value[0] == 't');
    } else {
      EXPECT_STR(err.attr, "ext");
      EXPECT_TRUE(err.reason[0] != '\0');
      EXPECT_INT(ce_event_attr_count(ev), 0);
    }
    ce_event_free(ev);
  }
}

/* Known attributes keep their own type whatever the caller says. */
static void known_attribute_types(void **state) {
  static const struct {
    const char *name, *value;
    ce_type want;
  } cases[] = {
      {"id", "42", CE_TYPE_STRING},
      {"source", "/src", CE_TYPE_URI_REF},
      {"specversion", "1.0", CE_TYPE_STRING},
      {"type", "t", CE_TYPE_STRING},
      {"datacontenttype", "text/plain", CE_TYPE_STRING},
      {"dataschema", "https://example.com/schema", CE_TYPE_URI},
      {"subject", "123", CE_TYPE_STRING},
      {"time", "2018-04-05T17:31:00Z", CE_TYPE_TIMESTAMP},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CTX("%s", cases[i].name);
    ce_event *ev = ce_event_new();
    /* Through the string shorthand, and through ce_event_set with a wrong type. */
    EXPECT_RC(ce_event_set_str(ev, cases[i].name, cases[i].value, NULL), 0);
    EXPECT_INT(ce_event_get(ev, cases[i].name)->type, cases[i].want);
    EXPECT_RC(ce_event_set(ev, cases[i].name, CE_TYPE_INTEGER, cases[i].value,
                           strlen(cases[i].value), NULL),
              0);
    EXPECT_INT(ce_event_get(ev, cases[i].name)->type, cases[i].want);
    ce_event_free(ev);
  }
}

/* Bad names and values: -EINVAL, err names the attribute, ev unchanged. */
static void set_rejects(void **state) {
  static const struct {
    const char *name, *value, *attr;
  } cases[] = {
      {"ID", "x", "ID"},
      {"myExt", "x", "myExt"},
      {"my-ext", "x", "my-ext"},
      {"my_ext", "x", "my_ext"},
      {"data", "x", "data"},
      {"id", "a\nb", "id"},
      {"id", "\x7f", "id"},
      {"subject", "\xc2\x80", "subject"}, /* U+0080, a C1 control */
      {"subject", "\xc2\x9f", "subject"}, /* U+009F */
      {"subject", "\xc0\xa0", "subject"}, /* overlong */
      {"subject", "\xff", "subject"},
      {"time", "not-a-time", "time"},
      {"time", "2019-02-29T00:00:00Z", "time"},
      {"source", "a b", "source"},
      {"source", "%zz", "source"},
      {"dataschema", "no-scheme", "dataschema"},
      {"dataschema", "/only/a/path", "dataschema"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CTX("set %s=\"%s\"", cases[i].name, cases[i].value);
    ce_event *ev = new_example();
    EXPECT_RC(ce_event_set_str(ev, "subject", "before", NULL), 0);
    EXPECT_RC(ce_event_set_str(ev, "time", "2020-01-01T00:00:00Z", NULL), 0);
    char time_before[64];
    snprintf(time_before, sizeof time_before, "%s", ce_event_get_str(ev, "time"));
    ce_err err;
    memset(&err, 0, sizeof err);
    EXPECT_RC(ce_event_set_str(ev, cases[i].name, cases[i].value, &err), -EINVAL);
    EXPECT_STR(err.attr, cases[i].attr);
    EXPECT_TRUE(err.reason[0] != '\0');
    EXPECT_INT(err.index, -1);
    /* Unchanged, and err may be NULL. */
    EXPECT_INT(ce_event_attr_count(ev), 6);
    EXPECT_STR(ce_event_get_str(ev, "subject"), "before");
    EXPECT_STR(ce_event_get_str(ev, "time"), time_before);
    EXPECT_STR(ce_event_get_str(ev, "id"), "A234-1234-1234");
    EXPECT_RC(ce_event_set_str(ev, cases[i].name, cases[i].value, NULL), -EINVAL);
    ce_event_free(ev);
  }
}

static void get_int(void **state) {
  ce_event *ev = ce_event_new();
  int32_t v = 5;
  EXPECT_RC(ce_event_get_int(ev, "n", &v), -ENOENT);
  static const struct {
    const char *s;
    int rc;
    int32_t want;
  } cases[] = {
      {"123", 0, 123},
      {"-7", 0, -7},
      {"0", 0, 0},
      {"2147483647", 0, INT32_MAX},
      {"-2147483648", 0, INT32_MIN},
      {"2147483648", -EINVAL, 0},
      {"abc", -EINVAL, 0},
      {"12x", -EINVAL, 0},
      {"", -EINVAL, 0},
      {"1.0", -EINVAL, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CTX("string \"%s\"", cases[i].s);
    EXPECT_RC(ce_event_set_str(ev, "n", cases[i].s, NULL), 0);
    v = 5;
    EXPECT_RC(ce_event_get_int(ev, "n", &v), cases[i].rc);
    if (cases[i].rc == 0) EXPECT_INT(v, cases[i].want);
  }
  CTX("boolean");
  EXPECT_RC(ce_event_set_bool(ev, "n", true, NULL), 0);
  EXPECT_RC(ce_event_get_int(ev, "n", &v), -EINVAL);
  ce_event_free(ev);
}

static void data_present_empty_absent(void **state) {
  ce_event *ev = ce_event_new();
  size_t len = 99;
  EXPECT_RC(ce_event_set_data(ev, "a\0b", 3), 0);
  EXPECT_TRUE(ce_event_has_data(ev));
  const uint8_t *d = ce_event_data(ev, &len);
  EXPECT_MEM(d, len, "a\0b", 3);
  EXPECT_TRUE(ce_event_data(ev, NULL) == d);
  /* Replace with empty: present, zero bytes, not NULL. */
  EXPECT_RC(ce_event_set_data(ev, "", 0), 0);
  EXPECT_TRUE(ce_event_has_data(ev));
  len = 99;
  EXPECT_TRUE(ce_event_data(ev, &len) != NULL);
  EXPECT_INT(len, 0);
  ce_event_clear_data(ev);
  EXPECT_TRUE(!ce_event_has_data(ev));
  EXPECT_TRUE(ce_event_data(ev, &len) == NULL);
  ce_event_clear_data(ev); /* twice is harmless */
  EXPECT_TRUE(!ce_event_has_data(ev));
  /* The data is a copy. */
  char buf[] = "copy me";
  EXPECT_RC(ce_event_set_data(ev, buf, 7), 0);
  memset(buf, 'Q', 7);
  d = ce_event_data(ev, &len);
  EXPECT_MEM(d, len, "copy me", 7);
  ce_event_free(ev);
}

static void clone_is_deep(void **state) {
  ce_event *ev = new_example();
  EXPECT_RC(ce_event_set_int(ev, "count", -3, NULL), 0);
  EXPECT_RC(ce_event_set_bool(ev, "flag", true, NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "time", "2018-04-05T17:31:00Z", NULL), 0);
  EXPECT_RC(ce_event_set_data(ev, "payload", 7), 0);
  ce_event *c = ce_event_clone(ev);
  assert_non_null(c);
  EXPECT_TRUE(ce_event_equal(ev, c));
  EXPECT_INT(ce_event_attr_count(c), 7);
  EXPECT_INT(ce_event_get(c, "count")->integer, -3);
  EXPECT_INT(ce_event_get(c, "flag")->type, CE_TYPE_BOOLEAN);
  EXPECT_INT(ce_event_get(c, "time")->type, CE_TYPE_TIMESTAMP);
  /* Changing the original leaves the clone alone. */
  EXPECT_RC(ce_event_set_str(ev, "id", "changed", NULL), 0);
  EXPECT_RC(ce_event_set_data(ev, "other", 5), 0);
  ce_event_free(ev);
  EXPECT_STR(ce_event_get_str(c, "id"), "A234-1234-1234");
  size_t len;
  const uint8_t *d = ce_event_data(c, &len);
  EXPECT_MEM(d, len, "payload", 7);
  ce_event_free(c);

  /* Empty data and absent data survive cloning as they are. */
  ev = new_example();
  EXPECT_RC(ce_event_set_data(ev, "", 0), 0);
  c = ce_event_clone(ev);
  EXPECT_TRUE(ce_event_has_data(c));
  ce_event_free(c);
  ce_event_clear_data(ev);
  c = ce_event_clone(ev);
  EXPECT_TRUE(!ce_event_has_data(c));
  ce_event_free(c);
  ce_event_free(ev);
}

static void equal(void **state) {
  ce_event *a = new_example(), *b = ce_event_new();
  /* Same attributes set in another order. */
  EXPECT_RC(ce_event_set_str(b, "type", "com.example.someevent", NULL), 0);
  EXPECT_RC(ce_event_set_str(b, "source", "/mycontext", NULL), 0);
  EXPECT_RC(ce_event_set_str(b, "id", "A234-1234-1234", NULL), 0);
  EXPECT_RC(ce_event_set_str(b, "specversion", "1.0", NULL), 0);
  EXPECT_TRUE(ce_event_equal(a, b));
  EXPECT_TRUE(ce_event_equal(b, a));
  EXPECT_TRUE(ce_event_equal(a, a));

  /* Same string, different type. */
  EXPECT_RC(ce_event_set_str(a, "n", "1", NULL), 0);
  EXPECT_RC(ce_event_set_int(b, "n", 1, NULL), 0);
  EXPECT_TRUE(!ce_event_equal(a, b));
  EXPECT_RC(ce_event_set_int(a, "n", 1, NULL), 0);
  EXPECT_TRUE(ce_event_equal(a, b));

  /* An extra attribute on either side. */
  EXPECT_RC(ce_event_set_str(a, "extra", "x", NULL), 0);
  EXPECT_TRUE(!ce_event_equal(a, b));
  EXPECT_TRUE(!ce_event_equal(b, a));
  EXPECT_RC(ce_event_unset(a, "extra"), 0);

  /* A different value. */
  EXPECT_RC(ce_event_set_str(a, "id", "other", NULL), 0);
  EXPECT_TRUE(!ce_event_equal(a, b));
  EXPECT_RC(ce_event_set_str(a, "id", "A234-1234-1234", NULL), 0);

  /* Data: absent vs empty vs bytes. */
  EXPECT_RC(ce_event_set_data(a, "", 0), 0);
  EXPECT_TRUE(!ce_event_equal(a, b));
  EXPECT_TRUE(!ce_event_equal(b, a));
  EXPECT_RC(ce_event_set_data(b, "", 0), 0);
  EXPECT_TRUE(ce_event_equal(a, b));
  EXPECT_RC(ce_event_set_data(a, "ab", 2), 0);
  EXPECT_RC(ce_event_set_data(b, "ac", 2), 0);
  EXPECT_TRUE(!ce_event_equal(a, b));
  EXPECT_RC(ce_event_set_data(b, "ab", 2), 0);
  EXPECT_TRUE(ce_event_equal(a, b));
  ce_event_free(a);
  ce_event_free(b);
}

static void validate_ok(void **state) {
  ce_event *ev = new_example();
  ce_err err;
  EXPECT_RC(ce_event_validate(ev, &err), 0);
  EXPECT_RC(ce_event_set_str(ev, "time", "2018-04-05T17:31:00Z", NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "dataschema", "https://example.com/s", NULL), 0);
  EXPECT_RC(ce_event_set_str(ev, "datacontenttype", "application/json", NULL), 0);
  EXPECT_RC(ce_event_set_int(ev, "count", 1, NULL), 0);
  EXPECT_RC(ce_event_set_data(ev, "{}", 2), 0);
  EXPECT_RC(ce_event_validate(ev, &err), 0);
  EXPECT_RC(ce_event_validate(ev, NULL), 0);
  ce_event_free(ev);
}

/* Sets name=value on a valid event and expects -EINVAL naming attr, either
 * from ce_event_set (a rule of the value's type) or from ce_event_validate
 * (a rule of the event): both are allowed to catch it. */
static void expect_set_or_validate_fails(const char *name, const char *value, const char *attr) {
  ce_event *ev = new_example();
  ce_err err;
  memset(&err, 0, sizeof err);
  int rc = ce_event_set_str(ev, name, value, &err);
  if (rc == 0) {
    memset(&err, 0, sizeof err);
    rc = ce_event_validate(ev, &err);
  }
  EXPECT_RC(rc, -EINVAL);
  EXPECT_STR(err.attr, attr);
  EXPECT_TRUE(err.reason[0] != '\0');
  ce_event_free(ev);
}

static void validate_required(void **state) {
  static const char *req[] = {"id", "source", "specversion", "type"};
  for (size_t i = 0; i < 4; i++) {
    CTX("without %s", req[i]);
    ce_event *ev = new_example();
    EXPECT_RC(ce_event_unset(ev, req[i]), 0);
    ce_err err;
    memset(&err, 0, sizeof err);
    EXPECT_RC(ce_event_validate(ev, &err), -EINVAL);
    EXPECT_STR(err.attr, req[i]);
    EXPECT_TRUE(err.reason[0] != '\0');
    EXPECT_INT(err.index, -1);
    ce_event_free(ev);

    CTX("empty %s", req[i]);
    expect_set_or_validate_fails(req[i], "", req[i]);
  }
}

static void validate_specversion(void **state) {
  static const char *bad[] = {"0.3", "2.0", "1", "1.0.2", "1.0 "};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CTX("specversion \"%s\"", bad[i]);
    expect_set_or_validate_fails("specversion", bad[i], "specversion");
  }
}

static void validate_datacontenttype(void **state) {
  static const char *bad[] = {"not a media type", "json", "text/", "/plain"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CTX("datacontenttype \"%s\"", bad[i]);
    expect_set_or_validate_fails("datacontenttype", bad[i], "datacontenttype");
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(free_null),
      T(new_is_empty),
      T(set_get_string),
      T(replace_keeps_order),
      T(unset),
      T(typed_shorthands),
      T(set_typed_values),
      T(known_attribute_types),
      T(set_rejects),
      T(get_int),
      T(data_present_empty_absent),
      T(clone_is_deep),
      T(equal),
      T(validate_ok),
      T(validate_required),
      T(validate_specversion),
      T(validate_datacontenttype),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
