/*
 * ce_event.c — the CloudEvent model: attributes kept in their canonical
 * string form, data as bytes, all of it in per-event chunks freed at once.
 * Also the whole-event validation of CloudEvents 1.0.2.
 */
#include "core/ce.h"
#include "core/ce_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CHUNK_MIN = 1024 };

static const struct {
  const char *name;
  ce_type type;
} known[] = {
    {"id", CE_TYPE_STRING},
    {"source", CE_TYPE_URI_REF},
    {"specversion", CE_TYPE_STRING},
    {"type", CE_TYPE_STRING},
    {"datacontenttype", CE_TYPE_STRING},
    {"dataschema", CE_TYPE_URI},
    {"subject", CE_TYPE_STRING},
    {"time", CE_TYPE_TIMESTAMP},
};

int ce__known_type(const char *name, size_t len) {
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strlen(known[i].name) == len && memcmp(known[i].name, name, len) == 0)
      return (int)known[i].type;
  return -1;
}

int ce__fail(ce_err *err, int code, const char *attr, size_t attr_len, const char *fmt, ...) {
  if (!err) return code;
  if (attr_len >= sizeof err->attr) attr_len = sizeof err->attr - 1;
  if (attr) memcpy(err->attr, attr, attr_len);
  err->attr[attr ? attr_len : 0] = '\0';
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->reason, sizeof err->reason, fmt, ap);
  va_end(ap);
  err->index = -1;
  return code;
}

ce_event *ce_event_new(void) {
  ce_event *ev = calloc(1, sizeof *ev);
  if (!ev) return NULL;
  ev->attrs = ev->inline_attrs;
  ev->cap_attrs = sizeof ev->inline_attrs / sizeof ev->inline_attrs[0];
  return ev;
}

void ce_event_free(ce_event *ev) {
  if (!ev) return;
  for (ce_chunk *c = ev->chunks, *next; c; c = next) {
    next = c->next;
    free(c);
  }
  if (ev->attrs != ev->inline_attrs) free(ev->attrs);
  free(ev);
}

void *ce__alloc(ce_event *ev, size_t len) {
  len = (len + 15) & ~(size_t)15;
  ce_chunk *c = ev->chunks;
  if (!c || c->cap - c->used < len) {
    /* A request bigger than a chunk gets a chunk of its own, placed behind
     * the current one so the current one keeps serving small requests. */
    size_t cap = len > CHUNK_MIN ? len : CHUNK_MIN;
    ce_chunk *n = malloc(sizeof *n + cap);
    if (!n) return NULL;
    n->cap = cap;
    n->used = 0;
    if (c && len > CHUNK_MIN) {
      n->next = c->next;
      c->next = n;
    } else {
      n->next = c;
      ev->chunks = n;
    }
    c = n;
  }
  void *p = (char *)c->align + c->used;
  c->used += len;
  return p;
}

char *ce__strdup(ce_event *ev, const char *s, size_t len) {
  char *p = ce__alloc(ev, len + 1);
  if (!p) return NULL;
  if (len) memcpy(p, s, len);
  p[len] = '\0';
  return p;
}

static ce_attr *find(const ce_event *ev, const char *name, size_t len) {
  for (size_t i = 0; i < ev->n_attrs; i++)
    if (strncmp(ev->attrs[i].name, name, len) == 0 && ev->attrs[i].name[len] == '\0')
      return &ev->attrs[i];
  return NULL;
}

