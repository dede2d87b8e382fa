/*
 * main.c — `outpost detector`: one per node. Loads the eBPF side, polls its
 * ring buffer on a thread, attributes each event to the environment the
 * admin API said its cgroup belongs to, and publishes it as a CloudEvent to
 * the broker; takes tenants' events over HTTP; reports ring-buffer and
 * publisher drops in a periodic dev.outpost.detector.drops event, and each
 * environment the kernel throttled in a dev.outpost.detector.throttled
 * event per period. Stopped by SIGINT or SIGTERM: the buffer is drained to
 * the broker for --drain-ms.
 */
#define _GNU_SOURCE /* sigtimedwait, gethostname */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/httpc.h"
#include "core/metrics.h"
#include "core/resources.h"
#include "detector/daemon.h"
#include "detector/detector_int.h"

/* The exit code when the kernel side cannot load: `outpost run` goes on without it. */
#define EXIT_NO_BPF 3

/* --rate-limit's default, events per second per environment. A lab's own
 * work (a shell, a parallel build) makes hundreds of events a second, and
 * the fastest exec storm one process makes here about 5,000 (bench/README.md);
 * the user side sustains 16,000-24,000 in all, so three environments
 * flooding at once still leave it room, and a system-call flood of 300,000
 * reported calls a second is cut sixtyfold. */
#define RATE_LIMIT_DEFAULT 10000

static void usage(FILE *f) {
  fputs("usage: outpost detector --broker-url URL [options]\n"
        "\n"
        "Reports what processes of watched lab environments do (eBPF) and tenants' own\n"
        "events, as CloudEvents published to a broker's ingress. See detector/README.md.\n"
        "\n"
        "  --broker-url URL      the ingress, e.g. http://127.0.0.1:8080/default/default\n"
        "  --ingress-token TOKEN its bearer token, when the broker has --senders-file\n"
        "                        (default $OUTPOST_INGRESS_TOKEN, which other users\n"
        "                        cannot read)\n"
        "  --kafka SERVERS       publish straight to Kafka instead (bootstrap servers)\n"
        "  --topic TOPIC         the Kafka topic (with --kafka; the broker's topic is\n"
        "                        knative-broker-<namespace>-<name>)\n"
        "  --kafka-property K=V  a librdkafka property (repeatable)\n"
        "  --listen HOST:PORT    its HTTP server (default 127.0.0.1:8090)\n"
        "  --node NAME           this node's name (default: the host name)\n"
        "  --ring-bytes N        the kernel ring buffer, a power of two (default 1048576)\n"
        "  --ring-wakeup-ms MS   while the reader is busy, records are read together\n"
        "                        every MS instead of each waking it (default 5; 0: every\n"
        "                        record wakes it)\n"
        "  --rate-limit N        events per second each environment may report; past\n"
        "                        it the kernel counts them as throttled (a kill is always\n"
        "                        reported; default 10000; 0: no limit)\n"
        "  --no-bpf              no kernel side: tenant events only\n"
        "  --tenant-token T=TOK  tenant T's bearer token (repeatable)\n"
        "  --tokens-file FILE    more of them, one TENANT=TOKEN (or TENANT TOKEN) per line\n"
        "                        ('#' comments)\n"
        "  --admin-token TOKEN   bearer token of /v1/environments, /v1/policies and\n"
        "                        /v1/limits (default $OUTPOST_ADMIN_TOKEN, which other\n"
        "                        users cannot read; without either the admin API is open\n"
        "                        to whoever reaches it)\n"
        "  --max-events N        events buffered for the broker (default 10000)\n"
        "  --max-buffer-bytes N  their bytes (default 16777216)\n"
        "  --batch-events N      events per batch (default 100)\n"
        "  --batch-ms MS         how long an event waits for its batch to fill (default 20)\n"
        "  --drops-interval MS   how often drops are checked and reported (default 10000)\n"
        "  --forkrate-threshold N  forks per second of an environment that raise\n"
        "                        dev.outpost.process.forkrate (default 50)\n"
        "  --forkrate-window MS  the sliding window of that rate (default 1000)\n"
        "  --drain-ms MS         on SIGTERM, how long to go on delivering (default 5000)\n"
        "  --max-body BYTES      largest request body (default 262144)\n"
        "  --threads N           HTTP threads (default 2)\n",
        f);
}

