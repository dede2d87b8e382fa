/*
 * dispatcher_admin.c — the dispatcher's triggers: applying and deleting
 * them (from a file or the admin API under /v1/triggers), listing them,
 * and their metrics.
 */
#include "core/resources.h"
#include "trigger/dispatcher_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void dispatcher__entry_free(tentry *t) {
  trigger_free(t->tr);
  cJSON_Delete(t->res);
  free(t);
}

void dispatcher__entry_unref(trigger_dispatcher *d, tentry *t) {
  if (--t->refs > 0 || t->applied) return;
  for (tentry **pp = &d->entries; *pp; pp = &(*pp)->next)
    if (*pp == t) {
      *pp = t->next;
      break;
    }
  dispatcher__entry_free(t);
}

static tentry *find_entry(trigger_dispatcher *d, const char *ns, const char *name) {
  for (tentry *t = d->entries; t; t = t->next)
    if (t->applied && strcmp(t->tr->ns, ns) == 0 && strcmp(t->tr->name, name) == 0) return t;
  return NULL;
}

static consumer *find_consumer(trigger_dispatcher *d, const char *ns, const char *name) {
  for (consumer *c = d->consumers; c; c = c->next)
    if (strcmp(c->ns, ns) == 0 && strcmp(c->name, name) == 0) return c;
  return NULL;
}

static tstats *stats_for(trigger_dispatcher *d, const char *ns, const char *name) {
  for (tstats *s = d->stats; s; s = s->next)
    if (strcmp(s->ns, ns) == 0 && strcmp(s->name, name) == 0) return s;
  tstats *s = calloc(1, sizeof *s);
  if (!s || !(s->ns = strdup(ns)) || !(s->name = strdup(name))) {
    if (s) free(s->ns);
    free(s);
    return NULL;
  }
  s->next = d->stats;
  d->stats = s;
  return s;
}

static char *join(const char *a, const char *b, const char *c, const char *e) {
  size_t n = strlen(a) + strlen(b) + strlen(c) + strlen(e) + 1;
  char *s = malloc(n);
  if (s) snprintf(s, n, "%s%s%s%s", a, b, c, e);
  return s;
}

/* Makes the consumer of broker ns/name on topic and starts its reader (the
 * caller holds d->admin, not d->lock). */
