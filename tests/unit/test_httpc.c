/*
 * test_httpc.c — unit tests for the HTTP client in core/httpc.c, against
 * real servers on 127.0.0.1: core/httpd.h answering by path (statuses,
 * bodies, an echo of the request, Retry-After in both forms, answers held
 * back or delayed from another thread), and a raw-socket server of our own
 * that counts the connections it accepts, keeps the bytes of the last
 * request, and answers with whatever bytes a test gives it (folded or
 * too many headers, chunked bodies, garbage, nothing).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/httpc.h"
#include "core/httpd.h"

#include "test_util.h"

#define EXPECT_RANGE(got, lo, hi)                                                                  \
  do {                                                                                             \
    long long g_ = (long long)(got), l_ = (long long)(lo), h_ = (long long)(hi);                   \
    if (g_ < l_ || g_ > h_) fail_msg("%s%s%s = %lld, want %lld..%lld", WHERE, #got, g_, l_, h_);   \
  } while (0)

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

static void http_date(time_t t, char *out, size_t size) {
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, size, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* ---------------------------------------------------------------- results */

/* What one request's done callback saw (copies), and how often it ran. */
typedef struct call {
  int calls;
  int error;
  char error_text[128];
  long status;
  ce_headers hdrs;
  ce_buf body;
  int64_t retry_after_ms;
  int64_t elapsed_us;
} call;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int completed; /* callbacks run since the test began */

static void on_done(void *opaque, const httpc_result *res) {
  call *k = opaque;
  pthread_mutex_lock(&mu);
  if (k->calls++ == 0) {
    k->error = res->error;
    snprintf(k->error_text, sizeof k->error_text, "%s", res->error_text);
    k->status = res->status;
    for (size_t i = 0; i < res->n_headers; i++)
      ce_headers_add(&k->hdrs, res->headers[i].name, res->headers[i].name_len,
                     res->headers[i].value, res->headers[i].value_len);
    ce_buf_append(&k->body, res->body, res->body_len);
    k->retry_after_ms = res->retry_after_ms;
    k->elapsed_us = res->elapsed_us;
  }
  completed++;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

static call *calls_new(size_t n) {
  call *k = calloc(n, sizeof *k);
  assert_non_null(k);
  for (size_t i = 0; i < n; i++) {
    ce_headers_init(&k[i].hdrs);
    ce_buf_init(&k[i].body);
  }
  return k;
}

static void calls_free(call *k, size_t n) {
  for (size_t i = 0; i < n; i++) {
    ce_headers_cleanup(&k[i].hdrs);
    ce_buf_cleanup(&k[i].body);
  }
  free(k);
}

static int completed_now(void) {
  pthread_mutex_lock(&mu);
  int n = completed;
  pthread_mutex_unlock(&mu);
  return n;
}

/* Waits (up to 20 s) until n callbacks have run since the test began. */
static void wait_completed(int n) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 20;
  pthread_mutex_lock(&mu);
  while (completed < n)
    if (pthread_cond_timedwait(&cv, &mu, &dl) == ETIMEDOUT) break;
  int got = completed;
  pthread_mutex_unlock(&mu);
  if (got < n) fail_msg("%s%sonly %d of %d requests completed", WHERE, got, n);
}

/* The value of the answer's header `name` (exactly as the client named it),
 * or NULL. */
static const char *hdr(const call *k, const char *name) {
  for (size_t i = 0; i < k->hdrs.n; i++)
    if (strcmp(k->hdrs.items[i].name, name) == 0) return k->hdrs.items[i].value;
  return NULL;
}

/* ---------------------------------------------------------------- the httpd server */

/* Answers that wait: /slow until their time comes, /hold until released. */
typedef struct later {
  struct later *next;
  httpd_req *req;
  int64_t due_us;
  bool hold;
} later;

static struct {
  httpd *h;
  uint16_t port;
  pthread_t responder;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* on CLOCK_MONOTONIC */
  later *list;
  bool released, quit;
  int holding, max_holding;
} srv;

static void answer_later(later *l) {
  /* Counted out before the answer goes: the client may send the next
   * request on the connection as soon as it has the answer, and that one
   * must not be counted as a connection more. */
  pthread_mutex_lock(&srv.mu);
  if (l->hold) srv.holding--;
  pthread_mutex_unlock(&srv.mu);
  httpd_respond(l->req, 200, "text/plain", l->hold ? "held" : "slow", 4, NULL, 0);
  free(l);
}

static void *responder(void *arg) {
  pthread_mutex_lock(&srv.mu);
  for (;;) {
    int64_t now = mono_us(), next = INT64_MAX;
    later *ready = NULL, **pp = &srv.list;
    while (*pp) {
      later *l = *pp;
      if (l->due_us <= now || srv.quit) {
        *pp = l->next;
        l->next = ready;
        ready = l;
      } else {
        if (l->due_us < next) next = l->due_us;
        pp = &l->next;
      }
    }
    if (ready) {
      pthread_mutex_unlock(&srv.mu);
      for (later *next_l; ready; ready = next_l) {
        next_l = ready->next;
        answer_later(ready);
      }
      pthread_mutex_lock(&srv.mu);
      continue;
    }
    if (srv.quit) break;
    if (next == INT64_MAX) {
      pthread_cond_wait(&srv.cv, &srv.mu);
    } else {
      struct timespec ts = {next / 1000000, (next % 1000000) * 1000};
      pthread_cond_timedwait(&srv.cv, &srv.mu, &ts);
    }
  }
  pthread_mutex_unlock(&srv.mu);
  return NULL;
}

static void defer(httpd_req *req, int64_t delay_us, bool hold) {
  later *l = calloc(1, sizeof *l);
  if (!l) {
    httpd_respond(req, 500, NULL, NULL, 0, NULL, 0);
    return;
  }
  l->req = req;
  l->hold = hold;
  pthread_mutex_lock(&srv.mu);
  l->due_us = hold && !srv.released ? INT64_MAX : mono_us() + delay_us;
  if (hold && ++srv.holding > srv.max_holding) srv.max_holding = srv.holding;
  l->next = srv.list;
  srv.list = l;
  pthread_cond_signal(&srv.cv);
  pthread_mutex_unlock(&srv.mu);
}

/* Answers every held request, and those that arrive later at once. */
static void release_holds(void) {
  pthread_mutex_lock(&srv.mu);
  srv.released = true;
  for (later *l = srv.list; l; l = l->next)
    if (l->hold) l->due_us = 0;
  pthread_cond_signal(&srv.cv);
  pthread_mutex_unlock(&srv.mu);
}

static int holding_now(void) {
  pthread_mutex_lock(&srv.mu);
  int n = srv.holding;
  pthread_mutex_unlock(&srv.mu);
  return n;
}

