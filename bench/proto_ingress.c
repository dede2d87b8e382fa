/*
 * proto_ingress.c — an EXPERIMENT, not part of Outpost: the broker's
 * embedded-log ingress path (broker__ingress_fast, broker_log_append on the
 * SQLite log with group commit, 202 once the commit is durable) behind a
 * minimal HTTP/1.1 loop of its own instead of libmicrohttpd, to measure what
 * the HTTP layer costs (bench/README.md, "an HTTP loop of our own"). It
 * speaks only what wrk's ingress.lua and bench/lib.sh send: Content-Length
 * bodies, keep-alive, GET /metrics and /healthz (answered, then closed). No
 * routing (every POST goes to the default broker's topic), no limits but the
 * codec's, no admin API; on SIGTERM it exits without waiting for appends in
 * flight. Usable as OUTPOST for bench_ingress_pairs.sh:
 *
 *   OUTPOST=build-bench/bench/proto_ingress bash bench/bench_ingress_pairs.sh
 *
 * (it takes --listen HOST:PORT, --data FILE and --threads N, ignores the
 * rest, and prints "listening on ..." as outpost broker does).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/broker_int.h"

static broker_log *LOG;
static const char *TOPIC = "knative-broker-default-default";
static ce_limits LIM;
static int PORT = 0;
static _Atomic long ACCEPTED, REJECTED, INFLIGHT;

typedef struct worker worker;
typedef struct conn {
  int fd;
  worker *w;
  size_t len;
  struct conn *next;
  int status;
  bool pending, closed; /* an append in flight; the peer has gone meanwhile */
  char buf[16384];
} conn;

struct worker {
  int ep, efd, lfd;
  time_t date_at;
  char r202[128];
  size_t r202_len;
  pthread_mutex_t mu;
  conn *done;
  pthread_t t;
};

