/* bench_main.c — ktlsd-bench command line and output. */
#include "autoconf.h"
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ktlsd-bench https://HOST:PORT/PATH [options]\n"
		"       ktlsd-bench --matrix --file SIZE [--modes LIST] [--mss LIST] [--lowat LIST]\n"
		"                   [--path lo|veth,mtu=N[,delay=D][,loss=P][,rate=R]]... [--runs N] ...\n"
		"\n"
		"TLS 1.3 HTTP/1.1 load on keep-alive connections; reports throughput, requests/s,\n"
		"latency percentiles, errors and client-side stalls.\n"
		"\n"
		"  -c, --connections N   concurrent connections (default 1)\n"
		"  -n, --requests N      total requests (default: run for --duration)\n"
		"  -d, --duration S      seconds to run when -n is not given (default 10)\n"
		"      --timeout S       hard bound on the whole run (default none)\n"
		"      --verify          decrypt and check every body (length; SHA-256 if given)\n"
		"      --sha256 HEX      expected SHA-256 of the body (implies --verify)\n"
		"      --file PATH       expected body = this local file (implies --verify)\n"
		"      --discard         count TLS records without decrypting (after the first\n"
		"                        response of each connection)\n"
		"      --stall-ms MS     no byte for this long with a response due = a stall (1000)\n"
		"      --ciphersuites L  TLS 1.3 suites to offer (OpenSSL syntax)\n"
		"      --new-connections one request per connection (a TLS handshake each)\n"
		"      --experiment H:P  ktlsd's stats listener: one request per connection, so\n"
		"                        the server's experiment assigns each an arm; at the end\n"
		"                        print the server's verdict (/stats/experiment)\n"
		"      --format F        table (default), json or csv\n"
		"  -q, --quiet           no live progress line\n"
		"  -h, --help            this text; --matrix --help for the matrix mode\n"
		"\n"
		"Exit status: 0 if every request succeeded (and verified), 1 otherwise, 2 on usage.\n");
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int parse_sha(const char *s, unsigned char out[32])
{
	if (strlen(s) != 64)
		return -1;
	for (int i = 0; i < 32; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

static int sha_of_file(const char *path, unsigned char out[32])
{
	unsigned char buf[1 << 16];
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	unsigned int len = 0;

	if (fd == -1 || m == NULL) {
		EVP_MD_CTX_free(m);
		if (fd != -1)
			close(fd);
		return -1;
	}
	EVP_DigestInit_ex(m, EVP_sha256(), NULL);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		EVP_DigestUpdate(m, buf, (size_t)n);
	EVP_DigestFinal_ex(m, out, &len);
	EVP_MD_CTX_free(m);
	close(fd);
	return n < 0 ? -1 : 0;
}

static double num(const char *opt, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < 0) {
		fprintf(stderr, "ktlsd-bench: %s: \"%s\" is not a non-negative number\n", opt, s);
		exit(2);
	}
	return v;
}

void bench_print(const struct bench_opts *o, const struct bench_result *r)
{
	double gib = (double)r->bytes_body / (1 << 30);
	double s = r->seconds > 0 ? r->seconds : 1e-9;

	if (strcmp(o->format, "json") == 0) {
		printf("{\"url\":\"https://%s:%s%s\",\"connections\":%u,\"seconds\":%.3f,"
		       "\"requests\":%llu,\"errors\":%llu,\"verify_failures\":%llu,"
		       "\"bytes_body\":%llu,\"bytes_wire\":%llu,\"gib_per_s\":%.4f,"
		       "\"requests_per_s\":%.1f,\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,"
		       "\"p99\":%.3f,\"max\":%.3f},\"stalls\":%llu,\"longest_stall_ms\":%.1f,"
		       "\"timed_out\":%s,\"mode\":\"%s\"",
		       o->host, o->port, o->path, o->conns, r->seconds,
		       (unsigned long long)r->requests_ok, (unsigned long long)r->errors,
		       (unsigned long long)r->verify_failures, (unsigned long long)r->bytes_body,
		       (unsigned long long)r->bytes_wire, gib / s, (double)r->requests_ok / s,
		       r->lat_p50, r->lat_p90, r->lat_p99, r->lat_max,
		       (unsigned long long)r->stalls, r->longest_stall_ms,
		       r->timed_out ? "true" : "false", o->discard ? "discard" : "verify");
		printf(",\"first_error\":\"");
		for (const char *p = r->first_error; *p; p++)
			if (*p == '"' || *p == '\\')
				printf("\\%c", *p);
			else if ((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f)
				putchar(*p);
		printf("\"}\n");
	} else if (strcmp(o->format, "csv") == 0) {
		printf("connections,seconds,requests,errors,verify_failures,bytes_body,gib_per_s,"
		       "requests_per_s,p50_ms,p90_ms,p99_ms,max_ms,stalls,longest_stall_ms\n");
		printf("%u,%.3f,%llu,%llu,%llu,%llu,%.4f,%.1f,%.3f,%.3f,%.3f,%.3f,%llu,%.1f\n",
		       o->conns, r->seconds, (unsigned long long)r->requests_ok,
		       (unsigned long long)r->errors, (unsigned long long)r->verify_failures,
		       (unsigned long long)r->bytes_body, gib / s, (double)r->requests_ok / s,
		       r->lat_p50, r->lat_p90, r->lat_p99, r->lat_max,
		       (unsigned long long)r->stalls, r->longest_stall_ms);
	} else {
		printf("url          https://%s:%s%s (%s, %u connection%s)\n", o->host, o->port, o->path,
		       o->discard ? "discard" : o->verify ? "verify" : "read", o->conns,
		       o->conns == 1 ? "" : "s");
		printf("duration     %.2f s%s\n", r->seconds, r->timed_out ? " (timed out)" : "");
		printf("requests     %llu ok, %llu errors%s%s\n", (unsigned long long)r->requests_ok,
		       (unsigned long long)r->errors, r->first_error[0] ? " — first: " : "",
		       r->first_error);
		if (o->verify)
			printf("verified     %s\n", r->verify_failures ? "MISMATCH" :
			       o->have_sha ? "sha256 ok" : "lengths ok");
		printf("throughput   %.3f GiB/s (%.1f MiB body in total), %.1f requests/s\n", gib / s,
		       (double)r->bytes_body / (1 << 20), (double)r->requests_ok / s);
		printf("latency      p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		       r->lat_p50, r->lat_p90, r->lat_p99, r->lat_max);
		printf("stalls       %llu (longest %.0f ms; threshold %.0f ms)\n",
		       (unsigned long long)r->stalls, r->longest_stall_ms, o->stall_ms);
	}
}

/* --experiment: the server's own view of the arms after the run, as it prints it (table)
 * or as a second JSON document (json, csv). -1 (said why) when it cannot be read. */
static int print_experiment(const struct bench_opts *o)
{
	bool json = strcmp(o->format, "table") != 0;
	char err[256];
	char *body = bench_http_get(o->experiment, json ? "/stats/experiment" :
				    "/stats/experiment/text", err, sizeof(err));

	if (body == NULL) {
		fprintf(stderr, "ktlsd-bench: --experiment %s: %s\n", o->experiment, err);
		return -1;
	}
	if (!json)
		printf("\nserver's experiment view (%s):\n", o->experiment);
	fputs(body, stdout);
	if (body[0] != '\0' && body[strlen(body) - 1] != '\n')
		putchar('\n');
	free(body);
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_VERIFY = 256, O_SHA, O_FILE, O_DISCARD, O_TIMEOUT, O_FORMAT, O_STALL, O_CIPHERS,
	       O_NEWCONN, O_EXPERIMENT };
	static const struct option opts[] = {
		{ "connections", required_argument, NULL, 'c' },
		{ "requests", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "verify", no_argument, NULL, O_VERIFY },
		{ "sha256", required_argument, NULL, O_SHA },
		{ "file", required_argument, NULL, O_FILE },
		{ "discard", no_argument, NULL, O_DISCARD },
		{ "stall-ms", required_argument, NULL, O_STALL },
		{ "ciphersuites", required_argument, NULL, O_CIPHERS },
		{ "format", required_argument, NULL, O_FORMAT },
		{ "new-connections", no_argument, NULL, O_NEWCONN },
		{ "experiment", required_argument, NULL, O_EXPERIMENT },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench_opts o;
	struct bench_result r;
	bool quiet = false;
	int opt;

	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && strcmp(argv[1], "--matrix") == 0)
		return bench_matrix(argc - 1, argv + 1);
	memset(&o, 0, sizeof(o));
	o.conns = 1;
	o.duration = 10;
	o.stall_ms = 1000;
	o.format = "table";
	while ((opt = getopt_long(argc, argv, "c:n:d:qh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': o.conns = (unsigned)num("-c", optarg); break;
		case 'n': o.requests = (uint64_t)num("-n", optarg); break;
		case 'd': o.duration = num("-d", optarg); break;
		case O_TIMEOUT: o.timeout = num("--timeout", optarg); break;
		case O_VERIFY: o.verify = true; break;
		case O_SHA:
			if (parse_sha(optarg, o.sha256) == -1) {
				fprintf(stderr, "ktlsd-bench: --sha256 wants 64 hex digits\n");
				return 2;
			}
			o.have_sha = o.verify = true;
			break;
		case O_FILE:
			if (sha_of_file(optarg, o.sha256) == -1) {
				fprintf(stderr, "ktlsd-bench: --file %s: %s\n", optarg, strerror(errno));
				return 2;
			}
			o.have_sha = o.verify = true;
			break;
		case O_DISCARD: o.discard = true; break;
		case O_STALL: o.stall_ms = num("--stall-ms", optarg); break;
		case O_CIPHERS: o.ciphersuites = optarg; break;
		case O_FORMAT: o.format = optarg; break;
		case O_NEWCONN: o.new_conns = true; break;
		case O_EXPERIMENT: o.experiment = optarg; o.new_conns = true; break;
		case 'q': quiet = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1 || bench_parse_url(argv[optind], &o) == -1) {
		fprintf(stderr, "ktlsd-bench: give one URL of the form https://HOST:PORT/PATH\n");
		return 2;
	}
	if (o.conns == 0 || o.conns > 100000) {
		fprintf(stderr, "ktlsd-bench: -c must be 1..100000\n");
		return 2;
	}
	if (o.verify && o.discard) {
		fprintf(stderr, "ktlsd-bench: --verify and --discard exclude each other\n");
		return 2;
	}
	if (strcmp(o.format, "table") != 0 && strcmp(o.format, "json") != 0 &&
	    strcmp(o.format, "csv") != 0) {
		fprintf(stderr, "ktlsd-bench: --format is table, json or csv\n");
		return 2;
	}
	o.progress = !quiet && isatty(STDERR_FILENO);
	if (bench_run(&o, &r) == -1) {
		fprintf(stderr, "ktlsd-bench: %s\n", r.first_error);
		return 1;
	}
	bench_print(&o, &r);
	if (o.experiment != NULL && print_experiment(&o) == -1)
		return 1;
	return r.errors == 0 && r.verify_failures == 0 && !r.timed_out && r.requests_ok > 0 ? 0 : 1;
}
