/*
 * ce_http.c — the HTTP protocol binding (CloudEvents HTTP binding 1.0.2):
 * content-mode selection, binary mode with percent-encoded ce- headers
 * (§3.1.3.2), structured and batched modes. The binary-mode decoder is
 * shared with the Kafka binding, which differs only in header spelling.
 */
#include "core/ce.h"
#include "core/ce_binding.h"
#include "core/ce_int.h"

#include <errno.h>
#include <string.h>

void ce_limits_init(ce_limits *lim) {
  lim->max_body = 1024 * 1024;
  lim->max_headers = 100;
  lim->max_header_size = 8 * 1024;
  lim->max_batch = 1000;
  lim->max_depth = 64;
}

static void trim(const char **s, size_t *len) {
  while (*len && ((*s)[0] == ' ' || (*s)[0] == '\t')) (*s)++, (*len)--;
  while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t')) (*len)--;
}

/* The value of parameter `name` in a media type, or NULL. */
static const char *param(const char *s, size_t len, const char *name, size_t *vlen) {
  size_t nlen = strlen(name);
  for (size_t i = 0; i < len; i++) {
    if (s[i] != ';') continue;
    size_t k = i + 1;
    while (k < len && (s[k] == ' ' || s[k] == '\t')) k++;
    if (ce__iprefix(s + k, len - k, name) && k + nlen < len && s[k + nlen] == '=') {
      const char *v = s + k + nlen + 1;
      size_t n = 0;
      while (v + n < s + len && v[n] != ';') n++;
      trim(&v, &n);
      if (n >= 2 && v[0] == '"' && v[n - 1] == '"') v++, n -= 2;
      *vlen = n;
      return v;
    }
  }
  return NULL;
}

int ce_http_mode(const char *ct, size_t len) {
  if (!ct) return CE_MODE_BINARY;
  trim(&ct, &len);
  if (!ce__iprefix(ct, len, "application/cloudevents")) return CE_MODE_BINARY;
  size_t e = 0;
  while (e < len && ct[e] != ';' && ct[e] != ' ' && ct[e] != '\t') e++;
  int mode;
  if (ce__ieq(ct, e, CE_MEDIA_JSON))
    mode = CE_MODE_STRUCTURED;
  else if (ce__ieq(ct, e, CE_MEDIA_BATCH))
    mode = CE_MODE_BATCH;
  else
    return -ENOTSUP;
  size_t cl;
  const char *cs = param(ct + e, len - e, "charset", &cl);
  if (cs && !ce__ieq(cs, cl, "utf-8") && !ce__ieq(cs, cl, "utf8")) return -ENOTSUP;
  return mode;
}

int ce_http_header_encode(const char *s, size_t len, ce_buf *out) {
  static const char hex[] = "0123456789ABCDEF";
  int rc = ce_buf_reserve(out, len);
  if (rc) return rc;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x21 && c <= 0x7E && c != '"' && c != '%') {
      rc = ce_buf_append(out, &s[i], 1);
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      rc = ce_buf_append(out, e, 3);
    }
    if (rc) return rc;
  }
  return 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* One round of percent-decoding of s, appended to out. */
static int pct_decode(const char *s, size_t len, ce_buf *out) {
  int rc = ce_buf_reserve(out, len);
  if (rc) return rc;
  char *o = out->data + out->len;
  for (size_t i = 0; i < len; i++) {
    if (s[i] != '%') { /* the run up to the next '%' (or the end) at once */
      const char *pct = memchr(s + i, '%', len - i);
      size_t run = pct ? (size_t)(pct - (s + i)) : len - i;
      memcpy(o, s + i, run);
      o += run;
      i += run - 1;
      continue;
    }
    int hi = i + 2 < len ? hexval(s[i + 1]) : -1, lo = i + 2 < len ? hexval(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) return -EINVAL;
    *o++ = (char)(hi << 4 | lo);
    i += 2;
  }
  out->len = (size_t)(o - out->data);
  out->data[out->len] = '\0';
  return 0;
}

int ce_http_header_decode(const char *s, size_t len, ce_buf *out) {
  size_t mark = out->len;
  trim(&s, &len);
  int rc;
  if (len && s[0] == '"') {
    /* An RFC 7230 quoted-string: undo backslash escapes first (older
     * senders quoted instead of percent-encoding), then percent-decode. */
    ce_buf q;
    ce_buf_init(&q);
    size_t i = 1;
    rc = ce_buf_reserve(&q, len);
    for (; rc == 0 && i < len && s[i] != '"'; i++) {
      if (s[i] == '\\' && ++i == len) break;
      rc = ce_buf_append(&q, &s[i], 1);
    }
    if (rc == 0 && i != len - 1) rc = -EINVAL; /* unterminated, or text after the quote */
    if (rc == 0) rc = pct_decode(q.data ? q.data : "", q.len, out);
    ce_buf_cleanup(&q);
  } else {
    rc = pct_decode(s, len, out);
  }
  if (rc == 0 && !ce_valid_utf8(out->data + mark, out->len - mark)) rc = -EINVAL;
  if (rc) {
    out->len = mark;
    if (out->cap) out->data[mark] = '\0';
  }
  return rc;
}

