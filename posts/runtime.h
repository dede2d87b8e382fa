/*
 * runtime.h — the container runtime the posts run lab environments on: one
 * interface (create, start, stop, remove, inspect, list by label, exec,
 * watch) over backends, so that the posts never speak a runtime's protocol
 * themselves. The first backend is the Docker Engine API over a unix socket,
 * which both Docker and Podman (`podman system service`) serve; the second
 * the Kubernetes API (posts/runtime_k8s.h), which is why environments live
 * in a namespace, carry labels, and are named by opaque string ids. An
 * environment may also carry an owner (posts_env_claim), the one mutable
 * mark: labels are fixed at creation.
 *
 * Every environment is created with least privilege, whatever its spec asks
 * for: no new privileges, every capability dropped but those granted, a
 * pids limit, and no network unless the spec allows it.
 *
 * Thread rules: a posts_runtime keeps no per-call state, so any number of
 * threads may call it at once; posts_runtime_free must not race any call.
 * Calls block (each is one or a few requests to the runtime).
 *
 * Errors are negative errno values; a posts_err, when given, receives the
 * runtime's own message, which the caller may show or log.
 */
#ifndef OUTPOST_POSTS_RUNTIME_H
#define OUTPOST_POSTS_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct posts_runtime posts_runtime;

/* Ids are what a backend names an environment by (Docker: the 64-hex
 * container id). Callers keep and pass them back; they never parse them. */
#define POSTS_ENV_ID_MAX 320

/* Why a call failed, for people: the HTTP status when the runtime answered
 * (0 when it did not) and its message, else a description of ours. */
typedef struct posts_err {
  int code;      /* the negative errno the call returned */
  long status;   /* HTTP status of the runtime's answer, or 0 */
  char msg[256]; /* NUL-terminated, possibly shortened */
} posts_err;

typedef struct posts_label {
  const char *key;
  const char *value;
} posts_label;

/* What to run. Only image and ns are required; zero in a limit means the
 * default written beside it. The struct and what it points to are only read
 * during posts_env_create. */
typedef struct posts_env_spec {
  const char *ns;             /* namespace: a DNS label ([a-z0-9-], at most 63, no '-' at
                                 either end). Docker has none: it becomes a label. */
  const char *name;           /* unique in ns; [a-z0-9.-], at most 63. NULL: the runtime
                                 picks one. */
  const char *image;          /* e.g. "localhost/outpost-lab-c:latest" */
  const char *const *command; /* argv, NULL-terminated; NULL: the image's own */
  const posts_label *labels;  /* keys must not start with "outpost.runtime/" */
  size_t n_labels;
  int64_t pids_limit;              /* processes and threads (default 256): a fork bomb
                                      stays inside */
  int64_t memory_bytes;            /* RAM, and no swap beyond it (default: none) */
  int64_t nano_cpus;               /* CPU in 1e-9 CPUs, 500000000 = half a CPU (default: none) */
  const char *const *capabilities; /* granted, NULL-terminated, without "CAP_"
                                      ("NET_BIND_SERVICE"); every other one is
                                      dropped. NULL: none. */
  bool network;                    /* a network beside loopback (default: loopback only) */
  bool read_only_root;             /* the image's filesystem is mounted read-only */
  int64_t run_as_user;             /* > 0: the processes run as this uid, not root
                                      (Kubernetes: runAsNonRoot too); 0: as the
                                      image says (or the runtime's own default) */
  int64_t run_as_group;            /* > 0: with this gid (needs run_as_user);
                                      0: the same number as run_as_user */
  /* A host directory shown read-only inside (course material). Both or
   * neither; absolute paths. */
  const char *shared_host_path;
  const char *shared_path;
} posts_env_spec;

typedef enum posts_env_state {
  POSTS_ENV_UNKNOWN = 0,
  POSTS_ENV_CREATED, /* made, never started */
  POSTS_ENV_RUNNING,
  POSTS_ENV_PAUSED,
  POSTS_ENV_RESTARTING,
  POSTS_ENV_EXITED, /* stopped, or its command ended */
  POSTS_ENV_REMOVING,
  POSTS_ENV_DEAD,
} posts_env_state;

/* The state's lower-case name ("running"). Never NULL. */
const char *posts_env_state_name(posts_env_state state);

/* One environment as the runtime sees it. Owns its strings; filled by
 * posts_env_inspect or posts_env_list, released by posts_env_info_cleanup. */
