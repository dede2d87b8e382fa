/*
 * envs.c — the environments `outpost detector` watches and the policies
 * pushed to it at run time, behind the admin API: PUT/DELETE/GET
 * /v1/environments/<env> (a cgroup to watch and the names its events are
 * attributed to), PUT/DELETE/GET /v1/environments/<env>/policy and
 * /v1/policies/<namespace>. An environment's own policy wins over its
 * namespace's; a namespace policy reaches every environment of the
 * namespace without one of its own, those watched later included. The
 * table's mutex is held across the kernel map updates so that the kernel
 * always holds what the table says.
 */
#define _GNU_SOURCE /* statfs */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "core/resources.h"
#include "detector/daemon.h"

#define CGROUP2_MAGIC    0x63677270 /* CGROUP2_SUPER_MAGIC of linux/magic.h */
#define POLICY_RULES_MAX 256        /* entries per list: the kernel maps are bounded */

void detector__table_init(det_table *t) {
  memset(t, 0, sizeof *t);
  pthread_mutex_init(&t->mu, NULL);
  t->next_id = 1;
}

static void policy_free(det_policy *p) {
  if (!p) return;
  char **lists[] = {p->bins, p->forbidden, p->watched};
  size_t ns[] = {p->n_bins, p->n_forbidden, p->n_watched};
  for (size_t l = 0; l < 3; l++) {
    for (size_t i = 0; i < ns[l]; i++) free(lists[l][i]);
    free(lists[l]);
  }
  free(p->dests);
  free(p->json);
  free(p);
}

void detector__table_cleanup(det_table *t) {
  for (size_t i = 0; i < t->n; i++) policy_free(t->envs[i].policy);
  for (size_t i = 0; i < t->n_nsp; i++) policy_free(t->nsp[i].policy);
  free(t->envs);
  free(t->nsp);
  pthread_mutex_destroy(&t->mu);
}

/* ------------------------------------------------------------ policies */

/* "1.2.3.4:22", "[::1]:80"; port 0 is every port. */
static int dest_parse(const char *s, detector_dest *d) {
  char host[INET6_ADDRSTRLEN + 2];
  const char *colon = strrchr(s, ':');
  if (!colon || (size_t)(colon - s) >= sizeof host) return -EINVAL;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = '\0';
  char *end;
  errno = 0;
  unsigned long port = strtoul(colon + 1, &end, 10);
  if (errno || end == colon + 1 || *end || port > 65535 || colon[1] == '-' || colon[1] == '+')
    return -EINVAL;
  memset(d, 0, sizeof *d);
  d->port = (uint16_t)port;
  size_t hl = strlen(host);
  if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
    host[hl - 1] = '\0';
    d->family = AF_INET6;
    return inet_pton(AF_INET6, host + 1, d->addr) == 1 ? 0 : -EINVAL;
  }
  d->family = AF_INET;
  return inet_pton(AF_INET, host, d->addr) == 1 ? 0 : -EINVAL;
}

/* One list of strings; each checked by the caller's rule below. */
static int strings_take(const cJSON *arr, const char *key, bool dests, char ***out, size_t *n,
                        char *why, size_t whylen) {
  if (!cJSON_IsArray(arr)) {
    snprintf(why, whylen, "%s must be an array of strings", key);
    return -EINVAL;
  }
  size_t count = (size_t)cJSON_GetArraySize(arr);
  if (count > POLICY_RULES_MAX) {
    snprintf(why, whylen, "%s: at most %d entries", key, POLICY_RULES_MAX);
    return -EINVAL;
  }
  *out = calloc(count ? count : 1, sizeof **out);
  if (!*out) return -ENOMEM;
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    const char *s = cJSON_GetStringValue(it);
    size_t len = s ? strlen(s) : 0;
    if (!s || (!dests && (s[0] != '/' || len > DETECTOR_RULE_PATH_MAX))) {
      snprintf(why, whylen, "%s[%zu]: an absolute path of at most %d bytes", key, *n,
               DETECTOR_RULE_PATH_MAX);
      return -EINVAL;
    }
    detector_dest d;
    if (dests && dest_parse(s, &d)) {
      snprintf(why, whylen,
               "%s[%zu]: '%.80s' is not ADDRESS:PORT (1.2.3.4:22, [::1]:80; port 0: any)", key, *n,
               s);
      return -EINVAL;
    }
    if (!((*out)[(*n)++] = strdup(s))) return -ENOMEM;
  }
  return 0;
}

