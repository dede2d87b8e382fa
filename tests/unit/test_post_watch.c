/*
 * test_post_watch.c — a lab template's policy as the node post hands it to
 * the detector (post_watch_policy_json): the lists the template has, none
 * when it forbids nothing, and destinations turned into the detector's
 * ADDRESS:PORT (a bare address or a host-sized prefix: every port), those
 * it cannot express (a wider prefix, not an address) left out and named.
 * And a pod's container's cgroup found by name (post_watch_pod_cgroup) in
 * a tree of plain directories laid out as the kubelet's two cgroup drivers
 * and the container runtimes name them (a stand-in for the cgroup2 file
 * system, which the finder only lists; tests/k8s/test_node_post_detector_k8s
 * runs it on the real one).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "posts/post_int.h"

#include "test_util.h"

/* A template with only the policy's lists set (NULL-terminated). */
static pool_template tpl(char **bins, char **paths, char **dests) {
  static char *none[] = {NULL};
  pool_template t = {.name = "c-lab"};
  t.forbidden_binaries = bins ? bins : none;
  t.forbidden_paths = paths ? paths : none;
  t.forbidden_destinations = dests ? dests : none;
  return t;
}

static void empty_policy(void **state) {
  (void)state;
  pool_template t = tpl(NULL, NULL, NULL);
  char why[128] = "x";
  EXPECT_TRUE(post_watch_policy_json(&t, why, sizeof why) == NULL);
  EXPECT_STR(why, "");
}

static void lists_kept(void **state) {
  (void)state;
  char *bins[] = {"/usr/bin/perl", "/usr/bin/nc", NULL}, *paths[] = {"/etc/shadow", NULL};
  pool_template t = tpl(bins, paths, NULL);
  char *json = post_watch_policy_json(&t, NULL, 0);
  EXPECT_STR(json, "{\"forbiddenBinaries\":[\"/usr/bin/perl\",\"/usr/bin/nc\"],"
                   "\"forbiddenPaths\":[\"/etc/shadow\"]}");
  free(json);
}

static void destinations(void **state) {
  (void)state;
  char *dests[] = {
      "169.254.169.254/32", "10.0.0.1",       "1.2.3.4:22",    "[::1]:80", "fd00::1/128",
      "10.0.0.0/8",         "example.com:80", "1.2.3.4:99999", "::1",      NULL};
  pool_template t = tpl(NULL, NULL, dests);
  char why[256];
  char *json = post_watch_policy_json(&t, why, sizeof why);
  EXPECT_STR(json, "{\"forbiddenDestinations\":[\"169.254.169.254:0\",\"10.0.0.1:0\","
                   "\"1.2.3.4:22\",\"[::1]:80\",\"[fd00::1]:0\",\"[::1]:0\"]}");
  EXPECT_STR(why, "10.0.0.0/8, example.com:80, 1.2.3.4:99999");
  free(json);
  /* Nothing expressible: no policy at all, and why says so. */
  char *wide[] = {"10.0.0.0/8", NULL};
  t = tpl(NULL, NULL, wide);
  EXPECT_TRUE(post_watch_policy_json(&t, why, sizeof why) == NULL);
  EXPECT_STR(why, "10.0.0.0/8");
}

/* ------------------------------------------------------------- pod cgroups */

#define UID  "5e0c7e1a-0b3f-4c55-9d1e-2f6a7b8c9d01"
#define UID_ "5e0c7e1a_0b3f_4c55_9d1e_2f6a7b8c9d01"
#define CID  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char root[64];

/* mkdir -p root/rel. */
static void mkdirs(const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  for (char *s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
    *s = '\0';
    mkdir(p, 0755);
    *s = '/';
  }
  if (mkdir(p, 0755) && errno != EEXIST) fail_msg("mkdir %s: %s", p, strerror(errno));
}

static int new_root(void **state) {
  (void)state;
  snprintf(root, sizeof root, "/tmp/outpost-podcg-XXXXXX");
  if (!mkdtemp(root)) return -1;
  /* What else a node's tree holds: services, other pods, a pause container. */
  mkdirs("system.slice/containerd.service");
  mkdirs("user.slice/user-0.slice/session-1.scope");
  mkdirs("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_
         "0.slice/cri-containerd-" CID ".scope");
  return reset_ctx(state);
}

static int rm_root(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", root);
  return system(cmd);
}

/* post_watch_pod_cgroup's answer, and its path under root ("" if none). */
static int find(const char *uid, const char *cid, char *rel, size_t size) {
  char out[4096] = "";
  int rc = post_watch_pod_cgroup(root, uid, cid, out, sizeof out);
  size_t rl = strlen(root);
  snprintf(rel, size, "%s", rc == 0 && !strncmp(out, root, rl) ? out + rl : rc ? "" : out);
  return rc;
}

