/*
 * ce_int.h — private to core/ce_*.c: the event's layout and the helpers the
 * codecs share. Nothing outside core/ includes this.
 */
#ifndef OUTPOST_CORE_CE_INT_H
#define OUTPOST_CORE_CE_INT_H

#include "core/ce.h"

#include <stdarg.h>

/* Event memory is a chain of chunks freed together with the event, so that
 * decoding an event costs a handful of mallocs, not one per string. */
typedef struct ce_chunk {
  struct ce_chunk *next;
  size_t cap;
  size_t used;
  max_align_t align[]; /* storage follows */
} ce_chunk;

struct ce_event {
  ce_attr *attrs; /* points at inline_attrs until more are needed */
  size_t n_attrs;
  size_t cap_attrs;
  const uint8_t *data;
  size_t data_len;
  bool has_data;
  ce_chunk *chunks;
  ce_attr inline_attrs[12];
};

/* Copies len bytes into the event's memory, NUL-terminated. */
char *ce__strdup(ce_event *ev, const char *s, size_t len);

/* Sets an attribute without checking it (decoders check the whole event
 * once, with ce_event_validate, when they are done). Known attributes get
 * their own type. INTEGER and BOOLEAN values are parsed here. */
int ce__put(ce_event *ev, const char *name, size_t name_len, ce_type type, const char *value,
            size_t len);
/* Same as ce__put, but fails with -EEXIST when the attribute is already set. */
int ce__put_new(ce_event *ev, const char *name, size_t name_len, ce_type type, const char *value,
                size_t len);
/* Points the event's data at bytes the event already owns. */
void ce__set_data_owned(ce_event *ev, const uint8_t *data, size_t len);
/* Allocates len bytes in the event's memory. */
void *ce__alloc(ce_event *ev, size_t len);

/* The type a known attribute always has, or -1 for extensions. */
int ce__known_type(const char *name, size_t len);

/* Fills err (when non-NULL) and returns code. */
int ce__fail(ce_err *err, int code, const char *attr, size_t attr_len, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Decodes one UTF-8 sequence at p (before end): returns its length and sets
 * *cp, or returns 0 when the bytes are not well-formed UTF-8 (overlong forms,
 * surrogates and values past U+10FFFF included). */
size_t ce__utf8_next(const uint8_t *p, const uint8_t *end, uint32_t *cp);

/* c is in the ASCII set given as a bit per code (set[0] codes 0-63, set[1]
 * codes 64-127): a character class as a table, not a chain of tests. */
static inline bool ce__ascii_in(const uint64_t set[2], char c) {
  unsigned char u = (unsigned char)c;
  return u < 128 && (set[u >> 6] >> (u & 63) & 1);
}

/* Case-insensitive comparison of n bytes of a with the NUL-terminated b. */
bool ce__ieq(const char *a, size_t n, const char *b);
/* ce__ieq with a string literal: lengths first, so that most names are told
 * apart without a call. */
#define CE__IEQ_LIT(a, n, lit) ((n) == sizeof(lit) - 1 && ce__ieq(a, n, lit))
bool ce__iprefix(const char *a, size_t n, const char *prefix);

/* Base64 (RFC 4648, standard alphabet). decode returns -EINVAL on bad input. */
int ce__b64_encode(const uint8_t *in, size_t len, ce_buf *out);
int ce__b64_decode(const char *in, size_t len, ce_buf *out);

/* JSON scanning shared by the JSON format and the encoders' data checks. */
/* True when s (len bytes) is exactly one JSON value, optionally surrounded by
 * whitespace; *start and *vlen give the value without that whitespace. */
bool ce__json_is_value(const char *s, size_t len, size_t max_depth, size_t *start, size_t *vlen);
/* Appends s as a JSON string literal (quotes included). */
int ce__json_put_string(ce_buf *out, const char *s, size_t len);

/* True when the media type is textual: text/..., XML, or one with a charset. */
bool ce__media_type_is_text(const char *s, size_t len);

#endif
