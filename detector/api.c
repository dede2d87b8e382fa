/*
 * api.c — the HTTP side of `outpost detector`: /healthz, /readyz, /metrics,
 * the admin API (handed to envs.c behind the admin token) and the tenant
 * endpoint, the MEC "Detector" of seeds/001: a tenant's application POSTs a
 * plain JSON object about what its user did, and it leaves as a CloudEvent
 * through the same publisher as the kernel's events. The body is checked by
 * the same strict JSON scanner the broker uses (it is decoded as the data of
 * a CloudEvent envelope), so that nothing answered 202 here is refused by
 * the broker later.
 */
#define _GNU_SOURCE /* getrandom, strncasecmp */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/metrics.h"
#include "core/resources.h"
#include "detector/daemon.h"

#define TENANT_TYPE_MAX    64   /* the type token's bytes */
#define TENANT_SUBJECT_MAX 1024 /* bytes */
#define TENANT_DEPTH_MAX   32   /* nesting inside the body; the broker takes 64 */

static void count_tenant(det_daemon *dd, enum det_tenant_result r) {
  atomic_fetch_add_explicit(&dd->tenant[r], 1, memory_order_relaxed);
}

/* 0 when req carries the tenant's token, else the status it got (401 or
 * 403), already answered. */
static unsigned tenant_auth(det_daemon *dd, httpd_req *req, const char *tenant) {
  static const char *const www[] = {"WWW-Authenticate", "Bearer realm=\"outpost-detector\""};
  const char *auth = httpd_header(req, "Authorization");
  const char *tok = auth && strncasecmp(auth, "Bearer ", 7) == 0 ? auth + 7 : NULL;
  while (tok && *tok == ' ') tok++;
  if (!tok || !*tok || strpbrk(tok, " \t")) {
    httpd_respond_error(req, 401, "a tenant bearer token is required (Authorization: Bearer ...)",
                        NULL, -1, www, 1);
    return 401;
  }
  bool known = false;
  for (size_t i = 0; i < dd->n_tokens; i++) {
    if (!httpd_same_secret(dd->tokens[i].token, tok)) continue;
    if (strcmp(dd->tokens[i].tenant, tenant) == 0) return 0;
    known = true;
  }
  if (!known) {
    httpd_respond_error(req, 401, "unknown token", NULL, -1, www, 1);
    return 401;
  }
  httpd_respond_error(req, 403, "this token is another tenant's", NULL, -1, NULL, 0);
  return 403;
}

/* A type token: [A-Za-z0-9], then [A-Za-z0-9._-], no "..", not ending in '.'. */
static bool type_token_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > TENANT_TYPE_MAX || s[n - 1] == '.' || strstr(s, "..")) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '-' && c != '_'))) return false;
  }
  return true;
}

/* The event's type and subject from the body (known valid JSON). */
static int tenant_fields(const char *body, size_t len, char *type, const char **subject,
                         cJSON **tree, char *why, size_t whylen) {
  cJSON *j = *tree = cJSON_ParseWithLength(body, len);
  if (!cJSON_IsObject(j)) {
    snprintf(why, whylen, "the body must be a JSON object");
    return -EINVAL;
  }
  int n_type = 0, n_subject = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, j) {
    n_type += strcmp(m->string, "type") == 0;
    n_subject += strcmp(m->string, "subject") == 0;
  }
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "subject");
  if (n_type > 1 || n_subject > 1) {
    snprintf(why, whylen, "type and subject may appear once each");
    return -EINVAL;
  }
  if (t && (!cJSON_IsString(t) || !type_token_ok(t->valuestring))) {
    snprintf(why, whylen,
             "type must be a string of at most %d characters [A-Za-z0-9._-], starting with a "
             "letter or digit, without '..' or a final '.'",
             TENANT_TYPE_MAX);
    return -EINVAL;
  }
  if (s && (!cJSON_IsString(s) || strlen(s->valuestring) > TENANT_SUBJECT_MAX)) {
    snprintf(why, whylen, "subject must be a string of at most %d bytes", TENANT_SUBJECT_MAX);
    return -EINVAL;
  }
  snprintf(type, TENANT_TYPE_MAX + 32, "dev.outpost.tenant.%s", t ? t->valuestring : "event");
  *subject = s ? s->valuestring : NULL;
  return 0;
}

