/*
 * test_resources.c — unit tests for the resource loader in core/resources.c.
 * The input forms (a YAML stream of Brokers and a Trigger, a JSON object, a
 * JSON array, kind: List), the scalar rules of the YAML 1.2 core schema and
 * where we depart from it (hex and octal stay strings, large integers stay
 * exact strings, .inf/.nan refused), tags, block scalars, nesting, every
 * refusal with the line and column it names, the depth and document limits
 * at their boundaries, files (size bound, missing, a directory), and the
 * readers res_get, res_get_key, res_str and res_is.
 */
#include <errno.h>
#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "core/resources.h"

#include "test_util.h"

/* ---------------------------------------------------------------- helpers */

static cJSON *parse_len(const char *text, size_t len) {
  cJSON *out = (cJSON *)&out; /* must be overwritten */
  res_err err;
  int rc = res_parse(text, len, &out, &err);
  if (rc != 0) fail_msg("%s%src %d (%s): %s", WHERE, rc, errname(rc), err.msg);
  assert_non_null(out);
  EXPECT_TRUE(cJSON_IsArray(out));
  return out;
}

/* Parses text, which must succeed, and checks the number of resources. */
static cJSON *parse_ok(const char *text, int n) {
  cJSON *out = parse_len(text, strlen(text));
  EXPECT_INT(cJSON_GetArraySize(out), n);
  return out;
}

/* The first resource of text, which must parse to exactly one. The caller
 * frees *all. */
static const cJSON *first(const char *text, cJSON **all) {
  *all = parse_ok(text, 1);
  return cJSON_GetArrayItem(*all, 0);
}

/* Checks a failed load: the code, the place, and that the message starts
 * with the place and contains `what`. line 0: no place. */
static void expect_err(int rc, const res_err *err, int want_rc, int line, int column,
                       const char *what) {
  EXPECT_RC(rc, want_rc);
  EXPECT_INT(err->line, line);
  EXPECT_INT(err->column, column);
  if (line) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "line %d, column %d: ", line, column);
    if (strncmp(err->msg, prefix, strlen(prefix)) != 0)
      fail_msg("%s%smessage \"%s\" does not start with \"%s\"", WHERE, err->msg, prefix);
  }
  if (strstr(err->msg, what) == NULL)
    fail_msg("%s%smessage \"%s\" does not say \"%s\"", WHERE, err->msg, what);
}

static void expect_refused_len(const char *text, size_t len, int line, int column,
                               const char *what) {
  cJSON *out = (cJSON *)&out;
  res_err err;
  int rc = res_parse(text, len, &out, &err);
  EXPECT_TRUE(out == NULL);
  if (rc == 0) cJSON_Delete(out);
  expect_err(rc, &err, -EINVAL, line, column, what);
}

static void expect_refused(const char *text, int line, int column, const char *what) {
  expect_refused_len(text, strlen(text), line, column, what);
}

static char *repeat(const char *head, const char *unit, size_t n, const char *tail) {
  size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
  char *s = malloc(hl + ul * n + tl + 1);
  assert_non_null(s);
  memcpy(s, head, hl);
  for (size_t i = 0; i < n; i++) memcpy(s + hl + i * ul, unit, ul);
  memcpy(s + hl + ul * n, tail, tl + 1);
  return s;
}

/* ---------------------------------------------------------------- input forms */

static const char brokers_and_trigger[] =
    "# The lab's brokers and one trigger.\n"
    "---\n"
    "apiVersion: eventing.knative.dev/v1\n"
    "kind: Broker\n"
    "metadata:\n"
    "  name: default\n"
    "  namespace: lab\n"
    "  annotations:\n"
    "    eventing.knative.dev/broker.class: Outpost\n"
    "spec:\n"
    "  delivery:\n"
    "    retry: 5\n"
    "    backoffPolicy: exponential\n"
    "    backoffDelay: PT0.2S\n"
    "---\n"
    "apiVersion: eventing.knative.dev/v1\n"
    "kind: Broker\n"
    "metadata: {name: audit, namespace: lab, labels: {tier: \"2\", public: false}}\n"
    "---\n"
    "apiVersion: eventing.knative.dev/v1\n"
    "kind: Trigger\n"
    "metadata:\n"
    "  name: orders\n"
    "  namespace: lab\n"
    "spec:\n"
    "  broker: default\n"
    "  filter:\n"
    "    attributes:\n"
    "      type: com.example.order.created\n"
    "      source: /shop\n"
    "  subscriber:\n"
    "    ref:\n"
    "      apiVersion: serving.knative.dev/v1\n"
    "      kind: Service\n"
    "      name: order-handler\n"
    "    uri: /events\n"
    "---\n"
    "# a stray separator at the end makes an empty document, which is skipped\n";

static void multi_document_yaml(void **state) {
  cJSON *all = parse_ok(brokers_and_trigger, 3);
  const cJSON *b0 = cJSON_GetArrayItem(all, 0), *b1 = cJSON_GetArrayItem(all, 1),
              *tr = cJSON_GetArrayItem(all, 2);
  EXPECT_TRUE(res_is(b0, "eventing.knative.dev", "Broker"));
  EXPECT_TRUE(res_is(b1, "eventing.knative.dev", "Broker"));
  EXPECT_TRUE(res_is(tr, "eventing.knative.dev", "Trigger"));
  EXPECT_STR(res_str(b0, "metadata.name"), "default");
  EXPECT_STR(res_str(b1, "metadata.name"), "audit");
  EXPECT_STR(res_str(tr, "metadata.name"), "orders");
  EXPECT_STR(cJSON_GetStringValue(res_get_key(res_get(b0, "metadata.annotations"),
                                              "eventing.knative.dev/broker.class")),
             "Outpost");
  const cJSON *retry = res_get(b0, "spec.delivery.retry");
  EXPECT_TRUE(cJSON_IsNumber(retry));
  EXPECT_INT(retry->valuedouble, 5);
  EXPECT_STR(res_str(b0, "spec.delivery.backoffDelay"), "PT0.2S");
  EXPECT_STR(res_str(b1, "metadata.labels.tier"), "2");
  EXPECT_TRUE(cJSON_IsFalse(res_get(b1, "metadata.labels.public")));
  EXPECT_STR(res_str(tr, "spec.broker"), "default");
  EXPECT_STR(res_str(tr, "spec.filter.attributes.type"), "com.example.order.created");
  EXPECT_STR(res_str(tr, "spec.filter.attributes.source"), "/shop");
  EXPECT_STR(res_str(tr, "spec.subscriber.ref.name"), "order-handler");
  EXPECT_STR(res_str(tr, "spec.subscriber.uri"), "/events");
  EXPECT_TRUE(res_is(res_get(tr, "spec.subscriber.ref"), "serving.knative.dev", "Service"));
  /* Members keep their order. */
  EXPECT_STR(b0->child->string, "apiVersion");
  EXPECT_STR(b0->child->next->string, "kind");
  cJSON_Delete(all);
}

