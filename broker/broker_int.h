/*
 * broker_int.h — private to broker/: the log's table of operations, which
 * each implementation fills, and helpers shared by the implementations.
 */
#ifndef OUTPOST_BROKER_BROKER_INT_H
#define OUTPOST_BROKER_BROKER_INT_H

#include "broker/broker.h"

typedef struct broker_log_ops {
  int (*append)(broker_log *log, const char *topic, const broker_record *recs, size_t n,
                broker_append_cb cb, void *opaque);
  int (*read)(broker_log *log, const char *topic, int32_t partition, int64_t from, size_t max,
              broker_records *out);
  int (*commit)(broker_log *log, const char *group, const char *topic, int32_t partition,
                int64_t next);
  int (*committed)(broker_log *log, const char *group, const char *topic, int32_t partition,
                   int64_t *next);
  int (*partitions)(broker_log *log, const char *topic);
  int (*end)(broker_log *log, const char *topic, int32_t partition, int64_t *end);
  void (*free)(broker_log *log);
} broker_log_ops;

/* Every implementation's struct starts with this. */
struct broker_log {
  const broker_log_ops *ops;
};

/* Headers as one blob: for each, u32 name length, name, u32 value length,
 * value (little endian). */
int broker__headers_pack(const ce_kv *h, size_t n, ce_buf *out);
/* Unpacks into kv pointing into blob; *n is the count. Returns 0 or -EINVAL. */
int broker__headers_unpack(const void *blob, size_t len, ce_kv *kv, size_t max, size_t *n);
/* Counts the headers of a packed blob. */
int broker__headers_count(const void *blob, size_t len, size_t *n);

/* The partition for a key: FNV-1a hash modulo partitions. */
int32_t broker__partition_for(const void *key, size_t len, int32_t partitions);

#endif
