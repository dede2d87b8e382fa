/*
 * ce.h — the CloudEvent model and its codecs (CloudEvents 1.0.2).
 *
 * One event type (ce_event) and four ways to move it: the JSON event format,
 * the HTTP binding (binary, structured and batched modes), and the Kafka
 * binding (binary and structured). Decoders validate every rule of the core
 * specification that a receiver can check and report the first broken one in
 * a ce_err naming the attribute and the rule. Encoders never emit an invalid
 * event: they validate first.
 *
 * Thread rules: a ce_event is not shared; distinct events may be used from
 * distinct threads at once. Everything else here is reentrant.
 *
 * Errors are negative errno values:
 *   -EINVAL    malformed or invalid (an HTTP front end answers 400)
 *   -EMSGSIZE  body larger than ce_limits.max_body (413)
 *   -E2BIG     too many headers, or one header too large (431)
 *   -ENOTSUP   unsupported content type, event format or charset (415)
 *   -ENOMEM    out of memory
 */
#ifndef OUTPOST_CORE_CE_H
#define OUTPOST_CORE_CE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- types */

/* The CloudEvents type system (spec §"Type System"). */
typedef enum ce_type {
  CE_TYPE_STRING = 0,
  CE_TYPE_BOOLEAN,
  CE_TYPE_INTEGER,
  CE_TYPE_BINARY,    /* value holds the base64 (RFC 4648) text */
  CE_TYPE_URI,       /* absolute URI, RFC 3986 §4.3 */
  CE_TYPE_URI_REF,   /* URI-reference, RFC 3986 §4.1 */
  CE_TYPE_TIMESTAMP, /* RFC 3339 */
} ce_type;

/* An attribute, read-only for users. Every value is kept in its canonical
 * string form ("true", "-12", base64 text, ...), NUL-terminated; the typed
 * fields are filled for the types that have them. */
typedef struct ce_attr {
  const char *name;  /* [a-z0-9]+ */
  const char *value; /* canonical string form, NUL-terminated */
  size_t value_len;  /* strlen(value) */
  ce_type type;
  int32_t integer; /* CE_TYPE_INTEGER only */
  bool boolean;    /* CE_TYPE_BOOLEAN only */
} ce_attr;

/* Opaque. Owns copies of every string and byte given to it. */
typedef struct ce_event ce_event;

/* The error of a failed decode, encode or validation. */
typedef struct ce_err {
  char attr[64];    /* the attribute (or header, or member) at fault; "" if none */
  char reason[256]; /* the rule broken, in words */
  int index;        /* position in a batch, or -1 */
} ce_err;

/* Limits a decoder enforces. Zero in a field means "no limit". */
typedef struct ce_limits {
  size_t max_body;        /* bytes of HTTP body / Kafka value (default 1 MiB) */
  size_t max_headers;     /* header count (default 100) */
  size_t max_header_size; /* bytes of one header, name + value (default 8 KiB) */
  size_t max_batch;       /* events in one batch (default 1000) */
  size_t max_depth;       /* JSON nesting depth inside data (default 64) */
} ce_limits;

/* Fills *lim with the defaults above. They accept events of at least 64 KB,
 * as the specification asks of consumers. */
void ce_limits_init(ce_limits *lim);

/* A growable byte buffer. ce_buf_init before use; ce_buf_cleanup frees.
 * data is NUL-terminated whenever cap > 0 (the NUL is not counted in len). */
typedef struct ce_buf {
  char *data;
  size_t len;
  size_t cap;
} ce_buf;

void ce_buf_init(ce_buf *b);
void ce_buf_cleanup(ce_buf *b);
void ce_buf_reset(ce_buf *b); /* len = 0, keeps the memory */
int ce_buf_append(ce_buf *b, const void *p, size_t n);
int ce_buf_append_str(ce_buf *b, const char *s);
int ce_buf_reserve(ce_buf *b, size_t extra);

