/*
 * test_runtime_docker.c — posts/runtime.h on the Docker Engine API against a
 * real podman service: an environment's life (create, start, inspect, list
 * by label, exec, stop, remove), the errors callers branch on (-ENOENT,
 * -EEXIST, -EBUSY, -EINVAL, -ETIMEDOUT), least privilege seen from inside an
 * environment (no new privileges, only the granted capability, a pids limit
 * that stops a fork loop, memory and CPU limits, loopback only, a read-only
 * root and shared volume), the C compiler lab compiling a program, and
 * claims (an owner kept by the runtime, one owner per environment).
 *
 * Needs root and podman with the lab image (scripts/setup_podman.sh). It
 * starts the podman service itself with the script given as argv[1] when
 * nothing answers on the socket. Not root: exit 77 (skipped), saying why.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock.h"
#include "tests/posts/podman_rt.h"
#include "tests/posts/rt_expect.h"

#include "posts/runtime.h"

#define LAB_IMAGE "localhost/outpost-lab-c:latest"
#define SUITE     "outpost.test/suite"

static posts_runtime *rt;
static char ns[64];          /* this run's namespace, so that runs never collide */
static char shared_dir[128]; /* host side of the shared volume */

/* ------------------------------------------------------------- helpers */

static const char *const SLEEP[] = {"sleep", "infinity", NULL};

/* A spec for a long-running environment of this run, with the suite label
 * that lets teardown (and the next run) find leftovers. */
static posts_env_spec spec_for(const char *name) {
  static const posts_label labels[] = {{SUITE, "runtime_docker"}};
  posts_env_spec spec = {.ns = ns, .name = name, .image = LAB_IMAGE, .command = SLEEP};
  spec.labels = labels;
  spec.n_labels = 1;
  return spec;
}

/* Creates and starts spec, writing the id. */
static void run_env(const posts_env_spec *spec, char *id) {
  posts_err err = {0};
  EXPECT_RC(posts_env_create(rt, spec, id, &err), 0, &err);
  EXPECT_RC(posts_env_start(rt, id, &err), 0, &err);
}

/* Runs `sh -c script` in id with a 60 s timeout; res is the caller's. */
static void sh(const char *id, const char *script, posts_exec_result *res) {
  const char *const argv[] = {"sh", "-c", script, NULL};
  posts_exec_req req = {.argv = argv, .timeout_ms = 60000};
  posts_err err = {0};
  EXPECT_RC(posts_env_exec(rt, id, &req, res, &err), 0, &err);
}

/* The value of a "Name:\tvalue" line of /proc/self/status in text. */
static const char *status_field(const char *text, const char *name, char *out, size_t size) {
  const char *p = strstr(text, name);
  size_t n = 0;
  if (!p) return "";
  p += strlen(name);
  while (*p == ':' || *p == '\t' || *p == ' ') p++;
  while (p[n] && p[n] != '\n' && n + 1 < size) n++;
  memcpy(out, p, n);
  out[n] = '\0';
  return out;
}

/* Removes this run's environments (mine) or those of runs that are gone
 * (crashed: their namespace names a dead pid), never a live run's. */
static void remove_envs(bool mine) {
  posts_label sel[] = {{SUITE, "runtime_docker"}};
  posts_env_infos infos = {0};
  posts_err err = {0};
  if (posts_env_list(rt, NULL, sel, 1, &infos, &err) < 0) return;
  for (size_t i = 0; i < infos.n; i++) {
    int pid = 0;
    if (sscanf(infos.items[i].ns, "optest-%d", &pid) != 1) continue;
    bool ours = pid == (int)getpid();
    if (mine ? ours : !ours && kill(pid, 0) < 0 && errno == ESRCH)
      posts_env_remove(rt, infos.items[i].id, true, &err);
  }
  posts_env_infos_cleanup(&infos);
}

/* Counts the environments list finds in ns (NULL: all) for one selector
 * label, and whether id is among them. */
