/*
 * httpd.c — the HTTP server on libmicrohttpd.
 *
 * A request's body is gathered into a buffer bounded by max_body; the
 * handler runs on the final call. When the handler has not answered by the
 * time it returns, the epoll pool suspends the connection, and httpd_respond
 * resumes it from whichever thread answers: that is how the broker answers
 * 202 after a group commit without keeping a server thread waiting. With a
 * thread per connection, the connection's thread waits for the answer.
 *
 * Each connection's memory pool (headers and read buffer) is sized from
 * max_header_bytes: libmicrohttpd clears it between keep-alive requests, so
 * a bigger pool costs every request (an 80 KiB pool was 12% of the broker's
 * CPU under load).
 */
#include "core/httpd_int.h"

#include "core/clock.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void httpd_opts_init(httpd_opts *o) {
  memset(o, 0, sizeof *o); /* what is not set below is off or none */
  o->host = "127.0.0.1";
  o->port = 0;
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  o->threads = n > 0 ? (unsigned)n : 1;
  /* A core is left to the rest of the process (the broker's log writer):
   * on 2 cores one lane thread served 5 % more events/s than two, at 7 %
   * less CPU per request (bench/README.md). */
  o->fast_threads = n > 1 ? (unsigned)(n - 1) : 1;
  /* Against 0 (the batch one epoll_wait): groups of 48-50 instead of 38,
   * 7 % less CPU a request, ahead in 17 of 22 alternating rounds, with the
   * broker's lane commits (bench/README.md). */
  o->batch_polls = 3;
  o->poll_connections = 256;
  o->max_body = 1024 * 1024;
  o->max_headers = 100;
  o->max_header_bytes = HTTPD_HEADER_BYTES;
  o->max_connections = 4096;
  o->idle_timeout_s = 60;
  o->header_timeout_s = 10;
}

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    size_t key_size, const char *value, size_t value_size) {
  httpd_req *req = cls;
  if (req->hdrs) req->hdrs[req->n_hdrs] = (ce_kv){key, key_size, value ? value : "", value_size};
  req->n_hdrs++;
  return MHD_YES;
}

static int collect_headers(httpd_req *req) {
  req->n_hdrs = 0;
  MHD_get_connection_values_n(req->conn, MHD_HEADER_KIND, count_header, req);
  size_t n = req->n_hdrs;
  if (req->h->opts.max_headers && n > req->h->opts.max_headers) return -E2BIG;
  req->hdrs = calloc(n ? n : 1, sizeof *req->hdrs);
  if (!req->hdrs) return -ENOMEM;
  req->n_hdrs = 0;
  MHD_get_connection_values_n(req->conn, MHD_HEADER_KIND, count_header, req);
  return 0;
}

static void set_answer(httpd_req *req, unsigned status, struct MHD_Response *resp) {
  atomic_fetch_add(&req->h->unsent, 1);
  pthread_mutex_lock(&req->mu);
  req->status = status;
  req->resp = resp;
  req->answered = true;
  bool resume = req->suspended;
  req->suspended = false;
  pthread_cond_signal(&req->cv);
  pthread_mutex_unlock(&req->mu);
  if (resume) MHD_resume_connection(req->conn);
}

static void add_headers(struct MHD_Response *resp, const char *const *extra, size_t n_extra) {
  for (size_t i = 0; i < n_extra; i++)
    MHD_add_response_header(resp, extra[2 * i], extra[2 * i + 1]);
}

void httpd_respond(httpd_req *req, unsigned status, const char *content_type, const void *body,
                   size_t len, const char *const *extra, size_t n_extra) {
  if (req->fast) {
    httpd__fast_respond(req, status, content_type, body, len, extra, n_extra);
    return;
  }
  if (len == 0 && !content_type && n_extra == 0 && req->h->empty) {
    /* The broker's 202: no allocation, the same response each time. */
    req->shared = true;
    set_answer(req, status, req->h->empty);
    return;
  }
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
  if (resp) {
    if (content_type) MHD_add_response_header(resp, "Content-Type", content_type);
    add_headers(resp, extra, n_extra);
  }
  set_answer(req, status, resp);
}

