/*
 * k8s_pod.c — the Kubernetes backend's translation between the posts types
 * and pods: a posts_env_spec into a least-privilege pod (the choices are
 * explained at the top of runtime_k8s.c), a pod into a posts_env_info, the
 * label selectors of lists and watches, and the checks of what only
 * Kubernetes refuses (label syntax, the length of a namespace with its
 * prefix), so that those fail with -EINVAL and the field named before any
 * request is sent.
 */
#include "posts/k8s_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GENERATED_PREFIX "env-" /* pods whose spec has no name: env-xxxxx */
#define VOLUME           "course"

/* ------------------------------------------------------------- checking */

static bool alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A label name or value: 1..63 of [A-Za-z0-9._-], alphanumeric at both
 * ends. */
static bool label_name_ok(const char *s, size_t n) {
  if (n == 0 || n > 63 || !alnum(s[0]) || !alnum(s[n - 1])) return false;
  for (size_t i = 0; i < n; i++)
    if (!alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-') return false;
  return true;
}

/* A DNS subdomain: 1..253 of [a-z0-9.-], dot-separated labels that are
 * alphanumeric at both ends. */
static bool dns_subdomain_ok(const char *s, size_t n) {
  if (n == 0 || n > 253) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool edge = i == 0 || i == n - 1 || s[i - 1] == '.' || s[i + 1] == '.';
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) continue;
    if (edge || (c != '-' && c != '.')) return false;
  }
  return true;
}

bool posts__k8s_label_key_ok(const char *s) {
  const char *slash = strchr(s, '/');
  if (!slash) return label_name_ok(s, strlen(s));
  return strchr(slash + 1, '/') == NULL && dns_subdomain_ok(s, (size_t)(slash - s)) &&
         label_name_ok(slash + 1, strlen(slash + 1));
}

bool posts__k8s_label_value_ok(const char *s) {
  return s[0] == '\0' || label_name_ok(s, strlen(s));
}

/* The keys the runtime sets itself besides those under its prefix (which
 * runtime.c refuses already). */
static bool runtime_key(const char *key) {
  return strcmp(key, K8S_OWNER_LABEL) == 0 || strcmp(key, K8S_MANAGED_LABEL) == 0;
}

static int check_labels(const char *what, const posts_label *labels, size_t n, posts_err *err) {
  for (size_t i = 0; i < n; i++) {
    if (!posts__k8s_label_key_ok(labels[i].key))
      return posts__err(err, -EINVAL, 0,
                        "%s.%zu.key: not a Kubernetes label key ([prefix/]name, the name at most "
                        "63 of [A-Za-z0-9._-])",
                        what, i);
    if (labels[i].value && !posts__k8s_label_value_ok(labels[i].value))
      return posts__err(err, -EINVAL, 0,
                        "%s.%zu.value: not a Kubernetes label value (at most 63 of "
                        "[A-Za-z0-9._-], alphanumeric at both ends)",
                        what, i);
  }
  return 0;
}

int posts__k8s_kns(const k8s *k, const char *ns, char *kns, posts_err *err) {
  if (strlen(k->ns_prefix) + strlen(ns) > 63)
    return posts__err(err, -EINVAL, 0, "ns: with the prefix \"%s\", longer than 63", k->ns_prefix);
  posts__k8s_join(kns, k->ns_prefix, '\0', ns);
  return 0;
}

int posts__k8s_id_split(const char *id, char *kns, char *name, posts_err *err) {
  const char *slash = strchr(id, '/');
  size_t nlen = slash ? (size_t)(slash - id) : 0;
  /* Both parts reach URLs: anything but [a-z0-9.-] is not ours anyway. */
  if (!slash || nlen == 0 || nlen > 63 ||
      strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789-") != nlen ||
      !dns_subdomain_ok(slash + 1, strlen(slash + 1)))
    return posts__err(err, -ENOENT, 0, "no such environment: %s", id);
  memcpy(kns, id, nlen);
  kns[nlen] = '\0';
  snprintf(name, 254, "%s", slash + 1);
  return 0;
}

/* ------------------------------------------------------------- building */

static int add_strings(cJSON *obj, const char *key, const char *const *v) {
  cJSON *a = cJSON_AddArrayToObject(obj, key);
  if (!a) return -ENOMEM;
  for (size_t i = 0; v && v[i]; i++)
    if (!cJSON_AddItemToArray(a, cJSON_CreateString(v[i]))) return -ENOMEM;
  return 0;
}

static bool add_seccomp(cJSON *sc) {
  cJSON *sp = cJSON_AddObjectToObject(sc, "seccompProfile");
  return sp && cJSON_AddStringToObject(sp, "type", "RuntimeDefault");
}

