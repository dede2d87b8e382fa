/*
 * broker.h — the broker component: the log that keeps CloudEvents durably
 * until every trigger has dealt with them, behind one interface with two
 * implementations (the embedded SQLite log, the Kafka log).
 *
 * Records are CloudEvents in the Kafka binding's binary mode (ce_ headers, a
 * content-type header, the data as value, partitionkey as key), whichever
 * log holds them, so readers decode every record the same way
 * (ce_kafka_decode).
 *
 * Thread rules: every broker_log function may be called from any thread.
 * Append callbacks run on a thread of the log's own.
 */
#ifndef OUTPOST_BROKER_BROKER_H
#define OUTPOST_BROKER_BROKER_H

#include "core/ce.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One record. In input, every pointer is borrowed for the duration of the
 * call. key == NULL means no key; value == NULL means no value. */
typedef struct broker_record {
  int32_t partition; /* input: -1 to let the log choose (by key hash) */
  int64_t offset;    /* output of reads */
  int64_t timestamp_ms;
  const void *key;
  size_t key_len;
  const ce_kv *headers;
  size_t n_headers;
  const void *value;
  size_t value_len;
} broker_record;

/* Records returned by a read; broker_records_cleanup frees what they point to. */
typedef struct broker_records {
  broker_record *recs;
  size_t n;
  void *mem; /* private */
} broker_records;

void broker_records_init(broker_records *r);
void broker_records_cleanup(broker_records *r);

/* Events encoded as records (the Kafka binding's binary mode, key =
 * partitionkey, partition chosen by the log), ready for broker_log_append:
 * recs[0..n). broker_batch_cleanup frees them; zeroed memory is an empty
 * batch. */
typedef struct broker_batch {
  broker_record *recs;
  size_t n;
  void *mem; /* private */
} broker_batch;

/* Encodes n events into *b (which must be empty). Returns 0, or a negative
 * errno with *err naming the event (err->index, in a batch of more than one)
 * and the reason: -EINVAL (an event the binding cannot carry), -ENOMEM. */
int broker_batch_encode(broker_batch *b, ce_event *const *evs, size_t n, ce_err *err);
void broker_batch_cleanup(broker_batch *b);

/* Called once per append, on the log's thread (or in broker_log_flush), when the records are
 * durable (status 0) or cannot be (negative errno: -EIO store failure, -ENOSPC full, -ETIMEDOUT,
 * -ESHUTDOWN log closing). */
typedef void (*broker_append_cb)(void *opaque, int status);

typedef struct broker_log broker_log;

/* Appends n records to topic, all or nothing where the log allows it (the
 * embedded log: one transaction; Kafka: each record acknowledged, so a
 * failure may leave some stored — at least once). Copies what it needs
 * before returning. Returns 0 when queued (cb will be called exactly once),
 * or a negative errno (cb will not be called). */
int broker_log_append(broker_log *log, const char *topic, const broker_record *recs, size_t n,
                      broker_append_cb cb, void *opaque);
/* The same, for a caller that calls broker_log_flush on this thread soon (at
 * the end of its batch of requests): the embedded log then commits it there,
 * with whatever else is queued, instead of waking its writer thread. The
 * Kafka log takes it as broker_log_append. */
int broker_log_append_deferred(broker_log *log, const char *topic, const broker_record *recs,
                               size_t n, broker_append_cb cb, void *opaque);
/* Commits the deferred appends on the calling thread, their callbacks called
 * before it returns; when a commit is under way on another thread, leaves
 * them to the log's writer thread instead of waiting. Nothing for Kafka. */
void broker_log_flush(broker_log *log);

/* Reads up to max records of topic/partition from offset `from` on, in
 * offset order. Fills *out (caller cleans it up). Returns the count. */
int broker_log_read(broker_log *log, const char *topic, int32_t partition, int64_t from, size_t max,
                    broker_records *out);

/* Records that consumer group `group` is done with every record of
 * topic/partition before `next`. */
int broker_log_commit(broker_log *log, const char *group, const char *topic, int32_t partition,
                      int64_t next);

/* The position committed by `group` (0 when none). */
int broker_log_committed(broker_log *log, const char *group, const char *topic, int32_t partition,
                         int64_t *next);

/* The number of partitions of topic (creating the topic when it is new);
 * -EREMOTEIO when a Kafka cluster refused to create it as asked (a topic
 * config it does not take, a policy: its message is logged). */
int broker_log_partitions(broker_log *log, const char *topic);

/* The offset the next appended record of topic/partition will get. */
int broker_log_end(broker_log *log, const char *topic, int32_t partition, int64_t *end);

/* Appends the log's own metrics to out in Prometheus text (the embedded
 * log's group commits and files; the Kafka log's deliveries and producer
 * statistics; nothing for NULL). */
void broker_log_metrics(broker_log *log, ce_buf *out);

/* Closes the log: pending appends complete (or fail with -ESHUTDOWN) before
 * it returns. broker_log_free(NULL) does nothing. */
void broker_log_free(broker_log *log);

/* ---- the embedded log (SQLite in WAL mode) ---- */

