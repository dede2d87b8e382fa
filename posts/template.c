/*
 * template.c — reads LabTemplate resources (see template.h) into
 * pool_template values, refusing anything it does not know with the field's
 * path and the reason, because a template decides what tenants may do: a
 * misspelt "readOnlyRoot" must not silently leave roots writable.
 */
#include "posts/template.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/resources.h"

#define API_GROUP    "outpost.dev"
#define NAME_MAX_LEN 52        /* environments are <name>-<10 characters>, a DNS name */
#define MIN_MEMORY   (6 << 20) /* Docker's smallest memory limit */
#define MAX_LIST     4096

static void set_err(pool_template_err *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(pool_template_err *err, const char *path, const char *fmt, ...) {
  va_list ap;
  if (!err) return;
  snprintf(err->path, sizeof err->path, "%s", path);
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
}

static int no_memory(pool_template_err *err) {
  set_err(err, "", "out of memory");
  return -ENOMEM;
}

/* ------------------------------------------------------------- numbers */

/* Kubernetes quantity suffixes, as multipliers. */
static const struct {
  const char *suffix;
  int64_t mul;
} suffixes[] = {
    {"Ki", 1LL << 10},
    {"Mi", 1LL << 20},
    {"Gi", 1LL << 30},
    {"Ti", 1LL << 40},
    {"Pi", 1LL << 50},
    {"Ei", 1LL << 60},
    {"k", 1000LL},
    {"M", 1000000LL},
    {"G", 1000000000LL},
    {"T", 1000000000000LL},
    {"P", 1000000000000000LL},
    {"E", 1000000000000000000LL},
    {"", 1},
};

/* Digits by hand, as for durations: strtod would take hex, exponents and
 * the locale's decimal sign. */
int pool_quantity_parse(const char *s, int64_t scale, bool milli, int64_t *out) {
  int64_t whole = 0, frac = 0, fscale = 1, factor = 0, total;
  const char *p = s;
  bool digits = false;
  if (!s || scale <= 0) return -EINVAL;
  for (; *p >= '0' && *p <= '9'; p++, digits = true)
    if (__builtin_mul_overflow(whole, 10, &whole) ||
        __builtin_add_overflow(whole, *p - '0', &whole))
      return -EINVAL;
  if (*p == '.') {
    for (p++; *p >= '0' && *p <= '9'; p++, digits = true)
      if (fscale < 1000000000LL) { /* digits past the ninth cannot matter */
        frac = frac * 10 + (*p - '0');
        fscale *= 10;
      }
  }
  if (!digits) return -EINVAL;
  if (milli && strcmp(p, "m") == 0) {
    if (scale % 1000) return -EINVAL;
    factor = scale / 1000;
  }
  for (size_t i = 0; !factor && i < sizeof suffixes / sizeof suffixes[0]; i++)
    if (strcmp(p, suffixes[i].suffix) == 0 &&
        __builtin_mul_overflow(suffixes[i].mul, scale, &factor))
      return -EINVAL;
  if (!factor) return -EINVAL;
  if (__builtin_mul_overflow(whole, factor, &total)) return -EINVAL;
  /* The fraction in long double: frac * factor may not fit in 64 bits. */
  long double part = roundl((long double)frac * (long double)factor / (long double)fscale);
  if (part > (long double)(INT64_MAX - total)) return -EINVAL;
  *out = total + (int64_t)part;
  return 0;
}

/* -------------------------------------------------------------- fields */

/* Refuses members of obj that are not in allowed (NULL-terminated). */
static int only_known(const cJSON *obj, const char *path, const char *const *allowed,
                      pool_template_err *err) {
  const cJSON *m;
  cJSON_ArrayForEach(m, obj) {
    size_t i = 0;
    while (allowed[i] && strcmp(allowed[i], m->string) != 0) i++;
    if (!allowed[i]) {
      char where[128];
      snprintf(where, sizeof where, "%s%s%s", path, path[0] ? "." : "", m->string);
      set_err(err, where, "unknown field");
      return -EINVAL;
    }
  }
  return 0;
}

/* Printable ASCII without spaces, 1..max bytes. */
static bool is_token(const char *s, size_t max) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] <= ' ' || s[i] > '~') return false;
  return true;
}

