/*
 * test_index.c — unit tests for trigger/index.c. The index must find exactly
 * the triggers that evaluating every trigger (trigger_match) finds: a
 * randomized differential test with a fixed seed runs thousands of triggers
 * of every kind against events from a small vocabulary (so that they match),
 * then removes and re-adds triggers and compares again. Structural checks
 * count how many triggers an event had evaluated (a count, never a time):
 * few when it matches few, however many triggers there are. Long values
 * (past the index's 1024-byte stack key) and long prefixes (past 256 bytes,
 * which go to the list every event visits) are covered in both.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "core/resources.h"
#include "trigger/index.h"
#include "trigger/trigger.h"

#include "test_util.h"

/* ---------------------------------------------------------------- helpers */

/* A trigger with the given spec lines (filters), which must be accepted. */
static trigger *mk(const char *spec_lines) {
  ce_buf text;
  ce_buf_init(&text);
  assert_int_equal(ce_buf_append_str(&text, "apiVersion: eventing.knative.dev/v1\n"
                                            "kind: Trigger\n"
                                            "metadata: {name: t}\n"
                                            "spec:\n"
                                            "  broker: default\n"
                                            "  subscriber: {uri: 'http://sink.example/'}\n"),
                   0);
  assert_int_equal(ce_buf_append_str(&text, spec_lines), 0);
  cJSON *all = NULL;
  res_err rerr;
  int rc = res_parse(text.data, text.len, &all, &rerr);
  if (rc) fail_msg("%s%sres_parse: %s\n%s", WHERE, rerr.msg, text.data);
  trigger_err err;
  trigger *tr = trigger_parse(cJSON_GetArrayItem(all, 0), &err);
  if (!tr) fail_msg("%s%srefused at %s: %s\n%s", WHERE, err.path, err.msg, text.data);
  cJSON_Delete(all);
  ce_buf_cleanup(&text);
  return tr;
}

/* A trigger with one filter: {dialect: {attr: 'value'}}. */
static trigger *mk1(const char *dialect, const char *attr, const char *value) {
  ce_buf b;
  ce_buf_init(&b);
  assert_int_equal(ce_buf_append_str(&b, "  filters: [{"), 0);
  assert_int_equal(ce_buf_append_str(&b, dialect), 0);
  assert_int_equal(ce_buf_append_str(&b, ": {"), 0);
  assert_int_equal(ce_buf_append_str(&b, attr), 0);
  assert_int_equal(ce_buf_append_str(&b, ": '"), 0);
  assert_int_equal(ce_buf_append_str(&b, value), 0);
  assert_int_equal(ce_buf_append_str(&b, "'}}]\n"), 0);
  trigger *tr = mk(b.data);
  ce_buf_cleanup(&b);
  return tr;
}

static ce_event *ev_with(const char *name, const char *value) {
  ce_event *ev = ce_event_new();
  assert_non_null(ev);
  EXPECT_RC(ce_event_set_str(ev, name, value, NULL), 0);
  return ev;
}

/* n copies of c, NUL-terminated; the caller frees. */
static char *repeat(char c, size_t n, const char *tail) {
  size_t tl = strlen(tail);
  char *s = malloc(n + tl + 1);
  assert_non_null(s);
  memset(s, c, n);
  memcpy(s + n, tail, tl + 1);
  return s;
}

static void count_fn(void *opaque, const trigger *tr) {
  (void)tr;
  (*(size_t *)opaque)++;
}

/* ---------------------------------------------------------------- API */

