/*
 * test_ingress_fake.c — the ingress over real HTTP on 127.0.0.1 in front of
 * a fake log, named so: it exists because nothing real can hold appends on
 * demand. With it the test decides when, and how, each append ends, which
 * makes deterministic what a real log leaves to timing: 429 past
 * max_inflight, 503 when the log fails (late or at once), a batch appended
 * all or nothing, the extensions the ingress stamps, the rejection counters
 * of /metrics, and stop waiting for the request still in flight.
 *
 * The fake implements the log's table of operations, so this test includes
 * broker/broker_int.h: it stands where a log implementation stands.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "broker/broker.h"
#include "broker/broker_int.h"
#include "tests/broker/prom_sample.h"
#include "tests/unit/test_util.h"

/* WAIT_MS bounds every wait for the fake; CALL_TIMEOUT_S every request, so
 * that a request the ingress wrongly sends to the log (where the fake holds
 * it) fails the test instead of hanging it. */
enum { WAIT_MS = 5000, CALL_TIMEOUT_S = 10, RETRY_AFTER_S = 7 };

/* ---- the fake log ---- */

/* An append the fake holds until the test releases it. */
typedef struct fake_held {
  struct fake_held *next;
  broker_append_cb cb;
  void *opaque;
} fake_held;

/* A copy of one appended record's topic and headers. */
typedef struct fake_rec {
  char *topic;
  size_t n_headers;
  char **names, **values;
} fake_rec;

struct fake_log {
  struct broker_log base; /* base.ops points to fake_ops */
  pthread_mutex_t mu;
  pthread_cond_t cv;       /* broadcast on every append */
  int fail_rc;             /* < 0: append returns it at once and holds nothing */
  fake_held *first, *last; /* held appends, oldest first */
  size_t n_held;
  size_t appends; /* calls to append, the ones that failed at once included */
  size_t records; /* records in those calls */
  size_t last_n;  /* records in the last call */
  fake_rec *recs; /* every record seen, in order */
  size_t n_recs, cap_recs;
};

static char *dup_n(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

static int copy_rec(struct fake_log *f, const char *topic, const broker_record *r) {
  if (f->n_recs == f->cap_recs) {
    size_t cap = f->cap_recs ? 2 * f->cap_recs : 16;
    fake_rec *recs = realloc(f->recs, cap * sizeof *recs);
    if (!recs) return -ENOMEM;
    f->recs = recs;
    f->cap_recs = cap;
  }
  fake_rec *c = &f->recs[f->n_recs++];
  *c = (fake_rec){.topic = strdup(topic), .n_headers = r->n_headers};
  c->names = calloc(r->n_headers ? r->n_headers : 1, sizeof *c->names);
  c->values = calloc(r->n_headers ? r->n_headers : 1, sizeof *c->values);
  if (!c->topic || !c->names || !c->values) return -ENOMEM;
  for (size_t i = 0; i < r->n_headers; i++) {
    c->names[i] = dup_n(r->headers[i].name, r->headers[i].name_len);
    c->values[i] = dup_n(r->headers[i].value, r->headers[i].value_len);
    if (!c->names[i] || !c->values[i]) return -ENOMEM;
  }
  return 0;
}

static int fake_append(broker_log *log, const char *topic, const broker_record *recs, size_t n,
                       broker_append_cb cb, void *opaque) {
  struct fake_log *f = (struct fake_log *)log;
  int rc = 0;
  pthread_mutex_lock(&f->mu);
  f->appends++;
  f->records += n;
  f->last_n = n;
  for (size_t i = 0; rc == 0 && i < n; i++) rc = copy_rec(f, topic, &recs[i]);
  if (rc == 0) rc = f->fail_rc;
  if (rc == 0) {
    fake_held *h = malloc(sizeof *h);
    if (h) {
      *h = (fake_held){NULL, cb, opaque};
      if (f->last)
        f->last->next = h;
      else
        f->first = h;
      f->last = h;
      f->n_held++;
    } else {
      rc = -ENOMEM;
    }
  }
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
  return rc;
}

static int fake_read(broker_log *log, const char *topic, int32_t partition, int64_t from,
                     size_t max, broker_records *out) {
  return -ENOTSUP;
}

static int fake_commit(broker_log *log, const char *group, const char *topic, int32_t partition,
                       int64_t next) {
  return -ENOTSUP;
}

static int fake_committed(broker_log *log, const char *group, const char *topic, int32_t partition,
                          int64_t *next) {
  return -ENOTSUP;
}

/* broker_ingress_add asks, to make the topic before the first event. */
static int fake_partitions(broker_log *log, const char *topic) {
  return 1;
}

static int fake_end(broker_log *log, const char *topic, int32_t partition, int64_t *end) {
  return -ENOTSUP;
}

/* Frees the fake; appends still held are dropped unanswered (the teardown
 * releases them first). */
static void fake_free(broker_log *log) {
  struct fake_log *f = (struct fake_log *)log;
  for (fake_held *h = f->first, *next; h; h = next) {
    next = h->next;
    free(h);
  }
  for (size_t i = 0; i < f->n_recs; i++) {
    fake_rec *c = &f->recs[i];
    for (size_t j = 0; j < c->n_headers; j++) {
      if (c->names) free(c->names[j]);
      if (c->values) free(c->values[j]);
    }
    free(c->names), free(c->values), free(c->topic);
  }
  free(f->recs);
  pthread_cond_destroy(&f->cv);
  pthread_mutex_destroy(&f->mu);
  free(f);
}

static const broker_log_ops fake_ops = {.append = fake_append,
                                        .read = fake_read,
                                        .commit = fake_commit,
                                        .committed = fake_committed,
                                        .partitions = fake_partitions,
                                        .end = fake_end,
                                        .free = fake_free};

static struct fake_log *fake_log_new(void) {
  struct fake_log *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->base.ops = &fake_ops;
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cv, NULL);
  return f;
}

