/* server.c — see server.h. */
#include "autoconf.h"
#include "server.h"
#include "site.h"
#include "stall.h"
#include "activation.h"
#include "conn.h"
#include "fcache.h"
#include "stats.h"
#include "log.h"
#include "mime.h"
#include "net.h"
#include "notify.h"
#include "tls.h"
#include "file.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- listeners -------------------------------------------------------- */

static void listeners_enable(struct server *srv, bool on)
{
	for (size_t i = 0; i < srv->nlisteners; i++)
		if (on)
			evconnlistener_enable(srv->listeners[i]);
		else
			evconnlistener_disable(srv->listeners[i]);
}

/* A connection was freed (the conn_closed hook). */
static void conn_closed(struct server *srv)
{
	srv->nconns--;
	stats_count(CTR_CLOSED, 1);
	if (srv->stopping) {
		if (srv->nconns == 0)
			event_base_loopexit(srv->base, NULL);
		return;
	}
	if (srv->nconns + 1 == srv->site->cfg->max_connections)
		listeners_enable(srv, true);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct server *srv = arg;
	size_t idx = 0;

	if (srv->stopping) {
		close(fd);
		return;
	}
	while (idx < srv->nlisteners && srv->listeners[idx] != l)
		idx++;
	stats_count(CTR_ACCEPTED, 1);
	if (conn_new(srv, fd, sa, salen, idx < srv->nlisteners ? srv->listener_cfg[idx] : SIZE_MAX)
	    == NULL)
		return;
	if (srv->nconns >= srv->site->cfg->max_connections) {
		/* at the limit: leave new clients in the kernel backlog, like nginx does */
		log_msg(LOG_LEVEL_WARN, "max_connections (%u) reached; pausing accept",
			srv->site->cfg->max_connections);
		listeners_enable(srv, false);
	}
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd;
	(void)what;
	if (!srv->stopping && srv->nconns < srv->site->cfg->max_connections)
		listeners_enable(srv, true);
}

/* accept() failed: out of fds (EMFILE/ENFILE) is the case that matters. Pause accepting
 * for a second instead of spinning on a listener that stays readable. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct server *srv = arg;
	int e = EVUTIL_SOCKET_ERROR();
	struct timeval one = { 1, 0 };

	(void)l;
	log_msg(LOG_LEVEL_ERROR, "accept: %s; pausing accept for 1 s", strerror(e));
	listeners_enable(srv, false);
	evtimer_add(srv->ev_accept_retry, &one);
}

static int bind_one(const struct listen_addr *la, const struct config *cfg, char *err,
		    size_t errlen)
{
	int one = 1;
	int fd = socket(la->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd == -1) {
		snprintf(err, errlen, "listen %s: socket: %s", la->text, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (la->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	/* Set on the listener so every accepted socket inherits it before its SYN-ACK:
	 * the MSS is negotiated in the handshake, setting it later changes nothing. */
	if (la->send.mss > 0 &&
	    setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &la->send.mss, sizeof(la->send.mss)) == -1) {
		snprintf(err, errlen, "listen %s: TCP_MAXSEG %d: %s", la->text, la->send.mss,
			 strerror(errno));
		goto fail;
	}
	if (bind(fd, (const struct sockaddr *)&la->ss, la->len) == -1) {
		snprintf(err, errlen, "listen %s: bind: %s", la->text, strerror(errno));
		goto fail;
	}
	if (listen(fd, 511) == -1) {
		snprintf(err, errlen, "listen %s: listen: %s", la->text, strerror(errno));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/* Say where we listen, with the real port when the configured one was 0 (tests use
 * that to get a free port without races). */
static void log_bound(const char *text, int fd)
{
	char hp[INET6_ADDRSTRLEN + 8];

	net_local(fd, hp, sizeof(hp));
	log_msg(LOG_LEVEL_NOTICE, "listening on %s (bound %s)", text, hp);
}

static int add_listener(struct server *srv, int fd, size_t cfg_index, const char *text,
			char *err, size_t errlen)
{
	struct evconnlistener *l = evconnlistener_new(srv->base, on_accept, srv,
						      LEV_OPT_CLOSE_ON_FREE, 0, fd);

	if (l == NULL) {
		close(fd);
		snprintf(err, errlen, "listen %s: evconnlistener_new failed", text);
		return -1;
	}
	evconnlistener_set_error_cb(l, on_accept_error);
	srv->listeners[srv->nlisteners] = l;
	srv->listener_cfg[srv->nlisteners] = cfg_index;
	srv->nlisteners++;
	log_bound(text, fd);
	return 0;
}

/* The configured listen entry with exactly this address and port, or SIZE_MAX. */
static size_t match_listen(const struct config *cfg, const struct sockaddr_storage *ss)
{
	for (size_t i = 0; i < cfg->nlisten; i++) {
		const struct sockaddr_storage *c = &cfg->listen[i].ss;
		if (c->ss_family != ss->ss_family)
			continue;
		if (ss->ss_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)c, *b = (const void *)ss;
			if (a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr)
				return i;
		} else {
			const struct sockaddr_in6 *a = (const void *)c, *b = (const void *)ss;
			if (a->sin6_port == b->sin6_port &&
			    memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0)
				return i;
		}
	}
	return SIZE_MAX;
}

