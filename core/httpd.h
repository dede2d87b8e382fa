/*
 * httpd.h — the HTTP server every Outpost endpoint runs on: libmicrohttpd
 * underneath, with explicit limits and responses that may come later from
 * another thread (a request waits, without holding a thread, until the
 * component answers it).
 *
 * Thread rules: handlers run on the server's threads, several at once.
 * httpd_respond may be called from any thread, exactly once per request.
 */
#ifndef OUTPOST_CORE_HTTPD_H
#define OUTPOST_CORE_HTTPD_H

#include "core/ce.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct httpd httpd;
typedef struct httpd_req httpd_req;

/* Called once per request, when its headers and body have arrived. A request
 * past a limit reaches the handler too, without its body, so that the
 * component can count it and answer in its own words: see httpd_limit. The
 * handler answers with httpd_respond, now or later from any thread; the
 * request stays valid until it has. */
typedef void (*httpd_handler)(void *ctx, httpd_req *req);

/* How connections are served. */
typedef enum httpd_model {
  /* A pool of epoll threads; a request the handler leaves unanswered is
   * suspended, and resumed by httpd_respond from whichever thread answers. */
  HTTPD_EPOLL_POOL = 0,
  /* A thread per connection, which waits for httpd_respond itself. */
  HTTPD_THREAD_PER_CONNECTION,
  /* The pool with poll(2) instead of epoll: suspending and resuming a
   * connection costs no system call (with epoll, two epoll_ctl), but each
   * wake-up of a thread looks at all of its connections: cheaper for tens
   * of busy connections per thread, dearer for thousands of idle ones. */
  HTTPD_POLL_POOL,
  /* Both pools behind one listening socket: a new connection goes to the
   * poll pool while it has fewer than poll_connections, else to the epoll
   * pool. Tens of busy connections get poll's cheaper suspend and resume;
   * thousands of idle ones cannot make each poll(2) look at thousands. */
  HTTPD_HYBRID_POOL,
} httpd_model;

/* A client's address as 16 bytes: IPv6, or IPv4 mapped into it
 * (::ffff:a.b.c.d), as a dual-stack socket sees an IPv4 client. */
typedef struct httpd_addr {
  uint8_t b[16];
} httpd_addr;

/* A hash of an address, for tables keyed by client: its high bits are the
 * well-mixed ones. */
static inline uint32_t httpd_addr_hash(const httpd_addr *a) {
  uint32_t x = 0, w;
  for (int i = 0; i < 16; i += 4) {
    memcpy(&w, a->b + i, sizeof w);
    x = (x ^ w) * UINT32_C(2654435761);
  }
  return x;
}

typedef struct httpd_opts {
  /* Address to listen on (default "127.0.0.1"): IPv4, or IPv6 with or
   * without brackets ("::1", "[::]"); "::" takes IPv4 clients too. */
  const char *host;
  uint16_t port;             /* 0: any free port (see httpd_port) */
  httpd_model model;         /* default HTTPD_EPOLL_POOL */
  unsigned threads;          /* polling threads of the pool (default: the number of cores) */
  unsigned poll_connections; /* HTTPD_HYBRID_POOL: connections of the poll pool (default 256) */
  size_t max_body;           /* bytes (default 1 MiB) */
  size_t max_headers;        /* header count (default 100) */
  size_t max_header_bytes;   /* all header bytes of a request (default 16 KiB) */
  unsigned max_connections;  /* default 4096 */
  /* Open connections one client (address) may hold; past it a new
   * connection of that client is closed with nothing written, as past
   * max_connections. Default 0: no limit (behind a proxy or a mesh's
   * sidecar every client has the proxy's address). */
  unsigned max_connections_per_client;
  unsigned idle_timeout_s; /* close idle keep-alive connections (default 60) */
  /* A request whose head has not come whole this many seconds after it
   * began (its first bytes on the fast lane, its request line with
   * libmicrohttpd) is refused: 408 and the connection closed, however
   * often bytes come (a client that trickles a head would hold its
   * connection for ever under the idle timeout alone). Default 10; 0:
   * never. */
  unsigned header_timeout_s;
  bool fast_lane;        /* HTTPD_HYBRID_POOL: new connections start on threads of our own, which
                            serve plain keep-alive POSTs and give anything else to libmicrohttpd
                            (core/httpd_fast.c; default off) */
  unsigned fast_threads; /* fast_lane: its threads (default: the cores but one, at least 1) */
  /* fast_lane: called with the handler's ctx on a lane thread after each
   * batch of requests it took, and again while that call gave answers
   * (which the thread then writes) and those answers let it take more: a
   * handler finishes there, in one go, what it deferred for its requests
   * (httpd_batched). NULL: none. */
  void (*batch_end)(void *ctx);
  /* fast_lane with a batch_end: before a batch ends, up to this many more
   * looks (epoll_wait that waits for nothing) for requests that came in
   * meanwhile, which join it (default 3; 0: a batch is one epoll_wait). */
  unsigned batch_polls;
  /* HTTPS: the server's certificate chain and its private key, PEM files
   * (both or neither), read at start and again when they change (looked at
   * by a handshake at most every 2 s: core/httpd_tls.c). TLS 1.2 and 1.3
   * only. Every request is libmicrohttpd's (fast_lane is ignored); on
   * HTTPD_HYBRID_POOL the lane's threads only sort new connections by their
   * first bytes: a TLS handshake goes to libmicrohttpd, a plain HTTP request
   * is answered 400 (httpd_plain_on_tls). NULL: plain HTTP. */
  const char *tls_cert_file, *tls_key_file;
} httpd_opts;

