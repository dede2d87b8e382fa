/*
 * dispatcher.c — the consumers and the deliveries (see dispatcher.h for
 * the semantics, dispatcher_int.h for the locking).
 *
 * Three kinds of thread meet here. A reader per partition reads records,
 * decodes them and leaves them in the partition's inbox; it also commits
 * the partition's done point, so that slow log calls never hold up a
 * delivery. The delivery thread matches new records against the index,
 * starts attempts, handles their ends and runs the backoff timers. The
 * HTTP client's thread and the log's thread only report ends: they fill in
 * the delivery and queue it on d->done.
 *
 * A record is done when every delivery it started is done; a partition's
 * done point is the offset of its oldest record not done, so the committed
 * position never passes an event that is neither delivered nor
 * dead-lettered.
 */
#include "trigger/delivery.h"
#include "trigger/dispatcher_int.h"

#include "core/clock.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The most often a reader commits its partition's done point. */
#define COMMIT_EVERY_MS 100u

struct rec {
  rec *next;
  int64_t offset;
  ce_event *ev; /* NULL: not a CloudEvent (skipped) */
  int pending;  /* deliveries not done */
  /* The request, encoded once for every trigger (when first needed). */
  bool encoded;
  ce_headers hdrs;
  ce_buf body;
};

/* An ordered trigger's queue for one partitionkey of one partition. */
struct keyq {
  keyq *next; /* hash chain */
  uint64_t hash;
  int32_t part;
  char *key;
  dlv *head, *tail; /* waiting their turn */
  bool busy;        /* one delivery of this key is under way */
};

/* What a delivery does next. */
enum target { T_SUBSCRIBER, T_SINK, T_DL_TOPIC, T_REPLY };

/* What a subscriber's 2xx answer held. */
enum reply { REPLY_NONE, REPLY_EVENTS, REPLY_NOT_CE };

struct dlv {
  dlv *next;          /* in d->ready, d->done or a key queue */
  dlv *lprev, *lnext; /* d->live */
  rec *r;
  part *p;
  tentry *t;
  keyq *kq;
  enum target target;
  int32_t retries;  /* retries made to the subscriber */
  int32_t attempts; /* attempts at the current sink or log append */
  size_t heap_i;
  uint64_t due_ns, start_ns;
  long status;    /* the subscriber's last failed answer (0: none) */
  ce_buf errbody; /* its first bytes */
  ce_event *dl_ev;
  ce_batch replies;
  /* The end of the last attempt, filled in by the reporting thread. */
  int end_error;
  long end_status;
  int64_t end_retry_after_ms;
  enum reply end_reply;
  char end_why[160];
};

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "outpost: dispatcher: %s\n", line);
}

void trigger_dispatcher_opts_init(trigger_dispatcher_opts *o) {
  memset(o, 0, sizeof *o);
  o->group_prefix = "outpost-dispatcher.";
  o->window = 256;
  o->timeout_ms = 30000;
  o->sink_retry_max_ms = 60000;
  o->poll_ms = 20;
  o->reply_ttl_default = 255;
}

/* ---------------------------------------------------------------- timers */

static bool heap_less(dlv *a, dlv *b) {
  return a->due_ns < b->due_ns;
}

static void heap_swap(trigger_dispatcher *d, size_t i, size_t j) {
  dlv *t = d->heap[i];
  d->heap[i] = d->heap[j];
  d->heap[j] = t;
  d->heap[i]->heap_i = i;
  d->heap[j]->heap_i = j;
}

static int heap_push(trigger_dispatcher *d, dlv *x) {
  if (d->n_heap == d->cap_heap) {
    size_t cap = d->cap_heap ? d->cap_heap * 2 : 64;
    dlv **h = realloc(d->heap, cap * sizeof *h);
    if (!h) return -ENOMEM;
    d->heap = h;
    d->cap_heap = cap;
  }
  size_t i = d->n_heap++;
  d->heap[i] = x;
  x->heap_i = i;
  while (i > 0 && heap_less(d->heap[i], d->heap[(i - 1) / 2])) {
    heap_swap(d, i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
  return 0;
}

static void heap_down(trigger_dispatcher *d, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < d->n_heap && heap_less(d->heap[l], d->heap[m])) m = l;
    if (r < d->n_heap && heap_less(d->heap[r], d->heap[m])) m = r;
    if (m == i) return;
    heap_swap(d, i, m);
    i = m;
  }
}

static dlv *heap_pop(trigger_dispatcher *d) {
  dlv *top = d->heap[0];
  heap_swap(d, 0, --d->n_heap);
  heap_down(d, 0);
  return top;
}

