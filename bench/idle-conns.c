/* idle-conns.c — open N TLS 1.3 connections to a server and hold them idle, for measuring
 * the server's memory per idle connection (bench/idle-rss, BENCHMARKS.md).
 *
 *   idle-conns [--get PATH] [--hold S] [--batch B] HOST PORT N
 *
 * Each connection: TCP connect, TLS 1.3 handshake (no certificate check), and with --get
 * one keep-alive "GET PATH" whose response is read completely, so the server holds an
 * idle keep-alive connection. B handshakes are in flight at a time (default 64), driven
 * by poll(). When all N are up it prints "ready N" on stdout and then waits until stdin
 * reaches EOF (or --hold seconds pass, default 600), and exits, closing everything.
 * Errors: "error ..." on stdout and exit 1. RLIMIT_NOFILE is raised as far as allowed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

enum st { S_CONNECT, S_HS, S_SEND, S_READ, S_IDLE, S_FREE };

struct conn {
	int fd;
	SSL *ssl;
	enum st st;
	size_t off;
	char head[8192];
	size_t got;
	long long body_left;	/* -1: head not complete yet */
};

static const char *get_path;
static char req[1200];
static size_t req_len;
static struct sockaddr_in addr;
static SSL_CTX *ctx;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what, unsigned long n)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "%s", errno ? strerror(errno) : "closed");
	printf("error %s (connection %lu): %s\n", what, n, buf);
	fflush(stdout);
	exit(1);
}

static void start(struct conn *c, unsigned long n)
{
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1)
		fail("socket", n);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) == -1 && errno != EINPROGRESS)
		fail("connect", n);
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL)
		fail("SSL_new", n);
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_connect_state(c->ssl);
	c->st = S_CONNECT;
	c->off = c->got = 0;
	c->body_left = -1;
}

/* Advance c; returns the poll events it waits for, or 0 when it is idle (done). */
static short step(struct conn *c, unsigned long n)
{
	int r, e;
	size_t k;

	for (;;) {
		switch (c->st) {
		case S_CONNECT: {
			int err = 0;
			socklen_t l = sizeof(err);
			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
			if (err) {
				errno = err;
				fail("connect", n);
			}
			c->st = S_HS;
			break;
		}
		case S_HS:
			ERR_clear_error();
			r = SSL_do_handshake(c->ssl);
			if (r != 1) {
				e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_WANT_READ)
					return POLLIN;
				if (e == SSL_ERROR_WANT_WRITE)
					return POLLOUT;
				fail("handshake", n);
			}
			if (SSL_version(c->ssl) != TLS1_3_VERSION) {
				errno = EPROTO;
				fail("not TLS 1.3", n);
			}
			c->st = get_path ? S_SEND : S_IDLE;
			break;
		case S_SEND:
			ERR_clear_error();
			r = SSL_write_ex(c->ssl, req + c->off, req_len - c->off, &k);
			if (r != 1) {
				e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_WANT_READ)
					return POLLIN;
				if (e == SSL_ERROR_WANT_WRITE)
					return POLLOUT;
				fail("write", n);
			}
			c->off += k;
			if (c->off == req_len)
				c->st = S_READ;
			break;
		case S_READ: {
			char buf[16384];
			char *dst = c->body_left < 0 ? c->head + c->got : buf;
			size_t room = c->body_left < 0 ? sizeof(c->head) - 1 - c->got : sizeof(buf);
			if (c->body_left == 0) {
				c->st = S_IDLE;
				break;
			}
			if (room == 0) {
				errno = EMSGSIZE;
				fail("response head too long", n);
			}
			ERR_clear_error();
			r = SSL_read_ex(c->ssl, dst, room, &k);
			if (r != 1) {
				e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_WANT_READ)
					return POLLIN;
				if (e == SSL_ERROR_WANT_WRITE)
					return POLLOUT;
				fail("read", n);
			}
			if (c->body_left >= 0) {
				c->body_left -= (long long)k;
				if (c->body_left < 0) {
					errno = EPROTO;
					fail("more bytes than Content-Length", n);
				}
				break;
			}
			c->got += k;
			c->head[c->got] = '\0';
			char *end = strstr(c->head, "\r\n\r\n");
			if (end == NULL)
				break;
			if (strncmp(c->head, "HTTP/1.1 200", 12) != 0) {
				errno = EPROTO;
				fail("status is not 200", n);
			}
			char *cl = strcasestr(c->head, "\r\ncontent-length:");
			if (cl == NULL) {
				errno = EPROTO;
				fail("no Content-Length", n);
			}
			c->body_left = strtoll(cl + 17, NULL, 10) -
				       (long long)(c->got - (size_t)(end + 4 - c->head));
			break;
		}
		case S_IDLE:
			return 0;
		case S_FREE:
			return 0;
		}
	}
}

