/* experiment.c — see experiment.h. Everything here is the event loop's (one thread):
 * the tables are plain static arrays, bounded, never freed (nothing to leak at exit). */
#include "autoconf.h"
#include "experiment.h"
#include "site.h"
#include "conn.h"
#include "log.h"
#include "stall.h"
#include "stats.h"
#include "verdict.h"

#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <sys/time.h>

_Static_assert(sizeof(((struct conn_record *)0)->arm) == CONFIG_ARM_NAME_MAX,
	       "conn_record.arm holds an arm's name");

/* Upper bounds of the goodput histogram, bytes/s: powers of 4 from 64 KiB/s (a response
 * crawling at the persist timer's cadence lands at the bottom) to 4 GiB/s. */
static const double goodput_le[] = {
	65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0, 268435456.0,
	1073741824.0, 4294967296.0,
};
#define NBUCKETS (sizeof(goodput_le) / sizeof(goodput_le[0]))

/* One arm name's counters, for the life of the process. */
struct arm_tally {
	char name[CONFIG_ARM_NAME_MAX];
	uint64_t connections, responses, aborted, bytes, body_us;
	uint64_t stalls[STALL_CAUSE_MAX], stall_ms, mitigations;
	uint64_t large;				/* large responses ever (histogram count) */
	uint64_t bucket[NBUCKETS];		/* per bucket, not cumulative; above: +Inf only */
	double goodput_sum;
	/* the window: the last EXPERIMENT_WINDOW large responses, in ring order */
	double goodput[EXPERIMENT_WINDOW];
	unsigned char stalled[EXPERIMENT_WINDOW];
	size_t wlen, wnext;
};

/* Every variable below is guarded by lock: the workers' threads count, the main thread
 * renders the views. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct arm_tally tally[EXPERIMENT_MAX_TRACKED];
static size_t ntally;

/* The smooth weighted rotation's running weights, per experiment of the current site:
 * [0] the global experiment, [1 + i] listener i's own. Reset when a new site (a reload)
 * assigns its first connection. */
static long rot_cur[CONFIG_MAX_LISTEN + 1][CONFIG_MAX_ARMS];
static bool rot_logged[CONFIG_MAX_LISTEN + 1];	/* its arms were logged for this site */
static uint64_t rot_gen;
static bool rot_valid;

/* The tally of name, created if there is room (NULL, warned once, when the table is
 * full: the connection still gets its arm's settings, only its counting is lost). */
static struct arm_tally *tally_get(const char *name)
{
	static bool warned;

	for (size_t i = 0; i < ntally; i++)
		if (strcmp(tally[i].name, name) == 0)
			return &tally[i];
	if (ntally == EXPERIMENT_MAX_TRACKED) {
		if (!warned)
			log_msg(LOG_LEVEL_WARN, "experiment: more than %d arm names since the start: "
				"arm \"%s\" and later new ones are not counted until a restart",
				EXPERIMENT_MAX_TRACKED, name);
		warned = true;
		return NULL;
	}
	snprintf(tally[ntally].name, sizeof(tally[ntally].name), "%s", name);
	return &tally[ntally++];
}

/* The experiment for connections of listener (index in cfg, or past its end), and its
 * rotation slot. */
static const struct experiment_config *experiment_for(const struct config *cfg, size_t listener,
						      size_t *slot)
{
	if (listener < cfg->nlisten && cfg->listen[listener].experiment.narms > 0) {
		*slot = listener + 1;
		return &cfg->listen[listener].experiment;
	}
	*slot = 0;
	return cfg->experiment.narms > 0 ? &cfg->experiment : NULL;
}

/* Smooth weighted round robin: every arm gains its weight, the one ahead is picked and
 * loses the total. */
static size_t rotate(long *cur, const struct experiment_config *x)
{
	long total = 0;
	size_t best = 0;

	for (size_t i = 0; i < x->narms; i++) {
		cur[i] += (long)x->arm[i].weight;
		total += (long)x->arm[i].weight;
		if (cur[i] > cur[best])
			best = i;
	}
	cur[best] -= total;
	return best;
}

