/*
 * test_detector_event.c — the detector's user side without a kernel: records
 * written as bpf/detector.bpf.c writes them are decoded (cwd put back root
 * first, arguments counted and ended, exit statuses split, addresses as text,
 * boot clock to wall clock), and decoded events become CloudEvents with the
 * catalogue's type, the source, subject, time to the nanosecond, the
 * extensions and JSON data, also when the process passed bytes that are not
 * UTF-8. Label unit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <linux/types.h>
#include <sys/socket.h>

#include "bpf/detector.h"
#include "detector/detector.h"
#include "tests/unit/test_util.h"

static const detector_env env = {
    .node = "node-1", .environment = "env-a", .tenant = "t1", .ns = "course-x"};

static void hdr(struct det_hdr *h, uint32_t kind, int32_t nr) {
  memset(h, 0, sizeof *h);
  h->ts_boot_ns = 5500000000ull; /* 5.5 s after boot */
  h->cgroup_id = 1234;
  h->kind = kind;
  h->env_id = 9;
  h->pid = 100;
  h->tid = 101;
  h->ppid = 1;
  h->uid = 1000;
  h->gid = 1000;
  h->nr = nr;
  memcpy(h->comm, "bash", 5);
}

/* A decoded event of the given record, failing the test when it is refused. */
static detector_event decoded(const void *rec, size_t len) {
  detector_event e;
  EXPECT_RC(detector_event_decode(rec, len, 0, &e), 0);
  return e;
}

static void exec_rec(struct det_exec *k, const char *cwd, size_t cwd_len, uint16_t flags) {
  memset(k, 0, sizeof *k);
  hdr(&k->h, DET_EV_EXEC, -1);
  k->h.flags = flags;
  strcpy(k->binary, "/usr/bin/id");
  memcpy(k->args, "id\0-u\0", 6);
  k->args_len = 6;
  memcpy(k->cwd, cwd, cwd_len);
  k->cwd_len = (uint32_t)cwd_len;
}

static void test_decode_exec(void **state) {
  static struct det_exec k;
  exec_rec(&k, "user\0home\0", 10, 0);
  detector_event e = decoded(&k, sizeof k);
  EXPECT_INT(e.kind, DETECTOR_EXEC);
  EXPECT_STR(e.u.exec.binary, "/usr/bin/id");
  EXPECT_INT(e.u.exec.argc, 2);
  EXPECT_MEM(e.u.exec.args, e.u.exec.args_len, "id\0-u", 6);
  EXPECT_STR(e.u.exec.cwd, "/home/user");
  EXPECT_STR(e.comm, "bash");
  EXPECT_INT(e.pid, 100);
  EXPECT_INT(e.env_id, 9);
  EXPECT_INT(e.cgroup_id, 1234);
  EXPECT_STR(e.sysname, "");

  exec_rec(&k, "", 0, 0); /* cwd is the root */
  e = decoded(&k, sizeof k);
  EXPECT_STR(e.u.exec.cwd, "/");
  exec_rec(&k, "c\0b\0", 4, DET_F_TRUNC_CWD); /* the walk stopped below the root */
  e = decoded(&k, sizeof k);
  EXPECT_STR(e.u.exec.cwd, "b/c");
  EXPECT_TRUE(e.flags & DETECTOR_F_TRUNC_CWD);
}

static void test_decode_exec_cut_args(void **state) {
  static struct det_exec k;
  exec_rec(&k, "", 0, DET_F_TRUNC_ARGS);
  memset(k.args, 'x', sizeof k.args);
  k.args[3] = '\0';
  k.args_len = sizeof k.args;
  detector_event e = decoded(&k, sizeof k);
  EXPECT_INT(e.u.exec.args_len, DETECTOR_ARGS_MAX);
  EXPECT_INT(e.u.exec.args[DETECTOR_ARGS_MAX - 1], 0);
  EXPECT_INT(e.u.exec.argc, 2);
  EXPECT_TRUE(e.flags & DETECTOR_F_TRUNC_ARGS);
}

