/*
 * index.c — which triggers an event could match, without looking at all of
 * them.
 *
 * Each trigger is filed once: under the exact (attribute, value) or the
 * (attribute, prefix) its filters require (trigger_index_key), or, when they
 * require none, in a list every event visits. An event looks up its value
 * of each attribute some exact key names (one hash probe each), and each
 * prefix of its value of each attribute some prefix key names (one probe per
 * length); only the triggers found are evaluated in full. So an event's cost
 * grows with the attributes the index uses and the triggers it could match,
 * not with the number of triggers.
 */
#include "trigger/index.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Longest prefix filed as a prefix key; a trigger with a longer one is
 * visited by every event instead. */
#define MAX_PREFIX 256

typedef struct list {
  const trigger **items;
  size_t n, cap;
} list;

typedef struct slot {
  char *key; /* kind byte, attr, NUL, value; NULL when the slot is empty */
  size_t key_len;
  uint64_t hash;
  list triggers;
} slot;

/* Attribute names some key of one kind uses, with how many triggers use them. */
typedef struct attr_use {
  char *name;
  size_t uses;
} attr_use;

struct trigger_index {
  slot *slots;
  size_t cap, used;
  attr_use *attrs[2]; /* [0] exact, [1] prefix */
  size_t n_attrs[2];
  list always;
  size_t count;
};

static uint64_t fnv(const char *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
  return h;
}

static int list_add(list *l, const trigger *tr) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 4;
    const trigger **items = realloc(l->items, cap * sizeof *items);
    if (!items) return -ENOMEM;
    l->items = items;
    l->cap = cap;
  }
  l->items[l->n++] = tr;
  return 0;
}

static bool list_remove(list *l, const trigger *tr) {
  for (size_t i = 0; i < l->n; i++)
    if (l->items[i] == tr) {
      memmove(&l->items[i], &l->items[i + 1], (l->n - i - 1) * sizeof *l->items);
      l->n--;
      return true;
    }
  return false;
}

trigger_index *trigger_index_new(void) {
  return calloc(1, sizeof(trigger_index));
}

void trigger_index_free(trigger_index *ix) {
  if (!ix) return;
  for (size_t i = 0; i < ix->cap; i++) {
    free(ix->slots[i].key);
    free(ix->slots[i].triggers.items);
  }
  free(ix->slots);
  for (int k = 0; k < 2; k++) {
    for (size_t i = 0; i < ix->n_attrs[k]; i++) free(ix->attrs[k][i].name);
    free(ix->attrs[k]);
  }
  free(ix->always.items);
  free(ix);
}

/* Builds the key of (kind, attr, value[0..len]) into buf; 0 when it does not fit. */
static size_t make_key(char *buf, size_t cap, int kind, const char *attr, const char *value,
                       size_t len) {
  size_t al = strlen(attr);
  if (2 + al + len > cap) return 0;
  buf[0] = (char)('0' + kind);
  memcpy(buf + 1, attr, al);
  buf[1 + al] = '\0';
  memcpy(buf + 2 + al, value, len);
  return 2 + al + len;
}

static slot *find(const trigger_index *ix, const char *key, size_t len, uint64_t h) {
  if (!ix->cap) return NULL;
  for (size_t i = h & (ix->cap - 1);; i = (i + 1) & (ix->cap - 1)) {
    slot *s = &ix->slots[i];
    if (!s->key) return NULL;
    if (s->hash == h && s->key_len == len && memcmp(s->key, key, len) == 0) return s;
  }
}

static int grow(trigger_index *ix) {
  size_t cap = ix->cap ? ix->cap * 2 : 64;
  slot *slots = calloc(cap, sizeof *slots);
  if (!slots) return -ENOMEM;
  for (size_t i = 0; i < ix->cap; i++) {
    slot *s = &ix->slots[i];
    if (!s->key) continue;
    size_t j = s->hash & (cap - 1);
    while (slots[j].key) j = (j + 1) & (cap - 1);
    slots[j] = *s;
  }
  free(ix->slots);
  ix->slots = slots;
  ix->cap = cap;
  return 0;
}

static int use_attr(trigger_index *ix, int k, const char *name, int delta) {
  for (size_t i = 0; i < ix->n_attrs[k]; i++)
    if (strcmp(ix->attrs[k][i].name, name) == 0) {
      ix->attrs[k][i].uses += (size_t)delta;
      if (ix->attrs[k][i].uses == 0) {
        free(ix->attrs[k][i].name);
        ix->attrs[k][i] = ix->attrs[k][--ix->n_attrs[k]];
      }
      return 0;
    }
  attr_use *a = realloc(ix->attrs[k], (ix->n_attrs[k] + 1) * sizeof *a);
  if (!a) return -ENOMEM;
  ix->attrs[k] = a;
  a[ix->n_attrs[k]].name = strdup(name);
  if (!a[ix->n_attrs[k]].name) return -ENOMEM;
  a[ix->n_attrs[k]++].uses = 1;
  return 0;
}

/* The key a trigger is filed under, or -1 for the list every event visits. */
static int key_of(const trigger *tr, const char **attr, const char **value) {
  int kind = trigger_index_key(tr, attr, value);
  if (kind == TRIGGER_PREFIX && strlen(*value) > MAX_PREFIX) return -1;
  return kind;
}