static void fake_set_fail(struct fake_log *f, int rc) {
  pthread_mutex_lock(&f->mu);
  f->fail_rc = rc;
  pthread_mutex_unlock(&f->mu);
}

/* Ends the oldest held append with status, calling its callback on this
 * thread. Returns false when nothing was held. */
static bool fake_release(struct fake_log *f, int status) {
  pthread_mutex_lock(&f->mu);
  fake_held *h = f->first;
  if (h) {
    f->first = h->next;
    if (!f->first) f->last = NULL;
    f->n_held--;
  }
  pthread_mutex_unlock(&f->mu);
  if (!h) return false;
  h->cb(h->opaque, status);
  free(h);
  return true;
}

static void fake_release_all(struct fake_log *f, int status) {
  while (fake_release(f, status)) continue;
}

static size_t fake_count(struct fake_log *f, const size_t *field) {
  pthread_mutex_lock(&f->mu);
  size_t v = *field;
  pthread_mutex_unlock(&f->mu);
  return v;
}

/* Waits (at most WAIT_MS) until the fake holds at least n appends; returns
 * how many it holds. */
static size_t fake_wait_held(struct fake_log *f, size_t n) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += WAIT_MS / 1000;
  pthread_mutex_lock(&f->mu);
  while (f->n_held < n)
    if (pthread_cond_timedwait(&f->cv, &f->mu, &deadline) == ETIMEDOUT) break;
  size_t got = f->n_held;
  pthread_mutex_unlock(&f->mu);
  return got;
}

/* Copies the value of header `name` of the i-th record seen into out;
 * returns false when there is no such record or header. */
static bool fake_header(struct fake_log *f, size_t i, const char *name, char *out, size_t size) {
  bool found = false;
  pthread_mutex_lock(&f->mu);
  if (i < f->n_recs)
    for (size_t j = 0; !found && j < f->recs[i].n_headers; j++)
      if (strcmp(f->recs[i].names[j], name) == 0) {
        snprintf(out, size, "%s", f->recs[i].values[j]);
        found = true;
      }
  pthread_mutex_unlock(&f->mu);
  return found;
}

/* ---- an HTTP client (libcurl), run here or on a thread of its own ---- */

typedef struct call {
  /* the request */
  uint16_t port;
  const char *method;
  char path[64];
  struct curl_slist *hdrs;
  const char *body;
  /* the answer */
  long status; /* 0: no answer (see err) */
  ce_buf resp;
  bool has_retry_after;
  char retry_after[32];
  char content_type[64];
  CURLcode code;
  char err[CURL_ERROR_SIZE];
  /* a thread running it */
  pthread_t th;
  bool started;
  atomic_bool done;
} call;

