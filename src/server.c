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
#include <fcntl.h>
#include <sched.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
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

unsigned workers_connections(const struct workers *ws)
{
	unsigned sum = 0;

	for (unsigned i = 0; i < ws->n; i++)
		sum += atomic_load(&ws->w[i]->nconns);
	return sum;
}

void workers_check_limit(struct workers *ws, bool paused)
{
	for (unsigned i = 0; i < ws->n; i++)
		if (atomic_load(&ws->w[i]->paused) == paused)
			event_active(ws->w[i]->ev_limit, 0, 0);
}

/* max_connections is for the whole process: each worker counts its own connections
 * (nconns, atomic) and compares the sum over all workers with the limit. The worker whose
 * accept reaches the limit pauses its listeners (clients wait in the kernel backlog, like
 * nginx does) and tells the others to check (ev_limit), so they pause too; a close
 * anywhere below the limit wakes the paused ones the same way. Pausing announces itself
 * (paused, paused_workers) before it checks the sum again, and a close lowers the sum
 * before it looks for paused workers: with sequentially consistent atomics one of the
 * two sees the other, so no worker stays paused below the limit. Workers accepting in
 * the same instant, before they hear of the limit, can pass it by at most workers - 1. */
static void pause_accepting(struct server *srv, unsigned max)
{
	listeners_enable(srv, false);
	if (!atomic_exchange(&srv->paused, true)) {
		atomic_fetch_add(&srv->ws->paused_workers, 1);
		log_msg(LOG_LEVEL_WARN, "max_connections (%u) reached; pausing accept%s", max,
			srv->ws->n > 1 ? " on this worker" : "");
	}
	if (workers_connections(srv->ws) < max)
		workers_check_limit(srv->ws, true);
}

static void pause_at_limit(struct server *srv)
{
	unsigned max = srv->site->cfg->max_connections;

	if (workers_connections(srv->ws) < max)
		return;
	pause_accepting(srv, max);
	workers_check_limit(srv->ws, false);
}

/* ev_limit: another worker reached the limit, or closed a connection below it. */
static void on_limit(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	unsigned max = srv->site->cfg->max_connections;

	(void)fd;
	(void)what;
	if (srv->stopping)
		return;
	if (workers_connections(srv->ws) >= max) {
		pause_accepting(srv, max);
		return;
	}
	if (!atomic_exchange(&srv->paused, false))
		return;
	atomic_fetch_sub(&srv->ws->paused_workers, 1);
	listeners_enable(srv, true);
}

/* A connection was freed (the conn_closed hook). */
static void conn_closed(struct server *srv)
{
	unsigned left = atomic_fetch_sub(&srv->nconns, 1) - 1;

	stats_count(CTR_CLOSED, 1);
	if (srv->stopping) {
		if (left == 0)
			event_base_loopexit(srv->base, NULL);
		return;
	}
	if (atomic_load(&srv->ws->paused_workers) > 0 &&
	    workers_connections(srv->ws) < srv->site->cfg->max_connections)
		workers_check_limit(srv->ws, true);
}

/* Out of file descriptors. Without a reserve, the last free fds go to new connections and
 * every connection already held then fails to open its file (503) or splice pipe: the
 * clients being served suffer for the ones arriving. The kernel hands out the lowest free
 * number, so an accepted fd within `reserve` of RLIMIT_NOFILE means at most `reserve` fds
 * are left: such a connection is closed at once (no TLS, no response; like nginx when
 * worker_connections run out) and the reserve stays for the responses in flight. Refusing
 * costs one accept() per client, so there is no busy loop; logged at most once a second. */
#define FD_RESERVE_MIN 8
#define FD_RESERVE_MAX 256

static bool fd_reserve_reached(int fd, unsigned long long *limit)
{
	struct rlimit rl;
	rlim_t reserve;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
		return false;
	reserve = rl.rlim_cur / 8;
	if (reserve < FD_RESERVE_MIN)
		reserve = FD_RESERVE_MIN;
	if (reserve > FD_RESERVE_MAX)
		reserve = FD_RESERVE_MAX;
	*limit = (unsigned long long)rl.rlim_cur;
	return (rlim_t)fd + reserve >= rl.rlim_cur;
}

