/*
 * throttle.c — what the kernel throttled, per environment and period: the
 * kernel side counts, per watched cgroup and kind, the records it did not
 * reserve because the cgroup had spent its budget of events per second
 * (bpf/detector.bpf.c, det_rates); those counts are totals that only grow.
 * The tracker remembers each cgroup's totals as last noted, so that each
 * note adds only their growth to the cgroup's environment, and a report
 * takes what gathered per environment since the last one. Totals rather
 * than counts the kernel resets: user space cannot take and zero a hash
 * map's value in one step, and a reset racing a CPU's add would lose it.
 * Also the dev.outpost.detector.throttled event of one environment.
 *
 * A few environments are throttled at a time, and a node watches tens of
 * them: both tables are arrays searched linearly.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detector/detector.h"
#include "detector/detector_int.h"

typedef struct seen {
  uint64_t cgroup_id;
  uint64_t counts[DETECTOR_KIND_MAX]; /* totals at its last note */
  bool noted;                         /* since the last sweep */
} seen;

typedef struct pending {
  uint32_t env_id;
  uint64_t counts[DETECTOR_KIND_MAX];
} pending;

struct detector_throttle {
  pthread_mutex_t mu; /* everything below: _note and _take run on different threads */
  seen *seen;
  size_t n_seen, cap_seen;
  pending *pend;
  size_t n_pend, cap_pend;
};

detector_throttle *detector_throttle_new(void) {
  detector_throttle *tt = calloc(1, sizeof *tt);
  if (!tt) return NULL;
  pthread_mutex_init(&tt->mu, NULL);
  return tt;
}

void detector_throttle_free(detector_throttle *tt) {
  if (!tt) return;
  pthread_mutex_destroy(&tt->mu);
  free(tt->seen);
  free(tt->pend);
  free(tt);
}

/* Makes room for one more element of size sz in *arr (n used of *cap). */
static int grow(void **arr, size_t n, size_t *cap, size_t sz) {
  if (n < *cap) return 0;
  size_t cap2 = *cap ? *cap * 2 : 8;
  void *p = realloc(*arr, cap2 * sz);
  if (!p) return -ENOMEM;
  *arr = p;
  *cap = cap2;
  return 0;
}

static seen *seen_get(detector_throttle *tt, uint64_t cgroup_id) {
  for (size_t i = 0; i < tt->n_seen; i++)
    if (tt->seen[i].cgroup_id == cgroup_id) return &tt->seen[i];
  if (grow((void **)&tt->seen, tt->n_seen, &tt->cap_seen, sizeof *tt->seen)) return NULL;
  seen *s = &tt->seen[tt->n_seen++];
  memset(s, 0, sizeof *s);
  s->cgroup_id = cgroup_id;
  return s;
}

static pending *pending_get(detector_throttle *tt, uint32_t env_id) {
  for (size_t i = 0; i < tt->n_pend; i++)
    if (tt->pend[i].env_id == env_id) return &tt->pend[i];
  if (grow((void **)&tt->pend, tt->n_pend, &tt->cap_pend, sizeof *tt->pend)) return NULL;
  pending *p = &tt->pend[tt->n_pend++];
  memset(p, 0, sizeof *p);
  p->env_id = env_id;
  return p;
}

int detector_throttle_note(detector_throttle *tt, const detector_throttled *t,
                           uint64_t *new_forks) {
  uint64_t growth[DETECTOR_KIND_MAX] = {0};
  int rc = 0;

  if (new_forks) *new_forks = 0;
  pthread_mutex_lock(&tt->mu);
  seen *s = seen_get(tt, t->cgroup_id);
  pending *p = NULL;
  if (!s) {
    rc = -ENOMEM;
    goto out;
  }
  s->noted = true;
  /* Totals that went down belong to a cgroup watched afresh (its entry was
   * deleted and made again): all of them are new. */
  bool reset = t->counts[0] < s->counts[0];
  for (int k = 1; k < DETECTOR_KIND_MAX; k++) {
    uint64_t was = reset ? 0 : s->counts[k];
    growth[k] = t->counts[k] > was ? t->counts[k] - was : 0;
    growth[0] += growth[k];
  }
  if (growth[0] == 0) goto out;
  if (!(p = pending_get(tt, t->env_id))) {
    rc = -ENOMEM; /* s keeps the old totals: the growth is noted next time */
    goto out;
  }
  for (int k = 0; k < DETECTOR_KIND_MAX; k++) p->counts[k] += growth[k];
  memcpy(s->counts, t->counts, sizeof s->counts);
  if (new_forks) *new_forks = growth[DETECTOR_FORK];
out:
  pthread_mutex_unlock(&tt->mu);
  return rc;
}

void detector_throttle_sweep(detector_throttle *tt) {
  size_t j = 0;
  pthread_mutex_lock(&tt->mu);
  for (size_t i = 0; i < tt->n_seen; i++) {
    if (!tt->seen[i].noted) continue;
    tt->seen[i].noted = false;
    tt->seen[j++] = tt->seen[i];
  }
  tt->n_seen = j;
  pthread_mutex_unlock(&tt->mu);
}

size_t detector_throttle_take(detector_throttle *tt, detector_throttle_cb cb, void *opaque) {
  pthread_mutex_lock(&tt->mu);
  pending *pend = tt->pend;
  size_t n = tt->n_pend;
  tt->pend = NULL;
  tt->n_pend = tt->cap_pend = 0;
  pthread_mutex_unlock(&tt->mu);
  /* Outside the lock: cb builds and queues events while notes go on. */
  for (size_t i = 0; i < n; i++) cb(pend[i].env_id, pend[i].counts, opaque);
  free(pend);
  return n;
}

/* {"throttled":N,"kinds":{...},"limit":L,"interval_ms":I} */
static int throttle_json(const uint64_t counts[DETECTOR_KIND_MAX], uint64_t limit, int interval_ms,
                         ce_buf *b) {
  char item[80];
  const char *sep = "";
  int rc;
  snprintf(item, sizeof item, "{\"throttled\":%" PRIu64 ",\"kinds\":{", counts[0]);
  rc = ce_buf_append_str(b, item);
  for (int k = 1; k < DETECTOR_KIND_MAX && rc == 0; k++) {
    if (!counts[k]) continue;
    snprintf(item, sizeof item, "%s\"%s\":%" PRIu64, sep, detector_kind_name(k), counts[k]);
    rc = ce_buf_append_str(b, item);
    sep = ",";
  }
  snprintf(item, sizeof item, "},\"limit\":%" PRIu64 ",\"interval_ms\":%d}", limit, interval_ms);
  return rc ? rc : ce_buf_append_str(b, item);
}

int detector_throttle_to_ce(const detector_env *env, uint32_t env_id,
                            const uint64_t counts[DETECTOR_KIND_MAX], uint64_t limit,
                            int interval_ms, int64_t sec, int32_t nsec, ce_event **out,
                            ce_err *err) {
  ce_buf data;
  *out = NULL;
  if (!counts) return -EINVAL;
  ce_buf_init(&data);
  int rc = throttle_json(counts, limit, interval_ms, &data)
               ? -ENOMEM
               : detector__env_event(env, env_id, "throttled", "dev.outpost.detector.throttled",
                                     "warning", sec, nsec, data.data, data.len, out, err);
  ce_buf_cleanup(&data);
  return rc;
}