static size_t on_body(char *p, size_t size, size_t n, void *opaque) {
  call *c = opaque;
  return ce_buf_append(&c->resp, p, size * n) ? 0 : size * n;
}

static void copy_header(CURL *h, const char *name, char *out, size_t size, bool *found) {
  struct curl_header *hdr;
  bool ok = curl_easy_header(h, name, 0, CURLH_HEADER, -1, &hdr) == CURLHE_OK;
  if (ok) snprintf(out, size, "%s", hdr->value);
  if (found) *found = ok;
}

static void call_run(call *c) {
  CURL *h = curl_easy_init();
  if (!h) {
    snprintf(c->err, sizeof c->err, "curl_easy_init failed");
    return;
  }
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%u%s", c->port, c->path);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)CALL_TIMEOUT_S);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->err);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
  c->hdrs = curl_slist_append(c->hdrs, "Expect:");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdrs);
  if (strcmp(c->method, "POST") == 0) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body ? c->body : "");
  } else if (strcmp(c->method, "GET") != 0) {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
  }
  c->code = curl_easy_perform(h);
  if (c->code == CURLE_OK) {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
    copy_header(h, "Retry-After", c->retry_after, sizeof c->retry_after, &c->has_retry_after);
    copy_header(h, "Content-Type", c->content_type, sizeof c->content_type, NULL);
  }
  curl_easy_cleanup(h);
}

static void *call_thread(void *opaque) {
  call *c = opaque;
  call_run(c);
  atomic_store(&c->done, true);
  return NULL;
}

static void call_start(call *c) {
  c->started = true;
  assert_int_equal(pthread_create(&c->th, NULL, call_thread, c), 0);
}

static void call_join(call *c) {
  if (!c->started) return;
  pthread_join(c->th, NULL);
  c->started = false;
}

/* Clears c for a new request of method to path. */
static void call_prepare(call *c, uint16_t port, const char *method, const char *path) {
  curl_slist_free_all(c->hdrs);
  ce_buf_cleanup(&c->resp);
  *c = (call){.port = port, .method = method};
  snprintf(c->path, sizeof c->path, "%s", path);
  ce_buf_init(&c->resp);
}

static void call_header(call *c, const char *line) {
  c->hdrs = curl_slist_append(c->hdrs, line);
  assert_non_null(c->hdrs);
}

/* A binary-mode POST of one event with id `id` to /ns/b, plus one extra
 * header line when extra is not NULL. */
static void call_binary(call *c, uint16_t port, const char *id, const char *extra) {
  call_prepare(c, port, "POST", "/ns/b");
  char line[64];
  snprintf(line, sizeof line, "ce-id: %s", id);
  call_header(c, "ce-specversion: 1.0");
  call_header(c, line);
  call_header(c, "ce-source: /test");
  call_header(c, "ce-type: dev.outpost.test");
  call_header(c, "Content-Type: application/json");
  if (extra) call_header(c, extra);
  c->body = "{\"n\":1}";
}

static void call_batch(call *c, uint16_t port, const char *body) {
  call_prepare(c, port, "POST", "/ns/b");
  call_header(c, "Content-Type: application/cloudevents-batch+json");
  c->body = body;
}

static const char *body_of(call *c) {
  static const char nul = '\0';
  if (ce_buf_append(&c->resp, &nul, 1)) return "";
  c->resp.len--; /* keep the terminator out of the length */
  return c->resp.data;
}

/* ---- expectations ---- */

static void expect_status(call *c, long want) {
  if (c->status != want)
    fail_msg("%s%s%s %s: status %ld, want %ld (body \"%s\", curl \"%s\")", WHERE, c->method,
             c->path, c->status, want, body_of(c), c->err);
}

/* A refusal: status, a Retry-After of RETRY_AFTER_S when retry, and a JSON
 * body holding exactly "error" (containing err_has when not NULL), then
 * "attribute" when attr is not NULL and "index" when index >= 0. */