static void test_add_remove(void **state) {
  (void)state;
  trigger_index_free(NULL);
  trigger_index *ix = trigger_index_new();
  assert_non_null(ix);
  trigger *a = mk1("exact", "type", "a"), *a2 = mk1("exact", "type", "a"),
          *p = mk1("prefix", "source", "/o"), *any = mk("  filters: [{suffix: {type: a}}]\n");
  ce_event *ev = ev_with("type", "a");
  EXPECT_RC(ce_event_set_str(ev, "source", "/orders", NULL), 0);
  size_t evaluated = 99, calls = 0;

  EXPECT_INT(trigger_index_count(ix), 0);
  EXPECT_INT(trigger_index_match(ix, ev, NULL, NULL, &evaluated), 0);
  EXPECT_INT(evaluated, 0);
  EXPECT_RC(trigger_index_remove(ix, a), -ENOENT);

  EXPECT_RC(trigger_index_add(ix, a), 0);
  EXPECT_RC(trigger_index_add(ix, a2), 0); /* the same key twice */
  EXPECT_RC(trigger_index_add(ix, p), 0);
  EXPECT_RC(trigger_index_add(ix, any), 0);
  EXPECT_INT(trigger_index_count(ix), 4);
  EXPECT_INT(trigger_index_match(ix, ev, count_fn, &calls, &evaluated), 4);
  EXPECT_INT(calls, 4);
  EXPECT_INT(evaluated, 4);
  EXPECT_INT(trigger_index_match(ix, ev, NULL, NULL, NULL), 4);

  EXPECT_RC(trigger_index_remove(ix, a), 0);
  EXPECT_RC(trigger_index_remove(ix, a), -ENOENT);
  EXPECT_RC(trigger_index_remove(ix, any), 0);
  EXPECT_RC(trigger_index_remove(ix, any), -ENOENT);
  EXPECT_INT(trigger_index_count(ix), 2);
  calls = 0;
  EXPECT_INT(trigger_index_match(ix, ev, count_fn, &calls, &evaluated), 2);
  EXPECT_INT(calls, 2);
  EXPECT_INT(evaluated, 2);

  /* Removing the last trigger of a key, then adding it back. */
  EXPECT_RC(trigger_index_remove(ix, a2), 0);
  EXPECT_RC(trigger_index_remove(ix, p), 0);
  EXPECT_INT(trigger_index_count(ix), 0);
  EXPECT_INT(trigger_index_match(ix, ev, NULL, NULL, &evaluated), 0);
  EXPECT_INT(evaluated, 0);
  EXPECT_RC(trigger_index_add(ix, p), 0);
  EXPECT_INT(trigger_index_match(ix, ev, NULL, NULL, &evaluated), 1);
  EXPECT_INT(evaluated, 1);

  trigger_index_free(ix); /* with a trigger still in it: the triggers are not freed */
  trigger_free(a);
  trigger_free(a2);
  trigger_free(p);
  trigger_free(any);
  ce_event_free(ev);
}

/* ---------------------------------------------------------------- structure */

#define N_EXACT 10000

/* 10000 triggers on distinct types: an event is evaluated against the one
 * its type names and the few that no key covers, nothing else. */
static void test_evaluated_exact(void **state) {
  (void)state;
  trigger_index *ix = trigger_index_new();
  assert_non_null(ix);
  trigger **trs = calloc(N_EXACT + 3, sizeof *trs);
  assert_non_null(trs);
  for (int i = 0; i < N_EXACT; i++) {
    char type[32];
    snprintf(type, sizeof type, "com.example.t%d", i);
    trs[i] = mk1("exact", "type", type);
    EXPECT_RC(trigger_index_add(ix, trs[i]), 0);
  }
  size_t evaluated = 0, calls = 0;
  ce_event *ev = ev_with("type", "com.example.t1234");
  EXPECT_INT(trigger_index_match(ix, ev, count_fn, &calls, &evaluated), 1);
  EXPECT_INT(calls, 1);
  EXPECT_INT(evaluated, 1);
  ce_event_free(ev);

  ev = ev_with("type", "com.example.t99999");
  EXPECT_INT(trigger_index_match(ix, ev, NULL, NULL, &evaluated), 0);
  EXPECT_INT(evaluated, 0);
  ce_event_free(ev);

  ev = ev_with("source", "/s");
  EXPECT_INT(trigger_index_match(ix, ev, NULL, NULL, &evaluated), 0);
  EXPECT_INT(evaluated, 0);

  /* Three triggers no key covers: every event evaluates them. */
  trs[N_EXACT] = mk("  filters: [{suffix: {source: /s}}]\n");
  trs[N_EXACT + 1] = mk("");
  trs[N_EXACT + 2] = mk("  filters: [{cesql: \"EXISTS type OR source = '/s'\"}]\n");
  for (int i = N_EXACT; i < N_EXACT + 3; i++) EXPECT_RC(trigger_index_add(ix, trs[i]), 0);
  EXPECT_INT(trigger_index_match(ix, ev, NULL, NULL, &evaluated), 3);
  EXPECT_INT(evaluated, 3);
  EXPECT_RC(ce_event_set_str(ev, "type", "com.example.t7", NULL), 0);
  EXPECT_INT(trigger_index_match(ix, ev, NULL, NULL, &evaluated), 4);
  EXPECT_INT(evaluated, 4);
  ce_event_free(ev);

  /* Remove all but one trigger in ten: the rest are still found alone. */
  for (int i = 0; i < N_EXACT; i++)
    if (i % 10) EXPECT_RC(trigger_index_remove(ix, trs[i]), 0);
  EXPECT_INT(trigger_index_count(ix), N_EXACT / 10 + 3);
  ev = ev_with("type", "com.example.t1230"); /* t1230, the empty filter, EXISTS type */
  EXPECT_INT(trigger_index_match(ix, ev, NULL, NULL, &evaluated), 3);
  EXPECT_INT(evaluated, 4);
  EXPECT_RC(ce_event_set_str(ev, "type", "com.example.t1231", NULL), 0); /* removed */
  EXPECT_INT(trigger_index_match(ix, ev, NULL, NULL, &evaluated), 2);
  EXPECT_INT(evaluated, 3);
  ce_event_free(ev);

  trigger_index_free(ix);
  for (int i = 0; i < N_EXACT + 3; i++) trigger_free(trs[i]);
  free(trs);
}

