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

/* Fetch path over plain HTTP/1.0 and write the body to stdout. 0 on a 200. */
static int fetch(const struct listen_addr *la, const char *path)
{
	struct timeval tv = { 5, 0 };
	char buf[65536], req[128];
	size_t len = 0;
	ssize_t n;
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
		close(fd);
		return -1;
	}
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	char *body = strstr(buf, "\r\n\r\n");
	if (strncmp(buf, "HTTP/1.", 7) != 0 || strncmp(buf + 8, " 200", 4) != 0 || body == NULL) {
		fprintf(stderr, "ktlsd stats: %s: unexpected answer: %.60s\n", la->text, buf);
		return -1;
	}
	fputs(body + 4, stdout);
	fflush(stdout);
	return 0;
}

int statscli_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "stats-listen", required_argument, NULL, 's' },
		{ "watch", no_argument, NULL, 'w' },
		{ "interval", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *file = SYSCONFDIR "/ktlsd.conf", *addr = NULL;
	bool watch = false, json = false;
	double interval = 1.0;
	struct listen_addr la;
	char err[512];
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:s:wi:jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': file = optarg; break;
		case 's': addr = optarg; break;
		case 'w': watch = true; break;
		case 'i': interval = atof(optarg); break;
		case 'j': json = true; break;
		case 'h':
			printf("Usage: ktlsd stats [-c FILE | --stats-listen ADDR:PORT] [--watch] "
			       "[--interval S] [--json]\n"
			       "Show a running ktlsd's connections and stall statistics (its stats "
			       "listener, from FILE's stats.listen unless given).\n");
			return 0;
		default:
			return 2;
		}
	}
	if (optind != argc || interval < 0.1) {
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
		if (fetch(&la, json ? "/stats" : "/stats/text") == -1)
			return 1;
		if (!watch)
			return 0;
		usleep((useconds_t)(interval * 1e6));
	}
}