/* A streamed answer: what is produced and not yet written. */
typedef struct stream {
  httpd *h;
  httpd_stream_fn next;
  void (*done)(void *ctx);
  void *ctx;
  ce_buf buf;
  size_t off;  /* bytes of buf already written */
  bool ended;  /* next said the last part was appended */
  bool failed; /* next gave up */
} stream;

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
  stream *st = cls;
  (void)pos;
  if (st->off == st->buf.len) {
    st->buf.len = st->off = 0;
    if (!st->ended && !st->failed) {
      int rc = atomic_load(&st->h->stopping) ? 0 : st->next(st->ctx, &st->buf);
      st->ended = rc == 0;
      st->failed = rc < 0;
    }
    if (st->buf.len == 0) {
      if (st->failed) return MHD_CONTENT_READER_END_WITH_ERROR;
      /* Nothing yet: MHD asks again (next waited on its own thread). */
      return st->ended ? MHD_CONTENT_READER_END_OF_STREAM : 0;
    }
  }
  size_t n = st->buf.len - st->off < max ? st->buf.len - st->off : max;
  memcpy(out, st->buf.data + st->off, n);
  st->off += n;
  return (ssize_t)n;
}

static void stream_free(void *cls) {
  stream *st = cls;
  if (st->done) st->done(st->ctx);
  ce_buf_cleanup(&st->buf);
  free(st);
}

void httpd_respond_stream(httpd_req *req, unsigned status, const char *content_type,
                          const char *const *extra, size_t n_extra, httpd_stream_fn next,
                          void (*done)(void *ctx), void *ctx) {
  if (req->fast) { /* the lane takes POSTs, which nothing streams to */
    if (done) done(ctx);
    httpd__fast_respond(req, 500, NULL, NULL, 0, NULL, 0);
    return;
  }
  stream *st = calloc(1, sizeof *st);
  struct MHD_Response *resp = NULL;
  if (st) {
    *st = (stream){.h = req->h, .next = next, .done = done, .ctx = ctx};
    ce_buf_init(&st->buf);
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
    if (!resp) {
      ce_buf_cleanup(&st->buf);
      free(st);
    }
  }
  if (!resp && done) done(ctx); /* the 500 below ends it at once */
  if (resp) {
    if (content_type) MHD_add_response_header(resp, "Content-Type", content_type);
    add_headers(resp, extra, n_extra);
  }
  set_answer(req, status, resp);
}

void httpd_respond_error(httpd_req *req, unsigned status, const char *message, const char *attr,
                         int index, const char *const *extra, size_t n_extra) {
  ce_buf b;
  ce_buf_init(&b);
  ce_buf_append_str(&b, "{\"error\":");
  ce__json_put_string(&b, message, strlen(message));
  if (attr && *attr) {
    ce_buf_append_str(&b, ",\"attribute\":");
    ce__json_put_string(&b, attr, strlen(attr));
  }
  if (index >= 0) {
    char n[32];
    snprintf(n, sizeof n, ",\"index\":%d", index);
    ce_buf_append_str(&b, n);
  }
  ce_buf_append_str(&b, "}\n");
  httpd_respond(req, status, "application/json", b.data, b.len, extra, n_extra);
  ce_buf_cleanup(&b);
}

void httpd_respond_json(httpd_req *req, unsigned status, cJSON *body) {
  char *text = body ? cJSON_PrintUnformatted(body) : NULL;
  cJSON_Delete(body);
  if (!text) {
    httpd_respond_error(req, 500, "out of memory", NULL, -1, NULL, 0);
    return;
  }
  httpd_respond(req, status, "application/json", text, strlen(text), NULL, 0);
  cJSON_free(text);
}

static enum MHD_Result queue_answer(httpd_req *req) {
  enum MHD_Result r;
  if (!req->resp) {
    /* Out of memory building the answer: say so without a body. */
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    r = resp ? MHD_queue_response(req->conn, 500, resp) : MHD_NO;
    if (resp) MHD_destroy_response(resp);
    return r;
  }
  r = MHD_queue_response(req->conn, req->status, req->resp);
  if (!req->shared) MHD_destroy_response(req->resp);
  req->resp = NULL;
  return r;
}

/* ------------------------------------------------ heads still coming */

