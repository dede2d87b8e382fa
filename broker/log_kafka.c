/*
 * log_kafka.c — the Kafka log: the broker_log interface on a Kafka cluster
 * through librdkafka.
 *
 * Appending: one idempotent producer (acks=all), records in the Kafka
 * binding's binary mode as the ingress encoded them, the key from
 * partitionkey, partitions chosen by murmur2 as Java clients do. An append's
 * callback runs once every record of it has a delivery report: success only
 * when all were acknowledged by the in-sync replicas.
 *
 * Reading: one consumer handle fetches topic/partitions from the position
 * a reader asks for (librdkafka's partition consumer), so a reader that
 * reads on from where it stopped pays no seek. Positions are the consumer
 * groups' committed offsets on the cluster, committed through one handle
 * per group that never joins the group (no rebalances: Outpost assigns
 * partitions itself).
 *
 * Thread model: a poll thread serves the producer's delivery reports and so
 * runs every append callback; reads and commits run on the caller's thread.
 *
 * Metrics: appends, records and their delivery reports counted as they go;
 * the cluster as the producer sees it (each broker's state and round trip,
 * the records waiting to be sent, retries and errors) from librdkafka's
 * statistics, every statistics.interval.ms (5 s unless configured; 0 turns
 * them off), rendered into a snapshot on the poll thread.
 */
#include "broker/broker.h"
#include "broker/broker_int.h"
#include "core/metrics.h"

#include <cjson/cJSON.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A partition the reader fetches, and where its fetch stands. */
typedef struct reader {
  struct reader *next;
  char *topic;
  int32_t partition;
  rd_kafka_topic_t *rkt;
  int64_t next_offset; /* the offset the next read continues from */
} reader;

/* A consumer group's handle for committing and querying positions. */
typedef struct group {
  struct group *next;
  char *name;
  rd_kafka_t *rk;
} group;

typedef struct kafka_log {
  broker_log base;
  broker_kafka_opts opts;
  rd_kafka_conf_t *conf; /* the pass-through configuration every handle starts from */
  rd_kafka_t *producer;
  rd_kafka_t *consumer;
  pthread_t poller;
  _Atomic bool stopping;
  pthread_mutex_t lock; /* guards readers and groups */
  reader *readers;
  group *groups;
  /* Counted by kafka_append and the delivery reports, rendered by any. */
  _Atomic uint64_t appends, records, delivered, failed;
  pthread_mutex_t stats_lock; /* guards stats */
  ce_buf stats;               /* the last statistics, as Prometheus text */
} kafka_log;

struct broker_kafka_mock {
  rd_kafka_t *rk;
  rd_kafka_mock_cluster_t *mc;
};

/* One append: its callback runs when `left` reaches zero. */
typedef struct append {
  _Atomic size_t left;
  _Atomic int status;
  broker_append_cb cb;
  void *opaque;
} append;

/* Properties the log sets itself: a configuration may not change them,
 * because the broker's promises rest on them. */
static const char *const locked[] = {"enable.idempotence", "acks", "request.required.acks",
                                     "enable.auto.commit", "group.id"};

void broker_kafka_opts_init(broker_kafka_opts *o) {
  memset(o, 0, sizeof *o);
  o->partitions = 3;
  o->replication = -1;
  o->delivery_timeout_ms = 10000;
  o->read_wait_ms = 100;
  o->admin_timeout_ms = 10000;
}

static int errno_for(rd_kafka_resp_err_t e) {
  switch (e) {
  case RD_KAFKA_RESP_ERR_NO_ERROR:
    return 0;
  case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
  case RD_KAFKA_RESP_ERR__TIMED_OUT:
  case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    return -ETIMEDOUT;
  case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
  case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
  case RD_KAFKA_RESP_ERR__DESTROY:
    return -ESHUTDOWN;
  case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    return -ENOBUFS;
  case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
  case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    return -EMSGSIZE;
  case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
  case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
  case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    return -ENOENT;
  default:
    return -EIO;
  }
}

