/*
 * httpd_clients.c — max_connections_per_client: how many connections each
 * client (address) has open, and whose each open socket is.
 *
 * A count is taken when a connection opens (the hybrid acceptor, or
 * libmicrohttpd's notice for a connection it accepted itself) and given
 * back, by socket, just before the socket is closed (the fast lane, or
 * libmicrohttpd's notice, which comes before its close). libmicrohttpd
 * closes a socket it fails to take without a notice; the kernel handing
 * out that descriptor's number again shows the connection is gone, so a
 * count still held by it is given back then.
 *
 * One mutex guards it all: it is taken twice per connection, never per
 * request.
 */
#include "core/httpd_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { BUCKETS = 1024 };

typedef struct client {
  httpd_addr addr;
  unsigned n; /* open connections, at least 1 while listed */
  struct client *next;
} client;

struct httpd_clients {
  pthread_mutex_t mu;
  client *bucket[BUCKETS];
  client **by_fd; /* per socket: the client its count is held for, or NULL */
  size_t cap;
};

static client **slot(httpd_clients *c, const httpd_addr *addr) {
  client **at = &c->bucket[httpd_addr_hash(addr) >> 22];
  while (*at && memcmp(&(*at)->addr, addr, sizeof *addr)) at = &(*at)->next;
  return at;
}

/* Gives back the count fd holds, if any (under mu). */
static void release(httpd_clients *c, int fd) {
  if (fd < 0 || (size_t)fd >= c->cap || !c->by_fd[fd]) return;
  client **at = slot(c, &c->by_fd[fd]->addr);
  c->by_fd[fd] = NULL;
  client *cl = *at;
  if (cl && --cl->n == 0) {
    *at = cl->next;
    free(cl);
  }
}

/* Makes room for fd in by_fd (under mu); false when memory is out. */
static bool reach(httpd_clients *c, int fd) {
  if ((size_t)fd < c->cap) return true;
  size_t cap = c->cap ? c->cap : 256;
  while (cap <= (size_t)fd) cap *= 2;
  client **p = realloc(c->by_fd, cap * sizeof *p);
  if (!p) return false;
  for (size_t i = c->cap; i < cap; i++) p[i] = NULL;
  c->by_fd = p;
  c->cap = cap;
  return true;
}

httpd_clients *httpd__clients_new(void) {
  httpd_clients *c = calloc(1, sizeof *c);
  if (c) pthread_mutex_init(&c->mu, NULL);
  return c;
}

void httpd__clients_free(httpd_clients *c) {
  if (!c) return;
  for (size_t i = 0; i < BUCKETS; i++)
    for (client *cl = c->bucket[i], *next; cl; cl = next) {
      next = cl->next;
      free(cl);
    }
  free(c->by_fd);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

bool httpd__client_open(httpd_clients *c, int fd, const httpd_addr *addr, unsigned limit) {
  if (fd < 0) return true;
  pthread_mutex_lock(&c->mu);
  release(c, fd); /* a connection closed unseen */
  client **at = slot(c, addr);
  bool ok = !limit || !*at || (*at)->n < limit;
  /* Out of memory, the connection is served uncounted rather than refused. */
  if (ok && reach(c, fd) && (*at || (*at = calloc(1, sizeof **at)))) {
    (*at)->addr = *addr;
    (*at)->n++;
    c->by_fd[fd] = *at;
  }
  pthread_mutex_unlock(&c->mu);
  return ok;
}

bool httpd__client_under(httpd_clients *c, const httpd_addr *addr, unsigned limit) {
  pthread_mutex_lock(&c->mu);
  client *cl = *slot(c, addr);
  bool under = !cl || cl->n < limit;
  pthread_mutex_unlock(&c->mu);
  return under;
}

void httpd__client_close(httpd_clients *c, int fd) {
  pthread_mutex_lock(&c->mu);
  release(c, fd);
  pthread_mutex_unlock(&c->mu);
}

unsigned httpd__client_count(httpd_clients *c, const httpd_addr *addr) {
  pthread_mutex_lock(&c->mu);
  client *cl = *slot(c, addr);
  unsigned n = cl ? cl->n : 0;
  pthread_mutex_unlock(&c->mu);
  return n;
}

bool httpd__addr_of(const struct sockaddr *sa, httpd_addr *out) {
  memset(out, 0, sizeof *out);
  if (sa && sa->sa_family == AF_INET6) {
    memcpy(out->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    return true;
  }
  if (sa && sa->sa_family == AF_INET) {
    out->b[10] = out->b[11] = 0xff;
    memcpy(out->b + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    return true;
  }
  return false;
}