static void heads_link(httpd *h, httpd_req *req) {
  pthread_mutex_lock(&h->heads_mu);
  req->head_prev = NULL;
  req->head_next = h->heads;
  if (h->heads) h->heads->head_prev = req;
  h->heads = req;
  req->in_heads = true;
  pthread_mutex_unlock(&h->heads_mu);
}

static void heads_unlink_locked(httpd *h, httpd_req *req) {
  if (!req->in_heads) return;
  if (req->head_prev)
    req->head_prev->head_next = req->head_next;
  else
    h->heads = req->head_next;
  if (req->head_next) req->head_next->head_prev = req->head_prev;
  req->in_heads = false;
}

static void heads_unlink(httpd *h, httpd_req *req) {
  pthread_mutex_lock(&h->heads_mu);
  heads_unlink_locked(h, req);
  pthread_mutex_unlock(&h->heads_mu);
}

/* A request of libmicrohttpd's connection, not yet begun; NULL when out of
 * memory. */
static httpd_req *req_new(httpd *h, struct MHD_Connection *conn) {
  httpd_req *req = calloc(1, sizeof *req);
  if (req) {
    req->h = h;
    req->conn = conn;
    req->fd = -1;
  }
  return req;
}

/* libmicrohttpd's request line has come (MHD_OPTION_URI_LOG_CALLBACK): the
 * request begins, and its head has header_timeout_s to come whole. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
  (void)uri;
  httpd *h = cls;
  httpd_req *req = req_new(h, conn);
  if (!req) return NULL; /* on_request makes it, untimed */
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (ci) req->fd = ci->connect_fd;
  req->head_since = clock_mono_ms();
  heads_link(h, req);
  return req;
}

/* Writes a closing answer (status line, JSON body) to fd, as far as the
 * socket takes it at once, then drops what the client sent (as much as is
 * there now, at most 64 KiB), so that the close after this sends the answer
 * and a FIN, not a reset that may overtake it. */
