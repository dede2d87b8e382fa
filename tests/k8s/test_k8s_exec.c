/*
 * test_k8s_exec.c — posts_env_exec on Kubernetes (posts/k8s_exec.c): pods/exec
 * over a WebSocket that libcurl only connects.
 *
 * Two groups, two CTest entries:
 *   --offline   no cluster: SHA-1 and the handshake's accept key, the
 *               reading of server frames (7-, 16- and 64-bit lengths,
 *               fragments with control frames between them, any split of
 *               the bytes) and what RFC 6455 forbids, our masked frames,
 *               the v4 Status as an exit code, and what exec refuses before
 *               any request;
 *   KUBE_DIR PYTHON FAKE_KUBELET
 *               the real kube-apiserver of scripts/kube_up.sh (KUBE_DIR),
 *               which passes each exec through to a FAKE kubelet
 *               (fake_kubelet.py, started here with PYTHON): a Node object
 *               at 127.0.0.1 and the fake's port, pods pinned to it whose
 *               status this test sets to Running (as the fake kubelet of
 *               test_node_post_k8s.py does). The command really runs, on
 *               this host. Exits 77 (skipped) when KUBE_DIR has no cluster.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock.h"
#include "tests/posts/rt_expect.h"

#include "posts/k8s_int.h"
#include "posts/runtime_k8s.h"

#define NS    "optest-k8s-exec"
#define NODE  "outpost-fake-kubelet-node"
#define IMAGE "localhost/outpost-lab-c:latest"

static char tmp_dir[128];
static char kube_dir[256];  /* argv[1], absolute: commands run elsewhere */
static posts_runtime *rt;   /* the admin's, pods pinned to NODE */
static pid_t fake_pid;      /* the fake kubelet */
static int fake_stdin = -1; /* closing it ends the fake kubelet */
static int fake_port;

/* ------------------------------------------------------------- helpers */

/* ======================================================= offline group */