/* Waits (up to 20 s) until the server holds n requests. */
static void wait_holding(int n) {
  for (int i = 0; i < 2000 && holding_now() < n; i++) sleep_ms(10);
  EXPECT_INT(holding_now(), n);
}

/* The request, sent back: body as the body, method and headers as
 * x-echo-method and x-echo-<name> headers. */
static void echo(httpd_req *req) {
  size_t n, len;
  const ce_kv *kv = httpd_headers(req, &n);
  const char *body = httpd_body(req, &len);
  const char **extra = calloc(2 * (n + 1), sizeof *extra);
  char **names = calloc(n + 1, sizeof *names);
  if (!extra || !names) {
    httpd_respond(req, 500, NULL, NULL, 0, NULL, 0);
    free(extra);
    free(names);
    return;
  }
  extra[0] = "x-echo-method";
  extra[1] = httpd_method(req);
  size_t m = 1;
  for (size_t i = 0; i < n; i++) {
    names[i] = malloc(kv[i].name_len + 8);
    if (!names[i]) continue;
    snprintf(names[i], kv[i].name_len + 8, "x-echo-%.*s", (int)kv[i].name_len, kv[i].name);
    extra[2 * m] = names[i];
    extra[2 * m + 1] = kv[i].value;
    m++;
  }
  httpd_respond(req, 200, "application/octet-stream", body, len, extra, m);
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  free(extra);
}

static void handle(void *arg, httpd_req *req) {
  const char *path = httpd_path(req), *q;
  if (strcmp(path, "/ok") == 0) {
    httpd_respond(req, 200, "text/plain", "hello", 5, NULL, 0);
  } else if (strncmp(path, "/status/", 8) == 0) {
    unsigned status = (unsigned)strtoul(path + 8, NULL, 10);
    const char *extra[4];
    size_t n = 0;
    if ((q = httpd_query(req, "ra"))) {
      extra[2 * n] = "Retry-After";
      extra[2 * n++ + 1] = q;
    }
    if (status >= 300 && status < 400) {
      extra[2 * n] = "Location";
      extra[2 * n++ + 1] = "/ok";
    }
    httpd_respond(req, status, "text/plain", "status", status == 204 ? 0 : 6, extra, n);
  } else if (strcmp(path, "/retry") == 0) {
    const char *extra[] = {"Retry-After", "3"};
    httpd_respond(req, 429, NULL, NULL, 0, extra, 1);
  } else if (strcmp(path, "/date") == 0) {
    char date[64];
    http_date(time(NULL) + 5, date, sizeof date);
    const char *extra[] = {"Retry-After", date};
    httpd_respond(req, 503, NULL, NULL, 0, extra, 1);
  } else if (strcmp(path, "/big") == 0) {
    size_t n = (q = httpd_query(req, "n")) ? strtoul(q, NULL, 10) : 2 * 1024 * 1024;
    char *body = malloc(n + 1);
    if (body) memset(body, 'b', n);
    httpd_respond(req, body ? 200 : 500, "text/plain", body, body ? n : 0, NULL, 0);
    free(body);
  } else if (strcmp(path, "/echo") == 0) {
    echo(req);
  } else if (strcmp(path, "/slow") == 0) {
    defer(req, (q = httpd_query(req, "ms")) ? atol(q) * 1000 : 1000000, false);
  } else if (strcmp(path, "/hold") == 0) {
    defer(req, 0, true);
  } else {
    httpd_respond(req, 404, NULL, NULL, 0, NULL, 0);
  }
}

static int srv_start(void **state) {
  clock_cond_init(&srv.cv);
  pthread_mutex_init(&srv.mu, NULL);
  httpd_opts o;
  httpd_opts_init(&o);
  o.threads = 2;
  o.max_body = 4 * 1024 * 1024;
  char err[256];
  srv.h = httpd_start(&o, handle, NULL, err, sizeof err);
  if (!srv.h) {
    fprintf(stderr, "httpd_start: %s\n", err);
    return -1;
  }
  srv.port = httpd_port(srv.h);
  return pthread_create(&srv.responder, NULL, responder, NULL) ? -1 : 0;
}

static int srv_stop(void **state) {
  pthread_mutex_lock(&srv.mu);
  srv.quit = true;
  pthread_cond_signal(&srv.cv);
  pthread_mutex_unlock(&srv.mu);
  pthread_join(srv.responder, NULL);
  httpd_stop(srv.h);
  return 0;
}

/* Before each test: no callbacks counted, holds hold. */
static int setup_test(void **state) {
  pthread_mutex_lock(&mu);
  completed = 0;
  pthread_mutex_unlock(&mu);
  pthread_mutex_lock(&srv.mu);
  srv.released = false;
  srv.max_holding = srv.holding;
  pthread_mutex_unlock(&srv.mu);
  return reset_ctx(state);
}

/* After each test: every waiting answer goes out, so that the next test
 * starts with none (and httpd_stop finds every request answered). */
static int teardown_test(void **state) {
  pthread_mutex_lock(&srv.mu);
  srv.released = true;
  for (later *l = srv.list; l; l = l->next) l->due_us = 0;
  pthread_cond_signal(&srv.cv);
  pthread_mutex_unlock(&srv.mu);
  for (int i = 0; i < 2000; i++) {
    pthread_mutex_lock(&srv.mu);
    bool empty = !srv.list && srv.holding == 0;
    pthread_mutex_unlock(&srv.mu);
    if (empty) break;
    sleep_ms(10);
  }
  return 0;
}

#define T_SRV(f) cmocka_unit_test_setup_teardown(f, setup_test, teardown_test)

static const char *url_of(char *buf, size_t size, uint16_t port, const char *path) {
  snprintf(buf, size, "http://127.0.0.1:%u%s", port, path);
  return buf;
}

static httpc *client(const httpc_opts *o) {
  char err[256] = "";
  httpc *c = httpc_start(o, err, sizeof err);
  if (!c) fail_msg("httpc_start: %s", err);
  return c;
}

/* Sends a request to the httpd server and waits for its callback. */
static void request(httpc *c, call *k, const char *method, const char *path, const ce_kv *hdrs,
                    size_t n_hdrs, const void *body, size_t len, long timeout_ms) {
  char url[256];
  int before = completed_now();
  EXPECT_RC(httpc_send(c, method, url_of(url, sizeof url, srv.port, path), hdrs, n_hdrs, body, len,
                       timeout_ms, on_done, k),
            0);
  wait_completed(before + 1);
}

static void get(httpc *c, call *k, const char *path) {
  CTX("GET %s", path);
  request(c, k, "GET", path, NULL, 0, NULL, 0, 5000);
}

/* ---------------------------------------------------------------- the raw server */

