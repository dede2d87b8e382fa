/*
 * post_int.h — what the three tiers of posts share, private to posts/: the
 * parsed flags, the process (HTTP server, HTTP client, event publisher,
 * supervisor of child posts), and the hooks each tier fills in. post.c runs
 * the process; post_node.c, post_cluster.c and post_ns.c are the tiers.
 */
#ifndef OUTPOST_POSTS_POST_INT_H
#define OUTPOST_POSTS_POST_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "core/ce.h"
#include "core/httpc.h"
#include "core/httpd.h"
#include "posts/post.h"
#include "posts/runtime.h"
#include "posts/template.h"

#define POST_MAX_REPEATED 32

/* Every flag of every tier; post.c parses them and each tier checks those it
 * needs. Strings point into argv. */
typedef struct post_cfg {
  const char *tier;
  char host[64];
  uint16_t port;
  const char *broker_url;  /* ingress URL events are POSTed to; NULL: not published */
  const char *state_dir;   /* where state files live (default outpost-data/post-<tier>) */
  const char *config;      /* LabTemplate and NamespacePolicy resources */
  const char *socket;      /* the Docker Engine API socket (node) */
  const char *node;        /* node name (node; cluster: of the node post it starts) */
  const char *node_listen; /* cluster: where the node post it starts listens */
  const char *admin_token, *tokens_file;
  const char *namespaces[POST_MAX_REPEATED];
  size_t n_namespaces;
  const char *node_posts[POST_MAX_REPEATED]; /* cluster: node posts; ns: its node post */
  size_t n_node_posts;
  const char *tenant_tokens[POST_MAX_REPEATED];
  size_t n_tenant_tokens;
  long quota;                    /* cluster: environments per tenant (default 3) */
  long max_envs;                 /* node: claimed environments on the node (default 20) */
  uint16_t ns_port;              /* node: the first ns post's port (default: its own + 1) */
  const char *broker_token;      /* bearer token of the broker's admin API (/v1/triggers) */
  const char *ingress_token;     /* bearer token of the ingress (broker --senders-file) */
  bool no_register_triggers;     /* the post does not register its triggers at the broker */
  const char *detector_url;      /* node: the detector's admin API; NULL: no detector */
  const char *detector_token;    /* node: its bearer token */
  const char *trigger_api;       /* the broker's trigger admin API (http://host:port); NULL:
                                    the --broker-url's host */
  const char *advertise_host;    /* the address others reach this post at (its triggers'
                                    subscriber URIs); NULL: the listen host, or 127.0.0.1 */
  const char *runtime;           /* node: "docker" (default) or "kubernetes" */
  const char *kubeconfig;        /* node, kubernetes: a kubeconfig; NULL: in-cluster */
  const char *kube_ns_prefix;    /* node, kubernetes: prefix of the lab namespaces ("") */
  bool no_ns_posts;              /* node: the ns posts run elsewhere (own containers) */
  const char *node_post_service; /* cluster: HOST:PORT whose every address is a node post */
  long node_forget_s;         /* cluster: a node post gone this long gives its place to a new one */
  const char *internal_token; /* the posts' bearer token among themselves (node and ns
                                 posts' /v1/ APIs); NULL: none asked for */
} post_cfg;

typedef struct post post;
typedef struct post_pub post_pub;
typedef struct post_sup post_sup;

/* What a tier adds to the common process. Every hook but start may be NULL. */
typedef struct post_tier {
  const char *name;
  /* Sets up the tier's state (p->tier_state) before the server starts;
   * 0 or a negative errno (the process then exits 1). */
  int (*start)(post *p);
  /* Called once the server listens (start children here). */
  void (*started)(post *p);
  /* Frees the tier's state; children are stopped before. */
  void (*stop)(post *p);
  /* Answers a request that is not /healthz, /readyz, /metrics or /events;
   * false: not the tier's (404). */
  bool (*route)(post *p, httpd_req *req, const char *method, const char *path);
  /* One CloudEvent received on POST /events (owned by the hook). */
  void (*on_event)(post *p, ce_event *ev);
  void (*metrics)(post *p, ce_buf *out);
  bool (*ready)(post *p);
} post_tier;

