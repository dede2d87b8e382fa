/*
 * trigger.c — reading Trigger resources and matching events against their
 * filters (see trigger.h for the semantics).
 *
 * Filters evaluate to pass, fail or "no opinion" as Knative's do: an empty
 * all or any has no opinion, not keeps it, and a trigger whose filters have
 * no opinion passes every event.
 */
#include "trigger/trigger.h"
#include "core/resources.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILTER_DEPTH 16
#define ORDER_ANNOTATION "kafka.eventing.knative.dev/delivery.order"

enum verdict { FAIL, PASS, NONE };

static void set_err(trigger_err *err, const char *path, const char *fmt, ...) {
  if (!err) return;
  snprintf(err->path, sizeof err->path, "%s", path);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
}

/* Trigger names are DNS subdomains: labels joined by dots, 253 at most. */
static bool valid_subdomain(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 253) return false;
  for (const char *p = s;;) {
    const char *dot = strchr(p, '.');
    size_t len = dot ? (size_t)(dot - p) : strlen(p);
    if (!res_valid_dns_label(p, len)) return false;
    if (!dot) return true;
    p = dot + 1;
  }
}

static bool valid_http_uri(const char *s) {
  return ce_valid_uri(s, strlen(s)) &&
         (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0);
}

static void filter_cleanup(trigger_filter *f) {
  free(f->attr);
  free(f->value);
  for (size_t i = 0; i < f->n_subs; i++) filter_cleanup(&f->subs[i]);
  free(f->subs);
  cesql_expr_free(f->expr);
}

static int parse_filter(const cJSON *j, trigger_filter *f, char *path, size_t plen, int depth,
                        trigger_err *err);

/* A list of filters (spec.filters, all, any) into *subs. */
static int parse_list(const cJSON *j, trigger_filter **subs, size_t *n, char *path, size_t plen,
                      int depth, trigger_err *err) {
  if (!cJSON_IsArray(j)) {
    set_err(err, path, "must be a list of filters");
    return -EINVAL;
  }
  size_t count = (size_t)cJSON_GetArraySize(j);
  *subs = calloc(count ? count : 1, sizeof **subs);
  *n = 0;
  if (!*subs) return -ENOMEM;
  size_t used = strlen(path);
  for (const cJSON *it = j->child; it; it = it->next) {
    snprintf(path + used, plen - used, ".%zu", *n);
    int rc = parse_filter(it, &(*subs)[*n], path, plen, depth + 1, err);
    (*n)++;
    if (rc) return rc;
  }
  path[used] = '\0';
  return 0;
}

