/*
 * pool_event.c — the pool's CloudEvents (catalogue in posts/README.md):
 * built under the pool's lock, where the facts are, queued, and handed to
 * the callback after the lock is dropped, one emitter at a time so that
 * the callback sees them in the order they happened.
 */
#include "posts/pool_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SOURCE_FMT "/nodes/%s/pool"

static void evq_push(pool_evq *q, ce_event *ev) {
  if (q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 16;
    ce_event **n = realloc(q->ev, cap * sizeof *n);
    if (!n) { /* events are reports: losing one beats stopping the pool */
      ce_event_free(ev);
      return;
    }
    q->ev = n;
    q->cap = cap;
  }
  q->ev[q->n++] = ev;
}

void pool__evq_cleanup(pool_evq *q) {
  for (size_t i = 0; i < q->n; i++) ce_event_free(q->ev[i]);
  free(q->ev);
  memset(q, 0, sizeof *q);
}

/* The attributes every pool event has; NULL when out of memory. */
static ce_event *ev_base(pool *p, const char *type, const char *subject) {
  ce_event *ev = ce_event_new();
  char id[80], source[128], when[40];
  struct timespec ts;
  int rc = 0;
  if (!ev) return NULL;
  clock_gettime(CLOCK_REALTIME, &ts);
  ce_timestamp_format((int64_t)ts.tv_sec, (int32_t)ts.tv_nsec, when, sizeof when);
  snprintf(id, sizeof id, "%s-%" PRIu64, p->ev_prefix, ++p->ev_seq);
  snprintf(source, sizeof source, SOURCE_FMT, p->node);
  rc = rc ? rc : ce_event_set_str(ev, "specversion", "1.0", NULL);
  rc = rc ? rc : ce_event_set_str(ev, "id", id, NULL);
  rc = rc ? rc : ce_event_set_str(ev, "source", source, NULL);
  rc = rc ? rc : ce_event_set_str(ev, "type", type, NULL);
  rc = rc ? rc : ce_event_set_str(ev, "subject", subject, NULL);
  rc = rc ? rc : ce_event_set_str(ev, "time", when, NULL);
  rc = rc ? rc : ce_event_set_str(ev, "datacontenttype", "application/json", NULL);
  rc = rc ? rc : ce_event_set_str(ev, "node", p->node, NULL);
  if (rc < 0) {
    ce_event_free(ev);
    return NULL;
  }
  return ev;
}

/* Sets data to obj's JSON (obj is freed) and queues ev. */
static void ev_finish(pool *p, ce_event *ev, cJSON *obj) {
  char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
  cJSON_Delete(obj);
  if (!ev || !text || ce_event_set_data(ev, text, strlen(text)) < 0) {
    ce_event_free(ev);
    free(text);
    return;
  }
  free(text);
  evq_push(&p->evq, ev);
}

void pool__ev_env(pool *p, const char *type, const pool_rec *r, const char *extra,
                  const char *error) {
  const pool_env *e = &r->env;
  /* The name, not the runtime's id: it is known from the first event on
   * (a cold start is requested before the runtime gives an id), so one
   * environment's events share one subject and partition key. */
  const char *subject = e->name;
  ce_event *ev = ev_base(p, type, subject);
  char members[1024];
  cJSON *obj;
  snprintf(members, sizeof members, "{%s}", extra ? extra : "");
  obj = cJSON_Parse(members);
  if (!ev || !obj || ce_event_set_str(ev, "template", e->template_name, NULL) < 0 ||
      ce_event_set_str(ev, "partitionkey", subject, NULL) < 0 ||
      (e->tenant[0] && ce_event_set_str(ev, "tenant", e->tenant, NULL) < 0) ||
      (e->id[0] && !cJSON_AddStringToObject(obj, "id", e->id)) ||
      !cJSON_AddStringToObject(obj, "name", e->name) ||
      !cJSON_AddStringToObject(obj, "template", e->template_name) ||
      (e->tenant[0] && !cJSON_AddStringToObject(obj, "tenant", e->tenant)) ||
      (error && !cJSON_AddStringToObject(obj, "error", error))) {
    ce_event_free(ev);
    cJSON_Delete(obj);
    return;
  }
  ev_finish(p, ev, obj);
}

