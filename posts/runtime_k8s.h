/*
 * runtime_k8s.h — posts/runtime.h on the Kubernetes API: how to reach an API
 * server (from inside the cluster, or from a kubeconfig file) and how the
 * environments are made there. Everything else (create, claim, list,
 * watch...) is posts/runtime.h; what the Kubernetes backend does differently
 * is written at the top of posts/runtime_k8s.c and in posts/README.md.
 *
 * A configuration is a caller-owned struct: posts_k8s_config_init gives the
 * defaults, a loader fills in where and who, the caller may change any field,
 * posts_runtime_k8s_new copies what it needs, and posts_k8s_config_cleanup
 * frees it. Every string in it belongs to the struct (malloc'd, freed by
 * posts_k8s_config_cleanup): a caller who sets one by hand gives a strdup.
 */
#ifndef OUTPOST_POSTS_RUNTIME_K8S_H
#define OUTPOST_POSTS_RUNTIME_K8S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "posts/runtime.h"

typedef struct posts_k8s_config {
  /* Where and who: filled by a loader, or by hand. */
  char *server;          /* "https://10.96.0.1:443" (http:// too, for tests); required */
  char *ca_pem;          /* the certificates to trust, PEM; NULL: the system's */
  char *token;           /* a bearer token; NULL: none */
  char *token_file;      /* a file holding the bearer token, read again every minute
                            (bound service-account tokens rotate); wins over token */
  char *client_cert_pem; /* a client certificate and its key, PEM: both or neither */
  char *client_key_pem;
  bool insecure; /* do not verify the server's certificate (insecure-skip-tls-verify) */
  char *home_ns; /* the namespace the loader found (the service account's, or the
                    context's); for the caller, the runtime does not use it */
  /* How environments are made; posts_k8s_config_init sets the defaults. */
  char *ns_prefix;              /* Kubernetes namespace = ns_prefix + Outpost namespace;
                                   default "" (the same name). At most 63 together. */
  char *node_name;              /* spec.nodeName of every pod (the pool is per node);
                                   NULL: the scheduler places them */
  int64_t default_nano_cpus;    /* the CPU limit when a spec has none (default 1 CPU):
                                   every pod has limits */
  int64_t default_memory_bytes; /* the memory limit when a spec has none (default 1 GiB) */
  int64_t run_as_user;          /* > 0: pods whose spec names no user run as this
                                   uid and gid, with runAsNonRoot; 0 (default): as
                                   the image says */
  long start_timeout_ms;        /* how long posts_env_start waits for the pod to run
                                   (default 120000); negative: it does not wait */
} posts_k8s_config;

/* Zeroes cfg and sets the defaults above (ns_prefix ""). 0 or -ENOMEM. */
int posts_k8s_config_init(posts_k8s_config *cfg);

/* Frees every string of cfg and zeroes it. NULL does nothing. */
void posts_k8s_config_cleanup(posts_k8s_config *cfg);

/* Fills server, ca_pem, token_file and home_ns for a process running in a
 * pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, and the service
 * account's files under /var/run/secrets/kubernetes.io/serviceaccount (token,
 * ca.crt, namespace). Strings it replaces are freed. Returns 0, or -ENOENT
 * (not in a cluster: a variable or file is missing), -EACCES, -ENOMEM, with
 * the reason in errbuf (may be NULL). */
int posts_k8s_config_in_cluster(posts_k8s_config *cfg, char *errbuf, size_t errlen);

/* Fills the connection fields of cfg from a kubeconfig file (path NULL:
 * $KUBECONFIG, else ~/.kube/config) for context (NULL: its current-context):
 * the cluster's server, certificate-authority(-data) and
 * insecure-skip-tls-verify; the user's token, tokenFile and
 * client-certificate(-data) / client-key(-data); the context's namespace as
 * home_ns. Relative file names are taken from the kubeconfig's directory.
 * One file only: a $KUBECONFIG list of several is refused. Returns 0, or
 *   -ENOENT   no such file, context, cluster or user
 *   -EINVAL   not a kubeconfig, or a field of the wrong type or bad base64
 *   -ENOTSUP  the user authenticates in a way this client cannot (exec or
 *             auth-provider plugins, username and password)
 *   -EACCES, -ENOMEM,
 * with the reason in errbuf (may be NULL). cfg may be half-filled on error. */
int posts_k8s_config_from_kubeconfig(posts_k8s_config *cfg, const char *path, const char *context,
                                     char *errbuf, size_t errlen);

/* A runtime on the Kubernetes API at cfg->server, with cfg's credentials
 * (copied: cfg may be cleaned up at once). It does not connect until the
 * first call: posts_runtime_ping tells whether the server answers and takes
 * the credentials. Returns NULL on error (a bad server URL, a certificate
 * without its key, a prefix that is no DNS label...) with the reason in
 * errbuf (may be NULL). Free with posts_runtime_free. */
posts_runtime *posts_runtime_k8s_new(const posts_k8s_config *cfg, char *errbuf, size_t errlen);

#endif
