/*
 * prom_sample.h — for the broker tests: one sample's value in Prometheus
 * text, as /metrics renders it, and a log's own metrics as that text.
 */
#ifndef OUTPOST_TESTS_BROKER_PROM_SAMPLE_H
#define OUTPOST_TESTS_BROKER_PROM_SAMPLE_H

#include "broker/broker.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The value of the sample `series` (its name and labels as rendered) in
 * text; false when there is no such line. */
static inline bool prom_sample(const char *text, const char *series, double *value) {
  size_t n = strlen(series);
  for (const char *line = text; line && *line;
       line = strchr(line, '\n'), line = line ? line + 1 : NULL)
    if (strncmp(line, series, n) == 0 && line[n] == ' ') {
      *value = strtod(line + n + 1, NULL);
      return true;
    }
  return false;
}

/* The log's own metrics (broker_log_metrics) as a C string; the caller
 * frees it. */
static inline char *prom_log_text(broker_log *log) {
  ce_buf out;
  ce_buf_init(&out);
  broker_log_metrics(log, &out);
  ce_buf_append(&out, "", 1);
  return out.data;
}

#endif