static void empty_inputs(void **state) {
  static const char *empty[] = {"",
                                "# only a comment\n",
                                "---\n",
                                "---\n...\n---\n",
                                "[]",
                                "  \n\n",
                                "kind: List\nitems: []\n",
                                "kind: List\nitems:\n"};
  for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
    CTX("\"%s\"", empty[i]);
    cJSON_Delete(parse_ok(empty[i], 0));
  }
  CTX("NULL text, length 0");
  cJSON_Delete(parse_len(NULL, 0));
}

static void json_single_object(void **state) {
  cJSON *all;
  const cJSON *o = first("{\"a\": 1, \"b\": \"1\", \"c\": true, \"d\": null}", &all);
  EXPECT_TRUE(cJSON_IsNumber(res_get(o, "a")));
  EXPECT_INT(res_get(o, "a")->valuedouble, 1);
  EXPECT_TRUE(cJSON_IsString(res_get(o, "b")));
  EXPECT_STR(res_str(o, "b"), "1");
  EXPECT_TRUE(cJSON_IsTrue(res_get(o, "c")));
  EXPECT_TRUE(cJSON_IsNull(res_get(o, "d")));
  cJSON_Delete(all);

  /* Compact, with tabs and line breaks, escapes, nesting, a big id. */
  o = first("{\"apiVersion\":\"eventing.knative.dev/v1\",\"kind\":\"Trigger\",\n"
            "\t\"metadata\":{\"name\":\"t\\u00e9\",\"path\":\"a\\/b\\\\c\\n\"},\n"
            "\t\"spec\":{\"filters\":[{\"exact\":{\"type\":\"x\"}},{\"prefix\":{\"type\":\"y.\"}}],"
            "\"n\":[1,-2.5,1e2,[],{}],\"id\":12345678901234567890,\"f\":0.1}}",
            &all);
  EXPECT_TRUE(res_is(o, "eventing.knative.dev", "Trigger"));
  EXPECT_STR(res_str(o, "metadata.name"), "t\xc3\xa9");
  EXPECT_STR(res_str(o, "metadata.path"), "a/b\\c\n");
  EXPECT_STR(res_str(o, "spec.filters.0.exact.type"), "x");
  EXPECT_STR(res_str(o, "spec.filters.1.prefix.type"), "y.");
  EXPECT_INT(cJSON_GetArraySize(res_get(o, "spec.n")), 5);
  EXPECT_TRUE(res_get(o, "spec.n.1")->valuedouble == -2.5);
  EXPECT_TRUE(res_get(o, "spec.n.2")->valuedouble == 100);
  EXPECT_TRUE(cJSON_IsArray(res_get(o, "spec.n.3")));
  EXPECT_TRUE(cJSON_IsObject(res_get(o, "spec.n.4")));
  EXPECT_STR(res_str(o, "spec.id"), "12345678901234567890");
  EXPECT_TRUE(res_get(o, "spec.f")->valuedouble == 0.1);
  cJSON_Delete(all);
}

static void json_array(void **state) {
  cJSON *all = parse_ok("[{\"kind\": \"Broker\", \"metadata\": {\"name\": \"a\"}},\n"
                        " {\"kind\": \"Broker\", \"metadata\": {\"name\": \"b\"}},\n"
                        " {\"kind\": \"Trigger\", \"metadata\": {\"name\": \"c\"}}]\n",
                        3);
  EXPECT_STR(res_str(cJSON_GetArrayItem(all, 0), "metadata.name"), "a");
  EXPECT_STR(res_str(cJSON_GetArrayItem(all, 1), "metadata.name"), "b");
  EXPECT_STR(res_str(cJSON_GetArrayItem(all, 2), "metadata.name"), "c");
  EXPECT_TRUE(res_is(cJSON_GetArrayItem(all, 2), NULL, "Trigger"));
  cJSON_Delete(all);

  CTX("a YAML block sequence of mappings, then a mapping document");
  all = parse_ok("- kind: Broker\n- kind: Trigger\n---\nkind: Broker\n", 3);
  EXPECT_STR(res_str(cJSON_GetArrayItem(all, 1), "kind"), "Trigger");
  cJSON_Delete(all);
}

static void kind_list(void **state) {
  CTX("YAML List");
  cJSON *all = parse_ok("apiVersion: v1\n"
                        "kind: List\n"
                        "metadata: {resourceVersion: \"\"}\n"
                        "items:\n"
                        "- apiVersion: eventing.knative.dev/v1\n"
                        "  kind: Broker\n"
                        "  metadata: {name: one}\n"
                        "- apiVersion: eventing.knative.dev/v1\n"
                        "  kind: Trigger\n"
                        "  metadata: {name: two}\n"
                        "---\n"
                        "kind: Broker\n"
                        "metadata: {name: three}\n",
                        3);
  EXPECT_TRUE(res_is(cJSON_GetArrayItem(all, 0), "eventing.knative.dev", "Broker"));
  EXPECT_STR(res_str(cJSON_GetArrayItem(all, 0), "metadata.name"), "one");
  EXPECT_STR(res_str(cJSON_GetArrayItem(all, 1), "metadata.name"), "two");
  EXPECT_STR(res_str(cJSON_GetArrayItem(all, 2), "metadata.name"), "three");
  cJSON_Delete(all);

  CTX("JSON List, kind after items");
  all = parse_ok("{\"items\": [{\"kind\": \"Broker\"}, {\"kind\": \"List\", \"items\": [{}]}],"
                 " \"kind\": \"List\", \"apiVersion\": \"v1\"}",
                 2);
  /* Only the top level is expanded. */
  EXPECT_TRUE(res_is(cJSON_GetArrayItem(all, 1), NULL, "List"));
  EXPECT_INT(cJSON_GetArraySize(res_get(cJSON_GetArrayItem(all, 1), "items")), 1);
  cJSON_Delete(all);

  CTX("a kind that is not the string List is a resource");
  all = parse_ok("kind: BrokerList\nitems: [1, 2]\n---\nkind: [List]\nitems: 3\n", 2);
  cJSON_Delete(all);
}