static int consumer_make(trigger_dispatcher *d, const char *ns, const char *name, const char *topic,
                         consumer **out) {
  int parts = broker_log_partitions(d->opts.log, topic);
  if (parts < 0) return parts;
  consumer *c = dispatcher__consumer_new(d);
  if (!c) return -ENOMEM;
  c->ns = strdup(ns);
  c->name = strdup(name);
  c->topic = strdup(topic);
  c->dl_topic = join(topic, "-dead-letter", "", "");
  c->group = join(d->opts.group_prefix, ns, ".", name);
  c->parts = calloc((size_t)parts, sizeof *c->parts);
  c->n_parts = c->parts ? parts : 0;
  c->ix = trigger_index_new();
  int rc = -ENOMEM;
  if (c->ns && c->name && c->topic && c->dl_topic && c->group && c->parts && c->ix) {
    for (int32_t i = 0; i < parts; i++) c->parts[i].id = i;
    /* The dead-letter topic exists before the first event needs it. */
    rc = broker_log_partitions(d->opts.log, c->dl_topic);
    if (rc >= 0) rc = dispatcher__consumer_start(d, c);
  }
  if (rc < 0) {
    dispatcher__consumer_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

/* The consumer of tr's broker, made when it is the broker's first trigger
 * (*made true). A new consumer's readers have started, but it is not listed
 * yet: the caller lists it in the same hold of d->lock that puts its first
 * trigger in its index, so that the delivery thread never takes a record
 * of it with no trigger there to match (the record would be done, and its
 * position committed, without a delivery). */
static int consumer_for(trigger_dispatcher *d, const trigger *tr, consumer **out, bool *made,
                        trigger_err *err) {
  *made = false;
  pthread_mutex_lock(&d->lock);
  *out = find_consumer(d, tr->ns, tr->broker);
  pthread_mutex_unlock(&d->lock);
  if (*out) return 0;
  char topic[256];
  int rc = d->opts.topic_for(d->opts.topic_ctx, tr->ns, tr->broker, topic, sizeof topic);
  if (rc == -ENOENT) {
    snprintf(err->path, sizeof err->path, "spec.broker");
    snprintf(err->msg, sizeof err->msg, "no broker %s/%s is declared", tr->ns, tr->broker);
    return rc;
  }
  if (rc == 0) rc = consumer_make(d, tr->ns, tr->broker, topic, out);
  if (rc) {
    snprintf(err->path, sizeof err->path, "spec.broker");
    snprintf(err->msg, sizeof err->msg, "cannot consume broker %s/%s's topic %.100s: %s", tr->ns,
             tr->broker, topic, strerror(-rc));
    return rc;
  }
  *made = true;
  return 0;
}

/* Takes t out of service; its deliveries under way finish (or, deleted,
 * are abandoned). Holds d->lock. */
static void retire(trigger_dispatcher *d, tentry *t, bool deleted) {
  trigger_index_remove(t->c->ix, t->tr);
  t->applied = false;
  t->deleted = deleted;
  if (deleted) dispatcher__expedite(d, t);
  dispatcher__entry_unref(d, t);
}

/* Applies res; api says it came through the admin API (or its state file). */
static int apply(trigger_dispatcher *d, const cJSON *res, bool api, trigger_err *err) {
  trigger *tr = trigger_parse(res, err);
  if (!tr) return -EINVAL;
  /* The same resource again (posts re-register theirs every minute) is a
   * no-op: the trigger's deliveries under way are not disturbed. */
  pthread_mutex_lock(&d->admin);
  pthread_mutex_lock(&d->lock);
  tentry *same = find_entry(d, tr->ns, tr->name);
  bool unchanged = same && same->applied && same->api == api && cJSON_Compare(same->res, res, true);
  pthread_mutex_unlock(&d->lock);
  pthread_mutex_unlock(&d->admin);
  if (unchanged) {
    trigger_free(tr);
    return 1;
  }
  tentry *t = calloc(1, sizeof *t);
  if (!t || !(t->res = cJSON_Duplicate(res, true))) {
    free(t);
    trigger_free(tr);
    snprintf(err->path, sizeof err->path, "%s", "");
    snprintf(err->msg, sizeof err->msg, "out of memory");
    return -ENOMEM;
  }
  t->tr = tr;
  tr->owner = t;
  t->refs = 1;
  t->applied = true;
  t->api = api;
  pthread_mutex_lock(&d->admin);
  bool made;
  int rc = consumer_for(d, tr, &t->c, &made, err);
  if (rc == 0 && d->opts.apply_pause_ms > 0) {
    struct timespec pause = {d->opts.apply_pause_ms / 1000,
                             (long)(d->opts.apply_pause_ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
  }
  if (rc == 0) {
    pthread_mutex_lock(&d->lock);
    if (made) { /* listed with its first trigger (or none, if that fails: as after a delete) */
      t->c->next = d->consumers;
      d->consumers = t->c;
    }
    tentry *old = find_entry(d, tr->ns, tr->name);
    t->st = stats_for(d, tr->ns, tr->name);
    rc = t->st ? trigger_index_add(t->c->ix, tr) : -ENOMEM;
    if (rc == 0) {
      if (old) retire(d, old, false);
      t->next = d->entries;
      d->entries = t;
      rc = old ? 1 : 0;
    } else {
      snprintf(err->path, sizeof err->path, "%s", "");
      snprintf(err->msg, sizeof err->msg, "out of memory");
    }
    pthread_mutex_unlock(&d->lock);
  }
  pthread_mutex_unlock(&d->admin);
  if (rc < 0) dispatcher__entry_free(t);
  return rc;
}

int trigger_dispatcher_apply(trigger_dispatcher *d, const cJSON *res, trigger_err *err) {
  return apply(d, res, false, err);
}

int trigger_dispatcher_delete(trigger_dispatcher *d, const char *ns, const char *name) {
  pthread_mutex_lock(&d->admin);
  pthread_mutex_lock(&d->lock);
  tentry *t = find_entry(d, ns, name);
  if (t) retire(d, t, true);
  pthread_mutex_unlock(&d->lock);
  pthread_mutex_unlock(&d->admin);
  return t ? 0 : -ENOENT;
}

/* The resource with a status block, as GET shows it. */
static cJSON *shown(const tentry *t) {
  cJSON *o = cJSON_Duplicate(t->res, true);
  if (!o) return NULL;
  cJSON_DeleteItemFromObjectCaseSensitive(o, "status");
  cJSON *st = cJSON_AddObjectToObject(o, "status");
  if (!st) return o;
  cJSON_AddStringToObject(st, "consumerGroup", t->c->group);
  cJSON_AddStringToObject(st, "topic", t->c->topic);
  cJSON_AddStringToObject(st, "deadLetterTopic", t->c->dl_topic);
  cJSON_AddNumberToObject(st, "delivered", (double)t->st->outcomes[O_DELIVERED]);
  cJSON_AddNumberToObject(st, "deadLettered", (double)t->st->outcomes[O_DEAD_LETTERED]);
  cJSON_AddNumberToObject(st, "deadLetteredToTopic", (double)t->st->outcomes[O_DL_TOPIC]);
  cJSON_AddNumberToObject(st, "retries", (double)t->st->retries);
  return o;
}

cJSON *trigger_dispatcher_list(trigger_dispatcher *d, const char *ns, const char *name) {
  cJSON *arr = cJSON_CreateArray();
  if (!arr) return NULL;
  pthread_mutex_lock(&d->lock);
  for (tentry *t = d->entries; t; t = t->next) {
    if (!t->applied || (ns && strcmp(t->tr->ns, ns)) || (name && strcmp(t->tr->name, name)))
      continue;
    cJSON *o = shown(t);
    if (!o) {
      cJSON_Delete(arr);
      arr = NULL;
      break;
    }
    cJSON_AddItemToArray(arr, o);
  }
  pthread_mutex_unlock(&d->lock);
  return arr;
}

static const char *const outcome_names[O_COUNT] = {"delivered", "dead_lettered",
                                                   "dead_letter_topic", "abandoned"};

static void counter(ce_buf *out, const char *name, const char *help, trigger_dispatcher *d,
                    size_t field) {
  metrics_family(out, name, "counter", help);
  char labels[320];
  for (tstats *s = d->stats; s; s = s->next) {
    snprintf(labels, sizeof labels, "namespace=\"%s\",trigger=\"%s\"", s->ns, s->name);
    metrics_sample(out, name, labels, *(const uint64_t *)((const char *)s + field));
  }
}

void trigger_dispatcher_metrics(trigger_dispatcher *d, ce_buf *out) {
  char labels[400];
  pthread_mutex_lock(&d->lock);
  metrics_family(out, "outpost_trigger_events_total", "counter",
                 "Events each trigger finished with, by outcome.");
  for (tstats *s = d->stats; s; s = s->next)
    for (int o = 0; o < O_COUNT; o++) {
      snprintf(labels, sizeof labels, "namespace=\"%s\",trigger=\"%s\",outcome=\"%s\"", s->ns,
               s->name, outcome_names[o]);
      metrics_sample(out, "outpost_trigger_events_total", labels, s->outcomes[o]);
    }
  counter(out, "outpost_trigger_attempts_total", "Requests to the subscriber.", d,
          offsetof(tstats, attempts));
  counter(out, "outpost_trigger_retries_total", "Requests to the subscriber that were retries.", d,
          offsetof(tstats, retries));
  counter(out, "outpost_trigger_dead_letter_failures_total",
          "Failed attempts at the dead-letter sink, the dead-letter topic or storing a reply "
          "(each retried).",
          d, offsetof(tstats, sink_failures));
  metrics_family(out, "outpost_trigger_replies_total", "counter",
                 "Replies in 2xx answers, by what became of them.");
  for (tstats *s = d->stats; s; s = s->next) {
    const uint64_t v[] = {s->replies, s->replies_not_ce, s->replies_invalid, s->replies_ttl};
    const char *const what[] = {"stored", "not_cloudevent", "invalid", "ttl_expired"};
    for (int i = 0; i < 4; i++) {
      snprintf(labels, sizeof labels, "namespace=\"%s\",trigger=\"%s\",result=\"%s\"", s->ns,
               s->name, what[i]);
      metrics_sample(out, "outpost_trigger_replies_total", labels, v[i]);
    }
  }
  metrics_family(out, "outpost_trigger_delivery_duration_seconds", "histogram",
                 "From an event's first attempt to its outcome.");
  for (tstats *s = d->stats; s; s = s->next) {
    snprintf(labels, sizeof labels, "namespace=\"%s\",trigger=\"%s\"", s->ns, s->name);
    metrics_hist_render(out, "outpost_trigger_delivery_duration_seconds", labels, &s->latency);
  }
  metrics_family(out, "outpost_dispatcher_records_total", "counter",
                 "Records read, and those that were not CloudEvents (skipped).");
  for (consumer *c = d->consumers; c; c = c->next) {
    snprintf(labels, sizeof labels, "broker=\"%s/%s\",kind=\"event\"", c->ns, c->name);
    metrics_sample(out, "outpost_dispatcher_records_total", labels, c->records - c->invalid);
    snprintf(labels, sizeof labels, "broker=\"%s/%s\",kind=\"invalid\"", c->ns, c->name);
    metrics_sample(out, "outpost_dispatcher_records_total", labels, c->invalid);
  }
  metrics_family(out, "outpost_dispatcher_lag", "gauge",
                 "Records of a partition not yet done (the log's end minus the done point).");
  for (consumer *c = d->consumers; c; c = c->next)
    for (int32_t i = 0; i < c->n_parts; i++) {
      int64_t lag = atomic_load(&c->parts[i].end) - c->parts[i].done_next;
      snprintf(labels, sizeof labels, "broker=\"%s/%s\",partition=\"%d\"", c->ns, c->name, i);
      metrics_sample(out, "outpost_dispatcher_lag", labels, lag > 0 ? (uint64_t)lag : 0);
    }
  metrics_family(out, "outpost_dispatcher_inflight_deliveries", "gauge",
                 "Deliveries begun and not finished (waiting, sending or backing off).");
  metrics_sample(out, "outpost_dispatcher_inflight_deliveries", NULL, d->inflight);
  pthread_mutex_unlock(&d->lock);
}

/* ---------------------------------------------------------------- files and HTTP */

/* Writes the triggers applied through the API to the state file: a new
 * file, synced, renamed over the old, the directory synced. */
static int save_state(trigger_dispatcher *d) {
  if (!d->state_path) return 0;
  pthread_mutex_lock(&d->admin); /* one writer of the file at a time */
  cJSON *arr = cJSON_CreateArray();
  pthread_mutex_lock(&d->lock);
  for (tentry *t = d->entries; arr && t; t = t->next)
    if (t->applied && t->api) cJSON_AddItemToArray(arr, cJSON_Duplicate(t->res, true));
  pthread_mutex_unlock(&d->lock);
  char *text = arr ? cJSON_Print(arr) : NULL;
  cJSON_Delete(arr);
  if (!text) {
    pthread_mutex_unlock(&d->admin);
    return -ENOMEM;
  }
  size_t n = strlen(d->state_path) + 5;
  char *tmp = malloc(n);
  int rc = tmp ? 0 : -ENOMEM;
  if (tmp) snprintf(tmp, n, "%s.new", d->state_path);
  int fd = tmp ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640) : -1;
  if (tmp && fd < 0) rc = -errno;
  size_t len = strlen(text);
  for (size_t off = 0; fd >= 0 && rc == 0 && off < len;) {
    ssize_t w = write(fd, text + off, len - off);
    if (w < 0 && errno != EINTR) rc = -errno;
    if (w > 0) off += (size_t)w;
  }
  if (fd >= 0 && rc == 0 && fsync(fd)) rc = -errno;
  if (fd >= 0) close(fd);
  if (tmp && rc == 0 && rename(tmp, d->state_path)) rc = -errno;
  if (tmp && rc) unlink(tmp);
  if (rc == 0) { /* the rename itself must survive a crash */
    char *dir = strdup(d->state_path);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash) *slash = '\0';
    int dfd = dir ? open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
    free(dir);
  }
  pthread_mutex_unlock(&d->admin);
  if (rc) fprintf(stderr, "outpost: dispatcher: saving %s: %s\n", d->state_path, strerror(-rc));
  free(tmp);
  free(text);
  return rc;
}

int trigger_dispatcher_restore(trigger_dispatcher *d, char *errbuf, size_t errlen) {
  if (errlen) errbuf[0] = '\0';
  if (!d->state_path) return 0;
  cJSON *docs = NULL;
  res_err rerr;
  int rc = res_load_file(d->state_path, 64u << 20, &docs, &rerr);
  if (rc == -ENOENT) return 0;
  if (rc) {
    snprintf(errbuf, errlen, "%s: %s", d->state_path, rerr.msg);
    return rc;
  }
  int applied = 0;
  for (int i = 0; i < cJSON_GetArraySize(docs); i++) {
    trigger_err err = {"", ""};
    if (apply(d, cJSON_GetArrayItem(docs, i), true, &err) >= 0)
      applied++;
    else
      snprintf(errbuf, errlen, "%s: resource %d skipped: %s%s%s", d->state_path, i + 1, err.path,
               err.path[0] ? ": " : "", err.msg);
  }
  cJSON_Delete(docs);
  return applied;
}

/* Checks every Trigger resource of docs, then applies them all. Fills
 * *bad (the resource's index) and *err on failure. With results, records
 * what each apply did. */
static int apply_all(trigger_dispatcher *d, const cJSON *docs, bool api, int *bad, trigger_err *err,
                     cJSON *results) {
  bool others_ok = !api; /* a configuration file holds Brokers too */
  int n = cJSON_GetArraySize(docs);
  for (int i = 0; i < n; i++) {
    const cJSON *r = cJSON_GetArrayItem(docs, i);
    *bad = i;
    if (!res_is(r, "eventing.knative.dev", "Trigger")) {
      if (others_ok) continue;
      snprintf(err->path, sizeof err->path, "kind");
      snprintf(err->msg, sizeof err->msg, "only Trigger resources (eventing.knative.dev/v1)");
      return -EINVAL;
    }
    trigger *tr = trigger_parse(r, err);
    if (!tr) return -EINVAL;
    char topic[256];
    int rc = d->opts.topic_for(d->opts.topic_ctx, tr->ns, tr->broker, topic, sizeof topic);
    if (rc) {
      snprintf(err->path, sizeof err->path, "spec.broker");
      snprintf(err->msg, sizeof err->msg, "no broker %s/%s is declared", tr->ns, tr->broker);
    }
    trigger_free(tr);
    if (rc) return rc;
  }
  for (int i = 0; i < n; i++) {
    const cJSON *r = cJSON_GetArrayItem(docs, i);
    if (!res_is(r, "eventing.knative.dev", "Trigger")) continue;
    *bad = i;
    int rc = apply(d, r, api, err);
    if (rc < 0) return rc;
    cJSON *o = results ? cJSON_CreateObject() : NULL;
    if (o) {
      cJSON_AddStringToObject(o, "namespace",
                              res_str(r, "metadata.namespace") ? res_str(r, "metadata.namespace")
                                                               : "default");
      cJSON_AddStringToObject(o, "name", res_str(r, "metadata.name"));
      cJSON_AddStringToObject(o, "result", rc ? "configured" : "created");
      cJSON_AddItemToArray(results, o);
    }
  }
  return 0;
}

int trigger_dispatcher_load(trigger_dispatcher *d, const char *path, char *errbuf, size_t errlen) {
  cJSON *docs = NULL;
  res_err rerr;
  int rc = res_load_file(path, 16u << 20, &docs, &rerr);
  if (rc) {
    snprintf(errbuf, errlen, "%s: %s", path, rerr.msg);
    return rc;
  }
  int bad = 0;
  trigger_err err = {"", ""};
  rc = apply_all(d, docs, false, &bad, &err, NULL);
  if (rc)
    snprintf(errbuf, errlen, "%s: resource %d: %s%s%s", path, bad + 1, err.path,
             err.path[0] ? ": " : "", err.msg);
  cJSON_Delete(docs);
  return rc;
}

static void http_apply(trigger_dispatcher *d, httpd_req *req) {
  size_t len;
  const char *body = httpd_body(req, &len);
  cJSON *docs = NULL;
  res_err rerr;
  if (res_parse(body, len, &docs, &rerr)) {
    httpd_respond_error(req, 400, rerr.msg, NULL, -1, NULL, 0);
    return;
  }
  cJSON *results = cJSON_CreateArray();
  int bad = 0;
  trigger_err err = {"", ""};
  int rc = results ? apply_all(d, docs, true, &bad, &err, results) : -ENOMEM;
  cJSON_Delete(docs);
  if (rc == 0 && save_state(d)) rc = -EIO;
  if (rc) {
    cJSON_Delete(results);
    if (rc == -EIO) snprintf(err.msg, sizeof err.msg, "applied, but not saved for a restart");
    unsigned status = rc == -EINVAL ? 400 : rc == -ENOENT ? 404 : rc == -ENOMEM ? 500 : 503;
    httpd_respond_error(req, status, err.msg, err.path[0] ? err.path : NULL, bad, NULL, 0);
    return;
  }
  cJSON *o = cJSON_CreateObject();
  if (o) cJSON_AddItemToObject(o, "applied", results);
  httpd_respond_json(req, 200, o);
}

void trigger_dispatcher_http(trigger_dispatcher *d, httpd_req *req, const char *rest) {
  const char *m = httpd_method(req);
  char ns[64] = "", name[254] = "";
  const char *slash = rest[0] == '/' ? strchr(rest + 1, '/') : NULL;
  size_t nl = rest[0] ? (slash ? (size_t)(slash - rest - 1) : strlen(rest + 1)) : 0;
  if (rest[0] &&
      (nl == 0 || nl >= sizeof ns ||
       (slash && (!slash[1] || strchr(slash + 1, '/') || strlen(slash + 1) >= sizeof name)))) {
    httpd_respond_error(req, 404, "trigger paths are /v1/triggers[/<namespace>[/<name>]]", NULL, -1,
                        NULL, 0);
    return;
  }
  if (rest[0]) {
    memcpy(ns, rest + 1, nl);
    if (slash) strcpy(name, slash + 1);
  }
  if (strcmp(m, "GET") == 0) {
    cJSON *arr = trigger_dispatcher_list(d, ns[0] ? ns : NULL, name[0] ? name : NULL);
    if (arr && name[0]) {
      cJSON *one = cJSON_DetachItemFromArray(arr, 0);
      cJSON_Delete(arr);
      if (!one) {
        httpd_respond_error(req, 404, "no such trigger", NULL, -1, NULL, 0);
        return;
      }
      arr = one;
    }
    httpd_respond_json(req, 200, arr);
    return;
  }
  if (!rest[0] && (strcmp(m, "PUT") == 0 || strcmp(m, "POST") == 0)) {
    http_apply(d, req);
    return;
  }
  if (name[0] && strcmp(m, "DELETE") == 0) {
    if (trigger_dispatcher_delete(d, ns, name)) {
      httpd_respond_error(req, 404, "no such trigger", NULL, -1, NULL, 0);
      return;
    }
    if (save_state(d)) {
      httpd_respond_error(req, 503, "deleted, but not saved for a restart", NULL, -1, NULL, 0);
      return;
    }
    httpd_respond(req, 204, NULL, NULL, 0, NULL, 0);
    return;
  }
  const char *allow[] = {"Allow", !rest[0] ? "GET, PUT, POST" : name[0] ? "GET, DELETE" : "GET"};
  httpd_respond_error(req, 405,
                      "GET lists, PUT or POST /v1/triggers applies, DELETE "
                      "/v1/triggers/<namespace>/<name> deletes",
                      NULL, -1, allow, 1);
}
