/* log.c — see log.h. Writes with one write(2) per line so lines from a crash or from
 * concurrent processes never interleave mid-line. */
#include "autoconf.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

static const char *level_names[] = { "alert", "crit", "error", "warn", "notice", "info", "debug" };

/* Workers write while the main thread reopens (SIGUSR1, reload). So a descriptor a worker
 * may have just loaded is never closed under it: each log owns at most one file
 * descriptor number of its own (its "slot", > 2) for the whole run; a new file is
 * dup2()ed onto the slot (atomically replacing the old file), and a switch to stderr or
 * "off" parks the slot on /dev/null. The fd in use (slot, stderr or -1) is an atomic. */
static _Atomic int cur_level = LOG_LEVEL_NOTICE;
static _Atomic int error_fd = STDERR_FILENO;
static _Atomic int access_fd = STDERR_FILENO;
static int error_slot = -1, access_slot = -1;	/* main thread only */

int log_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	if (strcmp(s, "warning") == 0)
		return LOG_LEVEL_WARN;
	return -1;
}

const char *log_level_name(enum log_level l)
{
	return level_names[l];
}

void log_set_level(enum log_level l)
{
	atomic_store_explicit(&cur_level, (int)l, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load_explicit(&cur_level, memory_order_relaxed);
}

static int open_one(const char *path, int *fd, char *err, size_t errlen)
{
	if (path == NULL || strcmp(path, "stderr") == 0) {
		*fd = STDERR_FILENO;
		return 0;
	}
	if (strcmp(path, "off") == 0) {
		*fd = -1;
		return 0;
	}
	*fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (*fd == -1) {
		snprintf(err, errlen, "cannot open log file \"%s\": %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void close_fd(int fd)
{
	if (fd > STDERR_FILENO)
		close(fd);
}

/* Make fd (from open_one: a new file, STDERR_FILENO or -1) the one *cur writes to,
 * through *slot as described at the top. */
static void install(int fd, _Atomic int *cur, int *slot)
{
	if (fd > STDERR_FILENO) {
		if (*slot == -1) {
			*slot = fd;
		} else if (dup2(fd, *slot) != -1) {
			close(fd);
		} else {	/* cannot happen with a valid slot; keep the new fd rather than lose it */
			*slot = fd;
		}
		atomic_store_explicit(cur, *slot, memory_order_release);
		return;
	}
	atomic_store_explicit(cur, fd, memory_order_release);
	if (*slot != -1) {
		/* a line loaded the slot just before: it lands in /dev/null, not in a file
		 * that happens to get the freed number */
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null != -1) {
			dup2(null, *slot);
			close(null);
		}
	}
}

int log_open(const char *error_path, const char *access_path, char *err, size_t errlen)
{
	int efd, afd;

	if (error_path != NULL && strcmp(error_path, "off") == 0) {
		snprintf(err, errlen, "the error log cannot be \"off\"");
		return -1;
	}
	if (open_one(error_path, &efd, err, errlen) == -1)
		return -1;
	if (open_one(access_path, &afd, err, errlen) == -1) {
		close_fd(efd);
		return -1;
	}
	install(efd, &error_fd, &error_slot);
	install(afd, &access_fd, &access_slot);
	return 0;
}

void log_close(void)
{
	/* at exit, every worker joined: nothing writes any more */
	atomic_store(&error_fd, STDERR_FILENO);
	atomic_store(&access_fd, STDERR_FILENO);
	close_fd(error_slot);
	close_fd(access_slot);
	error_slot = access_slot = -1;
}

void log_vmsg(enum log_level l, const char *fmt, va_list ap)
{
	char line[2048];
	struct tm tm;
	time_t now;
	size_t n;
	int r;

	int fd = atomic_load_explicit(&error_fd, memory_order_acquire);

	if ((int)l > atomic_load_explicit(&cur_level, memory_order_relaxed) || fd == -1)
		return;
	now = time(NULL);
	localtime_r(&now, &tm);
	n = strftime(line, sizeof(line), "%Y/%m/%d %H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, " [%s] %ld: ", level_names[l], (long)getpid());
	if (r > 0)
		n += (size_t)r;
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (r > 0)
		n += (size_t)r;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;	/* truncated: still end the line */
	line[n++] = '\n';
	/* a failed log write has nowhere to be reported; ignoring it is all we can do */
	if (write(fd, line, n) < 0)
		return;
}

void log_msg(enum log_level l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(l, fmt, ap);
	va_end(ap);
}

void log_openssl(enum log_level l, const char *what)
{
	unsigned long e;
	char buf[256];
	int any = 0;

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		log_msg(l, "%s: %s", what, buf);
		any = 1;
	}
	if (!any)
		log_msg(l, "%s: (no OpenSSL error queued)", what);
}

void log_access(const char *line, size_t len)
{
	char buf[4096];
	int fd = atomic_load_explicit(&access_fd, memory_order_acquire);

	if (fd == -1)
		return;
	if (len > sizeof(buf) - 1)
		len = sizeof(buf) - 1;
	memcpy(buf, line, len);
	buf[len++] = '\n';
	if (write(fd, buf, len) < 0)
		return;
}

int log_access_enabled(void)
{
	return atomic_load_explicit(&access_fd, memory_order_relaxed) != -1;
}
