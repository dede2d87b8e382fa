/*
 * fuzz_kafka.c — libFuzzer target for the Kafka binding: the input is framed
 * into "name: value" header lines and a value (fuzz_common.h); an input with
 * no empty line is a record with no value (a tombstone), which
 * ce_kafka_decode receives as NULL. A decoded record must hold a valid event
 * that survives ce_kafka_encode in the same mode and ce_kafka_decode
 * unchanged, and the encoder must keep its promises about the key and the
 * value.
 *
 * With OUTPOST_FUZZ_CROSS=1 in the environment the event is also re-encoded
 * in the other mode (binary <-> structured); off for the CTest runs.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ce.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t empty[1];

/* The key and value promises of ce_kafka_encode (ce.h). */
static void check_record(const ce_event *ev, ce_mode mode, const ce_buf *key, bool has_key,
                         bool has_value) {
  const char *pk = ce_event_get_str(ev, "partitionkey");

  if (mode == CE_MODE_STRUCTURED && !has_value)
    fuzz_fail("ce_kafka_encode", "structured mode wrote no value", NULL, 0);
  if (mode == CE_MODE_BINARY && has_value != ce_event_has_data(ev))
    fuzz_fail("ce_kafka_encode", "binary mode: has_value differs from has_data", NULL, 0);
  if (has_key != (pk != NULL))
    fuzz_fail("ce_kafka_encode", "has_key differs from having a partitionkey", NULL, 0);
  if (pk && (key->len != strlen(pk) || memcmp(key->data, pk, key->len) != 0))
    fuzz_fail("ce_kafka_encode", "the key is not the partitionkey", key->data, key->len);
}

/* Encodes ev in `mode`, decodes the record without limits and compares:
 * strictly, or value by value when `cross` (ev came from the other mode). */
static void round_trip(const ce_event *ev, ce_mode mode, bool cross) {
  ce_limits unbounded;
  ce_headers hdrs;
  ce_buf key, value;
  bool has_key = false, has_value = false;
  ce_event *ev2 = NULL;
  ce_err err;
  int rc;

  fuzz_limits_unbounded(&unbounded);
  ce_headers_init(&hdrs);
  ce_buf_init(&key);
  ce_buf_init(&value);
  rc = ce_kafka_encode(ev, mode, &hdrs, &key, &has_key, &value, &has_value, &err);
  if (rc == -ENOMEM) goto cleanup;
  if (rc != 0) {
    fprintf(stderr, "mode %d: rc %d, %s: %s\n", (int)mode, rc, err.attr, err.reason);
    fuzz_dump_event("decoded", ev);
    fuzz_fail("ce_kafka_encode", "cannot encode what ce_kafka_decode accepted", NULL, 0);
  }
  check_record(ev, mode, &key, has_key, has_value);
  memset(&err, 'A', sizeof(err));
  rc = ce_kafka_decode(hdrs.items, hdrs.n,
                       has_value ? (value.data ? (const void *)value.data : empty) : NULL,
                       has_value ? value.len : 0, &unbounded, &ev2, &err);
  if (rc == -ENOMEM) goto cleanup;
  if (rc != (int)mode) {
    for (size_t i = 0; i < hdrs.n; i++) {
      fuzz_dump_bytes("header name", hdrs.items[i].name, hdrs.items[i].name_len, 256);
      fuzz_dump_bytes("      value", hdrs.items[i].value, hdrs.items[i].value_len, 1024);
    }
    fprintf(stderr, "mode %d re-decoded as rc %d, %s: %s\n", (int)mode, rc, err.attr, err.reason);
    fuzz_fail("ce_kafka_decode", "rejects or misreads what ce_kafka_encode wrote",
              has_value ? value.data : NULL, value.len);
  }
  if (cross)
    fuzz_check_same_values("ce_kafka_encode/ce_kafka_decode", ev, ev2, value.data, value.len);
  else
    fuzz_check_equal("ce_kafka_encode/ce_kafka_decode", ev, ev2, value.data, value.len);

cleanup:
  ce_event_free(ev2);
  ce_buf_cleanup(&value);
  ce_buf_cleanup(&key);
  ce_headers_cleanup(&hdrs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ce_limits lim;
  fuzz_frame fr;
  ce_event *ev = NULL;
  ce_err err;
  int rc;

  fuzz_limits_pick(&data, &size, &lim);
  if (fuzz_frame_split(data, size, &fr) != 0) return 0;

  memset(&err, 'A', sizeof(err));
  rc = ce_kafka_decode(fr.headers, fr.n_headers, fr.body, fr.body_len, &lim, &ev, &err);
  fuzz_check_rc("ce_kafka_decode", rc, true, &err);
  if (rc < 0) goto cleanup;
  if (rc != CE_MODE_BINARY && rc != CE_MODE_STRUCTURED)
    fuzz_fail("ce_kafka_decode", "returned a mode other than binary or structured", NULL, 0);
  if (!ev) fuzz_fail("ce_kafka_decode", "succeeded with no event", NULL, 0);
  fuzz_check_limits("ce_kafka_decode", &fr, &lim);
  if (!fr.body && ce_event_has_data(ev))
    fuzz_fail("ce_kafka_decode", "a record with no value gave an event with data", NULL, 0);
  fuzz_check_valid("ce_kafka_decode", ev);

  round_trip(ev, (ce_mode)rc, false);
  if (getenv("OUTPOST_FUZZ_CROSS"))
    round_trip(ev, rc == CE_MODE_BINARY ? CE_MODE_STRUCTURED : CE_MODE_BINARY, true);

cleanup:
  ce_event_free(ev);
  fuzz_frame_cleanup(&fr);
  return 0;
}
