/*
 * post_node.c — the node post: owns its node's warm pool (one pool per
 * namespace it hosts, on the Docker Engine API runtime, templates from
 * --config), publishes the pool's events with a namespace extension so that
 * triggers can route them, and serves the internal API the cluster post and
 * the ns posts call (claims, environments, exec, capacity). It starts,
 * watches and restarts one ns post per namespace. Nothing of an
 * environment lives only here: a restarted node post recovers its pools
 * from the runtime (pool_new), so its state survives kill -9.
 *
 * With --detector-url, claimed environments are registered with the node's
 * detector (post_watch.c); with --broker-url, the triggers that deliver each
 * namespace's events to its ns post are registered at the broker
 * (post_triggers.c). Both from threads of their own, never on a claim's
 * path.
 */
#include "posts/post_int.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "core/resources.h"
#include "posts/pool.h"
#include "posts/runtime_k8s.h"

#define NODE_MAX_TEMPLATES 256

typedef struct node_ns {
  post *p;
  const char *name;
  pool *pool;
  pthread_t rt_watch; /* the runtime's watch of this namespace (Kubernetes) */
  bool rt_watching;
} node_ns;

/* A template's policy as the detector takes it (NULL: it forbids nothing). */
typedef struct node_policy {
  char tpl[64];
  char *json;
} node_policy;

typedef struct node_post {
  posts_runtime *rt;
  node_ns ns[POST_MAX_REPEATED];
  const char *ns_names[POST_MAX_REPEATED];
  size_t n_ns;
  node_policy policies[NODE_MAX_TEMPLATES]; /* read-only once started */
  size_t n_policies;
  post_watch *_Atomic watch; /* set once the pools exist */
  post_trig *trig;
  _Atomic uint64_t claims_warm, claims_cold, claims_failed, releases, execs;
  atomic_bool rt_stop;      /* the runtime watches end */
  _Atomic uint64_t rt_gone; /* environments the runtime said were gone */
} node_post;

/* The detector hears of an environment's claim and end from its events. */
static void watch_event(node_post *np, const ce_event *ev) {
  post_watch *w = atomic_load(&np->watch);
  const char *type = ce_event_get_str(ev, "type"), *name = ce_event_get_str(ev, "subject");
  if (!w || !type) return;
  if (!strcmp(type, POOL_EV_CLAIMED))
    post_watch_claimed(w, name);
  else if (!strcmp(type, POOL_EV_RELEASED) || !strcmp(type, POOL_EV_RECLAIMED))
    post_watch_gone(w, name);
}

static void on_pool_event(ce_event *ev, void *opaque) {
  node_ns *ns = opaque;
  watch_event(ns->p->tier_state, ev);
  /* Triggers route a namespace's events to its ns post by this extension. */
  ce_event_set_str(ev, "namespace", ns->name, NULL);
  post_publish(ns->p, ev);
}

/* Keeps t's policy for the detector, once per template (every namespace's
 * pool reads the same file). */
static void keep_policy(post *p, node_post *np, const pool_template *t) {
  for (size_t i = 0; i < np->n_policies; i++)
    if (!strcmp(np->policies[i].tpl, t->name)) return;
  if (np->n_policies == NODE_MAX_TEMPLATES) return;
  char why[256];
  node_policy *pol = &np->policies[np->n_policies++];
  snprintf(pol->tpl, sizeof pol->tpl, "%s", t->name);
  pol->json = post_watch_policy_json(t, why, sizeof why);
  if (why[0] && p->cfg.detector_url)
    post_log(p,
             "template %s: the detector matches exact addresses only; left out of its "
             "policy: %s",
             t->name, why);
}

static const char *policy_of(const node_post *np, const char *tpl) {
  for (size_t i = 0; i < np->n_policies; i++)
    if (!strcmp(np->policies[i].tpl, tpl)) return np->policies[i].json;
  return NULL;
}