static bool is_capability(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 32) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_')) return false;
  return true;
}

static bool is_absolute(const char *s) {
  return s[0] == '/' && strlen(s) < 4096;
}

/* Which strings a list accepts, and what its refusal says. */
typedef enum list_kind { LIST_ANY, LIST_CAPABILITY, LIST_ABSOLUTE, LIST_TOKEN } list_kind;

static bool list_item_ok(list_kind kind, const char *s) {
  switch (kind) {
  case LIST_CAPABILITY:
    return is_capability(s) && strncmp(s, "CAP_", 4) != 0;
  case LIST_ABSOLUTE:
    return is_absolute(s);
  case LIST_TOKEN:
    return is_token(s, 256);
  case LIST_ANY:
    break;
  }
  return true;
}

static const char *const list_rule[] = {
    [LIST_ANY] = "must be a string",
    [LIST_CAPABILITY] = "must be a capability name such as NET_BIND_SERVICE (no CAP_ prefix)",
    [LIST_ABSOLUTE] = "must be an absolute path",
    [LIST_TOKEN] = "must be a non-empty string without spaces",
};

/* The list at node (absent: empty, or NULL when nullable) into a new
 * NULL-terminated array in *out. */
static int parse_list(const cJSON *node, const char *path, list_kind kind, bool nullable,
                      bool nonempty, char ***out, pool_template_err *err) {
  int n = node ? cJSON_GetArraySize(node) : 0, i = 0;
  const cJSON *it;
  *out = NULL;
  if (!node && nullable) return 0;
  if (node && !cJSON_IsArray(node)) {
    set_err(err, path, "must be a list");
    return -EINVAL;
  }
  if (n > MAX_LIST || (nonempty && n == 0)) {
    set_err(err, path, nonempty && n == 0 ? "must not be empty" : "more than 4096 entries");
    return -EINVAL;
  }
  if (!(*out = calloc((size_t)n + 1, sizeof **out))) return no_memory(err);
  cJSON_ArrayForEach(it, node) {
    if (!cJSON_IsString(it) || !list_item_ok(kind, it->valuestring)) {
      char where[160];
      snprintf(where, sizeof where, "%s.%d", path, i);
      set_err(err, where, "%s", list_rule[cJSON_IsString(it) ? kind : LIST_ANY]);
      return -EINVAL;
    }
    if (!((*out)[i++] = strdup(it->valuestring))) return no_memory(err);
  }
  return 0;
}

static void free_list(char **l) {
  for (size_t i = 0; l && l[i]; i++) free(l[i]);
  free(l);
}

/* An optional boolean. */
static int parse_bool(const cJSON *parent, const char *key, const char *path, bool *out,
                      pool_template_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(parent, key);
  if (!v) return 0;
  if (!cJSON_IsBool(v)) {
    set_err(err, path, "must be true or false");
    return -EINVAL;
  }
  *out = cJSON_IsTrue(v);
  return 0;
}

/* An optional whole number in [lo, hi]. */
static int parse_int(const cJSON *parent, const char *key, const char *path, int64_t lo, int64_t hi,
                     int64_t *out, pool_template_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(parent, key);
  if (!v) return 0;
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
      v->valuedouble < (double)lo || v->valuedouble > (double)hi) {
    set_err(err, path, "must be a whole number from %lld to %lld", (long long)lo, (long long)hi);
    return -EINVAL;
  }
  *out = (int64_t)v->valuedouble;
  return 0;
}

