/* autosend.c — see autosend.h. */
#include "autoconf.h"
#include "autosend.h"
#include "conn.h"
#include "log.h"
#include "send.h"
#include "stats.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <netinet/tcp.h>

#ifndef SOL_TCP
#define SOL_TCP 6
#endif

/* Automatic mitigation (send mode auto): a ladder of levers, measured per kernel in UML
 * (README, "What each switch did"). The stuck record sits in the kernel's write queue and
 * nothing pushes it, so every step first pushes it (setting TCP_NODELAY, even to its
 * current value, makes TCP send what is queued), then removes the trigger:
 *   1. raise the socket's TCP_NOTSENT_LOWAT to AUTO_LOWAT: the trigger is a low-water
 *      mark below about one record (6.1: ≤ 32768 stalls, 65536 does not; 6.12: below a
 *      record, with an MSS above one). Keeps zero-copy and full-size calls: the fastest
 *      lever on both kernels;
 *   2. if a corked wait comes again: cap each sendfile()/splice() at one TLS record;
 *   3. then pread()+write() in WRITE_CHUNK calls (needs a copy buffer of that size).
 * Step 1 is skipped when the socket's low-water mark is already that high (or unset).
 * Causes that a sender cannot fix (a client that does not read, congestion) are left
 * alone. The levers stay for the connection's life: its path has shown the problem. */
#define AUTO_LOWAT 131072	/* 65536 removes the trigger too, but costs ~8 % on 6.12 (more
				 * wake-ups); 131072 ran at the speed of no mark (stall-matrix) */
/* after step 1 the detector must still see corked waits, or step 2 never comes */
_Static_assert(AUTO_LOWAT <= STALL_WATCH_LOWAT_MAX, "the detector stops looking below AUTO_LOWAT");
#define RECORD_CAP 16384
#define WRITE_CHUNK 8192

static void push_pending(struct conn *c)
{
	int one = 1;

	if (setsockopt(c->fd, SOL_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		log_msg(LOG_LEVEL_INFO, "conn %llu: TCP_NODELAY push: %s", (unsigned long long)c->id,
			strerror(errno));
}

static void learn_strike(struct auto_learning *l)
{
	
	l->probes_ok = 0;
	if (++l->strikes >= AUTO_LEARN_STRIKES && !l->capped) {
		l->capped = true;
		log_msg(LOG_LEVEL_NOTICE, "auto: %u responses stalled in sendfile and recovered with "
			"the first lever; new connections start with it (every %dth connection "
			"re-tests without)", l->strikes, AUTO_LEARN_PROBE_EVERY);
	}
}

/* A response of an uncapped probe connection finished without a stall. */
static void learn_probe_ok(struct auto_learning *l)
{
	
	if (!l->capped || ++l->probes_ok < AUTO_LEARN_PROBES_OK)
		return;
	l->capped = false;
	l->strikes = 0;
	l->probes_ok = 0;
	log_msg(LOG_LEVEL_NOTICE, "auto: %d probes sent without a stall; new connections start "
		"without the lever again", AUTO_LEARN_PROBES_OK);
}

/* Step 1: raise the socket's low-water mark. False if it is already high enough. */
static bool raise_lowat(struct conn *c)
{
	int v = AUTO_LOWAT;

	if (c->stall.lowat >= AUTO_LOWAT)
		return false;
	if (setsockopt(c->fd, SOL_TCP, TCP_NOTSENT_LOWAT, &v, sizeof(v)) == -1) {
		log_msg(LOG_LEVEL_INFO, "conn %llu: TCP_NOTSENT_LOWAT %d: %s",
			(unsigned long long)c->id, v, strerror(errno));
		return false;
	}
	c->stall.lowat = AUTO_LOWAT;
	c->rec.notsent_lowat = AUTO_LOWAT;
	return true;
}

static bool zero_copy(const struct conn *c)
{
	return c->sender->mode == SEND_MODE_SENDFILE || c->sender->mode == SEND_MODE_SPLICE;
}

bool auto_mitigate(struct conn *c, struct auto_learning *l, const char *why)
{
	char what[128];

	if (c->mode != SEND_MODE_AUTO || !c->ktls.tx)
		return false;
	push_pending(c);
	if (raise_lowat(c)) {
		snprintf(what, sizeof(what), "raised TCP_NOTSENT_LOWAT to %d", AUTO_LOWAT);
		learn_strike(l);
	} else if (zero_copy(c) && c->chunk > RECORD_CAP) {
		send_set_sender(c, c->sender, RECORD_CAP);
		snprintf(what, sizeof(what), "capped %s calls at one TLS record (%d bytes)",
			 c->sender->name, RECORD_CAP);
	} else if (zero_copy(c)) {
		const char *from = c->sender->name;
		send_set_sender(c, send_pick(SEND_MODE_WRITE, c->ktls.tx), WRITE_CHUNK);
		snprintf(what, sizeof(what), "switched from %s to write (%d-byte calls)", from,
			 WRITE_CHUNK);
	} else {
		snprintf(what, sizeof(what), "pushed the queued record (no further step)");
	}
	c->rec.mitigations++;
	stats_count(CTR_MITIGATIONS, 1);
	log_msg(LOG_LEVEL_WARN, "conn %llu: %s: auto mitigation %u (%s): %s",
		(unsigned long long)c->id, c->peer, c->rec.mitigations, why, what);
	return true;
}

void auto_connection_start(struct conn *c, struct auto_learning *l)
{
	if (c->mode != SEND_MODE_AUTO || !c->ktls.tx)
		return;
	c->stall.probe = l->capped && c->id % AUTO_LEARN_PROBE_EVERY == 0;
	/* a learned start: step 1 already taken */
	if (l->capped && !c->stall.probe && raise_lowat(c)) {
		c->stall.learned_cap = true;
		stats_count(CTR_AUTO_CAPPED_STARTS, 1);
	}
}

void auto_connection_end(struct conn *c, struct auto_learning *l)
{
	/* A probe connection is judged once, at its end, however many responses it carried
	 * (counted per response, one keep-alive probe could undo the lesson alone); and only
	 * if its socket buffer ever filled (an EAGAIN): a connection of small responses never
	 * meets the trigger and proves nothing. */
	if (c->stall.probe && c->rec.eagain > 0 && c->rec.stalls == 0 && c->rec.corked_waits == 0)
		learn_probe_ok(l);
}

