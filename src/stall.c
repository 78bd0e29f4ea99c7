/* stall.c — see stall.h. Includes <linux/tcp.h> for the full struct tcp_info (glibc's
 * <netinet/tcp.h> lacks tcpi_notsent_bytes and tcpi_bytes_acked); this is the only file
 * that reads TCP_INFO. */
#include "autoconf.h"
#include "stall.h"
#include "conn.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/tcp.h>

#ifndef SOL_TCP
#define SOL_TCP 6
#endif

/* One TLS 1.3 record on the wire: 16384 bytes of data + 1 type + 16 tag + 5 header.
 * "About one record" allows a little more for a record with the response head. */
#define ONE_RECORD_WIRE (16384 + 22)
#define CORKED_MAX (ONE_RECORD_WIRE + 2048)

static const char *const cause_names[STALL_CAUSE_MAX] = {
	"corked-record", "persist-crawl", "zero-window", "congestion", "unknown",
};

const char *stall_cause_name(enum stall_cause c)
{
	return c < STALL_CAUSE_MAX ? cause_names[c] : "unknown";
}

uint64_t stall_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void stall_tcp_snapshot(int fd, struct tcp_snapshot *s)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(s, 0, sizeof(*s));
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len) == -1)
		return;
	s->valid = true;
	s->snd_mss = ti.tcpi_snd_mss;
	s->unacked = ti.tcpi_unacked;
	s->probes = ti.tcpi_probes;
	s->backoff = ti.tcpi_backoff;
	s->rtt_us = ti.tcpi_rtt;
	s->snd_cwnd = ti.tcpi_snd_cwnd;
	s->retransmits = ti.tcpi_retransmits;
	s->total_retrans = ti.tcpi_total_retrans;
	s->bytes_acked = ti.tcpi_bytes_acked;
	s->notsent = ti.tcpi_notsent_bytes;
	/* tcpi_snd_wnd exists from Linux 5.4; an older kernel returns a shorter struct */
	if (len >= offsetof(struct tcp_info, tcpi_snd_wnd) + sizeof(ti.tcpi_snd_wnd))
		s->snd_wnd = ti.tcpi_snd_wnd;
	else
		s->snd_wnd = UINT32_MAX;
}

enum stall_cause stall_guess_cause(const struct tcp_snapshot *s)
{
	if (!s->valid)
		return STALL_UNKNOWN;
	if (s->snd_wnd == 0 || (s->probes > 0 && s->unacked == 0 && s->notsent > CORKED_MAX))
		return STALL_ZERO_WINDOW;
	if (s->unacked > 0 && (s->retransmits > 0 || s->backoff > 0))
		return STALL_CONGESTION;
	if (s->notsent > 0 && s->notsent <= CORKED_MAX && s->unacked == 0)
		return STALL_CORKED_RECORD;
	if (s->unacked > 0)
		return STALL_CONGESTION;
	return STALL_UNKNOWN;
}

bool stall_corked(const struct tcp_snapshot *s)
{
	return s->valid && s->notsent > 0 && s->notsent <= CORKED_MAX && s->unacked == 0 &&
	       s->snd_wnd >= s->notsent;
}

uint32_t stall_sysctl_notsent_lowat(void)
{
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_notsent_lowat", "re");
	unsigned long v = UINT32_MAX;

	if (f == NULL)
		return UINT32_MAX;
	if (fscanf(f, "%lu", &v) != 1 || v == 0 || v > UINT32_MAX)
		v = UINT32_MAX;
	fclose(f);
	return (uint32_t)v;
}

/* The response is still sending, or the kernel still holds unsent bytes of it. */
static bool has_data_to_send(struct conn *c, const struct tcp_snapshot *s)
{
	return c->state == CONN_SEND_HEADERS || c->state == CONN_SEND_BODY ||
	       (s->valid && s->notsent > 0);
}

static void stall_end(struct conn *c, uint64_t now)
{
	uint64_t ms = (now - c->stall.stall_began_us) / 1000;

	c->stall.in_stall = false;
	c->stall.crawl = false;
	c->rec.stall_ms_total += ms;
	if (ms > c->rec.stall_ms_max)
		c->rec.stall_ms_max = ms;
	log_msg(LOG_LEVEL_INFO, "conn %llu: %s: stall ended after %llu ms (%s)",
		(unsigned long long)c->id, c->peer, (unsigned long long)ms,
		stall_cause_name(c->rec.last_cause));
	c->stall.report(c, STALL_EV_END, c->rec.last_cause, ms);
}