/* Say once per configuration and experiment which arms new connections are spread
 * over (at the first connection: a reload's log then shows what it changed). */
static void log_arms(const struct experiment_config *x, const char *listener)
{
	char line[CONFIG_MAX_ARMS * (CONFIG_ARM_NAME_MAX + 16) + 64];
	size_t n = 0;

	for (size_t i = 0; i < x->narms && n < sizeof(line); i++) {
		int k = snprintf(line + n, sizeof(line) - n, "%s%s (weight %u)", i ? ", " : "",
				 x->arm[i].name, x->arm[i].weight);
		if (k > 0)
			n += (size_t)k;
	}
	if (listener == NULL)
		log_msg(LOG_LEVEL_NOTICE, "experiment: new connections spread over %s", line);
	else
		log_msg(LOG_LEVEL_NOTICE, "experiment of listener %s: new connections spread over %s",
			listener, line);
}

static void experiment_assign_locked(struct conn *c, size_t listener)
{
	size_t slot;
	const struct experiment_config *x = experiment_for(c->cfg, listener, &slot);
	const struct experiment_arm *a;

	if (x == NULL)
		return;
	if (!rot_valid || rot_gen != c->site->gen) {
		memset(rot_cur, 0, sizeof(rot_cur));
		memset(rot_logged, 0, sizeof(rot_logged));
		rot_gen = c->site->gen;
		rot_valid = true;
	}
	if (!rot_logged[slot]) {
		log_arms(x, slot > 0 ? c->cfg->listen[slot - 1].text : NULL);
		rot_logged[slot] = true;
	}
	a = &x->arm[rotate(rot_cur[slot], x)];
	c->exp.send = *c->send;
	if (a->set & SEND_SET_MODE)
		c->exp.send.mode = a->send.mode;
	if (a->set & SEND_SET_CHUNK)
		c->exp.send.chunk = a->send.chunk;
	if (a->set & SEND_SET_LOWAT)
		c->exp.send.notsent_lowat = a->send.notsent_lowat;
	c->send = &c->exp.send;
	c->exp.name = a->name;
	c->exp.arm = tally_get(a->name);
	if (c->exp.arm != NULL)
		c->exp.arm->connections++;
	snprintf(c->rec.arm, sizeof(c->rec.arm), "%s", a->name);
}

/* Count what c's record gained since the last look: stalls (under the last cause),
 * ended stall time, mitigations. */
static void take_record(struct conn *c, struct arm_tally *t)
{
	unsigned d = c->rec.stalls - c->exp.stalls_seen;

	if (d > 0)
		t->stalls[c->rec.last_cause < STALL_CAUSE_MAX ? c->rec.last_cause : STALL_UNKNOWN] += d;
	c->exp.stalls_seen = c->rec.stalls;
	t->stall_ms += c->rec.stall_ms_total - c->exp.stall_ms_seen;
	c->exp.stall_ms_seen = c->rec.stall_ms_total;
	t->mitigations += c->rec.mitigations - c->exp.mitigations_seen;
	c->exp.mitigations_seen = c->rec.mitigations;
}