/* Counts accepted connections, keeps the head of the last request, and
 * answers every request with the same bytes (answer NULL: closes without
 * answering; close_after: closes after answering). */
typedef struct raw_srv {
  int lfd, wake[2];
  uint16_t port;
  pthread_t th;
  const char *answer;
  size_t answer_len;
  bool close_after;
  atomic_int accepts;
  atomic_int requests;
  pthread_mutex_t mu;
  ce_buf last; /* under mu */
} raw_srv;

typedef struct raw_conn {
  int fd;
  ce_buf in;
} raw_conn;

static size_t content_length(const char *head, size_t len) {
  for (const char *p = head; p && p < head + len; p = memchr(p, '\n', (size_t)(head + len - p))) {
    if (*p == '\n') p++;
    if (strncasecmp(p, "content-length:", 15) == 0) return strtoul(p + 15, NULL, 10);
  }
  return 0;
}

/* Reads what arrived and answers each complete request. False: close. */
static bool raw_serve(raw_srv *s, raw_conn *rc) {
  char buf[65536];
  ssize_t n = read(rc->fd, buf, sizeof buf);
  if (n <= 0 || ce_buf_append(&rc->in, buf, (size_t)n)) return false;
  for (;;) {
    char *end = strstr(rc->in.data, "\r\n\r\n");
    if (!end) return true;
    size_t head = (size_t)(end + 4 - rc->in.data);
    size_t total = head + content_length(rc->in.data, head);
    if (rc->in.len < total) return true;
    pthread_mutex_lock(&s->mu);
    ce_buf_reset(&s->last);
    ce_buf_append(&s->last, rc->in.data, head);
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(&s->requests, 1);
    memmove(rc->in.data, rc->in.data + total, rc->in.len - total);
    rc->in.len -= total;
    rc->in.data[rc->in.len] = '\0';
    if (!s->answer) return false;
    for (size_t off = 0; off < s->answer_len;) {
      ssize_t w = send(rc->fd, s->answer + off, s->answer_len - off, MSG_NOSIGNAL);
      if (w <= 0) return false;
      off += (size_t)w;
    }
    if (s->close_after) return false;
  }
}

static void *raw_run(void *arg) {
  raw_srv *s = arg;
  enum { MAX_CONNS = 64 };
  raw_conn conns[MAX_CONNS];
  size_t n = 0;
  for (;;) {
    struct pollfd p[MAX_CONNS + 2] = {{.fd = s->wake[0], .events = POLLIN},
                                      {.fd = s->lfd, .events = POLLIN}};
    for (size_t i = 0; i < n; i++) p[2 + i] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
    if (poll(p, 2 + n, -1) < 0) continue;
    if (p[0].revents) break;
    /* Backwards, so that moving the last connection into a closed one's
     * place skips nothing. */
    for (size_t i = n; i-- > 0;) {
      if (!p[2 + i].revents || raw_serve(s, &conns[i])) continue;
      close(conns[i].fd);
      ce_buf_cleanup(&conns[i].in);
      conns[i] = conns[--n];
    }
    if (p[1].revents & POLLIN) {
      int fd = accept(s->lfd, NULL, NULL);
      if (fd >= 0 && n < MAX_CONNS) {
        atomic_fetch_add(&s->accepts, 1);
        conns[n].fd = fd;
        ce_buf_init(&conns[n].in);
        ce_buf_reserve(&conns[n].in, 1); /* data is then NUL-terminated, for strstr */
        n++;
      } else if (fd >= 0) {
        close(fd);
      }
    }
  }
  for (size_t i = 0; i < n; i++) {
    close(conns[i].fd);
    ce_buf_cleanup(&conns[i].in);
  }
  return NULL;
}

static raw_srv *raw_start(const char *answer, size_t answer_len, bool close_after) {
  raw_srv *s = calloc(1, sizeof *s);
  assert_non_null(s);
  s->answer = answer;
  s->answer_len = answer_len;
  s->close_after = close_after;
  pthread_mutex_init(&s->mu, NULL);
  ce_buf_init(&s->last);
  assert_int_equal(pipe(s->wake), 0);
  s->lfd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(s->lfd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(s->lfd, 64), 0);
  assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sa, &sl), 0);
  s->port = ntohs(sa.sin_port);
  assert_int_equal(pthread_create(&s->th, NULL, raw_run, s), 0);
  return s;
}

