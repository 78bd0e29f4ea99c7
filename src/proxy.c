/* proxy.c — see proxy.h. Follows HAProxy's proxy-protocol.txt (v1 and v2). */
#include "proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v2_signature[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};
static const char v1_signature[] = "PROXY ";

/* v2 address block sizes (spec 2.2) */
#define V2_INET_LEN 12
#define V2_INET6_LEN 36
#define V2_UNIX_LEN 216

static enum proxy_status invalid(struct proxy_result *res, const char *why, bool oversized)
{
	res->reason = why;
	res->oversized = oversized;
	return PROXY_INVALID;
}

/* ---- version 1: "PROXY TCP4 SRC DST SPORT DPORT\r\n" ------------------- */

/* The text field f[0..n) as a port (decimal, 0..65535) into *port (host order). */
static bool v1_port(const char *f, size_t n, uint16_t *port)
{
	unsigned long v = 0;

	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (f[i] < '0' || f[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(f[i] - '0');
	}
	if (v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* The text field f[0..n) as an address of family into ss (port set apart). Only the
 * characters of a numeric address reach inet_pton(), which then checks the form (no
 * leading zeros in IPv4, at most one "::" in IPv6). */
static bool v1_addr(int family, const char *f, size_t n, uint16_t port,
		    struct sockaddr_storage *ss)
{
	char text[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(text))
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = f[i];
		bool digit = ch >= '0' && ch <= '9';
		bool hex = (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
		if (!digit && ch != '.' && (family == AF_INET || (!hex && ch != ':')))
			return false;
	}
	memcpy(text, f, n);
	text[n] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;
		s->sin_family = AF_INET;
		s->sin_port = htons(port);
		return inet_pton(AF_INET, text, &s->sin_addr) == 1;
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(port);
	return inet_pton(AF_INET6, text, &s6->sin6_addr) == 1;
}

static enum proxy_status parse_v1(const char *p, size_t len, struct proxy_result *res)
{
	size_t sig = sizeof(v1_signature) - 1;
	const char *nl, *f[5];
	size_t n, fl[5], nf = 0, pos;
	uint16_t sport, dport;
	int family;

	if (memcmp(p, v1_signature, len < sig ? len : sig) != 0)
		return invalid(res, "not a PROXY header (bad v1 signature)", false);
	if (len >= sig)
		res->version = 1;
	nl = memchr(p, '\n', len < PROXY_V1_MAX ? len : PROXY_V1_MAX);
	if (nl == NULL)
		return len >= PROXY_V1_MAX ?
		       invalid(res, "v1 line longer than 107 bytes", true) : PROXY_NEED_MORE;
	n = (size_t)(nl - p);		/* the line without its LF */
	if (n < sig || p[n - 1] != '\r')
		return invalid(res, "v1 line does not end with CRLF", false);
	n--;
	/* fields separated by exactly one space; the first is the protocol */
	for (pos = sig; pos <= n && nf < sizeof(f) / sizeof(f[0]); nf++) {
		const char *sp = memchr(p + pos, ' ', n - pos);
		size_t end = sp ? (size_t)(sp - p) : n;
		f[nf] = p + pos;
		fl[nf] = end - pos;
		pos = end + 1;
		if (nf == 0 && fl[0] == 7 && memcmp(f[0], "UNKNOWN", 7) == 0) {
			/* the rest of the line is to be ignored (spec 2.1) */
			res->len = (size_t)(nl - p) + 1;
			return PROXY_DONE;
		}
	}
	if (nf == 0 || fl[0] != 4 || (memcmp(f[0], "TCP4", 4) != 0 && memcmp(f[0], "TCP6", 4) != 0))
		return invalid(res, "v1 protocol is not TCP4, TCP6 or UNKNOWN", false);
	if (nf != 5 || pos <= n)
		return invalid(res, "v1 line needs exactly: protocol, source and destination "
			       "address, source and destination port, one space apart", false);
	family = f[0][3] == '4' ? AF_INET : AF_INET6;
	if (!v1_port(f[3], fl[3], &sport) || !v1_port(f[4], fl[4], &dport))
		return invalid(res, "v1 port is not a number from 0 to 65535", false);
	if (!v1_addr(family, f[1], fl[1], sport, &res->src) ||
	    !v1_addr(family, f[2], fl[2], dport, &res->dst))
		return invalid(res, family == AF_INET ? "v1 TCP4 address is not IPv4" :
			       "v1 TCP6 address is not IPv6", false);
	res->has_addr = true;
	res->len = (size_t)(nl - p) + 1;
	return PROXY_DONE;
}

/* ---- version 2: binary ------------------------------------------------ */

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The TLVs in p[0..n) must tile it exactly (type, 2-byte length, value). */
static bool v2_tlvs_ok(const uint8_t *p, size_t n)
{
	size_t off = 0;

	while (off < n) {
		if (n - off < 3 || be16(p + off + 1) > n - off - 3)
			return false;
		off += 3 + be16(p + off + 1);
	}
	return true;
}

static enum proxy_status parse_v2(const uint8_t *p, size_t len, struct proxy_result *res)
{
	size_t sig = sizeof(v2_signature), total;
	unsigned cmd, fam = 0;
	uint16_t hl;

	if (memcmp(p, v2_signature, len < sig ? len : sig) != 0)
		return invalid(res, "not a PROXY header (bad v2 signature)", false);
	if (len < sig)
		return PROXY_NEED_MORE;
	res->version = 2;
	if (len == sig)
		return PROXY_NEED_MORE;
	if (p[12] >> 4 != 2)
		return invalid(res, "v2 version is not 2", false);
	cmd = p[12] & 0x0F;
	if (cmd > 1)
		return invalid(res, "v2 command is neither LOCAL nor PROXY", false);
	if (len >= 14) {
		fam = p[13];
		/* LOCAL ignores the family; with PROXY, only the spec's combinations */
		if (cmd == 1 && fam != 0x00 && fam != 0x11 && fam != 0x21 && fam != 0x31) {
			bool dgram = fam == 0x12 || fam == 0x22 || fam == 0x32;
			return invalid(res, dgram ? "v2 datagram transport on a stream listener" :
				       "v2 address family unknown", false);
		}
	}
	if (len < PROXY_V2_FIXED)
		return PROXY_NEED_MORE;
	hl = be16(p + 14);
	if (hl > PROXY_V2_MAX_LEN)
		return invalid(res, "v2 length over 1024 bytes", true);
	total = PROXY_V2_FIXED + hl;
	if (len < total)
		return PROXY_NEED_MORE;
	res->len = total;
	if (cmd == 0) {		/* LOCAL: the connection's own endpoints (spec 2.2) */
		res->local = true;
		return PROXY_DONE;
	}
	const uint8_t *a = p + PROXY_V2_FIXED;
	size_t alen = 0;
	switch (fam) {
	case 0x00:		/* UNSPEC: the whole block is ignored */
		return PROXY_DONE;
	case 0x11:
		alen = V2_INET_LEN;
		break;
	case 0x21:
		alen = V2_INET6_LEN;
		break;
	default:		/* 0x31, UNIX: no address to show, the socket's stays */
		alen = V2_UNIX_LEN;
		break;
	}
	if (hl < alen)
		return invalid(res, "v2 length shorter than its address block", false);
	if (!v2_tlvs_ok(a + alen, hl - alen))
		return invalid(res, "v2 TLVs do not fill the header exactly", false);
	if (fam == 0x11) {
		struct sockaddr_in *s = (struct sockaddr_in *)&res->src,
				   *d = (struct sockaddr_in *)&res->dst;
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);		/* both in network order */
		memcpy(&d->sin_port, a + 10, 2);
		res->has_addr = true;
	} else if (fam == 0x21) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&res->src,
				    *d = (struct sockaddr_in6 *)&res->dst;
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
		res->has_addr = true;
	}
	return PROXY_DONE;
}

enum proxy_status proxy_parse(const void *buf, size_t len, struct proxy_result *res)
{
	const uint8_t *p = buf;

	memset(res, 0, sizeof(*res));
	if (len == 0)
		return PROXY_NEED_MORE;
	if (p[0] == v1_signature[0])
		return parse_v1(buf, len, res);
	if (p[0] == v2_signature[0])
		return parse_v2(p, len, res);
	return invalid(res, "not a PROXY header", false);
}

/* ---- trusted sources -------------------------------------------------- */

int proxy_cidr_parse(const char *s, struct proxy_cidr *out, const char **why)
{
	char text[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s), nbytes;
	unsigned long bits = 0, max;

	memset(out, 0, sizeof(*out));
	*why = "not an IPv4 or IPv6 address";
	if (alen == 0 || alen >= sizeof(text))
		return -1;
	memcpy(text, s, alen);
	text[alen] = '\0';
	if (inet_pton(AF_INET, text, out->addr) == 1)
		out->family = AF_INET;
	else if (inet_pton(AF_INET6, text, out->addr) == 1)
		out->family = AF_INET6;
	else
		return -1;
	max = out->family == AF_INET ? 32 : 128;
	nbytes = max / 8;
	if (slash == NULL) {
		bits = max;
	} else {
		const char *d = slash + 1;
		*why = "prefix length is not a number";
		if (*d == '\0' || strlen(d) > 3)
			return -1;
		for (; *d; d++) {
			if (*d < '0' || *d > '9')
				return -1;
			bits = bits * 10 + (unsigned long)(*d - '0');
		}
		*why = out->family == AF_INET ? "prefix length over 32" : "prefix length over 128";
		if (bits > max)
			return -1;
	}
	out->bits = (unsigned)bits;
	for (size_t i = 0; i < nbytes; i++) {
		size_t keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;
		uint8_t mask = (uint8_t)(0xFF00u >> keep);
		if (out->addr[i] & (uint8_t)~mask) {
			*why = "address has bits set beyond the prefix length";
			return -1;
		}
	}
	*why = NULL;
	return 0;
}

void proxy_cidr_format(const struct proxy_cidr *c, char *out, size_t outsz)
{
	char text[INET6_ADDRSTRLEN] = "?";

	inet_ntop(c->family, c->addr, text, sizeof(text));
	snprintf(out, outsz, "%s/%u", text, c->bits);
}

bool proxy_cidr_match(const struct proxy_cidr *list, size_t n, const struct sockaddr *sa)
{
	const uint8_t *a;
	int family;

	if (sa->sa_family == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		a = a6->s6_addr;
		family = AF_INET6;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			a += 12;
			family = AF_INET;
		}
	} else {
		return false;
	}
	for (size_t k = 0; k < n; k++) {
		const struct proxy_cidr *c = &list[k];
		unsigned whole = c->bits / 8, rest = c->bits % 8;
		if (c->family != family || memcmp(a, c->addr, whole) != 0)
			continue;
		if (rest == 0 || ((a[whole] ^ c->addr[whole]) & (uint8_t)(0xFF00u >> rest)) == 0)
			return true;
	}
	return false;
}

const char *proxy_reject_name(enum proxy_reject r)
{
	static const char *const names[PROXY_REJECT_MAX] = {
		"untrusted", "malformed", "oversized", "timeout", "closed",
	};

	return (unsigned)r < PROXY_REJECT_MAX ? names[r] : "?";
}

const char *proxy_command_name(enum proxy_command c)
{
	static const char *const names[PROXY_COMMAND_MAX] = { "proxy", "local" };

	return (unsigned)c < PROXY_COMMAND_MAX ? names[c] : "?";
}
