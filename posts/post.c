/*
 * post.c — the process every tier of posts runs in: flags, the HTTP server
 * with /healthz, /readyz, /metrics and the CloudEvents endpoint (POST
 * /events, any HTTP mode), a blocking HTTP call over httpc for the tiers'
 * requests to each other, JSON answers, and the stop on SIGINT/SIGTERM
 * (children stopped first, so that an operator's stop takes the subtree
 * down; a crash leaves the children running).
 */
#define _GNU_SOURCE /* readlink of /proc/self/exe */

#include "posts/pool.h"
#include "posts/post_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/httpc.h"
#include "core/metrics.h"
#include "core/resources.h"

static void usage(FILE *f) {
  fputs("usage: outpost post --tier cluster|node|ns [options]\n"
        "\n"
        "A guard post (posts/README.md). Every tier:\n"
        "  --listen HOST:PORT      where to listen (default 127.0.0.1:8090)\n"
        "  --broker-url URL        broker ingress for the post's events (POST /<ns>/<broker>)\n"
        "  --state-dir DIR         state files (default outpost-data/post-<tier>)\n"
        "  --config FILE           LabTemplate and NamespacePolicy resources (YAML or JSON)\n"
        "  --broker-token TOKEN    bearer token of the broker's admin API (/v1/triggers)\n"
        "  --ingress-token TOKEN   bearer token of its ingress (broker --senders-file), for\n"
        "                          the post's events (passed on to the posts it starts)\n"
        "  --no-register-triggers  do not register the post's triggers at the broker\n"
        "  --trigger-api URL       the trigger admin API (http://host:port) when it is not\n"
        "                          at --broker-url's host (broker --role dispatcher)\n"
        "  --advertise-host HOST   the address the broker delivers this post's events to\n"
        "                          (default: the --listen host; 127.0.0.1 for 0.0.0.0)\n"
        "  --internal-token TOKEN  the posts' token among themselves: the node and ns posts'\n"
        "                          /v1/ APIs require it, every post sends it (and passes it\n"
        "                          on to the posts it starts)\n"
        "  Each token flag may be left out for its environment variable, which other\n"
        "  users cannot read: OUTPOST_ADMIN_TOKEN, OUTPOST_BROKER_TOKEN,\n"
        "  OUTPOST_INGRESS_TOKEN, OUTPOST_DETECTOR_TOKEN, OUTPOST_INTERNAL_TOKEN\n"
        "cluster (the Labs REST API):\n"
        "  --tenant-token T=TOKEN  a tenant's bearer token (repeatable)\n"
        "  --tokens-file FILE      lines 'tenant token'\n"
        "  --admin-token TOKEN     the operators' bearer token\n"
        "  --quota N               environments per tenant (default 3)\n"
        "  --node-post URL         a node post to place on (repeatable); none: start one\n"
        "  --node NAME             the node post started here (default node-1)\n"
        "  --node-listen HOST:PORT where it listens (default: this port + 1)\n"
        "  --namespace NS          the tenants' namespace (default labs)\n"
        "  --node-post-service HOST:PORT  every address HOST resolves to (a headless\n"
        "                          Service) is a node post on PORT; re-resolved every 10 s\n"
        "  --node-post-forget S    a node post the Service has not given for S seconds\n"
        "                          (default 900; keep it above a claim's 180) may give its\n"
        "                          place to a new address\n"
        "node (the warm pool):\n"
        "  --node NAME             this node (required)\n"
        "  --namespace NS          a namespace hosted here, with its ns post (repeatable;\n"
        "                          default labs)\n"
        "  --max-envs N            claimed environments on this node (default 20)\n"
        "  --ns-port PORT          the first ns post's port (default: this port + 1)\n"
        "  --socket PATH           Docker Engine API socket (default /run/podman/podman.sock)\n"
        "  --detector-url URL      the node's detector (http://127.0.0.1:8085): environments\n"
        "                          and their templates' policies are registered there\n"
        "  --detector-token TOKEN  bearer token of the detector's admin API\n"
        "  --runtime R             docker (default: --socket) or kubernetes (a pod per\n"
        "                          environment, posts/README.md)\n"
        "  --kubeconfig FILE       kubernetes: the cluster and credentials (default: the\n"
        "                          in-cluster service account)\n"
        "  --kube-namespace-prefix P  kubernetes: lab namespace NS is the Kubernetes\n"
        "                          namespace P+NS (default: no prefix)\n"
        "  --no-ns-posts           the ns posts run on their own (their triggers are still\n"
        "                          registered, at --ns-port and up on the advertised host)\n"
        "ns (a namespace's policy):\n"
        "  --namespace NS          the namespace (required)\n"
        "  --node-post URL         the node post that hosts it (for recycling)\n",
        f);
}