void pool__ev_scaled(pool *p, const pool_tpl *tpl, uint32_t old, const pool_predict_advice *a,
                     const char *bound) {
  ce_event *ev = ev_base(p, POOL_EV_SCALED, tpl->t->name);
  cJSON *obj = cJSON_CreateObject();
  if (!ev || !obj || ce_event_set_str(ev, "template", tpl->t->name, NULL) < 0 ||
      ce_event_set_str(ev, "partitionkey", tpl->t->name, NULL) < 0 ||
      !cJSON_AddStringToObject(obj, "template", tpl->t->name) ||
      !cJSON_AddNumberToObject(obj, "old", old) ||
      !cJSON_AddNumberToObject(obj, "new", tpl->target) ||
      !cJSON_AddStringToObject(obj, "why", pool_predict_why_name(a->why)) ||
      !cJSON_AddStringToObject(obj, "bound", bound) ||
      !cJSON_AddNumberToObject(obj, "advised", a->target) ||
      !cJSON_AddNumberToObject(obj, "min", tpl->t->pool_min) ||
      !cJSON_AddNumberToObject(obj, "max", tpl->t->pool_max) ||
      !cJSON_AddNumberToObject(obj, "rate_per_s", a->rate) ||
      !cJSON_AddNumberToObject(obj, "burst", a->burst) ||
      !cJSON_AddBoolToObject(obj, "histogram", a->histogram) ||
      !cJSON_AddNumberToObject(obj, "keepalive_ms", (double)a->keepalive_ms) ||
      !cJSON_AddNumberToObject(obj, "refill_ms", (double)pool__refill_ms(tpl))) {
    ce_event_free(ev);
    cJSON_Delete(obj);
    return;
  }
  ev_finish(p, ev, obj);
}

void pool__ev_recovered(pool *p, size_t warm, size_t claimed, size_t broken) {
  ce_event *ev = ev_base(p, POOL_EV_RECOVERED, p->node);
  cJSON *obj = cJSON_CreateObject();
  if (!ev || !obj || ce_event_set_str(ev, "partitionkey", p->node, NULL) < 0 ||
      !cJSON_AddStringToObject(obj, "namespace", p->ns) ||
      !cJSON_AddNumberToObject(obj, "warm", (double)warm) ||
      !cJSON_AddNumberToObject(obj, "claimed", (double)claimed) ||
      !cJSON_AddNumberToObject(obj, "broken", (double)broken)) {
    ce_event_free(ev);
    cJSON_Delete(obj);
    return;
  }
  ev_finish(p, ev, obj);
}

/* emit_mu is taken before the queue is, so batches leave in the order they
 * were taken, and p->mu is not held while the callback runs. A callback
 * that calls back into the pool (a claim, a release) reaches this again on
 * the same thread: it leaves its events to the loop below rather than wait
 * for emit_mu, which it already holds. */
void pool__flush(pool *p) {
  if (p->evq.n == 0) return;
  if (p->emitting && pthread_equal(p->emitter, pthread_self())) return;
  pthread_mutex_unlock(&p->mu);
  pthread_mutex_lock(&p->emit_mu);
  pthread_mutex_lock(&p->mu);
  p->emitting = true;
  p->emitter = pthread_self();
  while (p->evq.n) {
    pool_evq q = p->evq;
    memset(&p->evq, 0, sizeof p->evq);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < q.n; i++) {
      if (p->on_event)
        p->on_event(q.ev[i], p->opaque);
      else
        ce_event_free(q.ev[i]);
    }
    free(q.ev);
    pthread_mutex_lock(&p->mu);
  }
  p->emitting = false;
  pthread_mutex_unlock(&p->mu);
  pthread_mutex_unlock(&p->emit_mu);
  pthread_mutex_lock(&p->mu);
}
