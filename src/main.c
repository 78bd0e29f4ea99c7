/* main.c — command line, start-up order, and the daemon's life.
 *
 * Order matters: parse and validate everything (config, certificate, document root)
 * before binding, bind before dropping privileges, and only then detach, so that every
 * start-up error reaches the terminal or systemd with a non-zero exit. */
#include "autoconf.h"
#include "admin.h"
#include "config.h"
#include "ktls.h"
#include "log.h"
#include "notify.h"
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

static long num_arg(const char *opt, const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < 0) {
		fprintf(stderr, "ktlsd: %s: \"%s\" is not a non-negative number\n", opt, s);
		exit(1);
	}
	return v;
}

/* Who ktlsd will run as, decided before anything is bound (and checked by -t), so that
 * a missing user or an accidental root start fails at once, with a reason, and never
 * after the sockets are up. Serving files as root is a choice, not a default: a bug in
 * request handling would otherwise hand out root's view of the file system. */
static int check_privileges(const struct config *cfg, char *err, size_t errlen)
{
	const char *file = cfg->file ? cfg->file : "(command line)";

	if (geteuid() != 0)
		return 0;	/* nothing to drop; a configured user is ignored (logged) */
	if (cfg->user != NULL) {
		const struct passwd *pw = getpwnam(cfg->user);
		if (pw == NULL) {
			snprintf(err, errlen, "%s: user \"%s\" does not exist", file, cfg->user);
			return -1;
		}
		if (pw->pw_uid == 0) {
			snprintf(err, errlen, "%s: user \"%s\" is uid 0: nothing would be dropped "
				 "(say run_as_root = true; instead)", file, cfg->user);
			return -1;
		}
		if (cfg->group != NULL && getgrnam(cfg->group) == NULL) {
			snprintf(err, errlen, "%s: group \"%s\" does not exist", file, cfg->group);
			return -1;
		}
		return 0;
	}
	if (cfg->run_as_root || cfg->demo)
		return 0;
	snprintf(err, errlen, "%s: started as root and no \"user\" is set: ktlsd does not serve "
		 "as root by accident. Set user = \"www-data\"; (and group) to drop privileges "
		 "after binding, or run_as_root = true; to run as root on purpose", file);
	return -1;
}

/* The capability sets of this thread, effective | permitted, as one mask. */
static uint64_t caps_held(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) == -1)
		return UINT64_MAX;	/* unknown counts as held */
	return ((uint64_t)(data[1].effective | data[1].permitted) << 32) |
	       (data[0].effective | data[0].permitted);
}

/* setuid() away from root clears the capability sets, unless SECBIT_KEEP_CAPS was set
 * for us (e.g. by a service manager): then clear them by hand. */
static int drop_capabilities(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	if (caps_held() == 0)
		return 0;
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) == -1 || caps_held() != 0)
		return -1;
	return 0;
}

/* The log files were opened (created) as root; after the drop, SIGUSR1 and SIGHUP
 * reopen them as the new user. Hand over the regular files that root owns, nothing
 * else: "/dev/stderr" or a shared file someone else owns stays as it is. */
static void give_log_files(const struct config *cfg, uid_t uid, gid_t gid)
{
	const char *paths[2] = { cfg->log.error, cfg->log.access };
	struct stat st;

	for (size_t i = 0; i < KTLSD_ARRAY_LEN(paths); i++) {
		const char *p = paths[i];
		if (p == NULL || strcmp(p, "stderr") == 0 || strcmp(p, "off") == 0)
			continue;
		if (fstatat(AT_FDCWD, p, &st, AT_SYMLINK_NOFOLLOW) == -1 || !S_ISREG(st.st_mode) ||
		    st.st_uid != 0)
			continue;
		if (fchownat(AT_FDCWD, p, uid, gid, AT_SYMLINK_NOFOLLOW) == -1)
			log_msg(LOG_LEVEL_WARN, "cannot hand log file \"%s\" to uid %u: %s; reopening "
				"it (SIGUSR1, SIGHUP) may fail", p, (unsigned)uid, strerror(errno));
	}
}

/* Drop root after binding: supplementary groups, gid, uid, in that order (each step
 * needs the privileges the next one gives up), then make sure nothing is left: no way
 * back to uid 0, no capabilities, no gaining any through exec. */
