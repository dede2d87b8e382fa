/*
 * log_sqlite.c — the embedded log: SQLite in WAL mode, one file.
 *
 * Appends are queued to one writer thread, which takes everything queued,
 * writes it in one transaction and commits with synchronous=FULL, so that a
 * callback reporting success means the records are on disk. Appends that
 * arrive while a commit is syncing wait for the next one: many requests
 * share one fsync (group commit). Reads and position commits use a second
 * connection, which WAL lets run beside the writer.
 *
 * Offsets are per topic and partition, kept in the `partitions` table in the
 * same transaction as the records, so they never go back, even after
 * retention has deleted every record of a partition.
 */
#include "broker/broker.h"
#include "broker/broker_int.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { RETENTION_EVERY_MS = 5000, DELETE_CHUNK = 1000 };

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
  int64_t *end; /* next offset per partition (writer thread) */
  uint32_t rr;  /* round robin for records without a key */
} tp;

typedef struct sqlite_log {
  broker_log base;
  broker_sqlite_opts opts;
  sqlite3 *wdb, *rdb;
  sqlite3_stmt *ins, *upd_end;
  pthread_mutex_t rmu; /* guards rdb */
  pthread_mutex_t mu;  /* guards the queue, stop and topics */
  pthread_cond_t cv;
  req *head, *tail;
  bool stop;
  tp *topics;
  pthread_t thread;
  int64_t last_retention;
} sqlite_log;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int sqerr(int rc) {
  switch (rc & 0xff) {
  case SQLITE_OK:
    return 0;
  case SQLITE_FULL:
    return -ENOSPC;
  case SQLITE_NOMEM:
    return -ENOMEM;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return -EBUSY;
  default:
    return -EIO;
  }
}

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS topics(name TEXT PRIMARY KEY, partitions INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS partitions(topic TEXT NOT NULL, part INTEGER NOT NULL,"
    "  next INTEGER NOT NULL, PRIMARY KEY(topic, part));"
    "CREATE TABLE IF NOT EXISTS records(id INTEGER PRIMARY KEY, topic TEXT NOT NULL,"
    "  part INTEGER NOT NULL, off INTEGER NOT NULL, ts INTEGER NOT NULL, key BLOB,"
    "  headers BLOB NOT NULL, value BLOB);"
    "CREATE UNIQUE INDEX IF NOT EXISTS records_pos ON records(topic, part, off);"
    "CREATE TABLE IF NOT EXISTS positions(grp TEXT NOT NULL, topic TEXT NOT NULL,"
    "  part INTEGER NOT NULL, next INTEGER NOT NULL, PRIMARY KEY(grp, topic, part));";

static int open_db(const char *path, bool full_sync, sqlite3 **db, char *errbuf, size_t errlen) {
  int rc = sqlite3_open_v2(path, db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(*db, 10000);
    /* FULL: a commit returns once the WAL is synced (the 202 promise). The
     * reader connection only commits consumer positions: NORMAL loses at
     * most the last positions on power loss, which means redelivery, never
     * loss. */
    rc = sqlite3_exec(*db,
                      full_sync ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
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

/* Finds topic t, loading it from the store or creating it (writer thread, or
 * any thread under mu with db = rdb). Caller holds mu. */
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
  tp *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->name = strdup(name);
  t->end = calloc((size_t)parts, sizeof *t->end);
  if (!t->name || !t->end) goto fail;
  t->parts = parts;
  if (sqlite3_prepare_v2(db, "SELECT part, next FROM partitions WHERE topic=?", -1, &st, NULL))
    goto fail;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  while (sqlite3_step(st) == SQLITE_ROW) {
    int p = sqlite3_column_int(st, 0);
    if (p >= 0 && p < parts) t->end[p] = sqlite3_column_int64(st, 1);
  }
  sqlite3_finalize(st);
  t->next = l->topics;
  l->topics = t;
  return t;
fail:
  free(t->name);
  free(t->end);
  free(t);
  return NULL;
}

/* Forgets cached offsets after a failed transaction: they are read again. */
static void topics_forget(sqlite_log *l) {
  for (tp *t = l->topics, *next; t; t = next) {
    next = t->next;
    free(t->name);
    free(t->end);
    free(t);
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

static int write_req(sqlite_log *l, req *r, bool *dirty) {
  pthread_mutex_lock(&l->mu);
  tp *t = topic_get(l, l->wdb, r->topic);
  pthread_mutex_unlock(&l->mu);
  if (!t) return -EIO;
  for (size_t i = 0; i < r->n; i++) {
    rec *x = &r->recs[i];
    int32_t p = x->partition;
    if (p >= t->parts) return -EINVAL;
    if (p < 0)
      p = x->key ? broker__partition_for(x->key, x->key_len, t->parts)
                 : (int32_t)(t->rr++ % (uint32_t)t->parts);
    sqlite3_stmt *st = l->ins;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, r->topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, p);
    sqlite3_bind_int64(st, 3, t->end[p]);
    sqlite3_bind_int64(st, 4, x->ts);
    if (x->key)
      sqlite3_bind_blob(st, 5, x->key, (int)x->key_len, SQLITE_STATIC);
    else
      sqlite3_bind_null(st, 5);
    sqlite3_bind_blob(st, 6, x->headers, (int)x->headers_len, SQLITE_STATIC);
    if (x->value)
      sqlite3_bind_blob(st, 7, x->value, (int)x->value_len, SQLITE_STATIC);
    else
      sqlite3_bind_null(st, 7);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) return sqerr(rc);
    t->end[p]++;
  }
  *dirty = true;
  return 0;
}

static int save_ends(sqlite_log *l) {
  for (tp *t = l->topics; t; t = t->next)
    for (int32_t p = 0; p < t->parts; p++) {
      sqlite3_stmt *st = l->upd_end;
      sqlite3_reset(st);
      sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
      sqlite3_bind_int(st, 2, p);
      sqlite3_bind_int64(st, 3, t->end[p]);
      int rc = sqlite3_step(st);
      if (rc != SQLITE_DONE) return sqerr(rc);
    }
  return 0;
}

/* Writes a group of requests in one transaction and reports to each. */
static void write_group(sqlite_log *l, req *list) {
  int status = 0;
  if (l->opts.max_bytes && db_size(l->wdb) > l->opts.max_bytes) status = -ENOSPC;
  if (status == 0) status = sqerr(sqlite3_exec(l->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL));
  bool dirty = false;
  for (req *r = list; status == 0 && r; r = r->next) status = write_req(l, r, &dirty);
  if (status == 0 && dirty) status = save_ends(l);
  if (status == 0) status = sqerr(sqlite3_exec(l->wdb, "COMMIT", NULL, NULL, NULL));
  if (status != 0 && status != -ENOSPC) {
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

/* Deletes records every group is done with, past the age or size limits. */
static void retention(sqlite_log *l) {
  int64_t cutoff = l->opts.retention_ms ? now_ms() - l->opts.retention_ms : INT64_MIN;
  bool over = l->opts.retention_bytes && db_size(l->wdb) > l->opts.retention_bytes;
  if (cutoff == INT64_MIN && !over) return;
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
  sqlite3_stmt *sel, *del;
  if (sqlite3_prepare_v2(l->wdb, q, -1, &sel, NULL)) return;
  if (sqlite3_prepare_v2(l->wdb,
                         "DELETE FROM records WHERE id IN (SELECT id FROM records WHERE topic=?1"
                         " AND part=?2 AND off<?3 AND (ts<?4 OR ?5) ORDER BY off LIMIT ?6)",
                         -1, &del, NULL)) {
    sqlite3_finalize(sel);
    return;
  }
  while (sqlite3_step(sel) == SQLITE_ROW) {
    for (;;) {
      sqlite3_reset(del);
      sqlite3_bind_text(del, 1, (const char *)sqlite3_column_text(sel, 0), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int(del, 2, sqlite3_column_int(sel, 1));
      sqlite3_bind_int64(del, 3, sqlite3_column_int64(sel, 2));
      sqlite3_bind_int64(del, 4, cutoff);
      sqlite3_bind_int(del, 5, over);
      sqlite3_bind_int(del, 6, DELETE_CHUNK);
      if (sqlite3_step(del) != SQLITE_DONE || sqlite3_changes(l->wdb) < DELETE_CHUNK) break;
      if (over) over = db_size(l->wdb) > l->opts.retention_bytes;
    }
  }
  sqlite3_finalize(sel);
  sqlite3_finalize(del);
}

static void *writer(void *arg) {
  sqlite_log *l = arg;
  pthread_mutex_lock(&l->mu);
  for (;;) {
    while (!l->head && !l->stop) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += 1;
      pthread_cond_timedwait(&l->cv, &l->mu, &ts);
      if (mono_ms() - l->last_retention >= RETENTION_EVERY_MS) break;
    }
    req *list = l->head;
    l->head = l->tail = NULL;
    bool stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    if (list) write_group(l, list);
    if (mono_ms() - l->last_retention >= RETENTION_EVERY_MS) {
      l->last_retention = mono_ms();
      retention(l);
    }
    pthread_mutex_lock(&l->mu);
    if (stop && !l->head) break;
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

static int sq_append(broker_log *log, const char *topic, const broker_record *recs, size_t n,
                     broker_append_cb cb, void *opaque) {
  sqlite_log *l = (sqlite_log *)log;
  /* One allocation holds the request, its records and copies of their bytes. */
  ce_buf packed;
  ce_buf_init(&packed);
  size_t bytes = sizeof(req) + n * sizeof(rec) + strlen(topic) + 1;
  size_t *hoff = calloc(n ? n : 1, 2 * sizeof *hoff);
  if (!hoff) return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    hoff[2 * i] = packed.len;
    if (broker__headers_pack(recs[i].headers, recs[i].n_headers, &packed)) {
      free(hoff);
      ce_buf_cleanup(&packed);
      return -ENOMEM;
    }
    hoff[2 * i + 1] = packed.len - hoff[2 * i];
    bytes += recs[i].key_len + recs[i].value_len;
  }
  bytes += packed.len;
  req *r = malloc(bytes);
  if (!r) {
    free(hoff);
    ce_buf_cleanup(&packed);
    return -ENOMEM;
  }
  r->next = NULL;
  r->n = n;
  r->cb = cb;
  r->opaque = opaque;
  r->recs = (rec *)(r + 1);
  char *p = (char *)(r->recs + n);
  memcpy(p, packed.data ? packed.data : "", packed.len);
  const char *hbase = p;
  p += packed.len;
  int64_t ts = now_ms();
  for (size_t i = 0; i < n; i++) {
    const broker_record *in = &recs[i];
    rec *x = &r->recs[i];
    x->partition = in->partition;
    x->ts = in->timestamp_ms ? in->timestamp_ms : ts;
    x->headers = hbase + hoff[2 * i];
    x->headers_len = hoff[2 * i + 1];
    x->key = NULL;
    x->key_len = in->key_len;
    if (in->key) {
      memcpy(p, in->key, in->key_len);
      x->key = p;
      p += in->key_len;
    }
    x->value = NULL;
    x->value_len = in->value_len;
    if (in->value) {
      memcpy(p, in->value, in->value_len);
      x->value = p;
      p += in->value_len;
    }
  }
  strcpy(p, topic);
  r->topic = p;
  free(hoff);
  ce_buf_cleanup(&packed);

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
  pthread_cond_signal(&l->cv);
  pthread_mutex_unlock(&l->mu);
  return 0;
}

static int sq_read(broker_log *log, const char *topic_name, int32_t partition, int64_t from,
                   size_t max, broker_records *out) {
  sqlite_log *l = (sqlite_log *)log;
  broker_records_init(out);
  ce_buf mem;
  ce_buf_init(&mem);
  /* First pass: copy rows into mem, remembering where each part starts. */
  typedef struct {
    int64_t off, ts;
    size_t key, key_len, hdr, hdr_len, val, val_len, n_headers;
    bool has_key, has_val;
  } row;
  row *rows = NULL;
  size_t n = 0, cap = 0, total_headers = 0;
  int rc = 0;
  pthread_mutex_lock(&l->rmu);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(l->rdb,
                         "SELECT off, ts, key, headers, value FROM records WHERE topic=? AND "
                         "part=? AND off>=? ORDER BY off LIMIT ?",
                         -1, &st, NULL)) {
    pthread_mutex_unlock(&l->rmu);
    return -EIO;
  }
  sqlite3_bind_text(st, 1, topic_name, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, partition);
  sqlite3_bind_int64(st, 3, from);
  sqlite3_bind_int64(st, 4, (sqlite3_int64)max);
  int s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      row *nr = realloc(rows, cap * sizeof *nr);
      if (!nr) {
        rc = -ENOMEM;
        break;
      }
      rows = nr;
    }
    row *w = &rows[n];
    w->off = sqlite3_column_int64(st, 0);
    w->ts = sqlite3_column_int64(st, 1);
    w->has_key = sqlite3_column_type(st, 2) != SQLITE_NULL;
    w->has_val = sqlite3_column_type(st, 4) != SQLITE_NULL;
    const void *k = sqlite3_column_blob(st, 2);
    w->key_len = (size_t)sqlite3_column_bytes(st, 2);
    w->key = mem.len;
    if ((rc = ce_buf_append(&mem, k ? k : "", w->key_len))) break;
    const void *h = sqlite3_column_blob(st, 3);
    w->hdr_len = (size_t)sqlite3_column_bytes(st, 3);
    w->hdr = mem.len;
    if ((rc = ce_buf_append(&mem, h ? h : "", w->hdr_len))) break;
    const void *v = sqlite3_column_blob(st, 4);
    w->val_len = (size_t)sqlite3_column_bytes(st, 4);
    w->val = mem.len;
    if ((rc = ce_buf_append(&mem, v ? v : "", w->val_len))) break;
    if (broker__headers_count(h, w->hdr_len, &w->n_headers)) {
      rc = -EIO;
      break;
    }
    total_headers += w->n_headers;
    n++;
  }
  if (rc == 0 && s != SQLITE_DONE && s != SQLITE_ROW) rc = sqerr(s);
  sqlite3_finalize(st);
  pthread_mutex_unlock(&l->rmu);
  /* Second pass: pointers into mem, now that it no longer moves. */
  if (rc == 0 && n) {
    out->recs = malloc(n * sizeof(broker_record) + total_headers * sizeof(ce_kv));
    if (!out->recs) rc = -ENOMEM;
  }
  if (rc == 0 && n) {
    ce_kv *kv = (ce_kv *)(out->recs + n);
    for (size_t i = 0; i < n; i++) {
      row *w = &rows[i];
      broker_record *x = &out->recs[i];
      size_t got;
      broker__headers_unpack(mem.data + w->hdr, w->hdr_len, kv, w->n_headers, &got);
      *x = (broker_record){partition,  w->off, w->ts, w->has_key ? mem.data + w->key : NULL,
                           w->key_len, kv,     got,   w->has_val ? mem.data + w->val : NULL,
                           w->val_len};
      kv += got;
    }
    out->n = n;
    out->mem = mem.data;
    mem.data = NULL;
  }
  free(rows);
  ce_buf_cleanup(&mem);
  if (rc) broker_records_cleanup(out);
  return rc ? rc : (int)n;
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
  int rc = sqlite3_prepare_v2(l->rdb, "SELECT next FROM partitions WHERE topic=? AND part=?", -1,
                              &st, NULL);
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

static void sq_free(broker_log *log) {
  sqlite_log *l = (sqlite_log *)log;
  pthread_mutex_lock(&l->mu);
  l->stop = true;
  pthread_cond_signal(&l->cv);
  pthread_mutex_unlock(&l->mu);
  pthread_join(l->thread, NULL); /* the writer drains the queue first */
  sqlite3_finalize(l->ins);
  sqlite3_finalize(l->upd_end);
  sqlite3_close(l->rdb);
  sqlite3_close(l->wdb);
  topics_forget(l);
  pthread_mutex_destroy(&l->mu);
  pthread_mutex_destroy(&l->rmu);
  pthread_cond_destroy(&l->cv);
  free(l);
}

static const broker_log_ops sqlite_ops = {sq_append,     sq_read, sq_commit, sq_committed,
                                          sq_partitions, sq_end,  sq_free};

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
  l->last_retention = mono_ms();
  if (open_db(path, true, &l->wdb, errbuf, errlen)) goto fail_alloc;
  char *msg = NULL;
  if (sqlite3_exec(l->wdb, schema, NULL, NULL, &msg) != SQLITE_OK) {
    snprintf(errbuf, errlen, "%s: schema: %s", path, msg ? msg : "?");
    sqlite3_free(msg);
    goto fail_wdb;
  }
  if (sqlite3_prepare_v2(l->wdb,
                         "INSERT INTO records(topic, part, off, ts, key, headers, value) "
                         "VALUES(?,?,?,?,?,?,?)",
                         -1, &l->ins, NULL) ||
      sqlite3_prepare_v2(l->wdb,
                         "INSERT INTO partitions(topic, part, next) VALUES(?,?,?) "
                         "ON CONFLICT(topic, part) DO UPDATE SET next=excluded.next",
                         -1, &l->upd_end, NULL)) {
    snprintf(errbuf, errlen, "%s: %s", path, sqlite3_errmsg(l->wdb));
    goto fail_stmts;
  }
  if (open_db(path, false, &l->rdb, errbuf, errlen)) goto fail_stmts;
  pthread_mutex_init(&l->mu, NULL);
  pthread_mutex_init(&l->rmu, NULL);
  pthread_cond_init(&l->cv, NULL);
  if (pthread_create(&l->thread, NULL, writer, l)) {
    snprintf(errbuf, errlen, "cannot start the writer thread");
    goto fail_threads;
  }
  return &l->base;

fail_threads:
  pthread_mutex_destroy(&l->mu);
  pthread_mutex_destroy(&l->rmu);
  pthread_cond_destroy(&l->cv);
  sqlite3_close(l->rdb);
fail_stmts:
  sqlite3_finalize(l->ins);
  sqlite3_finalize(l->upd_end);
fail_wdb:
  sqlite3_close(l->wdb);
fail_alloc:
  free(l);
  return NULL;
}
