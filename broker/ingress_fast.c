/*
 * ingress_fast.c — the ingress's common case without a ce_event: one event
 * in HTTP binary mode written straight from the request's headers and body
 * into the log's record, the same bytes the checked path (ce_http_decode,
 * stamp, broker__batch_encode) makes of it. Values go through core's own
 * percent-decoder and rules; anything else (another mode, a duplicate, an
 * unusual attribute, any broken rule) is declined, and the checked path then
 * answers the request as it always did, errors included.
 */
#include "broker/broker_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Attribute headers taken at most; past this the checked path decodes. */
enum { FAST_MAX_ATTRS = 32 };

/* What an attribute's name makes of it here. Its rules are core's
 * (ce_attr_check), which knows the types of the attributes CloudEvents
 * defines; these are only the attributes this file treats apart. */
typedef enum role {
  A_OTHER,
  A_SPECVERSION,
  A_ID,
  A_SOURCE,
  A_TYPE,
  A_DCT,     /* ce-datacontenttype: Content-Type would overwrite it unchecked */
  A_TTL,     /* knativebrokerttl, which stamp reads */
  A_ARRIVAL, /* knativearrivaltime, which stamp overwrites */
  A_KEY,     /* partitionkey, the record's key too */
} role;

static const struct {
  const char *name;
  size_t len;
  role r;
} names[] = {
    {"specversion", 11, A_SPECVERSION},
    {"id", 2, A_ID},
    {"source", 6, A_SOURCE},
    {"type", 4, A_TYPE},
    {"datacontenttype", 15, A_DCT},
    {"knativebrokerttl", 16, A_TTL},
    {"knativearrivaltime", 18, A_ARRIVAL},
    {"partitionkey", 12, A_KEY},
};

/* The four attributes ce_event_validate requires, as bits of fast.seen. */
#define SEEN_ALL (1u << A_SPECVERSION | 1u << A_ID | 1u << A_SOURCE | 1u << A_TYPE)

/* A record header being written: offsets into fast.b. */
typedef struct field {
  size_t name, name_len, value, value_len;
} field;

typedef struct fast {
  ce_buf b; /* the record: a broker_record, its ce_kv array, then the bytes */
  field f[FAST_MAX_ATTRS + 3];
  size_t n;
  unsigned seen;
  int ttl, arrival, key; /* the field of knativebrokerttl, knativearrivaltime, partitionkey; -1 */
} fast;

/* An attribute's header, as ce_http_decode tells one: "ce-" in any case
 * (c | 0x20 is 'c' for 'c' and 'C' only, and so for 'e'). */
static bool is_attr(const ce_kv *h) {
  return h->name_len >= 3 && (h->name[0] | 0x20) == 'c' && (h->name[1] | 0x20) == 'e' &&
         h->name[2] == '-';
}

/* The limits ce_http_decode checks (any request past one is declined: the
 * checked path words the refusal), the Content-Type header, the attribute
 * headers (their indexes in attr[0..*attrs)) and the bytes their fields
 * take at most (decoding never lengthens a value). False to decline. */
static bool scan(const ce_kv *h, size_t n, size_t body_len, const ce_limits *lim, const ce_kv **ct,
                 size_t attr[FAST_MAX_ATTRS], size_t *attrs, size_t *bytes) {
  if ((lim->max_headers && n > lim->max_headers) || (lim->max_body && body_len > lim->max_body))
    return false;
  *ct = NULL;
  *attrs = *bytes = 0;
  for (size_t i = 0; i < n; i++) {
    if (lim->max_header_size && h[i].name_len + h[i].value_len > lim->max_header_size) return false;
    if (is_attr(&h[i])) {
      if (*attrs == FAST_MAX_ATTRS) return false;
      attr[(*attrs)++] = i;
      *bytes += h[i].name_len + 1 + h[i].value_len + 1; /* "ce_" name NUL value NUL */
    } else if (broker__header_is(&h[i], "content-type")) {
      if (*ct) return false;
      *ct = &h[i];
      *bytes += sizeof "content-type" + h[i].value_len + 1;
    } else if (broker__header_is(&h[i], "traceparent")) {
      return false; /* the checked path gives the events the trace context */
    }
  }
  return true;
}

/* Room for n more bytes (and ce_buf's NUL) at the end of x->b. The first
 * reservation is enough; this only guards it. */
