/* http.c — HTTP/1.1 request head parser and small header helpers (see http.h).
 *
 * The head is parsed in one forward pass, one line at a time: find the next LF, check the
 * limits, then parse that line. Every byte is looked at a bounded number of times, nothing
 * recurses and nothing is copied. Lines that are complete are fully validated even while
 * the head is still incomplete, and the unfinished last line is scanned for bytes that can
 * never become valid, so a hostile client is turned away as early as possible.
 *
 * Where RFC 9112 leaves a choice, the stricter one is taken, as request smuggling lives in
 * lenient parsers: single SP between the request-line parts, no whitespace before ':',
 * no obs-fold, no empty Content-Length list elements. Bare LF line endings are accepted
 * because RFC 9112 §2.2 allows it and people type requests into openssl s_client.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* timegm(), gmtime_r() */
#endif
#include "http.h"

#include <string.h>
#include <time.h>

/* State that lives only while one head is parsed. */
struct http_head {
	const struct http_limits *lim;
	struct http_request *req;
	struct http_str authority;	/* of an absolute-form target: overrides Host */
	size_t nfields;
	bool have_request_line;
	bool leading_empty;		/* the one tolerated empty line was seen */
	bool host_seen;
	bool cl_seen;
	bool te_seen;
	bool te_chunked;		/* "chunked" seen: it must be the last coding */
	bool conn_close;
	bool conn_keep_alive;
};

/* Methods registered in RFC 9110 that a static file server does not serve: 405. */
static const char *const http_other_methods[] = {
	"POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
};

/* Transfer codings we know by name (RFC 9112 §7). Since the daemon never reads a request
 * body any of them only means "close after replying"; an unknown one gets 400 rather than
 * the 501 RFC 9112 §6.1 suggests, as the body framing cannot be trusted either way. */
static const char *const http_known_codings[] = {
	"chunked", "gzip", "x-gzip", "deflate", "compress", "x-compress",
};

