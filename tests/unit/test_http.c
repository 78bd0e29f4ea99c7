/* test_http.c — unit tests for the request head parser and header helpers (http.h).
 * Each case is data: request in, result/status/fields out. assert() aborts on the first
 * failure; the failing case is printed first. Inputs are copied into a buffer of exactly
 * their length, so AddressSanitizer catches any read past the end. */
#undef NDEBUG
#include "http.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* an input that contains NUL bytes: its length comes from the literal */
#define BIN(s) .in = (s), .len = sizeof(s) - 1

static const struct http_limits lim_default = { 8192, 16384, 100 };

/* ---- helpers -------------------------------------------------------------------- */

/* Parse in[0..len) from an exactly-sized heap copy. */
static enum http_parse_result parse(const char *in, size_t len, const struct http_limits *lim,
				    struct http_request *req, int *status)
{
	char *copy = malloc(len ? len : 1);
	enum http_parse_result res;
	struct http_request r;

	assert(copy != NULL);
	memcpy(copy, in, len);
	res = http_parse_request(copy, len, lim, &r, status);
	/* pointers into the copy are rebased onto in[], which outlives the call */
#define REBASE(f) do { if (r.f.ptr >= copy && r.f.ptr <= copy + len) r.f.ptr = in + (r.f.ptr - copy); } while (0)
	REBASE(method_name); REBASE(target); REBASE(path); REBASE(query); REBASE(host);
	REBASE(if_none_match); REBASE(if_modified_since); REBASE(range); REBASE(if_range);
#undef REBASE
	free(copy);
	*req = r;
	return res;
}

/* s is the expected slice: NULL for absent. */
static bool str_is(struct http_str got, const char *s)
{
	if (s == NULL)
		return got.ptr == NULL;
	return got.ptr != NULL && got.len == strlen(s) && memcmp(got.ptr, s, got.len) == 0;
}

static void show(const char *in, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			fputc(c, stderr);
		else
			fprintf(stderr, "\\x%02x", c);
	}
	fputc('\n', stderr);
}

/* ---- result and status ---------------------------------------------------------- */

struct status_case {
	const char *in;
	size_t len;			/* 0: strlen(in) */
	enum http_parse_result res;
	int status;			/* for HTTP_PARSE_ERROR */
};

#define OK(s) { .in = (s), .res = HTTP_PARSE_OK }
#define INCOMPLETE(s) { .in = (s), .res = HTTP_PARSE_INCOMPLETE }
#define ERR(s, st) { .in = (s), .res = HTTP_PARSE_ERROR, .status = (st) }
#define BINERR(s, st) { BIN(s), .res = HTTP_PARSE_ERROR, .status = (st) }
#define BINOK(s) { BIN(s), .res = HTTP_PARSE_OK }

#define RL "GET / HTTP/1.1\r\n"
#define HOST "Host: a\r\n"
#define END "\r\n"

