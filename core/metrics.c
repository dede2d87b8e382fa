/*
 * metrics.c — Prometheus text format (version 0.0.4) for counters and
 * histograms with fixed, roughly logarithmic buckets.
 */
#include "core/metrics.h"

#include <stdio.h>
#include <time.h>

/* Upper bounds in seconds; the last bucket is +Inf. */
static const double bounds[METRICS_BUCKETS - 1] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

uint64_t metrics_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void metrics_hist_observe(metrics_hist *h, uint64_t ns) {
  double s = (double)ns / 1e9;
  size_t i = 0;
  while (i < METRICS_BUCKETS - 1 && s > bounds[i]) i++;
  atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

void metrics_family(ce_buf *out, const char *name, const char *type, const char *help) {
  char line[512];
  snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
  ce_buf_append_str(out, line);
}

void metrics_sample(ce_buf *out, const char *name, const char *labels, uint64_t value) {
  char line[512];
  if (labels && *labels)
    snprintf(line, sizeof line, "%s{%s} %llu\n", name, labels, (unsigned long long)value);
  else
    snprintf(line, sizeof line, "%s %llu\n", name, (unsigned long long)value);
  ce_buf_append_str(out, line);
}

void metrics_single(ce_buf *out, const char *name, const char *type, const char *help,
                    uint64_t value) {
  metrics_family(out, name, type, help);
  metrics_sample(out, name, NULL, value);
}

void metrics_ok_failed(ce_buf *out, const char *name, const char *help, uint64_t ok,
                       uint64_t failed) {
  metrics_family(out, name, "counter", help);
  metrics_sample(out, name, "result=\"ok\"", ok);
  metrics_sample(out, name, "result=\"failed\"", failed);
}

void metrics_hist_render(ce_buf *out, const char *name, const char *labels, const metrics_hist *h) {
  char line[512];
  const char *sep = labels && *labels ? "," : "";
  if (!labels) labels = "";
  uint64_t cum = 0;
  for (size_t i = 0; i < METRICS_BUCKETS; i++) {
    cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    if (i < METRICS_BUCKETS - 1)
      snprintf(line, sizeof line, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[i],
               (unsigned long long)cum);
    else
      snprintf(line, sizeof line, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
               (unsigned long long)cum);
    ce_buf_append_str(out, line);
  }
  double sum = (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9;
  const char *open = *labels ? "{" : "", *close = *labels ? "}" : "";
  snprintf(line, sizeof line, "%s_sum%s%s%s %.9f\n%s_count%s%s%s %llu\n", name, open, labels, close,
           sum, name, open, labels, close,
           (unsigned long long)atomic_load_explicit(&h->count, memory_order_relaxed));
  ce_buf_append_str(out, line);
}