/* The policy of a JSON body, with unknown members refused. On failure why
 * says what is wrong (for a 400). */
static int policy_parse(const char *body, size_t len, det_policy **out, char *why, size_t whylen) {
  static const char *const keys[] = {"forbiddenBinaries", "forbiddenPaths", "watchedPaths",
                                     "forbiddenDestinations"};
  det_policy *p = calloc(1, sizeof *p);
  char **dest_text = NULL;
  size_t n_dest_text = 0;
  int rc = p ? 0 : -ENOMEM;
  cJSON *j = rc ? NULL : cJSON_ParseWithLength(body, len);
  if (rc == 0 && !cJSON_IsObject(j)) {
    snprintf(why, whylen, "the policy must be a JSON object");
    rc = -EINVAL;
  }
  const cJSON *m, *obj = rc ? NULL : j;
  cJSON_ArrayForEach(m, obj) {
    int k = 0;
    while (k < 4 && strcmp(m->string, keys[k]) != 0) k++;
    if (k == 4) {
      snprintf(why, whylen, "unknown member '%.60s' (known: %s, %s, %s, %s)", m->string, keys[0],
               keys[1], keys[2], keys[3]);
      rc = -EINVAL;
    } else if (k == 0) {
      rc = strings_take(m, keys[k], false, &p->bins, &p->n_bins, why, whylen);
    } else if (k == 1) {
      rc = strings_take(m, keys[k], false, &p->forbidden, &p->n_forbidden, why, whylen);
    } else if (k == 2) {
      rc = strings_take(m, keys[k], false, &p->watched, &p->n_watched, why, whylen);
    } else {
      rc = strings_take(m, keys[k], true, &dest_text, &n_dest_text, why, whylen);
    }
    if (rc) break;
  }
  if (rc == 0 && n_dest_text && !(p->dests = calloc(n_dest_text, sizeof *p->dests))) rc = -ENOMEM;
  for (size_t i = 0; rc == 0 && i < n_dest_text; i++)
    dest_parse(dest_text[i], &p->dests[p->n_dests++]);
  for (size_t i = 0; i < n_dest_text; i++) free(dest_text[i]);
  free(dest_text);
  /* The canonical form keeps what was given, in order: GET shows it back. */
  if (rc == 0 && !(p->json = cJSON_PrintUnformatted(j))) rc = -ENOMEM;
  cJSON_Delete(j);
  if (rc) {
    policy_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

static const det_policy *ns_policy(const det_table *t, const char *ns) {
  for (size_t i = 0; i < t->n_nsp; i++)
    if (strcmp(t->nsp[i].ns, ns) == 0) return t->nsp[i].policy;
  return NULL;
}

/* Writes the policy that applies to e (its own, else its namespace's, else
 * none) into the kernel (the table's mutex held). */
static int env_apply(det_daemon *dd, const det_env *e) {
  const det_policy *pol = e->policy ? e->policy : ns_policy(&dd->table, e->ns);
  if (!pol) return detector_bpf_policy_set(dd->bpf, e->cgroup_id, NULL);
  detector_policy p = {
      .forbidden_binaries = (const char *const *)pol->bins,
      .n_forbidden_binaries = pol->n_bins,
      .forbidden_prefixes = (const char *const *)pol->forbidden,
      .n_forbidden_prefixes = pol->n_forbidden,
      .watched_prefixes = (const char *const *)pol->watched,
      .n_watched_prefixes = pol->n_watched,
      .forbidden_dests = pol->dests,
      .n_forbidden_dests = pol->n_dests,
  };
  return detector_bpf_policy_set(dd->bpf, e->cgroup_id, &p);
}

/* ------------------------------------------------------------ the table */

static det_env *env_get(det_table *t, const char *name) {
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->envs[i].name, name) == 0) return &t->envs[i];
  return NULL;
}

