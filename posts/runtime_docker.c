/*
 * runtime_docker.c — posts/runtime.h on the Docker Engine API (v1.41) over a
 * unix socket, with libcurl and cJSON. Both Docker and Podman's compatibility
 * service speak it, with one difference this file smooths over: where Docker
 * answers 409 (a name in use, a container in the wrong state) Podman answers
 * 500 with a "cause", so errors are mapped from the status and the cause
 * together. Each call makes its own curl handle and connection: a unix socket
 * connection costs microseconds, and nothing is shared between threads.
 *
 * Docker has no namespaces: an environment's namespace is the label
 * outpost.runtime/namespace, and its container is named <ns>_<name> ('_' is
 * in neither), so that two namespaces may use the same name. Labels cannot
 * change after creation, so a claim renames the container to
 * <ns>_<name>__<owner> (POST /containers/{name}/rename, which Podman's
 * compatibility API serves too, on running containers as well).
 */
#include "posts/runtime_int.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define NS_LABEL      POSTS_RUNTIME_LABEL_PREFIX "namespace"
#define OWNER_SEP     "__" /* between a container's name and its owner */
#define API           "http://docker/v1.41"
#define CALL_TIMEOUT  60000L     /* ms; creating on a busy host can take seconds */
#define MAX_ANSWER    (16 << 20) /* a list of thousands of containers fits */
#define DEFAULT_PIDS  256
#define EXEC_SETTLE_S 5 /* how long an ended exec may still read as running */

typedef struct dk {
  posts_runtime rt; /* first: a posts_runtime * is a dk * */
  char *sock;
} dk;

/* A growing NUL-terminated buffer that keeps at most max bytes and notes
 * whether more came. */
typedef posts__buf buf;

/* Hands the buffer's bytes over as a string ("" when empty). */
static char *buf_take(buf *b) {
  char *s = b->p ? b->p : calloc(1, 1);
  b->p = NULL;
  b->len = b->cap = 0;
  return s;
}

static size_t on_body(char *data, size_t size, size_t n, void *opaque) {
  buf *b = opaque;
  posts__buf_put(b, data, size * n);
  return b->nomem ? 0 : size * n;
}

/* ----------------------------------------------------------------- HTTP */

/* libcurl's failure as an errno: the socket's own errno when connecting
 * failed (ENOENT: no socket; ECONNREFUSED: nobody listens). */
static int curl_errno(CURL *h, CURLcode cc) {
  long os = 0;
  switch (cc) {
  case CURLE_COULDNT_CONNECT:
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os);
    return os == ENOENT || os == EACCES ? -(int)os : -ECONNREFUSED;
  case CURLE_OPERATION_TIMEDOUT:
    return -ETIMEDOUT;
  case CURLE_OUT_OF_MEMORY:
    return -ENOMEM;
  default:
    return -EIO;
  }
}

/* One request: body (JSON, may be NULL) sent, the answer's body given to
 * wr. 0 with *status when an answer came, else a negative errno. */
static int dk_http(dk *d, const char *method, const char *path, const char *body, long timeout_ms,
                   curl_write_callback wr, void *wr_arg, long *status, posts_err *err) {
  char url[1024], cerr[CURL_ERROR_SIZE] = "";
  struct curl_slist *hdrs = NULL;
  CURL *h = curl_easy_init();
  CURLcode cc;
  int rc = 0;
  if (!h) return posts__err(err, -ENOMEM, 0, "curl_easy_init failed");
  snprintf(url, sizeof url, "%s%s", API, path);
  curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, d->sock);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, wr);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, wr_arg);
  /* Proxy variables are for TCP; they must not redirect a unix socket. */
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  if (body) {
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  }
  cc = curl_easy_perform(h);
  if (cc == CURLE_OK) {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
  } else {
    rc = curl_errno(h, cc);
    posts__err(err, rc, 0, "%s %s: %s", method, path, cerr[0] ? cerr : curl_easy_strerror(cc));
  }
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(h);
  return rc;
}

