/* test_response.c — unit tests for the response decisions and the response in flight
 * (response.h). The decisions are tables, like lighttpd's src/t/test_*.c: request
 * headers and file in, status, length and ranges out. Then scenarios on a real file
 * (through fcache_open(), cache off): the response holds its file until
 * response_reset(), a multipart body built part by part has exactly the length its
 * head announced, and a generated body goes out piece by piece. assert() aborts on the first failure; the failing case is printed. */
#undef NDEBUG
#include "response.h"
#include "fcache.h"

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* assert() that names the case it failed in */
static const char *current = "";
#define CHECK(cond) do { if (!(cond)) fprintf(stderr, "case \"%s\":\n", current); \
			 assert(cond); } while (0)

/* The file every plan case is about (unless size says otherwise). */
#define MTIME 784111777		/* Sun, 06 Nov 1994 08:49:37 GMT */
#define DATE "Sun, 06 Nov 1994 08:49:37 GMT"
#define DATE_BEFORE "Sun, 06 Nov 1994 08:49:36 GMT"
#define DATE_AFTER "Sun, 06 Nov 1994 08:49:38 GMT"
#define ETAG "\"2ebc98a1.0-3e8\""
#define OTHER_ETAG "\"2ebc98a1.0-3e9\""

struct plan_case {
	const char *what;
	bool head;			/* HEAD instead of GET */
	const char *inm, *ims, *range, *if_range;
	long long size;			/* -1: 1000 */
	bool gzipped;
	/* expected */
	int status;
	bool head_only;
	uint64_t length;		/* content_length (0 for multipart) */
	size_t nranges;
	struct byte_range r[2];		/* the first two ranges */
};

