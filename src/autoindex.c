/* autoindex.c — see autoindex.h. */
#include "autoconf.h"
#include "autoindex.h"
#include "escape.h"
#include "log.h"
#include "path.h"
#include "response.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#define REL_MAX 4096	/* as the request path buffer in conn.c: longer is 414 */

struct entry {
	char *name;
	size_t len;
	bool dir;
	uint64_t size;
	time_t mtime;
};

/* The entries held while the directory is read: a max-heap in listing order (e[0] is
 * the one that would be listed last), so that once max entries are held a new one either
 * takes the last one's place or is dropped, and memory stays max entries. */
struct listing {
	struct entry *e;
	size_t n, cap, max;
	bool truncated;
};

/* ---- format ----------------------------------------------------------- */

static bool param_is(const char *p, size_t n, const char *want)
{
	return n == strlen(want) && memcmp(p, want, n) == 0;
}

bool autoindex_wants_json(const struct http_request *req)
{
	const char *q = req->query.ptr, *end = q + req->query.len;

	while (q != NULL && q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q));
		size_t n = (size_t)((amp ? amp : end) - q);

		if (param_is(q, n, "format=json"))
			return true;
		if (param_is(q, n, "format=html") || (n >= 7 && memcmp(q, "format=", 7) == 0))
			return false;
		q = amp ? amp + 1 : end;
	}
	return http_accept_quality(req->accept.ptr, req->accept.len, "application/json") >
	       http_accept_quality(req->accept.ptr, req->accept.len, "text/html");
}

/* ---- reading the directory --------------------------------------------- */

static bool before(const struct entry *a, const struct entry *b)
{
	if (a->dir != b->dir)
		return a->dir;
	return strcmp(a->name, b->name) < 0;	/* compares as unsigned char: bytewise */
}

static int cmp_entries(const void *a, const void *b)
{
	return before(a, b) ? -1 : before(b, a) ? 1 : 0;
}

static void swap(struct entry *a, struct entry *b)
{
	struct entry t = *a;

	*a = *b;
	*b = t;
}

static void sift_down(struct entry *e, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < n && before(&e[m], &e[l]))
			m = l;
		if (r < n && before(&e[m], &e[r]))
			m = r;
		if (m == i)
			return;
		swap(&e[i], &e[m]);
		i = m;
	}
}

/* Hold ne (its name not yet copied) if it is among the first max. -1: out of memory. */
static int keep(struct listing *l, struct entry ne)
{
	if (l->n == l->max) {
		l->truncated = true;
		if (!before(&ne, &l->e[0]))
			return 0;
		if ((ne.name = strdup(ne.name)) == NULL)
			return -1;
		free(l->e[0].name);
		l->e[0] = ne;
		sift_down(l->e, l->n, 0);
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct entry *e;

		if (cap > l->max)
			cap = l->max;
		if ((e = realloc(l->e, cap * sizeof(*e))) == NULL)
			return -1;
		l->e = e;
		l->cap = cap;
	}
	if ((ne.name = strdup(ne.name)) == NULL)
		return -1;
	l->e[l->n] = ne;
	for (size_t i = l->n++; i > 0 && before(&l->e[(i - 1) / 2], &l->e[i]); i = (i - 1) / 2)
		swap(&l->e[i], &l->e[(i - 1) / 2]);
	return 0;
}

static void listing_free(struct listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].name);
	free(l->e);
}

/* Does a link to name lead back to name through the request path parser? The parser
 * judges decoded bytes only, so the name is handed to it with every byte
 * percent-encoded: what it decides is what it decides for the link on the page. */
static bool linkable(const char *name, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char link[1 + 3 * NAME_MAX], back[NAME_MAX + 1];
	bool slash;

	if (len > NAME_MAX)
		return false;
	link[0] = '/';
	for (size_t i = 0; i < len; i++) {
		link[1 + 3 * i] = '%';
		link[2 + 3 * i] = hex[(unsigned char)name[i] >> 4];
		link[3 + 3 * i] = hex[(unsigned char)name[i] & 15];
	}
	return path_normalize(link, 1 + 3 * len, back, sizeof(back), &slash) == PATH_OK &&
	       strlen(back) == len && memcmp(back, name, len) == 0;
}

/* Would the server serve rel/name? Fills *ne. FILE_OK, FILE_UNAVAILABLE (out of
 * descriptors: the listing cannot be complete), or another result: leave it out. */
static enum file_result probe(int rootfd, const char *rel, const struct dirent *de,
			      struct entry *ne)
{
	char path[REL_MAX];
	struct stat st;
	int n;
	enum file_result r;

