/*
 * event.c — the detector's CloudEvents: the type catalogue (one type per
 * kind, documented in detector/README.md) and the builder that turns a
 * decoded kernel event and the environment it belongs to into a CloudEvent,
 * or writes that event straight into the JSON format (the publisher's common
 * path: a tenth of the CPU of building, validating and encoding a ce_event).
 * What a process passes to the kernel is arbitrary bytes, and CloudEvents
 * strings must be UTF-8 without control characters: bytes that break the
 * rules are replaced by U+FFFD here, so that an odd argument never costs an
 * event.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "detector/detector.h"
#include "detector/detector_int.h"

static const struct {
  const char *name;
  const char *type;
  const char *severity; /* when no policy acted */
} catalogue[DETECTOR_KIND_MAX] = {
    [DETECTOR_EXEC] = {"exec", "dev.outpost.process.exec", "info"},
    [DETECTOR_EXIT] = {"exit", "dev.outpost.process.exit", "info"},
    [DETECTOR_FORK] = {"fork", "dev.outpost.process.fork", "info"},
    [DETECTOR_CONNECT] = {"connect", "dev.outpost.network.connect", "info"},
    [DETECTOR_OPEN] = {"open", "dev.outpost.file.open", "info"},
    [DETECTOR_SETUID] = {"setuid", "dev.outpost.privilege.setuid", "warning"},
    [DETECTOR_SETGID] = {"setgid", "dev.outpost.privilege.setgid", "warning"},
    [DETECTOR_CAPSET] = {"capset", "dev.outpost.privilege.capset", "warning"},
    [DETECTOR_PTRACE] = {"ptrace", "dev.outpost.process.ptrace", "warning"},
    [DETECTOR_MODULE] = {"module", "dev.outpost.kernel.module", "critical"},
    [DETECTOR_MOUNT] = {"mount", "dev.outpost.file.mount", "warning"},
    [DETECTOR_UNSHARE] = {"unshare", "dev.outpost.namespace.unshare", "warning"},
    [DETECTOR_SETNS] = {"setns", "dev.outpost.namespace.setns", "warning"},
    [DETECTOR_MEMFD] = {"memfd", "dev.outpost.process.memfd", "warning"},
    [DETECTOR_EXECVEAT] = {"execveat", "dev.outpost.process.execveat", "warning"},
    [DETECTOR_BPF] = {"bpf", "dev.outpost.kernel.bpf", "warning"},
};

static bool kind_known(detector_kind kind) {
  return kind > 0 && kind < DETECTOR_KIND_MAX;
}

const char *detector_kind_type(detector_kind kind) {
  return kind_known(kind) ? catalogue[kind].type : NULL;
}

const char *detector_kind_name(detector_kind kind) {
  return kind_known(kind) ? catalogue[kind].name : "unknown";
}

/* ------------------------------------------------------------ text */

/* The length of the well-formed UTF-8 sequence at s (at most n bytes) with
 * its code point in *cp, or 0 when the bytes are not one. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp) {
  size_t len;
  uint32_t c = s[0], min;

  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF)
    len = 2, c &= 0x1F, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF)
    len = 3, c &= 0x0F, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4)
    len = 4, c &= 0x07, min = 0x10000;
  else
    return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    c = c << 6 | (s[i] & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
  *cp = c;
  return len;
}

static bool cp_control(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

static bool cp_nonchar(uint32_t cp) {
  return (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
}

#define REPLACEMENT "\xEF\xBF\xBD" /* U+FFFD */

/* How text_append writes a string. */
enum text_mode {
  TEXT_JSON,      /* the body of a JSON string in data: escapes what JSON must, keeps the rest */
  TEXT_ATTR,      /* a CloudEvents string attribute's value, raw */
  TEXT_ATTR_JSON, /* the same value as the body of a JSON string (the JSON format's attribute) */
};

/* True for a byte that every mode copies as it is: printable ASCII, which
 * neither a JSON string nor an attribute has to change. */
static bool plain_byte(unsigned char c) {
  return c >= 0x20 && c < 0x7F && c != '"' && c != '\\';
}

/* Appends s (n bytes) in the given mode. JSON escapes '"', '\\' and control
 * characters below U+0020; an attribute cannot hold control characters or
 * noncharacters, which become U+FFFD, as does every byte that is not UTF-8
 * (in every mode). Runs of plain ASCII, nearly all of what processes pass,
 * are copied in one go. */
