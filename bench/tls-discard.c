/* tls-discard.c — download a big file over TLS 1.3 without decrypting it: the cheapest
 * client, so that a slow or shared CPU measures the server and not the client.
 *
 *   tls-discard [-c N] [--warmup PATH] [--json] HOST PORT PATH
 *
 * Each of N connections (one process each): TCP connect, TLS 1.3 handshake (no
 * certificate check), one keep-alive GET of --warmup PATH (default /4k.bin) read through
 * OpenSSL — it also consumes the session tickets — then GET PATH: the TLS record(s) that
 * carry the response head are decrypted, and from there on the body is read as raw TLS
 * records with 1 MiB recv() calls, counting plaintext as record length − 17 (16-byte AEAD
 * tag + content type; no padding). Like the reader of bench/raw-ktls, and unlike
 * `ktlsd-bench --discard -n 1`, which decrypts the first response of each connection,
 * i.e. all of it when each connection makes one request.
 * The time is from sending GET PATH on the first connection to the last byte on the last.
 * Exit 0 if every connection got its whole body, 1 otherwise, 2 on usage. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define TLS13_OVERHEAD 17

struct report {
	double t0, t1;
	uint64_t body, wire;
	int ok;
	char err[160];
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int failf(struct report *r, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[120];

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "%s", errno ? strerror(errno) : "closed");
	snprintf(r->err, sizeof(r->err), "%s: %s", what, buf);
	return -1;
}

/* Read one response head (and whatever of the body shares its records) through OpenSSL.
 * Returns the body bytes still due after what was decrypted, or -1. */
static long long read_head(SSL *ssl, struct report *r, char *buf, size_t cap,
			   uint64_t *body_got)
{
	size_t got = 0, k;
	char *end;

	for (;;) {
		if (got == cap - 1) {
			errno = EMSGSIZE;
			return failf(r, "response head too long");
		}
		if (SSL_read_ex(ssl, buf + got, cap - 1 - got, &k) != 1)
			return failf(r, "TLS read (head)");
		got += k;
		buf[got] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) != NULL)
			break;
	}
	if (strncmp(buf, "HTTP/1.1 200", 12) != 0) {
		errno = EPROTO;
		snprintf(r->err, sizeof(r->err), "status: %.60s", buf);
		return -1;
	}
	char *cl = strcasestr(buf, "\r\ncontent-length:");
	if (cl == NULL) {
		errno = EPROTO;
		return failf(r, "no Content-Length");
	}
	long long len = strtoll(cl + 17, NULL, 10);
	size_t extra = got - (size_t)(end + 4 - buf);
	*body_got = extra;
	return len - (long long)extra;
}

static int get(SSL *ssl, const char *host, const char *path, struct report *r)
{
	char req[1400];
	int n = snprintf(req, sizeof(req), "GET %.1200s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host);
	size_t k;

	if (SSL_write_ex(ssl, req, (size_t)n, &k) != 1 || k != (size_t)n)
		return failf(r, "TLS write");
	return 0;
}

static void one_conn(const struct sockaddr_in *a, const char *host, const char *warm,
		     const char *path, struct report *r)
{
	static char buf[1 << 20];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	int fd, one = 1;
	uint64_t got;
	long long left;

	memset(r, 0, sizeof(*r));
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1 || connect(fd, (const struct sockaddr *)a, sizeof(*a)) == -1) {
		failf(r, "connect");
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1) {
		failf(r, "handshake");
		return;
	}
	/* warm-up response, decrypted: after it the tickets are consumed */
	if (get(ssl, host, warm, r) == -1)
		return;
	left = read_head(ssl, r, buf, sizeof(buf), &got);
	while (left > 0) {
		size_t k;
		if (SSL_read_ex(ssl, buf, (size_t)left < sizeof(buf) ? (size_t)left : sizeof(buf),
				&k) != 1) {
			failf(r, "TLS read (warm-up body)");
			return;
		}
		left -= (long long)k;
	}
	if (left < 0 || SSL_pending(ssl) > 0 || SSL_has_pending(ssl)) {
		errno = EPROTO;
		failf(r, "warm-up response: unexpected extra bytes");
		return;
	}
	r->t0 = now_s();
	if (get(ssl, host, path, r) == -1)
		return;
	left = read_head(ssl, r, buf, 65536, &got);
	if (left < 0)
		return;
	r->body = got;
	/* plaintext left in the record OpenSSL holds */
	while (left > 0 && SSL_pending(ssl) > 0) {
		size_t k;
		if (SSL_read_ex(ssl, buf, (size_t)SSL_pending(ssl), &k) != 1) {
			failf(r, "TLS read (pending)");
			return;
		}
		left -= (long long)k;
		r->body += k;
	}
	if (SSL_has_pending(ssl)) {
		errno = EPROTO;
		failf(r, "OpenSSL read ahead: cannot switch to raw records");
		return;
	}
	/* raw records from here on */
	unsigned char hdr[5];
	size_t hdr_got = 0, rec_left = 0;
	while (left > 0 || rec_left > 0) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			failf(r, n == 0 ? "closed early" : "recv");
			return;
		}
		r->wire += (uint64_t)n;
		for (size_t i = 0; i < (size_t)n;) {
			if (rec_left > 0) {
				size_t k = (size_t)n - i < rec_left ? (size_t)n - i : rec_left;
				rec_left -= k;
				i += k;
				continue;
			}
			hdr[hdr_got++] = (unsigned char)buf[i++];
			if (hdr_got < 5)
				continue;
			hdr_got = 0;
			rec_left = (size_t)hdr[3] << 8 | hdr[4];
			if (hdr[0] != 23 || rec_left <= TLS13_OVERHEAD) {
				errno = EPROTO;
				failf(r, "unexpected TLS record");
				return;
			}
			left -= (long long)(rec_left - TLS13_OVERHEAD);
			r->body += rec_left - TLS13_OVERHEAD;
		}
	}
	r->t1 = now_s();
	if (left != 0) {
		errno = EPROTO;
		failf(r, "more plaintext than Content-Length");
		return;
	}
	r->ok = 1;
	close(fd);	/* no close_notify: we cannot encrypt in sequence any more */
}

