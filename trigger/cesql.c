/*
 * cesql.c — CESQL 1.0.0: a hand-written lexer and recursive-descent parser
 * that build a small tree in one memory pool per expression, and an
 * evaluator that walks it with values borrowed from the tree and the event.
 * Strings built during an evaluation (CONCAT, LOWER, numbers as text) go to
 * a pool that starts on the stack, so the usual filters never call malloc.
 * The semantics and the choices made where the specification is silent are
 * listed in cesql.h.
 */
#include "trigger/cesql.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- UTF-8 */

/* Decodes one well-formed UTF-8 sequence at p (before end) into *cp and
 * returns its length; returns 0 for anything else (overlong forms,
 * surrogates, truncation, stray continuation bytes). */
static size_t utf8_decode(const unsigned char *p, const unsigned char *end, uint32_t *cp) {
  unsigned char c = p[0];
  size_t n;
  uint32_t v, min;
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF)
    n = 2, v = c & 0x1Fu, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF)
    n = 3, v = c & 0x0Fu, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4)
    n = 4, v = c & 0x07u, min = 0x10000;
  else
    return 0;
  if ((size_t)(end - p) < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (p[i] & 0x3Fu);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return n;
}

/* The byte length of the character starting at s[0] (left > 0 bytes remain).
 * Strings reaching the evaluator are UTF-8, but a stray byte is taken as one
 * character rather than trusted, so no loop can overrun or stall. */
static size_t utf8_step(const char *s, size_t left) {
  unsigned char c = (unsigned char)s[0];
  size_t n = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  return n <= left ? n : 1;
}

static size_t utf8_count(const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i += utf8_step(s + i, len - i)) n++;
  return n;
}

/* The byte offset just past the first `chars` characters of s (or len). */
static size_t utf8_skip(const char *s, size_t len, size_t chars) {
  size_t i = 0;
  while (chars-- > 0 && i < len) i += utf8_step(s + i, len - i);
  return i;
}

/* Unicode's White_Space property, which TRIM removes. */
static bool is_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

/* ---------------------------------------------------------------- memory pool */

/* Bump allocation in chunks, all freed at once: the tree of an expression
 * lives in one pool, and so do the strings of one evaluation. */
typedef struct chunk {
  struct chunk *next;
  size_t cap, used;
  max_align_t data[]; /* cap bytes */
} chunk;

typedef struct pool {
  chunk *head;
  unsigned char *first; /* optional caller buffer used before any chunk */
  size_t first_cap, first_used;
  size_t total, limit; /* bytes handed out; the most allowed (0: no limit) */
  bool over, oom;      /* an allocation failed: past the limit, or malloc */
} pool;

enum { CHUNK_MIN = 4096 };

static void *pool_alloc(pool *p, size_t n) {
  const size_t a = sizeof(max_align_t);
  if (n > SIZE_MAX / 2) {
    p->over = true;
    return NULL;
  }
  n = n ? (n + a - 1) / a * a : a;
  if (p->limit && (n > p->limit || p->total > p->limit - n)) {
    p->over = true;
    return NULL;
  }
  void *r;
  if (p->first && p->first_cap - p->first_used >= n) {
    r = p->first + p->first_used;
    p->first_used += n;
  } else if (p->head && p->head->cap - p->head->used >= n) {
    r = (unsigned char *)p->head->data + p->head->used;
    p->head->used += n;
  } else {
    size_t cap = n > CHUNK_MIN ? n : CHUNK_MIN;
    chunk *c = malloc(sizeof *c + cap);
    if (!c) {
      p->oom = true;
      return NULL;
    }
    c->next = p->head;
    c->cap = cap;
    c->used = n;
    p->head = c;
    r = c->data;
  }
  p->total += n;
  return r;
}

static void pool_cleanup(pool *p) {
  for (chunk *c = p->head, *next; c; c = next) {
    next = c->next;
    free(c);
  }
  p->head = NULL;
}

/* ---------------------------------------------------------------- the tree */

typedef enum nkind {
  K_INT,
  K_BOOL,
  K_STR,
  K_ATTR,   /* s: the name */
  K_EXISTS, /* s: the name */
  K_NOT,    /* kids[0] */
  K_NEG,    /* kids[0] */
  K_CHAIN,  /* kids[0] op[1] kids[1] op[2] kids[2]...: one precedence level, left to right */
  K_LIKE,   /* kids[0], pat */
  K_IN,     /* kids[0] IN (kids[1..n)) */
  K_CALL,   /* fn(kids[0..n)) */
} nkind;

typedef enum op {
  OP_MUL,
  OP_DIV,
  OP_MOD,
  OP_ADD,
  OP_SUB,
  OP_EQ,
  OP_NE,
  OP_LT,
  OP_LE,
  OP_GT,
  OP_GE,
  OP_AND,
  OP_OR,
  OP_XOR,
} op;

typedef enum fnid {
  F_LENGTH,
  F_CONCAT,
  F_CONCAT_WS,
  F_LOWER,
  F_UPPER,
  F_TRIM,
  F_LEFT,
  F_RIGHT,
  F_SUBSTRING,
  F_ABS,
  F_INT,
  F_BOOL,
  F_STRING,
  F_IS_INT,
  F_IS_BOOL,
} fnid;

/* The built-in functions: name, arity (max -1: variadic) and result type. */
static const struct fninfo {
  const char *name;
  int min, max;
  cesql_type ret;
} fns[] = {
    [F_LENGTH] = {"LENGTH", 1, 1, CESQL_INT},
    [F_CONCAT] = {"CONCAT", 0, -1, CESQL_STRING},
    [F_CONCAT_WS] = {"CONCAT_WS", 1, -1, CESQL_STRING},
    [F_LOWER] = {"LOWER", 1, 1, CESQL_STRING},
    [F_UPPER] = {"UPPER", 1, 1, CESQL_STRING},
    [F_TRIM] = {"TRIM", 1, 1, CESQL_STRING},
    [F_LEFT] = {"LEFT", 2, 2, CESQL_STRING},
    [F_RIGHT] = {"RIGHT", 2, 2, CESQL_STRING},
    [F_SUBSTRING] = {"SUBSTRING", 2, 3, CESQL_STRING},
    [F_ABS] = {"ABS", 1, 1, CESQL_INT},
    [F_INT] = {"INT", 1, 1, CESQL_INT},
    [F_BOOL] = {"BOOL", 1, 1, CESQL_BOOL},
    [F_STRING] = {"STRING", 1, 1, CESQL_STRING},
    [F_IS_INT] = {"IS_INT", 1, 1, CESQL_BOOL},
    [F_IS_BOOL] = {"IS_BOOL", 1, 1, CESQL_BOOL},
};
#define N_FNS (sizeof fns / sizeof fns[0])