static int text_append(ce_buf *b, const char *s, size_t n, enum text_mode mode) {
  const unsigned char *p = (const unsigned char *)s;
  bool json = mode != TEXT_ATTR, attr = mode != TEXT_JSON;
  char esc[8];
  int rc = ce_buf_reserve(b, n + 2);

  for (size_t i = 0; i < n && !rc;) {
    size_t run = i;
    while (run < n && plain_byte(p[run])) run++;
    if (run > i) {
      rc = ce_buf_append(b, p + i, run - i);
      i = run;
      continue;
    }
    uint32_t cp;
    size_t len = utf8_seq(p + i, n - i, &cp);
    if (len == 0) {
      rc = ce_buf_append(b, REPLACEMENT, 3);
      i++;
      continue;
    }
    if (attr && (cp_control(cp) || cp_nonchar(cp))) {
      rc = ce_buf_append(b, REPLACEMENT, 3);
    } else if (json && (cp == '"' || cp == '\\')) {
      esc[0] = '\\', esc[1] = (char)cp;
      rc = ce_buf_append(b, esc, 2);
    } else if (json && cp < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
      rc = ce_buf_append_str(b, esc);
    } else {
      rc = ce_buf_append(b, p + i, len);
    }
    i += len;
  }
  return rc;
}

/* The decimal digits of u written backwards from end (21 bytes before it
 * are enough); returns where they start. snprintf cost more than the rest of
 * a field. */
static char *fmt_u64(uint64_t u, char *end) {
  char *p = end;
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  return p;
}

static char *fmt_int(int64_t v, char *end) {
  char *p = fmt_u64(v < 0 ? 0 - (uint64_t)v : (uint64_t)v, end);
  if (v < 0) *--p = '-';
  return p;
}

/* ------------------------------------------------------------ JSON data */

/* A JSON object writer that keeps the first error, so that the writers of
 * each kind read as a list of fields. */
typedef struct jw {
  ce_buf *b;
  int rc;
  bool first;
} jw;

/* Appends n bytes; in place when they fit (the buffer is reserved ahead),
 * so that the many short pieces of an event cost a copy each, not a call. */
static inline void jw_rawn(jw *w, const char *s, size_t n) {
  ce_buf *b = w->b;
  if (w->rc) return;
  if (b->cap - b->len > n) {
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return;
  }
  w->rc = ce_buf_append(b, s, n);
}

/* strlen of a literal is folded where this is inlined. */
static inline void jw_raw(jw *w, const char *s) {
  jw_rawn(w, s, strlen(s));
}

static void jw_key(jw *w, const char *key) {
  jw_raw(w, w->first ? "\"" : ",\"");
  w->first = false;
  jw_raw(w, key);
  jw_raw(w, "\":");
}

static void jw_strn(jw *w, const char *key, const char *s, size_t n) {
  if (key) jw_key(w, key);
  jw_raw(w, "\"");
  if (!w->rc) w->rc = text_append(w->b, s, n, TEXT_JSON);
  jw_raw(w, "\"");
}

static void jw_str(jw *w, const char *key, const char *s) {
  jw_strn(w, key, s, strlen(s));
}

static void jw_int(jw *w, const char *key, int64_t v) {
  char num[24], *end = num + sizeof num, *p = fmt_int(v, end);
  jw_key(w, key);
  jw_rawn(w, p, (size_t)(end - p));
}

static void jw_bool(jw *w, const char *key, bool v) {
  jw_key(w, key);
  jw_raw(w, v ? "true" : "false");
}

static void data_exec(jw *w, const detector_event *e) {
  const char *a = e->u.exec.args, *end = a + e->u.exec.args_len;

  jw_str(w, "binary", e->u.exec.binary);
  jw_key(w, "args");
  jw_raw(w, "[");
  for (bool first = true; a < end; first = false) {
    size_t n = strnlen(a, (size_t)(end - a));
    if (!first) jw_raw(w, ",");
    jw_strn(w, NULL, a, n);
    a += n + 1;
  }
  jw_raw(w, "]");
  jw_bool(w, "args_truncated", e->flags & DETECTOR_F_TRUNC_ARGS);
  jw_str(w, "cwd", e->u.exec.cwd);
  jw_bool(w, "cwd_truncated", e->flags & DETECTOR_F_TRUNC_CWD);
}