void dispatcher__expedite(trigger_dispatcher *d, tentry *t) {
  bool any = false;
  for (size_t i = 0; i < d->n_heap; i++)
    if (d->heap[i]->t == t) {
      d->heap[i]->due_ns = 0;
      any = true;
    }
  if (!any) return;
  for (size_t i = d->n_heap / 2; i-- > 0;) heap_down(d, i);
  pthread_cond_signal(&d->cond);
}

/* ---------------------------------------------------------------- queues */

static void push(dlv **head, dlv **tail, dlv *x) {
  x->next = NULL;
  if (*tail)
    (*tail)->next = x;
  else
    *head = x;
  *tail = x;
}

static dlv *shift(dlv **head, dlv **tail) {
  dlv *x = *head;
  if (x && !(*head = x->next)) *tail = NULL;
  return x;
}

static uint64_t key_hash(int32_t pid, const char *key) {
  uint64_t h = 1469598103934665603ull ^ (uint32_t)pid;
  for (const char *s = key; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

/* The queue of key `key` in partition `pid` of an ordered trigger. The
 * queues belong to the trigger's name, not to one version of it, so that a
 * replaced trigger's new events wait behind its old version's. */
static keyq *key_queue(tstats *st, int32_t pid, const char *key) {
  uint64_t h = key_hash(pid, key);
  if (st->n_keys >= st->cap_keys) { /* grow, keeping chains short */
    size_t cap = st->cap_keys ? st->cap_keys * 2 : 64;
    keyq **b = calloc(cap, sizeof *b);
    if (!b) return NULL;
    for (size_t i = 0; i < st->cap_keys; i++)
      for (keyq *q = st->keys[i], *next; q; q = next) {
        next = q->next;
        q->next = b[q->hash & (cap - 1)];
        b[q->hash & (cap - 1)] = q;
      }
    free(st->keys);
    st->keys = b;
    st->cap_keys = cap;
  }
  keyq **slot = &st->keys[h & (st->cap_keys - 1)];
  for (keyq *q = *slot; q; q = q->next)
    if (q->hash == h && q->part == pid && strcmp(q->key, key) == 0) return q;
  keyq *q = calloc(1, sizeof *q);
  if (!q || !(q->key = strdup(key))) {
    free(q);
    return NULL;
  }
  q->part = pid;
  q->hash = h;
  q->next = *slot;
  *slot = q;
  st->n_keys++;
  return q;
}

static void key_queue_drop(tstats *st, keyq *q) {
  for (keyq **pp = &st->keys[q->hash & (st->cap_keys - 1)]; *pp; pp = &(*pp)->next)
    if (*pp == q) {
      *pp = q->next;
      st->n_keys--;
      free(q->key);
      free(q);
      return;
    }
}

/* ---------------------------------------------------------------- deliveries */

static void dlv_free(trigger_dispatcher *d, dlv *x) {
  if (x->lprev)
    x->lprev->lnext = x->lnext;
  else
    d->live = x->lnext;
  if (x->lnext) x->lnext->lprev = x->lprev;
  ce_buf_cleanup(&x->errbody);
  ce_event_free(x->dl_ev);
  ce_batch_cleanup(&x->replies);
  free(x);
}

/* A delivery has ended: count it, let the next of its key go, and free it. */
static void finish(trigger_dispatcher *d, dlv *x, enum outcome o) {
  tentry *t = x->t;
  t->st->outcomes[o]++;
  if (o != O_ABANDONED) metrics_hist_observe(&t->st->latency, metrics_now_ns() - x->start_ns);
  x->r->pending--;
  d->inflight--;
  keyq *q = x->kq;
  if (q) {
    dlv *next = q->head;
    if (next) {
      if (!(q->head = next->next)) q->tail = NULL;
      next->start_ns = metrics_now_ns();
      push(&d->ready, &d->ready_tail, next);
    } else {
      q->busy = false;
      key_queue_drop(t->st, q);
    }
  }
  dlv_free(d, x);
  dispatcher__entry_unref(d, t);
}

/* Waits ms before the next attempt of x. */
static void later(trigger_dispatcher *d, dlv *x, int64_t ms) {
  x->due_ns = metrics_now_ns() + (uint64_t)ms * 1000000u;
  if (heap_push(d, x)) { /* no memory for the timer: try again at once */
    push(&d->ready, &d->ready_tail, x);
  }
}

/* Backoff between attempts at a sink or the log, which never end. */
static int64_t sink_backoff(trigger_dispatcher *d, dlv *x, long status, int64_t retry_after) {
  int64_t ms = trigger_delivery_backoff_ms(&x->t->tr->delivery, x->attempts, status, retry_after);
  return ms > d->opts.sink_retry_max_ms ? d->opts.sink_retry_max_ms : ms;
}

static void on_http(void *opaque, const httpc_result *res);
static void on_log(void *opaque, int status);

/* The event's trace context (the distributed tracing extension) as W3C
 * Trace Context headers as well, which a subscriber's tracing reads (binary
 * mode carries it as ce-traceparent, which it does not); only when valid, so
 * that no value of an event's becomes a header of its own making. */
static int trace_headers(const ce_event *ev, ce_headers *h) {
  const char *tp = ce_event_get_str(ev, "traceparent");
  if (!tp || !ce_valid_traceparent(tp, strlen(tp))) return 0;
  int rc = ce_headers_add(h, "traceparent", 11, tp, strlen(tp));
  const char *ts = ce_event_get_str(ev, "tracestate");
  if (!rc && ts && *ts && ce_valid_tracestate(ts, strlen(ts)))
    rc = ce_headers_add(h, "tracestate", 10, ts, strlen(ts));
  return rc;
}

/* The request body and headers of the record's event, encoded once. */
static int encode_rec(rec *r) {
  if (r->encoded) return 0;
  ce_err err;
  int rc = ce_http_encode(r->ev, CE_MODE_BINARY, &r->hdrs, &r->body, &err);
  if (rc == -EINVAL) { /* a datacontenttype that is a CloudEvents format */
    ce_headers_reset(&r->hdrs);
    ce_buf_reset(&r->body);
    rc = ce_http_encode(r->ev, CE_MODE_STRUCTURED, &r->hdrs, &r->body, &err);
  }
  if (rc == 0) rc = ce_headers_add(&r->hdrs, "Prefer", 6, "reply", 5);
  if (rc == 0) rc = trace_headers(r->ev, &r->hdrs);
  r->encoded = rc == 0;
  return rc;
}

static int64_t attempt_timeout(trigger_dispatcher *d, const trigger *tr) {
  return tr->delivery.timeout_ms > 0 ? tr->delivery.timeout_ms : d->opts.timeout_ms;
}

/* Sends the dead-letter event to the trigger's sink. */
static int send_sink(trigger_dispatcher *d, dlv *x) {
  ce_headers h;
  ce_buf body;
  ce_headers_init(&h);
  ce_buf_init(&body);
  ce_err err;
  int rc = ce_http_encode(x->dl_ev, CE_MODE_BINARY, &h, &body, &err);
  if (rc == -EINVAL) {
    ce_headers_reset(&h);
    ce_buf_reset(&body);
    rc = ce_http_encode(x->dl_ev, CE_MODE_STRUCTURED, &h, &body, &err);
  }
  if (rc == 0) rc = trace_headers(x->dl_ev, &h);
  if (rc == 0)
    rc = httpc_send(d->http, "POST", x->t->tr->delivery.dead_letter_uri, h.items, h.n, body.data,
                    body.len, attempt_timeout(d, x->t->tr), on_http, x);
  ce_headers_cleanup(&h);
  ce_buf_cleanup(&body);
  return rc;
}

/* Appends events to topic for x; on_log reports. */
static int append(trigger_dispatcher *d, dlv *x, const char *topic, ce_event *const *evs,
                  size_t n) {
  broker_batch b = {0};
  ce_err err = {.index = -1};
  int rc = broker_batch_encode(&b, evs, n, &err);
  if (rc == 0) {
    d->appends++;
    rc = broker_log_append(d->opts.log, topic, b.recs, b.n, on_log, x);
    if (rc) d->appends--;
  } else {
    logf_("trigger %s/%s: cannot encode for %s: %s", x->t->tr->ns, x->t->tr->name, topic,
          err.reason);
  }
  broker_batch_cleanup(&b);
  return rc;
}

/* Starts the next attempt of x. Returns -EAGAIN when the client is full (x
 * stays ready), else 0: x is under way, or back on a timer after a failure
 * to start. */
static int start(trigger_dispatcher *d, dlv *x) {
  tentry *t = x->t;
  if (t->deleted) {
    finish(d, x, O_ABANDONED);
    return 0;
  }
  int rc = -EINVAL;
  switch (x->target) {
  case T_SUBSCRIBER:
    rc = encode_rec(x->r);
    if (rc == 0)
      rc = httpc_send(d->http, "POST", t->tr->subscriber_uri, x->r->hdrs.items, x->r->hdrs.n,
                      x->r->body.data, x->r->body.len, attempt_timeout(d, t->tr), on_http, x);
    break;
  case T_SINK:
    rc = send_sink(d, x);
    break;
  case T_DL_TOPIC:
    rc = append(d, x, t->c->dl_topic, &x->dl_ev, 1);
    break;
  case T_REPLY:
    rc = append(d, x, t->c->topic, x->replies.ev, x->replies.n);
    break;
  }
  if (rc == -EAGAIN && (x->target == T_SUBSCRIBER || x->target == T_SINK)) return -EAGAIN;
  if (rc) {
    /* Could not even start (out of memory, the log refusing): wait and retry
     * the same step; an event is never given up. */
    x->attempts++;
    later(d, x, sink_backoff(d, x, 0, -1));
  }
  return 0;
}

/* The subscriber failed for good: on to the sink, or the dead-letter topic. */
static void dead_letter(trigger_dispatcher *d, dlv *x) {
  const trigger *tr = x->t->tr;
  const char *dest = tr->subscriber_uri;
  x->dl_ev =
      trigger_delivery_dead_letter(x->r->ev, dest, x->status, x->errbody.data, x->errbody.len);
  x->attempts = 0;
  x->target = tr->delivery.dead_letter_uri ? T_SINK : T_DL_TOPIC;
  logf_("trigger %s/%s: event %s failed (%s) after %d attempt(s): to the dead-letter %s", tr->ns,
        tr->name, ce_event_get_str(x->r->ev, "id"), x->end_why[0] ? x->end_why : "error",
        x->retries + 1, x->target == T_SINK ? "sink" : "topic");
  if (!x->dl_ev) { /* out of memory: try the whole subscriber step again later */
    x->target = T_SUBSCRIBER;
    later(d, x, d->opts.sink_retry_max_ms);
    return;
  }
  push(&d->ready, &d->ready_tail, x);
}

/* A reply with no trace context of its own goes on in the trace of the
 * event it answers (a valid one). */
static int inherit_trace(const ce_event *from, ce_event *to, ce_err *err) {
  const char *tp = ce_event_get_str(from, "traceparent");
  if (!tp || ce_event_get(to, "traceparent") || !ce_valid_traceparent(tp, strlen(tp))) return 0;
  int rc = ce_event_set(to, "traceparent", CE_TYPE_STRING, tp, strlen(tp), err);
  const char *ts = ce_event_get_str(from, "tracestate");
  if (!rc && ts && *ts && !ce_event_get(to, "tracestate"))
    rc = ce_event_set(to, "tracestate", CE_TYPE_STRING, ts, strlen(ts), err);
  return rc;
}

/* Readies the replies of a 2xx answer: TTL one less than the event's, and
 * its trace context when they have none. */
static void prepare_replies(trigger_dispatcher *d, dlv *x) {
  tstats *st = x->t->st;
  int32_t ttl;
  if (ce_event_get_int(x->r->ev, "knativebrokerttl", &ttl)) ttl = d->opts.reply_ttl_default;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  char now[40];
  ce_timestamp_format(ts.tv_sec, (int32_t)ts.tv_nsec, now, sizeof now);
  size_t kept = 0;
  for (size_t i = 0; i < x->replies.n; i++) {
    ce_event *ev = x->replies.ev[i];
    ce_err err;
    if (ttl - 1 <= 0) {
      st->replies_ttl++;
      logf_("trigger %s/%s: reply %s dropped: TTL exhausted (a reply loop?)", x->t->tr->ns,
            x->t->tr->name, ce_event_get_str(ev, "id"));
      ce_event_free(ev);
      continue;
    }
    if (ce_event_set_int(ev, "knativebrokerttl", ttl - 1, &err) ||
        ce_event_set(ev, "knativearrivaltime", CE_TYPE_TIMESTAMP, now, strlen(now), &err) ||
        inherit_trace(x->r->ev, ev, &err)) {
      st->replies_invalid++;
      ce_event_free(ev);
      continue;
    }
    x->replies.ev[kept++] = ev;
  }
  x->replies.n = kept;
}

/* Looks at the end of x's last attempt. */
static void ended(trigger_dispatcher *d, dlv *x) {
  tentry *t = x->t;
  tstats *st = t->st;
  if (t->deleted && x->target != T_REPLY && x->target != T_DL_TOPIC) {
    finish(d, x, O_ABANDONED);
    return;
  }
  bool ok2xx = x->end_error == 0 && x->end_status >= 200 && x->end_status < 300;
  switch (x->target) {
  case T_SUBSCRIBER:
    st->attempts++;
    if (ok2xx) {
      if (x->end_reply == REPLY_NOT_CE) {
        st->replies_not_ce++;
        logf_("trigger %s/%s: the answer to %s is not a CloudEvent: %s", t->tr->ns, t->tr->name,
              ce_event_get_str(x->r->ev, "id"), x->end_why);
      }
      if (x->end_reply == REPLY_EVENTS) prepare_replies(d, x);
      if (x->replies.n) {
        x->target = T_REPLY;
        x->attempts = 0;
        push(&d->ready, &d->ready_tail, x);
      } else {
        finish(d, x, O_DELIVERED);
      }
      return;
    }
    x->status = x->end_error ? 0 : x->end_status;
    if (trigger_delivery_retryable(x->status) && x->retries < t->tr->delivery.retry) {
      x->retries++;
      st->retries++;
      later(d, x,
            trigger_delivery_backoff_ms(&t->tr->delivery, x->retries, x->status,
                                        x->end_retry_after_ms));
      return;
    }
    dead_letter(d, x);
    return;
  case T_SINK:
    if (ok2xx) {
      finish(d, x, O_DEAD_LETTERED);
      return;
    }
    break;
  case T_DL_TOPIC:
  case T_REPLY:
    if (x->end_error == 0) {
      if (x->target == T_REPLY) st->replies += x->replies.n;
      finish(d, x, x->target == T_REPLY ? O_DELIVERED : O_DL_TOPIC);
      return;
    }
    break;
  }
  /* A sink or the log failed: never given up, tried again with backoff. */
  st->sink_failures++;
  x->attempts++;
  if (x->attempts == 1 || x->attempts % 10 == 0)
    logf_("trigger %s/%s: event %s: %s failed (%s), attempt %d; retrying", t->tr->ns, t->tr->name,
          ce_event_get_str(x->r->ev, "id"),
          x->target == T_SINK    ? "the dead-letter sink"
          : x->target == T_REPLY ? "storing the reply"
                                 : "the dead-letter topic",
          x->end_why[0] ? x->end_why : "error", x->attempts);
  later(d, x, sink_backoff(d, x, x->end_error ? 0 : x->end_status, x->end_retry_after_ms));
}

/* The HTTP client's report (its thread). */
static void on_http(void *opaque, const httpc_result *res) {
  dlv *x = opaque;
  trigger_dispatcher *d = x->t->c->d;
  x->end_error = res->error;
  x->end_status = res->status;
  x->end_retry_after_ms = res->retry_after_ms;
  x->end_reply = REPLY_NONE;
  x->end_why[0] = '\0';
  /* knativeerrordata is the last attempt's answer: none when it had none. */
  if (x->target == T_SUBSCRIBER) ce_buf_reset(&x->errbody);
  if (res->error) {
    snprintf(x->end_why, sizeof x->end_why, "%s", res->error_text);
  } else if (res->status >= 200 && res->status < 300) {
    bool has_ce = false;
    for (size_t i = 0; i < res->n_headers && !has_ce; i++)
      has_ce = strncmp(res->headers[i].name, "ce-", 3) == 0;
    if (x->target == T_SUBSCRIBER && (res->body_len || has_ce)) {
      ce_limits lim;
      ce_limits_init(&lim);
      ce_err err = {.index = -1};
      if (ce_http_decode(res->headers, res->n_headers, res->body, res->body_len, &lim, &x->replies,
                         &err) >= 0) {
        x->end_reply = x->replies.n ? REPLY_EVENTS : REPLY_NONE;
      } else {
        x->end_reply = REPLY_NOT_CE;
        snprintf(x->end_why, sizeof x->end_why, "%.60s%s%.90s", err.attr, err.attr[0] ? ": " : "",
                 err.reason);
      }
    }
  } else {
    snprintf(x->end_why, sizeof x->end_why, "HTTP %ld", res->status);
    if (x->target == T_SUBSCRIBER) {
      ce_buf_append(&x->errbody, res->body,
                    res->body_len < TRIGGER_ERROR_DATA_MAX ? res->body_len
                                                           : TRIGGER_ERROR_DATA_MAX);
    }
  }
  pthread_mutex_lock(&d->lock);
  push(&d->done, &d->done_tail, x);
  pthread_cond_signal(&d->cond);
  pthread_mutex_unlock(&d->lock);
}

/* The log's report on an append (its thread). */
static void on_log(void *opaque, int status) {
  dlv *x = opaque;
  trigger_dispatcher *d = x->t->c->d;
  x->end_error = status;
  x->end_status = 0;
  x->end_retry_after_ms = -1;
  snprintf(x->end_why, sizeof x->end_why, "%s", status ? strerror(-status) : "");
  pthread_mutex_lock(&d->lock);
  push(&d->done, &d->done_tail, x);
  if (--d->appends == 0) pthread_cond_broadcast(&d->idle);
  pthread_cond_signal(&d->cond);
  pthread_mutex_unlock(&d->lock);
}

/* ---------------------------------------------------------------- matching */

typedef struct match_ctx {
  trigger_dispatcher *d;
  rec *r;
  part *p;
} match_ctx;

/* A trigger matched a new record: a delivery for it. */
static void matched(void *opaque, const trigger *tr) {
  match_ctx *m = opaque;
  trigger_dispatcher *d = m->d;
  tentry *t = tr->owner;
  dlv *x = calloc(1, sizeof *x);
  if (!x) {
    /* Skipping would drop the event for this trigger without a trace: a
     * loud end is better, and the event is delivered after a restart. */
    logf_("out of memory delivering %s to %s/%s", ce_event_get_str(m->r->ev, "id"), tr->ns,
          tr->name);
    abort();
  }
  ce_buf_init(&x->errbody);
  ce_batch_init(&x->replies);
  x->r = m->r;
  x->p = m->p;
  x->t = t;
  x->target = T_SUBSCRIBER;
  x->start_ns = metrics_now_ns();
  x->lnext = d->live;
  if (d->live) d->live->lprev = x;
  d->live = x;
  t->refs++;
  m->r->pending++;
  d->inflight++;
  if (tr->ordered) {
    const char *key = ce_event_get_str(m->r->ev, "partitionkey");
    keyq *q = key_queue(t->st, m->p->id, key ? key : "");
    if (!q) {
      logf_("out of memory queueing %s for %s/%s", ce_event_get_str(m->r->ev, "id"), tr->ns,
            tr->name);
      abort();
    }
    x->kq = q;
    if (q->busy) {
      if (q->tail)
        q->tail->next = x;
      else
        q->head = x;
      q->tail = x;
      x->next = NULL;
      return;
    }
    q->busy = true;
  }
  push(&d->ready, &d->ready_tail, x);
}

/* Takes the records the readers left, and starts their deliveries. */
static void take_inboxes(trigger_dispatcher *d) {
  for (consumer *c = d->consumers; c; c = c->next)
    for (int32_t i = 0; i < c->n_parts; i++) {
      part *p = &c->parts[i];
      rec *r = p->inbox;
      if (!r) continue;
      p->inbox = p->inbox_tail = NULL;
      while (r) {
        rec *next = r->next;
        r->next = NULL;
        if (p->tail)
          p->tail->next = r;
        else
          p->head = r;
        p->tail = r;
        p->recv_next = r->offset + 1;
        match_ctx m = {d, r, p};
        if (r->ev) trigger_index_match(c->ix, r->ev, matched, &m, NULL);
        r = next;
      }
    }
}

static void rec_free(rec *r) {
  ce_event_free(r->ev);
  ce_headers_cleanup(&r->hdrs);
  ce_buf_cleanup(&r->body);
  free(r);
}

/* Frees the done records at the head of each partition and moves its done
 * point; wakes the reader to commit it. */
static void release(trigger_dispatcher *d) {
  for (consumer *c = d->consumers; c; c = c->next) {
    bool moved = false;
    for (int32_t i = 0; i < c->n_parts; i++) {
      part *p = &c->parts[i];
      while (p->head && p->head->pending == 0) {
        rec *r = p->head;
        if (!(p->head = r->next)) p->tail = NULL;
        rec_free(r);
        p->held--;
      }
      int64_t done = p->head ? p->head->offset : p->recv_next;
      if (done != p->done_next) {
        p->done_next = done;
        moved = true;
      }
    }
    if (moved) pthread_cond_broadcast(&c->wake);
  }
}

/* ---------------------------------------------------------------- threads */

static void *deliver_main(void *arg) {
  trigger_dispatcher *d = arg;
  pthread_mutex_lock(&d->lock);
  while (!d->stopping) {
    if (!d->held) take_inboxes(d);
    dlv *x;
    while ((x = shift(&d->done, &d->done_tail))) ended(d, x);
    uint64_t now = metrics_now_ns();
    while (d->n_heap && d->heap[0]->due_ns <= now) push(&d->ready, &d->ready_tail, heap_pop(d));
    while ((x = shift(&d->ready, &d->ready_tail)))
      if (start(d, x) == -EAGAIN) { /* the client is full: when one ends */
        x->next = d->ready;
        d->ready = x;
        if (!d->ready_tail) d->ready_tail = x;
        break;
      }
    release(d);
    if (d->done || (d->n_heap && d->heap[0]->due_ns <= metrics_now_ns())) continue;
    bool inbox = false;
    for (consumer *c = d->held ? NULL : d->consumers; c && !inbox; c = c->next)
      for (int32_t i = 0; i < c->n_parts && !inbox; i++) inbox = c->parts[i].inbox != NULL;
    if (inbox) continue;
    /* Sleep until a report, a record, or the next timer. */
    uint64_t wait_ns = d->n_heap ? d->heap[0]->due_ns - metrics_now_ns() : 1000000000u;
    if (wait_ns > 1000000000u) wait_ns = 1000000000u;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(wait_ns / 1000000000u);
    ts.tv_nsec += (long)(wait_ns % 1000000000u);
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&d->cond, &d->lock, &ts);
  }
  pthread_mutex_unlock(&d->lock);
  return NULL;
}

/* Reads up to `room` records of p into its inbox. Returns how many. */
static int read_part(consumer *c, part *p, size_t room) {
  trigger_dispatcher *d = c->d;
  broker_records rs;
  broker_records_init(&rs);
  int n = broker_log_read(d->opts.log, c->topic, p->id, p->read_next, room < 128 ? room : 128, &rs);
  if (n <= 0) {
    broker_records_cleanup(&rs);
    return n;
  }
  /* What the log holds was accepted once, under limits that may since have
   * changed: no limits now. */
  ce_limits lim = {0};
  rec *head = NULL, *tail = NULL;
  size_t count = 0, invalid = 0;
  for (size_t i = 0; i < rs.n; i++) {
    const broker_record *br = &rs.recs[i];
    rec *r = calloc(1, sizeof *r);
    if (!r) break; /* read the rest next time */
    ce_headers_init(&r->hdrs);
    ce_buf_init(&r->body);
    r->offset = br->offset;
    ce_err err = {.index = -1};
    if (ce_kafka_decode(br->headers, br->n_headers, br->value, br->value_len, &lim, &r->ev, &err) <
        0) {
      r->ev = NULL;
      invalid++;
      logf_("%s partition %d offset %lld is not a CloudEvent (%s%s%s): skipped", c->topic, p->id,
            (long long)br->offset, err.attr, err.attr[0] ? ": " : "", err.reason);
    }
    if (tail)
      tail->next = r;
    else
      head = r;
    tail = r;
    count++;
    p->read_next = br->offset + 1;
  }
  broker_records_cleanup(&rs);
  pthread_mutex_lock(&d->lock);
  if (head) {
    if (p->inbox_tail)
      p->inbox_tail->next = head;
    else
      p->inbox = head;
    p->inbox_tail = tail;
    p->held += count;
    c->records += count;
    c->invalid += invalid;
    pthread_cond_signal(&d->cond);
  }
  pthread_mutex_unlock(&d->lock);
  return (int)count;
}

/* Commits p's done point when it moved. */
static void commit_part(consumer *c, part *p) {
  trigger_dispatcher *d = c->d;
  pthread_mutex_lock(&d->lock);
  int64_t done = p->done_next;
  pthread_mutex_unlock(&d->lock);
  if (done <= p->committed) return;
  int rc = broker_log_commit(d->opts.log, c->group, c->topic, p->id, done);
  if (rc)
    logf_("committing %s partition %d at %lld: %s (will retry)", c->topic, p->id, (long long)done,
          strerror(-rc));
  else
    p->committed = done;
}

/* One partition's reader: its own thread, because a read may wait (the
 * Kafka log waits for a first record) and must not hold up the others. */
static void *reader_main(void *arg) {
  part *p = arg;
  consumer *c = p->c;
  trigger_dispatcher *d = c->d;
  uint64_t lag_at = 0, commit_at = 0;
  for (;;) {
    pthread_mutex_lock(&d->lock);
    bool stop = c->stop;
    size_t room = d->opts.window > p->held ? d->opts.window - p->held : 0;
    pthread_mutex_unlock(&d->lock);
    if (stop) break;
    uint64_t now = metrics_now_ns();
    /* Commits at most every COMMIT_EVERY_MS: each is a write (a sync on the
     * embedded log), and a later one covers an earlier. A crash repeats at
     * most that much, which at least once allows. */
    if (now - commit_at >= COMMIT_EVERY_MS * 1000000u) {
      commit_at = now;
      commit_part(c, p);
    }
    if (now - lag_at >= 1000000000u) {
      lag_at = now;
      int64_t end;
      if (broker_log_end(d->opts.log, c->topic, p->id, &end) == 0) atomic_store(&p->end, end);
    }
    if (room && read_part(c, p, room) > 0) continue;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)d->opts.poll_ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&d->lock);
    if (!c->stop) pthread_cond_timedwait(&c->wake, &d->lock, &ts);
    pthread_mutex_unlock(&d->lock);
  }
  commit_part(c, p);
  return NULL;
}

