/* config.c — see config.h. libconfig does the parsing; this file checks names, types and
 * ranges, so every mistake is reported with the file and line it is on. */
#include "autoconf.h"
#include "config.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *mode_names[SEND_MODE_MAX] = { "sendfile", "splice", "write", "userspace",
	"auto" };

int send_mode_parse(const char *s)
{
	for (int i = 0; i < SEND_MODE_MAX; i++)
		if (strcmp(s, mode_names[i]) == 0)
			return i;
	return -1;
}

const char *send_mode_name(enum send_mode m)
{
	return m < SEND_MODE_MAX ? mode_names[m] : "?";
}

void config_overrides_init(struct config_overrides *ov)
{
	memset(ov, 0, sizeof(*ov));
	ov->mss = -1;
	ov->notsent_lowat = -1;
	ov->send_chunk = -1;
	ov->stall_threshold_ms = -1;
}

int config_parse_listen(const char *s, struct listen_addr *la, char *err, size_t errlen)
{
	char host[64];
	const char *port;
	struct addrinfo hints, *res;
	int rc;

	memset(la, 0, sizeof(*la));
	if (strlen(s) >= sizeof(la->text)) {
		snprintf(err, errlen, "listen address \"%s\" is too long", s);
		return -1;
	}
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host)) {
			snprintf(err, errlen, "bad listen address \"%s\" (want [V6ADDR]:PORT)", s);
			return -1;
		}
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		port = end + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (colon == NULL) {
			strcpy(host, "0.0.0.0");
			port = s;
		} else {
			if ((size_t)(colon - s) >= sizeof(host) || strchr(s, ':') != colon) {
				snprintf(err, errlen, "bad listen address \"%s\" (IPv6 needs [ADDR]:PORT)", s);
				return -1;
			}
			memcpy(host, s, (size_t)(colon - s));
			host[colon - s] = '\0';
			if (strcmp(host, "*") == 0 || host[0] == '\0')
				strcpy(host, "0.0.0.0");
			port = colon + 1;
		}
	}
	char *endp;
	errno = 0;
	long p = strtol(port, &endp, 10);
	if (*port == '\0' || *endp != '\0' || errno != 0 || p < 0 || p > 65535) {
		snprintf(err, errlen, "bad port in listen address \"%s\"", s);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "bad listen address \"%s\": %s", s, gai_strerror(rc));
		return -1;
	}
	memcpy(&la->ss, res->ai_addr, res->ai_addrlen);
	la->len = res->ai_addrlen;
	freeaddrinfo(res);
	strcpy(la->text, s);
	return 0;
}

/* ---- error reporting with file:line ---------------------------------- */

struct loader {
	const char *file;
	char *err;
	size_t errlen;
};

static int fail_at(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail_at(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (s != NULL && config_setting_source_line(s) > 0) {
		const char *f = config_setting_source_file(s);
		n = snprintf(ld->err, ld->errlen, "%s:%u: ", f ? f : ld->file,
			     config_setting_source_line(s));
	} else if (ld->file != NULL) {
		n = snprintf(ld->err, ld->errlen, "%s: ", ld->file);
	}
	if (n < 0 || (size_t)n >= ld->errlen)
		n = 0;
	va_start(ap, fmt);
	vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- typed getters ---------------------------------------------------- */

/* Each reads setting s (present) into *out, or fails with "FILE:LINE: name: ..." */
static int read_string(struct loader *ld, const config_setting_t *s, char **out)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail_at(ld, s, "%s: must be a string", config_setting_name(s));
	free(*out);
	*out = strdup(config_setting_get_string(s));
	if (*out == NULL)
		return fail_at(ld, s, "%s: out of memory", config_setting_name(s));
	return 0;
}

static int read_bool(struct loader *ld, const config_setting_t *s, bool *out)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return fail_at(ld, s, "%s: must be true or false", config_setting_name(s));
	*out = config_setting_get_bool(s) != 0;
	return 0;
}