/* A header: name and value with lengths, not necessarily NUL-terminated.
 * Used both for input (borrowed) and for output (see ce_headers). */
typedef struct ce_kv {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} ce_kv;

/* A list of owned headers, produced by encoders. Names and values are
 * NUL-terminated copies owned by the list. */
typedef struct ce_headers {
  ce_kv *items;
  size_t n;
  size_t cap;
} ce_headers;

void ce_headers_init(ce_headers *h);
void ce_headers_cleanup(ce_headers *h);
void ce_headers_reset(ce_headers *h);
int ce_headers_add(ce_headers *h, const char *name, size_t name_len, const char *value,
                   size_t value_len);
/* The value of the first header named `name` (case-insensitive), or NULL. */
const ce_kv *ce_headers_find(const ce_headers *h, const char *name);

/* A list of events, produced by batch decoders. The list owns its events. */
typedef struct ce_batch {
  ce_event **ev;
  size_t n;
  size_t cap;
} ce_batch;

void ce_batch_init(ce_batch *b);
void ce_batch_cleanup(ce_batch *b); /* frees every event */
/* Takes ownership of ev, also on failure (ev is then freed). */
int ce_batch_push(ce_batch *b, ce_event *ev);

/* ---------------------------------------------------------------- the model */

/* A new empty event (no attributes, no data), or NULL when out of memory. */
ce_event *ce_event_new(void);
/* Frees ev and everything it owns. ce_event_free(NULL) does nothing. */
void ce_event_free(ce_event *ev);
/* A deep copy, or NULL when out of memory. */
ce_event *ce_event_clone(const ce_event *ev);

/* Sets attribute `name` to `value` (len bytes, need not be NUL-terminated),
 * replacing any earlier value. The value must already be in the canonical
 * string form of `type`. Known attributes (id, source, specversion, type,
 * datacontenttype, dataschema, subject, time) keep their own type whatever
 * `type` says. Checks the name and the value against the rules of the type;
 * on failure returns -EINVAL, fills *err when err is non-NULL and leaves ev
 * unchanged. Copies the name and the value. */
int ce_event_set(ce_event *ev, const char *name, ce_type type, const char *value, size_t len,
                 ce_err *err);
/* Shorthands: a NUL-terminated string, a 32-bit integer, a boolean. */
int ce_event_set_str(ce_event *ev, const char *name, const char *value, ce_err *err);
int ce_event_set_int(ce_event *ev, const char *name, int32_t value, ce_err *err);
int ce_event_set_bool(ce_event *ev, const char *name, bool value, ce_err *err);
/* Removes attribute `name`. Returns 0, or -ENOENT when it was not set. */
int ce_event_unset(ce_event *ev, const char *name);

/* The attribute `name`, or NULL. The pointer stays valid until the event is
 * next changed (any set or unset) or freed; the strings it points to stay
 * valid until the event is freed. */
const ce_attr *ce_event_get(const ce_event *ev, const char *name);
/* The value of attribute `name` as a string, or NULL when it is not set. */
const char *ce_event_get_str(const ce_event *ev, const char *name);
/* Reads an integer attribute, typed INTEGER or a string holding a canonical
 * 32-bit integer (as binary-mode transports deliver extensions). Returns 0,
 * -ENOENT when absent, -EINVAL when not an integer. */
int ce_event_get_int(const ce_event *ev, const char *name, int32_t *out);

/* Attributes in the order they were first set. i < ce_event_attr_count(). */
size_t ce_event_attr_count(const ce_event *ev);
const ce_attr *ce_event_attr_at(const ce_event *ev, size_t i);

/* Sets the data to a copy of len bytes (len may be 0: present but empty). */
int ce_event_set_data(ce_event *ev, const void *data, size_t len);
/* Removes the data: the event then has none (unlike data that is empty or
 * the JSON value null). */
void ce_event_clear_data(ce_event *ev);
bool ce_event_has_data(const ce_event *ev);
/* The data bytes, or NULL when there is none. *len may be NULL. */
const uint8_t *ce_event_data(const ce_event *ev, size_t *len);

