/*
 * runtime_k8s.c — posts/runtime.h on the Kubernetes API (v1 pods), with
 * libcurl over TLS and cJSON: the HTTP layer and the operations. Pods are
 * built and read in k8s_pod.c, watched in k8s_watch.c, and the configuration
 * (in-cluster, kubeconfig) is read in k8s_config.c.
 *
 * Where things are:
 *   - An Outpost namespace is a Kubernetes namespace (ns_prefix + ns; the
 *     prefix is "" by default), made by the first create in it when missing
 *     and labelled app.kubernetes.io/managed-by=outpost. An environment is a
 *     pod there, its id "<namespace>/<pod>", labelled
 *     outpost.runtime/namespace=<ns> (how the runtime finds its own) besides
 *     the spec's labels.
 *   - The warm pool: Outpost's pool is one per node and Outpost namespace
 *     (posts/pool.h), so warm pods live in that namespace from the start,
 *     pinned to the node by spec.nodeName when the configuration names one.
 *     Pods cannot move between namespaces, and need not: a claim only
 *     relabels the pod. Tenants of one namespace are kept apart by network
 *     policy, not by namespace (below).
 *   - A claim is the label outpost.dev/owner=<tenant>, set by a JSON merge
 *     patch that carries the resourceVersion read just before as a
 *     precondition: the API server refuses it (409) when the pod changed in
 *     between, so of two racing claims exactly one wins — unlike Docker, the
 *     claim is atomic here. A 409 caused by another change (the kubelet
 *     updating the status) is tried again; one caused by another owner is
 *     -EBUSY.
 *   - Network: a pod whose spec has no network is labelled
 *     outpost.runtime/network=none, and each namespace gets (once per
 *     process, idempotently) the NetworkPolicy outpost-no-network, which
 *     denies such pods all ingress and egress; loopback inside the pod is not
 *     affected. Policies need a network plugin that enforces them (Calico,
 *     Cilium...; flannel alone ignores them). A create of a pod without
 *     network fails when the policy can be neither made nor read. Isolating
 *     networked tenants from each other is left to policies on the owner
 *     label (one per tenant: pods with outpost.dev/owner=alice take ingress
 *     only from pods with that label), which this runtime does not make.
 *   - Least privilege, in every pod: allowPrivilegeEscalation false, every
 *     capability dropped but those granted, seccomp RuntimeDefault, no
 *     service-account token mounted, no service links, readOnlyRootFilesystem
 *     from the spec, and limits always (the spec's, else the configuration's
 *     defaults: 1 CPU, 1 GiB), requests equal to them. runAsUser and
 *     runAsGroup from the spec (a template's runAsUser), else from the
 *     configuration's run_as_user (> 0: that uid and gid), each time with
 *     runAsNonRoot; neither: the pod runs as the image says. Pids:
 *     Kubernetes has no per-pod limit (the kubelet's podPidsLimit is per
 *     node), so spec.pids_limit is not applied here. The course volume is a
 *     hostPath (type Directory: it must exist) mounted read-only.
 *     restartPolicy Never: an environment whose command ends is EXITED with
 *     its exit code, as on Docker, instead of starting again with its state
 *     lost.
 *   - States: a deletionTimestamp is REMOVING; else phase Pending is CREATED,
 *     Running RUNNING, Succeeded and Failed EXITED (the exit code from the
 *     container's terminated state). No pid: the info carries the pod's uid
 *     and, while it runs, the lab container's id (its status' containerID
 *     without the scheme), by which the node post finds the container's
 *     cgroup on its node (post_watch_pod_cgroup) for the detector.
 *   - start: a pod starts by itself once scheduled, so create makes it and
 *     start waits until it runs (start_timeout_ms, default 2 minutes;
 *     negative: start only checks that the pod exists), so that the pool's
 *     warm environments are running ones and its refill time is real. An
 *     image that cannot be pulled is -ENOENT there, as Docker's create says.
 *   - stop: Kubernetes cannot stop a pod and keep it, so stop deletes it with
 *     grace_s as grace period (SIGTERM, then SIGKILL): what a caller of stop
 *     wants from it. The pod is then REMOVING until its kubelet is done (a
 *     remove meanwhile deletes it at once), then gone: a later remove is
 *     -ENOENT. The pool never stops: it removes, and takes -ENOENT as done.
 *   - remove: force deletes with grace period 0 (the API object goes at once,
 *     the kubelet kills what runs); without force a running pod is -EBUSY.
 *   - exec is pods/exec over a WebSocket (v4.channel.k8s.io), which the API
 *     server passes through to the pod's kubelet: k8s_exec.c, on a
 *     connection of its own that libcurl only opens (Debian's libcurl 7.88
 *     has no WebSocket API). The pod must be Running (-EBUSY otherwise).
 *
 * HTTP: one request per call, on a curl handle taken from a small pool so
 * that TLS connections are reused; the handle is the calling thread's for
 * the request, which keeps the runtime thread-safe. Statuses become errnos
 * in posts__k8s_api_error; 401 (who are you?) and 403 (not allowed) are both
 * -EACCES, err->status telling them apart.
 */
