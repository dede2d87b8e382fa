/*
 * post_triggers.c — a post registers at the broker the triggers that
 * deliver what it needs (the node post: each namespace's events to its ns
 * post; the cluster post: the quarantine events), through the broker's
 * admin API beside --broker-url, or at --trigger-api (PUT /v1/triggers, an
 * upsert; the same resource again is a no-op there). The broker may start
 * after the post, so this runs on a thread that tries again with backoff
 * until the broker takes them, and says so once; then it puts them again
 * every minute, which heals a dispatcher restarted without its state. Also the call
 * with a bearer token the posts make to other components' admin APIs.
 */
#include "posts/post_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRIG_BACKOFF_MIN_MS 500
#define TRIG_BACKOFF_MAX_MS 30000
#define TRIG_TIMEOUT_MS     5000
#define TRIG_REFRESH_MS     60000

struct post_trig {
  post *p;
  char url[512];   /* the admin API: http://host:port/v1/triggers */
  cJSON *triggers; /* the Trigger resources */
  char names[256];
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stopping;
};

int post_call_token(post *p, const char *method, const char *url, const char *token,
                    const cJSON *body, long timeout_ms, post_answer *out) {
  char auth[512];
  ce_kv hdrs[2] = {{"Content-Type", 12, "application/json", 16}, {"Authorization", 13, auth, 0}};
  size_t n = 1;
  if (token && (size_t)snprintf(auth, sizeof auth, "Bearer %s", token) < sizeof auth) {
    hdrs[1].value_len = strlen(auth);
    n = 2;
  }
  char *text = body ? cJSON_PrintUnformatted(body) : NULL;
  int rc = post_call(p, method, url, hdrs, n, text, text ? strlen(text) : 0, timeout_ms, out);
  free(text);
  return rc;
}

/* Splits --broker-url (http://host:port/<ns>/<broker>) into the admin API's
 * base (http://host:port), the broker's namespace and its name. */
static int split_broker_url(const char *url, char *base, size_t size, char ns[64],
                            char broker[64]) {
  const char *auth = url ? strstr(url, "://") : NULL;
  const char *path = auth ? strchr(auth + 3, '/') : NULL;
  if (!path || (size_t)(path - url) >= size) return -EINVAL;
  memcpy(base, url, (size_t)(path - url));
  base[path - url] = '\0';
  char rest[160];
  if (snprintf(rest, sizeof rest, "%s", path + 1) >= (int)sizeof rest) return -EINVAL;
  size_t len = strlen(rest);
  if (len && rest[len - 1] == '/') rest[len - 1] = '\0';
  char *slash = strchr(rest, '/');
  if (!slash || strchr(slash + 1, '/')) return -EINVAL;
  *slash = '\0';
  if (!post_valid_name(rest) || !post_valid_name(slash + 1)) return -EINVAL;
  /* Both DNS labels: 63 bytes at most. */
  snprintf(ns, 64, "%.63s", rest);
  snprintf(broker, 64, "%.63s", slash + 1);
  return 0;
}

cJSON *post_trig_resource(post *p, const char *name, const char *uri) {
  char base[256], ns[64], broker[64];
  if (split_broker_url(p->cfg.broker_url, base, sizeof base, ns, broker)) return NULL;
  cJSON *tr = cJSON_CreateObject();
  cJSON_AddStringToObject(tr, "apiVersion", "eventing.knative.dev/v1");
  cJSON_AddStringToObject(tr, "kind", "Trigger");
  cJSON *meta = cJSON_AddObjectToObject(tr, "metadata");
  cJSON_AddStringToObject(meta, "name", name);
  cJSON_AddStringToObject(meta, "namespace", ns);
  cJSON *spec = cJSON_AddObjectToObject(tr, "spec");
  cJSON_AddStringToObject(spec, "broker", broker);
  cJSON_AddStringToObject(cJSON_AddObjectToObject(spec, "subscriber"), "uri", uri);
  /* A post being restarted is away for a fraction of a second, a crash
   * loop for up to 30 s: the broker keeps trying for about four minutes
   * (0.2 s more each time) before it dead-letters. */
  cJSON *delivery = cJSON_AddObjectToObject(spec, "delivery");
  cJSON_AddNumberToObject(delivery, "retry", 50);
  cJSON_AddStringToObject(delivery, "backoffPolicy", "linear");
  cJSON_AddStringToObject(delivery, "backoffDelay", "PT0.2S");
  return tr;
}

