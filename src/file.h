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
	FILE_FORBIDDEN,		/* 403: permission, symlink escaping the root, no index,
				 * not a regular file */
	FILE_TOO_LONG,		/* 414 */
	FILE_UNAVAILABLE,	/* 503: out of file descriptors */
	FILE_ERROR,		/* 500, logged */
};

/* Open rel (from path_normalize(): relative, "." for the root) beneath rootfd with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): the kernel refuses any ".." or
 * symlink that would leave the root, wherever it appears, even when swapped in during
 * the request. A directory is served by its index file (index_name) when the request
 * ended in '/'. Never blocks (FIFOs are refused, O_NONBLOCK). On FILE_OK fills *fi. */
enum file_result file_open(int rootfd, const char *rel, bool trailing_slash,
			   const char *index_name, struct file_info *fi);

/* Open the document root directory (O_PATH). -1 with errno on failure. Also checks that
 * openat2() works; where it does not (ENOSYS/EPERM: old kernel, seccomp), file_open()
 * falls back to a component-by-component walk that refuses every symlink. */
int file_open_root(const char *dir);

/* Log a warning if the last file_open_root() found openat2() unusable (at start and at
 * every reload, once the logs are open). */
void file_warn_if_no_openat2(void);

#endif
