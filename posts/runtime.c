/*
 * runtime.c — the backend-independent half of posts/runtime.h: it checks
 * every spec, id and exec request once, here, so that a bad one is refused
 * with the same -EINVAL and message whichever backend runs it, and so that
 * nothing unchecked reaches a URL or a request body. It also owns the
 * result types' cleanup.
 */
#include "posts/runtime_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int posts__err(posts_err *err, int code, long status, const char *fmt, ...) {
  if (err) {
    va_list ap;
    err->code = code;
    err->status = status;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

int posts__strdup(char **dst, const char *src) {
  size_t n = src ? strlen(src) : 0;
  char *s = malloc(n + 1);
  if (!s) return -ENOMEM;
  if (n) memcpy(s, src, n);
  s[n] = '\0';
  *dst = s;
  return 0;
}

int posts__info_label_add(posts_env_info *info, const char *key, const char *value) {
  posts_label *l = realloc(info->labels, (info->n_labels + 1) * sizeof *l);
  char *k, *v;
  if (!l) return -ENOMEM;
  info->labels = l;
  if (posts__strdup(&k, key) < 0) return -ENOMEM;
  if (posts__strdup(&v, value) < 0) {
    free(k);
    return -ENOMEM;
  }
  l[info->n_labels].key = k;
  l[info->n_labels].value = v;
  info->n_labels++;
  return 0;
}

void posts_env_info_cleanup(posts_env_info *info) {
  if (!info) return;
  for (size_t i = 0; i < info->n_labels; i++) {
    /* The labels were copied by posts__info_label_add, so they are ours. */
    free((char *)info->labels[i].key);
    free((char *)info->labels[i].value);
  }
  free(info->labels);
  free(info->ns);
  free(info->name);
  free(info->owner);
  free(info->image);
  free(info->pod_uid);
  free(info->container_id);
  memset(info, 0, sizeof *info);
}

const char *posts_env_info_label(const posts_env_info *info, const char *key) {
  for (size_t i = 0; i < info->n_labels; i++)
    if (strcmp(info->labels[i].key, key) == 0) return info->labels[i].value;
  return NULL;
}

void posts_env_infos_cleanup(posts_env_infos *infos) {
  if (!infos) return;
  for (size_t i = 0; i < infos->n; i++) posts_env_info_cleanup(&infos->items[i]);
  free(infos->items);
  infos->items = NULL;
  infos->n = 0;
}

void posts_exec_result_cleanup(posts_exec_result *res) {
  if (!res) return;
  free(res->out);
  free(res->err);
  memset(res, 0, sizeof *res);
}

const char *posts_watch_type_name(posts_watch_type type) {
  switch (type) {
  case POSTS_WATCH_ADDED:
    return "added";
  case POSTS_WATCH_MODIFIED:
    return "modified";
  case POSTS_WATCH_DELETED:
    return "deleted";
  }
  return "unknown";
}

const char *posts_env_state_name(posts_env_state state) {
  static const char *const names[] = {"unknown",    "created", "running",  "paused",
                                      "restarting", "exited",  "removing", "dead"};
  if ((unsigned)state >= sizeof names / sizeof names[0]) return "unknown";
  return names[state];
}

/* ------------------------------------------------------------ checking */

/* [a-z0-9] plus the characters in extra, 1..63 long, alphanumeric at both
 * ends: a Kubernetes DNS label (extra "-") or name (extra "-."), which is
 * also a valid Docker container name. */
static bool is_dns_name(const char *s, const char *extra) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 63) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || i == n - 1 || !strchr(extra, c))) return false;
  }
  return true;
}

/* Printable ASCII without spaces: what every backend can carry as a label
 * key or image name. */
static bool is_token(const char *s, size_t max) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] <= ' ' || s[i] > '~') return false;
  return true;
}

static bool is_capability(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 32 || strncmp(s, "CAP_", 4) == 0) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_')) return false;
  return true;
}

