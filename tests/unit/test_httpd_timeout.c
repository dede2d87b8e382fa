/*
 * test_httpd_timeout.c — core/httpd.h's header_timeout_s (1 s here) in each
 * serving model, on a real server on 127.0.0.1: a head trickled a line at a
 * time is answered 408 and its connection closed, however often its lines
 * come; a request whose head came whole is served however slowly its body
 * comes; a connection idle between requests for longer than the timeout is
 * still served; 0 turns it off.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/httpd.h"
#include "test_net.h"

static void handler(void *ctx, httpd_req *req) {
  (void)ctx;
  size_t n;
  httpd_body(req, &n);
  char body[32];
  int len = snprintf(body, sizeof body, "body %zu\n", n);
  httpd_respond(req, 200, "text/plain", body, (size_t)len, NULL, 0);
}

static httpd *start(httpd_model model, bool fast_lane, unsigned header_timeout_s) {
  httpd_opts o;
  httpd_opts_init(&o);
  o.model = model;
  o.threads = 2;
  o.fast_lane = fast_lane;
  o.header_timeout_s = header_timeout_s;
  char err[256];
  httpd *h = httpd_start(&o, handler, NULL, err, sizeof err);
  if (!h) fail_msg("httpd_start: %s", err);
  return h;
}

static int dial(const httpd *h) {
  int fd = local_connect(httpd_port(h));
  assert_true(fd >= 0);
  return fd;
}

static void put(int fd, const char *s) {
  assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Reads into buf (cap bytes, kept NUL-terminated) until the server closes
 * or, with head_only, an answer's head has come; 5 s at most. */
static void read_from(int fd, char *buf, size_t cap, bool head_only) {
  size_t got = 0;
  buf[0] = '\0';
  int64_t end = clock_mono_ms() + 5000;
  while (got + 1 < cap && clock_mono_ms() < end && !(head_only && strstr(buf, "\r\n\r\n"))) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 100) != 1) continue;
    ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
    if (n <= 0) break;
    got += (size_t)n;
    buf[got] = '\0';
  }
}

/* Sends head, then a header line whenever nothing has come for 200 ms,
 * for at most 4 s: the milliseconds until the server wrote or closed
 * (4000 and more: it did neither). */
static int64_t trickle(int fd, const char *head) {
  int64_t t0 = clock_mono_ms();
  put(fd, head);
  while (clock_mono_ms() - t0 < 4000) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 200) == 1) break;
    if (send(fd, "X-Slow: y\r\n", 11, MSG_NOSIGNAL) != 11) break;
  }
  return clock_mono_ms() - t0;
}

static void check_model(httpd_model model, bool fast_lane, const char *name) {
  httpd *h = start(model, fast_lane, 1);
  char buf[1024] = "";
  /* Served, then idle through what follows. */
  int idle = dial(h);
  put(idle, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  read_from(idle, buf, sizeof buf, true);
  assert_non_null(strstr(buf, "HTTP/1.1 200"));
  /* A POST's head and a GET's, trickled: 408 after a second. */
  const char *heads[] = {"POST /b HTTP/1.1\r\nHost: x\r\n", "GET /c HTTP/1.1\r\nHost: x\r\n"};
  for (size_t i = 0; i < 2; i++) {
    int fd = dial(h);
    int64_t ms = trickle(fd, heads[i]);
    read_from(fd, buf, sizeof buf, false);
    if (ms < 900 || ms >= 4000 || strncmp(buf, "HTTP/1.1 408 ", 13) ||
        !strstr(buf, "did not come whole within 1 s"))
      fail_msg("%s, %.3s head: %lld ms, then '%s'", name, heads[i], (long long)ms, buf);
    close(fd);
  }
  assert_int_equal(httpd_header_timeouts(h), 2);
  /* The head whole, its body a byte every 400 ms: served. */
  int slow = dial(h);
  put(slow, "POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n");
  for (int i = 0; i < 4; i++) {
    clock_sleep_ms(400);
    put(slow, "x");
  }
  read_from(slow, buf, sizeof buf, true);
  if (!strstr(buf, "HTTP/1.1 200") || !strstr(buf, "body 4"))
    fail_msg("%s, a slow body: '%s'", name, buf);
  close(slow);
  /* Idle for some 4 s by now, past the header timeout: still served. */
  put(idle, "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  read_from(idle, buf, sizeof buf, true);
  if (!strstr(buf, "HTTP/1.1 200")) fail_msg("%s, idle between requests: '%s'", name, buf);
  close(idle);
  assert_int_equal(httpd_header_timeouts(h), 2);
  httpd_stop(h);
}

/* A model as a test's state. */
typedef struct model_case {
  httpd_model model;
  bool fast_lane;
  const char *name;
} model_case;

static const model_case models[] = {
    {HTTPD_EPOLL_POOL, false, "epoll"},
    {HTTPD_POLL_POOL, false, "poll"},
    {HTTPD_THREAD_PER_CONNECTION, false, "thread per connection"},
    {HTTPD_HYBRID_POOL, false, "hybrid"},
    {HTTPD_HYBRID_POOL, true, "fast lane"},
};

static void in_model(void **state) {
  const model_case *m = *state;
  check_model(m->model, m->fast_lane, m->name);
}

static void zero_is_never(void **state) {
  (void)state;
  httpd *h = start(HTTPD_HYBRID_POOL, true, 0);
  int fd = dial(h);
  assert_true(trickle(fd, "POST /f HTTP/1.1\r\nHost: x\r\n") >= 4000);
  close(fd);
  assert_int_equal(httpd_header_timeouts(h), 0);
  httpd_stop(h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      {"epoll pool", in_model, NULL, NULL, (void *)&models[0]},
      {"poll pool", in_model, NULL, NULL, (void *)&models[1]},
      {"thread per connection", in_model, NULL, NULL, (void *)&models[2]},
      {"hybrid pools", in_model, NULL, NULL, (void *)&models[3]},
      {"fast lane", in_model, NULL, NULL, (void *)&models[4]},
      cmocka_unit_test(zero_is_never),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
