/*
 * pool.h — the warm pool of one node: per lab template, environments made
 * ahead of demand so that a claim takes one in milliseconds; a cold start
 * (create and start now, with progress reported) when none is warm; idle
 * claimed environments reclaimed; warm ones scaled to zero when the
 * template has no demand. The node post owns one pool; the Labs REST API
 * claims, touches and releases through it.
 *
 * How many environments are kept warm: per template, the predictor's advice
 * (posts/predict.h, fed every claim and the measured refill time, the
 * median create+start duration of the last environments) bounded by the
 * template's pool min and max. A background thread keeps each template at
 * its target, creating and removing one environment at a time, and
 * reclaims claimed environments idle past the template's idleTimeout (idle:
 * no pool_touch and no claim since).
 *
 * Nothing lives only in memory: every environment carries the labels
 * outpost.dev/node, outpost.dev/template and outpost.dev/state (warm, at
 * creation), and a claim records its tenant as the environment's owner in
 * the runtime (posts_env_claim). A new pool on the same node and namespace
 * lists the runtime and rebuilds its warm and claimed sets, so a restarted
 * post loses nothing; environments keep running while no pool exists. What
 * is lost is soft state: the predictor's history, the measured refill time
 * and last-activity times (a recovered claimed environment is given a full
 * idle timeout from the restart).
 *
 * An environment is never handed to a second tenant: a released or
 * reclaimed environment is removed, not reused.
 *
 * Every step emits a CloudEvent (posts/README.md has the catalogue), built
 * by the pool and handed to the event callback, which owns it.
 *
 * Thread rules: every function but pool_free may be called from any thread
 * at once. The pool never holds its lock while it calls the runtime or the
 * callback. The callback runs on the thread that made the step (the
 * background thread, or a caller of pool_claim, pool_release...), one call
 * at a time and in the order the steps happened; it may call any pool
 * function except pool_free, and should return quickly (queue, publish
 * asynchronously). pool_free must not race any other call.
 *
 * Errors are negative errno values; a posts_err, when given, says why in
 * words (the runtime's message when the runtime failed).
 */
#ifndef OUTPOST_POSTS_POOL_H
#define OUTPOST_POSTS_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ce.h"
#include "posts/predict.h"
#include "posts/runtime.h"
#include "posts/template.h"

typedef struct pool pool;

/* The labels the pool puts on its environments. */
#define POOL_LABEL_NODE     "outpost.dev/node"
#define POOL_LABEL_TEMPLATE "outpost.dev/template"
#define POOL_LABEL_STATE    "outpost.dev/state"

/* Event types (posts/README.md). */
#define POOL_EV_REQUESTED "dev.outpost.environment.requested"
#define POOL_EV_READY     "dev.outpost.environment.ready"
#define POOL_EV_CLAIMED   "dev.outpost.environment.claimed"
#define POOL_EV_IDLE      "dev.outpost.environment.idle"
#define POOL_EV_RECLAIMED "dev.outpost.environment.reclaimed"
#define POOL_EV_RELEASED  "dev.outpost.environment.released"
#define POOL_EV_FAILED    "dev.outpost.environment.failed"
#define POOL_EV_SCALED    "dev.outpost.pool.scaled"
#define POOL_EV_RECOVERED "dev.outpost.pool.recovered"

/* Receives each event; ev is the callback's to free (ce_event_free). */
typedef void (*pool_event_fn)(ce_event *ev, void *opaque);

/* Monotonic milliseconds (any origin). */
typedef int64_t (*pool_clock_fn)(void *opaque);

typedef struct pool_opts {
  const char *node;    /* this node: a DNS label ([a-z0-9-], at most 63); required */
  const char *ns;      /* the runtime namespace of the pool's environments (a DNS
                          label); required. One pool per node and namespace. */
  pool_clock_fn clock; /* NULL: CLOCK_MONOTONIC. Drives the predictor and idle
                          times; tests may pass their own. */
  void *clock_opaque;
  int64_t tick_ms;                  /* how often the background thread looks (default 500) */
  const pool_predict_opts *predict; /* NULL: the predictor's defaults */
  const posts_label *labels;        /* extra labels on every environment (copied); keys
                                       must not be the pool's own */
  size_t n_labels;
} pool_opts;

/* Whether s can name the pool's node: a Kubernetes node name (a DNS
 * subdomain: ip-10-0-1-7.ec2.internal) that fits the label value it becomes
 * (63 bytes). pool_new refuses others; `outpost post` and `outpost run`
 * check --node with it. */
bool pool_valid_node(const char *s);

/* Makes a pool over rt (not owned: it must outlive the pool), rebuilds its
 * warm and claimed sets from the environments rt already holds in opts->ns
 * with this node's label, and starts the background thread. Events (the
 * first: dev.outpost.pool.recovered) go to on_event with opaque; on_event
 * may be NULL. Returns NULL on error with err filled (-EINVAL: bad options;
 * the runtime's error when listing failed; -ENOMEM). */
