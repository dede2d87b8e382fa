/*
 * test_trigger.c — unit tests for trigger/trigger.c: Trigger resources read
 * from YAML (res_parse + trigger_parse), the filter semantics (spec.filter
 * attributes; spec.filters with exact, prefix, suffix, all, any, not and
 * cesql; Knative's pass / fail / no-opinion rules), every refusal with the
 * path and reason it gives, the delivery spec and the ordering annotation,
 * ISO-8601 durations, and the key trigger_index_key files a trigger under.
 * Each filter case is also checked through a one-trigger index, so that the
 * index never disagrees with trigger_match on these edge cases.
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

#include "core/resources.h"
#include "trigger/index.h"
#include "trigger/trigger.h"

#include "test_util.h"

/* ---------------------------------------------------------------- helpers */

#define HEAD "apiVersion: eventing.knative.dev/v1\nkind: Trigger\n"
#define META "metadata: {name: t1, namespace: team-a}\n"
#define BRK  "  broker: default\n"
#define SUB  "  subscriber: {uri: 'http://sink.example/in'}\n"
/* A whole Trigger whose spec is the given lines (each indented by two). */
#define WITH_SPEC(lines) HEAD META "spec:\n" lines
/* A valid Trigger with the given extra spec lines (filters, delivery). */
#define VALID(lines) WITH_SPEC(BRK SUB lines)

/* Parses text, which must hold exactly one resource, and reads it as a
 * trigger. Returns the trigger or NULL with *err filled. */
static trigger *load(const char *text, trigger_err *err) {
  cJSON *all = NULL;
  res_err rerr;
  int rc = res_parse(text, strlen(text), &all, &rerr);
  if (rc != 0) fail_msg("%s%sres_parse: %s (%s)\n%s", WHERE, errname(rc), rerr.msg, text);
  EXPECT_INT(cJSON_GetArraySize(all), 1);
  memset(err, 0x55, sizeof *err); /* must be overwritten on failure */
  trigger *tr = trigger_parse(cJSON_GetArrayItem(all, 0), err);
  cJSON_Delete(all); /* the trigger keeps nothing of the tree */
  return tr;
}

/* Reads text, which must be accepted. */
static trigger *load_ok(const char *text) {
  trigger_err err;
  trigger *tr = load(text, &err);
  if (!tr) fail_msg("%s%srefused at \"%s\": %s\n%s", WHERE, err.path, err.msg, text);
  return tr;
}

/* Reads text, which must be refused at `path` with a message holding `what`. */
static void expect_refused(const char *text, const char *path, const char *what) {
  trigger_err err;
  trigger *tr = load(text, &err);
  if (tr) {
    trigger_free(tr);
    fail_msg("%s%saccepted, want refused at \"%s\"\n%s", WHERE, path, text);
  }
  EXPECT_STR(err.path, path);
  if (!memchr(err.msg, '\0', sizeof err.msg) || !strstr(err.msg, what))
    fail_msg("%s%smessage \"%.*s\" does not say \"%s\"", WHERE, (int)sizeof err.msg, err.msg, what);
}

/* An event from "name=value ..." (no other attributes): a value written
 * int:N or bool:B sets an integer or boolean extension; "name=" sets "". */
static ce_event *event_of(const char *desc) {
  ce_event *ev = ce_event_new();
  assert_non_null(ev);
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", desc);
  for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
    char *eq = strchr(tok, '=');
    assert_non_null(eq);
    *eq = '\0';
    const char *v = eq + 1;
    ce_err err = {0};
    int rc;
    if (strncmp(v, "int:", 4) == 0)
      rc = ce_event_set_int(ev, tok, (int32_t)strtol(v + 4, NULL, 10), &err);
    else if (strncmp(v, "bool:", 5) == 0)
      rc = ce_event_set_bool(ev, tok, strcmp(v + 5, "true") == 0, &err);
    else
      rc = ce_event_set_str(ev, tok, v, &err);
    if (rc) fail_msg("%s%scannot set %s=%s: %s", WHERE, tok, v, err.reason);
  }
  return ev;
}

/* ---------------------------------------------------------------- filters */

typedef struct match_case {
  const char *spec; /* extra spec lines */
  const char *event;
  bool want;
} match_case;

#define ATTRS(m)   "  filter: {attributes: " m "}\n"
#define FILTERS(l) "  filters: " l "\n"

