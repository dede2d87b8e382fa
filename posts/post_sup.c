/*
 * post_sup.c — a post's supervisor of its child posts (cluster → node,
 * node → ns). Children must outlive their parent (DESIGN.md: children keep
 * working while a parent is down), so there is no parent-death signal: each
 * child runs in its own process group with no inherited descriptors, and a
 * restarted parent adopts the children still running by asking each one's
 * /healthz, which names its tier, name and pid, before starting only those
 * that do not answer. Liveness is looked at every 100 ms: waitpid for a
 * child of this process, kill(pid, 0) and the /proc state for an adopted
 * one (which init reaps, not us). A dead child is started again at once;
 * only a child that keeps dying within 3 s of its start is held back, with
 * a backoff from 0.5 s doubling to 30 s, so that a broken configuration
 * does not spin.
 */
#define _GNU_SOURCE /* posix_spawn_file_actions_addclosefrom_np */

#include "posts/post_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/metrics.h"

extern char **environ;

#define FAST_CRASH_MS 3000
#define POLL_MS       100

typedef struct sup_child {
  char tier[16], name[64], url[256];
  char what[96];       /* "node post node-1", "broker": for the log */
  char **argv;         /* NULL-terminated, owned; argv[0] is this binary */
  char *log;           /* its stdout and stderr go there (appended); NULL: ours */
  char **env;          /* its environment: ours without the secrets (POST_SECRET_ENV),
                          then these "NAME=value" (NULL-terminated, owned; may be NULL) */
  int fallback_status; /* an exit with this status restarts it with fallback_arg */
  char *fallback_arg, *fallback_why;
  pid_t pid; /* 0: not running */
  bool own;  /* started by this process (else adopted) */
  int64_t started_ms, next_start_ms;
  unsigned restarts, fast_crashes;
} sup_child;

struct post_sup {
  post *p;
  pthread_mutex_t mu;
  sup_child *kids;
  size_t n;
  pthread_t thread;
  bool has_thread;
  _Atomic bool stop;
  _Atomic uint64_t restarts, adopted, spawned;
};

post_sup *post_sup_new(post *p) {
  post_sup *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->p = p;
  pthread_mutex_init(&s->mu, NULL);
  return s;
}

/* A copy of the NULL-terminated v, its first string replaced by first
 * unless that is NULL; NULL when out of memory. */
static char **strv_dup(const char *const *v, const char *first) {
  size_t n = 0;
  while (v[n]) n++;
  char **copy = calloc(n + 1, sizeof *copy);
  if (!copy) return NULL;
  for (size_t i = 0; i < n; i++)
    if (!(copy[i] = strdup(i == 0 && first ? first : v[i]))) {
      for (size_t j = 0; j < i; j++) free(copy[j]);
      free(copy);
      return NULL;
    }
  return copy;
}

static void strv_free(char **v) {
  for (char **e = v; e && *e; e++) free(*e);
  free(v);
}

int post_sup_add(post_sup *s, const char *tier, const char *name, const char *health_url,
                 const char *const *argv) {
  sup_child *kids = realloc(s->kids, (s->n + 1) * sizeof *kids);
  if (!kids) return -ENOMEM;
  s->kids = kids;
  sup_child *k = &kids[s->n];
  memset(k, 0, sizeof *k);
  snprintf(k->tier, sizeof k->tier, "%s", tier);
  snprintf(k->name, sizeof k->name, "%s", name);
  snprintf(k->url, sizeof k->url, "%s", health_url);
  bool is_post = !strcmp(tier, "cluster") || !strcmp(tier, "node") || !strcmp(tier, "ns");
  snprintf(k->what, sizeof k->what, is_post ? "%s post %s" : "%s", tier, name);
  if (!(k->argv = strv_dup(argv, argv[0][0] == '/' ? NULL : s->p->exe))) return -ENOMEM;
  s->n++;
  return 0;
}

static bool secret_env(const char *kv) {
  static const char *const names[] = {POST_SECRET_ENV};
  if (!strncmp(kv, POST_ENV_KAFKA_PREFIX, strlen(POST_ENV_KAFKA_PREFIX))) return true;
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    size_t n = strlen(names[i]);
    if (!strncmp(kv, names[i], n) && kv[n] == '=') return true;
  }
  return false;
}

/* Ours, but the secrets, and then k's own: a child gets only the secrets
 * its parent chose for it. NULL when out of memory; free the array only
 * (the strings are borrowed). */
static char **child_env(const sup_child *k) {
  size_t n = 0, m = 0, j = 0;
  while (environ[n]) n++;
  while (k->env && k->env[m]) m++;
  char **env = calloc(n + m + 1, sizeof *env);
  if (!env) return NULL;
  for (size_t i = 0; i < n; i++)
    if (!secret_env(environ[i])) env[j++] = environ[i];
  for (size_t i = 0; i < m; i++) env[j++] = k->env[i];
  return env;
}