/* A random (version 4) UUID. */
static void uuid4(char out[37]) {
  unsigned char b[16];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
    /* No entropy source: the clock and a counter are unique enough per source. */
    static _Atomic uint64_t seq;
    uint64_t t = metrics_now_ns(), s = atomic_fetch_add(&seq, 1);
    memcpy(b, &t, 8);
    memcpy(b + 8, &s, 8);
  }
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
           b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
}

static bool json_ws(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The CloudEvent of a tenant's body: decoded as the data of an envelope by
 * the strict scanner (which keeps the data byte-exact), then stamped. */
static int tenant_event(det_daemon *dd, const char *tenant, const char *body, size_t len,
                        ce_event **out, char *id, char *why, size_t whylen) {
  ce_buf env;
  ce_buf_init(&env);
  ce_buf_append_str(&env, "{\"specversion\":\"1.0\",\"id\":\"-\",\"source\":\"/\",\"type\":\"-\","
                          "\"datacontenttype\":\"application/json\",\"data\":");
  ce_buf_append(&env, body, len);
  ce_buf_append_str(&env, "}");
  ce_limits lim;
  ce_limits_init(&lim);
  lim.max_body = 0; /* the server bounds the body */
  lim.max_depth = TENANT_DEPTH_MAX;
  ce_err err = {0};
  ce_event *ev = NULL;
  cJSON *tree = NULL;
  const char *subject;
  char type[TENANT_TYPE_MAX + 32], source[96], now[40];
  int rc = ce_json_decode(env.data, env.len, &lim, &ev, &err);
  ce_buf_cleanup(&env);
  if (rc) {
    snprintf(why, whylen, "the body is not valid JSON: %s", err.reason);
    return -EINVAL;
  }
  /* The data must be the whole body: "{}, \"x\": 1" would else end the
   * envelope's data early and add attributes of its own. */
  size_t dlen;
  const uint8_t *data = ce_event_data(ev, &dlen);
  while (len && json_ws(body[len - 1])) len--;
  while (len && json_ws(body[0])) body++, len--;
  if (!data || dlen != len || memcmp(data, body, len) != 0 || memchr(body, '\0', len)) {
    snprintf(why, whylen, "the body must be one JSON object and nothing else");
    ce_event_free(ev);
    return -EINVAL;
  }
  rc = tenant_fields(body, len, type, &subject, &tree, why, whylen);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ce_timestamp_format(ts.tv_sec, (int32_t)ts.tv_nsec, now, sizeof now);
  snprintf(source, sizeof source, "/tenants/%s", tenant);
  uuid4(id);
  if (rc == 0) rc = ce_event_set_str(ev, "id", id, &err);
  if (rc == 0) rc = ce_event_set_str(ev, "source", source, &err);
  if (rc == 0) rc = ce_event_set_str(ev, "type", type, &err);
  if (rc == 0) rc = ce_event_set(ev, "time", CE_TYPE_TIMESTAMP, now, strlen(now), &err);
  if (rc == 0 && subject) rc = ce_event_set_str(ev, "subject", subject, &err);
  if (rc == 0) rc = ce_event_set_str(ev, "tenant", tenant, &err);
  if (rc == 0) rc = ce_event_set_str(ev, "node", dd->node, &err);
  if (rc == 0) rc = ce_event_set_str(ev, "partitionkey", tenant, &err);
  if (rc && err.attr[0]) snprintf(why, whylen, "%s: %s", err.attr, err.reason);
  cJSON_Delete(tree);
  if (rc) {
    ce_event_free(ev);
    return rc;
  }
  *out = ev;
  return 0;
}

/* POST /v1/tenants/<tenant>/events */
static void tenant_post(det_daemon *dd, httpd_req *req, const char *tenant) {
  char why[400] = "", id[37];
  if (strcmp(httpd_method(req), "POST") != 0) {
    const char *allow[] = {"Allow", "POST"};
    httpd_respond_error(req, 405, "use POST", NULL, -1, allow, 1);
    return;
  }
  unsigned st = tenant_auth(dd, req, tenant);
  if (st) {
    count_tenant(dd, st == 401 ? DET_T_UNAUTHORIZED : DET_T_FORBIDDEN);
    return;
  }
  size_t len;
  const char *body = httpd_body(req, &len);
  ce_event *ev = NULL;
  int rc = tenant_event(dd, tenant, body ? body : "", len, &ev, id, why, sizeof why);
  if (rc == 0) rc = detector_pub_push(dd->pub, ev, false, NULL);
  if (rc == 0) {
    char out[80];
    int n = snprintf(out, sizeof out, "{\"id\":\"%s\"}\n", id);
    count_tenant(dd, DET_T_ACCEPTED);
    httpd_respond(req, 202, "application/json", out, (size_t)n, NULL, 0);
  } else if (rc == -ENOBUFS) {
    static const char *const ra[] = {"Retry-After", "1"};
    count_tenant(dd, DET_T_FULL);
    httpd_respond_error(req, 429, "the detector's buffer is full: try again later", NULL, -1, ra,
                        1);
  } else if (rc == -EMSGSIZE) {
    count_tenant(dd, DET_T_TOO_LARGE);
    httpd_respond_error(req, 413, "the event is larger than a batch may be", NULL, -1, NULL, 0);
  } else if (rc == -EINVAL) {
    count_tenant(dd, DET_T_INVALID);
    httpd_respond_error(req, 400, why[0] ? why : "invalid event", NULL, -1, NULL, 0);
  } else {
    httpd_respond_error(req, rc == -ECANCELED ? 503 : 500,
                        rc == -ECANCELED ? "the detector is stopping" : strerror(-rc), NULL, -1,
                        NULL, 0);
  }
}

/* ------------------------------------------------------------ /metrics */

static void kernel_metrics(det_daemon *dd, ce_buf *b) {
  char labels[64];
  metrics_family(b, "outpost_detector_kernel_events_total", "counter",
                 "Events read from the ring buffer, per kind.");
  for (int k = 1; k < DETECTOR_KIND_MAX; k++) {
    snprintf(labels, sizeof labels, "kind=\"%s\"", detector_kind_name(k));
    metrics_sample(b, "outpost_detector_kernel_events_total", labels,
                   atomic_load_explicit(&dd->kernel_events[k], memory_order_relaxed));
  }
  uint64_t drops[DETECTOR_KIND_MAX] = {0};
  if (dd->bpf && detector_bpf_drops(dd->bpf, drops) != 0) return;
  metrics_family(b, "outpost_detector_ring_drops_total", "counter",
                 "Events the kernel could not report because the ring buffer was full, per kind.");
  for (int k = 1; k < DETECTOR_KIND_MAX; k++) {
    snprintf(labels, sizeof labels, "kind=\"%s\"", detector_kind_name(k));
    metrics_sample(b, "outpost_detector_ring_drops_total", labels, drops[k]);
  }
  if (dd->bpf && detector_bpf_throttled(dd->bpf, drops) != 0) return;
  metrics_family(b, "outpost_detector_throttled_events_total", "counter",
                 "Events the kernel did not report because their environment had spent its "
                 "budget (--rate-limit), per kind.");
  for (int k = 1; k < DETECTOR_KIND_MAX; k++) {
    snprintf(labels, sizeof labels, "kind=\"%s\"", detector_kind_name(k));
    metrics_sample(b, "outpost_detector_throttled_events_total", labels, drops[k]);
  }
}

/* {"status","tier","name","pid"} as every Outpost process answers (what
 * `outpost run` adopts a running detector by), and whether the kernel side
 * runs. */
static void serve_health(det_daemon *dd, httpd_req *req) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "status", atomic_load(&dd->draining) ? "draining" : "ok");
  cJSON_AddStringToObject(o, "tier", "detector");
  cJSON_AddStringToObject(o, "name", dd->node);
  cJSON_AddNumberToObject(o, "pid", (double)getpid());
  cJSON_AddBoolToObject(o, "bpf", dd->bpf != NULL);
  httpd_respond_json(req, 200, o);
}