static void finish(append *a, size_t count) {
  if (atomic_fetch_sub(&a->left, count) != count) return;
  a->cb(a->opaque, atomic_load(&a->status));
  free(a);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  kafka_log *k = opaque;
  append *a = m->_private;
  atomic_fetch_add(m->err ? &k->failed : &k->delivered, 1);
  if (m->err) {
    int expected = 0;
    atomic_compare_exchange_strong(&a->status, &expected, errno_for(m->err));
  }
  finish(a, 1);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  /* librdkafka retries transport errors by itself; only fatal ones are the
   * log's to report (appends then fail with -EIO). */
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[256];
    rd_kafka_fatal_error(rk, why, sizeof why);
    fprintf(stderr, "outpost: kafka log: fatal: %s\n", why);
  }
}

static double num(const cJSON *o, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* librdkafka's statistics (JSON, see its STATISTICS.md) into the snapshot
 * /metrics shows: the brokers the producer learned from the cluster (not
 * the bootstrap addresses), by node id. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
  kafka_log *k = opaque;
  cJSON *st = cJSON_ParseWithLength(json, len);
  if (!st) return 0;
  ce_buf out;
  ce_buf_init(&out);
  char line[256];
  metrics_family(&out, "outpost_kafka_producer_queue_records", "gauge",
                 "Records the Kafka producer holds: waiting to be sent or for their "
                 "acknowledgement.");
  metrics_sample(&out, "outpost_kafka_producer_queue_records", NULL, (uint64_t)num(st, "msg_cnt"));
  const cJSON *brokers = cJSON_GetObjectItemCaseSensitive(st, "brokers"), *b;
  const struct {
    const char *name, *type, *help;
  } fam[] = {
      {"outpost_kafka_broker_connected", "gauge",
       "1 while the producer has a connection up to the Kafka broker, else 0 (it connects to "
       "the brokers it needs: the leaders of the partitions it writes to)."},
      {"outpost_kafka_broker_rtt_seconds", "gauge",
       "Mean round trip of requests to the Kafka broker over the last statistics interval "
       "(0 with none)."},
      {"outpost_kafka_broker_retries_total", "counter",
       "Requests to the Kafka broker the producer sent again."},
      {"outpost_kafka_broker_errors_total", "counter",
       "Requests to the Kafka broker that failed to be sent."},
  };
  for (size_t f = 0; f < sizeof fam / sizeof *fam; f++) {
    metrics_family(&out, fam[f].name, fam[f].type, fam[f].help);
    cJSON_ArrayForEach(b, brokers) {
      int id = (int)num(b, "nodeid");
      if (id < 0) continue; /* a bootstrap address, or an internal one */
      const cJSON *state = cJSON_GetObjectItemCaseSensitive(b, "state");
      double v = f == 0   ? cJSON_IsString(state) && strcmp(state->valuestring, "UP") == 0
                 : f == 1 ? num(cJSON_GetObjectItemCaseSensitive(b, "rtt"), "avg") / 1e6 /* µs */
                          : num(b, f == 2 ? "txretries" : "txerrs");
      snprintf(line, sizeof line, "%s{broker=\"%d\"} %.*f\n", fam[f].name, id, f == 1 ? 6 : 0, v);
      ce_buf_append_str(&out, line);
    }
  }
  cJSON_Delete(st);
  pthread_mutex_lock(&k->stats_lock);
  ce_buf_cleanup(&k->stats);
  k->stats = out;
  pthread_mutex_unlock(&k->stats_lock);
  return 0; /* librdkafka frees json */
}

static void *poll_loop(void *arg) {
  kafka_log *k = arg;
  while (!atomic_load(&k->stopping)) rd_kafka_poll(k->producer, 100);
  return NULL;
}

static int kset(rd_kafka_conf_t *conf, const char *name, const char *value, char *errbuf,
                size_t errlen) {
  char why[256];
  if (rd_kafka_conf_set(conf, name, value, why, sizeof why) == RD_KAFKA_CONF_OK) return 0;
  snprintf(errbuf, errlen, "kafka property %s=%s: %s", name, value, why);
  return -EINVAL;
}

/* The secret properties may come from the environment instead of a command
 * line, which every local user reads in /proc: OUTPOST_KAFKA_ and the name
 * in capitals with '_' for '.' (OUTPOST_KAFKA_SASL_PASSWORD). A
 * --kafka-property of the same name, set after these, wins. */