static const match_case match_cases[] = {
    /* spec.filter.attributes: exact and case-sensitive */
    {ATTRS("{type: com.a}"), "type=com.a", true},
    {ATTRS("{type: com.a}"), "type=com.A", false},
    {ATTRS("{type: com.a}"), "type=com.ab", false},
    {ATTRS("{type: com.a}"), "type=com", false},
    {ATTRS("{type: com.a}"), "source=/s", false},
    {ATTRS("{type: com.a, source: /s}"), "type=com.a source=/s", true},
    {ATTRS("{type: com.a, source: /s}"), "type=com.a source=/t", false},
    {ATTRS("{type: com.a, source: /s}"), "type=com.a", false},
    /* "" asks only that the attribute be there */
    {ATTRS("{subject: ''}"), "type=a subject=x", true},
    {ATTRS("{subject: ''}"), "type=a", false},
    {ATTRS("{myext: ''}"), "myext=", true},
    {ATTRS("{myext: ''}"), "type=a", false},
    {ATTRS("{type: a, subject: ''}"), "type=a subject=anything", true},
    {ATTRS("{type: a, subject: ''}"), "type=b subject=anything", false},
    /* extensions of other types compare by their canonical string */
    {ATTRS("{knativebrokerttl: '255'}"), "knativebrokerttl=int:255", true},
    {ATTRS("{knativebrokerttl: '255'}"), "knativebrokerttl=int:25", false},
    {ATTRS("{knativebrokerttl: '255'}"), "knativebrokerttl=255", true},
    {ATTRS("{knativebrokerttl: '0255'}"), "knativebrokerttl=int:255", false},
    {ATTRS("{knativebrokerttl: '-1'}"), "knativebrokerttl=int:-1", true},
    {ATTRS("{flag: 'true'}"), "flag=bool:true", true},
    {ATTRS("{flag: 'true'}"), "flag=bool:false", false},
    {ATTRS("{flag: 'TRUE'}"), "flag=bool:true", false},
    /* an empty filter, or none, passes everything */
    {ATTRS("{}"), "type=a", true},
    {"  filter: {}\n", "type=a", true},
    {"", "type=a", true},
    {"", "", true},

    /* exact */
    {FILTERS("[{exact: {type: com.a}}]"), "type=com.a", true},
    {FILTERS("[{exact: {type: com.a}}]"), "type=com.A", false},
    {FILTERS("[{exact: {type: com.a}}]"), "type=com.ab", false},
    {FILTERS("[{exact: {type: com.a}}]"), "source=/s", false},
    {FILTERS("[{exact: {knativebrokerttl: '255'}}]"), "knativebrokerttl=int:255", true},
    {FILTERS("[{exact: {knativebrokerttl: '255'}}]"), "knativebrokerttl=int:254", false},
    {FILTERS("[{exact: {myext: ''}}]"), "myext=", true},
    {FILTERS("[{exact: {myext: ''}}]"), "myext=x", false},
    {FILTERS("[{exact: {myext: ''}}]"), "type=a", false},
    /* prefix */
    {FILTERS("[{prefix: {type: com.}}]"), "type=com.a", true},
    {FILTERS("[{prefix: {type: com.}}]"), "type=com.", true},
    {FILTERS("[{prefix: {type: com.}}]"), "type=org.com.a", false},
    {FILTERS("[{prefix: {type: com.}}]"), "type=com", false}, /* prefix longer than the value */
    {FILTERS("[{prefix: {type: com.}}]"), "type=Com.a", false},
    {FILTERS("[{prefix: {type: com.}}]"), "source=/s", false},
    {FILTERS("[{prefix: {subject: ''}}]"), "subject=x", true},
    {FILTERS("[{prefix: {subject: ''}}]"), "type=a", false},
    {FILTERS("[{prefix: {knativebrokerttl: '25'}}]"), "knativebrokerttl=int:255", true},
    /* suffix */
    {FILTERS("[{suffix: {type: .created}}]"), "type=order.created", true},
    {FILTERS("[{suffix: {type: .created}}]"), "type=.created", true},
    {FILTERS("[{suffix: {type: .created}}]"), "type=created", false}, /* suffix longer */
    {FILTERS("[{suffix: {type: .created}}]"), "type=order.created.v2", false},
    {FILTERS("[{suffix: {type: .created}}]"), "type=order.Created", false},
    {FILTERS("[{suffix: {type: .created}}]"), "source=/x.created", false},
    {FILTERS("[{suffix: {subject: ''}}]"), "subject=x", true},
    {FILTERS("[{suffix: {subject: ''}}]"), "type=a", false},
    /* all, any, not */
    {FILTERS("[{all: [{exact: {type: a}}, {prefix: {source: /o}}]}]"), "type=a source=/orders",
     true},
    {FILTERS("[{all: [{exact: {type: a}}, {prefix: {source: /o}}]}]"), "type=a source=/users",
     false},
    {FILTERS("[{all: [{exact: {type: a}}, {prefix: {source: /o}}]}]"), "type=b source=/orders",
     false},
    {FILTERS("[{any: [{exact: {type: a}}, {exact: {type: b}}]}]"), "type=a", true},
    {FILTERS("[{any: [{exact: {type: a}}, {exact: {type: b}}]}]"), "type=b", true},
    {FILTERS("[{any: [{exact: {type: a}}, {exact: {type: b}}]}]"), "type=c", false},
    {FILTERS("[{any: [{exact: {type: a}}, {exact: {type: b}}]}]"), "source=/s", false},
    {FILTERS("[{not: {exact: {type: a}}}]"), "type=a", false},
    {FILTERS("[{not: {exact: {type: a}}}]"), "type=b", true},
    {FILTERS("[{not: {exact: {type: a}}}]"), "source=/s", true}, /* not of a failure */
    {FILTERS("[{not: {not: {exact: {type: a}}}}]"), "type=a", true},
    {FILTERS("[{not: {not: {exact: {type: a}}}}]"), "type=b", false},
/* nested */
#define NESTED                                                                                     \
  FILTERS("[{any: [{all: [{prefix: {type: com.}}, {not: {suffix: {source: /test}}}]},"             \
          " {exact: {subject: vip}}]}]")
    {NESTED, "type=com.a source=/prod", true},
    {NESTED, "type=com.a source=/prod/test", false},
    {NESTED, "type=com.a source=/prod/test subject=vip", true},
    {NESTED, "type=org.a source=/prod subject=vip", true},
    {NESTED, "type=org.a source=/prod subject=other", false},
    {NESTED, "type=com.a", true}, /* no source: the suffix fails, not passes */
    /* cesql */
    {FILTERS("[{cesql: \"type LIKE 'com.%.created'\"}]"), "type=com.shop.created", true},
    {FILTERS("[{cesql: \"type LIKE 'com.%.created'\"}]"), "type=com.shop.paid", false},
    {FILTERS("[{cesql: \"source IN ('/a', '/b')\"}]"), "source=/b", true},
    {FILTERS("[{cesql: \"source IN ('/a', '/b')\"}]"), "source=/c", false},
    {FILTERS("[{cesql: \"EXISTS subject\"}]"), "subject=x", true},
    {FILTERS("[{cesql: \"EXISTS subject\"}]"), "type=a", false},
    {FILTERS("[{cesql: \"knativebrokerttl > 100\"}]"), "knativebrokerttl=int:255", true},
    {FILTERS("[{cesql: \"knativebrokerttl > 100\"}]"), "knativebrokerttl=int:5", false},
    {FILTERS("[{cesql: \"type = 'a' AND subject = 'x'\"}]"), "type=a subject=x", true},
    {FILTERS("[{cesql: \"type = 'a' AND subject = 'x'\"}]"), "type=a subject=y", false},
    /* evaluation errors: no match, even when the value is TRUE */
    {FILTERS("[{cesql: \"INT(subject) > 5\"}]"), "subject=7", true},
    {FILTERS("[{cesql: \"INT(subject) > 5\"}]"), "subject=abc", false}, /* cast error */
    {FILTERS("[{cesql: \"1 / knativebrokerttl = 0\"}]"), "knativebrokerttl=int:0", false},
    {FILTERS("[{cesql: \"NOT (subject = 'x')\"}]"), "subject=y", true},
    {FILTERS("[{cesql: \"NOT (subject = 'x')\"}]"), "type=a", false}, /* missing attribute */
    {FILTERS("[{cesql: \"subject\"}]"), "subject=true", false},       /* not a Boolean */
    /* the list is ANDed */
    {FILTERS("[{exact: {type: a}}, {prefix: {source: /o}}]"), "type=a source=/orders", true},
    {FILTERS("[{exact: {type: a}}, {prefix: {source: /o}}]"), "type=a source=/users", false},
    {FILTERS("[{exact: {type: a}}, {prefix: {source: /o}}]"), "type=b source=/orders", false},
    /* filters wins over filter */
    {ATTRS("{type: a}") FILTERS("[{exact: {type: b}}]"), "type=b", true},
    {ATTRS("{type: a}") FILTERS("[{exact: {type: b}}]"), "type=a", false},
    {ATTRS("{type: a}") FILTERS("[{all: []}]"), "type=b", true},
    /* ...but an empty list leaves filter in force, as in Knative */
    {ATTRS("{type: a}") FILTERS("[]"), "type=b", false},
    {ATTRS("{type: a}") FILTERS("[]"), "type=a", true},
    /* no opinion: empty all / any, and not of them, pass */
    {FILTERS("[]"), "type=a", true},
    {FILTERS("[]"), "", true},
    {FILTERS("[{all: []}]"), "type=a", true},
    {FILTERS("[{any: []}]"), "type=a", true},
    {FILTERS("[{not: {all: []}}]"), "type=a", true},
    {FILTERS("[{not: {any: []}}]"), "type=a", true},
    {FILTERS("[{all: [{any: []}]}]"), "type=a", true},
    /* no opinion never outweighs a failure, nor a pass */
    {FILTERS("[{all: []}, {exact: {type: a}}]"), "type=b", false},
    {FILTERS("[{all: [{any: []}, {exact: {type: a}}]}]"), "type=b", false},
    {FILTERS("[{all: [{any: []}, {exact: {type: a}}]}]"), "type=a", true},
    {FILTERS("[{any: [{all: []}, {exact: {type: a}}]}]"), "type=b", false},
    {FILTERS("[{any: [{all: []}, {exact: {type: a}}]}]"), "type=a", true},
    {FILTERS("[{not: {any: [{all: []}, {exact: {type: a}}]}}]"), "type=b", true},
    /* not keeps no opinion: it neither passes nor fails */
    {FILTERS("[{not: {not: {all: []}}}]"), "type=a", true},
    {FILTERS("[{any: [{not: {all: []}}, {exact: {type: a}}]}]"), "type=b", false},
    {FILTERS("[{all: [{not: {any: []}}, {not: {exact: {type: a}}}]}]"), "type=a", false},
};

