/*
 * ingress.c — the broker's HTTP front door, after Knative's broker ingress
 * data-plane contract: POST /<namespace>/<broker> in binary, structured or
 * batched mode; 202 only once the log reports the events durable; every
 * refusal with its own status and a JSON body naming what was wrong.
 *
 * Events are stored in the Kafka binding's binary mode, with
 * knativearrivaltime set and a knativebrokerttl (default 255) that replies
 * decrement, so that loops die.
 */
#include "broker/broker.h"
#include "broker/broker_int.h"
#include "core/metrics.h"
#include "core/resources.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

enum reason {
  R_INVALID,
  R_TTL,
  R_TOO_LARGE,
  R_HEADERS,
  R_MEDIA,
  R_UNKNOWN,
  R_METHOD,
  R_OVERLOADED,
  R_RATE,
  R_UNAUTHORIZED,
  R_FORBIDDEN,
  R_LOG,
  R_DRAINING,
  R_COUNT
};
static const char *const reason_names[R_COUNT] = {"invalid",
                                                  "ttl_expired",
                                                  "too_large",
                                                  "too_many_headers",
                                                  "unsupported_media_type",
                                                  "unknown_broker",
                                                  "method_not_allowed",
                                                  "overloaded",
                                                  "rate_limited",
                                                  "unauthorized",
                                                  "forbidden",
                                                  "log_unavailable",
                                                  "draining"};

typedef struct entry {
  struct entry *next;
  char *ns, *name, *topic;
  bool removed;
  bool api;                  /* declared through /v1/brokers: kept in opts.brokers_state */
  _Atomic uint64_t accepted; /* events */
} entry;

struct broker_ingress {
  broker_ingress_opts opts;
  broker_log *log;
  httpd *http;
  pthread_rwlock_t lock; /* guards the entry list; entries live until stop */
  entry *entries;
  pthread_mutex_t save_mu; /* one writer of opts.brokers_state at a time */
  _Atomic size_t inflight;
  _Atomic bool draining;
  /* Requests waiting for the log, so that stop can answer those the log
   * never reports on; after stop, the last late report frees the ingress. */
  pthread_mutex_t plock;
  struct pending *waiting;
  unsigned answering; /* taken off waiting, being answered outside plock */
  bool stopped;
  _Atomic uint64_t rejected[R_COUNT];
  _Atomic uint64_t bytes;
  metrics_hist request_hist, append_hist;
  char retry_after[16];
  broker_rate *rate;            /* opts.client_rate's buckets, or NULL */
  broker_senders_file *senders; /* opts.senders_file, or NULL: anyone may POST */
  char allowed_rate[16];        /* WebHook-Allowed-Rate: requests a minute, or "*" */
  struct mount {
    const char *prefix;
    broker_ingress_route_fn fn;
    broker_ingress_metrics_fn metrics;
    void *ctx;
  } mounts[BROKER_INGRESS_MOUNTS];
  size_t n_mounts; /* guarded by lock */
};

/* One POST waiting for the log. */
typedef struct pending {
  struct pending *prev, *next;
  bool abandoned; /* answered 503 by stop: the log's report only frees it */
  broker_ingress *in;
  httpd_req *req;
  entry *e;
  broker_sender *who; /* NULL without senders */
  size_t events, bytes;
  uint64_t start_ns, append_ns;
} pending;

void broker_ingress_opts_init(broker_ingress_opts *o) {
  /* Every field not set below is off: 0, false or NULL (client_rate,
   * senders_file, ...). */
  memset(o, 0, sizeof *o);
  httpd_opts_init(&o->http);
  o->http.port = 8080;
  /* Both pools (bench/README.md, issue 3's fourth round: 11 % less CPU per
   * request than the epoll pool alone in 9 of 10 rounds, the same with 900
   * idle connections). */
  o->http.model = HTTPD_HYBRID_POOL;
  /* And the fast lane in front of them (core/httpd_fast.c; bench/README.md:
   * 0.6 of nginx against 0.53 without it, 16 against 23-26 us of CPU per
   * request). */
  o->http.fast_lane = true;
  o->lane_commits = true;
  ce_limits_init(&o->limits);
  o->max_inflight = 4096;
  o->retry_after_s = 1;
  o->default_ttl = 255;
  o->drain_ms = 30000;
}

/* Counts and answers a refusal; the status brings its header (Retry-After
 * for 429 and 503, Allow for 405). */
static void reject(broker_ingress *in, httpd_req *req, enum reason r, unsigned status,
                   const char *msg, const char *attr, int index) {
  atomic_fetch_add(&in->rejected[r], 1);
  const char *h[2] = {NULL, NULL};
  if (status == 429 || status == 503) {
    h[0] = "Retry-After";
    h[1] = in->retry_after;
  } else if (status == 405) {
    h[0] = "Allow";
    h[1] = "POST, OPTIONS";
  }
  httpd_respond_error(req, status, msg, attr, index, h[0] ? h : NULL, h[0] ? 1 : 0);
}

static uint64_t rate_take(broker_ingress *in, httpd_req *req, size_t events, uint64_t now_ns) {
  httpd_addr a = httpd_client(req);
  return broker__rate_take(in->rate, &a, events, now_ns);
}

/* Counts and answers a request past its client's rate: 429 with the
 * seconds until it may send again. */