static int secrets_from_env(rd_kafka_conf_t *conf, char *errbuf, size_t errlen) {
  static const char *const secret[] = {"sasl.password", "ssl.key.password", "ssl.keystore.password",
                                       "sasl.oauthbearer.client.secret"};
  for (size_t i = 0; i < sizeof secret / sizeof *secret; i++) {
    char var[64] = BROKER_KAFKA_ENV_PREFIX;
    size_t n = strlen(var);
    for (const char *c = secret[i]; *c && n + 1 < sizeof var; c++)
      var[n++] = *c == '.' ? '_' : (char)(*c - ('a' <= *c && *c <= 'z' ? 'a' - 'A' : 0));
    var[n] = '\0';
    const char *v = getenv(var);
    char why[256];
    /* Not kset: its message would hold the value. */
    if (v && rd_kafka_conf_set(conf, secret[i], v, why, sizeof why) != RD_KAFKA_CONF_OK) {
      snprintf(errbuf, errlen, "%s: %s", var, why);
      return -EINVAL;
    }
  }
  return 0;
}

/* A new handle from the shared configuration plus `extra` (name, value pairs). */
static rd_kafka_t *new_handle(kafka_log *k, rd_kafka_type_t type, const char *const *extra,
                              size_t n_extra, char *errbuf, size_t errlen) {
  rd_kafka_conf_t *conf = rd_kafka_conf_dup(k->conf);
  for (size_t i = 0; i + 1 < n_extra; i += 2)
    if (kset(conf, extra[i], extra[i + 1], errbuf, errlen)) {
      rd_kafka_conf_destroy(conf);
      return NULL;
    }
  if (type == RD_KAFKA_PRODUCER) {
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_opaque(conf, k);
  }
  char why[512];
  rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof why);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    snprintf(errbuf, errlen, "kafka: %s", why);
  }
  return rk;
}

static int kafka_append(broker_log *log, const char *topic, const broker_record *recs, size_t n,
                        broker_append_cb cb, void *opaque) {
  kafka_log *k = (kafka_log *)log;
  if (n == 0) return -EINVAL;
  append *a = malloc(sizeof *a);
  if (!a) return -ENOMEM;
  atomic_fetch_add(&k->appends, 1);
  atomic_init(&a->left, n + 1); /* + 1: held by this function until every record is queued */
  atomic_init(&a->status, 0);
  a->cb = cb;
  a->opaque = opaque;
  size_t queued = 0;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  for (; queued < n; queued++) {
    const broker_record *r = &recs[queued];
    rd_kafka_headers_t *h = rd_kafka_headers_new(r->n_headers);
    for (size_t j = 0; j < r->n_headers; j++)
      rd_kafka_header_add(h, r->headers[j].name, (ssize_t)r->headers[j].name_len,
                          r->headers[j].value, (ssize_t)r->headers[j].value_len);
    err = rd_kafka_producev(
        k->producer, RD_KAFKA_V_TOPIC(topic),
        RD_KAFKA_V_PARTITION(r->partition >= 0 ? r->partition : RD_KAFKA_PARTITION_UA),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(r->key, r->key_len),
        RD_KAFKA_V_VALUE((void *)r->value, r->value_len), RD_KAFKA_V_HEADERS(h),
        RD_KAFKA_V_TIMESTAMP(r->timestamp_ms), RD_KAFKA_V_OPAQUE(a), RD_KAFKA_V_END);
    if (err) {
      rd_kafka_headers_destroy(h); /* producev only takes them on success */
      break;
    }
  }
  atomic_fetch_add(&k->records, queued);
  if (queued == 0) {
    free(a);
    return errno_for(err);
  }
  if (err) {
    int expected = 0;
    atomic_compare_exchange_strong(&a->status, &expected, errno_for(err));
  }
  finish(a, n - queued + 1);
  return 0;
}

static reader *find_reader(kafka_log *k, const char *topic, int32_t partition) {
  for (reader *r = k->readers; r; r = r->next)
    if (r->partition == partition && strcmp(r->topic, topic) == 0) return r;
  reader *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  rd_kafka_topic_conf_t *tc = rd_kafka_topic_conf_new();
  /* A position older than the cluster keeps (retention) reads on from the
   * oldest record it still has. */
  rd_kafka_topic_conf_set(tc, "auto.offset.reset", "earliest", NULL, 0);
  r->topic = strdup(topic);
  r->rkt = rd_kafka_topic_new(k->consumer, topic, tc);
  if (!r->topic || !r->rkt) {
    if (r->rkt) rd_kafka_topic_destroy(r->rkt);
    free(r->topic);
    free(r);
    return NULL;
  }
  r->partition = partition;
  r->next_offset = -1; /* not fetching */
  r->next = k->readers;
  k->readers = r;
  return r;
}

