/*
 * httpd_fast.c — the fast lane of HTTPD_HYBRID_POOL (httpd_opts.fast_lane):
 * connections start on a few epoll threads of our own, which serve the
 * common request themselves and give the connection to libmicrohttpd for
 * anything else.
 *
 * The common request: POST, HTTP/1.1, a plain path (no query, no escapes),
 * a Host, a Content-Length body, no Expect, Transfer-Encoding, Upgrade or
 * Connection other than keep-alive, within the limits, and all of it in the
 * socket already. Such a request is read with MSG_PEEK first; only once it
 * is whole and understood is it taken off the socket, handed to the handler
 * as an httpd_req, and answered by httpd_respond from any thread (the answer
 * is written by the lane's thread, woken once per batch of answers). For
 * anything else nothing has been consumed, no answer is pending, and the
 * socket goes to libmicrohttpd (MHD_add_connection, as the hybrid acceptor
 * does), which serves it from then on: every error answer and every other
 * route stay libmicrohttpd's.
 *
 * Why: libmicrohttpd's request path (its pool cleared per request, an
 * eventfd write per resume, allocation and locks per request) was about a
 * third of the broker's CPU (bench/README.md).
 *
 * With TLS (httpd_opts.tls_cert_file) the lane serves nothing: one of its
 * threads sorts new connections by their first bytes (sort_tls), a
 * handshake to libmicrohttpd, plain HTTP to a 400.
 *
 * Edge-triggered epoll: a connection with an answer pending is not read;
 * data that arrives meanwhile (a pipelined request) is looked at once the
 * answer has gone.
 */
#define _GNU_SOURCE /* accept4, MSG_TRUNC on TCP */
#include "core/httpd_int.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { FAST_EVENTS = 64 };

typedef struct fconn {
  int fd;
  httpd_sockaddr peer;
  httpd_addr client; /* of peer */
  struct fworker *w;
  bool pending;  /* an answer is due */
  bool readable; /* data came while it was */
  bool closed;   /* the peer hung up while it was */
  bool rdhup;    /* the peer has shut down its sending side */
  int64_t last;  /* last activity, monotonic ms, for the idle timeout */
  /* When the first bytes of a request whose head is not whole yet came,
   * monotonic ms, for the header timeout; 0: none such. */
  int64_t head_since;
  struct fconn *prev, *next;
} fconn;

typedef struct fworker {
  httpd *h;
  struct httpd_fast *f;
  int ep, efd;
  pthread_t thread;
  pthread_mutex_t mu;
  httpd_req *done; /* answered, to write (guarded by mu) */
  fconn *incoming; /* new connections, to take up (guarded by mu) */
  fconn *conns;    /* all of this thread's connections (its own) */
  char *peek;
  time_t date_at; /* the Date header, formatted once a second */
  char date[64];
  size_t date_len;
} fworker;

struct httpd_fast {
  httpd *h;
  unsigned n;
  _Atomic unsigned next; /* round robin for new connections */
  _Atomic bool stop;
  fworker *w;
};

/* ------------------------------------------------------------- parsing */

/* RFC 9110's token characters (header names): letters, digits and
 * !#$%&'*+-.^_`|~. */
static bool tchar(char c) {
  static const uint64_t set[2] = {0x03ff6cfa00000000u, 0x57ffffffc7fffffeu};
  return ce__ascii_in(set, c);
}

static bool path_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

/* The CR LF that ends the line at p (before end), or NULL: a line with a
 * bare CR or none is declined. */
static const char *crlf(const char *p, const char *end) {
  const char *r = memchr(p, '\r', (size_t)(end - p));
  return r && r + 1 < end && r[1] == '\n' ? r : NULL;
}

/* Inlined into serve, as it was while it had no other caller: the exported
 * httpd__fast_parse below is for the fuzz target. */