static void refuse_out_of_fds(int fd, const struct sockaddr *sa, unsigned long long limit)
{
	static _Thread_local time_t last_log;	/* per worker thread, like proxy_reject() */
	static _Thread_local unsigned long long refused;
	char peer[64];
	char buf[512];
	time_t now = time(NULL);

	refused++;
	if (now != last_log) {
		net_format(sa, peer, sizeof(peer), NULL, 0);
		log_msg(LOG_LEVEL_WARN, "out of file descriptors (fd %d, limit %llu): closing new "
			"connections, keeping the rest for responses in flight (%llu refused so far, "
			"last from %s)", fd, limit, refused, peer);
		last_log = now;
	}
	/* drop a ClientHello already here so that the close is a FIN rather than an RST */
	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
	close(fd);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct server *srv = arg;
	unsigned long long limit;
	size_t idx = 0;

	if (srv->stopping) {
		close(fd);
		return;
	}
	while (idx < srv->nlisteners && srv->listeners[idx] != l)
		idx++;
	stats_count(CTR_ACCEPTED, 1);
	if (fd_reserve_reached(fd, &limit)) {
		refuse_out_of_fds(fd, sa, limit);
		/* the cached files are the descriptors that can go: the next client may fit */
		fcache_flush(srv->fcache);
		return;
	}
	if (conn_new(srv, fd, sa, salen, idx < srv->nlisteners ? srv->listener_cfg[idx] : SIZE_MAX)
	    == NULL)
		return;
	pause_at_limit(srv);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd;
	(void)what;
	if (!srv->stopping && !atomic_load(&srv->paused) &&
	    workers_connections(srv->ws) < srv->site->cfg->max_connections)
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

/* Bind and listen on la. reuseport: one of several workers' sockets on the same address
 * (SO_REUSEPORT); port, if not 0, replaces la's (the port the kernel chose for worker 0
 * when la says 0). */
static int bind_one(const struct listen_addr *la, bool reuseport, uint16_t port, char *err,
		    size_t errlen)
{
	int one = 1;
	int fd = socket(la->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_storage ss = la->ss;

	if (fd == -1) {
		snprintf(err, errlen, "listen %s: socket: %s", la->text, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Each worker has a socket of its own on the address, and the kernel spreads new
	 * connections over them by a hash of the 4-tuple (SO_REUSEPORT), rather than all
	 * workers accepting from one shared socket: with a shared socket the worker whose
	 * loop is least busy wins every accept race and takes most connections, while
	 * reuseport spreads them evenly (measured with nginx: `listen ... reuseport` gave
	 * the even split and the throughput). */
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1) {
		snprintf(err, errlen, "listen %s: SO_REUSEPORT: %s", la->text, strerror(errno));
		goto fail;
	}
	if (port != 0) {
		if (ss.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
		else
			((struct sockaddr_in *)&ss)->sin_port = htons(port);
	}
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
	if (bind(fd, (const struct sockaddr *)&ss, la->len) == -1) {
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

/* The port fd is bound to (host order), 0 if unknown. */
static uint16_t bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
		return 0;
	return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
		     ((struct sockaddr_in *)&ss)->sin_port);
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
	if (srv->worker == 0)	/* once per address, not once per worker */
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

	/* systemd passed one socket per address: every worker listens on it (no
	 * SO_REUSEPORT group to spread connections; the workers' accepts race on the
	 * non-blocking socket, and the loser gets EAGAIN). Each worker has its own dup() of
	 * it, so each closes its own descriptor when it stops; the daemon closes the
	 * originals once every worker has its copy. */
	for (int i = 0; i < n; i++) {
		size_t k = match_listen(cfg, &inh[i].ss);
		const struct send_settings *send = k != SIZE_MAX ? &cfg->listen[k].send : &cfg->send;
		char text[64];
		int fd = fcntl(inh[i].fd, F_DUPFD_CLOEXEC, 3);

		if (fd == -1) {
			snprintf(err, errlen, "socket activation: dup: %s", strerror(errno));
			return -1;
		}
		net_local(fd, text, sizeof(text));
		if (srv->worker == 0 && send->mss > 0 &&
		    setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &send->mss, sizeof(send->mss)) == -1)
			log_msg(LOG_LEVEL_WARN, "socket activation: %s: TCP_MAXSEG %d: %s", text,
				send->mss, strerror(errno));
		if (add_listener(srv, fd, k, k != SIZE_MAX ? cfg->listen[k].text : text,
				 err, errlen) == -1)
			return -1;
	}
	if (srv->worker == 0)
		log_msg(LOG_LEVEL_NOTICE, "socket activation: %d listening socket(s) from systemd; "
			"the configured listen addresses are not bound (those matching a socket "
			"lend it their send settings)", n);
	return 0;
}

/* ---- stop, reload: asked by the main thread (daemon.c) ------------------ */

static void stop_now(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd;
	(void)what;
	if (srv->nconns > 0)
		log_msg(LOG_LEVEL_NOTICE, "shutdown timeout: closing %u connection(s)%s",
			(unsigned)srv->nconns, srv->ws->n > 1 ? " of a worker" : "");
	while (!TAILQ_EMPTY(&srv->conns))
		conn_free(TAILQ_FIRST(&srv->conns));
	event_base_loopexit(srv->base, NULL);
}

/* ev_stop: stop accepting, close idle connections, let responses in flight finish
 * within timeouts.shutdown; the loop ends with the last connection. */
static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct timeval tv;
	unsigned ms = srv->site->cfg->timeouts.shutdown;

	(void)fd;
	(void)what;
	if (srv->stopping)
		return;
	srv->stopping = true;
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

/* send.mss is TCP_MAXSEG on the listening sockets (an accepted socket inherits it before
 * its SYN-ACK; set later it changes nothing), so a reload sets each socket's anew, from
 * the entry it now follows; 0 puts back the kernel's default. (A socket from socket
 * activation is shared: each worker sets the same value on it.) */
static void reload_mss(struct server *srv, const struct config *cfg)
{
	for (size_t i = 0; i < srv->nlisteners; i++) {
		size_t k = srv->listener_cfg[i];
		int mss = k < cfg->nlisten ? cfg->listen[k].send.mss : cfg->send.mss;
		int fd = evconnlistener_get_fd(srv->listeners[i]);

		if (setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof(mss)) == -1)
			log_msg(LOG_LEVEL_WARN, "reload: TCP_MAXSEG %d on a listening socket: %s; "
				"new connections keep the old MSS", mss, strerror(errno));
	}
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

	if (fcache_configure(srv->fcache, cfg->file_cache.entries, cfg->file_cache.valid_ms,
			     srv->ws->n) == -1)
		log_msg(LOG_LEVEL_ERROR, "open-file cache: out of memory, running without it");
	ms = fcache_sweep_ms(srv->fcache);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(srv->ev_fcache_sweep, &tv);
}

/* ev_reload: the main thread built a new site (daemon.c) and left it in pending_site.
 * Connections hold a reference to the site they started with, so responses in flight
 * finish under the old settings and certificate; the old site is freed with its last
 * connection. */
static void on_reload(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct site *site, *old = srv->site;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&srv->ws->lock);
	site = srv->pending_site;
	srv->pending_site = NULL;
	pthread_mutex_unlock(&srv->ws->lock);
	if (site == NULL)
		return;
	if (srv->stopping) {
		site_unref(site);
		return;
	}
	remap_listeners(srv, old->cfg, site->cfg);
	reload_mss(srv, site->cfg);
	srv->site = site;
	site_unref(old);
	/* accepting was paused at the old limit: a higher one resumes it now */
	if (atomic_load(&srv->paused))
		event_active(srv->ev_limit, 0, 0);
	fcache_setup(srv);
	srv->notsent_lowat_sysctl = stall_sysctl_notsent_lowat();
}

/* ev_snapshot: copy this worker's live records for the stats endpoint, on this thread
 * (conn_record() asks the kernel about the socket; the list changes under any other
 * thread). The reader waits on the daemon's condition variable. */
static void on_snapshot(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct workers *d = srv->ws;
	unsigned n = srv->nconns, stalled = 0;
	struct conn_record *recs = NULL;
	struct fcache_stats fs;
	struct conn *c;
	size_t k = 0;
	bool want;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&d->lock);
	want = srv->snap.records;
	pthread_mutex_unlock(&d->lock);
	/* the records cost a TCP_INFO call and a copy each (10k connections: 10k calls);
	 * /metrics only counts the stalled ones */
	if (want)
		recs = calloc(n ? n : 1, sizeof(*recs));
	TAILQ_FOREACH(c, &srv->conns, link) {
		stalled += c->stall.in_stall;
		if (recs != NULL && k < n)
			recs[k++] = *conn_record(c);
	}
	fcache_get_stats(srv->fcache, &fs);
	pthread_mutex_lock(&d->lock);
	free(srv->snap.recs);	/* a reader gave up on the last one */
	srv->snap.recs = recs;
	srv->snap.nrecs = k;
	srv->snap.nconns = n;
	srv->snap.stalled = stalled;
	srv->snap.auto_learned_cap = srv->learn.capped;
	srv->snap.file_cache = fs;
	srv->snap.answered = srv->snap.asked;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* ---- life cycle ------------------------------------------------------- */

/* The loop is running: tell the daemon, which announces readiness once all are. */
static void on_up(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&srv->ws->lock);
	srv->ws->up++;
	pthread_cond_broadcast(&srv->ws->cond);
	pthread_mutex_unlock(&srv->ws->lock);
}