/* ---------------------------------------------------------------- scalars */

enum { NUL_ = 1, TRUE_, FALSE_, NUM, STR };

static const struct scalar_case {
  const char *yaml; /* the value after "v: " */
  int want;
  const char *str; /* STR: the string */
  double num;      /* NUM: the number */
} scalar_cases[] = {
    /* null */
    {"", NUL_, NULL, 0},
    {"~", NUL_, NULL, 0},
    {"null", NUL_, NULL, 0},
    {"Null", NUL_, NULL, 0},
    {"NULL", NUL_, NULL, 0},
    {"!!null ''", NUL_, NULL, 0},
    {"!!null ~", NUL_, NULL, 0},
    {"nULL", STR, "nULL", 0},
    {"'null'", STR, "null", 0},
    {"\"~\"", STR, "~", 0},
    /* booleans: YAML 1.2 has only true and false */
    {"true", TRUE_, NULL, 0},
    {"True", TRUE_, NULL, 0},
    {"TRUE", TRUE_, NULL, 0},
    {"false", FALSE_, NULL, 0},
    {"False", FALSE_, NULL, 0},
    {"FALSE", FALSE_, NULL, 0},
    {"!!bool true", TRUE_, NULL, 0},
    {"tRUE", STR, "tRUE", 0},
    {"yes", STR, "yes", 0},
    {"no", STR, "no", 0},
    {"on", STR, "on", 0},
    {"off", STR, "off", 0},
    {"Yes", STR, "Yes", 0},
    {"ON", STR, "ON", 0},
    {"y", STR, "y", 0},
    {"n", STR, "n", 0},
    {"\"true\"", STR, "true", 0},
    {"'false'", STR, "false", 0},
    /* integers */
    {"0", NUM, NULL, 0},
    {"12", NUM, NULL, 12},
    {"-7", NUM, NULL, -7},
    {"+3", NUM, NULL, 3},
    {"010", NUM, NULL, 10}, /* YAML 1.1 read this as octal 8 */
    {"007", NUM, NULL, 7},
    {"!!int \"12\"", NUM, NULL, 12},
    {"9007199254740991", NUM, NULL, 9007199254740991.0},
    {"-9007199254740991", NUM, NULL, -9007199254740991.0},
    {"9007199254740992", STR, "9007199254740992", 0},
    {"9007199254740993", STR, "9007199254740993", 0},
    {"-9007199254740993", STR, "-9007199254740993", 0},
    {"+00009007199254740993", STR, "+00009007199254740993", 0},
    {"123456789012345678901234567890", STR, "123456789012345678901234567890", 0},
    {"!!int 99999999999999999999", STR, "99999999999999999999", 0},
    {"\"12\"", STR, "12", 0},
    {"'12'", STR, "12", 0},
    /* not decimal: strings */
    {"0o17", STR, "0o17", 0},
    {"0x1F", STR, "0x1F", 0},
    {"0b101", STR, "0b101", 0},
    {"1_000", STR, "1_000", 0},
    {"1:20", STR, "1:20", 0},
    {"0x", STR, "0x", 0},
    {"12abc", STR, "12abc", 0},
    {"1.2.3", STR, "1.2.3", 0},
    {"e3", STR, "e3", 0},
    {"1e", STR, "1e", 0},
    {".", STR, ".", 0},
    {"+", STR, "+", 0},
    {"-1-", STR, "-1-", 0},
    {"'.inf'", STR, ".inf", 0},
    {"\".nan\"", STR, ".nan", 0},
    {"inf", STR, "inf", 0},
    {"nan", STR, "nan", 0},
    {"infinity", STR, "infinity", 0},
    /* floats */
    {"1.5", NUM, NULL, 1.5},
    {"-0.25", NUM, NULL, -0.25},
    {".5", NUM, NULL, 0.5},
    {"+.5", NUM, NULL, 0.5},
    {"1.", NUM, NULL, 1},
    {"1e3", NUM, NULL, 1000},
    {"1E+2", NUM, NULL, 100},
    {"-2.5e-3", NUM, NULL, -0.0025},
    {"0.1", NUM, NULL, 0.1},
    {"1e-400", NUM, NULL, 0}, /* underflow is a value, overflow is not */
    {"!!float 1", NUM, NULL, 1},
    {"!!float '2.5'", NUM, NULL, 2.5},
    /* strings in every style */
    {"hello world", STR, "hello world", 0},
    {"'it''s'", STR, "it's", 0},
    {"\"a\\tb\\u00e9\"", STR, "a\tb\xc3\xa9", 0},
    {"\"\\U0001F600\"", STR, "\xf0\x9f\x98\x80", 0},
    {"\xf0\x9f\x98\x80", STR, "\xf0\x9f\x98\x80", 0},
    {"''", STR, "", 0},
    {"\"\"", STR, "", 0},
    {"! 12", STR, "12", 0},
    {"!!str 12", STR, "12", 0},
    {"!!str true", STR, "true", 0},
    {"!<tag:yaml.org,2002:str> null", STR, "null", 0},
    {"http://example.com:8080/x?y=1#z", STR, "http://example.com:8080/x?y=1#z", 0},
    {"2026-01-02T03:04:05Z", STR, "2026-01-02T03:04:05Z", 0},
    {"PT0.2S", STR, "PT0.2S", 0},
};

static void check_scalar(const cJSON *v, const struct scalar_case *c) {
  char got[64];
  assert_non_null(v);
  switch (c->want) {
  case NUL_:
    EXPECT_TRUE(cJSON_IsNull(v));
    break;
  case TRUE_:
    EXPECT_TRUE(cJSON_IsTrue(v));
    break;
  case FALSE_:
    EXPECT_TRUE(cJSON_IsFalse(v));
    break;
  case NUM:
    EXPECT_TRUE(cJSON_IsNumber(v));
    if (v->valuedouble != c->num) {
      snprintf(got, sizeof got, "%.17g", v->valuedouble);
      fail_msg("%s%svalue %s, want %.17g", WHERE, got, c->num);
    }
    break;
  case STR:
    EXPECT_TRUE(cJSON_IsString(v));
    EXPECT_STR(v->valuestring, c->str);
    break;
  }
}

