/* bench_matrix.c — ktlsd-bench --matrix: which send mode and socket switches are fastest
 * and stall-free on this kernel? Starts ktlsd (--demo, on free loopback ports) once per
 * combination, runs one bounded download, asks the daemon's stats endpoint what it saw,
 * and prints one table (or JSON), optionally an SVG bar chart. */
#include "autoconf.h"
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LIST 8

struct cell {
	const char *mode;
	long mss, lowat;
	struct bench_result r;
	bool started, complete;
	char tls_tx[16], cause[24];
	long server_stalls, mitigations;
	double gibs;
	char verdict[48];
};

struct matrix {
	const char *modes[MAX_LIST];
	size_t nmodes;
	long mss[MAX_LIST], lowat[MAX_LIST];
	size_t nmss, nlowat;
	unsigned long long size;
	double seconds;
	const char *ktlsd, *format, *svg;
	bool discard;
	long chunk;
	char dir[PATH_MAX];
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ktlsd-bench --matrix --file SIZE [options]\n"
		"\n"
		"Start ktlsd for every combination of send mode, MSS and TCP_NOTSENT_LOWAT, download\n"
		"one file of SIZE bytes (suffix K, M, G) from each, and print one table.\n"
		"\n"
		"  --modes LIST     send modes (default sendfile,splice,write,userspace)\n"
		"  --mss LIST       TCP_MAXSEG values, 0 = kernel default (default 0)\n"
		"  --lowat LIST     TCP_NOTSENT_LOWAT values, 0 = default (default 0)\n"
		"  --send-chunk N   passed to ktlsd (default: ktlsd's)\n"
		"  --seconds S      bound on each download (default 20)\n"
		"  --discard        count records instead of decrypting (client cost out)\n"
		"  --ktlsd PATH     the daemon (default: $KTLSD, next to ktlsd-bench, or PATH)\n"
		"  --format F       table (default) or json\n"
		"  --svg FILE       also draw the throughput as a bar chart\n"
		"\n"
		"Verdicts: ok; stalls (the server or the client saw a stall, or the download did not\n"
		"finish in time); rescued by auto (send mode auto mitigated a stall and finished);\n"
		"slower than best by N%% (more than 10%% below the best ok cell).\n");
}

static size_t split(char *s, const char **out, size_t max)
{
	size_t n = 0;

	for (char *t = strtok(s, ","); t != NULL && n < max; t = strtok(NULL, ","))
		out[n++] = t;
	return n;
}

static int parse_longs(char *s, long *out, size_t *n)
{
	const char *parts[MAX_LIST];
	size_t k = split(s, parts, MAX_LIST);

	for (size_t i = 0; i < k; i++) {
		char *end;
		out[i] = strtol(parts[i], &end, 10);
		if (*end != '\0' || out[i] < 0)
			return -1;
	}
	*n = k;
	return k > 0 ? 0 : -1;
}

static int parse_size(const char *s, unsigned long long *v)
{
	char *end;
	double d = strtod(s, &end);

	if (end == s || d <= 0)
		return -1;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': d *= 1024; end++; break;
	case 'm': case 'M': d *= 1024 * 1024; end++; break;
	case 'g': case 'G': d *= 1024.0 * 1024 * 1024; end++; break;
	default: return -1;
	}
	if (*end == 'i' || *end == 'B')
		end++;
	if (*end == 'B')
		end++;
	if (*end != '\0')
		return -1;
	*v = (unsigned long long)d;
	return 0;
}

static const char *find_ktlsd(const char *opt)
{
	static char buf[PATH_MAX];
	char self[PATH_MAX];
	ssize_t n;

	if (opt != NULL)
		return opt;
	if (getenv("KTLSD") != NULL)
		return getenv("KTLSD");
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		snprintf(buf, sizeof(buf), "%s/ktlsd", dirname(self));
		if (access(buf, X_OK) == 0)
			return buf;
		/* installed: ktlsd-bench in bin/, ktlsd in sbin/ */
		snprintf(buf, sizeof(buf), "%s/../sbin/ktlsd", dirname(self));
		if (access(buf, X_OK) == 0)
			return buf;
	}
	return "ktlsd";
}

/* Read the bound ports from ktlsd's error log; wait up to 10 s for "ready:". */
static int wait_ready(const char *log, pid_t pid, int *port, int *stats_port)
{
	for (int i = 0; i < 500; i++) {
		char buf[8192];
		FILE *f = fopen(log, "re");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		if (f)
			fclose(f);
		buf[n] = '\0';
		const char *l = strstr(buf, "listening on ");
		const char *s = strstr(buf, "stats on ");
		if (strstr(buf, "ready:") && l && s) {
			l = strstr(l, "(bound ");
			s = strstr(s, "(bound ");
			if (l && s) {
				l = strchr(l, ':');
				s = strchr(s, ':');
			}
			if (l && s) {
				*port = atoi(l + 1);
				*stats_port = atoi(s + 1);
				return 0;
			}
		}
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		usleep(20000);
	}
	return -1;
}

