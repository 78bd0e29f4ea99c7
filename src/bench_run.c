/* bench_run.c — the ktlsd-bench load engine: see bench.h. */
#include "autoconf.h"
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define HEAD_MAX 16384
#define TLS13_OVERHEAD 17	/* AEAD tag (16) + inner content type (1), no padding */

enum bstate { B_CONNECTING, B_HANDSHAKE, B_SEND, B_HEAD, B_BODY, B_RAW, B_DONE };

struct bench;

struct bconn {
	struct bench *b;
	int fd;
	SSL *ssl;
	struct event *ev;
	enum bstate st;
	enum bstate after_send;		/* reading state once the request is out */
	char head[HEAD_MAX + 1];
	size_t head_got;
	size_t head_len;		/* of the first response: how long heads are here */
	uint64_t content_length, body_left;
	bool server_closes;
	bool raw_ok;			/* first response decrypted: later ones may be raw */
	bool warmup;			/* discard: a HEAD first, decrypted, to learn the head
					 * length and take the session tickets; not counted */
	uint64_t raw_plain_left;	/* plaintext bytes still due in raw mode */
	unsigned char rec_hdr[5];
	size_t rec_hdr_got;
	size_t rec_left;		/* bytes of the current record still to skip */
	EVP_MD_CTX *sha;
	double t_req, last_rx;
	bool in_stall, waiting;
	size_t req_off;
	int status;
};

struct bench {
	const struct bench_opts *o;
	struct bench_result *r;
	struct event_base *base;
	SSL_CTX *ctx;
	struct addrinfo *ai;
	struct bconn *conns;
	unsigned live;
	uint64_t issued;
	double t0, deadline, hard_deadline;
	bool stopping;
	double *lat;
	size_t nlat, caplat;
	char req[2048], head_req[2048];
	size_t req_len, head_req_len;
	struct event *tick;
	double last_progress;
	bool is_ip;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int bench_parse_url(const char *url, struct bench_opts *o)
{
	const char *p, *host_end, *path;
	size_t hl;

	if (strncasecmp(url, "https://", 8) != 0)
		return -1;
	p = url + 8;
	path = strchr(p, '/');
	if (path == NULL)
		path = p + strlen(p);
	if (*p == '[') {
		host_end = memchr(p, ']', (size_t)(path - p));
		if (host_end == NULL)
			return -1;
		hl = (size_t)(host_end - p - 1);
		if (hl == 0 || hl >= sizeof(o->host))
			return -1;
		memcpy(o->host, p + 1, hl);
		o->host[hl] = '\0';
		p = host_end + 1;
	} else {
		host_end = memchr(p, ':', (size_t)(path - p));
		if (host_end == NULL)
			host_end = path;
		hl = (size_t)(host_end - p);
		if (hl == 0 || hl >= sizeof(o->host))
			return -1;
		memcpy(o->host, p, hl);
		o->host[hl] = '\0';
		p = host_end;
	}
	if (*p == ':') {
		size_t pl = (size_t)(path - p - 1);
		if (pl == 0 || pl >= sizeof(o->port) || strspn(p + 1, "0123456789") < pl)
			return -1;
		memcpy(o->port, p + 1, pl);
		o->port[pl] = '\0';
	} else if (p == path) {
		strcpy(o->port, "443");
	} else {
		return -1;
	}
	if (*path == '\0')
		path = "/";
	if (strlen(path) >= sizeof(o->path) || strpbrk(path, " \r\n") != NULL)
		return -1;
	strcpy(o->path, path);
	return 0;
}

/* ---- connection life ------------------------------------------------- */

static void on_event(evutil_socket_t fd, short what, void *arg);
static void conn_start(struct bconn *c);

/* Count an error; the first one is kept as "what: detail" for the report. */
static void fail(struct bconn *c, const char *what, const char *detail)
{
	struct bench *b = c->b;

	b->r->errors++;
	if (b->r->first_error[0] == '\0')
		snprintf(b->r->first_error, sizeof(b->r->first_error), "%s%s%.120s", what,
			 detail && *detail ? ": " : "", detail ? detail : "");
}

static void conn_close(struct bconn *c)
{
	if (c->ev != NULL) {
		event_free(c->ev);
		c->ev = NULL;
	}
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->st != B_DONE) {
		c->st = B_DONE;
		c->b->live--;
	}
	if (c->b->live == 0)
		event_base_loopbreak(c->b->base);
}

