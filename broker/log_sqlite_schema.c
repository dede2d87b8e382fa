/*
 * log_sqlite_schema.c — the embedded log's tables, and the migration of a log
 * written before segments: its `records` table (one row per record, with a
 * unique index on topic, part, off) becomes segments of the same records, in
 * the same transaction that replaces the table by the view of that name.
 *
 * PRAGMA user_version is the schema's version: 0 for a new file or one from
 * before segments; 1 with segments and a partition's end written to
 * `partitions` in every commit; 2 since that end is the newest segment's
 * next, `partitions` holding it only for retention (the tables are the same:
 * 1 becomes 2 by its number, but a version-1 outpost would take the table's
 * end for the partition's and reuse offsets, so it must refuse the file). A
 * file of a later version is refused rather than guessed at.
 */
#include "broker/broker_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

enum { SCHEMA_VERSION = 2 };
#define SCHEMA_VERSION_TEXT "2" /* the same, for PRAGMA user_version */

static const char tables[] =
    "CREATE TABLE IF NOT EXISTS topics(name TEXT PRIMARY KEY, partitions INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS partitions(topic TEXT NOT NULL, part INTEGER NOT NULL,"
    "  next INTEGER NOT NULL, PRIMARY KEY(topic, part));"
    /* Records first..next-1 of topic/part; ts is the newest of their
     * timestamps (retention by age); idx and data as segment.c writes them.
     * Keyed by next, so that the segment holding offset X is the first one
     * with next > X. */
    "CREATE TABLE IF NOT EXISTS segments(id INTEGER PRIMARY KEY, topic TEXT NOT NULL,"
    "  part INTEGER NOT NULL, first INTEGER NOT NULL, next INTEGER NOT NULL,"
    "  ts INTEGER NOT NULL, idx TEXT NOT NULL, data BLOB NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS segments_pos ON segments(topic, part, next);"
    "CREATE TABLE IF NOT EXISTS positions(grp TEXT NOT NULL, topic TEXT NOT NULL,"
    "  part INTEGER NOT NULL, next INTEGER NOT NULL, PRIMARY KEY(grp, topic, part));";

/* A row per record, as the table `records` had before segments, for people
 * and tests that query the file (not used by the log itself). */
static const char records_view[] =
    "CREATE VIEW IF NOT EXISTS records(topic, part, off, ts, key, headers, value) AS"
    " SELECT topic, part, off, ts,"
    "   iif(kl < 0, NULL, substr(data, pos + 1, kl)),"
    "   substr(data, pos + max(kl, 0) + 1, hl),"
    "   iif(vl < 0, NULL, substr(data, pos + max(kl, 0) + hl + 1, vl))"
    " FROM (SELECT s.topic, s.part, s.first + j.key AS off, s.data,"
    "   json_extract(j.value, '$[0]') AS ts, json_extract(j.value, '$[1]') AS pos,"
    "   json_extract(j.value, '$[2]') AS kl, json_extract(j.value, '$[3]') AS hl,"
    "   json_extract(j.value, '$[4]') AS vl"
    "   FROM segments s, json_each(s.idx) j);";

