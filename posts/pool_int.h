/*
 * pool_int.h — what the pool's files share and nobody else: the pool, its
 * templates and environment records, and the event queue. pool.c holds the
 * public calls, pool_run.c the background thread and recovery,
 * pool_event.c the CloudEvents.
 *
 * Locking: p->mu guards everything below but the fields marked otherwise.
 * A record in a transient state (STARTING, CLAIMING, REMOVING) belongs to
 * the thread that put it there, which alone may change or drop it; other
 * threads only read it. That is what lets a thread drop p->mu while it
 * calls the runtime about the record. Templates are freed only by the
 * background thread, once removed and without records.
 */
#ifndef OUTPOST_POSTS_POOL_INT_H
#define OUTPOST_POSTS_POOL_INT_H

#include <pthread.h>

#include "posts/pool.h"
#include "posts/runtime_int.h" /* posts__err */

#define POOL_REFILL_SAMPLES 16
#define POOL_REFILL_GUESS   1000 /* ms, before anything was measured */
#define POOL_BUILDERS       3    /* refills made side by side, each on a thread of its own */

typedef struct pool_tpl {
  pool_template *t;
  pool_predict pred;
  bool removed;
  bool scaled_once; /* a first target was announced */
  uint32_t target;
  pool_predict_why why;
  int64_t refill[POOL_REFILL_SAMPLES]; /* last create+start durations, ms */
  size_t n_refill, next_refill;
  int64_t retry_at_ms; /* after a failed refill, no new one before this */
  int64_t backoff_ms;
  struct pool_tpl *next;
} pool_tpl;

typedef struct pool_rec {
  pool_env env;           /* what pool_list shows (idle_ms filled on copy) */
  int64_t last_active_ms; /* pool clock */
  int64_t claimed_ms;     /* pool clock */
  bool broken;            /* found not running and unclaimed: to remove */
  struct pool_rec *next;
} pool_rec;

typedef struct pool_evq {
  ce_event **ev;
  size_t n, cap;
} pool_evq;

struct pool {
  posts_runtime *rt;
  char node[64], ns[64];
  pool_clock_fn clock;
  void *clock_opaque;
  int64_t tick_ms;
  pool_predict_opts pred_opts;
  posts_label *labels; /* the pool's three, then the caller's; owned */
  size_t n_labels;
  pool_event_fn on_event;
  void *opaque;

  pthread_mutex_t mu;
  pthread_cond_t wake; /* the background thread: work to do, or stop */
  pthread_t thread;
  bool stopping;
  bool kicked;       /* work came: the thread passes again before it sleeps */
  unsigned building; /* refills under way on builder threads (at most POOL_BUILDERS);
                        pool_free waits for them on wake */
  pool_tpl *tpls;
  pool_rec *recs;
  pool_evq evq;            /* built under mu, emitted by pool__flush */
  pthread_mutex_t emit_mu; /* serialises emission, so events keep their order */
  bool emitting;           /* a thread is in the callback loop of pool__flush... */
  pthread_t emitter;       /* ...this one */
  uint64_t rng;
  char ev_prefix[40]; /* event ids: <prefix>-<seq>, unique across pools */
  uint64_t ev_seq;
};

/* --- pool.c */
int64_t pool__now(pool *p);
pool_tpl *pool__tpl_find(pool *p, const char *name, bool removed_too);
pool_rec *pool__rec_find(pool *p, const char *id);
pool_rec *pool__rec_new(pool *p, const char *tpl_name, pool_env_state state, const char *tenant);
void pool__rec_drop(pool *p, pool_rec *r);
void pool__refill_add(pool_tpl *tpl, int64_t ms);
int64_t pool__refill_ms(const pool_tpl *tpl);
/* Creates and starts an environment of t named name, without p->mu;
 * writes its id into id[POSTS_ENV_ID_MAX], the time it took into *took_ms.
 * On error nothing is left in the runtime. */
int pool__make(pool *p, const pool_template *t, const char *name, char *id, int64_t *took_ms,
               posts_err *err);

/* --- pool_run.c */
int pool__recover(pool *p, posts_err *err);
void *pool__run(void *arg);

/* --- pool_event.c: each queues an event (under p->mu); pool__flush, called
 * with p->mu held, drops it, emits the queue and takes it again. */
/* extra: more members of data, as JSON text without braces (numbers and
 * fixed words only: it is not escaped); error: a message, or NULL. */
void pool__ev_env(pool *p, const char *type, const pool_rec *r, const char *extra,
                  const char *error);
void pool__ev_scaled(pool *p, const pool_tpl *tpl, uint32_t old, const pool_predict_advice *a,
                     const char *bound);
void pool__ev_recovered(pool *p, size_t warm, size_t claimed, size_t broken);
void pool__flush(pool *p);
void pool__evq_cleanup(pool_evq *q);

#endif
