/* common.h — forward declarations and the few types every module shares.
 * Kept tiny so headers never include each other in circles (lighttpd's base_decls.h). */
#ifndef KTLSD_COMMON_H
#define KTLSD_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct server;
struct conn;

/* Outcome of one I/O step, whatever the path (socket, SSL, sendfile, splice).
 * errno is mapped to these in exactly one place: io_from_errno() below. A call
 * interrupted by a signal (EINTR) is made again, never reported (SEND_RETRY in send.h,
 * tls_step() in tls.c, TEMP_FAILURE_RETRY in tlsrec.c). */
enum io_result {
	IO_OK,		/* progress was made (possibly partial) */
	IO_AGAIN,	/* would block: wait for the socket to become writable/readable */
	IO_PEER_GONE,	/* EPIPE, ECONNRESET, TLS close: the client went away */
	IO_ERROR,	/* anything else: log it and close */
};

/* The errno of a failed socket, sendfile or splice call as an io_result. */
static inline enum io_result io_from_errno(int e)
{
	switch (e) {
	case EAGAIN:
#if EWOULDBLOCK != EAGAIN
	case EWOULDBLOCK:
#endif
		return IO_AGAIN;
	case EPIPE:
	case ECONNRESET:
	case ENOTCONN:
	case ETIMEDOUT:
	case ECONNABORTED:
		return IO_PEER_GONE;
	default:
		return IO_ERROR;
	}
}

#define KTLSD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