static void count_hit(void *opaque, const trigger *tr) {
  (void)tr;
  (*(int *)opaque)++;
}

static void test_filter_semantics(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof match_cases / sizeof *match_cases; i++) {
    const match_case *c = &match_cases[i];
    CTX("case %zu: spec [%s] event [%s]", i, c->spec, c->event);
    char text[2048];
    snprintf(text, sizeof text, VALID("%s"), c->spec);
    trigger *tr = load_ok(text);
    ce_event *ev = event_of(c->event);
    EXPECT_INT(trigger_match(tr, ev), c->want);

    /* The index files the trigger under its key and must find it. */
    trigger_index *ix = trigger_index_new();
    assert_non_null(ix);
    EXPECT_RC(trigger_index_add(ix, tr), 0);
    int calls = 0;
    size_t evaluated = 99;
    EXPECT_INT(trigger_index_match(ix, ev, count_hit, &calls, &evaluated), c->want);
    EXPECT_INT(calls, c->want);
    EXPECT_TRUE(evaluated <= 1);
    trigger_index_free(ix);
    ce_event_free(ev);
    trigger_free(tr);
  }
}

/* ---------------------------------------------------------------- reading */

static void test_parse_fields(void **state) {
  (void)state;
  trigger *tr = load_ok(HEAD "metadata:\n"
                             "  name: orders.eu\n"
                             "  namespace: team-a\n"
                             "  annotations:\n"
                             "    kafka.eventing.knative.dev/delivery.order: ordered\n"
                             "spec:\n"
                             "  broker: main\n"
                             "  filter:\n"
                             "    attributes:\n"
                             "      type: com.example.order\n"
                             "      source: ''\n"
                             "  subscriber:\n"
                             "    uri: https://orders.example.com:8443/in?x=1\n"
                             "  delivery:\n"
                             "    retry: 5\n"
                             "    backoffPolicy: linear\n"
                             "    backoffDelay: PT0.5S\n"
                             "    timeout: PT10S\n"
                             "    retryAfterMax: PT1M\n"
                             "    deadLetterSink:\n"
                             "      uri: http://dls.example/\n");
  EXPECT_STR(tr->ns, "team-a");
  EXPECT_STR(tr->name, "orders.eu");
  EXPECT_STR(tr->broker, "main");
  EXPECT_STR(tr->subscriber_uri, "https://orders.example.com:8443/in?x=1");
  EXPECT_INT(tr->has_filters, false);
  EXPECT_INT(tr->n_attrs, 2);
  EXPECT_STR(tr->attr_names[0], "type");
  EXPECT_STR(tr->attr_values[0], "com.example.order");
  EXPECT_STR(tr->attr_names[1], "source");
  EXPECT_STR(tr->attr_values[1], "");
  EXPECT_INT(tr->delivery.retry, 5);
  EXPECT_INT(tr->delivery.exponential, false);
  EXPECT_INT(tr->delivery.backoff_delay_ms, 500);
  EXPECT_INT(tr->delivery.timeout_ms, 10000);
  EXPECT_INT(tr->delivery.retry_after_max_ms, 60000);
  EXPECT_STR(tr->delivery.dead_letter_uri, "http://dls.example/");
  EXPECT_INT(tr->ordered, true);
  trigger_free(tr);

  /* Defaults: namespace "default", exponential backoff of 200 ms, no retry,
   * unordered. JSON works as well as YAML. */
  tr = load_ok("{\"apiVersion\": \"eventing.knative.dev/v1\", \"kind\": \"Trigger\","
               " \"metadata\": {\"name\": \"t\"},"
               " \"spec\": {\"broker\": \"b\", \"subscriber\": {\"uri\": \"http://s/\"},"
               " \"filters\": [{\"exact\": {\"type\": \"a\"}}, {\"all\": []}]}}");
  EXPECT_STR(tr->ns, "default");
  EXPECT_INT(tr->has_filters, true);
  EXPECT_INT(tr->n_filters, 2);
  EXPECT_INT(tr->filters[0].kind, TRIGGER_EXACT);
  EXPECT_STR(tr->filters[0].attr, "type");
  EXPECT_STR(tr->filters[0].value, "a");
  EXPECT_INT(tr->filters[1].kind, TRIGGER_ALL);
  EXPECT_INT(tr->filters[1].n_subs, 0);
  EXPECT_INT(tr->delivery.retry, 0);
  EXPECT_INT(tr->delivery.exponential, true);
  EXPECT_INT(tr->delivery.backoff_delay_ms, 200);
  EXPECT_INT(tr->delivery.timeout_ms, 0);
  EXPECT_INT(tr->delivery.retry_after_max_ms, 0);
  EXPECT_TRUE(tr->delivery.dead_letter_uri == NULL);
  EXPECT_INT(tr->ordered, false);
  trigger_free(tr);

  /* The annotation's other value, an empty delivery, exponential by name. */
  tr = load_ok(HEAD "metadata:\n  name: t\n  annotations:\n"
                    "    kafka.eventing.knative.dev/delivery.order: unordered\n"
                    "    other.example/x: y\n"
                    "spec:\n" BRK SUB "  delivery: {backoffPolicy: exponential, retry: 0}\n");
  EXPECT_INT(tr->ordered, false);
  EXPECT_INT(tr->delivery.exponential, true);
  trigger_free(tr);

  trigger_free(NULL);
}

