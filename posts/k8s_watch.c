/*
 * k8s_watch.c — the Kubernetes backend's watches: posts_env_watch (an
 * informer in small: list, then watch from the list's resourceVersion,
 * resume from the last one seen after a reconnect, list again and report the
 * difference when the server answers 410 Gone), and the wait for a pod to
 * run behind posts_env_start. Both read the API server's watch stream: one
 * JSON event {"type", "object"} per line, for as long as the request lasts.
 */
#include "posts/k8s_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WATCH_TIMEOUT_S  300 /* one watch request's life on the server; then another */
#define WATCH_SLACK_MS   30000L
#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS   30000
#define MAX_EVENT        (4 << 20) /* one event holds one pod */
#define LIST_PAGE        500
#define FN_ENDED         1 /* an event handler's "the watch's fn said stop" */

static const cJSON *get(const cJSON *o, const char *key) {
  return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* --------------------------------------------------------------- stream */

/* Receives one event of a stream (ev: the whole line, which the handler may
 * take parts of). 0 to go on; anything else ends the stream and is what
 * run_stream returns. */
typedef int (*event_fn)(void *arg, const char *type, cJSON *ev);

typedef struct stream {
  k8s_buf line; /* the event being received */
  k8s_buf head; /* the answer's first bytes: an error answer is a Status */
  event_fn fn;
  void *arg;
  int rc; /* what ended the stream from inside */
} stream;

static int line_done(stream *s) {
  cJSON *ev;
  const char *type;
  int rc = 0;
  if (s->line.len == 0) return 0;
  ev = cJSON_ParseWithLength(s->line.p, s->line.len);
  s->line.len = 0;
  if (!ev) return -EPROTO;
  type = cJSON_GetStringValue(get(ev, "type"));
  /* Anything but an event (the Status of an error answer) is left to the
   * status check once the answer has ended. */
  if (type && cJSON_IsObject(get(ev, "object"))) rc = s->fn(s->arg, type, ev);
  cJSON_Delete(ev);
  return rc;
}

static size_t on_stream(char *data, size_t size, size_t n, void *arg) {
  stream *s = arg;
  size_t len = size * n, i = 0;
  if (s->head.len < s->head.max) posts__buf_put(&s->head, data, len);
  while (i < len) {
    const char *nl = memchr(data + i, '\n', len - i);
    size_t take = nl ? (size_t)(nl - (data + i)) : len - i;
    posts__buf_put(&s->line, data + i, take);
    if (s->line.nomem || s->line.over) {
      s->rc = s->line.nomem ? -ENOMEM : -EMSGSIZE;
      return 0;
    }
    i += take;
    if (!nl) break;
    i++;
    if ((s->rc = line_done(s)) != 0) return 0; /* a short write ends the transfer */
  }
  return len;
}

/* One watch request at path, events to fn, for at most timeout_ms. 0 when
 * the server ended it, what fn ended it with, or an errno: the transport's
 * (-ECANCELED: *stop; -ETIMEDOUT: timeout_ms), or the answer's status. */
static int run_stream(k8s *k, const char *path, long timeout_ms, const atomic_bool *stop,
                      event_fn fn, void *arg, posts_err *err) {
  stream s = {.line = {.max = MAX_EVENT}, .head = {.max = 64 << 10}, .fn = fn, .arg = arg};
  posts_err herr = {0};
  long status = 0;
  int rc =
      posts__k8s_http(k, "GET", path, NULL, NULL, timeout_ms, on_stream, &s, stop, &status, &herr);
  /* An error answer is a Status (or text), not events: its status decides. */
  if (status != 0 && status != 200) {
    rc = posts__k8s_api_error(status, s.head.p ? s.head.p : "", err);
  } else if (s.rc) {
    rc = s.rc;
    if (rc == -EPROTO || rc == -ENOMEM || rc == -EMSGSIZE)
      posts__err(err, rc, status, "watch: a broken or oversized event");
  } else if (rc < 0 && err) {
    *err = herr;
  }
  free(s.line.p);
  free(s.head.p);
  return rc;
}

/* The API's ERROR event (a Status) as an errno: 410 Gone is -ESTALE. */
static int event_error(const cJSON *status, posts_err *err) {
  const cJSON *code = get(status, "code");
  char *text = cJSON_PrintUnformatted(status);
  int rc = posts__k8s_api_error(cJSON_IsNumber(code) ? (long)code->valuedouble : 500,
                                text ? text : "", err);
  free(text);
  return rc;
}

/* ---------------------------------------------------------------- watch */

typedef struct watcher {
  k8s *k;
  char base[128]; /* "/api/v1/namespaces/<ns>/pods" or "/api/v1/pods" */
  char *selector; /* URL-escaped */
  posts_watch_fn fn;
  void *arg;
  const atomic_bool *stop;
  int fn_rc;    /* what fn ended the watch with */
  cJSON *known; /* id → the pod as last reported */
  char rv[128]; /* where the next watch starts */
  posts_err *err;
} watcher;

static bool stopped(const watcher *w) {
  return w->stop && atomic_load(w->stop);
}

/* "<namespace>/<name>" of a pod into id[K8S_ID_MAX], or false. */
static bool pod_id(const cJSON *pod, char *id) {
  const char *ns = cJSON_GetStringValue(get(get(pod, "metadata"), "namespace"));
  const char *name = cJSON_GetStringValue(get(get(pod, "metadata"), "name"));
  if (!ns || !name || strlen(ns) + strlen(name) + 2 > K8S_ID_MAX) return false;
  posts__k8s_join(id, ns, '/', name);
  return true;
}

/* Gives fn one change. 0, FN_ENDED (fn's value kept), -ECANCELED (*stop),
 * or -ENOMEM. */
static int tell(watcher *w, posts_watch_type type, const cJSON *pod) {
  posts_env_info info = {0};
  int rc;
  if (stopped(w)) return -ECANCELED;
  if ((rc = posts__k8s_pod_info(&info, pod)) == -ENOMEM) {
    posts_env_info_cleanup(&info);
    return posts__err(w->err, -ENOMEM, 0, "out of memory");
  }
  rc = rc < 0 ? 0 : w->fn(w->arg, type, &info); /* a pod without a name is skipped */
  posts_env_info_cleanup(&info);
  if (rc == 0) return 0;
  w->fn_rc = rc;
  return FN_ENDED;
}

static bool same_rv(const cJSON *a, const cJSON *b) {
  const char *x = posts__k8s_pod_rv(a), *y = posts__k8s_pod_rv(b);
  return x && y && strcmp(x, y) == 0;
}

/* Reports what differs between what fn was told and now (every pod as
 * ADDED the first time), and makes now what it was told. */
static int report_diff(watcher *w, cJSON *now) {
  cJSON *pod;
  int rc = 0;
  cJSON_ArrayForEach(pod, w->known) {
    if (!get(now, pod->string) && (rc = tell(w, POSTS_WATCH_DELETED, pod)) != 0) return rc;
  }
  cJSON_ArrayForEach(pod, now) {
    const cJSON *was = get(w->known, pod->string);
    if (!was)
      rc = tell(w, POSTS_WATCH_ADDED, pod);
    else if (!same_rv(was, pod))
      rc = tell(w, POSTS_WATCH_MODIFIED, pod);
    if (rc != 0) return rc;
  }
  return 0;
}

/* One page of a list into now; *rv the list's resourceVersion (of the
 * first page: every page is of the same snapshot), *cont the next page's
 * token (curl_free) or NULL. */
static int list_page(watcher *w, const char *path, cJSON *now, char *rv, char **cont) {
  static const long ok[] = {200, 0};
  cJSON *ans, *items, *pod, *next;
  const char *s;
  char id[K8S_ID_MAX];
  int rc = posts__k8s_call(w->k, "GET", path, NULL, NULL, ok, &ans, w->err);
  *cont = NULL;
  if (rc < 0) return rc;
  if (!rv[0] && (s = cJSON_GetStringValue(get(get(ans, "metadata"), "resourceVersion"))))
    snprintf(rv, sizeof w->rv, "%s", s);
  items = cJSON_GetObjectItemCaseSensitive(ans, "items");
  while (rc == 0 && (pod = cJSON_GetArrayItem(items, 0))) {
    cJSON_DetachItemViaPointer(items, pod);
    if (pod_id(pod, id) && !get(now, id))
      cJSON_AddItemToObject(now, id, pod);
    else
      cJSON_Delete(pod);
  }
  next = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ans, "metadata"),
                                          "continue");
  if (cJSON_GetStringValue(next) && next->valuestring[0] &&
      !(*cont = curl_easy_escape(NULL, next->valuestring, 0)))
    rc = posts__err(w->err, -ENOMEM, 0, "out of memory");
  cJSON_Delete(ans);
  return rc;
}

