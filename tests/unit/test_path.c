/* test_path.c — table-driven tests for path_normalize(). */
#undef NDEBUG
#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "path.h"

#define OK PATH_OK
#define BAD PATH_BAD
#define LONG PATH_TOO_LONG

struct path_case {
	const char *in;
	size_t len;		/* 0: strlen(in); set for inputs holding a raw NUL */
	size_t outsz;		/* 0: a roomy default */
	enum path_result res;
	const char *out;	/* expected output when res == OK */
	bool slash;		/* expected trailing_slash when res == OK */
};

static const struct path_case path_cases[] = {
	/* plain paths and normalisation */
	{ "/", 0, 0, OK, ".", true },
	{ "/index.html", 0, 0, OK, "index.html", false },
	{ "/a/b/c", 0, 0, OK, "a/b/c", false },
	{ "/a/b/", 0, 0, OK, "a/b", true },
	{ "//etc/passwd", 0, 0, OK, "etc/passwd", false },	/* relative: stays beneath the root */
	{ "/a//b///c", 0, 0, OK, "a/b/c", false },
	{ "///", 0, 0, OK, ".", true },
	{ "/./a/./b/", 0, 0, OK, "a/b", true },
	{ "/.", 0, 0, OK, ".", true },
	{ "/a/.", 0, 0, OK, "a", true },
	{ "/a/b/.", 0, 0, OK, "a/b", true },
	{ "/a/b/..", 0, 0, OK, "a", true },
	{ "/a/..", 0, 0, OK, ".", true },
	{ "/a/../b", 0, 0, OK, "b", false },
	{ "/a/b/../../c/./d/..", 0, 0, OK, "c", true },
	{ "/a/b/c/../../..", 0, 0, OK, ".", true },
	{ "/a/b/../c/../d", 0, 0, OK, "a/d", false },
	/* names that merely contain dots are not dot segments */
	{ "/...", 0, 0, OK, "...", false },
	{ "/a/..b", 0, 0, OK, "a/..b", false },
	{ "/a/b..", 0, 0, OK, "a/b..", false },
	{ "/.hidden", 0, 0, OK, ".hidden", false },
	{ "/a/.../b", 0, 0, OK, "a/.../b", false },
	{ "/%2e%2e%2e", 0, 0, OK, "...", false },
	/* traversal */
	{ "/..", 0, 0, BAD, NULL, false },
	{ "/../", 0, 0, BAD, NULL, false },
	{ "/../etc/passwd", 0, 0, BAD, NULL, false },
	{ "/a/../../b", 0, 0, BAD, NULL, false },
	{ "/a/b/c/../../../..", 0, 0, BAD, NULL, false },
	{ "/../a/..", 0, 0, BAD, NULL, false },
	{ "/./../a", 0, 0, BAD, NULL, false },
	{ "/%2e%2e/", 0, 0, BAD, NULL, false },
	{ "/%2E%2E/etc/passwd", 0, 0, BAD, NULL, false },
	{ "/.%2e/", 0, 0, BAD, NULL, false },
	{ "/%2e./", 0, 0, BAD, NULL, false },
	{ "/a/%2e%2e/%2e%2e", 0, 0, BAD, NULL, false },
	{ "/a/%2e%2e", 0, 0, OK, ".", true },
	{ "/a/.%2E/b", 0, 0, OK, "b", false },
	{ "/a/%2e/b", 0, 0, OK, "a/b", false },
	{ "/a/%2e", 0, 0, OK, "a", true },
	/* decoding happens once only */
	{ "/%252e%252e/", 0, 0, OK, "%2e%2e", true },
	{ "/%252e%252e/%252e%252e/etc", 0, 0, OK, "%2e%2e/%2e%2e/etc", false },
	{ "/%252f", 0, 0, OK, "%2f", false },
	{ "/%25", 0, 0, OK, "%", false },
	{ "/%2525", 0, 0, OK, "%25", false },
	{ "/%41%42%43", 0, 0, OK, "ABC", false },
	{ "/%6a%6A", 0, 0, OK, "jj", false },
	{ "/a%20b", 0, 0, OK, "a b", false },
	{ "/%3f%23", 0, 0, OK, "?#", false },
	/* bad escapes */
	{ "/%", 0, 0, BAD, NULL, false },
	{ "/%4", 0, 0, BAD, NULL, false },
	{ "/%zz", 0, 0, BAD, NULL, false },
	{ "/%4g", 0, 0, BAD, NULL, false },
	{ "/%g4", 0, 0, BAD, NULL, false },
	{ "/a%", 0, 0, BAD, NULL, false },
	{ "/a%2/b", 0, 0, BAD, NULL, false },
	{ "/%%41", 0, 0, BAD, NULL, false },
	{ "/% 41", 0, 0, BAD, NULL, false },
	/* encoded separators and backslashes */
	{ "/a%2fb", 0, 0, BAD, NULL, false },
	{ "/a%2Fb", 0, 0, BAD, NULL, false },
	{ "/%2f", 0, 0, BAD, NULL, false },
	{ "/..%2f..%2fetc", 0, 0, BAD, NULL, false },
	{ "/a\\b", 0, 0, BAD, NULL, false },
	{ "/..\\..\\etc", 0, 0, BAD, NULL, false },
	{ "/a%5cb", 0, 0, BAD, NULL, false },
	{ "/a%5Cb", 0, 0, BAD, NULL, false },
	/* NUL and control bytes */
	{ "/%00", 0, 0, BAD, NULL, false },
	{ "/a%00.html", 0, 0, BAD, NULL, false },
	{ "/a\0b", 4, 0, BAD, NULL, false },
	{ "/\0", 2, 0, BAD, NULL, false },
	{ "/%01", 0, 0, BAD, NULL, false },
	{ "/%1f", 0, 0, BAD, NULL, false },
	{ "/%7f", 0, 0, BAD, NULL, false },
	{ "/a\x7f", 0, 0, BAD, NULL, false },
	{ "/a\tb", 0, 0, BAD, NULL, false },
	{ "/a%0d%0aSet-Cookie:x", 0, 0, BAD, NULL, false },
	{ "/a\r\nb", 0, 0, BAD, NULL, false },
	/* UTF-8 */
	{ "/caf%c3%a9", 0, 0, OK, "caf\xc3\xa9", false },
	{ "/caf\xc3\xa9", 0, 0, OK, "caf\xc3\xa9", false },
	{ "/%e2%82%ac", 0, 0, OK, "\xe2\x82\xac", false },
	{ "/%f0%9f%98%80", 0, 0, OK, "\xf0\x9f\x98\x80", false },
	{ "/%c2%80", 0, 0, OK, "\xc2\x80", false },		/* U+0080, smallest 2-byte */
	{ "/%e0%a0%80", 0, 0, OK, "\xe0\xa0\x80", false },	/* U+0800, smallest 3-byte */
	{ "/%ed%9f%bf", 0, 0, OK, "\xed\x9f\xbf", false },	/* U+D7FF, below surrogates */
	{ "/%ee%80%80", 0, 0, OK, "\xee\x80\x80", false },	/* U+E000, above surrogates */
	{ "/%f0%90%80%80", 0, 0, OK, "\xf0\x90\x80\x80", false },	/* U+10000 */
	{ "/%f4%8f%bf%bf", 0, 0, OK, "\xf4\x8f\xbf\xbf", false },	/* U+10FFFF */
	{ "/%c3%a9%2e%2e", 0, 0, OK, "\xc3\xa9..", false },
	{ "/%c0%ae%c0%ae/", 0, 0, BAD, NULL, false },		/* overlong "." */
	{ "/%c0%af", 0, 0, BAD, NULL, false },			/* overlong "/" */
	{ "/%c1%9c", 0, 0, BAD, NULL, false },			/* overlong "\\" */
	{ "/\xc0\xae\xc0\xae/", 0, 0, BAD, NULL, false },
	{ "/%e0%80%ae", 0, 0, BAD, NULL, false },
	{ "/%e0%9f%bf", 0, 0, BAD, NULL, false },
	{ "/%f0%80%80%ae", 0, 0, BAD, NULL, false },
	{ "/%f0%8f%bf%bf", 0, 0, BAD, NULL, false },
	{ "/%ed%a0%80", 0, 0, BAD, NULL, false },		/* U+D800 */
	{ "/%ed%bf%bf", 0, 0, BAD, NULL, false },		/* U+DFFF */
	{ "/%f4%90%80%80", 0, 0, BAD, NULL, false },		/* U+110000 */
	{ "/%f5%80%80%80", 0, 0, BAD, NULL, false },
	{ "/%f8%88%80%80%80", 0, 0, BAD, NULL, false },
	{ "/%fe", 0, 0, BAD, NULL, false },
	{ "/%ff", 0, 0, BAD, NULL, false },
	{ "/%80", 0, 0, BAD, NULL, false },			/* stray continuation */
	{ "/a%bf", 0, 0, BAD, NULL, false },
	{ "/%c3", 0, 0, BAD, NULL, false },			/* truncated */
	{ "/%c3/a", 0, 0, BAD, NULL, false },
	{ "/%e2%82", 0, 0, BAD, NULL, false },
	{ "/%e2%82/", 0, 0, BAD, NULL, false },
	{ "/%f0%9f%98", 0, 0, BAD, NULL, false },
	{ "/%c3a", 0, 0, BAD, NULL, false },
	{ "/%c3%c3%a9", 0, 0, BAD, NULL, false },
	/* not a path at all */
	{ "", 0, 0, BAD, NULL, false },
	{ "a/b", 0, 0, BAD, NULL, false },
	{ "../a", 0, 0, BAD, NULL, false },
	{ "%2fetc", 0, 0, BAD, NULL, false },
	{ "\\a", 0, 0, BAD, NULL, false },
	/* output size: the normalised path plus a NUL must fit in outsz */
	{ "/", 0, 2, OK, ".", true },
	{ "/abc", 0, 4, OK, "abc", false },
	{ "/abcd", 0, 4, LONG, NULL, false },
	{ "/ab/cd", 0, 6, OK, "ab/cd", false },
	{ "/ab/cd", 0, 5, LONG, NULL, false },
	{ "/ab/cd/", 0, 6, OK, "ab/cd", true },
	{ "//ab//cd//", 0, 6, OK, "ab/cd", true },
	{ "/%41%41", 0, 3, OK, "AA", false },
	{ "/%41%41%41", 0, 3, LONG, NULL, false },
	{ "/a/..", 0, 2, OK, ".", true },
	{ "/aaaaaaaa/..", 0, 2, OK, ".", true },
	{ "/aaaaaaaa/../b", 0, 2, OK, "b", false },
	{ "/a", 0, 2, OK, "a", false },
	{ "/ab", 0, 2, LONG, NULL, false },
	{ "/abcd/%00", 0, 3, BAD, NULL, false },	/* PATH_BAD wins over PATH_TOO_LONG */
	{ "/%00/abcd", 0, 3, BAD, NULL, false },
	{ "/abcd/../..", 0, 3, BAD, NULL, false },
	{ "/../abcd", 0, 3, BAD, NULL, false },
	{ "/", 0, 1, LONG, NULL, false },		/* outsz < 2 breaks the contract */
};

