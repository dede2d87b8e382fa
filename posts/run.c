/*
 * run.c — `outpost run`: the whole platform on one machine, from embedded
 * defaults. This process is the root of the tree and a post of its own tier
 * ("run"), so that it supervises, adopts after a crash and publishes as the
 * posts do:
 *
 *   run (the tail of events: GET /v1/events; port base + 9)
 *     ├─ podman system service   only when the socket does not answer
 *     ├─ broker                  embedded log (or --kafka), the dispatcher (base)
 *     ├─ detector                eBPF, or --no-bpf when the kernel side cannot run (base + 5)
 *     └─ cluster post            the Labs REST API (base + 10)
 *          └─ node post          the warm pool (base + 11)
 *               └─ ns post       the namespace's policy (base + 12)
 *
 * Everything lives under --data: the broker's log and triggers, the posts'
 * state, the tokens (made on the first start and kept), the configuration it
 * gave the components, and each child's log file. A restart finds it all
 * there, and adopts the children still running after a crash of this
 * process. SIGINT/SIGTERM stops the children, the last started first (the
 * posts publish to the broker while they stop), then this process.
 */
#define _GNU_SOURCE /* getrandom */

#include "posts/pool.h"
#include "posts/run_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROPS   32
#define TAIL_EVENTS 4096
#define WAIT_BROKER 60000 /* ms for the broker to answer before the banner says so */
#define WAIT_PODMAN 20000 /* ms for a podman service we started to answer */
#define BROKER_PATH "default/default"
#define NAMESPACE   "labs"
#define TOKEN_BYTES 16

/* The configuration `outpost run` gives its components when --config names
 * none: the broker, the demo lab template and its namespace's policy. The
 * posts register their own triggers with the broker (and this process its
 * tail). */
static const char default_config[] =
    "# Written by `outpost run` at each start from its embedded defaults: edits here are\n"
    "# lost. Pass your own file with --config (every component reads the kinds it knows).\n"
    "apiVersion: eventing.knative.dev/v1\n"
    "kind: Broker\n"
    "metadata: {name: default, namespace: default}\n"
    "---\n"
    "# The demo lab: a Debian with a C compiler (scripts/setup_podman.sh builds the image).\n"
    "# Short timeouts so that a demo shows reclaim and scale to zero within a minute.\n"
    "apiVersion: outpost.dev/v1\n"
    "kind: LabTemplate\n"
    "metadata: {name: c-lab}\n"
    "spec:\n"
    "  image: localhost/outpost-lab-c:latest\n"
    "  command: [sleep, infinity]\n"
    "  limits: {pids: 128, memory: 256Mi, cpu: '1'}\n"
    "  runAsUser: 1000\n"
    "  idleTimeout: PT30S\n"
    "  pool: {min: 0, max: 2, keepAlive: PT30S}\n"
    "  policy:\n"
    "    forbiddenBinaries: [/usr/bin/perl]\n"
    "    forbiddenPaths: [/etc/shadow]\n"
    "---\n"
    "apiVersion: outpost.dev/v1\n"
    "kind: NamespacePolicy\n"
    "metadata: {name: labs}\n"
    "spec:\n"
    "  onViolation: [alert]\n"
    "  quarantineAfter: 5\n";

typedef struct run_state {
  /* flags */
  const char *data, *config_arg, *kafka, *node, *socket, *host;
  const char *props[MAX_PROPS];
  size_t n_props;
  long port_base, quota;
  bool no_detector;
  /* derived */
  char config[PATH_MAX + 32], tokens[PATH_MAX], logs[PATH_MAX], state[PATH_MAX];
  char admin[2 * TOKEN_BYTES + 1];
  char senders[PATH_MAX + 16]; /* the broker's --senders-file */
  char ingress[256], detector_url[128];
  uint16_t port[6]; /* broker, detector, run, cluster, node, ns */
  run_tail *tail;
  post_sup *podman; /* the podman service this process started, or NULL */
  pthread_t banner;
  bool has_banner;
  _Atomic bool stop;
} run_state;

enum { P_BROKER, P_DETECTOR, P_RUN, P_CLUSTER, P_NODE, P_NS };
static const int port_offset[] = {0, 5, 9, 10, 11, 12};

