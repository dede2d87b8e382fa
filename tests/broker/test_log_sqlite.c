/*
 * test_log_sqlite.c — the embedded log on a real SQLite file: records read
 * back exactly as appended (key, headers, value, no key, no value), offsets
 * per partition that survive a reopen, consumer positions, retention that
 * never deletes what a group still needs, and many threads appending at once
 * (each append acknowledged once, every record present, offsets dense), also
 * while some of them commit their own deferred appends, and the log's
 * metrics of its group commits.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "append_waiter.h"
#include "broker/broker.h"
#include "core/clock.h"
#include "log_file.h"
#include "prom_sample.h"

static char path[256];

static int setup(void **state) {
  (void)state;
  snprintf(path, sizeof path, "/tmp/outpost-test-log-%d.db", (int)getpid());
  unlink(path);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  log_file_remove(path);
  return 0;
}

static broker_log *open_log(int32_t partitions) {
  broker_sqlite_opts o;
  broker_sqlite_opts_init(&o);
  o.partitions = partitions;
  char err[256] = "";
  broker_log *log = broker_log_sqlite_open(path, &o, err, sizeof err);
  if (!log) fail_msg("open %s: %s", path, err);
  return log;
}

static void append_sync(broker_log *log, const char *topic, const broker_record *r, size_t n) {
  waiter *w = waiter_new();
  assert_int_equal(broker_log_append(log, topic, r, n, on_append, w), 0);
  wait_for(w, 1);
  assert_int_equal(w->last_status, 0);
  free(w);
}

/* The value of the sample `name` (with its labels, if any) in Prometheus
 * text, or -1 when it is missing. */
static double sample(const char *text, const char *name) {
  double v;
  return prom_sample(text, name, &v) ? v : -1;
}

/* Appends queued together are counted as the groups the writer made of
 * them: every append and record once, each group's commit observed once. */
static void metrics_count_group_commits(void **state) {
  (void)state;
  broker_log *log = open_log(2);
  ce_kv h[] = {{"ce_id", 5, "1", 1}};
  broker_record r[3] = {
      {.partition = -1, .headers = h, .n_headers = 1, .value = "v", .value_len = 1},
      {.partition = -1, .headers = h, .n_headers = 1},
      {.partition = -1, .headers = h, .n_headers = 1}};
  waiter *w = waiter_new();
  size_t records = 0;
  for (size_t i = 0; i < 30; i++) {
    assert_int_equal(broker_log_append(log, "t", r, 1 + i % 3, on_append, w), 0);
    records += 1 + i % 3;
  }
  wait_for(w, 30);
  assert_int_equal(w->failed, 0);
  char *m = prom_log_text(log);
  assert_non_null(m);
  double ok = sample(m, "outpost_log_commits_total{result=\"ok\"}");
  assert_true(ok >= 1 && ok <= 30);
  assert_true(sample(m, "outpost_log_commits_total{result=\"failed\"}") == 0);
  assert_true(sample(m, "outpost_log_appends_total") == 30);
  assert_true(sample(m, "outpost_log_records_total") == (double)records);
  assert_true(sample(m, "outpost_log_commit_duration_seconds_count") == ok);
  assert_true(sample(m, "outpost_log_commit_duration_seconds_bucket{le=\"+Inf\"}") == ok);
  assert_true(sample(m, "outpost_log_disk_bytes") > 0);
  free(m);
  free(w);
  broker_log_free(log);

  /* A log past --max-log-bytes refuses the group: counted as failed. */
  broker_sqlite_opts o;
  broker_sqlite_opts_init(&o);
  o.max_bytes = 1;
  char err[256] = "";
  log = broker_log_sqlite_open(path, &o, err, sizeof err);
  assert_non_null(log);
  w = waiter_new();
  assert_int_equal(broker_log_append(log, "t", r, 1, on_append, w), 0);
  wait_for(w, 1);
  assert_int_equal(w->last_status, -ENOSPC);
  m = prom_log_text(log);
  assert_non_null(m);
  assert_true(sample(m, "outpost_log_commits_total{result=\"ok\"}") == 0);
  assert_true(sample(m, "outpost_log_commits_total{result=\"failed\"}") == 1);
  assert_true(sample(m, "outpost_log_appends_total") == 0);
  assert_true(sample(m, "outpost_log_commit_duration_seconds_count") == 0);
  free(m);
  free(w);
  broker_log_free(log);
}