/* An API error answer as an errno, its message kept in err. Podman gives
 * 500 where Docker gives 409, and says why in "cause". conflict is what a
 * 409 means to the caller (-EEXIST for create, -EBUSY elsewhere). */
static int api_error(long status, const char *body, int conflict, posts_err *err) {
  cJSON *j = cJSON_Parse(body);
  const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "message"));
  const char *cause = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "cause"));
  int code;
  if (!cause) cause = "";
  if (status == 404)
    code = -ENOENT;
  else if (status == 409 || strstr(cause, "already in use"))
    code = status == 409 ? conflict : -EEXIST;
  else if (strstr(cause, "state improper"))
    code = -EBUSY;
  else if (status == 400)
    code = -EINVAL;
  else
    code = -EIO;
  posts__err(err, code, status, "%s", msg ? msg : body && body[0] ? body : "no message");
  cJSON_Delete(j);
  return code;
}

/* A request with a JSON body (may be NULL) whose answer, when its status is
 * one of ok (0-terminated), is parsed into *out (may be NULL: not wanted).
 * Other statuses become errors through api_error. */
static int dk_call_ms(dk *d, const char *method, const char *path, cJSON *body, const long *ok,
                      int conflict, cJSON **out, long timeout_ms, posts_err *err) {
  buf b = {.max = MAX_ANSWER};
  char *text = body ? cJSON_PrintUnformatted(body) : NULL;
  long status = 0;
  int rc;
  if (out) *out = NULL;
  if (body && !text) return posts__err(err, -ENOMEM, 0, "out of memory");
  rc = dk_http(d, method, path, text, timeout_ms, on_body, &b, &status, err);
  free(text);
  if (rc == 0 && (b.nomem || b.over))
    rc = posts__err(err, b.nomem ? -ENOMEM : -EMSGSIZE, status, "%s %s: answer too large", method,
                    path);
  if (rc == 0) {
    bool good = false;
    for (size_t i = 0; ok[i]; i++) good = good || ok[i] == status;
    if (!good) {
      rc = api_error(status, b.p ? b.p : "", conflict, err);
    } else if (out && !(*out = cJSON_Parse(b.p ? b.p : ""))) {
      rc = posts__err(err, -EPROTO, status, "%s %s: the answer is not JSON", method, path);
    }
  }
  free(b.p);
  return rc;
}

static int dk_call(dk *d, const char *method, const char *path, cJSON *body, const long *ok,
                   int conflict, cJSON **out, posts_err *err) {
  return dk_call_ms(d, method, path, body, ok, conflict, out, CALL_TIMEOUT, err);
}

/* ------------------------------------------------------------- creating */

static int add_strings(cJSON *obj, const char *key, const char *const *v) {
  cJSON *a = cJSON_AddArrayToObject(obj, key);
  if (!a) return -ENOMEM;
  for (size_t i = 0; v && v[i]; i++)
    if (!cJSON_AddItemToArray(a, cJSON_CreateString(v[i]))) return -ENOMEM;
  return 0;
}

static int add_host_config(cJSON *root, const posts_env_spec *spec) {
  cJSON *hc = cJSON_AddObjectToObject(root, "HostConfig"), *m;
  static const char *const all[] = {"ALL", NULL};
  static const char *const nnp[] = {"no-new-privileges", NULL};
  int64_t pids = spec->pids_limit ? spec->pids_limit : DEFAULT_PIDS;
  if (!hc || add_strings(hc, "CapDrop", all) < 0 ||
      add_strings(hc, "CapAdd", spec->capabilities) < 0 ||
      add_strings(hc, "SecurityOpt", nnp) < 0 ||
      !cJSON_AddNumberToObject(hc, "PidsLimit", (double)pids) ||
      !cJSON_AddStringToObject(hc, "NetworkMode", spec->network ? "bridge" : "none") ||
      !cJSON_AddBoolToObject(hc, "ReadonlyRootfs", spec->read_only_root))
    return -ENOMEM;
  /* MemorySwap equal to Memory: no swap on top, so the limit is real. */
  if (spec->memory_bytes &&
      (!cJSON_AddNumberToObject(hc, "Memory", (double)spec->memory_bytes) ||
       !cJSON_AddNumberToObject(hc, "MemorySwap", (double)spec->memory_bytes)))
    return -ENOMEM;
  if (spec->nano_cpus && !cJSON_AddNumberToObject(hc, "NanoCpus", (double)spec->nano_cpus))
    return -ENOMEM;
  if (spec->shared_path) {
    /* Mounts rather than Binds: a missing host path is an error instead of
     * an empty directory the engine makes, and paths may hold ':'. */
    cJSON *mounts = cJSON_AddArrayToObject(hc, "Mounts");
    if (!mounts || !cJSON_AddItemToArray(mounts, m = cJSON_CreateObject()) ||
        !cJSON_AddStringToObject(m, "Type", "bind") ||
        !cJSON_AddStringToObject(m, "Source", spec->shared_host_path) ||
        !cJSON_AddStringToObject(m, "Target", spec->shared_path) ||
        !cJSON_AddBoolToObject(m, "ReadOnly", 1))
      return -ENOMEM;
  }
  return 0;
}

