/*
 * k8s_int.h — what the files of the Kubernetes backend share, and nobody
 * else: the runtime's struct, its HTTP calls (runtime_k8s.c), pods to and
 * from the posts types (k8s_pod.c), watches (k8s_watch.c), file reading
 * (k8s_config.c) and exec over a WebSocket (k8s_exec.c).
 */
#ifndef OUTPOST_POSTS_K8S_INT_H
#define OUTPOST_POSTS_K8S_INT_H

#include "posts/runtime_int.h"
#include "posts/runtime_k8s.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* The labels the runtime puts on its pods. The first two are its own and
 * hidden from infos (under POSTS_RUNTIME_LABEL_PREFIX); managed-by is the
 * recommended Kubernetes label; the owner's is public so that operators and
 * network policies can select a tenant's pods, and it is reported as
 * info->owner rather than as a label. */
#define K8S_NS_LABEL      POSTS_RUNTIME_LABEL_PREFIX "namespace"
#define K8S_NETWORK_LABEL POSTS_RUNTIME_LABEL_PREFIX "network" /* "none": no network */
#define K8S_OWNER_LABEL   "outpost.dev/owner"
#define K8S_MANAGED_LABEL "app.kubernetes.io/managed-by"
#define K8S_MANAGER       "outpost"
#define K8S_CONTAINER     "lab"                /* the one container of a pod */
#define K8S_POLICY        "outpost-no-network" /* the NetworkPolicy of each namespace */
#define K8S_IDLE_MAX      8                    /* curl handles kept for reuse (their connections) */
#define K8S_ID_MAX        (63 + 1 + 253 + 1)   /* "<namespace>/<pod>" and NUL */

/* Writes a, sep (when not '\0') and b into out, whose size the caller has
 * checked holds them: what snprintf would, without its truncation
 * warnings. */
static inline void posts__k8s_join(char *out, const char *a, char sep, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  memcpy(out, a, la);
  if (sep) out[la++] = sep;
  memcpy(out + la, b, lb + 1);
}

/* The monotonic clock in milliseconds: deadlines, token re-reads. */
static inline int64_t posts__k8s_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct k8s {
  posts_runtime rt; /* first: a posts_runtime * is a k8s * */
  /* Read-only once made. */
  char *server; /* without a trailing '/' */
  char *ca_pem, *cert_pem, *key_pem, *token_file;
  bool insecure;
  char *ns_prefix, *node_name;
  int64_t default_nano_cpus, default_memory_bytes, run_as_user;
  long start_timeout_ms;
  atomic_bool cancel; /* posts_runtime_cancel: waits end with -ECANCELED */
  /* What follows is shared between the threads that call the runtime. */
  pthread_mutex_t mu;
  char *token;           /* the bearer token (NULL: none) */
  int64_t token_read_ms; /* when token_file was last read (monotonic) */
  CURL *idle[K8S_IDLE_MAX];
  size_t n_idle;
  char **ensured; /* Kubernetes namespaces whose namespace and policy exist */
  size_t n_ensured;
} k8s;

/* ------------------------------------------------------ runtime_k8s.c */

typedef posts__buf k8s_buf; /* runtime_int.h */

/* Called with each piece of an answer's body, as libcurl gives it. */
typedef size_t (*k8s_body_fn)(char *data, size_t size, size_t n, void *arg);

/* Sets on h what every connection to the API server shares: url, the TLS
 * trust and client certificate, the connect timeout, the user agent, and
 * cerr[CURL_ERROR_SIZE] as libcurl's error buffer (h keeps the pointer
 * until it is reset). stop (may be NULL) aborts a transfer once true. */
void posts__k8s_setup(k8s *k, CURL *h, const char *url, const atomic_bool *stop, char *cerr);

/* The "Authorization: Bearer ..." header line for one request, into a new
 * *line the caller frees (NULL: no token). 0, -ENOMEM, or the token file's
 * read error when no token was ever read. */
int posts__k8s_auth_line(k8s *k, char **line, posts_err *err);

