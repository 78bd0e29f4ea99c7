/* bench_matrix.c — ktlsd-bench --matrix: which send mode and socket switches are fastest
 * and stall-free on this kernel, on which network path? Starts ktlsd (--demo, on a free
 * port) for each combination and each run, runs one bounded download, asks the daemon's
 * stats endpoint what it saw, and prints one table (or JSON), optionally an SVG chart.
 *
 * Each cell is run --runs times (rounds interleaved over the cells, so a drift of the
 * machine's load touches every cell alike); the verdicts compare medians only where the
 * runs separate. On a veth path (bench_path.c) ktlsd runs in one network namespace and the
 * client in another. */
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LIST 8
#define MAX_RUNS 25

struct run {
	bool started, complete;
	double mibs;
	uint64_t client_stalls;
	double longest_ms;
	long server_stalls, mitigations, snd_mss;
	char tls_tx[16], cause[24];
};

struct cell {
	const struct bench_path *path;
	const char *mode;		/* sendfile, splice, write, userspace, auto */
	long chunk;			/* --send-chunk for ktlsd, 0 = ktlsd's default */
	long mss, lowat;
	struct run runs[MAX_RUNS];
	unsigned nruns;
	bool skip;			/* stalled: not run again (a stall is unmistakable) */
	/* over the runs */
	bool started, complete, stall_free;
	double med, min, max;
	uint64_t client_stalls;
	double longest_ms;
	long server_stalls, mitigations, snd_mss;
	char tls_tx[16], cause[24], verdict[96];
};

struct matrix {
	char modes_buf[MAX_LIST][24];
	const char *modes[MAX_LIST];
	long mode_chunk[MAX_LIST];
	size_t nmodes;
	long mss[MAX_LIST], lowat[MAX_LIST];
	size_t nmss, nlowat;
	struct bench_path paths[BENCH_MAX_PATHS];
	size_t npaths;
	unsigned runs;
	bool repeat_stalls;
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
		"Start ktlsd for every combination of network path, send mode, MSS and\n"
		"TCP_NOTSENT_LOWAT, download one file of SIZE bytes (suffix K, M, G) from each,\n"
		"--runs times, and print one table.\n"
		"\n"
		"  --modes LIST     send modes (default sendfile,splice,write,userspace); MODE:N\n"
		"                   gives that mode ktlsd's --send-chunk N (e.g. sendfile:16384)\n"
		"  --mss LIST       TCP_MAXSEG values, 0 = kernel default (default 0)\n"
		"  --lowat LIST     TCP_NOTSENT_LOWAT values, 0 = default (default 0)\n"
		"  --path SPEC      repeatable (default lo): lo, or\n"
		"                   veth,mtu=N[,delay=D][,loss=P][,rate=R]: ktlsd and the client in\n"
		"                   two network namespaces joined by a veth pair (198.18.0.0/15),\n"
		"                   netem delay/loss and tbf rate on the sender's side; needs root\n"
		"                   (exit 2 with the reason where it cannot be made)\n"
		"  --runs N         downloads per cell, rounds interleaved (default 3; at most %d)\n"
		"  --repeat-stalls  run a cell that stalled again in later rounds (default: once)\n"
		"  --send-chunk N   passed to ktlsd (default: ktlsd's)\n"
		"  --seconds S      bound on each download (default 20)\n"
		"  --discard        count records instead of decrypting (client cost out)\n"
		"  --ktlsd PATH     the daemon (default: $KTLSD, next to ktlsd-bench, or PATH)\n"
		"  --format F       table (default) or json\n"
		"  --svg FILE       also draw the throughput, one panel per path, a dot per run\n"
		"\n"
		"Verdicts (per path): stalls (the server or the client saw a stall); rescued by auto\n"
		"(send mode auto mitigated and finished); not done in S s (no stall, too slow);\n"
		"best (highest median of the stall-free cells); slower than best by X%% [a%%, b%%]\n"
		"(only when the runs separate: this cell's fastest run is slower than the best\n"
		"cell's slowest and the medians differ by more than either cell's spread,\n"
		"(max-min)/median; a..b is the range the runs allow); same within noise (else).\n"
		"Exit: 0; 1 if a cell's ktlsd did not start; 2 on usage or a path that cannot be\n"
		"made.\n", MAX_RUNS);
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