static cJSON *create_body(const posts_env_spec *spec) {
  cJSON *root = cJSON_CreateObject(), *labels;
  if (!root || !cJSON_AddStringToObject(root, "Image", spec->image) ||
      !(labels = cJSON_AddObjectToObject(root, "Labels")) ||
      !cJSON_AddStringToObject(labels, NS_LABEL, spec->ns))
    goto fail;
  for (size_t i = 0; i < spec->n_labels; i++)
    if (!cJSON_AddStringToObject(labels, spec->labels[i].key, spec->labels[i].value)) goto fail;
  if (spec->command && add_strings(root, "Cmd", spec->command) < 0) goto fail;
  if (spec->name && !cJSON_AddStringToObject(root, "Hostname", spec->name)) goto fail;
  if (spec->run_as_user) {
    /* Numbers, so that the image needs no such user in /etc/passwd. */
    char user[48];
    snprintf(user, sizeof user, "%lld:%lld", (long long)spec->run_as_user,
             (long long)(spec->run_as_group ? spec->run_as_group : spec->run_as_user));
    if (!cJSON_AddStringToObject(root, "User", user)) goto fail;
  }
  if (add_host_config(root, spec) < 0) goto fail;
  return root;
fail:
  cJSON_Delete(root);
  return NULL;
}

static int dk_create(posts_runtime *rt, const posts_env_spec *spec, char *id, posts_err *err) {
  static const long ok[] = {201, 0};
  cJSON *body = create_body(spec), *ans = NULL;
  const char *got;
  char path[256] = "/containers/create";
  int rc;
  if (!body) return posts__err(err, -ENOMEM, 0, "out of memory");
  if (spec->name)
    snprintf(path, sizeof path, "/containers/create?name=%s_%s", spec->ns, spec->name);
  rc = dk_call((dk *)rt, "POST", path, body, ok, -EEXIST, &ans, err);
  cJSON_Delete(body);
  if (rc < 0) return rc;
  got = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ans, "Id"));
  if (!got || !got[0] || strlen(got) >= POSTS_ENV_ID_MAX)
    rc = posts__err(err, -EPROTO, 201, "create: no Id in the answer");
  else
    strcpy(id, got);
  cJSON_Delete(ans);
  return rc;
}

/* ------------------------------------------------------ start, stop, rm */

/* Ids reach URLs: Docker's ids and names are [A-Za-z0-9_.-], and anything
 * else would need escaping and is not a container of ours anyway. */
static int check_docker_id(const char *id, posts_err *err) {
  for (const char *s = id; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '_' || *s == '.' || *s == '-'))
      return posts__err(err, -ENOENT, 0, "no such environment: %s", id);
  return 0;
}

static int dk_start(posts_runtime *rt, const char *id, posts_err *err) {
  static const long ok[] = {204, 304, 0}; /* 304: already running */
  char path[POSTS_ENV_ID_MAX + 64];
  int rc = check_docker_id(id, err);
  if (rc < 0) return rc;
  snprintf(path, sizeof path, "/containers/%s/start", id);
  return dk_call((dk *)rt, "POST", path, NULL, ok, -EBUSY, NULL, err);
}

