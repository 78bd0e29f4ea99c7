/* response.c — see response.h. */
#include "autoconf.h"
#include "response.h"
#include "http.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *response_date_now(void)
{
	static char buf[32];
	static time_t cached = -1;
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
	if (h->vary_encoding)
		put(&o, "Vary: Accept-Encoding\r\n");
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

const char *response_error_body(int status)
{
	/* one static page per status, built on first use */
	static char pages[600][160];
	char *p;

	if (status < 100 || status >= 600)
		status = 500;
	p = pages[status];
	if (p[0] == '\0')
		snprintf(p, sizeof(pages[0]),
			 "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
			 "<center><h1>%d %s</h1></center>\r\n<hr><center>ktlsd</center>\r\n</body>\r\n</html>\r\n",
			 status, http_reason(status), status, http_reason(status));
	return p;
}