static int path_check(const char *name, const char *in, size_t len, size_t outsz,
		      enum path_result res, const char *expect, bool slash)
{
	/* Exactly len and outsz bytes on the heap, so ASan sees any access past
	 * the end of either; the input copy is not NUL-terminated on purpose. */
	char *raw = malloc(len ? len : 1), *out = malloc(outsz);
	bool ts = !slash;
	enum path_result r;

	assert(raw && out);
	assert(res != PATH_OK || expect);
	memcpy(raw, in, len);
	r = path_normalize(raw, len, out, outsz, &ts);
	free(raw);
	if (r != res || (r == PATH_OK && (strcmp(out, expect) != 0 || ts != slash))) {
		fprintf(stderr, "FAIL %s: \"%.*s\" outsz %zu: got %d \"%s\" slash %d, "
			"want %d \"%s\" slash %d\n", name, (int)(len > 200 ? 200 : len), in,
			outsz, (int)r, r == PATH_OK ? out : "", (int)ts, (int)res,
			expect ? expect : "", (int)slash);
		free(out);
		return 1;
	}
	free(out);
	return 0;
}

/* Generated inputs far longer than any real request line. */
static int path_long_cases(unsigned *count)
{
	enum { N = 20000 };
	char *in = malloc(5 * N + 3), *expect = malloc(2 * N + 1);
	size_t n = 0;
	int fails = 0;

	assert(in && expect);
	/* "/a/a/.../a": output "a/a/.../a" of 2N-1 bytes */
	for (size_t i = 0; i < N; i++) {
		in[n++] = '/';
		in[n++] = 'a';
		expect[2 * i] = 'a';
		expect[2 * i + 1] = '/';
	}
	expect[2 * N - 1] = '\0';
	fails += path_check("long", in, n, 2 * N, OK, expect, false);
	fails += path_check("long", in, n, 2 * N - 1, LONG, NULL, false);
	fails += path_check("long", in, n, 64, LONG, NULL, false);
	fails += path_check("long", in, n, 2, LONG, NULL, false);
	/* ... then N times "/..": back at the root, fits in any buffer */
	for (size_t i = 0; i < N; i++) {
		memcpy(in + n, "/..", 3);
		n += 3;
	}
	fails += path_check("long", in, n, 2, OK, ".", true);
	/* ... and one more ".." climbs above it */
	memcpy(in + n, "/..", 3);
	fails += path_check("long", in, n + 3, 4096, BAD, NULL, false);
	/* N slashes collapse to the root */
	memset(in, '/', N);
	fails += path_check("long", in, N, 2, OK, ".", true);
	/* one N-byte name */
	in[0] = '/';
	memset(in + 1, 'x', N);
	fails += path_check("long", in, N + 1, N, LONG, NULL, false);
	memcpy(expect, in + 1, N);
	expect[N] = '\0';
	fails += path_check("long", in, N + 1, N + 1, OK, expect, false);
	*count += 9;
	free(in);
	free(expect);
	return fails;
}

int main(void)
{
	size_t ncases = sizeof(path_cases) / sizeof(path_cases[0]);
	unsigned count = 0;
	int fails = 0;

	for (size_t i = 0; i < ncases; i++) {
		const struct path_case *c = &path_cases[i];
		char name[32];

		snprintf(name, sizeof(name), "case %zu", i);
		fails += path_check(name, c->in, c->len ? c->len : strlen(c->in),
				    c->outsz ? c->outsz : 4096, c->res, c->out, c->slash);
		count++;
	}
	fails += path_long_cases(&count);
	printf("test_path: %u cases, %d failed\n", count, fails);
	assert(fails == 0);
	return 0;
}