static const struct plan_case plan_cases[] = {
	/* plain */
	{ "GET", .size = -1, .status = 200, .length = 1000 },
	{ "HEAD", .head = true, .size = -1, .status = 200, .head_only = true, .length = 1000 },
	{ "GET of an empty file", .size = 0, .status = 200, .length = 0 },
	{ "HEAD of an empty file", .head = true, .size = 0, .status = 200, .head_only = true },
	{ "gzip variant", .size = -1, .gzipped = true, .status = 200, .length = 1000 },
	/* If-None-Match */
	{ "INM exact", .inm = ETAG, .size = -1, .status = 304, .head_only = true },
	{ "INM star", .inm = "*", .size = -1, .status = 304, .head_only = true },
	{ "INM weak form matches (weak comparison)", .inm = "W/" ETAG, .size = -1,
	  .status = 304, .head_only = true },
	{ "INM list", .inm = OTHER_ETAG ", " ETAG, .size = -1, .status = 304, .head_only = true },
	{ "INM other", .inm = OTHER_ETAG, .size = -1, .status = 200, .length = 1000 },
	{ "INM malformed", .inm = "2ebc98a1", .size = -1, .status = 200, .length = 1000 },
	{ "HEAD INM", .head = true, .inm = ETAG, .size = -1, .status = 304, .head_only = true },
	{ "INM other beats a matching IMS", .inm = OTHER_ETAG, .ims = DATE, .size = -1,
	  .status = 200, .length = 1000 },
	{ "INM match with IMS before", .inm = ETAG, .ims = DATE_BEFORE, .size = -1,
	  .status = 304, .head_only = true },
	/* If-Modified-Since */
	{ "IMS equal", .ims = DATE, .size = -1, .status = 304, .head_only = true },
	{ "IMS later", .ims = DATE_AFTER, .size = -1, .status = 304, .head_only = true },
	{ "IMS earlier", .ims = DATE_BEFORE, .size = -1, .status = 200, .length = 1000 },
	{ "IMS rfc850", .ims = "Sunday, 06-Nov-94 08:49:37 GMT", .size = -1, .status = 304,
	  .head_only = true },
	{ "IMS garbage", .ims = "yesterday", .size = -1, .status = 200, .length = 1000 },
	/* 304 comes before Range */
	{ "INM and Range", .inm = ETAG, .range = "bytes=0-9", .size = -1, .status = 304,
	  .head_only = true },
	{ "IMS and Range", .ims = DATE, .range = "bytes=0-9", .size = -1, .status = 304,
	  .head_only = true },
	/* Range */
	{ "one range", .range = "bytes=0-9", .size = -1, .status = 206, .length = 10,
	  .nranges = 1, .r = { { 0, 9 } } },
	{ "suffix", .range = "bytes=-10", .size = -1, .status = 206, .length = 10, .nranges = 1,
	  .r = { { 990, 999 } } },
	{ "open end", .range = "bytes=900-", .size = -1, .status = 206, .length = 100,
	  .nranges = 1, .r = { { 900, 999 } } },
	{ "clamped", .range = "bytes=990-5000", .size = -1, .status = 206, .length = 10,
	  .nranges = 1, .r = { { 990, 999 } } },
	{ "HEAD with a range", .head = true, .range = "bytes=0-9", .size = -1, .status = 206,
	  .head_only = true, .length = 10, .nranges = 1, .r = { { 0, 9 } } },
	{ "gzip variant range", .range = "bytes=1-2", .size = -1, .gzipped = true,
	  .status = 206, .length = 2, .nranges = 1, .r = { { 1, 2 } } },
	{ "unsatisfiable", .range = "bytes=1000-", .size = -1, .status = 416 },
	{ "HEAD unsatisfiable", .head = true, .range = "bytes=5000-6000", .size = -1,
	  .status = 416, .head_only = true },
	{ "any range of an empty file", .range = "bytes=0-", .size = 0, .status = 416 },
	{ "invalid range ignored", .range = "bytes=9-1", .size = -1, .status = 200,
	  .length = 1000 },
	{ "other unit ignored", .range = "items=0-1", .size = -1, .status = 200, .length = 1000 },
	{ "two ranges: multipart", .range = "bytes=0-0,10-19", .size = -1, .status = 206,
	  .nranges = 2, .r = { { 0, 0 }, { 10, 19 } } },
	{ "HEAD multipart", .head = true, .range = "bytes=0-0,10-19", .size = -1,
	  .status = 206, .head_only = true, .nranges = 2, .r = { { 0, 0 }, { 10, 19 } } },
	{ "sixteen ranges", .range = "bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,"
	  "11-11,12-12,13-13,14-14,15-15", .size = -1, .status = 206, .nranges = 16,
	  .r = { { 0, 0 }, { 1, 1 } } },
	{ "seventeen ranges: whole file", .range = "bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,"
	  "8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15,16-16", .size = -1, .status = 200,
	  .length = 1000 },
	{ "overlap abuse: whole file", .range = "bytes=0-999,0-999", .size = -1, .status = 200,
	  .length = 1000 },
	/* If-Range */
	{ "If-Range strong match", .range = "bytes=0-9", .if_range = ETAG, .size = -1,
	  .status = 206, .length = 10, .nranges = 1, .r = { { 0, 9 } } },
	{ "If-Range stale tag", .range = "bytes=0-9", .if_range = OTHER_ETAG, .size = -1,
	  .status = 200, .length = 1000 },
	{ "If-Range weak tag never matches", .range = "bytes=0-9", .if_range = "W/" ETAG,
	  .size = -1, .status = 200, .length = 1000 },
	{ "If-Range date exact", .range = "bytes=0-9", .if_range = DATE, .size = -1,
	  .status = 206, .length = 10, .nranges = 1, .r = { { 0, 9 } } },
	{ "If-Range date later is not exact", .range = "bytes=0-9", .if_range = DATE_AFTER,
	  .size = -1, .status = 200, .length = 1000 },
	{ "If-Range garbage", .range = "bytes=0-9", .if_range = "soon", .size = -1,
	  .status = 200, .length = 1000 },
	{ "If-Range without Range", .if_range = ETAG, .size = -1, .status = 200, .length = 1000 },
	{ "If-Range stale: no 416 either", .range = "bytes=5000-", .if_range = OTHER_ETAG,
	  .size = -1, .status = 200, .length = 1000 },
	{ "If-Range match multipart", .range = "bytes=0-1,5-6", .if_range = ETAG, .size = -1,
	  .status = 206, .nranges = 2, .r = { { 0, 1 }, { 5, 6 } } },
};

static struct http_str str(const char *s)
{
	struct http_str h = { s, s ? strlen(s) : 0 };
	return h;
}

static void fake_file(struct file_info *fi, long long size)
{
	memset(fi, 0, sizeof(*fi));
	fi->fd = -1;
	fi->st.st_size = size;
	fi->st.st_mtim.tv_sec = MTIME;
	snprintf(fi->etag, sizeof(fi->etag), "\"%llx.%lx-%llx\"", (unsigned long long)MTIME, 0ul,
		 (unsigned long long)size);
}