/* ------------------------------------------------------------- helpers */

int64_t post_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void post_log(post *p, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* One write per line, so that the lines of a post and its children
   * sharing a file do not interleave. */
  char line[1200];
  int n = snprintf(line, sizeof line, "post[%s/%s %d]: %s\n", p->tier ? p->tier->name : "?",
                   p->name ? p->name : "?", (int)getpid(), msg);
  if (n > (int)sizeof line - 1) n = (int)sizeof line - 1;
  if (write(STDERR_FILENO, line, (size_t)n) < 0) { /* nowhere else to say it */
  }
}

bool post_valid_name(const char *s) {
  return s && res_valid_dns_label(s, strlen(s));
}

void post_secret_env(const char **value, const char *name) {
  const char *v = getenv(name);
  if (!*value && v && *v) *value = v;
}

int post_pass_tokens(post *p, const char *name, unsigned which) {
  const struct {
    unsigned bit;
    const char *var, *value;
  } toks[] = {{POST_TOK_BROKER, POST_ENV_BROKER, p->cfg.broker_token},
              {POST_TOK_DETECTOR, POST_ENV_DETECTOR, p->cfg.detector_token},
              {POST_TOK_INTERNAL, POST_ENV_INTERNAL, p->cfg.internal_token},
              {POST_TOK_INGRESS, POST_ENV_INGRESS, p->cfg.ingress_token}};
  char *kv[5] = {0};
  size_t n = 0;
  int rc = 0;
  for (size_t i = 0; i < sizeof toks / sizeof *toks && !rc; i++) {
    if (!(which & toks[i].bit) || !toks[i].value) continue;
    size_t len = strlen(toks[i].var) + 1 + strlen(toks[i].value) + 1;
    if (!(kv[n] = malloc(len)))
      rc = -ENOMEM;
    else
      snprintf(kv[n++], len, "%s=%s", toks[i].var, toks[i].value);
  }
  if (!rc) rc = post_sup_set_env(p->sup, name, (const char *const *)kv);
  for (size_t i = 0; i < n; i++) free(kv[i]);
  return rc;
}

const char *post_advertised_host(const post *p) {
  const char *h = p->cfg.host;
  if (p->cfg.advertise_host) return p->cfg.advertise_host;
  return !h[0] || !strcmp(h, "0.0.0.0") || !strcmp(h, "::") || !strcmp(h, "[::]") ? "127.0.0.1" : h;
}

int post_mkdirs(const char *dir) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return -ENAMETOOLONG;
  for (char *s = path + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    if (mkdir(path, 0755) && errno != EEXIST) return -errno;
    *s = '/';
  }
  if (mkdir(path, 0755) && errno != EEXIST) return -errno;
  return 0;
}

int post_write_file(const char *path, const char *data, size_t len) {
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return -ENAMETOOLONG;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -errno;
  int rc = 0;
  for (size_t off = 0; off < len && !rc;) {
    ssize_t n = write(fd, data + off, len - off);
    if (n < 0 && errno != EINTR) rc = -errno;
    if (n > 0) off += (size_t)n;
  }
  /* The rename is what readers see; fsync first so that a crash leaves the
   * old file or the new one, never a torn one. */
  if (!rc && fsync(fd)) rc = -errno;
  close(fd);
  if (!rc && rename(tmp, path)) rc = -errno;
  if (rc) unlink(tmp);
  return rc;
}

