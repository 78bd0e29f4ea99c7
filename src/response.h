/* response.h — a response: what a request is answered with (response_plan(), pure), the
 * state of the response in flight (struct response), and the text of its head.
 *
 * Why one owner: a response head points into what it describes (the file's ETag, the
 * multipart Content-Type with its boundary). Everything such a pointer can reach lives
 * in struct response and is given back in one place, response_reset(), after the last
 * byte went out or the connection gave up — never while the head is still being built.
 */
#ifndef KTLSD_RESPONSE_H
#define KTLSD_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "file.h"
#include "http.h"
#include "range.h"

struct evbuffer;
struct file_ref;

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
	bool vary_accept;		/* "Vary: Accept" (a listing: HTML or JSON) */
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

/* ---- decisions (pure: no I/O, no allocation, no clock) ------------------------------ */

#define RESPONSE_MAX_RANGES 16	/* more ranges are answered with the whole file */

/* How a request for a file is answered. */
struct response_plan {
	int status;		/* 200, 206, 304 or 416 */
	bool head_only;		/* no body bytes follow the head: HEAD, or 304 */
	bool gzip;		/* the file is the precompressed twin: Content-Encoding gzip */
	uint64_t size;		/* the file's size (Content-Range's total) */
	uint64_t content_length;	/* 200, 206 single, 304 (0), 416 (0: its page is
					 * added when sent); multipart: see
					 * response_multipart_length() */
	size_t nranges;		/* 206: 1 → Content-Range; 2..RESPONSE_MAX_RANGES →
				 * multipart/byteranges; 0 otherwise */
	struct byte_range r[RESPONSE_MAX_RANGES];
};

/* Decide the answer to req for the file fi (gzipped: fi is the ".gz" twin that
 * response_wants_gzip() asked for), in the order RFC 9110 §13.2.2 evaluates:
 * If-None-Match (else If-Modified-Since) → 304, whatever the method; Range, if
 * If-Range (strong ETag or exact Last-Modified date) allows it → 206 with one range or
 * several (multipart), or 416 when none overlaps the file; invalid, too many or
 * overlap-abusing ranges are ignored → 200. HEAD gets GET's status and length. */
struct response_plan response_plan(const struct http_request *req, const struct file_info *fi,
				   bool gzipped);

/* Is the client's copy current: does req's If-None-Match match etag (weak comparison),
 * or, without If-None-Match, is mtime no later than If-Modified-Since (RFC 9110 §13.2.2)?
 * response_plan()'s 304 decision, for representations that are no file (listings). */
bool response_not_modified(const struct http_request *req, const char *etag, time_t mtime);

/* Should the precompressed "rel.gz" be tried for req (gzip_static on, a file rather
 * than a directory, and the client accepts gzip)? rel and slash: from path_normalize(). */
bool response_wants_gzip(const struct http_request *req, bool gzip_static, const char *rel,
			 bool slash);

/* Content-Length of the multipart/byteranges body of p (nranges >= 2), whose parts are
 * each labelled with Content-Type type. */
uint64_t response_multipart_length(const struct response_plan *p, const char *type);

/* ---- the response in flight ------------------------------------------------------- */

/* Output buffer: the head, multipart part headers and, for copying senders, body bytes. */
struct response_buf {
	char *buf;
	size_t cap, off, len;	/* pending bytes are buf[off..len) */
	bool sealed;		/* a write was attempted on it: no appending until drained
				 * (OpenSSL's retry rule for SSL_write) */
};

struct multipart;

struct response {
	int status;		/* 0: no response in flight */
	struct file_ref *file;	/* the file the head describes (body or not), NULL if none */
	int fd;			/* file->fi.fd while body bytes are due, else -1 */
	uint64_t off;		/* next file byte to hand to the kernel / read */
	uint64_t left;		/* file bytes of the current range not yet taken */
	struct multipart *mp;	/* several ranges: the parts still to send */
	struct evbuffer *body;	/* a generated body (listing): bytes not yet in out */
	struct response_buf out;
	size_t head_left;	/* head bytes still in out (accounting) */
	uint64_t body_total;	/* body bytes this response should carry (Content-Length) */
	uint64_t head_bytes, body_bytes;	/* taken by the kernel or OpenSSL so far */
};

/* An empty response (no allocation). */
void response_init(struct response *r);

/* Give back everything the response holds — the file reference, the multipart state —
 * and forget its bytes; the buffer is kept for the next response. The one place where a
 * response's file is released. */
void response_reset(struct response *r);

/* response_reset(), and free the buffer too (idle keep-alive connection, close). */
void response_fini(struct response *r);

/* Grow the buffer to at least cap bytes, keeping its contents. False when out of memory
 * (the buffer is unchanged and still usable). */
bool response_reserve(struct response *r, size_t cap);

enum response_start_result {
	RESPONSE_STARTED,
	RESPONSE_NO_MEMORY,	/* logged by the caller; nothing to send */
	RESPONSE_HEAD_TOO_BIG,	/* a bug: the buffer is sized for any head we make */
};

/* Start a response without a file: head h (its pointers are used only during this
 * call), then body[0..blen) unless head_only. r must be reset. */
enum response_start_result response_start(struct response *r, const struct response_head *h,
					  bool head_only, const char *body, size_t blen);

/* A generated body goes through the out buffer in pieces of at most this many bytes. */
#define RESPONSE_BODY_PIECE 65536

/* Start a response with a generated body (a directory listing): head h, then body's
 * bytes unless head_only; h->content_length must be their number. body belongs to r from
 * this call on, whatever the result: freed at once when none of it is to be sent, else
 * by response_reset(). Its bytes move into the out buffer a piece at a time
 * (RESPONSE_BODY_PIECE, the first right behind the head), so every sender sends it
 * (sendfile and splice too, like an error page) and the buffer stays that small, however
 * big the body. r must be reset. */
enum response_start_result response_start_body(struct response *r, const struct response_head *h,
					       bool head_only, struct evbuffer *body);

/* Are bytes of a generated body still waiting to go into the out buffer? */
bool response_has_body_left(const struct response *r);

/* Move the next piece of the generated body into the out buffer, which must be drained
 * (nothing pending, so not sealed). False if nothing could be moved (a bug or out of
 * memory inside libevent): the response cannot go on. */
bool response_next_body_piece(struct response *r);

/* What response_start_file() needs besides the plan. */
struct response_file_opts {
	const char *type;	/* the file's Content-Type (for multipart: each part's) */
	bool keep_alive;
	bool vary;		/* "Vary: Accept-Encoding" (gzip_static) */
	size_t copy;		/* room to keep behind the head for a copying sender's body
				 * bytes (0: sendfile/splice read the file themselves) */
};

/* Start the response plan p describes for the file fh. fh is the caller's reference and
 * belongs to r from this call on, whatever the result: r holds it until response_reset()
 * (the head names its ETag). Several ranges: the first part's header follows the head.
 * r must be reset. */
enum response_start_result response_start_file(struct response *r, const struct response_plan *p,
					       struct file_ref *fh,
					       const struct response_file_opts *o);

/* Several ranges: is a part (or the closing delimiter) still to be started? */
bool response_has_next_part(const struct response *r);

/* Append the next part's header (or the closing delimiter) to the buffer and point the
 * file range at that part; copy as in response_file_opts. False: out of memory. */
bool response_next_part(struct response *r, size_t copy);

#endif
