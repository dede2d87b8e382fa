/*
 * resources.c — YAML and JSON configuration files into cJSON resource
 * trees. libyaml's event parser does the syntax; this file turns events
 * into cJSON nodes with the YAML 1.2 core schema, refuses what a resource
 * file has no use for (anchors, aliases, custom tags, duplicate keys), and
 * flattens the three ways of holding several resources (documents, a
 * top-level array, a List) into one array. The parser is driven event by
 * event, never through libyaml's recursive document loader, so nesting is
 * bounded by RES_MAX_DEPTH before anything deep is built.
 */
#include "core/resources.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#define YAML_TAG_PREFIX "tag:yaml.org,2002:"
/* Number.MAX_SAFE_INTEGER: the largest n such that n and every integer
 * below it are doubles, so that no other integer reads back as n. */
#define MAX_SAFE_INT 9007199254740991ull

/* ---------------------------------------------------------------- keys seen */

/* The keys of every mapping of the current document, to find duplicates in
 * constant time: a mapping with many keys would otherwise cost a quadratic
 * scan. A slot borrows the key string of a cJSON member, which lives as long
 * as the document's tree; the set is emptied when the document ends. */
typedef struct key_slot {
  const char *key; /* NULL: free slot */
  size_t map;      /* the mapping's serial number in the stream */
} key_slot;

typedef struct key_set {
  key_slot *slots;
  size_t cap; /* a power of two, or 0 */
  size_t n;
} key_set;

static size_t key_hash(const char *key, size_t map) {
  uint64_t h = 14695981039346656037ull ^ ((uint64_t)map * 0x9e3779b97f4a7c15ull);
  for (const unsigned char *s = (const unsigned char *)key; *s; s++)
    h = (h ^ *s) * 1099511628211ull;
  return (size_t)(h ^ (h >> 32));
}

static bool keys_has(const key_set *ks, const char *key, size_t map) {
  if (ks->cap == 0) return false;
  for (size_t i = key_hash(key, map) & (ks->cap - 1);; i = (i + 1) & (ks->cap - 1)) {
    const key_slot *s = &ks->slots[i];
    if (s->key == NULL) return false;
    if (s->map == map && strcmp(s->key, key) == 0) return true;
  }
}

static void keys_put(key_slot *slots, size_t cap, const char *key, size_t map) {
  size_t i = key_hash(key, map) & (cap - 1);
  while (slots[i].key) i = (i + 1) & (cap - 1);
  slots[i] = (key_slot){key, map};
}

/* Adds a key known to be absent. Returns 0 or -ENOMEM. */
static int keys_add(key_set *ks, const char *key, size_t map) {
  if (2 * (ks->n + 1) > ks->cap) {
    size_t cap = ks->cap ? 2 * ks->cap : 64;
    key_slot *slots = calloc(cap, sizeof *slots);
    if (slots == NULL) return -ENOMEM;
    for (size_t i = 0; i < ks->cap; i++)
      if (ks->slots[i].key) keys_put(slots, cap, ks->slots[i].key, ks->slots[i].map);
    free(ks->slots);
    ks->slots = slots;
    ks->cap = cap;
  }
  keys_put(ks->slots, ks->cap, key, map);
  ks->n++;
  return 0;
}

static void keys_clear(key_set *ks) {
  free(ks->slots);
  *ks = (key_set){0};
}

/* ---------------------------------------------------------------- parse state */

/* An open mapping or sequence. */
typedef struct frame {
  cJSON *node; /* already attached to its parent (or the document root) */
  size_t map;  /* serial number, for mappings */
  char *key;   /* mapping: the key waiting for its value (owned), or NULL */
  bool items;  /* a sequence that is the "items" of the document's root mapping */
  size_t n;    /* sequence: items so far */
} frame;

typedef struct parse {
  const char *text; /* the input, to place reader errors */
  size_t len;
  res_err *err; /* may be NULL */
  cJSON *out;   /* the array of resources */
  size_t n_out; /* its size (cJSON counts by walking the list) */
  size_t docs;  /* documents started */
  cJSON *root;  /* the current document's root collection, or NULL */
  yaml_mark_t root_mark;
  frame stack[RES_MAX_DEPTH];
  int depth;   /* open collections */
  size_t maps; /* mappings opened so far */
  key_set keys;
  bool bad_item; /* a non-mapping inside the root's "items", should it be a List */
  yaml_mark_t bad_item_mark;
  size_t bad_item_index;
  const char *bad_item_what;
} parse;

