/* daemon.h — the process: its workers (one thread and one event loop each, server.h),
 * and, on the main thread's own loop, what is the process's: the signals, reload, the
 * graceful stop, and the stats endpoint (admin.c), which shows the sum over workers.
 *
 * The main thread never touches a worker's connections: it tells a worker what to do by
 * making one of the worker's events active (libevent, with its pthreads locking), and
 * what passes between them (a reload's site, a stats snapshot) goes under `ws.lock`. */
#ifndef KTLSD_DAEMON_H
#define KTLSD_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "common.h"
#include "config.h"
#include "server.h"
#include "stats.h"



struct daemon {
	struct event_base *base;	/* the main thread's loop */
	struct workers ws;		/* the worker threads and what they share (server.h) */
	struct site *site;		/* current (main thread): the view's configuration */
	struct event *ev_signals[5];
	struct evhttp *admin;		/* stats endpoint (admin.c's), NULL if not configured */
	bool stopping;
	int exit_code;
	const char *config_file;	/* for reload; NULL with --demo */
	const struct config_overrides *overrides;
};

/* How many workers "auto" means: the CPUs this process may run on (sched_getaffinity),
 * at least 1, at most CONFIG_MAX_WORKERS. */
unsigned daemon_workers_auto(void);

/* Set up the process on site (a reference is taken): the main loop and its signal
 * events, and every worker with its listening sockets (bound here, before privileges
 * are dropped; or the sockets systemd passed). No thread runs yet (the process may
 * still detach). Call evthread_use_pthreads() first. NULL with err on failure. */
struct daemon *daemon_new(struct site *site, const char *config_file,
			  const struct config_overrides *ov, char *err, size_t errlen);

/* Start the worker threads and wait (at most 10 s) until every worker's loop runs.
 * -1 with err if a thread cannot be started or does not come up. */
int daemon_start(struct daemon *d, char *err, size_t errlen);

/* Run the main loop until every worker has stopped (SIGTERM/SIGINT/SIGQUIT), then join
 * them. Returns the exit code (0 after a graceful stop). */
int daemon_run(struct daemon *d);

/* Stop whatever runs (workers are asked to stop and joined), free everything. NULL-safe. */
void daemon_free(struct daemon *d);

/* What the stats endpoint shows, gathered from every worker on its own thread: each is
 * asked for its counts (and with records, a copy of its live records) and waited for at
 * most timeout_ms; a worker that does not answer in time (busy in a long call) is left
 * out, and the view says how many answered. Counters and the configuration come from the
 * main thread. *mem holds the copies: give it to daemon_view_free(). -1: out of memory.
 * Main thread. */
int daemon_view(struct daemon *d, struct stats_view *v, void **mem, bool records,
		unsigned timeout_ms);
void daemon_view_free(void *mem);

#endif