/* A non-negative integer within [min, max]. */
static int read_int(struct loader *ld, const config_setting_t *s, long long min, long long max,
		    long long *out)
{
	const char *name = config_setting_name(s);
	long long v;

	if (config_setting_type(s) == CONFIG_TYPE_INT)
		v = config_setting_get_int(s);
	else if (config_setting_type(s) == CONFIG_TYPE_INT64)
		v = config_setting_get_int64(s);
	else
		return fail_at(ld, s, "%s: must be an integer", name);
	if (v < min || v > max)
		return fail_at(ld, s, "%s: %lld is out of range [%lld, %lld]", name, v, min, max);
	*out = v;
	return 0;
}

/* A duration in seconds (integer or decimal) into milliseconds, > 0. */
static int read_seconds(struct loader *ld, const config_setting_t *s, unsigned *ms)
{
	const char *name = config_setting_name(s);
	double v;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT: v = config_setting_get_int(s); break;
	case CONFIG_TYPE_INT64: v = (double)config_setting_get_int64(s); break;
	case CONFIG_TYPE_FLOAT: v = config_setting_get_float(s); break;
	default: return fail_at(ld, s, "%s: must be a number of seconds", name);
	}
	if (!(v >= 0.001 && v <= 86400.0))
		return fail_at(ld, s, "%s: must be between 0.001 and 86400 seconds", name);
	*ms = (unsigned)(v * 1000.0 + 0.5);
	return 0;
}

/* The same for member name of group grp; absent: 0, *out unchanged. */
static int get_string(struct loader *ld, const config_setting_t *grp, const char *name,
		      char **out)
{
	const config_setting_t *s = config_setting_get_member(grp, name);

	return s == NULL ? 0 : read_string(ld, s, out);
}

static int get_bool(struct loader *ld, const config_setting_t *grp, const char *name, bool *out)
{
	const config_setting_t *s = config_setting_get_member(grp, name);

	return s == NULL ? 0 : read_bool(ld, s, out);
}

static int get_uint(struct loader *ld, const config_setting_t *grp, const char *name,
		    long long min, long long max, long long *out)
{
	const config_setting_t *s = config_setting_get_member(grp, name);

	return s == NULL ? 0 : read_int(ld, s, min, max, out);
}

/* Every setting in grp must be one of names[]: a typo is an error, not a silent default. */
static int check_known(struct loader *ld, const config_setting_t *grp, const char *const *names)
{
	int n = config_setting_length(grp);

	if (!config_setting_is_group(grp))
		return fail_at(ld, grp, "%s: must be a group { ... }", config_setting_name(grp));
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
		const char *nm = config_setting_name(s);
		size_t k;
		for (k = 0; names[k] != NULL; k++)
			if (strcmp(names[k], nm) == 0)
				break;
		if (names[k] == NULL)
			return fail_at(ld, s, "unknown setting \"%s\"", nm);
	}
	return 0;
}

static const config_setting_t *group(struct loader *ld, const config_setting_t *root,
				     const char *name, const char *const *names, int *rc)
{
	const config_setting_t *g = config_setting_get_member(root, name);

	*rc = 0;
	if (g != NULL)
		*rc = check_known(ld, g, names);
	return *rc == 0 ? g : NULL;
}

/* ---- the schema ------------------------------------------------------- */

/* A "send" group into *ss; *set (if not NULL) gets the SEND_SET_* bits of what it names. */
static int load_send(struct loader *ld, const config_setting_t *g, struct send_settings *ss,
		     unsigned *set)
{
	char *mode = NULL;
	long long v;
	unsigned bits = 0;

	if (get_string(ld, g, "mode", &mode))
		return -1;
	if (mode != NULL) {
		int m = send_mode_parse(mode);
		free(mode);
		if (m < 0)
			return fail_at(ld, config_setting_get_member(g, "mode"),
				       "mode: must be one of sendfile, splice, write, userspace, auto");
		ss->mode = (enum send_mode)m;
		bits |= SEND_SET_MODE;
	}
	v = (long long)ss->chunk;
	if (get_uint(ld, g, "chunk", 4096, 64 << 20, &v))
		return -1;
	ss->chunk = (size_t)v;
	v = ss->mss;
	if (get_uint(ld, g, "mss", 0, 65535, &v))
		return -1;
	if (v != 0 && v < 88)
		return fail_at(ld, config_setting_get_member(g, "mss"),
			       "mss: 0 (kernel default) or 88..65535");
	ss->mss = (int)v;
	v = ss->notsent_lowat;
	if (get_uint(ld, g, "notsent_lowat", 0, INT_MAX, &v))
		return -1;
	ss->notsent_lowat = (int)v;
	if (config_setting_get_member(g, "chunk"))
		bits |= SEND_SET_CHUNK;
	if (config_setting_get_member(g, "mss"))
		bits |= SEND_SET_MSS;
	if (config_setting_get_member(g, "notsent_lowat"))
		bits |= SEND_SET_LOWAT;
	if (set != NULL)
		*set = bits;
	return 0;
}

