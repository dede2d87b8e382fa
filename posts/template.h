/*
 * template.h — lab templates: what a lab's environments run (image,
 * command), under which limits and privileges, how long one may sit idle,
 * how many the pool keeps warm, and the policy the detector enforces in
 * them. Templates are configuration resources, read from YAML or JSON with
 * core/resources.h:
 *
 *   apiVersion: outpost.dev/v1
 *   kind: LabTemplate
 *   metadata:
 *     name: c-lab                      # a DNS label; required
 *   spec:
 *     image: localhost/outpost-lab-c:latest   # required
 *     command: [sleep, infinity]       # optional: the image's own
 *     limits: {pids: 128, memory: 256Mi, cpu: 500m}
 *     capabilities: [NET_BIND_SERVICE] # granted; every other one dropped
 *     network: false                   # loopback only unless true
 *     readOnlyRoot: true
 *     sharedVolume: {hostPath: /srv/course, path: /course}   # read-only
 *     idleTimeout: PT30M               # ISO-8601 duration
 *     pool: {min: 0, max: 10, keepAlive: PT10M}   # keepAlive: see predict.h;
 *                                                 # max 0: never warm, every claim cold
 *     policy:
 *       forbiddenBinaries: [/usr/bin/nc]
 *       forbiddenPaths: [/etc/shadow]
 *       forbiddenDestinations: [169.254.169.254/32]
 *
 * Defaults: no command, pids 256 (the runtime's), no memory or CPU limit, no
 * capabilities, network and readOnlyRoot false, no shared volume,
 * idleTimeout PT30M, pool min 0 and max 10, the pool's keep-alive (predict.h:
 * 10 minutes unless the pool says otherwise), an empty policy. Quantities
 * follow Kubernetes: memory as bytes or with a suffix (Ki Mi Gi Ti, k M G T;
 * "1.5Gi"), CPU as cores ("1", "0.5") or millicores ("500m"). Fields that
 * are not listed here are refused, so that a typo never passes as a default.
 * metadata may also hold labels and annotations, which are not kept.
 *
 * Thread rules: parsing is reentrant; a pool_template is read-only once
 * made and may then be shared by any number of threads.
 */
#ifndef OUTPOST_POSTS_TEMPLATE_H
#define OUTPOST_POSTS_TEMPLATE_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "posts/runtime.h"

#define POOL_TEMPLATE_IDLE_DEFAULT_MS (30 * 60 * 1000)
#define POOL_TEMPLATE_MAX_DEFAULT     10
#define POOL_TEMPLATE_MAX_POOL        1000       /* largest pool.max accepted */
#define POOL_TEMPLATE_MAX_ID          2147483647 /* largest runAsUser, runAsGroup */

/* Where and why a template was refused. */
typedef struct pool_template_err {
  char path[128]; /* "spec.limits.memory"; "" for the whole resource */
  char msg[256];  /* the reason */
} pool_template_err;

/* A parsed template. Every string and list is owned by it; lists are
 * NULL-terminated and never NULL (empty: a lone NULL), except command,
 * which is NULL when the image's own command is used. */
typedef struct pool_template {
  char *name;
  char *image;
  char **command;
  int64_t pids_limit;   /* 0: the runtime's default */
  int64_t memory_bytes; /* 0: none */
  int64_t nano_cpus;    /* 0: none */
  char **capabilities;
  bool network;
  bool read_only_root;
  int64_t run_as_user;    /* > 0: the environment's processes run as this uid; 0:
                             as the image says */
  int64_t run_as_group;   /* > 0: with this gid; 0: the uid's number */
  char *shared_host_path; /* both NULL when there is no shared volume */
  char *shared_path;
  int64_t idle_timeout_ms; /* > 0 */
  uint32_t pool_min, pool_max;
  int64_t keepalive_ms; /* pool.keepAlive; 0: the pool's predictor default */
  /* The detector's data, kept as written. */
  char **forbidden_binaries;
  char **forbidden_paths;
  char **forbidden_destinations;
} pool_template;

/* Reads one LabTemplate resource (a cJSON object from res_parse or
 * res_load_file). Returns a new template owned by the caller (free with
 * pool_template_free), or NULL with *err (may be NULL) naming the field and
 * the reason; NULL with err->path "" and msg "out of memory" when memory
 * ran out. Nothing of res is kept. */
pool_template *pool_template_parse(const cJSON *res, pool_template_err *err);

/* Frees t and all it owns. NULL does nothing. */
void pool_template_free(pool_template *t);

/* Fills *spec to run t's environments in namespace ns with the given labels
 * (not copied). The spec points into t and labels: it is valid while both
 * are. spec->name is left NULL for the caller to set. */
void pool_template_spec(const pool_template *t, const char *ns, const posts_label *labels,
                        size_t n_labels, posts_env_spec *spec);

/* A Kubernetes quantity ("256Mi", "1.5G", "500m") in units of scale: scale
 * 1 for bytes, 1000000000 for nano-CPUs. milli allows the "m" suffix (CPU
 * only: there are no thousandths of a byte). The result is rounded to the
 * nearest unit. Returns 0, or -EINVAL (malformed, or beyond int64_t). */
int pool_quantity_parse(const char *s, int64_t scale, bool milli, int64_t *out);

#endif