static size_t count_listed(const char *in_ns, const char *key, const char *value, const char *id,
                           bool *found) {
  posts_label sel[] = {{SUITE, "runtime_docker"}, {key, value}};
  posts_env_infos infos = {0};
  posts_err err = {0};
  size_t n;
  EXPECT_RC(posts_env_list(rt, in_ns, sel, key ? 2 : 1, &infos, &err), 0, &err);
  *found = false;
  for (size_t i = 0; i < infos.n; i++) {
    if (strcmp(infos.items[i].id, id) != 0) continue;
    *found = true;
    EXPECT_STR(infos.items[i].name, "life");
    EXPECT_STR(infos.items[i].ns, ns);
    EXPECT_STR(posts_env_state_name(infos.items[i].state), "running");
    EXPECT_STR(posts_env_info_label(&infos.items[i], "tier"), "ns");
  }
  n = infos.n;
  posts_env_infos_cleanup(&infos);
  return n;
}

/* Listing id ("life": tenant alice, tier ns) beside an environment of
 * tenant bob with no tier, by namespace and label, a label with any value,
 * and across namespaces. */
static void check_listing(const char *id) {
  posts_label bob_labels[] = {{SUITE, "runtime_docker"}, {"tenant", "bob"}};
  posts_env_spec bob = spec_for("bob");
  posts_err err = {0};
  char bob_id[POSTS_ENV_ID_MAX];
  bool found;
  bob.labels = bob_labels;
  bob.n_labels = 2;
  EXPECT_RC(posts_env_create(rt, &bob, bob_id, &err), 0, &err);

  assert_int_equal(count_listed(ns, NULL, NULL, id, &found), 2);
  assert_true(found);
  assert_int_equal(count_listed(ns, "tenant", "alice", id, &found), 1);
  assert_true(found);
  assert_int_equal(count_listed(ns, "tier", NULL, id, &found), 1);
  assert_true(found);
  assert_int_equal(count_listed(ns, "tenant", "bob", id, &found), 1);
  assert_false(found);
  assert_int_equal(count_listed(ns, "tenant", "carol", id, &found), 0);
  assert_true(count_listed(NULL, "tenant", "alice", id, &found) >= 1);
  assert_true(found);
  assert_int_equal(count_listed("optest-no-such-ns", NULL, NULL, id, &found), 0);
  EXPECT_RC(posts_env_remove(rt, bob_id, true, &err), 0, &err);
}

/* -------------------------------------------------------------- tests */

static void lifecycle(void **state) {
  (void)state;
  posts_label labels[] = {{SUITE, "runtime_docker"}, {"tier", "ns"}, {"tenant", "alice"}};
  posts_env_spec spec = spec_for("life");
  posts_env_info info = {0};
  posts_exec_result res = {0};
  posts_err err = {0};
  char id[POSTS_ENV_ID_MAX];
  spec.labels = labels;
  spec.n_labels = 3;

  EXPECT_RC(posts_env_create(rt, &spec, id, &err), 0, &err);
  assert_true(strlen(id) >= 12);
  EXPECT_RC(posts_env_inspect(rt, id, &info, &err), 0, &err);
  EXPECT_STR(info.id, id);
  EXPECT_STR(info.ns, ns);
  EXPECT_STR(info.name, "life");
  EXPECT_STR(info.image, LAB_IMAGE);
  EXPECT_STR(posts_env_state_name(info.state), "created");
  assert_int_equal(info.pid, 0); /* not started */
  EXPECT_STR(posts_env_info_label(&info, "tenant"), "alice");
  assert_null(posts_env_info_label(&info, "outpost.runtime/namespace")); /* hidden */
  assert_int_equal(info.n_labels, 3);
  assert_true(info.created > time(NULL) - 600 && info.created <= time(NULL) + 5);
  posts_env_info_cleanup(&info);

  EXPECT_RC(posts_env_start(rt, id, &err), 0, &err);
  EXPECT_RC(posts_env_start(rt, id, &err), 0, &err); /* already running: fine */
  EXPECT_RC(posts_env_inspect(rt, id, &info, &err), 0, &err);
  EXPECT_STR(posts_env_state_name(info.state), "running");
  /* The main process, as this host sees it: the detector finds the
   * environment's cgroup through it. */
  assert_true(info.pid > 1);
  char proc[64];
  struct stat st;
  snprintf(proc, sizeof proc, "/proc/%d", info.pid);
  assert_int_equal(stat(proc, &st), 0);
  posts_env_info_cleanup(&info);

  check_listing(id);

  sh(id, "echo hello; echo oops >&2; exit 3", &res);
  assert_int_equal(res.exit_code, 3);
  EXPECT_STR(res.out, "hello\n");
  EXPECT_STR(res.err, "oops\n");
  posts_exec_result_cleanup(&res);

  int64_t t0 = clock_mono_ms();
  EXPECT_RC(posts_env_stop(rt, id, 1, &err), 0, &err);
  assert_true(clock_mono_ms() - t0 < 10000);
  EXPECT_RC(posts_env_stop(rt, id, 1, &err), 0, &err); /* already stopped: fine */
  EXPECT_RC(posts_env_inspect(rt, id, &info, &err), 0, &err);
  EXPECT_STR(posts_env_state_name(info.state), "exited");
  assert_int_equal(info.pid, 0);
  posts_env_info_cleanup(&info);

  EXPECT_RC(posts_env_remove(rt, id, false, &err), 0, &err);
  EXPECT_RC(posts_env_inspect(rt, id, &info, &err), -ENOENT, &err);
  posts_env_info_cleanup(&info);
}