typedef struct refusal {
  const char *text;
  const char *path;
  const char *what; /* a part of the message */
} refusal;

#define ORDER "kafka.eventing.knative.dev/delivery.order"

static const refusal refusals[] = {
    /* the resource */
    {"apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: b}\n", "",
     "not a Trigger"},
    {"apiVersion: v1\nkind: Trigger\nmetadata: {name: t}\n", "", "not a Trigger"},
    {"kind: Trigger\nmetadata: {name: t}\n", "", "not a Trigger"},
    {HEAD "metadata: {namespace: team-a}\nspec:\n" BRK SUB, "metadata.name", "Kubernetes name"},
    {HEAD "metadata: {name: 42}\nspec:\n" BRK SUB, "metadata.name", "Kubernetes name"},
    {HEAD "metadata: {name: Orders}\nspec:\n" BRK SUB, "metadata.name", "Kubernetes name"},
    {HEAD "metadata: {name: orders..eu}\nspec:\n" BRK SUB, "metadata.name", "Kubernetes name"},
    {HEAD "metadata: {name: -orders}\nspec:\n" BRK SUB, "metadata.name", "Kubernetes name"},
    {HEAD "metadata: {name: t, namespace: Team}\nspec:\n" BRK SUB, "metadata.namespace",
     "DNS label"},
    {HEAD "metadata: {name: t, namespace: team.a}\nspec:\n" BRK SUB, "metadata.namespace",
     "DNS label"},
    {HEAD "metadata: {name: t, namespace: team-}\nspec:\n" BRK SUB, "metadata.namespace",
     "DNS label"},
    {HEAD META, "spec", "needs a spec"},
    {HEAD META "spec: [broker]\n", "spec", "needs a spec"},
    {HEAD "metadata: {name: t, annotations: {" ORDER ": sometimes}}\nspec:\n" BRK SUB,
     "metadata.annotations." ORDER, "ordered or unordered"},
    {HEAD "metadata: {name: t, annotations: {" ORDER ": true}}\nspec:\n" BRK SUB,
     "metadata.annotations." ORDER, "ordered or unordered"},
    {HEAD "metadata: {name: t, annotations: {" ORDER ": Ordered}}\nspec:\n" BRK SUB,
     "metadata.annotations." ORDER, "ordered or unordered"},
    /* broker and subscriber */
    {WITH_SPEC(SUB), "spec.broker", "must name a broker"},
    {WITH_SPEC("  broker: Default\n" SUB), "spec.broker", "must name a broker"},
    {WITH_SPEC("  broker: {name: default}\n" SUB), "spec.broker", "must name a broker"},
    {WITH_SPEC(BRK "  subscriber: {ref: {apiVersion: v1, kind: Service, name: s}}\n"),
     "spec.subscriber.ref", "give subscriber.uri"},
    {WITH_SPEC(BRK "  subscriber: {ref: {kind: Service, name: s}, uri: 'http://s/'}\n"),
     "spec.subscriber.ref", "give subscriber.uri"},
    {WITH_SPEC(BRK), "spec.subscriber.uri", "absolute http(s) URI"},
    {WITH_SPEC(BRK "  subscriber: {uri: /relative/path}\n"), "spec.subscriber.uri",
     "absolute http(s) URI"},
    {WITH_SPEC(BRK "  subscriber: {uri: 'ftp://files.example/in'}\n"), "spec.subscriber.uri",
     "absolute http(s) URI"},
    {WITH_SPEC(BRK "  subscriber: {uri: 'http://a b/'}\n"), "spec.subscriber.uri",
     "absolute http(s) URI"},
    {WITH_SPEC(BRK "  subscriber: {uri: 8080}\n"), "spec.subscriber.uri", "absolute http(s) URI"},
    {VALID("  filtre: {attributes: {type: a}}\n"), "spec", "unknown field 'filtre'"},
    /* spec.filter */
    {VALID(ATTRS("{Type: a}")), "spec.filter.attributes.Type", "attribute name"},
    {VALID(ATTRS("{ttl: 255}")), "spec.filter.attributes.ttl", "must be a string"},
    {VALID(ATTRS("{flag: true}")), "spec.filter.attributes.flag", "must be a string"},
    {VALID(ATTRS("[type]")), "spec.filter", "takes only attributes"},
    {VALID("  filter: {type: a}\n"), "spec.filter", "takes only attributes"},
    {VALID("  filter: {attributes: {type: a}, cesql: x}\n"), "spec.filter",
     "takes only attributes"},
    /* spec.filters */
    {VALID(FILTERS("{exact: {type: a}}")), "spec.filters", "list of filters"},
    {VALID(FILTERS("[{exact: {type: a}, prefix: {type: b}}]")), "spec.filters.0",
     "exactly one dialect"},
    {VALID(FILTERS("[{}]")), "spec.filters.0", "exactly one dialect"},
    {VALID(FILTERS("[exact]")), "spec.filters.0", "exactly one dialect"},
    {VALID(FILTERS("[{regex: {type: a}}]")), "spec.filters.0", "unknown filter dialect 'regex'"},
    {VALID(FILTERS("[{Exact: {type: a}}]")), "spec.filters.0", "unknown filter dialect 'Exact'"},
    {VALID(FILTERS("[{exact: {type: a, source: b}}]")), "spec.filters.0.exact",
     "exactly one attribute"},
    {VALID(FILTERS("[{exact: {}}]")), "spec.filters.0.exact", "exactly one attribute"},
    {VALID(FILTERS("[{exact: a}]")), "spec.filters.0.exact", "exactly one attribute"},
    {VALID(FILTERS("[{exact: {knativebrokerttl: 255}}]")), "spec.filters.0.exact", "string value"},
    {VALID(FILTERS("[{prefix: {type: [a]}}]")), "spec.filters.0.prefix", "string value"},
    {VALID(FILTERS("[{exact: {Type: a}}]")), "spec.filters.0.exact",
     "'Type' is not a CloudEvents attribute name"},
    {VALID(FILTERS("[{suffix: {my-ext: a}}]")), "spec.filters.0.suffix",
     "'my-ext' is not a CloudEvents attribute name"},
    {VALID(FILTERS("[{exact: {type: a}}, {suffix: {type: {x: y}}}]")), "spec.filters.1.suffix",
     "string value"},
    {VALID(FILTERS("[{all: {exact: {type: a}}}]")), "spec.filters.0.all", "list of filters"},
    {VALID(FILTERS("[{any: [{exact: {type: a}}, {nope: {}}]}]")), "spec.filters.0.any.1",
     "unknown filter dialect 'nope'"},
    {VALID(FILTERS("[{not: [{exact: {type: a}}]}]")), "spec.filters.0.not", "exactly one dialect"},
    {VALID(FILTERS("[{not: {}}]")), "spec.filters.0.not", "exactly one dialect"},
    /* cesql: the character position of the error */
    {VALID(FILTERS("[{cesql: \"type = 'a' AND\"}]")), "spec.filters.0.cesql", "at character 15"},
    {VALID(FILTERS("[{cesql: \"type == 'a'\"}]")), "spec.filters.0.cesql", "at character 7"},
    {VALID(FILTERS("[{cesql: \"Type = 'a'\"}]")), "spec.filters.0.cesql", "at character 1"},
    {VALID(FILTERS("[{cesql: \"FOO(type)\"}]")), "spec.filters.0.cesql", "at character 1"},
    {VALID(FILTERS("[{cesql: ''}]")), "spec.filters.0.cesql", "CESQL"},
    {VALID(FILTERS("[{cesql: 5}]")), "spec.filters.0.cesql", "must be a string"},
    {VALID(FILTERS("[{exact: {type: a}}, {all: [{any: [{not: {cesql: \"subject LIKE 5\"}}]}]}]")),
     "spec.filters.1.all.0.any.0.not.cesql", "at character 14"},
    /* delivery */
    {VALID("  delivery: {retry: -1}\n"), "spec.delivery.retry", "whole number"},
    {VALID("  delivery: {retry: 1.5}\n"), "spec.delivery.retry", "whole number"},
    {VALID("  delivery: {retry: '3'}\n"), "spec.delivery.retry", "whole number"},
    {VALID("  delivery: {retry: 1000001}\n"), "spec.delivery.retry", "whole number"},
    {VALID("  delivery: {retry: 1e300}\n"), "spec.delivery.retry", "whole number"},
    {VALID("  delivery: {backoffPolicy: constant}\n"), "spec.delivery.backoffPolicy",
     "linear or exponential"},
    {VALID("  delivery: {backoffPolicy: Linear}\n"), "spec.delivery.backoffPolicy",
     "linear or exponential"},
    {VALID("  delivery: {backoffPolicy: 1}\n"), "spec.delivery.backoffPolicy",
     "linear or exponential"},
    {VALID("  delivery: {backoffDelay: 1s}\n"), "spec.delivery.backoffDelay", "ISO-8601"},
    {VALID("  delivery: {backoffDelay: P1M}\n"), "spec.delivery.backoffDelay", "ISO-8601"},
    {VALID("  delivery: {backoffDelay: 200}\n"), "spec.delivery.backoffDelay", "ISO-8601"},
    {VALID("  delivery: {timeout: PT}\n"), "spec.delivery.timeout", "ISO-8601"},
    {VALID("  delivery: {retryAfterMax: PT-1S}\n"), "spec.delivery.retryAfterMax", "ISO-8601"},
    {VALID("  delivery: {deadLetterSink: {ref: {kind: Service, name: dls}}}\n"),
     "spec.delivery.deadLetterSink.ref", "give deadLetterSink.uri"},
    {VALID("  delivery: {deadLetterSink: {uri: /dls}}\n"), "spec.delivery.deadLetterSink.uri",
     "absolute http(s) URI"},
    {VALID("  delivery: {deadLetterSink: {uri: 'ftp://dls.example/'}}\n"),
     "spec.delivery.deadLetterSink.uri", "absolute http(s) URI"},
    {VALID("  delivery: {deadLetterSink: {}}\n"), "spec.delivery.deadLetterSink.uri",
     "absolute http(s) URI"},
    {VALID("  delivery: {retries: 3}\n"), "spec.delivery", "unknown field 'retries'"},
    {VALID("  delivery: [retry]\n"), "spec.delivery", "must be an object"},
};