static void round_trip(void **state) {
  (void)state;
  broker_log *log = open_log(1);
  ce_kv h[] = {{"ce_id", 5, "1", 1}, {"content-type", 12, "application/json", 16}};
  broker_record in[] = {
      {.partition = -1,
       .key = "k1",
       .key_len = 2,
       .headers = h,
       .n_headers = 2,
       .value = "{\"a\":1}",
       .value_len = 7},
      {.partition = -1, .headers = h, .n_headers = 1}, /* no key, no value */
      {.partition = -1, .headers = NULL, .n_headers = 0, .value = "", .value_len = 0},
  };
  append_sync(log, "t", in, 3);
  broker_records out;
  assert_int_equal(broker_log_read(log, "t", 0, 0, 10, &out), 3);
  assert_int_equal(out.recs[0].offset, 0);
  assert_int_equal(out.recs[2].offset, 2);
  assert_int_equal(out.recs[0].key_len, 2);
  assert_memory_equal(out.recs[0].key, "k1", 2);
  assert_int_equal(out.recs[0].n_headers, 2);
  assert_int_equal(out.recs[0].headers[1].value_len, 16);
  assert_memory_equal(out.recs[0].headers[1].value, "application/json", 16);
  assert_memory_equal(out.recs[0].value, "{\"a\":1}", 7);
  assert_null(out.recs[1].key);
  assert_null(out.recs[1].value);
  assert_int_equal(out.recs[1].n_headers, 1);
  assert_non_null(out.recs[2].value); /* empty is not absent */
  assert_int_equal(out.recs[2].value_len, 0);
  assert_true(out.recs[0].timestamp_ms > 0);
  broker_records_cleanup(&out);
  /* Reading from the middle, and past the end. */
  assert_int_equal(broker_log_read(log, "t", 0, 2, 10, &out), 1);
  assert_int_equal(out.recs[0].offset, 2);
  broker_records_cleanup(&out);
  assert_int_equal(broker_log_read(log, "t", 0, 3, 10, &out), 0);
  broker_records_cleanup(&out);
  assert_int_equal(broker_log_read(log, "other", 0, 0, 10, &out), 0);
  broker_records_cleanup(&out);
  broker_log_free(log);
}

static void offsets_survive_reopen(void **state) {
  (void)state;
  broker_log *log = open_log(4);
  assert_int_equal(broker_log_partitions(log, "t"), 4);
  broker_record r = {.partition = 2, .value = "x", .value_len = 1};
  append_sync(log, "t", &r, 1);
  append_sync(log, "t", &r, 1);
  int64_t end;
  assert_int_equal(broker_log_end(log, "t", 2, &end), 0);
  assert_int_equal(end, 2);
  assert_int_equal(broker_log_end(log, "t", 0, &end), 0);
  assert_int_equal(end, 0);
  broker_log_free(log);
  /* The topic keeps its 4 partitions even when the default changes. */
  log = open_log(1);
  assert_int_equal(broker_log_partitions(log, "t"), 4);
  append_sync(log, "t", &r, 1);
  broker_records out;
  assert_int_equal(broker_log_read(log, "t", 2, 0, 10, &out), 3);
  assert_int_equal(out.recs[2].offset, 2);
  broker_records_cleanup(&out);
  /* A partition that does not exist is refused. */
  waiter *w = waiter_new();
  broker_record bad = {.partition = 9};
  assert_int_equal(broker_log_append(log, "t", &bad, 1, on_append, w), 0);
  wait_for(w, 1);
  assert_int_equal(w->last_status, -EINVAL);
  free(w);
  broker_log_free(log);
}

static void keys_pick_partitions(void **state) {
  (void)state;
  broker_log *log = open_log(8);
  broker_record r[2] = {{.partition = -1, .key = "env-1", .key_len = 5},
                        {.partition = -1, .key = "env-1", .key_len = 5}};
  append_sync(log, "t", r, 2);
  int with_two = 0;
  for (int32_t p = 0; p < 8; p++) {
    broker_records out;
    if (broker_log_read(log, "t", p, 0, 10, &out) == 2) with_two++;
    broker_records_cleanup(&out);
  }
  assert_int_equal(with_two, 1); /* one key, one partition, in order */
  broker_log_free(log);
}