typedef struct broker_sqlite_opts {
  int32_t partitions;      /* partitions of a new topic (default 1) */
  int64_t retention_ms;    /* delete consumed records older than this (default 7 days; 0 = keep) */
  int64_t retention_bytes; /* delete oldest consumed records past this size (0 = no limit) */
  int64_t max_bytes;       /* refuse appends (-ENOSPC) past this size (0 = no limit) */
} broker_sqlite_opts;

void broker_sqlite_opts_init(broker_sqlite_opts *o);

/* Opens (creating when needed) the embedded log in file `path`. Every append
 * is synced to disk before its callback reports success; appends that arrive
 * while a sync is running share the next one (group commit). Retention only
 * ever deletes records that every consumer group that ever committed on the
 * topic has committed past: the log refuses new records rather than drop
 * unconsumed ones. Returns NULL with a message in errbuf on failure. */
broker_log *broker_log_sqlite_open(const char *path, const broker_sqlite_opts *opts, char *errbuf,
                                   size_t errlen);

/* ---- the Kafka log (librdkafka) ---- */

typedef struct broker_kafka_mock broker_kafka_mock;

/* Environment variables OUTPOST_KAFKA_SASL_PASSWORD, _SSL_KEY_PASSWORD,
 * _SSL_KEYSTORE_PASSWORD and _SASL_OAUTHBEARER_CLIENT_SECRET give those
 * properties to every client the Kafka log makes, so that no secret needs a
 * command line; a property in props overrides them. */
#define BROKER_KAFKA_ENV_PREFIX "OUTPOST_KAFKA_"

typedef struct broker_kafka_opts {
  const char *bootstrap;    /* bootstrap.servers (required) */
  const char *const *props; /* "name=value" librdkafka properties for every client the log
                               makes (security.protocol, sasl.*, ssl.*, linger.ms, ...) */
  size_t n_props;
  const char *const *topic_configs; /* "name=value" topic configs (retention.ms, cleanup.policy,
                                       ...) set on every topic the log creates; a topic that
                                       exists already keeps its own */
  size_t n_topic_configs;
  int32_t partitions;      /* partitions of a topic the log creates (default 3) */
  int16_t replication;     /* its replication factor (default -1: the cluster's default) */
  int delivery_timeout_ms; /* an append not acknowledged by then fails (default 10000) */
  int read_wait_ms;        /* how long a read waits for a first record (default 100) */
  int admin_timeout_ms;    /* metadata, topic creation, positions (default 10000) */
  broker_kafka_mock *mock; /* the cluster is this in-process mock: topics are created
                              through its API, as it has no CreateTopics */
} broker_kafka_opts;

void broker_kafka_opts_init(broker_kafka_opts *o);

/* Opens the Kafka log: an idempotent producer with acks=all (an append
 * succeeds only when every record is acknowledged by the in-sync replicas),
 * keys partitioned by murmur2 as Java clients do. Properties that would
 * weaken that (enable.idempotence, acks, group.id, enable.auto.commit) are
 * refused. Positions are the consumer groups' committed offsets on the
 * cluster. Returns NULL with a message in errbuf. */
broker_log *broker_log_kafka_open(const broker_kafka_opts *opts, char *errbuf, size_t errlen);

/* librdkafka's mock cluster, in this process, over TCP on 127.0.0.1: for
 * demos and tests only — in memory, nothing survives the process. */
broker_kafka_mock *broker_kafka_mock_start(int brokers, char *errbuf, size_t errlen);
/* "host:port,host:port,..." for bootstrap.servers. */
const char *broker_kafka_mock_bootstraps(const broker_kafka_mock *m);
void broker_kafka_mock_stop(broker_kafka_mock *m);
/* The cluster, for librdkafka's fault injection (rdkafka_mock.h) in tests. */
struct rd_kafka_mock_cluster_s *broker_kafka_mock_cluster(broker_kafka_mock *m);

/* ---- the ingress (Knative-compatible HTTP) ---- */

#include "core/httpd.h"

typedef struct broker_ingress_opts {
  httpd_opts http;
  ce_limits limits;       /* per-event and per-request limits (defaults: ce_limits_init) */
  size_t max_inflight;    /* requests waiting for the log before 429 (default 4096) */
  unsigned retry_after_s; /* Retry-After of 429 and 503 answers (default 1) */
  /* Events a second each client address may POST, and how many at once
   * (default 0: no limit; a burst of 0 is one second's worth). Past it:
   * 429 with the Retry-After of when it may send again. A request is
   * admitted while one event's room is left, so a batch may leave its
   * client owing. */
  uint32_t client_rate, client_burst;
  int32_t default_ttl;     /* knativebrokerttl given to events without one (default 255) */
  const char *admin_token; /* bearer token for /v1/brokers; NULL: admin API open */
  /* Who may POST events (broker__senders_load's format: NAME TOKEN
   * [TYPE-PREFIX...] a line), read at start; NULL: anyone (as Knative's
   * broker). With it, a POST needs one of its bearer tokens (401
   * otherwise) and every event of it a type its sender may send (403). */
  const char *senders_file;
  unsigned drain_ms; /* how long stop waits for the log's reports (default 30000) */
  const char *kafka; /* the Kafka bootstrap servers, shown by /healthz; NULL: none */
  /* What this process is (`outpost broker --role`), shown by /healthz:
   * "all" (default), "ingress" (events, no dispatcher) or "dispatcher"
   * (the trigger admin API, no events: POST /<ns>/<broker> is 404 with a
   * body saying where events go). */
  const char *role;
  /* Where brokers declared through PUT /v1/brokers are kept (JSON, written
   * whole on every PUT and DELETE), for broker_ingress_restore; NULL: not
   * kept. Brokers declared by broker_ingress_add (the configuration) are
   * not written there: the configuration declares them at every start. */
  const char *brokers_state;
  /* With the fast lane: its threads append deferred and flush the log at
   * the end of each batch (broker_log_flush), so that the embedded log
   * commits there instead of on its writer thread (default true; bench/README.md). */
  bool lane_commits;
} broker_ingress_opts;

