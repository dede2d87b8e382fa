/*
 * segment.c — the embedded log's unit of storage: consecutive records of one
 * partition, kept as one row (a few inserts per group commit instead of one
 * per record). Its bytes are each record's key, headers and value back to
 * back; its index is JSON text, [[ts,pos,key_len,headers_len,value_len],...]
 * with -1 for no key or no value, so that SQLite's json_each can read it too
 * (the `records` view) as well as broker__seg_parse.
 */
#include "broker/broker_int.h"

#include <errno.h>
#include <string.h>

void broker__seg_init(broker__seg *s) {
  s->first = 0;
  s->ts = INT64_MIN;
  s->n = 0;
  ce_buf_init(&s->idx);
  ce_buf_init(&s->data);
}

void broker__seg_cleanup(broker__seg *s) {
  ce_buf_cleanup(&s->idx);
  ce_buf_cleanup(&s->data);
  broker__seg_init(s);
}

void broker__seg_reset(broker__seg *s, int64_t first) {
  s->first = first;
  s->ts = INT64_MIN;
  s->n = 0;
  ce_buf_reset(&s->idx);
  ce_buf_reset(&s->data);
}

/* Writes v in decimal at p (room for 20 characters); returns the end. */
static char *put_int(char *p, int64_t v) {
  char tmp[20];
  size_t n = 0;
  /* Negate as unsigned: INT64_MIN has no positive counterpart. */
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) *p++ = '-';
  while (n) *p++ = tmp[--n];
  return p;
}

int broker__seg_add(broker__seg *s, int64_t ts, const void *key, size_t key_len,
                    const void *headers, size_t headers_len, const void *value, size_t value_len) {
  /* "[[" or ",[", five numbers of at most 20 characters, four commas, "]". */
  enum { ENTRY_MAX = 2 + 5 * 20 + 4 + 1 };
  if (ce_buf_reserve(&s->idx, ENTRY_MAX) ||
      ce_buf_reserve(&s->data, key_len + headers_len + value_len))
    return -ENOMEM;
  int64_t v[5] = {ts, (int64_t)s->data.len, key ? (int64_t)key_len : -1, (int64_t)headers_len,
                  value ? (int64_t)value_len : -1};
  char *p = s->idx.data + s->idx.len;
  *p++ = s->n ? ',' : '[';
  *p++ = '[';
  for (int i = 0; i < 5; i++) {
    if (i) *p++ = ',';
    p = put_int(p, v[i]);
  }
  *p++ = ']';
  s->idx.len = (size_t)(p - s->idx.data);
  if (key) ce_buf_append(&s->data, key, key_len);
  ce_buf_append(&s->data, headers, headers_len);
  if (value) ce_buf_append(&s->data, value, value_len);
  if (ts > s->ts) s->ts = ts;
  s->n++;
  return 0;
}

const char *broker__seg_index(broker__seg *s, size_t *len) {
  /* Closed on a copy of the length: more records may follow a flush. */
  if (s->n == 0 || ce_buf_reserve(&s->idx, 1)) return NULL;
  s->idx.data[s->idx.len] = ']';
  *len = s->idx.len + 1;
  return s->idx.data;
}

/* Reads one integer at *p (before end), skipping JSON punctuation first. */
static int get_int(const char **p, const char *end, int64_t *v) {
  const char *q = *p;
  while (q < end && (*q == '[' || *q == ']' || *q == ',' || *q == ' ')) q++;
  bool neg = q < end && *q == '-';
  if (neg) q++;
  if (q == end || *q < '0' || *q > '9') return -EINVAL;
  uint64_t u = 0;
  for (; q < end && *q >= '0' && *q <= '9'; q++) {
    if (u > (UINT64_MAX - 9) / 10) return -EINVAL;
    u = u * 10 + (uint64_t)(*q - '0');
  }
  if (u > (uint64_t)INT64_MAX) return -EINVAL;
  *v = neg ? -(int64_t)u : (int64_t)u;
  *p = q;
  return 0;
}

/* Checks one entry against the segment's bytes. */
static bool entry_fits(const broker__seg_entry *e, size_t data_len) {
  if (e->key_len < -1 || e->headers_len < 0 || e->value_len < -1 || e->pos < 0) return false;
  uint64_t need = (uint64_t)e->pos + (uint64_t)(e->key_len > 0 ? e->key_len : 0) +
                  (uint64_t)e->headers_len + (uint64_t)(e->value_len > 0 ? e->value_len : 0);
  return need <= data_len;
}

int broker__seg_parse(const char *idx, size_t idx_len, size_t data_len, broker__seg_entry *out,
                      size_t n) {
  const char *p = idx, *end = idx + idx_len;
  for (size_t i = 0; i < n; i++) {
    broker__seg_entry *e = &out[i];
    int64_t *f[5] = {&e->ts, &e->pos, &e->key_len, &e->headers_len, &e->value_len};
    for (int k = 0; k < 5; k++)
      if (get_int(&p, end, f[k])) return -EINVAL;
    if (!entry_fits(e, data_len)) return -EINVAL;
  }
  /* Exactly n entries: only closing brackets may remain. */
  while (p < end && (*p == ']' || *p == ' ')) p++;
  return p == end ? 0 : -EINVAL;
}
