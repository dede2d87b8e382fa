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
 * unless --node-post URLs are given; on Kubernetes --node-post-service
 * names a headless Service whose every address is a node post (resolved
 * again every 10 s: node posts come and go with their nodes).
 */
#include "posts/post_int.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "core/metrics.h"
#include "core/resources.h"
#include "posts/template.h"

#define MAX_TENANTS        1024
#define MAX_PENDING        256    /* cold starts remembered (the oldest finished go first) */
#define PROGRESS_STREAM_MS 600000 /* a progress stream ends after 10 minutes at most */
#define PROGRESS_BEAT_MS   15000  /* a comment line on a quiet progress stream this often */
#define CLAIM_STRIPES      16     /* claim locks; a tenant always takes the same one */
#define DISCOVER_MS        10000  /* --node-post-service is resolved again this often */
#define MAX_NODES          256    /* node posts known at once (flags and discovery) */

typedef enum lab_state { LAB_PENDING, LAB_READY, LAB_FAILED } lab_state;

/* A cold start answered 202: followed until it is ready or failed (kept in
 * memory only; a restarted cluster post asks the node posts instead). */
typedef struct pending_lab {
  bool used;
  lab_state state;
  int node;
  char name[64], tenant[64], tpl[64], error[256];
  int64_t requested_ms, done_ms;
} pending_lab;

typedef struct tenant_tok {
  char tenant[64];
  char token[256];
} tenant_tok;

typedef struct cluster_post {
  tenant_tok tokens[MAX_TENANTS];
  size_t n_tokens;
  /* The node posts' base URLs. Only ever appended to (a claim in flight
   * keeps its node's index), each written before n_nodes counts it; one
   * --node-post-service no longer resolves to is marked gone, and skipped. */
  char nodes[MAX_NODES][256];
  _Atomic size_t n_nodes;
  _Atomic bool gone[MAX_NODES];
  int64_t gone_ms[MAX_NODES];    /* since when (monotonic), for reuse; the discovery thread's */
  _Atomic bool discover_failing; /* the last resolution failed (said once per outage) */
  bool table_full_said;          /* the discovery thread's: a full table said once */
  pthread_t discover;
  bool discovering, stopping; /* stopping: under mu, signalled on stop_cv */
  pthread_cond_t stop_cv;
  const char *ns; /* the tenants' namespace */
  /* Quota check and claim, one at a time per tenant (a tenant's stripe):
   * tenants of one class claim in parallel. Placement needs no lock: a node
   * post refuses a claim past its room and the next node is tried. */
  pthread_mutex_t claim_mu[CLAIM_STRIPES];
  pthread_mutex_t mu; /* the quarantine set, pending[], n_threads */
  pthread_cond_t cv;  /* a cold start ended */
  pending_lab pending[MAX_PENDING];
  size_t n_threads; /* cold starts' claim threads still running */
  cJSON *templates; /* what GET /v1/labs shows; NULL without --config */
  char quarantined[MAX_TENANTS][64];
  size_t n_quarantined;
  char state_path[PATH_MAX];
  post_trig *trig; /* registers the trigger of the quarantine events */
  _Atomic uint64_t created, refused_quota, refused_quarantine, unauthorized, no_node;
} cluster_post;

static size_t nodes_n(cluster_post *cp) {
  return atomic_load_explicit(&cp->n_nodes, memory_order_acquire);
}

static bool node_gone(cluster_post *cp, size_t i) {
  return atomic_load(&cp->gone[i]);
}

/* The node posts not gone. */
static size_t nodes_live(cluster_post *cp) {
  size_t live = 0, n = nodes_n(cp);
  for (size_t i = 0; i < n; i++) live += !node_gone(cp, i);
  return live;
}

/* A place among the first n whose node post has been gone --node-post-forget
 * seconds and that no cold start remembers (seen: taken in this pass), or n.
 * Node posts come back with new addresses when their pods are replaced:
 * without reuse a few dozen rollouts would fill the table. The time is
 * longer than a claim's request (3 minutes) so that no request still reads
 * the old URL when it is rewritten. */
static size_t reusable_node(post *p, cluster_post *cp, size_t n, const bool *seen, int64_t now) {
  for (size_t i = 0; i < n; i++) {
    if (seen[i] || !atomic_load(&cp->gone[i]) || now - cp->gone_ms[i] < p->cfg.node_forget_s * 1000)
      continue;
    bool remembered = false;
    pthread_mutex_lock(&cp->mu);
    for (size_t k = 0; k < MAX_PENDING && !remembered; k++)
      remembered = cp->pending[k].used && cp->pending[k].node == (int)i;
    pthread_mutex_unlock(&cp->mu);
    if (!remembered) return i;
  }
  return n;
}

/* Resolves --node-post-service HOST:PORT once: new addresses are added,
 * those it no longer gives are marked gone (and back when they return). */
static void discover_once(post *p, cluster_post *cp) {
  const char *spec = p->cfg.node_post_service, *colon = strrchr(spec, ':');
  char host[256];
  snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
  int rc = getaddrinfo(host, colon + 1, &hints, &res);
  if (rc) {
    /* A Service with no ready endpoint does not resolve: that is not news
     * every 10 s, and the nodes known stay as they are. */
    if (!atomic_exchange(&cp->discover_failing, true))
      post_log(p, "--node-post-service %s: %s (the node posts known stay)", spec, gai_strerror(rc));
    return;
  }
  if (atomic_exchange(&cp->discover_failing, false))
    post_log(p, "--node-post-service %s resolves again", spec);
  bool seen[MAX_NODES] = {0};
  size_t n = nodes_n(cp);
  int64_t now = post_now_ms();
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    char ip[64], url[256];
    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, ip, sizeof ip, NULL, 0, NI_NUMERICHOST)) continue;
    snprintf(url, sizeof url, ai->ai_family == AF_INET6 ? "http://[%s]:%s" : "http://%s:%s", ip,
             colon + 1);
    size_t i = 0;
    while (i < n && strcmp(cp->nodes[i], url)) i++;
    if (i == n) {
      i = reusable_node(p, cp, n, seen, now);
      if (i < n) {
        post_log(p, "node post found at %s (in the place of %s, gone %lld s)", url, cp->nodes[i],
                 (long long)(now - cp->gone_ms[i]) / 1000);
        /* Still gone while rewritten: no request reads a gone node's URL. */
        snprintf(cp->nodes[i], sizeof cp->nodes[i], "%s", url);
      } else if (n == MAX_NODES) {
        if (!cp->table_full_said)
          post_log(p,
                   "node post %s not added: %d node posts are known already, none gone for "
                   "%ld s (said once)",
                   url, MAX_NODES, p->cfg.node_forget_s);
        cp->table_full_said = true;
        continue;
      } else {
        snprintf(cp->nodes[n], sizeof cp->nodes[n], "%s", url);
        atomic_store_explicit(&cp->n_nodes, ++n, memory_order_release);
        post_log(p, "node post found at %s", url);
      }
    }
    seen[i] = true;
  }
  freeaddrinfo(res);
  for (size_t i = 0; i < n; i++) {
    if (atomic_exchange(&cp->gone[i], !seen[i]) != !seen[i]) {
      if (!seen[i]) cp->gone_ms[i] = now;
      post_log(p, "node post %s %s", cp->nodes[i], seen[i] ? "is back" : "is gone");
    }
  }
}

