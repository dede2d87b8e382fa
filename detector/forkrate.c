/*
 * forkrate.c — fork bombs seen from user space: forks per second per
 * environment over a sliding window, computed from the fork events the
 * kernel already reports (so the kernel side needs no fork counter of its
 * own), and the dev.outpost.process.forkrate event raised when the rate passes a
 * threshold, at most once per environment per window so that a bomb makes
 * one alarm a window rather than one per fork.
 *
 * The window is ten buckets of a tenth of it each: a rate is the forks of
 * the current bucket and the nine before it, which costs a few integers per
 * environment and no allocation per fork. Times are the kernel's boot clock
 * of each fork, not the time the event was read, so that a backlog in the
 * ring buffer does not look like a burst. Forks the kernel did not report
 * because their environment spent its event budget arrive as counts
 * (detector_forkrate_add), so that a flood cannot hide a fork bomb.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detector/detector.h"
#include "detector/detector_int.h"

#define BUCKETS 10

typedef struct fr_slot {
  uint32_t env_id;  /* 0: free (environment ids start at 1) */
  bool alerted;     /* an alarm was raised; last_alert_ns says when */
  uint64_t cur;     /* index of the newest bucket: boot_ns / bucket_ns */
  uint64_t last_ns; /* the newest fork seen */
  uint64_t last_alert_ns;
  uint32_t count[BUCKETS];
} fr_slot;

struct detector_forkrate {
  uint64_t window_ns, bucket_ns;
  uint32_t threshold; /* forks per second */
  fr_slot *slots;     /* open addressing, linear probing; cap a power of two */
  size_t n, cap;
};

detector_forkrate *detector_forkrate_new(int window_ms, uint32_t threshold) {
  if (window_ms < BUCKETS || threshold == 0) {
    errno = EINVAL;
    return NULL;
  }
  detector_forkrate *fr = calloc(1, sizeof *fr);
  if (!fr) return NULL;
  fr->window_ns = (uint64_t)window_ms * 1000000u;
  fr->bucket_ns = fr->window_ns / BUCKETS;
  fr->threshold = threshold;
  fr->cap = 64;
  if (!(fr->slots = calloc(fr->cap, sizeof *fr->slots))) {
    free(fr);
    return NULL;
  }
  return fr;
}

void detector_forkrate_free(detector_forkrate *fr) {
  if (!fr) return;
  free(fr->slots);
  free(fr);
}

static size_t slot_hash(uint32_t env_id, size_t cap) {
  return (size_t)(env_id * 2654435761u) & (cap - 1);
}

/* Grows the table, leaving out environments idle for a whole window (their
 * buckets are all stale and their last alarm too old to matter), which is
 * how environments that went away are forgotten. */
static int slots_grow(detector_forkrate *fr, uint64_t now_ns) {
  size_t live = 0;
  for (size_t i = 0; i < fr->cap; i++)
    if (fr->slots[i].env_id && now_ns < fr->slots[i].last_ns + fr->window_ns) live++;
  size_t cap = fr->cap;
  while (live * 2 >= cap) cap *= 2;
  fr_slot *s = calloc(cap, sizeof *s);
  if (!s) return -ENOMEM;
  for (size_t i = 0; i < fr->cap; i++) {
    const fr_slot *o = &fr->slots[i];
    if (!o->env_id || now_ns >= o->last_ns + fr->window_ns) continue;
    size_t j = slot_hash(o->env_id, cap);
    while (s[j].env_id) j = (j + 1) & (cap - 1);
    s[j] = *o;
  }
  free(fr->slots);
  fr->slots = s;
  fr->cap = cap;
  fr->n = live;
  return 0;
}

static fr_slot *slot_get(detector_forkrate *fr, uint32_t env_id, uint64_t now_ns) {
  size_t i = slot_hash(env_id, fr->cap);
  while (fr->slots[i].env_id) {
    if (fr->slots[i].env_id == env_id) return &fr->slots[i];
    i = (i + 1) & (fr->cap - 1);
  }
  /* New: keep the table at most half full so that probes stay short. */
  if ((fr->n + 1) * 2 > fr->cap) {
    if (slots_grow(fr, now_ns)) return NULL;
    return slot_get(fr, env_id, now_ns);
  }
  fr_slot *s = &fr->slots[i];
  memset(s, 0, sizeof *s);
  s->env_id = env_id;
  s->cur = now_ns / fr->bucket_ns;
  fr->n++;
  return s;
}

/* Moves the newest bucket up to index b, emptying those it passes. */
static void slot_advance(fr_slot *s, uint64_t b) {
  if (b <= s->cur) return;
  uint64_t steps = b - s->cur;
  if (steps >= BUCKETS) {
    memset(s->count, 0, sizeof s->count);
  } else {
    for (uint64_t k = 1; k <= steps; k++) s->count[(s->cur + k) % BUCKETS] = 0;
  }
  s->cur = b;
}

int detector_forkrate_note(detector_forkrate *fr, uint32_t env_id, uint64_t boot_ns, double *rate) {
  return detector_forkrate_add(fr, env_id, boot_ns, 1, rate);
}

int detector_forkrate_add(detector_forkrate *fr, uint32_t env_id, uint64_t boot_ns, uint64_t n,
                          double *rate) {
  fr_slot *s = slot_get(fr, env_id, boot_ns);
  if (!s) return -ENOMEM;
  uint64_t b = boot_ns / fr->bucket_ns;
  slot_advance(s, b);
  /* Events of different CPUs may arrive slightly out of order: a late one
   * still counts in its own bucket while that bucket is in the window, and
   * in the newest otherwise. */
  uint32_t *bucket = &s->count[(b + BUCKETS > s->cur ? b : s->cur) % BUCKETS];
  *bucket = n > UINT32_MAX - *bucket ? UINT32_MAX : *bucket + (uint32_t)n;
  if (boot_ns > s->last_ns) s->last_ns = boot_ns;
  uint64_t forks = 0;
  for (int i = 0; i < BUCKETS; i++) forks += s->count[i];
  double r = (double)forks * 1e9 / (double)fr->window_ns;
  if (rate) *rate = r;
  if (n == 0 || r <= (double)fr->threshold) return 0;
  if (s->alerted && s->last_ns < s->last_alert_ns + fr->window_ns) return 0;
  s->alerted = true;
  s->last_alert_ns = s->last_ns;
  return 1;
}

int detector_forkrate_to_ce(const detector_env *env, const detector_event *e, double rate,
                            int window_ms, uint32_t threshold, ce_event **out, ce_err *err) {
  char data[160];
  *out = NULL;
  if (!e) return -EINVAL;
  snprintf(data, sizeof data, "{\"rate\":%.1f,\"window_ms\":%d,\"threshold\":%u,\"pid\":%d}", rate,
           window_ms, (unsigned)threshold, (int)e->pid);
  return detector__env_event(env, e->env_id, "forkrate", "dev.outpost.process.forkrate", "critical",
                             e->time_sec, e->time_nsec, data, strlen(data), out, err);
}
