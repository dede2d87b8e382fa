/*
 * ce_kafka.c — the Kafka protocol binding (CloudEvents Kafka binding 1.0.2):
 * binary mode with ce_ headers and a content-type header, structured mode
 * with the JSON format, and the record key taken from `partitionkey`.
 */
#include "core/ce.h"
#include "core/ce_binding.h"
#include "core/ce_int.h"

#include <errno.h>
#include <string.h>

static const ce__binary_spec kafka_spec = {"ce_", false, false};

int ce_kafka_decode(const ce_kv *headers, size_t n_headers, const void *value, size_t value_len,
                    const ce_limits *lim, ce_event **out, ce_err *err) {
  const ce_kv *ct;
  int rc = ce__check_limits(headers, n_headers, value ? value_len : 0, lim, &ct, err);
  if (rc) return rc;
  int mode = ct ? ce_http_mode(ct->value, ct->value_len) : CE_MODE_BINARY;
  if (mode < 0 || mode == CE_MODE_BATCH) return ce__unsupported(ct, err);
  if (mode == CE_MODE_STRUCTURED) {
    if (!value) return ce__fail(err, -EINVAL, NULL, 0, "structured mode needs a record value");
    rc = ce_json_decode(value, value_len, lim, out, err);
  } else {
    rc = ce__decode_binary(&kafka_spec, headers, n_headers, ct, value, value_len, value != NULL,
                           out, err);
  }
  return rc ? rc : mode;
}

static const char structured_ct[] = CE_MEDIA_JSON "; charset=utf-8";

int ce_kafka_encode(const ce_event *ev, ce_mode mode, ce_headers *hdrs, ce_buf *key, bool *has_key,
                    ce_buf *value, bool *has_value, ce_err *err) {
  int rc;
  *has_key = false;
  *has_value = false;
  if (mode == CE_MODE_STRUCTURED) {
    if ((rc = ce_json_encode(ev, value, err))) return rc;
    *has_value = true;
    rc = ce_headers_add(hdrs, "content-type", 12, structured_ct, sizeof structured_ct - 1);
  } else if (mode == CE_MODE_BINARY) {
    if ((rc = ce__encode_binary(ev, "ce_", false, hdrs, err))) return rc;
    size_t len;
    const uint8_t *d = ce_event_data(ev, &len);
    /* No data is a record with no value (a tombstone on compacted topics). */
    if (d) {
      *has_value = true;
      rc = ce_buf_append(value, d, len);
    }
  } else {
    return ce__fail(err, -EINVAL, NULL, 0, "the Kafka binding has no batched mode");
  }
  const ce_attr *pk = rc ? NULL : ce_event_get(ev, "partitionkey");
  if (pk) {
    *has_key = true;
    rc = ce_buf_append(key, pk->value, pk->value_len);
  }
  return rc == -ENOMEM ? ce__fail(err, rc, NULL, 0, "out of memory") : rc;
}