static int parse_filter(const cJSON *j, trigger_filter *f, char *path, size_t plen, int depth,
                        trigger_err *err) {
  memset(f, 0, sizeof *f);
  if (depth > MAX_FILTER_DEPTH) {
    set_err(err, path, "filters nest deeper than %d", MAX_FILTER_DEPTH);
    return -EINVAL;
  }
  if (!cJSON_IsObject(j) || cJSON_GetArraySize(j) != 1) {
    set_err(err, path,
            "a filter is an object with exactly one dialect: exact, prefix, suffix, all, any, "
            "not or cesql");
    return -EINVAL;
  }
  const cJSON *d = j->child;
  size_t used = strlen(path);
  snprintf(path + used, plen - used, ".%s", d->string);
  static const char *const names[] = {"exact", "prefix", "suffix", "all", "any", "not", "cesql"};
  int kind = -1;
  for (int i = 0; i < 7; i++)
    if (strcmp(d->string, names[i]) == 0) kind = i;
  if (kind < 0) {
    path[used] = '\0';
    set_err(err, path, "unknown filter dialect '%s' (exact, prefix, suffix, all, any, not, cesql)",
            d->string);
    return -EINVAL;
  }
  f->kind = (trigger_filter_kind)kind;
  switch (f->kind) {
  case TRIGGER_EXACT:
  case TRIGGER_PREFIX:
  case TRIGGER_SUFFIX: {
    if (!cJSON_IsObject(d) || cJSON_GetArraySize(d) != 1 || !cJSON_IsString(d->child)) {
      set_err(err, path, "takes exactly one attribute and its string value, as {type: value}");
      return -EINVAL;
    }
    const char *name = d->child->string;
    if (!ce_valid_name(name, strlen(name))) {
      set_err(err, path, "'%s' is not a CloudEvents attribute name ([a-z0-9]+)", name);
      return -EINVAL;
    }
    f->attr = strdup(name);
    f->value = strdup(d->child->valuestring);
    if (!f->attr || !f->value) return -ENOMEM;
    break;
  }
  case TRIGGER_ALL:
  case TRIGGER_ANY: {
    int rc = parse_list(d, &f->subs, &f->n_subs, path, plen, depth, err);
    if (rc) return rc;
    break;
  }
  case TRIGGER_NOT: {
    f->subs = calloc(1, sizeof *f->subs);
    if (!f->subs) return -ENOMEM;
    f->n_subs = 1;
    int rc = parse_filter(d, f->subs, path, plen, depth + 1, err);
    if (rc) return rc;
    break;
  }
  case TRIGGER_CESQL: {
    if (!cJSON_IsString(d)) {
      set_err(err, path, "must be a string holding a CESQL expression");
      return -EINVAL;
    }
    cesql_err cerr;
    f->expr = cesql_expr_compile(d->valuestring, strlen(d->valuestring), &cerr);
    if (!f->expr) {
      if (cerr.code == -ENOMEM) return -ENOMEM;
      set_err(err, path, "CESQL, at character %d: %s", cerr.position, cerr.msg);
      return -EINVAL;
    }
    break;
  }
  }
  path[used] = '\0';
  return 0;
}

/* Refuses a member of obj not named in known (NULL-terminated), as
 * Kubernetes' strict decoding does: a typo is an error, not a default. */
static int only_known(const cJSON *obj, const char *const *known, const char *path,
                      trigger_err *err) {
  for (const cJSON *it = obj->child; it; it = it->next) {
    size_t i = 0;
    while (known[i] && strcmp(it->string, known[i]) != 0) i++;
    if (!known[i]) {
      set_err(err, path, "unknown field '%s'", it->string);
      return -EINVAL;
    }
  }
  return 0;
}

static int parse_delivery(const cJSON *d, trigger_delivery *out, trigger_err *err) {
  static const char *const known[] = {
      "retry", "backoffPolicy", "backoffDelay", "timeout", "retryAfterMax", "deadLetterSink", NULL};
  if (only_known(d, known, "spec.delivery", err)) return -EINVAL;
  const cJSON *retry = cJSON_GetObjectItemCaseSensitive(d, "retry");
  if (retry) {
    if (!cJSON_IsNumber(retry) || retry->valuedouble < 0 || retry->valuedouble > 1000000 ||
        retry->valuedouble != (double)(int32_t)retry->valuedouble) {
      set_err(err, "spec.delivery.retry", "must be a whole number from 0 to 1000000");
      return -EINVAL;
    }
    out->retry = (int32_t)retry->valuedouble;
  }
  const char *policy = res_str(d, "backoffPolicy");
  if (cJSON_GetObjectItemCaseSensitive(d, "backoffPolicy")) {
    if (!policy || (strcmp(policy, "linear") && strcmp(policy, "exponential"))) {
      set_err(err, "spec.delivery.backoffPolicy", "must be linear or exponential");
      return -EINVAL;
    }
    out->exponential = strcmp(policy, "exponential") == 0;
  }
  struct {
    const char *name;
    int64_t *ms;
  } durations[] = {{"backoffDelay", &out->backoff_delay_ms},
                   {"timeout", &out->timeout_ms},
                   {"retryAfterMax", &out->retry_after_max_ms}};
  for (size_t i = 0; i < 3; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, durations[i].name);
    if (!v) continue;
    if (!cJSON_IsString(v) || res_duration_ms(v->valuestring, durations[i].ms)) {
      char path[64];
      snprintf(path, sizeof path, "spec.delivery.%s", durations[i].name);
      set_err(err, path, "must be an ISO-8601 duration such as PT0.5S or PT1M");
      return -EINVAL;
    }
  }
  const cJSON *dls = cJSON_GetObjectItemCaseSensitive(d, "deadLetterSink");
  if (dls) {
    const char *uri = res_str(dls, "uri");
    if (res_get(dls, "ref")) {
      set_err(err, "spec.delivery.deadLetterSink.ref",
              "a ref needs Kubernetes to resolve it; give deadLetterSink.uri");
      return -EINVAL;
    }
    if (!uri || !valid_http_uri(uri)) {
      set_err(err, "spec.delivery.deadLetterSink.uri", "must be an absolute http(s) URI");
      return -EINVAL;
    }
    out->dead_letter_uri = strdup(uri);
    if (!out->dead_letter_uri) return -ENOMEM;
  }
  return 0;
}