static bool room(fast *x, size_t n) {
  return x->b.cap - x->b.len > n || ce_buf_reserve(&x->b, n) == 0;
}

/* Appends n bytes and a NUL; returns their offset, or 0 (never one: the
 * record comes first) when out of memory. */
static size_t put(fast *x, const void *p, size_t n) {
  if (!room(x, n + 1)) return 0;
  size_t at = x->b.len;
  if (n) memcpy(x->b.data + at, p, n);
  x->b.data[at + n] = '\0';
  x->b.len += n + 1;
  return at;
}

/* A TTL as stamp keeps it: what ce_event_get_int reads (a canonical 32-bit
 * integer) and above 0. Only [1-9][0-9]* within range passes: "-0", "+1",
 * "01" and the like are the checked path's to word. */
static bool ttl_ok(const char *s, size_t len) {
  if (len == 0 || len > 10 || s[0] < '1' || s[0] > '9') return false;
  int64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  return v <= INT32_MAX;
}

static role role_of(const char *nm, size_t nlen) {
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
    if (names[k].len == nlen && memcmp(names[k].name, nm, nlen) == 0) return names[k].r;
  return A_OTHER;
}

/* The rules ce_event_validate applies to attribute nm (decoded value v:
 * every attribute received in binary mode is a string unless CloudEvents
 * gives it a type), and stamp's to a TTL. Notes the fields the record
 * treats apart. */
static bool check(fast *x, const char *nm, size_t nlen, const char *v, size_t vlen) {
  role r = role_of(nm, nlen);
  if (r == A_DCT || ce_attr_check(nm, nlen, CE_TYPE_STRING, v, vlen, NULL)) return false;
  x->seen |= 1u << r;
  switch (r) {
  case A_SPECVERSION:
    return vlen == 3 && memcmp(v, "1.0", 3) == 0;
  case A_TTL:
    x->ttl = (int)x->n;
    return ttl_ok(v, vlen);
  case A_ARRIVAL:
    x->arrival = (int)x->n;
    return true;
  case A_KEY:
    x->key = (int)x->n;
    return true;
  default:
    return true;
  }
}

/* Takes one attribute header as ce__decode_binary does ("ce_" and the name
 * lower-cased; the value through core's percent-decoder), then checks it. */
static bool take(fast *x, const ce_kv *h) {
  size_t nlen = h->name_len - 3;
  if (!room(x, h->name_len + 1)) return false;
  size_t name = x->b.len;
  char *nm = x->b.data + name;
  memcpy(nm, "ce_", 3);
  for (size_t k = 0; k < nlen; k++) nm[3 + k] = broker__lower(h->name[3 + k]);
  nm[h->name_len] = '\0';
  x->b.len += h->name_len + 1;
  for (size_t i = 0; i < x->n; i++)
    if (x->f[i].name_len == h->name_len && memcmp(x->b.data + x->f[i].name, nm, h->name_len) == 0)
      return false; /* given twice */
  size_t value = x->b.len;
  if (ce_http_header_decode(h->value, h->value_len, &x->b)) return false;
  size_t vlen = x->b.len - value;
  if (!room(x, 1)) return false;
  x->b.len++; /* the decoder's NUL ends the value */
  const char *base = x->b.data;
  if (!check(x, base + name + 3, nlen, base + value, vlen)) return false;
  x->f[x->n++] = (field){name, h->name_len, value, vlen};
  return true;
}

/* Appends a header: name NUL value NUL. */
static bool put_field(fast *x, const char *name, size_t nlen, const char *v, size_t vlen) {
  size_t at = put(x, name, nlen), val = at ? put(x, v, vlen) : 0;
  if (!val) return false;
  x->f[x->n++] = (field){at, nlen, val, vlen};
  return true;
}

/* v > 0 in decimal, as ce_event_set_int writes it; returns the length. */
static size_t fmt_ttl(int32_t v, char out[12]) {
  char tmp[12];
  size_t n = 0;
  do tmp[n++] = (char)('0' + v % 10);
  while ((v /= 10) > 0);
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  return n;
}

/* What follows the attributes, in the checked path's order: datacontenttype
 * (from Content-Type, trimmed; its rules), then stamp's knativebrokerttl
 * (when the event had none) and knativearrivaltime (added, or replacing the
 * event's value where it was). */
