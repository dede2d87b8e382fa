/*
 * httpc.c — the HTTP client on libcurl's multi interface.
 *
 * httpc_send checks a request, copies it into one allocation and queues it.
 * The client's thread takes the whole queue at once, gives each request an
 * easy handle on the one multi handle, and sleeps in curl_multi_poll until a
 * socket, a timer or curl_multi_wakeup (a new request, or httpc_stop) wakes
 * it. Every libcurl call but the wake-up and the URL check is made on that
 * thread, so the multi handle, its connection cache and the shared TLS
 * session cache need no locks. Connections stay in the multi handle's cache
 * between requests: the next request to the same host takes one from there
 * instead of making a TCP (and TLS) handshake.
 */
#include "core/httpc.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
  IDLE_WAIT_MS = 10000, /* curl_multi_poll's bound when idle; wake-ups end it sooner */
};

/* Which limit an answer broke, found in the callbacks that receive it. */
enum { OVER_NONE = 0, OVER_BODY, OVER_HEADERS, OVER_MEMORY };

/* Where a header of the answer lies in xfer.head: offsets, because the
 * buffer moves while it grows. */
typedef struct hdr_at {
  size_t name, name_len, value, value_len;
} hdr_at;

/* One request, from httpc_send to its done callback. */
typedef struct xfer {
  struct xfer *next, *prev; /* the queue (next only), then the active list */
  httpc *c;
  httpc_done done;
  void *opaque;
  int64_t t0_us;
  long timeout_ms;
  int64_t deadline_us; /* t0 + timeout, or INT64_MAX */
  CURL *easy;
  bool in_multi;
  struct curl_slist *slist;
  /* The request, in the same allocation, after the struct. */
  const char *method, *url;
  const char *lines; /* n_lines strings "Name: value" (or "Name;" when empty), NUL-terminated */
  size_t n_lines;
  bool has_content_type, has_expect;
  const char *body;
  size_t body_len;
  /* The answer. */
  ce_buf head; /* "name\0value\0" for each header of the latest response block */
  hdr_at *at;
  size_t n_at, cap_at;
  size_t head_bytes; /* header bytes of the block, counted as received */
  bool in_head;      /* between a status line and the blank line ending its block */
  ce_buf resp;       /* the body */
  int over;
  char errbuf[CURL_ERROR_SIZE];
} xfer;

struct httpc {
  httpc_opts opts;
  CURLM *multi;
  CURLSH *share;
  pthread_t thread;
  pthread_mutex_t mu;
  /* Under mu. */
  xfer *queue, *queue_tail;
  size_t inflight; /* accepted, done callback not yet begun */
  bool stopping;
  /* The client thread's own. */
  xfer *active;             /* in the multi handle */
  int64_t next_deadline_us; /* none in active is earlier (it may be past them all) */
  /* Finished easy handles kept for the next requests: as many as may be in
   * flight, so that a busy client never frees and remakes them (measured:
   * with 32 kept and 64 connections busy, 7 % of the thread went there). */
  CURL **pool;
  size_t n_pool;
};

void httpc_opts_init(httpc_opts *o) {
  o->max_inflight = 256;
  o->max_per_host = 64;
  o->max_response_body = 1024 * 1024;
  o->max_response_headers = 100;
  o->max_response_header_bytes = 64 * 1024;
  o->connect_timeout_ms = 5000;
  o->ca_file = httpc_ca_file();
}

const char *httpc_ca_file(void) {
  const char *f = getenv("OUTPOST_CA_FILE");
  return f && *f ? f : NULL;
}

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static char lower(char ch) {
  return ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
}

/* Case-insensitive: n bytes of a against the NUL-terminated b. */
static bool ieq(const char *a, size_t n, const char *b) {
  size_t i = 0;
  for (; i < n && b[i]; i++)
    if (lower(a[i]) != lower(b[i])) return false;
  return i == n && b[i] == '\0';
}

