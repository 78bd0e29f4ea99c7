/* fuzz_range.c — libFuzzer harness for range_parse().
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc tests/fuzz/fuzz_range.c src/range.c
 *
 * Input: the file size as 8 bytes little-endian, then the Range header value. Each input is
 * parsed with max 1 and max FUZZ_MAX; abort() on any broken promise of range.h. */
#include "range.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX 16

static void fuzz_check(bool ok)
{
	if (!ok)
		abort();
}

static uint64_t fuzz_size(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Parse with the given max into an array with a canary after it. */
static enum range_result fuzz_one(const char *hdr, size_t len, uint64_t fsize, size_t max,
				  struct byte_range *out, size_t *n)
{
	enum range_result res;
	uint64_t total = 0;
	size_t i;

	memset(out, 0x5a, sizeof(*out) * (max + 1));
	*n = 999;
	res = range_parse(hdr, len, fsize, out, max, n);
	fuzz_check(out[max].first == UINT64_C(0x5a5a5a5a5a5a5a5a) &&
		   out[max].last == UINT64_C(0x5a5a5a5a5a5a5a5a));
	if (res != RANGE_OK) {
		fuzz_check(res == RANGE_IGNORE || res == RANGE_UNSATISFIABLE);
		fuzz_check(*n == 0);
		return res;
	}
	fuzz_check(*n >= 1 && *n <= max && fsize > 0);
	for (i = 0; i < *n; i++) {
		fuzz_check(out[i].first <= out[i].last && out[i].last < fsize);
		/* the sum of lengths never exceeds the file (and so never overflows) */
		fuzz_check(out[i].last - out[i].first < fsize - total);
		total += out[i].last - out[i].first + 1;
	}
	return res;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct byte_range out[FUZZ_MAX + 1], one[2];
	enum range_result res, res1;
	const char *hdr;
	size_t len, n, n1;
	uint64_t fsize;

	if (size < 8)
		return 0;
	fsize = fuzz_size(data);
	hdr = (const char *)data + 8;
	len = size - 8;
	res = fuzz_one(hdr, len, fsize, FUZZ_MAX, out, &n);
	res1 = fuzz_one(hdr, len, fsize, 1, one, &n1);
	/* a smaller max only ever turns a result into IGNORE, and keeps what it accepts */
	if (res1 != RANGE_IGNORE)
		fuzz_check(res1 == res && n1 == n && (res != RANGE_OK ||
			   (one[0].first == out[0].first && one[0].last == out[0].last)));
	/* an empty file never has a satisfiable range */
	if (fsize == 0)
		fuzz_check(res != RANGE_OK);
	return 0;
}