static bool stamp_fields(fast *x, const ce_kv *ct, int32_t default_ttl, const char *now,
                         size_t now_len) {
  if (ct) {
    const char *v = ct->value;
    size_t vlen = ct->value_len;
    broker__trim(&v, &vlen);
    if (ce_attr_check("datacontenttype", 15, CE_TYPE_STRING, v, vlen, NULL) ||
        !put_field(x, "content-type", 12, v, vlen))
      return false;
  }
  if (x->ttl < 0) {
    char t[12];
    if (!put_field(x, "ce_knativebrokerttl", 19, t, fmt_ttl(default_ttl, t))) return false;
  }
  if (x->arrival < 0) return put_field(x, "ce_knativearrivaltime", 21, now, now_len);
  size_t at = put(x, now, now_len);
  x->f[x->arrival].value = at;
  x->f[x->arrival].value_len = now_len;
  return at != 0;
}

/* Points the record and its headers at the bytes, now that they stay put,
 * and hands the buffer's memory to the batch: ce_buf's is malloc's (freed by
 * ce_buf_cleanup with free), as broker_batch_cleanup frees it. */
static void finish(fast *x, size_t value, size_t value_len, broker_batch *out) {
  void *mem = x->b.data;
  const char *base = mem;
  broker_record *rec = mem;
  ce_kv *kv = (ce_kv *)(rec + 1);
  for (size_t i = 0; i < x->n; i++)
    kv[i] = (ce_kv){base + x->f[i].name, x->f[i].name_len, base + x->f[i].value, x->f[i].value_len};
  *rec = (broker_record){.partition = -1, .headers = kv, .n_headers = x->n};
  if (x->key >= 0) {
    rec->key = base + x->f[x->key].value;
    rec->key_len = x->f[x->key].value_len;
  }
  /* No body is no value, as ce__decode_binary leaves such an event without data. */
  if (value_len) {
    rec->value = base + value;
    rec->value_len = value_len;
  }
  *out = (broker_batch){.recs = rec, .n = 1, .mem = mem};
}

int broker__ingress_fast(const ce_kv *hdrs, size_t n, const void *body, size_t body_len,
                         const ce_limits *lim, int32_t default_ttl, const char *now,
                         broker_batch *out) {
  const ce_kv *ct;
  size_t attr[FAST_MAX_ATTRS], attrs, bytes, now_len = strlen(now);
  if (!scan(hdrs, n, body_len, lim, &ct, attr, &attrs, &bytes)) return -EAGAIN;
  /* Structured and batched modes, and refused formats, are the checked
   * path's; a binary-mode Content-Type also passes broker__batch_encode's
   * test, which asks ce_http_mode the same of the trimmed value. */
  if (ct && ce_http_mode(ct->value, ct->value_len) != CE_MODE_BINARY) return -EAGAIN;
  /* What stamp sets must pass what ce_event_set checks. */
  if (default_ttl <= 0 || !ce_valid_timestamp(now, now_len)) return -EAGAIN;

  fast x; /* not zeroed whole: f is written before it is read */
  x.n = 0;
  x.seen = 0;
  x.ttl = x.arrival = x.key = -1;
  ce_buf_init(&x.b);
  /* One allocation, as broker__batch_encode makes: the record and its
   * headers first, their bytes after. */
  size_t head = sizeof(broker_record) + (attrs + 3) * sizeof(ce_kv);
  bytes += head + sizeof "ce_knativebrokerttl" + 12 + sizeof "ce_knativearrivaltime" + now_len + 1 +
           body_len + 1;
  if (ce_buf_reserve(&x.b, bytes)) return -EAGAIN;
  x.b.len = head;
  bool ok = true;
  for (size_t i = 0; ok && i < attrs; i++) ok = take(&x, &hdrs[attr[i]]);
  ok = ok && (x.seen & SEEN_ALL) == SEEN_ALL && stamp_fields(&x, ct, default_ttl, now, now_len);
  size_t value = body_len && ok ? put(&x, body, body_len) : 0;
  if (!ok || (body_len && !value)) {
    ce_buf_cleanup(&x.b);
    return -EAGAIN;
  }
  finish(&x, value, body_len, out);
  return 0;
}
