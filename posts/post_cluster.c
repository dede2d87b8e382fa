/*
 * post_cluster.c — the cluster post: the Labs REST API's front door.
 * Tenants authenticate with their bearer token and see only their own labs
 * (another tenant's is 404, so that names do not leak); operators use the
 * admin token. A new lab goes to the node post with the most free capacity
 * (each node post's /v1/capacity, the auction of seeds/003), within the
 * tenant's quota, unless the tenant is quarantined by its namespace's
 * policy (learnt from dev.outpost.quarantine.* events on /events, kept in a
 * state file). Labs themselves are not kept here: the node posts and the
 * runtime hold them, so this post can die and come back without losing
 * any. On one machine it starts the node post as its supervised child
 * unless --node-post URLs are given.
 */
#include "posts/post_int.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"

#define MAX_TENANTS 1024

typedef struct tenant_tok {
  char tenant[64];
  char token[256];
} tenant_tok;

typedef struct cluster_post {
  tenant_tok tokens[MAX_TENANTS];
  size_t n_tokens;
  char nodes[POST_MAX_REPEATED][256]; /* node posts' base URLs */
  size_t n_nodes;
  const char *ns;           /* the tenants' namespace */
  pthread_mutex_t claim_mu; /* quota check and claim, one at a time */
  pthread_mutex_t mu;       /* the quarantine set */
  char quarantined[MAX_TENANTS][64];
  size_t n_quarantined;
  char state_path[PATH_MAX];
  _Atomic uint64_t created, refused_quota, refused_quarantine, unauthorized, no_node;
} cluster_post;

/* ------------------------------------------------------------- set-up */

static int add_token(post *p, cluster_post *cp, const char *tenant, size_t tlen, const char *tok) {
  if (cp->n_tokens == MAX_TENANTS || tlen >= 64 || strlen(tok) >= 256 || !*tok) return -EINVAL;
  tenant_tok *t = &cp->tokens[cp->n_tokens];
  memcpy(t->tenant, tenant, tlen);
  t->tenant[tlen] = '\0';
  snprintf(t->token, sizeof t->token, "%s", tok);
  if (!post_valid_name(t->tenant)) {
    post_log(p, "tenant '%s' is not a DNS label", t->tenant);
    return -EINVAL;
  }
  cp->n_tokens++;
  return 0;
}

/* Lines "tenant token"; '#' starts a comment. */
static int load_tokens(post *p, cluster_post *cp, const char *path) {
  FILE *f = fopen(path, "re");
  if (!f) {
    post_log(p, "cannot open %s: %s", path, strerror(errno));
    return -errno;
  }
  char line[512], tenant[128], tok[300];
  int rc = 0;
  while (!rc && fgets(line, sizeof line, f)) {
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    int n = sscanf(line, "%127s %299s", tenant, tok);
    if (n <= 0) continue;
    if (n != 2) rc = -EINVAL;
    if (!rc) rc = add_token(p, cp, tenant, strlen(tenant), tok);
  }
  fclose(f);
  if (rc) post_log(p, "%s: bad line (want 'tenant token')", path);
  return rc;
}

static void quarantine_load(cluster_post *cp) {
  FILE *f = fopen(cp->state_path, "re");
  if (!f) return;
  char buf[65536];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  cJSON *j = cJSON_ParseWithLength(buf, n), *t;
  cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(j, "quarantined")) {
    if (cJSON_IsString(t) && post_valid_name(t->valuestring) && cp->n_quarantined < MAX_TENANTS)
      snprintf(cp->quarantined[cp->n_quarantined++], 64, "%s", t->valuestring);
  }
  cJSON_Delete(j);
}

/* Under cp->mu. */
static void quarantine_save(post *p, cluster_post *cp) {
  cJSON *j = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(j, "quarantined");
  for (size_t i = 0; i < cp->n_quarantined; i++)
    cJSON_AddItemToArray(arr, cJSON_CreateString(cp->quarantined[i]));
  char *text = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  int rc = text ? post_write_file(cp->state_path, text, strlen(text)) : -ENOMEM;
  free(text);
  if (rc) post_log(p, "cannot write %s: %s", cp->state_path, strerror(-rc));
}

