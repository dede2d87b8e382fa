/*
 * decode.c — turns the fixed-size records bpf/detector.bpf.c writes into
 * detector_event values: wall-clock time from the boot clock, the cwd put
 * back in root-first order, arguments counted, exit statuses split, addresses
 * written as text. Kept apart from the loader so that it can be tested
 * without a kernel.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/types.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "bpf/detector.h"
#include "detector/detector.h"
#include "detector/detector_int.h"

_Static_assert((int)DETECTOR_KIND_MAX == (int)DET_EV_MAX, "kinds match the kernel's");
_Static_assert((int)DETECTOR_OPEN == (int)DET_EV_OPEN, "kinds match the kernel's");
_Static_assert((int)DETECTOR_BPF == (int)DET_EV_BPF, "kinds match the kernel's");
_Static_assert(DETECTOR_F_TRUNC_CWD == DET_F_TRUNC_CWD, "flags match the kernel's");
_Static_assert(DETECTOR_ARGS_MAX == DET_ARGS_MAX, "sizes match the kernel's");
_Static_assert(DETECTOR_PATH_MAX == DET_PATH_MAX, "sizes match the kernel's");
_Static_assert(DETECTOR_STR_MAX == DET_STR_MAX, "sizes match the kernel's");
_Static_assert(DETECTOR_RULE_PATH_MAX + 1 == DET_RULE_PATH_MAX, "sizes match the kernel's");

/* The x86_64 numbers of the calls the kernel side reports. */
static const struct {
  int nr;
  const char *name;
} sysnames[] = {
    {2, "open"},        {42, "connect"},       {101, "ptrace"},       {105, "setuid"},
    {106, "setgid"},    {113, "setreuid"},     {114, "setregid"},     {117, "setresuid"},
    {119, "setresgid"}, {122, "setfsuid"},     {123, "setfsgid"},     {126, "capset"},
    {165, "mount"},     {175, "init_module"},  {257, "openat"},       {272, "unshare"},
    {308, "setns"},     {313, "finit_module"}, {319, "memfd_create"}, {321, "bpf"},
    {322, "execveat"},  {437, "openat2"},
};

const char *detector__sysname(int nr) {
  for (size_t i = 0; i < sizeof sysnames / sizeof sysnames[0]; i++)
    if (sysnames[i].nr == nr) return sysnames[i].name;
  return "";
}

static size_t record_size(uint32_t kind) {
  switch (kind) {
  case DET_EV_EXEC:
    return sizeof(struct det_exec);
  case DET_EV_EXIT:
    return sizeof(struct det_exit);
  case DET_EV_FORK:
    return sizeof(struct det_fork);
  case DET_EV_CONNECT:
    return sizeof(struct det_connect);
  case DET_EV_OPEN:
    return sizeof(struct det_open);
  default:
    return kind > DET_EV_OPEN && kind < DET_EV_MAX ? sizeof(struct det_sys) : 0;
  }
}

/* Copies a string the kernel NUL-terminated, or cut at n - 1 bytes. */
static void copy_str(char *dst, size_t dst_size, const char *src, size_t n) {
  size_t len = strnlen(src, n);
  if (len >= dst_size) len = dst_size - 1;
  memcpy(dst, src, len);
  dst[len] = '\0';
}

/* The kernel wrote the components leaf first; a full path is root first. */
static void cwd_decode(const struct det_exec *k, detector_event *e) {
  size_t len = k->cwd_len < sizeof k->cwd ? k->cwd_len : sizeof k->cwd;
  size_t end = len, o = 0;
  char *out = e->u.exec.cwd;
  bool complete = !(k->h.flags & DET_F_TRUNC_CWD);

  out[0] = '\0';
  if (len == 0) {
    if (complete) strcpy(out, "/");
    return;
  }
  /* Walk the components from the last written (nearest the root) back. */
  while (end > 0) {
    size_t start = end - 1; /* end - 1 is the NUL of the component before */
    while (start > 0 && k->cwd[start - 1] != '\0') start--;
    size_t n = strnlen(&k->cwd[start], end - start);
    bool first = o == 0;
    if ((!first || complete) && o + 1 < sizeof e->u.exec.cwd) out[o++] = '/';
    if (o + n >= sizeof e->u.exec.cwd) {
      e->flags |= DETECTOR_F_TRUNC_CWD;
      break;
    }
    memcpy(out + o, &k->cwd[start], n);
    o += n;
    end = start;
  }
  out[o] = '\0';
}