static void *discover_run(void *arg) {
  post *p = arg;
  cluster_post *cp = p->tier_state;
  pthread_mutex_lock(&cp->mu);
  while (!cp->stopping) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += DISCOVER_MS / 1000;
    pthread_cond_timedwait(&cp->stop_cv, &cp->mu, &ts);
    if (cp->stopping) break;
    pthread_mutex_unlock(&cp->mu);
    discover_once(p, cp);
    pthread_mutex_lock(&cp->mu);
  }
  pthread_mutex_unlock(&cp->mu);
  return NULL;
}

/* The tenant's claim lock (FNV-1a of the name). */
static pthread_mutex_t *tenant_mu(cluster_post *cp, const char *tenant) {
  uint32_t h = 2166136261u;
  for (const unsigned char *c = (const unsigned char *)tenant; *c; c++) h = (h ^ *c) * 16777619u;
  return &cp->claim_mu[h % CLAIM_STRIPES];
}

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

/* The quarantine set as quarantine_save wrote it. A file that cannot be read
 * is said, not taken for an empty set without a word: the post then starts
 * with no tenant quarantined. */
static void quarantine_load(post *p, cluster_post *cp) {
  cJSON *all = NULL, *t;
  res_err err;
  /* MAX_TENANTS names of at most 63 bytes, quoted, with commas: < 80 KiB. */
  int rc = res_load_file(cp->state_path, 1 << 20, &all, &err);
  if (rc == -ENOENT) return;
  const cJSON *list = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(all, 0), "quarantined");
  if (rc || !cJSON_IsArray(list))
    post_log(p, "%s: unreadable (%s), no tenant is quarantined", cp->state_path,
             rc ? err.msg : "no \"quarantined\" list");
  cJSON_ArrayForEach(t, list) {
    if (cJSON_IsString(t) && post_valid_name(t->valuestring) && cp->n_quarantined < MAX_TENANTS)
      snprintf(cp->quarantined[cp->n_quarantined++], 64, "%s", t->valuestring);
  }
  cJSON_Delete(all);
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

/* The LabTemplates of the config file, as GET /v1/labs shows them. */
static int load_templates(post *p, cluster_post *cp, const char *path) {
  cJSON *all = NULL;
  res_err rerr;
  int rc = res_load_file(path, 4 << 20, &all, &rerr);
  if (rc) {
    post_log(p, "%s: %s", path, rerr.msg);
    return rc;
  }
  const cJSON *res;
  cp->templates = cJSON_CreateArray();
  cJSON_ArrayForEach(res, all) {
    if (!res_is(res, "outpost.dev", "LabTemplate")) continue;
    pool_template_err terr;
    memset(&terr, 0, sizeof terr);
    pool_template *t = pool_template_parse(res, &terr);
    if (!t) {
      post_log(p, "%s: LabTemplate refused at %s: %s", path, terr.path, terr.msg);
      rc = -EINVAL;
      break;
    }
    cJSON *o = cJSON_CreateObject(), *lim = cJSON_CreateObject(), *pool = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "image", t->image);
    if (t->pids_limit) cJSON_AddNumberToObject(lim, "pids", (double)t->pids_limit);
    if (t->memory_bytes) cJSON_AddNumberToObject(lim, "memory_bytes", (double)t->memory_bytes);
    if (t->nano_cpus) cJSON_AddNumberToObject(lim, "cpus", (double)t->nano_cpus / 1e9);
    cJSON_AddItemToObject(o, "limits", lim);
    cJSON_AddBoolToObject(o, "network", t->network);
    if (t->run_as_user) cJSON_AddNumberToObject(o, "run_as_user", (double)t->run_as_user);
    cJSON_AddNumberToObject(o, "idle_timeout_ms", (double)t->idle_timeout_ms);
    cJSON_AddNumberToObject(pool, "min", t->pool_min);
    cJSON_AddNumberToObject(pool, "max", t->pool_max);
    cJSON_AddItemToObject(o, "pool", pool);
    cJSON_AddItemToArray(cp->templates, o);
    pool_template_free(t);
  }
  cJSON_Delete(all);
  return rc;
}

static int cluster_start(post *p) {
  cluster_post *cp = calloc(1, sizeof *cp);
  if (!cp) return -ENOMEM;
  p->tier_state = cp;
  for (size_t i = 0; i < CLAIM_STRIPES; i++) pthread_mutex_init(&cp->claim_mu[i], NULL);
  pthread_mutex_init(&cp->mu, NULL);
  pthread_cond_init(&cp->cv, NULL);
  pthread_cond_init(&cp->stop_cv, NULL);
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
  if (p->cfg.node_post_service) {
    discover_once(p, cp);
    cp->discovering = !pthread_create(&cp->discover, NULL, discover_run, p);
    if (!cp->discovering) return -EAGAIN;
  }
  snprintf(cp->state_path, sizeof cp->state_path, "%s/cluster.json", p->cfg.state_dir);
  quarantine_load(p, cp);
  return p->cfg.config ? load_templates(p, cp, p->cfg.config) : 0;
}