static void errors(void **state) {
  (void)state;
  posts_env_spec spec = spec_for("twin");
  posts_env_info info = {0};
  posts_exec_result res = {0};
  posts_err err = {0};
  char id[POSTS_ENV_ID_MAX], id2[POSTS_ENV_ID_MAX], other_ns[80];
  const char *const argv[] = {"true", NULL};
  posts_exec_req req = {.argv = argv};

  /* Unknown ids: -ENOENT, with the runtime's status and message kept. */
  const char *unknown = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  EXPECT_RC(posts_env_inspect(rt, unknown, &info, &err), -ENOENT, &err);
  assert_int_equal(err.status, 404);
  EXPECT_HAS(err.msg, "no");
  EXPECT_RC(posts_env_start(rt, unknown, &err), -ENOENT, &err);
  EXPECT_RC(posts_env_stop(rt, unknown, 0, &err), -ENOENT, &err);
  EXPECT_RC(posts_env_remove(rt, unknown, true, &err), -ENOENT, &err);
  EXPECT_RC(posts_env_exec(rt, unknown, &req, &res, &err), -ENOENT, &err);
  EXPECT_RC(posts_env_inspect(rt, "../../etc", &info, &err), -ENOENT, &err);

  /* A name is unique in its namespace, and only there. */
  EXPECT_RC(posts_env_create(rt, &spec, id, &err), 0, &err);
  EXPECT_RC(posts_env_create(rt, &spec, id2, &err), -EEXIST, &err);
  EXPECT_HAS(err.msg, "in use");
  snprintf(other_ns, sizeof other_ns, "%s-b", ns);
  spec.ns = other_ns;
  EXPECT_RC(posts_env_create(rt, &spec, id2, &err), 0, &err);
  assert_string_not_equal(id, id2);
  EXPECT_RC(posts_env_remove(rt, id2, true, &err), 0, &err);
  spec.ns = ns;

  /* Created, not started: no exec. Running: no remove without force. */
  EXPECT_RC(posts_env_exec(rt, id, &req, &res, &err), -EBUSY, &err);
  EXPECT_RC(posts_env_start(rt, id, &err), 0, &err);
  EXPECT_RC(posts_env_remove(rt, id, false, &err), -EBUSY, &err);
  EXPECT_RC(posts_env_remove(rt, id, true, &err), 0, &err);

  /* No such image; specs refused before anything is sent. */
  posts_env_spec bad = spec_for(NULL);
  bad.image = "localhost/outpost-no-such-image:latest";
  EXPECT_RC(posts_env_create(rt, &bad, id, &err), -ENOENT, &err);
  bad = spec_for("UPPER");
  EXPECT_RC(posts_env_create(rt, &bad, id, &err), -EINVAL, &err);
  EXPECT_HAS(err.msg, "name");
  bad = spec_for("x");
  bad.ns = "a_b";
  EXPECT_RC(posts_env_create(rt, &bad, id, &err), -EINVAL, &err);
  posts_label reserved[] = {{"outpost.runtime/namespace", "x"}};
  bad = spec_for("x");
  bad.labels = reserved;
  EXPECT_RC(posts_env_create(rt, &bad, id, &err), -EINVAL, &err);
  const char *const caps[] = {"CAP_SYS_ADMIN", NULL};
  bad = spec_for("x");
  bad.capabilities = caps;
  EXPECT_RC(posts_env_create(rt, &bad, id, &err), -EINVAL, &err);
  bad = spec_for("x");
  bad.shared_host_path = "/tmp";
  EXPECT_RC(posts_env_create(rt, &bad, id, &err), -EINVAL, &err);

  /* Nobody at the socket. */
  char ebuf[128];
  posts_runtime *none = posts_runtime_docker_new("/run/outpost-no-such.sock", ebuf, sizeof ebuf);
  assert_non_null(none);
  EXPECT_RC(posts_runtime_ping(none, &err), -ENOENT, &err);
  EXPECT_RC(posts_env_inspect(none, unknown, &info, &err), -ENOENT, &err);
  assert_int_equal(err.status, 0);
  posts_runtime_free(none);
  posts_env_info_cleanup(&info);
}

