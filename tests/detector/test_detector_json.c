/*
 * test_detector_json.c — the fast path of a kernel event to the JSON event
 * format (detector_event_json) writes the same CloudEvent as the checked one
 * (detector_event_to_ce, then ce_json_encode): for every kind and every
 * system call variant, with the strings a hostile process can pass (quotes,
 * backslashes, control bytes, DEL and C1 controls, noncharacters, bytes that
 * are not UTF-8, surrogates, overlong forms), a killed action, cut fields,
 * an empty subject. Equal means: both parse to the same JSON (members in any
 * order), and the fast output decodes to a valid event equal to the checked
 * one. Also: what the fast path refuses (an unknown kind, names it does not
 * vouch for) leaves the buffer as it was. Label unit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <linux/types.h>

#include "bpf/detector.h"
#include "detector/detector.h"
#include "tests/unit/test_util.h"

static const detector_env env = {
    .node = "node-1.eu_west", .environment = "env-a", .tenant = "t1", .ns = "course-x"};

/* A comm the kernel may hold: 15 bytes of anything and its NUL. */
static const char hostile_comm[] = "a\"b\\c\x01\x7f\xc2\x80\xff\n";
/* Every kind of byte a path or an argument may hold. */
static const char hostile[] = "/tmp/q\"uo\\te \x01\x1f\t\r\n\x7f \xc2\x80\xc2\x9f "
                              "\xef\xbf\xbe\xef\xbf\xbf\xef\xb7\x90 \xff\xfe \xc3\x28 "
                              "\xed\xa0\x80 \xc0\xaf \xf4\x90\x80\x80 \xe2\x82 "
                              "\xf0\x9f\x98\x80 \xc3\xa9t\xc3\xa9 <script>'";

static void hdr(struct det_hdr *h, uint32_t kind, int32_t nr, const char *comm) {
  memset(h, 0, sizeof *h);
  h->ts_boot_ns = 5500000007ull;
  h->cgroup_id = 18446744073709551557ull; /* past 2^63: a string, all digits */
  h->kind = kind;
  h->env_id = 9;
  h->pid = 100;
  h->tid = 2147483647;
  h->ppid = 1;
  h->uid = 4294967294u;
  h->gid = 1000;
  h->nr = nr;
  memcpy(h->comm, comm, strnlen(comm, sizeof h->comm - 1));
}

/* The n-th member named key of object o (n from 0), or NULL. */
static const cJSON *nth_member(const cJSON *o, const char *key, int n) {
  for (const cJSON *m = o->child; m; m = m->next)
    if (strcmp(m->string, key) == 0 && n-- == 0) return m;
  return NULL;
}

/* JSON equality with object members in any order, a repeated name's n-th
 * occurrence matched with the other's n-th (cJSON_Compare would match every
 * occurrence with the first, and pass an event whose data repeated a name
 * with different values). */
static bool json_equal(const cJSON *a, const cJSON *b) {
  if ((a->type & 0xFF) != (b->type & 0xFF)) return false;
  if (cJSON_IsObject(a)) {
    if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b)) return false;
    for (const cJSON *m = a->child; m; m = m->next) {
      int n = 0;
      for (const cJSON *p = a->child; p != m; p = p->next) n += strcmp(p->string, m->string) == 0;
      const cJSON *o = nth_member(b, m->string, n);
      if (!o || !json_equal(m, o)) return false;
    }
    return true;
  }
  if (cJSON_IsArray(a)) {
    const cJSON *x = a->child, *y = b->child;
    for (; x && y; x = x->next, y = y->next)
      if (!json_equal(x, y)) return false;
    return !x && !y;
  }
  return cJSON_Compare(a, b, true);
}

/* Both ways for e, compared; fails the test when they differ. */
static void check_same(const detector_event *e) {
  ce_event *ev = NULL, *back = NULL;
  ce_err err = {0};
  ce_buf slow, fast;
  ce_buf_init(&slow);
  ce_buf_init(&fast);

  EXPECT_RC(detector_event_to_ce(e, &env, &ev, &err), 0);
  EXPECT_RC(ce_json_encode(ev, &slow, &err), 0);
  /* Something before: the fast path appends. */
  ce_buf_append_str(&fast, "xy");
  EXPECT_RC(detector_event_json(e, &env, &fast), 0);
  EXPECT_MEM(fast.data, 2, "xy", 2);

  cJSON *a = cJSON_ParseWithLength(slow.data, slow.len);
  cJSON *b = cJSON_ParseWithLength(fast.data + 2, fast.len - 2);
  EXPECT_TRUE(a != NULL);
  EXPECT_TRUE(b != NULL);
  if (!json_equal(a, b)) {
    print_error("kind %d:\n  checked: %s\n  fast:    %s\n", (int)e->kind, slow.data, fast.data + 2);
    fail();
  }
  ce_limits limits;
  ce_limits_init(&limits);
  EXPECT_RC(ce_json_decode(fast.data + 2, fast.len - 2, &limits, &back, &err), 0);
  EXPECT_TRUE(ce_event_equal(ev, back));

  cJSON_Delete(a);
  cJSON_Delete(b);
  ce_event_free(ev);
  ce_event_free(back);
  ce_buf_cleanup(&slow);
  ce_buf_cleanup(&fast);
}