/* Trigger cluster-post: the ns posts' quarantine events come back here. */
static void register_trigger(post *p, cluster_post *cp) {
  char uri[160];
  snprintf(uri, sizeof uri, "http://%s:%u/events", post_advertised_host(p), (unsigned)p->cfg.port);
  cJSON *tr = post_trig_resource(p, "cluster-post", uri);
  if (!tr) return;
  cJSON *prefix = cJSON_CreateObject();
  cJSON_AddStringToObject(cJSON_AddObjectToObject(prefix, "prefix"), "type",
                          "dev.outpost.quarantine.");
  cJSON_AddItemToArray(
      cJSON_AddArrayToObject(cJSON_GetObjectItemCaseSensitive(tr, "spec"), "filters"), prefix);
  cJSON *all = cJSON_CreateArray();
  cJSON_AddItemToArray(all, tr);
  cp->trig = post_trig_start(p, all);
}

/* The flags the node post started here gets from this one (its tokens go
 * through its environment: post_pass_tokens). */
static size_t node_flags(post *p, const char **argv, size_t n, char *nsport) {
  if (p->cfg.config) argv[n++] = "--config", argv[n++] = p->cfg.config;
  if (p->cfg.broker_url) argv[n++] = "--broker-url", argv[n++] = p->cfg.broker_url;
  if (p->cfg.no_register_triggers) argv[n++] = "--no-register-triggers";
  if (p->cfg.socket) argv[n++] = "--socket", argv[n++] = p->cfg.socket;
  if (p->cfg.detector_url) argv[n++] = "--detector-url", argv[n++] = p->cfg.detector_url;
  if (p->cfg.trigger_api) argv[n++] = "--trigger-api", argv[n++] = p->cfg.trigger_api;
  if (p->cfg.advertise_host) argv[n++] = "--advertise-host", argv[n++] = p->cfg.advertise_host;
  if (p->cfg.ns_port) {
    snprintf(nsport, 24, "%u", (unsigned)p->cfg.ns_port);
    argv[n++] = "--ns-port", argv[n++] = nsport;
  }
  return n;
}

/* Without --node-post, the node post of this machine is this post's child. */
static void cluster_started(post *p) {
  cluster_post *cp = p->tier_state;
  register_trigger(p, cp);
  if (nodes_n(cp) || p->cfg.node_post_service) return;
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
  const char *argv[40] = {"outpost",    "post", "--tier",      "node", "--node",      node,
                          "--listen",   listen, "--namespace", cp->ns, "--state-dir", state,
                          "--max-envs", max};
  node_flags(p, argv, 14, nsport);
  if (!(p->sup = post_sup_new(p))) return;
  if (!post_sup_add(p->sup, "node", node, health, argv) &&
      post_pass_tokens(p, node,
                       POST_TOK_BROKER | POST_TOK_DETECTOR | POST_TOK_INTERNAL | POST_TOK_INGRESS))
    post_log(p, "node post %s: its tokens: out of memory", node);
  post_sup_start(p->sup);
}

static void cluster_stop(post *p) {
  cluster_post *cp = p->tier_state;
  post_trig_free(cp->trig);
  pthread_mutex_lock(&cp->mu);
  cp->stopping = true;
  pthread_cond_signal(&cp->stop_cv);
  pthread_mutex_unlock(&cp->mu);
  if (cp->discovering) pthread_join(cp->discover, NULL);
  pthread_cond_destroy(&cp->stop_cv);
  /* The node posts are stopped by now: the claims end soon. */
  pthread_mutex_lock(&cp->mu);
  while (cp->n_threads) pthread_cond_wait(&cp->cv, &cp->mu);
  pthread_mutex_unlock(&cp->mu);
  pthread_cond_destroy(&cp->cv);
  cJSON_Delete(cp->templates);
  for (size_t i = 0; i < CLAIM_STRIPES; i++) pthread_mutex_destroy(&cp->claim_mu[i]);
  pthread_mutex_destroy(&cp->mu);
  free(cp);
}

/* ------------------------------------------------------------- auth */

/* The caller: a tenant's name, "" for the admin, NULL (answered 401). */
static const char *authenticate(post *p, httpd_req *req) {
  cluster_post *cp = p->tier_state;
  const char *tok = httpd_bearer(req);
  if (tok) {
    if (httpd_same_secret(tok, p->cfg.admin_token)) return "";
    for (size_t i = 0; i < cp->n_tokens; i++)
      if (httpd_same_secret(tok, cp->tokens[i].token)) return cp->tokens[i].tenant;
  }
  atomic_fetch_add(&cp->unauthorized, 1);
  static const char *const www[] = {"WWW-Authenticate", "Bearer"};
  const char *body = httpd_header(req, "Authorization")
                         ? "{\"error\":\"bad token\"}"
                         : "{\"error\":\"a bearer token is required\"}";
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

/* What a tenant sees of an environment (the runtime id stays inside): the
 * node's record, its status (pending, ready) and where to reach it. */
static cJSON *lab_of(cJSON *env) {
  cJSON_DeleteItemFromObjectCaseSensitive(env, "id");
  cJSON_DeleteItemFromObjectCaseSensitive(env, "recovered");
  const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(env, "state"));
  const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(env, "name"));
  const char *tpl = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(env, "template"));
  bool ready = st && !strcmp(st, "claimed");
  if (!cJSON_GetObjectItemCaseSensitive(env, "status"))
    cJSON_AddStringToObject(env, "status", ready || !st ? "ready" : "pending");
  if (name && tpl) {
    char base[200], url[240];
    snprintf(base, sizeof base, "/v1/labs/%s/environments/%s", tpl, name);
    cJSON_AddStringToObject(env, "url", base);
    snprintf(url, sizeof url, "%s/exec", base);
    cJSON_AddStringToObject(env, "exec_url", url);
    snprintf(url, sizeof url, "%s/progress", base);
    cJSON_AddStringToObject(env, "progress", url);
  }
  const cJSON *idle = cJSON_GetObjectItemCaseSensitive(env, "idle_ms");
  if (ready && cJSON_IsNumber(idle)) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    cJSON_AddNumberToObject(env, "last_activity_unix_ms",
                            (double)(now - (int64_t)idle->valuedouble));
  }
  return env;
}