/* The process of one post. */
struct post {
  post_cfg cfg;
  const post_tier *tier;
  void *tier_state;
  const char *name; /* the post's name: node, namespace, or "cluster" */
  char exe[4096];   /* this binary, for children */
  httpd *http;
  httpc *c;
  post_pub *pub;
  post_sup *sup;
  _Atomic uint64_t requests, events_in, events_bad;
};

extern const post_tier post_tier_cluster, post_tier_node, post_tier_ns;

/* ---------------------------------------------------------- HTTP client */

/* An answer of post_call. body is NUL-terminated. */
typedef struct post_answer {
  int error;     /* 0 or httpc's transport error */
  char why[160]; /* with error: libcurl's text ("SSL certificate problem: ..."), else "" */
  long status;
  ce_buf body;
  int64_t retry_after_ms;
} post_answer;

/* Sends a request and waits for its end (at most timeout_ms). body may be
 * NULL; a JSON body gets Content-Type application/json unless hdrs names
 * one. Returns 0 when an answer arrived (any status), else the transport's
 * negative errno (also in out->error). out is the caller's to clean up with
 * post_answer_cleanup, also on error. */
int post_call(post *p, const char *method, const char *url, const ce_kv *hdrs, size_t n_hdrs,
              const char *body, size_t len, long timeout_ms, post_answer *out);
void post_answer_cleanup(post_answer *a);

/* GET/POST/DELETE of JSON: *json (caller frees with cJSON_Delete) is the
 * answer's parsed body, NULL when not JSON. Returns the status, or a negative
 * errno when nothing answered. */
long post_call_json(post *p, const char *method, const char *url, const cJSON *body,
                    long timeout_ms, cJSON **json);
/* post_call_json to each of n URLs side by side: all are sent before any is waited for, so the
 * slowest answer bounds the wait, not the sum. status[i] and json[i] as post_call_json's. */
void post_call_json_each(post *p, const char *method, const char *const *urls, size_t n,
                         const cJSON *body, long timeout_ms, long *status, cJSON **json);

/* ---------------------------------------------------------- answers */

/* {"error": msg} and, when field is not NULL, "field": field. */
void post_reply_error(httpd_req *req, unsigned status, const char *msg, const char *field);
/* Parses the request's body as a JSON object; answers 400 or 413 itself and
 * returns NULL when it is not one. */
cJSON *post_body_json(httpd_req *req);

/* ---------------------------------------------------------- events */

/* A new event with specversion, a unique id, source, type, time and, when
 * data is not NULL, data (freed) as application/json. NULL: out of memory. */
ce_event *post_event_new(post *p, const char *type, const char *subject, cJSON *data);

/* Queues ev for the broker (takes it, also on failure). Never blocks: past
 * the queue's bound the event is dropped and counted. */
void post_publish(post *p, ce_event *ev);

post_pub *post_pub_new(post *p, const char *url, size_t max_queue);
void post_pub_free(post_pub *pub); /* tries to flush for up to 2 s */
void post_pub_push(post_pub *pub, ce_event *ev);
void post_pub_metrics(post_pub *pub, ce_buf *out);

/* ---------------------------------------------------------- supervisor */

post_sup *post_sup_new(post *p);
/* Adds a child: argv (copied; argv[0] is replaced by this binary unless it
 * is an absolute path: another program) runs a post of tier and name whose
 * /healthz is at health_url ("": none, never adopted). Children are
 * started (or adopted) by post_sup_start. */
int post_sup_add(post_sup *s, const char *tier, const char *name, const char *health_url,
                 const char *const *argv);
/* Adopts the children already running (their /healthz answers with their
 * tier, name and pid), starts the others, and watches them on a thread. */
int post_sup_start(post_sup *s);
/* Sends child name's stdout and stderr to path (appended) from its next
 * start on. 0 or -ENOENT, -ENOMEM. */
