/* config.c — see config.h. libconfig does the parsing; this file checks names, types and
 * ranges, so every mistake is reported with the file and line it is on. */
#include "autoconf.h"
#include "config.h"
#include "log.h"
#include "tlsrec.h"

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
	bool cli;	/* loading a command-line value: its setting is named by the flag */
};

static int fail_at(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail_at(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (ld->cli) {
		n = snprintf(ld->err, ld->errlen, "--");
	} else if (s != NULL && config_setting_source_line(s) > 0) {
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


/* ---- the schema ------------------------------------------------------- */

static int load_send(struct loader *ld, const config_setting_t *g, struct send_settings *ss,
		     unsigned *set);

/* An arm's name goes into label values, log lines and JSON as it is: keep it to
 * [A-Za-z0-9_.-], 1 to CONFIG_ARM_NAME_MAX - 1 characters. */
static bool arm_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= CONFIG_ARM_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' || *s == '-'))
			return false;
	return true;
}

/* One element of experiment.arms: { name = "..."; weight = N; send = { ... }; } into a;
 * arms[0..i) are the ones before it (names must differ). */
static int load_arm(struct loader *ld, const config_setting_t *e, int i,
		    const struct experiment_arm *arms, struct experiment_arm *a)
{
	static const char *const keys[] = { "name", "weight", "send", NULL };
	const config_setting_t *g, *w;
	char *name = NULL;
	long long v = 1;

	if (!config_setting_is_group(e))
		return fail_at(ld, e, "experiment: arm %d must be a group { name = ...; ... }", i + 1);
	if (check_known(ld, e, keys) || get_string(ld, e, "name", &name))
		return -1;
	if (name == NULL)
		return fail_at(ld, e, "experiment: arm %d needs a name", i + 1);
	if (!arm_name_ok(name)) {
		free(name);
		return fail_at(ld, config_setting_get_member(e, "name"), "experiment: arm name: 1 to "
			       "%d of the characters A-Z a-z 0-9 _ . -", CONFIG_ARM_NAME_MAX - 1);
	}
	snprintf(a->name, sizeof(a->name), "%s", name);
	free(name);
	for (int k = 0; k < i; k++)
		if (strcmp(arms[k].name, a->name) == 0)
			return fail_at(ld, config_setting_get_member(e, "name"),
				       "experiment: a second arm named \"%s\"", a->name);
	if ((w = config_setting_get_member(e, "weight")) != NULL &&
	    read_int(ld, w, 1, CONFIG_MAX_ARM_WEIGHT, &v))
		return -1;
	a->weight = (unsigned)v;
	if ((g = config_setting_get_member(e, "send")) == NULL)
		return 0;
	/* TCP_MAXSEG is set on the listening socket and the MSS agreed in the handshake,
	 * before a connection has an arm; on an established socket it would not change
	 * the segments. */
	if (config_setting_get_member(g, "mss") != NULL)
		return fail_at(ld, config_setting_get_member(g, "mss"), "experiment arm \"%s\": mss "
			       "cannot differ per arm (it applies to the listening socket, before "
			       "a connection is assigned); set send.mss on the listener", a->name);
	return load_send(ld, g, &a->send, &a->set);
}

/* experiment = { arms = ( { name; weight; send = { ... }; }, ... ); } (group g, at the top
 * level or in a listener's group) into x. */
static int load_experiment(struct loader *ld, const config_setting_t *g,
			   struct experiment_config *x)
{
	static const char *const keys[] = { "arms", NULL };
	const config_setting_t *arms;
	int n;

	if (check_known(ld, g, keys))
		return -1;
	arms = config_setting_get_member(g, "arms");
	if (arms == NULL)
		return fail_at(ld, g, "experiment: needs arms = ( { name = \"...\"; send = { ... }; "
			       "weight = N; }, ... )");
	if (!config_setting_is_list(arms))
		return fail_at(ld, arms, "experiment: arms must be a list ( { ... }, ... )");
	n = config_setting_length(arms);
	if (n == 0 || n > CONFIG_MAX_ARMS)
		return fail_at(ld, arms, "experiment: give 1 to %d arms", CONFIG_MAX_ARMS);
	for (int i = 0; i < n; i++) {
		if (load_arm(ld, config_setting_get_elem(arms, (unsigned)i), i, x->arm, &x->arm[i]))
			return -1;
	}
	x->narms = (size_t)n;
	return 0;
}

/* tls.sni = ( { certificate = "..."; private_key = "..."; }, ... ): more certificates, each
 * served to clients whose SNI matches one of its names (subjectAltName DNS, else CN). */
static int load_sni(struct loader *ld, const config_setting_t *s, void *field)
{
	struct config *c = field;
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
		"proxy_trusted", "experiment", NULL };
	const config_setting_t *a = e, *g;
	char msg[160];

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
	if ((g = config_setting_get_member(e, "send")) != NULL && load_send(ld, g, &la->own, &la->own_set))
		return -1;
	if (get_bool(ld, e, "autoindex", &la->own_autoindex))
		return -1;
	la->own_autoindex_set = config_setting_get_member(e, "autoindex") != NULL;
	if (load_listen_proxy(ld, e, la))
		return -1;
	g = config_setting_get_member(e, "experiment");
	return g != NULL ? load_experiment(ld, g, &la->experiment) : 0;
}

static int load_listen(struct loader *ld, const config_setting_t *s, void *field)
{
	struct config *c = field;
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

/* The settings that need more than a type and a range. Each gets the setting (present)
 * and the field its row names (the whole config for listen and sni). */

static int load_send_mode(struct loader *ld, const config_setting_t *s, void *field)
{
	const char *mode = config_setting_get_string(s);
	int m = mode ? send_mode_parse(mode) : -1;

	if (m < 0)
		return fail_at(ld, s, "%s: must be one of sendfile, splice, write, userspace, auto",
			       config_setting_name(s));
	*(enum send_mode *)field = (enum send_mode)m;
	return 0;
}

static int load_mss(struct loader *ld, const config_setting_t *s, void *field)
{
	long long v = 0;

	if (read_int(ld, s, 0, 65535, &v))
		return -1;
	if (v != 0 && v < 88)
		return fail_at(ld, s, "%s: 0 (kernel default) or 88..65535", config_setting_name(s));
	*(int *)field = (int)v;
	return 0;
}

/* autoindex: --demo turns listings on unless the file says */
static int load_autoindex(struct loader *ld, const config_setting_t *s, void *field)
{
	struct config *c = field;

	c->autoindex.set = true;
	return read_bool(ld, s, &c->autoindex.enabled);
}

/* the kernel caps it at fs.nr_open anyway; 2^30 is far past any sane value */
static int load_nofile(struct loader *ld, const config_setting_t *s, void *field)
{
	long long v = 0;

	if (read_int(ld, s, 0, 1 << 30, &v))
		return -1;
	if (v != 0 && v < 64)
		return fail_at(ld, s, "%s: 0 (raise the soft limit to the hard one) or 64..%d",
			       config_setting_name(s), 1 << 30);
	*(unsigned long *)field = (unsigned long)v;
	return 0;
}

/* TLS 1.3 suites in OpenSSL's "A:B" syntax, each one the record layer has (tlsrec.h):
 * checked here, not when OpenSSL takes the list, so the error has its file:line, and an
 * empty list (OpenSSL accepts it; then every handshake fails) is refused. */
static int load_ciphersuites(struct loader *ld, const config_setting_t *s, void *field)
{
	const char *list = config_setting_get_string(s);
	char name[64];
	int n = 0;

	if (list == NULL)
		return fail_at(ld, s, "%s: must be a string", config_setting_name(s));
	for (const char *p = list; *p != '\0';) {
		size_t len = strcspn(p, ":");
		if (len >= sizeof(name))
			return fail_at(ld, s, "%s: \"%.40s...\" is not a suite name",
				       config_setting_name(s), p);
		memcpy(name, p, len);
		name[len] = '\0';
		if (len > 0 && !tlsrec_suite_supported(name))
			return fail_at(ld, s, "%s: %s is not supported (ktlsd has TLS_AES_128_GCM_SHA256, "
				       "TLS_AES_256_GCM_SHA384 and TLS_CHACHA20_POLY1305_SHA256)",
				       config_setting_name(s), name);
		n += len > 0;
		p += len + (p[len] == ':');
	}
	if (n == 0)
		return fail_at(ld, s, "%s: names no cipher suite", config_setting_name(s));
	return read_string(ld, s, field);
}

static int load_access_format(struct loader *ld, const config_setting_t *s, void *field)
{
	const char *fmt = config_setting_get_string(s);

	if (fmt == NULL || (strcmp(fmt, "json") != 0 && strcmp(fmt, "combined") != 0))
		return fail_at(ld, s, "%s: must be \"combined\" or \"json\"", config_setting_name(s));
	*(bool *)field = strcmp(fmt, "json") == 0;
	return 0;
}

static int load_log_level(struct loader *ld, const config_setting_t *s, void *field)
{
	const char *lvl = config_setting_get_string(s);
	int level = lvl ? log_level_parse(lvl) : -1;

	if (level < 0)
		return fail_at(ld, s, "%s: must be one of debug, info, notice, warn, error, crit, "
			       "alert", config_setting_name(s));
	*(int *)field = level;
	return 0;
}

static int load_stats_listen(struct loader *ld, const config_setting_t *s, void *field)
{
	struct config *c = field;
	const char *l = config_setting_get_string(s);
	char msg[160];

	if (l == NULL)
		return fail_at(ld, s, "%s: must be a string", config_setting_name(s));
	if (config_parse_listen(l, &c->stats.listen, msg, sizeof(msg)))
		return fail_at(ld, s, "%s: %s", config_setting_name(s), msg);
	c->stats.enabled = true;
	return 0;
}

/* "workers": a number of event loops, 1..CONFIG_MAX_WORKERS, or "auto" (0). */
static int load_workers(struct loader *ld, const config_setting_t *s, void *field)
{
	struct config *c = field;
	long long v = 0;

	c->workers_set = true;
	if (config_setting_type(s) == CONFIG_TYPE_STRING &&
	    strcmp(config_setting_get_string(s), "auto") == 0) {
		c->workers = 0;
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
		return fail_at(ld, s, "%s: must be a number (1..%d) or \"auto\"",
			       config_setting_name(s), CONFIG_MAX_WORKERS);
	if (read_int(ld, s, 1, CONFIG_MAX_WORKERS, &v))
		return -1;
	c->workers = (unsigned)v;
	return 0;
}

static bool workers_differ(const struct config *o, const struct config *n)
{
	return o->workers != n->workers;
}

static int load_experiment_top(struct loader *ld, const config_setting_t *s, void *field)
{
	return load_experiment(ld, s, field);
}

/* What a reload cannot change, for the rows whose comparison is more than one field. */
static bool listen_differs(const struct config *o, const struct config *n)
{
	if (o->nlisten != n->nlisten)
		return true;
	for (size_t i = 0; i < n->nlisten; i++)
		if (o->listen[i].len != n->listen[i].len ||
		    memcmp(&o->listen[i].ss, &n->listen[i].ss, n->listen[i].len) != 0)
			return true;
	return false;
}

static bool stats_listen_differs(const struct config *o, const struct config *n)
{
	return o->stats.enabled != n->stats.enabled ||
	       memcmp(&o->stats.listen.ss, &n->stats.listen.ss, sizeof(n->stats.listen.ss)) != 0;
}

/* ---- the schema: one row per setting ---------------------------------------- */

enum opt_kind {
	OPT_STR,	/* char * (strdup'ed) */
	OPT_BOOL,	/* bool */
	OPT_UINT,	/* unsigned, within [min, max] */
	OPT_INT,	/* int, within [min, max] */
	OPT_SIZE,	/* size_t, within [min, max] */
	OPT_MS,		/* unsigned milliseconds, given in seconds (0.001 .. 86400) */
	OPT_CUSTOM,	/* load() */
};

struct opt {
	const char *group;	/* the group it is in; NULL: top level */
	const char *name;
	enum opt_kind kind;
	size_t off;		/* offsetof(struct config, the field); 0 for the whole config */
	long long min, max;
	int (*load)(struct loader *ld, const config_setting_t *s, void *field);
	const char *cli;	/* its command-line flag (without "--"), NULL if none */
	unsigned send_bit;	/* group "send": its SEND_SET_* bit */
	/* a reload reads it but cannot apply it (restart: a plain field compared by kind;
	 * differs: what decides for the others) */
	bool restart;
	bool (*differs)(const struct config *o, const struct config *n);
};

#define F(field) offsetof(struct config, field)
#define ROW(grp, nm, k, field, lo, hi, ...) \
	{ .group = grp, .name = nm, .kind = k, .off = F(field), .min = lo, .max = hi, __VA_ARGS__ }
#define CUSTOM(grp, nm, fn, offset, ...) \
	{ .group = grp, .name = nm, .kind = OPT_CUSTOM, .off = offset, .load = fn, __VA_ARGS__ }

/* Every setting the file may have, its command-line flag and whether a reload applies
 * it. A group's known keys are its rows: a typo is an error with file:line, never a
 * silent default. Defaults are set_defaults()'. A listener's own "send" group takes the
 * "send" rows too (their fields relative to struct send_settings). */
static const struct opt schema[] = {
	CUSTOM(NULL, "listen", load_listen, 0, .restart = true, .differs = listen_differs),
	ROW(NULL, "document_root", OPT_STR, document_root, 0, 0, .cli = "root"),
	ROW(NULL, "index", OPT_STR, index, 0, 0),
	ROW(NULL, "mime_types", OPT_STR, mime_types, 0, 0),
	ROW(NULL, "user", OPT_STR, user, 0, 0, .restart = true),
	ROW(NULL, "group", OPT_STR, group, 0, 0, .restart = true),
	ROW(NULL, "run_as_root", OPT_BOOL, run_as_root, 0, 0, .restart = true),
	ROW(NULL, "gzip_static", OPT_BOOL, gzip_static, 0, 0),
	CUSTOM(NULL, "autoindex", load_autoindex, 0),
	ROW(NULL, "autoindex_hidden", OPT_BOOL, autoindex.hidden, 0, 0),
	ROW(NULL, "autoindex_max_entries", OPT_UINT, autoindex.max_entries, 1,
	    CONFIG_MAX_AUTOINDEX_ENTRIES),
	ROW(NULL, "max_connections", OPT_UINT, max_connections, 1, 1000000),
	CUSTOM(NULL, "workers", load_workers, 0, .cli = "workers", .restart = true,
	       .differs = workers_differ),
	ROW(NULL, "worker_cpu_affinity", OPT_BOOL, worker_cpu_affinity, 0, 0, .restart = true),
	CUSTOM(NULL, "experiment", load_experiment_top, F(experiment)),
	CUSTOM("send", "mode", load_send_mode, F(send.mode), .cli = "send-mode",
	       .send_bit = SEND_SET_MODE),
	ROW("send", "chunk", OPT_SIZE, send.chunk, 4096, 64 << 20, .cli = "send-chunk",
	    .send_bit = SEND_SET_CHUNK),
	CUSTOM("send", "mss", load_mss, F(send.mss), .cli = "mss", .send_bit = SEND_SET_MSS),
	ROW("send", "notsent_lowat", OPT_INT, send.notsent_lowat, 0, INT_MAX,
	    .cli = "notsent-lowat", .send_bit = SEND_SET_LOWAT),
	ROW("tls", "certificate", OPT_STR, tls.certificate, 0, 0, .cli = "cert"),
	ROW("tls", "private_key", OPT_STR, tls.private_key, 0, 0, .cli = "key"),
	CUSTOM("tls", "ciphersuites", load_ciphersuites, F(tls.ciphersuites), .cli = "ciphersuites"),
	CUSTOM("tls", "sni", load_sni, 0),
	ROW("timeouts", "handshake", OPT_MS, timeouts.handshake, 0, 0),
	ROW("timeouts", "header", OPT_MS, timeouts.header, 0, 0),
	ROW("timeouts", "keepalive", OPT_MS, timeouts.keepalive, 0, 0),
	ROW("timeouts", "send_idle", OPT_MS, timeouts.send_idle, 0, 0),
	ROW("timeouts", "shutdown", OPT_MS, timeouts.shutdown, 0, 0),
	ROW("limits", "request_line", OPT_SIZE, limits.request_line, 64, 1 << 20),
	ROW("limits", "header_bytes", OPT_SIZE, limits.header_bytes, 256, 1 << 20),
	ROW("limits", "headers", OPT_SIZE, limits.headers, 4, 10000),
	ROW("limits", "keepalive_requests", OPT_UINT, limits.keepalive_requests, 1, 1000000000),
	CUSTOM("limits", "nofile", load_nofile, F(limits.nofile), .restart = true),
	ROW("log", "error", OPT_STR, log.error, 0, 0, .cli = "error-log"),
	ROW("log", "access", OPT_STR, log.access, 0, 0, .cli = "access-log"),
	CUSTOM("log", "access_format", load_access_format, F(log.access_json)),
	CUSTOM("log", "level", load_log_level, F(log.level), .cli = "log-level"),
	ROW("stall", "threshold_ms", OPT_UINT, stall.threshold_ms, 100, 3600000,
	    .cli = "stall-threshold"),
	ROW("file_cache", "entries", OPT_UINT, file_cache.entries, 0, 1000000),
	ROW("file_cache", "valid", OPT_MS, file_cache.valid_ms, 0, 0),
	CUSTOM("stats", "listen", load_stats_listen, 0, .cli = "stats-listen", .restart = true,
	       .differs = stats_listen_differs),
	ROW("stats", "recent", OPT_UINT, stats.recent, 0, 100000, .restart = true),
};

/* Load one row's setting s (present) into field. */
static int load_opt(struct loader *ld, const struct opt *o, const config_setting_t *s,
		    void *field)
{
	long long v = 0;

	switch (o->kind) {
	case OPT_STR:
		return read_string(ld, s, field);
	case OPT_BOOL:
		return read_bool(ld, s, field);
	case OPT_UINT:
	case OPT_INT:
	case OPT_SIZE:
		if (read_int(ld, s, o->min, o->max, &v))
			return -1;
		if (o->kind == OPT_UINT)
			*(unsigned *)field = (unsigned)v;
		else if (o->kind == OPT_INT)
			*(int *)field = (int)v;
		else
			*(size_t *)field = (size_t)v;
		return 0;
	case OPT_MS:
		return read_seconds(ld, s, field);
	case OPT_CUSTOM:
		break;
	}
	return o->load(ld, s, field);
}

/* Is name a key of group (NULL: top level) in the schema, as a setting or a group? */
static bool known(const char *group, const char *name)
{
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(schema); i++) {
		const struct opt *o = &schema[i];
		if (group == NULL && o->group != NULL && strcmp(o->group, name) == 0)
			return true;
		if ((group == NULL) == (o->group == NULL) &&
		    (group == NULL || strcmp(group, o->group) == 0) && strcmp(o->name, name) == 0)
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

/* A listener's own "send" group g into ss, with the "send" rows; *set gets the
 * SEND_SET_* bits of what it names. */
static int load_send(struct loader *ld, const config_setting_t *g, struct send_settings *ss,
		     unsigned *set)
{
	*set = 0;
	if (check_schema(ld, g, "send"))
		return -1;
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(schema); i++) {
		const struct opt *o = &schema[i];
		const config_setting_t *s;
		if (o->group == NULL || strcmp(o->group, "send") != 0 ||
		    (s = config_setting_get_member(g, o->name)) == NULL)
			continue;
		if (load_opt(ld, o, s, (char *)ss + (o->off - F(send))))
			return -1;
		*set |= o->send_bit;
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
		if (s != NULL && load_opt(ld, o, s, (char *)c + o->off))
			return -1;
	}
	return 0;
}

void config_restart_only_changes(const struct config *o, const struct config *n, char *out,
				 size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(schema); i++) {
		const struct opt *r = &schema[i];
		const void *a = (const char *)o + r->off, *b = (const char *)n + r->off;
		bool changed;
		int k;

		if (!r->restart)
			continue;
		switch (r->kind) {
		case OPT_STR:
			changed = (*(char *const *)a == NULL) != (*(char *const *)b == NULL) ||
				  (*(char *const *)a != NULL &&
				   strcmp(*(char *const *)a, *(char *const *)b) != 0);
			break;
		case OPT_BOOL: changed = *(const bool *)a != *(const bool *)b; break;
		case OPT_UINT:
		case OPT_MS: changed = *(const unsigned *)a != *(const unsigned *)b; break;
		case OPT_INT: changed = *(const int *)a != *(const int *)b; break;
		case OPT_SIZE: changed = *(const size_t *)a != *(const size_t *)b; break;
		case OPT_CUSTOM:
		default:
			changed = r->differs ? r->differs(o, n)
					     : memcmp(a, b, sizeof(unsigned long)) != 0;
			break;
		}
		if (!changed)
			continue;
		k = snprintf(out + used, len - used, "%s%s%s%s", used ? ", " : "",
			     r->group ? r->group : "", r->group ? "." : "", r->name);
		if (k < 0 || (size_t)k >= len - used)
			break;
		used += (size_t)k;
	}
}

int config_overrides_add(struct config_overrides *ov, const char *flag, const char *value,
			 char *err, size_t errlen)
{
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(schema); i++) {
		if (schema[i].cli == NULL || strcmp(schema[i].cli, flag) != 0)
			continue;
		if (ov->nset == CONFIG_MAX_OVERRIDES) {
			snprintf(err, errlen, "--%s: at most %d settings on the command line", flag,
				 CONFIG_MAX_OVERRIDES);
			return -1;
		}
		ov->set[ov->nset].flag = schema[i].cli;
		ov->set[ov->nset].value = value;
		ov->nset++;
		return 0;
	}
	snprintf(err, errlen, "--%s: no setting has this flag", flag);
	return -1;
}

/* A command-line value as a setting of a scratch libconfig tree, named by its flag, so
 * that it is loaded and checked by its row like the file's: an integer or a decimal
 * number when it reads as one (the row decides whether that type is right), else a
 * string. NULL: out of memory. */
static config_setting_t *cli_setting(config_t *tmp, const char *flag, const char *value)
{
	config_setting_t *s;
	char *end;
	long long i;
	double d;

	errno = 0;
	i = strtoll(value, &end, 10);
	if (*value != '\0' && *end == '\0' && errno == 0) {
		s = config_setting_add(config_root_setting(tmp), flag, CONFIG_TYPE_INT64);
		return s && config_setting_set_int64(s, i) ? s : NULL;
	}
	d = strtod(value, &end);
	if (*value != '\0' && *end == '\0' && errno == 0) {
		s = config_setting_add(config_root_setting(tmp), flag, CONFIG_TYPE_FLOAT);
		return s && config_setting_set_float(s, d) ? s : NULL;
	}
	s = config_setting_add(config_root_setting(tmp), flag, CONFIG_TYPE_STRING);
	return s && config_setting_set_string(s, value) ? s : NULL;
}

/* The command line's settings, through their schema rows, over what the file said. */
static int apply_cli_settings(struct loader *ld, struct config *c,
			      const struct config_overrides *ov)
{
	bool cert = false, key = false;
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < ov->nset; i++) {
		const struct opt *o = NULL;
		config_t tmp;
		config_setting_t *s;

		for (size_t k = 0; o == NULL && k < KTLSD_ARRAY_LEN(schema); k++)
			if (schema[k].cli != NULL && strcmp(schema[k].cli, ov->set[i].flag) == 0)
				o = &schema[k];
		if (o == NULL)
			return snprintf(ld->err, ld->errlen, "--%s: unknown", ov->set[i].flag), -1;
		config_init(&tmp);
		s = cli_setting(&tmp, o->cli, ov->set[i].value);
		ld->cli = true;
		rc = s == NULL ? (snprintf(ld->err, ld->errlen, "out of memory"), -1)
			       : load_opt(ld, o, s, (char *)c + o->off);
		ld->cli = false;
		config_destroy(&tmp);
		c->cli_send_set |= o->send_bit;
		cert = cert || o->off == F(tls.certificate);
		key = key || o->off == F(tls.private_key);
	}
	if (rc == 0 && cert != key)
		return snprintf(ld->err, ld->errlen, "--cert and --key go together"), -1;
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
	if (set_str(&c->document_root, ov->demo && ov->demo_dir ? ov->demo_dir : NULL))
		return snprintf(ld->err, ld->errlen, "out of memory"), -1;
	if (apply_cli_settings(ld, c, ov))
		return -1;
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
	struct loader ld = { .file = file, .err = err, .errlen = errlen };
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
