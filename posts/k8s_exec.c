/*
 * k8s_exec.c — posts_env_exec on Kubernetes: GET .../pods/<pod>/exec
 * upgraded to a WebSocket with the subprotocol v4.channel.k8s.io, which the
 * API server passes through to the kubelet of the pod's node. Debian 12's
 * libcurl (7.88) has no WebSocket API, so libcurl only opens the connection
 * (CURLOPT_CONNECT_ONLY, with the runtime's TLS and credentials: see
 * posts__k8s_setup) and this file speaks HTTP/1.1 and RFC 6455 on it with
 * curl_easy_send and curl_easy_recv.
 *
 * The protocol: each binary message's first byte is its channel (1 stdout,
 * 2 stderr, 3 a metav1.Status once the command ended: Success, or Failure
 * with reason NonZeroExitCode and the code in details.causes, or another
 * failure when the command could not be run). stdin is not opened, so the
 * only frames a client sends are pongs and a close.
 *
 * Kubernetes exec has no user, working directory or environment: env and
 * workdir are given by running the command under `env -- K=V... sh -c
 * 'cd -- "$1" && shift && exec "$@"' sh DIR ARGV...`, where every value
 * is an argument of its own and the script is constant, so nothing a caller
 * passes is ever parsed by a shell (the image must then have env and sh).
 * A user cannot be given without privileges a lab pod does not have:
 * -EINVAL.
 *
 * SHA-1 is written here rather than taken from OpenSSL, whose headers
 * (libssl-dev) are not among the build's dependencies; it only checks the
 * server's handshake answer, it protects nothing. base64 is core/ce's.
 */
#include "posts/k8s_int.h"

#include "core/ce.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define WS_GUID     "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_PROTOCOL "v4.channel.k8s.io"
#define MAX_HEAD    (16 << 10)  /* the upgrade answer's status line and headers */
#define MAX_BODY    (64 << 10)  /* an error answer's body, kept for its message */
#define MAX_STATUS  (64 << 10)  /* channel 3's Status */
#define MAX_TARGET  (256 << 10) /* the request line's target: argv is in it */
#define CONNECT_MS  10000L
#define MAX_TIMEOUT (7L * 86400 * 1000) /* ms: longer is for ever, and must not overflow */
#define SLICE_MS    100                 /* how often a wait looks at the cancel flag */
#define LINGER_MS   1000                /* how long the server may take to close after the Status */
#define BYE_MS      200                 /* how long our close frame may take to go */

enum { CH_STDOUT = 1, CH_STDERR = 2, CH_STATUS = 3 };
enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

/* ------------------------------------------------------- SHA-1, base64 */

static uint32_t rol(uint32_t x, int n) {
  return x << n | x >> (32 - n);
}

