/*
 * run_tail.c — the tail of the broker's events that `outpost run` keeps for
 * people watching a demo or a lab: a trigger without a filter delivers every
 * event of the broker to the run process, which keeps the last ones in a
 * ring and serves them as a long poll (GET /v1/events), and `outpost events`,
 * its command-line follower. A view, not a store: the ring is in memory and
 * an event pushed out of it is gone from here (never from the broker's log).
 */
#include "posts/run_int.h"

#include "core/clock.h"
#include "core/httpc.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MAX_MS   30000
#define LIMIT_DEFAULT 100
#define LIMIT_MAX     1000

typedef struct tail_entry {
  uint64_t seq;
  char *type; /* for the type filter */
  char *json; /* the event in the JSON format */
} tail_entry;

struct run_tail {
  pthread_mutex_t mu;
  pthread_cond_t more;
  tail_entry *ring;
  size_t cap;
  uint64_t next; /* the sequence number of the next event; the first is 1 */
};

run_tail *run_tail_new(size_t cap) {
  run_tail *t = calloc(1, sizeof *t);
  if (!t || !(t->ring = calloc(cap, sizeof *t->ring))) {
    free(t);
    return NULL;
  }
  t->cap = cap;
  t->next = 1;
  pthread_mutex_init(&t->mu, NULL);
  clock_cond_init(&t->more);
  return t;
}

void run_tail_free(run_tail *t) {
  if (!t) return;
  for (size_t i = 0; i < t->cap; i++) {
    free(t->ring[i].type);
    free(t->ring[i].json);
  }
  free(t->ring);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->more);
  free(t);
}

void run_tail_push(run_tail *t, ce_event *ev) {
  ce_buf b;
  ce_err err;
  ce_buf_init(&b);
  const char *type = ce_event_get_str(ev, "type");
  char *ty = strdup(type ? type : "");
  char *json = NULL;
  if (ty && ce_json_encode(ev, &b, &err) == 0) json = strndup(b.data, b.len);
  ce_buf_cleanup(&b);
  ce_event_free(ev);
  if (!json) { /* out of memory: this view misses one event */
    free(ty);
    free(json);
    return;
  }
  pthread_mutex_lock(&t->mu);
  tail_entry *e = &t->ring[t->next % t->cap];
  free(e->type);
  free(e->json);
  *e = (tail_entry){t->next++, ty, json};
  pthread_cond_broadcast(&t->more);
  pthread_mutex_unlock(&t->mu);
}

static bool type_matches(const tail_entry *e, const char *prefix) {
  return !prefix || strncmp(e->type, prefix, strlen(prefix)) == 0;
}

/* Appends the entries after `after` that match to b; returns how many. */
static size_t collect_after(run_tail *t, uint64_t after, const char *prefix, size_t limit,
                            ce_buf *b, uint64_t *last) {
  uint64_t oldest = t->next > t->cap ? t->next - t->cap : 1;
  size_t n = 0;
  *last = after;
  for (uint64_t s = after + 1 > oldest ? after + 1 : oldest; s < t->next && n < limit; s++) {
    const tail_entry *e = &t->ring[s % t->cap];
    *last = s;
    if (!type_matches(e, prefix)) continue;
    char head[48];
    int hl = snprintf(head, sizeof head, "%s{\"seq\":%llu,\"event\":", n ? "," : "",
                      (unsigned long long)s);
    if (ce_buf_append(b, head, (size_t)hl) || ce_buf_append(b, e->json, strlen(e->json)) ||
        ce_buf_append(b, "}", 1))
      break;
    n++;
  }
  return n;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || end == s || s[0] == '-' || v > max) return -EINVAL;
  *out = v;
  return 0;
}

