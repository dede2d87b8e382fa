/*
 * pool.c — the pool's public calls (see pool.h): making and freeing a pool,
 * templates, claims (warm or cold), release, touch and the read-only views,
 * plus the records and the create-and-start step the background thread
 * (pool_run.c) shares with cold starts.
 */
#include "core/clock.h"
#include "posts/pool_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/resources.h"

#define DEFAULT_TICK_MS 500

/* ------------------------------------------------------------- helpers */

int64_t pool__now(pool *p) {
  return p->clock ? p->clock(p->clock_opaque) : clock_mono_us() / 1000;
}

/* Same rule as the runtime's owners: a tenant must be storable as one. */
static bool valid_tenant(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 63) return false;
  for (size_t i = 0; i < n; i++) {
    bool alnum = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9');
    if (!alnum && (i == 0 || i == n - 1 || (s[i] != '-' && s[i] != '.'))) return false;
  }
  return true;
}

static bool valid_label(const char *s) {
  return s && res_valid_dns_label(s, strlen(s));
}

bool pool_valid_node(const char *s) {
  return s && strlen(s) <= 63 && res_valid_dns_subdomain(s, strlen(s));
}

/* xorshift64*: names need to be unlikely to collide, not unpredictable. */
static uint64_t next_random(pool *p) {
  p->rng ^= p->rng >> 12;
  p->rng ^= p->rng << 25;
  p->rng ^= p->rng >> 27;
  return p->rng * 2685821657736338717ULL;
}

static void seed_random(pool *p) {
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || read(fd, &p->rng, sizeof p->rng) != (ssize_t)sizeof p->rng)
    p->rng = (uint64_t)clock_mono_us() ^ ((uint64_t)getpid() << 32);
  if (fd >= 0) close(fd);
  if (!p->rng) p->rng = 0x9e3779b97f4a7c15ULL;
}

/* ------------------------------------------------------------- records */

pool_tpl *pool__tpl_find(pool *p, const char *name, bool removed_too) {
  for (pool_tpl *tpl = p->tpls; tpl; tpl = tpl->next)
    if (strcmp(tpl->t->name, name) == 0 && (removed_too || !tpl->removed)) return tpl;
  return NULL;
}

pool_rec *pool__rec_find(pool *p, const char *id) {
  for (pool_rec *r = p->recs; r; r = r->next)
    if (r->env.id[0] && strcmp(r->env.id, id) == 0) return r;
  return NULL;
}