static void positions(void **state) {
  (void)state;
  broker_log *log = open_log(1);
  int64_t next = -1;
  assert_int_equal(broker_log_committed(log, "g", "t", 0, &next), 0);
  assert_int_equal(next, 0);
  assert_int_equal(broker_log_commit(log, "g", "t", 0, 5), 0);
  assert_int_equal(broker_log_commit(log, "g", "t", 0, 7), 0);
  assert_int_equal(broker_log_committed(log, "g", "t", 0, &next), 0);
  assert_int_equal(next, 7);
  assert_int_equal(broker_log_committed(log, "h", "t", 0, &next), 0);
  assert_int_equal(next, 0);
  broker_log_free(log);
  log = open_log(1);
  assert_int_equal(broker_log_committed(log, "g", "t", 0, &next), 0);
  assert_int_equal(next, 7);
  broker_log_free(log);
}

/* A log that keeps records ms milliseconds (retention runs every 5 s on the
 * writer). */
static broker_log *open_retaining(int64_t ms) {
  broker_sqlite_opts o;
  broker_sqlite_opts_init(&o);
  o.retention_ms = ms;
  char err[256];
  broker_log *log = broker_log_sqlite_open(path, &o, err, sizeof err);
  assert_non_null(log);
  return log;
}

/* Waits (at most 8 s) until partition 0 of "t" holds n records. */
static void wait_for_records(broker_log *log, size_t n) {
  broker_records out;
  for (int i = 0; i < 80; i++) {
    clock_sleep_ms(100);
    assert_true(broker_log_read(log, "t", 0, 0, 100, &out) >= 0);
    bool done = out.n == n;
    broker_records_cleanup(&out);
    if (done) break;
  }
}

/* With retention of 1 ms, only what every group has committed past goes,
 * and a segment (the records of one partition in one commit) only whole. */
static void retention_keeps_unconsumed(void **state) {
  (void)state;
  broker_log *log = open_retaining(1);
  broker_record r[10];
  for (int i = 0; i < 10; i++) r[i] = (broker_record){.partition = 0, .value = "v", .value_len = 1};
  for (int i = 0; i < 10; i++) append_sync(log, "t", &r[i], 1); /* offsets 0..9, one per commit */
  append_sync(log, "t", r, 10);                                 /* 10..19 in one commit */
  assert_int_equal(broker_log_commit(log, "a", "t", 0, 20), 0);
  assert_int_equal(broker_log_commit(log, "b", "t", 0, 4), 0);
  /* Retention runs every 5 s on the writer thread. */
  broker_records out;
  wait_for_records(log, 16);
  assert_int_equal(broker_log_read(log, "t", 0, 0, 100, &out), 16);
  assert_int_equal(out.recs[0].offset, 4); /* group b still needs 4..19 */
  broker_records_cleanup(&out);
  /* b moves inside the last commit's segment: 4..9 go, 10..19 stay whole. */
  assert_int_equal(broker_log_commit(log, "b", "t", 0, 15), 0);
  wait_for_records(log, 10);
  assert_int_equal(broker_log_read(log, "t", 0, 0, 100, &out), 10);
  assert_int_equal(out.recs[0].offset, 10);
  broker_records_cleanup(&out);
  int64_t end;
  assert_int_equal(broker_log_end(log, "t", 0, &end), 0);
  assert_int_equal(end, 20);
  broker_log_free(log);
}

/* Age retention deletes from the start of a partition only, as Kafka's does:
 * an old segment behind one still within the limit stays (and retention reads
 * no further than that one, however long the log). */
static void retention_takes_a_prefix(void **state) {
  (void)state;
  broker_log *log = open_retaining(3600 * 1000);
  broker_record old = {.partition = 0, .timestamp_ms = 1000, .value = "o", .value_len = 1};
  broker_record young = {.partition = 0, .value = "y", .value_len = 1}; /* now */
  /* Offset 0 goes; 1 stays, and 2 stays behind it. */
  append_sync(log, "t", &old, 1);
  append_sync(log, "t", &young, 1);
  append_sync(log, "t", &old, 1);
  wait_for_records(log, 2);
  broker_records out;
  assert_int_equal(broker_log_read(log, "t", 0, 0, 100, &out), 2);
  assert_int_equal(out.recs[0].offset, 1);
  assert_int_equal(out.recs[1].offset, 2);
  broker_records_cleanup(&out);
  broker_log_free(log);
}

/* A partition's end is its newest segment's next: once retention has deleted
 * every segment (no group holds them back), the end must still be kept, in
 * the file, for later appends, after a reopen too. */