/* systemd's sockets instead of our own: they decide where we listen; a listen entry of
 * the configuration with the same address only lends its send settings (and MSS). */
static int use_inherited(struct server *srv, const struct inherited_listener *inh, int n,
			 char *err, size_t errlen)
{
	const struct config *cfg = srv->site->cfg;

	for (int i = 0; i < n; i++) {
		size_t k = match_listen(cfg, &inh[i].ss);
		const struct send_settings *send = k != SIZE_MAX ? &cfg->listen[k].send : &cfg->send;
		char text[64];

		net_local(inh[i].fd, text, sizeof(text));
		if (send->mss > 0 &&
		    setsockopt(inh[i].fd, IPPROTO_TCP, TCP_MAXSEG, &send->mss, sizeof(send->mss)) == -1)
			log_msg(LOG_LEVEL_WARN, "socket activation: %s: TCP_MAXSEG %d: %s", text,
				send->mss, strerror(errno));
		if (add_listener(srv, inh[i].fd, k, k != SIZE_MAX ? cfg->listen[k].text : text,
				 err, errlen) == -1) {
			for (int j = i + 1; j < n; j++)
				close(inh[j].fd);
			return -1;
		}
	}
	log_msg(LOG_LEVEL_NOTICE, "socket activation: %d listening socket(s) from systemd; "
		"the configured listen addresses are not bound (those matching a socket lend "
		"it their send settings)", n);
	return 0;
}

/* ---- signals, stop, reload -------------------------------------------- */

static void stop_now(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd;
	(void)what;
	if (srv->nconns > 0)
		log_msg(LOG_LEVEL_NOTICE, "shutdown timeout: closing %u connection(s)", srv->nconns);
	while (!TAILQ_EMPTY(&srv->conns))
		conn_free(TAILQ_FIRST(&srv->conns));
	event_base_loopexit(srv->base, NULL);
}

static void server_stop(struct server *srv, int sig)
{
	struct timeval tv;
	unsigned ms = srv->site->cfg->timeouts.shutdown;
	char st[128];

	if (srv->stopping)
		return;
	srv->stopping = true;
	log_msg(LOG_LEVEL_NOTICE, "%s received: stopping (%u connection(s), up to %u ms)",
		strsignal(sig), srv->nconns, ms);
	snprintf(st, sizeof(st), "stopping: %u connection(s) to finish, up to %u ms", srv->nconns,
		 ms);
	notify_stopping(st);
	for (size_t i = 0; i < srv->nlisteners; i++)
		evconnlistener_free(srv->listeners[i]);
	srv->nlisteners = 0;
	for (struct conn *c = TAILQ_FIRST(&srv->conns), *next; c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		conn_shutdown(c);
	}
	if (srv->nconns == 0) {
		event_base_loopexit(srv->base, NULL);
		return;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(srv->ev_stop_timer, &tv);
}

/* After a reload, which entry of the new configuration each listening socket follows
 * (its send settings but mss, proxy_protocol and proxy_trusted apply to its new
 * connections). An entry at the same place with the same address keeps its place; one
 * that moved is found by its address; a socket the new file no longer names gets
 * SIZE_MAX (the global send settings, no PROXY header) until the restart the reload asks
 * for. Without this, reordering the listen list would hand one socket's PROXY settings
 * to another. */
static void remap_listeners(struct server *srv, const struct config *o, const struct config *n)
{
	for (size_t i = 0; i < srv->nlisteners; i++) {
		size_t k = srv->listener_cfg[i];
		if (k >= o->nlisten)
			continue;
		if (k < n->nlisten && o->listen[k].len == n->listen[k].len &&
		    memcmp(&o->listen[k].ss, &n->listen[k].ss, n->listen[k].len) == 0)
			continue;
		srv->listener_cfg[i] = match_listen(n, &o->listen[k].ss);
	}
}

/* The certificate new handshakes will present, so a reload can be checked in the log. */
static void log_certificate(const struct site *site)
{
	X509 *x = SSL_CTX_get0_certificate(site->ssl_ctx);
	char subject[256] = "?", serial[80] = "?", until[64] = "?";
	BIGNUM *bn;
	BIO *b;

	if (x == NULL)
		return;
	X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	if (bn != NULL) {
		char *hex = BN_bn2hex(bn);
		if (hex != NULL)
			snprintf(serial, sizeof(serial), "%s", hex);
		OPENSSL_free(hex);
		BN_free(bn);
	}
	b = BIO_new(BIO_s_mem());
	if (b != NULL && ASN1_TIME_print(b, X509_get0_notAfter(x)) == 1) {
		int n = BIO_read(b, until, sizeof(until) - 1);
		until[n > 0 ? n : 0] = '\0';
	}
	BIO_free(b);
	log_msg(LOG_LEVEL_NOTICE, "certificate: %s, serial %s, valid until %s%s", subject, serial,
		until, site->cfg->demo ? " (demo, in memory)" : "");
}

static void on_fcache_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd;
	(void)what;
	fcache_sweep(srv->fcache);
}