static void sha1_block(uint32_t h[5], const unsigned char *p) {
  uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
           p[4 * i + 3];
  for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  for (int i = 0; i < 80; i++) {
    uint32_t f, k, t;
    if (i < 20)
      f = (b & c) | (~b & d), k = 0x5A827999;
    else if (i < 40)
      f = b ^ c ^ d, k = 0x6ED9EBA1;
    else if (i < 60)
      f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
    else
      f = b ^ c ^ d, k = 0xCA62C1D6;
    t = rol(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = rol(b, 30);
    b = a;
    a = t;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

void posts__k8s_sha1(const void *data, size_t n, unsigned char out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  const unsigned char *p = data;
  unsigned char last[128] = {0};
  size_t full = n / 64 * 64, rest = n - full, tail = rest + 9 <= 64 ? 64 : 128;
  uint64_t bits = (uint64_t)n * 8;
  for (size_t i = 0; i < full; i += 64) sha1_block(h, p + i);
  if (rest) memcpy(last, p + full, rest);
  last[rest] = 0x80;
  for (int i = 0; i < 8; i++) last[tail - 1 - i] = (unsigned char)(bits >> (8 * i));
  sha1_block(h, last);
  if (tail == 128) sha1_block(h, last + 64);
  for (int i = 0; i < 20; i++) out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

/* n bytes as base64 with padding into out[4 * ((n + 2) / 3) + 1] ("" when
 * out of memory, which the handshake then fails on). */
static void base64(const unsigned char *in, size_t n, char *out) {
  ce_buf b;
  ce_buf_init(&b);
  out[0] = '\0';
  if (!ce_base64_encode(in, n, &b)) memcpy(out, b.data, b.len + 1);
  ce_buf_cleanup(&b);
}

void posts__k8s_ws_accept(const char *key, char out[29]) {
  char text[64 + sizeof WS_GUID];
  unsigned char sum[20];
  snprintf(text, sizeof text, "%.63s%s", key, WS_GUID);
  posts__k8s_sha1(text, strlen(text), sum);
  base64(sum, sizeof sum, out);
}

/* ------------------------------------------------------------- frames */

size_t posts__k8s_ws_frame(unsigned char *out, int op, const void *payload, size_t n,
                           const unsigned char mask[4]) {
  const unsigned char *p = payload;
  out[0] = (unsigned char)(0x80 | (op & 0x0f));
  out[1] = (unsigned char)(0x80 | n); /* the caller keeps n <= 125 */
  memcpy(out + 2, mask, 4);
  for (size_t i = 0; i < n; i++) out[6 + i] = p[i] ^ mask[i % 4];
  return 6 + n;
}

/* Bytes the header in hdr needs, from what of it has come. */
static size_t header_need(const unsigned char *hdr, size_t len) {
  if (len < 2) return 2;
  return 2 + ((hdr[1] & 0x7f) == 126 ? 2 : (hdr[1] & 0x7f) == 127 ? 8 : 0);
}

/* The header is whole: checks it and opens the frame. */
static int frame_begin(k8s_ws *ws, posts_err *err) {
  unsigned char op = ws->hdr[0] & 0x0f, len7 = ws->hdr[1] & 0x7f;
  bool control = op & 8;
  ws->fin = ws->hdr[0] & 0x80;
  ws->op = op;
  ws->hdr_len = 0;
  if (len7 < 126) {
    ws->left = len7;
  } else {
    size_t m = len7 == 126 ? 2 : 8;
    ws->left = 0;
    for (size_t i = 0; i < m; i++) ws->left = ws->left << 8 | ws->hdr[2 + i];
    if (ws->left >> 63) return posts__err(err, -EPROTO, 0, "exec: a frame length over 2^63");
  }
  if (op != OP_CONT && op != OP_TEXT && op != OP_BINARY && op != OP_CLOSE && op != OP_PING &&
      op != OP_PONG)
    return posts__err(err, -EPROTO, 0, "exec: a frame of unknown opcode %u", op);
  if (control && (!ws->fin || ws->left > 125))
    return posts__err(err, -EPROTO, 0, "exec: a control frame fragmented or over 125 bytes");
  if (op == OP_CONT && !ws->in_msg)
    return posts__err(err, -EPROTO, 0, "exec: a continuation frame with no message open");
  if ((op == OP_TEXT || op == OP_BINARY) && ws->in_msg)
    return posts__err(err, -EPROTO, 0, "exec: a new message before the last one ended");
  if (op == OP_TEXT || op == OP_BINARY) {
    ws->in_msg = true;
    ws->channel = -1;
  }
  ws->ctl_len = 0;
  ws->in_frame = true;
  return 0;
}

static int frame_end(k8s_ws *ws, const k8s_ws_sink *sink) {
  ws->in_frame = false;
  if (ws->op & 8) return sink->control(sink->arg, ws->op, ws->ctl, ws->ctl_len);
  if (!ws->fin) return 0;
  ws->in_msg = false;
  /* A message without even its channel byte says nothing. */
  return ws->channel < 0 ? 0 : sink->data(sink->arg, ws->channel, NULL, 0, true);
}

static int payload(k8s_ws *ws, const k8s_ws_sink *sink, const char *p, size_t n) {
  if (ws->op & 8) {
    memcpy(ws->ctl + ws->ctl_len, p, n); /* frame_begin kept it <= 125 */
    ws->ctl_len += n;
    return 0;
  }
  if (ws->channel < 0 && n) {
    ws->channel = (unsigned char)p[0];
    p++;
    n--;
  }
  return n ? sink->data(sink->arg, ws->channel, p, n, false) : 0;
}

int posts__k8s_ws_feed(k8s_ws *ws, const char *p, size_t n, const k8s_ws_sink *sink,
                       posts_err *err) {
  size_t i = 0;
  int rc;
  while (i < n) {
    if (!ws->in_frame) {
      ws->hdr[ws->hdr_len++] = (unsigned char)p[i++];
      if (ws->hdr_len == 2 && (ws->hdr[1] & 0x80))
        return posts__err(err, -EPROTO, 0, "exec: a masked frame from the server");
      if (ws->hdr_len == 1 && (ws->hdr[0] & 0x70))
        return posts__err(err, -EPROTO, 0, "exec: reserved bits set (no extension was agreed)");
      if (ws->hdr_len < header_need(ws->hdr, ws->hdr_len)) continue;
      if ((rc = frame_begin(ws, err)) < 0) return rc;
      if (ws->left == 0 && (rc = frame_end(ws, sink)) != 0) return rc;
      continue;
    }
    size_t take = n - i < ws->left ? n - i : (size_t)ws->left;
    if ((rc = payload(ws, sink, p + i, take)) != 0) return rc;
    i += take;
    ws->left -= take;
    if (ws->left == 0 && (rc = frame_end(ws, sink)) != 0) return rc;
  }
  return 0;
}

/* ------------------------------------------------------------- Status */

/* The code in details.causes[{reason: ExitCode, message: "<code>"}]. */
static bool exit_cause(const cJSON *st, int *code) {
  const cJSON *cause;
  cJSON_ArrayForEach(cause, cJSON_GetObjectItemCaseSensitive(
                                cJSON_GetObjectItemCaseSensitive(st, "details"), "causes")) {
    const char *r = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cause, "reason"));
    const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cause, "message"));
    char *end;
    long v;
    if (!r || strcmp(r, "ExitCode") != 0 || !m) continue;
    v = strtol(m, &end, 10);
    if (end == m || *end || v < 0 || v > 255) return false;
    *code = (int)v;
    return true;
  }
  return false;
}