/* A new record named <template>-<10 of [a-z0-9]>, at the list's head. */
pool_rec *pool__rec_new(pool *p, const char *tpl_name, pool_env_state state, const char *tenant) {
  static const char digits[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  pool_rec *r = calloc(1, sizeof *r);
  char suffix[11];
  uint64_t x = next_random(p);
  if (!r) return NULL;
  for (size_t i = 0; i < 10; i++, x /= 36) suffix[i] = digits[x % 36];
  suffix[10] = '\0';
  snprintf(r->env.name, sizeof r->env.name, "%.52s-%s", tpl_name, suffix);
  snprintf(r->env.template_name, sizeof r->env.template_name, "%s", tpl_name);
  snprintf(r->env.tenant, sizeof r->env.tenant, "%s", tenant ? tenant : "");
  r->env.state = state;
  r->last_active_ms = pool__now(p);
  r->next = p->recs;
  p->recs = r;
  return r;
}

void pool__rec_drop(pool *p, pool_rec *r) {
  for (pool_rec **pp = &p->recs; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      free(r);
      return;
    }
}

void pool__refill_add(pool_tpl *tpl, int64_t ms) {
  tpl->refill[tpl->next_refill] = ms;
  tpl->next_refill = (tpl->next_refill + 1) % POOL_REFILL_SAMPLES;
  if (tpl->n_refill < POOL_REFILL_SAMPLES) tpl->n_refill++;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* The median: one slow create (an image pulled, a busy host) must not
 * double the pool. */
int64_t pool__refill_ms(const pool_tpl *tpl) {
  int64_t v[POOL_REFILL_SAMPLES];
  if (tpl->n_refill == 0) return POOL_REFILL_GUESS;
  memcpy(v, tpl->refill, tpl->n_refill * sizeof v[0]);
  qsort(v, tpl->n_refill, sizeof v[0], cmp_i64);
  return v[tpl->n_refill / 2];
}

int pool__make(pool *p, const pool_template *t, const char *name, char *id, int64_t *took_ms,
               posts_err *err) {
  posts_label *labels = malloc(p->n_labels * sizeof *labels);
  posts_env_spec spec;
  int64_t t0 = clock_mono_us();
  int rc;
  if (!labels) return -ENOMEM;
  /* p->labels is read-only once the pool is made: no lock needed. */
  memcpy(labels, p->labels, p->n_labels * sizeof *labels);
  labels[1].value = t->name;
  pool_template_spec(t, p->ns, labels, p->n_labels, &spec);
  spec.name = name;
  rc = posts_env_create(p->rt, &spec, id, err);
  if (rc == 0 && (rc = posts_env_start(p->rt, id, err)) < 0)
    posts_env_remove(p->rt, id, true, NULL);
  *took_ms = (clock_mono_us() - t0) / 1000;
  free(labels);
  return rc;
}

/* -------------------------------------------------------------- making */

static int copy_labels(pool *p, const pool_opts *o, posts_err *err) {
  const char *own[] = {POOL_LABEL_NODE, POOL_LABEL_TEMPLATE, POOL_LABEL_STATE};
  p->n_labels = 3 + o->n_labels;
  if (!(p->labels = calloc(p->n_labels, sizeof *p->labels))) return -ENOMEM;
  p->labels[0] = (posts_label){POOL_LABEL_NODE, p->node};
  p->labels[1] = (posts_label){POOL_LABEL_TEMPLATE, ""}; /* set per template */
  p->labels[2] = (posts_label){POOL_LABEL_STATE, "warm"};
  for (size_t i = 0; i < o->n_labels; i++) {
    const posts_label *l = &o->labels[i];
    for (size_t k = 0; k < 3; k++)
      if (!l->key || strcmp(l->key, own[k]) == 0 || !l->value) {
        p->n_labels = 3 + i;
        return -EINVAL;
      }
    char *key = strdup(l->key), *value = strdup(l->value);
    p->labels[3 + i] = (posts_label){key, value};
    if (!key || !value) {
      p->n_labels = 3 + i + 1;
      return -ENOMEM;
    }
  }
  return 0;
}

static void free_labels(pool *p) {
  for (size_t i = 3; p->labels && i < p->n_labels; i++) {
    free((char *)p->labels[i].key);
    free((char *)p->labels[i].value);
  }
  free(p->labels);
}

static int init_opts(pool *p, const pool_opts *o, posts_err *err) {
  pool_predict check;
  int rc;
  if (!o || !pool_valid_node(o->node) || !valid_label(o->ns))
    return posts__err(err, -EINVAL, 0,
                      "opts: node must be a DNS subdomain of at most 63 bytes, ns a DNS label");
  if (o->tick_ms < 0) return posts__err(err, -EINVAL, 0, "opts.tick_ms: negative");
  snprintf(p->node, sizeof p->node, "%s", o->node);
  snprintf(p->ns, sizeof p->ns, "%s", o->ns);
  p->clock = o->clock;
  p->clock_opaque = o->clock_opaque;
  p->tick_ms = o->tick_ms ? o->tick_ms : DEFAULT_TICK_MS;
  if (o->predict)
    p->pred_opts = *o->predict;
  else
    pool_predict_opts_init(&p->pred_opts);
  if (pool_predict_init(&check, &p->pred_opts) < 0)
    return posts__err(err, -EINVAL, 0, "opts.predict: out of range");
  if ((rc = copy_labels(p, o, err)) < 0)
    return posts__err(err, rc, 0, rc == -ENOMEM ? "out of memory" : "opts.labels: invalid");
  seed_random(p);
  snprintf(p->ev_prefix, sizeof p->ev_prefix, "%" PRIx64 "-%x", (uint64_t)clock_wall_ms(),
           (unsigned)(p->rng & 0xffff));
  return 0;
}

static int init_sync(pool *p) {
  /* Ticks are measured on the monotonic clock: a wall-clock step must not
   * stall the pool or make it spin. */
  int rc = clock_cond_init(&p->wake);
  if (rc != 0) return -rc;
  if ((rc = pthread_mutex_init(&p->mu, NULL)) != 0) {
    pthread_cond_destroy(&p->wake);
    return -rc;
  }
  if ((rc = pthread_mutex_init(&p->emit_mu, NULL)) != 0) {
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    return -rc;
  }
  return 0;
}

static void free_state(pool *p) {
  while (p->recs) pool__rec_drop(p, p->recs);
  while (p->tpls) {
    pool_tpl *tpl = p->tpls;
    p->tpls = tpl->next;
    pool_template_free(tpl->t);
    free(tpl);
  }
  pool__evq_cleanup(&p->evq);
  free_labels(p);
}

pool *pool_new(posts_runtime *rt, const pool_opts *opts, pool_event_fn on_event, void *opaque,
               posts_err *err) {
  pool *p = calloc(1, sizeof *p);
  int rc;
  if (!p) {
    posts__err(err, -ENOMEM, 0, "out of memory");
    return NULL;
  }
  p->rt = rt;
  p->on_event = on_event;
  p->opaque = opaque;
  if (!rt) {
    posts__err(err, -EINVAL, 0, "rt: NULL");
    goto fail_opts;
  }
  if (init_opts(p, opts, err) < 0) goto fail_opts;
  if ((rc = init_sync(p)) < 0) {
    posts__err(err, rc, 0, "cannot make the pool's lock");
    goto fail_opts;
  }
  if (pool__recover(p, err) < 0) goto fail_sync;
  if ((rc = pthread_create(&p->thread, NULL, pool__run, p)) != 0) {
    posts__err(err, -rc, 0, "cannot start the pool's thread");
    goto fail_sync;
  }
  pthread_mutex_lock(&p->mu);
  pool__flush(p);
  pthread_mutex_unlock(&p->mu);
  return p;
fail_sync:
  pthread_mutex_destroy(&p->emit_mu);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->wake);
fail_opts:
  free_state(p);
  free(p);
  return NULL;
}

void pool_free(pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stopping = true;
  pthread_cond_signal(&p->wake);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->thread, NULL);
  pthread_mutex_lock(&p->mu);
  while (p->building) pthread_cond_wait(&p->wake, &p->mu); /* refills under way end */
  pool__flush(p); /* what the last steps reported still reaches the caller */
  pthread_mutex_unlock(&p->mu);
  free_state(p);
  pthread_mutex_destroy(&p->emit_mu);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->wake);
  free(p);
}