/* Parses a canonical 32-bit integer: -?(0|[1-9][0-9]*) within range. */
static bool parse_int32(const char *s, size_t len, int32_t *out) {
  size_t i = 0;
  bool neg = len > 0 && s[0] == '-';
  i = neg;
  if (i == len || len - i > 10) return false;
  if (s[i] == '0' && len - i > 1) return false;
  int64_t v = 0;
  for (; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  if (neg) v = -v;
  if (v < INT32_MIN || v > INT32_MAX) return false;
  *out = (int32_t)v;
  return true;
}

static int put(ce_event *ev, const char *name, size_t name_len, ce_type type, const char *value,
               size_t len, bool must_be_new) {
  int kt = ce__known_type(name, name_len);
  if (kt >= 0) type = (ce_type)kt;
  ce_attr a = {.type = type};
  if (type == CE_TYPE_INTEGER && !parse_int32(value, len, &a.integer)) return -EINVAL;
  if (type == CE_TYPE_BOOLEAN) {
    if (len == 4 && memcmp(value, "true", 4) == 0)
      a.boolean = true;
    else if (!(len == 5 && memcmp(value, "false", 5) == 0))
      return -EINVAL;
  }
  ce_attr *slot = find(ev, name, name_len);
  if (slot && must_be_new) return -EEXIST;
  a.value = ce__strdup(ev, value, len);
  if (!a.value) return -ENOMEM;
  a.value_len = len;
  if (slot) {
    a.name = slot->name;
    *slot = a;
    return 0;
  }
  a.name = ce__strdup(ev, name, name_len);
  if (!a.name) return -ENOMEM;
  if (ev->n_attrs == ev->cap_attrs) {
    size_t cap = ev->cap_attrs * 2;
    ce_attr *p = malloc(cap * sizeof *p);
    if (!p) return -ENOMEM;
    memcpy(p, ev->attrs, ev->n_attrs * sizeof *p);
    if (ev->attrs != ev->inline_attrs) free(ev->attrs);
    ev->attrs = p;
    ev->cap_attrs = cap;
  }
  ev->attrs[ev->n_attrs++] = a;
  return 0;
}

int ce__put(ce_event *ev, const char *name, size_t name_len, ce_type type, const char *value,
            size_t len) {
  return put(ev, name, name_len, type, value, len, false);
}

int ce__put_new(ce_event *ev, const char *name, size_t name_len, ce_type type, const char *value,
                size_t len) {
  return put(ev, name, name_len, type, value, len, true);
}

static const char *type_words(ce_type t) {
  switch (t) {
  case CE_TYPE_BOOLEAN:
    return "a boolean (true or false)";
  case CE_TYPE_INTEGER:
    return "a 32-bit integer";
  case CE_TYPE_BINARY:
    return "base64 (RFC 4648)";
  case CE_TYPE_URI:
    return "an absolute URI (RFC 3986 section 4.3)";
  case CE_TYPE_URI_REF:
    return "a URI-reference (RFC 3986 section 4.1)";
  case CE_TYPE_TIMESTAMP:
    return "an RFC 3339 timestamp";
  case CE_TYPE_STRING:
    break;
  }
  return "a string of allowed Unicode characters (no control characters)";
}

int ce_attr_check(const char *name, size_t name_len, ce_type type, const char *v, size_t len,
                  ce_err *err) {
  if (!ce_valid_name(name, name_len))
    return ce__fail(err, -EINVAL, name, name_len,
                    "attribute names must be lower-case letters and digits only ([a-z0-9]+)");
  if (name_len == 4 && memcmp(name, "data", 4) == 0)
    return ce__fail(err, -EINVAL, name, name_len, "'data' is reserved and cannot be an attribute");
  int kt = ce__known_type(name, name_len);
  if (kt >= 0) type = (ce_type)kt;
  /* Every type's check refuses malformed UTF-8 itself (strings decode it,
   * the other types accept ASCII only), so the UTF-8 pass runs only to word
   * the error of a value that failed. */
  bool ok = true;
  switch (type) {
  case CE_TYPE_STRING:
    ok = ce_valid_string(v, len);
    break;
  case CE_TYPE_BOOLEAN:
    ok = (len == 4 && !memcmp(v, "true", 4)) || (len == 5 && !memcmp(v, "false", 5));
    break;
  case CE_TYPE_INTEGER: {
    int32_t i;
    ok = parse_int32(v, len, &i);
    break;
  }
  case CE_TYPE_BINARY:
    ok = ce_valid_base64(v, len);
    break;
  case CE_TYPE_URI:
    ok = ce_valid_uri(v, len);
    break;
  case CE_TYPE_URI_REF:
    ok = ce_valid_uri_ref(v, len);
    break;
  case CE_TYPE_TIMESTAMP:
    ok = ce_valid_timestamp(v, len);
    break;
  }
  if (!ok && !ce_valid_utf8(v, len))
    return ce__fail(err, -EINVAL, name, name_len, "value is not valid UTF-8");
  if (!ok) return ce__fail(err, -EINVAL, name, name_len, "value must be %s", type_words(type));
  /* Every attribute the core spec defines must be non-empty when present. */
  if (kt >= 0 && len == 0) return ce__fail(err, -EINVAL, name, name_len, "must not be empty");
  if (kt >= 0 && name_len == 15 && !memcmp(name, "datacontenttype", 15) &&
      !ce_valid_media_type(v, len))
    return ce__fail(err, -EINVAL, name, name_len, "value must be a media type (RFC 2046)");
  return 0;
}

int ce_event_set(ce_event *ev, const char *name, ce_type type, const char *value, size_t len,
                 ce_err *err) {
  size_t name_len = strlen(name);
  int rc = ce_attr_check(name, name_len, type, value, len, err);
  if (rc) return rc;
  rc = ce__put(ev, name, name_len, type, value, len);
  if (rc) return ce__fail(err, rc, name, name_len, "out of memory");
  return 0;
}

int ce_event_set_str(ce_event *ev, const char *name, const char *value, ce_err *err) {
  return ce_event_set(ev, name, CE_TYPE_STRING, value, strlen(value), err);
}

int ce_event_set_int(ce_event *ev, const char *name, int32_t value, ce_err *err) {
  char s[16];
  int n = snprintf(s, sizeof s, "%" PRId32, value);
  return ce_event_set(ev, name, CE_TYPE_INTEGER, s, (size_t)n, err);
}

int ce_event_set_bool(ce_event *ev, const char *name, bool value, ce_err *err) {
  const char *s = value ? "true" : "false";
  return ce_event_set(ev, name, CE_TYPE_BOOLEAN, s, strlen(s), err);
}

int ce_event_unset(ce_event *ev, const char *name) {
  ce_attr *a = find(ev, name, strlen(name));
  if (!a) return -ENOENT;
  /* Keep the order of the others: they are listed in insertion order. */
  size_t i = (size_t)(a - ev->attrs);
  memmove(a, a + 1, (ev->n_attrs - i - 1) * sizeof *a);
  ev->n_attrs--;
  return 0;
}

const ce_attr *ce_event_get(const ce_event *ev, const char *name) {
  return find(ev, name, strlen(name));
}

const char *ce_event_get_str(const ce_event *ev, const char *name) {
  const ce_attr *a = ce_event_get(ev, name);
  return a ? a->value : NULL;
}

int ce_event_get_int(const ce_event *ev, const char *name, int32_t *out) {
  const ce_attr *a = ce_event_get(ev, name);
  if (!a) return -ENOENT;
  if (a->type == CE_TYPE_INTEGER) {
    *out = a->integer;
    return 0;
  }
  if (a->type != CE_TYPE_STRING) return -EINVAL;
  return parse_int32(a->value, a->value_len, out) ? 0 : -EINVAL;
}

size_t ce_event_attr_count(const ce_event *ev) {
  return ev->n_attrs;
}

const ce_attr *ce_event_attr_at(const ce_event *ev, size_t i) {
  return i < ev->n_attrs ? &ev->attrs[i] : NULL;
}

void ce__set_data_owned(ce_event *ev, const uint8_t *data, size_t len) {
  ev->data = data;
  ev->data_len = len;
  ev->has_data = true;
}

int ce_event_set_data(ce_event *ev, const void *data, size_t len) {
  uint8_t *p = ce__alloc(ev, len ? len : 1);
  if (!p) return -ENOMEM;
  if (len) memcpy(p, data, len);
  ce__set_data_owned(ev, p, len);
  return 0;
}

void ce_event_clear_data(ce_event *ev) {
  ev->data = NULL;
  ev->data_len = 0;
  ev->has_data = false;
}

bool ce_event_has_data(const ce_event *ev) {
  return ev->has_data;
}

const uint8_t *ce_event_data(const ce_event *ev, size_t *len) {
  if (len) *len = ev->has_data ? ev->data_len : 0;
  return ev->has_data ? ev->data : NULL;
}

ce_event *ce_event_clone(const ce_event *ev) {
  ce_event *c = ce_event_new();
  if (!c) return NULL;
  for (size_t i = 0; i < ev->n_attrs; i++) {
    const ce_attr *a = &ev->attrs[i];
    if (ce__put(c, a->name, strlen(a->name), a->type, a->value, a->value_len)) goto fail;
  }
  if (ev->has_data && ce_event_set_data(c, ev->data, ev->data_len)) goto fail;
  return c;
fail:
  ce_event_free(c);
  return NULL;
}

int ce_event_validate(const ce_event *ev, ce_err *err) {
  /* specversion first: under another version every other rule may differ. */
  const ce_attr *sv = find(ev, "specversion", 11);
  if (!sv) return ce__fail(err, -EINVAL, "specversion", 11, "required attribute is missing");
  if (strcmp(sv->value, "1.0") != 0)
    return ce__fail(err, -EINVAL, "specversion", 11,
                    "unsupported specversion \"%.32s\": only \"1.0\" is supported", sv->value);
  static const char *required[] = {"id", "source", "type"};
  for (size_t i = 0; i < 3; i++)
    if (!find(ev, required[i], strlen(required[i])))
      return ce__fail(err, -EINVAL, required[i], strlen(required[i]),
                      "required attribute is missing");
  for (size_t i = 0; i < ev->n_attrs; i++) {
    const ce_attr *a = &ev->attrs[i];
    int rc = ce_attr_check(a->name, strlen(a->name), a->type, a->value, a->value_len, err);
    if (rc) return rc;
  }
  return 0;
}

bool ce_event_equal(const ce_event *a, const ce_event *b) {
  if (a->n_attrs != b->n_attrs || a->has_data != b->has_data) return false;
  if (a->has_data &&
      (a->data_len != b->data_len || (a->data_len && memcmp(a->data, b->data, a->data_len))))
    return false;
  for (size_t i = 0; i < a->n_attrs; i++) {
    const ce_attr *x = &a->attrs[i];
    const ce_attr *y = find(b, x->name, strlen(x->name));
    if (!y || x->type != y->type || x->value_len != y->value_len ||
        memcmp(x->value, y->value, x->value_len))
      return false;
  }
  return true;
}
