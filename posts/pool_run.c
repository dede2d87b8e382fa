/*
 * pool_run.c — the pool's background thread and its recovery: each pass
 * reclaims idle claimed environments, removes broken ones, sets each
 * template's target from the predictor within min and max, and makes or
 * removes one environment towards it. One runtime call per pass, so that a
 * claim's kick or pool_free is never kept waiting behind a long batch.
 */
#include "posts/pool_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS   60000

/* ------------------------------------------------------------- recovery */

static pool_rec *recovered_rec(pool *p, const posts_env_info *info, const char *tpl_name) {
  pool_rec *r = calloc(1, sizeof *r);
  struct timespec ts;
  if (!r) return NULL;
  snprintf(r->env.id, sizeof r->env.id, "%s", info->id);
  snprintf(r->env.name, sizeof r->env.name, "%s", info->name);
  snprintf(r->env.template_name, sizeof r->env.template_name, "%s", tpl_name);
  snprintf(r->env.tenant, sizeof r->env.tenant, "%s", info->owner);
  r->env.recovered = true;
  r->env.state = info->owner[0] ? POOL_ENV_CLAIMED : POOL_ENV_WARM;
  /* Unclaimed and not running: made but never started (a crash between
   * create and start), or dead. Not worth offering. */
  r->broken = !info->owner[0] && info->state != POSTS_ENV_RUNNING;
  /* When the tenant last did something is not in the runtime: a full idle
   * timeout from now errs on the tenant's side. */
  r->last_active_ms = r->claimed_ms = pool__now(p);
  if (info->owner[0]) {
    clock_gettime(CLOCK_REALTIME, &ts);
    r->env.claimed_unix_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  }
  r->next = p->recs;
  p->recs = r;
  return r;
}

int pool__recover(pool *p, posts_err *err) {
  posts_label sel[] = {{POOL_LABEL_NODE, p->node}, {POOL_LABEL_TEMPLATE, NULL}};
  posts_env_infos infos = {0};
  size_t warm = 0, claimed = 0, broken = 0;
  int rc = posts_env_list(p->rt, p->ns, sel, 2, &infos, err);
  for (size_t i = 0; rc == 0 && i < infos.n; i++) {
    const posts_env_info *info = &infos.items[i];
    pool_rec *r = recovered_rec(p, info, posts_env_info_label(info, POOL_LABEL_TEMPLATE));
    if (!r) {
      rc = posts__err(err, -ENOMEM, 0, "out of memory");
      break;
    }
    broken += r->broken;
    claimed += r->env.state == POOL_ENV_CLAIMED;
    warm += r->env.state == POOL_ENV_WARM && !r->broken;
  }
  posts_env_infos_cleanup(&infos);
  if (rc == 0) pool__ev_recovered(p, warm, claimed, broken);
  return rc;
}

/* ---------------------------------------------------------------- steps */

/* Removes r (REMOVING, held by this thread) without the lock. 0 when it is
 * gone; on another error r goes back to back_to. */
