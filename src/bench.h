/* bench.h — ktlsd-bench: a TLS 1.3 HTTP/1.1 load generator and workaround checker.
 *
 * The engine (bench_run.c) drives keep-alive connections on libevent with OpenSSL on raw
 * fds, like the daemon. Two ways to read bodies:
 *   verify  — decrypt with OpenSSL, check length and optionally SHA-256;
 *   discard — send a HEAD first on each connection and decrypt its answer (it carries the
 *             session tickets and tells the head length, the same as the GET's), then
 *             read the GET responses as raw TLS records, counting plaintext as record length − 17 (16-byte AEAD tag + the
 *             inner content type; TLS 1.3 servers here do not pad), so the client does no
 *             decryption and a 2-core machine measures the server, not the client. */
#ifndef KTLSD_BENCH_H
#define KTLSD_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bench_opts {
	char host[256];
	char port[8];
	char path[1024];
	unsigned conns;			/* -c */
	uint64_t requests;		/* -n; 0 = use duration */
	double duration;		/* -d seconds */
	double timeout;			/* --timeout: whole run bound, seconds (0 = none) */
	bool verify, discard;
	bool have_sha;
	unsigned char sha256[32];	/* --sha256 HEX or --file LOCAL */
	double stall_ms;		/* client-side stall threshold */
	const char *format;		/* table, json, csv */
	bool progress;			/* live line on a terminal */
	const char *ciphersuites;
	bool new_conns;			/* --new-connections: one request per connection */
	const char *experiment;		/* --experiment HOST:PORT: ktlsd's stats listener */
};

struct bench_result {
	uint64_t requests_ok, errors, bytes_body, bytes_wire;
	uint64_t stalls;		/* client-side: no bytes for > stall_ms with a response due */
	double longest_stall_ms;
	double seconds;
	double lat_p50, lat_p90, lat_p99, lat_max;	/* ms, per request */
	uint64_t verify_failures;
	char first_error[256];
	bool timed_out;
};

/* Parse "https://HOST:PORT/PATH" (HOST may be [v6]). Returns 0 or -1. */
int bench_parse_url(const char *url, struct bench_opts *o);

/* Run the load described by o; fills r. Returns 0, or -1 if nothing could be measured. */
int bench_run(const struct bench_opts *o, struct bench_result *r);

/* GET path over plain HTTP/1.0 from hostport ("HOST:PORT", "[V6]:PORT"), 5 s bound per
 * read: the body (malloc'd, NUL-terminated) of a 200 answer, or NULL with err. */
char *bench_http_get(const char *hostport, const char *path, char *err, size_t errlen);

/* Print r in o->format ("table", "json", "csv") to stdout. */
void bench_print(const struct bench_opts *o, const struct bench_result *r);

/* --matrix: start ktlsd for each combination and measure each. argv after "--matrix". */
int bench_matrix(int argc, char **argv);

/* ---- bench_path.c: the network path of a --matrix cell ---------------------------- */
#include <sys/types.h>

#define BENCH_MAX_PATHS 8

struct bench_path {
	char label[128];		/* "lo" or the canonical "veth,mtu=N[,delay=..]..." */
	bool veth;
	long mtu;
	char delay[24], loss[24], rate[24];
	char ns_srv[48], ns_cli[48];	/* network namespaces (veth) */
	int fd_srv, fd_cli;		/* open while the matrix runs */
	char srv_addr[32];		/* where ktlsd listens: 127.0.0.1 or 198.18.I.1 */
};

enum bench_side { BENCH_SELF, BENCH_SERVER, BENCH_CLIENT };

/* Parse one --path SPEC (index = its position: it picks the addresses). 0 or -1 + err. */
int bench_path_parse(const char *spec, struct bench_path *p, size_t index, char *err,
		     size_t errsz);
/* Make the namespaces, veth pairs and qdiscs of every veth path (root and netns needed);
 * removes stale ones of a killed earlier run first. 0, or -1 with the reason in err and
 * nothing left behind. */
int bench_paths_setup(struct bench_path *paths, size_t n, char *err, size_t errsz);
void bench_paths_teardown(struct bench_path *paths, size_t n);
/* Switch this process to the path's server or client namespace, or back (BENCH_SELF). */
int bench_path_enter(const struct bench_path *p, enum bench_side side);
/* SIGINT/SIGTERM/SIGHUP: kill the server, remove the namespaces and dir, exit 128+sig. */
void bench_paths_guard(const char *dir);
void bench_paths_set_server(pid_t pid);
void bench_paths_child_reset(void);
void bench_paths_done_with_dir(void);

#endif
