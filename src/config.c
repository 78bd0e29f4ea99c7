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

static int get_string(struct loader *ld, const config_setting_t *grp, const char *name,
		      char **out)
{
	const config_setting_t *s = config_setting_get_member(grp, name);

	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail_at(ld, s, "%s: must be a string", config_setting_name(s));
	free(*out);
	*out = strdup(config_setting_get_string(s));
	if (*out == NULL)
		return fail_at(ld, s, "%s: out of memory", config_setting_name(s));
	return 0;
}

static int get_bool(struct loader *ld, const config_setting_t *grp, const char *name, bool *out)
{
	const config_setting_t *s = config_setting_get_member(grp, name);

	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return fail_at(ld, s, "%s: must be true or false", name);
	*out = config_setting_get_bool(s) != 0;
	return 0;
}

/* A non-negative integer within [min, max]. */
static int get_uint(struct loader *ld, const config_setting_t *grp, const char *name,
		    long long min, long long max, long long *out)
{
	const config_setting_t *s = config_setting_get_member(grp, name);
	long long v;

	if (s == NULL)
		return 0;
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
static int get_seconds(struct loader *ld, const config_setting_t *grp, const char *name,
		       unsigned *ms)
{
	const config_setting_t *s = config_setting_get_member(grp, name);
	double v;

	if (s == NULL)
		return 0;
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
static int load_sni(struct loader *ld, const config_setting_t *tls, struct config *c)
{
	static const char *const keys[] = { "certificate", "private_key", NULL };
	const config_setting_t *s = config_setting_get_member(tls, "sni");
	int n;

	if (s == NULL)
		return 0;
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

static int load_listen(struct loader *ld, const config_setting_t *root, struct config *c)
{
	const config_setting_t *s = config_setting_get_member(root, "listen");
	char msg[160];

	if (s == NULL)
		return 0;
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

/* "workers": a number of event loops, 1..CONFIG_MAX_WORKERS, or "auto". */
static int load_workers(struct loader *ld, const config_setting_t *root, struct config *c)
{
	const config_setting_t *s = config_setting_get_member(root, "workers");
	long long v = 0;

	if (s == NULL)
		return 0;
	c->workers_set = true;
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		if (strcmp(config_setting_get_string(s), "auto") != 0)
			return fail_at(ld, s, "workers: must be a number (1..%d) or \"auto\"",
				       CONFIG_MAX_WORKERS);
		c->workers = 0;
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
		return fail_at(ld, s, "workers: must be a number (1..%d) or \"auto\"",
			       CONFIG_MAX_WORKERS);
	if (get_uint(ld, root, "workers", 1, CONFIG_MAX_WORKERS, &v))
		return -1;
	c->workers = (unsigned)v;
	return 0;
}

static int load_file(struct loader *ld, const config_setting_t *root, struct config *c)
{
	static const char *const top[] = { "listen", "document_root", "index", "mime_types", "user",
		"group", "run_as_root", "max_connections", "tls", "timeouts", "limits", "log", "send",
		"stall", "stats", "file_cache", "gzip_static", "autoindex", "autoindex_hidden",
		"autoindex_max_entries", "workers", "worker_cpu_affinity", NULL };
	static const char *const fch[] = { "entries", "valid", NULL };
	static const char *const stl[] = { "threshold_ms", NULL };
	static const char *const sts[] = { "listen", "recent", NULL };
	static const char *const tls[] = { "certificate", "private_key", "ciphersuites", "sni", NULL };
	static const char *const tmo[] = { "handshake", "header", "keepalive", "send_idle",
		"shutdown", NULL };
	static const char *const lim[] = { "request_line", "header_bytes", "headers",
		"keepalive_requests", "nofile", NULL };
	static const char *const lg[] = { "error", "access", "level", "access_format", NULL };
	static const char *const snd[] = { "mode", "chunk", "mss", "notsent_lowat", NULL };
	const config_setting_t *g;
	long long v;
	int rc = 0;

	if (check_known(ld, root, top) || load_listen(ld, root, c) ||
	    get_string(ld, root, "document_root", &c->document_root) ||
	    get_string(ld, root, "index", &c->index) ||
	    get_string(ld, root, "mime_types", &c->mime_types) ||
	    get_string(ld, root, "user", &c->user) || get_string(ld, root, "group", &c->group) ||
	    get_bool(ld, root, "run_as_root", &c->run_as_root) ||
	    get_bool(ld, root, "gzip_static", &c->gzip_static) ||
	    get_bool(ld, root, "autoindex", &c->autoindex.enabled) ||
	    get_bool(ld, root, "autoindex_hidden", &c->autoindex.hidden))
		return -1;
	c->autoindex.set = config_setting_get_member(root, "autoindex") != NULL;
	v = c->autoindex.max_entries;
	if (get_uint(ld, root, "autoindex_max_entries", 1, CONFIG_MAX_AUTOINDEX_ENTRIES, &v))
		return -1;
	c->autoindex.max_entries = (unsigned)v;
	v = c->max_connections;
	if (get_uint(ld, root, "max_connections", 1, 1000000, &v))
		return -1;
	c->max_connections = (unsigned)v;
	if (load_workers(ld, root, c) ||
	    get_bool(ld, root, "worker_cpu_affinity", &c->worker_cpu_affinity))
		return -1;

	if ((g = group(ld, root, "tls", tls, &rc)) != NULL &&
	    (get_string(ld, g, "certificate", &c->tls.certificate) ||
	     get_string(ld, g, "private_key", &c->tls.private_key) ||
	     get_string(ld, g, "ciphersuites", &c->tls.ciphersuites) || load_sni(ld, g, c)))
		return -1;
	if (rc)
		return -1;

	if ((g = group(ld, root, "timeouts", tmo, &rc)) != NULL &&
	    (get_seconds(ld, g, "handshake", &c->timeouts.handshake) ||
	     get_seconds(ld, g, "header", &c->timeouts.header) ||
	     get_seconds(ld, g, "keepalive", &c->timeouts.keepalive) ||
	     get_seconds(ld, g, "send_idle", &c->timeouts.send_idle) ||
	     get_seconds(ld, g, "shutdown", &c->timeouts.shutdown)))
		return -1;
	if (rc)
		return -1;

	if ((g = group(ld, root, "limits", lim, &rc)) != NULL) {
		struct { const char *n; long long lo, hi; size_t *dst; } sz[] = {
			{ "request_line", 64, 1 << 20, &c->limits.request_line },
			{ "header_bytes", 256, 1 << 20, &c->limits.header_bytes },
			{ "headers", 4, 10000, &c->limits.headers },
		};
		for (size_t i = 0; i < KTLSD_ARRAY_LEN(sz); i++) {
			v = (long long)*sz[i].dst;
			if (get_uint(ld, g, sz[i].n, sz[i].lo, sz[i].hi, &v))
				return -1;
			*sz[i].dst = (size_t)v;
		}
		v = c->limits.keepalive_requests;
		if (get_uint(ld, g, "keepalive_requests", 1, 1000000000, &v))
			return -1;
		c->limits.keepalive_requests = (unsigned)v;
		/* the kernel caps it at fs.nr_open anyway; 2^30 is far past any sane value */
		v = (long long)c->limits.nofile;
		if (get_uint(ld, g, "nofile", 0, 1 << 30, &v))
			return -1;
		if (v != 0 && v < 64)
			return fail_at(ld, config_setting_get_member(g, "nofile"),
				       "nofile: 0 (raise the soft limit to the hard one) or 64..%d",
				       1 << 30);
		c->limits.nofile = (unsigned long)v;
	}
	if (rc)
		return -1;

	if ((g = group(ld, root, "log", lg, &rc)) != NULL) {
		char *lvl = NULL, *fmt = NULL;
		if (get_string(ld, g, "error", &c->log.error) || get_string(ld, g, "access", &c->log.access) ||
		    get_string(ld, g, "access_format", &fmt))
			return -1;
		if (fmt != NULL) {
			bool json = strcmp(fmt, "json") == 0, combined = strcmp(fmt, "combined") == 0;
			free(fmt);
			if (!json && !combined) {
				return fail_at(ld, config_setting_get_member(g, "access_format"),
					       "access_format: must be \"combined\" or \"json\"");
			}
			c->log.access_json = json;
		}
		if (get_string(ld, g, "level", &lvl))
			return -1;
		if (lvl != NULL) {
			c->log.level = log_level_parse(lvl);
			free(lvl);
			if (c->log.level < 0)
				return fail_at(ld, config_setting_get_member(g, "level"),
					       "level: must be one of debug, info, notice, warn, error, crit, alert");
		}
	}
	if (rc)
		return -1;

	if ((g = group(ld, root, "send", snd, &rc)) != NULL && load_send(ld, g, &c->send, NULL))
		return -1;
	if (rc)
		return -1;
	if ((g = group(ld, root, "stall", stl, &rc)) != NULL) {
		v = c->stall.threshold_ms;
		if (get_uint(ld, g, "threshold_ms", 100, 3600000, &v))
			return -1;
		c->stall.threshold_ms = (unsigned)v;
	}
	if (rc)
		return -1;
	if ((g = group(ld, root, "file_cache", fch, &rc)) != NULL) {
		v = c->file_cache.entries;
		if (get_uint(ld, g, "entries", 0, 1000000, &v) ||
		    get_seconds(ld, g, "valid", &c->file_cache.valid_ms))
			return -1;
		c->file_cache.entries = (unsigned)v;
	}
	if (rc)
		return -1;
	if ((g = group(ld, root, "stats", sts, &rc)) != NULL) {
		char *l = NULL;
		char msg[160];
		if (get_string(ld, g, "listen", &l))
			return -1;
		if (l != NULL) {
			int bad = config_parse_listen(l, &c->stats.listen, msg, sizeof(msg));
			free(l);
			if (bad)
				return fail_at(ld, config_setting_get_member(g, "listen"), "listen: %s", msg);
			c->stats.enabled = true;
		}
		v = c->stats.recent;
		if (get_uint(ld, g, "recent", 0, 100000, &v))
			return -1;
		c->stats.recent = (unsigned)v;
	}
	return rc;
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
	if (ov->workers != NULL) {
		char *end;
		long w;
		errno = 0;
		w = strtol(ov->workers, &end, 10);
		if (strcmp(ov->workers, "auto") == 0)
			c->workers = 0;
		else if (*ov->workers == '\0' || *end != '\0' || errno != 0 || w < 1 ||
			 w > CONFIG_MAX_WORKERS)
			return snprintf(ld->err, ld->errlen, "--workers: a number (1..%d) or \"auto\"",
					CONFIG_MAX_WORKERS), -1;
		else
			c->workers = (unsigned)w;
		c->workers_set = true;
	}
	if (ov->demo) {
		c->demo = true;
		/* a demo is one loop unless asked for more: it serves one person trying it */
		if (!c->workers_set)
			c->workers = 1;
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
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void config_unref(struct config *c)
{
	/* acq_rel: the thread that frees sees every other thread's last use */
	if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) > 1)
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
