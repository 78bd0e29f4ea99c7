/* bench_path.c — ktlsd-bench --matrix --path: the network path between ktlsd and the client.
 *
 * "lo" is loopback in the caller's own network namespace. "veth,mtu=N[,delay=D][,loss=P]
 * [,rate=R]" is two network namespaces joined by a veth pair: the server side gets
 * 198.18.I.1/24, the client side 198.18.I.2/24 (I = the path's index; 198.18.0.0/15 is the
 * benchmarking range of RFC 2544), both MTU N; delay and loss are a netem qdisc and rate a
 * tbf qdisc on the server's (the sender's) end. Made with iproute2's `ip` and `tc`, entered
 * with setns(): ktlsd is started in the server namespace, the client runs in this process
 * after switching to the client namespace.
 *
 * Everything made here is removed again on every way out: at the end (bench_paths_teardown),
 * on SIGINT/SIGTERM/SIGHUP (a handler that uses only fork/execve/waitpid/kill), and at the
 * next start, namespaces of an earlier run that was killed (its pid gone) are removed. */
#include "autoconf.h"
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NS_PREFIX "ktlsdb-"
#define NETNS_DIR "/run/netns"

static char g_ip[PATH_MAX], g_tc[PATH_MAX], g_rm[PATH_MAX];
static char g_ns[2 * BENCH_MAX_PATHS][48];
static volatile sig_atomic_t g_nns;
static volatile pid_t g_server;
static char g_dir[PATH_MAX];
static volatile sig_atomic_t g_have_dir;
static int g_self_fd = -1;

/* ---- commands ---------------------------------------------------------------------- */

static int find_bin(const char *name, char *out, size_t outsz)
{
	const char *path = getenv("PATH");
	char dirs[4096];

	snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/sbin:/usr/bin:/bin", path ? path : "");
	for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d != NULL;
	     d = strtok_r(NULL, ":", &save)) {
		if (*d != '/')
			continue;
		if ((size_t)snprintf(out, outsz, "%s/%s", d, name) < outsz && access(out, X_OK) == 0)
			return 0;
	}
	out[0] = '\0';
	return -1;
}