/* 1000 prefixes: an event probes each prefix length of its value and
 * evaluates only the triggers whose prefix it has. */
static void test_evaluated_prefix(void **state) {
  (void)state;
  enum { N = 1000 };
  trigger_index *ix = trigger_index_new();
  assert_non_null(ix);
  trigger *trs[N];
  for (int i = 0; i < N; i++) {
    char prefix[32];
    snprintf(prefix, sizeof prefix, "/p%d/", i);
    trs[i] = mk1("prefix", "source", prefix);
    EXPECT_RC(trigger_index_add(ix, trs[i]), 0);
  }
  size_t evaluated = 0;
  ce_event *ev = ev_with("source", "/p12/orders/eu");
  EXPECT_INT(trigger_index_match(ix, ev, NULL, NULL, &evaluated), 1);
  EXPECT_INT(evaluated, 1);
  EXPECT_RC(ce_event_set_str(ev, "source", "/p12", NULL), 0); /* shorter than the prefix */
  EXPECT_INT(trigger_index_match(ix, ev, NULL, NULL, &evaluated), 0);
  EXPECT_INT(evaluated, 0);
  EXPECT_RC(ce_event_set_str(ev, "source", "/p999/", NULL), 0); /* the whole value */
  EXPECT_INT(trigger_index_match(ix, ev, NULL, NULL, &evaluated), 1);
  EXPECT_INT(evaluated, 1);
  ce_event_free(ev);
  trigger_index_free(ix);
  for (int i = 0; i < N; i++) trigger_free(trs[i]);
}

/* Values longer than the 1024-byte key buffer on the stack, and prefixes at
 * and past the 256-byte limit of prefix keys. */
static void test_long_values(void **state) {
  (void)state;
  char *long_a = repeat('l', 2000, "a"), *long_b = repeat('l', 2000, "b");
  char *p255 = repeat('l', 255, ""), *p256 = repeat('l', 256, ""), *p257 = repeat('l', 257, "");
  char *p300b = repeat('l', 299, "b"), *p1500 = repeat('l', 1500, "");
  trigger *exact_a = mk1("exact", "type", long_a), *pre255 = mk1("prefix", "type", p255),
          *pre256 = mk1("prefix", "type", p256), *pre257 = mk1("prefix", "type", p257),
          *pre300b = mk1("prefix", "type", p300b), *pre1500 = mk1("prefix", "type", p1500),
          *suf = mk1("suffix", "type", "lb");
  trigger *all[] = {exact_a, pre255, pre256, pre257, pre300b, pre1500, suf};
  trigger_index *ix = trigger_index_new();
  assert_non_null(ix);
  for (size_t i = 0; i < 7; i++) EXPECT_RC(trigger_index_add(ix, all[i]), 0);

  /* pre257, pre300b, pre1500 and suf are in the list every event visits. */
  static const struct {
    const char *what;
    size_t hits, evaluated;
  } want[] = {
      {"long_a", 5, 7}, /* exact_a, the three l-prefixes of 255..1500; suf no */
      {"long_b", 5, 6}, /* the l-prefixes and suf */
      {"p256", 2, 6},   /* pre255, pre256 */
      {"p255", 1, 5},   /* pre255 */
      {"short", 0, 4},  /* "lll": no prefix key is that short */
      {"p300b", 5, 6},  /* pre255, pre256, pre257, pre300b, suf */
  };
  const char *values[] = {long_a, long_b, p256, p255, "lll", p300b};
  for (size_t i = 0; i < 6; i++) {
    CTX("%s", want[i].what);
    ce_event *ev = ev_with("type", values[i]);
    size_t evaluated = 0, n_linear = 0;
    for (size_t k = 0; k < 7; k++) n_linear += trigger_match(all[k], ev);
    EXPECT_INT(n_linear, want[i].hits);
    EXPECT_INT(trigger_index_match(ix, ev, NULL, NULL, &evaluated), want[i].hits);
    EXPECT_INT(evaluated, want[i].evaluated);
    ce_event_free(ev);
  }
  trigger_index_free(ix);
  for (size_t i = 0; i < 7; i++) trigger_free(all[i]);
  free(long_a);
  free(long_b);
  free(p255);
  free(p256);
  free(p257);
  free(p300b);
  free(p1500);
}