static int check_labels(const posts_label *labels, size_t n, bool sel, posts_err *err) {
  if (n && !labels) return posts__err(err, -EINVAL, 0, "labels: NULL with a count");
  for (size_t i = 0; i < n; i++) {
    if (!is_token(labels[i].key, 253))
      return posts__err(err, -EINVAL, 0, "labels.%zu.key: empty, too long or not printable", i);
    if (strncmp(labels[i].key, POSTS_RUNTIME_LABEL_PREFIX, strlen(POSTS_RUNTIME_LABEL_PREFIX)) == 0)
      return posts__err(err, -EINVAL, 0, "labels.%zu.key: the prefix %s is reserved", i,
                        POSTS_RUNTIME_LABEL_PREFIX);
    if (!labels[i].value ? !sel : strlen(labels[i].value) > 1024 || strchr(labels[i].value, '\n'))
      return posts__err(err, -EINVAL, 0, "labels.%zu.value: missing, too long or multi-line", i);
  }
  return 0;
}

static int check_argv(const char *what, const char *const *argv, bool required, posts_err *err) {
  if (!argv) return required ? posts__err(err, -EINVAL, 0, "%s: missing", what) : 0;
  if (!argv[0]) return posts__err(err, -EINVAL, 0, "%s: empty", what);
  for (size_t i = 0; argv[i]; i++)
    if (i >= 4096) return posts__err(err, -EINVAL, 0, "%s: more than 4096 elements", what);
  return 0;
}

static int check_spec(const posts_env_spec *spec, posts_err *err) {
  int rc;
  if (!spec) return posts__err(err, -EINVAL, 0, "spec: NULL");
  if (!is_dns_name(spec->ns, "-")) return posts__err(err, -EINVAL, 0, "ns: not a DNS label");
  if (spec->name && !is_dns_name(spec->name, "-."))
    return posts__err(err, -EINVAL, 0, "name: not [a-z0-9.-]{1,63}");
  if (!is_token(spec->image, 512)) return posts__err(err, -EINVAL, 0, "image: missing or invalid");
  if ((rc = check_argv("command", spec->command, false, err)) < 0) return rc;
  if ((rc = check_labels(spec->labels, spec->n_labels, false, err)) < 0) return rc;
  if (spec->pids_limit < 0 || spec->memory_bytes < 0 || spec->nano_cpus < 0)
    return posts__err(err, -EINVAL, 0, "limits: negative");
  if (spec->run_as_user < 0 || spec->run_as_user > INT32_MAX || spec->run_as_group < 0 ||
      spec->run_as_group > INT32_MAX || (spec->run_as_group && !spec->run_as_user))
    return posts__err(err, -EINVAL, 0,
                      "user: run_as_user and run_as_group from 0 to 2^31-1, a group only with a "
                      "user");
  for (size_t i = 0; spec->capabilities && spec->capabilities[i]; i++)
    if (!is_capability(spec->capabilities[i]))
      return posts__err(err, -EINVAL, 0, "capabilities.%zu: not a name like NET_BIND_SERVICE", i);
  if (!spec->shared_host_path != !spec->shared_path)
    return posts__err(err, -EINVAL, 0, "shared: host path and path go together");
  if (spec->shared_path && (spec->shared_host_path[0] != '/' || spec->shared_path[0] != '/' ||
                            strcmp(spec->shared_path, "/") == 0))
    return posts__err(err, -EINVAL, 0, "shared: paths must be absolute, and not /");
  return 0;
}

static int check_id(const char *id, posts_err *err) {
  if (!is_token(id, POSTS_ENV_ID_MAX - 1))
    return posts__err(err, -EINVAL, 0, "id: empty or invalid");
  return 0;
}

/* ------------------------------------------------------------- dispatch */

void posts_runtime_free(posts_runtime *rt) {
  if (rt) rt->ops->free(rt);
}

int posts_runtime_ping(posts_runtime *rt, posts_err *err) {
  return rt->ops->ping(rt, err);
}

int posts_env_create(posts_runtime *rt, const posts_env_spec *spec, char *id, posts_err *err) {
  int rc = check_spec(spec, err);
  if (rc < 0) return rc;
  id[0] = '\0';
  return rt->ops->create(rt, spec, id, err);
}

int posts_env_start(posts_runtime *rt, const char *id, posts_err *err) {
  int rc = check_id(id, err);
  return rc < 0 ? rc : rt->ops->start(rt, id, err);
}

int posts_env_stop(posts_runtime *rt, const char *id, int grace_s, posts_err *err) {
  int rc = check_id(id, err);
  return rc < 0 ? rc : rt->ops->stop(rt, id, grace_s < 0 ? 10 : grace_s, err);
}

