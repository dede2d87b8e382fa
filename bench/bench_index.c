/*
 * bench_index.c — how many events per second the trigger index routes
 * (trigger_index_match) beside a linear scan that evaluates every trigger
 * (trigger_match on each), in the same run, for 10, 100, 1000 and 10000
 * triggers of a realistic mix: mostly exact type filters, some source
 * prefixes, some CESQL, a few filters no key covers. Also prints how many
 * triggers the index evaluated per event on average. The ratio is what can
 * be compared across machines; nothing here asserts a speed. See
 * bench/README.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bench_util.h"
#include "core/ce.h"
#include "core/resources.h"
#include "trigger/index.h"
#include "trigger/trigger.h"

#define N_EVENTS 1024 /* events a measurement cycles through */

/* Everything a measurement reads, prepared before any timing. */
typedef struct fixture {
  size_t n_triggers;
  trigger **trs;
  trigger_index *ix;
  ce_event *evs[N_EVENTS];
  double evaluated; /* triggers the index evaluated per event, on average */
  double matches;   /* triggers matched per event, on average */
  size_t mix[5];    /* exact, prefix, cesql keyed, cesql unkeyed, unkeyed */
  size_t unkeyed;   /* triggers in the list every event visits */
} fixture;

/* Results are folded into this so the compiler cannot drop the work. */
static volatile size_t sink;

/* ------------------------------------------------------------ operations */

/* Each routes n events (cycling through the fixture's) and returns 0. */
static int route_index(const void *arg, long n) {
  const fixture *fx = arg;
  size_t hits = 0;
  for (long i = 0; i < n; i++)
    hits += trigger_index_match(fx->ix, fx->evs[i % N_EVENTS], NULL, NULL, NULL);
  sink += hits;
  return 0;
}

static int route_linear(const void *arg, long n) {
  const fixture *fx = arg;
  size_t hits = 0;
  for (long i = 0; i < n; i++) {
    const ce_event *ev = fx->evs[i % N_EVENTS];
    for (size_t k = 0; k < fx->n_triggers; k++) hits += trigger_match(fx->trs[k], ev);
  }
  sink += hits;
  return 0;
}

/* ------------------------------------------------------------ fixtures */

/* splitmix64 with a fixed seed: the same triggers and events every run. */
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

static const char *const entities[] = {"order", "payment", "user", "cart", "invoice", "shipment"};
static const char *const verbs[] = {"created", "updated", "deleted", "paid", "failed"};
static const char *const regions[] = {"eu", "us", "ap"};

/* Event types come from a pool of n_triggers / 2 names (at least 10): a
 * type is subscribed to by one or two triggers, as in a system of many
 * services. Sources from n_triggers / 20 services (at least 5). */
static void type_name(char *out, size_t size, size_t k) {
  snprintf(out, size, "com.example.svc%zu.%s.%s", k / 30, entities[k / 5 % 6], verbs[k % 5]);
}
static void source_name(char *out, size_t size, size_t k, const char *region) {
  snprintf(out, size, "https://svc-%zu.example.com/%s/api", k, region);
}

static trigger *trigger_from(const char *spec) {
  char text[2048];
  snprintf(text, sizeof text,
           "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: t}\n"
           "spec:\n  broker: default\n  subscriber: {uri: 'http://sink.example/'}\n%s",
           spec);
  cJSON *all = NULL;
  res_err rerr;
  if (res_parse(text, strlen(text), &all, &rerr) != 0) {
    fprintf(stderr, "bench_index: %s\n%s\n", rerr.msg, text);
    return NULL;
  }
  trigger_err err;
  trigger *tr = trigger_parse(cJSON_GetArrayItem(all, 0), &err);
  cJSON_Delete(all);
  if (!tr) fprintf(stderr, "bench_index: refused at %s: %s\n%s\n", err.path, err.msg, text);
  return tr;
}

/* One trigger of the mix: 72 % exact type (half of them as
 * filter.attributes, half of those also asking for knativebrokerttl), 15 %
 * source prefix, 10 % CESQL (8 % with a type conjunct the index uses, 2 %
 * without), 3 % other filters no key covers (suffix, any, not): 5 % in all
 * that every event evaluates. */
