/*
 * publish.c — the detector's publisher (see publish.h): a FIFO of events
 * already encoded in the JSON format (each is encoded once, when queued,
 * so a retry costs no encoding and the buffer's byte bound is the bytes it
 * will send), and one thread that cuts batches from its head, sends them
 * with httpc and waits for the answer before the next one. The events of a
 * batch stay at the head of the FIFO until the broker accepted them, which
 * is what makes a retry resend exactly them, first, and the order hold.
 * With Kafka, events are kept as Kafka records instead (encoded once too)
 * and a batch is one append to the broker's Kafka log.
 */
#include "detector/publish.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/broker.h"
#include "core/clock.h"
#include "core/httpc.h"
#include "core/metrics.h"

typedef struct pub_item {
  struct pub_item *next;
  uint64_t queued_ns; /* when it was queued: the batch timer starts from the oldest */
  size_t len;         /* bytes of json, or of the record with Kafka */
  broker_batch rec;   /* with Kafka: the event as one record (rec.n == 1); else empty */
  char json[];
} pub_item;

/* The answer to the batch in flight, copied out of the client's callback. */
typedef struct pub_res {
  bool done;
  int error;
  long status;
  int64_t retry_after_ms;
  int index; /* the event a 400 names, or -1 */
  char text[160];
} pub_res;

struct detector_pub {
  detector_pub_opts o;
  char *url;       /* the ingress, or "kafka://<bootstrap>/<topic>" for messages */
  char *auth;      /* "Bearer <o.token>", or NULL */
  httpc *c;        /* HTTP; NULL with Kafka, or once stopped */
  broker_log *log; /* Kafka; NULL with HTTP, or once stopped */
  char *topic;
  broker_record *recs; /* with Kafka: the batch in flight (batch_events) */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* pushes, stop, and the answer of the batch in flight */
  pub_item *head, *tail;
  size_t n, bytes;
  bool stopping;
  uint64_t drain_deadline_ns;
  pub_res res;
  _Atomic uint64_t published, batches, retries, dropped[DETECTOR_DROP_MAX];
};

/* The thread's own state between batches. */
typedef struct pub_loop {
  ce_buf body;
  int backoff_ms;      /* the last delay, doubled on the next failure; 0 after a success */
  uint64_t not_before; /* no send before this (monotonic ns) */
  size_t solo;         /* events to send one per batch, to find the one a broker refuses */
  bool failing;        /* logged a failure and not yet a recovery */
} pub_loop;

static const char *const drop_names[DETECTOR_DROP_MAX] = {
    [DETECTOR_DROP_BUFFER_FULL] = "buffer_full",   [DETECTOR_DROP_TOO_LARGE] = "too_large",
    [DETECTOR_DROP_INVALID] = "invalid",           [DETECTOR_DROP_REJECTED] = "rejected",
    [DETECTOR_DROP_SHUTDOWN] = "shutdown",         [DETECTOR_DROP_NO_MEMORY] = "no_memory",
    [DETECTOR_DROP_UNATTRIBUTED] = "unattributed",
};

const char *detector_drop_name(detector_drop why) {
  return why < DETECTOR_DROP_MAX ? drop_names[why] : "unknown";
}

void detector_pub_opts_init(detector_pub_opts *o) {
  memset(o, 0, sizeof *o);
}

static void opts_fill(detector_pub_opts *o) {
  if (!o->max_events) o->max_events = 10000;
  if (!o->max_bytes) o->max_bytes = 16u << 20;
  if (!o->batch_events) o->batch_events = 100;
  if (!o->batch_bytes) o->batch_bytes = 512u << 10;
  if (!o->batch_ms) o->batch_ms = 20;
  if (!o->timeout_ms) o->timeout_ms = 10000;
  if (!o->backoff_min_ms) o->backoff_min_ms = 100;
  if (!o->backoff_max_ms) o->backoff_max_ms = 5000;
  if (!o->retry_after_max_ms) o->retry_after_max_ms = 60000;
}