static void scalar_rules(void **state) {
  char text[256];
  for (size_t i = 0; i < sizeof scalar_cases / sizeof scalar_cases[0]; i++) {
    const struct scalar_case *c = &scalar_cases[i];
    snprintf(text, sizeof text, "v: %s\n", c->yaml);
    CTX("v: %s", c->yaml);
    cJSON *all;
    const cJSON *o = first(text, &all);
    check_scalar(res_get(o, "v"), c);
    cJSON_Delete(all);
    /* The same scalar inside a flow sequence. */
    snprintf(text, sizeof text, "v: [%s]\n", c->yaml);
    if (c->yaml[0] == '\0' || strchr(c->yaml, ':')) continue;
    CTX("v: [%s]", c->yaml);
    o = first(text, &all);
    check_scalar(res_get(o, "v.0"), c);
    cJSON_Delete(all);
  }
}

/* A process that set a locale with a decimal comma still reads "1.5" as 1.5.
 * Skipped where no such locale is installed. */
static void float_in_comma_locale(void **state) {
  static const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8"};
  const char *set = NULL;
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !set; i++)
    set = setlocale(LC_NUMERIC, names[i]);
  if (set == NULL || strcmp(localeconv()->decimal_point, ",") != 0) {
    setlocale(LC_NUMERIC, "C");
    skip();
  }
  cJSON *all;
  const cJSON *o = first("a: 1.5\nb: -2.5e-3\n", &all);
  setlocale(LC_NUMERIC, "C");
  EXPECT_TRUE(res_get(o, "a")->valuedouble == 1.5);
  EXPECT_TRUE(res_get(o, "b")->valuedouble == -0.0025);
  cJSON_Delete(all);
}

/* Keys are the text of the scalar, whatever it would resolve to. */
static void scalar_keys(void **state) {
  cJSON *all;
  const cJSON *o =
      first("1: a\ntrue: b\n~: c\n0x1F: d\n\"q\": e\n.inf: f\n1e999: g\n? \n: h\n", &all);
  static const char *keys[] = {"1", "true", "~", "0x1F", "q", ".inf", "1e999", ""};
  const cJSON *m = o->child;
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++, m = m->next) {
    CTX("key %zu", i);
    assert_non_null(m);
    EXPECT_STR(m->string, keys[i]);
    EXPECT_TRUE(cJSON_IsString(m));
  }
  EXPECT_TRUE(m == NULL);
  cJSON_Delete(all);
}

