/*
 * test_log_kafka.c — the Kafka log against librdkafka's mock cluster (3
 * brokers, the Kafka protocol over TCP on 127.0.0.1): topics created with
 * the configured partitions; records read back exactly as appended, keys
 * kept together on one partition; positions committed per group; request
 * errors retried without duplicates; an unreachable cluster fails appends
 * instead of losing them; properties that would weaken acks refused; the
 * log's metrics: appends, records and deliveries counted exactly, the
 * brokers' connections from librdkafka's statistics, none with them off.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "append_waiter.h"
#include "broker/broker.h"
#include "core/clock.h"
#include "prom_sample.h"

typedef struct fixture {
  broker_kafka_mock *mock;
  broker_log *log;
} fixture;

static const char *props[] = {"log_level=2"};

static broker_log *open_log_with(broker_kafka_mock *m, int timeout_ms, const char *const *with,
                                 size_t n_with) {
  broker_kafka_opts o;
  broker_kafka_opts_init(&o);
  o.bootstrap = broker_kafka_mock_bootstraps(m);
  o.props = with;
  o.n_props = n_with;
  o.delivery_timeout_ms = timeout_ms;
  o.read_wait_ms = 500;
  o.mock = m;
  char err[256];
  broker_log *log = broker_log_kafka_open(&o, err, sizeof err);
  if (!log) fail_msg("open: %s", err);
  return log;
}

static broker_log *open_log(broker_kafka_mock *m, int timeout_ms) {
  return open_log_with(m, timeout_ms, props, 1);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  char err[256];
  f->mock = broker_kafka_mock_start(3, err, sizeof err);
  if (!f->mock) fail_msg("mock: %s", err);
  f->log = open_log(f->mock, 5000);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  broker_log_free(f->log);
  broker_kafka_mock_stop(f->mock);
  free(f);
  return 0;
}

static void test_topic_created_with_partitions(void **state) {
  fixture *f = *state;
  assert_int_equal(broker_log_partitions(f->log, "t-created"), 3);
  /* Asking again finds it (no second creation). */
  assert_int_equal(broker_log_partitions(f->log, "t-created"), 3);
  int64_t end = -1;
  assert_int_equal(broker_log_end(f->log, "t-created", 0, &end), 0);
  assert_int_equal(end, 0);
}

static void test_records_read_back_exactly(void **state) {
  fixture *f = *state;
  const char *topic = "t-exact";
  assert_int_equal(broker_log_partitions(f->log, topic), 3);
  ce_kv h[2] = {{"ce_id", 5, "1", 1}, {"content-type", 12, "application/json", 16}};
  ce_kv bin[1] = {{"ce_blob", 7, "a\0b", 3}};
  broker_record recs[4] = {
      {.partition = 1,
       .key = "k",
       .key_len = 1,
       .headers = h,
       .n_headers = 2,
       .value = "{\"x\":1}",
       .value_len = 7},
      {.partition = 1, .headers = bin, .n_headers = 1, .value = "v", .value_len = 1},
      {.partition = 1, .key = "k2", .key_len = 2},   /* no headers, no value */
      {.partition = 1, .value = "", .value_len = 0}, /* empty value */
  };
  waiter w;
  waiter_init(&w);
  assert_int_equal(broker_log_append(f->log, topic, recs, 4, on_append, &w), 0);
  wait_for(&w, 1);
  assert_int_equal(w.failed, 0);
  int64_t end;
  assert_int_equal(broker_log_end(f->log, topic, 1, &end), 0);
  assert_int_equal(end, 4);

  broker_records r;
  size_t got = 0;
  for (int tries = 0; got == 0 && tries < 20; tries++) {
    assert_true(broker_log_read(f->log, topic, 1, 0, 10, &r) >= 0);
    got = r.n;
    if (!got) broker_records_cleanup(&r);
  }
  /* The first read may stop short of the end; read the rest. */
  assert_true(got >= 1);
  broker_records rest;
  broker_records_init(&rest);
  if (got < 4) {
    for (int tries = 0; rest.n == 0 && tries < 20; tries++)
      assert_true(broker_log_read(f->log, topic, 1, (int64_t)got, 10, &rest) >= 0);
  }
  assert_int_equal(got + rest.n, 4);
  broker_record all[4];
  for (size_t i = 0; i < got; i++) all[i] = r.recs[i];
  for (size_t i = 0; i < rest.n; i++) all[got + i] = rest.recs[i];
  for (int i = 0; i < 4; i++) assert_int_equal(all[i].offset, i);
  assert_int_equal(all[0].key_len, 1);
  assert_memory_equal(all[0].key, "k", 1);
  assert_int_equal(all[0].n_headers, 2);
  assert_memory_equal(all[0].headers[1].name, "content-type", 12);
  assert_int_equal(all[0].headers[1].value_len, 16);
  assert_memory_equal(all[0].headers[1].value, "application/json", 16);
  assert_int_equal(all[0].value_len, 7);
  assert_memory_equal(all[0].value, "{\"x\":1}", 7);
  assert_null(all[1].key);
  assert_int_equal(all[1].headers[0].value_len, 3);
  assert_memory_equal(all[1].headers[0].value, "a\0b", 3);
  assert_int_equal(all[2].n_headers, 0);
  assert_null(all[2].value);
  assert_non_null(all[3].value);
  assert_int_equal(all[3].value_len, 0);
  broker_records_cleanup(&r);
  broker_records_cleanup(&rest);
}