static int remove_rec(pool *p, pool_rec *r, pool_env_state back_to, int64_t *took_ms,
                      posts_err *err) {
  char id[POSTS_ENV_ID_MAX];
  struct timespec a, b;
  int rc;
  r->env.state = POOL_ENV_REMOVING;
  memcpy(id, r->env.id, sizeof id);
  pthread_mutex_unlock(&p->mu);
  clock_gettime(CLOCK_MONOTONIC, &a);
  rc = posts_env_remove(p->rt, id, true, err);
  clock_gettime(CLOCK_MONOTONIC, &b);
  pthread_mutex_lock(&p->mu);
  *took_ms = (int64_t)(b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
  if (rc == -ENOENT) rc = 0;
  if (rc < 0) r->env.state = back_to;
  return rc;
}

/* Reclaims one claimed environment idle past its template's timeout.
 * True when it tried. */
static bool reclaim_idle(pool *p, int64_t now) {
  for (pool_rec *r = p->recs; r; r = r->next) {
    pool_tpl *tpl = pool__tpl_find(p, r->env.template_name, true);
    char extra[160];
    posts_err err = {0};
    int64_t idle = now - r->last_active_ms, took;
    if (r->env.state != POOL_ENV_CLAIMED || !tpl || idle < tpl->t->idle_timeout_ms) continue;
    snprintf(extra, sizeof extra, "\"idle_ms\":%" PRId64 ",\"idle_timeout_ms\":%" PRId64, idle,
             tpl->t->idle_timeout_ms);
    pool__ev_env(p, POOL_EV_IDLE, r, extra, NULL);
    if (remove_rec(p, r, POOL_ENV_CLAIMED, &took, &err) < 0) {
      pool__ev_env(p, POOL_EV_FAILED, r, "\"stage\":\"reclaim\"", err.msg);
      r->last_active_ms = now; /* try again after another timeout, not in a loop */
      return false;
    }
    snprintf(extra, sizeof extra,
             "\"reason\":\"idle\",\"idle_ms\":%" PRId64 ",\"remove_ms\":%" PRId64, idle, took);
    pool__ev_env(p, POOL_EV_RECLAIMED, r, extra, NULL);
    pool__rec_drop(p, r);
    return true;
  }
  return false;
}

int pool_env_gone(pool *p, const char *id) {
  pthread_mutex_lock(&p->mu);
  pool_rec *r = pool__rec_find(p, id);
  int rc = r ? 0 : -ENOENT;
  if (r && r->env.state == POOL_ENV_WARM) {
    r->broken = true;
  } else if (r && r->env.state == POOL_ENV_CLAIMED) {
    pool__ev_env(p, POOL_EV_RECLAIMED, r, "\"reason\":\"gone\"", NULL);
    pool__rec_drop(p, r);
  } else if (r) {
    rc = -EBUSY;
  }
  p->kicked = true;
  pthread_cond_signal(&p->wake);
  pool__flush(p);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

/* Removes one warm environment: a broken one, else an extra of a template
 * over its target. True when it removed one. */
static bool remove_warm(pool *p, pool_rec *r, const char *reason) {
  posts_err err = {0};
  char extra[96];
  int64_t took;
  if (remove_rec(p, r, POOL_ENV_WARM, &took, &err) < 0) {
    pool__ev_env(p, POOL_EV_FAILED, r, "\"stage\":\"remove\"", err.msg);
    return false;
  }
  snprintf(extra, sizeof extra, "\"reason\":\"%s\",\"remove_ms\":%" PRId64, reason, took);
  pool__ev_env(p, POOL_EV_RECLAIMED, r, extra, NULL);
  pool__rec_drop(p, r);
  return true;
}

/* Sets tpl's target from the predictor, within min and max (0 once
 * removed), and announces a change. */
static void retarget(pool *p, pool_tpl *tpl, int64_t now) {
  pool_predict_advice a = pool_predict_target(&tpl->pred, now, pool__refill_ms(tpl));
  uint32_t target = a.target, old = tpl->target;
  const char *bound = "none";
  if (tpl->removed) {
    target = 0;
    bound = "removed";
  } else if (target < tpl->t->pool_min) {
    target = tpl->t->pool_min;
    bound = "min";
  } else if (target > tpl->t->pool_max) {
    target = tpl->t->pool_max;
    bound = "max";
  }
  tpl->why = a.why;
  if (tpl->scaled_once && target == old) return;
  tpl->target = target;
  tpl->scaled_once = true;
  pool__ev_scaled(p, tpl, old, &a, bound);
}

/* A refill on a builder thread of its own. */
typedef struct build_job {
  pool *p;
  pool_tpl *tpl; /* kept: its STARTING record keeps drop_drained off it */
  pool_rec *r;   /* kept: nothing else touches a STARTING record of the pool */
  char name[64];
} build_job;

/* Makes r's environment (without the lock) and records how it went (with
 * it): the end of one refill. */
static void build(pool *p, pool_tpl *tpl, pool_rec *r, const char *name) {
  char id[POSTS_ENV_ID_MAX] = "", extra[96];
  posts_err err = {0};
  int64_t took = 0;
  pthread_mutex_unlock(&p->mu);
  int rc = pool__make(p, tpl->t, name, id, &took, &err);
  pthread_mutex_lock(&p->mu);
  if (rc < 0) {
    pool__ev_env(p, POOL_EV_FAILED, r, "\"stage\":\"refill\"", err.msg);
    pool__rec_drop(p, r);
    /* A runtime that refuses (image gone, disk full) is not hammered. */
    tpl->backoff_ms = tpl->backoff_ms ? tpl->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (tpl->backoff_ms > BACKOFF_MAX_MS) tpl->backoff_ms = BACKOFF_MAX_MS;
    tpl->retry_at_ms = pool__now(p) + tpl->backoff_ms;
    return;
  }
  tpl->backoff_ms = 0;
  memcpy(r->env.id, id, sizeof id);
  r->env.state = POOL_ENV_WARM;
  pool__refill_add(tpl, took);
  snprintf(extra, sizeof extra, "\"for\":\"pool\",\"duration_ms\":%" PRId64, took);
  pool__ev_env(p, POOL_EV_READY, r, extra, NULL);
}

static void *build_run(void *arg) {
  build_job *job = arg;
  pool *p = job->p;
  pthread_mutex_lock(&p->mu);
  build(p, job->tpl, job->r, job->name);
  p->building--;
  p->kicked = true; /* the pool thread flushes the events and looks again */
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  free(job);
  return NULL;
}

/* Starts making one warm environment of tpl, on a builder thread when one
 * is free (so that a pool short of several makes them side by side), else
 * not at all: false, and the pool waits for a builder to finish. */
static bool refill(pool *p, pool_tpl *tpl) {
  if (p->building >= POOL_BUILDERS) return false;
  pool_rec *r = pool__rec_new(p, tpl->t->name, POOL_ENV_STARTING, NULL);
  if (!r) return false;
  pool__ev_env(p, POOL_EV_REQUESTED, r, "\"warm\":true,\"reason\":\"refill\"", NULL);
  build_job *job = malloc(sizeof *job);
  pthread_t th;
  pthread_attr_t attr;
  bool started = false;
  if (job && pthread_attr_init(&attr) == 0) {
    *job = (build_job){p, tpl, r, ""};
    memcpy(job->name, r->env.name, sizeof job->name);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    started = pthread_create(&th, &attr, build_run, job) == 0;
    pthread_attr_destroy(&attr);
  }
  if (started) {
    p->building++;
    return true;
  }
  /* No thread to be had: on this one, as before builders. */
  char name[64];
  memcpy(name, r->env.name, sizeof name);
  free(job);
  build(p, tpl, r, name);
  return true;
}

/* Warm and being-made-for-the-pool environments of tpl; *oldest the
 * warm one that has waited longest. */
static uint32_t count_warm(pool *p, const pool_tpl *tpl, uint32_t *starting, pool_rec **oldest) {
  uint32_t warm = 0;
  *starting = 0;
  *oldest = NULL;
  for (pool_rec *r = p->recs; r; r = r->next) {
    if (strcmp(r->env.template_name, tpl->t->name) != 0) continue;
    if (r->env.state == POOL_ENV_WARM && !r->broken) {
      warm++;
      *oldest = r;
    }
    *starting += r->env.state == POOL_ENV_STARTING && !r->env.tenant[0];
  }
  return warm;
}

/* One step towards the targets: the template furthest below its target
 * gets an environment, else one over it loses one. True when it acted. */
static bool adjust(pool *p, int64_t now) {
  pool_tpl *neediest = NULL;
  int64_t need = 0;
  for (pool_tpl *tpl = p->tpls; tpl; tpl = tpl->next) {
    uint32_t starting;
    pool_rec *oldest;
    int64_t warm = count_warm(p, tpl, &starting, &oldest);
    int64_t gap = (int64_t)tpl->target - warm - starting;
    if (warm > tpl->target && oldest)
      return remove_warm(p, oldest, tpl->removed ? "template_removed" : "scale_down");
    if (gap > need && now >= tpl->retry_at_ms) {
      need = gap;
      neediest = tpl;
    }
  }
  return neediest && refill(p, neediest);
}

/* Frees removed templates that have no environment left. */
static void drop_drained(pool *p) {
  for (pool_tpl **pp = &p->tpls; *pp;) {
    pool_tpl *tpl = *pp;
    bool used = false;
    for (pool_rec *r = p->recs; r && !used; r = r->next)
      used = strcmp(r->env.template_name, tpl->t->name) == 0;
    if (tpl->removed && !used) {
      *pp = tpl->next;
      pool_template_free(tpl->t);
      free(tpl);
    } else {
      pp = &tpl->next;
    }
  }
}

static bool step(pool *p) {
  int64_t now = pool__now(p);
  if (reclaim_idle(p, now)) return true;
  for (pool_rec *r = p->recs; r; r = r->next)
    if (r->broken && r->env.state == POOL_ENV_WARM && pool__tpl_find(p, r->env.template_name, true))
      return remove_warm(p, r, "broken");
  for (pool_tpl *tpl = p->tpls; tpl; tpl = tpl->next) retarget(p, tpl, now);
  if (adjust(p, now)) return true;
  drop_drained(p);
  return false;
}

/* Sleeps a tick, or less when kicked or stopped. */
static void wait_tick(pool *p) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += p->tick_ms / 1000;
  ts.tv_nsec += (p->tick_ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  while (!p->kicked && !p->stopping)
    if (pthread_cond_timedwait(&p->wake, &p->mu, &ts) == ETIMEDOUT) break;
}

void *pool__run(void *arg) {
  pool *p = arg;
  pthread_mutex_lock(&p->mu);
  while (!p->stopping) {
    p->kicked = false;
    bool busy = step(p);
    pool__flush(p);
    if (!busy) wait_tick(p);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}