static void experiment_note_response_locked(struct conn *c, bool aborted)
{
	struct arm_tally *t = c->exp.arm;
	struct timeval now;
	int64_t us;

	if (t == NULL)
		return;
	take_record(c, t);
	gettimeofday(&now, NULL);
	us = (int64_t)(now.tv_sec - c->t_request.tv_sec) * 1000000 +
	     (now.tv_usec - c->t_request.tv_usec);
	if (us < 0)	/* the wall clock was set back: no duration rather than a wrong one */
		us = 0;
	if (aborted) {
		t->aborted++;
	} else {
		t->responses++;
		t->bytes += c->resp.head_bytes + c->resp.body_bytes;
		t->body_us += (uint64_t)us;
	}
	/* A large response cut short counts too, with what it managed: a crawl that the
	 * client gave up on is the arm's worst case, and leaving it out would make a
	 * stalling arm look clean. Its size is the one it was meant to have (never a HEAD's,
	 * whose Content-Length carries no body). */
	if ((aborted ? (c->resp.body_total >= EXPERIMENT_LARGE_BODY && c->resp.body_bytes > 0 &&
			strncmp(c->reqline, "HEAD ", 5) != 0)
		     : c->resp.body_bytes >= EXPERIMENT_LARGE_BODY) && us > 0) {
		double g = (double)c->resp.body_bytes * 1e6 / (double)us;
		size_t b = 0;
		while (b < NBUCKETS && g > goodput_le[b])
			b++;
		if (b < NBUCKETS)
			t->bucket[b]++;
		t->large++;
		t->goodput_sum += g;
		t->goodput[t->wnext] = g;
		t->stalled[t->wnext] = c->rec.stalls > c->stalls_at_request;
		t->wnext = (t->wnext + 1) % EXPERIMENT_WINDOW;
		if (t->wlen < EXPERIMENT_WINDOW)
			t->wlen++;
	}
}

static void experiment_note_close_locked(struct conn *c)
{
	if (c->exp.arm != NULL)
		take_record(c, c->exp.arm);
}

/* ---- what the current configuration has -------------------------------- */

/* An arm of the current configuration (weight: the first experiment naming it). */
struct current_arm {
	struct arm_tally *t;
	unsigned weight;
};

/* The arms the current configuration names, each once (tallies made for those not seen
 * yet, so a configured arm shows with zeros); returns how many. */
static size_t current_arms(const struct config *cfg, struct current_arm *out, size_t max)
{
	size_t n = 0;

	for (size_t l = 0; l <= cfg->nlisten; l++) {
		const struct experiment_config *x = l < cfg->nlisten ? &cfg->listen[l].experiment
								      : &cfg->experiment;
		for (size_t i = 0; i < x->narms; i++) {
			struct arm_tally *t = tally_get(x->arm[i].name);
			size_t k;
			if (t == NULL)
				continue;
			for (k = 0; k < n && out[k].t != t; k++)
				;
			if (k == n && n < max) {
				out[n].t = t;
				out[n++].weight = x->arm[i].weight;
			}
		}
	}
	return n;
}

/* The weight the current configuration gives t, 0 if it names it no more. */
static unsigned weight_of(const struct arm_tally *t, const struct current_arm *cur, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (cur[k].t == t)
			return cur[k].weight;
	return 0;
}

/* Everything the renderers need, computed once per request. */
struct view {
	struct current_arm cur[EXPERIMENT_MAX_TRACKED];
	size_t ncur;
	struct verdict_arm v[EXPERIMENT_MAX_TRACKED];	/* per tally, same index */
	struct verdict_arm vc[EXPERIMENT_MAX_TRACKED];	/* the current arms, in order */
	char verdict[512];
};

static void build_view(const struct config *cfg, struct view *w)
{
	static double scratch[EXPERIMENT_WINDOW];

	w->ncur = current_arms(cfg, w->cur, EXPERIMENT_MAX_TRACKED);
	for (size_t i = 0; i < ntally; i++)
		verdict_summarize(&w->v[i], tally[i].name, tally[i].goodput, tally[i].stalled,
				  tally[i].wlen, scratch);
	for (size_t k = 0; k < w->ncur; k++)
		w->vc[k] = w->v[w->cur[k].t - tally];
	verdict_sentence(w->vc, w->ncur, w->verdict, sizeof(w->verdict));
}

/* ---- JSON ------------------------------------------------------------- */

static void json_ci(struct evbuffer *o, const char *key, bool ok, struct interval ci)
{
	if (ok)
		evbuffer_add_printf(o, ",\"%s\":[%.0f,%.0f]", key, ci.lo, ci.hi);
	else
		evbuffer_add_printf(o, ",\"%s\":null", key);
}