int detector__env_find(det_daemon *dd, uint32_t env_id, det_env *out) {
  det_table *t = &dd->table;
  int rc = -ENOENT;
  pthread_mutex_lock(&t->mu);
  for (size_t i = 0; i < t->n && rc; i++)
    if (t->envs[i].env_id == env_id) *out = t->envs[i], rc = 0;
  size_t kept = t->n_retired < DET_RETIRED ? t->n_retired : DET_RETIRED;
  for (size_t i = 0; i < kept && rc; i++)
    if (t->retired[i].env_id == env_id) *out = t->retired[i], rc = 0;
  pthread_mutex_unlock(&t->mu);
  out->policy = NULL; /* not the caller's to follow */
  return rc;
}

static void env_json(const det_table *t, const det_env *e, ce_buf *b) {
  char line[512];
  const char *pol = e->policy ? "own" : ns_policy(t, e->ns) ? "namespace" : "none";
  snprintf(line, sizeof line,
           "{\"name\":\"%s\",\"cgroupId\":%llu,\"tenant\":\"%s\",\"namespace\":\"%s\","
           "\"template\":\"%s\",\"envId\":%u,\"policy\":\"%s\"}",
           e->name, (unsigned long long)e->cgroup_id, e->tenant, e->ns, e->tmpl, e->env_id, pol);
  ce_buf_append_str(b, line);
}

static void respond_buf(httpd_req *req, unsigned status, ce_buf *b) {
  httpd_respond(req, status, "application/json", b->data, b->len, NULL, 0);
  ce_buf_cleanup(b);
}

static void list_envs(det_daemon *dd, httpd_req *req) {
  ce_buf b;
  ce_buf_init(&b);
  ce_buf_append_str(&b, "{\"environments\":[");
  pthread_mutex_lock(&dd->table.mu);
  for (size_t i = 0; i < dd->table.n; i++) {
    if (i) ce_buf_append(&b, ",", 1);
    env_json(&dd->table, &dd->table.envs[i], &b);
  }
  pthread_mutex_unlock(&dd->table.mu);
  ce_buf_append_str(&b, "]}\n");
  respond_buf(req, 200, &b);
}

/* The cgroup id of a cgroup2 directory: its inode number. */
static int cgroup_id_of(const char *path, uint64_t *id, char *why, size_t whylen) {
  struct stat st;
  struct statfs sf;
  if (path[0] != '/' || stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(why, whylen, "cgroupPath '%.200s' is not an absolute path to a directory", path);
    return -EINVAL;
  }
  if (statfs(path, &sf) != 0 || sf.f_type != CGROUP2_MAGIC) {
    snprintf(why, whylen, "cgroupPath '%.200s' is not on a cgroup2 file system", path);
    return -EINVAL;
  }
  *id = (uint64_t)st.st_ino;
  return 0;
}

/* A cgroup id given as a JSON number (exact up to 2^53) or a decimal string. */
static int cgroup_id_take(const cJSON *id, uint64_t *out) {
  if (cJSON_IsNumber(id)) {
    double d = id->valuedouble;
    /* The range first: converting a double out of range is undefined. */
    if (!(d >= 1 && d <= 9007199254740992.0) || d != (double)(uint64_t)d) return -EINVAL;
    *out = (uint64_t)d;
    return 0;
  }
  const char *s = cJSON_GetStringValue(id);
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 20 || strspn(s, "0123456789") != n) return -EINVAL;
  errno = 0;
  unsigned long long v = strtoull(s, NULL, 10);
  if (errno || v == 0) return -EINVAL;
  *out = v;
  return 0;
}

static int label_take(const cJSON *j, const char *key, bool required, char *out, char *why,
                      size_t whylen) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  const char *s = cJSON_GetStringValue(v);
  if (!v && !required) return 0;
  if (!s || !res_valid_dns_label(s, strlen(s))) {
    snprintf(why, whylen, "%s must be a DNS label ([a-z0-9-], at most 63)", key);
    return -EINVAL;
  }
  snprintf(out, DET_NAME_MAX, "%s", s);
  return 0;
}