/* tls.sni = ( { certificate = "..."; private_key = "..."; }, ... ): more certificates, each
 * served to clients whose SNI matches one of its names (subjectAltName DNS, else CN). */
static int load_sni(struct loader *ld, const config_setting_t *s, struct config *c)
{
	static const char *const keys[] = { "certificate", "private_key", NULL };
	int n;

	if (!config_setting_is_list(s))
		return fail_at(ld, s, "sni: must be a list ( { certificate = ...; private_key = ...; }, ... )");
	n = config_setting_length(s);
	if (n > CONFIG_MAX_SNI)
		return fail_at(ld, s, "sni: at most %d certificates", CONFIG_MAX_SNI);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (check_known(ld, e, keys) ||
		    get_string(ld, e, "certificate", &c->tls.sni[i].certificate) ||
		    get_string(ld, e, "private_key", &c->tls.sni[i].private_key))
			return -1;
		c->tls.nsni = (size_t)i + 1;
		if (c->tls.sni[i].certificate == NULL || c->tls.sni[i].private_key == NULL)
			return fail_at(ld, e, "sni: element %d needs certificate and private_key", i + 1);
	}
	return 0;
}

/* A listener's proxy_protocol and proxy_trusted (group e) into la. Trust is never
 * implied: proxy_protocol = true needs the balancers' blocks, and proxy_trusted means
 * nothing without it. */
static int load_listen_proxy(struct loader *ld, const config_setting_t *e, struct listen_addr *la)
{
	const config_setting_t *t = config_setting_get_member(e, "proxy_trusted");
	int n;

	if (get_bool(ld, e, "proxy_protocol", &la->proxy))
		return -1;
	if (t == NULL)
		return la->proxy ? fail_at(ld, config_setting_get_member(e, "proxy_protocol"),
					   "listen %s: proxy_protocol = true needs proxy_trusted, the "
					   "address blocks of the balancers allowed to send PROXY headers "
					   "(\"0.0.0.0/0\", \"::/0\" for any)", la->text) : 0;
	if (!la->proxy)
		return fail_at(ld, t, "listen %s: proxy_trusted needs proxy_protocol = true", la->text);
	if (!config_setting_is_array(t) && !config_setting_is_list(t))
		return fail_at(ld, t, "proxy_trusted: must be a list of address blocks, e.g. "
			       "[ \"10.0.0.0/8\", \"::1/128\" ]");
	n = config_setting_length(t);
	if (n == 0 || n > CONFIG_MAX_TRUSTED)
		return fail_at(ld, t, "proxy_trusted: give 1 to %d address blocks", CONFIG_MAX_TRUSTED);
	for (int i = 0; i < n; i++) {
		const config_setting_t *b = config_setting_get_elem(t, (unsigned)i);
		const char *why;
		if (config_setting_type(b) != CONFIG_TYPE_STRING)
			return fail_at(ld, b, "proxy_trusted: element %d must be a string", i + 1);
		if (proxy_cidr_parse(config_setting_get_string(b), &la->trusted[i], &why) == -1)
			return fail_at(ld, b, "proxy_trusted: \"%s\": %s", config_setting_get_string(b),
				       why);
	}
	la->ntrusted = (size_t)n;
	return 0;
}

/* One element of "listen": "ADDR:PORT", or { address = "ADDR:PORT"; send = { ... };
 * autoindex = BOOL; proxy_protocol = BOOL; proxy_trusted = [ ... ]; }. */
