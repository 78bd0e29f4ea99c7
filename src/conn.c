/* conn.c — see conn.h. */
#include "autoconf.h"
#include "conn.h"
#include "autoindex.h"
#include "autosend.h"
#include "fcache.h"
#include "file.h"
#include "log.h"
#include "mime.h"
#include "net.h"
#include "path.h"
#include "response.h"
#include "send.h"
#include "server.h"
#include "tls.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

/* What a step of the driver asks for next. */
enum step {
	STEP_CONTINUE,	/* state changed or more work possible: run the machine again */
	STEP_WAIT,	/* an event has been armed: return to the loop */
	STEP_CLOSE,	/* free the connection */
};

#define LINGER_MS 2000	/* how long to drain unread input before closing (nginx: 5 s) */
#define PATH_MAX_BYTES 4096

static const char *const state_names[CONN_STATE_MAX] = {
	"proxy_header", "handshake", "read_request", "send_headers", "send_body", "keepalive", "linger",
};

const char *conn_state_name(enum conn_state s)
{
	return s < CONN_STATE_MAX ? state_names[s] : "?";
}

static void arm_timer(struct conn *c, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(c->ev_timer, &tv);
}

static unsigned state_timeout(const struct conn *c, enum conn_state s)
{
	switch (s) {
	case CONN_PROXY_HEADER:	/* a balancer sends it at once: one bound for both */
	case CONN_HANDSHAKE: return c->cfg->timeouts.handshake;
	case CONN_READ_REQUEST: return c->cfg->timeouts.header;
	case CONN_SEND_HEADERS:
	case CONN_SEND_BODY: return c->cfg->timeouts.send_idle;
	case CONN_KEEPALIVE: return c->cfg->timeouts.keepalive;
	default: return LINGER_MS;
	}
}

void conn_set_state(struct conn *c, enum conn_state s)
{
	assert(s < CONN_STATE_MAX);
	log_debug("conn %llu: %s -> %s", (unsigned long long)c->id, state_names[c->state],
		  state_names[s]);
	c->state = s;
	c->rec.state = state_names[s];
	arm_timer(c, state_timeout(c, s));
}

/* Wait until the socket is writable (write) or has new input. The event is registered
 * once, edge-triggered for both directions (as nginx does); re-adding one-shot events
 * cost two epoll_ctl() calls per request, 8 % of a small request's CPU, and more per
 * sendfile() call in the UML kTLS tier. The rule that makes edges safe: a direction is
 * only waited for after its last attempt said EAGAIN (IO_AGAIN), so the kernel will
 * report the next change; edges of the other direction meanwhile are ignored, as every
 * state tries its I/O before it waits. */
static enum step wait_for(struct conn *c, bool write)
{
	c->waiting = write ? EV_WRITE : EV_READ;
	return STEP_WAIT;
}

void conn_kick_write(struct conn *c)
{
	c->waiting = EV_WRITE;
	event_active(c->ev_io, EV_WRITE, 0);
}

/* The detector's reports: counted, and handed to send mode auto where a sender can do
 * something (a corked record; a stall without progress that looks like one). A client
 * that does not read or a congested path are only counted. */
static void on_stall(struct conn *c, enum stall_event ev, enum stall_cause cause, uint64_t ms)
{
	const char *why = NULL;

	switch (ev) {
	case STALL_EV_BEGIN:
		stats_count(CTR_STALLS + cause, 1);
		if (cause == STALL_CORKED_RECORD || cause == STALL_UNKNOWN)
			why = "no progress";
		break;
	case STALL_EV_END:
		stats_count(CTR_STALL_MS, ms);
		break;
	case STALL_EV_CORKED:
		stats_count(CTR_CORKED_WAITS, 1);
		why = "corked record at EAGAIN";
		break;
	}
	if (why != NULL && auto_mitigate(c, &c->srv->learn, why))
		conn_kick_write(c);	/* the socket may never report writability in this stall */
}

/* The TCP_NOTSENT_LOWAT in effect on c's socket: the listener's, else the sysctl's. */
static uint32_t socket_lowat(const struct conn *c)
{
	return c->send->notsent_lowat > 0 ? (uint32_t)c->send->notsent_lowat
					  : c->srv->notsent_lowat_sysctl;
}

/* ---- access log ------------------------------------------------------- */

/* The access log line of the response in flight (log.c formats it, combined or JSON). */
static void access_log(struct conn *c)
{
	struct timeval now;
	struct access_entry e;

	if (!log_access_enabled() || c->resp.status == 0)
		return;
	gettimeofday(&now, NULL);
	e = (struct access_entry){
		.when = now.tv_sec,
		.rt = (double)(now.tv_sec - c->t_request.tv_sec) +
		      (double)(now.tv_usec - c->t_request.tv_usec) / 1e6,
		.peer_addr = c->peer_addr, .peer = c->peer, .via = c->via,
		.request = c->reqline, .referer = c->referer, .user_agent = c->user_agent,
		.status = c->resp.status, .body_bytes = c->resp.body_bytes,
		.bytes = c->resp.head_bytes + c->resp.body_bytes,
		.sender = c->sender ? c->sender->name : "-",
		.tls_tx = c->ktls.tx ? "kernel" : "userspace",
		.mss = c->rec.snd_mss, .stalls = c->rec.stalls - c->stalls_at_request,
		.stall_ms = c->rec.stall_ms_total + stall_current_ms(c) - c->stall_ms_at_request,
		.conn = c->id, .arm = c->rec.arm,
	};
	log_access_entry(&e, c->cfg->log.access_json);
}