static detector_event decoded(const void *rec, size_t len) {
  detector_event e;
  EXPECT_RC(detector_event_decode(rec, len, 1700000000000000000ll, &e), 0);
  return e;
}

static void test_exec(void **state) {
  static struct det_exec k;
  static const char args[] = "sh\0-c\0echo \"$x\" \\ \x01\x1b[31m\0\xff\xc3\x28\0\xef\xbf\xbe\0";
  for (int variant = 0; variant < 4; variant++) {
    memset(&k, 0, sizeof k);
    hdr(&k.h, DET_EV_EXEC, -1, variant ? hostile_comm : "bash");
    snprintf(k.binary, sizeof k.binary, "%s", variant ? hostile : "/usr/bin/id");
    memcpy(k.args, args, sizeof args);
    k.args_len = variant == 2 ? 7 : sizeof args; /* 2: cut inside a string */
    memcpy(k.cwd, "d\x01\"ir\0h\xffome\0", 12);
    k.cwd_len = variant == 3 ? 0 : 12;
    k.h.flags = variant == 2 ? DET_F_TRUNC_ARGS | DET_F_TRUNC_CWD : 0;
    k.h.action = variant == 1 ? DET_ACT_KILLED : DET_ACT_NONE;
    detector_event e = decoded(&k, sizeof k);
    check_same(&e);
  }
  /* No arguments at all, and a long binary. */
  memset(&k, 0, sizeof k);
  hdr(&k.h, DET_EV_EXEC, -1, "x");
  memset(k.binary, '\\', sizeof k.binary - 1);
  detector_event e = decoded(&k, sizeof k);
  check_same(&e);
}

static void test_exit_fork(void **state) {
  struct det_exit x;
  struct det_fork f;
  int32_t statuses[] = {0, 7 << 8, 9, 0x7f | 0x80};
  for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
    hdr(&x.h, DET_EV_EXIT, -1, i % 2 ? hostile_comm : "true");
    x.status = statuses[i];
    detector_event e = decoded(&x, sizeof x);
    check_same(&e);
  }
  hdr(&x.h, DET_EV_EXIT, -1, ""); /* no comm: no subject */
  detector_event e = decoded(&x, sizeof x);
  check_same(&e);
  hdr(&f.h, DET_EV_FORK, -1, hostile_comm);
  f.child_pid = -1;
  e = decoded(&f, sizeof f);
  check_same(&e);
}