static void serve_metrics(det_daemon *dd, httpd_req *req) {
  static const char *const results[DET_T_MAX] = {"accepted",  "invalid",   "unauthorized",
                                                 "forbidden", "too_large", "full"};
  ce_buf b;
  ce_buf_init(&b);
  detector_pub_metrics(dd->pub, &b);
  kernel_metrics(dd, &b);
  metrics_family(&b, "outpost_detector_tenant_requests_total", "counter",
                 "Tenant-event requests, per outcome.");
  for (int r = 0; r < DET_T_MAX; r++) {
    char labels[48];
    snprintf(labels, sizeof labels, "result=\"%s\"", results[r]);
    metrics_sample(&b, "outpost_detector_tenant_requests_total", labels,
                   atomic_load_explicit(&dd->tenant[r], memory_order_relaxed));
  }
  metrics_family(&b, "outpost_detector_drops_reports_total", "counter",
                 "dev.outpost.detector.drops events queued.");
  metrics_sample(&b, "outpost_detector_drops_reports_total", NULL,
                 atomic_load_explicit(&dd->drops_reports, memory_order_relaxed));
  metrics_family(&b, "outpost_detector_throttled_reports_total", "counter",
                 "dev.outpost.detector.throttled events queued.");
  metrics_sample(&b, "outpost_detector_throttled_reports_total", NULL,
                 atomic_load_explicit(&dd->throttled_reports, memory_order_relaxed));
  metrics_family(&b, "outpost_detector_forkrate_events_total", "counter",
                 "dev.outpost.process.forkrate alarms raised (a fork rate above the threshold).");
  metrics_sample(&b, "outpost_detector_forkrate_events_total", NULL,
                 atomic_load_explicit(&dd->forkrate_events, memory_order_relaxed));
  pthread_mutex_lock(&dd->table.mu);
  size_t n = dd->table.n;
  pthread_mutex_unlock(&dd->table.mu);
  metrics_family(&b, "outpost_detector_rate_limit", "gauge",
                 "Events per second each environment may report (--rate-limit, PUT /v1/limits); "
                 "0: no limit.");
  metrics_sample(&b, "outpost_detector_rate_limit", NULL, atomic_load(&dd->rate_limit));
  metrics_family(&b, "outpost_detector_environments", "gauge", "Environments watched.");
  metrics_sample(&b, "outpost_detector_environments", NULL, n);
  httpd_respond(req, 200, "text/plain; version=0.0.4", b.data, b.len, NULL, 0);
  ce_buf_cleanup(&b);
}