/* ---- responses -------------------------------------------------------- */

/* Room a copying sender wants behind the head for body bytes (none for sendfile/splice,
 * which read the file themselves). */
static size_t copy_room(const struct conn *c)
{
	return c->sender->copies ? send_copy_size(c) : 0;
}

/* c->resp was started (res says how that went): send it. */
static enum step begin_sending(struct conn *c, enum response_start_result res)
{
	switch (res) {
	case RESPONSE_STARTED:
		conn_set_state(c, CONN_SEND_HEADERS);
		if (c->rec.requests == 1)
			auto_connection_start(c, &c->srv->learn);
		stall_busy(c);
		return STEP_CONTINUE;
	case RESPONSE_NO_MEMORY:
		log_msg(LOG_LEVEL_ERROR, "conn %llu: out of memory for the response",
			(unsigned long long)c->id);
		return STEP_CLOSE;
	case RESPONSE_HEAD_TOO_BIG:
		log_msg(LOG_LEVEL_CRIT, "conn %llu: response head does not fit %zu bytes",
			(unsigned long long)c->id, c->resp.out.cap);
		return STEP_CLOSE;
	}
	return STEP_CLOSE;
}

/* A response without a file: head h, and unless HEAD, body[0..blen). */
static enum step respond(struct conn *c, struct response_head *h, bool head_only,
			 const char *body, size_t blen)
{
	h->keep_alive = c->keep_alive;
	return begin_sending(c, response_start(&c->resp, h, head_only, body, blen));
}

static bool closes_connection(int status)
{
	return status == 400 || status == 408 || status == 413 || status == 414 ||
	       status == 431 || status >= 500;
}

static enum step respond_error(struct conn *c, int status, bool head_only)
{
	const char *body = response_error_body(status);
	struct response_head h = {
		.status = status,
		.content_type = "text/html",
		.content_length = strlen(body),
		.allow = status == 405 ? "GET, HEAD" : NULL,
	};

	if (closes_connection(status))
		c->keep_alive = false;
	return respond(c, &h, head_only, body, strlen(body));
}

static enum step respond_redirect(struct conn *c, const struct http_request *req, bool head_only)
{
	const char *body = response_error_body(301);
	struct response_head h = {
		.status = 301,
		.content_type = "text/html",
		.content_length = strlen(body),
		.location = req->path.ptr,
		.location_len = req->path.len,
		.location_suffix = "/",
	};

	return respond(c, &h, head_only, body, strlen(body));
}

/* Answer with the file fh (the caller's reference: c->resp takes it over); name gives
 * the Content-Type; gzipped: fh is name's precompressed ".gz" (gzip_static). What to
 * answer is response_plan()'s decision, made without touching the connection. */
static enum step respond_file(struct conn *c, const struct http_request *req,
			      struct file_ref *fh, const char *name, bool gzipped)
{
	struct response_plan p = response_plan(req, &fh->fi, gzipped);
	struct response_file_opts o = {
		.type = mime_lookup(c->site->mime, name),
		.keep_alive = c->keep_alive,
		.vary = c->cfg->gzip_static,
		.copy = copy_room(c),
	};
	enum response_start_result res = response_start_file(&c->resp, &p, fh, &o);

	if (res == RESPONSE_NO_MEMORY && c->resp.status == 0) {
		/* nothing formatted yet (the multipart state): the client can still be told */
		response_reset(&c->resp);
		log_msg(LOG_LEVEL_ERROR, "conn %llu: out of memory for the response",
			(unsigned long long)c->id);
		return respond_error(c, 500, req->method == HTTP_METHOD_HEAD);
	}
	return begin_sending(c, res);
}

/* A directory without index file, on a listener with autoindex: its listing (dir is the
 * caller's reference to the opened directory, released here). What is listed, its format
 * and whether the client's copy is current are autoindex_page()'s decisions; the page
 * goes out like an error page, through the out buffer, so every sender sends it. */
static enum step respond_listing(struct conn *c, const struct http_request *req, const char *rel,
				 struct file_ref *dir)
{
	const struct autoindex_settings s = {
		.hidden = c->cfg->autoindex.hidden,
		.max_entries = c->cfg->autoindex.max_entries,
		.max_request_line = c->cfg->limits.request_line,
	};
	bool head_only = req->method == HTTP_METHOD_HEAD;
	struct autoindex_page pg;
	enum autoindex_result ar = autoindex_page(req, c->site->rootfd, rel, &dir->fi, &s, &pg);
	struct response_head h = {
		.status = pg.status,
		.content_type = pg.status == 200 ? pg.content_type : NULL,
		.content_length = pg.body != NULL ? evbuffer_get_length(pg.body) : 0,
		.keep_alive = c->keep_alive,
		.etag = pg.etag,
		.last_modified = pg.last_modified,
		.vary_accept = true,
	};