/* Adds every LabTemplate of the config file to pool. */
static int add_templates(post *p, pool *pl, const char *path) {
  cJSON *all = NULL;
  res_err rerr;
  int rc = res_load_file(path, 4 << 20, &all, &rerr);
  if (rc) {
    post_log(p, "%s: %s", path, rerr.msg);
    return rc;
  }
  const cJSON *res;
  cJSON_ArrayForEach(res, all) {
    if (!res_is(res, "outpost.dev", "LabTemplate")) continue;
    pool_template_err terr;
    posts_err perr = {0};
    memset(&terr, 0, sizeof terr);
    pool_template *t = pool_template_parse(res, &terr);
    if (!t) {
      post_log(p, "%s: LabTemplate refused at %s: %s", path, terr.path, terr.msg);
      rc = -EINVAL;
      break;
    }
    keep_policy(p, p->tier_state, t);
    if ((rc = pool_template_add(pl, t, &perr))) {
      pool_template_free(t);
      post_log(p, "%s: %s", path, perr.msg);
      break;
    }
  }
  cJSON_Delete(all);
  return rc;
}

/* --runtime kubernetes: a pod per environment, in the Kubernetes namespace
 * of each Outpost namespace (--kube-namespace-prefix), on this node. */
static posts_runtime *kube_runtime(post *p, char *err, size_t errlen) {
  posts_k8s_config kc;
  posts_runtime *rt = NULL;
  if (posts_k8s_config_init(&kc)) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  int rc = p->cfg.kubeconfig
               ? posts_k8s_config_from_kubeconfig(&kc, p->cfg.kubeconfig, NULL, err, errlen)
               : posts_k8s_config_in_cluster(&kc, err, errlen);
  if (rc == 0 && p->cfg.kube_ns_prefix) {
    free(kc.ns_prefix);
    if (!(kc.ns_prefix = strdup(p->cfg.kube_ns_prefix))) rc = -ENOMEM;
  }
  if (rc == 0) {
    free(kc.node_name);
    if (!(kc.node_name = strdup(p->cfg.node))) rc = -ENOMEM;
  }
  if (rc == 0) rt = posts_runtime_k8s_new(&kc, err, errlen);
  if (rc == -ENOMEM) snprintf(err, errlen, "out of memory");
  posts_k8s_config_cleanup(&kc);
  return rt;
}

static int node_start(post *p) {
  node_post *np = calloc(1, sizeof *np);
  if (!np) return -ENOMEM;
  p->tier_state = np;
  char err[256];
  if (p->cfg.runtime && !strcmp(p->cfg.runtime, "kubernetes")) {
    np->rt = kube_runtime(p, err, sizeof err);
  } else {
    const char *sock = p->cfg.socket ? p->cfg.socket : "/run/podman/podman.sock";
    np->rt = posts_runtime_docker_new(sock, err, sizeof err);
  }
  if (!np->rt) {
    post_log(p, "runtime: %s", err);
    return -EIO;
  }
  static const char *fallback[] = {"labs"};
  const char *const *names = p->cfg.n_namespaces ? p->cfg.namespaces : fallback;
  size_t n = p->cfg.n_namespaces ? p->cfg.n_namespaces : 1;
  for (size_t i = 0; i < n; i++) {
    node_ns *ns = &np->ns[np->n_ns];
    ns->p = p;
    ns->name = names[i];
    if (!post_valid_name(ns->name)) {
      post_log(p, "--namespace '%s' is not a DNS label", ns->name);
      return -EINVAL;
    }
    posts_err perr = {0};
    /* Recovery happens here: the pool lists the runtime for this node. */
    ns->pool =
        pool_new(np->rt, &(pool_opts){.node = p->name, .ns = ns->name}, on_pool_event, ns, &perr);
    if (!ns->pool) {
      post_log(p, "pool of %s: %s", ns->name, perr.msg);
      return perr.code ? perr.code : -EIO;
    }
    np->ns_names[np->n_ns++] = ns->name;
    if (p->cfg.config) {
      int rc = add_templates(p, ns->pool, p->cfg.config);
      if (rc) return rc;
    }
  }
  return 0;
}