int broker__sqlite_errno(int rc) {
  switch (rc & 0xff) {
  case SQLITE_OK:
  case SQLITE_ROW:
  case SQLITE_DONE:
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

int broker__sqlite_seg_store(sqlite3_stmt *ins, const char *topic, int32_t part, broker__seg *s) {
  size_t idx_len;
  const char *idx = broker__seg_index(s, &idx_len);
  if (!idx) return -ENOMEM;
  sqlite3_reset(ins);
  sqlite3_bind_text(ins, 1, topic, -1, SQLITE_STATIC);
  sqlite3_bind_int(ins, 2, part);
  sqlite3_bind_int64(ins, 3, s->first);
  sqlite3_bind_int64(ins, 4, s->first + (int64_t)s->n);
  sqlite3_bind_int64(ins, 5, s->ts);
  sqlite3_bind_text(ins, 6, idx, (int)idx_len, SQLITE_STATIC);
  /* A NULL pointer would bind NULL: records with no bytes at all are "". */
  sqlite3_bind_blob(ins, 7, s->data.data ? s->data.data : "", (int)s->data.len, SQLITE_STATIC);
  int rc = sqlite3_step(ins);
  /* Unbound, so that no pointer into s outlives this call in the statement. */
  sqlite3_clear_bindings(ins);
  return rc == SQLITE_DONE ? 0 : broker__sqlite_errno(rc);
}

/* One integer from a query; *v stays 0 without a row. */
static int query_int(sqlite3 *db, const char *sql, int64_t *v) {
  sqlite3_stmt *st;
  *v = 0;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) return broker__sqlite_errno(rc);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return broker__sqlite_errno(rc);
}

/* A column's bytes; NULL only for SQL NULL (SQLite gives NULL for an empty
 * blob too, which is a value). */
static const void *column_bytes(sqlite3_stmt *st, int col, size_t *len) {
  *len = (size_t)sqlite3_column_bytes(st, col);
  if (sqlite3_column_type(st, col) == SQLITE_NULL) return NULL;
  const void *p = sqlite3_column_blob(st, col);
  return p ? p : "";
}

/* The migration's progress: the segment being built and whose it is. */
typedef struct mig {
  sqlite3_stmt *ins;
  broker__seg seg;
  char *topic; /* of seg, when seg is not empty */
  int32_t part;
  int64_t moved; /* records stored */
} mig;

static int mig_flush(mig *m) {
  if (m->seg.n == 0) return 0;
  int rc = broker__sqlite_seg_store(m->ins, m->topic, m->part, &m->seg);
  if (rc == 0) m->moved += (int64_t)m->seg.n;
  sqlite3_free(m->topic);
  m->topic = NULL;
  broker__seg_reset(&m->seg, 0);
  return rc;
}

/* Adds one old row (topic, part, off, ts, key, headers, value) to the
 * segment being built, storing that one first when the row does not follow
 * it (another partition, a gap left by retention, or full). */
static int mig_row(mig *m, sqlite3_stmt *sel) {
  const char *topic = (const char *)sqlite3_column_text(sel, 0);
  int32_t part = sqlite3_column_int(sel, 1);
  int64_t off = sqlite3_column_int64(sel, 2);
  if (!topic) return -EIO;
  bool follows = m->seg.n && strcmp(topic, m->topic) == 0 && part == m->part &&
                 off == m->seg.first + (int64_t)m->seg.n && m->seg.n < BROKER__SEG_MAX_RECORDS &&
                 m->seg.data.len < BROKER__SEG_MAX_BYTES;
  int rc = follows ? 0 : mig_flush(m);
  if (rc) return rc;
  if (m->seg.n == 0) {
    if (!(m->topic = sqlite3_mprintf("%s", topic))) return -ENOMEM;
    m->part = part;
    broker__seg_reset(&m->seg, off);
  }
  size_t kl, hl, vl;
  const void *k = column_bytes(sel, 4, &kl), *h = column_bytes(sel, 5, &hl),
             *v = column_bytes(sel, 6, &vl);
  return broker__seg_add(&m->seg, sqlite3_column_int64(sel, 3), k, kl, h ? h : "", hl, v, vl);
}

/* Moves every row of the old `records` table into segments, then drops the
 * table (and its index). Fails, changing nothing once rolled back, unless
 * every row was stored. */
static int migrate_records(sqlite3 *db, char *errbuf, size_t errlen) {
  int64_t old = 0;
  int rc = query_int(db, "SELECT count(*) FROM records", &old);
  mig m = {.ins = NULL, .topic = NULL, .part = 0, .moved = 0};
  broker__seg_init(&m.seg);
  sqlite3_stmt *sel = NULL;
  if (rc == 0)
    rc = broker__sqlite_errno(sqlite3_prepare_v2(db, BROKER__SEG_INSERT, -1, &m.ins, NULL));
  if (rc == 0)
    rc = broker__sqlite_errno(sqlite3_prepare_v2(
        db,
        "SELECT topic, part, off, ts, key, headers, value FROM records ORDER BY topic, part, off",
        -1, &sel, NULL));
  int s = SQLITE_DONE;
  while (rc == 0 && (s = sqlite3_step(sel)) == SQLITE_ROW) rc = mig_row(&m, sel);
  if (rc == 0 && s != SQLITE_DONE) rc = broker__sqlite_errno(s);
  sqlite3_finalize(sel);
  if (rc == 0) rc = mig_flush(&m);
  sqlite3_finalize(m.ins);
  sqlite3_free(m.topic);
  broker__seg_cleanup(&m.seg);
  if (rc == 0 && m.moved != old) rc = -EIO;
  if (rc == 0) rc = broker__sqlite_errno(sqlite3_exec(db, "DROP TABLE records", NULL, NULL, NULL));
  if (rc)
    snprintf(errbuf, errlen, "migrating records to segments: %s (%lld of %lld moved)",
             sqlite3_errmsg(db), (long long)m.moved, (long long)old);
  return rc;
}

static int exec(sqlite3 *db, const char *sql) {
  return broker__sqlite_errno(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

/* The schema's steps, inside the caller's transaction. */
static int schema_steps(sqlite3 *db, char *errbuf, size_t errlen) {
  int64_t version = 0, old_table = 0;
  int rc = query_int(db, "PRAGMA user_version", &version);
  if (rc == 0 && version > SCHEMA_VERSION) {
    snprintf(errbuf, errlen, "schema version %lld is newer than this outpost's (%d)",
             (long long)version, SCHEMA_VERSION);
    return -EPROTO;
  }
  if (rc == 0) rc = exec(db, tables);
  if (rc == 0)
    rc = query_int(db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='records'",
                   &old_table);
  if (rc == 0 && old_table) rc = migrate_records(db, errbuf, errlen);
  if (rc == 0) rc = exec(db, records_view);
  if (rc == 0 && version < SCHEMA_VERSION)
    rc = exec(db, "PRAGMA user_version=" SCHEMA_VERSION_TEXT);
  return rc;
}

int broker__sqlite_schema(sqlite3 *db, char *errbuf, size_t errlen) {
  if (errlen) errbuf[0] = '\0';
  int rc = exec(db, "BEGIN IMMEDIATE");
  if (rc == 0) rc = schema_steps(db, errbuf, errlen);
  if (rc == 0) rc = exec(db, "COMMIT");
  if (rc) {
    if (errlen && !errbuf[0]) snprintf(errbuf, errlen, "schema: %s", sqlite3_errmsg(db));
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  }
  return rc;
}
