/*
 * main.c — `outpost broker`: the ingress, the log (embedded or Kafka) and
 * the trigger dispatcher as one process, configured by flags and a file,
 * stopped by SIGINT or SIGTERM (in-flight requests are answered first).
 */
#define _DEFAULT_SOURCE /* realpath */
#include "broker/broker.h"
#include "broker/broker_int.h"
#include "core/resources.h"
#include "trigger/dispatcher.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Long options without a short letter. */
enum {
  OPT_EPOLL = 256,
  OPT_POLL,
  OPT_HYBRID,
  OPT_POLL_CONNS,
  OPT_RETENTION,
  OPT_RETENTION_BYTES,
  OPT_MAX_LOG_BYTES,
  OPT_TOPIC_CONFIG,
  OPT_FAST_LANE,
  OPT_NO_FAST_LANE,
  OPT_MAX_CONNECTIONS,
  OPT_PER_CLIENT,
  OPT_CLIENT_RATE,
  OPT_CLIENT_BURST,
  OPT_IDLE_TIMEOUT,
  OPT_HEADER_TIMEOUT,
  OPT_LANE_THREADS,
  OPT_WRITER_COMMITS,
  OPT_BATCH_POLLS,
  OPT_SENDERS_FILE,
  OPT_TLS_CERT,
  OPT_TLS_KEY
};

