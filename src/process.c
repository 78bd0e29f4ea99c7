/* process.c — see process.h. */
#include "autoconf.h"
#include "process.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

/* Who ktlsd will run as, decided before anything is bound (and checked by -t), so that
 * a missing user or an accidental root start fails at once, with a reason, and never
 * after the sockets are up. Serving files as root is a choice, not a default: a bug in
 * request handling would otherwise hand out root's view of the file system. */
int process_check_privileges(const struct config *cfg, char *err, size_t errlen)
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
int process_drop_privileges(const struct config *cfg)
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
void process_set_nofile(const struct config *cfg)
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
int process_detach(int *ready_fd)
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