static void raw_stop(raw_srv *s) {
  assert_int_equal(write(s->wake[1], "x", 1), 1);
  pthread_join(s->th, NULL);
  close(s->lfd);
  close(s->wake[0]);
  close(s->wake[1]);
  ce_buf_cleanup(&s->last);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

/* Sends a request to the raw server and waits for its callback. */
static void raw_request(httpc *c, raw_srv *s, call *k, const char *method, const ce_kv *hdrs,
                        size_t n_hdrs, const void *body, size_t len) {
  char url[256];
  int before = completed_now();
  EXPECT_RC(httpc_send(c, method, url_of(url, sizeof url, s->port, "/raw"), hdrs, n_hdrs, body, len,
                       5000, on_done, k),
            0);
  wait_completed(before + 1);
}

static void raw_get(httpc *c, raw_srv *s, call *k) {
  raw_request(c, s, k, "GET", NULL, 0, NULL, 0);
}

/* True when the last request's head has the line `line` (exact bytes, CRLF
 * not included). */
static bool raw_has_line(raw_srv *s, const char *line) {
  char want[512];
  snprintf(want, sizeof want, "\r\n%s\r\n", line);
  pthread_mutex_lock(&s->mu);
  bool found = s->last.data && strstr(s->last.data, want) != NULL;
  pthread_mutex_unlock(&s->mu);
  return found;
}

/* True when the last request's head names header `name` (any case). */
static bool raw_has_header(raw_srv *s, const char *name) {
  bool found = false;
  pthread_mutex_lock(&s->mu);
  for (const char *p = s->last.data; p && !found; p = strstr(p, "\r\n")) {
    p += p == s->last.data ? 0 : 2;
    found = strncasecmp(p, name, strlen(name)) == 0 && p[strlen(name)] == ':';
  }
  pthread_mutex_unlock(&s->mu);
  return found;
}

#define RAW_OK "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

/* ---------------------------------------------------------------- tests: answers */

static void statuses_and_bodies(void **state) {
  httpc *c = client(NULL);
  call *k = calls_new(6);
  get(c, &k[0], "/ok");
  get(c, &k[1], "/status/204");
  get(c, &k[2], "/status/404");
  get(c, &k[3], "/status/500");
  get(c, &k[4], "/status/302");
  get(c, &k[5], "/status/301");
  httpc_stop(c);

  CTX("/ok");
  EXPECT_RC(k[0].error, 0);
  EXPECT_STR(k[0].error_text, "");
  EXPECT_INT(k[0].status, 200);
  EXPECT_MEM(k[0].body.data, k[0].body.len, "hello", 5);
  EXPECT_STR(hdr(&k[0], "content-type"), "text/plain");
  EXPECT_STR(hdr(&k[0], "content-length"), "5");
  EXPECT_INT(k[0].retry_after_ms, -1);
  EXPECT_TRUE(k[0].elapsed_us > 0);
  CTX("/status/204");
  EXPECT_RC(k[1].error, 0);
  EXPECT_INT(k[1].status, 204);
  EXPECT_INT(k[1].body.len, 0);
  for (int i = 2; i < 6; i++) {
    CTX("request %d", i);
    EXPECT_RC(k[i].error, 0);
    EXPECT_MEM(k[i].body.data, k[i].body.len, "status", 6);
  }
  EXPECT_INT(k[2].status, 404);
  EXPECT_INT(k[3].status, 500);
  /* Redirects are answers: not followed (the body would be "hello"). */
  EXPECT_INT(k[4].status, 302);
  EXPECT_STR(hdr(&k[4], "location"), "/ok");
  EXPECT_INT(k[5].status, 301);
  for (int i = 0; i < 6; i++) EXPECT_INT(k[i].calls, 1);
  calls_free(k, 6);
}

/* A binary-mode CloudEvent as the trigger dispatcher sends it: method, ce-
 * headers, Content-Type and a body with NUL bytes arrive as given. */
static void request_as_sent(void **state) {
  static const char body[] = "{\"a\":1}\0\x01\xff\0tail";
  const ce_kv hdrs[] = {
      {"ce-specversion", 14, "1.0", 3},
      {"ce-id", 5, "42", 2},
      {"ce-source", 9, "/src", 4},
      {"ce-type", 7, "dev.example.t", 13},
      {"Content-Type", 12, "application/octet-stream", 24},
      {"ce-subject", 10, "Euro%20%E2%82%AC", 16},
  };
  httpc *c = client(NULL);
  call *k = calls_new(1);
  CTX("POST /echo");
  request(c, k, "POST", "/echo", hdrs, 6, body, sizeof body - 1, 5000);
  httpc_stop(c);
  EXPECT_RC(k->error, 0);
  EXPECT_INT(k->status, 200);
  EXPECT_STR(hdr(k, "x-echo-method"), "POST");
  EXPECT_STR(hdr(k, "x-echo-ce-specversion"), "1.0");
  EXPECT_STR(hdr(k, "x-echo-ce-id"), "42");
  EXPECT_STR(hdr(k, "x-echo-ce-source"), "/src");
  EXPECT_STR(hdr(k, "x-echo-ce-type"), "dev.example.t");
  EXPECT_STR(hdr(k, "x-echo-ce-subject"), "Euro%20%E2%82%AC");
  EXPECT_STR(hdr(k, "x-echo-content-type"), "application/octet-stream");
  char len[32];
  snprintf(len, sizeof len, "%zu", sizeof body - 1);
  EXPECT_STR(hdr(k, "x-echo-content-length"), len);
  EXPECT_TRUE(hdr(k, "x-echo-expect") == NULL);
  EXPECT_MEM(k->body.data, k->body.len, body, sizeof body - 1);
  EXPECT_INT(k->calls, 1);
  calls_free(k, 1);
}

/* Methods other than POST, with and without a body; a body without a
 * Content-Type goes without one (not libcurl's form type). */
static void methods(void **state) {
  httpc *c = client(NULL);
  call *k = calls_new(7);
  CTX("POST without content type");
  request(c, &k[0], "POST", "/echo", NULL, 0, "x=1", 3, 5000);
  CTX("PUT");
  request(c, &k[1], "PUT", "/echo", NULL, 0, "put", 3, 5000);
  CTX("PATCH empty");
  request(c, &k[2], "PATCH", "/echo", NULL, 0, NULL, 0, 5000);
  CTX("DELETE");
  request(c, &k[3], "DELETE", "/echo", NULL, 0, NULL, 0, 5000);
  CTX("GET");
  request(c, &k[4], "GET", "/echo", NULL, 0, NULL, 0, 5000);
  CTX("HEAD");
  request(c, &k[5], "HEAD", "/ok", NULL, 0, NULL, 0, 5000);
  CTX("POST empty");
  request(c, &k[6], "POST", "/echo", NULL, 0, NULL, 0, 5000);
  httpc_stop(c);

  const char *want[] = {"POST", "PUT", "PATCH", "DELETE", "GET", NULL, "POST"};
  const char *want_body[] = {"x=1", "put", "", "", "", "", ""};
  const char *want_len[] = {"3", "3", "0", NULL, NULL, NULL, "0"};
  for (int i = 0; i < 7; i++) {
    CTX("request %d (%s)", i, want[i] ? want[i] : "HEAD");
    EXPECT_RC(k[i].error, 0);
    EXPECT_INT(k[i].status, 200);
    EXPECT_INT(k[i].calls, 1);
    EXPECT_MEM(k[i].body.data ? k[i].body.data : "", k[i].body.len, want_body[i],
               strlen(want_body[i]));
    if (!want[i]) continue;
    EXPECT_STR(hdr(&k[i], "x-echo-method"), want[i]);
    EXPECT_TRUE(hdr(&k[i], "x-echo-content-type") == NULL);
    EXPECT_STR(hdr(&k[i], "x-echo-content-length"), want_len[i]);
  }
  CTX("HEAD");
  EXPECT_STR(hdr(&k[5], "content-length"), "5");
  calls_free(k, 7);
}

/* The request on the wire: HTTP/1.1, headers byte for byte (an empty value
 * included), no "Expect: 100-continue" even for a body of 1.5 MiB. */
static void request_on_the_wire(void **state) {
  raw_srv *s = raw_start(RAW_OK, strlen(RAW_OK), false);
  httpc *c = client(NULL);
  call *k = calls_new(2);
  const ce_kv hdrs[] = {{"ce-id", 5, "1", 1},
                        {"ce-empty", 8, "", 0},
                        {"X-Case", 6, "MiXed", 5},
                        {"x-blank", 7, "  ", 2}};
  CTX("small POST");
  raw_request(c, s, &k[0], "POST", hdrs, 4, "{}", 2);
  pthread_mutex_lock(&s->mu);
  bool http11 = strncmp(s->last.data, "POST /raw HTTP/1.1\r\n", 20) == 0;
  pthread_mutex_unlock(&s->mu); /* not held across a failing EXPECT, which jumps out */
  EXPECT_TRUE(http11);
  EXPECT_TRUE(raw_has_line(s, "ce-id: 1"));
  EXPECT_TRUE(raw_has_line(s, "ce-empty:"));
  EXPECT_TRUE(raw_has_line(s, "x-blank:"));
  EXPECT_TRUE(raw_has_line(s, "X-Case: MiXed"));
  EXPECT_TRUE(raw_has_line(s, "Content-Length: 2"));
  EXPECT_TRUE(!raw_has_header(s, "content-type"));
  EXPECT_TRUE(!raw_has_header(s, "expect"));

  size_t big = 1536 * 1024;
  char *body = malloc(big);
  assert_non_null(body);
  memset(body, 'e', big);
  CTX("1.5 MiB POST");
  raw_request(c, s, &k[1], "POST", hdrs, 1, body, big);
  free(body);
  EXPECT_RC(k[1].error, 0);
  EXPECT_INT(k[1].status, 200);
  EXPECT_TRUE(raw_has_line(s, "Content-Length: 1572864"));
  EXPECT_TRUE(!raw_has_header(s, "expect"));
  /* With Expect, libcurl would wait 1 s for a 100 this server never sends. */
  EXPECT_RANGE(k[1].elapsed_us, 0, 900000);
  httpc_stop(c);
  raw_stop(s);
  calls_free(k, 2);
}

/* Response headers: names lower-cased, values trimmed, repeats kept in
 * order, a folded line joined, an interim 1xx block's headers dropped. */
static void response_headers(void **state) {
  static const char answer[] = "HTTP/1.1 103 Early Hints\r\n"
                               "Link: </style.css>; rel=preload\r\n"
                               "\r\n"
                               "HTTP/1.1 200 OK\r\n"
                               "X-One:a\r\n"
                               "X-Multi:   b  \r\n"
                               "x-multi: c\r\n"
                               "X-Fold: first\r\n"
                               "  second\r\n"
                               "CE-ID: 7\r\n"
                               "Content-Length: 2\r\n"
                               "\r\n"
                               "ok";
  raw_srv *s = raw_start(answer, sizeof answer - 1, false);
  httpc *c = client(NULL);
  call *k = calls_new(1);
  raw_get(c, s, k);
  httpc_stop(c);
  raw_stop(s);
  EXPECT_RC(k->error, 0);
  EXPECT_INT(k->status, 200);
  EXPECT_MEM(k->body.data, k->body.len, "ok", 2);
  const char *want[][2] = {{"x-one", "a"},   {"x-multi", "b"},
                           {"x-multi", "c"}, {"x-fold", "first second"},
                           {"ce-id", "7"},   {"content-length", "2"}};
  EXPECT_INT(k->hdrs.n, 6);
  for (size_t i = 0; i < 6 && i < k->hdrs.n; i++) {
    CTX("header %zu", i);
    EXPECT_STR(k->hdrs.items[i].name, want[i][0]);
    EXPECT_STR(k->hdrs.items[i].value, want[i][1]);
  }
  calls_free(k, 1);
}

/* Builds an answer with n "X-H<i>: v" headers plus Content-Length. */
static char *many_headers(size_t n, size_t *len) {
  ce_buf b;
  ce_buf_init(&b);
  ce_buf_append_str(&b, "HTTP/1.1 200 OK\r\n");
  for (size_t i = 0; i < n; i++) {
    char line[64];
    snprintf(line, sizeof line, "X-H%zu: v\r\n", i);
    ce_buf_append_str(&b, line);
  }
  ce_buf_append_str(&b, "Content-Length: 2\r\n\r\nok");
  *len = b.len;
  return b.data;
}

/* max_response_headers (Content-Length counts) and max_response_header_bytes. */
static void header_limits(void **state) {
  httpc_opts o;
  httpc_opts_init(&o);
  o.max_response_headers = 10;
  o.max_response_header_bytes = 1024;
  call *k = calls_new(4);
  for (int i = 0; i < 2; i++) {
    CTX("%d headers", 10 + i);
    size_t len;
    char *answer = many_headers(9 + (size_t)i, &len);
    raw_srv *s = raw_start(answer, len, false);
    httpc *c = client(&o);
    raw_get(c, s, &k[i]);
    httpc_stop(c);
    raw_stop(s);
    free(answer);
  }
  CTX("10 headers");
  EXPECT_RC(k[0].error, 0);
  EXPECT_INT(k[0].hdrs.n, 10);
  CTX("11 headers");
  EXPECT_RC(k[1].error, -EMSGSIZE);
  EXPECT_INT(k[1].status, 200);
  EXPECT_TRUE(strstr(k[1].error_text, "headers") != NULL);

  /* 1024 bytes: the status line (17) and "X-Big: " + 998 digits + CRLF. */
  for (int i = 0; i < 2; i++) {
    CTX("header bytes %d", 1024 + i);
    char answer[2048];
    int n = snprintf(answer, sizeof answer, "HTTP/1.1 200 OK\r\nX-Big: %0*d\r\n\r\n", 998 + i, 0);
    raw_srv *s = raw_start(answer, (size_t)n, true);
    httpc *c = client(&o);
    raw_get(c, s, &k[2 + i]);
    httpc_stop(c);
    raw_stop(s);
  }
  CTX("header bytes 1024");
  EXPECT_RC(k[2].error, 0);
  CTX("header bytes 1025");
  EXPECT_RC(k[3].error, -EMSGSIZE);
  for (int i = 0; i < 4; i++) EXPECT_INT(k[i].calls, 1);
  calls_free(k, 4);
}

/* ---------------------------------------------------------------- tests: connections */

/* 100 sequential requests share one connection; an answer that says
 * "Connection: close" costs one each (which shows the count counts). */
static void keep_alive(void **state) {
  raw_srv *s = raw_start(RAW_OK, strlen(RAW_OK), false);
  httpc *c = client(NULL);
  call *k = calls_new(100);
  for (int i = 0; i < 100; i++) {
    CTX("request %d", i);
    raw_get(c, s, &k[i]);
    EXPECT_RC(k[i].error, 0);
    EXPECT_INT(k[i].status, 200);
  }
  httpc_stop(c);
  EXPECT_INT(atomic_load(&s->requests), 100);
  EXPECT_INT(atomic_load(&s->accepts), 1);
  raw_stop(s);
  calls_free(k, 100);

  static const char closing[] =
      "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
  s = raw_start(closing, sizeof closing - 1, false);
  c = client(NULL);
  k = calls_new(10);
  for (int i = 0; i < 10; i++) {
    CTX("closing request %d", i);
    raw_get(c, s, &k[i]);
    EXPECT_INT(k[i].status, 200);
  }
  httpc_stop(c);
  EXPECT_INT(atomic_load(&s->accepts), 10);
  raw_stop(s);
  calls_free(k, 10);
}

static uint16_t closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
  close(fd);
  return ntohs(sa.sin_port);
}