static void usage(FILE *f) {
  fputs("usage: outpost broker [options]\n"
        "\n"
        "Knative-compatible CloudEvents ingress (POST /<namespace>/<broker>) on the\n"
        "embedded durable log, or on Kafka.\n"
        "\n"
        "  --listen HOST:PORT    where to listen (default 127.0.0.1:8080)\n"
        "  --data FILE           the embedded log's file (default outpost-data/broker.db)\n"
        "  --kafka SERVERS       use Kafka (bootstrap servers host:port,...) instead of the\n"
        "                        embedded log; 'mock' starts librdkafka's mock cluster in this\n"
        "                        process (3 brokers, in memory: for demos and tests only)\n"
        "  --kafka-property K=V  a librdkafka property (repeatable): security.protocol,\n"
        "                        sasl.*, ssl.*, linger.ms, ...\n"
        "  --delivery-timeout MS Kafka: an event not acknowledged by then is answered 503\n"
        "                        (default 10000)\n"
        "  --config FILE         declare the Broker and Trigger resources of FILE (YAML or\n"
        "                        JSON, Knative's shape)\n"
        "  --broker NS/NAME      declare a broker (repeatable; default default/default when\n"
        "                        neither this nor --config declares one)\n"
        "  --partitions N        partitions of new topics (default 1; 3 on Kafka)\n"
        "  --retention DURATION  embedded log: records older than this go, oldest first,\n"
        "                        once every consumer group is past them (ISO-8601, e.g.\n"
        "                        P7D, PT12H; default P7D; 0: no age limit). Kafka: the\n"
        "                        retention.ms of new topics (0: -1; default: the cluster's)\n"
        "  --retention-bytes N   embedded log: past N bytes on disk the oldest records\n"
        "                        every group is past go (default 0: no size limit).\n"
        "                        Kafka: the retention.bytes of new topics (0: -1)\n"
        "  --max-log-bytes N     embedded log: past N bytes on disk events are refused\n"
        "                        with 503, nothing dropped (default 0: no limit)\n"
        "  --topic-config K=V    Kafka: a config of every topic the broker creates\n"
        "                        (repeatable): cleanup.policy, min.insync.replicas, ...\n"
        "  --max-body BYTES      largest request body (default 1048576)\n"
        "  --max-headers N       most request headers (default 100)\n"
        "  --max-inflight N      requests waiting for the log before 429 (default 4096)\n"
        "  --threads N           HTTP threads of each libmicrohttpd pool (default: the\n"
        "                        number of cores)\n"
        "  --hybrid              both pools (the default): the first --poll-connections\n"
        "                        connections to the poll pool, the rest to the epoll pool\n"
        "  --epoll, --poll       one pool only, whose threads wait with epoll or poll\n"
        "  --poll-connections N  connections of the poll pool with --hybrid (default 256)\n"
        "  --fast-lane           with --hybrid (the default): plain POSTs of events served\n"
        "                        on threads of our own, anything else by libmicrohttpd\n"
        "  --no-fast-lane        every request served by libmicrohttpd\n"
        "  --lane-threads N      threads of the fast lane (default: the cores but one, at\n"
        "                        least 1)\n"
        "  --writer-commits      embedded log: every group commit on the log's writer\n"
        "                        thread (default: the fast lane commits its requests\n"
        "                        itself at the end of each batch)\n"
        "  --batch-polls N       fast lane: before a batch ends (and the lane commits),\n"
        "                        up to N more looks for requests that came in meanwhile,\n"
        "                        which join it (default 3; 0: none)\n"
        "  --max-connections N   open connections at most; past it new ones are closed\n"
        "                        (default 4096)\n"
        "  --max-connections-per-client N  open connections one client address may\n"
        "                        hold; past it its new ones are closed (default 0: no\n"
        "                        limit)\n"
        "  --client-rate N       events a second each client address may POST; past it\n"
        "                        429 with Retry-After (default 0: no limit)\n"
        "  --client-burst N      events a client may POST at once within its rate\n"
        "                        (default: one second's worth)\n"
        "  --idle-timeout S      close a keep-alive connection idle for S seconds\n"
        "                        (default 60; 0: never)\n"
        "  --header-timeout S    a request whose head has not come whole S seconds after\n"
        "                        it began is answered 408 and its connection closed\n"
        "                        (default 10; 0: never)\n"
        "  --thread-per-connection  serve each connection on its own thread instead of the\n"
        "                        pool (see bench/README.md for the measurements)\n"
        "  --admin-token TOKEN   bearer token for the admin APIs (/v1/brokers, /v1/triggers)\n"
        "                        (default $OUTPOST_ADMIN_TOKEN, which other users cannot read)\n"
        "  --senders-file FILE   who may POST events: lines 'NAME TOKEN [TYPE-PREFIX...]\n"
        "                        [to=NS/NAME...]'; a POST needs one's bearer token (401),\n"
        "                        a broker and types its sender may send (403). Default:\n"
        "                        anyone\n"
        "  --tls-cert FILE       serve HTTPS (TLS 1.2, 1.3) with this PEM certificate chain\n"
        "  --tls-key FILE        and its PEM private key; read at start. Without the fast\n"
        "                        lane: every request is libmicrohttpd's\n"
        "  --triggers-state FILE where triggers applied through /v1/triggers are kept across\n"
        "                        restarts (default: triggers.json beside --data)\n"
        "  --brokers-state FILE  where brokers declared through /v1/brokers are kept across\n"
        "                        restarts (default: brokers.json beside --data)\n"
        "  --window N            records of a partition in delivery at once (default 256)\n"
        "  --attempt-timeout MS  one delivery attempt, when a trigger sets no timeout\n"
        "                        (default 30000)\n"
        "  --role ROLE           all (default): ingress and dispatcher in one process;\n"
        "                        ingress: events only (scale it out; /v1/triggers is 404);\n"
        "                        dispatcher: triggers only (one process: partitions are\n"
        "                        assigned by Outpost, a second would deliver twice;\n"
        "                        POST of events is 404)\n",
        f);
}

/* Whether paths a and b name the same file: the same inode when both
 * exist, else the same absolute path (a state file made at the first start
 * does not exist yet). */
static bool same_file(const char *a, const char *b) {
  struct stat sa, sb;
  if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  const char *paths[2] = {a, b};
  char dirs[2][PATH_MAX];
  const char *names[2];
  for (int i = 0; i < 2; i++) {
    const char *slash = strrchr(paths[i], '/');
    char dir[PATH_MAX];
    if (!slash)
      snprintf(dir, sizeof dir, ".");
    else
      snprintf(dir, sizeof dir, "%.*s", slash == paths[i] ? 1 : (int)(slash - paths[i]), paths[i]);
    names[i] = slash ? slash + 1 : paths[i];
    if (!realpath(dir, dirs[i])) return false;
  }
  return strcmp(dirs[0], dirs[1]) == 0 && strcmp(names[0], names[1]) == 0;
}

