/*
 * log_sqlite.c — the embedded log: SQLite in WAL mode, one file.
 *
 * Appends are queued; a committing thread takes everything queued, writes it
 * in one transaction and commits with synchronous=FULL, so that a callback
 * reporting success means the records are on disk. Appends that arrive
 * while a commit is syncing wait for the next one: many requests share one
 * fsync (group commit). The committing thread is the log's writer thread,
 * woken by each append, or, for deferred appends (broker_log_append_deferred),
 * the thread that queued them, in its broker_log_flush at the end of its
 * batch: no thread is woken, and the callbacks run where the answers are
 * written (the fast lane). One commit at a time (commit_mu); a flush that
 * finds another under way leaves its appends to the writer. Reads and
 * position commits use a second connection, which WAL lets run beside it.
 *
 * A group commit stores the records of each partition it touches as one row
 * of `segments` (segment.c): a few B-tree inserts per commit rather than two
 * per record, which is what the writer thread spent most of its time on.
 * Reads may start at any offset, inside a segment too. Retention deletes
 * whole segments, once every record of one is past it. The view `records`
 * shows one row per record (topic, part, off, ts, key, headers, value), as
 * the table of that name did before segments; a log made then is migrated
 * when opened (log_sqlite_schema.c).
 *
 * Offsets are per topic and partition. A partition's end is the next of its
 * newest segment, stored in the same transaction as the records; retention
 * copies it into the `partitions` table before deleting segments, so that
 * offsets never go back, even after retention has deleted every record of a
 * partition. (Writing the table in every commit cost a page per commit.)
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "broker/broker.h"
#include "broker/broker_int.h"
#include "core/clock.h"
#include "core/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum { RETENTION_EVERY_MS = 5000, DELETE_CHUNK = 16 /* segments per DELETE */ };

typedef struct rec {
  int32_t partition;
  int64_t ts;
  const void *key, *headers, *value; /* point into the request's memory */
  size_t key_len, headers_len, value_len;
} rec;

typedef struct req {
  struct req *next;
  const char *topic;
  rec *recs;
  size_t n;
  broker_append_cb cb;
  void *opaque;
} req;

typedef struct tp {
  struct tp *next;
  char *name;
  int32_t parts;
  /* Per partition, under commit_mu: the next offset, and the records of
   * the open transaction not stored yet. */
  int64_t *end;
  broker__seg *segs;
  uint32_t rr; /* round robin for records without a key */
} tp;

typedef struct sqlite_log {
  broker_log base;
  broker_sqlite_opts opts;
  sqlite3 *wdb, *rdb;
  sqlite3_stmt *ins, *begin, *commit;
  /* Held by the thread committing (the writer, or a flush): guards wdb, its
   * statements and the topics' ends and open segments. Taken before mu. */
  pthread_mutex_t commit_mu;
  pthread_mutex_t rmu; /* guards rdb */
  pthread_mutex_t mu;  /* guards the queue, stop and topics */
  pthread_cond_t cv;
  req *head, *tail;
  bool stop;
  tp *topics;
  pthread_t thread;
  int64_t last_retention;
  char *path; /* the file (its WAL is the name and -wal, SQLite's rule) */
  /* Counted by the committing thread before it reports, rendered by any. */
  _Atomic uint64_t commits, failed_commits, appends, records;
  _Atomic uint64_t flush_commits; /* of commits: made by broker_log_flush */
  metrics_hist commit_hist;       /* BEGIN to a synced COMMIT */
} sqlite_log;

static int sqerr(int rc) {
  return broker__sqlite_errno(rc);
}

