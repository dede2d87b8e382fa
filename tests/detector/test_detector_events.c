/*
 * test_detector_events.c — the detector against the real kernel: a child in
 * a watched cgroup connects, opens files, creates a memfd, calls ptrace,
 * setuid and unshare, then execs a shell that exits 7, and every one of those
 * arrives decoded with the values the child used; a child in an unwatched
 * cgroup doing the same produces nothing; the CloudEvent of the exec carries
 * the right attributes and passes validation. Needs root (label root;ebpf).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "det_util.h"

#define ENV_ID 42

static detector_bpf *d;
static testcg watched_cg, unwatched_cg;
static char dir[256]; /* a scratch directory under /tmp */
static int listen4 = -1, listen6 = -1;
static uint16_t port4, port6;
static evlog log_;

static int listener(int family, uint16_t *port) {
  struct sockaddr_storage ss = {0};
  socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd < 0) return -1;
  if (family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = in6addr_loopback;
  }
  if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 16) ||
      getsockname(fd, (struct sockaddr *)&ss, &len)) {
    close(fd);
    return -1;
  }
  *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                  : ((struct sockaddr_in6 *)&ss)->sin6_port);
  return fd;
}

static int group_setup(void **state) {
  char err[256] = "";
  const char *watch[1];
  static char prefix[300];

  snprintf(dir, sizeof dir, "/tmp/outpost-det-%d", (int)getpid());
  if (mkdir(dir, 0755) != 0) return -1;
  snprintf(prefix, sizeof prefix, "%s/watched/", dir);
  watch[0] = prefix;
  if (!(d = detector_bpf_open(NULL, err, sizeof err))) {
    fprintf(stderr, "detector_bpf_open: %s\n", err);
    return -1;
  }
  fprintf(stderr, "hooks: %s\n", detector_bpf_hooks(d)->summary);
  cg_make(&watched_cg, "watched");
  cg_make(&unwatched_cg, "unwatched");
  detector_policy p = {.watched_prefixes = watch, .n_watched_prefixes = 1};
  if (detector_bpf_watch(d, watched_cg.id, ENV_ID) || detector_bpf_policy_set(d, watched_cg.id, &p))
    return -1;
  listen4 = listener(AF_INET, &port4);
  listen6 = listener(AF_INET6, &port6); /* -1 where IPv6 is off: then not checked */
  return listen4 < 0 ? -1 : 0;
}