	fcache_release(dir);
	if (ar == AUTOINDEX_UNAVAILABLE)
		return respond_error(c, 503, head_only);
	if (ar != AUTOINDEX_OK)
		return respond_error(c, 500, head_only);
	if (pg.truncated)
		log_msg(LOG_LEVEL_INFO, "conn %llu: listing of \"%s\" truncated at %zu entries",
			(unsigned long long)c->id, rel, pg.entries);
	if (pg.body == NULL)	/* 304 */
		return respond(c, &h, true, NULL, 0);
	return begin_sending(c, response_start_body(&c->resp, &h, head_only, pg.body));
}

static void note_request_line(struct conn *c, const struct http_request *req)
{
	char tmp[sizeof(c->reqline)];
	int n = snprintf(tmp, sizeof(tmp), "%.*s %.*s HTTP/1.%d", (int)req->method_name.len,
			 req->method_name.ptr, (int)(req->target.len > 200 ? 200 : req->target.len),
			 req->target.ptr, req->version_minor);

	log_escape(c->reqline, sizeof(c->reqline), tmp, n > 0 ? (size_t)n : 0);
	log_escape(c->user_agent, sizeof(c->user_agent), req->user_agent.ptr ? req->user_agent.ptr : "",
		    req->user_agent.len);
	log_escape(c->referer, sizeof(c->referer), req->referer.ptr ? req->referer.ptr : "",
		    req->referer.len);
}

/* Counting for a request about to be answered (well-formed or not); head_len bytes of
 * c->in are its head, drained when the response is done. */
static void begin_request(struct conn *c, size_t head_len)
{
	c->rec.requests++;
	stats_count(CTR_REQUESTS, 1);
	c->stalls_at_request = c->rec.stalls;
	c->stall_ms_at_request = c->rec.stall_ms_total + stall_current_ms(c);
	c->head_len = head_len;
}

/* gzip_static: rel's precompressed twin "rel.gz", if it is a regular file beneath the
 * root (through the cache, like any file). Anything else: serve rel itself. */
static bool open_gzipped(struct conn *c, const char *rel, struct file_ref **fh)
{
	char gz[PATH_MAX_BYTES];
	int n = snprintf(gz, sizeof(gz), "%s.gz", rel);
	enum file_result r;

	if (n <= 0 || (size_t)n >= sizeof(gz))
		return false;
	r = fcache_open(c->srv->fcache, c->site->gen, c->site->rootfd, gz, false, c->cfg->index, fh);
	if (r == FILE_DIRECTORY)	/* only with a slash, so never here; but never a leak */
		fcache_release(*fh);
	return r == FILE_OK;
}

static enum step handle_request(struct conn *c, const struct http_request *req)
{
	char rel[PATH_MAX_BYTES];
	bool slash;
	struct file_ref *fh;
	bool head_only = req->method == HTTP_METHOD_HEAD;

	begin_request(c, req->head_len);
	note_request_line(c, req);
	c->keep_alive = req->keep_alive && !req->has_body && !c->srv->stopping &&
			c->rec.requests < c->cfg->limits.keepalive_requests;
	if (req->method == HTTP_METHOD_OTHER)
		return respond_error(c, 405, false);
	switch (path_normalize(req->path.ptr, req->path.len, rel, sizeof(rel), &slash)) {
	case PATH_OK: break;
	case PATH_BAD: return respond_error(c, 400, head_only);
	case PATH_TOO_LONG: return respond_error(c, 414, head_only);
	}
	if (response_wants_gzip(req, c->cfg->gzip_static, rel, slash) && open_gzipped(c, rel, &fh))
		return respond_file(c, req, fh, rel, true);
	switch (fcache_open(c->srv->fcache, c->site->gen, c->site->rootfd, rel, slash, c->cfg->index,
			    &fh)) {
	case FILE_OK:
		return respond_file(c, req, fh, slash || strcmp(rel, ".") == 0 ? c->cfg->index : rel,
				    false);
	case FILE_DIRECTORY:
		if (c->autoindex)
			return respond_listing(c, req, rel, fh);
		fcache_release(fh);
		return respond_error(c, 403, head_only);
	case FILE_REDIRECT: return respond_redirect(c, req, head_only);
	case FILE_NOT_FOUND: return respond_error(c, 404, head_only);
	case FILE_FORBIDDEN: return respond_error(c, 403, head_only);
	case FILE_TOO_LONG: return respond_error(c, 414, head_only);
	case FILE_UNAVAILABLE: return respond_error(c, 503, head_only);
	case FILE_ERROR: break;
	}
	return respond_error(c, 500, head_only);
}

/* A request head that could not be parsed: note what we can for the log, answer, close. */
static enum step handle_bad_request(struct conn *c, const char *p, size_t len, int status)
{
	const char *nl = memchr(p, '\n', len);
	size_t l = nl ? (size_t)(nl - p) : len;

	if (l > 0 && p[l - 1] == '\r')
		l--;
	log_escape(c->reqline, sizeof(c->reqline), p, l > 200 ? 200 : l);
	c->user_agent[0] = c->referer[0] = '\0';
	begin_request(c, len);
	c->keep_alive = false;
	log_msg(LOG_LEVEL_INFO, "conn %llu: %s: bad request (%d)", (unsigned long long)c->id,
		c->peer, status);
	return respond_error(c, status, false);
}