/* An optional quantity, as a string ("256Mi") or a number (bytes, cores). */
static int parse_qty(const cJSON *parent, const char *key, const char *path, int64_t scale,
                     int64_t least, const char *least_text, int64_t *out, pool_template_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(parent, key);
  bool milli = scale > 1;
  int64_t q = 0;
  int rc = -EINVAL;
  if (!v) return 0;
  if (cJSON_IsString(v)) {
    rc = pool_quantity_parse(v->valuestring, scale, milli, &q);
  } else if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble * (double)scale < 9e18) {
    q = (int64_t)llround(v->valuedouble * (double)scale);
    rc = milli || v->valuedouble == floor(v->valuedouble) ? 0 : -EINVAL;
  }
  if (rc < 0) {
    set_err(err, path, "must be a quantity such as %s", milli ? "500m or 2" : "256Mi or 1Gi");
    return -EINVAL;
  }
  if (q < least) {
    set_err(err, path, "must be at least %s", least_text);
    return -EINVAL;
  }
  *out = q;
  return 0;
}

/* -------------------------------------------------------------- sections */

static int parse_limits(const cJSON *l, pool_template *t, pool_template_err *err) {
  static const char *const known[] = {"pids", "memory", "cpu", NULL};
  int rc;
  if (!l) return 0;
  if (!cJSON_IsObject(l)) {
    set_err(err, "spec.limits", "must be a mapping");
    return -EINVAL;
  }
  if ((rc = only_known(l, "spec.limits", known, err)) < 0 ||
      (rc = parse_int(l, "pids", "spec.limits.pids", 1, 1 << 22, &t->pids_limit, err)) < 0 ||
      (rc = parse_qty(l, "memory", "spec.limits.memory", 1, MIN_MEMORY, "6Mi", &t->memory_bytes,
                      err)) < 0)
    return rc;
  return parse_qty(l, "cpu", "spec.limits.cpu", 1000000000LL, 1000000, "1m", &t->nano_cpus, err);
}

static int parse_pool(const cJSON *p, pool_template *t, pool_template_err *err) {
  static const char *const known[] = {"min", "max", "keepAlive", NULL};
  int64_t min = 0, max = POOL_TEMPLATE_MAX_DEFAULT;
  int rc;
  const cJSON *ka = p ? cJSON_GetObjectItemCaseSensitive(p, "keepAlive") : NULL;
  if (p && !cJSON_IsObject(p)) {
    set_err(err, "spec.pool", "must be a mapping");
    return -EINVAL;
  }
  if (p && ((rc = only_known(p, "spec.pool", known, err)) < 0 ||
            (rc = parse_int(p, "min", "spec.pool.min", 0, POOL_TEMPLATE_MAX_POOL, &min, err)) < 0 ||
            (rc = parse_int(p, "max", "spec.pool.max", 0, POOL_TEMPLATE_MAX_POOL, &max, err)) < 0))
    return rc;
  if (min > max) {
    set_err(err, "spec.pool.min", "must not be more than spec.pool.max (%lld)", (long long)max);
    return -EINVAL;
  }
  /* The fixed keep-alive of the predictor: how long after its last claim a
   * template whose claims show no pattern yet keeps warm environments. */
  if (ka && (!cJSON_IsString(ka) || res_duration_ms(ka->valuestring, &t->keepalive_ms) < 0 ||
             t->keepalive_ms <= 0)) {
    set_err(err, "spec.pool.keepAlive", "must be an ISO-8601 duration above zero, such as PT10M");
    return -EINVAL;
  }
  t->pool_min = (uint32_t)min;
  t->pool_max = (uint32_t)max;
  return 0;
}

static int parse_shared(const cJSON *v, pool_template *t, pool_template_err *err) {
  static const char *const known[] = {"hostPath", "path", NULL};
  const char *host = res_str(v, "hostPath"), *path = res_str(v, "path");
  int rc;
  if (!v) return 0;
  if (!cJSON_IsObject(v)) {
    set_err(err, "spec.sharedVolume", "must be a mapping");
    return -EINVAL;
  }
  if ((rc = only_known(v, "spec.sharedVolume", known, err)) < 0) return rc;
  if (!host || !is_absolute(host)) {
    set_err(err, "spec.sharedVolume.hostPath", "must be an absolute path");
    return -EINVAL;
  }
  if (!path || !is_absolute(path) || strcmp(path, "/") == 0) {
    set_err(err, "spec.sharedVolume.path", "must be an absolute path other than /");
    return -EINVAL;
  }
  if (!(t->shared_host_path = strdup(host)) || !(t->shared_path = strdup(path)))
    return no_memory(err);
  return 0;
}