static trigger *random_trigger(size_t n_types, size_t n_sources, size_t mix[5]) {
  char spec[1024], type[128];
  size_t k = pick(100);
  type_name(type, sizeof type, pick(n_types));
  if (k < 36) {
    snprintf(spec, sizeof spec, "  filters: [{exact: {type: '%s'}}]\n", type);
    mix[0]++;
  } else if (k < 72) {
    snprintf(spec, sizeof spec, "  filter: {attributes: {type: '%s'%s}}\n", type,
             k < 54 ? ", knativebrokerttl: ''" : "");
    mix[0]++;
  } else if (k < 87) {
    snprintf(spec, sizeof spec, "  filters: [{prefix: {source: 'https://svc-%zu.example.com/'}}]\n",
             pick(n_sources));
    mix[1]++;
  } else if (k < 95) {
    snprintf(spec, sizeof spec,
             "  filters: [{cesql: \"type = '%s' AND subject LIKE 'orders/%%'\"}]\n", type);
    mix[2]++;
  } else if (k < 97) {
    snprintf(spec, sizeof spec,
             "  filters: [{cesql: \"source LIKE '%%/%s/api' AND priority > %zu\"}]\n",
             regions[pick(3)], pick(10));
    mix[3]++;
  } else if (k < 98) {
    snprintf(spec, sizeof spec, "  filters: [{suffix: {type: '.%s'}}]\n", verbs[pick(5)]);
    mix[4]++;
  } else if (k < 99) {
    char other[128];
    type_name(other, sizeof other, pick(n_types));
    snprintf(spec, sizeof spec,
             "  filters: [{any: [{exact: {type: '%s'}}, {exact: {type: '%s'}}]}]\n", type, other);
    mix[4]++;
  } else {
    snprintf(spec, sizeof spec, "  filters: [{not: {prefix: {type: 'com.example.'}}}]\n");
    mix[4]++;
  }
  return trigger_from(spec);
}

/* An event like bench_codec's: the required attributes, subject, time,
 * datacontenttype, traceparent, the integer priority and the TTL the
 * ingress adds. One in ten has a type no trigger names. */
