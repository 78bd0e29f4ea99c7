/* file.c — see file.h. */
#include "autoconf.h"
#include "file.h"
#include "log.h"

#include <errno.h>
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

static int open_beneath(int dirfd, const char *rel)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};

	return (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
}

static enum file_result from_errno(int e, const char *rel)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
		return FILE_NOT_FOUND;
	case EXDEV:	/* RESOLVE_BENEATH: would leave the root */
		log_msg(LOG_LEVEL_INFO, "refused \"%s\": resolves outside the document root", rel);
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
		return from_errno(errno, rel);
	if (fstat(fd, &fi->st) == -1) {
		int e = errno;
		close(fd);
		return from_errno(e, rel);
	}
	if (S_ISDIR(fi->st.st_mode)) {
		if (!trailing_slash && strcmp(rel, ".") != 0) {
			close(fd);
			return FILE_REDIRECT;
		}
		int ifd = open_beneath(fd, index_name);
		int e = errno;
		close(fd);
		if (ifd == -1)
			return e == ENOENT ? FILE_FORBIDDEN : from_errno(e, index_name);
		fd = ifd;
		if (fstat(fd, &fi->st) == -1) {
			e = errno;
			close(fd);
			return from_errno(e, rel);
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

int file_open_root(const char *dir)
{
	return open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
}