int posts__k8s_exec_status(const char *text, size_t n, int *code, char *msg, size_t msglen) {
  cJSON *st = cJSON_ParseWithLength(text, n);
  const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "status"));
  const char *reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "reason"));
  const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "message"));
  int rc = 0;
  snprintf(msg, msglen, "%s", m ? m : "");
  if (!status) {
    rc = -EPROTO;
  } else if (strcmp(status, "Success") == 0) {
    *code = 0;
  } else if (!(reason && strcmp(reason, "NonZeroExitCode") == 0 && exit_cause(st, code))) {
    /* The runtime could not start it: what a shell would say, 127 for a
     * command it cannot find, 126 for one it cannot run. */
    *code = m && (strstr(m, "not found") || strstr(m, "no such file")) ? 127 : 126;
    rc = 1;
  }
  cJSON_Delete(st);
  return rc;
}

/* ----------------------------------------------------------- the request */

static const char WRAP_CD[] = "cd -- \"$1\" && shift && exec \"$@\"";
static const char WRAP[] = "exec \"$@\"";

/* The argv to run: req's own, or wrapped for env and workdir. NULL-ended,
 * the caller frees the array (not the strings). */
static const char **command_of(const posts_exec_req *req, posts_err *err) {
  size_t n_env = 0, n_argv = 0, i = 0;
  const char **v;
  for (; req->env && req->env[n_env]; n_env++) {
    const char *eq = strchr(req->env[n_env], '=');
    if (!eq || eq == req->env[n_env]) {
      posts__err(err, -EINVAL, 0, "env.%zu: not KEY=VALUE", n_env);
      return NULL;
    }
  }
  while (req->argv[n_argv]) n_argv++;
  if (!(v = calloc(n_env + n_argv + 9, sizeof *v))) {
    posts__err(err, -ENOMEM, 0, "out of memory");
    return NULL;
  }
  if (n_env) {
    v[i++] = "env";
    v[i++] = "--"; /* a key may begin with '-' */
    for (size_t e = 0; e < n_env; e++) v[i++] = req->env[e];
  }
  if (n_env || req->workdir) {
    /* Also without a workdir: a command whose name holds '=' would be taken
     * by env for one more variable. */
    v[i++] = "sh";
    v[i++] = "-c";
    v[i++] = req->workdir ? WRAP_CD : WRAP;
    v[i++] = "sh";
    if (req->workdir) v[i++] = req->workdir;
  }
  for (size_t a = 0; a < n_argv; a++) v[i++] = req->argv[a];
  return v;
}