static bool is_lab(const cJSON *env) {
  const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(env, "state"));
  const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(env, "tenant"));
  return st && t && *t && strcmp(st, "warm") && strcmp(st, "removing");
}

/* GETs path from every node post not gone (nor skipped: skip may be NULL),
 * side by side, so that one slow node post delays a request by its own
 * answer time and not by the sum over nodes: st[i] and j[i] (the caller
 * deletes) for node i, 0 and NULL for one not asked. Returns the node
 * count. */
static size_t ask_nodes(post *p, const char *path, const bool *skip, long timeout_ms, long *st,
                        cJSON **j) {
  cluster_post *cp = p->tier_state;
  size_t n = nodes_n(cp), k = 0;
  for (size_t i = 0; i < n; i++) {
    st[i] = 0;
    j[i] = NULL;
  }
  /* The URLs, then the indexes, answers and statuses of those asked. */
  char(*urls)[512] = calloc(n ? n : 1, sizeof *urls);
  const char **u = calloc(n ? n : 1, sizeof *u);
  size_t *idx = calloc(n ? n : 1, sizeof *idx);
  long *kst = calloc(n ? n : 1, sizeof *kst);
  cJSON **kj = calloc(n ? n : 1, sizeof *kj);
  if (!urls || !u || !idx || !kst || !kj) {
    for (size_t i = 0; i < n; i++) st[i] = -ENOMEM; /* said as a node post not answering */
  } else {
    for (size_t i = 0; i < n; i++) {
      if (node_gone(cp, i) || (skip && skip[i])) continue;
      snprintf(urls[k], sizeof urls[k], "%s%s", cp->nodes[i], path);
      u[k] = urls[k];
      idx[k++] = i;
    }
    if (k) post_call_json_each(p, "GET", u, k, NULL, timeout_ms, kst, kj);
    for (size_t x = 0; x < k; x++) {
      st[idx[x]] = kst[x];
      j[idx[x]] = kj[x];
    }
  }
  free(urls);
  free(u);
  free(idx);
  free(kst);
  free(kj);
  return n;
}

/* The labs of tenant (NULL: all) and of template tpl (NULL: any) on every
 * node into arr (may be NULL: only counted). *down counts the node posts
 * that did not answer. */
static long list_labs(post *p, const char *tenant, const char *tpl, cJSON *arr, size_t *down) {
  long n = 0, st[MAX_NODES];
  cJSON *j[MAX_NODES], *e;
  char path[128];
  snprintf(path, sizeof path, "/v1/environments%s%s", tenant ? "?tenant=" : "",
           tenant ? tenant : "");
  *down = 0;
  for (size_t i = 0, n_nodes = ask_nodes(p, path, NULL, 3000, st, j); i < n_nodes; i++) {
    if (!st[i]) continue; /* gone */
    if (st[i] != 200) (*down)++;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j[i], "environments")) {
      const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "template"));
      if (!is_lab(e) || (tpl && (!t || strcmp(t, tpl)))) continue;
      n++;
      if (arr) cJSON_AddItemToArray(arr, lab_of(cJSON_Duplicate(e, 1)));
    }
    cJSON_Delete(j[i]);
  }
  return n;
}

/* The environment name of template tpl for caller ("" admin) on some node:
 * its node index and *env (caller frees); -1 not found (another tenant's
 * neither), -2 not found but a node post did not answer. */
static int lookup_lab(post *p, const char *caller, const char *tpl, const char *name, cJSON **env) {
  size_t down = 0;
  long st[MAX_NODES];
  cJSON *j[MAX_NODES];
  char path[128];
  int found = -1;
  *env = NULL;
  if (!post_valid_name(name)) return -1;
  snprintf(path, sizeof path, "/v1/environments/%s", name);
  for (size_t i = 0, n_nodes = ask_nodes(p, path, NULL, 3000, st, j); i < n_nodes; i++) {
    const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j[i], "tenant"));
    const char *jt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j[i], "template"));
    if (found < 0 && st[i] == 200 && is_lab(j[i]) && t && (!*caller || !strcmp(t, caller)) && jt &&
        !strcmp(jt, tpl)) {
      *env = j[i];
      found = (int)i;
      continue;
    }
    down += st[i] && st[i] != 200 && st[i] != 404;
    cJSON_Delete(j[i]);
  }
  return found >= 0 ? found : down ? -2 : -1;
}

/* The node with the most free capacity, -1 when none answers or has room;
 * skip[i] marks nodes that already failed this claim. *warm: the chosen
 * node's warm environments of tpl. */
static int place(post *p, const char *tpl, const bool *skip, bool *any_answered, double *warm_out) {
  int best = -1;
  double best_free = 0, best_warm = 0;
  long st[MAX_NODES];
  cJSON *j[MAX_NODES];
  for (size_t i = 0, n_nodes = ask_nodes(p, "/v1/capacity", skip, 2000, st, j); i < n_nodes; i++) {
    if (st[i] == 200) {
      *any_answered = true;
      double fr = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j[i], "free"));
      const cJSON *w =
          cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j[i], "warm"), tpl);
      double warm = cJSON_IsNumber(w) ? w->valuedouble : 0;
      /* Most free slots; a warm environment breaks ties (a faster claim). */
      if (fr >= 1 && (best < 0 || fr > best_free || (fr == best_free && warm > best_warm))) {
        best = (int)i;
        best_free = fr;
        best_warm = warm;
      }
    }
    cJSON_Delete(j[i]);
  }
  *warm_out = best_warm;
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

/* ---------------------------------------------------- cold starts */

/* Under cp->mu: the entry of name, or NULL. */
static pending_lab *pending_find(cluster_post *cp, const char *name) {
  for (size_t i = 0; i < MAX_PENDING; i++)
    if (cp->pending[i].used && !strcmp(cp->pending[i].name, name)) return &cp->pending[i];
  return NULL;
}

/* Under cp->mu: a free entry, else the oldest finished one; NULL when all
 * are still pending. */
static pending_lab *pending_slot(cluster_post *cp) {
  pending_lab *old = NULL;
  for (size_t i = 0; i < MAX_PENDING; i++) {
    pending_lab *e = &cp->pending[i];
    if (!e->used) return e;
    if (e->state != LAB_PENDING && (!old || e->done_ms < old->done_ms)) old = e;
  }
  return old;
}

