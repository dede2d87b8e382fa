/*
 * post_pub.c — a post's event publisher: a bounded queue of CloudEvents and
 * one thread that POSTs them to the broker's ingress in binary mode, in
 * order, one at a time (a post emits tens of events a second at most, and
 * order per environment matters more than throughput). A 429, a 5xx or a
 * transport error is retried with backoff (Retry-After honoured) for as long
 * as the post runs, and so are 401 and 403 (the ingress's senders, which an
 * operator fixes: --ingress-token); another 4xx means the event itself is
 * refused, so it is dropped and counted. A full queue drops the new event
 * and counts it: publishing must never stall the pool or a request.
 */
#include "posts/post_int.h"

#include "core/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct post_pub {
  post *p;
  char *url;  /* NULL: events are counted and freed */
  char *auth; /* "Bearer <--ingress-token>", or NULL */
  pthread_t thread;
  bool has_thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stopping;
  int64_t stop_by_ms; /* flush deadline once stopping */
  ce_event **q;       /* ring of cap */
  size_t head, n, cap;
  _Atomic uint64_t published, retries, dropped_full, rejected, no_broker;
};

/* Waits up to ms, or less when stopping past the flush deadline. */
static void pub_sleep(post_pub *pub, int64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&pub->mu);
  if (!pub->stopping) pthread_cond_timedwait(&pub->cv, &pub->mu, &ts);
  pthread_mutex_unlock(&pub->mu);
}

/* One attempt: 0 delivered or refused for good, else the delay before the
 * next attempt. */
static int64_t pub_send(post_pub *pub, const ce_event *ev, int64_t backoff) {
  ce_headers hdrs;
  ce_buf body;
  ce_headers_init(&hdrs);
  ce_buf_init(&body);
  ce_err err;
  memset(&err, 0, sizeof err);
  int64_t again = 0;
  if (ce_http_encode(ev, CE_MODE_BINARY, &hdrs, &body, &err) < 0) {
    atomic_fetch_add(&pub->rejected, 1);
    post_log(pub->p, "event %s cannot be encoded: %s", ce_event_get_str(ev, "id"), err.reason);
    goto done;
  }
  post_answer a;
  int rc = pub->auth ? ce_headers_add(&hdrs, "Authorization", 13, pub->auth, strlen(pub->auth)) : 0;
  if (rc) {
    again = backoff; /* no memory: try again */
    goto done;
  }
  rc = post_call(pub->p, "POST", pub->url, hdrs.items, hdrs.n, body.data, body.len, 10000, &a);
  if (!rc && a.status >= 200 && a.status < 300) {
    atomic_fetch_add(&pub->published, 1);
  } else if (!rc && a.status != 429 && a.status != 401 && a.status != 403 && a.status < 500) {
    atomic_fetch_add(&pub->rejected, 1);
    post_log(pub->p, "broker refused %s (%ld): %.200s", ce_event_get_str(ev, "type"), a.status,
             a.body.data);
  } else {
    atomic_fetch_add(&pub->retries, 1);
    again = a.retry_after_ms > backoff ? a.retry_after_ms : backoff;
    if (rc && backoff == 100) /* the first of a run of failures */
      post_log(pub->p, "cannot reach the broker at %s (%s); %s kept, retrying", pub->url,
               a.why[0] ? a.why : strerror(-rc), ce_event_get_str(ev, "type"));
    if (!rc && (a.status == 401 || a.status == 403) && backoff == 100)
      post_log(pub->p, "broker refused %s (%ld): %.200s; kept, retrying (--ingress-token?)",
               ce_event_get_str(ev, "type"), a.status, a.body.data);
  }
  post_answer_cleanup(&a);
done:
  ce_headers_cleanup(&hdrs);
  ce_buf_cleanup(&body);
  return again;
}