static void rate_limited(broker_ingress *in, httpd_req *req, uint64_t wait_ns) {
  atomic_fetch_add(&in->rejected[R_RATE], 1);
  uint64_t s = (wait_ns + 999999999) / 1000000000;
  char after[24], msg[200];
  snprintf(after, sizeof after, "%llu", (unsigned long long)s);
  snprintf(msg, sizeof msg,
           "this client is past its rate of %u events/s (at most %u at once); retry in %llu s",
           in->opts.client_rate, in->opts.client_burst, (unsigned long long)s);
  const char *h[2] = {"Retry-After", after};
  httpd_respond_error(req, 429, msg, NULL, -1, h, 1);
}

static entry *find(broker_ingress *in, const char *ns, size_t nslen, const char *name,
                   size_t namelen) {
  for (entry *e = in->entries; e; e = e->next)
    if (!e->removed && strlen(e->ns) == nslen && !memcmp(e->ns, ns, nslen) &&
        strlen(e->name) == namelen && !memcmp(e->name, name, namelen))
      return e;
  return NULL;
}

static int declare(broker_ingress *in, const char *ns, const char *name, const char *topic,
                   bool api) {
  if (!res_valid_dns_label(ns, strlen(ns)) || !res_valid_dns_label(name, strlen(name)))
    return -EINVAL;
  char def[160];
  snprintf(def, sizeof def, "knative-broker-%s-%s", ns, name);
  /* The topic is made (or found) now, so that the first event does not wait for it. */
  int parts = broker_log_partitions(in->log, topic ? topic : def);
  if (parts < 0) return parts;
  entry *e = calloc(1, sizeof *e);
  if (!e) return -ENOMEM;
  e->ns = strdup(ns);
  e->name = strdup(name);
  e->topic = strdup(topic ? topic : def);
  if (!e->ns || !e->name || !e->topic) {
    free(e->ns), free(e->name), free(e->topic), free(e);
    return -ENOMEM;
  }
  e->api = api;
  pthread_rwlock_wrlock(&in->lock);
  entry *old = find(in, ns, strlen(ns), name, strlen(name));
  if (old) old->removed = true; /* kept for requests still using it */
  e->next = in->entries;
  in->entries = e;
  pthread_rwlock_unlock(&in->lock);
  return 0;
}

int broker_ingress_add(broker_ingress *in, const char *ns, const char *name, const char *topic) {
  return declare(in, ns, name, topic, false);
}

int broker_ingress_remove(broker_ingress *in, const char *ns, const char *name) {
  pthread_rwlock_wrlock(&in->lock);
  entry *e = find(in, ns, strlen(ns), name, strlen(name));
  if (e) e->removed = true;
  pthread_rwlock_unlock(&in->lock);
  return e ? 0 : -ENOENT;
}

/* Writes the brokers declared through the admin API to opts.brokers_state:
 * a new file, synced, renamed over the old one, so that a crash leaves one
 * or the other whole. 0 or a negative errno. */
static int save_brokers(broker_ingress *in) {
  const char *path = in->opts.brokers_state;
  if (!path) return 0;
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return -ENAMETOOLONG;
  pthread_mutex_lock(&in->save_mu);
  cJSON *root = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(root, "brokers"), *o;
  bool ok = list != NULL;
  pthread_rwlock_rdlock(&in->lock);
  for (entry *e = in->entries; e && ok; e = e->next)
    if (!e->removed && e->api)
      ok = cJSON_AddItemToArray(list, o = cJSON_CreateObject()) &&
           cJSON_AddStringToObject(o, "namespace", e->ns) &&
           cJSON_AddStringToObject(o, "name", e->name) &&
           cJSON_AddStringToObject(o, "topic", e->topic);
  pthread_rwlock_unlock(&in->lock);
  char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  int rc = text ? 0 : -ENOMEM;
  FILE *f = rc ? NULL : fopen(tmp, "we");
  if (!rc && !f) rc = -errno;
  if (f) {
    if (fputs(text, f) < 0 || fputc('\n', f) < 0 || fflush(f) || fsync(fileno(f))) rc = -EIO;
    if (fclose(f) && !rc) rc = -EIO;
    if (!rc && rename(tmp, path)) rc = -errno;
    if (rc) unlink(tmp);
  }
  pthread_mutex_unlock(&in->save_mu);
  free(text);
  return rc;
}

int broker_ingress_restore(broker_ingress *in, char *errbuf, size_t errlen) {
  cJSON *all = NULL, *b;
  res_err err;
  const char *path = in->opts.brokers_state;
  if (!path) return 0;
  int rc = res_load_file(path, 4 << 20, &all, &err), n = 0;
  if (rc == -ENOENT) return 0;
  const cJSON *list = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(all, 0), "brokers");
  if (rc || !cJSON_IsArray(list)) {
    snprintf(errbuf, errlen, "%s: %s", path, rc ? err.msg : "no \"brokers\" list");
    cJSON_Delete(all);
    return -EINVAL;
  }
  cJSON_ArrayForEach(b, list) {
    const char *ns = res_str(b, "namespace"), *name = res_str(b, "name"),
               *topic = res_str(b, "topic");
    rc = ns && name ? declare(in, ns, name, topic, true) : -EINVAL;
    if (rc) {
      snprintf(errbuf, errlen, "%s: broker %s/%s: %s", path, ns ? ns : "?", name ? name : "?",
               rc == -EINVAL ? "not DNS labels" : strerror(-rc));
      break;
    }
    n++;
  }
  cJSON_Delete(all);
  return rc ? rc : n;
}

static void ingress_free(broker_ingress *in);

/* Takes p off the list of requests waiting for the log. Caller holds plock. */
static void unlist(broker_ingress *in, pending *p) {
  if (p->prev)
    p->prev->next = p->next;
  else
    in->waiting = p->next;
  if (p->next) p->next->prev = p->prev;
}