/* (Re)size the open-file cache for the current site's settings; a reload empties it, as
 * the root or the index file may have changed. */
static void fcache_setup(struct server *srv)
{
	const struct config *cfg = srv->site->cfg;
	unsigned ms;
	struct timeval tv;

	if (fcache_configure(srv->fcache, cfg->file_cache.entries, cfg->file_cache.valid_ms) == -1)
		log_msg(LOG_LEVEL_ERROR, "open-file cache: out of memory, running without it");
	ms = fcache_sweep_ms(srv->fcache);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(srv->ev_fcache_sweep, &tv);
}

/* SIGHUP. Build a complete new site (configuration, certificate and key, document root,
 * mime table) beside the running one; switch only if all of it is good. Connections
 * hold a reference to the site they started with, so responses in flight finish under
 * the old settings and certificate; the old site is freed with its last connection. */
static void server_reload(struct server *srv)
{
	char err[512], st[600], later[160];
	const char *file = srv->config_file ? srv->config_file : "(command line)";
	struct config *cfg;
	struct site *site, *old = srv->site;

	if (srv->stopping) {
		log_msg(LOG_LEVEL_NOTICE, "SIGHUP while stopping: not reloading");
		return;
	}
	log_msg(LOG_LEVEL_NOTICE, "SIGHUP: reloading %s", file);
	snprintf(st, sizeof(st), "reloading %s", file);
	notify_reloading(st);
	cfg = config_load(srv->config_file, srv->overrides, err, sizeof(err));
	if (cfg == NULL)
		goto failed;
	site = site_new(cfg, err, sizeof(err));
	config_unref(cfg);
	if (site == NULL)
		goto failed;
	if (log_open(site->cfg->log.error, site->cfg->log.access, err, sizeof(err)) == -1)
		log_msg(LOG_LEVEL_ERROR, "reload: %s (keeping the old log files)", err);
	log_set_level((enum log_level)site->cfg->log.level);
	config_restart_only_changes(old->cfg, site->cfg, later, sizeof(later));
	remap_listeners(srv, old->cfg, site->cfg);
	/* accepting was paused at the old limit: a higher one resumes it now */
	if (srv->nconns >= old->cfg->max_connections && srv->nconns < site->cfg->max_connections)
		listeners_enable(srv, true);
	srv->site = site;
	site_unref(old);
	fcache_setup(srv);
	srv->notsent_lowat_sysctl = stall_sysctl_notsent_lowat();
	log_msg(LOG_LEVEL_NOTICE, "reloaded %s: new connections use the new configuration and "
		"certificate; %u connection(s) in flight finish with the old one", file, srv->nconns);
	log_certificate(site);
	file_warn_if_no_openat2();
	if (later[0] != '\0')
		log_msg(LOG_LEVEL_WARN, "reload: changed %s: takes effect only after a restart", later);
	snprintf(st, sizeof(st), "serving: reloaded %s%s%s", file, later[0] ? "; restart due for " : "",
		 later);
	notify_ready(st);
	return;
failed:
	log_msg(LOG_LEVEL_ERROR, "reload failed, keeping the running configuration: %s", err);
	snprintf(st, sizeof(st), "serving the old configuration: reload failed: %s", err);
	notify_ready(st);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	char err[256];

	(void)what;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
	case SIGQUIT:
		server_stop(srv, (int)sig);
		break;
	case SIGHUP:
		server_reload(srv);
		break;
	case SIGUSR1:	/* logrotate: reopen the log files */
		if (log_open(srv->site->cfg->log.error, srv->site->cfg->log.access, err, sizeof(err)))
			log_msg(LOG_LEVEL_ERROR, "SIGUSR1: %s", err);
		else
			log_msg(LOG_LEVEL_NOTICE, "SIGUSR1: log files reopened");
		break;
	}
}