static bool http_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool http_is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* tchar, RFC 9110 §5.6.2 */
static bool http_is_tchar(unsigned char c)
{
	return http_is_alpha(c) || http_is_digit(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

static bool http_is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* A byte that may never appear in a head line: CR outside a line ending, NUL, the other
 * controls and DEL. HTAB is allowed (in field values). */
static bool http_is_forbidden(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* Characters of an authority (RFC 3986 host [":" port]): unreserved, sub-delims, ':',
 * '%' for pct-encoded and '[' ']' for IP literals. No '@': userinfo is refused
 * (RFC 9110 §4.2.4). */
static bool http_is_host_char(unsigned char c)
{
	return http_is_alpha(c) || http_is_digit(c) || (c != 0 && strchr("-._~!$&'()*+,;=:%[]", c));
}

static unsigned char http_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Case-insensitive comparison of s[0..n) with the lowercase NUL-terminated word. */
static bool http_eq_nocase(const char *s, size_t n, const char *word)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (word[i] == '\0' || http_lower((unsigned char)s[i]) != (unsigned char)word[i])
			return false;
	return word[n] == '\0';
}

static bool http_eq(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && memcmp(s, word, n) == 0;
}

static bool http_host_valid(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!http_is_host_char((unsigned char)s[i]))
			return false;
	return true;
}

/* Next element of the comma-separated list s[0..n) (RFC 9110 §5.6.1), starting at *pos,
 * with OWS trimmed; empty elements come back with len 0. Returns false once the list is
 * used up. Start with *pos = 0. */
static bool http_list_next(const char *s, size_t n, size_t *pos, struct http_str *elem)
{
	const char *comma;
	size_t start = *pos, end;

	if (start > n)
		return false;
	comma = memchr(s + start, ',', n - start);
	end = comma ? (size_t)(comma - s) : n;
	*pos = end + 1;
	while (start < end && http_is_ows((unsigned char)s[start]))
		start++;
	while (end > start && http_is_ows((unsigned char)s[end - 1]))
		end--;
	elem->ptr = s + start;
	elem->len = end - start;
	return true;
}

/* ---- request line ---------------------------------------------------------------- */

/* Split p[0..n) (what follows the authority, or an origin-form target) into path and
 * query. An absolute-form target may have an empty path ("http://h" or "http://h?q"):
 * RFC 9112 §3.2.1 says that means "/", which then is a static string, not in the buffer. */
static void http_split_path(struct http_request *req, const char *p, size_t n)
{
	const char *q = memchr(p, '?', n);
	size_t plen = q ? (size_t)(q - p) : n;

	if (plen == 0) {
		req->path.ptr = "/";
		req->path.len = 1;
	} else {
		req->path.ptr = p;
		req->path.len = plen;
	}
	if (q) {
		req->query.ptr = q + 1;
		req->query.len = n - plen - 1;
	}
}

/* Length of a leading "http://" or "https://" (scheme compared case-insensitively), or 0. */
static size_t http_scheme_len(const char *t, size_t n)
{
	if (n >= 7 && http_eq_nocase(t, 4, "http") && memcmp(t + 4, "://", 3) == 0)
		return 7;
	if (n >= 8 && http_eq_nocase(t, 5, "https") && memcmp(t + 5, "://", 3) == 0)
		return 8;
	return 0;
}

/* request-target: origin-form or absolute-form only ("*" and authority-form are for
 * OPTIONS and CONNECT, which we do not serve). Returns 0 or the status to answer. */
static int http_target(struct http_head *h, const char *t, size_t n)
{
	struct http_request *req = h->req;
	size_t i, skip, alen;
	const char *a;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];

		/* '#' starts a fragment, which a client must not send; non-ASCII must be
		 * percent-encoded. Other stray visible characters are left to path_normalize. */
		if (c <= 0x20 || c >= 0x7f || c == '#')
			return 400;
	}
	req->target.ptr = t;
	req->target.len = n;
	if (t[0] == '/') {
		http_split_path(req, t, n);
		return 0;
	}
	skip = http_scheme_len(t, n);
	if (skip == 0)
		return 400;
	a = t + skip;
	for (alen = 0; skip + alen < n && a[alen] != '/' && a[alen] != '?'; alen++)
		;
	/* an http(s) URI with an empty host is invalid (RFC 9110 §4.2.1) */
	if (alen == 0 || !http_host_valid(a, alen))
		return 400;
	h->authority.ptr = a;
	h->authority.len = alen;
	http_split_path(req, a + alen, n - skip - alen);
	return 0;
}

/* HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3). A higher minor
 * version than 1 is processed as 1.1 (RFC 9110 §2.5). */
static int http_version(struct http_request *req, const char *v, size_t n)
{
	if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || !http_is_digit((unsigned char)v[5]) ||
	    v[6] != '.' || !http_is_digit((unsigned char)v[7]))
		return 400;
	if (v[5] != '1')
		return 505;
	req->version_minor = v[7] == '0' ? 0 : 1;
	return 0;
}

/* Classify the (syntactically valid) method token: case-sensitive (RFC 9110 §9.1). */
static int http_classify_method(struct http_request *req, const char *m, size_t n)
{
	size_t i;

	if (http_eq(m, n, "GET")) {
		req->method = HTTP_METHOD_GET;
		return 0;
	}
	if (http_eq(m, n, "HEAD")) {
		req->method = HTTP_METHOD_HEAD;
		return 0;
	}
	for (i = 0; i < sizeof(http_other_methods) / sizeof(http_other_methods[0]); i++) {
		if (http_eq(m, n, http_other_methods[i])) {
			req->method = HTTP_METHOD_OTHER;
			return 0;
		}
	}
	return 501;
}

/* request-line = method SP request-target SP HTTP-version, in line[0..n), n > 0.
 * Syntax errors (400) are reported before 505 and 501, so a garbage line is a 400. */