typedef struct posts_env_info {
  char id[POSTS_ENV_ID_MAX];
  char *ns; /* "" when the environment was not made through this API */
  char *name;
  char *owner; /* set by posts_env_claim; "" while unclaimed */
  char *image;
  posts_env_state state;
  int exit_code; /* of the command, once exited; else 0 (and always 0
                    from posts_env_list: inspect for it) */
  int pid;       /* the main process's pid (in this host's pid namespace)
                    while running, else 0; always 0 from posts_env_list:
                    inspect for it. Where the detector reads the cgroup. */
  char *pod_uid; /* Kubernetes (no pid there): the pod's metadata.uid and
                    its lab container's id while it runs (containerStatuses'
                    containerID without "containerd://" or the like), from
                    which the node finds the container's cgroup
                    (post_watch_pod_cgroup). NULL on other runtimes, and
                    container_id NULL until the container runs. */
  char *container_id;
  int64_t created;     /* unix seconds */
  posts_label *labels; /* the spec's labels (the runtime's own are hidden) */
  size_t n_labels;
} posts_env_info;

/* Frees what info owns and zeroes it. NULL does nothing. */
void posts_env_info_cleanup(posts_env_info *info);

/* The value of label key in info, or NULL. */
const char *posts_env_info_label(const posts_env_info *info, const char *key);

/* What posts_env_list found; release with posts_env_infos_cleanup. */
typedef struct posts_env_infos {
  posts_env_info *items;
  size_t n;
} posts_env_infos;

void posts_env_infos_cleanup(posts_env_infos *infos);

/* A command to run inside a running environment. */
typedef struct posts_exec_req {
  const char *const *argv; /* NULL-terminated, at least one element */
  const char *const *env;  /* "K=V", NULL-terminated, added to the
                              environment's own; may be NULL */
  const char *user;        /* NULL: the environment's user */
  const char *workdir;     /* NULL: the environment's */
  long timeout_ms;         /* 0: 30 s */
  size_t max_output;       /* bytes kept per stream (default 1 MiB); the rest is
                              read and dropped, and the result says so */
} posts_exec_req;

typedef struct posts_exec_result {
  int exit_code;   /* the command's, 126/127 when it could not be run */
  char *out, *err; /* stdout and stderr, NUL-terminated, never NULL after
                      posts_env_exec returned 0 or -ETIMEDOUT; free with
                      posts_exec_result_cleanup */
  size_t out_len, err_len;
  bool truncated; /* one of them went over max_output */
} posts_exec_result;

void posts_exec_result_cleanup(posts_exec_result *res);

/* ------------------------------------------------------------- runtimes */

/* A runtime on the Docker Engine API (v1.41) at the unix socket path (NULL:
 * /run/podman/podman.sock, then /var/run/docker.sock). It does not connect
 * until the first call: posts_runtime_ping tells whether someone answers.
 * Returns NULL on error, with the reason in errbuf (may be NULL). */
posts_runtime *posts_runtime_docker_new(const char *socket_path, char *errbuf, size_t errlen);

/* Frees the handle (environments are left as they are). NULL does nothing. */
void posts_runtime_free(posts_runtime *rt);

/* For a process that is stopping: calls that wait for the runtime (a
 * Kubernetes start waits for its pod to run) return -ECANCELED at once, now
 * and from then on. Other calls go on as before. Safe from any thread. */
void posts_runtime_cancel(posts_runtime *rt);

/* 0 when the runtime answers; -ECONNREFUSED (or -ENOENT: no socket) when not. */
int posts_runtime_ping(posts_runtime *rt, posts_err *err);

/* ---------------------------------------------------------- environments */

/* Creates an environment from spec, not started, and writes its id into
 * id[POSTS_ENV_ID_MAX]. Returns 0, or
 *   -EINVAL  a bad spec (err->msg names the field)
 *   -EEXIST  ns already has an environment with that name
 *   -ENOENT  no such image
 *   -ENOMEM, -EIO (the runtime failed), -ECONNREFUSED, -ETIMEDOUT. */
int posts_env_create(posts_runtime *rt, const posts_env_spec *spec, char *id, posts_err *err);

/* Starts it. Starting a running environment is not an error.
 * -ENOENT: no such environment. */
int posts_env_start(posts_runtime *rt, const char *id, posts_err *err);

/* Stops it: SIGTERM, then SIGKILL after grace_s seconds (negative: the
 * runtime's default of 10). Stopping a stopped environment is not an error. */
int posts_env_stop(posts_runtime *rt, const char *id, int grace_s, posts_err *err);

/* Removes it with its writable layer. A running environment is -EBUSY
 * unless force, which kills it first. -ENOENT: no such environment. */
int posts_env_remove(posts_runtime *rt, const char *id, bool force, posts_err *err);

/* Fills info (which the caller releases with posts_env_info_cleanup, also
 * on error). -ENOENT: no such environment. */