	/* the server refuses what is not a regular file or directory: no need to open
	 * (with side effects, for a device) what says so itself */
	if (de->d_type == DT_FIFO || de->d_type == DT_CHR || de->d_type == DT_BLK ||
	    de->d_type == DT_SOCK)
		return FILE_FORBIDDEN;
	n = strcmp(rel, ".") == 0 ? snprintf(path, sizeof(path), "%s", de->d_name)
				  : snprintf(path, sizeof(path), "%s/%s", rel, de->d_name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return FILE_TOO_LONG;
	r = file_probe(rootfd, path, &st);
	if (r != FILE_OK)
		return r;
	ne->dir = S_ISDIR(st.st_mode);
	ne->size = (uint64_t)st.st_size;
	ne->mtime = st.st_mtim.tv_sec;
	return FILE_OK;
}

/* Read the directory open as dirfd into l. */
static enum autoindex_result read_dir(int rootfd, const char *rel, int dirfd, size_t dir_len,
				      const struct autoindex_settings *s, struct listing *l)
{
	enum autoindex_result res = AUTOINDEX_OK;
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);	/* closedir() closes it, not dirfd */
	DIR *d = fd == -1 ? NULL : fdopendir(fd);
	struct dirent *de;

	if (d == NULL) {
		res = errno == EMFILE || errno == ENFILE ? AUTOINDEX_UNAVAILABLE : AUTOINDEX_ERROR;
		log_msg(LOG_LEVEL_ERROR, "cannot read directory \"%s\": %s", rel, strerror(errno));
		if (fd != -1)
			close(fd);
		return res;
	}
	rewinddir(d);	/* the duplicate shares the offset: start at the start */
	while (errno = 0, (de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		size_t len = strlen(name);
		struct entry ne = { .name = de->d_name, .len = len, .dir = de->d_type == DT_DIR };
		enum file_result r;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
		    (name[0] == '.' && !s->hidden))
			continue;
		/* Once the page is known to be cut short, an entry that is no link and sorts
		 * after every one held could only be dropped: not opening it keeps a huge
		 * directory's cost near one readdir() per name. */
		if (l->truncated && l->n == l->max && (de->d_type == DT_REG || ne.dir) &&
		    !before(&ne, &l->e[0]))
			continue;
		if (!linkable(name, len))
			continue;
		r = probe(rootfd, rel, de, &ne);
		/* a request line "GET " DIR NAME ["/"] " HTTP/1.1" over the limit is 414 */
		if (r == FILE_OK && dir_len + escape_uri_segment_len(name, len) + (ne.dir ? 1 : 0) +
				    13 > s->max_request_line)
			continue;
		if (r == FILE_UNAVAILABLE) {
			res = AUTOINDEX_UNAVAILABLE;
			break;
		}
		if (r == FILE_OK && keep(l, ne) == -1) {
			res = AUTOINDEX_ERROR;
			log_msg(LOG_LEVEL_ERROR, "listing \"%s\": out of memory", rel);
			break;
		}
	}
	if (de == NULL && errno != 0) {
		log_msg(LOG_LEVEL_ERROR, "reading directory \"%s\": %s", rel, strerror(errno));
		res = AUTOINDEX_ERROR;
	}
	closedir(d);
	return res;
}

/* ---- the page ---------------------------------------------------------- */

/* An ISO 8601 UTC time, "2024-05-06T07:08:09Z". */
static const char *iso8601(time_t t, char *buf, size_t cap)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, cap, "1970-01-01T00:00:00Z");
	return buf;
}

/* "/" rel "/": the directory's path as the page names it (escaped by esc). */
static int put_path(struct evbuffer *b, const char *rel,
		    int (*esc)(struct evbuffer *, const char *, size_t))
{
	if (strcmp(rel, ".") == 0)
		return evbuffer_add(b, "/", 1);
	return evbuffer_add(b, "/", 1) == -1 || esc(b, rel, strlen(rel)) == -1 ||
	       evbuffer_add(b, "/", 1) == -1 ? -1 : 0;
}

static int html_row(struct evbuffer *b, const struct entry *e)
{
	char when[32], size[24];

	iso8601(e->mtime, when, sizeof(when));
	snprintf(size, sizeof(size), e->dir ? "-" : "%" PRIu64, e->size);
	return evbuffer_add(b, "<tr><td><a href=\"", 17) == -1 ||
	       escape_uri_segment(b, e->name, e->len) == -1 ||
	       evbuffer_add(b, e->dir ? "/\">" : "\">", e->dir ? 3 : 2) == -1 ||
	       escape_html(b, e->name, e->len) == -1 ||
	       evbuffer_add_printf(b, "%s</a></td><td>%s</td><td>%s</td></tr>\n",
				   e->dir ? "/" : "", size, when) == -1 ? -1 : 0;
}

static int json_row(struct evbuffer *b, const struct entry *e, bool first)
{
	char when[32], size[24];

	iso8601(e->mtime, when, sizeof(when));
	snprintf(size, sizeof(size), e->dir ? "null" : "%" PRIu64, e->size);
	return evbuffer_add_printf(b, "%s\n{\"name\":\"", first ? "" : ",") == -1 ||
	       escape_json(b, e->name, e->len) == -1 ||
	       evbuffer_add_printf(b, "\",\"type\":\"%s\",\"size\":%s,\"mtime\":\"%s\"}",
				   e->dir ? "directory" : "file", size, when) == -1 ? -1 : 0;
}