static void connection_refused(void **state) {
  httpc *c = client(NULL);
  call *k = calls_new(1);
  char url[128];
  EXPECT_RC(httpc_send(c, "POST", url_of(url, sizeof url, closed_port(), "/"), NULL, 0, "x", 1,
                       5000, on_done, k),
            0);
  wait_completed(1);
  httpc_stop(c);
  EXPECT_RC(k->error, -ECONNREFUSED);
  EXPECT_INT(k->status, 0);
  EXPECT_TRUE(k->error_text[0] != '\0');
  EXPECT_INT(k->calls, 1);
  calls_free(k, 1);
}

/* Answers that are not HTTP, no answer, a body cut short. */
static void broken_answers(void **state) {
  static const struct {
    const char *answer;
    bool close_after;
    int want;
  } cases[] = {
      {"SSH-2.0-OpenSSH_9.2\r\n\r\n", false, -EPROTO},
      {"HTTP/1.1 abc\r\n\r\n", false, -EPROTO},
      {NULL, false, -EIO},
      {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true, -EIO},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CTX("case %zu", i);
    const char *a = cases[i].answer;
    raw_srv *s = raw_start(a, a ? strlen(a) : 0, cases[i].close_after);
    httpc *c = client(NULL);
    call *k = calls_new(1);
    raw_get(c, s, k);
    httpc_stop(c);
    raw_stop(s);
    EXPECT_RC(k->error, cases[i].want);
    EXPECT_TRUE(k->error_text[0] != '\0');
    EXPECT_INT(k->body.len, 0);
    EXPECT_INT(k->calls, 1);
    calls_free(k, 1);
  }
}

