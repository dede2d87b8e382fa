/*
 * test_httpd_clients.c — core/httpd.h's max_connections_per_client.
 *
 * The count itself (httpd_clients.c): taken and given back by socket, a
 * client at its limit refused, other clients not, and a count left on a
 * socket closed unseen given back when its descriptor's number comes again.
 *
 * Then in each serving model, on a real server on 127.0.0.1 with a limit
 * of 2 a client and 3 in all: the third connection from 127.0.0.1 is
 * closed with nothing written while 127.0.0.2 is served; a fourth client
 * past the 3 in all is closed too; both are counted by httpd_refused; and
 * a connection closed gives its place back, whether the fast lane or
 * libmicrohttpd held it (a GET goes from the lane to libmicrohttpd).
 */
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
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
#include "core/httpd_int.h"
#include "test_net.h"

/* The client key of an IPv4 or IPv6 address. */
static httpd_addr addr(const char *s) {
  httpd_sockaddr sa = {0};
  if (inet_pton(AF_INET, s, &sa.in.sin_addr) == 1)
    sa.in.sin_family = AF_INET;
  else if (inet_pton(AF_INET6, s, &sa.in6.sin6_addr) == 1)
    sa.in6.sin6_family = AF_INET6;
  httpd_addr a;
  assert_true(httpd__addr_of(&sa.sa, &a));
  return a;
}

static void counts(void **state) {
  (void)state;
  httpd_clients *c = httpd__clients_new();
  assert_non_null(c);
  httpd_addr a = addr("10.0.0.1"), b = addr("fd00::2");
  assert_true(httpd__client_open(c, 5, &a, 2));
  assert_true(httpd__client_open(c, 6, &a, 2));
  assert_false(httpd__client_open(c, 7, &a, 2)); /* at its limit */
  assert_int_equal(httpd__client_count(c, &a), 2);
  assert_true(httpd__client_under(c, &b, 2));
  assert_true(httpd__client_open(c, 7, &b, 2)); /* another client */
  assert_false(httpd__client_under(c, &a, 2));
  httpd__client_close(c, 5);
  httpd__client_close(c, 5); /* twice: given back once */
  httpd__client_close(c, 99);
  assert_int_equal(httpd__client_count(c, &a), 1);
  assert_true(httpd__client_under(c, &a, 2));
  /* Socket 6 comes back without a close seen: a's count it held is gone. */
  assert_true(httpd__client_open(c, 6, &b, 0));
  assert_int_equal(httpd__client_count(c, &a), 0);
  assert_int_equal(httpd__client_count(c, &b), 2);
  /* 0: counted, never refused; a socket far past the table grows it. */
  for (int fd = 10; fd < 20; fd++) assert_true(httpd__client_open(c, fd, &a, 0));
  assert_true(httpd__client_open(c, 5000, &a, 0));
  assert_int_equal(httpd__client_count(c, &a), 11);
  for (int fd = 10; fd < 20; fd++) httpd__client_close(c, fd);
  httpd__client_close(c, 5000);
  assert_int_equal(httpd__client_count(c, &a), 0);
  httpd__clients_free(c);
}

static void handler(void *ctx, httpd_req *req) {
  (void)ctx;
  httpd_respond(req, 200, "text/plain", "ok\n", 3, NULL, 0);
}

static int dial(const httpd *h, const char *from) {
  int fd = local_connect_from(httpd_port(h), from);
  assert_true(fd >= 0);
  return fd;
}

/* Waits up to 5 s for from to hold n connections by the server's count. */
static void count_becomes(const httpd *h, const char *model, const char *from, unsigned n) {
  unsigned got = 0;
  httpd_addr a = addr(from);
  for (int i = 0; i < 500 && (got = httpd__client_count(h->clients, &a)) != n; i++)
    clock_sleep_ms(10);
  if (got != n) fail_msg("%s: %s holds %u connections by the count, not %u", model, from, got, n);
}

typedef struct model {
  const char *name;
  httpd_model model;
  bool fast_lane;
} model;

/* A server in model m with those limits. */
static httpd *start(const model *m, unsigned max_connections, unsigned per_client) {
  httpd_opts o;
  httpd_opts_init(&o);
  o.model = m->model;
  o.threads = 2;
  o.fast_lane = m->fast_lane;
  o.max_connections = max_connections;
  o.max_connections_per_client = per_client;
  char err[256];
  httpd *h = httpd_start(&o, handler, NULL, err, sizeof err);
  if (!h) fail_msg("httpd_start: %s", err);
  return h;
}