/* The request line's target: the pod's exec with argv as command
 * parameters, into a new *out the caller frees. */
static int exec_target(k8s *k, const char *kns, const char *name, const posts_exec_req *req,
                       char **out, posts_err *err) {
  const char *path = strstr(k->server, "://");
  const char **argv = command_of(req, err);
  posts__buf t = {.max = MAX_TARGET};
  char head[400];
  *out = NULL;
  if (!argv) return err ? err->code : -EINVAL;
  path = strchr(path ? path + 3 : k->server, '/'); /* the server's own path prefix, if any */
  if (path) posts__buf_put(&t, path, strlen(path));
  snprintf(head, sizeof head,
           "/api/v1/namespaces/%s/pods/%s/exec?container=" K8S_CONTAINER "&stdout=true&stderr=true",
           kns, name);
  posts__buf_put(&t, head, strlen(head));
  for (size_t i = 0; argv[i] && !t.over && !t.nomem; i++) {
    char *e = curl_easy_escape(NULL, argv[i], 0);
    if (!e) {
      t.nomem = true;
      break;
    }
    posts__buf_put(&t, "&command=", 9);
    posts__buf_put(&t, e, strlen(e));
    curl_free(e);
  }
  free(argv);
  if (t.nomem || t.over) {
    free(t.p);
    return t.nomem ? posts__err(err, -ENOMEM, 0, "out of memory")
                   : posts__err(err, -EINVAL, 0, "argv: over %d bytes in the exec URL", MAX_TARGET);
  }
  *out = t.p;
  return 0;
}

/* -EBUSY unless the pod runs (the runtime's inspect): the API server would
 * pass the exec on to a kubelet that has nothing to run it in. */
static int check_running(posts_runtime *rt, const char *id, posts_err *err) {
  posts_env_info info = {0};
  int rc = posts_env_inspect(rt, id, &info, err);
  if (rc == 0 && info.state != POSTS_ENV_RUNNING)
    rc = posts__err(err, -EBUSY, 0, "exec %s: not running (%s)", id,
                    posts_env_state_name(info.state));
  posts_env_info_cleanup(&info);
  return rc;
}

/* --------------------------------------------------------- the socket */

/* One exec's connection and what came over it. */
typedef struct conn {
  k8s *k;
  CURL *h;
  curl_socket_t fd;
  int64_t deadline; /* monotonic ms: timeout_ms after the call began */
  k8s_ws ws;
  posts__buf out, err, status;
  bool status_done; /* channel 3 brought its message */
  int64_t status_at;
  bool upgraded; /* frames go both ways */
  bool closed;   /* the server's close frame came (and was answered) */
  unsigned close_code;
  posts_err *perr;
} conn;

/* Waits up to until (monotonic ms) for the socket to be ready for events,
 * looking at the cancel flag every SLICE_MS. 0 ready, -ETIMEDOUT,
 * -ECANCELED. */
static int wait_fd(conn *c, short events, int64_t until) {
  for (;;) {
    int64_t now = posts__k8s_mono_ms(), left = until - now;
    struct pollfd pfd = {.fd = c->fd, .events = events};
    if (atomic_load(&c->k->cancel)) return -ECANCELED;
    if (left <= 0) return -ETIMEDOUT;
    if (poll(&pfd, 1, (int)(left < SLICE_MS ? left : SLICE_MS)) > 0) return 0;
  }
}

static int send_all(conn *c, const void *data, size_t n, int64_t until) {
  const char *p = data;
  while (n) {
    size_t sent = 0;
    CURLcode cc = curl_easy_send(c->h, p, n, &sent);
    int rc;
    if (cc == CURLE_AGAIN) {
      if ((rc = wait_fd(c, POLLOUT, until)) < 0) return rc;
      continue;
    }
    if (cc != CURLE_OK)
      return posts__err(c->perr, -EIO, 0, "exec: sending: %s", curl_easy_strerror(cc));
    p += sent;
    n -= sent;
  }
  return 0;
}