/* Reads everything of topic/partition from offset 0 into ids (value bytes). */
static size_t collect(broker_log *log, const char *topic, int32_t p, size_t want, char ids[][16]) {
  size_t n = 0;
  for (int tries = 0; n < want && tries < 40; tries++) {
    broker_records r;
    int rc = broker_log_read(log, topic, p, (int64_t)n, 1000, &r);
    assert_true(rc >= 0);
    for (size_t i = 0; i < r.n; i++) {
      assert_int_equal(r.recs[i].offset, (int64_t)n);
      snprintf(ids[n], 16, "%.*s", (int)r.recs[i].value_len, (const char *)r.recs[i].value);
      n++;
    }
    broker_records_cleanup(&r);
  }
  return n;
}

static void test_keys_stay_on_one_partition_in_order(void **state) {
  fixture *f = *state;
  const char *topic = "t-keys";
  assert_int_equal(broker_log_partitions(f->log, topic), 3);
  waiter w;
  waiter_init(&w);
  char val[200][16];
  for (int i = 0; i < 200; i++) {
    snprintf(val[i], 16, "%c-%03d", 'a' + i % 4, i);
    broker_record r = {
        .partition = -1, .key = val[i], .key_len = 1, .value = val[i], .value_len = strlen(val[i])};
    assert_int_equal(broker_log_append(f->log, topic, &r, 1, on_append, &w), 0);
  }
  wait_for(&w, 200);
  assert_int_equal(w.failed, 0);
  /* Every record once; each key on one partition, in the order appended. */
  size_t total = 0;
  int key_partition[4] = {-1, -1, -1, -1};
  for (int32_t p = 0; p < 3; p++) {
    int64_t end;
    assert_int_equal(broker_log_end(f->log, topic, p, &end), 0);
    char(*ids)[16] = calloc((size_t)end + 1, 16);
    size_t n = collect(f->log, topic, p, (size_t)end, ids);
    assert_int_equal(n, (size_t)end);
    int last[4] = {-1, -1, -1, -1};
    for (size_t i = 0; i < n; i++) {
      int k = ids[i][0] - 'a', seq = atoi(ids[i] + 2);
      if (key_partition[k] == -1) key_partition[k] = p;
      assert_int_equal(key_partition[k], p);
      assert_true(seq > last[k]);
      last[k] = seq;
    }
    total += n;
    free(ids);
  }
  assert_int_equal(total, 200);
}

