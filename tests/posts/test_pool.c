/*
 * test_pool.c — the warm pool (posts/pool.h) against a real podman service:
 * a template with min 2 fills to 2 warm; a warm claim is quick and the pool
 * refills; a claim at zero is a cold start reported by requested, ready and
 * claimed events; a claim warms the pool ahead of demand, and without
 * demand it scales back to zero; release removes; an idle claimed
 * environment is reclaimed after its idleTimeout (and touch defers it); a
 * new pool on the same node recovers the warm and claimed sets (owners
 * kept) without recreating anything, and removes a broken leftover. Every
 * event is checked as a valid CloudEvent of the documented catalogue.
 *
 * Needs root and podman with the lab image (scripts/setup_podman.sh); it
 * starts the podman service with the script given as argv[1] when nothing
 * answers. Not root: exit 77 (skipped). Each run has its own namespace and
 * node names, labels its environments with outpost.test/suite=pool, and
 * removes its own and those of crashed earlier runs.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "core/clock.h"
#include "core/resources.h"
#include "posts/pool.h"
#include "posts/template.h"

#include "tests/posts/podman_rt.h"

#define LAB_IMAGE "localhost/outpost-lab-c:latest"
#define SUITE     "outpost.test/suite"

static posts_runtime *rt;
static char ns[32];

/* ------------------------------------------------------------- events */

/* Every event any pool of this run emitted, in order. */
static struct {
  pthread_mutex_t mu;
  ce_event **ev;
  size_t n, cap;
} seen = {.mu = PTHREAD_MUTEX_INITIALIZER};

static const char *attr(const ce_event *ev, const char *name) {
  const char *v = ce_event_get_str(ev, name);
  return v ? v : "";
}

/* When set, the callback reads this pool, as a publisher that wants the
 * pool's state would: the callback must be free to call back in. */
static pool *cb_pool;
static size_t cb_reads;

/* POOL_TEST_EVENTS=1 prints each event as JSON, to read the catalogue. */
static void on_event(ce_event *ev, void *opaque) {
  (void)opaque;
  if (getenv("POOL_TEST_EVENTS")) {
    ce_buf b;
    ce_buf_init(&b);
    if (ce_json_encode(ev, &b, NULL) == 0) printf("     event %s\n", b.data);
    ce_buf_cleanup(&b);
  }
  pthread_mutex_lock(&seen.mu);
  pool *read = cb_pool;
  pthread_mutex_unlock(&seen.mu);
  if (read) {
    pool_env *envs;
    size_t n;
    pool_stats st;
    assert_int_equal(pool_list(read, NULL, &envs, &n), 0);
    free(envs);
    pool_template_stats(read, attr(ev, "template"), &st);
    pthread_mutex_lock(&seen.mu);
    cb_reads++;
    pthread_mutex_unlock(&seen.mu);
  }
  pthread_mutex_lock(&seen.mu);
  if (seen.n == seen.cap) {
    seen.cap = seen.cap ? seen.cap * 2 : 64;
    seen.ev = realloc(seen.ev, seen.cap * sizeof *seen.ev);
    assert_non_null(seen.ev);
  }
  seen.ev[seen.n++] = ev;
  pthread_mutex_unlock(&seen.mu);
}

