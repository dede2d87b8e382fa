/*
 * resources.h — loads configuration files that hold Kubernetes-style
 * resources (Knative Broker and Trigger objects, or any other kind) into
 * cJSON trees, from YAML or JSON, and reads fields out of them.
 *
 * Input forms, all giving one cJSON array with one object per resource:
 *   - a YAML stream of one or more documents ("---" between them), each a
 *     mapping; empty documents (a stray "---" at the end) are skipped;
 *   - a JSON object (libyaml reads JSON as YAML flow style);
 *   - a JSON array (or YAML sequence) of objects;
 *   - an object with "kind: List" and "items", whose items are the
 *     resources (apiVersion, metadata and the like of the List are
 *     dropped; "items: null" is an empty list). Only the top level is
 *     expanded: a List among the items stays one resource.
 * No schema is checked: apiVersion and kind may be absent (see res_is).
 *
 * Scalars follow the YAML 1.2 core schema, with the departures marked (*):
 *   plain null, Null, NULL, ~ and the empty scalar  → null
 *   plain true/True/TRUE, false/False/FALSE         → bool
 *   plain decimal integers ([-+]?[0-9]+)            → number
 *   plain floats ([-+]?(.5|1|1.|1.5)(e[-+]?3)?)    → number (a double)
 *   everything else, and every quoted or block (| >) scalar → string
 * so "yes", "no", "on", "off" (YAML 1.1 booleans) are strings, and "010" is
 * ten (YAML 1.1 read it as octal eight).
 *   (*) 0o17 and 0x1F stay strings: only decimal numbers become numbers.
 *   (*) .inf, -.inf and .nan (and floats that overflow a double, like 1e400)
 *       are refused: JSON has no infinity or NaN. Quote them for a string.
 *   (*) integers beyond ±(2^53 − 1) become strings holding the text as
 *       written, because a cJSON number is a double and would round them
 *       (9007199254740993 would read back as ...992). A consumer that wants
 *       such a value as an integer parses the string.
 * Explicit tags: !!str, !!int, !!float, !!bool, !!null (on scalars), !!map,
 * !!seq (on their kind) and the non-specific "!" (a string, for a scalar)
 * are accepted; !!int, !!float, !!bool and !!null check the value against
 * the forms above. Every other tag (!!binary, !!timestamp, !!set, local
 * tags such as !Ref) is refused. A %YAML 1.1 directive does not change the
 * schema.
 *
 * Mapping keys are scalars, taken as their text ("1: x" has the key "1");
 * a key that is a mapping or sequence is refused, and so is a key that
 * appears twice in one mapping (after the conversion: 1 and "1" collide).
 * Strings holding a NUL character (YAML "\0", JSON "\u0000") are refused,
 * since cJSON strings end at the first NUL.
 *
 * Also refused: anchors and aliases (&a, *a, and so "<<: *a" merges), a
 * document that is neither a mapping nor a sequence of mappings, a List
 * whose items are not mappings, more than RES_MAX_DOCS documents or
 * resources, collections nested deeper than RES_MAX_DEPTH, and whatever
 * libyaml refuses (syntax errors, invalid UTF-8, control characters).
 *
 * Known limits of reading JSON through libyaml: a surrogate pair escape
 * ("\ud83d\ude00") is refused, since YAML escapes name code points (write
 * the character itself, or "\U0001F600"); so is a line break between a key
 * and its ':'. Both are rare in generated JSON except from encoders that
 * escape everything outside ASCII.
 *
 * Errors are negative errno values, with a res_err naming the place:
 *   -EINVAL    malformed input or a refused construct (above)
 *   -EFBIG     file larger than max_bytes (res_load_file)
 *   -ENOMEM    out of memory
 *   other      from open(2)/read(2) in res_load_file: -ENOENT, -EACCES,
 *              -EISDIR, ...
 *
 * Thread rules: every function is reentrant; a tree is not shared while
 * one thread changes it. cJSON's allocation hooks are used as set.
 */