/* One element of a compiled LIKE pattern: a literal character (its UTF-8
 * bytes), _ or %. */
typedef struct lpat {
  enum { LP_CHAR, LP_ONE, LP_ANY } kind;
  uint8_t n;
  char c[4];
} lpat;

typedef struct node node;
struct node {
  nkind kind;
  int depth;     /* levels below: 0 for a leaf */
  bool negated;  /* K_LIKE, K_IN: NOT LIKE, NOT IN */
  fnid fn;       /* K_CALL */
  int32_t i;     /* K_INT */
  bool b;        /* K_BOOL */
  const char *s; /* K_STR: the value; K_ATTR, K_EXISTS: the name; NUL-terminated */
  size_t len;    /* bytes of s */
  node **kids;
  uint8_t *ops; /* K_CHAIN: ops[k] (k >= 1) joins the result so far with kids[k] */
  size_t n;     /* number of kids */
  lpat *pat;    /* K_LIKE */
  size_t npat;
};

struct cesql_expr {
  pool mem;
  node *root;
};

/* ---------------------------------------------------------------- lexer */

typedef enum tok {
  T_END,
  T_INT,
  T_STR,
  T_WORD,
  T_LP,
  T_RP,
  T_COMMA,
  T_PLUS,
  T_MINUS,
  T_STAR,
  T_SLASH,
  T_PCT,
  T_EQ,
  T_NE,
  T_LT,
  T_LE,
  T_GT,
  T_GE,
} tok;

typedef struct token {
  tok kind;
  size_t start, end; /* byte offsets in the text */
  uint64_t mag;      /* T_INT: the digits' value, saturated past 2^31 */
} token;

typedef struct parser {
  const char *text;
  size_t len;
  size_t pos; /* next byte to lex */
  token t;    /* the current token */
  pool *mem;
  cesql_err *err;
  bool failed;
  int depth; /* nesting of parentheses, calls, sets and prefix operators */
} parser;

/* Records the first error at byte offset `at` and returns NULL, so that
 * parse functions can `return fail(...)`. */
static void *fail(parser *p, int code, size_t at, const char *fmt, ...) {
  if (p->failed) return NULL;
  p->failed = true;
  if (!p->err) return NULL;
  int position = 1;
  for (size_t i = 0; i < at && i < p->len; i++)
    if (((unsigned char)p->text[i] & 0xC0) != 0x80) position++;
  p->err->code = code;
  p->err->position = position;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
  va_end(ap);
  return NULL;
}

static bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* The end of the string literal opening at i, or 0 when it is not closed.
 * A backslash takes the next byte with it, so \' does not end a '...'
 * string; a quote byte never occurs inside a multi-byte character. */
static size_t string_end(const char *s, size_t i, size_t n) {
  for (size_t j = i + 1; j < n; j++) {
    if (s[j] == '\\' && j + 1 < n)
      j++;
    else if (s[j] == s[i])
      return j + 1;
  }
  return 0;
}

/* A run of letters, digits and '_' at t->start: an integer when all digits
 * (its value saturated just past 2^31), else a word. */
static void word(const char *s, size_t n, token *t) {
  bool digits = true;
  uint64_t mag = 0;
  size_t j = t->start;
  for (; j < n && is_word_char(s[j]); j++) {
    if (s[j] < '0' || s[j] > '9')
      digits = false;
    else if (mag <= (uint64_t)INT32_MAX + 1)
      mag = mag * 10 + (uint64_t)(s[j] - '0');
  }
  t->kind = digits ? T_INT : T_WORD;
  t->end = j;
  t->mag = mag;
}

/* Reads the next token into p->t. Returns false on a lexical error. */
static bool lex(parser *p) {
  static const char singles[] = "(),+-*/%=";
  static const tok single_kinds[] = {T_LP,   T_RP,    T_COMMA, T_PLUS, T_MINUS,
                                     T_STAR, T_SLASH, T_PCT,   T_EQ};
  const char *s = p->text;
  size_t i = p->pos, n = p->len;
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++;
  token t = {.kind = T_END, .start = i, .end = i};
  char c = i < n ? s[i] : '\0', next = i + 1 < n ? s[i + 1] : '\0';
  const char *single = c ? strchr(singles, c) : NULL;
  if (i >= n) {
    /* T_END */
  } else if (single) {
    t.kind = single_kinds[single - singles];
    t.end = i + 1;
  } else if (c == '<' || c == '>' || (c == '!' && next == '=')) {
    bool two = next == '=' || (c == '<' && next == '>');
    t.kind = c == '!' || (c == '<' && next == '>') ? T_NE
             : c == '<'                            ? (two ? T_LE : T_LT)
                                                   : (two ? T_GE : T_GT);
    t.end = i + (two ? 2 : 1);
  } else if (c == '\'' || c == '"') {
    if (!(t.end = string_end(s, i, n))) return fail(p, -EINVAL, i, "unterminated string"), false;
    t.kind = T_STR;
  } else if (is_word_char(c)) {
    word(s, n, &t);
  } else {
    if ((unsigned char)c >= 0x80)
      fail(p, -EINVAL, i, "unexpected character (only ASCII outside strings)");
    else if (c >= 0x21 && c < 0x7F)
      fail(p, -EINVAL, i, "unexpected character '%c'", c);
    else
      fail(p, -EINVAL, i, "unexpected control character 0x%02x", (unsigned)(unsigned char)c);
    return false;
  }
  p->t = t;
  p->pos = t.end;
  return true;
}

