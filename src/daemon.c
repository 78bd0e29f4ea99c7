/* daemon.c — see daemon.h. */
#include "autoconf.h"
#include "daemon.h"
#include "activation.h"
#include "admin.h"
#include "conn.h"
#include "file.h"
#include "log.h"
#include "notify.h"
#include "server.h"
#include "site.h"
#include "stats.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/http.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

unsigned daemon_workers_auto(void)
{
	cpu_set_t set;
	int n;

	if (sched_getaffinity(0, sizeof(set), &set) == -1)
		return 1;
	n = CPU_COUNT(&set);
	if (n < 1)
		return 1;
	return n > CONFIG_MAX_WORKERS ? CONFIG_MAX_WORKERS : (unsigned)n;
}

/* ---- reload and stop (main thread) ------------------------------------- */

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


/* SIGHUP. Build a complete new site (configuration, certificate and key, document root,
 * mime table) beside the running one, once, and switch only if all of it is good: each
 * worker then takes it for its new connections (on its own thread, ev_reload). */
static void daemon_reload(struct daemon *d)
{
	char err[512], st[600], later[200];
	const char *file = d->config_file ? d->config_file : "(command line)";
	struct config *cfg;
	struct site *site, *old = d->site;

	if (d->stopping) {
		log_msg(LOG_LEVEL_NOTICE, "SIGHUP while stopping: not reloading");
		return;
	}
	log_msg(LOG_LEVEL_NOTICE, "SIGHUP: reloading %s", file);
	snprintf(st, sizeof(st), "reloading %s", file);
	notify_reloading(st);
	cfg = config_load(d->config_file, d->overrides, err, sizeof(err));
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
	d->site = site;
	pthread_mutex_lock(&d->ws.lock);
	for (unsigned i = 0; i < d->ws.n; i++) {
		struct server *w = d->ws.w[i];
		site_unref(w->pending_site);	/* a reload it has not taken yet */
		w->pending_site = site_ref(site);
	}
	pthread_mutex_unlock(&d->ws.lock);
	for (unsigned i = 0; i < d->ws.n; i++)
		event_active(d->ws.w[i]->ev_reload, 0, 0);
	site_unref(old);
	log_msg(LOG_LEVEL_NOTICE, "reloaded %s: new connections use the new configuration and "
		"certificate; %u connection(s) in flight finish with the old one", file,
		workers_connections(&d->ws));
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

/* Every worker stops accepting and finishes (on its own thread, ev_stop); the main loop
 * ends when the last one is done (on_worker_done). */
static void daemon_stop(struct daemon *d, int sig)
{
	unsigned ms = d->site->cfg->timeouts.shutdown, n = workers_connections(&d->ws);
	char st[128];

	if (d->stopping)
		return;
	d->stopping = true;
	log_msg(LOG_LEVEL_NOTICE, "%s received: stopping (%u connection(s), up to %u ms)",
		strsignal(sig), n, ms);
	snprintf(st, sizeof(st), "stopping: %u connection(s) to finish, up to %u ms", n, ms);
	notify_stopping(st);
	for (unsigned i = 0; i < d->ws.n; i++)
		event_active(d->ws.w[i]->ev_stop, 0, 0);
}

static void on_worker_done(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	bool all;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&d->ws.lock);
	all = d->ws.done == d->ws.n;
	pthread_mutex_unlock(&d->ws.lock);
	if (all)
		event_base_loopexit(d->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	char err[256];

	(void)what;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
	case SIGQUIT:
		daemon_stop(d, (int)sig);
		break;
	case SIGHUP:
		daemon_reload(d);
		break;
	case SIGUSR1:	/* logrotate: reopen the log files (log.c keeps the workers safe) */
		if (log_open(d->site->cfg->log.error, d->site->cfg->log.access, err, sizeof(err)))
			log_msg(LOG_LEVEL_ERROR, "SIGUSR1: %s", err);
		else
			log_msg(LOG_LEVEL_NOTICE, "SIGUSR1: log files reopened");
		break;
	}
}

/* ---- the stats view ----------------------------------------------------- */

struct view_mem {
	const struct conn_record **live;
	struct conn_record *recs[CONFIG_MAX_WORKERS];	/* each answering worker's copies */
	size_t counts[CONFIG_MAX_WORKERS];
	unsigned nrecs;
};