/* ---- the states ------------------------------------------------------- */

/* A connection on a proxy listener closed before TLS: counted by reason; logged, but each
 * reason at most once a second (a scan or a misconfigured balancer must not flood the
 * log), with how many went unlogged. what: the log line after the peer. */
static void proxy_reject(struct server *srv, enum proxy_reject why, uint64_t id,
			 const char *peer, const char *what)
{
	/* per worker thread: each rate-limits its own lines, no shared state to race on */
	static _Thread_local time_t last[PROXY_REJECT_MAX];
	static _Thread_local uint64_t unlogged[PROXY_REJECT_MAX];
	time_t now = time(NULL);
	char more[64] = "";
	char who[40] = "";

	stats_count(CTR_PROXY_REJECTED + why, 1);
	if (now == last[why]) {
		unlogged[why]++;
		return;
	}
	if (unlogged[why] > 0)
		snprintf(more, sizeof(more), " (%llu more %s since the last such line)",
			 (unsigned long long)unlogged[why], proxy_reject_name(why));
	if (id > 0)
		snprintf(who, sizeof(who), "conn %llu: ", (unsigned long long)id);
	log_msg(why == PROXY_REJECT_CLOSED ? LOG_LEVEL_INFO : LOG_LEVEL_WARN, "%s%s: %s%s", who,
		peer, what, more);
	last[why] = now;
	unlogged[why] = 0;
}

/* The PROXY header is complete (res): the client it names becomes the peer that logs
 * and records show, the socket's peer (the balancer) is kept as via. A LOCAL command (a
 * balancer's own health check) or an UNKNOWN/UNSPEC source keeps the socket's. */
static void proxy_apply(struct conn *c, const struct proxy_result *res)
{
	stats_count(CTR_PROXY_HEADERS + (res->local ? PROXY_COMMAND_LOCAL : PROXY_COMMAND_PROXY), 1);
	c->proxy_local = res->local;
	if (!res->has_addr) {
		log_debug("conn %llu: %s: PROXY v%d %s: the connection's own addresses stay",
			  (unsigned long long)c->id, c->peer, res->version,
			  res->local ? "LOCAL" : "without addresses");
		return;
	}
	snprintf(c->via, sizeof(c->via), "%s", c->peer);
	net_format((const struct sockaddr *)&res->src, c->peer, sizeof(c->peer), c->peer_addr,
		   sizeof(c->peer_addr));
	snprintf(c->rec.peer, sizeof(c->rec.peer), "%s", c->peer);
	snprintf(c->rec.via, sizeof(c->rec.via), "%s", c->via);
	log_msg(LOG_LEVEL_INFO, "conn %llu: %s via %s (PROXY v%d)", (unsigned long long)c->id,
		c->peer, c->via, res->version);
}

/* Take n bytes that a peek showed are waiting off the socket: kept in c->proxy_buf at
 * c->proxy_have, or (keep false) dropped, as the caller has them. 0, -1 out of memory,
 * -2 the socket did not give them (reset meanwhile). */
static int proxy_consume(struct conn *c, size_t n, bool keep)
{
	unsigned char tmp[PROXY_HEADER_MAX];
	unsigned char *to = tmp;
	ssize_t got;

	if (keep) {
		unsigned char *b = realloc(c->proxy_buf, c->proxy_have + n);
		if (b == NULL)
			return -1;
		c->proxy_buf = b;
		to = b + c->proxy_have;
	}
	got = SEND_RETRY(recv(c->fd, to, n, MSG_DONTWAIT));
	if (got < 0 || (size_t)got != n)
		return -2;
	if (keep)
		c->proxy_have += n;
	return 0;
}

/* Read the PROXY header and not one byte more: look at what waits (MSG_PEEK), let the
 * parser say where the header ends, take exactly that; the ClientHello behind it stays in
 * the socket for OpenSSL. A header that arrives in pieces is taken piece by piece (every
 * byte of an incomplete header is the header's), until a look finds nothing new: then
 * the read edge is armed after EAGAIN, as the edge-triggered event wants. */
static enum step do_proxy_header(struct conn *c)
{
	unsigned char buf[PROXY_HEADER_MAX];
	struct proxy_result res;
	size_t have = c->proxy_have;
	ssize_t n;
	int rc = 0;
	char what[160];