/* ---- life cycle ------------------------------------------------------- */

struct server *server_new(struct site *site, char *err, size_t errlen)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 };
	struct server *srv = calloc(1, sizeof(*srv));
	const struct config *cfg = site->cfg;
	struct inherited_listener inh[CONFIG_MAX_LISTEN];
	int ninh;

	if (srv == NULL) {
		site_unref(site);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->site = site;
	srv->notsent_lowat_sysctl = stall_sysctl_notsent_lowat();
	TAILQ_INIT(&srv->conns);
	srv->conn_closed = conn_closed;
	srv->base = event_base_new();
	if (srv->base == NULL) {
		snprintf(err, errlen, "event_base_new failed");
		goto fail;
	}
	ninh = activation_listeners(inh, KTLSD_ARRAY_LEN(inh), err, errlen);
	if (ninh < 0 || (ninh > 0 && use_inherited(srv, inh, ninh, err, errlen) == -1))
		goto fail;
	for (size_t i = 0; ninh == 0 && i < cfg->nlisten; i++) {
		int fd = bind_one(&cfg->listen[i], cfg, err, errlen);
		if (fd == -1 || add_listener(srv, fd, i, cfg->listen[i].text, err, errlen) == -1)
			goto fail;
	}
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(sigs); i++) {
		srv->ev_signals[i] = evsignal_new(srv->base, sigs[i], on_signal, srv);
		evsignal_add(srv->ev_signals[i], NULL);
	}
	srv->ev_stop_timer = evtimer_new(srv->base, stop_now, srv);
	srv->ev_accept_retry = evtimer_new(srv->base, on_accept_retry, srv);
	srv->fcache = fcache_new();
	srv->ev_fcache_sweep = event_new(srv->base, -1, EV_PERSIST, on_fcache_sweep, srv);
	if (srv->fcache == NULL || srv->ev_fcache_sweep == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	fcache_setup(srv);
	stats_configure(cfg->stats.enabled ? cfg->stats.recent : 0);
	log_certificate(site);
	file_warn_if_no_openat2();
	return srv;
fail:
	server_free(srv);
	return NULL;
}

int server_run(struct server *srv)
{
	event_base_dispatch(srv->base);
	return srv->exit_code;
}

void server_free(struct server *srv)
{
	if (srv == NULL)
		return;
	while (!TAILQ_EMPTY(&srv->conns))
		conn_free(TAILQ_FIRST(&srv->conns));
	stats_free();
	for (size_t i = 0; i < srv->nlisteners; i++)
		evconnlistener_free(srv->listeners[i]);
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(srv->ev_signals); i++)
		if (srv->ev_signals[i] != NULL) {
			/* libevent gives the signal its default action back, which for SIGTERM
			 * is death: a second SIGTERM while the process only exits (systemd, an
			 * operator) must not turn a clean stop into a kill */
			int sig = event_get_signal(srv->ev_signals[i]);
			event_free(srv->ev_signals[i]);
			signal(sig, SIG_IGN);
		}
	if (srv->ev_stop_timer != NULL)
		event_free(srv->ev_stop_timer);
	if (srv->ev_accept_retry != NULL)
		event_free(srv->ev_accept_retry);
	if (srv->ev_fcache_sweep != NULL)
		event_free(srv->ev_fcache_sweep);
	fcache_free(srv->fcache);
	if (srv->base != NULL)
		event_base_free(srv->base);
	site_unref(srv->site);
	free(srv);
}
