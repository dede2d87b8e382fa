/*
 * fuzz_http.c — libFuzzer target for the HTTP binding: the input is framed
 * into "name: value" header lines and a body (fuzz_common.h) and given to
 * ce_http_decode. A decoded message must respect the limits it was decoded
 * under, hold valid events, and survive being encoded in the same mode and
 * decoded again unchanged.
 *
 * With OUTPOST_FUZZ_CROSS=1 in the environment, a single event is also
 * re-encoded in the other mode (binary <-> structured). That is a stronger
 * claim than the API makes, so it is off for the CTest runs.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ce.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t empty[1];

/* Encodes the n events in `mode` (BATCH encodes them all, the others the
 * first), decodes the result without limits and compares: strictly, or, when
 * `cross` (the events came from another mode), value by value. */
static void round_trip(ce_event *const *evs, size_t n, ce_mode mode, bool cross) {
  ce_limits unbounded;
  ce_headers hdrs;
  ce_buf body;
  ce_batch b2;
  ce_err err;
  const char *what = mode == CE_MODE_BATCH ? "ce_http_encode_batch" : "ce_http_encode";
  int rc;

  fuzz_limits_unbounded(&unbounded);
  ce_headers_init(&hdrs);
  ce_buf_init(&body);
  ce_batch_init(&b2);
  if (mode == CE_MODE_BATCH)
    rc = ce_http_encode_batch(evs, n, &hdrs, &body, &err);
  else
    rc = ce_http_encode(evs[0], mode, &hdrs, &body, &err);
  if (rc == -ENOMEM) goto cleanup;
  if (rc != 0) {
    fprintf(stderr, "mode %d: rc %d, %s: %s\n", (int)mode, rc, err.attr, err.reason);
    if (n > 0) fuzz_dump_event("decoded", evs[0]);
    fuzz_fail(what, "cannot encode what ce_http_decode accepted", NULL, 0);
  }
  memset(&err, 'A', sizeof(err));
  rc = ce_http_decode(hdrs.items, hdrs.n, body.data ? (const void *)body.data : empty, body.len,
                      &unbounded, &b2, &err);
  if (rc == -ENOMEM) goto cleanup;
  if (rc != (int)mode) {
    for (size_t i = 0; i < hdrs.n; i++) {
      fuzz_dump_bytes("header name", hdrs.items[i].name, hdrs.items[i].name_len, 256);
      fuzz_dump_bytes("      value", hdrs.items[i].value, hdrs.items[i].value_len, 1024);
    }
    fprintf(stderr, "mode %d re-decoded as rc %d, event %d, %s: %s\n", (int)mode, rc, err.index,
            err.attr, err.reason);
    fuzz_fail("ce_http_decode", "rejects or misreads what the encoder wrote", body.data, body.len);
  }
  if (b2.n != (mode == CE_MODE_BATCH ? n : 1))
    fuzz_fail("ce_http_decode", "round trip changed the number of events", body.data, body.len);
  for (size_t i = 0; i < b2.n; i++) {
    if (cross)
      fuzz_check_same_values(what, evs[i], b2.ev[i], body.data, body.len);
    else
      fuzz_check_equal(what, evs[i], b2.ev[i], body.data, body.len);
  }

cleanup:
  ce_batch_cleanup(&b2);
  ce_buf_cleanup(&body);
  ce_headers_cleanup(&hdrs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ce_limits lim;
  fuzz_frame fr;
  ce_batch b;
  ce_err err;
  const uint8_t *body;
  int rc;

  fuzz_limits_pick(&data, &size, &lim);
  if (fuzz_frame_split(data, size, &fr) != 0) return 0;
  /* HTTP always has a body, maybe empty; the API does not take NULL here. */
  body = fr.body ? fr.body : empty;

  ce_batch_init(&b);
  memset(&err, 'A', sizeof(err));
  rc = ce_http_decode(fr.headers, fr.n_headers, body, fr.body_len, &lim, &b, &err);
  fuzz_check_rc("ce_http_decode", rc, true, &err);
  if (rc < 0 && b.n != 0) fuzz_fail("ce_http_decode", "failed but kept events", NULL, 0);
  if (rc < 0) goto cleanup;
  if (rc != CE_MODE_BINARY && rc != CE_MODE_STRUCTURED && rc != CE_MODE_BATCH)
    fuzz_fail("ce_http_decode", "returned an unknown mode", NULL, 0);
  if (rc != CE_MODE_BATCH && b.n != 1)
    fuzz_fail("ce_http_decode", "binary or structured mode did not give one event", NULL, 0);
  if (rc == CE_MODE_BATCH && lim.max_batch && b.n > lim.max_batch)
    fuzz_fail("ce_http_decode", "accepted more events than max_batch", NULL, 0);
  fuzz_check_limits("ce_http_decode", &fr, &lim);
  for (size_t i = 0; i < b.n; i++) fuzz_check_valid("ce_http_decode", b.ev[i]);

  round_trip(b.ev, b.n, (ce_mode)rc, false);
  if (rc != CE_MODE_BATCH && getenv("OUTPOST_FUZZ_CROSS"))
    round_trip(b.ev, 1, rc == CE_MODE_BINARY ? CE_MODE_STRUCTURED : CE_MODE_BINARY, true);

cleanup:
  ce_batch_cleanup(&b);
  fuzz_frame_cleanup(&fr);
  return 0;
}