static void exec_details(void **state) {
  (void)state;
  posts_env_spec spec = spec_for("exec");
  posts_exec_result res = {0};
  posts_err err = {0};
  char id[POSTS_ENV_ID_MAX];
  run_env(&spec, id);

  /* Environment, working directory, user. */
  const char *const env[] = {"LAB=c", NULL};
  const char *const argv[] = {"sh", "-c", "echo $LAB; pwd; id -u", NULL};
  posts_exec_req req = {.argv = argv, .env = env, .workdir = "/tmp", .user = "65534"};
  EXPECT_RC(posts_env_exec(rt, id, &req, &res, &err), 0, &err);
  EXPECT_STR(res.out, "c\n/tmp\n65534\n");
  assert_int_equal(res.exit_code, 0);
  assert_false(res.truncated);
  posts_exec_result_cleanup(&res);

  /* Output bounded per stream; more than one frame, both streams. */
  const char *const big[] = {"sh", "-c", "head -c 300000 /dev/zero; echo e >&2", NULL};
  posts_exec_req breq = {.argv = big, .max_output = 1000};
  EXPECT_RC(posts_env_exec(rt, id, &breq, &res, &err), 0, &err);
  assert_true(res.truncated);
  assert_int_equal(res.out_len, 1000);
  EXPECT_STR(res.err, "e\n");
  assert_int_equal(res.exit_code, 0);
  posts_exec_result_cleanup(&res);
  breq.max_output = 0; /* the default, 1 MiB, holds it all */
  EXPECT_RC(posts_env_exec(rt, id, &breq, &res, &err), 0, &err);
  assert_false(res.truncated);
  assert_int_equal(res.out_len, 300000);
  posts_exec_result_cleanup(&res);

  /* A command that does not end in time: -ETIMEDOUT soon after, with what
   * it wrote before. The timeout leaves the exec time to start and write
   * (a CI run once saw nothing written within 700 ms on a loaded machine). */
  const char *const slow[] = {"sh", "-c", "echo started; sleep 30", NULL};
  posts_exec_req sreq = {.argv = slow, .timeout_ms = 3000};
  int64_t t0 = clock_mono_ms();
  EXPECT_RC(posts_env_exec(rt, id, &sreq, &res, &err), -ETIMEDOUT, &err);
  int64_t took = clock_mono_ms() - t0;
  if (took < 3000 || took > 10000) fail_msg("timed out after %lld ms, want ~3000", (long long)took);
  EXPECT_STR(res.out, "started\n");
  assert_int_equal(res.exit_code, -1);
  posts_exec_result_cleanup(&res);

  /* No such program: exit code 127, as a shell gives, not a call error. */
  const char *const missing[] = {"/no/such/program", NULL};
  posts_exec_req mreq = {.argv = missing};
  EXPECT_RC(posts_env_exec(rt, id, &mreq, &res, &err), 0, &err);
  assert_int_equal(res.exit_code, 127);
  posts_exec_result_cleanup(&res);
  EXPECT_RC(posts_env_remove(rt, id, true, &err), 0, &err);
}

/* The least-privilege spec of a lab: one granted capability, limits, no
 * network, read-only root, the shared course volume. */