static void expect_refusal(call *c, long status, bool retry, const char *err_has, const char *attr,
                           int index) {
  expect_status(c, status);
  EXPECT_INT(c->has_retry_after, retry);
  char want_retry[16];
  snprintf(want_retry, sizeof want_retry, "%d", RETRY_AFTER_S);
  if (retry) EXPECT_STR(c->retry_after, want_retry);
  EXPECT_STR(c->content_type, "application/json");
  const char *body = body_of(c);
  cJSON *j = cJSON_Parse(body);
  if (!j || !cJSON_IsObject(j)) fail_msg("%s%sbody is not a JSON object: %s", WHERE, body);
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
  if (!cJSON_IsString(e) || !*e->valuestring) fail_msg("%s%sno \"error\" in %s", WHERE, body);
  if (err_has && !strstr(e->valuestring, err_has))
    fail_msg("%s%s\"error\" is \"%s\", want it to hold \"%s\"", WHERE, e->valuestring, err_has);
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "attribute");
  const cJSON *i = cJSON_GetObjectItemCaseSensitive(j, "index");
  if (attr) {
    if (!cJSON_IsString(a)) fail_msg("%s%sno \"attribute\" in %s", WHERE, body);
    EXPECT_STR(a->valuestring, attr);
  } else if (a) {
    fail_msg("%s%sunexpected \"attribute\" in %s", WHERE, body);
  }
  if (index >= 0) {
    if (!cJSON_IsNumber(i)) fail_msg("%s%sno \"index\" in %s", WHERE, body);
    EXPECT_INT(i->valuedouble, index);
  } else if (i) {
    fail_msg("%s%sunexpected \"index\" in %s", WHERE, body);
  }
  EXPECT_INT(cJSON_GetArraySize(j), 1 + (attr != NULL) + (index >= 0));
  cJSON_Delete(j);
}

/* ---- the fixture: a fake log, an ingress on an ephemeral port, broker ns/b ---- */

enum { CALLS = 6 };

typedef struct fixture {
  struct fake_log *f;
  broker_ingress *in;
  uint16_t port;
  call calls[CALLS];
  /* broker_ingress_stop run on a thread of its own (the stop test) */
  pthread_t stop_th;
  bool stop_started;
  atomic_bool stopped;
  bool passed; /* set by a test that got to its end */
} fixture;

/* broker_ingress_opts.drain_ms of the next setup (0: the default). */
static unsigned drain_ms;

static int setup(void **state) {
  reset_ctx(state);
  fixture *x = calloc(1, sizeof *x);
  assert_non_null(x);
  for (int i = 0; i < CALLS; i++) ce_buf_init(&x->calls[i].resp);
  x->f = fake_log_new();
  broker_ingress_opts o;
  broker_ingress_opts_init(&o);
  o.http.port = 0;
  o.http.threads = 2;
  o.max_inflight = 2;
  o.retry_after_s = RETRY_AFTER_S;
  if (drain_ms) o.drain_ms = drain_ms;
  drain_ms = 0;
  char err[256] = "";
  x->in = broker_ingress_start(&o, &x->f->base, err, sizeof err);
  if (!x->in) fail_msg("broker_ingress_start: %s", err);
  x->port = broker_ingress_port(x->in);
  assert_true(x->port != 0);
  assert_int_equal(broker_ingress_add(x->in, "ns", "b", NULL), 0);
  *state = x;
  return 0;
}

/* Also after a failed test: answers whatever is held so that every client
 * thread ends (each has a CALL_TIMEOUT_S timeout besides), then stops and
 * frees. */
static int teardown(void **state) {
  fixture *x = *state;
  struct timespec tick = {0, 1000000};
  for (int i = 0; i < CALLS; i++) {
    for (int t = 0; t < 20000 && x->calls[i].started && !atomic_load(&x->calls[i].done); t++) {
      fake_release_all(x->f, -ESHUTDOWN);
      nanosleep(&tick, NULL);
    }
    call_join(&x->calls[i]);
  }
  fake_release_all(x->f, -ESHUTDOWN);
  if (x->stop_started) {
    pthread_join(x->stop_th, NULL);
  } else if (!x->passed) {
    /* A failed test may have left the in-flight count up (the bug it found),
     * and stop would then wait its full 30 s: leave this ingress and its log
     * running, so that the other tests still end within the timeout. */
    x->in = NULL;
    x->f = NULL;
  }
  broker_ingress_stop(x->in);
  if (x->f) broker_log_free(&x->f->base);
  for (int i = 0; i < CALLS; i++) {
    curl_slist_free_all(x->calls[i].hdrs);
    ce_buf_cleanup(&x->calls[i].resp);
  }
  free(x);
  return 0;
}