static void test_refusals(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof refusals / sizeof *refusals; i++) {
    CTX("refusal %zu: want \"%s\"", i, refusals[i].path);
    expect_refused(refusals[i].text, refusals[i].path, refusals[i].what);
  }
}

/* k nested nots around an exact, as JSON. */
static void nested_nots(char *out, size_t size, int k) {
  size_t o = (size_t)snprintf(out, size, "%s", VALID("  filters: ["));
  for (int i = 0; i < k; i++) o += (size_t)snprintf(out + o, size - o, "{not: ");
  o += (size_t)snprintf(out + o, size - o, "{exact: {type: a}}");
  for (int i = 0; i < k; i++) o += (size_t)snprintf(out + o, size - o, "}");
  snprintf(out + o, size - o, "]\n");
}

/* k nested alls around an exact. */
static void nested_alls(char *out, size_t size, int k) {
  size_t o = (size_t)snprintf(out, size, "%s", VALID("  filters: ["));
  for (int i = 0; i < k; i++) o += (size_t)snprintf(out + o, size - o, "{all: [");
  o += (size_t)snprintf(out + o, size - o, "{exact: {type: a}}");
  for (int i = 0; i < k; i++) o += (size_t)snprintf(out + o, size - o, "]}");
  snprintf(out + o, size - o, "]\n");
}