static void stop_server(pid_t pid)
{
	kill(pid, SIGTERM);
	for (int i = 0; i < 250 && waitpid(pid, NULL, WNOHANG) == 0; i++)
		usleep(20000);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	bench_paths_set_server(0);
}

/* One download of cell c (its run number k): start ktlsd in the server's namespace, the
 * client in the client's, read the record from /stats/recent, stop ktlsd. */
static void run_one(struct matrix *m, struct cell *c, size_t ci, unsigned k)
{
	char log[PATH_MAX + 64], url[96], mss[16], lowat[16], chunk[32], root[PATH_MAX + 8];
	char listen[48];
	struct run *r = &c->runs[k];
	struct bench_result br;
	int port = 0, sport = 0;
	pid_t pid;
	long ch = c->chunk > 0 ? c->chunk : m->chunk;

	memset(r, 0, sizeof(*r));
	snprintf(r->cause, sizeof(r->cause), "-");
	r->server_stalls = r->mitigations = r->snd_mss = -1;
	snprintf(log, sizeof(log), "%s/ktlsd-%zu-%u.log", m->dir, ci, k);
	snprintf(root, sizeof(root), "%s/root", m->dir);
	snprintf(mss, sizeof(mss), "%ld", c->mss);
	snprintf(lowat, sizeof(lowat), "%ld", c->lowat);
	snprintf(chunk, sizeof(chunk), "%ld", ch);
	snprintf(listen, sizeof(listen), "%s:0", c->path->srv_addr);
	pid_t parent = getpid();
	pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);
		/* ktlsd dies with us, even when we are SIGKILLed */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
			_exit(126);
		bench_paths_child_reset();
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
		if (bench_path_enter(c->path, BENCH_SERVER) == -1)
			_exit(126);
		const char *argv[32] = { m->ktlsd, "--demo", root, "--listen", listen,
			"--stats-listen", "127.0.0.1:0", "--send-mode", c->mode, "--mss", mss,
			"--notsent-lowat", lowat, "--error-log", log, "--access-log", "off",
			"--log-level", "notice" };
		int n = 19;
		if (ch > 0) {
			argv[n++] = "--send-chunk";
			argv[n++] = chunk;
		}
		argv[n] = NULL;
		execvp(m->ktlsd, (char *const *)argv);
		_exit(127);
	}
	if (pid > 0)
		bench_paths_set_server(pid);
	if (pid < 0 || wait_ready(log, pid, &port, &sport) == -1) {
		if (pid > 0)
			stop_server(pid);
		return;
	}
	r->started = true;
	struct bench_opts o;
	memset(&o, 0, sizeof(o));
	snprintf(url, sizeof(url), "https://%s:%d/f.bin", c->path->srv_addr, port);
	bench_parse_url(url, &o);
	o.conns = 1;
	o.requests = 1;
	o.timeout = m->seconds;
	o.stall_ms = 1000;
	o.discard = m->discard;
	o.format = "table";
	if (bench_path_enter(c->path, BENCH_CLIENT) == -1) {
		memset(&br, 0, sizeof(br));
		snprintf(br.first_error, sizeof(br.first_error), "setns: %s", strerror(errno));
	} else {
		bench_run(&o, &br);
	}
	bench_path_enter(c->path, BENCH_SELF);
	r->complete = br.requests_ok == 1 && br.errors == 0 && !br.timed_out;
	r->mibs = br.seconds > 0 ? (double)br.bytes_body / (1 << 20) / br.seconds : 0;
	r->client_stalls = br.stalls;
	r->longest_ms = br.longest_stall_ms;
	usleep(200000);	/* let the daemon close the connection and file its record */
	char *j = NULL, hp[32], err[160];
	snprintf(hp, sizeof(hp), "127.0.0.1:%d", sport);
	if (bench_path_enter(c->path, BENCH_SERVER) == 0)
		j = bench_http_get(hp, "/stats/recent", err, sizeof(err));
	bench_path_enter(c->path, BENCH_SELF);
	const char *rec = j ? strstr(j, "\"recent\":[{") : NULL;
	r->server_stalls = json_long(rec, "stalls");
	r->mitigations = json_long(rec, "mitigations");
	r->snd_mss = json_long(rec, "snd_mss");
	json_strval(rec, "tls_tx", r->tls_tx, sizeof(r->tls_tx));
	if (rec && strstr(rec, "\"last_stall\":"))
		json_strval(strstr(rec, "\"last_stall\":"), "cause", r->cause, sizeof(r->cause));
	free(j);
	stop_server(pid);
}

