/* stall.h — per-connection send accounting and stall detection.
 *
 * Two kinds of stall, both counted per connection and per cause:
 *
 * - No progress: for longer than the threshold the connection has data to send (a
 *   response in flight, or bytes still unsent in the kernel) and neither the kernel takes
 *   more bytes from us nor the peer acknowledges any (tcpi_bytes_acked). A write event
 *   alone cannot see the TLS_SW stall of Linux 6.1 — no POLLOUT arrives for seconds — so a
 *   libevent timer ticks every threshold/2 while a connection is busy and reads TCP_INFO.
 *
 * - Crawl (cause persist-crawl): on Linux 6.12 the same corked record is pushed by the
 *   TCP probe (persist) timer, so the response progresses at its cadence, one record per
 *   ~200 ms (about 75 KB/s): never "no progress for 1 s". It is recognised at each EAGAIN
 *   of a kTLS socket (one TCP_INFO read per EAGAIN, not per call): about one record
 *   unsent, nothing in flight, the window open for it — a *corked wait*, which nothing
 *   but a timer ends. CRAWL_WAITS corked waits that each last ≥ CRAWL_WAIT_MS within
 *   CRAWL_WINDOW_MS make a crawl; it ends after CRAWL_WINDOW_MS without one (or with the
 *   response).
 *   A slow reader (zero window: window < unsent), a rate-limited or congested path
 *   (data in flight) never match the corked signature.
 *
 * The detector only measures and reports (stall_report_fn): what to do about a stall
 * is the connection's (autosend.h: send mode auto mitigates the first corked wait at
 * once, as waiting for proof would cost a persist-timer period per response). */
#ifndef KTLSD_STALL_H
#define KTLSD_STALL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/time.h>

#include "common.h"

enum stall_cause {
	STALL_CORKED_RECORD,	/* ≤ about one TLS record unsent, window open, nothing in
				 * flight: the kernel holds a record and no timer but the
				 * persist/probe timer pushes it (the seed's signature) */
	STALL_PERSIST_CRAWL,	/* the corked record of STALL_CORKED_RECORD, but pushed by the
				 * persist timer every ~200 ms: progress at timer cadence */
	STALL_ZERO_WINDOW,	/* the peer stopped reading: snd_wnd 0 or window probes */
	STALL_CONGESTION,	/* data in flight is not being acknowledged: loss, retransmits */
	STALL_UNKNOWN,
	STALL_CAUSE_MAX
};

const char *stall_cause_name(enum stall_cause c);

/* The TCP_INFO fields that explain a stall. */
struct tcp_snapshot {
	bool valid;
	uint32_t snd_mss, notsent, snd_wnd, unacked, probes, backoff, rtt_us, snd_cwnd;
	uint32_t retransmits, total_retrans;
	uint64_t bytes_acked;
};

/* Read TCP_INFO of fd into s (s->valid false on failure). */
void stall_tcp_snapshot(int fd, struct tcp_snapshot *s);

/* Guess the cause of a stall from a snapshot taken during it. */
enum stall_cause stall_guess_cause(const struct tcp_snapshot *s);

/* The corked-record signature in a snapshot taken at an EAGAIN: at most about one record
 * unsent, nothing in flight, and the peer's window open for all of it — so only a cork
 * (MSG_MORE on a record, with TCP_NOTSENT_LOWAT keeping the socket unwritable) holds it. */
bool stall_corked(const struct tcp_snapshot *s);

#define CRAWL_WAIT_MS 150	/* a corked wait this long was ended by a timer */
#define CRAWL_WAITS 3		/* so many make a crawl (~0.6 s at 200 ms each) ... */
#define CRAWL_WINDOW_MS 1000	/* ... within this time; a crawl ends after this long
				 * without a timer-ended corked wait */

/* A low-water mark above this means more than about a record is unsent at an EAGAIN:
 * no corked wait is possible, so no TCP_INFO is read (send mode auto raises the mark to
 * at most this, and must go on seeing corked waits). */
#define STALL_WATCH_LOWAT_MAX 131072

struct conn;

/* What the detector tells its connection. */
enum stall_event {
	STALL_EV_BEGIN,		/* a stall began, of the cause given */
	STALL_EV_END,		/* the stall in progress ended after ms milliseconds */
	STALL_EV_CORKED,	/* an EAGAIN with the corked-record signature (a wait that only
				 * a timer will end, unless something pushes the record) */
};
typedef void stall_report_fn(struct conn *c, enum stall_event ev, enum stall_cause cause,
			     uint64_t ms);

/* Per-connection detector state; lives inside struct conn (results go to c->rec). */
struct stall_state {
	stall_report_fn *report;
	struct event *ev_tick;
	bool active;			/* ticking */
	uint64_t mark_sent, mark_acked;	/* progress markers at the last progress */
	uint64_t last_progress_us;
	bool in_stall;
	uint64_t stall_began_us;
	uint64_t wait_began_us;		/* 0: not waiting for writability */
	bool wait_corked;		/* the current wait began with a corked record */
	unsigned crawl_waits;		/* long corked waits in a row */
	uint64_t crawl_began_us;	/* start of the first of them */
	uint64_t last_crawl_wait_us;	/* end of the last of them */
	bool crawl;			/* the stall in progress is a crawl (ends differently) */
	struct tcp_snapshot crawl_snap;	/* at the last corked wait */
	uint32_t lowat;			/* the socket's TCP_NOTSENT_LOWAT in effect (the
					 * listener's, else the sysctl; UINT32_MAX: none) */
	bool probe;			/* auto: this connection runs uncapped to re-test */
	bool learned_cap;		/* auto: capped from the start by what was learned */
};


/* net.ipv4.tcp_notsent_lowat of the daemon's network namespace (UINT32_MAX: unset or
 * unreadable), which applies to every socket without its own TCP_NOTSENT_LOWAT. Read at
 * start and on reload. */
uint32_t stall_sysctl_notsent_lowat(void);

/* Create the tick timer (once per connection, after its TCP_NOTSENT_LOWAT is set).
 * lowat: the mark in effect on the socket (its own, else the sysctl; UINT32_MAX: none).
 * report: told of every stall and corked wait. Returns -1 on allocation failure. */
int stall_init(struct conn *c, uint32_t lowat, stall_report_fn *report);

/* Free the timer; a stall in progress is closed and reported. */
void stall_fini(struct conn *c);

/* A response starts or continues sending: make sure the tick runs. */
void stall_busy(struct conn *c);

/* After every send call, begun at t0 and ended at t1 (stall_now_us()): its duration,
 * and whether it ended in EAGAIN (a wait for writability starts at t1). On a kTLS socket
 * an EAGAIN also reads TCP_INFO for the corked signature (counted; auto mitigates). */
void stall_note_call(struct conn *c, uint64_t t0, uint64_t t1, bool again);

/* The loop woke us for writability: a wait ends. */
void stall_note_writable(struct conn *c);

/* Milliseconds of the stall in progress (0 if none). */
uint64_t stall_current_ms(const struct conn *c);

/* Monotonic microseconds. */
uint64_t stall_now_us(void);

#endif