/* ---------------------------------------------------------------- tests: limits and timing */

static void timeouts(void **state) {
  httpc *c = client(NULL);
  call *k = calls_new(2);
  CTX("/slow?ms=1000, timeout 200 ms");
  request(c, &k[0], "GET", "/slow?ms=1000", NULL, 0, NULL, 0, 200);
  EXPECT_RC(k[0].error, -ETIMEDOUT);
  EXPECT_INT(k[0].status, 0);
  EXPECT_RANGE(k[0].elapsed_us, 190000, 900000);
  CTX("/slow?ms=300, no timeout");
  request(c, &k[1], "GET", "/slow?ms=300", NULL, 0, NULL, 0, 0);
  EXPECT_RC(k[1].error, 0);
  EXPECT_INT(k[1].status, 200);
  EXPECT_MEM(k[1].body.data, k[1].body.len, "slow", 4);
  EXPECT_RANGE(k[1].elapsed_us, 300000, 5000000);
  httpc_stop(c);
  calls_free(k, 2);
}

/* A request waiting for a connection (max_per_host busy) still times out. */
static void timeout_waiting_for_connection(void **state) {
  httpc_opts o;
  httpc_opts_init(&o);
  o.max_per_host = 1;
  httpc *c = client(&o);
  call *k = calls_new(2);
  char url[128];
  EXPECT_RC(httpc_send(c, "GET", url_of(url, sizeof url, srv.port, "/hold"), NULL, 0, NULL, 0, 0,
                       on_done, &k[0]),
            0);
  wait_holding(1);
  EXPECT_RC(httpc_send(c, "GET", url_of(url, sizeof url, srv.port, "/ok"), NULL, 0, NULL, 0, 200,
                       on_done, &k[1]),
            0);
  wait_completed(1);
  EXPECT_INT(k[1].calls, 1);
  EXPECT_RC(k[1].error, -ETIMEDOUT);
  EXPECT_RANGE(k[1].elapsed_us, 190000, 1500000);
  EXPECT_INT(k[0].calls, 0);
  release_holds();
  wait_completed(2);
  EXPECT_RC(k[0].error, 0);
  httpc_stop(c);
  calls_free(k, 2);
}

static void body_limit(void **state) {
  httpc_opts o;
  httpc_opts_init(&o);
  o.max_response_body = 1000;
  httpc *c = client(&o);
  call *k = calls_new(2);
  get(c, &k[0], "/big?n=1000");
  get(c, &k[1], "/big?n=1001");
  httpc_stop(c);
  CTX("1000 bytes");
  EXPECT_RC(k[0].error, 0);
  EXPECT_INT(k[0].body.len, 1000);
  CTX("1001 bytes");
  EXPECT_RC(k[1].error, -EMSGSIZE);
  EXPECT_INT(k[1].status, 200); /* delivered, but the answer is too big */
  EXPECT_INT(k[1].body.len, 0);
  EXPECT_TRUE(strstr(k[1].error_text, "1000") != NULL);
  calls_free(k, 2);

  /* Without a Content-Length to refuse up front: counted as it arrives. */
  for (int i = 0; i < 2; i++) {
    CTX("chunked, %d bytes", 1000 + i);
    char answer[4096];
    int n = snprintf(answer, sizeof answer,
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "1f4\r\n%0500d\r\n%x\r\n%0*d\r\n0\r\n\r\n",
                     0, 500 + i, 500 + i, 0);
    raw_srv *s = raw_start(answer, (size_t)n, false);
    c = client(&o);
    k = calls_new(1);
    raw_get(c, s, k);
    httpc_stop(c);
    raw_stop(s);
    EXPECT_RC(k->error, i ? -EMSGSIZE : 0);
    EXPECT_INT(k->status, 200);
    EXPECT_INT(k->body.len, i ? 0 : 1000);
    EXPECT_INT(k->calls, 1);
    calls_free(k, 1);
  }

  /* The default limit, 1 MiB, against /big's 2 MiB. */
  c = client(NULL);
  k = calls_new(1);
  get(c, k, "/big");
  httpc_stop(c);
  EXPECT_RC(k->error, -EMSGSIZE);
  calls_free(k, 1);
}

