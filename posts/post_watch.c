/*
 * post_watch.c — the node post's link to its node's detector
 * (--detector-url): every environment claimed here is registered with the
 * detector (its cgroup, tenant, namespace, template) together with its
 * template's policy, so that the kernel attributes and enforces; every one
 * released, reclaimed or vanished is deleted there. The detector keeps its
 * table in memory, and may be down or restarted at any time, so nothing of
 * this is on a claim's path: the pool's events queue work for one thread,
 * which also reconciles every few seconds (what is claimed here and missing
 * there is registered; what this node's namespaces hold there and is no
 * longer claimed is deleted). That reconcile also registers what a
 * restarted node post recovers.
 */
#define _GNU_SOURCE /* getline */
#include "core/clock.h"
#include "posts/post_int.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/metrics.h"

#define WATCH_RECONCILE_MS 3000
#define WATCH_TIMEOUT_MS   5000
#define WATCH_QUEUE        1024 /* past it, the next reconcile does the work */
#define WATCH_FAILING      256  /* environments whose failure was logged */
/* How deep under the cgroup2 mount a pod's directory may be: the kubelet's
 * kubepods, a QoS class, the pod, under a --cgroup-root that may itself be
 * nested (kind's kubelet.slice inside a node container's). */
#define POD_CGROUP_DEPTH 6

typedef struct watch_op {
  bool gone; /* false: claimed */
  char name[64];
} watch_op;

struct post_watch {
  post *p;
  posts_runtime *rt;
  const char *const *namespaces;
  size_t n_ns;
  post_watch_list_fn list;
  void *opaque;
  char url[256];         /* the detector's base URL, without a trailing '/' */
  char cgroot[PATH_MAX]; /* the cgroup2 mount point */
  pthread_t thread;
  bool has_thread;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* on CLOCK_MONOTONIC */
  bool stopping, reconcile_now;
  watch_op q[WATCH_QUEUE]; /* ring */
  size_t head, n;
  /* The thread's own: */
  bool down; /* the last call reached nobody */
  char failing[WATCH_FAILING][64];
  size_t n_failing;
  _Atomic uint64_t calls_ok, calls_failed;
  _Atomic int64_t registered;
};

/* ------------------------------------------------------------- policy */

/* A template's destination as the detector's ADDRESS:PORT (port 0: any).
 * Templates also take an address alone or with a host-sized prefix
 * (169.254.169.254/32); the detector matches exact addresses only, so a
 * wider prefix is -EINVAL. */
static int dest_of(const char *s, char *out, size_t size) {
  char host[INET6_ADDRSTRLEN + 8];
  unsigned char addr[16];
  const char *slash = strchr(s, '/'), *colon = strrchr(s, ':');
  size_t hl = slash ? (size_t)(slash - s) : strlen(s);
  if (hl >= sizeof host) return -EINVAL;
  memcpy(host, s, hl);
  host[hl] = '\0';
  bool v4 = inet_pton(AF_INET, host, addr) == 1, v6 = !v4 && inet_pton(AF_INET6, host, addr) == 1;
  if (slash) {
    const char *bits = slash + 1;
    if (!(v4 && !strcmp(bits, "32")) && !(v6 && !strcmp(bits, "128"))) return -EINVAL;
  }
  if (v4 || v6) return snprintf(out, size, v4 ? "%s:0" : "[%s]:0", host) < (int)size ? 0 : -EINVAL;
  /* Already ADDRESS:PORT: the address and a port of digits. */
  if (!colon || colon == s || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
      atol(colon + 1) > 65535)
    return -EINVAL;
  size_t al = (size_t)(colon - s);
  bool bracketed = s[0] == '[' && s[al - 1] == ']';
  const char *a = bracketed ? s + 1 : s;
  size_t n = bracketed ? al - 2 : al;
  if (n >= sizeof host) return -EINVAL;
  memcpy(host, a, n);
  host[n] = '\0';
  if (inet_pton(bracketed ? AF_INET6 : AF_INET, host, addr) != 1) return -EINVAL;
  return snprintf(out, size, "%s", s) < (int)size ? 0 : -EINVAL;
}

static void add_list(cJSON *o, const char *key, char *const *list) {
  if (!list[0]) return;
  cJSON *arr = cJSON_AddArrayToObject(o, key);
  for (size_t i = 0; list[i]; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(list[i]));
}