/* Pin the calling worker to the worker-th CPU (modulo their number) of the process's
 * affinity mask, so that pinning respects a mask systemd or taskset set. */
static void pin_to_cpu(struct server *srv)
{
	cpu_set_t set, one;
	int n = 0, want;

	if (sched_getaffinity(0, sizeof(set), &set) == -1 || CPU_COUNT(&set) == 0)
		return;
	want = (int)(srv->worker % (unsigned)CPU_COUNT(&set));
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &set) || n++ != want)
			continue;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		if (pthread_setaffinity_np(pthread_self(), sizeof(one), &one) != 0)
			log_msg(LOG_LEVEL_WARN, "worker %u: cannot pin to CPU %d", srv->worker, cpu);
		else
			log_msg(LOG_LEVEL_INFO, "worker %u: pinned to CPU %d", srv->worker, cpu);
		return;
	}
}

static void *worker_main(void *arg)
{
	struct server *srv = arg;
	struct workers *d = srv->ws;
	struct timeval zero = { 0, 0 };
	char name[16];

	/* "ktlsd-w3" in top -H, ps -L, /proc/PID/task/TID/comm */
	snprintf(name, sizeof(name), "ktlsd-w%u", srv->worker);
	pthread_setname_np(pthread_self(), name);
	stats_thread_use(srv->counters);
	if (srv->site->cfg->worker_cpu_affinity)
		pin_to_cpu(srv);
	event_base_once(srv->base, -1, EV_TIMEOUT, on_up, srv, &zero);
	event_base_dispatch(srv->base);
	pthread_mutex_lock(&d->lock);
	d->done++;
	pthread_mutex_unlock(&d->lock);
	event_active(d->ev_worker_done, 0, 0);
	return NULL;
}