static void count_drop(detector_pub *p, detector_drop why, uint64_t n) {
  atomic_fetch_add_explicit(&p->dropped[why], n, memory_order_relaxed);
}

void detector_pub_drop(detector_pub *p, detector_drop why, uint64_t n) {
  if (why < DETECTOR_DROP_MAX) count_drop(p, why, n);
}

/* ------------------------------------------------------------ queue */

static void item_free(pub_item *it) {
  if (!it) return;
  broker_batch_cleanup(&it->rec);
  free(it);
}

/* An item holding a copy of an event's JSON (len bytes), for the ingress. */
static int item_of_json(detector_pub *p, const char *json, size_t len, pub_item **out) {
  pub_item *it = NULL;
  int rc = 0;
  if (len + 2 > p->o.batch_bytes) rc = -EMSGSIZE; /* 2: the batch's brackets */
  if (rc == 0 && !(it = calloc(1, sizeof *it + len))) rc = -ENOMEM;
  if (rc == 0) {
    it->len = len;
    memcpy(it->json, json, len);
  }
  *out = it;
  return rc;
}

/* The event in the JSON format, for the ingress. */
static int item_json(detector_pub *p, const ce_event *ev, ce_err *err, pub_item **out) {
  ce_buf b;
  ce_buf_init(&b);
  int rc = ce_json_encode(ev, &b, err);
  *out = NULL;
  if (rc == 0) rc = item_of_json(p, b.data, b.len, out);
  ce_buf_cleanup(&b);
  return rc;
}

/* The event as a Kafka binary-mode record, for the Kafka log. */
static int item_record(detector_pub *p, ce_event *ev, ce_err *err, pub_item **out) {
  pub_item *it = calloc(1, sizeof *it);
  if (!it) return -ENOMEM;
  int rc = broker_batch_encode(&it->rec, &ev, 1, err);
  if (rc == 0) {
    const broker_record *r = &it->rec.recs[0];
    it->len = r->key_len + r->value_len;
    for (size_t i = 0; i < r->n_headers; i++)
      it->len += r->headers[i].name_len + r->headers[i].value_len;
    if (it->len > p->o.batch_bytes) rc = -EMSGSIZE;
  }
  if (rc) {
    item_free(it);
    it = NULL;
  }
  *out = it;
  return rc;
}

static detector_drop drop_reason(int rc) {
  if (rc == -EMSGSIZE) return DETECTOR_DROP_TOO_LARGE;
  if (rc == -ENOMEM) return DETECTOR_DROP_NO_MEMORY;
  if (rc == -ECANCELED) return DETECTOR_DROP_SHUTDOWN;
  if (rc == -ENOBUFS) return DETECTOR_DROP_BUFFER_FULL;
  return DETECTOR_DROP_INVALID;
}

/* Queues it (rc 0) or frees it, and counts a refusal when asked to. */
static int queue_push(detector_pub *p, pub_item *it, int rc, bool count) {
  if (rc == 0) {
    it->queued_ns = metrics_now_ns();
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
      rc = -ECANCELED;
    } else if (p->n + 1 > p->o.max_events || p->bytes + it->len > p->o.max_bytes) {
      rc = -ENOBUFS;
    } else {
      bool was_empty = !p->head, was_short = p->bytes < p->o.batch_bytes;
      if (p->tail)
        p->tail->next = it;
      else
        p->head = it;
      p->tail = it;
      p->n++;
      p->bytes += it->len;
      it = NULL;
      /* The thread is woken only when this push changes what it waits for:
       * a first event (it then waits for the batch to fill), or the push
       * that fills a batch. Any other push would wake it for nothing, a
       * futex call and two context switches per event that a busy node
       * pays on the workload's CPUs; a thread sending a batch looks at the
       * queue again when the answer comes. */
      if (was_empty || p->n == p->o.batch_events || (was_short && p->bytes >= p->o.batch_bytes))
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
  }
  item_free(it);
  /* -ENOMEM is counted too: the event is gone all the same. */
  if (rc && count) count_drop(p, drop_reason(rc), 1);
  return rc;
}