char *post_watch_policy_json(const pool_template *t, char *why, size_t whylen) {
  cJSON *o = cJSON_CreateObject();
  if (why && whylen) why[0] = '\0';
  add_list(o, "forbiddenBinaries", t->forbidden_binaries);
  add_list(o, "forbiddenPaths", t->forbidden_paths);
  cJSON *dests = NULL;
  for (size_t i = 0; t->forbidden_destinations[i]; i++) {
    char d[128];
    if (dest_of(t->forbidden_destinations[i], d, sizeof d)) {
      size_t len = why ? strlen(why) : 0;
      if (why && len < whylen)
        snprintf(why + len, whylen - len, "%s%s", len ? ", " : "", t->forbidden_destinations[i]);
      continue;
    }
    if (!dests) dests = cJSON_AddArrayToObject(o, "forbiddenDestinations");
    cJSON_AddItemToArray(dests, cJSON_CreateString(d));
  }
  char *json = o && o->child ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  return json;
}

/* ------------------------------------------------------------- cgroups */

/* The cgroup2 mount point (on hybrid hosts /sys/fs/cgroup/unified). */
static int cgroup2_root(char *out, size_t size) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  char *line = NULL;
  size_t cap = 0;
  int rc = -ENOENT;
  while (f && rc && getline(&line, &cap, f) > 0) {
    char mnt[PATH_MAX];
    const char *dash = strstr(line, " - cgroup2 ");
    /* Fields: id parent major:minor root mount-point ... */
    if (dash && sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1)
      rc = snprintf(out, size, "%s", mnt) < (int)size ? 0 : -ENAMETOOLONG;
  }
  free(line);
  if (f) fclose(f);
  return rc;
}

/* The cgroup2 directory of process pid: its "0::<path>" line under the
 * mount. Processes `podman exec` starts join the same cgroup. */
static int cgroup_of(const post_watch *w, int pid, char *out, size_t size) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/cgroup", pid);
  FILE *f = fopen(path, "re");
  if (!f) return -errno;
  char *line = NULL;
  size_t cap = 0;
  int rc = -ENOENT;
  while (rc && getline(&line, &cap, f) > 0) {
    if (strncmp(line, "0::", 3)) continue;
    line[strcspn(line, "\n")] = '\0';
    const char *rel = strcmp(line + 3, "/") ? line + 3 : "";
    rc = snprintf(out, size, "%s%s", w->cgroot, rel) < (int)size ? 0 : -ENAMETOOLONG;
  }
  free(line);
  fclose(f);
  return rc;
}

/* A pod's cgroup directory is named after its uid by the kubelet:
 * "pod<uid>" with the cgroupfs driver, "<parent>-pod<uid, '-' as '_'>.slice"
 * with the systemd driver. Its containers' directories are named after their
 * ids by the container runtime: "<id>" (containerd, cgroupfs),
 * "cri-containerd-<id>.scope", "crio-<id>.scope" (not CRI-O's
 * "crio-conmon-<id>.scope", its monitor's), "crio-<id>", "docker-<id>.scope". */
static bool is_pod_dir(const char *name, const char *uid, const char *uid_) {
  size_t n = strlen(name), u = strlen(uid_);
  if (!strncmp(name, "pod", 3) && !strcmp(name + 3, uid)) return true;
  return n > u + 10 && !strcmp(name + n - 6, ".slice") && !strncmp(name + n - 6 - u, uid_, u) &&
         !strncmp(name + n - 10 - u, "-pod", 4);
}

static bool is_container_dir(const char *name, const char *cid) {
  static const char *const prefixes[] = {"", "cri-containerd-", "crio-", "docker-"};
  size_t cl = strlen(cid);
  for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
    size_t pl = strlen(prefixes[i]);
    const char *rest = name + pl;
    if (!strncmp(name, prefixes[i], pl) && !strncmp(rest, cid, cl) &&
        (!rest[cl] || !strcmp(rest + cl, ".scope")))
      return true;
  }
  return false;
}

/* Depth-first under path (len bytes of size): 1 and the container's
 * directory in path when found, 0 when not, a negative errno. The pod's
 * directory ends the search either way: a pod is in one place. */