static int dk_stop(posts_runtime *rt, const char *id, int grace_s, posts_err *err) {
  static const long ok[] = {204, 304, 0}; /* 304: already stopped */
  char path[POSTS_ENV_ID_MAX + 64];
  int rc = check_docker_id(id, err);
  if (rc < 0) return rc;
  snprintf(path, sizeof path, "/containers/%s/stop?t=%d", id, grace_s);
  /* The engine answers once the grace period has run out and it killed. */
  return dk_call_ms((dk *)rt, "POST", path, NULL, ok, -EBUSY, NULL, CALL_TIMEOUT + grace_s * 1000L,
                    err);
}

static int dk_remove(posts_runtime *rt, const char *id, bool force, posts_err *err) {
  static const long ok[] = {200, 204, 0};
  char path[POSTS_ENV_ID_MAX + 64];
  int rc = check_docker_id(id, err);
  if (rc < 0) return rc;
  snprintf(path, sizeof path, "/containers/%s?v=true&force=%s", id, force ? "true" : "false");
  return dk_call((dk *)rt, "DELETE", path, NULL, ok, -EBUSY, NULL, err);
}

/* -------------------------------------------------------------- reading */

static posts_env_state parse_state(const char *s) {
  for (int st = POSTS_ENV_CREATED; st <= POSTS_ENV_DEAD; st++)
    if (s && strcmp(s, posts_env_state_name((posts_env_state)st)) == 0) return (posts_env_state)st;
  /* Podman says "stopped" for a container stopped by podman stop, and
   * "configured" for one never started. */
  if (s && strcmp(s, "stopped") == 0) return POSTS_ENV_EXITED;
  if (s && strcmp(s, "configured") == 0) return POSTS_ENV_CREATED;
  return POSTS_ENV_UNKNOWN;
}

/* The labels object into info: ns from ours, the others as they are. */
static int fill_labels(posts_env_info *info, const cJSON *labels) {
  const cJSON *l;
  size_t plen = strlen(POSTS_RUNTIME_LABEL_PREFIX);
  cJSON_ArrayForEach(l, labels) {
    if (!cJSON_IsString(l)) continue;
    if (strcmp(l->string, NS_LABEL) == 0) {
      free(info->ns);
      if (posts__strdup(&info->ns, l->valuestring) < 0) return -ENOMEM;
    } else if (strncmp(l->string, POSTS_RUNTIME_LABEL_PREFIX, plen) != 0 &&
               posts__info_label_add(info, l->string, l->valuestring) < 0) {
      return -ENOMEM;
    }
  }
  return info->ns || posts__strdup(&info->ns, "") == 0 ? 0 : -ENOMEM;
}

/* Docker's "/ns_name" or, once claimed, "/ns_name__owner" as the name the
 * caller gave and the owner. "__" appears in no name of ours (names are
 * [a-z0-9.-]) nor in the names Docker and Podman pick ("adjective_name"). */
static int fill_name(posts_env_info *info, const char *docker_name) {
  size_t nlen = strlen(info->ns);
  const char *s = docker_name ? docker_name : "", *sep;
  if (*s == '/') s++;
  if (nlen && strncmp(s, info->ns, nlen) == 0 && s[nlen] == '_') s += nlen + 1;
  sep = strstr(s, OWNER_SEP);
  if (posts__strdup(&info->owner, sep ? sep + strlen(OWNER_SEP) : "") < 0) return -ENOMEM;
  if (!sep) return posts__strdup(&info->name, s);
  if (!(info->name = malloc((size_t)(sep - s) + 1))) return -ENOMEM;
  memcpy(info->name, s, (size_t)(sep - s));
  info->name[sep - s] = '\0';
  return 0;
}

static int fill_common(posts_env_info *info, const char *id, const cJSON *labels,
                       const char *docker_name, const char *image) {
  if (!id || strlen(id) >= POSTS_ENV_ID_MAX) return -EPROTO;
  strcpy(info->id, id);
  if (fill_labels(info, labels) < 0 || fill_name(info, docker_name) < 0 ||
      posts__strdup(&info->image, image) < 0)
    return -ENOMEM;
  return 0;
}

