/*
 * outpost.c — the one binary. Each subcommand is a component's entry point;
 * this file only dispatches.
 */
#include "broker/broker.h"
#include "core/ce.h"
#include "detector/detector.h"
#include "posts/post.h"
#include "trigger/dispatcher.h"
#include "version.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
  fputs("usage: outpost <command> [options]\n"
        "\n"
        "Outpost: an event-driven platform for hands-on lab environments.\n"
        "\n"
        "commands:\n"
        "  run            the whole platform on one machine, with the demo lab (start here)\n"
        "  events         follow the events of `outpost run`\n"
        "  broker         run the CloudEvents ingress, its log and the trigger dispatcher\n"
        "  detector       publish lab environments' process events (eBPF) and tenants' events\n"
        "  post           run a guard post: --tier cluster (Labs REST API) | node (pool) | ns\n"
        "  trigger        apply, get or delete triggers on a running broker\n"
        "  version        print the version\n"
        "  help           print this help\n"
        "\n"
        "'outpost <command> --help' describes a command.\n",
        f);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  /* Lines reach a log file as they are written: `outpost run` sends each
   * component's output to one. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
    printf("outpost %s (CloudEvents 1.0.2)\n", OUTPOST_VERSION);
    return 0;
  }
  if (!strcmp(cmd, "broker")) return broker_main(argc - 1, argv + 1);
  if (!strcmp(cmd, "trigger")) return trigger_main(argc - 1, argv + 1);
  if (!strcmp(cmd, "detector")) return detector_main(argc - 1, argv + 1);
  if (!strcmp(cmd, "post")) return post_main(argc - 1, argv + 1);
  if (!strcmp(cmd, "run")) return post_run_main(argc - 1, argv + 1);
  if (!strcmp(cmd, "events")) return post_events_main(argc - 1, argv + 1);
  fprintf(stderr, "outpost: unknown command '%s' (see 'outpost --help')\n", cmd);
  return 2;
}