void run_tail_serve(run_tail *t, httpd_req *req) {
  uint64_t after = 0, wait_ms = 0, limit = LIMIT_DEFAULT, last_n = 0;
  const char *q, *prefix = httpd_query(req, "type");
  if (prefix && !*prefix) prefix = NULL;
  if ((q = httpd_query(req, "after")) && parse_u64(q, UINT64_MAX, &after))
    return post_reply_error(req, 400, "after: a sequence number", "after");
  if ((q = httpd_query(req, "wait")) && parse_u64(q, WAIT_MAX_MS, &wait_ms))
    return post_reply_error(req, 400, "wait: milliseconds, at most 30000", "wait");
  if ((q = httpd_query(req, "limit")) && (parse_u64(q, LIMIT_MAX, &limit) || !limit))
    return post_reply_error(req, 400, "limit: 1 to 1000", "limit");
  if ((q = httpd_query(req, "last")) && parse_u64(q, LIMIT_MAX, &last_n))
    return post_reply_error(req, 400, "last: 0 to 1000", "last");
  ce_buf b;
  ce_buf_init(&b);
  ce_buf_append(&b, "{\"events\":[", 11);
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += (time_t)(wait_ms / 1000);
  until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&t->mu);
  /* last=N: the newest N that match, as `tail -n` shows them. */
  if (last_n && !httpd_query(req, "after")) {
    uint64_t s = t->next, found = 0;
    while (s > 1 && found < last_n && t->next - (s - 1) <= t->cap) {
      s--;
      found += type_matches(&t->ring[s % t->cap], prefix);
    }
    after = s - 1;
  } else if (!httpd_query(req, "after") && httpd_query(req, "last")) {
    after = t->next - 1; /* last=0: only what comes from now on */
  }
  /* A follower of an earlier run process, whose numbers went higher: this
   * one's start. */
  if (after >= t->next) after = 0;
  uint64_t last;
  size_t n;
  for (;;) {
    n = collect_after(t, after, prefix, (size_t)limit, &b, &last);
    if (n || !wait_ms) break;
    after = last; /* skip what did not match */
    if (pthread_cond_timedwait(&t->more, &t->mu, &until) == ETIMEDOUT) break;
  }
  uint64_t oldest = t->next > t->cap ? t->next - t->cap : 1;
  pthread_mutex_unlock(&t->mu);
  char tail[96];
  int tl = snprintf(tail, sizeof tail, "],\"next\":%llu,\"oldest\":%llu}", (unsigned long long)last,
                    (unsigned long long)oldest);
  ce_buf_append(&b, tail, (size_t)tl);
  httpd_respond(req, 200, "application/json", b.data, b.len, NULL, 0);
  ce_buf_cleanup(&b);
}

/* ------------------------------------------------------- outpost events */

static void events_usage(FILE *f) {
  fputs("usage: outpost events [options]\n"
        "\n"
        "Prints the CloudEvents flowing through the broker of `outpost run`, as they come\n"
        "(the last 10 first, then follows), one line each, or as JSON.\n"
        "\n"
        "  --server URL     the run process (default http://127.0.0.1:8089)\n"
        "  --data DIR       read the admin token from DIR/admin-token (default outpost-data)\n"
        "  --token TOKEN    the admin token instead\n"
        "  --type PREFIX    only events whose type starts with PREFIX\n"
        "  -n N             how many past events first (default 10)\n"
        "  --no-follow      print them and stop\n"
        "  --json           one JSON event per line instead\n"
        "  --timeout S      stop after S seconds (0, the default: never)\n",
        f);
}

static size_t collect(char *p, size_t size, size_t n, void *opaque) {
  return ce_buf_append(opaque, p, size * n) ? 0 : size * n;
}

/* "12:03:04.567" of an RFC 3339 time, or the whole string. */
static void short_time(const char *t, char *out, size_t size) {
  const char *tt = t ? strchr(t, 'T') : NULL;
  snprintf(out, size, "%.12s", tt ? tt + 1 : t ? t : "-");
}

static void print_line(const cJSON *ev) {
  char when[16];
  short_time(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "time")), when, sizeof when);
  const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "type"));
  const char *subject = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "subject"));
  printf("%-12s %-36s %-28s", when, type ? type : "?", subject ? subject : "-");
  static const char *const ext[] = {"tenant", "action", "severity"};
  for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, ext[i]));
    if (v) printf(" %s=%s", ext[i], v);
  }
  /* Then the data's short scalar fields, as far as a line goes. */
  const cJSON *f, *data = cJSON_GetObjectItemCaseSensitive(ev, "data");
  size_t room = 110;
  if (!cJSON_IsObject(data)) data = NULL;
  cJSON_ArrayForEach(f, data) {
    char v[48];
    if (cJSON_IsString(f) && strlen(f->valuestring) < sizeof v)
      snprintf(v, sizeof v, "%s", f->valuestring);
    else if (cJSON_IsNumber(f))
      snprintf(v, sizeof v, "%.15g", f->valuedouble);
    else if (cJSON_IsBool(f))
      snprintf(v, sizeof v, "%s", cJSON_IsTrue(f) ? "true" : "false");
    else
      continue;
    size_t need = strlen(f->string) + strlen(v) + 2;
    if (!strcmp(f->string, "id") || !strcmp(f->string, "tenant") || need > room) continue;
    printf(" %s=%s", f->string, v);
    room -= need;
  }
  putchar('\n');
}