#include "posts/k8s_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CALL_TIMEOUT     30000L     /* ms; the API server answers in milliseconds */
#define CONNECT_TIMEOUT  10000L     /* ms */
#define MAX_ANSWER       (32 << 20) /* a page of 500 pods fits */
#define TOKEN_REREAD_MS  60000      /* as client-go does for bound tokens */
#define MAX_TOKEN        (64 << 10)
#define CLAIM_TRIES      5 /* 409s caused by other changes than a claim */
#define LIST_PAGE        500
#define DEFAULT_START_MS 120000L /* scheduling and an image pull */

static size_t on_body(char *data, size_t size, size_t n, void *arg) {
  k8s_buf *b = arg;
  posts__buf_put(b, data, size * n);
  return b->nomem ? 0 : size * n;
}

/* ----------------------------------------------------------------- HTTP */

/* A handle from the pool (with its live connections), or a new one. */
static CURL *handle_take(k8s *k) {
  CURL *h = NULL;
  pthread_mutex_lock(&k->mu);
  if (k->n_idle) h = k->idle[--k->n_idle];
  pthread_mutex_unlock(&k->mu);
  return h ? h : curl_easy_init();
}

/* Back to the pool, its options reset (no pointer into a caller's stack is
 * kept); freed when the pool is full. */
static void handle_give(k8s *k, CURL *h) {
  curl_easy_reset(h);
  pthread_mutex_lock(&k->mu);
  if (k->n_idle < K8S_IDLE_MAX) {
    k->idle[k->n_idle++] = h;
    h = NULL;
  }
  pthread_mutex_unlock(&k->mu);
  if (h) curl_easy_cleanup(h);
}

/* The token file is read again once a minute: bound service-account
 * tokens are replaced by the kubelet while we run. A read that fails keeps
 * the token read before. */
int posts__k8s_auth_line(k8s *k, char **line, posts_err *err) {
  int rc = 0;
  *line = NULL;
  pthread_mutex_lock(&k->mu);
  if (k->token_file && (!k->token || posts__k8s_mono_ms() - k->token_read_ms >= TOKEN_REREAD_MS)) {
    char *t;
    size_t n;
    rc = posts__k8s_read_file(k->token_file, MAX_TOKEN, &t, &n);
    k->token_read_ms = posts__k8s_mono_ms();
    if (rc == 0) {
      while (n && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' ')) t[--n] = '\0';
      free(k->token);
      k->token = t;
    } else if (!k->token) {
      posts__err(err, rc, 0, "token file %s: %s", k->token_file, strerror(-rc));
    } else {
      rc = 0;
    }
  }
  if (rc == 0 && k->token && k->token[0]) {
    size_t n = strlen(k->token) + 32;
    if ((*line = malloc(n)))
      snprintf(*line, n, "Authorization: Bearer %s", k->token);
    else
      rc = posts__err(err, -ENOMEM, 0, "out of memory");
  }
  pthread_mutex_unlock(&k->mu);
  return rc;
}

int posts__k8s_curl_errno(CURL *h, CURLcode cc) {
  long os = 0;
  switch (cc) {
  case CURLE_COULDNT_CONNECT:
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os);
    return os == EHOSTUNREACH || os == ENETUNREACH ? -(int)os : -ECONNREFUSED;
  case CURLE_COULDNT_RESOLVE_HOST:
    return -EHOSTUNREACH;
  case CURLE_OPERATION_TIMEDOUT:
    return -ETIMEDOUT;
  case CURLE_OUT_OF_MEMORY:
    return -ENOMEM;
  case CURLE_ABORTED_BY_CALLBACK:
    return -ECANCELED;
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
    return -EPROTO;
  default:
    return -EIO;
  }
}