/* Sixteen levels of filters are read; the seventeenth is refused where it
 * starts. */
static void test_depth(void **state) {
  (void)state;
  char text[4096], path[256];
  ce_event *a = event_of("type=a"), *b = event_of("type=b");

  CTX("15 nots");
  nested_nots(text, sizeof text, 15);
  trigger *tr = load_ok(text);
  EXPECT_INT(trigger_match(tr, a), false); /* an odd number of nots */
  EXPECT_INT(trigger_match(tr, b), true);
  trigger_free(tr);

  CTX("16 nots");
  nested_nots(text, sizeof text, 16);
  size_t o = (size_t)snprintf(path, sizeof path, "spec.filters.0");
  for (int i = 0; i < 16; i++) o += (size_t)snprintf(path + o, sizeof path - o, ".not");
  expect_refused(text, path, "deeper than 16");

  CTX("15 alls");
  nested_alls(text, sizeof text, 15);
  tr = load_ok(text);
  EXPECT_INT(trigger_match(tr, a), true);
  EXPECT_INT(trigger_match(tr, b), false);
  trigger_free(tr);

  CTX("16 alls");
  nested_alls(text, sizeof text, 16);
  o = (size_t)snprintf(path, sizeof path, "spec.filters.0");
  for (int i = 0; i < 16; i++) o += (size_t)snprintf(path + o, sizeof path - o, ".all.0");
  expect_refused(text, path, "deeper than 16");

  ce_event_free(a);
  ce_event_free(b);
}