/* GET path from the plain-HTTP stats listener; returns a malloc'd body or NULL. */
static char *http_get(int port, const char *path)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { 5, 0 };
	char req[256], *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;

	if (fd == -1)
		return NULL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == -1) {
		close(fd);
		return NULL;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	if (write(fd, req, strlen(req)) < 0) {
		close(fd);
		return NULL;
	}
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *p = realloc(buf, cap = cap ? cap * 2 : 16384);
			if (p == NULL)
				break;
			buf = p;
		}
		n = read(fd, buf + len, 4096);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (buf == NULL)
		return NULL;
	buf[len] = '\0';
	return buf;
}

/* Tiny field reader for the first record of /stats/recent (our own JSON, flat keys). */
static long json_long(const char *j, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = j ? strstr(j, pat) : NULL;
	return p ? strtol(p + strlen(pat), NULL, 10) : -1;
}

static void json_strval(const char *j, const char *key, char *out, size_t outsz)
{
	char pat[64];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	snprintf(out, outsz, "-");
	p = j ? strstr(j, pat) : NULL;
	if (p == NULL)
		return;
	p += strlen(pat);
	e = strchr(p, '"');
	if (e != NULL && (size_t)(e - p) < outsz)
		snprintf(out, outsz, "%.*s", (int)(e - p), p);
}

static void run_cell(struct matrix *m, struct cell *c)
{
	char log[PATH_MAX + 32], url[64], mss[16], lowat[16], chunk[32], root[PATH_MAX + 8];
	int port = 0, sport = 0;
	pid_t pid;

	snprintf(log, sizeof(log), "%s/ktlsd-%s-%ld-%ld.log", m->dir, c->mode, c->mss, c->lowat);
	snprintf(root, sizeof(root), "%s/root", m->dir);
	snprintf(mss, sizeof(mss), "%ld", c->mss);
	snprintf(lowat, sizeof(lowat), "%ld", c->lowat);
	snprintf(chunk, sizeof(chunk), "%ld", m->chunk);
	pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
		const char *argv[32] = { m->ktlsd, "--demo", root, "--listen", "127.0.0.1:0",
			"--stats-listen", "127.0.0.1:0", "--send-mode", c->mode, "--mss", mss,
			"--notsent-lowat", lowat, "--error-log", log, "--access-log", "off",
			"--log-level", "notice" };
		int k = 19;
		if (m->chunk > 0) {
			argv[k++] = "--send-chunk";
			argv[k++] = chunk;
		}
		argv[k] = NULL;
		execvp(m->ktlsd, (char *const *)argv);
		_exit(127);
	}
	if (pid < 0 || wait_ready(log, pid, &port, &sport) == -1) {
		snprintf(c->verdict, sizeof(c->verdict), "ktlsd did not start");
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		return;
	}
	c->started = true;
	struct bench_opts o;
	memset(&o, 0, sizeof(o));
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/f.bin", port);
	bench_parse_url(url, &o);
	o.conns = 1;
	o.requests = 1;
	o.timeout = m->seconds;
	o.stall_ms = 1000;
	o.discard = m->discard;
	o.format = "table";
	bench_run(&o, &c->r);
	c->complete = c->r.requests_ok == 1 && c->r.errors == 0 && !c->r.timed_out;
	c->gibs = c->r.seconds > 0 ? (double)c->r.bytes_body / (1 << 30) / c->r.seconds : 0;
	usleep(200000);	/* let the daemon close the connection and file its record */
	char *j = http_get(sport, "/stats/recent");
	const char *rec = j ? strstr(j, "\"recent\":[{") : NULL;
	c->server_stalls = json_long(rec, "stalls");
	c->mitigations = json_long(rec, "mitigations");
	json_strval(rec, "tls_tx", c->tls_tx, sizeof(c->tls_tx));
	snprintf(c->cause, sizeof(c->cause), "-");
	if (rec && strstr(rec, "\"last_stall\":"))
		json_strval(strstr(rec, "\"last_stall\":"), "cause", c->cause, sizeof(c->cause));
	free(j);
	kill(pid, SIGTERM);
	for (int i = 0; i < 250 && waitpid(pid, NULL, WNOHANG) == 0; i++)
		usleep(20000);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void verdicts(struct cell *cells, size_t n)
{
	double best = 0;

	for (size_t i = 0; i < n; i++)
		if (cells[i].complete && cells[i].server_stalls <= 0 && cells[i].r.stalls == 0 &&
		    cells[i].gibs > best)
			best = cells[i].gibs;
	for (size_t i = 0; i < n; i++) {
		struct cell *c = &cells[i];
		if (!c->started)
			continue;
		if (c->complete && c->mitigations > 0)
			snprintf(c->verdict, sizeof(c->verdict), "rescued by auto");
		else if (!c->complete || c->server_stalls > 0 || c->r.stalls > 0)
			snprintf(c->verdict, sizeof(c->verdict), "stalls");
		else if (best > 0 && c->gibs < best * 0.9)
			snprintf(c->verdict, sizeof(c->verdict), "slower than best by %.0f%%",
				 (1 - c->gibs / best) * 100);
		else
			snprintf(c->verdict, sizeof(c->verdict), "ok");
	}
}