static int on_progress(void *arg, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln) {
  const atomic_bool *stop = arg;
  return atomic_load(stop) ? 1 : 0;
}

static bool add_header(struct curl_slist **l, const char *line) {
  struct curl_slist *more = curl_slist_append(*l, line);
  if (more) *l = more;
  return more != NULL;
}

/* TLS: the configured CA only (not the system's as well), and the client
 * certificate. Blobs are copied by libcurl. */
static void set_tls(k8s *k, CURL *h) {
  if (k->insecure) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  } else if (k->ca_pem) {
    struct curl_blob ca = {k->ca_pem, strlen(k->ca_pem), CURL_BLOB_COPY};
    curl_easy_setopt(h, CURLOPT_CAINFO, NULL);
    curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
  }
  if (k->cert_pem) {
    struct curl_blob cert = {k->cert_pem, strlen(k->cert_pem), CURL_BLOB_COPY};
    struct curl_blob key = {k->key_pem, strlen(k->key_pem), CURL_BLOB_COPY};
    curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &key);
    curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
  }
}

void posts__k8s_setup(k8s *k, CURL *h, const char *url, const atomic_bool *stop, char *cerr) {
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "outpost");
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
  if (stop) {
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)stop);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  }
  set_tls(k, h);
}

int posts__k8s_http(k8s *k, const char *method, const char *path, const char *ctype,
                    const char *body, long timeout_ms, k8s_body_fn wr, void *wr_arg,
                    const atomic_bool *stop, long *status, posts_err *err) {
  char cerr[CURL_ERROR_SIZE] = "", ct[96], *auth = NULL, *url = NULL;
  struct curl_slist *hdrs = NULL;
  CURL *h = NULL;
  CURLcode cc;
  size_t n = strlen(k->server) + strlen(path) + 1;
  int rc = posts__k8s_auth_line(k, &auth, err);
  *status = 0;
  if (rc < 0) return rc;
  snprintf(ct, sizeof ct, "Content-Type: %s", ctype ? ctype : "application/json");
  if (!(url = malloc(n)) || !(h = handle_take(k)) ||
      !add_header(&hdrs, "Accept: application/json") || (body && !add_header(&hdrs, ct)) ||
      (auth && !add_header(&hdrs, auth)) ||
      /* No "Expect: 100-continue" round trip before a pod's body. */
      (body && !add_header(&hdrs, "Expect:"))) {
    rc = posts__err(err, -ENOMEM, 0, "out of memory");
    goto cleanup;
  }
  snprintf(url, n, "%s%s", k->server, path);
  posts__k8s_setup(k, h, url, stop, cerr);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, wr);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, wr_arg);
  if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  cc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
  if (cc != CURLE_OK) {
    rc = posts__k8s_curl_errno(h, cc);
    posts__err(err, rc, 0, "%s %s: %s", method, k->server, cerr[0] ? cerr : curl_easy_strerror(cc));
  }
cleanup:
  curl_slist_free_all(hdrs);
  if (h) handle_give(k, h);
  free(url);
  free(auth);
  return rc;
}

int posts__k8s_api_error(long status, const char *body, posts_err *err) {
  cJSON *j = cJSON_Parse(body);
  const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "message"));
  const char *reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "reason"));
  int code;
  switch (status) {
  case 400:
  case 422:
    code = -EINVAL;
    break;
  case 401:
  case 403:
    code = -EACCES;
    break;
  case 404:
    code = -ENOENT;
    break;
  case 409:
    code = reason && strcmp(reason, "AlreadyExists") == 0 ? -EEXIST : -EBUSY;
    break;
  case 410:
    code = -ESTALE;
    break;
  case 429:
    code = -EAGAIN;
    break;
  case 504:
    code = -ETIMEDOUT;
    break;
  default:
    code = -EIO;
  }
  posts__err(err, code, status, "%s", msg ? msg : body && body[0] ? body : "no message");
  cJSON_Delete(j);
  return code;
}