/* The value of the sample `series` (name and labels as rendered) of GET
 * /metrics; fails when it is missing. */
static unsigned long long metric(fixture *x, const char *series) {
  call *c = &x->calls[CALLS - 1];
  call_prepare(c, x->port, "GET", "/metrics");
  call_run(c);
  expect_status(c, 200);
  const char *body = body_of(c);
  double v;
  if (prom_sample(body, series, &v)) return (unsigned long long)v;
  fail_msg("%s%sno sample %s in /metrics:\n%s", WHERE, series, body);
  return 0;
}

#define REJECTED(reason) "outpost_ingress_requests_rejected_total{reason=\"" reason "\"}"

/* Starts a binary POST (with one extra header line when extra is not NULL)
 * on calls[i] and waits until the fake holds `held` appends. */
static void post_held(fixture *x, int i, const char *id, const char *extra, size_t held) {
  call_binary(&x->calls[i], x->port, id, extra);
  call_start(&x->calls[i]);
  size_t got = fake_wait_held(x->f, held);
  if (got == held) return;
  call *c = &x->calls[i];
  if (!atomic_load(&c->done))
    fail_msg("%s%sthe fake holds %zu appends, want %zu (the POST of id %s: no answer yet)", WHERE,
             got, held, id);
  fail_msg("%s%sthe fake holds %zu appends, want %zu (the POST of id %s: status %ld, body \"%s\")",
           WHERE, got, held, id, c->status, body_of(c));
}

/* 202 comes only once the log says durable: a held POST has no answer yet,
 * even after another request made a round trip through the server. */
static void expect_unanswered(fixture *x, call *c) {
  (void)metric(x, "outpost_ingress_inflight_requests");
  if (atomic_load(&c->done))
    fail_msg("%s%s%s %s was answered (%ld) while the log held it", WHERE, c->method, c->path,
             c->status);
}

/* In-flight requests are all counted out again: two POSTs at once both reach
 * the log (max_inflight is 2) and both get 202 once released. */
static void expect_two_accepted(fixture *x) {
  CTX("two POSTs after the in-flight count went down");
  size_t before = fake_count(x->f, &x->f->appends);
  post_held(x, 0, "again-1", NULL, 1);
  post_held(x, 1, "again-2", NULL, 2);
  EXPECT_INT(fake_count(x->f, &x->f->appends), before + 2);
  expect_unanswered(x, &x->calls[0]);
  expect_unanswered(x, &x->calls[1]);
  assert_true(fake_release(x->f, 0));
  assert_true(fake_release(x->f, 0));
  call_join(&x->calls[0]);
  call_join(&x->calls[1]);
  expect_status(&x->calls[0], 202);
  expect_status(&x->calls[1], 202);
  EXPECT_INT(metric(x, "outpost_ingress_inflight_requests"), 0);
}

/* ---- the tests ---- */

static void overloaded_429(void **state) {
  fixture *x = *state;
  CTX("two POSTs held by the log");
  post_held(x, 0, "1", NULL, 1);
  post_held(x, 1, "2", NULL, 2);
  EXPECT_INT(metric(x, "outpost_ingress_inflight_requests"), 2);

  CTX("a third POST past max_inflight 2");
  call *c = &x->calls[2];
  call_binary(c, x->port, "3", NULL);
  call_run(c);
  expect_refusal(c, 429, true, NULL, NULL, -1);
  EXPECT_INT(fake_count(x->f, &x->f->appends), 2); /* refused before the log */
  EXPECT_INT(metric(x, REJECTED("overloaded")), 1);
  expect_unanswered(x, &x->calls[0]);
  expect_unanswered(x, &x->calls[1]);

  CTX("the two held POSTs released");
  assert_true(fake_release(x->f, 0));
  assert_true(fake_release(x->f, 0));
  call_join(&x->calls[0]);
  call_join(&x->calls[1]);
  expect_status(&x->calls[0], 202);
  EXPECT_INT(x->calls[0].resp.len, 0);
  expect_status(&x->calls[1], 202);
  EXPECT_INT(metric(x, "outpost_ingress_events_accepted_total{broker=\"ns/b\"}"), 2);

  expect_two_accepted(x);
  x->passed = true;
}

