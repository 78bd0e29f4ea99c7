/* main.c — command line, start-up order, and the daemon's life.
 *
 * Order matters: parse and validate everything (config, certificate, document root)
 * before binding, bind before dropping privileges, and only then detach, so that every
 * start-up error reaches the terminal or systemd with a non-zero exit. */
#include "autoconf.h"
#include "admin.h"
#include "config.h"
#include "daemon.h"
#include "ktls.h"
#include "tlsrec.h"
#include "log.h"
#include "notify.h"
#include "process.h"
#include "server.h"
#include "stats.h"
#include "statscli.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONF SYSCONFDIR "/ktlsd.conf"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ktlsd [options]\n"
		"       ktlsd --demo [DIR]\n"
		"       ktlsd stats [-c FILE | --stats-listen ADDR:PORT] [--watch] [--json]\n"
		"\n"
		"Serve static files over HTTPS (TLS 1.3), with the record encryption in the kernel\n"
		"(kTLS) where it can, and per-connection visibility of send stalls.\n"
		"\n"
		"  -c, --config FILE      configuration file (default " DEFAULT_CONF ")\n"
		"  -t, --test             check the configuration (and certificate, root) and exit\n"
		"      --demo [DIR]       no config needed: self-signed certificate made in memory,\n"
		"                         serve DIR (default: current directory) on 127.0.0.1:8443\n"
		"  -l, --listen ADDR:PORT listen here instead (repeatable; [::1]:PORT for IPv6)\n"
		"  -r, --root DIR         document root\n"
		"      --cert FILE        certificate chain (PEM)\n"
		"      --key FILE         private key (PEM)\n"
		"      --ciphersuites L   TLS 1.3 cipher suites, OpenSSL syntax\n"
		"  -f, --foreground       do not detach\n"
		"      --log-level LEVEL  debug, info, notice, warn, error, crit, alert\n"
		"      --error-log PATH   error log file, or \"stderr\"\n"
		"      --access-log PATH  access log file, \"stderr\" or \"off\"\n"
		"      --send-mode MODE   sendfile, splice, write, userspace or auto\n"
		"      --send-chunk N     most bytes handed to the kernel per send call\n"
		"      --mss N            TCP_MAXSEG on the listening sockets (0: default)\n"
		"      --notsent-lowat N  TCP_NOTSENT_LOWAT on connections (0: default)\n"
		"      --stats-listen ADDR:PORT  serve /stats, /stats/recent, /metrics (plain HTTP)\n"
		"      --stall-threshold MS      no progress this long = a stall (default 1000)\n"
		"      --workers N|auto   event loops, one thread each (default auto: one per CPU\n"
		"                         this process may use; 1 with --demo)\n"
		"  -V, --version          print version and build information\n"
		"  -h, --help             this text\n"
		"\n"
		"Signals: TERM/INT stop gracefully, HUP reloads the configuration and certificate,\n"
		"USR1 reopens the logs. See ktlsd(8) and ktlsd.conf(5).\n");
}

static void version(void)
{
	printf("ktlsd %s\n", PACKAGE_VERSION);
	printf("built with %s, running with %s\n", OPENSSL_VERSION_TEXT,
	       OpenSSL_version(OPENSSL_VERSION));
	printf("libevent %s\n", event_get_version());
}

/* For --demo: the curl command to try, with the port actually bound (--listen ...:0)
 * and a file that exists. */
static void demo_hint(struct daemon *d)
{
	const struct config *cfg = d->site->cfg;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN + 2] = "127.0.0.1", a[INET6_ADDRSTRLEN];
	unsigned port = 0;
	const char *path = "";
	DIR *dir = opendir(cfg->document_root);
	struct dirent *e;

	if (getsockname(server_listener_fd(d->ws.w[0], 0), (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
			snprintf(host, sizeof(host), "[%s]", IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr) ? "::1" : a);
			port = ntohs(s6->sin6_port);
		} else {
			const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
			if (s4->sin_addr.s_addr != htonl(INADDR_ANY))
				inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
			port = ntohs(s4->sin_port);
		}
	}
	static char found[64];
	/* index.html or README.md if there, else the first plain file name */
	while (dir != NULL && (e = readdir(dir)) != NULL) {
		if (e->d_type == DT_REG && e->d_name[0] != '.' && strlen(e->d_name) < sizeof(found) &&
		    strspn(e->d_name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
		    strlen(e->d_name)) {
			bool best = strcmp(e->d_name, "index.html") == 0 || strcmp(e->d_name, "README.md") == 0;
			if (found[0] == '\0' || best)
				snprintf(found, sizeof(found), "%s", e->d_name);
			if (best)
				break;
		}
	}
	path = found;
	printf("ktlsd demo: serving %s on %s with a self-signed certificate (made in memory)\n"
	       "try:   curl -k https://%s:%u/%s\n"
	       "stop:  Ctrl-C\n", cfg->document_root, cfg->listen[0].text, host, port, path);
	fflush(stdout);
	if (dir != NULL)
		closedir(dir);
}