static inline __attribute__((always_inline)) httpd__parse_rc
parse(const httpd_opts *o, const char *b, size_t n, httpd__line *lines, size_t max_lines,
      httpd__parsed *p) {
  static const char post[] = "POST ";
  if (n < sizeof post - 1) return memcmp(b, post, n) == 0 ? HTTPD__MORE : HTTPD__DECLINE;
  if (memcmp(b, post, sizeof post - 1)) return HTTPD__DECLINE;
  size_t limit = o->max_header_bytes ? o->max_header_bytes : HTTPD_HEADER_BYTES;
  /* One pass over the line ends up to the empty line (end: its CR LF CR LF).
   * A line ended by a bare LF (libmicrohttpd takes them) is not waited on:
   * the CR LF CR LF might never come. */
  const char *end = NULL;
  for (const char *lf = memchr(b, '\n', n); lf;
       lf = memchr(lf + 1, '\n', n - (size_t)(lf + 1 - b))) {
    if (lf == b || lf[-1] != '\r') return HTTPD__DECLINE;
    if (lf - b >= 3 && lf[-2] == '\n') { /* lf[-3] is a CR: that LF was checked */
      end = lf - 3;
      break;
    }
  }
  if (!end) return n >= limit || n == HTTPD_FAST_PEEK ? HTTPD__DECLINE : HTTPD__MORE;
  p->head = (size_t)(end - b) + 4;
  if (p->head > limit) return HTTPD__DECLINE;
  const char *s = b + sizeof post - 1, *eol = crlf(s, end + 2);
  if (!eol) return HTTPD__DECLINE; /* a bare CR in the request line */
  const char *sp = memchr(s, ' ', (size_t)(eol - s));
  if (!sp || sp == s || *s != '/' || (size_t)(eol - sp) != 9 || memcmp(sp, " HTTP/1.1", 9))
    return HTTPD__DECLINE;
  for (const char *c = s; c < sp; c++)
    if (!path_char(*c)) return HTTPD__DECLINE;
  p->path = s;
  p->path_len = (size_t)(sp - s);
  bool host = false, have_len = false;
  size_t len = 0, k = 0;
  for (const char *l = eol + 2; l < end + 2;) {
    const char *le = crlf(l, end + 2);
    if (!le) return HTTPD__DECLINE;
    const char *colon = memchr(l, ':', (size_t)(le - l));
    if (!colon || colon == l || k == max_lines) return HTTPD__DECLINE;
    for (const char *c = l; c < colon; c++)
      if (!tchar(*c)) return HTTPD__DECLINE; /* obs-fold, spaces before the colon... */
    const char *v = colon + 1, *ve = le;
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    for (const char *c = v; c < ve; c++)
      if ((unsigned char)*c < 0x20 && *c != '\t') return HTTPD__DECLINE;
    size_t nl = (size_t)(colon - l), vl = (size_t)(ve - v);
    if (CE__IEQ_LIT(l, nl, "content-length")) {
      if (have_len || vl == 0 || vl > 12) return HTTPD__DECLINE;
      for (size_t i = 0; i < vl; i++) {
        if (v[i] < '0' || v[i] > '9') return HTTPD__DECLINE;
        len = len * 10 + (size_t)(v[i] - '0');
      }
      have_len = true;
    } else if (CE__IEQ_LIT(l, nl, "host")) {
      host = true;
    } else if (CE__IEQ_LIT(l, nl, "transfer-encoding") || CE__IEQ_LIT(l, nl, "expect") ||
               CE__IEQ_LIT(l, nl, "upgrade") ||
               (CE__IEQ_LIT(l, nl, "connection") && !CE__IEQ_LIT(v, vl, "keep-alive"))) {
      return HTTPD__DECLINE;
    }
    lines[k++] = (httpd__line){l, v, nl, vl};
    l = le + 2;
  }
  if (!host || !have_len || (o->max_headers && k > o->max_headers) ||
      (o->max_body && len > o->max_body) || p->head + len > HTTPD_FAST_PEEK)
    return HTTPD__DECLINE;
  p->body_len = len;
  p->total = p->head + len;
  p->lines = lines;
  p->n_lines = k;
  return n < p->total ? HTTPD__MORE : HTTPD__TAKE;
}

httpd__parse_rc httpd__fast_parse(const httpd_opts *o, const char *b, size_t n, httpd__line *lines,
                                  size_t max_lines, httpd__parsed *p) {
  return parse(o, b, n, lines, max_lines, p);
}

/* The request as handlers see it: path, headers and body copied into one
 * allocation, each NUL-terminated (httpd_header hands out C strings). */
