/*
 * test_template.c — lab templates (posts/template.h) read from YAML and
 * JSON: a full template and its defaults, quantities and durations, the
 * spec handed to the runtime, and every refusal with the field's path and
 * the reason, including unknown fields at each level.
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

#include "core/resources.h"
#include "posts/template.h"

#include "test_util.h"

#define HEAD "apiVersion: outpost.dev/v1\nkind: LabTemplate\nmetadata: {name: c-lab}\n"
/* A template whose spec is image plus the given lines (each indented). */
#define SPEC(lines) HEAD "spec:\n  image: localhost/outpost-lab-c:latest\n" lines

#define GIB (1LL << 30)
#define MIB (1LL << 20)

/* Parses text (one resource) as a template; NULL with *err on refusal. */
static pool_template *load(const char *text, pool_template_err *err) {
  cJSON *all = NULL;
  res_err rerr;
  int rc = res_parse(text, strlen(text), &all, &rerr);
  if (rc != 0) fail_msg("%s%sres_parse: %s (%s)\n%s", WHERE, errname(rc), rerr.msg, text);
  EXPECT_INT(cJSON_GetArraySize(all), 1);
  memset(err, 0x55, sizeof *err); /* must be overwritten on refusal */
  pool_template *t = pool_template_parse(cJSON_GetArrayItem(all, 0), err);
  cJSON_Delete(all); /* the template keeps nothing of the tree */
  return t;
}

static pool_template *load_ok(const char *text) {
  pool_template_err err;
  pool_template *t = load(text, &err);
  if (!t) fail_msg("%s%srefused at \"%s\": %s\n%s", WHERE, err.path, err.msg, text);
  return t;
}

static size_t count(char **list) {
  size_t n = 0;
  while (list && list[n]) n++;
  return n;
}

/* ------------------------------------------------------------- accepted */

static void full_template(void **state) {
  (void)state;
  pool_template *t =
      load_ok(SPEC("  command: [sleep, infinity]\n"
                   "  limits: {pids: 128, memory: 256Mi, cpu: 500m}\n"
                   "  capabilities: [NET_BIND_SERVICE, CHOWN]\n"
                   "  network: true\n"
                   "  readOnlyRoot: true\n"
                   "  runAsUser: 1000\n"
                   "  runAsGroup: 100\n"
                   "  sharedVolume: {hostPath: /srv/course, path: /course}\n"
                   "  idleTimeout: PT1M30S\n"
                   "  pool: {min: 2, max: 5, keepAlive: PT2M}\n"
                   "  policy:\n"
                   "    forbiddenBinaries: [/usr/bin/nc, /usr/bin/ssh]\n"
                   "    forbiddenPaths: [/etc/shadow]\n"
                   "    forbiddenDestinations: [169.254.169.254/32, '10.0.0.0/8']\n"));
  EXPECT_STR(t->name, "c-lab");
  EXPECT_STR(t->image, "localhost/outpost-lab-c:latest");
  EXPECT_INT(count(t->command), 2);
  EXPECT_STR(t->command[1], "infinity");
  EXPECT_INT(t->pids_limit, 128);
  EXPECT_INT(t->memory_bytes, 256 * MIB);
  EXPECT_INT(t->nano_cpus, 500000000);
  EXPECT_INT(count(t->capabilities), 2);
  EXPECT_STR(t->capabilities[1], "CHOWN");
  EXPECT_TRUE(t->network);
  EXPECT_TRUE(t->read_only_root);
  EXPECT_INT(t->run_as_user, 1000);
  EXPECT_INT(t->run_as_group, 100);
  EXPECT_STR(t->shared_host_path, "/srv/course");
  EXPECT_STR(t->shared_path, "/course");
  EXPECT_INT(t->idle_timeout_ms, 90000);
  EXPECT_INT(t->pool_min, 2);
  EXPECT_INT(t->pool_max, 5);
  EXPECT_INT(t->keepalive_ms, 120000);
  EXPECT_INT(count(t->forbidden_binaries), 2);
  EXPECT_STR(t->forbidden_paths[0], "/etc/shadow");
  EXPECT_STR(t->forbidden_destinations[1], "10.0.0.0/8");

  /* The spec the runtime gets. */
  posts_label labels[] = {{"k", "v"}};
  posts_env_spec spec;
  pool_template_spec(t, "ns-a", labels, 1, &spec);
  EXPECT_STR(spec.ns, "ns-a");
  EXPECT_TRUE(spec.name == NULL);
  EXPECT_STR(spec.image, t->image);
  EXPECT_STR(spec.command[0], "sleep");
  EXPECT_STR(spec.capabilities[0], "NET_BIND_SERVICE");
  EXPECT_INT(spec.memory_bytes, 256 * MIB);
  EXPECT_INT(spec.nano_cpus, 500000000);
  EXPECT_INT(spec.pids_limit, 128);
  EXPECT_TRUE(spec.network && spec.read_only_root);
  EXPECT_INT(spec.run_as_user, 1000);
  EXPECT_INT(spec.run_as_group, 100);
  EXPECT_STR(spec.shared_path, "/course");
  EXPECT_INT(spec.n_labels, 1);
  pool_template_free(t);
}