	if (have > 0)
		memcpy(buf, c->proxy_buf, have);
	n = SEND_RETRY(recv(c->fd, buf + have, sizeof(buf) - have, MSG_PEEK | MSG_DONTWAIT));
	if (n < 0 && io_from_errno(errno) == IO_AGAIN)
		return wait_for(c, false);
	if (n <= 0) {
		snprintf(what, sizeof(what), "closed before its PROXY header was complete (%zu "
			 "bytes)", have);
		proxy_reject(c->srv, PROXY_REJECT_CLOSED, c->id, c->peer, what);
		return STEP_CLOSE;
	}
	switch (proxy_parse(buf, have + (size_t)n, &res)) {
	case PROXY_NEED_MORE:
		if ((rc = proxy_consume(c, (size_t)n, true)) != 0)
			break;
		return STEP_CONTINUE;	/* look again: EAGAIN, or what came meanwhile */
	case PROXY_INVALID:
		snprintf(what, sizeof(what), "bad PROXY header: %s; closed", res.reason);
		proxy_reject(c->srv, res.oversized ? PROXY_REJECT_OVERSIZED : PROXY_REJECT_MALFORMED,
			     c->id, c->peer, what);
		return STEP_CLOSE;
	case PROXY_DONE:
		if ((rc = proxy_consume(c, res.len - have, false)) != 0)
			break;
		free(c->proxy_buf);
		c->proxy_buf = NULL;
		c->proxy_have = 0;
		proxy_apply(c, &res);
		conn_set_state(c, CONN_HANDSHAKE);
		return STEP_CONTINUE;
	}
	if (rc == -1)
		log_msg(LOG_LEVEL_ERROR, "conn %llu: out of memory for a PROXY header",
			(unsigned long long)c->id);
	else
		proxy_reject(c->srv, PROXY_REJECT_CLOSED, c->id, c->peer,
			     "reset while its PROXY header was read");
	return STEP_CLOSE;
}

static enum step begin_close(struct conn *c);
static void ask_offload_for_the_record(struct conn *c);

static enum step do_handshake(struct conn *c)
{
	char err[128];
	int ww;
	enum io_result r = tls_handshake(c->ssl, &ww);

	if (r == IO_AGAIN)
		return wait_for(c, ww);
	if (r != IO_OK && c->proxy_local && BIO_number_read(SSL_get_rbio(c->ssl)) == 0) {
		/* a balancer's health check (LOCAL header, then close): not a failed handshake,
		 * or every check interval would add one */
		log_debug("conn %llu: %s: PROXY LOCAL check closed before TLS",
			  (unsigned long long)c->id, c->peer);
		return STEP_CLOSE;
	}
	if (r != IO_OK) {
		stats_count(CTR_HANDSHAKES_FAILED, 1);
		log_msg(LOG_LEVEL_INFO, "conn %llu: %s: TLS handshake failed", (unsigned long long)c->id,
			c->peer);
		/* OpenSSL reads record by record (no read-ahead, see tls.c): what the client
		 * sent past the bad record is unread, and a close() now would be an RST that
		 * may destroy the alert before the client reads it */
		return r == IO_ERROR ? begin_close(c) : STEP_CLOSE;
	}
	if (tlsrec_take(&c->tls, c->ssl, err, sizeof(err)) == -1) {
		stats_count(CTR_HANDSHAKES_FAILED, 1);
		log_msg(LOG_LEVEL_ERROR, "conn %llu: %s: after the handshake: %s",
			(unsigned long long)c->id, c->peer, err);
		return STEP_CLOSE;
	}
	c->rec.cipher = tls_cipher_name(c->ssl);
	/* everything the connection needs from OpenSSL is in c->tls now: ~14 KiB less */
	SSL_free(c->ssl);
	c->ssl = NULL;
	ktls_start(&c->tls, c->fd, c->mode, &c->ktls);
	send_set_sender(c, send_pick(c->mode, c->ktls.tx), c->chunk);
	{
		struct tcp_snapshot s;
		stall_tcp_snapshot(c->fd, &s);
		c->rec.snd_mss = s.snd_mss;
	}
	c->rec.ktls_tx = c->ktls.tx;
	/* rec.offload stays "-" with kTLS too until conn_record() asks (sock_diag) */
	snprintf(c->rec.tls_reason, sizeof(c->rec.tls_reason), "%s", c->ktls.reason);
	if (c->ktls.tx)
		stats_count(CTR_KTLS_TX, 1);
	else if (c->mode != SEND_MODE_USERSPACE)
		stats_count(CTR_KTLS_FALLBACK, 1);
	else
		stats_count(CTR_KTLS_DISABLED, 1);
	log_msg(LOG_LEVEL_INFO, "conn %llu: %s: TLSv1.3 %s, tls_tx=%s%s%s%s, sender=%s",
		(unsigned long long)c->id, c->peer, c->rec.cipher,
		c->ktls.tx ? "kernel" : "userspace", c->ktls.tx ? "" : " (",
		c->ktls.tx ? "" : c->ktls.reason, c->ktls.tx ? "" : ")", c->sender->name);
	gettimeofday(&c->t_request, NULL);
	conn_set_state(c, CONN_READ_REQUEST);
	return STEP_CONTINUE;
}

static enum step do_read(struct conn *c)
{
	const struct http_limits lim = {
		c->cfg->limits.request_line, c->cfg->limits.header_bytes, c->cfg->limits.headers,
	};
	size_t len = evbuffer_get_length(c->in);
	char rbuf[4096];
	size_t got;
	struct http_request req;
	enum io_result r;
	int status;
	size_t n;