static int parse_spec(const cJSON *res, trigger *tr, trigger_err *err) {
  const cJSON *spec = res_get(res, "spec");
  if (!cJSON_IsObject(spec)) {
    set_err(err, "spec", "a Trigger needs a spec");
    return -EINVAL;
  }
  static const char *const known[] = {"broker",     "filter",   "filters",
                                      "subscriber", "delivery", NULL};
  if (only_known(spec, known, "spec", err)) return -EINVAL;
  const char *broker = res_str(spec, "broker");
  if (!broker || !res_valid_dns_label(broker, strlen(broker))) {
    set_err(err, "spec.broker", "must name a broker (a DNS label: [a-z0-9-], at most 63)");
    return -EINVAL;
  }
  tr->broker = strdup(broker);
  if (res_get(spec, "subscriber.ref")) {
    set_err(err, "spec.subscriber.ref",
            "a ref needs Kubernetes to resolve it; give subscriber.uri (an absolute URI)");
    return -EINVAL;
  }
  const char *uri = res_str(spec, "subscriber.uri");
  if (!uri || !valid_http_uri(uri)) {
    set_err(err, "spec.subscriber.uri", "must be an absolute http(s) URI");
    return -EINVAL;
  }
  tr->subscriber_uri = strdup(uri);
  if (!tr->broker || !tr->subscriber_uri) return -ENOMEM;

  const cJSON *filter = res_get(spec, "filter");
  if (filter) {
    const cJSON *attrs = res_get(filter, "attributes");
    if (!cJSON_IsObject(filter) || (cJSON_GetArraySize(filter) > 0 && !attrs) ||
        cJSON_GetArraySize(filter) > 1 || (attrs && !cJSON_IsObject(attrs))) {
      set_err(err, "spec.filter", "takes only attributes: a map of attribute name to value");
      return -EINVAL;
    }
    size_t n = attrs ? (size_t)cJSON_GetArraySize(attrs) : 0;
    tr->attr_names = calloc(n ? n : 1, sizeof *tr->attr_names);
    tr->attr_values = calloc(n ? n : 1, sizeof *tr->attr_values);
    if (!tr->attr_names || !tr->attr_values) return -ENOMEM;
    for (const cJSON *a = attrs ? attrs->child : NULL; a; a = a->next) {
      char path[128];
      snprintf(path, sizeof path, "spec.filter.attributes.%s", a->string);
      if (!ce_valid_name(a->string, strlen(a->string))) {
        set_err(err, path, "not a CloudEvents attribute name ([a-z0-9]+)");
        return -EINVAL;
      }
      if (!cJSON_IsString(a)) {
        set_err(err, path, "the value must be a string (\"\" for any value)");
        return -EINVAL;
      }
      tr->attr_names[tr->n_attrs] = strdup(a->string);
      tr->attr_values[tr->n_attrs] = strdup(a->valuestring);
      tr->n_attrs++;
      if (!tr->attr_names[tr->n_attrs - 1] || !tr->attr_values[tr->n_attrs - 1]) return -ENOMEM;
    }
  }
  const cJSON *filters = res_get(spec, "filters");
  if (filters) {
    char path[128] = "spec.filters";
    int rc = parse_list(filters, &tr->filters, &tr->n_filters, path, sizeof path, 0, err);
    if (rc) return rc;
    /* As Knative (len(Filters) > 0): an empty list leaves spec.filter in force. */
    tr->has_filters = tr->n_filters > 0;
  }
  const cJSON *delivery = res_get(spec, "delivery");
  if (delivery) {
    if (!cJSON_IsObject(delivery)) {
      set_err(err, "spec.delivery", "must be an object");
      return -EINVAL;
    }
    int rc = parse_delivery(delivery, &tr->delivery, err);
    if (rc) return rc;
  }
  return 0;
}