static void json_arm(struct evbuffer *o, const struct arm_tally *t, const struct verdict_arm *v,
		     unsigned weight)
{
	evbuffer_add_printf(o, "{\"name\":\"%s\",\"configured\":%s,\"weight\":%u,"
			    "\"connections\":%" PRIu64 ",\"responses\":%" PRIu64 ",\"aborted\":%"
			    PRIu64 ",\"bytes\":%" PRIu64 ",\"body_seconds\":%.6f,\"stalls\":{",
			    t->name, weight > 0 ? "true" : "false", weight, t->connections,
			    t->responses, t->aborted, t->bytes, (double)t->body_us / 1e6);
	for (int i = 0; i < STALL_CAUSE_MAX; i++)
		evbuffer_add_printf(o, "%s\"%s\":%" PRIu64, i ? "," : "",
				    stall_cause_name((enum stall_cause)i), t->stalls[i]);
	evbuffer_add_printf(o, "},\"stall_seconds\":%.3f,\"mitigations\":%" PRIu64
			    ",\"large_responses\":%" PRIu64 ",\"window\":{\"n\":%zu,\"stalled\":%zu",
			    (double)t->stall_ms / 1000, t->mitigations, t->large, v->n, v->stalled);
	if (v->n > 0) {
		evbuffer_add_printf(o, ",\"stall_rate\":%.6f,\"stall_rate_ci95\":[%.6f,%.6f]"
				    ",\"goodput_median\":%.0f", (double)v->stalled / (double)v->n,
				    v->stall_ci.lo, v->stall_ci.hi, v->median);
		json_ci(o, "goodput_median_ci95", v->median_ci_ok, v->median_ci);
		evbuffer_add_printf(o, ",\"goodput_p10\":%.0f", v->p10);
		json_ci(o, "goodput_p10_ci95", v->p10_ci_ok, v->p10_ci);
	} else {
		evbuffer_add_printf(o, ",\"stall_rate\":null,\"stall_rate_ci95\":null,"
				    "\"goodput_median\":null,\"goodput_median_ci95\":null,"
				    "\"goodput_p10\":null,\"goodput_p10_ci95\":null");
	}
	evbuffer_add_printf(o, "}}");
}

static void json_view(struct evbuffer *o, const struct view *w)
{
	evbuffer_add_printf(o, "{\"window\":%d,\"large_body_bytes\":%d,\"arms\":[",
			    EXPERIMENT_WINDOW, EXPERIMENT_LARGE_BODY);
	for (size_t i = 0; i < ntally; i++) {
		if (i)
			evbuffer_add(o, ",", 1);
		json_arm(o, &tally[i], &w->v[i], weight_of(&tally[i], w->cur, w->ncur));
	}
	/* the verdict's characters are the arms' names, digits and punctuation: no
	 * escaping needed */
	evbuffer_add_printf(o, "],\"verdict\":\"%s\"}", w->verdict);
}

static void experiment_json_locked(const struct config *cfg, struct evbuffer *out)
{
	static struct view w;

	build_view(cfg, &w);
	json_view(out, &w);
}

static void experiment_stats_member_locked(const struct config *cfg, struct evbuffer *out)
{
	static struct view w;

	build_view(cfg, &w);
	if (ntally == 0)
		return;
	evbuffer_add_printf(out, ",\"experiment\":");
	json_view(out, &w);
}

/* ---- text ------------------------------------------------------------- */

#define MIB (1024.0 * 1024.0)

