/*
 * dispatcher_int.h — private to the dispatcher's files (dispatcher.c: the
 * consumers and deliveries; dispatcher_admin.c: applying triggers, the
 * admin API, metrics).
 *
 * Locking: d->lock guards everything below that is not marked otherwise;
 * the delivery thread holds it while it works and drops it to wait.
 * d->admin serialises apply and delete, which make consumers (log calls
 * that may be slow) without holding d->lock.
 */
#ifndef OUTPOST_TRIGGER_DISPATCHER_INT_H
#define OUTPOST_TRIGGER_DISPATCHER_INT_H

#include "core/metrics.h"
#include "trigger/dispatcher.h"
#include "trigger/index.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct rec rec;
typedef struct dlv dlv;
typedef struct keyq keyq;

/* How deliveries for a trigger ended, for /metrics. */
enum outcome {
  O_DELIVERED,     /* 2xx from the subscriber (and its reply durable) */
  O_DEAD_LETTERED, /* taken by the trigger's dead-letter sink */
  O_DL_TOPIC,      /* appended to the broker's dead-letter topic (no sink) */
  O_ABANDONED,     /* the trigger was deleted first */
  O_COUNT
};

/* What belongs to a trigger's name rather than to one version of it: the
 * counters, and the key queues of ordered delivery. They outlive
 * replacements of the trigger (and its deletion, until stop). */
typedef struct tstats {
  struct tstats *next;
  char *ns, *name;
  uint64_t outcomes[O_COUNT];
  uint64_t attempts, retries, sink_failures;
  uint64_t replies, replies_not_ce, replies_invalid, replies_ttl;
  metrics_hist latency; /* first attempt to outcome */
  keyq **keys;          /* ordered: a queue per partition and key, shared by versions */
  size_t n_keys, cap_keys;
} tstats;

/* A partition of a consumed topic. */
typedef struct part {
  int32_t id;
  rec *inbox, *inbox_tail; /* read, not yet taken by the delivery thread */
  rec *head, *tail;        /* taken, not all done (offset order) */
  size_t held;             /* records in both lists: bounded by the window */
  int64_t recv_next;       /* the offset after the last record taken */
  int64_t done_next;       /* every record before it is done: the commit point */
  /* The reader's own (no lock): */
  struct consumer *c;
  pthread_t reader;
  int64_t read_next, committed;
  _Atomic int64_t end; /* the log's end, for lag */
} part;

/* One broker's consumer: its topic, read by a thread per partition. */
typedef struct consumer {
  struct consumer *next;
  trigger_dispatcher *d;
  char *ns, *name, *topic, *dl_topic, *group;
  part *parts;
  int32_t n_parts;
  trigger_index *ix;
  pthread_cond_t wake; /* the readers wait on it (with d->lock) */
  bool stop;
  uint64_t records, invalid; /* read; not CloudEvents (skipped) */
} consumer;

/* A trigger as the dispatcher holds it. */
typedef struct tentry {
  struct tentry *next;
  trigger *tr; /* tr->owner is this entry */
  cJSON *res;  /* the resource as applied */
  consumer *c;
  tstats *st;
  int refs;     /* deliveries that point here, + 1 while applied */
  bool deleted; /* deliveries under way are abandoned */
  bool applied; /* false once replaced or deleted */
  bool api;     /* applied through the admin API: kept in the state file */
} tentry;

struct trigger_dispatcher {
  trigger_dispatcher_opts opts;
  char *group_prefix, *state_path;
  httpc *http;
  pthread_mutex_t lock, admin;
  pthread_cond_t cond; /* wakes the delivery thread */
  pthread_cond_t idle; /* log appends under way reached 0 */
  pthread_t thread;
  bool stopping;
  bool held; /* opts.held until trigger_dispatcher_release: inboxes not taken */
  consumer *consumers;
  tentry *entries;
  tstats *stats;
  dlv *ready, *ready_tail; /* to start */
  dlv *done, *done_tail;   /* finished attempts, to look at */
  dlv **heap;              /* waiting for a time (backoff), by due time */
  size_t n_heap, cap_heap;
  dlv *live;        /* every delivery, to free them at stop */
  size_t appends;   /* log appends not yet reported */
  size_t inflight;  /* deliveries created and not finished */
  uint64_t invalid; /* records of any consumer that were not CloudEvents */
};

/* dispatcher.c */
/* A new empty consumer of d (NULL: out of memory); _free frees it and every
 * record it holds (its readers stopped, or never started). */
consumer *dispatcher__consumer_new(trigger_dispatcher *d);
void dispatcher__consumer_free(consumer *c);
int dispatcher__consumer_start(trigger_dispatcher *d, consumer *c);
/* Drops a reference to t; frees it when it was the last and t is no longer
 * applied. */
void dispatcher__entry_unref(trigger_dispatcher *d, tentry *t);
/* Brings the backoff timers of t's deliveries forward to now (t deleted). */
void dispatcher__expedite(trigger_dispatcher *d, tentry *t);
/* dispatcher_admin.c */
void dispatcher__entry_free(tentry *t);

#endif