static void wait_io(struct bconn *c, short what)
{
	if (c->ev != NULL)
		event_free(c->ev);
	c->ev = event_new(c->b->base, c->fd, what, on_event, c);
	event_add(c->ev, NULL);
}

static bool may_issue(struct bench *b)
{
	if (b->stopping)
		return false;
	if (b->o->requests > 0)
		return b->issued < b->o->requests;
	return now_s() < b->deadline;
}

static void record_latency(struct bench *b, double ms)
{
	if (b->nlat == b->caplat) {
		size_t cap = b->caplat ? b->caplat * 2 : 4096;
		double *p = realloc(b->lat, cap * sizeof(*p));
		if (p == NULL)
			return;
		b->lat = p;
		b->caplat = cap;
	}
	b->lat[b->nlat++] = ms;
}

static void got_bytes(struct bconn *c, size_t n, size_t wire)
{
	double t = now_s();

	if (c->in_stall) {
		double ms = (t - c->last_rx) * 1000;
		if (ms > c->b->r->longest_stall_ms)
			c->b->r->longest_stall_ms = ms;
		c->in_stall = false;
	}
	c->last_rx = t;
	c->b->r->bytes_body += n;
	c->b->r->bytes_wire += wire;
}

/* A response is complete: account it, then next request, reconnect or finish. */
static void response_done(struct bconn *c)
{
	struct bench *b = c->b;

	c->waiting = false;
	if (c->warmup) {	/* the HEAD of discard mode: now the GETs, raw */
		c->warmup = false;
		if (c->status != 200) {
			fail(c, "HTTP status (HEAD)", c->head + 9);
			conn_close(c);
			return;
		}
		/* the other connections may have used up -n while this one warmed up */
		if (!may_issue(b)) {
			conn_close(c);
			return;
		}
		c->st = B_SEND;
		on_event(c->fd, EV_WRITE, c);
		return;
	}
	record_latency(b, (now_s() - c->t_req) * 1000);
	if (c->status == 200 || c->status == 206)
		b->r->requests_ok++;
	else
		fail(c, "HTTP status", c->head + 9);
	if (c->sha != NULL && b->o->have_sha && c->st == B_BODY) {
		unsigned char md[32];
		unsigned int mdlen = 0;
		EVP_DigestFinal_ex(c->sha, md, &mdlen);
		if (mdlen != 32 || memcmp(md, b->o->sha256, 32) != 0) {
			b->r->verify_failures++;
			fail(c, "SHA-256 mismatch", "");
		}
	}
	if (!may_issue(b)) {
		conn_close(c);
		return;
	}
	if (c->server_closes || b->o->new_conns) {
		/* reconnect: close and start over on the same slot (counted live throughout,
		 * or the last connection's close would end the run) */
		b->live++;
		conn_close(c);
		c->raw_ok = false;
		conn_start(c);
		return;
	}
	c->st = B_SEND;
	c->req_off = 0;
	on_event(c->fd, EV_WRITE, c);
}

static int parse_head(struct bconn *c)
{
	char *end = strstr(c->head, "\r\n\r\n");
	char *cl;

	if (end == NULL)
		return 0;
	*end = '\0';
	if (strncmp(c->head, "HTTP/1.1 ", 9) != 0 || strlen(c->head) < 12)
		return -1;
	c->status = atoi(c->head + 9);
	cl = strcasestr(c->head, "\r\ncontent-length:");
	if (cl == NULL)
		return -1;
	c->content_length = strtoull(cl + 17, NULL, 10);
	c->server_closes = strcasestr(c->head, "\r\nconnection: close") != NULL;
	c->head_len = (size_t)(end - c->head) + 4;
	return 1;
}