/* libcurl's failure cc on h as a negative errno: -ECONNREFUSED,
 * -EHOSTUNREACH, -ETIMEDOUT, -ENOMEM, -ECANCELED (stop), -EPROTO (TLS), or
 * -EIO. */
int posts__k8s_curl_errno(CURL *h, CURLcode cc);

/* One request to the API server: path from the server's root, query
 * included; body (may be NULL) sent as ctype (NULL: application/json); the
 * answer's body given to wr. Stops early, with -ECANCELED, when *stop
 * becomes true (stop may be NULL). 0 when an answer came, else a negative
 * errno with err filled; *status is the answer's status whenever one began
 * to arrive (also when wr cut it short), else 0. */
int posts__k8s_http(k8s *k, const char *method, const char *path, const char *ctype,
                    const char *body, long timeout_ms, k8s_body_fn wr, void *wr_arg,
                    const atomic_bool *stop, long *status, posts_err *err);

/* A JSON request whose answer, when its status is one of ok (0-terminated),
 * is parsed into *out (may be NULL: not wanted). Other statuses become
 * errors through posts__k8s_api_error. */
int posts__k8s_call(k8s *k, const char *method, const char *path, const char *ctype, cJSON *body,
                    const long *ok, cJSON **out, posts_err *err);

/* An error answer (status, its body: a Status object, or anything) as a
 * negative errno, with the Status's message in err:
 *   400, 422 -EINVAL; 401, 403 -EACCES; 404 -ENOENT; 409 -EEXIST when the
 *   reason is AlreadyExists, else -EBUSY (Conflict); 410 -ESTALE (a
 *   resourceVersion too old); 429 -EAGAIN; 504 -ETIMEDOUT; others -EIO. */
int posts__k8s_api_error(long status, const char *body, posts_err *err);

/* ---------------------------------------------------------- k8s_pod.c */

/* Whether s is a Kubernetes label key (an optional DNS-subdomain prefix and
 * '/', then a name of at most 63 of [A-Za-z0-9._-], alphanumeric at both
 * ends), or a label value (the same as that name, or empty). */
bool posts__k8s_label_key_ok(const char *s);
bool posts__k8s_label_value_ok(const char *s);

/* The Kubernetes namespace of ns (ns_prefix + ns) into kns[64]. -EINVAL
 * when it is longer than a DNS label. */
int posts__k8s_kns(const k8s *k, const char *ns, char *kns, posts_err *err);

/* Splits an id "<namespace>/<pod>" into kns[64] and name[254]. -ENOENT
 * (no such environment) when it is not of that form. */
int posts__k8s_id_split(const char *id, char *kns, char *name, posts_err *err);

/* The pod for spec in *out (the caller's, cJSON_Delete), after checking
 * what only Kubernetes refuses (label keys and values, the namespace's
 * length). 0, -EINVAL with the field named, or -ENOMEM. */
int posts__k8s_pod_build(const k8s *k, const posts_env_spec *spec, cJSON **out, posts_err *err);

/* The label selector of a list or watch: the runtime's namespace label (ns,
 * or any value when NULL) and sel, URL-escaped, in a new string *out (the
 * caller frees it). 0, -EINVAL (a label Kubernetes refuses) or -ENOMEM. */
int posts__k8s_selector(const char *ns, const posts_label *sel, size_t n_sel, char **out,
                        posts_err *err);

/* Fills info (zeroed by the caller) from a pod. 0, -ENOMEM, or -EPROTO (no
 * name or namespace). */
int posts__k8s_pod_info(posts_env_info *info, const cJSON *pod);

/* The pod's metadata.resourceVersion, or NULL. */
const char *posts__k8s_pod_rv(const cJSON *pod);

/* -------------------------------------------------------- k8s_watch.c */

/* posts_env_watch on Kubernetes (the op). */
int posts__k8s_watch(posts_runtime *rt, const char *ns, const posts_label *sel, size_t n_sel,
                     posts_watch_fn fn, void *arg, const atomic_bool *stop, posts_err *err);