/* The environment of a PUT body: {cgroupId | cgroupPath, tenant, namespace, template?}. */
static int env_parse(const char *body, size_t len, det_env *e, char *why, size_t whylen) {
  static const char *const keys[] = {"cgroupId", "cgroupPath", "tenant", "namespace", "template"};
  cJSON *j = cJSON_ParseWithLength(body, len);
  int rc = cJSON_IsObject(j) ? 0 : -EINVAL;
  if (rc) snprintf(why, whylen, "the environment must be a JSON object");
  const cJSON *m, *obj = rc ? NULL : j;
  cJSON_ArrayForEach(m, obj) {
    size_t k = 0;
    while (k < 5 && strcmp(m->string, keys[k]) != 0) k++;
    if (k == 5) {
      snprintf(why, whylen, "unknown member '%.60s'", m->string);
      rc = -EINVAL;
      break;
    }
  }
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "cgroupId");
  const char *path = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "cgroupPath"));
  if (rc == 0 && !id == !path) {
    snprintf(why, whylen, "give one of cgroupId (a number) and cgroupPath (a string)");
    rc = -EINVAL;
  } else if (rc == 0 && id && cgroup_id_take(id, &e->cgroup_id)) {
    snprintf(why, whylen, "cgroupId must be a positive integer (or its decimal string)");
    rc = -EINVAL;
  } else if (rc == 0 && path) {
    rc = cgroup_id_of(path, &e->cgroup_id, why, whylen);
  }
  if (rc == 0) rc = label_take(j, "tenant", true, e->tenant, why, whylen);
  if (rc == 0) rc = label_take(j, "namespace", true, e->ns, why, whylen);
  if (rc == 0) rc = label_take(j, "template", false, e->tmpl, why, whylen);
  cJSON_Delete(j);
  return rc;
}

static void respond_why(httpd_req *req, unsigned status, const char *why) {
  httpd_respond_error(req, status, why, NULL, -1, NULL, 0);
}

/* Answers status: with why when it is an error, without a body for 204,
 * else with b's JSON. Frees b. */
static void answer(httpd_req *req, unsigned status, const char *why, ce_buf *b) {
  if (status >= 300)
    respond_why(req, status, why);
  else if (status == 204)
    httpd_respond(req, 204, NULL, NULL, 0, NULL, 0);
  else
    httpd_respond(req, status, "application/json", b->data, b->len, NULL, 0);
  ce_buf_cleanup(b);
}

static unsigned kernel_status(int rc) {
  return rc == -ENOSPC ? 507 : rc == -ENAMETOOLONG ? 400 : 500;
}

/* Inserts or replaces e in the table: its policy is written for the new
 * cgroup before the cgroup is watched, so that it is never watched without
 * its rules (the table's mutex held). Returns the HTTP status. */
static unsigned env_store(det_daemon *dd, det_env *e, char *why, size_t whylen) {
  det_table *t = &dd->table;
  det_env *old = env_get(t, e->name);
  for (size_t i = 0; i < t->n; i++)
    if (&t->envs[i] != old && t->envs[i].cgroup_id == e->cgroup_id) {
      snprintf(why, whylen, "cgroup %llu is environment %s's", (unsigned long long)e->cgroup_id,
               t->envs[i].name);
      return 409;
    }
  if (!old && t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    det_env *envs = realloc(t->envs, cap * sizeof *envs);
    if (!envs) {
      snprintf(why, whylen, "out of memory");
      return 500;
    }
    t->envs = envs;
    t->cap = cap;
  }
  e->env_id = old ? old->env_id : t->next_id;
  e->policy = old ? old->policy : NULL;
  int rc = env_apply(dd, e);
  if (rc == 0) rc = detector_bpf_watch(dd->bpf, e->cgroup_id, e->env_id);
  if (rc) {
    snprintf(why, whylen, "the kernel refused to watch cgroup %llu: %s",
             (unsigned long long)e->cgroup_id, strerror(-rc));
    if (!old || old->cgroup_id != e->cgroup_id)
      detector_bpf_policy_set(dd->bpf, e->cgroup_id, NULL);
    return kernel_status(rc);
  }
  if (old && old->cgroup_id != e->cgroup_id) detector_bpf_unwatch(dd->bpf, old->cgroup_id);
  if (!old) t->next_id++;
  *(old ? old : &t->envs[t->n++]) = *e;
  return old ? 200 : 201;
}