/* ---------------------------------------------------------------- differential */

/* splitmix64: a fixed seed gives the same triggers and events everywhere. */
static uint64_t rng_state;
static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static size_t pick(size_t n) {
  return (size_t)(rnd() % n);
}
static bool chance(int percent) {
  return (int)pick(100) < percent;
}

/* The vocabulary events and filters draw from. Long values share long
 * prefixes, so that prefix filters past 256 bytes match some of them. */
enum { V_STR, V_INT, V_BOOL };
typedef struct vocab {
  const char *name;
  int type;
  int present; /* percent of events that carry it */
  const char *values[8];
  size_t n;
} vocab;

static char *long_type_a, *long_type_b, *long_source;
static vocab vocabs[] = {
    {"type",
     V_STR,
     95,
     {"com.example.order.created", "com.example.order.paid", "com.example.user.created", "a", "ab",
      "order.created", NULL, NULL},
     8},
    {"source", V_STR, 90, {"/orders", "/orders/eu", "/orders/us", "/users", "/", NULL}, 6},
    {"subject", V_STR, 60, {"vip", "vip-1", "s1", "7"}, 4},
    {"region", V_STR, 50, {"eu", "us", "eu-west", ""}, 4},
    {"knativebrokerttl", V_INT, 60, {"0", "1", "255", "25"}, 4},
    {"flag", V_BOOL, 30, {"true", "false"}, 2},
};
#define N_VOCABS (sizeof vocabs / sizeof *vocabs)

static void vocab_init(void) {
  long_type_a = repeat('l', 1500, ".a");
  long_type_b = repeat('l', 1500, ".b");
  long_source = repeat('p', 1200, "/x");
  long_source[0] = '/';
  vocabs[0].values[6] = long_type_a;
  vocabs[0].values[7] = long_type_b;
  vocabs[1].values[5] = long_source;
}

static void vocab_cleanup(void) {
  free(long_type_a);
  free(long_type_b);
  free(long_source);
}

static ce_event *random_event(ce_buf *desc) {
  ce_event *ev = ce_event_new();
  assert_non_null(ev);
  ce_buf_reset(desc);
  for (size_t i = 0; i < N_VOCABS; i++) {
    const vocab *v = &vocabs[i];
    if (!chance(v->present)) continue;
    const char *value = v->values[pick(v->n)];
    int rc;
    if (v->type == V_INT)
      rc = ce_event_set_int(ev, v->name, (int32_t)atoi(value), NULL);
    else if (v->type == V_BOOL)
      rc = ce_event_set_bool(ev, v->name, strcmp(value, "true") == 0, NULL);
    else
      rc = ce_event_set_str(ev, v->name, value, NULL);
    EXPECT_RC(rc, 0);
    char head[64];
    snprintf(head, sizeof head, "%s=", v->name);
    ce_buf_append_str(desc, head);
    ce_buf_append(desc, value, strlen(value) > 40 ? 40 : strlen(value));
    ce_buf_append_str(desc, strlen(value) > 40 ? "...(long) " : " ");
  }
  return ev;
}

/* A value for a filter on v: one events carry, a cut of one (prefixes and
 * suffixes of every length, long ones included), or one no event has. */