/* Reads what has come into buf[cap]: 0 with *got > 0, or with *got == 0
 * at the end of the stream; -ETIMEDOUT after until; -ECANCELED; -EIO.
 * The clock and the flag are looked at before each read, not only when
 * there is nothing to read: a command that never stops writing must time
 * out too. */
static int recv_some(conn *c, char *buf, size_t cap, size_t *got, int64_t until) {
  for (;;) {
    CURLcode cc;
    int rc;
    if (atomic_load(&c->k->cancel)) return -ECANCELED;
    if (posts__k8s_mono_ms() >= until) return -ETIMEDOUT;
    if ((cc = curl_easy_recv(c->h, buf, cap, got)) == CURLE_OK) return 0;
    if (cc != CURLE_AGAIN)
      return posts__err(c->perr, -EIO, 0, "exec: receiving: %s", curl_easy_strerror(cc));
    if ((rc = wait_fd(c, POLLIN, until)) < 0) return rc;
  }
}

static int send_control(conn *c, int op, const void *p, size_t n, int64_t until) {
  unsigned char frame[6 + 125], mask[4];
  if (getrandom(mask, sizeof mask, 0) != (ssize_t)sizeof mask)
    return posts__err(c->perr, -EIO, 0, "exec: no random bytes for a frame's mask");
  return send_all(c, frame, posts__k8s_ws_frame(frame, op, p, n, mask), until);
}

/* --------------------------------------------------------- the frames */

static int on_data(void *arg, int channel, const char *p, size_t n, bool end) {
  conn *c = arg;
  posts__buf *b = channel == CH_STDOUT   ? &c->out
                  : channel == CH_STDERR ? &c->err
                  : channel == CH_STATUS ? &c->status
                                         : NULL;
  if (!b || (b == &c->status && c->status_done)) return 0;
  if (n) posts__buf_put(b, p, n);
  if (b->nomem) return posts__err(c->perr, -ENOMEM, 0, "out of memory");
  if (end && b == &c->status) {
    c->status_done = true;
    c->status_at = posts__k8s_mono_ms();
  }
  return 0;
}

/* A ping is answered at once; a close is answered with its code and ends
 * the reading. */
static int on_control(void *arg, int op, const unsigned char *p, size_t n) {
  conn *c = arg;
  int rc;
  if (op == OP_PING) return send_control(c, OP_PONG, p, n, c->deadline + BYE_MS);
  if (op != OP_CLOSE) return 0;
  c->close_code = n >= 2 ? (unsigned)p[0] << 8 | p[1] : 1005;
  rc = send_control(c, OP_CLOSE, p, n >= 2 ? 2 : 0, posts__k8s_mono_ms() + BYE_MS);
  c->closed = true;
  return rc == 0 || rc == -ETIMEDOUT ? 1 : rc; /* 1: stop reading, done */
}

/* Reads frames from c until the server closes (0), or timeout_ms is over
 * (-ETIMEDOUT; 0 when the Status came, the server just slow to close). */
static int pump(conn *c, const char *early, size_t n_early) {
  k8s_ws_sink sink = {on_data, on_control, c};
  char buf[16384];
  size_t got = n_early;
  int rc = 0;
  if (got) memcpy(buf, early, got);
  for (;;) {
    if (got && (rc = posts__k8s_ws_feed(&c->ws, buf, got, &sink, c->perr)) != 0) break;
    int64_t until = c->status_done && c->status_at + LINGER_MS < c->deadline
                        ? c->status_at + LINGER_MS
                        : c->deadline;
    if ((rc = recv_some(c, buf, sizeof buf, &got, until)) < 0 || got == 0) break;
  }
  if (rc == 1 || (rc == -ETIMEDOUT && c->status_done)) rc = 0;
  return rc;
}

/* ------------------------------------------------------- the upgrade */

/* The value of header name in the head (status line and headers, each
 * line ending in CRLF) into val[vlen], trimmed; false when absent. */
