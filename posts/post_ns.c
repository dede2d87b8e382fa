/*
 * post_ns.c — the ns post: the policy of one namespace. It subscribes to
 * the detector's events of its namespace (a trigger filtering on the
 * namespace extension delivers them to POST /events), counts each tenant's
 * violations (an event with action=killed or severity=critical), and acts
 * as its NamespacePolicy says: alert (a log line and a dev.outpost.alert
 * event), recycle the environment (its node post releases it), quarantine
 * the tenant after N violations (dev.outpost.quarantine.started, which the
 * cluster post receives and then refuses the tenant's new labs). Counts
 * survive a restart through a small state file written atomically after
 * every change; the ids of the last events counted are kept with them, so
 * that a redelivery (triggers deliver at least once) is not counted twice.
 */
#include "posts/post_int.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "core/resources.h"

#define SEEN_MAX    256
#define RECYCLE_Q   256
#define ACTIVE_MAX  256  /* environments whose last activity report is remembered */
#define ACTIVITY_MS 5000 /* at most one activity report per environment this often */

/* A call to the node post, made by the worker. */
typedef struct ns_op {
  bool touch; /* false: recycle (release the environment) */
  char env[64];
} ns_op;

typedef struct ns_post {
  bool alert, recycle;
  long quarantine_after; /* 0: never */
  char state_path[PATH_MAX];
  pthread_mutex_t mu;
  cJSON *counts;      /* {tenant: violations} */
  cJSON *quarantined; /* [tenant] */
  cJSON *seen;        /* ids of the last SEEN_MAX events counted */
  cJSON *pending;     /* [tenant]: quarantines announced, not yet seen back */
  /* Recycling and activity reports call the node post: a worker does it, so
   * /events answers at once. */
  pthread_cond_t cv;
  pthread_t worker;
  bool has_worker, stopping;
  ns_op queue[RECYCLE_Q];
  size_t head, n;
  /* When each environment's activity was last reported (a small cache:
   * forgetting one only means reporting it again). */
  struct {
    char env[64];
    int64_t at_ms;
  } active[ACTIVE_MAX];
  _Atomic uint64_t violations, ignored, alerts, recycled, recycle_failed, quarantines, touched;
} ns_post;

/* ------------------------------------------------------------- policy */

/* Reads the NamespacePolicy named like this namespace from --config. */
static int load_policy(post *p, ns_post *np) {
  np->alert = true;
  if (!p->cfg.config) return 0;
  cJSON *all = NULL;
  res_err rerr;
  int rc = res_load_file(p->cfg.config, 4 << 20, &all, &rerr);
  if (rc) {
    post_log(p, "%s: %s", p->cfg.config, rerr.msg);
    return rc;
  }
  const cJSON *res, *a, *f;
  cJSON_ArrayForEach(res, all) {
    if (!res_is(res, "outpost.dev", "NamespacePolicy")) continue;
    const char *name = res_str(res, "metadata.name");
    if (!name || strcmp(name, p->name)) continue;
    const cJSON *spec = res_get(res, "spec");
    cJSON_ArrayForEach(f, spec) {
      if (strcmp(f->string, "onViolation") && strcmp(f->string, "quarantineAfter")) {
        post_log(p, "NamespacePolicy %s: unknown field spec.%s", name, f->string);
        rc = -EINVAL;
      }
    }
    const cJSON *on = res_get(spec, "onViolation"), *qa = res_get(spec, "quarantineAfter");
    if (on) np->alert = false;
    if (on && !cJSON_IsArray(on))
      rc = -EINVAL,
      post_log(p, "NamespacePolicy %s: onViolation: a list such as [alert, recycle]", name);
    cJSON_ArrayForEach(a, on) {
      const char *s = cJSON_GetStringValue(a);
      if (s && !strcmp(s, "alert"))
        np->alert = true;
      else if (s && !strcmp(s, "recycle"))
        np->recycle = true;
      else
        rc = -EINVAL, post_log(p, "NamespacePolicy %s: onViolation: alert or recycle", name);
    }
    if (qa && (!cJSON_IsNumber(qa) || qa->valuedouble < 0 || qa->valuedouble > 1e6))
      rc = -EINVAL, post_log(p, "NamespacePolicy %s: quarantineAfter: a count", name);
    else if (qa)
      np->quarantine_after = (long)qa->valuedouble;
  }
  cJSON_Delete(all);
  return rc;
}