static void start_request(struct bconn *c)
{
	struct bench *b = c->b;

	c->warmup = b->o->discard && !c->raw_ok;
	if (!c->warmup)
		b->issued++;
	c->t_req = now_s();
	c->last_rx = c->t_req;
	c->waiting = true;
	c->in_stall = false;
	c->head_got = 0;
	c->status = 0;
	c->req_off = 0;
	if (c->raw_ok && b->o->discard) {
		c->after_send = B_RAW;
		c->raw_plain_left = c->head_len + c->content_length;
		c->rec_hdr_got = 0;
		c->rec_left = 0;
	} else {
		c->after_send = B_HEAD;
		if (c->sha != NULL)
			EVP_DigestInit_ex(c->sha, EVP_sha256(), NULL);
	}
}

/* ---- the per-state steps ---------------------------------------------- */

static int ssl_wait(struct bconn *c, int r, const char *what)
{
	int e = SSL_get_error(c->ssl, r);

	if (e == SSL_ERROR_WANT_READ) {
		wait_io(c, EV_READ);
		return 1;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		wait_io(c, EV_WRITE);
		return 1;
	}
	char buf[160];
	unsigned long err = ERR_get_error();
	ERR_error_string_n(err, buf, sizeof(buf));
	if (err == 0)
		snprintf(buf, sizeof(buf), "%s", e == SSL_ERROR_ZERO_RETURN ? "closed by server" :
			 errno ? strerror(errno) : "connection closed");
	ERR_clear_error();
	fail(c, what, buf);
	conn_close(c);
	return -1;
}

static void step_raw(struct bconn *c)
{
	unsigned char buf[65536];

	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			fail(c, "raw read", n == 0 ? "closed by server" : strerror(errno));
			conn_close(c);
			return;
		}
		if (n < 0) {
			wait_io(c, EV_READ);
			return;
		}
		size_t plain = 0;
		for (size_t i = 0; i < (size_t)n;) {
			if (c->rec_left > 0) {
				size_t k = (size_t)n - i < c->rec_left ? (size_t)n - i : c->rec_left;
				c->rec_left -= k;
				i += k;
				continue;
			}
			c->rec_hdr[c->rec_hdr_got++] = buf[i++];
			if (c->rec_hdr_got < 5)
				continue;
			c->rec_hdr_got = 0;
			size_t len = (size_t)c->rec_hdr[3] << 8 | c->rec_hdr[4];
			if (c->rec_hdr[0] != 23 || len <= TLS13_OVERHEAD) {
				fail(c, "raw read: unexpected TLS record type",
				     c->rec_hdr[0] == 21 ? "alert" : "not application data");
				conn_close(c);
				return;
			}
			c->rec_left = len;
			plain += len - TLS13_OVERHEAD;
		}
		got_bytes(c, plain, (size_t)n);
		if (plain > c->raw_plain_left) {
			fail(c, "raw read", "more plaintext than the response should have");
			conn_close(c);
			return;
		}
		c->raw_plain_left -= plain;
		if (c->raw_plain_left == 0 && c->rec_left == 0) {
			c->b->r->bytes_body -= c->head_len;	/* counted as plaintext above */
			c->status = 200;	/* the first response on this connection was */
			response_done(c);
			return;
		}
	}
}

