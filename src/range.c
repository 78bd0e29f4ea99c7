/* range.c — Range header parsing (see range.h).
 *
 * One forward pass over the header: each range-spec is parsed, resolved against the file
 * size and, if satisfiable, appended to out[]. Numbers are never converted in a way that
 * can overflow: a value is kept both saturated at UINT64_MAX (enough to resolve it, since
 * no offset in a file reaches UINT64_MAX) and as its significant digits (to compare two
 * numbers of any length exactly, for the last < first check).
 */
#include "range.h"

#include <stdbool.h>
#include <string.h>

/* A decimal number as sent. */
struct range_num {
	bool present;
	const char *digits;	/* significant digits, leading zeros skipped */
	size_t ndigits;		/* 0 for the number zero */
	uint64_t value;		/* saturated at UINT64_MAX */
};

/* A syntactically valid range-spec: "a-b", "a-" (no last) or "-n" (no first). */
struct range_spec {
	struct range_num first;
	struct range_num last;
};

static bool range_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static size_t range_skip_ows(const char *s, size_t len, size_t i)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i;
}

/* 1*DIGIT at s[*i..len) into *num (present = false if there is no digit). */
static void range_number(const char *s, size_t len, size_t *i, struct range_num *num)
{
	size_t j = *i;

	memset(num, 0, sizeof(*num));
	while (j < len && s[j] == '0')
		j++;
	num->digits = s + j;
	for (; j < len && range_is_digit(s[j]); j++) {
		unsigned d = (unsigned)(s[j] - '0');

		num->ndigits++;
		num->value = num->value > (UINT64_MAX - d) / 10 ? UINT64_MAX : num->value * 10 + d;
	}
	num->present = j > *i;
	*i = j;
}

/* Exact comparison of two numbers of any length: <0, 0, >0. */
static int range_num_cmp(const struct range_num *a, const struct range_num *b)
{
	if (a->ndigits != b->ndigits)
		return a->ndigits < b->ndigits ? -1 : 1;
	return memcmp(a->digits, b->digits, a->ndigits);
}

/* range-spec = first "-" [ last ] / "-" suffix-length at s[*i..len). False on a syntax
 * error, including last < first (RFC 9110 §14.1.1: invalid). */
static bool range_spec_parse(const char *s, size_t len, size_t *i, struct range_spec *sp)
{
	range_number(s, len, i, &sp->first);
	if (*i == len || s[*i] != '-')
		return false;
	(*i)++;
	range_number(s, len, i, &sp->last);
	if (!sp->first.present && !sp->last.present)
		return false;
	return !(sp->first.present && sp->last.present &&
		 range_num_cmp(&sp->last, &sp->first) < 0);
}

/* Resolve a valid spec against size: true and *br set if it is satisfiable. */
static bool range_resolve(const struct range_spec *sp, uint64_t size, struct byte_range *br)
{
	if (size == 0)
		return false;
	if (!sp->first.present) {
		/* suffix: the last n bytes; "-0" selects nothing */
		if (sp->last.value == 0)
			return false;
		br->first = sp->last.value >= size ? 0 : size - sp->last.value;
		br->last = size - 1;
		return true;
	}
	/* a first beyond UINT64_MAX is saturated to it, which is >= any size too */
	if (sp->first.value >= size)
		return false;
	br->first = sp->first.value;
	br->last = sp->last.present && sp->last.value < size - 1 ? sp->last.value : size - 1;
	return true;
}

/* "bytes=", the unit case-insensitively, no whitespace around '=' (RFC 9110 §14.2). */
static bool range_unit(const char *s, size_t len, size_t *i)
{
	static const char unit[] = "bytes=";
	size_t k;

	if (len - *i < sizeof(unit) - 1)
		return false;
	for (k = 0; k < sizeof(unit) - 1; k++) {
		char c = s[*i + k];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != unit[k])
			return false;
	}
	*i += sizeof(unit) - 1;
	return true;
}

enum range_result range_parse(const char *hdr, size_t len, uint64_t size,
			      struct byte_range *out, size_t max, size_t *n)
{
	struct range_spec sp;
	struct byte_range br;
	uint64_t total = 0;	/* sum of the satisfiable lengths, never above size */
	size_t i, specs = 0, nout = 0;

	*n = 0;
	if (hdr == NULL)
		return RANGE_IGNORE;
	i = range_skip_ows(hdr, len, 0);
	if (!range_unit(hdr, len, &i))
		return RANGE_IGNORE;
	/* range-set = 1#range-spec: empty elements and OWS around commas are allowed */
	for (;;) {
		i = range_skip_ows(hdr, len, i);
		if (i == len)
			break;
		if (hdr[i] == ',') {
			i++;
			continue;
		}
		if (!range_spec_parse(hdr, len, &i, &sp) || ++specs > max)
			return RANGE_IGNORE;
		if (range_resolve(&sp, size, &br)) {
			/* overlapping ranges summing past the file: CVE-2011-3192 */
			if (br.last - br.first + 1 > size - total)
				return RANGE_IGNORE;
			total += br.last - br.first + 1;
			out[nout++] = br;
		}
		i = range_skip_ows(hdr, len, i);
		if (i < len && hdr[i++] != ',')
			return RANGE_IGNORE;
	}
	if (specs == 0)
		return RANGE_IGNORE;
	if (nout == 0)
		return RANGE_UNSATISFIABLE;
	*n = nout;
	return RANGE_OK;
}