/* What the command line asked for, besides the configuration overrides. */
struct args {
	struct config_overrides ov;
	const char *file;		/* -c, or the default; NULL with --demo alone */
	bool test, foreground;
};

/* Parse argv into a. Returns -1 to go on, or the exit code (after --help, --version, or
 * a usage error, which is printed). */
static int parse_args(int argc, char **argv, struct args *a)
{
	/* OPT_SETTING: a flag that sets a setting of the file (its schema row has the flag) */
	enum { OPT_DEMO = 256, OPT_SETTING };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "demo", no_argument, NULL, OPT_DEMO },
		{ "listen", required_argument, NULL, 'l' },
		{ "root", required_argument, NULL, 'r' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "cert", required_argument, NULL, OPT_SETTING },
		{ "key", required_argument, NULL, OPT_SETTING },
		{ "ciphersuites", required_argument, NULL, OPT_SETTING },
		{ "log-level", required_argument, NULL, OPT_SETTING },
		{ "error-log", required_argument, NULL, OPT_SETTING },
		{ "access-log", required_argument, NULL, OPT_SETTING },
		{ "send-mode", required_argument, NULL, OPT_SETTING },
		{ "send-chunk", required_argument, NULL, OPT_SETTING },
		{ "mss", required_argument, NULL, OPT_SETTING },
		{ "notsent-lowat", required_argument, NULL, OPT_SETTING },
		{ "stats-listen", required_argument, NULL, OPT_SETTING },
		{ "stall-threshold", required_argument, NULL, OPT_SETTING },
		{ "workers", required_argument, NULL, OPT_SETTING },
		{ NULL, 0, NULL, 0 },
	};
	struct config_overrides *ovp = &a->ov;
	char err[160];
	int opt, idx = 0;

	config_overrides_init(ovp);
	while ((opt = getopt_long(argc, argv, "c:tl:r:fVh", opts, &idx)) != -1) {
		switch (opt) {
		case 'c': a->file = optarg; break;
		case 't': a->test = true; break;
		case OPT_DEMO: ovp->demo = true; break;
		case 'l':
			if (ovp->nlisten == CONFIG_MAX_LISTEN) {
				fprintf(stderr, "ktlsd: at most %d --listen\n", CONFIG_MAX_LISTEN);
				return 1;
			}
			ovp->listen[ovp->nlisten++] = optarg;
			break;
		case 'r':
		case OPT_SETTING:
			if (config_overrides_add(ovp, opt == 'r' ? "root" : opts[idx].name, optarg, err,
						 sizeof(err)) == -1) {
				fprintf(stderr, "ktlsd: %s\n", err);
				return 1;
			}
			break;
		case 'f': a->foreground = true; break;
		case 'V': version(); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (ovp->demo && optind < argc)
		ovp->demo_dir = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "ktlsd: unexpected argument \"%s\" (see --help)\n", argv[optind]);
		return 1;
	}
	if (a->file == NULL && !ovp->demo)
		a->file = DEFAULT_CONF;
	if (ovp->demo)
		a->foreground = true;
	return -1;
}

/* Load and check the configuration and build the site from it (certificates, document
 * root), as -t does. NULL after printing why. */
static struct site *load_site(const struct args *a)
{
	char err[512];
	struct config *cfg = config_load(a->file, &a->ov, err, sizeof(err));
	struct site *site = NULL;

	if (cfg != NULL && process_check_privileges(cfg, err, sizeof(err)) == 0)
		site = site_new(cfg, err, sizeof(err));
	config_unref(cfg);
	if (site == NULL) {
		fprintf(stderr, "ktlsd: %s\n", err);
		if (a->test)
			fprintf(stderr, "ktlsd: configuration test failed\n");
	}
	return site;
}

/* Tell whoever waits that the server is up: systemd (READY=1), the parent of a detached
 * daemon (ready_fd), and a --demo user (the curl line). */
