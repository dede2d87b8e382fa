/*
 * log_file.h — for the embedded log's tests: removes a log file and the
 * WAL and shared-memory files SQLite keeps beside it.
 */
#ifndef OUTPOST_TESTS_BROKER_LOG_FILE_H
#define OUTPOST_TESTS_BROKER_LOG_FILE_H

#include <stdio.h>
#include <unistd.h>

static inline void log_file_remove(const char *path) {
  char p[300];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

#endif