/* Starts k as a new process; 0 or a negative errno. */
static int spawn(post_sup *s, sup_child *k) {
  char **env = child_env(k);
  if (!env) return -ENOMEM;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t fa;
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_init(&fa);
  /* Its own process group: a ^C to the parent's group reaches the parent
   * only, which then stops its children in order. No inherited descriptors:
   * a child holding the parent's listening socket would keep the port from
   * a restarted parent. */
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (k->log) {
    posix_spawn_file_actions_addopen(&fa, 1, k->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                                     0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
  }
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  pid_t pid;
  int rc = posix_spawn(&pid, k->argv[0], &fa, &attr, k->argv, env);
  free(env);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc) {
    post_log(s->p, "cannot start %s: %s", k->what, strerror(rc));
    return -rc;
  }
  k->pid = pid;
  k->own = true;
  k->started_ms = post_now_ms();
  atomic_fetch_add(&s->spawned, 1);
  post_log(s->p, "started %s (pid %d)", k->what, (int)pid);
  return 0;
}

/* Whether an adopted pid is still a live process (a zombie is not). */
static bool pid_alive(pid_t pid) {
  if (kill(pid, 0) && errno == ESRCH) return false;
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f) return false;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *rp = strrchr(buf, ')'); /* the name may hold spaces */
  return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

/* Adopts k when a post of its tier and name answers on its /healthz. */
static bool adopt(post_sup *s, sup_child *k) {
  if (!k->url[0]) return false; /* not an Outpost process: nothing to ask */
  cJSON *j = NULL;
  long st = post_call_json(s->p, "GET", k->url, NULL, 1000, &j);
  const char *tier = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "tier"));
  const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "name"));
  const cJSON *pid = cJSON_GetObjectItemCaseSensitive(j, "pid");
  bool ok = st == 200 && tier && name && !strcmp(tier, k->tier) && !strcmp(name, k->name) &&
            cJSON_IsNumber(pid) && pid->valuedouble > 1 && pid_alive((pid_t)pid->valuedouble);
  if (ok) {
    k->pid = (pid_t)pid->valuedouble;
    k->own = false;
    k->started_ms = post_now_ms();
    atomic_fetch_add(&s->adopted, 1);
    post_log(s->p, "adopted %s (pid %d), still running", k->what, (int)k->pid);
  }
  cJSON_Delete(j);
  return ok;
}

/* Whether k died since the last look; *how describes it and *status is its
 * exit status (-1: killed by a signal, or unknown). */
static bool died(sup_child *k, char *how, size_t size, int *status) {
  *status = -1;
  if (!k->own) {
    snprintf(how, size, "exited (adopted: status unknown)");
    return !pid_alive(k->pid);
  }
  int st;
  pid_t r = waitpid(k->pid, &st, WNOHANG);
  if (r == 0) return false;
  if (r < 0) {
    snprintf(how, size, "vanished");
    return errno == ECHILD && !pid_alive(k->pid);
  }
  if (WIFSIGNALED(st))
    snprintf(how, size, "was killed by signal %d", WTERMSIG(st));
  else
    snprintf(how, size, "exited with status %d", *status = WEXITSTATUS(st));
  return true;
}

/* Appends k's fallback argument to its argv (once). */
static void take_fallback(post_sup *s, sup_child *k) {
  size_t argc = 0;
  while (k->argv[argc]) argc++;
  char **argv = realloc(k->argv, (argc + 2) * sizeof *argv);
  if (argv) k->argv = argv;
  char *arg = argv ? strdup(k->fallback_arg) : NULL;
  if (!arg) return; /* out of memory: restarted as it was */
  argv[argc] = arg;
  argv[argc + 1] = NULL;
  post_log(s->p, "%s: %s", k->what, k->fallback_why);
}

static void on_death(post_sup *s, sup_child *k, const char *how, int status) {
  int64_t now = post_now_ms(), delay = 0;
  if (k->fallback_arg && status == k->fallback_status) {
    /* Not a crash: the child said it cannot run here as it is. */
    take_fallback(s, k);
    free(k->fallback_arg);
    k->fallback_arg = NULL;
    k->pid = 0;
    k->next_start_ms = now;
    return;
  }
  k->fast_crashes = now - k->started_ms < FAST_CRASH_MS ? k->fast_crashes + 1 : 0;
  if (k->fast_crashes >= 3) {
    unsigned shift = k->fast_crashes - 3 > 6 ? 6 : k->fast_crashes - 3;
    delay = (int64_t)500 << shift;
    if (delay > 30000) delay = 30000;
  }
  post_log(s->p, "%s (pid %d) %s; restarting%s", k->what, (int)k->pid, how,
           delay ? " after a backoff (it keeps crashing)" : "");
  cJSON *d = cJSON_CreateObject();
  cJSON_AddStringToObject(d, "tier", k->tier);
  cJSON_AddStringToObject(d, "name", k->name);
  cJSON_AddNumberToObject(d, "pid", k->pid);
  cJSON_AddStringToObject(d, "how", how);
  cJSON_AddNumberToObject(d, "restarts", k->restarts + 1);
  cJSON_AddNumberToObject(d, "delay_ms", (double)delay);
  post_publish(s->p, post_event_new(s->p, POST_EV_CHILD_RESTARTED, k->name, d));
  k->pid = 0;
  k->restarts++;
  k->next_start_ms = now + delay;
  atomic_fetch_add(&s->restarts, 1);
}

