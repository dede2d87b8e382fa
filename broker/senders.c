/*
 * senders.c — who may POST events to the ingress (--senders-file): each
 * sender a name, a bearer token, the event types it may send and the
 * brokers it may send to, after Knative's sender authentication and
 * EventPolicy. Without the file the ingress is open, as Knative's broker is
 * by default. The file is read again when it changes, so that tokens rotate
 * without a restart (the end of this file).
 *
 * A token is looked for among all the senders' in constant time for a given
 * token length, so that the time of a refusal tells a client nothing about
 * how close it came. A sender's types are prefixes of `type`
 * ("dev.outpost." takes every event Outpost makes); a sender with none may
 * send any type. Its `to=NS/NAME` words (NS/ and a star: a namespace's
 * every broker) are the brokers it may send to, as an EventPolicy's `to`; a
 * sender with none may send to every broker.
 */
#include "broker/broker_int.h"
#include "core/file_watch.h"
#include "core/httpd.h"
#include "core/resources.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LINE_MAX_ = 4096 };

/* RFC 6750's b64token, so that every token fits an Authorization header. */
static bool b64token(const char *s, size_t n) {
  if (n == 0 || n > BROKER_SENDER_TOKEN_MAX) return false;
  size_t i = 0;
  for (; i < n && s[i] != '='; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || strchr("-._~+/", s[i])))
      return false;
  if (i == 0) return false;
  for (; i < n; i++)
    if (s[i] != '=') return false;
  return true;
}

static bool visible(const char *s, size_t n) {
  if (n == 0 || n > 255) return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] <= ' ' || s[i] == 0x7f) return false;
  return true;
}

void broker__senders_free(broker_senders *s) {
  if (!s) return;
  broker__senders_free(s->replaced);
  for (size_t i = 0; i < s->n; i++) {
    broker_sender *who = &s->v[i];
    free(who->name);
    free(who->token);
    for (size_t k = 0; k < who->n_types; k++) free(who->types[k]);
    for (size_t k = 0; k < who->n_to; k++) free(who->to[k]);
  }
  free(s->v);
  free(s);
}

/* The next word of *p (blank-separated), or NULL at the line's end. */
static char *word(char **p, size_t *len) {
  char *s = *p + strspn(*p, " \t");
  if (!*s) return NULL;
  *len = strcspn(s, " \t");
  *p = s + *len;
  return s;
}

/* "NS/NAME" (n bytes), a broker, or "NS/" and a star, every broker of a
 * namespace. */
static bool broker_ref(const char *s, size_t n) {
  const char *slash = memchr(s, '/', n);
  if (!slash || !res_valid_dns_label(s, (size_t)(slash - s))) return false;
  size_t rest = n - (size_t)(slash - s) - 1;
  return (rest == 1 && slash[1] == '*') || res_valid_dns_label(slash + 1, rest);
}

/* One line's sender into *who (zeroed; its strings owned by it). */
static int parse_line(char *line, broker_sender *who, const char **why) {
  size_t n = 0;
  char *p = line, *name = word(&p, &n);
  if (!res_valid_dns_label(name, n))
    return *why = "a sender's name is a DNS label (a-z, 0-9, -)", -EINVAL;
  if (!(who->name = strndup(name, n))) return -ENOMEM;
  char *token = word(&p, &n);
  if (!token || !b64token(token, n))
    return *why = "want NAME TOKEN [TYPE-PREFIX...] [to=NS/NAME...], the token 1-255 characters of"
                  " A-Z a-z 0-9 - . _ ~ + / then any '='",
           -EINVAL;
  if (!(who->token = strndup(token, n))) return -ENOMEM;
  for (char *t; (t = word(&p, &n));) {
    if (n > 3 && memcmp(t, "to=", 3) == 0) {
      if (who->n_to == BROKER_SENDER_TO_MAX) return *why = "at most 16 to= a sender", -EINVAL;
      if (!broker_ref(t + 3, n - 3))
        return *why = "to= names a broker, NAMESPACE/NAME or NAMESPACE/* (DNS labels)", -EINVAL;
      if (!(who->to[who->n_to] = strndup(t + 3, n - 3))) return -ENOMEM;
      who->n_to++;
      continue;
    }
    if (who->n_types == BROKER_SENDER_TYPES_MAX)
      return *why = "at most 16 type prefixes a sender", -EINVAL;
    if (!visible(t, n)) return *why = "a type prefix is 1-255 visible characters", -EINVAL;
    if (!(who->types[who->n_types] = strndup(t, n))) return -ENOMEM;
    who->n_types++;
  }
  return 0;
}

/* Whether who differs in name and token from the n senders before it. */
static int check_unique(const broker_sender *before, size_t n, const broker_sender *who,
                        const char **why) {
  for (size_t i = 0; i < n; i++) {
    if (strcmp(before[i].name, who->name) == 0) return *why = "a sender named twice", -EINVAL;
    if (strcmp(before[i].token, who->token) == 0)
      return *why = "two senders with one token (which would it be?)", -EINVAL;
  }
  return 0;
}

