/* stats.c — see stats.h. JSON and Prometheus text are written by hand into evbuffers:
 * the shapes are small and fixed, and every string that comes from outside (peer, reason)
 * goes through json_str()/prom_label() escaping. */
#include "autoconf.h"
#include "stats.h"
#include "experiment.h"
#include "ktls.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- counters: one block per thread, summed when read ----------------- */

/* Each block is written by its own thread only, so an increment is a relaxed load and a
 * relaxed store (no locked instruction, no shared cache line between workers); readers sum
 * the blocks with relaxed loads. A block stays registered until exit, so the sums never
 * go down (Prometheus counters stay monotonic). */
struct counter_block {
	_Atomic uint64_t v[CTR_MAX];
};

/* the main thread's block, and the one of any thread that did not register one */
static struct counter_block main_block;
static struct counter_block *blocks[CONFIG_MAX_WORKERS + 1] = { &main_block };
static _Atomic size_t nblocks = 1;
static pthread_mutex_t blocks_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local struct counter_block *mine;

struct counter_block *stats_block_new(void)
{
	struct counter_block *b;
	size_t n;

	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	pthread_mutex_lock(&blocks_lock);
	n = atomic_load_explicit(&nblocks, memory_order_relaxed);
	if (n == KTLSD_ARRAY_LEN(blocks)) {
		pthread_mutex_unlock(&blocks_lock);
		free(b);
		return NULL;
	}
	blocks[n] = b;
	/* release: a reader that sees the new count sees the pointer */
	atomic_store_explicit(&nblocks, n + 1, memory_order_release);
	pthread_mutex_unlock(&blocks_lock);
	return b;
}

void stats_thread_use(struct counter_block *b)
{
	mine = b;
}

void stats_count(enum counter id, uint64_t n)
{
	struct counter_block *b = mine != NULL ? mine : &main_block;

	atomic_store_explicit(&b->v[id], atomic_load_explicit(&b->v[id], memory_order_relaxed) + n,
			      memory_order_relaxed);
}

uint64_t stats_counter(enum counter id)
{
	size_t n = atomic_load_explicit(&nblocks, memory_order_acquire);
	uint64_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += atomic_load_explicit(&blocks[i]->v[id], memory_order_relaxed);
	return sum;
}

/* All counters at once, so that one view shows one consistent-enough reading. */
static void counters_sum(uint64_t out[CTR_MAX])
{
	for (int i = 0; i < CTR_MAX; i++)
		out[i] = stats_counter((enum counter)i);
}

/* ---- the ring of recent connections: one, behind a mutex --------------- */

/* Workers add to it at every close; a mutex held for one record's copy is cheap next to
 * the close itself, and one ring keeps /stats/recent newest-first across workers. */
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn_record *ring;
static size_t ring_cap, ring_len, ring_next;

static unsigned recent_capacity = 64;

void stats_configure(unsigned recent)
{
	if (recent != recent_capacity)
		stats_free();
	pthread_mutex_lock(&ring_lock);
	recent_capacity = recent;
	pthread_mutex_unlock(&ring_lock);
}

bool stats_keeps_recent(void)
{
	bool keeps;

	pthread_mutex_lock(&ring_lock);
	keeps = recent_capacity > 0;
	pthread_mutex_unlock(&ring_lock);
	return keeps;
}

void stats_remember(const struct conn_record *rec)
{
	pthread_mutex_lock(&ring_lock);
	if (ring == NULL && recent_capacity > 0) {
		ring = calloc(recent_capacity, sizeof(*ring));
		ring_cap = ring ? recent_capacity : 0;
	}
	if (ring_cap == 0) {
		pthread_mutex_unlock(&ring_lock);
		return;
	}
	ring[ring_next] = *rec;
	ring[ring_next].stalled_now = false;
	ring[ring_next].stalled_now_ms = 0;
	ring_next = (ring_next + 1) % ring_cap;
	if (ring_len < ring_cap)
		ring_len++;
	pthread_mutex_unlock(&ring_lock);
}

void stats_free(void)
{
	pthread_mutex_lock(&ring_lock);
	free(ring);
	ring = NULL;
	ring_cap = ring_len = ring_next = 0;
	pthread_mutex_unlock(&ring_lock);
}