static bool header(const char *head, const char *name, char *val, size_t vlen) {
  size_t nlen = strlen(name);
  for (const char *l = strstr(head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
    const char *s = l + 2, *e = strstr(s, "\r\n");
    if (!e || strncasecmp(s, name, nlen) != 0 || s[nlen] != ':') continue;
    s += nlen + 1;
    while (s < e && (*s == ' ' || *s == '\t')) s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
    snprintf(val, vlen, "%.*s", (int)(e - s), s);
    return true;
  }
  return false;
}

/* Whether the comma-separated list holds token (case-insensitive). */
static bool has_token(const char *list, const char *token) {
  size_t n = strlen(token);
  for (const char *s = list; *s;) {
    while (*s == ' ' || *s == ',') s++;
    if (strncasecmp(s, token, n) == 0 && (s[n] == '\0' || s[n] == ',' || s[n] == ' ')) return true;
    s += strcspn(s, ",");
  }
  return false;
}

/* Removes chunked transfer coding from b's text, in place. */
static void dechunk(posts__buf *b) {
  size_t r = 0, w = 0;
  while (r < b->len) {
    char *end;
    unsigned long n = strtoul(b->p + r, &end, 16);
    char *crlf = strstr(end, "\r\n");
    if (!crlf || n == 0) break;
    r = (size_t)(crlf + 2 - b->p);
    if (n > b->len - r) n = b->len - r;
    memmove(b->p + w, b->p + r, n);
    w += n;
    r += n + 2;
  }
  b->len = w;
  b->p[w] = '\0';
}

/* An answer other than 101: its body (what came with the head in body, the
 * rest read up to Content-Length, the chunks' end or MAX_BODY) as an
 * error. A 400 is about the pod, not the request (no node, no container
 * lab, not running): -EBUSY. */
static int upgrade_refused(conn *c, long status, const char *head, const char *body, size_t n) {
  posts__buf b = {.max = MAX_BODY};
  char v[64];
  bool chunked = header(head, "Transfer-Encoding", v, sizeof v) && has_token(v, "chunked");
  size_t want = header(head, "Content-Length", v, sizeof v) ? strtoul(v, NULL, 10) : MAX_BODY;
  int rc;
  posts__buf_put(&b, body, n);
  while (b.len < want && !b.over && !b.nomem && !(chunked && b.p && strstr(b.p, "0\r\n\r\n"))) {
    char buf[4096];
    size_t got = 0;
    if (recv_some(c, buf, sizeof buf, &got, posts__k8s_mono_ms() + CONNECT_MS) < 0 || got == 0)
      break;
    posts__buf_put(&b, buf, got);
  }
  if (b.nomem) {
    free(b.p);
    return posts__err(c->perr, -ENOMEM, 0, "out of memory");
  }
  if (chunked && b.p) dechunk(&b);
  rc = posts__k8s_api_error(status, b.p ? b.p : "", c->perr);
  if (status == 400) {
    char msg[sizeof c->perr->msg];
    memcpy(msg, c->perr->msg, sizeof msg);
    rc = posts__err(c->perr, -EBUSY, status, "exec: not running: %s", msg);
  }
  free(b.p);
  return rc;
}

/* Checks the head of a 101 answer against key. */
static int upgrade_check(conn *c, const char *head, const char *key) {
  char want[29], v[128];
  posts__k8s_ws_accept(key, want);
  if (!header(head, "Upgrade", v, sizeof v) || strcasecmp(v, "websocket") != 0 ||
      !header(head, "Connection", v, sizeof v) || !has_token(v, "upgrade"))
    return posts__err(c->perr, -EPROTO, 101, "exec: 101 without an upgrade to websocket");
  if (!header(head, "Sec-WebSocket-Accept", v, sizeof v) || strcmp(v, want) != 0)
    return posts__err(c->perr, -EPROTO, 101, "exec: a wrong Sec-WebSocket-Accept");
  if (!header(head, "Sec-WebSocket-Protocol", v, sizeof v) || strcmp(v, WS_PROTOCOL) != 0)
    return posts__err(c->perr, -EPROTO, 101, "exec: the server did not agree to " WS_PROTOCOL);
  return 0;
}

/* Sends the upgrade request for target. */
static int upgrade_send(conn *c, const char *target, const char *key) {
  const char *host = strstr(c->k->server, "://");
  char *auth = NULL, *req;
  size_t hlen, n;
  int rc = posts__k8s_auth_line(c->k, &auth, c->perr);
  if (rc < 0) return rc;
  host = host ? host + 3 : c->k->server;
  hlen = strcspn(host, "/");
  n = strlen(target) + hlen + (auth ? strlen(auth) : 0) + 512;
  if (!(req = malloc(n))) {
    free(auth);
    return posts__err(c->perr, -ENOMEM, 0, "out of memory");
  }
  n = (size_t)snprintf(req, n,
                       "GET %s HTTP/1.1\r\nHost: %.*s\r\nUser-Agent: outpost\r\n"
                       "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                       "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Protocol: " WS_PROTOCOL "\r\n%s%s\r\n",
                       target, (int)hlen, host, key, auth ? auth : "", auth ? "\r\n" : "");
  rc = send_all(c, req, n, c->deadline);
  free(req);
  free(auth);
  return rc;
}

/* Connects (libcurl: TCP, TLS, the client certificate) and gets the
 * upgrade; 0 with the bytes that came after the answer's head (frames
 * already) in early[*n_early]. */
static int upgrade(conn *c, const char *target, char *early, size_t *n_early) {
  char cerr[CURL_ERROR_SIZE] = "", key[25], *end = NULL;
  unsigned char nonce[16];
  posts__buf head = {.max = MAX_HEAD};
  long status = 0;
  int64_t left = c->deadline - posts__k8s_mono_ms();
  CURLcode cc;
  int rc;
  *n_early = 0;
  if (left <= 0) return -ETIMEDOUT;
  if (!(c->h = curl_easy_init())) return posts__err(c->perr, -ENOMEM, 0, "out of memory");
  posts__k8s_setup(c->k, c->h, c->k->server, &c->k->cancel, cerr);
  curl_easy_setopt(c->h, CURLOPT_CONNECT_ONLY, 1L);
  /* ALPN must not offer h2: what follows is HTTP/1.1. */
  curl_easy_setopt(c->h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS, (long)(left < CONNECT_MS ? left : CONNECT_MS));
  if ((cc = curl_easy_perform(c->h)) != CURLE_OK) {
    rc = posts__k8s_curl_errno(c->h, cc);
    return posts__err(c->perr, rc, 0, "exec: %s: %s", c->k->server,
                      cerr[0] ? cerr : curl_easy_strerror(cc));
  }
  if (curl_easy_getinfo(c->h, CURLINFO_ACTIVESOCKET, &c->fd) != CURLE_OK ||
      c->fd == CURL_SOCKET_BAD)
    return posts__err(c->perr, -EIO, 0, "exec: no socket from libcurl");
  if (getrandom(nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
    return posts__err(c->perr, -EIO, 0, "exec: no random bytes for the key");
  base64(nonce, sizeof nonce, key);
  if ((rc = upgrade_send(c, target, key)) < 0) return rc;
  while (!end) {
    char buf[4096];
    size_t got;
    if ((rc = recv_some(c, buf, sizeof buf, &got, c->deadline)) < 0) goto cleanup;
    if (got == 0 || head.len + got > MAX_HEAD) {
      rc = posts__err(c->perr, -EPROTO, 0, "exec: %s",
                      got ? "an answer head too long" : "the server closed without an answer");
      goto cleanup;
    }
    posts__buf_put(&head, buf, got);
    if (head.nomem) {
      rc = posts__err(c->perr, -ENOMEM, 0, "out of memory");
      goto cleanup;
    }
    end = strstr(head.p, "\r\n\r\n");
  }
  end += 2; /* keep the last header's CRLF, so that every header line ends in one */
  *end = '\0';
  if (sscanf(head.p, "HTTP/1.%*d %ld", &status) != 1) {
    rc = posts__err(c->perr, -EPROTO, 0, "exec: not an HTTP answer");
  } else if (status != 101) {
    rc = upgrade_refused(c, status, head.p, end + 2, head.len - (size_t)(end + 2 - head.p));
  } else if ((rc = upgrade_check(c, head.p, key)) == 0) {
    c->upgraded = true;
    *n_early = head.len - (size_t)(end + 2 - head.p); /* at most a read's 4096 */
    memcpy(early, end + 2, *n_early);
  }
cleanup:
  free(head.p);
  return rc;
}

/* ------------------------------------------------------------ the op */

/* Moves b's text into *dst (an empty string when none came). */
static bool take(posts__buf *b, char **dst, size_t *len) {
  *dst = b->p ? b->p : calloc(1, 1);
  *len = b->p ? b->len : 0;
  b->p = NULL;
  return *dst != NULL;
}

/* The exit code from the Status. When the command could not be run, the
 * reason goes to stderr as a shell's would, and into err. */
static int conclude(conn *c, posts_exec_result *res, int rc) {
  char msg[sizeof c->perr->msg];
  int ran;
  res->exit_code = -1;
  if (rc < 0) return rc;
  if (!c->status_done)
    return posts__err(c->perr, -EIO, 0,
                      "exec: the stream ended without the command's status (close code %u)",
                      c->close_code);
  ran = posts__k8s_exec_status(c->status.p ? c->status.p : "", c->status.len, &res->exit_code, msg,
                               sizeof msg);
  if (ran < 0) {
    res->exit_code = -1;
    return posts__err(c->perr, -EPROTO, 0, "exec: channel 3 did not bring a Status");
  }
  if (ran == 1 && msg[0]) {
    posts__err(c->perr, 0, 0, "%s", msg);
    posts__buf_put(&c->err, msg, strlen(msg));
    posts__buf_put(&c->err, "\n", 1);
  }
  return 0;
}

int posts__k8s_exec(posts_runtime *rt, const char *id, const posts_exec_req *req,
                    posts_exec_result *res, posts_err *err) {
  k8s *k = (k8s *)rt;
  conn c = {.k = k,
            .fd = CURL_SOCKET_BAD,
            .deadline = posts__k8s_mono_ms() +
                        (req->timeout_ms < MAX_TIMEOUT ? req->timeout_ms : MAX_TIMEOUT),
            .out = {.max = req->max_output},
            .err = {.max = req->max_output},
            .status = {.max = MAX_STATUS},
            .perr = err};
  char kns[64], name[254], *target = NULL, early[4096];
  size_t n_early = 0;
  posts_err scratch;
  int rc;
  if (!err) c.perr = &scratch;
  if ((rc = posts__k8s_id_split(id, kns, name, c.perr)) < 0) return rc;
  if (req->user)
    return posts__err(c.perr, -EINVAL, 0,
                      "user: Kubernetes exec runs as the container's user (no other can be given)");
  if (atomic_load(&k->cancel)) return posts__err(c.perr, -ECANCELED, 0, "exec: cancelled");
  if ((rc = exec_target(k, kns, name, req, &target, c.perr)) < 0 ||
      (rc = check_running(rt, id, c.perr)) < 0)
    goto cleanup;
  if ((rc = upgrade(&c, target, early, &n_early)) == 0) rc = pump(&c, early, n_early);
  if (c.upgraded && !c.closed) {
    static const unsigned char going[2] = {1001 >> 8, 1001 & 0xff}; /* going away */
    send_control(&c, OP_CLOSE, going, 2, posts__k8s_mono_ms() + BYE_MS);
  }
  rc = conclude(&c, res, rc);
  if (rc == -ETIMEDOUT)
    posts__err(c.perr, rc, 0, "exec %s: still running after %ld ms", id, req->timeout_ms);
  else if (rc == -ECANCELED)
    posts__err(c.perr, rc, 0, "exec %s: cancelled", id);
  res->truncated = c.out.over || c.err.over;
  if (!take(&c.out, &res->out, &res->out_len) || !take(&c.err, &res->err, &res->err_len))
    rc = posts__err(c.perr, -ENOMEM, 0, "out of memory");
cleanup:
  if (c.h) curl_easy_cleanup(c.h);
  free(c.out.p);
  free(c.err.p);
  free(c.status.p);
  free(target);
  return rc;
}