static const struct status_case status_cases[] = {
	/* line endings: CRLF, bare LF, mixed */
	OK(RL HOST END),
	OK("GET / HTTP/1.1\nHost: a\n\n"),
	OK("GET / HTTP/1.1\r\nHost: a\n\r\n"),
	OK("GET / HTTP/1.1\nHost: a\r\n\n"),
	/* one leading empty line is tolerated, two are not */
	OK("\r\n" RL HOST END),
	OK("\n" RL HOST END),
	ERR("\r\n\r\n" RL HOST END, 400),
	ERR("\n\n" RL HOST END, 400),
	ERR("\r\n\n" RL HOST END, 400),
	INCOMPLETE(""),
	INCOMPLETE("\r"),
	INCOMPLETE("\r\n"),
	INCOMPLETE("\n"),
	INCOMPLETE("\r\n\r"),
	/* bare CR anywhere */
	ERR("\r" RL HOST END, 400),
	ERR("GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
	ERR("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", 400),
	ERR("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	ERR(RL "Host: a\rb\r\n" END, 400),
	ERR(RL HOST "X: a\r\r\n" END, 400),
	ERR(RL HOST "X\r: a\r\n" END, 400),
	ERR(RL HOST "\r\r\n", 400),
	ERR(RL HOST "\r \r\n", 400),
	ERR(RL HOST "X: a\rb", 400),		/* seen before the head is complete */
	ERR("GET /\rx", 400),
	/* Host rules */
	ERR("GET / HTTP/1.1\r\n\r\n", 400),
	ERR(RL "X: a\r\n" END, 400),
	ERR(RL "Host:\r\n" END, 400),
	ERR(RL "Host:   \r\n" END, 400),
	ERR(RL HOST HOST END, 400),
	ERR(RL "Host: a\r\nhost: b\r\n" END, 400),
	ERR("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400),
	OK("GET / HTTP/1.0\r\n\r\n"),
	OK("GET / HTTP/1.0\r\nHost:\r\n\r\n"),
	OK("GET / HTTP/1.0\r\nHost: \t\r\n\r\n"),
	OK(RL "Host: example.com:8443\r\n" END),
	OK(RL "Host: [::1]:8443\r\n" END),
	OK(RL "Host: 192.0.2.1\r\n" END),
	OK(RL "HOST: a\r\n" END),
	ERR(RL "Host: a b\r\n" END, 400),
	ERR(RL "Host: user@a\r\n" END, 400),
	ERR(RL "Host: a/b\r\n" END, 400),
	ERR(RL "Host: a\\b\r\n" END, 400),
	ERR(RL "Host: \xc3\xa9.example\r\n" END, 400),
	ERR(RL "Host: a\tb\r\n" END, 400),
	/* absolute-form needs Host on 1.1 as well (RFC 9112 §3.2) */
	ERR("GET http://a/ HTTP/1.1\r\n\r\n", 400),
	OK("GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n"),
	OK("GET http://a/ HTTP/1.0\r\n\r\n"),
	/* methods */
	OK("HEAD / HTTP/1.1\r\n" HOST END),
	OK("POST / HTTP/1.1\r\n" HOST END),
	OK("PUT / HTTP/1.1\r\n" HOST END),
	OK("DELETE / HTTP/1.1\r\n" HOST END),
	OK("OPTIONS / HTTP/1.1\r\n" HOST END),
	OK("PATCH / HTTP/1.1\r\n" HOST END),
	OK("TRACE / HTTP/1.1\r\n" HOST END),
	OK("CONNECT / HTTP/1.1\r\n" HOST END),
	ERR("FOO / HTTP/1.1\r\n" HOST END, 501),
	ERR("get / HTTP/1.1\r\n" HOST END, 501),
	ERR("Get / HTTP/1.1\r\n" HOST END, 501),
	ERR("GETS / HTTP/1.1\r\n" HOST END, 501),
	ERR("GE / HTTP/1.1\r\n" HOST END, 501),
	ERR("PRI / HTTP/1.1\r\n" HOST END, 501),
	ERR("X-!#$%&'*+-.^_`|~ / HTTP/1.1\r\n" HOST END, 501),
	ERR("FOO / HTTP/1.1\r\n", 501),		/* known as soon as the line is complete */
	ERR("G@T / HTTP/1.1\r\n" HOST END, 400),
	ERR("G(T / HTTP/1.1\r\n" HOST END, 400),
	ERR("GE\"T / HTTP/1.1\r\n" HOST END, 400),
	ERR("G\xc3\x89T / HTTP/1.1\r\n" HOST END, 400),
	ERR(" / HTTP/1.1\r\n" HOST END, 400),
	ERR(" GET / HTTP/1.1\r\n" HOST END, 400),
	ERR("GET\r\n" HOST END, 400),
	ERR("GET\r\n\r\n", 400),
	/* request-line whitespace: exactly one SP between the parts */
	ERR("GET  / HTTP/1.1\r\n" HOST END, 400),
	ERR("GET /  HTTP/1.1\r\n" HOST END, 400),
	ERR("GET / HTTP/1.1 \r\n" HOST END, 400),
	ERR("GET\t/ HTTP/1.1\r\n" HOST END, 400),
	ERR("GET /\tHTTP/1.1\r\n" HOST END, 400),
	ERR("GET / HTTP/1.1\t\r\n" HOST END, 400),
	ERR("GET /a b HTTP/1.1\r\n" HOST END, 400),
	/* request-target */
	OK("GET /a/b/c.html HTTP/1.1\r\n" HOST END),
	OK("GET /%2e%2e/%00 HTTP/1.1\r\n" HOST END),	/* left to path_normalize */
	OK("GET /a?b=c&d=e;f HTTP/1.1\r\n" HOST END),
	OK("GET /a|b{c}^`\"<>\\ HTTP/1.1\r\n" HOST END),	/* left to path_normalize */
	OK("GET //a HTTP/1.1\r\n" HOST END),
	ERR("OPTIONS * HTTP/1.1\r\n" HOST END, 400),
	ERR("GET * HTTP/1.1\r\n" HOST END, 400),
	ERR("CONNECT a:443 HTTP/1.1\r\n" HOST END, 400),
	ERR("GET example.com/ HTTP/1.1\r\n" HOST END, 400),
	ERR("GET a HTTP/1.1\r\n" HOST END, 400),
	ERR("GET ?a HTTP/1.1\r\n" HOST END, 400),
	ERR("GET /a#b HTTP/1.1\r\n" HOST END, 400),
	ERR("GET /# HTTP/1.1\r\n" HOST END, 400),
	ERR("GET /a?b#c HTTP/1.1\r\n" HOST END, 400),
	ERR("GET /\xc3\xa9 HTTP/1.1\r\n" HOST END, 400),
	ERR("GET /\x80 HTTP/1.1\r\n" HOST END, 400),
	ERR("GET /\xff HTTP/1.1\r\n" HOST END, 400),
	ERR("GET /\x7f HTTP/1.1\r\n" HOST END, 400),
	ERR("GET /\x01 HTTP/1.1\r\n" HOST END, 400),
	ERR("GET /\x1b HTTP/1.1\r\n" HOST END, 400),
	BINERR("GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BINERR("GET /\0", 400),
	BINERR("\0", 400),
	BINERR("G\0ET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	/* absolute-form */
	OK("GET http://a/b HTTP/1.1\r\n" HOST END),
	OK("GET https://a:8443/b?c HTTP/1.1\r\n" HOST END),
	OK("GET HTTP://a/ HTTP/1.1\r\n" HOST END),
	OK("GET HtTpS://a/ HTTP/1.1\r\n" HOST END),
	OK("GET http://a HTTP/1.1\r\n" HOST END),
	OK("GET http://a?q HTTP/1.1\r\n" HOST END),
	OK("GET http://[::1]:80/ HTTP/1.1\r\n" HOST END),
	ERR("GET http:/a/ HTTP/1.1\r\n" HOST END, 400),
	ERR("GET http:a/ HTTP/1.1\r\n" HOST END, 400),
	ERR("GET http:// HTTP/1.1\r\n" HOST END, 400),
	ERR("GET http:/// HTTP/1.1\r\n" HOST END, 400),
	ERR("GET http:///a HTTP/1.1\r\n" HOST END, 400),
	ERR("GET http://?a HTTP/1.1\r\n" HOST END, 400),
	ERR("GET http://u@a/ HTTP/1.1\r\n" HOST END, 400),
	ERR("GET http://u:p@a/ HTTP/1.1\r\n" HOST END, 400),
	ERR("GET http://a\"b/ HTTP/1.1\r\n" HOST END, 400),
	ERR("GET ftp://a/ HTTP/1.1\r\n" HOST END, 400),
	ERR("GET httpx://a/ HTTP/1.1\r\n" HOST END, 400),
	ERR("GET http HTTP/1.1\r\n" HOST END, 400),
	ERR("GET https:/ HTTP/1.1\r\n" HOST END, 400),
	ERR("GET http://a/#f HTTP/1.1\r\n" HOST END, 400),
	/* HTTP-version */
	OK("GET / HTTP/1.0\r\n\r\n"),
	OK("GET / HTTP/1.2\r\n" HOST END),		/* a higher minor is processed as 1.1 */
	OK("GET / HTTP/1.9\r\n" HOST END),
	ERR("GET / HTTP/1.2\r\n\r\n", 400),		/* ... so it needs Host */
	ERR("GET / HTTP/1.11\r\n" HOST END, 400),
	ERR("GET / HTTP/1.10\r\n" HOST END, 400),
	ERR("GET / HTTP/1\r\n" HOST END, 400),
	ERR("GET / HTTP/1.\r\n" HOST END, 400),
	ERR("GET / HTTP/\r\n" HOST END, 400),
	ERR("GET / HTTP\r\n" HOST END, 400),
	ERR("GET / http/1.1\r\n" HOST END, 400),
	ERR("GET / Http/1.1\r\n" HOST END, 400),
	ERR("GET / HTTP/1,1\r\n" HOST END, 400),
	ERR("GET / HTTP/1.a\r\n" HOST END, 400),
	ERR("GET / HTTP/a.1\r\n" HOST END, 400),
	ERR("GET / HTTP/01.1\r\n" HOST END, 400),
	ERR("GET / HTTP/10.0\r\n" HOST END, 400),
	ERR("GET / HTTP/1.1x\r\n" HOST END, 400),
	ERR("GET / HTTPS/1.1\r\n" HOST END, 400),
	ERR("GET / HTTP/ 1.1\r\n" HOST END, 400),
	ERR("GET / \r\n" HOST END, 400),
	ERR("GET /\r\n" HOST END, 400),		/* HTTP/0.9: no version */
	ERR("GET /\r\n\r\n", 400),
	ERR("GET /\r\n", 400),
	ERR("GET / HTTP/2.0\r\n" HOST END, 505),
	ERR("GET / HTTP/3.0\r\n" HOST END, 505),
	ERR("GET / HTTP/9.9\r\n" HOST END, 505),
	ERR("GET / HTTP/0.9\r\n" HOST END, 505),
	ERR("GET / HTTP/2.0\r\n", 505),		/* known as soon as the line is complete */
	ERR("FOO / HTTP/2.0\r\n" HOST END, 505),	/* version before method */
	ERR("FOO / HTTP/1.11\r\n" HOST END, 400),	/* syntax before both */
	ERR("FOO /# HTTP/1.1\r\n" HOST END, 400),
	ERR("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),	/* the HTTP/2 preface */
	/* field syntax */
	OK(RL HOST "X-Foo: bar\r\n" END),
	OK(RL HOST "X-Foo:bar\r\n" END),
	OK(RL HOST "X-Foo:\r\n" END),
	OK(RL HOST "X-Foo: a\tb\r\n" END),		/* HTAB inside a value */
	OK(RL HOST "X-Foo:\ta\t\r\n" END),
	OK(RL HOST "X-Foo: caf\xc3\xa9\r\n" END),	/* obs-text */
	OK(RL HOST "X-Foo: \x80\xff\r\n" END),
	OK(RL HOST "X-Foo: a: b\r\n" END),
	OK(RL HOST "!#$%&'*+-.^_`|~0aZ: x\r\n" END),
	ERR(RL "Host : a\r\n" END, 400),
	ERR(RL "Host\t: a\r\n" END, 400),
	ERR(RL HOST "X-Foo : bar\r\n" END, 400),
	ERR(RL " Host: a\r\n" END, 400),		/* whitespace before the first field */
	ERR(RL "\tHost: a\r\n" END, 400),
	ERR(RL HOST "X: a\r\n b\r\n" END, 400),	/* obs-fold */
	ERR(RL HOST "X: a\r\n\tb\r\n" END, 400),
	ERR(RL HOST "X: a\n b\n" END, 400),
	ERR(RL HOST " \r\n" END, 400),
	ERR(RL HOST "X-Foo\r\n" END, 400),
	ERR(RL HOST "X-Foo bar\r\n" END, 400),
	ERR(RL HOST ": bar\r\n" END, 400),
	ERR(RL HOST ":\r\n" END, 400),
	ERR(RL HOST "X(y): z\r\n" END, 400),
	ERR(RL HOST "X/y: z\r\n" END, 400),
	ERR(RL HOST "X\xc3\xa9: z\r\n" END, 400),
	ERR(RL HOST "X: a\x01" "b\r\n" END, 400),
	ERR(RL HOST "X: \x1b[31m\r\n" END, 400),
	ERR(RL HOST "X: a\x7f\r\n" END, 400),
	ERR(RL HOST "X: a\x0b\r\n" END, 400),
	ERR(RL HOST "X: a\x0c\r\n" END, 400),
	BINERR("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400),
	BINERR("GET / HTTP/1.1\r\nHost: a\0\r\n\r\n", 400),
	BINERR("GET / HTTP/1.1\r\nHost: a\r\nX\0: a\r\n\r\n", 400),
	BINERR("GET / HTTP/1.1\r\nHost: a\r\n\0\r\n\r\n", 400),
	BINERR("GET / HTTP/1.1\r\nHost: a\r\nX: \0", 400),	/* before the head is complete */
	ERR(RL HOST "X: \x01", 400),
	/* Content-Length */
	OK(RL HOST "Content-Length: 5\r\n" END),
	OK(RL HOST "Content-Length: 0\r\n" END),
	OK(RL HOST "Content-Length: 5, 5\r\n" END),
	OK(RL HOST "Content-Length: 5,5\r\n" END),
	OK(RL HOST "Content-Length:5 , 5 ,5\r\n" END),
	OK(RL HOST "Content-Length: 5\r\nContent-Length: 5\r\n" END),
	OK(RL HOST "Content-Length: 5\r\ncontent-length: 005\r\n" END),
	OK(RL HOST "Content-Length: 9223372036854775807\r\n" END),
	ERR(RL HOST "Content-Length: 5, 6\r\n" END, 400),
	ERR(RL HOST "Content-Length: 5\r\nContent-Length: 6\r\n" END, 400),
	ERR(RL HOST "Content-Length: 0\r\nContent-Length: 5\r\n" END, 400),
	ERR(RL HOST "Content-Length: +5\r\n" END, 400),
	ERR(RL HOST "Content-Length: -5\r\n" END, 400),
	ERR(RL HOST "Content-Length: 0x5\r\n" END, 400),
	ERR(RL HOST "Content-Length: 5 5\r\n" END, 400),
	ERR(RL HOST "Content-Length: 5.0\r\n" END, 400),
	ERR(RL HOST "Content-Length: five\r\n" END, 400),
	ERR(RL HOST "Content-Length:\r\n" END, 400),
	ERR(RL HOST "Content-Length: \r\n" END, 400),
	ERR(RL HOST "Content-Length: 5,\r\n" END, 400),
	ERR(RL HOST "Content-Length: ,5\r\n" END, 400),
	ERR(RL HOST "Content-Length: 5,,5\r\n" END, 400),
	ERR(RL HOST "Content-Length: 9223372036854775808\r\n" END, 400),
	ERR(RL HOST "Content-Length: 18446744073709551615\r\n" END, 400),
	ERR(RL HOST "Content-Length: 18446744073709551616\r\n" END, 400),
	ERR(RL HOST "Content-Length: 1234567890123456789012345\r\n" END, 400),
	/* Transfer-Encoding */
	OK(RL HOST "Transfer-Encoding: chunked\r\n" END),
	OK(RL HOST "Transfer-Encoding: CHUNKED\r\n" END),
	OK(RL HOST "Transfer-Encoding: gzip, chunked\r\n" END),
	OK(RL HOST "Transfer-Encoding: gzip,deflate , chunked\r\n" END),
	OK(RL HOST "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n" END),
	OK(RL HOST "Transfer-Encoding: chunked,\r\n" END),	/* empty list element */
	OK(RL HOST "Transfer-Encoding: , chunked\r\n" END),
	OK("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
	ERR(RL HOST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n" END, 400),
	ERR(RL HOST "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n" END, 400),
	ERR(RL HOST "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n" END, 400),
	ERR(RL HOST "Transfer-Encoding: chunked, chunked\r\n" END, 400),
	ERR(RL HOST "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n" END, 400),
	ERR(RL HOST "Transfer-Encoding: chunked, gzip\r\n" END, 400),
	ERR(RL HOST "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n" END, 400),
	ERR(RL HOST "Transfer-Encoding: gzip\r\n" END, 400),	/* chunked not last */
	ERR(RL HOST "Transfer-Encoding: foo, chunked\r\n" END, 400),	/* unknown coding */
	ERR(RL HOST "Transfer-Encoding: identity\r\n" END, 400),
	ERR(RL HOST "Transfer-Encoding: chunked;x=1\r\n" END, 400),
	ERR(RL HOST "Transfer-Encoding: \"chunked\"\r\n" END, 400),
	ERR(RL HOST "Transfer-Encoding:\r\n" END, 400),
	ERR(RL HOST "Transfer-Encoding: ,\r\n" END, 400),
	/* Range may not repeat; the other conditionals keep the first */
	ERR(RL HOST "Range: bytes=0-1\r\nRange: bytes=0-1\r\n" END, 400),
	ERR(RL HOST "Range: bytes=0-1\r\nrange: bytes=2-3\r\n" END, 400),
	ERR(RL HOST "Range:\r\nRange:\r\n" END, 400),
	OK(RL HOST "If-None-Match: \"a\"\r\nIf-None-Match: \"b\"\r\n" END),
	OK(RL HOST "If-Range: \"a\"\r\nIf-Range: \"b\"\r\n" END),
	OK(RL HOST "If-Modified-Since: x\r\nIf-Modified-Since: y\r\n" END),
	/* Connection accepts anything, tokens or not */
	OK(RL HOST "Connection:\r\n" END),
	OK(RL HOST "Connection: ,,, \r\n" END),
	OK(RL HOST "Connection: \"close\"\r\n" END),
	/* a realistic browser request */
	OK("GET /static/app.js?v=3 HTTP/1.1\r\n"
	   "Host: www.example.com\r\n"
	   "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0\r\n"
	   "Accept: */*\r\n"
	   "Accept-Language: en-US,en;q=0.5\r\n"
	   "Accept-Encoding: gzip, deflate, br\r\n"
	   "Referer: https://www.example.com/\r\n"
	   "Connection: keep-alive\r\n"
	   "Cookie: a=b; c=\"d e\"\r\n"
	   "Sec-Fetch-Dest: script\r\n"
	   "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
	   "If-None-Match: W/\"5f-abc\", \"x\"\r\n"
	   "\r\n"),
};

static void run_status_case(size_t idx, const struct status_case *c)
{
	size_t len = c->len ? c->len : strlen(c->in);
	struct http_request req;
	enum http_parse_result res;
	int status = -1;

	res = parse(c->in, len, &lim_default, &req, &status);
	if (res != c->res || status != (c->res == HTTP_PARSE_ERROR ? c->status : 0)) {
		fprintf(stderr, "status case %zu: result %d status %d, expected %d %d: ", idx,
			(int)res, status, (int)c->res, c->status);
		show(c->in, len);
	}
	assert(res == c->res);
	assert(status == (res == HTTP_PARSE_ERROR ? c->status : 0));
	if (res == HTTP_PARSE_OK) {
		assert(req.head_len == len);
		assert(req.path.ptr != NULL && req.path.len >= 1 && req.path.ptr[0] == '/');
		assert(req.version_minor == 0 || req.version_minor == 1);
	}
}

/* ---- parsed fields -------------------------------------------------------------- */

struct field_case {
	const char *in;
	enum http_method method;
	const char *method_name;	/* checked if not NULL */
	const char *target;		/* checked if not NULL */
	const char *path;
	const char *query;		/* NULL: absent */
	const char *host;		/* NULL: absent */
	int minor;
	bool keep_alive;
	bool has_body;
	uint64_t content_length;
	const char *inm, *ims, *range, *if_range;	/* NULL: absent */
	size_t head_len;		/* 0: strlen(in) */
};

static const struct field_case field_cases[] = {
	{ .in = "GET /index.html?x=1&y HTTP/1.1\r\nHost: example.com\r\n\r\n",
	  .method = HTTP_METHOD_GET, .method_name = "GET", .target = "/index.html?x=1&y",
	  .path = "/index.html", .query = "x=1&y", .host = "example.com", .minor = 1,
	  .keep_alive = true },
	{ .in = "HEAD / HTTP/1.0\r\n\r\n", .method = HTTP_METHOD_HEAD, .method_name = "HEAD",
	  .target = "/", .path = "/", .minor = 0, .keep_alive = false },
	{ .in = "DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n", .method = HTTP_METHOD_OTHER,
	  .method_name = "DELETE", .path = "/x", .host = "a", .minor = 1, .keep_alive = true },
	{ .in = "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
	  .method = HTTP_METHOD_OTHER, .method_name = "POST", .path = "/form", .host = "a",
	  .minor = 1, .keep_alive = true, .has_body = true, .content_length = 5,
	  .head_len = 51 },
	{ .in = "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", .path = "/",
	  .host = "a", .minor = 1, .keep_alive = true, .has_body = false },
	{ .in = "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\n\r\n", .path = "/",
	  .host = "a", .minor = 1, .keep_alive = true, .has_body = true, .content_length = 7 },
	{ .in = "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n",
	  .path = "/", .host = "a", .minor = 1, .keep_alive = true, .has_body = true,
	  .content_length = UINT64_C(9223372036854775807) },
	{ .in = "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", .path = "/",
	  .host = "a", .minor = 1, .keep_alive = true, .has_body = true },
	/* Connection and version defaults */
	{ .in = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", .path = "/", .minor = 0,
	  .keep_alive = true },
	{ .in = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", .path = "/", .minor = 0,
	  .keep_alive = true },
	{ .in = "GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n", .path = "/",
	  .minor = 0, .keep_alive = false },
	{ .in = "GET / HTTP/1.0\r\nConnection: foo\r\n\r\n", .path = "/", .minor = 0,
	  .keep_alive = false },
	{ .in = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", .path = "/",
	  .host = "a", .minor = 1, .keep_alive = false },
	{ .in = "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n", .path = "/",
	  .host = "a", .minor = 1, .keep_alive = false },
	{ .in = "GET / HTTP/1.1\r\nHost: a\r\nConnection: ,\t close ,\r\n\r\n", .path = "/",
	  .host = "a", .minor = 1, .keep_alive = false },
	{ .in = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
	  .path = "/", .host = "a", .minor = 1, .keep_alive = false },
	{ .in = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, keep-alive\r\n\r\n",
	  .path = "/", .host = "a", .minor = 1, .keep_alive = false },
	{ .in = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", .path = "/",
	  .host = "a", .minor = 1, .keep_alive = true },
	{ .in = "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed, xclose\r\n\r\n", .path = "/",
	  .host = "a", .minor = 1, .keep_alive = true },
	{ .in = "GET / HTTP/1.2\r\nHost: a\r\n\r\n", .path = "/", .host = "a", .minor = 1,
	  .keep_alive = true },
	/* targets */
	{ .in = "GET /? HTTP/1.1\r\nHost: a\r\n\r\n", .path = "/", .query = "", .host = "a",
	  .minor = 1, .keep_alive = true },
	{ .in = "GET /a?b?c HTTP/1.1\r\nHost: a\r\n\r\n", .path = "/a", .query = "b?c",
	  .host = "a", .minor = 1, .keep_alive = true },
	{ .in = "GET /a%20b/ HTTP/1.1\r\nHost: a\r\n\r\n", .path = "/a%20b/", .host = "a",
	  .minor = 1, .keep_alive = true },
	{ .in = "GET http://Example.com:8443/a/b?q HTTP/1.1\r\nHost: other\r\n\r\n",
	  .target = "http://Example.com:8443/a/b?q", .path = "/a/b", .query = "q",
	  .host = "Example.com:8443", .minor = 1, .keep_alive = true },
	{ .in = "GET https://h HTTP/1.1\r\nHost: h\r\n\r\n", .target = "https://h", .path = "/",
	  .host = "h", .minor = 1, .keep_alive = true },
	{ .in = "GET http://h?x HTTP/1.0\r\n\r\n", .path = "/", .query = "x", .host = "h",
	  .minor = 0 },
	{ .in = "GET http://h/? HTTP/1.0\r\n\r\n", .path = "/", .query = "", .host = "h",
	  .minor = 0 },
	{ .in = "GET http://[::1]:443/%41 HTTP/1.0\r\n\r\n", .path = "/%41", .host = "[::1]:443",
	  .minor = 0 },
	/* Host */
	{ .in = "GET / HTTP/1.0\r\nHost:\r\n\r\n", .path = "/", .host = "", .minor = 0 },
	{ .in = "GET / HTTP/1.1\r\nhOsT: \t Example.COM:443 \t\r\n\r\n", .path = "/",
	  .host = "Example.COM:443", .minor = 1, .keep_alive = true },
	/* the conditional and range fields, OWS trimmed, names case-insensitive */
	{ .in = "GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: \t \"abc\" \t\r\n"
		"IF-MODIFIED-SINCE: Sun, 06 Nov 1994 08:49:37 GMT\r\nrange:bytes=0-1, 5-\r\n"
		"If-Range:   \"xyz\"\r\n\r\n",
	  .path = "/", .host = "a", .minor = 1, .keep_alive = true, .inm = "\"abc\"",
	  .ims = "Sun, 06 Nov 1994 08:49:37 GMT", .range = "bytes=0-1, 5-",
	  .if_range = "\"xyz\"" },
	{ .in = "GET / HTTP/1.1\nHost: a\nIf-None-Match: \"a\"\nIf-None-Match: \"b\"\n"
		"If-Range: 1\nIf-Range: 2\nIf-Modified-Since: x\nIf-Modified-Since: y\n\n",
	  .path = "/", .host = "a", .minor = 1, .keep_alive = true, .inm = "\"a\"", .ims = "x",
	  .if_range = "1" },
	{ .in = "GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match:\r\nRange: \r\n\r\n", .path = "/",
	  .host = "a", .minor = 1, .keep_alive = true, .inm = "", .range = "" },
	{ .in = "GET / HTTP/1.1\r\nHost: a\r\nRange: a\tb \xc3\xa9\r\n\r\n", .path = "/",
	  .host = "a", .minor = 1, .keep_alive = true, .range = "a\tb \xc3\xa9" },
	{ .in = "GET / HTTP/1.1\r\nHost: a\r\nX-Range: bytes=0-1\r\nRanges: x\r\n\r\n",
	  .path = "/", .host = "a", .minor = 1, .keep_alive = true },
	/* head_len: leading empty line counted, pipelined request not */
	{ .in = "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", .path = "/", .host = "a", .minor = 1,
	  .keep_alive = true },
	{ .in = "\nGET / HTTP/1.1\nHost: a\n\n", .path = "/", .host = "a", .minor = 1,
	  .keep_alive = true },
	{ .in = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
	  .path = "/1", .host = "a", .minor = 1, .keep_alive = true, .head_len = 28 },
	{ .in = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGARBAGE\0\r\x01", .path = "/1", .host = "a",
	  .minor = 1, .keep_alive = true, .head_len = 28 },
	{ .in = "GET /1 HTTP/1.1\nHost: a\n\nGET /2 HTTP/1.1\nHost: a\n\n", .path = "/1",
	  .host = "a", .minor = 1, .keep_alive = true, .head_len = 25 },
};

static bool fields_match(const struct field_case *c, const struct http_request *r, size_t len)
{
	return r->method == c->method &&
	       (c->method_name == NULL || str_is(r->method_name, c->method_name)) &&
	       (c->target == NULL || str_is(r->target, c->target)) &&
	       str_is(r->path, c->path) && str_is(r->query, c->query) &&
	       str_is(r->host, c->host) && r->version_minor == c->minor &&
	       r->keep_alive == c->keep_alive && r->has_body == c->has_body &&
	       r->content_length == c->content_length && str_is(r->if_none_match, c->inm) &&
	       str_is(r->if_modified_since, c->ims) && str_is(r->range, c->range) &&
	       str_is(r->if_range, c->if_range) && r->head_len == (c->head_len ? c->head_len : len);
}

static void run_field_case(size_t idx, const struct field_case *c)
{
	size_t len = strlen(c->in);
	struct http_request req;
	int status = -1;
	enum http_parse_result res = parse(c->in, len, &lim_default, &req, &status);

	if (res != HTTP_PARSE_OK || !fields_match(c, &req, len)) {
		fprintf(stderr, "field case %zu: result %d status %d head_len %zu: ", idx, (int)res,
			status, req.head_len);
		show(c->in, len);
	}
	assert(res == HTTP_PARSE_OK && status == 0);
	assert(fields_match(c, &req, len));
}

/* ---- incomplete heads ------------------------------------------------------------ */

/* Every proper prefix of a valid head is INCOMPLETE, whatever follows the head. */
static void test_prefixes(void)
{
	static const char *const reqs[] = {
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"\r\nGET / HTTP/1.0\r\n\r\n",
		"\nGET / HTTP/1.0\n\n",
		("GET /x?y HTTP/1.1\r\nHost: a\r\nX: \t\r\nRange: bytes=0-1\r\n"
		 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nbody"),
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nIf-None-Match: \"x\"\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nGET /y HTTP/1.1\r\n",
		"DELETE http://h/ HTTP/1.0\r\nX-Foo: caf\xc3\xa9\r\nConnection: close\r\n\r\n",
	};
	size_t i, k;

	for (i = 0; i < ARRAY_LEN(reqs); i++) {
		size_t len = strlen(reqs[i]);
		struct http_request req;
		int status;

		assert(parse(reqs[i], len, &lim_default, &req, &status) == HTTP_PARSE_OK);
		for (k = 0; k < req.head_len; k++) {
			struct http_request part;
			enum http_parse_result res = parse(reqs[i], k, &lim_default, &part, &status);

			if (res != HTTP_PARSE_INCOMPLETE)
				fprintf(stderr, "prefix %zu of request %zu: %d %d\n", k, i, (int)res,
					status);
			assert(res == HTTP_PARSE_INCOMPLETE && status == 0);
		}
		/* and every longer one is OK with the same head_len */
		for (k = req.head_len; k <= len; k++) {
			struct http_request full;

			assert(parse(reqs[i], k, &lim_default, &full, &status) == HTTP_PARSE_OK);
			assert(full.head_len == req.head_len);
		}
	}
}

/* Three pipelined requests are taken apart one head at a time. */
static void test_pipeline(void)
{
	static const char buf[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
				  "HEAD /2 HTTP/1.1\nHost: a\n\n"
				  "GET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	static const char *const paths[] = { "/1", "/2", "/3" };
	size_t pos = 0, i;

	for (i = 0; i < 3; i++) {
		struct http_request req;
		int status;

		assert(http_parse_request(buf + pos, sizeof(buf) - 1 - pos, &lim_default, &req,
					  &status) == HTTP_PARSE_OK);
		assert(str_is(req.path, paths[i]));
		assert(req.keep_alive == (i < 2));
		assert(req.method == (i == 1 ? HTTP_METHOD_HEAD : HTTP_METHOD_GET));
		pos += req.head_len;
	}
	assert(pos == sizeof(buf) - 1);
}

/* ---- limits ---------------------------------------------------------------------- */

struct limit_case {
	struct http_limits lim;
	const char *in;
	enum http_parse_result res;
	int status;
};

static const struct limit_case limit_cases[] = {
	/* request line: "GET /ab HTTP/1.1" is 16 bytes */
	{ { 16, 1024, 10 }, "GET /ab HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_PARSE_OK, 0 },
	{ { 16, 1024, 10 }, "GET /ab HTTP/1.1\nHost: a\n\n", HTTP_PARSE_OK, 0 },
	{ { 16, 1024, 10 }, "\r\nGET /ab HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_PARSE_OK, 0 },
	{ { 16, 1024, 10 }, "GET /ab HTTP/1.1\r", HTTP_PARSE_INCOMPLETE, 0 },
	{ { 16, 1024, 10 }, "GET /ab HTTP/1.1", HTTP_PARSE_INCOMPLETE, 0 },
	{ { 16, 1024, 10 }, "GET /abcdefghijk", HTTP_PARSE_INCOMPLETE, 0 },
	{ { 15, 1024, 10 }, "GET /ab HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_PARSE_ERROR, 414 },
	{ { 15, 1024, 10 }, "GET /ab HTTP/1.1\r\n", HTTP_PARSE_ERROR, 414 },
	{ { 15, 1024, 10 }, "GET /ab HTTP/1.1", HTTP_PARSE_ERROR, 414 },
	{ { 15, 1024, 10 }, "GET /ab HTTP/1.1\r", HTTP_PARSE_ERROR, 414 },
	{ { 15, 1024, 10 }, "\r\nGET /ab HTTP/1.1", HTTP_PARSE_ERROR, 414 },
	{ { 16, 1024, 10 }, "GET /abcdefghijkl", HTTP_PARSE_ERROR, 414 },
	{ { 16, 1024, 10 }, "GET /abc HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_PARSE_ERROR, 414 },
	/* even before the method is known; even in garbage */
	{ { 4, 1024, 10 }, "AAAAA", HTTP_PARSE_ERROR, 414 },
	{ { 4, 1024, 10 }, "AAAA", HTTP_PARSE_INCOMPLETE, 0 },
	/* header lines are not request lines */
	{ { 16, 1024, 10 }, "GET /ab HTTP/1.1\r\nHost: aaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
	  HTTP_PARSE_OK, 0 },
	/* whole head: that one is 29 bytes with CRLF, 26 with LF */
	{ { 8192, 29, 10 }, "GET /ab HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_PARSE_OK, 0 },
	{ { 8192, 29, 10 }, "GET /ab HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n",
	  HTTP_PARSE_OK, 0 },
	{ { 8192, 28, 10 }, "GET /ab HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_PARSE_ERROR, 431 },
	{ { 8192, 28, 10 }, "GET /ab HTTP/1.1\r\nHost: a\r\n\r", HTTP_PARSE_ERROR, 431 },
	{ { 8192, 28, 10 }, "GET /ab HTTP/1.1\r\nHost: a\r\n", HTTP_PARSE_INCOMPLETE, 0 },
	{ { 8192, 26, 10 }, "GET /ab HTTP/1.1\nHost: a\n\n", HTTP_PARSE_OK, 0 },
	{ { 8192, 25, 10 }, "GET /ab HTTP/1.1\nHost: a\n\n", HTTP_PARSE_ERROR, 431 },
	{ { 8192, 31, 10 }, "\r\nGET /ab HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_PARSE_OK, 0 },
	{ { 8192, 30, 10 }, "\r\nGET /ab HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_PARSE_ERROR, 431 },
	{ { 8192, 43, 10 }, "GET / HTTP/1.1\r\nHost: a\r\nX: aaaaaaaaaaaaaaa", HTTP_PARSE_ERROR,
	  431 },
	{ { 8192, 44, 10 }, "GET / HTTP/1.1\r\nHost: a\r\nX: aaaaaaaaaaaaaaa", HTTP_PARSE_INCOMPLETE,
	  0 },
	{ { 8192, 10, 10 }, "GET / HTTP/1.1", HTTP_PARSE_ERROR, 431 },
	{ { 8192, 10, 10 }, "GET / HTTP/1.0\r\n\r\n", HTTP_PARSE_ERROR, 431 },
	{ { 8192, 16, 10 }, "GET / HTTP/1.0\r\n\r\n", HTTP_PARSE_ERROR, 431 },
	{ { 8192, 18, 10 }, "GET / HTTP/1.0\r\n\r\n", HTTP_PARSE_OK, 0 },
	/* field count */
	{ { 8192, 1024, 3 }, "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", HTTP_PARSE_OK, 0 },
	{ { 8192, 1024, 3 }, "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
	  HTTP_PARSE_ERROR, 431 },
	{ { 8192, 1024, 3 }, "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n",
	  HTTP_PARSE_ERROR, 431 },
	{ { 8192, 1024, 3 }, "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3",
	  HTTP_PARSE_INCOMPLETE, 0 },
	{ { 8192, 1024, 0 }, "GET / HTTP/1.0\r\n\r\n", HTTP_PARSE_OK, 0 },
	{ { 8192, 1024, 0 }, "GET / HTTP/1.0\r\nA: 1\r\n", HTTP_PARSE_ERROR, 431 },
};

static void test_limit_cases(void)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(limit_cases); i++) {
		const struct limit_case *c = &limit_cases[i];
		size_t len = strlen(c->in);
		struct http_request req;
		int status = -1;
		enum http_parse_result res = parse(c->in, len, &c->lim, &req, &status);

		if (res != c->res || status != c->status) {
			fprintf(stderr, "limit case %zu: %d %d: ", i, (int)res, status);
			show(c->in, len);
		}
		assert(res == c->res && status == c->status);
	}
}

/* Large inputs: a megabyte without a line end, and many fields, with default limits. */
static void test_large(void)
{
	size_t big = 1 << 20, len, i;
	char *buf = malloc(big);
	struct http_request req;
	int status;

	assert(buf != NULL);
	memset(buf, 'A', big);
	assert(http_parse_request(buf, big, &lim_default, &req, &status) == HTTP_PARSE_ERROR);
	assert(status == 414);
	/* request line fine, then one endless field */
	memcpy(buf, "GET / HTTP/1.1\r\nX: ", 19);
	assert(http_parse_request(buf, big, &lim_default, &req, &status) == HTTP_PARSE_ERROR);
	assert(status == 431);
	/* 100 fields are fine, 101 are not */
	len = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (i = 1; i < 100; i++)
		len += (size_t)sprintf(buf + len, "X-%zu: %zu\r\n", i, i);
	memcpy(buf + len, "\r\n", 2);
	assert(http_parse_request(buf, len + 2, &lim_default, &req, &status) == HTTP_PARSE_OK);
	len += (size_t)sprintf(buf + len, "X-100: 100\r\n\r\n");
	assert(http_parse_request(buf, len, &lim_default, &req, &status) == HTTP_PARSE_ERROR);
	assert(status == 431);
	/* a megabyte of empty lines: the second one is an error already */
	memset(buf, '\n', big);
	assert(http_parse_request(buf, big, &lim_default, &req, &status) == HTTP_PARSE_ERROR);
	assert(status == 400);
	free(buf);
}

/* ---- dates ----------------------------------------------------------------------- */

struct date_case {
	const char *in;
	size_t len;		/* 0: strlen(in) */
	int rc;
	long long t;
};

static const struct date_case date_cases[] = {
	{ "Sun, 06 Nov 1994 08:49:37 GMT", 0, 0, 784111777 },
	{ "Sunday, 06-Nov-94 08:49:37 GMT", 0, 0, 784111777 },
	{ "Sun Nov  6 08:49:37 1994", 0, 0, 784111777 },
	{ "Sun Nov 06 08:49:37 1994", 0, 0, 784111777 },
	{ "Thu, 01 Jan 1970 00:00:00 GMT", 0, 0, 0 },
	{ "Wed, 31 Dec 1969 23:59:59 GMT", 0, 0, -1 },
	{ "Thursday, 01-Jan-70 00:00:00 GMT", 0, 0, 0 },
	{ "Saturday, 01-Jan-00 00:00:00 GMT", 0, 0, 946684800 },
	{ "Tuesday, 31-Dec-69 23:59:59 GMT", 0, 0, 3155759999LL },	/* pivot: 2069 */
	{ "Thursday, 01-Jan-70 00:00:00 GMT", 0, 0, 0 },		/* pivot: 1970 */
	{ "Monday, 06-Nov-94 08:49:37 GMT", 0, 0, 784111777 },
	{ "Tuesday, 06-Nov-94 08:49:37 GMT", 0, 0, 784111777 },
	{ "Wednesday, 06-Nov-94 08:49:37 GMT", 0, 0, 784111777 },
	{ "Thursday, 06-Nov-94 08:49:37 GMT", 0, 0, 784111777 },
	{ "Friday, 06-Nov-94 08:49:37 GMT", 0, 0, 784111777 },
	{ "Saturday, 06-Nov-94 08:49:37 GMT", 0, 0, 784111777 },
	{ "Mon, 06 Nov 1994 08:49:37 GMT", 0, 0, 784111777 },	/* day name not checked */
	{ "Thu, 29 Feb 2024 12:00:00 GMT", 0, 0, 1709208000 },
	{ "Tue, 29 Feb 2000 00:00:00 GMT", 0, 0, 951782400 },
	{ "Sat, 01 Jan 2000 00:00:60 GMT", 0, 0, 946684860 },		/* leap second */
	{ "Fri, 31 Dec 9999 23:59:59 GMT", 0, 0, 253402300799LL },
	{ "Tue, 19 Jan 2038 03:14:08 GMT", 0, 0, 2147483648LL },
	{ "Wed Feb 29 00:00:00 2012", 0, 0, 1330473600 },
	{ "Fri Dec 31 23:59:59 1999", 0, 0, 946684799 },
	/* every month */
	{ "Mon, 15 Jan 2024 00:00:00 GMT", 0, 0, 1705276800 },
	{ "Thu, 15 Feb 2024 00:00:00 GMT", 0, 0, 1707955200 },
	{ "Fri, 15 Mar 2024 00:00:00 GMT", 0, 0, 1710460800 },
	{ "Mon, 15 Apr 2024 00:00:00 GMT", 0, 0, 1713139200 },
	{ "Wed, 15 May 2024 00:00:00 GMT", 0, 0, 1715731200 },
	{ "Sat, 15 Jun 2024 00:00:00 GMT", 0, 0, 1718409600 },
	{ "Mon, 15 Jul 2024 00:00:00 GMT", 0, 0, 1721001600 },
	{ "Thu, 15 Aug 2024 00:00:00 GMT", 0, 0, 1723680000 },
	{ "Sun, 15 Sep 2024 00:00:00 GMT", 0, 0, 1726358400 },
	{ "Tue, 15 Oct 2024 00:00:00 GMT", 0, 0, 1728950400 },
	{ "Fri, 15 Nov 2024 00:00:00 GMT", 0, 0, 1731628800 },
	{ "Sun, 15 Dec 2024 00:00:00 GMT", 0, 0, 1734220800 },
	/* invalid */
	{ "", 0, -1, 0 },
	{ "sun, 06 Nov 1994 08:49:37 GMT", 0, -1, 0 },	/* case-sensitive (RFC 9110 §5.6.7) */
	{ "Sun, 06 nov 1994 08:49:37 GMT", 0, -1, 0 },
	{ "Sun, 06 Nov 1994 08:49:37 gmt", 0, -1, 0 },
	{ "Sun, 06 Nov 1994 08:49:37 UTC", 0, -1, 0 },
	{ "Sun, 06 Nov 1994 08:49:37 +0000", 0, -1, 0 },
	{ "Sun, 6 Nov 1994 08:49:37 GMT", 0, -1, 0 },
	{ "Sun, 06 Nov 94 08:49:37 GMT", 0, -1, 0 },
	{ "Sun,  06 Nov 1994 08:49:37 GMT", 0, -1, 0 },
	{ "Sun, 06 Nov 1994 08:49:37 GMT ", 0, -1, 0 },
	{ " Sun, 06 Nov 1994 08:49:37 GMT", 0, -1, 0 },
	{ "Sun 06 Nov 1994 08:49:37 GMT", 0, -1, 0 },
	{ "Sun, 06-Nov-1994 08:49:37 GMT", 0, -1, 0 },
	{ "Sun, 06 Nov 1994 8:49:37 GMT", 0, -1, 0 },
	{ "Sun, 06 Nov 1994 08.49.37 GMT", 0, -1, 0 },
	{ "Sun, 06 Xyz 1994 08:49:37 GMT", 0, -1, 0 },
	{ "Abc, 06 Nov 1994 08:49:37 GMT", 0, -1, 0 },
	{ "Sun, 00 Nov 1994 08:49:37 GMT", 0, -1, 0 },
	{ "Sun, 31 Nov 1994 08:49:37 GMT", 0, -1, 0 },
	{ "Sun, 32 Dec 1994 08:49:37 GMT", 0, -1, 0 },
	{ "Sun, 29 Feb 2023 08:49:37 GMT", 0, -1, 0 },
	{ "Sun, 29 Feb 1900 08:49:37 GMT", 0, -1, 0 },
	{ "Sun, 06 Nov 1994 24:00:00 GMT", 0, -1, 0 },
	{ "Sun, 06 Nov 1994 23:60:00 GMT", 0, -1, 0 },
	{ "Sun, 06 Nov 1994 23:59:61 GMT", 0, -1, 0 },
	{ "Sun, +6 Nov 1994 08:49:37 GMT", 0, -1, 0 },
	{ "Sun, 06 Nov -994 08:49:37 GMT", 0, -1, 0 },
	{ "Sun, 06 Nov 1994 08:49:37 GMT\0", 30, -1, 0 },
	{ "Sun, 06 Nov 1994 08:49:37 GM\0", 29, -1, 0 },
	{ "Sun, 06 Nov 1994", 0, -1, 0 },
	{ "Sunday, 06-Nov-1994 08:49:37 GMT", 0, -1, 0 },
	{ "Sunday, 06 Nov 94 08:49:37 GMT", 0, -1, 0 },
	{ "Sunday,06-Nov-94 08:49:37 GMT", 0, -1, 0 },
	{ "Sundays, 06-Nov-94 08:49:37 GMT", 0, -1, 0 },
	{ "Funday, 06-Nov-94 08:49:37 GMT", 0, -1, 0 },
	{ "Sun, 06-Nov-94 08:49:37 GMT", 0, -1, 0 },
	{ "sunday, 06-Nov-94 08:49:37 GMT", 0, -1, 0 },
	{ "Sunday, 06-Nov-94 08:49:37 UTC", 0, -1, 0 },
	{ "Sunday, 31-Apr-94 08:49:37 GMT", 0, -1, 0 },
	{ "Sun Nov 6 08:49:37 1994", 0, -1, 0 },
	{ "Sun Nov  6 08:49:37 94", 0, -1, 0 },
	{ "Sun Nov 6  08:49:37 1994", 0, -1, 0 },
	{ "Sun Nov  0 08:49:37 1994", 0, -1, 0 },
	{ "Sun Nov 06 08:49:37 1994 ", 0, -1, 0 },
	{ "Sun Nov 06 08:49:37 1994 GMT", 0, -1, 0 },
	{ "Sun  Nov 6 08:49:37 1994", 0, -1, 0 },
	{ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 0, -1, 0 },
	{ "xxxxxxxxxxxxxxxxxxxxxxxx", 0, -1, 0 },
	{ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 0, -1, 0 },
};

static void test_dates(void)
{
	static const long long samples[] = {
		0, 1, 59, 60, 3599, 86399, 86400, 784111777, 951782400, 1709208000,
		2147483647LL, 2147483648LL, 4102444800LL, 253402300799LL,
	};
	char out[30], again[30];
	size_t i;
	time_t t;

	for (i = 0; i < ARRAY_LEN(date_cases); i++) {
		const struct date_case *c = &date_cases[i];
		size_t len = c->len ? c->len : strlen(c->in);
		int rc;

		t = 42;
		rc = http_date_parse(c->in, len, &t);
		if (rc != c->rc || (rc == 0 && (long long)t != c->t)) {
			fprintf(stderr, "date case %zu: rc %d t %lld: ", i, rc, (long long)t);
			show(c->in, len);
		}
		assert(rc == c->rc);
		assert(rc != 0 || (long long)t == c->t);
		assert(rc == 0 || t == 42);	/* untouched on failure */
	}
	assert(http_date_parse(NULL, 0, &t) == -1);
	assert(strcmp(http_date_format(0, out), "Thu, 01 Jan 1970 00:00:00 GMT") == 0);
	assert(http_date_format(784111777, out) == out);
	assert(strcmp(out, "Sun, 06 Nov 1994 08:49:37 GMT") == 0);
	assert(strcmp(http_date_format(1709208000, out), "Thu, 29 Feb 2024 12:00:00 GMT") == 0);
	assert(strcmp(http_date_format((time_t)253402300799LL, out),
		      "Fri, 31 Dec 9999 23:59:59 GMT") == 0);
	/* out of the 4-digit-year range: clamped, never a longer string */
	assert(strcmp(http_date_format((time_t)253402300800LL, out),
		      "Fri, 31 Dec 9999 23:59:59 GMT") == 0);
	assert(strcmp(http_date_format((time_t)INT64_MAX, out),
		      "Fri, 31 Dec 9999 23:59:59 GMT") == 0);
	assert(strcmp(http_date_format(-1, out), "Thu, 01 Jan 1970 00:00:00 GMT") == 0);
	assert(strcmp(http_date_format((time_t)INT64_MIN, out),
		      "Thu, 01 Jan 1970 00:00:00 GMT") == 0);
	/* round trips, including through the other two forms */
	for (i = 0; i < ARRAY_LEN(samples); i++) {
		time_t s = (time_t)samples[i];

		http_date_format(s, out);
		assert(strlen(out) == 29);
		assert(http_date_parse(out, 29, &t) == 0 && t == s);
		assert(strcmp(http_date_format(t, again), out) == 0);
	}
	for (t = 0; t < (time_t)4102444800LL; t += 7919 * 3607) {
		time_t back;

		http_date_format(t, out);
		assert(http_date_parse(out, 29, &back) == 0 && back == t);
	}
}

/* ---- entity tags ----------------------------------------------------------------- */

struct etag_case {
	const char *value;
	const char *etag;
	bool match;
};

static const struct etag_case etag_cases[] = {
	{ "\"abc\"", "\"abc\"", true },
	{ "W/\"abc\"", "\"abc\"", true },		/* weak comparison */
	{ "\"abc\"", "W/\"abc\"", true },
	{ "W/\"abc\"", "W/\"abc\"", true },
	{ "*", "\"abc\"", true },
	{ " \t* \t", "\"abc\"", true },
	{ "\"a\", \"abc\"", "\"abc\"", true },
	{ "\"abc\",\"a\"", "\"abc\"", true },
	{ "\"a\" , \"b\"", "\"abc\"", false },
	{ "\"a\" ,\t W/\"abc\" ", "\"abc\"", true },
	{ ",,\"abc\",,", "\"abc\"", true },		/* empty list elements */
	{ " , ,\"abc\"", "\"abc\"", true },
	{ "\"\"", "\"\"", true },
	{ "\"\"", "\"abc\"", false },
	{ "\"a,b\"", "\"a,b\"", true },			/* a comma inside the opaque tag */
	{ "\"a,b\"", "\"a\"", false },
	{ "\"a,b\"", "\"b\"", false },
	{ "\"x\", \"a,b\"", "\"a,b\"", true },
	{ "\"\xc3\xa9\"", "\"\xc3\xa9\"", true },	/* obs-text */
	{ "\"ABC\"", "\"abc\"", false },		/* case-sensitive */
	{ "\"abc\"", "\"abcd\"", false },
	{ "\"abcd\"", "\"abc\"", false },
	/* malformed lists match nothing, even where an element would */
	{ "", "\"abc\"", false },
	{ " ", "\"abc\"", false },
	{ ",", "\"abc\"", false },
	{ "abc", "\"abc\"", false },
	{ "\"abc", "\"abc\"", false },
	{ "abc\"", "\"abc\"", false },
	{ "\"abc\" \"abc\"", "\"abc\"", false },
	{ "\"abc\"x", "\"abc\"", false },
	{ "\"abc\", junk", "\"abc\"", false },
	{ "junk, \"abc\"", "\"abc\"", false },
	{ "*, \"abc\"", "\"abc\"", false },
	{ "\"abc\", *", "\"abc\"", false },
	{ "**", "\"abc\"", false },
	{ "w/\"abc\"", "\"abc\"", false },
	{ "W/ \"abc\"", "\"abc\"", false },
	{ "W\"abc\"", "\"abc\"", false },
	{ "W/", "\"abc\"", false },
	{ "\"ab c\"", "\"ab c\"", false },		/* SP is not etagc */
	{ "\"ab\x7f\"", "\"ab\x7f\"", false },
	{ "\"ab\x01\"", "\"ab\x01\"", false },
	{ "\"a\"\"b\"", "\"a\"", false },
	/* a malformed etag argument matches nothing, not even "*" */
	{ "\"abc\"", "abc", false },
	{ "\"abc\"", "\"abc", false },
	{ "\"abc\"", "\"abc\"x", false },
	{ "\"abc\"", "", false },
	{ "*", "abc", false },
};

static void test_etags(void)
{
	static const char nul_inside[] = "\"a\0b\"";
	size_t i;

	for (i = 0; i < ARRAY_LEN(etag_cases); i++) {
		const struct etag_case *c = &etag_cases[i];
		size_t len = strlen(c->value);
		char *copy = malloc(len ? len : 1);
		bool m;

		assert(copy != NULL);
		memcpy(copy, c->value, len);
		m = http_etag_match_any(copy, len, c->etag);
		free(copy);
		if (m != c->match)
			fprintf(stderr, "etag case %zu: '%s' vs '%s' gives %d\n", i, c->value,
				c->etag, (int)m);
		assert(m == c->match);
	}
	assert(!http_etag_match_any(nul_inside, sizeof(nul_inside) - 1, "\"a\""));
	assert(http_etag_match_any("\"abc\" junk", 5, "\"abc\""));	/* length, not NUL */
	assert(!http_etag_match_any(NULL, 0, "\"abc\""));
	assert(!http_etag_match_any("\"abc\"", 5, NULL));
}

/* ---- Accept-Encoding (gzip_static) ----------------------------------------------- */

static const struct {
	const char *value;
	bool gzip;
} ae_cases[] = {
	{ "gzip", true }, { "GZIP", true }, { "x-gzip", true }, { "deflate, gzip", true },
	{ "gzip, deflate, br", true }, { " gzip ", true }, { ",,gzip,,", true },
	{ "gzip;q=1", true }, { "gzip;q=1.000", true }, { "gzip ; q=0.001", true },
	{ "gzip;Q=0.5", true }, { "gzip;q=0.5;x=y", true }, { "*", true }, { "*;q=0.1", true },
	{ "br, *", true }, { "identity;q=0, gzip", true },
	{ "", false }, { "identity", false }, { "deflate, br", false }, { "gzip;q=0", false },
	{ "gzip;q=0.000", false }, { "gzip;q=0, *", false }, { "*;q=0", false },
	{ "gzip;q=1.5", false }, { "gzip;q=2", false }, { "gzip;q=0.1234", false },
	{ "gzip;q=", false }, { "gzip;q=abc", false }, { "gzip;q", false },
	{ "gzipx", false }, { "xgzip", false }, { "gzi", false }, { "gzip;q=1.001", false },
	{ "*;q=1, gzip;q=0", false }, { "gzip junk", false },
};

static void test_accept_encoding(void)
{
	for (size_t i = 0; i < ARRAY_LEN(ae_cases); i++) {
		size_t len = strlen(ae_cases[i].value);
		char *copy = malloc(len ? len : 1);	/* no NUL after it: lengths are honoured */
		bool g;

		assert(copy != NULL);
		memcpy(copy, ae_cases[i].value, len);
		g = http_accepts_gzip(copy, len);
		free(copy);
		if (g != ae_cases[i].gzip)
			fprintf(stderr, "accept-encoding case %zu '%s': %d\n", i, ae_cases[i].value, g);
		assert(g == ae_cases[i].gzip);
	}
	assert(!http_accepts_gzip(NULL, 0));
	assert(!http_accepts_gzip("gzip", 3));
}

static const struct {
	const char *value, *type;
	unsigned q;
} accept_cases[] = {
	{ "application/json", "application/json", 1000 },
	{ "Application/JSON", "application/json", 1000 },
	{ "application/json", "text/html", 0 },
	{ "", "text/html", 0 },
	{ "*/*", "application/json", 1000 },
	{ "*/*;q=0.8", "text/html", 800 },
	{ "application/*;q=0.5", "application/json", 500 },
	{ "application/*;q=0.5", "text/html", 0 },
	{ "text/*", "text/html", 1000 },
	{ "text/*", "text/plain", 1000 },
	{ "texts/*", "text/html", 0 },
	{ "text/htmlx", "text/html", 0 },
	{ "text/htm", "text/html", 0 },
	/* the most specific range decides, whatever its place or weight */
	{ "*/*, application/json;q=0.1", "application/json", 100 },
	{ "application/json;q=0.1, */*", "application/json", 100 },
	{ "application/json;q=0, */*", "application/json", 0 },
	{ "application/*;q=0.2, */*;q=0.9", "application/json", 200 },
	{ "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html", 1000 },
	{ "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/json",
	  800 },
	{ "application/json, text/html;q=0.5", "text/html", 500 },
	{ " application/json ; q=0.25 ", "application/json", 250 },
	{ "application/json;Q=0.125", "application/json", 125 },
	{ "application/json;charset=utf-8", "application/json", 1000 },
	{ "application/json;charset=utf-8;q=0.3", "application/json", 300 },
	{ "application/json;q=1.000", "application/json", 1000 },
	{ "application/json;q=0.001", "application/json", 1 },
	/* of two equally specific ranges, the first */
	{ "application/json;q=0.3, application/json;q=0.6", "application/json", 300 },
	/* malformed weights count as 0 */
	{ "application/json;q=2", "application/json", 0 },
	{ "application/json;q=0.1234", "application/json", 0 },
	{ "application/json;q=", "application/json", 0 },
	{ "application/json;q", "application/json", 0 },
	{ "application/json junk", "application/json", 0 },
	{ ",, application/json ,,", "application/json", 1000 },
};

static void test_accept(void)
{
	for (size_t i = 0; i < ARRAY_LEN(accept_cases); i++) {
		size_t len = strlen(accept_cases[i].value);
		char *copy = malloc(len ? len : 1);	/* no NUL after it: lengths are honoured */
		unsigned q;

		assert(copy != NULL);
		memcpy(copy, accept_cases[i].value, len);
		q = http_accept_quality(copy, len, accept_cases[i].type);
		free(copy);
		if (q != accept_cases[i].q)
			fprintf(stderr, "accept case %zu '%s' for %s: %u\n", i, accept_cases[i].value,
				accept_cases[i].type, q);
		assert(q == accept_cases[i].q);
	}
	{	/* the parser keeps the first Accept field */
		static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\nAccept:  application/json \r\n"
					 "Accept: text/html\r\n\r\n";
		struct http_request req;
		int status;

		assert(http_parse_request(in, sizeof(in) - 1, &lim_default, &req, &status) ==
		       HTTP_PARSE_OK);
		assert(str_is(req.accept, "application/json"));
		assert(http_parse_request("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27, &lim_default,
					  &req, &status) == HTTP_PARSE_OK);
		assert(req.accept.ptr == NULL);
	}
	assert(http_accept_quality(NULL, 0, "application/json") == 1000);
	assert(http_accept_quality("application/json", 11, "application/json") == 0);
}

/* ---- reason phrases -------------------------------------------------------------- */

static void test_reasons(void)
{
	static const struct {
		int code;
		const char *reason;
	} reasons[] = {
		{ 200, "OK" }, { 206, "Partial Content" }, { 301, "Moved Permanently" },
		{ 304, "Not Modified" }, { 400, "Bad Request" }, { 403, "Forbidden" },
		{ 404, "Not Found" }, { 405, "Method Not Allowed" }, { 408, "Request Timeout" },
		{ 413, "Content Too Large" }, { 414, "URI Too Long" },
		{ 416, "Range Not Satisfiable" }, { 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" }, { 501, "Not Implemented" },
		{ 503, "Service Unavailable" }, { 505, "HTTP Version Not Supported" },
		{ 0, "Unknown" }, { -1, "Unknown" }, { 201, "Unknown" }, { 999, "Unknown" },
	};
	size_t i;

	for (i = 0; i < ARRAY_LEN(reasons); i++)
		assert(strcmp(http_reason(reasons[i].code), reasons[i].reason) == 0);
}

int main(void)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(status_cases); i++)
		run_status_case(i, &status_cases[i]);
	for (i = 0; i < ARRAY_LEN(field_cases); i++)
		run_field_case(i, &field_cases[i]);
	test_prefixes();
	test_pipeline();
	test_limit_cases();
	test_large();
	test_dates();
	test_etags();
	test_accept_encoding();
	test_accept();
	test_reasons();
	printf("test_http: %zu status, %zu field, %zu limit, %zu date, %zu etag cases and "
	       "prefix/pipeline/large tests passed\n", ARRAY_LEN(status_cases),
	       ARRAY_LEN(field_cases), ARRAY_LEN(limit_cases), ARRAY_LEN(date_cases),
	       ARRAY_LEN(etag_cases));
	return 0;
}