/* A 0-based libyaml line or column as the 1-based int of res_err. */
static int one_based(size_t v) {
  return v > INT_MAX - 1 ? INT_MAX : (int)v + 1;
}

/* Fills *err (when there is one) with "line L, column C: ..." for a 0-based
 * line and column, or with the bare message when line is SIZE_MAX. */
static void set_err(res_err *err, size_t line, size_t column, const char *fmt, va_list ap) {
  if (err == NULL) return;
  int n = 0;
  err->line = err->column = 0;
  if (line != SIZE_MAX) {
    err->line = one_based(line);
    err->column = one_based(column);
    n = snprintf(err->msg, sizeof err->msg, "line %d, column %d: ", err->line, err->column);
  }
  vsnprintf(err->msg + n, sizeof err->msg - (size_t)n, fmt, ap);
}

/* Fills the error with a place and returns -EINVAL. */
static int fail_at(parse *p, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Fills the error without a place and returns rc. */
static int fail_bare(res_err *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(parse *p, yaml_mark_t m, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_err(p->err, m.line, m.column, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

static int fail_bare(res_err *err, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_err(err, SIZE_MAX, 0, fmt, ap);
  va_end(ap);
  return rc;
}

/* A printable, shortened copy of s[0..n) for a message: bytes outside
 * printable ASCII as \xNN, at most about 40 characters. */
static const char *shown(const char *s, size_t n, char *buf, size_t size) {
  size_t o = 0, i = 0;
  for (; i < n && o + 6 < size && o < 40; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c < 0x7f && c != '\\')
      buf[o++] = (char)c;
    else
      o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
  }
  if (i < n && o + 4 <= size) o += (size_t)snprintf(buf + o, size - o, "...");
  buf[o] = '\0';
  return buf;
}

/* ---------------------------------------------------------------- scalars */

typedef enum tag_kind {
  TAG_NONE, /* no tag: resolve by style and content */
  TAG_BANG, /* the non-specific "!": a string, for a scalar */
  TAG_STR,
  TAG_INT,
  TAG_FLOAT,
  TAG_BOOL,
  TAG_NULL,
  TAG_MAP,
  TAG_SEQ,
  TAG_OTHER,
} tag_kind;

static tag_kind tag_of(const yaml_char_t *tag) {
  static const char *const names[] = {"str", "int", "float", "bool", "null", "map", "seq"};
  if (tag == NULL) return TAG_NONE;
  const char *t = (const char *)tag;
  if (strcmp(t, "!") == 0) return TAG_BANG;
  if (strncmp(t, YAML_TAG_PREFIX, strlen(YAML_TAG_PREFIX)) != 0) return TAG_OTHER;
  t += strlen(YAML_TAG_PREFIX);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(t, names[i]) == 0) return (tag_kind)(TAG_STR + i);
  return TAG_OTHER;
}

/* The tag as the user most likely wrote it ("!!binary", "!Ref"). */
static const char *tag_shown(const yaml_char_t *tag, char *buf, size_t size) {
  const char *t = (const char *)tag;
  size_t pl = strlen(YAML_TAG_PREFIX);
  char tmp[64];
  if (strncmp(t, YAML_TAG_PREFIX, pl) == 0) {
    snprintf(buf, size, "!!%s", shown(t + pl, strlen(t + pl), tmp, sizeof tmp));
    return buf;
  }
  return shown(t, strlen(t), buf, size);
}

/* What a scalar's text is under the core schema, before tags. */
typedef enum scalar_form {
  FORM_NULL,
  FORM_TRUE,
  FORM_FALSE,
  FORM_INT,    /* [-+]?[0-9]+ */
  FORM_FLOAT,  /* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? but not an int */
  FORM_INFNAN, /* [-+]?\.(inf|Inf|INF), \.(nan|NaN|NAN) */
  FORM_OTHER,
} scalar_form;

static bool is_one_of(const char *s, size_t n, const char *const *words) {
  for (; *words; words++)
    if (strlen(*words) == n && memcmp(s, *words, n) == 0) return true;
  return false;
}

static size_t digits(const char *s, size_t n, size_t i) {
  size_t start = i;
  while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  return i - start;
}

static scalar_form number_form(const char *s, size_t n) {
  size_t i = 0, whole, frac = 0;
  bool dot = false, exp = false;
  if (i < n && (s[i] == '-' || s[i] == '+')) i++;
  i += whole = digits(s, n, i);
  if (i < n && s[i] == '.') {
    dot = true;
    i++;
    i += frac = digits(s, n, i);
  }
  if (whole == 0 && frac == 0) return FORM_OTHER;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    exp = true;
    i++;
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    size_t e = digits(s, n, i);
    if (e == 0) return FORM_OTHER;
    i += e;
  }
  if (i != n) return FORM_OTHER;
  return dot || exp ? FORM_FLOAT : FORM_INT;
}

static scalar_form form_of(const char *s, size_t n) {
  static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
  static const char *const trues[] = {"true", "True", "TRUE", NULL};
  static const char *const falses[] = {"false", "False", "FALSE", NULL};
  static const char *const infnans[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf",
                                        "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
                                        ".NaN",  ".NAN",  NULL};
  if (is_one_of(s, n, nulls)) return FORM_NULL;
  if (is_one_of(s, n, trues)) return FORM_TRUE;
  if (is_one_of(s, n, falses)) return FORM_FALSE;
  if (is_one_of(s, n, infnans)) return FORM_INFNAN;
  return number_form(s, n);
}

/* An integer's value when it is within ±MAX_SAFE_INT (exact as a double). */
static bool safe_int(const char *s, size_t n, double *d) {
  size_t i = 0;
  bool neg = false;
  uint64_t v = 0;
  if (s[0] == '-' || s[0] == '+') neg = s[i++] == '-';
  for (; i < n; i++) {
    v = v * 10 + (uint64_t)(s[i] - '0');
    if (v > MAX_SAFE_INT) return false;
  }
  *d = neg ? -(double)v : (double)v;
  return true;
}

/* A float's value; s is NUL-terminated (libyaml ends every scalar with a
 * NUL) and already matches the float pattern. Returns 0, -ERANGE when it
 * overflows a double, -EINVAL when strtod cannot read it, or -ENOMEM.
 * strtod reads the decimal point of LC_NUMERIC, so in a process that has set
 * a locale with a decimal comma the point is replaced first. */
static int to_double(const char *s, size_t n, double *d) {
  char *end;
  *d = strtod(s, &end);
  if (end != s + n) {
    const char *point = localeconv()->decimal_point;
    size_t pl = strlen(point);
    char *copy = malloc(n * pl + 1), *o = copy;
    if (copy == NULL) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
      if (s[i] == '.') {
        memcpy(o, point, pl);
        o += pl;
      } else {
        *o++ = s[i];
      }
    }
    *o = '\0';
    *d = strtod(copy, &end);
    bool whole = *end == '\0';
    free(copy);
    if (!whole) return -EINVAL;
  }
  return isinf(*d) || isnan(*d) ? -ERANGE : 0;
}