static void test_decode_exit_fork_connect(void **state) {
  struct det_exit x;
  struct det_fork f;
  struct det_connect c;

  hdr(&x.h, DET_EV_EXIT, -1);
  x.status = 7 << 8;
  detector_event e = decoded(&x, sizeof x);
  EXPECT_INT(e.u.exit.code, 7);
  EXPECT_INT(e.u.exit.signal, 0);
  x.status = 9;
  e = decoded(&x, sizeof x);
  EXPECT_INT(e.u.exit.code, 0);
  EXPECT_INT(e.u.exit.signal, 9);

  hdr(&f.h, DET_EV_FORK, -1);
  f.child_pid = 555;
  e = decoded(&f, sizeof f);
  EXPECT_INT(e.u.fork.child_pid, 555);

  memset(&c, 0, sizeof c);
  hdr(&c.h, DET_EV_CONNECT, 42);
  c.family = 2;
  c.port = 8080;
  memcpy(c.addr, "\x0a\x00\x00\x01", 4);
  e = decoded(&c, sizeof c);
  EXPECT_INT(e.u.connect.family, AF_INET);
  EXPECT_STR(e.u.connect.text, "10.0.0.1");
  EXPECT_STR(e.sysname, "connect");
  c.family = 10;
  memset(c.addr, 0, 16);
  c.addr[15] = 1;
  e = decoded(&c, sizeof c);
  EXPECT_INT(e.u.connect.family, AF_INET6);
  EXPECT_STR(e.u.connect.text, "::1");
}

static void test_decode_refuses(void **state) {
  struct det_exit x;
  detector_event e;
  hdr(&x.h, DET_EV_EXIT, -1);
  EXPECT_RC(detector_event_decode(&x, sizeof x.h - 1, 0, &e), -EINVAL);
  EXPECT_RC(detector_event_decode(&x, sizeof x - 1, 0, &e), -EINVAL);
  x.h.kind = DET_EV_MAX;
  EXPECT_RC(detector_event_decode(&x, sizeof x, 0, &e), -EINVAL);
  x.h.kind = 0;
  EXPECT_RC(detector_event_decode(&x, sizeof x, 0, &e), -EINVAL);
}

static void test_decode_time(void **state) {
  struct det_fork f;
  detector_event e;
  hdr(&f.h, DET_EV_FORK, -1);
  /* 5.5 s after a boot at 1700000000 s minus 0.4999999 s. */
  EXPECT_RC(detector_event_decode(&f, sizeof f, 1700000000000000000ll - 499999900ll, &e), 0);
  EXPECT_INT(e.time_sec, 1700000005);
  EXPECT_INT(e.time_nsec, 100);
  EXPECT_INT(e.boot_ns, 5500000000ull);
}

/* The JSON data of ev, parsed. */
static cJSON *data_of(const ce_event *ev) {
  size_t len;
  const uint8_t *p = ce_event_data(ev, &len);
  assert_non_null(p);
  cJSON *j = cJSON_ParseWithLength((const char *)p, len);
  if (!j) fail_msg("data is not JSON: %.*s", (int)len, (const char *)p);
  return j;
}

static void test_exec_cloudevent(void **state) {
  static struct det_exec k;
  ce_event *ev;
  ce_err err;
  exec_rec(&k, "user\0home\0", 10, 0);
  detector_event e;
  EXPECT_RC(detector_event_decode(&k, sizeof k, 1700000000000000000ll - 5500000000ll + 123, &e), 0);
  EXPECT_RC(detector_event_to_ce(&e, &env, &ev, &err), 0);
  EXPECT_STR(ce_event_get_str(ev, "specversion"), "1.0");
  EXPECT_STR(ce_event_get_str(ev, "type"), "dev.outpost.process.exec");
  EXPECT_STR(ce_event_get_str(ev, "source"), "/nodes/node-1/environments/env-a");
  EXPECT_STR(ce_event_get_str(ev, "subject"), "/usr/bin/id");
  EXPECT_STR(ce_event_get_str(ev, "time"), "2023-11-14T22:13:20.000000123Z");
  EXPECT_STR(ce_event_get_str(ev, "id"), "1700000000.000000123-101-exec");
  EXPECT_STR(ce_event_get_str(ev, "datacontenttype"), "application/json");
  EXPECT_STR(ce_event_get_str(ev, "tenant"), "t1");
  EXPECT_STR(ce_event_get_str(ev, "namespace"), "course-x");
  EXPECT_STR(ce_event_get_str(ev, "environment"), "env-a");
  EXPECT_STR(ce_event_get_str(ev, "node"), "node-1");
  EXPECT_STR(ce_event_get_str(ev, "partitionkey"), "env-a");
  EXPECT_STR(ce_event_get_str(ev, "severity"), "info");
  EXPECT_STR(ce_event_get_str(ev, "action"), "none");
  EXPECT_RC(ce_event_validate(ev, &err), 0);
  cJSON *j = data_of(ev);
  EXPECT_STR(cJSON_GetObjectItem(j, "binary")->valuestring, "/usr/bin/id");
  EXPECT_STR(cJSON_GetObjectItem(j, "cwd")->valuestring, "/home/user");
  EXPECT_STR(cJSON_GetObjectItem(j, "cgroup")->valuestring, "1234");
  EXPECT_STR(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "args"), 1)->valuestring, "-u");
  EXPECT_INT(cJSON_GetObjectItem(j, "uid")->valuedouble, 1000);
  cJSON_Delete(j);
  ce_event_free(ev);
}

