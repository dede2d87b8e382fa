/*
 * ce_buf.c — the small containers the codecs hand out: a growable byte
 * buffer, a list of owned headers, a list of owned events.
 */
#include "core/ce.h"
#include "core/ce_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void ce_buf_init(ce_buf *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void ce_buf_cleanup(ce_buf *b) {
  free(b->data);
  ce_buf_init(b);
}

void ce_buf_reset(ce_buf *b) {
  b->len = 0;
  if (b->cap) b->data[0] = '\0';
}

int ce_buf_reserve(ce_buf *b, size_t extra) {
  if (extra > SIZE_MAX - b->len - 1) return -ENOMEM;
  size_t need = b->len + extra + 1; /* +1 keeps room for the NUL */
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  char *p = realloc(b->data, cap);
  if (!p) return -ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int ce_buf_append(ce_buf *b, const void *p, size_t n) {
  int rc = ce_buf_reserve(b, n);
  if (rc) return rc;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int ce_buf_append_str(ce_buf *b, const char *s) {
  return ce_buf_append(b, s, strlen(s));
}

void ce_headers_init(ce_headers *h) {
  h->items = NULL;
  h->n = 0;
  h->cap = 0;
}

void ce_headers_reset(ce_headers *h) {
  for (size_t i = 0; i < h->n; i++) free((char *)h->items[i].name);
  h->n = 0;
}

void ce_headers_cleanup(ce_headers *h) {
  ce_headers_reset(h);
  free(h->items);
  ce_headers_init(h);
}

int ce_headers_add(ce_headers *h, const char *name, size_t name_len, const char *value,
                   size_t value_len) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 16;
    ce_kv *items = realloc(h->items, cap * sizeof *items);
    if (!items) return -ENOMEM;
    h->items = items;
    h->cap = cap;
  }
  /* Name and value share one allocation, freed through the name. */
  char *mem = malloc(name_len + value_len + 2);
  if (!mem) return -ENOMEM;
  memcpy(mem, name, name_len);
  mem[name_len] = '\0';
  memcpy(mem + name_len + 1, value, value_len);
  mem[name_len + 1 + value_len] = '\0';
  h->items[h->n++] = (ce_kv){mem, name_len, mem + name_len + 1, value_len};
  return 0;
}

const ce_kv *ce_headers_find(const ce_headers *h, const char *name) {
  for (size_t i = 0; i < h->n; i++)
    if (ce__ieq(h->items[i].name, h->items[i].name_len, name)) return &h->items[i];
  return NULL;
}

void ce_batch_init(ce_batch *b) {
  b->ev = NULL;
  b->n = 0;
  b->cap = 0;
}

void ce_batch_cleanup(ce_batch *b) {
  for (size_t i = 0; i < b->n; i++) ce_event_free(b->ev[i]);
  free(b->ev);
  ce_batch_init(b);
}

int ce_batch_push(ce_batch *b, ce_event *ev) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 8;
    ce_event **p = realloc(b->ev, cap * sizeof *p);
    if (!p) {
      ce_event_free(ev);
      return -ENOMEM;
    }
    b->ev = p;
    b->cap = cap;
  }
  b->ev[b->n++] = ev;
  return 0;
}