static void hex(const unsigned char *d, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

/* FIPS 180 examples (one block, two blocks of padding, many blocks) and
 * RFC 6455's handshake example. */
static void sha1_and_accept(void **state) {
  (void)state;
  unsigned char sum[20];
  char h[41], acc[29];
  char *million = malloc(1000000);
  assert_non_null(million);
  posts__k8s_sha1("", 0, sum);
  hex(sum, 20, h);
  EXPECT_STR(h, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  posts__k8s_sha1("abc", 3, sum);
  hex(sum, 20, h);
  EXPECT_STR(h, "a9993e364706816aba3e25717850c26c9cd0d89d");
  posts__k8s_sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, sum);
  hex(sum, 20, h);
  EXPECT_STR(h, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  memset(million, 'a', 1000000);
  posts__k8s_sha1(million, 1000000, sum);
  hex(sum, 20, h);
  EXPECT_STR(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  free(million);
  posts__k8s_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", acc);
  EXPECT_STR(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/* What a reading of frames delivered. */
typedef struct rec {
  posts__buf ch[5];
  int ends[5];
  char ctl[512]; /* "op:payload " for each control frame */
  int stop_at;   /* a nonzero return after this many data calls (0: never) */
  int calls;
} rec;

static int rec_data(void *arg, int channel, const char *p, size_t n, bool end) {
  rec *r = arg;
  if (channel < 0 || channel > 4) return 0;
  if (n) posts__buf_put(&r->ch[channel], p, n);
  if (end) r->ends[channel]++;
  return r->stop_at && ++r->calls >= r->stop_at ? 42 : 0;
}

static int rec_control(void *arg, int op, const unsigned char *p, size_t n) {
  rec *r = arg;
  size_t at = strlen(r->ctl);
  snprintf(r->ctl + at, sizeof r->ctl - at, "%d:%.*s ", op, (int)n, (const char *)p);
  return 0;
}

static void rec_free(rec *r) {
  for (int i = 0; i < 5; i++) free(r->ch[i].p);
}

/* Appends a server frame (unmasked, the shortest length) to b. */
static void put_frame(posts__buf *b, bool fin, int op, const char *p, size_t n) {
  unsigned char h[10];
  size_t hl = 2;
  h[0] = (unsigned char)((fin ? 0x80 : 0) | op);
  if (n < 126) {
    h[1] = (unsigned char)n;
  } else if (n < 65536) {
    h[1] = 126;
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
    hl = 4;
  } else {
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    hl = 10;
  }
  posts__buf_put(b, (const char *)h, hl);
  posts__buf_put(b, p, n);
}

/* A channel's message: the channel byte, then text. */
static void put_msg(posts__buf *b, bool fin, int op, int channel, const char *p, size_t n) {
  char *m = malloc(n + 1);
  m[0] = (char)channel;
  memcpy(m + 1, p, n);
  put_frame(b, fin, op, m, n + 1);
  free(m);
}

/* Every kind of frame an exec's server sends, fed at once, a byte at a
 * time and in 7-byte pieces: the same result each time. */
static void frames_read(void **state) {
  (void)state;
  posts__buf s = {.max = 1 << 20}, want_out = {.max = 1 << 20};
  char *big = malloc(70000), e300[300];
  assert_non_null(big);
  for (int i = 0; i < 70000; i++) big[i] = (char)('a' + i % 26);
  memset(e300, 'e', sizeof e300);
  put_msg(&s, true, 2, 1, "", 0); /* "connected" */
  put_msg(&s, true, 2, 1, "hello ", 6);
  put_msg(&s, true, 2, 2, e300, sizeof e300); /* 16-bit length */
  put_msg(&s, true, 2, 1, big, 70000);        /* 64-bit length */
  put_msg(&s, false, 2, 1, "fra", 3);         /* fragmented, */
  put_frame(&s, true, 9, "p1", 2);            /* a ping between fragments, */
  put_frame(&s, false, 0, "gme", 3);          /* a continuation, */
  put_frame(&s, true, 10, "x", 1);            /* a pong, */
  put_frame(&s, false, 0, "", 0);             /* an empty continuation, */
  put_frame(&s, true, 0, "nted", 4);          /* the last one */
  put_msg(&s, true, 1, 2, "T", 1);            /* text frames are data too */
  put_msg(&s, true, 2, 3, "{\"status\":\"Success\"}", 20);
  put_msg(&s, true, 2, 9, "other", 5); /* an unknown channel */
  put_frame(&s, true, 0x8,
            "\x03\xe8"
            "bye",
            5);
  assert_false(s.nomem);
  posts__buf_put(&want_out, "hello ", 6);
  posts__buf_put(&want_out, big, 70000);
  posts__buf_put(&want_out, "fragmented", 10);

  for (size_t piece = 0; piece < 3; piece++) {
    size_t step = piece == 0 ? s.len : piece == 1 ? 1 : 7;
    rec r = {0};
    for (int i = 0; i < 5; i++) r.ch[i].max = 1 << 20;
    k8s_ws ws = {0};
    k8s_ws_sink sink = {rec_data, rec_control, &r};
    posts_err err = {0};
    for (size_t at = 0; at < s.len; at += step) {
      size_t n = s.len - at < step ? s.len - at : step;
      EXPECT_RC(posts__k8s_ws_feed(&ws, s.p + at, n, &sink, &err), 0, &err);
    }
    assert_int_equal(r.ch[1].len, want_out.len);
    assert_memory_equal(r.ch[1].p, want_out.p, want_out.len);
    assert_int_equal(r.ch[2].len, 301);
    assert_memory_equal(r.ch[2].p, e300, 300);
    assert_int_equal(r.ch[2].p[300], 'T');
    EXPECT_STR(r.ch[3].p, "{\"status\":\"Success\"}");
    assert_int_equal(r.ends[1], 4); /* "connected", hello, big, fragmented */
    assert_int_equal(r.ends[2], 2);
    assert_int_equal(r.ends[3], 1);
    EXPECT_STR(r.ctl, "9:p1 10:x 8:\x03\xe8"
                      "bye ");
    rec_free(&r);
  }
  free(s.p);
  free(want_out.p);
  free(big);
}

static void expect_refused(const char *bytes, size_t n, const char *why) {
  rec r = {0};
  k8s_ws ws = {0};
  k8s_ws_sink sink = {rec_data, rec_control, &r};
  posts_err err = {0};
  for (int i = 0; i < 5; i++) r.ch[i].max = 1024;
  EXPECT_RC(posts__k8s_ws_feed(&ws, bytes, n, &sink, &err), -EPROTO, &err);
  EXPECT_HAS(err.msg, why);
  rec_free(&r);
}

/* What RFC 6455 forbids a server, and a sink that stops the reading. */
static void frames_refused(void **state) {
  (void)state;
  expect_refused("\x82\x81"
                 "abcd"
                 "x",
                 7, "masked");
  expect_refused("\xc2\x00", 2, "reserved");
  expect_refused("\x83\x00", 2, "unknown opcode");
  expect_refused("\x89\x7e\x00\x7e", 4, "control frame");
  expect_refused("\x09\x00", 2, "control frame");
  expect_refused("\x80\x01\x01", 3, "continuation");
  expect_refused("\x02\x01\x01\x82\x00", 5, "new message");
  expect_refused("\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 10, "2^63");

  rec r = {.stop_at = 2};
  k8s_ws ws = {0};
  k8s_ws_sink sink = {rec_data, rec_control, &r};
  posts_err err = {0};
  for (int i = 0; i < 5; i++) r.ch[i].max = 1024;
  assert_int_equal(posts__k8s_ws_feed(&ws,
                                      "\x82\x02\x01"
                                      "a\x82\x02\x01"
                                      "b\x82\x02\x01"
                                      "c",
                                      12, &sink, &err),
                   42);
  rec_free(&r);
}

/* Our frames are masked, FIN set, with the payload XORed by the mask; the
 * reading of server frames refuses them. */
static void frames_written(void **state) {
  (void)state;
  static const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
  unsigned char f[6 + 125];
  char payload[125];
  posts_err err = {0};
  rec r = {0};
  k8s_ws ws = {0};
  k8s_ws_sink sink = {rec_data, rec_control, &r};
  size_t n = posts__k8s_ws_frame(f, 8, "\x03\xe9", 2, mask);
  assert_int_equal(n, 8);
  assert_int_equal(f[0], 0x88);
  assert_int_equal(f[1], 0x82);
  assert_memory_equal(f + 2, mask, 4);
  assert_int_equal(f[6] ^ 0x12, 0x03);
  assert_int_equal(f[7] ^ 0x34, 0xe9);
  memset(payload, 'p', sizeof payload);
  n = posts__k8s_ws_frame(f, 10, payload, sizeof payload, mask);
  assert_int_equal(n, 131);
  assert_int_equal(f[1], 0x80 | 125);
  for (size_t i = 0; i < 125; i++) assert_int_equal(f[6 + i] ^ mask[i % 4], 'p');
  EXPECT_RC(posts__k8s_ws_feed(&ws, (const char *)f, n, &sink, &err), -EPROTO, &err);
}

/* The v4 Status as an exit code. */
static void status_codes(void **state) {
  (void)state;
  char msg[256];
  int code = -5;
  const char *ok = "{\"metadata\":{},\"status\":\"Success\"}";
  const char *three = "{\"status\":\"Failure\",\"message\":\"command terminated with non-zero "
                      "exit code: exit status 3\",\"reason\":\"NonZeroExitCode\",\"details\":"
                      "{\"causes\":[{\"reason\":\"ExitCode\",\"message\":\"3\"}]}}";
  const char *missing = "{\"status\":\"Failure\",\"reason\":\"InternalError\",\"message\":"
                        "\"Internal error occurred: error executing command in container: OCI "
                        "runtime exec failed: exec: \\\"nope\\\": executable file not found in "
                        "$PATH: unknown\",\"code\":500}";
  const char *denied = "{\"status\":\"Failure\",\"reason\":\"InternalError\",\"message\":"
                       "\"exec: \\\"/etc\\\": permission denied\"}";
  const char *no_cause = "{\"status\":\"Failure\",\"reason\":\"NonZeroExitCode\"}";
  assert_int_equal(posts__k8s_exec_status(ok, strlen(ok), &code, msg, sizeof msg), 0);
  assert_int_equal(code, 0);
  EXPECT_STR(msg, "");
  assert_int_equal(posts__k8s_exec_status(three, strlen(three), &code, msg, sizeof msg), 0);
  assert_int_equal(code, 3);
  assert_int_equal(posts__k8s_exec_status(missing, strlen(missing), &code, msg, sizeof msg), 1);
  assert_int_equal(code, 127);
  EXPECT_HAS(msg, "executable file not found");
  assert_int_equal(posts__k8s_exec_status(denied, strlen(denied), &code, msg, sizeof msg), 1);
  assert_int_equal(code, 126);
  assert_int_equal(posts__k8s_exec_status(no_cause, strlen(no_cause), &code, msg, sizeof msg), 1);
  assert_int_equal(code, 126);
  assert_int_equal(posts__k8s_exec_status("not json", 8, &code, msg, sizeof msg), -EPROTO);
  assert_int_equal(posts__k8s_exec_status("{}", 2, &code, msg, sizeof msg), -EPROTO);
}

/* What exec refuses before any request: nobody answers here (port 1). */
static void refused_locally(void **state) {
  (void)state;
  posts_k8s_config cfg;
  posts_exec_result res = {0};
  posts_err err = {0};
  const char *const argv[] = {"true", NULL};
  const char *const bad_env[] = {"A=1", "NOEQUALS", NULL};
  const char *const empty_key[] = {"=1", NULL};
  char *huge = malloc(300000);
  assert_non_null(huge);
  memset(huge, 'x', 299999);
  huge[299999] = '\0';
  const char *const long_argv[] = {"echo", huge, NULL};
  assert_int_equal(posts_k8s_config_init(&cfg), 0);
  cfg.server = strdup("https://127.0.0.1:1");
  char ebuf[256];
  posts_runtime *r = posts_runtime_k8s_new(&cfg, ebuf, sizeof ebuf);
  assert_non_null(r);

  posts_exec_req req = {.argv = argv, .user = "root"};
  EXPECT_RC(posts_env_exec(r, NS "/x", &req, &res, &err), -EINVAL, &err);
  EXPECT_HAS(err.msg, "user");
  posts_exec_result_cleanup(&res);
  req = (posts_exec_req){.argv = argv, .env = bad_env};
  EXPECT_RC(posts_env_exec(r, NS "/x", &req, &res, &err), -EINVAL, &err);
  EXPECT_HAS(err.msg, "env.1");
  posts_exec_result_cleanup(&res);
  req = (posts_exec_req){.argv = argv, .env = empty_key};
  EXPECT_RC(posts_env_exec(r, NS "/x", &req, &res, &err), -EINVAL, &err);
  posts_exec_result_cleanup(&res);
  req = (posts_exec_req){.argv = long_argv};
  EXPECT_RC(posts_env_exec(r, NS "/x", &req, &res, &err), -EINVAL, &err);
  EXPECT_HAS(err.msg, "URL");
  posts_exec_result_cleanup(&res);
  req = (posts_exec_req){.argv = argv};
  EXPECT_RC(posts_env_exec(r, "no-slash", &req, &res, &err), -ENOENT, &err);
  posts_exec_result_cleanup(&res);
  EXPECT_RC(posts_env_exec(r, NS "/x", &req, &res, &err), -ECONNREFUSED, &err);
  posts_exec_result_cleanup(&res);
  posts_runtime_cancel(r);
  EXPECT_RC(posts_env_exec(r, NS "/x", &req, &res, &err), -ECANCELED, &err);
  posts_exec_result_cleanup(&res);
  posts_runtime_free(r);
  posts_k8s_config_cleanup(&cfg);
  free(huge);
}

/* ========================================================== live group */

static int call(posts_runtime *r, const char *method, const char *path, const char *ctype,
                const char *json, const long *ok, posts_err *err) {
  cJSON *body = json ? cJSON_Parse(json) : NULL;
  int rc;
  if (json && !body) fail_msg("bad JSON in the test: %s", json);
  rc = posts__k8s_call((k8s *)r, method, path, ctype, body, ok, NULL, err);
  cJSON_Delete(body);
  return rc;
}

/* Deletes NS and what is in it, at once (no namespace controller runs
 * here: this does its work), and the Node. */
static void drop_all(void) {
  static const long ok[] = {200, 202, 404, 0}, got[] = {200, 0};
  k8s *k = (k8s *)rt;
  posts_err err = {0};
  cJSON *ns = NULL;
  call(rt, "DELETE", "/api/v1/namespaces/" NS "/pods?gracePeriodSeconds=0", NULL, NULL, ok, &err);
  call(rt, "DELETE", "/apis/rbac.authorization.k8s.io/v1/namespaces/" NS "/roles/exec-test", NULL,
       NULL, ok, &err);
  call(rt, "DELETE", "/apis/rbac.authorization.k8s.io/v1/namespaces/" NS "/rolebindings/exec-test",
       NULL, NULL, ok, &err);
  call(rt, "DELETE",
       "/apis/networking.k8s.io/v1/namespaces/" NS "/networkpolicies/outpost-no-network", NULL,
       NULL, ok, &err);
  call(rt, "DELETE", "/api/v1/namespaces/" NS, NULL, NULL, ok, &err);
  if (posts__k8s_call(k, "GET", "/api/v1/namespaces/" NS, NULL, NULL, got, &ns, &err) == 0) {
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(ns, "spec"),
                                           "finalizers", cJSON_CreateArray());
    if (posts__k8s_call(k, "PUT", "/api/v1/namespaces/" NS "/finalize", NULL, ns, got, NULL, &err) <
        0)
      print_message("finalizing namespace %s: %s\n", NS, err.msg);
  }
  cJSON_Delete(ns);
  call(rt, "DELETE", "/api/v1/nodes/" NODE, NULL, NULL, ok, &err);
}

/* Starts the fake kubelet and reads its port. */
static int fake_start(const char *python, const char *script) {
  int in[2], out[2];
  char line[64] = "";
  FILE *f;
  if (pipe(in) < 0 || pipe(out) < 0) return -1;
  if ((fake_pid = fork()) == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[1]);
    close(out[0]);
    execl(python, python, script, kube_dir, (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  fake_stdin = in[1];
  f = fdopen(out[0], "r");
  if (!f || !fgets(line, sizeof line, f) || sscanf(line, "port %d", &fake_port) != 1) {
    print_message("the fake kubelet did not start (%s)\n", line);
    return -1;
  }
  fclose(f);
  return 0;
}

static void fake_stop(void) {
  if (fake_stdin >= 0) close(fake_stdin);
  if (fake_pid > 0) waitpid(fake_pid, NULL, 0);
  fake_stdin = -1;
  fake_pid = 0;
}

/* The Node the API server sends NODE's execs to: the fake kubelet. */
static int node_register(void) {
  static const long made[] = {201, 409, 0}, ok[] = {200, 0};
  char status[256];
  posts_err err = {0};
  int rc = call(rt, "POST", "/api/v1/nodes", NULL,
                "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"" NODE "\"}}",
                made, &err);
  snprintf(status, sizeof status,
           "{\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"127.0.0.1\"}],"
           "\"daemonEndpoints\":{\"kubeletEndpoint\":{\"Port\":%d}}}}",
           fake_port);
  if (rc == 0)
    rc = call(rt, "PATCH", "/api/v1/nodes/" NODE "/status", "application/merge-patch+json", status,
              ok, &err);
  if (rc < 0) print_message("node %s: %s\n", NODE, err.msg);
  return rc;
}

/* The pod NS/name, made when missing and, unless pending, marked Running
 * as its kubelet would (the fake one does not watch pods). */
static void pod(posts_runtime *r, const char *name, bool pending, char *id) {
  static const long ok[] = {200, 0};
  static const char *const sleep_cmd[] = {"sleep", "infinity", NULL};
  posts_env_spec spec = {.ns = NS, .name = name, .image = IMAGE, .command = sleep_cmd};
  posts_err err = {0};
  char path[256];
  int rc = posts_env_create(r, &spec, id, &err);
  if (rc == -EEXIST)
    snprintf(id, POSTS_ENV_ID_MAX, "%s/%s", NS, name);
  else
    EXPECT_RC(rc, 0, &err);
  if (pending) return;
  snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s/status", NS, name);
  EXPECT_RC(call(rt, "PATCH", path, "application/merge-patch+json",
                 "{\"status\":{\"phase\":\"Running\"}}", ok, &err),
            0, &err);
}

static posts_runtime *runtime_from(const char *kubeconfig, const char *node) {
  char path[600], ebuf[256];
  posts_k8s_config cfg;
  posts_runtime *r;
  snprintf(path, sizeof path, "%s/%s", kube_dir, kubeconfig);
  assert_int_equal(posts_k8s_config_init(&cfg), 0);
  if (posts_k8s_config_from_kubeconfig(&cfg, path, NULL, ebuf, sizeof ebuf) < 0)
    fail_msg("kubeconfig %s: %s", path, ebuf);
  cfg.start_timeout_ms = -1;
  if (node) cfg.node_name = strdup(node);
  if (!(r = posts_runtime_k8s_new(&cfg, ebuf, sizeof ebuf))) fail_msg("runtime: %s", ebuf);
  posts_k8s_config_cleanup(&cfg);
  return r;
}

/* Runs argv in id with rt; returns posts_env_exec's code. */
static int run(posts_runtime *r, const char *id, const char *const *argv, posts_exec_result *res,
               posts_err *err) {
  posts_exec_req req = {.argv = argv, .timeout_ms = 20000};
  posts_exec_result_cleanup(res);
  return posts_env_exec(r, id, &req, res, err);
}

/* stdout and stderr apart, the exit code, arguments that need escaping in
 * a URL and a shell. */
static void exec_streams(void **state) {
  (void)state;
  char id[POSTS_ENV_ID_MAX];
  posts_exec_result res = {0};
  posts_err err = {0};
  const char *const three[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
  const char *const odd[] = {"printf", "[%s]", "a b", "&command=rm", "%2F", "$(id)", "ü", "", NULL};
  const char *const ok[] = {"true", NULL};
  pod(rt, "exec-plain", false, id);

  EXPECT_RC(run(rt, id, three, &res, &err), 0, &err);
  EXPECT_STR(res.out, "out\n");
  EXPECT_STR(res.err, "err\n");
  assert_int_equal(res.out_len, 4);
  assert_int_equal(res.exit_code, 3);
  assert_false(res.truncated);

  EXPECT_RC(run(rt, id, odd, &res, &err), 0, &err);
  EXPECT_STR(res.out, "[a b][&command=rm][%2F][$(id)][ü][]");
  EXPECT_STR(res.err, "");
  assert_int_equal(res.exit_code, 0);

  EXPECT_RC(run(rt, id, ok, &res, &err), 0, &err);
  EXPECT_STR(res.out, "");
  assert_int_equal(res.exit_code, 0);
  posts_exec_result_cleanup(&res);
}

/* A command that does not exist: 127, the runtime's reason on stderr. */
static void exec_not_found(void **state) {
  (void)state;
  char id[POSTS_ENV_ID_MAX];
  posts_exec_result res = {0};
  posts_err err = {0};
  const char *const argv[] = {"outpost-no-such-command", "x", NULL};
  pod(rt, "exec-plain", false, id);
  EXPECT_RC(run(rt, id, argv, &res, &err), 0, &err);
  assert_int_equal(res.exit_code, 127);
  EXPECT_HAS(res.err, "executable file not found");
  EXPECT_HAS(err.msg, "outpost-no-such-command");
  posts_exec_result_cleanup(&res);
}

/* max_output bytes kept per stream, the rest read and dropped: the exit
 * code still comes. In 64-bit-length frames too (the jumbo pod). */
static void exec_truncated(void **state) {
  (void)state;
  char id[POSTS_ENV_ID_MAX];
  posts_exec_result res = {0};
  posts_err err = {0};
  const char *const argv[] = {"sh", "-c",
                              "head -c 3000000 /dev/zero | tr '\\0' a; "
                              "head -c 5000 /dev/zero | tr '\\0' b >&2; exit 4",
                              NULL};
  const char *names[] = {"exec-plain", "exec-jumbo"};
  for (int i = 0; i < 2; i++) {
    posts_exec_req req = {.argv = argv, .max_output = 1000, .timeout_ms = 20000};
    pod(rt, names[i], false, id);
    EXPECT_RC(posts_env_exec(rt, id, &req, &res, &err), 0, &err);
    assert_int_equal(res.out_len, 1000);
    assert_int_equal(res.err_len, 1000);
    assert_int_equal(strlen(res.out), 1000);
    assert_int_equal(res.out[999], 'a');
    assert_int_equal(res.err[0], 'b');
    assert_true(res.truncated);
    assert_int_equal(res.exit_code, 4);
    posts_exec_result_cleanup(&res);
    req.max_output = 0; /* 1 MiB */
    EXPECT_RC(posts_env_exec(rt, id, &req, &res, &err), 0, &err);
    assert_int_equal(res.out_len, 1 << 20);
    assert_int_equal(res.err_len, 5000);
    assert_true(res.truncated);
    assert_int_equal(res.exit_code, 4);
    posts_exec_result_cleanup(&res);
  }
}

/* Still running after timeout_ms: -ETIMEDOUT with the output so far. */
static void exec_timeout(void **state) {
  (void)state;
  char id[POSTS_ENV_ID_MAX];
  posts_exec_result res = {0};
  posts_err err = {0};
  const char *const argv[] = {"sh", "-c", "echo before; exec sleep 30", NULL};
  posts_exec_req req = {.argv = argv, .timeout_ms = 1500};
  pod(rt, "exec-plain", false, id);
  int64_t t0 = clock_mono_ms();
  EXPECT_RC(posts_env_exec(rt, id, &req, &res, &err), -ETIMEDOUT, &err);
  int64_t took = clock_mono_ms() - t0;
  EXPECT_STR(res.out, "before\n");
  EXPECT_STR(res.err, "");
  assert_int_equal(res.exit_code, -1);
  EXPECT_HAS(err.msg, "still running");
  if (took < 1400 || took > 3500)
    fail_msg("timed out after %lld ms, want about 1500", (long long)took);
  posts_exec_result_cleanup(&res);

  /* A command that never stops writing times out all the same, its output
   * still bounded. */
  const char *const endless[] = {"yes", "outpost", NULL};
  req = (posts_exec_req){.argv = endless, .timeout_ms = 1500, .max_output = 4096};
  t0 = clock_mono_ms();
  EXPECT_RC(posts_env_exec(rt, id, &req, &res, &err), -ETIMEDOUT, &err);
  took = clock_mono_ms() - t0;
  assert_int_equal(res.out_len, 4096);
  assert_true(res.truncated);
  assert_int_equal(res.exit_code, -1);
  if (took < 1400 || took > 3500)
    fail_msg("endless output timed out after %lld ms, want about 1500", (long long)took);
  posts_exec_result_cleanup(&res);
}

typedef struct canceller {
  posts_runtime *r;
  int after_ms;
} canceller;

static void *cancel_later(void *arg) {
  canceller *c = arg;
  nanosleep(&(struct timespec){c->after_ms / 1000, (c->after_ms % 1000) * 1000000L}, NULL);
  posts_runtime_cancel(c->r);
  return NULL;
}

/* posts_runtime_cancel ends an exec that waits: -ECANCELED, at once. */
static void exec_cancel(void **state) {
  (void)state;
  char id[POSTS_ENV_ID_MAX];
  posts_exec_result res = {0};
  posts_err err = {0};
  const char *const argv[] = {"sleep", "30", NULL};
  posts_exec_req req = {.argv = argv, .timeout_ms = 20000};
  posts_runtime *r = runtime_from("kubeconfig", NODE);
  canceller c = {r, 500};
  pthread_t t;
  pod(rt, "exec-plain", false, id);
  int64_t t0 = clock_mono_ms();
  pthread_create(&t, NULL, cancel_later, &c);
  EXPECT_RC(posts_env_exec(r, id, &req, &res, &err), -ECANCELED, &err);
  int64_t took = clock_mono_ms() - t0;
  pthread_join(t, NULL);
  if (took > 2000) fail_msg("cancelled after %lld ms, want about 500", (long long)took);
  posts_exec_result_cleanup(&res);
  posts_runtime_free(r);
}

/* No such pod; a pod not running (Pending, or Running with no node, which
 * the API server refuses with 400). */
static void exec_not_there(void **state) {
  (void)state;
  char id[POSTS_ENV_ID_MAX];
  posts_exec_result res = {0};
  posts_err err = {0};
  const char *const argv[] = {"true", NULL};
  EXPECT_RC(run(rt, NS "/exec-no-such-pod", argv, &res, &err), -ENOENT, &err);
  assert_int_equal(err.status, 404);
  pod(rt, "exec-pending", true, id);
  EXPECT_RC(run(rt, id, argv, &res, &err), -EBUSY, &err);
  EXPECT_HAS(err.msg, "not running");
  posts_runtime *unpinned = runtime_from("kubeconfig", NULL);
  pod(unpinned, "exec-no-node", false, id);
  EXPECT_RC(run(rt, id, argv, &res, &err), -EBUSY, &err);
  assert_int_equal(err.status, 400);
  EXPECT_HAS(err.msg, "host");
  posts_runtime_free(unpinned);
  posts_exec_result_cleanup(&res);
}

/* A user RBAC does not let read the pod; then one who may read it but not
 * exec into it: the upgrade itself is refused (403). */
static void exec_forbidden(void **state) {
  (void)state;
  static const long made[] = {201, 409, 0};
  char id[POSTS_ENV_ID_MAX];
  posts_exec_result res = {0};
  posts_err err = {0};
  const char *const argv[] = {"true", NULL};
  posts_runtime *lim = runtime_from("kubeconfig-limited", NULL);
  pod(rt, "exec-plain", false, id);
  EXPECT_RC(run(lim, id, argv, &res, &err), -EACCES, &err);
  assert_int_equal(err.status, 403);
  EXPECT_RC(call(rt, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/" NS "/roles", NULL,
                 "{\"metadata\":{\"name\":\"exec-test\"},\"rules\":[{\"apiGroups\":[\"\"],"
                 "\"resources\":[\"pods\"],\"verbs\":[\"get\"]}]}",
                 made, &err),
            0, &err);
  EXPECT_RC(call(rt, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/" NS "/rolebindings",
                 NULL,
                 "{\"metadata\":{\"name\":\"exec-test\"},\"roleRef\":{\"apiGroup\":"
                 "\"rbac.authorization.k8s.io\",\"kind\":\"Role\",\"name\":\"exec-test\"},"
                 "\"subjects\":[{\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"User\","
                 "\"name\":\"outpost-limited\"}]}",
                 made, &err),
            0, &err);
  /* The authorizer learns of the binding a moment later. */
  int rc;
  for (int i = 0;; i++) {
    rc = run(lim, id, argv, &res, &err);
    if (rc != -EACCES || strstr(err.msg, "pods/exec") || i == 50) break;
    nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
  }
  EXPECT_RC(rc, -EACCES, &err);
  assert_int_equal(err.status, 403);
  EXPECT_HAS(err.msg, "pods/exec");
  posts_exec_result_cleanup(&res);
  posts_runtime_free(lim);
}

/* Fragmented messages with pings between the fragments, which must be
 * answered (the fake kubelet reports exit code 99 otherwise). */
static void exec_fragments_and_pings(void **state) {
  (void)state;
  char id[POSTS_ENV_ID_MAX];
  posts_exec_result res = {0};
  posts_err err = {0};
  const char *const argv[] = {"sh", "-c", "printf 'in fragments'; printf 'pinged' >&2; exit 5",
                              NULL};
  pod(rt, "exec-frag", false, id);
  EXPECT_RC(run(rt, id, argv, &res, &err), 0, &err);
  EXPECT_STR(res.out, "in fragments");
  EXPECT_STR(res.err, "pinged");
  assert_int_equal(res.exit_code, 5);
  posts_exec_result_cleanup(&res);
}

/* env and workdir through `env` and `sh`, with values no shell may
 * interpret; user cannot be given. */
static void exec_env_workdir(void **state) {
  (void)state;
  char id[POSTS_ENV_ID_MAX], dir[256], want[512];
  posts_exec_result res = {0};
  posts_err err = {0};
  const char *const env[] = {"GREETING=hello  world", "TRAP=it's \"$(touch x)\"; `id` $HOME",
                             "-DASH=ok", NULL};
  const char *const argv[] = {"sh", "-c", "printf '%s|%s|' \"$GREETING\" \"$TRAP\"; pwd", NULL};
  const char *const name_eq[] = {"A=b", NULL};
  snprintf(dir, sizeof dir, "%s/it's a \"dir\" $(touch y)", tmp_dir);
  assert_int_equal(mkdir(dir, 0700), 0);
  pod(rt, "exec-plain", false, id);
  posts_exec_req req = {.argv = argv, .env = env, .workdir = dir, .timeout_ms = 20000};
  EXPECT_RC(posts_env_exec(rt, id, &req, &res, &err), 0, &err);
  snprintf(want, sizeof want, "hello  world|it's \"$(touch x)\"; `id` $HOME|%s\n", dir);
  EXPECT_STR(res.out, want);
  assert_int_equal(res.exit_code, 0);
  posts_exec_result_cleanup(&res);

  /* Only env: a command named like a variable is still the command. */
  req = (posts_exec_req){.argv = name_eq, .env = env, .timeout_ms = 20000};
  EXPECT_RC(posts_env_exec(rt, id, &req, &res, &err), 0, &err);
  assert_int_equal(res.exit_code, 127);
  posts_exec_result_cleanup(&res);

  /* A workdir that is not there: the shell says so. */
  const char *const pwd[] = {"pwd", NULL};
  req = (posts_exec_req){.argv = pwd, .workdir = "/outpost-no-such-dir", .timeout_ms = 20000};
  EXPECT_RC(posts_env_exec(rt, id, &req, &res, &err), 0, &err);
  assert_int_not_equal(res.exit_code, 0);
  EXPECT_HAS(res.err, "outpost-no-such-dir");
  posts_exec_result_cleanup(&res);

  req = (posts_exec_req){.argv = pwd, .user = "65534"};
  EXPECT_RC(posts_env_exec(rt, id, &req, &res, &err), -EINVAL, &err);
  posts_exec_result_cleanup(&res);
}

/* A stream that ends without the Status: -EIO, the output kept. */
static void exec_no_status(void **state) {
  (void)state;
  char id[POSTS_ENV_ID_MAX];
  posts_exec_result res = {0};
  posts_err err = {0};
  const char *const argv[] = {"echo", "partial", NULL};
  pod(rt, "exec-nostatus", false, id);
  EXPECT_RC(run(rt, id, argv, &res, &err), -EIO, &err);
  EXPECT_HAS(err.msg, "status");
  EXPECT_STR(res.out, "partial\n");
  posts_exec_result_cleanup(&res);
}

/* A 101 whose Sec-WebSocket-Accept answers another key: refused. */
static void exec_bad_handshake(void **state) {
  (void)state;
  char id[POSTS_ENV_ID_MAX];
  posts_exec_result res = {0};
  posts_err err = {0};
  const char *const argv[] = {"echo", "never", NULL};
  pod(rt, "exec-badaccept", false, id);
  EXPECT_RC(run(rt, id, argv, &res, &err), -EPROTO, &err);
  EXPECT_HAS(err.msg, "Sec-WebSocket-Accept");
  EXPECT_STR(res.out, "");
  posts_exec_result_cleanup(&res);
}

/* A runtime that authenticates with a client certificate, not a token:
 * the exec's own connection presents it too. */
static void exec_client_cert(void **state) {
  (void)state;
  char cmd[4096], path[700], id[POSTS_ENV_ID_MAX], ebuf[256];
  posts_exec_result res = {0};
  posts_err err = {0};
  posts_k8s_config cfg;
  const char *const argv[] = {"echo", "cert", NULL};
  snprintf(path, sizeof path, "%s/pki/ca.key", kube_dir);
  if (access(path, R_OK) != 0) {
    print_message("skipped: %s is not readable\n", path);
    return;
  }
  snprintf(cmd, sizeof cmd,
           "cd '%s' && openssl req -newkey rsa:2048 -nodes -subj '/O=system:masters/CN=exec-cert' "
           "-keyout client.key -out client.csr 2>/dev/null && "
           "openssl x509 -req -in client.csr -CA '%s/pki/ca.crt' -CAkey '%s/pki/ca.key' "
           "-CAcreateserial -CAserial client.srl -days 1 -out client.crt 2>/dev/null",
           tmp_dir, kube_dir, kube_dir);
  assert_int_equal(system(cmd), 0);
  snprintf(path, sizeof path, "%s/kubeconfig", kube_dir);
  assert_int_equal(posts_k8s_config_init(&cfg), 0);
  if (posts_k8s_config_from_kubeconfig(&cfg, path, NULL, ebuf, sizeof ebuf) < 0)
    fail_msg("%s", ebuf);
  free(cfg.token);
  cfg.token = NULL;
  size_t n;
  snprintf(path, sizeof path, "%s/client.crt", tmp_dir);
  assert_int_equal(posts__k8s_read_file(path, 1 << 20, &cfg.client_cert_pem, &n), 0);
  snprintf(path, sizeof path, "%s/client.key", tmp_dir);
  assert_int_equal(posts__k8s_read_file(path, 1 << 20, &cfg.client_key_pem, &n), 0);
  posts_runtime *r = posts_runtime_k8s_new(&cfg, ebuf, sizeof ebuf);
  posts_k8s_config_cleanup(&cfg);
  assert_non_null(r);
  pod(rt, "exec-plain", false, id);
  EXPECT_RC(run(r, id, argv, &res, &err), 0, &err);
  EXPECT_STR(res.out, "cert\n");
  posts_exec_result_cleanup(&res);
  posts_runtime_free(r);
}

/* ---------------------------------------------------------------- main */

static int tmp_setup(void **state) {
  (void)state;
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/outpost-test-k8s-exec-%d", (int)getpid());
  return mkdir(tmp_dir, 0700);
}

static int tmp_teardown(void **state) {
  char cmd[200];
  (void)state;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  return system(cmd) == 0 ? 0 : -1;
}

static const char *python, *fake_script;

static int live_setup(void **state) {
  if (tmp_setup(state) < 0) return -1;
  rt = runtime_from("kubeconfig", NODE);
  drop_all();
  if (fake_start(python, fake_script) < 0 || node_register() < 0) return -1;
  return 0;
}

static int live_teardown(void **state) {
  drop_all();
  posts_runtime_free(rt);
  fake_stop();
  return tmp_teardown(state);
}

int main(int argc, char **argv) {
  const struct CMUnitTest offline[] = {
      cmocka_unit_test(sha1_and_accept), cmocka_unit_test(frames_read),
      cmocka_unit_test(frames_refused),  cmocka_unit_test(frames_written),
      cmocka_unit_test(status_codes),    cmocka_unit_test(refused_locally),
  };
  const struct CMUnitTest live[] = {
      cmocka_unit_test(exec_streams),       cmocka_unit_test(exec_not_found),
      cmocka_unit_test(exec_truncated),     cmocka_unit_test(exec_timeout),
      cmocka_unit_test(exec_cancel),        cmocka_unit_test(exec_not_there),
      cmocka_unit_test(exec_forbidden),     cmocka_unit_test(exec_fragments_and_pings),
      cmocka_unit_test(exec_env_workdir),   cmocka_unit_test(exec_no_status),
      cmocka_unit_test(exec_bad_handshake), cmocka_unit_test(exec_client_cert),
  };
  char path[600];
  signal(SIGPIPE, SIG_IGN);
  if (argc > 1 && strcmp(argv[1], "--offline") == 0)
    return cmocka_run_group_tests_name("offline", offline, tmp_setup, tmp_teardown);
  if (argc < 4) {
    printf("usage: %s --offline | KUBE_DIR PYTHON FAKE_KUBELET\n", argv[0]);
    return 2;
  }
  char cwd[128] = "";
  if (argv[1][0] != '/' && !getcwd(cwd, sizeof cwd)) return 2;
  if (snprintf(kube_dir, sizeof kube_dir, "%s%s%s", cwd, cwd[0] ? "/" : "", argv[1]) >=
      (int)sizeof kube_dir) {
    printf("KUBE_DIR too long: %s\n", argv[1]);
    return 2;
  }
  python = argv[2];
  fake_script = argv[3];
  snprintf(path, sizeof path, "%s/apiserver.pid", kube_dir);
  if (access(path, R_OK) != 0) {
    printf("SKIP: no API server running for %s (scripts/kube_up.sh skipped or not run)\n",
           kube_dir);
    return 77;
  }
  return cmocka_run_group_tests_name("kube-apiserver with a fake kubelet", live, live_setup,
                                     live_teardown);
}
