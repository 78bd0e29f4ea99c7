/* response.c — see response.h. */
#include "autoconf.h"
#include "response.h"
#include "fcache.h"
#include "http.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/rand.h>

const char *response_date_now(void)
{
	/* per thread: each worker formats its own, no lock on every response */
	static _Thread_local char buf[32];
	static _Thread_local time_t cached = -1;
	time_t now = time(NULL);

	if (now != cached) {
		http_date_format(now, buf);
		cached = now;
	}
	return buf;
}

/* snprintf-append that remembers overflow. */
struct out {
	char *p;
	size_t cap, len;
	bool overflow;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len)
		o->overflow = true;
	else
		o->len += (size_t)n;
}

size_t response_format_head(char *buf, size_t cap, const struct response_head *h)
{
	struct out o = { buf, cap, 0, false };
	char date[32];

	put(&o, "HTTP/1.1 %d %s\r\nServer: ktlsd\r\nDate: %s\r\n", h->status,
	    http_reason(h->status), response_date_now());
	if (h->content_type != NULL)
		put(&o, "Content-Type: %s\r\n", h->content_type);
	if (h->content_encoding != NULL)
		put(&o, "Content-Encoding: %s\r\n", h->content_encoding);
	if (h->vary_encoding || h->vary_accept)
		put(&o, "Vary: %s%s%s\r\n", h->vary_encoding ? "Accept-Encoding" : "",
		    h->vary_encoding && h->vary_accept ? ", " : "", h->vary_accept ? "Accept" : "");
	put(&o, "Content-Length: %" PRIu64 "\r\n", h->content_length);
	if (h->last_modified != 0)
		put(&o, "Last-Modified: %s\r\n", http_date_format(h->last_modified, date));
	if (h->etag != NULL)
		put(&o, "ETag: %s\r\n", h->etag);
	if (h->accept_ranges)
		put(&o, "Accept-Ranges: bytes\r\n");
	if (h->content_range && h->status == 206)
		put(&o, "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n",
		    h->range_first, h->range_last, h->total);
	else if (h->content_range)
		put(&o, "Content-Range: bytes */%" PRIu64 "\r\n", h->total);
	if (h->location != NULL)
		put(&o, "Location: %.*s%s\r\n", (int)h->location_len, h->location,
		    h->location_suffix ? h->location_suffix : "");
	if (h->allow != NULL)
		put(&o, "Allow: %s\r\n", h->allow);
	put(&o, "Connection: %s\r\n\r\n", h->keep_alive ? "keep-alive" : "close");
	return o.overflow ? 0 : o.len;
}

/* one static page per status, all built once (pthread_once: workers share them read-only;
 * building one lazily per status would have two threads write the same page at once) */
static char pages[600][160];
static pthread_once_t pages_once = PTHREAD_ONCE_INIT;

static void build_pages(void)
{
	for (int status = 100; status < 600; status++)
		snprintf(pages[status], sizeof(pages[0]),
			 "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
			 "<center><h1>%d %s</h1></center>\r\n<hr><center>ktlsd</center>\r\n</body>\r\n</html>\r\n",
			 status, http_reason(status), status, http_reason(status));
}

const char *response_error_body(int status)
{
	pthread_once(&pages_once, build_pages);
	if (status < 100 || status >= 600)
		status = 500;
	return pages[status];
}

/* ---- decisions -------------------------------------------------------- */

static bool if_range_allows(const struct http_request *req, const struct file_info *fi)
{
	time_t t;

	if (req->if_range.ptr == NULL)
		return true;
	/* strong comparison: a weak tag never matches If-Range (RFC 9110 §13.1.5) */
	if (req->if_range.len > 0 && req->if_range.ptr[0] == '"')
		return req->if_range.len == strlen(fi->etag) &&
		       memcmp(req->if_range.ptr, fi->etag, req->if_range.len) == 0;
	return http_date_parse(req->if_range.ptr, req->if_range.len, &t) == 0 &&
	       t == fi->st.st_mtim.tv_sec;
}

bool response_not_modified(const struct http_request *req, const char *etag, time_t mtime)
{
	time_t t;

	/* If-None-Match wins: If-Modified-Since is not even looked at (§13.2.2) */
	if (req->if_none_match.ptr != NULL)
		return http_etag_match_any(req->if_none_match.ptr, req->if_none_match.len, etag);
	return req->if_modified_since.ptr != NULL &&
	       http_date_parse(req->if_modified_since.ptr, req->if_modified_since.len, &t) == 0 &&
	       mtime <= t;
}

