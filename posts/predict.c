/*
 * predict.c — the hybrid histogram policy for a pool's warm target (see
 * predict.h for the policy and its sources).
 */
#include "posts/predict.h"

#include <errno.h>
#include <math.h>
#include <string.h>

void pool_predict_opts_init(pool_predict_opts *o) {
  o->bin_ms = 60000;
  o->bins = 240;
  o->keepalive_ms = 600000;
  o->head_pct = 5;
  o->tail_pct = 99;
  o->margin = 0.10;
  o->min_samples = 10;
  o->min_cv = 2;
  o->oob_max = 0.5;
  o->rate_halflife_s = 60;
  o->burst_gap_ms = 60000;
  o->burst_weight = 0.3;
}

int pool_predict_init(pool_predict *p, const pool_predict_opts *o) {
  pool_predict_opts d;
  pool_predict_opts_init(&d);
  if (!o) o = &d;
  if (o->bin_ms <= 0 || o->bins == 0 || o->bins > POOL_PREDICT_MAX_BINS || o->head_pct <= 0 ||
      o->tail_pct >= 100 || o->head_pct >= o->tail_pct || o->margin < 0 || o->margin >= 1 ||
      o->keepalive_ms <= 0 || o->rate_halflife_s <= 0 || o->burst_gap_ms < 0 ||
      o->burst_weight <= 0 || o->burst_weight > 1)
    return -EINVAL;
  memset(p, 0, sizeof *p);
  p->o = *o;
  return 0;
}

/* Decays the claim-rate average to now (no claim since rate_at_ms). */
static void decay(pool_predict *p, int64_t now_ms) {
  if (now_ms <= p->rate_at_ms) return;
  double dt = (double)(now_ms - p->rate_at_ms) / 1000.0;
  p->rate *= exp2(-dt / p->o.rate_halflife_s);
  p->rate_at_ms = now_ms;
}

/* Takes the finished current burst into the usual burst size, once. */
static void fold_burst(pool_predict *p) {
  if (!p->burst || p->burst_folded) return;
  p->burst_avg = p->burst_avg
                     ? p->o.burst_weight * p->burst + (1 - p->o.burst_weight) * p->burst_avg
                     : p->burst;
  p->burst_folded = true;
}

void pool_predict_claim(pool_predict *p, int64_t now_ms) {
  int64_t gap = p->have_last && now_ms >= p->last_ms ? now_ms - p->last_ms : -1;
  if (gap >= 0 && gap < p->o.burst_gap_ms) {
    p->burst++;
  } else {
    fold_burst(p); /* the burst before this one is over, if target has not said so */
    p->burst = 1;
    p->burst_folded = false;
  }
  if (gap >= p->o.burst_gap_ms) { /* an idle time between bursts */
    size_t bin = (size_t)(gap / p->o.bin_ms);
    if (bin < p->o.bins)
      p->hist[bin]++;
    else
      p->overflow++;
    p->samples++;
  }
  if (!p->have_last) p->rate_at_ms = now_ms;
  decay(p, now_ms);
  /* Each claim adds an impulse whose integral over time is one claim. */
  p->rate += 0.69314718055994530942 / p->o.rate_halflife_s; /* ln 2 / half-life */
  p->have_last = true;
  p->last_ms = now_ms;
}

/* The gap (ms) below which pct percent of the in-range gaps fall: the
 * lower edge of the bin for the head, its upper edge for the tail, so both
 * windows err on the side of warm. */
static int64_t percentile(const pool_predict *p, double pct, bool upper) {
  size_t in_range = p->samples - p->overflow;
  double want = pct / 100.0 * (double)in_range, seen = 0;
  for (size_t i = 0; i < p->o.bins; i++) {
    seen += p->hist[i];
    if (seen >= want && p->hist[i]) return (int64_t)(upper ? i + 1 : i) * p->o.bin_ms;
  }
  return (int64_t)p->o.bins * p->o.bin_ms;
}

/* Whether the histogram is worth trusting: enough gaps, most in range, and
 * counts concentrated rather than spread evenly (coefficient of variation
 * of the bin counts). */
static bool trusted(const pool_predict *p) {
  if (p->samples < p->o.min_samples) return false;
  if ((double)p->overflow > p->o.oob_max * (double)p->samples) return false;
  double n = (double)p->o.bins, mean = (double)(p->samples - p->overflow) / n, var = 0;
  for (size_t i = 0; i < p->o.bins; i++)
    var += ((double)p->hist[i] - mean) * ((double)p->hist[i] - mean);
  double cv = mean > 0 ? sqrt(var / n) / mean : 0;
  return cv >= p->o.min_cv;
}

static uint32_t clamp(double v) {
  return v < 1 ? 1 : v > 1e6 ? 1000000u : (uint32_t)ceil(v);
}

pool_predict_advice pool_predict_target(pool_predict *p, int64_t now_ms, int64_t refill_ms) {
  pool_predict_advice a = {0};
  decay(p, now_ms);
  a.rate = p->rate;
  if (!p->have_last) {
    a.why = POOL_PREDICT_NO_DEMAND;
    return a;
  }
  a.histogram = trusted(p);
  if (a.histogram) {
    a.prewarm_ms = (int64_t)((double)percentile(p, p->o.head_pct, false) * (1 - p->o.margin));
    a.keepalive_ms = (int64_t)((double)percentile(p, p->o.tail_pct, true) * (1 + p->o.margin));
  } else {
    a.prewarm_ms = 0;
    a.keepalive_ms = p->o.keepalive_ms;
  }
  int64_t since = now_ms - p->last_ms;
  double expected = ceil(p->rate * (double)(refill_ms > 0 ? refill_ms : 0) / 1000.0);
  if (expected < 1) expected = 1;
  /* A burst is over burst_gap_ms after its last claim: learnt now, so that
   * the warm target already counts it. */
  if (since >= p->o.burst_gap_ms) fold_burst(p);
  a.burst = p->burst_avg;
  if (since < p->o.burst_gap_ms) { /* a burst may be under way: what it has left */
    a.why = POOL_PREDICT_BURST;
    a.target = clamp(fmax(expected, p->burst_avg - p->burst));
    return a;
  }
  /* Warm a refill ahead of the window, so that an environment is ready by
   * the time the next claim may come. */
  if (since < a.prewarm_ms - refill_ms) {
    a.why = POOL_PREDICT_PREWARM;
    return a;
  }
  if (since > a.keepalive_ms) {
    a.why = POOL_PREDICT_IDLE;
    return a;
  }
  a.why = POOL_PREDICT_WARM;
  a.target = clamp(fmax(expected, ceil(p->burst_avg)));
  return a;
}

const char *pool_predict_why_name(pool_predict_why why) {
  switch (why) {
  case POOL_PREDICT_NO_DEMAND:
    return "no_demand";
  case POOL_PREDICT_PREWARM:
    return "prewarm";
  case POOL_PREDICT_BURST:
    return "burst";
  case POOL_PREDICT_WARM:
    return "warm";
  case POOL_PREDICT_IDLE:
    return "idle";
  }
  return "unknown";
}
