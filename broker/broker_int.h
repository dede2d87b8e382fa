/*
 * broker_int.h — private to broker/: the log's table of operations, which
 * each implementation fills, and helpers shared by the implementations.
 */
#ifndef OUTPOST_BROKER_BROKER_INT_H
#define OUTPOST_BROKER_BROKER_INT_H

#include "broker/broker.h"

typedef struct broker_log_ops {
  int (*append)(broker_log *log, const char *topic, const broker_record *recs, size_t n,
                broker_append_cb cb, void *opaque);
  /* broker_log_append_deferred and broker_log_flush; both may be NULL (then
   * append, and nothing). */
  int (*append_deferred)(broker_log *log, const char *topic, const broker_record *recs, size_t n,
                         broker_append_cb cb, void *opaque);
  void (*flush)(broker_log *log);
  int (*read)(broker_log *log, const char *topic, int32_t partition, int64_t from, size_t max,
              broker_records *out);
  int (*commit)(broker_log *log, const char *group, const char *topic, int32_t partition,
                int64_t next);
  int (*committed)(broker_log *log, const char *group, const char *topic, int32_t partition,
                   int64_t *next);
  int (*partitions)(broker_log *log, const char *topic);
  int (*end)(broker_log *log, const char *topic, int32_t partition, int64_t *end);
  void (*free)(broker_log *log);
  /* Appends the implementation's own metrics (Prometheus text); may be NULL. */
  void (*metrics)(broker_log *log, ce_buf *out);
} broker_log_ops;

/* Every implementation's struct starts with this. */
struct broker_log {
  const broker_log_ops *ops;
};

/* Headers as one blob: for each, u32 name length, name, u32 value length,
 * value (little endian). */
int broker__headers_pack(const ce_kv *h, size_t n, ce_buf *out);
/* The same in two steps, for callers that place it themselves: its size,
 * then writing it at out (that many bytes); returns the end. */
size_t broker__headers_size(const ce_kv *h, size_t n);
void *broker__headers_write(const ce_kv *h, size_t n, void *out);
/* Unpacks into kv pointing into blob; *n is the count. Returns 0 or -EINVAL. */
int broker__headers_unpack(const void *blob, size_t len, ce_kv *kv, size_t max, size_t *n);
/* Counts the headers of a packed blob. */
int broker__headers_count(const void *blob, size_t len, size_t *n);

/* broker_batch_encode, for events that passed ce_event_validate and were
 * changed since only through ce_event_set* (which checks what it sets), when
 * validated is true: the whole-event validation is not run again (it was a
 * tenth of the ingress's work per event). */
int broker__batch_encode(broker_batch *b, ce_event *const *evs, size_t n, bool validated,
                         ce_err *err);

/* ---- the ingress's per-client rate limit (rate.c) ---- */

typedef struct broker_rate broker_rate;
/* rate events a second for each client, burst at once at most (0: 1);
 * NULL when rate is 0 (no limit) or memory is out. */
broker_rate *broker__rate_new(uint32_t rate, uint32_t burst);
void broker__rate_free(broker_rate *r);
/* A request of events events from client addr at now_ns (a monotonic
 * clock): 0 when admitted (its events taken; a request is admitted while
 * one event's room is left, so a bigger batch leaves the client owing),
 * else the nanoseconds until the client may send again. */
uint64_t broker__rate_take(broker_rate *r, const httpd_addr *addr, size_t events, uint64_t now_ns);

/* ---- who may POST events (senders.c, --senders-file) ---- */

enum {
  BROKER_SENDERS_MAX = 256,
  BROKER_SENDER_TYPES_MAX = 16,
  BROKER_SENDER_TO_MAX = 16,
  BROKER_SENDER_TOKEN_MAX = 255
};

typedef struct broker_sender {
  char *name;  /* a DNS label, for answers and metrics */
  char *token; /* its bearer token */
  char *types[BROKER_SENDER_TYPES_MAX];
  size_t n_types; /* prefixes of the types it may send; 0: any type */
  char *to[BROKER_SENDER_TO_MAX];
  size_t n_to; /* brokers it may send to: "ns/name", or "ns/" and a star for a namespace's
                  every broker; 0: every broker */
  /* Its events the ingress accepted (for /metrics): its own count, or, once
   * the file was read again, the count of the sender of its name before
   * (which lives on: requests in flight still add to it). */
  _Atomic uint64_t *events;
  _Atomic uint64_t own;
} broker_sender;

