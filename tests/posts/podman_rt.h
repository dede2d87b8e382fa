/*
 * podman_rt.h — how the tests that run environments under podman get their
 * runtime: rootful podman's Docker API socket, its service started by the
 * script given on the command line when it is not there or does not answer.
 */
#ifndef OUTPOST_TESTS_POSTS_PODMAN_RT_H
#define OUTPOST_TESTS_POSTS_PODMAN_RT_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "posts/runtime.h"

#define PODMAN_SOCK "/run/podman/podman.sock"

/* Runs `bash SCRIPT start`; whether it succeeded. */
static inline bool podman_service_start(const char *script) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "bash '%s' start", script);
  return system(cmd) == 0;
}

/* The runtime on PODMAN_SOCK in *out: 0; 77 (the test harness's skip) when
 * not root; 1 when podman cannot be used. service_script (may be NULL) is
 * what starts the service when its socket is missing, or left by a dead
 * service. */
static inline int podman_runtime_open(const char *service_script, posts_runtime **out) {
  char ebuf[256];
  posts_err err = {0};
  if (geteuid() != 0) {
    printf("SKIP: not root; these tests run environments under rootful podman\n");
    return 77;
  }
  if (service_script && access(PODMAN_SOCK, F_OK) != 0 && !podman_service_start(service_script)) {
    fprintf(stderr, "the podman service did not start (scripts/setup_podman.sh run?)\n");
    return 1;
  }
  if (!(*out = posts_runtime_docker_new(PODMAN_SOCK, ebuf, sizeof ebuf))) {
    fprintf(stderr, "posts_runtime_docker_new: %s\n", ebuf);
    return 1;
  }
  if (posts_runtime_ping(*out, &err) < 0 && service_script &&
      (!podman_service_start(service_script) || posts_runtime_ping(*out, &err) < 0)) {
    fprintf(stderr, "no podman service on %s: %s\n", PODMAN_SOCK, err.msg);
    posts_runtime_free(*out);
    *out = NULL;
    return 1;
  }
  return 0;
}

#endif