static ce_event *random_event(size_t n_types, size_t n_sources) {
  char type[128], source[128], subject[64], id[32];
  if (pick(10) == 0)
    snprintf(type, sizeof type, "com.example.unknown.%zu", pick(1000));
  else
    type_name(type, sizeof type, pick(n_types));
  source_name(source, sizeof source, pick(n_sources), regions[pick(3)]);
  snprintf(subject, sizeof subject, "%s/%zu", pick(2) ? "orders" : "users", pick(100000));
  snprintf(id, sizeof id, "%016llx", (unsigned long long)rnd());
  ce_event *ev = ce_event_new();
  if (!ev) return NULL;
  const char *attrs[][2] = {
      {"specversion", "1.0"},
      {"id", id},
      {"source", source},
      {"type", type},
      {"subject", subject},
      {"time", "2026-11-21T17:46:29.123Z"},
      {"datacontenttype", "application/json"},
      {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
  };
  for (size_t i = 0; i < sizeof attrs / sizeof *attrs; i++)
    if (ce_event_set_str(ev, attrs[i][0], attrs[i][1], NULL) != 0) goto fail;
  if (ce_event_set_int(ev, "priority", (int32_t)pick(10), NULL) != 0 ||
      ce_event_set_int(ev, "knativebrokerttl", 255, NULL) != 0)
    goto fail;
  return ev;

fail:
  ce_event_free(ev);
  return NULL;
}

static void count_fn(void *opaque, const trigger *tr) {
  (void)tr;
  (*(size_t *)opaque)++;
}

/* Builds the triggers, the index and the events, and checks that the index
 * and the linear scan agree on every event (a benchmark of a wrong index
 * means nothing). */
static int fixture_prepare(fixture *fx, size_t n_triggers) {
  size_t n_types = n_triggers / 2 > 10 ? n_triggers / 2 : 10;
  size_t n_sources = n_triggers / 20 > 5 ? n_triggers / 20 : 5;
  rng_state = 20261121 + n_triggers;
  fx->n_triggers = n_triggers;
  fx->trs = calloc(n_triggers, sizeof *fx->trs);
  fx->ix = trigger_index_new();
  if (!fx->trs || !fx->ix) return -1;
  for (size_t i = 0; i < n_triggers; i++) {
    fx->trs[i] = random_trigger(n_types, n_sources, fx->mix);
    if (!fx->trs[i] || trigger_index_add(fx->ix, fx->trs[i]) != 0) return -1;
    const char *attr, *value;
    if (trigger_index_key(fx->trs[i], &attr, &value) < 0) fx->unkeyed++;
  }
  size_t evaluated = 0, matches = 0;
  for (size_t e = 0; e < N_EVENTS; e++) {
    fx->evs[e] = random_event(n_types, n_sources);
    if (!fx->evs[e]) return -1;
    size_t ev_evaluated = 0, calls = 0, linear = 0;
    size_t hits = trigger_index_match(fx->ix, fx->evs[e], count_fn, &calls, &ev_evaluated);
    for (size_t k = 0; k < n_triggers; k++) linear += trigger_match(fx->trs[k], fx->evs[e]);
    if (hits != linear || calls != hits) {
      fprintf(stderr, "bench_index: %zu triggers, event %zu: index %zu matches, linear %zu\n",
              n_triggers, e, hits, linear);
      return -1;
    }
    evaluated += ev_evaluated;
    matches += hits;
  }
  fx->evaluated = (double)evaluated / N_EVENTS;
  fx->matches = (double)matches / N_EVENTS;
  return 0;
}

static void fixture_cleanup(fixture *fx) {
  trigger_index_free(fx->ix);
  for (size_t i = 0; fx->trs && i < fx->n_triggers; i++) trigger_free(fx->trs[i]);
  free(fx->trs);
  for (size_t e = 0; e < N_EVENTS; e++) ce_event_free(fx->evs[e]);
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv) {
  static const size_t sizes[] = {10, 100, 1000, 10000};
  enum { N_SIZES = sizeof sizes / sizeof *sizes };
  bench_opts opts;
  int parsed = bench_opts_parse(&opts, argc, argv, "bench_index", "events"), rc = 1;
  fixture fx[N_SIZES] = {{0}};

  if (parsed != 0) return parsed > 0 ? 0 : 2; /* 1: --help was shown */
  for (int i = 0; i < N_SIZES; i++)
    if (fixture_prepare(&fx[i], sizes[i]) != 0) {
      fprintf(stderr, "bench_index: cannot prepare %zu triggers\n", sizes[i]);
      goto cleanup;
    }

  printf("Outpost trigger index benchmark: events/s, median of %d measurements each\n",
         opts.repeats);
  printf("ratio = trigger_index_match / a linear scan calling trigger_match on every trigger,\n"
         "measured in the same run (median of adjacent pairs; >1: the index routes more)\n\n");
  for (int i = 0; i < N_SIZES; i++)
    printf("%5zu triggers: %zu exact type, %zu source prefix, %zu CESQL with a type conjunct,"
           " %zu CESQL without, %zu other; %zu not indexed\n",
           fx[i].n_triggers, fx[i].mix[0], fx[i].mix[1], fx[i].mix[2], fx[i].mix[3], fx[i].mix[4],
           fx[i].unkeyed);
  printf("\n%8s %12s %12s %7s %10s %8s\n", "triggers", "index/s", "linear/s", "ratio", "evaluated",
         "matched");
  printf("%8s %12s %12s %7s %10s %8s\n", "--------", "------------", "------------", "-------",
         "----------", "--------");
  for (int i = 0; i < N_SIZES; i++) {
    bench_result res;
    if (bench_pair_measure(route_index, route_linear, &fx[i], &opts, &res) != 0) {
      fprintf(stderr, "bench_index: %zu triggers failed\n", fx[i].n_triggers);
      goto cleanup;
    }
    printf("%8zu", fx[i].n_triggers);
    bench_rate_print(res.ours);
    bench_rate_print(res.base);
    printf(" %7.1f %10.1f %8.2f\n", res.ratio, fx[i].evaluated, fx[i].matches);
    fflush(stdout);
  }
  printf("\nevaluated: triggers the index evaluated in full per event, on average (the linear\n"
         "scan evaluates all of them); matched: triggers an event matched, on average\n");
  rc = 0;

cleanup:
  for (int i = 0; i < N_SIZES; i++) fixture_cleanup(&fx[i]);
  return rc;
}