typedef struct broker_senders {
  broker_sender *v;
  size_t n;
  struct broker_senders *replaced; /* the table this one replaced (broker__senders_check) */
} broker_senders;

/* Reads a senders file: one sender a line, `NAME TOKEN [TYPE-PREFIX...]
 * [to=NS/NAME...]`
 * (blank lines and lines starting with `#` skipped; names and tokens each
 * unique). NULL with errbuf saying which line and why on any fault, an
 * empty file included. Free with broker__senders_free (NULL: nothing). */
broker_senders *broker__senders_load(const char *path, char *errbuf, size_t errlen);
void broker__senders_free(broker_senders *s);
/* The sender whose token token is (NULL: none, or token NULL), compared
 * with every sender's whatever matches, in constant time for a length. */
broker_sender *broker__sender_of(broker_senders *s, const char *token);
/* A senders file kept current: its table is read again when the file
 * changes (a new inode, size or modification time, as when Kubernetes
 * updates a mounted Secret), looked at no more than every
 * BROKER_SENDERS_LOOK_MS. A table replaced stays alive until
 * broker__senders_close, since requests may still hold its senders. */
enum { BROKER_SENDERS_LOOK_MS = 2000 };
typedef struct broker_senders_file broker_senders_file;
/* NULL with errbuf saying why when the file cannot be read as
 * broker__senders_load reads it. */
broker_senders_file *broker__senders_open(const char *path, char *errbuf, size_t errlen);
void broker__senders_close(broker_senders_file *f);
/* The table in use (never NULL). */
broker_senders *broker__senders_current(broker_senders_file *f);
/* At now_ns (a monotonic clock), the file looked at if it is time, and
 * read again if it changed: a table that loads replaces the one in use
 * (each sender goes on with the count of events of the one of its name
 * before);
 * one that does not leaves it, and stderr says why. Safe from any thread:
 * one looks, the others go on. */
void broker__senders_check(broker_senders_file *f, uint64_t now_ns);
/* Reloads so far, done and refused. */
void broker__senders_reloads(broker_senders_file *f, uint64_t *ok, uint64_t *failed);

/* Whether who may send to broker ns/name. */
bool broker__sender_to(const broker_sender *who, const char *ns, const char *name);
/* Whether who may send an event of this type (len bytes, no NUL needed). */
bool broker__sender_allows(const broker_sender *who, const char *type, size_t len);

/* ---- the ingress's two ways from a POST to records (ingress.c, ingress_fast.c) ---- */

/* The checked path: the request's headers (n, names in any case) and body
 * decoded by ce_http_decode in any mode, each event stamped (default_ttl as
 * knativebrokerttl when it has none, refused when its own is not above 0;
 * now, an RFC 3339 timestamp, as knativearrivaltime) and encoded into *out
 * (empty; the caller frees it with broker_batch_cleanup) by
 * broker__batch_encode. Returns the number of events, or a negative errno
 * with *err naming the attribute and the rule (*out left empty). */
int broker__ingress_checked(const ce_kv *hdrs, size_t n, const void *body, size_t body_len,
                            const ce_limits *lim, int32_t default_ttl, const char *now,
                            broker_batch *out, ce_err *err);
/* The fast path for one event in HTTP binary mode: fills *out (empty) with
 * exactly the one record broker__ingress_checked would make, without a
 * ce_event, and returns 0; or returns -EAGAIN, *out left empty, for
 * anything it does not vouch for: another mode, a limit passed, a duplicate
 * attribute, a ce-datacontenttype header, more than 32 attributes, a TTL
 * that is not [1-9][0-9]* within 32 bits, a default_ttl not above 0, any
 * broken rule, no memory. Run broker__ingress_checked then: it accepts all
 * this accepts, and its refusals carry the words. */
int broker__ingress_fast(const ce_kv *hdrs, size_t n, const void *body, size_t body_len,
                         const ce_limits *lim, int32_t default_ttl, const char *now,
                         broker_batch *out);