void stats_free_blocks(void)
{
	pthread_mutex_lock(&blocks_lock);
	for (size_t i = 1; i < atomic_load(&nblocks); i++)
		free(blocks[i]);
	atomic_store(&nblocks, 1);
	pthread_mutex_unlock(&blocks_lock);
}


/* ---- JSON ------------------------------------------------------------- */

static void json_str(struct evbuffer *o, const char *s)
{
	evbuffer_add(o, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		if (*p == '"' || *p == '\\')
			evbuffer_add_printf(o, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			evbuffer_add_printf(o, "\\u%04x", *p);
		else
			evbuffer_add(o, p, 1);
	}
	evbuffer_add(o, "\"", 1);
}

static void json_record(struct evbuffer *o, const struct conn_record *r, uint64_t now)
{
	uint64_t current_stall_ms = r->end_us ? 0 : r->stalled_now_ms;
	uint64_t end = r->end_us ? r->end_us : now;
	double secs = (double)(end - r->start_us) / 1e6;
	uint64_t bytes = r->bytes_head + r->bytes_body;

	evbuffer_add_printf(o, "{\"id\":%" PRIu64 ",\"worker\":%u,\"peer\":", r->id, r->worker);
	json_str(o, r->peer);
	evbuffer_add_printf(o, ",\"via\":");
	if (r->via[0])
		json_str(o, r->via);
	else
		evbuffer_add_printf(o, "null");
	evbuffer_add_printf(o, ",\"listener\":");
	json_str(o, r->listener);
	evbuffer_add_printf(o, ",\"state\":");
	json_str(o, r->state);
	evbuffer_add_printf(o, ",\"mode\":");
	json_str(o, r->mode);
	evbuffer_add_printf(o, ",\"sender\":");
	json_str(o, r->sender);
	evbuffer_add_printf(o, ",\"switched_from\":");
	if (r->switched_from)
		json_str(o, r->switched_from);
	else
		evbuffer_add_printf(o, "null");
	evbuffer_add_printf(o, ",\"chunk\":%zu,\"tls_tx\":\"%s\",\"offload\":", r->chunk,
			    r->ktls_tx ? "kernel" : "userspace");
	json_str(o, r->offload);
	evbuffer_add_printf(o, ",\"tls_tx_reason\":");
	json_str(o, r->tls_reason);
	evbuffer_add_printf(o, ",\"cipher\":");
	json_str(o, r->cipher);
	evbuffer_add_printf(o,
		",\"snd_mss\":%u,\"requests\":%" PRIu64 ",\"bytes_head\":%" PRIu64
		",\"bytes_body\":%" PRIu64 ",\"duration_s\":%.3f,\"throughput_bps\":%.0f"
		",\"send_calls\":%" PRIu64 ",\"eagain\":%" PRIu64 ",\"longest_call_ms\":%.3f"
		",\"longest_wait_ms\":%.3f,\"stalls\":%u,\"stalled_now_ms\":%" PRIu64
		",\"stall_ms_total\":%" PRIu64 ",\"stall_ms_max\":%" PRIu64 ",\"mitigations\":%u"
		",\"corked_waits\":%" PRIu64 ",\"notsent_lowat\":%" PRId64,
		r->snd_mss, r->requests, r->bytes_head, r->bytes_body, secs,
		secs > 0 ? (double)bytes * 8 / secs : 0.0, r->send_calls, r->eagain,
		(double)r->longest_call_us / 1000, (double)r->longest_wait_us / 1000, r->stalls,
		current_stall_ms, r->stall_ms_total + current_stall_ms,
		current_stall_ms > r->stall_ms_max ? current_stall_ms : r->stall_ms_max,
		r->mitigations, r->corked_waits,
		r->notsent_lowat == UINT32_MAX ? (int64_t)-1 : (int64_t)r->notsent_lowat);
	if (r->arm[0])	/* an arm's name needs no escaping (config.c checks it) */
		evbuffer_add_printf(o, ",\"arm\":\"%s\"", r->arm);
	else
		evbuffer_add_printf(o, ",\"arm\":null");
	if (r->stalls > 0) {
		const struct tcp_snapshot *s = &r->stall_snap;
		evbuffer_add_printf(o, ",\"last_stall\":{\"cause\":\"%s\",\"snd_mss\":%u,"
			"\"notsent_bytes\":%u,\"snd_wnd\":%u,\"unacked\":%u,\"probes\":%u,\"backoff\":%u,"
			"\"rtt_us\":%u,\"snd_cwnd\":%u,\"retransmits\":%u}",
			stall_cause_name(r->last_cause), s->snd_mss, s->notsent, s->snd_wnd, s->unacked,
			s->probes, s->backoff, s->rtt_us, s->snd_cwnd, s->total_retrans);
	}
	evbuffer_add_printf(o, "}");
}

/* The counters of the table, in JSON: "key":value, a family as "key":{"name":value,...}. */
static void json_counters(struct evbuffer *o)
{
	uint64_t counters[CTR_MAX];
	bool first = true;

	counters_sum(counters);
#define ROW(id, key, fam, labels, unit, help)						\
	evbuffer_add_printf(o, "%s\"%s\":%" PRIu64, first ? "" : ",", key, counters[CTR_##id]);	\
	first = false;
#define FAM(id, n, key, fam, label, name, help)						\
	evbuffer_add_printf(o, "%s\"%s\":{", first ? "" : ",", key);				\
	for (int i = 0; i < (n); i++)							\
		evbuffer_add_printf(o, "%s\"%s\":%" PRIu64, i ? "," : "", name(i),		\
				    counters[CTR_##id + i]);					\
	evbuffer_add(o, "}", 1);							\
	first = false;
	KTLSD_COUNTERS(ROW, FAM)
#undef ROW
#undef FAM
}

static void json_totals(const struct stats_view *v, struct evbuffer *o)
{
	const struct fcache_stats *f = &v->file_cache;

	evbuffer_add_printf(o, "\"totals\":{\"connections_open\":%u,", v->nconns);
	json_counters(o);
	evbuffer_add_printf(o, ",\"auto_learned_cap\":%s}", v->auto_learned_cap ? "true" : "false");
	evbuffer_add_printf(o, ",\"file_cache\":{\"entries\":%u,\"capacity\":%u,\"hits\":%"
		PRIu64 ",\"misses\":%" PRIu64 ",\"reopened\":%" PRIu64 ",\"evicted\":%"
		PRIu64 "}", f->entries, f->capacity, f->hits, f->misses, f->reopened, f->evicted);
}

void stats_json(const struct stats_view *v, struct evbuffer *o)
{
	const struct config *cfg = v->cfg;

	evbuffer_add_printf(o, "{\"version\":\"%s\",\"workers\":%u,\"workers_answered\":%u,"
			    "\"ktls_kernel\":{\"available\":%s,\"reason\":", PACKAGE_VERSION, v->workers,
			    v->workers_answered, ktls_kernel_available() ? "true" : "false");
	json_str(o, ktls_kernel_reason());
	evbuffer_add_printf(o, "},\"config\":{\"send_mode\":\"%s\",\"chunk\":%zu,\"mss\":%d,"
			    "\"notsent_lowat\":%d,\"stall_threshold_ms\":%u},",
			    send_mode_name(cfg->send.mode), cfg->send.chunk, cfg->send.mss,
			    cfg->send.notsent_lowat, cfg->stall.threshold_ms);
	evbuffer_add_printf(o, "\"listeners\":[");
	for (size_t i = 0; i < cfg->nlisten; i++) {
		const struct listen_addr *la = &cfg->listen[i];
		evbuffer_add_printf(o, "%s{\"address\":", i ? "," : "");
		json_str(o, la->text);
		evbuffer_add_printf(o, ",\"send_mode\":\"%s\",\"chunk\":%zu,\"mss\":%d,"
				    "\"notsent_lowat\":%d,\"proxy_protocol\":%s,\"proxy_trusted\":[",
				    send_mode_name(la->send.mode), la->send.chunk, la->send.mss,
				    la->send.notsent_lowat, la->proxy ? "true" : "false");
		for (size_t k = 0; k < la->ntrusted; k++) {
			char block[64];
			proxy_cidr_format(&la->trusted[k], block, sizeof(block));
			evbuffer_add_printf(o, "%s\"%s\"", k ? "," : "", block);
		}
		evbuffer_add_printf(o, "]}");
	}
	evbuffer_add_printf(o, "],");
	json_totals(v, o);
	experiment_stats_member(v->cfg, o);
	evbuffer_add_printf(o, ",\"connections\":[");
	for (size_t i = 0; i < v->nlive; i++) {
		if (i)
			evbuffer_add(o, ",", 1);
		json_record(o, v->live[i], stall_now_us());
	}
	evbuffer_add_printf(o, "]}\n");
}

void stats_json_recent(struct evbuffer *o)
{
	pthread_mutex_lock(&ring_lock);
	evbuffer_add_printf(o, "{\"recent\":[");
	for (size_t i = 0; i < ring_len; i++) {
		/* newest first */
		size_t k = (ring_next + ring_cap - 1 - i) % ring_cap;
		if (i)
			evbuffer_add(o, ",", 1);
		json_record(o, &ring[k], ring[k].end_us);
	}
	evbuffer_add_printf(o, "]}\n");
	pthread_mutex_unlock(&ring_lock);
}

/* ---- text ----------------------------------------------------------------- */

/* The counters of the table as "key value" pairs, wrapped; a family on a line of its own. */
static void text_counters(struct evbuffer *o)
{
	uint64_t counters[CTR_MAX];
	int col = 0;

	counters_sum(counters);
#define ROW(id, key, fam, labels, unit, help)						\
	if (col > 72) {									\
		evbuffer_add(o, "\n", 1);						\
		col = 0;								\
	}										\
	col += evbuffer_add_printf(o, "%s%s %" PRIu64, col ? "  " : "", key, counters[CTR_##id]);
#define FAM(id, n, key, fam, label, name, help)						\
	evbuffer_add_printf(o, "%s%s:", col ? "\n" : "", key);				\
	for (int i = 0; i < (n); i++)							\
		evbuffer_add_printf(o, "%s %s %" PRIu64, i ? "," : "", name(i),		\
				    counters[CTR_##id + i]);					\
	evbuffer_add(o, "\n", 1);							\
	col = 0;
	KTLSD_COUNTERS(ROW, FAM)
#undef ROW
#undef FAM
	if (col)
		evbuffer_add(o, "\n", 1);
}

void stats_text(const struct stats_view *v, struct evbuffer *o)
{
	const struct fcache_stats *f = &v->file_cache;
	uint64_t now = stall_now_us();

	evbuffer_add_printf(o, "ktlsd %s — kTLS %s%s%s\n", PACKAGE_VERSION,
			    ktls_kernel_available() ? "available" : "unavailable",
			    ktls_kernel_available() ? "" : ": ",
			    ktls_kernel_available() ? "" : ktls_kernel_reason());
	evbuffer_add_printf(o, "connections %u open%s\n", v->nconns,
			    v->auto_learned_cap ? "; send mode auto starts with its learned lever" : "");
	evbuffer_add_printf(o, "workers %u", v->workers);
	if (v->workers_answered < v->workers)
		evbuffer_add_printf(o, " (%u answered in time: connections shown are theirs)",
				    v->workers_answered);
	evbuffer_add(o, "\n", 1);
	text_counters(o);
	evbuffer_add_printf(o, "file cache %u of %u files; %" PRIu64 " hits, %" PRIu64 " misses\n\n",
			    f->entries, f->capacity, f->hits, f->misses);
	evbuffer_add_printf(o, "%6s %6s %-22s %-12s %-9s %-9s %9s %8s %6s %8s %s\n", "id", "worker",
			    "peer", "state", "sender", "tls_tx", "MiB", "MiB/s", "stalls", "stall_ms",
			    "cause");
	for (size_t i = 0; i < v->nlive; i++) {
		const struct conn_record *r = v->live[i];
		double secs = (double)(now - r->start_us) / 1e6;
		double mib = (double)(r->bytes_head + r->bytes_body) / (1 << 20);
		evbuffer_add_printf(o, "%6" PRIu64 " %6u %-22s %-12s %-9s %-9s %9.1f %8.2f %6u %8" PRIu64
				    " %s%s\n", r->id, r->worker, r->peer, r->state, r->sender,
				    r->ktls_tx ? "kernel" : "userspace", mib, secs > 0 ? mib / secs : 0.0,
				    r->stalls, r->stall_ms_total + r->stalled_now_ms,
				    r->stalls ? stall_cause_name(r->last_cause) : "-",
				    r->stalled_now ? " (stalled now)" : "");
	}
}

/* ---- Prometheus ------------------------------------------------------- */

static void prom_head(struct evbuffer *o, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The counters of the table; rows of one family (consecutive) share its HELP/TYPE. */
static void prom_counters(struct evbuffer *o)
{
	uint64_t counters[CTR_MAX];
	const char *last = "";

	counters_sum(counters);
#define ROW(id, key, fam, labels, unit, help)						\
	if (strcmp(last, fam) != 0)							\
		prom_head(o, fam, "counter", help);					\
	last = fam;									\
	if ((unit) == UNIT_MS)								\
		evbuffer_add_printf(o, "%s%s%s%s %.3f\n", fam, *labels ? "{" : "", labels,	\
				    *labels ? "}" : "", (double)counters[CTR_##id] / 1000);	\
	else										\
		evbuffer_add_printf(o, "%s%s%s%s %" PRIu64 "\n", fam, *labels ? "{" : "",	\
				    labels, *labels ? "}" : "", counters[CTR_##id]);
#define FAM(id, n, key, fam, label, name, help)						\
	prom_head(o, fam, "counter", help);						\
	last = fam;									\
	for (int i = 0; i < (n); i++)							\
		evbuffer_add_printf(o, "%s{%s=\"%s\"} %" PRIu64 "\n", fam, label, name(i),	\
				    counters[CTR_##id + i]);
	KTLSD_COUNTERS(ROW, FAM)
#undef ROW
#undef FAM
}

void stats_prometheus(const struct stats_view *v, struct evbuffer *o)
{
	static const struct { const char *proc, *name, *type; } tls_stats[] = {
		{ "TlsCurrTxSw", "ktlsd_kernel_tls_curr_tx_sw", "gauge" },
		{ "TlsCurrTxDevice", "ktlsd_kernel_tls_curr_tx_device", "gauge" },
		{ "TlsTxSw", "ktlsd_kernel_tls_tx_sw_total", "counter" },
		{ "TlsTxDevice", "ktlsd_kernel_tls_tx_device_total", "counter" },
	};
	prom_head(o, "ktlsd_workers", "gauge", "Event loops (threads) serving connections.");
	evbuffer_add_printf(o, "ktlsd_workers %u\n", v->workers);
	prom_head(o, "ktlsd_connections", "gauge", "Open client connections.");
	evbuffer_add_printf(o, "ktlsd_connections %u\n", v->nconns);
	prom_head(o, "ktlsd_connections_stalled", "gauge", "Connections in a stall right now.");
	evbuffer_add_printf(o, "ktlsd_connections_stalled %u\n", v->nstalled);
	prom_counters(o);
	prom_head(o, "ktlsd_auto_learned_cap", "gauge",
		  "1 while send mode auto starts new connections with its first lever applied.");
	evbuffer_add_printf(o, "ktlsd_auto_learned_cap %d\n", v->auto_learned_cap ? 1 : 0);
	prom_head(o, "ktlsd_file_cache_entries", "gauge", "Open files in the file cache.");
	evbuffer_add_printf(o, "ktlsd_file_cache_entries %u\n", v->file_cache.entries);
	prom_head(o, "ktlsd_file_cache_lookups_total", "counter",
		  "File opens through the cache, by result.");
	evbuffer_add_printf(o, "ktlsd_file_cache_lookups_total{result=\"hit\"} %" PRIu64 "\n"
			    "ktlsd_file_cache_lookups_total{result=\"miss\"} %" PRIu64 "\n",
			    v->file_cache.hits, v->file_cache.misses);
	prom_head(o, "ktlsd_ktls_kernel_available", "gauge", "1 if the kernel has the tls ULP.");
	evbuffer_add_printf(o, "ktlsd_ktls_kernel_available %d\n", ktls_kernel_available() ? 1 : 0);
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(tls_stats); i++) {
		long long val = ktls_stat(tls_stats[i].proc);
		if (val < 0)	/* no /proc/net/tls_stat: kernel without kTLS */
			continue;
		prom_head(o, tls_stats[i].name, tls_stats[i].type, "Kernel-wide, from /proc/net/tls_stat.");
		evbuffer_add_printf(o, "%s %lld\n", tls_stats[i].name, val);
	}
	experiment_prometheus(v->cfg, o);
}