int detector_pub_push(detector_pub *p, ce_event *ev, bool count, ce_err *err) {
  pub_item *it = NULL;
  int rc = p->topic ? item_record(p, ev, err, &it) : item_json(p, ev, err, &it);
  ce_event_free(ev);
  return queue_push(p, it, rc, count);
}

bool detector_pub_takes_json(const detector_pub *p) {
  return !p->topic;
}

int detector_pub_push_json(detector_pub *p, const char *json, size_t len, bool count) {
  if (p->topic) return -ENOTSUP;
  pub_item *it = NULL;
  int rc = item_of_json(p, json, len, &it);
  return queue_push(p, it, rc, count);
}

/* Removes the first k events (the mutex held). */
static void queue_pop(detector_pub *p, size_t k) {
  while (k-- && p->head) {
    pub_item *it = p->head;
    p->head = it->next;
    if (!p->head) p->tail = NULL;
    p->n--;
    p->bytes -= it->len;
    item_free(it);
  }
}

/* Removes the event at position i (the mutex held). */
static void queue_remove_at(detector_pub *p, size_t i) {
  pub_item **pp = &p->head, *prev = NULL;
  while (i-- && *pp) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  pub_item *it = *pp;
  if (!it) return;
  *pp = it->next;
  if (p->tail == it) p->tail = prev;
  p->n--;
  p->bytes -= it->len;
  item_free(it);
}

/* Writes the batch at the head of the queue into body: at most max events
 * and batch_bytes bytes, at least one. Returns its event count (the mutex
 * held). */
static size_t queue_batch(detector_pub *p, size_t max, ce_buf *body) {
  size_t k = 0;
  ce_buf_reset(body);
  ce_buf_append(body, "[", 1);
  for (pub_item *it = p->head; it && k < max; it = it->next, k++) {
    if (k > 0 && body->len + 1 + it->len + 1 > p->o.batch_bytes) break;
    if (k > 0) ce_buf_append(body, ",", 1);
    ce_buf_append(body, it->json, it->len);
  }
  ce_buf_append(body, "]", 1);
  return k;
}

/* The batch at the head of the queue as records for the Kafka log, in
 * p->recs: at most max events and batch_bytes bytes, at least one. Returns
 * its event count (the mutex held). */
static size_t queue_records(detector_pub *p, size_t max) {
  size_t k = 0, bytes = 0;
  for (pub_item *it = p->head; it && k < max; it = it->next, k++) {
    if (k > 0 && bytes + it->len > p->o.batch_bytes) break;
    bytes += it->len;
    p->recs[k] = it->rec.recs[0];
  }
  return k;
}

/* ------------------------------------------------------------ sending */

/* The "index" of the broker's 400 answer {"error":..,"index":i}, or -1. */
static int error_index(const void *body, size_t len) {
  cJSON *j = cJSON_ParseWithLength(body, len);
  const cJSON *ix = cJSON_GetObjectItemCaseSensitive(j, "index");
  int index = cJSON_IsNumber(ix) && ix->valuedouble >= 0 && ix->valuedouble < 1e6
                  ? (int)ix->valuedouble
                  : -1;
  cJSON_Delete(j);
  return index;
}