/* ----------------------------------------------------------- templates */

int pool_template_add(pool *p, pool_template *t, posts_err *err) {
  pool_tpl *tpl;
  if (!t || !t->name) return posts__err(err, -EINVAL, 0, "template: NULL");
  if (!(tpl = calloc(1, sizeof *tpl))) return posts__err(err, -ENOMEM, 0, "out of memory");
  pool_predict_opts po = p->pred_opts; /* checked by pool_new */
  if (t->keepalive_ms > 0) po.keepalive_ms = t->keepalive_ms;
  if (pool_predict_init(&tpl->pred, &po) < 0) {
    free(tpl);
    return posts__err(err, -EINVAL, 0, "template %s: pool.keepAlive out of range", t->name);
  }
  tpl->t = t;
  pthread_mutex_lock(&p->mu);
  if (pool__tpl_find(p, t->name, true)) {
    pthread_mutex_unlock(&p->mu);
    free(tpl);
    return posts__err(err, -EEXIST, 0, "template %s: already in the pool", t->name);
  }
  tpl->next = p->tpls;
  p->tpls = tpl;
  p->kicked = true;
  pthread_cond_signal(&p->wake);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

int pool_template_remove(pool *p, const char *name) {
  pool_tpl *tpl;
  pthread_mutex_lock(&p->mu);
  if ((tpl = pool__tpl_find(p, name, false))) {
    tpl->removed = true;
    p->kicked = true;
    pthread_cond_signal(&p->wake);
  }
  pthread_mutex_unlock(&p->mu);
  return tpl ? 0 : -ENOENT;
}

int pool_template_stats(pool *p, const char *name, pool_stats *out) {
  pool_tpl *tpl;
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&p->mu);
  if ((tpl = pool__tpl_find(p, name, true))) {
    for (pool_rec *r = p->recs; r; r = r->next) {
      if (strcmp(r->env.template_name, name) != 0) continue;
      out->warm += r->env.state == POOL_ENV_WARM;
      out->starting += r->env.state == POOL_ENV_STARTING;
      out->claimed += r->env.state == POOL_ENV_CLAIMED;
    }
    out->target = tpl->target;
    out->min = tpl->t->pool_min;
    out->max = tpl->t->pool_max;
    out->why = tpl->why;
    out->refill_ms = pool__refill_ms(tpl);
  }
  pthread_mutex_unlock(&p->mu);
  return tpl ? 0 : -ENOENT;
}

/* -------------------------------------------------------------- claims */

/* A warm environment of the template, oldest first (it has waited
 * longest), or NULL. */
static pool_rec *find_warm(pool *p, const char *tpl_name) {
  pool_rec *found = NULL;
  for (pool_rec *r = p->recs; r; r = r->next)
    if (r->env.state == POOL_ENV_WARM && strcmp(r->env.template_name, tpl_name) == 0) found = r;
  return found;
}

