/* http.h — HTTP/1.1 request head parser and small header helpers (RFC 9110/9112).
 *
 * Pure functions: no I/O, no allocation, no global state, so they are unit tested
 * and fuzzed directly. The parser never copies: every pointer in struct http_request
 * points into the caller's buffer, which must outlive the request (the one exception is
 * the path of an absolute-form target without one, "http://h": a static "/").
 */
#ifndef KTLSD_HTTP_H
#define KTLSD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum http_method {
	HTTP_METHOD_GET,
	HTTP_METHOD_HEAD,
	HTTP_METHOD_OTHER,	/* a registered method we do not serve (POST, PUT, ...): 405 */
};

/* Limits the parser enforces; the daemon fills them from the config. */
struct http_limits {
	size_t max_request_line;	/* bytes, without CRLF; longer → 414 */
	size_t max_header_bytes;	/* whole head incl. request line; more → 431 */
	size_t max_headers;		/* header fields; more → 431 */
};

/* A string slice into the caller's buffer; ptr == NULL means "absent". */
struct http_str {
	const char *ptr;
	size_t len;
};

struct http_request {
	enum http_method method;
	struct http_str method_name;	/* the method token as sent */
	struct http_str target;		/* raw request-target as sent */
	struct http_str path;		/* still percent-encoded path, always starts with '/';
					 * for absolute-form targets the path part after the authority */
	struct http_str query;		/* after '?', without it; absent if none */
	int version_minor;		/* HTTP/1.<version_minor>: 0 or 1 */
	struct http_str host;		/* Host header, or the authority of an absolute-form target */
	bool keep_alive;		/* after Connection header and version defaults */
	bool has_body;			/* Content-Length > 0 or any Transfer-Encoding: the daemon
					 * does not read request bodies and closes after replying */
	uint64_t content_length;	/* 0 if absent */
	struct http_str if_none_match;
	struct http_str if_modified_since;
	struct http_str range;
	struct http_str if_range;
	struct http_str accept_encoding;	/* first Accept-Encoding field (gzip_static) */
	struct http_str accept;		/* first Accept field (directory listing format) */
	struct http_str user_agent;	/* for the access log only */
	struct http_str referer;
	size_t head_len;		/* bytes consumed, incl. leading empty line(s) and final CRLF CRLF */
};

enum http_parse_result {
	HTTP_PARSE_OK,		/* *req complete; req->head_len bytes consumed */
	HTTP_PARSE_INCOMPLETE,	/* need more bytes; nothing is wrong so far */
	HTTP_PARSE_ERROR,	/* *status is the HTTP status to answer with, then close */
};

/* Parse one request head from buf[0..len).
 * Accepts CRLF and bare LF line endings (RFC 9112 §2.2); tolerates one leading empty line
 * (CRLF or LF) before the request line.
 * On HTTP_PARSE_ERROR sets *status to one of: 400 (syntax: control/NUL bytes, bare CR,
 * whitespace before ':', obs-fold, missing or duplicate Host on HTTP/1.1, bad version like
 * HTTP/1.11, '#' in target, Transfer-Encoding together with Content-Length, repeated or
 * unknown transfer codings, differing or non-decimal Content-Length such as "+5"),
 * 414 (request line over lim->max_request_line, reported as soon as that many bytes
 * arrived without a line end), 431 (head over max_header_bytes or more than max_headers
 * fields), 501 (unknown method token), 505 (HTTP major version other than 1).
 * A registered but unserved method (POST, PUT, DELETE, OPTIONS, PATCH, TRACE, CONNECT)
 * parses OK with method HTTP_METHOD_OTHER; the caller answers 405.
 * Never reads outside buf[0..len). lim, req and status must not be NULL. */
enum http_parse_result http_parse_request(const char *buf, size_t len,
					  const struct http_limits *lim,
					  struct http_request *req, int *status);

/* Format t as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into out, which must
 * hold at least 30 bytes. Returns out. */
char *http_date_format(time_t t, char *out);

/* Parse an HTTP-date (IMF-fixdate; also RFC 850 and asctime forms as RFC 9110 §5.6.7
 * requires). Returns 0 and sets *t on success, -1 if s[0..len) is not a valid date. */
int http_date_parse(const char *s, size_t len, time_t *t);

/* Does the If-None-Match value s[0..len) match etag (a complete strong entity-tag
 * including its quotes)? Weak comparison as RFC 9110 §13.1.2 says: "*" matches, W/"x"
 * matches "x". A malformed list matches nothing. */
bool http_etag_match_any(const char *s, size_t len, const char *etag);

/* Does the Accept-Encoding value s[0..len) accept gzip (RFC 9110 §12.5.3)? "gzip" or
 * "x-gzip" with a q-value above 0, or "*" above 0 when gzip is not named. Codings and
 * parameter names compare case-insensitively; a malformed q-value counts as 0 for that
 * element. s == NULL (no field): false. */
bool http_accepts_gzip(const char *s, size_t len);

/* The weight (0 to 1000) that the Accept value s[0..len) gives the media type `type`
 * ("application/json"): the q of its most specific matching range (RFC 9110 §12.5.1:
 * the exact type before "type/ANY" before "ANY/ANY", ANY being the "*" wildcard; of
 * equally specific ones the first).
 * type is in lower case; names compare case-insensitively; media type parameters other than q are ignored; a
 * malformed q-value or parameter gives its range 0. s == NULL (no field): 1000, anything
 * is acceptable; no range matches: 0. */
unsigned http_accept_quality(const char *s, size_t len, const char *type);

/* Status line reason phrase for code ("Not Found"), "Unknown" for codes not known. */
const char *http_reason(int code);

#endif