/* ------------------------------------------------------------- client */

/* Requests sent side by side, waited for together: left counts those not
 * ended yet. */
typedef struct call_wait {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t left;
} call_wait;

typedef struct call_slot {
  call_wait *w;
  post_answer *out;
} call_slot;

static void call_done(void *opaque, const httpc_result *res) {
  call_slot *s = opaque;
  post_answer *out = s->out;
  out->error = res->error;
  snprintf(out->why, sizeof out->why, "%s", res->error ? res->error_text : "");
  out->status = res->status;
  out->retry_after_ms = res->retry_after_ms;
  if (!res->error && ce_buf_append(&out->body, res->body, res->body_len)) out->error = -ENOMEM;
  pthread_mutex_lock(&s->w->mu);
  if (--s->w->left == 0) pthread_cond_signal(&s->w->cv);
  pthread_mutex_unlock(&s->w->mu);
}

void post_answer_cleanup(post_answer *a) {
  ce_buf_cleanup(&a->body);
}

/* The same request to each of n URLs, all sent before any is waited for, so
 * that the slowest answer bounds the wait rather than the sum of them; out[i]
 * as post_call's out. */
static void call_each(post *p, const char *method, const char *const *urls, size_t n,
                      const ce_kv *hdrs, size_t n_hdrs, const char *body, size_t len,
                      long timeout_ms, post_answer *out) {
  call_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  call_slot one, *slots = n > 1 ? calloc(n, sizeof *slots) : &one;
  ce_kv json = {"Content-Type", 12, "application/json", 16};
  if (body && n_hdrs == 0) {
    hdrs = &json;
    n_hdrs = 1;
  }
  for (size_t i = 0; i < n; i++) {
    memset(&out[i], 0, sizeof out[i]);
    ce_buf_init(&out[i].body);
    if (!slots) out[i].error = -ENOMEM;
  }
  /* Counted before any is sent: a callback may run before the next send. */
  w.left = slots ? n : 0;
  for (size_t i = 0; slots && i < n; i++) {
    slots[i] = (call_slot){&w, &out[i]};
    int rc = httpc_send(p->c, method, urls[i], hdrs, n_hdrs, body, body ? len : 0, timeout_ms,
                        call_done, &slots[i]);
    if (rc) {
      out[i].error = rc;
      pthread_mutex_lock(&w.mu);
      w.left--;
      pthread_mutex_unlock(&w.mu);
    }
  }
  pthread_mutex_lock(&w.mu);
  while (w.left) pthread_cond_wait(&w.cv, &w.mu);
  pthread_mutex_unlock(&w.mu);
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cv);
  if (slots != &one) free(slots);
  /* Callers read the bodies as strings. */
  for (size_t i = 0; i < n; i++)
    if (ce_buf_append(&out[i].body, "", 1) == 0) out[i].body.len--;
}

int post_call(post *p, const char *method, const char *url, const ce_kv *hdrs, size_t n_hdrs,
              const char *body, size_t len, long timeout_ms, post_answer *out) {
  call_each(p, method, &url, 1, hdrs, n_hdrs, body, len, timeout_ms, out);
  return out->error;
}

