/*
 * append_waiter.h — for the log tests: waits for broker_log_append
 * callbacks, counting them, the failures, and the last status reported.
 */
#ifndef OUTPOST_TESTS_BROKER_APPEND_WAITER_H
#define OUTPOST_TESTS_BROKER_APPEND_WAITER_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done, failed, last_status;
} waiter;

/* The broker_append_cb: opaque is the waiter. */
static inline void on_append(void *opaque, int status) {
  waiter *w = opaque;
  pthread_mutex_lock(&w->mu);
  w->done++;
  if (status) w->failed++;
  w->last_status = status;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Blocks until `want` callbacks have run. */
static inline void wait_for(waiter *w, int want) {
  pthread_mutex_lock(&w->mu);
  while (w->done < want) pthread_cond_wait(&w->cv, &w->mu);
  pthread_mutex_unlock(&w->mu);
}

static inline void waiter_init(waiter *w) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
}

/* A waiter on the heap (free it with free). */
static inline waiter *waiter_new(void) {
  waiter *w = malloc(sizeof *w);
  if (w) waiter_init(w);
  return w;
}

#endif