/* ------------------------------------------------------------- state */

static void state_load(post *p, ns_post *np) {
  FILE *f = fopen(np->state_path, "re");
  cJSON *j = NULL;
  if (f) {
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (!(j = cJSON_ParseWithLength(buf, n)))
      post_log(p, "%s: not JSON; starting empty", np->state_path);
  }
  cJSON *c = cJSON_DetachItemFromObjectCaseSensitive(j, "violations");
  cJSON *q = cJSON_DetachItemFromObjectCaseSensitive(j, "quarantined");
  cJSON *s = cJSON_DetachItemFromObjectCaseSensitive(j, "seen");
  cJSON *a = cJSON_DetachItemFromObjectCaseSensitive(j, "pending");
  cJSON_Delete(j);
  np->counts = cJSON_IsObject(c) ? c : (cJSON_Delete(c), cJSON_CreateObject());
  np->quarantined = cJSON_IsArray(q) ? q : (cJSON_Delete(q), cJSON_CreateArray());
  np->seen = cJSON_IsArray(s) ? s : (cJSON_Delete(s), cJSON_CreateArray());
  np->pending = cJSON_IsArray(a) ? a : (cJSON_Delete(a), cJSON_CreateArray());
}

/* Under np->mu. */
static void state_save(post *p, ns_post *np) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddItemReferenceToObject(j, "violations", np->counts);
  cJSON_AddItemReferenceToObject(j, "quarantined", np->quarantined);
  cJSON_AddItemReferenceToObject(j, "seen", np->seen);
  cJSON_AddItemReferenceToObject(j, "pending", np->pending);
  char *text = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  int rc = text ? post_write_file(np->state_path, text, strlen(text)) : -ENOMEM;
  free(text);
  if (rc) post_log(p, "cannot write %s: %s", np->state_path, strerror(-rc));
}

static bool in_array(const cJSON *arr, const char *s) {
  const cJSON *e;
  cJSON_ArrayForEach(e, arr) if (cJSON_IsString(e) && !strcmp(e->valuestring, s)) return true;
  return false;
}

static void remove_from(cJSON *arr, const char *s) {
  int i = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, arr) {
    if (cJSON_IsString(e) && !strcmp(e->valuestring, s)) {
      cJSON_DeleteItemFromArray(arr, i);
      return;
    }
    i++;
  }
}

/* ------------------------------------------------------------- actions */

static void *recycle_run(void *arg) {
  post *p = arg;
  ns_post *np = p->tier_state;
  for (;;) {
    ns_op op;
    pthread_mutex_lock(&np->mu);
    while (!np->n && !np->stopping) pthread_cond_wait(&np->cv, &np->mu);
    if (np->stopping) {
      pthread_mutex_unlock(&np->mu);
      return NULL;
    }
    op = np->queue[np->head];
    np->head = (np->head + 1) % RECYCLE_Q;
    np->n--;
    pthread_mutex_unlock(&np->mu);
    char url[512];
    cJSON *j = NULL;
    snprintf(url, sizeof url, "%s/v1/environments/%s%s", p->cfg.node_posts[0], op.env,
             op.touch ? "/touch" : "");
    long st = post_call_json(p, op.touch ? "POST" : "DELETE", url, NULL, 60000, &j);
    cJSON_Delete(j);
    if (op.touch) {
      /* 409: not claimed (released meanwhile); nothing to keep alive. */
      if (st == 204) atomic_fetch_add(&np->touched, 1);
      continue;
    }
    const char *env = op.env;
    atomic_fetch_add(st == 204 || st == 404 ? &np->recycled : &np->recycle_failed, 1);
    post_log(p, "recycle %s: %s (%ld)", env, st == 204 ? "released" : "failed", st);
  }
}

