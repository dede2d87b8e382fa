/*
 * ce_binding.h — private to core/: the parts the HTTP and Kafka bindings
 * share (binary-mode header mapping, limit checks).
 */
#ifndef OUTPOST_CORE_CE_BINDING_H
#define OUTPOST_CORE_CE_BINDING_H

#include "core/ce.h"

/* How a binding spells attributes as headers in binary mode. */
typedef struct ce__binary_spec {
  const char *prefix;   /* "ce-" (HTTP) or "ce_" (Kafka) */
  bool prefix_any_case; /* HTTP header names are case-insensitive */
  bool percent_encoded; /* HTTP values are percent-encoded; Kafka's are raw UTF-8 */
} ce__binary_spec;

/* Decodes binary mode: attributes from prefixed headers, datacontenttype from
 * ct (may be NULL), data from the body when has_body. */
int ce__decode_binary(const ce__binary_spec *spec, const ce_kv *headers, size_t n_headers,
                      const ce_kv *ct, const void *body, size_t body_len, bool has_body,
                      ce_event **out, ce_err *err);
/* Appends the binary-mode headers of ev (all attributes but datacontenttype,
 * which becomes the content-type header). */
int ce__encode_binary(const ce_event *ev, const char *prefix, bool percent, ce_headers *hdrs,
                      ce_err *err);
/* Checks header count and sizes and body size; finds the content-type header. */
int ce__check_limits(const ce_kv *headers, size_t n_headers, size_t body_len, const ce_limits *lim,
                     const ce_kv **ct, ce_err *err);
/* Fails with -ENOTSUP naming the content type. */
int ce__unsupported(const ce_kv *ct, ce_err *err);

#endif