static void step_read(struct bconn *c)
{
	static char buf[65536];
	size_t n;

	for (;;) {
		ERR_clear_error();
		if (c->st == B_HEAD) {
			int r = SSL_read_ex(c->ssl, c->head + c->head_got, HEAD_MAX - c->head_got, &n);
			if (r != 1) {
				ssl_wait(c, r, "TLS read");
				return;
			}
			c->head_got += n;
			c->head[c->head_got] = '\0';
			got_bytes(c, 0, n);
			int h = parse_head(c);
			if (h < 0 || (h == 0 && c->head_got == HEAD_MAX)) {
				fail(c, "bad response head", c->head);
				conn_close(c);
				return;
			}
			if (h == 0)
				continue;
			size_t extra = c->head_got - c->head_len;
			c->st = B_BODY;
			c->body_left = c->warmup ? 0 : c->content_length;	/* HEAD: no body */
			if (extra > c->body_left) {
				fail(c, "more bytes than Content-Length", NULL);
				conn_close(c);
				return;
			}
			if (c->sha != NULL && extra > 0)
				EVP_DigestUpdate(c->sha, c->head + c->head_len, extra);
			c->b->r->bytes_body += extra;
			c->body_left -= extra;
		} else {
			size_t want = c->body_left < sizeof(buf) ? (size_t)c->body_left : sizeof(buf);
			if (want > 0) {
				int r = SSL_read_ex(c->ssl, buf, want, &n);
				if (r != 1) {
					ssl_wait(c, r, "TLS read");
					return;
				}
				if (c->sha != NULL)
					EVP_DigestUpdate(c->sha, buf, n);
				got_bytes(c, n, n);
				c->body_left -= n;
			}
		}
		if (c->st == B_BODY && c->body_left == 0) {
			/* decrypted through OpenSSL, so tickets are consumed: later responses on
			 * this connection may be read raw (discard) */
			c->raw_ok = SSL_pending(c->ssl) == 0 && !SSL_has_pending(c->ssl);
			response_done(c);
			return;
		}
	}
}

static void step(struct bconn *c, short what)
{
	struct bench *b = c->b;
	int r;

	switch (c->st) {
	case B_CONNECTING: {
		int err = 0;
		socklen_t l = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err != 0) {
			fail(c, "connect", strerror(err));
			conn_close(c);
			return;
		}
		c->st = B_HANDSHAKE;
	}
	/* fall through */
	case B_HANDSHAKE:
		ERR_clear_error();
		r = SSL_do_handshake(c->ssl);
		if (r != 1) {
			ssl_wait(c, r, "TLS handshake");
			return;
		}
		c->st = B_SEND;
		c->req_off = 0;
		if (!may_issue(b)) {
			conn_close(c);
			return;
		}
	/* fall through */
	case B_SEND: {
		size_t n;
		if (!c->waiting)	/* a new request begins */
			start_request(c);
		ERR_clear_error();
		const char *req = c->warmup ? b->head_req : b->req;
		size_t req_len = c->warmup ? b->head_req_len : b->req_len;
		r = SSL_write_ex(c->ssl, req + c->req_off, req_len - c->req_off, &n);
		if (r != 1) {
			ssl_wait(c, r, "TLS write");
			return;
		}
		c->req_off += n;
		if (c->req_off < req_len) {
			wait_io(c, EV_WRITE);
			return;
		}
		c->st = c->after_send;
		wait_io(c, EV_READ);
		return;
	}
	case B_HEAD:
	case B_BODY:
		step_read(c);
		return;
	case B_RAW:
		step_raw(c);
		return;
	case B_DONE:
		return;
	}
	(void)what;
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	step(arg, what);
}