static int drop_privileges(const struct config *cfg)
{
	struct passwd *pw;
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0) {
		if (cfg->user != NULL)
			log_msg(LOG_LEVEL_INFO, "not started as root: user \"%s\" is not used",
				cfg->user);
		return 0;
	}
	if (cfg->user == NULL) {
		if (cfg->run_as_root)
			log_msg(LOG_LEVEL_WARN, "running as root (run_as_root = true)");
		else
			log_msg(LOG_LEVEL_WARN, "--demo started as root: serving as root (set \"user\" "
				"in a configuration file to drop privileges)");
		return 0;
	}
	pw = getpwnam(cfg->user);
	if (pw == NULL) {
		log_msg(LOG_LEVEL_ALERT, "user \"%s\" does not exist", cfg->user);
		return -1;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (cfg->group != NULL) {
		struct group *gr = getgrnam(cfg->group);
		if (gr == NULL) {
			log_msg(LOG_LEVEL_ALERT, "group \"%s\" does not exist", cfg->group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	give_log_files(cfg, uid, gid);
	/* initgroups, not setgroups(1, &gid): the user's own supplementary groups (say
	 * ssl-cert, for the private key) are how a reload can still read the files */
	if (initgroups(cfg->user, gid) == -1 || setgid(gid) == -1 || setuid(uid) == -1) {
		log_msg(LOG_LEVEL_ALERT, "cannot drop privileges to %s: %s", cfg->user, strerror(errno));
		return -1;
	}
	if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid ||
	    setuid(0) == 0 || (gid != 0 && setegid(0) == 0)) {
		log_msg(LOG_LEVEL_ALERT, "privileges could be regained after dropping them; stopping");
		return -1;
	}
	if (drop_capabilities() == -1) {
		log_msg(LOG_LEVEL_ALERT, "capabilities still held after dropping to %s; stopping",
			cfg->user);
		return -1;
	}
	/* ktlsd never executes anything; make sure nothing it could exec gains privileges */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		log_msg(LOG_LEVEL_WARN, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	log_msg(LOG_LEVEL_NOTICE, "running as %s (uid %u, gid %u), no capabilities", cfg->user,
		(unsigned)uid, (unsigned)gid);
	return 0;
}

static const char *rlim_text(rlim_t v, char *buf, size_t len)
{
	if (v == RLIM_INFINITY)
		return "unlimited";
	snprintf(buf, len, "%llu", (unsigned long long)v);
	return buf;
}

/* RLIMIT_NOFILE: every connection costs a socket, a file and, with splice, a pipe. The
 * usual soft limit of 1024 is far below max_connections, and libevent uses epoll, so
 * nothing stops raising it: to limits.nofile, or (0) the soft limit up to the hard one.
 * Done as root, before the drop, so a larger hard limit can be set too. Running out
 * later is not fatal either: see conn_new() and on_accept_error(). */
static void set_nofile(const struct config *cfg)
{
	struct rlimit old, want;
	char a[24], b[24], c[24], d[24];
	unsigned long long need;

	if (getrlimit(RLIMIT_NOFILE, &old) == -1) {
		log_msg(LOG_LEVEL_WARN, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return;
	}
	want = old;
	if (cfg->limits.nofile == 0) {
		want.rlim_cur = old.rlim_max;
	} else {
		want.rlim_cur = (rlim_t)cfg->limits.nofile;
		if (old.rlim_max != RLIM_INFINITY && old.rlim_max < want.rlim_cur)
			want.rlim_max = want.rlim_cur;
	}
	if ((want.rlim_cur != old.rlim_cur || want.rlim_max != old.rlim_max) &&
	    setrlimit(RLIMIT_NOFILE, &want) == -1) {
		/* raising the hard limit needs CAP_SYS_RESOURCE (and <= fs.nr_open) */
		log_msg(LOG_LEVEL_WARN, "limits.nofile %lu: cannot set soft %s, hard %s: %s; "
			"using the hard limit %s", cfg->limits.nofile,
			rlim_text(want.rlim_cur, a, sizeof(a)), rlim_text(want.rlim_max, b, sizeof(b)),
			strerror(errno), rlim_text(old.rlim_max, c, sizeof(c)));
		want.rlim_cur = want.rlim_max = old.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &want) == -1)
			want = old;
	}
	log_msg(LOG_LEVEL_NOTICE, "open files limit: soft %s, hard %s (was %s, %s)",
		rlim_text(want.rlim_cur, a, sizeof(a)), rlim_text(want.rlim_max, b, sizeof(b)),
		rlim_text(old.rlim_cur, c, sizeof(c)), rlim_text(old.rlim_max, d, sizeof(d)));
	/* a socket per connection at the very least, plus the daemon's own few */
	need = (unsigned long long)cfg->max_connections + 64;
	if (want.rlim_cur != RLIM_INFINITY && want.rlim_cur < need)
		log_msg(LOG_LEVEL_WARN, "open files limit %s is below max_connections %u: new "
			"clients are turned away when files run out (raise limits.nofile, or "
			"LimitNOFILE=)",
			rlim_text(want.rlim_cur, a, sizeof(a)), cfg->max_connections);
}

/* Detach; the parent exits only when the child says it is ready (or failed), so the
 * exit status of "ktlsd" tells whether the server is up. */
static int detach(int *ready_fd)
{
	int p[2];
	pid_t pid;
	char st = 1;

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	pid = fork();
	if (pid == -1)
		return -1;
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &st, 1) != 1)
			st = 1;
		_exit(st);
	}
	close(p[0]);
	setsid();
	int nul = open("/dev/null", O_RDWR);
	if (nul != -1) {
		dup2(nul, STDIN_FILENO);
		dup2(nul, STDOUT_FILENO);
		close(nul);
	}
	*ready_fd = p[1];
	return 0;
}