static void on_durable(void *opaque, int status) {
  pending *p = opaque;
  broker_ingress *in = p->in;
  uint64_t now = metrics_now_ns();
  /* plock is held only to take p off the list, not while answering: the
   * answer resumes the connection (a lock of libmicrohttpd's and a write to
   * its eventfd), and the HTTP threads list their requests under plock. */
  pthread_mutex_lock(&in->plock);
  unlist(in, p);
  bool answer = !p->abandoned;
  if (answer) in->answering++;
  pthread_mutex_unlock(&in->plock);
  if (answer) {
    metrics_hist_observe(&in->append_hist, now - p->append_ns);
    if (status == 0) {
      atomic_fetch_add(&p->e->accepted, p->events);
      if (p->who) atomic_fetch_add(p->who->events, p->events);
      atomic_fetch_add(&in->bytes, p->bytes);
      httpd_respond(p->req, 202, NULL, NULL, 0, NULL, 0);
    } else {
      char msg[160];
      snprintf(msg, sizeof msg, "the log cannot take the event now (%s); retry",
               status == -ENOSPC ? "log full" : strerror(-status));
      reject(in, p->req, R_LOG, 503, msg, NULL, -1);
    }
    metrics_hist_observe(&in->request_hist, metrics_now_ns() - p->start_ns);
  }
  pthread_mutex_lock(&in->plock);
  if (answer) in->answering--;
  atomic_fetch_sub(&in->inflight, 1);
  bool last = in->stopped && !in->waiting && !in->answering;
  pthread_mutex_unlock(&in->plock);
  free(p);
  if (last) ingress_free(in);
}

/* Sets the broker's own extensions; fails when the TTL says the event looped. */
static int stamp(int32_t default_ttl, ce_event *ev, const char *now, ce_err *err) {
  int32_t ttl;
  int rc = ce_event_get_int(ev, "knativebrokerttl", &ttl);
  if (rc == -ENOENT) {
    rc = ce_event_set_int(ev, "knativebrokerttl", default_ttl, err);
  } else if (rc) {
    snprintf(err->attr, sizeof err->attr, "knativebrokerttl");
    snprintf(err->reason, sizeof err->reason, "must be an integer");
    return -EINVAL;
  } else if (ttl <= 0) {
    snprintf(err->attr, sizeof err->attr, "knativebrokerttl");
    snprintf(err->reason, sizeof err->reason,
             "TTL is %d: the event has passed through the broker too many times (a reply loop?)",
             ttl);
    return -ELOOP;
  }
  if (rc) return rc;
  return ce_event_set(ev, "knativearrivaltime", CE_TYPE_TIMESTAMP, now, strlen(now), err);
}

/* The request's W3C trace context (traceparent, and tracestate with it), as
 * the CloudEvents distributed tracing extension of each event that carries
 * none of its own, so that a trace goes on through the log to the triggers'
 * subscribers (which the dispatcher gives it to as HTTP headers again). An
 * invalid traceparent is ignored, as Trace Context says: it is not the
 * event's. */
static int trace_context(const ce_kv *hdrs, size_t n, ce_batch *batch, ce_err *err) {
  const ce_kv *tp = NULL, *ts = NULL;
  for (size_t i = 0; i < n; i++) {
    if (broker__header_is(&hdrs[i], "traceparent"))
      tp = &hdrs[i];
    else if (broker__header_is(&hdrs[i], "tracestate"))
      ts = &hdrs[i];
  }
  if (!tp) return 0;
  const char *p = tp->value, *s = ts ? ts->value : NULL;
  size_t pn = tp->value_len, sn = ts ? ts->value_len : 0;
  broker__trim(&p, &pn);
  if (!ce_valid_traceparent(p, pn)) return 0;
  if (s) broker__trim(&s, &sn);
  bool state = sn && ce_valid_tracestate(s, sn);
  for (size_t i = 0; i < batch->n; i++) {
    ce_event *ev = batch->ev[i];
    if (ce_event_get(ev, "traceparent")) continue;
    int rc = ce_event_set(ev, "traceparent", CE_TYPE_STRING, p, pn, err);
    if (!rc && state && !ce_event_get(ev, "tracestate"))
      rc = ce_event_set(ev, "tracestate", CE_TYPE_STRING, s, sn, err);
    if (rc) {
      if (batch->n > 1) err->index = (int)i;
      return rc;
    }
  }
  return 0;
}

int broker__ingress_checked(const ce_kv *hdrs, size_t n, const void *body, size_t body_len,
                            const ce_limits *lim, int32_t default_ttl, const char *now,
                            broker_batch *out, ce_err *err) {
  ce_batch batch;
  ce_batch_init(&batch);
  int rc = ce_http_decode(hdrs, n, body, body_len, lim, &batch, err);
  if (rc >= 0 && batch.n == 0) {
    rc = -EINVAL;
    snprintf(err->reason, sizeof err->reason, "the batch holds no event");
  }
  for (size_t i = 0; rc >= 0 && i < batch.n; i++)
    if ((rc = stamp(default_ttl, batch.ev[i], now, err)) && batch.n > 1) err->index = (int)i;
  if (rc >= 0) rc = trace_context(hdrs, n, &batch, err);
  /* Encode every event (Kafka binary mode) before appending any: all or
   * nothing. ce_http_decode validated each event, and stamp changed them only
   * through ce_event_set*: the encoder need not validate them again. */
  if (rc >= 0) rc = broker__batch_encode(out, batch.ev, batch.n, true, err);
  if (rc >= 0) rc = (int)batch.n;
  ce_batch_cleanup(&batch);
  return rc;
}

