/* verdict.h — the statistics behind experiment mode's verdict: pure functions, no I/O,
 * no state, so each is unit-tested against values computed independently.
 *
 * Two questions are asked of every arm, both about its large responses (the ones whose
 * goodput means something):
 *   - how often does a response stall? A proportion: Wilson score interval (95 %), which
 *     unlike the textbook p ± z·se stays inside [0, 1] and is honest at 0 of n;
 *   - how fast are responses? The median and the 10th percentile of per-response
 *     goodput, each with a distribution-free 95 % interval from order statistics (the
 *     number of samples below the true quantile is binomial), so no assumption about the
 *     shape of goodput — which is anything but normal when some responses crawl.
 * A winner is only claimed when intervals separate. */
#ifndef KTLSD_VERDICT_H
#define KTLSD_VERDICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* No claim at all about an arm with fewer large responses than this. */
#define VERDICT_MIN_CLAIM 10
/* With this many per arm, the 10th percentile has its interval too; an arm short of it
 * without a separated finding means "not enough data yet". */
#define VERDICT_ENOUGH 40

struct interval {
	double lo, hi;
};

/* The 95 % Wilson score interval of the proportion k/n. Requires 0 < n and k <= n;
 * returns [0, 0] for n == 0 (callers print no interval then). */
struct interval verdict_wilson95(uint64_t k, uint64_t n);

/* The 1-based ranks lo < hi of the order statistics X(lo), X(hi) of n samples that
 * enclose the q-quantile (0 < q < 1) with probability at least 95 %, as narrow as the
 * binomial allows, each tail at most 2.5 %. false when n is too small for that (e.g.
 * fewer than 6 samples for the median, 35 for the 10th percentile). */
bool verdict_quantile_ranks(size_t n, double q, size_t *lo, size_t *hi);

/* The q-quantile of sorted[0..n) by nearest rank: sorted[ceil(q·n) - 1] (at least the
 * first). n > 0. */
double verdict_quantile(const double *sorted, size_t n, double q);

/* What the verdict knows of one arm. */
struct verdict_arm {
	const char *name;
	size_t n;			/* large responses in the window */
	size_t stalled;			/* of them, with at least one stall */
	struct interval stall_ci;	/* Wilson 95 % of stalled / n */
	double median, p10;		/* goodput, bytes/s (0 when n == 0) */
	bool median_ci_ok, p10_ci_ok;	/* enough samples for the interval */
	struct interval median_ci, p10_ci;
};

/* Fill a from an arm's window: goodput[i] (bytes/s) and stalled[i] (nonzero: the i-th
 * response stalled), n of each, in any order. scratch holds n doubles (it gets the
 * sorted goodput); name is kept as a pointer. */
void verdict_summarize(struct verdict_arm *a, const char *name, const double *goodput,
		       const unsigned char *stalled, size_t n, double *scratch);

/* One line, NUL-terminated, cut to outlen: who wins, or why nobody can be named yet.
 *   "capped: no stalls in 412 responses; sendfile stalled in 9.2 % [6.8, 12.3]; write 18 %
 *    slower than capped [12, 24]"
 *   "not enough data yet: 23 more large responses needed"
 * The winner is the arm with the lowest stall rate (ties: the higher median); it is
 * named only if every other arm is separated from it as worse (its Wilson interval lies
 * above the winner's, or its median interval below) and none as faster. Separated
 * findings without a winner are listed after "no single winner: ". */
void verdict_sentence(const struct verdict_arm *arms, size_t narms, char *out, size_t outlen);

#endif
