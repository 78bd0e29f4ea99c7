/* notify.c — see notify.h. The protocol is small enough that linking libsystemd for it
 * would only add a dependency: one datagram per state change, fire and forget. */
#include "autoconf.h"
#include "notify.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_len;
static bool send_failed_logged;

bool notify_init(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t n;

	if (path == NULL || path[0] == '\0')
		return false;
	n = strlen(path);
	/* systemd also knows "vsock:CID:PORT" (VMs); ktlsd is not run as a VM's init */
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof(notify_addr.sun_path)) {
		log_msg(LOG_LEVEL_WARN, "NOTIFY_SOCKET=\"%s\" is not a unix socket path or "
			"@abstract name; not notifying the service manager", path);
		return false;
	}
	memset(&notify_addr, 0, sizeof(notify_addr));
	notify_addr.sun_family = AF_UNIX;
	memcpy(notify_addr.sun_path, path, n);
	if (path[0] == '@')
		notify_addr.sun_path[0] = '\0';	/* abstract: the length, not a NUL, ends it */
	notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
				 (path[0] == '@' ? 0 : 1));
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notify_fd == -1) {
		log_msg(LOG_LEVEL_WARN, "NOTIFY_SOCKET: socket: %s; not notifying the service "
			"manager", strerror(errno));
		return false;
	}
	return true;
}

bool notify_enabled(void)
{
	return notify_fd != -1;
}

/* STATUS is one line of the datagram: a newline in it would start a bogus KEY=. */
static size_t put_status(char *buf, size_t cap, size_t len, const char *status)
{
	char line[512];
	int n;

	if (status == NULL)
		return len;
	snprintf(line, sizeof(line), "%s", status);
	for (char *p = line; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	n = snprintf(buf + len, cap - len, "STATUS=%s\n", line);
	if (n < 0 || (size_t)n >= cap - len)
		return len;	/* cannot happen with these sizes; never send half a line */
	return len + (size_t)n;
}

static void send_msg(const char *state, const char *status)
{
	char buf[1024];
	size_t len = 0;
	int n;

	if (notify_fd == -1)
		return;
	if (state != NULL) {
		n = snprintf(buf, sizeof(buf), "%s", state);
		len = n > 0 && (size_t)n < sizeof(buf) ? (size_t)n : 0;
	}
	len = put_status(buf, sizeof(buf), len, status);
	if (len == 0)
		return;
	if (sendto(notify_fd, buf, len, MSG_NOSIGNAL, (const struct sockaddr *)&notify_addr,
		   notify_len) == -1) {
		/* the manager may be gone (restarted, or a test that stopped listening):
		 * say it once, never stop serving for it */
		if (!send_failed_logged)
			log_msg(LOG_LEVEL_WARN, "NOTIFY_SOCKET: %s", strerror(errno));
		send_failed_logged = true;
	}
}

void notify_ready(const char *status)
{
	send_msg("READY=1\n", status);
}

void notify_reloading(const char *status)
{
	struct timespec ts;
	char state[80];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%llu\n",
		 (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
	send_msg(state, status);
}

void notify_stopping(const char *status)
{
	send_msg("STOPPING=1\n", status);
}

void notify_status(const char *fmt, ...)
{
	char status[512];
	va_list ap;

	if (notify_fd == -1)
		return;
	va_start(ap, fmt);
	vsnprintf(status, sizeof(status), fmt, ap);
	va_end(ap);
	send_msg(NULL, status);
}

void notify_close(void)
{
	if (notify_fd != -1)
		close(notify_fd);
	notify_fd = -1;
}
