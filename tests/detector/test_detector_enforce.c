/*
 * test_detector_enforce.c — policies enforced in the kernel: a forbidden
 * binary dies of SIGKILL before it runs its own code (the file it was asked
 * to create never appears), a binary whose path only starts like a forbidden
 * one runs, an open under a forbidden prefix and a connect to a forbidden
 * destination are killed, a policy for cgroup 0 applies to every watched
 * cgroup, and replacing a policy lifts what it no longer lists. Each kill is
 * reported with action=killed. Needs root (label root;ebpf).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "det_util.h"

static detector_bpf *d;
static testcg cg;
static char dir[256];

static int group_setup(void **state) {
  char err[256] = "";
  snprintf(dir, sizeof dir, "/tmp/outpost-det-enf-%d", (int)getpid());
  if (mkdir(dir, 0755) != 0) return -1;
  if (!(d = detector_bpf_open(NULL, err, sizeof err))) {
    fprintf(stderr, "detector_bpf_open: %s\n", err);
    return -1;
  }
  cg_make(&cg, "enforce");
  return detector_bpf_watch(d, cg.id, 7);
}

static int group_teardown(void **state) {
  char path[300];
  detector_bpf_free(d);
  cg_remove(&cg);
  snprintf(path, sizeof path, "%s/secret/f", dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/secret", dir);
  rmdir(path);
  snprintf(path, sizeof path, "%s/made", dir);
  unlink(path);
  rmdir(dir);
  return 0;
}

/* Runs argv[0] with execv; the child exits 97 when exec itself fails. */
static int exec_child(void *arg) {
  char *const *argv = arg;
  execv(argv[0], argv);
  return 97;
}

static const detector_event *run_exec(evlog *log, char *const *argv, int *status) {
  pid_t pid = spawn_in(&cg, exec_child, (void *)argv);
  *status = reap(pid);
  poll_until_exit(d, log, pid);
  return evlog_find(log, DETECTOR_EXEC, pid, 0);
}

static void test_forbidden_binary_killed_before_it_runs(void **state) {
  const char *bins[] = {"/bin/touch", "/bin/tru"};
  detector_policy p = {.forbidden_binaries = bins, .n_forbidden_binaries = 2};
  char made[300];
  evlog log = {0};
  int status;

  snprintf(made, sizeof made, "%s/made", dir);
  EXPECT_RC(detector_bpf_policy_set(d, cg.id, &p), 0);
  char *touch[] = {"/bin/touch", made, NULL};
  const detector_event *e = run_exec(&log, touch, &status);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_INT(WTERMSIG(status), SIGKILL);
  EXPECT_INT(access(made, F_OK), -1); /* touch never ran */
  assert_non_null(e);
  EXPECT_INT(e->action, DETECTOR_ACTION_KILLED);
  EXPECT_STR(e->u.exec.binary, "/bin/touch");
  const detector_event *x = evlog_find(&log, DETECTOR_EXIT, e->pid, 0);
  assert_non_null(x);
  EXPECT_INT(x->u.exit.signal, SIGKILL);

  /* "/bin/tru" is forbidden whole: "/bin/true" is another binary. */
  char *tru[] = {"/bin/true", NULL};
  e = run_exec(&log, tru, &status);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_INT(WEXITSTATUS(status), 0);
  assert_non_null(e);
  EXPECT_INT(e->action, DETECTOR_ACTION_NONE);

  /* A new policy without touch lets it run. */
  p.n_forbidden_binaries = 1;
  p.forbidden_binaries = bins + 1;
  EXPECT_RC(detector_bpf_policy_set(d, cg.id, &p), 0);
  e = run_exec(&log, touch, &status);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_INT(WEXITSTATUS(status), 0);
  EXPECT_INT(access(made, F_OK), 0);
  assert_non_null(e);
  EXPECT_INT(e->action, DETECTOR_ACTION_NONE);
  EXPECT_RC(detector_bpf_policy_set(d, cg.id, NULL), 0);
  evlog_free(&log);
}

