/* activation.c — see activation.h. */
#include "autoconf.h"
#include "activation.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LISTEN_FDS_START 3

/* A decimal number in [1, max], whole string; -1 otherwise. */
static long parse_count(const char *s, long max)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > max)
		return -1;
	return v;
}

int activation_listeners(struct inherited_listener *out, size_t max, char *err,
			 size_t errlen)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	long n, p;

	if (pid == NULL || fds == NULL)
		return 0;
	p = parse_count(pid, 0x7fffffffL);
	n = parse_count(fds, 4096);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (p != (long)getpid())
		return 0;	/* meant for a process that started us, not for us */
	if (n < 0) {
		snprintf(err, errlen, "socket activation: LISTEN_FDS=\"%s\" is not a count", fds);
		return -1;
	}
	if ((size_t)n > max) {
		snprintf(err, errlen, "socket activation: %ld sockets passed, at most %zu can be "
			 "used", n, max);
		return -1;
	}
	for (long i = 0; i < n; i++) {
		struct inherited_listener *l = &out[i];
		int fd = LISTEN_FDS_START + (int)i, type = 0, acc = 0, fl;
		socklen_t sl = sizeof(type), al = sizeof(acc);

		l->fd = fd;
		l->len = sizeof(l->ss);
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl) == -1 ||
		    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) == -1 ||
		    getsockname(fd, (struct sockaddr *)&l->ss, &l->len) == -1 ||
		    type != SOCK_STREAM || !acc ||
		    (l->ss.ss_family != AF_INET && l->ss.ss_family != AF_INET6)) {
			snprintf(err, errlen, "socket activation: fd %d is not a listening TCP "
				 "socket (ListenStream= in the .socket unit)", fd);
			return -1;
		}
		fl = fcntl(fd, F_GETFL);
		if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
		    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
			snprintf(err, errlen, "socket activation: fd %d: %s", fd, strerror(errno));
			return -1;
		}
	}
	return (int)n;
}