trigger *trigger_parse(const cJSON *res, trigger_err *err) {
  if (!res_is(res, "eventing.knative.dev", "Trigger")) {
    set_err(err, "", "not a Trigger (apiVersion eventing.knative.dev/v1, kind Trigger)");
    return NULL;
  }
  trigger *tr = calloc(1, sizeof *tr);
  if (!tr) {
    set_err(err, "", "out of memory");
    return NULL;
  }
  tr->delivery.exponential = true;
  tr->delivery.backoff_delay_ms = 200;
  const char *name = res_str(res, "metadata.name"), *ns = res_str(res, "metadata.namespace");
  int rc = 0;
  if (!name || !valid_subdomain(name)) {
    set_err(err, "metadata.name", "must be a Kubernetes name ([a-z0-9-.], at most 253)");
    rc = -EINVAL;
  } else if (ns && !res_valid_dns_label(ns, strlen(ns))) {
    set_err(err, "metadata.namespace", "must be a DNS label ([a-z0-9-], at most 63)");
    rc = -EINVAL;
  } else {
    tr->name = strdup(name);
    tr->ns = strdup(ns ? ns : "default");
    rc = tr->name && tr->ns ? parse_spec(res, tr, err) : -ENOMEM;
  }
  const cJSON *order = res_get_key(res_get(res, "metadata.annotations"), ORDER_ANNOTATION);
  if (!rc && order) {
    if (!cJSON_IsString(order) ||
        (strcmp(order->valuestring, "ordered") && strcmp(order->valuestring, "unordered"))) {
      set_err(err, "metadata.annotations." ORDER_ANNOTATION, "must be ordered or unordered");
      rc = -EINVAL;
    } else {
      tr->ordered = strcmp(order->valuestring, "ordered") == 0;
    }
  }
  if (rc) {
    if (rc == -ENOMEM) set_err(err, "", "out of memory");
    trigger_free(tr);
    return NULL;
  }
  return tr;
}

void trigger_free(trigger *tr) {
  if (!tr) return;
  free(tr->ns);
  free(tr->name);
  free(tr->broker);
  for (size_t i = 0; i < tr->n_attrs; i++) {
    free(tr->attr_names[i]);
    free(tr->attr_values[i]);
  }
  free(tr->attr_names);
  free(tr->attr_values);
  for (size_t i = 0; i < tr->n_filters; i++) filter_cleanup(&tr->filters[i]);
  free(tr->filters);
  free(tr->subscriber_uri);
  free(tr->delivery.dead_letter_uri);
  free(tr);
}

