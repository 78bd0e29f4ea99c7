/* file.h — open a file strictly beneath the document root, and describe it. */
#ifndef KTLSD_FILE_H
#define KTLSD_FILE_H

#include <stdbool.h>
#include <sys/stat.h>

struct file_info {
	int fd;			/* O_RDONLY, owned by the caller once FILE_OK */
	struct stat st;
	char etag[48];		/* strong entity-tag with quotes */
};

enum file_result {
	FILE_OK,
	FILE_REDIRECT,		/* a directory asked for without its trailing slash: 301 */
	FILE_NOT_FOUND,		/* 404 */
	FILE_DIRECTORY,		/* a directory without its index file, asked for with its
				 * slash: *fi is the directory (fd open O_RDONLY, for a
				 * listing); 403 where directories are not listed */
	FILE_FORBIDDEN,		/* 403: permission, symlink escaping the root, not a regular
				 * file */
	FILE_TOO_LONG,		/* 414 */
	FILE_UNAVAILABLE,	/* 503: out of file descriptors */
	FILE_ERROR,		/* 500, logged */
};

/* Open rel (from path_normalize(): relative, "." for the root) beneath rootfd with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): the kernel refuses any ".." or
 * symlink that would leave the root, wherever it appears, even when swapped in during
 * the request. A directory is served by its index file (index_name) when the request
 * ended in '/'; without one it is FILE_DIRECTORY. Never blocks (FIFOs are refused,
 * O_NONBLOCK). On FILE_OK and FILE_DIRECTORY fills *fi (the caller owns fi->fd). */
enum file_result file_open(int rootfd, const char *rel, bool trailing_slash,
			   const char *index_name, struct file_info *fi);

/* Would a request for rel be served? rel is opened beneath rootfd exactly as file_open()
 * opens it (the same resolution, the same refusals: a symlink leaving the root, any
 * symlink without openat2, no permission), fstat()ed into *st, and closed. FILE_OK for a
 * regular file or a directory, FILE_FORBIDDEN for anything else that resolves, otherwise
 * file_open()'s results; a refusal that only means "do not list it" is not logged. For
 * directory listings, which leave out what the server would not serve. */
enum file_result file_probe(int rootfd, const char *rel, struct stat *st);

/* Open the document root directory (O_PATH). -1 with errno on failure. Also checks that
 * openat2() works; where it does not (ENOSYS/EPERM: old kernel, seccomp), file_open()
 * falls back to a component-by-component walk that refuses every symlink. */
int file_open_root(const char *dir);

/* Log a warning if the last file_open_root() found openat2() unusable (at start and at
 * every reload, once the logs are open). */
void file_warn_if_no_openat2(void);

#endif