static void test_global_policy(void **state) {
  const char *bins[] = {"/bin/true"};
  detector_policy p = {.forbidden_binaries = bins, .n_forbidden_binaries = 1};
  evlog log = {0};
  int status;
  char *tru[] = {"/bin/true", NULL};

  EXPECT_RC(detector_bpf_policy_set(d, 0, &p), 0);
  const detector_event *e = run_exec(&log, tru, &status);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  assert_non_null(e);
  EXPECT_INT(e->action, DETECTOR_ACTION_KILLED);
  EXPECT_RC(detector_bpf_policy_set(d, 0, NULL), 0);
  e = run_exec(&log, tru, &status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  evlog_free(&log);
}

static int open_child(void *arg) {
  int fd = open(arg, O_WRONLY | O_CREAT, 0600);
  return fd >= 0 ? 0 : 1;
}

static void test_forbidden_prefix_open_killed(void **state) {
  char prefix[300], path[320], other[320];
  const char *pre[] = {prefix};
  detector_policy p = {.forbidden_prefixes = pre, .n_forbidden_prefixes = 1};
  evlog log = {0};

  snprintf(prefix, sizeof prefix, "%s/secret", dir);
  mkdir(prefix, 0755);
  snprintf(path, sizeof path, "%s/f", prefix);
  snprintf(other, sizeof other, "%s/made-open", dir);
  EXPECT_RC(detector_bpf_policy_set(d, cg.id, &p), 0);

  pid_t pid = spawn_in(&cg, open_child, path);
  int status = reap(pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  poll_until_exit(d, &log, pid);
  const detector_event *e = evlog_find(&log, DETECTOR_OPEN, pid, 0);
  assert_non_null(e);
  EXPECT_STR(e->u.open.path, path);
  EXPECT_INT(e->action, DETECTOR_ACTION_KILLED);

  /* Outside the prefix: opens, is not reported. */
  pid = spawn_in(&cg, open_child, other);
  status = reap(pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  poll_until_exit(d, &log, pid);
  EXPECT_INT(evlog_count(&log, DETECTOR_OPEN, pid), 0);
  unlink(other);
  EXPECT_RC(detector_bpf_policy_set(d, cg.id, NULL), 0);
  evlog_free(&log);
}

static uint16_t connect_port;

static int connect_child(void *arg) {
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(connect_port)};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  (void)arg;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  (void)!connect(fd, (struct sockaddr *)&sin, sizeof sin);
  return 0;
}

static void test_forbidden_destination_killed(void **state) {
  detector_dest dst = {.family = AF_INET, .addr = {127, 0, 0, 1}, .port = 4444};
  detector_policy p = {.forbidden_dests = &dst, .n_forbidden_dests = 1};
  evlog log = {0};

  EXPECT_RC(detector_bpf_policy_set(d, cg.id, &p), 0);
  connect_port = 4444;
  pid_t pid = spawn_in(&cg, connect_child, NULL);
  int status = reap(pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  poll_until_exit(d, &log, pid);
  const detector_event *e = evlog_find(&log, DETECTOR_CONNECT, pid, 0);
  assert_non_null(e);
  EXPECT_INT(e->action, DETECTOR_ACTION_KILLED);
  EXPECT_INT(e->u.connect.port, 4444);

  /* Another port of the same address is allowed. */
  connect_port = 4445;
  pid = spawn_in(&cg, connect_child, NULL);
  status = reap(pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  poll_until_exit(d, &log, pid);
  e = evlog_find(&log, DETECTOR_CONNECT, pid, 0);
  assert_non_null(e);
  EXPECT_INT(e->action, DETECTOR_ACTION_NONE);

  /* Port 0 forbids every port. */
  dst.port = 0;
  EXPECT_RC(detector_bpf_policy_set(d, cg.id, &p), 0);
  pid = spawn_in(&cg, connect_child, NULL);
  status = reap(pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  poll_until_exit(d, &log, pid);
  EXPECT_RC(detector_bpf_policy_set(d, cg.id, NULL), 0);
  evlog_free(&log);
}

/* Cgroup 0's open and destination rules, which the kernel looks up only
 * while det_global_rules says it has some: kill while set, nothing after. */
static void test_global_open_and_destination(void **state) {
  char prefix[300], path[320];
  const char *pre[] = {prefix};
  detector_dest dst = {.family = AF_INET, .addr = {127, 0, 0, 1}, .port = 4446};
  detector_policy p = {.forbidden_prefixes = pre,
                       .n_forbidden_prefixes = 1,
                       .forbidden_dests = &dst,
                       .n_forbidden_dests = 1};
  evlog log = {0};
  int status;

  snprintf(prefix, sizeof prefix, "%s/gsecret", dir);
  mkdir(prefix, 0755);
  snprintf(path, sizeof path, "%s/f", prefix);
  connect_port = 4446;
  EXPECT_RC(detector_bpf_policy_set(d, 0, &p), 0);
  status = reap(spawn_in(&cg, open_child, path));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  status = reap(spawn_in(&cg, connect_child, NULL));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  /* Only the destination left: the open is allowed, the connect is not. */
  p.n_forbidden_prefixes = 0;
  EXPECT_RC(detector_bpf_policy_set(d, 0, &p), 0);
  status = reap(spawn_in(&cg, open_child, path));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  status = reap(spawn_in(&cg, connect_child, NULL));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_RC(detector_bpf_policy_set(d, 0, NULL), 0);
  pid_t pid = spawn_in(&cg, connect_child, NULL);
  status = reap(pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  unlink(path);
  rmdir(prefix);
  poll_until_exit(d, &log, pid); /* the ring read up to here */
  evlog_free(&log);
}

static void test_policy_errors(void **state) {
  char longp[DETECTOR_RULE_PATH_MAX + 2];
  const char *bins[] = {longp};
  detector_policy p = {.forbidden_binaries = bins, .n_forbidden_binaries = 1};
  detector_dest bad = {.family = 12345};
  detector_policy q = {.forbidden_dests = &bad, .n_forbidden_dests = 1};

  memset(longp, 'a', sizeof longp - 1);
  longp[sizeof longp - 1] = '\0';
  EXPECT_RC(detector_bpf_policy_set(d, cg.id, &p), -ENAMETOOLONG);
  longp[DETECTOR_RULE_PATH_MAX] = '\0'; /* exactly the longest allowed */
  EXPECT_RC(detector_bpf_policy_set(d, cg.id, &p), 0);
  EXPECT_RC(detector_bpf_policy_set(d, cg.id, &q), -EINVAL);
  EXPECT_RC(detector_bpf_policy_set(d, cg.id, NULL), 0);
  EXPECT_RC(detector_bpf_watch(d, 0, 1), -EINVAL);
  EXPECT_RC(detector_bpf_unwatch(d, 1), -ENOENT);
}

int main(void) {
  int rc = det_can_run();
  if (rc) return rc;
  const struct CMUnitTest tests[] = {
      T(test_forbidden_binary_killed_before_it_runs),
      T(test_global_policy),
      T(test_forbidden_prefix_open_killed),
      T(test_forbidden_destination_killed),
      T(test_global_open_and_destination),
      T(test_policy_errors),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
