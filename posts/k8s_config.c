/*
 * k8s_config.c — where the Kubernetes backend finds its API server and
 * credentials: a pod's service account (in-cluster), or a kubeconfig file
 * (read with core/resources.h, the YAML loader on libyaml the rest of
 * Outpost uses). Certificates and keys are read into memory here, from
 * files or base64 "-data" fields alike, so that the runtime hands libcurl
 * PEM blobs and never re-reads a file but the token.
 */
#include "posts/k8s_int.h"

#include "core/resources.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SA_DIR         "/var/run/secrets/kubernetes.io/serviceaccount"
#define MAX_PEM        (1 << 20)
#define MAX_KUBECONFIG (4 << 20)
#define ONE_CPU        1000000000LL
#define ONE_GIB        (1LL << 30)

static int fail(char *errbuf, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *errbuf, size_t errlen, int rc, const char *fmt, ...) {
  if (errbuf && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

int posts__k8s_read_file(const char *path, size_t max, char **out, size_t *len) {
  k8s_buf b = {.max = max};
  char chunk[8192];
  ssize_t n;
  int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
  *out = NULL;
  *len = 0;
  if (fd < 0) return -errno;
  while ((n = read(fd, chunk, sizeof chunk)) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      rc = -errno;
      break;
    }
    posts__buf_put(&b, chunk, (size_t)n);
    if (b.over || b.nomem) {
      rc = b.nomem ? -ENOMEM : -EFBIG;
      break;
    }
  }
  close(fd);
  if (rc == 0 && !b.p && !(b.p = calloc(1, 1))) rc = -ENOMEM;
  if (rc < 0) {
    free(b.p);
    return rc;
  }
  *out = b.p;
  *len = b.len;
  return 0;
}

int posts_k8s_config_init(posts_k8s_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->default_nano_cpus = ONE_CPU;
  cfg->default_memory_bytes = ONE_GIB;
  return posts__strdup(&cfg->ns_prefix, "");
}

void posts_k8s_config_cleanup(posts_k8s_config *cfg) {
  if (!cfg) return;
  free(cfg->server);
  free(cfg->ca_pem);
  free(cfg->token);
  free(cfg->token_file);
  free(cfg->client_cert_pem);
  free(cfg->client_key_pem);
  free(cfg->home_ns);
  free(cfg->ns_prefix);
  free(cfg->node_name);
  memset(cfg, 0, sizeof *cfg);
}

/* Replaces *field with value (taken; may be NULL). */
static void set_field(char **field, char *value) {
  free(*field);
  *field = value;
}

/* ----------------------------------------------------------- in cluster */

/* The file dir/name as a string with trailing white space cut; *out NULL
 * and 0 when optional and missing. */
static int read_text(const char *dir, const char *name, bool optional, char **out, char *errbuf,
                     size_t errlen) {
  char path[512];
  size_t n;
  int rc;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if ((rc = posts__k8s_read_file(path, MAX_PEM, out, &n)) < 0) {
    if (optional && rc == -ENOENT) return 0;
    return fail(errbuf, errlen, rc, "%s: %s", path, strerror(-rc));
  }
  while (n && ((*out)[n - 1] == '\n' || (*out)[n - 1] == ' ' || (*out)[n - 1] == '\r'))
    (*out)[--n] = '\0';
  return 0;
}

int posts__k8s_config_in_cluster_dir(posts_k8s_config *cfg, const char *dir, char *errbuf,
                                     size_t errlen) {
  const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
  char *token = NULL, *ca = NULL, *ns = NULL, *server = NULL, *token_file = NULL;
  size_t n;
  int rc;
  if (!host || !host[0] || !port || !port[0])
    return fail(errbuf, errlen, -ENOENT,
                "not in a cluster: KUBERNETES_SERVICE_HOST or KUBERNETES_SERVICE_PORT unset");
  /* The token is read now only to fail early; the runtime reads it again
   * as it rotates. */
  if ((rc = read_text(dir, "token", false, &token, errbuf, errlen)) < 0 ||
      (rc = read_text(dir, "ca.crt", false, &ca, errbuf, errlen)) < 0 ||
      (rc = read_text(dir, "namespace", true, &ns, errbuf, errlen)) < 0)
    goto cleanup;
  n = strlen(host) + strlen(port) + 16;
  if (!(server = malloc(n)) || !(token_file = malloc(strlen(dir) + 8))) {
    rc = fail(errbuf, errlen, -ENOMEM, "out of memory");
    goto cleanup;
  }
  /* An IPv6 address needs brackets in a URL. */
  snprintf(server, n, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port);
  sprintf(token_file, "%s/token", dir);
  set_field(&cfg->server, server);
  set_field(&cfg->ca_pem, ca);
  set_field(&cfg->token_file, token_file);
  set_field(&cfg->home_ns, ns);
  server = ca = token_file = ns = NULL;
cleanup:
  free(token);
  free(ca);
  free(ns);
  free(server);
  free(token_file);
  return rc;
}

int posts_k8s_config_in_cluster(posts_k8s_config *cfg, char *errbuf, size_t errlen) {
  return posts__k8s_config_in_cluster_dir(cfg, SA_DIR, errbuf, errlen);
}

/* ----------------------------------------------------------- kubeconfig */

static int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Standard base64 (white space ignored, padding optional) into a new
 * NUL-terminated *out. 0, -EINVAL or -ENOMEM. */
static int b64_decode(const char *in, char **out) {
  size_t n = strlen(in), len = 0;
  unsigned acc = 0;
  int bits = 0, pad = 0;
  char *p = malloc(n / 4 * 3 + 4);
  if (!p) return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    int v = b64_value(in[i]);
    if (in[i] == ' ' || in[i] == '\n' || in[i] == '\r' || in[i] == '\t') continue;
    if (in[i] == '=') {
      pad++;
      continue;
    }
    if (v < 0 || pad) {
      free(p);
      return -EINVAL;
    }
    acc = acc << 6 | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      p[len++] = (char)(acc >> bits & 0xff);
    }
  }
  p[len] = '\0';
  *out = p;
  return 0;
}