static void experiment_text_locked(const struct config *cfg, struct evbuffer *o)
{
	static struct view w;

	build_view(cfg, &w);
	if (ntally == 0) {
		evbuffer_add_printf(o, "no experiment configured\n");
		return;
	}
	evbuffer_add_printf(o, "experiment: each arm's last %d responses with a body of %d MiB "
			    "or more; goodput in MiB/s, [95 %% interval]\n", EXPERIMENT_WINDOW,
			    EXPERIMENT_LARGE_BODY >> 20);
	evbuffer_add_printf(o, "%-16s %6s %7s %8s %6s %7s  %-22s %-24s %s\n", "arm", "weight", "conns",
			    "resp", "large", "stalled", "stall rate", "median", "p10");
	for (size_t i = 0; i < ntally; i++) {
		const struct verdict_arm *v = &w.v[i];
		unsigned weight = weight_of(&tally[i], w.cur, w.ncur);
		char wt[16], rate[40] = "-", med[48] = "-", p10[48] = "-";

		if (weight > 0)
			snprintf(wt, sizeof(wt), "%u", weight);
		else
			snprintf(wt, sizeof(wt), "removed");
		if (v->n > 0) {
			snprintf(rate, sizeof(rate), "%.1f %% [%.1f, %.1f]",
				 100.0 * (double)v->stalled / (double)v->n, 100 * v->stall_ci.lo,
				 100 * v->stall_ci.hi);
			if (v->median_ci_ok)
				snprintf(med, sizeof(med), "%.1f [%.1f, %.1f]", v->median / MIB,
					 v->median_ci.lo / MIB, v->median_ci.hi / MIB);
			else
				snprintf(med, sizeof(med), "%.1f", v->median / MIB);
			if (v->p10_ci_ok)
				snprintf(p10, sizeof(p10), "%.1f [%.1f, %.1f]", v->p10 / MIB,
					 v->p10_ci.lo / MIB, v->p10_ci.hi / MIB);
			else
				snprintf(p10, sizeof(p10), "%.1f", v->p10 / MIB);
		}
		evbuffer_add_printf(o, "%-16s %6s %7" PRIu64 " %8" PRIu64 " %6zu %7zu  %-22s %-24s %s\n",
				    tally[i].name, wt, tally[i].connections, tally[i].responses,
				    v->n, v->stalled, rate, med, p10);
	}
	evbuffer_add_printf(o, "verdict: %s\n", w.verdict);
}

/* ---- Prometheus ------------------------------------------------------- */

