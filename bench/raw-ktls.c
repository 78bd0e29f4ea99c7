/* raw-ktls.c — the kernel's kTLS + sendfile() ceiling on this machine, without a server.
 *
 * No handshake: a loopback TCP pair, TCP_ULP "tls" and SOL_TLS/TLS_TX with a fixed TLS 1.3
 * AES-GCM key on the sending side, then sendfile() of a file into it. A forked reader
 * reads the ciphertext records and throws them away (no decryption: the receive side has
 * no TLS_RX), so the time is the sender's kernel: TLS record framing, software or
 * accelerated AES-GCM, TCP over loopback. ktlsd's kTLS throughput is compared against it
 * (bench/uml-compare, BENCHMARKS.md).
 *
 *   raw-ktls [--cipher aes128|aes256|plain] [--chunk N] [--repeat R] [--json] FILE
 *
 * --chunk N   at most N bytes per sendfile() call (0, the default: the whole rest of the
 *             file per call, i.e. the kernel's own loop; ktlsd uses 65536)
 * --cipher plain  no kTLS at all: the plain TCP sendfile() ceiling
 * Exit: 0; 77 if the kernel has no kTLS (no tls ULP); 1 on errors; 2 on usage. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/tls.h>

#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef SOL_TLS
#define SOL_TLS 282
#endif

#define REC_PLAIN 16384u
#define REC_OVERHEAD 22u	/* 5-byte header + 1 content type + 16-byte tag */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "raw-ktls: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A connected loopback pair: *tx is the connecting end, *rx the accepted one. */
static void tcp_pair(int *tx, int *rx)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l == -1)
		die("socket");
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) == -1 || listen(l, 1) == -1 ||
	    getsockname(l, (struct sockaddr *)&a, &al) == -1)
		die("bind/listen 127.0.0.1:0");
	*tx = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*tx == -1 || connect(*tx, (struct sockaddr *)&a, sizeof(a)) == -1)
		die("connect");
	*rx = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (*rx == -1)
		die("accept");
	close(l);
}

/* Fixed, obviously-not-secret key material: this is a benchmark of the kernel's loop. */
static int set_tls_tx(int fd, const char *cipher)
{
	if (setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) == -1) {
		if (errno == ENOENT || errno == ENOPROTOOPT) {
			fprintf(stderr, "raw-ktls: kernel has no tls ULP (%s): no kTLS here\n",
				strerror(errno));
			exit(77);
		}
		die("setsockopt TCP_ULP tls");
	}
	if (strcmp(cipher, "aes128") == 0) {
		struct tls12_crypto_info_aes_gcm_128 ci;
		memset(&ci, 0, sizeof(ci));
		ci.info.version = TLS_1_3_VERSION;
		ci.info.cipher_type = TLS_CIPHER_AES_GCM_128;
		memset(ci.key, 0x11, sizeof(ci.key));
		memset(ci.iv, 0x22, sizeof(ci.iv));
		memset(ci.salt, 0x33, sizeof(ci.salt));
		return setsockopt(fd, SOL_TLS, TLS_TX, &ci, sizeof(ci));
	} else {
		struct tls12_crypto_info_aes_gcm_256 ci;
		memset(&ci, 0, sizeof(ci));
		ci.info.version = TLS_1_3_VERSION;
		ci.info.cipher_type = TLS_CIPHER_AES_GCM_256;
		memset(ci.key, 0x11, sizeof(ci.key));
		memset(ci.iv, 0x22, sizeof(ci.iv));
		memset(ci.salt, 0x33, sizeof(ci.salt));
		return setsockopt(fd, SOL_TLS, TLS_TX, &ci, sizeof(ci));
	}
}

/* The reader: count bytes to EOF, write the count to `out`, exit. */
static void reader(int rx, int out)
{
	static char buf[1 << 20];
	uint64_t n = 0;
	ssize_t k;

	while ((k = read(rx, buf, sizeof(buf))) != 0) {
		if (k < 0) {
			if (errno == EINTR)
				continue;
			die("reader read");
		}
		n += (uint64_t)k;
	}
	if (write(out, &n, sizeof(n)) != (ssize_t)sizeof(n))
		die("reader report");
	_exit(0);
}

static double tv(const struct timeval *t)
{
	return (double)t->tv_sec + (double)t->tv_usec / 1e6;
}

static double cpu_diff(const struct rusage *a, const struct rusage *b)
{
	return tv(&b->ru_utime) - tv(&a->ru_utime) + tv(&b->ru_stime) - tv(&a->ru_stime);
}

struct one { double secs, tx_cpu, rx_cpu; uint64_t wire, calls; };

static struct one run_once(int file, off_t size, const char *cipher, size_t chunk)
{
	struct one r = { 0, 0, 0, 0, 0 };
	struct rusage s0, s1, c0, c1;
	int tx, rx, p[2];
	pid_t pid;

	tcp_pair(&tx, &rx);
	if (strcmp(cipher, "plain") != 0 && set_tls_tx(tx, cipher) == -1)
		die(strcmp(cipher, "aes128") == 0 ? "setsockopt TLS_TX AES-128-GCM" :
		    "setsockopt TLS_TX AES-256-GCM");
	if (pipe2(p, O_CLOEXEC) == -1)
		die("pipe");
	pid = fork();
	if (pid == -1)
		die("fork");
	if (pid == 0) {
		close(tx);
		close(p[0]);
		reader(rx, p[1]);
	}
	close(rx);
	close(p[1]);