/* The "sub" object of the entry of cfg's list (clusters, users, contexts)
 * whose name is name, or NULL. */
static const cJSON *named(const cJSON *cfg, const char *list, const char *sub, const char *name) {
  const cJSON *e;
  cJSON_ArrayForEach(e, res_get_key(cfg, list)) {
    const char *n = cJSON_GetStringValue(res_get_key(e, "name"));
    if (n && strcmp(n, name) == 0) return res_get_key(e, sub);
  }
  return NULL;
}

/* A file named in the kubeconfig: absolute, or relative to its directory. */
static int read_named_file(const char *dir, const char *name, char **out, char *errbuf,
                           size_t errlen) {
  char path[1024];
  size_t n;
  int rc;
  if (name[0] == '/' || !dir[0])
    snprintf(path, sizeof path, "%s", name);
  else
    snprintf(path, sizeof path, "%s/%s", dir, name);
  if ((rc = posts__k8s_read_file(path, MAX_PEM, out, &n)) < 0)
    return fail(errbuf, errlen, rc, "%s: %s", path, strerror(-rc));
  return 0;
}

/* The PEM of obj's "<key>-data" (base64) or "<key>" (a file), into *out
 * (replaced); untouched when neither is there. */
static int read_pem(const cJSON *obj, const char *key, const char *dir, char **out, char *errbuf,
                    size_t errlen) {
  char data_key[64];
  const cJSON *data, *file;
  char *pem = NULL;
  int rc;
  snprintf(data_key, sizeof data_key, "%s-data", key);
  data = res_get_key(obj, data_key);
  file = res_get_key(obj, key);
  if ((data && !cJSON_IsString(data)) || (file && !cJSON_IsString(file)))
    return fail(errbuf, errlen, -EINVAL, "%s: not a string", data ? data_key : key);
  if (data) {
    if ((rc = b64_decode(data->valuestring, &pem)) < 0)
      return fail(errbuf, errlen, rc, "%s: %s", data_key,
                  rc == -EINVAL ? "not base64" : "out of memory");
  } else if (file) {
    if ((rc = read_named_file(dir, file->valuestring, &pem, errbuf, errlen)) < 0) return rc;
  } else {
    return 0;
  }
  set_field(out, pem);
  return 0;
}

/* A string field into *out (replaced) when present. */
static int read_str(const cJSON *obj, const char *key, char **out, char *errbuf, size_t errlen) {
  const cJSON *v = res_get_key(obj, key);
  char *s;
  if (!v) return 0;
  if (!cJSON_IsString(v)) return fail(errbuf, errlen, -EINVAL, "%s: not a string", key);
  if (posts__strdup(&s, v->valuestring) < 0) return fail(errbuf, errlen, -ENOMEM, "out of memory");
  set_field(out, s);
  return 0;
}

static int read_cluster(posts_k8s_config *cfg, const cJSON *c, const char *dir, char *errbuf,
                        size_t errlen) {
  const cJSON *insecure = res_get_key(c, "insecure-skip-tls-verify");
  int rc;
  if (!cJSON_IsString(res_get_key(c, "server")))
    return fail(errbuf, errlen, -EINVAL, "cluster: no server");
  if ((rc = read_str(c, "server", &cfg->server, errbuf, errlen)) < 0 ||
      (rc = read_pem(c, "certificate-authority", dir, &cfg->ca_pem, errbuf, errlen)) < 0)
    return rc;
  if (insecure && !cJSON_IsBool(insecure))
    return fail(errbuf, errlen, -EINVAL, "insecure-skip-tls-verify: not a boolean");
  cfg->insecure = cJSON_IsTrue(insecure);
  return 0;
}