/* What a scalar becomes. */
typedef enum scalar_kind {
  K_STRING,
  K_NULL,
  K_TRUE,
  K_FALSE,
  K_INT,
  K_FLOAT,
  K_INFNAN
} scalar_kind;

/* Resolves a scalar from its tag, style and text; refuses tags that do not
 * fit. The number rules (finite, exact) are checked when a value is made,
 * since a key ".inf" or "1e999" is just text. */
static int scalar_resolve(parse *p, const yaml_event_t *e, scalar_kind *k) {
  const char *s = (const char *)e->data.scalar.value;
  size_t n = e->data.scalar.length;
  tag_kind tag = tag_of(e->data.scalar.tag);
  char tb[64], vb[64];
  if (tag == TAG_STR || tag == TAG_BANG ||
      (tag == TAG_NONE && e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)) {
    *k = K_STRING;
    return 0;
  }
  if (tag == TAG_OTHER || tag == TAG_MAP || tag == TAG_SEQ)
    return fail_at(p, e->start_mark, "tag %s is not supported on a scalar",
                   tag_shown(e->data.scalar.tag, tb, sizeof tb));
  scalar_form f = form_of(s, n);
  static const scalar_kind by_form[] = {K_NULL,  K_TRUE,   K_FALSE, K_INT,
                                        K_FLOAT, K_INFNAN, K_STRING};
  *k = by_form[f];
  bool fits = tag == TAG_NONE || (tag == TAG_NULL && f == FORM_NULL) ||
              (tag == TAG_BOOL && (f == FORM_TRUE || f == FORM_FALSE)) ||
              (tag == TAG_INT && f == FORM_INT) ||
              (tag == TAG_FLOAT && (f == FORM_INT || f == FORM_FLOAT || f == FORM_INFNAN));
  if (!fits)
    return fail_at(p, e->start_mark, "'%s' is not a valid %s%s", shown(s, n, vb, sizeof vb),
                   tag_shown(e->data.scalar.tag, tb, sizeof tb),
                   tag == TAG_INT ? " (only decimal integers are read)" : "");
  if (tag == TAG_FLOAT && *k == K_INT) *k = K_FLOAT;
  return 0;
}

