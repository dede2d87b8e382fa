/*
 * metrics.h — Prometheus text exposition for counters and latency
 * histograms. Counters are plain _Atomic uint64_t owned by the component;
 * histograms have fixed buckets from 100 µs to 10 s. Lock-free: observing
 * from any thread, rendering from another.
 */
#ifndef OUTPOST_CORE_METRICS_H
#define OUTPOST_CORE_METRICS_H

#include "core/ce.h"

#include <stdatomic.h>
#include <stdint.h>

enum { METRICS_BUCKETS = 16 };

typedef struct metrics_hist {
  _Atomic uint64_t buckets[METRICS_BUCKETS]; /* non-cumulative counts */
  _Atomic uint64_t count;
  _Atomic uint64_t sum_ns;
} metrics_hist;

/* Records one observation of ns nanoseconds. */
void metrics_hist_observe(metrics_hist *h, uint64_t ns);
/* Appends "# HELP", "# TYPE" lines for a metric family. */
void metrics_family(ce_buf *out, const char *name, const char *type, const char *help);
/* Appends one sample: name{labels} value. labels may be NULL or "". */
void metrics_sample(ce_buf *out, const char *name, const char *labels, uint64_t value);
/* A family of one sample with no labels: metrics_family, then metrics_sample. */
void metrics_single(ce_buf *out, const char *name, const char *type, const char *help,
                    uint64_t value);
/* A counter family by outcome: name{result="ok"} ok and name{result="failed"}
 * failed. */
void metrics_ok_failed(ce_buf *out, const char *name, const char *help, uint64_t ok,
                       uint64_t failed);
/* Appends the _bucket, _sum and _count samples of a histogram in seconds. */
void metrics_hist_render(ce_buf *out, const char *name, const char *labels, const metrics_hist *h);
/* Monotonic clock in nanoseconds. */
uint64_t metrics_now_ns(void);

#endif