static void test_positions_per_group(void **state) {
  fixture *f = *state;
  const char *topic = "t-pos";
  assert_int_equal(broker_log_partitions(f->log, topic), 3);
  int64_t next = -1;
  assert_int_equal(broker_log_committed(f->log, "g1", topic, 0, &next), 0);
  assert_int_equal(next, 0);
  assert_int_equal(broker_log_commit(f->log, "g1", topic, 0, 7), 0);
  assert_int_equal(broker_log_commit(f->log, "g2", topic, 0, 3), 0);
  assert_int_equal(broker_log_commit(f->log, "g1", topic, 2, 11), 0);
  assert_int_equal(broker_log_committed(f->log, "g1", topic, 0, &next), 0);
  assert_int_equal(next, 7);
  assert_int_equal(broker_log_committed(f->log, "g2", topic, 0, &next), 0);
  assert_int_equal(next, 3);
  assert_int_equal(broker_log_committed(f->log, "g1", topic, 2, &next), 0);
  assert_int_equal(next, 11);
  /* Positions live on the cluster: a new log (another process) sees them. */
  broker_log *other = open_log(f->mock, 5000);
  assert_int_equal(broker_log_committed(other, "g1", topic, 0, &next), 0);
  assert_int_equal(next, 7);
  broker_log_free(other);
}

