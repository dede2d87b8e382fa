/*
 * httpd_int.h — private to core/httpd.c and core/httpd_fast.c: the server
 * and request structures, and the fast lane's entry points and request
 * parser (the latter also for its fuzz target, tests/fuzz/fuzz_lane.c).
 */
#ifndef OUTPOST_CORE_HTTPD_INT_H
#define OUTPOST_CORE_HTTPD_INT_H

#include "core/ce_int.h"
#include "core/httpd.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

struct MHD_Daemon;
struct MHD_Connection;
struct MHD_Response;
typedef struct httpd_fast httpd_fast;
typedef struct httpd_clients httpd_clients;

/* A socket address of either family. */
typedef union httpd_sockaddr {
  struct sockaddr sa;
  struct sockaddr_in in;
  struct sockaddr_in6 in6;
} httpd_sockaddr;

/* Its length by its family. */
static inline socklen_t httpd__sockaddr_len(const httpd_sockaddr *a) {
  return a->sa.sa_family == AF_INET6 ? sizeof a->in6 : sizeof a->in;
}

/* The client key of a peer's address (IPv4 mapped into IPv6); false for
 * another family (then *out is all zero). */
bool httpd__addr_of(const struct sockaddr *sa, httpd_addr *out);

/* What one libmicrohttpd daemon's connection notices count into: its open
 * connections in *n, and, with accepts (a daemon that accepts its own, not
 * given them by the hybrid acceptor), each one's client. */
typedef struct httpd_note {
  httpd *h;
  _Atomic unsigned *n;
  bool accepts;
} httpd_note;

/* TLS's certificate and key, read again when their files change
 * (httpd_tls.c). */
typedef struct httpd_tls httpd_tls;

struct httpd {
  struct MHD_Daemon *d;
  /* HTTPD_HYBRID_POOL: d polls with poll(2), d2 with epoll, and the
   * acceptor hands each new connection of lfd to one of them. */
  struct MHD_Daemon *d2;
  int lfd;
  pthread_t acceptor;               /* running while lfd >= 0 */
  _Atomic unsigned n_poll, n_epoll; /* connections of d and d2 */
  _Atomic unsigned n_own;           /* the other models: connections of d */
  httpd_note note_d, note_d2;       /* what d's and d2's notices count into */
  _Atomic long unsent;              /* answered, not yet completed (sent or closed) */
  struct MHD_Response *empty;       /* the one bodiless answer without headers, shared */
  httpd_opts opts;
  httpd_handler handler;
  void *ctx;
  _Atomic bool stopping;   /* streamed answers end at their next call */
  httpd_fast *fast;        /* HTTPD_HYBRID_POOL with fast_lane or TLS (httpd_fast.c) */
  _Atomic unsigned n_fast; /* connections of the fast lane */
  /* header_timeout_s on libmicrohttpd's connections: the requests whose
   * head is still coming (linked from their request line to their first
   * call of on_request), and the thread that cuts those past the limit. */
  pthread_mutex_t heads_mu;
  pthread_cond_t heads_cv; /* signalled to stop the sweeper */
  httpd_req *heads;
  bool sweeper_on;
  pthread_t sweeper;
  _Atomic uint64_t header_timeouts; /* both the lane's and libmicrohttpd's */
  _Atomic uint64_t plain_on_tls;    /* plain HTTP on a TLS port (the lane's sorting) */
  /* Connections closed as they came (httpd_refused). */
  _Atomic uint64_t refused_max, refused_client;
  httpd_clients *clients; /* with max_connections_per_client, else NULL */
  httpd_tls *tls;         /* with opts.tls_cert_file, else NULL */
  /* libmicrohttpd's messages shown in the current second, and since its
   * start (mhd_log). */
  _Atomic int64_t log_second;
  _Atomic unsigned log_shown;
  _Atomic uint64_t log_hidden;
};

enum { MAX_EXTRA = 8 };

struct httpd_req {
  httpd *h;
  struct MHD_Connection *conn;
  const char *method, *url;
  ce_kv *hdrs;
  size_t n_hdrs;
  ce_buf body;
  unsigned early_status; /* a limit broken before the handler ran */
  const char *early_msg;
  bool handled;
  /* libmicrohttpd's request from its request line on (on_uri): begun once
   * its head has come whole (the first call of on_request); till then
   * linked in h->heads, with its socket and when its request line came. */
  bool begun, in_heads;
  int fd;
  int64_t head_since;
  httpd_req *head_prev, *head_next;
  /* The answer, filled by httpd_respond. */
  pthread_mutex_t mu;
  pthread_cond_t cv; /* thread per connection: signalled when answered */
  bool suspended, answered;
  struct MHD_Response *resp;
  bool shared; /* resp is h->empty: queued, never destroyed here */
  unsigned status;
  /* A request of the fast lane (no conn): its connection, and the answer
   * httpd_respond made of it, for the lane's thread to write. */
  struct fconn *fast;
  httpd_addr client; /* its connection's peer (httpd_client) */
  httpd_req *fast_next;
  char *answer, *answer_head;
  size_t answer_len;
};