static void env_put(det_daemon *dd, httpd_req *req, const char *name) {
  det_env e = {0};
  char why[400];
  size_t len;
  const char *body = httpd_body(req, &len);
  ce_buf b;
  ce_buf_init(&b);
  unsigned status = env_parse(body, len, &e, why, sizeof why) ? 400 : dd->bpf ? 0 : 503;
  if (status == 503) snprintf(why, sizeof why, "the kernel side is off (--no-bpf)");
  if (status == 0) {
    snprintf(e.name, sizeof e.name, "%s", name);
    pthread_mutex_lock(&dd->table.mu);
    status = env_store(dd, &e, why, sizeof why);
    if (status < 300) env_json(&dd->table, &e, &b);
    pthread_mutex_unlock(&dd->table.mu);
  }
  answer(req, status, why, &b);
}

static void env_delete(det_daemon *dd, httpd_req *req, const char *name) {
  det_table *t = &dd->table;
  pthread_mutex_lock(&t->mu);
  det_env *e = env_get(t, name);
  if (e) {
    int rc = detector_bpf_unwatch(dd->bpf, e->cgroup_id);
    if (rc && rc != -ENOENT)
      fprintf(stderr, "outpost detector: unwatching cgroup %llu: %s\n",
              (unsigned long long)e->cgroup_id, strerror(-rc));
    policy_free(e->policy);
    e->policy = NULL;
    t->retired[t->n_retired++ % DET_RETIRED] = *e;
    *e = t->envs[--t->n];
  }
  pthread_mutex_unlock(&t->mu);
  ce_buf b;
  ce_buf_init(&b);
  answer(req, e ? 204 : 404, "no such environment", &b);
}

/* GET /v1/environments/<env>[/policy] (the table's mutex held). */
static unsigned env_show(const det_table *t, const det_env *e, bool policy, ce_buf *b) {
  if (!policy) {
    env_json(t, e, b);
    return 200;
  }
  const det_policy *ns = ns_policy(t, e->ns), *eff = e->policy ? e->policy : ns;
  ce_buf_append_str(b, e->policy ? "{\"source\":\"own\",\"policy\":"
                       : ns      ? "{\"source\":\"namespace\",\"policy\":"
                                 : "{\"source\":\"none\",\"policy\":");
  ce_buf_append_str(b, eff ? eff->json : "null");
  ce_buf_append_str(b, "}\n");
  return 200;
}

/* Replaces e's own policy with p (NULL: removes it, and its namespace's
 * applies again). On success the old one is in *p to free; on failure p
 * stays the caller's (the table's mutex held). */
static unsigned env_policy_set(det_daemon *dd, det_env *e, det_policy **p, ce_buf *b, char *why,
                               size_t whylen) {
  if (!*p && !e->policy) {
    snprintf(why, whylen, "environment %s has no policy of its own", e->name);
    return 404;
  }
  det_policy *old = e->policy;
  e->policy = *p;
  int rc = env_apply(dd, e);
  if (rc) {
    e->policy = old;
    snprintf(why, whylen, "the kernel refused the policy: %s (it may hold a mix now)",
             strerror(-rc));
    return kernel_status(rc);
  }
  bool put = *p != NULL;
  *p = old;
  if (!put) return 204;
  env_json(&dd->table, e, b);
  return 200;
}