static void run_plan_case(const struct plan_case *t)
{
	struct http_request req;
	struct file_info fi;
	struct response_plan p;

	memset(&req, 0, sizeof(req));
	req.method = t->head ? HTTP_METHOD_HEAD : HTTP_METHOD_GET;
	req.if_none_match = str(t->inm);
	req.if_modified_since = str(t->ims);
	req.range = str(t->range);
	req.if_range = str(t->if_range);
	fake_file(&fi, t->size < 0 ? 1000 : t->size);
	CHECK(t->size != -1 || strcmp(fi.etag, ETAG) == 0);
	current = t->what;
	p = response_plan(&req, &fi, t->gzipped);
	CHECK(p.status == t->status);
	CHECK(p.head_only == t->head_only);
	CHECK(p.gzip == t->gzipped);
	CHECK(p.size == (uint64_t)fi.st.st_size);
	CHECK(p.nranges == t->nranges);
	if (t->nranges < 2)
		CHECK(p.content_length == t->length);
	for (size_t i = 0; i < t->nranges && i < 2; i++)
		CHECK(p.r[i].first == t->r[i].first && p.r[i].last == t->r[i].last);
}

struct gzip_case {
	bool gzip_static;
	const char *accept_encoding;
	const char *rel;
	bool slash;
	bool want;
};

static const struct gzip_case gzip_cases[] = {
	{ true, "gzip", "a.txt", false, true },
	{ true, "gzip, deflate, br", "dir/a.txt", false, true },
	{ true, "x-gzip", "a.txt", false, true },
	{ true, "br, *", "a.txt", false, true },
	{ false, "gzip", "a.txt", false, false },	/* off */
	{ true, NULL, "a.txt", false, false },		/* no Accept-Encoding */
	{ true, "gzip;q=0", "a.txt", false, false },
	{ true, "identity", "a.txt", false, false },
	{ true, "gzip", "dir", true, false },		/* a directory: its index is served */
	{ true, "gzip", ".", false, false },		/* the root */
};

static void run_gzip_case(size_t i, const struct gzip_case *t)
{
	struct http_request req;
	char name[32];

	snprintf(name, sizeof(name), "gzip case %zu", i);
	current = name;
	memset(&req, 0, sizeof(req));
	req.accept_encoding = str(t->accept_encoding);
	CHECK(response_wants_gzip(&req, t->gzip_static, t->rel, t->slash) == t->want);
}

/* ---- scenarios on a real file ----------------------------------------------------- */

static char dir[64];
static int rootfd;
static struct fcache *fc;

