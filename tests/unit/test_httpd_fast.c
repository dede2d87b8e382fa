/*
 * test_httpd_fast.c — the fast lane's batches (core/httpd_fast.c), on a real
 * server on 127.0.0.1 with one lane thread: opts.batch_end runs once after
 * each batch, and requests that come in while a batch is taken join it, up
 * to opts.batch_polls more looks. The requests come in a chain: the handler
 * of each, on the lane's thread, sends the next on another keep-alive
 * connection before it answers, so that the next is waiting when the lane
 * looks again. Which batch each request was in is what the batch_end calls
 * that ended requests before it say.
 */
#include <poll.h>
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
#include "test_util.h"

enum { CHAIN = 4 };

/* Written by the lane's thread, read by the test once every answer came. */
static struct {
  int fd[CHAIN];              /* the clients' connections */
  atomic_int batches;         /* batch_end calls that ended requests */
  atomic_bool taken;          /* a request since the last batch_end */
  atomic_int seen[CHAIN];     /* batches before chain request i */
  atomic_bool batched[CHAIN]; /* httpd_batched: it ran on the lane */
  atomic_int warm;            /* requests before the chain, on the lane */
} t;

/* Called again after the answers it let the lane write (httpd.h): only a
 * call with requests since the last one ends a batch. */
static void on_batch_end(void *opaque) {
  (void)opaque;
  if (atomic_exchange(&t.taken, false)) atomic_fetch_add(&t.batches, 1);
}

static void send_chain(int i) {
  char req[128];
  int n = snprintf(req, sizeof req,
                   "POST /chain/%d HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx", i);
  (void)!send(t.fd[i], req, (size_t)n, MSG_NOSIGNAL);
}

static void handler(void *opaque, httpd_req *req) {
  (void)opaque;
  atomic_store(&t.taken, true);
  int i;
  if (sscanf(httpd_path(req), "/chain/%d", &i) == 1 && i >= 0 && i < CHAIN) {
    atomic_store(&t.seen[i], atomic_load(&t.batches));
    atomic_store(&t.batched[i], httpd_batched(req));
    if (i + 1 < CHAIN) {
      send_chain(i + 1);
      /* Over loopback the request is in the server's socket when send
       * returns; the pause covers a softirq put off to ksoftirqd. */
      struct timespec ts = {0, 20 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  } else if (httpd_batched(req)) {
    atomic_fetch_add(&t.warm, 1);
  }
  httpd_respond(req, 202, NULL, NULL, 0, NULL, 0);
}

/* Reads one answer's status line; 0 when none came within 5 s. */
static int status_of(int fd) {
  char buf[512];
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, 5000) != 1) return 0;
  ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
  if (got <= 0) return 0;
  buf[got] = '\0';
  int status = 0;
  return sscanf(buf, "HTTP/1.1 %d", &status) == 1 ? status : 0;
}

/* Runs the chain on a server with batch_polls polls; which batch each
 * request was in, counted from the first's, into batch[]. */
static void run_chain(unsigned polls, int batch[CHAIN]) {
  memset(&t, 0, sizeof t);
  httpd_opts o;
  httpd_opts_init(&o);
  o.model = HTTPD_HYBRID_POOL;
  o.fast_lane = true;
  o.fast_threads = 1;
  o.batch_end = on_batch_end;
  o.batch_polls = polls;
  char err[256];
  httpd *h = httpd_start(&o, handler, NULL, err, sizeof err);
  if (!h) fail_msg("httpd_start: %s", err);
  /* Each connection answered once before the chain: all on the lane. */
  for (int i = 0; i < CHAIN; i++) {
    t.fd[i] = local_connect(httpd_port(h));
    assert_true(t.fd[i] >= 0);
    static const char warm[] = "POST /warm HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx";
    assert_int_equal(send(t.fd[i], warm, sizeof warm - 1, MSG_NOSIGNAL), sizeof warm - 1);
    assert_int_equal(status_of(t.fd[i]), 202);
  }
  assert_int_equal(atomic_load(&t.warm), CHAIN);
  send_chain(0);
  for (int i = 0; i < CHAIN; i++) {
    CTX("polls %u, request %d", polls, i);
    EXPECT_INT(status_of(t.fd[i]), 202);
    EXPECT_TRUE(atomic_load(&t.batched[i]));
  }
  for (int i = 0; i < CHAIN; i++) batch[i] = atomic_load(&t.seen[i]) - atomic_load(&t.seen[0]);
  httpd_stop(h);
  /* The last batch ended too (its answers were written after it). */
  assert_true(atomic_load(&t.batches) > atomic_load(&t.seen[CHAIN - 1]));
  for (int i = 0; i < CHAIN; i++) close(t.fd[i]);
}

static void requests_join_the_batch_up_to_its_polls(void **state) {
  (void)state;
  static const struct {
    unsigned polls;
    int batch[CHAIN];
  } rows[] = {
      {0, {0, 1, 2, 3}}, /* a batch is one epoll_wait */
      {1, {0, 0, 1, 1}}, {2, {0, 0, 0, 1}}, {3, {0, 0, 0, 0}}, {8, {0, 0, 0, 0}},
  };
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
    int got[CHAIN];
    run_chain(rows[r].polls, got);
    for (int i = 0; i < CHAIN; i++) {
      CTX("polls %u, request %d", rows[r].polls, i);
      EXPECT_INT(got[i], rows[r].batch[i]);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(requests_join_the_batch_up_to_its_polls),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
