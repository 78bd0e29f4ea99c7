/* common.h — forward declarations and the few types every module shares.
 * Kept tiny so headers never include each other in circles (lighttpd's base_decls.h). */
#ifndef KTLSD_COMMON_H
#define KTLSD_COMMON_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct server;
struct conn;

/* Outcome of one I/O step, whatever the path (socket, SSL, sendfile, splice).
 * errno is mapped to these in exactly one place: io_from_errno() in send.c. A call
 * interrupted by a signal (EINTR) is made again, never reported (SEND_RETRY in send.h,
 * tls_step() in tls.c). */
enum io_result {
	IO_OK,		/* progress was made (possibly partial) */
	IO_AGAIN,	/* would block: wait for the socket to become writable/readable */
	IO_PEER_GONE,	/* EPIPE, ECONNRESET, TLS close: the client went away */
	IO_ERROR,	/* anything else: log it and close */
};

#define KTLSD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
