/* verdict.c — see verdict.h. */
#include "autoconf.h"
#include "verdict.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the 97.5 % point of the standard normal: two-sided 95 % */
#define Z95 1.959963984540054

struct interval verdict_wilson95(uint64_t k, uint64_t n)
{
	struct interval r = { 0, 0 };
	double p, z2n, d, c, h;

	if (n == 0)
		return r;
	p = (double)k / (double)n;
	z2n = Z95 * Z95 / (double)n;
	d = 1 + z2n;
	c = (p + z2n / 2) / d;
	h = Z95 / d * sqrt(p * (1 - p) / (double)n + z2n / (4 * (double)n));
	r.lo = c - h < 0 ? 0 : c - h;
	r.hi = c + h > 1 ? 1 : c + h;
	/* at k == 0 (k == n) the bound is 0 (1) exactly; rounding must not move it */
	if (k == 0)
		r.lo = 0;
	if (k == n)
		r.hi = 1;
	return r;
}

bool verdict_quantile_ranks(size_t n, double q, size_t *lo, size_t *hi)
{
	const double tail = 0.025;
	double lp, cdf = 0, lq, lr;
	size_t l = 0, u = 0;

	if (n == 0 || !(q > 0 && q < 1))
		return false;
	lq = log(q);
	lr = log1p(-q);
	/* walk the binomial(n, q) distribution in log space (q^n underflows for n ≈ 1000):
	 * after adding P(B = k), cdf = F(k). l is the largest rank with F(l - 1) <= tail,
	 * u the smallest with F(u - 1) >= 1 - tail. */
	lp = (double)n * lr;
	for (size_t k = 0; k < n; k++) {
		cdf += exp(lp);
		if (cdf <= tail)
			l = k + 1;		/* F(l - 1) = F(k) <= tail */
		if (cdf >= 1 - tail) {
			u = k + 1;
			break;
		}
		lp += log((double)(n - k)) - log((double)(k + 1)) + lq - lr;
	}
	if (l == 0 || u == 0 || l >= u)
		return false;
	*lo = l;
	*hi = u;
	return true;
}