/* Makes the node of a scalar value. */
static int scalar_node(parse *p, const yaml_event_t *e, scalar_kind k, cJSON **node) {
  const char *s = (const char *)e->data.scalar.value;
  size_t n = e->data.scalar.length;
  char vb[64];
  double d = 0;
  int rc;
  switch (k) {
  case K_NULL:
    *node = cJSON_CreateNull();
    break;
  case K_TRUE:
  case K_FALSE:
    *node = cJSON_CreateBool(k == K_TRUE);
    break;
  case K_INT:
    /* Beyond 2^53 a double would round it: keep the exact text. */
    *node = safe_int(s, n, &d) ? cJSON_CreateNumber(d) : cJSON_CreateString(s);
    break;
  case K_FLOAT:
    rc = to_double(s, n, &d);
    if (rc == -ERANGE)
      return fail_at(p, e->start_mark, "number '%s' is out of range (quote it for a string)",
                     shown(s, n, vb, sizeof vb));
    if (rc == -EINVAL)
      return fail_at(p, e->start_mark, "number '%s' cannot be read in this locale",
                     shown(s, n, vb, sizeof vb));
    if (rc) return rc;
    *node = cJSON_CreateNumber(d);
    break;
  case K_INFNAN:
    return fail_at(p, e->start_mark,
                   "'%s' is not a finite number, which JSON cannot hold (quote it for a string)",
                   shown(s, n, vb, sizeof vb));
  case K_STRING:
    *node = cJSON_CreateString(s);
    break;
  }
  return *node ? 0 : -ENOMEM;
}

/* ---------------------------------------------------------------- the tree */

static const char *node_what(const cJSON *node) {
  return cJSON_IsObject(node) ? "mapping" : cJSON_IsArray(node) ? "sequence" : "scalar";
}

/* Puts node, which starts at m, under the innermost open collection or, at
 * depth 0, as the document's root. Takes node, also on failure. */
static int attach(parse *p, cJSON *node, yaml_mark_t m) {
  if (p->depth == 0) {
    p->root = node;
    p->root_mark = m;
    return 0;
  }
  frame *f = &p->stack[p->depth - 1];
  if (cJSON_IsObject(f->node)) {
    if (!cJSON_AddItemToObject(f->node, f->key, node)) {
      cJSON_Delete(node);
      return -ENOMEM;
    }
    free(f->key);
    f->key = NULL;
    return keys_add(&p->keys, node->string, f->map);
  }
  if (p->depth == 1 && !cJSON_IsObject(node)) {
    const char *what = node_what(node);
    cJSON_Delete(node);
    return fail_at(p, m, "a top-level sequence must hold mappings (resources), not a %s", what);
  }
  if (f->items && !cJSON_IsObject(node) && !p->bad_item) {
    p->bad_item = true;
    p->bad_item_mark = m;
    p->bad_item_index = f->n;
    p->bad_item_what = node_what(node);
  }
  f->n++;
  cJSON_AddItemToArray(f->node, node);
  return 0;
}