/* GET, PUT, DELETE /v1/environments/<env>[/policy]. */
static void env_http(det_daemon *dd, httpd_req *req, const char *name, bool policy) {
  const char *m = httpd_method(req);
  det_policy *p = NULL;
  char why[400] = "no such environment";
  unsigned status = 0;
  bool get = strcmp(m, "GET") == 0, put = strcmp(m, "PUT") == 0, del = strcmp(m, "DELETE") == 0;
  if (!get && !put && !del) {
    const char *allow[] = {"Allow", "GET, PUT, DELETE"};
    httpd_respond_error(req, 405, "use GET, PUT or DELETE", NULL, -1, allow, 1);
    return;
  }
  if (!policy && !get) {
    if (put)
      env_put(dd, req, name);
    else
      env_delete(dd, req, name);
    return;
  }
  ce_buf b;
  ce_buf_init(&b);
  if (put) {
    size_t len;
    const char *body = httpd_body(req, &len);
    int rc = policy_parse(body, len, &p, why, sizeof why);
    if (rc) status = rc == -ENOMEM ? 500 : 400;
  }
  if (status == 0) {
    pthread_mutex_lock(&dd->table.mu);
    det_env *e = env_get(&dd->table, name);
    status = !e    ? 404
             : get ? env_show(&dd->table, e, policy, &b)
                   : env_policy_set(dd, e, &p, &b, why, sizeof why);
    pthread_mutex_unlock(&dd->table.mu);
  }
  policy_free(p);
  answer(req, status, why, &b);
}

/* Applies the namespace's policy (or none) to its environments that have
 * none of their own (the table's mutex held). Returns how many, or the first
 * error with the environment's name in why. */
static int ns_apply(det_daemon *dd, const char *ns, char *why, size_t whylen) {
  int applied = 0, first = 0;
  for (size_t i = 0; i < dd->table.n; i++) {
    det_env *e = &dd->table.envs[i];
    if (e->policy || strcmp(e->ns, ns) != 0) continue;
    int rc = env_apply(dd, e);
    if (rc && !first) {
      first = rc;
      snprintf(why, whylen, "the kernel refused the policy for environment %s: %s", e->name,
               strerror(-rc));
    }
    applied += rc == 0;
  }
  return first ? first : applied;
}

static int nsp_put(det_table *t, const char *ns, det_policy *p, det_policy **old) {
  for (size_t i = 0; i < t->n_nsp; i++)
    if (strcmp(t->nsp[i].ns, ns) == 0) {
      *old = t->nsp[i].policy;
      t->nsp[i].policy = p;
      return 0;
    }
  if (t->n_nsp == t->cap_nsp) {
    size_t cap = t->cap_nsp ? t->cap_nsp * 2 : 8;
    det_ns_policy *nsp = realloc(t->nsp, cap * sizeof *nsp);
    if (!nsp) return -ENOMEM;
    t->nsp = nsp;
    t->cap_nsp = cap;
  }
  snprintf(t->nsp[t->n_nsp].ns, DET_NAME_MAX, "%s", ns);
  t->nsp[t->n_nsp++].policy = p;
  *old = NULL;
  return 0;
}

static det_policy *nsp_remove(det_table *t, const char *ns) {
  for (size_t i = 0; i < t->n_nsp; i++)
    if (strcmp(t->nsp[i].ns, ns) == 0) {
      det_policy *p = t->nsp[i].policy;
      t->nsp[i] = t->nsp[--t->n_nsp];
      return p;
    }
  return NULL;
}

/* GET /v1/policies (only NULL) or /v1/policies/<only>. */
static void list_policies(det_daemon *dd, httpd_req *req, const char *only) {
  ce_buf b;
  ce_buf_init(&b);
  ce_buf_append_str(&b, only ? "" : "{\"policies\":[");
  pthread_mutex_lock(&dd->table.mu);
  bool found = false;
  for (size_t i = 0; i < dd->table.n_nsp; i++) {
    const det_ns_policy *n = &dd->table.nsp[i];
    if (only && strcmp(only, n->ns) != 0) continue;
    ce_buf_append_str(&b, found ? ",{\"namespace\":\"" : "{\"namespace\":\"");
    ce_buf_append_str(&b, n->ns);
    ce_buf_append_str(&b, "\",\"policy\":");
    ce_buf_append_str(&b, n->policy->json);
    ce_buf_append_str(&b, "}");
    found = true;
  }
  pthread_mutex_unlock(&dd->table.mu);
  ce_buf_append_str(&b, only ? "\n" : "]}\n");
  answer(req, only && !found ? 404 : 200, "no policy for this namespace", &b);
}

