/*
 * trigger.h — triggers as Knative declares them (eventing.knative.dev/v1
 * Trigger): which broker, which events (spec.filter.attributes, or
 * spec.filters with the CloudEvents Subscriptions API dialects), where to
 * (spec.subscriber.uri) and how (spec.delivery, the ordering annotation).
 *
 * Filter semantics, after Knative (>= 1.15):
 *   - spec.filter.attributes: every listed attribute must be on the event
 *     with exactly that value (case-sensitive); the value "" asks only that
 *     the attribute be there. An attribute the event lacks never matches.
 *   - spec.filters: a list, ANDed; each item has exactly one dialect:
 *     exact / prefix / suffix: {attribute: value}, exactly one attribute
 *     (as the Subscriptions API says); all / any: a list of filters; not: one
 *     filter; cesql: a CESQL v1 expression, compiled when the trigger is
 *     read (an evaluation error means no match).
 *   - When spec.filters holds at least one filter, spec.filter is ignored;
 *     an empty list leaves spec.filter in force (Knative tests
 *     len(spec.filters) > 0).
 *   - Values are compared with an attribute's canonical string form, so
 *     extensions of every type filter alike (knativebrokerttl "255").
 *
 * A trigger that cannot be read is refused with the place (a dotted path
 * such as "spec.filters.1.cesql") and the reason (for CESQL, the character
 * position).
 *
 * Thread rules: a trigger is immutable once read; trigger_match may run on
 * any number of threads at once.
 */
#ifndef OUTPOST_TRIGGER_TRIGGER_H
#define OUTPOST_TRIGGER_TRIGGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/ce.h"
#include "trigger/cesql.h"

typedef enum trigger_filter_kind {
  TRIGGER_EXACT,
  TRIGGER_PREFIX,
  TRIGGER_SUFFIX,
  TRIGGER_ALL,
  TRIGGER_ANY,
  TRIGGER_NOT,
  TRIGGER_CESQL,
} trigger_filter_kind;

typedef struct trigger_filter {
  trigger_filter_kind kind;
  char *attr, *value;          /* exact, prefix, suffix */
  struct trigger_filter *subs; /* all, any (n_subs of them), not (one) */
  size_t n_subs;
  cesql_expr *expr; /* cesql */
} trigger_filter;

/* spec.delivery. Durations in milliseconds. */
typedef struct trigger_delivery {
  int32_t retry;              /* retries after the first attempt (default 0) */
  bool exponential;           /* backoffPolicy exponential (default) or linear */
  int64_t backoff_delay_ms;   /* backoffDelay (default 200) */
  int64_t timeout_ms;         /* timeout of one attempt (0: the dispatcher's default) */
  int64_t retry_after_max_ms; /* cap on a Retry-After honoured (0: no cap) */
  char *dead_letter_uri;      /* deadLetterSink.uri, or NULL */
} trigger_delivery;

typedef struct trigger {
  char *ns, *name, *broker;
  /* spec.filter.attributes (used when has_filters is false) */
  char **attr_names, **attr_values;
  size_t n_attrs;
  /* spec.filters, ANDed; has_filters when the list is not empty */
  bool has_filters;
  trigger_filter *filters;
  size_t n_filters;
  char *subscriber_uri;
  trigger_delivery delivery;
  bool ordered; /* kafka.eventing.knative.dev/delivery.order: ordered */
  void *owner;  /* free for whoever holds the trigger (the dispatcher's entry); NULL */
} trigger;

/* Where and why a trigger was refused. */
typedef struct trigger_err {
  char path[128]; /* "spec.filters.1.cesql"; "" for the whole resource */
  char msg[256];  /* the reason (for CESQL: with the character position) */
} trigger_err;

/* Reads a Trigger resource (a cJSON object from core/resources.h). Returns
 * a new trigger, or NULL with *err filled. The namespace defaults to
 * "default". */
trigger *trigger_parse(const cJSON *res, trigger_err *err);
void trigger_free(trigger *tr);

/* Whether ev passes the trigger's filters. */
bool trigger_match(const trigger *tr, const ce_event *ev);

/* The one condition the index files the trigger under, when every event the
 * trigger matches must satisfy it: attr equal to value (TRIGGER_EXACT) or
 * starting with value (TRIGGER_PREFIX). Returns the kind, or -1 when the
 * trigger has no such condition (it is then a candidate for every event).
 * The strings point into the trigger. */
int trigger_index_key(const trigger *tr, const char **attr, const char **value);

#endif
