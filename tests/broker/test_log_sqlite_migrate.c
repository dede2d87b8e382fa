/*
 * test_log_sqlite_migrate.c — a log file written before segments (the old
 * schema: a `records` table with one row per record) opens: every record is
 * kept, in segments, with its offset, timestamp, key, headers and value (no
 * key and no value not confused with empty ones), gaps left by retention
 * stay gaps, ends and consumer positions are unchanged, appends go on from
 * the old ends, and the `records` view shows exactly the rows the table had.
 * A file of a newer schema is refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "append_waiter.h"
#include "broker/broker.h"
#include "log_file.h"

static char path[256];

static int setup(void **state) {
  (void)state;
  snprintf(path, sizeof path, "/tmp/outpost-test-migrate-%d.db", (int)getpid());
  unlink(path);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  log_file_remove(path);
  return 0;
}

/* The schema of the log before segments, as log_sqlite.c made it. */
static const char old_schema[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE topics(name TEXT PRIMARY KEY, partitions INTEGER NOT NULL);"
    "CREATE TABLE partitions(topic TEXT NOT NULL, part INTEGER NOT NULL,"
    "  next INTEGER NOT NULL, PRIMARY KEY(topic, part));"
    "CREATE TABLE records(id INTEGER PRIMARY KEY, topic TEXT NOT NULL,"
    "  part INTEGER NOT NULL, off INTEGER NOT NULL, ts INTEGER NOT NULL, key BLOB,"
    "  headers BLOB NOT NULL, value BLOB);"
    "CREATE UNIQUE INDEX records_pos ON records(topic, part, off);"
    "CREATE TABLE positions(grp TEXT NOT NULL, topic TEXT NOT NULL,"
    "  part INTEGER NOT NULL, next INTEGER NOT NULL, PRIMARY KEY(grp, topic, part));"
    "INSERT INTO topics VALUES('t', 2), ('u', 1);"
    "INSERT INTO partitions VALUES('t', 0, 10), ('t', 1, 300), ('u', 0, 5);"
    "INSERT INTO positions VALUES('g', 't', 0, 4);";

static sqlite3 *db_open(void) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  return db;
}

static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* One old row; key or value NULL for none; one header, ce_id, or none when
 * ce_id is NULL (packed as the log packs them: u32 length, bytes, LE). */
static void old_row(sqlite3_stmt *st, const char *topic, int part, int64_t off, const char *key,
                    const char *ce_id, const char *value) {
  unsigned char h[64];
  size_t n = 0;
  if (ce_id) {
    uint32_t vl = (uint32_t)strlen(ce_id);
    put32(h, 5);
    memcpy(h + 4, "ce_id", 5);
    put32(h + 9, vl);
    memcpy(h + 13, ce_id, vl);
    n = 13 + vl;
  }
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, part);
  sqlite3_bind_int64(st, 3, off);
  sqlite3_bind_int64(st, 4, 1700000000000 + off);
  if (key)
    sqlite3_bind_blob(st, 5, key, (int)strlen(key), SQLITE_STATIC);
  else
    sqlite3_bind_null(st, 5);
  sqlite3_bind_blob(st, 6, h, (int)n, SQLITE_TRANSIENT);
  if (value)
    sqlite3_bind_blob(st, 7, value, (int)strlen(value), SQLITE_STATIC);
  else
    sqlite3_bind_null(st, 7);
  assert_int_equal(sqlite3_step(st), SQLITE_DONE);
}

/* A file in the old schema: t/0 holds 3..5 and 8..9 (retention took the
 * rest), t/1 holds 0..299 (more than one segment), u has no record left. */
