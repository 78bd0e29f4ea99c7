/* response.h — the status line and header block of a response, and error page bodies. */
#ifndef KTLSD_RESPONSE_H
#define KTLSD_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct response_head {
	int status;
	const char *content_type;	/* NULL: no Content-Type */
	uint64_t content_length;
	bool keep_alive;
	bool accept_ranges;		/* "Accept-Ranges: bytes" (files) */
	const char *etag;		/* NULL: none */
	time_t last_modified;		/* 0: none */
	const char *location;		/* 301; NULL otherwise */
	size_t location_len;
	const char *location_suffix;	/* appended to location, e.g. "/" */
	const char *allow;		/* 405: "GET, HEAD" */
	const char *content_encoding;	/* "gzip" for a precompressed file; NULL: none */
	bool vary_encoding;		/* "Vary: Accept-Encoding" (gzip_static is on) */
	bool content_range;		/* 206: "bytes first-last/total"; 416: "bytes * /total" */
	uint64_t range_first, range_last, total;
};

/* Format h into buf[0..cap) ending with the empty line. Returns the length, or 0 if it
 * does not fit (the caller's buffer is sized for any head we make, so 0 is a bug). */
size_t response_format_head(char *buf, size_t cap, const struct response_head *h);

/* A small HTML body for an error status (nginx-like). Returns a static string. */
const char *response_error_body(int status);

/* The current time as an IMF-fixdate, cached per second (one strftime per second). */
const char *response_date_now(void);

#endif