static void block_scalars(void **state) {
  static const struct {
    const char *yaml, *want;
  } cases[] = {
      {"v: |\n  line one\n  line two\n\n", "line one\nline two\n"},
      {"v: |-\n  a\n   b\n", "a\n b"},
      {"v: |+\n  a\n\n\nw: 1\n", "a\n\n\n"},
      {"v: >\n  folded\n  text\n\n  para\n", "folded text\npara\n"},
      {"v: >-\n  p\n  q\n", "p q"},
      {"v: |2\n    indented\n", "  indented\n"},
      {"v: |\n  true\n", "true\n"},
      {"v: >\n  12\n", "12\n"},
      {"v: |\n  # not a comment\n  a: b\n", "# not a comment\na: b\n"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CTX("%s", cases[i].yaml);
    cJSON *all;
    const cJSON *o = first(cases[i].yaml, &all);
    EXPECT_TRUE(cJSON_IsString(res_get(o, "v")));
    EXPECT_STR(res_str(o, "v"), cases[i].want);
    cJSON_Delete(all);
  }
}

static void nesting(void **state) {
  cJSON *all;
  const cJSON *o = first("spec:\n"
                         "  filters:\n"
                         "  - exact: {type: a}\n"
                         "  - any:\n"
                         "    - prefix:\n"
                         "        source: /x\n"
                         "    - not: {suffix: {type: .z}}\n"
                         "  matrix: [[1, 2], [3, [4, {k: v}]]]\n"
                         "  empty: {}\n"
                         "  none: []\n",
                         &all);
  EXPECT_STR(res_str(o, "spec.filters.0.exact.type"), "a");
  EXPECT_STR(res_str(o, "spec.filters.1.any.0.prefix.source"), "/x");
  EXPECT_STR(res_str(o, "spec.filters.1.any.1.not.suffix.type"), ".z");
  EXPECT_INT(res_get(o, "spec.matrix.1.0")->valuedouble, 3);
  EXPECT_INT(res_get(o, "spec.matrix.1.1.0")->valuedouble, 4);
  EXPECT_STR(res_str(o, "spec.matrix.1.1.1.k"), "v");
  EXPECT_TRUE(cJSON_IsObject(res_get(o, "spec.empty")) && res_get(o, "spec.empty")->child == NULL);
  EXPECT_INT(cJSON_GetArraySize(res_get(o, "spec.none")), 0);
  /* The tree prints as the JSON it stands for. */
  char *json = cJSON_PrintUnformatted(o);
  EXPECT_STR(json, "{\"spec\":{\"filters\":[{\"exact\":{\"type\":\"a\"}},{\"any\":[{\"prefix\":{"
                   "\"source\":\"/x\"}},{\"not\":{\"suffix\":{\"type\":\".z\"}}}]}],"
                   "\"matrix\":[[1,2],[3,[4,{\"k\":\"v\"}]]],\"empty\":{},\"none\":[]}}");
  free(json);
  cJSON_Delete(all);
}

/* Other encodings and line ends libyaml reads. */
static void encodings(void **state) {
  CTX("CRLF");
  cJSON *all = parse_ok("a: 1\r\nb: x\r\n---\r\nc: 2\r\n", 2);
  EXPECT_STR(res_str(cJSON_GetArrayItem(all, 0), "b"), "x");
  cJSON_Delete(all);
  CTX("UTF-8 byte order mark");
  all = parse_ok("\xef\xbb\xbf{\"a\": \"b\"}", 1);
  EXPECT_STR(res_str(cJSON_GetArrayItem(all, 0), "a"), "b");
  cJSON_Delete(all);
  CTX("UTF-16LE with a byte order mark");
  static const char utf16[] = "\xff\xfe"
                              "a\0:\0 \0\xe9\0\n\0";
  all = parse_len(utf16, sizeof utf16 - 1);
  EXPECT_INT(cJSON_GetArraySize(all), 1);
  EXPECT_STR(res_str(cJSON_GetArrayItem(all, 0), "a"), "\xc3\xa9");
  cJSON_Delete(all);
  CTX("%%YAML 1.2 and 1.1 directives (the schema stays 1.2)");
  all = parse_ok("%YAML 1.2\n---\na: yes\n---\nb: 1\n", 2);
  EXPECT_STR(res_str(cJSON_GetArrayItem(all, 0), "a"), "yes");
  cJSON_Delete(all);
  all = parse_ok("%YAML 1.1\n---\na: on\n", 1);
  EXPECT_STR(res_str(cJSON_GetArrayItem(all, 0), "a"), "on");
  cJSON_Delete(all);
}

/* ---------------------------------------------------------------- refusals */

static const struct refusal {
  const char *text;
  int line, column;
  const char *what;
} refusals[] = {
    /* duplicate keys */
    {"a: 1\nb: 2\na: 3\n", 3, 1, "duplicate key 'a'"},
    {"metadata:\n  name: x\n  labels: {}\n  name: y\n", 4, 3, "duplicate key 'name'"},
    {"{\"a\": 1, \"b\": {\"c\": 1, \"c\": 2}}", 1, 24, "duplicate key 'c'"},
    {"1: a\n\"1\": b\n", 2, 1, "duplicate key '1'"},
    {"a: 1\n---\nb: 1\nb: 2\n", 4, 1, "duplicate key 'b'"},
    /* anchors and aliases */
    {"a: &x 1\nb: 2\n", 1, 4, "anchors are not supported (found '&x')"},
    {"a: *x\n", 1, 4, "aliases are not supported (found '*x')"},
    {"base: &b {k: v}\nx:\n  <<: *b\n", 1, 7, "anchors are not supported (found '&b')"},
    {"x:\n  <<: *b\n", 2, 7, "aliases are not supported (found '*b')"},
    {"a: &s\n- 1\n", 1, 4, "anchors are not supported (found '&s')"},
    {"- &m {a: 1}\n", 1, 3, "anchors are not supported"},
    /* documents that are not resources */
    {"- a\n- b\n", 1, 3, "a top-level sequence must hold mappings (resources), not a scalar"},
    {"[1, 2]", 1, 2, "not a scalar"},
    {"[{a: 1}, [b]]", 1, 10, "not a sequence"},
    {"hello\n", 1, 1, "a document must be a mapping"},
    {"a: 1\n---\n42\n", 3, 1, "a document must be a mapping"},
    {"null\n", 1, 1, "a document must be a mapping"},
    {"\"\"\n", 1, 1, "a document must be a mapping"},
    {"kind: List\nitems:\n- a: 1\n- 2\n", 4, 3, "items[1] of a List is a scalar"},
    {"kind: List\nitems: [{}, {}, [x]]\n", 2, 17, "items[2] of a List is a sequence"},
    {"kind: List\nitems: 3\n", 1, 1, "a List must have an 'items' sequence"},
    {"kind: List\n", 1, 1, "a List must have an 'items' sequence"},
    {"kind: List\nitems: {a: 1}\n", 1, 1, "a List must have an 'items' sequence"},
    /* keys */
    {"? [a, b]\n: 1\n", 1, 3, "a sequence cannot be a key"},
    {"? {a: 1}\n: 1\n", 1, 3, "a mapping cannot be a key"},
    {"{[a]: 1}", 1, 2, "a sequence cannot be a key"},
    /* tags */
    {"a: !Ref x\n", 1, 4, "tag !Ref is not supported on a scalar"},
    {"a: !!binary aGk=\n", 1, 4, "tag !!binary is not supported"},
    {"a: !!timestamp 2001-12-14\n", 1, 4, "tag !!timestamp is not supported"},
    {"a: !!set {x: ~}\n", 1, 4, "tag !!set is not supported on a mapping"},
    {"a: !!map x\n", 1, 4, "tag !!map is not supported on a scalar"},
    {"a: !!seq {b: 1}\n", 1, 4, "tag !!seq is not supported on a mapping"},
    {"a: !!map [1]\n", 1, 4, "tag !!map is not supported on a sequence"},
    {"!Broker {a: 1}\n", 1, 1, "tag !Broker is not supported on a mapping"},
    {"%TAG !e! tag:example.com,2000:\n---\na: !e!x 1\n", 3, 4, "tag tag:example.com,2000:x"},
    {"a: !!int abc\n", 1, 4, "'abc' is not a valid !!int"},
    {"a: !!int 0x1F\n", 1, 4, "'0x1F' is not a valid !!int (only decimal integers are read)"},
    {"a: !!int 1.5\n", 1, 4, "'1.5' is not a valid !!int"},
    {"a: !!float x\n", 1, 4, "'x' is not a valid !!float"},
    {"a: !!bool yes\n", 1, 4, "'yes' is not a valid !!bool"},
    {"a: !!null 0\n", 1, 4, "'0' is not a valid !!null"},
    /* numbers JSON cannot hold */
    {"a: .inf\n", 1, 4, "'.inf' is not a finite number"},
    {"a: -.Inf\n", 1, 4, "'-.Inf' is not a finite number"},
    {"a: +.INF\n", 1, 4, "'+.INF' is not a finite number"},
    {"a: .nan\n", 1, 4, "'.nan' is not a finite number"},
    {"a: [1, .NaN]\n", 1, 8, "'.NaN' is not a finite number"},
    {"a: !!float .inf\n", 1, 4, "not a finite number"},
    {"a: 1e400\n", 1, 4, "number '1e400' is out of range"},
    {"a: -1.5e999\n", 1, 4, "out of range"},
    /* NUL characters */
    {"a: \"x\\0y\"\n", 1, 4, "a NUL character cannot be held (in 'x\\x00y')"},
    {"{\"a\": \"\\u0000\"}", 1, 7, "NUL character"},
    {"\"k\\0\": 1\n", 1, 1, "NUL character"},
    /* syntax errors, placed by libyaml */
    {"a: b: c\n", 1, 5, "mapping values are not allowed in this context"},
    {"a: [1, 2\n", 2, 1,
     "did not find expected ',' or ']' (while parsing a flow sequence at "
     "line 1, column 4)"},
    {"a:\n  b: 1\n c: 2\n", 3, 2, "did not find expected key"},
    {"a: 'open\n", 2, 1, "found unexpected end of stream"},
    {"{\"a\": 1,, \"b\": 2}", 1, 9, "did not find expected node content"},
    {"\ta: 1\n", 1, 1, "found character that cannot start any token"},
    {"a: 1\n\xff\n", 2, 1, "invalid leading UTF-8 octet (0xff)"},
    {"a: \xc3\n", 1, 5, "invalid trailing UTF-8 octet (0xa)"},
    {"a: x\xc3\xa9\xc3", 1, 6, "incomplete UTF-8 octet sequence"},
    {"abc: d\x01\n", 1, 7, "control characters are not allowed (0x1)"},
    {"{\"a\": \"\\ud83d\\ude00\"}", 1, 10, "JSON surrogate pairs"},
    {"%YAML 1.3\n---\na: 1\n", 1, 1, "found incompatible YAML document"},
};

static void refused(void **state) {
  for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
    const struct refusal *r = &refusals[i];
    CTX("%s", r->text);
    expect_refused(r->text, r->line, r->column, r->what);
  }
  CTX("a NUL byte in the input");
  expect_refused_len("a: b\0c\n", 7, 1, 5, "control characters are not allowed");
}