static void raise_nofile(unsigned long n)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)n + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_cur >= want)
		return;
	if (rl.rlim_max < want) {
		struct rlimit up = { want, want };
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

int main(int argc, char **argv)
{
	double hold = 600;
	unsigned long batch = 64;
	int i;

	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
		if (strcmp(argv[i], "--get") == 0 && i + 1 < argc)
			get_path = argv[++i];
		else if (strcmp(argv[i], "--hold") == 0 && i + 1 < argc)
			hold = atof(argv[++i]);
		else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
			batch = strtoul(argv[++i], NULL, 10);
		else
			break;
	}
	if (argc - i != 3 || batch == 0) {
		fprintf(stderr, "Usage: idle-conns [--get PATH] [--hold S] [--batch B] HOST PORT N\n");
		return 2;
	}
	unsigned long n = strtoul(argv[i + 2], NULL, 10);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)atoi(argv[i + 1]));
	if (n == 0 || inet_pton(AF_INET, argv[i], &addr.sin_addr) != 1) {
		fprintf(stderr, "idle-conns: HOST must be an IPv4 address and N > 0\n");
		return 2;
	}
	if (get_path) {
		req_len = (size_t)snprintf(req, sizeof(req),
					   "GET %.1000s HTTP/1.1\r\nHost: %s\r\n\r\n", get_path, argv[i]);
	}
	raise_nofile(n);

	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);	/* the client's memory is not measured,
								   but keep it small */
	struct conn *cs = calloc(n, sizeof(*cs));
	struct pollfd *pfd = calloc(batch, sizeof(*pfd));
	unsigned long *idx = calloc(batch, sizeof(*idx));
	if (cs == NULL || pfd == NULL || idx == NULL) {
		printf("error out of memory\n");
		return 1;
	}
	double t0 = now_s();
	unsigned long next = 0, done = 0;
	/* a sliding window of `batch` connections in progress */
	unsigned long *active = calloc(batch, sizeof(*active));
	unsigned long nactive = 0;
	while (done < n) {
		while (nactive < batch && next < n) {
			start(&cs[next], next);
			active[nactive++] = next++;
		}
		unsigned long np = 0;
		for (unsigned long a = 0; a < nactive;) {
			unsigned long c = active[a];
			short ev = step(&cs[c], c);
			if (ev == 0) {
				done++;
				active[a] = active[--nactive];
				continue;
			}
			pfd[np].fd = cs[c].fd;
			pfd[np].events = ev;
			idx[np++] = c;
			a++;
		}
		if (np == 0)
			continue;
		if (poll(pfd, np, 10000) == 0) {
			errno = ETIMEDOUT;
			fail("no progress for 10 s", idx[0]);
		}
		if (now_s() - t0 > hold) {
			errno = ETIMEDOUT;
			fail("setting up took longer than --hold", done);
		}
	}
	printf("ready %lu %.2f\n", n, now_s() - t0);
	fflush(stdout);

	/* hold: wait for EOF on stdin, bounded by --hold */
	double deadline = now_s() + hold;
	for (;;) {
		double left = deadline - now_s();
		if (left <= 0)
			break;
		struct pollfd p = { .fd = 0, .events = POLLIN };
		int r = poll(&p, 1, (int)(left * 1000) + 1);
		if (r > 0) {
			char b[256];
			ssize_t k = read(0, b, sizeof(b));
			if (k <= 0)
				break;
		}
	}
	return 0;
}