static int open_db(const char *path, bool full_sync, sqlite3 **db, char *errbuf, size_t errlen) {
  int rc = sqlite3_open_v2(path, db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(*db, 10000);
    /* FULL: a commit returns once the WAL is synced (the 202 promise). The
     * reader connection only commits consumer positions: NORMAL loses at
     * most the last positions on power loss, which means redelivery, never
     * loss. The page size counts only for a new file (before WAL mode makes
     * it): a group commit's segment then takes one or two WAL frames instead
     * of four or five (a commit about four frames in all). Measured against
     * 4 KiB pages: the writer thread's CPU per event about 8% lower once
     * (libmicrohttpd's pools); level in events/s with the fast lane, where a
     * commit costs its syncs, not its bytes (bench/README.md). */
    rc = sqlite3_exec(*db,
                      full_sync ? "PRAGMA page_size=16384; PRAGMA journal_mode=WAL;"
                                  " PRAGMA synchronous=FULL;"
                                : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                      NULL, NULL, NULL);
  }
  if (rc != SQLITE_OK) {
    snprintf(errbuf, errlen, "%s: %s", path, *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
    sqlite3_close(*db);
    *db = NULL;
    return -EIO;
  }
  return 0;
}

static void tp_free(tp *t) {
  if (!t) return;
  for (int32_t p = 0; t->segs && p < t->parts; p++) broker__seg_cleanup(&t->segs[p]);
  free(t->segs);
  free(t->end);
  free(t->name);
  free(t);
}

/* A partition's end (?1 topic, ?2 part) as the store has it. A commit does
 * not write the partitions table, which would be one more page in every
 * commit: the newest segment's next is the end. The table keeps the end for
 * when retention has deleted every segment (see retention), and the larger
 * of the two counts. */
static const char end_query[] =
    "SELECT max(ifnull((SELECT next FROM partitions WHERE topic=?1 AND part=?2), 0),"
    " ifnull((SELECT max(next) FROM segments WHERE topic=?1 AND part=?2), 0))";

/* A topic's partitions in memory, with their ends as the store has them. */
static tp *tp_new(sqlite3 *db, const char *name, int32_t parts) {
  tp *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->parts = parts;
  t->name = strdup(name);
  t->end = calloc((size_t)parts, sizeof *t->end);
  t->segs = calloc((size_t)parts, sizeof *t->segs);
  sqlite3_stmt *st = NULL;
  if (!t->name || !t->end || !t->segs || sqlite3_prepare_v2(db, end_query, -1, &st, NULL)) {
    t->parts = t->segs ? parts : 0;
    tp_free(t);
    return NULL;
  }
  for (int32_t p = 0; p < parts; p++) broker__seg_init(&t->segs[p]);
  bool ok = true;
  for (int32_t p = 0; ok && p < parts; p++) {
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, p);
    ok = sqlite3_step(st) == SQLITE_ROW;
    if (ok) t->end[p] = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  if (!ok) {
    tp_free(t);
    return NULL;
  }
  return t;
}

/* Finds topic t, loading it from the store or creating it (under commit_mu
 * with db = wdb, or under mu with db = rdb). Caller holds mu. */
static tp *topic_get(sqlite_log *l, sqlite3 *db, const char *name) {
  for (tp *t = l->topics; t; t = t->next)
    if (strcmp(t->name, name) == 0) return t;
  int32_t parts = 0;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "SELECT partitions FROM topics WHERE name=?", -1, &st, NULL))
    return NULL;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW) parts = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (parts <= 0) {
    parts = l->opts.partitions > 0 ? l->opts.partitions : 1;
    if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO topics(name, partitions) VALUES(?, ?)", -1,
                           &st, NULL))
      return NULL;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, parts);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return NULL;
  }
  tp *t = tp_new(db, name, parts);
  if (!t) return NULL;
  t->next = l->topics;
  l->topics = t;
  return t;
}

/* Forgets cached offsets and unstored segments after a failed transaction:
 * they are read again. */
static void topics_forget(sqlite_log *l) {
  for (tp *t = l->topics, *next; t; t = next) {
    next = t->next;
    tp_free(t);
  }
  l->topics = NULL;
}

