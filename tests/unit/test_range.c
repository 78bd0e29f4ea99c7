/* test_range.c — unit tests for range_parse() (range.h). Each case is data: header and
 * file size in, result and ranges out. assert() aborts on the first failure. */
#undef NDEBUG
#include "range.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAXR 8		/* the max ranges passed in the table cases */
#define U64MAX UINT64_C(18446744073709551615)

struct range_case {
	const char *hdr;
	uint64_t size;
	enum range_result res;
	size_t n;			/* for RANGE_OK */
	struct byte_range r[MAXR];	/* for RANGE_OK */
};

static const struct range_case cases[] = {
	/* the basic forms */
	{ "bytes=0-8", 1000, RANGE_OK, 1, { { 0, 8 } } },
	{ "bytes=0-0", 1000, RANGE_OK, 1, { { 0, 0 } } },
	{ "bytes=999-999", 1000, RANGE_OK, 1, { { 999, 999 } } },
	{ "bytes=500-", 1000, RANGE_OK, 1, { { 500, 999 } } },
	{ "bytes=0-", 1000, RANGE_OK, 1, { { 0, 999 } } },
	{ "bytes=-1", 1000, RANGE_OK, 1, { { 999, 999 } } },
	{ "bytes=-500", 1000, RANGE_OK, 1, { { 500, 999 } } },
	{ "bytes=-1000", 1000, RANGE_OK, 1, { { 0, 999 } } },
	/* clamping (ROBUSTNESS.md 14-15) */
	{ "bytes=-5000", 1000, RANGE_OK, 1, { { 0, 999 } } },
	{ "bytes=990-1990", 1000, RANGE_OK, 1, { { 990, 999 } } },
	{ "bytes=0-999", 1000, RANGE_OK, 1, { { 0, 999 } } },
	{ "bytes=0-1000", 1000, RANGE_OK, 1, { { 0, 999 } } },
	/* unit and whitespace */
	{ "BYTES=0-1", 10, RANGE_OK, 1, { { 0, 1 } } },
	{ "Bytes=0-1", 10, RANGE_OK, 1, { { 0, 1 } } },
	{ " bytes=0-1 ", 10, RANGE_OK, 1, { { 0, 1 } } },
	{ "bytes=0-1 , 3-4", 10, RANGE_OK, 2, { { 0, 1 }, { 3, 4 } } },
	{ "bytes=0-1,\t3-4", 10, RANGE_OK, 2, { { 0, 1 }, { 3, 4 } } },
	{ "bytes= 0-1", 10, RANGE_OK, 1, { { 0, 1 } } },
	{ "bytes =0-1", 10, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes 0-1", 10, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=0 -1", 10, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=0- 1", 10, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=- 1", 10, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=0-1 2-3", 10, RANGE_IGNORE, 0, { { 0, 0 } } },
	/* empty list elements are allowed (RFC 9110 §5.6.1) */
	{ "bytes=0-1,,2-3", 10, RANGE_OK, 2, { { 0, 1 }, { 2, 3 } } },
	{ "bytes=,0-1", 10, RANGE_OK, 1, { { 0, 1 } } },
	{ "bytes=0-1,", 10, RANGE_OK, 1, { { 0, 1 } } },
	{ "bytes=, ,0-1, ,", 10, RANGE_OK, 1, { { 0, 1 } } },
	{ "bytes=", 10, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=,", 10, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes= , ", 10, RANGE_IGNORE, 0, { { 0, 0 } } },
	/* invalid: ignored, serve 200 (ROBUSTNESS.md 17) */
	{ "", 10, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=alpha", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=10-5", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "items=0-1", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "byte=0-1", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytesx=0-1", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=-", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=5", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=1-2-3", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=--1", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=+1-2", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=0x10-0x20", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=1-2;3-4", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=0-1,alpha", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=0-1,10-5", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	/* a syntax error after an unsatisfiable range still means "ignore" */
	{ "bytes=5000-,x", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	/* unsatisfiable: 416 (ROBUSTNESS.md 16) */
	{ "bytes=100000-", 1000, RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	{ "bytes=1000-", 1000, RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	{ "bytes=1000-2000", 1000, RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	{ "bytes=5-", 5, RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	{ "bytes=-0", 1000, RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	{ "bytes=-000", 1000, RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	{ "bytes=0-0", 0, RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	{ "bytes=0-", 0, RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	{ "bytes=-1", 0, RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	{ "bytes=-0", 0, RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	{ "bytes=0-18446744073709551615", 0, RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	{ "bytes=1000-,2000-3000", 1000, RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	/* but syntax is still checked on an empty file */
	{ "bytes=alpha", 0, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=5-1", 0, RANGE_IGNORE, 0, { { 0, 0 } } },
	/* unsatisfiable ones are dropped from a list */
	{ "bytes=0-1,5000-6000", 1000, RANGE_OK, 1, { { 0, 1 } } },
	{ "bytes=5000-,-0,10-20", 1000, RANGE_OK, 1, { { 10, 20 } } },
	/* overflow (ROBUSTNESS.md 18) */
	{ "bytes=0-18446744073709551615", 1000, RANGE_OK, 1, { { 0, 999 } } },
	{ "bytes=0-18446744073709551616", 1000, RANGE_OK, 1, { { 0, 999 } } },
	{ "bytes=0-1234567890123456789012345", 1000, RANGE_OK, 1, { { 0, 999 } } },
	{ "bytes=18446744073709551615-", 1000, RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	{ "bytes=18446744073709551616-", 1000, RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	{ "bytes=1234567890123456789012345-", 1000, RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	{ "bytes=1234567890123456789012345-1234567890123456789012346", 1000,
	  RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	{ "bytes=-18446744073709551615", 1000, RANGE_OK, 1, { { 0, 999 } } },
	{ "bytes=-18446744073709551616", 1000, RANGE_OK, 1, { { 0, 999 } } },
	{ "bytes=-1234567890123456789012345", 1000, RANGE_OK, 1, { { 0, 999 } } },
	/* last < first is caught even where both saturate */
	{ "bytes=1234567890123456789012346-1234567890123456789012345", 1000,
	  RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=18446744073709551617-18446744073709551616", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=18446744073709551616-18446744073709551616", 1000,
	  RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	/* leading zeros do not fool the exact comparison */
	{ "bytes=0000000000000000000000000005-6", 10, RANGE_OK, 1, { { 5, 6 } } },
	{ "bytes=5-0000000000000000000000000004", 10, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=00-00", 10, RANGE_OK, 1, { { 0, 0 } } },
	/* huge files */
	{ "bytes=0-", U64MAX, RANGE_OK, 1, { { 0, U64MAX - 1 } } },
	{ "bytes=-1", U64MAX, RANGE_OK, 1, { { U64MAX - 1, U64MAX - 1 } } },
	{ "bytes=18446744073709551614-", U64MAX, RANGE_OK, 1,
	  { { U64MAX - 1, U64MAX - 1 } } },
	{ "bytes=18446744073709551615-", U64MAX, RANGE_UNSATISFIABLE, 0, { { 0, 0 } } },
	{ "bytes=-18446744073709551615", U64MAX, RANGE_OK, 1, { { 0, U64MAX - 1 } } },
	{ "bytes=4294967296-4294967299", UINT64_C(5368709120), RANGE_OK, 1,
	  { { UINT64_C(4294967296), UINT64_C(4294967299) } } },
	/* several ranges, in the order sent, overlap allowed while the sum fits */
	{ "bytes=0-1,3-4,7-", 10, RANGE_OK, 3, { { 0, 1 }, { 3, 4 }, { 7, 9 } } },
	{ "bytes=7-,0-1", 10, RANGE_OK, 2, { { 7, 9 }, { 0, 1 } } },
	{ "bytes=0-4,0-4", 10, RANGE_OK, 2, { { 0, 4 }, { 0, 4 } } },
	{ "bytes=-5,0-4", 10, RANGE_OK, 2, { { 5, 9 }, { 0, 4 } } },
	{ "bytes=0-,0-", 10, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=0-4,0-5", 10, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=0-9,-1", 10, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0", 8, RANGE_OK, 8,
	  { { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 } } },
	/* many overlapping ranges (CVE-2011-3192) */
	{ "bytes=0-999,0-999", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=0-,1-,2-,3-,4-", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=0-600,100-700,200-800", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	/* more than max (MAXR) ranges, even small or unsatisfiable ones */
	{ "bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8", 1000, RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=9000-,9001-,9002-,9003-,9004-,9005-,9006-,9007-,9008-", 1000,
	  RANGE_IGNORE, 0, { { 0, 0 } } },
	{ "bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,,,", 1000, RANGE_OK, 8,
	  { { 0, 0 }, { 1, 1 }, { 2, 2 }, { 3, 3 }, { 4, 4 }, { 5, 5 }, { 6, 6 }, { 7, 7 } } },
};

static void run_case(size_t idx, const struct range_case *c)
{
	struct byte_range out[MAXR + 1];
	size_t n = 12345, i;
	enum range_result res;

	/* the extra slot must stay untouched: out holds only max entries */
	memset(out, 0xa5, sizeof(out));
	res = range_parse(c->hdr, strlen(c->hdr), c->size, out, MAXR, &n);
	if (res != c->res || (res == RANGE_OK && n != c->n) || (res != RANGE_OK && n != 0))
		fprintf(stderr, "case %zu \"%s\" size %llu: result %d n %zu, expected %d n %zu\n",
			idx, c->hdr, (unsigned long long)c->size, (int)res, n, (int)c->res, c->n);
	assert(res == c->res);
	if (res != RANGE_OK) {
		assert(n == 0);
		return;
	}
	assert(n == c->n);
	for (i = 0; i < n; i++) {
		if (out[i].first != c->r[i].first || out[i].last != c->r[i].last)
			fprintf(stderr, "case %zu \"%s\": range %zu is %llu-%llu\n", idx, c->hdr, i,
				(unsigned long long)out[i].first, (unsigned long long)out[i].last);
		assert(out[i].first == c->r[i].first && out[i].last == c->r[i].last);
		assert(out[i].first <= out[i].last && out[i].last < c->size);
	}
	assert(out[MAXR].first == UINT64_C(0xa5a5a5a5a5a5a5a5));
}

/* The length is what counts, not a NUL: parse a prefix of a longer buffer. */
static void test_length_bounded(void)
{
	const char buf[] = "bytes=0-1,2-3garbage";
	struct byte_range out[MAXR];
	size_t n;

	assert(range_parse(buf, 13, 10, out, MAXR, &n) == RANGE_OK);
	assert(n == 2 && out[1].first == 2 && out[1].last == 3);
	assert(range_parse(buf, 12, 10, out, MAXR, &n) == RANGE_OK);
	assert(n == 2 && out[1].first == 2 && out[1].last == 9);
	assert(range_parse(buf, 14, 10, out, MAXR, &n) == RANGE_IGNORE && n == 0);
	assert(range_parse(buf, 0, 10, out, MAXR, &n) == RANGE_IGNORE && n == 0);
	assert(range_parse(NULL, 0, 10, out, MAXR, &n) == RANGE_IGNORE && n == 0);
}

/* max limits the ranges accepted; max 0 accepts none; max 1 is "single range only". */
static void test_max(void)
{
	struct byte_range out[2];
	size_t n;

	assert(range_parse("bytes=0-1", 9, 10, out, 0, &n) == RANGE_IGNORE && n == 0);
	assert(range_parse("bytes=0-1", 9, 10, out, 1, &n) == RANGE_OK && n == 1);
	assert(range_parse("bytes=0-1,3-4", 13, 10, out, 1, &n) == RANGE_IGNORE && n == 0);
	assert(range_parse("bytes=0-1,3-4", 13, 10, out, 2, &n) == RANGE_OK && n == 2);
}

/* Thousands of ranges: bounded work, nothing written past out[max - 1]. */
static void test_many(void)
{
	static char buf[40000];
	struct byte_range out[4];
	size_t len = 6, n, i;

	memcpy(buf, "bytes=", 6);
	for (i = 0; i < 5000; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s0-0", i ? "," : "");
	assert(range_parse(buf, len, 1000, out, 3, &n) == RANGE_IGNORE && n == 0);
	assert(range_parse(buf, len, 1000, out, 4, &n) == RANGE_IGNORE && n == 0);
	/* one long digit string */
	memcpy(buf, "bytes=0-", 8);
	memset(buf + 8, '9', 30000);
	assert(range_parse(buf, 30008, 1000, out, 4, &n) == RANGE_OK);
	assert(n == 1 && out[0].first == 0 && out[0].last == 999);
}

int main(void)
{
	size_t i, ncases = sizeof(cases) / sizeof(cases[0]);

	for (i = 0; i < ncases; i++)
		run_case(i, &cases[i]);
	test_length_bounded();
	test_max();
	test_many();
	printf("test_range: %zu table cases and 3 scenario tests passed\n", ncases);
	return 0;
}