static void least_privilege(void **state) {
  (void)state;
  const char *const caps[] = {"NET_BIND_SERVICE", NULL};
  posts_env_spec spec = spec_for("locked");
  posts_exec_result res = {0};
  posts_err err = {0};
  char id[POSTS_ENV_ID_MAX], v[64];
  spec.capabilities = caps;
  spec.pids_limit = 48;
  spec.memory_bytes = 96 << 20;
  spec.nano_cpus = 500000000;
  spec.read_only_root = true;
  spec.shared_host_path = shared_dir;
  spec.shared_path = "/course";
  run_env(&spec, id);

  sh(id, "cat /proc/self/status", &res);
  EXPECT_STR(status_field(res.out, "NoNewPrivs", v, sizeof v), "1");
  /* NET_BIND_SERVICE is bit 10: nothing else, effective or bounding. */
  EXPECT_STR(status_field(res.out, "CapEff", v, sizeof v), "0000000000000400");
  EXPECT_STR(status_field(res.out, "CapBnd", v, sizeof v), "0000000000000400");
  posts_exec_result_cleanup(&res);

  /* The limits as the kernel holds them (cgroup v1 or v2). */
  sh(id,
     "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max;"
     "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max;"
     "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null ||"
     " cut -d' ' -f1 /sys/fs/cgroup/cpu.max",
     &res);
  EXPECT_STR(res.out, "48\n100663296\n50000\n");
  posts_exec_result_cleanup(&res);

  /* Loopback only. */
  sh(id, "ls /sys/class/net", &res);
  EXPECT_STR(res.out, "lo\n");
  posts_exec_result_cleanup(&res);

  /* The root refuses a write; the course volume is readable, not writable. */
  sh(id, "touch /written 2>&1; echo rc=$?", &res);
  EXPECT_HAS(res.out, "Read-only file system");
  EXPECT_HAS(res.out, "rc=1");
  posts_exec_result_cleanup(&res);
  sh(id, "cat /course/README; touch /course/x 2>&1; echo rc=$?", &res);
  EXPECT_HAS(res.out, "course material\n");
  EXPECT_HAS(res.out, "Read-only file system");
  EXPECT_HAS(res.out, "rc=1");
  posts_exec_result_cleanup(&res);

  /* Raising privileges fails even for root: setuid binaries are inert, and
   * a capability not granted (CHOWN) is refused. */
  sh(id, "chown 65534 /tmp 2>&1; echo rc=$?", &res);
  EXPECT_HAS(res.out, "rc=1");
  posts_exec_result_cleanup(&res);
  EXPECT_RC(posts_env_remove(rt, id, true, &err), 0, &err);
}

/* A fork loop meets the pids limit inside, and the host and the other
 * environments go on. */
static void fork_loop_stays_inside(void **state) {
  (void)state;
  posts_env_spec spec = spec_for("forky");
  posts_exec_result res = {0};
  posts_err err = {0};
  char id[POSTS_ENV_ID_MAX], calm[POSTS_ENV_ID_MAX];
  spec.pids_limit = 32;
  run_env(&spec, id);
  posts_env_spec calm_spec = spec_for("calm");
  run_env(&calm_spec, calm);

  /* Without the limit this starts 1000 sleepers and prints "all". */
  sh(id, "n=0; while [ $n -lt 1000 ]; do sleep 5 & n=$((n+1)); echo $n; done; echo all", &res);
  assert_int_not_equal(res.exit_code, 0);
  EXPECT_HAS(res.err, "fork");
  assert_null(strstr(res.out, "all"));
  const char *last = res.out + res.out_len;
  while (last > res.out && last[-1] == '\n') last--;
  while (last > res.out && last[-1] != '\n') last--;
  int started = atoi(last);
  if (started < 1 || started >= 32) fail_msg("started %d sleepers, want 1..31", started);
  posts_exec_result_cleanup(&res);

  sh(calm, "echo fine", &res);
  EXPECT_STR(res.out, "fine\n");
  posts_exec_result_cleanup(&res);
  EXPECT_RC(posts_env_remove(rt, id, true, &err), 0, &err);
  EXPECT_RC(posts_env_remove(rt, calm, true, &err), 0, &err);
}

