/*
 * test_httpd_hybrid.c — core/httpd.h's HTTPD_HYBRID_POOL on a real server on
 * 127.0.0.1, through raw keep-alive sockets: the first poll_connections
 * connections go to the poll pool and the rest to the epoll pool, a place
 * freed in the poll pool takes the next new connection, requests answered
 * at once and answered later from another thread (a suspended connection
 * resumed) work on both pools, connections past max_connections are closed,
 * and the server stops with connections open.
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

enum { MAX_LATER = 64 };

/* Requests to /later wait here until the answerer thread answers them. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  httpd_req *q[MAX_LATER];
  int n;
  bool stop;
} later = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, false};

static void handler(void *ctx, httpd_req *req) {
  (void)ctx;
  if (strcmp(httpd_path(req), "/later") == 0) {
    pthread_mutex_lock(&later.mu);
    assert_true(later.n < MAX_LATER);
    later.q[later.n++] = req;
    pthread_cond_signal(&later.cv);
    pthread_mutex_unlock(&later.mu);
    return;
  }
  httpd_respond(req, 200, "text/plain", "now\n", 4, NULL, 0);
}

/* Answers each /later request 10 ms after it came, from its own thread. */
static void *answerer(void *arg) {
  (void)arg;
  pthread_mutex_lock(&later.mu);
  for (;;) {
    while (later.n == 0 && !later.stop) pthread_cond_wait(&later.cv, &later.mu);
    if (later.n == 0) break;
    httpd_req *req = later.q[--later.n];
    pthread_mutex_unlock(&later.mu);
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
    httpd_respond(req, 202, NULL, NULL, 0, NULL, 0);
    pthread_mutex_lock(&later.mu);
  }
  pthread_mutex_unlock(&later.mu);
  return NULL;
}

static httpd *start(unsigned poll_connections, unsigned max_connections, httpd_model model) {
  httpd_opts o;
  httpd_opts_init(&o);
  o.model = model;
  o.threads = 2;
  o.poll_connections = poll_connections;
  o.max_connections = max_connections;
  char err[256];
  httpd *h = httpd_start(&o, handler, NULL, err, sizeof err);
  if (!h) fail_msg("httpd_start: %s", err);
  return h;
}

static int dial(uint16_t port) {
  int fd = local_connect(port);
  assert_true(fd >= 0);
  return fd;
}

/* Waits up to 5 s for the pools to hold poll and epoll connections. */
static bool counts_become(httpd *h, unsigned poll, unsigned epoll) {
  unsigned p = 0, e = 0;
  for (int i = 0; i < 500; i++) {
    httpd_connections(h, &p, &e);
    if (p == poll && e == epoll) return true;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  print_error("connections: poll %u, epoll %u; expected %u and %u\n", p, e, poll, epoll);
  return false;
}

static void routes_by_count(void **state) {
  (void)state;
  httpd *h = start(2, 100, HTTPD_HYBRID_POOL);
  uint16_t port = httpd_port(h);
  assert_true(port > 0);
  int fd[5];
  /* One at a time, each counted before the next: the first two are the
   * poll pool's, the other three the epoll pool's. */
  for (int i = 0; i < 5; i++) {
    fd[i] = dial(port);
    assert_int_equal(local_ask(fd[i], "GET", "/now"), 200);
    assert_true(counts_become(h, i < 2 ? (unsigned)i + 1 : 2, i < 2 ? 0 : (unsigned)i - 1));
  }
  /* Answers that come later, from another thread, on both pools, twice on
   * each connection (keep-alive after a resume). */
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < 5; i++) assert_int_equal(local_ask(fd[i], "POST", "/later"), 202);
  /* A place freed in the poll pool goes to the next new connection. */
  close(fd[0]);
  assert_true(counts_become(h, 1, 3));
  fd[0] = dial(port);
  assert_int_equal(local_ask(fd[0], "POST", "/later"), 202);
  assert_true(counts_become(h, 2, 3));
  for (int i = 0; i < 5; i++) close(fd[i]);
  assert_true(counts_become(h, 0, 0));
  httpd_stop(h);
}

static void closes_past_max_connections(void **state) {
  (void)state;
  httpd *h = start(1, 3, HTTPD_HYBRID_POOL);
  uint16_t port = httpd_port(h);
  int fd[4];
  for (int i = 0; i < 3; i++) {
    fd[i] = dial(port);
    assert_int_equal(local_ask(fd[i], "GET", "/now"), 200);
  }
  assert_true(counts_become(h, 1, 2));
  fd[3] = dial(port); /* the kernel accepts it; the server closes it */
  assert_int_equal(local_ask(fd[3], "GET", "/now"), -1);
  assert_true(counts_become(h, 1, 2));
  for (int i = 0; i < 4; i++) close(fd[i]);
  httpd_stop(h);
}

static void stops_with_connections_open(void **state) {
  (void)state;
  httpd *h = start(1, 100, HTTPD_HYBRID_POOL);
  uint16_t port = httpd_port(h);
  int a = dial(port);
  assert_int_equal(local_ask(a, "GET", "/now"), 200);
  assert_true(counts_become(h, 1, 0)); /* counted before b comes: b is epoll's */
  int b = dial(port);
  assert_int_equal(local_ask(b, "GET", "/now"), 200);
  assert_true(counts_become(h, 1, 1));
  httpd_stop(h);
  /* Both connections are closed by the stop, and nothing listens. */
  char c;
  assert_int_equal(recv(a, &c, 1, 0), 0);
  assert_int_equal(recv(b, &c, 1, 0), 0);
  close(a);
  close(b);
  assert_int_equal(local_connect(port), -1);
}

static void other_models_count_nothing(void **state) {
  (void)state;
  httpd *h = start(2, 100, HTTPD_EPOLL_POOL);
  int fd = dial(httpd_port(h));
  assert_int_equal(local_ask(fd, "POST", "/later"), 202);
  unsigned p = 1, e = 1;
  httpd_connections(h, &p, &e);
  assert_int_equal(p, 0);
  assert_int_equal(e, 0);
  close(fd);
  httpd_stop(h);
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, answerer, NULL);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(routes_by_count),
      cmocka_unit_test(closes_past_max_connections),
      cmocka_unit_test(stops_with_connections_open),
      cmocka_unit_test(other_models_count_nothing),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  pthread_mutex_lock(&later.mu);
  later.stop = true;
  pthread_cond_signal(&later.cv);
  pthread_mutex_unlock(&later.mu);
  pthread_join(t, NULL);
  return rc;
}