static void usage(FILE *f) {
  fputs("usage: outpost run [options]\n"
        "\n"
        "The whole platform on one machine: the broker (embedded log), its triggers, the\n"
        "detector (eBPF when the kernel allows), the three tiers of posts and the pool with\n"
        "the demo lab template. Prints where each endpoint is; stops on SIGINT/SIGTERM; a\n"
        "restart finds its state in --data. See docs/CONFIG.md and docs/OPERATIONS.md.\n"
        "\n"
        "  --data DIR            everything it keeps (default outpost-data)\n"
        "  --config FILE         Broker, Trigger, LabTemplate and NamespacePolicy resources\n"
        "                        (default: the embedded demo configuration)\n"
        "  --kafka SERVERS|mock  Kafka instead of the embedded log; 'mock' runs librdkafka's\n"
        "                        mock cluster in the broker (in memory, not durable: demos)\n"
        "  --kafka-property K=V  a librdkafka property for the broker (repeatable)\n"
        "  --host HOST           the address every component listens on (default 127.0.0.1)\n"
        "  --port-base N         broker N, detector N+5, this process N+9, cluster post N+10,\n"
        "                        node post N+11, ns post N+12 (default 8080)\n"
        "  --node NAME           this node's name (default node-1)\n"
        "  --socket PATH         the Docker Engine API socket (default /run/podman/podman.sock;\n"
        "                        when it does not answer and podman is installed, `podman\n"
        "                        system service` is started there)\n"
        "  --quota N             labs per tenant (default 3)\n"
        "  --no-detector         run without the detector\n",
        f);
}

/* ------------------------------------------------------------- set-up */

static int parse_long(const char *s, long min, long max, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || end == s || v < min || v > max) return -EINVAL;
  *out = v;
  return 0;
}

/* 0, 1 (--help) or 2 (bad flags, said why). */
static int parse_flags(int argc, char **argv, run_state *rs) {
  static const struct option opts[] = {
      {"data", required_argument, NULL, 'd'},  {"config", required_argument, NULL, 'c'},
      {"kafka", required_argument, NULL, 'k'}, {"kafka-property", required_argument, NULL, 'K'},
      {"host", required_argument, NULL, 'H'},  {"port-base", required_argument, NULL, 'p'},
      {"node", required_argument, NULL, 'n'},  {"socket", required_argument, NULL, 's'},
      {"quota", required_argument, NULL, 'q'}, {"no-detector", no_argument, NULL, 'D'},
      {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
  rs->data = "outpost-data";
  rs->node = "node-1";
  rs->host = "127.0.0.1";
  rs->socket = "/run/podman/podman.sock";
  rs->port_base = 8080;
  rs->quota = 3;
  int c, li = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, &li)) != -1) {
    int bad = 0;
    switch (c) {
    case 'd':
      rs->data = optarg;
      break;
    case 'c':
      rs->config_arg = optarg;
      break;
    case 'k':
      rs->kafka = optarg;
      break;
    case 'K':
      if (rs->n_props == MAX_PROPS)
        bad = -1;
      else
        rs->props[rs->n_props++] = optarg;
      break;
    case 'H': { /* IPv4: the posts put it in URIs and start theirs on it */
      struct in_addr a;
      rs->host = optarg;
      bad = inet_pton(AF_INET, optarg, &a) == 1 ? 0 : -1;
      break;
    }
    case 'p':
      bad = parse_long(optarg, 1, 65535 - 12, &rs->port_base);
      break;
    case 'n':
      rs->node = optarg;
      break;
    case 's':
      rs->socket = optarg;
      break;
    case 'q':
      bad = parse_long(optarg, 1, 100000, &rs->quota);
      break;
    case 'D':
      rs->no_detector = true;
      break;
    case 'h':
      usage(stdout);
      return 1;
    default:
      usage(stderr);
      return 2;
    }
    if (bad) {
      fprintf(stderr, "outpost run: bad value '%s' for --%s\n", optarg, opts[li].name);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "outpost run: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (!pool_valid_node(rs->node)) {
    fprintf(stderr, "outpost run: --node '%s' is not a DNS subdomain of at most 63 bytes\n",
            rs->node);
    return 2;
  }
  return 0;
}

