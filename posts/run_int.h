/*
 * run_int.h — `outpost run` (run.c) and its tail of events (run_tail.c),
 * private to posts/. The run process is a post of its own tier, "run": the
 * root of the tree of processes on one machine, so that its supervision,
 * adoption after a crash, event endpoint and publisher are the posts'.
 */
#ifndef OUTPOST_POSTS_RUN_INT_H
#define OUTPOST_POSTS_RUN_INT_H

#include "posts/post_int.h"

/* The last events the broker delivered to the run process, in memory. Any
 * thread. */
typedef struct run_tail run_tail;

run_tail *run_tail_new(size_t cap);
void run_tail_free(run_tail *t);
/* Keeps ev (taken and freed) as the newest; the oldest falls out. */
void run_tail_push(run_tail *t, ce_event *ev);
/* GET /v1/events?after=SEQ&wait=MS&limit=N&type=PREFIX&last=N: 200
 * {"events": [{"seq", "event"}], "next", "oldest"}; a long poll when wait is
 * given and nothing newer than after is there; 400 naming a bad parameter.
 * The caller checked the token. */
void run_tail_serve(run_tail *t, httpd_req *req);

extern const post_tier post_tier_run;

#endif