static int pod_walk(char *path, size_t len, size_t size, int depth, const char *uid,
                    const char *uid_, const char *cid) {
  DIR *d = opendir(path);
  if (!d) return depth ? 0 : -errno; /* a directory gone meanwhile: not there */
  int rc = 0;
  for (struct dirent *de; rc == 0 && (de = readdir(d));) {
    if (de->d_type != DT_DIR || de->d_name[0] == '.') continue;
    if (snprintf(path + len, size - len, "/%s", de->d_name) >= (int)(size - len)) continue;
    size_t sub = len + 1 + strlen(de->d_name);
    if (depth >= 0 && is_pod_dir(path + len + 1, uid, uid_)) {
      rc = pod_walk(path, sub, size, -1, uid, uid_, cid);
      rc = rc ? rc : -ENOENT; /* the pod, without that container */
    } else if (depth < 0) {
      rc = is_container_dir(path + len + 1, cid);
    } else if (depth < POD_CGROUP_DEPTH) {
      rc = pod_walk(path, sub, size, depth + 1, uid, uid_, cid);
    }
  }
  closedir(d);
  if (rc != 1) path[len] = '\0';
  return rc;
}

int post_watch_pod_cgroup(const char *root, const char *uid, const char *cid, char *out,
                          size_t size) {
  char uid_[64];
  size_t ul = strlen(uid), cl = strlen(cid);
  /* A uid and an id of what they are made of, and nothing that walks. */
  if (!ul || ul >= sizeof uid_ || strspn(uid, "0123456789abcdefABCDEF-") != ul || !cl || cl > 128 ||
      strspn(cid, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != cl)
    return -EINVAL;
  for (size_t i = 0; i <= ul; i++) uid_[i] = uid[i] == '-' ? '_' : uid[i];
  if (snprintf(out, size, "%s", root) >= (int)size) return -ENAMETOOLONG;
  int rc = pod_walk(out, strlen(out), size, 0, uid, uid_, cid);
  return rc == 1 ? 0 : rc ? rc : -ENOENT;
}

/* ------------------------------------------------------------- calls */

/* A failure of one environment, logged the first time only: a reconcile
 * every few seconds must not repeat it. */
static void env_failed(post_watch *w, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void env_failed(post_watch *w, const char *name, const char *fmt, ...) {
  for (size_t i = 0; i < w->n_failing; i++)
    if (!strcmp(w->failing[i], name)) return;
  if (w->n_failing < WATCH_FAILING) snprintf(w->failing[w->n_failing++], 64, "%s", name);
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  post_log(w->p, "detector: %s not registered: %s", name, msg);
}

static void env_fine(post_watch *w, const char *name) {
  for (size_t i = 0; i < w->n_failing; i++)
    if (!strcmp(w->failing[i], name)) {
      memcpy(w->failing[i], w->failing[--w->n_failing], 64);
      return;
    }
}

/* One request to the detector's admin API: the status, or a negative errno
 * when nobody answered. The detector's going away and coming back are
 * logged once each, not per call. */
static long watch_call(post_watch *w, const char *method, const char *path, const cJSON *body,
                       cJSON **json, char *why, size_t whylen) {
  char url[512];
  post_answer a;
  snprintf(url, sizeof url, "%s%s", w->url, path);
  int rc = post_call_token(w->p, method, url, w->p->cfg.detector_token, body, WATCH_TIMEOUT_MS, &a);
  long status = rc ? rc : a.status;
  if (rc && !w->down)
    post_log(w->p, "detector at %s unreachable (%s); it will be caught up when it is back", w->url,
             a.why[0] ? a.why : strerror(-rc));
  if (!rc && w->down) post_log(w->p, "detector at %s reachable again", w->url);
  w->down = rc != 0;
  bool ok = status >= 200 && status < 300;
  ok = ok || (status == 404 && !strcmp(method, "DELETE"));
  atomic_fetch_add(ok ? &w->calls_ok : &w->calls_failed, 1);
  if (json) *json = !rc && a.body.len ? cJSON_ParseWithLength(a.body.data, a.body.len) : NULL;
  if (why) snprintf(why, whylen, "%s %s: %ld %.200s", method, path, status, rc ? "" : a.body.data);
  post_answer_cleanup(&a);
  return status;
}

/* The cgroup2 directory of e into cg: read from its main process's
 * /proc/PID/cgroup, or on Kubernetes (no pid) found by its pod's uid and its
 * container's id. False when it cannot be had (said why). */
static bool env_cgroup(post_watch *w, const post_watch_env *e, char *cg, size_t size) {
  posts_env_info info = {0};
  posts_err err = {0};
  int rc = posts_env_inspect(w->rt, e->id, &info, &err), found = -1;
  if (rc && rc != -ENOENT) { /* gone: the pool will say so */
    env_failed(w, e->name, "inspect: %s", err.msg);
  } else if (!rc && info.pid) {
    if ((found = cgroup_of(w, info.pid, cg, size)))
      env_failed(w, e->name, "cgroup of pid %d: %s", info.pid, strerror(-found));
  } else if (!rc && info.pod_uid && info.container_id) {
    if ((found = post_watch_pod_cgroup(w->cgroot, info.pod_uid, info.container_id, cg, size)))
      env_failed(w, e->name, "no cgroup of pod %s's container %.12s under %s: %s", info.pod_uid,
                 info.container_id, w->cgroot, strerror(-found));
  } else if (!rc) {
    env_failed(w, e->name, "not running");
  }
  posts_env_info_cleanup(&info);
  return found == 0;
}

/* PUTs body at path; true when the detector took it. A refusal is logged
 * (once); the detector being away is logged by watch_call. */
static bool env_put(post_watch *w, const post_watch_env *e, const char *path, const cJSON *body) {
  char why[400];
  long st = watch_call(w, "PUT", path, body, NULL, why, sizeof why);
  if (st == 201) atomic_fetch_add(&w->registered, 1);
  if (st > 0 && st != 200 && st != 201) env_failed(w, e->name, "%s", why);
  return st == 200 || st == 201;
}

/* Registers e and then its policy; true when the detector has both. */
static bool env_register(post_watch *w, const post_watch_env *e) {
  char cg[PATH_MAX], path[160];
  if (!env_cgroup(w, e, cg, sizeof cg)) return false;
  cJSON *body = cJSON_CreateObject();
  cJSON_AddStringToObject(body, "cgroupPath", cg);
  cJSON_AddStringToObject(body, "tenant", e->tenant);
  cJSON_AddStringToObject(body, "namespace", e->ns);
  cJSON_AddStringToObject(body, "template", e->tpl);
  snprintf(path, sizeof path, "/v1/environments/%s", e->name);
  bool ok = env_put(w, e, path, body);
  cJSON_Delete(body);
  if (ok && e->policy) {
    cJSON *pol = cJSON_Parse(e->policy);
    snprintf(path, sizeof path, "/v1/environments/%s/policy", e->name);
    ok = env_put(w, e, path, pol);
    cJSON_Delete(pol);
  }
  if (ok) env_fine(w, e->name);
  return ok;
}

/* True when the detector no longer has name (204, or 404). */
static bool env_delete(post_watch *w, const char *name, bool *was_there) {
  char path[160];
  snprintf(path, sizeof path, "/v1/environments/%s", name);
  long st = watch_call(w, "DELETE", path, NULL, NULL, NULL, 0);
  if (st == 204 || st == 404) env_fine(w, name);
  *was_there = st == 204;
  return st == 204 || st == 404;
}

/* ------------------------------------------------------------- the thread */

static const post_watch_env *env_find(const post_watch_env *envs, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(envs[i].name, name)) return &envs[i];
  return NULL;
}

static bool hosted(const post_watch *w, const char *ns) {
  for (size_t i = 0; i < w->n_ns; i++)
    if (ns && !strcmp(w->namespaces[i], ns)) return true;
  return false;
}

static void run_op(post_watch *w, const watch_op *op) {
  bool was_there;
  if (op->gone) {
    if (env_delete(w, op->name, &was_there) && was_there && atomic_load(&w->registered) > 0)
      atomic_fetch_sub(&w->registered, 1);
    return;
  }
  post_watch_env *envs = NULL;
  size_t n = 0;
  if (w->list(w->opaque, &envs, &n)) return;
  /* Not claimed any more: released before its turn came. */
  const post_watch_env *e = env_find(envs, n, op->name);
  if (e) env_register(w, e);
  free(envs);
}

/* What the detector is missing is registered (or its policy, when the
 * register went half way); what it holds of this node's namespaces and is
 * not claimed here is deleted. */
static void reconcile(post_watch *w) {
  post_watch_env *envs = NULL;
  size_t n = 0;
  cJSON *json = NULL;
  if (w->list(w->opaque, &envs, &n)) return;
  if (watch_call(w, "GET", "/v1/environments", NULL, &json, NULL, 0) != 200) goto done;
  const cJSON *there = cJSON_GetObjectItemCaseSensitive(json, "environments"), *d;
  int64_t count = 0;
  for (size_t i = 0; i < n; i++) {
    const cJSON *found = NULL;
    cJSON_ArrayForEach(d, there) {
      const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "name"));
      if (name && !strcmp(name, envs[i].name)) found = d;
    }
    const char *pol = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(found, "policy"));
    bool whole = found && (!envs[i].policy || (pol && strcmp(pol, "none")));
    count += whole || env_register(w, &envs[i]);
  }
  atomic_store(&w->registered, count);
  cJSON_ArrayForEach(d, there) {
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "name"));
    const char *ns = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "namespace"));
    bool was_there;
    if (name && hosted(w, ns) && !env_find(envs, n, name)) env_delete(w, name, &was_there);
  }
