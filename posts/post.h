/*
 * post.h — `outpost post --tier cluster|node|ns`: the three tiers of guard
 * posts (seeds/000), each its own process. The cluster post is the Labs REST
 * front door (tokens, quotas, placement); the node post owns its node's warm
 * pool; the ns post applies its namespace's policy to detector events. A
 * parent post supervises its children (cluster → node → ns): a child that
 * dies is restarted within a second, and a restarted parent adopts the
 * children still running instead of starting them twice. posts/README.md
 * has the API reference, the supervision rules and the events.
 */
#ifndef OUTPOST_POSTS_POST_H
#define OUTPOST_POSTS_POST_H

/* Events the posts publish besides the pool's (posts/pool.h). */
#define POST_EV_ALERT              "dev.outpost.alert"
#define POST_EV_QUARANTINE_STARTED "dev.outpost.quarantine.started"
#define POST_EV_QUARANTINE_LIFTED  "dev.outpost.quarantine.lifted"
#define POST_EV_CHILD_RESTARTED    "dev.outpost.post.restarted"

/* The subcommand: argv[0] is "post". Returns the exit status (0 after
 * SIGINT/SIGTERM, 1 on a failure to start, 2 on bad flags). */
int post_main(int argc, char **argv);

/* `outpost run`: the whole platform on one machine (posts/run.c): argv[0]
 * is "run". Same exit statuses as post_main. */
int post_run_main(int argc, char **argv);

/* `outpost events`: follows the events `outpost run` keeps (run_tail.c).
 * 0, 1 (the server failed) or 2 (bad flags). */
int post_events_main(int argc, char **argv);

#endif