/* Inspects id into info and, when raw is not NULL, copies the engine's own
 * name for it ("/ns_name__owner") into raw[size]. */
static int inspect_named(posts_runtime *rt, const char *id, posts_env_info *info, char *raw,
                         size_t size, posts_err *err) {
  static const long ok[] = {200, 0};
  char path[POSTS_ENV_ID_MAX + 64];
  cJSON *ans, *config, *state;
  const char *name;
  int rc = check_docker_id(id, err);
  if (rc < 0) return rc;
  snprintf(path, sizeof path, "/containers/%s/json", id);
  if ((rc = dk_call((dk *)rt, "GET", path, NULL, ok, -EBUSY, &ans, err)) < 0) return rc;
  name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ans, "Name"));
  if (raw) snprintf(raw, size, "%s", name ? name : "");
  config = cJSON_GetObjectItemCaseSensitive(ans, "Config");
  state = cJSON_GetObjectItemCaseSensitive(ans, "State");
  rc = fill_common(info, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ans, "Id")),
                   cJSON_GetObjectItemCaseSensitive(config, "Labels"), name,
                   cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(config, "Image")));
  if (rc < 0) {
    posts__err(err, rc, 200, "inspect %s: %s", id, rc == -ENOMEM ? "out of memory" : "no Id");
  } else {
    info->state =
        parse_state(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(state, "Status")));
    info->exit_code = cJSON_GetObjectItemCaseSensitive(state, "ExitCode")
                          ? cJSON_GetObjectItemCaseSensitive(state, "ExitCode")->valueint
                          : 0;
    /* Docker reports 0 for a stopped container; Podman keeps nothing else
     * there either, but a pid is only meaningful while running. */
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(state, "Pid");
    info->pid = info->state == POSTS_ENV_RUNNING && cJSON_IsNumber(pid) && pid->valueint > 0
                    ? pid->valueint
                    : 0;
    info->created =
        posts__parse_time(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ans, "Created")));
  }
  cJSON_Delete(ans);
  return rc;
}

static int dk_inspect(posts_runtime *rt, const char *id, posts_env_info *info, posts_err *err) {
  return inspect_named(rt, id, info, NULL, 0, err);
}

/* Renames the container by its current, unclaimed name rather than its id,
 * so that a claim that starts after another one ended finds the name gone
 * (404) even if it read the container before. This narrows the race but
 * does not close it: Podman looks the name up before it locks the
 * container, so two renames in flight at once both succeed (runtime.h). */
static int dk_claim(posts_runtime *rt, const char *id, const char *owner, posts_err *err) {
  static const long ok[] = {204, 0};
  posts_env_info info = {0};
  char raw[512], path[1400];
  const char *old;
  size_t nlen;
  int rc = inspect_named(rt, id, &info, raw, sizeof raw, err);
  if (rc < 0) goto cleanup;
  if (!info.ns[0]) {
    rc = posts__err(err, -ENOENT, 0, "claim %s: not an environment of this API", id);
    goto cleanup;
  }
  if (info.owner[0]) {
    if (strcmp(info.owner, owner) != 0)
      rc = posts__err(err, -EBUSY, 0, "claim %s: owned by %s", id, info.owner);
    goto cleanup;
  }
  /* <ns>_<name> keeps its prefix; a name the engine picked gets one. Both
   * came from the engine as [A-Za-z0-9_.-], safe in a URL. */
  old = raw[0] == '/' ? raw + 1 : raw;
  nlen = strlen(info.ns);
  if (check_docker_id(old, NULL) < 0 || !old[0]) {
    rc = posts__err(err, -ENOENT, 0, "claim %s: its name cannot be used", id);
    goto cleanup;
  }
  if (strncmp(old, info.ns, nlen) == 0 && old[nlen] == '_')
    snprintf(path, sizeof path, "/containers/%s/rename?name=%s" OWNER_SEP "%s", old, old, owner);
  else
    snprintf(path, sizeof path, "/containers/%s/rename?name=%s_%s" OWNER_SEP "%s", old, info.ns,
             old, owner);
  rc = dk_call((dk *)rt, "POST", path, NULL, ok, -EBUSY, NULL, err);
  if (rc == -ENOENT) {
    /* The old name is gone: someone claimed it first, or it was removed. */
    posts_env_info now = {0};
    rc = dk_inspect(rt, id, &now, NULL);
    if (rc == 0 && strcmp(now.owner, owner) != 0)
      rc = posts__err(err, -EBUSY, 0, "claim %s: owned by %s", id, now.owner);
    else if (rc < 0)
      posts__err(err, rc, 404, "claim %s: no such environment", id);
    posts_env_info_cleanup(&now);
  }
cleanup:
  posts_env_info_cleanup(&info);
  return rc;
}

