/* stall.h — per-connection send accounting and stall detection.
 *
 * A stall is a period longer than the threshold in which the connection has data to send
 * (a response in flight, or bytes still unsent in the kernel) and neither the kernel takes
 * more bytes from us nor the peer acknowledges any (tcpi_bytes_acked). A write event alone
 * cannot see the seed's TLS_SW stall — no POLLOUT arrives for seconds — so a libevent
 * timer ticks every threshold/2 while a connection is busy and reads TCP_INFO. */
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

/* Per-connection detector state; lives inside struct conn (results go to c->rec). */
struct stall_state {
	struct event *ev_tick;
	bool active;			/* ticking */
	uint64_t mark_sent, mark_acked;	/* progress markers at the last progress */
	uint64_t last_progress_us;
	bool in_stall;
	uint64_t stall_began_us;
	uint64_t wait_began_us;		/* 0: not waiting for writability */
	bool probe;			/* auto: this connection runs uncapped to re-test */
	bool learned_cap;		/* auto: capped from the start by what was learned */
};

/* What send mode auto learned across connections: after a few stalls that one-record
 * calls cured, new responses start capped; every probe_every-th connection still starts
 * uncapped, and a few stall-free probes undo the lesson (the path may have changed). */
struct stall_learning {
	unsigned strikes;		/* step-1 mitigations since the last reset */
	bool capped;			/* new auto responses start at one record per call */
	unsigned probes_ok;		/* uncapped probe responses without a stall */
};

#define STALL_LEARN_STRIKES 3
#define STALL_LEARN_PROBE_EVERY 20
#define STALL_LEARN_PROBES_OK 3

struct conn;

/* Create the tick timer (once per connection). Returns -1 on allocation failure. */
int stall_init(struct conn *c);

/* Free the timer; a stall in progress is closed and counted. */
void stall_fini(struct conn *c);

/* A response starts or continues sending: make sure the tick runs. */
void stall_busy(struct conn *c);

/* After every send call, begun at t0 and ended at t1 (stall_now_us()): its duration,
 * and whether it ended in EAGAIN (a wait for writability starts at t1). */
void stall_note_call(struct conn *c, uint64_t t0, uint64_t t1, bool again);

/* The loop woke us for writability: a wait ends. */
void stall_note_writable(struct conn *c);

/* Milliseconds of the stall in progress (0 if none). */
uint64_t stall_current_ms(const struct conn *c);

/* Monotonic microseconds. */
uint64_t stall_now_us(void);

#endif