#ifndef OUTPOST_CORE_RESOURCES_H
#define OUTPOST_CORE_RESOURCES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Most documents in one stream, and most resources it yields. */
#define RES_MAX_DOCS 10000
/* Deepest nesting of mappings and sequences; a document's root is depth 1. */
#define RES_MAX_DEPTH 64

/* Where and why a load failed. */
typedef struct res_err {
  int line;      /* 1-based; 0 when the error has no place (open, size, memory) */
  int column;    /* 1-based, in characters; 0 as for line */
  char msg[256]; /* "line 3, column 5: duplicate key 'name'", or with no place
                    "cannot open 'x.yaml': No such file or directory" */
} res_err;

/* Parses text (len bytes, UTF-8, or UTF-16 with a byte order mark; need not
 * be NUL-terminated) in any of the forms above. On success returns 0 and
 * *out is a new cJSON array of resource objects (possibly empty), owned by
 * the caller, who frees it with cJSON_Delete. On failure returns a negative
 * errno, sets *out to NULL and, when err is not NULL, fills *err. */
int res_parse(const char *text, size_t len, cJSON **out, res_err *err);

/* Reads the file at path and parses it as res_parse does. max_bytes bounds
 * the file's size (0: no bound); a larger file gives -EFBIG without being
 * parsed. Parse errors name the line and column but not the path, which the
 * caller adds. */
int res_load_file(const char *path, size_t max_bytes, cJSON **out, res_err *err);

/* The node at a dotted path below obj ("metadata.name", "spec.subscriber.uri"),
 * or NULL when some part is absent. Each segment names an object member
 * (case-sensitive); a segment of decimal digits indexes an array
 * ("spec.filters.0"). An empty path or segment matches nothing. obj may be
 * NULL. The result points into obj's tree. */
const cJSON *res_get(const cJSON *obj, const char *dotted_path);

/* The member key of the object obj, taken whole: for keys that contain dots,
 * such as annotation names ("eventing.knative.dev/broker.class"). NULL when
 * obj is NULL or not an object or has no such member. */
const cJSON *res_get_key(const cJSON *obj, const char *key);

/* The string at a dotted path (as res_get), or NULL when absent or not a
 * string. Points into obj's tree. */
const char *res_str(const cJSON *obj, const char *dotted_path);

/* True when obj's "kind" is the string kind and, when api_group is not NULL,
 * its "apiVersion" is "<api_group>/<version>" for some non-empty version
 * ("eventing.knative.dev" matches "eventing.knative.dev/v1"). api_group ""
 * is the core group, whose apiVersion has no group ("v1"). */
bool res_is(const cJSON *obj, const char *api_group, const char *kind);

/* Whether s (n bytes) is a Kubernetes name of the DNS-label kind (RFC 1123):
 * [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters. Namespaces, brokers. */
bool res_valid_dns_label(const char *s, size_t n);

/* Whether s (n bytes) is a Kubernetes name of the DNS-subdomain kind (RFC
 * 1123): DNS labels joined by '.', at most 253 characters. Nodes
 * ("ip-10-0-1-7.ec2.internal"), pods. */
bool res_valid_dns_subdomain(const char *s, size_t n);

/* An ISO-8601 duration (Knative delivery timings, lab idle timeouts) ("PT0.5S", "PT1M30S",
 * "P1DT2H") in milliseconds, rounded to the nearest. Components in ISO order, each at most once:
 * weeks and days, then after T hours, minutes and seconds; digits only (no sign, no exponent); a
 * fraction ('.' or ',') only on the last component
 * ("PT1.5M", not "PT1.5M30S"). Returns 0, or -EINVAL with *ms untouched
 * (also for years and months, which have no fixed length, and for a total
 * beyond int64_t). */
int res_duration_ms(const char *s, int64_t *ms);

#endif