int trigger_index_add(trigger_index *ix, const trigger *tr) {
  const char *attr, *value;
  int kind = key_of(tr, &attr, &value);
  if (kind < 0) {
    int rc = list_add(&ix->always, tr);
    if (!rc) ix->count++;
    return rc;
  }
  size_t cap = strlen(attr) + strlen(value) + 2;
  char *key = malloc(cap);
  if (!key) return -ENOMEM;
  size_t len = make_key(key, cap, kind, attr, value, strlen(value));
  uint64_t h = fnv(key, len);
  slot *s = find(ix, key, len, h);
  if (!s) {
    if ((ix->used + 1) * 2 > ix->cap && grow(ix)) {
      free(key);
      return -ENOMEM;
    }
    size_t i = h & (ix->cap - 1);
    while (ix->slots[i].key) i = (i + 1) & (ix->cap - 1);
    s = &ix->slots[i];
    *s = (slot){key, len, h, {0}};
    ix->used++;
    key = NULL;
  }
  free(key);
  int rc = list_add(&s->triggers, tr);
  if (rc) return rc;
  rc = use_attr(ix, kind == TRIGGER_EXACT ? 0 : 1, attr, 1);
  if (rc) {
    /* Not added: the caller may free the trigger, so no list may keep it. */
    list_remove(&s->triggers, tr);
    return rc;
  }
  ix->count++;
  return 0;
}

/* Empties slot i and shifts back the entries after it that probed past it
 * (linear probing without tombstones), so that keys whose last trigger
 * went do not accumulate. */
static void drop_slot(trigger_index *ix, size_t i) {
  size_t mask = ix->cap - 1;
  free(ix->slots[i].key);
  free(ix->slots[i].triggers.items);
  for (size_t j = (i + 1) & mask; ix->slots[j].key; j = (j + 1) & mask) {
    size_t home = ix->slots[j].hash & mask;
    /* The entry at j may move to i only if its home is not in (i, j]. */
    bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (stays) continue;
    ix->slots[i] = ix->slots[j];
    i = j;
  }
  ix->slots[i] = (slot){0};
  ix->used--;
}

int trigger_index_remove(trigger_index *ix, const trigger *tr) {
  const char *attr, *value;
  int kind = key_of(tr, &attr, &value);
  if (kind < 0) {
    if (!list_remove(&ix->always, tr)) return -ENOENT;
    ix->count--;
    return 0;
  }
  size_t cap = strlen(attr) + strlen(value) + 2;
  char *key = malloc(cap);
  if (!key) return -ENOMEM;
  size_t len = make_key(key, cap, kind, attr, value, strlen(value));
  slot *s = find(ix, key, len, fnv(key, len));
  free(key);
  if (!s || !list_remove(&s->triggers, tr)) return -ENOENT;
  use_attr(ix, kind == TRIGGER_EXACT ? 0 : 1, attr, -1);
  ix->count--;
  if (s->triggers.n == 0) drop_slot(ix, (size_t)(s - ix->slots));
  return 0;
}

size_t trigger_index_count(const trigger_index *ix) {
  return ix->count;
}

static size_t visit(const list *l, const ce_event *ev, trigger_index_fn fn, void *opaque,
                    size_t *evaluated) {
  size_t hits = 0;
  for (size_t i = 0; i < l->n; i++) {
    (*evaluated)++;
    if (trigger_match(l->items[i], ev)) {
      hits++;
      if (fn) fn(opaque, l->items[i]);
    }
  }
  return hits;
}

size_t trigger_index_match(const trigger_index *ix, const ce_event *ev, trigger_index_fn fn,
                           void *opaque, size_t *evaluated) {
  size_t hits = 0, evals = 0;
  char stack[1024];
  for (int k = 0; k < 2; k++) {
    for (size_t i = 0; i < ix->n_attrs[k]; i++) {
      const char *name = ix->attrs[k][i].name;
      const ce_attr *a = ce_event_get(ev, name);
      if (!a) continue;
      /* The key of the whole value; a prefix key is a prefix of it, and its
       * hash is the running hash at that length. */
      size_t need = 2 + strlen(name) + a->value_len;
      char *key = need <= sizeof stack ? stack : malloc(need);
      if (!key) continue; /* out of memory: these candidates are missed */
      size_t len = make_key(key, need, k == 0 ? TRIGGER_EXACT : TRIGGER_PREFIX, name, a->value,
                            a->value_len);
      if (k == 0) {
        slot *s = find(ix, key, len, fnv(key, len));
        if (s) hits += visit(&s->triggers, ev, fn, opaque, &evals);
      } else {
        size_t head = len - a->value_len;
        uint64_t h = fnv(key, head);
        size_t max = a->value_len < MAX_PREFIX ? a->value_len : MAX_PREFIX;
        for (size_t n = 1; n <= max; n++) {
          h = (h ^ (uint8_t)key[head + n - 1]) * 1099511628211ull;
          slot *s = find(ix, key, head + n, h);
          if (s) hits += visit(&s->triggers, ev, fn, opaque, &evals);
        }
      }
      if (key != stack) free(key);
    }
  }
  hits += visit(&ix->always, ev, fn, opaque, &evals);
  if (evaluated) *evaluated = evals;
  return hits;
}
