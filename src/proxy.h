/* proxy.h — the PROXY protocol (HAProxy's, versions 1 and 2), receiving side: the header
 * parser, the trusted-source list, and the names of the reasons a connection on a proxy
 * listener is closed before its TLS handshake.
 *
 * Pure functions: no I/O, no allocation, no global state, so they are unit tested and
 * fuzzed directly. The daemon (conn.c) reads the socket and calls proxy_parse() on what it
 * has; the parser tells it how many bytes the header takes, so that not one byte of the
 * TLS ClientHello behind it is consumed. */
#ifndef KTLSD_PROXY_H
#define KTLSD_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXY_V1_MAX 107		/* a whole v1 line with its CRLF (the spec's bound) */
#define PROXY_V2_FIXED 16		/* v2: signature (12), version/command, family, length */
/* The largest v2 length (address block + TLVs) accepted. The spec's addresses take at most
 * 216 bytes (AF_UNIX); the rest is room for a balancer's TLVs (ALPN, authority, a unique ID
 * of up to 128 bytes, a cloud's endpoint ID). A longer header is refused as oversized. */
#define PROXY_V2_MAX_LEN 1024
#define PROXY_HEADER_MAX (PROXY_V2_FIXED + PROXY_V2_MAX_LEN)

enum proxy_status {
	PROXY_NEED_MORE,	/* every byte so far belongs to the header: read more */
	PROXY_DONE,		/* a complete header of res->len bytes */
	PROXY_INVALID,		/* not a valid header (res->reason, res->oversized) */
};

struct proxy_result {
	size_t len;		/* DONE: the header's bytes (the caller consumes exactly these) */
	int version;		/* 1 or 2 once the signature is recognised, else 0 */
	bool local;		/* DONE: v2 LOCAL command (a balancer's own health check) */
	/* DONE: src and dst (AF_INET or AF_INET6, ports set) are the client's connection as
	 * the balancer saw it. false for v1 UNKNOWN, v2 LOCAL and v2 UNSPEC/UNIX addresses:
	 * the socket's own addresses stay the ones to show. */
	bool has_addr;
	struct sockaddr_storage src, dst;
	bool oversized;		/* INVALID because a bound was passed (107 bytes, v2 length) */
	const char *reason;	/* INVALID: what is wrong, static text */
};

/* Parse the start of a connection's input, buf[0..len), as a PROXY header (v1 or v2).
 * NEED_MORE only if all len bytes can still be the beginning of a header (so the caller
 * may consume them all) and len < PROXY_HEADER_MAX; DONE with res->len <= len: bytes
 * after res->len are not the header's; INVALID with res->reason as soon as the bytes
 * given cannot start a valid header (a wrong first byte is enough). v2 TLVs are skipped,
 * but must tile the rest of the header exactly. res is always fully written. */
enum proxy_status proxy_parse(const void *buf, size_t len, struct proxy_result *res);

/* An address block: family AF_INET or AF_INET6, addr in network order, the first bits
 * bits significant (the rest zero). */
struct proxy_cidr {
	int family;
	uint8_t addr[16];
	unsigned bits;
};

/* Parse "ADDR/BITS" or a bare "ADDR" (all bits) for IPv4 or IPv6 into out. Returns 0, or
 * -1 with *why (static text) for a bad address, a prefix length out of range, or host
 * bits set beyond the prefix ("10.0.0.1/8": a typo more often than not). */
int proxy_cidr_parse(const char *s, struct proxy_cidr *out, const char **why);

/* c as "ADDR/BITS" into out (outsz bytes; 64 always suffice). */
void proxy_cidr_format(const struct proxy_cidr *c, char *out, size_t outsz);

/* Is sa (AF_INET or AF_INET6; an IPv4-mapped IPv6 address counts as its IPv4 address)
 * inside one of list[0..n)? Other families never match. */
bool proxy_cidr_match(const struct proxy_cidr *list, size_t n, const struct sockaddr *sa);

/* Why a connection on a proxy listener was closed before TLS (the label of
 * ktlsd_proxy_rejected_total). */
enum proxy_reject {
	PROXY_REJECT_UNTRUSTED,	/* source not in proxy_trusted: closed at accept */
	PROXY_REJECT_MALFORMED,	/* not a valid PROXY header */
	PROXY_REJECT_OVERSIZED,	/* over the length bound */
	PROXY_REJECT_TIMEOUT,	/* the header did not complete within the handshake timeout */
	PROXY_REJECT_CLOSED,	/* the peer closed or reset before the header was complete */
	PROXY_REJECT_MAX
};

/* "untrusted", "malformed", "oversized", "timeout", "closed"; "?" out of range. */
const char *proxy_reject_name(enum proxy_reject r);

/* What an accepted header asked for: carry a client's address, or nothing (LOCAL). */
enum proxy_command {
	PROXY_COMMAND_PROXY,	/* v1, v2 PROXY, UNKNOWN: a relayed client connection */
	PROXY_COMMAND_LOCAL,	/* v2 LOCAL: the balancer's own connection (a health check) */
	PROXY_COMMAND_MAX
};

/* "proxy", "local"; "?" out of range. */
const char *proxy_command_name(enum proxy_command c);

#endif