static bool run_stalled(const struct run *r)
{
	return r->started && (r->server_stalls > 0 || r->client_stalls > 0) &&
	       !(r->complete && r->mitigations > 0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void aggregate(struct cell *c)
{
	double v[MAX_RUNS];
	unsigned n = 0;

	c->complete = c->nruns > 0;
	c->client_stalls = 0;
	c->longest_ms = 0;
	c->server_stalls = c->mitigations = 0;
	c->snd_mss = -1;
	snprintf(c->cause, sizeof(c->cause), "-");
	c->tls_tx[0] = '\0';
	for (unsigned k = 0; k < c->nruns; k++) {
		const struct run *r = &c->runs[k];
		if (!r->started) {
			c->complete = false;
			continue;
		}
		c->started = true;
		v[n++] = r->mibs;
		c->complete &= r->complete;
		c->client_stalls += r->client_stalls;
		if (r->longest_ms > c->longest_ms)
			c->longest_ms = r->longest_ms;
		if (r->server_stalls > 0)
			c->server_stalls += r->server_stalls;
		if (r->mitigations > 0)
			c->mitigations += r->mitigations;
		if (r->snd_mss > 0)
			c->snd_mss = r->snd_mss;
		if (strcmp(c->cause, "-") == 0 && strcmp(r->cause, "-") != 0)
			snprintf(c->cause, sizeof(c->cause), "%s", r->cause);
		if (c->tls_tx[0] == '\0')
			snprintf(c->tls_tx, sizeof(c->tls_tx), "%s", r->tls_tx);
		else if (strcmp(c->tls_tx, r->tls_tx) != 0)
			snprintf(c->tls_tx, sizeof(c->tls_tx), "mixed");
	}
	if (c->tls_tx[0] == '\0')
		snprintf(c->tls_tx, sizeof(c->tls_tx), "-");
	if (n == 0) {
		c->complete = false;
		c->med = c->min = c->max = 0;
		return;
	}
	qsort(v, n, sizeof(v[0]), cmp_double);
	c->min = v[0];
	c->max = v[n - 1];
	c->med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	c->stall_free = c->complete && c->server_stalls == 0 && c->client_stalls == 0;
}

static double rel_spread(const struct cell *c)
{
	return c->med > 0 ? (c->max - c->min) / c->med : 1;
}

/* Slower for sure: every run of c below every run of the best, and the gap between the
 * medians wider than either cell's own spread (so one lucky round cannot make it). */
static bool separate(const struct cell *c, const struct cell *best)
{
	double gap = best->med > 0 ? 1 - c->med / best->med : 0;
	double spread = rel_spread(c) > rel_spread(best) ? rel_spread(c) : rel_spread(best);

	return best->min > 0 && best->max > 0 && c->max < best->min && gap > spread;
}

/* Per path: the best stall-free median, and each cell against it. */
static void verdicts(struct matrix *m, struct cell *cells, size_t n)
{
	for (size_t pi = 0; pi < m->npaths; pi++) {
		const struct cell *best = NULL;
		for (size_t i = 0; i < n; i++)
			if (cells[i].path == &m->paths[pi] && cells[i].stall_free &&
			    (best == NULL || cells[i].med > best->med))
				best = &cells[i];
		for (size_t i = 0; i < n; i++) {
			struct cell *c = &cells[i];
			if (c->path != &m->paths[pi])
				continue;
			if (!c->started)
				snprintf(c->verdict, sizeof(c->verdict), "ktlsd did not start");
			else if (c->complete && c->mitigations > 0)
				snprintf(c->verdict, sizeof(c->verdict), "rescued by auto");
			else if (c->server_stalls > 0 || c->client_stalls > 0)
				snprintf(c->verdict, sizeof(c->verdict), "stalls");
			else if (!c->complete)
				snprintf(c->verdict, sizeof(c->verdict), "not done in %g s", m->seconds);
			else if (c == best)
				snprintf(c->verdict, sizeof(c->verdict), "best");
			else if (best != NULL && c->nruns > 1 && best->nruns > 1 && separate(c, best))
				snprintf(c->verdict, sizeof(c->verdict),
					 "slower than best by %.0f%% [%.0f%%, %.0f%%]",
					 (1 - c->med / best->med) * 100, (1 - c->max / best->min) * 100,
					 (1 - c->min / best->max) * 100);
			else if (best != NULL && (c->nruns < 2 || best->nruns < 2))
				snprintf(c->verdict, sizeof(c->verdict), "%.0f%% of best (one run: "
					 "noise unknown)", best->med > 0 ? c->med / best->med * 100 : 0);
			else
				snprintf(c->verdict, sizeof(c->verdict), "same within noise");
		}
	}
}

static const char *no_ktls_banner(const struct cell *cells, size_t n)
{
	bool any = false;

	for (size_t i = 0; i < n; i++) {
		if (!cells[i].started)
			continue;
		any = true;
		for (unsigned k = 0; k < cells[i].nruns; k++)
			if (strcmp(cells[i].runs[k].tls_tx, "kernel") == 0)
				return NULL;
	}
	return any ? "every cell fell back to userspace TLS: the send modes do not differ here"
		   : NULL;
}

static void print_table(const struct matrix *m, const struct cell *cells, size_t n)
{
	const char *banner = no_ktls_banner(cells, n);

	printf("file %llu bytes, %u run%s per cell (MiB/s: median, min..max), bound %g s, %s "
	       "client\n", m->size, m->runs, m->runs == 1 ? "" : "s", m->seconds,
	       m->discard ? "discarding" : "decrypting");
	if (banner != NULL)
		printf("NOTE: %s\n", banner);
	for (size_t pi = 0; pi < m->npaths; pi++) {
		printf("path %s\n", m->paths[pi].label);
		printf("%-10s %6s %6s %6s %-9s %8s %17s %5s %6s %7s %6s %-13s %s\n", "mode", "chunk",
		       "mss", "lowat", "tls_tx", "MiB/s", "min..max", "done", "stalls", "longest",
		       "server", "cause", "verdict");
		for (size_t i = 0; i < n; i++) {
			const struct cell *c = &cells[i];
			char range[40];
			if (c->path != &m->paths[pi])
				continue;
			snprintf(range, sizeof(range), "%.1f..%.1f", c->min, c->max);
			printf("%-10s %6ld %6ld %6ld %-9s %8.1f %17s %2u/%-2u %6llu %5.0fms %6ld %-13s %s\n",
			       c->mode, c->chunk, c->mss, c->lowat, c->tls_tx, c->med, range,
			       (unsigned)0 + (unsigned)(c->complete ? c->nruns : 0), c->nruns,
			       (unsigned long long)c->client_stalls, c->longest_ms, c->server_stalls,
			       c->cause, c->verdict);
		}
	}
}

static void json_str(const char *s)
{
	putchar('"');
	for (const char *p = s; *p; p++)
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if ((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f)
			putchar(*p);
	putchar('"');
}

static void print_json(const struct matrix *m, const struct cell *cells, size_t n)
{
	const char *banner = no_ktls_banner(cells, n);

	printf("{\"file_bytes\":%llu,\"seconds_bound\":%.1f,\"runs\":%u,\"ktls\":%s,\"banner\":",
	       m->size, m->seconds, m->runs, banner ? "false" : "true");
	if (banner)
		json_str(banner);
	else
		printf("null");
	printf(",\"paths\":[");
	for (size_t pi = 0; pi < m->npaths; pi++) {
		printf("%s", pi ? "," : "");
		json_str(m->paths[pi].label);
	}
	printf("],\"cells\":[");
	for (size_t i = 0; i < n; i++) {
		const struct cell *c = &cells[i];
		printf("%s{\"path\":", i ? "," : "");
		json_str(c->path->label);
		printf(",\"mode\":\"%s\",\"chunk\":%ld,\"mss\":%ld,\"lowat\":%ld,\"tls_tx\":\"%s\","
		       "\"snd_mss\":%ld,\"mib_per_s\":%.2f,\"mib_per_s_median\":%.2f,"
		       "\"mib_per_s_min\":%.2f,\"mib_per_s_max\":%.2f,\"gib_per_s\":%.4f,"
		       "\"complete\":%s,\"stall_free\":%s,\"client_stalls\":%llu,"
		       "\"longest_stall_ms\":%.0f,\"server_stalls\":%ld,\"cause\":\"%s\","
		       "\"mitigations\":%ld,\"verdict\":\"%s\",\"runs\":[",
		       c->mode, c->chunk, c->mss, c->lowat, c->tls_tx, c->snd_mss, c->med, c->med,
		       c->min, c->max, c->med / 1024, c->complete ? "true" : "false",
		       c->stall_free ? "true" : "false", (unsigned long long)c->client_stalls,
		       c->longest_ms, c->server_stalls, c->cause, c->mitigations, c->verdict);
		for (unsigned k = 0; k < c->nruns; k++) {
			const struct run *r = &c->runs[k];
			printf("%s{\"started\":%s,\"mib_per_s\":%.2f,\"complete\":%s,"
			       "\"client_stalls\":%llu,\"longest_stall_ms\":%.0f,\"server_stalls\":%ld,"
			       "\"cause\":\"%s\",\"mitigations\":%ld,\"tls_tx\":\"%s\"}",
			       k ? "," : "", r->started ? "true" : "false", r->mibs,
			       r->complete ? "true" : "false", (unsigned long long)r->client_stalls,
			       r->longest_ms, r->server_stalls, r->cause, r->mitigations,
			       r->tls_tx[0] ? r->tls_tx : "-");
		}
		printf("]}");
	}
	printf("]}\n");
}

static const char *verdict_color(const char *v)
{
	if (strcmp(v, "best") == 0 || strcmp(v, "same within noise") == 0)
		return "#2e7d32";
	if (strcmp(v, "stalls") == 0 || strcmp(v, "ktlsd did not start") == 0)
		return "#c62828";
	if (strcmp(v, "rescued by auto") == 0)
		return "#1565c0";
	if (strncmp(v, "not done", 8) == 0)
		return "#757575";
	return "#f9a825";
}

static void xml_text(FILE *f, const char *s)
{
	for (const char *p = s; *p; p++)
		if (*p == '<')
			fputs("&lt;", f);
		else if (*p == '>')
			fputs("&gt;", f);
		else if (*p == '&')
			fputs("&amp;", f);
		else
			fputc(*p, f);
}

/* One panel per path; per cell a bar to the median, a line min..max, a dot per run. */
static int write_svg(const struct matrix *m, const char *path, const struct cell *cells,
		     size_t n)
{
	FILE *f = fopen(path, "we");
	double top = 0;
	const int bar_h = 20, gap = 8, left = 300, width = 440, panel_head = 28;
	const char *banner = no_ktls_banner(cells, n);

	if (f == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (cells[i].max > top)
			top = cells[i].max;
	int h = 50 + (banner ? 18 : 0) + (int)m->npaths * panel_head + (int)n * (bar_h + gap);
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"font-family=\"sans-serif\" font-size=\"12\">\n", left + width + 260, h);
	fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
	fprintf(f, "<text x=\"10\" y=\"20\" font-size=\"14\">ktlsd-bench --matrix: MiB/s per "
		"setting, %llu bytes, bar = median of %u, line = min..max, dot = one run</text>\n",
		m->size, m->runs);
	int y = 36;
	if (banner) {
		fprintf(f, "<text x=\"10\" y=\"%d\" fill=\"#c62828\">%s</text>\n", y + 4, banner);
		y += 18;
	}
	for (size_t pi = 0; pi < m->npaths; pi++) {
		fprintf(f, "<g class=\"panel\"><text x=\"10\" y=\"%d\" font-size=\"13\" "
			"font-weight=\"bold\">path ", y + 16);
		xml_text(f, m->paths[pi].label);
		fprintf(f, "</text>\n");
		y += panel_head;
		for (size_t i = 0; i < n; i++) {
			const struct cell *c = &cells[i];
			if (c->path != &m->paths[pi])
				continue;
			double sc = top > 0 ? width / top : 0;
			int w = (int)(c->med * sc);
			fprintf(f, "<text x=\"20\" y=\"%d\">%s%s%.0ld mss=%ld lowat=%ld</text>\n",
				y + 14, c->mode, c->chunk ? ":" : "", c->chunk, c->mss, c->lowat);
			fprintf(f, "<rect class=\"bar\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
				"fill=\"%s\" fill-opacity=\"0.75\"/>\n", left, y, w > 1 ? w : 1, bar_h,
				verdict_color(c->verdict));
			fprintf(f, "<line class=\"spread\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" "
				"stroke=\"black\"/>\n", left + c->min * sc, left + c->max * sc,
				y + bar_h / 2, y + bar_h / 2);
			for (unsigned k = 0; k < c->nruns; k++)
				if (c->runs[k].started)
					fprintf(f, "<circle class=\"run\" cx=\"%.1f\" cy=\"%d\" r=\"3\" "
						"fill=\"black\"/>\n", left + c->runs[k].mibs * sc,
						y + bar_h / 2);
			fprintf(f, "<text x=\"%d\" y=\"%d\">%.1f — ", left + width + 8, y + 14, c->med);
			xml_text(f, c->verdict);
			fprintf(f, "</text>\n");
			y += bar_h + gap;
		}
		fprintf(f, "</g>\n");
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
	bench_paths_done_with_dir();
}

/* MODE or MODE:CHUNK */
static int parse_modes(char *s, struct matrix *m)
{
	const char *parts[MAX_LIST];
	size_t k = split(s, parts, MAX_LIST);

	for (size_t i = 0; i < k; i++) {
		const char *colon = strchr(parts[i], ':');
		size_t len = colon ? (size_t)(colon - parts[i]) : strlen(parts[i]);
		if (len == 0 || len >= sizeof(m->modes_buf[0]))
			return -1;
		memcpy(m->modes_buf[i], parts[i], len);
		m->modes_buf[i][len] = '\0';
		m->modes[i] = m->modes_buf[i];
		m->mode_chunk[i] = 0;
		if (colon != NULL) {
			char *end;
			m->mode_chunk[i] = strtol(colon + 1, &end, 10);
			if (colon[1] == '\0' || *end != '\0' || m->mode_chunk[i] <= 0)
				return -1;
		}
	}
	m->nmodes = k;
	return k > 0 ? 0 : -1;
}

int bench_matrix(int argc, char **argv)
{
	enum { O_MODES = 256, O_MSS, O_LOWAT, O_FILE, O_SECONDS, O_KTLSD, O_FORMAT, O_SVG,
	       O_DISCARD, O_CHUNK, O_NETPATH, O_RUNS, O_REPEAT };
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
		{ "path", required_argument, NULL, O_NETPATH },
		{ "runs", required_argument, NULL, O_RUNS },
		{ "repeat-stalls", no_argument, NULL, O_REPEAT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char modes_default[] = "sendfile,splice,write,userspace";
	static struct matrix m;
	struct cell *cells;
	size_t n = 0, total;
	int opt, rc = 0;
	char err[1024], *end;
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	memset(&m, 0, sizeof(m));
	m.seconds = 20;
	m.runs = 3;
	m.format = "table";
	m.nmss = m.nlowat = 1;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case O_MODES:
			if (parse_modes(optarg, &m)) goto bad;
			break;
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
		case O_REPEAT: m.repeat_stalls = true; break;
		case O_RUNS:
			m.runs = (unsigned)strtoul(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || m.runs < 1 || m.runs > MAX_RUNS) {
				fprintf(stderr, "ktlsd-bench --matrix: --runs is 1..%d\n", MAX_RUNS);
				return 2;
			}
			break;
		case O_NETPATH:
			if (m.npaths == BENCH_MAX_PATHS) {
				fprintf(stderr, "ktlsd-bench --matrix: at most %d --path\n",
					BENCH_MAX_PATHS);
				return 2;
			}
			if (bench_path_parse(optarg, &m.paths[m.npaths], m.npaths, err,
					     sizeof(err)) == -1) {
				fprintf(stderr, "ktlsd-bench --matrix: %s\n", err);
				return 2;
			}
			m.npaths++;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (m.size == 0 || optind != argc || m.seconds <= 0 ||
	    (strcmp(m.format, "table") != 0 && strcmp(m.format, "json") != 0))
		goto bad;
	if (m.nmodes == 0)
		parse_modes(modes_default, &m);
	if (m.npaths == 0)
		bench_path_parse("lo", &m.paths[m.npaths++], 0, err, sizeof(err));
	m.ktlsd = find_ktlsd(m.ktlsd);
	snprintf(m.dir, sizeof(m.dir), "%s/ktlsd-bench.XXXXXX", tmp);
	if (mkdtemp(m.dir) == NULL) {
		fprintf(stderr, "ktlsd-bench: cannot prepare %s: %s\n", m.dir, strerror(errno));
		return 1;
	}
	bench_paths_guard(m.dir);
	if (make_file(&m) == -1) {
		fprintf(stderr, "ktlsd-bench: cannot prepare %s: %s\n", m.dir, strerror(errno));
		cleanup_dir(&m);
		return 1;
	}
	if (bench_paths_setup(m.paths, m.npaths, err, sizeof(err)) == -1) {
		fprintf(stderr, "ktlsd-bench --matrix: %s\n", err);
		cleanup_dir(&m);
		return 2;
	}
	total = m.npaths * m.nmodes * m.nmss * m.nlowat;
	cells = calloc(total, sizeof(*cells));
	if (cells == NULL) {
		bench_paths_teardown(m.paths, m.npaths);
		cleanup_dir(&m);
		return 1;
	}
	for (size_t p = 0; p < m.npaths; p++)
		for (size_t a = 0; a < m.nmodes; a++)
			for (size_t b = 0; b < m.nmss; b++)
				for (size_t c = 0; c < m.nlowat; c++) {
					struct cell *x = &cells[n++];
					x->path = &m.paths[p];
					x->mode = m.modes[a];
					x->chunk = m.mode_chunk[a];
					x->mss = m.mss[b];
					x->lowat = m.lowat[c];
				}
	for (unsigned k = 0; k < m.runs; k++) {
		for (size_t j = 0; j < n; j++) {
			size_t i = (j + k) % n;	/* each round starts one cell later */
			struct cell *x = &cells[i];
			if (x->skip)
				continue;
			if (isatty(STDERR_FILENO))
				fprintf(stderr, "\rround %u/%u, cell %zu/%zu: %s %s%s%.0ld mss=%ld "
					"lowat=%ld ...        ", k + 1, m.runs, j + 1, n, x->path->label,
					x->mode, x->chunk ? ":" : "", x->chunk, x->mss, x->lowat);
			run_one(&m, x, i, x->nruns);
			x->nruns++;
			if (!m.repeat_stalls && run_stalled(&x->runs[x->nruns - 1]))
				x->skip = true;
		}
	}
	if (isatty(STDERR_FILENO))
		fputc('\n', stderr);
	bench_paths_teardown(m.paths, m.npaths);
	for (size_t i = 0; i < n; i++)
		aggregate(&cells[i]);
	verdicts(&m, cells, n);
	if (strcmp(m.format, "json") == 0)
		print_json(&m, cells, n);
	else
		print_table(&m, cells, n);
	if (m.svg != NULL && write_svg(&m, m.svg, cells, n) == -1) {
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
