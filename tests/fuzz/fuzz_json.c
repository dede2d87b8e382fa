/*
 * fuzz_json.c — libFuzzer target for the JSON event format: the input goes to
 * ce_json_decode and to ce_json_decode_batch. Whatever decodes must be a
 * valid event that survives encode-then-decode unchanged; whatever fails
 * must fail with a documented errno and a filled ce_err.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/ce.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip_one(const ce_event *ev) {
  ce_limits unbounded;
  ce_buf buf;
  ce_event *ev2 = NULL;
  ce_err err;
  int rc;

  fuzz_limits_unbounded(&unbounded);
  ce_buf_init(&buf);
  rc = ce_json_encode(ev, &buf, &err);
  if (rc == -ENOMEM) goto cleanup;
  if (rc != 0) {
    fuzz_dump_event("decoded", ev);
    fuzz_fail("ce_json_encode", "cannot encode an event ce_json_decode accepted", NULL, 0);
  }
  memset(&err, 'A', sizeof(err));
  rc = ce_json_decode(buf.data, buf.len, &unbounded, &ev2, &err);
  if (rc == -ENOMEM) goto cleanup;
  if (rc != 0) {
    fuzz_dump_event("decoded", ev);
    fprintf(stderr, "re-decode: rc %d, %s: %s\n", rc, err.attr, err.reason);
    fuzz_fail("ce_json_decode", "rejects what ce_json_encode wrote", buf.data, buf.len);
  }
  fuzz_check_equal("ce_json_encode/ce_json_decode", ev, ev2, buf.data, buf.len);

cleanup:
  ce_event_free(ev2);
  ce_buf_cleanup(&buf);
}

static void round_trip_batch(const ce_batch *b) {
  ce_limits unbounded;
  ce_buf buf;
  ce_batch b2;
  ce_err err;
  int rc;

  fuzz_limits_unbounded(&unbounded);
  ce_buf_init(&buf);
  ce_batch_init(&b2);
  rc = ce_json_encode_batch(b->ev, b->n, &buf, &err);
  if (rc == -ENOMEM) goto cleanup;
  if (rc != 0) fuzz_fail("ce_json_encode_batch", "cannot encode a batch it decoded", NULL, 0);
  memset(&err, 'A', sizeof(err));
  rc = ce_json_decode_batch(buf.data, buf.len, &unbounded, &b2, &err);
  if (rc == -ENOMEM) goto cleanup;
  if (rc < 0) {
    fprintf(stderr, "re-decode: rc %d, event %d, %s: %s\n", rc, err.index, err.attr, err.reason);
    fuzz_fail("ce_json_decode_batch", "rejects what ce_json_encode_batch wrote", buf.data, buf.len);
  }
  if (b2.n != b->n)
    fuzz_fail("ce_json_decode_batch", "round trip changed the number of events", buf.data, buf.len);
  for (size_t i = 0; i < b->n; i++)
    fuzz_check_equal("ce_json_encode_batch/ce_json_decode_batch", b->ev[i], b2.ev[i], buf.data,
                     buf.len);

cleanup:
  ce_batch_cleanup(&b2);
  ce_buf_cleanup(&buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ce_limits lim;
  ce_event *ev = NULL;
  ce_batch b;
  ce_err err;
  int rc;

  fuzz_limits_pick(&data, &size, &lim);

  memset(&err, 'A', sizeof(err));
  rc = ce_json_decode(data, size, &lim, &ev, &err);
  fuzz_check_rc("ce_json_decode", rc, false, &err);
  if (rc == 0) {
    if (!ev) fuzz_fail("ce_json_decode", "returned 0 and no event", NULL, 0);
    fuzz_check_valid("ce_json_decode", ev);
    round_trip_one(ev);
    ce_event_free(ev);
  }

  ce_batch_init(&b);
  memset(&err, 'A', sizeof(err));
  rc = ce_json_decode_batch(data, size, &lim, &b, &err);
  fuzz_check_rc("ce_json_decode_batch", rc, true, &err);
  if (rc < 0 && b.n != 0) fuzz_fail("ce_json_decode_batch", "failed but kept events", NULL, 0);
  if (rc >= 0) {
    if ((size_t)rc != b.n)
      fuzz_fail("ce_json_decode_batch", "return value is not the number of events", NULL, 0);
    if (lim.max_batch && b.n > lim.max_batch)
      fuzz_fail("ce_json_decode_batch", "accepted more events than max_batch", NULL, 0);
    for (size_t i = 0; i < b.n; i++) fuzz_check_valid("ce_json_decode_batch", b.ev[i]);
    round_trip_batch(&b);
  }
  ce_batch_cleanup(&b);
  return 0;
}