/* Async-signal-safe: fork, exec argv[0] with no output, wait. */
static int quiet_cmd(const char *const *argv)
{
	int st = 0;
	pid_t pid = fork();

	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);
		if (nul != -1) {
			dup2(nul, 0);
			dup2(nul, 1);
			dup2(nul, 2);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (pid < 0)
		return -1;
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Run argv; on failure write "CMD LINE: its stderr" into err. */
static int run_cmd(const char *const *argv, char *err, size_t errsz)
{
	char out[1024];
	size_t got = 0;
	int pfd[2], st = 0;
	pid_t pid;
	ssize_t n;

	if (pipe2(pfd, O_CLOEXEC) == -1) {
		snprintf(err, errsz, "pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		if (nul != -1)
			dup2(nul, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		snprintf(err, errsz, "fork: %s", strerror(errno));
		return -1;
	}
	for (;;) {
		char tmp[512];
		n = read(pfd[0], tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t k = (size_t)n < sizeof(out) - 1 - got ? (size_t)n : sizeof(out) - 1 - got;
		memcpy(out + got, tmp, k);
		got += k;
	}
	close(pfd[0]);
	out[got] = '\0';
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	/* the command line, then what it said, on one line */
	size_t len = 0;
	err[0] = '\0';
	for (size_t i = 0; argv[i] != NULL && len + 1 < errsz; i++) {
		int w = snprintf(err + len, errsz - len, "%s%s", i ? " " : "`",
				 i == 0 ? strrchr(argv[0], '/') + 1 : argv[i]);
		if (w < 0)
			break;
		len += (size_t)w < errsz - len ? (size_t)w : errsz - len - 1;
	}
	while (got > 0 && (out[got - 1] == '\n' || out[got - 1] == ' '))
		out[--got] = '\0';
	for (char *p = out; *p; p++)
		if (*p == '\n')
			*p = ' ';
	if (len + 1 < errsz)
		snprintf(err + len, errsz - len, "` failed: %s", got ? out : WIFEXITED(st) &&
			 WEXITSTATUS(st) == 127 ? "cannot run it" : "no message");
	return -1;
}

/* ---- cleanup, also from a signal handler -------------------------------------------- */

static void del_ns_all(void)
{
	for (sig_atomic_t i = g_nns; i > 0; i--) {
		const char *argv[] = { g_ip, "netns", "del", g_ns[i - 1], NULL };
		if (g_ip[0])
			quiet_cmd(argv);
	}
	g_nns = 0;
}

static void on_signal(int sig)
{
	pid_t s = g_server;

	if (s > 0) {
		kill(s, SIGKILL);
		waitpid(s, NULL, 0);
	}
	del_ns_all();
	if (g_have_dir && g_rm[0]) {
		const char *argv[] = { g_rm, "-rf", "--", g_dir, NULL };
		quiet_cmd(argv);
	}
	static const char msg[] = "\nktlsd-bench: interrupted; the server, the namespaces and the "
				  "scratch directory are removed\n";
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* nothing left to tell */
	}
	_exit(128 + sig);
}

void bench_paths_guard(const char *dir)
{
	struct sigaction sa;

	find_bin("rm", g_rm, sizeof(g_rm));
	if (dir != NULL && strlen(dir) < sizeof(g_dir)) {
		memcpy(g_dir, dir, strlen(dir) + 1);
		g_have_dir = 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigfillset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

void bench_paths_set_server(pid_t pid)
{
	g_server = pid;
}

void bench_paths_child_reset(void)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
}

/* ---- parsing ------------------------------------------------------------------------- */

static int value_ok(const char *v, const char *extra)
{
	if (*v == '\0' || strlen(v) >= 24)
		return 0;
	for (const char *p = v; *p; p++)
		if (!((*p >= '0' && *p <= '9') || *p == '.' || strchr(extra, *p)))
			return 0;
	return 1;
}

int bench_path_parse(const char *spec, struct bench_path *p, size_t index, char *err, size_t errsz)
{
	char buf[256];
	char *save = NULL, *t;

	memset(p, 0, sizeof(*p));
	p->fd_srv = p->fd_cli = -1;
	if (strcmp(spec, "lo") == 0) {
		snprintf(p->label, sizeof(p->label), "lo");
		snprintf(p->srv_addr, sizeof(p->srv_addr), "127.0.0.1");
		return 0;
	}
	if (strlen(spec) >= sizeof(buf) || strncmp(spec, "veth", 4) != 0 ||
	    (spec[4] != '\0' && spec[4] != ',')) {
		snprintf(err, errsz, "--path %.100s: want lo or veth,mtu=N[,delay=D][,loss=P][,rate=R]",
			 spec);
		return -1;
	}
	p->veth = true;
	p->mtu = 1500;
	snprintf(buf, sizeof(buf), "%s", spec + 4);
	for (t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');
		if (eq == NULL)
			goto bad;
		*eq++ = '\0';
		if (strcmp(t, "mtu") == 0) {
			char *end;
			p->mtu = strtol(eq, &end, 10);
			if (*eq == '\0' || *end != '\0' || p->mtu < 1280 || p->mtu > 65535)
				goto bad;
		} else if (strcmp(t, "delay") == 0 && value_ok(eq, "usm")) {
			snprintf(p->delay, sizeof(p->delay), "%s", eq);
		} else if (strcmp(t, "loss") == 0 && value_ok(eq, "%")) {
			snprintf(p->loss, sizeof(p->loss), "%s", eq);
		} else if (strcmp(t, "rate") == 0 && value_ok(eq, "kmgKMGbitps")) {
			snprintf(p->rate, sizeof(p->rate), "%s", eq);
		} else {
			goto bad;
		}
	}
	snprintf(p->label, sizeof(p->label), "veth,mtu=%ld%s%s%s%s%s%s", p->mtu,
		 p->delay[0] ? ",delay=" : "", p->delay, p->loss[0] ? ",loss=" : "", p->loss,
		 p->rate[0] ? ",rate=" : "", p->rate);
	snprintf(p->srv_addr, sizeof(p->srv_addr), "198.18.%zu.1", index);
	snprintf(p->ns_srv, sizeof(p->ns_srv), NS_PREFIX "%ld-%zus", (long)getpid(), index);
	snprintf(p->ns_cli, sizeof(p->ns_cli), NS_PREFIX "%ld-%zuc", (long)getpid(), index);
	return 0;
bad:
	snprintf(err, errsz, "--path %.100s: want veth,mtu=N (1280..65535)[,delay=D (e.g. 20ms)]"
		 "[,loss=P (e.g. 0.1%%)][,rate=R (e.g. 100mbit)]", spec);
	return -1;
}

/* ---- setup ----------------------------------------------------------------------------- */

/* A ktlsd left running in a stale namespace (its parent was SIGKILLed): kill it. */
static void kill_in_ns(const char *name)
{
	char p[PATH_MAX];
	struct stat ns;
	DIR *d;
	struct dirent *e;

	snprintf(p, sizeof(p), NETNS_DIR "/%s", name);
	if (stat(p, &ns) == -1 || (d = opendir("/proc")) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char q[64], comm[32] = "";
		struct stat st;
		long pid = strtol(e->d_name, NULL, 10);
		if (pid <= 1)
			continue;
		snprintf(q, sizeof(q), "/proc/%ld/ns/net", pid);
		if (stat(q, &st) == -1 || st.st_ino != ns.st_ino || st.st_dev != ns.st_dev)
			continue;
		snprintf(q, sizeof(q), "/proc/%ld/comm", pid);
		FILE *f = fopen(q, "re");
		if (f != NULL) {
			if (fgets(comm, sizeof(comm), f) == NULL)
				comm[0] = '\0';
			fclose(f);
		}
		if (strncmp(comm, "ktlsd", 5) == 0)
			kill((pid_t)pid, SIGKILL);
	}
	closedir(d);
}

/* Namespaces NS_PREFIX<pid>-... whose process is gone: a run that was killed (SIGKILL)
 * before it could clean up. */
static void remove_stale(void)
{
	DIR *d = opendir(NETNS_DIR);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char comm[64] = "", proc[64], err[256];
		long pid;
		char *end;
		if (strncmp(e->d_name, NS_PREFIX, strlen(NS_PREFIX)) != 0)
			continue;
		pid = strtol(e->d_name + strlen(NS_PREFIX), &end, 10);
		if (pid <= 0 || *end != '-' || pid == (long)getpid())
			continue;
		snprintf(proc, sizeof(proc), "/proc/%ld/comm", pid);
		FILE *f = fopen(proc, "re");
		if (f != NULL) {
			if (fgets(comm, sizeof(comm), f) == NULL)
				comm[0] = '\0';
			fclose(f);
		}
		if (strncmp(comm, "ktlsd-bench", 11) == 0)
			continue;	/* a run in progress */
		const char *argv[] = { g_ip, "netns", "del", e->d_name, NULL };
		kill_in_ns(e->d_name);
		if (run_cmd(argv, err, sizeof(err)) == 0)
			fprintf(stderr, "ktlsd-bench: removed namespace %s of an earlier run "
				"(pid %ld is gone)\n", e->d_name, pid);
	}
	closedir(d);
}

static int open_ns(const char *name)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), NETNS_DIR "/%s", name);
	return open(p, O_RDONLY | O_CLOEXEC);
}