/* r now belongs to tenant: the bookkeeping, the event and *out. */
static void claimed(pool *p, pool_rec *r, const char *tenant, bool warm, int64_t t0_us,
                    int64_t cold_ms, pool_claim_info *out) {
  char extra[160];
  r->env.state = POOL_ENV_CLAIMED;
  snprintf(r->env.tenant, sizeof r->env.tenant, "%s", tenant);
  r->last_active_ms = r->claimed_ms = pool__now(p);
  r->env.claimed_unix_ms = clock_wall_ms();
  snprintf(out->id, sizeof out->id, "%s", r->env.id);
  snprintf(out->name, sizeof out->name, "%s", r->env.name);
  out->warm = warm;
  out->elapsed_us = clock_mono_us() - t0_us;
  snprintf(extra, sizeof extra, "\"warm\":%s,\"latency_us\":%" PRId64 ",\"cold_start_ms\":%" PRId64,
           warm ? "true" : "false", out->elapsed_us, cold_ms);
  pool__ev_env(p, POOL_EV_CLAIMED, r, extra, NULL);
}

/* With p->mu held: 1 when a warm environment was claimed, 0 when none
 * was left, or the runtime's error. */
static int claim_warm(pool *p, const char *tpl_name, const char *tenant, int64_t t0_us,
                      pool_claim_info *out, posts_err *err) {
  pool_rec *r;
  while ((r = find_warm(p, tpl_name))) {
    char id[POSTS_ENV_ID_MAX];
    r->env.state = POOL_ENV_CLAIMING;
    memcpy(id, r->env.id, sizeof id);
    pthread_mutex_unlock(&p->mu);
    int rc = posts_env_claim(p->rt, id, tenant, err);
    pthread_mutex_lock(&p->mu);
    if (rc == 0) {
      claimed(p, r, tenant, true, t0_us, 0, out);
      return 1;
    }
    if (rc != -ENOENT && rc != -EBUSY) {
      r->env.state = POOL_ENV_WARM;
      return rc;
    }
    /* Gone, or taken by someone outside this pool: no longer ours to give
     * (nor to remove). Try the next. */
    pool__ev_env(p, POOL_EV_RECLAIMED, r, "\"reason\":\"vanished\"", err ? err->msg : NULL);
    pool__rec_drop(p, r);
  }
  return 0;
}

/* With p->mu held: creates, starts and claims an environment now. The
 * record exists throughout, which keeps the template alive. */
static int claim_cold(pool *p, pool_tpl *tpl, const char *tenant, int64_t t0_us,
                      pool_claim_info *out, posts_err *err) {
  const pool_template *t = tpl->t;
  char name[64], id[POSTS_ENV_ID_MAX] = "", extra[96];
  int64_t took = 0;
  pool_rec *r = pool__rec_new(p, t->name, POOL_ENV_STARTING, tenant);
  int rc;
  if (!r) return posts__err(err, -ENOMEM, 0, "out of memory");
  memcpy(name, r->env.name, sizeof name);
  pool__ev_env(p, POOL_EV_REQUESTED, r, "\"warm\":false,\"reason\":\"claim\"", NULL);
  pool__flush(p); /* progress: the caller hears of it before the slow part */
  pthread_mutex_unlock(&p->mu);
  rc = pool__make(p, t, name, id, &took, err);
  /* Created and started first, claimed last: a crash in between leaves a
   * warm environment, which a recovering pool can still use. */
  if (rc == 0 && (rc = posts_env_claim(p->rt, id, tenant, err)) < 0)
    posts_env_remove(p->rt, id, true, NULL);
  pthread_mutex_lock(&p->mu);
  if (rc < 0) {
    pool__ev_env(p, POOL_EV_FAILED, r, "\"stage\":\"claim\"", err ? err->msg : "");
    pool__rec_drop(p, r);
    return rc;
  }
  memcpy(r->env.id, id, sizeof id);
  pool__refill_add(tpl, took);
  snprintf(extra, sizeof extra, "\"for\":\"claim\",\"duration_ms\":%" PRId64, took);
  pool__ev_env(p, POOL_EV_READY, r, extra, NULL);
  claimed(p, r, tenant, false, t0_us, took, out);
  return 0;
}