	getrusage(RUSAGE_SELF, &s0);
	getrusage(RUSAGE_CHILDREN, &c0);
	double t0 = now_s();
	off_t off = 0;
	while (off < size) {
		size_t want = (size_t)(size - off);
		if (chunk > 0 && want > chunk)
			want = chunk;
		ssize_t k = sendfile(tx, file, &off, want);
		if (k < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die("sendfile");
		}
		if (k == 0) {
			errno = EIO;
			die("sendfile returned 0 before the end of the file");
		}
		r.calls++;
	}
	close(tx);	/* FIN after the last record */
	if (read(p[0], &r.wire, sizeof(r.wire)) != (ssize_t)sizeof(r.wire))
		die("reading the reader's count");
	r.secs = now_s() - t0;
	close(p[0]);
	waitpid(pid, NULL, 0);
	getrusage(RUSAGE_SELF, &s1);
	getrusage(RUSAGE_CHILDREN, &c1);
	r.tx_cpu = cpu_diff(&s0, &s1);
	r.rx_cpu = cpu_diff(&c0, &c1);
	return r;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: raw-ktls [--cipher aes128|aes256|plain] [--chunk N] [--repeat R] "
		   "[--json] FILE\n");
}

int main(int argc, char **argv)
{
	const char *cipher = "aes128", *path = NULL;
	size_t chunk = 0;
	int repeat = 1;
	int json = 0;
	struct stat st;

	signal(SIGPIPE, SIG_IGN);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--cipher") == 0 && i + 1 < argc)
			cipher = argv[++i];
		else if (strcmp(argv[i], "--chunk") == 0 && i + 1 < argc)
			chunk = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
			repeat = atoi(argv[++i]);
		else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] != '-' && path == NULL)
			path = argv[i];
		else {
			usage(stderr);
			return 2;
		}
	}
	if (path == NULL || repeat < 1 ||
	    (strcmp(cipher, "aes128") != 0 && strcmp(cipher, "aes256") != 0 &&
	     strcmp(cipher, "plain") != 0)) {
		usage(stderr);
		return 2;
	}
	int file = open(path, O_RDONLY | O_CLOEXEC);
	if (file == -1 || fstat(file, &st) == -1)
		die(path);
	if (st.st_size == 0) {
		fprintf(stderr, "raw-ktls: %s is empty\n", path);
		return 2;
	}
	uint64_t size = (uint64_t)st.st_size;
	uint64_t records = (size + REC_PLAIN - 1) / REC_PLAIN;
	for (int i = 0; i < repeat; i++) {
		struct one r = run_once(file, st.st_size, cipher, chunk);
		double gibs = (double)size / (1 << 30) / r.secs;
		int tls = strcmp(cipher, "plain") != 0;
		/* the record count the wire length implies; with chunked calls that do not end on
		 * a 16 KiB boundary the kernel ends a record per call, so more, shorter records */
		uint64_t recs = tls ? (r.wire - size) / REC_OVERHEAD : 0;
		if (tls && (r.wire - size) % REC_OVERHEAD != 0)
			fprintf(stderr, "raw-ktls: wire bytes %llu do not fit whole records\n",
				(unsigned long long)r.wire);
		if (!tls && r.wire != size) {
			fprintf(stderr, "raw-ktls: reader got %llu bytes, sent %llu\n",
				(unsigned long long)r.wire, (unsigned long long)size);
			return 1;
		}
		if (json)
			printf("{\"cipher\":\"%s\",\"chunk\":%zu,\"bytes\":%llu,\"wire_bytes\":%llu,"
			       "\"records\":%llu,\"min_records\":%llu,\"sendfile_calls\":%llu,"
			       "\"seconds\":%.4f,\"gib_per_s\":%.4f,\"sender_cpu_s\":%.3f,"
			       "\"reader_cpu_s\":%.3f}\n",
			       cipher, chunk, (unsigned long long)size, (unsigned long long)r.wire,
			       (unsigned long long)recs, (unsigned long long)(tls ? records : 0),
			       (unsigned long long)r.calls, r.secs, gibs, r.tx_cpu, r.rx_cpu);
		else {
			char per[48];
			if (chunk)
				snprintf(per, sizeof(per), "%zu bytes", chunk);
			else
				snprintf(per, sizeof(per), "the whole rest");
			printf("raw-ktls: %s, sendfile() %s per call: %.1f MiB in %.3f s = "
			       "%.4f GiB/s (%llu calls, %llu records; CPU: sender %.2f s, reader %.2f s)\n",
			       tls ? (strcmp(cipher, "aes128") == 0 ? "kTLS TLS 1.3 AES-128-GCM" :
				      "kTLS TLS 1.3 AES-256-GCM") : "plain TCP",
			       per, (double)size / (1 << 20), r.secs, gibs,
			       (unsigned long long)r.calls, (unsigned long long)recs, r.tx_cpu,
			       r.rx_cpu);
		}
		fflush(stdout);
	}
	close(file);
	return 0;
}