static int setup_one(struct bench_path *p, size_t index, char *err, size_t errsz)
{
	char mtu[24], a_srv[48], a_cli[48], burst[24];
	const char *ns_s = p->ns_srv, *ns_c = p->ns_cli;

	snprintf(mtu, sizeof(mtu), "%ld", p->mtu);
	snprintf(a_srv, sizeof(a_srv), "198.18.%zu.1/24", index);
	snprintf(a_cli, sizeof(a_cli), "198.18.%zu.2/24", index);
	/* tbf: a burst below the MTU would hold every full-size packet forever */
	snprintf(burst, sizeof(burst), "%ld", p->mtu * 2 > 65536 ? p->mtu * 2 : 65536);
	const char *cmds[][20] = {
		{ g_ip, "netns", "add", ns_s, NULL },
		{ g_ip, "netns", "add", ns_c, NULL },
		{ g_ip, "-n", ns_s, "link", "add", "kb0", "type", "veth", "peer", "name", "kb1",
		  "netns", ns_c, NULL },
		{ g_ip, "-n", ns_s, "link", "set", "kb0", "mtu", mtu, "up", NULL },
		{ g_ip, "-n", ns_c, "link", "set", "kb1", "mtu", mtu, "up", NULL },
		{ g_ip, "-n", ns_s, "link", "set", "lo", "up", NULL },
		{ g_ip, "-n", ns_c, "link", "set", "lo", "up", NULL },
		{ g_ip, "-n", ns_s, "addr", "add", a_srv, "dev", "kb0", NULL },
		{ g_ip, "-n", ns_c, "addr", "add", a_cli, "dev", "kb1", NULL },
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (i < 2) {	/* recorded before it exists: a signal now still removes it */
			snprintf(g_ns[g_nns], sizeof(g_ns[0]), "%s", cmds[i][3]);
			g_nns = g_nns + 1;
		}
		if (run_cmd(cmds[i], err, errsz) == -1)
			return -1;
	}
	if (p->delay[0] || p->loss[0]) {
		const char *argv[20] = { g_tc, "-n", ns_s, "qdisc", "add", "dev", "kb0", "root",
					 "handle", "1:", "netem", "limit", "100000" };
		size_t k = 13;
		if (p->delay[0]) {
			argv[k++] = "delay";
			argv[k++] = p->delay;
		}
		if (p->loss[0]) {
			argv[k++] = "loss";
			argv[k++] = p->loss;
		}
		argv[k] = NULL;
		if (run_cmd(argv, err, errsz) == -1)
			return -1;
	}
	if (p->rate[0]) {
		const char *argv[24] = { g_tc, "-n", ns_s, "qdisc", "add", "dev", "kb0" };
		size_t k = 7;
		if (p->delay[0] || p->loss[0]) {	/* under netem: its one class */
			argv[k++] = "parent";
			argv[k++] = "1:1";
		} else {
			argv[k++] = "root";
		}
		const char *rest[] = { "handle", "2:", "tbf", "rate", p->rate, "burst", burst,
				       "latency", "1s", NULL };
		for (size_t i = 0; i < sizeof(rest) / sizeof(rest[0]); i++)
			argv[k++] = rest[i];
		if (run_cmd(argv, err, errsz) == -1)
			return -1;
	}
	p->fd_srv = open_ns(ns_s);
	p->fd_cli = open_ns(ns_c);
	if (p->fd_srv == -1 || p->fd_cli == -1) {
		snprintf(err, errsz, "open " NETNS_DIR "/%s: %s", ns_s, strerror(errno));
		return -1;
	}
	return 0;
}