static unsigned status_for(int rc, enum reason *r) {
  switch (rc) {
  case -EMSGSIZE:
    *r = R_TOO_LARGE;
    return 413;
  case -E2BIG:
    *r = R_HEADERS;
    return 431;
  case -ENOTSUP:
    *r = R_MEDIA;
    return 415;
  case -ELOOP:
    *r = R_TTL;
    return 400;
  default:
    *r = R_INVALID;
    return 400;
  }
}

/* The fast lane's batch_end: commits what its requests appended. */
static void lane_flush(void *ctx) {
  broker_ingress *in = ctx;
  broker_log_flush(in->log);
}

/* The sender of a POST by its bearer token, or NULL once it is answered
 * 401 (RFC 6750's WWW-Authenticate, with invalid_token for a wrong one). */
static broker_sender *sender_of(broker_ingress *in, httpd_req *req) {
  const char *token = httpd_bearer(req);
  broker_sender *who = broker__sender_of(broker__senders_current(in->senders), token);
  if (who) return who;
  atomic_fetch_add(&in->rejected[R_UNAUTHORIZED], 1);
  const char *h[2] = {"WWW-Authenticate", "Bearer realm=\"outpost\""};
  if (token) h[1] = "Bearer realm=\"outpost\", error=\"invalid_token\"";
  httpd_respond_error(req, 401,
                      token ? "this bearer token is none of this broker's senders'"
                            : "this broker takes events only from its senders: send "
                              "Authorization: Bearer <your token>",
                      NULL, -1, h, 1);
  return NULL;
}

enum { FORBIDDEN_MAX = 600 };

/* Counts and answers 403: msg (FORBIDDEN_MAX bytes, n written) goes on
 * with the sender's items, each followed by star, and a ")". */
static void forbid(broker_ingress *in, httpd_req *req, char *msg, int n, char *const *items,
                   size_t count, const char *star, const char *attr, int index) {
  for (size_t t = 0; t < count && n > 0 && n < FORBIDDEN_MAX; t++)
    n += snprintf(msg + n, FORBIDDEN_MAX - (size_t)n, "%s %s%s", t ? "," : "", items[t], star);
  if (n > 0 && n < FORBIDDEN_MAX) snprintf(msg + n, FORBIDDEN_MAX - (size_t)n, ")");
  atomic_fetch_add(&in->rejected[R_FORBIDDEN], 1);
  httpd_respond_error(req, 403, msg, attr, index, NULL, 0);
}

/* Whether who may send to broker e; if not, answers 403 naming the brokers
 * it may send to. */
static bool broker_allowed(broker_ingress *in, httpd_req *req, const broker_sender *who,
                           const entry *e) {
  if (broker__sender_to(who, e->ns, e->name)) return true;
  char msg[FORBIDDEN_MAX];
  int n =
      snprintf(msg, sizeof msg, "sender %s may not send to broker %s/%s (its brokers:", who->name,
               e->ns, e->name);
  forbid(in, req, msg, n, who->to, who->n_to, "", NULL, -1);
  return false;
}

/* Whether who may send every event of recs; if not, answers 403 naming
 * the first it may not (its index when the request was a batch). */
static bool types_allowed(broker_ingress *in, httpd_req *req, const broker_sender *who,
                          const broker_batch *recs) {
  for (size_t i = 0; i < recs->n; i++) {
    const broker_record *r = &recs->recs[i];
    for (size_t k = 0; k < r->n_headers; k++) {
      const ce_kv *h = &r->headers[k];
      if (h->name_len != 7 || memcmp(h->name, "ce_type", 7) != 0) continue;
      if (broker__sender_allows(who, h->value, h->value_len)) break;
      char msg[FORBIDDEN_MAX];
      int n = snprintf(msg, sizeof msg,
                       "sender %s may not send events of type \"%.*s\" (its types:", who->name,
                       (int)(h->value_len > 200 ? 200 : h->value_len), h->value);
      const char *ct = httpd_header(req, "Content-Type");
      bool batch = ce_http_mode(ct, ct ? strlen(ct) : 0) == CE_MODE_BATCH;
      forbid(in, req, msg, n, who->types, who->n_types, "*", "type", batch ? (int)i : -1);
      return false;
    }
  }
  return true;
}

/* Decodes, stamps and appends the events of a POST from who (NULL without
 * senders). Returns true when the request now waits for the log
 * (on_durable answers it). */
