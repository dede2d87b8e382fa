/*
 * delivery.h — the rules of one delivery, after Knative's delivery spec:
 * which answers are retried, how long to wait before the next attempt, and
 * the event a dead-letter sink receives. Pure functions: the dispatcher
 * keeps the clock and the timers.
 *
 *   - Retried: transport errors (no HTTP answer at all), 404, 408, 409, 429
 *     and every 5xx. Anything else that is not 2xx is final: dead-lettered
 *     at once (a 400 will not get better).
 *   - Backoff before retry n (1-based): linear backoffDelay × n, exponential
 *     backoffDelay × 2^(n−1), capped at one hour.
 *   - Retry-After on a 429 or 503 is honoured when longer than the backoff,
 *     capped by retryAfterMax when the trigger sets one.
 *   - The dead-letter event is the original event with knativeerrordest (the
 *     subscriber), knativeerrorcode (the HTTP status; 0 when there was no
 *     answer) and knativeerrordata (the first 1024 bytes of the answer's
 *     body, base64, as an extension value must be a valid string whatever
 *     the body held; absent when the body was empty).
 */
#ifndef OUTPOST_TRIGGER_DELIVERY_H
#define OUTPOST_TRIGGER_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ce.h"
#include "trigger/trigger.h"

/* The most backoff one attempt waits, whatever the policy says. */
#define TRIGGER_BACKOFF_MAX_MS (3600 * 1000LL)
/* Bytes of a failed answer's body kept in knativeerrordata. */
#define TRIGGER_ERROR_DATA_MAX 1024

/* Whether an attempt that ended with HTTP status `status` (0 when there was
 * no answer: a transport error or a timeout) is worth retrying. 2xx is a
 * success, never retried. */
bool trigger_delivery_retryable(long status);

/* Milliseconds to wait before retry `n` (1 for the first retry) after an
 * attempt answered `status` with Retry-After `retry_after_ms` (-1: none). */
int64_t trigger_delivery_backoff_ms(const trigger_delivery *d, int32_t n, long status,
                                    int64_t retry_after_ms);

/* A copy of ev for the dead-letter sink, with the error extensions set.
 * Returns the new event or NULL (out of memory). */
ce_event *trigger_delivery_dead_letter(const ce_event *ev, const char *dest, long status,
                                       const void *body, size_t body_len);

#endif