typedef struct det_flags {
  char host[64];
  uint16_t port;
  const char *node, *tokens_file, *admin_token;
  size_t ring_bytes, max_body, threads;
  int ring_wakeup_ms; /* detector_bpf_opts.batch_ms */
  uint64_t rate_limit;
  bool no_bpf;
  int drops_ms, drain_ms;
  const char *tokens[64];
  size_t n_tokens;
  const char *kafka_props[64];
  size_t n_kafka_props;
  int fr_window_ms;
  uint32_t fr_threshold;
  detector_pub_opts po;
} det_flags;

static int parse_size(const char *s, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || end == s || s[0] == '-') return -EINVAL;
  *out = (size_t)v;
  return 0;
}

/* ------------------------------------------------------------ tokens */

static int token_add(det_daemon *dd, const char *line, const char *where) {
  const char *eq = strchr(line, '=');
  size_t tl = eq ? (size_t)(eq - line) : 0;
  if (!eq || !res_valid_dns_label(line, tl) || !eq[1] || strpbrk(eq + 1, " \t")) {
    fprintf(stderr,
            "outpost detector: %s: want TENANT=TOKEN (a DNS label, a token without spaces)\n",
            where);
    return -EINVAL;
  }
  det_token *t = realloc(dd->tokens, (dd->n_tokens + 1) * sizeof *t);
  if (!t) return -ENOMEM;
  dd->tokens = t;
  t[dd->n_tokens].tenant = strndup(line, tl);
  t[dd->n_tokens].token = strdup(eq + 1);
  if (!t[dd->n_tokens].tenant || !t[dd->n_tokens].token) {
    free(t[dd->n_tokens].tenant);
    free(t[dd->n_tokens].token);
    return -ENOMEM;
  }
  dd->n_tokens++;
  return 0;
}

static int tokens_load(det_daemon *dd, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "outpost detector: %s: %s\n", path, strerror(errno));
    return -errno;
  }
  char line[1024], where[1100];
  int rc = 0, no = 0;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    no++;
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = 0;
    char *s = line + strspn(line, " \t");
    if (!*s || *s == '#') continue;
    /* TENANT TOKEN, as the cluster post's tokens file has it, is taken too:
     * `outpost run` gives both the same file. */
    char *ws = s + strcspn(s, " \t");
    if (*ws && !memchr(s, '=', (size_t)(ws - s))) {
      char *tok = ws + strspn(ws, " \t");
      memmove(ws + 1, tok, strlen(tok) + 1);
      *ws = '=';
    }
    snprintf(where, sizeof where, "%s:%d", path, no);
    rc = token_add(dd, s, where);
  }
  fclose(f);
  return rc;
}

static void tokens_free(det_daemon *dd) {
  for (size_t i = 0; i < dd->n_tokens; i++) {
    free(dd->tokens[i].tenant);
    free(dd->tokens[i].token);
  }
  free(dd->tokens);
}

/* ------------------------------------------------------------ flags */