/* One claim on a node, run on its own thread. */
typedef struct claim_job {
  post *p;
  int node;
  char tenant[64], tpl[64], name[64];
  bool done, handed_off; /* under cp->mu */
  long status;
  cJSON *result;
} claim_job;

static void *claim_thread(void *arg) {
  claim_job *job = arg;
  post *p = job->p;
  cluster_post *cp = p->tier_state;
  char url[512];
  cJSON *body = cJSON_CreateObject(), *j = NULL;
  cJSON_AddStringToObject(body, "template", job->tpl);
  cJSON_AddStringToObject(body, "tenant", job->tenant);
  cJSON_AddStringToObject(body, "namespace", cp->ns);
  snprintf(url, sizeof url, "%s/v1/claims", cp->nodes[job->node]);
  long st = post_call_json(p, "POST", url, body, 180000, &j);
  cJSON_Delete(body);
  pthread_mutex_lock(&cp->mu);
  job->status = st;
  job->result = j;
  job->done = true;
  bool mine = job->handed_off;
  if (mine) { /* the request was answered 202: the rest is for progress and GET */
    pending_lab *e = pending_find(cp, job->name);
    const char *err = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
    if (e) {
      e->state = st == 201 ? LAB_READY : LAB_FAILED;
      e->done_ms = post_now_ms();
      snprintf(e->error, sizeof e->error, "%s",
               st == 201 ? ""
               : err     ? err
               : st < 0  ? "the node post did not answer"
                         : "failed");
    }
    if (st == 201) atomic_fetch_add(&cp->created, 1);
  }
  pthread_cond_broadcast(&cp->cv);
  pthread_mutex_unlock(&cp->mu);
  /* !mine: job is the request's now, and freed by it. */
  if (mine) {
    post_log(p, "cold start %s of %s for %s on %s: %s", job->name, job->tpl, job->tenant,
             cp->nodes[job->node], st == 201 ? "ready" : "failed");
    cJSON_Delete(j);
    free(job);
  }
  /* Last: cluster_stop waits for this before freeing cp. */
  pthread_mutex_lock(&cp->mu);
  cp->n_threads--;
  pthread_cond_broadcast(&cp->cv);
  pthread_mutex_unlock(&cp->mu);
  return NULL;
}

/* Whether the node's list of tenant's environments of tpl has one not in
 * before (names joined by '\n'); its name into out. */
static bool new_env_on(post *p, int node, const char *tenant, const char *tpl, const char *before,
                       char *out, size_t outlen) {
  cluster_post *cp = p->tier_state;
  char url[512];
  cJSON *j = NULL, *e;
  bool found = false;
  snprintf(url, sizeof url, "%s/v1/environments?tenant=%s", cp->nodes[node], tenant);
  post_call_json(p, "GET", url, NULL, 3000, &j);
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "environments")) {
    const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name"));
    const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "template"));
    char key[80];
    if (!n || !t || strcmp(t, tpl) || !is_lab(e)) continue;
    snprintf(key, sizeof key, "\n%s\n", n);
    if (!strstr(before, key)) {
      snprintf(out, outlen, "%s", n);
      found = true;
      break;
    }
  }
  cJSON_Delete(j);
  return found;
}

/* The names of tenant's environments on node, "\nname\n..." (caller frees). */
static char *names_on(post *p, int node, const char *tenant) {
  cluster_post *cp = p->tier_state;
  char url[512];
  cJSON *j = NULL, *e;
  ce_buf b = {0};
  ce_buf_append(&b, "\n", 1);
  snprintf(url, sizeof url, "%s/v1/environments?tenant=%s", cp->nodes[node], tenant);
  post_call_json(p, "GET", url, NULL, 3000, &j);
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "environments")) {
    const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name"));
    if (n) ce_buf_append(&b, n, strlen(n)), ce_buf_append(&b, "\n", 1);
  }
  cJSON_Delete(j);
  char *s = strndup(b.data ? b.data : "\n", b.len);
  ce_buf_cleanup(&b);
  return s;
}

/* Answers 201 with a finished claim's environment. */
static void reply_created(post *p, httpd_req *req, int node, const char *tenant, const char *tpl,
                          cJSON *j) {
  cluster_post *cp = p->tier_state;
  atomic_fetch_add(&cp->created, 1);
  cJSON_AddStringToObject(j, "template", tpl);
  cJSON_AddStringToObject(j, "tenant", tenant);
  cJSON_AddStringToObject(j, "status", "ready");
  post_log(p, "lab %s of %s for %s on %s (%s)",
           cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "name")), tpl, tenant,
           cp->nodes[node],
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "warm")) ? "warm" : "cold");
  httpd_respond_json(req, 201, lab_of(j));
}

/* A cold start on node: the claim runs on a thread; once the node lists
 * the new environment (in its first milliseconds) the request is answered
 * 202 with its name, and the thread carries on. 0: answered; 1: the claim
 * failed on this node for want of room or a dead node post (try another);
 * *j the node's answer then (caller frees). Under the tenant's claim_mu. */