/* Copies messages into out: one allocation for the records' headers and bytes. */
static int copy_out(rd_kafka_message_t **msgs, size_t n, broker_records *out) {
  size_t bytes = 0, nh_total = 0;
  for (size_t i = 0; i < n; i++) {
    rd_kafka_headers_t *h = NULL;
    bytes += msgs[i]->len + msgs[i]->key_len;
    if (rd_kafka_message_headers(msgs[i], &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      size_t c = rd_kafka_header_cnt(h);
      nh_total += c;
      for (size_t j = 0; j < c; j++) {
        const char *name;
        const void *value;
        size_t vl;
        rd_kafka_header_get_all(h, j, &name, &value, &vl);
        bytes += strlen(name) + vl;
      }
    }
  }
  out->recs = calloc(n ? n : 1, sizeof *out->recs);
  out->mem = malloc(nh_total * sizeof(ce_kv) + bytes + 1);
  if (!out->recs || !out->mem) {
    broker_records_cleanup(out);
    return -ENOMEM;
  }
  ce_kv *kv = out->mem;
  char *p = (char *)(kv + nh_total);
  for (size_t i = 0; i < n; i++) {
    rd_kafka_message_t *m = msgs[i];
    broker_record *r = &out->recs[i];
    r->partition = m->partition;
    r->offset = m->offset;
    r->timestamp_ms = rd_kafka_message_timestamp(m, NULL);
    if (m->key) {
      memcpy(p, m->key, m->key_len);
      r->key = p;
      r->key_len = m->key_len;
      p += m->key_len;
    }
    if (m->payload) {
      memcpy(p, m->payload, m->len);
      r->value = p;
      r->value_len = m->len;
      p += m->len;
    }
    rd_kafka_headers_t *h = NULL;
    r->headers = kv;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      size_t c = rd_kafka_header_cnt(h);
      for (size_t j = 0; j < c; j++) {
        const char *name;
        const void *value;
        size_t vl;
        rd_kafka_header_get_all(h, j, &name, &value, &vl);
        size_t nl = strlen(name);
        memcpy(p, name, nl);
        kv->name = p;
        kv->name_len = nl;
        p += nl;
        if (vl) memcpy(p, value, vl);
        kv->value = p;
        kv->value_len = vl;
        p += vl;
        kv++;
      }
      r->n_headers = c;
    }
  }
  out->n = n;
  return 0;
}

static int kafka_read(broker_log *log, const char *topic, int32_t partition, int64_t from,
                      size_t max, broker_records *out) {
  kafka_log *k = (kafka_log *)log;
  broker_records_init(out);
  if (max == 0) return 0;
  if (max > 10000) max = 10000;
  pthread_mutex_lock(&k->lock);
  reader *r = find_reader(k, topic, partition);
  int rc = r ? 0 : -ENOMEM;
  if (r && r->next_offset != from) {
    if (r->next_offset >= 0) rd_kafka_consume_stop(r->rkt, partition);
    r->next_offset = -1;
    if (rd_kafka_consume_start(r->rkt, partition, from) == -1)
      rc = errno_for(rd_kafka_last_error());
    else
      r->next_offset = from;
  }
  rd_kafka_message_t **msgs = rc ? NULL : malloc(max * sizeof *msgs);
  ssize_t got = 0;
  if (!rc && !msgs) rc = -ENOMEM;
  if (!rc) {
    /* Whatever is fetched already; else wait for one record, then take the rest. */
    got = rd_kafka_consume_batch(r->rkt, partition, 0, msgs, max);
    if (got == 0) {
      rd_kafka_message_t *first = rd_kafka_consume(r->rkt, partition, k->opts.read_wait_ms);
      if (first) {
        msgs[0] = first;
        got = 1;
        if (max > 1) {
          ssize_t more = rd_kafka_consume_batch(r->rkt, partition, 0, msgs + 1, max - 1);
          if (more > 0) got += more;
        }
      }
    }
    if (got < 0) rc = errno_for(rd_kafka_last_error());
  }
  /* Drop end-of-partition notices and stop at an error. */
  size_t n = 0;
  for (ssize_t i = 0; i < got; i++) {
    if (msgs[i]->err == RD_KAFKA_RESP_ERR_NO_ERROR && rc == 0)
      msgs[n++] = msgs[i];
    else {
      if (msgs[i]->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && rc == 0) rc = errno_for(msgs[i]->err);
      rd_kafka_message_destroy(msgs[i]);
    }
  }
  if (n) r->next_offset = msgs[n - 1]->offset + 1;
  if (n && !rc) rc = copy_out(msgs, n, out);
  for (size_t i = 0; i < n; i++) rd_kafka_message_destroy(msgs[i]);
  free(msgs);
  pthread_mutex_unlock(&k->lock);
  return rc ? rc : (int)n;
}