/* path's default: name in the directory of --data's file. */
static void beside(const char *data, const char *name, char *out, size_t len) {
  const char *slash = strrchr(data, '/');
  snprintf(out, len, "%.*s%s%s", slash ? (int)(slash - data) : 0, data, slash ? "/" : "", name);
}

static int parse_size(const char *s, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || end == s) return -EINVAL;
  *out = (size_t)v;
  return 0;
}

/* A whole number from lo to hi (no sign: strtoull would take "-1" as its
 * largest value): 0, or -EINVAL. */
static int parse_range(const char *s, size_t lo, size_t hi, size_t *out) {
  return parse_size(s, out) || *s == '-' || *out < lo || *out > hi ? -EINVAL : 0;
}

#define MAX_REPEATED 64

/* Keeps one more value of a repeatable flag (MAX_REPEATED at most). */
static int push(const char **arr, size_t *n, const char *v, const char *flag) {
  if (*n == MAX_REPEATED) {
    fprintf(stderr, "outpost broker: at most %d %s\n", MAX_REPEATED, flag);
    return -1;
  }
  arr[(*n)++] = v;
  return 0;
}

/* --role ingress: the trigger admin API is on the dispatcher. */
static void no_triggers(void *ctx, httpd_req *req, const char *rest) {
  (void)ctx, (void)rest;
  httpd_respond_error(req, 404,
                      "this broker process runs --role ingress: the trigger API is on the "
                      "dispatcher (--role dispatcher)",
                      NULL, -1, NULL, 0);
}

/* The dispatcher reaches the ingress's brokers and serves on its server. */
static int topic_for(void *ctx, const char *ns, const char *name, char *topic, size_t len) {
  return broker_ingress_topic(ctx, ns, name, topic, len);
}

static void serve_triggers(void *ctx, httpd_req *req, const char *rest) {
  trigger_dispatcher_http(ctx, req, rest);
}

static void trigger_metrics(void *ctx, ce_buf *out) {
  trigger_dispatcher_metrics(ctx, out);
}