static void log_failure_503(void **state) {
  fixture *x = *state;
  char eio[64];
  snprintf(eio, sizeof eio, "%s", strerror(EIO));

  CTX("the log fails later with -EIO");
  post_held(x, 0, "1", NULL, 1);
  expect_unanswered(x, &x->calls[0]);
  assert_true(fake_release(x->f, -EIO));
  call_join(&x->calls[0]);
  expect_refusal(&x->calls[0], 503, true, eio, NULL, -1);

  CTX("the log fails later with -ENOSPC");
  post_held(x, 0, "2", NULL, 1);
  assert_true(fake_release(x->f, -ENOSPC));
  call_join(&x->calls[0]);
  expect_refusal(&x->calls[0], 503, true, "log full", NULL, -1);

  CTX("the log fails at once with -EIO");
  fake_set_fail(x->f, -EIO);
  call *c = &x->calls[2];
  call_binary(c, x->port, "3", NULL);
  call_run(c);
  expect_refusal(c, 503, true, eio, NULL, -1);
  EXPECT_INT(fake_count(x->f, &x->f->appends), 3);
  EXPECT_INT(fake_count(x->f, &x->f->n_held), 0);
  fake_set_fail(x->f, 0);

  EXPECT_INT(metric(x, REJECTED("log_unavailable")), 3);
  EXPECT_INT(metric(x, "outpost_ingress_events_accepted_total{broker=\"ns/b\"}"), 0);
  /* Three failures with max_inflight 2: a leaked count would now give 429. */
  expect_two_accepted(x);
  x->passed = true;
}

#define EV(id)   "{\"specversion\":\"1.0\",\"id\":\"" id "\",\"source\":\"/s\",\"type\":\"t\"}"
#define EV_NO_ID "{\"specversion\":\"1.0\",\"source\":\"/s\",\"type\":\"t\"}"
#define EV_TTL0(id)                                                                                \
  "{\"specversion\":\"1.0\",\"id\":\"" id "\",\"source\":\"/s\",\"type\":\"t\","                   \
  "\"knativebrokerttl\":0}"

static void batch_all_or_nothing(void **state) {
  fixture *x = *state;
  call *c = &x->calls[2];

  CTX("a batch whose event 1 has no id");
  call_batch(c, x->port, "[" EV("a") "," EV_NO_ID "," EV("c") "]");
  call_run(c);
  expect_refusal(c, 400, false, NULL, "id", 1);
  EXPECT_INT(fake_count(x->f, &x->f->appends), 0);

  CTX("a batch whose event 1 has TTL 0");
  call_batch(c, x->port, "[" EV("a") "," EV_TTL0("b") "," EV("c") "]");
  call_run(c);
  expect_refusal(c, 400, false, NULL, "knativebrokerttl", 1);
  EXPECT_INT(fake_count(x->f, &x->f->appends), 0);
  EXPECT_INT(metric(x, REJECTED("invalid")), 1);
  EXPECT_INT(metric(x, REJECTED("ttl_expired")), 1);

  CTX("a valid batch of 3");
  call_batch(&x->calls[0], x->port, "[" EV("a") "," EV("b") "," EV("c") "]");
  call_start(&x->calls[0]);
  EXPECT_INT(fake_wait_held(x->f, 1), 1);
  EXPECT_INT(fake_count(x->f, &x->f->appends), 1);
  EXPECT_INT(fake_count(x->f, &x->f->last_n), 3);
  EXPECT_INT(fake_count(x->f, &x->f->records), 3);
  char v[64];
  const char *ids[] = {"a", "b", "c"};
  for (size_t i = 0; i < 3; i++) {
    CTX("record %zu of the valid batch", i);
    EXPECT_TRUE(fake_header(x->f, i, "ce_id", v, sizeof v));
    EXPECT_STR(v, ids[i]);
    EXPECT_TRUE(fake_header(x->f, i, "ce_knativebrokerttl", v, sizeof v));
    EXPECT_STR(v, "255");
    EXPECT_TRUE(fake_header(x->f, i, "ce_knativearrivaltime", v, sizeof v));
  }
  expect_unanswered(x, &x->calls[0]);
  CTX("the valid batch released");
  assert_true(fake_release(x->f, 0));
  call_join(&x->calls[0]);
  expect_status(&x->calls[0], 202);
  EXPECT_INT(metric(x, "outpost_ingress_events_accepted_total{broker=\"ns/b\"}"), 3);
  x->passed = true;
}