int posts__k8s_call(k8s *k, const char *method, const char *path, const char *ctype, cJSON *body,
                    const long *ok, cJSON **out, posts_err *err) {
  k8s_buf b = {.max = MAX_ANSWER};
  char *text = body ? cJSON_PrintUnformatted(body) : NULL;
  long status = 0;
  int rc;
  if (out) *out = NULL;
  if (body && !text) return posts__err(err, -ENOMEM, 0, "out of memory");
  rc = posts__k8s_http(k, method, path, ctype, text, CALL_TIMEOUT, on_body, &b, NULL, &status, err);
  free(text);
  if (rc == 0 && (b.nomem || b.over))
    rc = posts__err(err, b.nomem ? -ENOMEM : -EMSGSIZE, status, "%s %s: answer too large", method,
                    path);
  if (rc == 0) {
    bool good = false;
    for (size_t i = 0; ok[i]; i++) good = good || ok[i] == status;
    if (!good)
      rc = posts__k8s_api_error(status, b.p ? b.p : "", err);
    else if (out && !(*out = cJSON_Parse(b.p ? b.p : "")))
      rc = posts__err(err, -EPROTO, status, "%s %s: the answer is not JSON", method, path);
  }
  free(b.p);
  return rc;
}

/* ------------------------------------------------------------ namespaces */

static bool ensured(k8s *k, const char *kns) {
  bool yes = false;
  pthread_mutex_lock(&k->mu);
  for (size_t i = 0; i < k->n_ensured && !yes; i++) yes = strcmp(k->ensured[i], kns) == 0;
  pthread_mutex_unlock(&k->mu);
  return yes;
}

static void ensured_add(k8s *k, const char *kns) {
  char **v, *s = NULL;
  pthread_mutex_lock(&k->mu);
  if ((v = realloc(k->ensured, (k->n_ensured + 1) * sizeof *v)) && posts__strdup(&s, kns) == 0) {
    k->ensured = v;
    k->ensured[k->n_ensured++] = s;
  } else if (v) {
    k->ensured = v; /* forgetting costs a request next time, nothing more */
  }
  pthread_mutex_unlock(&k->mu);
}

/* {"metadata": {"name": name, "labels": {managed-by: outpost}}} with the
 * kind and apiVersion given, or NULL. */