static int64_t db_size(sqlite3 *db) {
  int64_t pages = 0, free_pages = 0, page_size = 0;
  sqlite3_stmt *st;
  const char *q[] = {"PRAGMA page_count", "PRAGMA freelist_count", "PRAGMA page_size"};
  int64_t *v[] = {&pages, &free_pages, &page_size};
  for (int i = 0; i < 3; i++) {
    if (sqlite3_prepare_v2(db, q[i], -1, &st, NULL)) return 0;
    if (sqlite3_step(st) == SQLITE_ROW) *v[i] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  return (pages - free_pages) * page_size;
}

/* Stores partition p's segment of the open transaction, if it has records. */
static int store_segment(sqlite_log *l, tp *t, int32_t p) {
  broker__seg *s = &t->segs[p];
  if (s->n == 0) return 0;
  int rc = broker__sqlite_seg_store(l->ins, t->name, p, s);
  broker__seg_reset(s, t->end[p]);
  return rc;
}

/* Adds a request's records to their partitions' segments, storing those
 * that are full. *last is the topic of the group's previous request: most
 * requests of a group go to the same topic, found then without the lock
 * the HTTP threads take to queue theirs. */
static int write_req(sqlite_log *l, req *r, tp **last) {
  tp *t = *last;
  if (!t || strcmp(t->name, r->topic) != 0) {
    pthread_mutex_lock(&l->mu);
    t = topic_get(l, l->wdb, r->topic);
    pthread_mutex_unlock(&l->mu);
    if (!t) return -EIO;
    *last = t;
  }
  for (size_t i = 0; i < r->n; i++) {
    rec *x = &r->recs[i];
    int32_t p = x->partition;
    if (p >= t->parts) return -EINVAL;
    if (p < 0)
      p = x->key ? broker__partition_for(x->key, x->key_len, t->parts)
                 : (int32_t)(t->rr++ % (uint32_t)t->parts);
    broker__seg *s = &t->segs[p];
    if (s->n == 0) broker__seg_reset(s, t->end[p]);
    int rc = broker__seg_add(s, x->ts, x->key, x->key_len, x->headers, x->headers_len, x->value,
                             x->value_len);
    if (rc) return rc;
    t->end[p]++;
    if (s->n >= BROKER__SEG_MAX_RECORDS || s->data.len >= BROKER__SEG_MAX_BYTES)
      if ((rc = store_segment(l, t, p))) return rc;
  }
  return 0;
}

/* Stores what the requests left in the segments (the ends go with them). */
static int store_all(sqlite_log *l) {
  for (tp *t = l->topics; t; t = t->next)
    for (int32_t p = 0; p < t->parts; p++) {
      int rc = store_segment(l, t, p);
      if (rc) return rc;
    }
  return 0;
}

/* Runs a prepared statement without results (BEGIN, COMMIT: prepared once,
 * not parsed again for every group). */
static int step_done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : sqerr(rc);
}