int ce__decode_binary(const ce__binary_spec *spec, const ce_kv *headers, size_t n_headers,
                      const ce_kv *ct, const void *body, size_t body_len, bool has_body,
                      ce_event **out, ce_err *err) {
  ce_event *ev = ce_event_new();
  ce_buf name, val;
  ce_buf_init(&name);
  ce_buf_init(&val);
  size_t plen = strlen(spec->prefix);
  int rc = ev ? 0 : -ENOMEM;
  for (size_t i = 0; rc == 0 && i < n_headers; i++) {
    const ce_kv *h = &headers[i];
    bool match = spec->prefix_any_case
                     ? ce__iprefix(h->name, h->name_len, spec->prefix)
                     : (h->name_len >= plen && !memcmp(h->name, spec->prefix, plen));
    if (!match) continue;
    ce_buf_reset(&name);
    ce_buf_reset(&val);
    if ((rc = ce_buf_append(&name, h->name + plen, h->name_len - plen))) break;
    if (spec->prefix_any_case)
      for (size_t k = 0; k < name.len; k++)
        if (name.data[k] >= 'A' && name.data[k] <= 'Z') name.data[k] = (char)(name.data[k] + 32);
    if (!ce_valid_name(name.data, name.len)) {
      rc = ce__fail(err, -EINVAL, h->name, h->name_len,
                    "header does not name an attribute: lower-case letters and digits must "
                    "follow %s",
                    spec->prefix);
      break;
    }
    if (spec->percent_encoded) {
      if (ce_http_header_decode(h->value, h->value_len, &val)) {
        rc = ce__fail(err, -EINVAL, name.data, name.len,
                      "header value is not percent-encoded UTF-8 (HTTP binding 3.1.3.2)");
        break;
      }
    } else if ((rc = ce_buf_append(&val, h->value, h->value_len))) {
      break;
    }
    rc = ce__put_new(ev, name.data, name.len, CE_TYPE_STRING, val.data ? val.data : "", val.len);
    if (rc == -EEXIST) rc = ce__fail(err, -EINVAL, name.data, name.len, "attribute given twice");
  }
  if (rc == 0 && ct) {
    const char *v = ct->value;
    size_t n = ct->value_len;
    trim(&v, &n);
    rc = ce__put(ev, "datacontenttype", 15, CE_TYPE_STRING, v, n);
  }
  if (rc == 0 && has_body) rc = ce_event_set_data(ev, body, body_len);
  if (rc == 0 && !ce_event_get(ev, "specversion"))
    rc = ce__fail(err, -EINVAL, "specversion", 11,
                  "required attribute is missing: binary mode needs a %sspecversion header, "
                  "structured mode a Content-Type of " CE_MEDIA_JSON,
                  spec->prefix);
  if (rc == 0) rc = ce_event_validate(ev, err);
  ce_buf_cleanup(&name);
  ce_buf_cleanup(&val);
  if (rc) {
    ce_event_free(ev);
    return rc == -ENOMEM ? ce__fail(err, rc, NULL, 0, "out of memory") : rc;
  }
  *out = ev;
  return 0;
}

int ce__check_limits(const ce_kv *headers, size_t n_headers, size_t body_len, const ce_limits *lim,
                     const ce_kv **ct, ce_err *err) {
  if (lim->max_headers && n_headers > lim->max_headers)
    return ce__fail(err, -E2BIG, NULL, 0, "%zu headers exceed the limit of %zu", n_headers,
                    lim->max_headers);
  *ct = NULL;
  for (size_t i = 0; i < n_headers; i++) {
    const ce_kv *h = &headers[i];
    if (lim->max_header_size && h->name_len + h->value_len > lim->max_header_size)
      return ce__fail(err, -E2BIG, h->name, h->name_len,
                      "header of %zu bytes exceeds the limit of %zu bytes",
                      h->name_len + h->value_len, lim->max_header_size);
    if (ce__ieq(h->name, h->name_len, "content-type")) {
      if (*ct) return ce__fail(err, -EINVAL, h->name, h->name_len, "header appears twice");
      *ct = h;
    }
  }
  if (lim->max_body && body_len > lim->max_body)
    return ce__fail(err, -EMSGSIZE, NULL, 0, "body of %zu bytes exceeds the limit of %zu bytes",
                    body_len, lim->max_body);
  return 0;
}