static httpd_req *make_req(httpd *h, fconn *c, const char *b, const httpd__parsed *p) {
  size_t bytes = p->path_len + 1;
  for (size_t i = 0; i < p->n_lines; i++) bytes += p->lines[i].name_len + p->lines[i].value_len + 2;
  httpd_req *req = calloc(1, sizeof *req + p->n_lines * sizeof(ce_kv) + bytes);
  if (!req) return NULL;
  req->h = h;
  req->fast = c;
  req->client = c->client;
  req->method = "POST";
  req->hdrs = (ce_kv *)(req + 1);
  char *at = (char *)(req->hdrs + p->n_lines);
  memcpy(at, p->path, p->path_len);
  at[p->path_len] = '\0';
  req->url = at;
  at += p->path_len + 1;
  for (size_t i = 0; i < p->n_lines; i++) {
    const httpd__line *l = &p->lines[i];
    memcpy(at, l->name, l->name_len);
    at[l->name_len] = '\0';
    memcpy(at + l->name_len + 1, l->value, l->value_len);
    at[l->name_len + 1 + l->value_len] = '\0';
    req->hdrs[i] = (ce_kv){at, l->name_len, at + l->name_len + 1, l->value_len};
    at += l->name_len + l->value_len + 2;
  }
  req->n_hdrs = p->n_lines;
  ce_buf_init(&req->body);
  if (p->body_len && ce_buf_append(&req->body, b + p->head, p->body_len)) {
    free(req);
    return NULL;
  }
  return req; /* mu and cv are libmicrohttpd's path's: never used here */
}

static void free_req(httpd_req *req) {
  ce_buf_cleanup(&req->body);
  free(req->answer);
  free(req->answer_head);
  free(req);
}

/* ---------------------------------------------------------- connections */

/* A monotonic clock in milliseconds, for the idle timeout (coarse: a few
 * ms are plenty, and it needs no system call). */
static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void unlink_conn(fworker *w, fconn *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    w->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  atomic_fetch_sub(&w->h->n_fast, 1);
}

static void close_conn(fworker *w, fconn *c) {
  epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
  httpd__close(w->h, c->fd);
  unlink_conn(w, c);
  free(c);
}

/* The connection goes to libmicrohttpd, nothing of its next request read. */
static void hand_over(fworker *w, fconn *c) {
  epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
  unlink_conn(w, c);
  httpd__to_mhd(w->h, c->fd, &c->peer);
  free(c);
}

/* With TLS: sorts a new connection by its first bytes. A TLS record (a
 * ClientHello's first byte is 22, a handshake record) goes to
 * libmicrohttpd; so does anything that is not the start of an HTTP request
 * line, for GnuTLS to refuse. A request line's method and its space (a
 * client that took https:// for http://) is answered 400 and closed, as
 * nginx does, rather than left to a handshake that fails with no answer. */
static void sort_tls(fworker *w, fconn *c) {
  char b[24];
  ssize_t n = recv(c->fd, b, sizeof b, MSG_PEEK);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    close_conn(w, c);
    return;
  }
  if (n < 0) return;
  ssize_t i = 0; /* the method's length: HTTP's methods are capitals (22 is not one) */
  while (i < n && b[i] >= 'A' && b[i] <= 'Z') i++;
  if (i > 0 && i == n && (size_t)n < sizeof b) {
    c->last = mono_ms(); /* the method still coming: the next edge says more */
    c->head_since = c->head_since ? c->head_since : c->last;
    return;
  }
  if (i > 0 && i < n && b[i] == ' ') {
    httpd__plain_on_tls_answer(w->h, c->fd);
    close_conn(w, c);
    return;
  }
  hand_over(w, c);
}

/* Serves what the connection has: one request taken (then its answer is
 * awaited), more awaited, or the connection handed over or closed. */
