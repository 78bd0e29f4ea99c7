/* counters.h — the server-wide counters, declared once.
 *
 * One table (an X-macro, as haproxy declares its stats fields) gives each counter its
 * enum, its key in the JSON and text views and its Prometheus family, so /stats,
 * /stats/text, `ktlsd stats` and /metrics are generated from the same rows and cannot
 * disagree. Adding a counter is adding a row; stats.c renders every row.
 *
 * COUNTER(ID, json key, Prometheus family, Prometheus labels or "", unit, help)
 *   one value. Consecutive rows of the same family share its HELP/TYPE lines (help of
 *   the first row), so a family can be split over rows that keep their own JSON keys.
 * FAMILY(ID, n, json key, Prometheus family, label name, name of i, help)
 *   n values, one per label value name(i); JSON and text show them as a group.
 *
 * unit: UNIT_COUNT, or UNIT_MS (kept in milliseconds, exported in seconds as Prometheus
 * wants base units). */
#ifndef KTLSD_COUNTERS_H
#define KTLSD_COUNTERS_H

#include "config.h"	/* send_mode_name */
#include "proxy.h"	/* proxy_reject_name */
#include "stall.h"	/* stall_cause_name */

#define KTLSD_COUNTERS(COUNTER, FAMILY)							\
	COUNTER(ACCEPTED, "accepted", "ktlsd_connections_accepted_total", "", UNIT_COUNT,	\
		"Accepted connections.")						\
	COUNTER(CLOSED, "closed", "ktlsd_connections_closed_total", "", UNIT_COUNT,		\
		"Closed connections.")							\
	COUNTER(REQUESTS, "requests", "ktlsd_requests_total", "", UNIT_COUNT,		\
		"HTTP requests answered or refused.")					\
	COUNTER(BYTES_SENT, "bytes_sent", "ktlsd_response_bytes_total", "", UNIT_COUNT,	\
		"Response bytes (head and body) of finished responses.")		\
	COUNTER(HANDSHAKES_FAILED, "handshakes_failed", "ktlsd_handshakes_failed_total", "",	\
		UNIT_COUNT, "TLS handshakes that failed.")				\
	COUNTER(TIMEOUTS, "timeouts", "ktlsd_timeouts_total", "", UNIT_COUNT,		\
		"Connections closed by a state timeout.")				\
	COUNTER(ABORTED, "aborted", "ktlsd_responses_aborted_total", "", UNIT_COUNT,	\
		"Responses cut short (client gone, I/O error, file truncated, timeout).")	\
	COUNTER(KTLS_TX, "ktls_tx", "ktlsd_ktls_tx_total", "result=\"kernel\"", UNIT_COUNT,	\
		"Handshakes by where TLS records are encrypted afterwards.")		\
	COUNTER(KTLS_FALLBACK, "ktls_fallback", "ktlsd_ktls_tx_total", "result=\"fallback\"",	\
		UNIT_COUNT, "")								\
	COUNTER(KTLS_DISABLED, "ktls_disabled", "ktlsd_ktls_tx_total", "result=\"disabled\"",	\
		UNIT_COUNT, "")								\
	FAMILY(STALLS, STALL_CAUSE_MAX, "stalls", "ktlsd_stalls_total", "cause",		\
	       stall_cause_name, "Send stalls detected, by guessed cause.")		\
	COUNTER(STALL_MS, "stall_ms_total", "ktlsd_stall_seconds_total", "", UNIT_MS,	\
		"Time spent in ended stalls.")						\
	COUNTER(CORKED_WAITS, "corked_waits", "ktlsd_corked_waits_total", "", UNIT_COUNT,	\
		"Waits for writability that began with one TLS record corked in the kernel "	\
		"and nothing in flight (kTLS).")					\
	COUNTER(MITIGATIONS, "mitigations", "ktlsd_mitigations_total", "", UNIT_COUNT,	\
		"Steps taken by send mode auto against a stall or a corked record (raise "	\
		"TCP_NOTSENT_LOWAT, one-record calls, switch to write).")		\
	COUNTER(AUTO_CAPPED_STARTS, "auto_capped_starts", "ktlsd_auto_capped_starts_total",	\
		"", UNIT_COUNT, "Connections that send mode auto started with the lever it " \
		"learned.")								\
	FAMILY(BYTES_BY_SENDER, SEND_MODE_AUTO, "bytes_by_sender", "ktlsd_bytes_sent_total",	\
	       "mode", send_mode_name,							\
	       "Response bytes handed to the kernel or OpenSSL, by sender.")		\
	FAMILY(PROXY_HEADERS, PROXY_COMMAND_MAX, "proxy_headers", "ktlsd_proxy_headers_total",	\
	       "command", proxy_command_name,						\
	       "PROXY protocol headers accepted on proxy listeners, by command (local: a "	\
	       "balancer's health check).")						\
	FAMILY(PROXY_REJECTED, PROXY_REJECT_MAX, "proxy_rejected", "ktlsd_proxy_rejected_total",	\
	       "reason", proxy_reject_name,						\
	       "Connections on proxy listeners closed before TLS, by reason.")

enum counter_unit { UNIT_COUNT, UNIT_MS };

/* CTR_<ID> for a counter; CTR_<ID> + i for value i of a family. */
enum counter {
#define KTLSD_CTR_ENUM(id, ...) CTR_##id,
#define KTLSD_FAM_ENUM(id, n, ...) CTR_##id, CTR_##id##_LAST_ = CTR_##id + (n) - 1,
	KTLSD_COUNTERS(KTLSD_CTR_ENUM, KTLSD_FAM_ENUM)
#undef KTLSD_CTR_ENUM
#undef KTLSD_FAM_ENUM
	CTR_MAX
};

#endif