static void retry_after(void **state) {
  httpc *c = client(NULL);
  call *k = calls_new(9);
  get(c, &k[0], "/retry");
  get(c, &k[1], "/date");
  get(c, &k[2], "/status/503?ra=Sun%2C%2006%20Nov%201994%2008%3A49%3A37%20GMT");
  get(c, &k[3], "/status/503?ra=soon");
  get(c, &k[4], "/status/503?ra=3.5");
  get(c, &k[5], "/status/503?ra=Sunday%2C%2006-Nov-94%2008%3A49%3A37%20GMT");
  get(c, &k[6], "/status/503?ra=Sun%20Nov%20%206%2008%3A49%3A37%202094");
  get(c, &k[7], "/status/429?ra=0");
  get(c, &k[8], "/status/503?ra=99999999999999999999999");
  httpc_stop(c);

  CTX("/retry: delta-seconds");
  EXPECT_INT(k[0].status, 429);
  EXPECT_INT(k[0].retry_after_ms, 3000);
  CTX("/date: an IMF-fixdate 5 s ahead");
  EXPECT_INT(k[1].status, 503);
  EXPECT_RANGE(k[1].retry_after_ms, 3000, 5000);
  CTX("IMF-fixdate in the past");
  EXPECT_INT(k[2].retry_after_ms, 0);
  CTX("not a date");
  EXPECT_INT(k[3].retry_after_ms, -1);
  CTX("not delta-seconds");
  EXPECT_INT(k[4].retry_after_ms, -1);
  CTX("RFC 850 date in the past");
  EXPECT_INT(k[5].retry_after_ms, 0);
  CTX("asctime date in 2094");
  EXPECT_TRUE(k[6].retry_after_ms > (int64_t)60 * 365 * 86400 * 1000);
  CTX("zero seconds");
  EXPECT_INT(k[7].retry_after_ms, 0);
  CTX("huge delta-seconds saturate");
  EXPECT_INT(k[8].retry_after_ms, (int64_t)1000000000000000 * 1000);
  calls_free(k, 9);
}

/* ---------------------------------------------------------------- tests: concurrency */

/* The contract: past max_inflight accepted-and-unfinished requests,
 * httpc_send refuses with -EAGAIN and never calls back; no more than
 * max_per_host connections reach one server. */
static void inflight_limit(void **state) {
  enum { N = 1000, LIMIT = 256, PER_HOST = 64 };
  httpc_opts o;
  httpc_opts_init(&o);
  EXPECT_INT(o.max_inflight, LIMIT);
  EXPECT_INT(o.max_per_host, PER_HOST);
  httpc *c = client(&o);
  call *k = calls_new(N);
  int rc[N], accepted = 0, refused = 0;
  char url[128];
  url_of(url, sizeof url, srv.port, "/hold");
  for (int i = 0; i < N; i++) {
    rc[i] = httpc_send(c, "POST", url, NULL, 0, "{}", 2, 0, on_done, &k[i]);
    if (rc[i] == 0) accepted++;
    if (rc[i] == -EAGAIN) refused++;
  }
  EXPECT_INT(accepted, LIMIT);
  EXPECT_INT(refused, N - LIMIT);
  wait_holding(PER_HOST);
  sleep_ms(200);
  EXPECT_INT(holding_now(), PER_HOST);
  EXPECT_INT(completed_now(), 0);
  release_holds();
  wait_completed(LIMIT);
  /* A slot frees with each answer. */
  call *more = calls_new(1);
  EXPECT_RC(httpc_send(c, "GET", url, NULL, 0, NULL, 0, 0, on_done, more), 0);
  wait_completed(LIMIT + 1);
  httpc_stop(c);
  for (int i = 0; i < N; i++) {
    CTX("request %d (rc %d)", i, rc[i]);
    EXPECT_INT(k[i].calls, rc[i] == 0 ? 1 : 0);
    if (rc[i] == 0) {
      EXPECT_RC(k[i].error, 0);
      EXPECT_INT(k[i].status, 200);
    }
  }
  EXPECT_INT(more->calls, 1);
  EXPECT_INT(more->status, 200);
  pthread_mutex_lock(&srv.mu);
  int max_holding = srv.max_holding;
  pthread_mutex_unlock(&srv.mu);
  EXPECT_INT(max_holding, PER_HOST);
  calls_free(k, N);
  calls_free(more, 1);
}

/* 1000 requests from a sender that waits for a slot whenever it meets
 * -EAGAIN: every one succeeds, each callback runs once. */
static void all_succeed_within_limit(void **state) {
  enum { N = 1000 };
  httpc *c = client(NULL);
  call *k = calls_new(N);
  char url[128];
  url_of(url, sizeof url, srv.port, "/slow?ms=20");
  int waits = 0;
  for (int i = 0; i < N; i++) {
    int rc;
    while ((rc = httpc_send(c, "POST", url, NULL, 0, "{}", 2, 10000, on_done, &k[i])) == -EAGAIN) {
      waits++;
      int seen = completed_now();
      wait_completed(seen + 1);
    }
    EXPECT_RC(rc, 0);
  }
  wait_completed(N);
  httpc_stop(c);
  EXPECT_TRUE(waits > 0); /* the limit was met */
  for (int i = 0; i < N; i++) {
    CTX("request %d", i);
    EXPECT_INT(k[i].calls, 1);
    EXPECT_RC(k[i].error, 0);
    EXPECT_INT(k[i].status, 200);
  }
  calls_free(k, N);
}

/* A done callback may send again (a retry): a chain of 20. */
static httpc *chain_client;
static char chain_url[128];
static call *chain_calls;
static int chain_rc[20];

static void on_chain(void *opaque, const httpc_result *res) {
  call *k = opaque;
  size_t i = (size_t)(k - chain_calls);
  if (i + 1 < 20)
    chain_rc[i + 1] =
        httpc_send(chain_client, "GET", chain_url, NULL, 0, NULL, 0, 5000, on_chain, k + 1);
  on_done(opaque, res);
}

static void send_from_callback(void **state) {
  httpc_opts o;
  httpc_opts_init(&o);
  o.max_inflight = 1; /* the callback's request takes the slot its own frees */
  chain_client = client(&o);
  chain_calls = calls_new(20);
  url_of(chain_url, sizeof chain_url, srv.port, "/ok");
  EXPECT_RC(
      httpc_send(chain_client, "GET", chain_url, NULL, 0, NULL, 0, 5000, on_chain, chain_calls), 0);
  wait_completed(20);
  httpc_stop(chain_client);
  for (int i = 0; i < 20; i++) {
    CTX("link %d", i);
    if (i) EXPECT_RC(chain_rc[i], 0);
    EXPECT_INT(chain_calls[i].calls, 1);
    EXPECT_INT(chain_calls[i].status, 200);
  }
  calls_free(chain_calls, 20);
}

/* httpc_stop with requests in flight (at the server), waiting for a
 * connection, and just queued: each completes once, with -ECANCELED; a
 * callback that sends during the stop is refused. */
static httpc *stop_client;
static int stop_resend_rc = 1;

static void on_cancelled(void *opaque, const httpc_result *res) {
  if (stop_resend_rc == 1)
    stop_resend_rc = httpc_send(stop_client, "GET", "http://127.0.0.1:1/", NULL, 0, NULL, 0, 0,
                                on_cancelled, NULL);
  if (opaque) on_done(opaque, res);
}

