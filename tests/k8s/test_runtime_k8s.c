/*
 * test_runtime_k8s.c — posts/runtime.h on the Kubernetes API (runtime_k8s.h).
 *
 * Two groups, two CTest entries:
 *   --offline   no cluster needed: kubeconfig and in-cluster configuration,
 *               what is refused before any request, a refused connection,
 *               a pod's uid and its container's id read from its status,
 *               and the watch's recovery against a scripted fake API server
 *               (a stream the server ends, a bookmark, 410 Gone and the
 *               difference reported after listing again, the stop flag);
 *   KUBECONFIG KUBECONFIG-LIMITED
 *               a real kube-apiserver (v1.20 and etcd: scripts/kube_up.sh):
 *               create, inspect, labels, list by selector, claims and their
 *               races, watch, stop and remove, the pod spec the API stored,
 *               the errors (409, 404, 403, 401, 422), a client certificate.
 *               Exits 77 (skipped) when the kubeconfig is not there.
 *
 * That API server runs no kubelet, no scheduler and no controllers: pods
 * are stored and never start, so they stay Pending (CREATED) throughout, and
 * what only a running pod shows (RUNNING, EXITED with an exit code, -EBUSY
 * for removing a running pod, a pulled image) is not tested here; exec is,
 * with a fake kubelet, in test_k8s_exec.c.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/posts/rt_expect.h"

#include "core/clock.h"
#include "core/httpd.h"
#include "core/resources.h"
#include "posts/k8s_int.h"
#include "posts/runtime_k8s.h"

#define SUITE   "outpost.test/suite"
#define NS      "optest-k8s"
#define NS_B    "optest-k8s-b"
#define IMAGE   "localhost/outpost-lab-c:latest"
#define UNKNOWN NS "/no-such-pod"

static char tmp_dir[128];          /* this run's scratch files */
static const char *kubeconfig;     /* argv[1] */
static const char *kubeconfig_lim; /* argv[2] */
static char kube_dir[512];         /* where kube_up.sh keeps its pki */
static posts_runtime *rt;          /* the admin's, start does not wait */

/* ------------------------------------------------------------- helpers */

