/* statscli.c — see statscli.h. The daemon formats the view (stats.c: stats_text), so this
 * side only finds the stats listener, fetches and prints. */
#include "autoconf.h"
#include "statscli.h"
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

/* The most `ktlsd stats` reads of one answer. /stats grows with the live connections
 * and /stats/recent with stats.recent (up to 100000 records of about 800 bytes): far
 * above what a terminal shows, still a bound that a confused peer cannot push past. */
#define ANSWER_MAX (256u << 20)

/* Read the whole answer on fd into a NUL-terminated *out (its length in *len), up to
 * ANSWER_MAX bytes. -1 with a message on stderr. */
static int read_answer(int fd, const char *from, char **out, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap);
	ssize_t r;

	for (;;) {
		if (buf == NULL) {
			fprintf(stderr, "ktlsd stats: out of memory reading %s\n", from);
			return -1;
		}
		if (n + 1 == cap) {
			char *p;
			if (cap >= ANSWER_MAX) {
				fprintf(stderr, "ktlsd stats: %s: the answer is larger than %u MiB; "
					"nothing printed\n", from, ANSWER_MAX >> 20);
				free(buf);
				return -1;
			}
			p = realloc(buf, cap * 2);
			if (p == NULL)
				free(buf);
			buf = p;
			cap *= 2;
			continue;
		}
		r = read(fd, buf + n, cap - 1 - n);
		if (r == 0)
			break;
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			fprintf(stderr, "ktlsd stats: %s: %s after %zu bytes\n", from,
				errno == EAGAIN ? "timed out" : strerror(errno), n);
			free(buf);
			return -1;
		}
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* The body of a complete 200 answer (buf[0..len), NUL-terminated), or NULL with a
 * message: another status, no end of head, or fewer bytes than Content-Length said. */
static const char *answer_body(const char *buf, size_t len, const char *from)
{
	const char *body = strstr(buf, "\r\n\r\n");
	const char *cl;

	if (strncmp(buf, "HTTP/1.", 7) != 0 || strncmp(buf + 8, " 200", 4) != 0 || body == NULL) {
		fprintf(stderr, "ktlsd stats: %s: unexpected answer: %.60s\n", from, buf);
		return NULL;
	}
	body += 4;
	cl = strcasestr(buf, "\r\nContent-Length:");
	if (cl != NULL && cl < body) {
		unsigned long long want = strtoull(cl + 17, NULL, 10);
		if (want != (unsigned long long)(len - (size_t)(body - buf))) {
			fprintf(stderr, "ktlsd stats: %s: answer cut short (%zu of %llu bytes)\n",
				from, len - (size_t)(body - buf), want);
			return NULL;
		}
	}
	return body;
}

/* Fetch path over plain HTTP/1.0 and write the body to stdout. 0 on a 200. */
static int fetch(const struct listen_addr *la, const char *path)
{
	struct timeval tv = { 5, 0 };
	char req[128];
	char *buf;
	const char *body;
	size_t len;
	int n, rc;
	int fd = socket(la->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)&la->ss, la->len) == -1) {
		fprintf(stderr, "ktlsd stats: %s: %s\n", la->text, strerror(errno));
		close(fd);
		return -1;
	}
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
	if (write(fd, req, (size_t)n) != n) {
		fprintf(stderr, "ktlsd stats: %s: cannot send the request\n", la->text);
		close(fd);
		return -1;
	}
	rc = read_answer(fd, la->text, &buf, &len);
	close(fd);
	if (rc == -1)
		return -1;
	body = answer_body(buf, len, la->text);
	if (body != NULL) {
		fwrite(body, 1, len - (size_t)(body - buf), stdout);
		fflush(stdout);
	}
	free(buf);
	return body != NULL ? 0 : -1;
}

int statscli_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "stats-listen", required_argument, NULL, 's' },
		{ "watch", no_argument, NULL, 'w' },
		{ "interval", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "recent", no_argument, NULL, 'r' },
		{ "experiment", no_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *file = SYSCONFDIR "/ktlsd.conf", *addr = NULL;
	bool watch = false, json = false, recent = false, experiment = false;
	double interval = 1.0;
	struct listen_addr la;
	char err[512];
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:s:wi:jreh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': file = optarg; break;
		case 's': addr = optarg; break;
		case 'w': watch = true; break;
		case 'i': interval = atof(optarg); break;
		case 'j': json = true; break;
		case 'r': recent = true; break;
		case 'e': experiment = true; break;
		case 'h':
			printf("Usage: ktlsd stats [-c FILE | --stats-listen ADDR:PORT] [--watch] "
			       "[--interval S] [--json | --recent | --experiment]\n"
			       "Show a running ktlsd's connections and stall statistics (its stats "
			       "listener, from FILE's stats.listen unless given).\n"
			       "--json: the /stats document; --recent: the records of the recently "
			       "closed connections (/stats/recent, JSON); --experiment: the "
			       "experiment's arms and verdict (with --json: /stats/experiment).\n");
			return 0;
		default:
			return 2;
		}
	}
	if (optind != argc || interval < 0.1 || (json && recent) || (experiment && recent)) {
		fprintf(stderr, "ktlsd stats: bad arguments (see ktlsd stats --help)\n");
		return 2;
	}
	if (addr != NULL) {
		if (config_parse_listen(addr, &la, err, sizeof(err)) == -1) {
			fprintf(stderr, "ktlsd stats: %s\n", err);
			return 2;
		}
	} else {
		struct config *cfg = config_load(file, NULL, err, sizeof(err));
		if (cfg == NULL) {
			fprintf(stderr, "ktlsd stats: %s\n", err);
			return 1;
		}
		if (!cfg->stats.enabled) {
			fprintf(stderr, "ktlsd stats: %s has no stats { listen = ...; } "
				"(or give --stats-listen)\n", file);
			config_unref(cfg);
			return 1;
		}
		la = cfg->stats.listen;
		config_unref(cfg);
	}
	for (;;) {
		if (watch && isatty(STDOUT_FILENO))
			fputs("\033[H\033[2J", stdout);	/* home, clear */
		if (fetch(&la, experiment ? (json ? "/stats/experiment" : "/stats/experiment/text") :
			  recent ? "/stats/recent" : json ? "/stats" : "/stats/text") == -1)
			return 1;
		if (!watch)
			return 0;
		usleep((useconds_t)(interval * 1e6));
	}
}