static void print_table(const struct matrix *m, const struct cell *cells, size_t n)
{
	printf("file %llu bytes, one download per cell, bound %.0f s, %s client\n", m->size,
	       m->seconds, m->discard ? "discarding" : "decrypting");
	printf("%-10s %6s %6s %-9s %9s %8s %7s %9s %7s %-13s %s\n", "mode", "mss", "lowat", "tls_tx",
	       "MiB/s", "done", "stalls", "longest", "server", "cause", "verdict");
	for (size_t i = 0; i < n; i++) {
		const struct cell *c = &cells[i];
		printf("%-10s %6ld %6ld %-9s %9.1f %8s %7llu %7.0fms %7ld %-13s %s\n", c->mode, c->mss,
		       c->lowat, c->tls_tx[0] ? c->tls_tx : "-", c->gibs * 1024,
		       c->complete ? "yes" : "NO", (unsigned long long)c->r.stalls,
		       c->r.longest_stall_ms, c->server_stalls, c->cause, c->verdict);
	}
}

static void print_json(const struct matrix *m, const struct cell *cells, size_t n)
{
	printf("{\"file_bytes\":%llu,\"seconds_bound\":%.1f,\"cells\":[", m->size, m->seconds);
	for (size_t i = 0; i < n; i++) {
		const struct cell *c = &cells[i];
		printf("%s{\"mode\":\"%s\",\"mss\":%ld,\"lowat\":%ld,\"tls_tx\":\"%s\",\"mib_per_s\":%.2f,"
		       "\"complete\":%s,\"client_stalls\":%llu,\"longest_stall_ms\":%.0f,"
		       "\"server_stalls\":%ld,\"cause\":\"%s\",\"mitigations\":%ld,\"verdict\":\"%s\"}",
		       i ? "," : "", c->mode, c->mss, c->lowat, c->tls_tx[0] ? c->tls_tx : "-",
		       c->gibs * 1024, c->complete ? "true" : "false",
		       (unsigned long long)c->r.stalls, c->r.longest_stall_ms, c->server_stalls,
		       c->cause, c->mitigations, c->verdict);
	}
	printf("]}\n");
}

static int write_svg(const char *path, const struct cell *cells, size_t n)
{
	FILE *f = fopen(path, "we");
	double best = 0;
	const int bar_h = 22, gap = 8, left = 260, width = 460;

	if (f == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (cells[i].gibs > best)
			best = cells[i].gibs;
	int h = 50 + (int)n * (bar_h + gap);
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"font-family=\"sans-serif\" font-size=\"12\">\n", left + width + 160, h);
	fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
	fprintf(f, "<text x=\"10\" y=\"20\" font-size=\"14\">ktlsd-bench --matrix: throughput "
		"per setting (MiB/s)</text>\n");
	for (size_t i = 0; i < n; i++) {
		const struct cell *c = &cells[i];
		int y = 36 + (int)i * (bar_h + gap);
		int w = best > 0 ? (int)(c->gibs / best * width) : 0;
		const char *color = strcmp(c->verdict, "ok") == 0 ? "#2e7d32" :
				    strcmp(c->verdict, "stalls") == 0 ? "#c62828" : "#f9a825";
		fprintf(f, "<text x=\"10\" y=\"%d\">%s mss=%ld lowat=%ld</text>\n", y + 15, c->mode,
			c->mss, c->lowat);
		fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n", left,
			y, w > 1 ? w : 1, bar_h, color);
		fprintf(f, "<text x=\"%d\" y=\"%d\">%.1f — %s</text>\n", left + (w > 1 ? w : 1) + 6,
			y + 15, c->gibs * 1024, c->verdict);
	}
	fprintf(f, "</svg>\n");
	return fclose(f) == 0 ? 0 : -1;
}

