/* send.h — the body senders: one small table of function pointers per send mode.
 *
 * A response body is (file fd, offset, bytes left) of c->resp (response.h). A sender
 * moves at most max bytes per call; switching a live connection to another mode is
 * replacing c->sender. */
#ifndef KTLSD_SEND_H
#define KTLSD_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <unistd.h>	/* TEMP_FAILURE_RETRY */

#include "common.h"
#include "config.h"

struct body_sender {
	const char *name;
	enum send_mode mode;
	bool needs_ktls;	/* only meaningful on a kTLS socket */
	bool copies;		/* goes through c->resp.out (so headers coalesce with body) */
	/* Move up to max body bytes of c->resp; *sent = bytes the kernel or the record
	 * layer accepted. IO_AGAIN: wait for writability (no sender ever needs to read
	 * first: the record layer is ktlsd's own). */
	enum io_result (*send)(struct conn *c, size_t max, size_t *sent);
};

/* The sender for mode on a connection with (ktls_tx) or without kernel TLS; every mode
 * degrades to userspace without kTLS. */
const struct body_sender *send_pick(enum send_mode mode, bool ktls_tx);

/* The one place that changes how c sends: its sender s, the bytes per call (chunk), and
 * what the record shows of both (a switch of sender made on a live response is kept as
 * switched_from). The copy buffer follows on the next copying call (see send_copy). */
void send_set_sender(struct conn *c, const struct body_sender *s, size_t chunk);

/* errno → io_result is io_from_errno() (common.h). EINTR never gets there: an
 * interrupted call is made again (SEND_RETRY), never turned into IO_AGAIN, because the
 * events are edge-triggered — the socket may have been ready all along, and no new edge
 * would come to end the wait. */

/* The call expression, made again while it fails with EINTR (glibc's TEMP_FAILURE_RETRY):
 * every system call on the send and close paths goes through it. */
#define SEND_RETRY(call) TEMP_FAILURE_RETRY(call)

/* Write pending c->resp.out bytes through the connection's transport (raw socket on kTLS,
 * the record layer otherwise). more: body bytes follow, keep the record open (MSG_MORE).
 * *sent = bytes written. IO_AGAIN: wait for writability. */
enum io_result send_flush_out(struct conn *c, bool more, size_t *sent);

/* Size of the copy buffer for the write and userspace senders: the chunk, but at most
 * SEND_COPY_MAX, because a large sendfile chunk costs nothing while a copy buffer is
 * memory held per connection. */
#define SEND_COPY_MAX (256 * 1024)
size_t send_copy_size(const struct conn *c);

/* Bytes the response still has to send (out buffer, pipe, file). */
bool send_pending(const struct conn *c);

/* Release per-response sender resources: bytes of an aborted response left in the pipe
 * go with the pipe; an empty pipe is kept for reuse. The response itself is
 * response_reset()'s. */
void send_release(struct conn *c);

#endif