/* Stops the first n readers of c; each commits its partition's done point. */
static void readers_stop(consumer *c, int32_t n) {
  pthread_mutex_lock(&c->d->lock);
  c->stop = true;
  pthread_cond_broadcast(&c->wake);
  pthread_mutex_unlock(&c->d->lock);
  for (int32_t i = 0; i < n; i++) pthread_join(c->parts[i].reader, NULL);
}

/* Starts c's readers from the group's committed positions (c is filled in
 * but not yet listed). */
int dispatcher__consumer_start(trigger_dispatcher *d, consumer *c) {
  for (int32_t i = 0; i < c->n_parts; i++) {
    part *p = &c->parts[i];
    int64_t next = 0;
    int rc = broker_log_committed(d->opts.log, c->group, c->topic, p->id, &next);
    if (rc) return rc;
    p->read_next = p->committed = p->recv_next = p->done_next = next;
  }
  for (int32_t i = 0; i < c->n_parts; i++) {
    part *p = &c->parts[i];
    p->c = c;
    int rc = pthread_create(&p->reader, NULL, reader_main, p);
    if (rc) {
      readers_stop(c, i);
      return -rc;
    }
  }
  return 0;
}

consumer *dispatcher__consumer_new(trigger_dispatcher *d) {
  consumer *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->d = d;
  clock_cond_init(&c->wake);
  return c;
}