/* An RFC 9110 token: methods and header names. */
static bool is_token(const char *s, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    bool alnum = (ch >= '0' && ch <= '9') || (lower((char)ch) >= 'a' && lower((char)ch) <= 'z');
    if (!alnum && (ch == '\0' || !strchr("!#$%&'*+-.^_`|~", ch))) return false;
  }
  return true;
}

bool httpc_token_ok(const char *token) {
  for (const char *t = token; t && *t; t++)
    if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f) return false;
  return true;
}

char *httpc_bearer(const char *token) {
  size_t n = strlen(token) + sizeof "Bearer ";
  char *v = malloc(n);
  if (v) snprintf(v, n, "Bearer %s", token);
  return v;
}

/* An absolute http(s) URL that libcurl parses; checked here so that a bad
 * URL is the caller's -EINVAL now rather than an error in a callback. */
static bool url_ok(const char *url) {
  for (const char *p = url; *p; p++)
    if ((unsigned char)*p <= 0x20 || *p == 0x7f) return false;
  CURLU *u = curl_url();
  char *scheme = NULL;
  bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
            (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
  curl_free(scheme);
  curl_url_cleanup(u);
  return ok;
}

/* Header names the client owns (framing) are refused; values must not end
 * the header line early. */
static bool header_ok(const ce_kv *h) {
  if (!h->name || !is_token(h->name, h->name_len)) return false;
  if (ieq(h->name, h->name_len, "content-length") || ieq(h->name, h->name_len, "transfer-encoding"))
    return false;
  if (h->value_len && !h->value) return false;
  for (size_t i = 0; i < h->value_len; i++)
    if (h->value[i] == '\r' || h->value[i] == '\n' || h->value[i] == '\0') return false;
  return true;
}

/* How many of the first n bytes of s are in set. */
static size_t strspn_n(const char *s, size_t n, const char *set) {
  size_t i = 0;
  while (i < n && s[i] && strchr(set, s[i])) i++;
  return i;
}

/* Copies the request into one allocation: the struct, then its strings and
 * body. Returns NULL when out of memory. */
static xfer *xfer_new(const char *method, const char *url, const ce_kv *headers, size_t n_headers,
                      const void *body, size_t body_len) {
  size_t method_len = strlen(method), url_len = strlen(url);
  size_t size = sizeof(xfer) + method_len + 1 + url_len + 1;
  for (size_t i = 0; i < n_headers; i++) size += headers[i].name_len + 2 + headers[i].value_len + 1;
  if (body_len > SIZE_MAX - size) return NULL;
  xfer *x = malloc(size + body_len);
  if (!x) return NULL;
  memset(x, 0, sizeof *x);
  char *p = (char *)(x + 1);
  x->method = memcpy(p, method, method_len + 1);
  p += method_len + 1;
  x->url = memcpy(p, url, url_len + 1);
  p += url_len + 1;
  x->lines = p;
  for (size_t i = 0; i < n_headers; i++) {
    const ce_kv *h = &headers[i];
    memcpy(p, h->name, h->name_len);
    p += h->name_len;
    /* libcurl reads "Name:" (or blanks after the colon) as "remove the
     * header"; "Name;" sends it empty. */
    if (h->value_len > strspn_n(h->value, h->value_len, " \t")) {
      memcpy(p, ": ", 2);
      memcpy(p + 2, h->value, h->value_len);
      p += 2 + h->value_len;
    } else {
      *p++ = ';';
    }
    *p++ = '\0';
    x->has_content_type |= ieq(h->name, h->name_len, "content-type");
    x->has_expect |= ieq(h->name, h->name_len, "expect");
  }
  x->n_lines = n_headers;
  x->body = p;
  if (body_len) memcpy(p, body, body_len);
  x->body_len = body_len;
  ce_buf_init(&x->head);
  ce_buf_init(&x->resp);
  return x;
}

int httpc_send(httpc *c, const char *method, const char *url, const ce_kv *headers,
               size_t n_headers, const void *body, size_t body_len, long timeout_ms,
               httpc_done done, void *opaque) {
  if (!c || !method || !url || !done || timeout_ms < 0 || (body_len && !body) ||
      (n_headers && !headers) || !is_token(method, strlen(method)))
    return -EINVAL;
  /* A HEAD answer has no body whatever its headers say; with a request body
   * libcurl would wait for one. */
  if (body_len && strcmp(method, "HEAD") == 0) return -EINVAL;
  for (size_t i = 0; i < n_headers; i++)
    if (!header_ok(&headers[i])) return -EINVAL;
  if (!url_ok(url)) return -EINVAL;
  xfer *x = xfer_new(method, url, headers, n_headers, body, body_len);
  if (!x) return -ENOMEM;
  x->c = c;
  x->done = done;
  x->opaque = opaque;
  x->timeout_ms = timeout_ms;
  x->t0_us = now_us();
  x->deadline_us = timeout_ms ? x->t0_us + (int64_t)timeout_ms * 1000 : INT64_MAX;

  int rc = 0;
  pthread_mutex_lock(&c->mu);
  if (c->stopping) {
    rc = -ECANCELED;
  } else if (c->inflight >= c->opts.max_inflight) {
    rc = -EAGAIN;
  } else {
    c->inflight++;
    bool was_empty = !c->queue;
    if (c->queue_tail)
      c->queue_tail->next = x;
    else
      c->queue = x;
    c->queue_tail = x;
    /* The thread takes the whole queue at once, so one wake-up per batch is
     * enough. It is made under the lock so that it cannot reach a multi
     * handle that httpc_stop has cleaned up. */
    if (was_empty) curl_multi_wakeup(c->multi);
  }
  pthread_mutex_unlock(&c->mu);
  if (rc) free(x);
  return rc;
}

/* ---------------------------------------------------------------- answers */

/* A folded line (obsolete line folding) continues the last header's value. */
static int unfold(xfer *x, const char *s, const char *end) {
  if (x->n_at == 0) return 0;
  while (s < end && (*s == ' ' || *s == '\t')) s++;
  hdr_at *h = &x->at[x->n_at - 1];
  x->head.len--; /* the value's NUL: the value is the last thing in head */
  if ((h->value_len && ce_buf_append(&x->head, " ", 1)) ||
      ce_buf_append(&x->head, s, (size_t)(end - s)) || ce_buf_append(&x->head, "", 1))
    return -ENOMEM;
  h->value_len = x->head.len - 1 - h->value;
  return 0;
}

static int add_header(xfer *x, const char *s, const char *colon, const char *end) {
  if (x->n_at == x->cap_at) {
    size_t cap = x->cap_at ? 2 * x->cap_at : 16;
    hdr_at *at = realloc(x->at, cap * sizeof *at);
    if (!at) return -ENOMEM;
    x->at = at;
    x->cap_at = cap;
  }
  const char *v = colon + 1;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
  hdr_at h = {.name = x->head.len, .name_len = (size_t)(colon - s)};
  if (ce_buf_reserve(&x->head, h.name_len + 1)) return -ENOMEM;
  for (size_t i = 0; i < h.name_len; i++) x->head.data[x->head.len++] = lower(s[i]);
  if (ce_buf_append(&x->head, "", 1)) return -ENOMEM;
  h.value = x->head.len;
  h.value_len = (size_t)(end - v);
  if (ce_buf_append(&x->head, v, h.value_len) || ce_buf_append(&x->head, "", 1)) return -ENOMEM;
  x->at[x->n_at++] = h;
  return 0;
}

/* libcurl hands over each header line of each response block: interim 1xx
 * answers too, and trailers after the body. Only the last block counts. */
static size_t on_header(char *buf, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  const httpc_opts *o = &x->c->opts;
  size_t len = size * n;
  const char *s = buf, *end = buf + len;
  while (end > s && (end[-1] == '\n' || end[-1] == '\r')) end--;
  if (len >= 5 && memcmp(s, "HTTP/", 5) == 0) {
    x->n_at = 0;
    ce_buf_reset(&x->head);
    x->head_bytes = len;
    x->in_head = true;
    return len;
  }
  if (!x->in_head) return len; /* trailers */
  if (end == s) {
    x->in_head = false;
    return len;
  }
  x->head_bytes += len;
  if (x->head_bytes > o->max_response_header_bytes) {
    x->over = OVER_HEADERS;
    return 0;
  }
  int rc = 0;
  if (*s == ' ' || *s == '\t') {
    rc = unfold(x, s, end);
  } else {
    const char *colon = memchr(s, ':', (size_t)(end - s));
    if (!colon || colon == s) return len; /* not a header line: libcurl lets it pass, so do we */
    if (x->n_at == o->max_response_headers) {
      x->over = OVER_HEADERS;
      return 0;
    }
    rc = add_header(x, s, colon, end);
  }
  if (rc) {
    x->over = OVER_MEMORY;
    return 0;
  }
  return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  size_t len = size * n;
  if (len > x->c->opts.max_response_body - x->resp.len) {
    x->over = OVER_BODY;
    return 0;
  }
  if (ce_buf_append(&x->resp, buf, len)) {
    x->over = OVER_MEMORY;
    return 0;
  }
  return len;
}

/* Retry-After (RFC 9110 §10.2.3): delta-seconds, or an HTTP-date. Every
 * HTTP-date form starts with a day name, which keeps curl_getdate's looser
 * readings (it takes many formats) away from values that are neither. */
static int64_t retry_after(const ce_kv *kv, size_t n) {
  const char *v = NULL;
  for (size_t i = 0; i < n && !v; i++)
    if (strcmp(kv[i].name, "retry-after") == 0) v = kv[i].value;
  if (!v || !*v) return -1;
  if (*v >= '0' && *v <= '9') {
    /* Saturates at 10^15 s, far past any delay a caller will honour. */
    int64_t sec = 0;
    for (; *v >= '0' && *v <= '9'; v++)
      if ((sec = sec * 10 + (*v - '0')) > 1000000000000000) sec = 1000000000000000;
    return *v ? -1 : sec * 1000;
  }
  if (!((*v >= 'A' && *v <= 'Z') || (*v >= 'a' && *v <= 'z'))) return -1;
  time_t t = curl_getdate(v, NULL);
  if (t == -1) return -1;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t ms = (int64_t)t * 1000 - ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
  return ms > 0 ? ms : 0;
}

/* libcurl's result in errno terms (see httpc_result.error). */
static int map_error(xfer *x, CURLcode rc) {
  if (x->over == OVER_BODY || x->over == OVER_HEADERS) return -EMSGSIZE;
  if (x->over == OVER_MEMORY) return -ENOMEM;
  long os = 0;
  switch (rc) {
  case CURLE_OK:
    return 0;
  case CURLE_OPERATION_TIMEDOUT:
    return -ETIMEDOUT;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    return -EHOSTUNREACH;
  case CURLE_COULDNT_CONNECT:
    curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &os);
    if (os == EHOSTUNREACH || os == ENETUNREACH) return -EHOSTUNREACH;
    if (os == ETIMEDOUT) return -ETIMEDOUT;
    return os == ECONNREFUSED || os == 0 ? -ECONNREFUSED : -EIO;
  case CURLE_FILESIZE_EXCEEDED: /* Content-Length over the limit, seen before the body */
    return -EMSGSIZE;
  case CURLE_OUT_OF_MEMORY:
    return -ENOMEM;
  case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
  case CURLE_HTTP3:
  case CURLE_BAD_CONTENT_ENCODING:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_USE_SSL_FAILED:
    return -EPROTO;
  default:
    return -EIO;
  }
}