static void serve(fworker *w, fconn *c) {
  httpd *h = w->h;
  c->readable = false;
  if (h->tls) {
    sort_tls(w, c);
    return;
  }
  ssize_t n = recv(c->fd, w->peek, HTTPD_FAST_PEEK, MSG_PEEK);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    close_conn(w, c);
    return;
  }
  if (n < 0) return; /* nothing yet: the next edge says when */
  httpd__line lines[128];
  size_t max_lines = h->opts.max_headers && h->opts.max_headers < 128 ? h->opts.max_headers : 128;
  httpd__parsed p;
  p.head = 0; /* the parser sets it once the head is whole */
  httpd__parse_rc rc = parse(&h->opts, w->peek, (size_t)n, lines, max_lines, &p);
  if (rc == HTTPD__MORE) {
    c->last = mono_ms(); /* a request coming in is activity */
    /* Its head is timed until it is whole; a body that follows is not. */
    if (!p.head)
      c->head_since = c->head_since ? c->head_since : c->last;
    else
      c->head_since = 0;
    return;
  }
  httpd_req *req = rc == HTTPD__TAKE ? make_req(h, c, w->peek, &p) : NULL;
  if (!req) {
    hand_over(w, c);
    return;
  }
  /* Taken: off the socket now (MSG_TRUNC discards without copying). */
  if (recv(c->fd, NULL, p.total, MSG_TRUNC) != (ssize_t)p.total) {
    free_req(req);
    close_conn(w, c);
    return;
  }
  c->pending = true;
  c->head_since = 0;
  /* Looked at again once answered: a pipelined request behind it, or the
   * end of the stream (no edge will tell of it again). */
  c->readable = (size_t)n > p.total || c->rdhup;
  c->last = mono_ms();
  req->handled = true;
  h->handler(h->ctx, req);
}

static const char *date_header(fworker *w) {
  time_t now = time(NULL);
  if (now != w->date_at) {
    struct tm tm;
    gmtime_r(&now, &tm);
    w->date_len = strftime(w->date, sizeof w->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    w->date_at = now;
  }
  return w->date;
}

static char *put_str(char *at, const char *s, size_t n) {
  memcpy(at, s, n);
  return at + n;
}

static char *put_uint(char *at, size_t v) {
  char tmp[24];
  size_t n = 0;
  do tmp[n++] = (char)('0' + v % 10);
  while ((v /= 10) > 0);
  while (n) *at++ = tmp[--n];
  return at;
}

/* The answer's status line and headers into out (cap bytes); their length,
 * or 0 when they do not fit. */
static size_t answer_head(char *out, size_t cap, const httpd_req *req, const char *date,
                          size_t dl) {
  const char *reason = MHD_get_reason_phrase_for(req->status);
  size_t extra = req->answer_head ? strlen(req->answer_head) : 0, rl = strlen(reason);
  if (9 + 4 + rl + 2 + dl + 16 + 22 + 2 + extra + 2 > cap) return 0;
  char *at = put_str(out, "HTTP/1.1 ", 9);
  at = put_uint(at, req->status);
  *at++ = ' ';
  at = put_str(at, reason, rl);
  at = put_str(at, "\r\n", 2);
  at = put_str(at, date, dl);
  /* The headers in libmicrohttpd's order: Date, the handler's, then
   * Content-Length. */
  if (extra) at = put_str(at, req->answer_head, extra);
  at = put_str(at, "Content-Length: ", 16);
  at = put_uint(at, req->answer_len);
  at = put_str(at, "\r\n\r\n", 4);
  return (size_t)(at - out);
}

/* Writes the answers given since the last time, in the lane's thread. */
static void write_answers(fworker *w) {
  pthread_mutex_lock(&w->mu);
  httpd_req *list = w->done;
  w->done = NULL;
  fconn *fresh = w->incoming;
  w->incoming = NULL;
  pthread_mutex_unlock(&w->mu);
  for (fconn *c = fresh, *next; c; c = next) {
    next = c->next;
    c->prev = NULL;
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev)) {
      httpd__close(w->h, c->fd);
      unlink_conn(w, c);
      free(c);
    }
  }
  const char *date = date_header(w);
  for (httpd_req *req = list, *next; req; req = next) {
    next = req->fast_next;
    fconn *c = req->fast;
    c->pending = false;
    c->last = mono_ms();
    bool ok = !c->closed;
    if (ok) {
      char head[1024];
      size_t hn = answer_head(head, sizeof head, req, date, w->date_len);
      struct iovec iov[2] = {{head, hn}, {req->answer, req->answer_len}};
      struct msghdr m = {.msg_iov = iov, .msg_iovlen = req->answer_len ? 2 : 1};
      ssize_t sent = sendmsg(c->fd, &m, MSG_NOSIGNAL);
      /* A short write to a client that is not reading: it is closed. */
      ok = hn && sent == (ssize_t)(hn + req->answer_len);
    }
    atomic_fetch_sub(&w->h->unsent, 1);
    free_req(req);
    if (!ok)
      close_conn(w, c);
    else if (c->readable)
      serve(w, c);
  }
}