static group *find_group(kafka_log *k, const char *name) {
  for (group *g = k->groups; g; g = g->next)
    if (strcmp(g->name, name) == 0) return g;
  char errbuf[256];
  const char *extra[] = {"group.id", name, "enable.auto.commit", "false", "statistics.interval.ms",
                         "0"};
  group *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->name = strdup(name);
  g->rk = g->name ? new_handle(k, RD_KAFKA_CONSUMER, extra, 6, errbuf, sizeof errbuf) : NULL;
  if (!g->rk) {
    fprintf(stderr, "outpost: kafka log: group %s: %s\n", name, errbuf);
    free(g->name);
    free(g);
    return NULL;
  }
  g->next = k->groups;
  k->groups = g;
  return g;
}

static group *group_for(kafka_log *k, const char *name) {
  pthread_mutex_lock(&k->lock);
  group *g = find_group(k, name);
  pthread_mutex_unlock(&k->lock);
  return g;
}

static int kafka_commit(broker_log *log, const char *group_name, const char *topic,
                        int32_t partition, int64_t next) {
  kafka_log *k = (kafka_log *)log;
  group *g = group_for(k, group_name);
  if (!g) return -ENOMEM;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic, partition)->offset = next;
  rd_kafka_resp_err_t err = rd_kafka_commit(g->rk, l, 0);
  if (!err) err = l->elems[0].err;
  rd_kafka_topic_partition_list_destroy(l);
  return errno_for(err);
}

static int kafka_committed(broker_log *log, const char *group_name, const char *topic,
                           int32_t partition, int64_t *next) {
  kafka_log *k = (kafka_log *)log;
  group *g = group_for(k, group_name);
  if (!g) return -ENOMEM;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic, partition);
  rd_kafka_resp_err_t err = rd_kafka_committed(g->rk, l, k->opts.admin_timeout_ms);
  if (!err) err = l->elems[0].err;
  if (!err) *next = l->elems[0].offset < 0 ? 0 : l->elems[0].offset;
  rd_kafka_topic_partition_list_destroy(l);
  return errno_for(err);
}

/* The partition count of topic from the cluster's metadata: > 0, -ENOENT
 * when the cluster does not have it, or another negative errno. Asks for
 * every topic, because a request naming one creates it on clusters that
 * auto-create (and on brokers too old to be told not to). */
static int metadata_partitions(kafka_log *k, const char *topic) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t err = rd_kafka_metadata(k->producer, 1, NULL, &md, k->opts.admin_timeout_ms);
  if (err) return errno_for(err);
  int rc = -ENOENT;
  for (int i = 0; i < md->topic_cnt; i++)
    if (strcmp(md->topics[i].topic, topic) == 0)
      rc = md->topics[i].err ? errno_for(md->topics[i].err) : md->topics[i].partition_cnt;
  rd_kafka_metadata_destroy(md);
  return rc;
}

/* Room for a topic config's name (Kafka's are under 50 bytes). */
enum { TOPIC_CONFIG_NAME = 128 };

/* Whether CreateTopics failed because of what it asked for, which asking
 * again another way (auto-creation) would only hide. */
static bool refused(rd_kafka_resp_err_t err) {
  switch (err) {
  case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
  case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
  case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
  case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
  case RD_KAFKA_RESP_ERR_INVALID_REPLICA_ASSIGNMENT:
  case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
  case RD_KAFKA_RESP_ERR_INVALID_REQUEST:
    return true;
  default:
    return false;
  }
}