/* True when the current token is the word w (ASCII, any case). */
static bool is_word(const parser *p, const char *w) {
  size_t n = p->t.end - p->t.start;
  if (p->t.kind != T_WORD || strlen(w) != n) return false;
  for (size_t i = 0; i < n; i++) {
    char c = p->text[p->t.start + i];
    if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    if (c != w[i]) return false;
  }
  return true;
}

static const char *const keywords[] = {"AND", "OR",   "XOR",   "NOT",   "LIKE",
                                       "IN",  "TRUE", "FALSE", "EXISTS"};

static bool is_keyword(const parser *p) {
  for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
    if (is_word(p, keywords[i])) return true;
  return false;
}

/* Describes the current token for an error message. */
static const char *describe(const parser *p, char *buf, size_t size) {
  size_t n = p->t.end - p->t.start;
  if (p->t.kind == T_END) return "end of expression";
  if (p->t.kind == T_STR) return "a string";
  snprintf(buf, size, "'%.*s'", n > 32 ? 32 : (int)n, p->text + p->t.start);
  return buf;
}

static void *unexpected(parser *p, const char *wanted) {
  char buf[48];
  if (wanted)
    return fail(p, -EINVAL, p->t.start, "%s expected, found %s", wanted,
                describe(p, buf, sizeof buf));
  return fail(p, -EINVAL, p->t.start, "unexpected %s", describe(p, buf, sizeof buf));
}

/* ---------------------------------------------------------------- parser */

static node *parse_expr(parser *p);

static node *new_node(parser *p, nkind k, size_t n_kids) {
  node *n = pool_alloc(p->mem, sizeof *n);
  if (!n) return fail(p, -ENOMEM, 0, "out of memory");
  memset(n, 0, sizeof *n);
  n->kind = k;
  if (n_kids) {
    n->kids = pool_alloc(p->mem, n_kids * sizeof *n->kids);
    if (!n->kids) return fail(p, -ENOMEM, 0, "out of memory");
    n->n = n_kids;
  }
  return n;
}

/* Records that n now has child kid, failing at `at` when the tree gets
 * deeper than CESQL_MAX_DEPTH (which bounds the evaluator's recursion). */
static bool adopt(parser *p, node *n, size_t i, node *kid, size_t at) {
  n->kids[i] = kid;
  if (kid->depth + 1 > n->depth) n->depth = kid->depth + 1;
  if (n->depth > CESQL_MAX_DEPTH) {
    fail(p, -EINVAL, at, "expression nested too deeply (more than %d levels)", CESQL_MAX_DEPTH);
    return false;
  }
  return true;
}

/* Entering a nested construct at byte `at`; false when too deep. Bounds the
 * parser's own recursion before any node exists ("((((((..."). */
static bool enter(parser *p, size_t at) {
  if (++p->depth <= CESQL_MAX_DEPTH) return true;
  fail(p, -EINVAL, at, "expression nested too deeply (more than %d levels)", CESQL_MAX_DEPTH);
  return false;
}

/* The value of the string literal token t: the text between the quotes with
 * \' (or \" in "...") turned into the quote. NUL-terminated, in the pool. */
static char *string_value(parser *p, const token *t, size_t *len) {
  const char *s = p->text + t->start;
  char q = s[0];
  size_t raw = t->end - t->start - 2;
  char *out = pool_alloc(p->mem, raw + 1);
  if (!out) return fail(p, -ENOMEM, 0, "out of memory");
  size_t o = 0;
  for (size_t i = 1; i <= raw; i++) {
    if (s[i] == '\\' && i + 1 <= raw) {
      if (s[i + 1] != q) out[o++] = s[i];
      out[o++] = s[++i];
    } else {
      out[o++] = s[i];
    }
  }
  out[o] = '\0';
  *len = o;
  return out;
}

/* Turns a LIKE pattern into elements: \% and \_ are the characters, other
 * backslashes ordinary characters, and runs of % one element. */
static bool compile_like(parser *p, node *n, const char *s, size_t len) {
  n->pat = pool_alloc(p->mem, (len ? len : 1) * sizeof *n->pat);
  if (!n->pat) return fail(p, -ENOMEM, 0, "out of memory"), false;
  size_t k = 0;
  for (size_t i = 0; i < len;) {
    lpat *e = &n->pat[k];
    if (s[i] == '%') {
      i++;
      if (k > 0 && n->pat[k - 1].kind == LP_ANY) continue;
      e->kind = LP_ANY;
    } else if (s[i] == '_') {
      i++;
      e->kind = LP_ONE;
    } else {
      if (s[i] == '\\' && i + 1 < len && (s[i + 1] == '%' || s[i + 1] == '_')) i++;
      size_t step = utf8_step(s + i, len - i);
      e->kind = LP_CHAR;
      e->n = (uint8_t)step;
      memcpy(e->c, s + i, step);
      i += step;
    }
    k++;
  }
  n->npat = k;
  return true;
}

