/*
 * rate.c — the ingress's per-client rate limit (--client-rate,
 * --client-burst): events a second each client address may send, as a
 * token bucket of burst events refilled at rate.
 *
 * Each client is one time, its bucket's "theoretical arrival time" (the
 * generic cell rate algorithm): the bucket is full when that time is now or
 * past, and each event moves it on by 1/rate s. A request is admitted while
 * the bucket holds one event or more; all its events are taken then, so a
 * batch bigger than what is left leaves the client owing, and it waits
 * until it has paid. A client whose time has passed is the same as one
 * never seen, so those are dropped whenever the table has doubled since it
 * was last swept.
 */
#include "broker/broker_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { BUCKETS = 4096, SWEEP_AT_LEAST = 1024 };

typedef struct client {
  httpd_addr addr;
  uint64_t tat_ns; /* its bucket is full from this time on */
  struct client *next;
} client;

struct broker_rate {
  pthread_mutex_t mu;
  double ns_per_event;
  uint64_t depth_ns; /* burst events' worth */
  client *bucket[BUCKETS];
  size_t n, sweep_at;
};

broker_rate *broker__rate_new(uint32_t rate, uint32_t burst) {
  if (!rate) return NULL;
  broker_rate *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  pthread_mutex_init(&r->mu, NULL);
  r->ns_per_event = 1e9 / rate;
  r->depth_ns = (uint64_t)(r->ns_per_event * (burst ? burst : 1));
  r->sweep_at = SWEEP_AT_LEAST;
  return r;
}

void broker__rate_free(broker_rate *r) {
  if (!r) return;
  for (size_t i = 0; i < BUCKETS; i++)
    for (client *c = r->bucket[i], *next; c; c = next) {
      next = c->next;
      free(c);
    }
  pthread_mutex_destroy(&r->mu);
  free(r);
}

/* Drops the clients whose bucket is full by now (under mu). */
static void sweep(broker_rate *r, uint64_t now_ns) {
  for (size_t i = 0; i < BUCKETS; i++)
    for (client **at = &r->bucket[i]; *at;) {
      client *c = *at;
      if (c->tat_ns <= now_ns) {
        *at = c->next;
        free(c);
        r->n--;
      } else {
        at = &c->next;
      }
    }
  r->sweep_at = r->n * 2 > SWEEP_AT_LEAST ? r->n * 2 : SWEEP_AT_LEAST;
}

uint64_t broker__rate_take(broker_rate *r, const httpd_addr *addr, size_t events, uint64_t now_ns) {
  uint64_t cost = (uint64_t)(r->ns_per_event * (double)events), wait = 0;
  uint64_t one = (uint64_t)r->ns_per_event;
  pthread_mutex_lock(&r->mu);
  client **at = &r->bucket[httpd_addr_hash(addr) >> 20];
  while (*at && memcmp(&(*at)->addr, addr, sizeof *addr)) at = &(*at)->next;
  client *c = *at;
  uint64_t base = c && c->tat_ns > now_ns ? c->tat_ns : now_ns;
  /* Admitted with one event's room or more: base - now <= depth - one. */
  if (base - now_ns + one > r->depth_ns) {
    wait = base - now_ns + one - r->depth_ns;
  } else if (c) {
    c->tat_ns = base + cost;
  } else if ((c = malloc(sizeof *c))) {
    *c = (client){*addr, base + cost, NULL};
    *at = c;
    if (++r->n >= r->sweep_at) sweep(r, now_ns);
  } /* else out of memory: admitted, unrecorded */
  pthread_mutex_unlock(&r->mu);
  return wait;
}
