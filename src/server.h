/* server.h — the event loop, listeners, the site snapshot, signals and reload. */
#ifndef KTLSD_SERVER_H
#define KTLSD_SERVER_H

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



struct server {
	struct event_base *base;
	struct site *site;		/* current: new connections use it */
	struct evconnlistener *listeners[CONFIG_MAX_LISTEN];
	size_t listener_cfg[CONFIG_MAX_LISTEN];	/* its index in cfg->listen, or SIZE_MAX */
	size_t nlisteners;
	struct event *ev_signals[5];
	struct event *ev_stop_timer, *ev_accept_retry;
	struct evhttp *admin;		/* stats endpoint (admin.c's), NULL if not configured */
	struct fcache *fcache;		/* open files, shared by all sites (entries tagged) */
	struct event *ev_fcache_sweep;
	TAILQ_HEAD(conn_list, conn) conns;
	unsigned nconns;
	/* conn_free() calls this after taking a connection off conns (server.c's: accept
	 * again below the limit, end the loop when stopping and none is left) */
	void (*conn_closed)(struct server *srv);
	uint64_t next_conn_id;
	bool stopping;
	int exit_code;
	const char *config_file;	/* for reload; NULL with --demo */
	const struct config_overrides *overrides;
	struct auto_learning learn;	/* send mode auto: see autosend.h */
	uint32_t notsent_lowat_sysctl;	/* net.ipv4.tcp_notsent_lowat (UINT32_MAX: none) */
};

/* Create the loop, bind every listener of site->cfg (TCP_MAXSEG set before listen so
 * accepted sockets inherit it). Returns NULL with err on failure. Takes the site. */
struct server *server_new(struct site *site, char *err, size_t errlen);

/* Run until stopped; returns the exit code (0 after a graceful stop). */
int server_run(struct server *srv);

void server_free(struct server *srv);


#endif
