/*
 * bench_index.c — how many events per second the trigger index routes
 * (trigger_index_match) beside a linear scan that evaluates every trigger
 * (trigger_match on each), in the same run, for 100, 1000 and 10000
 * triggers of a realistic mix: mostly exact type filters, some source
 * prefixes, some CESQL, a few filters no key covers. Also prints how many
 * triggers the index evaluated per event on average. The ratio is what can
 * be compared across machines; nothing here asserts a speed. See
 * bench/README.md.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

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

/* Routes n events (cycling through the fixture's); returns 0. */
typedef int (*bench_fn)(const fixture *fx, long n);

/* Results are folded into this so the compiler cannot drop the work. */
static volatile size_t sink;

/* ------------------------------------------------------------ operations */

static int route_index(const fixture *fx, long n) {
  size_t hits = 0;
  for (long i = 0; i < n; i++)
    hits += trigger_index_match(fx->ix, fx->evs[i % N_EVENTS], NULL, NULL, NULL);
  sink += hits;
  return 0;
}

static int route_linear(const fixture *fx, long n) {
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

/* ------------------------------------------------------------ timing */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Events per second over n events routed by fn, or -1 when fn failed. */
static double rate(bench_fn fn, const fixture *fx, long n) {
  double t0 = now();
  if (fn(fx, n) != 0) return -1;
  double dt = now() - t0;
  return dt > 0 ? (double)n / dt : -1;
}

/* The event count that makes one measurement last about `target` seconds;
 * doubling up to it also warms the caches. */
static long calibrate(bench_fn fn, const fixture *fx, double target) {
  long n = 8;
  for (;;) {
    double t0 = now();
    if (fn(fx, n) != 0) return -1;
    double dt = now() - t0;
    if (dt >= target / 4 || n > (1L << 40)) return dt > 0 ? (long)((double)n * target / dt) + 1 : n;
    n *= 2;
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define MAX_REPEATS     101
#define MEASURE_SECONDS 0.05 /* one calibrated measurement */

/* Measures the index and the linear scan `repeats` times each, back to back
 * and alternating which goes first; the ratio is the median of the ratios of
 * adjacent pairs (as bench_codec does, for the same reason: it cancels slow
 * drifts in the machine's speed). */
static int measure(const fixture *fx, long iterations, int repeats, double *ours, double *base,
                   double *ratio) {
  double r_ours[MAX_REPEATS], r_base[MAX_REPEATS], r_ratio[MAX_REPEATS];
  long n_ours = iterations, n_base = iterations;

  if (iterations <= 0) {
    n_ours = calibrate(route_index, fx, MEASURE_SECONDS);
    n_base = calibrate(route_linear, fx, MEASURE_SECONDS);
    if (n_ours < 0 || n_base < 0) return -1;
  } else if (route_index(fx, iterations / 10 + 1) != 0 ||
             route_linear(fx, iterations / 10 + 1) != 0) {
    return -1; /* the warm-up */
  }
  for (int r = 0; r < repeats; r++) {
    if (r % 2 == 0) {
      r_ours[r] = rate(route_index, fx, n_ours);
      r_base[r] = rate(route_linear, fx, n_base);
    } else {
      r_base[r] = rate(route_linear, fx, n_base);
      r_ours[r] = rate(route_index, fx, n_ours);
    }
    if (r_ours[r] < 0 || r_base[r] < 0) return -1;
    r_ratio[r] = r_ours[r] / r_base[r];
  }
  *ours = median(r_ours, repeats);
  *base = median(r_base, repeats);
  *ratio = median(r_ratio, repeats);
  return 0;
}

/* ------------------------------------------------------------ main */

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_index [--iterations N] [--repeats R]\n"
          "  --iterations N  events per measurement (default: calibrated to ~%.2f s)\n"
          "  --repeats R     measurements per figure, the median is shown (default 15, "
          "max %d)\n",
          MEASURE_SECONDS, MAX_REPEATS);
}

static int parse_args(int argc, char **argv, long *iterations, int *repeats) {
  for (int i = 1; i < argc; i += 2) {
    char *end;
    long v;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      exit(0);
    }
    if (i + 1 >= argc ||
        (strcmp(argv[i], "--iterations") != 0 && strcmp(argv[i], "--repeats") != 0))
      goto bad;
    errno = 0;
    v = strtol(argv[i + 1], &end, 10);
    if (errno || *end || v <= 0) goto bad;
    if (strcmp(argv[i], "--iterations") == 0) {
      *iterations = v;
    } else {
      if (v > MAX_REPEATS) goto bad;
      *repeats = (int)v;
    }
  }
  return 0;

bad:
  usage(stderr);
  return -1;
}

static void print_rate(double r) {
  char digits[32], out[48];
  int len = snprintf(digits, sizeof digits, "%.0f", r), o = 0;
  for (int i = 0; i < len; i++) {
    if (i > 0 && (len - i) % 3 == 0) out[o++] = ',';
    out[o++] = digits[i];
  }
  out[o] = '\0';
  printf(" %12s", out);
}

int main(int argc, char **argv) {
  static const size_t sizes[] = {100, 1000, 10000};
  enum { N_SIZES = sizeof sizes / sizeof *sizes };
  long iterations = 0;
  int repeats = 15, rc = 1;
  fixture fx[N_SIZES] = {{0}};

  if (parse_args(argc, argv, &iterations, &repeats) != 0) return 2;
  for (int i = 0; i < N_SIZES; i++)
    if (fixture_prepare(&fx[i], sizes[i]) != 0) {
      fprintf(stderr, "bench_index: cannot prepare %zu triggers\n", sizes[i]);
      goto cleanup;
    }

  printf("Outpost trigger index benchmark: events/s, median of %d measurements each\n", repeats);
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
    double ours, base, ratio;
    if (measure(&fx[i], iterations, repeats, &ours, &base, &ratio) != 0) {
      fprintf(stderr, "bench_index: %zu triggers failed\n", fx[i].n_triggers);
      goto cleanup;
    }
    printf("%8zu", fx[i].n_triggers);
    print_rate(ours);
    print_rate(base);
    printf(" %7.1f %10.1f %8.2f\n", ratio, fx[i].evaluated, fx[i].matches);
    fflush(stdout);
  }
  printf("\nevaluated: triggers the index evaluated in full per event, on average (the linear\n"
         "scan evaluates all of them); matched: triggers an event matched, on average\n");
  rc = 0;

cleanup:
  for (int i = 0; i < N_SIZES; i++) fixture_cleanup(&fx[i]);
  return rc;
}