/* Checks a configuration call's result, printing its errbuf. */
#define EXPECT_CFG(got, want, ebuf)                                                                \
  do {                                                                                             \
    int g_ = (got), w_ = (want);                                                                   \
    if (g_ != w_) fail_msg("%s = %s, want %s (%s)", #got, errname(g_), errname(w_), ebuf);         \
  } while (0)

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* A configuration read from path (NULL: the admin's kubeconfig). */
static void load(posts_k8s_config *cfg, const char *path) {
  char ebuf[256] = "";
  assert_int_equal(posts_k8s_config_init(cfg), 0);
  if (posts_k8s_config_from_kubeconfig(cfg, path ? path : kubeconfig, NULL, ebuf, sizeof ebuf) < 0)
    fail_msg("kubeconfig %s: %s", path ? path : kubeconfig, ebuf);
}

static posts_runtime *runtime_of(const posts_k8s_config *cfg) {
  char ebuf[256] = "";
  posts_runtime *r = posts_runtime_k8s_new(cfg, ebuf, sizeof ebuf);
  if (!r) fail_msg("posts_runtime_k8s_new: %s", ebuf);
  return r;
}

static const char *const SLEEP[] = {"sleep", "infinity", NULL};

static posts_env_spec spec_for(const char *name) {
  static const posts_label labels[] = {{SUITE, "runtime_k8s"}};
  posts_env_spec spec = {.ns = NS, .name = name, .image = IMAGE, .command = SLEEP};
  spec.labels = labels;
  spec.n_labels = 1;
  return spec;
}

/* The pod of id as the API server stored it (the caller's). */
static cJSON *stored(posts_runtime *r, const char *id) {
  static const long ok[] = {200, 0};
  char path[512];
  cJSON *pod = NULL;
  posts_err err = {0};
  const char *slash = strchr(id, '/');
  snprintf(path, sizeof path, "/api/v1/namespaces/%.*s/pods/%s", (int)(slash - id), id, slash + 1);
  EXPECT_RC(posts__k8s_call((k8s *)r, "GET", path, NULL, NULL, ok, &pod, &err), 0, &err);
  return pod;
}

static const char *str_at(const cJSON *o, const char *dotted) {
  const char *s = res_str(o, dotted);
  return s ? s : "(absent)";
}

/* ======================================================= offline group */

/* A kubeconfig with two contexts: certificate data inline and from files
 * relative to the kubeconfig, a token and a token file. */
static void kubeconfig_parsing(void **state) {
  (void)state;
  char path[256], ca[256], ebuf[256];
  posts_k8s_config cfg;
  snprintf(ca, sizeof ca, "%s/ca.pem", tmp_dir);
  write_file(ca, "-----BEGIN CERTIFICATE-----\nFILE\n-----END CERTIFICATE-----\n");
  snprintf(path, sizeof path, "%s/cert.pem", tmp_dir);
  write_file(path, "CERT FROM FILE\n");
  snprintf(path, sizeof path, "%s/kubeconfig", tmp_dir);
  /* "aGVsbG8gY2E=" is "hello ca"; "a2V5IGRhdGE=" "key data". */
  write_file(path, "apiVersion: v1\n"
                   "kind: Config\n"
                   "current-context: inline\n"
                   "clusters:\n"
                   "- name: one\n"
                   "  cluster:\n"
                   "    server: https://one.example:6443\n"
                   "    certificate-authority-data: aGVsbG8g\n      Y2E=\n"
                   "- name: two\n"
                   "  cluster:\n"
                   "    server: https://two.example/\n"
                   "    certificate-authority: ca.pem\n"
                   "    insecure-skip-tls-verify: true\n"
                   "users:\n"
                   "- name: tok\n"
                   "  user: {token: abc123}\n"
                   "- name: files\n"
                   "  user:\n"
                   "    tokenFile: secrets/token\n"
                   "    client-certificate: cert.pem\n"
                   "    client-key-data: a2V5IGRhdGE=\n"
                   "contexts:\n"
                   "- name: inline\n"
                   "  context: {cluster: one, user: tok, namespace: labs}\n"
                   "- name: other\n"
                   "  context: {cluster: two, user: files}\n");

  assert_int_equal(posts_k8s_config_init(&cfg), 0);
  EXPECT_CFG(posts_k8s_config_from_kubeconfig(&cfg, path, NULL, ebuf, sizeof ebuf), 0, ebuf);
  EXPECT_STR(cfg.server, "https://one.example:6443");
  EXPECT_STR(cfg.ca_pem, "hello ca");
  EXPECT_STR(cfg.token, "abc123");
  EXPECT_STR(cfg.home_ns, "labs");
  assert_null(cfg.token_file);
  assert_null(cfg.client_cert_pem);
  assert_false(cfg.insecure);
  EXPECT_STR(cfg.ns_prefix, ""); /* the runtime's options keep their defaults */
  assert_int_equal(cfg.default_memory_bytes, 1LL << 30);
  assert_int_equal(cfg.default_nano_cpus, 1000000000LL);
  posts_k8s_config_cleanup(&cfg);

  assert_int_equal(posts_k8s_config_init(&cfg), 0);
  if (posts_k8s_config_from_kubeconfig(&cfg, path, "other", ebuf, sizeof ebuf) < 0)
    fail_msg("other: %s", ebuf);
  EXPECT_STR(cfg.server, "https://two.example/");
  EXPECT_HAS(cfg.ca_pem, "FILE");
  assert_true(cfg.insecure);
  char want[300];
  snprintf(want, sizeof want, "%s/secrets/token", tmp_dir);
  EXPECT_STR(cfg.token_file, want);
  EXPECT_STR(cfg.client_cert_pem, "CERT FROM FILE\n");
  EXPECT_STR(cfg.client_key_pem, "key data");
  assert_null(cfg.home_ns);
  /* The runtime takes the trailing '/' off: paths are appended. */
  posts_runtime *r = runtime_of(&cfg);
  assert_string_equal(((k8s *)r)->server, "https://two.example");
  posts_runtime_free(r);
  posts_k8s_config_cleanup(&cfg);
}

static void expect_kubeconfig_error(const char *text, const char *context, int want,
                                    const char *why) {
  char path[256], ebuf[256] = "";
  posts_k8s_config cfg;
  snprintf(path, sizeof path, "%s/bad-kubeconfig", tmp_dir);
  write_file(path, text);
  assert_int_equal(posts_k8s_config_init(&cfg), 0);
  int rc = posts_k8s_config_from_kubeconfig(&cfg, path, context, ebuf, sizeof ebuf);
  if (rc != want) fail_msg("rc %s, want %s (%s)", errname(rc), errname(want), ebuf);
  EXPECT_HAS(ebuf, why);
  EXPECT_HAS(ebuf, path); /* the file is named */
  posts_k8s_config_cleanup(&cfg);
}

static void kubeconfig_errors(void **state) {
  (void)state;
  static const char base[] = "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
                             "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
                             "current-context: x\n";
  char text[1024], ebuf[256];
  posts_k8s_config cfg;
  snprintf(text, sizeof text, "%susers: [{name: u, user: {exec: {command: aws}}}]\n", base);
  expect_kubeconfig_error(text, NULL, -ENOTSUP, "exec");
  snprintf(text, sizeof text, "%susers: [{name: u, user: {auth-provider: {name: gcp}}}]\n", base);
  expect_kubeconfig_error(text, NULL, -ENOTSUP, "auth-provider");
  snprintf(text, sizeof text, "%susers: [{name: u, user: {username: a, password: b}}]\n", base);
  expect_kubeconfig_error(text, NULL, -ENOTSUP, "username");
  snprintf(text, sizeof text, "%susers: [{name: u, user: {client-certificate-data: eA==}}]\n",
           base);
  expect_kubeconfig_error(text, NULL, -EINVAL, "key");
  snprintf(text, sizeof text, "%susers: [{name: u, user: {token: t}}]\n", base);
  expect_kubeconfig_error(text, "nope", -ENOENT, "no context nope");
  expect_kubeconfig_error(base, NULL, -ENOENT, "no user u");
  expect_kubeconfig_error("clusters: [{name: c, cluster: {server: x, "
                          "certificate-authority-data: '!!notbase64'}}]\n"
                          "contexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n",
                          NULL, -EINVAL, "not base64");
  expect_kubeconfig_error("clusters: [{name: c, cluster: {server: x, certificate-authority: "
                          "no-such.pem}}]\n"
                          "contexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n",
                          NULL, -ENOENT, "no-such.pem");
  expect_kubeconfig_error("contexts: [{name: x, context: {cluster: gone}}]\ncurrent-context: x\n",
                          NULL, -ENOENT, "no such cluster");
  expect_kubeconfig_error("clusters: []\n", NULL, -ENOENT, "current-context");
  expect_kubeconfig_error("just: [a, mapping\n", NULL, -EINVAL, "line");
  expect_kubeconfig_error("name: x\n", NULL, -EINVAL, "not a kubeconfig");

  assert_int_equal(posts_k8s_config_init(&cfg), 0);
  EXPECT_CFG(posts_k8s_config_from_kubeconfig(&cfg, "/no/such/kubeconfig", NULL, ebuf, sizeof ebuf),
             -ENOENT, ebuf);
  setenv("KUBECONFIG", "/a:/b", 1);
  EXPECT_CFG(posts_k8s_config_from_kubeconfig(&cfg, NULL, NULL, ebuf, sizeof ebuf), -EINVAL, ebuf);
  unsetenv("KUBECONFIG");
  posts_k8s_config_cleanup(&cfg);
}

/* The service account's files, as the kubelet mounts them. */
static void in_cluster(void **state) {
  (void)state;
  char dir[256], path[300], ebuf[256];
  posts_k8s_config cfg;
  snprintf(dir, sizeof dir, "%s/sa", tmp_dir);
  mkdir(dir, 0700);
  assert_int_equal(posts_k8s_config_init(&cfg), 0);

  unsetenv("KUBERNETES_SERVICE_HOST");
  EXPECT_CFG(posts__k8s_config_in_cluster_dir(&cfg, dir, ebuf, sizeof ebuf), -ENOENT, ebuf);
  EXPECT_HAS(ebuf, "not in a cluster");
  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  EXPECT_CFG(posts__k8s_config_in_cluster_dir(&cfg, dir, ebuf, sizeof ebuf), -ENOENT, ebuf);
  EXPECT_HAS(ebuf, "token");

  snprintf(path, sizeof path, "%s/token", dir);
  write_file(path, "sa-token\n");
  snprintf(path, sizeof path, "%s/ca.crt", dir);
  write_file(path, "CA PEM\n");
  snprintf(path, sizeof path, "%s/namespace", dir);
  write_file(path, "outpost-system");
  EXPECT_CFG(posts__k8s_config_in_cluster_dir(&cfg, dir, ebuf, sizeof ebuf), 0, ebuf);
  EXPECT_STR(cfg.server, "https://10.96.0.1:443");
  EXPECT_STR(cfg.ca_pem, "CA PEM");
  snprintf(path, sizeof path, "%s/token", dir);
  EXPECT_STR(cfg.token_file, path); /* read by the runtime, again as it rotates */
  EXPECT_STR(cfg.home_ns, "outpost-system");

  setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  EXPECT_CFG(posts__k8s_config_in_cluster_dir(&cfg, dir, ebuf, sizeof ebuf), 0, ebuf);
  EXPECT_STR(cfg.server, "https://[fd00::1]:443");
  /* Outside a pod the real one finds no service account. */
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  posts_k8s_config_cleanup(&cfg);
}

static int ignore_change(void *arg, posts_watch_type type, const posts_env_info *info) {
  return 0;
}

/* A pod's uid, and its lab container's id while it runs: where the node
 * post finds the pod's cgroup (no pid on Kubernetes). */
static void pod_ids(void **state) {
  (void)state;
  static const struct {
    const char *what, *status, *cid;
  } cases[] = {
      {"Running, containerd",
       "{\"phase\":\"Running\",\"containerStatuses\":[{\"name\":\"sidecar\",\"containerID\":"
       "\"containerd://bad\",\"state\":{\"running\":{}}},{\"name\":\"lab\",\"containerID\":"
       "\"containerd://0a1b\",\"state\":{\"running\":{}}}]}",
       "0a1b"},
      {"Running, CRI-O",
       "{\"phase\":\"Running\",\"containerStatuses\":[{\"name\":\"lab\",\"containerID\":"
       "\"cri-o://c0ffee\",\"state\":{\"running\":{}}}]}",
       "c0ffee"},
      {"terminated: no container runs",
       "{\"phase\":\"Failed\",\"containerStatuses\":[{\"name\":\"lab\",\"containerID\":"
       "\"containerd://0a1b\",\"state\":{\"terminated\":{\"exitCode\":3}}}]}",
       NULL},
      {"waiting: not started",
       "{\"phase\":\"Pending\",\"containerStatuses\":[{\"name\":\"lab\",\"state\":{\"waiting\":"
       "{}}}]}",
       NULL},
      {"an id without a scheme",
       "{\"phase\":\"Running\",\"containerStatuses\":[{\"name\":\"lab\",\"containerID\":"
       "\"0a1b\",\"state\":{\"running\":{}}}]}",
       NULL},
      {"an empty id",
       "{\"phase\":\"Running\",\"containerStatuses\":[{\"name\":\"lab\",\"containerID\":"
       "\"containerd://\",\"state\":{\"running\":{}}}]}",
       NULL},
      {"no status yet", "{}", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char text[1024];
    posts_env_info info = {0};
    snprintf(text, sizeof text,
             "{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\",\"uid\":\"5e0c7e1a-0b3f\"},"
             "\"spec\":{\"containers\":[{\"name\":\"lab\",\"image\":\"i\"}]},\"status\":%s}",
             cases[i].status);
    cJSON *pod = cJSON_Parse(text);
    assert_non_null(pod);
    if (posts__k8s_pod_info(&info, pod)) fail_msg("%s: not read", cases[i].what);
    if (!info.pod_uid || strcmp(info.pod_uid, "5e0c7e1a-0b3f"))
      fail_msg("%s: pod_uid %s", cases[i].what, info.pod_uid ? info.pod_uid : "NULL");
    if (cases[i].cid ? !info.container_id || strcmp(info.container_id, cases[i].cid)
                     : info.container_id != NULL)
      fail_msg("%s: container_id %s, want %s", cases[i].what,
               info.container_id ? info.container_id : "NULL",
               cases[i].cid ? cases[i].cid : "NULL");
    assert_int_equal(info.pid, 0);
    posts_env_info_cleanup(&info);
    cJSON_Delete(pod);
  }
}

/* What is refused before any request: no server answers here (port 1). */
static void refused_locally(void **state) {
  (void)state;
  posts_k8s_config cfg;
  posts_env_info info = {0};
  posts_env_infos infos = {0};
  posts_exec_result res = {0};
  posts_err err = {0};
  char id[POSTS_ENV_ID_MAX], ebuf[256];
  assert_int_equal(posts_k8s_config_init(&cfg), 0);

  assert_null(posts_runtime_k8s_new(&cfg, ebuf, sizeof ebuf)); /* no server */
  EXPECT_HAS(ebuf, "server");
  cfg.server = strdup("ftp://x");
  assert_null(posts_runtime_k8s_new(&cfg, ebuf, sizeof ebuf));
  free(cfg.server);
  cfg.server = strdup("https://127.0.0.1:1/");
  cfg.client_cert_pem = strdup("x");
  assert_null(posts_runtime_k8s_new(&cfg, ebuf, sizeof ebuf));
  EXPECT_HAS(ebuf, "key");
  free(cfg.client_cert_pem);
  cfg.client_cert_pem = NULL;
  free(cfg.ns_prefix);
  cfg.ns_prefix = strdup("Op_");
  assert_null(posts_runtime_k8s_new(&cfg, ebuf, sizeof ebuf));
  EXPECT_HAS(ebuf, "ns_prefix");
  free(cfg.ns_prefix);
  cfg.ns_prefix = strdup("a-very-long-prefix-for-namespaces-");
  posts_runtime *r = runtime_of(&cfg);

  /* Label keys and values Kubernetes would refuse, the runtime's own keys,
   * a namespace too long with the prefix. */
  posts_env_spec spec = spec_for("x");
  posts_label bad_value[] = {{"tier", "has space"}};
  spec.labels = bad_value;
  spec.n_labels = 1;
  EXPECT_RC(posts_env_create(r, &spec, id, &err), -EINVAL, &err);
  EXPECT_HAS(err.msg, "labels.0.value: not a Kubernetes label value");
  posts_label long_value[] = {
      {"tier", "0123456789012345678901234567890123456789012345678901234567890123"}};
  spec.labels = long_value;
  EXPECT_RC(posts_env_create(r, &spec, id, &err), -EINVAL, &err);
  posts_label bad_key[] = {{"Bad_Prefix.io/x", "y"}};
  spec.labels = bad_key;
  EXPECT_RC(posts_env_create(r, &spec, id, &err), -EINVAL, &err);
  EXPECT_HAS(err.msg, "labels.0.key");
  posts_label owner[] = {{"outpost.dev/owner", "alice"}};
  spec.labels = owner;
  EXPECT_RC(posts_env_create(r, &spec, id, &err), -EINVAL, &err);
  EXPECT_HAS(err.msg, "claim instead");
  posts_label managed[] = {{"app.kubernetes.io/managed-by", "me"}};
  spec.labels = managed;
  EXPECT_RC(posts_env_create(r, &spec, id, &err), -EINVAL, &err);
  spec = spec_for("x");
  spec.ns = "a-namespace-that-is-long-enough-to-overflow";
  EXPECT_RC(posts_env_create(r, &spec, id, &err), -EINVAL, &err);
  EXPECT_HAS(err.msg, "longer than 63");
  posts_label sel[] = {{"tier", "a b"}};
  EXPECT_RC(posts_env_list(r, NS, sel, 1, &infos, &err), -EINVAL, &err);
  EXPECT_HAS(err.msg, "sel.0.value");

  /* Ids that are not "<namespace>/<pod>" name nothing. */
  EXPECT_RC(posts_env_inspect(r, "../../etc", &info, &err), -ENOENT, &err);
  EXPECT_RC(posts_env_inspect(r, "a/b/c", &info, &err), -ENOENT, &err);
  EXPECT_RC(posts_env_inspect(r, "UPPER/x", &info, &err), -ENOENT, &err);

  /* Nobody at the address (exec: test_k8s_exec.c). */
  const char *const argv[] = {"true", NULL};
  posts_exec_req req = {.argv = argv};
  EXPECT_RC(posts_env_exec(r, NS "/x", &req, &res, &err), -ECONNREFUSED, &err);
  posts_exec_result_cleanup(&res);
  EXPECT_RC(posts_runtime_ping(r, &err), -ECONNREFUSED, &err);
  assert_int_equal(err.status, 0);
  EXPECT_RC(posts_env_inspect(r, NS "/x", &info, &err), -ECONNREFUSED, &err);
  posts_env_info_cleanup(&info);
  posts_runtime_free(r);
  posts_k8s_config_cleanup(&cfg);

  /* Docker has no watch. */
  posts_runtime *dk = posts_runtime_docker_new("/run/outpost-no-such.sock", ebuf, sizeof ebuf);
  assert_non_null(dk);
  EXPECT_RC(posts_env_watch(dk, NS, NULL, 0, ignore_change, NULL, NULL, &err), -ENOTSUP, &err);
  EXPECT_HAS(err.msg, "docker");
  posts_runtime_free(dk);
}

/* --------------------------------------------------- the fake API server */

/* A scripted API server for the watch: three listings and four watch
 * requests, whose resourceVersion parameters it keeps. */
typedef struct fake {
  pthread_mutex_t mu;
  int lists, watches;
  char watch_rv[8][32];
  char selector[256];
  char auth[128];
  atomic_bool hang_stop; /* ends the last, endless watch stream */
  atomic_int hang_calls;
  bool endless_first; /* the stop-flag test: the first watch never ends */
} fake;

static const char *pod_json(const char *name, const char *rv) {
  static char buf[4][512];
  static int i;
  char *b = buf[i++ % 4];
  snprintf(b, 512,
           "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"fake\","
           "\"resourceVersion\":\"%s\",\"labels\":{\"outpost.runtime/namespace\":\"fake\"}},"
           "\"spec\":{\"containers\":[{\"name\":\"lab\",\"image\":\"img\"}]},"
           "\"status\":{\"phase\":\"Pending\"}}",
           name, rv);
  return b;
}

/* A quiet stream, which the server ends after 5 s: a watch that missed its
 * stop flag ends late rather than never. */
static int hang_next(void *ctx, ce_buf *out) {
  fake *f = ctx;
  (void)out;
  if (atomic_load(&f->hang_stop) || atomic_fetch_add(&f->hang_calls, 1) >= 50) return 0;
  nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
  return 1;
}

static void fake_handler(void *ctx, httpd_req *req) {
  fake *f = ctx;
  char body[4096];
  const char *watch = httpd_query(req, "watch"), *auth = httpd_header(req, "Authorization");
  if (strcmp(httpd_path(req), "/api/v1/namespaces/fake/pods") != 0) {
    httpd_respond(req, 404, "application/json", "{\"kind\":\"Status\",\"code\":404}", 29, NULL, 0);
    return;
  }
  pthread_mutex_lock(&f->mu);
  snprintf(f->auth, sizeof f->auth, "%s", auth ? auth : "");
  snprintf(f->selector, sizeof f->selector, "%s", httpd_query(req, "labelSelector"));
  if (!watch) {
    /* First a and b; after the first 410, b changed, a gone, c new; after
     * the second, the same at a later resourceVersion. */
    int n = f->lists++;
    if (n == 0)
      snprintf(body, sizeof body, "{\"metadata\":{\"resourceVersion\":\"20\"},\"items\":[%s,%s]}",
               pod_json("a", "10"), pod_json("b", "11"));
    else
      snprintf(body, sizeof body, "{\"metadata\":{\"resourceVersion\":\"%s\"},\"items\":[%s,%s]}",
               n == 1 ? "40" : "45", pod_json("b", "30"), pod_json("c", "31"));
    pthread_mutex_unlock(&f->mu);
    httpd_respond(req, 200, "application/json", body, strlen(body), NULL, 0);
    return;
  }
  int n = f->watches++;
  const char *rv = httpd_query(req, "resourceVersion");
  snprintf(f->watch_rv[n < 8 ? n : 7], 32, "%s", rv ? rv : "");
  pthread_mutex_unlock(&f->mu);
  if (n == 0 && !f->endless_first) {
    /* a changed, then a bookmark, then the server ends the stream. */
    snprintf(body, sizeof body,
             "{\"type\":\"MODIFIED\",\"object\":%s}\n"
             "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":"
             "{\"resourceVersion\":\"25\"}}}\n",
             pod_json("a", "21"));
  } else if (n == 1 && !f->endless_first) {
    snprintf(body, sizeof body,
             "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"status\":\"Failure\","
             "\"message\":\"too old resource version: 25 (35)\",\"reason\":\"Expired\","
             "\"code\":410}}\n");
  } else if (n == 2 && !f->endless_first) {
    /* 410 as the answer's status this time, not as an event. */
    snprintf(body, sizeof body,
             "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"too old resource "
             "version\",\"reason\":\"Expired\",\"code\":410}");
    httpd_respond(req, 410, "application/json", body, strlen(body), NULL, 0);
    return;
  } else if (n == 3 && !f->endless_first) {
    snprintf(body, sizeof body, "{\"type\":\"DELETED\",\"object\":%s}\n", pod_json("c", "46"));
  } else {
    httpd_respond_stream(req, 200, "application/json", NULL, 0, hang_next, NULL, f);
    return;
  }
  httpd_respond(req, 200, "application/json", body, strlen(body), NULL, 0);
}

typedef struct events {
  char log[1024];
  int n;
  const char *end_on; /* "deleted c": return 7 there */
} events;

static int record(void *arg, posts_watch_type type, const posts_env_info *info) {
  events *s = arg;
  char one[64];
  snprintf(one, sizeof one, "%s %s", posts_watch_type_name(type), info->name);
  snprintf(s->log + strlen(s->log), sizeof s->log - strlen(s->log), "%s%s", s->n++ ? ", " : "",
           one);
  return s->end_on && strcmp(one, s->end_on) == 0 ? 7 : 0;
}

static posts_runtime *fake_runtime(httpd *h) {
  char server[64], token[256];
  posts_k8s_config cfg;
  assert_int_equal(posts_k8s_config_init(&cfg), 0);
  snprintf(server, sizeof server, "http://127.0.0.1:%u", httpd_port(h));
  snprintf(token, sizeof token, "%s/fake-token", tmp_dir);
  write_file(token, "from-file\n");
  cfg.server = strdup(server);
  cfg.token_file = strdup(token);
  free(cfg.ns_prefix);
  cfg.ns_prefix = strdup("fa");
  posts_runtime *r = runtime_of(&cfg);
  posts_k8s_config_cleanup(&cfg);
  return r;
}

static httpd *fake_start(fake *f) {
  httpd_opts o;
  char ebuf[128];
  httpd *h;
  httpd_opts_init(&o);
  o.model = HTTPD_THREAD_PER_CONNECTION;
  pthread_mutex_init(&f->mu, NULL);
  atomic_init(&f->hang_stop, false);
  atomic_init(&f->hang_calls, 0);
  h = httpd_start(&o, fake_handler, f, ebuf, sizeof ebuf);
  if (!h) fail_msg("httpd_start: %s", ebuf);
  return h;
}

/* The watch's recovery: resumed from the last resourceVersion (a bookmark's)
 * after the server ended a stream; after 410 Gone (an ERROR event, then the
 * answer's status), listed again with only the difference reported; then
 * resumed from the new listing. */
static void watch_recovers(void **state) {
  (void)state;
  fake f = {0};
  httpd *h = fake_start(&f);
  posts_runtime *r = fake_runtime(h);
  events s = {.end_on = "deleted c"};
  posts_err err = {0};
  EXPECT_RC(posts_env_watch(r, "ke", NULL, 0, record, &s, NULL, &err), 7, &err);
  EXPECT_STR(s.log, "added a, added b, modified a, deleted a, modified b, added c, deleted c");
  assert_int_equal(f.lists, 3);
  assert_int_equal(f.watches, 4);
  EXPECT_STR(f.watch_rv[0], "20"); /* the first listing's */
  EXPECT_STR(f.watch_rv[1], "25"); /* the bookmark's */
  EXPECT_STR(f.watch_rv[2], "40"); /* the second listing's */
  EXPECT_STR(f.watch_rv[3], "45"); /* the third's, which found nothing new to report */
  EXPECT_STR(f.selector, "outpost.runtime/namespace=ke");
  EXPECT_STR(f.auth, "Bearer from-file");     /* the token file's */
  EXPECT_STR(((k8s *)r)->token, "from-file"); /* its line end cut: not sent in the header */
  atomic_store(&f.hang_stop, true);
  posts_runtime_free(r);
  httpd_stop(h);
  pthread_mutex_destroy(&f.mu);
}

typedef struct stopper {
  atomic_bool *flag;
  int delay_ms;
} stopper;

static void *stop_later(void *arg) {
  stopper *st = arg;
  nanosleep(&(struct timespec){st->delay_ms / 1000, (st->delay_ms % 1000) * 1000000L}, NULL);
  atomic_store(st->flag, true);
  return NULL;
}

/* The stop flag ends a watch whose stream stays open and quiet. */
static void watch_stops(void **state) {
  (void)state;
  fake f = {.endless_first = true};
  httpd *h = fake_start(&f);
  posts_runtime *r = fake_runtime(h);
  events s = {0};
  posts_err err = {0};
  atomic_bool stop;
  stopper st = {&stop, 600};
  pthread_t t;
  atomic_init(&stop, false);
  pthread_create(&t, NULL, stop_later, &st);
  int64_t t0 = clock_mono_ms();
  EXPECT_RC(posts_env_watch(r, "ke", NULL, 0, record, &s, &stop, &err), 0, &err);
  int64_t took = clock_mono_ms() - t0;
  pthread_join(t, NULL);
  EXPECT_STR(s.log, "added a, added b");
  if (took < 500 || took > 2500) fail_msg("stopped after %lld ms, want 600..2500", (long long)took);
  atomic_store(&f.hang_stop, true);
  posts_runtime_free(r);
  httpd_stop(h);
  pthread_mutex_destroy(&f.mu);
}

/* ========================================================== live group */

/* Deletes the namespace name and what this suite put there, at once: no
 * namespace controller runs here to empty it and clear its finalizer, so
 * this does its work. Each run thus starts without its namespaces, and the
 * runtime must make them. */
static void drop_namespace(const char *name) {
  static const long ok[] = {200, 202, 404, 0}, got[] = {200, 0};
  char path[256];
  cJSON *ns = NULL;
  k8s *k = (k8s *)rt;
  posts_err err = {0};
  snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods?gracePeriodSeconds=0", name);
  posts__k8s_call(k, "DELETE", path, NULL, NULL, ok, NULL, &err);
  snprintf(path, sizeof path,
           "/apis/networking.k8s.io/v1/namespaces/%s/networkpolicies/outpost-no-network", name);
  posts__k8s_call(k, "DELETE", path, NULL, NULL, ok, NULL, &err);
  snprintf(path, sizeof path, "/api/v1/namespaces/%s", name);
  posts__k8s_call(k, "DELETE", path, NULL, NULL, ok, NULL, &err);
  if (posts__k8s_call(k, "GET", path, NULL, NULL, got, &ns, &err) == 0) {
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(ns, "spec"),
                                           "finalizers", cJSON_CreateArray());
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/finalize", name);
    if (posts__k8s_call(k, "PUT", path, NULL, ns, got, NULL, &err) < 0)
      print_message("finalizing namespace %s: %s\n", name, err.msg);
  }
  cJSON_Delete(ns);
}

static void drop_namespaces(void) {
  drop_namespace(NS);
  drop_namespace(NS_B);
  drop_namespace("op-" NS);
}

static void ping(void **state) {
  (void)state;
  posts_k8s_config cfg;
  posts_err err = {0};
  EXPECT_RC(posts_runtime_ping(rt, &err), 0, &err);
  /* The limited user is someone (the version is public to everyone
   * authenticated); a wrong token is nobody: 401 is -EACCES too. */
  load(&cfg, kubeconfig_lim);
  posts_runtime *lim = runtime_of(&cfg);
  EXPECT_RC(posts_runtime_ping(lim, &err), 0, &err);
  posts_runtime_free(lim);
  free(cfg.token);
  cfg.token = strdup("not-a-token");
  posts_runtime *nobody = runtime_of(&cfg);
  EXPECT_RC(posts_runtime_ping(nobody, &err), -EACCES, &err);
  assert_int_equal(err.status, 401);
  EXPECT_HAS(err.msg, "Unauthorized");
  posts_runtime_free(nobody);
  posts_k8s_config_cleanup(&cfg);
}

static size_t count_listed(const char *in_ns, const char *key, const char *value, const char *id,
                           bool *found) {
  posts_label sel[] = {{SUITE, "runtime_k8s"}, {key, value}};
  posts_env_infos infos = {0};
  posts_err err = {0};
  size_t n;
  EXPECT_RC(posts_env_list(rt, in_ns, sel, key ? 2 : 1, &infos, &err), 0, &err);
  *found = false;
  for (size_t i = 0; i < infos.n; i++) {
    if (strcmp(infos.items[i].id, id) != 0) continue;
    *found = true;
    EXPECT_STR(infos.items[i].name, "life");
    EXPECT_STR(infos.items[i].ns, NS);
    EXPECT_STR(posts_env_state_name(infos.items[i].state), "created");
    EXPECT_STR(posts_env_info_label(&infos.items[i], "tier"), "ns");
  }
  n = infos.n;
  posts_env_infos_cleanup(&infos);
  return n;
}

/* create → CREATED (Pending for ever: no kubelet runs here), inspect,
 * labels round-trip with the runtime's hidden, list by namespace and
 * selector, remove → gone. */
static void lifecycle(void **state) {
  (void)state;
  posts_label labels[] = {{SUITE, "runtime_k8s"}, {"tier", "ns"}, {"tenant", "alice"}};
  posts_label bob_labels[] = {{SUITE, "runtime_k8s"}, {"tenant", "bob"}};
  posts_env_spec spec = spec_for("life"), bob = spec_for("bob");
  posts_env_info info = {0};
  posts_err err = {0};
  char id[POSTS_ENV_ID_MAX], bob_id[POSTS_ENV_ID_MAX];
  bool found;
  spec.labels = labels;
  spec.n_labels = 3;
  bob.labels = bob_labels;
  bob.n_labels = 2;
  bob.ns = NS_B;

  EXPECT_RC(posts_env_create(rt, &spec, id, &err), 0, &err);
  EXPECT_STR(id, NS "/life");
  EXPECT_RC(posts_env_inspect(rt, id, &info, &err), 0, &err);
  EXPECT_STR(info.id, id);
  EXPECT_STR(info.ns, NS);
  EXPECT_STR(info.name, "life");
  EXPECT_STR(info.owner, "");
  EXPECT_STR(info.image, IMAGE);
  EXPECT_STR(posts_env_state_name(info.state), "created"); /* Pending: no kubelet here */
  assert_int_equal(info.pid, 0);
  assert_int_equal(info.exit_code, 0);
  /* The uid the API server gave it; no container id until it runs. */
  assert_true(info.pod_uid && strlen(info.pod_uid) == 36);
  assert_null(info.container_id);
  EXPECT_STR(posts_env_info_label(&info, "tenant"), "alice");
  EXPECT_STR(posts_env_info_label(&info, SUITE), "runtime_k8s");
  assert_null(posts_env_info_label(&info, "outpost.runtime/namespace"));
  assert_null(posts_env_info_label(&info, "outpost.runtime/network"));
  assert_null(posts_env_info_label(&info, "app.kubernetes.io/managed-by"));
  assert_int_equal(info.n_labels, 3);
  assert_true(info.created > time(NULL) - 600 && info.created <= time(NULL) + 5);
  posts_env_info_cleanup(&info);

  /* start only checks the pod is there (this runtime does not wait). */
  EXPECT_RC(posts_env_start(rt, id, &err), 0, &err);

  EXPECT_RC(posts_env_create(rt, &bob, bob_id, &err), 0, &err);
  EXPECT_STR(bob_id, NS_B "/bob");
  assert_int_equal(count_listed(NS, NULL, NULL, id, &found), 1);
  assert_true(found);
  assert_int_equal(count_listed(NS, "tenant", "alice", id, &found), 1);
  assert_true(found);
  assert_int_equal(count_listed(NS, "tier", NULL, id, &found), 1);
  assert_true(found);
  assert_int_equal(count_listed(NS, "tenant", "bob", id, &found), 0);
  assert_int_equal(count_listed(NS_B, "tenant", "bob", id, &found), 1);
  assert_false(found);
  assert_int_equal(count_listed(NULL, "tenant", NULL, id, &found), 2); /* every namespace */
  assert_true(found);
  assert_int_equal(count_listed("optest-no-such-ns", NULL, NULL, id, &found), 0);

  /* Not running: removed without force. */
  EXPECT_RC(posts_env_remove(rt, id, false, &err), 0, &err);
  EXPECT_RC(posts_env_inspect(rt, id, &info, &err), -ENOENT, &err);
  assert_int_equal(err.status, 404);
  posts_env_info_cleanup(&info);
  EXPECT_RC(posts_env_remove(rt, bob_id, true, &err), 0, &err);
}

/* The pod as the API server stored it: least privilege and limits always. */
static void stored_spec(void **state) {
  (void)state;
  const char *const caps[] = {"NET_BIND_SERVICE", NULL};
  posts_k8s_config cfg;
  posts_env_spec spec = spec_for("locked"), plain = spec_for("plain");
  posts_err err = {0};
  char id[POSTS_ENV_ID_MAX], plain_id[POSTS_ENV_ID_MAX];
  load(&cfg, NULL);
  cfg.run_as_user = 1000;
  cfg.start_timeout_ms = -1;
  cfg.node_name = strdup("node-a");
  posts_runtime *r = runtime_of(&cfg);
  posts_k8s_config_cleanup(&cfg);

  spec.capabilities = caps;
  spec.memory_bytes = 96 << 20;
  spec.nano_cpus = 500000000;
  spec.read_only_root = true;
  spec.shared_host_path = "/srv/course";
  spec.shared_path = "/course";
  spec.run_as_user = 2000; /* the template's user over the configuration's */
  spec.run_as_group = 3000;
  EXPECT_RC(posts_env_create(r, &spec, id, &err), 0, &err);
  cJSON *pod = stored(r, id);
  EXPECT_STR(
      cJSON_GetStringValue(res_get_key(res_get(pod, "metadata.labels"), "outpost.runtime/network")),
      "none");
  EXPECT_STR(cJSON_GetStringValue(
                 res_get_key(res_get(pod, "metadata.labels"), "app.kubernetes.io/managed-by")),
             "outpost");
  EXPECT_STR(str_at(pod, "spec.restartPolicy"), "Never");
  EXPECT_STR(str_at(pod, "spec.nodeName"), "node-a");
  assert_true(cJSON_IsFalse(res_get(pod, "spec.automountServiceAccountToken")));
  assert_true(cJSON_IsFalse(res_get(pod, "spec.enableServiceLinks")));
  EXPECT_STR(str_at(pod, "spec.securityContext.seccompProfile.type"), "RuntimeDefault");
  assert_int_equal(res_get(pod, "spec.securityContext.runAsUser")->valueint, 2000);
  assert_int_equal(res_get(pod, "spec.securityContext.runAsGroup")->valueint, 3000);
  assert_true(cJSON_IsTrue(res_get(pod, "spec.securityContext.runAsNonRoot")));
  const cJSON *c = res_get(pod, "spec.containers.0");
  assert_int_equal(cJSON_GetArraySize(res_get(pod, "spec.containers")), 1);
  EXPECT_STR(str_at(c, "name"), "lab");
  EXPECT_STR(str_at(c, "image"), IMAGE);
  EXPECT_STR(str_at(c, "args.0"), "sleep"); /* the image's CMD replaced, its ENTRYPOINT kept */
  EXPECT_STR(str_at(c, "args.1"), "infinity");
  assert_null(res_get(c, "command"));
  assert_true(cJSON_IsFalse(res_get(c, "securityContext.allowPrivilegeEscalation")));
  assert_true(cJSON_IsFalse(res_get(c, "securityContext.privileged")));
  assert_true(cJSON_IsTrue(res_get(c, "securityContext.readOnlyRootFilesystem")));
  EXPECT_STR(str_at(c, "securityContext.seccompProfile.type"), "RuntimeDefault");
  EXPECT_STR(str_at(c, "securityContext.capabilities.drop.0"), "ALL");
  assert_int_equal(cJSON_GetArraySize(res_get(c, "securityContext.capabilities.drop")), 1);
  EXPECT_STR(str_at(c, "securityContext.capabilities.add.0"), "NET_BIND_SERVICE");
  assert_int_equal(cJSON_GetArraySize(res_get(c, "securityContext.capabilities.add")), 1);
  /* Quantities as the API server stored them: 96 MiB, half a CPU. */
  EXPECT_STR(str_at(c, "resources.limits.cpu"), "500m");
  EXPECT_STR(str_at(c, "resources.limits.memory"), "96Mi");
  EXPECT_STR(str_at(c, "resources.requests.cpu"), "500m");
  EXPECT_STR(str_at(c, "resources.requests.memory"), "96Mi");
  EXPECT_STR(str_at(c, "volumeMounts.0.mountPath"), "/course");
  assert_true(cJSON_IsTrue(res_get(c, "volumeMounts.0.readOnly")));
  EXPECT_STR(str_at(pod, "spec.volumes.0.hostPath.path"), "/srv/course");
  EXPECT_STR(str_at(pod, "spec.volumes.0.hostPath.type"), "Directory");
  cJSON_Delete(pod);

  /* No limits in the spec: the configuration's defaults (1 CPU, 1 GiB);
   * network allowed: no network=none label; no capabilities: none added;
   * no user: the configuration's. */
  plain.network = true;
  EXPECT_RC(posts_env_create(r, &plain, plain_id, &err), 0, &err);
  pod = stored(r, plain_id);
  assert_int_equal(res_get(pod, "spec.securityContext.runAsUser")->valueint, 1000);
  assert_int_equal(res_get(pod, "spec.securityContext.runAsGroup")->valueint, 1000);
  assert_true(cJSON_IsTrue(res_get(pod, "spec.securityContext.runAsNonRoot")));
  c = res_get(pod, "spec.containers.0");
  EXPECT_STR(str_at(c, "resources.limits.cpu"), "1");
  EXPECT_STR(str_at(c, "resources.limits.memory"), "1Gi");
  assert_null(res_get(c, "securityContext.capabilities.add"));
  assert_true(cJSON_IsFalse(res_get(c, "securityContext.readOnlyRootFilesystem")));
  assert_null(res_get_key(res_get(pod, "metadata.labels"), "outpost.runtime/network"));
  cJSON_Delete(pod);

  /* The namespace, and its policy that denies pods labelled network=none
   * every ingress and egress. */
  static const long ok[] = {200, 0};
  cJSON *obj;
  EXPECT_RC(posts__k8s_call((k8s *)r, "GET", "/api/v1/namespaces/" NS, NULL, NULL, ok, &obj, &err),
            0, &err);
  EXPECT_STR(cJSON_GetStringValue(
                 res_get_key(res_get(obj, "metadata.labels"), "app.kubernetes.io/managed-by")),
             "outpost");
  cJSON_Delete(obj);
  EXPECT_RC(posts__k8s_call((k8s *)r, "GET",
                            "/apis/networking.k8s.io/v1/namespaces/" NS
                            "/networkpolicies/outpost-no-network",
                            NULL, NULL, ok, &obj, &err),
            0, &err);
  EXPECT_STR(cJSON_GetStringValue(res_get_key(res_get(obj, "spec.podSelector.matchLabels"),
                                              "outpost.runtime/network")),
             "none");
  EXPECT_STR(str_at(obj, "spec.policyTypes.0"), "Ingress");
  EXPECT_STR(str_at(obj, "spec.policyTypes.1"), "Egress");
  assert_null(res_get(obj, "spec.ingress")); /* no rule: nothing allowed */
  assert_null(res_get(obj, "spec.egress"));
  cJSON_Delete(obj);

  EXPECT_RC(posts_env_remove(r, id, true, &err), 0, &err);
  EXPECT_RC(posts_env_remove(r, plain_id, true, &err), 0, &err);
  posts_runtime_free(r);
}

/* A pod on a node (spec.nodeName) is deleted gracefully: stop leaves it
 * REMOVING until its kubelet confirms — here never, as none runs — and a
 * forced remove takes it at once. An unscheduled pod goes at once. */
static void stop_and_removing(void **state) {
  (void)state;
  posts_k8s_config cfg;
  posts_env_spec spec = spec_for("stopped");
  posts_env_info info = {0};
  posts_err err = {0};
  char id[POSTS_ENV_ID_MAX];
  load(&cfg, NULL);
  cfg.start_timeout_ms = -1;
  cfg.node_name = strdup("node-a");
  posts_runtime *r = runtime_of(&cfg);
  posts_k8s_config_cleanup(&cfg);

  EXPECT_RC(posts_env_create(r, &spec, id, &err), 0, &err);
  EXPECT_RC(posts_env_stop(r, id, 30, &err), 0, &err);
  EXPECT_RC(posts_env_inspect(r, id, &info, &err), 0, &err);
  EXPECT_STR(posts_env_state_name(info.state), "removing");
  posts_env_info_cleanup(&info);
  cJSON *pod = stored(r, id);
  assert_int_equal(res_get(pod, "metadata.deletionGracePeriodSeconds")->valueint, 30);
  cJSON_Delete(pod);
  EXPECT_RC(posts_env_start(r, id, &err), 0, &err); /* still there */
  EXPECT_RC(posts_env_remove(r, id, true, &err), 0, &err);
  EXPECT_RC(posts_env_inspect(r, id, &info, &err), -ENOENT, &err);
  EXPECT_RC(posts_env_remove(r, id, true, &err), -ENOENT, &err); /* the pool takes it as done */
  posts_env_info_cleanup(&info);

  /* Unscheduled (no nodeName): stop deletes it at once. */
  spec = spec_for("stopped-now");
  EXPECT_RC(posts_env_create(rt, &spec, id, &err), 0, &err);
  EXPECT_RC(posts_env_stop(rt, id, 10, &err), 0, &err);
  EXPECT_RC(posts_env_inspect(rt, id, &info, &err), -ENOENT, &err);
  posts_env_info_cleanup(&info);
  posts_runtime_free(r);
}

/* start waits for the pod to run: here it never does, so -ETIMEDOUT with
 * the reason. */
static void start_waits(void **state) {
  (void)state;
  posts_k8s_config cfg;
  posts_env_spec spec = spec_for("waits");
  posts_err err = {0};
  char id[POSTS_ENV_ID_MAX];
  load(&cfg, NULL);
  cfg.start_timeout_ms = 1500;
  posts_runtime *r = runtime_of(&cfg);
  posts_k8s_config_cleanup(&cfg);
  EXPECT_RC(posts_env_create(r, &spec, id, &err), 0, &err);
  int64_t t0 = clock_mono_ms();
  EXPECT_RC(posts_env_start(r, id, &err), -ETIMEDOUT, &err);
  int64_t took = clock_mono_ms() - t0;
  if (took < 1400 || took > 6000) fail_msg("gave up after %lld ms, want ~1500", (long long)took);
  EXPECT_HAS(err.msg, "still Pending");
  EXPECT_HAS(err.msg, "not scheduled");
  EXPECT_RC(posts_env_start(r, UNKNOWN, &err), -ENOENT, &err);
  EXPECT_RC(posts_env_remove(r, id, true, &err), 0, &err);
  posts_runtime_free(r);
}

/* A claim is the owner label, set under the resourceVersion precondition. */
static void claim_owner(void **state) {
  (void)state;
  posts_env_spec spec = spec_for("claimed"), unnamed = spec_for(NULL);
  posts_env_info info = {0};
  posts_env_infos infos = {0};
  posts_label sel[] = {{SUITE, "runtime_k8s"}};
  posts_err err = {0};
  char id[POSTS_ENV_ID_MAX], id2[POSTS_ENV_ID_MAX];

  EXPECT_RC(posts_env_create(rt, &spec, id, &err), 0, &err);
  EXPECT_RC(posts_env_claim(rt, id, "alice", &err), 0, &err);
  EXPECT_RC(posts_env_inspect(rt, id, &info, &err), 0, &err);
  EXPECT_STR(info.owner, "alice");
  EXPECT_STR(info.name, "claimed");
  assert_null(posts_env_info_label(&info, "outpost.dev/owner")); /* the owner, not a label */
  assert_int_equal(info.n_labels, 1);
  posts_env_info_cleanup(&info);
  cJSON *pod = stored(rt, id);
  EXPECT_STR(
      cJSON_GetStringValue(res_get_key(res_get(pod, "metadata.labels"), "outpost.dev/owner")),
      "alice");
  /* No user in the spec nor the configuration: as the image says. */
  assert_null(res_get(pod, "spec.securityContext.runAsUser"));
  assert_null(res_get(pod, "spec.securityContext.runAsNonRoot"));
  cJSON_Delete(pod);

  EXPECT_RC(posts_env_claim(rt, id, "alice", &err), 0, &err); /* again: fine */
  EXPECT_RC(posts_env_claim(rt, id, "bob", &err), -EBUSY, &err);
  EXPECT_HAS(err.msg, "alice");
  EXPECT_RC(posts_env_claim(rt, UNKNOWN, "bob", &err), -ENOENT, &err);
  EXPECT_RC(posts_env_claim(rt, id, "Bob", &err), -EINVAL, &err);

  /* A name the API server picked (generateName). */
  EXPECT_RC(posts_env_create(rt, &unnamed, id2, &err), 0, &err);
  EXPECT_HAS(id2, NS "/env-");
  EXPECT_RC(posts_env_claim(rt, id2, "carol.course-1", &err), 0, &err);

  EXPECT_RC(posts_env_list(rt, NS, sel, 1, &infos, &err), 0, &err);
  int seen = 0;
  for (size_t i = 0; i < infos.n; i++) {
    if (strcmp(infos.items[i].id, id) == 0) {
      EXPECT_STR(infos.items[i].owner, "alice");
      seen++;
    } else if (strcmp(infos.items[i].id, id2) == 0) {
      EXPECT_STR(infos.items[i].owner, "carol.course-1");
      seen++;
    }
  }
  posts_env_infos_cleanup(&infos);
  assert_int_equal(seen, 2);
  /* Selecting by owner, as an operator or a policy would. */
  posts_label by_owner[] = {{SUITE, "runtime_k8s"}, {"outpost.dev/owner", "alice"}};
  EXPECT_RC(posts_env_list(rt, NS, by_owner, 2, &infos, &err), 0, &err);
  assert_int_equal(infos.n, 1);
  posts_env_infos_cleanup(&infos);

  EXPECT_RC(posts_env_remove(rt, id, true, &err), 0, &err);
  EXPECT_RC(posts_env_claim(rt, id, "alice", &err), -ENOENT, &err);
  EXPECT_RC(posts_env_remove(rt, id2, true, &err), 0, &err);

  /* A pod not made through this API is not claimed. */
  static const long made[] = {201, 0};
  cJSON *foreign = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":"
                               "\"foreign\"},\"spec\":{\"containers\":[{\"name\":\"x\",\"image\":"
                               "\"busybox\"}]}}");
  EXPECT_RC(posts__k8s_call((k8s *)rt, "POST", "/api/v1/namespaces/" NS "/pods", NULL, foreign,
                            made, NULL, &err),
            0, &err);
  cJSON_Delete(foreign);
  EXPECT_RC(posts_env_claim(rt, NS "/foreign", "alice", &err), -ENOENT, &err);
  EXPECT_HAS(err.msg, "not an environment of this API");
  EXPECT_RC(posts_env_inspect(rt, NS "/foreign", &info, &err), 0, &err);
  EXPECT_STR(info.ns, "");
  posts_env_info_cleanup(&info);
  EXPECT_RC(posts_env_remove(rt, NS "/foreign", true, &err), 0, &err);
}

#define RACERS 8
#define ROUNDS 10

typedef struct racer {
  const char *id;
  char owner[16];
  pthread_barrier_t *go;
  int rc;
  posts_err err;
} racer;

static void *race(void *arg) {
  racer *rc = arg;
  pthread_barrier_wait(rc->go);
  rc->rc = posts_env_claim(rt, rc->id, rc->owner, &rc->err);
  return NULL;
}

/* Claims racing from many threads: exactly one owner wins each time, every
 * other claim is -EBUSY — some of them because their patch carried a
 * resourceVersion that had gone stale (409 Conflict) between their read and
 * their write. */
static void claim_race(void **state) {
  (void)state;
  int stale = 0;
  for (int round = 0; round < ROUNDS; round++) {
    char name[32], id[POSTS_ENV_ID_MAX];
    posts_env_spec spec;
    posts_env_info info = {0};
    posts_err err = {0};
    racer rs[RACERS];
    pthread_t ts[RACERS];
    pthread_barrier_t go;
    int won = -1;
    snprintf(name, sizeof name, "race-%d", round);
    spec = spec_for(name);
    EXPECT_RC(posts_env_create(rt, &spec, id, &err), 0, &err);
    pthread_barrier_init(&go, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
      rs[i] = (racer){.id = id, .go = &go};
      snprintf(rs[i].owner, sizeof rs[i].owner, "tenant-%d", i);
      pthread_create(&ts[i], NULL, race, &rs[i]);
    }
    for (int i = 0; i < RACERS; i++) pthread_join(ts[i], NULL);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < RACERS; i++) {
      if (rs[i].rc == 0) {
        if (won >= 0) fail_msg("round %d: tenant-%d and tenant-%d both won", round, won, i);
        won = i;
      } else {
        EXPECT_RC(rs[i].rc, -EBUSY, &rs[i].err);
        stale += strstr(rs[i].err.msg, "409 Conflict") != NULL;
      }
    }
    assert_true(won >= 0);
    EXPECT_RC(posts_env_inspect(rt, id, &info, &err), 0, &err);
    EXPECT_STR(info.owner, rs[won].owner);
    posts_env_info_cleanup(&info);
    EXPECT_RC(posts_env_remove(rt, id, true, &err), 0, &err);
  }
  print_message("claim race: %d of %d losing claims met a stale resourceVersion (409)\n", stale,
                ROUNDS * (RACERS - 1));
  if (stale == 0) fail_msg("no claim lost on a stale resourceVersion: the race was not run");
}