static void random_hex(char *out, size_t bytes) {
  unsigned char r[64];
  if (bytes > sizeof r) bytes = sizeof r;
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = getrandom(r + got, bytes - got, 0);
    if (n > 0) got += (size_t)n;
  }
  for (size_t i = 0; i < bytes; i++) sprintf(out + 2 * i, "%02x", r[i]);
}

/* Writes path with text (mode 0600) unless it exists. 0 or a negative errno. */
static int write_once(const char *path, const char *text) {
  struct stat st;
  if (stat(path, &st) == 0) return 0;
  int rc = post_write_file(path, text, strlen(text));
  return rc ? rc : chmod(path, 0600) ? -errno : 0;
}

/* The tokens (made once, then kept: a restart must not lock tenants out),
 * the admin token, the configuration and the log folder. */
static int prepare(run_state *rs) {
  int rc;
  snprintf(rs->logs, sizeof rs->logs, "%s/logs", rs->data);
  snprintf(rs->state, sizeof rs->state, "%s/run", rs->data);
  if ((rc = post_mkdirs(rs->logs)) || (rc = post_mkdirs(rs->state))) {
    fprintf(stderr, "outpost run: cannot make %s: %s\n", rs->data, strerror(-rc));
    return rc;
  }
  /* One run per data folder: a second would adopt the first one's children
   * and both would supervise them. Held until exit; children do not inherit
   * it (post_sup.c closes every descriptor above 2). */
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/lock", rs->state);
  int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB)) {
    fprintf(stderr, "outpost run: %s: %s\n", path,
            errno == EWOULDBLOCK ? "another `outpost run` uses this data folder" : strerror(errno));
    if (lock >= 0) close(lock);
    return -EBUSY;
  }
  char text[512], alice[2 * TOKEN_BYTES + 1], bob[2 * TOKEN_BYTES + 1];
  random_hex(rs->admin, TOKEN_BYTES);
  snprintf(path, sizeof path, "%s/admin-token", rs->data);
  if ((rc = write_once(path, rs->admin))) goto fail;
  FILE *f = fopen(path, "re");
  if (!f || !fgets(rs->admin, sizeof rs->admin, f)) {
    if (f) fclose(f);
    rc = -EINVAL;
    goto fail;
  }
  fclose(f);
  rs->admin[strcspn(rs->admin, "\r\n")] = '\0';
  random_hex(alice, TOKEN_BYTES);
  random_hex(bob, TOKEN_BYTES);
  snprintf(text, sizeof text,
           "# tenant token: the bearer tokens of the Labs API and of tenants' events.\n"
           "# Made by `outpost run` on its first start; add lines to add tenants.\n"
           "alice %s\nbob %s\n",
           alice, bob);
  snprintf(rs->tokens, sizeof rs->tokens, "%s/tokens", rs->data);
  if ((rc = write_once(rs->tokens, text))) {
    snprintf(path, sizeof path, "%s", rs->tokens);
    goto fail;
  }
  /* The broker takes events from its senders only: Outpost's own
   * components, with the admin token, and whom the operator adds. */
  snprintf(text, sizeof text,
           "# name token [type-prefix...]: who may POST events to the broker's ingress\n"
           "# (outpost broker --senders-file; no prefix: any type). Made by `outpost run`\n"
           "# on its first start; add lines to add senders.\n"
           "outpost %s\n",
           rs->admin);
  snprintf(rs->senders, sizeof rs->senders, "%s/senders", rs->data);
  if ((rc = write_once(rs->senders, text))) {
    snprintf(path, sizeof path, "%s", rs->senders);
    goto fail;
  }
  if (rs->config_arg) {
    snprintf(rs->config, sizeof rs->config, "%s", rs->config_arg);
  } else {
    snprintf(rs->config, sizeof rs->config, "%s/outpost.yaml", rs->state);
    if ((rc = post_write_file(rs->config, default_config, sizeof default_config - 1))) {
      snprintf(path, sizeof path, "%s", rs->config);
      goto fail;
    }
  }
  for (int i = 0; i < 6; i++) rs->port[i] = (uint16_t)(rs->port_base + port_offset[i]);
  snprintf(rs->ingress, sizeof rs->ingress, "http://%s:%u/%s", rs->host, rs->port[P_BROKER],
           BROKER_PATH);
  snprintf(rs->detector_url, sizeof rs->detector_url, "http://%s:%u", rs->host,
           rs->port[P_DETECTOR]);
  return 0;
