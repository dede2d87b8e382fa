/*
 * file_watch.h — files that a process read at start and reads again when
 * they change (a senders file, a TLS certificate and its key): at most one
 * look every period, by one thread at a time, while the others go on; a
 * file has changed when its inode, size or modification time has (which is
 * how the kubelet updates a mounted Secret: a new version, symlinks swapped).
 *
 * The caller keeps what it read, and what it read before: a reader may
 * still hold that while a new version is read.
 */
#ifndef OUTPOST_CORE_FILE_WATCH_H
#define OUTPOST_CORE_FILE_WATCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

enum { FILE_WATCH_MAX = 2 };

typedef struct file_watch {
  const char *paths[FILE_WATCH_MAX]; /* not owned */
  size_t n;
  struct stat seen[FILE_WATCH_MAX]; /* as last read, or refused */
  pthread_mutex_t mu;               /* one look at a time */
  _Atomic uint64_t next_ns;
  uint64_t period_ns;
} file_watch;

/* Watches paths (1 to FILE_WATCH_MAX, which must outlive w): as they are
 * now, before the caller reads them, so that a change meanwhile is seen at
 * the first look; the first look is due at once. */
void file_watch_init(file_watch *w, const char *const *paths, size_t n, uint64_t period_ns);
void file_watch_destroy(file_watch *w);

/* True, with w held, when a look is due at now_ns (a monotonic clock) and a
 * file changed since it was last seen: the caller reads them again, then
 * calls file_watch_done, whether that read took or not (a version refused
 * is not tried again until it changes). False, and nothing held: no look
 * due, another thread looking, nothing changed, or a file missing now (a
 * Secret's files between two versions: looked at again next time). */
bool file_watch_changed(file_watch *w, uint64_t now_ns);
void file_watch_done(file_watch *w);

#endif