int post_sup_set_log(post_sup *s, const char *name, const char *path);
/* The environment variables that hold secrets (tokens): every token flag of
 * outpost's commands falls back on one of them, so that a token need not
 * be on a command line, which any local user can read in /proc. A child
 * gets none of its parent's: only those given by post_sup_set_env. */
#define POST_ENV_ADMIN    "OUTPOST_ADMIN_TOKEN"    /* --admin-token */
#define POST_ENV_BROKER   "OUTPOST_BROKER_TOKEN"   /* --broker-token */
#define POST_ENV_DETECTOR "OUTPOST_DETECTOR_TOKEN" /* --detector-token */
#define POST_ENV_INTERNAL "OUTPOST_INTERNAL_TOKEN" /* --internal-token */
#define POST_ENV_INGRESS  "OUTPOST_INGRESS_TOKEN"  /* --ingress-token */
#define POST_SECRET_ENV                                                                            \
  POST_ENV_ADMIN, POST_ENV_INTERNAL, POST_ENV_BROKER, POST_ENV_DETECTOR, POST_ENV_INGRESS
/* Variables with this prefix are secrets too: the Kafka log's passwords
 * (BROKER_KAFKA_ENV_PREFIX in broker/broker.h, where they are read). */
#define POST_ENV_KAFKA_PREFIX "OUTPOST_KAFKA_"
/* When *value (a token flag's) is NULL, sets it to environment variable
 * name's value, unless that is unset or empty. */
void post_secret_env(const char **value, const char *name);
/* Gives child name of p->sup, through its environment, p's tokens among
 * which (POST_TOK_* bits): how a post passes them on. 0 or a negative
 * errno. */
#define POST_TOK_BROKER   1u
#define POST_TOK_DETECTOR 2u
#define POST_TOK_INTERNAL 4u
#define POST_TOK_INGRESS  8u
int post_pass_tokens(post *p, const char *name, unsigned which);
/* Gives child name these "NAME=value" (copied) besides its parent's
 * environment without the secrets, from its next start on. 0 or -ENOENT,
 * -ENOMEM. */
int post_sup_set_env(post_sup *s, const char *name, const char *const *env);
/* When child name exits with status, it is started again at once with arg
 * appended to its argv (once; not counted as a crash), and why is logged:
 * `outpost run` restarts a detector that cannot load its eBPF side with
 * --no-bpf. 0 or -ENOENT, -ENOMEM. */
int post_sup_set_fallback(post_sup *s, const char *name, int status, const char *arg,
                          const char *why);
/* Stops watching; stop_children: SIGTERM each child, the last added first,
 * one at a time (SIGKILL after 10 s). */
void post_sup_free(post_sup *s, bool stop_children);
/* The pid of child name (0 when not running) and how often it restarted. */
pid_t post_sup_pid(post_sup *s, const char *name, unsigned *restarts);
void post_sup_metrics(post_sup *s, ce_buf *out);

/* Runs the post p describes (cfg, tier and name filled in by the caller)
 * until SIGINT/SIGTERM: `outpost post` and `outpost run` both end here.
 * Returns the exit status (0 after a signal, 1 when it cannot start). */
int post__serve(post *p);

/* ---------------------------------------------------------- admin APIs */

/* post_call with a JSON body (printed; may be NULL) and, when token is not
 * NULL, Authorization: Bearer token: the broker's and the detector's admin
 * APIs. Same return and cleanup rules as post_call. */
int post_call_token(post *p, const char *method, const char *url, const char *token,
                    const cJSON *body, long timeout_ms, post_answer *out);

/* The triggers a post registers at the broker (post_triggers.c). */
typedef struct post_trig post_trig;

/* A Trigger resource called name in the namespace of the broker of
 * --broker-url (http://host:port/<ns>/<broker>), delivering to uri with
 * retries (a post restarting is away for a moment); the caller adds
 * spec.filter or spec.filters. NULL when --broker-url is not of that shape
 * (or is missing), or on no memory. The caller owns the result. */