fail:
  fprintf(stderr, "outpost run: %s: %s\n", path, strerror(-rc));
  return rc;
}

/* ------------------------------------------------------------- podman */

static bool socket_answers(const char *path) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path) return false;
  memcpy(a.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

static const char *find_podman(void) {
  static const char *const where[] = {"/usr/bin/podman", "/usr/local/bin/podman", "/bin/podman"};
  for (size_t i = 0; i < sizeof where / sizeof *where; i++)
    if (access(where[i], X_OK) == 0) return where[i];
  return NULL;
}

/* The runtime's socket answers, or a podman service started here does. */
static int ensure_runtime(post *p, run_state *rs) {
  if (socket_answers(rs->socket)) return 0;
  const char *podman = find_podman();
  if (!podman) {
    post_log(p,
             "no container runtime answers on %s and podman is not installed: "
             "run scripts/setup.sh, or give --socket",
             rs->socket);
    return -EHOSTUNREACH;
  }
  char dir[PATH_MAX], where[PATH_MAX + 8], log[PATH_MAX + 16];
  snprintf(dir, sizeof dir, "%s", rs->socket);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    post_mkdirs(dir);
  }
  snprintf(where, sizeof where, "unix://%s", rs->socket);
  snprintf(log, sizeof log, "%s/podman.log", rs->logs);
  const char *argv[] = {podman, "system", "service", "--time=0", where, NULL};
  if (!(rs->podman = post_sup_new(p)) || post_sup_add(rs->podman, "podman", "podman", "", argv) ||
      post_sup_set_log(rs->podman, "podman", log) || post_sup_start(rs->podman))
    return -ENOMEM;
  for (int64_t until = post_now_ms() + WAIT_PODMAN; post_now_ms() < until;) {
    if (socket_answers(rs->socket)) {
      post_log(p, "started podman's API service on %s", rs->socket);
      return 0;
    }
    nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
  }
  post_log(p, "podman's API service did not answer on %s within %d s (see %s)", rs->socket,
           WAIT_PODMAN / 1000, log);
  return -ETIMEDOUT;
}

/* ------------------------------------------------------------- children */

typedef struct argv_b {
  const char *v[64];
  size_t n;
  char buf[4096];
  size_t used;
} argv_b;

static void arg(argv_b *a, const char *s) {
  if (a->n < sizeof a->v / sizeof *a->v - 1) a->v[a->n++] = s;
  a->v[a->n] = NULL;
}

/* An argument made with printf into a's own buffer. */
__attribute__((format(printf, 2, 3))) static void argf(argv_b *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t room = sizeof a->buf - a->used;
  int n = vsnprintf(a->buf + a->used, room, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= room) return;
  arg(a, a->buf + a->used);
  a->used += (size_t)n + 1;
}

/* The flags a child's admin token stands for (bits of secrets), given
 * through its environment: a command line is readable by any local user. */
#define RUN_ADMIN    1u  /* --admin-token */
#define RUN_BROKER   2u  /* --broker-token */
#define RUN_INTERNAL 4u  /* --internal-token */
#define RUN_DETECTOR 8u  /* --detector-token */
#define RUN_INGRESS  16u /* --ingress-token (the broker's sender "outpost") */
#define RUN_KAFKA    32u /* our OUTPOST_KAFKA_* variables (the Kafka log's passwords) */

static int add_child(post *p, run_state *rs, const char *tier, const char *name, uint16_t port,
                     argv_b *a, unsigned secrets) {
  static const char *const vars[] = {POST_ENV_ADMIN, POST_ENV_BROKER, POST_ENV_INTERNAL,
                                     POST_ENV_DETECTOR, POST_ENV_INGRESS};
  enum { N_VARS = sizeof vars / sizeof *vars };
  char health[128], log[PATH_MAX + 16], kv[N_VARS][sizeof rs->admin + 32];
  const char *env[16] = {0};
  size_t n = 0;
  snprintf(health, sizeof health, "http://%s:%u/healthz", rs->host, port);
  snprintf(log, sizeof log, "%s/%s.log", rs->logs, tier);
  for (size_t i = 0; i < N_VARS; i++)
    if (secrets & (1u << i)) {
      snprintf(kv[n], sizeof kv[n], "%s=%s", vars[i], rs->admin);
      env[n] = kv[n];
      n++;
    }
  for (size_t i = 0; (secrets & RUN_KAFKA) && environ[i] && n + 1 < sizeof env / sizeof *env; i++)
    if (!strncmp(environ[i], POST_ENV_KAFKA_PREFIX, strlen(POST_ENV_KAFKA_PREFIX)))
      env[n++] = environ[i];
  int rc = post_sup_add(p->sup, tier, name, health, a->v);
  rc = rc ? rc : post_sup_set_env(p->sup, name, env);
  return rc ? rc : post_sup_set_log(p->sup, name, log);
}