/* The start of a mapping or sequence. */
static int open_collection(parse *p, const yaml_event_t *e, bool is_map) {
  const yaml_char_t *anchor = is_map ? e->data.mapping_start.anchor : e->data.sequence_start.anchor;
  const yaml_char_t *tag = is_map ? e->data.mapping_start.tag : e->data.sequence_start.tag;
  const char *what = is_map ? "mapping" : "sequence";
  char b[64];
  if (anchor)
    return fail_at(p, e->start_mark, "anchors are not supported (found '&%s')",
                   shown((const char *)anchor, strlen((const char *)anchor), b, sizeof b));
  tag_kind t = tag_of(tag);
  if (t != TAG_NONE && t != TAG_BANG && t != (is_map ? TAG_MAP : TAG_SEQ))
    return fail_at(p, e->start_mark, "tag %s is not supported on a %s", tag_shown(tag, b, sizeof b),
                   what);
  frame *parent = p->depth ? &p->stack[p->depth - 1] : NULL;
  if (parent && cJSON_IsObject(parent->node) && parent->key == NULL)
    return fail_at(p, e->start_mark, "a %s cannot be a key (keys must be scalars)", what);
  if (p->depth == RES_MAX_DEPTH)
    return fail_at(p, e->start_mark, "nesting deeper than %d", RES_MAX_DEPTH);
  bool items =
      !is_map && p->depth == 1 && cJSON_IsObject(parent->node) && strcmp(parent->key, "items") == 0;
  cJSON *node = is_map ? cJSON_CreateObject() : cJSON_CreateArray();
  if (node == NULL) return -ENOMEM;
  int rc = attach(p, node, e->start_mark);
  if (rc) return rc;
  p->stack[p->depth++] = (frame){.node = node, .map = is_map ? ++p->maps : 0, .items = items};
  return 0;
}

static void close_collection(parse *p) {
  frame *f = &p->stack[--p->depth];
  free(f->key); /* libyaml gives every key a value, even an empty one: NULL here */
  f->key = NULL;
}

static int on_scalar(parse *p, const yaml_event_t *e) {
  const char *s = (const char *)e->data.scalar.value;
  size_t n = e->data.scalar.length;
  char b[64];
  if (e->data.scalar.anchor)
    return fail_at(p, e->start_mark, "anchors are not supported (found '&%s')",
                   shown((const char *)e->data.scalar.anchor,
                         strlen((const char *)e->data.scalar.anchor), b, sizeof b));
  if (memchr(s, '\0', n))
    return fail_at(p, e->start_mark, "a NUL character cannot be held (in '%s')",
                   shown(s, n, b, sizeof b));
  scalar_kind k = K_STRING;
  int rc = scalar_resolve(p, e, &k);
  if (rc) return rc;
  if (p->depth == 0) {
    /* An empty document (a stray "---", or only comments) holds nothing. */
    if (k == K_NULL && n == 0 && e->data.scalar.tag == NULL) return 0;
    return fail_at(p, e->start_mark,
                   "a document must be a mapping (a resource) or a sequence of mappings, "
                   "not a scalar");
  }
  frame *f = &p->stack[p->depth - 1];
  if (cJSON_IsObject(f->node) && f->key == NULL) {
    if (keys_has(&p->keys, s, f->map))
      return fail_at(p, e->start_mark, "duplicate key '%s'", shown(s, n, b, sizeof b));
    if ((f->key = malloc(n + 1)) == NULL) return -ENOMEM;
    memcpy(f->key, s, n + 1);
    return 0;
  }
  cJSON *node = NULL;
  if ((rc = scalar_node(p, e, k, &node))) return rc;
  return attach(p, node, e->start_mark);
}

/* ---------------------------------------------------------------- documents */

/* Appends one resource to the output. Takes node, also on failure. */
static int add_resource(parse *p, cJSON *node) {
  if (p->n_out == RES_MAX_DOCS) {
    cJSON_Delete(node);
    return fail_at(p, p->root_mark, "more than %d resources", RES_MAX_DOCS);
  }
  cJSON_AddItemToArray(p->out, node);
  p->n_out++;
  return 0;
}

/* Moves every item of the array src into the output. */
static int add_all(parse *p, cJSON *src) {
  cJSON *c;
  while ((c = cJSON_DetachItemFromArray(src, 0))) {
    int rc = add_resource(p, c);
    if (rc) return rc;
  }
  return 0;
}

static bool is_list(const cJSON *root) {
  const cJSON *kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
  return cJSON_IsString(kind) && strcmp(kind->valuestring, "List") == 0;
}