static void announce_ready(struct daemon *d, const struct config *cfg, int ready_fd)
{
	char st[160];

	log_msg(LOG_LEVEL_NOTICE, "ktlsd %s ready: %u worker(s), send mode %s, chunk %zu, mss %d, "
		"notsent_lowat %d%s", PACKAGE_VERSION, d->ws.n, send_mode_name(cfg->send.mode),
		cfg->send.chunk, cfg->send.mss, cfg->send.notsent_lowat, cfg->demo ? ", demo" : "");
	if (cfg->demo)
		demo_hint(d);
	snprintf(st, sizeof(st), "serving: %u worker(s), send mode %s, kTLS %s", d->ws.n,
		 send_mode_name(cfg->send.mode),
		 ktls_kernel_available() ? "available" : "unavailable (userspace TLS)");
	notify_ready(st);
	if (ready_fd != -1) {
		char ok = 0;
		if (write(ready_fd, &ok, 1) != 1)
			log_msg(LOG_LEVEL_WARN, "could not tell the parent process we are up");
		close(ready_fd);
	}
}

/* Run the daemon on site (taken): logs, limits, bind, admin, privileges, detach, loop.
 * One unwinding path: whatever was set up is taken down in reverse, on every exit. */
static int serve(struct site *site, struct args *a)
{
	struct config *cfg = config_ref(site->cfg);	/* outlives reloads: for the drop */
	struct daemon *d = NULL;
	char err[512];
	int ready_fd = -1, rc = 1;
	bool logs = false;

	signal(SIGPIPE, SIG_IGN);
	log_set_level((enum log_level)cfg->log.level);
	if (log_open(cfg->log.error, cfg->log.access, err, sizeof(err)) == -1) {
		fprintf(stderr, "ktlsd: %s\n", err);
		site_unref(site);
		goto out;
	}
	logs = true;
	/* Under systemd (Type=notify) the manager waits for READY=1 from the process it
	 * started: detaching would make it wait for a process that is gone. */
	if (notify_init() && !a->foreground) {
		log_msg(LOG_LEVEL_INFO, "NOTIFY_SOCKET is set: staying in the foreground");
		a->foreground = true;
	}
	process_set_nofile(cfg);
	if (tlsrec_global_init() == -1) {
		log_msg(LOG_LEVEL_ALERT, "OpenSSL has no AES-GCM, ChaCha20-Poly1305 or TLS13-KDF");
		site_unref(site);
		goto out;
	}
	ktls_probe();
	if (ktls_kernel_available())
		log_msg(LOG_LEVEL_NOTICE, "kTLS: available (%s)", ktls_kernel_reason());
	else
		log_msg(LOG_LEVEL_WARN, "kTLS: unavailable: %s; every send mode falls back to "
			"userspace TLS", ktls_kernel_reason());
	d = daemon_new(site, a->file, &a->ov, err, sizeof(err));
	site_unref(site);
	if (d == NULL || admin_start(d, err, sizeof(err)) == -1) {
		log_msg(LOG_LEVEL_ALERT, "%s", err);
		goto out;
	}
	if (process_drop_privileges(cfg) == -1)
		goto out;
	/* threads only after the fork: a detached child would have none of them */
	if (!a->foreground && process_detach(&ready_fd) == -1) {
		log_msg(LOG_LEVEL_ALERT, "cannot detach: %s", strerror(errno));
		goto out;
	}
	if (daemon_start(d, err, sizeof(err)) == -1) {
		log_msg(LOG_LEVEL_ALERT, "%s", err);
		goto out;
	}
	announce_ready(d, cfg, ready_fd);
	ready_fd = -1;
	config_unref(cfg);
	cfg = NULL;
	rc = daemon_run(d);
	log_msg(LOG_LEVEL_NOTICE, "exiting (%llu connections served)",
		(unsigned long long)stats_counter(CTR_ACCEPTED));
out:
	if (ready_fd != -1)
		close(ready_fd);
	if (d != NULL)
		admin_stop(d);	/* before the workers go: it asks them for views */
	daemon_free(d);
	tlsrec_global_fini();
	config_unref(cfg);
	if (logs) {
		notify_close();
		log_close();
	}
	return rc;
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	struct site *site;
	int rc;

	/* before OpenSSL allocates anything (it may, as early as parse_args) */
	if (!tlsrec_wipe_openssl_frees())
		fprintf(stderr, "ktlsd: cannot make OpenSSL wipe the memory it frees\n");
	if (argc > 1 && strcmp(argv[1], "stats") == 0)
		return statscli_main(argc - 1, argv + 1);
	if ((rc = parse_args(argc, argv, &a)) != -1)
		return rc;
	/* before any event_base: each worker's loop is woken from the main thread */
	if (evthread_use_pthreads() == -1) {
		fprintf(stderr, "ktlsd: libevent without thread support\n");
		return 1;
	}
	site = load_site(&a);
	if (site == NULL)
		return 1;
	if (a.test) {
		printf("ktlsd: configuration %s is ok\n", a.file ? a.file : "(demo)");
		site_unref(site);
		return 0;
	}
	return serve(site, &a);
}