static void random_value(const vocab *v, int dialect, ce_buf *out) {
  const char *value = v->values[pick(v->n)];
  size_t len = strlen(value);
  if (chance(5)) value = "zz", len = 2;
  if (dialect == 1 || dialect == 2) { /* prefix, suffix */
    size_t cut = pick(len + 1);
    if (len > 300 && chance(50)) cut = 250 + pick(12); /* around MAX_PREFIX */
    if (dialect == 1)
      ce_buf_append(out, value, cut);
    else
      ce_buf_append(out, value + len - cut, cut);
  } else {
    ce_buf_append(out, value, len);
  }
}

static const char *const dialects[] = {"exact", "prefix", "suffix"};

static void append_simple(ce_buf *out, int dialect) {
  const vocab *v = &vocabs[pick(N_VOCABS)];
  ce_buf_append_str(out, "{");
  ce_buf_append_str(out, dialects[dialect]);
  ce_buf_append_str(out, ": {");
  ce_buf_append_str(out, v->name);
  ce_buf_append_str(out, ": '");
  random_value(v, dialect, out);
  ce_buf_append_str(out, "'}}");
}

/* CESQL conditions with no exact conjunct a key could use. The first three
 * are ANDed before an exact conjunct (see append_cesql). */
static const char *const free_cesql[] = {
    "EXISTS region",
    "knativebrokerttl > 100",
    "type LIKE 'com.%'",
    "source LIKE '%/eu'",
    "type = 'a' OR subject = 'vip'",
    "NOT (type = 'ab')",
    "INT(subject) > 0",
    "flag",
    "region IN ('eu', 'us') AND knativebrokerttl >= 1",
    "LENGTH(type) > 100",
};
#define N_FREE_CESQL (sizeof free_cesql / sizeof *free_cesql)

/* "attr = 'value'" for a random attribute and value. */
static void append_cesql_eq(ce_buf *out) {
  const vocab *v = &vocabs[pick(N_VOCABS)];
  ce_buf_append_str(out, v->name);
  ce_buf_append_str(out, " = '");
  random_value(v, 0, out);
  ce_buf_append_str(out, "'");
}

static void append_cesql(ce_buf *out, bool with_exact) {
  ce_buf_append_str(out, "{cesql: \"");
  if (!with_exact) {
    ce_buf_append_str(out, free_cesql[pick(N_FREE_CESQL)]);
  } else if (chance(50)) {
    append_cesql_eq(out);
    if (chance(70)) {
      /* Any condition, OR included: "a = 'v' AND b OR c" groups as
       * (a = 'v' AND b) OR c, which no key may claim. */
      ce_buf_append_str(out, " AND ");
      ce_buf_append_str(out, free_cesql[pick(N_FREE_CESQL)]);
    }
  } else {
    ce_buf_append_str(out, free_cesql[pick(3)]);
    ce_buf_append_str(out, " AND ");
    append_cesql_eq(out);
  }
  ce_buf_append_str(out, "\"}");
}

/* A random filter of any dialect, nested at most `depth` more levels. */
static void append_filter(ce_buf *out, int depth) {
  size_t k = pick(depth > 0 ? 8 : 5);
  switch (k) {
  case 0:
  case 1:
  case 2:
    append_simple(out, (int)k);
    return;
  case 3:
    append_cesql(out, false);
    return;
  case 4:
    append_cesql(out, true);
    return;
  case 5:
  case 6: {
    ce_buf_append_str(out, k == 5 ? "{all: [" : "{any: [");
    size_t n = pick(4); /* empty ones included */
    for (size_t i = 0; i < n; i++) {
      if (i) ce_buf_append_str(out, ", ");
      append_filter(out, depth - 1);
    }
    ce_buf_append_str(out, "]}");
    return;
  }
  default:
    ce_buf_append_str(out, "{not: ");
    append_filter(out, depth - 1);
    ce_buf_append_str(out, "}");
  }
}

static void append_attributes(ce_buf *out) {
  ce_buf_append_str(out, "  filter: {attributes: {");
  size_t first = pick(N_VOCABS), n = 1 + pick(3);
  for (size_t i = 0; i < n; i++) {
    const vocab *v = &vocabs[(first + i * 2) % N_VOCABS]; /* distinct names */
    if (i) ce_buf_append_str(out, ", ");
    ce_buf_append_str(out, v->name);
    ce_buf_append_str(out, ": '");
    if (!chance(20)) random_value(v, 0, out);
    ce_buf_append_str(out, "'");
  }
  ce_buf_append_str(out, "}}\n");
}