void daemon_view_free(void *mem)
{
	struct view_mem *m = mem;

	if (m == NULL)
		return;
	for (unsigned i = 0; i < m->nrecs; i++)
		free(m->recs[i]);
	free(m->live);
	free(m);
}

/* Has every worker asked for snapshot number seq answered it? (lock held) */
static bool all_answered(const struct daemon *d, uint64_t seq)
{
	for (unsigned i = 0; i < d->ws.n; i++)
		if (d->ws.w[i]->snap.asked == seq && d->ws.w[i]->snap.answered != seq)
			return false;
	return true;
}

int daemon_view(struct daemon *d, struct stats_view *v, void **mem, bool records,
		unsigned timeout_ms)
{
	struct view_mem *m = calloc(1, sizeof(*m));
	struct timespec deadline;
	size_t total = 0, k = 0;
	uint64_t seq;
	bool learned = false;
	struct fcache_stats fc = { 0 };
	unsigned answered = 0, asked = 0, stalled = 0;

	*mem = m;
	if (m == NULL)
		return -1;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&d->ws.lock);
	seq = ++d->ws.snap_seq;
	/* once workers end (stopping), the ended ones cannot answer: ask none then, rather
	 * than wait the whole bound at every request while the last ones drain */
	if (d->ws.done == 0)
		for (unsigned i = 0; i < d->ws.n; i++, asked++) {
			d->ws.w[i]->snap.asked = seq;
			d->ws.w[i]->snap.records = records;
		}
	pthread_mutex_unlock(&d->ws.lock);
	for (unsigned i = 0; i < asked; i++)
		event_active(d->ws.w[i]->ev_snapshot, 0, 0);
	pthread_mutex_lock(&d->ws.lock);
	while (!all_answered(d, seq))
		if (pthread_cond_timedwait(&d->ws.cond, &d->ws.lock, &deadline) == ETIMEDOUT)
			break;
	for (unsigned i = 0; i < d->ws.n; i++) {
		struct worker_snapshot *s = &d->ws.w[i]->snap;
		if (s->asked != seq || s->answered != seq)
			continue;
		answered++;
		m->recs[m->nrecs] = s->recs;
		m->counts[m->nrecs++] = s->recs != NULL ? s->nrecs : 0;
		total += s->recs != NULL ? s->nrecs : 0;
		s->recs = NULL;
		stalled += s->stalled;
		learned = learned || s->auto_learned_cap;
		fc.entries += s->file_cache.entries;
		fc.capacity += s->file_cache.capacity;
		fc.hits += s->file_cache.hits;
		fc.misses += s->file_cache.misses;
		fc.reopened += s->file_cache.reopened;
		fc.evicted += s->file_cache.evicted;
	}
	pthread_mutex_unlock(&d->ws.lock);
	m->live = calloc(total ? total : 1, sizeof(*m->live));
	if (m->live == NULL)
		return -1;
	for (unsigned i = 0; i < m->nrecs; i++)
		for (size_t j = 0; j < m->counts[i]; j++)
			m->live[k++] = &m->recs[i][j];
	*v = (struct stats_view){
		.cfg = d->site->cfg, .nconns = workers_connections(&d->ws), .live = m->live, .nlive = k,
		.auto_learned_cap = learned, .file_cache = fc, .workers = d->ws.n,
		.workers_answered = answered, .nstalled = stalled,
	};
	return 0;
}

/* ---- life cycle ------------------------------------------------------- */