/* Lists the selection and reports the difference to what fn knows. */
static int relist(watcher *w) {
  char rv[sizeof w->rv] = "", *cont = NULL, *path = NULL;
  cJSON *now = cJSON_CreateObject();
  int rc = now ? 0 : posts__err(w->err, -ENOMEM, 0, "out of memory");
  while (rc == 0) {
    size_t n = strlen(w->base) + strlen(w->selector) + (cont ? strlen(cont) : 0) + 100;
    char *page = cont;
    free(path);
    if (!(path = malloc(n))) {
      rc = posts__err(w->err, -ENOMEM, 0, "out of memory");
      curl_free(page);
      break;
    }
    snprintf(path, n, "%s?limit=%d&labelSelector=%s%s%s", w->base, LIST_PAGE, w->selector,
             page ? "&continue=" : "", page ? page : "");
    rc = list_page(w, path, now, rv, &cont);
    curl_free(page);
    if (rc == 0 && !cont) break;
  }
  free(path);
  if (rc == 0 && (rc = report_diff(w, now)) == 0) {
    cJSON_Delete(w->known);
    w->known = now;
    now = NULL;
    memcpy(w->rv, rv, sizeof rv);
  }
  cJSON_Delete(now);
  return rc;
}

static posts_watch_type watch_type(const char *type) {
  if (strcmp(type, "ADDED") == 0) return POSTS_WATCH_ADDED;
  if (strcmp(type, "MODIFIED") == 0) return POSTS_WATCH_MODIFIED;
  if (strcmp(type, "DELETED") == 0) return POSTS_WATCH_DELETED;
  return 0;
}

