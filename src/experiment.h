/* experiment.h — experiment mode: new connections are spread over the configured arms
 * (each a set of send settings), every arm's responses are counted apart, and a verdict
 * says which arm is better once the data can tell (verdict.h).
 *
 * Assignment: a smooth weighted rotation (the one nginx uses for upstream weights) per
 * experiment: deterministic, and every prefix of the sequence is as close to the weights
 * as whole connections allow (3 arms of weight 1: a b c a b c ...), so even a small
 * sample is balanced. A connection keeps its arm for its life; its settings are a copy
 * in the connection, so a reload never changes them under it.
 *
 * Counting: per arm *name*, in a table that lives as long as the process (at most
 * EXPERIMENT_MAX_TRACKED names): counters stay monotonic across reloads, also for an
 * arm that a reload removed (Prometheus counters must not go back). Stalls are taken
 * from the connection's record (stall.c counts them) when a response ends and when the
 * connection closes; a response's stalls count under the cause of the connection's last
 * stall.
 *
 * The verdict looks at each arm's window: its last EXPERIMENT_WINDOW large responses,
 * with a body of at least EXPERIMENT_LARGE_BODY bytes (goodput of small bodies is mostly
 * latency), completed or cut short (a crawl the client gave up on must count against
 * its arm). Goodput = body bytes handed to the kernel (or OpenSSL) / seconds from the
 * request to the last of them. */
#ifndef KTLSD_EXPERIMENT_H
#define KTLSD_EXPERIMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "common.h"
#include "config.h"

#define EXPERIMENT_MAX_TRACKED 32		/* arm names counted per process */
#define EXPERIMENT_WINDOW 1024			/* large responses per arm the verdict sees */
#define EXPERIMENT_LARGE_BODY (1024 * 1024)	/* bytes: a "large" response's body */

struct arm_tally;

/* A connection's part in the experiment (inside struct conn; all zero: no arm). */
struct experiment_conn {
	struct arm_tally *arm;		/* where it counts; NULL: no experiment, or the table
					 * of names was full */
	const char *name;		/* the arm's name (in the connection's config) */
	struct send_settings send;	/* the listener's settings with the arm's on top; the
					 * connection's send pointer points here */
	unsigned stalls_seen;		/* rec.stalls, stall ms and mitigations already */
	uint64_t stall_ms_seen;		/* counted for the arm */
	unsigned mitigations_seen;
};

/* At accept, after c->send is the listener's settings (listener: its index in c->cfg,
 * or past the end for none): if an experiment applies (the listener's own, else the
 * global one), pick the next arm, copy the settings with the arm's on top into c->exp,
 * point c->send there and name the arm in c->rec. Nothing otherwise. */
void experiment_assign(struct conn *c, size_t listener);

/* A response of c ended: completed, or aborted (client gone, I/O error, timeout). Call
 * before the response is reset; no-op without an arm. */
void experiment_note_response(struct conn *c, bool aborted);

/* c closes (after its stall detector closed a stall in progress): count what its record
 * holds beyond what responses counted. No-op without an arm. */
void experiment_note_close(struct conn *c);

/* Append the experiment as a JSON object (GET /stats/experiment; also the "experiment"
 * member of /stats): every tracked arm's counters, the window statistics and the
 * verdict over the arms the current configuration has. */
void experiment_json(const struct config *cfg, struct evbuffer *out);

/* Append ",\"experiment\":{...}" to /stats when an experiment is configured or arms were
 * counted; nothing otherwise. */
void experiment_stats_member(const struct config *cfg, struct evbuffer *out);

/* Append the table of `ktlsd stats --experiment` (GET /stats/experiment/text). */
void experiment_text(const struct config *cfg, struct evbuffer *out);

/* Append the per-arm Prometheus families (nothing while no arm is known). */
void experiment_prometheus(const struct config *cfg, struct evbuffer *out);

#endif
