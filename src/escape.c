/* escape.c — see escape.h.
 *
 * Each function walks the input once and hands runs of bytes that need no escaping to
 * evbuffer_add() in one piece: a listing escapes every name three ways, and most names
 * are plain. */
#include "autoconf.h"
#include "escape.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#define REPLACEMENT_UTF8 "\xef\xbf\xbd"	/* U+FFFD */

size_t escape_utf8_len(const unsigned char *s, size_t len)
{
	unsigned char lo = 0x80, hi = 0xbf;	/* range of the second byte */
	size_t need;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 1;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 2;
		if (s[0] == 0xe0)
			lo = 0xa0;	/* below: an overlong 3-byte form */
		else if (s[0] == 0xed)
			hi = 0x9f;	/* above: the surrogates U+D800..U+DFFF */
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 3;
		if (s[0] == 0xf0)
			lo = 0x90;	/* below: an overlong 4-byte form */
		else if (s[0] == 0xf4)
			hi = 0x8f;	/* above: beyond U+10FFFF */
	} else {
		return 0;	/* a continuation byte, 0xc0/0xc1 (overlong), 0xf5 and up */
	}
	if (len <= need || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i <= need; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return need + 1;
}

/* Append s[from..to), the run of bytes before an escape, if there is one. */
static int put_run(struct evbuffer *out, const char *s, size_t from, size_t to)
{
	return to > from ? evbuffer_add(out, s + from, to - from) : 0;
}

/* How many bytes at s[i..len) pass through unchanged as (part of) well-formed
 * UTF-8 text: 0 if s[i] is not the start of one. */
static size_t text_len(const char *s, size_t i, size_t len)
{
	unsigned char b = (unsigned char)s[i];

	if (b < 0x20 || b == 0x7f)
		return 0;
	return escape_utf8_len((const unsigned char *)s + i, len - i);
}

int escape_html(struct evbuffer *out, const char *s, size_t len)
{
	size_t i = 0, run = 0;

	while (i < len) {
		const char *rep;
		size_t n = 1;

		switch (s[i]) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default:
			n = text_len(s, i, len);
			rep = n == 0 ? REPLACEMENT_UTF8 : NULL;
			break;
		}
		if (rep == NULL) {
			i += n;
			continue;
		}
		if (put_run(out, s, run, i) == -1 || evbuffer_add(out, rep, strlen(rep)) == -1)
			return -1;
		i++;
		run = i;
	}
	return put_run(out, s, run, len);
}

static bool unreserved(unsigned char b)
{
	return (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') ||
	       b == '-' || b == '.' || b == '_' || b == '~';
}

int escape_uri_segment(struct evbuffer *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t run = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char b = (unsigned char)s[i];
		char pct[3] = { '%', hex[b >> 4], hex[b & 15] };

		if (unreserved(b))
			continue;
		if (put_run(out, s, run, i) == -1 || evbuffer_add(out, pct, sizeof(pct)) == -1)
			return -1;
		run = i + 1;
	}
	return put_run(out, s, run, len);
}

size_t escape_uri_segment_len(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += unreserved((unsigned char)s[i]) ? 1 : 3;
	return n;
}

int escape_json(struct evbuffer *out, const char *s, size_t len)
{
	size_t i = 0, run = 0;

	while (i < len) {
		unsigned char b = (unsigned char)s[i];
		char rep[8];
		size_t n = 1;

		if (b == '"' || b == '\\') {
			rep[0] = '\\';
			rep[1] = (char)b;
			rep[2] = '\0';
		} else if (b < 0x20 || b == 0x7f) {
			snprintf(rep, sizeof(rep), "\\u%04x", b);
		} else if ((n = text_len(s, i, len)) == 0) {
			strcpy(rep, "\\ufffd");
		} else {
			i += n;
			continue;
		}
		if (put_run(out, s, run, i) == -1 || evbuffer_add(out, rep, strlen(rep)) == -1)
			return -1;
		i++;
		run = i;
	}
	return put_run(out, s, run, len);
}