/* err may be NULL; *out is NULL after any failure. */
static void refused_without_err(void **state) {
  cJSON *out = (cJSON *)&out;
  EXPECT_RC(res_parse("a: *x", 5, &out, NULL), -EINVAL);
  EXPECT_TRUE(out == NULL);
  out = (cJSON *)&out;
  EXPECT_RC(res_load_file("/nonexistent/outpost/resources.yaml", 0, &out, NULL), -ENOENT);
  EXPECT_TRUE(out == NULL);
}

/* ---------------------------------------------------------------- limits */

static void depth_limit(void **state) {
  /* The root mapping is depth 1, so 63 brackets make 64. */
  char *ok = repeat("a: ", "[", RES_MAX_DEPTH - 1, "");
  char *text = repeat(ok, "]", RES_MAX_DEPTH - 1, "\n");
  CTX("depth %d", RES_MAX_DEPTH);
  cJSON_Delete(parse_ok(text, 1));
  free(ok);
  free(text);

  ok = repeat("a: ", "[", RES_MAX_DEPTH, "");
  text = repeat(ok, "]", RES_MAX_DEPTH, "\n");
  CTX("depth %d", RES_MAX_DEPTH + 1);
  expect_refused(text, 1, 3 + RES_MAX_DEPTH, "nesting deeper than 64");
  free(ok);
  free(text);

  CTX("block mappings 65 deep");
  size_t cap = 65 * (2 * 65 + 8), n = 0;
  text = malloc(cap);
  assert_non_null(text);
  for (int d = 0; d < RES_MAX_DEPTH + 1; d++)
    n += (size_t)snprintf(text + n, cap - n, "%*sk:\n", 2 * d, "");
  expect_refused(text, RES_MAX_DEPTH + 1, 2 * RES_MAX_DEPTH + 1, "nesting deeper than 64");
  free(text);

  CTX("100000 brackets: refused early, no crash");
  text = repeat("", "[{a: ", 100000, "");
  expect_refused(text, 1, 1 + 5 * 32, "nesting deeper than 64");
  free(text);
}

static void document_limit(void **state) {
  char head[16];
  snprintf(head, sizeof head, "a: 1\n");
  char *text = repeat(head, "---\na: 1\n", RES_MAX_DOCS - 1, "");
  CTX("%d documents", RES_MAX_DOCS);
  cJSON_Delete(parse_ok(text, RES_MAX_DOCS));
  free(text);

  /* Document k >= 2 starts with its "---" on line 2k - 2. */
  text = repeat(head, "---\na: 1\n", RES_MAX_DOCS, "");
  CTX("%d documents", RES_MAX_DOCS + 1);
  expect_refused(text, 2 * (RES_MAX_DOCS + 1) - 2, 1, "more than 10000 documents");
  free(text);

  CTX("%d empty documents count too", RES_MAX_DOCS + 1);
  text = repeat("", "---\n", RES_MAX_DOCS + 1, "");
  expect_refused(text, RES_MAX_DOCS + 1, 1, "more than 10000 documents");
  free(text);
}

static void resource_limit(void **state) {
  char *text = repeat("[{}", ",{}", RES_MAX_DOCS - 1, "]");
  CTX("array of %d", RES_MAX_DOCS);
  cJSON_Delete(parse_ok(text, RES_MAX_DOCS));
  free(text);

  text = repeat("[{}", ",{}", RES_MAX_DOCS, "]");
  CTX("array of %d", RES_MAX_DOCS + 1);
  expect_refused(text, 1, 1, "more than 10000 resources");
  free(text);

  text = repeat("kind: List\nitems:\n", "- {}\n", RES_MAX_DOCS + 1, "");
  CTX("List of %d", RES_MAX_DOCS + 1);
  expect_refused(text, 1, 1, "more than 10000 resources");
  free(text);

  /* Counted across documents: one more after a full List. */
  text = repeat("kind: List\nitems:\n", "- {}\n", RES_MAX_DOCS, "---\na: 1\n");
  CTX("List of %d, then one more document", RES_MAX_DOCS);
  expect_refused(text, RES_MAX_DOCS + 4, 1, "more than 10000 resources");
  free(text);
}

/* A mapping with many keys: duplicates are found by hashing, so this stays
 * fast, and the last key repeating the first is still caught. */
static void many_keys(void **state) {
  enum { N = 50000 };
  size_t cap = (size_t)N * 16 + 32, n = 0;
  char *text = malloc(cap);
  assert_non_null(text);
  for (int i = 0; i < N; i++) n += (size_t)snprintf(text + n, cap - n, "k%d: %d\n", i, i);
  cJSON *all = parse_ok(text, 1);
  EXPECT_INT(cJSON_GetArraySize(cJSON_GetArrayItem(all, 0)), N);
  EXPECT_INT(res_get(cJSON_GetArrayItem(all, 0), "k49999")->valuedouble, 49999);
  cJSON_Delete(all);
  snprintf(text + n, cap - n, "k0: again\n");
  expect_refused(text, N + 1, 1, "duplicate key 'k0'");
  free(text);
}