static void test_request_errors_retried_once(void **state) {
  fixture *f = *state;
  const char *topic = "t-retry";
  assert_int_equal(broker_log_partitions(f->log, topic), 3);
  /* The next produce requests fail with retriable errors: the idempotent
   * producer retries, and each record is stored once. */
  rd_kafka_mock_cluster_t *cluster = broker_kafka_mock_cluster(f->mock);
  rd_kafka_mock_push_request_errors(
      cluster, 0 /* ApiKey Produce */, 4, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
      RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
  waiter w;
  waiter_init(&w);
  char val[20][16];
  for (int i = 0; i < 20; i++) {
    snprintf(val[i], 16, "r-%02d", i);
    broker_record r = {.partition = 0, .value = val[i], .value_len = strlen(val[i])};
    assert_int_equal(broker_log_append(f->log, topic, &r, 1, on_append, &w), 0);
  }
  wait_for(&w, 20);
  assert_int_equal(w.failed, 0);
  int64_t end;
  assert_int_equal(broker_log_end(f->log, topic, 0, &end), 0);
  assert_int_equal(end, 20);
  char ids[20][16];
  assert_int_equal(collect(f->log, topic, 0, 20, ids), 20);
  for (int i = 0; i < 20; i++) assert_string_equal(ids[i], val[i]);
}

static void test_cluster_down_fails_appends(void **state) {
  fixture *f = *state;
  const char *topic = "t-down";
  broker_log *log = open_log(f->mock, 1500);
  assert_int_equal(broker_log_partitions(log, topic), 3);
  rd_kafka_mock_cluster_t *cluster = broker_kafka_mock_cluster(f->mock);
  for (int b = 1; b <= 3; b++) rd_kafka_mock_broker_set_down(cluster, b);
  waiter w;
  waiter_init(&w);
  broker_record r = {.partition = 0, .value = "lost?", .value_len = 5};
  assert_int_equal(broker_log_append(log, topic, &r, 1, on_append, &w), 0);
  wait_for(&w, 1);
  /* Not acknowledged: the caller is told (the ingress answers 503). */
  assert_int_equal(w.failed, 1);
  assert_int_equal(w.last_status, -ETIMEDOUT);
  for (int b = 1; b <= 3; b++) rd_kafka_mock_broker_set_up(cluster, b);
  /* And the log works again once the cluster is back (after the client's
   * reconnect backoff, which grew while the brokers were down). */
  int ok = 0;
  for (int attempt = 0; attempt < 20 && !ok; attempt++) {
    waiter_init(&w);
    assert_int_equal(broker_log_append(log, topic, &r, 1, on_append, &w), 0);
    wait_for(&w, 1);
    ok = w.failed == 0;
    if (!ok) assert_int_equal(w.last_status, -ETIMEDOUT);
  }
  assert_true(ok);
  broker_log_free(log);
}

static void test_locked_properties_refused(void **state) {
  fixture *f = *state;
  const char *bad[][1] = {{"acks=1"},
                          {"enable.idempotence=false"},
                          {"group.id=x"},
                          {"nonsense"},
                          {"no.such.property=1"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    broker_kafka_opts o;
    broker_kafka_opts_init(&o);
    o.bootstrap = broker_kafka_mock_bootstraps(f->mock);
    o.props = bad[i];
    o.n_props = 1;
    char err[256] = "";
    broker_log *log = broker_log_kafka_open(&o, err, sizeof err);
    if (log) fail_msg("%s was accepted", bad[i][0]);
    assert_true(strlen(err) > 0);
  }
}

static double sample(broker_log *log, const char *series) {
  char *text = prom_log_text(log);
  double v = -1;
  if (!prom_sample(text, series, &v)) fail_msg("no %s in:\n%s", series, text);
  free(text);
  return v;
}

static void test_metrics(void **state) {
  fixture *f = *state;
  const char *const stats[] = {"log_level=2", "statistics.interval.ms=100"};
  broker_log *log = open_log_with(f->mock, 5000, stats, 2);
  const char *topic = "t-metrics";
  assert_int_equal(broker_log_partitions(log, topic), 3);
  /* One append of three records and two of one. */
  broker_record batch[3] = {{.partition = 0, .value = "a", .value_len = 1},
                            {.partition = 1, .value = "b", .value_len = 1},
                            {.partition = 2, .value = "c", .value_len = 1}};
  waiter w;
  waiter_init(&w);
  assert_int_equal(broker_log_append(log, topic, batch, 3, on_append, &w), 0);
  assert_int_equal(broker_log_append(log, topic, batch, 1, on_append, &w), 0);
  assert_int_equal(broker_log_append(log, topic, batch + 1, 1, on_append, &w), 0);
  wait_for(&w, 3);
  assert_int_equal(w.failed, 0);
  assert_true(sample(log, "outpost_log_appends_total") == 3);
  assert_true(sample(log, "outpost_log_records_total") == 5);
  assert_true(sample(log, "outpost_log_deliveries_total{result=\"ok\"}") == 5);
  assert_true(sample(log, "outpost_log_deliveries_total{result=\"failed\"}") == 0);
  /* The statistics name the mock's three brokers by node id, the producer
   * connected to a leader it wrote to; within 3 s, so at the configured
   * 100 ms and not the log's default of 5 s. */
  bool seen = false;
  for (int i = 0; i < 30 && !seen; i++) {
    char *text = prom_log_text(log);
    double up[3] = {-1, -1, -1};
    seen = prom_sample(text, "outpost_kafka_broker_connected{broker=\"1\"}", &up[0]) &&
           prom_sample(text, "outpost_kafka_broker_connected{broker=\"2\"}", &up[1]) &&
           prom_sample(text, "outpost_kafka_broker_connected{broker=\"3\"}", &up[2]) &&
           up[0] + up[1] + up[2] >= 1;
    free(text);
    if (!seen) clock_sleep_ms(100);
  }
  assert_true(seen);
  assert_true(sample(log, "outpost_kafka_producer_queue_records") == 0);
  broker_log_free(log);

  /* statistics.interval.ms=0: the counters, and no outpost_kafka_ family
   * past the default's first 5 s either. */
  const char *const off[] = {"log_level=2", "statistics.interval.ms=0"};
  log = open_log_with(f->mock, 5000, off, 2);
  waiter_init(&w);
  assert_int_equal(broker_log_append(log, topic, batch, 1, on_append, &w), 0);
  wait_for(&w, 1);
  clock_sleep_ms(5500);
  char *text = prom_log_text(log);
  assert_non_null(strstr(text, "outpost_log_records_total 1\n"));
  assert_null(strstr(text, "outpost_kafka_"));
  free(text);
  broker_log_free(log);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_topic_created_with_partitions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_records_read_back_exactly, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keys_stay_on_one_partition_in_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_positions_per_group, setup, teardown),
      cmocka_unit_test_setup_teardown(test_request_errors_retried_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cluster_down_fails_appends, setup, teardown),
      cmocka_unit_test_setup_teardown(test_locked_properties_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