static int add_children(post *p, run_state *rs) {
  argv_b b = {0}, d = {0}, c = {0};
  int rc;
  arg(&b, "outpost");
  arg(&b, "broker");
  argf(&b, "--listen=%s:%u", rs->host, rs->port[P_BROKER]);
  argf(&b, "--data=%s/broker/broker.db", rs->data);
  argf(&b, "--triggers-state=%s/broker/triggers.json", rs->data);
  argf(&b, "--config=%s", rs->config);
  argf(&b, "--senders-file=%s", rs->senders);
  if (rs->kafka) argf(&b, "--kafka=%s", rs->kafka);
  for (size_t i = 0; i < rs->n_props; i++) argf(&b, "--kafka-property=%s", rs->props[i]);
  char dir[PATH_MAX + 16];
  snprintf(dir, sizeof dir, "%s/broker", rs->data);
  if ((rc = post_mkdirs(dir)) ||
      (rc = add_child(p, rs, "broker", "broker", rs->port[P_BROKER], &b, RUN_ADMIN | RUN_KAFKA)))
    return rc;

  if (!rs->no_detector) {
    arg(&d, "outpost");
    arg(&d, "detector");
    argf(&d, "--listen=%s:%u", rs->host, rs->port[P_DETECTOR]);
    argf(&d, "--broker-url=%s", rs->ingress);
    argf(&d, "--node=%s", rs->node);
    argf(&d, "--tokens-file=%s", rs->tokens);
    if ((rc = add_child(p, rs, "detector", rs->node, rs->port[P_DETECTOR], &d,
                        RUN_ADMIN | RUN_INGRESS)) ||
        (rc = post_sup_set_fallback(
             p->sup, rs->node, 3, "--no-bpf",
             "the kernel side (eBPF) cannot run on this machine (the reason is in "
             "detector.log): lab environments are not watched and nothing is killed; "
             "tenants' events are still taken")))
      return rc;
  }

  arg(&c, "outpost");
  arg(&c, "post");
  arg(&c, "--tier=cluster");
  argf(&c, "--listen=%s:%u", rs->host, rs->port[P_CLUSTER]);
  argf(&c, "--node-listen=%s:%u", rs->host, rs->port[P_NODE]);
  argf(&c, "--ns-port=%u", rs->port[P_NS]);
  argf(&c, "--node=%s", rs->node);
  arg(&c, "--namespace=" NAMESPACE);
  argf(&c, "--broker-url=%s", rs->ingress);
  argf(&c, "--state-dir=%s/posts", rs->data);
  argf(&c, "--config=%s", rs->config);
  argf(&c, "--tokens-file=%s", rs->tokens);
  argf(&c, "--quota=%ld", rs->quota);
  argf(&c, "--socket=%s", rs->socket);
  if (!rs->no_detector) argf(&c, "--detector-url=%s", rs->detector_url);
  /* The posts among themselves use the admin token too (one machine, one
   * operator; kept in the data folder, so adopted posts still match). */
  return add_child(p, rs, "cluster", "cluster", rs->port[P_CLUSTER], &c,
                   RUN_ADMIN | RUN_BROKER | RUN_INTERNAL | RUN_INGRESS |
                       (rs->no_detector ? 0 : RUN_DETECTOR));
}

/* ------------------------------------------------------------- banner */

static bool stopped(run_state *rs, int ms) {
  for (int i = 0; i < ms / 50 && !atomic_load(&rs->stop); i++)
    nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
  return atomic_load(&rs->stop);
}