static void data_exit(jw *w, const detector_event *e) {
  jw_int(w, "status", e->u.exit.status);
  jw_int(w, "code", e->u.exit.code);
  jw_int(w, "signal", e->u.exit.signal);
}

static void data_connect(jw *w, const detector_event *e) {
  jw_str(w, "family", e->u.connect.family == 2 ? "ipv4" : "ipv6");
  jw_str(w, "address", e->u.connect.text);
  jw_int(w, "port", e->u.connect.port);
  jw_int(w, "fd", e->u.connect.fd);
}

static void data_open(jw *w, const detector_event *e) {
  jw_str(w, "path", e->u.open.path);
  jw_int(w, "flags", e->u.open.flags);
  jw_int(w, "mode", e->u.open.mode);
  jw_int(w, "dirfd", e->u.open.dirfd);
  jw_bool(w, "path_truncated", e->flags & DETECTOR_F_TRUNC_PATH);
}

/* The ids of the set*id calls in argument order; -1 means "unchanged".
 * setuid's and setgid's one argument is new_uid (new_gid): uid and gid are
 * the process's, in every event's data. */
static void data_ids(jw *w, const detector_event *e, const char *u) {
  static const char *const names[][3] = {
      {"new_id", 0, 0}, {"rid", "eid", 0}, {"rid", "eid", "sid"}, {"fsid", 0, 0}};
  const char *sys = e->sysname;
  int row = strstr(sys, "res") ? 2 : strstr(sys, "re") ? 1 : strstr(sys, "fs") ? 3 : 0;
  char key[8];

  for (int i = 0; i < 3 && names[row][i]; i++) {
    /* "new_id" -> "new_uid", "rid" -> "ruid", "fsid" -> "fsuid" */
    const char *n = names[row][i];
    size_t pre = strlen(n) - 2;
    snprintf(key, sizeof key, "%.*s%s%s", (int)pre, n, u, n + pre);
    jw_int(w, key, (int32_t)(uint32_t)e->u.sys.args[i]);
  }
}

static void data_namespaces(jw *w, int64_t flags) {
  static const struct {
    int64_t bit;
    const char *name;
  } ns[] = {{0x00020000, "mnt"}, {0x04000000, "uts"}, {0x08000000, "ipc"},    {0x10000000, "user"},
            {0x20000000, "pid"}, {0x40000000, "net"}, {0x02000000, "cgroup"}, {0x00000080, "time"}};
  bool first = true;

  jw_key(w, "namespaces");
  jw_raw(w, "[");
  for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
    if (!(flags & ns[i].bit)) continue;
    if (!first) jw_raw(w, ",");
    jw_str(w, NULL, ns[i].name);
    first = false;
  }
  jw_raw(w, "]");
}

static void data_sys(jw *w, const detector_event *e) {
  const int64_t *a = e->u.sys.args;
  const char(*s)[DETECTOR_STR_MAX] = e->u.sys.str;

  switch (e->kind) {
  case DETECTOR_SETUID:
    data_ids(w, e, "u");
    break;
  case DETECTOR_SETGID:
    data_ids(w, e, "g");
    break;
  case DETECTOR_CAPSET:
    jw_int(w, "version", a[0]);
    jw_int(w, "target_pid", a[1]);
    jw_int(w, "effective", a[3]);
    jw_int(w, "permitted", a[4]);
    jw_int(w, "inheritable", a[5]);
    break;
  case DETECTOR_PTRACE:
    jw_int(w, "request", a[0]);
    jw_int(w, "target_pid", (int32_t)a[1]);
    break;
  case DETECTOR_MODULE:
    if (e->syscall == 313)
      jw_int(w, "fd", (int32_t)a[0]);
    else
      jw_int(w, "length", a[1]);
    jw_str(w, "params", s[0]);
    break;
  case DETECTOR_MOUNT:
    jw_str(w, "source", s[0]);
    jw_str(w, "target", s[1]);
    jw_str(w, "fstype", s[2]);
    jw_int(w, "flags", a[3]);
    break;
  case DETECTOR_UNSHARE:
    jw_int(w, "flags", a[0]);
    data_namespaces(w, a[0]);
    break;
  case DETECTOR_SETNS:
    jw_int(w, "fd", (int32_t)a[0]);
    jw_int(w, "nstype", a[1]);
    data_namespaces(w, a[1]);
    break;
  case DETECTOR_MEMFD:
    jw_str(w, "name", s[0]);
    jw_int(w, "flags", a[1]);
    break;
  case DETECTOR_EXECVEAT:
    jw_int(w, "dirfd", (int32_t)a[0]);
    jw_str(w, "path", s[0]);
    jw_int(w, "flags", a[4]);
    /* AT_EMPTY_PATH with no path runs the file dirfd is: nothing on disk
     * names what runs (a memfd, a deleted file). */
    jw_bool(w, "fileless", (a[4] & 0x1000) && s[0][0] == '\0');
    break;
  case DETECTOR_BPF:
    jw_int(w, "cmd", a[0]);
    break;
  default:
    break;
  }
}