	if (len > 0) {
		const char *p = (const char *)evbuffer_pullup(c->in, -1);
		switch (http_parse_request(p, len, &lim, &req, &status)) {
		case HTTP_PARSE_OK:
			gettimeofday(&c->t_request, NULL);
			return handle_request(c, &req);
		case HTTP_PARSE_ERROR:
			gettimeofday(&c->t_request, NULL);
			return handle_bad_request(c, p, len, status);
		case HTTP_PARSE_INCOMPLETE:
			break;
		}
		if (c->state == CONN_KEEPALIVE)
			conn_set_state(c, CONN_READ_REQUEST);	/* header timeout from the first byte */
	}
	if (len > lim.max_header_bytes) {	/* the parser should have said 431 */
		log_msg(LOG_LEVEL_CRIT, "conn %llu: parser accepted %zu bytes over the limit",
			(unsigned long long)c->id, len);
		return STEP_CLOSE;
	}
	n = lim.max_header_bytes + 1 - len;
	if (n > 4096)
		n = 4096;
	/* Read into the stack, not into reserved evbuffer space: a reservation made before
	 * an EAGAIN stays allocated (8 KiB) for as long as the connection sits idle. */
	r = tlsrec_read(&c->tls, c->fd, rbuf, n, &got);
	if (r == IO_OK) {
		if (evbuffer_add(c->in, rbuf, got) == -1)
			return STEP_CLOSE;
		return STEP_CONTINUE;
	}
	if (r == IO_AGAIN)
		return wait_for(c, false);
	if (r == IO_ERROR)
		log_msg(LOG_LEVEL_INFO, "conn %llu: %s: TLS: %s; closed", (unsigned long long)c->id,
			c->peer, c->tls.error != NULL ? c->tls.error : "read error");
	if (r == IO_PEER_GONE && c->tls.close_notify_received) {
		/* answered (RFC 8446 §6.1), but first the record's offload: a peer that already
		 * closed answers our alert with an RST, and then sock_diag finds no socket */
		ask_offload_for_the_record(c);
		tlsrec_close_notify(&c->tls, c->fd);
	}
	if (len > 0 && log_get_level() >= LOG_LEVEL_INFO)
		log_msg(LOG_LEVEL_INFO, "conn %llu: %s: closed with an incomplete request (%zu bytes)",
			(unsigned long long)c->id, c->peer, len);
	return STEP_CLOSE;
}

/* The record outlives the socket in /stats/recent: the last chance to ask the kernel for
 * what is only looked up when someone can see it (sock_diag, once per connection). */
static void ask_offload_for_the_record(struct conn *c)
{
	if (stats_keeps_recent())
		(void)conn_record(c);
}

/* Close gracefully: close_notify, FIN, then drain what the client still sends so that
 * our close() does not turn into an RST that destroys the response in its receive
 * buffer (the reason for nginx's lingering_close). */
static enum step begin_close(struct conn *c)
{
	/* while the socket is still established: once both FINs are exchanged the kernel
	 * answers sock_diag for the 4-tuple with a time-wait entry, without the ULP info */
	ask_offload_for_the_record(c);
	if (c->ssl != NULL) {	/* still in the handshake */
		ERR_clear_error();
		SSL_shutdown(c->ssl);	/* one try: a full socket buffer just means none */
		ERR_clear_error();
	} else {
		tlsrec_close_notify(&c->tls, c->fd);
	}
	shutdown(c->fd, SHUT_WR);
	conn_set_state(c, CONN_LINGER);
	return STEP_CONTINUE;
}

static enum step do_linger(struct conn *c)
{
	char buf[4096];

	for (int i = 0; i < 64; i++) {
		ssize_t n = SEND_RETRY(recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT));
		if (n > 0)
			continue;
		if (n == -1 && io_from_errno(errno) == IO_AGAIN)
			return wait_for(c, false);
		return STEP_CLOSE;
	}
	/* more to drain: no EAGAIN seen, so no new edge will come; go on after the others */
	c->waiting = EV_READ;
	event_active(c->ev_io, EV_READ, 0);
	return STEP_WAIT;
}

static enum step response_done(struct conn *c)
{
	access_log(c);
	experiment_note_response(c, false);
	stats_count(CTR_BYTES_SENT, c->resp.head_bytes + c->resp.body_bytes);
	response_reset(&c->resp);
	send_release(c);
	evbuffer_drain(c->in, c->head_len);
	c->head_len = 0;
	if (!c->keep_alive)
		return begin_close(c);
	if (evbuffer_get_length(c->in) > 0) {
		/* a pipelined request already here: the client was told keep-alive, so it is
		 * answered even while stopping (then with Connection: close) */
		conn_set_state(c, CONN_READ_REQUEST);
		return STEP_CONTINUE;
	}
	if (c->srv->stopping)
		return begin_close(c);
	/* idle: give the output buffer back, keep-alive connections should cost little */
	response_fini(&c->resp);
	tlsrec_release(&c->tls);
	conn_set_state(c, CONN_KEEPALIVE);
	return STEP_CONTINUE;
}

static enum step abort_response(struct conn *c, enum io_result r)
{
	stats_count(CTR_ABORTED, 1);
	if (r == IO_PEER_GONE)
		log_msg(LOG_LEVEL_INFO, "conn %llu: %s: client went away after %llu of %llu body bytes",
			(unsigned long long)c->id, c->peer, (unsigned long long)c->resp.body_bytes,
			(unsigned long long)c->resp.body_total);
	access_log(c);
	experiment_note_response(c, true);
	return STEP_CLOSE;	/* conn_free() resets the response */
}

static enum step do_send(struct conn *c)
{
	size_t budget = c->chunk * 4 > 262144 ? c->chunk * 4 : 262144;
	size_t moved = 0;
	enum step st = STEP_CONTINUE;