static void setup_files(void)
{
	char path[128];
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/ktlsd-test-response-XXXXXX");
	assert(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/f.bin", dir);
	f = fopen(path, "w");
	assert(f != NULL);
	for (int i = 0; i < 1000; i++)
		fputc('a' + i % 26, f);
	fclose(f);
	rootfd = file_open_root(dir);
	assert(rootfd >= 0);
	fc = fcache_new();	/* not configured: caches nothing, every open is fresh */
	assert(fc != NULL);
}

static void teardown_files(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/f.bin", dir);
	unlink(path);
	rmdir(dir);
	close(rootfd);
	fcache_free(fc);
}

static struct file_ref *open_f(void)
{
	struct file_ref *fh = NULL;

	assert(fcache_open(fc, 1, rootfd, "f.bin", false, "index.html", &fh) == FILE_OK);
	assert(fh != NULL && fh->fi.st.st_size == 1000);
	return fh;
}

static struct response_plan plan_for(bool head, const char *inm, const char *range,
				     const struct file_info *fi)
{
	struct http_request req;

	memset(&req, 0, sizeof(req));
	req.method = head ? HTTP_METHOD_HEAD : HTTP_METHOD_GET;
	req.if_none_match = str(inm);
	req.range = str(range);
	return response_plan(&req, fi, false);
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

static const char *header(const char *head, const char *name, char *val, size_t cap)
{
	const char *p = strstr(head, name);

	if (p == NULL)
		return NULL;
	p += strlen(name);
	snprintf(val, cap, "%.*s", (int)strcspn(p, "\r"), p);
	return val;
}

/* Bodiless answers (HEAD, 304, an empty body) keep the file — the head names its ETag —
 * until response_reset(), which is what gives it back. */
static void test_file_held_until_reset(void)
{
	static const struct { bool head; const char *inm; } cases[] = {
		{ true, NULL }, { false, "*" }, { true, "*" },
	};
	const struct response_file_opts o = { "text/plain", true, false, 0 };

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct response r;
		struct file_ref *fh = open_f();
		int fd = fh->fi.fd;
		struct response_plan p = plan_for(cases[i].head, cases[i].inm, NULL, &fh->fi);
		char etag[64], want[80];

		current = cases[i].head ? "held: HEAD" : "held: 304";
		response_init(&r);
		assert(response_start_file(&r, &p, fh, &o) == RESPONSE_STARTED);
		assert(r.file == fh && fd_open(fd));
		assert(r.left == 0 && r.fd == -1 && !response_has_next_part(&r));
		r.out.buf[r.out.len - 1] = '\0';
		snprintf(want, sizeof(want), "%s", fh->fi.etag);
		assert(strcmp(header(r.out.buf, "\r\nETag: ", etag, sizeof(etag)), want) == 0);
		response_reset(&r);
		assert(r.file == NULL && r.status == 0 && !fd_open(fd));
		assert(r.out.buf != NULL);	/* kept for the next response */
		response_fini(&r);
		assert(r.out.buf == NULL && r.out.cap == 0);
	}
}

/* Send a started response the way do_send() does, without a socket: buffer bytes as
 * they are, file ranges read from the file. Returns the bytes after the head. */
static size_t drain(struct response *r, char *body, size_t cap)
{
	size_t n = 0;

	for (;;) {
		if (r->out.len > r->out.off) {
			size_t skip = r->head_left;
			assert(n + r->out.len - r->out.off - skip <= cap);
			memcpy(body + n, r->out.buf + r->out.off + skip, r->out.len - r->out.off - skip);
			n += r->out.len - r->out.off - skip;
			r->head_left = 0;
			r->out.off = r->out.len = 0;
		} else if (r->left > 0) {
			assert(n + r->left <= cap);
			assert(pread(r->fd, body + n, r->left, (off_t)r->off) == (ssize_t)r->left);
			n += r->left;
			r->off += r->left;
			r->left = 0;
		} else if (response_has_next_part(r)) {
			assert(response_next_part(r, 0));
		} else if (response_has_body_left(r)) {
			assert(response_next_body_piece(r));
		} else {
			return n;
		}
	}
}

/* Several ranges: the parts, built one by one, add up to the announced Content-Length,
 * each with its Content-Range and the file's bytes; a HEAD gets the same head alone. */
static void test_multipart_body_matches_its_head(void)
{
	static char body[8192];
	const struct response_file_opts o = { "text/plain", true, false, 0 };
	struct response r;
	struct file_ref *fh = open_f();
	struct response_plan p = plan_for(false, NULL, "bytes=0-4,10-19,-3", &fh->fi);
	char val[128], boundary[64], expect[256];
	size_t n, pos = 0;

	assert(p.status == 206 && p.nranges == 3);
	response_init(&r);
	assert(response_start_file(&r, &p, fh, &o) == RESPONSE_STARTED);
	assert(r.fd == fh->fi.fd);
	memcpy(body, r.out.buf, r.head_left);
	body[r.head_left] = '\0';
	assert(strstr(body, "HTTP/1.1 206 Partial Content\r\n") == body);
	assert(strtoull(header(body, "\r\nContent-Length: ", val, sizeof(val)), NULL, 10) ==
	       response_multipart_length(&p, "text/plain"));
	assert(sscanf(header(body, "\r\nContent-Type: ", val, sizeof(val)),
		      "multipart/byteranges; boundary=%63s", boundary) == 1);
	assert(strlen(boundary) == 16);
	n = drain(&r, body, sizeof(body));
	assert(n == response_multipart_length(&p, "text/plain"));
	for (size_t i = 0; i < p.nranges; i++) {
		int len = snprintf(expect, sizeof(expect), "\r\n--%s\r\nContent-Type: text/plain\r\n"
				   "Content-Range: bytes %llu-%llu/1000\r\n\r\n", boundary,
				   (unsigned long long)p.r[i].first, (unsigned long long)p.r[i].last);
		assert(memcmp(body + pos, expect, (size_t)len) == 0);
		pos += (size_t)len;
		for (uint64_t b = p.r[i].first; b <= p.r[i].last; b++)
			assert(body[pos++] == 'a' + (char)(b % 26));
	}
	snprintf(expect, sizeof(expect), "\r\n--%s--\r\n", boundary);
	assert(pos + strlen(expect) == n && memcmp(body + pos, expect, strlen(expect)) == 0);
	response_fini(&r);

	fh = open_f();
	p = plan_for(true, NULL, "bytes=0-4,10-19,-3", &fh->fi);
	response_init(&r);
	assert(response_start_file(&r, &p, fh, &o) == RESPONSE_STARTED);
	assert(!response_has_next_part(&r) && r.left == 0);
	assert(r.out.len == r.head_left);	/* the head alone */
	assert(drain(&r, body, sizeof(body)) == 0);
	response_fini(&r);
}

/* 416 names the file's size and carries its page; the file is still held until reset. */
static void test_416(void)
{
	const struct response_file_opts o = { "text/plain", false, false, 0 };
	struct response r;
	struct file_ref *fh = open_f();
	int fd = fh->fi.fd;
	struct response_plan p = plan_for(false, NULL, "bytes=2000-", &fh->fi);
	char val[64];

	response_init(&r);
	assert(response_start_file(&r, &p, fh, &o) == RESPONSE_STARTED);
	r.out.buf[r.head_left - 1] = '\0';
	assert(strcmp(header(r.out.buf, "\r\nContent-Range: ", val, sizeof(val)), "bytes */1000") == 0);
	assert(strcmp(header(r.out.buf, "\r\nConnection: ", val, sizeof(val)), "close") == 0);
	assert(strtoull(header(r.out.buf, "\r\nContent-Length: ", val, sizeof(val)), NULL, 10) ==
	       strlen(response_error_body(416)));
	assert(r.out.len == r.head_left + strlen(response_error_body(416)));
	assert(r.left == 0 && fd_open(fd));
	response_fini(&r);
	assert(!fd_open(fd));
}

/* A generated body (a listing): the head and its first piece share the buffer, the rest
 * follows piece by piece, the buffer never grows past head + RESPONSE_BODY_PIECE, and the
 * bytes come out as they went in; HEAD and an empty body give the body back at once. */
static void test_generated_body(void)
{
	static char got[300000];
	const size_t len = sizeof(got) - 1000;	/* several pieces, not a round number */
	struct response_head h = { .status = 200, .content_type = "application/json",
				   .keep_alive = true, .vary_accept = true };
	struct evbuffer *b = evbuffer_new();
	struct response r;
	char val[64];

	assert(b != NULL);
	for (size_t i = 0; i < len; i++)
		assert(evbuffer_add(b, &(char){ (char)('0' + i % 37) }, 1) == 0);
	h.content_length = len;
	response_init(&r);
	assert(response_start_body(&r, &h, false, b) == RESPONSE_STARTED);
	assert(response_has_body_left(&r) && r.left == 0 && r.fd == -1);
	assert(r.out.len == r.head_left + RESPONSE_BODY_PIECE);
	assert(r.out.cap <= 2048 + RESPONSE_BODY_PIECE);
	r.out.buf[r.head_left - 1] = '\0';
	assert(strcmp(header(r.out.buf, "\r\nVary: ", val, sizeof(val)), "Accept") == 0);
	r.out.buf[r.head_left - 1] = '\n';
	assert(drain(&r, got, sizeof(got)) == len);
	for (size_t i = 0; i < len; i++)
		assert(got[i] == (char)('0' + i % 37));
	assert(!response_has_body_left(&r) && r.out.cap <= 2048 + RESPONSE_BODY_PIECE);
	response_reset(&r);

	/* a HEAD, and an empty body: the head alone, the buffer given back at once (ASan:
	 * no leak) */
	for (int head = 0; head < 2; head++) {
		b = evbuffer_new();
		assert(b != NULL && evbuffer_add(b, "x", head ? 1 : 0) == 0);
		h.content_length = head ? 1 : 0;
		assert(response_start_body(&r, &h, head, b) == RESPONSE_STARTED);
		assert(!response_has_body_left(&r) && r.out.len == r.head_left);
		response_reset(&r);
	}
	/* reset while body bytes are still due: response_reset() gives them back */
	b = evbuffer_new();
	assert(b != NULL);
	for (int i = 0; i < 3 * RESPONSE_BODY_PIECE / 8; i++)
		assert(evbuffer_add(b, "01234567", 8) == 0);
	h.content_length = 3 * RESPONSE_BODY_PIECE;
	assert(response_start_body(&r, &h, false, b) == RESPONSE_STARTED);
	assert(response_has_body_left(&r));
	response_fini(&r);
	assert(r.body == NULL);

	/* the Vary field with gzip_static on as well */
	h.vary_encoding = true;
	h.content_length = 0;
	assert(response_format_head(got, sizeof(got), &h) > 0);
	assert(strcmp(header(got, "\r\nVary: ", val, sizeof(val)), "Accept-Encoding, Accept") == 0);
}

int main(void)
{
	for (size_t i = 0; i < ARRAY_LEN(plan_cases); i++)
		run_plan_case(&plan_cases[i]);
	for (size_t i = 0; i < ARRAY_LEN(gzip_cases); i++)
		run_gzip_case(i, &gzip_cases[i]);
	setup_files();
	test_file_held_until_reset();
	test_multipart_body_matches_its_head();
	test_generated_body();
	test_416();
	teardown_files();
	printf("test_response: %zu plan cases, %zu gzip cases and 4 scenario tests passed\n",
	       ARRAY_LEN(plan_cases), ARRAY_LEN(gzip_cases));
	return 0;
}