static int http_request_line(struct http_head *h, const char *line, size_t n)
{
	struct http_request *req = h->req;
	const char *sp;
	size_t i = 0, t0, tlen;
	int rc;

	while (i < n && http_is_tchar((unsigned char)line[i]))
		i++;
	if (i == 0 || i == n || line[i] != ' ')
		return 400;
	req->method_name.ptr = line;
	req->method_name.len = i;
	t0 = i + 1;
	sp = memchr(line + t0, ' ', n - t0);
	if (sp == NULL)		/* no version: HTTP/0.9, which we do not speak */
		return 400;
	tlen = (size_t)(sp - (line + t0));
	if (tlen == 0)
		return 400;
	rc = http_target(h, line + t0, tlen);
	if (rc == 0)
		rc = http_version(req, sp + 1, n - t0 - tlen - 1);
	if (rc == 0)
		rc = http_classify_method(req, line, i);
	return rc;
}

/* ---- header fields ---------------------------------------------------------------- */

/* Content-Length = 1*DIGIT, or a list of identical values ("5, 5", RFC 9110 §8.6), possibly
 * spread over several field lines. Values above INT64_MAX are refused so that they fit an
 * off_t. */
static int http_content_length(struct http_head *h, struct http_str v)
{
	struct http_str e;
	size_t pos = 0, i;

	while (http_list_next(v.ptr, v.len, &pos, &e)) {
		uint64_t n = 0;

		if (e.len == 0)
			return 400;
		for (i = 0; i < e.len; i++) {
			unsigned d = (unsigned char)e.ptr[i] - '0';

			if (d > 9 || n > ((uint64_t)INT64_MAX - d) / 10)
				return 400;
			n = n * 10 + d;
		}
		if (h->cl_seen && n != h->req->content_length)
			return 400;
		h->cl_seen = true;
		h->req->content_length = n;
	}
	return 0;
}

/* Transfer-Encoding: a list of codings that must end in exactly one "chunked" (RFC 9112
 * §6.3: otherwise the body length is unknown, 400). Checked across field lines; that
 * chunked is there at all is checked once the head is complete. */
static int http_transfer_encoding(struct http_head *h, struct http_str v)
{
	struct http_str e;
	size_t pos = 0, i;
	bool known;

	h->te_seen = true;
	h->req->has_body = true;
	while (http_list_next(v.ptr, v.len, &pos, &e)) {
		if (e.len == 0)
			continue;
		if (h->te_chunked)	/* anything after chunked, including chunked again */
			return 400;
		known = false;
		for (i = 0; i < sizeof(http_known_codings) / sizeof(http_known_codings[0]); i++)
			known = known || http_eq_nocase(e.ptr, e.len, http_known_codings[i]);
		if (!known)
			return 400;
		if (http_eq_nocase(e.ptr, e.len, "chunked"))
			h->te_chunked = true;
	}
	return 0;
}

/* Connection: only the close and keep-alive options matter; other tokens are ignored. */
static void http_connection(struct http_head *h, struct http_str v)
{
	struct http_str e;
	size_t pos = 0;

	while (http_list_next(v.ptr, v.len, &pos, &e)) {
		if (http_eq_nocase(e.ptr, e.len, "close"))
			h->conn_close = true;
		else if (http_eq_nocase(e.ptr, e.len, "keep-alive"))
			h->conn_keep_alive = true;
	}
}

/* Host: exactly one (RFC 9112 §3.2); empty only where HTTP/1.0 clients may omit it. */
static int http_host(struct http_head *h, struct http_str v)
{
	if (h->host_seen)
		return 400;
	h->host_seen = true;
	if (v.len == 0 && h->req->version_minor != 0)
		return 400;
	if (!http_host_valid(v.ptr, v.len))
		return 400;
	h->req->host = v;
	return 0;
}

/* Keep the first of a field we do not expect twice; a repeat is harmless to ignore. */
static void http_keep_first(struct http_str *dst, struct http_str v)
{
	if (dst->ptr == NULL)
		*dst = v;
}