static int make_file(struct matrix *m)
{
	char path[PATH_MAX + 16];
	int fd;

	snprintf(path, sizeof(path), "%s/root", m->dir);
	if (mkdir(path, 0755) == -1)
		return -1;
	snprintf(path, sizeof(path), "%s/root/f.bin", m->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd == -1)
		return -1;
	/* real data, not a hole: pages of a sparse file may be handled differently */
	char buf[1 << 16];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 2654435761u >> 24);
	for (unsigned long long left = m->size; left > 0;) {
		size_t k = left < sizeof(buf) ? (size_t)left : sizeof(buf);
		if (write(fd, buf, k) != (ssize_t)k) {
			close(fd);
			return -1;
		}
		left -= k;
	}
	return close(fd);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void cleanup_dir(const struct matrix *m)
{
	if (nftw(m->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == -1)
		fprintf(stderr, "ktlsd-bench: could not remove %s\n", m->dir);
}

int bench_matrix(int argc, char **argv)
{
	enum { O_MODES = 256, O_MSS, O_LOWAT, O_FILE, O_SECONDS, O_KTLSD, O_FORMAT, O_SVG,
	       O_DISCARD, O_CHUNK };
	static const struct option opts[] = {
		{ "modes", required_argument, NULL, O_MODES },
		{ "mss", required_argument, NULL, O_MSS },
		{ "lowat", required_argument, NULL, O_LOWAT },
		{ "file", required_argument, NULL, O_FILE },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "ktlsd", required_argument, NULL, O_KTLSD },
		{ "format", required_argument, NULL, O_FORMAT },
		{ "svg", required_argument, NULL, O_SVG },
		{ "discard", no_argument, NULL, O_DISCARD },
		{ "send-chunk", required_argument, NULL, O_CHUNK },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char modes_default[] = "sendfile,splice,write,userspace";
	struct matrix m;
	struct cell *cells;
	size_t n = 0;
	int opt, rc = 0;
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	memset(&m, 0, sizeof(m));
	m.seconds = 20;
	m.format = "table";
	m.nmss = m.nlowat = 1;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case O_MODES: m.nmodes = split(optarg, m.modes, MAX_LIST); break;
		case O_MSS:
			if (parse_longs(optarg, m.mss, &m.nmss)) goto bad;
			break;
		case O_LOWAT:
			if (parse_longs(optarg, m.lowat, &m.nlowat)) goto bad;
			break;
		case O_FILE:
			if (parse_size(optarg, &m.size)) goto bad;
			break;
		case O_SECONDS: m.seconds = atof(optarg); break;
		case O_KTLSD: m.ktlsd = optarg; break;
		case O_FORMAT: m.format = optarg; break;
		case O_SVG: m.svg = optarg; break;
		case O_DISCARD: m.discard = true; break;
		case O_CHUNK: m.chunk = atol(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (m.size == 0 || optind != argc || m.seconds <= 0 ||
	    (strcmp(m.format, "table") != 0 && strcmp(m.format, "json") != 0))
		goto bad;
	if (m.nmodes == 0)
		m.nmodes = split(modes_default, m.modes, MAX_LIST);
	m.ktlsd = find_ktlsd(m.ktlsd);
	snprintf(m.dir, sizeof(m.dir), "%s/ktlsd-bench.XXXXXX", tmp);
	if (mkdtemp(m.dir) == NULL || make_file(&m) == -1) {
		fprintf(stderr, "ktlsd-bench: cannot prepare %s: %s\n", m.dir, strerror(errno));
		return 1;
	}
	cells = calloc(m.nmodes * m.nmss * m.nlowat, sizeof(*cells));
	for (size_t a = 0; a < m.nmodes; a++)
		for (size_t b = 0; b < m.nmss; b++)
			for (size_t c = 0; c < m.nlowat; c++) {
				struct cell *x = &cells[n++];
				x->mode = m.modes[a];
				x->mss = m.mss[b];
				x->lowat = m.lowat[c];
				if (isatty(STDERR_FILENO))
					fprintf(stderr, "\r%zu/%zu: %s mss=%ld lowat=%ld ...   ", n,
						m.nmodes * m.nmss * m.nlowat, x->mode, x->mss, x->lowat);
				run_cell(&m, x);
			}
	if (isatty(STDERR_FILENO))
		fputc('\n', stderr);
	verdicts(cells, n);
	if (strcmp(m.format, "json") == 0)
		print_json(&m, cells, n);
	else
		print_table(&m, cells, n);
	if (m.svg != NULL && write_svg(m.svg, cells, n) == -1) {
		fprintf(stderr, "ktlsd-bench: --svg %s: %s\n", m.svg, strerror(errno));
		rc = 1;
	}
	for (size_t i = 0; i < n; i++)
		if (!cells[i].started)
			rc = 1;
	free(cells);
	cleanup_dir(&m);
	return rc;
bad:
	fprintf(stderr, "ktlsd-bench --matrix: bad arguments (see --matrix --help)\n");
	return 2;
}
