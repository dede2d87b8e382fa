/*
 * bench_util.c — the harness the benchmarks share: argument parsing, the
 * calibrated and paired measurement of ours beside a baseline, and rate
 * printing. Nothing here knows what is measured. See bench_util.h.
 */
#include "bench_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f, const char *prog, const char *unit) {
  fprintf(f,
          "usage: %s [--iterations N] [--repeats R]\n"
          "  --iterations N  %s per measurement (default: calibrated to ~%.2f s)\n"
          "  --repeats R     measurements per figure, the median is shown (default %d, "
          "max %d)\n",
          prog, unit, BENCH_MEASURE_SECONDS, BENCH_DEFAULT_REPEATS, BENCH_MAX_REPEATS);
}

int bench_opts_parse(bench_opts *opts, int argc, char **argv, const char *prog, const char *unit) {
  opts->iterations = 0;
  opts->repeats = BENCH_DEFAULT_REPEATS;
  for (int i = 1; i < argc; i += 2) {
    char *end;
    long v;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout, prog, unit);
      return 1;
    }
    if (i + 1 >= argc ||
        (strcmp(argv[i], "--iterations") != 0 && strcmp(argv[i], "--repeats") != 0))
      goto bad;
    errno = 0;
    v = strtol(argv[i + 1], &end, 10);
    if (errno || *end || v <= 0) goto bad;
    if (strcmp(argv[i], "--iterations") == 0) {
      opts->iterations = v;
    } else {
      if (v > BENCH_MAX_REPEATS) goto bad;
      opts->repeats = (int)v;
    }
  }
  return 0;

bad:
  usage(stderr, prog, unit);
  return -1;
}

/* ------------------------------------------------------------ timing */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Runs per second over n runs of fn, or -1 when fn failed. */
static double rate(bench_fn fn, const void *arg, long n) {
  double t0 = now();
  if (fn(arg, n) != 0) return -1;
  double dt = now() - t0;
  return dt > 0 ? (double)n / dt : -1;
}

/* The iteration count that makes one measurement last about `target`
 * seconds; doubling up to it also warms caches and the allocator. */
static long calibrate(bench_fn fn, const void *arg, double target) {
  long n = 8;
  for (;;) {
    double t0 = now();
    if (fn(arg, n) != 0) return -1;
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

/* Alternating which side goes first lets drift and noise hit both alike.
 * The ratio is the median of the ratios of adjacent pairs, which cancels
 * slow changes in machine speed better than a ratio of two medians. */
int bench_pair_measure(bench_fn ours, bench_fn base, const void *arg, const bench_opts *opts,
                       bench_result *res) {
  double r_ours[BENCH_MAX_REPEATS], r_base[BENCH_MAX_REPEATS], r_ratio[BENCH_MAX_REPEATS];
  long n_ours = opts->iterations, n_base = opts->iterations;
  int repeats = opts->repeats;

  if (opts->iterations <= 0) {
    n_ours = calibrate(ours, arg, BENCH_MEASURE_SECONDS);
    n_base = calibrate(base, arg, BENCH_MEASURE_SECONDS);
    if (n_ours < 0 || n_base < 0) return -1;
  } else if (ours(arg, opts->iterations / 10 + 1) != 0 ||
             base(arg, opts->iterations / 10 + 1) != 0) {
    return -1; /* the warm-up */
  }
  for (int r = 0; r < repeats; r++) {
    if (r % 2 == 0) {
      r_ours[r] = rate(ours, arg, n_ours);
      r_base[r] = rate(base, arg, n_base);
    } else {
      r_base[r] = rate(base, arg, n_base);
      r_ours[r] = rate(ours, arg, n_ours);
    }
    if (r_ours[r] < 0 || r_base[r] < 0) return -1;
    r_ratio[r] = r_ours[r] / r_base[r];
  }
  res->ours = median(r_ours, repeats);
  res->base = median(r_base, repeats);
  res->ratio = median(r_ratio, repeats);
  return 0;
}

/* ------------------------------------------------------------ printing */

void bench_rate_print(double r) {
  char digits[32], out[48];
  int len = snprintf(digits, sizeof digits, "%.0f", r), o = 0;
  for (int i = 0; i < len; i++) {
    if (i > 0 && (len - i) % 3 == 0) out[o++] = ',';
    out[o++] = digits[i];
  }
  out[o] = '\0';
  printf(" %12s", out);
}