int server_start(struct server *srv)
{
	sigset_t sigs, old;
	int e;

	/* The main thread's loop handles the signals: the worker starts with them blocked
	 * (inherited from here, so none can reach it before it runs), and they never
	 * interrupt a worker's system calls. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGQUIT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, &old);
	e = pthread_create(&srv->thread, NULL, worker_main, srv);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		errno = e;
		return -1;
	}
	srv->thread_started = true;
	return 0;
}

void server_join(struct server *srv)
{
	if (srv->thread_started) {
		pthread_join(srv->thread, NULL);
		srv->thread_started = false;
	}
}

int server_listener_fd(const struct server *srv, size_t i)
{
	return i < srv->nlisteners ? evconnlistener_get_fd(srv->listeners[i]) : -1;
}

struct server *server_new(struct workers *d, unsigned worker, struct site *site,
			  const struct server *first, const struct inherited_listener *inh,
			  int ninh, char *err, size_t errlen)
{
	struct server *srv = calloc(1, sizeof(*srv));
	const struct config *cfg = site->cfg;

	if (srv == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->ws = d;
	srv->worker = worker;
	srv->conn_ids = &d->conn_ids;
	srv->site = site_ref(site);
	srv->notsent_lowat_sysctl = stall_sysctl_notsent_lowat();
	TAILQ_INIT(&srv->conns);
	srv->conn_closed = conn_closed;
	srv->base = event_base_new();
	if (srv->base == NULL) {
		snprintf(err, errlen, "event_base_new failed");
		goto fail;
	}
	if (ninh > 0 && use_inherited(srv, inh, ninh, err, errlen) == -1)
		goto fail;
	for (size_t i = 0; ninh == 0 && i < cfg->nlisten; i++) {
		uint16_t port = first != NULL && i < first->nlisteners ?
				bound_port(evconnlistener_get_fd(first->listeners[i])) : 0;
		int fd = bind_one(&cfg->listen[i], d->n > 1, port, err, errlen);
		if (fd == -1 || add_listener(srv, fd, i, cfg->listen[i].text, err, errlen) == -1)
			goto fail;
	}
	srv->ev_stop_timer = evtimer_new(srv->base, stop_now, srv);
	srv->ev_accept_retry = evtimer_new(srv->base, on_accept_retry, srv);
	srv->ev_stop = event_new(srv->base, -1, 0, on_stop, srv);
	srv->ev_reload = event_new(srv->base, -1, 0, on_reload, srv);
	srv->ev_snapshot = event_new(srv->base, -1, 0, on_snapshot, srv);
	srv->ev_limit = event_new(srv->base, -1, 0, on_limit, srv);
	srv->fcache = fcache_new();
	srv->ev_fcache_sweep = event_new(srv->base, -1, EV_PERSIST, on_fcache_sweep, srv);
	srv->counters = stats_block_new();
	if (srv->ev_stop_timer == NULL || srv->ev_accept_retry == NULL || srv->ev_stop == NULL ||
	    srv->ev_reload == NULL || srv->ev_snapshot == NULL || srv->ev_limit == NULL ||
	    srv->fcache == NULL || srv->ev_fcache_sweep == NULL || srv->counters == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	fcache_setup(srv);
	return srv;
fail:
	server_free(srv);
	return NULL;
}

void server_free(struct server *srv)
{
	struct event *evs[7];

	if (srv == NULL)
		return;
	while (!TAILQ_EMPTY(&srv->conns))
		conn_free(TAILQ_FIRST(&srv->conns));
	for (size_t i = 0; i < srv->nlisteners; i++)
		evconnlistener_free(srv->listeners[i]);
	evs[0] = srv->ev_stop_timer;
	evs[1] = srv->ev_accept_retry;
	evs[2] = srv->ev_fcache_sweep;
	evs[3] = srv->ev_stop;
	evs[4] = srv->ev_reload;
	evs[5] = srv->ev_snapshot;
	evs[6] = srv->ev_limit;
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(evs); i++)
		if (evs[i] != NULL)
			event_free(evs[i]);
	fcache_free(srv->fcache);
	if (srv->base != NULL)
		event_base_free(srv->base);
	site_unref(srv->pending_site);
	free(srv->snap.recs);
	site_unref(srv->site);
	free(srv);
}