/* Applies the trigger that brings every event here; 0 once applied. */
static int register_tail(post *p, run_state *rs) {
  char url[160], body[512], auth[64 + sizeof rs->admin];
  snprintf(url, sizeof url, "http://%s:%u/v1/triggers", rs->host, rs->port[P_BROKER]);
  snprintf(body, sizeof body,
           "{\"apiVersion\":\"eventing.knative.dev/v1\",\"kind\":\"Trigger\","
           "\"metadata\":{\"name\":\"outpost-run-tail\",\"namespace\":\"default\"},"
           "\"spec\":{\"broker\":\"default\",\"subscriber\":{\"uri\":\"http://%s:%u/events\"}}}",
           rs->host, rs->port[P_RUN]);
  snprintf(auth, sizeof auth, "Bearer %s", rs->admin);
  ce_kv h[] = {{"Authorization", 13, auth, strlen(auth)},
               {"Content-Type", 12, "application/json", 16}};
  post_answer a;
  int rc = post_call(p, "PUT", url, h, 2, body, strlen(body), 5000, &a);
  long st = a.status;
  post_answer_cleanup(&a);
  return rc == 0 && st == 200 ? 0 : -EAGAIN;
}

/* The component's /healthz as JSON, or NULL. */
static cJSON *health(post *p, run_state *rs, uint16_t port) {
  char url[128];
  cJSON *j = NULL;
  snprintf(url, sizeof url, "http://%s:%u/healthz", rs->host, port);
  long st = post_call_json(p, "GET", url, NULL, 2000, &j);
  if (st == 200 && cJSON_IsObject(j)) return j;
  cJSON_Delete(j);
  return NULL;
}

static void print_banner(run_state *rs, const cJSON *broker, const cJSON *det) {
  const char *kafka = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(broker, "kafka"));
  const char *h = rs->host;
  char log_line[512] = "", det_line[PATH_MAX + 64];
  if (kafka)
    snprintf(log_line, sizeof log_line,
             "  kafka%s        %s, topic knative-broker-default-default\n"
             "                     kcat -C -b %s -t knative-broker-default-default\n",
             rs->kafka && !strcmp(rs->kafka, "mock") ? " (mock)" : "       ", kafka, kafka);
  else
    snprintf(log_line, sizeof log_line, "  log                %s/broker/broker.db (embedded)\n",
             rs->data);
  if (rs->no_detector)
    snprintf(det_line, sizeof det_line, "off (--no-detector)");
  else if (!det)
    snprintf(det_line, sizeof det_line, "not answering yet (see %s/detector.log)", rs->logs);
  else
    snprintf(det_line, sizeof det_line, "http://%s:%u, eBPF %s", h, rs->port[P_DETECTOR],
             cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(det, "bpf"))
                 ? "on: lab environments are watched"
                 : "off: environments are not watched (see detector.log)");
  printf("\noutpost run: up\n"
         "  Labs REST API      http://%s:%u/v1/labs\n"
         "  tenants' tokens    %s (admin token: %s/admin-token)\n"
         "  broker ingress     %s (its senders' tokens: %s)\n"
         "  triggers           http://%s:%u/v1/triggers\n"
         "%s"
         "  detector           %s\n"
         "  tenant events      http://%s:%u/v1/tenants/<tenant>/events\n"
         "  event tail         http://%s:%u/v1/events   (outpost events --data %s)\n"
         "  logs               %s/\n"
         "  stop               Ctrl-C (environments keep their state in the runtime)\n\n",
         h, rs->port[P_CLUSTER], rs->tokens, rs->data, rs->ingress, rs->senders, h,
         rs->port[P_BROKER], log_line, det_line, h, rs->port[P_DETECTOR], h, rs->port[P_RUN],
         rs->data, rs->logs);
  fflush(stdout);
}