/* The claimed environments of every pool, for the detector. */
static int watch_list(void *opaque, post_watch_env **out, size_t *n) {
  node_post *np = opaque;
  size_t cap = 0;
  *out = NULL;
  *n = 0;
  for (size_t i = 0; i < np->n_ns; i++) {
    pool_env *envs;
    size_t m;
    if (pool_list(np->ns[i].pool, NULL, &envs, &m)) continue;
    for (size_t j = 0; j < m; j++) {
      if (envs[j].state != POOL_ENV_CLAIMED) continue;
      if (*n == cap) {
        post_watch_env *grown = realloc(*out, (cap = cap ? cap * 2 : 16) * sizeof *grown);
        if (!grown) {
          free(envs);
          free(*out);
          *out = NULL;
          return -ENOMEM;
        }
        *out = grown;
      }
      post_watch_env *e = &(*out)[(*n)++];
      snprintf(e->name, sizeof e->name, "%s", envs[j].name);
      snprintf(e->id, sizeof e->id, "%s", envs[j].id);
      snprintf(e->tenant, sizeof e->tenant, "%s", envs[j].tenant);
      snprintf(e->ns, sizeof e->ns, "%s", np->ns[i].name);
      snprintf(e->tpl, sizeof e->tpl, "%s", envs[j].template_name);
      e->policy = policy_of(np, envs[j].template_name);
    }
    free(envs);
  }
  return 0;
}

/* The runtime's word on an environment of this node: one that went away
 * (deleted, evicted) or stopped outside the pool. */
static int rt_event(void *arg, posts_watch_type type, const posts_env_info *info) {
  node_ns *ns = arg;
  node_post *np = ns->p->tier_state;
  bool gone = type == POSTS_WATCH_DELETED || info->state == POSTS_ENV_EXITED ||
              info->state == POSTS_ENV_DEAD;
  if (gone && pool_env_gone(ns->pool, info->id) == 0) {
    atomic_fetch_add(&np->rt_gone, 1);
    post_log(ns->p, "%s %s: %s outside the pool (the runtime says so)", ns->name, info->name,
             type == POSTS_WATCH_DELETED ? "deleted" : posts_env_state_name(info->state));
  }
  return 0;
}

static void *rt_watch_run(void *arg) {
  node_ns *ns = arg;
  node_post *np = ns->p->tier_state;
  posts_label sel = {POOL_LABEL_NODE, ns->p->name};
  posts_err err = {0};
  int rc = posts_env_watch(np->rt, ns->name, &sel, 1, rt_event, ns, &np->rt_stop, &err);
  if (rc < 0 && !atomic_load(&np->rt_stop))
    post_log(ns->p, "watch of %s ended: %s", ns->name, err.msg[0] ? err.msg : strerror(-rc));
  return NULL;
}

/* Watches the runtime instead of polling it, where it can (Kubernetes). */
static void rt_watch_start(post *p, node_post *np) {
  if (!p->cfg.runtime || strcmp(p->cfg.runtime, "kubernetes")) return; /* Docker: -ENOTSUP */
  for (size_t i = 0; i < np->n_ns; i++)
    np->ns[i].rt_watching = !pthread_create(&np->ns[i].rt_watch, NULL, rt_watch_run, &np->ns[i]);
}

/* The name of namespace ns's trigger: ns-<ns> on one machine; with
 * --advertise-host (many nodes, one broker) one per node, ns-<ns>-<node>,
 * which also filters on the node (its hash when the name would not be a
 * DNS label). */