static void conn_start(struct bconn *c)
{
	struct bench *b = c->b;
	int one = 1;

	c->fd = socket(b->ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		fail(c, "socket", strerror(errno));
		c->st = B_CONNECTING;
		conn_close(c);
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->st = B_CONNECTING;
	c->waiting = false;
	c->ssl = SSL_new(b->ctx);
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_connect_state(c->ssl);
	if (!b->is_ip)
		SSL_set_tlsext_host_name(c->ssl, b->o->host);
	if (connect(c->fd, b->ai->ai_addr, b->ai->ai_addrlen) == -1 && errno != EINPROGRESS) {
		fail(c, "connect", strerror(errno));
		conn_close(c);
		return;
	}
	wait_io(c, EV_WRITE);
}

/* ---- periodic: stalls, progress, deadlines ---------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct bench *b = arg;
	double t = now_s();

	(void)fd;
	(void)what;
	for (unsigned i = 0; i < b->o->conns; i++) {
		struct bconn *c = &b->conns[i];
		if (c->st == B_DONE || !c->waiting || c->in_stall)
			continue;
		if ((t - c->last_rx) * 1000 > b->o->stall_ms) {
			c->in_stall = true;
			b->r->stalls++;
		}
	}
	if (b->hard_deadline > 0 && t >= b->hard_deadline) {
		b->r->timed_out = true;
		event_base_loopbreak(b->base);
	}
	if (b->o->requests == 0 && t >= b->deadline) {
		b->stopping = true;
		event_base_loopbreak(b->base);	/* duration mode: stop at the bell */
	}
	if (b->o->progress && t - b->last_progress >= 1.0) {
		double s = t - b->t0;
		fprintf(stderr, "\r%8.2f GiB  %7.3f GiB/s  %8llu req  %llu err  %llu stalls   ",
			(double)b->r->bytes_body / (1 << 30),
			s > 0 ? (double)b->r->bytes_body / (1 << 30) / s : 0.0,
			(unsigned long long)b->r->requests_ok, (unsigned long long)b->r->errors,
			(unsigned long long)b->r->stalls);
		b->last_progress = t;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t k = (size_t)ceil(p / 100.0 * (double)n);
	return v[k == 0 ? 0 : k - 1];
}

int bench_run(const struct bench_opts *o, struct bench_result *r)
{
	struct bench b;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	struct in6_addr tmp6;
	struct in_addr tmp4;
	int rc;

	memset(&b, 0, sizeof(b));
	memset(r, 0, sizeof(*r));
	b.o = o;
	b.r = r;
	rc = getaddrinfo(o->host, o->port, &hints, &b.ai);
	if (rc != 0) {
		snprintf(r->first_error, sizeof(r->first_error), "%.200s: %s", o->host, gai_strerror(rc));
		return -1;
	}
	b.is_ip = inet_pton(AF_INET, o->host, &tmp4) == 1 || inet_pton(AF_INET6, o->host, &tmp6) == 1;
	b.ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(b.ctx, TLS1_3_VERSION);
	SSL_CTX_set_verify(b.ctx, SSL_VERIFY_NONE, NULL);	/* a load tool: self-signed is fine */
	SSL_CTX_set_alpn_protos(b.ctx, (const unsigned char *)"\x08http/1.1", 9);
	if (o->ciphersuites != NULL && SSL_CTX_set_ciphersuites(b.ctx, o->ciphersuites) != 1) {
		snprintf(r->first_error, sizeof(r->first_error), "bad --ciphersuites");
		SSL_CTX_free(b.ctx);
		freeaddrinfo(b.ai);
		return -1;
	}
	b.req_len = (size_t)snprintf(b.req, sizeof(b.req),
				     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ktlsd-bench/%s\r\n\r\n",
				     o->path, o->host, PACKAGE_VERSION);
	/* same head as the GET's, so the same length: what raw mode needs to know */
	b.head_req_len = (size_t)snprintf(b.head_req, sizeof(b.head_req),
					  "HEAD %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ktlsd-bench/%s\r\n\r\n",
					  o->path, o->host, PACKAGE_VERSION);
	b.base = event_base_new();
	b.conns = calloc(o->conns, sizeof(*b.conns));
	b.t0 = now_s();
	b.deadline = b.t0 + o->duration;
	b.hard_deadline = o->timeout > 0 ? b.t0 + o->timeout : 0;
	b.tick = event_new(b.base, -1, EV_PERSIST, on_tick, &b);
	struct timeval tv = { 0, 100000 };
	event_add(b.tick, &tv);
	b.live = o->conns;
	for (unsigned i = 0; i < o->conns; i++) {
		b.conns[i].b = &b;
		b.conns[i].fd = -1;
		if (o->verify && o->have_sha)
			b.conns[i].sha = EVP_MD_CTX_new();
		conn_start(&b.conns[i]);
	}
	if (b.live > 0)
		event_base_dispatch(b.base);
	r->seconds = now_s() - b.t0;
	for (unsigned i = 0; i < o->conns; i++) {
		struct bconn *c = &b.conns[i];
		if (c->in_stall) {
			double ms = (now_s() - c->last_rx) * 1000;
			if (ms > r->longest_stall_ms)
				r->longest_stall_ms = ms;
		}
		if (c->waiting && !b.stopping && o->requests > 0)
			fail(c, "incomplete", r->timed_out ? "run timed out with a response in flight" :
			     "response incomplete");
		if (c->st != B_DONE)
			conn_close(c);
		EVP_MD_CTX_free(c->sha);
	}
	if (o->progress)
		fputc('\n', stderr);
	if (b.nlat > 0)	/* qsort(NULL, 0) is undefined */
		qsort(b.lat, b.nlat, sizeof(double), cmp_double);
	r->lat_p50 = pct(b.lat, b.nlat, 50);
	r->lat_p90 = pct(b.lat, b.nlat, 90);
	r->lat_p99 = pct(b.lat, b.nlat, 99);
	r->lat_max = b.nlat ? b.lat[b.nlat - 1] : 0;
	free(b.lat);
	free(b.conns);
	event_free(b.tick);
	event_base_free(b.base);
	SSL_CTX_free(b.ctx);
	freeaddrinfo(b.ai);
	return 0;
}

