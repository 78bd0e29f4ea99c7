/* autoindex.h — directory listings (nginx's autoindex, lighttpd's mod_dirlisting): the
 * HTML or JSON page for a directory that has no index file.
 *
 * A listing shows what the server would serve, nothing else. Every entry is opened the
 * way a request for it would be (file_probe(): openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS from the document root, or the fallback walk), and its link is
 * run through the request path parser (path_normalize()) to check that it leads back to
 * it. So symlinks leaving the root (and, without openat2, every symlink), special files,
 * entries the server may not read, names no request path can carry (the parser
 * answers 400 to invalid UTF-8, control bytes and '\\') and links whose request line
 * would be over limits.request_line (414) are left out; dot files too, unless asked for.
 *
 * Bounded: the directory is read once, through the descriptor file_open() opened
 * (fdopendir on a duplicate; the path is never resolved again); at most max_entries
 * entries are held, the first ones in listing order (a heap while reading), and once
 * more are known to exist an entry that could only be dropped is not even opened; the
 * page is at most AUTOINDEX_MAX_BODY bytes. Anything cut off is said on the page
 * ("truncated"). */
#ifndef KTLSD_AUTOINDEX_H
#define KTLSD_AUTOINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "file.h"
#include "http.h"

#define AUTOINDEX_MAX_BODY (32u << 20)

struct evbuffer;

struct autoindex_settings {
	bool hidden;			/* list names that start with '.' */
	unsigned max_entries;		/* more: the first ones in listing order, and a note */
	size_t max_request_line;	/* a link whose request line would be longer (414) is
					 * left out */
};

struct autoindex_page {
	int status;			/* 200, or 304: the client's copy is current */
	const char *content_type;	/* HTML or JSON, with charset */
	char etag[96];			/* strong, quoted: the directory's inode, mtime and
					 * size, the format and the settings */
	time_t last_modified;		/* the directory's mtime */
	struct evbuffer *body;		/* 200: the page, the caller's to free; 304: NULL */
	size_t entries;			/* entries on the page */
	bool truncated;
};

enum autoindex_result {
	AUTOINDEX_OK,
	AUTOINDEX_UNAVAILABLE,		/* out of file descriptors: 503 */
	AUTOINDEX_ERROR,		/* out of memory, or reading the directory failed
					 * (logged): 500 */
};

/* Answer req (GET or HEAD) for the directory rel (from path_normalize(): "." for the
 * root, no leading or trailing '/') beneath rootfd, which file_open() opened as dir
 * (FILE_DIRECTORY; dir->fd is left open, the caller's). A 304 when req's If-None-Match
 * (or If-Modified-Since) says the client's copy is current: then the directory is not
 * read. Otherwise the whole page, also for HEAD (its Content-Length is the page's):
 * HTML, or JSON as autoindex_wants_json() decides; in listing order: directories first,
 * then files, each by name, bytewise. */
enum autoindex_result autoindex_page(const struct http_request *req, int rootfd, const char *rel,
				     const struct file_info *dir,
				     const struct autoindex_settings *s,
				     struct autoindex_page *page);

/* JSON rather than HTML? "format=json" in the query ("format=html" the other way; the
 * first format parameter counts), else an Accept field that gives application/json more
 * weight than text/html (without Accept, or with equal weights: HTML). Pure. */
bool autoindex_wants_json(const struct http_request *req);

#endif