int broker_main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"listen", required_argument, NULL, 'l'},
      {"data", required_argument, NULL, 'd'},
      {"broker", required_argument, NULL, 'b'},
      {"config", required_argument, NULL, 'c'},
      {"partitions", required_argument, NULL, 'p'},
      {"max-body", required_argument, NULL, 'B'},
      {"max-headers", required_argument, NULL, 'H'},
      {"max-inflight", required_argument, NULL, 'i'},
      {"threads", required_argument, NULL, 't'},
      {"admin-token", required_argument, NULL, 'a'},
      {"senders-file", required_argument, NULL, OPT_SENDERS_FILE},
      {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
      {"tls-key", required_argument, NULL, OPT_TLS_KEY},
      {"kafka", required_argument, NULL, 'k'},
      {"thread-per-connection", no_argument, NULL, 'P'},
      {"epoll", no_argument, NULL, OPT_EPOLL},
      {"poll", no_argument, NULL, OPT_POLL},
      {"hybrid", no_argument, NULL, OPT_HYBRID},
      {"poll-connections", required_argument, NULL, OPT_POLL_CONNS},
      {"kafka-property", required_argument, NULL, 'K'},
      {"delivery-timeout", required_argument, NULL, 'T'},
      {"window", required_argument, NULL, 'w'},
      {"triggers-state", required_argument, NULL, 'S'},
      {"brokers-state", required_argument, NULL, 'L'},
      {"attempt-timeout", required_argument, NULL, 'A'},
      {"role", required_argument, NULL, 'r'},
      {"retention", required_argument, NULL, OPT_RETENTION},
      {"retention-bytes", required_argument, NULL, OPT_RETENTION_BYTES},
      {"max-log-bytes", required_argument, NULL, OPT_MAX_LOG_BYTES},
      {"topic-config", required_argument, NULL, OPT_TOPIC_CONFIG},
      {"fast-lane", no_argument, NULL, OPT_FAST_LANE},
      {"no-fast-lane", no_argument, NULL, OPT_NO_FAST_LANE},
      {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
      {"max-connections-per-client", required_argument, NULL, OPT_PER_CLIENT},
      {"client-rate", required_argument, NULL, OPT_CLIENT_RATE},
      {"client-burst", required_argument, NULL, OPT_CLIENT_BURST},
      {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
      {"header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT},
      {"lane-threads", required_argument, NULL, OPT_LANE_THREADS},
      {"writer-commits", no_argument, NULL, OPT_WRITER_COMMITS},
      {"batch-polls", required_argument, NULL, OPT_BATCH_POLLS},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  broker_ingress_opts o;
  broker_ingress_opts_init(&o);
  broker_sqlite_opts so;
  broker_sqlite_opts_init(&so);
  broker_kafka_opts ko;
  broker_kafka_opts_init(&ko);
  trigger_dispatcher_opts dopts;
  trigger_dispatcher_opts_init(&dopts);
  const char *kafka = NULL, *config = NULL, *state = NULL;
  const char *props[MAX_REPEATED];
  size_t n_props = 0;
  const char *data = "outpost-data/broker.db";
  char host[64] = "127.0.0.1";
  const char *brokers[MAX_REPEATED];
  size_t n_brokers = 0;
  int c;
  size_t v;
  bool max_log = false; /* --max-log-bytes, which Kafka has no equivalent of */
  bool retention = false, retention_bytes = false;
  const char *topic_configs[MAX_REPEATED];
  size_t n_topic_configs = 0;
  int lane = -1; /* --fast-lane (1), --no-fast-lane (0), neither (-1) */
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case 'l': {
      const char *colon = strrchr(optarg, ':');
      if (!colon || (size_t)(colon - optarg) >= sizeof host || parse_size(colon + 1, &v) ||
          v > 65535) {
        fprintf(stderr, "outpost broker: --listen wants HOST:PORT, not '%s'\n", optarg);
        return 2;
      }
      memcpy(host, optarg, (size_t)(colon - optarg));
      host[colon - optarg] = '\0';
      o.http.port = (uint16_t)v;
      break;
    }
    case 'd':
      data = optarg;
      break;
    case 'c':
      config = optarg;
      break;
    case 'S':
      state = optarg;
      break;
    case 'L':
      o.brokers_state = optarg;
      break;
    case 'b':
      if (push(brokers, &n_brokers, optarg, "--broker")) return 2;
      break;
    case 'h':
      usage(stdout);
      return 0;
    case OPT_SENDERS_FILE:
      o.senders_file = optarg;
      break;
    case OPT_TLS_CERT:
      o.http.tls_cert_file = optarg;
      break;
    case OPT_TLS_KEY:
      o.http.tls_key_file = optarg;
      break;
    case 'a':
      o.admin_token = optarg;
      break;
    case 'k':
      kafka = optarg;
      break;
    case 'r':
      if (strcmp(optarg, "all") && strcmp(optarg, "ingress") && strcmp(optarg, "dispatcher")) {
        fprintf(stderr, "outpost broker: --role is all, ingress or dispatcher, not '%s'\n", optarg);
        return 2;
      }
      o.role = optarg;
      break;
    case 'P':
      o.http.model = HTTPD_THREAD_PER_CONNECTION;
      break;
    case OPT_EPOLL:
      o.http.model = HTTPD_EPOLL_POOL;
      break;
    case OPT_POLL:
      o.http.model = HTTPD_POLL_POOL;
      break;
    case OPT_HYBRID:
      o.http.model = HTTPD_HYBRID_POOL;
      break;
    case OPT_FAST_LANE:
    case OPT_NO_FAST_LANE:
      lane = c == OPT_FAST_LANE;
      break;
    case OPT_WRITER_COMMITS:
      o.lane_commits = false;
      break;
    case OPT_BATCH_POLLS: /* 0 is allowed: a batch is one epoll_wait */
      if (parse_range(optarg, 0, 64, &v)) {
        fprintf(stderr, "outpost broker: --batch-polls wants 0 to 64, not '%s'\n", optarg);
        return 2;
      }
      o.http.batch_polls = (unsigned)v;
      break;
    case OPT_IDLE_TIMEOUT: /* both: 0 is allowed, never */
    case OPT_HEADER_TIMEOUT:
      if (parse_range(optarg, 0, UINT_MAX, &v)) {
        fprintf(stderr, "outpost broker: --%s wants seconds, not '%s'\n",
                c == OPT_IDLE_TIMEOUT ? "idle-timeout" : "header-timeout", optarg);
        return 2;
      }
      *(c == OPT_IDLE_TIMEOUT ? &o.http.idle_timeout_s : &o.http.header_timeout_s) = (unsigned)v;
      break;
    case OPT_PER_CLIENT: /* 0 is allowed: no limit */
      if (parse_range(optarg, 0, UINT_MAX, &v)) {
        fprintf(stderr, "outpost broker: --max-connections-per-client wants a count, not '%s'\n",
                optarg);
        return 2;
      }
      o.http.max_connections_per_client = (unsigned)v;
      break;
    case OPT_CLIENT_RATE: /* 0 is allowed: no limit */
      if (parse_range(optarg, 0, 1000000, &v)) {
        fprintf(stderr,
                "outpost broker: --client-rate wants 0 to 1000000 events a second, not '%s'\n",
                optarg);
        return 2;
      }
      o.client_rate = (uint32_t)v;
      break;
    case OPT_CLIENT_BURST:
      if (parse_range(optarg, 1, 1000000000, &v)) {
        fprintf(stderr, "outpost broker: --client-burst wants 1 to 1000000000 events, not '%s'\n",
                optarg);
        return 2;
      }
      o.client_burst = (uint32_t)v;
      break;
    case 'K':
      if (push(props, &n_props, optarg, "--kafka-property")) return 2;
      break;
    case OPT_RETENTION: {
      int64_t ms = 0;
      if (strcmp(optarg, "0") && res_duration_ms(optarg, &ms)) {
        fprintf(stderr,
                "outpost broker: --retention wants an ISO-8601 duration (P7D, PT12H) or 0,"
                " not '%s'\n",
                optarg);
        return 2;
      }
      so.retention_ms = ms;
      retention = true;
      break;
    }
    case OPT_RETENTION_BYTES:
    case OPT_MAX_LOG_BYTES:
      if (parse_range(optarg, 0, SIZE_MAX, &v)) {
        fprintf(stderr, "outpost broker: --%s wants a number of bytes, not '%s'\n",
                c == OPT_RETENTION_BYTES ? "retention-bytes" : "max-log-bytes", optarg);
        return 2;
      }
      if (c == OPT_RETENTION_BYTES) so.retention_bytes = v > INT64_MAX ? INT64_MAX : (int64_t)v;
      if (c == OPT_MAX_LOG_BYTES) so.max_bytes = v > INT64_MAX ? INT64_MAX : (int64_t)v;
      retention_bytes |= c == OPT_RETENTION_BYTES;
      max_log |= c == OPT_MAX_LOG_BYTES;
      break;
    case OPT_TOPIC_CONFIG: {
      const char *eq = strchr(optarg, '=');
      if (!eq || eq == optarg) {
        fprintf(stderr, "outpost broker: --topic-config wants NAME=VALUE, not '%s'\n", optarg);
        return 2;
      }
      if (push(topic_configs, &n_topic_configs, optarg, "--topic-config")) return 2;
      break;
    }
    default: {
      if (c == '?' || parse_size(optarg, &v) || v == 0) {
        if (c != '?') fprintf(stderr, "outpost broker: bad number '%s'\n", optarg);
        usage(stderr);
        return 2;
      }
      if (c == 'p') so.partitions = ko.partitions = v > INT32_MAX ? INT32_MAX : (int32_t)v;
      if (c == 'T') ko.delivery_timeout_ms = v > INT32_MAX ? INT32_MAX : (int)v;
      if (c == 'B') o.limits.max_body = v;
      if (c == 'H') o.limits.max_headers = v;
      if (c == 'i') o.max_inflight = v;
      if (c == 't') o.http.threads = (unsigned)v;
      if (c == OPT_LANE_THREADS) o.http.fast_threads = v > UINT_MAX ? UINT_MAX : (unsigned)v;
      if (c == OPT_POLL_CONNS) o.http.poll_connections = v > UINT_MAX ? UINT_MAX : (unsigned)v;
      if (c == OPT_MAX_CONNECTIONS) o.http.max_connections = v > UINT_MAX ? UINT_MAX : (unsigned)v;
      if (c == 'w') dopts.window = v;
      if (c == 'A') dopts.timeout_ms = v > INT32_MAX ? INT32_MAX : (int64_t)v;
    }
    }
  }
  if (optind < argc) {
    fprintf(stderr, "outpost broker: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (o.client_burst && !o.client_rate) {
    fprintf(stderr, "outpost broker: --client-burst needs a --client-rate\n");
    return 2;
  }
  if (lane == 1 && o.http.model != HTTPD_HYBRID_POOL) {
    fprintf(stderr, "outpost broker: --fast-lane works with --hybrid (the default), not with"
                    " --epoll, --poll or --thread-per-connection\n");
    return 2;
  }
  if (!o.http.tls_cert_file != !o.http.tls_key_file) {
    fprintf(stderr, "outpost broker: --tls-cert and --tls-key go together\n");
    return 2;
  }
  const char *tls_files[] = {o.http.tls_cert_file, o.http.tls_key_file};
  for (size_t i = 0; i < 2; i++)
    if (tls_files[i] && access(tls_files[i], R_OK)) {
      fprintf(stderr, "outpost broker: %s %s: %s\n", i ? "--tls-key" : "--tls-cert", tls_files[i],
              strerror(errno));
      return 2;
    }
  if (lane == 1 && o.http.tls_cert_file) {
    fprintf(stderr, "outpost broker: --fast-lane serves plain HTTP; with --tls-cert every"
                    " request is libmicrohttpd's\n");
    return 2;
  }
  if (lane == 0 || o.http.model != HTTPD_HYBRID_POOL) o.http.fast_lane = false;
  if (kafka && max_log) {
    fprintf(stderr, "outpost broker: --max-log-bytes is for the embedded log; a Kafka cluster's"
                    " disk is the cluster's to size\n");
    return 2;
  }
  if (!kafka && n_topic_configs) {
    fprintf(stderr, "outpost broker: --topic-config is for Kafka (--kafka); the embedded log"
                    " takes --retention and --retention-bytes\n");
    return 2;
  }
  /* On Kafka the retention flags become the new topics' configs. */
  char retention_ms_kv[48], retention_bytes_kv[48];
  if (kafka && retention) {
    snprintf(retention_ms_kv, sizeof retention_ms_kv, "retention.ms=%lld",
             so.retention_ms ? (long long)so.retention_ms : -1LL);
    if (push(topic_configs, &n_topic_configs, retention_ms_kv, "--topic-config")) return 2;
  }
  if (kafka && retention_bytes) {
    snprintf(retention_bytes_kv, sizeof retention_bytes_kv, "retention.bytes=%lld",
             so.retention_bytes ? (long long)so.retention_bytes : -1LL);
    if (push(topic_configs, &n_topic_configs, retention_bytes_kv, "--topic-config")) return 2;
  }
  for (size_t i = 0; i < n_topic_configs; i++)
    for (size_t j = 0; j < i; j++) {
      size_t n = (size_t)(strchr(topic_configs[i], '=') - topic_configs[i]);
      if (strncmp(topic_configs[i], topic_configs[j], n + 1) == 0) {
        fprintf(stderr,
                "outpost broker: topic config %.*s is given twice (--topic-config, or"
                " --retention / --retention-bytes on Kafka)\n",
                (int)n, topic_configs[i]);
        return 2;
      }
    }
  const char *env_token = getenv("OUTPOST_ADMIN_TOKEN");
  if (!o.admin_token && env_token && *env_token) o.admin_token = env_token;
  o.http.host = host;
  const char *scheme = o.http.tls_cert_file ? "https" : "http";
  /* The state files are the broker's to rewrite: a --config there would be
   * overwritten by the first change through the admin API. */
  char state_buf[PATH_MAX], brokers_buf[PATH_MAX];
  if (!state) {
    beside(data, "triggers.json", state_buf, sizeof state_buf);
    state = state_buf;
  }
  if (!o.brokers_state) {
    beside(data, "brokers.json", brokers_buf, sizeof brokers_buf);
    o.brokers_state = brokers_buf;
  }
  const char *clash = !config                              ? NULL
                      : same_file(config, state)           ? "--triggers-state"
                      : same_file(config, o.brokers_state) ? "--brokers-state"
                                                           : NULL;
  if (clash) {
    fprintf(stderr,
            "outpost broker: --config %s is the broker's own state file (%s); the admin API"
            " would overwrite it. Name it otherwise, or move the state with --triggers-state"
            " / --brokers-state (default: beside --data)\n",
            config, clash);
    return 2;
  }
  if (same_file(state, o.brokers_state)) {
    fprintf(stderr, "outpost broker: --triggers-state and --brokers-state are the same file %s\n",
            state);
    return 2;
  }
  /* Every declaration, from the file and the flags, is checked before anything starts. */
  char err[512], where[600];
  broker_decl *decls = NULL;
  size_t n_decls = 0;
  if (config && broker_config_load(config, &decls, &n_decls, err, sizeof err)) {
    fprintf(stderr, "outpost broker: %s\n", err);
    return 2;
  }
  if (o.senders_file) {
    broker_senders *senders = broker__senders_load(o.senders_file, err, sizeof err);
    if (!senders) {
      fprintf(stderr, "outpost broker: --senders-file %s\n", err);
      broker_decls_cleanup(decls, n_decls);
      return 2;
    }
    broker__senders_free(senders); /* read again by the ingress */
  }
  if (n_brokers == 0 && n_decls == 0) brokers[n_brokers++] = "default/default";
  broker_decl *all = realloc(decls, (n_decls + n_brokers + 1) * sizeof *all);
  if (!all) {
    broker_decls_cleanup(decls, n_decls);
    return 1;
  }
  decls = all;
  for (size_t i = 0; i < n_brokers; i++) {
    const char *sl = strchr(brokers[i], '/');
    broker_decl *d = &decls[n_decls++];
    d->ns = sl ? strndup(brokers[i], (size_t)(sl - brokers[i])) : NULL;
    d->name = sl ? strdup(sl + 1) : NULL;
    d->topic = NULL;
    if (!d->ns || !d->name) {
      fprintf(stderr, "outpost broker: bad --broker '%s' (NAMESPACE/NAME)\n", brokers[i]);
      broker_decls_cleanup(decls, n_decls);
      return 2;
    }
  }
  /* Signals are taken by sigwait below, so every thread starts with them blocked. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  broker_kafka_mock *mock = NULL;
  broker_log *log = NULL;
  if (kafka) {
    if (strcmp(kafka, "mock") == 0) {
      mock = broker_kafka_mock_start(3, err, sizeof err);
      if (!mock) {
        fprintf(stderr, "outpost broker: %s\n", err);
        broker_decls_cleanup(decls, n_decls);
        return 1;
      }
      kafka = broker_kafka_mock_bootstraps(mock);
      ko.mock = mock;
      printf("kafka mock cluster (in memory, not durable): %s\n", kafka);
    }
    ko.bootstrap = kafka;
    ko.props = props;
    ko.n_props = n_props;
    ko.topic_configs = topic_configs;
    ko.n_topic_configs = n_topic_configs;
    log = broker_log_kafka_open(&ko, err, sizeof err);
    snprintf(where, sizeof where, "kafka %s", kafka);
  } else {
    /* The log's directory is created when it is missing. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", data);
    char *slash = strrchr(dir, '/');
    if (slash) {
      *slash = '\0';
      mkdir(dir, 0750);
    }
    log = broker_log_sqlite_open(data, &so, err, sizeof err);
    snprintf(where, sizeof where, "embedded %s", data);
  }
  o.kafka = kafka;
  broker_ingress *in = log ? broker_ingress_start(&o, log, err, sizeof err) : NULL;
  int rc = in ? 0 : 1;
  if (!in) fprintf(stderr, "outpost broker: %s\n", err);
  for (size_t i = 0; in && i < n_decls && rc == 0; i++) {
    const broker_decl *d = &decls[i];
    int add = broker_ingress_add(in, d->ns, d->name, d->topic);
    if (add == -EINVAL) {
      fprintf(stderr, "outpost broker: bad broker name %s/%s (DNS labels: [a-z0-9-], at most 63)\n",
              d->ns, d->name);
      rc = 2;
    } else if (add) {
      fprintf(stderr, "outpost broker: broker %s/%s: the log cannot make its topic (%s)\n", d->ns,
              d->name,
              add == -EREMOTEIO ? "the cluster refused it, as said above" : strerror(-add));
      rc = 1;
    } else {
      printf("broker %s/%s: POST %s://%s:%u/%s/%s\n", d->ns, d->name, scheme, host,
             broker_ingress_port(in), d->ns, d->name);
    }
  }
  broker_decls_cleanup(decls, n_decls);
  if (rc == 0) {
    /* After the configuration's: a broker the admin API declared again
     * (another topic) is the API's. */
    int kept = broker_ingress_restore(in, err, sizeof err);
    if (kept < 0) {
      fprintf(stderr, "outpost broker: %s\n", err);
      rc = 2;
    }
    if (kept > 0) printf("%d broker(s) restored from %s\n", kept, o.brokers_state);
  }
  trigger_dispatcher *disp = NULL;
  bool dispatch = !o.role || strcmp(o.role, "ingress") != 0;
  if (rc == 0 && !dispatch) broker_ingress_mount(in, "/v1/triggers", no_triggers, NULL, NULL);
  if (rc == 0 && dispatch) {
    dopts.log = log;
    dopts.topic_for = topic_for;
    dopts.topic_ctx = in;
    dopts.state_path = state;
    char sdir[PATH_MAX];
    snprintf(sdir, sizeof sdir, "%s", state);
    char *ss = strrchr(sdir, '/');
    if (ss) { /* the state file's directory, like the log's, is made when missing */
      *ss = '\0';
      mkdir(sdir, 0750);
    }
    /* Held until every trigger of the configuration and of the state file is
     * in place: each gets the log's backlog (records read before the last
     * was applied would otherwise be done for the ones applied so far). */
    dopts.held = true;
    const char *pause = getenv("OUTPOST_TEST_APPLY_PAUSE_MS");
    if (pause && parse_range(pause, 1, 10000, &v) == 0) dopts.apply_pause_ms = (int)v;
    disp = trigger_dispatcher_start(&dopts, err, sizeof err);
    if (disp && config) rc = trigger_dispatcher_load(disp, config, err, sizeof err) ? 2 : 0;
    if (disp && rc == 0) {
      int kept = trigger_dispatcher_restore(disp, err, sizeof err);
      if (err[0]) fprintf(stderr, "outpost broker: %s\n", err);
      if (kept < 0) rc = 2;
      if (kept > 0) printf("%d trigger(s) restored from %s\n", kept, state);
    }
    if (disp && rc == 0) {
      trigger_dispatcher_release(disp);
      broker_ingress_mount(in, "/v1/triggers", serve_triggers, trigger_metrics, disp);
    }
    if (!disp || rc) {
      fprintf(stderr, "outpost broker: %s\n", err);
      rc = rc ? rc : 1;
    }
  }
  if (rc) {
    broker_ingress_stop(in);
    trigger_dispatcher_stop(disp);
    broker_log_free(log);
    broker_kafka_mock_stop(mock);
    return rc;
  }
  printf("listening on %s://%s:%u (log: %s, role: %s)\n", scheme, host, broker_ingress_port(in),
         where, o.role ? o.role : "all");
  fflush(stdout);
  int sig = 0;
  sigwait(&sigs, &sig);
  fprintf(stderr, "outpost broker: signal %d, stopping\n", sig);
  broker_ingress_stop(in); /* first: the admin API reaches the dispatcher through it */
  trigger_dispatcher_stop(disp);
  broker_log_free(log);
  broker_kafka_mock_stop(mock);
  return 0;
}
