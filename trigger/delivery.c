/*
 * delivery.c — retry, backoff and dead-letter rules (see delivery.h).
 */
#include "trigger/delivery.h"

#include <stdio.h>
#include <string.h>

bool trigger_delivery_retryable(long status) {
  if (status >= 200 && status < 300) return false;
  return status == 0 || status == 404 || status == 408 || status == 409 || status == 429 ||
         status >= 500;
}

int64_t trigger_delivery_backoff_ms(const trigger_delivery *d, int32_t n, long status,
                                    int64_t retry_after_ms) {
  if (n < 1) n = 1;
  int64_t delay = d->backoff_delay_ms > 0 ? d->backoff_delay_ms : 0, wait;
  if (d->exponential) {
    /* delay × 2^(n−1), saturating well before the cap. */
    wait = delay;
    for (int32_t i = 1; i < n && wait < TRIGGER_BACKOFF_MAX_MS; i++) wait *= 2;
  } else {
    wait = n > TRIGGER_BACKOFF_MAX_MS / (delay ? delay : 1) ? TRIGGER_BACKOFF_MAX_MS : delay * n;
  }
  if (wait > TRIGGER_BACKOFF_MAX_MS) wait = TRIGGER_BACKOFF_MAX_MS;
  if ((status == 429 || status == 503) && retry_after_ms > wait) {
    int64_t ra = retry_after_ms;
    if (d->retry_after_max_ms > 0 && ra > d->retry_after_max_ms) ra = d->retry_after_max_ms;
    if (ra > TRIGGER_BACKOFF_MAX_MS) ra = TRIGGER_BACKOFF_MAX_MS;
    if (ra > wait) wait = ra;
  }
  return wait;
}

ce_event *trigger_delivery_dead_letter(const ce_event *ev, const char *dest, long status,
                                       const void *body, size_t body_len) {
  ce_event *dl = ce_event_clone(ev);
  if (!dl) return NULL;
  int rc = ce_event_set_str(dl, "knativeerrordest", dest, NULL);
  if (!rc) rc = ce_event_set_int(dl, "knativeerrorcode", (int32_t)status, NULL);
  if (!rc && body_len) {
    ce_buf b;
    ce_buf_init(&b);
    rc = ce_base64_encode(
        body, body_len < TRIGGER_ERROR_DATA_MAX ? body_len : TRIGGER_ERROR_DATA_MAX, &b);
    if (!rc) rc = ce_event_set(dl, "knativeerrordata", CE_TYPE_STRING, b.data, b.len, NULL);
    ce_buf_cleanup(&b);
  } else if (!rc) {
    ce_event_unset(dl, "knativeerrordata");
  }
  if (rc) {
    ce_event_free(dl);
    return NULL;
  }
  return dl;
}