static void stamping(void **state) {
  fixture *x = *state;
  char v[64];
  struct timespec before, after;

  CTX("an event without a TTL");
  clock_gettime(CLOCK_REALTIME, &before);
  post_held(x, 0, "stamp-1", NULL, 1);
  clock_gettime(CLOCK_REALTIME, &after);
  assert_true(fake_release(x->f, 0));
  call_join(&x->calls[0]);
  expect_status(&x->calls[0], 202);
  EXPECT_TRUE(fake_header(x->f, 0, "ce_id", v, sizeof v));
  EXPECT_STR(v, "stamp-1");
  EXPECT_TRUE(fake_header(x->f, 0, "ce_knativebrokerttl", v, sizeof v));
  EXPECT_STR(v, "255");
  EXPECT_TRUE(fake_header(x->f, 0, "ce_knativearrivaltime", v, sizeof v));
  int64_t sec;
  int32_t nsec;
  EXPECT_RC(ce_timestamp_parse(v, strlen(v), &sec, &nsec), 0);
  if (sec < before.tv_sec || sec > after.tv_sec)
    fail_msg("%s%sknativearrivaltime %s is not between %lld and %lld", WHERE, v,
             (long long)before.tv_sec, (long long)after.tv_sec);
  char topic[128] = "";
  pthread_mutex_lock(&x->f->mu);
  snprintf(topic, sizeof topic, "%s", x->f->recs[0].topic);
  pthread_mutex_unlock(&x->f->mu);
  EXPECT_STR(topic, "knative-broker-ns-b");

  CTX("an event with TTL 5 keeps it");
  post_held(x, 0, "stamp-2", "ce-knativebrokerttl: 5", 1);
  assert_true(fake_release(x->f, 0));
  call_join(&x->calls[0]);
  expect_status(&x->calls[0], 202);
  EXPECT_TRUE(fake_header(x->f, 1, "ce_knativebrokerttl", v, sizeof v));
  EXPECT_STR(v, "5");

  const char *refused[] = {"ce-knativebrokerttl: 0", "ce-knativebrokerttl: -1"};
  for (size_t i = 0; i < 2; i++) {
    CTX("%s", refused[i]);
    call *c = &x->calls[2];
    call_binary(c, x->port, "stamp-3", refused[i]);
    call_run(c);
    expect_refusal(c, 400, false, "TTL", "knativebrokerttl", -1);
    EXPECT_INT(fake_count(x->f, &x->f->appends), 2);
  }
  EXPECT_INT(metric(x, REJECTED("ttl_expired")), 2);
  x->passed = true;
}

/* The rejection counters, exactly, on an ingress that has seen one 429, three
 * log failures, one invalid event and one accepted POST. */
static void metrics_count_rejections(void **state) {
  fixture *x = *state;
  CTX("one 429");
  post_held(x, 0, "m-1", NULL, 1);
  post_held(x, 1, "m-2", NULL, 2);
  call *c = &x->calls[2];
  call_binary(c, x->port, "m-3", NULL);
  call_run(c);
  expect_status(c, 429);
  CTX("two late log failures, one accepted");
  assert_true(fake_release(x->f, -EIO));
  assert_true(fake_release(x->f, 0));
  call_join(&x->calls[0]);
  call_join(&x->calls[1]);
  expect_status(&x->calls[0], 503);
  expect_status(&x->calls[1], 202);
  post_held(x, 0, "m-4", NULL, 1);
  assert_true(fake_release(x->f, -ENOSPC));
  call_join(&x->calls[0]);
  expect_status(&x->calls[0], 503);
  CTX("one failure at once, one invalid");
  fake_set_fail(x->f, -EIO);
  call_binary(c, x->port, "m-5", NULL);
  call_run(c);
  expect_status(c, 503);
  fake_set_fail(x->f, 0);
  call_batch(c, x->port, "[" EV_NO_ID "]");
  call_run(c);
  expect_status(c, 400);

  CTX("/metrics");
  call_prepare(c, x->port, "GET", "/metrics");
  call_run(c);
  expect_status(c, 200);
  if (!strstr(body_of(c), "# TYPE outpost_ingress_requests_rejected_total counter\n"))
    fail_msg("no TYPE line for the rejection counter in:\n%s", body_of(c));
  EXPECT_INT(metric(x, REJECTED("overloaded")), 1);
  EXPECT_INT(metric(x, REJECTED("log_unavailable")), 3);
  EXPECT_INT(metric(x, REJECTED("invalid")), 1);
  EXPECT_INT(metric(x, REJECTED("ttl_expired")), 0);
  EXPECT_INT(metric(x, REJECTED("draining")), 0);
  EXPECT_INT(metric(x, "outpost_ingress_events_accepted_total{broker=\"ns/b\"}"), 1);
  EXPECT_INT(metric(x, "outpost_ingress_inflight_requests"), 0);
  x->passed = true;
}