static int read_user(posts_k8s_config *cfg, const cJSON *u, const char *dir, char *errbuf,
                     size_t errlen) {
  static const char *const unsupported[] = {"exec", "auth-provider", "username", "password", NULL};
  const cJSON *tf = res_get_key(u, "tokenFile");
  int rc;
  for (size_t i = 0; unsupported[i]; i++)
    if (res_get_key(u, unsupported[i]))
      return fail(errbuf, errlen, -ENOTSUP,
                  "user: %s is not supported (a token, a token file or a client certificate is)",
                  unsupported[i]);
  if ((rc = read_str(u, "token", &cfg->token, errbuf, errlen)) < 0 ||
      (rc = read_pem(u, "client-certificate", dir, &cfg->client_cert_pem, errbuf, errlen)) < 0 ||
      (rc = read_pem(u, "client-key", dir, &cfg->client_key_pem, errbuf, errlen)) < 0)
    return rc;
  if (tf) {
    char *path;
    size_t n;
    if (!cJSON_IsString(tf)) return fail(errbuf, errlen, -EINVAL, "tokenFile: not a string");
    n = strlen(dir) + strlen(tf->valuestring) + 2;
    if (!(path = malloc(n))) return fail(errbuf, errlen, -ENOMEM, "out of memory");
    if (tf->valuestring[0] == '/' || !dir[0])
      snprintf(path, n, "%s", tf->valuestring);
    else
      snprintf(path, n, "%s/%s", dir, tf->valuestring);
    set_field(&cfg->token_file, path);
  }
  if (!cfg->client_cert_pem != !cfg->client_key_pem)
    return fail(errbuf, errlen, -EINVAL, "user: a client certificate needs its key, and back");
  return 0;
}

/* Fills cfg from the kubeconfig object kc for context (NULL: current). */
static int read_kubeconfig(posts_k8s_config *cfg, const cJSON *kc, const char *context,
                           const char *dir, char *errbuf, size_t errlen) {
  const cJSON *ctx, *cluster, *user;
  const char *cname, *uname;
  int rc;
  if (!cJSON_IsObject(kc) || (!res_get_key(kc, "clusters") && !res_get_key(kc, "contexts")))
    return fail(errbuf, errlen, -EINVAL, "not a kubeconfig (no clusters, no contexts)");
  if (!context && !(context = cJSON_GetStringValue(res_get_key(kc, "current-context"))))
    return fail(errbuf, errlen, -ENOENT, "no context given and no current-context");
  if (!(ctx = named(kc, "contexts", "context", context)))
    return fail(errbuf, errlen, -ENOENT, "no context %s", context);
  if (!(cname = cJSON_GetStringValue(res_get_key(ctx, "cluster"))) ||
      !(cluster = named(kc, "clusters", "cluster", cname)))
    return fail(errbuf, errlen, -ENOENT, "context %s: no such cluster", context);
  if ((rc = read_cluster(cfg, cluster, dir, errbuf, errlen)) < 0) return rc;
  /* A context without a user connects anonymously. */
  if ((uname = cJSON_GetStringValue(res_get_key(ctx, "user")))) {
    if (!(user = named(kc, "users", "user", uname)))
      return fail(errbuf, errlen, -ENOENT, "context %s: no user %s", context, uname);
    if ((rc = read_user(cfg, user, dir, errbuf, errlen)) < 0) return rc;
  }
  return read_str(ctx, "namespace", &cfg->home_ns, errbuf, errlen);
}

int posts_k8s_config_from_kubeconfig(posts_k8s_config *cfg, const char *path, const char *context,
                                     char *errbuf, size_t errlen) {
  char fallback[1024], dir[1024];
  const char *slash;
  cJSON *docs = NULL;
  res_err rerr = {0};
  int rc;
  if (!path && (path = getenv("KUBECONFIG")) && !path[0]) path = NULL;
  if (path && strchr(path, ':'))
    return fail(errbuf, errlen, -EINVAL, "KUBECONFIG lists several files; give one");
  if (!path) {
    const char *home = getenv("HOME");
    if (!home) return fail(errbuf, errlen, -ENOENT, "no kubeconfig: neither KUBECONFIG nor HOME");
    snprintf(fallback, sizeof fallback, "%s/.kube/config", home);
    path = fallback;
  }
  slash = strrchr(path, '/');
  snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 0, path);
  if (slash == path) snprintf(dir, sizeof dir, "/");
  if ((rc = res_load_file(path, MAX_KUBECONFIG, &docs, &rerr)) < 0)
    return fail(errbuf, errlen, rc, "%s: %s", path, rerr.msg);
  if (cJSON_GetArraySize(docs) != 1)
    rc = fail(errbuf, errlen, -EINVAL, "%s: not one kubeconfig document", path);
  else if ((rc = read_kubeconfig(cfg, cJSON_GetArrayItem(docs, 0), context, dir, errbuf, errlen)) <
               0 &&
           errbuf && errlen) {
    /* The file's name in front of the reason. */
    char why[512];
    snprintf(why, sizeof why, "%s", errbuf);
    snprintf(errbuf, errlen, "%s: %s", path, why);
  }
  cJSON_Delete(docs);
  return rc;
}