char *bench_http_get(const char *hostport, const char *path, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	char host[256], req[1200], *buf = NULL, *body;
	const char *colon = strrchr(hostport, ':');
	struct timeval tv = { 5, 0 };
	size_t len = 0, cap = 0, hl;
	int fd = -1, rc;
	ssize_t n;

	hl = colon ? (size_t)(colon - hostport) : 0;
	if (hostport[0] == '[' && hl >= 2 && hostport[hl - 1] == ']') {	/* [v6]:port */
		hostport++;
		hl -= 2;
	}
	if (colon == NULL || hl == 0 || hl >= sizeof(host) || colon[1] == '\0') {
		snprintf(err, errlen, "\"%s\": want HOST:PORT", hostport);
		return NULL;
	}
	memcpy(host, hostport, hl);
	host[hl] = '\0';
	if ((rc = getaddrinfo(host, colon + 1, &hints, &ai)) != 0) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
		return NULL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1 ||
	    connect(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
		snprintf(err, errlen, "connect %s:%s: %s", host, colon + 1, strerror(errno));
		goto fail;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		snprintf(err, errlen, "write: %s", strerror(errno));
		goto fail;
	}
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *p;
			if (cap >= (64u << 20)) {	/* a stats answer is far smaller */
				snprintf(err, errlen, "answer larger than 64 MiB");
				goto fail;
			}
			p = realloc(buf, cap = cap ? cap * 2 : 16384);
			if (p == NULL) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			buf = p;
		}
		n = read(fd, buf + len, 4096);
		if (n < 0) {
			snprintf(err, errlen, "read: %s", strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	freeaddrinfo(ai);
	if (buf == NULL || (buf[len] = '\0', strncmp(buf, "HTTP/1.", 7) != 0) ||
	    strncmp(buf + 8, " 200", 4) != 0 || (body = strstr(buf, "\r\n\r\n")) == NULL) {
		snprintf(err, errlen, "%s: %.60s", path, buf ? strtok(buf, "\r\n") : "no answer");
		free(buf);
		return NULL;
	}
	memmove(buf, body + 4, len - (size_t)(body + 4 - buf) + 1);
	return buf;
fail:
	if (fd != -1)
		close(fd);
	freeaddrinfo(ai);
	free(buf);
	return NULL;
}