/* Writes a group of requests in one transaction and reports to each. */
static void write_group(sqlite_log *l, req *list) {
  uint64_t start = metrics_now_ns(), appends = 0, records = 0;
  int status = 0;
  if (l->opts.max_bytes && db_size(l->wdb) > l->opts.max_bytes) status = -ENOSPC;
  if (status == 0) status = step_done(l->begin);
  bool began = status == 0;
  tp *last = NULL;
  for (req *r = list; status == 0 && r; r = r->next) {
    status = write_req(l, r, &last);
    appends++;
    records += r->n;
  }
  if (status == 0) status = store_all(l);
  if (status == 0) status = step_done(l->commit);
  /* Counted before anyone is told: a client that got its 202 sees its
   * commit in /metrics. */
  if (status == 0) {
    metrics_hist_observe(&l->commit_hist, metrics_now_ns() - start);
    atomic_fetch_add(&l->commits, 1);
    atomic_fetch_add(&l->appends, appends);
    atomic_fetch_add(&l->records, records);
  } else {
    atomic_fetch_add(&l->failed_commits, 1);
  }
  if (status != 0 && began) {
    /* Whatever the failure (SQLITE_FULL too), nothing of it may stay: not
     * in the file, nor in the segments and ends cached for the next one. */
    sqlite3_exec(l->wdb, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_lock(&l->mu);
    topics_forget(l);
    pthread_mutex_unlock(&l->mu);
  }
  for (req *r = list, *next; r; r = next) {
    next = r->next;
    r->cb(r->opaque, status);
    free(r);
  }
}

/* Copies each partition's end from its newest segment into the partitions
 * table where the table is behind, in one transaction, before retention
 * deletes anything: an end must outlive the last segment that held it, or
 * offsets would go back. Returns 0 or a negative errno. */
static int save_ends(sqlite3 *db) {
  static const char upsert[] =
      "INSERT INTO partitions(topic, part, next)"
      " SELECT ?1, ?2, m FROM (SELECT max(next) AS m FROM segments WHERE topic=?1 AND part=?2)"
      " WHERE m IS NOT NULL"
      " ON CONFLICT(topic, part) DO UPDATE SET next=excluded.next WHERE excluded.next > next";
  sqlite3_stmt *sel = NULL, *up = NULL;
  int rc = sqerr(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL));
  if (rc) return rc;
  if (sqlite3_prepare_v2(db, "SELECT name, partitions FROM topics", -1, &sel, NULL) ||
      sqlite3_prepare_v2(db, upsert, -1, &up, NULL))
    rc = -EIO;
  int s = SQLITE_DONE;
  while (rc == 0 && (s = sqlite3_step(sel)) == SQLITE_ROW) {
    int parts = sqlite3_column_int(sel, 1);
    for (int p = 0; rc == 0 && p < parts; p++) {
      sqlite3_reset(up);
      sqlite3_bind_text(up, 1, (const char *)sqlite3_column_text(sel, 0), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int(up, 2, p);
      rc = step_done(up);
    }
  }
  if (rc == 0) rc = sqerr(s);
  sqlite3_finalize(sel);
  sqlite3_finalize(up);
  if (rc == 0) rc = sqerr(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL));
  if (rc) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

/* The newest `next` among the oldest DELETE_CHUNK segments of (topic, part)
 * below bound that may go: the partition's prefix of segments past cutoff
 * (or all of it when over the size limit), which ends at the first segment
 * still within the age limit, as Kafka's time-based retention does; 0 when
 * none may go. Only that prefix is read: retention used to test the age of
 * every segment below the bound, a walk of the whole log every pass, which
 * held the writer (and the 202s) longer as the log grew. *full is set when
 * the prefix was a whole chunk (more may follow). */
static int64_t deletable_end(sqlite3_stmt *oldest, const char *topic, int part, int64_t bound,
                             int64_t cutoff, bool over, bool *full) {
  int64_t end = 0;
  int n = 0;
  sqlite3_reset(oldest);
  sqlite3_bind_text(oldest, 1, topic, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(oldest, 2, part);
  sqlite3_bind_int64(oldest, 3, bound);
  sqlite3_bind_int(oldest, 4, DELETE_CHUNK);
  while (sqlite3_step(oldest) == SQLITE_ROW) {
    if (!over && sqlite3_column_int64(oldest, 1) >= cutoff) break;
    end = sqlite3_column_int64(oldest, 0);
    n++;
  }
  sqlite3_reset(oldest);
  *full = n == DELETE_CHUNK;
  return end;
}

/* Deletes segments every group is done with, past the age or size limits:
 * a segment goes once all its records are past them (its ts is the newest
 * of theirs), never part of one, and only from the start of a partition. */
static void retention(sqlite_log *l) {
  int64_t cutoff = l->opts.retention_ms ? clock_wall_ms() - l->opts.retention_ms : INT64_MIN;
  bool over = l->opts.retention_bytes && db_size(l->wdb) > l->opts.retention_bytes;
  if (cutoff == INT64_MIN && !over) return;
  if (save_ends(l->wdb)) return; /* deleting now could lose an end */
  /* The safe bound of each partition: the smallest position among the groups
   * that ever committed on the topic (a group without a row for a partition
   * holds it at 0); with no group at all, the end of the partition. */
  static const char q[] =
      "SELECT p.topic, p.part, "
      "  CASE WHEN (SELECT count(DISTINCT grp) FROM positions g WHERE g.topic = p.topic) = 0"
      "    THEN p.next"
      "  WHEN (SELECT count(*) FROM positions g WHERE g.topic = p.topic AND g.part = p.part) <"
      "       (SELECT count(DISTINCT grp) FROM positions g WHERE g.topic = p.topic) THEN 0"
      "  ELSE (SELECT min(next) FROM positions g WHERE g.topic = p.topic AND g.part = p.part)"
      "  END FROM partitions p";
  sqlite3_stmt *sel = NULL, *oldest = NULL, *del = NULL;
  if (sqlite3_prepare_v2(l->wdb, q, -1, &sel, NULL) ||
      sqlite3_prepare_v2(l->wdb,
                         "SELECT next, ts FROM segments WHERE topic=?1 AND part=?2 AND next<=?3"
                         " ORDER BY next LIMIT ?4",
                         -1, &oldest, NULL) ||
      sqlite3_prepare_v2(l->wdb, "DELETE FROM segments WHERE topic=?1 AND part=?2 AND next<=?3", -1,
                         &del, NULL))
    goto done;
  while (sqlite3_step(sel) == SQLITE_ROW) {
    const char *topic = (const char *)sqlite3_column_text(sel, 0);
    int part = sqlite3_column_int(sel, 1);
    bool full = true;
    while (full) {
      int64_t end =
          deletable_end(oldest, topic, part, sqlite3_column_int64(sel, 2), cutoff, over, &full);
      if (end == 0) break;
      sqlite3_reset(del);
      sqlite3_bind_text(del, 1, topic, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int(del, 2, part);
      sqlite3_bind_int64(del, 3, end);
      if (sqlite3_step(del) != SQLITE_DONE) break;
      if (over) over = db_size(l->wdb) > l->opts.retention_bytes;
    }
  }
done:
  sqlite3_finalize(sel);
  sqlite3_finalize(oldest);
  sqlite3_finalize(del);
}

/* Takes everything queued and commits it. Caller holds commit_mu. */
static bool commit_queued(sqlite_log *l) {
  pthread_mutex_lock(&l->mu);
  req *list = l->head;
  l->head = l->tail = NULL;
  pthread_mutex_unlock(&l->mu);
  if (list) write_group(l, list);
  return list != NULL;
}

static void *writer(void *arg) {
  sqlite_log *l = arg;
  pthread_setname_np(pthread_self(), "log-writer"); /* in top -H, perf, /proc */
  pthread_mutex_lock(&l->mu);
  for (;;) {
    /* Deferred appends wake no one: a flush commits them, or hands them
     * here when another commit is under way. The timeout is a backstop. */
    while (!l->head && !l->stop) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += 1;
      pthread_cond_timedwait(&l->cv, &l->mu, &ts);
      if (clock_mono_ms() - l->last_retention >= RETENTION_EVERY_MS) break;
    }
    bool stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_lock(&l->commit_mu);
    commit_queued(l);
    if (clock_mono_ms() - l->last_retention >= RETENTION_EVERY_MS) {
      l->last_retention = clock_mono_ms();
      retention(l);
    }
    pthread_mutex_unlock(&l->commit_mu);
    pthread_mutex_lock(&l->mu);
    if (stop && !l->head) break;
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

/* Copies an append into one allocation: the request, its records, and their
 * headers (packed), keys and values. NULL when out of memory. */
static req *req_new(const char *topic, const broker_record *recs, size_t n) {
  size_t topic_len = strlen(topic);
  size_t bytes = sizeof(req) + n * sizeof(rec) + topic_len + 1;
  for (size_t i = 0; i < n; i++)
    bytes += broker__headers_size(recs[i].headers, recs[i].n_headers) + recs[i].key_len +
             recs[i].value_len;
  req *r = malloc(bytes);
  if (!r) return NULL;
  r->next = NULL;
  r->n = n;
  r->recs = (rec *)(r + 1);
  char *p = (char *)(r->recs + n);
  int64_t ts = clock_wall_ms();
  for (size_t i = 0; i < n; i++) {
    const broker_record *in = &recs[i];
    rec *x = &r->recs[i];
    x->partition = in->partition;
    x->ts = in->timestamp_ms ? in->timestamp_ms : ts;
    x->headers = p;
    p = broker__headers_write(in->headers, in->n_headers, p);
    x->headers_len = (size_t)(p - (const char *)x->headers);
    x->key = in->key ? p : NULL;
    x->key_len = in->key_len;
    if (in->key_len) memcpy(p, in->key, in->key_len);
    p += in->key_len;
    x->value = in->value ? p : NULL;
    x->value_len = in->value_len;
    if (in->value_len) memcpy(p, in->value, in->value_len);
    p += in->value_len;
  }
  memcpy(p, topic, topic_len + 1);
  r->topic = p;
  return r;
}

/* Queues an append; wakes the writer unless the caller will flush. */
static int queue_append(sqlite_log *l, const char *topic, const broker_record *recs, size_t n,
                        broker_append_cb cb, void *opaque, bool wake) {
  req *r = req_new(topic, recs, n);
  if (!r) return -ENOMEM;
  r->cb = cb;
  r->opaque = opaque;

  pthread_mutex_lock(&l->mu);
  if (l->stop) {
    pthread_mutex_unlock(&l->mu);
    free(r);
    return -ESHUTDOWN;
  }
  if (l->tail)
    l->tail->next = r;
  else
    l->head = r;
  l->tail = r;
  if (wake) pthread_cond_signal(&l->cv);
  pthread_mutex_unlock(&l->mu);
  return 0;
}

static int sq_append(broker_log *log, const char *topic, const broker_record *recs, size_t n,
                     broker_append_cb cb, void *opaque) {
  return queue_append((sqlite_log *)log, topic, recs, n, cb, opaque, true);
}

static int sq_append_deferred(broker_log *log, const char *topic, const broker_record *recs,
                              size_t n, broker_append_cb cb, void *opaque) {
  return queue_append((sqlite_log *)log, topic, recs, n, cb, opaque, false);
}

/* Commits what is queued on this thread, unless a commit is under way:
 * then the writer is woken to take it after that one (it may be the
 * writer's own, or another thread's flush). */
static void sq_flush(broker_log *log) {
  sqlite_log *l = (sqlite_log *)log;
  pthread_mutex_lock(&l->mu);
  bool queued = l->head != NULL;
  pthread_mutex_unlock(&l->mu);
  if (!queued) return;
  if (pthread_mutex_trylock(&l->commit_mu) != 0) {
    pthread_mutex_lock(&l->mu);
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return;
  }
  if (commit_queued(l)) atomic_fetch_add(&l->flush_commits, 1);
  pthread_mutex_unlock(&l->commit_mu);
}

/* A record found by a read, before the pointers into mem are made (mem
 * moves while it grows): its key, headers and value are at `at` in mem. */
typedef struct row {
  int64_t off, ts;
  size_t at, key_len, hdr_len, val_len, n_headers;
  bool has_key, has_val;
} row;

typedef struct reading {
  size_t max; /* records wanted */
  ce_buf mem;
  row *rows;
  size_t n, cap, total_headers;
  broker__seg_entry *ents; /* the index of the segment being read */
  size_t ents_cap;
} reading;

static int grow(void **p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 16;
  while (c < need) c *= 2;
  void *np = realloc(*p, c * size);
  if (!np) return -ENOMEM;
  *p = np;
  *cap = c;
  return 0;
}

/* Copies record e (offset off) of a segment whose bytes are data. */
static int read_record(reading *rd, const broker__seg_entry *e, int64_t off, const uint8_t *data) {
  if (grow((void **)&rd->rows, &rd->cap, rd->n + 1, sizeof *rd->rows)) return -ENOMEM;
  row *w = &rd->rows[rd->n];
  w->off = off;
  w->ts = e->ts;
  w->has_key = e->key_len >= 0;
  w->has_val = e->value_len >= 0;
  w->key_len = w->has_key ? (size_t)e->key_len : 0;
  w->hdr_len = (size_t)e->headers_len;
  w->val_len = w->has_val ? (size_t)e->value_len : 0;
  w->at = rd->mem.len;
  const uint8_t *p = data + e->pos;
  if (ce_buf_append(&rd->mem, p, w->key_len + w->hdr_len + w->val_len)) return -ENOMEM;
  if (broker__headers_count(p + w->key_len, w->hdr_len, &w->n_headers)) return -EIO;
  rd->total_headers += w->n_headers;
  rd->n++;
  return 0;
}

/* Reads the segment st is on (first, next, idx, data) from offset `from`
 * on, until rd has max records. */
static int read_segment(reading *rd, sqlite3_stmt *st, int64_t from) {
  int64_t first = sqlite3_column_int64(st, 0), next = sqlite3_column_int64(st, 1);
  const char *idx = (const char *)sqlite3_column_text(st, 2);
  size_t idx_len = (size_t)sqlite3_column_bytes(st, 2);
  const uint8_t *data = sqlite3_column_blob(st, 3);
  size_t data_len = (size_t)sqlite3_column_bytes(st, 3);
  if (!idx || next <= first || next - first > 16 * BROKER__SEG_MAX_RECORDS) return -EIO;
  size_t count = (size_t)(next - first);
  if (grow((void **)&rd->ents, &rd->ents_cap, count, sizeof *rd->ents)) return -ENOMEM;
  if (broker__seg_parse(idx, idx_len, data_len, rd->ents, count)) return -EIO;
  if (!data) data = (const uint8_t *)""; /* SQLite's empty blob: every length is 0 */
  for (size_t i = from > first ? (size_t)(from - first) : 0; i < count && rd->n < rd->max; i++) {
    int rc = read_record(rd, &rd->ents[i], first + (int64_t)i, data);
    if (rc) return rc;
  }
  return 0;
}

/* Gives out the records gathered in rd, taking its memory. */
static int read_output(reading *rd, int32_t partition, broker_records *out) {
  if (rd->n == 0) return 0;
  out->recs = malloc(rd->n * sizeof(broker_record) + rd->total_headers * sizeof(ce_kv));
  if (!out->recs) return -ENOMEM;
  ce_kv *kv = (ce_kv *)(out->recs + rd->n);
  for (size_t i = 0; i < rd->n; i++) {
    row *w = &rd->rows[i];
    const char *p = rd->mem.data + w->at;
    size_t got;
    broker__headers_unpack(p + w->key_len, w->hdr_len, kv, w->n_headers, &got);
    out->recs[i] =
        (broker_record){partition,  w->off, w->ts, w->has_key ? p : NULL,
                        w->key_len, kv,     got,   w->has_val ? p + w->key_len + w->hdr_len : NULL,
                        w->val_len};
    kv += got;
  }
  out->n = rd->n;
  out->mem = rd->mem.data;
  rd->mem.data = NULL;
  return 0;
}

static int sq_read(broker_log *log, const char *topic_name, int32_t partition, int64_t from,
                   size_t max, broker_records *out) {
  sqlite_log *l = (sqlite_log *)log;
  broker_records_init(out);
  reading rd = {.max = max};
  ce_buf_init(&rd.mem);
  pthread_mutex_lock(&l->rmu);
  sqlite3_stmt *st;
  /* The segment holding `from` is the first whose next is past it. */
  int rc = sqerr(sqlite3_prepare_v2(l->rdb,
                                    "SELECT first, next, idx, data FROM segments WHERE topic=? AND "
                                    "part=? AND next>? ORDER BY next",
                                    -1, &st, NULL));
  if (rc == 0) {
    sqlite3_bind_text(st, 1, topic_name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, partition);
    sqlite3_bind_int64(st, 3, from);
    int s = SQLITE_DONE;
    while (rc == 0 && rd.n < max && (s = sqlite3_step(st)) == SQLITE_ROW)
      rc = read_segment(&rd, st, from);
    if (rc == 0) rc = sqerr(s);
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&l->rmu);
  if (rc == 0) rc = read_output(&rd, partition, out);
  free(rd.rows);
  free(rd.ents);
  ce_buf_cleanup(&rd.mem);
  if (rc) broker_records_cleanup(out);
  return rc ? rc : (int)out->n;
}

static int sq_commit(broker_log *log, const char *group, const char *topic, int32_t partition,
                     int64_t next) {
  sqlite_log *l = (sqlite_log *)log;
  pthread_mutex_lock(&l->rmu);
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(l->rdb,
                              "INSERT INTO positions(grp, topic, part, next) VALUES(?,?,?,?) "
                              "ON CONFLICT(grp, topic, part) DO UPDATE SET next=excluded.next",
                              -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, group, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, partition);
    sqlite3_bind_int64(st, 4, next);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&l->rmu);
  return rc == SQLITE_DONE ? 0 : sqerr(rc);
}

static int sq_committed(broker_log *log, const char *group, const char *topic, int32_t partition,
                        int64_t *next) {
  sqlite_log *l = (sqlite_log *)log;
  pthread_mutex_lock(&l->rmu);
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(
      l->rdb, "SELECT next FROM positions WHERE grp=? AND topic=? AND part=?", -1, &st, NULL);
  *next = 0;
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, group, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, partition);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *next = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&l->rmu);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sqerr(rc);
}

static int sq_partitions(broker_log *log, const char *topic_name) {
  sqlite_log *l = (sqlite_log *)log;
  pthread_mutex_lock(&l->rmu);
  pthread_mutex_lock(&l->mu);
  tp *t = topic_get(l, l->rdb, topic_name);
  int parts = t ? t->parts : -EIO;
  pthread_mutex_unlock(&l->mu);
  pthread_mutex_unlock(&l->rmu);
  return parts;
}

static int sq_end(broker_log *log, const char *topic_name, int32_t partition, int64_t *end) {
  sqlite_log *l = (sqlite_log *)log;
  /* Read from the store, not the writer's cache: only committed records count. */
  pthread_mutex_lock(&l->rmu);
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(l->rdb, end_query, -1, &st, NULL);
  *end = 0;
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, topic_name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, partition);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *end = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&l->rmu);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sqerr(rc);
}