static bool post_events(broker_ingress *in, httpd_req *req, entry *e, broker_sender *who,
                        uint64_t start) {
  size_t nh, body_len;
  const ce_kv *hdrs = httpd_headers(req, &nh);
  const char *body = httpd_body(req, &body_len);
  ce_err err = {.index = -1};
  enum reason r;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  char now[40];
  ce_timestamp_format(ts.tv_sec, (int32_t)ts.tv_nsec, now, sizeof now);
  /* One event in binary mode, the common case, goes straight into its
   * record; what the fast path declines takes the checked path, whose
   * answers (refusals included) are the ingress's. */
  broker_batch recs = {0};
  size_t events = 1;
  int rc = broker__ingress_fast(hdrs, nh, body, body_len, &in->opts.limits, in->opts.default_ttl,
                                now, &recs);
  if (rc) {
    rc = broker__ingress_checked(hdrs, nh, body, body_len, &in->opts.limits, in->opts.default_ttl,
                                 now, &recs, &err);
    events = rc > 0 ? (size_t)rc : 0;
  }
  uint64_t wait;
  if (rc == -ENOMEM) {
    reject(in, req, R_LOG, 503, "out of memory", NULL, -1);
  } else if (rc < 0) {
    unsigned status = status_for(rc, &r);
    reject(in, req, r, status, err.reason, err.attr, err.index);
  } else if (who && !types_allowed(in, req, who, &recs)) {
    rc = -EPERM;
  } else if (in->rate && (wait = rate_take(in, req, events, start))) {
    rate_limited(in, req, wait);
    rc = -EAGAIN;
  } else {
    pending *p = malloc(sizeof *p);
    if (p) {
      *p = (pending){NULL, NULL, false, in, req, e, who, events, body_len, start, metrics_now_ns()};
      /* Listed before the append: the log may report before it returns. */
      pthread_mutex_lock(&in->plock);
      p->next = in->waiting;
      if (in->waiting) in->waiting->prev = p;
      in->waiting = p;
      pthread_mutex_unlock(&in->plock);
      /* On the fast lane the commit waits for the end of its batch, on its
       * thread (lane_flush): no thread is woken for it. */
      rc = httpd_batched(req)
               ? broker_log_append_deferred(in->log, e->topic, recs.recs, recs.n, on_durable, p)
               : broker_log_append(in->log, e->topic, recs.recs, recs.n, on_durable, p);
      if (rc) {
        pthread_mutex_lock(&in->plock);
        unlist(in, p);
        pthread_mutex_unlock(&in->plock);
        free(p);
      }
    } else {
      rc = -ENOMEM;
    }
    if (rc) {
      char msg[160];
      snprintf(msg, sizeof msg, "the log cannot take the event now (%s); retry", strerror(-rc));
      reject(in, req, R_LOG, 503, msg, NULL, -1);
    }
  }
  broker_batch_cleanup(&recs);
  return rc >= 0;
}

static void respond_text(httpd_req *req, unsigned status, const char *ct, ce_buf *b) {
  httpd_respond(req, status, ct, b->data, b->len, NULL, 0);
}

/* {"status","tier","name","pid"} as every Outpost process answers, so that
 * `outpost run` can tell its own broker from another program on the port. */
static void serve_health(broker_ingress *in, httpd_req *req) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "status", atomic_load(&in->draining) ? "draining" : "ok");
  cJSON_AddStringToObject(o, "tier", "broker");
  cJSON_AddStringToObject(o, "name", "broker");
  cJSON_AddNumberToObject(o, "pid", (double)getpid());
  if (in->opts.kafka) cJSON_AddStringToObject(o, "kafka", in->opts.kafka);
  cJSON_AddStringToObject(o, "role", in->opts.role ? in->opts.role : "all");
  httpd_respond_json(req, 200, o);
}

/* The senders' counts and the file's reloads, with --senders-file. */
static void render_senders(broker_ingress *in, ce_buf *b) {
  const broker_senders *s = broker__senders_current(in->senders);
  char labels[96];
  metrics_family(b, "outpost_ingress_sender_events_total", "counter",
                 "Events accepted from each sender of --senders-file.");
  for (size_t i = 0; i < s->n; i++) {
    snprintf(labels, sizeof labels, "sender=\"%s\"", s->v[i].name);
    metrics_sample(b, "outpost_ingress_sender_events_total", labels, atomic_load(s->v[i].events));
  }
  uint64_t ok, failed;
  broker__senders_reloads(in->senders, &ok, &failed);
  metrics_family(b, "outpost_ingress_senders_reloads_total", "counter",
                 "Times --senders-file was read again after it changed: ok, or refused (the "
                 "senders before kept).");
  metrics_sample(b, "outpost_ingress_senders_reloads_total", "result=\"ok\"", ok);
  metrics_sample(b, "outpost_ingress_senders_reloads_total", "result=\"failed\"", failed);
}