static void on_done(void *opaque, const httpc_result *r) {
  detector_pub *p = opaque;
  pub_res res = {.done = true,
                 .error = r->error,
                 .status = r->status,
                 .retry_after_ms = r->retry_after_ms,
                 .index = -1};
  if (r->error)
    snprintf(res.text, sizeof res.text, "%s", r->error_text);
  else if (r->status < 200 || r->status > 299)
    snprintf(res.text, sizeof res.text, "%.*s", (int)(r->body_len < 150 ? r->body_len : 150),
             (const char *)r->body);
  if (r->error == 0 && r->status == 400) res.index = error_index(r->body, r->body_len);
  pthread_mutex_lock(&p->mu);
  p->res = res;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

static void deadline_ts(uint64_t ns, struct timespec *ts) {
  ts->tv_sec = (time_t)(ns / 1000000000u);
  ts->tv_nsec = (long)(ns % 1000000000u);
}

/* Closes the HTTP client: the request under way reports -ECANCELED before
 * httpc_stop returns. Called with p->mu held. */
static void close_http(detector_pub *p) {
  httpc *c = p->c;
  p->c = NULL;
  pthread_mutex_unlock(&p->mu);
  httpc_stop(c);
  pthread_mutex_lock(&p->mu);
}

/* Closes the Kafka log: every append's callback runs before
 * broker_log_free returns. Called with p->mu held. */
static void close_log(detector_pub *p) {
  broker_log *log = p->log;
  p->log = NULL;
  pthread_mutex_unlock(&p->mu);
  broker_log_free(log);
  pthread_mutex_lock(&p->mu);
}

/* After a send or an append was started (rc its result, what its name),
 * waits with p->mu held until p->res is filled. Past the drain deadline of
 * a stop the transport is closed with close_fn, which makes its report come. */
static void wait_result(detector_pub *p, int rc, const char *what,
                        void (*close_fn)(detector_pub *p)) {
  if (rc) {
    p->res = (pub_res){.done = true, .error = rc, .retry_after_ms = -1, .index = -1};
    snprintf(p->res.text, sizeof p->res.text, "%s: %s", what, strerror(-rc));
  }
  while (!p->res.done) {
    if (!p->stopping) {
      pthread_cond_wait(&p->cv, &p->mu);
      continue;
    }
    struct timespec ts;
    deadline_ts(p->drain_deadline_ns, &ts);
    if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT && !p->res.done) close_fn(p);
  }
}

/* Sends body and waits for its answer into p->res (the mutex held, and
 * released while waiting). Past the drain deadline of a stop the client is
 * stopped, which ends the request with -ECANCELED. */
static void send_wait(detector_pub *p, const ce_buf *body) {
  const ce_kv hdrs[] = {{"Content-Type", 12, CE_MEDIA_BATCH, sizeof CE_MEDIA_BATCH - 1},
                        {"Authorization", 13, p->auth, p->auth ? strlen(p->auth) : 0}};
  long timeout = p->o.timeout_ms;
  uint64_t now = metrics_now_ns();
  if (p->stopping) {
    long left = now < p->drain_deadline_ns ? (long)((p->drain_deadline_ns - now) / 1000000u) : 0;
    if (left < timeout) timeout = left > 0 ? left : 1;
  }
  p->res = (pub_res){.index = -1};
  pthread_mutex_unlock(&p->mu);
  int rc = p->c ? httpc_send(p->c, "POST", p->url, hdrs, p->auth ? 2 : 1, body->data, body->len,
                             timeout, on_done, p)
                : -ECANCELED;
  pthread_mutex_lock(&p->mu);
  wait_result(p, rc, "httpc_send", close_http);
}

/* The Kafka log's report on an append, as an answer the rules below judge
 * as they judge the ingress's: a record too large for the cluster is what a
 * 413 is; everything else (timeouts, an unknown topic, brokers down) is
 * retried. */