/* The fast lane (httpd_fast.c): started with threads threads, or NULL. */
httpd_fast *httpd__fast_start(httpd *h, unsigned threads);
/* Stops its threads and closes its connections (answers must have gone). */
void httpd__fast_stop(httpd_fast *f);
/* A new connection for the lane (the acceptor's). */
void httpd__fast_add(httpd *h, int fd, const httpd_sockaddr *peer);
/* httpd_respond for a request of the lane. */
void httpd__fast_respond(httpd_req *req, unsigned status, const char *content_type,
                         const void *body, size_t len, const char *const *extra, size_t n_extra);
/* Gives a connection to libmicrohttpd (httpd.c). */
void httpd__to_mhd(httpd *h, int fd, const httpd_sockaddr *peer);
/* Counts a head past header_timeout_s (httpd_header_timeouts) and writes
 * its 408 to fd, as far as the socket takes it at once (the caller closes
 * the connection next). */
void httpd__head_timeout_answer(httpd *h, int fd);
/* Counts a plain HTTP request on a TLS server's port (httpd_plain_on_tls)
 * and writes its 400 to fd, likewise. */
void httpd__plain_on_tls_answer(httpd *h, int fd);

/* max_connections_per_client (httpd_clients.c): each client's open
 * connections, and the client each open socket counts for. An address is
 * a client (an IPv6 client's other addresses in its /64 are others). */
httpd_clients *httpd__clients_new(void);
void httpd__clients_free(httpd_clients *c);
/* Connection fd of client addr opens. Counted and true, or, with limit not
 * 0 and addr holding limit already, false and not counted. A count fd
 * still held is given back first: the descriptor's number coming back
 * means that connection was closed unseen. */
bool httpd__client_open(httpd_clients *c, int fd, const httpd_addr *addr, unsigned limit);
/* Whether addr holds fewer than limit. */
bool httpd__client_under(httpd_clients *c, const httpd_addr *addr, unsigned limit);
/* Connection fd closes (called before close(2)): its count is given back. */
void httpd__client_close(httpd_clients *c, int fd);
/* addr's open connections (for the tests). */
unsigned httpd__client_count(httpd_clients *c, const httpd_addr *addr);
/* Closes a socket the lane or the acceptor holds, giving its count back. */
void httpd__close(httpd *h, int fd);

/* The most of a connection the lane looks at (MSG_PEEK): a request whose
 * head and body are longer is libmicrohttpd's. And the head's limit when
 * httpd_opts.max_header_bytes is 0 (httpd_opts_init sets it to the same). */
enum { HTTPD_FAST_PEEK = 16 * 1024, HTTPD_HEADER_BYTES = 16 * 1024 };

/* TLS (opts.tls_cert_file): a PEM file's most bytes, and GnuTLS's
 * priorities: its defaults, without what came before TLS 1.2. */
enum { HTTPD_PEM_MAX = 1024 * 1024, HTTPD_LOG_PER_S = 5, HTTPD_TLS_LOOK_MS = 2000 };
#define HTTPD_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* The pair of the files, loaded and checked; NULL with the reason. */
httpd_tls *httpd__tls_new(const char *cert_file, const char *key_file, char *errbuf, size_t errlen);
/* Serves handshakes on port (the process's servers are told apart by it);
 * -ENOSPC past 16 TLS servers in the process. */
int httpd__tls_listen(httpd_tls *t, uint16_t port);
/* libmicrohttpd's MHD_OPTION_HTTPS_CERT_CALLBACK: the served pair, read
 * again first when HTTPD_TLS_LOOK_MS have passed and the files changed. */
gnutls_certificate_retrieve_function2 httpd__tls_retrieve;
/* Reloads that took and that failed since the start. */
void httpd__tls_reloads(const httpd_tls *t, uint64_t *ok, uint64_t *failed);
void httpd__tls_free(httpd_tls *t);

/* One header line of a request the lane parsed: pointers into its bytes. */
typedef struct httpd__line {
  const char *name, *value;
  size_t name_len, value_len;
} httpd__line;

/* What the lane's parser makes of the bytes at the start of a connection. */
typedef enum {
  HTTPD__TAKE,    /* a whole request the lane serves (the rest may follow) */
  HTTPD__MORE,    /* such a request's beginning: wait for more bytes */
  HTTPD__DECLINE, /* anything else: libmicrohttpd's */
} httpd__parse_rc;

typedef struct httpd__parsed {
  size_t total, head, body_len; /* bytes of the request, of its head, of its body */
  const char *path;
  size_t path_len;
  httpd__line *lines; /* the lines given to the parser, n_lines of them used */
  size_t n_lines;
} httpd__parsed;

/* Parses b[0..n) (n at most HTTPD_FAST_PEEK) as the lane's common request
 * under o's limits: a POST to a plain path in HTTP/1.1, header lines ended by
 * CR LF (at most max_lines of them), a Host, a Content-Length, and no
 * Transfer-Encoding, Expect, Upgrade or Connection other than keep-alive.
 * *p is filled for HTTPD__TAKE (and for HTTPD__MORE once the head is whole). */
httpd__parse_rc httpd__fast_parse(const httpd_opts *o, const char *b, size_t n, httpd__line *lines,
                                  size_t max_lines, httpd__parsed *p);

#endif