static int claim_cold(post *p, httpd_req *req, int node, const char *tenant, const char *tpl,
                      long *st_out, cJSON **j_out) {
  cluster_post *cp = p->tier_state;
  claim_job *job = calloc(1, sizeof *job);
  char *before = names_on(p, node, tenant);
  pthread_t th;
  if (!job || !before) {
    free(job);
    free(before);
    post_reply_error(req, 503, "out of memory", NULL);
    return 0;
  }
  job->p = p;
  job->node = node;
  snprintf(job->tenant, sizeof job->tenant, "%s", tenant);
  snprintf(job->tpl, sizeof job->tpl, "%s", tpl);
  pthread_mutex_lock(&cp->mu);
  cp->n_threads++;
  pthread_mutex_unlock(&cp->mu);
  if (pthread_create(&th, NULL, claim_thread, job)) {
    pthread_mutex_lock(&cp->mu);
    cp->n_threads--;
    pthread_mutex_unlock(&cp->mu);
    free(job);
    free(before);
    post_reply_error(req, 503, "cannot start the claim", NULL);
    return 0;
  }
  pthread_detach(th);
  char name[64] = "";
  pthread_mutex_lock(&cp->mu);
  while (!job->done) {
    pthread_mutex_unlock(&cp->mu);
    bool seen = new_env_on(p, node, tenant, tpl, before, name, sizeof name);
    pthread_mutex_lock(&cp->mu);
    if (seen && !job->done) {
      pending_lab *e = pending_slot(cp);
      if (!e) break; /* every entry pending: wait for the claim's end */
      memset(e, 0, sizeof *e);
      e->used = true;
      e->state = LAB_PENDING;
      e->node = node;
      e->requested_ms = post_now_ms();
      snprintf(e->name, sizeof e->name, "%s", name);
      snprintf(e->tenant, sizeof e->tenant, "%s", tenant);
      snprintf(e->tpl, sizeof e->tpl, "%s", tpl);
      snprintf(job->name, sizeof job->name, "%s", name);
      job->handed_off = true;
      break;
    }
    if (!job->done) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += 20 * 1000000L;
      if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
      pthread_cond_timedwait(&cp->cv, &cp->mu, &ts);
    }
  }
  while (!job->handed_off && !job->done) pthread_cond_wait(&cp->cv, &cp->mu);
  bool handed = job->handed_off;
  pthread_mutex_unlock(&cp->mu);
  free(before);
  if (handed) {
    char loc[240];
    snprintf(loc, sizeof loc, "/v1/labs/%s/environments/%s", tpl, name);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "template", tpl);
    cJSON_AddStringToObject(o, "tenant", tenant);
    cJSON_AddStringToObject(o, "namespace", cp->ns);
    cJSON_AddStringToObject(o, "status", "pending");
    cJSON_AddBoolToObject(o, "warm", false);
    cJSON_AddStringToObject(o, "url", loc);
    char prog[260];
    snprintf(prog, sizeof prog, "%s/progress", loc);
    cJSON_AddStringToObject(o, "progress", prog);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    const char *extra[] = {"Location", loc};
    httpd_respond(req, 202, "application/json", text, text ? strlen(text) : 0, extra, 1);
    free(text);
    post_log(p, "cold start %s of %s for %s on %s: requested", name, tpl, tenant, cp->nodes[node]);
    return 0;
  }
  /* The claim ended before its environment was seen: answer as a claim. */
  long st = job->status;
  cJSON *j = job->result;
  free(job);
  if (st == 201) {
    reply_created(p, req, node, tenant, tpl, j);
    return 0;
  }
  *st_out = st;
  *j_out = j;
  return 1;
}

/* Claims on the best node, then the next best when one fails for want of
 * room or by dying; answers the request: 201 when a warm environment was
 * there, 202 for a cold start. Under the tenant's claim_mu. */
static void claim_on_best(post *p, httpd_req *req, const char *tenant, const char *tpl) {
  cluster_post *cp = p->tier_state;
  bool skip[MAX_NODES] = {false}, answered = false;
  cJSON *body = cJSON_CreateObject();
  cJSON_AddStringToObject(body, "template", tpl);
  cJSON_AddStringToObject(body, "tenant", tenant);
  cJSON_AddStringToObject(body, "namespace", cp->ns);
  for (;;) {
    double warm = 0;
    int i = place(p, tpl, skip, &answered, &warm);
    if (i < 0) {
      atomic_fetch_add(&cp->no_node, 1);
      post_reply_error(req, 503, answered ? "no node has room" : "no node post answers", NULL);
      break;
    }
    cJSON *j = NULL;
    long st;
    if (warm < 1) {
      if (!claim_cold(p, req, i, tenant, tpl, &st, &j)) break;
    } else {
      char url[512];
      snprintf(url, sizeof url, "%s/v1/claims", cp->nodes[i]);
      st = post_call_json(p, "POST", url, body, 180000, &j);
      if (st == 201) {
        reply_created(p, req, i, tenant, tpl, j);
        break;
      }
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

static bool known_template(cluster_post *cp, const char *tpl) {
  const cJSON *t;
  if (!cp->templates) return true; /* no --config: the node posts judge */
  cJSON_ArrayForEach(t, cp->templates) {
    const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "name"));
    if (n && !strcmp(n, tpl)) return true;
  }
  return false;
}

/* POST /v1/labs/<tpl>/environments (a body, when any, must be an object). */
static void serve_create(post *p, httpd_req *req, const char *caller, const char *tpl) {
  cluster_post *cp = p->tier_state;
  const char *why = NULL;
  size_t len = 0;
  unsigned limit = httpd_limit(req, &why);
  if (limit) return post_reply_error(req, limit, why, NULL);
  httpd_body(req, &len);
  cJSON *body = len ? post_body_json(req) : NULL;
  if (len && !body) return;
  cJSON_Delete(body);
  if (!*caller) {
    post_reply_error(req, 400, "labs are claimed with a tenant's token", NULL);
  } else if (!post_valid_name(tpl)) {
    post_reply_error(req, 400, "template: a template name (a DNS label) is required", "template");
  } else if (!known_template(cp, tpl)) {
    post_reply_error(req, 404, "no such template", "template");
  } else if (is_quarantined(cp, caller)) {
    atomic_fetch_add(&cp->refused_quarantine, 1);
    post_reply_error(req, 403, "tenant quarantined by its namespace's policy", NULL);
  } else {
    pthread_mutex_t *mu = tenant_mu(cp, caller);
    pthread_mutex_lock(mu);
    size_t down;
    long used = list_labs(p, caller, NULL, NULL, &down);
    if (used >= p->cfg.quota) {
      atomic_fetch_add(&cp->refused_quota, 1);
      reply_quota(req, p->cfg.quota, used);
    } else if (down && down >= nodes_live(cp)) {
      post_reply_error(req, 503, "no node post answers", NULL);
    } else {
      claim_on_best(p, req, caller, tpl);
    }
    pthread_mutex_unlock(mu);
  }
}

/* GET /v1/labs: the templates, with the warm environments of each. */
static void serve_templates(post *p, httpd_req *req) {
  cluster_post *cp = p->tier_state;
  cJSON *o = cJSON_CreateObject(), *arr = cJSON_CreateArray(), *t;
  cJSON *warm = cJSON_CreateObject();
  size_t down = 0;
  long st[MAX_NODES];
  cJSON *j[MAX_NODES], *nw;
  for (size_t i = 0, n_nodes = ask_nodes(p, "/v1/capacity", NULL, 2000, st, j); i < n_nodes; i++) {
    if (!st[i]) continue; /* gone */
    if (st[i] != 200) down++;
    cJSON_ArrayForEach(nw, cJSON_GetObjectItemCaseSensitive(j[i], "warm")) {
      cJSON *have = cJSON_GetObjectItemCaseSensitive(warm, nw->string);
      if (have)
        cJSON_SetNumberValue(have, have->valuedouble + nw->valuedouble);
      else
        cJSON_AddNumberToObject(warm, nw->string, nw->valuedouble);
    }
    cJSON_Delete(j[i]);
  }
  cJSON_ArrayForEach(t, cp->templates) {
    cJSON *c = cJSON_Duplicate(t, 1);
    const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "name"));
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(warm, n);
    cJSON_AddNumberToObject(c, "warm", cJSON_IsNumber(w) ? w->valuedouble : 0);
    cJSON_AddItemToArray(arr, c);
  }
  cJSON_Delete(warm);
  cJSON_AddItemToObject(o, "templates", arr);
  cJSON_AddNumberToObject(o, "unavailable_nodes", (double)down);
  httpd_respond_json(req, 200, o);
}