static int cluster_start(post *p) {
  cluster_post *cp = calloc(1, sizeof *cp);
  if (!cp) return -ENOMEM;
  p->tier_state = cp;
  pthread_mutex_init(&cp->claim_mu, NULL);
  pthread_mutex_init(&cp->mu, NULL);
  cp->ns = p->cfg.n_namespaces ? p->cfg.namespaces[0] : "labs";
  for (size_t i = 0; i < p->cfg.n_tenant_tokens; i++) {
    const char *tt = p->cfg.tenant_tokens[i], *eq = strchr(tt, '=');
    if (!eq || add_token(p, cp, tt, (size_t)(eq - tt), eq + 1)) {
      post_log(p, "--tenant-token wants TENANT=TOKEN, not '%s'", tt);
      return -EINVAL;
    }
  }
  int rc = p->cfg.tokens_file ? load_tokens(p, cp, p->cfg.tokens_file) : 0;
  if (rc) return rc;
  for (size_t i = 0; i < p->cfg.n_node_posts; i++) {
    snprintf(cp->nodes[i], sizeof cp->nodes[i], "%s", p->cfg.node_posts[i]);
    size_t len = strlen(cp->nodes[i]);
    if (len && cp->nodes[i][len - 1] == '/') cp->nodes[i][len - 1] = '\0';
  }
  cp->n_nodes = p->cfg.n_node_posts;
  snprintf(cp->state_path, sizeof cp->state_path, "%s/cluster.json", p->cfg.state_dir);
  quarantine_load(cp);
  return 0;
}

/* Without --node-post, the node post of this machine is this post's child. */
static void cluster_started(post *p) {
  cluster_post *cp = p->tier_state;
  if (cp->n_nodes) return;
  char listen[96], health[160], state[PATH_MAX], max[24], nsport[24];
  const char *node = p->cfg.node ? p->cfg.node : "node-1";
  if (p->cfg.node_listen)
    snprintf(listen, sizeof listen, "%s", p->cfg.node_listen);
  else
    snprintf(listen, sizeof listen, "%s:%u", p->cfg.host, (unsigned)(p->cfg.port + 1));
  snprintf(cp->nodes[0], sizeof cp->nodes[0], "http://%s", listen);
  cp->n_nodes = 1;
  snprintf(health, sizeof health, "http://%s/healthz", listen);
  snprintf(state, sizeof state, "%s/node-%s", p->cfg.state_dir, node);
  snprintf(max, sizeof max, "%ld", p->cfg.max_envs);
  const char *argv[32] = {"outpost",    "post", "--tier",      "node", "--node",      node,
                          "--listen",   listen, "--namespace", cp->ns, "--state-dir", state,
                          "--max-envs", max};
  size_t n = 14;
  if (p->cfg.config) argv[n++] = "--config", argv[n++] = p->cfg.config;
  if (p->cfg.broker_url) argv[n++] = "--broker-url", argv[n++] = p->cfg.broker_url;
  if (p->cfg.socket) argv[n++] = "--socket", argv[n++] = p->cfg.socket;
  if (p->cfg.ns_port) {
    snprintf(nsport, sizeof nsport, "%u", (unsigned)p->cfg.ns_port);
    argv[n++] = "--ns-port", argv[n++] = nsport;
  }
  if (!(p->sup = post_sup_new(p))) return;
  post_sup_add(p->sup, "node", node, health, argv);
  post_sup_start(p->sup);
}

static void cluster_stop(post *p) {
  cluster_post *cp = p->tier_state;
  pthread_mutex_destroy(&cp->claim_mu);
  pthread_mutex_destroy(&cp->mu);
  free(cp);
}

/* ------------------------------------------------------------- auth */

static bool same(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  unsigned char d = la != lb;
  for (size_t i = 0; i < la; i++) d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
  return d == 0;
}