/* Creates topic with the configured partitions, replication factor and
 * topic configs; a topic that exists already is success (and keeps its own
 * configs). -EREMOTEIO: the request was refused as it stands (a config the
 * cluster does not take, a policy, too many partitions...). */
static int create_topic(kafka_log *k, const char *topic) {
  char why[512];
  rd_kafka_NewTopic_t *nt =
      rd_kafka_NewTopic_new(topic, k->opts.partitions, k->opts.replication, why, sizeof why);
  for (size_t i = 0; nt && i < k->opts.n_topic_configs; i++) {
    const char *kv = k->opts.topic_configs[i], *eq = strchr(kv, '=');
    char name[TOPIC_CONFIG_NAME]; /* long enough: broker_log_kafka_open checked */
    snprintf(name, sizeof name, "%.*s", (int)(eq - kv), kv);
    rd_kafka_resp_err_t err = rd_kafka_NewTopic_set_config(nt, name, eq + 1);
    if (err) {
      snprintf(why, sizeof why, "config %s: %s", name, rd_kafka_err2str(err));
      rd_kafka_NewTopic_destroy(nt);
      nt = NULL;
    }
  }
  if (!nt) {
    fprintf(stderr, "outpost: kafka log: topic %s: %s\n", topic, why);
    return -EINVAL;
  }
  rd_kafka_queue_t *q = rd_kafka_queue_new(k->producer);
  rd_kafka_AdminOptions_t *ao =
      rd_kafka_AdminOptions_new(k->producer, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(ao, k->opts.admin_timeout_ms, NULL, 0);
  rd_kafka_CreateTopics(k->producer, &nt, 1, ao, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, k->opts.admin_timeout_ms + 1000);
  int rc = -ETIMEDOUT;
  if (ev) {
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t cnt = 0;
    const rd_kafka_topic_result_t **tr =
        res ? rd_kafka_CreateTopics_result_topics(res, &cnt) : NULL;
    if (!err && cnt == 1) err = rd_kafka_topic_result_error(tr[0]);
    if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err)
      fprintf(stderr, "outpost: kafka log: creating topic %s: %s\n", topic,
              cnt == 1 && rd_kafka_topic_result_error_string(tr[0])
                  ? rd_kafka_topic_result_error_string(tr[0])
                  : rd_kafka_err2str(err));
    rc = refused(err) ? -EREMOTEIO : errno_for(err);
    rd_kafka_event_destroy(ev);
  }
  rd_kafka_AdminOptions_destroy(ao);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  return rc;
}

/* Asks for topic by name, which creates it where the cluster auto-creates
 * topics (with the cluster's partition count). */
static void metadata_auto_create(kafka_log *k, const char *topic) {
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(k->producer, topic, NULL);
  const struct rd_kafka_metadata *md = NULL;
  if (rkt && !rd_kafka_metadata(k->producer, 0, rkt, &md, k->opts.admin_timeout_ms))
    rd_kafka_metadata_destroy(md);
  if (rkt) rd_kafka_topic_destroy(rkt);
}