static void on_appended(void *opaque, int status) {
  detector_pub *p = opaque;
  pub_res res = {.done = true, .retry_after_ms = -1, .index = -1};
  if (status == -EMSGSIZE)
    res.status = 413;
  else if (status)
    res.error = status;
  else
    res.status = 202;
  snprintf(res.text, sizeof res.text, "kafka append: %s", status ? strerror(-status) : "ok");
  pthread_mutex_lock(&p->mu);
  p->res = res;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

/* Appends the k records in p->recs and waits for the log's report into
 * p->res (the mutex held, and released while waiting). Past the drain
 * deadline of a stop the log is closed, which ends the append (-ESHUTDOWN
 * for what is not acknowledged by then). */
static void append_wait(detector_pub *p, size_t k) {
  p->res = (pub_res){.index = -1};
  pthread_mutex_unlock(&p->mu);
  int rc = p->log ? broker_log_append(p->log, p->topic, p->recs, k, on_appended, p) : -ECANCELED;
  pthread_mutex_lock(&p->mu);
  wait_result(p, rc, "broker_log_append", close_log);
}

/* What to do with an answer. */
enum verdict { V_OK, V_RETRY, V_DROP_ONE, V_ISOLATE };

static enum verdict judge(const pub_res *r, size_t k) {
  if (r->error) return V_RETRY;
  long s = r->status;
  if (s >= 200 && s <= 299) return V_OK;
  /* About the content: the same bytes would be refused again. */
  if (s == 400 || s == 413 || s == 415 || s == 431) {
    if (s == 400 && r->index >= 0 && (size_t)r->index < k) return V_DROP_ONE;
    return k > 1 ? V_ISOLATE : V_DROP_ONE;
  }
  /* 429, 5xx, and what an operator fixes (404: the broker is not declared
   * yet, 401/403): kept, and sent again. */
  return V_RETRY;
}

static void log_failure(detector_pub *p, pub_loop *l, int delay_ms) {
  if (l->failing) return;
  l->failing = true;
  if (p->res.error)
    fprintf(stderr, "outpost detector: publish to %s: %s (%s); retrying in %d ms, %zu buffered\n",
            p->url, strerror(-p->res.error), p->res.text, delay_ms, p->n);
  else
    fprintf(stderr, "outpost detector: publish to %s: %ld %s; retrying in %d ms, %zu buffered\n",
            p->url, p->res.status, p->res.text, delay_ms, p->n);
}

/* Applies the answer to a batch of k events (the mutex held). */
static void settle(detector_pub *p, pub_loop *l, size_t k) {
  enum verdict v = judge(&p->res, k);
  if (v == V_OK) {
    queue_pop(p, k);
    atomic_fetch_add_explicit(&p->published, k, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->batches, 1, memory_order_relaxed);
    l->backoff_ms = 0;
    l->not_before = 0;
    l->solo -= l->solo < k ? l->solo : k;
    if (l->failing) fprintf(stderr, "outpost detector: publish to %s: delivering again\n", p->url);
    l->failing = false;
  } else if (v == V_RETRY) {
    atomic_fetch_add_explicit(&p->retries, 1, memory_order_relaxed);
    int delay = l->backoff_ms ? l->backoff_ms * 2 : p->o.backoff_min_ms;
    if (delay > p->o.backoff_max_ms) delay = p->o.backoff_max_ms;
    l->backoff_ms = delay;
    if (p->res.retry_after_ms > delay)
      delay = p->res.retry_after_ms > p->o.retry_after_max_ms ? p->o.retry_after_max_ms
                                                              : (int)p->res.retry_after_ms;
    l->not_before = metrics_now_ns() + (uint64_t)delay * 1000000u;
    log_failure(p, l, delay);
  } else if (v == V_DROP_ONE) {
    size_t i = p->res.index >= 0 && (size_t)p->res.index < k ? (size_t)p->res.index : 0;
    fprintf(stderr, "outpost detector: the broker refused an event for good (%ld %s): dropped\n",
            p->res.status, p->res.text);
    queue_remove_at(p, i);
    count_drop(p, DETECTOR_DROP_REJECTED, 1);
    if (l->solo) l->solo--;
  } else {
    l->solo = k; /* one at a time until the refused one is found */
  }
}

/* When the next batch may go (monotonic ns); UINT64_MAX when nothing is
 * queued (the mutex held). */
static uint64_t next_send(const detector_pub *p, const pub_loop *l) {
  if (!p->head) return UINT64_MAX;
  uint64_t t = l->not_before;
  if (!p->stopping && p->o.batch_ms > 0 && p->n < p->o.batch_events &&
      p->bytes < p->o.batch_bytes) {
    uint64_t full = p->head->queued_ns + (uint64_t)p->o.batch_ms * 1000000u;
    if (full > t) t = full;
  }
  return t;
}

static void *pub_thread(void *arg) {
  detector_pub *p = arg;
  pub_loop l = {0};
  ce_buf_init(&l.body);
  pthread_mutex_lock(&p->mu);
  for (;;) {
    uint64_t now = metrics_now_ns();
    if (p->stopping && (!p->head || now >= p->drain_deadline_ns || (!p->c && !p->log))) break;
    uint64_t at = next_send(p, &l);
    if (p->stopping && at > p->drain_deadline_ns) at = p->drain_deadline_ns;
    if (at > now) {
      if (at == UINT64_MAX) {
        pthread_cond_wait(&p->cv, &p->mu);
      } else {
        struct timespec ts;
        deadline_ts(at, &ts);
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
      }
      continue;
    }
    size_t max = l.solo ? 1 : p->o.batch_events, k;
    if (p->topic) {
      k = queue_records(p, max);
      append_wait(p, k);
    } else {
      k = queue_batch(p, max, &l.body);
      send_wait(p, &l.body);
    }
    settle(p, &l, k);
  }
  pthread_mutex_unlock(&p->mu);
  ce_buf_cleanup(&l.body);
  return NULL;
}

/* ------------------------------------------------------------ life */

/* The transport: an httpc client for the ingress, or the Kafka log. */
static int transport_start(detector_pub *p, char *err, size_t errlen) {
  if (!p->topic) {
    /* One batch in flight: the client never needs more than one connection. */
    httpc_opts co;
    httpc_opts_init(&co);
    co.max_inflight = 4;
    co.max_per_host = 1;
    co.max_response_body = 64u << 10;
    return (p->c = httpc_start(&co, err, errlen)) ? 0 : -EIO;
  }
  broker_kafka_opts ko;
  broker_kafka_opts_init(&ko);
  ko.bootstrap = p->o.kafka_bootstrap;
  ko.props = p->o.kafka_props;
  ko.n_props = p->o.n_kafka_props;
  ko.delivery_timeout_ms = p->o.timeout_ms > INT32_MAX ? INT32_MAX : (int)p->o.timeout_ms;
  if (!(p->recs = calloc(p->o.batch_events, sizeof *p->recs))) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  return (p->log = broker_log_kafka_open(&ko, err, errlen)) ? 0 : -EIO;
}

static void transport_stop(detector_pub *p) {
  httpc_stop(p->c);
  broker_log_free(p->log);
  p->c = NULL;
  p->log = NULL;
}

static void pub_free(detector_pub *p) {
  free(p->recs);
  free(p->topic);
  free(p->url);
  free(p->auth);
  free(p);
}

static bool opts_ok(const detector_pub_opts *o, char *err, size_t errlen) {
  if (o && o->kafka_bootstrap && o->topic && *o->topic && !o->url) return true;
  if (o && o->url && strncmp(o->url, "http", 4) == 0 && !o->kafka_bootstrap && !o->topic)
    return true;
  snprintf(err, errlen,
           "the publisher needs the broker's http:// or https:// URL, or a Kafka "
           "bootstrap list and a topic");
  return false;
}

detector_pub *detector_pub_start(const detector_pub_opts *o, char *err, size_t errlen) {
  if (!opts_ok(o, err, errlen)) return NULL;
  detector_pub *p = calloc(1, sizeof *p);
  if (!p) goto fail_alloc;
  p->o = *o;
  opts_fill(&p->o);
  if (o->topic) {
    size_t n = strlen(o->kafka_bootstrap) + strlen(o->topic) + 10;
    if (!(p->topic = strdup(o->topic)) || !(p->url = malloc(n))) goto fail_alloc;
    snprintf(p->url, n, "kafka://%s/%s", o->kafka_bootstrap, o->topic);
  } else if (!(p->url = strdup(o->url))) {
    goto fail_alloc;
  }
  if (!o->topic && o->token && !(p->auth = httpc_bearer(o->token))) goto fail_alloc;
  p->o.url = o->topic ? NULL : p->url;
  p->o.token = NULL; /* kept as auth */
  p->o.topic = p->topic;
  clock_cond_init(&p->cv); /* the clock metrics_now_ns reads */
  pthread_mutex_init(&p->mu, NULL);
  if (transport_start(p, err, errlen)) goto fail_sync;
  int rc = pthread_create(&p->thread, NULL, pub_thread, p);
  if (rc) {
    snprintf(err, errlen, "pthread_create: %s", strerror(rc));
    transport_stop(p);
    goto fail_sync;
  }
  return p;

fail_sync:
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  pub_free(p);
  return NULL;
fail_alloc:
  snprintf(err, errlen, "out of memory");
  if (p) pub_free(p);
  return NULL;
}

uint64_t detector_pub_stop(detector_pub *p, int drain_ms) {
  if (!p) return 0;
  pthread_mutex_lock(&p->mu);
  p->stopping = true;
  p->drain_deadline_ns = metrics_now_ns() + (uint64_t)(drain_ms > 0 ? drain_ms : 0) * 1000000u;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->thread, NULL);
  transport_stop(p);
  uint64_t left = p->n;
  count_drop(p, DETECTOR_DROP_SHUTDOWN, left);
  queue_pop(p, p->n);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  pub_free(p);
  return left;
}