static void publish_tenant(post *p, const char *type, const char *tenant, cJSON *data) {
  ce_event *ev = post_event_new(p, type, tenant, data);
  if (ev && (ce_event_set_str(ev, "tenant", tenant, NULL) ||
             ce_event_set_str(ev, "namespace", p->name, NULL))) {
    ce_event_free(ev);
    ev = NULL;
  }
  post_publish(p, ev);
}

static void quarantine_announce(post *p, const char *tenant, long count) {
  cJSON *d = cJSON_CreateObject();
  cJSON_AddStringToObject(d, "tenant", tenant);
  cJSON_AddStringToObject(d, "namespace", p->name);
  cJSON_AddNumberToObject(d, "violations", (double)count);
  publish_tenant(p, POST_EV_QUARANTINE_STARTED, tenant, d);
}

/* Acts on one violation (np->mu held; publishing never blocks). */
static void violate(post *p, ns_post *np, const ce_event *ev, const char *tenant) {
  const char *env = ce_event_get_str(ev, "environment");
  cJSON *c = cJSON_GetObjectItemCaseSensitive(np->counts, tenant);
  long count = c ? (long)c->valuedouble + 1 : 1;
  if (c)
    cJSON_SetNumberValue(c, (double)count);
  else
    cJSON_AddNumberToObject(np->counts, tenant, 1);
  atomic_fetch_add(&np->violations, 1);
  if (np->alert) {
    post_log(p, "alert: %s by tenant %s in %s (violation %ld)", ce_event_get_str(ev, "type"),
             tenant, env ? env : "?", count);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "tenant", tenant);
    cJSON_AddStringToObject(d, "environment", env ? env : "");
    cJSON_AddStringToObject(d, "event_type", ce_event_get_str(ev, "type"));
    cJSON_AddStringToObject(d, "event_id", ce_event_get_str(ev, "id"));
    cJSON_AddNumberToObject(d, "violations", (double)count);
    publish_tenant(p, POST_EV_ALERT, tenant, d);
    atomic_fetch_add(&np->alerts, 1);
  }
  if (np->recycle && post_valid_name(env) && p->cfg.n_node_posts && np->n < RECYCLE_Q) {
    ns_op *op = &np->queue[(np->head + np->n) % RECYCLE_Q];
    op->touch = false;
    snprintf(op->env, sizeof op->env, "%s", env);
    np->n++;
    pthread_cond_signal(&np->cv);
  }
  if (np->quarantine_after && count >= np->quarantine_after && !in_array(np->quarantined, tenant)) {
    cJSON_AddItemToArray(np->quarantined, cJSON_CreateString(tenant));
    cJSON_AddItemToArray(np->pending, cJSON_CreateString(tenant));
    atomic_fetch_add(&np->quarantines, 1);
    post_log(p, "tenant %s quarantined after %ld violations", tenant, count);
    quarantine_announce(p, tenant, count);
  }
}

/* What the detector saw a claimed environment's processes do is its tenant's
 * activity (DESIGN.md: idle = nothing seen by the API or the detector), so
 * a long compile started once keeps its environment: the node post is told,
 * at most once per environment every ACTIVITY_MS (np->mu held). */
