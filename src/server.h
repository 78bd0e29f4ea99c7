/* server.h — one worker: its event loop, its listeners, its connections, its site
 * snapshot. The process runs one per worker thread (daemon.h owns them, the signals,
 * reload and the stats endpoint); a worker's struct server is touched only by its own
 * thread, except the fields marked otherwise, which the main thread reaches through
 * events made active across threads or under the daemon's lock. */
#ifndef KTLSD_SERVER_H
#define KTLSD_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "common.h"
#include "autosend.h"
#include "config.h"
#include "site.h"
#include "proxy.h"
#include "stall.h"
#include "stats.h"
#include "fcache.h"
#include "activation.h"

/* What the workers share: the daemon (daemon.c) owns it and the worker threads, each
 * worker reaches the others through it. Kept here, not in struct daemon, so that a worker
 * needs nothing of the daemon's: the dependency goes one way, daemon -> server. */
struct workers {
	struct server *w[CONFIG_MAX_WORKERS];
	unsigned n;
	struct event *ev_worker_done;	/* on the main loop: a worker whose loop ended */
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* a worker came up, or answered a snapshot */
	unsigned up, done;		/* workers whose loop runs / has ended (lock) */
	uint64_t snap_seq;		/* last snapshot asked for (lock) */
	_Atomic uint64_t conn_ids;	/* connection numbers, unique across workers */
	_Atomic unsigned paused_workers;	/* workers paused at max_connections */
};

/* Open connections over all workers (each worker's count read atomically). Any thread. */
unsigned workers_connections(const struct workers *ws);

/* Have workers look at max_connections again (ev_limit): the paused ones (paused true:
 * a close below the limit; each accepts again if the sum is still below when it looks),
 * or the accepting ones (false: one reached the limit; each pauses if the sum is still
 * at it). Any thread. */
void workers_check_limit(struct workers *ws, bool paused);

/* What a worker hands the stats endpoint: copies of its live records (plain data; their
 * const char * fields point to static strings), made on its own thread. */
struct worker_snapshot {
	uint64_t asked, answered;	/* sequence numbers (daemon's lock) */
	bool records;			/* asked for: copy the live records too */
	struct conn_record *recs;	/* malloc'd by the worker, taken by the reader */
	size_t nrecs;
	unsigned nconns;
	unsigned stalled;		/* live connections in a stall now */
	bool auto_learned_cap;
	struct fcache_stats file_cache;
};

struct server {
	struct event_base *base;
	struct workers *ws;		/* the process: the other workers, the shared limits */
	unsigned worker;		/* this worker's number, 0..workers-1 */
	struct site *site;		/* current: new connections use it */
	struct evconnlistener *listeners[CONFIG_MAX_LISTEN];
	size_t listener_cfg[CONFIG_MAX_LISTEN];	/* its index in cfg->listen, or SIZE_MAX */
	size_t nlisteners;
	struct event *ev_stop_timer, *ev_accept_retry;
	/* made active by another thread: stop, take the new site, copy the records for the
	 * stats endpoint (the main thread's); look at max_connections again (a worker that
	 * reached it, or closed a connection below it) */
	struct event *ev_stop, *ev_reload, *ev_snapshot, *ev_limit;
	struct fcache *fcache;		/* open files, shared by all sites (entries tagged) */
	struct event *ev_fcache_sweep;
	TAILQ_HEAD(conn_list, conn) conns;
	_Atomic unsigned nconns;	/* written by this worker; the others sum them */
	_Atomic bool paused;		/* accepting paused at max_connections */
	/* conn_free() calls this after taking a connection off conns (server.c's: accept
	 * again below the limit, end the loop when stopping and none is left) */
	void (*conn_closed)(struct server *srv);
	_Atomic uint64_t *conn_ids;	/* the process's connection numbers (the daemon's) */
	bool stopping;
	struct auto_learning learn;	/* send mode auto: see autosend.h (per worker) */
	uint32_t notsent_lowat_sysctl;	/* net.ipv4.tcp_notsent_lowat (UINT32_MAX: none) */
	/* under the daemon's lock */
	struct site *pending_site;	/* a reload's site, not taken yet */
	struct worker_snapshot snap;
	struct counter_block *counters;	/* this worker's (stats.h) */
	pthread_t thread;
	bool thread_started;
};

/* Create worker number `worker` of ws (which it joins later: ws->w[worker]): its loop, and one listening socket per
 * listen entry of site->cfg (TCP_MAXSEG set before listen so accepted sockets inherit
 * it), with SO_REUSEPORT when there is more than one worker. first is worker 0 (NULL
 * for worker 0 itself): a port the kernel chose for it (":0") is bound again for the
 * others. With inherited sockets (socket activation, ninh > 0) nothing is bound: the
 * worker listens on its own dup() of each. Returns NULL with err on failure. Takes a
 * reference on site (the caller keeps its own). Runs on the main thread. */
struct server *server_new(struct workers *ws, unsigned worker, struct site *site,
			  const struct server *first, const struct inherited_listener *inh,
			  int ninh, char *err, size_t errlen);

/* Start the worker's thread: it runs the loop until stopped. -1 with errno. */
int server_start(struct server *srv);

/* Wait for the worker's thread to end (after the daemon asked it to stop). */
void server_join(struct server *srv);

/* Free a worker whose thread has ended (or never started): closes what is left. */
void server_free(struct server *srv);

/* The listening socket of listener i of srv (for the --demo hint). */
int server_listener_fd(const struct server *srv, size_t i);


#endif
