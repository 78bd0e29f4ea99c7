/* test_verdict.c — unit tests for verdict.h against values computed independently
 * (Python: the Wilson formula in floating point, the binomial ranks with exact
 * fractions; the numbers are in the tables). assert() aborts on the first failure. */
#undef NDEBUG
#include "verdict.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static bool near(double a, double b, double eps)
{
	return fabs(a - b) <= eps;
}

static void test_wilson(void)
{
	/* k, n, lo, hi: python3, z = 1.959963984540054 */
	static const struct { uint64_t k, n; double lo, hi; } t[] = {
		{ 9, 100, 0.04807254000256516, 0.1622621285271631 },
		{ 0, 10, 0.0, 0.2775327998628892 },
		{ 10, 10, 0.7224672001371107, 1.0 },
		{ 0, 412, 0.0, 0.009237796615056885 },
		{ 1, 1, 0.20654931437723745, 1.0 },
		{ 50, 100, 0.4038315303659956, 0.5961684696340044 },
		{ 3, 7, 0.15821985525146975, 0.7495416354723428 },
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct interval r = verdict_wilson95(t[i].k, t[i].n);
		if (!near(r.lo, t[i].lo, 1e-9) || !near(r.hi, t[i].hi, 1e-9)) {
			fprintf(stderr, "wilson %llu/%llu: [%.12f, %.12f]\n",
				(unsigned long long)t[i].k, (unsigned long long)t[i].n, r.lo, r.hi);
			assert(0);
		}
		assert(r.lo >= 0 && r.hi <= 1 && r.lo <= r.hi);
	}
	/* the endpoints are exact, not 1e-18 off */
	assert(verdict_wilson95(0, 100).lo == 0.0);
	assert(verdict_wilson95(40, 40).hi == 1.0);
	{
		struct interval r = verdict_wilson95(0, 0);
		assert(r.lo == 0 && r.hi == 0);
	}
}

static void test_ranks(void)
{
	/* n, q, lo, hi (0, 0: no interval) — exact binomial, each tail <= 2.5 % */
	static const struct { size_t n; double q; size_t lo, hi; } t[] = {
		{ 5, 0.5, 0, 0 }, { 6, 0.5, 1, 6 }, { 10, 0.5, 2, 9 }, { 20, 0.5, 6, 15 },
		{ 100, 0.5, 40, 61 }, { 1024, 0.5, 481, 544 },
		{ 34, 0.1, 0, 0 }, { 35, 0.1, 0, 0 }, { 36, 0.1, 1, 8 }, { 40, 0.1, 1, 9 },
		{ 100, 0.1, 5, 17 }, { 1024, 0.1, 84, 123 },
		{ 0, 0.5, 0, 0 }, { 1, 0.5, 0, 0 },
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		size_t lo = 0, hi = 0;
		bool ok = verdict_quantile_ranks(t[i].n, t[i].q, &lo, &hi);
		if (ok != (t[i].lo != 0) || (ok && (lo != t[i].lo || hi != t[i].hi))) {
			fprintf(stderr, "ranks n=%zu q=%g: %d [%zu, %zu]\n", t[i].n, t[i].q, ok, lo, hi);
			assert(0);
		}
	}
	{
		size_t lo, hi;
		assert(!verdict_quantile_ranks(100, 0.0, &lo, &hi));
		assert(!verdict_quantile_ranks(100, 1.0, &lo, &hi));
	}
}

static void test_quantile(void)
{
	const double x[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };

	assert(verdict_quantile(x, 10, 0.5) == 5);	/* ceil(5) = 5th */
	assert(verdict_quantile(x, 10, 0.1) == 1);
	assert(verdict_quantile(x, 10, 0.11) == 2);	/* ceil(1.1) = 2nd */
	assert(verdict_quantile(x, 9, 0.5) == 5);	/* ceil(4.5) = 5th */
	assert(verdict_quantile(x, 1, 0.5) == 1);
	assert(verdict_quantile(x, 10, 0.001) == 1);
}

/* n samples base + (i + 1) * step, i = 0 .. n-1, in a scrambled order (summarize sorts);
 * the first `stalls` of the scrambled ones stalled. */
static void make_arm(struct verdict_arm *a, const char *name, size_t n, double base,
		     double step, size_t stalls)
{
	static double g[1024], scratch[1024];
	static unsigned char st[1024];

	assert(n <= 1024);
	for (size_t i = 0; i < n; i++) {
		size_t j = (i * 7919) % n;	/* a permutation when n and 7919 are coprime */
		g[i] = base + (double)(j + 1) * step;
		st[i] = i < stalls;
	}
	verdict_summarize(a, name, g, st, n, scratch);
}