/* The filters query parameter: our namespace label (any value when ns is
 * NULL, so that only our environments come back) and the selector. */
static char *list_query(const char *ns, const posts_label *sel, size_t n_sel) {
  cJSON *f = cJSON_CreateObject(), *labels = cJSON_AddArrayToObject(f, "label");
  char one[1400], *text = NULL, *esc = NULL, *query = NULL;
  bool fail = !labels;
  snprintf(one, sizeof one, "%s%s%s", NS_LABEL, ns ? "=" : "", ns ? ns : "");
  fail = fail || !cJSON_AddItemToArray(labels, cJSON_CreateString(one));
  for (size_t i = 0; !fail && i < n_sel; i++) {
    snprintf(one, sizeof one, "%s%s%s", sel[i].key, sel[i].value ? "=" : "",
             sel[i].value ? sel[i].value : "");
    fail = !cJSON_AddItemToArray(labels, cJSON_CreateString(one));
  }
  if (!fail && (text = cJSON_PrintUnformatted(f)) && (esc = curl_easy_escape(NULL, text, 0))) {
    size_t n = strlen(esc) + 64;
    if ((query = malloc(n))) snprintf(query, n, "/containers/json?all=true&filters=%s", esc);
  }
  curl_free(esc);
  free(text);
  cJSON_Delete(f);
  return query;
}

static int list_item(posts_env_info *info, const cJSON *c) {
  const cJSON *names = cJSON_GetObjectItemCaseSensitive(c, "Names");
  const cJSON *created = cJSON_GetObjectItemCaseSensitive(c, "Created");
  int rc = fill_common(info, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "Id")),
                       cJSON_GetObjectItemCaseSensitive(c, "Labels"),
                       cJSON_GetStringValue(cJSON_GetArrayItem(names, 0)),
                       cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "Image")));
  if (rc < 0) return rc;
  info->state = parse_state(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "State")));
  info->created = cJSON_IsNumber(created) ? (int64_t)created->valuedouble : 0;
  return 0;
}

static int dk_list(posts_runtime *rt, const char *ns, const posts_label *sel, size_t n_sel,
                   posts_env_infos *out, posts_err *err) {
  static const long ok[] = {200, 0};
  char *path = list_query(ns, sel, n_sel);
  cJSON *ans = NULL, *c;
  int rc;
  if (!path) return posts__err(err, -ENOMEM, 0, "out of memory");
  rc = dk_call((dk *)rt, "GET", path, NULL, ok, -EBUSY, &ans, err);
  free(path);
  if (rc < 0) return rc;
  if (!cJSON_IsArray(ans)) {
    cJSON_Delete(ans);
    return posts__err(err, -EPROTO, 200, "list: the answer is not an array");
  }
  out->items = calloc((size_t)cJSON_GetArraySize(ans) + 1, sizeof *out->items);
  if (!out->items) rc = posts__err(err, -ENOMEM, 0, "out of memory");
  cJSON_ArrayForEach(c, ans) {
    if (rc < 0) break;
    /* n counts the item first, so that cleanup frees a half-filled one. */
    if ((rc = list_item(&out->items[out->n++], c)) < 0)
      posts__err(err, rc, 200, "list: %s", rc == -ENOMEM ? "out of memory" : "an entry has no Id");
  }
  cJSON_Delete(ans);
  return rc;
}

