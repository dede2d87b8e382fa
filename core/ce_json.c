/*
 * ce_json.c — the JSON event format (CloudEvents JSON format 1.0.2).
 *
 * Decoding uses a strict RFC 8259 scanner of our own rather than a tree
 * parser, for two reasons: `data` must stay JSON exactly as the sender wrote
 * it (a tree parser turns numbers into doubles and would change 64-bit ids),
 * and every string must be checked for well-formed UTF-8, which common JSON
 * libraries let through. The scanner walks the input once; member values
 * other than `data` are decoded in place, `data` is kept as a byte span.
 */
#include "core/ce.h"
#include "core/ce_int.h"

#include <errno.h>
#include <string.h>

enum { HARD_DEPTH = 512 }; /* recursion bound when the limits set none */

typedef struct jp {
  const char *start, *p, *end;
  size_t max_depth;
  const char *why; /* what was wrong, for the error message */
} jp;

static int bad(jp *j, const char *why) {
  j->why = why;
  return -EINVAL;
}

static void ws(jp *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int hex4(const char *p, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (uint32_t)(c - 'A' + 10);
    else
      return -1;
  }
  *out = v;
  return 0;
}

static int put_utf8(ce_buf *out, uint32_t cp) {
  char b[4];
  size_t n;
  if (cp < 0x80) {
    b[0] = (char)cp, n = 1;
  } else if (cp < 0x800) {
    b[0] = (char)(0xC0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
  } else if (cp < 0x10000) {
    b[0] = (char)(0xE0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
  } else {
    b[0] = (char)(0xF0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
  }
  return ce_buf_append(out, b, n);
}

/* Scans the string literal at j->p (which is '"'). When out is non-NULL the
 * decoded content is appended to it. */
static int str(jp *j, ce_buf *out) {
  const char *p = j->p + 1, *end = j->end, *run = p;
  while (p < end) {
    unsigned char c = (unsigned char)*p;
    if (c == '"') {
      if (out && ce_buf_append(out, run, (size_t)(p - run))) return -ENOMEM;
      j->p = p + 1;
      return 0;
    }
    if (c == '\\') {
      if (out && ce_buf_append(out, run, (size_t)(p - run))) return -ENOMEM;
      if (++p == end) break;
      uint32_t cp;
      switch (*p) {
      case '"':
        cp = '"';
        break;
      case '\\':
        cp = '\\';
        break;
      case '/':
        cp = '/';
        break;
      case 'b':
        cp = '\b';
        break;
      case 'f':
        cp = '\f';
        break;
      case 'n':
        cp = '\n';
        break;
      case 'r':
        cp = '\r';
        break;
      case 't':
        cp = '\t';
        break;
      case 'u':
        if (end - p < 5 || hex4(p + 1, &cp)) return bad(j, "bad \\u escape");
        p += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return bad(j, "lone low surrogate in \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t lo;
          if (end - p < 7 || p[1] != '\\' || p[2] != 'u' || hex4(p + 3, &lo) || lo < 0xDC00 ||
              lo > 0xDFFF)
            return bad(j, "lone high surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          p += 6;
        }
        break;
      default:
        return bad(j, "bad escape in string");
      }
      if (out && put_utf8(out, cp)) return -ENOMEM;
      run = ++p;
      continue;
    }
    if (c < 0x20) return bad(j, "control character in string");
    if (c < 0x80) {
      p++;
      continue;
    }
    uint32_t cp;
    size_t n = ce__utf8_next((const uint8_t *)p, (const uint8_t *)end, &cp);
    if (!n) return bad(j, "invalid UTF-8 in string");
    p += n;
  }
  return bad(j, "unterminated string");
}

static bool dig(const jp *j, const char *p) {
  return p < j->end && *p >= '0' && *p <= '9';
}

/* Scans a number; *is_int tells whether it has integer syntax only. */
static int num(jp *j, bool *is_int) {
  const char *p = j->p;
  if (p < j->end && *p == '-') p++;
  if (!dig(j, p)) return bad(j, "bad number");
  if (*p == '0')
    p++;
  else
    while (dig(j, p)) p++;
  *is_int = true;
  if (p < j->end && *p == '.') {
    *is_int = false;
    if (!dig(j, ++p)) return bad(j, "bad number");
    while (dig(j, p)) p++;
  }
  if (p < j->end && (*p == 'e' || *p == 'E')) {
    *is_int = false;
    p++;
    if (p < j->end && (*p == '+' || *p == '-')) p++;
    if (!dig(j, p)) return bad(j, "bad number");
    while (dig(j, p)) p++;
  }
  j->p = p;
  return 0;
}

static int lit(jp *j, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n)) return bad(j, "unexpected character");
  j->p += n;
  return 0;
}

/* Scans any JSON value at j->p (after whitespace). */
static int value(jp *j, size_t depth) {
  ws(j);
  if (j->p == j->end) return bad(j, "unexpected end of input");
  char c = *j->p;
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    if (depth >= j->max_depth) return bad(j, "nesting too deep");
    j->p++;
    ws(j);
    if (j->p < j->end && *j->p == close) {
      j->p++;
      return 0;
    }
    for (;;) {
      int rc;
      if (c == '{') {
        ws(j);
        if (j->p == j->end || *j->p != '"') return bad(j, "expected a member name");
        if ((rc = str(j, NULL))) return rc;
        ws(j);
        if (j->p == j->end || *j->p != ':') return bad(j, "expected ':'");
        j->p++;
      }
      if ((rc = value(j, depth + 1))) return rc;
      ws(j);
      if (j->p == j->end) return bad(j, "unexpected end of input");
      if (*j->p == ',') {
        j->p++;
        continue;
      }
      if (*j->p != close) return bad(j, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
      j->p++;
      return 0;
    }
  }
  if (c == '"') return str(j, NULL);
  if (c == 't') return lit(j, "true");
  if (c == 'f') return lit(j, "false");
  if (c == 'n') return lit(j, "null");
  bool is_int;
  return num(j, &is_int);
}

static void jp_init(jp *j, const char *s, size_t len, size_t max_depth) {
  j->start = j->p = s;
  j->end = s + len;
  j->max_depth = max_depth ? max_depth : HARD_DEPTH;
  if (j->max_depth > HARD_DEPTH) j->max_depth = HARD_DEPTH;
  j->why = NULL;
}

bool ce__json_is_value(const char *s, size_t len, size_t max_depth, size_t *start, size_t *vlen) {
  jp j;
  jp_init(&j, s, len, max_depth);
  ws(&j);
  const char *v = j.p;
  if (value(&j, 0)) return false;
  const char *vend = j.p;
  ws(&j);
  if (j.p != j.end) return false;
  *start = (size_t)(v - s);
  *vlen = (size_t)(vend - v);
  return true;
}

static int syntax(jp *j, ce_err *err, int rc) {
  if (rc == -ENOMEM) return ce__fail(err, rc, NULL, 0, "out of memory");
  return ce__fail(err, -EINVAL, NULL, 0, "malformed JSON at byte %zu: %s",
                  (size_t)(j->p - j->start), j->why ? j->why : "syntax error");
}

/* Scratch buffers reused across the events of a batch. */
typedef struct scratch {
  ce_buf key, val, seen;
} scratch;

/* True (and remembers it) when name was already a member of this object. */
static bool seen_before(ce_buf *seen, const char *name, size_t len) {
  for (size_t i = 0; i < seen->len;) {
    size_t n = strlen(seen->data + i);
    if (n == len && memcmp(seen->data + i, name, len) == 0) return true;
    i += n + 1;
  }
  ce_buf_append(seen, name, len);
  ce_buf_append(seen, "", 1);
  return false;
}

/* Decodes one attribute member whose value starts at j->p. */
static int attr_member(jp *j, ce_event *ev, scratch *s, ce_err *err) {
  const char *name = s->key.data;
  size_t nlen = s->key.len;
  if (!ce_valid_name(name, nlen))
    return ce__fail(err, -EINVAL, name, nlen,
                    "attribute names must be lower-case letters and digits only ([a-z0-9]+)");
  bool known = ce__known_type(name, nlen) >= 0;
  char c = *j->p;
  int rc;
  if (c == '"') {
    ce_buf_reset(&s->val);
    if ((rc = str(j, &s->val))) return rc;
    rc = ce__put(ev, name, nlen, CE_TYPE_STRING, s->val.data ? s->val.data : "", s->val.len);
  } else if (c == 'n') {
    return lit(j, "null"); /* null: the attribute is unset */
  } else if (known) {
    return ce__fail(err, -EINVAL, name, nlen, "value must be a JSON string");
  } else if (c == 't' || c == 'f') {
    const char *v = j->p;
    if ((rc = lit(j, c == 't' ? "true" : "false"))) return rc;
    rc = ce__put(ev, name, nlen, CE_TYPE_BOOLEAN, v, (size_t)(j->p - v));
  } else if (c == '-' || (c >= '0' && c <= '9')) {
    const char *v = j->p;
    bool is_int;
    if ((rc = num(j, &is_int))) return rc;
    rc = is_int ? ce__put(ev, name, nlen, CE_TYPE_INTEGER, v, (size_t)(j->p - v)) : -EINVAL;
    if (rc == -EINVAL)
      return ce__fail(err, -EINVAL, name, nlen,
                      "value must be a 32-bit integer (-2147483648..2147483647)");
  } else if (c == '{' || c == '[') {
    return ce__fail(err, -EINVAL, name, nlen,
                    "extension values must be a string, number or boolean, not %s",
                    c == '{' ? "an object" : "an array");
  } else {
    return bad(j, "unexpected character");
  }
  return rc == -ENOMEM ? ce__fail(err, rc, name, nlen, "out of memory") : rc;
}

/* Sets the data from the `data` member span, by the content type. */
static int set_data(ce_event *ev, const char *v, size_t vlen, scratch *s) {
  const char *ct = ce_event_get_str(ev, "datacontenttype");
  if (!ce_media_type_is_json(ct, ct ? strlen(ct) : 0) && v[0] == '"') {
    jp j;
    jp_init(&j, v, vlen, 1);
    ce_buf_reset(&s->val);
    int rc = str(&j, &s->val);
    if (rc) return rc;
    v = s->val.data ? s->val.data : "";
    vlen = s->val.len;
  }
  return ce_event_set_data(ev, v, vlen);
}

static int decode_object(jp *j, ce_event *ev, scratch *s, ce_err *err) {
  const char *data = NULL, *b64 = NULL;
  size_t data_len = 0, b64_len = 0;
  int rc;
  ce_buf_reset(&s->seen);
  ws(j);
  if (j->p == j->end || *j->p != '{') return syntax(j, err, bad(j, "expected an event object"));
  j->p++;
  ws(j);
  if (j->p < j->end && *j->p == '}') {
    j->p++;
  } else {
    for (;;) {
      ws(j);
      if (j->p == j->end || *j->p != '"') return syntax(j, err, bad(j, "expected a member name"));
      ce_buf_reset(&s->key);
      if ((rc = str(j, &s->key))) return syntax(j, err, rc);
      if (!s->key.data) ce_buf_append(&s->key, "", 0);
      ws(j);
      if (j->p == j->end || *j->p != ':') return syntax(j, err, bad(j, "expected ':'"));
      j->p++;
      ws(j);
      if (j->p == j->end) return syntax(j, err, bad(j, "unexpected end of input"));
      if (memchr(s->key.data, '\0', s->key.len))
        return ce__fail(err, -EINVAL, s->key.data, strlen(s->key.data),
                        "member name holds a NUL character");
      if (seen_before(&s->seen, s->key.data, s->key.len))
        return ce__fail(err, -EINVAL, s->key.data, s->key.len, "member appears twice");
      const char *v = j->p;
      if (strcmp(s->key.data, "data") == 0) {
        if ((rc = value(j, 0))) return syntax(j, err, rc);
        data = v, data_len = (size_t)(j->p - v);
      } else if (strcmp(s->key.data, "data_base64") == 0) {
        if (*v == '"') {
          if ((rc = str(j, NULL))) return syntax(j, err, rc);
          b64 = v + 1, b64_len = (size_t)(j->p - v - 2);
        } else if ((rc = lit(j, "null"))) {
          return ce__fail(err, -EINVAL, "data_base64", 11, "must be a base64 string");
        }
      } else if ((rc = attr_member(j, ev, s, err))) {
        return j->why ? syntax(j, err, rc) : rc;
      }
      ws(j);
      if (j->p < j->end && *j->p == ',') {
        j->p++;
        continue;
      }
      if (j->p < j->end && *j->p == '}') {
        j->p++;
        break;
      }
      return syntax(j, err, bad(j, "expected ',' or '}'"));
    }
  }
  if (data && b64)
    return ce__fail(err, -EINVAL, "data_base64", 11, "data and data_base64 are mutually exclusive");
  if (b64) {
    ce_buf_reset(&s->val);
    /* A JSON string may hold escapes; base64 needs none, so refuse them. */
    if (memchr(b64, '\\', b64_len) || ce__b64_decode(b64, b64_len, &s->val))
      return ce__fail(err, -EINVAL, "data_base64", 11, "value must be base64 (RFC 4648)");
    rc = ce_event_set_data(ev, s->val.data ? s->val.data : "", s->val.len);
  } else if (data) {
    rc = set_data(ev, data, data_len, s);
  } else {
    rc = 0;
  }
  if (rc) return ce__fail(err, rc, "data", 4, rc == -ENOMEM ? "out of memory" : "invalid data");
  return ce_event_validate(ev, err);
}

static void scratch_cleanup(scratch *s) {
  ce_buf_cleanup(&s->key);
  ce_buf_cleanup(&s->val);
  ce_buf_cleanup(&s->seen);
}

static int too_big(const ce_limits *lim, size_t len, ce_err *err) {
  return ce__fail(err, -EMSGSIZE, NULL, 0, "body of %zu bytes exceeds the limit of %zu bytes", len,
                  lim->max_body);
}

int ce_json_decode(const void *buf, size_t len, const ce_limits *lim, ce_event **out, ce_err *err) {
  if (lim->max_body && len > lim->max_body) return too_big(lim, len, err);
  scratch s = {0};
  jp j;
  jp_init(&j, buf, len, lim->max_depth);
  ce_event *ev = ce_event_new();
  int rc = ev ? decode_object(&j, ev, &s, err) : -ENOMEM;
  if (rc == 0) {
    ws(&j);
    if (j.p != j.end) rc = syntax(&j, err, bad(&j, "trailing characters after the event"));
  }
  scratch_cleanup(&s);
  if (rc) {
    ce_event_free(ev);
    return rc == -ENOMEM ? ce__fail(err, rc, NULL, 0, "out of memory") : rc;
  }
  *out = ev;
  return 0;
}

int ce_json_decode_batch(const void *buf, size_t len, const ce_limits *lim, ce_batch *out,
                         ce_err *err) {
  if (lim->max_body && len > lim->max_body) return too_big(lim, len, err);
  scratch s = {0};
  jp j;
  jp_init(&j, buf, len, lim->max_depth);
  size_t first = out->n, count = 0;
  int rc = 0;
  ws(&j);
  if (j.p == j.end || *j.p != '[') {
    rc = syntax(&j, err, bad(&j, "a batch must be a JSON array"));
    goto done;
  }
  j.p++;
  ws(&j);
  if (j.p < j.end && *j.p == ']') {
    j.p++;
  } else {
    for (;;) {
      if (lim->max_batch && count == lim->max_batch) {
        rc = ce__fail(err, -EMSGSIZE, NULL, 0, "batch holds more than %zu events", lim->max_batch);
        if (err) err->index = (int)count; /* the first event past the limit */
        goto done;
      }
      ce_event *ev = ce_event_new();
      if (!ev || (rc = decode_object(&j, ev, &s, err))) {
        ce_event_free(ev);
        if (!ev) rc = ce__fail(err, -ENOMEM, NULL, 0, "out of memory");
        if (err) err->index = (int)count;
        goto done;
      }
      if ((rc = ce_batch_push(out, ev))) goto done;
      count++;
      ws(&j);
      if (j.p < j.end && *j.p == ',') {
        j.p++;
        continue;
      }
      if (j.p < j.end && *j.p == ']') {
        j.p++;
        break;
      }
      rc = syntax(&j, err, bad(&j, "expected ',' or ']' between events"));
      goto done;
    }
  }
  ws(&j);
  if (j.p != j.end) rc = syntax(&j, err, bad(&j, "trailing characters after the batch"));
done:
  scratch_cleanup(&s);
  if (rc) {
    /* All or nothing: take back what this call appended. */
    while (out->n > first) ce_event_free(out->ev[--out->n]);
    return rc;
  }
  return (int)count;
}

int ce__json_put_string(ce_buf *out, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  int rc = ce_buf_reserve(out, len + 2);
  if (rc) return rc;
  ce_buf_append(out, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    if ((rc = ce_buf_append(out, s + run, i - run))) return rc;
    char e[6] = {'\\', 0};
    size_t n = 2;
    switch (c) {
    case '"':
      e[1] = '"';
      break;
    case '\\':
      e[1] = '\\';
      break;
    case '\n':
      e[1] = 'n';
      break;
    case '\r':
      e[1] = 'r';
      break;
    case '\t':
      e[1] = 't';
      break;
    case '\b':
      e[1] = 'b';
      break;
    case '\f':
      e[1] = 'f';
      break;
    default:
      e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[c >> 4], e[5] = hex[c & 15];
      n = 6;
    }
    if ((rc = ce_buf_append(out, e, n))) return rc;
    run = i + 1;
  }
  if ((rc = ce_buf_append(out, s + run, len - run))) return rc;
  return ce_buf_append(out, "\"", 1);
}

static int encode_data(const ce_event *ev, ce_buf *out) {
  size_t len;
  const char *d = (const char *)ce_event_data(ev, &len);
  const char *ct = ce_event_get_str(ev, "datacontenttype");
  size_t ctlen = ct ? strlen(ct) : 0, start, vlen;
  int rc;
  bool json = ce_media_type_is_json(ct, ctlen);
  /* JSON data is written as JSON only when the bytes are exactly one JSON
   * value: whitespace around it would be lost on the way back, and the data
   * must come back byte for byte. */
  if (json && ce__json_is_value(d, len, HARD_DEPTH, &start, &vlen) && start == 0 && vlen == len) {
    if ((rc = ce_buf_append_str(out, ",\"data\":"))) return rc;
    return ce_buf_append(out, d, len);
  }
  /* A string under a JSON content type would be read back as JSON text
   * (quotes included), so JSON types that are not JSON go as base64. */
  if (!json && ce__media_type_is_text(ct, ctlen) && ce_valid_utf8(d, len)) {
    if ((rc = ce_buf_append_str(out, ",\"data\":"))) return rc;
    return ce__json_put_string(out, d, len);
  }
  if ((rc = ce_buf_append_str(out, ",\"data_base64\":\""))) return rc;
  if ((rc = ce__b64_encode((const uint8_t *)d, len, out))) return rc;
  return ce_buf_append(out, "\"", 1);
}

static int encode_one(const ce_event *ev, ce_buf *out, ce_err *err) {
  int rc = ce_event_validate(ev, err);
  if (rc) return rc;
  if ((rc = ce_buf_append(out, "{", 1))) return rc;
  size_t n = ce_event_attr_count(ev);
  for (size_t i = 0; i < n; i++) {
    const ce_attr *a = ce_event_attr_at(ev, i);
    if (i && (rc = ce_buf_append(out, ",", 1))) return rc;
    if ((rc = ce_buf_append(out, "\"", 1)) || (rc = ce_buf_append_str(out, a->name)) ||
        (rc = ce_buf_append(out, "\":", 2)))
      return rc;
    if (a->type == CE_TYPE_INTEGER || a->type == CE_TYPE_BOOLEAN)
      rc = ce_buf_append(out, a->value, a->value_len);
    else
      rc = ce__json_put_string(out, a->value, a->value_len);
    if (rc) return rc;
  }
  if (ce_event_has_data(ev) && (rc = encode_data(ev, out))) return rc;
  return ce_buf_append(out, "}", 1);
}

int ce_json_encode(const ce_event *ev, ce_buf *out, ce_err *err) {
  size_t mark = out->len;
  int rc = encode_one(ev, out, err);
  if (rc) {
    out->len = mark; /* leave the buffer as it was */
    if (out->cap) out->data[mark] = '\0';
    if (rc == -ENOMEM) ce__fail(err, rc, NULL, 0, "out of memory");
  }
  return rc;
}

int ce_json_encode_batch(ce_event *const *evs, size_t n, ce_buf *out, ce_err *err) {
  size_t mark = out->len;
  int rc = ce_buf_append(out, "[", 1);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    if (i) rc = ce_buf_append(out, ",", 1);
    if (rc == 0 && (rc = encode_one(evs[i], out, err)) && err) err->index = (int)i;
  }
  if (rc == 0) rc = ce_buf_append(out, "]", 1);
  if (rc) {
    out->len = mark;
    if (out->cap) out->data[mark] = '\0';
  }
  return rc;
}