/* The caller: a tenant's name, "" for the admin, NULL (answered 401). */
static const char *authenticate(post *p, httpd_req *req) {
  cluster_post *cp = p->tier_state;
  const char *h = httpd_header(req, "Authorization");
  if (h && !strncmp(h, "Bearer ", 7)) {
    const char *tok = h + 7;
    if (p->cfg.admin_token && same(tok, p->cfg.admin_token)) return "";
    for (size_t i = 0; i < cp->n_tokens; i++)
      if (same(tok, cp->tokens[i].token)) return cp->tokens[i].tenant;
  }
  atomic_fetch_add(&cp->unauthorized, 1);
  static const char *const www[] = {"WWW-Authenticate", "Bearer"};
  const char *body = h ? "{\"error\":\"bad token\"}" : "{\"error\":\"a bearer token is required\"}";
  httpd_respond(req, 401, "application/json", body, strlen(body), www, 1);
  return NULL;
}

static bool is_quarantined(cluster_post *cp, const char *tenant) {
  bool q = false;
  pthread_mutex_lock(&cp->mu);
  for (size_t i = 0; i < cp->n_quarantined && !q; i++) q = !strcmp(cp->quarantined[i], tenant);
  pthread_mutex_unlock(&cp->mu);
  return q;
}

/* ------------------------------------------------------------- labs */

/* What a tenant sees of an environment (the runtime id stays inside). */
static cJSON *lab_of(cJSON *env) {
  cJSON_DeleteItemFromObjectCaseSensitive(env, "id");
  cJSON_DeleteItemFromObjectCaseSensitive(env, "recovered");
  return env;
}

static bool is_lab(const cJSON *env) {
  const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(env, "state"));
  const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(env, "tenant"));
  return st && t && *t && strcmp(st, "warm") && strcmp(st, "removing");
}

/* The labs of tenant (NULL: all) on every node into arr (may be NULL: only
 * counted). *down counts the node posts that did not answer. */
static long list_labs(post *p, const char *tenant, cJSON *arr, size_t *down) {
  cluster_post *cp = p->tier_state;
  long n = 0;
  *down = 0;
  for (size_t i = 0; i < cp->n_nodes; i++) {
    char url[512];
    cJSON *j = NULL, *e;
    snprintf(url, sizeof url, "%s/v1/environments%s%s", cp->nodes[i], tenant ? "?tenant=" : "",
             tenant ? tenant : "");
    long st = post_call_json(p, "GET", url, NULL, 3000, &j);
    if (st != 200) (*down)++;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "environments")) {
      if (!is_lab(e)) continue;
      n++;
      if (arr) cJSON_AddItemToArray(arr, lab_of(cJSON_Duplicate(e, 1)));
    }
    cJSON_Delete(j);
  }
  return n;
}

/* Finds lab name for caller ("" admin). Returns the node index and the
 * environment (*env, caller frees), or answers 404/503 itself and -1. */
static int find_lab(post *p, httpd_req *req, const char *caller, const char *name, cJSON **env) {
  cluster_post *cp = p->tier_state;
  size_t down = 0;
  *env = NULL;
  if (post_valid_name(name)) {
    for (size_t i = 0; i < cp->n_nodes; i++) {
      char url[512];
      cJSON *j = NULL;
      snprintf(url, sizeof url, "%s/v1/environments/%s", cp->nodes[i], name);
      long st = post_call_json(p, "GET", url, NULL, 3000, &j);
      const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "tenant"));
      if (st == 200 && is_lab(j) && t && (!*caller || !strcmp(t, caller))) {
        *env = j;
        return (int)i;
      }
      down += st != 200 && st != 404;
      cJSON_Delete(j);
    }
  }
  /* Another tenant's lab is "not found" too: its name must not leak. */
  if (down)
    post_reply_error(req, 503, "a node post is unavailable; try again", NULL);
  else
    post_reply_error(req, 404, "no such lab", NULL);
  return -1;
}

/* The node with the most free capacity, -1 when none answers or has room;
 * skip[i] marks nodes that already failed this claim. */