void post_call_json_each(post *p, const char *method, const char *const *urls, size_t n,
                         const cJSON *body, long timeout_ms, long *status, cJSON **json) {
  post_answer one, *a = n > 1 ? calloc(n, sizeof *a) : &one;
  if (!a) {
    for (size_t i = 0; i < n; i++) {
      status[i] = -ENOMEM;
      json[i] = NULL;
    }
    return;
  }
  char *text = body ? cJSON_PrintUnformatted(body) : NULL;
  /* Posts call each other with the internal token, when there is one. */
  char auth[300];
  ce_kv hdrs[2] = {{"Content-Type", 12, "application/json", 16}};
  size_t nh = text ? 1 : 0;
  if (p->cfg.internal_token) {
    int len = snprintf(auth, sizeof auth, "Bearer %s", p->cfg.internal_token);
    hdrs[nh++] = (ce_kv){"Authorization", 13, auth, (size_t)len};
  }
  call_each(p, method, urls, n, nh ? hdrs : NULL, nh, text, text ? strlen(text) : 0, timeout_ms, a);
  free(text);
  for (size_t i = 0; i < n; i++) {
    status[i] = a[i].error ? a[i].error : a[i].status;
    json[i] =
        !a[i].error && a[i].body.len ? cJSON_ParseWithLength(a[i].body.data, a[i].body.len) : NULL;
    post_answer_cleanup(&a[i]);
  }
  if (a != &one) free(a);
}

long post_call_json(post *p, const char *method, const char *url, const cJSON *body,
                    long timeout_ms, cJSON **json) {
  long status;
  post_call_json_each(p, method, &url, 1, body, timeout_ms, &status, json);
  return status;
}

/* ------------------------------------------------------------- answers */

void post_reply_error(httpd_req *req, unsigned status, const char *msg, const char *field) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "error", msg);
  if (field) cJSON_AddStringToObject(o, "field", field);
  httpd_respond_json(req, status, o);
}

cJSON *post_body_json(httpd_req *req) {
  const char *why = NULL;
  unsigned limit = httpd_limit(req, &why);
  if (limit) {
    post_reply_error(req, limit, why, NULL);
    return NULL;
  }
  size_t len;
  const char *body = httpd_body(req, &len);
  cJSON *obj = len ? cJSON_ParseWithLength(body, len) : NULL;
  if (!cJSON_IsObject(obj)) {
    cJSON_Delete(obj);
    post_reply_error(req, 400, "the body must be a JSON object", NULL);
    return NULL;
  }
  return obj;
}

/* ------------------------------------------------------------- events */

ce_event *post_event_new(post *p, const char *type, const char *subject, cJSON *data) {
  static _Atomic uint64_t seq;
  char id[96], source[160], when[40];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ce_timestamp_format((int64_t)ts.tv_sec, (int32_t)ts.tv_nsec, when, sizeof when);
  snprintf(id, sizeof id, "%s-%d-%" PRId64 "-%" PRIu64, p->tier->name, (int)getpid(),
           (int64_t)ts.tv_sec, atomic_fetch_add(&seq, 1) + 1);
  if (!strcmp(p->tier->name, "ns"))
    snprintf(source, sizeof source, "/namespaces/%s/post", p->name);
  else if (!strcmp(p->tier->name, "node"))
    snprintf(source, sizeof source, "/nodes/%s/post", p->name);
  else if (!strcmp(p->tier->name, "run"))
    snprintf(source, sizeof source, "/run");
  else
    snprintf(source, sizeof source, "/cluster/post");
  ce_event *ev = ce_event_new();
  char *text = data ? cJSON_PrintUnformatted(data) : NULL;
  cJSON_Delete(data);
  int rc = ev ? 0 : -ENOMEM;
  rc = rc ? rc : ce_event_set_str(ev, "specversion", "1.0", NULL);
  rc = rc ? rc : ce_event_set_str(ev, "id", id, NULL);
  rc = rc ? rc : ce_event_set_str(ev, "source", source, NULL);
  rc = rc ? rc : ce_event_set_str(ev, "type", type, NULL);
  rc = rc ? rc : ce_event_set_str(ev, "time", when, NULL);
  if (!rc && subject) rc = ce_event_set_str(ev, "subject", subject, NULL);
  if (!rc && text) rc = ce_event_set_str(ev, "datacontenttype", "application/json", NULL);
  if (!rc && text) rc = ce_event_set_data(ev, text, strlen(text));
  free(text);
  if (rc) {
    ce_event_free(ev);
    return NULL;
  }
  return ev;
}

void post_publish(post *p, ce_event *ev) {
  if (ev) post_pub_push(p->pub, ev);
}