static void ns_trigger_name(const post *p, const char *ns, char name[64]) {
  if (!p->cfg.advertise_host) {
    snprintf(name, 64, "ns-%s", ns);
    return;
  }
  char full[200];
  snprintf(full, sizeof full, "ns-%s-%s", ns, p->cfg.node);
  if (post_valid_name(full)) { /* a DNS label: 63 bytes at most */
    memcpy(name, full, strlen(full) + 1);
    return;
  }
  uint64_t h = 1469598103934665603ull;
  for (const char *s = p->cfg.node; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  snprintf(name, 64, "ns-%.40s-%016llx", ns, (unsigned long long)h);
}

/* Trigger ns-<namespace> for each namespace: its events (the pool's and
 * the detector's) go to its ns post on port base + i. */
static void register_triggers(post *p, node_post *np, uint16_t base) {
  cJSON *all = cJSON_CreateArray();
  for (size_t i = 0; all && i < np->n_ns; i++) {
    char name[64], uri[128];
    ns_trigger_name(p, np->ns[i].name, name);
    snprintf(uri, sizeof uri, "http://%s:%u/events", post_advertised_host(p), (unsigned)(base + i));
    cJSON *tr = post_trig_resource(p, name, uri);
    if (!tr) break;
    cJSON *spec = cJSON_GetObjectItemCaseSensitive(tr, "spec");
    if (!p->cfg.advertise_host) {
      cJSON *filter = cJSON_AddObjectToObject(spec, "filter");
      cJSON_AddStringToObject(cJSON_AddObjectToObject(filter, "attributes"), "namespace",
                              np->ns[i].name);
    } else {
      /* This node's events of the namespace, and the namespace's quarantine
       * events, which carry no node (every ns post of the namespace keeps
       * the quarantine set): namespace AND (node OR quarantine.*). */
      cJSON *filters = cJSON_AddArrayToObject(spec, "filters"), *f, *any, *a;
      f = cJSON_CreateObject();
      cJSON_AddStringToObject(cJSON_AddObjectToObject(f, "exact"), "namespace", np->ns[i].name);
      cJSON_AddItemToArray(filters, f);
      f = cJSON_CreateObject();
      any = cJSON_AddArrayToObject(f, "any");
      a = cJSON_CreateObject();
      cJSON_AddStringToObject(cJSON_AddObjectToObject(a, "exact"), "node", p->cfg.node);
      cJSON_AddItemToArray(any, a);
      a = cJSON_CreateObject();
      cJSON_AddStringToObject(cJSON_AddObjectToObject(a, "prefix"), "type",
                              "dev.outpost.quarantine.");
      cJSON_AddItemToArray(any, a);
      cJSON_AddItemToArray(filters, f);
    }
    cJSON_AddItemToArray(all, tr);
  }
  np->trig = post_trig_start(p, all);
}

/* Starts one ns post per namespace, on ports from --ns-port (or this
 * post's port + 1) up (unless --no-ns-posts: they run on their own), their
 * triggers, and the link to the detector. */
static void node_started(post *p) {
  node_post *np = p->tier_state;
  uint16_t base = p->cfg.ns_port ? p->cfg.ns_port : (uint16_t)(p->cfg.port + 1);
  atomic_store(&np->watch, post_watch_new(p, np->rt, np->ns_names, np->n_ns, watch_list, np));
  rt_watch_start(p, np);
  register_triggers(p, np, base);
  if (p->cfg.no_ns_posts || !(p->sup = post_sup_new(p))) return;
  for (size_t i = 0; i < np->n_ns; i++) {
    char listen[96], health[128], node_url[128], state[PATH_MAX];
    /* Advertised elsewhere: the broker must reach them there. */
    snprintf(listen, sizeof listen, "%s:%u", p->cfg.advertise_host ? "0.0.0.0" : "127.0.0.1",
             (unsigned)(base + i));
    snprintf(health, sizeof health, "http://127.0.0.1:%u/healthz", (unsigned)(base + i));
    snprintf(node_url, sizeof node_url, "http://%s:%u",
             strcmp(p->cfg.host, "0.0.0.0") ? p->cfg.host : "127.0.0.1", (unsigned)p->cfg.port);
    snprintf(state, sizeof state, "%s/ns-%s", p->cfg.state_dir, np->ns[i].name);
    const char *argv[24] = {"outpost",     "post",         "--tier",      "ns",
                            "--namespace", np->ns[i].name, "--listen",    listen,
                            "--node-post", node_url,       "--state-dir", state};
    size_t n = 12;
    if (p->cfg.config) argv[n++] = "--config", argv[n++] = p->cfg.config;
    if (p->cfg.broker_url) argv[n++] = "--broker-url", argv[n++] = p->cfg.broker_url;
    if (!post_sup_add(p->sup, "ns", np->ns[i].name, health, argv) &&
        post_pass_tokens(p, np->ns[i].name, POST_TOK_INTERNAL | POST_TOK_INGRESS))
      post_log(p, "ns post %s: its token: out of memory", np->ns[i].name);
  }
  post_sup_start(p->sup);
}

static void node_stop(post *p) {
  node_post *np = p->tier_state;
  post_watch *w = atomic_load(&np->watch);
  post_trig_free(np->trig);
  atomic_store(&np->rt_stop, true); /* seen within a second */
  posts_runtime_cancel(np->rt);     /* refills waiting for a pod to run give up */
  for (size_t i = 0; i < np->n_ns; i++)
    if (np->ns[i].rt_watching) pthread_join(np->ns[i].rt_watch, NULL);
  /* The watch lists the pools: its thread ends first; the pools' last
   * events may still queue to it until it is freed. */
  post_watch_stop(w);
  for (size_t i = 0; i < np->n_ns; i++) pool_free(np->ns[i].pool);
  post_watch_free(w);
  for (size_t i = 0; i < np->n_policies; i++) free(np->policies[i].json);
  posts_runtime_free(np->rt);
  free(np);
}

static bool node_ready(post *p) {
  node_post *np = p->tier_state;
  return np && np->n_ns > 0;
}

/* ------------------------------------------------------------- lookups */

static node_ns *ns_by_name(node_post *np, const char *name) {
  for (size_t i = 0; i < np->n_ns; i++)
    if (name && !strcmp(np->ns[i].name, name)) return &np->ns[i];
  return NULL;
}

/* The environment called name in any of the node's pools. */
static node_ns *env_by_name(node_post *np, const char *name, pool_env *out) {
  for (size_t i = 0; i < np->n_ns; i++) {
    pool_env *envs;
    size_t n;
    if (pool_list(np->ns[i].pool, NULL, &envs, &n)) continue;
    bool found = false;
    for (size_t j = 0; j < n && !found; j++)
      if (!strcmp(envs[j].name, name)) *out = envs[j], found = true;
    free(envs);
    if (found) return &np->ns[i];
  }
  return NULL;
}

static cJSON *env_json(post *p, const node_ns *ns, const pool_env *e) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", e->name);
  cJSON_AddStringToObject(o, "id", e->id);
  cJSON_AddStringToObject(o, "template", e->template_name);
  cJSON_AddStringToObject(o, "tenant", e->tenant);
  cJSON_AddStringToObject(o, "state", pool_env_state_name(e->state));
  cJSON_AddStringToObject(o, "namespace", ns->name);
  cJSON_AddStringToObject(o, "node", p->name);
  cJSON_AddNumberToObject(o, "idle_ms", (double)e->idle_ms);
  cJSON_AddNumberToObject(o, "claimed_unix_ms", (double)e->claimed_unix_ms);
  cJSON_AddBoolToObject(o, "recovered", e->recovered);
  return o;
}