/* Checks every rule of CloudEvents 1.0.2 a receiver can check: the required
 * attributes present and non-empty, specversion "1.0", every attribute's name
 * and value against its type. Returns 0 or -EINVAL with *err filled. */
int ce_event_validate(const ce_event *ev, ce_err *err);

/* Checks one attribute as ce_event_set and ce_event_validate do: its name,
 * and its value against type, or against the type CloudEvents gives the
 * attribute when it defines it (whose value must also not be empty).
 * Returns 0, or -EINVAL with *err filled (err may be NULL). */
int ce_attr_check(const char *name, size_t name_len, ce_type type, const char *value, size_t len,
                  ce_err *err);

/* True when both events have the same attributes (names, types and values,
 * in any order) and the same data. For tests and tools. */
bool ce_event_equal(const ce_event *a, const ce_event *b);

/* ---------------------------------------------------------------- rules */

/* The checks ce_event_validate uses, one per rule, for other components
 * (trigger filters, admin APIs). Each returns true when s (len bytes) is
 * valid. */
bool ce_valid_name(const char *s, size_t len);       /* [a-z0-9]+ */
bool ce_valid_string(const char *s, size_t len);     /* UTF-8, no control chars */
bool ce_valid_utf8(const char *s, size_t len);       /* well-formed UTF-8 */
bool ce_valid_uri(const char *s, size_t len);        /* absolute URI */
bool ce_valid_uri_ref(const char *s, size_t len);    /* URI-reference */
bool ce_valid_timestamp(const char *s, size_t len);  /* RFC 3339 */
bool ce_valid_media_type(const char *s, size_t len); /* RFC 2046 type/subtype[;params] */
bool ce_valid_base64(const char *s, size_t len);     /* RFC 4648 base64 */
/* The W3C Trace Context headers that the distributed tracing extension's
 * traceparent and tracestate carry: a traceparent is version-traceid-
 * parentid-flags in lowercase hex (ids not all zeros, version ff invalid,
 * version 00 exactly 55 characters, a later one fields after a '-'); a
 * tracestate is at most 512 printable ASCII characters (checked no
 * further). */
bool ce_valid_traceparent(const char *s, size_t len);
bool ce_valid_tracestate(const char *s, size_t len);
/* Appends the RFC 4648 base64 (with padding) of in to out. Returns 0 or -ENOMEM. */
int ce_base64_encode(const void *in, size_t len, ce_buf *out);
/* Parses an RFC 3339 timestamp into seconds since the epoch (UTC) and
 * nanoseconds (fraction digits past the ninth are ignored). Returns 0 or
 * -EINVAL. */
int ce_timestamp_parse(const char *s, size_t len, int64_t *sec, int32_t *nsec);
/* Writes an RFC 3339 UTC timestamp with nanoseconds ("2026-11-21T17:46:29.123456789Z")
 * into out (at least 31 bytes). Returns the length. */
size_t ce_timestamp_format(int64_t sec, int32_t nsec, char *out, size_t out_size);

/* True when the media type declares JSON: application/json, text/json, or a
 * "+json" suffix (parameters and case ignored). NULL counts as JSON, as the
 * JSON format says an absent datacontenttype means application/json. */
bool ce_media_type_is_json(const char *s, size_t len);

/* ---------------------------------------------------------------- JSON format */

/* Decodes one event in the JSON event format from buf (len bytes).
 * On success *out is a new validated event owned by the caller. */
int ce_json_decode(const void *buf, size_t len, const ce_limits *lim, ce_event **out, ce_err *err);
/* Decodes a batch (a JSON array of events), all or nothing: on failure
 * err->index names the event at fault and *out is left as it was. Events are
 * appended to *out. Returns the number of events decoded. */
int ce_json_decode_batch(const void *buf, size_t len, const ce_limits *lim, ce_batch *out,
                         ce_err *err);