/* ------------------------------------------------------------ /v1/limits */

static void limits_answer(det_daemon *dd, httpd_req *req) {
  char out[64];
  int n = snprintf(out, sizeof out, "{\"rate_limit\":%llu}\n",
                   (unsigned long long)atomic_load(&dd->rate_limit));
  httpd_respond(req, 200, "application/json", out, (size_t)n, NULL, 0);
}

/* The rate limit of a PUT body, {"rate_limit": N}: that member alone, once,
 * an integer 0..DET_RATE_LIMIT_MAX, nothing after the object. -EINVAL with
 * why and the member at fault in attr ("" when it is the body's shape). */
static int limits_parse(const char *body, size_t len, uint64_t *out, char attr[64], char *why,
                        size_t whylen) {
  static const char shape[] = "the body must be one JSON object, {\"rate_limit\": N}";
  /* NUL-terminated, so that cJSON can refuse what follows the object. */
  char *text = body && !memchr(body, '\0', len) ? strndup(body, len) : NULL;
  cJSON *j = text ? cJSON_ParseWithOpts(text, NULL, true) : NULL;
  const cJSON *m, *v = NULL;
  int n = 0;
  free(text);
  attr[0] = '\0';
  if (!cJSON_IsObject(j)) {
    snprintf(why, whylen, "%s", shape);
    cJSON_Delete(j);
    return -EINVAL;
  }
  cJSON_ArrayForEach(m, j) {
    if (strcmp(m->string, "rate_limit") != 0) {
      snprintf(attr, 64, "%.63s", m->string);
      snprintf(why, whylen, "unknown member '%.60s' (known: rate_limit)", m->string);
      cJSON_Delete(j);
      return -EINVAL;
    }
    v = m;
    n++;
  }
  snprintf(attr, 64, "rate_limit");
  int rc = -EINVAL;
  if (n != 1) {
    snprintf(why, whylen, "rate_limit is required, once");
  } else if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > DET_RATE_LIMIT_MAX ||
             v->valuedouble != (double)(uint64_t)v->valuedouble) {
    snprintf(why, whylen,
             "rate_limit must be an integer from 0 (no limit) to %u: events per second per "
             "environment",
             DET_RATE_LIMIT_MAX);
  } else {
    *out = (uint64_t)v->valuedouble;
    rc = 0;
  }
  cJSON_Delete(j);
  return rc;
}