static void prom_head(struct evbuffer *o, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One counter family with a value per arm; field: offset of a uint64_t in arm_tally. */
static void prom_counter(struct evbuffer *o, const char *name, const char *help, size_t field)
{
	prom_head(o, name, "counter", help);
	for (size_t i = 0; i < ntally; i++) {
		uint64_t v;
		memcpy(&v, (const char *)&tally[i] + field, sizeof(v));
		evbuffer_add_printf(o, "%s{arm=\"%s\"} %" PRIu64 "\n", name, tally[i].name, v);
	}
}

static void experiment_prometheus_locked(const struct config *cfg, struct evbuffer *o)
{
	struct current_arm cur[EXPERIMENT_MAX_TRACKED];
	size_t ncur = current_arms(cfg, cur, EXPERIMENT_MAX_TRACKED);
	const char *h = "ktlsd_experiment_goodput_bytes_per_second";

	if (ntally == 0)
		return;
	prom_head(o, "ktlsd_experiment_arm_weight", "gauge",
		  "Weight of each experiment arm in the current configuration (0: removed by a "
		  "reload; its counters stay).");
	for (size_t i = 0; i < ntally; i++)
		evbuffer_add_printf(o, "ktlsd_experiment_arm_weight{arm=\"%s\"} %u\n", tally[i].name,
				    weight_of(&tally[i], cur, ncur));
	prom_counter(o, "ktlsd_experiment_connections_total", "Connections assigned to each arm.",
		     offsetof(struct arm_tally, connections));
	prom_counter(o, "ktlsd_experiment_responses_total", "Responses completed, by arm.",
		     offsetof(struct arm_tally, responses));
	prom_counter(o, "ktlsd_experiment_responses_aborted_total",
		     "Responses cut short (client gone, I/O error, timeout), by arm.",
		     offsetof(struct arm_tally, aborted));
	prom_counter(o, "ktlsd_experiment_bytes_sent_total",
		     "Head and body bytes of completed responses, by arm.",
		     offsetof(struct arm_tally, bytes));
	prom_head(o, "ktlsd_experiment_body_seconds_total", "counter",
		  "Seconds from request to the last body byte handed over, summed over completed "
		  "responses, by arm.");
	for (size_t i = 0; i < ntally; i++)
		evbuffer_add_printf(o, "ktlsd_experiment_body_seconds_total{arm=\"%s\"} %.6f\n",
				    tally[i].name, (double)tally[i].body_us / 1e6);
	prom_head(o, "ktlsd_experiment_stalls_total", "counter",
		  "Send stalls by arm and guessed cause.");
	for (size_t i = 0; i < ntally; i++)
		for (int k = 0; k < STALL_CAUSE_MAX; k++)
			evbuffer_add_printf(o, "ktlsd_experiment_stalls_total{arm=\"%s\",cause=\"%s\"} %"
					    PRIu64 "\n", tally[i].name,
					    stall_cause_name((enum stall_cause)k), tally[i].stalls[k]);
	prom_head(o, "ktlsd_experiment_stall_seconds_total", "counter",
		  "Time spent in ended stalls, by arm.");
	for (size_t i = 0; i < ntally; i++)
		evbuffer_add_printf(o, "ktlsd_experiment_stall_seconds_total{arm=\"%s\"} %.3f\n",
				    tally[i].name, (double)tally[i].stall_ms / 1000);
	prom_counter(o, "ktlsd_experiment_mitigations_total",
		     "Steps taken by send mode auto, by arm.", offsetof(struct arm_tally, mitigations));
	prom_head(o, h, "histogram", "Goodput of responses with a body of 1 MiB or more, also "
		  "those cut short (body bytes handed over, over seconds from the request to the "
		  "last of them), by arm.");
	for (size_t i = 0; i < ntally; i++) {
		uint64_t cum = 0;
		for (size_t b = 0; b < NBUCKETS; b++) {
			cum += tally[i].bucket[b];
			evbuffer_add_printf(o, "%s_bucket{arm=\"%s\",le=\"%.0f\"} %" PRIu64 "\n", h,
					    tally[i].name, goodput_le[b], cum);
		}
		evbuffer_add_printf(o, "%s_bucket{arm=\"%s\",le=\"+Inf\"} %" PRIu64 "\n"
				    "%s_sum{arm=\"%s\"} %.3f\n%s_count{arm=\"%s\"} %" PRIu64 "\n",
				    h, tally[i].name, tally[i].large, h, tally[i].name,
				    tally[i].goodput_sum, h, tally[i].name, tally[i].large);
	}
}

/* ---- the module's entry points: one lock (workers call them from their threads, the
 * views from the main thread; each holds it for a few counter updates or one rendering) */

void experiment_assign(struct conn *c, size_t listener)
{
	pthread_mutex_lock(&lock);
	experiment_assign_locked(c, listener);
	pthread_mutex_unlock(&lock);
}

void experiment_note_response(struct conn *c, bool aborted)
{
	pthread_mutex_lock(&lock);
	experiment_note_response_locked(c, aborted);
	pthread_mutex_unlock(&lock);
}

void experiment_note_close(struct conn *c)
{
	pthread_mutex_lock(&lock);
	experiment_note_close_locked(c);
	pthread_mutex_unlock(&lock);
}

void experiment_json(const struct config *cfg, struct evbuffer *out)
{
	pthread_mutex_lock(&lock);
	experiment_json_locked(cfg, out);
	pthread_mutex_unlock(&lock);
}

void experiment_stats_member(const struct config *cfg, struct evbuffer *out)
{
	pthread_mutex_lock(&lock);
	experiment_stats_member_locked(cfg, out);
	pthread_mutex_unlock(&lock);
}

void experiment_text(const struct config *cfg, struct evbuffer *o)
{
	pthread_mutex_lock(&lock);
	experiment_text_locked(cfg, o);
	pthread_mutex_unlock(&lock);
}

void experiment_prometheus(const struct config *cfg, struct evbuffer *o)
{
	pthread_mutex_lock(&lock);
	experiment_prometheus_locked(cfg, o);
	pthread_mutex_unlock(&lock);
}