/* The end of a document: its root becomes one resource, or several. */
static int end_document(parse *p) {
  cJSON *root = p->root;
  int rc = 0;
  p->root = NULL;
  keys_clear(&p->keys);
  if (root == NULL) return 0;
  if (cJSON_IsArray(root)) {
    rc = add_all(p, root); /* attach() let only mappings in */
  } else if (!is_list(root)) {
    return add_resource(p, root);
  } else {
    cJSON *items = cJSON_GetObjectItemCaseSensitive(root, "items");
    if (p->bad_item)
      rc = fail_at(p, p->bad_item_mark, "items[%zu] of a List is a %s, not a mapping (a resource)",
                   p->bad_item_index, p->bad_item_what);
    else if (cJSON_IsArray(items))
      rc = add_all(p, items);
    else if (!cJSON_IsNull(items))
      rc = fail_at(p, p->root_mark, "a List must have an 'items' sequence");
  }
  cJSON_Delete(root);
  return rc;
}

/* ---------------------------------------------------------------- driving libyaml */

/* Turns a libyaml error into ours. Reader errors (bad encoding, control
 * characters) come with a byte offset instead of a mark: count lines and
 * characters up to it (as UTF-8; in UTF-16 input the column is only
 * approximate). */
static int yaml_fail(parse *p, const yaml_parser_t *yp) {
  if (yp->error == YAML_MEMORY_ERROR) return fail_bare(p->err, -ENOMEM, "out of memory");
  const char *problem = yp->problem ? yp->problem : "invalid YAML";
  if (yp->error == YAML_READER_ERROR) {
    yaml_mark_t m = {0};
    size_t end = yp->problem_offset < p->len ? yp->problem_offset : p->len;
    for (size_t i = 0; i < end; i++) {
      unsigned char c = (unsigned char)p->text[i];
      if (c == '\n' || (c == '\r' && (i + 1 >= p->len || p->text[i + 1] != '\n'))) {
        m.line++;
        m.column = 0;
      } else if ((c & 0xc0) != 0x80 && c != '\r') {
        m.column++;
      }
    }
    if (yp->problem_value != -1)
      return fail_at(p, m, "%s (0x%x)", problem, (unsigned)yp->problem_value);
    return fail_at(p, m, "%s", problem);
  }
  /* libyaml refuses the surrogate pairs that JSON encoders write for
   * characters beyond U+FFFF: say what to write instead. */
  const char *hint = strstr(problem, "Unicode character escape")
                         ? "; JSON surrogate pairs (\\ud83d\\ude00) are not supported, write "
                           "the character or \\U0001F600"
                         : "";
  if (yp->context)
    return fail_at(p, yp->problem_mark, "%s (%s at line %d, column %d)%s", problem, yp->context,
                   one_based(yp->context_mark.line), one_based(yp->context_mark.column), hint);
  return fail_at(p, yp->problem_mark, "%s%s", problem, hint);
}

static int on_event(parse *p, const yaml_event_t *e) {
  char b[64];
  switch (e->type) {
  case YAML_DOCUMENT_START_EVENT:
    if (++p->docs > RES_MAX_DOCS)
      return fail_at(p, e->start_mark, "more than %d documents", RES_MAX_DOCS);
    p->bad_item = false;
    return 0;
  case YAML_DOCUMENT_END_EVENT:
    return end_document(p);
  case YAML_MAPPING_START_EVENT:
    return open_collection(p, e, true);
  case YAML_SEQUENCE_START_EVENT:
    return open_collection(p, e, false);
  case YAML_MAPPING_END_EVENT:
  case YAML_SEQUENCE_END_EVENT:
    close_collection(p);
    return 0;
  case YAML_SCALAR_EVENT:
    return on_scalar(p, e);
  case YAML_ALIAS_EVENT:
    return fail_at(p, e->start_mark, "aliases are not supported (found '*%s')",
                   shown((const char *)e->data.alias.anchor,
                         strlen((const char *)e->data.alias.anchor), b, sizeof b));
  default:
    return 0;
  }
}