typedef struct watched {
  pthread_mutex_t mu;
  char log[2048];
  int n;
  int rc;
  bool done;
  posts_err err;
} watched;

static int on_change(void *arg, posts_watch_type type, const posts_env_info *info) {
  watched *w = arg;
  pthread_mutex_lock(&w->mu);
  snprintf(w->log + strlen(w->log), sizeof w->log - strlen(w->log), "%s%s %s%s%s/%s",
           w->n++ ? ", " : "", posts_watch_type_name(type), info->name, info->owner[0] ? "@" : "",
           info->owner, posts_env_state_name(info->state));
  bool end = type == POSTS_WATCH_DELETED && strcmp(info->name, "w1") == 0;
  pthread_mutex_unlock(&w->mu);
  return end ? 42 : 0;
}

static void *watch_thread(void *arg) {
  watched *w = arg;
  posts_label sel[] = {{SUITE, "runtime_k8s"}, {"watch", "yes"}};
  int rc = posts_env_watch(rt, NS, sel, 2, on_change, w, NULL, &w->err);
  pthread_mutex_lock(&w->mu);
  w->rc = rc;
  w->done = true;
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

/* Waits up to 10 s for the watch's log to have n entries. */
static void wait_events(watched *w, int n) {
  for (int i = 0; i < 1000; i++) {
    pthread_mutex_lock(&w->mu);
    bool there = w->n >= n || w->done;
    pthread_mutex_unlock(&w->mu);
    if (there) return;
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  }
  fail_msg("the watch saw %d events, want %d: %s", w->n, n, w->log);
}

/* A watch sees what is there, then ADDED, MODIFIED (the claim), DELETED, in
 * order; what its selector leaves out, it does not see. */
static void watch_live(void **state) {
  (void)state;
  posts_label labels[] = {{SUITE, "runtime_k8s"}, {"watch", "yes"}};
  posts_env_spec pre = spec_for("w0"), w1 = spec_for("w1"), other = spec_for("w-other");
  watched w = {.mu = PTHREAD_MUTEX_INITIALIZER};
  posts_err err = {0};
  char pre_id[POSTS_ENV_ID_MAX], id[POSTS_ENV_ID_MAX], other_id[POSTS_ENV_ID_MAX];
  pthread_t t;
  pre.labels = w1.labels = labels;
  pre.n_labels = w1.n_labels = 2;
  EXPECT_RC(posts_env_create(rt, &pre, pre_id, &err), 0, &err);
  pthread_create(&t, NULL, watch_thread, &w);
  wait_events(&w, 1);                                               /* listed: the watch is on */
  EXPECT_RC(posts_env_create(rt, &other, other_id, &err), 0, &err); /* not selected */
  EXPECT_RC(posts_env_create(rt, &w1, id, &err), 0, &err);
  wait_events(&w, 2);
  EXPECT_RC(posts_env_claim(rt, id, "alice", &err), 0, &err);
  wait_events(&w, 3);
  EXPECT_RC(posts_env_remove(rt, id, true, &err), 0, &err);
  pthread_join(t, NULL);
  EXPECT_RC(w.rc, 42, &w.err);
  /* Even a delete with grace period 0 first marks the pod (REMOVING). */
  EXPECT_STR(w.log, "added w0/created, added w1/created, modified w1@alice/created, "
                    "modified w1@alice/removing, deleted w1@alice/removing");
  EXPECT_RC(posts_env_remove(rt, pre_id, true, &err), 0, &err);
  EXPECT_RC(posts_env_remove(rt, other_id, true, &err), 0, &err);
}

/* The errors callers branch on, with the API server's status and message. */
static void errors(void **state) {
  (void)state;
  posts_env_spec spec = spec_for("twin");
  posts_env_info info = {0};
  posts_err err = {0};
  char id[POSTS_ENV_ID_MAX], id2[POSTS_ENV_ID_MAX];

  /* 404 */
  EXPECT_RC(posts_env_inspect(rt, UNKNOWN, &info, &err), -ENOENT, &err);
  assert_int_equal(err.status, 404);
  EXPECT_HAS(err.msg, "not found");
  EXPECT_RC(posts_env_start(rt, UNKNOWN, &err), -ENOENT, &err);
  EXPECT_RC(posts_env_stop(rt, UNKNOWN, 0, &err), -ENOENT, &err);
  EXPECT_RC(posts_env_remove(rt, UNKNOWN, true, &err), -ENOENT, &err);
  EXPECT_RC(posts_env_remove(rt, UNKNOWN, false, &err), -ENOENT, &err);
  posts_env_info_cleanup(&info);

  /* 409 AlreadyExists; the same name in another namespace is another pod. */
  EXPECT_RC(posts_env_create(rt, &spec, id, &err), 0, &err);
  EXPECT_RC(posts_env_create(rt, &spec, id2, &err), -EEXIST, &err);
  assert_int_equal(err.status, 409);
  EXPECT_HAS(err.msg, "already exists");
  spec.ns = NS_B;
  EXPECT_RC(posts_env_create(rt, &spec, id2, &err), 0, &err);
  assert_string_not_equal(id, id2);
  EXPECT_RC(posts_env_remove(rt, id2, true, &err), 0, &err);
  EXPECT_RC(posts_env_remove(rt, id, true, &err), 0, &err);

  /* 422: a name runtime.c lets through and the API server does not. */
  spec = spec_for("a..b");
  EXPECT_RC(posts_env_create(rt, &spec, id, &err), -EINVAL, &err);
  assert_int_equal(err.status, 422);
  EXPECT_HAS(err.msg, "a..b");

  /* 403: the limited user may do nothing, and is told so for each call. */
  posts_k8s_config cfg;
  posts_env_infos infos = {0};
  load(&cfg, kubeconfig_lim);
  posts_runtime *lim = runtime_of(&cfg);
  posts_k8s_config_cleanup(&cfg);
  spec = spec_for("forbidden");
  EXPECT_RC(posts_env_create(lim, &spec, id, &err), -EACCES, &err); /* the policy, first */
  assert_int_equal(err.status, 403);
  EXPECT_HAS(err.msg, "NetworkPolicy");
  EXPECT_HAS(err.msg, "forbidden");
  spec.network = true; /* no policy needed: the pod itself is refused */
  EXPECT_RC(posts_env_create(lim, &spec, id, &err), -EACCES, &err);
  assert_int_equal(err.status, 403);
  EXPECT_HAS(err.msg, "pods is forbidden");
  EXPECT_RC(posts_env_list(lim, NS, NULL, 0, &infos, &err), -EACCES, &err);
  EXPECT_HAS(err.msg, "outpost-limited");
  EXPECT_RC(posts_env_list(lim, NULL, NULL, 0, &infos, &err), -EACCES, &err);
  EXPECT_RC(posts_env_inspect(lim, NS "/x", &info, &err), -EACCES, &err);
  EXPECT_RC(posts_env_claim(lim, NS "/x", "alice", &err), -EACCES, &err);
  EXPECT_RC(posts_env_remove(lim, NS "/x", true, &err), -EACCES, &err);
  EXPECT_RC(posts_env_watch(lim, NS, NULL, 0, on_change, NULL, NULL, &err), -EACCES, &err);
  posts_env_info_cleanup(&info);
  posts_runtime_free(lim);
}

/* A runtime with a namespace prefix: Outpost's namespace "optest-k8s" is
 * Kubernetes's "op-optest-k8s". */
static void ns_prefix(void **state) {
  (void)state;
  posts_k8s_config cfg;
  posts_env_spec spec = spec_for("prefixed");
  posts_env_info info = {0};
  posts_env_infos infos = {0};
  posts_label sel[] = {{SUITE, "runtime_k8s"}};
  posts_err err = {0};
  char id[POSTS_ENV_ID_MAX];
  load(&cfg, NULL);
  free(cfg.ns_prefix);
  cfg.ns_prefix = strdup("op-");
  cfg.start_timeout_ms = -1;
  posts_runtime *r = runtime_of(&cfg);
  posts_k8s_config_cleanup(&cfg);
  EXPECT_RC(posts_env_create(r, &spec, id, &err), 0, &err);
  EXPECT_STR(id, "op-" NS "/prefixed");
  EXPECT_RC(posts_env_inspect(r, id, &info, &err), 0, &err);
  EXPECT_STR(info.ns, NS);
  posts_env_info_cleanup(&info);
  EXPECT_RC(posts_env_list(r, NS, sel, 1, &infos, &err), 0, &err);
  assert_int_equal(infos.n, 1);
  EXPECT_STR(infos.items[0].id, id);
  posts_env_infos_cleanup(&infos);
  EXPECT_RC(posts_env_remove(r, id, true, &err), 0, &err);
  posts_runtime_free(r);
}

/* TLS: only the configured CA is trusted, insecure trusts anything, and a
 * client certificate signed by the API server's client CA authenticates
 * (kube_up.sh gives --client-ca-file its own CA, whose key is in pki/). */
static void tls_and_client_cert(void **state) {
  (void)state;
  char cmd[4096], path[700], ebuf[256];
  posts_k8s_config cfg;
  posts_err err = {0};

  /* A CA that signed nothing of the server's. */
  snprintf(cmd, sizeof cmd,
           "cd '%s' && openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=other-ca "
           "-keyout other.key -out other.crt 2>/dev/null",
           tmp_dir);
  assert_int_equal(system(cmd), 0);
  load(&cfg, NULL);
  snprintf(path, sizeof path, "%s/other.crt", tmp_dir);
  size_t n;
  free(cfg.ca_pem);
  assert_int_equal(posts__k8s_read_file(path, 1 << 20, &cfg.ca_pem, &n), 0);
  posts_runtime *r = runtime_of(&cfg);
  EXPECT_RC(posts_runtime_ping(r, &err), -EPROTO, &err);
  EXPECT_HAS(err.msg, "certificate");
  posts_runtime_free(r);
  cfg.insecure = true;
  r = runtime_of(&cfg);
  EXPECT_RC(posts_runtime_ping(r, &err), 0, &err);
  posts_runtime_free(r);
  posts_k8s_config_cleanup(&cfg);

  snprintf(path, sizeof path, "%s/pki/ca.key", kube_dir);
  if (access(path, R_OK) != 0) {
    print_message("client certificate: skipped, %s is not readable\n", path);
    return;
  }
  /* O=system:masters: the certificate's user is an administrator. The
   * kubeconfig names the certificate by file and has the key inline. */
  snprintf(cmd, sizeof cmd,
           "cd '%s' && openssl req -newkey rsa:2048 -nodes -subj '/O=system:masters/CN=cert-admin' "
           "-keyout client.key -out client.csr 2>/dev/null && "
           "openssl x509 -req -in client.csr -CA '%s/pki/ca.crt' -CAkey '%s/pki/ca.key' "
           "-CAcreateserial -CAserial client.srl -days 1 -out client.crt 2>/dev/null && "
           "{ echo 'apiVersion: v1'; echo 'kind: Config'; echo 'current-context: cert';"
           "  echo 'clusters: [{name: c, cluster: {server: \"'$(cat '%s/server')'\", "
           "certificate-authority: \"%s/ca.crt\"}}]';"
           "  echo 'users: [{name: u, user: {client-certificate: client.crt, "
           "client-key-data: '$(base64 -w0 client.key)'}}]';"
           "  echo 'contexts: [{name: cert, context: {cluster: c, user: u}}]'; } > kubeconfig-cert",
           tmp_dir, kube_dir, kube_dir, kube_dir, kube_dir);
  assert_int_equal(system(cmd), 0);
  snprintf(path, sizeof path, "%s/kubeconfig-cert", tmp_dir);
  assert_int_equal(posts_k8s_config_init(&cfg), 0);
  if (posts_k8s_config_from_kubeconfig(&cfg, path, NULL, ebuf, sizeof ebuf) < 0)
    fail_msg("%s", ebuf);
  assert_null(cfg.token);
  assert_non_null(cfg.client_cert_pem);
  r = runtime_of(&cfg);
  posts_k8s_config_cleanup(&cfg);
  posts_env_infos infos = {0};
  EXPECT_RC(posts_env_list(r, NS, NULL, 0, &infos, &err), 0, &err); /* allowed: authenticated */
  posts_env_infos_cleanup(&infos);
  posts_runtime_free(r);
}

/* ---------------------------------------------------------------- main */

static int offline_setup(void **state) {
  (void)state;
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/outpost-test-k8s-%d", (int)getpid());
  return mkdir(tmp_dir, 0700);
}

static int offline_teardown(void **state) {
  char cmd[200];
  (void)state;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  return system(cmd) == 0 ? 0 : -1;
}

static int live_setup(void **state) {
  posts_k8s_config cfg;
  if (offline_setup(state) < 0) return -1;
  load(&cfg, NULL);
  cfg.start_timeout_ms = -1;
  rt = runtime_of(&cfg);
  posts_k8s_config_cleanup(&cfg);
  drop_namespaces();
  return 0;
}

static int live_teardown(void **state) {
  drop_namespaces();
  posts_runtime_free(rt);
  return offline_teardown(state);
}

int main(int argc, char **argv) {
  const struct CMUnitTest offline[] = {
      cmocka_unit_test(kubeconfig_parsing),
      cmocka_unit_test(kubeconfig_errors),
      cmocka_unit_test(in_cluster),
      cmocka_unit_test(refused_locally),
      cmocka_unit_test(watch_recovers),
      cmocka_unit_test(watch_stops),
      cmocka_unit_test(pod_ids),
  };
  const struct CMUnitTest live[] = {
      cmocka_unit_test(ping),
      cmocka_unit_test(lifecycle),
      cmocka_unit_test(stored_spec),
      cmocka_unit_test(stop_and_removing),
      cmocka_unit_test(start_waits),
      cmocka_unit_test(claim_owner),
      cmocka_unit_test(claim_race),
      cmocka_unit_test(watch_live),
      cmocka_unit_test(errors),
      cmocka_unit_test(ns_prefix),
      cmocka_unit_test(tls_and_client_cert),
  };
  if (argc > 1 && strcmp(argv[1], "--offline") == 0)
    return cmocka_run_group_tests_name("offline", offline, offline_setup, offline_teardown);
  if (argc < 3 || access(argv[1], R_OK) != 0 || access(argv[2], R_OK) != 0) {
    printf("SKIP: no kubeconfig (usage: %s KUBECONFIG KUBECONFIG-LIMITED, as scripts/kube_up.sh "
           "writes them; or --offline)\n",
           argv[0]);
    return 77;
  }
  kubeconfig = argv[1];
  kubeconfig_lim = argv[2];
  const char *slash = strrchr(kubeconfig, '/');
  snprintf(kube_dir, sizeof kube_dir, "%.*s", slash ? (int)(slash - kubeconfig) : 1,
           slash ? kubeconfig : ".");
  return cmocka_run_group_tests_name("kube-apiserver", live, live_setup, live_teardown);
}