/* ------------------------------------------------------------- server */

static void serve_health(post *p, httpd_req *req) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "status", "ok");
  cJSON_AddStringToObject(o, "tier", p->tier->name);
  cJSON_AddStringToObject(o, "name", p->name);
  cJSON_AddNumberToObject(o, "pid", (double)getpid());
  httpd_respond_json(req, 200, o);
}

static void serve_metrics(post *p, httpd_req *req) {
  ce_buf out;
  ce_buf_init(&out);
  metrics_family(&out, "outpost_post_requests_total", "counter", "HTTP requests served");
  metrics_sample(&out, "outpost_post_requests_total", NULL, atomic_load(&p->requests));
  metrics_family(&out, "outpost_post_events_received_total", "counter",
                 "CloudEvents received on /events, by result");
  metrics_sample(&out, "outpost_post_events_received_total", "result=\"ok\"",
                 atomic_load(&p->events_in));
  metrics_sample(&out, "outpost_post_events_received_total", "result=\"invalid\"",
                 atomic_load(&p->events_bad));
  post_pub_metrics(p->pub, &out);
  if (p->sup) post_sup_metrics(p->sup, &out);
  if (p->tier->metrics) p->tier->metrics(p, &out);
  httpd_respond(req, 200, "text/plain; version=0.0.4", out.data, out.len, NULL, 0);
  ce_buf_cleanup(&out);
}

/* CloudEvents in any HTTP mode; answered before the tier acts, so that the
 * dispatcher is never held by a slow action (the tier queues its work). */
static void serve_events(post *p, httpd_req *req) {
  const char *why = NULL;
  unsigned limit = httpd_limit(req, &why);
  if (limit) {
    atomic_fetch_add(&p->events_bad, 1);
    post_reply_error(req, limit, why, NULL);
    return;
  }
  size_t n_hdrs, len;
  const ce_kv *hdrs = httpd_headers(req, &n_hdrs);
  const char *body = httpd_body(req, &len);
  ce_limits lim;
  ce_limits_init(&lim);
  ce_batch batch;
  ce_batch_init(&batch);
  ce_err err;
  memset(&err, 0, sizeof err);
  int rc = ce_http_decode(hdrs, n_hdrs, body, len, &lim, &batch, &err);
  if (rc < 0) {
    atomic_fetch_add(&p->events_bad, 1);
    char msg[300];
    snprintf(msg, sizeof msg, "not a CloudEvent: %s", err.reason);
    post_reply_error(req,
                     rc == -EMSGSIZE  ? 413
                     : rc == -ENOTSUP ? 415
                                      : 400,
                     msg, err.attr[0] ? err.attr : NULL);
    ce_batch_cleanup(&batch);
    return;
  }
  httpd_respond(req, 202, NULL, NULL, 0, NULL, 0);
  for (size_t i = 0; i < batch.n; i++) {
    atomic_fetch_add(&p->events_in, 1);
    if (p->tier->on_event) {
      p->tier->on_event(p, batch.ev[i]);
      batch.ev[i] = NULL;
    }
  }
  ce_batch_cleanup(&batch);
}

static void on_request(void *ctx, httpd_req *req) {
  post *p = ctx;
  const char *m = httpd_method(req), *path = httpd_path(req);
  atomic_fetch_add(&p->requests, 1);
  if (!strcmp(path, "/healthz") && !strcmp(m, "GET")) return serve_health(p, req);
  if (!strcmp(path, "/readyz") && !strcmp(m, "GET")) {
    bool ok = !p->tier->ready || p->tier->ready(p);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", ok ? "ready" : "not ready");
    return httpd_respond_json(req, ok ? 200 : 503, o);
  }
  if (!strcmp(path, "/metrics") && !strcmp(m, "GET")) return serve_metrics(p, req);
  if (!strcmp(path, "/events")) {
    if (!strcmp(m, "POST")) return serve_events(p, req);
    return post_reply_error(req, 405, "POST only", NULL);
  }
  /* The node and ns posts' APIs are for other posts: with an internal
   * token, only those who have it. */
  if (p->cfg.internal_token && strcmp(p->tier->name, "cluster") && !strncmp(path, "/v1/", 4)) {
    if (!httpd_same_secret(httpd_bearer(req), p->cfg.internal_token)) {
      static const char *const www[] = {"WWW-Authenticate", "Bearer"};
      httpd_respond_error(req, 401, "the internal token is required (Authorization: Bearer)", NULL,
                          -1, www, 1);
      return;
    }
  }
  if (p->tier->route && p->tier->route(p, req, m, path)) return;
  post_reply_error(req, 404, "no such endpoint", NULL);
}