/* The container's securityContext: no way up, only the granted
 * capabilities. */
static int add_security(cJSON *c, const posts_env_spec *spec) {
  static const char *const all[] = {"ALL", NULL};
  cJSON *sc = cJSON_AddObjectToObject(c, "securityContext"), *caps;
  if (!sc || !cJSON_AddBoolToObject(sc, "allowPrivilegeEscalation", 0) ||
      !cJSON_AddBoolToObject(sc, "privileged", 0) ||
      !cJSON_AddBoolToObject(sc, "readOnlyRootFilesystem", spec->read_only_root) ||
      !add_seccomp(sc) || !(caps = cJSON_AddObjectToObject(sc, "capabilities")) ||
      add_strings(caps, "drop", all) < 0 ||
      (spec->capabilities && add_strings(caps, "add", spec->capabilities) < 0))
    return -ENOMEM;
  return 0;
}

/* Limits always (the spec's, else the configuration's), and requests equal
 * to them: the scheduler reserves what the pod may use. */
static int add_resources(cJSON *c, const k8s *k, const posts_env_spec *spec) {
  int64_t nano = spec->nano_cpus ? spec->nano_cpus : k->default_nano_cpus;
  int64_t mem = spec->memory_bytes ? spec->memory_bytes : k->default_memory_bytes;
  char cpu[32], bytes[32];
  cJSON *r = cJSON_AddObjectToObject(c, "resources"), *lim, *req;
  /* Millicores, rounded up: a limit never below what was asked. */
  snprintf(cpu, sizeof cpu, "%lldm", (long long)((nano + 999999) / 1000000));
  /* Bytes in binary units when exact, as people write them ("96Mi"). */
  if (mem % (1LL << 30) == 0)
    snprintf(bytes, sizeof bytes, "%lldGi", (long long)(mem >> 30));
  else if (mem % (1LL << 20) == 0)
    snprintf(bytes, sizeof bytes, "%lldMi", (long long)(mem >> 20));
  else
    snprintf(bytes, sizeof bytes, "%lld", (long long)mem);
  if (!r || !(lim = cJSON_AddObjectToObject(r, "limits")) ||
      !cJSON_AddStringToObject(lim, "cpu", cpu) || !cJSON_AddStringToObject(lim, "memory", bytes) ||
      !(req = cJSON_AddObjectToObject(r, "requests")) ||
      !cJSON_AddStringToObject(req, "cpu", cpu) || !cJSON_AddStringToObject(req, "memory", bytes))
    return -ENOMEM;
  return 0;
}

static int add_container(cJSON *pod_spec, const k8s *k, const posts_env_spec *spec) {
  cJSON *cs = cJSON_AddArrayToObject(pod_spec, "containers"), *c, *mounts, *m;
  if (!cs || !cJSON_AddItemToArray(cs, c = cJSON_CreateObject()) ||
      !cJSON_AddStringToObject(c, "name", K8S_CONTAINER) ||
      !cJSON_AddStringToObject(c, "image", spec->image) ||
      !cJSON_AddStringToObject(c, "imagePullPolicy", "IfNotPresent"))
    return -ENOMEM;
  /* args, not command: like Docker's Cmd, it replaces the image's CMD and
   * keeps its ENTRYPOINT. */
  if (spec->command && add_strings(c, "args", spec->command) < 0) return -ENOMEM;
  if (add_security(c, spec) < 0 || add_resources(c, k, spec) < 0) return -ENOMEM;
  if (spec->shared_path && (!(mounts = cJSON_AddArrayToObject(c, "volumeMounts")) ||
                            !cJSON_AddItemToArray(mounts, m = cJSON_CreateObject()) ||
                            !cJSON_AddStringToObject(m, "name", VOLUME) ||
                            !cJSON_AddStringToObject(m, "mountPath", spec->shared_path) ||
                            !cJSON_AddBoolToObject(m, "readOnly", 1)))
    return -ENOMEM;
  return 0;
}

