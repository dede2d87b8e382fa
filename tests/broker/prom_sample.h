/*
 * prom_sample.h — for the broker tests: one sample's value in Prometheus
 * text, as /metrics renders it.
 */
#ifndef OUTPOST_TESTS_BROKER_PROM_SAMPLE_H
#define OUTPOST_TESTS_BROKER_PROM_SAMPLE_H

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

#endif