static cJSON *managed_object(const char *api_version, const char *kind, const char *name) {
  cJSON *o = cJSON_CreateObject(), *md, *labels;
  if (!o || !cJSON_AddStringToObject(o, "apiVersion", api_version) ||
      !cJSON_AddStringToObject(o, "kind", kind) || !(md = cJSON_AddObjectToObject(o, "metadata")) ||
      !cJSON_AddStringToObject(md, "name", name) ||
      !(labels = cJSON_AddObjectToObject(md, "labels")) ||
      !cJSON_AddStringToObject(labels, K8S_MANAGED_LABEL, K8S_MANAGER)) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

/* The NetworkPolicy that denies pods labelled network=none all ingress and
 * egress: it selects them and allows nothing. */
static cJSON *policy_body(void) {
  cJSON *p = managed_object("networking.k8s.io/v1", "NetworkPolicy", K8S_POLICY), *spec, *sel, *m;
  cJSON *types;
  if (!p || !(spec = cJSON_AddObjectToObject(p, "spec")) ||
      !(sel = cJSON_AddObjectToObject(spec, "podSelector")) ||
      !(m = cJSON_AddObjectToObject(sel, "matchLabels")) ||
      !cJSON_AddStringToObject(m, K8S_NETWORK_LABEL, "none") ||
      !(types = cJSON_AddArrayToObject(spec, "policyTypes")) ||
      !cJSON_AddItemToArray(types, cJSON_CreateString("Ingress")) ||
      !cJSON_AddItemToArray(types, cJSON_CreateString("Egress"))) {
    cJSON_Delete(p);
    return NULL;
  }
  return p;
}

/* Makes the policy, or finds it made (by an earlier run, or by an operator
 * when we may not make it but may read it). */
static int ensure_policy(k8s *k, const char *kns, posts_err *err) {
  static const long made[] = {201, 409, 0}, ok[] = {200, 0};
  char path[256];
  cJSON *body = policy_body();
  posts_err why = {0};
  int rc;
  if (!body) return posts__err(err, -ENOMEM, 0, "out of memory");
  snprintf(path, sizeof path, "/apis/networking.k8s.io/v1/namespaces/%s/networkpolicies", kns);
  rc = posts__k8s_call(k, "POST", path, NULL, body, made, NULL, &why);
  cJSON_Delete(body);
  if (rc == -EACCES) {
    snprintf(path, sizeof path, "/apis/networking.k8s.io/v1/namespaces/%s/networkpolicies/%s", kns,
             K8S_POLICY);
    if (posts__k8s_call(k, "GET", path, NULL, NULL, ok, NULL, NULL) == 0) rc = 0;
  }
  if (rc < 0)
    posts__err(err, rc, why.status,
               "namespace %s: the NetworkPolicy %s that keeps pods without network off it can be "
               "neither made nor read: %s",
               kns, K8S_POLICY, why.msg);
  return rc;
}

/* Makes the namespace kns and its policy when this process has not yet.
 * A namespace we may not make may exist all the same (an operator's): the
 * pod's creation tells. The policy matters only for pods without network
 * (need_policy); for others its failure is forgotten. */
static int ensure_ns(k8s *k, const char *kns, bool need_policy, posts_err *err) {
  static const long made[] = {201, 409, 0};
  cJSON *body;
  int rc;
  if (ensured(k, kns)) return 0;
  if (!(body = managed_object("v1", "Namespace", kns)))
    return posts__err(err, -ENOMEM, 0, "out of memory");
  rc = posts__k8s_call(k, "POST", "/api/v1/namespaces", NULL, body, made, NULL, err);
  cJSON_Delete(body);
  if (rc < 0 && rc != -EACCES) return rc;
  if ((rc = ensure_policy(k, kns, err)) == 0)
    ensured_add(k, kns);
  else if (!need_policy)
    rc = 0;
  return rc;
}

/* ------------------------------------------------------------- creating */

static int k8s_create(posts_runtime *rt, const posts_env_spec *spec, char *id, posts_err *err) {
  static const long ok[] = {201, 0};
  k8s *k = (k8s *)rt;
  cJSON *pod = NULL, *ans = NULL;
  char kns[64], path[128];
  const char *name;
  int rc;
  if ((rc = posts__k8s_kns(k, spec->ns, kns, err)) < 0 ||
      (rc = posts__k8s_pod_build(k, spec, &pod, err)) < 0 ||
      (rc = ensure_ns(k, kns, !spec->network, err)) < 0)
    goto cleanup;
  snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods", kns);
  if ((rc = posts__k8s_call(k, "POST", path, NULL, pod, ok, &ans, err)) < 0) goto cleanup;
  name = cJSON_GetStringValue(
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ans, "metadata"), "name"));
  if (!name || strlen(kns) + strlen(name) + 2 > POSTS_ENV_ID_MAX)
    rc = posts__err(err, -EPROTO, 201, "create: no name in the answer");
  else
    posts__k8s_join(id, kns, '/', name);
cleanup:
  cJSON_Delete(pod);
  cJSON_Delete(ans);
  return rc;
}

/* -------------------------------------------------------------- reading */

/* GET the pod of id into *pod (the caller's). */
static int get_pod(k8s *k, const char *id, cJSON **pod, posts_err *err) {
  static const long ok[] = {200, 0};
  char kns[64], name[254], path[400];
  int rc = posts__k8s_id_split(id, kns, name, err);
  *pod = NULL;
  if (rc < 0) return rc;
  snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s", kns, name);
  return posts__k8s_call(k, "GET", path, NULL, NULL, ok, pod, err);
}

static int k8s_inspect(posts_runtime *rt, const char *id, posts_env_info *info, posts_err *err) {
  cJSON *pod;
  int rc = get_pod((k8s *)rt, id, &pod, err);
  if (rc == 0 && (rc = posts__k8s_pod_info(info, pod)) < 0)
    posts__err(err, rc, 200, "inspect %s: %s", id,
               rc == -ENOMEM ? "out of memory" : "not a pod in the answer");
  cJSON_Delete(pod);
  return rc;
}

/* One page of a list into out; *cont receives the next page's token (the
 * caller frees it), NULL after the last. */