/* The partition for a key: FNV-1a hash modulo partitions. */
int32_t broker__partition_for(const void *key, size_t len, int32_t partitions);

/* ---- the embedded log's segments (segment.c) ---- */

/* A segment being built: records of one partition with consecutive offsets,
 * from `first` on, stored as one row. init/cleanup own the buffers; reset
 * empties it and keeps their memory. */
typedef struct broker__seg {
  int64_t first; /* offset of its first record */
  int64_t ts;    /* newest timestamp among its records (INT64_MIN when empty) */
  size_t n;      /* records */
  ce_buf idx;    /* the JSON index, without its closing bracket */
  ce_buf data;   /* key, headers (packed), value of each record */
} broker__seg;

void broker__seg_init(broker__seg *s);
void broker__seg_cleanup(broker__seg *s);
void broker__seg_reset(broker__seg *s, int64_t first);
/* Adds the next record: key or value NULL for none (not the same as empty);
 * headers is a packed blob (broker__headers_pack). Returns 0 or -ENOMEM
 * (nothing added). */
int broker__seg_add(broker__seg *s, int64_t ts, const void *key, size_t key_len,
                    const void *headers, size_t headers_len, const void *value, size_t value_len);
/* The index as stored: s->idx closed by "]" (*len bytes, not NUL-terminated),
 * valid until the next add; NULL when empty or out of memory. */
const char *broker__seg_index(broker__seg *s, size_t *len);

/* One record of a stored segment: where its bytes are in the segment's data
 * (key at pos, then headers, then value); -1 for no key or no value. */
typedef struct broker__seg_entry {
  int64_t ts, pos, key_len, headers_len, value_len;
} broker__seg_entry;

/* Reads the n entries of a stored index into out[0..n), checking that each
 * lies within data_len bytes. Returns 0, or -EINVAL for a malformed index or
 * one that does not hold exactly n entries. */
int broker__seg_parse(const char *idx, size_t idx_len, size_t data_len, broker__seg_entry *out,
                      size_t n);

/* A segment is stored once it holds this many records or bytes: readers
 * fetch a whole segment to read any record of it, so they stay small. */
#define BROKER__SEG_MAX_RECORDS 256
#define BROKER__SEG_MAX_BYTES   (256 * 1024)

/* ---- the embedded log's schema (log_sqlite_schema.c) ---- */

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;

/* The statement that stores a segment, for broker__sqlite_seg_store. */
#define BROKER__SEG_INSERT                                                                         \
  "INSERT INTO segments(topic, part, first, next, ts, idx, data) VALUES(?,?,?,?,?,?,?)"

/* Makes the schema in db (a connection in WAL mode, no transaction open),
 * in one transaction: creates what is missing and migrates a log made by an
 * older version (a `records` table, a row per record) into segments, every
 * record kept. Returns 0, or a negative errno with a message in errbuf
 * (nothing changed then). */
int broker__sqlite_schema(sqlite3 *db, char *errbuf, size_t errlen);

/* Stores s (not empty) as a segment of topic/part with ins, a statement
 * prepared from BROKER__SEG_INSERT. Returns 0 or a negative errno. */
int broker__sqlite_seg_store(sqlite3_stmt *ins, const char *topic, int32_t part, broker__seg *s);

/* SQLite's result code as a negative errno. */
int broker__sqlite_errno(int rc);

/* Spaces and tabs off both ends of a header's value (HTTP's OWS), as core
 * trims Content-Type. */
static inline void broker__trim(const char **s, size_t *len) {
  while (*len && ((*s)[0] == ' ' || (*s)[0] == '\t')) (*s)++, (*len)--;
  while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t')) (*len)--;
}

/* An ASCII letter in lower case; any other byte as it is. */
static inline char broker__lower(char c) {
  return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* Whether the header's name is lower (a lowercase name), in any case. */
static inline bool broker__header_is(const ce_kv *h, const char *lower) {
  size_t i = 0;
  for (; i < h->name_len && lower[i]; i++)
    if (broker__lower(h->name[i]) != lower[i]) return false;
  return i == h->name_len && !lower[i];
}

#endif