static void end_outlives_its_segments(void **state) {
  (void)state;
  broker_log *log = open_retaining(1);
  broker_record r[5];
  for (int i = 0; i < 5; i++) r[i] = (broker_record){.partition = 0, .value = "v", .value_len = 1};
  append_sync(log, "t", r, 3);
  append_sync(log, "t", r, 2);
  broker_records out;
  wait_for_records(log, 0);
  assert_int_equal(broker_log_read(log, "t", 0, 0, 100, &out), 0);
  int64_t end;
  assert_int_equal(broker_log_end(log, "t", 0, &end), 0);
  assert_int_equal(end, 5);
  broker_log_free(log);
  log = open_log(1);
  assert_int_equal(broker_log_end(log, "t", 0, &end), 0);
  assert_int_equal(end, 5);
  append_sync(log, "t", r, 1);
  assert_int_equal(broker_log_read(log, "t", 0, 0, 100, &out), 1);
  assert_int_equal(out.recs[0].offset, 5);
  broker_records_cleanup(&out);
  broker_log_free(log);
}

/* One commit of more records than a segment holds: reads start anywhere,
 * inside a segment or across two, and see every record once. */
static void reads_inside_and_across_segments(void **state) {
  (void)state;
  enum { N = 600 }; /* three segments of at most 256 */
  broker_log *log = open_log(1);
  static broker_record r[N];
  static char v[N][16];
  for (int i = 0; i < N; i++) {
    int len = snprintf(v[i], sizeof v[i], "v%d", i);
    r[i] = (broker_record){.partition = 0, .value = v[i], .value_len = (size_t)len};
  }
  append_sync(log, "t", r, N);
  const int64_t from[] = {0, 1, 250, 255, 256, 511, 512, 599, 600};
  for (size_t k = 0; k < sizeof from / sizeof from[0]; k++) {
    broker_records out;
    int want = N - from[k] < 10 ? (int)(N - from[k]) : 10;
    assert_int_equal(broker_log_read(log, "t", 0, from[k], 10, &out), want);
    for (int i = 0; i < want; i++) {
      int64_t off = from[k] + i;
      assert_int_equal(out.recs[i].offset, off);
      assert_int_equal(out.recs[i].value_len, strlen(v[off]));
      assert_memory_equal(out.recs[i].value, v[off], strlen(v[off]));
    }
    broker_records_cleanup(&out);
  }
  broker_records out;
  assert_int_equal(broker_log_read(log, "t", 0, 0, 100000, &out), N);
  for (int i = 0; i < N; i++) assert_int_equal(out.recs[i].offset, i);
  broker_records_cleanup(&out);
  broker_log_free(log);
}

typedef struct writer_arg {
  broker_log *log;
  waiter *w;
  int id, count;
  bool deferred; /* broker_log_append_deferred, and a flush every 5 and at the end */
} writer_arg;

static void *appender(void *p) {
  writer_arg *a = p;
  for (int i = 0; i < a->count; i++) {
    char v[32];
    int n = snprintf(v, sizeof v, "%d-%d", a->id, i);
    broker_record r = {
        .partition = -1, .key = v, .key_len = (size_t)n, .value = v, .value_len = (size_t)n};
    if (a->deferred) {
      while (broker_log_append_deferred(a->log, "t", &r, 1, on_append, a->w) != 0)
        clock_sleep_ms(1);
      if (i % 5 == 4) broker_log_flush(a->log);
    } else {
      while (broker_log_append(a->log, "t", &r, 1, on_append, a->w) != 0) clock_sleep_ms(1);
    }
  }
  if (a->deferred) broker_log_flush(a->log);
  return NULL;
}

/* A callback that also notes whether it ran on the thread that set `on`. */
typedef struct thread_waiter {
  waiter w;
  pthread_t on;
  int elsewhere;
} thread_waiter;

static void on_append_where(void *opaque, int status) {
  thread_waiter *t = opaque;
  if (!pthread_equal(pthread_self(), t->on)) t->elsewhere++;
  on_append(&t->w, status);
}

/* Deferred appends wake no one: broker_log_flush commits them all as one
 * group on the calling thread, their callbacks run before it returns. */