double verdict_quantile(const double *sorted, size_t n, double q)
{
	double r = ceil(q * (double)n);
	size_t i = r < 1 ? 0 : (size_t)r - 1;

	return sorted[i < n ? i : n - 1];
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The q-quantile of sorted[0..n) and its interval (ok false if n is too small). */
static void quantile_with_ci(const double *sorted, size_t n, double q, double *est,
			     bool *ok, struct interval *ci)
{
	size_t lo, hi;

	*est = n > 0 ? verdict_quantile(sorted, n, q) : 0;
	*ok = verdict_quantile_ranks(n, q, &lo, &hi);
	if (*ok) {
		ci->lo = sorted[lo - 1];
		ci->hi = sorted[hi - 1];
	} else {
		ci->lo = ci->hi = 0;
	}
}

void verdict_summarize(struct verdict_arm *a, const char *name, const double *goodput,
		       const unsigned char *stalled, size_t n, double *scratch)
{
	memset(a, 0, sizeof(*a));
	a->name = name;
	a->n = n;
	for (size_t i = 0; i < n; i++)
		a->stalled += stalled[i] != 0;
	a->stall_ci = verdict_wilson95(a->stalled, n);
	if (n == 0)
		return;
	memcpy(scratch, goodput, n * sizeof(*scratch));
	qsort(scratch, n, sizeof(*scratch), cmp_double);
	quantile_with_ci(scratch, n, 0.5, &a->median, &a->median_ci_ok, &a->median_ci);
	quantile_with_ci(scratch, n, 0.1, &a->p10, &a->p10_ci_ok, &a->p10_ci);
}

/* ---- the sentence ----------------------------------------------------- */

struct line {
	char *p;
	size_t cap, len;
};

static void put(struct line *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append to o, cutting at its end (the line stays NUL-terminated). */
static void put(struct line *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->len + 1 >= o->cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n < o->cap - o->len ? (size_t)n : o->cap - o->len - 1;
}

static double rate(const struct verdict_arm *a)
{
	return a->n ? (double)a->stalled / (double)a->n : 0;
}

/* How x compares with the reference arm w, counting only separated intervals. */
struct cmp {
	bool stalls_more;	/* x's stall interval lies above w's */
	bool slower, faster;	/* x's median interval lies below / above w's */
};

static struct cmp compare(const struct verdict_arm *x, const struct verdict_arm *w)
{
	struct cmp r = { false, false, false };
	bool medians = x->median_ci_ok && w->median_ci_ok;

	r.stalls_more = x->stall_ci.lo > w->stall_ci.hi;
	r.slower = medians && x->median_ci.hi < w->median_ci.lo;
	r.faster = medians && x->median_ci.lo > w->median_ci.hi;
	return r;
}

static void put_findings(struct line *o, const struct verdict_arm *x,
			 const struct verdict_arm *w, struct cmp c, bool *first)
{
	if (c.stalls_more) {
		put(o, "%s%s stalled in %.1f %% [%.1f, %.1f]", *first ? "" : "; ", x->name,
		    100 * rate(x), 100 * x->stall_ci.lo, 100 * x->stall_ci.hi);
		*first = false;
	}
	/* the ratio's interval from the two medians' intervals: wider than 95 % (both
	 * ends at once), so a conservative statement */
	if (c.slower && w->median > 0 && w->median_ci.lo > 0 && w->median_ci.hi > 0) {
		put(o, "%s%s %.0f %% slower than %s [%.0f, %.0f]", *first ? "" : "; ", x->name,
		    100 * (1 - x->median / w->median), w->name,
		    100 * (1 - x->median_ci.hi / w->median_ci.lo),
		    100 * (1 - x->median_ci.lo / w->median_ci.hi));
		*first = false;
	}
	if (c.faster && w->median > 0 && w->median_ci.lo > 0 && w->median_ci.hi > 0) {
		put(o, "%s%s %.0f %% faster than %s [%.0f, %.0f]", *first ? "" : "; ", x->name,
		    100 * (x->median / w->median - 1), w->name,
		    100 * (x->median_ci.lo / w->median_ci.hi - 1),
		    100 * (x->median_ci.hi / w->median_ci.lo - 1));
		*first = false;
	}
}

void verdict_sentence(const struct verdict_arm *arms, size_t narms, char *out, size_t outlen)
{
	struct line o = { out, outlen, 0 };
	size_t need = 0, w = 0;
	bool winner = true, any = false, first = true;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (narms == 0) {
		put(&o, "no experiment arms configured");
		return;
	}
	if (narms == 1) {
		put(&o, "one arm only (%s, %zu large responses): nothing to compare", arms[0].name,
		    arms[0].n);
		return;
	}
	for (size_t i = 0; i < narms; i++)
		need += arms[i].n < VERDICT_MIN_CLAIM ? VERDICT_MIN_CLAIM - arms[i].n : 0;
	if (need > 0) {
		put(&o, "not enough data yet: %zu more large responses needed", need);
		return;
	}
	for (size_t i = 1; i < narms; i++)
		if (rate(&arms[i]) < rate(&arms[w]) ||
		    (rate(&arms[i]) == rate(&arms[w]) && arms[i].median > arms[w].median))
			w = i;
	for (size_t i = 0; i < narms; i++) {
		struct cmp c;
		if (i == w)
			continue;
		c = compare(&arms[i], &arms[w]);
		if (!(c.stalls_more || c.slower) || c.faster)
			winner = false;
		any = any || c.stalls_more || c.slower || c.faster;
	}
	if (any) {
		const struct verdict_arm *a = &arms[w];
		if (!winner)
			put(&o, "no single winner: ");
		else if (a->stalled == 0)
			put(&o, "%s: no stalls in %zu responses", a->name, a->n), first = false;
		else
			put(&o, "%s: stalled in %.1f %% [%.1f, %.1f] of %zu responses", a->name,
			    100 * rate(a), 100 * a->stall_ci.lo, 100 * a->stall_ci.hi, a->n),
				first = false;
		for (size_t i = 0; i < narms; i++)
			if (i != w)
				put_findings(&o, &arms[i], a, compare(&arms[i], a), &first);
		return;
	}
	need = 0;
	for (size_t i = 0; i < narms; i++)
		need += arms[i].n < VERDICT_ENOUGH ? VERDICT_ENOUGH - arms[i].n : 0;
	if (need > 0)
		put(&o, "not enough data yet: no difference so far; %zu more large responses needed",
		    need);
	else
		put(&o, "no difference at 95 %%: the arms' stall rates and median goodput overlap");
}