/* What start made before its threads. */
static void dispatcher_free(trigger_dispatcher *d) {
  pthread_mutex_destroy(&d->lock);
  pthread_mutex_destroy(&d->admin);
  pthread_cond_destroy(&d->cond);
  pthread_cond_destroy(&d->idle);
  free(d->group_prefix);
  free(d->state_path);
  free(d);
}

trigger_dispatcher *trigger_dispatcher_start(const trigger_dispatcher_opts *opts, char *errbuf,
                                             size_t errlen) {
  if (!opts || !opts->log || !opts->topic_for) {
    snprintf(errbuf, errlen, "the dispatcher needs a log and a topic resolver");
    return NULL;
  }
  trigger_dispatcher *d = calloc(1, sizeof *d);
  if (!d || !(d->group_prefix = strdup(opts->group_prefix ? opts->group_prefix : "")) ||
      (opts->state_path && !(d->state_path = strdup(opts->state_path)))) {
    if (d) free(d->group_prefix);
    free(d);
    snprintf(errbuf, errlen, "out of memory");
    return NULL;
  }
  d->opts = *opts;
  d->opts.group_prefix = d->group_prefix;
  d->opts.state_path = d->state_path;
  d->held = opts->held;
  if (!d->opts.window) d->opts.window = 256;
  if (d->opts.timeout_ms <= 0) d->opts.timeout_ms = 30000;
  if (d->opts.sink_retry_max_ms <= 0) d->opts.sink_retry_max_ms = 60000;
  if (d->opts.poll_ms <= 0) d->opts.poll_ms = 20;
  if (d->opts.reply_ttl_default <= 0) d->opts.reply_ttl_default = 255;
  pthread_mutex_init(&d->lock, NULL);
  pthread_mutex_init(&d->admin, NULL);
  clock_cond_init(&d->cond);
  clock_cond_init(&d->idle);
  d->http = httpc_start(&d->opts.http, errbuf, errlen);
  int rc = d->http ? pthread_create(&d->thread, NULL, deliver_main, d) : -1;
  if (rc) {
    if (rc > 0) snprintf(errbuf, errlen, "cannot start a thread: %s", strerror(rc));
    httpc_stop(d->http);
    dispatcher_free(d);
    return NULL;
  }
  return d;
}

