/*
 * file_watch.c — see file_watch.h.
 */
#include "core/file_watch.h"

#include <string.h>

static bool same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

void file_watch_init(file_watch *w, const char *const *paths, size_t n, uint64_t period_ns) {
  memset(w, 0, sizeof *w);
  w->n = n < FILE_WATCH_MAX ? n : FILE_WATCH_MAX;
  for (size_t i = 0; i < w->n; i++) {
    w->paths[i] = paths[i];
    if (stat(paths[i], &w->seen[i])) memset(&w->seen[i], 0, sizeof w->seen[i]);
  }
  w->period_ns = period_ns;
  pthread_mutex_init(&w->mu, NULL);
}

void file_watch_destroy(file_watch *w) {
  pthread_mutex_destroy(&w->mu);
}

bool file_watch_changed(file_watch *w, uint64_t now_ns) {
  if (now_ns < atomic_load_explicit(&w->next_ns, memory_order_relaxed) ||
      pthread_mutex_trylock(&w->mu))
    return false;
  if (now_ns >= atomic_load(&w->next_ns)) {
    atomic_store(&w->next_ns, now_ns + w->period_ns);
    struct stat st[FILE_WATCH_MAX];
    bool all = true, changed = false;
    for (size_t i = 0; i < w->n && all; i++) {
      all = stat(w->paths[i], &st[i]) == 0;
      changed = changed || (all && !same_file(&st[i], &w->seen[i]));
    }
    if (all && changed) {
      memcpy(w->seen, st, w->n * sizeof *st);
      return true;
    }
  }
  pthread_mutex_unlock(&w->mu);
  return false;
}

void file_watch_done(file_watch *w) {
  pthread_mutex_unlock(&w->mu);
}