int posts_env_inspect(posts_runtime *rt, const char *id, posts_env_info *info, posts_err *err);

/* Marks the environment id as owned by owner ([a-z0-9.-], at most 63,
 * alphanumeric at both ends: a tenant's name), which posts_env_inspect and
 * posts_env_list then report in info->owner, to this process and to any
 * later one: the owner is kept by the runtime, not here.
 *
 * Why not a label: Docker and Podman cannot change a container's labels
 * once it is created, and a pool must be able to tell from the runtime alone
 * which of its environments are taken. The Docker backend keeps the owner in
 * the container's name instead (renamed from <ns>_<name> to
 * <ns>_<name>__<owner>; info->name is unchanged). The Kubernetes backend
 * patches a label, with the resourceVersion it read as precondition, which
 * makes its claims atomic: of two racing claims one gets -EBUSY.
 *
 * On Docker a claim is checked, not atomic: it fails with -EBUSY when
 * another owner already holds the environment, but two claims of one
 * environment racing from two processes may both succeed, the later owner
 * winning (Podman's rename looks the container up before it locks it;
 * tested). Callers serialise claims of an environment: the pool does,
 * under its lock, and there is one pool per node and namespace. Returns 0
 * (also when owner already holds it), or
 *   -EBUSY   another owner holds it
 *   -ENOENT  no such environment (or not one made through this API)
 *   -EINVAL  a bad id or owner
 *   and the transport's errors. */
int posts_env_claim(posts_runtime *rt, const char *id, const char *owner, posts_err *err);

/* Lists the environments of ns (NULL: of every namespace) that carry every
 * label of sel (value NULL: any value), stopped ones included, made through
 * this API only. The caller releases out with posts_env_infos_cleanup, also
 * on error. */
int posts_env_list(posts_runtime *rt, const char *ns, const posts_label *sel, size_t n_sel,
                   posts_env_infos *out, posts_err *err);

/* Runs req inside the running environment id and waits for it to end,
 * keeping its output and exit code in res (released by the caller with
 * posts_exec_result_cleanup, also on error). Returns 0 whatever the exit
 * code, or
 *   -ENOENT     no such environment
 *   -EBUSY      it is not running
 *   -ETIMEDOUT  still running after timeout_ms: res holds the output so far
 *               and exit_code -1. The Docker API cannot signal an exec, so
 *               the command may go on inside: stop or recycle the
 *               environment to be sure it is gone. */
int posts_env_exec(posts_runtime *rt, const char *id, const posts_exec_req *req,
                   posts_exec_result *res, posts_err *err);

/* ------------------------------------------------------------- watching */

typedef enum posts_watch_type {
  POSTS_WATCH_ADDED = 1, /* selected now: new, or there when the watch began */
  POSTS_WATCH_MODIFIED,  /* changed (state, owner...) */
  POSTS_WATCH_DELETED,   /* gone, or no longer selected; info as it last was */
} posts_watch_type;

/* "added", "modified", "deleted"; never NULL. */
const char *posts_watch_type_name(posts_watch_type type);

/* Receives one change. info is valid during the call only. Returns 0 to go
 * on; anything else ends the watch, and posts_env_watch returns it. */
typedef int (*posts_watch_fn)(void *arg, posts_watch_type type, const posts_env_info *info);

/* Follows the environments posts_env_list(rt, ns, sel, n_sel) would list, as
 * they change, instead of listing them again and again: fn first gets ADDED
 * for each one there now, then each change as the runtime makes it, in order
 * for any one environment. Blocks, on the calling thread (where fn runs),
 * until
 *   - fn returns nonzero: that value is returned;
 *   - *stop becomes true (stop may be NULL): 0 is returned; it is looked at
 *     at least once a second, and before every call of fn;
 *   - a failure that trying again cannot mend: its negative errno (-EACCES,
 *     -EINVAL...), or the first listing's failure of any kind, so that a
 *     wrong server or credentials are reported at once.
 * Losing the connection or an error of the server is mended inside: the
 * watch connects again (0.5 s doubling to 30 s between tries) and resumes
 * where it was; when the runtime has forgotten that point, it lists again
 * and reports the difference (changes in between may then merge into one
 * MODIFIED, and an environment made and removed in between is not seen).
 * Infos carry no pid, as from posts_env_list. fn may call the runtime, but
 * not posts_runtime_free. Returns -ENOTSUP when the backend cannot watch
 * (Docker: poll posts_env_list). */
int posts_env_watch(posts_runtime *rt, const char *ns, const posts_label *sel, size_t n_sel,
                    posts_watch_fn fn, void *arg, const atomic_bool *stop, posts_err *err);

#endif