/* Appends the JSON form of ev to out. Data is written as JSON when the
 * content type declares JSON and the bytes are JSON, as a string when the
 * content type is textual and the bytes are UTF-8, else as data_base64.
 * Returns 0, -EINVAL (invalid event; *err filled when non-NULL) or -ENOMEM. */
int ce_json_encode(const ce_event *ev, ce_buf *out, ce_err *err);
/* Appends a JSON array of the n events. */
int ce_json_encode_batch(ce_event *const *evs, size_t n, ce_buf *out, ce_err *err);

/* ---------------------------------------------------------------- HTTP binding */

typedef enum ce_mode {
  CE_MODE_BINARY = 0,
  CE_MODE_STRUCTURED,
  CE_MODE_BATCH,
} ce_mode;

/* The media types of the JSON format and batch. */
#define CE_MEDIA_JSON  "application/cloudevents+json"
#define CE_MEDIA_BATCH "application/cloudevents-batch+json"

/* Which mode a Content-Type selects (NULL for none): application/cloudevents+json
 * → STRUCTURED, application/cloudevents-batch+json → BATCH, other
 * application/cloudevents… formats → -ENOTSUP, anything else → BINARY. */
int ce_http_mode(const char *content_type, size_t len);

/* Decodes an HTTP message (request or response): headers as received (names
 * in any case) and the body. The mode follows from Content-Type. Events are
 * appended to *out (one, or a batch's). Returns the mode, or a negative errno
 * with *err filled; on failure *out is left as it was. */
int ce_http_decode(const ce_kv *headers, size_t n_headers, const void *body, size_t body_len,
                   const ce_limits *lim, ce_batch *out, ce_err *err);

/* Percent-encodes (HTTP binding §3.1.3.2) s (len bytes) and appends to out. */
int ce_http_header_encode(const char *s, size_t len, ce_buf *out);
/* Decodes a received header value: trims whitespace, unquotes an RFC 7230
 * quoted-string, percent-decodes once (lower-case hex accepted) and rejects
 * invalid UTF-8. Appends to out. Returns 0 or -EINVAL. */
int ce_http_header_decode(const char *s, size_t len, ce_buf *out);

/* Encodes ev in binary or structured mode: headers are appended to *hdrs
 * (ce-* headers and Content-Type) and the body to *body. In binary mode,
 * data that is present but empty becomes an empty body, which a receiver
 * reads as no data (HTTP cannot tell the two apart); and an event whose
 * datacontenttype is a CloudEvents format is refused (-EINVAL), since a
 * receiver would read the body as structured mode. */
int ce_http_encode(const ce_event *ev, ce_mode mode, ce_headers *hdrs, ce_buf *body, ce_err *err);
/* Encodes n events in batched mode. */
int ce_http_encode_batch(ce_event *const *evs, size_t n, ce_headers *hdrs, ce_buf *body,
                         ce_err *err);

/* ---------------------------------------------------------------- Kafka binding */

/* Decodes a Kafka record: its headers, and its value (NULL for a record
 * with no value, a tombstone). The mode follows from the content-type header.
 * The key is not an attribute (the binding maps attributes to the key, never
 * back). On success *out is a new validated event. Returns the mode. */
int ce_kafka_decode(const ce_kv *headers, size_t n_headers, const void *value, size_t value_len,
                    const ce_limits *lim, ce_event **out, ce_err *err);

/* Encodes ev as a Kafka record in binary or structured mode. Headers are
 * appended to *hdrs, the value to *value, and the key (the partitionkey
 * extension, when set) to *key. *has_value is false in binary mode for an
 * event without data (the record then has no value); *has_key is false when
 * the event has no partitionkey. */
int ce_kafka_encode(const ce_event *ev, ce_mode mode, ce_headers *hdrs, ce_buf *key, bool *has_key,
                    ce_buf *value, bool *has_value, ce_err *err);

#endif