cJSON *post_trig_resource(post *p, const char *name, const char *uri);

/* Registers triggers (a JSON array of Trigger resources; taken, also on
 * failure) at the broker's admin API (PUT /v1/triggers beside
 * --broker-url, with --broker-token) from a thread that tries again with
 * backoff (0.5 s doubling to 30 s) until the broker takes them all; logged
 * once when done. NULL when there is nothing to do (no --broker-url,
 * --no-register-triggers, no triggers) or it could not start. */
post_trig *post_trig_start(post *p, cJSON *triggers);
/* Stops the thread (a request under way ends within 5 s). NULL: nothing. */
void post_trig_free(post_trig *t);

/* The node post's link to its node's detector (post_watch.c). */
typedef struct post_watch post_watch;

/* An environment the detector should watch: a claimed one. */
typedef struct post_watch_env {
  char name[64]; /* the environment's name (the Labs API's): the detector's too */
  char id[POSTS_ENV_ID_MAX];
  char tenant[64], ns[64], tpl[64];
  const char *policy; /* the template's policy as the detector's JSON, or NULL;
                         not owned: it outlives the post_watch */
} post_watch_env;

/* Fills a new array (*out of *n, freed by the caller with free()) with the
 * environments to watch now. 0 or a negative errno. */
typedef int (*post_watch_list_fn)(void *opaque, post_watch_env **out, size_t *n);

/* Starts keeping the detector at --detector-url in step with the node:
 * environments claimed here registered (cgroup, tenant, namespace,
 * template) with their policy, those gone deleted, on a thread that also
 * reconciles every few seconds (a detector restarted has an empty table).
 * namespaces (copied pointers, which must outlive it) are the ones hosted
 * here: the detector's environments of those namespaces are taken to be
 * this node post's. NULL without --detector-url, or when it cannot start
 * (logged). */
post_watch *post_watch_new(post *p, posts_runtime *rt, const char *const *namespaces, size_t n_ns,
                           post_watch_list_fn list, void *opaque);
/* Never block (they queue): from the pool's event callback. NULL: nothing. */
void post_watch_claimed(post_watch *w, const char *name);
void post_watch_gone(post_watch *w, const char *name);
/* Stops the thread; list is not called after it returns. Calls above stay
 * allowed until post_watch_free. NULL does nothing. */
void post_watch_stop(post_watch *w);
void post_watch_free(post_watch *w);
void post_watch_metrics(post_watch *w, ce_buf *out);
/* The policy of a template as the detector's JSON (a new string, freed by
 * the caller), NULL when the template forbids nothing. Destinations the
 * detector cannot express (a prefix shorter than a host) are left out and
 * named in why (may be NULL), "" otherwise. */
char *post_watch_policy_json(const pool_template *t, char *why, size_t whylen);

/* The cgroup2 directory of a pod's container (Kubernetes, where there is no
 * pid to read it from), found under root (the cgroup2 mount) by the names
 * the kubelet and the container runtime give: a directory named after the
 * pod's uid, at most seven levels down, holding one named after
 * the container's id. 0 and the path in out; -ENOENT when there is no such
 * pod, or the pod has no such container (not yet started); -EINVAL for a uid
 * or an id not made of hex digits (and '-') or letters and digits. */
int post_watch_pod_cgroup(const char *root, const char *uid, const char *cid, char *out,
                          size_t size);

/* ---------------------------------------------------------- helpers */

int64_t post_now_ms(void);
void post_log(post *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes len bytes to path atomically (temporary file, fsync, rename). */
int post_write_file(const char *path, const char *data, size_t len);
/* Makes dir and its parents. */
int post_mkdirs(const char *dir);
/* Whether s is a DNS label. */
bool post_valid_name(const char *s);

/* The host others reach this post at (its triggers' subscriber URIs):
 * --advertise-host, else the --listen host, 127.0.0.1 for a wildcard. */
const char *post_advertised_host(const post *p);

#endif