static void render_metrics(broker_ingress *in, httpd_req *req) {
  ce_buf b;
  ce_buf_init(&b);
  char labels[256];
  metrics_family(&b, "outpost_ingress_events_accepted_total", "counter",
                 "Events the log made durable and the ingress answered 202 for.");
  pthread_rwlock_rdlock(&in->lock);
  for (entry *e = in->entries; e; e = e->next) {
    if (e->removed) continue;
    snprintf(labels, sizeof labels, "broker=\"%s/%s\"", e->ns, e->name);
    metrics_sample(&b, "outpost_ingress_events_accepted_total", labels, atomic_load(&e->accepted));
  }
  pthread_rwlock_unlock(&in->lock);
  metrics_family(&b, "outpost_ingress_requests_rejected_total", "counter",
                 "Requests refused, by reason.");
  for (int r = 0; r < R_COUNT; r++) {
    snprintf(labels, sizeof labels, "reason=\"%s\"", reason_names[r]);
    metrics_sample(&b, "outpost_ingress_requests_rejected_total", labels,
                   atomic_load(&in->rejected[r]));
  }
  if (in->senders) render_senders(in, &b);
  metrics_family(&b, "outpost_ingress_header_timeouts_total", "counter",
                 "Requests answered 408 and closed: their head had not come whole within "
                 "--header-timeout.");
  metrics_sample(&b, "outpost_ingress_header_timeouts_total", NULL,
                 httpd_header_timeouts(in->http));
  uint64_t past_max, past_client;
  httpd_refused(in->http, &past_max, &past_client);
  metrics_family(&b, "outpost_ingress_connections_refused_total", "counter",
                 "Connections closed as they came, nothing read or written, by the limit they "
                 "were past: --max-connections in all, --max-connections-per-client from one "
                 "address.");
  metrics_sample(&b, "outpost_ingress_connections_refused_total", "limit=\"max_connections\"",
                 past_max);
  metrics_sample(&b, "outpost_ingress_connections_refused_total", "limit=\"per_client\"",
                 past_client);
  uint64_t tls_ok, tls_failed;
  if (httpd_tls_reloads(in->http, &tls_ok, &tls_failed)) {
    metrics_family(&b, "outpost_ingress_tls_reloads_total", "counter",
                   "Times --tls-cert and --tls-key were read again after they changed, by "
                   "result (failed: the pair served before is still served).");
    metrics_sample(&b, "outpost_ingress_tls_reloads_total", "result=\"ok\"", tls_ok);
    metrics_sample(&b, "outpost_ingress_tls_reloads_total", "result=\"failed\"", tls_failed);
    metrics_family(&b, "outpost_ingress_plain_http_on_tls_total", "counter",
                   "Connections that sent a plain HTTP request to the HTTPS port: answered 400 "
                   "and closed.");
    metrics_sample(&b, "outpost_ingress_plain_http_on_tls_total", NULL,
                   httpd_plain_on_tls(in->http));
  }
  metrics_family(&b, "outpost_ingress_accepted_bytes_total", "counter",
                 "Body bytes of accepted requests.");
  metrics_sample(&b, "outpost_ingress_accepted_bytes_total", NULL, atomic_load(&in->bytes));
  metrics_family(&b, "outpost_ingress_inflight_requests", "gauge",
                 "Requests waiting for the log to make their events durable.");
  metrics_sample(&b, "outpost_ingress_inflight_requests", NULL, atomic_load(&in->inflight));
  if (in->opts.http.model == HTTPD_HYBRID_POOL) {
    unsigned poll, epoll;
    httpd_connections(in->http, &poll, &epoll);
    metrics_family(&b, "outpost_ingress_connections", "gauge",
                   "Open connections, by the pool serving them (--hybrid: the first "
                   "--poll-connections go to the poll pool).");
    metrics_sample(&b, "outpost_ingress_connections", "pool=\"poll\"", poll);
    metrics_sample(&b, "outpost_ingress_connections", "pool=\"epoll\"", epoll);
    if (in->opts.http.fast_lane)
      metrics_sample(&b, "outpost_ingress_connections", "pool=\"fast\"",
                     httpd_fast_connections(in->http));
  }
  metrics_family(&b, "outpost_ingress_request_duration_seconds", "histogram",
                 "From a whole request received to its answer.");
  metrics_hist_render(&b, "outpost_ingress_request_duration_seconds", NULL, &in->request_hist);
  metrics_family(&b, "outpost_ingress_log_append_duration_seconds", "histogram",
                 "From append to durable (includes waiting for the group commit).");
  metrics_hist_render(&b, "outpost_ingress_log_append_duration_seconds", NULL, &in->append_hist);
  broker_log_metrics(in->log, &b);
  pthread_rwlock_rdlock(&in->lock);
  for (size_t i = 0; i < in->n_mounts; i++)
    if (in->mounts[i].metrics) in->mounts[i].metrics(in->mounts[i].ctx, &b);
  pthread_rwlock_unlock(&in->lock);
  respond_text(req, 200, "text/plain; version=0.0.4", &b);
  ce_buf_cleanup(&b);
}

static void list_brokers(broker_ingress *in, httpd_req *req) {
  ce_buf b;
  ce_buf_init(&b);
  ce_buf_append_str(&b, "{\"brokers\":[");
  bool first = true;
  pthread_rwlock_rdlock(&in->lock);
  for (entry *e = in->entries; e; e = e->next) {
    if (e->removed) continue;
    char line[512];
    snprintf(line, sizeof line, "%s{\"namespace\":\"%s\",\"name\":\"%s\",\"topic\":\"%s\"}",
             first ? "" : ",", e->ns, e->name, e->topic);
    ce_buf_append_str(&b, line);
    first = false;
  }
  pthread_rwlock_unlock(&in->lock);
  ce_buf_append_str(&b, "]}\n");
  respond_text(req, 200, "application/json", &b);
  ce_buf_cleanup(&b);
}

/* Whether req may use the admin API; answers 401 when not. */
static bool authorized(broker_ingress *in, httpd_req *req) {
  if (!in->opts.admin_token) return true;
  if (httpd_same_secret(httpd_bearer(req), in->opts.admin_token)) return true;
  const char *www[] = {"WWW-Authenticate", "Bearer"};
  httpd_respond_error(req, 401, "the admin API needs the admin bearer token", NULL, -1, www, 1);
  return false;
}