static void activity(post *p, ns_post *np, const ce_event *ev) {
  const char *env = ce_event_get_str(ev, "environment"), *src = ce_event_get_str(ev, "source");
  if (!post_valid_name(env) || !src || strncmp(src, "/nodes/", 7) ||
      !strstr(src, "/environments/") || !p->cfg.n_node_posts || np->n >= RECYCLE_Q)
    return;
  int64_t now = post_now_ms();
  size_t slot = 0;
  for (size_t i = 0; i < ACTIVE_MAX; i++) {
    if (!strcmp(np->active[i].env, env)) {
      if (now - np->active[i].at_ms < ACTIVITY_MS) return;
      slot = i;
      break;
    }
    if (np->active[i].at_ms < np->active[slot].at_ms) slot = i; /* the oldest, else */
  }
  snprintf(np->active[slot].env, sizeof np->active[slot].env, "%s", env);
  np->active[slot].at_ms = now;
  ns_op *op = &np->queue[(np->head + np->n) % RECYCLE_Q];
  op->touch = true;
  snprintf(op->env, sizeof op->env, "%s", env);
  np->n++;
  pthread_cond_signal(&np->cv);
}

static bool is_violation(const ce_event *ev) {
  const char *action = ce_event_get_str(ev, "action"), *sev = ce_event_get_str(ev, "severity");
  return (action && !strcmp(action, "killed")) || (sev && !strcmp(sev, "critical"));
}

static void ns_on_event(post *p, ce_event *ev) {
  ns_post *np = p->tier_state;
  const char *type = ce_event_get_str(ev, "type"), *ns = ce_event_get_str(ev, "namespace");
  const char *tenant = ce_event_get_str(ev, "tenant"), *src = ce_event_get_str(ev, "source");
  char key[600], own[128];
  snprintf(own, sizeof own, "/namespaces/%s/post", p->name);
  snprintf(key, sizeof key, "%s %s", src ? src : "", ce_event_get_str(ev, "id"));
  pthread_mutex_lock(&np->mu);
  bool mine = ns && !strcmp(ns, p->name) && post_valid_name(tenant);
  if (mine && !strcmp(type, POST_EV_QUARANTINE_LIFTED) && src && !strcmp(src, "/cluster/post")) {
    cJSON_DeleteItemFromObjectCaseSensitive(np->counts, tenant);
    remove_from(np->quarantined, tenant);
    remove_from(np->pending, tenant);
    state_save(p, np);
    post_log(p, "tenant %s: quarantine lifted, count reset", tenant);
  } else if (mine && !strcmp(type, POST_EV_QUARANTINE_STARTED) && src && !strcmp(src, own) &&
             in_array(np->pending, tenant)) {
    /* Our own announcement came back through a trigger: the broker has it. */
    remove_from(np->pending, tenant);
    state_save(p, np);
  } else if (mine && !strncmp(type, "dev.outpost.", 12) &&
             strncmp(type, "dev.outpost.tenant.", 19) && /* tenants' own events: not trusted */
             is_violation(ev) && !in_array(np->seen, key)) {
    cJSON_AddItemToArray(np->seen, cJSON_CreateString(key));
    while (cJSON_GetArraySize(np->seen) > SEEN_MAX) cJSON_DeleteItemFromArray(np->seen, 0);
    violate(p, np, ev, tenant);
    state_save(p, np);
  } else {
    atomic_fetch_add(&np->ignored, 1);
  }
  if (mine) activity(p, np, ev);
  pthread_mutex_unlock(&np->mu);
  ce_event_free(ev);
}

/* ------------------------------------------------------------- tier */

static int ns_start(post *p) {
  ns_post *np = calloc(1, sizeof *np);
  if (!np) return -ENOMEM;
  p->tier_state = np;
  pthread_mutex_init(&np->mu, NULL);
  pthread_cond_init(&np->cv, NULL);
  int rc = load_policy(p, np);
  if (rc) return rc;
  snprintf(np->state_path, sizeof np->state_path, "%s/ns-state.json", p->cfg.state_dir);
  state_load(p, np);
  if (pthread_create(&np->worker, NULL, recycle_run, p)) return -EAGAIN;
  np->has_worker = true;
  return 0;
}