int res_parse(const char *text, size_t len, cJSON **out, res_err *err) {
  parse p = {.text = text, .len = len, .err = err};
  yaml_parser_t yp;
  yaml_event_t e;
  int rc = 0;
  *out = NULL;
  if (err) *err = (res_err){0};
  if (text == NULL && len > 0) return fail_bare(err, -EINVAL, "no text");
  if ((p.out = cJSON_CreateArray()) == NULL) return fail_bare(err, -ENOMEM, "out of memory");
  if (!yaml_parser_initialize(&yp)) {
    cJSON_Delete(p.out);
    return fail_bare(err, -ENOMEM, "out of memory");
  }
  yaml_parser_set_input_string(&yp, (const unsigned char *)(text ? text : ""), len);
  for (bool end = false; !end && rc == 0;) {
    if (!yaml_parser_parse(&yp, &e)) {
      rc = yaml_fail(&p, &yp);
      break;
    }
    rc = on_event(&p, &e);
    end = e.type == YAML_STREAM_END_EVENT;
    yaml_event_delete(&e);
  }
  yaml_parser_delete(&yp);
  while (p.depth > 0) close_collection(&p);
  cJSON_Delete(p.root);
  keys_clear(&p.keys);
  if (rc) {
    if (rc == -ENOMEM && err && err->msg[0] == '\0') fail_bare(err, rc, "out of memory");
    cJSON_Delete(p.out);
    return rc;
  }
  *out = p.out;
  return 0;
}

/* ---------------------------------------------------------------- files */

/* Reads the whole file behind fd, refusing more than max_bytes (0: any).
 * On success *buf (owned by the caller) holds *len bytes. */
static int read_all(int fd, size_t max_bytes, char **buf, size_t *len) {
  size_t limit = max_bytes ? max_bytes : SIZE_MAX - 1, cap = 4096, n = 0;
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0) {
    if ((uintmax_t)st.st_size > limit) return -EFBIG;
    cap = (size_t)st.st_size + 1; /* +1: meet end of file without growing */
  }
  char *b = malloc(cap);
  if (b == NULL) return -ENOMEM;
  for (;;) {
    if (n == cap) {
      size_t ncap = cap > limit / 2 ? limit + 1 : 2 * cap;
      char *nb = realloc(b, ncap);
      if (nb == NULL) {
        free(b);
        return -ENOMEM;
      }
      b = nb;
      cap = ncap;
    }
    ssize_t r = read(fd, b + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int rc = -errno;
      free(b);
      return rc;
    }
    if (r == 0) break;
    n += (size_t)r;
    /* The file may have grown since fstat, or not be a regular file. */
    if (n > limit) {
      free(b);
      return -EFBIG;
    }
  }
  *buf = b;
  *len = n;
  return 0;
}

int res_load_file(const char *path, size_t max_bytes, cJSON **out, res_err *err) {
  char why[128], *buf = NULL;
  size_t len = 0;
  *out = NULL;
  if (err) *err = (res_err){0};
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int rc = -errno;
    if (strerror_r(-rc, why, sizeof why) != 0) snprintf(why, sizeof why, "error %d", -rc);
    return fail_bare(err, rc, "cannot open '%s': %s", path, why);
  }
  int rc = read_all(fd, max_bytes, &buf, &len);
  close(fd);
  if (rc == -EFBIG) return fail_bare(err, rc, "'%s' is larger than %zu bytes", path, max_bytes);
  if (rc) {
    if (strerror_r(-rc, why, sizeof why) != 0) snprintf(why, sizeof why, "error %d", -rc);
    return fail_bare(err, rc, "cannot read '%s': %s", path, why);
  }
  rc = res_parse(buf, len, out, err);
  free(buf);
  return rc;
}

/* ---------------------------------------------------------------- reading */

/* The child of node named by the segment s[0..n): a member of an object, or
 * the item of an array at a decimal index. */
static const cJSON *child(const cJSON *node, const char *s, size_t n) {
  if (cJSON_IsObject(node)) {
    for (const cJSON *c = node->child; c; c = c->next)
      if (c->string && strncmp(c->string, s, n) == 0 && c->string[n] == '\0') return c;
    return NULL;
  }
  if (!cJSON_IsArray(node) || n == 0 || n > 9 || digits(s, n, 0) != n) return NULL;
  int i = 0;
  for (size_t k = 0; k < n; k++) i = i * 10 + (s[k] - '0');
  return cJSON_GetArrayItem(node, i);
}

const cJSON *res_get(const cJSON *obj, const char *dotted_path) {
  if (obj == NULL || dotted_path == NULL || *dotted_path == '\0') return NULL;
  const char *s = dotted_path;
  for (;;) {
    const char *dot = strchr(s, '.');
    size_t n = dot ? (size_t)(dot - s) : strlen(s);
    if (n == 0 || (obj = child(obj, s, n)) == NULL) return NULL;
    if (dot == NULL) return obj;
    s = dot + 1;
  }
}

