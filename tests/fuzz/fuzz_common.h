/*
 * fuzz_common.h — what the libFuzzer targets share: how an input chooses its
 * decoder limits, how a byte string is framed into headers and a body, and
 * the checks that abort() with a readable diagnosis when a property breaks.
 *
 * Input conventions (see tests/fuzz/README.md):
 *   - An input starting with '#' and at least 6 bytes long carries five limit
 *     selector bytes after the '#' (fuzz_limits_pick); the document follows.
 *     Any other input is decoded under the default limits.
 *   - Header-carrying targets read "name: value" lines (split at the first
 *     ':', one space after it dropped) up to an empty line; the rest is the
 *     body. Without an empty line there is no body (fuzz_frame_split).
 */
#ifndef OUTPOST_TESTS_FUZZ_COMMON_H
#define OUTPOST_TESTS_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ce.h"

/* Chooses the limits for the first decode of an input and strips the limit
 * prefix from it: *data and *size are advanced past the prefix when there is
 * one. Small limits make the fuzzer reach every limit with short inputs. */
void fuzz_limits_pick(const uint8_t **data, size_t *size, ce_limits *lim);

/* Limits for decoding what our own encoder wrote: none, since an encoded form
 * may legitimately be larger than the input it came from (escaping,
 * percent-encoding, one header per attribute). */
void fuzz_limits_unbounded(ce_limits *lim);

/* A framed input: borrowed header slices and an optional body, all pointing
 * into the input. */
typedef struct fuzz_frame {
  ce_kv *headers; /* owned array (the strings are borrowed) */
  size_t n_headers;
  const uint8_t *body; /* NULL when the input has no empty line */
  size_t body_len;
} fuzz_frame;

/* Splits data into header lines and a body. Returns 0 or -ENOMEM. On success
 * fuzz_frame_cleanup frees the array. */
int fuzz_frame_split(const uint8_t *data, size_t size, fuzz_frame *fr);
void fuzz_frame_cleanup(fuzz_frame *fr);

/* Aborts unless rc is 0, a documented negative errno of ce.h, or (when
 * allow_positive) a non-negative mode, and unless *err holds NUL-terminated
 * strings. `what` names the call in the diagnosis. */
void fuzz_check_rc(const char *what, int rc, bool allow_positive, const ce_err *err);

/* Aborts when a message decoded under lim breaks one of lim's body size,
 * header count or header size limits: the decoder should have refused it. */
void fuzz_check_limits(const char *what, const fuzz_frame *fr, const ce_limits *lim);

/* Aborts unless a decoded event passes ce_event_validate, as the decoders
 * promise. */
void fuzz_check_valid(const char *what, const ce_event *ev);

/* Aborts unless a and b are ce_event_equal, printing both events and the
 * encoded form (bytes, len) that b was decoded from. */
void fuzz_check_equal(const char *what, const ce_event *a, const ce_event *b, const void *bytes,
                      size_t len);

/* Aborts unless a and b have the same attribute names and values as strings
 * and the same data: ce_event_equal without the types, which binary mode
 * does not carry for extensions. For the cross-mode checks. */
void fuzz_check_same_values(const char *what, const ce_event *a, const ce_event *b,
                            const void *bytes, size_t len);

/* Prints msg and the bytes in C-string form to stderr, then aborts. */
void fuzz_fail(const char *what, const char *msg, const void *bytes, size_t len);

/* Writes an event to stderr: attributes (name, type, value) and data. */
void fuzz_dump_event(const char *label, const ce_event *ev);

/* Writes bytes to stderr as a C string literal (printable ASCII as is, the
 * rest as \xNN), at most max bytes. */
void fuzz_dump_bytes(const char *label, const void *bytes, size_t len, size_t max);

#endif