static int list_page(k8s *k, const char *path, posts_env_infos *out, char **cont, posts_err *err) {
  static const long ok[] = {200, 0};
  cJSON *ans, *items, *pod;
  posts_env_info *more;
  const char *next;
  int rc = posts__k8s_call(k, "GET", path, NULL, NULL, ok, &ans, err);
  *cont = NULL;
  if (rc < 0) return rc;
  items = cJSON_GetObjectItemCaseSensitive(ans, "items");
  if (!cJSON_IsArray(items) && !cJSON_IsNull(items)) {
    cJSON_Delete(ans);
    return posts__err(err, -EPROTO, 200, "list: no items in the answer");
  }
  more = realloc(out->items, (out->n + (size_t)cJSON_GetArraySize(items) + 1) * sizeof *more);
  if (!more)
    rc = posts__err(err, -ENOMEM, 0, "out of memory");
  else
    out->items = more;
  cJSON_ArrayForEach(pod, items) {
    if (rc < 0) break;
    /* n counts the item first, so that cleanup frees a half-filled one. */
    memset(&out->items[out->n], 0, sizeof out->items[0]);
    if ((rc = posts__k8s_pod_info(&out->items[out->n++], pod)) < 0)
      posts__err(err, rc, 200, "list: %s", rc == -ENOMEM ? "out of memory" : "a pod has no name");
  }
  next = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(ans, "metadata"), "continue"));
  if (rc == 0 && next && next[0] && !(*cont = curl_easy_escape(NULL, next, 0)))
    rc = posts__err(err, -ENOMEM, 0, "out of memory");
  cJSON_Delete(ans);
  return rc;
}

static int k8s_list(posts_runtime *rt, const char *ns, const posts_label *sel, size_t n_sel,
                    posts_env_infos *out, posts_err *err) {
  k8s *k = (k8s *)rt;
  char kns[64], *selector, *cont = NULL, *path = NULL;
  int rc = ns ? posts__k8s_kns(k, ns, kns, err) : 0;
  if (rc < 0) return rc;
  if ((rc = posts__k8s_selector(ns, sel, n_sel, &selector, err)) < 0) return rc;
  do {
    size_t n = strlen(selector) + (cont ? strlen(cont) : 0) + 200;
    char *page = cont;
    free(path);
    if (!(path = malloc(n))) {
      rc = posts__err(err, -ENOMEM, 0, "out of memory");
      break;
    }
    snprintf(path, n, "/api/v1/%s%s%spods?limit=%d&labelSelector=%s%s%s", ns ? "namespaces/" : "",
             ns ? kns : "", ns ? "/" : "", LIST_PAGE, selector, page ? "&continue=" : "",
             page ? page : "");
    rc = list_page(k, path, out, &cont, err);
    curl_free(page);
  } while (rc == 0 && cont);
  curl_free(cont);
  free(path);
  free(selector);
  return rc;
}

/* ------------------------------------------------------ start, stop, rm */

static int k8s_start(posts_runtime *rt, const char *id, posts_err *err) {
  k8s *k = (k8s *)rt;
  char kns[64], name[254];
  cJSON *pod;
  int rc;
  if (k->start_timeout_ms < 0) {
    rc = get_pod(k, id, &pod, err);
    cJSON_Delete(pod);
    return rc;
  }
  if ((rc = posts__k8s_id_split(id, kns, name, err)) < 0) return rc;
  return posts__k8s_wait_running(k, kns, name, k->start_timeout_ms, err);
}

/* DELETE with a grace period in seconds (negative: the pod's own). */
static int delete_pod(k8s *k, const char *id, int grace_s, posts_err *err) {
  static const long ok[] = {200, 202, 0};
  char kns[64], name[254], path[400];
  int rc = posts__k8s_id_split(id, kns, name, err);
  if (rc < 0) return rc;
  if (grace_s >= 0)
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s?gracePeriodSeconds=%d", kns, name,
             grace_s);
  else
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s", kns, name);
  return posts__k8s_call(k, "DELETE", path, NULL, NULL, ok, NULL, err);
}

static int k8s_stop(posts_runtime *rt, const char *id, int grace_s, posts_err *err) {
  return delete_pod((k8s *)rt, id, grace_s, err);
}

static int k8s_remove(posts_runtime *rt, const char *id, bool force, posts_err *err) {
  k8s *k = (k8s *)rt;
  posts_env_info info = {0};
  int rc;
  if (force) return delete_pod(k, id, 0, err);
  if ((rc = k8s_inspect(rt, id, &info, err)) == 0 && info.state == POSTS_ENV_RUNNING)
    rc = posts__err(err, -EBUSY, 0, "remove %s: running; stop it first, or force", id);
  posts_env_info_cleanup(&info);
  return rc < 0 ? rc : delete_pod(k, id, -1, err);
}