static void stall_begin(struct conn *c, uint64_t began, enum stall_cause cause,
			const struct tcp_snapshot *s, bool crawl)
{
	c->stall.in_stall = true;
	c->stall.crawl = crawl;
	c->stall.stall_began_us = began;
	c->rec.stalls++;
	c->rec.stall_snap = *s;
	c->rec.last_cause = cause;
}

/* Tick every threshold/2 (at least 50 ms): a stall is seen within threshold + tick. */
static void arm_tick(struct conn *c)
{
	uint64_t threshold_us = (uint64_t)c->cfg->stall.threshold_ms * 1000;
	uint64_t tick_us = threshold_us / 2 > 50000 ? threshold_us / 2 : 50000;
	struct timeval tv = { (time_t)(tick_us / 1000000), (suseconds_t)(tick_us % 1000000) };

	evtimer_add(c->stall.ev_tick, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct tcp_snapshot s;
	uint64_t now = stall_now_us();
	uint64_t sent = c->rec.bytes_head + c->rec.bytes_body;
	uint64_t threshold_us = (uint64_t)c->cfg->stall.threshold_ms * 1000;

	(void)fd;
	(void)what;
	stall_tcp_snapshot(c->fd, &s);
	if (c->stall.in_stall && c->stall.crawl &&
	    now - c->stall.last_crawl_wait_us > CRAWL_WINDOW_MS * 1000)
		stall_end(c, c->stall.last_crawl_wait_us);	/* no timer-ended wait for a while */
	if (sent != c->stall.mark_sent || (s.valid && s.bytes_acked != c->stall.mark_acked)) {
		c->stall.mark_sent = sent;
		c->stall.mark_acked = s.bytes_acked;
		c->stall.last_progress_us = now;
		if (c->stall.in_stall && !c->stall.crawl)
			stall_end(c, now);
	} else if (!c->stall.in_stall && has_data_to_send(c, &s) &&
		   now - c->stall.last_progress_us >= threshold_us) {
		if (c->stall.in_stall)	/* a crawl that stopped progressing altogether */
			stall_end(c, now);
		stall_begin(c, c->stall.last_progress_us, stall_guess_cause(&s), &s, false);
		log_msg(LOG_LEVEL_WARN, "conn %llu: %s: stall: no progress for %llu ms, cause %s "
			"(sender %s, mss %u, notsent %u, unacked %u, snd_wnd %u, probes %u, backoff %u, "
			"rtt %u us, cwnd %u, retrans %u)",
			(unsigned long long)c->id, c->peer, (unsigned long long)((now - c->stall.last_progress_us) / 1000),
			stall_cause_name(c->rec.last_cause), c->rec.sender, s.snd_mss, s.notsent,
			s.unacked, s.snd_wnd, s.probes, s.backoff, s.rtt_us, s.snd_cwnd, s.total_retrans);
		c->stall.report(c, STALL_EV_BEGIN, c->rec.last_cause, 0);
	}
	if (!has_data_to_send(c, &s)) {
		if (c->stall.in_stall)
			stall_end(c, now);
		c->stall.active = false;	/* idle: stop ticking until the next response */
		return;
	}
	arm_tick(c);
}

int stall_init(struct conn *c, uint32_t lowat, stall_report_fn *report)
{
	c->stall.report = report;
	c->stall.lowat = lowat;
	c->rec.notsent_lowat = c->stall.lowat;
	c->stall.ev_tick = evtimer_new(event_get_base(c->ev_timer), on_tick, c);
	return c->stall.ev_tick ? 0 : -1;
}

void stall_fini(struct conn *c)
{
	if (c->stall.in_stall)
		stall_end(c, stall_now_us());
	if (c->stall.ev_tick != NULL)
		event_free(c->stall.ev_tick);
	c->stall.ev_tick = NULL;
}

void stall_busy(struct conn *c)
{
	if (c->stall.active)
		return;
	c->stall.active = true;
	c->stall.crawl_waits = 0;
	c->stall.last_progress_us = stall_now_us();
	c->stall.mark_sent = c->rec.bytes_head + c->rec.bytes_body;
	c->stall.mark_acked = UINT64_MAX;	/* unknown: the first tick reads TCP_INFO */
	/* Only arm the timer: most responses are over long before the first tick, and a
	 * TCP_INFO read per response would cost a system call per request. */
	arm_tick(c);
}

/* An EAGAIN on a kTLS socket: is the wait that begins a corked one? */
static void check_corked(struct conn *c)
{
	struct tcp_snapshot s;

	stall_tcp_snapshot(c->fd, &s);
	c->stall.wait_corked = stall_corked(&s);
	if (!c->stall.wait_corked)
		return;
	c->rec.corked_waits++;
	c->stall.crawl_snap = s;
	if (c->rec.corked_waits == 1)
		log_msg(LOG_LEVEL_INFO, "conn %llu: %s: corked record at EAGAIN (sender %s, mss %u, "
			"notsent %u, unacked 0, snd_wnd %u, lowat %u)", (unsigned long long)c->id,
			c->peer, c->rec.sender, s.snd_mss, s.notsent, s.snd_wnd, c->stall.lowat);
	c->stall.report(c, STALL_EV_CORKED, STALL_CORKED_RECORD, 0);
}

void stall_note_call(struct conn *c, uint64_t t0, uint64_t t1, bool again)
{
	c->rec.send_calls++;
	if (t1 - t0 > c->rec.longest_call_us)
		c->rec.longest_call_us = t1 - t0;
	if (again) {
		c->rec.eagain++;
		if (c->stall.wait_began_us == 0) {
			c->stall.wait_began_us = t1;
			/* a corked wait needs a low-water mark near one record: above that
			 * an EAGAIN means more than a record unsent, so no TCP_INFO read */
			if (c->ktls.tx && c->stall.lowat <= STALL_WATCH_LOWAT_MAX)
				check_corked(c);
		}
	}
}

void stall_note_writable(struct conn *c)
{
	uint64_t now, w;

	if (c->stall.wait_began_us == 0)
		return;
	now = stall_now_us();
	w = now - c->stall.wait_began_us;
	if (w > c->rec.longest_wait_us)
		c->rec.longest_wait_us = w;
	if (c->stall.wait_corked)
		log_debug("conn %llu: corked wait ended after %llu us", (unsigned long long)c->id,
			  (unsigned long long)w);
	if (c->stall.wait_corked && w >= CRAWL_WAIT_MS * 1000) {
		/* a timer ended this corked wait: one more step of a crawl, if the first of
		 * them began less than CRAWL_WINDOW_MS ago (whatever came between) */
		if (c->stall.crawl_waits == 0 ||
		    c->stall.wait_began_us - c->stall.crawl_began_us > CRAWL_WINDOW_MS * 1000) {
			c->stall.crawl_waits = 0;
			c->stall.crawl_began_us = c->stall.wait_began_us;
		}
		c->stall.crawl_waits++;
		c->stall.last_crawl_wait_us = now;
		if (c->stall.crawl_waits >= CRAWL_WAITS && !c->stall.in_stall) {
			stall_begin(c, c->stall.crawl_began_us, STALL_PERSIST_CRAWL,
				    &c->stall.crawl_snap, true);
			log_msg(LOG_LEVEL_WARN, "conn %llu: %s: stall: crawling at timer cadence, %u "
				"corked waits of >= %d ms in %llu ms, cause %s (sender %s, mss %u, "
				"notsent %u, unacked %u, snd_wnd %u)", (unsigned long long)c->id, c->peer,
				c->stall.crawl_waits, CRAWL_WAIT_MS,
				(unsigned long long)((now - c->stall.crawl_began_us) / 1000),
				stall_cause_name(STALL_PERSIST_CRAWL), c->rec.sender,
				c->stall.crawl_snap.snd_mss, c->stall.crawl_snap.notsent,
				c->stall.crawl_snap.unacked, c->stall.crawl_snap.snd_wnd);
			c->stall.report(c, STALL_EV_BEGIN, STALL_PERSIST_CRAWL, 0);
		}
	}
	c->stall.wait_began_us = 0;
	c->stall.wait_corked = false;
}

uint64_t stall_current_ms(const struct conn *c)
{
	return c->stall.in_stall ? (stall_now_us() - c->stall.stall_began_us) / 1000 : 0;
}