/* Act on one field by name. Returns 0 or the status to answer. */
static int http_field(struct http_head *h, struct http_str name, struct http_str v)
{
	struct http_request *req = h->req;

	if (http_eq_nocase(name.ptr, name.len, "host"))
		return http_host(h, v);
	if (http_eq_nocase(name.ptr, name.len, "connection"))
		http_connection(h, v);
	else if (http_eq_nocase(name.ptr, name.len, "content-length"))
		return http_content_length(h, v);
	else if (http_eq_nocase(name.ptr, name.len, "transfer-encoding"))
		return http_transfer_encoding(h, v);
	else if (http_eq_nocase(name.ptr, name.len, "if-none-match"))
		http_keep_first(&req->if_none_match, v);
	else if (http_eq_nocase(name.ptr, name.len, "if-modified-since"))
		http_keep_first(&req->if_modified_since, v);
	else if (http_eq_nocase(name.ptr, name.len, "if-range"))
		http_keep_first(&req->if_range, v);
	else if (http_eq_nocase(name.ptr, name.len, "user-agent"))
		http_keep_first(&req->user_agent, v);
	else if (http_eq_nocase(name.ptr, name.len, "accept-encoding"))
		http_keep_first(&req->accept_encoding, v);
	else if (http_eq_nocase(name.ptr, name.len, "accept"))
		http_keep_first(&req->accept, v);
	else if (http_eq_nocase(name.ptr, name.len, "referer"))
		http_keep_first(&req->referer, v);
	else if (http_eq_nocase(name.ptr, name.len, "range")) {
		/* two Range fields cannot be combined into one meaning */
		if (req->range.ptr != NULL)
			return 400;
		req->range = v;
	}
	return 0;
}

/* field-line = field-name ":" OWS field-value OWS, in line[0..n), n > 0.
 * A line starting with whitespace is obs-fold (or whitespace before the first field):
 * both are 400, as is whitespace between the name and the colon (RFC 9112 §5.1). */
static int http_field_line(struct http_head *h, const char *line, size_t n)
{
	struct http_str name, v;
	size_t i = 0, end;

	if (++h->nfields > h->lim->max_headers)
		return 431;
	while (i < n && http_is_tchar((unsigned char)line[i]))
		i++;
	if (i == 0 || i == n || line[i] != ':')
		return 400;
	name.ptr = line;
	name.len = i;
	for (end = i + 1; end < n; end++)
		if (http_is_forbidden((unsigned char)line[end]))
			return 400;
	i++;
	while (i < n && http_is_ows((unsigned char)line[i]))
		i++;
	while (n > i && http_is_ows((unsigned char)line[n - 1]))
		n--;
	v.ptr = line + i;
	v.len = n - i;
	return http_field(h, name, v);
}

/* ---- the head as a whole ------------------------------------------------------------ */

/* Checks that need the whole head, and the defaults that depend on it. */
static int http_finish(struct http_head *h)
{
	struct http_request *req = h->req;

	if (req->version_minor == 1 && !h->host_seen)
		return 400;
	if (h->te_seen && (h->cl_seen || !h->te_chunked))
		return 400;
	/* RFC 9112 §3.2.2: the target's authority wins over the Host field */
	if (h->authority.ptr != NULL)
		req->host = h->authority;
	req->keep_alive = !h->conn_close && (req->version_minor == 1 || h->conn_keep_alive);
	if (req->content_length > 0)
		req->has_body = true;
	return 0;
}

/* The head is not complete: buf[pos..len) is an unfinished line. Decide whether waiting
 * for more can still help. Returns 0 or the status to answer. */
static int http_unfinished(const struct http_head *h, const char *buf, size_t pos, size_t len)
{
	size_t n = len - pos, i;

	if (n > 0 && buf[len - 1] == '\r')	/* may be the first half of a CRLF */
		n--;
	if (!h->have_request_line && n > h->lim->max_request_line)
		return 414;
	/* the head needs at least one more byte, so it cannot fit any longer */
	if (len >= h->lim->max_header_bytes)
		return 431;
	for (i = 0; i < n; i++)
		if (http_is_forbidden((unsigned char)buf[pos + i]))
			return 400;
	return 0;
}