static int parse_policy(const cJSON *v, pool_template *t, pool_template_err *err) {
  static const char *const known[] = {"forbiddenBinaries", "forbiddenPaths",
                                      "forbiddenDestinations", NULL};
  int rc;
  if (v && !cJSON_IsObject(v)) {
    set_err(err, "spec.policy", "must be a mapping");
    return -EINVAL;
  }
  if ((v && (rc = only_known(v, "spec.policy", known, err)) < 0) ||
      (rc = parse_list(res_get(v, "forbiddenBinaries"), "spec.policy.forbiddenBinaries",
                       LIST_ABSOLUTE, false, false, &t->forbidden_binaries, err)) < 0 ||
      (rc = parse_list(res_get(v, "forbiddenPaths"), "spec.policy.forbiddenPaths", LIST_ABSOLUTE,
                       false, false, &t->forbidden_paths, err)) < 0)
    return rc;
  return parse_list(res_get(v, "forbiddenDestinations"), "spec.policy.forbiddenDestinations",
                    LIST_TOKEN, false, false, &t->forbidden_destinations, err);
}

static int parse_idle(const cJSON *v, pool_template *t, pool_template_err *err) {
  t->idle_timeout_ms = POOL_TEMPLATE_IDLE_DEFAULT_MS;
  if (!v) return 0;
  if (!cJSON_IsString(v) || res_duration_ms(v->valuestring, &t->idle_timeout_ms) < 0 ||
      t->idle_timeout_ms <= 0) {
    set_err(err, "spec.idleTimeout", "must be an ISO-8601 duration above zero, such as PT30M");
    return -EINVAL;
  }
  return 0;
}

/* runAsUser, runAsGroup: not root. uid 0 is refused rather than taken as
 * "root on purpose": leaving the field out runs as the image says, which is
 * what root on purpose means. The bound is Kubernetes' (int32). */
static int parse_user(const cJSON *spec, pool_template *t, pool_template_err *err) {
  int rc;
  if ((rc = parse_int(spec, "runAsUser", "spec.runAsUser", 1, POOL_TEMPLATE_MAX_ID, &t->run_as_user,
                      err)) < 0 ||
      (rc = parse_int(spec, "runAsGroup", "spec.runAsGroup", 1, POOL_TEMPLATE_MAX_ID,
                      &t->run_as_group, err)) < 0)
    return rc;
  if (t->run_as_group && !t->run_as_user) {
    set_err(err, "spec.runAsGroup", "needs spec.runAsUser");
    return -EINVAL;
  }
  return 0;
}

static int parse_spec(const cJSON *spec, pool_template *t, pool_template_err *err) {
  static const char *const known[] = {
      "image",        "command",   "limits",     "capabilities", "network",
      "readOnlyRoot", "runAsUser", "runAsGroup", "sharedVolume", "idleTimeout",
      "pool",         "policy",    NULL};
  const char *image = res_str(spec, "image");
  int rc;
  if (!cJSON_IsObject(spec)) {
    set_err(err, "spec", "missing, or not a mapping");
    return -EINVAL;
  }
  if ((rc = only_known(spec, "spec", known, err)) < 0) return rc;
  if (!is_token(image, 512)) {
    set_err(err, "spec.image", "missing, empty, or holding spaces");
    return -EINVAL;
  }
  if (!(t->image = strdup(image))) return no_memory(err);
  if ((rc = parse_list(res_get(spec, "command"), "spec.command", LIST_ANY, true, true, &t->command,
                       err)) < 0 ||
      (rc = parse_limits(res_get(spec, "limits"), t, err)) < 0 ||
      (rc = parse_list(res_get(spec, "capabilities"), "spec.capabilities", LIST_CAPABILITY, false,
                       false, &t->capabilities, err)) < 0 ||
      (rc = parse_bool(spec, "network", "spec.network", &t->network, err)) < 0 ||
      (rc = parse_bool(spec, "readOnlyRoot", "spec.readOnlyRoot", &t->read_only_root, err)) < 0 ||
      (rc = parse_user(spec, t, err)) < 0 ||
      (rc = parse_shared(res_get(spec, "sharedVolume"), t, err)) < 0 ||
      (rc = parse_idle(res_get(spec, "idleTimeout"), t, err)) < 0 ||
      (rc = parse_pool(res_get(spec, "pool"), t, err)) < 0)
    return rc;
  return parse_policy(res_get(spec, "policy"), t, err);
}