static void test_killed_is_critical(void **state) {
  struct det_open o;
  ce_event *ev;
  memset(&o, 0, sizeof o);
  hdr(&o.h, DET_EV_OPEN, 257);
  o.h.action = DET_ACT_KILLED;
  strcpy(o.path, "/etc/shadow");
  detector_event e = decoded(&o, sizeof o);
  EXPECT_RC(detector_event_to_ce(&e, &env, &ev, NULL), 0);
  EXPECT_STR(ce_event_get_str(ev, "type"), "dev.outpost.file.open");
  EXPECT_STR(ce_event_get_str(ev, "subject"), "/etc/shadow");
  EXPECT_STR(ce_event_get_str(ev, "action"), "killed");
  EXPECT_STR(ce_event_get_str(ev, "severity"), "critical");
  cJSON *j = data_of(ev);
  EXPECT_STR(cJSON_GetObjectItem(j, "syscall")->valuestring, "openat");
  cJSON_Delete(j);
  ce_event_free(ev);
}

/* Paths and arguments may be any bytes; the event must still be valid. */
static void test_bytes_that_are_not_utf8(void **state) {
  static struct det_exec k;
  ce_event *ev;
  ce_err err;
  exec_rec(&k, "", 0, 0);
  strcpy(k.binary, "/tmp/\xff\x01x");
  memcpy(k.args, "a\"\\\n\xc3\xa9\xe0\x80", 9); /* with the literal's NUL */
  k.args_len = 9;
  detector_event e = decoded(&k, sizeof k);
  EXPECT_RC(detector_event_to_ce(&e, &env, &ev, &err), 0);
  EXPECT_STR(ce_event_get_str(ev, "subject"), "/tmp/\xef\xbf\xbd\xef\xbf\xbdx");
  cJSON *j = data_of(ev);
  EXPECT_STR(cJSON_GetObjectItem(j, "binary")->valuestring, "/tmp/\xef\xbf\xbd\x01x");
  EXPECT_STR(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "args"), 0)->valuestring,
             "a\"\\\n\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd");
  cJSON_Delete(j);
  ce_event_free(ev);
}

static void sys_rec(struct det_sys *k, uint32_t kind, int32_t nr) {
  memset(k, 0, sizeof *k);
  hdr(&k->h, kind, nr);
}