int main(int argc, char **argv)
{
	const char *warm = "/4k.bin";
	int conns = 1, json = 0, i;

	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			conns = atoi(argv[++i]);
		else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc)
			warm = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else
			break;
	}
	struct sockaddr_in a = { .sin_family = AF_INET };
	if (argc - i != 3 || conns < 1 || conns > 1000 ||
	    inet_pton(AF_INET, argv[i], &a.sin_addr) != 1) {
		fprintf(stderr, "Usage: tls-discard [-c N] [--warmup PATH] [--json] IPV4 PORT PATH\n");
		return 2;
	}
	a.sin_port = htons((unsigned short)atoi(argv[i + 1]));
	const char *host = argv[i], *path = argv[i + 2];

	struct report *rs = calloc((size_t)conns, sizeof(*rs));
	int (*pipes)[2] = calloc((size_t)conns, sizeof(*pipes));
	pid_t *pids = calloc((size_t)conns, sizeof(*pids));
	for (int c = 0; c < conns; c++) {
		if (pipe(pipes[c]) == -1 || (pids[c] = fork()) == -1) {
			perror("tls-discard: pipe/fork");
			return 1;
		}
		if (pids[c] == 0) {
			struct report r;
			close(pipes[c][0]);
			one_conn(&a, host, warm, path, &r);
			if (write(pipes[c][1], &r, sizeof(r)) != (ssize_t)sizeof(r))
				_exit(1);
			_exit(0);
		}
		close(pipes[c][1]);
	}
	double t0 = 0, t1 = 0;
	uint64_t body = 0, wire = 0;
	int ok = 0;
	const char *err = NULL;
	struct rusage ru;
	for (int c = 0; c < conns; c++) {
		if (read(pipes[c][0], &rs[c], sizeof(rs[c])) != (ssize_t)sizeof(rs[c]))
			snprintf(rs[c].err, sizeof(rs[c].err), "connection process died");
		waitpid(pids[c], NULL, 0);
		if (!rs[c].ok) {
			if (err == NULL)
				err = rs[c].err;
			continue;
		}
		ok++;
		body += rs[c].body;
		wire += rs[c].wire;
		if (t0 == 0 || rs[c].t0 < t0)
			t0 = rs[c].t0;
		if (rs[c].t1 > t1)
			t1 = rs[c].t1;
	}
	getrusage(RUSAGE_CHILDREN, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	double secs = t1 > t0 ? t1 - t0 : 0;
	double gibs = secs > 0 ? (double)body / (1 << 30) / secs : 0;
	if (json)
		printf("{\"connections\":%d,\"ok\":%d,\"bytes_body\":%llu,\"bytes_wire\":%llu,"
		       "\"seconds\":%.4f,\"gib_per_s\":%.4f,\"client_cpu_s\":%.3f,\"error\":\"%s\"}\n",
		       conns, ok, (unsigned long long)body, (unsigned long long)wire, secs, gibs, cpu,
		       err ? err : "");
	else
		printf("tls-discard: %d/%d connections ok, %.1f MiB body in %.3f s = %.4f GiB/s "
		       "(client CPU %.2f s)%s%s\n", ok, conns, (double)body / (1 << 20), secs, gibs,
		       cpu, err ? "; first error: " : "", err ? err : "");
	return ok == conns ? 0 : 1;
}