static int kafka_partitions(broker_log *log, const char *topic) {
  kafka_log *k = (kafka_log *)log;
  int rc = metadata_partitions(k, topic);
  if (rc != -ENOENT) return rc;
  if (k->opts.mock) {
    /* librdkafka 2.0's mock cluster has no CreateTopics: its own API makes
     * it, and has nowhere to keep topic configs (it keeps every record). */
    rd_kafka_mock_topic_create(k->opts.mock->mc, topic, k->opts.partitions,
                               k->opts.replication > 0 ? k->opts.replication : 3);
    if (k->opts.n_topic_configs)
      fprintf(stderr, "outpost: kafka log: topic %s: the mock cluster ignores topic configs\n",
              topic);
  } else if ((rc = create_topic(k, topic)) == -EREMOTEIO) {
    return rc;
  } else if (rc) {
    fprintf(stderr,
            "outpost: kafka log: the cluster did not create topic %s (%s); asking for it by "
            "name, which creates it where the cluster auto-creates topics\n",
            topic, strerror(-rc));
    metadata_auto_create(k, topic);
  }
  /* Metadata trails creation a little on real clusters. */
  for (int i = 0; i < 50; i++) {
    rc = metadata_partitions(k, topic);
    if (rc != -ENOENT) return rc;
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return rc;
}

static int kafka_end(broker_log *log, const char *topic, int32_t partition, int64_t *end) {
  kafka_log *k = (kafka_log *)log;
  int64_t low, high;
  rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(k->producer, topic, partition, &low,
                                                             &high, k->opts.admin_timeout_ms);
  if (!err) *end = high;
  return errno_for(err);
}

static void kafka_free(broker_log *log) {
  kafka_log *k = (kafka_log *)log;
  /* Records already handed over get their time to be acknowledged; the
   * rest fail (callbacks with -ESHUTDOWN) rather than vanish. */
  rd_kafka_flush(k->producer, k->opts.delivery_timeout_ms);
  rd_kafka_purge(k->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  atomic_store(&k->stopping, true);
  pthread_join(k->poller, NULL);
  rd_kafka_poll(k->producer, 0); /* serves the purged records' callbacks */
  for (reader *r = k->readers, *next; r; r = next) {
    next = r->next;
    if (r->next_offset >= 0) rd_kafka_consume_stop(r->rkt, r->partition);
    rd_kafka_topic_destroy(r->rkt);
    free(r->topic);
    free(r);
  }
  for (group *g = k->groups, *next; g; g = next) {
    next = g->next;
    rd_kafka_destroy(g->rk);
    free(g->name);
    free(g);
  }
  rd_kafka_destroy(k->consumer);
  rd_kafka_destroy(k->producer);
  rd_kafka_conf_destroy(k->conf);
  pthread_mutex_destroy(&k->lock);
  pthread_mutex_destroy(&k->stats_lock);
  ce_buf_cleanup(&k->stats);
  free(k);
}

static void kafka_metrics(broker_log *log, ce_buf *out) {
  kafka_log *k = (kafka_log *)log;
  metrics_single(out, "outpost_log_appends_total", "counter",
                 "Appends (a request's events each) handed to the Kafka producer.",
                 atomic_load(&k->appends));
  metrics_single(out, "outpost_log_records_total", "counter",
                 "Records handed to the Kafka producer.", atomic_load(&k->records));
  metrics_ok_failed(out, "outpost_log_deliveries_total",
                    "Delivery reports of records, by result: ok (acknowledged by all in-sync "
                    "replicas), failed (their appends are answered 503).",
                    atomic_load(&k->delivered), atomic_load(&k->failed));
  pthread_mutex_lock(&k->stats_lock);
  if (k->stats.len) ce_buf_append(out, k->stats.data, k->stats.len);
  pthread_mutex_unlock(&k->stats_lock);
}

static const broker_log_ops kafka_ops = {
    .append = kafka_append,
    .read = kafka_read,
    .commit = kafka_commit,
    .committed = kafka_committed,
    .partitions = kafka_partitions,
    .end = kafka_end,
    .free = kafka_free,
    .metrics = kafka_metrics,
};

broker_log *broker_log_kafka_open(const broker_kafka_opts *opts, char *errbuf, size_t errlen) {
  if (!opts->bootstrap || !*opts->bootstrap) {
    snprintf(errbuf, errlen, "kafka log: no bootstrap servers");
    return NULL;
  }
  kafka_log *k = calloc(1, sizeof *k);
  if (!k) {
    snprintf(errbuf, errlen, "out of memory");
    return NULL;
  }
  k->base.ops = &kafka_ops;
  k->opts = *opts;
  k->conf = rd_kafka_conf_new();
  pthread_mutex_init(&k->lock, NULL);
  pthread_mutex_init(&k->stats_lock, NULL);
  ce_buf_init(&k->stats);
  char timeout[32];
  snprintf(timeout, sizeof timeout, "%d", opts->delivery_timeout_ms);
  int rc = kset(k->conf, "bootstrap.servers", opts->bootstrap, errbuf, errlen);
  if (!rc) rc = kset(k->conf, "client.id", "outpost-broker", errbuf, errlen);
  /* For /metrics (on_stats); a configured value wins, 0 turns them off. */
  if (!rc) rc = kset(k->conf, "statistics.interval.ms", "5000", errbuf, errlen);
  /* Topics are created by the log, with the configured partitions, never by
   * a metadata request's side effect (the mock cannot be told: it speaks too
   * old a Metadata version, and would only warn). */
  if (!rc && !opts->mock) rc = kset(k->conf, "allow.auto.create.topics", "false", errbuf, errlen);
  if (!rc) rc = secrets_from_env(k->conf, errbuf, errlen);
  for (size_t i = 0; !rc && i < opts->n_props; i++) {
    const char *eq = strchr(opts->props[i], '=');
    char name[128];
    if (!eq || eq == opts->props[i] || (size_t)(eq - opts->props[i]) >= sizeof name) {
      snprintf(errbuf, errlen, "kafka property '%s': want NAME=VALUE", opts->props[i]);
      rc = -EINVAL;
      break;
    }
    memcpy(name, opts->props[i], (size_t)(eq - opts->props[i]));
    name[eq - opts->props[i]] = '\0';
    for (size_t j = 0; j < sizeof locked / sizeof *locked; j++)
      if (strcmp(name, locked[j]) == 0) {
        snprintf(errbuf, errlen,
                 "kafka property %s is set by Outpost (idempotent producer, acks=all, "
                 "positions committed by Outpost) and cannot be configured",
                 name);
        rc = -EINVAL;
      }
    if (!rc) rc = kset(k->conf, name, eq + 1, errbuf, errlen);
  }
  for (size_t i = 0; !rc && i < opts->n_topic_configs; i++) {
    const char *eq = strchr(opts->topic_configs[i], '=');
    if (!eq || eq == opts->topic_configs[i] || eq - opts->topic_configs[i] >= TOPIC_CONFIG_NAME) {
      snprintf(errbuf, errlen, "topic config '%s': want NAME=VALUE (a name of at most %d bytes)",
               opts->topic_configs[i], TOPIC_CONFIG_NAME - 1);
      rc = -EINVAL;
    }
  }
  /* The producer: idempotent, acknowledged by all in-sync replicas, keys
   * partitioned as Java clients partition them. */
  const char *producer[] = {"enable.idempotence", "true",  "acks",        "all",
                            "message.timeout.ms", timeout, "partitioner", "murmur2_random",
                            "linger.ms",          "1"};
  const char *consumer[] = {"enable.auto.commit",     "false", "enable.partition.eof", "false",
                            "statistics.interval.ms", "0"};
  if (!rc) k->producer = new_handle(k, RD_KAFKA_PRODUCER, producer, 10, errbuf, errlen);
  if (k->producer) k->consumer = new_handle(k, RD_KAFKA_CONSUMER, consumer, 6, errbuf, errlen);
  if (!k->consumer || pthread_create(&k->poller, NULL, poll_loop, k)) {
    if (k->consumer) snprintf(errbuf, errlen, "kafka log: cannot start its thread");
    if (k->consumer) rd_kafka_destroy(k->consumer);
    if (k->producer) rd_kafka_destroy(k->producer);
    rd_kafka_conf_destroy(k->conf);
    pthread_mutex_destroy(&k->lock);
    pthread_mutex_destroy(&k->stats_lock);
    free(k);
    return NULL;
  }
  return &k->base;
}

/* ---- the mock cluster ---- */

broker_kafka_mock *broker_kafka_mock_start(int brokers, char *errbuf, size_t errlen) {
  broker_kafka_mock *m = calloc(1, sizeof *m);
  if (!m) {
    snprintf(errbuf, errlen, "out of memory");
    return NULL;
  }
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
  char why[256];
  m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
  if (!m->rk) {
    rd_kafka_conf_destroy(conf);
    snprintf(errbuf, errlen, "kafka mock: %s", why);
    free(m);
    return NULL;
  }
  m->mc = rd_kafka_mock_cluster_new(m->rk, brokers);
  if (!m->mc) {
    snprintf(errbuf, errlen, "kafka mock: cannot start %d brokers", brokers);
    rd_kafka_destroy(m->rk);
    free(m);
    return NULL;
  }
  return m;
}

const char *broker_kafka_mock_bootstraps(const broker_kafka_mock *m) {
  return rd_kafka_mock_cluster_bootstraps(m->mc);
}

rd_kafka_mock_cluster_t *broker_kafka_mock_cluster(broker_kafka_mock *m) {
  return m->mc;
}

void broker_kafka_mock_stop(broker_kafka_mock *m) {
  if (!m) return;
  rd_kafka_mock_cluster_destroy(m->mc);
  rd_kafka_destroy(m->rk);
  free(m);
}