/* Parse the line buf[pos..lf) (lf indexes its LF). Returns 0, -1 for the end of the
 * head, or the status to answer. */
static int http_line(struct http_head *h, const char *buf, size_t pos, size_t lf)
{
	size_t n = lf - pos;
	int rc;

	if (n > 0 && buf[lf - 1] == '\r')
		n--;
	if (h->have_request_line) {
		if (lf + 1 > h->lim->max_header_bytes)
			return 431;
		return n == 0 ? -1 : http_field_line(h, buf + pos, n);
	}
	if (n > h->lim->max_request_line)
		return 414;
	if (lf + 1 > h->lim->max_header_bytes)
		return 431;
	if (n == 0) {
		/* one empty line before the request line is tolerated (RFC 9112 §2.2) */
		if (h->leading_empty)
			return 400;
		h->leading_empty = true;
		return 0;
	}
	rc = http_request_line(h, buf + pos, n);
	h->have_request_line = true;
	return rc;
}

enum http_parse_result http_parse_request(const char *buf, size_t len,
					  const struct http_limits *lim,
					  struct http_request *req, int *status)
{
	struct http_head h;
	size_t pos = 0;
	int rc;

	memset(req, 0, sizeof(*req));
	memset(&h, 0, sizeof(h));
	h.lim = lim;
	h.req = req;
	*status = 0;
	for (;;) {
		const char *lf = pos < len ? memchr(buf + pos, '\n', len - pos) : NULL;

		if (lf == NULL) {
			rc = http_unfinished(&h, buf, pos, len);
			if (rc == 0)
				return HTTP_PARSE_INCOMPLETE;
			break;
		}
		rc = http_line(&h, buf, pos, (size_t)(lf - buf));
		pos = (size_t)(lf - buf) + 1;
		if (rc == -1) {
			req->head_len = pos;
			rc = http_finish(&h);
			if (rc == 0)
				return HTTP_PARSE_OK;
		}
		if (rc != 0)
			break;
	}
	*status = rc;
	return HTTP_PARSE_ERROR;
}

/* ---- dates -------------------------------------------------------------------------- */

