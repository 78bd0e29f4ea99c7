/* log.h — error log with levels and the access log.
 *
 * Error log lines look like nginx's: "2026/11/28 07:30:00 [error] 1234: text", so operators
 * can grep for "[alert]" / "[crit]" the way they do with nginx (the test suite does). */
#ifndef KTLSD_LOG_H
#define KTLSD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum log_level {
	LOG_LEVEL_ALERT,	/* the daemon cannot go on as configured */
	LOG_LEVEL_CRIT,		/* an internal invariant broke; a bug */
	LOG_LEVEL_ERROR,	/* a request or connection failed for a server-side reason */
	LOG_LEVEL_WARN,		/* degraded but working (e.g. kTLS unavailable) */
	LOG_LEVEL_NOTICE,	/* life-cycle events: start, reload, stop */
	LOG_LEVEL_INFO,		/* per-connection events: client errors, timeouts */
	LOG_LEVEL_DEBUG,	/* state transitions and per-call detail */
};

/* Parse "debug", "info", ... "alert". Returns the level, or -1 if s is unknown. */
int log_level_parse(const char *s);
const char *log_level_name(enum log_level l);

/* Until log_open() succeeds, everything goes to stderr at level NOTICE. */
void log_set_level(enum log_level l);
enum log_level log_get_level(void);

/* Open the error and access logs. NULL or "stderr" means standard error, "off" (access
 * only) disables the access log. On failure returns -1, writes the reason to err and
 * leaves the previous logs in place. Reopening (reload) swaps atomically. */
int log_open(const char *error_path, const char *access_path, char *err, size_t errlen);

/* Close both logs (back to stderr). Safe to call twice. */
void log_close(void);

void log_msg(enum log_level l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level l, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Append the OpenSSL error queue to the error log at level l, prefixed with what,
 * and clear the queue. */
void log_openssl(enum log_level l, const char *what);

/* Write one access log line (the caller formats it, without newline). */
void log_access(const char *line, size_t len);
int log_access_enabled(void);

/* Longest request line, User-Agent or Referer a log line carries (escaped). */
#define LOG_FIELD_MAX 256

/* Copy s[0..len) into out (size outsz), escaping what could break a log line or a parser
 * of it: '"', '\\', control and non-ASCII bytes become \xHH (as nginx does). Cut to fit. */
void log_escape(char *out, size_t outsz, const char *s, size_t len);

/* One response as the access log shows it. Strings are already escaped (log_escape());
 * via and arm are "" when there is none. */
struct access_entry {
	time_t when;			/* the line's time stamp */
	double rt;			/* seconds since the request */
	const char *peer_addr, *peer, *via;
	const char *request, *referer, *user_agent;
	int status;
	uint64_t body_bytes, bytes;	/* body; head and body */
	const char *sender, *tls_tx;
	unsigned mss, stalls;		/* stalls during this response */
	uint64_t stall_ms, conn;
	const char *arm;
};

/* Write e to the access log: the combined format with ktlsd's fields, or (json) one JSON
 * object per line; a JSON line too long for the buffer is dropped rather than cut. */
void log_access_entry(const struct access_entry *e, bool json);

#define log_debug(...) do { if (log_get_level() >= LOG_LEVEL_DEBUG) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)

#endif
