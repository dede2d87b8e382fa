/*
 * bench_pool.c — what the pool's pre-warm predictor (posts/predict.h)
 * buys, by simulation: a week of claims per demand pattern replayed against
 * a pool whose warm target follows each policy, counting cold starts (a
 * claim that finds no warm environment) and the warm environment-minutes
 * spent waiting (the cost of keeping environments warm). Figures are ratios
 * against the paper's baseline, a fixed ten-minute keep-alive of one
 * environment, simulated on the same trace in the same run.
 *
 * This measures the policy, not the machine: the numbers are the same on
 * every run (a seeded generator), and nothing here is timed.
 *
 * Usage: bench_pool [--refill-ms MS] [--days D]
 */
#include "posts/predict.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEC  1000LL
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)

/* A small deterministic generator (xorshift64*), so that runs agree. */
static uint64_t rng = 88172645463325252ull;
static double uniform(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return (double)((rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

typedef struct trace {
  const char *name, *what;
  int64_t *t;
  size_t n, cap;
} trace;

static void add(trace *tr, int64_t t) {
  if (tr->n == tr->cap) {
    tr->cap = tr->cap ? tr->cap * 2 : 1024;
    tr->t = realloc(tr->t, tr->cap * sizeof *tr->t);
    if (!tr->t) abort();
  }
  tr->t[tr->n++] = t;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* The demand patterns: a lab used on a schedule, classes that arrive
 * together, steady random use, and rare use. */
static void make_traces(trace *trs, int64_t span) {
  trs[0] = (trace){"periodic", "one claim every 30 min, +-1 min", NULL, 0, 0};
  for (int64_t t = 0; t < span; t += 30 * MIN)
    add(&trs[0], t + (int64_t)((uniform() - 0.5) * 2 * MIN));
  trs[1] = (trace){"classes", "weekdays 9-17: 30 students within 3 min, every 90 min", NULL, 0, 0};
  for (int64_t day = 0; day < span; day += DAY) {
    if ((day / DAY) % 7 >= 5) continue;
    for (int64_t s = 9 * HOUR; s < 17 * HOUR; s += 90 * MIN)
      for (int i = 0; i < 30; i++) add(&trs[1], day + s + (int64_t)(uniform() * 3 * MIN));
  }
  trs[2] = (trace){"poisson", "random, one claim per 20 min on average", NULL, 0, 0};
  for (double t = 0; t < (double)span;) {
    t += -log(1 - uniform()) * 20 * MIN;
    if (t < (double)span) add(&trs[2], (int64_t)t);
  }
  trs[3] = (trace){"sparse", "random, one claim per 6 h on average", NULL, 0, 0};
  for (double t = 0; t < (double)span;) {
    t += -log(1 - uniform()) * 6 * HOUR;
    if (t < (double)span) add(&trs[3], (int64_t)t);
  }
  for (int i = 0; i < 4; i++)
    if (trs[i].n) qsort(trs[i].t, trs[i].n, sizeof *trs[i].t, cmp64);
}

enum policy { HYBRID, FIXED, ALWAYS };

typedef struct outcome {
  size_t claims, cold;
  double warm_min; /* warm environment-minutes, claimed or not */
} outcome;

/* Replays tr against a pool following policy, one-second steps. */
static outcome simulate(const trace *tr, enum policy pol, int64_t refill, int64_t span) {
  pool_predict p;
  pool_predict_init(&p, NULL);
  outcome o = {0};
  int64_t making[4096];
  size_t n_making = 0, next = 0;
  uint32_t warm = 0;
  for (int64_t now = 0; now < span; now += SEC) {
    size_t k = 0;
    for (size_t i = 0; i < n_making; i++)
      if (making[i] <= now)
        warm++;
      else
        making[k++] = making[i];
    n_making = k;
    for (; next < tr->n && tr->t[next] <= now; next++) {
      o.claims++;
      if (warm)
        warm--;
      else
        o.cold++;
      pool_predict_claim(&p, tr->t[next]);
    }
    uint32_t target;
    if (pol == HYBRID) {
      target = pool_predict_target(&p, now, refill).target;
    } else if (pol == FIXED) {
      target = p.have_last && now - p.last_ms <= 10 * MIN ? 1 : 0;
    } else {
      target = 1;
    }
    while (warm + n_making < target && n_making < 4096) making[n_making++] = now + refill;
    if (warm > target) warm = target; /* reclaimed at once */
    o.warm_min += (double)warm / 60.0;
  }
  return o;
}

int main(int argc, char **argv) {
  int64_t refill = 2 * SEC, days = 7;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--refill-ms") == 0 && i + 1 < argc) {
      refill = atoll(argv[++i]);
    } else if (strcmp(argv[i], "--days") == 0 && i + 1 < argc) {
      days = atoll(argv[++i]);
    } else {
      fprintf(stderr, "usage: bench_pool [--refill-ms MS] [--days D]\n");
      return strcmp(argv[i], "--help") == 0 ? 0 : 2;
    }
  }
  if (refill < 0 || days <= 0 || days > 365) {
    fprintf(stderr, "bench_pool: --refill-ms >= 0, 0 < --days <= 365\n");
    return 2;
  }
  int64_t span = days * DAY;
  trace trs[4];
  make_traces(trs, span);
  printf(
      "pool pre-warming, %lld days simulated per pattern, refill %lld ms;\n"
      "ratios against a fixed 10-minute keep-alive of one environment (the paper's baseline)\n\n",
      (long long)days, (long long)refill);
  printf("%-9s %6s | %-22s | %-22s | %-22s | %s\n", "pattern", "claims", "hybrid: cold  warm-min",
         "fixed: cold  warm-min", "always-1: cold warm-min", "hybrid vs fixed: cold, warm");
  for (int i = 0; i < 4; i++) {
    outcome h = simulate(&trs[i], HYBRID, refill, span);
    outcome f = simulate(&trs[i], FIXED, refill, span);
    outcome a = simulate(&trs[i], ALWAYS, refill, span);
    double claims = h.claims ? (double)h.claims : 1; /* a short run may have none */
    double hc = 100.0 * (double)h.cold / claims;
    double fc = 100.0 * (double)f.cold / claims;
    double ac = 100.0 * (double)a.cold / claims;
    printf("%-9s %6zu | %5.1f%% %13.0f | %5.1f%% %13.0f | %5.1f%% %13.0f | %.2f, %.2f\n",
           trs[i].name, h.claims, hc, h.warm_min, fc, f.warm_min, ac, a.warm_min,
           fc > 0 ? hc / fc : 0.0, f.warm_min > 0 ? h.warm_min / f.warm_min : 0.0);
  }
  printf("\npatterns:\n");
  for (int i = 0; i < 4; i++) {
    printf("  %-9s %s\n", trs[i].name, trs[i].what);
    free(trs[i].t);
  }
  return 0;
}