static int load_listen_one(struct loader *ld, const config_setting_t *e, int i,
			   struct listen_addr *la)
{
	static const char *const keys[] = { "address", "send", "autoindex", "proxy_protocol",
		"proxy_trusted", NULL };
	static const char *const snd[] = { "mode", "chunk", "mss", "notsent_lowat", NULL };
	const config_setting_t *a = e, *g;
	char msg[160];
	int rc;

	if (config_setting_is_group(e)) {
		if (check_known(ld, e, keys))
			return -1;
		a = config_setting_get_member(e, "address");
		if (a == NULL)
			return fail_at(ld, e, "listen: element %d needs an address", i + 1);
	}
	if (config_setting_type(a) != CONFIG_TYPE_STRING)
		return fail_at(ld, a, "listen: element %d must be a string or a group", i + 1);
	if (config_parse_listen(config_setting_get_string(a), la, msg, sizeof(msg)))
		return fail_at(ld, a, "listen: %s", msg);
	if (!config_setting_is_group(e))
		return 0;
	if ((g = group(ld, e, "send", snd, &rc)) != NULL && load_send(ld, g, &la->own, &la->own_set))
		return -1;
	if (get_bool(ld, e, "autoindex", &la->own_autoindex))
		return -1;
	la->own_autoindex_set = config_setting_get_member(e, "autoindex") != NULL;
	return rc ? rc : load_listen_proxy(ld, e, la);
}

static int load_listen(struct loader *ld, const config_setting_t *s, struct config *c)
{
	char msg[160];

	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		c->nlisten = 1;
		if (config_parse_listen(config_setting_get_string(s), &c->listen[0], msg, sizeof(msg)))
			return fail_at(ld, s, "listen: %s", msg);
		return 0;
	}
	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return fail_at(ld, s, "listen: must be a string, or a list of strings and groups");
	int n = config_setting_length(s);
	if (n == 0 || n > CONFIG_MAX_LISTEN)
		return fail_at(ld, s, "listen: give 1 to %d addresses", CONFIG_MAX_LISTEN);
	c->nlisten = 0;
	for (int i = 0; i < n; i++) {
		if (load_listen_one(ld, config_setting_get_elem(s, (unsigned)i), i,
				    &c->listen[c->nlisten]))
			return -1;
		c->nlisten++;
	}
	return 0;
}

/* The settings that need more than a type and a range. Each gets the setting (present). */

static int load_send_group(struct loader *ld, const config_setting_t *s, struct config *c)
{
	static const char *const snd[] = { "mode", "chunk", "mss", "notsent_lowat", NULL };

	return check_known(ld, s, snd) || load_send(ld, s, &c->send, NULL) ? -1 : 0;
}

/* autoindex: --demo turns listings on unless the file says */
static int load_autoindex(struct loader *ld, const config_setting_t *s, struct config *c)
{
	c->autoindex.set = true;
	return read_bool(ld, s, &c->autoindex.enabled);
}

/* the kernel caps it at fs.nr_open anyway; 2^30 is far past any sane value */
static int load_nofile(struct loader *ld, const config_setting_t *s, struct config *c)
{
	long long v = 0;

	if (read_int(ld, s, 0, 1 << 30, &v))
		return -1;
	if (v != 0 && v < 64)
		return fail_at(ld, s, "nofile: 0 (raise the soft limit to the hard one) or 64..%d",
			       1 << 30);
	c->limits.nofile = (unsigned long)v;
	return 0;
}

static int load_access_format(struct loader *ld, const config_setting_t *s, struct config *c)
{
	const char *fmt = config_setting_get_string(s);

	if (fmt == NULL || (strcmp(fmt, "json") != 0 && strcmp(fmt, "combined") != 0))
		return fail_at(ld, s, "access_format: must be \"combined\" or \"json\"");
	c->log.access_json = strcmp(fmt, "json") == 0;
	return 0;
}

static int load_log_level(struct loader *ld, const config_setting_t *s, struct config *c)
{
	const char *lvl = config_setting_get_string(s);

	if (lvl == NULL || (c->log.level = log_level_parse(lvl)) < 0)
		return fail_at(ld, s, "level: must be one of debug, info, notice, warn, error, crit, alert");
	return 0;
}