static int place(post *p, const char *tpl, const bool *skip, bool *any_answered) {
  cluster_post *cp = p->tier_state;
  int best = -1;
  double best_free = 0, best_warm = 0;
  for (size_t i = 0; i < cp->n_nodes; i++) {
    char url[512];
    cJSON *j = NULL;
    if (skip[i]) continue;
    snprintf(url, sizeof url, "%s/v1/capacity", cp->nodes[i]);
    if (post_call_json(p, "GET", url, NULL, 2000, &j) == 200) {
      *any_answered = true;
      double fr = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "free"));
      const cJSON *w =
          cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "warm"), tpl);
      double warm = cJSON_IsNumber(w) ? w->valuedouble : 0;
      /* Most free slots; a warm environment breaks ties (a faster claim). */
      if (fr >= 1 && (best < 0 || fr > best_free || (fr == best_free && warm > best_warm))) {
        best = (int)i;
        best_free = fr;
        best_warm = warm;
      }
    }
    cJSON_Delete(j);
  }
  return best;
}

static void reply_quota(httpd_req *req, long quota, long used) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "error", "quota exceeded: give a lab back first");
  cJSON_AddNumberToObject(o, "quota", (double)quota);
  cJSON_AddNumberToObject(o, "used", (double)used);
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  static const char *const extra[] = {"Retry-After", "30"};
  httpd_respond(req, 429, "application/json", text, text ? strlen(text) : 0, extra, 1);
  free(text);
}

/* Claims on the best node, then the next best when one fails for want of
 * room or by dying; answers the request. Under claim_mu. */
static void claim_on_best(post *p, httpd_req *req, const char *tenant, const char *tpl) {
  cluster_post *cp = p->tier_state;
  bool skip[POST_MAX_REPEATED] = {false}, answered = false;
  cJSON *body = cJSON_CreateObject();
  cJSON_AddStringToObject(body, "template", tpl);
  cJSON_AddStringToObject(body, "tenant", tenant);
  cJSON_AddStringToObject(body, "namespace", cp->ns);
  for (;;) {
    int i = place(p, tpl, skip, &answered);
    if (i < 0) {
      atomic_fetch_add(&cp->no_node, 1);
      post_reply_error(req, 503, answered ? "no node has room" : "no node post answers", NULL);
      break;
    }
    char url[512];
    cJSON *j = NULL;
    snprintf(url, sizeof url, "%s/v1/claims", cp->nodes[i]);
    long st = post_call_json(p, "POST", url, body, 180000, &j);
    if (st == 201) {
      atomic_fetch_add(&cp->created, 1);
      cJSON_AddStringToObject(j, "template", tpl);
      cJSON_AddStringToObject(j, "tenant", tenant);
      post_log(p, "lab %s of %s for %s on %s (%s)",
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "name")), tpl, tenant,
               cp->nodes[i],
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "warm")) ? "warm" : "cold");
      post_reply_json(req, 201, lab_of(j));
      break;
    }
    if (st == 400 || st == 404) { /* the request's fault: the same everywhere */
      const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
      const char *f = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "field"));
      post_reply_error(req, st == 404 ? 404 : 400, e ? e : "refused", f);
      cJSON_Delete(j);
      break;
    }
    cJSON_Delete(j);
    skip[i] = true;
  }
  cJSON_Delete(body);
}

static void serve_create(post *p, httpd_req *req, const char *caller) {
  cluster_post *cp = p->tier_state;
  cJSON *body = post_body_json(req);
  if (!body) return;
  const char *tpl = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "template"));
  if (!*caller) {
    post_reply_error(req, 400, "labs are claimed with a tenant's token", NULL);
  } else if (!post_valid_name(tpl)) {
    post_reply_error(req, 400, "template: a template name is required", "template");
  } else if (is_quarantined(cp, caller)) {
    atomic_fetch_add(&cp->refused_quarantine, 1);
    post_reply_error(req, 403, "tenant quarantined by its namespace's policy", NULL);
  } else {
    pthread_mutex_lock(&cp->claim_mu);
    size_t down;
    long used = list_labs(p, caller, NULL, &down);
    if (used >= p->cfg.quota) {
      atomic_fetch_add(&cp->refused_quota, 1);
      reply_quota(req, p->cfg.quota, used);
    } else if (down && down == cp->n_nodes) {
      post_reply_error(req, 503, "no node post answers", NULL);
    } else {
      claim_on_best(p, req, caller, tpl);
    }
    pthread_mutex_unlock(&cp->claim_mu);
  }
  cJSON_Delete(body);
}