/* The JSON object of e into b. */
static int data_json(const detector_event *e, ce_buf *b) {
  jw w = {.b = b, .first = true};
  char cg[24], *cg_end = cg + sizeof cg;

  jw_raw(&w, "{");
  jw_int(&w, "pid", e->pid);
  jw_int(&w, "tid", e->tid);
  jw_int(&w, "ppid", e->ppid);
  jw_int(&w, "uid", e->uid);
  jw_int(&w, "gid", e->gid);
  jw_str(&w, "comm", e->comm);
  /* A string: 64-bit ids lose digits in JavaScript numbers. */
  const char *cgs = fmt_u64(e->cgroup_id, cg_end);
  jw_strn(&w, "cgroup", cgs, (size_t)(cg_end - cgs));
  if (e->syscall >= 0) jw_str(&w, "syscall", e->sysname);
  switch (e->kind) {
  case DETECTOR_EXEC:
    data_exec(&w, e);
    break;
  case DETECTOR_EXIT:
    data_exit(&w, e);
    break;
  case DETECTOR_FORK:
    jw_int(&w, "child_pid", e->u.fork.child_pid);
    break;
  case DETECTOR_CONNECT:
    data_connect(&w, e);
    break;
  case DETECTOR_OPEN:
    data_open(&w, e);
    break;
  default:
    data_sys(&w, e);
  }
  jw_raw(&w, "}");
  return w.rc;
}

/* ------------------------------------------------------------ the CloudEvent */

/* What the event is about, in a few words: a binary, a path, an address. */
static int subject_of(const detector_event *e, ce_buf *b, enum text_mode mode) {
  char addr[64];
  const char *s;

  switch (e->kind) {
  case DETECTOR_EXEC:
    s = e->u.exec.binary;
    break;
  case DETECTOR_OPEN:
    s = e->u.open.path;
    break;
  case DETECTOR_CONNECT:
    snprintf(addr, sizeof addr, e->u.connect.family == 2 ? "%s:%u" : "[%s]:%u", e->u.connect.text,
             (unsigned)e->u.connect.port);
    s = addr;
    break;
  case DETECTOR_MOUNT:
    s = e->u.sys.str[1];
    break;
  case DETECTOR_MEMFD:
  case DETECTOR_EXECVEAT:
    s = e->u.sys.str[0];
    break;
  case DETECTOR_EXIT:
  case DETECTOR_FORK:
    s = e->comm;
    break;
  default:
    s = e->sysname;
  }
  return text_append(b, s, strlen(s), mode);
}

