/* autosend.h — send mode auto: the ladder of levers it takes against the kTLS send stall
 * on one connection, and what it learns across connections.
 *
 * The detector (stall.h) only measures and reports; the connection hands its reports
 * here. A step changes the socket (push, TCP_NOTSENT_LOWAT) or the sender and its call
 * size, always through send_set_sender(). */
#ifndef KTLSD_AUTOSEND_H
#define KTLSD_AUTOSEND_H

#include <stdbool.h>

#include "common.h"

/* What send mode auto learned across connections: after a few stalls that the first
 * lever cured, new connections start with it; every AUTO_LEARN_PROBE_EVERY-th connection
 * still starts without, and a few stall-free probes undo the lesson (the path may have
 * changed). One per event loop; starts zeroed. */
struct auto_learning {
	unsigned strikes;		/* step-1 mitigations since the last reset */
	bool capped;			/* new auto connections start with step 1 taken */
	unsigned probes_ok;		/* probe connections without a stall */
};

#define AUTO_LEARN_STRIKES 3
#define AUTO_LEARN_PROBE_EVERY 20
#define AUTO_LEARN_PROBES_OK 3

/* The first response of a kTLS connection in mode auto starts: begin with what was
 * learned (step 1 taken), unless this connection is a probe. No-op in other modes. */
void auto_connection_start(struct conn *c, struct auto_learning *l);

/* A stall or a corked record (why, for the log) on c: take the ladder's next step
 * (counted in the record and the counters, logged). Returns true if a step was taken:
 * the caller should then try to write at once, as the socket may never report
 * writability in this stall. Only kTLS connections in mode auto take steps. */
bool auto_mitigate(struct conn *c, struct auto_learning *l, const char *why);

/* c ends: a probe connection that filled its socket buffer without a stall or a corked
 * wait counts towards undoing the lesson. */
void auto_connection_end(struct conn *c, struct auto_learning *l);

#endif