/* Waits up to ms unless stopping; false once stopping. */
static bool trig_sleep(post_trig *t, int64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&t->mu);
  if (!t->stopping) pthread_cond_timedwait(&t->cv, &t->mu, &ts);
  bool go_on = !t->stopping;
  pthread_mutex_unlock(&t->mu);
  return go_on;
}

/* One PUT: 0 when the broker took every trigger, else why in why. */
static int trig_put(post_trig *t, char *why, size_t whylen) {
  post_answer a;
  int rc = post_call_token(t->p, "PUT", t->url, t->p->cfg.broker_token, t->triggers,
                           TRIG_TIMEOUT_MS, &a);
  if (rc)
    snprintf(why, whylen, "%s", a.why[0] ? a.why : strerror(-rc));
  else if (a.status != 200)
    snprintf(why, whylen, "%ld %.200s", a.status, a.body.data);
  rc = rc ? rc : a.status == 200 ? 0 : -EIO;
  post_answer_cleanup(&a);
  return rc;
}

static void *trig_main(void *arg) {
  post_trig *t = arg;
  int64_t backoff = TRIG_BACKOFF_MIN_MS;
  bool said = false, registered = false;
  char why[300];
  for (;;) {
    if (trig_put(t, why, sizeof why) == 0) {
      /* Said once each way: a broker that starts late, or a dispatcher that
       * restarted without its state, is not news every few seconds. */
      if (!registered) post_log(t->p, "triggers registered at %s: %s", t->url, t->names);
      registered = true, said = false, backoff = TRIG_BACKOFF_MIN_MS;
      /* Again later: the same triggers are a no-op at the broker, and a
       * dispatcher that lost them gets them back. */
      if (!trig_sleep(t, TRIG_REFRESH_MS)) return NULL;
      continue;
    }
    if (!said)
      post_log(t->p, "cannot register triggers at %s %s(%s); retrying", t->url,
               registered ? "again " : "yet ", why);
    said = true, registered = false;
    if (!trig_sleep(t, backoff)) return NULL;
    backoff = backoff * 2 > TRIG_BACKOFF_MAX_MS ? TRIG_BACKOFF_MAX_MS : backoff * 2;
  }
}

post_trig *post_trig_start(post *p, cJSON *triggers) {
  char base[256], ns[64], broker[64];
  post_trig *t = NULL;
  if (!p->cfg.broker_url || p->cfg.no_register_triggers) goto fail;
  if (split_broker_url(p->cfg.broker_url, base, sizeof base, ns, broker)) {
    post_log(p,
             "--broker-url %s is not http://host:port/<namespace>/<broker>: no triggers registered",
             p->cfg.broker_url);
    goto fail;
  }
  if (!cJSON_GetArraySize(triggers)) goto fail;
  if (!(t = calloc(1, sizeof *t))) goto fail;
  t->p = p;
  /* The admin API is at the broker's address unless --trigger-api says
   * where (a dispatcher of its own). */
  const char *api = p->cfg.trigger_api ? p->cfg.trigger_api : base;
  size_t alen = strlen(api);
  while (alen && api[alen - 1] == '/') alen--;
  snprintf(t->url, sizeof t->url, "%.*s/v1/triggers", (int)alen, api);
  const cJSON *tr;
  cJSON_ArrayForEach(tr, triggers) {
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(tr, "metadata");
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(meta, "name"));
    size_t len = strlen(t->names);
    snprintf(t->names + len, sizeof t->names - len, "%s%s/%s", len ? ", " : "", ns,
             name ? name : "?");
  }
  t->triggers = triggers;
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  if (pthread_create(&t->thread, NULL, trig_main, t)) {
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    goto fail;
  }
  return t;
fail:
  free(t);
  cJSON_Delete(triggers);
  return NULL;
}

void post_trig_free(post_trig *t) {
  if (!t) return;
  pthread_mutex_lock(&t->mu);
  t->stopping = true;
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
  pthread_join(t->thread, NULL);
  pthread_cond_destroy(&t->cv);
  pthread_mutex_destroy(&t->mu);
  cJSON_Delete(t->triggers);
  free(t);
}