/* ---------------------------------------------------------------- the client thread */

static CURL *easy_take(httpc *c) {
  return c->n_pool ? c->pool[--c->n_pool] : curl_easy_init();
}

static void easy_give(httpc *c, CURL *easy) {
  if (c->n_pool == c->opts.max_inflight) {
    curl_easy_cleanup(easy);
    return;
  }
  curl_easy_reset(easy);
  c->pool[c->n_pool++] = easy;
}

/* Ends a request: builds its result, hands the easy handle back, and calls
 * done. error/text: the outcome, decided by the caller. */
static void finish(httpc *c, xfer *x, int error, const char *text) {
  httpc_result res = {.error = error, .retry_after_ms = -1, .body = ""};
  ce_kv *kv = x->n_at ? malloc(x->n_at * sizeof *kv) : NULL;
  if (x->n_at && !kv && !error) {
    error = res.error = -ENOMEM;
    text = "out of memory";
  }
  if (error && text) snprintf(res.error_text, sizeof res.error_text, "%s", text);
  if (kv) {
    for (size_t i = 0; i < x->n_at; i++) {
      const hdr_at *h = &x->at[i];
      kv[i] = (ce_kv){x->head.data + h->name, h->name_len, x->head.data + h->value, h->value_len};
    }
    res.headers = kv;
    res.n_headers = x->n_at;
    res.retry_after_ms = retry_after(kv, x->n_at);
  }
  if (!error && x->resp.data) {
    res.body = x->resp.data;
    res.body_len = x->resp.len;
  }
  if (x->easy) {
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &res.status);
    if (x->in_multi) {
      curl_multi_remove_handle(c->multi, x->easy);
      if (x->prev)
        x->prev->next = x->next;
      else
        c->active = x->next;
      if (x->next) x->next->prev = x->prev;
    }
    easy_give(c, x->easy);
  }
  curl_slist_free_all(x->slist);
  res.elapsed_us = now_us() - x->t0_us;

  /* A slot frees before the callback, so that the callback may send again. */
  pthread_mutex_lock(&c->mu);
  c->inflight--;
  pthread_mutex_unlock(&c->mu);
  x->done(x->opaque, &res);

  free(kv);
  free(x->at);
  ce_buf_cleanup(&x->head);
  ce_buf_cleanup(&x->resp);
  free(x);
}

