/*
 * dispatcher.h — delivers a broker's events to the triggers that match
 * them: one consumer per broker (not one per trigger), the index to find
 * the triggers, libcurl multi (core/httpc.h) to deliver, and positions
 * committed in order so that delivery is at least once.
 *
 * Per trigger, after Knative's delivery spec (see delivery.h for the rules):
 *   - each matching event is POSTed to spec.subscriber.uri in binary mode
 *     (structured when its datacontenttype is a CloudEvents format), with
 *     "Prefer: reply"; retried with backoff on 404, 408, 409, 429, 5xx and
 *     transport errors, Retry-After honoured;
 *   - when the retries are spent, or at once on a final answer (another
 *     4xx), the event goes to spec.delivery.deadLetterSink with the
 *     knativeerror* extensions. Never dropped: when the sink fails too, it
 *     is retried with backoff, without end; when the trigger has no sink,
 *     the dead-letter event is appended to the broker's dead-letter topic
 *     ("<topic>-dead-letter") in the log, where operators and Kafka
 *     consumers find it. A position never moves past an event that is
 *     neither delivered nor dead-lettered;
 *   - a 2xx answer that carries a CloudEvent (any HTTP mode) is a reply: it
 *     is appended to the broker with knativebrokerttl one less than the
 *     event's (not at all when that reaches 0, so that loops die) and a new
 *     knativearrivaltime; the delivery counts as done once the reply is
 *     durable. A 2xx body that is not a CloudEvent is counted and logged;
 *   - unordered by default: up to `window` records of a partition in flight
 *     at once. With the annotation kafka.eventing.knative.dev/delivery.order:
 *     ordered, events of one partitionkey go one at a time, in offset order,
 *     and different keys in parallel (events without a partitionkey share
 *     one queue per partition).
 *
 * A trigger that is replaced or deleted stops getting new events at once;
 * its deliveries already under way finish with the version that began them
 * (deleted: they are abandoned and count as done for it).
 *
 * Thread rules: every function may be called from any thread. The
 * dispatcher runs a thread of its own for deliveries, one reader thread per
 * broker it consumes, and the HTTP client's thread.
 */
#ifndef OUTPOST_TRIGGER_DISPATCHER_H
#define OUTPOST_TRIGGER_DISPATCHER_H

#include "broker/broker.h"
#include "core/httpc.h"
#include "core/httpd.h"
#include "trigger/trigger.h"

#include <cjson/cJSON.h>

typedef struct trigger_dispatcher trigger_dispatcher;

/* Resolves broker ns/name to its topic: 0 with topic filled, or -ENOENT
 * when no such broker is declared. */
typedef int (*trigger_topic_fn)(void *ctx, const char *ns, const char *name, char *topic,
                                size_t len);

typedef struct trigger_dispatcher_opts {
  broker_log *log;            /* required; kept open by the caller until after stop */
  trigger_topic_fn topic_for; /* required */
  void *topic_ctx;            /* passed to topic_for */
  const char *group_prefix;   /* consumer group of broker ns/name: "<prefix><ns>.<name>"
                                 (default "outpost-dispatcher.") */
  size_t window;              /* records of one partition read and not yet done (default
                                 256): the bound on memory and on unordered parallelism */
  int64_t timeout_ms;         /* one attempt, when the trigger sets no timeout (default 30000) */
  int64_t sink_retry_max_ms;  /* longest wait between attempts at a failing dead-letter sink
                                 or log (default 60000) */
  int poll_ms;                /* wait before reading an idle partition again (default 20) */
  int32_t reply_ttl_default;  /* TTL an event without knativebrokerttl is taken to have
                                 (default 255) */
  httpc_opts http;            /* the client (zero: its defaults) */
  const char *state_path;     /* where triggers applied through the admin API are kept
                                 across restarts (NULL: not kept); see
                                 trigger_dispatcher_restore */
  bool held;                  /* start holding: records are read but matched to no trigger
                                 (so none is done, none committed) until
                                 trigger_dispatcher_release. For a start: every trigger of
                                 the configuration and the state file applied first, each
                                 gets the log's backlog */
  int apply_pause_ms;         /* for tests only: a pause in each apply, after a new
                                 consumer's readers start and before its trigger is in
                                 place, which widens the window a race there would need
                                 (0: none; `outpost broker` takes it from
                                 OUTPOST_TEST_APPLY_PAUSE_MS) */
} trigger_dispatcher_opts;