/* Waits up to timeout_ms for the pod kns/name to leave Pending (running, or
 * already ended). 0; -ETIMEDOUT (still pending: the reason in err);
 * -ENOENT (gone, or its image cannot be pulled); -EBUSY (being deleted). */
int posts__k8s_wait_running(k8s *k, const char *kns, const char *name, long timeout_ms,
                            posts_err *err);

/* --------------------------------------------------------- k8s_exec.c */

/* posts_env_exec on Kubernetes (the op). */
int posts__k8s_exec(posts_runtime *rt, const char *id, const posts_exec_req *req,
                    posts_exec_result *res, posts_err *err);

/* What reads an exec's WebSocket gets (RFC 6455): the payload of each data
 * message on its channel, the first payload byte (0 stdin, 1 stdout, 2
 * stderr, 3 the Status, 4 resize) taken off, in pieces as they come, then
 * end; and each control frame whole. A nonzero return stops the reading,
 * and posts__k8s_ws_feed returns it. */
typedef struct k8s_ws_sink {
  int (*data)(void *arg, int channel, const char *p, size_t n, bool end);
  int (*control)(void *arg, int op, const unsigned char *p, size_t n); /* 8, 9, 10 */
  void *arg;
} k8s_ws_sink;

/* The reading state of a server's frames; zero it to begin. */
typedef struct k8s_ws {
  unsigned char hdr[14]; /* the current frame's header so far */
  size_t hdr_len;
  bool in_frame; /* the header is read: payload follows */
  bool fin;
  unsigned char op;
  uint64_t left;          /* payload bytes of the frame still to come */
  bool in_msg;            /* a data message is open (more frames may follow) */
  int channel;            /* of the open message; -1 until its first byte */
  unsigned char ctl[125]; /* a control frame's payload */
  size_t ctl_len;
} k8s_ws;

/* Reads n bytes of a server's frames, split anywhere, into sink: unmasked
 * frames, 7-, 16- and 64-bit lengths, fragmented messages (continuations,
 * control frames between them). 0, the sink's nonzero return, or -EPROTO
 * (err says why) for what RFC 6455 forbids: a masked frame, reserved bits,
 * an unknown opcode, a fragmented or long control frame, a continuation
 * with no message open or a new message while one is. */
int posts__k8s_ws_feed(k8s_ws *ws, const char *p, size_t n, const k8s_ws_sink *sink,
                       posts_err *err);

/* A client frame with FIN, opcode op and n <= 125 bytes of payload, masked
 * with mask, into out[6 + 125]; returns its length. */
size_t posts__k8s_ws_frame(unsigned char *out, int op, const void *payload, size_t n,
                           const unsigned char mask[4]);

/* SHA-1 of n bytes into out[20] (only for the handshake's check). */
void posts__k8s_sha1(const void *data, size_t n, unsigned char out[20]);

/* The Sec-WebSocket-Accept a server must answer to key: base64 of the SHA-1
 * of key and RFC 6455's GUID, into out[29]. */
void posts__k8s_ws_accept(const char *key, char out[29]);

/* The exit code the v4 Status (JSON, n bytes) of channel 3 reports into
 * *code, and its message into msg[msglen] ("" for Success). Returns 0 when
 * the command ran: Success is 0, a NonZeroExitCode failure its code; 1 when
 * it could not be run (another failure): 127 when the message says not
 * found, 126 otherwise; -EPROTO when text is not a Status. */
int posts__k8s_exec_status(const char *text, size_t n, int *code, char *msg, size_t msglen);

/* ------------------------------------------------------- k8s_config.c */

/* Reads the whole file at path (at most max bytes) into a new
 * NUL-terminated *out of *len bytes. 0, -EFBIG, -ENOMEM or open(2)'s and
 * read(2)'s errors. */
int posts__k8s_read_file(const char *path, size_t max, char **out, size_t *len);

/* posts_k8s_config_in_cluster with the service account's files in dir
 * instead of /var/run/secrets/kubernetes.io/serviceaccount (for tests). */
int posts__k8s_config_in_cluster_dir(posts_k8s_config *cfg, const char *dir, char *errbuf,
                                     size_t errlen);

#endif