static void *sup_run(void *arg) {
  post_sup *s = arg;
  char how[96];
  int status;
  while (!atomic_load(&s->stop)) {
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++) {
      sup_child *k = &s->kids[i];
      if (k->pid && died(k, how, sizeof how, &status)) on_death(s, k, how, status);
      if (!k->pid && post_now_ms() >= k->next_start_ms && spawn(s, k))
        k->next_start_ms = post_now_ms() + 1000;
    }
    pthread_mutex_unlock(&s->mu);
    nanosleep(&(struct timespec){0, POLL_MS * 1000000L}, NULL);
  }
  return NULL;
}

int post_sup_start(post_sup *s) {
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->n; i++)
    if (!adopt(s, &s->kids[i])) spawn(s, &s->kids[i]);
  pthread_mutex_unlock(&s->mu);
  if (pthread_create(&s->thread, NULL, sup_run, s)) return -EAGAIN;
  s->has_thread = true;
  return 0;
}

/* SIGTERM to one child, SIGKILL when it is still there after 10 s. */
static void stop_child(sup_child *k) {
  char how[96];
  int status;
  kill(k->pid, SIGTERM);
  int64_t until = post_now_ms() + 10000;
  while (!died(k, how, sizeof how, &status)) {
    if (post_now_ms() > until) {
      kill(k->pid, SIGKILL);
      if (k->own) waitpid(k->pid, NULL, 0);
      break;
    }
    nanosleep(&(struct timespec){0, 20 * 1000000L}, NULL);
  }
  k->pid = 0;
}

/* The last added first, one after the other: a child may use those added
 * before it while it stops (the posts publish to the broker). */
static void stop_children(post_sup *s) {
  for (size_t i = s->n; i-- > 0;)
    if (s->kids[i].pid) stop_child(&s->kids[i]);
}

void post_sup_free(post_sup *s, bool stop) {
  if (!s) return;
  atomic_store(&s->stop, true);
  if (s->has_thread) pthread_join(s->thread, NULL);
  if (stop) stop_children(s);
  for (size_t i = 0; i < s->n; i++) {
    strv_free(s->kids[i].argv);
    free(s->kids[i].log);
    strv_free(s->kids[i].env);
    free(s->kids[i].fallback_arg);
    free(s->kids[i].fallback_why);
  }
  free(s->kids);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static sup_child *find_kid(post_sup *s, const char *name) {
  for (size_t i = 0; i < s->n; i++)
    if (!strcmp(s->kids[i].name, name)) return &s->kids[i];
  return NULL;
}

int post_sup_set_log(post_sup *s, const char *name, const char *path) {
  sup_child *k = find_kid(s, name);
  if (!k) return -ENOENT;
  free(k->log);
  return (k->log = strdup(path)) ? 0 : -ENOMEM;
}

int post_sup_set_env(post_sup *s, const char *name, const char *const *env) {
  sup_child *k = find_kid(s, name);
  if (!k) return -ENOENT;
  char **copy = strv_dup(env, NULL);
  if (!copy) return -ENOMEM;
  strv_free(k->env);
  k->env = copy;
  return 0;
}

int post_sup_set_fallback(post_sup *s, const char *name, int status, const char *arg,
                          const char *why) {
  sup_child *k = find_kid(s, name);
  if (!k) return -ENOENT;
  free(k->fallback_arg);
  free(k->fallback_why);
  k->fallback_status = status;
  k->fallback_arg = strdup(arg);
  k->fallback_why = strdup(why);
  return k->fallback_arg && k->fallback_why ? 0 : -ENOMEM;
}

pid_t post_sup_pid(post_sup *s, const char *name, unsigned *restarts) {
  pid_t pid = 0;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->n; i++) {
    if (strcmp(s->kids[i].name, name)) continue;
    pid = s->kids[i].pid;
    if (restarts) *restarts = s->kids[i].restarts;
  }
  pthread_mutex_unlock(&s->mu);
  return pid;
}

void post_sup_metrics(post_sup *s, ce_buf *out) {
  metrics_family(out, "outpost_post_children_total", "counter",
                 "child posts started, adopted at start, and restarted after dying");
  metrics_sample(out, "outpost_post_children_total", "how=\"started\"", atomic_load(&s->spawned));
  metrics_sample(out, "outpost_post_children_total", "how=\"adopted\"", atomic_load(&s->adopted));
  metrics_sample(out, "outpost_post_children_total", "how=\"restarted\"",
                 atomic_load(&s->restarts));
}
