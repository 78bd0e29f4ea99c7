/* path.h — turn a request path into a safe relative path beneath the document root.
 *
 * This is the first line of defence; the second, kernel-enforced one is openat2()
 * with RESOLVE_BENEATH in file.c. Pure, no allocation, fuzzable. */
#ifndef KTLSD_PATH_H
#define KTLSD_PATH_H

#include <stdbool.h>
#include <stddef.h>

enum path_result {
	PATH_OK,
	PATH_BAD,	/* answer 400: bad escape, %00 or other control byte, encoded '/'
			 * (%2f), backslash, invalid or overlong UTF-8, ".." above the root,
			 * not starting with '/' */
	PATH_TOO_LONG,	/* normalised path does not fit the output buffer: answer 414
			 * (PATH_BAD wins if both apply) */
};

/* Percent-decode the path raw[0..len) (which starts with '/', query already removed), then
 * normalise it: "//" → "/", "." segments dropped, ".." pops a segment (popping above the
 * root is PATH_BAD). Decoding happens once only: "%252e" becomes the literal "%2e".
 * On PATH_OK, out holds the NUL-terminated path relative to the root without a leading
 * '/', "." for the root itself, never containing a "." or ".." segment or an empty
 * segment; *trailing_slash says whether the request path ended in '/' (after
 * normalisation: "/a/." and "/a/" both end in a slash). outsz must be >= 2. */
enum path_result path_normalize(const char *raw, size_t len, char *out, size_t outsz,
				bool *trailing_slash);

#endif