static void serve_labs(post *p, httpd_req *req, const char *caller) {
  cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "labs");
  size_t down;
  list_labs(p, *caller ? caller : NULL, arr, &down);
  cJSON_AddNumberToObject(o, "unavailable_nodes", (double)down);
  post_reply_json(req, 200, o);
}

/* /v1/labs/<name>[/exec|/keepalive] */
static void serve_lab(post *p, httpd_req *req, const char *caller, const char *m,
                      const char *rest) {
  cluster_post *cp = p->tier_state;
  char name[64], url[512];
  const char *slash = strchr(rest, '/');
  size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
  const char *verb = slash ? slash + 1 : "";
  if (!len || len >= sizeof name) return post_reply_error(req, 404, "no such lab", NULL);
  memcpy(name, rest, len);
  name[len] = '\0';
  cJSON *env;
  int node = find_lab(p, req, caller, name, &env);
  if (node < 0) return;
  if (!*verb && !strcmp(m, "GET")) return post_reply_json(req, 200, lab_of(env));
  cJSON_Delete(env);
  snprintf(url, sizeof url, "%s/v1/environments/%s%s%s", cp->nodes[node], name, *verb ? "/" : "",
           !strcmp(verb, "keepalive") ? "touch" : verb);
  cJSON *in = NULL, *out = NULL;
  long st;
  if (!*verb && !strcmp(m, "DELETE")) {
    st = post_call_json(p, "DELETE", url, NULL, 60000, &out);
  } else if ((!strcmp(verb, "exec") || !strcmp(verb, "keepalive")) && !strcmp(m, "POST")) {
    if (!strcmp(verb, "exec") && !(in = post_body_json(req))) return;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(in, "timeout_ms");
    long wait = cJSON_IsNumber(t) && t->valuedouble < 600000 ? (long)t->valuedouble : 30000;
    st = post_call_json(p, "POST", url, in, wait + 10000, &out);
  } else {
    return post_reply_error(req, 405, "method not allowed", NULL);
  }
  cJSON_Delete(in);
  if (st < 0) {
    cJSON_Delete(out);
    return post_reply_error(req, 503, "the lab's node post is unavailable; try again", NULL);
  }
  if (st == 204) {
    cJSON_Delete(out);
    return httpd_respond(req, 204, NULL, NULL, 0, NULL, 0);
  }
  if (out) return post_reply_json(req, (unsigned)st, out);
  post_reply_error(req, 502, "the node post's answer was not JSON", NULL);
}

/* ------------------------------------------------------------- quarantine */

static void quarantine_set(post *p, const char *tenant, bool on) {
  cluster_post *cp = p->tier_state;
  pthread_mutex_lock(&cp->mu);
  size_t i = 0;
  while (i < cp->n_quarantined && strcmp(cp->quarantined[i], tenant)) i++;
  bool changed = false;
  if (on && i == cp->n_quarantined && i < MAX_TENANTS) {
    snprintf(cp->quarantined[cp->n_quarantined++], 64, "%s", tenant);
    changed = true;
  } else if (!on && i < cp->n_quarantined) {
    memmove(&cp->quarantined[i], &cp->quarantined[i + 1],
            (cp->n_quarantined - i - 1) * sizeof cp->quarantined[0]);
    cp->n_quarantined--;
    changed = true;
  }
  if (changed) quarantine_save(p, cp);
  pthread_mutex_unlock(&cp->mu);
  if (changed) post_log(p, "tenant %s %s", tenant, on ? "quarantined" : "no longer quarantined");
}