static void *pub_run(void *arg) {
  post_pub *pub = arg;
  int64_t backoff = 100;
  for (;;) {
    pthread_mutex_lock(&pub->mu);
    while (!pub->n && !pub->stopping) pthread_cond_wait(&pub->cv, &pub->mu);
    bool give_up = pub->stopping && (!pub->n || post_now_ms() > pub->stop_by_ms);
    ce_event *ev = give_up ? NULL : pub->q[pub->head];
    pthread_mutex_unlock(&pub->mu);
    if (give_up) break;
    int64_t again = pub_send(pub, ev, backoff);
    if (again) {
      pthread_mutex_lock(&pub->mu);
      bool stopping = pub->stopping;
      pthread_mutex_unlock(&pub->mu);
      if (stopping) break; /* the broker is down: no point in waiting out the flush */
      if (backoff == 100) post_log(pub->p, "broker unavailable: retrying with backoff");
      pub_sleep(pub, again > 30000 ? 30000 : again);
      backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
      continue;
    }
    backoff = 100;
    pthread_mutex_lock(&pub->mu);
    pub->head = (pub->head + 1) % pub->cap;
    pub->n--;
    pthread_mutex_unlock(&pub->mu);
    ce_event_free(ev);
  }
  return NULL;
}

post_pub *post_pub_new(post *p, const char *url, size_t max_queue) {
  post_pub *pub = calloc(1, sizeof *pub);
  if (!pub) return NULL;
  pub->p = p;
  pub->cap = max_queue;
  pthread_mutex_init(&pub->mu, NULL);
  pthread_cond_init(&pub->cv, NULL);
  if (!(pub->q = calloc(max_queue, sizeof *pub->q))) goto fail;
  if (url && !(pub->url = strdup(url))) goto fail;
  const char *token = p->cfg.ingress_token;
  if (url && token && !(pub->auth = httpc_bearer(token))) goto fail;
  if (pub->url && pthread_create(&pub->thread, NULL, pub_run, pub)) goto fail;
  pub->has_thread = pub->url != NULL;
  return pub;
fail:
  post_pub_free(pub);
  return NULL;
}

void post_pub_push(post_pub *pub, ce_event *ev) {
  if (!pub->url) {
    atomic_fetch_add(&pub->no_broker, 1);
    ce_event_free(ev);
    return;
  }
  pthread_mutex_lock(&pub->mu);
  if (pub->n == pub->cap || pub->stopping) {
    pthread_mutex_unlock(&pub->mu);
    atomic_fetch_add(&pub->dropped_full, 1);
    ce_event_free(ev);
    return;
  }
  pub->q[(pub->head + pub->n) % pub->cap] = ev;
  pub->n++;
  pthread_cond_signal(&pub->cv);
  pthread_mutex_unlock(&pub->mu);
}

void post_pub_free(post_pub *pub) {
  if (!pub) return;
  if (pub->has_thread) {
    pthread_mutex_lock(&pub->mu);
    pub->stopping = true;
    pub->stop_by_ms = post_now_ms() + 2000;
    pthread_cond_broadcast(&pub->cv);
    pthread_mutex_unlock(&pub->mu);
    pthread_join(pub->thread, NULL);
  }
  for (size_t i = 0; i < pub->n; i++) ce_event_free(pub->q[(pub->head + i) % pub->cap]);
  if (pub->n) post_log(pub->p, "%zu events not published at stop", pub->n);
  free(pub->q);
  free(pub->url);
  free(pub->auth);
  pthread_mutex_destroy(&pub->mu);
  pthread_cond_destroy(&pub->cv);
  free(pub);
}

void post_pub_metrics(post_pub *pub, ce_buf *out) {
  static const char *name = "outpost_post_events_published_total";
  metrics_family(out, name, "counter", "events for the broker, by outcome");
  metrics_sample(out, name, "result=\"published\"", atomic_load(&pub->published));
  metrics_sample(out, name, "result=\"rejected\"", atomic_load(&pub->rejected));
  metrics_sample(out, name, "result=\"dropped_full\"", atomic_load(&pub->dropped_full));
  metrics_sample(out, name, "result=\"no_broker\"", atomic_load(&pub->no_broker));
  metrics_family(out, "outpost_post_publish_retries_total", "counter",
                 "attempts to publish that the broker did not take (retried)");
  metrics_sample(out, "outpost_post_publish_retries_total", NULL, atomic_load(&pub->retries));
  pthread_mutex_lock(&pub->mu);
  uint64_t queued = pub->n;
  pthread_mutex_unlock(&pub->mu);
  metrics_family(out, "outpost_post_publish_queue", "gauge", "events waiting to be published");
  metrics_sample(out, "outpost_post_publish_queue", NULL, queued);
}