static enum verdict eval(const trigger_filter *f, const ce_event *ev) {
  switch (f->kind) {
  case TRIGGER_EXACT:
  case TRIGGER_PREFIX:
  case TRIGGER_SUFFIX: {
    const ce_attr *a = ce_event_get(ev, f->attr);
    if (!a) return FAIL;
    size_t n = strlen(f->value);
    if (f->kind == TRIGGER_EXACT)
      return a->value_len == n && memcmp(a->value, f->value, n) == 0 ? PASS : FAIL;
    if (a->value_len < n) return FAIL;
    const char *at = f->kind == TRIGGER_PREFIX ? a->value : a->value + a->value_len - n;
    return memcmp(at, f->value, n) == 0 ? PASS : FAIL;
  }
  case TRIGGER_ALL: {
    enum verdict v = NONE;
    for (size_t i = 0; i < f->n_subs; i++) {
      enum verdict s = eval(&f->subs[i], ev);
      if (s == FAIL) return FAIL;
      if (s == PASS) v = PASS;
    }
    return v;
  }
  case TRIGGER_ANY: {
    enum verdict v = NONE;
    for (size_t i = 0; i < f->n_subs; i++) {
      enum verdict s = eval(&f->subs[i], ev);
      if (s == PASS) return PASS;
      if (s == FAIL) v = FAIL;
    }
    return v;
  }
  case TRIGGER_NOT: {
    enum verdict s = eval(f->subs, ev);
    return s == NONE ? NONE : s == PASS ? FAIL : PASS;
  }
  case TRIGGER_CESQL:
    return cesql_expr_match(f->expr, ev) ? PASS : FAIL;
  }
  return FAIL;
}

bool trigger_match(const trigger *tr, const ce_event *ev) {
  if (tr->has_filters) {
    for (size_t i = 0; i < tr->n_filters; i++)
      if (eval(&tr->filters[i], ev) == FAIL) return false;
    return true;
  }
  for (size_t i = 0; i < tr->n_attrs; i++) {
    const ce_attr *a = ce_event_get(ev, tr->attr_names[i]);
    if (!a) return false;
    size_t n = strlen(tr->attr_values[i]);
    if (n && (a->value_len != n || memcmp(a->value, tr->attr_values[i], n))) return false;
  }
  return true;
}

/* A condition every passing event meets, among filters ANDed together: an
 * exact (or a non-empty prefix) filter, or a CESQL `attr = 'value'`
 * conjunct, at the top or inside an all — each of those fails, and so fails
 * the trigger, on any event that does not meet it. */
static int key_in(const trigger_filter *fs, size_t n, trigger_filter_kind want, const char **attr,
                  const char **value) {
  for (size_t i = 0; i < n; i++) {
    const trigger_filter *f = &fs[i];
    if (f->kind == want && (want == TRIGGER_EXACT || *f->value)) {
      *attr = f->attr;
      *value = f->value;
      return (int)want;
    }
    if (f->kind == TRIGGER_CESQL && want == TRIGGER_EXACT &&
        cesql_expr_required_exact(f->expr, attr, value))
      return TRIGGER_EXACT;
    if (f->kind == TRIGGER_ALL && key_in(f->subs, f->n_subs, want, attr, value) >= 0)
      return (int)want;
  }
  return -1;
}

int trigger_index_key(const trigger *tr, const char **attr, const char **value) {
  if (tr->has_filters) {
    int k = key_in(tr->filters, tr->n_filters, TRIGGER_EXACT, attr, value);
    return k >= 0 ? k : key_in(tr->filters, tr->n_filters, TRIGGER_PREFIX, attr, value);
  }
  int best = -1;
  for (size_t i = 0; i < tr->n_attrs; i++) {
    if (!*tr->attr_values[i]) continue;
    /* type is the usual discriminator; otherwise the first. */
    if (best < 0 || strcmp(tr->attr_names[i], "type") == 0) best = (int)i;
  }
  if (best < 0) return -1;
  *attr = tr->attr_names[best];
  *value = tr->attr_values[best];
  return TRIGGER_EXACT;
}