static const struct option longopts[] = {{"broker-url", required_argument, NULL, 'u'},
                                         {"ingress-token", required_argument, NULL, 'I'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"node", required_argument, NULL, 'n'},
                                         {"ring-bytes", required_argument, NULL, 'r'},
                                         {"ring-wakeup-ms", required_argument, NULL, 'w'},
                                         {"rate-limit", required_argument, NULL, 'R'},
                                         {"no-bpf", no_argument, NULL, 'N'},
                                         {"tenant-token", required_argument, NULL, 't'},
                                         {"tokens-file", required_argument, NULL, 'f'},
                                         {"admin-token", required_argument, NULL, 'a'},
                                         {"max-events", required_argument, NULL, 'e'},
                                         {"max-buffer-bytes", required_argument, NULL, 'b'},
                                         {"batch-events", required_argument, NULL, 'E'},
                                         {"batch-ms", required_argument, NULL, 'm'},
                                         {"drops-interval", required_argument, NULL, 'i'},
                                         {"drain-ms", required_argument, NULL, 'd'},
                                         {"max-body", required_argument, NULL, 'B'},
                                         {"threads", required_argument, NULL, 'T'},
                                         {"kafka", required_argument, NULL, 'k'},
                                         {"topic", required_argument, NULL, 'o'},
                                         {"kafka-property", required_argument, NULL, 'p'},
                                         {"forkrate-threshold", required_argument, NULL, 'F'},
                                         {"forkrate-window", required_argument, NULL, 'W'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};

static int check_flags(det_flags *fl);

/* The flags that take a number (optarg): 0, or 2 when it is not one. */
static int number_flag(int c, det_flags *fl) {
  size_t v;
  if (parse_size(optarg, &v) || v == 0 || v > INT32_MAX) {
    fprintf(stderr, "outpost detector: bad number '%s'\n", optarg);
    return 2;
  }
  if (c == 'r' && (v < 4096 || (v & (v - 1)))) {
    fprintf(stderr, "outpost detector: --ring-bytes %s: a power of two, at least 4096\n", optarg);
    return 2;
  }
  if (c == 'r') fl->ring_bytes = v;
  if (c == 'e') fl->po.max_events = v;
  if (c == 'b') fl->po.max_bytes = v;
  if (c == 'E') fl->po.batch_events = v;
  if (c == 'm') fl->po.batch_ms = (int)v;
  if (c == 'i') fl->drops_ms = (int)v;
  if (c == 'd') fl->drain_ms = (int)v;
  if (c == 'B') fl->max_body = v;
  if (c == 'T') fl->threads = v;
  if (c == 'F') fl->fr_threshold = (uint32_t)v;
  if (c == 'W') fl->fr_window_ms = (int)v;
  return 0;
}

static int parse_flags(int argc, char **argv, det_flags *fl) {
  int c;
  size_t v;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    if (c == 'h') {
      usage(stdout);
      return 0;
    }
    if (c == '?') return 2;
    if (c == 'u') {
      fl->po.url = optarg;
    } else if (c == 'I') {
      fl->po.token = optarg;
    } else if (c == 'l') {
      const char *colon = strrchr(optarg, ':');
      if (!colon || (size_t)(colon - optarg) >= sizeof fl->host || parse_size(colon + 1, &v) ||
          v > 65535) {
        fprintf(stderr, "outpost detector: --listen wants HOST:PORT, not '%s'\n", optarg);
        return 2;
      }
      snprintf(fl->host, sizeof fl->host, "%.*s", (int)(colon - optarg), optarg);
      fl->port = (uint16_t)v;
    } else if (c == 'n') {
      fl->node = optarg;
    } else if (c == 'w') {
      if (parse_size(optarg, &v) || v > 1000) {
        fprintf(stderr, "outpost detector: --ring-wakeup-ms wants 0 to 1000, not '%s'\n", optarg);
        return 2;
      }
      fl->ring_wakeup_ms = v ? (int)v : -1;
    } else if (c == 'R') {
      if (parse_size(optarg, &v) || v > DET_RATE_LIMIT_MAX) {
        fprintf(stderr, "outpost detector: --rate-limit wants 0 to 2147483647, not '%s'\n", optarg);
        return 2;
      }
      fl->rate_limit = v;
    } else if (c == 'N') {
      fl->no_bpf = true;
    } else if (c == 't') {
      if (fl->n_tokens == 64) {
        fprintf(stderr, "outpost detector: at most 64 --tenant-token\n");
        return 2;
      }
      fl->tokens[fl->n_tokens++] = optarg;
    } else if (c == 'f') {
      fl->tokens_file = optarg;
    } else if (c == 'a') {
      fl->admin_token = optarg;
    } else if (c == 'k') {
      fl->po.kafka_bootstrap = optarg;
    } else if (c == 'o') {
      fl->po.topic = optarg;
    } else if (c == 'p') {
      if (fl->n_kafka_props == 64 || !strchr(optarg, '=')) {
        fprintf(stderr, "outpost detector: --kafka-property wants K=V (at most 64)\n");
        return 2;
      }
      fl->kafka_props[fl->n_kafka_props++] = optarg;
    } else if (number_flag(c, fl)) {
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "outpost detector: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  const char *env_token = getenv("OUTPOST_ADMIN_TOKEN");
  if (!fl->admin_token && env_token && *env_token) fl->admin_token = env_token;
  if (fl->po.token && fl->po.kafka_bootstrap) {
    fprintf(stderr, "outpost detector: --ingress-token is for --broker-url, not --kafka\n");
    return 2;
  }
  const char *env_ingress = getenv("OUTPOST_INGRESS_TOKEN");
  if (!fl->po.token && fl->po.url && env_ingress && *env_ingress) fl->po.token = env_ingress;
  return check_flags(fl);
}

/* What goes together: one destination, a topic with Kafka only. */
static int check_flags(det_flags *fl) {
  if (!fl->po.url == !fl->po.kafka_bootstrap) {
    fprintf(stderr, "outpost detector: one of --broker-url and --kafka is required\n");
    return 2;
  }
  if (!fl->po.kafka_bootstrap != !fl->po.topic) {
    fprintf(stderr, "outpost detector: --kafka and --topic go together\n");
    return 2;
  }
  if (fl->n_kafka_props && !fl->po.kafka_bootstrap) {
    fprintf(stderr, "outpost detector: --kafka-property needs --kafka\n");
    return 2;
  }
  if (!httpc_token_ok(fl->po.token)) {
    fprintf(stderr, "outpost detector: the ingress token is visible characters only\n");
    return 2;
  }
  if (fl->fr_window_ms && fl->fr_window_ms < 10) {
    fprintf(stderr, "outpost detector: --forkrate-window is at least 10 ms\n");
    return 2;
  }
  fl->po.kafka_props = fl->kafka_props;
  fl->po.n_kafka_props = fl->n_kafka_props;
  return -1; /* go on */
}

/* The node goes into every source URI: letters, digits, '.', '-', '_'. */
static bool node_ok(const char *s) {
  size_t n = strlen(s);
  return n > 0 && n < DET_NAME_MAX &&
         strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   "0123456789.-_") == n;
}

/* ------------------------------------------------------------ kernel events */

static atomic_bool poll_stop;

/* Counts n forks (e the last of them) towards their environment's rate and
 * queues the forkrate alarm when one is due (on the poll thread: the
 * tracker is its own). */
static void forkrate_check(det_daemon *dd, const detector_event *e, const detector_env *de,
                           uint64_t n) {
  double rate = 0;
  int due = detector_forkrate_add(dd->forkrate, e->env_id, e->boot_ns, n, &rate);
  if (due <= 0) {
    if (due < 0) detector_pub_drop(dd->pub, DETECTOR_DROP_NO_MEMORY, 1);
    return;
  }
  ce_event *ev = NULL;
  int rc = detector_forkrate_to_ce(de, e, rate, dd->fr_window_ms, dd->fr_threshold, &ev, NULL);
  if (rc) {
    detector_pub_drop(dd->pub, rc == -ENOMEM ? DETECTOR_DROP_NO_MEMORY : DETECTOR_DROP_INVALID, 1);
    return;
  }
  fprintf(stderr, "outpost detector: environment %s forks %.0f/s (over %d ms, threshold %u)\n",
          de->environment, rate, dd->fr_window_ms, (unsigned)dd->fr_threshold);
  atomic_fetch_add_explicit(&dd->forkrate_events, 1, memory_order_relaxed);
  detector_pub_push(dd->pub, ev, true, NULL); /* a refusal is counted inside */
}

static int on_event(const detector_event *e, void *opaque) {
  det_daemon *dd = opaque;
  det_env env;
  ce_event *ev = NULL;
  ce_err err = {0};
  if (e->kind > 0 && e->kind < DETECTOR_KIND_MAX)
    atomic_fetch_add_explicit(&dd->kernel_events[e->kind], 1, memory_order_relaxed);
  if (detector__env_find(dd, e->env_id, &env) != 0) {
    detector_pub_drop(dd->pub, DETECTOR_DROP_UNATTRIBUTED, 1);
    return 0;
  }
  detector_env de = {.node = dd->node, .environment = env.name, .tenant = env.tenant, .ns = env.ns};
  if (e->kind == DETECTOR_FORK) forkrate_check(dd, e, &de, 1);
  int rc = -ENOTSUP;
  if (dd->pub_json) {
    /* The common path: the event's JSON straight from the record, without
     * a ce_event to build, validate and encode (a tenth of the CPU). */
    ce_buf_reset(&dd->ev_json);
    rc = detector_event_json(e, &de, &dd->ev_json);
    if (rc == 0) {
      detector_pub_push_json(dd->pub, dd->ev_json.data, dd->ev_json.len, true);
      return 0;
    }
  }
  /* Kafka, or names the fast path does not vouch for: the checked way. */
  if (rc == -ENOTSUP) rc = detector_event_to_ce(e, &de, &ev, &err);
  if (rc) {
    detector_pub_drop(dd->pub, rc == -ENOMEM ? DETECTOR_DROP_NO_MEMORY : DETECTOR_DROP_INVALID, 1);
    return 0;
  }
  detector_pub_push(dd->pub, ev, true, NULL); /* a refusal is counted inside */
  return 0;
}

/* Forks the kernel throttled still count towards the fork rate: a flood
 * must not hide a fork bomb. They come as a count with the time and process
 * of the last one, which stands for them all (a scan is a tenth of the
 * window apart, so they land in the right bucket or the one before). */
static void forkrate_throttled(det_daemon *dd, const detector_throttled *t, uint64_t forks) {
  det_env env;
  detector_event e;
  if (detector__env_find(dd, t->env_id, &env) != 0) return;
  detector_env de = {.node = dd->node, .environment = env.name, .tenant = env.tenant, .ns = env.ns};
  struct timespec bt;
  clock_gettime(CLOCK_BOOTTIME, &bt);
  /* The time is stored after the count: a scan between the two sees 0. */
  uint64_t at = t->fork_ns ? t->fork_ns : (uint64_t)bt.tv_sec * 1000000000u + (uint64_t)bt.tv_nsec;
  int64_t wall = (int64_t)at + detector__boot_to_wall_ns();
  memset(&e, 0, sizeof e);
  e.kind = DETECTOR_FORK;
  e.env_id = t->env_id;
  e.boot_ns = at;
  e.pid = t->fork_pid;
  e.time_sec = wall / 1000000000;
  e.time_nsec = (int32_t)(wall % 1000000000);
  forkrate_check(dd, &e, &de, forks);
}

static int throttled_note(const detector_throttled *t, void *opaque) {
  det_daemon *dd = opaque;
  uint64_t forks = 0;
  /* -ENOMEM: the tracker keeps the old totals, and the next scan notes it. */
  if (detector_throttle_note(dd->throttle, t, &forks) == 0 && forks)
    forkrate_throttled(dd, t, forks);
  return 0;
}

/* Reads what the kernel throttled per cgroup into the tracker. */
static void throttled_scan(det_daemon *dd) {
  if (detector_bpf_throttled_each(dd->bpf, throttled_note, dd) == 0)
    detector_throttle_sweep(dd->throttle);
}

static void *poll_thread(void *arg) {
  det_daemon *dd = arg;
  /* Throttled counts are read every tenth of the fork-rate window: a bucket. */
  uint64_t scan_ns = (uint64_t)dd->fr_window_ms * 100000u, next_scan = 0;
  while (!atomic_load(&poll_stop)) {
    int rc = detector_bpf_poll(dd->bpf, 100, on_event, dd);
    if (rc < 0 && rc != -EINTR) {
      fprintf(stderr, "outpost detector: polling the ring buffer: %s\n", strerror(-rc));
      nanosleep(&(struct timespec){0, 100000000}, NULL);
    }
    uint64_t now = metrics_now_ns();
    if (now >= next_scan) {
      throttled_scan(dd);
      next_scan = now + scan_ns;
    }
  }
  detector_bpf_poll(dd->bpf, 0, on_event, dd); /* what is left in the ring */
  throttled_scan(dd);
  ce_buf_cleanup(&dd->ev_json);
  return NULL;
}

/* ------------------------------------------------------------ drops */

/* The counters as last reported. */
typedef struct drops_seen {
  uint64_t ring[DETECTOR_KIND_MAX];
  uint64_t pub[DETECTOR_DROP_MAX];
} drops_seen;

static void drops_json(ce_buf *b, const drops_seen *now, const drops_seen *last, int interval) {
  char item[96];
  snprintf(item, sizeof item, "{\"interval_ms\":%d,\"ring\":{\"total\":%llu", interval,
           (unsigned long long)now->ring[0]);
  ce_buf_append_str(b, item);
  for (int k = 1; k < DETECTOR_KIND_MAX; k++) {
    snprintf(item, sizeof item, ",\"%s\":%llu", detector_kind_name(k),
             (unsigned long long)now->ring[k]);
    ce_buf_append_str(b, item);
  }
  snprintf(item, sizeof item, "},\"ring_new\":%llu,\"publisher\":{",
           (unsigned long long)(now->ring[0] - last->ring[0]));
  ce_buf_append_str(b, item);
  for (int r = 0; r < DETECTOR_DROP_MAX; r++) {
    snprintf(item, sizeof item, "%s\"%s\":%llu", r ? "," : "", detector_drop_name(r),
             (unsigned long long)now->pub[r]);
    ce_buf_append_str(b, item);
  }
  uint64_t pub_new = 0;
  for (int r = 0; r < DETECTOR_DROP_MAX; r++) pub_new += now->pub[r] - last->pub[r];
  snprintf(item, sizeof item, "},\"publisher_new\":%llu}", (unsigned long long)pub_new);
  ce_buf_append_str(b, item);
}

/* Publishes a dev.outpost.detector.drops event when a drop counter moved
 * since the last one that was queued. */
static void drops_check(det_daemon *dd, drops_seen *last, int interval) {
  drops_seen now;
  memset(&now, 0, sizeof now);
  detector_pub_stats st;
  if (dd->bpf && detector_bpf_drops(dd->bpf, now.ring) != 0) return;
  detector_pub_stats_get(dd->pub, &st);
  memcpy(now.pub, st.dropped, sizeof now.pub);
  if (memcmp(&now, last, sizeof now) == 0) return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  char id[64], source[96], t[40];
  snprintf(id, sizeof id, "drops-%lld.%09ld", (long long)ts.tv_sec, ts.tv_nsec);
  snprintf(source, sizeof source, "/nodes/%s/detector", dd->node);
  ce_timestamp_format(ts.tv_sec, (int32_t)ts.tv_nsec, t, sizeof t);
  ce_buf data;
  ce_buf_init(&data);
  drops_json(&data, &now, last, interval);
  ce_event *ev = ce_event_new();
  int rc = ev ? 0 : -ENOMEM;
  if (rc == 0) rc = ce_event_set_str(ev, "specversion", "1.0", NULL);
  if (rc == 0) rc = ce_event_set_str(ev, "id", id, NULL);
  if (rc == 0) rc = ce_event_set_str(ev, "source", source, NULL);
  if (rc == 0) rc = ce_event_set_str(ev, "type", "dev.outpost.detector.drops", NULL);
  if (rc == 0) rc = ce_event_set(ev, "time", CE_TYPE_TIMESTAMP, t, strlen(t), NULL);
  if (rc == 0) rc = ce_event_set_str(ev, "subject", "drops", NULL);
  if (rc == 0) rc = ce_event_set_str(ev, "datacontenttype", "application/json", NULL);
  if (rc == 0) rc = ce_event_set_str(ev, "node", dd->node, NULL);
  if (rc == 0) rc = ce_event_set_str(ev, "severity", "warning", NULL);
  if (rc == 0) rc = ce_event_set_str(ev, "partitionkey", dd->node, NULL);
  if (rc == 0) rc = ce_event_set_data(ev, data.data, data.len);
  fprintf(stderr, "outpost detector: drops: %s\n", data.data);
  ce_buf_cleanup(&data);
  if (rc) {
    ce_event_free(ev);
    return;
  }
  /* A report the buffer refuses is not a drop: last is kept, so the next
   * check reports again, with the newer numbers. */
  if (detector_pub_push(dd->pub, ev, false, NULL) == 0) {
    *last = now;
    atomic_fetch_add_explicit(&dd->drops_reports, 1, memory_order_relaxed);
  }
}

/* ------------------------------------------------------------ throttled */

typedef struct throttle_report {
  det_daemon *dd;
  int interval_ms;
  struct timespec now;
} throttle_report;

/* Queues the dev.outpost.detector.throttled event of one environment. */
static void throttled_event(uint32_t env_id, const uint64_t counts[DETECTOR_KIND_MAX],
                            void *opaque) {
  throttle_report *r = opaque;
  det_daemon *dd = r->dd;
  det_env env;
  ce_event *ev = NULL;
  if (detector__env_find(dd, env_id, &env) != 0) {
    detector_pub_drop(dd->pub, DETECTOR_DROP_UNATTRIBUTED, 1);
    return;
  }
  detector_env de = {.node = dd->node, .environment = env.name, .tenant = env.tenant, .ns = env.ns};
  uint64_t limit = atomic_load_explicit(&dd->rate_limit, memory_order_relaxed);
  int rc = detector_throttle_to_ce(&de, env_id, counts, limit, r->interval_ms, r->now.tv_sec,
                                   (int32_t)r->now.tv_nsec, &ev, NULL);
  if (rc) {
    detector_pub_drop(dd->pub, rc == -ENOMEM ? DETECTOR_DROP_NO_MEMORY : DETECTOR_DROP_INVALID, 1);
    return;
  }
  fprintf(stderr, "outpost detector: environment %s: %llu event(s) throttled (limit %llu/s)\n",
          env.name, (unsigned long long)counts[0], (unsigned long long)limit);
  atomic_fetch_add_explicit(&dd->throttled_reports, 1, memory_order_relaxed);
  detector_pub_push(dd->pub, ev, true, NULL); /* a refusal is counted inside */
}

/* One event per environment throttled since the last report. */
static void throttled_report(det_daemon *dd, int interval_ms) {
  throttle_report r = {.dd = dd, .interval_ms = interval_ms};
  if (!dd->throttle) return;
  clock_gettime(CLOCK_REALTIME, &r.now);
  detector_throttle_take(dd->throttle, throttled_event, &r);
}

/* ------------------------------------------------------------ life */

/* Opens the kernel side; NULL and a line on stderr when it is unavailable. */
static detector_bpf *bpf_open(const det_flags *fl) {
  char err[512] = "";
  detector_bpf_opts bo = {
      .ring_bytes = fl->ring_bytes, .batch_ms = fl->ring_wakeup_ms, .rate_limit = fl->rate_limit};
  detector_bpf *bpf = detector_bpf_open(&bo, err, sizeof err);
  if (!bpf) {
    fprintf(stderr, "outpost detector: eBPF unavailable: %s (--no-bpf runs tenant events only)\n",
            err);
    return NULL;
  }
  printf("detector hooks: %s\n", detector_bpf_hooks(bpf)->summary);
  return bpf;
}

/* Waits for SIGINT or SIGTERM, checking drops every drops_ms meanwhile. */
static void run_until_signal(det_daemon *dd, const sigset_t *sigs, int drops_ms) {
  drops_seen last;
  memset(&last, 0, sizeof last);
  uint64_t next = metrics_now_ns() + (uint64_t)drops_ms * 1000000u;
  for (;;) {
    uint64_t now = metrics_now_ns();
    if (now >= next) {
      drops_check(dd, &last, drops_ms);
      throttled_report(dd, drops_ms);
      next = now + (uint64_t)drops_ms * 1000000u;
    }
    now = metrics_now_ns();
    uint64_t wait = next > now ? next - now : 0;
    struct timespec ts = {(time_t)(wait / 1000000000u), (long)(wait % 1000000000u)};
    int sig = sigtimedwait(sigs, NULL, &ts);
    if (sig > 0) {
      fprintf(stderr, "outpost detector: signal %d, stopping\n", sig);
      break;
    }
  }
  drops_check(dd, &last, drops_ms); /* the last word, before the publisher drains */
}

static int serve(det_daemon *dd, const det_flags *fl, const sigset_t *sigs) {
  char err[512] = "";
  httpd_opts ho;
  httpd_opts_init(&ho);
  ho.host = fl->host;
  ho.port = fl->port;
  ho.threads = fl->threads ? (unsigned)fl->threads : 2;
  ho.max_body = fl->max_body ? fl->max_body : 256u << 10;
  dd->pub = detector_pub_start(&fl->po, err, sizeof err);
  dd->pub_json = dd->pub && detector_pub_takes_json(dd->pub);
  httpd *h = dd->pub ? httpd_start(&ho, detector__http, dd, err, sizeof err) : NULL;
  pthread_t poller;
  bool polling = false;
  if (h && dd->bpf) {
    int rc = pthread_create(&poller, NULL, poll_thread, dd);
    polling = rc == 0;
    if (rc) snprintf(err, sizeof err, "pthread_create: %s", strerror(rc));
  }
  int status = 0;
  if (!h || (dd->bpf && !polling)) {
    fprintf(stderr, "outpost detector: %s\n", err);
    status = 1;
  } else {
    printf("listening on http://%s:%u (node %s, %s %s, kernel side %s)\n", fl->host, httpd_port(h),
           dd->node, fl->po.url ? "broker" : "kafka", fl->po.url ? fl->po.url : fl->po.topic,
           dd->bpf ? "on" : "off");
    fflush(stdout);
    run_until_signal(dd, sigs, fl->drops_ms ? fl->drops_ms : 10000);
  }
  atomic_store(&dd->draining, true);
  atomic_store(&poll_stop, true);
  if (polling) pthread_join(poller, NULL);
  throttled_report(dd, fl->drops_ms ? fl->drops_ms : 10000); /* what the last scan found */
  httpd_stop(h); /* every request is answered before its handler returns */
  uint64_t lost = detector_pub_stop(dd->pub, fl->drain_ms ? fl->drain_ms : 5000);
  if (lost)
    fprintf(stderr,
            "outpost detector: %llu event(s) not delivered by the end of --drain-ms: "
            "counted as dropped (shutdown)\n",
            (unsigned long long)lost);
  return status;
}

int detector_main(int argc, char **argv) {
  det_flags fl = {.host = "127.0.0.1", .port = 8090, .rate_limit = RATE_LIMIT_DEFAULT};
  detector_pub_opts_init(&fl.po);
  int rc = parse_flags(argc, argv, &fl);
  if (rc >= 0) return rc;
  char host[DET_NAME_MAX] = "";
  if (!fl.node && gethostname(host, sizeof host) == 0) fl.node = host;
  if (!fl.node || !node_ok(fl.node)) {
    fprintf(stderr,
            "outpost detector: the node name '%s' is not [A-Za-z0-9._-]{1,63}: use --node\n",
            fl.node ? fl.node : "");
    return 2;
  }
  det_daemon dd = {.node = fl.node,
                   .admin_token = fl.admin_token,
                   .fr_window_ms = fl.fr_window_ms ? fl.fr_window_ms : 1000,
                   .fr_threshold = fl.fr_threshold ? fl.fr_threshold : 50,
                   .rate_limit = fl.rate_limit};
  detector__table_init(&dd.table);
  if (rc < 0 && (!(dd.forkrate = detector_forkrate_new(dd.fr_window_ms, dd.fr_threshold)) ||
                 !(dd.throttle = detector_throttle_new()))) {
    fprintf(stderr, "outpost detector: %s\n", strerror(errno));
    rc = 1;
  }
  for (size_t i = 0; i < fl.n_tokens && rc < 0; i++)
    if (token_add(&dd, fl.tokens[i], "--tenant-token")) rc = 2;
  if (rc < 0 && fl.tokens_file && tokens_load(&dd, fl.tokens_file)) rc = 2;
  /* Signals are taken by sigtimedwait, so every thread starts with them blocked. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (rc < 0 && !fl.no_bpf && !(dd.bpf = bpf_open(&fl))) rc = EXIT_NO_BPF;
  if (rc < 0) rc = serve(&dd, &fl, &sigs);
  detector_bpf_free(dd.bpf);
  detector_forkrate_free(dd.forkrate);
  detector_throttle_free(dd.throttle);
  detector__table_cleanup(&dd.table);
  tokens_free(&dd);
  return rc;
}