/* The entries of l (sorted) into b, as HTML or JSON rows; stops short of
 * AUTOINDEX_MAX_BODY (and says so in l->truncated). *shown: rows written. */
static int put_rows(struct evbuffer *b, struct listing *l, bool json, size_t *shown)
{
	for (*shown = 0; *shown < l->n; (*shown)++) {
		/* room for the longest row (escaped name, numbers) and the end of the page */
		if (evbuffer_get_length(b) + 8 * NAME_MAX + 1024 > AUTOINDEX_MAX_BODY) {
			l->truncated = true;
			return 0;
		}
		if ((json ? json_row(b, &l->e[*shown], *shown == 0)
			  : html_row(b, &l->e[*shown])) == -1)
			return -1;
	}
	return 0;
}

static int put_html(struct evbuffer *b, const char *rel, struct listing *l, size_t *shown)
{
	if (evbuffer_add_printf(b, "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\">"
				"<title>Index of ") == -1 || put_path(b, rel, escape_html) == -1 ||
	    evbuffer_add_printf(b, "</title></head>\n<body>\n<h1>Index of ") == -1 ||
	    put_path(b, rel, escape_html) == -1 ||
	    evbuffer_add_printf(b, "</h1>\n<table>\n<tr><th>Name</th><th>Size</th>"
				"<th>Last modified</th></tr>\n%s",
				strcmp(rel, ".") == 0 ? "" : "<tr><td><a href=\"../\">../</a></td>"
				"<td>-</td><td>-</td></tr>\n") == -1 ||
	    put_rows(b, l, false, shown) == -1)
		return -1;
	if (evbuffer_add_printf(b, "</table>\n") == -1 ||
	    (l->truncated && evbuffer_add_printf(b, "<p class=\"truncated\">Truncated: only the first "
						 "%zu entries are listed.</p>\n", *shown) == -1))
		return -1;
	return evbuffer_add_printf(b, "<hr><address>ktlsd</address>\n</body>\n</html>\n") == -1
		       ? -1 : 0;
}

static int put_json(struct evbuffer *b, const char *rel, struct listing *l, size_t *shown)
{
	if (evbuffer_add(b, "{\"path\":\"", 9) == -1 || put_path(b, rel, escape_json) == -1 ||
	    evbuffer_add(b, "\",\"entries\":[", 13) == -1 || put_rows(b, l, true, shown) == -1)
		return -1;
	/* truncated at the end: put_rows() may only now have found it out */
	return evbuffer_add_printf(b, "\n],\"truncated\":%s}\n", l->truncated ? "true" : "false")
		       == -1 ? -1 : 0;
}

/* The validator of this representation: the directory's inode, mtime and size (an
 * entry added, removed or renamed changes its mtime), the format, and the settings that
 * change what is listed. */
static void make_etag(const struct file_info *dir, bool json, const struct autoindex_settings *s,
		      char *etag, size_t cap)
{
	snprintf(etag, cap, "\"d%" PRIx64 "-%llx.%lx-%llx-%c%s%x\"", (uint64_t)dir->st.st_ino,
		 (unsigned long long)dir->st.st_mtim.tv_sec, (unsigned long)dir->st.st_mtim.tv_nsec,
		 (unsigned long long)dir->st.st_size, json ? 'j' : 'h', s->hidden ? "a" : "",
		 s->max_entries);
}

enum autoindex_result autoindex_page(const struct http_request *req, int rootfd, const char *rel,
				     const struct file_info *dir,
				     const struct autoindex_settings *s,
				     struct autoindex_page *page)
{
	bool json = autoindex_wants_json(req);
	struct listing l = { .max = s->max_entries > 0 ? s->max_entries : 1 };
	enum autoindex_result res;

	memset(page, 0, sizeof(*page));
	page->content_type = json ? "application/json" : "text/html; charset=utf-8";
	page->last_modified = dir->st.st_mtim.tv_sec;
	make_etag(dir, json, s, page->etag, sizeof(page->etag));
	if (response_not_modified(req, page->etag, page->last_modified)) {
		page->status = 304;
		return AUTOINDEX_OK;
	}
	res = read_dir(rootfd, rel, dir->fd, req->path.len, s, &l);
	if (res == AUTOINDEX_OK) {
		if (l.n > 1)	/* an empty directory has no array at all */
			qsort(l.e, l.n, sizeof(l.e[0]), cmp_entries);
		page->body = evbuffer_new();
		if (page->body == NULL ||
		    (json ? put_json : put_html)(page->body, rel, &l, &page->entries) == -1) {
			log_msg(LOG_LEVEL_ERROR, "listing \"%s\": out of memory", rel);
			res = AUTOINDEX_ERROR;
		}
	}
	listing_free(&l);
	if (res != AUTOINDEX_OK) {
		if (page->body != NULL)
			evbuffer_free(page->body);
		page->body = NULL;
		return res;
	}
	page->status = 200;
	page->truncated = l.truncated;
	return AUTOINDEX_OK;
}
