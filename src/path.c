/* path.c — percent-decode and normalise a request path (see path.h).
 *
 * The path is walked from right to left, one segment at a time: a ".." raises a
 * count of segments still to drop, a normal segment either lowers it or is kept.
 * Going this way round means a kept segment is final the moment it is seen, so
 * it can be written straight into the output (from the end of the buffer
 * backwards) and PATH_TOO_LONG means exactly "the normalised path does not fit",
 * with no temporary copy of segments that a later ".." removes.  A count still
 * left over at the leftmost segment is the same thing as a ".." that climbs
 * above the root when walking left to right.
 *
 * Raw '/' never comes from an escape (encoded '/' is rejected) and an escape or a
 * UTF-8 sequence cannot contain a raw '/', so every segment can be decoded and
 * validated on its own.  Each raw byte is looked at a bounded number of times. */
#include "path.h"

#include <string.h>

/* Expected byte range of the next UTF-8 continuation byte, plus how many remain. */
struct path_utf8 {
	unsigned need;
	unsigned char lo, hi;
};

/* What one decoded segment is. */
struct path_seg {
	size_t len;	/* decoded length */
	unsigned dots;	/* 1 for ".", 2 for "..", 0 otherwise */
};

static int path_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Feed one decoded byte to the UTF-8 validator (Unicode table 3-7: no overlong
 * forms, no surrogates, nothing above U+10FFFF).  Returns false if invalid. */
static bool path_utf8_step(struct path_utf8 *u, unsigned char b)
{
	if (u->need > 0) {
		if (b < u->lo || b > u->hi)
			return false;
		u->need--;
		u->lo = 0x80;
		u->hi = 0xbf;
		return true;
	}
	u->lo = 0x80;
	u->hi = 0xbf;
	if (b < 0x80)
		u->need = 0;
	else if (b >= 0xc2 && b <= 0xdf)
		u->need = 1;
	else if (b == 0xe0) {
		u->need = 2;
		u->lo = 0xa0;	/* below is an overlong 3-byte form */
	} else if (b == 0xed) {
		u->need = 2;
		u->hi = 0x9f;	/* above are the surrogates U+D800..U+DFFF */
	} else if (b >= 0xe1 && b <= 0xef)
		u->need = 2;
	else if (b == 0xf0) {
		u->need = 3;
		u->lo = 0x90;	/* below is an overlong 4-byte form */
	} else if (b >= 0xf1 && b <= 0xf3)
		u->need = 3;
	else if (b == 0xf4) {
		u->need = 3;
		u->hi = 0x8f;	/* above is beyond U+10FFFF */
	} else
		return false;	/* stray continuation, 0xc0/0xc1 (overlong), 0xf5.. */
	return true;
}

/* Bytes no file name served by us may hold, whether raw or decoded: controls
 * (log and header injection, NUL truncation) and '\\' (a separator elsewhere). */
static bool path_byte_forbidden(unsigned char b)
{
	return b < 0x20 || b == 0x7f || b == '\\';
}

/* Decode and validate the segment raw[0..n), which holds no raw '/'.  If dst is
 * not NULL, the decoded bytes go there (the caller has checked they fit).
 * Returns false for anything path.h calls PATH_BAD within a segment. */
static bool path_seg_decode(const char *raw, size_t n, char *dst, struct path_seg *seg)
{
	struct path_utf8 u = { 0, 0x80, 0xbf };
	size_t i = 0, o = 0;
	unsigned dots = 0;

	while (i < n) {
		unsigned char b = (unsigned char)raw[i];

		if (b == '%') {
			int hi, lo;

			if (n - i < 3)
				return false;
			hi = path_hexval((unsigned char)raw[i + 1]);
			lo = path_hexval((unsigned char)raw[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			b = (unsigned char)(hi << 4 | lo);
			/* An encoded '/' would hide a separator from this normalisation
			 * but not from the file system. */
			if (b == '/')
				return false;
			i += 3;
		} else {
			i++;
		}
		if (path_byte_forbidden(b) || !path_utf8_step(&u, b))
			return false;
		/* Dots count on the decoded bytes: "%2e%2e" is ".." too. */
		if (b == '.' && o == dots)
			dots++;
		if (dst)
			dst[o] = (char)b;
		o++;
	}
	if (u.need > 0)
		return false;	/* truncated UTF-8 sequence */
	seg->len = o;
	seg->dots = (o == dots && o <= 2) ? (unsigned)o : 0;
	return true;
}

enum path_result path_normalize(const char *raw, size_t len, char *out, size_t outsz,
				bool *trailing_slash)
{
	size_t end = len, pos, skip = 0;
	bool last = true, wrote = false, too_long = false, slash = false;

	if (!raw || len == 0 || raw[0] != '/')
		return PATH_BAD;
	if (!out || outsz < 2)
		return PATH_TOO_LONG;
	/* Kept segments go to out[pos..outsz-1), leaving room for the NUL. */
	pos = outsz - 1;
	while (end > 0) {
		size_t start = end;
		struct path_seg seg;

		while (raw[start - 1] != '/')	/* stops at raw[0] == '/' at the latest */
			start--;
		if (!path_seg_decode(raw + start, end - start, NULL, &seg))
			return PATH_BAD;
		if (last) {
			/* "/a/", "/a/." and "/a/b/.." all name a directory */
			slash = seg.len == 0 || seg.dots > 0;
			last = false;
		}
		if (seg.len == 0 || seg.dots == 1) {
			/* "//" and "/./" add nothing */
		} else if (seg.dots == 2) {
			skip++;
		} else if (skip > 0) {
			skip--;
		} else if (!too_long) {
			/* Once too long, keep going: a PATH_BAD further left wins. */
			size_t need = seg.len + (wrote ? 1 : 0);

			if (need > pos) {
				too_long = true;
			} else {
				if (wrote)
					out[--pos] = '/';
				pos -= seg.len;
				path_seg_decode(raw + start, end - start, out + pos, &seg);
				wrote = true;
			}
		}
		end = start - 1;
	}
	if (skip > 0)
		return PATH_BAD;	/* ".." above the root */
	if (too_long)
		return PATH_TOO_LONG;
	if (wrote) {
		size_t n = outsz - 1 - pos;

		memmove(out, out + pos, n);
		out[n] = '\0';
	} else {
		out[0] = '.';
		out[1] = '\0';
	}
	if (trailing_slash)
		*trailing_slash = slash;
	return PATH_OK;
}