static void deferred_appends_commit_in_flush(void **state) {
  (void)state;
  broker_log *log = open_log(2);
  thread_waiter t = {.on = pthread_self()};
  waiter_init(&t.w);
  for (int i = 0; i < 10; i++) {
    char v[8];
    int n = snprintf(v, sizeof v, "v%d", i);
    broker_record r = {.partition = i % 2, .value = v, .value_len = (size_t)n};
    assert_int_equal(broker_log_append_deferred(log, "t", &r, 1, on_append_where, &t), 0);
  }
  broker_log_flush(log);
  assert_int_equal(t.w.done, 10); /* before flush returned, not waited for */
  assert_int_equal(t.w.failed, 0);
  assert_int_equal(t.elsewhere, 0);
  broker_log_flush(log); /* nothing queued: no commit */
  char *m = prom_log_text(log);
  assert_non_null(m);
  assert_true(sample(m, "outpost_log_commits_total{result=\"ok\"}") == 1);
  assert_true(sample(m, "outpost_log_flush_commits_total") == 1);
  assert_true(sample(m, "outpost_log_appends_total") == 10);
  free(m);
  for (int32_t p = 0; p < 2; p++) {
    broker_records out;
    assert_int_equal(broker_log_read(log, "t", p, 0, 100, &out), 5);
    for (int i = 0; i < 5; i++) {
      char v[8];
      int n = snprintf(v, sizeof v, "v%d", 2 * i + p);
      assert_int_equal(out.recs[i].offset, i);
      assert_int_equal(out.recs[i].value_len, (size_t)n);
      assert_memory_equal(out.recs[i].value, v, (size_t)n);
    }
    broker_records_cleanup(&out);
  }
  broker_log_free(log);
}

/* A deferred append its caller never flushes is still committed, by the
 * writer thread (within about a second), never left behind. */
static void deferred_append_without_flush(void **state) {
  (void)state;
  broker_log *log = open_log(1);
  thread_waiter t = {.on = pthread_self()};
  waiter_init(&t.w);
  broker_record r = {.partition = 0, .value = "x", .value_len = 1};
  assert_int_equal(broker_log_append_deferred(log, "t", &r, 1, on_append_where, &t), 0);
  wait_for(&t.w, 1);
  assert_int_equal(t.w.last_status, 0);
  assert_int_equal(t.elsewhere, 1);
  char *m = prom_log_text(log);
  assert_non_null(m);
  assert_true(sample(m, "outpost_log_commits_total{result=\"ok\"}") == 1);
  assert_true(sample(m, "outpost_log_flush_commits_total") == 0);
  free(m);
  broker_log_free(log);
}

/* Half the threads append deferred and flush (commits on their own threads,
 * or handed to the writer when one is under way), half wake the writer. */
static void concurrent_appends(void **state) {
  (void)state;
  enum { THREADS = 8, EACH = 200 };
  broker_log *log = open_log(2);
  waiter *w = waiter_new();
  pthread_t th[THREADS];
  writer_arg args[THREADS];
  for (int i = 0; i < THREADS; i++) {
    args[i] = (writer_arg){log, w, i, EACH, i % 2 == 1};
    pthread_create(&th[i], NULL, appender, &args[i]);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  wait_for(w, THREADS * EACH);
  assert_int_equal(w->done, THREADS * EACH);
  assert_int_equal(w->failed, 0);
  int total = 0;
  for (int32_t p = 0; p < 2; p++) {
    broker_records out;
    int n = broker_log_read(log, "t", p, 0, 100000, &out);
    for (int i = 0; i < n; i++) assert_int_equal(out.recs[i].offset, i); /* dense */
    total += n;
    broker_records_cleanup(&out);
  }
  assert_int_equal(total, THREADS * EACH);
  broker_log_free(log);
  free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(offsets_survive_reopen, setup, teardown),
      cmocka_unit_test_setup_teardown(keys_pick_partitions, setup, teardown),
      cmocka_unit_test_setup_teardown(positions, setup, teardown),
      cmocka_unit_test_setup_teardown(retention_keeps_unconsumed, setup, teardown),
      cmocka_unit_test_setup_teardown(retention_takes_a_prefix, setup, teardown),
      cmocka_unit_test_setup_teardown(end_outlives_its_segments, setup, teardown),
      cmocka_unit_test_setup_teardown(reads_inside_and_across_segments, setup, teardown),
      cmocka_unit_test_setup_teardown(concurrent_appends, setup, teardown),
      cmocka_unit_test_setup_teardown(deferred_appends_commit_in_flush, setup, teardown),
      cmocka_unit_test_setup_teardown(deferred_append_without_flush, setup, teardown),
      cmocka_unit_test_setup_teardown(metrics_count_group_commits, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