static void pod_layouts(void **state) {
  (void)state;
  static const struct {
    const char *what, *dir, *found;
  } cases[] = {
      {"systemd driver, Guaranteed, containerd",
       "kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-" CID ".scope", NULL},
      {"systemd driver, Burstable, CRI-O beside its conmon",
       "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_
       ".slice/crio-conmon-" CID ".scope",
       "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_ ".slice/crio-" CID
       ".scope"},
      {"systemd driver, Docker", "kubepods.slice/kubepods-pod" UID_ ".slice/docker-" CID ".scope",
       NULL},
      {"cgroupfs driver, BestEffort, containerd", "kubepods/besteffort/pod" UID "/" CID, NULL},
      {"cgroupfs driver, Guaranteed, CRI-O", "kubepods/pod" UID "/crio-" CID, NULL},
      {"kind: a kubelet.slice under the node container's own cgroup",
       "system.slice/docker-1234.scope/kubelet.slice/kubelet-kubepods.slice/"
       "kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" UID_
       ".slice/cri-containerd-" CID ".scope",
       NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char rel[1024], want[1024];
    CTX("%s", cases[i].what);
    new_root(NULL);
    mkdirs(cases[i].dir);
    if (cases[i].found) mkdirs(cases[i].found);
    /* The pod's pause container beside the lab's. */
    char pause[1024];
    snprintf(pause, sizeof pause, "%s", cases[i].found ? cases[i].found : cases[i].dir);
    strcpy(strrchr(pause, '/') + 1, "cri-containerd-fedcba9876543210.scope");
    mkdirs(pause);
    snprintf(want, sizeof want, "/%s", cases[i].found ? cases[i].found : cases[i].dir);
    EXPECT_RC(find(UID, CID, rel, sizeof rel), 0);
    EXPECT_STR(rel, want);
    rm_root(NULL);
  }
}

static void pod_not_found(void **state) {
  (void)state;
  char rel[1024];
  CTX("no such pod (a pod whose uid only starts the same is another pod)");
  mkdirs("kubepods/besteffort/pod" UID "0/" CID);
  EXPECT_RC(find(UID, CID, rel, sizeof rel), -ENOENT);
  EXPECT_STR(rel, "");
  CTX("the pod without that container (not started yet): only its pause container");
  mkdirs("kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-fedcba98.scope");
  EXPECT_RC(find(UID, CID, rel, sizeof rel), -ENOENT);
  CTX("an id that only starts the container's");
  mkdirs("kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-" CID "0.scope");
  EXPECT_RC(find(UID, CID, rel, sizeof rel), -ENOENT);
  EXPECT_RC(find(UID, "0123456789abcdef", rel, sizeof rel), -ENOENT);
  CTX("and then it starts");
  mkdirs("kubepods.slice/kubepods-pod" UID_ ".slice/" CID);
  EXPECT_RC(find(UID, CID, rel, sizeof rel), 0);
  EXPECT_STR(rel, "/kubepods.slice/kubepods-pod" UID_ ".slice/" CID);
}

static void pod_too_deep(void **state) {
  (void)state;
  char rel[1024];
  CTX("seven levels down is found, eight is not");
  mkdirs("a/b/c/d/e/f/pod" UID "/" CID);
  EXPECT_RC(find(UID, CID, rel, sizeof rel), 0);
  rm_root(NULL);
  new_root(NULL);
  mkdirs("a/b/c/d/e/f/g/pod" UID "/" CID);
  EXPECT_RC(find(UID, CID, rel, sizeof rel), -ENOENT);
}

static void pod_refused(void **state) {
  (void)state;
  char rel[1024], out[8];
  static const char *const uids[] = {"", "../" UID, UID "/x", "pod*", UID UID};
  static const char *const cids[] = {"", "../" CID, CID "/..", "cri-containerd-" CID, "*"};
  for (size_t i = 0; i < sizeof uids / sizeof *uids; i++) {
    CTX("uid '%s'", uids[i]);
    EXPECT_RC(find(uids[i], CID, rel, sizeof rel), -EINVAL);
  }
  for (size_t i = 0; i < sizeof cids / sizeof *cids; i++) {
    CTX("container id '%s'", cids[i]);
    EXPECT_RC(find(UID, cids[i], rel, sizeof rel), -EINVAL);
  }
  CTX("no such root");
  EXPECT_RC(post_watch_pod_cgroup("/nonexistent-outpost", UID, CID, rel, sizeof rel), -ENOENT);
  CTX("a root longer than out");
  EXPECT_RC(post_watch_pod_cgroup(root, UID, CID, out, sizeof out), -ENAMETOOLONG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(empty_policy),
      T(lists_kept),
      T(destinations),
      cmocka_unit_test_setup_teardown(pod_layouts, reset_ctx, NULL),
      cmocka_unit_test_setup_teardown(pod_not_found, new_root, rm_root),
      cmocka_unit_test_setup_teardown(pod_too_deep, new_root, rm_root),
      cmocka_unit_test_setup_teardown(pod_refused, new_root, rm_root),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