/* Claimed environments of the node, and warm ones per template into warm
 * (an object) when not NULL. */
static long count_used(node_post *np, cJSON *warm) {
  long used = 0;
  for (size_t i = 0; i < np->n_ns; i++) {
    pool_env *envs;
    size_t n;
    if (pool_list(np->ns[i].pool, NULL, &envs, &n)) continue;
    for (size_t j = 0; j < n; j++) {
      used += envs[j].state == POOL_ENV_CLAIMED || envs[j].state == POOL_ENV_CLAIMING;
      if (!warm || envs[j].state != POOL_ENV_WARM) continue;
      cJSON *c = cJSON_GetObjectItemCaseSensitive(warm, envs[j].template_name);
      if (c)
        cJSON_SetNumberValue(c, c->valuedouble + 1);
      else
        cJSON_AddNumberToObject(warm, envs[j].template_name, 1);
    }
    free(envs);
  }
  return used;
}

/* ------------------------------------------------------------- endpoints */

static void serve_claim(post *p, httpd_req *req) {
  node_post *np = p->tier_state;
  cJSON *body = post_body_json(req);
  if (!body) return;
  const char *tpl = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "template"));
  const char *tenant = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "tenant"));
  const char *nsn = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "namespace"));
  node_ns *ns = ns_by_name(np, nsn ? nsn : np->ns[0].name);
  pool_claim_info info;
  posts_err err = {0};
  if (!post_valid_name(tpl)) {
    post_reply_error(req, 400, "template: a DNS label is required", "template");
  } else if (!post_valid_name(tenant)) {
    post_reply_error(req, 400, "tenant: a DNS label is required", "tenant");
  } else if (!ns) {
    post_reply_error(req, 404, "namespace not hosted on this node", "namespace");
  } else if (count_used(np, NULL) >= p->cfg.max_envs) {
    post_reply_error(req, 503, "node full", NULL);
  } else {
    int rc = pool_claim(ns->pool, tpl, tenant, &info, &err);
    if (rc == 0) {
      atomic_fetch_add(info.warm ? &np->claims_warm : &np->claims_cold, 1);
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "name", info.name);
      cJSON_AddStringToObject(o, "id", info.id);
      cJSON_AddBoolToObject(o, "warm", info.warm);
      cJSON_AddNumberToObject(o, "elapsed_us", (double)info.elapsed_us);
      cJSON_AddStringToObject(o, "namespace", ns->name);
      cJSON_AddStringToObject(o, "node", p->name);
      httpd_respond_json(req, 201, o);
    } else {
      atomic_fetch_add(&np->claims_failed, 1);
      if (rc == -ENOENT)
        post_reply_error(req, 404, "no such template", "template");
      else if (rc == -EINVAL)
        post_reply_error(req, 400, err.msg, "tenant");
      else
        post_reply_error(req, 503, err.msg[0] ? err.msg : strerror(-rc), NULL);
    }
  }
  cJSON_Delete(body);
}

