/*
 * log.c — the log interface: dispatch to an implementation, and the record
 * helpers every implementation shares (header packing, partition choice).
 */
#include "broker/broker.h"
#include "broker/broker_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int broker_log_append(broker_log *log, const char *topic, const broker_record *recs, size_t n,
                      broker_append_cb cb, void *opaque) {
  return log->ops->append(log, topic, recs, n, cb, opaque);
}

int broker_log_append_deferred(broker_log *log, const char *topic, const broker_record *recs,
                               size_t n, broker_append_cb cb, void *opaque) {
  if (!log->ops->append_deferred) return log->ops->append(log, topic, recs, n, cb, opaque);
  return log->ops->append_deferred(log, topic, recs, n, cb, opaque);
}

void broker_log_flush(broker_log *log) {
  if (log->ops->flush) log->ops->flush(log);
}

int broker_log_read(broker_log *log, const char *topic, int32_t partition, int64_t from, size_t max,
                    broker_records *out) {
  return log->ops->read(log, topic, partition, from, max, out);
}

int broker_log_commit(broker_log *log, const char *group, const char *topic, int32_t partition,
                      int64_t next) {
  return log->ops->commit(log, group, topic, partition, next);
}

int broker_log_committed(broker_log *log, const char *group, const char *topic, int32_t partition,
                         int64_t *next) {
  return log->ops->committed(log, group, topic, partition, next);
}

int broker_log_partitions(broker_log *log, const char *topic) {
  return log->ops->partitions(log, topic);
}

int broker_log_end(broker_log *log, const char *topic, int32_t partition, int64_t *end) {
  return log->ops->end(log, topic, partition, end);
}

void broker_log_metrics(broker_log *log, ce_buf *out) {
  if (log && log->ops->metrics) log->ops->metrics(log, out);
}

void broker_log_free(broker_log *log) {
  if (log) log->ops->free(log);
}

/* The encoding is ce_kafka_encode's binary mode (ce_<name> headers,
 * datacontenttype as content-type, partitionkey as the key, the data as the
 * value, the same checks first), written here into one allocation per batch
 * rather than one per header: the ingress encodes every event it takes. */

/* What ce_kafka_encode checks before encoding an event in binary mode (the
 * whole event only when it was not validated already). */
static int binary_ok(const ce_event *ev, bool validated, ce_err *err) {
  int rc = validated ? 0 : ce_event_validate(ev, err);
  if (rc) return rc;
  /* A receiver takes a CloudEvents media type in content-type to mean
   * structured mode. */
  const char *dct = ce_event_get_str(ev, "datacontenttype");
  if (dct && ce_http_mode(dct, strlen(dct)) != CE_MODE_BINARY) {
    snprintf(err->attr, sizeof err->attr, "datacontenttype");
    snprintf(err->reason, sizeof err->reason,
             "a CloudEvents format as datacontenttype cannot travel in binary mode: use "
             "structured mode");
    err->index = -1;
    return -EINVAL;
  }
  return 0;
}

static bool is_dct(const ce_attr *a) {
  return strcmp(a->name, "datacontenttype") == 0;
}

/* Bytes of ev's headers, key and value (each NUL-terminated); *n_headers
 * is its header count. */
static size_t encoded_size(const ce_event *ev, size_t *n_headers) {
  size_t n = ce_event_attr_count(ev), bytes = 0, len = 0;
  for (size_t i = 0; i < n; i++) {
    const ce_attr *a = ce_event_attr_at(ev, i);
    bytes += (is_dct(a) ? 12 : 3 + strlen(a->name)) + a->value_len + 2;
  }
  const ce_attr *pk = ce_event_get(ev, "partitionkey");
  if (pk) bytes += pk->value_len + 1;
  if (ce_event_data(ev, &len)) bytes += len + 1;
  *n_headers = n;
  return bytes;
}

static char *put(char *p, const char *a, size_t alen, const char *b, size_t blen) {
  memcpy(p, a, alen);
  if (blen) memcpy(p + alen, b, blen);
  p[alen + blen] = '\0';
  return p + alen + blen + 1;
}

/* Writes ev as record r: headers into kv, bytes at p; returns the end. */
static char *encode_one(const ce_event *ev, broker_record *r, ce_kv *kv, char *p) {
  size_t n = ce_event_attr_count(ev), len = 0;
  for (size_t i = 0; i < n; i++) {
    const ce_attr *a = ce_event_attr_at(ev, i);
    kv[i].name = p;
    if (is_dct(a)) {
      p = put(p, "content-type", 12, NULL, 0);
    } else {
      p = put(p, "ce_", 3, a->name, strlen(a->name));
    }
    kv[i].name_len = (size_t)(p - kv[i].name) - 1;
    kv[i].value = p;
    kv[i].value_len = a->value_len;
    p = put(p, a->value, a->value_len, NULL, 0);
  }
  *r = (broker_record){.partition = -1, .headers = kv, .n_headers = n};
  const ce_attr *pk = ce_event_get(ev, "partitionkey");
  if (pk) {
    r->key = p;
    r->key_len = pk->value_len;
    p = put(p, pk->value, pk->value_len, NULL, 0);
  }
  const uint8_t *d = ce_event_data(ev, &len);
  /* No data is a record with no value (a tombstone on compacted topics). */
  if (d) {
    r->value = p;
    r->value_len = len;
    p = put(p, (const char *)d, len, NULL, 0);
  }
  return p;
}