int ce__unsupported(const ce_kv *ct, ce_err *err) {
  return ce__fail(err, -ENOTSUP, "content-type", 12,
                  "unsupported event format or charset \"%.*s\": use binary mode, " CE_MEDIA_JSON
                  " or " CE_MEDIA_BATCH " in UTF-8",
                  (int)(ct->value_len > 100 ? 100 : ct->value_len), ct->value);
}

static const ce__binary_spec http_spec = {"ce-", true, true};

int ce_http_decode(const ce_kv *headers, size_t n_headers, const void *body, size_t body_len,
                   const ce_limits *lim, ce_batch *out, ce_err *err) {
  const ce_kv *ct;
  int rc = ce__check_limits(headers, n_headers, body_len, lim, &ct, err);
  if (rc) return rc;
  int mode = ct ? ce_http_mode(ct->value, ct->value_len) : CE_MODE_BINARY;
  if (mode < 0) return ce__unsupported(ct, err);
  ce_event *ev = NULL;
  if (mode == CE_MODE_BATCH) {
    rc = ce_json_decode_batch(body ? body : "", body_len, lim, out, err);
    return rc < 0 ? rc : mode;
  }
  if (mode == CE_MODE_STRUCTURED)
    rc = ce_json_decode(body ? body : "", body_len, lim, &ev, err);
  else
    rc = ce__decode_binary(&http_spec, headers, n_headers, ct, body, body_len, body_len > 0, &ev,
                           err);
  if (rc) return rc;
  if ((rc = ce_batch_push(out, ev))) return ce__fail(err, rc, NULL, 0, "out of memory");
  return mode;
}

int ce__encode_binary(const ce_event *ev, const char *prefix, bool percent, ce_headers *hdrs,
                      ce_err *err) {
  int rc = ce_event_validate(ev, err);
  if (rc) return rc;
  /* A receiver takes a CloudEvents media type in the content-type header to
   * mean structured mode: such data can only travel in structured mode. */
  const char *dct = ce_event_get_str(ev, "datacontenttype");
  if (dct && ce_http_mode(dct, strlen(dct)) != CE_MODE_BINARY)
    return ce__fail(err, -EINVAL, "datacontenttype", 15,
                    "a CloudEvents format as datacontenttype cannot travel in binary mode: use "
                    "structured mode");
  ce_buf name, val;
  ce_buf_init(&name);
  ce_buf_init(&val);
  size_t n = ce_event_attr_count(ev);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    const ce_attr *a = ce_event_attr_at(ev, i);
    if (strcmp(a->name, "datacontenttype") == 0) {
      rc = ce_headers_add(hdrs, percent ? "Content-Type" : "content-type", 12, a->value,
                          a->value_len);
      continue;
    }
    ce_buf_reset(&name);
    ce_buf_reset(&val);
    if ((rc = ce_buf_append_str(&name, prefix)) || (rc = ce_buf_append_str(&name, a->name))) break;
    rc = percent ? ce_http_header_encode(a->value, a->value_len, &val)
                 : ce_buf_append(&val, a->value, a->value_len);
    if (rc == 0) rc = ce_headers_add(hdrs, name.data, name.len, val.data ? val.data : "", val.len);
  }
  ce_buf_cleanup(&name);
  ce_buf_cleanup(&val);
  return rc == -ENOMEM ? ce__fail(err, rc, NULL, 0, "out of memory") : rc;
}

static const char structured_ct[] = CE_MEDIA_JSON "; charset=utf-8";
static const char batch_ct[] = CE_MEDIA_BATCH "; charset=utf-8";

int ce_http_encode(const ce_event *ev, ce_mode mode, ce_headers *hdrs, ce_buf *body, ce_err *err) {
  int rc;
  if (mode == CE_MODE_STRUCTURED) {
    if ((rc = ce_json_encode(ev, body, err))) return rc;
    rc = ce_headers_add(hdrs, "Content-Type", 12, structured_ct, sizeof structured_ct - 1);
  } else if (mode == CE_MODE_BINARY) {
    if ((rc = ce__encode_binary(ev, "ce-", true, hdrs, err))) return rc;
    size_t len;
    const uint8_t *d = ce_event_data(ev, &len);
    rc = d ? ce_buf_append(body, d, len) : 0;
  } else {
    return ce__fail(err, -EINVAL, NULL, 0, "use ce_http_encode_batch for batched mode");
  }
  return rc == -ENOMEM ? ce__fail(err, rc, NULL, 0, "out of memory") : rc;
}

int ce_http_encode_batch(ce_event *const *evs, size_t n, ce_headers *hdrs, ce_buf *body,
                         ce_err *err) {
  int rc = ce_json_encode_batch(evs, n, body, err);
  if (rc) return rc;
  rc = ce_headers_add(hdrs, "Content-Type", 12, batch_ct, sizeof batch_ct - 1);
  return rc == -ENOMEM ? ce__fail(err, rc, NULL, 0, "out of memory") : rc;
}