/* cJSON allocations failing at every point in turn: each parse gives 0 or
 * -ENOMEM with *out NULL, and (under ASan) nothing leaks. */
static long allocs_left;
static void *failing_malloc(size_t n) {
  return allocs_left-- > 0 ? malloc(n) : NULL;
}

static void out_of_memory(void **state) {
  static const char text[] = "kind: List\nitems:\n- {a: [1, x, {b: c}], d: 1e3}\n---\n"
                             "[{e: f}, {g: [h]}]\n";
  cJSON_Hooks hooks = {.malloc_fn = failing_malloc, .free_fn = free};
  bool succeeded = false;
  for (long k = 0; k < 200 && !succeeded; k++) {
    CTX("cJSON allocation %ld fails", k);
    cJSON *out = (cJSON *)&out;
    res_err err;
    allocs_left = k;
    cJSON_InitHooks(&hooks);
    int rc = res_parse(text, sizeof text - 1, &out, &err);
    cJSON_InitHooks(NULL);
    if (rc == 0) {
      succeeded = true;
      EXPECT_INT(cJSON_GetArraySize(out), 3);
      cJSON_Delete(out);
      continue;
    }
    EXPECT_RC(rc, -ENOMEM);
    EXPECT_TRUE(out == NULL);
    EXPECT_STR(err.msg, "out of memory");
  }
  EXPECT_TRUE(succeeded);
}

/* ---------------------------------------------------------------- files */

static char tmpdir[64];

static int make_tmpdir(void **state) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/test_resources.XXXXXX");
  return mkdtemp(tmpdir) ? reset_ctx(state) : -1;
}

static void write_file(const char *path, const char *text, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  EXPECT_INT(fwrite(text, 1, len, f), len);
  EXPECT_INT(fclose(f), 0);
}

static void files(void **state) {
  char path[128], dir[128];
  cJSON *out;
  res_err err;
  size_t len = strlen(brokers_and_trigger);
  snprintf(path, sizeof path, "%s/lab.yaml", tmpdir);
  write_file(path, brokers_and_trigger, len);

  CTX("max_bytes = size");
  EXPECT_RC(res_load_file(path, len, &out, &err), 0);
  EXPECT_INT(cJSON_GetArraySize(out), 3);
  EXPECT_STR(res_str(cJSON_GetArrayItem(out, 2), "spec.subscriber.uri"), "/events");
  cJSON_Delete(out);

  CTX("max_bytes = 0, no bound");
  EXPECT_RC(res_load_file(path, 0, &out, &err), 0);
  EXPECT_INT(cJSON_GetArraySize(out), 3);
  cJSON_Delete(out);

  CTX("max_bytes = size - 1");
  out = (cJSON *)&out;
  int rc = res_load_file(path, len - 1, &out, &err);
  expect_err(rc, &err, -EFBIG, 0, 0, "is larger than");
  EXPECT_TRUE(strstr(err.msg, path) != NULL);
  EXPECT_TRUE(out == NULL);

  CTX("missing file");
  snprintf(path, sizeof path, "%s/missing.yaml", tmpdir);
  rc = res_load_file(path, 0, &out, &err);
  expect_err(rc, &err, -ENOENT, 0, 0, "cannot open");
  EXPECT_TRUE(strstr(err.msg, "missing.yaml") != NULL);
  EXPECT_TRUE(out == NULL);

  CTX("a directory");
  snprintf(dir, sizeof dir, "%s", tmpdir);
  rc = res_load_file(dir, 0, &out, &err);
  expect_err(rc, &err, -EISDIR, 0, 0, "cannot read");
  EXPECT_TRUE(out == NULL);

  CTX("a parse error keeps its place");
  snprintf(path, sizeof path, "%s/dup.json", tmpdir);
  write_file(path, "{\n  \"a\": 1,\n  \"a\": 2\n}\n", 23);
  rc = res_load_file(path, 1 << 20, &out, &err);
  expect_err(rc, &err, -EINVAL, 3, 3, "duplicate key 'a'");
  EXPECT_TRUE(out == NULL);
  unlink(path);

  CTX("an empty file");
  snprintf(path, sizeof path, "%s/empty.yaml", tmpdir);
  write_file(path, "", 0);
  EXPECT_RC(res_load_file(path, 1, &out, &err), 0);
  EXPECT_INT(cJSON_GetArraySize(out), 0);
  cJSON_Delete(out);
  unlink(path);

  snprintf(path, sizeof path, "%s/lab.yaml", tmpdir);
  unlink(path);
  EXPECT_INT(rmdir(tmpdir), 0);
}

/* ---------------------------------------------------------------- readers */