int broker__batch_encode(broker_batch *b, ce_event *const *evs, size_t n, bool validated,
                         ce_err *err) {
  size_t headers = 0, bytes = 0;
  for (size_t i = 0; i < n; i++) {
    int rc = binary_ok(evs[i], validated, err);
    if (rc) {
      if (n > 1) err->index = (int)i;
      return rc;
    }
    size_t h;
    bytes += encoded_size(evs[i], &h);
    headers += h;
  }
  broker_record *recs = malloc(n * sizeof *recs + headers * sizeof(ce_kv) + bytes + 1);
  if (!recs) {
    snprintf(err->attr, sizeof err->attr, "%s", "");
    snprintf(err->reason, sizeof err->reason, "out of memory");
    err->index = -1;
    return -ENOMEM;
  }
  ce_kv *kv = (ce_kv *)(recs + n);
  char *p = (char *)(kv + headers);
  for (size_t i = 0; i < n; i++) {
    p = encode_one(evs[i], &recs[i], kv, p);
    kv += recs[i].n_headers;
  }
  *b = (broker_batch){.recs = recs, .n = n, .mem = recs};
  return 0;
}

int broker_batch_encode(broker_batch *b, ce_event *const *evs, size_t n, ce_err *err) {
  return broker__batch_encode(b, evs, n, false, err);
}

void broker_batch_cleanup(broker_batch *b) {
  free(b->mem);
  *b = (broker_batch){0};
}

void broker_records_init(broker_records *r) {
  r->recs = NULL;
  r->n = 0;
  r->mem = NULL;
}

void broker_records_cleanup(broker_records *r) {
  free(r->recs);
  free(r->mem);
  broker_records_init(r);
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

size_t broker__headers_size(const ce_kv *h, size_t n) {
  size_t need = 0;
  for (size_t i = 0; i < n; i++) need += 8 + h[i].name_len + h[i].value_len;
  return need;
}

static uint8_t *put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
  return p + 4;
}

void *broker__headers_write(const ce_kv *h, size_t n, void *out) {
  uint8_t *p = out;
  for (size_t i = 0; i < n; i++) {
    p = put32(p, (uint32_t)h[i].name_len);
    if (h[i].name_len) memcpy(p, h[i].name, h[i].name_len);
    p = put32(p + h[i].name_len, (uint32_t)h[i].value_len);
    if (h[i].value_len) memcpy(p, h[i].value, h[i].value_len);
    p += h[i].value_len;
  }
  return p;
}

int broker__headers_pack(const ce_kv *h, size_t n, ce_buf *out) {
  size_t need = broker__headers_size(h, n);
  int rc = ce_buf_reserve(out, need);
  if (rc) return rc;
  broker__headers_write(h, n, out->data + out->len);
  out->len += need;
  out->data[out->len] = '\0';
  return 0;
}

static int walk(const void *blob, size_t len, ce_kv *kv, size_t max, size_t *n) {
  size_t count = 0;
  if (len == 0) { /* SQLite hands back NULL for an empty blob */
    *n = 0;
    return 0;
  }
  const uint8_t *p = blob, *end = p + len;
  while (p < end) {
    if (end - p < 4) return -EINVAL;
    uint32_t nl = get32(p);
    p += 4;
    if ((size_t)(end - p) < nl) return -EINVAL;
    const uint8_t *name = p;
    p += nl;
    if (end - p < 4) return -EINVAL;
    uint32_t vl = get32(p);
    p += 4;
    if ((size_t)(end - p) < vl) return -EINVAL;
    if (kv) {
      if (count == max) return -EINVAL;
      kv[count] = (ce_kv){(const char *)name, nl, (const char *)p, vl};
    }
    p += vl;
    count++;
  }
  *n = count;
  return 0;
}

int broker__headers_unpack(const void *blob, size_t len, ce_kv *kv, size_t max, size_t *n) {
  return walk(blob, len, kv, max, n);
}

int broker__headers_count(const void *blob, size_t len, size_t *n) {
  return walk(blob, len, NULL, 0, n);
}

int32_t broker__partition_for(const void *key, size_t len, int32_t partitions) {
  if (partitions <= 1) return 0;
  uint32_t h = 2166136261u;
  const uint8_t *p = key;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 16777619u;
  return (int32_t)(h % (uint32_t)partitions);
}