/* One event of the watch: fn told, what it knows kept up to date, and the
 * resourceVersion to resume from remembered (bookmarks carry only that). */
static int on_watch_event(void *arg, const char *type, cJSON *ev) {
  watcher *w = arg;
  cJSON *pod = cJSON_GetObjectItemCaseSensitive(ev, "object");
  posts_watch_type t = watch_type(type);
  const char *rv = posts__k8s_pod_rv(pod);
  char id[K8S_ID_MAX];
  int rc;
  if (strcmp(type, "ERROR") == 0) return event_error(pod, w->err);
  if (rv) snprintf(w->rv, sizeof w->rv, "%s", rv);
  if (!t || !pod_id(pod, id)) return 0; /* BOOKMARK, or something new */
  if ((rc = tell(w, t, pod)) != 0) return rc;
  cJSON_DeleteItemFromObjectCaseSensitive(w->known, id);
  if (t != POSTS_WATCH_DELETED) {
    cJSON_DetachItemViaPointer(ev, pod);
    cJSON_AddItemToObject(w->known, id, pod);
  }
  return 0;
}

/* One watch request from w->rv, until the server ends it. */
static int watch_once(watcher *w) {
  size_t n = strlen(w->base) + strlen(w->selector) + strlen(w->rv) + 160;
  char *path = malloc(n);
  int rc;
  if (!path) return posts__err(w->err, -ENOMEM, 0, "out of memory");
  snprintf(path, n,
           "%s?watch=1&allowWatchBookmarks=true&timeoutSeconds=%d&resourceVersion=%s"
           "&labelSelector=%s",
           w->base, WATCH_TIMEOUT_S, w->rv, w->selector);
  rc = run_stream(w->k, path, WATCH_TIMEOUT_S * 1000L + WATCH_SLACK_MS, w->stop, on_watch_event, w,
                  w->err);
  free(path);
  return rc;
}