/* GET /v1/labs/<tpl>/environments: the caller's (admin: all). */
static void serve_list(post *p, httpd_req *req, const char *caller, const char *tpl) {
  cluster_post *cp = p->tier_state;
  cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "environments");
  size_t down;
  list_labs(p, *caller ? caller : NULL, tpl, arr, &down);
  /* Cold starts that failed stay visible for a while. */
  pthread_mutex_lock(&cp->mu);
  for (size_t i = 0; i < MAX_PENDING; i++) {
    pending_lab *e = &cp->pending[i];
    if (!e->used || e->state != LAB_FAILED || strcmp(e->tpl, tpl) ||
        (*caller && strcmp(e->tenant, caller)))
      continue;
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "name", e->name);
    cJSON_AddStringToObject(f, "template", e->tpl);
    cJSON_AddStringToObject(f, "tenant", e->tenant);
    cJSON_AddStringToObject(f, "status", "failed");
    cJSON_AddStringToObject(f, "error", e->error);
    cJSON_AddItemToArray(arr, f);
  }
  pthread_mutex_unlock(&cp->mu);
  cJSON_AddNumberToObject(o, "unavailable_nodes", (double)down);
  httpd_respond_json(req, 200, o);
}

/* A copy of the entry of name when caller may see it; false otherwise. */
static bool pending_get(cluster_post *cp, const char *caller, const char *tpl, const char *name,
                        pending_lab *out) {
  pthread_mutex_lock(&cp->mu);
  pending_lab *e = pending_find(cp, name);
  bool ok = e && !strcmp(e->tpl, tpl) && (!*caller || !strcmp(e->tenant, caller));
  if (ok) *out = *e;
  pthread_mutex_unlock(&cp->mu);
  return ok;
}

static void add_step(ce_buf *b, int progress, const char *message, bool ready, bool failed) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "progress", progress);
  cJSON_AddStringToObject(o, "message", message);
  cJSON_AddBoolToObject(o, "ready", ready);
  if (failed) cJSON_AddBoolToObject(o, "failed", true);
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  ce_buf_append(b, "data: ", 6);
  if (text) ce_buf_append(b, text, strlen(text));
  ce_buf_append(b, "\n\n", 2);
  free(text);
}

/* GET …/progress, streamed: where one cold start stands. */
typedef struct progress_stream {
  post *p;
  char caller[64], tpl[64], name[64], node[256];
  bool ours;              /* this post answered its claim 202 (pending_get knows it) */
  bool started;           /* the first steps are out */
  int64_t deadline, beat; /* the stream's end; the last thing written */
} progress_stream;

/* One look at the lab: 0 pending, 1 ready, 2 failed (why in error). */
static int progress_outcome(progress_stream *ps, char *error, size_t len) {
  cluster_post *cp = ps->p->tier_state;
  pending_lab e;
  if (ps->ours && pending_get(cp, ps->caller, ps->tpl, ps->name, &e)) {
    if (e.state == LAB_PENDING) return 0;
    snprintf(error, len, "%s", e.error);
    return e.state == LAB_READY ? 1 : 2;
  }
  /* Not followed here (any more): the node posts know. */
  cJSON *env = NULL;
  int i = lookup_lab(ps->p, ps->caller, ps->tpl, ps->name, &env);
  const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(env, "state"));
  int outcome = i == -1 ? 2 : st && !strcmp(st, "claimed") ? 1 : 0;
  if (i == -1) snprintf(error, len, "the environment is gone");
  cJSON_Delete(env);
  return outcome;
}

static int progress_next(void *ctx, ce_buf *out) {
  progress_stream *ps = ctx;
  cluster_post *cp = ps->p->tier_state;
  char error[256] = "", msg[512];
  int outcome = progress_outcome(ps, error, sizeof error);
  if (!ps->started) {
    ps->started = true;
    /* An environment already ready and not started here: one ready event. */
    if (ps->ours || outcome != 1) {
      add_step(out, 10, "environment requested", false, false);
      snprintf(msg, sizeof msg, "environment being created and started on %s", ps->node);
      add_step(out, 50, msg, false, false);
    }
  } else if (!outcome) {
    /* Wait (at most a second: the server may be stopping) for a cold start
     * to end. */
    pthread_mutex_lock(&cp->mu);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 500 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&cp->cv, &cp->mu, &ts);
    pthread_mutex_unlock(&cp->mu);
    outcome = progress_outcome(ps, error, sizeof error);
  }
  int64_t now = post_now_ms();
  if (outcome == 1) add_step(out, 100, "environment ready", true, false);
  if (outcome == 2) {
    snprintf(msg, sizeof msg, "failed: %s", error);
    add_step(out, 100, msg, false, true);
  }
  if (outcome) return 0;
  if (now >= ps->deadline) {
    /* EventSource clients reconnect by themselves. */
    ce_buf_append_str(out, ": still starting; reconnect to follow\n\n");
    return 0;
  }
  if (out->len) {
    ps->beat = now;
  } else if (now - ps->beat >= PROGRESS_BEAT_MS) {
    /* A comment line: proxies and clients see the stream alive. */
    ce_buf_append_str(out, ": waiting\n\n");
    ps->beat = now;
  }
  return 1;
}

