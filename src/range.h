/* range.h — Range header parsing (RFC 9110 §14). Pure, no allocation, fuzzable. */
#ifndef KTLSD_RANGE_H
#define KTLSD_RANGE_H

#include <stddef.h>
#include <stdint.h>

/* One satisfiable byte range, inclusive at both ends, first <= last < file size. */
struct byte_range {
	uint64_t first;
	uint64_t last;
};

enum range_result {
	RANGE_IGNORE,		/* no usable Range (absent, not "bytes=", syntax error, too many
				 * ranges, or their total exceeds the file): serve 200 in full */
	RANGE_OK,		/* *n >= 1 satisfiable ranges in out[], in the order sent */
	RANGE_UNSATISFIABLE,	/* valid syntax but no range overlaps the file: 416 */
};

/* Parse the Range header value hdr[0..len) against a file of size bytes.
 * "bytes=a-b", "bytes=a-", "bytes=-n" and comma lists with optional whitespace are
 * understood; unit names compare case-insensitively. last is clamped to size-1, a
 * suffix range longer than the file means the whole file. Numbers of any length never
 * overflow: a first-byte-pos beyond 2^64-1 is unsatisfiable, a last-byte-pos beyond it
 * means to the end. Any range on an empty file is unsatisfiable. A range with last < first
 * makes the whole header invalid (RANGE_IGNORE).
 * At most max ranges are accepted; more, or a sum of range lengths above size (overlap
 * abuse, CVE-2011-3192) gives RANGE_IGNORE. out must hold max entries; n must not be NULL. */
enum range_result range_parse(const char *hdr, size_t len, uint64_t size,
			      struct byte_range *out, size_t max, size_t *n);

#endif