static int add_line(struct curl_slist **list, const char *line) {
  struct curl_slist *l = curl_slist_append(*list, line);
  if (!l) return -ENOMEM;
  *list = l;
  return 0;
}

/* The request's header list: the caller's, and what libcurl would add and
 * must not. */
static int build_headers(xfer *x, bool posts) {
  const char *line = x->lines;
  for (size_t i = 0; i < x->n_lines; i++, line += strlen(line) + 1)
    if (add_line(&x->slist, line)) return -ENOMEM;
  /* "Expect: 100-continue" costs a round trip (or a 1 s wait on servers that
   * ignore it) before a large body goes out. */
  if (!x->has_expect && add_line(&x->slist, "Expect:")) return -ENOMEM;
  /* libcurl labels a posted body application/x-www-form-urlencoded, which a
   * CloudEvents receiver would read as the event's datacontenttype. */
  if (posts && !x->has_content_type && add_line(&x->slist, "Content-Type:")) return -ENOMEM;
  return 0;
}

static int setup(httpc *c, xfer *x) {
  CURL *e = x->easy;
  const httpc_opts *o = &c->opts;
  bool get = strcmp(x->method, "GET") == 0, head = strcmp(x->method, "HEAD") == 0;
  bool posts = x->body_len || (!get && !head && strcmp(x->method, "DELETE") != 0 &&
                               strcmp(x->method, "OPTIONS") != 0);
  if (build_headers(x, posts)) return -ENOMEM;
  CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
  if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val)
  SET(CURLOPT_PRIVATE, x);
  SET(CURLOPT_URL, x->url);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_SHARE, c->share);
  SET(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
  SET(CURLOPT_ERRORBUFFER, x->errbuf);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_HEADERDATA, x);
  SET(CURLOPT_WRITEFUNCTION, on_body);
  SET(CURLOPT_WRITEDATA, x);
  SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_response_body);
  SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  SET(CURLOPT_HTTPHEADER, x->slist);
  if (o->ca_file) SET(CURLOPT_CAINFO, o->ca_file);
  if (posts) {
    /* POST semantics (a body with its Content-Length), under the caller's
     * method. An empty PUT or PATCH still says Content-Length: 0. */
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
    SET(CURLOPT_POSTFIELDS, x->body);
    if (strcmp(x->method, "POST") != 0) SET(CURLOPT_CUSTOMREQUEST, x->method);
  } else if (head) {
    SET(CURLOPT_NOBODY, 1L);
  } else if (!get) {
    SET(CURLOPT_CUSTOMREQUEST, x->method);
  }