/* ---------------------------------------------------------------- durations */

static void test_duration(void **state) {
  (void)state;
  static const struct {
    const char *s;
    int64_t ms;
  } ok[] = {
      {"PT0.2S", 200},
      {"PT1S", 1000},
      {"PT1.5S", 1500},
      {"PT0,5S", 500}, /* ISO-8601's other decimal sign */
      {"PT0S", 0},
      {"PT0.001S", 1},
      {"PT0.123456S", 123},
      {"PT0.9999S", 1000}, /* rounded to the nearest millisecond */
      {"PT1M30S", 90000},
      {"PT1.5M", 90000}, /* a fraction on the last component */
      {"PT10M", 600000},
      {"PT2H", 7200000},
      {"PT1H0.5S", 3600500},
      {"P1D", 86400000},
      {"P1W", 604800000},
      {"P1DT1H", 90000000},
      {"P2DT3H4M5.5S", 2 * 86400000LL + 3 * 3600000 + 4 * 60000 + 5500},
      {"PT36H", 129600000},
      {"P0D", 0},
      {"PT0001S", 1000},
      {"P10000D", 864000000000LL},
      {"P106751991167D", 9223372036828800000LL}, /* the largest day count that fits */
  };
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    CTX("%s", ok[i].s);
    int64_t ms = -42;
    EXPECT_RC(res_duration_ms(ok[i].s, &ms), 0);
    EXPECT_INT(ms, ok[i].ms);
  }

  static const char *const bad[] = {
      "",
      "P",
      "PT",
      "T1S",
      "1S",
      "pt1s",
      "PT1s",
      /* months and years have no fixed length */
      "P1M",
      "P1Y",
      "P1Y2M",
      "P1H",
      "P1S",
      /* a date unit after T */
      "PT1D",
      "PT1W",
      "P1DT",
      "PTS",
      "PT1",
      "PT.5S",
      "PT1.S",
      /* no signs */
      "PT-1S",
      "PT+1S",
      "-PT1S",
      "PT 1S",
      "PT1S ",
      " PT1S",
      /* a fraction on a component that is not the last */
      "PT1.5M30S",
      "P1.5DT1H",
      /* out of order */
      "PT1S1M",
      "PT1M1H",
      "P1D1W",
      /* twice */
      "PT1S1S",
      "P1DT1HT1M",
      /* hex and exponents, which strtod would take */
      "PT0x10S",
      "PT1e3S",
      "PTinfS",
      "PTnanS",
      "PT1,5,5S",
      "PT1.5.5S",
      "P1DT1H1M1S1",
      /* beyond int64_t milliseconds */
      "P99999999999999999999D",
      "P106751991168D",
      "PT9223372036854775807S",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    CTX("\"%s\"", bad[i]);
    int64_t ms = -42;
    EXPECT_RC(res_duration_ms(bad[i], &ms), -EINVAL);
    EXPECT_INT(ms, -42);
  }
  CTX("NULL");
  int64_t ms = -42;
  EXPECT_RC(res_duration_ms(NULL, &ms), -EINVAL);
}

/* ---------------------------------------------------------------- index keys */