/* ------------------------------------------------------------- flags */

static int parse_num(const char *s, long max, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || end == s || v < 0 || v > max) return -EINVAL;
  *out = v;
  return 0;
}

/* HOST:PORT with an IPv4 HOST: a post puts its host in its triggers' URIs
 * and starts its ns posts beside it, on IPv4. */
static int parse_listen(const char *s, char *host, size_t size, uint16_t *port) {
  const char *colon = strrchr(s, ':');
  long v;
  struct in_addr a;
  if (!colon || (size_t)(colon - s) >= size || parse_num(colon + 1, 65535, &v)) return -EINVAL;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = '\0';
  *port = (uint16_t)v;
  return inet_pton(AF_INET, host, &a) == 1 ? 0 : -EINVAL;
}

static int push(const char **arr, size_t *n, const char *v, const char *flag) {
  if (*n == POST_MAX_REPEATED) {
    fprintf(stderr, "outpost post: at most %d %s\n", POST_MAX_REPEATED, flag);
    return -1;
  }
  arr[(*n)++] = v;
  return 0;
}

static const struct option longopts[] = {{"tier", required_argument, NULL, 't'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"broker-url", required_argument, NULL, 'b'},
                                         {"state-dir", required_argument, NULL, 'd'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"socket", required_argument, NULL, 's'},
                                         {"node", required_argument, NULL, 'n'},
                                         {"node-listen", required_argument, NULL, 'L'},
                                         {"admin-token", required_argument, NULL, 'a'},
                                         {"tokens-file", required_argument, NULL, 'f'},
                                         {"tenant-token", required_argument, NULL, 'T'},
                                         {"namespace", required_argument, NULL, 'N'},
                                         {"node-post", required_argument, NULL, 'P'},
                                         {"quota", required_argument, NULL, 'q'},
                                         {"max-envs", required_argument, NULL, 'm'},
                                         {"ns-port", required_argument, NULL, 'p'},
                                         {"broker-token", required_argument, NULL, 'B'},
                                         {"ingress-token", required_argument, NULL, 'g'},
                                         {"no-register-triggers", no_argument, NULL, 'R'},
                                         {"detector-url", required_argument, NULL, 'D'},
                                         {"detector-token", required_argument, NULL, 'K'},
                                         {"trigger-api", required_argument, NULL, 'G'},
                                         {"advertise-host", required_argument, NULL, 'A'},
                                         {"runtime", required_argument, NULL, 'r'},
                                         {"kubeconfig", required_argument, NULL, 'k'},
                                         {"kube-namespace-prefix", required_argument, NULL, 'x'},
                                         {"no-ns-posts", no_argument, NULL, 'O'},
                                         {"node-post-service", required_argument, NULL, 'S'},
                                         {"internal-token", required_argument, NULL, 'I'},
                                         {"node-post-forget", required_argument, NULL, 'F'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};

/* Fills cfg from argv; 0, 1 (--help: done) or 2 (bad flags: said why). */
static int parse_flags(int argc, char **argv, post_cfg *cfg) {
  int c, li = 0;
  long v;
  memset(cfg, 0, sizeof *cfg);
  snprintf(cfg->host, sizeof cfg->host, "127.0.0.1");
  cfg->port = 8090;
  cfg->quota = 3;
  cfg->max_envs = 20;
  cfg->node_forget_s = 900;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", longopts, &li)) != -1) {
    int bad = 0;
    switch (c) {
    case 't':
      cfg->tier = optarg;
      break;
    case 'l':
      bad = parse_listen(optarg, cfg->host, sizeof cfg->host, &cfg->port);
      break;
    case 'b':
      cfg->broker_url = optarg;
      break;
    case 'd':
      cfg->state_dir = optarg;
      break;
    case 'c':
      cfg->config = optarg;
      break;
    case 's':
      cfg->socket = optarg;
      break;
    case 'n':
      cfg->node = optarg;
      break;
    case 'L':
      cfg->node_listen = optarg;
      break;
    case 'a':
      cfg->admin_token = optarg;
      break;
    case 'f':
      cfg->tokens_file = optarg;
      break;
    case 'T':
      bad = push(cfg->tenant_tokens, &cfg->n_tenant_tokens, optarg, "--tenant-token");
      break;
    case 'N':
      bad = push(cfg->namespaces, &cfg->n_namespaces, optarg, "--namespace");
      break;
    case 'P':
      bad = push(cfg->node_posts, &cfg->n_node_posts, optarg, "--node-post");
      break;
    case 'q':
      bad = parse_num(optarg, 100000, &cfg->quota);
      break;
    case 'm':
      bad = parse_num(optarg, 100000, &cfg->max_envs);
      break;
    case 'p':
      bad = parse_num(optarg, 65535, &v) ? -EINVAL : (cfg->ns_port = (uint16_t)v, 0);
      break;
    case 'B':
      cfg->broker_token = optarg;
      break;
    case 'g':
      cfg->ingress_token = optarg;
      break;
    case 'R':
      cfg->no_register_triggers = true;
      break;
    case 'D':
      cfg->detector_url = optarg;
      break;
    case 'K':
      cfg->detector_token = optarg;
      break;
    case 'G':
      cfg->trigger_api = optarg;
      bad = strncmp(optarg, "http://", 7) ? -EINVAL : 0;
      break;
    case 'A':
      cfg->advertise_host = optarg;
      bad = !optarg[0] || strlen(optarg) > 63 || strpbrk(optarg, "/ :") ? -EINVAL : 0;
      break;
    case 'r':
      cfg->runtime = optarg;
      bad = strcmp(optarg, "docker") && strcmp(optarg, "kubernetes") ? -EINVAL : 0;
      break;
    case 'k':
      cfg->kubeconfig = optarg;
      break;
    case 'x':
      cfg->kube_ns_prefix = optarg;
      break;
    case 'O':
      cfg->no_ns_posts = true;
      break;
    case 'I':
      cfg->internal_token = optarg;
      bad = !optarg[0] || strlen(optarg) > 256 ? -EINVAL : 0;
      break;
    case 'S':
      cfg->node_post_service = optarg;
      bad = !strrchr(optarg, ':') ? -EINVAL : 0;
      break;
    case 'F':
      bad = parse_num(optarg, 86400, &v) || v < 1 ? -EINVAL : (cfg->node_forget_s = v, 0);
      break;
    case 'h':
      usage(stdout);
      return 1;
    default:
      usage(stderr);
      return 2;
    }
    if (bad) {
      fprintf(stderr, "outpost post: bad value '%s' for --%s\n", optarg, longopts[li].name);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "outpost post: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  post_secret_env(&cfg->admin_token, POST_ENV_ADMIN);
  post_secret_env(&cfg->broker_token, POST_ENV_BROKER);
  post_secret_env(&cfg->ingress_token, POST_ENV_INGRESS);
  if (!httpc_token_ok(cfg->ingress_token)) {
    fprintf(stderr, "outpost post: the ingress token is visible characters only\n");
    return 2;
  }
  post_secret_env(&cfg->detector_token, POST_ENV_DETECTOR);
  post_secret_env(&cfg->internal_token, POST_ENV_INTERNAL);
  return 0;
}

static const post_tier *tier_of(const char *name) {
  if (!name) return NULL;
  if (!strcmp(name, "cluster")) return &post_tier_cluster;
  if (!strcmp(name, "node")) return &post_tier_node;
  if (!strcmp(name, "ns")) return &post_tier_ns;
  return NULL;
}

/* ------------------------------------------------------------- main */

/* Starts the client, the publisher and the server; 0 or 1. */
static int post_up(post *p, char *state_dir) {
  char err[256];
  httpc_opts co;
  httpc_opts_init(&co);
  co.connect_timeout_ms = 1000;
  if (!(p->c = httpc_start(&co, err, sizeof err))) {
    post_log(p, "HTTP client: %s", err);
    return 1;
  }
  if (!p->cfg.state_dir) {
    snprintf(state_dir, PATH_MAX, "outpost-data/post-%s", p->tier->name);
    p->cfg.state_dir = state_dir;
  }
  int rc = post_mkdirs(p->cfg.state_dir);
  if (rc) {
    post_log(p, "cannot make %s: %s", p->cfg.state_dir, strerror(-rc));
    return 1;
  }
  if (!(p->pub = post_pub_new(p, p->cfg.broker_url, 1024))) return 1;
  if ((rc = p->tier->start(p))) {
    post_log(p, "cannot start: %s", strerror(-rc));
    return 1;
  }
  httpd_opts ho;
  httpd_opts_init(&ho);
  ho.host = p->cfg.host;
  ho.port = p->cfg.port;
  /* Handlers call other posts and the runtime and wait: a thread each. */
  ho.model = HTTPD_THREAD_PER_CONNECTION;
  ho.max_body = 256 * 1024;
  if (!(p->http = httpd_start(&ho, on_request, p, err, sizeof err))) {
    post_log(p, "%s", err);
    return 1;
  }
  return 0;
}

int post_main(int argc, char **argv) {
  post p;
  memset(&p, 0, sizeof p);
  int rc = parse_flags(argc, argv, &p.cfg);
  if (rc) return rc == 1 ? 0 : 2;
  if (!(p.tier = tier_of(p.cfg.tier))) {
    fprintf(stderr, "outpost post: --tier cluster|node|ns is required\n");
    return 2;
  }
  p.name = "cluster";
  if (!strcmp(p.tier->name, "node")) p.name = p.cfg.node;
  if (!strcmp(p.tier->name, "ns")) p.name = p.cfg.n_namespaces ? p.cfg.namespaces[0] : NULL;
  bool node = !strcmp(p.tier->name, "node");
  if (node ? !pool_valid_node(p.name) : !post_valid_name(p.name)) {
    fprintf(stderr, "outpost post: --tier %s needs %s\n", p.tier->name,
            node ? "--node NAME (a DNS subdomain of at most 63 bytes)"
                 : "--namespace NS (a DNS label)");
    return 2;
  }
  return post__serve(&p);
}

int post__serve(post *pp) {
  post p = *pp;
  int rc;
  ssize_t n = readlink("/proc/self/exe", p.exe, sizeof p.exe - 1);
  if (n <= 0) snprintf(p.exe, sizeof p.exe, "%s", "outpost");
  /* Signals are taken by sigwait below, so every thread starts with them
   * blocked; children get a clean mask back (post_sup.c). */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);
  char state_dir[PATH_MAX];
  rc = post_up(&p, state_dir);
  if (rc == 0) {
    post_log(&p, "listening on http://%s:%u", p.cfg.host, httpd_port(p.http));
    if (p.tier->started) p.tier->started(&p);
    int sig = 0;
    sigwait(&sigs, &sig);
    post_log(&p, "stopping (signal %d)", sig);
  }
  /* Children first: they may still call this post while it stops. */
  if (p.sup) post_sup_free(p.sup, true);
  httpd_stop(p.http);
  if (p.tier_state && p.tier->stop) p.tier->stop(&p);
  post_pub_free(p.pub);
  httpc_stop(p.c);
  return rc;
}
