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

/* ---- access log formats -------------------------------------------------- */

void log_escape(char *out, size_t outsz, const char *s, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < outsz; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
			o += (size_t)snprintf(out + o, outsz - o, "\\x%02X", ch);
		else
			out[o++] = (char)ch;
	}
	out[o] = '\0';
}

/* s (already escaped by log_escape(): printable ASCII without '"') as a JSON string
 * body: only its backslashes need doubling. */
static const char *json_escaped(char *out, size_t outsz, const char *s)
{
	size_t o = 0;

	for (; *s && o + 3 < outsz; s++) {
		if (*s == '\\')
			out[o++] = '\\';
		out[o++] = *s;
	}
	out[o] = '\0';
	return out;
}

/* One JSON object per line (log.access_format "json"): the fields of the combined
 * format and ktlsd's own, named, for log shippers that should not parse text. */
static int access_json(const struct access_entry *e, const struct tm *tm, char *line,
		       size_t size)
{
	char when[40], req[LOG_FIELD_MAX * 2], ua[LOG_FIELD_MAX * 2], ref[LOG_FIELD_MAX * 2];
	size_t n;

	/* ISO 8601 with the offset as +hh:mm (nginx's $time_iso8601) */
	n = strftime(when, sizeof(when) - 1, "%Y-%m-%dT%H:%M:%S%z", tm);
	if (n >= 5) {
		memmove(when + n - 1, when + n - 2, 3);
		when[n - 2] = ':';
	}
	return snprintf(line, size,
			"{\"time\":\"%s\",\"remote_addr\":\"%s\",\"request\":\"%s\",\"status\":%d,"
			"\"body_bytes\":%llu,\"referer\":\"%s\",\"user_agent\":\"%s\",\"rt\":%.3f,"
			"\"bytes\":%llu,\"mode\":\"%s\",\"tls_tx\":\"%s\",\"mss\":%u,\"stalls\":%u,"
			"\"stall_ms\":%llu,\"conn\":%llu,\"peer\":\"%s\",\"via\":%s%s%s,\"arm\":%s%s%s}",
			when, e->peer_addr, json_escaped(req, sizeof(req), e->request), e->status,
			(unsigned long long)e->body_bytes, json_escaped(ref, sizeof(ref), e->referer),
			json_escaped(ua, sizeof(ua), e->user_agent), e->rt,
			(unsigned long long)e->bytes, e->sender, e->tls_tx, e->mss, e->stalls,
			(unsigned long long)e->stall_ms, (unsigned long long)e->conn, e->peer,
			e->via[0] ? "\"" : "", e->via[0] ? e->via : "null", e->via[0] ? "\"" : "",
			e->arm[0] ? "\"" : "", e->arm[0] ? e->arm : "null", e->arm[0] ? "\"" : "");
}

/* The combined format, then ktlsd's fields as key=value. */
static int access_combined(const struct access_entry *e, const struct tm *tm, char *line,
			   size_t size)
{
	char when[64];

	strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S %z", tm);
	return snprintf(line, size,
		"%s - - [%s] \"%s\" %d %llu \"%s\" \"%s\" rt=%.3f bytes=%llu mode=%s "
		"tls_tx=%s mss=%u stalls=%u stall_ms=%llu conn=%llu%s%s%s%s%s%s",
		e->peer_addr, when, e->request[0] ? e->request : "-", e->status,
		(unsigned long long)e->body_bytes, e->referer[0] ? e->referer : "-",
		e->user_agent[0] ? e->user_agent : "-", e->rt, (unsigned long long)e->bytes,
		e->sender, e->tls_tx, e->mss, e->stalls, (unsigned long long)e->stall_ms,
		(unsigned long long)e->conn,
		/* behind a balancer: the client's port and the balancer, which the
		 * combined format has no field for */
		e->via[0] ? " peer=" : "", e->via[0] ? e->peer : "", e->via[0] ? " via=" : "",
		e->via, e->arm[0] ? " arm=" : "", e->arm);
}

void log_access_entry(const struct access_entry *e, bool json)
{
	char line[1536];
	struct tm tm;
	int n;

	localtime_r(&e->when, &tm);
	n = json ? access_json(e, &tm, line, sizeof(line)) : access_combined(e, &tm, line, sizeof(line));
	if (n <= 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		if (json)	/* a cut JSON line would be garbage */
			return;
		n = (int)sizeof(line) - 1;
	}
	log_access(line, (size_t)n);
}