static void test_index_key(void **state) {
  (void)state;
  static const struct {
    const char *spec;
    int kind; /* -1: none */
    const char *attr, *value;
  } cases[] = {
      {FILTERS("[{exact: {type: a}}]"), TRIGGER_EXACT, "type", "a"},
      {FILTERS("[{exact: {type: ''}}]"), TRIGGER_EXACT, "type", ""},
      {FILTERS("[{suffix: {subject: x}}, {exact: {source: /s}}]"), TRIGGER_EXACT, "source", "/s"},
      {FILTERS("[{prefix: {source: /o}}, {exact: {type: a}}]"), TRIGGER_EXACT, "type", "a"},
      {FILTERS("[{all: [{suffix: {subject: x}}, {exact: {source: /s}}]}]"), TRIGGER_EXACT, "source",
       "/s"},
      {FILTERS("[{all: [{all: [{exact: {type: deep}}]}]}]"), TRIGGER_EXACT, "type", "deep"},
      {FILTERS("[{any: [{exact: {type: a}}]}, {all: [{exact: {type: b}}]}]"), TRIGGER_EXACT, "type",
       "b"},
      {FILTERS("[{cesql: \"type = 'x' AND source LIKE '/a%'\"}]"), TRIGGER_EXACT, "type", "x"},
      {FILTERS("[{cesql: \"source LIKE '/a%' AND type = 'x'\"}]"), TRIGGER_EXACT, "type", "x"},
      {FILTERS("[{cesql: \"subject = 'y'\"}]"), TRIGGER_EXACT, "subject", "y"},
      {FILTERS("[{cesql: \"knativebrokerttl = '255'\"}]"), TRIGGER_EXACT, "knativebrokerttl",
       "255"},
      {FILTERS("[{all: [{cesql: \"type = 'x'\"}]}]"), TRIGGER_EXACT, "type", "x"},
      {FILTERS("[{prefix: {source: /orders}}]"), TRIGGER_PREFIX, "source", "/orders"},
      {FILTERS("[{prefix: {source: ''}}, {prefix: {type: com.}}]"), TRIGGER_PREFIX, "type", "com."},
      {FILTERS("[{all: [{prefix: {type: com.}}]}]"), TRIGGER_PREFIX, "type", "com."},
      {ATTRS("{source: /s, type: a, subject: x}"), TRIGGER_EXACT, "type", "a"},
      {ATTRS("{type: a, source: /s, subject: x}"), TRIGGER_EXACT, "type", "a"},
      {ATTRS("{source: /s, subject: x}"), TRIGGER_EXACT, "source", "/s"},
      {ATTRS("{type: '', source: /s}"), TRIGGER_EXACT, "source", "/s"},
      /* none */
      {ATTRS("{type: ''}"), -1, NULL, NULL},
      {ATTRS("{}"), -1, NULL, NULL},
      {"", -1, NULL, NULL},
      {FILTERS("[]"), -1, NULL, NULL},
      {FILTERS("[{prefix: {source: ''}}]"), -1, NULL, NULL},
      {FILTERS("[{suffix: {type: .created}}]"), -1, NULL, NULL},
      {FILTERS("[{any: [{exact: {type: a}}]}]"), -1, NULL, NULL},
      {FILTERS("[{not: {exact: {type: a}}}]"), -1, NULL, NULL},
      {FILTERS("[{not: {all: [{exact: {type: a}}]}}]"), -1, NULL, NULL},
      {FILTERS("[{all: []}]"), -1, NULL, NULL},
      {FILTERS("[{cesql: \"type = 'x' OR type = 'y'\"}]"), -1, NULL, NULL},
      {FILTERS("[{cesql: \"NOT (type = 'x')\"}]"), -1, NULL, NULL},
      {FILTERS("[{cesql: \"'x' = type\"}]"), -1, NULL, NULL},
      {FILTERS("[{cesql: \"type LIKE 'x%'\"}]"), -1, NULL, NULL},
      {FILTERS("[{cesql: \"EXISTS type\"}]"), -1, NULL, NULL},
      /* filters wins: the attributes are not a key */
      {ATTRS("{type: a}") FILTERS("[{suffix: {type: b}}]"), -1, NULL, NULL},
      {ATTRS("{type: a}") FILTERS("[{exact: {source: /s}}]"), TRIGGER_EXACT, "source", "/s"},
      /* ...unless there are none */
      {ATTRS("{type: a}") FILTERS("[]"), TRIGGER_EXACT, "type", "a"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    CTX("case %zu: %s", i, cases[i].spec);
    char text[1024];
    snprintf(text, sizeof text, VALID("%s"), cases[i].spec);
    trigger *tr = load_ok(text);
    const char *attr = NULL, *value = NULL;
    EXPECT_INT(trigger_index_key(tr, &attr, &value), cases[i].kind);
    if (cases[i].kind >= 0) {
      EXPECT_STR(attr, cases[i].attr);
      EXPECT_STR(value, cases[i].value);
    }
    trigger_free(tr);
  }

  /* Where an OR sits beside the ANDs, the answer may be a key every match
   * satisfies or none; a key from an OR's operand would lose matches.
   * CESQL groups AND and OR left to right at one level. */
  static const struct {
    const char *cesql, *safe_attr, *safe_value;
  } or_cases[] = {
      {"type = 'x' AND (source = '/a' OR source = '/b')", "type", "x"},
      {"type = 'x' OR subject = 'y' AND source = '/s'", "source", "/s"},
      {"(type = 'x' OR subject = 'y') AND source = '/s'", "source", "/s"},
      {"source = '/s' AND type = 'x' OR subject = 'y'", NULL, NULL},
      {"source = '/s' XOR type = 'x'", NULL, NULL},
  };
  for (size_t i = 0; i < sizeof or_cases / sizeof *or_cases; i++) {
    CTX("cesql %s", or_cases[i].cesql);
    char text[1024];
    snprintf(text, sizeof text, VALID("  filters: [{cesql: \"%s\"}]\n"), or_cases[i].cesql);
    trigger *tr = load_ok(text);
    const char *attr = NULL, *value = NULL;
    int kind = trigger_index_key(tr, &attr, &value);
    if (kind != -1) {
      EXPECT_TRUE(or_cases[i].safe_attr != NULL);
      EXPECT_INT(kind, TRIGGER_EXACT);
      EXPECT_STR(attr, or_cases[i].safe_attr);
      EXPECT_STR(value, or_cases[i].safe_value);
    }
    trigger_free(tr);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_filter_semantics), T(test_parse_fields), T(test_refusals), T(test_depth),
      T(test_duration),         T(test_index_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