static int load_stats_listen(struct loader *ld, const config_setting_t *s, struct config *c)
{
	const char *l = config_setting_get_string(s);
	char msg[160];

	if (l == NULL)
		return fail_at(ld, s, "listen: must be a string");
	if (config_parse_listen(l, &c->stats.listen, msg, sizeof(msg)))
		return fail_at(ld, s, "listen: %s", msg);
	c->stats.enabled = true;
	return 0;
}

/* ---- the schema: one row per setting ---------------------------------------- */

enum opt_kind {
	OPT_STR,	/* char * (strdup'ed) */
	OPT_BOOL,	/* bool */
	OPT_UINT,	/* unsigned, within [min, max] */
	OPT_SIZE,	/* size_t, within [min, max] */
	OPT_MS,		/* unsigned milliseconds, given in seconds (0.001 .. 86400) */
	OPT_CUSTOM,	/* load() */
};

struct opt {
	const char *group;	/* the group it is in; NULL: top level */
	const char *name;
	enum opt_kind kind;
	size_t off;		/* offsetof(struct config, the field) */
	long long min, max;
	int (*load)(struct loader *ld, const config_setting_t *s, struct config *c);
};

#define ROW(grp, name, kind, field, min, max) \
	{ grp, name, kind, offsetof(struct config, field), min, max, NULL }
#define CUSTOM(grp, name, fn) { grp, name, OPT_CUSTOM, 0, 0, 0, fn }

/* Every setting the file may have. A group's known keys are its rows: a typo is an error
 * with file:line, never a silent default. Defaults are config_defaults()'. */
static const struct opt schema[] = {
	CUSTOM(NULL, "listen", load_listen),
	ROW(NULL, "document_root", OPT_STR, document_root, 0, 0),
	ROW(NULL, "index", OPT_STR, index, 0, 0),
	ROW(NULL, "mime_types", OPT_STR, mime_types, 0, 0),
	ROW(NULL, "user", OPT_STR, user, 0, 0),
	ROW(NULL, "group", OPT_STR, group, 0, 0),
	ROW(NULL, "run_as_root", OPT_BOOL, run_as_root, 0, 0),
	ROW(NULL, "gzip_static", OPT_BOOL, gzip_static, 0, 0),
	CUSTOM(NULL, "autoindex", load_autoindex),
	ROW(NULL, "autoindex_hidden", OPT_BOOL, autoindex.hidden, 0, 0),
	ROW(NULL, "autoindex_max_entries", OPT_UINT, autoindex.max_entries, 1,
	    CONFIG_MAX_AUTOINDEX_ENTRIES),
	ROW(NULL, "max_connections", OPT_UINT, max_connections, 1, 1000000),
	CUSTOM(NULL, "send", load_send_group),
	ROW("tls", "certificate", OPT_STR, tls.certificate, 0, 0),
	ROW("tls", "private_key", OPT_STR, tls.private_key, 0, 0),
	ROW("tls", "ciphersuites", OPT_STR, tls.ciphersuites, 0, 0),
	CUSTOM("tls", "sni", load_sni),
	ROW("timeouts", "handshake", OPT_MS, timeouts.handshake, 0, 0),
	ROW("timeouts", "header", OPT_MS, timeouts.header, 0, 0),
	ROW("timeouts", "keepalive", OPT_MS, timeouts.keepalive, 0, 0),
	ROW("timeouts", "send_idle", OPT_MS, timeouts.send_idle, 0, 0),
	ROW("timeouts", "shutdown", OPT_MS, timeouts.shutdown, 0, 0),
	ROW("limits", "request_line", OPT_SIZE, limits.request_line, 64, 1 << 20),
	ROW("limits", "header_bytes", OPT_SIZE, limits.header_bytes, 256, 1 << 20),
	ROW("limits", "headers", OPT_SIZE, limits.headers, 4, 10000),
	ROW("limits", "keepalive_requests", OPT_UINT, limits.keepalive_requests, 1, 1000000000),
	CUSTOM("limits", "nofile", load_nofile),
	ROW("log", "error", OPT_STR, log.error, 0, 0),
	ROW("log", "access", OPT_STR, log.access, 0, 0),
	CUSTOM("log", "access_format", load_access_format),
	CUSTOM("log", "level", load_log_level),
	ROW("stall", "threshold_ms", OPT_UINT, stall.threshold_ms, 100, 3600000),
	ROW("file_cache", "entries", OPT_UINT, file_cache.entries, 0, 1000000),
	ROW("file_cache", "valid", OPT_MS, file_cache.valid_ms, 0, 0),
	CUSTOM("stats", "listen", load_stats_listen),
	ROW("stats", "recent", OPT_UINT, stats.recent, 0, 100000),
};