struct response_plan response_plan(const struct http_request *req, const struct file_info *fi,
				   bool gzipped)
{
	struct response_plan p = {
		.status = 200,
		.head_only = req->method == HTTP_METHOD_HEAD,
		.gzip = gzipped,
		.size = (uint64_t)fi->st.st_size,
		.content_length = (uint64_t)fi->st.st_size,
	};

	if (response_not_modified(req, fi->etag, fi->st.st_mtim.tv_sec)) {
		p.status = 304;
		p.head_only = true;
		p.content_length = 0;
		return p;
	}
	if (req->range.ptr == NULL || !if_range_allows(req, fi))
		return p;
	switch (range_parse(req->range.ptr, req->range.len, p.size, p.r, RESPONSE_MAX_RANGES,
			    &p.nranges)) {
	case RANGE_UNSATISFIABLE:
		p.status = 416;
		p.content_length = 0;
		p.nranges = 0;
		break;
	case RANGE_OK:
		p.status = 206;
		p.content_length = p.nranges == 1 ? p.r[0].last - p.r[0].first + 1 : 0;
		break;
	case RANGE_IGNORE:
		p.nranges = 0;
		break;
	}
	return p;
}

bool response_wants_gzip(const struct http_request *req, bool gzip_static, const char *rel,
			 bool slash)
{
	/* a directory is served by its index: its name has no ".gz" twin to look for */
	return gzip_static && !slash && strcmp(rel, ".") != 0 &&
	       http_accepts_gzip(req->accept_encoding.ptr, req->accept_encoding.len);
}

/* ---- multipart/byteranges (RFC 9110 §14.6) ---------------------------- */

/* Several ranges: one part per range, each with its own Content-Type and Content-Range,
 * then a closing delimiter. Each part's header goes into the buffer and its range is
 * sent from the file like any body, so every sender (sendfile included) serves parts. */
#define BOUNDARY_LEN 16		/* random hex digits */

struct multipart {
	char boundary[BOUNDARY_LEN + 1];
	char ctype[64];		/* the response's Content-Type */
	const char *part_type;	/* the file's type */
	uint64_t total;		/* file size */
	size_t n, next;		/* ranges; the next part to start (n: the closing line) */
	struct byte_range r[];
};

/* Header of part i of n (i == n: the closing delimiter) into buf; its length (also when
 * it does not fit, snprintf-like; buf may be NULL with cap 0). */
static size_t part_header(const char *boundary, const char *type, const struct byte_range *r,
			  size_t i, size_t n, uint64_t total, char *buf, size_t cap)
{
	int len;

	if (i == n)
		len = snprintf(buf, cap, "\r\n--%s--\r\n", boundary);
	else
		len = snprintf(buf, cap, "\r\n--%s\r\nContent-Type: %s\r\n"
			       "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n\r\n",
			       boundary, type, r[i].first, r[i].last, total);
	return len > 0 ? (size_t)len : 0;
}

uint64_t response_multipart_length(const struct response_plan *p, const char *type)
{
	/* every boundary has the same length, so any one measures the real one */
	static const char sample[BOUNDARY_LEN + 1] = "0123456789abcdef";
	uint64_t len = 0;

	for (size_t i = 0; i <= p->nranges; i++)
		len += part_header(sample, type, p->r, i, p->nranges, p->size, NULL, 0) +
		       (i < p->nranges ? p->r[i].last - p->r[i].first + 1 : 0);
	return len;
}

static struct multipart *multipart_new(const struct response_plan *p, const char *type)
{
	struct multipart *mp = calloc(1, sizeof(*mp) + p->nranges * sizeof(p->r[0]));
	unsigned char rnd[BOUNDARY_LEN / 2];

	if (mp == NULL)
		return NULL;
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		free(mp);
		return NULL;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(mp->boundary + 2 * i, 3, "%02x", rnd[i]);
	snprintf(mp->ctype, sizeof(mp->ctype), "multipart/byteranges; boundary=%s", mp->boundary);
	mp->part_type = type;
	mp->total = p->size;
	mp->n = p->nranges;
	memcpy(mp->r, p->r, p->nranges * sizeof(p->r[0]));
	return mp;
}

bool response_has_next_part(const struct response *r)
{
	/* fd: body bytes are due (a HEAD keeps its multipart state for the head alone) */
	return r->mp != NULL && r->fd != -1 && r->mp->next <= r->mp->n;
}

bool response_next_part(struct response *r, size_t copy)
{
	struct multipart *mp = r->mp;
	size_t i = mp->next;
	size_t len = part_header(mp->boundary, mp->part_type, mp->r, i, mp->n, mp->total, NULL, 0);

	if (!response_reserve(r, r->out.len + len + 1 + (i < mp->n ? copy : 0)))
		return false;
	mp->next++;
	r->out.len += part_header(mp->boundary, mp->part_type, mp->r, i, mp->n, mp->total,
				  r->out.buf + r->out.len, r->out.cap - r->out.len);
	if (i < mp->n) {
		r->off = mp->r[i].first;
		r->left = mp->r[i].last - mp->r[i].first + 1;
	}
	return true;
}

/* ---- the response in flight ------------------------------------------- */