done:
  cJSON_Delete(json);
  free(envs);
}

static void *watch_main(void *arg) {
  post_watch *w = arg;
  int64_t next = 0; /* at once: what a restarted node post recovered */
  pthread_mutex_lock(&w->mu);
  while (!w->stopping) {
    if (w->n) {
      watch_op op = w->q[w->head];
      w->head = (w->head + 1) % WATCH_QUEUE;
      w->n--;
      pthread_mutex_unlock(&w->mu);
      run_op(w, &op);
      pthread_mutex_lock(&w->mu);
    } else if (w->reconcile_now || clock_mono_ms() >= next) {
      w->reconcile_now = false;
      pthread_mutex_unlock(&w->mu);
      reconcile(w);
      pthread_mutex_lock(&w->mu);
      next = clock_mono_ms() + WATCH_RECONCILE_MS;
    } else {
      struct timespec ts = {(time_t)(next / 1000), (long)(next % 1000) * 1000000L};
      pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

static void push(post_watch *w, bool gone, const char *name) {
  if (!w || !name) return;
  pthread_mutex_lock(&w->mu);
  if (w->n == WATCH_QUEUE) {
    w->reconcile_now = true;
  } else {
    watch_op *op = &w->q[(w->head + w->n++) % WATCH_QUEUE];
    op->gone = gone;
    snprintf(op->name, sizeof op->name, "%s", name);
  }
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

void post_watch_claimed(post_watch *w, const char *name) {
  push(w, false, name);
}

void post_watch_gone(post_watch *w, const char *name) {
  push(w, true, name);
}

/* ------------------------------------------------------------- life */

post_watch *post_watch_new(post *p, posts_runtime *rt, const char *const *namespaces, size_t n_ns,
                           post_watch_list_fn list, void *opaque) {
  if (!p->cfg.detector_url) return NULL;
  post_watch *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->p = p;
  w->rt = rt;
  w->namespaces = namespaces;
  w->n_ns = n_ns;
  w->list = list;
  w->opaque = opaque;
  snprintf(w->url, sizeof w->url, "%s", p->cfg.detector_url);
  size_t len = strlen(w->url);
  if (len && w->url[len - 1] == '/') w->url[len - 1] = '\0';
  if (cgroup2_root(w->cgroot, sizeof w->cgroot)) {
    post_log(p, "detector: no cgroup2 mount here; environments cannot be registered");
    free(w);
    return NULL;
  }
  clock_cond_init(&w->cv);
  pthread_mutex_init(&w->mu, NULL);
  if (pthread_create(&w->thread, NULL, watch_main, w)) {
    post_watch_free(w);
    return NULL;
  }
  w->has_thread = true;
  post_log(p, "detector at %s: claimed environments are registered there (cgroups under %s)",
           w->url, w->cgroot);
  return w;
}

void post_watch_stop(post_watch *w) {
  if (!w || !w->has_thread) return;
  pthread_mutex_lock(&w->mu);
  w->stopping = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  w->has_thread = false;
}

void post_watch_free(post_watch *w) {
  if (!w) return;
  post_watch_stop(w);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

void post_watch_metrics(post_watch *w, ce_buf *out) {
  if (!w) return;
  static const char *c = "outpost_post_node_detector_calls_total";
  metrics_family(out, c, "counter", "requests to the detector's admin API, by result");
  metrics_sample(out, c, "result=\"ok\"", atomic_load(&w->calls_ok));
  metrics_sample(out, c, "result=\"failed\"", atomic_load(&w->calls_failed));
  static const char *g = "outpost_post_node_detector_environments";
  metrics_family(out, g, "gauge", "environments of this node registered at the detector");
  int64_t n = atomic_load(&w->registered);
  metrics_sample(out, g, NULL, (uint64_t)(n > 0 ? n : 0));
}
