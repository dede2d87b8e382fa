/*
 * test_post_watch.c — a lab template's policy as the node post hands it to
 * the detector (post_watch_policy_json): the lists the template has, none
 * when it forbids nothing, and destinations turned into the detector's
 * ADDRESS:PORT (a bare address or a host-sized prefix: every port), those
 * it cannot express (a wider prefix, not an address) left out and named.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(void) {
  const struct CMUnitTest tests[] = {T(empty_policy), T(lists_kept), T(destinations)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