const cJSON *res_get_key(const cJSON *obj, const char *key) {
  if (!cJSON_IsObject(obj) || key == NULL) return NULL;
  return cJSON_GetObjectItemCaseSensitive(obj, key);
}

const char *res_str(const cJSON *obj, const char *dotted_path) {
  const cJSON *node = res_get(obj, dotted_path);
  return cJSON_IsString(node) ? node->valuestring : NULL;
}

bool res_is(const cJSON *obj, const char *api_group, const char *kind) {
  const cJSON *k = res_get_key(obj, "kind");
  if (kind == NULL || !cJSON_IsString(k) || strcmp(k->valuestring, kind) != 0) return false;
  if (api_group == NULL) return true;
  const cJSON *v = res_get_key(obj, "apiVersion");
  if (!cJSON_IsString(v)) return false;
  const char *av = v->valuestring, *version = av;
  size_t g = strlen(api_group);
  if (g > 0) {
    if (strncmp(av, api_group, g) != 0 || av[g] != '/') return false;
    version = av + g + 1;
  }
  return *version != '\0' && strchr(version, '/') == NULL;
}

bool res_valid_dns_label(const char *s, size_t n) {
  if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-') return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
      return false;
  return true;
}

bool res_valid_dns_subdomain(const char *s, size_t n) {
  if (n == 0 || n > 253) return false;
  for (size_t start = 0, i = 0; i <= n; i++) {
    if (i < n && s[i] != '.') continue;
    if (!res_valid_dns_label(s + start, i - start)) return false;
    start = i + 1;
  }
  return true;
}

/* ISO-8601 durations, read by hand: strtod would also take hex ("PT0x10S"),
 * exponents ("PT1e3S") and the locale's decimal sign. Components come in
 * ISO order, each at most once (weeks, days, then after T hours, minutes,
 * seconds); only the last may have a fraction, with '.' or ','. Integers
 * throughout, so that PT0.2S is exactly 200. */
int res_duration_ms(const char *s, int64_t *ms) {
  static const char date_units[] = "WD", time_units[] = "HMS";
  static const int64_t date_ms[] = {7 * 86400000LL, 86400000LL};
  static const int64_t time_ms[] = {3600000LL, 60000LL, 1000LL};
  if (!s || *s != 'P') return -EINVAL;
  const char *p = s + 1;
  bool time = false, any = false;
  size_t next = 0; /* the first unit still allowed in this part */
  int64_t total = 0;
  while (*p) {
    if (*p == 'T') {
      if (time || !p[1]) return -EINVAL;
      time = true;
      next = 0;
      p++;
      continue;
    }
    const char *digits = p;
    int64_t whole = 0, frac = 0, scale = 1;
    for (; *p >= '0' && *p <= '9'; p++) {
      if (whole > (INT64_MAX - 9) / 10) return -EINVAL;
      whole = whole * 10 + (*p - '0');
    }
    if (p == digits) return -EINVAL;
    bool fraction = *p == '.' || *p == ',';
    if (fraction) {
      const char *f = ++p;
      for (; *p >= '0' && *p <= '9'; p++)
        if (scale < 1000000000LL) { /* digits past the ninth cannot matter */
          frac = frac * 10 + (*p - '0');
          scale *= 10;
        }
      if (p == f) return -EINVAL;
    }
    const char *units = time ? time_units : date_units;
    const char *u = *p ? strchr(units + next, *p) : NULL;
    if (!u) return -EINVAL; /* Y and months (no fixed length), or out of order */
    size_t k = (size_t)(u - units);
    int64_t unit = time ? time_ms[k] : date_ms[k];
    next = k + 1;
    if (fraction && p[1]) return -EINVAL;
    if (whole > (INT64_MAX - total) / unit) return -EINVAL;
    total += whole * unit;
    /* frac < scale <= 1e9 and unit < 1e9: the product fits. Half rounds up. */
    int64_t part = (frac * unit + scale / 2) / scale;
    if (part > INT64_MAX - total) return -EINVAL;
    total += part;
    any = true;
    p++;
  }
  if (!any) return -EINVAL;
  *ms = total;
  return 0;
}
