/*
 * fuzz_ingress.c — libFuzzer target for the broker's fast path
 * (broker__ingress_fast, broker/ingress_fast.c) against its oracle, the
 * checked path (broker__ingress_checked: ce_http_decode, stamp,
 * broker__batch_encode). The input is framed into header lines and a body as
 * for fuzz_http (fuzz_common.h), with its limit prefix, and both paths run
 * on it under a TTL of 255 and then of 1.
 *
 * The fast path may decline anything (-EAGAIN, its batch left empty); what
 * it accepts, the checked path must accept too and make the same record,
 * header for header and byte for byte (tests/broker/record_diff.h). Any
 * other return, a declined batch that is not empty, an accepted request the
 * checked path refuses, or another record aborts with the request and the
 * difference. test_ingress_fast.c checks the same promise on fixed requests
 * and deterministic mutants; this lets coverage steer the search.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker_int.h"
#include "core/ce.h"
#include "tests/broker/record_diff.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t empty[1];
static const char now[] = "2026-11-22T03:31:00.123456789Z";

static void both(const uint8_t *input, size_t input_len, const fuzz_frame *fr, const void *body,
                 const ce_limits *lim, int32_t ttl) {
  broker_batch fast = {0}, checked = {0};
  ce_err err = {.index = -1};
  int frc =
      broker__ingress_fast(fr->headers, fr->n_headers, body, fr->body_len, lim, ttl, now, &fast);
  if (frc == -EAGAIN) {
    if (fast.recs || fast.n || fast.mem)
      fuzz_fail("broker__ingress_fast", "declined, but its batch is not empty", input, input_len);
    return;
  }
  if (frc != 0) {
    fprintf(stderr, "broker__ingress_fast returned %d (TTL %d)\n", frc, (int)ttl);
    fuzz_fail("broker__ingress_fast", "returned neither 0 nor -EAGAIN", input, input_len);
  }
  int crc = broker__ingress_checked(fr->headers, fr->n_headers, body, fr->body_len, lim, ttl, now,
                                    &checked, &err);
  if (crc == -ENOMEM) goto done; /* the oracle ran out of memory: nothing to compare */
  if (crc != 1) {
    fprintf(stderr, "the checked path: %d, %s: %s (TTL %d)\n", crc, err.attr, err.reason, (int)ttl);
    fuzz_fail("broker__ingress_fast", "accepted what the checked path refuses", input, input_len);
  }
  const char *why = record_differ(&fast, &checked);
  if (why) {
    fprintf(stderr, "the records differ: %s (TTL %d)\n", why, (int)ttl);
    fuzz_fail("broker__ingress_fast", "made another record than the checked path", input,
              input_len);
  }
done:
  broker_batch_cleanup(&fast);
  broker_batch_cleanup(&checked);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *input = data;
  size_t input_len = size;
  ce_limits lim;
  fuzz_frame fr;
  fuzz_limits_pick(&data, &size, &lim);
  if (fuzz_frame_split(data, size, &fr) != 0) return 0;
  /* HTTP always has a body, maybe empty; neither path takes NULL. */
  const void *body = fr.body ? (const void *)fr.body : empty;
  both(input, input_len, &fr, body, &lim, 255);
  both(input, input_len, &fr, body, &lim, 1);
  fuzz_frame_cleanup(&fr);
  return 0;
}