	while (st == STEP_CONTINUE) {
		const struct response *resp = &c->resp;
		size_t n = 0;
		enum io_result r;
		bool flush_only = resp->out.len > resp->out.off &&
				  (!c->sender->copies || resp->out.sealed || resp->left == 0);

		if (flush_only)
			r = send_flush_out(c, resp->left > 0, &n);
		else if (send_pending(c))
			r = c->sender->send(c, c->chunk, &n);
		else if (response_has_next_part(resp))	/* the next part of several ranges */
			r = response_next_part(&c->resp, copy_room(c)) ? IO_OK : IO_ERROR;
		else if (response_has_body_left(resp))	/* the next piece of a listing */
			r = response_next_body_piece(&c->resp) ? IO_OK : IO_ERROR;
		else
			return response_done(c);
		switch (r) {
		case IO_OK:
			moved += n;
			if (c->state == CONN_SEND_HEADERS && c->resp.head_left == 0)
				conn_set_state(c, CONN_SEND_BODY);
			if (moved >= budget) {	/* be fair to the other connections */
				/* still writable: run again after the others */
				conn_kick_write(c);
				st = STEP_WAIT;
			}
			break;
		case IO_AGAIN:
			st = wait_for(c, true);
			break;
		default:
			return abort_response(c, r);
		}
	}
	if (moved > 0)
		arm_timer(c, c->cfg->timeouts.send_idle);	/* progress: idle clock restarts */
	return st;
}

/* ---- driver ----------------------------------------------------------- */

static void drive(struct conn *c)
{
	enum step st = STEP_CONTINUE;

	while (st == STEP_CONTINUE) {
		switch (c->state) {
		case CONN_PROXY_HEADER: st = do_proxy_header(c); break;
		case CONN_HANDSHAKE: st = do_handshake(c); break;
		case CONN_READ_REQUEST:
		case CONN_KEEPALIVE: st = do_read(c); break;
		case CONN_SEND_HEADERS:
		case CONN_SEND_BODY: st = do_send(c); break;
		case CONN_LINGER: st = do_linger(c); break;
		default: st = STEP_CLOSE; break;
		}
	}
	if (st == STEP_CLOSE)
		conn_free(c);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	if (!(what & c->waiting))
		return;		/* an edge of the direction not waited for (wait_for()) */
	if (c->waiting == EV_WRITE)
		stall_note_writable(c);
	drive(c);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	if (c->state == CONN_PROXY_HEADER) {
		char line[96];
		stats_count(CTR_TIMEOUTS, 1);
		snprintf(line, sizeof(line), "PROXY header timeout (%zu bytes of it); closed",
			 c->proxy_have);
		proxy_reject(c->srv, PROXY_REJECT_TIMEOUT, c->id, c->peer, line);
	} else if (c->state != CONN_LINGER && c->state != CONN_KEEPALIVE) {
		stats_count(CTR_TIMEOUTS, 1);
		log_msg(LOG_LEVEL_INFO, "conn %llu: %s: %s timeout", (unsigned long long)c->id,
			c->peer, state_names[c->state]);
	}
	if (c->state == CONN_SEND_HEADERS || c->state == CONN_SEND_BODY) {
		stats_count(CTR_ABORTED, 1);
		access_log(c);
		experiment_note_response(c, true);
	}
	conn_free(c);
}

/* ---- life cycle ------------------------------------------------------- */

/* The listener's socket options on the accepted socket (before the stall detector
 * reads TCP_NOTSENT_LOWAT back). */
static void set_socket_options(struct conn *c)
{
	int one = 1;

	/* Responses are written in large pieces; Nagle would only delay the last segment of
	 * each (nginx sets TCP_NODELAY on TLS connections too). */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (c->send->notsent_lowat > 0 &&
	    setsockopt(c->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &c->send->notsent_lowat,
		       sizeof(c->send->notsent_lowat)) == -1)
		log_msg(LOG_LEVEL_WARN, "conn %llu: TCP_NOTSENT_LOWAT %d: %s", (unsigned long long)c->id,
			c->send->notsent_lowat, strerror(errno));
}

/* Listener number listener's entry in cfg, or NULL: after a reload that dropped it (the
 * global settings apply, no PROXY header), or for a socket from systemd that no entry
 * names. */
static const struct listen_addr *listener_entry(const struct config *cfg, size_t listener)
{
	return listener < cfg->nlisten ? &cfg->listen[listener] : NULL;
}

/* On a proxy listener, only a trusted balancer may name the client (anyone else could
 * forge it): a connection from elsewhere is closed at once, before any byte is read. */
static bool refuse_untrusted(struct server *srv, const struct listen_addr *la, int fd,
			     const struct sockaddr *sa)
{
	char peer[64], line[160];

	if (la == NULL || !la->proxy || proxy_cidr_match(la->trusted, la->ntrusted, sa))
		return false;
	net_format(sa, peer, sizeof(peer), NULL, 0);
	snprintf(line, sizeof(line), "not in proxy_trusted of the PROXY listener %s; closed",
		 la->text);
	proxy_reject(srv, PROXY_REJECT_UNTRUSTED, 0, peer, line);
	close(fd);
	return true;
}

