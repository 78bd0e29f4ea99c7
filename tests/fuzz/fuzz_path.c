/* fuzz_path.c — libFuzzer harness for path_normalize().
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *	tests/fuzz/fuzz_path.c src/path.c -o fuzz_path
 *   ./fuzz_path -dict=tests/fuzz/path.dict corpus-copy/
 *
 * The input is the raw request path.  Besides the sanitizers, every result is
 * checked (abort() on violation) against:
 *   - the output invariants of path.h (no "." / ".." / empty segment, no leading
 *     or trailing '/', "." only for the root, no control byte, backslash or
 *     invalid UTF-8, strlen < outsz);
 *   - a deliberately naive reference that decodes first and then normalises
 *     left to right with a segment stack (path.c works right to left);
 *   - consistency across buffer sizes: a small buffer gives the same output or
 *     PATH_TOO_LONG, never a different verdict;
 *   - idempotence: the output, made absolute again, normalises to itself. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "path.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

/* Independent UTF-8 check: decode each code point, then judge it. */
static bool ref_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char b = s[i];
		size_t len = b < 0x80 ? 1 : (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3 :
			     (b & 0xf8) == 0xf0 ? 4 : 0;
		static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
		uint32_t cp;

		if (len == 0 || n - i < len)
			return false;
		cp = len == 1 ? b : (uint32_t)(b & (0x7f >> len));
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

static int ref_hex(unsigned char c)
{
	static const char digits[] = "0123456789abcdef0123456789ABCDEF";
	const char *p = c ? memchr(digits, c, sizeof(digits) - 1) : NULL;

	return p ? (int)(p - digits) % 16 : -1;
}

/* Reference normaliser; out has room for len + 2 bytes.  Returns PATH_OK or
 * PATH_BAD only: it is never short of space. */
static enum path_result ref_normalize(const uint8_t *raw, size_t len, char *out, bool *slash)
{
	unsigned char *dec = malloc(len + 1);
	size_t *segs = malloc((len + 1) * sizeof(*segs));	/* start of each kept segment */
	size_t n = 0, nsegs = 0, o = 0, i = 0;
	enum path_result r = PATH_BAD;

	CHECK(dec && segs);
	if (len == 0 || raw[0] != '/')
		goto out;
	/* 1. decode everything, raw '/' stays a separator */
	while (i < len) {
		unsigned char b = raw[i++];

		if (b == '%') {
			if (len - i < 2 || ref_hex(raw[i]) < 0 || ref_hex(raw[i + 1]) < 0)
				goto out;
			b = (unsigned char)(ref_hex(raw[i]) * 16 + ref_hex(raw[i + 1]));
			i += 2;
			if (b == '/')
				goto out;
		}
		if (b < 0x20 || b == 0x7f || b == '\\')
			goto out;
		dec[n++] = b;
	}
	if (!ref_utf8_valid(dec, n))
		goto out;
	/* 2. split on '/' and normalise with a stack */
	for (size_t s = 1, e; s <= n; s = e + 1) {
		for (e = s; e < n && dec[e] != '/'; e++)
			;
		size_t sl = e - s;
		bool dot = sl == 1 && dec[s] == '.', dotdot = sl == 2 && !memcmp(dec + s, "..", 2);

		if (e == n)
			*slash = sl == 0 || dot || dotdot;
		if (sl == 0 || dot)
			continue;
		if (dotdot) {
			if (nsegs == 0)
				goto out;
			o = segs[--nsegs];
			o = o > 0 ? o - 1 : 0;	/* drop the separator too */
			continue;
		}
		if (o > 0)
			out[o++] = '/';
		segs[nsegs++] = o;
		memcpy(out + o, dec + s, sl);
		o += sl;
	}
	if (o == 0)
		out[o++] = '.';
	out[o] = '\0';
	r = PATH_OK;
out:
	free(dec);
	free(segs);
	return r;
}

static void check_output(const char *out, size_t outsz)
{
	size_t n = strlen(out);

	CHECK(n > 0 && n < outsz);
	if (strcmp(out, ".") == 0)
		return;
	CHECK(out[0] != '/' && out[n - 1] != '/');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];

		CHECK(c >= 0x20 && c != 0x7f && c != '\\');
	}
	CHECK(ref_utf8_valid((const unsigned char *)out, n));
	for (const char *s = out;;) {
		const char *e = strchr(s, '/');
		size_t sl = e ? (size_t)(e - s) : strlen(s);

		CHECK(sl > 0);
		CHECK(!(sl == 1 && s[0] == '.'));
		CHECK(!(sl == 2 && s[0] == '.' && s[1] == '.'));
		if (!e)
			break;
		s = e + 1;
	}
}

/* Run path_normalize with an exactly sized heap buffer so ASan catches overruns. */
static enum path_result run(const uint8_t *data, size_t size, size_t outsz, char **outp,
			    bool *slash)
{
	char *out = malloc(outsz);
	enum path_result r;

	CHECK(out);
	r = path_normalize((const char *)data, size, out, outsz, slash);
	CHECK(r == PATH_OK || r == PATH_BAD || r == PATH_TOO_LONG);
	if (r == PATH_OK)
		check_output(out, outsz);
	*outp = out;
	return r;
}

/* "/" + out with every '%' escaped, so that decoding gives out back. */
static void check_idempotent(const char *out, bool slash)
{
	size_t n = strlen(out);
	char *abs = malloc(3 * n + 3), *again;
	size_t k = 0;
	bool slash2 = !slash;

	CHECK(abs);
	abs[k++] = '/';
	if (strcmp(out, ".") != 0) {
		for (size_t i = 0; i < n; i++) {
			if (out[i] == '%') {
				memcpy(abs + k, "%25", 3);
				k += 3;
			} else {
				abs[k++] = out[i];
			}
		}
		if (slash)
			abs[k++] = '/';
	}
	CHECK(run((const uint8_t *)abs, k, n + 2, &again, &slash2) == PATH_OK);
	CHECK(strcmp(again, out) == 0 && slash2 == slash);
	free(again);
	free(abs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The output is never longer than the input, except "." for "/". */
	size_t big = size + 2, small = 2 + (size ? data[size - 1] % 16 : 0);
	char *out, *out_small, *ref = malloc(size + 2);
	bool slash = false, slash_small = false, slash_ref = false;
	enum path_result r, r_small, r_ref;

	CHECK(ref);
	r = run(data, size, big, &out, &slash);
	CHECK(r != PATH_TOO_LONG);
	r_ref = ref_normalize(data, size, ref, &slash_ref);
	CHECK(r == r_ref);
	if (r == PATH_OK)
		CHECK(strcmp(out, ref) == 0 && slash == slash_ref);

	r_small = run(data, size, small, &out_small, &slash_small);
	if (r == PATH_BAD)
		CHECK(r_small == PATH_BAD);
	else if (strlen(out) < small)
		CHECK(r_small == PATH_OK && strcmp(out, out_small) == 0 && slash == slash_small);
	else
		CHECK(r_small == PATH_TOO_LONG);

	if (r == PATH_OK)
		check_idempotent(out, slash);
	free(out);
	free(out_small);
	free(ref);
	return 0;
}