/* Waits for the broker, registers the tail, then says where everything is. */
static void *banner_run(void *arg) {
  post *p = arg;
  run_state *rs = p->tier_state;
  cJSON *broker = NULL, *det = NULL;
  for (int64_t until = post_now_ms() + WAIT_BROKER;
       !(broker = health(p, rs, rs->port[P_BROKER]));) {
    if (post_now_ms() > until) {
      post_log(p, "the broker does not answer on port %u (see %s/broker.log); still waiting",
               rs->port[P_BROKER], rs->logs);
      until = INT64_MAX;
    }
    if (stopped(rs, 200)) return NULL;
  }
  while (register_tail(p, rs))
    if (stopped(rs, 500)) goto out;
  /* The cluster post answers once its node post does, and the node post
   * starts the ns post: "up" waits for all three (a restart that adopts none
   * of them starts them again). The detector answers within a second or two
   * (or restarted with --no-bpf). */
  for (int i = 0; i < 100; i++) {
    char url[128];
    snprintf(url, sizeof url, "http://%s:%u/readyz", rs->host, rs->port[P_CLUSTER]);
    cJSON *j = NULL;
    long st = post_call_json(p, "GET", url, NULL, 2000, &j);
    cJSON_Delete(j);
    bool ns = false;
    if (st == 200 && (j = health(p, rs, rs->port[P_NS]))) {
      ns = true;
      cJSON_Delete(j);
    }
    if (!rs->no_detector) {
      cJSON_Delete(det);
      det = health(p, rs, rs->port[P_DETECTOR]);
    }
    if (st == 200 && ns && (rs->no_detector || det)) break;
    if (i == 99)
      post_log(p, "the %s does not answer yet (see %s/)",
               st != 200 ? "cluster post"
               : !ns     ? "ns post"
                         : "detector",
               rs->logs);
    if (stopped(rs, 200)) goto out;
  }
  print_banner(rs, broker, det);
out:
  cJSON_Delete(broker);
  cJSON_Delete(det);
  return NULL;
}

/* ------------------------------------------------------------- the tier */

static int run_start(post *p) {
  run_state *rs = p->tier_state;
  if (!(rs->tail = run_tail_new(TAIL_EVENTS))) return -ENOMEM;
  return ensure_runtime(p, rs);
}

static void run_started(post *p) {
  run_state *rs = p->tier_state;
  int rc;
  if (!(p->sup = post_sup_new(p)) || (rc = add_children(p, rs)) || (rc = post_sup_start(p->sup))) {
    post_log(p, "cannot start the components; stopping");
    kill(getpid(), SIGTERM);
    return;
  }
  rs->has_banner = pthread_create(&rs->banner, NULL, banner_run, p) == 0;
}

static void run_stop(post *p) {
  run_state *rs = p->tier_state;
  atomic_store(&rs->stop, true);
  if (rs->has_banner) pthread_join(rs->banner, NULL);
  post_sup_free(rs->podman, true);
  run_tail_free(rs->tail);
}

static bool is_admin(run_state *rs, httpd_req *req) {
  return httpd_same_secret(httpd_bearer(req), rs->admin);
}

static bool run_route(post *p, httpd_req *req, const char *m, const char *path) {
  run_state *rs = p->tier_state;
  if (strcmp(path, "/v1/events")) return false;
  if (strcmp(m, "GET")) {
    post_reply_error(req, 405, "GET only", NULL);
  } else if (!is_admin(rs, req)) {
    static const char *const hdr[] = {"WWW-Authenticate", "Bearer"};
    static const char body[] = "{\"error\":\"the admin token is required\"}";
    httpd_respond(req, 401, "application/json", body, sizeof body - 1, hdr, 1);
  } else {
    run_tail_serve(rs->tail, req);
  }
  return true;
}

static void run_on_event(post *p, ce_event *ev) {
  run_state *rs = p->tier_state;
  run_tail_push(rs->tail, ev);
}

const post_tier post_tier_run = {
    .name = "run",
    .start = run_start,
    .started = run_started,
    .stop = run_stop,
    .route = run_route,
    .on_event = run_on_event,
};

int post_run_main(int argc, char **argv) {
  static run_state rs;
  int rc = parse_flags(argc, argv, &rs);
  if (rc) return rc == 1 ? 0 : 2;
  if (prepare(&rs)) return 1;
  post p;
  memset(&p, 0, sizeof p);
  p.tier = &post_tier_run;
  p.tier_state = &rs;
  p.name = "run";
  p.cfg.tier = "run";
  snprintf(p.cfg.host, sizeof p.cfg.host, "%s", rs.host);
  p.cfg.port = rs.port[P_RUN];
  p.cfg.broker_url = rs.ingress;
  p.cfg.state_dir = rs.state;
  p.cfg.admin_token = rs.admin;
  printf("outpost run: starting in %s (logs in %s)\n", rs.data, rs.logs);
  fflush(stdout);
  rc = post__serve(&p);
  printf("outpost run: stopped; the state is kept in %s\n", rs.data);
  return rc;
}