static void exec_decode(const struct det_exec *k, detector_event *e) {
  size_t len = k->args_len < DET_ARGS_MAX ? k->args_len : DET_ARGS_MAX;

  copy_str(e->u.exec.binary, sizeof e->u.exec.binary, k->binary, sizeof k->binary);
  memcpy(e->u.exec.args, k->args, len);
  /* A cut argument list may end inside a string: end it. */
  if (len > 0 && e->u.exec.args[len - 1] != '\0') {
    if (len == DET_ARGS_MAX) len--;
    e->u.exec.args[len++] = '\0';
    e->flags |= DETECTOR_F_TRUNC_ARGS;
  }
  e->u.exec.args_len = len;
  e->u.exec.argc = 0;
  for (size_t i = 0; i < len; i++)
    if (e->u.exec.args[i] == '\0') e->u.exec.argc++;
  cwd_decode(k, e);
}

static void connect_decode(const struct det_connect *k, detector_event *e) {
  e->u.connect.fd = k->fd;
  e->u.connect.family = k->family == 2 ? AF_INET : AF_INET6;
  e->u.connect.port = k->port;
  memcpy(e->u.connect.addr, k->addr, sizeof e->u.connect.addr);
  if (!inet_ntop(e->u.connect.family, k->addr, e->u.connect.text, sizeof e->u.connect.text))
    e->u.connect.text[0] = '\0';
}

static void hdr_decode(const struct det_hdr *h, int64_t boot_to_wall_ns, detector_event *e) {
  int64_t wall = (int64_t)h->ts_boot_ns + boot_to_wall_ns;

  e->kind = (detector_kind)h->kind;
  e->action = h->action == DET_ACT_KILLED ? DETECTOR_ACTION_KILLED : DETECTOR_ACTION_NONE;
  e->boot_ns = h->ts_boot_ns;
  e->time_sec = wall / 1000000000;
  e->time_nsec = (int32_t)(wall % 1000000000);
  if (e->time_nsec < 0) {
    e->time_nsec += 1000000000;
    e->time_sec--;
  }
  e->cgroup_id = h->cgroup_id;
  e->env_id = h->env_id;
  e->pid = (int32_t)h->pid;
  e->tid = (int32_t)h->tid;
  e->ppid = (int32_t)h->ppid;
  e->uid = h->uid;
  e->gid = h->gid;
  e->flags = h->flags;
  e->syscall = h->nr;
  copy_str(e->sysname, sizeof e->sysname, detector__sysname(h->nr), DETECTOR_SYSNAME);
  copy_str(e->comm, sizeof e->comm, h->comm, sizeof h->comm);
}

int detector_event_decode(const void *rec, size_t len, int64_t boot_to_wall_ns, detector_event *e) {
  struct det_hdr h;
  size_t need;

  if (len < sizeof h) return -EINVAL;
  memcpy(&h, rec, sizeof h);
  need = record_size(h.kind);
  if (need == 0 || len < need) return -EINVAL;
  memset(e, 0, sizeof *e);
  hdr_decode(&h, boot_to_wall_ns, e);
  /* Records are 8-byte aligned in the ring buffer, as their structs are. */
  switch (h.kind) {
  case DET_EV_EXEC:
    exec_decode(rec, e);
    break;
  case DET_EV_EXIT: {
    const struct det_exit *k = rec;
    e->u.exit.status = k->status;
    e->u.exit.signal = k->status & 0x7f;
    e->u.exit.code = e->u.exit.signal ? 0 : (k->status >> 8) & 0xff;
    break;
  }
  case DET_EV_FORK:
    e->u.fork.child_pid = (int32_t)((const struct det_fork *)rec)->child_pid;
    break;
  case DET_EV_CONNECT:
    connect_decode(rec, e);
    break;
  case DET_EV_OPEN: {
    const struct det_open *k = rec;
    e->u.open.dirfd = k->dirfd;
    e->u.open.flags = k->flags;
    e->u.open.mode = k->mode;
    copy_str(e->u.open.path, sizeof e->u.open.path, k->path, sizeof k->path);
    break;
  }
  default: {
    const struct det_sys *k = rec;
    for (int i = 0; i < 6; i++) e->u.sys.args[i] = k->args[i];
    for (int i = 0; i < DET_STR_N; i++)
      copy_str(e->u.sys.str[i], sizeof e->u.sys.str[i], k->str[i], sizeof k->str[i]);
  }
  }
  return 0;
}