/* The spec lines of a random trigger, weighted towards what people write:
 * mostly one exact filter, then prefixes, attributes and CESQL. */
static void random_spec(ce_buf *out) {
  ce_buf_reset(out);
  size_t k = pick(100);
  if (k < 15) {
    append_attributes(out);
    return;
  }
  if (k < 20) {
    static const char *const none[] = {"", "  filters: []\n", "  filter: {}\n"};
    ce_buf_append_str(out, none[pick(3)]);
    return;
  }
  if (k < 25) append_attributes(out); /* and filters, which win unless empty */
  ce_buf_append_str(out, "  filters: [");
  if (k < 50) {
    append_simple(out, 0);
  } else if (k < 60) {
    append_simple(out, 1);
  } else if (k < 63) {
    append_simple(out, 2);
  } else if (k < 73) {
    append_cesql(out, true);
  } else if (k < 78) {
    append_cesql(out, false);
  } else {
    size_t n = pick(4);
    for (size_t i = 0; i < n; i++) {
      if (i) ce_buf_append_str(out, ", ");
      append_filter(out, 3);
    }
  }
  ce_buf_append_str(out, "]\n");
}

#define N_TRIGGERS 3000

/* A trigger's number, found from its pointer. */
typedef struct by_ptr {
  const trigger *tr;
  size_t i;
} by_ptr;

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)((const by_ptr *)a)->tr, y = (uintptr_t)((const by_ptr *)b)->tr;
  return (x > y) - (x < y);
}

/* What the index reported for one event. */
typedef struct seen {
  const by_ptr *map; /* sorted by pointer */
  unsigned char *hit;
  size_t calls, unknown, twice;
} seen;

static void seen_fn(void *opaque, const trigger *tr) {
  seen *s = opaque;
  s->calls++;
  by_ptr key = {tr, 0};
  const by_ptr *at = bsearch(&key, s->map, N_TRIGGERS, sizeof *s->map, cmp_ptr);
  if (!at) {
    s->unknown++;
    return;
  }
  if (s->hit[at->i]) s->twice++;
  s->hit[at->i] = 1;
}

/* Index hits by the kind of key the trigger is filed under. */
typedef struct tally {
  size_t matches, by_key[3]; /* exact, prefix, none */
  size_t long_prefix, long_exact, evaluated, events;
} tally;

/* Matches n_events random events through the index and against every live
 * trigger, and fails at the first difference. */
static void compare(const char *phase, trigger **trs, char **specs, const by_ptr *map,
                    const unsigned char *live, trigger_index *ix, size_t n_events, tally *t) {
  seen s = {map, calloc(N_TRIGGERS, 1), 0, 0, 0};
  assert_non_null(s.hit);
  ce_buf desc;
  ce_buf_init(&desc);
  size_t n_live = 0;
  for (size_t i = 0; i < N_TRIGGERS; i++) n_live += live[i];
  EXPECT_INT(trigger_index_count(ix), n_live);
  for (size_t e = 0; e < n_events; e++) {
    ce_event *ev = random_event(&desc);
    CTX("%s, event %zu [%s]", phase, e, desc.data ? desc.data : "");
    memset(s.hit, 0, N_TRIGGERS);
    s.calls = 0;
    size_t evaluated = 0;
    size_t got = trigger_index_match(ix, ev, seen_fn, &s, &evaluated);
    EXPECT_INT(got, s.calls);
    EXPECT_INT(s.unknown, 0);
    EXPECT_INT(s.twice, 0);
    EXPECT_TRUE(evaluated <= n_live);
    t->evaluated += evaluated;
    t->events++;
    for (size_t i = 0; i < N_TRIGGERS; i++) {
      bool want = live[i] && trigger_match(trs[i], ev);
      if (want != (bool)s.hit[i])
        fail_msg("%s%strigger %zu (%s): index says %s, trigger_match says %s; spec:\n%s", WHERE, i,
                 live[i] ? "live" : "removed", s.hit[i] ? "match" : "no match",
                 want ? "match" : "no match", specs[i]);
      if (!want) continue;
      t->matches++;
      const char *attr, *value;
      int kind = trigger_index_key(trs[i], &attr, &value);
      t->by_key[kind < 0 ? 2 : kind == TRIGGER_EXACT ? 0 : 1]++;
      if (kind == TRIGGER_PREFIX && strlen(value) > 256) t->long_prefix++;
      if (kind == TRIGGER_EXACT && strlen(value) > 1024) t->long_exact++;
    }
    ce_event_free(ev);
  }
  ce_buf_cleanup(&desc);
  free(s.hit);
}