int pool_claim(pool *p, const char *template_name, const char *tenant, pool_claim_info *out,
               posts_err *err) {
  int64_t t0 = clock_mono_us();
  pool_tpl *tpl;
  int rc;
  memset(out, 0, sizeof *out);
  if (!valid_tenant(tenant)) return posts__err(err, -EINVAL, 0, "tenant: not [a-z0-9.-]{1,63}");
  if (!template_name) return posts__err(err, -EINVAL, 0, "template: NULL");
  pthread_mutex_lock(&p->mu);
  if (!(tpl = pool__tpl_find(p, template_name, false))) {
    pthread_mutex_unlock(&p->mu);
    return posts__err(err, -ENOENT, 0, "no template %s", template_name);
  }
  pool_predict_claim(&tpl->pred, pool__now(p));
  p->kicked = true; /* the target may have moved: refill now */
  pthread_cond_signal(&p->wake);
  rc = claim_warm(p, template_name, tenant, t0, out, err);
  if (rc == 0) {
    /* The lock was dropped: the template may have been removed since. */
    tpl = pool__tpl_find(p, template_name, false);
    rc = tpl ? claim_cold(p, tpl, tenant, t0, out, err)
             : posts__err(err, -ENOENT, 0, "no template %s", template_name);
  }
  pool__flush(p);
  pthread_mutex_unlock(&p->mu);
  return rc > 0 ? 0 : rc;
}

int pool_release(pool *p, const char *id, posts_err *err) {
  pool_rec *r;
  char extra[96];
  int64_t t0, held;
  int rc;
  if (!id) return posts__err(err, -EINVAL, 0, "id: NULL");
  pthread_mutex_lock(&p->mu);
  r = pool__rec_find(p, id);
  if (!r || r->env.state != POOL_ENV_CLAIMED) {
    rc = r && r->env.state != POOL_ENV_WARM ? -EBUSY : -ENOENT;
    pthread_mutex_unlock(&p->mu);
    return posts__err(err, rc, 0, "%s: %s", id,
                      rc == -EBUSY ? "being claimed or removed" : "not a claimed environment");
  }
  r->env.state = POOL_ENV_REMOVING;
  held = pool__now(p) - r->claimed_ms;
  pthread_mutex_unlock(&p->mu);
  t0 = clock_mono_us();
  rc = posts_env_remove(p->rt, id, true, err);
  pthread_mutex_lock(&p->mu);
  if (rc == 0 || rc == -ENOENT) { /* already gone is as good */
    snprintf(extra, sizeof extra, "\"held_ms\":%" PRId64 ",\"remove_ms\":%" PRId64, held,
             (clock_mono_us() - t0) / 1000);
    pool__ev_env(p, POOL_EV_RELEASED, r, extra, NULL);
    pool__rec_drop(p, r);
    rc = 0;
  } else {
    r->env.state = POOL_ENV_CLAIMED;
  }
  pool__flush(p);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

int pool_touch(pool *p, const char *id) {
  pool_rec *r;
  int rc = -ENOENT;
  if (!id) return -EINVAL;
  pthread_mutex_lock(&p->mu);
  if ((r = pool__rec_find(p, id)) && r->env.state == POOL_ENV_CLAIMED) {
    r->last_active_ms = pool__now(p);
    rc = 0;
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}

/* ---------------------------------------------------------------- views */

const char *pool_env_state_name(pool_env_state state) {
  static const char *const names[] = {"starting", "warm", "claiming", "claimed", "removing"};
  return (unsigned)state < sizeof names / sizeof names[0] ? names[state] : "unknown";
}

static void copy_env(pool *p, const pool_rec *r, int64_t now, pool_env *out) {
  *out = r->env;
  out->idle_ms = r->env.state == POOL_ENV_CLAIMED ? now - r->last_active_ms : 0;
}

int pool_list(pool *p, const char *tenant, pool_env **out, size_t *n) {
  size_t count = 0;
  int64_t now;
  *out = NULL;
  *n = 0;
  pthread_mutex_lock(&p->mu);
  now = pool__now(p);
  for (pool_rec *r = p->recs; r; r = r->next)
    count += !tenant || strcmp(r->env.tenant, tenant) == 0;
  if (count && !(*out = calloc(count, sizeof **out))) {
    pthread_mutex_unlock(&p->mu);
    return -ENOMEM;
  }
  for (pool_rec *r = p->recs; r; r = r->next)
    if (!tenant || strcmp(r->env.tenant, tenant) == 0) copy_env(p, r, now, &(*out)[(*n)++]);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

int pool_env_get(pool *p, const char *id, pool_env *out) {
  pool_rec *r;
  memset(out, 0, sizeof *out);
  if (!id) return -EINVAL;
  pthread_mutex_lock(&p->mu);
  if ((r = pool__rec_find(p, id))) copy_env(p, r, pool__now(p), out);
  pthread_mutex_unlock(&p->mu);
  return r ? 0 : -ENOENT;
}