static int read_token(const char *dir, char *out, size_t size) {
  char path[4096];
  snprintf(path, sizeof path, "%s/admin-token", dir);
  FILE *f = fopen(path, "re");
  if (!f) return -errno;
  bool ok = fgets(out, (int)size, f) != NULL;
  fclose(f);
  out[strcspn(out, "\r\n")] = '\0';
  return ok && *out ? 0 : -EINVAL;
}

int post_events_main(int argc, char **argv) {
  static const struct option opts[] = {{"server", required_argument, NULL, 's'},
                                       {"data", required_argument, NULL, 'd'},
                                       {"token", required_argument, NULL, 't'},
                                       {"type", required_argument, NULL, 'y'},
                                       {"no-follow", no_argument, NULL, 'N'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"timeout", required_argument, NULL, 'T'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *server = "http://127.0.0.1:8089", *dir = "outpost-data", *token = NULL, *type = NULL;
  bool follow = true, json = false;
  uint64_t last = 10, timeout_s = 0;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
    switch (c) {
    case 's':
      server = optarg;
      break;
    case 'd':
      dir = optarg;
      break;
    case 't':
      token = optarg;
      break;
    case 'y':
      type = optarg;
      break;
    case 'N':
      follow = false;
      break;
    case 'j':
      json = true;
      break;
    case 'n':
    case 'T':
      if (parse_u64(optarg, c == 'n' ? LIMIT_MAX : 86400 * 365, c == 'n' ? &last : &timeout_s)) {
        fprintf(stderr, "outpost events: bad number '%s'\n", optarg);
        return 2;
      }
      break;
    case 'h':
      events_usage(stdout);
      return 0;
    default:
      events_usage(stderr);
      return 2;
    }
  }
  char tok[512];
  if (!token) {
    if (read_token(dir, tok, sizeof tok)) {
      fprintf(stderr, "outpost events: no admin token in %s/admin-token (give --data or --token)\n",
              dir);
      return 2;
    }
    token = tok;
  }
  CURL *h = curl_easy_init();
  if (!h) return 1;
  char auth[600], url[2048], *etype = type ? curl_easy_escape(h, type, 0) : NULL;
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
  struct curl_slist *hdrs = curl_slist_append(NULL, auth);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  if (httpc_ca_file()) curl_easy_setopt(h, CURLOPT_CAINFO, httpc_ca_file());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(WAIT_MAX_MS + 10000));
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  uint64_t after = 0;
  bool first = true;
  int rc = 0;
  for (;;) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long wait = 25000,
         spent_ms = (long)(now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
    if (timeout_s && (long)timeout_s * 1000 - spent_ms < wait)
      wait = (long)timeout_s * 1000 - spent_ms;
    if (wait < 0) break;
    if (first)
      snprintf(url, sizeof url, "%s/v1/events?last=%llu&limit=%d%s%s", server,
               (unsigned long long)last, LIMIT_MAX, etype ? "&type=" : "", etype ? etype : "");
    else
      snprintf(url, sizeof url, "%s/v1/events?after=%llu&wait=%ld&limit=%d%s%s", server,
               (unsigned long long)after, wait, LIMIT_MAX, etype ? "&type=" : "",
               etype ? etype : "");
    ce_buf b;
    ce_buf_init(&b);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    cJSON *j = cc == CURLE_OK && status == 200 ? cJSON_ParseWithLength(b.data, b.len) : NULL;
    if (!j) {
      if (cc != CURLE_OK)
        fprintf(stderr, "outpost events: %s: %s\n", server, curl_easy_strerror(cc));
      else
        fprintf(stderr, "outpost events: HTTP %ld: %.*s\n", status, (int)b.len,
                b.data ? b.data : "");
      ce_buf_cleanup(&b);
      rc = 1;
      break;
    }
    ce_buf_cleanup(&b);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "events")) {
      const cJSON *ev = cJSON_GetObjectItemCaseSensitive(e, "event");
      if (json) {
        char *text = cJSON_PrintUnformatted(ev);
        if (text) puts(text);
        cJSON_free(text);
      } else {
        print_line(ev);
      }
    }
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(j, "next");
    if (cJSON_IsNumber(next)) after = (uint64_t)next->valuedouble;
    cJSON_Delete(j);
    fflush(stdout);
    if (!follow) break;
    first = false;
  }
  curl_free(etype);
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(h);
  return rc;
}