/* For --demo: the curl command to try, with the port actually bound (--listen ...:0)
 * and a file that exists. */
static void demo_hint(struct server *srv)
{
	const struct config *cfg = srv->site->cfg;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN + 2] = "127.0.0.1", a[INET6_ADDRSTRLEN];
	unsigned port = 0;
	const char *path = "";
	DIR *d = opendir(cfg->document_root);
	struct dirent *e;

	if (getsockname(evconnlistener_get_fd(srv->listeners[0]), (struct sockaddr *)&ss, &sl) == 0) {
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
	while (d != NULL && (e = readdir(d)) != NULL) {
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
	if (d != NULL)
		closedir(d);
}

int main(int argc, char **argv)
{
	enum { OPT_DEMO = 256, OPT_CERT, OPT_KEY, OPT_LOGLEVEL, OPT_SENDMODE, OPT_MSS, OPT_LOWAT,
	       OPT_CHUNK, OPT_ERRLOG, OPT_ACCLOG, OPT_CIPHERS, OPT_STATS, OPT_STALL };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "demo", no_argument, NULL, OPT_DEMO },
		{ "listen", required_argument, NULL, 'l' },
		{ "root", required_argument, NULL, 'r' },
		{ "cert", required_argument, NULL, OPT_CERT },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "ciphersuites", required_argument, NULL, OPT_CIPHERS },
		{ "foreground", no_argument, NULL, 'f' },
		{ "log-level", required_argument, NULL, OPT_LOGLEVEL },
		{ "error-log", required_argument, NULL, OPT_ERRLOG },
		{ "access-log", required_argument, NULL, OPT_ACCLOG },
		{ "send-mode", required_argument, NULL, OPT_SENDMODE },
		{ "send-chunk", required_argument, NULL, OPT_CHUNK },
		{ "mss", required_argument, NULL, OPT_MSS },
		{ "notsent-lowat", required_argument, NULL, OPT_LOWAT },
		{ "stats-listen", required_argument, NULL, OPT_STATS },
		{ "stall-threshold", required_argument, NULL, OPT_STALL },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct config_overrides ov;
	const char *file = NULL;
	bool test = false, foreground = false;
	char err[512];
	int opt, ready_fd = -1, rc;

	if (argc > 1 && strcmp(argv[1], "stats") == 0)
		return statscli_main(argc - 1, argv + 1);
	config_overrides_init(&ov);
	while ((opt = getopt_long(argc, argv, "c:tl:r:fVh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': file = optarg; break;
		case 't': test = true; break;
		case OPT_DEMO: ov.demo = true; break;
		case 'l':
			if (ov.nlisten == CONFIG_MAX_LISTEN) {
				fprintf(stderr, "ktlsd: at most %d --listen\n", CONFIG_MAX_LISTEN);
				return 1;
			}
			ov.listen[ov.nlisten++] = optarg;
			break;
		case 'r': ov.root = optarg; break;
		case OPT_CERT: ov.cert = optarg; break;
		case OPT_KEY: ov.key = optarg; break;
		case OPT_CIPHERS: ov.ciphersuites = optarg; break;
		case 'f': foreground = true; break;
		case OPT_LOGLEVEL: ov.log_level = optarg; break;
		case OPT_ERRLOG: ov.error_log = optarg; break;
		case OPT_ACCLOG: ov.access_log = optarg; break;
		case OPT_SENDMODE: ov.send_mode = optarg; break;
		case OPT_CHUNK: ov.send_chunk = num_arg("--send-chunk", optarg); break;
		case OPT_MSS: ov.mss = num_arg("--mss", optarg); break;
		case OPT_LOWAT: ov.notsent_lowat = num_arg("--notsent-lowat", optarg); break;
		case OPT_STATS: ov.stats_listen = optarg; break;
		case OPT_STALL: ov.stall_threshold_ms = num_arg("--stall-threshold", optarg); break;
		case 'V': version(); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (ov.demo && optind < argc)
		ov.demo_dir = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "ktlsd: unexpected argument \"%s\" (see --help)\n", argv[optind]);
		return 1;
	}
	if ((ov.cert == NULL) != (ov.key == NULL)) {
		fprintf(stderr, "ktlsd: --cert and --key go together\n");
		return 1;
	}
	if (file == NULL && !ov.demo)
		file = DEFAULT_CONF;
	if (ov.demo)
		foreground = true;

	struct config *cfg = config_load(file, &ov, err, sizeof(err));
	if (cfg == NULL) {
		fprintf(stderr, "ktlsd: %s\n", err);
		if (test)
			fprintf(stderr, "ktlsd: configuration test failed\n");
		return 1;
	}
	if (check_privileges(cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "ktlsd: %s\n", err);
		if (test)
			fprintf(stderr, "ktlsd: configuration test failed\n");
		config_unref(cfg);
		return 1;
	}
	struct site *site = site_new(cfg, err, sizeof(err));
	config_unref(cfg);
	if (site == NULL) {
		fprintf(stderr, "ktlsd: %s\n", err);
		if (test)
			fprintf(stderr, "ktlsd: configuration test failed\n");
		return 1;
	}
	if (test) {
		printf("ktlsd: configuration %s is ok\n", file ? file : "(demo)");
		site_unref(site);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	log_set_level((enum log_level)site->cfg->log.level);
	if (log_open(site->cfg->log.error, site->cfg->log.access, err, sizeof(err)) == -1) {
		fprintf(stderr, "ktlsd: %s\n", err);
		site_unref(site);
		return 1;
	}
	/* Under systemd (Type=notify) the manager waits for READY=1 from the process it
	 * started: detaching would make it wait for a process that is gone. */
	if (notify_init() && !foreground) {
		log_msg(LOG_LEVEL_INFO, "NOTIFY_SOCKET is set: staying in the foreground");
		foreground = true;
	}
	set_nofile(site->cfg);
	ktls_probe();
	if (ktls_kernel_available())
		log_msg(LOG_LEVEL_NOTICE, "kTLS: available (%s)", ktls_kernel_reason());
	else
		log_msg(LOG_LEVEL_WARN, "kTLS: unavailable: %s; every send mode falls back to "
			"userspace TLS", ktls_kernel_reason());

	struct config *run_cfg = config_ref(site->cfg);
	struct server *srv = server_new(site, err, sizeof(err));
	if (srv == NULL) {
		log_msg(LOG_LEVEL_ALERT, "%s", err);
		config_unref(run_cfg);
		notify_close();
		log_close();
		return 1;
	}
	srv->config_file = file;
	srv->overrides = &ov;
	if (admin_start(srv, err, sizeof(err)) == -1) {
		log_msg(LOG_LEVEL_ALERT, "%s", err);
		server_free(srv);
		config_unref(run_cfg);
		notify_close();
		log_close();
		return 1;
	}
	if (drop_privileges(run_cfg) == -1) {
		admin_stop(srv);
		server_free(srv);
		config_unref(run_cfg);
		notify_close();
		log_close();
		return 1;
	}
	if (!foreground && detach(&ready_fd) == -1) {
		log_msg(LOG_LEVEL_ALERT, "cannot detach: %s", strerror(errno));
		admin_stop(srv);
		server_free(srv);
		config_unref(run_cfg);
		return 1;
	}
	log_msg(LOG_LEVEL_NOTICE, "ktlsd %s ready: send mode %s, chunk %zu, mss %d, notsent_lowat %d%s",
		PACKAGE_VERSION, send_mode_name(run_cfg->send.mode), run_cfg->send.chunk,
		run_cfg->send.mss, run_cfg->send.notsent_lowat, run_cfg->demo ? ", demo" : "");
	if (run_cfg->demo)
		demo_hint(srv);
	snprintf(err, sizeof(err), "serving: send mode %s, kTLS %s",
		 send_mode_name(run_cfg->send.mode),
		 ktls_kernel_available() ? "available" : "unavailable (userspace TLS)");
	notify_ready(err);
	if (ready_fd != -1) {
		char ok = 0;
		if (write(ready_fd, &ok, 1) != 1)
			log_msg(LOG_LEVEL_WARN, "could not tell the parent process we are up");
		close(ready_fd);
	}
	config_unref(run_cfg);
	rc = server_run(srv);
	log_msg(LOG_LEVEL_NOTICE, "exiting (%llu connections served)",
		(unsigned long long)stats_counter(CTR_ACCEPTED));
	admin_stop(srv);
	server_free(srv);
	notify_close();
	log_close();
	return rc;
}