/* ---------------------------------------------------------------- claim */

/* {"metadata": {"resourceVersion": rv, "labels": {owner-label: owner}}}: a
 * merge patch that the API server applies only while the pod is still at
 * rv. */
static cJSON *claim_patch(const char *rv, const char *owner) {
  cJSON *p = cJSON_CreateObject(), *md, *labels;
  if (!p || !(md = cJSON_AddObjectToObject(p, "metadata")) ||
      !cJSON_AddStringToObject(md, "resourceVersion", rv) ||
      !(labels = cJSON_AddObjectToObject(md, "labels")) ||
      !cJSON_AddStringToObject(labels, K8S_OWNER_LABEL, owner)) {
    cJSON_Delete(p);
    return NULL;
  }
  return p;
}

/* One try: 0 claimed (or already owner's), 1 the pod changed since it was
 * read (try again), or an error. */
static int claim_once(k8s *k, const char *id, const char *owner, bool raced, posts_err *err) {
  static const long ok[] = {200, 0};
  char kns[64], name[254], path[400];
  posts_env_info info = {0};
  cJSON *pod = NULL, *patch = NULL;
  const char *rv;
  int rc = get_pod(k, id, &pod, err);
  if (rc < 0) goto cleanup;
  if ((rc = posts__k8s_pod_info(&info, pod)) < 0) {
    posts__err(err, rc, 200, "claim %s: %s", id, rc == -ENOMEM ? "out of memory" : "not a pod");
    goto cleanup;
  }
  if (!info.ns[0]) {
    rc = posts__err(err, -ENOENT, 0, "claim %s: not an environment of this API", id);
    goto cleanup;
  }
  if (info.owner[0]) {
    if (strcmp(info.owner, owner) != 0)
      rc = posts__err(err, -EBUSY, raced ? 409 : 0, "claim %s: owned by %s%s", id, info.owner,
                      raced ? " (claimed while we tried: 409 Conflict)" : "");
    goto cleanup;
  }
  if (!(rv = posts__k8s_pod_rv(pod)) || !(patch = claim_patch(rv, owner))) {
    rc = posts__err(err, rv ? -ENOMEM : -EPROTO, 200, "claim %s: %s", id,
                    rv ? "out of memory" : "no resourceVersion");
    goto cleanup;
  }
  posts__k8s_id_split(id, kns, name, NULL);
  snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s", kns, name);
  rc = posts__k8s_call(k, "PATCH", path, "application/merge-patch+json", patch, ok, NULL, err);
  if (rc == -EBUSY) rc = 1;
cleanup:
  posts_env_info_cleanup(&info);
  cJSON_Delete(pod);
  cJSON_Delete(patch);
  return rc;
}

/* The pod may change between our read and our patch for reasons other than
 * a claim (the kubelet's status updates): a 409 means read again, and only
 * an owner found then is -EBUSY. */
static int k8s_claim(posts_runtime *rt, const char *id, const char *owner, posts_err *err) {
  int rc = 1;
  for (int i = 0; i < CLAIM_TRIES && rc == 1; i++)
    rc = claim_once((k8s *)rt, id, owner, i > 0, err);
  if (rc == 1)
    rc = posts__err(err, -EBUSY, 409, "claim %s: the pod kept changing (409 Conflict %d times)", id,
                    CLAIM_TRIES);
  return rc;
}

/* ----------------------------------------------------------- the handle */

static int k8s_ping(posts_runtime *rt, posts_err *err) {
  static const long ok[] = {200, 0};
  return posts__k8s_call((k8s *)rt, "GET", "/version", NULL, NULL, ok, NULL, err);
}

static void k8s_free(posts_runtime *rt) {
  k8s *k = (k8s *)rt;
  for (size_t i = 0; i < k->n_idle; i++) curl_easy_cleanup(k->idle[i]);
  for (size_t i = 0; i < k->n_ensured; i++) free(k->ensured[i]);
  free(k->ensured);
  free(k->server);
  free(k->ca_pem);
  free(k->cert_pem);
  free(k->key_pem);
  free(k->token_file);
  free(k->token);
  free(k->ns_prefix);
  free(k->node_name);
  pthread_mutex_destroy(&k->mu);
  free(k);
  curl_global_cleanup();
}