/* A quarantine announced just before a crash may not have reached the
 * broker: those not yet seen coming back are announced again (the cluster
 * post takes repeats). Only those: a repeat of an old one could undo an
 * operator's lifting that happened meanwhile. */
static void ns_started(post *p) {
  ns_post *np = p->tier_state;
  const cJSON *t;
  post_log(p, "policy: alert %s, recycle %s, quarantine after %ld (0: never)",
           np->alert ? "on" : "off", np->recycle ? "on" : "off", np->quarantine_after);
  pthread_mutex_lock(&np->mu);
  cJSON_ArrayForEach(t, np->pending) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(np->counts, t->valuestring);
    quarantine_announce(p, t->valuestring, c ? (long)c->valuedouble : 0);
  }
  pthread_mutex_unlock(&np->mu);
}

static void ns_stop(post *p) {
  ns_post *np = p->tier_state;
  if (np->has_worker) {
    pthread_mutex_lock(&np->mu);
    np->stopping = true;
    pthread_cond_broadcast(&np->cv);
    pthread_mutex_unlock(&np->mu);
    pthread_join(np->worker, NULL);
  }
  cJSON_Delete(np->counts);
  cJSON_Delete(np->quarantined);
  cJSON_Delete(np->seen);
  cJSON_Delete(np->pending);
  pthread_mutex_destroy(&np->mu);
  pthread_cond_destroy(&np->cv);
  free(np);
}

static bool ns_route(post *p, httpd_req *req, const char *m, const char *path) {
  ns_post *np = p->tier_state;
  if (strcmp(path, "/v1/quarantine") && strcmp(path, "/v1/violations")) return false;
  if (strcmp(m, "GET")) {
    post_reply_error(req, 405, "GET only", NULL);
    return true;
  }
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "namespace", p->name);
  pthread_mutex_lock(&np->mu);
  cJSON_AddItemToObject(o, "quarantined", cJSON_Duplicate(np->quarantined, 1));
  cJSON_AddItemToObject(o, "violations", cJSON_Duplicate(np->counts, 1));
  cJSON_AddItemToObject(o, "announcing", cJSON_Duplicate(np->pending, 1));
  pthread_mutex_unlock(&np->mu);
  cJSON *pol = cJSON_AddObjectToObject(o, "policy");
  cJSON_AddBoolToObject(pol, "alert", np->alert);
  cJSON_AddBoolToObject(pol, "recycle", np->recycle);
  cJSON_AddNumberToObject(pol, "quarantineAfter", (double)np->quarantine_after);
  httpd_respond_json(req, 200, o);
  return true;
}

static void ns_metrics(post *p, ce_buf *out) {
  ns_post *np = p->tier_state;
  static const char *n = "outpost_post_ns_events_total";
  metrics_family(out, n, "counter", "events seen by the ns post, by what they were");
  metrics_sample(out, n, "kind=\"violation\"", atomic_load(&np->violations));
  metrics_sample(out, n, "kind=\"ignored\"", atomic_load(&np->ignored));
  static const char *a = "outpost_post_ns_actions_total";
  metrics_family(out, a, "counter", "policy actions taken");
  metrics_sample(out, a, "action=\"alert\"", atomic_load(&np->alerts));
  metrics_sample(out, a, "action=\"recycle\"", atomic_load(&np->recycled));
  metrics_sample(out, a, "action=\"recycle_failed\"", atomic_load(&np->recycle_failed));
  metrics_sample(out, a, "action=\"quarantine\"", atomic_load(&np->quarantines));
  const char *t = "outpost_post_ns_activity_reports_total";
  metrics_family(out, t, "counter",
                 "claimed environments whose detector-seen activity was reported to the node post");
  metrics_sample(out, t, NULL, atomic_load(&np->touched));
}

const post_tier post_tier_ns = {
    .name = "ns",
    .start = ns_start,
    .started = ns_started,
    .stop = ns_stop,
    .route = ns_route,
    .on_event = ns_on_event,
    .metrics = ns_metrics,
};