static int add_pod_spec(cJSON *root, const k8s *k, const posts_env_spec *spec) {
  cJSON *ps = cJSON_AddObjectToObject(root, "spec"), *sc, *vols, *v, *hp;
  if (!ps || !cJSON_AddStringToObject(ps, "restartPolicy", "Never") ||
      !cJSON_AddBoolToObject(ps, "automountServiceAccountToken", 0) ||
      !cJSON_AddBoolToObject(ps, "enableServiceLinks", 0) ||
      (k->node_name && !cJSON_AddStringToObject(ps, "nodeName", k->node_name)) ||
      !(sc = cJSON_AddObjectToObject(ps, "securityContext")) || !add_seccomp(sc))
    return -ENOMEM;
  /* The template's user, else the configuration's; the kubelet refuses to
   * start a container as root where runAsNonRoot is set. */
  int64_t uid = spec->run_as_user ? spec->run_as_user : k->run_as_user;
  int64_t gid = spec->run_as_user && spec->run_as_group ? spec->run_as_group : uid;
  if (uid > 0 && (!cJSON_AddNumberToObject(sc, "runAsUser", (double)uid) ||
                  !cJSON_AddNumberToObject(sc, "runAsGroup", (double)gid) ||
                  !cJSON_AddBoolToObject(sc, "runAsNonRoot", 1)))
    return -ENOMEM;
  if (add_container(ps, k, spec) < 0) return -ENOMEM;
  /* type Directory: a missing host path fails the pod instead of becoming
   * an empty directory the kubelet makes (as the Docker backend's Mounts). */
  if (spec->shared_path && (!(vols = cJSON_AddArrayToObject(ps, "volumes")) ||
                            !cJSON_AddItemToArray(vols, v = cJSON_CreateObject()) ||
                            !cJSON_AddStringToObject(v, "name", VOLUME) ||
                            !(hp = cJSON_AddObjectToObject(v, "hostPath")) ||
                            !cJSON_AddStringToObject(hp, "path", spec->shared_host_path) ||
                            !cJSON_AddStringToObject(hp, "type", "Directory")))
    return -ENOMEM;
  return 0;
}

static int add_metadata(cJSON *root, const posts_env_spec *spec) {
  cJSON *md = cJSON_AddObjectToObject(root, "metadata"), *labels;
  if (!md ||
      !(spec->name ? cJSON_AddStringToObject(md, "name", spec->name)
                   : cJSON_AddStringToObject(md, "generateName", GENERATED_PREFIX)) ||
      !(labels = cJSON_AddObjectToObject(md, "labels")) ||
      !cJSON_AddStringToObject(labels, K8S_NS_LABEL, spec->ns) ||
      !cJSON_AddStringToObject(labels, K8S_MANAGED_LABEL, K8S_MANAGER) ||
      (!spec->network && !cJSON_AddStringToObject(labels, K8S_NETWORK_LABEL, "none")))
    return -ENOMEM;
  for (size_t i = 0; i < spec->n_labels; i++)
    if (!cJSON_AddStringToObject(labels, spec->labels[i].key, spec->labels[i].value))
      return -ENOMEM;
  return 0;
}

int posts__k8s_pod_build(const k8s *k, const posts_env_spec *spec, cJSON **out, posts_err *err) {
  cJSON *root;
  int rc = check_labels("labels", spec->labels, spec->n_labels, err);
  *out = NULL;
  if (rc < 0) return rc;
  for (size_t i = 0; i < spec->n_labels; i++)
    if (runtime_key(spec->labels[i].key))
      return posts__err(
          err, -EINVAL, 0, "labels.%zu.key: %s is the runtime's%s", i, spec->labels[i].key,
          strcmp(spec->labels[i].key, K8S_OWNER_LABEL) == 0 ? " (claim instead)" : "");
  if (!(root = cJSON_CreateObject()) || !cJSON_AddStringToObject(root, "apiVersion", "v1") ||
      !cJSON_AddStringToObject(root, "kind", "Pod") || add_metadata(root, spec) < 0 ||
      add_pod_spec(root, k, spec) < 0) {
    cJSON_Delete(root);
    return posts__err(err, -ENOMEM, 0, "out of memory");
  }
  *out = root;
  return 0;
}

/* key=value, or key alone (any value), and a comma before all but the
 * first, appended to b. */
static void selector_put(k8s_buf *b, const char *key, const char *value) {
  if (b->len) posts__buf_put(b, ",", 1);
  posts__buf_put(b, key, strlen(key));
  if (value) {
    posts__buf_put(b, "=", 1);
    posts__buf_put(b, value, strlen(value));
  }
}

int posts__k8s_selector(const char *ns, const posts_label *sel, size_t n_sel, char **out,
                        posts_err *err) {
  k8s_buf b = {.max = 16 << 10};
  char *esc;
  int rc = check_labels("sel", sel, n_sel, err);
  *out = NULL;
  if (rc < 0) return rc;
  selector_put(&b, K8S_NS_LABEL, ns);
  for (size_t i = 0; i < n_sel; i++) selector_put(&b, sel[i].key, sel[i].value);
  if (b.over) {
    free(b.p);
    return posts__err(err, -EINVAL, 0, "sel: too long");
  }
  esc = b.nomem ? NULL : curl_easy_escape(NULL, b.p, (int)b.len);
  free(b.p);
  if (!esc) return posts__err(err, -ENOMEM, 0, "out of memory");
  /* curl_free, not free, must release what curl allocated: copy. */
  rc = posts__strdup(out, esc);
  curl_free(esc);
  return rc < 0 ? posts__err(err, -ENOMEM, 0, "out of memory") : 0;
}