static void test_differential(void **state) {
  (void)state;
  rng_state = 20261121;
  vocab_init();
  trigger **trs = calloc(N_TRIGGERS, sizeof *trs);
  char **specs = calloc(N_TRIGGERS, sizeof *specs);
  unsigned char *live = calloc(N_TRIGGERS, 1);
  assert_true(trs && specs && live);
  ce_buf spec;
  ce_buf_init(&spec);
  for (size_t i = 0; i < N_TRIGGERS; i++) {
    random_spec(&spec);
    CTX("trigger %zu", i);
    trs[i] = mk(spec.data);
    specs[i] = strdup(spec.data);
    assert_non_null(specs[i]);
  }
  ce_buf_cleanup(&spec);
  /* seen_fn finds a trigger's number by bsearch over the pointers. */
  by_ptr *map = calloc(N_TRIGGERS, sizeof *map);
  assert_non_null(map);
  for (size_t i = 0; i < N_TRIGGERS; i++) map[i] = (by_ptr){trs[i], i};
  qsort(map, N_TRIGGERS, sizeof *map, cmp_ptr);

  trigger_index *ix = trigger_index_new();
  assert_non_null(ix);
  for (size_t i = 0; i < N_TRIGGERS; i++) {
    EXPECT_RC(trigger_index_add(ix, trs[i]), 0);
    live[i] = 1;
  }
  tally t = {0};
  compare("all added", trs, specs, map, live, ix, 1500, &t);

  /* Remove a third, at random. */
  for (size_t i = 0; i < N_TRIGGERS; i++)
    if (chance(33)) {
      EXPECT_RC(trigger_index_remove(ix, trs[i]), 0);
      live[i] = 0;
    }
  compare("a third removed", trs, specs, map, live, ix, 800, &t);

  /* Put half of those back and remove others. */
  for (size_t i = 0; i < N_TRIGGERS; i++) {
    if (!live[i] && chance(50)) {
      EXPECT_RC(trigger_index_add(ix, trs[i]), 0);
      live[i] = 1;
    } else if (live[i] && chance(10)) {
      EXPECT_RC(trigger_index_remove(ix, trs[i]), 0);
      EXPECT_RC(trigger_index_remove(ix, trs[i]), -ENOENT);
      live[i] = 0;
    }
  }
  compare("churned", trs, specs, map, live, ix, 800, &t);

  /* Everything out: nothing matches, nothing is evaluated. */
  for (size_t i = 0; i < N_TRIGGERS; i++)
    if (live[i]) {
      EXPECT_RC(trigger_index_remove(ix, trs[i]), 0);
      live[i] = 0;
    }
  tally empty = {0};
  compare("all removed", trs, specs, map, live, ix, 50, &empty);
  EXPECT_INT(empty.matches, 0);
  EXPECT_INT(empty.evaluated, 0);

  /* The test is only worth something if every path found matches. */
  print_message("differential: %zu matches over %zu events (exact %zu, prefix %zu, unkeyed %zu,"
                " long prefix %zu, long exact %zu); %.1f of ~%d triggers evaluated per event\n",
                t.matches, t.events, t.by_key[0], t.by_key[1], t.by_key[2], t.long_prefix,
                t.long_exact, (double)t.evaluated / (double)t.events, N_TRIGGERS);
  CTX("coverage");
  EXPECT_TRUE(t.matches > 10 * t.events);
  EXPECT_TRUE(t.by_key[0] > 1000);
  EXPECT_TRUE(t.by_key[1] > 1000);
  EXPECT_TRUE(t.by_key[2] > 1000);
  EXPECT_TRUE(t.long_prefix > 10);
  EXPECT_TRUE(t.long_exact > 10);
  EXPECT_TRUE(t.evaluated < t.events * N_TRIGGERS / 2);

  trigger_index_free(ix);
  for (size_t i = 0; i < N_TRIGGERS; i++) {
    trigger_free(trs[i]);
    free(specs[i]);
  }
  free(trs);
  free(specs);
  free(map);
  free(live);
  vocab_cleanup();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_add_remove),  T(test_evaluated_exact), T(test_evaluated_prefix),
      T(test_long_values), T(test_differential),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
