/*
 * ce_peer.c — Outpost's side of the conformance tests against the CloudEvents
 * JS SDK (conformance.mjs). It reads one JSON request per line on stdin and
 * writes one JSON response per line on stdout, so that the SDK's messages go
 * through our decoders and our messages through the SDK's, with nothing but
 * the public API of core/ce.h in between.
 *
 * Requests ("op" picks one; bodies and values travel as base64):
 *   {"op":"http_decode","headers":{name:value},"body_b64":s|null}
 *       -> {"ok":true,"mode":m,"event":<ce_json_encode output>}
 *   {"op":"http_encode","event":e,"mode":"binary"|"structured"}
 *       -> {"ok":true,"headers":{name:value},"body_b64":s}
 *   {"op":"kafka_decode","headers":{name:value},"key":s|null,"value_b64":s|null}
 *       -> {"ok":true,"mode":m,"event":<ce_json_encode output>}
 *   {"op":"kafka_encode","event":e,"mode":"binary"|"structured"}
 *       -> {"ok":true,"headers":{name:value},"key":s|null,"value_b64":s|null}
 * where e is an event in the JSON format, either as an object or as a string
 * holding the JSON text (used verbatim, so no number is re-printed on the
 * way). A core failure answers {"ok":false,"code":-errno,"errno":"EINVAL",
 * "attr":...,"reason":...}; a malformed request answers {"ok":false,
 * "peer_error":...}. cJSON handles this envelope only: events are decoded and
 * encoded by core alone, and our encoder's JSON is passed on byte for byte.
 */
#include "core/ce.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* The decoders' limits: the defaults, set once in main. */
static ce_limits limits;

/* ---------------------------------------------------------------- base64 */

/* The envelope's own base64, independent of core's, so that a base64 bug in
 * core shows up as a mismatch instead of cancelling out. */
static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const unsigned char *in, size_t len) {
  char *out = malloc(4 * ((len + 2) / 3) + 1), *o = out;
  if (!out) return NULL;
  for (size_t i = 0; i < len; i += 3) {
    unsigned v = (unsigned)in[i] << 16;
    if (i + 1 < len) v |= (unsigned)in[i + 1] << 8;
    if (i + 2 < len) v |= in[i + 2];
    *o++ = b64_alphabet[v >> 18 & 63];
    *o++ = b64_alphabet[v >> 12 & 63];
    *o++ = i + 1 < len ? b64_alphabet[v >> 6 & 63] : '=';
    *o++ = i + 2 < len ? b64_alphabet[v & 63] : '=';
  }
  *o = '\0';
  return out;
}

static int b64_value(char c) {
  const char *p = c ? strchr(b64_alphabet, c) : NULL;
  return p ? (int)(p - b64_alphabet) : -1;
}