/* ----------------------------------------------------------------- exec */

/* The multiplexed stream of an exec: frames of an 8-byte header (stream
 * type, 3 zero bytes, big-endian payload length) and the payload, split
 * anywhere by the transport. Type 2 is stderr; 0 and 1 stdout. */
typedef struct demux {
  unsigned char hdr[8];
  size_t hdr_len;
  uint32_t left; /* payload bytes of the current frame still to come */
  buf *cur;
  buf out, err;
  buf raw; /* the first bytes as they came: an error answer is JSON, not frames */
} demux;

static size_t on_stream(char *data, size_t size, size_t n, void *opaque) {
  demux *m = opaque;
  size_t len = size * n, i = 0;
  if (m->raw.len < m->raw.max) posts__buf_put(&m->raw, data, len);
  while (i < len) {
    if (m->left == 0) {
      m->hdr[m->hdr_len++] = (unsigned char)data[i++];
      if (m->hdr_len < 8) continue;
      m->hdr_len = 0;
      m->cur = m->hdr[0] == 2 ? &m->err : &m->out;
      m->left = (uint32_t)m->hdr[4] << 24 | (uint32_t)m->hdr[5] << 16 | (uint32_t)m->hdr[6] << 8 |
                m->hdr[7];
      continue;
    }
    size_t take = len - i < m->left ? len - i : m->left;
    posts__buf_put(m->cur, data + i, take);
    if (m->cur->nomem) return 0;
    m->left -= (uint32_t)take;
    i += take;
  }
  return len;
}

static cJSON *exec_body(const posts_exec_req *req) {
  cJSON *b = cJSON_CreateObject();
  if (!b || add_strings(b, "Cmd", req->argv) < 0 ||
      (req->env && add_strings(b, "Env", req->env) < 0) ||
      !cJSON_AddBoolToObject(b, "AttachStdout", 1) ||
      !cJSON_AddBoolToObject(b, "AttachStderr", 1) || !cJSON_AddBoolToObject(b, "AttachStdin", 0) ||
      !cJSON_AddBoolToObject(b, "Tty", 0) ||
      (req->user && !cJSON_AddStringToObject(b, "User", req->user)) ||
      (req->workdir && !cJSON_AddStringToObject(b, "WorkingDir", req->workdir))) {
    cJSON_Delete(b);
    return NULL;
  }
  return b;
}

/* The exec's exit code once the runtime has seen it end, which can be a
 * moment after its stream closed. */
static int exec_exit_code(dk *d, const char *exec_id, int *code, posts_err *err) {
  static const long ok[] = {200, 0};
  char path[POSTS_ENV_ID_MAX + 64];
  snprintf(path, sizeof path, "/exec/%s/json", exec_id);
  for (int tries = 0; tries < EXEC_SETTLE_S * 100; tries++) {
    cJSON *ans;
    int rc = dk_call(d, "GET", path, NULL, ok, -EBUSY, &ans, err);
    if (rc < 0) return rc;
    bool running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "Running"));
    cJSON *ec = cJSON_GetObjectItemCaseSensitive(ans, "ExitCode");
    *code = cJSON_IsNumber(ec) ? ec->valueint : -1;
    cJSON_Delete(ans);
    if (!running) return 0;
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  }
  return posts__err(err, -ETIMEDOUT, 200, "exec %s: still running after its output ended", exec_id);
}

/* Creates the exec and writes its id into exec_id[POSTS_ENV_ID_MAX]. */
static int exec_create(dk *d, const char *id, const posts_exec_req *req, char *exec_id,
                       posts_err *err) {
  static const long ok[] = {201, 0};
  char path[POSTS_ENV_ID_MAX + 64];
  cJSON *body = exec_body(req), *ans;
  const char *got;
  int rc;
  if (!body) return posts__err(err, -ENOMEM, 0, "out of memory");
  snprintf(path, sizeof path, "/containers/%s/exec", id);
  rc = dk_call(d, "POST", path, body, ok, -EBUSY, &ans, err);
  cJSON_Delete(body);
  if (rc < 0) return rc;
  got = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ans, "Id"));
  if (!got || !got[0] || strlen(got) >= POSTS_ENV_ID_MAX || check_docker_id(got, NULL) < 0)
    rc = posts__err(err, -EPROTO, 201, "exec: no Id in the answer");
  else
    strcpy(exec_id, got);
  cJSON_Delete(ans);
  return rc;
}