static void defaults(void **state) {
  (void)state;
  pool_template *t = load_ok(SPEC(""));
  EXPECT_TRUE(t->command == NULL);
  EXPECT_INT(t->pids_limit, 0);
  EXPECT_INT(t->memory_bytes, 0);
  EXPECT_INT(t->nano_cpus, 0);
  EXPECT_INT(count(t->capabilities), 0);
  EXPECT_TRUE(t->capabilities != NULL);
  EXPECT_TRUE(!t->network && !t->read_only_root);
  EXPECT_INT(t->run_as_user, 0); /* as the image says */
  EXPECT_INT(t->run_as_group, 0);
  EXPECT_TRUE(t->shared_host_path == NULL && t->shared_path == NULL);
  EXPECT_INT(t->idle_timeout_ms, POOL_TEMPLATE_IDLE_DEFAULT_MS);
  EXPECT_INT(t->pool_min, 0);
  EXPECT_INT(t->pool_max, POOL_TEMPLATE_MAX_DEFAULT);
  EXPECT_INT(t->keepalive_ms, 0);
  EXPECT_TRUE(t->forbidden_binaries && !t->forbidden_binaries[0]);
  EXPECT_TRUE(t->forbidden_paths && !t->forbidden_paths[0]);
  EXPECT_TRUE(t->forbidden_destinations && !t->forbidden_destinations[0]);
  posts_env_spec spec;
  pool_template_spec(t, "ns", NULL, 0, &spec);
  EXPECT_TRUE(spec.capabilities == NULL && spec.command == NULL);
  pool_template_free(t);
  pool_template_free(NULL);
  /* max 0: never kept warm, every claim a cold start. */
  t = load_ok(SPEC("  pool: {min: 0, max: 0}\n"));
  EXPECT_INT(t->pool_max, 0);
  pool_template_free(t);
}

/* JSON, numbers for quantities, and metadata labels and annotations. */
static void json_and_numbers(void **state) {
  (void)state;
  pool_template *t = load_ok(
      "{\"apiVersion\": \"outpost.dev/v1\", \"kind\": \"LabTemplate\", \"metadata\": {\"name\": "
      "\"py\", \"labels\": {\"a\": \"b\"}, \"annotations\": {\"x\": \"y\"}}, \"spec\": "
      "{\"image\": \"python:3\", \"limits\": {\"memory\": 268435456, \"cpu\": 1.5}, "
      "\"pool\": {\"max\": 1}}}");
  EXPECT_STR(t->name, "py");
  EXPECT_INT(t->memory_bytes, 256 * MIB);
  EXPECT_INT(t->nano_cpus, 1500000000);
  EXPECT_INT(t->pool_max, 1);
  pool_template_free(t);
}

