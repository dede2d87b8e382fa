/*
 * test_httpd_stream.c — streamed answers of core/httpd.h
 * (httpd_respond_stream) on a real server on 127.0.0.1, read through a raw
 * socket so that what arrives when is seen: a first part is on the wire
 * while the source still waits for the second, the body is chunked, the
 * source's done runs exactly once whether the stream ends, the client goes
 * away, or the server stops under an open stream.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/httpd.h"
#include "test_net.h"

/* The source: "data: one" at once, "data: two" once the test says go
 * (until then each call waits up to 100 ms and appends nothing). */
typedef struct source {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool go;
  int calls, done;
} source;

static source src = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, 0};

static int next(void *ctx, ce_buf *out) {
  source *s = ctx;
  pthread_mutex_lock(&s->mu);
  int call = s->calls++;
  if (call == 0) {
    pthread_mutex_unlock(&s->mu);
    ce_buf_append_str(out, "data: one\n\n");
    return 1;
  }
  if (!s->go) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
  }
  bool go = s->go;
  pthread_mutex_unlock(&s->mu);
  if (!go) return 1;
  ce_buf_append_str(out, "data: two\n\n");
  return 0;
}

static void done(void *ctx) {
  source *s = ctx;
  pthread_mutex_lock(&s->mu);
  s->done++;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void handler(void *ctx, httpd_req *req) {
  (void)ctx;
  static const char *const extra[] = {"Cache-Control", "no-cache"};
  httpd_respond_stream(req, 200, "text/event-stream", extra, 1, next, done, &src);
}

static void reset(void) {
  pthread_mutex_lock(&src.mu);
  src.go = false;
  src.calls = src.done = 0;
  pthread_mutex_unlock(&src.mu);
}

static void set_go(void) {
  pthread_mutex_lock(&src.mu);
  src.go = true;
  pthread_cond_broadcast(&src.cv);
  pthread_mutex_unlock(&src.mu);
}

/* Waits up to ms for the source's done count to reach want. */
static int wait_done(int want, long ms) {
  pthread_mutex_lock(&src.mu);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  while (src.done < want && pthread_cond_timedwait(&src.cv, &src.mu, &ts) == 0) {
  }
  int d = src.done;
  pthread_mutex_unlock(&src.mu);
  return d;
}

static httpd *start(void) {
  httpd_opts o;
  httpd_opts_init(&o);
  o.model = HTTPD_THREAD_PER_CONNECTION;
  char err[256];
  httpd *h = httpd_start(&o, handler, NULL, err, sizeof err);
  if (!h) fail_msg("httpd_start: %s", err);
  return h;
}

static int connect_get(uint16_t port) {
  int fd = local_connect(port);
  assert_true(fd >= 0);
  const char *rq = "GET /progress HTTP/1.1\r\nHost: x\r\n\r\n";
  assert_int_equal(write(fd, rq, strlen(rq)), (ssize_t)strlen(rq));
  return fd;
}

/* Reads into buf (NUL-terminated) until it holds want or ms pass: whether
 * it does. */
static bool read_until(int fd, char *buf, size_t size, size_t *len, const char *want, long ms) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (!strstr(buf, want)) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    long left = ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
    struct pollfd pfd = {fd, POLLIN, 0};
    if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) return false;
    ssize_t n = read(fd, buf + *len, size - 1 - *len);
    if (n <= 0) return false;
    *len += (size_t)n;
    buf[*len] = '\0';
  }
  return true;
}

/* The first part arrives while the source still waits for the second; the
 * rest follows once it has it, and the chunked body ends. */
static void test_parts_arrive_as_made(void **state) {
  (void)state;
  reset();
  httpd *h = start();
  int fd = connect_get(httpd_port(h));
  char buf[4096] = "";
  size_t len = 0;
  assert_true(read_until(fd, buf, sizeof buf, &len, "data: one", 5000));
  assert_non_null(strstr(buf, "HTTP/1.1 200"));
  assert_non_null(strstr(buf, "Transfer-Encoding: chunked"));
  assert_non_null(strstr(buf, "Content-Type: text/event-stream"));
  assert_null(strstr(buf, "Content-Length"));
  /* Nothing more comes while the source has nothing. */
  assert_false(read_until(fd, buf, sizeof buf, &len, "data: two", 300));
  assert_int_equal(wait_done(1, 0), 0);
  set_go();
  assert_true(read_until(fd, buf, sizeof buf, &len, "data: two", 5000));
  assert_true(read_until(fd, buf, sizeof buf, &len, "\r\n0\r\n\r\n", 5000));
  assert_int_equal(wait_done(1, 5000), 1);
  close(fd);
  httpd_stop(h);
  assert_int_equal(wait_done(2, 200), 1); /* once only */
}

/* A client that goes away mid-stream ends it: done runs. */
static void test_client_gone(void **state) {
  (void)state;
  reset();
  httpd *h = start();
  int fd = connect_get(httpd_port(h));
  char buf[4096] = "";
  size_t len = 0;
  assert_true(read_until(fd, buf, sizeof buf, &len, "data: one", 5000));
  close(fd);
  /* The server notices when a write fails; the source sends nothing while
   * it waits, so stopping the server is what ends it at the latest. */
  httpd_stop(h);
  assert_int_equal(wait_done(1, 5000), 1);
}

/* httpd_stop with a stream open: the stream ends, done runs, stop returns
 * promptly. */
static void test_stop_ends_stream(void **state) {
  (void)state;
  reset();
  httpd *h = start();
  int fd = connect_get(httpd_port(h));
  char buf[4096] = "";
  size_t len = 0;
  assert_true(read_until(fd, buf, sizeof buf, &len, "data: one", 5000));
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  httpd_stop(h);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  assert_int_equal(wait_done(1, 5000), 1);
  /* Bounded by the 5 s drain of httpd_stop plus one source call, not by
   * the stream (which would never end on its own). */
  assert_true(t1.tv_sec - t0.tv_sec < 8);
  close(fd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parts_arrive_as_made),
      cmocka_unit_test(test_client_gone),
      cmocka_unit_test(test_stop_ends_stream),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