#undef SET
  return rc == CURLE_OK ? 0 : rc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EIO;
}

static void start(httpc *c, xfer *x) {
  x->easy = easy_take(c);
  if (!x->easy) {
    finish(c, x, -ENOMEM, "out of memory");
    return;
  }
  int rc = setup(c, x);
  if (rc) {
    finish(c, x, rc, "cannot set up the transfer");
    return;
  }
  if (curl_multi_add_handle(c->multi, x->easy) != CURLM_OK) {
    finish(c, x, -ENOMEM, "cannot add the transfer");
    return;
  }
  x->in_multi = true;
  x->prev = NULL;
  x->next = c->active;
  if (c->active) c->active->prev = x;
  c->active = x;
  if (x->deadline_us < c->next_deadline_us) c->next_deadline_us = x->deadline_us;
}

/* Request timeouts are kept here rather than by CURLOPT_TIMEOUT_MS: libcurl
 * 7.88 does not time out a transfer while it waits for a connection (all
 * max_per_host of them busy), and a slow subscriber would then hold every
 * later request to it past its timeout. The list is walked only when the
 * earliest deadline has come, which costs a walk per finished transfer at
 * worst. */
static void expire(httpc *c) {
  int64_t now = now_us(), next = INT64_MAX;
  if (now < c->next_deadline_us) return;
  for (xfer *x = c->active, *after; x; x = after) {
    after = x->next; /* finish takes x out; callbacks only queue */
    if (x->deadline_us <= now) {
      char text[64];
      snprintf(text, sizeof text, "timed out after %ld ms", x->timeout_ms);
      finish(c, x, -ETIMEDOUT, text);
    } else if (x->deadline_us < next) {
      next = x->deadline_us;
    }
  }
  c->next_deadline_us = next;
}