/* /v1/brokers[/<ns>/<name>]: GET lists, PUT declares, DELETE removes. */
static void admin(broker_ingress *in, httpd_req *req, const char *rest) {
  const char *m = httpd_method(req);
  if (!authorized(in, req)) return;
  if (*rest == '\0') {
    if (strcmp(m, "GET") == 0) {
      list_brokers(in, req);
      return;
    }
    const char *allow[] = {"Allow", "GET"};
    httpd_respond_error(req, 405, "use GET to list brokers", NULL, -1, allow, 1);
    return;
  }
  char ns[64], name[64];
  const char *slash = strchr(rest + 1, '/');
  size_t nl = slash ? (size_t)(slash - rest - 1) : 0, ml = slash ? strlen(slash + 1) : 0;
  if (rest[0] != '/' || !slash || !res_valid_dns_label(rest + 1, nl) ||
      !res_valid_dns_label(slash + 1, ml)) {
    httpd_respond_error(req, 400,
                        "broker paths are /v1/brokers/<namespace>/<name>, each a DNS "
                        "label ([a-z0-9-], at most 63)",
                        NULL, -1, NULL, 0);
    return;
  }
  memcpy(ns, rest + 1, nl);
  ns[nl] = '\0';
  memcpy(name, slash + 1, ml);
  name[ml] = '\0';
  char msg[256];
  if (strcmp(m, "PUT") == 0) {
    int rc = declare(in, ns, name, NULL, true);
    if (rc) {
      snprintf(msg, sizeof msg, "the log cannot make the broker's topic (%s)", strerror(-rc));
      httpd_respond_error(req, rc == -ENOMEM ? 500 : 503, msg, NULL, -1, NULL, 0);
      return;
    }
    /* Declared only once it is kept: a broker that a restart would forget is
     * not answered 201. */
    if ((rc = save_brokers(in))) {
      broker_ingress_remove(in, ns, name);
      snprintf(msg, sizeof msg, "the broker cannot be kept in %s (%s): not declared",
               in->opts.brokers_state, strerror(-rc));
      httpd_respond_error(req, 503, msg, NULL, -1, NULL, 0);
      return;
    }
    httpd_respond(req, 201, NULL, NULL, 0, NULL, 0);
    return;
  }
  if (strcmp(m, "DELETE") == 0) {
    if (broker_ingress_remove(in, ns, name)) {
      httpd_respond_error(req, 404, "no such broker", NULL, -1, NULL, 0);
      return;
    }
    int rc = save_brokers(in);
    if (rc) {
      snprintf(msg, sizeof msg,
               "removed, but %s cannot be written (%s): the broker comes back at the next start",
               in->opts.brokers_state, strerror(-rc));
      httpd_respond_error(req, 500, msg, NULL, -1, NULL, 0);
      return;
    }
    httpd_respond(req, 204, NULL, NULL, 0, NULL, 0);
    return;
  }
  const char *allow[] = {"Allow", "PUT, DELETE"};
  httpd_respond_error(req, 405, "use PUT to declare a broker and DELETE to remove it", NULL, -1,
                      allow, 1);
}

/* Passes req to the component mounted on its path, if any. */
static bool mounted(broker_ingress *in, httpd_req *req, const char *path) {
  struct mount m = {0};
  pthread_rwlock_rdlock(&in->lock);
  for (size_t i = 0; i < in->n_mounts; i++) {
    size_t n = strlen(in->mounts[i].prefix);
    if (strncmp(path, in->mounts[i].prefix, n) == 0 && (path[n] == '\0' || path[n] == '/')) {
      m = in->mounts[i];
      path += n;
      break;
    }
  }
  pthread_rwlock_unlock(&in->lock);
  if (!m.fn) return false;
  if (authorized(in, req)) m.fn(m.ctx, req, path);
  return true;
}

int broker_ingress_mount(broker_ingress *in, const char *prefix, broker_ingress_route_fn fn,
                         broker_ingress_metrics_fn metrics, void *ctx) {
  int rc = 0;
  pthread_rwlock_wrlock(&in->lock);
  if (in->n_mounts == BROKER_INGRESS_MOUNTS)
    rc = -ENOSPC;
  else
    in->mounts[in->n_mounts++] = (struct mount){prefix, fn, metrics, ctx};
  pthread_rwlock_unlock(&in->lock);
  return rc;
}

int broker_ingress_topic(broker_ingress *in, const char *ns, const char *name, char *topic,
                         size_t len) {
  int rc = -ENOENT;
  pthread_rwlock_rdlock(&in->lock);
  entry *e = find(in, ns, strlen(ns), name, strlen(name));
  if (e) rc = snprintf(topic, len, "%s", e->topic) < (int)len ? 0 : -ENAMETOOLONG;
  pthread_rwlock_unlock(&in->lock);
  return rc;
}

static void handle(void *ctx, httpd_req *req) {
  broker_ingress *in = ctx;
  uint64_t start = metrics_now_ns();
  const char *path = httpd_path(req), *m = httpd_method(req), *why;
  unsigned limit = httpd_limit(req, &why);
  if (limit) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s (limits: %zu body bytes, %zu headers)", why,
             in->opts.http.max_body, in->opts.http.max_headers);
    reject(in, req, limit == 413 ? R_TOO_LARGE : R_HEADERS, limit, msg, NULL, -1);
    return;
  }
  if (strcmp(path, "/healthz") == 0) {
    serve_health(in, req);
    return;
  }
  if (strcmp(path, "/readyz") == 0) {
    if (atomic_load(&in->draining)) {
      httpd_respond(req, 503, "text/plain", "draining\n", 9, NULL, 0);
      return;
    }
    httpd_respond(req, 200, "text/plain", "ready\n", 6, NULL, 0);
    return;
  }
  if (strcmp(path, "/metrics") == 0) {
    render_metrics(in, req);
    return;
  }
  if (strncmp(path, "/v1/brokers", 11) == 0 && (path[11] == '\0' || path[11] == '/')) {
    admin(in, req, path + 11);
    return;
  }
  if (mounted(in, req, path)) return;
  if (in->opts.role && strcmp(in->opts.role, "dispatcher") == 0) {
    reject(in, req, R_UNKNOWN, 404,
           "this broker process runs --role dispatcher: POST events to an ingress", NULL, -1);
    return;
  }

  /* /<namespace>/<broker> */
  const char *slash = path[0] == '/' ? strchr(path + 1, '/') : NULL;
  entry *e = NULL;
  pthread_rwlock_rdlock(&in->lock);
  if (slash && !strchr(slash + 1, '/'))
    e = find(in, path + 1, (size_t)(slash - path - 1), slash + 1, strlen(slash + 1));
  pthread_rwlock_unlock(&in->lock);
  if (!e) {
    char msg[200];
    snprintf(msg, sizeof msg, "no broker at %.120s (brokers are declared, not implied)", path);
    reject(in, req, R_UNKNOWN, 404, msg, NULL, -1);
    return;
  }
  if (strcmp(m, "OPTIONS") == 0) {
    /* The CloudEvents webhook abuse-protection handshake. */
    const char *origin = httpd_header(req, "WebHook-Request-Origin");
    const char *h[] = {"Allow",
                       "POST, OPTIONS",
                       "WebHook-Allowed-Origin",
                       origin ? origin : "*",
                       "WebHook-Allowed-Rate",
                       in->allowed_rate};
    httpd_respond(req, 200, NULL, NULL, 0, h, 3);
    return;
  }
  if (strcmp(m, "POST") != 0) {
    reject(in, req, R_METHOD, 405, "send events with POST", NULL, -1);
    return;
  }
  broker_sender *who = NULL;
  if (in->senders) {
    broker__senders_check(in->senders, start);
    if (!(who = sender_of(in, req)) || !broker_allowed(in, req, who, e)) return;
  }
  if (atomic_load(&in->draining)) {
    reject(in, req, R_DRAINING, 503, "the broker is shutting down; retry", NULL, -1);
    return;
  }
  if (atomic_fetch_add(&in->inflight, 1) >= in->opts.max_inflight) {
    atomic_fetch_sub(&in->inflight, 1);
    reject(in, req, R_OVERLOADED, 429, "too many requests waiting for the log; retry", NULL, -1);
    return;
  }
  if (!post_events(in, req, e, who, start)) atomic_fetch_sub(&in->inflight, 1);
}