/* Sleeps ms, waking every 100 ms to look at *stop. True when stopped. */
static bool pause_ms(const watcher *w, int ms) {
  for (int slept = 0; slept < ms; slept += 100) {
    if (stopped(w)) return true;
    nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
  }
  return stopped(w);
}

/* What trying again does not mend. */
static bool lasting(int rc) {
  return rc == -EACCES || rc == -EINVAL || rc == -ENOMEM || rc == -EPROTO || rc == -EMSGSIZE;
}

/* After the first listing: watch, and mend what can be mended. */
static int follow(watcher *w) {
  bool need_list = false;
  int backoff = 0, rc;
  for (;;) {
    int64_t t0 = posts__k8s_mono_ms();
    if (stopped(w)) return 0;
    rc = need_list ? relist(w) : watch_once(w);
    if (rc == FN_ENDED) return w->fn_rc;
    if (rc == -ECANCELED) return 0;
    if (rc == -ESTALE && !need_list) { /* the server has forgotten w->rv */
      need_list = true;
      continue;
    }
    if (lasting(rc)) return rc;
    if (rc == 0) need_list = false; /* else a listing that failed is tried again */
    /* A stream that ends at once, again and again, is not a watch. */
    if (rc == 0 && posts__k8s_mono_ms() - t0 >= 1000) {
      backoff = 0;
      continue;
    }
    backoff = backoff ? backoff * 2 : BACKOFF_FIRST_MS;
    if (backoff > BACKOFF_MAX_MS) backoff = BACKOFF_MAX_MS;
    if (pause_ms(w, backoff)) return 0;
  }
}

int posts__k8s_watch(posts_runtime *rt, const char *ns, const posts_label *sel, size_t n_sel,
                     posts_watch_fn fn, void *arg, const atomic_bool *stop, posts_err *err) {
  watcher w = {.k = (k8s *)rt, .fn = fn, .arg = arg, .stop = stop, .err = err};
  char kns[64];
  int rc = ns ? posts__k8s_kns(w.k, ns, kns, err) : 0;
  if (rc < 0 || (rc = posts__k8s_selector(ns, sel, n_sel, &w.selector, err)) < 0) return rc;
  if (ns)
    snprintf(w.base, sizeof w.base, "/api/v1/namespaces/%s/pods", kns);
  else
    snprintf(w.base, sizeof w.base, "/api/v1/pods");
  if (!(w.known = cJSON_CreateObject()))
    rc = posts__err(err, -ENOMEM, 0, "out of memory");
  else if ((rc = relist(&w)) == 0)
    rc = follow(&w);
  else if (rc == FN_ENDED)
    rc = w.fn_rc;
  else if (rc == -ECANCELED)
    rc = 0;
  cJSON_Delete(w.known);
  free(w.selector);
  return rc;
}

/* ------------------------------------------------------- wait for start */

typedef struct waiter {
  int rc;        /* the outcome, once done */
  char why[200]; /* why it is still pending */
  char rv[128];
  posts_err *err;
} waiter;

static bool image_failure(const char *reason) {
  static const char *const r[] = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                                  "ErrImageNeverPull", NULL};
  for (size_t i = 0; reason && r[i]; i++)
    if (strcmp(reason, r[i]) == 0) return true;
  return false;
}

/* Looks at the pod: 1 when the wait is over (wt->rc says how), else 0 with
 * wt->why saying what it waits for. */