/* Closes connections idle past the idle timeout, and those whose request's
 * head has not come whole within the header timeout, after a 408 (none
 * with an answer due). */
static void sweep(fworker *w) {
  httpd *h = w->h;
  int64_t idle = (int64_t)h->opts.idle_timeout_s * 1000;
  int64_t head = (int64_t)h->opts.header_timeout_s * 1000;
  if (!idle && !head) return;
  int64_t now = mono_ms();
  for (fconn *c = w->conns, *next; c; c = next) {
    next = c->next;
    if (c->pending) continue;
    if (head && c->head_since && now - c->head_since >= head) {
      httpd__head_timeout_answer(h, c->fd);
      close_conn(w, c);
    } else if (idle && now - c->last >= idle) {
      close_conn(w, c);
    }
  }
}

/* The lane's worker whose thread this is (NULL on any other thread). */
static _Thread_local fworker *own_worker;

/* After a batch: the handler's batch_end, then the answers given meanwhile
 * (fast_answer does not wake the thread it runs on), as long as there are
 * any: writing them may take requests pipelined or waiting behind them,
 * whose deferred work the next batch_end does. */
static void batch_done(fworker *w) {
  void (*end)(void *) = w->h->opts.batch_end;
  for (;;) {
    if (end) end(w->h->ctx);
    pthread_mutex_lock(&w->mu);
    bool more = w->done || w->incoming;
    pthread_mutex_unlock(&w->mu);
    if (!more) return;
    write_answers(w);
  }
}

/* Handles the events of one epoll_wait. */
static void take_events(fworker *w, const struct epoll_event *evs, int k) {
  for (int i = 0; i < k; i++) {
    if (evs[i].data.ptr == w) {
      uint64_t v;
      (void)!read(w->efd, &v, sizeof v);
      write_answers(w);
      continue;
    }
    fconn *c = evs[i].data.ptr;
    if (evs[i].events & EPOLLRDHUP) c->rdhup = true;
    if (c->pending) {
      c->readable = true;
      /* Gone for good; a peer that only shut down its sending side
       * (EPOLLRDHUP) still reads its answer. */
      if (evs[i].events & (EPOLLHUP | EPOLLERR)) c->closed = true;
      continue;
    }
    serve(w, c);
  }
}

static void *run(void *arg) {
  fworker *w = arg;
  own_worker = w;
  pthread_setname_np(pthread_self(), "http-fast");
  struct epoll_event evs[FAST_EVENTS];
  int64_t swept = mono_ms();
  httpd_fast *f = w->f;
  /* With a batch_end (a commit and its sync, for the broker), what came in
   * while a batch was taken joins it: up to batch_polls more epoll_waits
   * that wait for nothing, so that one batch_end serves more requests. */
  unsigned polls = w->h->opts.batch_end ? w->h->opts.batch_polls : 0;
  while (!atomic_load(&f->stop)) {
    int k = epoll_wait(w->ep, evs, FAST_EVENTS, 1000);
    for (unsigned i = 0; k > 0; i++) {
      take_events(w, evs, k);
      k = i < polls ? epoll_wait(w->ep, evs, FAST_EVENTS, 0) : 0;
    }
    batch_done(w);
    if (mono_ms() - swept >= 1000) {
      swept = mono_ms();
      sweep(w);
    }
  }
  return NULL;
}

/* ----------------------------------------------------------- interface */

/* Wakes the lane's thread (its eventfd): answers or connections queued,
 * or stop. */
static void wake_up(fworker *w) {
  uint64_t one = 1;
  (void)!write(w->efd, &one, sizeof one);
}

/* Queues an answered request for its lane's thread to write: woken, unless
 * this is that thread (it writes them at the end of its batch). Pushed on
 * the front, so a batch's answers go out last answered first: with the
 * lane's commits, the requests taken last are answered first. The other
 * orders measured came out lower: first answered first in 8 of 10
 * alternating rounds, shuffled or with the halves interleaved in 6 of 8
 * each (bench/README.md, session 19). */