/* Load one row's setting s (present) into c. */
static int load_opt(struct loader *ld, const struct opt *o, const config_setting_t *s,
		    struct config *c)
{
	void *field = (char *)c + o->off;
	long long v = 0;

	switch (o->kind) {
	case OPT_STR:
		return read_string(ld, s, field);
	case OPT_BOOL:
		return read_bool(ld, s, field);
	case OPT_UINT:
		if (read_int(ld, s, o->min, o->max, &v))
			return -1;
		*(unsigned *)field = (unsigned)v;
		return 0;
	case OPT_SIZE:
		if (read_int(ld, s, o->min, o->max, &v))
			return -1;
		*(size_t *)field = (size_t)v;
		return 0;
	case OPT_MS:
		return read_seconds(ld, s, field);
	case OPT_CUSTOM:
		break;
	}
	return o->load(ld, s, c);
}

/* Is name a key of group (NULL: top level) in the schema, as a setting or a group? */
static bool known(const char *group, const char *name)
{
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(schema); i++) {
		const struct opt *o = &schema[i];
		if (group == NULL && o->group != NULL && strcmp(o->group, name) == 0)
			return true;
		if ((group == NULL) == (o->group == NULL) && (group == NULL || strcmp(group, o->group) == 0) &&
		    strcmp(o->name, name) == 0)
			return true;
	}
	return false;
}

/* Every member of grp (named group; NULL: the root) is in the schema. */
static int check_schema(struct loader *ld, const config_setting_t *grp, const char *group)
{
	int n = config_setting_length(grp);

	if (!config_setting_is_group(grp))
		return fail_at(ld, grp, "%s: must be a group { ... }", config_setting_name(grp));
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
		if (!known(group, config_setting_name(s)))
			return fail_at(ld, s, "unknown setting \"%s\"", config_setting_name(s));
	}
	return 0;
}

static int load_file(struct loader *ld, const config_setting_t *root, struct config *c)
{
	if (check_schema(ld, root, NULL))
		return -1;
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(schema); i++) {
		const struct opt *o = &schema[i];
		const config_setting_t *g = o->group ? config_setting_get_member(root, o->group) : root;
		const config_setting_t *s;

		if (g == NULL)
			continue;
		/* a group's keys are checked once, at its first row */
		if (o->group != NULL && (i == 0 || schema[i - 1].group == NULL ||
					 strcmp(schema[i - 1].group, o->group) != 0) &&
		    check_schema(ld, g, o->group))
			return -1;
		s = config_setting_get_member(g, o->name);
		if (s != NULL && load_opt(ld, o, s, c))
			return -1;
	}
	return 0;
}

/* Replace *dst by a copy of src (NULL: keep *dst). -1: out of memory (*dst is NULL). */
static int set_str(char **dst, const char *src)
{
	if (src == NULL)
		return 0;
	free(*dst);
	*dst = strdup(src);
	return *dst == NULL ? -1 : 0;
}

