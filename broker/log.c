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

void broker_log_free(broker_log *log) {
  if (log) log->ops->free(log);
}

/* One event's record memory; zeroed memory is a valid empty one. */
typedef struct encoded {
  ce_headers hdrs;
  ce_buf key, value;
} encoded;

int broker_batch_encode(broker_batch *b, ce_event *const *evs, size_t n, ce_err *err) {
  encoded *enc = calloc(n ? n : 1, sizeof *enc);
  b->recs = calloc(n ? n : 1, sizeof *b->recs);
  b->mem = enc;
  b->n = n;
  if (!enc || !b->recs) {
    broker_batch_cleanup(b);
    snprintf(err->reason, sizeof err->reason, "out of memory");
    return -ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    encoded *x = &enc[i];
    bool has_key, has_value;
    int rc = ce_kafka_encode(evs[i], CE_MODE_BINARY, &x->hdrs, &x->key, &has_key, &x->value,
                             &has_value, err);
    if (rc) {
      if (n > 1) err->index = (int)i;
      broker_batch_cleanup(b);
      return rc;
    }
    b->recs[i] = (broker_record){.partition = -1,
                                 .key = has_key ? x->key.data : NULL,
                                 .key_len = x->key.len,
                                 .headers = x->hdrs.items,
                                 .n_headers = x->hdrs.n,
                                 .value = has_value ? (x->value.data ? x->value.data : "") : NULL,
                                 .value_len = x->value.len};
  }
  return 0;
}

void broker_batch_cleanup(broker_batch *b) {
  encoded *enc = b->mem;
  for (size_t i = 0; enc && i < b->n; i++) {
    ce_headers_cleanup(&enc[i].hdrs);
    ce_buf_cleanup(&enc[i].key);
    ce_buf_cleanup(&enc[i].value);
  }
  free(enc);
  free(b->recs);
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