static void close_answer(int fd, const char *status, const char *body) {
  char msg[512];
  int n = snprintf(msg, sizeof msg,
                   "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                   status, strlen(body), body);
  if (n > 0 && (size_t)n < sizeof msg) (void)!send(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
  char sink[4096];
  for (int i = 0; i < 16 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++) {
  }
}

void httpd__head_timeout_answer(httpd *h, int fd) {
  atomic_fetch_add(&h->header_timeouts, 1); /* counted before the client can see it */
  char body[128];
  snprintf(body, sizeof body, "{\"error\":\"the request's head did not come whole within %u s\"}\n",
           h->opts.header_timeout_s);
  close_answer(fd, "408 Request Timeout", body);
}

void httpd__plain_on_tls_answer(httpd *h, int fd) {
  atomic_fetch_add(&h->plain_on_tls, 1);
  close_answer(fd, "400 Bad Request",
               "{\"error\":\"this port serves HTTPS: a plain HTTP request was sent to it\"}\n");
}

/* Once a second: each head of libmicrohttpd's past header_timeout_s gets
 * its 408 and its socket shut down, which libmicrohttpd's thread then sees
 * as the client gone (the only way in to a connection it serves). */
static void *sweeper(void *arg) {
  httpd *h = arg;
  int64_t limit = (int64_t)h->opts.header_timeout_s * 1000;
  pthread_mutex_lock(&h->heads_mu);
  while (!atomic_load(&h->stopping)) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait(&h->heads_cv, &h->heads_mu, &ts);
    int64_t now = clock_mono_ms();
    for (httpd_req *req = h->heads, *next; req; req = next) {
      next = req->head_next;
      if (now - req->head_since < limit || req->fd < 0) continue;
      httpd__head_timeout_answer(h, req->fd);
      shutdown(req->fd, SHUT_RDWR);
      heads_unlink_locked(h, req);
    }
  }
  pthread_mutex_unlock(&h->heads_mu);
  return NULL;
}

uint64_t httpd_header_timeouts(const httpd *h) {
  return atomic_load(&h->header_timeouts);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
  httpd *h = cls;
  httpd_req *req = *con_cls;
  if (!req || !req->begun) {
    /* The head has come whole: made here, or by on_uri at its request line. */
    if (!req) {
      if (!(req = req_new(h, conn))) return MHD_NO;
      *con_cls = req;
    } else {
      heads_unlink(h, req);
    }
    req->begun = true;
    req->method = method;
    req->url = url;
    ce_buf_init(&req->body);
    pthread_mutex_init(&req->mu, NULL);
    pthread_cond_init(&req->cv, NULL);
    int rc = collect_headers(req);
    if (rc == -E2BIG) {
      req->early_status = 431;
      req->early_msg = "too many request headers";
    } else if (rc) {
      return MHD_NO;
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (!req->early_status && cl && h->opts.max_body &&
        strtoull(cl, NULL, 10) > (unsigned long long)h->opts.max_body) {
      req->early_status = 413;
      req->early_msg = "request body too large";
    }
    return MHD_YES;
  }
  if (*upload_data_size) {
    /* Past a limit the rest of the body is read and dropped. */
    if (!req->early_status) {
      if (h->opts.max_body && req->body.len + *upload_data_size > h->opts.max_body) {
        req->early_status = 413;
        req->early_msg = "request body too large";
      } else if (ce_buf_append(&req->body, upload_data, *upload_data_size)) {
        return MHD_NO;
      }
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (!req->handled) {
    req->handled = true;
    h->handler(h->ctx, req);
  }
  pthread_mutex_lock(&req->mu);
  if (h->opts.model == HTTPD_THREAD_PER_CONNECTION) {
    while (!req->answered) pthread_cond_wait(&req->cv, &req->mu);
  } else if (!req->answered) {
    req->suspended = true;
    MHD_suspend_connection(conn);
    pthread_mutex_unlock(&req->mu);
    return MHD_YES;
  }
  pthread_mutex_unlock(&req->mu);
  return queue_answer(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  httpd_req *req = *con_cls;
  if (!req) return;
  if (!req->begun) { /* its head never came whole */
    heads_unlink(cls, req);
    free(req);
    *con_cls = NULL;
    return;
  }
  if (req->answered) atomic_fetch_sub(&req->h->unsent, 1);
  if (req->resp && !req->shared) MHD_destroy_response(req->resp);
  ce_buf_cleanup(&req->body);
  free(req->hdrs);
  pthread_mutex_destroy(&req->mu);
  pthread_cond_destroy(&req->cv);
  free(req);
  *con_cls = NULL;
}

/* Counts a daemon's connections (HTTPD_HYBRID_POOL routes by them, the
 * other models' accept policy limits by them), and, with
 * max_connections_per_client, each one's client: those the daemon accepted
 * itself from their start (the hybrid acceptor counted the others), all
 * till their close, which comes after this notice. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  (void)socket_context;
  const httpd_note *note = cls;
  httpd_clients *clients = note->h->clients;
  const union MHD_ConnectionInfo *fd =
      clients ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD) : NULL;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    atomic_fetch_add(note->n, 1);
    const union MHD_ConnectionInfo *peer =
        fd && note->accepts ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS)
                            : NULL;
    httpd_addr a;
    if (peer && httpd__addr_of(peer->client_addr, &a))
      httpd__client_open(clients, fd->connect_fd, &a, 0);
  } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
    atomic_fetch_sub(note->n, 1);
    if (fd) httpd__client_close(clients, fd->connect_fd);
  }
}

/* The accept policy of a daemon that accepts its own connections: the
 * limits of max_connections and max_connections_per_client, each refusal
 * counted (libmicrohttpd's own limit refuses without telling, and per
 * thread of its pool rather than in all). */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t len) {
  httpd *h = cls;
  (void)len;
  if (h->opts.max_connections && atomic_load(&h->n_own) >= h->opts.max_connections) {
    atomic_fetch_add(&h->refused_max, 1);
    return MHD_NO;
  }
  httpd_addr a;
  if (h->clients && httpd__addr_of(addr, &a) &&
      !httpd__client_under(h->clients, &a, h->opts.max_connections_per_client)) {
    atomic_fetch_add(&h->refused_client, 1);
    return MHD_NO;
  }
  return MHD_YES;
}

void httpd__close(httpd *h, int fd) {
  if (h->clients) httpd__client_close(h->clients, fd);
  close(fd);
}

/* libmicrohttpd's messages (a TLS handshake that failed, a client that
 * spoke plain HTTP to HTTPS, a connection it could not take) to stderr, at
 * most HTTPD_LOG_PER_S a second and then a count of those not shown: a
 * client must not be able to fill the log. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
  httpd *h = cls;
  int64_t now = clock_mono_ms() / 1000, was = atomic_load(&h->log_second);
  if (now != was && atomic_compare_exchange_strong(&h->log_second, &was, now)) {
    uint64_t hidden = atomic_exchange(&h->log_hidden, 0);
    atomic_store(&h->log_shown, 0);
    if (hidden) fprintf(stderr, "libmicrohttpd: %llu more messages\n", (unsigned long long)hidden);
  }
  if (atomic_fetch_add(&h->log_shown, 1) >= HTTPD_LOG_PER_S) {
    atomic_fetch_add(&h->log_hidden, 1);
    return;
  }
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  fprintf(stderr, "libmicrohttpd: %s%s", msg, strchr(msg, '\n') ? "" : "\n");
}

/* One libmicrohttpd daemon: listening on sa, or, with sa NULL, served only
 * the connections given to it (MHD_add_connection); its notices go to
 * note. */
static struct MHD_Daemon *daemon_start(httpd *h, unsigned flags, const httpd_sockaddr *sa,
                                       httpd_note *note) {
  bool per_conn = flags & MHD_USE_THREAD_PER_CONNECTION;
  flags |= MHD_USE_ERROR_LOG;
  if (!per_conn) flags |= MHD_ALLOW_SUSPEND_RESUME;
  if (!sa) flags |= MHD_USE_NO_LISTEN_SOCKET;
  /* An IPv6 address serves IPv4 clients too, as our own socket does. */
  if (sa && sa->sa.sa_family == AF_INET6) flags |= MHD_USE_DUAL_STACK;
  /* The pool: the headers plus a read buffer. */
  size_t mem =
      (h->opts.max_header_bytes ? h->opts.max_header_bytes : HTTPD_HEADER_BYTES) + 8 * 1024;
  struct MHD_OptionItem opt[9];
  size_t n = 0;
  opt[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, h};
  if (h->tls) {
    flags |= MHD_USE_TLS;
    opt[n++] =
        (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)httpd__tls_retrieve};
    opt[n++] =
        (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)HTTPD_TLS_PRIORITIES};
  }
  /* A thread pool only for the pool models (the option warns otherwise). */
  if (!per_conn)
    opt[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
                                       (intptr_t)(h->opts.threads ? h->opts.threads : 1), NULL};
  if (sa) opt[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, (void *)sa};
  opt[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, note};
  if (h->opts.header_timeout_s)
    opt[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, h};
  opt[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
  /* libmicrohttpd splits the limit among a pool's threads, so each thread
   * may take them all (and a few more, which the counts may lag by), and
   * the limit is ours: the acceptor's for the connections given to it, the
   * accept policy's (on_accept) for those it accepts. It must never refuse
   * one given to it itself: libmicrohttpd 0.9.75 deadlocks the thread that
   * does. */
  unsigned limit = h->opts.max_connections, threads = h->opts.threads ? h->opts.threads : 1;
  if (limit) limit = limit > UINT_MAX / (threads + 1) ? UINT_MAX : limit * (threads + 1);
  return MHD_start_daemon(flags, sa ? h->opts.port : 0, sa ? on_accept : NULL, h, on_request, h,
                          MHD_OPTION_ARRAY, opt, MHD_OPTION_CONNECTION_LIMIT, limit,
                          MHD_OPTION_CONNECTION_TIMEOUT, h->opts.idle_timeout_s,
                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem, MHD_OPTION_NOTIFY_COMPLETED,
                          on_completed, h, MHD_OPTION_END);
}

/* HTTPD_HYBRID_POOL's acceptor: each new connection goes to the poll pool
 * while it has fewer than poll_connections (counted when libmicrohttpd
 * takes them, so a burst may pass the mark by a few: it is a routing
 * threshold, not a limit), else to the epoll pool; past max_connections in
 * all, or past max_connections_per_client of its client, it is closed with
 * nothing written, as libmicrohttpd would. */
static void *acceptor(void *arg) {
  httpd *h = arg;
  for (;;) {
    httpd_sockaddr peer;
    socklen_t len = sizeof peer;
    int fd = accept(h->lfd, &peer.sa, &len);
    if (fd < 0) {
      if (atomic_load(&h->stopping)) break;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        struct timespec ts = {0, 10 * 1000 * 1000}; /* out of descriptors: let some close */
        nanosleep(&ts, NULL);
      } else if (errno == EINVAL || errno == EBADF) {
        break;
      }
      continue;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    unsigned np = atomic_load(&h->n_poll), ne = atomic_load(&h->n_epoll);
    if (h->opts.max_connections && np + ne + atomic_load(&h->n_fast) >= h->opts.max_connections) {
      atomic_fetch_add(&h->refused_max, 1);
      close(fd);
      continue;
    }
    httpd_addr a;
    if (h->clients && httpd__addr_of(&peer.sa, &a) &&
        !httpd__client_open(h->clients, fd, &a, h->opts.max_connections_per_client)) {
      atomic_fetch_add(&h->refused_client, 1);
      close(fd);
      continue;
    }
    if (h->fast)
      httpd__fast_add(h, fd, &peer);
    else
      httpd__to_mhd(h, fd, &peer);
  }
  return NULL;
}

void httpd__to_mhd(httpd *h, int fd, const httpd_sockaddr *peer) {
  /* libmicrohttpd closes the socket when it cannot take it. */
  MHD_add_connection(atomic_load(&h->n_poll) < h->opts.poll_connections ? h->d : h->d2, fd,
                     &peer->sa, httpd__sockaddr_len(peer));
}

/* Starts HTTPD_HYBRID_POOL: our listening socket, both pools, the acceptor.
 * Returns 0, or -1 with a message in errbuf (nothing left running). */
static int hybrid_start(httpd *h, const httpd_sockaddr *sa, char *errbuf, size_t errlen) {
  int one = 1, zero = 0;
  h->lfd = socket(sa->sa.sa_family, SOCK_STREAM, 0);
  /* An IPv6 socket takes IPv4 clients too (as mapped addresses), whatever
   * the system's default (net.ipv6.bindv6only). */
  if (h->lfd < 0 || fcntl(h->lfd, F_SETFD, FD_CLOEXEC) ||
      setsockopt(h->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      (sa->sa.sa_family == AF_INET6 &&
       setsockopt(h->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero)) ||
      bind(h->lfd, &sa->sa, httpd__sockaddr_len(sa)) || listen(h->lfd, SOMAXCONN)) {
    snprintf(errbuf, errlen, "cannot listen on %s:%u: %s", h->opts.host, h->opts.port,
             strerror(errno));
    if (h->lfd >= 0) close(h->lfd);
    return -1;
  }
  h->note_d = (httpd_note){h, &h->n_poll, false};
  h->note_d2 = (httpd_note){h, &h->n_epoll, false};
  h->d = daemon_start(h, MHD_USE_POLL_INTERNAL_THREAD, NULL, &h->note_d);
  h->d2 = h->d ? daemon_start(h, MHD_USE_EPOLL_INTERNAL_THREAD, NULL, &h->note_d2) : NULL;
  bool lane = h->opts.fast_lane || h->tls;
  bool fast = !lane || (h->d2 && httpd__fast_start(h, h->tls ? 1 : h->opts.fast_threads));
  if (h->d2 && fast && pthread_create(&h->acceptor, NULL, acceptor, h) == 0) return 0;
  httpd__fast_stop(h->fast);
  h->fast = NULL;
  snprintf(errbuf, errlen, "cannot start the HTTP server's threads on %s:%u%s", h->opts.host,
           h->opts.port, h->tls ? " (TLS)" : "");
  if (h->d2) MHD_stop_daemon(h->d2);
  if (h->d) MHD_stop_daemon(h->d);
  close(h->lfd);
  return -1;
}

/* host ("127.0.0.1", "::", "[::1]") and port as a socket address; -1 when
 * host is neither an IPv4 nor an IPv6 address. */
static int listen_addr(const char *host, uint16_t port, httpd_sockaddr *sa) {
  memset(sa, 0, sizeof *sa);
  if (inet_pton(AF_INET, host, &sa->in.sin_addr) == 1) {
    sa->in.sin_family = AF_INET;
    sa->in.sin_port = htons(port);
    return 0;
  }
  char v6[INET6_ADDRSTRLEN];
  size_t n = strlen(host);
  if (n >= 2 && host[0] == '[' && host[n - 1] == ']') host++, n -= 2;
  if (n >= sizeof v6) return -1;
  memcpy(v6, host, n);
  v6[n] = '\0';
  if (inet_pton(AF_INET6, v6, &sa->in6.sin6_addr) != 1) return -1;
  sa->in6.sin6_family = AF_INET6;
  sa->in6.sin6_port = htons(port);
  return 0;
}

/* Frees what httpd_start made before it failed; NULL. */
static httpd *start_failed(httpd *h) {
  pthread_cond_destroy(&h->heads_cv);
  pthread_mutex_destroy(&h->heads_mu);
  httpd__clients_free(h->clients);
  httpd__tls_free(h->tls);
  free(h);
  return NULL;
}

httpd *httpd_start(const httpd_opts *opts, httpd_handler handler, void *ctx, char *errbuf,
                   size_t errlen) {
  httpd *h = calloc(1, sizeof *h);
  if (!h) {
    snprintf(errbuf, errlen, "out of memory");
    return NULL;
  }
  if (opts)
    h->opts = *opts;
  else
    httpd_opts_init(&h->opts);
  h->handler = handler;
  h->ctx = ctx;
  pthread_mutex_init(&h->heads_mu, NULL);
  clock_cond_init(&h->heads_cv);
  if (h->opts.max_connections_per_client && !(h->clients = httpd__clients_new())) {
    snprintf(errbuf, errlen, "out of memory");
    return start_failed(h);
  }
  if (!h->opts.tls_cert_file != !h->opts.tls_key_file) {
    snprintf(errbuf, errlen, "TLS needs both a certificate and its key");
    return start_failed(h);
  }
  if (h->opts.tls_cert_file) {
    h->tls = httpd__tls_new(h->opts.tls_cert_file, h->opts.tls_key_file, errbuf, errlen);
    if (!h->tls) return start_failed(h);
    /* Known before listening: no handshake can come before it is served. */
    if (h->opts.port && httpd__tls_listen(h->tls, h->opts.port)) {
      snprintf(errbuf, errlen, "too many TLS servers in this process");
      return start_failed(h);
    }
    /* The lane reads plain sockets: it only sorts connections (httpd_fast.c). */
    h->opts.fast_lane = false;
  }
  httpd_sockaddr sa;
  if (listen_addr(h->opts.host ? h->opts.host : "127.0.0.1", h->opts.port, &sa)) {
    snprintf(errbuf, errlen, "bad listen address '%s' (an IPv4 or IPv6 address is expected)",
             h->opts.host);
    return start_failed(h);
  }
  bool per_conn = h->opts.model == HTTPD_THREAD_PER_CONNECTION;
  h->lfd = -1;
  if (h->opts.model == HTTPD_HYBRID_POOL) {
    if (hybrid_start(h, &sa, errbuf, errlen)) return start_failed(h);
  } else {
    unsigned flags =
        per_conn ? MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL
        : h->opts.model == HTTPD_POLL_POOL ? MHD_USE_POLL_INTERNAL_THREAD
                                           : MHD_USE_EPOLL_INTERNAL_THREAD;
    h->note_d = (httpd_note){h, &h->n_own, true};
    h->d = daemon_start(h, flags, &sa, &h->note_d);
    if (!h->d) {
      snprintf(errbuf, errlen, "cannot listen on %s:%u: %s%s", h->opts.host, h->opts.port,
               strerror(errno), h->tls ? " (TLS)" : "");
      return start_failed(h);
    }
  }
  if (h->tls && !h->opts.port && httpd__tls_listen(h->tls, httpd_port(h))) {
    snprintf(errbuf, errlen, "too many TLS servers in this process");
    httpd_stop(h);
    return NULL;
  }
  /* Without it every bodiless answer is built afresh (still correct). */
  h->empty = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  /* Without it heads are not timed (libmicrohttpd's idle timeout still is). */
  if (h->opts.header_timeout_s) h->sweeper_on = !pthread_create(&h->sweeper, NULL, sweeper, h);
  return h;
}

uint16_t httpd_port(const httpd *h) {
  if (h->lfd >= 0) {
    httpd_sockaddr sa;
    socklen_t len = sizeof sa;
    if (getsockname(h->lfd, &sa.sa, &len)) return 0;
    return ntohs(sa.sa.sa_family == AF_INET6 ? sa.in6.sin6_port : sa.in.sin_port);
  }
  const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
  return i ? i->port : 0;
}

unsigned httpd_fast_connections(const httpd *h) {
  return atomic_load(&h->n_fast);
}

void httpd_connections(const httpd *h, unsigned *poll, unsigned *epoll) {
  *poll = atomic_load(&h->n_poll);
  *epoll = atomic_load(&h->n_epoll);
}

uint64_t httpd_plain_on_tls(const httpd *h) {
  return atomic_load(&h->plain_on_tls);
}

bool httpd_tls_reloads(const httpd *h, uint64_t *ok, uint64_t *failed) {
  httpd__tls_reloads(h->tls, ok, failed);
  return h->tls != NULL;
}

void httpd_refused(const httpd *h, uint64_t *max, uint64_t *per_client) {
  *max = atomic_load(&h->refused_max);
  *per_client = atomic_load(&h->refused_client);
}

void httpd_stop(httpd *h) {
  if (!h) return;
  atomic_store(&h->stopping, true);
  /* Answers given but not yet written go out first (for up to 5 s). */
  for (int i = 0; i < 500 && atomic_load(&h->unsent) > 0; i++) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (h->sweeper_on) {
    pthread_mutex_lock(&h->heads_mu);
    pthread_cond_signal(&h->heads_cv);
    pthread_mutex_unlock(&h->heads_mu);
    pthread_join(h->sweeper, NULL);
  }
  if (h->lfd >= 0) {
    /* A listening socket shut down wakes the accept(2) waiting on it. */
    shutdown(h->lfd, SHUT_RDWR);
    pthread_join(h->acceptor, NULL);
    close(h->lfd);
  }
  httpd__fast_stop(h->fast);
  if (h->d2) MHD_stop_daemon(h->d2);
  MHD_stop_daemon(h->d);
  if (h->empty) MHD_destroy_response(h->empty);
  pthread_cond_destroy(&h->heads_cv);
  pthread_mutex_destroy(&h->heads_mu);
  httpd__clients_free(h->clients);
  httpd__tls_free(h->tls);
  free(h);
}

const char *httpd_method(const httpd_req *req) {
  return req->method;
}

const char *httpd_path(const httpd_req *req) {
  return req->url;
}

const char *httpd_header(const httpd_req *req, const char *name) {
  for (size_t i = 0; i < req->n_hdrs; i++)
    if (ce__ieq(req->hdrs[i].name, req->hdrs[i].name_len, name)) return req->hdrs[i].value;
  return NULL;
}

const char *httpd_bearer(const httpd_req *req) {
  const char *h = httpd_header(req, "Authorization");
  return h && ce__iprefix(h, strlen(h), "Bearer ") ? h + 7 : NULL;
}

bool httpd_same_secret(const char *a, const char *b) {
  if (!a || !b || !*a || !*b) return false;
  size_t la = strlen(a), lb = strlen(b);
  unsigned char d = la != lb;
  for (size_t i = 0; i < lb; i++) d |= (unsigned char)(a[i % la] ^ b[i]);
  return d == 0;
}

const ce_kv *httpd_headers(const httpd_req *req, size_t *n) {
  *n = req->n_hdrs;
  return req->hdrs;
}

bool httpd_batched(const httpd_req *req) {
  return req->fast && req->h->opts.batch_end;
}

const char *httpd_body(const httpd_req *req, size_t *len) {
  *len = req->body.len;
  return req->body.data ? req->body.data : "";
}

unsigned httpd_limit(const httpd_req *req, const char **why) {
  if (why) *why = req->early_msg;
  return req->early_status;
}

httpd_addr httpd_client(const httpd_req *req) {
  if (req->fast) return req->client;
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  httpd_addr a;
  httpd__addr_of(ci ? ci->client_addr : NULL, &a);
  return a;
}

const char *httpd_query(const httpd_req *req, const char *name) {
  if (req->fast) return NULL; /* the lane takes no request with a query */
  return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}
