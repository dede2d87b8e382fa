/*
 * publish.h — the detector's publisher: CloudEvents queued in a bounded
 * buffer and sent to a broker's ingress in batched mode
 * (application/cloudevents-batch+json) over httpc, one batch in flight, so
 * that events leave in the order they were queued and one partitionkey's
 * events stay in order. A batch the broker did not accept (429, 503, 404, a
 * transport error) is kept and sent again after a backoff that honours
 * Retry-After. Nothing is lost without being counted: an event the
 * publisher has to give up is counted under its reason (DETECTOR_DROP_*).
 *
 * Buffer overflow drops the NEWEST event (the one being queued), never one
 * already queued: an event whose producer was told "queued" (the tenant
 * endpoint's 202) is not dropped later by overflow, and the oldest events,
 * the start of what happened, are kept.
 *
 * Or, configured with a Kafka bootstrap list and a topic, straight to Kafka
 * through the broker's Kafka log (broker_log_kafka_open: an idempotent
 * producer, acks=all): events become Kafka binary-mode records (key =
 * partitionkey) when queued, a batch is one broker_log_append, and "sent"
 * means every record of it was acknowledged by the in-sync replicas. Same
 * buffer, bounds, one batch in flight, retries and drop counting. A failed
 * append is retried whole, so a record Kafka stored before the failure is
 * stored again (at least once, as the broker's Kafka log itself).
 *
 * Thread rules: detector_pub_push, _stats and _metrics may be called from
 * any thread at once; detector_pub_stop once, when no other call runs.
 *
 * Errors are negative errno values (see each function).
 */
#ifndef OUTPOST_DETECTOR_PUBLISH_H
#define OUTPOST_DETECTOR_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ce.h"

typedef struct detector_pub detector_pub;

/* Why an event was dropped. */
typedef enum detector_drop {
  DETECTOR_DROP_BUFFER_FULL = 0, /* queued while the buffer was full */
  DETECTOR_DROP_TOO_LARGE,       /* its JSON alone is larger than batch_bytes */
  DETECTOR_DROP_INVALID,         /* it does not encode (an invalid CloudEvent) */
  DETECTOR_DROP_REJECTED,        /* the broker refused it alone for good (400, 413, 415, 431) */
  DETECTOR_DROP_SHUTDOWN,        /* still buffered when stop's drain time ran out (some may
                                    have reached the broker, whose answer was cut off) */
  DETECTOR_DROP_NO_MEMORY,       /* no memory to queue it */
  DETECTOR_DROP_UNATTRIBUTED,    /* a kernel event of a cgroup no longer watched (counted by
                                    the caller with detector_pub_drop) */
  DETECTOR_DROP_MAX
} detector_drop;

/* The label of a reason in /metrics and in the drops event ("buffer_full"). */
const char *detector_drop_name(detector_drop why);

/* Zero in a field means its default. */
typedef struct detector_pub_opts {
  const char *url;                /* the ingress, "http://127.0.0.1:8080/default/default"; or: */
  const char *token;              /* with url: its bearer token (the broker's --senders-file);
                                     NULL: none sent */
  const char *kafka_bootstrap;    /* Kafka bootstrap servers, instead of url */
  const char *topic;              /* the topic, with kafka_bootstrap */
  const char *const *kafka_props; /* "name=value" librdkafka properties (see broker.h) */
  size_t n_kafka_props;
  size_t max_events;      /* events buffered, in flight included (default 10000) */
  size_t max_bytes;       /* their JSON bytes (default 16 MiB) */
  size_t batch_events;    /* events per batch (default 100) */
  size_t batch_bytes;     /* JSON bytes per batch (default 512 KiB; the broker's
                             default body limit is 1 MiB); with Kafka, record bytes
                             (key, headers and value) */
  int batch_ms;           /* how long the oldest event waits for a batch to fill
                             (default 20; -1: never wait) */
  long timeout_ms;        /* one request, or Kafka's delivery timeout (default 10000) */
  int backoff_min_ms;     /* first retry delay, doubled per failure (default 100) */
  int backoff_max_ms;     /* cap of the doubling (default 5000) */
  int retry_after_max_ms; /* cap of a Retry-After the broker asks for (default 60000) */
} detector_pub_opts;

void detector_pub_opts_init(detector_pub_opts *o);

/* Counters since start. */
typedef struct detector_pub_stats {
  uint64_t published;                  /* events the broker accepted (Kafka: acknowledged) */
  uint64_t batches;                    /* batches the broker accepted */
  uint64_t retries;                    /* attempts that failed and were retried */
  uint64_t dropped[DETECTOR_DROP_MAX]; /* events dropped, per reason */
  uint64_t depth_events;               /* buffered now, in flight included */
  uint64_t depth_bytes;
} detector_pub_stats;

/* Starts the publisher and its thread. Returns NULL with a message in err
 * (errlen bytes) on failure: neither url nor kafka_bootstrap and topic, or
 * httpc or the Kafka producer failed to start. */
detector_pub *detector_pub_start(const detector_pub_opts *o, char *err, size_t errlen);

/* Queues ev. Takes ev, also on failure (it is freed). Returns 0 when
 * queued, else:
 *   -ENOBUFS    the buffer is full (max_events or max_bytes)
 *   -EMSGSIZE   ev alone is larger than batch_bytes
 *   -EINVAL     ev does not encode (*err says why when err is non-NULL)
 *   -ECANCELED  the publisher is stopping
 *   -ENOMEM
 * With count_drop true, a refused event is counted in dropped[] under its
 * reason (kernel events: nobody else would know); with false the caller
 * answers for it (the tenant endpoint's 429 or 413) and nothing is counted. */
int detector_pub_push(detector_pub *p, ce_event *ev, bool count_drop, ce_err *err);

/* True when the publisher sends the JSON event format (to an ingress), so
 * that an event already written in it may be queued with
 * detector_pub_push_json; false with Kafka, which takes ce_events. */
bool detector_pub_takes_json(const detector_pub *p);

/* Queues an event already encoded in the JSON event format (len bytes at
 * json, copied; the caller keeps json), as detector_pub_push queues the
 * encoding of a ce_event: the caller vouches that it is one valid event
 * (detector_event_json). Same returns, counting and bounds, and -ENOTSUP
 * (not counted) when the publisher sends to Kafka. */
int detector_pub_push_json(detector_pub *p, const char *json, size_t len, bool count_drop);

/* Counts n events the caller had to give up before they reached the
 * publisher, so that every loss shows in one place. */
void detector_pub_drop(detector_pub *p, detector_drop why, uint64_t n);

void detector_pub_stats_get(detector_pub *p, detector_pub_stats *out);

/* Appends the publisher's Prometheus samples (outpost_detector_published_*,
 * _batches_total, _retries_total, _dropped_events_total{reason}, _buffer_*). */
void detector_pub_metrics(detector_pub *p, ce_buf *out);

/* Stops taking events, goes on sending what is buffered for up to drain_ms
 * (with Kafka, plus up to timeout_ms for the records already handed over),
 * then counts whatever is left as dropped (DETECTOR_DROP_SHUTDOWN), stops
 * its client and frees. Returns the number of events dropped that way.
 * detector_pub_stop(NULL, ...) does nothing and returns 0. */
uint64_t detector_pub_stop(detector_pub *p, int drain_ms);

#endif