static void quantities(void **state) {
  (void)state;
  static const struct {
    const char *s;
    int64_t scale;
    bool milli;
    int rc;
    int64_t want;
  } cases[] = {
      {"256Mi", 1, false, 0, 256 * MIB},
      {"1Gi", 1, false, 0, GIB},
      {"1.5Gi", 1, false, 0, GIB + GIB / 2},
      {"1G", 1, false, 0, 1000000000},
      {"128974848", 1, false, 0, 128974848},
      {"129e6", 1, false, -EINVAL, 0}, /* exponents: not taken */
      {"0.5Ki", 1, false, 0, 512},
      {"100k", 1, false, 0, 100000},
      {"1Ti", 1, false, 0, 1LL << 40},
      {"7Ei", 1, false, 0, 7LL << 60},
      {"8Ei", 1, false, -EINVAL, 0}, /* past int64_t */
      {"99999999999999999999", 1, false, -EINVAL, 0},
      {"1m", 1, false, -EINVAL, 0}, /* no milli-bytes */
      {"500m", 1000000000, true, 0, 500000000},
      {"1", 1000000000, true, 0, 1000000000},
      {"0.25", 1000000000, true, 0, 250000000},
      {"2.0005", 1000000000, true, 0, 2000500000},
      {"1.5m", 1000000000, true, 0, 1500000},
      {".5", 1000000000, true, 0, 500000000},
      {"10E", 1000000000, true, -EINVAL, 0},
      {"", 1, false, -EINVAL, 0},
      {".", 1, false, -EINVAL, 0},
      {"-1", 1, false, -EINVAL, 0},
      {"+1", 1, false, -EINVAL, 0},
      {"1 Gi", 1, false, -EINVAL, 0},
      {"1gi", 1, false, -EINVAL, 0},
      {"1Mb", 1, false, -EINVAL, 0},
      {"0x10", 1, false, -EINVAL, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t got = -42;
    CTX("quantity \"%s\"", cases[i].s);
    EXPECT_RC(pool_quantity_parse(cases[i].s, cases[i].scale, cases[i].milli, &got), cases[i].rc);
    if (cases[i].rc == 0) EXPECT_INT(got, cases[i].want);
  }
}

static void durations(void **state) {
  (void)state;
  static const struct {
    const char *s;
    int rc;
    int64_t want;
  } cases[] = {
      {"PT2S", 0, 2000},       {"PT0.5S", 0, 500},
      {"PT1M30S", 0, 90000},   {"PT30M", 0, 1800000},
      {"P1DT2H", 0, 93600000}, {"P1W", 0, 604800000},
      {"PT1,5S", 0, 1500},     {"PT0.0004S", 0, 0},
      {"PT1.5M", 0, 90000},    {"PT", -EINVAL, 0},
      {"P", -EINVAL, 0},       {"", -EINVAL, 0},
      {"2S", -EINVAL, 0},      {"PT1.5M30S", -EINVAL, 0},
      {"PT30S1M", -EINVAL, 0}, {"P1M", -EINVAL, 0},
      {"P1Y", -EINVAL, 0},     {"PT-1S", -EINVAL, 0},
      {"PT1S1S", -EINVAL, 0},  {"PT1e3S", -EINVAL, 0},
      {"P1T", -EINVAL, 0},     {"PT99999999999999999H", -EINVAL, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t got = -42;
    CTX("duration \"%s\"", cases[i].s);
    EXPECT_RC(res_duration_ms(cases[i].s, &got), cases[i].rc);
    EXPECT_INT(got, cases[i].rc == 0 ? cases[i].want : -42);
  }
}

/* ------------------------------------------------------------- refused */

static void refusals(void **state) {
  (void)state;
  static const struct {
    const char *text, *path, *what;
  } cases[] = {
      {"apiVersion: outpost.dev/v2\nkind: LabTemplate\nmetadata: {name: a}\nspec: {image: x}\n",
       "apiVersion", "outpost.dev/v1"},
      {"apiVersion: outpost.dev/v1\nkind: Trigger\nmetadata: {name: a}\nspec: {image: x}\n", "kind",
       "LabTemplate"},
      {"kind: LabTemplate\nmetadata: {name: a}\nspec: {image: x}\n", "apiVersion",
       "outpost.dev/v1"},
      {HEAD "spec: {image: x}\nstatus: {}\n", "status", "unknown field"},
      {"apiVersion: outpost.dev/v1\nkind: LabTemplate\nspec: {image: x}\n", "metadata", "missing"},
      {"apiVersion: outpost.dev/v1\nkind: LabTemplate\nmetadata: {name: A_b}\nspec: {image: x}\n",
       "metadata.name", "DNS label"},
      {"apiVersion: outpost.dev/v1\nkind: LabTemplate\nmetadata: {name: "
       "a23456789012345678901234567890123456789012345678901234}\nspec: {image: x}\n",
       "metadata.name", "at most 52"},
      {"apiVersion: outpost.dev/v1\nkind: LabTemplate\nmetadata: {name: a, namespace: b}\n"
       "spec: {image: x}\n",
       "metadata.namespace", "unknown field"},
      {HEAD, "spec", "missing"},
      {HEAD "spec: {command: [a]}\n", "spec.image", "missing"},
      {HEAD "spec: {image: 'a b'}\n", "spec.image", "spaces"},
      {SPEC("  imagePullPolicy: Always\n"), "spec.imagePullPolicy", "unknown field"},
      {SPEC("  readonlyRoot: true\n"), "spec.readonlyRoot", "unknown field"},
      {SPEC("  command: []\n"), "spec.command", "must not be empty"},
      {SPEC("  command: sleep\n"), "spec.command", "list"},
      {SPEC("  command: [sleep, 1]\n"), "spec.command.1", "string"},
      {SPEC("  limits: {pids: 0}\n"), "spec.limits.pids", "whole number"},
      {SPEC("  limits: {pids: 1.5}\n"), "spec.limits.pids", "whole number"},
      {SPEC("  limits: {memory: 256MB}\n"), "spec.limits.memory", "256Mi"},
      {SPEC("  limits: {memory: 1Mi}\n"), "spec.limits.memory", "at least 6Mi"},
      {SPEC("  limits: {memory: 100.5}\n"), "spec.limits.memory", "quantity"},
      {SPEC("  limits: {cpu: half}\n"), "spec.limits.cpu", "500m"},
      {SPEC("  limits: {cpu: 0m}\n"), "spec.limits.cpu", "at least 1m"},
      {SPEC("  limits: {disk: 1Gi}\n"), "spec.limits.disk", "unknown field"},
      {SPEC("  limits: 5\n"), "spec.limits", "mapping"},
      {SPEC("  capabilities: [CAP_NET_ADMIN]\n"), "spec.capabilities.0", "CAP_"},
      {SPEC("  capabilities: [net_admin]\n"), "spec.capabilities.0", "capability"},
      {SPEC("  network: yes\n"), "spec.network", "true or false"},
      {SPEC("  readOnlyRoot: 1\n"), "spec.readOnlyRoot", "true or false"},
      {SPEC("  runAsUser: 0\n"), "spec.runAsUser", "from 1 to 2147483647"},
      {SPEC("  runAsUser: 2147483648\n"), "spec.runAsUser", "whole number"},
      {SPEC("  runAsUser: '1000'\n"), "spec.runAsUser", "whole number"},
      {SPEC("  runAsUser: 1000.5\n"), "spec.runAsUser", "whole number"},
      {SPEC("  runAsGroup: 100\n"), "spec.runAsGroup", "needs spec.runAsUser"},
      {SPEC("  runAsUser: 1000\n  runAsGroup: 0\n"), "spec.runAsGroup", "from 1"},
      {SPEC("  sharedVolume: {hostPath: srv, path: /c}\n"), "spec.sharedVolume.hostPath",
       "absolute"},
      {SPEC("  sharedVolume: {hostPath: /srv}\n"), "spec.sharedVolume.path", "absolute"},
      {SPEC("  sharedVolume: {hostPath: /srv, path: /}\n"), "spec.sharedVolume.path", "other"},
      {SPEC("  sharedVolume: {hostPath: /srv, path: /c, readOnly: false}\n"),
       "spec.sharedVolume.readOnly", "unknown field"},
      {SPEC("  idleTimeout: 30m\n"), "spec.idleTimeout", "ISO-8601"},
      {SPEC("  idleTimeout: PT0S\n"), "spec.idleTimeout", "above zero"},
      {SPEC("  idleTimeout: 30\n"), "spec.idleTimeout", "ISO-8601"},
      {SPEC("  pool: {min: 3, max: 2}\n"), "spec.pool.min", "not be more than"},
      {SPEC("  pool: {min: -1}\n"), "spec.pool.min", "whole number"},
      {SPEC("  pool: {max: -1}\n"), "spec.pool.max", "from 0"},
      {SPEC("  pool: {max: 1001}\n"), "spec.pool.max", "to 1000"},
      {SPEC("  pool: {size: 1}\n"), "spec.pool.size", "unknown field"},
      {SPEC("  pool: {keepAlive: 10m}\n"), "spec.pool.keepAlive", "ISO-8601"},
      {SPEC("  pool: {keepAlive: PT0S}\n"), "spec.pool.keepAlive", "above zero"},
      {SPEC("  policy: {forbiddenBinaries: [nc]}\n"), "spec.policy.forbiddenBinaries.0",
       "absolute"},
      {SPEC("  policy: {forbiddenPaths: [/a, etc]}\n"), "spec.policy.forbiddenPaths.1", "absolute"},
      {SPEC("  policy: {forbiddenDestinations: ['a b']}\n"), "spec.policy.forbiddenDestinations.0",
       "without spaces"},
      {SPEC("  policy: {forbiddenSyscalls: [ptrace]}\n"), "spec.policy.forbiddenSyscalls",
       "unknown field"},
      {SPEC("  policy: [a]\n"), "spec.policy", "mapping"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    pool_template_err err;
    CTX("case %zu (%s)", i, cases[i].path);
    pool_template *t = load(cases[i].text, &err);
    if (t) {
      pool_template_free(t);
      fail_msg("%s%saccepted, want refused at \"%s\"\n%s", WHERE, cases[i].path, cases[i].text);
    }
    EXPECT_STR(err.path, cases[i].path);
    if (!memchr(err.msg, '\0', sizeof err.msg) || !strstr(err.msg, cases[i].what))
      fail_msg("%s%smessage \"%.*s\" does not say \"%s\"", WHERE, (int)sizeof err.msg, err.msg,
               cases[i].what);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(full_template), T(defaults), T(json_and_numbers), T(quantities), T(durations), T(refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
