/* stats.h — what ktlsd knows about its connections: a record per connection (live and
 * recently closed), server-wide counters, and their JSON and Prometheus forms. */
#ifndef KTLSD_STATS_H
#define KTLSD_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "common.h"
#include "config.h"
#include "counters.h"
#include "fcache.h"
#include "stall.h"

/* The per-connection record: everything /stats and the access log show. Plain data, so
 * a closed connection's record is copied into the recent ring as it is. */
struct counter_block;

struct conn_record {
	uint64_t id;			/* unique in the process, across workers */
	unsigned worker;		/* the worker (event loop) serving it, 0..workers-1 */
	char peer[64];			/* the client: from the PROXY header on a proxy listener */
	char via[64];			/* the balancer that sent that header, "" if none */
	char listener[64];
	const char *mode;		/* configured send mode */
	const char *sender;		/* effective sender now */
	const char *switched_from;	/* sender before an automatic switch, NULL if none */
	size_t chunk;			/* bytes per send call now (auto may lower it) */
	bool ktls_tx;
	const char *offload;		/* "sw", "hw", ... or "-" */
	char tls_reason[128];		/* why userspace, "" with kTLS */
	const char *cipher;		/* OpenSSL's static name, "-" before the handshake */
	uint32_t snd_mss;		/* tcpi_snd_mss after the handshake */
	const char *state;
	uint64_t start_us, end_us;	/* monotonic; end 0 while live */
	uint64_t requests;
	uint64_t bytes_head, bytes_body;	/* handed to the kernel / OpenSSL */
	uint64_t send_calls, eagain;
	uint64_t longest_call_us, longest_wait_us;
	unsigned stalls;
	uint64_t stall_ms_total, stall_ms_max;
	enum stall_cause last_cause;
	struct tcp_snapshot stall_snap;	/* at the last stall's detection */
	unsigned mitigations;
	uint64_t corked_waits;		/* EAGAINs with the corked-record signature */
	uint32_t notsent_lowat;		/* the socket's TCP_NOTSENT_LOWAT now (UINT32_MAX: none) */
	bool stalled_now;		/* live: in a stall at the time of the view */
	uint64_t stalled_now_ms;	/* live: how long that stall has lasted */
	char arm[32];			/* experiment arm, "" if none (CONFIG_ARM_NAME_MAX) */
};

/* A new block of counters for one worker thread, registered (its counts are in every sum
 * from now on, until exit). Main thread. NULL: no memory, or more than
 * CONFIG_MAX_WORKERS blocks. */
struct counter_block *stats_block_new(void);

/* The calling thread counts into b from now on (a worker, first thing on its thread), so
 * that stats_count() touches no other thread's memory. A thread that never calls this
 * counts into the main thread's block: only the main thread may. */
void stats_thread_use(struct counter_block *b);

/* Count n more of a server-wide counter (counters.h), in the calling thread's block. */
void stats_count(enum counter id, uint64_t n);

/* A counter's value now: the sum over every thread's block (each read atomically). */
uint64_t stats_counter(enum counter id);

/* Free the workers' counter blocks (exit, after every worker thread is joined). */
void stats_free_blocks(void);

/* What a view shows besides the counters, gathered by the caller (admin.c) from the
 * server and its connections, so this module needs neither. */
struct stats_view {
	const struct config *cfg;		/* the current snapshot */
	unsigned nconns;			/* open connections */
	unsigned nstalled;			/* of them, in a stall now (workers that answered) */
	const struct conn_record *const *live;	/* their records, fresh (conn_record()); none
						 * unless asked for */
	size_t nlive;
	unsigned workers;			/* event loops running */
	unsigned workers_answered;		/* of them, how many sent their records in time */
	bool auto_learned_cap;			/* send mode auto starts with its lever */
	struct fcache_stats file_cache;
};

/* How many closed connections /stats/recent keeps (config stats.recent). */
void stats_configure(unsigned recent);

/* Does the ring of recent connections keep anything (stats.recent > 0)? */
bool stats_keeps_recent(void);

/* Keep rec of a closing connection in the ring of recent ones (bounded). Any thread. */
void stats_remember(const struct conn_record *rec);

/* Forget the ring (exit). */
void stats_free(void);

/* Append JSON to out: GET /stats (totals and live connections) and /stats/recent. */
void stats_json(const struct stats_view *v, struct evbuffer *out);
void stats_json_recent(struct evbuffer *out);

/* Append a human-readable view of the same (GET /stats/text, `ktlsd stats`). */
void stats_text(const struct stats_view *v, struct evbuffer *out);

/* Append the Prometheus text exposition format (version 0.0.4) to out. */
void stats_prometheus(const struct stats_view *v, struct evbuffer *out);

#endif