static void stop_cancels(void **state) {
  enum { N = 40, PER_HOST = 8 };
  httpc_opts o;
  httpc_opts_init(&o);
  o.max_per_host = PER_HOST;
  stop_client = client(&o);
  call *k = calls_new(N);
  char url[128];
  url_of(url, sizeof url, srv.port, "/hold");
  for (int i = 0; i < N / 2; i++)
    EXPECT_RC(httpc_send(stop_client, "POST", url, NULL, 0, "{}", 2, 0, on_cancelled, &k[i]), 0);
  wait_holding(PER_HOST);
  for (int i = N / 2; i < N; i++)
    EXPECT_RC(httpc_send(stop_client, "POST", url, NULL, 0, "{}", 2, 0, on_cancelled, &k[i]), 0);
  httpc_stop(stop_client);
  EXPECT_INT(completed_now(), N);
  for (int i = 0; i < N; i++) {
    CTX("request %d", i);
    EXPECT_INT(k[i].calls, 1);
    EXPECT_RC(k[i].error, -ECANCELED);
    EXPECT_INT(k[i].body.len, 0);
  }
  EXPECT_RC(stop_resend_rc, -ECANCELED);
  calls_free(k, N);
}

/* ---------------------------------------------------------------- tests: API */

static void bad_arguments(void **state) {
  httpc *c = client(NULL);
  call *k = calls_new(1);
  char ok[128];
  url_of(ok, sizeof ok, srv.port, "/ok");
  const ce_kv good = {"ce-id", 5, "1", 1};
  static const struct {
    const char *what, *method, *url;
    ce_kv h;
    const void *body;
    size_t len;
    long timeout;
  } cases[] = {
      {"NULL method", NULL, "", {0}, NULL, 0, 0},
      {"empty method", "", "", {0}, NULL, 0, 0},
      {"method with a space", "GE T", "", {0}, NULL, 0, 0},
      {"NULL url", "GET", NULL, {0}, NULL, 0, 0},
      {"ftp url", "GET", "ftp://127.0.0.1/", {0}, NULL, 0, 0},
      {"relative url", "GET", "/ok", {0}, NULL, 0, 0},
      {"url with a space", "GET", "http://127.0.0.1/a b", {0}, NULL, 0, 0},
      {"url with a newline", "GET", "http://127.0.0.1/a\r\nX: y", {0}, NULL, 0, 0},
      {"header name with a space", "GET", "", {"bad name", 8, "v", 1}, NULL, 0, 0},
      {"header name with a colon", "GET", "", {"a:b", 3, "v", 1}, NULL, 0, 0},
      {"empty header name", "GET", "", {"", 0, "v", 1}, NULL, 0, 0},
      {"header value with CRLF", "GET", "", {"x", 1, "a\r\nb: c", 7}, NULL, 0, 0},
      {"header value with NUL", "GET", "", {"x", 1, "a\0b", 3}, NULL, 0, 0},
      {"Content-Length", "POST", "", {"Content-Length", 14, "1", 1}, "x", 1, 0},
      {"transfer-encoding", "POST", "", {"transfer-encoding", 17, "chunked", 7}, "x", 1, 0},
      {"negative timeout", "GET", "", {0}, NULL, 0, -1},
      {"HEAD with a body", "HEAD", "", {0}, "x", 1, 0},
      {"NULL body with a length", "POST", "", {0}, NULL, 5, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CTX("%s", cases[i].what);
    const char *u = cases[i].url && !*cases[i].url ? ok : cases[i].url;
    const ce_kv *h = cases[i].h.name ? &cases[i].h : &good;
    EXPECT_RC(httpc_send(c, cases[i].method, u, h, 1, cases[i].body, cases[i].len, cases[i].timeout,
                         on_done, k),
              -EINVAL);
  }
  CTX("NULL done");
  EXPECT_RC(httpc_send(c, "GET", ok, NULL, 0, NULL, 0, 0, NULL, k), -EINVAL);
  CTX("NULL client");
  EXPECT_RC(httpc_send(NULL, "GET", ok, NULL, 0, NULL, 0, 0, on_done, k), -EINVAL);
  CTX("a good request after them");
  EXPECT_RC(httpc_send(c, "GET", ok, &good, 1, NULL, 0, 0, on_done, k), 0);
  wait_completed(1);
  httpc_stop(c);
  EXPECT_INT(k->calls, 1);
  EXPECT_INT(k->status, 200);
  calls_free(k, 1);
  httpc_stop(NULL);
}

/* An idle client sleeps: over half a second with a connection kept alive
 * (and the deadline of the finished request passing on the way), the whole
 * process uses little CPU. */
static void idle_sleeps(void **state) {
  httpc *c = client(NULL);
  call *k = calls_new(1);
  request(c, k, "GET", "/ok", NULL, 0, NULL, 0, 100);
  struct timespec a, b;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
  sleep_ms(500);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
  int64_t used_us = (b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000;
  EXPECT_RANGE(used_us, 0, 50000);
  httpc_stop(c);
  EXPECT_INT(k->calls, 1);
  calls_free(k, 1);
}

static void defaults(void **state) {
  httpc_opts o;
  memset(&o, 0xff, sizeof o);
  httpc_opts_init(&o);
  EXPECT_INT(o.max_inflight, 256);
  EXPECT_INT(o.max_per_host, 64);
  EXPECT_INT(o.max_response_body, 1024 * 1024);
  EXPECT_INT(o.max_response_headers, 100);
  EXPECT_INT(o.max_response_header_bytes, 64 * 1024);
  EXPECT_INT(o.connect_timeout_ms, 5000);
  /* Zero fields take the defaults. */
  memset(&o, 0, sizeof o);
  httpc *c = client(&o);
  call *k = calls_new(1);
  get(c, k, "/ok");
  httpc_stop(c);
  EXPECT_INT(k->status, 200);
  calls_free(k, 1);
}

int main(void) {
  /* Requests go straight to 127.0.0.1 whatever the environment says. */
  const char *proxies[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                           "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
  for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++) unsetenv(proxies[i]);
  const struct CMUnitTest tests[] = {
      T_SRV(statuses_and_bodies),
      T_SRV(request_as_sent),
      T_SRV(methods),
      T_SRV(request_on_the_wire),
      T_SRV(response_headers),
      T_SRV(header_limits),
      T_SRV(keep_alive),
      T_SRV(connection_refused),
      T_SRV(broken_answers),
      T_SRV(timeouts),
      T_SRV(timeout_waiting_for_connection),
      T_SRV(body_limit),
      T_SRV(retry_after),
      T_SRV(inflight_limit),
      T_SRV(all_succeed_within_limit),
      T_SRV(send_from_callback),
      T_SRV(stop_cancels),
      T_SRV(bad_arguments),
      T_SRV(idle_sleeps),
      T_SRV(defaults),
  };
  return cmocka_run_group_tests(tests, srv_start, srv_stop);
}