static void test_syscall_data(void **state) {
  struct det_sys k;
  ce_event *ev;
  cJSON *j;

  sys_rec(&k, DET_EV_SETUID, 117); /* setresuid(-1, 0, -1) */
  k.args[0] = 0xffffffff;
  k.args[2] = 0xffffffff;
  detector_event e = decoded(&k, sizeof k);
  EXPECT_RC(detector_event_to_ce(&e, &env, &ev, NULL), 0);
  EXPECT_STR(ce_event_get_str(ev, "subject"), "setresuid");
  EXPECT_STR(ce_event_get_str(ev, "severity"), "warning");
  j = data_of(ev);
  EXPECT_INT(cJSON_GetObjectItem(j, "ruid")->valuedouble, -1);
  EXPECT_INT(cJSON_GetObjectItem(j, "euid")->valuedouble, 0);
  EXPECT_INT(cJSON_GetObjectItem(j, "suid")->valuedouble, -1);
  cJSON_Delete(j);
  ce_event_free(ev);

  /* setgid(5): the argument is new_gid; gid stays the process's, once. */
  sys_rec(&k, DET_EV_SETGID, 106);
  k.args[0] = 5;
  e = decoded(&k, sizeof k);
  EXPECT_RC(detector_event_to_ce(&e, &env, &ev, NULL), 0);
  j = data_of(ev);
  EXPECT_INT(cJSON_GetObjectItem(j, "new_gid")->valuedouble, 5);
  EXPECT_INT(cJSON_GetObjectItem(j, "gid")->valuedouble, e.gid);
  int gids = 0;
  for (const cJSON *m = j->child; m; m = m->next) gids += strcmp(m->string, "gid") == 0;
  EXPECT_INT(gids, 1);
  cJSON_Delete(j);
  ce_event_free(ev);

  sys_rec(&k, DET_EV_EXECVEAT, 322); /* execveat(3, "", ..., AT_EMPTY_PATH) */
  k.args[0] = 3;
  k.args[4] = 0x1000;
  e = decoded(&k, sizeof k);
  EXPECT_RC(detector_event_to_ce(&e, &env, &ev, NULL), 0);
  j = data_of(ev);
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(j, "fileless")));
  cJSON_Delete(j);
  ce_event_free(ev);

  sys_rec(&k, DET_EV_UNSHARE, 272);
  k.args[0] = 0x40000000 | 0x00020000; /* CLONE_NEWNET | CLONE_NEWNS */
  e = decoded(&k, sizeof k);
  EXPECT_RC(detector_event_to_ce(&e, &env, &ev, NULL), 0);
  j = data_of(ev);
  cJSON *ns = cJSON_GetObjectItem(j, "namespaces");
  EXPECT_INT(cJSON_GetArraySize(ns), 2);
  EXPECT_STR(cJSON_GetArrayItem(ns, 0)->valuestring, "mnt");
  EXPECT_STR(cJSON_GetArrayItem(ns, 1)->valuestring, "net");
  cJSON_Delete(j);
  ce_event_free(ev);
}

/* Every kind has its own type in the catalogue and a valid CloudEvent. */
static void test_every_kind(void **state) {
  static struct det_exec k; /* the largest record: room for any kind */
  const char *seen[DETECTOR_KIND_MAX] = {0};
  ce_event *ev;
  ce_err err;

  for (int kind = 1; kind < DETECTOR_KIND_MAX; kind++) {
    CTX("kind %d", kind);
    memset(&k, 0, sizeof k);
    hdr(&k.h, (uint32_t)kind, kind > DET_EV_FORK ? 42 : -1);
    detector_event e = decoded(&k, sizeof k);
    const char *type = detector_kind_type((detector_kind)kind);
    assert_non_null(type);
    EXPECT_TRUE(strncmp(type, "dev.outpost.", 12) == 0);
    for (int i = 1; i < kind; i++) EXPECT_TRUE(strcmp(seen[i], type) != 0);
    seen[kind] = type;
    EXPECT_RC(detector_event_to_ce(&e, &env, &ev, &err), 0);
    EXPECT_STR(ce_event_get_str(ev, "type"), type);
    cJSON_Delete(data_of(ev));
    ce_event_free(ev);
  }
  EXPECT_TRUE(detector_kind_type(DETECTOR_KIND_MAX) == NULL);
  EXPECT_STR(detector_kind_name((detector_kind)0), "unknown");
}

static void test_to_ce_refuses(void **state) {
  struct det_fork f;
  ce_event *ev = (ce_event *)1;
  ce_err err;
  detector_env partial = env;
  hdr(&f.h, DET_EV_FORK, -1);
  detector_event e = decoded(&f, sizeof f);

  partial.tenant = NULL;
  EXPECT_RC(detector_event_to_ce(&e, &partial, &ev, &err), -EINVAL);
  EXPECT_TRUE(ev == NULL);
  partial = env;
  partial.node = "bad node"; /* a space has no place in a URI */
  EXPECT_RC(detector_event_to_ce(&e, &partial, &ev, &err), -EINVAL);
  EXPECT_STR(err.attr, "source");
  e.kind = DETECTOR_KIND_MAX;
  EXPECT_RC(detector_event_to_ce(&e, &env, &ev, &err), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_decode_exec),
      T(test_decode_exec_cut_args),
      T(test_decode_exit_fork_connect),
      T(test_decode_refuses),
      T(test_decode_time),
      T(test_exec_cloudevent),
      T(test_killed_is_critical),
      T(test_bytes_that_are_not_utf8),
      T(test_syscall_data),
      T(test_every_kind),
      T(test_to_ce_refuses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
