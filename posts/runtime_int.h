/*
 * runtime_int.h — what the backends of posts/runtime.h share with the
 * generic layer (runtime.c) and nobody else: the table of operations a
 * backend fills in, and helpers to fill posts_err and posts_env_info.
 * runtime.c checks every argument before it calls a backend, so backends
 * only see well-formed specs, ids and requests.
 */
#ifndef OUTPOST_POSTS_RUNTIME_INT_H
#define OUTPOST_POSTS_RUNTIME_INT_H

#include "posts/runtime.h"

/* Label keys under this prefix belong to the backends (the Docker backend
 * keeps the namespace in one); specs may not set them and infos hide them. */
#define POSTS_RUNTIME_LABEL_PREFIX "outpost.runtime/"

typedef struct posts_runtime_ops {
  const char *name; /* "docker" */
  void (*free)(posts_runtime *rt);
  int (*ping)(posts_runtime *rt, posts_err *err);
  int (*create)(posts_runtime *rt, const posts_env_spec *spec, char *id, posts_err *err);
  int (*start)(posts_runtime *rt, const char *id, posts_err *err);
  int (*stop)(posts_runtime *rt, const char *id, int grace_s, posts_err *err);
  int (*remove)(posts_runtime *rt, const char *id, bool force, posts_err *err);
  int (*inspect)(posts_runtime *rt, const char *id, posts_env_info *info, posts_err *err);
  int (*claim)(posts_runtime *rt, const char *id, const char *owner, posts_err *err);
  int (*list)(posts_runtime *rt, const char *ns, const posts_label *sel, size_t n_sel,
              posts_env_infos *out, posts_err *err);
  int (*exec)(posts_runtime *rt, const char *id, const posts_exec_req *req, posts_exec_result *res,
              posts_err *err);
  /* Optional: NULL when no call of the backend waits long. */
  void (*cancel)(posts_runtime *rt);
  /* Optional: NULL when the backend cannot watch (posts_env_watch then
   * answers -ENOTSUP). */
  int (*watch)(posts_runtime *rt, const char *ns, const posts_label *sel, size_t n_sel,
               posts_watch_fn fn, void *arg, const atomic_bool *stop, posts_err *err);
} posts_runtime_ops;

/* Backends put this first in their own struct. */
struct posts_runtime {
  const posts_runtime_ops *ops;
};

/* A growing NUL-terminated buffer that keeps at most max bytes and notes
 * whether more came (over) or memory ran out (nomem): the backends' answers. */
typedef struct posts__buf {
  char *p;
  size_t len, cap, max;
  bool over, nomem;
} posts__buf;

void posts__buf_put(posts__buf *b, const char *data, size_t n);

/* An RFC 3339 timestamp ("2024-05-01T10:00:00.123456789Z", or with
 * "+02:00") as unix seconds; 0 when it is not one. */
int64_t posts__parse_time(const char *s);

/* Fills err (when not NULL) and returns code, so that callers can write
 * `return posts__err(err, -EINVAL, 0, "...")`. */
int posts__err(posts_err *err, int code, long status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends a copy of key=value to info's labels. 0 or -ENOMEM. */
int posts__info_label_add(posts_env_info *info, const char *key, const char *value);

/* Sets *dst to a copy of src ("" when NULL). 0 or -ENOMEM. */
int posts__strdup(char **dst, const char *src);

#endif