/* How long curl_multi_poll may sleep, as far as deadlines go (it also stops
 * for libcurl's own timers). */
static int wait_ms(const httpc *c) {
  if (c->next_deadline_us == INT64_MAX) return IDLE_WAIT_MS;
  int64_t ms = (c->next_deadline_us - now_us() + 999) / 1000;
  return ms <= 0 ? 0 : ms < IDLE_WAIT_MS ? (int)ms : IDLE_WAIT_MS;
}

/* Finishes the transfers libcurl reports done. */
static void drain(httpc *c) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(c->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    xfer *x = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    CURLcode rc = m->data.result;
    int error = map_error(x, rc);
    char text[CURL_ERROR_SIZE];
    if (x->over == OVER_BODY)
      snprintf(text, sizeof text, "response body over %zu bytes", c->opts.max_response_body);
    else if (x->over == OVER_HEADERS)
      snprintf(text, sizeof text, "response headers over %zu or %zu bytes",
               c->opts.max_response_headers, c->opts.max_response_header_bytes);
    else if (rc == CURLE_FILESIZE_EXCEEDED)
      snprintf(text, sizeof text, "response body over %zu bytes (Content-Length)",
               c->opts.max_response_body);
    else
      snprintf(text, sizeof text, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
    finish(c, x, error, text); /* m is gone after this: it removes the handle */
  }
}