static int apply_overrides(struct loader *ld, struct config *c, const struct config_overrides *ov)
{
	char msg[160];

	if (ov->nlisten > 0) {
		c->nlisten = 0;
		for (size_t i = 0; i < ov->nlisten; i++) {
			if (config_parse_listen(ov->listen[i], &c->listen[c->nlisten], msg, sizeof(msg)))
				return snprintf(ld->err, ld->errlen, "--listen: %s", msg), -1;
			c->nlisten++;
		}
	}
	if (set_str(&c->document_root, ov->demo && ov->demo_dir ? ov->demo_dir : NULL) ||
	    set_str(&c->document_root, ov->root) || set_str(&c->tls.certificate, ov->cert) ||
	    set_str(&c->tls.private_key, ov->key) ||
	    set_str(&c->tls.ciphersuites, ov->ciphersuites) ||
	    set_str(&c->log.error, ov->error_log) || set_str(&c->log.access, ov->access_log))
		return snprintf(ld->err, ld->errlen, "out of memory"), -1;
	if (ov->log_level != NULL && (c->log.level = log_level_parse(ov->log_level)) < 0)
		return snprintf(ld->err, ld->errlen, "--log-level: unknown level \"%s\"",
				ov->log_level), -1;
	if (ov->send_mode != NULL) {
		int m = send_mode_parse(ov->send_mode);
		if (m < 0)
			return snprintf(ld->err, ld->errlen,
					"--send-mode: must be one of sendfile, splice, write, userspace, auto"), -1;
		c->send.mode = (enum send_mode)m;
		c->cli_send_set |= SEND_SET_MODE;
	}
	if (ov->mss >= 0) {
		if (ov->mss > 65535 || (ov->mss != 0 && ov->mss < 88))
			return snprintf(ld->err, ld->errlen, "--mss: 0 or 88..65535"), -1;
		c->send.mss = (int)ov->mss;
		c->cli_send_set |= SEND_SET_MSS;
	}
	if (ov->notsent_lowat >= 0) {
		if (ov->notsent_lowat > INT_MAX)
			return snprintf(ld->err, ld->errlen, "--notsent-lowat: too large"), -1;
		c->send.notsent_lowat = (int)ov->notsent_lowat;
		c->cli_send_set |= SEND_SET_LOWAT;
	}
	if (ov->send_chunk >= 0) {
		if (ov->send_chunk < 4096 || ov->send_chunk > (64 << 20))
			return snprintf(ld->err, ld->errlen, "--send-chunk: 4096..67108864"), -1;
		c->send.chunk = (size_t)ov->send_chunk;
		c->cli_send_set |= SEND_SET_CHUNK;
	}
	if (ov->stall_threshold_ms >= 0) {
		if (ov->stall_threshold_ms < 100 || ov->stall_threshold_ms > 3600000)
			return snprintf(ld->err, ld->errlen, "--stall-threshold: 100..3600000 ms"), -1;
		c->stall.threshold_ms = (unsigned)ov->stall_threshold_ms;
	}
	if (ov->stats_listen != NULL) {
		if (config_parse_listen(ov->stats_listen, &c->stats.listen, msg, sizeof(msg)))
			return snprintf(ld->err, ld->errlen, "--stats-listen: %s", msg), -1;
		c->stats.enabled = true;
	}
	if (ov->demo) {
		c->demo = true;
		/* a demo shows what it serves; a file that says otherwise is obeyed */
		if (!c->autoindex.set)
			c->autoindex.enabled = true;
		if (c->document_root == NULL && set_str(&c->document_root, "."))
			return snprintf(ld->err, ld->errlen, "out of memory"), -1;
	}
	return 0;
}

/* -1: out of memory (what was set is freed with the config). */
static int set_defaults(struct config *c)
{
	c->refs = 1;
	c->nlisten = 0;
	c->index = strdup("index.html");
	c->mime_types = strdup("/etc/mime.types");
	c->max_connections = 10000;
	c->timeouts.handshake = 10000;
	c->timeouts.header = 15000;
	c->timeouts.keepalive = 60000;
	c->timeouts.send_idle = 60000;
	c->timeouts.shutdown = 10000;
	c->file_cache.entries = 1024;
	c->file_cache.valid_ms = 1000;
	c->limits.request_line = 8192;
	c->limits.header_bytes = 16384;
	c->limits.headers = 100;
	c->limits.keepalive_requests = 1000;
	c->log.level = LOG_LEVEL_NOTICE;
	c->send.mode = SEND_MODE_SENDFILE;
	/* nginx's sendfile_max_chunk: large calls, few syscalls; the socket buffer bounds
	 * what one non-blocking call can take anyway */
	c->send.chunk = 2 * 1024 * 1024;
	c->stall.threshold_ms = 1000;
	c->stats.recent = 64;
	c->autoindex.max_entries = 10000;
	return c->index == NULL || c->mime_types == NULL ? -1 : 0;
}