void trigger_dispatcher_opts_init(trigger_dispatcher_opts *o);

/* Starts the dispatcher with no triggers. Returns NULL with a message in
 * errbuf on failure. */
trigger_dispatcher *trigger_dispatcher_start(const trigger_dispatcher_opts *opts, char *errbuf,
                                             size_t errlen);

/* Ends the hold of opts.held (nothing when not held): the records read
 * meanwhile are matched to the triggers applied by then. */
void trigger_dispatcher_release(trigger_dispatcher *d);

/* Applies a Trigger resource (a cJSON object, as core/resources.h reads
 * it; copied): creates the trigger, or replaces the one of the same
 * namespace and name. The broker it names must resolve through topic_for;
 * its consumer starts with its first trigger, at the broker's committed
 * position. Returns 0 when created, 1 when replaced, or a negative errno
 * with *err filled: -EINVAL (the resource is refused), -ENOENT (unknown
 * broker), -ENOMEM, or the log's error. */
int trigger_dispatcher_apply(trigger_dispatcher *d, const cJSON *res, trigger_err *err);

/* Deletes trigger ns/name. Returns 0 or -ENOENT. */
int trigger_dispatcher_delete(trigger_dispatcher *d, const char *ns, const char *name);

/* The applied Trigger resources, as a new cJSON array (the caller frees it),
 * of namespace ns (NULL: all), of that name only when name is not NULL; each
 * with a "status" giving the consumer group and counts. NULL when out of
 * memory. */
cJSON *trigger_dispatcher_list(trigger_dispatcher *d, const char *ns, const char *name);

/* Appends the dispatcher's metrics in Prometheus text to out. */
void trigger_dispatcher_metrics(trigger_dispatcher *d, ce_buf *out);

/* Serves the triggers' admin API under /v1/triggers; rest is the path after
 * that prefix ("", "/<ns>", "/<ns>/<name>"). GET lists or shows; PUT or POST
 * on "" applies every Trigger resource of the body (YAML or JSON, one or
 * many: all are checked before any is applied); DELETE on /<ns>/<name>
 * deletes. Errors are JSON bodies naming the resource, the field and the
 * reason. Changes are saved to opts.state_path (written to a new file,
 * synced, renamed over the old) before the answer. Answers req with
 * httpd_respond. */
void trigger_dispatcher_http(trigger_dispatcher *d, httpd_req *req, const char *rest);

/* Applies the Trigger resources of a configuration file (other kinds are
 * skipped). Returns 0, or a negative errno with a message naming the file,
 * the resource and the field in errbuf. */
int trigger_dispatcher_load(trigger_dispatcher *d, const char *path, char *errbuf, size_t errlen);

/* Applies the triggers kept in opts.state_path (those applied or deleted
 * through the admin API since the file was made; a missing file is an
 * empty one). Call it after trigger_dispatcher_load: a trigger changed
 * through the API keeps that version over the configuration file's. A kept
 * trigger that cannot be applied now (its broker is gone) is reported in
 * errbuf and skipped. Returns the number applied, or a negative errno when
 * the file cannot be read. */
int trigger_dispatcher_restore(trigger_dispatcher *d, char *errbuf, size_t errlen);

/* Stops reading and delivering, commits the positions of every event done,
 * waits for the log's reports on appends under way, and frees. Deliveries
 * not finished are neither committed nor lost: a new dispatcher on the same
 * log delivers them again. trigger_dispatcher_stop(NULL) does nothing. */
void trigger_dispatcher_stop(trigger_dispatcher *d);

/* `outpost trigger apply -f FILE | get [NS[/NAME]] | delete NS/NAME`: the
 * admin API's client (cli.c). Returns the process exit code. */
int trigger_main(int argc, char **argv);

#endif
