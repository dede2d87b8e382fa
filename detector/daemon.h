/*
 * daemon.h — what the files of `outpost detector` share (main.c, api.c,
 * envs.c) and nothing else includes: the daemon's state, the table that
 * attributes kernel events to environments, and the policies pushed at run
 * time.
 */
#ifndef OUTPOST_DETECTOR_DAEMON_H
#define OUTPOST_DETECTOR_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/httpd.h"
#include "detector/detector.h"
#include "detector/publish.h"

#define DET_NAME_MAX 64 /* a DNS label and its NUL */

/* The largest per-environment rate limit, events per second, that
 * --rate-limit and PUT /v1/limits take (INT32_MAX: far above what the ring
 * carries, and exact in any JSON reader). */
#define DET_RATE_LIMIT_MAX 2147483647u

/* A policy as the admin API took it, owning its strings. */
typedef struct det_policy {
  char **bins, **forbidden, **watched;
  size_t n_bins, n_forbidden, n_watched;
  detector_dest *dests;
  size_t n_dests;
  char *json; /* its canonical JSON, for GET */
} det_policy;

/* A watched environment. */
typedef struct det_env {
  char name[DET_NAME_MAX], tenant[DET_NAME_MAX], ns[DET_NAME_MAX], tmpl[DET_NAME_MAX];
  uint64_t cgroup_id;
  uint32_t env_id;    /* what the kernel stamps on the cgroup's events; never reused */
  det_policy *policy; /* its own, or NULL: its namespace's applies */
} det_env;

typedef struct det_ns_policy {
  char ns[DET_NAME_MAX];
  det_policy *policy;
} det_ns_policy;

/* Deleted environments are remembered a while, so that events still in the
 * ring buffer when one goes are attributed all the same. */
#define DET_RETIRED 64

typedef struct det_table {
  pthread_mutex_t mu; /* everything below; held across the kernel map updates it orders */
  det_env *envs;
  size_t n, cap;
  det_ns_policy *nsp;
  size_t n_nsp, cap_nsp;
  det_env retired[DET_RETIRED];
  size_t n_retired; /* written so far; slot n_retired % DET_RETIRED is the next */
  uint32_t next_id;
} det_table;

typedef struct det_token {
  char *tenant, *token;
} det_token;

/* Tenant-endpoint outcomes, for /metrics. */
enum det_tenant_result {
  DET_T_ACCEPTED = 0,
  DET_T_INVALID,      /* 400 */
  DET_T_UNAUTHORIZED, /* 401 */
  DET_T_FORBIDDEN,    /* 403 */
  DET_T_TOO_LARGE,    /* 413 */
  DET_T_FULL,         /* 429 */
  DET_T_MAX
};

typedef struct det_daemon {
  const char *node;
  detector_bpf *bpf; /* NULL with --no-bpf */
  detector_pub *pub;
  const char *admin_token; /* NULL: the admin API is open */
  det_token *tokens;
  size_t n_tokens;
  det_table table;
  atomic_bool draining;
  _Atomic uint64_t kernel_events[DETECTOR_KIND_MAX]; /* read from the ring, per kind */
  _Atomic uint64_t tenant[DET_T_MAX];
  _Atomic uint64_t drops_reports; /* dev.outpost.detector.drops events queued */
  detector_forkrate *forkrate;    /* used by the poll thread only */
  int fr_window_ms;
  uint32_t fr_threshold;
  _Atomic uint64_t forkrate_events; /* dev.outpost.process.forkrate events raised */
  /* Events per second per environment, 0: none; what the kernel side was
   * last given (--rate-limit, then PUT /v1/limits). */
  _Atomic uint64_t rate_limit;
  detector_throttle *throttle;        /* noted by the poll thread, taken by the reports */
  _Atomic uint64_t throttled_reports; /* dev.outpost.detector.throttled events queued */
  bool pub_json;  /* the publisher takes events already in JSON (an ingress, not Kafka) */
  ce_buf ev_json; /* the poll thread's: one kernel event's JSON, its memory reused */
} det_daemon;

/* api.c: the HTTP server's handler (ctx is the det_daemon). */
void detector__http(void *ctx, httpd_req *req);

/* envs.c */
void detector__table_init(det_table *t);
void detector__table_cleanup(det_table *t);
/* Copies the environment the kernel stamped env_id on into *out (a live one
 * or a recently deleted one). Returns 0 or -ENOENT. */
int detector__env_find(det_daemon *dd, uint32_t env_id, det_env *out);
/* /v1/environments... and /v1/policies... (after the admin token check). */
void detector__admin(det_daemon *dd, httpd_req *req, const char *path);

#endif