static int set_attrs(ce_event *ev, const detector_event *e, const detector_env *env, ce_buf *b,
                     ce_err *err) {
  char id[64], ts[40];
  int rc;

  snprintf(id, sizeof id, "%" PRId64 ".%09d-%d-%s", e->time_sec, (int)e->time_nsec, (int)e->tid,
           catalogue[e->kind].name);
  ce_timestamp_format(e->time_sec, e->time_nsec, ts, sizeof ts);
  ce_buf_reset(b);
  if ((rc = ce_buf_append_str(b, "/nodes/")) || (rc = ce_buf_append_str(b, env->node)) ||
      (rc = ce_buf_append_str(b, "/environments/")) ||
      (rc = ce_buf_append_str(b, env->environment)))
    return rc;
  if ((rc = ce_event_set_str(ev, "specversion", "1.0", err)) ||
      (rc = ce_event_set_str(ev, "id", id, err)) ||
      (rc = ce_event_set_str(ev, "source", b->data, err)) ||
      (rc = ce_event_set_str(ev, "type", catalogue[e->kind].type, err)) ||
      (rc = ce_event_set_str(ev, "time", ts, err)) ||
      (rc = ce_event_set_str(ev, "datacontenttype", "application/json", err)) ||
      (rc = ce_event_set_str(ev, "tenant", env->tenant, err)) ||
      (rc = ce_event_set_str(ev, "namespace", env->ns, err)) ||
      (rc = ce_event_set_str(ev, "environment", env->environment, err)) ||
      (rc = ce_event_set_str(ev, "node", env->node, err)) ||
      (rc = ce_event_set_str(ev, "partitionkey", env->environment, err)))
    return rc;
  bool killed = e->action == DETECTOR_ACTION_KILLED;
  if ((rc = ce_event_set_str(ev, "severity", killed ? "critical" : catalogue[e->kind].severity,
                             err)) ||
      (rc = ce_event_set_str(ev, "action", killed ? "killed" : "none", err)))
    return rc;
  ce_buf_reset(b);
  if ((rc = subject_of(e, b, TEXT_ATTR))) return rc;
  if (b->len > 0 && (rc = ce_event_set_str(ev, "subject", b->data, err))) return rc;
  return 0;
}

int detector_event_to_ce(const detector_event *e, const detector_env *env, ce_event **out,
                         ce_err *err) {
  ce_event *ev = NULL;
  ce_buf b;
  int rc;

  *out = NULL;
  if (!kind_known(e->kind) || !env || !env->node || !env->environment || !env->tenant || !env->ns) {
    if (err) {
      snprintf(err->attr, sizeof err->attr, "%s", kind_known(e->kind) ? "" : "type");
      snprintf(err->reason, sizeof err->reason, "%s",
               kind_known(e->kind) ? "the environment is incomplete" : "unknown event kind");
      err->index = -1;
    }
    return -EINVAL;
  }
  ce_buf_init(&b);
  if (!(ev = ce_event_new())) {
    rc = -ENOMEM;
    goto done;
  }
  if ((rc = set_attrs(ev, e, env, &b, err))) goto done;
  ce_buf_reset(&b);
  if ((rc = data_json(e, &b)) || (rc = ce_event_set_data(ev, b.data, b.len))) goto done;
  if ((rc = ce_event_validate(ev, err))) goto done;
  *out = ev;
  ev = NULL;
done:
  ce_event_free(ev);
  ce_buf_cleanup(&b);
  return rc;
}

/* ------------------------------------------------------------ the JSON format, directly */

/* True for a name the fast path may write as it is: what the detector's
 * own names are (a DNS label, a node name), so that it is a valid string
 * attribute and a valid URI path segment, and needs no JSON escape. */
static bool plain_name(const char *s) {
  size_t n = 0;
  for (; s[n]; n++) {
    unsigned char c = (unsigned char)s[n];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.' || c == '_'))
      return false;
  }
  return n > 0 && n < 256;
}

/* ,"name":"value" for a value that needs no escape. */
static void jw_attr(jw *w, const char *name, const char *value) {
  jw_raw(w, ",\"");
  jw_raw(w, name);
  jw_raw(w, "\":\"");
  jw_raw(w, value);
  jw_raw(w, "\"");
}

static void json_attrs(jw *w, const detector_event *e, const detector_env *env) {
  char num[24], ns[10], ts[40], *end = num + sizeof num, *p;
  bool killed = e->action == DETECTOR_ACTION_KILLED;

  ce_timestamp_format(e->time_sec, e->time_nsec, ts, sizeof ts);
  /* The id "<sec>.<nsec, 9 digits>-<tid>-<kind>", as set_attrs's snprintf
   * writes it. */
  jw_raw(w, "{\"specversion\":\"1.0\",\"id\":\"");
  p = fmt_int(e->time_sec, end);
  jw_rawn(w, p, (size_t)(end - p));
  for (int k = 8, v = e->time_nsec; k >= 0; k--, v /= 10) ns[k] = (char)('0' + v % 10);
  ns[9] = '\0';
  jw_raw(w, ".");
  jw_raw(w, ns);
  jw_raw(w, "-");
  p = fmt_int(e->tid, end);
  jw_rawn(w, p, (size_t)(end - p));
  jw_raw(w, "-");
  jw_raw(w, catalogue[e->kind].name);
  jw_raw(w, "\",\"source\":\"/nodes/");
  jw_raw(w, env->node);
  jw_raw(w, "/environments/");
  jw_raw(w, env->environment);
  jw_raw(w, "\"");
  jw_attr(w, "type", catalogue[e->kind].type);
  jw_attr(w, "time", ts);
  jw_attr(w, "datacontenttype", "application/json");
  jw_attr(w, "tenant", env->tenant);
  jw_attr(w, "namespace", env->ns);
  jw_attr(w, "environment", env->environment);
  jw_attr(w, "node", env->node);
  jw_attr(w, "partitionkey", env->environment);
  jw_attr(w, "severity", killed ? "critical" : catalogue[e->kind].severity);
  jw_attr(w, "action", killed ? "killed" : "none");
}