static void test_summarize(void)
{
	struct verdict_arm a;

	make_arm(&a, "x", 100, 0, 1, 9);
	assert(a.n == 100 && a.stalled == 9);
	assert(near(a.stall_ci.lo, 0.04807254000256516, 1e-9));
	assert(a.median == 50 && a.median_ci_ok && a.median_ci.lo == 40 && a.median_ci.hi == 61);
	assert(a.p10 == 10 && a.p10_ci_ok && a.p10_ci.lo == 5 && a.p10_ci.hi == 17);
	make_arm(&a, "few", 5, 0, 1, 0);
	assert(a.median == 3 && !a.median_ci_ok && !a.p10_ci_ok);
	make_arm(&a, "none", 0, 0, 1, 0);
	assert(a.n == 0 && a.median == 0 && !a.median_ci_ok);
}

static void expect(const struct verdict_arm *arms, size_t n, const char *want)
{
	char out[512];

	verdict_sentence(arms, n, out, sizeof(out));
	if (strcmp(out, want) != 0) {
		fprintf(stderr, "verdict:\n  got  \"%s\"\n  want \"%s\"\n", out, want);
		assert(0);
	}
}

static void test_sentence(void)
{
	struct verdict_arm a[3] = { { 0 } };
	char small[24];

	expect(a, 0, "no experiment arms configured");
	make_arm(&a[0], "only", 12, 0, 1, 0);
	expect(a, 1, "one arm only (only, 12 large responses): nothing to compare");

	/* too few for any claim: 7 + 5 + 10 short of 10 each */
	make_arm(&a[0], "sendfile", 3, 1e6, 1e3, 3);
	make_arm(&a[1], "capped", 5, 1e6, 1e3, 0);
	make_arm(&a[2], "write", 0, 1e6, 1e3, 0);
	expect(a, 3, "not enough data yet: 22 more large responses needed");

	/* capped wins: sendfile stalls more (9/100: [4.8, 16.2] above capped's 0/100:
	 * [0, 3.7]); write is slower: medians 85e6 [84e6, 86.1e6] against 105e6
	 * [104e6, 106.1e6]: 1 - 85/105 = 19.05 %, [1 - 86.1/104, 1 - 84/106.1] = [17.2, 20.8] */
	make_arm(&a[0], "sendfile", 100, 100e6, 1e5, 9);
	make_arm(&a[1], "capped", 100, 100e6, 1e5, 0);
	make_arm(&a[2], "write", 100, 80e6, 1e5, 0);
	expect(a, 3, "capped: no stalls in 100 responses; sendfile stalled in 9.0 % [4.8, 16.2]; "
	       "write 19 % slower than capped [17, 21]");

	/* a trade-off: fast but always stalling against slow and clean: no winner */
	make_arm(&a[0], "fast", 40, 200e6, 1e5, 40);
	make_arm(&a[1], "clean", 40, 100e6, 1e5, 0);
	verdict_sentence(a, 2, small, sizeof(small));
	assert(strlen(small) == sizeof(small) - 1);	/* cut, terminated */
	{
		char out[512];
		verdict_sentence(a, 2, out, sizeof(out));
		assert(strncmp(out, "no single winner: fast stalled in 100.0 % [91.2, 100.0]; "
			       "fast ", 62) == 0);
		assert(strstr(out, "% faster than clean [") != NULL);
	}

	/* overlapping arms: 20 each is not enough to call it ... */
	make_arm(&a[0], "a", 20, 100e6, 1e5, 1);
	make_arm(&a[1], "b", 20, 100e6, 1e5, 2);
	expect(a, 2, "not enough data yet: no difference so far; 40 more large responses needed");
	/* ... 40 each is: no difference */
	make_arm(&a[0], "a", 40, 100e6, 1e5, 1);
	make_arm(&a[1], "b", 40, 100e6, 1e5, 2);
	expect(a, 2, "no difference at 95 %: the arms' stall rates and median goodput overlap");
	/* a difference in speed only, with stalls equal: the faster one wins */
	make_arm(&a[0], "a", 40, 100e6, 1e5, 0);
	make_arm(&a[1], "b", 40, 50e6, 1e5, 0);
	{
		char out[512];
		verdict_sentence(a, 2, out, sizeof(out));
		assert(strncmp(out, "a: no stalls in 40 responses; b ", 32) == 0);
		assert(strstr(out, "% slower than a [") != NULL);
	}
	/* a zero-byte buffer is left alone */
	verdict_sentence(a, 2, small, 0);
}

int main(void)
{
	test_wilson();
	test_ranks();
	test_quantile();
	test_summarize();
	test_sentence();
	printf("test_verdict: all passed\n");
	return 0;
}