static int group_teardown(void **state) {
  char path[300];
  detector_bpf_free(d);
  cg_remove(&watched_cg);
  cg_remove(&unwatched_cg);
  if (listen4 >= 0) close(listen4);
  if (listen6 >= 0) close(listen6);
  snprintf(path, sizeof path, "%s/watched/f", dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/watched", dir);
  rmdir(path);
  snprintf(path, sizeof path, "%s/other", dir);
  unlink(path);
  rmdir(dir);
  evlog_free(&log_);
  return 0;
}

static void connect_to(int family, uint16_t port) {
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
  struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
  int fd = socket(family, SOCK_STREAM, 0);

  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin6.sin6_addr = in6addr_loopback;
  if (fd < 0) return;
  if (family == AF_INET)
    (void)!connect(fd, (struct sockaddr *)&sin, sizeof sin);
  else
    (void)!connect(fd, (struct sockaddr *)&sin6, sizeof sin6);
  close(fd);
}

/* Everything the kernel side reports, in one process, ending in an exec. */
static int busy_child(void *arg) {
  char path[300];
  int fd;

  (void)arg;
  if (chdir(dir) != 0) return 98;
  connect_to(AF_INET, port4);
  if (listen6 >= 0) connect_to(AF_INET6, port6);
  snprintf(path, sizeof path, "%s/watched", dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/watched/f", dir);
  if ((fd = open(path, O_WRONLY | O_CREAT, 0600)) >= 0) close(fd);
  snprintf(path, sizeof path, "%s/other", dir);
  if ((fd = open(path, O_WRONLY | O_CREAT, 0600)) >= 0) close(fd);
  if ((fd = (int)syscall(SYS_memfd_create, "outpost-memfd", 0)) >= 0) close(fd);
  (void)!syscall(SYS_ptrace, 2 /* PTRACE_PEEKDATA */, (long)getppid(), 0L, 0L);
  (void)!setuid(0);
  (void)!setresuid((uid_t)-1, 0, (uid_t)-1);
  (void)!unshare(CLONE_NEWUTS);
  execl("/bin/sh", "sh", "-c", "exit 7", "marker", (char *)NULL);
  return 97;
}

static void run_busy_child(void) {
  if (log_.n > 0) return; /* the tests of this file share one run */
  pid_t pid = spawn_in(&watched_cg, busy_child, NULL);
  int status = reap(pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_INT(WEXITSTATUS(status), 7);
  poll_until_exit(d, &log_, pid);
}

static pid_t busy_pid(void) {
  const detector_event *e = evlog_find(&log_, DETECTOR_EXIT, 0, 0);
  assert_non_null(e);
  return e->pid;
}

static void test_exec_and_exit(void **state) {
  static const char args[] = "sh\0-c\0exit 7\0marker";
  run_busy_child();
  pid_t pid = busy_pid();
  const detector_event *e = evlog_find(&log_, DETECTOR_EXEC, pid, 0);
  assert_non_null(e);
  EXPECT_STR(e->u.exec.binary, "/bin/sh");
  EXPECT_MEM(e->u.exec.args, e->u.exec.args_len, args, sizeof args);
  EXPECT_INT(e->u.exec.argc, 4);
  EXPECT_STR(e->u.exec.cwd, dir);
  EXPECT_INT(e->ppid, getpid());
  EXPECT_INT(e->uid, 0);
  EXPECT_INT(e->cgroup_id, watched_cg.id);
  EXPECT_INT(e->env_id, ENV_ID);
  EXPECT_INT(e->action, DETECTOR_ACTION_NONE);
  EXPECT_INT(e->syscall, -1);
  /* The event time is the wall clock of a moment ago. */
  EXPECT_TRUE(e->time_sec <= time(NULL) && e->time_sec > time(NULL) - 60);

  e = evlog_find(&log_, DETECTOR_EXIT, pid, 0);
  assert_non_null(e);
  EXPECT_INT(e->u.exit.code, 7);
  EXPECT_INT(e->u.exit.signal, 0);
  EXPECT_INT(e->u.exit.status, 7 << 8);
  EXPECT_STR(e->comm, "sh");
}

static void test_connect(void **state) {
  run_busy_child();
  const detector_event *e = evlog_find(&log_, DETECTOR_CONNECT, busy_pid(), 0);
  assert_non_null(e);
  EXPECT_INT(e->u.connect.family, AF_INET);
  EXPECT_STR(e->u.connect.text, "127.0.0.1");
  EXPECT_INT(e->u.connect.port, port4);
  EXPECT_STR(e->sysname, "connect");
  if (listen6 < 0) return;
  e = evlog_find(&log_, DETECTOR_CONNECT, busy_pid(), 1);
  assert_non_null(e);
  EXPECT_INT(e->u.connect.family, AF_INET6);
  EXPECT_STR(e->u.connect.text, "::1");
  EXPECT_INT(e->u.connect.port, port6);
}

static void test_open_watched_prefix_only(void **state) {
  char want[300];
  run_busy_child();
  snprintf(want, sizeof want, "%s/watched/f", dir);
  EXPECT_INT(evlog_count(&log_, DETECTOR_OPEN, busy_pid()), 1);
  const detector_event *e = evlog_find(&log_, DETECTOR_OPEN, busy_pid(), 0);
  assert_non_null(e);
  EXPECT_STR(e->u.open.path, want);
  EXPECT_TRUE(e->u.open.flags & O_CREAT);
  EXPECT_INT(e->u.open.mode, 0600);
  EXPECT_STR(e->sysname, "openat");
}

static void test_syscalls(void **state) {
  run_busy_child();
  pid_t pid = busy_pid();
  const detector_event *e = evlog_find(&log_, DETECTOR_MEMFD, pid, 0);
  assert_non_null(e);
  EXPECT_STR(e->u.sys.str[0], "outpost-memfd");

  e = evlog_find(&log_, DETECTOR_PTRACE, pid, 0);
  assert_non_null(e);
  EXPECT_INT(e->u.sys.args[0], 2);
  EXPECT_INT(e->u.sys.args[1], getpid());

  e = evlog_find(&log_, DETECTOR_SETUID, pid, 0);
  assert_non_null(e);
  EXPECT_STR(e->sysname, "setuid");
  EXPECT_INT(e->u.sys.args[0], 0);
  e = evlog_find(&log_, DETECTOR_SETUID, pid, 1);
  assert_non_null(e);
  EXPECT_STR(e->sysname, "setresuid");
  EXPECT_INT((int32_t)e->u.sys.args[0], -1);
  EXPECT_INT(e->u.sys.args[1], 0);

  e = evlog_find(&log_, DETECTOR_UNSHARE, pid, 0);
  assert_non_null(e);
  EXPECT_INT(e->u.sys.args[0], CLONE_NEWUTS);
  for (size_t i = 0; i < log_.n; i++) {
    EXPECT_INT(log_.ev[i].cgroup_id, watched_cg.id);
    EXPECT_INT(log_.ev[i].env_id, ENV_ID);
  }
}

static int true_child(void *arg) {
  (void)arg;
  execl("/bin/true", "true", (char *)NULL);
  return 97;
}

/* The unwatched child does everything the watched one did; a watched child
 * that runs after it marks the point by which its events would have come. */
static void test_unwatched_is_silent(void **state) {
  evlog log = {0};
  pid_t quiet = spawn_in(&unwatched_cg, busy_child, NULL);
  EXPECT_INT(WEXITSTATUS(reap(quiet)), 7);
  pid_t marker = spawn_in(&watched_cg, true_child, NULL);
  EXPECT_INT(WEXITSTATUS(reap(marker)), 0);
  poll_until_exit(d, &log, marker);
  EXPECT_INT(evlog_count(&log, 0, quiet), 0);
  for (size_t i = 0; i < log.n; i++) EXPECT_INT(log.ev[i].cgroup_id, watched_cg.id);
  EXPECT_TRUE(evlog_find(&log, DETECTOR_EXEC, marker, 0) != NULL);
  evlog_free(&log);
}

static void test_exec_cloudevent(void **state) {
  detector_env env = {.node = "node-1", .environment = "env-a", .tenant = "t1", .ns = "course-x"};
  ce_event *ev = NULL;
  ce_err err = {0};
  size_t len;
  run_busy_child();
  const detector_event *e = evlog_find(&log_, DETECTOR_EXEC, busy_pid(), 0);
  assert_non_null(e);
  EXPECT_RC(detector_event_to_ce(e, &env, &ev, &err), 0);
  assert_non_null(ev);
  EXPECT_RC(ce_event_validate(ev, &err), 0);
  EXPECT_STR(ce_event_get_str(ev, "type"), "dev.outpost.process.exec");
  EXPECT_STR(ce_event_get_str(ev, "source"), "/nodes/node-1/environments/env-a");
  EXPECT_STR(ce_event_get_str(ev, "subject"), "/bin/sh");
  EXPECT_STR(ce_event_get_str(ev, "partitionkey"), "env-a");
  EXPECT_STR(ce_event_get_str(ev, "tenant"), "t1");
  EXPECT_STR(ce_event_get_str(ev, "namespace"), "course-x");
  EXPECT_STR(ce_event_get_str(ev, "action"), "none");
  EXPECT_STR(ce_event_get_str(ev, "severity"), "info");
  const uint8_t *data = ce_event_data(ev, &len);
  cJSON *j = cJSON_ParseWithLength((const char *)data, len);
  assert_non_null(j);
  EXPECT_INT(cJSON_GetObjectItem(j, "pid")->valuedouble, e->pid);
  cJSON *args = cJSON_GetObjectItem(j, "args");
  EXPECT_INT(cJSON_GetArraySize(args), 4);
  EXPECT_STR(cJSON_GetArrayItem(args, 2)->valuestring, "exit 7");
  EXPECT_STR(cJSON_GetObjectItem(j, "cwd")->valuestring, dir);
  cJSON_Delete(j);
  ce_event_free(ev);
}

static void test_hooks(void **state) {
  const detector_hooks *h = detector_bpf_hooks(d);
  EXPECT_TRUE(h->exec && h->exit && h->fork && h->syscall);
  EXPECT_TRUE(strstr(h->summary, "sys_enter") != NULL);
  EXPECT_TRUE(strstr(h->summary, "fentry: ") != NULL);
}

int main(void) {
  int rc = det_can_run();
  if (rc) return rc;
  const struct CMUnitTest tests[] = {
      T(test_exec_and_exit), T(test_connect),         T(test_open_watched_prefix_only),
      T(test_syscalls),      T(test_exec_cloudevent), T(test_unwatched_is_silent),
      T(test_hooks),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