struct conn *conn_new(struct server *srv, int fd, const struct sockaddr *sa, int salen,
		      size_t listener)
{
	const struct listen_addr *la = listener_entry(srv->site->cfg, listener);
	enum conn_state first = la != NULL && la->proxy ? CONN_PROXY_HEADER : CONN_HANDSHAKE;
	struct conn *c;

	(void)salen;
	if (refuse_untrusted(srv, la, fd, sa))
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		log_msg(LOG_LEVEL_ERROR, "out of memory for a new connection");
		close(fd);
		return NULL;
	}
	c->id = atomic_fetch_add_explicit(srv->conn_ids, 1, memory_order_relaxed) + 1;
	c->srv = srv;
	c->site = site_ref(srv->site);
	c->cfg = c->site->cfg;
	c->fd = fd;
	response_init(&c->resp);
	c->pipe[0] = c->pipe[1] = -1;
	/* after a reload that changed the listen list, fall back to the global settings */
	c->send = la != NULL ? &la->send : &c->cfg->send;
	experiment_assign(c, listener);	/* may put an arm's settings in c->send */
	c->autoindex = la != NULL ? la->autoindex : c->cfg->autoindex.enabled;
	c->mode = c->send->mode;
	send_set_sender(c, send_pick(SEND_MODE_USERSPACE, false), c->send->chunk);
	c->ktls.offload = "-";	/* until the handshake says more */
	c->rec.id = c->id;
	c->rec.worker = srv->worker;
	c->rec.mode = send_mode_name(c->mode);
	c->rec.sender = "-";
	c->rec.offload = "-";
	c->rec.cipher = "-";
	c->rec.state = state_names[first];
	c->state = first;
	c->rec.start_us = stall_now_us();
	gettimeofday(&c->t_accept, NULL);
	net_format(sa, c->peer, sizeof(c->peer), c->peer_addr, sizeof(c->peer_addr));
	snprintf(c->rec.peer, sizeof(c->rec.peer), "%s", c->peer);
	net_local(fd, c->rec.listener, sizeof(c->rec.listener));
	TAILQ_INSERT_TAIL(&srv->conns, c, link);
	srv->nconns++;

	set_socket_options(c);
	c->ssl = SSL_new(c->site->ssl_ctx);
	c->in = evbuffer_new();
	c->ev_io = event_new(srv->base, fd, EV_READ | EV_WRITE | EV_PERSIST | EV_ET, on_io, c);
	c->waiting = EV_READ;
	c->ev_timer = evtimer_new(srv->base, on_timeout, c);
	if (c->ssl == NULL || c->in == NULL || c->ev_io == NULL ||
	    c->ev_timer == NULL || stall_init(c, socket_lowat(c), on_stall) == -1 || SSL_set_fd(c->ssl, fd) != 1) {
		log_msg(LOG_LEVEL_ERROR, "conn %llu: cannot set up the connection", (unsigned long long)c->id);
		conn_free(c);
		return NULL;
	}
	SSL_set_accept_state(c->ssl);
	tlsrec_attach(&c->tls, c->ssl);
	log_debug("conn %llu: accepted from %s", (unsigned long long)c->id, c->peer);
	/* libevent times timers from the moment its loop woke; in a long burst of accepts
	 * that is already stale, and the handshake timeout would fire early. */
	event_base_update_cache_time(srv->base);
	conn_set_state(c, first);
	event_add(c->ev_io, NULL);	/* a ClientHello already here is reported at once */
	return c;
}

void conn_shutdown(struct conn *c)
{
	switch (c->state) {
	case CONN_PROXY_HEADER:
	case CONN_HANDSHAKE:
	case CONN_KEEPALIVE:
		conn_free(c);
		break;
	case CONN_READ_REQUEST:
		if (evbuffer_get_length(c->in) == 0)
			conn_free(c);
		break;	/* a request on its way: answer it with Connection: close */
	default:
		/* a response in flight finishes; response_done() closes after it, or after
		 * the requests the client already pipelined behind it */
		break;
	}
}

const struct conn_record *conn_record(struct conn *c)
{
	c->rec.offload = ktls_offload(&c->ktls, c->fd);
	c->rec.stalled_now_ms = stall_current_ms(c);
	c->rec.stalled_now = c->stall.in_stall;
	return &c->rec;
}

void conn_free(struct conn *c)
{
	log_debug("conn %llu: closed in %s", (unsigned long long)c->id, state_names[c->state]);
	stall_fini(c);
	auto_connection_end(c, &c->srv->learn);
	experiment_note_close(c);
	ask_offload_for_the_record(c);
	c->rec.end_us = stall_now_us();
	stats_remember(&c->rec);
	if (c->ev_io != NULL)
		event_free(c->ev_io);
	if (c->ev_timer != NULL)
		event_free(c->ev_timer);
	response_fini(&c->resp);
	send_release(c);
	if (c->pipe[0] != -1) {
		close(c->pipe[0]);
		close(c->pipe[1]);
	}
	SSL_free(c->ssl);
	tlsrec_free(&c->tls);
	free(c->proxy_buf);
	close(c->fd);
	if (c->in != NULL)
		evbuffer_free(c->in);
	TAILQ_REMOVE(&c->srv->conns, c, link);
	c->srv->conn_closed(c->srv);
	site_unref(c->site);
	free(c);
}
