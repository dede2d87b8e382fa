/*
 * clock.h — the system's clocks in whole milliseconds or microseconds:
 * monotonic for timeouts and durations, wall for timestamps; a condition
 * variable that waits on the monotonic clock; and a sleep of so many
 * milliseconds.
 */
#ifndef OUTPOST_CORE_CLOCK_H
#define OUTPOST_CORE_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

static inline int64_t clock_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t clock_mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t clock_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Initialises cv so that its timed waits take deadlines on the monotonic
 * clock (as clock_gettime(CLOCK_MONOTONIC) gives them): a step of the wall
 * clock then neither stalls a wait nor ends it early. Returns 0 or
 * pthread_cond_init's error. */
static inline int clock_cond_init(pthread_cond_t *cv) {
  pthread_condattr_t ca;
  int rc = pthread_condattr_init(&ca);
  if (rc) return rc;
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  rc = pthread_cond_init(cv, &ca);
  pthread_condattr_destroy(&ca);
  return rc;
}

/* Sleeps ms milliseconds (less when a signal interrupts it). */
static inline void clock_sleep_ms(long ms) {
  nanosleep(&(struct timespec){ms / 1000, ms % 1000 * 1000000L}, NULL);
}

#endif