static node *parse_call(parser *p, const token *name) {
  char up[16];
  size_t len = name->end - name->start;
  const struct fninfo *f = NULL;
  if (len < sizeof up) {
    for (size_t i = 0; i < len; i++) {
      char c = p->text[name->start + i];
      up[i] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
    }
    up[len] = '\0';
    for (size_t i = 0; i < N_FNS && !f; i++)
      if (strcmp(up, fns[i].name) == 0) f = &fns[i];
  }
  if (!f)
    return fail(p, -EINVAL, name->start, "unknown function '%.*s'", len > 32 ? 32 : (int)len,
                p->text + name->start);
  if (!enter(p, p->t.start) || !lex(p)) return NULL; /* past '(' */

  /* Arguments go to a scratch array grown in the pool: its old copies are
   * wasted, which at most doubles a bounded amount. */
  node **args = NULL;
  size_t n = 0, cap = 0;
  if (p->t.kind != T_RP) {
    for (;;) {
      node *a = parse_expr(p);
      if (!a) return NULL;
      if (n == cap) {
        node **grown = pool_alloc(p->mem, (cap = cap ? cap * 2 : 4) * sizeof *grown);
        if (!grown) return fail(p, -ENOMEM, 0, "out of memory");
        if (n) memcpy(grown, args, n * sizeof *args);
        args = grown;
      }
      args[n++] = a;
      if (p->t.kind != T_COMMA) break;
      if (!lex(p)) return NULL;
    }
  }
  if (p->t.kind != T_RP) return unexpected(p, "',' or ')'");
  if ((int)n < f->min || (f->max >= 0 && (int)n > f->max)) {
    if (f->max < 0)
      return fail(p, -EINVAL, name->start, "%s takes at least %d argument%s, not %zu", f->name,
                  f->min, f->min == 1 ? "" : "s", n);
    if (f->min != f->max)
      return fail(p, -EINVAL, name->start, "%s takes %d to %d arguments, not %zu", f->name, f->min,
                  f->max, n);
    return fail(p, -EINVAL, name->start, "%s takes %d argument%s, not %zu", f->name, f->min,
                f->min == 1 ? "" : "s", n);
  }
  p->depth--;
  if (!lex(p)) return NULL;
  node *c = new_node(p, K_CALL, n);
  if (!c) return NULL;
  c->fn = (fnid)(f - fns);
  for (size_t i = 0; i < n; i++)
    if (!adopt(p, c, i, args[i], name->start)) return NULL;
  return c;
}

/* An attribute name after EXISTS or as a value: [a-z0-9]+. */
static node *parse_name(parser *p, nkind k) {
  size_t len = p->t.end - p->t.start;
  const char *s = p->text + p->t.start;
  if (p->t.kind != T_WORD || is_keyword(p)) return unexpected(p, "an attribute name");
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
      return fail(p, -EINVAL, p->t.start,
                  "'%.*s' is not an attribute name (lower-case letters and digits only)",
                  len > 32 ? 32 : (int)len, s);
  node *n = new_node(p, k, 0);
  char *name = pool_alloc(p->mem, len + 1);
  if (!n || !name) return fail(p, -ENOMEM, 0, "out of memory");
  memcpy(name, s, len);
  name[len] = '\0';
  n->s = name;
  n->len = len;
  return lex(p) ? n : NULL;
}

static node *parse_primary(parser *p) {
  token t = p->t;
  node *n;
  switch (t.kind) {
  case T_INT:
    if (t.mag > INT32_MAX) return fail(p, -EINVAL, t.start, "integer out of 32-bit range");
    if (!(n = new_node(p, K_INT, 0))) return NULL;
    n->i = (int32_t)t.mag;
    return lex(p) ? n : NULL;
  case T_STR:
    if (!(n = new_node(p, K_STR, 0))) return NULL;
    if (!(n->s = string_value(p, &t, &n->len))) return NULL;
    return lex(p) ? n : NULL;
  case T_LP:
    if (!enter(p, t.start) || !lex(p) || !(n = parse_expr(p))) return NULL;
    if (p->t.kind != T_RP) return unexpected(p, "')'");
    p->depth--;
    return lex(p) ? n : NULL;
  case T_WORD:
    if (is_word(p, "TRUE") || is_word(p, "FALSE")) {
      if (!(n = new_node(p, K_BOOL, 0))) return NULL;
      n->b = is_word(p, "TRUE");
      return lex(p) ? n : NULL;
    }
    if (is_word(p, "EXISTS")) return lex(p) ? parse_name(p, K_EXISTS) : NULL;
    if (is_keyword(p)) return unexpected(p, NULL);
    /* A word followed by '(' calls a function. */
    size_t save = p->pos;
    if (!lex(p)) return NULL;
    if (p->t.kind == T_LP) return parse_call(p, &t);
    p->pos = save;
    p->t = t;
    return parse_name(p, K_ATTR);
  default:
    return unexpected(p, "an expression");
  }
}

/* NOT and unary minus. A sign written against the digits is part of the
 * integer literal (so -2147483648 is in range); elsewhere '-' negates. */
static node *parse_unary(parser *p) {
  token t = p->t;
  bool is_not = is_word(p, "NOT");
  if (!is_not && t.kind != T_MINUS && t.kind != T_PLUS) return parse_primary(p);
  if (!lex(p)) return NULL;
  if (!is_not && p->t.kind == T_INT && p->t.start == t.end) {
    uint64_t max = t.kind == T_MINUS ? (uint64_t)INT32_MAX + 1 : INT32_MAX;
    if (p->t.mag > max) return fail(p, -EINVAL, t.start, "integer out of 32-bit range");
    node *n = new_node(p, K_INT, 0);
    if (!n) return NULL;
    n->i = t.kind == T_MINUS ? (int32_t)(-(int64_t)p->t.mag) : (int32_t)p->t.mag;
    return lex(p) ? n : NULL;
  }
  if (t.kind == T_PLUS) return fail(p, -EINVAL, t.start, "'+' is not a unary operator");
  if (!enter(p, t.start)) return NULL;
  node *kid = parse_unary(p);
  if (!kid) return NULL;
  p->depth--;
  node *n = new_node(p, is_not ? K_NOT : K_NEG, 1);
  return n && adopt(p, n, 0, kid, t.start) ? n : NULL;
}