void broker_ingress_opts_init(broker_ingress_opts *o);

typedef struct broker_ingress broker_ingress;

/* Serves POST /<namespace>/<broker> (binary, structured and batched modes),
 * OPTIONS, /healthz (JSON: status, tier "broker", name, pid, kafka: what
 * `outpost run` checks before adopting a running broker), /readyz, /metrics
 * and the admin API /v1/brokers, and
 * appends accepted events to log (which the caller keeps open until after
 * broker_ingress_stop). 202 is answered only once the log says the events
 * are durable. Returns NULL with a message in errbuf. */
broker_ingress *broker_ingress_start(const broker_ingress_opts *opts, broker_log *log, char *errbuf,
                                     size_t errlen);
uint16_t broker_ingress_port(const broker_ingress *in);
/* Declares broker ns/name writing to topic (NULL: "knative-broker-<ns>-<name>").
 * The log makes the topic now (or finds it). Returns 0, -EINVAL for a bad
 * name, -ENOMEM, or the log's error. Redeclaring replaces the topic. */
int broker_ingress_add(broker_ingress *in, const char *ns, const char *name, const char *topic);
/* Removes a broker: its path answers 404 from then on. Returns 0 or -ENOENT. */
int broker_ingress_remove(broker_ingress *in, const char *ns, const char *name);
/* Declares the brokers kept in opts.brokers_state (none when the file does
 * not exist). Returns how many, or a negative errno with errbuf saying
 * which file and why (a file that cannot be read is not taken for none). */
int broker_ingress_restore(broker_ingress *in, char *errbuf, size_t errlen);
/* The topic of broker ns/name, copied into topic (len bytes). Returns 0,
 * -ENOENT (no such broker) or -ENAMETOOLONG. */
int broker_ingress_topic(broker_ingress *in, const char *ns, const char *name, char *topic,
                         size_t len);

/* Another component's requests on the ingress's server: every request whose
 * path is `prefix` or starts with `prefix` + "/" goes to fn with the rest of
 * the path ("" or "/..."), after the admin token check. fn answers with
 * httpd_respond, on any thread. */
typedef void (*broker_ingress_route_fn)(void *ctx, httpd_req *req, const char *rest);
/* Another component's metrics, appended to /metrics. */
typedef void (*broker_ingress_metrics_fn)(void *ctx, ce_buf *out);
/* Mounts an admin route (prefix a static string, such as "/v1/triggers"),
 * and a metrics function when metrics is not NULL. Both stay until stop.
 * Returns 0, or -ENOSPC past BROKER_INGRESS_MOUNTS. */
#define BROKER_INGRESS_MOUNTS 4
int broker_ingress_mount(broker_ingress *in, const char *prefix, broker_ingress_route_fn fn,
                         broker_ingress_metrics_fn metrics, void *ctx);

/* Stops taking events (503), waits for those in flight to be answered (up to
 * drain_ms), answers 503 to those the log has still not reported on, stops
 * the server and frees — or, when such reports are still to come, leaves the
 * last of them to free it, so the log may report after stop returns (as
 * broker_log_free makes it). broker_ingress_stop(NULL) does nothing. */
void broker_ingress_stop(broker_ingress *in);

/* A broker declared in a configuration file. */
typedef struct broker_decl {
  char *ns, *name;
  char *topic; /* NULL: the default name */
} broker_decl;

/* Reads the Broker resources of a configuration file (YAML or JSON; Knative's
 * shape: apiVersion eventing.knative.dev/v1, kind Broker, metadata.name,
 * metadata.namespace (default "default"), the annotation
 * kafka.eventing.knative.dev/external.topic naming its topic). Trigger
 * resources are skipped (they are the triggers'); any other kind is refused.
 * Fills *out with *n declarations (free with broker_decls_cleanup). Returns 0,
 * or a negative errno with a message naming the file, line and column. */
int broker_config_load(const char *path, broker_decl **out, size_t *n, char *errbuf, size_t errlen);
void broker_decls_cleanup(broker_decl *d, size_t n);

/* `outpost broker [options]`: runs the ingress on the embedded log until
 * SIGINT or SIGTERM. Returns the process exit code. */
int broker_main(int argc, char **argv);

#endif