int bench_paths_setup(struct bench_path *paths, size_t n, char *err, size_t errsz)
{
	bool veth = false, tc = false;
	char e[768];

	for (size_t i = 0; i < n; i++) {
		veth |= paths[i].veth;
		tc |= paths[i].delay[0] || paths[i].loss[0] || paths[i].rate[0];
	}
	if (!veth)
		return 0;
	if (geteuid() != 0) {
		snprintf(err, errsz, "a veth path needs root (it makes network namespaces and a "
			 "veth pair); not falling back to loopback");
		return -1;
	}
	if (find_bin("ip", g_ip, sizeof(g_ip)) == -1) {
		snprintf(err, errsz, "a veth path needs iproute2's ip, not found in PATH");
		return -1;
	}
	if (tc && find_bin("tc", g_tc, sizeof(g_tc)) == -1) {
		snprintf(err, errsz, "delay, loss and rate need iproute2's tc, not found in PATH");
		return -1;
	}
	g_self_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (g_self_fd == -1) {
		snprintf(err, errsz, "no network namespaces here: /proc/self/ns/net: %s",
			 strerror(errno));
		return -1;
	}
	remove_stale();
	for (size_t i = 0; i < n; i++) {
		if (!paths[i].veth)
			continue;
		if (setup_one(&paths[i], i, e, sizeof(e)) == -1) {
			snprintf(err, errsz, "path %s: %s", paths[i].label, e);
			bench_paths_teardown(paths, n);
			return -1;
		}
	}
	return 0;
}

void bench_paths_teardown(struct bench_path *paths, size_t n)
{
	sigset_t all, old;

	for (size_t i = 0; i < n; i++) {
		if (paths[i].fd_srv != -1)
			close(paths[i].fd_srv);
		if (paths[i].fd_cli != -1)
			close(paths[i].fd_cli);
		paths[i].fd_srv = paths[i].fd_cli = -1;
	}
	if (g_self_fd != -1) {
		setns(g_self_fd, CLONE_NEWNET);
		close(g_self_fd);
		g_self_fd = -1;
	}
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	del_ns_all();
	sigprocmask(SIG_SETMASK, &old, NULL);
}

int bench_path_enter(const struct bench_path *p, enum bench_side side)
{
	int fd;

	if (p == NULL || !p->veth)
		return 0;
	fd = side == BENCH_SERVER ? p->fd_srv : side == BENCH_CLIENT ? p->fd_cli : g_self_fd;
	return fd == -1 ? -1 : setns(fd, CLONE_NEWNET);
}

void bench_paths_done_with_dir(void)
{
	g_have_dir = 0;
}