/* [NOT] LIKE 'pattern' and [NOT] IN (set), applied in the order written. */
static node *parse_postfix(parser *p) {
  node *left = parse_unary(p);
  while (left) {
    token t = p->t;
    bool negated = false;
    size_t save = p->pos;
    if (is_word(p, "NOT")) {
      if (!lex(p)) return NULL;
      if (!is_word(p, "LIKE") && !is_word(p, "IN")) {
        /* Not ours: let the caller report "NOT" where it stands. */
        p->pos = save;
        p->t = t;
        return left;
      }
      negated = true;
    }
    node *n;
    if (is_word(p, "LIKE")) {
      if (!lex(p)) return NULL;
      if (p->t.kind != T_STR) return unexpected(p, "a string literal pattern after LIKE");
      size_t len;
      const char *pattern = string_value(p, &p->t, &len);
      if (!pattern || !(n = new_node(p, K_LIKE, 1)) || !adopt(p, n, 0, left, t.start) ||
          !compile_like(p, n, pattern, len) || !lex(p))
        return NULL;
    } else if (is_word(p, "IN")) {
      if (!lex(p)) return NULL;
      if (p->t.kind != T_LP) return unexpected(p, "'(' after IN");
      if (!enter(p, p->t.start) || !lex(p)) return NULL;
      node **set = NULL;
      size_t k = 0, cap = 0;
      for (;;) {
        node *e = parse_expr(p);
        if (!e) return NULL;
        if (k == cap) {
          node **grown = pool_alloc(p->mem, (cap = cap ? cap * 2 : 4) * sizeof *grown);
          if (!grown) return fail(p, -ENOMEM, 0, "out of memory");
          if (k) memcpy(grown, set, k * sizeof *set);
          set = grown;
        }
        set[k++] = e;
        if (p->t.kind != T_COMMA) break;
        if (!lex(p)) return NULL;
      }
      if (p->t.kind != T_RP) return unexpected(p, "',' or ')'");
      p->depth--;
      if (!lex(p) || !(n = new_node(p, K_IN, k + 1)) || !adopt(p, n, 0, left, t.start)) return NULL;
      for (size_t i = 0; i < k; i++)
        if (!adopt(p, n, i + 1, set[i], t.start)) return NULL;
    } else {
      return left;
    }
    n->negated = negated;
    left = n;
  }
  return NULL;
}

/* The operator of binary level `level` at the current token, or -1. Levels,
 * loosest first: 0 AND OR XOR, 1 comparisons, 2 + -, 3 * / %. */
static int binop(const parser *p, int level) {
  tok k = p->t.kind;
  switch (level) {
  case 0:
    return is_word(p, "AND") ? OP_AND : is_word(p, "OR") ? OP_OR : is_word(p, "XOR") ? OP_XOR : -1;
  case 1:
    return k == T_EQ   ? OP_EQ
           : k == T_NE ? OP_NE
           : k == T_LT ? OP_LT
           : k == T_LE ? OP_LE
           : k == T_GT ? OP_GT
           : k == T_GE ? OP_GE
                       : -1;
  case 2:
    return k == T_PLUS ? OP_ADD : k == T_MINUS ? OP_SUB : -1;
  default:
    return k == T_STAR ? OP_MUL : k == T_SLASH ? OP_DIV : k == T_PCT ? OP_MOD : -1;
  }
}

/* One binary level as a single chain node, so that "a OR b OR c ..." of any
 * length is one level deep rather than one level per operator. */
static node *parse_level(parser *p, int level) {
  node *first = level == 3 ? parse_postfix(p) : parse_level(p, level + 1);
  if (!first || binop(p, level) < 0) return first;
  node **kids = NULL;
  uint8_t *ops = NULL;
  size_t n = 0, cap = 0;
  node chain = {.kind = K_CHAIN};
  int o = -1;
  size_t at = p->t.start;
  for (node *kid = first; kid;) {
    if (n == cap) {
      cap = cap ? cap * 2 : 4;
      node **k2 = pool_alloc(p->mem, cap * sizeof *k2);
      uint8_t *o2 = pool_alloc(p->mem, cap);
      if (!k2 || !o2) return fail(p, -ENOMEM, 0, "out of memory");
      if (n) memcpy(k2, kids, n * sizeof *kids), memcpy(o2, ops, n);
      kids = k2, ops = o2;
    }
    chain.kids = kids;
    ops[n] = (uint8_t)(o < 0 ? 0 : o);
    if (!adopt(p, &chain, n++, kid, at)) return NULL;
    if ((o = binop(p, level)) < 0) break;
    at = p->t.start;
    if (!lex(p)) return NULL;
    kid = level == 3 ? parse_postfix(p) : parse_level(p, level + 1);
    if (!kid) return NULL;
  }
  node *c = new_node(p, K_CHAIN, 0);
  if (!c) return NULL;
  *c = chain;
  c->ops = ops;
  c->n = n;
  return c;
}

static node *parse_expr(parser *p) {
  return parse_level(p, 0);
}

/* ---------------------------------------------------------------- compile */

cesql_expr *cesql_expr_compile(const char *text, size_t len, cesql_err *err) {
  parser p = {.text = text ? text : "", .len = text ? len : 0, .err = err};
  if (err) memset(err, 0, sizeof *err);
  if (p.len > CESQL_MAX_TEXT) {
    fail(&p, -EINVAL, 0, "expression longer than %d bytes", CESQL_MAX_TEXT);
    if (err) err->position = 0; /* about the whole text */
    return NULL;
  }
  const unsigned char *u = (const unsigned char *)p.text;
  for (size_t i = 0; i < p.len;) {
    uint32_t cp;
    size_t n = utf8_decode(u + i, u + p.len, &cp);
    if (!n) return fail(&p, -EINVAL, i, "invalid UTF-8");
    i += n;
  }
  cesql_expr *expr = calloc(1, sizeof *expr);
  if (!expr) return fail(&p, -ENOMEM, 0, "out of memory");
  p.mem = &expr->mem;
  if (lex(&p)) {
    expr->root = parse_expr(&p);
    if (expr->root && p.t.kind != T_END) unexpected(&p, NULL);
  }
  if (p.failed || !expr->root) {
    if (err && err->code == -ENOMEM) err->position = 0;
    cesql_expr_free(expr);
    return NULL;
  }
  return expr;
}

void cesql_expr_free(cesql_expr *expr) {
  if (!expr) return;
  pool_cleanup(&expr->mem);
  free(expr);
}

/* ---------------------------------------------------------------- evaluation */

/* A value during evaluation. Strings are borrowed: from the tree, the event,
 * constants, or the evaluation's pool; none outlives the evaluation. */
typedef struct val {
  cesql_type type;
  int32_t i;
  bool b;
  const char *s;
  size_t len;
} val;

typedef struct ectx {
  const ce_event *ev;
  pool mem;
  cesql_error_kind err; /* the first error raised */
  bool fail_fast;       /* stop at the first error (filtering) */
  uint64_t like_steps;  /* LIKE steps left (CESQL_LIKE_MAX_STEPS at first) */
} ectx;