/* GET and PUT /v1/limits (after the admin token check): the per-environment
 * rate limit in force, changed at once in the kernel side's .bss, without a
 * reload. Validated before the kernel's absence is answered, as the
 * policies are, so that a bad body gets its 400 with --no-bpf too. */
static void serve_limits(det_daemon *dd, httpd_req *req) {
  const char *method = httpd_method(req);
  char why[200], attr[64];
  uint64_t limit;
  size_t len = 0;
  const char *body = httpd_body(req, &len);
  if (strcmp(method, "GET") == 0) {
    limits_answer(dd, req);
  } else if (strcmp(method, "PUT") != 0) {
    static const char *const allow[] = {"Allow", "GET, PUT"};
    httpd_respond_error(req, 405, "use GET or PUT", NULL, -1, allow, 1);
  } else if (limits_parse(body, len, &limit, attr, why, sizeof why)) {
    httpd_respond_error(req, 400, why, attr[0] ? attr : NULL, -1, NULL, 0);
  } else if (!dd->bpf) {
    httpd_respond_error(req, 503, "the kernel side is off (--no-bpf)", NULL, -1, NULL, 0);
  } else {
    /* Under the table's lock, so that two PUTs leave the kernel and the
     * answer agreeing. */
    pthread_mutex_lock(&dd->table.mu);
    detector_bpf_rate_limit_set(dd->bpf, limit);
    atomic_store(&dd->rate_limit, limit);
    pthread_mutex_unlock(&dd->table.mu);
    fprintf(stderr, "outpost detector: rate limit now %llu events/s per environment\n",
            (unsigned long long)limit);
    limits_answer(dd, req);
  }
}

/* ------------------------------------------------------------ routing */

static bool admin_ok(det_daemon *dd, httpd_req *req) {
  if (!dd->admin_token) return true;
  const char *auth = httpd_header(req, "Authorization");
  if (auth && strncasecmp(auth, "Bearer ", 7) == 0 && httpd_same_secret(dd->admin_token, auth + 7))
    return true;
  const char *www[] = {"WWW-Authenticate", "Bearer"};
  httpd_respond_error(req, 401, "the admin API needs the admin bearer token", NULL, -1, www, 1);
  return false;
}

static bool under(const char *path, const char *prefix) {
  size_t n = strlen(prefix);
  return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* "/v1/tenants/<tenant>/events": the tenant into name, or -EINVAL. */
static int tenant_path(const char *path, char name[DET_NAME_MAX]) {
  const char *t = path + strlen("/v1/tenants/"), *slash = strchr(t, '/');
  if (!slash || strcmp(slash, "/events") != 0 || !res_valid_dns_label(t, (size_t)(slash - t)))
    return -EINVAL;
  memcpy(name, t, (size_t)(slash - t));
  name[slash - t] = '\0';
  return 0;
}

void detector__http(void *ctx, httpd_req *req) {
  det_daemon *dd = ctx;
  const char *path = httpd_path(req), *why;
  char tenant[DET_NAME_MAX];
  unsigned limit = httpd_limit(req, &why);
  if (limit) {
    if (under(path, "/v1/tenants") && limit == 413) count_tenant(dd, DET_T_TOO_LARGE);
    httpd_respond_error(req, limit, why, NULL, -1, NULL, 0);
  } else if (strcmp(path, "/healthz") == 0) {
    serve_health(dd, req);
  } else if (strcmp(path, "/readyz") == 0) {
    bool draining = atomic_load(&dd->draining);
    httpd_respond(req, draining ? 503 : 200, "text/plain", draining ? "draining\n" : "ready\n",
                  draining ? 9 : 6, NULL, 0);
  } else if (strcmp(path, "/metrics") == 0) {
    serve_metrics(dd, req);
  } else if (strncmp(path, "/v1/tenants/", 12) == 0) {
    if (tenant_path(path, tenant) == 0)
      tenant_post(dd, req, tenant);
    else
      httpd_respond_error(req, 404, "tenant paths are /v1/tenants/<tenant>/events", NULL, -1, NULL,
                          0);
  } else if (under(path, "/v1/environments") || under(path, "/v1/policies")) {
    if (admin_ok(dd, req)) detector__admin(dd, req, path);
  } else if (strcmp(path, "/v1/limits") == 0) {
    if (admin_ok(dd, req)) serve_limits(dd, req);
  } else {
    httpd_respond_error(req, 404, "no such path", NULL, -1, NULL, 0);
  }
}
