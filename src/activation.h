/* activation.h — listening sockets handed over by systemd (socket activation).
 *
 * The sd_listen_fds(3) protocol, without libsystemd: LISTEN_PID names this process,
 * LISTEN_FDS counts the descriptors starting at 3. With a ktlsd.socket unit, systemd
 * binds the ports (443 without any privilege for ktlsd) and keeps them open across
 * restarts, so no connection is refused while ktlsd restarts. */
#ifndef KTLSD_ACTIVATION_H
#define KTLSD_ACTIVATION_H

#include <stddef.h>
#include <sys/socket.h>

struct inherited_listener {
	int fd;			/* listening TCP socket, non-blocking, close-on-exec */
	struct sockaddr_storage ss;	/* its local address */
	socklen_t len;
};

/* The sockets passed to this process, at most max. Returns their number (0: none passed,
 * or LISTEN_PID names another process), or -1 with err (a passed descriptor is not a
 * listening TCP socket, too many). Clears LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES so
 * that nothing started later takes them for its own. */
int activation_listeners(struct inherited_listener *out, size_t max, char *err,
			 size_t errlen);

#endif