/* A template that allows network gets an interface beside loopback. */
static void network_allowed(void **state) {
  (void)state;
  posts_env_spec spec = spec_for("net");
  posts_exec_result res = {0};
  posts_err err = {0};
  char id[POSTS_ENV_ID_MAX];
  spec.network = true;
  run_env(&spec, id);
  sh(id, "ls /sys/class/net | grep -vx lo | wc -l", &res);
  assert_true(atoi(res.out) >= 1);
  posts_exec_result_cleanup(&res);
  EXPECT_RC(posts_env_remove(rt, id, true, &err), 0, &err);
}

/* A template's user: the processes run as that uid and gid (numbers the
 * image's /etc/passwd does not know), exec included, with no capability
 * left and root's files closed to them. */
static void runs_as_user(void **state) {
  (void)state;
  posts_env_spec spec = spec_for("user");
  posts_exec_result res = {0};
  posts_err err = {0};
  char id[POSTS_ENV_ID_MAX], v[64];
  spec.run_as_user = 1000;
  spec.run_as_group = 1001;
  run_env(&spec, id);
  sh(id, "id -u; id -g; cat /proc/1/status", &res);
  assert_true(strncmp(res.out, "1000\n1001\n", 10) == 0);
  EXPECT_STR(status_field(res.out, "Uid", v, sizeof v), "1000\t1000\t1000\t1000");
  EXPECT_STR(status_field(res.out, "CapEff", v, sizeof v), "0000000000000000");
  posts_exec_result_cleanup(&res);
  sh(id, "touch /etc/x 2>&1; echo rc=$?", &res);
  EXPECT_HAS(res.out, "Permission denied");
  EXPECT_HAS(res.out, "rc=1");
  posts_exec_result_cleanup(&res);
  EXPECT_RC(posts_env_remove(rt, id, true, &err), 0, &err);

  /* A group without a user, or a uid past int32, is refused before the
   * engine is asked. */
  spec.run_as_user = 0;
  EXPECT_RC(posts_env_create(rt, &spec, id, &err), -EINVAL, &err);
  EXPECT_HAS(err.msg, "user");
  spec.run_as_user = 1LL << 31;
  spec.run_as_group = 0;
  EXPECT_RC(posts_env_create(rt, &spec, id, &err), -EINVAL, &err);
}

/* The C compiler lab of seeds/004: gcc builds and runs a program, under the
 * same least privilege as any lab, as a user other than root (as outpost
 * run's demo template runs it). */
static void c_lab_compiles(void **state) {
  (void)state;
  posts_env_spec spec = spec_for("clab");
  posts_exec_result res = {0};
  posts_err err = {0};
  char id[POSTS_ENV_ID_MAX];
  spec.pids_limit = 128;
  spec.memory_bytes = 512 << 20;
  spec.read_only_root = true; /* /tmp stays writable: podman mounts a tmpfs there */
  spec.run_as_user = 1000;
  run_env(&spec, id);
  sh(id,
     "cd /tmp && printf '#include <stdio.h>\\nint main(void) { puts(\"hello, lab\"); return 0; "
     "}\\n'"
     " > hello.c && gcc -Wall -o hello hello.c && ./hello",
     &res);
  if (res.exit_code != 0) fail_msg("exit %d: %s", res.exit_code, res.err);
  EXPECT_STR(res.out, "hello, lab\n");
  posts_exec_result_cleanup(&res);
  EXPECT_RC(posts_env_remove(rt, id, true, &err), 0, &err);
}

/* A claim records an owner the runtime keeps (inspect and list read it
 * back), leaves name and labels as they were, works on running and unnamed
 * environments, and never passes an environment to a second owner. */