static val v_int(int32_t i) {
  return (val){.type = CESQL_INT, .i = i};
}
static val v_bool(bool b) {
  return (val){.type = CESQL_BOOL, .b = b};
}
static val v_str(const char *s, size_t len) {
  return (val){.type = CESQL_STRING, .s = s, .len = len};
}
static val zero(cesql_type t) {
  return t == CESQL_STRING ? v_str("", 0) : t == CESQL_BOOL ? v_bool(false) : v_int(0);
}

static void raise_err(ectx *c, cesql_error_kind k) {
  if (c->err == CESQL_OK) c->err = k;
}

/* Pool memory for a string of the evaluation; NULL (and an error raised)
 * past CESQL_EVAL_MAX_BYTES or when out of memory. */
static char *ealloc(ectx *c, size_t n) {
  char *r = pool_alloc(&c->mem, n);
  if (!r) raise_err(c, CESQL_ERR_GENERIC);
  return r;
}

static val eval(ectx *c, const node *n);

/* Evaluates n as an operand of an operator or function. When n is an
 * attribute the event lacks, raises MissingAttributeError and returns false:
 * the caller then yields the zero value of its own result type (spec §3.2). */
static bool operand(ectx *c, const node *n, val *out) {
  if (n->kind != K_ATTR) {
    *out = eval(c, n);
    return true;
  }
  const ce_attr *a = ce_event_get(c->ev, n->s);
  if (!a) {
    raise_err(c, CESQL_ERR_MISSING_ATTRIBUTE);
    return false;
  }
  if (a->type == CE_TYPE_INTEGER)
    *out = v_int(a->integer);
  else if (a->type == CE_TYPE_BOOLEAN)
    *out = v_bool(a->boolean);
  else
    *out = v_str(a->value, a->value_len);
  return true;
}

/* String to Integer: an optional sign, then base-10 digits, in 32 bits. */
static bool parse_int(const char *s, size_t len, int32_t *out) {
  size_t i = 0;
  bool neg = false;
  if (len && (s[0] == '+' || s[0] == '-')) neg = s[i++] == '-';
  if (i == len) return false;
  int64_t v = 0;
  for (; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
    if (v > (int64_t)INT32_MAX + 1) return false;
  }
  if (neg) v = -v;
  if (v > INT32_MAX) return false;
  *out = (int32_t)v;
  return true;
}

/* String to Boolean: "true" or "false" in any case. */
static bool parse_bool(const char *s, size_t len, bool *out) {
  static const char *const words[] = {"false", "true"};
  for (int w = 0; w < 2; w++) {
    size_t n = strlen(words[w]);
    if (len != n) continue;
    size_t i = 0;
    while (i < n && (s[i] | 0x20) == words[w][i]) i++;
    if (i == n) {
      *out = w == 1;
      return true;
    }
  }
  return false;
}

static int32_t as_int(ectx *c, val v) {
  int32_t i = 0;
  if (v.type == CESQL_INT) return v.i;
  if (v.type == CESQL_BOOL) return v.b;
  if (!parse_int(v.s, v.len, &i)) raise_err(c, CESQL_ERR_CAST);
  return i;
}

static bool as_bool(ectx *c, val v) {
  bool b = false;
  if (v.type == CESQL_BOOL) return v.b;
  if (v.type == CESQL_INT) return v.i != 0;
  if (!parse_bool(v.s, v.len, &b)) raise_err(c, CESQL_ERR_CAST);
  return b;
}

static val as_str(ectx *c, val v) {
  if (v.type == CESQL_STRING) return v;
  if (v.type == CESQL_BOOL) return v.b ? v_str("true", 4) : v_str("false", 5);
  char *s = ealloc(c, 12);
  if (!s) return v_str("", 0);
  int n = snprintf(s, 12, "%d", (int)v.i);
  return v_str(s, (size_t)n);
}

static val cast_to(ectx *c, val v, cesql_type t) {
  if (t == CESQL_INT) return v_int(as_int(c, v));
  if (t == CESQL_BOOL) return v_bool(as_bool(c, v));
  return as_str(c, v);
}

static bool same(val x, val y) {
  if (x.type == CESQL_INT) return x.i == y.i;
  if (x.type == CESQL_BOOL) return x.b == y.b;
  return x.len == y.len && memcmp(x.s, y.s, x.len) == 0;
}

static cesql_type op_type(int o) {
  return o <= OP_SUB ? CESQL_INT : CESQL_BOOL;
}

/* A 64-bit result brought back into 32 bits: past a bound it is clamped to
 * it, as the spec does for ABS, with a MathError. */
static val clamp(ectx *c, int64_t r) {
  if (r > INT32_MAX || r < INT32_MIN) {
    raise_err(c, CESQL_ERR_MATH);
    return v_int(r > 0 ? INT32_MAX : INT32_MIN);
  }
  return v_int((int32_t)r);
}

/* A binary operator other than AND, OR, XOR on evaluated operands. */
static val apply(ectx *c, int o, val x, val y) {
  if (o == OP_EQ || o == OP_NE) {
    /* = is overloaded for all three types: the right side's type picks the
     * definition, and the left side is cast to it (spec §3.7). */
    bool eq = same(y, cast_to(c, x, y.type));
    return v_bool(o == OP_EQ ? eq : !eq);
  }
  int64_t a = as_int(c, x), b = as_int(c, y);
  switch (o) {
  case OP_LT:
    return v_bool(a < b);
  case OP_LE:
    return v_bool(a <= b);
  case OP_GT:
    return v_bool(a > b);
  case OP_GE:
    return v_bool(a >= b);
  case OP_ADD:
    return clamp(c, a + b);
  case OP_SUB:
    return clamp(c, a - b);
  case OP_MUL:
    return clamp(c, a * b);
  default:
    if (b == 0) {
      raise_err(c, CESQL_ERR_MATH);
      return v_int(0);
    }
    /* In 64 bits, INT32_MIN / -1 and INT32_MIN % -1 are defined. */
    return clamp(c, o == OP_DIV ? a / b : a % b);
  }
}