/* Bytes of a file, 0 when it is not there. */
static uint64_t file_bytes(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void sq_metrics(broker_log *log, ce_buf *out) {
  sqlite_log *l = (sqlite_log *)log;
  metrics_ok_failed(out, "outpost_log_commits_total",
                    "Groups of appends the embedded log wrote in one transaction, by result: ok "
                    "(synced), failed (log full or a store error: its appends are answered 503).",
                    atomic_load(&l->commits), atomic_load(&l->failed_commits));
  metrics_single(out, "outpost_log_flush_commits_total", "counter",
                 "Of outpost_log_commits_total, those made on the thread that took the requests "
                 "(the fast lane, at the end of a batch) rather than on the log's writer thread.",
                 atomic_load(&l->flush_commits));
  metrics_single(out, "outpost_log_appends_total", "counter",
                 "Appends (a request's events each) the embedded log made durable; over "
                 "outpost_log_commits_total, the mean group.",
                 atomic_load(&l->appends));
  metrics_single(out, "outpost_log_records_total", "counter",
                 "Records the embedded log made durable.", atomic_load(&l->records));
  metrics_family(out, "outpost_log_commit_duration_seconds", "histogram",
                 "A group commit, from its transaction's start to its sync (a checkpoint "
                 "included when one ran).");
  metrics_hist_render(out, "outpost_log_commit_duration_seconds", NULL, &l->commit_hist);
  char wal[4096];
  snprintf(wal, sizeof wal, "%s-wal", l->path);
  metrics_single(out, "outpost_log_disk_bytes", "gauge",
                 "Bytes of the embedded log's files: the database and its write-ahead log.",
                 file_bytes(l->path) + file_bytes(wal));
}

static void sq_free(broker_log *log) {
  sqlite_log *l = (sqlite_log *)log;
  pthread_mutex_lock(&l->mu);
  l->stop = true;
  pthread_cond_signal(&l->cv);
  pthread_mutex_unlock(&l->mu);
  pthread_join(l->thread, NULL); /* the writer drains the queue first */
  sqlite3_finalize(l->ins);
  sqlite3_finalize(l->begin);
  sqlite3_finalize(l->commit);
  sqlite3_close(l->rdb);
  sqlite3_close(l->wdb);
  topics_forget(l);
  pthread_mutex_destroy(&l->mu);
  pthread_mutex_destroy(&l->commit_mu);
  pthread_mutex_destroy(&l->rmu);
  pthread_cond_destroy(&l->cv);
  free(l->path);
  free(l);
}

static const broker_log_ops sqlite_ops = {
    .append = sq_append,
    .append_deferred = sq_append_deferred,
    .flush = sq_flush,
    .read = sq_read,
    .commit = sq_commit,
    .committed = sq_committed,
    .partitions = sq_partitions,
    .end = sq_end,
    .free = sq_free,
    .metrics = sq_metrics,
};

void broker_sqlite_opts_init(broker_sqlite_opts *o) {
  o->partitions = 1;
  o->retention_ms = 7LL * 24 * 3600 * 1000;
  o->retention_bytes = 0;
  o->max_bytes = 0;
}

broker_log *broker_log_sqlite_open(const char *path, const broker_sqlite_opts *opts, char *errbuf,
                                   size_t errlen) {
  sqlite_log *l = calloc(1, sizeof *l);
  if (!l) {
    snprintf(errbuf, errlen, "out of memory");
    return NULL;
  }
  l->base.ops = &sqlite_ops;
  if (opts)
    l->opts = *opts;
  else
    broker_sqlite_opts_init(&l->opts);
  l->last_retention = clock_mono_ms();
  l->path = strdup(path);
  if (!l->path) {
    snprintf(errbuf, errlen, "out of memory");
    goto fail_alloc;
  }
  if (open_db(path, true, &l->wdb, errbuf, errlen)) goto fail_alloc;
  char msg[256];
  if (broker__sqlite_schema(l->wdb, msg, sizeof msg)) {
    snprintf(errbuf, errlen, "%s: %s", path, msg);
    goto fail_wdb;
  }
  if (sqlite3_prepare_v2(l->wdb, BROKER__SEG_INSERT, -1, &l->ins, NULL) ||
      sqlite3_prepare_v2(l->wdb, "BEGIN IMMEDIATE", -1, &l->begin, NULL) ||
      sqlite3_prepare_v2(l->wdb, "COMMIT", -1, &l->commit, NULL)) {
    snprintf(errbuf, errlen, "%s: %s", path, sqlite3_errmsg(l->wdb));
    goto fail_stmts;
  }
  if (open_db(path, false, &l->rdb, errbuf, errlen)) goto fail_stmts;
  pthread_mutex_init(&l->mu, NULL);
  pthread_mutex_init(&l->commit_mu, NULL);
  pthread_mutex_init(&l->rmu, NULL);
  pthread_cond_init(&l->cv, NULL);
  if (pthread_create(&l->thread, NULL, writer, l)) {
    snprintf(errbuf, errlen, "cannot start the writer thread");
    goto fail_threads;
  }
  return &l->base;

fail_threads:
  pthread_mutex_destroy(&l->mu);
  pthread_mutex_destroy(&l->commit_mu);
  pthread_mutex_destroy(&l->rmu);
  pthread_cond_destroy(&l->cv);
  sqlite3_close(l->rdb);
fail_stmts:
  sqlite3_finalize(l->ins);
  sqlite3_finalize(l->begin);
  sqlite3_finalize(l->commit);
fail_wdb:
  sqlite3_close(l->wdb);
fail_alloc:
  free(l->path);
  free(l);
  return NULL;
}