static void serve_list(post *p, httpd_req *req) {
  node_post *np = p->tier_state;
  const char *tenant = httpd_query(req, "tenant"), *nsn = httpd_query(req, "namespace");
  const char *state = httpd_query(req, "state");
  cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "environments");
  for (size_t i = 0; i < np->n_ns; i++) {
    if (nsn && strcmp(nsn, np->ns[i].name)) continue;
    pool_env *envs;
    size_t n;
    if (pool_list(np->ns[i].pool, tenant, &envs, &n)) continue;
    for (size_t j = 0; j < n; j++)
      if (!state || !strcmp(state, pool_env_state_name(envs[j].state)))
        cJSON_AddItemToArray(arr, env_json(p, &np->ns[i], &envs[j]));
    free(envs);
  }
  httpd_respond_json(req, 200, o);
}

static void serve_capacity(post *p, httpd_req *req) {
  node_post *np = p->tier_state;
  cJSON *o = cJSON_CreateObject();
  cJSON *warm = cJSON_CreateObject();
  long used = count_used(np, warm);
  cJSON_AddStringToObject(o, "node", p->name);
  cJSON_AddNumberToObject(o, "max", (double)p->cfg.max_envs);
  cJSON_AddNumberToObject(o, "used", (double)used);
  cJSON_AddNumberToObject(o, "free", (double)(used < p->cfg.max_envs ? p->cfg.max_envs - used : 0));
  cJSON_AddItemToObject(o, "warm", warm);
  cJSON *nss = cJSON_AddArrayToObject(o, "namespaces");
  for (size_t i = 0; i < np->n_ns; i++)
    cJSON_AddItemToArray(nss, cJSON_CreateString(np->ns[i].name));
  httpd_respond_json(req, 200, o);
}

