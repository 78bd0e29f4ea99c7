/* fuzz_http.c — libFuzzer harness for the request head parser and header helpers.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc tests/fuzz/fuzz_http.c src/http.c
 *
 * The input is fed, as is, to http_parse_request (with small and with normal limits),
 * http_date_parse, http_etag_match_any, http_accepts_gzip and http_accept_quality. Besides the sanitizers, the contract is checked
 * and abort() is called on any violation: slices inside the head, the status set, and that
 * parsing is monotonic (one byte fewer never turns an error into "incomplete" or OK, and an
 * OK head does not depend on what follows it). */
#include "http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct http_limits fuzz_small = { 32, 128, 4 };
static const struct http_limits fuzz_normal = { 8192, 16384, 100 };

static void fuzz_check(bool ok)
{
	if (!ok)
		abort();
}

/* An absent slice, one inside buf[0..head_len), or the static "/" of a path. */
static void fuzz_slice(struct http_str s, const char *buf, size_t head_len)
{
	if (s.ptr == NULL)
		return;
	if (s.len == 1 && s.ptr[0] == '/' && (s.ptr < buf || s.ptr >= buf + head_len))
		return;
	fuzz_check(s.ptr >= buf && s.len <= head_len && s.ptr - buf <= (ptrdiff_t)(head_len - s.len));
}

static void fuzz_request_ok(const struct http_request *r, const char *buf, size_t len)
{
	fuzz_check(r->head_len >= 2 && r->head_len <= len);
	fuzz_check(buf[r->head_len - 1] == '\n');
	fuzz_check(r->method <= HTTP_METHOD_OTHER);
	fuzz_check(r->version_minor == 0 || r->version_minor == 1);
	fuzz_check(r->path.ptr != NULL && r->path.len >= 1 && r->path.ptr[0] == '/');
	fuzz_check(r->method_name.ptr == buf || r->method_name.ptr == buf + 1 ||
		   r->method_name.ptr == buf + 2);
	fuzz_check(r->target.ptr != NULL && r->method_name.len > 0 && r->target.len > 0);
	fuzz_check(r->version_minor == 0 || (r->host.ptr != NULL && r->host.len > 0));
	fuzz_check(r->content_length <= INT64_MAX);
	fuzz_check(r->content_length == 0 || r->has_body);
	fuzz_slice(r->method_name, buf, r->head_len);
	fuzz_slice(r->target, buf, r->head_len);
	fuzz_slice(r->path, buf, r->head_len);
	fuzz_slice(r->query, buf, r->head_len);
	fuzz_slice(r->host, buf, r->head_len);
	fuzz_slice(r->if_none_match, buf, r->head_len);
	fuzz_slice(r->if_modified_since, buf, r->head_len);
	fuzz_slice(r->range, buf, r->head_len);
	fuzz_slice(r->if_range, buf, r->head_len);
}

static void fuzz_parse(const char *buf, size_t len, const struct http_limits *lim)
{
	struct http_request req, shorter;
	enum http_parse_result res, res2;
	int status = -1, status2 = -1;

	res = http_parse_request(buf, len, lim, &req, &status);
	switch (res) {
	case HTTP_PARSE_OK:
		fuzz_check(status == 0);
		fuzz_request_ok(&req, buf, len);
		fuzz_check(req.head_len <= lim->max_header_bytes);
		/* the head alone parses the same */
		res2 = http_parse_request(buf, req.head_len, lim, &shorter, &status2);
		fuzz_check(res2 == HTTP_PARSE_OK && shorter.head_len == req.head_len);
		break;
	case HTTP_PARSE_INCOMPLETE:
		fuzz_check(status == 0);
		break;
	case HTTP_PARSE_ERROR:
		fuzz_check(status == 400 || status == 414 || status == 431 || status == 501 ||
			   status == 505);
		break;
	default:
		fuzz_check(false);
	}
	if (len == 0)
		return;
	/* one byte fewer: an error stays an error, an OK stays OK or becomes incomplete */
	res2 = http_parse_request(buf, len - 1, lim, &shorter, &status2);
	if (res2 == HTTP_PARSE_ERROR)
		fuzz_check(res == HTTP_PARSE_ERROR);
	if (res2 == HTTP_PARSE_OK)
		fuzz_check(res == HTTP_PARSE_OK && req.head_len == shorter.head_len);
	if (res == HTTP_PARSE_INCOMPLETE)
		fuzz_check(res2 == HTTP_PARSE_INCOMPLETE);
}

static void fuzz_date(const char *buf, size_t len)
{
	char out[30];
	time_t t, back;

	if (http_date_parse(buf, len, &t) != 0)
		return;
	fuzz_check(len == 24 || len == 29 || (len >= 30 && len <= 33));
	/* what was parsed formats into a date that parses back to it */
	if (t >= 0 && t <= (time_t)253402300799LL) {
		http_date_format(t, out);
		fuzz_check(strlen(out) == 29);
		fuzz_check(http_date_parse(out, 29, &back) == 0 && back == t);
	}
}

/* Is buf[0..len) one strong entity-tag, '"' *etagc '"'? (An independent restatement.) */
static bool fuzz_is_etag(const char *buf, size_t len)
{
	size_t i;

	if (len < 2 || buf[0] != '"' || buf[len - 1] != '"')
		return false;
	for (i = 1; i + 1 < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (!(c == 0x21 || (c >= 0x23 && c != 0x7f)))
			return false;
	}
	return true;
}

static void fuzz_etag(const char *buf, size_t len)
{
	char self[66];
	bool strong = http_etag_match_any(buf, len, "\"x\"");

	/* weak comparison: the weakness of the etag argument does not matter */
	fuzz_check(strong == http_etag_match_any(buf, len, "W/\"x\""));
	(void)http_etag_match_any(buf, len, "\"a,b\"");
	/* a value that is one entity-tag matches itself, weak or strong */
	if (len <= 63 && fuzz_is_etag(buf, len)) {
		memcpy(self, buf, len);
		self[len] = '\0';
		fuzz_check(http_etag_match_any(buf, len, self));
		memcpy(self, "W/", 2);
		memcpy(self + 2, buf, len);
		self[len + 2] = '\0';
		fuzz_check(http_etag_match_any(self, len + 2, self + 2));
		fuzz_check(http_etag_match_any(buf, len, self));
	}
}

/* Accept-Encoding: never reads past len; adding ", gzip" to a value that does not name
 * gzip (no "gzip" substring, no ';' that could leave the new element inside a broken
 * parameter list) makes it accept gzip. */
static void fuzz_accept_encoding(const char *buf, size_t len)
{
	char more[200];

	(void)http_accepts_gzip(buf, len);
	fuzz_check(http_accept_quality(buf, len, "application/json") <= 1000);
	fuzz_check(http_accept_quality(buf, len, "text/html") <= 1000);
	if (len > 150 || memchr(buf, ';', len) != NULL)
		return;
	for (size_t i = 0; i < len; i++)
		if (buf[i] == 'g' || buf[i] == 'G')
			return;
	memcpy(more, buf, len);
	memcpy(more + len, ", gzip", 6);
	fuzz_check(http_accepts_gzip(more, len + 6));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;

	fuzz_parse(buf, size, &fuzz_small);
	fuzz_parse(buf, size, &fuzz_normal);
	fuzz_date(buf, size);
	fuzz_etag(buf, size);
	fuzz_accept_encoding(buf, size);
	(void)http_reason((int)size);
	return 0;
}