static void *run(void *arg) {
  httpc *c = arg;
  for (;;) {
    pthread_mutex_lock(&c->mu);
    xfer *q = c->queue;
    c->queue = c->queue_tail = NULL;
    bool stopping = c->stopping;
    pthread_mutex_unlock(&c->mu);
    if (stopping) {
      while (c->active) finish(c, c->active, -ECANCELED, "the client is stopping");
      for (xfer *next; q; q = next) {
        next = q->next;
        finish(c, q, -ECANCELED, "the client is stopping");
      }
      return NULL;
    }
    for (xfer *next; q; q = next) {
      next = q->next;
      start(c, q);
    }
    int running;
    curl_multi_perform(c->multi, &running);
    drain(c);
    expire(c);
    if (curl_multi_poll(c->multi, NULL, 0, wait_ms(c), NULL) != CURLM_OK) {
      /* Not expected; a pause keeps a persistent failure from spinning. */
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
}

/* ---------------------------------------------------------------- start and stop */

static void fail(char *errbuf, size_t errlen, const char *msg) {
  if (errbuf && errlen) snprintf(errbuf, errlen, "%s", msg);
}

httpc *httpc_start(const httpc_opts *opts, char *errbuf, size_t errlen) {
  httpc_opts def;
  httpc_opts_init(&def);
  httpc *c = calloc(1, sizeof *c);
  if (!c) {
    fail(errbuf, errlen, "out of memory");
    return NULL;
  }
  c->opts = opts ? *opts : def;
  c->next_deadline_us = INT64_MAX;
  httpc_opts *o = &c->opts;
  if (!o->max_inflight) o->max_inflight = def.max_inflight;
  if (!o->max_per_host) o->max_per_host = def.max_per_host;
  if (!o->max_response_body) o->max_response_body = def.max_response_body;
  if (!o->max_response_headers) o->max_response_headers = def.max_response_headers;
  if (!o->max_response_header_bytes) o->max_response_header_bytes = def.max_response_header_bytes;
  if (o->connect_timeout_ms <= 0) o->connect_timeout_ms = def.connect_timeout_ms;
  if (!o->ca_file) o->ca_file = def.ca_file;

  /* libcurl counts these calls; they are thread-safe in builds that say so
   * (CURL_VERSION_THREADSAFE, 7.84 and later), as Debian 12's does. */
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fail(errbuf, errlen, "cannot initialise libcurl");
    goto free_client;
  }
  c->multi = curl_multi_init();
  c->share = curl_share_init();
  if (!c->multi || !c->share) {
    fail(errbuf, errlen, "out of memory");
    goto cleanup_curl;
  }
  /* TLS sessions are resumed across easy handles, like connections. */
  curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->max_per_host);
  /* Keep as many idle connections as there may be requests, not libcurl's
   * default (four per easy handle in use, which shrinks when idle). */
  curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)o->max_inflight);
  c->pool = calloc(o->max_inflight, sizeof *c->pool);
  if (!c->pool) {
    fail(errbuf, errlen, "out of memory");
    goto cleanup_curl;
  }
  if (pthread_mutex_init(&c->mu, NULL)) {
    fail(errbuf, errlen, "cannot create a mutex");
    goto cleanup_curl;
  }
  if (pthread_create(&c->thread, NULL, run, c)) {
    fail(errbuf, errlen, "cannot create the client thread");
    goto destroy_mutex;
  }
  return c;

destroy_mutex:
  pthread_mutex_destroy(&c->mu);
cleanup_curl:
  free(c->pool);
  curl_multi_cleanup(c->multi);
  curl_share_cleanup(c->share);
  curl_global_cleanup();
free_client:
  free(c);
  return NULL;
}

void httpc_stop(httpc *c) {
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  c->stopping = true;
  curl_multi_wakeup(c->multi);
  pthread_mutex_unlock(&c->mu);
  pthread_join(c->thread, NULL);
  curl_multi_cleanup(c->multi);
  /* Pooled handles still hold the share: they go first. */
  while (c->n_pool) curl_easy_cleanup(c->pool[--c->n_pool]);
  free(c->pool);
  curl_share_cleanup(c->share);
  pthread_mutex_destroy(&c->mu);
  curl_global_cleanup();
  free(c);
}
