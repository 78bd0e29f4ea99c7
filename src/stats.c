/* stats.c — see stats.h. JSON and Prometheus text are written by hand into evbuffers:
 * the shapes are small and fixed, and every string that comes from outside (peer, reason)
 * goes through json_str()/prom_label() escaping. */
#include "autoconf.h"
#include "stats.h"
#include "fcache.h"
#include "conn.h"
#include "experiment.h"
#include "ktls.h"
#include "server.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static struct conn_record *ring;
static size_t ring_cap, ring_len, ring_next;

static unsigned recent_capacity = 64;

void stats_configure(unsigned recent)
{
	if (recent != recent_capacity)
		stats_free();
	recent_capacity = recent;
}

bool stats_keeps_recent(void)
{
	return recent_capacity > 0;
}

void stats_remember(const struct conn_record *rec)
{
	if (ring == NULL && recent_capacity > 0) {
		ring = calloc(recent_capacity, sizeof(*ring));
		ring_cap = ring ? recent_capacity : 0;
	}
	if (ring_cap == 0)
		return;
	ring[ring_next] = *rec;
	ring_next = (ring_next + 1) % ring_cap;
	if (ring_len < ring_cap)
		ring_len++;
}

void stats_free(void)
{
	free(ring);
	ring = NULL;
	ring_cap = ring_len = ring_next = 0;
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

static void json_record(struct evbuffer *o, const struct conn_record *r, uint64_t now,
			uint64_t current_stall_ms)
{
	uint64_t end = r->end_us ? r->end_us : now;
	double secs = (double)(end - r->start_us) / 1e6;
	uint64_t bytes = r->bytes_head + r->bytes_body;

	evbuffer_add_printf(o, "{\"id\":%" PRIu64 ",\"peer\":", r->id);
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

static void json_totals(struct server *srv, struct evbuffer *o)
{
	const struct server_counters *n = &srv->n;

	evbuffer_add_printf(o,
		"\"totals\":{\"connections_open\":%u,\"accepted\":%" PRIu64 ",\"closed\":%" PRIu64
		",\"requests\":%" PRIu64 ",\"bytes_sent\":%" PRIu64 ",\"handshakes_failed\":%" PRIu64
		",\"timeouts\":%" PRIu64 ",\"aborted\":%" PRIu64 ",\"ktls_tx\":%" PRIu64
		",\"ktls_fallback\":%" PRIu64 ",\"ktls_disabled\":%" PRIu64
		",\"mitigations\":%" PRIu64
		",\"auto_learned_cap\":%s,\"auto_capped_starts\":%" PRIu64 ",\"stall_ms_total\":%" PRIu64
		",\"corked_waits\":%" PRIu64
		",\"stalls\":{",
		srv->nconns, n->accepted, n->closed, n->requests, n->bytes_sent, n->handshakes_failed,
		n->timeouts, n->aborted, n->ktls_tx, n->ktls_fallback, n->ktls_disabled,
		n->mitigations,
		srv->learn.capped ? "true" : "false", n->auto_capped_starts, n->stall_ms_total,
		n->corked_waits);
	for (int i = 0; i < STALL_CAUSE_MAX; i++)
		evbuffer_add_printf(o, "%s\"%s\":%" PRIu64, i ? "," : "",
				    stall_cause_name((enum stall_cause)i), n->stalls[i]);
	evbuffer_add_printf(o, "},\"bytes_by_sender\":{");
	for (int i = 0; i < SEND_MODE_AUTO; i++)
		evbuffer_add_printf(o, "%s\"%s\":%" PRIu64, i ? "," : "",
				    send_mode_name((enum send_mode)i), n->bytes_by_sender[i]);
	evbuffer_add_printf(o, "},\"proxy_headers\":%" PRIu64 ",\"proxy_local\":%" PRIu64
			    ",\"proxy_rejected\":{", n->proxy_headers, n->proxy_local);
	for (int i = 0; i < PROXY_REJECT_MAX; i++)
		evbuffer_add_printf(o, "%s\"%s\":%" PRIu64, i ? "," : "",
				    proxy_reject_name((enum proxy_reject)i), n->proxy_rejected[i]);
	evbuffer_add_printf(o, "}}");
	{
		struct fcache_stats f;
		fcache_get_stats(srv->fcache, &f);
		evbuffer_add_printf(o, ",\"file_cache\":{\"entries\":%u,\"capacity\":%u,\"hits\":%"
			PRIu64 ",\"misses\":%" PRIu64 ",\"reopened\":%" PRIu64 ",\"evicted\":%"
			PRIu64 "}", f.entries, f.capacity, f.hits, f.misses, f.reopened, f.evicted);
	}
}

void stats_json(struct server *srv, struct evbuffer *o)
{
	uint64_t now = stall_now_us();
	struct conn *c;
	bool first = true;

	evbuffer_add_printf(o, "{\"version\":\"%s\",\"ktls_kernel\":{\"available\":%s,\"reason\":",
			    PACKAGE_VERSION, ktls_kernel_available() ? "true" : "false");
	json_str(o, ktls_kernel_reason());
	evbuffer_add_printf(o, "},\"config\":{\"send_mode\":\"%s\",\"chunk\":%zu,\"mss\":%d,"
			    "\"notsent_lowat\":%d,\"stall_threshold_ms\":%u},",
			    send_mode_name(srv->site->cfg->send.mode), srv->site->cfg->send.chunk,
			    srv->site->cfg->send.mss, srv->site->cfg->send.notsent_lowat,
			    srv->site->cfg->stall.threshold_ms);
	evbuffer_add_printf(o, "\"listeners\":[");
	for (size_t i = 0; i < srv->site->cfg->nlisten; i++) {
		const struct listen_addr *la = &srv->site->cfg->listen[i];
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
	json_totals(srv, o);
	experiment_stats_member(srv, o);
	evbuffer_add_printf(o, ",\"connections\":[");
	TAILQ_FOREACH(c, &srv->conns, link) {
		if (!first)
			evbuffer_add(o, ",", 1);
		first = false;
		json_record(o, conn_record(c), now, stall_current_ms(c));
	}
	evbuffer_add_printf(o, "]}\n");
}

void stats_json_recent(struct evbuffer *o)
{
	evbuffer_add_printf(o, "{\"recent\":[");
	for (size_t i = 0; i < ring_len; i++) {
		/* newest first */
		size_t k = (ring_next + ring_cap - 1 - i) % ring_cap;
		if (i)
			evbuffer_add(o, ",", 1);
		json_record(o, &ring[k], ring[k].end_us, 0);
	}
	evbuffer_add_printf(o, "]}\n");
}

/* ---- text ----------------------------------------------------------------- */

static void text_file_cache(struct evbuffer *o, const struct fcache_stats *f)
{
	evbuffer_add_printf(o, "file cache %u of %u files; %" PRIu64 " hits, %" PRIu64 " misses\n\n",
			    f->entries, f->capacity, f->hits, f->misses);
}

/* "proxy ..." only where PROXY headers are expected or were counted. */
static void text_proxy(struct server *srv, struct evbuffer *o)
{
	const struct server_counters *n = &srv->n;
	bool any = n->proxy_headers > 0;

	for (size_t i = 0; i < srv->site->cfg->nlisten; i++)
		any = any || srv->site->cfg->listen[i].proxy;
	for (int i = 0; i < PROXY_REJECT_MAX; i++)
		any = any || n->proxy_rejected[i] > 0;
	if (!any)
		return;
	evbuffer_add_printf(o, "proxy %" PRIu64 " headers (%" PRIu64 " LOCAL); rejected",
			    n->proxy_headers, n->proxy_local);
	for (int i = 0; i < PROXY_REJECT_MAX; i++)
		evbuffer_add_printf(o, " %s %" PRIu64, proxy_reject_name((enum proxy_reject)i),
				    n->proxy_rejected[i]);
	evbuffer_add_printf(o, "\n");
}

void stats_text(struct server *srv, struct evbuffer *o)
{
	const struct server_counters *n = &srv->n;
	uint64_t now = stall_now_us();
	struct conn *c;

	evbuffer_add_printf(o, "ktlsd %s — kTLS %s%s%s\n", PACKAGE_VERSION,
			    ktls_kernel_available() ? "available" : "unavailable",
			    ktls_kernel_available() ? "" : ": ",
			    ktls_kernel_available() ? "" : ktls_kernel_reason());
	evbuffer_add_printf(o, "connections %u open, %" PRIu64 " accepted; %" PRIu64 " requests; "
			    "%.1f MiB sent; kTLS %" PRIu64 ", fallback %" PRIu64 ", disabled %" PRIu64
			    "\n", srv->nconns, n->accepted, n->requests,
			    (double)n->bytes_sent / (1 << 20), n->ktls_tx, n->ktls_fallback,
			    n->ktls_disabled);
	evbuffer_add_printf(o, "stalls");
	for (int i = 0; i < STALL_CAUSE_MAX; i++)
		evbuffer_add_printf(o, " %s %" PRIu64, stall_cause_name((enum stall_cause)i), n->stalls[i]);
	evbuffer_add_printf(o, "; %.1f s stalled; %" PRIu64 " corked waits; %" PRIu64
			    " mitigations%s\n", (double)n->stall_ms_total / 1000, n->corked_waits,
			    n->mitigations, srv->learn.capped ? " (auto starts with its lever)" : "");
	text_proxy(srv, o);
	{
		struct fcache_stats f;
		fcache_get_stats(srv->fcache, &f);
		text_file_cache(o, &f);
	}
	evbuffer_add_printf(o, "%6s %-22s %-12s %-9s %-9s %9s %8s %6s %8s %s\n", "id", "peer", "state",
			    "sender", "tls_tx", "MiB", "MiB/s", "stalls", "stall_ms", "cause");
	TAILQ_FOREACH(c, &srv->conns, link) {
		const struct conn_record *r = &c->rec;
		double secs = (double)(now - r->start_us) / 1e6;
		double mib = (double)(r->bytes_head + r->bytes_body) / (1 << 20);
		evbuffer_add_printf(o, "%6" PRIu64 " %-22s %-12s %-9s %-9s %9.1f %8.2f %6u %8" PRIu64
				    " %s%s\n", r->id, r->peer, r->state, r->sender,
				    r->ktls_tx ? "kernel" : "userspace", mib, secs > 0 ? mib / secs : 0.0,
				    r->stalls, r->stall_ms_total + stall_current_ms(c),
				    r->stalls ? stall_cause_name(r->last_cause) : "-",
				    stall_current_ms(c) ? " (stalled now)" : "");
	}
}

/* ---- Prometheus ------------------------------------------------------- */

static void prom_head(struct evbuffer *o, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_proxy(const struct server_counters *n, struct evbuffer *o)
{
	prom_head(o, "ktlsd_proxy_headers_total", "counter",
		  "PROXY protocol headers accepted on proxy listeners, by command (local: a "
		  "balancer's health check).");
	evbuffer_add_printf(o, "ktlsd_proxy_headers_total{command=\"proxy\"} %" PRIu64 "\n"
			    "ktlsd_proxy_headers_total{command=\"local\"} %" PRIu64 "\n",
			    n->proxy_headers - n->proxy_local, n->proxy_local);
	prom_head(o, "ktlsd_proxy_rejected_total", "counter",
		  "Connections on proxy listeners closed before TLS, by reason.");
	for (int i = 0; i < PROXY_REJECT_MAX; i++)
		evbuffer_add_printf(o, "ktlsd_proxy_rejected_total{reason=\"%s\"} %" PRIu64 "\n",
				    proxy_reject_name((enum proxy_reject)i), n->proxy_rejected[i]);
}

void stats_prometheus(struct server *srv, struct evbuffer *o)
{
	static const struct { const char *proc, *name, *type; } tls_stats[] = {
		{ "TlsCurrTxSw", "ktlsd_kernel_tls_curr_tx_sw", "gauge" },
		{ "TlsCurrTxDevice", "ktlsd_kernel_tls_curr_tx_device", "gauge" },
		{ "TlsTxSw", "ktlsd_kernel_tls_tx_sw_total", "counter" },
		{ "TlsTxDevice", "ktlsd_kernel_tls_tx_device_total", "counter" },
	};
	const struct server_counters *n = &srv->n;
	uint64_t stalled_now = 0;
	struct conn *c;

	TAILQ_FOREACH(c, &srv->conns, link)
		stalled_now += c->stall.in_stall;
	prom_head(o, "ktlsd_connections", "gauge", "Open client connections.");
	evbuffer_add_printf(o, "ktlsd_connections %u\n", srv->nconns);
	prom_head(o, "ktlsd_connections_stalled", "gauge", "Connections in a stall right now.");
	evbuffer_add_printf(o, "ktlsd_connections_stalled %" PRIu64 "\n", stalled_now);
	prom_head(o, "ktlsd_connections_accepted_total", "counter", "Accepted connections.");
	evbuffer_add_printf(o, "ktlsd_connections_accepted_total %" PRIu64 "\n", n->accepted);
	prom_head(o, "ktlsd_requests_total", "counter", "HTTP requests answered or refused.");
	evbuffer_add_printf(o, "ktlsd_requests_total %" PRIu64 "\n", n->requests);
	prom_head(o, "ktlsd_handshakes_failed_total", "counter", "TLS handshakes that failed.");
	evbuffer_add_printf(o, "ktlsd_handshakes_failed_total %" PRIu64 "\n", n->handshakes_failed);
	prom_head(o, "ktlsd_timeouts_total", "counter", "Connections closed by a state timeout.");
	evbuffer_add_printf(o, "ktlsd_timeouts_total %" PRIu64 "\n", n->timeouts);
	prom_head(o, "ktlsd_responses_aborted_total", "counter",
		  "Responses cut short (client gone, I/O error, file truncated, timeout).");
	evbuffer_add_printf(o, "ktlsd_responses_aborted_total %" PRIu64 "\n", n->aborted);
	prom_proxy(n, o);
	prom_head(o, "ktlsd_bytes_sent_total", "counter",
		  "Response bytes handed to the kernel or OpenSSL, by sender.");
	for (int i = 0; i < SEND_MODE_AUTO; i++)
		evbuffer_add_printf(o, "ktlsd_bytes_sent_total{mode=\"%s\"} %" PRIu64 "\n",
				    send_mode_name((enum send_mode)i), n->bytes_by_sender[i]);
	prom_head(o, "ktlsd_ktls_tx_total", "counter",
		  "Handshakes by where TLS records are encrypted afterwards.");
	evbuffer_add_printf(o, "ktlsd_ktls_tx_total{result=\"kernel\"} %" PRIu64 "\n", n->ktls_tx);
	evbuffer_add_printf(o, "ktlsd_ktls_tx_total{result=\"fallback\"} %" PRIu64 "\n",
			    n->ktls_fallback);
	evbuffer_add_printf(o, "ktlsd_ktls_tx_total{result=\"disabled\"} %" PRIu64 "\n",
			    n->ktls_disabled);
	prom_head(o, "ktlsd_stalls_total", "counter", "Send stalls detected, by guessed cause.");
	for (int i = 0; i < STALL_CAUSE_MAX; i++)
		evbuffer_add_printf(o, "ktlsd_stalls_total{cause=\"%s\"} %" PRIu64 "\n",
				    stall_cause_name((enum stall_cause)i), n->stalls[i]);
	prom_head(o, "ktlsd_stall_seconds_total", "counter", "Time spent in ended stalls.");
	evbuffer_add_printf(o, "ktlsd_stall_seconds_total %.3f\n", (double)n->stall_ms_total / 1000);
	prom_head(o, "ktlsd_mitigations_total", "counter",
		  "Steps taken by send mode auto against a stall or a corked record (raise "
		  "TCP_NOTSENT_LOWAT, one-record calls, switch to write).");
	evbuffer_add_printf(o, "ktlsd_mitigations_total %" PRIu64 "\n", n->mitigations);
	prom_head(o, "ktlsd_corked_waits_total", "counter",
		  "Waits for writability that began with one TLS record corked in the kernel "
		  "and nothing in flight (kTLS).");
	evbuffer_add_printf(o, "ktlsd_corked_waits_total %" PRIu64 "\n", n->corked_waits);
	prom_head(o, "ktlsd_auto_learned_cap", "gauge",
		  "1 while send mode auto starts new connections with its first lever applied.");
	evbuffer_add_printf(o, "ktlsd_auto_learned_cap %d\n", srv->learn.capped ? 1 : 0);
	{
		struct fcache_stats f;
		fcache_get_stats(srv->fcache, &f);
		prom_head(o, "ktlsd_file_cache_entries", "gauge", "Open files in the file cache.");
		evbuffer_add_printf(o, "ktlsd_file_cache_entries %u\n", f.entries);
		prom_head(o, "ktlsd_file_cache_lookups_total", "counter",
			  "File opens through the cache, by result.");
		evbuffer_add_printf(o, "ktlsd_file_cache_lookups_total{result=\"hit\"} %" PRIu64 "\n"
				    "ktlsd_file_cache_lookups_total{result=\"miss\"} %" PRIu64 "\n",
				    f.hits, f.misses);
	}
	prom_head(o, "ktlsd_ktls_kernel_available", "gauge", "1 if the kernel has the tls ULP.");
	evbuffer_add_printf(o, "ktlsd_ktls_kernel_available %d\n", ktls_kernel_available() ? 1 : 0);
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(tls_stats); i++) {
		long long v = ktls_stat(tls_stats[i].proc);
		if (v < 0)	/* no /proc/net/tls_stat: kernel without kTLS */
			continue;
		prom_head(o, tls_stats[i].name, tls_stats[i].type, "Kernel-wide, from /proc/net/tls_stat.");
		evbuffer_add_printf(o, "%s %lld\n", tls_stats[i].name, v);
	}
	experiment_prometheus(srv, o);
}