void httpd_opts_init(httpd_opts *o);

/* Starts serving. Returns NULL with a message in errbuf on failure. */
httpd *httpd_start(const httpd_opts *opts, httpd_handler handler, void *ctx, char *errbuf,
                   size_t errlen);
/* The port it listens on. */
uint16_t httpd_port(const httpd *h);
/* HTTPD_HYBRID_POOL: the open connections of its poll pool and of its
 * epoll pool (both 0 with the other models). */
void httpd_connections(const httpd *h, unsigned *poll, unsigned *epoll);
/* HTTPD_HYBRID_POOL with fast_lane: the connections the fast lane serves
 * (those it handed to libmicrohttpd count in the pools'). */
unsigned httpd_fast_connections(const httpd *h);
/* Requests refused because their head did not come whole in time
 * (header_timeout_s), since the start. */
uint64_t httpd_header_timeouts(const httpd *h);
/* Connections closed as they came, before any request was read, since
 * the start: past max_connections (*max) and past
 * max_connections_per_client (*per_client). */
void httpd_refused(const httpd *h, uint64_t *max, uint64_t *per_client);
/* With TLS: true, and the times its certificate and key were read again
 * after their files changed (*ok) and were not, leaving the pair served
 * before (*failed). Without: false. */
bool httpd_tls_reloads(const httpd *h, uint64_t *ok, uint64_t *failed);
/* With TLS on HTTPD_HYBRID_POOL: connections whose first bytes were a
 * plain HTTP request, answered 400 and closed, since the start. */
uint64_t httpd_plain_on_tls(const httpd *h);
/* Stops serving and frees. Requests still waiting for an answer must have
 * been answered before; answers not yet written are given up to 5 s to go
 * out. httpd_stop(NULL) does nothing. */
void httpd_stop(httpd *h);

/* The request: read-only, valid until answered. */
const char *httpd_method(const httpd_req *req);
const char *httpd_path(const httpd_req *req);                     /* without the query string */
const char *httpd_header(const httpd_req *req, const char *name); /* case-insensitive */
/* The address the request's connection came from (all zero when
 * unknown). */
httpd_addr httpd_client(const httpd_req *req);
/* The token of an "Authorization: Bearer <token>" header (the scheme in
 * any case), or NULL. */
const char *httpd_bearer(const httpd_req *req);
/* Whether the secrets a and b are equal, in a time that does not depend on
 * where they differ (a token compared with strcmp leaks its prefix to a
 * client that times the answers). NULL or "" matches nothing. */
bool httpd_same_secret(const char *a, const char *b);
const ce_kv *httpd_headers(const httpd_req *req, size_t *n);
const char *httpd_body(const httpd_req *req, size_t *len);
/* 0 when the request is within the limits; else the status it deserves
 * (413 body too large, 431 too many headers) with a reason in *why. */
unsigned httpd_limit(const httpd_req *req, const char **why);
/* Whether the request runs on a thread that calls opts.batch_end after it,
 * before it waits for anything else: its handler may defer work until then. */
bool httpd_batched(const httpd_req *req);
/* A query-string argument, or NULL. */
const char *httpd_query(const httpd_req *req, const char *name);

/* Answers the request: status, an optional content type and body (copied),
 * and extra headers ("Name", "value" pairs, n_extra pairs). After this the
 * request must not be touched. */
void httpd_respond(httpd_req *req, unsigned status, const char *content_type, const void *body,
                   size_t len, const char *const *extra, size_t n_extra);
/* A streamed answer's source (server-sent events, say): called on the
 * connection's thread whenever the client can take more, it appends what it
 * has to out and returns 1 (more to come), 0 (that was the last part) or -1
 * (give up: the connection is closed). It may wait for something to send,
 * but should return within about a second, with nothing appended when
 * nothing happened, so that httpd_stop is not held up; once the server is
 * stopping it is not called again and the answer ends. */
typedef int (*httpd_stream_fn)(void *ctx, ce_buf *out);

/* Answers the request with a body of unknown length (chunked), produced by
 * next. done(ctx), when not NULL, is called exactly once when the answer
 * has ended, however it ended (written, client gone, server stopped), from
 * some server thread: ctx may be freed there. Only for
 * HTTPD_THREAD_PER_CONNECTION servers, whose threads may wait. */
void httpd_respond_stream(httpd_req *req, unsigned status, const char *content_type,
                          const char *const *extra, size_t n_extra, httpd_stream_fn next,
                          void (*done)(void *ctx), void *ctx);

struct cJSON;
/* Answers with body as JSON, compact (body is freed); NULL, or a body that
 * cannot be printed, answers 500 {"error": "out of memory"}. */
void httpd_respond_json(httpd_req *req, unsigned status, struct cJSON *body);

/* Answers with a JSON error body {"error": message, "attribute": attr,
 * "index": index} (attr NULL and index < 0 are left out). */
void httpd_respond_error(httpd_req *req, unsigned status, const char *message, const char *attr,
                         int index, const char *const *extra, size_t n_extra);

#endif
