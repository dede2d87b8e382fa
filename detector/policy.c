/*
 * policy.c — writes a cgroup's policy into the kernel's rule maps: binaries
 * and path prefixes into the LPM trie det_paths, destinations into the hash
 * det_dests. A policy replaces the previous one without a gap: the old keys
 * are listed first, the new ones written, and only then the old keys that
 * the new policy does not hold are deleted.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <bpf/bpf.h>
#include <linux/types.h>

#include "bpf/detector.h"
#include "detector/detector.h"
#include "detector/detector_int.h"

/* Keys of one map, all of one size. */
typedef struct keyset {
  unsigned char *keys;
  size_t n, cap, size;
} keyset;

static int keyset_push(keyset *s, const void *k) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 16;
    void *p = realloc(s->keys, cap * s->size);
    if (!p) return -ENOMEM;
    s->keys = p;
    s->cap = cap;
  }
  memcpy(s->keys + s->n++ * s->size, k, s->size);
  return 0;
}

static bool keyset_has(const keyset *s, const void *k) {
  for (size_t i = 0; i < s->n; i++)
    if (memcmp(s->keys + i * s->size, k, s->size) == 0) return true;
  return false;
}

/* A trie key as policy_apply writes it: nothing past prefixlen bits but
 * zeros, so that keys compare as bytes. */
static void path_key_canon(struct det_path_key *k) {
  size_t used = k->prefixlen / 8;
  if (used < sizeof k->data) memset(k->data + used, 0, sizeof k->data - used);
}

static int path_key(uint64_t cgroup_id, uint8_t kind, const char *path, bool whole,
                    struct det_path_key *k) {
  size_t len = path ? strlen(path) : 0;

  if (len == 0) return -EINVAL;
  if (len > DETECTOR_RULE_PATH_MAX) return -ENAMETOOLONG;
  memset(k, 0, sizeof *k);
  memcpy(k->data, &cgroup_id, sizeof cgroup_id);
  k->data[8] = kind;
  memcpy(k->data + 9, path, len);
  /* A whole binary path ends with its NUL, which a longer path lacks. */
  k->prefixlen = (uint32_t)(9 + len + (whole ? 1 : 0)) * 8;
  return 0;
}

static int dest_key(uint64_t cgroup_id, const detector_dest *dst, struct det_dest_key *k) {
  memset(k, 0, sizeof *k);
  k->cgroup_id = cgroup_id;
  k->port = dst->port;
  if (dst->family == AF_INET)
    memcpy(k->addr, dst->addr, 4);
  else if (dst->family == AF_INET6)
    memcpy(k->addr, dst->addr, 16);
  else
    return -EINVAL;
  k->family = (uint16_t)dst->family;
  return 0;
}

/* Appends the keys that belong to the cgroup to out. */
static int keys_of(int fd, keyset *out, uint64_t cgroup_id, bool is_path) {
  unsigned char prev[sizeof(struct det_path_key)], next[sizeof(struct det_path_key)];
  void *pp = NULL;
  int rc;

  while ((rc = bpf_map_get_next_key(fd, pp, next)) == 0) {
    uint64_t owner;
    if (is_path) {
      path_key_canon((struct det_path_key *)next);
      memcpy(&owner, ((struct det_path_key *)next)->data, sizeof owner);
    } else {
      owner = ((struct det_dest_key *)next)->cgroup_id;
    }
    if (owner == cgroup_id && (rc = keyset_push(out, next))) return rc;
    memcpy(prev, next, out->size);
    pp = prev;
  }
  return rc == -ENOENT ? 0 : rc;
}

static int put(int fd, keyset *added, const void *k, uint32_t action) {
  struct det_rule r = {.action = action};
  int rc = bpf_map_update_elem(fd, k, &r, BPF_ANY);
  return rc ? rc : keyset_push(added, k);
}

static int put_paths(int fd, keyset *added, uint64_t cgroup_id, uint8_t kind, bool whole,
                     const char *const *paths, size_t n, uint32_t action) {
  struct det_path_key k;
  int rc;

  for (size_t i = 0; i < n; i++) {
    if ((rc = path_key(cgroup_id, kind, paths[i], whole, &k)) || (rc = put(fd, added, &k, action)))
      return rc;
  }
  return 0;
}

/* Watched prefixes go in before forbidden ones: the same prefix in both lists
 * ends up forbidden. */
static int put_policy(int paths_fd, int dests_fd, uint64_t cgroup_id, const detector_policy *p,
                      keyset *paths, keyset *dests) {
  struct det_dest_key dk;
  int rc;

  if ((rc = put_paths(paths_fd, paths, cgroup_id, DET_RULE_EXEC, true, p->forbidden_binaries,
                      p->n_forbidden_binaries, DET_RULE_KILL)) ||
      (rc = put_paths(paths_fd, paths, cgroup_id, DET_RULE_OPEN, false, p->watched_prefixes,
                      p->n_watched_prefixes, DET_RULE_WATCH)) ||
      (rc = put_paths(paths_fd, paths, cgroup_id, DET_RULE_OPEN, false, p->forbidden_prefixes,
                      p->n_forbidden_prefixes, DET_RULE_KILL)))
    return rc;
  for (size_t i = 0; i < p->n_forbidden_dests; i++) {
    if ((rc = dest_key(cgroup_id, &p->forbidden_dests[i], &dk)) ||
        (rc = put(dests_fd, dests, &dk, DET_RULE_KILL)))
      return rc;
  }
  return 0;
}

static int drop_stale(int fd, const keyset *old, const keyset *kept) {
  for (size_t i = 0; i < old->n; i++) {
    const void *k = old->keys + i * old->size;
    if (keyset_has(kept, k)) continue;
    int rc = bpf_map_delete_elem(fd, k);
    if (rc && rc != -ENOENT) return rc;
  }
  return 0;
}

int detector__policy_apply(int paths_fd, int dests_fd, uint64_t cgroup_id,
                           const detector_policy *p) {
  keyset old_paths = {.size = sizeof(struct det_path_key)};
  keyset old_dests = {.size = sizeof(struct det_dest_key)};
  keyset new_paths = {.size = sizeof(struct det_path_key)};
  keyset new_dests = {.size = sizeof(struct det_dest_key)};
  int rc;

  if ((rc = keys_of(paths_fd, &old_paths, cgroup_id, true)) ||
      (rc = keys_of(dests_fd, &old_dests, cgroup_id, false)))
    goto done;
  if (p && (rc = put_policy(paths_fd, dests_fd, cgroup_id, p, &new_paths, &new_dests))) goto done;
  if ((rc = drop_stale(paths_fd, &old_paths, &new_paths)) ||
      (rc = drop_stale(dests_fd, &old_dests, &new_dests)))
    goto done;
done:
  free(old_paths.keys);
  free(old_dests.keys);
  free(new_paths.keys);
  free(new_dests.keys);
  return rc;
}