/* GET …/progress: server-sent events, one per step, as they happen
 * (requested, being created and started, then ready or failed), a comment
 * line every PROGRESS_BEAT_MS meanwhile; the stream ends after the last
 * step, or after PROGRESS_STREAM_MS. The server runs a thread per
 * connection, so the stream holds only its own thread. */
static void serve_progress(post *p, httpd_req *req, const char *caller, const char *tpl,
                           const char *name) {
  cluster_post *cp = p->tier_state;
  progress_stream *ps = calloc(1, sizeof *ps);
  if (!ps) return post_reply_error(req, 500, "out of memory", NULL);
  ps->p = p;
  snprintf(ps->caller, sizeof ps->caller, "%s", caller);
  snprintf(ps->tpl, sizeof ps->tpl, "%s", tpl);
  snprintf(ps->name, sizeof ps->name, "%s", name);
  pending_lab e;
  ps->ours = pending_get(cp, caller, tpl, name, &e);
  if (!ps->ours) {
    cJSON *env = NULL;
    int i = lookup_lab(p, caller, tpl, name, &env);
    cJSON_Delete(env);
    if (i < 0) {
      free(ps);
      return post_reply_error(req, i == -2 ? 503 : 404,
                              i == -2 ? "a node post is unavailable; try again" : "no such lab",
                              NULL);
    }
    snprintf(ps->node, sizeof ps->node, "%s", cp->nodes[i]);
  } else {
    snprintf(ps->node, sizeof ps->node, "%s", cp->nodes[e.node]);
  }
  ps->beat = post_now_ms();
  ps->deadline = ps->beat + PROGRESS_STREAM_MS;
  static const char *const extra[] = {"Cache-Control", "no-cache", "X-Accel-Buffering", "no"};
  httpd_respond_stream(req, 200, "text/event-stream", extra, 2, progress_next, free, ps);
}

/* /v1/labs/<tpl>/environments/<name>[/progress|/exec|/keepalive] */
static void serve_lab(post *p, httpd_req *req, const char *caller, const char *m, const char *tpl,
                      const char *rest) {
  cluster_post *cp = p->tier_state;
  char name[64], url[512];
  const char *slash = strchr(rest, '/');
  size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
  const char *verb = slash ? slash + 1 : "";
  if (!len || len >= sizeof name) return post_reply_error(req, 404, "no such lab", NULL);
  memcpy(name, rest, len);
  name[len] = '\0';
  if (!strcmp(verb, "progress")) {
    if (strcmp(m, "GET")) return post_reply_error(req, 405, "GET", NULL);
    return serve_progress(p, req, caller, tpl, name);
  }
  /* A cold start that failed: its status, and DELETE forgets it. */
  pending_lab pe;
  if (pending_get(cp, caller, tpl, name, &pe) && pe.state == LAB_FAILED) {
    if (!*verb && !strcmp(m, "GET")) {
      cJSON *f = cJSON_CreateObject();
      cJSON_AddStringToObject(f, "name", pe.name);
      cJSON_AddStringToObject(f, "template", pe.tpl);
      cJSON_AddStringToObject(f, "tenant", pe.tenant);
      cJSON_AddStringToObject(f, "status", "failed");
      cJSON_AddStringToObject(f, "error", pe.error);
      return httpd_respond_json(req, 200, f);
    }
    if (!*verb && !strcmp(m, "DELETE")) {
      pthread_mutex_lock(&cp->mu);
      pending_lab *e = pending_find(cp, name);
      if (e) e->used = false;
      pthread_mutex_unlock(&cp->mu);
      return httpd_respond(req, 204, NULL, NULL, 0, NULL, 0);
    }
    return post_reply_error(req, 409, "the environment failed to start", NULL);
  }
  cJSON *env;
  int node = lookup_lab(p, caller, tpl, name, &env);
  if (node < 0) {
    /* Another tenant's lab is "not found" too: its name must not leak. */
    if (node == -2)
      return post_reply_error(req, 503, "a node post is unavailable; try again", NULL);
    return post_reply_error(req, 404, "no such lab", NULL);
  }
  if (!*verb && !strcmp(m, "GET")) return httpd_respond_json(req, 200, lab_of(env));
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
  if (out) return httpd_respond_json(req, (unsigned)st, out);
  post_reply_error(req, 502, "the node post's answer was not JSON", NULL);
}

/* /v1/labs[/<tpl>/environments[/<name>[/<verb>]]] */
static void serve_labs(post *p, httpd_req *req, const char *caller, const char *m,
                       const char *rest) {
  static const char envs[] = "/environments";
  if (!*rest) {
    if (!strcmp(m, "GET")) return serve_templates(p, req);
    return post_reply_error(req, 405, "GET (claims: POST /v1/labs/<template>/environments)", NULL);
  }
  char tpl[64];
  const char *slash = strchr(rest, '/');
  size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
  if (!slash || strncmp(slash, envs, sizeof envs - 1) ||
      (slash[sizeof envs - 1] && slash[sizeof envs - 1] != '/'))
    return post_reply_error(req, 404, "no such endpoint", NULL);
  const char *after = slash + sizeof envs - 1;
  if (len >= sizeof tpl) len = sizeof tpl - 1; /* then not a DNS label: refused below */
  memcpy(tpl, rest, len);
  tpl[len] = '\0';
  if (!*after || !after[1]) {
    if (!strcmp(m, "POST")) return serve_create(p, req, caller, tpl);
    if (!strcmp(m, "GET")) return serve_list(p, req, caller, tpl);
    return post_reply_error(req, 405, "GET or POST", NULL);
  }
  serve_lab(p, req, caller, m, tpl, after + 1);
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
    return httpd_respond_json(req, 200, o);
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
  } else {
    serve_labs(p, req, caller, m, path[sizeof labs - 1] ? path + sizeof labs : "");
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
