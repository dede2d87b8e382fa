/*
 * predict.h — how many warm environments a template's pool should hold,
 * from the claims it has seen: the hybrid histogram policy of "Serverless
 * in the Wild" (Shahrad et al., USENIX ATC '20), adapted from one function's
 * container to a pool of environments.
 *
 * The paper keeps, per application, a histogram of idle times (the gaps
 * between invocations). When the histogram is representative, the 5th
 * percentile of the gaps, less a margin, says how long after an invocation
 * nothing will come (the pre-warm window: keep nothing warm), and the 99th,
 * plus a margin, how long something may still come (the keep-alive window:
 * after it, unload). When it is not (too few gaps, or counts spread evenly
 * over every bin), it falls back to a fixed keep-alive.
 *
 * For a pool:
 *   - the windows decide whether any environment should be warm: none
 *     inside the pre-warm window (0 < now − last claim < pre-warm), none past
 *     the keep-alive window (scale to zero), else some;
 *   - how many: the claims expected while one environment is being made
 *     (the claim rate, an exponentially weighted moving average, times the
 *     refill time the pool measures), rounded up, at least one;
 *   - claims that come together (a class of students starting a lab) are
 *     one burst: a gap shorter than burst_gap_ms continues the burst and is
 *     not an idle time; the histogram holds the gaps between bursts, and the
 *     pool also learns the usual burst size (an exponentially weighted
 *     average), as soon as a burst is over (burst_gap_ms after its last
 *     claim), not at the next burst's first claim. Inside the keep-alive window the target is then
 * at least the usual burst, so that a whole class finds warm environments; during a burst, at least
 * what the usual burst has still to claim. This is our extension of the paper, whose unit is one
 * invocation;
 *   - gaps beyond the histogram's range count in an overflow bin; when too
 *     many gaps fall there (the paper's "out of bounds" case, which it hands
 *     to ARIMA), the fixed keep-alive is used instead: this module has no
 *     time-series model.
 * The pool applies its template's min and max to the result.
 *
 * Pure: the caller passes the clock (milliseconds, any monotonic origin).
 * Thread rules: one pool_predict per template, used by one thread at a time.
 */
#ifndef OUTPOST_POSTS_PREDICT_H
#define OUTPOST_POSTS_PREDICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POOL_PREDICT_MAX_BINS 1440

typedef struct pool_predict_opts {
  int64_t bin_ms;         /* width of a histogram bin (default 60000: one minute) */
  size_t bins;            /* bins (default 240: four hours, the paper's range) */
  int64_t keepalive_ms;   /* the fixed keep-alive when the histogram says nothing (default
                             600000: ten minutes, as the paper's baseline) */
  double head_pct;        /* percentile for the pre-warm window (default 5) */
  double tail_pct;        /* percentile for the keep-alive window (default 99) */
  double margin;          /* pre-warm shortened, keep-alive lengthened by this fraction
                             (default 0.10) */
  size_t min_samples;     /* gaps before the histogram is trusted (default 10) */
  double min_cv;          /* coefficient of variation of the bin counts below which the
                             histogram is too flat to trust (default 2, the paper's) */
  double oob_max;         /* fraction of gaps past the range above which the histogram
                             is not trusted (default 0.5) */
  double rate_halflife_s; /* half-life of the claim-rate average (default 60 s) */
  int64_t burst_gap_ms;   /* claims closer than this are one burst (default 60000) */
  double burst_weight;    /* weight of the newest burst in the burst-size average
                             (default 0.3) */
} pool_predict_opts;

void pool_predict_opts_init(pool_predict_opts *o);

/* Caller-owned state; pool_predict_init before use (no cleanup needed). */
typedef struct pool_predict {
  pool_predict_opts o;
  uint32_t hist[POOL_PREDICT_MAX_BINS];
  uint32_t overflow;
  size_t samples;
  bool have_last;
  int64_t last_ms;
  double rate;        /* claims per second, averaged */
  int64_t rate_at_ms; /* when rate was last brought up to date */
  uint32_t burst;     /* claims in the current burst */
  bool burst_folded;  /* the current burst is over and already in burst_avg */
  double burst_avg;   /* the usual size of a finished burst (0: none finished yet) */
} pool_predict;

/* Fills *p for options o (NULL: the defaults). Returns 0, or -EINVAL for
 * options out of range (no bins, bins > POOL_PREDICT_MAX_BINS, a
 * percentile outside (0, 100), head >= tail, a burst weight outside
 * (0, 1]). */
int pool_predict_init(pool_predict *p, const pool_predict_opts *o);

/* Records a claim at now_ms (claims come in time order). */
void pool_predict_claim(pool_predict *p, int64_t now_ms);

/* Why pool_predict_target chose its number. */
typedef enum pool_predict_why {
  POOL_PREDICT_NO_DEMAND, /* no claim seen yet */
  POOL_PREDICT_PREWARM,   /* inside the pre-warm window: nothing expected yet */
  POOL_PREDICT_BURST,     /* a burst is under way */
  POOL_PREDICT_WARM,      /* inside the keep-alive window */
  POOL_PREDICT_IDLE,      /* past the keep-alive window: scale to zero */
} pool_predict_why;

typedef struct pool_predict_advice {
  uint32_t target; /* warm environments wanted now (before min and max) */
  pool_predict_why why;
  bool histogram;     /* the histogram was trusted (else the fixed keep-alive) */
  int64_t prewarm_ms; /* the windows used, from the last claim */
  int64_t keepalive_ms;
  double rate;  /* claims per second */
  double burst; /* the usual burst size */
} pool_predict_advice;

/* The advice at now_ms for a pool whose environments take refill_ms to
 * make. */
pool_predict_advice pool_predict_target(pool_predict *p, int64_t now_ms, int64_t refill_ms);

/* The name of why ("prewarm"). */
const char *pool_predict_why_name(pool_predict_why why);

#endif
