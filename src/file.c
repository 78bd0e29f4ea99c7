/* file.c — see file.h. */
#include "autoconf.h"
#include "file.h"
#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef HAVE_LINUX_OPENAT2_H
#include <linux/openat2.h>
#else
struct open_how {
	unsigned long long flags, mode, resolve;
};
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_BENEATH 0x08
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)

/* Whether the kernel lets us use openat2(): probed on the document root at start and at
 * every reload (file_open_root()). Kernels before 5.6, and containers whose seccomp
 * profile predates openat2 (it then fails with ENOSYS or EPERM), do not. */
static _Atomic bool use_openat2 = true;	/* a reload (main thread) probes again */

/* Without openat2: walk rel one component at a time, following no symlink at all (the
 * last one opened with O_NOFOLLOW, the others as O_PATH directories that must not be
 * links). Stricter than RESOLVE_BENEATH, which allows links that stay inside: here every
 * symlink is refused (ELOOP, 403). path_normalize() already removed "." and "..", a ".."
 * is refused again anyway. */
static int open_walk(int dirfd, const char *rel)
{
	char buf[4096];
	char *save = NULL, *comp, *next;
	int cur = dirfd;

	if (strlen(rel) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, rel);
	for (comp = strtok_r(buf, "/", &save); comp != NULL; comp = next) {
		int prev = cur;

		next = strtok_r(NULL, "/", &save);
		if (strcmp(comp, "..") == 0) {
			errno = EXDEV;
			cur = -1;
		} else if (next == NULL) {
			cur = openat(prev, comp, OPEN_FLAGS | O_NOFOLLOW);
		} else {
			cur = openat(prev, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cur == -1 && errno == ENOTDIR) {
				struct stat st;
				/* a link to a directory is refused like any other link */
				errno = fstatat(prev, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
					S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR;
			}
		}
		if (prev != dirfd) {
			int e = errno;
			close(prev);
			errno = e;
		}
		if (cur == -1)
			return -1;
	}
	if (cur == dirfd) {	/* no component at all */
		errno = ENOENT;
		return -1;
	}
	return cur;
}

static int open_beneath(int dirfd, const char *rel)
{
	struct open_how how = {
		.flags = OPEN_FLAGS,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};

	if (!use_openat2)
		return strcmp(rel, ".") == 0 ? openat(dirfd, ".", OPEN_FLAGS) : open_walk(dirfd, rel);
	return (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
}

static _Atomic int openat2_errno;	/* why openat2() is not used */

static void probe_openat2(int rootfd)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, rootfd, ".", &how, sizeof(how));

	if (fd >= 0) {
		close(fd);
		use_openat2 = true;
		return;
	}
	openat2_errno = errno;
	use_openat2 = errno != ENOSYS && errno != EPERM;
}

void file_warn_if_no_openat2(void)
{
	if (!use_openat2)
		log_msg(LOG_LEVEL_WARN, "openat2() unavailable (%s; kernel before 5.6, or a seccomp "
			"filter): paths are resolved one component at a time without following "
			"symlinks, so every symlink under the document root is refused (403)",
			strerror(openat2_errno));
}

/* quiet: a listing's probe, for which a refusal only means leaving the entry out (it
 * meets the same link at every request); errors that should not happen are logged. */
static enum file_result from_errno(int e, const char *rel, bool quiet)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
		return FILE_NOT_FOUND;
	case EXDEV:	/* RESOLVE_BENEATH: would leave the root */
		if (!quiet)
			log_msg(LOG_LEVEL_INFO, "refused \"%s\": resolves outside the document root",
				rel);
		return FILE_FORBIDDEN;
	case EACCES:
	case EPERM:
	case ELOOP:
	case ENXIO:	/* a socket or FIFO without writer */
		return FILE_FORBIDDEN;
	case ENAMETOOLONG:
		return FILE_TOO_LONG;
	case EMFILE:
	case ENFILE:
		log_msg(LOG_LEVEL_ERROR, "cannot open \"%s\": %s", rel, strerror(e));
		return FILE_UNAVAILABLE;
	default:
		log_msg(LOG_LEVEL_ERROR, "cannot open \"%s\": %s", rel, strerror(e));
		return FILE_ERROR;
	}
}

static void make_etag(struct file_info *fi)
{
	/* mtime (ns) and size: changes whenever the content is replaced or rewritten */
	snprintf(fi->etag, sizeof(fi->etag), "\"%llx.%lx-%llx\"",
		 (unsigned long long)fi->st.st_mtim.tv_sec, (unsigned long)fi->st.st_mtim.tv_nsec,
		 (unsigned long long)fi->st.st_size);
}

enum file_result file_open(int rootfd, const char *rel, bool trailing_slash,
			   const char *index_name, struct file_info *fi)
{
	int fd = open_beneath(rootfd, rel);

	fi->fd = -1;
	if (fd == -1)
		return from_errno(errno, rel, false);
	if (fstat(fd, &fi->st) == -1) {
		int e = errno;
		close(fd);
		return from_errno(e, rel, false);
	}
	if (S_ISDIR(fi->st.st_mode)) {
		if (!trailing_slash && strcmp(rel, ".") != 0) {
			close(fd);
			return FILE_REDIRECT;
		}
		int ifd = open_beneath(fd, index_name);
		int e = errno;
		if (ifd == -1 && e == ENOENT) {
			/* the directory itself, as opened and stat'ed: a listing reads this fd,
			 * never the path again (which may name another directory by now) */
			fi->fd = fd;
			make_etag(fi);
			return FILE_DIRECTORY;
		}
		close(fd);
		if (ifd == -1)
			return from_errno(e, index_name, false);
		fd = ifd;
		if (fstat(fd, &fi->st) == -1) {
			e = errno;
			close(fd);
			return from_errno(e, rel, false);
		}
	} else if (trailing_slash) {
		close(fd);
		return FILE_NOT_FOUND;	/* "/file.txt/" names no directory */
	}
	if (!S_ISREG(fi->st.st_mode)) {
		close(fd);
		return FILE_FORBIDDEN;
	}
	fi->fd = fd;
	make_etag(fi);
	return FILE_OK;
}

enum file_result file_probe(int rootfd, const char *rel, struct stat *st)
{
	int fd = open_beneath(rootfd, rel);
	enum file_result r = FILE_OK;

	if (fd == -1)
		return from_errno(errno, rel, true);
	if (fstat(fd, st) == -1)
		r = from_errno(errno, rel, true);
	else if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
		r = FILE_FORBIDDEN;
	close(fd);
	return r;
}

int file_open_root(const char *dir)
{
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0)
		probe_openat2(fd);
	return fd;
}
