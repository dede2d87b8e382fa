/*
 * bench_util.h — the harness the benchmarks in bench/ share: their command
 * line (--iterations, --repeats), the measurement of an operation of ours
 * beside a baseline in the same run, and the printing of rates. Each
 * benchmark keeps its workload, fixtures and table in its own file. See
 * bench/README.md.
 */
#ifndef OUTPOST_BENCH_UTIL_H
#define OUTPOST_BENCH_UTIL_H

#define BENCH_MAX_REPEATS     101  /* the most measurements a figure is the median of */
#define BENCH_DEFAULT_REPEATS 15   /* without --repeats */
#define BENCH_MEASURE_SECONDS 0.05 /* one calibrated measurement */

/* Runs a benchmark's operation n times on `arg` (its fixture, read only);
 * returns 0, or -1 when the operation failed. */
typedef int (*bench_fn)(const void *arg, long n);

/* The command line every benchmark takes. */
typedef struct bench_opts {
  long iterations; /* runs per measurement; 0: calibrated to BENCH_MEASURE_SECONDS */
  int repeats;     /* measurements per figure, 1 to BENCH_MAX_REPEATS */
} bench_opts;

/* The figures of one measured pair. */
typedef struct bench_result {
  double ours;  /* runs per second of ours, the median of the measurements */
  double base;  /* the same for the baseline */
  double ratio; /* ours / base: the median of the ratios of adjacent pairs */
} bench_result;

/*
 * Fills opts from `--iterations N`, `--repeats R` and `--help` (or `-h`),
 * with the defaults for what is not given. `prog` names the benchmark in the
 * usage text and `unit` says what one iteration is ("runs", "events").
 *
 * Returns 0 to go on; 1 when the usage was printed on stdout for --help (the
 * caller exits with 0); -1 when the arguments are wrong, after printing the
 * usage on stderr (the caller exits with 2).
 */
int bench_opts_parse(bench_opts *opts, int argc, char **argv, const char *prog, const char *unit);

/*
 * Measures `ours` and `base` on `arg` opts->repeats times each, back to back
 * and alternating which goes first, after a calibration (or, with a fixed
 * iteration count, a warm-up). Fills res on success.
 *
 * Returns 0, or -1 when either operation failed.
 */
int bench_pair_measure(bench_fn ours, bench_fn base, const void *arg, const bench_opts *opts,
                       bench_result *res);

/* Prints " " and a rate, rounded to a whole number with thousands
 * separators, right-aligned in 12 columns ("      267,695"). */
void bench_rate_print(double r);

#endif