static int parse_meta(const cJSON *res, pool_template *t, pool_template_err *err) {
  static const char *const known[] = {"apiVersion", "kind", "metadata", "spec", NULL};
  static const char *const meta_known[] = {"name", "labels", "annotations", NULL};
  const cJSON *meta = res_get(res, "metadata");
  const char *name = res_str(res, "metadata.name");
  int rc;
  if (!cJSON_IsObject(res)) {
    set_err(err, "", "a resource must be a mapping");
    return -EINVAL;
  }
  if (!res_is(res, API_GROUP, "LabTemplate") || !res_str(res, "apiVersion") ||
      strcmp(res_str(res, "apiVersion"), API_GROUP "/v1") != 0) {
    set_err(err, res_is(res, NULL, "LabTemplate") ? "apiVersion" : "kind",
            "must be apiVersion outpost.dev/v1, kind LabTemplate");
    return -EINVAL;
  }
  if ((rc = only_known(res, "", known, err)) < 0) return rc;
  if (!cJSON_IsObject(meta)) {
    set_err(err, "metadata", "missing, or not a mapping");
    return -EINVAL;
  }
  if ((rc = only_known(meta, "metadata", meta_known, err)) < 0) return rc;
  if (!name || strlen(name) > NAME_MAX_LEN || !res_valid_dns_label(name, strlen(name))) {
    set_err(err, "metadata.name", "must be a DNS label ([a-z0-9-]) of at most %d characters",
            NAME_MAX_LEN);
    return -EINVAL;
  }
  if (!(t->name = strdup(name))) return no_memory(err);
  return 0;
}

/* ----------------------------------------------------------------- API */

pool_template *pool_template_parse(const cJSON *res, pool_template_err *err) {
  pool_template *t = calloc(1, sizeof *t);
  if (!t) {
    no_memory(err);
    return NULL;
  }
  if (parse_meta(res, t, err) < 0 || parse_spec(res_get(res, "spec"), t, err) < 0) {
    pool_template_free(t);
    return NULL;
  }
  return t;
}

void pool_template_free(pool_template *t) {
  if (!t) return;
  free(t->name);
  free(t->image);
  free_list(t->command);
  free_list(t->capabilities);
  free(t->shared_host_path);
  free(t->shared_path);
  free_list(t->forbidden_binaries);
  free_list(t->forbidden_paths);
  free_list(t->forbidden_destinations);
  free(t);
}

void pool_template_spec(const pool_template *t, const char *ns, const posts_label *labels,
                        size_t n_labels, posts_env_spec *spec) {
  memset(spec, 0, sizeof *spec);
  spec->ns = ns;
  spec->image = t->image;
  spec->command = (const char *const *)t->command;
  spec->labels = labels;
  spec->n_labels = n_labels;
  spec->pids_limit = t->pids_limit;
  spec->memory_bytes = t->memory_bytes;
  spec->nano_cpus = t->nano_cpus;
  /* The runtime reads NULL as "no capabilities", as an empty list means. */
  spec->capabilities =
      t->capabilities && t->capabilities[0] ? (const char *const *)t->capabilities : NULL;
  spec->network = t->network;
  spec->read_only_root = t->read_only_root;
  spec->run_as_user = t->run_as_user;
  spec->run_as_group = t->run_as_group;
  spec->shared_host_path = t->shared_host_path;
  spec->shared_path = t->shared_path;
}