static void readers(void **state) {
  cJSON *all;
  const cJSON *o = first("apiVersion: eventing.knative.dev/v1\n"
                         "kind: Trigger\n"
                         "metadata:\n"
                         "  name: t\n"
                         "  annotations: {a.b/c: dotted, \"\": empty}\n"
                         "spec:\n"
                         "  n: 3\n"
                         "  filters: [{exact: {type: x}}, {exact: {type: y}}]\n"
                         "  a.b: {c: nested-dot}\n",
                         &all);
  static const struct {
    const char *path, *want; /* want NULL: res_str gives NULL */
    bool present;            /* res_get finds a node */
  } cases[] = {
      {"kind", "Trigger", true},
      {"metadata.name", "t", true},
      {"spec.filters.1.exact.type", "y", true},
      {"spec.filters.0.exact.type", "x", true},
      {"spec.n", NULL, true},          /* a number */
      {"metadata", NULL, true},        /* an object */
      {"spec.filters", NULL, true},    /* an array */
      {"spec.filters.2", NULL, false}, /* past the end */
      {"spec.filters.x", NULL, false}, /* not an index */
      {"spec.filters.-1", NULL, false},
      {"spec.n.0", NULL, false}, /* a number has no children */
      {"metadata.name.x", NULL, false},
      {"metadata.annotations.a.b/c", NULL, false}, /* dotted keys need res_get_key */
      {"spec.a.b.c", NULL, false},
      {"Kind", NULL, false}, /* case-sensitive */
      {"", NULL, false},
      {".kind", NULL, false},
      {"kind.", NULL, false},
      {"metadata..name", NULL, false},
      {"missing", NULL, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CTX("path \"%s\"", cases[i].path);
    EXPECT_STR(res_str(o, cases[i].path), cases[i].want);
    EXPECT_INT(res_get(o, cases[i].path) != NULL, cases[i].present);
  }

  CTX("res_get_key");
  const cJSON *ann = res_get(o, "metadata.annotations");
  EXPECT_STR(cJSON_GetStringValue(res_get_key(ann, "a.b/c")), "dotted");
  EXPECT_STR(cJSON_GetStringValue(res_get_key(ann, "")), "empty");
  EXPECT_TRUE(res_get_key(ann, "a") == NULL);
  EXPECT_TRUE(res_get_key(ann, NULL) == NULL);
  EXPECT_TRUE(res_get_key(NULL, "a") == NULL);
  EXPECT_TRUE(res_get_key(res_get(o, "spec.filters"), "0") == NULL); /* not an object */
  EXPECT_STR(res_str(res_get_key(res_get(o, "spec"), "a.b"), "c"), "nested-dot");

  CTX("NULL arguments");
  EXPECT_TRUE(res_get(NULL, "kind") == NULL);
  EXPECT_TRUE(res_get(o, NULL) == NULL);
  EXPECT_TRUE(res_str(NULL, "kind") == NULL);
  cJSON_Delete(all);
}

static void res_is_cases(void **state) {
  static const struct {
    const char *doc, *group, *kind;
    bool want;
  } cases[] = {
      {"{apiVersion: eventing.knative.dev/v1, kind: Broker}", "eventing.knative.dev", "Broker",
       true},
      {"{apiVersion: eventing.knative.dev/v1beta2, kind: Broker}", "eventing.knative.dev", "Broker",
       true},
      {"{apiVersion: eventing.knative.dev/v1, kind: Broker}", NULL, "Broker", true},
      {"{apiVersion: eventing.knative.dev/v1, kind: Broker}", "eventing.knative.dev", "Trigger",
       false},
      {"{apiVersion: eventing.knative.dev/v1, kind: Broker}", "eventing.knative", "Broker", false},
      {"{apiVersion: eventing.knative.dev/v1, kind: Broker}", "knative.dev", "Broker", false},
      {"{apiVersion: eventing.knative.dev/v1, kind: Broker}", "eventing.knative.dev/v1", "Broker",
       false},
      {"{apiVersion: eventing.knative.dev/v1, kind: Broker}", "", "Broker", false},
      {"{apiVersion: eventing.knative.dev/, kind: Broker}", "eventing.knative.dev", "Broker",
       false},
      {"{apiVersion: eventing.knative.dev/v1/x, kind: Broker}", "eventing.knative.dev", "Broker",
       false},
      {"{apiVersion: eventing.knative.devx/v1, kind: Broker}", "eventing.knative.dev", "Broker",
       false},
      {"{apiVersion: v1, kind: Namespace}", "", "Namespace", true},
      {"{apiVersion: v1, kind: Service}", "eventing.knative.dev", "Service", false},
      {"{kind: Broker}", NULL, "Broker", true},
      {"{kind: Broker}", "eventing.knative.dev", "Broker", false},
      {"{kind: broker}", NULL, "Broker", false},
      {"{kind: [Broker]}", NULL, "Broker", false},
      {"{apiVersion: 1, kind: Broker}", "", "Broker", false},
      {"{apiVersion: eventing.knative.dev/v1}", "eventing.knative.dev", "Broker", false},
      {"{apiVersion: eventing.knative.dev/v1, kind: Broker}", "eventing.knative.dev", NULL, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CTX("%s is %s/%s", cases[i].doc, cases[i].group ? cases[i].group : "(any)",
        cases[i].kind ? cases[i].kind : "(null)");
    cJSON *all;
    const cJSON *o = first(cases[i].doc, &all);
    EXPECT_INT(res_is(o, cases[i].group, cases[i].kind), cases[i].want);
    cJSON_Delete(all);
  }
  CTX("NULL object");
  EXPECT_INT(res_is(NULL, NULL, "Broker"), false);
}

static bool subdomain(const char *s) {
  return res_valid_dns_subdomain(s, strlen(s));
}

/* Node names: EKS's and GKE's have dots; each label keeps the DNS-label
 * rules; 253 bytes at most. */
static void dns_subdomains(void **state) {
  char long_ok[254], too_long[255];
  EXPECT_INT(subdomain("node-1"), true);
  EXPECT_INT(subdomain("ip-10-0-1-7.us-west-2.compute.internal"), true);
  EXPECT_INT(subdomain("a.b"), true);
  EXPECT_INT(subdomain(""), false);
  EXPECT_INT(subdomain("."), false);
  EXPECT_INT(subdomain("a..b"), false);
  EXPECT_INT(subdomain(".a"), false);
  EXPECT_INT(subdomain("a."), false);
  EXPECT_INT(subdomain("a.-b"), false);
  EXPECT_INT(subdomain("a-.b"), false);
  EXPECT_INT(subdomain("Node.x"), false);
  EXPECT_INT(subdomain("a_b.c"), false);
  /* 4 labels of 63 and one of 1 with 4 dots: 253. */
  memset(long_ok, 'a', sizeof long_ok - 1);
  long_ok[63] = long_ok[127] = long_ok[191] = long_ok[251] = '.';
  long_ok[253] = '\0';
  EXPECT_INT(strlen(long_ok), 253);
  EXPECT_INT(subdomain(long_ok), true);
  memcpy(too_long, long_ok, 253);
  too_long[253] = 'a';
  too_long[254] = '\0';
  EXPECT_INT(subdomain(too_long), false);
  /* A label of 64. */
  long_ok[63] = 'a';
  long_ok[64] = '\0';
  EXPECT_INT(subdomain(long_ok), false);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(multi_document_yaml),
      T(empty_inputs),
      T(json_single_object),
      T(json_array),
      T(kind_list),
      T(scalar_rules),
      T(float_in_comma_locale),
      T(scalar_keys),
      T(block_scalars),
      T(nesting),
      T(encodings),
      T(refused),
      T(refused_without_err),
      T(depth_limit),
      T(document_limit),
      T(resource_limit),
      T(many_keys),
      T(out_of_memory),
      cmocka_unit_test_setup(files, make_tmpdir),
      T(readers),
      T(res_is_cases),
      T(dns_subdomains),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