broker_senders *broker__senders_load(const char *path, char *errbuf, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
    return NULL;
  }
  broker_senders *s = calloc(1, sizeof *s);
  char line[LINE_MAX_];
  const char *why = NULL;
  int rc = s ? 0 : -ENOMEM;
  unsigned lineno = 0;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    lineno++;
    size_t len = strlen(line);
    if (len == sizeof line - 1 && line[len - 1] != '\n' && !feof(f)) {
      why = "a line of more than 4095 characters";
      rc = -EINVAL;
      break;
    }
    line[strcspn(line, "\r\n")] = '\0';
    char *first = line + strspn(line, " \t");
    if (!*first || *first == '#') continue;
    if (s->n == BROKER_SENDERS_MAX) {
      why = "at most 256 senders";
      rc = -EINVAL;
      break;
    }
    broker_sender *v = realloc(s->v, (s->n + 1) * sizeof *v);
    if (!v) {
      rc = -ENOMEM;
      break;
    }
    s->v = v;
    broker_sender *who = &v[s->n++];
    memset(who, 0, sizeof *who);
    rc = parse_line(line, who, &why);
    if (rc == 0) rc = check_unique(v, s->n - 1, who, &why);
  }
  unsigned at = rc == -EINVAL ? lineno : 0; /* the line at fault */
  if (rc == 0 && ferror(f)) {
    why = strerror(errno);
    rc = -EIO;
  }
  fclose(f);
  if (rc == 0 && s->n == 0) {
    why = "no senders (a file that lets nobody in is a mistake)";
    rc = -EINVAL;
  }
  if (rc) {
    if (rc == -ENOMEM)
      snprintf(errbuf, errlen, "%s: out of memory", path);
    else if (at)
      snprintf(errbuf, errlen, "%s:%u: %s", path, at, why);
    else
      snprintf(errbuf, errlen, "%s: %s", path, why);
    broker__senders_free(s);
    return NULL;
  }
  /* Set once v moves no more (realloc). */
  for (size_t i = 0; i < s->n; i++) s->v[i].events = &s->v[i].own;
  return s;
}

broker_sender *broker__sender_of(broker_senders *s, const char *token) {
  broker_sender *found = NULL;
  if (!token) return NULL;
  /* Every sender compared, whatever matched first: no early way out. */
  for (size_t i = 0; i < s->n; i++)
    if (httpd_same_secret(token, s->v[i].token)) found = &s->v[i];
  return found;
}

bool broker__sender_to(const broker_sender *who, const char *ns, const char *name) {
  if (who->n_to == 0) return true;
  size_t ns_len = strlen(ns);
  for (size_t k = 0; k < who->n_to; k++) {
    const char *to = who->to[k];
    if (strncmp(to, ns, ns_len) != 0 || to[ns_len] != '/') continue;
    if (strcmp(to + ns_len + 1, "*") == 0 || strcmp(to + ns_len + 1, name) == 0) return true;
  }
  return false;
}

bool broker__sender_allows(const broker_sender *who, const char *type, size_t len) {
  if (who->n_types == 0) return true;
  for (size_t k = 0; k < who->n_types; k++) {
    size_t n = strlen(who->types[k]);
    if (n <= len && memcmp(type, who->types[k], n) == 0) return true;
  }
  return false;
}

/* ---- the file, read again when it changes ---- */

struct broker_senders_file {
  char *path;
  _Atomic(broker_senders *) current; /* its replaced ones chained behind it */
  file_watch watch;
  _Atomic uint64_t ok, failed;
};

broker_senders_file *broker__senders_open(const char *path, char *errbuf, size_t errlen) {
  broker_senders_file *f = calloc(1, sizeof *f);
  if (!f || !(f->path = strdup(path))) {
    free(f);
    snprintf(errbuf, errlen, "out of memory");
    return NULL;
  }
  /* Watched before it is read: a change meanwhile is seen at the first look. */
  file_watch_init(&f->watch, (const char *const *)&f->path, 1,
                  (uint64_t)BROKER_SENDERS_LOOK_MS * 1000000u);
  broker_senders *s = broker__senders_load(path, errbuf, errlen);
  if (!s) {
    file_watch_destroy(&f->watch);
    free(f->path);
    free(f);
    return NULL;
  }
  atomic_init(&f->current, s);
  return f;
}

void broker__senders_close(broker_senders_file *f) {
  if (!f) return;
  broker__senders_free(atomic_load(&f->current));
  file_watch_destroy(&f->watch);
  free(f->path);
  free(f);
}

broker_senders *broker__senders_current(broker_senders_file *f) {
  return atomic_load_explicit(&f->current, memory_order_acquire);
}

void broker__senders_reloads(broker_senders_file *f, uint64_t *ok, uint64_t *failed) {
  *ok = atomic_load(&f->ok);
  *failed = atomic_load(&f->failed);
}

/* Reads the file again into a table that replaces the one in use (f->watch
 * held). */
static void reload(broker_senders_file *f) {
  char err[512];
  broker_senders *old = atomic_load(&f->current);
  broker_senders *s = broker__senders_load(f->path, err, sizeof err);
  if (!s) {
    atomic_fetch_add(&f->failed, 1);
    fprintf(stderr, "outpost broker: --senders-file %s; still the %zu senders read before\n", err,
            old->n);
    return;
  }
  for (size_t i = 0; i < s->n; i++)
    for (size_t k = 0; k < old->n; k++)
      if (strcmp(s->v[i].name, old->v[k].name) == 0) s->v[i].events = old->v[k].events;
  s->replaced = old;
  atomic_store_explicit(&f->current, s, memory_order_release);
  atomic_fetch_add(&f->ok, 1);
  fprintf(stderr, "outpost broker: --senders-file %s read again: %zu senders\n", f->path, s->n);
}

void broker__senders_check(broker_senders_file *f, uint64_t now_ns) {
  if (!file_watch_changed(&f->watch, now_ns)) return;
  reload(f);
  file_watch_done(&f->watch);
}