static void check_model(void **state) {
  const model *m = *state;
  httpd *h = start(m, 3, 2);
  const char *one = "127.0.0.1", *two = "127.0.0.2", *three = "127.0.0.3";
  /* Two from one client: a POST (the lane keeps it) and a GET (the lane
   * hands it to libmicrohttpd). */
  int a1 = dial(h, one), a2 = dial(h, one);
  assert_int_equal(local_ask(a1, "POST", "/x"), 200);
  assert_int_equal(local_ask(a2, "GET", "/x"), 200);
  count_becomes(h, m->name, one, 2);
  int a3 = dial(h, one);
  if (local_ask(a3, "POST", "/x") != -1)
    fail_msg("%s: a third connection of one client was served", m->name);
  close(a3);
  int b1 = dial(h, two);
  if (local_ask(b1, "POST", "/x") != 200) fail_msg("%s: another client was not served", m->name);
  count_becomes(h, m->name, two, 1);
  int c1 = dial(h, three); /* within its own limit, past 3 in all */
  if (local_ask(c1, "POST", "/x") != -1)
    fail_msg("%s: a fourth connection in all was served", m->name);
  close(c1);
  uint64_t max, per_client;
  httpd_refused(h, &max, &per_client);
  assert_int_equal(max, 1);
  assert_int_equal(per_client, 1);
  /* Each closed connection gives its place back, the lane's and
   * libmicrohttpd's. */
  close(b1);
  count_becomes(h, m->name, two, 0);
  close(a1);
  count_becomes(h, m->name, one, 1);
  int a4 = dial(h, one);
  assert_int_equal(local_ask(a4, "POST", "/x"), 200);
  close(a2);
  count_becomes(h, m->name, one, 1);
  int a5 = dial(h, one);
  assert_int_equal(local_ask(a5, "GET", "/x"), 200);
  count_becomes(h, m->name, one, 2);
  httpd_refused(h, &max, &per_client);
  assert_int_equal(max, 1);
  assert_int_equal(per_client, 1);
  close(a4);
  close(a5);
  count_becomes(h, m->name, one, 0);
  httpd_stop(h);
}

enum { CHURNERS = 4, CHURNS = 150 };

typedef struct churner {
  const httpd *h;
  pthread_t t;
  unsigned refused, served;
} churner;

/* Connects from 127.0.0.1, asks once (POST or GET by turns) and closes,
 * CHURNS times, counting what the server did. */
static void *churn(void *arg) {
  churner *c = arg;
  for (int i = 0; i < CHURNS; i++) {
    int fd = local_connect_from(httpd_port(c->h), "127.0.0.1");
    if (fd < 0) continue;
    int st = local_ask(fd, i % 2 ? "GET" : "POST", "/x");
    c->refused += st == -1;
    c->served += st == 200;
    close(fd);
  }
  return NULL;
}

/* Four threads open and close connections of one client as fast as they
 * can, past its limit of 3 at times: every refusal the clients saw is
 * counted once, every other connection is served, and when all are closed
 * the client holds none. */
static void churn_model(void **state) {
  const model *m = *state;
  httpd *h = start(m, 4096, 3);
  churner c[CHURNERS];
  for (int i = 0; i < CHURNERS; i++) {
    c[i] = (churner){.h = h};
    assert_int_equal(pthread_create(&c[i].t, NULL, churn, &c[i]), 0);
  }
  unsigned refused = 0, served = 0;
  for (int i = 0; i < CHURNERS; i++) {
    pthread_join(c[i].t, NULL);
    refused += c[i].refused;
    served += c[i].served;
  }
  if (refused + served != CHURNERS * CHURNS)
    fail_msg("%s: %u refused and %u served of %d", m->name, refused, served, CHURNERS * CHURNS);
  count_becomes(h, m->name, "127.0.0.1", 0);
  uint64_t max, per_client;
  httpd_refused(h, &max, &per_client);
  if (per_client != refused || max)
    fail_msg("%s: %llu refusals counted, the clients saw %u", m->name,
             (unsigned long long)per_client, refused);
  print_message("%s: %u served, %u refused\n", m->name, served, refused);
  httpd_stop(h);
}

