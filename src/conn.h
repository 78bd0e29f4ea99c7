/* conn.h — one client connection and its state machine.
 *
 *   accept ─► (PROXY_HEADER) ─► HANDSHAKE ─► READ_REQUEST ─► SEND_HEADERS ─► SEND_BODY ─┐
 *                              ▲   ▲                                  │ keep-alive
 *                              │   └──── (pipelined bytes buffered) ◄─┤
 *                              └──────── KEEPALIVE ◄──────────────────┤
 *                                                                     ▼ close
 *                                        LINGER (discard input, ≤ 2 s) ─► freed
 *
 * PROXY_HEADER only on a listener with proxy_protocol (and a source in its proxy_trusted):
 * the balancer's PROXY header is read, exactly, before OpenSSL sees the socket.
 * The states are in lifecycle order. Every change goes through conn_set_state(), which
 * also arms the state's timeout, so no state can be waited in forever. The libevent
 * callbacks only call the driver. */
#ifndef KTLSD_CONN_H
#define KTLSD_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/time.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <openssl/ssl.h>

#include "common.h"
#include "log.h"
#include "config.h"
#include "experiment.h"
#include "http.h"
#include "ktls.h"
#include "tlsrec.h"
#include "response.h"
#include "stall.h"
#include "stats.h"

enum conn_state {
	CONN_PROXY_HEADER,	/* reading the PROXY header (timeout: handshake) */
	CONN_HANDSHAKE,		/* TLS handshake in progress (timeout: handshake) */
	CONN_READ_REQUEST,	/* reading a request head (timeout: header, from its first byte) */
	CONN_SEND_HEADERS,	/* response head (maybe with the first body bytes) going out */
	CONN_SEND_BODY,		/* file body going out through the sender (timeout: send_idle) */
	CONN_KEEPALIVE,		/* idle between requests (timeout: keepalive) */
	CONN_LINGER,		/* response done, write side closed, draining input before close */
	CONN_STATE_MAX
};

const char *conn_state_name(enum conn_state s);

struct body_sender;

struct conn {
	uint64_t id;
	struct server *srv;
	struct site *site;		/* snapshot this connection started with (ref held) */
	const struct config *cfg;	/* == site->cfg */
	int fd;
	SSL *ssl;			/* the handshake only: freed once tls has the keys */
	struct tlsrec tls;		/* the records after the handshake (tlsrec.h) */
	enum conn_state state;
	/* One persistent, edge-triggered event for both directions, registered once: no
	 * epoll_ctl() while the connection lives. `waiting` says which edge drives the
	 * state machine; the other direction's edges are ignored (see wait_for()). */
	struct event *ev_io, *ev_timer;
	short waiting;			/* EV_READ or EV_WRITE */
	struct evbuffer *in;		/* decrypted request bytes, bounded by header_bytes */
	/* The client, "addr:port" / "[addr]:port", and its bare address: the socket's peer,
	 * or on a proxy listener the source the PROXY header names. Every log line and
	 * record shows these; via keeps the socket's peer (the balancer), "" if none. */
	char peer[64];
	char peer_addr[48];
	char via[64];
	/* CONN_PROXY_HEADER: the header bytes consumed so far (allocated to their size, only
	 * while a header arrives in pieces) */
	unsigned char *proxy_buf;
	size_t proxy_have;
	bool proxy_local;		/* came with a LOCAL header: a balancer's own check */
	struct timeval t_accept;
	struct ktls_state ktls;
	const struct send_settings *send;	/* this listener's settings (in cfg) */
	bool autoindex;			/* this listener lists directories without index */
	enum send_mode mode;		/* configured mode */
	size_t chunk;			/* bytes per send call (cfg, or less after a mitigation) */
	const struct body_sender *sender;	/* effective sender for this connection */
	TAILQ_ENTRY(conn) link;

	/* the response in flight (response.h: released only by response_reset()) */
	struct response resp;
	int pipe[2];			/* splice sender, created on first use */
	size_t pipe_len;		/* bytes sitting in the pipe (of the current response) */
	bool keep_alive;
	size_t head_len;		/* request head bytes to drain from in when done */
	struct timeval t_request;
	char reqline[LOG_FIELD_MAX];	/* for the access log (escaped) */
	char user_agent[128], referer[128];

	struct conn_record rec;		/* what /stats shows, kept after close */
	unsigned stalls_at_request;	/* rec.stalls when the current request began */
	uint64_t stall_ms_at_request;
	struct stall_state stall;
	struct experiment_conn exp;	/* its arm, if an experiment applies (experiment.h) */
};

/* Take ownership of an accepted, non-blocking socket fd that came in on listener number
 * listener (its send settings apply). Returns NULL (fd closed, reason logged) on failure. */
struct conn *conn_new(struct server *srv, int fd, const struct sockaddr *sa, int salen,
		      size_t listener);

/* Change state: logs at debug, asserts the range, arms the state's timeout. */
void conn_set_state(struct conn *c, enum conn_state s);

/* Stop now: close the socket, free everything. c is invalid afterwards. */
void conn_free(struct conn *c);

/* Run the send path again on the next loop iteration, as if the socket had become
 * writable (fairness between connections, or a mitigation that must try at once). */
void conn_kick_write(struct conn *c);

/* c's record for /stats, with what is only looked up when someone asks (the kTLS
 * offload, one sock_diag round trip, then cached) filled in. */
const struct conn_record *conn_record(struct conn *c);

/* Graceful shutdown: idle connections close now, busy ones after their response. */
void conn_shutdown(struct conn *c);

#endif