/* -------------------------------------------------------------- reading */

static const cJSON *get(const cJSON *o, const char *key) {
  return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* The lab container of a list of containers or container statuses. */
static const cJSON *lab_item(const cJSON *list) {
  const cJSON *c;
  cJSON_ArrayForEach(c, list) {
    const char *name = cJSON_GetStringValue(get(c, "name"));
    if (name && strcmp(name, K8S_CONTAINER) == 0) return c;
  }
  return cJSON_GetArrayItem(list, 0);
}

static posts_env_state pod_state(const cJSON *pod) {
  const char *phase = cJSON_GetStringValue(get(get(pod, "status"), "phase"));
  if (cJSON_IsString(get(get(pod, "metadata"), "deletionTimestamp"))) return POSTS_ENV_REMOVING;
  if (!phase) return POSTS_ENV_CREATED; /* just made: no status yet */
  if (strcmp(phase, "Pending") == 0) return POSTS_ENV_CREATED;
  if (strcmp(phase, "Running") == 0) return POSTS_ENV_RUNNING;
  if (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0) return POSTS_ENV_EXITED;
  return POSTS_ENV_UNKNOWN;
}

/* The labels into info: the namespace and the owner from ours, the
 * runtime's own hidden, the others as they are. */
static int fill_labels(posts_env_info *info, const cJSON *labels) {
  const cJSON *l;
  size_t plen = strlen(POSTS_RUNTIME_LABEL_PREFIX);
  cJSON_ArrayForEach(l, labels) {
    char **dst = NULL;
    if (!cJSON_IsString(l)) continue;
    if (strcmp(l->string, K8S_NS_LABEL) == 0)
      dst = &info->ns;
    else if (strcmp(l->string, K8S_OWNER_LABEL) == 0)
      dst = &info->owner;
    if (dst) {
      free(*dst);
      if (posts__strdup(dst, l->valuestring) < 0) return -ENOMEM;
    } else if (strncmp(l->string, POSTS_RUNTIME_LABEL_PREFIX, plen) != 0 &&
               !runtime_key(l->string) &&
               posts__info_label_add(info, l->string, l->valuestring) < 0) {
      return -ENOMEM;
    }
  }
  if ((!info->ns && posts__strdup(&info->ns, "") < 0) ||
      (!info->owner && posts__strdup(&info->owner, "") < 0))
    return -ENOMEM;
  return 0;
}

int posts__k8s_pod_info(posts_env_info *info, const cJSON *pod) {
  const cJSON *md = get(pod, "metadata"), *c, *cs, *term;
  const char *name = cJSON_GetStringValue(get(md, "name"));
  const char *kns = cJSON_GetStringValue(get(md, "namespace"));
  if (!name || !kns || strlen(kns) + strlen(name) + 2 > sizeof info->id) return -EPROTO;
  posts__k8s_join(info->id, kns, '/', name);
  c = lab_item(get(get(pod, "spec"), "containers"));
  if (fill_labels(info, get(md, "labels")) < 0 || posts__strdup(&info->name, name) < 0 ||
      posts__strdup(&info->image, cJSON_GetStringValue(get(c, "image"))) < 0)
    return -ENOMEM;
  info->state = pod_state(pod);
  cs = lab_item(get(get(pod, "status"), "containerStatuses"));
  term = get(get(cs, "state"), "terminated");
  if (info->state == POSTS_ENV_EXITED && cJSON_IsNumber(get(term, "exitCode")))
    info->exit_code = get(term, "exitCode")->valueint;
  /* No pid: the pod's uid and the running container's id say where its
   * cgroup is on its node. "containerd://<id>", "cri-o://<id>"... */
  const char *uid = cJSON_GetStringValue(get(md, "uid"));
  const char *cid = cJSON_GetStringValue(get(cs, "containerID"));
  const char *sep = cid ? strstr(cid, "://") : NULL;
  if ((uid && posts__strdup(&info->pod_uid, uid) < 0) ||
      (sep && sep[3] && get(get(cs, "state"), "running") &&
       posts__strdup(&info->container_id, sep + 3) < 0))
    return -ENOMEM;
  info->created = posts__parse_time(cJSON_GetStringValue(get(md, "creationTimestamp")));
  return 0;
}

const char *posts__k8s_pod_rv(const cJSON *pod) {
  return cJSON_GetStringValue(get(get(pod, "metadata"), "resourceVersion"));
}