static void make_old_log(void) {
  sqlite3 *db = db_open();
  assert_int_equal(sqlite3_exec(db, old_schema, NULL, NULL, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "INSERT INTO records(topic, part, off, ts, key, headers, "
                                      "value) VALUES(?,?,?,?,?,?,?)",
                                      -1, &st, NULL),
                   SQLITE_OK);
  old_row(st, "t", 0, 3, "k", "a3", "{\"n\":3}");
  old_row(st, "t", 0, 4, NULL, "a4", NULL);
  old_row(st, "t", 0, 5, "", "a5", "");
  old_row(st, "t", 0, 8, "k", NULL, "{}"); /* no headers at all */
  old_row(st, "t", 0, 9, "k", "a9", "{}");
  for (int i = 0; i < 300; i++) {
    char id[16];
    snprintf(id, sizeof id, "b%d", i);
    old_row(st, "t", 1, i, NULL, id, id);
  }
  sqlite3_finalize(st);
  assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

/* Every row of `records`, quoted (NULL and X'' differ), one per line. */
static char *dump_records(void) {
  sqlite3 *db = db_open();
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "SELECT group_concat(line, char(10)) FROM (SELECT "
                                      "topic||' '||part||' '||off||' '||ts||' '||quote(key)||' '||"
                                      "quote(headers)||' '||quote(value) AS line FROM records "
                                      "ORDER BY topic, part, off)",
                                      -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  char *out = strdup((const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  assert_non_null(out);
  return out;
}

static int64_t query_int(const char *sql) {
  sqlite3 *db = db_open();
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

static broker_log *open_log(void) {
  char err[256] = "";
  broker_log *log = broker_log_sqlite_open(path, NULL, err, sizeof err);
  if (!log) fail_msg("open %s: %s", path, err);
  return log;
}

/* What the log reads of t/0 is what the old rows held. */
static void check_t0(broker_log *log) {
  broker_records out;
  assert_int_equal(broker_log_read(log, "t", 0, 0, 100, &out), 5);
  const int64_t offs[] = {3, 4, 5, 8, 9};
  for (int i = 0; i < 5; i++) {
    assert_int_equal(out.recs[i].offset, offs[i]);
    assert_int_equal(out.recs[i].timestamp_ms, 1700000000000 + offs[i]);
  }
  assert_memory_equal(out.recs[0].key, "k", 1);
  assert_memory_equal(out.recs[0].value, "{\"n\":3}", 7);
  assert_int_equal(out.recs[0].n_headers, 1);
  assert_memory_equal(out.recs[0].headers[0].value, "a3", 2);
  assert_null(out.recs[1].key);
  assert_null(out.recs[1].value);
  assert_non_null(out.recs[2].key); /* empty, not absent */
  assert_int_equal(out.recs[2].key_len, 0);
  assert_non_null(out.recs[2].value);
  assert_int_equal(out.recs[2].value_len, 0);
  assert_int_equal(out.recs[3].n_headers, 0);
  broker_records_cleanup(&out);
  /* From inside the gap, and from inside a segment. */
  assert_int_equal(broker_log_read(log, "t", 0, 6, 100, &out), 2);
  assert_int_equal(out.recs[0].offset, 8);
  broker_records_cleanup(&out);
  assert_int_equal(broker_log_read(log, "t", 0, 4, 1, &out), 1);
  assert_int_equal(out.recs[0].offset, 4);
  broker_records_cleanup(&out);
}

static void old_log_migrates(void **state) {
  (void)state;
  make_old_log();
  char *before = dump_records();
  broker_log *log = open_log();
  check_t0(log);
  broker_records out;
  assert_int_equal(broker_log_read(log, "t", 1, 250, 100, &out), 50);
  assert_int_equal(out.recs[0].offset, 250);
  assert_memory_equal(out.recs[49].value, "b299", 4);
  broker_records_cleanup(&out);
  int64_t end, next;
  assert_int_equal(broker_log_end(log, "t", 0, &end), 0);
  assert_int_equal(end, 10);
  assert_int_equal(broker_log_end(log, "u", 0, &end), 0);
  assert_int_equal(end, 5);
  assert_int_equal(broker_log_partitions(log, "t"), 2);
  assert_int_equal(broker_log_committed(log, "g", "t", 0, &next), 0);
  assert_int_equal(next, 4);
  broker_log_free(log);

  /* The view shows what the table held; the old table and index are gone. */
  char *after = dump_records();
  assert_string_equal(after, before);
  free(after);
  assert_int_equal(query_int("SELECT count(*) FROM segments"), 4);
  assert_int_equal(query_int("SELECT count(*) FROM sqlite_master WHERE name='records' AND "
                             "type='view'"),
                   1);
  assert_int_equal(query_int("SELECT count(*) FROM sqlite_master WHERE name='records_pos'"), 0);
  assert_int_equal(query_int("PRAGMA user_version"), 2);

  /* Opened again: nothing to migrate; appends go on from the old end. */
  log = open_log();
  check_t0(log);
  waiter *w = waiter_new();
  broker_record r = {.partition = 0, .value = "new", .value_len = 3};
  assert_int_equal(broker_log_append(log, "u", &r, 1, on_append, w), 0);
  wait_for(w, 1);
  assert_int_equal(w->last_status, 0);
  free(w);
  assert_int_equal(broker_log_read(log, "u", 0, 0, 10, &out), 1);
  assert_int_equal(out.recs[0].offset, 5);
  broker_records_cleanup(&out);
  broker_log_free(log);
  after = dump_records();
  assert_int_equal(strncmp(after, before, strlen(before)), 0);
  assert_non_null(strstr(after + strlen(before), "u 0 5 "));
  free(after);
  free(before);
}

static void newer_schema_refused(void **state) {
  (void)state;
  broker_log_free(open_log());
  sqlite3 *db = db_open();
  assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=3", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  char err[256] = "";
  assert_null(broker_log_sqlite_open(path, NULL, err, sizeof err));
  assert_non_null(strstr(err, "newer"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(old_log_migrates, setup, teardown),
      cmocka_unit_test_setup_teardown(newer_schema_refused, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