int posts_env_remove(posts_runtime *rt, const char *id, bool force, posts_err *err) {
  int rc = check_id(id, err);
  return rc < 0 ? rc : rt->ops->remove(rt, id, force, err);
}

int posts_env_inspect(posts_runtime *rt, const char *id, posts_env_info *info, posts_err *err) {
  int rc = check_id(id, err);
  memset(info, 0, sizeof *info);
  return rc < 0 ? rc : rt->ops->inspect(rt, id, info, err);
}

int posts_env_claim(posts_runtime *rt, const char *id, const char *owner, posts_err *err) {
  int rc = check_id(id, err);
  if (rc < 0) return rc;
  if (!is_dns_name(owner, "-.")) return posts__err(err, -EINVAL, 0, "owner: not [a-z0-9.-]{1,63}");
  return rt->ops->claim(rt, id, owner, err);
}

int posts_env_list(posts_runtime *rt, const char *ns, const posts_label *sel, size_t n_sel,
                   posts_env_infos *out, posts_err *err) {
  int rc;
  out->items = NULL;
  out->n = 0;
  if (ns && !is_dns_name(ns, "-")) return posts__err(err, -EINVAL, 0, "ns: not a DNS label");
  if ((rc = check_labels(sel, n_sel, true, err)) < 0) return rc;
  return rt->ops->list(rt, ns, sel, n_sel, out, err);
}

int posts_env_exec(posts_runtime *rt, const char *id, const posts_exec_req *req,
                   posts_exec_result *res, posts_err *err) {
  posts_exec_req r;
  int rc;
  memset(res, 0, sizeof *res);
  if ((rc = check_id(id, err)) < 0) return rc;
  if (!req) return posts__err(err, -EINVAL, 0, "req: NULL");
  if ((rc = check_argv("argv", req->argv, true, err)) < 0) return rc;
  if ((rc = check_argv("env", req->env, false, err)) < 0) return rc;
  if (req->timeout_ms < 0) return posts__err(err, -EINVAL, 0, "timeout_ms: negative");
  r = *req;
  if (r.timeout_ms == 0) r.timeout_ms = 30000;
  if (r.max_output == 0) r.max_output = (size_t)1 << 20;
  return rt->ops->exec(rt, id, &r, res, err);
}

void posts_runtime_cancel(posts_runtime *rt) {
  if (rt && rt->ops->cancel) rt->ops->cancel(rt);
}

int posts_env_watch(posts_runtime *rt, const char *ns, const posts_label *sel, size_t n_sel,
                    posts_watch_fn fn, void *arg, const atomic_bool *stop, posts_err *err) {
  int rc;
  if (ns && !is_dns_name(ns, "-")) return posts__err(err, -EINVAL, 0, "ns: not a DNS label");
  if ((rc = check_labels(sel, n_sel, true, err)) < 0) return rc;
  if (!fn) return posts__err(err, -EINVAL, 0, "fn: NULL");
  if (!rt->ops->watch)
    return posts__err(err, -ENOTSUP, 0, "watch: the %s runtime cannot watch; list instead",
                      rt->ops->name);
  return rt->ops->watch(rt, ns, sel, n_sel, fn, arg, stop, err);
}

/* ------------------------------------------------ shared by the backends */

void posts__buf_put(posts__buf *b, const char *data, size_t n) {
  if (b->len + n > b->max) {
    b->over = true;
    n = b->max - b->len;
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    char *p;
    while (cap < b->len + n + 1) cap *= 2;
    if (!(p = realloc(b->p, cap))) {
      b->nomem = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = '\0';
}

/* Days since 1970-01-01 of a proleptic Gregorian date (timegm is not in
 * POSIX). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  int64_t era, yoe, doy, doe;
  y -= m <= 2;
  era = (y >= 0 ? y : y - 399) / 400;
  yoe = y - era * 400;
  doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* "2024-05-01T10:00:00.123456789Z" or "...+02:00" as unix seconds; 0 when
 * it is not a timestamp. */
int64_t posts__parse_time(const char *s) {
  int y, mo, d, h, mi, sec, n = 0, oh = 0, om = 0;
  const char *p;
  int64_t t;
  if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6) return 0;
  p = s + n;
  if (*p == '.')
    for (p++; *p >= '0' && *p <= '9'; p++) continue;
  t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
  if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &oh, &om) == 2)
    t -= (*p == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
  return t;
}
