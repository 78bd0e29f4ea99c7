/* escape.h — bytes made safe for where they go: HTML text, a URI path segment, a JSON
 * string.
 *
 * For directory listings (autoindex.c), whose names are whatever the file system holds.
 * Every function is total: any bytes in (NUL, control bytes, invalid UTF-8 included),
 * well-formed output out, so a hostile name can neither leave its context (an attribute,
 * a link, a string) nor make the document invalid. Each appends to an evbuffer and
 * returns 0, or -1 when libevent is out of memory (the buffer then holds a prefix). */
#ifndef KTLSD_ESCAPE_H
#define KTLSD_ESCAPE_H

#include <stddef.h>

struct evbuffer;

/* Length (1 to 4) of the well-formed UTF-8 sequence that starts s[0..len), or 0 if none
 * does (Unicode table 3-7: no overlong form, no surrogate, nothing above U+10FFFF; a
 * sequence cut short by len is not well-formed). len must be > 0. */
size_t escape_utf8_len(const unsigned char *s, size_t len);

/* s[0..len) as HTML text, also right inside a quoted attribute value: & < > " ' become
 * &amp; &lt; &gt; &quot; &#39;. Well-formed UTF-8 passes through; every other byte of
 * 0x80 and above, and every C0 control byte and DEL, becomes U+FFFD (the page is
 * UTF-8, which a stray byte would break; HTML forbids those controls). */
int escape_html(struct evbuffer *out, const char *s, size_t len);

/* s[0..len) percent-encoded as one URI path segment (RFC 3986 §2): every byte but the
 * unreserved A-Z a-z 0-9 - . _ ~ becomes %XX (upper-case hex), so '/', '?', '#', '%',
 * ':', ';', '\\' and every non-ASCII byte stay part of the name, the link names exactly
 * these bytes, and the result needs no more escaping inside an HTML attribute. */
int escape_uri_segment(struct evbuffer *out, const char *s, size_t len);

/* How many bytes escape_uri_segment() appends for s[0..len). */
size_t escape_uri_segment_len(const char *s, size_t len);

/* s[0..len) as the inside of a JSON string (RFC 8259 §7), without the quotes: '"' and
 * '\\' get a backslash, control bytes and DEL become \u00XX (lower-case hex).
 * Well-formed UTF-8 passes through; every other byte of 0x80 and above becomes \ufffd
 * (JSON text must be Unicode). */
int escape_json(struct evbuffer *out, const char *s, size_t len);

#endif