struct daemon *daemon_new(struct site *site, const char *config_file,
			  const struct config_overrides *ov, char *err, size_t errlen)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 };
	struct daemon *d = calloc(1, sizeof(*d));
	const struct config *cfg = site->cfg;
	struct inherited_listener inh[CONFIG_MAX_LISTEN];
	int ninh = 0;
	unsigned n;

	if (d == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&d->ws.lock, NULL);
	pthread_cond_init(&d->ws.cond, NULL);
	d->site = site_ref(site);
	d->config_file = config_file;
	d->overrides = ov;
	n = cfg->workers != 0 ? cfg->workers : daemon_workers_auto();
	d->base = event_base_new();
	d->ws.ev_worker_done = d->base ? event_new(d->base, -1, 0, on_worker_done, d) : NULL;
	if (d->base == NULL || d->ws.ev_worker_done == NULL) {
		snprintf(err, errlen, "event_base_new failed");
		goto fail;
	}
	ninh = activation_listeners(inh, KTLSD_ARRAY_LEN(inh), err, errlen);
	if (ninh < 0)
		goto fail;
	/* nworkers is what bind_one() looks at for SO_REUSEPORT: set it before the first */
	d->ws.n = n;
	for (unsigned i = 0; i < n; i++) {
		d->ws.w[i] = server_new(&d->ws, i, site, i ? d->ws.w[0] : NULL, inh, ninh, err,
					   errlen);
		if (d->ws.w[i] == NULL) {
			d->ws.n = i;
			goto fail;
		}
	}
	for (int i = 0; i < ninh; i++)	/* each worker has its own dup() */
		close(inh[i].fd);
	ninh = 0;
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(sigs); i++) {
		d->ev_signals[i] = evsignal_new(d->base, sigs[i], on_signal, d);
		if (d->ev_signals[i] == NULL || evsignal_add(d->ev_signals[i], NULL) == -1) {
			snprintf(err, errlen, "cannot handle signal %d", sigs[i]);
			goto fail;
		}
	}
	stats_configure(cfg->stats.enabled ? cfg->stats.recent : 0);
	log_msg(LOG_LEVEL_NOTICE, "%u worker(s)%s%s", n, cfg->workers == 0 ? " (auto: the CPUs "
		"this process may use)" : "", cfg->worker_cpu_affinity ? ", each pinned to a CPU" : "");
	log_certificate(site);
	file_warn_if_no_openat2();
	return d;
fail:
	for (int i = 0; i < ninh; i++)
		close(inh[i].fd);
	daemon_free(d);
	return NULL;
}

int daemon_start(struct daemon *d, char *err, size_t errlen)
{
	struct timespec deadline;
	int rc = 0;

	for (unsigned i = 0; i < d->ws.n; i++)
		if (server_start(d->ws.w[i]) == -1) {
			snprintf(err, errlen, "cannot start worker %u: %s", i, strerror(errno));
			return -1;
		}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	pthread_mutex_lock(&d->ws.lock);
	while (d->ws.up < d->ws.n && rc == 0)
		rc = pthread_cond_timedwait(&d->ws.cond, &d->ws.lock, &deadline);
	if (d->ws.up < d->ws.n) {
		snprintf(err, errlen, "only %u of %u workers came up within 10 s", d->ws.up, d->ws.n);
		rc = -1;
	} else {
		rc = 0;
	}
	pthread_mutex_unlock(&d->ws.lock);
	return rc;
}

int daemon_run(struct daemon *d)
{
	event_base_dispatch(d->base);
	for (unsigned i = 0; i < d->ws.n; i++)
		server_join(d->ws.w[i]);
	return d->exit_code;
}

void daemon_free(struct daemon *d)
{
	if (d == NULL)
		return;
	/* workers still running (a start that failed half-way): stop them; an event made
	 * active waits for a loop that has not begun yet, a loopbreak would be lost */
	for (unsigned i = 0; i < d->ws.n; i++)
		if (d->ws.w[i]->thread_started)
			event_active(d->ws.w[i]->ev_stop, 0, 0);
	for (unsigned i = 0; i < d->ws.n; i++)
		server_join(d->ws.w[i]);
	for (unsigned i = 0; i < d->ws.n; i++)
		server_free(d->ws.w[i]);
	stats_free();
	stats_free_blocks();
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(d->ev_signals); i++)
		if (d->ev_signals[i] != NULL) {
			/* libevent gives the signal its default action back, which for SIGTERM
			 * is death: a second SIGTERM while the process only exits (systemd, an
			 * operator) must not turn a clean stop into a kill */
			int sig = event_get_signal(d->ev_signals[i]);
			event_free(d->ev_signals[i]);
			signal(sig, SIG_IGN);
		}
	if (d->ws.ev_worker_done != NULL)
		event_free(d->ws.ev_worker_done);
	if (d->base != NULL)
		event_base_free(d->base);
	site_unref(d->site);
	pthread_cond_destroy(&d->ws.cond);
	pthread_mutex_destroy(&d->ws.lock);
	free(d);
}