static void claim_owner(void **state) {
  (void)state;
  posts_env_spec spec = spec_for("claimed");
  posts_env_spec unnamed = spec_for(NULL);
  posts_env_info info = {0};
  posts_env_infos infos = {0};
  posts_label sel[] = {{SUITE, "runtime_docker"}};
  posts_err err = {0};
  char id[POSTS_ENV_ID_MAX], id2[POSTS_ENV_ID_MAX], name2[128];
  const char *unknown = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

  run_env(&spec, id);
  EXPECT_RC(posts_env_inspect(rt, id, &info, &err), 0, &err);
  EXPECT_STR(info.owner, "");
  posts_env_info_cleanup(&info);

  EXPECT_RC(posts_env_claim(rt, id, "alice", &err), 0, &err);
  EXPECT_RC(posts_env_inspect(rt, id, &info, &err), 0, &err);
  EXPECT_STR(info.owner, "alice");
  EXPECT_STR(info.name, "claimed");
  EXPECT_STR(info.ns, ns);
  EXPECT_STR(posts_env_info_label(&info, SUITE), "runtime_docker");
  EXPECT_STR(posts_env_state_name(info.state), "running"); /* a rename does not stop it */
  posts_env_info_cleanup(&info);

  EXPECT_RC(posts_env_claim(rt, id, "alice", &err), 0, &err); /* again: fine */
  EXPECT_RC(posts_env_claim(rt, id, "bob", &err), -EBUSY, &err);
  EXPECT_HAS(err.msg, "alice");
  EXPECT_RC(posts_env_claim(rt, unknown, "bob", &err), -ENOENT, &err);
  EXPECT_RC(posts_env_claim(rt, id, "Bob", &err), -EINVAL, &err);
  EXPECT_RC(posts_env_claim(rt, id, "a__b", &err), -EINVAL, &err);
  EXPECT_RC(posts_env_claim(rt, id, "", &err), -EINVAL, &err);

  /* An environment whose name the engine picked keeps it too. */
  EXPECT_RC(posts_env_create(rt, &unnamed, id2, &err), 0, &err);
  EXPECT_RC(posts_env_inspect(rt, id2, &info, &err), 0, &err);
  snprintf(name2, sizeof name2, "%s", info.name);
  posts_env_info_cleanup(&info);
  EXPECT_RC(posts_env_claim(rt, id2, "carol.course-1", &err), 0, &err);
  EXPECT_RC(posts_env_inspect(rt, id2, &info, &err), 0, &err);
  EXPECT_STR(info.owner, "carol.course-1");
  EXPECT_STR(info.name, name2);
  posts_env_info_cleanup(&info);

  /* Listing reports owners, so a restarted pool can tell taken from free. */
  EXPECT_RC(posts_env_list(rt, ns, sel, 1, &infos, &err), 0, &err);
  int seen = 0;
  for (size_t i = 0; i < infos.n; i++) {
    if (strcmp(infos.items[i].id, id) == 0) {
      EXPECT_STR(infos.items[i].owner, "alice");
      EXPECT_STR(infos.items[i].name, "claimed");
      seen++;
    } else if (strcmp(infos.items[i].id, id2) == 0) {
      EXPECT_STR(infos.items[i].owner, "carol.course-1");
      seen++;
    }
  }
  posts_env_infos_cleanup(&infos);
  assert_int_equal(seen, 2);
  EXPECT_RC(posts_env_remove(rt, id, true, &err), 0, &err);
  EXPECT_RC(posts_env_claim(rt, id, "alice", &err), -ENOENT, &err);
  EXPECT_RC(posts_env_remove(rt, id2, true, &err), 0, &err);
}

/* --------------------------------------------------------------- main */

static int group_setup(void **state) {
  char path[200];
  FILE *f;
  (void)state;
  snprintf(ns, sizeof ns, "optest-%d", (int)getpid());
  snprintf(shared_dir, sizeof shared_dir, "/tmp/outpost-test-course-%d", (int)getpid());
  snprintf(path, sizeof path, "%s/README", shared_dir);
  if (mkdir(shared_dir, 0755) < 0 && errno != EEXIST) return -1;
  if (!(f = fopen(path, "w"))) return -1;
  fputs("course material\n", f);
  fclose(f);
  remove_envs(false);
  return 0;
}

static int group_teardown(void **state) {
  char path[200];
  (void)state;
  remove_envs(true);
  snprintf(path, sizeof path, "%s/README", shared_dir);
  unlink(path);
  rmdir(shared_dir);
  return 0;
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(lifecycle),
      cmocka_unit_test(errors),
      cmocka_unit_test(exec_details),
      cmocka_unit_test(least_privilege),
      cmocka_unit_test(fork_loop_stays_inside),
      cmocka_unit_test(network_allowed),
      cmocka_unit_test(runs_as_user),
      cmocka_unit_test(c_lab_compiles),
      cmocka_unit_test(claim_owner),
  };
  int rc = podman_runtime_open(argc > 1 ? argv[1] : NULL, &rt);
  if (rc != 0) return rc;
  rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
  posts_runtime_free(rt);
  return rc;
}