static val eval_chain(ectx *c, const node *n) {
  val acc, y;
  bool missing = !operand(c, n->kids[0], &acc);
  for (size_t k = 1; k < n->n; k++) {
    int o = n->ops[k];
    if (missing) {
      /* The left operand was a missing attribute: this operator yields its
       * zero value and its right side is not needed. */
      acc = zero(op_type(o));
      missing = false;
      continue;
    }
    if (o == OP_AND || o == OP_OR) {
      bool l = as_bool(c, acc);
      if (l == (o == OP_OR)) { /* short circuit: FALSE AND ..., TRUE OR ... */
        acc = v_bool(l);
        continue;
      }
      acc = v_bool(operand(c, n->kids[k], &y) && as_bool(c, y));
    } else if (o == OP_XOR) {
      bool l = as_bool(c, acc);
      acc = v_bool(operand(c, n->kids[k], &y) ? l != as_bool(c, y) : false);
    } else {
      acc = operand(c, n->kids[k], &y) ? apply(c, o, acc, y) : zero(op_type(o));
    }
  }
  return missing ? zero(CESQL_BOOL) : acc;
}

/* LIKE by characters: the classic two-cursor wildcard match, going back to
 * just after the last % on a mismatch. That costs value length × the length
 * of a run of the pattern between two %s at worst (seconds for a long value
 * and a hostile pattern), so each step is counted against the evaluation's
 * budget; past it the match fails with an error. */
static bool like(ectx *c, const lpat *pat, size_t np, const char *s, size_t len) {
  size_t pi = 0, si = 0, star = (size_t)-1, star_si = 0;
  while (si < len) {
    size_t step = utf8_step(s + si, len - si);
    if (c->like_steps-- == 0) {
      c->like_steps = 0;
      raise_err(c, CESQL_ERR_GENERIC);
      return false;
    }
    if (pi < np && pat[pi].kind == LP_ANY) {
      star = pi++;
      star_si = si;
    } else if (pi < np && (pat[pi].kind == LP_ONE ||
                           (pat[pi].n == step && memcmp(pat[pi].c, s + si, step) == 0))) {
      pi++;
      si += step;
    } else if (star != (size_t)-1) {
      pi = star + 1;
      star_si += utf8_step(s + star_si, len - star_si);
      si = star_si;
    } else {
      return false;
    }
  }
  while (pi < np && pat[pi].kind == LP_ANY) pi++;
  return pi == np;
}

static val eval_in(ectx *c, const node *n) {
  val x, y;
  if (!operand(c, n->kids[0], &x)) return v_bool(false);
  for (size_t k = 1; k < n->n; k++) {
    if (!operand(c, n->kids[k], &y)) return v_bool(false);
    /* The left side's type is the target (spec §3.7); like a chain of
     * "x = y1 OR x = y2", the first equal element ends the search. */
    if (same(x, cast_to(c, y, x.type))) return v_bool(!n->negated);
  }
  return v_bool(n->negated);
}

/* CONCAT and CONCAT_WS: every argument as a string, in one pool buffer. */
static val eval_concat(ectx *c, const node *n) {
  val *parts = n->n ? (val *)ealloc(c, n->n * sizeof *parts) : NULL;
  if (n->n && !parts) return v_str("", 0);
  size_t total = 0, first = n->fn == F_CONCAT_WS ? 1 : 0;
  for (size_t k = 0; k < n->n; k++) {
    if (!operand(c, n->kids[k], &parts[k])) return v_str("", 0);
    parts[k] = as_str(c, parts[k]);
    if (k >= first) total += parts[k].len + (k > first && first ? parts[0].len : 0);
    if (total > CESQL_EVAL_MAX_BYTES) { /* checked here so the sum cannot wrap */
      raise_err(c, CESQL_ERR_GENERIC);
      return v_str("", 0);
    }
  }
  char *out = ealloc(c, total + 1);
  if (!out) return v_str("", 0);
  size_t o = 0;
  for (size_t k = first; k < n->n; k++) {
    if (k > first && first) memcpy(out + o, parts[0].s, parts[0].len), o += parts[0].len;
    memcpy(out + o, parts[k].s, parts[k].len);
    o += parts[k].len;
  }
  return v_str(out, o);
}