int detector_event_json(const detector_event *e, const detector_env *env, ce_buf *out) {
  size_t mark = out->len;
  jw w = {.b = out};

  if (!kind_known(e->kind)) return -EINVAL;
  if (!env || !env->node || !env->environment || !env->tenant || !env->ns ||
      !plain_name(env->node) || !plain_name(env->environment) || !plain_name(env->tenant) ||
      !plain_name(env->ns))
    return -ENOTSUP;
  /* Nanoseconds outside a second would make an id set_attrs's %09d writes
   * differently: not from the decoder, but the caller may build events. */
  if (e->time_nsec < 0 || e->time_nsec > 999999999) return -ENOTSUP;
  w.rc = ce_buf_reserve(out, 1024);
  json_attrs(&w, e, env);
  /* The subject is left out when empty, as set_attrs leaves it unset. */
  size_t before = out->len;
  jw_raw(&w, ",\"subject\":\"");
  size_t body = out->len;
  if (!w.rc) w.rc = subject_of(e, out, TEXT_ATTR_JSON);
  if (!w.rc && out->len == body) {
    out->len = before;
    out->data[before] = '\0';
  } else {
    jw_raw(&w, "\"");
  }
  jw_raw(&w, ",\"data\":");
  if (!w.rc) w.rc = data_json(e, out);
  jw_raw(&w, "}");
  if (w.rc) {
    out->len = mark;
    if (out->cap) out->data[mark] = '\0';
  }
  return w.rc;
}

int detector__env_event(const detector_env *env, uint32_t env_id, const char *what,
                        const char *type, const char *severity, int64_t sec, int32_t nsec,
                        const char *data, size_t len, ce_event **out, ce_err *err) {
  char id[96], ts[40], source[300];
  int rc;

  *out = NULL;
  if (!env || !env->node || !env->environment || !env->tenant || !env->ns) return -EINVAL;
  snprintf(id, sizeof id, "%" PRId64 ".%09d-%u-%s", sec, (int)nsec, (unsigned)env_id, what);
  ce_timestamp_format(sec, nsec, ts, sizeof ts);
  snprintf(source, sizeof source, "/nodes/%s/environments/%s", env->node, env->environment);
  ce_event *ev = ce_event_new();
  if (!ev) return -ENOMEM;
  if ((rc = ce_event_set_str(ev, "specversion", "1.0", err)) ||
      (rc = ce_event_set_str(ev, "id", id, err)) ||
      (rc = ce_event_set_str(ev, "source", source, err)) ||
      (rc = ce_event_set_str(ev, "type", type, err)) ||
      (rc = ce_event_set_str(ev, "time", ts, err)) ||
      (rc = ce_event_set_str(ev, "subject", env->environment, err)) ||
      (rc = ce_event_set_str(ev, "datacontenttype", "application/json", err)) ||
      (rc = ce_event_set_str(ev, "tenant", env->tenant, err)) ||
      (rc = ce_event_set_str(ev, "namespace", env->ns, err)) ||
      (rc = ce_event_set_str(ev, "environment", env->environment, err)) ||
      (rc = ce_event_set_str(ev, "node", env->node, err)) ||
      (rc = ce_event_set_str(ev, "severity", severity, err)) ||
      (rc = ce_event_set_str(ev, "action", "none", err)) ||
      (rc = ce_event_set_str(ev, "partitionkey", env->environment, err)) ||
      (rc = ce_event_set_data(ev, data, len)) || (rc = ce_event_validate(ev, err))) {
    ce_event_free(ev);
    return rc;
  }
  *out = ev;
  return 0;
}