static int pod_settled(waiter *wt, const cJSON *pod, posts_err *err) {
  const cJSON *status = get(pod, "status"), *c, *cond;
  const char *phase = cJSON_GetStringValue(get(status, "phase")), *reason, *msg;
  if (cJSON_IsString(get(get(pod, "metadata"), "deletionTimestamp"))) {
    wt->rc = posts__err(err, -EBUSY, 0, "start: the pod is being deleted");
    return 1;
  }
  if (phase && strcmp(phase, "Pending") != 0) { /* Running, or ended already */
    wt->rc = 0;
    return 1;
  }
  cJSON_ArrayForEach(c, get(status, "containerStatuses")) {
    reason = cJSON_GetStringValue(get(get(get(c, "state"), "waiting"), "reason"));
    msg = cJSON_GetStringValue(get(get(get(c, "state"), "waiting"), "message"));
    if (image_failure(reason)) {
      wt->rc = posts__err(err, -ENOENT, 0, "start: no such image (%s: %s)", reason,
                          msg ? msg : "no message");
      return 1;
    }
    if (reason)
      snprintf(wt->why, sizeof wt->why, "%s%s%s", reason, msg ? ": " : "", msg ? msg : "");
    if (reason) return 0;
  }
  cJSON_ArrayForEach(cond, get(status, "conditions")) {
    const char *type = cJSON_GetStringValue(get(cond, "type"));
    msg = cJSON_GetStringValue(get(cond, "message"));
    if (type && strcmp(type, "PodScheduled") == 0 && msg) {
      snprintf(wt->why, sizeof wt->why, "not scheduled: %s", msg);
      return 0;
    }
  }
  if (cJSON_GetStringValue(get(get(pod, "spec"), "nodeName")))
    snprintf(wt->why, sizeof wt->why, "on node %s, not started by its kubelet yet",
             get(get(pod, "spec"), "nodeName")->valuestring);
  else
    snprintf(wt->why, sizeof wt->why, "not scheduled on any node yet");
  return 0;
}

static int on_wait_event(void *arg, const char *type, cJSON *ev) {
  waiter *wt = arg;
  const cJSON *pod = get(ev, "object");
  const char *rv = posts__k8s_pod_rv(pod);
  if (strcmp(type, "ERROR") == 0) return event_error(pod, wt->err);
  if (rv) snprintf(wt->rv, sizeof wt->rv, "%s", rv);
  if (strcmp(type, "DELETED") == 0) {
    wt->rc = posts__err(wt->err, -ENOENT, 404, "start: the pod was deleted");
    return FN_ENDED;
  }
  if (strcmp(type, "BOOKMARK") == 0) return 0;
  return pod_settled(wt, pod, wt->err) ? FN_ENDED : 0;
}

int posts__k8s_wait_running(k8s *k, const char *kns, const char *name, long timeout_ms,
                            posts_err *err) {
  static const long ok[] = {200, 0};
  int64_t deadline = posts__k8s_mono_ms() + timeout_ms;
  waiter wt = {.err = err};
  char path[600];
  for (;;) {
    int64_t left = deadline - posts__k8s_mono_ms();
    cJSON *pod;
    int rc;
    if (atomic_load(&k->cancel))
      return posts__err(err, -ECANCELED, 0, "start: cancelled (the runtime's user is stopping)");
    /* A fresh look first, and again when a watch ended early (expired). */
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s", kns, name);
    if ((rc = posts__k8s_call(k, "GET", path, NULL, NULL, ok, &pod, err)) < 0) return rc;
    rc = pod_settled(&wt, pod, err);
    snprintf(wt.rv, sizeof wt.rv, "%s", posts__k8s_pod_rv(pod) ? posts__k8s_pod_rv(pod) : "");
    cJSON_Delete(pod);
    if (rc) return wt.rc;
    if (left <= 0) break;
    snprintf(path, sizeof path,
             "/api/v1/namespaces/%s/pods?watch=1&fieldSelector=metadata.name%%3D%s"
             "&resourceVersion=%s&timeoutSeconds=%lld",
             kns, name, wt.rv, (long long)(left + 999) / 1000);
    rc = run_stream(k, path, (long)left, &k->cancel, on_wait_event, &wt, err);
    if (rc == FN_ENDED) return wt.rc;
    if (rc < 0 && rc != -ETIMEDOUT && rc != -ESTALE && lasting(rc)) return rc;
    if (rc < 0 && rc != -ETIMEDOUT && rc != -ESTALE)
      nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL); /* the server hiccuped */
  }
  return posts__err(err, -ETIMEDOUT, 0, "start: still Pending after %ld ms (%s)", timeout_ms,
                    wt.why);
}