static int dk_exec(posts_runtime *rt, const char *id, const posts_exec_req *req,
                   posts_exec_result *res, posts_err *err) {
  dk *d = (dk *)rt;
  demux m = {
      .out = {.max = req->max_output}, .err = {.max = req->max_output}, .raw = {.max = 4096}};
  char exec_id[POSTS_ENV_ID_MAX], path[POSTS_ENV_ID_MAX + 64];
  long status = 0;
  int rc = check_docker_id(id, err);
  if (rc < 0 || (rc = exec_create(d, id, req, exec_id, err)) < 0) return rc;
  snprintf(path, sizeof path, "/exec/%s/start", exec_id);
  rc = dk_http(d, "POST", path, "{\"Detach\":false,\"Tty\":false}", req->timeout_ms, on_stream, &m,
               &status, err);
  if (rc == 0 && status != 200) {
    rc = api_error(status, m.raw.p ? m.raw.p : "", -EBUSY, err);
  } else if (rc == 0 || rc == -ETIMEDOUT) {
    res->exit_code = -1;
    res->truncated = m.out.over || m.err.over;
    res->out_len = m.out.len;
    res->err_len = m.err.len;
    res->out = buf_take(&m.out);
    res->err = buf_take(&m.err);
    if (!res->out || !res->err)
      rc = posts__err(err, -ENOMEM, 0, "out of memory");
    else if (rc == 0)
      rc = exec_exit_code(d, exec_id, &res->exit_code, err);
    else
      posts__err(err, rc, 0, "exec: still running after %ld ms", req->timeout_ms);
  }
  free(m.out.p);
  free(m.err.p);
  free(m.raw.p);
  return rc;
}

/* ----------------------------------------------------------- the handle */

static int dk_ping(posts_runtime *rt, posts_err *err) {
  buf b = {.max = 64};
  long status = 0;
  int rc = dk_http((dk *)rt, "GET", "/_ping", NULL, 5000, on_body, &b, &status, err);
  if (rc == 0 && status != 200) rc = posts__err(err, -EPROTO, status, "_ping: HTTP %ld", status);
  free(b.p);
  return rc;
}

static void dk_free(posts_runtime *rt) {
  dk *d = (dk *)rt;
  free(d->sock);
  free(d);
  curl_global_cleanup();
}

static const posts_runtime_ops dk_ops = {
    .name = "docker",
    .free = dk_free,
    .ping = dk_ping,
    .create = dk_create,
    .start = dk_start,
    .stop = dk_stop,
    .remove = dk_remove,
    .inspect = dk_inspect,
    .claim = dk_claim,
    .list = dk_list,
    .exec = dk_exec,
    .watch = NULL, /* not done for Docker: posts_env_watch says -ENOTSUP */
};

posts_runtime *posts_runtime_docker_new(const char *socket_path, char *errbuf, size_t errlen) {
  struct stat st;
  dk *d;
  if (!socket_path)
    socket_path = stat("/run/podman/podman.sock", &st) == 0 ? "/run/podman/podman.sock"
                                                            : "/var/run/docker.sock";
  if (strlen(socket_path) >= 108) { /* sizeof sun_path on Linux */
    if (errbuf) snprintf(errbuf, errlen, "socket path too long: %s", socket_path);
    return NULL;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    if (errbuf) snprintf(errbuf, errlen, "curl_global_init failed");
    return NULL;
  }
  if (!(d = calloc(1, sizeof *d)) || posts__strdup(&d->sock, socket_path) < 0) {
    free(d);
    curl_global_cleanup();
    if (errbuf) snprintf(errbuf, errlen, "out of memory");
    return NULL;
  }
  d->rt.ops = &dk_ops;
  return &d->rt;
}