static val eval_case(ectx *c, val s, bool upper) {
  char *out = ealloc(c, s.len + 1);
  if (!out) return v_str("", 0);
  for (size_t i = 0; i < s.len; i++) {
    char ch = s.s[i];
    if (upper && ch >= 'a' && ch <= 'z') ch = (char)(ch - 'a' + 'A');
    if (!upper && ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
    out[i] = ch;
  }
  return v_str(out, s.len);
}

static val eval_trim(val s) {
  const unsigned char *u = (const unsigned char *)s.s, *end = u + s.len;
  uint32_t cp;
  size_t n;
  while (u < end && (n = utf8_decode(u, end, &cp)) && is_space(cp)) u += n;
  while (end > u) {
    const unsigned char *last = end - 1;
    while (last > u && (*last & 0xC0) == 0x80) last--;
    if (utf8_decode(last, end, &cp) != (size_t)(end - last) || !is_space(cp)) break;
    end = last;
  }
  return v_str((const char *)u, (size_t)(end - u));
}

/* SUBSTRING(s, pos[, len]) by characters; has_len false for the 2-argument
 * form. */
static val eval_substring(ectx *c, val s, int32_t pos, bool has_len, int32_t len) {
  int64_t chars = (int64_t)utf8_count(s.s, s.len);
  if (pos > chars || pos < -chars || (has_len && len < 0)) {
    raise_err(c, CESQL_ERR_FUNCTION);
    return v_str("", 0);
  }
  if (pos == 0) return v_str("", 0);
  size_t start = (size_t)(pos > 0 ? pos - 1 : chars + pos);
  size_t from = utf8_skip(s.s, s.len, start);
  size_t to = has_len ? from + utf8_skip(s.s + from, s.len - from, (size_t)len) : s.len;
  return v_str(s.s + from, to - from);
}

static val eval_call(ectx *c, const node *n) {
  if (n->fn == F_CONCAT || n->fn == F_CONCAT_WS) return eval_concat(c, n);
  val a[3];
  for (size_t k = 0; k < n->n; k++)
    if (!operand(c, n->kids[k], &a[k])) return zero(fns[n->fn].ret);
  int32_t y, v;
  switch (n->fn) {
  case F_LENGTH:
    a[0] = as_str(c, a[0]);
    return v_int((int32_t)utf8_count(a[0].s, a[0].len));
  case F_LOWER:
    return eval_case(c, as_str(c, a[0]), false);
  case F_UPPER:
    return eval_case(c, as_str(c, a[0]), true);
  case F_TRIM:
    return eval_trim(as_str(c, a[0]));
  case F_LEFT:
  case F_RIGHT: {
    a[0] = as_str(c, a[0]);
    if ((y = as_int(c, a[1])) < 0) {
      raise_err(c, CESQL_ERR_FUNCTION);
      return a[0];
    }
    size_t chars = utf8_count(a[0].s, a[0].len);
    if ((size_t)y >= chars) return a[0];
    size_t cut = utf8_skip(a[0].s, a[0].len, n->fn == F_LEFT ? (size_t)y : chars - (size_t)y);
    return n->fn == F_LEFT ? v_str(a[0].s, cut) : v_str(a[0].s + cut, a[0].len - cut);
  }
  case F_SUBSTRING:
    a[0] = as_str(c, a[0]);
    y = as_int(c, a[1]);
    return eval_substring(c, a[0], y, n->n == 3, n->n == 3 ? as_int(c, a[2]) : 0);
  case F_ABS:
    v = as_int(c, a[0]);
    return clamp(c, v < 0 ? -(int64_t)v : v);
  case F_INT:
    return v_int(as_int(c, a[0]));
  case F_BOOL:
    return v_bool(as_bool(c, a[0]));
  case F_STRING:
    return as_str(c, a[0]);
  case F_IS_INT:
    return v_bool(a[0].type != CESQL_STRING || parse_int(a[0].s, a[0].len, &y));
  case F_IS_BOOL: {
    bool b;
    return v_bool(a[0].type != CESQL_STRING || parse_bool(a[0].s, a[0].len, &b));
  }
  default:
    return zero(fns[n->fn].ret); /* CONCAT, CONCAT_WS: handled above */
  }
}

static val eval(ectx *c, const node *n) {
  val x;
  if (c->fail_fast && c->err != CESQL_OK) return v_bool(false);
  switch (n->kind) {
  case K_INT:
    return v_int(n->i);
  case K_BOOL:
    return v_bool(n->b);
  case K_STR:
    return v_str(n->s, n->len);
  case K_ATTR:
    /* Alone (the whole expression, or parenthesized) its type is unknown,
     * so a missing one is the Boolean zero value (spec §3.2). */
    return operand(c, n, &x) ? x : v_bool(false);
  case K_EXISTS:
    return v_bool(ce_event_get(c->ev, n->s) != NULL);
  case K_NOT:
    return v_bool(operand(c, n->kids[0], &x) ? !as_bool(c, x) : false);
  case K_NEG:
    return operand(c, n->kids[0], &x) ? clamp(c, -(int64_t)as_int(c, x)) : v_int(0);
  case K_CHAIN:
    return eval_chain(c, n);
  case K_LIKE:
    if (!operand(c, n->kids[0], &x)) return v_bool(false);
    x = as_str(c, x);
    return v_bool(like(c, n->pat, n->npat, x.s, x.len) != n->negated);
  case K_IN:
    return eval_in(c, n);
  default:
    return eval_call(c, n);
  }
}

/* Runs one evaluation: the pool starts in `stack` and ends with the call. */
static val run(ectx *c, const cesql_expr *expr, max_align_t *stack, size_t size) {
  c->mem.first = (unsigned char *)stack;
  c->mem.first_cap = size;
  c->mem.limit = CESQL_EVAL_MAX_BYTES;
  c->like_steps = CESQL_LIKE_MAX_STEPS;
  return eval(c, expr->root);
}

bool cesql_expr_match(const cesql_expr *expr, const ce_event *ev) {
  max_align_t stack[64];
  ectx c = {.ev = ev, .fail_fast = true};
  val v = run(&c, expr, stack, sizeof stack);
  bool ok = !c.mem.oom && c.err == CESQL_OK && v.type == CESQL_BOOL && v.b;
  pool_cleanup(&c.mem);
  return ok;
}

int cesql_expr_eval(const cesql_expr *expr, const ce_event *ev, cesql_value *out,
                    cesql_error_kind *kind) {
  max_align_t stack[64];
  ectx c = {.ev = ev};
  val v = run(&c, expr, stack, sizeof stack);
  int rc = c.mem.oom ? -ENOMEM : 0;
  memset(out, 0, sizeof *out);
  out->type = v.type;
  out->i = v.i;
  out->b = v.b;
  if (!rc && v.type == CESQL_STRING) {
    if ((out->s = malloc(v.len + 1))) {
      memcpy(out->s, v.s, v.len);
      out->s[v.len] = '\0';
      out->len = v.len;
    } else {
      rc = -ENOMEM;
    }
  }
  *kind = c.err;
  pool_cleanup(&c.mem);
  return rc;
}

void cesql_value_cleanup(cesql_value *v) {
  if (!v) return;
  free(v->s);
  v->s = NULL;
  v->len = 0;
}

/* ---------------------------------------------------------------- indexing */

static int exact(const node *n, const char **attr, const char **value) {
  if (n->kind != K_CHAIN) return 0;
  if (n->n == 2 && n->ops[1] == OP_EQ) {
    const node *l = n->kids[0], *r = n->kids[1];
    if (l->kind != K_ATTR || r->kind != K_STR || memchr(r->s, '\0', r->len)) return 0;
    *attr = l->s;
    *value = r->s;
    return 1;
  }
  for (size_t k = 1; k < n->n; k++)
    if (n->ops[k] != OP_AND) return 0;
  for (size_t k = 0; k < n->n; k++)
    if (exact(n->kids[k], attr, value)) return 1;
  return 0;
}

int cesql_expr_required_exact(const cesql_expr *expr, const char **attr, const char **value) {
  return exact(expr->root, attr, value);
}