pool *pool_new(posts_runtime *rt, const pool_opts *opts, pool_event_fn on_event, void *opaque,
               posts_err *err);

/* Stops the background thread (waiting for the runtime call it may be in)
 * and frees the pool. Environments are left running, for the next pool to
 * recover. NULL does nothing. */
void pool_free(pool *p);

/* Adds a template. On success the pool owns t (freed by pool_free or when
 * the template is removed and drained); on error the caller keeps it.
 * Recovered environments of this template join its pool. -EEXIST: a
 * template of that name is already in the pool. */
int pool_template_add(pool *p, pool_template *t, posts_err *err);

/* Removes a template: claims of it are refused from now on, its warm
 * environments are removed by the background thread, and claimed ones live
 * on until released or reclaimed. -ENOENT: no such template. */
int pool_template_remove(pool *p, const char *name);

/* What a successful pool_claim gives. */
typedef struct pool_claim_info {
  char id[POSTS_ENV_ID_MAX]; /* the environment: pass to pool_release, pool_touch,
                                posts_env_exec */
  char name[64];             /* its name in the runtime namespace */
  bool warm;                 /* taken from the warm pool (else a cold start) */
  int64_t elapsed_us;        /* how long the claim took */
} pool_claim_info;

/* Gives tenant ([a-z0-9.-], at most 63, alphanumeric at both ends) an
 * environment of template: a warm one when there is one, else one created
 * and started now (blocking for that long: seconds), with requested, ready
 * and claimed events as it goes. Returns 0 with *out filled, or
 *   -ENOENT  no such template (or it is being removed)
 *   -EINVAL  a bad tenant
 *   the runtime's errors for a cold start that failed. */
int pool_claim(pool *p, const char *template_name, const char *tenant, pool_claim_info *out,
               posts_err *err);

/* The tenant gives id back: it is removed (never reused) and a released
 * event emitted. Blocks for the removal. -ENOENT: not a claimed
 * environment of this pool; -EBUSY: it is being claimed or removed; the
 * runtime's errors (the environment then stays claimed). */
int pool_release(pool *p, const char *id, posts_err *err);

/* Activity seen in id (by the API or the detector): its idle time starts
 * again. -ENOENT: not a claimed environment of this pool. */
int pool_touch(pool *p, const char *id);

/* The runtime says environment id is gone, or no longer running, outside
 * the pool (a pod deleted or evicted on Kubernetes: the node post watches
 * them). A warm one is marked broken (removed and replaced by the pool's
 * thread); a claimed one is forgotten, with a `reclaimed` event of reason
 * "gone". 0, or -ENOENT when the pool has no such environment, or -EBUSY
 * when it is being made, claimed or removed (the pool's own call will see
 * it). */
int pool_env_gone(pool *p, const char *id);

typedef enum pool_env_state {
  POOL_ENV_STARTING, /* being created and started */
  POOL_ENV_WARM,     /* running, waiting for a claim */
  POOL_ENV_CLAIMING, /* being handed to a tenant */
  POOL_ENV_CLAIMED,
  POOL_ENV_REMOVING,
} pool_env_state;

/* "starting", "warm", "claiming", "claimed", "removing". */
const char *pool_env_state_name(pool_env_state state);

/* One environment of the pool, as pool_list and pool_env_get see it. */
typedef struct pool_env {
  char id[POSTS_ENV_ID_MAX];
  char name[64];
  char template_name[64];
  char tenant[64]; /* the owner; "" unless claimed or being started for a claim */
  pool_env_state state;
  bool recovered;          /* found in the runtime by pool_new */
  int64_t idle_ms;         /* claimed: since the claim or the last touch; else 0 */
  int64_t claimed_unix_ms; /* wall clock of the claim (recovered: of the pool's start); 0 */
} pool_env;

/* Copies the pool's environments (of tenant, or all when tenant is NULL)
 * into a new array *out of *n, which the caller frees with free(). 0 or
 * -ENOMEM. */
int pool_list(pool *p, const char *tenant, pool_env **out, size_t *n);

/* One environment. 0, or -ENOENT. */
int pool_env_get(pool *p, const char *id, pool_env *out);

/* A template's pool as the background thread last saw it. */
typedef struct pool_stats {
  uint32_t warm, starting, claimed; /* environments by state */
  uint32_t target;                  /* warm wanted now, within min and max */
  uint32_t min, max;
  pool_predict_why why; /* the predictor's reason */
  int64_t refill_ms;    /* median create+start time (an estimate before any) */
} pool_stats;

/* 0 with *out, or -ENOENT. */
int pool_template_stats(pool *p, const char *name, pool_stats *out);

#endif