static void k8s_cancel(posts_runtime *rt) {
  atomic_store(&((k8s *)rt)->cancel, true);
}

static const posts_runtime_ops k8s_ops = {
    .name = "kubernetes",
    .free = k8s_free,
    .ping = k8s_ping,
    .create = k8s_create,
    .start = k8s_start,
    .stop = k8s_stop,
    .remove = k8s_remove,
    .inspect = k8s_inspect,
    .claim = k8s_claim,
    .list = k8s_list,
    .exec = posts__k8s_exec,
    .watch = posts__k8s_watch,
    .cancel = k8s_cancel,
};

/* A copy of src into *dst, or NULL for NULL. False when out of memory. */
static bool copy_opt(char **dst, const char *src) {
  *dst = NULL;
  return !src || posts__strdup(dst, src) == 0;
}

/* What posts_runtime_k8s_new refuses, or NULL. */
static const char *check_config(const posts_k8s_config *cfg) {
  size_t plen = cfg->ns_prefix ? strlen(cfg->ns_prefix) : 0;
  if (!cfg->server ||
      (strncmp(cfg->server, "https://", 8) != 0 && strncmp(cfg->server, "http://", 7) != 0))
    return "server: not an https:// (or http://) URL";
  if (!cfg->client_cert_pem != !cfg->client_key_pem)
    return "client certificate and key go together";
  for (size_t i = 0; i < plen; i++) {
    char c = cfg->ns_prefix[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0)) || plen > 40)
      return "ns_prefix: not the start of a DNS label ([a-z0-9-], at most 40)";
  }
  if (cfg->node_name &&
      (!cfg->node_name[0] || strlen(cfg->node_name) > 253 ||
       strspn(cfg->node_name, "abcdefghijklmnopqrstuvwxyz0123456789.-") != strlen(cfg->node_name)))
    return "node_name: not a node name ([a-z0-9.-], at most 253)";
  if (cfg->default_nano_cpus <= 0 || cfg->default_memory_bytes <= 0 || cfg->run_as_user < 0)
    return "default limits must be positive, run_as_user not negative";
  return NULL;
}

posts_runtime *posts_runtime_k8s_new(const posts_k8s_config *cfg, char *errbuf, size_t errlen) {
  const char *bad = cfg ? check_config(cfg) : "config: NULL";
  k8s *k;
  if (bad) {
    if (errbuf) snprintf(errbuf, errlen, "%s", bad);
    return NULL;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    if (errbuf) snprintf(errbuf, errlen, "curl_global_init failed");
    return NULL;
  }
  if (!(k = calloc(1, sizeof *k)) || pthread_mutex_init(&k->mu, NULL) != 0) {
    free(k);
    curl_global_cleanup();
    if (errbuf) snprintf(errbuf, errlen, "out of memory");
    return NULL;
  }
  k->rt.ops = &k8s_ops;
  k->insecure = cfg->insecure;
  k->default_nano_cpus = cfg->default_nano_cpus;
  k->default_memory_bytes = cfg->default_memory_bytes;
  k->run_as_user = cfg->run_as_user;
  k->start_timeout_ms = cfg->start_timeout_ms ? cfg->start_timeout_ms : DEFAULT_START_MS;
  if (!copy_opt(&k->server, cfg->server) || !copy_opt(&k->ca_pem, cfg->ca_pem) ||
      !copy_opt(&k->cert_pem, cfg->client_cert_pem) ||
      !copy_opt(&k->key_pem, cfg->client_key_pem) || !copy_opt(&k->token_file, cfg->token_file) ||
      !copy_opt(&k->token, cfg->token_file ? NULL : cfg->token) ||
      !copy_opt(&k->ns_prefix, cfg->ns_prefix ? cfg->ns_prefix : "") ||
      !copy_opt(&k->node_name, cfg->node_name)) {
    k8s_free(&k->rt);
    if (errbuf) snprintf(errbuf, errlen, "out of memory");
    return NULL;
  }
  /* Paths are appended to the server's URL. */
  for (size_t n = strlen(k->server); n && k->server[n - 1] == '/'; n--) k->server[n - 1] = '\0';
  return &k->rt;
}