static void *stop_thread(void *opaque) {
  fixture *x = opaque;
  broker_ingress_stop(x->in);
  atomic_store(&x->stopped, true);
  return NULL;
}

/* Polls (at most WAIT_MS) until GET path answers want; returns the last status. */
static long poll_status(fixture *x, call *c, const char *path, long want) {
  struct timespec tick = {0, 1000000};
  for (int t = 0; t < WAIT_MS; t++) {
    call_prepare(c, x->port, "GET", path);
    call_run(c);
    if (c->status == want) break;
    nanosleep(&tick, NULL);
  }
  return c->status;
}

static void stop_waits_for_inflight(void **state) {
  fixture *x = *state;
  CTX("one POST held, then broker_ingress_stop on a thread");
  call *c = &x->calls[2];
  call_prepare(c, x->port, "GET", "/readyz");
  call_run(c);
  expect_status(c, 200);
  post_held(x, 0, "s-1", NULL, 1);
  x->stop_started = true;
  assert_int_equal(pthread_create(&x->stop_th, NULL, stop_thread, x), 0);

  CTX("draining");
  EXPECT_INT(poll_status(x, c, "/readyz", 503), 503);
  EXPECT_STR(body_of(c), "draining\n");
  call_binary(c, x->port, "s-2", NULL);
  call_run(c);
  expect_refusal(c, 503, true, "shutting down", NULL, -1);
  EXPECT_INT(fake_count(x->f, &x->f->appends), 1);
  EXPECT_INT(metric(x, REJECTED("draining")), 1);
  /* The held request keeps the in-flight count at 1: stop cannot be done. */
  EXPECT_TRUE(!atomic_load(&x->stopped));
  EXPECT_TRUE(!atomic_load(&x->calls[0].done));

  CTX("the held POST released");
  assert_true(fake_release(x->f, 0));
  call_join(&x->calls[0]);
  pthread_join(x->stop_th, NULL);
  x->stop_started = false;
  x->in = NULL;
  EXPECT_TRUE(atomic_load(&x->stopped));
  /* Stop waits for the answer to be written, not only handed to the server
   * (httpd_stop waits for answered requests to complete). */
  expect_status(&x->calls[0], 202);
  x->passed = true;
}

static int setup_short_drain(void **state) {
  drain_ms = 300;
  return setup(state);
}

/* A log that never reports before stop gives up: the client gets 503 (the
 * event may yet be stored: it retries, at least once), the server stops with
 * no suspended connection left, and the log's late report frees the ingress
 * (ASan would see a use after free or a leak). */
static void stop_answers_what_the_log_never_reports(void **state) {
  fixture *x = *state;
  CTX("one POST held past the drain time");
  post_held(x, 0, "late-1", NULL, 1);
  broker_ingress_stop(x->in);
  x->in = NULL;
  call_join(&x->calls[0]);
  expect_refusal(&x->calls[0], 503, true, "before the log confirmed", NULL, -1);
  CTX("the log reports after stop returned");
  assert_true(fake_release(x->f, 0));
  x->passed = true;
}

int main(void) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(overloaded_429, setup, teardown),
      cmocka_unit_test_setup_teardown(log_failure_503, setup, teardown),
      cmocka_unit_test_setup_teardown(batch_all_or_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(stamping, setup, teardown),
      cmocka_unit_test_setup_teardown(metrics_count_rejections, setup, teardown),
      cmocka_unit_test_setup_teardown(stop_waits_for_inflight, setup, teardown),
      cmocka_unit_test_setup_teardown(stop_answers_what_the_log_never_reports, setup_short_drain,
                                      teardown),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return rc;
}
