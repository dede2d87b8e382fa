/*
 * kafka_mock.c — a test tool: librdkafka's mock cluster (the Kafka protocol
 * over TCP on 127.0.0.1, in memory) with its fault injection driven by
 * commands on stdin, so that tests in any language can break the cluster
 * under a running broker.
 *
 * Usage: kafka_mock [BROKERS]   (default 3)
 * Prints "bootstrap HOST:PORT,..." and then answers each command line with
 * "ok" or "error: ...":
 *   topic NAME PARTITIONS REPLICATION   create a topic
 *   errors APIKEY ERRCODE COUNT         the next COUNT requests of APIKEY fail with ERRCODE
 *   down ID | up ID                     take broker ID (1..BROKERS) down or up
 *   rtt ID MS                           add MS of round-trip time to broker ID
 *   leader TOPIC PARTITION ID           move a partition's leadership
 *   quit                                (or end of input) stop
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int command(rd_kafka_mock_cluster_t *mc, char *line) {
  char verb[32], name[256];
  int a, b, c;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (sscanf(line, "%31s", verb) != 1) return -1;
  if (strcmp(verb, "topic") == 0 && sscanf(line, "%*s %255s %d %d", name, &a, &b) == 3) {
    err = rd_kafka_mock_topic_create(mc, name, a, b);
  } else if (strcmp(verb, "errors") == 0 && sscanf(line, "%*s %d %d %d", &a, &b, &c) == 3 &&
             c > 0 && c <= 1000) {
    rd_kafka_resp_err_t errs[1000];
    for (int i = 0; i < c; i++) errs[i] = (rd_kafka_resp_err_t)b;
    rd_kafka_mock_push_request_errors_array(mc, (int16_t)a, (size_t)c, errs);
  } else if (strcmp(verb, "down") == 0 && sscanf(line, "%*s %d", &a) == 1) {
    err = rd_kafka_mock_broker_set_down(mc, a);
  } else if (strcmp(verb, "up") == 0 && sscanf(line, "%*s %d", &a) == 1) {
    err = rd_kafka_mock_broker_set_up(mc, a);
  } else if (strcmp(verb, "rtt") == 0 && sscanf(line, "%*s %d %d", &a, &b) == 2) {
    err = rd_kafka_mock_broker_set_rtt(mc, a, b);
  } else if (strcmp(verb, "leader") == 0 && sscanf(line, "%*s %255s %d %d", name, &a, &b) == 3) {
    err = rd_kafka_mock_partition_set_leader(mc, name, a, b);
  } else {
    printf("error: unknown or malformed command\n");
    return 0;
  }
  if (err)
    printf("error: %s\n", rd_kafka_err2str(err));
  else
    printf("ok\n");
  return 0;
}

int main(int argc, char **argv) {
  int brokers = argc > 1 ? atoi(argv[1]) : 3;
  if (brokers < 1 || brokers > 16) {
    fprintf(stderr, "usage: kafka_mock [BROKERS (1..16)]\n");
    return 2;
  }
  char why[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
  if (!rk) {
    fprintf(stderr, "kafka_mock: %s\n", why);
    return 1;
  }
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (!mc) {
    fprintf(stderr, "kafka_mock: cannot start the cluster\n");
    return 1;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mc));
  char line[512];
  while (fgets(line, sizeof line, stdin) && strncmp(line, "quit", 4) != 0) command(mc, line);
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