/* Listening on "[::]" in model m (dual stack): ::1 and 127.0.0.1 are both
 * served, each a client of its own, the lane's POSTs and libmicrohttpd's
 * GETs alike; a second connection of ::1 is past its limit of 1. */
static void dual_stack(void **state) {
  const model *m = *state;
  httpd_opts o;
  httpd_opts_init(&o);
  o.host = "[::]";
  o.model = m->model;
  o.threads = 2;
  o.fast_lane = m->fast_lane;
  o.max_connections_per_client = 1;
  char err[256];
  httpd *h = httpd_start(&o, handler, NULL, err, sizeof err);
  if (!h) fail_msg("%s: httpd_start on [::]: %s", m->name, err);
  int six = local_connect6(httpd_port(h)), four = dial(h, "127.0.0.1");
  assert_true(six >= 0);
  for (int i = 0; i < 2; i++) {
    if (local_ask(six, i ? "GET" : "POST", "/x") != 200) fail_msg("%s: ::1 not served", m->name);
    if (local_ask(four, i ? "GET" : "POST", "/x") != 200)
      fail_msg("%s: 127.0.0.1 not served", m->name);
  }
  count_becomes(h, m->name, "::1", 1);
  count_becomes(h, m->name, "127.0.0.1", 1);
  int again = local_connect6(httpd_port(h));
  if (local_ask(again, "POST", "/x") != -1) fail_msg("%s: a second ::1 served", m->name);
  close(again);
  close(six);
  close(four);
  count_becomes(h, m->name, "::1", 0);
  httpd_stop(h);
}

/* Addresses httpd_start does not take. */
static void bad_hosts(void **state) {
  (void)state;
  const char *bad[] = {"localhost", "[127.0.0.1]", "::1]", "[::1", "1.2.3", "[]"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    httpd_opts o;
    httpd_opts_init(&o);
    o.host = bad[i];
    char err[256] = "";
    httpd *h = httpd_start(&o, handler, NULL, err, sizeof err);
    if (h) fail_msg("'%s' was taken", bad[i]);
    assert_non_null(strstr(err, "an IPv4 or IPv6 address is expected"));
  }
}

/* 0, the default: no count at all, and one client's many connections. */
static void zero_is_no_limit(void **state) {
  static const model lane = {"fast lane", HTTPD_HYBRID_POOL, true};
  (void)state;
  httpd *h = start(&lane, 4096, 0);
  assert_null(h->clients);
  int fd[8];
  for (int i = 0; i < 8; i++) {
    fd[i] = dial(h, "127.0.0.1");
    assert_int_equal(local_ask(fd[i], i % 2 ? "GET" : "POST", "/x"), 200);
  }
  uint64_t max, per_client;
  httpd_refused(h, &max, &per_client);
  assert_int_equal(max + per_client, 0);
  for (int i = 0; i < 8; i++) close(fd[i]);
  httpd_stop(h);
}

int main(void) {
  static const model models[] = {
      {"epoll", HTTPD_EPOLL_POOL, false},
      {"poll", HTTPD_POLL_POOL, false},
      {"thread per connection", HTTPD_THREAD_PER_CONNECTION, false},
      {"hybrid", HTTPD_HYBRID_POOL, false},
      {"fast lane", HTTPD_HYBRID_POOL, true},
  };
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(counts),
      cmocka_unit_test_prestate(check_model, (void *)&models[0]),
      cmocka_unit_test_prestate(check_model, (void *)&models[1]),
      cmocka_unit_test_prestate(check_model, (void *)&models[2]),
      cmocka_unit_test_prestate(check_model, (void *)&models[3]),
      cmocka_unit_test_prestate(check_model, (void *)&models[4]),
      cmocka_unit_test_prestate(churn_model, (void *)&models[0]),
      cmocka_unit_test_prestate(churn_model, (void *)&models[4]),
      cmocka_unit_test_prestate(dual_stack, (void *)&models[0]),
      cmocka_unit_test_prestate(dual_stack, (void *)&models[2]),
      cmocka_unit_test_prestate(dual_stack, (void *)&models[4]),
      cmocka_unit_test(bad_hosts),
      cmocka_unit_test(zero_is_no_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