void response_init(struct response *r)
{
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

void response_reset(struct response *r)
{
	struct response_buf out = r->out;

	fcache_release(r->file);
	free(r->mp);
	if (r->body != NULL)
		evbuffer_free(r->body);
	response_init(r);
	r->out.buf = out.buf;
	r->out.cap = out.cap;
}

void response_fini(struct response *r)
{
	response_reset(r);
	free(r->out.buf);
	r->out.buf = NULL;
	r->out.cap = 0;
}

bool response_reserve(struct response *r, size_t cap)
{
	char *p;

	if (r->out.cap >= cap)
		return true;
	p = realloc(r->out.buf, cap);
	if (p == NULL)
		return false;
	r->out.buf = p;
	r->out.cap = cap;
	return true;
}

/* The head into the (empty) buffer with room for extra bytes behind it. */
static enum response_start_result put_head(struct response *r, const struct response_head *h,
					   size_t extra)
{
	size_t n;

	if (!response_reserve(r, 2048 + h->location_len + extra))
		return RESPONSE_NO_MEMORY;
	n = response_format_head(r->out.buf, r->out.cap, h);
	if (n == 0)
		return RESPONSE_HEAD_TOO_BIG;
	r->status = h->status;
	r->out.off = 0;
	r->out.len = n;
	r->out.sealed = false;
	r->head_left = n;
	r->body_total = h->content_length;
	return RESPONSE_STARTED;
}

enum response_start_result response_start(struct response *r, const struct response_head *h,
					  bool head_only, const char *body, size_t blen)
{
	enum response_start_result res = put_head(r, h, head_only ? 0 : blen);

	if (res == RESPONSE_STARTED && !head_only && blen > 0) {
		memcpy(r->out.buf + r->out.len, body, blen);
		r->out.len += blen;
	}
	return res;
}

enum response_start_result response_start_body(struct response *r, const struct response_head *h,
					       bool head_only, struct evbuffer *body)
{
	size_t len = evbuffer_get_length(body);
	enum response_start_result res =
		put_head(r, h, head_only ? 0 : len < RESPONSE_BODY_PIECE ? len : RESPONSE_BODY_PIECE);

	if (res != RESPONSE_STARTED || head_only || len == 0) {
		evbuffer_free(body);
		return res;
	}
	r->body = body;
	/* the first piece right behind the head: one write (one TLS record) for both */
	return response_next_body_piece(r) ? RESPONSE_STARTED : RESPONSE_NO_MEMORY;
}

bool response_has_body_left(const struct response *r)
{
	return r->body != NULL;
}

bool response_next_body_piece(struct response *r)
{
	size_t room = r->out.cap - r->out.len;
	int n;

	if (r->body == NULL || r->out.sealed || room == 0)
		return false;
	n = evbuffer_remove(r->body, r->out.buf + r->out.len,
			    room < RESPONSE_BODY_PIECE ? room : RESPONSE_BODY_PIECE);
	if (n <= 0)
		return false;
	r->out.len += (size_t)n;
	if (evbuffer_get_length(r->body) == 0) {	/* all of it in out: give it back now */
		evbuffer_free(r->body);
		r->body = NULL;
	}
	return true;
}

/* 416: the error page, and where the file ends. */
static enum response_start_result start_416(struct response *r, const struct response_plan *p,
					    bool keep_alive)
{
	const char *body = response_error_body(416);
	struct response_head h = {
		.status = 416,
		.content_type = "text/html",
		.content_length = strlen(body),
		.keep_alive = keep_alive,
		.content_range = true,
		.total = p->size,
	};

	return response_start(r, &h, p->head_only, body, strlen(body));
}

enum response_start_result response_start_file(struct response *r, const struct response_plan *p,
					       struct file_ref *fh,
					       const struct response_file_opts *o)
{
	const struct file_info *fi = &fh->fi;
	bool body = !p->head_only && p->content_length > 0;
	bool multipart = p->status == 206 && p->nranges > 1;
	struct response_head h = {
		.status = p->status,
		.content_type = o->type,
		.content_length = p->content_length,
		.keep_alive = o->keep_alive,
		.accept_ranges = true,
		.etag = fi->etag,
		.last_modified = fi->st.st_mtim.tv_sec,
		.content_encoding = p->gzip ? "gzip" : NULL,
		.vary_encoding = o->vary,
		.content_range = p->status == 206 && p->nranges == 1,
		.range_first = p->nranges > 0 ? p->r[0].first : 0,
		.range_last = p->nranges > 0 ? p->r[0].last : 0,
		.total = p->size,
	};
	enum response_start_result res;

	r->file = fh;	/* from here on the head may point into it: held until reset */
	if (p->status == 416)
		return start_416(r, p, o->keep_alive);
	if (p->status == 304) {	/* validators only: no representation metadata */
		h.content_type = NULL;
		h.content_encoding = NULL;
		h.accept_ranges = false;
	}
	if (multipart) {
		r->mp = multipart_new(p, o->type);
		if (r->mp == NULL)
			return RESPONSE_NO_MEMORY;
		h.content_type = r->mp->ctype;
		h.content_length = response_multipart_length(p, o->type);
		body = !p->head_only;
	}
	res = put_head(r, &h, body && !multipart ? o->copy : 0);
	if (res != RESPONSE_STARTED || !body)
		return res;
	r->fd = fi->fd;
	if (multipart)		/* the parts follow the head, the first one right away */
		return response_next_part(r, o->copy) ? RESPONSE_STARTED : RESPONSE_NO_MEMORY;
	r->off = p->status == 206 ? p->r[0].first : 0;
	r->left = p->content_length;
	return RESPONSE_STARTED;
}