void trigger_dispatcher_release(trigger_dispatcher *d) {
  pthread_mutex_lock(&d->lock);
  d->held = false;
  pthread_cond_signal(&d->cond);
  pthread_mutex_unlock(&d->lock);
}

void dispatcher__consumer_free(consumer *c) {
  for (int32_t i = 0; i < c->n_parts; i++) {
    part *p = &c->parts[i];
    for (rec *r = p->inbox, *next; r; r = next) {
      next = r->next;
      rec_free(r);
    }
    for (rec *r = p->head, *next; r; r = next) {
      next = r->next;
      rec_free(r);
    }
  }
  pthread_cond_destroy(&c->wake);
  trigger_index_free(c->ix);
  free(c->parts);
  free(c->ns);
  free(c->name);
  free(c->topic);
  free(c->dl_topic);
  free(c->group);
  free(c);
}

void trigger_dispatcher_stop(trigger_dispatcher *d) {
  if (!d) return;
  pthread_mutex_lock(&d->lock);
  d->stopping = true;
  pthread_cond_signal(&d->cond);
  pthread_mutex_unlock(&d->lock);
  pthread_join(d->thread, NULL);
  /* The delivery thread is gone: done points are final. Readers commit them. */
  for (consumer *c = d->consumers; c; c = c->next) readers_stop(c, c->n_parts);
  httpc_stop(d->http); /* cancelled requests report onto d->done, unread */
  pthread_mutex_lock(&d->lock);
  while (d->appends) pthread_cond_wait(&d->idle, &d->lock);
  pthread_mutex_unlock(&d->lock);
  while (d->live) dlv_free(d, d->live);
  for (tentry *t = d->entries, *next; t; t = next) {
    next = t->next;
    dispatcher__entry_free(t);
  }
  for (consumer *c = d->consumers, *next; c; c = next) {
    next = c->next;
    dispatcher__consumer_free(c);
  }
  for (tstats *s = d->stats, *next; s; s = next) {
    next = s->next;
    free(s->ns);
    free(s->name);
    free(s->keys); /* empty: a key queue lives only while a delivery does */
    free(s);
  }
  free(d->heap);
  dispatcher_free(d);
}