broker_ingress *broker_ingress_start(const broker_ingress_opts *opts, broker_log *log, char *errbuf,
                                     size_t errlen) {
  broker_ingress *in = calloc(1, sizeof *in);
  if (!in) {
    snprintf(errbuf, errlen, "out of memory");
    return NULL;
  }
  if (opts)
    in->opts = *opts;
  else
    broker_ingress_opts_init(&in->opts);
  /* The HTTP layer bounds the body by the same limit the codec enforces. */
  if (in->opts.limits.max_body) in->opts.http.max_body = in->opts.limits.max_body;
  if (in->opts.limits.max_headers) in->opts.http.max_headers = in->opts.limits.max_headers;
  snprintf(in->retry_after, sizeof in->retry_after, "%u", in->opts.retry_after_s);
  /* A burst of one second's worth by default. The webhook spec's rate is
   * requests a minute: a request is one event at least. */
  if (in->opts.client_rate && !in->opts.client_burst) in->opts.client_burst = in->opts.client_rate;
  if (in->opts.client_rate)
    snprintf(in->allowed_rate, sizeof in->allowed_rate, "%llu",
             (unsigned long long)in->opts.client_rate * 60);
  else
    snprintf(in->allowed_rate, sizeof in->allowed_rate, "*");
  if (in->opts.client_rate &&
      !(in->rate = broker__rate_new(in->opts.client_rate, in->opts.client_burst))) {
    snprintf(errbuf, errlen, "out of memory");
    free(in);
    return NULL;
  }
  if (in->opts.senders_file &&
      !(in->senders = broker__senders_open(in->opts.senders_file, errbuf, errlen))) {
    broker__rate_free(in->rate);
    free(in);
    return NULL;
  }
  in->log = log;
  pthread_rwlock_init(&in->lock, NULL);
  pthread_mutex_init(&in->plock, NULL);
  pthread_mutex_init(&in->save_mu, NULL);
  if (in->opts.lane_commits) in->opts.http.batch_end = lane_flush;
  in->http = httpd_start(&in->opts.http, handle, in, errbuf, errlen);
  if (!in->http) {
    broker__rate_free(in->rate);
    broker__senders_close(in->senders);
    pthread_rwlock_destroy(&in->lock);
    pthread_mutex_destroy(&in->plock);
    pthread_mutex_destroy(&in->save_mu);
    free(in);
    return NULL;
  }
  return in;
}

uint16_t broker_ingress_port(const broker_ingress *in) {
  return httpd_port(in->http);
}

static void ingress_free(broker_ingress *in) {
  for (entry *e = in->entries, *next; e; e = next) {
    next = e->next;
    free(e->ns), free(e->name), free(e->topic), free(e);
  }
  pthread_rwlock_destroy(&in->lock);
  pthread_mutex_destroy(&in->plock);
  pthread_mutex_destroy(&in->save_mu);
  broker__rate_free(in->rate);
  broker__senders_close(in->senders);
  free(in);
}

void broker_ingress_stop(broker_ingress *in) {
  if (!in) return;
  atomic_store(&in->draining, true);
  /* Suspended requests must be answered before the server stops. */
  for (unsigned i = 0; i < in->opts.drain_ms / 10 && atomic_load(&in->inflight) > 0; i++) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  /* Those the log still has not reported on are answered 503 now (the
   * events may yet be stored: the client retries, at least once). */
  pthread_mutex_lock(&in->plock);
  for (pending *p = in->waiting; p; p = p->next) {
    p->abandoned = true;
    reject(in, p->req, R_DRAINING, 503,
           "the broker is shutting down before the log confirmed the event; retry", NULL, -1);
  }
  /* Answers under way outside plock end before the server does. */
  while (in->answering) {
    pthread_mutex_unlock(&in->plock);
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&in->plock);
  }
  pthread_mutex_unlock(&in->plock);
  httpd_stop(in->http);
  pthread_mutex_lock(&in->plock);
  in->stopped = true;
  bool idle = !in->waiting && !in->answering;
  pthread_mutex_unlock(&in->plock);
  /* Otherwise the log's last late report frees it (see on_durable). */
  if (idle) ingress_free(in);
}