/* Parses {"argv": [...], "timeout_ms": N}; answers 400 itself on error. */
static bool exec_args(httpd_req *req, const cJSON *body, const char **argv, size_t max,
                      long *timeout_ms) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(body, "argv"), *s;
  size_t n = 0;
  bool ok = cJSON_IsArray(a) && cJSON_GetArraySize(a) > 0 && (size_t)cJSON_GetArraySize(a) < max;
  cJSON_ArrayForEach(s, a) {
    if (!ok || !cJSON_IsString(s)) {
      ok = false;
      break;
    }
    argv[n++] = s->valuestring;
  }
  argv[n] = NULL;
  if (!ok) {
    post_reply_error(req, 400, "argv: a non-empty array of strings is required", "argv");
    return false;
  }
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "timeout_ms");
  *timeout_ms = 30000;
  if (t && (!cJSON_IsNumber(t) || t->valuedouble < 1 || t->valuedouble > 600000)) {
    post_reply_error(req, 400, "timeout_ms: 1 to 600000", "timeout_ms");
    return false;
  }
  if (t) *timeout_ms = (long)t->valuedouble;
  return true;
}

static void serve_exec(post *p, httpd_req *req, node_ns *ns, const pool_env *e) {
  node_post *np = p->tier_state;
  cJSON *body = post_body_json(req);
  if (!body) return;
  const char *argv[65];
  long timeout_ms;
  if (!exec_args(req, body, argv, 65, &timeout_ms)) {
    cJSON_Delete(body);
    return;
  }
  pool_touch(ns->pool, e->id); /* a command is the tenant's activity */
  posts_exec_req x = {.argv = argv, .timeout_ms = timeout_ms, .max_output = 256 * 1024};
  posts_exec_result res = {0};
  posts_err err = {0};
  int rc = posts_env_exec(np->rt, e->id, &x, &res, &err);
  atomic_fetch_add(&np->execs, 1);
  if (rc == 0 || rc == -ETIMEDOUT) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "exit_code", res.exit_code);
    cJSON_AddStringToObject(o, "stdout", res.out ? res.out : "");
    cJSON_AddStringToObject(o, "stderr", res.err ? res.err : "");
    cJSON_AddBoolToObject(o, "truncated", res.truncated);
    cJSON_AddBoolToObject(o, "timed_out", rc == -ETIMEDOUT);
    httpd_respond_json(req, 200, o);
  } else if (rc == -EBUSY) {
    post_reply_error(req, 409, "the environment is not running", NULL);
  } else {
    post_reply_error(req, rc == -ENOENT ? 404 : 503, err.msg[0] ? err.msg : strerror(-rc), NULL);
  }
  posts_exec_result_cleanup(&res);
  cJSON_Delete(body);
}