/* Effective per-listener settings: the global "send", then what the listener's own group
 * sets, except what the command line set (the command line beats the file); the same for
 * "autoindex" (no command-line option). */
static void resolve_send(struct config *c)
{
	for (size_t i = 0; i < c->nlisten; i++) {
		struct listen_addr *la = &c->listen[i];
		unsigned own = la->own_set & ~c->cli_send_set;
		la->send = c->send;
		if (own & SEND_SET_MODE)
			la->send.mode = la->own.mode;
		if (own & SEND_SET_CHUNK)
			la->send.chunk = la->own.chunk;
		if (own & SEND_SET_MSS)
			la->send.mss = la->own.mss;
		if (own & SEND_SET_LOWAT)
			la->send.notsent_lowat = la->own.notsent_lowat;
		la->autoindex = la->own_autoindex_set ? la->own_autoindex : c->autoindex.enabled;
	}
}

static int validate(struct loader *ld, struct config *c)
{
	if (c->nlisten == 0) {
		if (!c->demo)
			return fail_at(ld, NULL, "no \"listen\" address configured"), -1;
		config_parse_listen("127.0.0.1:8443", &c->listen[0], ld->err, ld->errlen);
		c->nlisten = 1;
	}
	resolve_send(c);
	if (c->document_root == NULL)
		return fail_at(ld, NULL, "no \"document_root\" configured");
	if (!c->demo && (c->tls.certificate == NULL || c->tls.private_key == NULL))
		return fail_at(ld, NULL, "tls.certificate and tls.private_key are required (or use --demo)");
	if (c->user != NULL && c->user[0] == '\0')
		return fail_at(ld, NULL, "user: must not be empty");
	if (c->group != NULL && c->user == NULL)
		return fail_at(ld, NULL, "group: needs user (the group is only set when dropping "
			       "privileges to user)");
	if (c->index[0] == '\0' || strchr(c->index, '/') != NULL)
		return fail_at(ld, NULL, "index: must be a plain file name");
	if (c->limits.request_line > c->limits.header_bytes)
		return fail_at(ld, NULL, "limits: request_line must not exceed header_bytes");
	return 0;
}

struct config *config_load(const char *file, const struct config_overrides *ov,
			   char *err, size_t errlen)
{
	struct loader ld = { file, err, errlen };
	struct config *c = calloc(1, sizeof(*c));
	config_t cf;

	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (set_defaults(c) || (file != NULL && set_str(&c->file, file))) {
		snprintf(err, errlen, "out of memory");
		config_unref(c);
		return NULL;
	}
	if (file != NULL) {
		config_init(&cf);
		if (config_read_file(&cf, file) != CONFIG_TRUE) {
			if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
				snprintf(err, errlen, "%s: cannot read: %s", file, strerror(errno));
			else
				snprintf(err, errlen, "%s:%d: %s",
					 config_error_file(&cf) ? config_error_file(&cf) : file,
					 config_error_line(&cf), config_error_text(&cf));
			config_destroy(&cf);
			config_unref(c);
			return NULL;
		}
		int rc = load_file(&ld, config_root_setting(&cf), c);
		config_destroy(&cf);
		if (rc) {
			config_unref(c);
			return NULL;
		}
	}
	if ((ov != NULL && apply_overrides(&ld, c, ov)) || validate(&ld, c)) {
		config_unref(c);
		return NULL;
	}
	return c;
}

struct config *config_ref(struct config *c)
{
	c->refs++;
	return c;
}

void config_unref(struct config *c)
{
	if (c == NULL || --c->refs > 0)
		return;
	free(c->file);
	free(c->document_root);
	free(c->index);
	free(c->mime_types);
	free(c->user);
	free(c->group);
	free(c->tls.certificate);
	free(c->tls.private_key);
	/* every slot, not only the nsni complete ones: an element rejected half-way (its
	 * certificate read, its private_key not a string) holds a copy too */
	for (size_t i = 0; i < CONFIG_MAX_SNI; i++) {
		free(c->tls.sni[i].certificate);
		free(c->tls.sni[i].private_key);
	}
	free(c->tls.ciphersuites);
	free(c->log.error);
	free(c->log.access);
	free(c);
}
