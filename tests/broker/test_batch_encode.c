/*
 * test_batch_encode.c — broker_batch_encode writes each event as
 * ce_kafka_encode does in binary mode (the same headers in the same order,
 * the same key and value, no key and no value kept apart from empty ones),
 * and refuses what it refuses, naming the event of a batch; also when told
 * the events were validated already (broker__batch_encode, the ingress's).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/broker.h"
#include "broker/broker_int.h"

static ce_event *event(const char *json) {
  ce_event *ev = NULL;
  ce_limits lim;
  ce_limits_init(&lim);
  ce_err err = {.index = -1};
  assert_int_equal(ce_json_decode(json, strlen(json), &lim, &ev, &err), 0);
  return ev;
}

/* rec against ce_kafka_encode's encoding of ev. */
static void same_as_core(ce_event *ev, const broker_record *rec) {
  ce_headers h;
  ce_buf key, value;
  ce_headers_init(&h);
  ce_buf_init(&key);
  ce_buf_init(&value);
  bool has_key, has_value;
  ce_err err = {.index = -1};
  assert_int_equal(
      ce_kafka_encode(ev, CE_MODE_BINARY, &h, &key, &has_key, &value, &has_value, &err), 0);
  assert_int_equal(rec->partition, -1);
  assert_int_equal(rec->n_headers, h.n);
  for (size_t i = 0; i < h.n; i++) {
    assert_int_equal(rec->headers[i].name_len, h.items[i].name_len);
    assert_memory_equal(rec->headers[i].name, h.items[i].name, h.items[i].name_len);
    assert_int_equal(rec->headers[i].value_len, h.items[i].value_len);
    assert_memory_equal(rec->headers[i].value, h.items[i].value, h.items[i].value_len);
  }
  assert_int_equal(rec->key != NULL, has_key);
  assert_int_equal(rec->key_len, key.len);
  if (key.len) assert_memory_equal(rec->key, key.data, key.len);
  assert_int_equal(rec->value != NULL, has_value);
  assert_int_equal(rec->value_len, value.len);
  if (value.len) assert_memory_equal(rec->value, value.data, value.len);
  ce_headers_cleanup(&h);
  ce_buf_cleanup(&key);
  ce_buf_cleanup(&value);
}

static void encodes_as_core(void **state) {
  (void)state;
  /* In parentheses: clang takes adjacent literals in an array for a missing comma. */
  const char *json[] = {
      /* data, datacontenttype, extensions, partitionkey */
      ("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
       "\"datacontenttype\":\"application/json\",\"partitionkey\":\"env-1\",\"ext\":\"x\","
       "\"knativebrokerttl\":255,\"data\":{\"a\":1}}"),
      /* no data, no key */
      ("{\"specversion\":\"1.0\",\"id\":\"2\",\"source\":\"/s\",\"type\":\"t\"}"),
      /* empty data, empty partition key */
      ("{\"specversion\":\"1.0\",\"id\":\"3\",\"source\":\"/s\",\"type\":\"t\","
       "\"partitionkey\":\"\",\"datacontenttype\":\"text/plain\",\"data\":\"\"}"),
      /* binary data */
      ("{\"specversion\":\"1.0\",\"id\":\"4\",\"source\":\"/s\",\"type\":\"t\","
       "\"data_base64\":\"AAEC/w==\",\"time\":\"2026-11-21T19:02:41Z\",\"subject\":\"s\"}"),
  };
  enum { N = sizeof json / sizeof json[0] };
  ce_event *evs[N];
  for (size_t i = 0; i < N; i++) evs[i] = event(json[i]);
  broker_batch b = {0};
  ce_err err = {.index = -1};
  assert_int_equal(broker_batch_encode(&b, evs, N, &err), 0);
  assert_int_equal(b.n, N);
  for (size_t i = 0; i < N; i++) same_as_core(evs[i], &b.recs[i]);
  broker_batch_cleanup(&b);
  assert_null(b.recs);
  broker_batch_cleanup(&b); /* an empty batch: nothing to free */
  /* One at a time too, and without validating again (the ingress's way,
   * for decoded events): the same records. */
  for (size_t i = 0; i < N; i++) {
    assert_int_equal(broker_batch_encode(&b, &evs[i], 1, &err), 0);
    same_as_core(evs[i], &b.recs[0]);
    broker_batch_cleanup(&b);
    assert_int_equal(broker__batch_encode(&b, &evs[i], 1, true, &err), 0);
    same_as_core(evs[i], &b.recs[0]);
    broker_batch_cleanup(&b);
  }
  for (size_t i = 0; i < N; i++) ce_event_free(evs[i]);
}

/* A CloudEvents format as datacontenttype cannot go in binary mode. */
static void refuses_what_core_refuses(void **state) {
  (void)state;
  ce_event *evs[2] = {
      event("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}"),
      event("{\"specversion\":\"1.0\",\"id\":\"2\",\"source\":\"/s\",\"type\":\"t\","
            "\"datacontenttype\":\"application/cloudevents+json\",\"data\":{}}"),
  };
  broker_batch b = {0};
  ce_err err = {.index = -1};
  assert_int_equal(broker_batch_encode(&b, evs, 2, &err), -EINVAL);
  assert_int_equal(err.index, 1);
  assert_string_equal(err.attr, "datacontenttype");
  assert_null(b.recs);
  /* Refused without validating again too: the binding's rule, not validation. */
  err = (ce_err){.index = -1};
  assert_int_equal(broker__batch_encode(&b, evs, 2, true, &err), -EINVAL);
  assert_int_equal(err.index, 1);
  assert_null(b.recs);
  ce_headers h;
  ce_buf key, value;
  ce_headers_init(&h);
  ce_buf_init(&key);
  ce_buf_init(&value);
  bool hk, hv;
  ce_err core = {.index = -1};
  assert_int_equal(ce_kafka_encode(evs[1], CE_MODE_BINARY, &h, &key, &hk, &value, &hv, &core),
                   -EINVAL);
  assert_string_equal(err.reason, core.reason);
  ce_headers_cleanup(&h);
  ce_buf_cleanup(&key);
  ce_buf_cleanup(&value);
  ce_event_free(evs[0]);
  ce_event_free(evs[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(encodes_as_core),
      cmocka_unit_test(refuses_what_core_refuses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