/* /v1/environments/<name>[/touch|/exec] */
static void serve_env(post *p, httpd_req *req, const char *m, const char *rest) {
  node_post *np = p->tier_state;
  char name[64];
  const char *slash = strchr(rest, '/');
  size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
  const char *verb = slash ? slash + 1 : "";
  pool_env e;
  node_ns *ns = NULL;
  if (len && len < sizeof name) {
    memcpy(name, rest, len);
    name[len] = '\0';
    ns = env_by_name(np, name, &e);
  }
  if (!ns) return post_reply_error(req, 404, "no such environment", NULL);
  if (!*verb && !strcmp(m, "GET")) return httpd_respond_json(req, 200, env_json(p, ns, &e));
  if (!*verb && !strcmp(m, "DELETE")) {
    posts_err err = {0};
    int rc = pool_release(ns->pool, e.id, &err);
    if (rc == 0) atomic_fetch_add(&np->releases, 1);
    if (rc == 0) return httpd_respond(req, 204, NULL, NULL, 0, NULL, 0);
    if (rc == -ENOENT) return post_reply_error(req, 409, "the environment is not claimed", NULL);
    if (rc == -EBUSY) return post_reply_error(req, 409, "the environment is busy", NULL);
    return post_reply_error(req, 503, err.msg[0] ? err.msg : strerror(-rc), NULL);
  }
  if (!strcmp(verb, "touch") && !strcmp(m, "POST")) {
    if (pool_touch(ns->pool, e.id)) return post_reply_error(req, 409, "not claimed", NULL);
    return httpd_respond(req, 204, NULL, NULL, 0, NULL, 0);
  }
  if (!strcmp(verb, "exec") && !strcmp(m, "POST")) return serve_exec(p, req, ns, &e);
  post_reply_error(req, 405, "method not allowed", NULL);
}

static bool node_route(post *p, httpd_req *req, const char *m, const char *path) {
  static const char envs[] = "/v1/environments";
  if (!strcmp(path, "/v1/claims")) {
    if (strcmp(m, "POST"))
      post_reply_error(req, 405, "POST only", NULL);
    else
      serve_claim(p, req);
  } else if (!strcmp(path, envs)) {
    if (strcmp(m, "GET"))
      post_reply_error(req, 405, "GET only", NULL);
    else
      serve_list(p, req);
  } else if (!strncmp(path, envs, sizeof envs - 1) && path[sizeof envs - 1] == '/') {
    serve_env(p, req, m, path + sizeof envs);
  } else if (!strcmp(path, "/v1/capacity") && !strcmp(m, "GET")) {
    serve_capacity(p, req);
  } else {
    return false;
  }
  return true;
}

static void node_metrics(post *p, ce_buf *out) {
  node_post *np = p->tier_state;
  static const char *c = "outpost_post_node_claims_total";
  metrics_family(out, c, "counter", "claims served by this node post");
  metrics_sample(out, c, "result=\"warm\"", atomic_load(&np->claims_warm));
  metrics_sample(out, c, "result=\"cold\"", atomic_load(&np->claims_cold));
  metrics_sample(out, c, "result=\"failed\"", atomic_load(&np->claims_failed));
  metrics_family(out, "outpost_post_node_releases_total", "counter", "environments released");
  metrics_sample(out, "outpost_post_node_releases_total", NULL, atomic_load(&np->releases));
  metrics_family(out, "outpost_post_node_execs_total", "counter", "commands run");
  metrics_sample(out, "outpost_post_node_execs_total", NULL, atomic_load(&np->execs));
  metrics_family(out, "outpost_post_node_used", "gauge", "claimed environments on the node");
  metrics_sample(out, "outpost_post_node_used", NULL, (uint64_t)count_used(np, NULL));
  metrics_family(out, "outpost_post_node_runtime_gone_total", "counter",
                 "environments the runtime's watch said went away outside the pool");
  metrics_sample(out, "outpost_post_node_runtime_gone_total", NULL, atomic_load(&np->rt_gone));
  post_watch_metrics(atomic_load(&np->watch), out);
}

const post_tier post_tier_node = {
    .name = "node",
    .start = node_start,
    .started = node_started,
    .stop = node_stop,
    .route = node_route,
    .metrics = node_metrics,
    .ready = node_ready,
};