static void sleep_ms(long ms) {
  nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

static size_t events_now(void) {
  pthread_mutex_lock(&seen.mu);
  size_t n = seen.n;
  pthread_mutex_unlock(&seen.mu);
  return n;
}

/* The data member key of ev as a string ("" when absent), into out. */
static const char *data_str(const ce_event *ev, const char *key, char *out, size_t size) {
  size_t len;
  const uint8_t *d = ce_event_data(ev, &len);
  cJSON *j = d ? cJSON_ParseWithLength((const char *)d, len) : NULL;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  if (cJSON_IsString(v))
    snprintf(out, size, "%s", v->valuestring);
  else if (cJSON_IsNumber(v))
    snprintf(out, size, "%.0f", v->valuedouble);
  else if (cJSON_IsBool(v))
    snprintf(out, size, "%s", cJSON_IsTrue(v) ? "true" : "false");
  else
    out[0] = '\0';
  cJSON_Delete(j);
  return out;
}

/* Index of the first event from index `from` of type whose subject is
 * subject (NULL: any) and whose data member key is value (key NULL: any);
 * -1 when none. */
static long find_event(size_t from, const char *type, const char *subject, const char *key,
                       const char *value) {
  char buf[256];
  long found = -1;
  pthread_mutex_lock(&seen.mu);
  for (size_t i = from; i < seen.n && found < 0; i++) {
    const ce_event *ev = seen.ev[i];
    if (strcmp(attr(ev, "type"), type) != 0) continue;
    if (subject && strcmp(attr(ev, "subject"), subject) != 0) continue;
    if (key && strcmp(data_str(ev, key, buf, sizeof buf), value) != 0) continue;
    found = (long)i;
  }
  pthread_mutex_unlock(&seen.mu);
  return found;
}

static size_t count_events(size_t from, const char *type, const char *tpl) {
  size_t n = 0;
  pthread_mutex_lock(&seen.mu);
  for (size_t i = from; i < seen.n; i++)
    n += strcmp(attr(seen.ev[i], "type"), type) == 0 &&
         (!tpl || strcmp(attr(seen.ev[i], "template"), tpl) == 0);
  pthread_mutex_unlock(&seen.mu);
  return n;
}

/* The event at i (stays valid: events are freed only at the end). */
static const ce_event *event_at(long i) {
  pthread_mutex_lock(&seen.mu);
  const ce_event *ev = seen.ev[i];
  pthread_mutex_unlock(&seen.mu);
  return ev;
}

/* Waits up to ms for an event as find_event describes; its index or -1. */
static long wait_event(size_t from, const char *type, const char *subject, const char *key,
                       const char *value, int ms) {
  long i;
  for (int waited = 0; (i = find_event(from, type, subject, key, value)) < 0 && waited < ms;
       waited += 50)
    sleep_ms(50);
  return i;
}

/* Waits (at most ms) until n events of type (of template tpl) have come
 * since from; their count then. Events reach the sink over HTTP, after the
 * pool's own state has changed. */
static size_t wait_count(size_t from, const char *type, const char *tpl, size_t n, int ms) {
  size_t got;
  for (int waited = 0; (got = count_events(from, type, tpl)) < n && waited < ms; waited += 50)
    sleep_ms(50);
  return got;
}

/* ------------------------------------------------------------- helpers */

#define EXPECT_RC(got, want, err)                                                                  \
  do {                                                                                             \
    long long g_ = (long long)(got), w_ = (long long)(want);                                       \
    if (g_ != w_)                                                                                  \
      fail_msg("%s = %lld, want %lld (%s)", #got, g_, w_, (err)->msg[0] ? (err)->msg : "-");       \
  } while (0)

#define EXPECT_STR(got, want)                                                                      \
  do {                                                                                             \
    const char *g_ = (got), *w_ = (want);                                                          \
    if (!g_ || strcmp(g_, w_) != 0) fail_msg("%s = \"%s\", want \"%s\"", #got, g_ ? g_ : "", w_);  \
  } while (0)

/* A template named name with the spec lines given (image and command set). */
static pool_template *template_of(const char *name, const char *lines) {
  char text[1024];
  cJSON *all = NULL;
  res_err rerr;
  pool_template_err terr;
  memset(&terr, 0, sizeof terr);
  snprintf(text, sizeof text,
           "apiVersion: outpost.dev/v1\nkind: LabTemplate\nmetadata: {name: %s}\nspec:\n"
           "  image: %s\n  command: [sleep, infinity]\n  limits: {pids: 64, memory: 128Mi}\n%s",
           name, LAB_IMAGE, lines);
  if (res_parse(text, strlen(text), &all, &rerr) != 0) fail_msg("res_parse: %s", rerr.msg);
  pool_template *t = pool_template_parse(cJSON_GetArrayItem(all, 0), &terr);
  cJSON_Delete(all);
  if (!t) fail_msg("template refused at %s: %s", terr.path, terr.msg);
  return t;
}

static void add_template(pool *p, const char *name, const char *lines) {
  posts_err err = {0};
  pool_template *t = template_of(name, lines);
  int rc = pool_template_add(p, t, &err);
  if (rc != 0) pool_template_free(t);
  EXPECT_RC(rc, 0, &err);
}

/* A pool of this run on node "<ns>-<tag>", ticking fast, with a predictor
 * that forgets demand after 3 s (so that scaling to zero fits in a test). */
static pool *pool_for(const char *tag) {
  static const posts_label labels[] = {{SUITE, "pool"}};
  char node[64];
  pool_predict_opts po;
  posts_err err = {0};
  pool_predict_opts_init(&po);
  po.keepalive_ms = 3000;
  po.burst_gap_ms = 500;
  po.bin_ms = 1000;
  po.bins = 60;
  snprintf(node, sizeof node, "%s-%s", ns, tag);
  pool_opts o = {
      .node = node, .ns = ns, .tick_ms = 100, .predict = &po, .labels = labels, .n_labels = 1};
  pool *p = pool_new(rt, &o, on_event, NULL, &err);
  if (!p) fail_msg("pool_new: %s", err.msg);
  return p;
}

/* Waits up to ms until the template has warm warm and claimed claimed
 * environments and none starting. */
static void wait_stats(pool *p, const char *tpl, uint32_t warm, uint32_t claimed, int ms) {
  pool_stats st = {0};
  int64_t end = clock_mono_ms() + ms;
  do {
    assert_int_equal(pool_template_stats(p, tpl, &st), 0);
    if (st.warm == warm && st.claimed == claimed && st.starting == 0) return;
    sleep_ms(50);
  } while (clock_mono_ms() < end);
  fail_msg("%s: warm %u claimed %u starting %u (target %u), want warm %u claimed %u after %d ms",
           tpl, st.warm, st.claimed, st.starting, st.target, warm, claimed, ms);
}

/* The runtime's view: environments of node tag (any template), how many
 * run, and how many are owned by owner. */
static size_t runtime_count(const char *tag, size_t *running, const char *owner, size_t *owned) {
  char node[64];
  snprintf(node, sizeof node, "%s-%s", ns, tag);
  posts_label sel[] = {{POOL_LABEL_NODE, node}, {POOL_LABEL_STATE, "warm"}, {SUITE, "pool"}};
  posts_env_infos infos = {0};
  posts_err err = {0};
  EXPECT_RC(posts_env_list(rt, ns, sel, 3, &infos, &err), 0, &err);
  size_t n = infos.n;
  *running = *owned = 0;
  for (size_t i = 0; i < n; i++) {
    *running += infos.items[i].state == POSTS_ENV_RUNNING;
    *owned += owner && strcmp(infos.items[i].owner, owner) == 0;
  }
  posts_env_infos_cleanup(&infos);
  return n;
}

static bool env_exists(const char *id) {
  posts_env_info info = {0};
  posts_err err = {0};
  int rc = posts_env_inspect(rt, id, &info, &err);
  posts_env_info_cleanup(&info);
  if (rc != 0 && rc != -ENOENT) fail_msg("inspect %s: %s", id, err.msg);
  return rc == 0;
}

/* Every event from `from` on is a valid CloudEvent of the catalogue, from
 * a pool of this run, with the extensions its kind promises. */
static void check_events(size_t from) {
  static const char *const types[] = {POOL_EV_REQUESTED, POOL_EV_READY,     POOL_EV_CLAIMED,
                                      POOL_EV_IDLE,      POOL_EV_RECLAIMED, POOL_EV_RELEASED,
                                      POOL_EV_FAILED,    POOL_EV_SCALED,    POOL_EV_RECOVERED};
  char prefix[96], buf[64];
  snprintf(prefix, sizeof prefix, "/nodes/%s-", ns);
  for (size_t i = from; i < events_now(); i++) {
    const ce_event *ev = event_at((long)i);
    const char *type = attr(ev, "type");
    ce_err cerr;
    size_t k = 0, len;
    if (ce_event_validate(ev, &cerr) != 0)
      fail_msg("event %zu (%s): invalid: %s %s", i, type, cerr.attr, cerr.reason);
    while (k < sizeof types / sizeof types[0] && strcmp(types[k], type) != 0) k++;
    if (k == sizeof types / sizeof types[0]) fail_msg("event %zu: type %s not documented", i, type);
    if (strncmp(attr(ev, "source"), prefix, strlen(prefix)) != 0 ||
        !strstr(attr(ev, "source"), "/pool"))
      fail_msg("event %zu: source %s", i, attr(ev, "source"));
    const uint8_t *d = ce_event_data(ev, &len);
    cJSON *j = d ? cJSON_ParseWithLength((const char *)d, len) : NULL;
    if (!cJSON_IsObject(j)) fail_msg("event %zu (%s): data is not a JSON object", i, type);
    cJSON_Delete(j);
    EXPECT_STR(attr(ev, "datacontenttype"), "application/json");
    assert_true(attr(ev, "node")[0] != '\0');
    if (strstr(type, ".environment.")) {
      EXPECT_STR(attr(ev, "partitionkey"), attr(ev, "subject"));
      EXPECT_STR(attr(ev, "template"), data_str(ev, "template", buf, sizeof buf));
    }
    if (strcmp(type, POOL_EV_CLAIMED) == 0 || strcmp(type, POOL_EV_RELEASED) == 0)
      assert_true(attr(ev, "tenant")[0] != '\0');
  }
}

/* -------------------------------------------------------------- tests */

/* A template of the same name twice is refused; a removed template takes
 * no claims, and its warm environments go before it is dropped. */
static void template_add_remove(pool *p) {
  size_t before, running, owned;
  posts_err err = {0};
  pool_claim_info c;
  pool_template *dup = template_of("warm", "");
  EXPECT_RC(pool_template_add(p, dup, &err), -EEXIST, &err);
  pool_template_free(dup);
  before = events_now();
  assert_int_equal(pool_template_remove(p, "warm"), 0);
  assert_int_equal(pool_template_remove(p, "warm"), -ENOENT);
  EXPECT_RC(pool_claim(p, "warm", "alice", &c, &err), -ENOENT, &err);
  assert_true(wait_event(before, POOL_EV_RECLAIMED, NULL, "reason", "template_removed", 10000) >=
              0);
  pool_stats st;
  for (int i = 0; i < 100 && pool_template_stats(p, "warm", &st) == 0; i++) sleep_ms(50);
  assert_int_equal(pool_template_stats(p, "warm", &st), -ENOENT); /* drained and dropped */
  assert_int_equal(runtime_count("fill", &running, NULL, &owned), 0);
}

static void fill_claim_refill_release(void **state) {
  (void)state;
  size_t from = events_now(), running, owned;
  posts_err err = {0};
  pool_claim_info c;
  pool *p = pool_for("fill");
  add_template(p, "warm", "  pool: {min: 2, max: 3}\n");

  wait_stats(p, "warm", 2, 0, 30000);
  assert_true(find_event(from, POOL_EV_SCALED, "warm", "new", "2") >= 0);
  assert_true(find_event(from, POOL_EV_SCALED, "warm", "bound", "min") >= 0);
  assert_int_equal(wait_count(from, POOL_EV_READY, "warm", 2, 5000), 2);
  assert_int_equal(runtime_count("fill", &running, NULL, &owned), 2);
  assert_int_equal(running, 2);

  EXPECT_RC(pool_claim(p, "warm", "alice", &c, &err), 0, &err);
  assert_true(c.warm);
  printf("     warm claim: %.3f ms\n", (double)c.elapsed_us / 1000.0);
  long ci = find_event(from, POOL_EV_CLAIMED, c.name, "warm", "true");
  assert_true(ci >= 0);
  EXPECT_STR(attr(event_at(ci), "tenant"), "alice");
  /* The owner is in the runtime, not only here (the refill may be under
   * way, so the total is 2 or 3). */
  assert_true(runtime_count("fill", &running, "alice", &owned) >= 2);
  assert_int_equal(owned, 1);
  pool_env env;
  assert_int_equal(pool_env_get(p, c.id, &env), 0);
  EXPECT_STR(pool_env_state_name(env.state), "claimed");
  EXPECT_STR(env.tenant, "alice");

  wait_stats(p, "warm", 2, 1, 30000); /* refilled */
  assert_int_equal(runtime_count("fill", &running, "alice", &owned), 3);

  size_t before = events_now();
  EXPECT_RC(pool_release(p, c.id, &err), 0, &err);
  assert_false(env_exists(c.id));
  assert_true(find_event(before, POOL_EV_RELEASED, c.name, "tenant", "alice") >= 0);
  EXPECT_RC(pool_release(p, c.id, &err), -ENOENT, &err);
  assert_int_equal(pool_touch(p, c.id), -ENOENT);
  EXPECT_RC(pool_claim(p, "no-such", "alice", &c, &err), -ENOENT, &err);
  EXPECT_RC(pool_claim(p, "warm", "Alice!", &c, &err), -EINVAL, &err);
  wait_stats(p, "warm", 2, 0, 30000);

  /* A released environment is gone, and the next claim gets another. */
  pool_claim_info c2;
  EXPECT_RC(pool_claim(p, "warm", "bob", &c2, &err), 0, &err);
  assert_string_not_equal(c2.id, c.id);
  EXPECT_RC(pool_release(p, c2.id, &err), 0, &err);

  template_add_remove(p);
  pool_free(p);
  check_events(from);
}

static void cold_start_then_scale_to_zero(void **state) {
  (void)state;
  size_t from = events_now();
  posts_err err = {0};
  pool_claim_info c;
  pool_stats st;
  pool *p = pool_for("cold");
  add_template(p, "cold", "  pool: {min: 0, max: 2}\n");

  /* No demand yet: nothing is made. */
  sleep_ms(800);
  assert_int_equal(pool_template_stats(p, "cold", &st), 0);
  assert_int_equal(st.warm + st.starting, 0);
  assert_int_equal(st.why, POOL_PREDICT_NO_DEMAND);
  assert_int_equal(count_events(from, POOL_EV_REQUESTED, "cold"), 0);

  EXPECT_RC(pool_claim(p, "cold", "carol", &c, &err), 0, &err);
  assert_false(c.warm);
  printf("     cold claim: %.1f ms\n", (double)c.elapsed_us / 1000.0);
  long req = find_event(from, POOL_EV_REQUESTED, c.name, "tenant", "carol");
  long ready = find_event(from, POOL_EV_READY, c.name, "for", "claim");
  long claimed = find_event(from, POOL_EV_CLAIMED, c.name, "warm", "false");
  if (!(req >= 0 && req < ready && ready < claimed))
    fail_msg("cold start events out of order: requested %ld ready %ld claimed %ld", req, ready,
             claimed);
  EXPECT_STR(attr(event_at(claimed), "tenant"), "carol");
  assert_true(env_exists(c.id));

  /* The claim is demand: the pool warms one ahead of the next claim... */
  wait_stats(p, "cold", 1, 1, 30000);
  assert_true(find_event(from, POOL_EV_REQUESTED, NULL, "reason", "refill") >= 0);
  /* ...and once the predictor's keep-alive (3 s here) passes without a
   * claim, it scales back to zero. */
  long down = wait_event(from, POOL_EV_SCALED, "cold", "why", "idle", 15000);
  assert_true(down >= 0);
  wait_stats(p, "cold", 0, 1, 15000);
  assert_true(find_event(from, POOL_EV_RECLAIMED, NULL, "reason", "scale_down") >= 0);
  EXPECT_RC(pool_release(p, c.id, &err), 0, &err);
  assert_false(env_exists(c.id));
  pool_free(p);
  check_events(from);
}

static void idle_reclaim(void **state) {
  (void)state;
  size_t from = events_now();
  posts_err err = {0};
  pool_claim_info c;
  pool_env env;
  pool *p = pool_for("idle");
  add_template(p, "idle", "  idleTimeout: PT2S\n  pool: {min: 0, max: 1}\n");
  pthread_mutex_lock(&seen.mu);
  cb_pool = p;
  pthread_mutex_unlock(&seen.mu);
  EXPECT_RC(pool_claim(p, "idle", "dave", &c, &err), 0, &err);

  /* Activity keeps it: 3 s of touches, longer than the timeout. */
  for (int i = 0; i < 10; i++) {
    assert_int_equal(pool_touch(p, c.id), 0);
    sleep_ms(300);
  }
  assert_int_equal(pool_env_get(p, c.id, &env), 0);
  EXPECT_STR(pool_env_state_name(env.state), "claimed");
  assert_true(find_event(from, POOL_EV_IDLE, c.name, NULL, NULL) < 0);
  int64_t last = clock_mono_ms();
  assert_int_equal(pool_touch(p, c.id), 0);

  long rec = wait_event(from, POOL_EV_RECLAIMED, c.name, "reason", "idle", 10000);
  int64_t after = clock_mono_ms() - last;
  assert_true(rec >= 0);
  long idle = find_event(from, POOL_EV_IDLE, c.name, NULL, NULL);
  assert_true(idle >= 0 && idle < rec);
  EXPECT_STR(attr(event_at(rec), "tenant"), "dave");
  printf("     reclaimed %lld ms after the last touch (idleTimeout 2000 ms)\n", (long long)after);
  if (after < 1900)
    fail_msg("reclaimed %lld ms after the last touch, before the timeout", (long long)after);
  assert_false(env_exists(c.id));
  assert_int_equal(pool_env_get(p, c.id, &env), -ENOENT);
  pthread_mutex_lock(&seen.mu);
  cb_pool = NULL;
  assert_true(cb_reads > 0);
  pthread_mutex_unlock(&seen.mu);
  pool_free(p);
  check_events(from);
}

/* The ids, states and tenants of the pool's environments, sorted, as text. */
static void snapshot(pool *p, char *out, size_t size) {
  pool_env *envs;
  size_t n, used = 0;
  assert_int_equal(pool_list(p, NULL, &envs, &n), 0);
  out[0] = '\0';
  /* Selection sort by id: a handful of entries. */
  for (size_t i = 0; i < n; i++) {
    size_t min = i;
    for (size_t k = i + 1; k < n; k++)
      if (strcmp(envs[k].id, envs[min].id) < 0) min = k;
    pool_env tmp = envs[i];
    envs[i] = envs[min];
    envs[min] = tmp;
    used +=
        (size_t)snprintf(out + used, size - used, "%.12s %s %s %s|", envs[i].id,
                         envs[i].template_name, pool_env_state_name(envs[i].state), envs[i].tenant);
  }
  free(envs);
}

static void recovery(void **state) {
  (void)state;
  size_t from = events_now(), running, owned;
  posts_err err = {0};
  pool_claim_info c;
  char before[2048], after[2048], node[64], broken_id[POSTS_ENV_ID_MAX];
  pool *p = pool_for("rec");
  add_template(p, "rec", "  pool: {min: 2, max: 2}\n");
  wait_stats(p, "rec", 2, 0, 30000);
  EXPECT_RC(pool_claim(p, "rec", "erin", &c, &err), 0, &err);
  wait_stats(p, "rec", 2, 1, 30000);
  snapshot(p, before, sizeof before);
  pool_free(p);

  /* With no pool, everything keeps running; a leftover that was made but
   * never started is added, as a crash between create and start leaves. */
  assert_int_equal(runtime_count("rec", &running, "erin", &owned), 3);
  assert_int_equal(running, 3);
  assert_int_equal(owned, 1);
  snprintf(node, sizeof node, "%s-rec", ns);
  posts_label labels[] = {{POOL_LABEL_NODE, node},
                          {POOL_LABEL_TEMPLATE, "rec"},
                          {POOL_LABEL_STATE, "warm"},
                          {SUITE, "pool"}};
  posts_env_spec spec = {
      .ns = ns, .name = "rec-leftover", .image = LAB_IMAGE, .labels = labels, .n_labels = 4};
  EXPECT_RC(posts_env_create(rt, &spec, broken_id, &err), 0, &err);

  size_t mid = events_now();
  p = pool_for("rec");
  long rcv = find_event(mid, POOL_EV_RECOVERED, NULL, "warm", "2");
  assert_true(rcv >= 0);
  char buf[16];
  EXPECT_STR(data_str(event_at(rcv), "claimed", buf, sizeof buf), "1");
  EXPECT_STR(data_str(event_at(rcv), "broken", buf, sizeof buf), "1");
  add_template(p, "rec", "  pool: {min: 2, max: 2}\n");
  /* The broken leftover goes; the rest is as it was, nothing made anew. */
  assert_true(wait_event(mid, POOL_EV_RECLAIMED, "rec-leftover", "reason", "broken", 10000) >= 0);
  sleep_ms(1000);
  snapshot(p, after, sizeof after);
  EXPECT_STR(after, before);
  assert_int_equal(count_events(mid, POOL_EV_REQUESTED, NULL), 0);
  assert_false(env_exists(broken_id));
  pool_env env;
  assert_int_equal(pool_env_get(p, c.id, &env), 0);
  EXPECT_STR(env.tenant, "erin");
  assert_true(env.recovered);

  /* The recovered claim is the tenant's to give back, and warm ones serve. */
  EXPECT_RC(pool_release(p, c.id, &err), 0, &err);
  assert_false(env_exists(c.id));
  EXPECT_RC(pool_claim(p, "rec", "frank", &c, &err), 0, &err);
  assert_true(c.warm);
  EXPECT_RC(pool_release(p, c.id, &err), 0, &err);
  pool_free(p);
  check_events(from);
}

/* --------------------------------------------------------------- main */

/* Removes this run's environments (mine) or those of runs that are gone. */
static void remove_envs(bool mine) {
  posts_label sel[] = {{SUITE, "pool"}};
  posts_env_infos infos = {0};
  posts_err err = {0};
  if (posts_env_list(rt, NULL, sel, 1, &infos, &err) < 0) return;
  for (size_t i = 0; i < infos.n; i++) {
    int pid = 0;
    if (sscanf(infos.items[i].ns, "optpool-%d", &pid) != 1) continue;
    bool ours = pid == (int)getpid();
    if (mine ? ours : !ours && kill(pid, 0) < 0 && errno == ESRCH)
      posts_env_remove(rt, infos.items[i].id, true, &err);
  }
  posts_env_infos_cleanup(&infos);
}

static int group_setup(void **state) {
  (void)state;
  snprintf(ns, sizeof ns, "optpool-%d", (int)getpid());
  remove_envs(false);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  remove_envs(true);
  for (size_t i = 0; i < seen.n; i++) ce_event_free(seen.ev[i]);
  free(seen.ev);
  return 0;
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fill_claim_refill_release),
      cmocka_unit_test(cold_start_then_scale_to_zero),
      cmocka_unit_test(idle_reclaim),
      cmocka_unit_test(recovery),
  };
  int rc = podman_runtime_open(argc > 1 ? argv[1] : NULL, &rt);
  if (rc != 0) return rc;
  rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
  posts_runtime_free(rt);
  return rc;
}