/* ------------------------------------------------------------ counters */

void detector_pub_stats_get(detector_pub *p, detector_pub_stats *out) {
  memset(out, 0, sizeof *out);
  out->published = atomic_load_explicit(&p->published, memory_order_relaxed);
  out->batches = atomic_load_explicit(&p->batches, memory_order_relaxed);
  out->retries = atomic_load_explicit(&p->retries, memory_order_relaxed);
  for (int i = 0; i < DETECTOR_DROP_MAX; i++)
    out->dropped[i] = atomic_load_explicit(&p->dropped[i], memory_order_relaxed);
  pthread_mutex_lock(&p->mu);
  out->depth_events = p->n;
  out->depth_bytes = p->bytes;
  pthread_mutex_unlock(&p->mu);
}

void detector_pub_metrics(detector_pub *p, ce_buf *out) {
  detector_pub_stats s;
  detector_pub_stats_get(p, &s);
  metrics_family(out, "outpost_detector_published_events_total", "counter",
                 "Events the broker accepted from this detector.");
  metrics_sample(out, "outpost_detector_published_events_total", NULL, s.published);
  metrics_family(out, "outpost_detector_batches_total", "counter", "Batches the broker accepted.");
  metrics_sample(out, "outpost_detector_batches_total", NULL, s.batches);
  metrics_family(out, "outpost_detector_retries_total", "counter",
                 "Batch attempts that failed (transport error, 429, 5xx, 404) and were retried.");
  metrics_sample(out, "outpost_detector_retries_total", NULL, s.retries);
  metrics_family(out, "outpost_detector_dropped_events_total", "counter",
                 "Events the publisher gave up, per reason.");
  for (int i = 0; i < DETECTOR_DROP_MAX; i++) {
    char labels[64];
    snprintf(labels, sizeof labels, "reason=\"%s\"", drop_names[i]);
    metrics_sample(out, "outpost_detector_dropped_events_total", labels, s.dropped[i]);
  }
  metrics_family(out, "outpost_detector_buffer_events", "gauge",
                 "Events buffered for the broker, the batch in flight included.");
  metrics_sample(out, "outpost_detector_buffer_events", NULL, s.depth_events);
  metrics_family(out, "outpost_detector_buffer_bytes", "gauge", "Their JSON bytes.");
  metrics_sample(out, "outpost_detector_buffer_bytes", NULL, s.depth_bytes);
}