/* PUT (p) or DELETE (p NULL) a namespace's policy (the table's mutex held). */
static unsigned ns_policy_set(det_daemon *dd, const char *ns, det_policy **p, ce_buf *b, char *why,
                              size_t whylen) {
  det_policy *old = NULL;
  if (*p && nsp_put(&dd->table, ns, *p, &old)) {
    snprintf(why, whylen, "out of memory");
    return 500;
  }
  if (!*p && !(old = nsp_remove(&dd->table, ns))) {
    snprintf(why, whylen, "no policy for this namespace");
    return 404;
  }
  bool put = *p != NULL;
  *p = old; /* stored: what goes is the old one */
  int applied = ns_apply(dd, ns, why, whylen);
  if (applied < 0) return kernel_status(applied);
  if (!put) return 204;
  char out[160];
  snprintf(out, sizeof out, "{\"namespace\":\"%s\",\"environments\":%d}\n", ns, applied);
  ce_buf_append_str(b, out);
  return 200;
}

/* /v1/policies/<namespace>: PUT replaces, DELETE removes, GET shows. */
static void ns_policy_http(det_daemon *dd, httpd_req *req, const char *ns) {
  const char *m = httpd_method(req);
  det_policy *p = NULL;
  char why[400] = "the kernel side is off (--no-bpf)";
  unsigned status = 0;
  if (strcmp(m, "GET") == 0) {
    list_policies(dd, req, ns);
    return;
  }
  if (strcmp(m, "PUT") == 0) {
    size_t len;
    const char *body = httpd_body(req, &len);
    int rc = policy_parse(body, len, &p, why, sizeof why);
    if (rc) status = rc == -ENOMEM ? 500 : 400;
  } else if (strcmp(m, "DELETE") != 0) {
    const char *allow[] = {"Allow", "GET, PUT, DELETE"};
    httpd_respond_error(req, 405, "use GET, PUT or DELETE", NULL, -1, allow, 1);
    return;
  }
  /* Checked after the body, so that a bad policy gets its 400 anyway. */
  if (status == 0 && !dd->bpf) status = 503;
  ce_buf b;
  ce_buf_init(&b);
  if (status == 0) {
    pthread_mutex_lock(&dd->table.mu);
    status = ns_policy_set(dd, ns, &p, &b, why, sizeof why);
    pthread_mutex_unlock(&dd->table.mu);
  }
  policy_free(p);
  answer(req, status, why, &b);
}

/* Splits "<name>[/<rest>]" off path into name (a DNS label). */
static int path_name(const char *path, char *name, const char **rest) {
  const char *slash = strchr(path, '/');
  size_t n = slash ? (size_t)(slash - path) : strlen(path);
  if (!res_valid_dns_label(path, n)) return -EINVAL;
  memcpy(name, path, n);
  name[n] = '\0';
  *rest = path + n;
  return 0;
}

void detector__admin(det_daemon *dd, httpd_req *req, const char *path) {
  const char *rest;
  char name[DET_NAME_MAX];
  if (strcmp(path, "/v1/environments") == 0 || strcmp(path, "/v1/policies") == 0) {
    if (strcmp(httpd_method(req), "GET") != 0) {
      const char *allow[] = {"Allow", "GET"};
      httpd_respond_error(req, 405, "use GET", NULL, -1, allow, 1);
    } else if (path[4] == 'e') {
      list_envs(dd, req);
    } else {
      list_policies(dd, req, NULL);
    }
  } else if (strncmp(path, "/v1/policies/", 13) == 0) {
    if (path_name(path + 13, name, &rest) || *rest)
      respond_why(req, 404, "policy paths are /v1/policies/<namespace> (a DNS label)");
    else
      ns_policy_http(dd, req, name);
  } else if (path_name(path + 17, name, &rest) || (*rest && strcmp(rest, "/policy") != 0)) {
    respond_why(req, 404, "environment paths are /v1/environments/<env>[/policy] (a DNS label)");
  } else {
    env_http(dd, req, name, *rest != '\0');
  }
}