/* Only the ns posts' own events count (source /namespaces/<ns>/post). */
static void cluster_on_event(post *p, ce_event *ev) {
  const char *type = ce_event_get_str(ev, "type"), *src = ce_event_get_str(ev, "source");
  const char *tenant = ce_event_get_str(ev, "tenant");
  bool from_ns = src && !strncmp(src, "/namespaces/", 12) && strlen(src) > 17 &&
                 !strcmp(src + strlen(src) - 5, "/post");
  if (from_ns && post_valid_name(tenant)) {
    if (type && !strcmp(type, POST_EV_QUARANTINE_STARTED)) quarantine_set(p, tenant, true);
    if (type && !strcmp(type, POST_EV_QUARANTINE_LIFTED)) quarantine_set(p, tenant, false);
  }
  ce_event_free(ev);
}

static void serve_quarantine(post *p, httpd_req *req, const char *m, const char *tenant) {
  cluster_post *cp = p->tier_state;
  if (!*tenant && !strcmp(m, "GET")) {
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "quarantined");
    pthread_mutex_lock(&cp->mu);
    for (size_t i = 0; i < cp->n_quarantined; i++)
      cJSON_AddItemToArray(arr, cJSON_CreateString(cp->quarantined[i]));
    pthread_mutex_unlock(&cp->mu);
    return post_reply_json(req, 200, o);
  }
  if (*tenant && !strcmp(m, "DELETE")) {
    if (!is_quarantined(cp, tenant)) return post_reply_error(req, 404, "not quarantined", NULL);
    quarantine_set(p, tenant, false);
    /* The ns post resets its count when it sees this. */
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "tenant", tenant);
    cJSON_AddStringToObject(d, "by", "admin");
    ce_event *ev = post_event_new(p, POST_EV_QUARANTINE_LIFTED, tenant, d);
    if (ev) ce_event_set_str(ev, "tenant", tenant, NULL);
    if (ev) ce_event_set_str(ev, "namespace", cp->ns, NULL);
    post_publish(p, ev);
    return httpd_respond(req, 204, NULL, NULL, 0, NULL, 0);
  }
  post_reply_error(req, 405, "method not allowed", NULL);
}

static bool cluster_route(post *p, httpd_req *req, const char *m, const char *path) {
  static const char labs[] = "/v1/labs", quar[] = "/v1/quarantine";
  bool is_labs = !strncmp(path, labs, sizeof labs - 1) &&
                 (!path[sizeof labs - 1] || path[sizeof labs - 1] == '/');
  bool is_quar = !strncmp(path, quar, sizeof quar - 1) &&
                 (!path[sizeof quar - 1] || path[sizeof quar - 1] == '/');
  if (!is_labs && !is_quar) return false;
  const char *caller = authenticate(p, req);
  if (!caller) return true;
  if (is_quar) {
    if (*caller)
      post_reply_error(req, 404, "no such endpoint", NULL);
    else
      serve_quarantine(p, req, m, path[sizeof quar - 1] ? path + sizeof quar : "");
  } else if (!path[sizeof labs - 1] || !path[sizeof labs]) {
    if (!strcmp(m, "POST"))
      serve_create(p, req, caller);
    else if (!strcmp(m, "GET"))
      serve_labs(p, req, caller);
    else
      post_reply_error(req, 405, "GET or POST", NULL);
  } else {
    serve_lab(p, req, caller, m, path + sizeof labs);
  }
  return true;
}

static void cluster_metrics(post *p, ce_buf *out) {
  cluster_post *cp = p->tier_state;
  static const char *n = "outpost_post_labs_requests_total";
  metrics_family(out, n, "counter", "Labs API outcomes");
  metrics_sample(out, n, "result=\"created\"", atomic_load(&cp->created));
  metrics_sample(out, n, "result=\"quota\"", atomic_load(&cp->refused_quota));
  metrics_sample(out, n, "result=\"quarantined\"", atomic_load(&cp->refused_quarantine));
  metrics_sample(out, n, "result=\"unauthorized\"", atomic_load(&cp->unauthorized));
  metrics_sample(out, n, "result=\"no_node\"", atomic_load(&cp->no_node));
}

const post_tier post_tier_cluster = {
    .name = "cluster",
    .start = cluster_start,
    .started = cluster_started,
    .stop = cluster_stop,
    .route = cluster_route,
    .on_event = cluster_on_event,
    .metrics = cluster_metrics,
};