static const char http_wdays[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const http_wdays_long[7] = {
	"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
};
static const char http_months[12][4] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

static void http_put_digits(char *out, int v, int ndigits)
{
	while (ndigits-- > 0) {
		out[ndigits] = (char)('0' + v % 10);
		v /= 10;
	}
}

char *http_date_format(time_t t, char *out)
{
	/* IMF-fixdate has a 4-digit year: clamp to 1970-01-01 .. 9999-12-31 23:59:59 */
	const long long max = 253402300799LL;
	struct tm tm;

	if (t < 0)
		t = 0;
	if ((long long)t > max)
		t = (time_t)max;
	if (gmtime_r(&t, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	memcpy(out, http_wdays[tm.tm_wday % 7], 3);
	memcpy(out + 3, ", ", 2);
	http_put_digits(out + 5, tm.tm_mday, 2);
	out[7] = ' ';
	memcpy(out + 8, http_months[tm.tm_mon % 12], 3);
	out[11] = ' ';
	http_put_digits(out + 12, tm.tm_year + 1900, 4);
	out[16] = ' ';
	http_put_digits(out + 17, tm.tm_hour, 2);
	out[19] = ':';
	http_put_digits(out + 20, tm.tm_min, 2);
	out[22] = ':';
	http_put_digits(out + 23, tm.tm_sec, 2);
	memcpy(out + 25, " GMT", 5);	/* with the NUL: 30 bytes */
	return out;
}

/* n decimal digits at s into *v; false if any is not a digit. */
static bool http_num(const char *s, size_t n, int *v)
{
	*v = 0;
	while (n-- > 0) {
		if (!http_is_digit((unsigned char)*s))
			return false;
		*v = *v * 10 + (*s++ - '0');
	}
	return true;
}

/* Three-letter name at s in names[]: its index, or -1. Case-sensitive (RFC 9110 §5.6.7). */
static int http_name3(const char *s, const char (*names)[4], int count)
{
	int i;

	for (i = 0; i < count; i++)
		if (memcmp(s, names[i], 3) == 0)
			return i;
	return -1;
}

/* time-of-day = hour ":" minute ":" second, 8 bytes at s */
static bool http_time_of_day(const char *s, struct tm *tm)
{
	return http_num(s, 2, &tm->tm_hour) && s[2] == ':' && http_num(s + 3, 2, &tm->tm_min) &&
	       s[5] == ':' && http_num(s + 6, 2, &tm->tm_sec);
}

/* "Sun, 06 Nov 1994 08:49:37 GMT", exactly 29 bytes */
static bool http_date_imf(const char *s, struct tm *tm)
{
	int year;

	if (http_name3(s, http_wdays, 7) < 0 || memcmp(s + 3, ", ", 2) != 0 ||
	    !http_num(s + 5, 2, &tm->tm_mday) || s[7] != ' ' || s[11] != ' ' ||
	    !http_num(s + 12, 4, &year) || s[16] != ' ' || !http_time_of_day(s + 17, tm) ||
	    memcmp(s + 25, " GMT", 4) != 0)
		return false;
	tm->tm_mon = http_name3(s + 8, http_months, 12);
	tm->tm_year = year - 1900;
	return tm->tm_mon >= 0;
}

/* "Sun Nov  6 08:49:37 1994", exactly 24 bytes; the day is 2DIGIT or SP DIGIT */
static bool http_date_asctime(const char *s, struct tm *tm)
{
	int year;

	if (http_name3(s, http_wdays, 7) < 0 || s[3] != ' ' || s[7] != ' ' || s[10] != ' ' ||
	    !http_time_of_day(s + 11, tm) || s[19] != ' ' || !http_num(s + 20, 4, &year))
		return false;
	if (s[8] == ' ' ? !http_num(s + 9, 1, &tm->tm_mday) : !http_num(s + 8, 2, &tm->tm_mday))
		return false;
	tm->tm_mon = http_name3(s + 4, http_months, 12);
	tm->tm_year = year - 1900;
	return tm->tm_mon >= 0;
}

/* "Sunday, 06-Nov-94 08:49:37 GMT": the long day name, then exactly 24 bytes. The
 * two-digit year is read with a fixed pivot (70-99 → 19xx, 00-69 → 20xx) rather than
 * RFC 9110's "not more than 50 years ahead of now", to keep this function pure. */
static bool http_date_rfc850(const char *s, size_t len, struct tm *tm)
{
	const char *p;
	size_t nlen;
	int i, year;

	if (len < 24 + 6)
		return false;
	nlen = len - 24;
	for (i = 0; i < 7; i++)
		if (http_eq(s, nlen, http_wdays_long[i]))
			break;
	if (i == 7)
		return false;
	p = s + nlen;
	if (memcmp(p, ", ", 2) != 0 || !http_num(p + 2, 2, &tm->tm_mday) || p[4] != '-' ||
	    p[8] != '-' || !http_num(p + 9, 2, &year) || p[11] != ' ' ||
	    !http_time_of_day(p + 12, tm) || memcmp(p + 20, " GMT", 4) != 0)
		return false;
	tm->tm_mon = http_name3(p + 5, http_months, 12);
	tm->tm_year = year < 70 ? year + 100 : year;
	return tm->tm_mon >= 0;
}

/* Field ranges, and the day within its month; a leap second (60) is allowed. */
static bool http_tm_valid(const struct tm *tm)
{
	static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int year = tm->tm_year + 1900;
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	if (tm->tm_hour > 23 || tm->tm_min > 59 || tm->tm_sec > 60 || tm->tm_mday < 1 ||
	    tm->tm_mday > mdays[tm->tm_mon])
		return false;
	return !(tm->tm_mon == 1 && tm->tm_mday == 29 && !leap);
}

/* The day name is checked to be a day name but not against the date: RFC 9110 does not
 * ask for it, and a wrong one does not make the instant ambiguous. */
int http_date_parse(const char *s, size_t len, time_t *t)
{
	struct tm tm;
	bool ok;

	if (s == NULL)
		return -1;
	memset(&tm, 0, sizeof(tm));
	if (len == 29)
		ok = http_date_imf(s, &tm);
	else if (len == 24)
		ok = http_date_asctime(s, &tm);
	else
		ok = http_date_rfc850(s, len, &tm);
	if (!ok || !http_tm_valid(&tm))
		return -1;
	*t = timegm(&tm);
	return 0;
}

/* ---- entity tags -------------------------------------------------------------------- */

/* etagc = %x21 / %x23-7E / obs-text */
static bool http_is_etagc(unsigned char c)
{
	return c == 0x21 || (c >= 0x23 && c != 0x7f);
}

/* entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE at s[*i..n): the opaque part without its
 * quotes into *tag, *i moved past it. */
static bool http_etag_scan(const char *s, size_t n, size_t *i, struct http_str *tag)
{
	size_t j = *i;

	if (n - j >= 2 && s[j] == 'W' && s[j + 1] == '/')
		j += 2;
	if (j == n || s[j] != '"')
		return false;
	tag->ptr = s + ++j;
	while (j < n && s[j] != '"') {
		if (!http_is_etagc((unsigned char)s[j]))
			return false;
		j++;
	}
	if (j == n)
		return false;
	tag->len = (size_t)(s + j - tag->ptr);
	*i = j + 1;
	return true;
}

/* The list is scanned element by element rather than split at commas, because an
 * opaque-tag may itself contain commas. */
bool http_etag_match_any(const char *s, size_t len, const char *etag)
{
	struct http_str want, tag;
	size_t i = 0, elen;
	bool match = false;

	if (s == NULL || etag == NULL)
		return false;
	elen = strlen(etag);
	if (!http_etag_scan(etag, elen, &i, &want) || i != elen)
		return false;
	while (len > 0 && http_is_ows((unsigned char)s[len - 1]))
		len--;
	i = 0;
	while (i < len && http_is_ows((unsigned char)s[i]))
		i++;
	if (len - i == 1 && s[i] == '*')
		return true;
	for (;;) {
		while (i < len && (http_is_ows((unsigned char)s[i]) || s[i] == ','))
			i++;	/* empty list elements are allowed */
		if (i == len)
			return match;
		if (!http_etag_scan(s, len, &i, &tag))
			return false;
		if (tag.len == want.len && memcmp(tag.ptr, want.ptr, tag.len) == 0)
			match = true;
		while (i < len && http_is_ows((unsigned char)s[i]))
			i++;
		if (i < len && s[i] != ',')
			return false;
	}
}

/* A q-value (RFC 9110 §12.4.2: "0" ["." 0-3 digits] or "1" ["." 0-3 zeros]) in
 * s[0..len) as thousandths (0 to 1000); -1 if malformed. */
static int http_qvalue(const char *s, size_t len)
{
	int q, scale = 100;

	if (len == 0 || (s[0] != '0' && s[0] != '1'))
		return -1;
	q = s[0] == '1' ? 1000 : 0;
	if (len > 1) {
		if (s[1] != '.' || len > 5)
			return -1;
		for (size_t i = 2; i < len; i++, scale /= 10) {
			if (s[i] < '0' || s[i] > '9' || (s[0] == '1' && s[i] != '0'))
				return -1;
			q += (s[i] - '0') * scale;
		}
	}
	return q;
}

/* The next element of a weighted list (Accept, Accept-Encoding: RFC 9110 §12.4.2) in
 * s[*i..len): its token without parameters into *tok, its weight (q, default 1000) into
 * *q. Only q matters among the parameters; anything malformed makes the element's weight
 * 0. Empty elements are skipped. false at the end of the list. */
static bool http_weighted_next(const char *s, size_t len, size_t *pos, struct http_str *tok,
			       unsigned *q)
{
	size_t i = *pos;

	for (;;) {
		size_t t0, t1;
		bool ok = true;
		int w = 1000;

		while (i < len && (http_is_ows((unsigned char)s[i]) || s[i] == ','))
			i++;
		if (i == len) {
			*pos = i;
			return false;
		}
		t0 = i;
		while (i < len && s[i] != ',' && s[i] != ';' && !http_is_ows((unsigned char)s[i]))
			i++;
		t1 = i;
		while (i < len && s[i] != ',') {
			size_t p0, p1, v0;
			while (i < len && http_is_ows((unsigned char)s[i]))
				i++;
			if (i == len || s[i] == ',')
				break;
			if (s[i] != ';') {
				ok = false;
				while (i < len && s[i] != ',')
					i++;
				break;
			}
			i++;
			while (i < len && http_is_ows((unsigned char)s[i]))
				i++;
			p0 = i;
			while (i < len && s[i] != '=' && s[i] != ',' && s[i] != ';' &&
			       !http_is_ows((unsigned char)s[i]))
				i++;
			p1 = i;
			if (i >= len || s[i] != '=') {
				ok = false;
				continue;
			}
			v0 = ++i;
			while (i < len && s[i] != ',' && s[i] != ';' && !http_is_ows((unsigned char)s[i]))
				i++;
			if (http_eq_nocase(s + p0, p1 - p0, "q"))
				w = http_qvalue(s + v0, i - v0);
		}
		if (t1 == t0)
			continue;	/* ";q=1" without a token */
		tok->ptr = s + t0;
		tok->len = t1 - t0;
		*q = ok && w > 0 ? (unsigned)w : 0;
		*pos = i;
		return true;
	}
}

bool http_accepts_gzip(const char *s, size_t len)
{
	int gzip = -1, star = -1;	/* -1 not named, else 0/1: q > 0 */
	struct http_str t;
	size_t i = 0;
	unsigned q;

	if (s == NULL)
		return false;
	while (http_weighted_next(s, len, &i, &t, &q)) {
		if (http_eq_nocase(t.ptr, t.len, "gzip") || http_eq_nocase(t.ptr, t.len, "x-gzip"))
			gzip = q > 0;
		else if (t.len == 1 && t.ptr[0] == '*')
			star = q > 0;
	}
	return gzip == 1 || (gzip == -1 && star == 1);
}

/* Case-insensitive comparison of s[0..n) with the lowercase word[0..n). */
static bool http_prefix_nocase(const char *s, const char *word, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (http_lower((unsigned char)s[i]) != (unsigned char)word[i])
			return false;
	return true;
}

unsigned http_accept_quality(const char *s, size_t len, const char *type)
{
	size_t tlen = strcspn(type, "/");
	int best = -1;		/* specificity of the range that decided: 0 to 2 */
	unsigned q_best = 0, q;
	struct http_str t;
	size_t i = 0;

	if (s == NULL)
		return 1000;
	while (http_weighted_next(s, len, &i, &t, &q)) {
		int spec;

		if (t.len == 3 && memcmp(t.ptr, "*/*", 3) == 0)
			spec = 0;
		else if (t.len == tlen + 2 && memcmp(t.ptr + tlen, "/*", 2) == 0 &&
			 http_prefix_nocase(t.ptr, type, tlen))
			spec = 1;
		else if (http_eq_nocase(t.ptr, t.len, type))
			spec = 2;
		else
			continue;
		if (spec > best) {	/* the first of equally specific ranges counts */
			best = spec;
			q_best = q;
		}
	}
	return q_best;
}

const char *http_reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 416: return "Range Not Satisfiable";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}