/* Decodes padded base64 into a new buffer (*out, *out_len). Returns 0 or -1. */
static int b64_decode(const char *in, unsigned char **out, size_t *out_len) {
  size_t len = strlen(in), n = 0;
  if (len % 4) return -1;
  unsigned char *buf = malloc(len / 4 * 3 + 1);
  if (!buf) return -1;
  for (size_t i = 0; i < len; i += 4) {
    int v[4];
    for (int k = 0; k < 4; k++) v[k] = b64_value(in[i + k]);
    bool last = i + 4 == len;
    bool pad2 = last && in[i + 2] == '=' && in[i + 3] == '=';
    bool pad1 = last && !pad2 && in[i + 3] == '=';
    if (v[0] < 0 || v[1] < 0 || (v[2] < 0 && !pad2) || (v[3] < 0 && !pad1 && !pad2)) {
      free(buf);
      return -1;
    }
    buf[n++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
    if (!pad2) buf[n++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
    if (!pad1 && !pad2) buf[n++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
  }
  *out = buf;
  *out_len = n;
  return 0;
}

/* ---------------------------------------------------------------- replies */

static const char *errno_name(int code) {
  switch (-code) {
  case EINVAL:
    return "EINVAL";
  case EMSGSIZE:
    return "EMSGSIZE";
  case E2BIG:
    return "E2BIG";
  case ENOTSUP:
    return "ENOTSUP";
  case ENOMEM:
    return "ENOMEM";
  default:
    return "other";
  }
}

static cJSON *reply_peer_error(const char *what) {
  cJSON *r = cJSON_CreateObject();
  cJSON_AddFalseToObject(r, "ok");
  cJSON_AddStringToObject(r, "peer_error", what);
  return r;
}

static cJSON *reply_core_error(int code, const ce_err *err) {
  cJSON *r = cJSON_CreateObject();
  cJSON_AddFalseToObject(r, "ok");
  cJSON_AddNumberToObject(r, "code", code);
  cJSON_AddStringToObject(r, "errno", errno_name(code));
  cJSON_AddStringToObject(r, "attr", err->attr);
  cJSON_AddStringToObject(r, "reason", err->reason);
  return r;
}

static const char *mode_name(int mode) {
  return mode == CE_MODE_BINARY ? "binary" : mode == CE_MODE_STRUCTURED ? "structured" : "batch";
}

/* Adds ev, as ce_json_encode writes it, under "event". The text is checked to
 * be JSON and then embedded raw; line breaks (whitespace, as valid JSON has
 * none inside strings) become spaces so the reply stays on one line. */
static int add_event(cJSON *r, const ce_event *ev, ce_err *err) {
  ce_buf out;
  ce_buf_init(&out);
  int rc = ce_json_encode(ev, &out, err);
  if (rc < 0) goto cleanup;
  cJSON *check = cJSON_ParseWithLength(out.data, out.len);
  if (!check) {
    snprintf(err->reason, sizeof err->reason, "ce_json_encode wrote invalid JSON");
    rc = -EINVAL;
    goto cleanup;
  }
  cJSON_Delete(check);
  for (size_t i = 0; i < out.len; i++)
    if (out.data[i] == '\n' || out.data[i] == '\r') out.data[i] = ' ';
  cJSON_AddItemToObject(r, "event", cJSON_CreateRaw(out.data));
cleanup:
  ce_buf_cleanup(&out);
  return rc;
}

/* {"name":"value",...}, or NULL with *dup set when a name comes twice
 * (case-insensitive): a JSON object cannot show a repeated header, so the
 * repeat is reported instead. */
static cJSON *headers_to_json(const ce_headers *hdrs, const char **dup) {
  cJSON *o = cJSON_CreateObject();
  for (size_t i = 0; i < hdrs->n; i++) {
    const ce_kv *kv = &hdrs->items[i];
    if (ce_headers_find(hdrs, kv->name) != kv) {
      *dup = kv->name;
      cJSON_Delete(o);
      return NULL;
    }
    cJSON_AddStringToObject(o, kv->name, kv->value);
  }
  return o;
}

static cJSON *reply_duplicate(const char *name) {
  char what[160];
  snprintf(what, sizeof what, "encoder wrote header %.100s twice", name ? name : "?");
  return reply_peer_error(what);
}

/* Borrows the request's headers as ce_kv (pointing into the cJSON tree).
 * Returns the count, or -1 when a value is not a string. */
static int headers_from_json(const cJSON *obj, ce_kv **out) {
  int n = cJSON_GetArraySize(obj), i = 0;
  ce_kv *kv = calloc((size_t)n + 1, sizeof *kv);
  if (!kv) return -1;
  for (const cJSON *h = obj ? obj->child : NULL; h; h = h->next, i++) {
    if (!cJSON_IsString(h)) {
      free(kv);
      return -1;
    }
    kv[i] = (ce_kv){h->string, strlen(h->string), h->valuestring, strlen(h->valuestring)};
  }
  *out = kv;
  return n;
}

/* The request's "event" (present: the caller checks) decoded with
 * ce_json_decode. */
static int event_from_request(const cJSON *e, ce_event **ev, ce_err *err) {
  char *text = cJSON_IsString(e) ? e->valuestring : cJSON_PrintUnformatted(e);
  if (!text) return -ENOMEM;
  int rc = ce_json_decode(text, strlen(text), &limits, ev, err);
  if (text != e->valuestring) free(text);
  return rc;
}

static int mode_from_request(const cJSON *req) {
  const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "mode"));
  if (m && strcmp(m, "binary") == 0) return CE_MODE_BINARY;
  if (m && strcmp(m, "structured") == 0) return CE_MODE_STRUCTURED;
  return -1;
}

/* A base64 field that may be null (no body / no value). */
static int bytes_from_request(const cJSON *req, const char *field, unsigned char **buf, size_t *len,
                              bool *present) {
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(req, field);
  *buf = NULL;
  *len = 0;
  *present = cJSON_IsString(f);
  if (!*present) return f && !cJSON_IsNull(f) ? -1 : 0;
  return b64_decode(f->valuestring, buf, len);
}

/* ---------------------------------------------------------------- operations */

static cJSON *op_http_decode(const cJSON *req) {
  ce_kv *kv = NULL;
  unsigned char *body = NULL;
  size_t body_len;
  bool has_body;
  ce_batch batch;
  ce_err err = {.index = -1};
  cJSON *r = NULL;

  ce_batch_init(&batch);
  int n = headers_from_json(cJSON_GetObjectItemCaseSensitive(req, "headers"), &kv);
  if (n < 0) return reply_peer_error("headers must be an object of strings");
  if (bytes_from_request(req, "body_b64", &body, &body_len, &has_body) < 0) {
    r = reply_peer_error("body_b64 must be base64 or null");
    goto cleanup;
  }
  int mode = ce_http_decode(kv, (size_t)n, body, body_len, &limits, &batch, &err);
  if (mode < 0) {
    r = reply_core_error(mode, &err);
    goto cleanup;
  }
  if (mode == CE_MODE_BATCH || batch.n != 1) {
    r = reply_peer_error("batches are not part of these tests");
    goto cleanup;
  }
  r = cJSON_CreateObject();
  cJSON_AddTrueToObject(r, "ok");
  cJSON_AddStringToObject(r, "mode", mode_name(mode));
  int rc = add_event(r, batch.ev[0], &err);
  if (rc < 0) {
    cJSON_Delete(r);
    r = reply_core_error(rc, &err);
  }
cleanup:
  ce_batch_cleanup(&batch);
  free(body);
  free(kv);
  return r;
}

static cJSON *op_kafka_decode(const cJSON *req) {
  ce_kv *kv = NULL;
  unsigned char *value = NULL;
  size_t value_len;
  bool has_value;
  ce_event *ev = NULL;
  ce_err err = {.index = -1};
  cJSON *r = NULL;

  /* The record key is not read: ce_kafka_decode maps attributes to the key,
   * never back, so partitionkey comes from the ce_partitionkey header. */
  int n = headers_from_json(cJSON_GetObjectItemCaseSensitive(req, "headers"), &kv);
  if (n < 0) return reply_peer_error("headers must be an object of strings");
  if (bytes_from_request(req, "value_b64", &value, &value_len, &has_value) < 0) {
    r = reply_peer_error("value_b64 must be base64 or null");
    goto cleanup;
  }
  /* A record without a value (a tombstone) reaches core as NULL. */
  int mode =
      ce_kafka_decode(kv, (size_t)n, has_value ? value : NULL, value_len, &limits, &ev, &err);
  if (mode < 0) {
    r = reply_core_error(mode, &err);
    goto cleanup;
  }
  r = cJSON_CreateObject();
  cJSON_AddTrueToObject(r, "ok");
  cJSON_AddStringToObject(r, "mode", mode_name(mode));
  int rc = add_event(r, ev, &err);
  if (rc < 0) {
    cJSON_Delete(r);
    r = reply_core_error(rc, &err);
  }
cleanup:
  ce_event_free(ev);
  free(value);
  free(kv);
  return r;
}

static cJSON *op_http_encode(const cJSON *req) {
  ce_event *ev = NULL;
  ce_headers hdrs;
  ce_buf body;
  ce_err err = {.index = -1};
  cJSON *r = NULL, *h = NULL;

  ce_headers_init(&hdrs);
  ce_buf_init(&body);
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(req, "event");
  int mode = mode_from_request(req);
  if (mode < 0) return reply_peer_error("mode must be binary or structured");
  if (!e) return reply_peer_error("request has no event");
  int rc = event_from_request(e, &ev, &err);
  if (rc < 0) {
    r = reply_core_error(rc, &err);
    goto cleanup;
  }
  rc = ce_http_encode(ev, (ce_mode)mode, &hdrs, &body, &err);
  if (rc < 0) {
    r = reply_core_error(rc, &err);
    goto cleanup;
  }
  const char *dup = NULL;
  h = headers_to_json(&hdrs, &dup);
  char *b64 = b64_encode((const unsigned char *)body.data, body.len);
  if (!h || !b64) {
    free(b64);
    r = h ? reply_peer_error("out of memory") : reply_duplicate(dup);
    goto cleanup;
  }
  r = cJSON_CreateObject();
  cJSON_AddTrueToObject(r, "ok");
  cJSON_AddItemToObject(r, "headers", h);
  h = NULL;
  cJSON_AddStringToObject(r, "body_b64", b64);
  free(b64);
cleanup:
  cJSON_Delete(h);
  ce_buf_cleanup(&body);
  ce_headers_cleanup(&hdrs);
  ce_event_free(ev);
  return r;
}

static cJSON *op_kafka_encode(const cJSON *req) {
  ce_event *ev = NULL;
  ce_headers hdrs;
  ce_buf key, value;
  bool has_key = false, has_value = false;
  ce_err err = {.index = -1};
  cJSON *r = NULL, *h = NULL;

  ce_headers_init(&hdrs);
  ce_buf_init(&key);
  ce_buf_init(&value);
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(req, "event");
  int mode = mode_from_request(req);
  if (mode < 0) return reply_peer_error("mode must be binary or structured");
  if (!e) return reply_peer_error("request has no event");
  int rc = event_from_request(e, &ev, &err);
  if (rc < 0) {
    r = reply_core_error(rc, &err);
    goto cleanup;
  }
  rc = ce_kafka_encode(ev, (ce_mode)mode, &hdrs, &key, &has_key, &value, &has_value, &err);
  if (rc < 0) {
    r = reply_core_error(rc, &err);
    goto cleanup;
  }
  const char *dup = NULL;
  h = headers_to_json(&hdrs, &dup);
  char *b64 = has_value ? b64_encode((const unsigned char *)value.data, value.len) : NULL;
  if (!h || (has_value && !b64)) {
    free(b64);
    r = h ? reply_peer_error("out of memory") : reply_duplicate(dup);
    goto cleanup;
  }
  r = cJSON_CreateObject();
  cJSON_AddTrueToObject(r, "ok");
  cJSON_AddItemToObject(r, "headers", h);
  h = NULL;
  /* partitionkey is a String attribute, so the key is UTF-8 text; an empty
   * ce_buf may have no storage yet. */
  if (has_key)
    cJSON_AddStringToObject(r, "key", key.data ? key.data : "");
  else
    cJSON_AddNullToObject(r, "key");
  if (has_value)
    cJSON_AddStringToObject(r, "value_b64", b64);
  else
    cJSON_AddNullToObject(r, "value_b64");
  free(b64);
cleanup:
  cJSON_Delete(h);
  ce_buf_cleanup(&value);
  ce_buf_cleanup(&key);
  ce_headers_cleanup(&hdrs);
  ce_event_free(ev);
  return r;
}

/* ---------------------------------------------------------------- main */

static cJSON *handle(const char *line, size_t len) {
  cJSON *req = cJSON_ParseWithLength(line, len);
  if (!cJSON_IsObject(req)) {
    cJSON_Delete(req);
    return reply_peer_error("request is not a JSON object");
  }
  const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "op"));
  cJSON *r;
  if (op && strcmp(op, "http_decode") == 0)
    r = op_http_decode(req);
  else if (op && strcmp(op, "http_encode") == 0)
    r = op_http_encode(req);
  else if (op && strcmp(op, "kafka_decode") == 0)
    r = op_kafka_decode(req);
  else if (op && strcmp(op, "kafka_encode") == 0)
    r = op_kafka_encode(req);
  else
    r = reply_peer_error("unknown op");
  cJSON_Delete(req);
  return r;
}

int main(void) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  ce_limits_init(&limits);
  while ((n = getline(&line, &cap, stdin)) > 0) {
    if (line[n - 1] == '\n') line[--n] = '\0';
    if (n == 0) continue;
    cJSON *r = handle(line, (size_t)n);
    char *text = r ? cJSON_PrintUnformatted(r) : NULL;
    if (!text) {
      fputs("{\"ok\":false,\"peer_error\":\"out of memory\"}\n", stdout);
    } else {
      fputs(text, stdout);
      fputc('\n', stdout);
    }
    fflush(stdout);
    free(text);
    cJSON_Delete(r);
  }
  free(line);
  return 0;
}