static const char R200[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
static const char R400[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
static const char R503[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";

static void on_durable(void *opaque, int status) {
  conn *c = opaque;
  worker *w = c->w;
  c->status = status;
  atomic_fetch_sub(&INFLIGHT, 1);
  atomic_fetch_add(status ? &REJECTED : &ACCEPTED, 1);
  pthread_mutex_lock(&w->mu);
  bool wake = !w->done;
  c->next = w->done;
  w->done = c;
  pthread_mutex_unlock(&w->mu);
  if (wake) {
    uint64_t one = 1;
    (void)!write(w->efd, &one, 8);
  }
}

static void now_rfc3339(char out[40]) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, 40 - n, ".%06ldZ", ts.tv_nsec / 1000);
}

/* One request at the start of c->buf: 1 handled (consumed), 0 need more, -1 close. */
static int handle(conn *c) {
  char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
  if (!end) return c->len == sizeof c->buf ? -1 : 0;
  size_t head = (size_t)(end - c->buf) + 4;
  char *line_end = memmem(c->buf, head, "\r\n", 2);
  ce_kv hdrs[64];
  size_t n = 0, clen = 0;
  for (char *p = line_end + 2; p < end && n < 64;) {
    char *e = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
    char *colon = memchr(p, ':', (size_t)(e - p));
    if (!colon) return -1;
    char *v = colon + 1;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    hdrs[n] = (ce_kv){p, (size_t)(colon - p), v, (size_t)(e - v)};
    if (hdrs[n].name_len == 14 && strncasecmp(p, "content-length", 14) == 0)
      clen = strtoul(v, NULL, 10);
    n++;
    p = e + 2;
  }
  if (c->len < head + clen) return 0;
  if (c->buf[0] == 'G') { /* /metrics or anything else (health): answered, then closed */
    if (c->len > 12 && memcmp(c->buf, "GET /metrics", 12) == 0) {
      char m[512], r[640];
      int mlen = snprintf(m, sizeof m,
                          "outpost_ingress_events_accepted_total %ld\n"
                          "outpost_ingress_requests_rejected_total %ld\n"
                          "outpost_ingress_inflight_requests %ld\n",
                          atomic_load(&ACCEPTED), atomic_load(&REJECTED), atomic_load(&INFLIGHT));
      int k = snprintf(r, sizeof r, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", mlen, m);
      (void)!send(c->fd, r, (size_t)k, MSG_NOSIGNAL);
    } else {
      (void)!send(c->fd, R200, sizeof R200 - 1, MSG_NOSIGNAL);
    }
    return -1;
  } else {
    char now[40];
    now_rfc3339(now);
    broker_batch b;
    if (broker__ingress_fast(hdrs, n, c->buf + head, clen, &LIM, 255, now, &b)) {
      atomic_fetch_add(&REJECTED, 1);
      (void)!send(c->fd, R400, sizeof R400 - 1, MSG_NOSIGNAL);
    } else {
      c->pending = true;
      atomic_fetch_add(&INFLIGHT, 1);
      int rc = broker_log_append(LOG, TOPIC, b.recs, b.n, on_durable, c);
      broker_batch_cleanup(&b);
      if (rc) {
        c->pending = false;
        atomic_fetch_sub(&INFLIGHT, 1);
        atomic_fetch_add(&REJECTED, 1);
        (void)!send(c->fd, R503, sizeof R503 - 1, MSG_NOSIGNAL);
      }
    }
  }
  memmove(c->buf, c->buf + head + clen, c->len - head - clen);
  c->len -= head + clen;
  return 1;
}

static void *run(void *arg) {
  worker *w = arg;
  struct epoll_event evs[64];
  for (;;) {
    int k = epoll_wait(w->ep, evs, 64, -1);
    for (int i = 0; i < k; i++) {
      void *p = evs[i].data.ptr;
      if (p == &w->lfd) {
        int fd;
        while ((fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conn *c = calloc(1, sizeof *c);
          c->fd = fd;
          c->w = w;
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
          epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
        }
      } else if (p == &w->efd) {
        uint64_t v;
        (void)!read(w->efd, &v, 8);
        pthread_mutex_lock(&w->mu);
        conn *list = w->done;
        w->done = NULL;
        pthread_mutex_unlock(&w->mu);
        time_t now = time(NULL);
        if (now != w->date_at) { /* the Date header, formatted once a second */
          struct tm tm;
          gmtime_r(&now, &tm);
          w->r202_len = strftime(w->r202, sizeof w->r202,
                                 "HTTP/1.1 202 Accepted\r\nDate: %a, %d %b %Y %H:%M:%S GMT\r\n"
                                 "Content-Length: 0\r\n\r\n",
                                 &tm);
          w->date_at = now;
        }
        for (conn *c = list, *next; c; c = next) {
          next = c->next;
          c->pending = false;
          if (c->closed) {
            free(c);
          } else if (c->status) {
            (void)!send(c->fd, R503, sizeof R503 - 1, MSG_NOSIGNAL);
          } else {
            (void)!send(c->fd, w->r202, w->r202_len, MSG_NOSIGNAL);
          }
        }
      } else {
        conn *c = p;
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (r <= 0) {
          if (r < 0 && errno == EAGAIN) continue;
          epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
          close(c->fd);
          if (c->pending)
            c->closed = true; /* freed when its append completes */
          else
            free(c);
          continue;
        }
        c->len += (size_t)r;
        int h;
        while ((h = handle(c)) == 1) {
        }
        if (h < 0) {
          epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
          close(c->fd);
          if (c->pending)
            c->closed = true;
          else
            free(c);
        }
      }
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  const char *data = "/tmp/proto.db";
  int threads = 2;
  for (int i = 1; i + 1 < argc; i++) {
    if (!strcmp(argv[i], "--listen")) PORT = atoi(strrchr(argv[i + 1], ':') + 1);
    if (!strcmp(argv[i], "--data")) data = argv[i + 1];
    if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
  }
  ce_limits_init(&LIM);
  char err[256];
  LOG = broker_log_sqlite_open(data, NULL, err, sizeof err);
  if (!LOG || broker_log_partitions(LOG, TOPIC) < 0) {
    fprintf(stderr, "proto: %s\n", err);
    return 1;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* for every thread: main waits for them below */
  worker *ws = calloc((size_t)threads, sizeof *ws);
  for (int i = 0; i < threads; i++) {
    worker *w = &ws[i];
    w->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(w->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(w->lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)PORT),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(w->lfd, (struct sockaddr *)&sa, sizeof sa) || listen(w->lfd, 1024)) {
      perror("proto: bind");
      return 1;
    }
    if (PORT == 0) { /* the first listener's port, for the others too */
      socklen_t len = sizeof sa;
      getsockname(w->lfd, (struct sockaddr *)&sa, &len);
      PORT = ntohs(sa.sin_port);
    }
    w->ep = epoll_create1(0);
    w->efd = eventfd(0, EFD_NONBLOCK);
    pthread_mutex_init(&w->mu, NULL);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &w->lfd};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, w->lfd, &ev);
    ev.data.ptr = &w->efd;
    epoll_ctl(w->ep, EPOLL_CTL_ADD, w->efd, &ev);
    pthread_create(&w->t, NULL, run, w);
  }
  printf("listening on http://127.0.0.1:%d\n", PORT);
  fflush(stdout);
  int sig;
  sigwait(&set, &sig);
  return 0; /* an experiment: appends in flight are not waited for */
}