static void fast_answer(httpd_req *req) {
  fconn *c = req->fast;
  fworker *w = c->w;
  pthread_mutex_lock(&w->mu);
  bool wake = !w->done && !w->incoming && own_worker != w;
  req->fast_next = w->done;
  w->done = req;
  pthread_mutex_unlock(&w->mu);
  if (wake) wake_up(w);
}

void httpd__fast_respond(httpd_req *req, unsigned status, const char *content_type,
                         const void *body, size_t len, const char *const *extra, size_t n_extra) {
  ce_buf head;
  ce_buf_init(&head);
  if (content_type) {
    ce_buf_append_str(&head, "Content-Type: ");
    ce_buf_append_str(&head, content_type);
    ce_buf_append_str(&head, "\r\n");
  }
  for (size_t i = 0; i < n_extra; i++) {
    ce_buf_append_str(&head, extra[2 * i]);
    ce_buf_append_str(&head, ": ");
    ce_buf_append_str(&head, extra[2 * i + 1]);
    ce_buf_append_str(&head, "\r\n");
  }
  req->answer_head = head.data; /* NULL when empty */
  req->answer = len ? malloc(len) : NULL;
  if (len && !req->answer) {
    status = 500, len = 0;
  } else if (len) {
    memcpy(req->answer, body, len);
  }
  req->answer_len = len;
  req->status = status;
  atomic_fetch_add(&req->h->unsent, 1);
  fast_answer(req);
}

void httpd__fast_add(httpd *h, int fd, const httpd_sockaddr *peer) {
  httpd_fast *f = h->fast;
  fworker *w = &f->w[atomic_fetch_add(&f->next, 1) % f->n];
  fconn *c = calloc(1, sizeof *c);
  if (!c) {
    httpd__close(h, fd);
    return;
  }
  *c = (fconn){.fd = fd, .peer = *peer, .w = w, .last = mono_ms()};
  httpd__addr_of(&peer->sa, &c->client);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  atomic_fetch_add(&h->n_fast, 1);
  /* The worker's thread takes it up: its list and epoll set are its own. */
  pthread_mutex_lock(&w->mu);
  bool wake = !w->incoming && !w->done;
  c->next = w->incoming;
  w->incoming = c;
  pthread_mutex_unlock(&w->mu);
  if (wake) wake_up(w);
}

httpd_fast *httpd__fast_start(httpd *h, unsigned threads) {
  httpd_fast *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->h = h;
  f->n = threads ? threads : 1;
  f->w = calloc(f->n, sizeof *f->w);
  unsigned started = 0;
  for (; f->w && started < f->n; started++) {
    fworker *w = &f->w[started];
    w->h = h;
    w->f = f;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->peek = malloc(HTTPD_FAST_PEEK);
    pthread_mutex_init(&w->mu, NULL);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
    if (w->ep < 0 || w->efd < 0 || !w->peek || epoll_ctl(w->ep, EPOLL_CTL_ADD, w->efd, &ev) ||
        pthread_create(&w->thread, NULL, run, w)) {
      if (w->ep >= 0) close(w->ep);
      if (w->efd >= 0) close(w->efd);
      free(w->peek);
      pthread_mutex_destroy(&w->mu);
      break;
    }
  }
  h->fast = f;
  if (started == f->n) return f;
  f->n = started;
  httpd__fast_stop(f);
  h->fast = NULL;
  return NULL;
}

void httpd__fast_stop(httpd_fast *f) {
  if (!f) return;
  atomic_store(&f->stop, true);
  for (unsigned i = 0; i < f->n; i++) {
    fworker *w = &f->w[i];
    wake_up(w);
    pthread_join(w->thread, NULL);
    /* Answers given after the server stopped waiting for them (a request
     * that came in while it was stopping) are not written. */
    for (httpd_req *req = w->done, *next; req; req = next) {
      next = req->fast_next;
      atomic_fetch_sub(&f->h->unsent, 1);
      free_req(req);
    }
    while (w->conns) close_conn(w, w->conns);
    for (fconn *c = w->incoming, *next; c; c = next) {
      next = c->next;
      httpd__close(f->h, c->fd);
      atomic_fetch_sub(&f->h->n_fast, 1);
      free(c);
    }
    close(w->ep);
    close(w->efd);
    free(w->peek);
    pthread_mutex_destroy(&w->mu);
  }
  free(f->w);
  free(f);
}