static void test_connect(void **state) {
  struct det_connect c;
  memset(&c, 0, sizeof c);
  hdr(&c.h, DET_EV_CONNECT, 42, "curl");
  c.fd = 3;
  c.family = 2;
  c.port = 443;
  memcpy(c.addr, "\x7f\x00\x00\x01", 4);
  detector_event e = decoded(&c, sizeof c);
  check_same(&e);
  c.family = 10;
  c.port = 0;
  memcpy(c.addr, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
  c.h.action = DET_ACT_KILLED;
  e = decoded(&c, sizeof c);
  check_same(&e);
}

static void test_open(void **state) {
  struct det_open o;
  memset(&o, 0, sizeof o);
  hdr(&o.h, DET_EV_OPEN, 257, "cat");
  o.dirfd = -100;
  o.flags = 0x241;
  o.mode = 0644;
  snprintf(o.path, sizeof o.path, "%s", hostile);
  detector_event e = decoded(&o, sizeof o);
  check_same(&e);
  hdr(&o.h, DET_EV_OPEN, 2, "cat");
  o.h.flags = DET_F_TRUNC_PATH;
  memset(o.path, 0xff, sizeof o.path); /* not UTF-8 from end to end, cut */
  e = decoded(&o, sizeof o);
  check_same(&e);
  hdr(&o.h, DET_EV_OPEN, 437, "cat");
  memset(o.path, 0, sizeof o.path); /* an empty path: no subject */
  e = decoded(&o, sizeof o);
  check_same(&e);
}

/* Every system call the kernel side reports past open, with hostile strings. */
static void test_syscalls(void **state) {
  static const struct {
    uint32_t kind;
    int32_t nr;
  } calls[] = {
      {DET_EV_SETUID, 105},   {DET_EV_SETUID, 113},  {DET_EV_SETUID, 117}, {DET_EV_SETUID, 122},
      {DET_EV_SETGID, 106},   {DET_EV_SETGID, 114},  {DET_EV_SETGID, 119}, {DET_EV_SETGID, 123},
      {DET_EV_CAPSET, 126},   {DET_EV_PTRACE, 101},  {DET_EV_MODULE, 175}, {DET_EV_MODULE, 313},
      {DET_EV_MOUNT, 165},    {DET_EV_UNSHARE, 272}, {DET_EV_SETNS, 308},  {DET_EV_MEMFD, 319},
      {DET_EV_EXECVEAT, 322}, {DET_EV_BPF, 321},
  };
  static struct det_sys s;
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
    for (int variant = 0; variant < 2; variant++) {
      memset(&s, 0, sizeof s);
      hdr(&s.h, calls[i].kind, calls[i].nr, variant ? hostile_comm : "prog");
      int64_t args[6] = {-1, 1000, 0, 0x7fffffffffffffffll, INT64_MIN, 0x1000};
      if (calls[i].kind == DET_EV_UNSHARE || calls[i].kind == DET_EV_SETNS)
        args[0] = args[1] = 0x7e020080; /* every namespace bit */
      memcpy(s.args, args, sizeof args);
      if (variant) {
        for (int k = 0; k < DET_STR_N; k++)
          snprintf(s.str[k], sizeof s.str[k], "%s", hostile + k * 3);
        s.h.action = DET_ACT_KILLED;
        s.h.flags = DET_F_TRUNC_ARGS;
      } else {
        strcpy(s.str[0], "name");
        strcpy(s.str[1], "/mnt");
      }
      detector_event e = decoded(&s, sizeof s);
      check_same(&e);
    }
  }
}

/* Times at the edges: the first and last nanosecond of a second, before 1970. */
static void test_times(void **state) {
  struct det_fork f;
  hdr(&f.h, DET_EV_FORK, -1, "sh");
  f.child_pid = 5;
  detector_event e = decoded(&f, sizeof f);
  int64_t secs[] = {0, -1, 1700000000, 253402300799};
  int32_t nsecs[] = {0, 999999999, 5};
  for (size_t i = 0; i < 4; i++)
    for (size_t j = 0; j < 3; j++) {
      e.time_sec = secs[i];
      e.time_nsec = nsecs[j];
      check_same(&e);
    }
}

/* What the fast path does not vouch for is left to the checked path, and
 * the buffer is left as it was. */
static void test_refused(void **state) {
  struct det_fork f;
  hdr(&f.h, DET_EV_FORK, -1, "sh");
  detector_event e = decoded(&f, sizeof f);
  ce_buf b;
  ce_buf_init(&b);
  ce_buf_append_str(&b, "keep");
  const detector_env odd[] = {
      {.node = "n", .environment = "a b", .tenant = "t", .ns = "n"},
      {.node = "n", .environment = "e", .tenant = "t\"", .ns = "n"},
      {.node = "n/x", .environment = "e", .tenant = "t", .ns = "n"},
      {.node = "n", .environment = "e", .tenant = "t", .ns = ""},
      {.node = "n", .environment = "e", .tenant = NULL, .ns = "n"},
  };
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    EXPECT_RC(detector_event_json(&e, &odd[i], &b), -ENOTSUP);
    EXPECT_STR(b.data, "keep");
  }
  e.time_nsec = 1000000000;
  EXPECT_RC(detector_event_json(&e, &env, &b), -ENOTSUP);
  e.time_nsec = 0;
  e.kind = DETECTOR_KIND_MAX;
  EXPECT_RC(detector_event_json(&e, &env, &b), -EINVAL);
  e.kind = 0;
  EXPECT_RC(detector_event_json(&e, &env, &b), -EINVAL);
  EXPECT_STR(b.data, "keep");
  ce_buf_cleanup(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exec),     cmocka_unit_test(test_exit_fork),
      cmocka_unit_test(test_connect),  cmocka_unit_test(test_open),
      cmocka_unit_test(test_syscalls), cmocka_unit_test(test_times),
      cmocka_unit_test(test_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
