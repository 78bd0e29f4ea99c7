/* test_proxy.c — unit tests for proxy.h: the PROXY header parser (v1, v2) and the
 * trusted-source blocks. Each case is data: bytes in, status, header length and the
 * client's address out. Every case is also run on each of its prefixes (which must all
 * ask for more, or fail the same way as soon as the fault is in view) and with bytes
 * after it (which must change nothing). assert() aborts on the first failure. */
#undef NDEBUG
#include "proxy.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* a byte string literal and its length (it may hold NULs) */
#define B(s) (const uint8_t *)(s), sizeof(s) - 1

#define SIG "\r\n\r\n\0\r\nQUIT\n"
#define V4_BLOCK "\xcb\x00\x71\x07" "\xc0\x00\x02\x01" "\x15\xb3" "\x20\xfb"	/* 203.0.113.7:5555 → 192.0.2.1:8443 */
#define V6_BLOCK "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x07" \
		 "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01" "\xd4\x31" "\x01\xbb"	/* [2001:db8::7]:54321 → [2001:db8::1]:443 */

enum expect_addr { NO_ADDR, ADDR };

struct proxy_case {
	const char *name;
	const uint8_t *in;
	size_t len;
	enum proxy_status st;
	size_t hlen;		/* DONE: header length */
	int version;		/* res.version expected */
	enum expect_addr addr;	/* DONE: has_addr */
	const char *src;	/* with ADDR: "ip:port" / "[ip]:port" */
	const char *dst;
	bool local;		/* DONE: v2 LOCAL */
	bool oversized;		/* INVALID */
};

static const struct proxy_case cases[] = {
	/* ---- v1 ---- */
	{ "v1 TCP4", B("PROXY TCP4 203.0.113.7 192.0.2.1 5555 8443\r\n"), PROXY_DONE, 44, 1, ADDR,
	  "203.0.113.7:5555", "192.0.2.1:8443", false, false },
	{ "v1 TCP4, ClientHello behind it", B("PROXY TCP4 203.0.113.7 192.0.2.1 5555 8443\r\n\x16\x03\x01"),
	  PROXY_DONE, 44, 1, ADDR, "203.0.113.7:5555", "192.0.2.1:8443", false, false },
	{ "v1 TCP4 ports 0 and 65535", B("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"), PROXY_DONE,
	  44, 1, ADDR, "0.0.0.0:0", "255.255.255.255:65535", false, false },
	{ "v1 TCP6", B("PROXY TCP6 2001:db8::7 2001:db8::1 54321 443\r\n"), PROXY_DONE, 46, 1, ADDR,
	  "[2001:db8::7]:54321", "[2001:db8::1]:443", false, false },
	{ "v1 TCP6 IPv4-mapped", B("PROXY TCP6 ::ffff:203.0.113.7 ::1 1 2\r\n"), PROXY_DONE, 39, 1,
	  ADDR, "[::ffff:203.0.113.7]:1", "[::1]:2", false, false },
	{ "v1 TCP6 longest", B("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
			       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
	  PROXY_DONE, 104, 1, ADDR, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
	  "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", false, false },
	{ "v1 UNKNOWN short", B("PROXY UNKNOWN\r\n"), PROXY_DONE, 15, 1, NO_ADDR, NULL, NULL, false,
	  false },
	{ "v1 UNKNOWN, the rest ignored", B("PROXY UNKNOWN whatever is here\x01 1.2.3\r\nX"),
	  PROXY_DONE, 39, 1, NO_ADDR, NULL, NULL, false, false },
	{ "v1 UNKNOWN, 107 bytes exactly",
	  B("PROXY UNKNOWN 0123456789012345678901234567890123456789012345678901234567890123456789"
	    "012345678901234567890\r\n"), PROXY_DONE, 107, 1, NO_ADDR, NULL, NULL, false, false },
	{ "v1 108 bytes", B("PROXY UNKNOWN 0123456789012345678901234567890123456789012345678901234"
			    "56789012345678901234567890123456789012345678901\r\n"), PROXY_INVALID, 0, 1, NO_ADDR,
	  NULL, NULL, false, true },
	{ "v1 no CRLF in 107 bytes", B("PROXY TCP4 203.0.113.7 192.0.2.1 5555 8443            "
				       "                                                     "),
	  PROXY_INVALID, 0, 1, NO_ADDR, NULL, NULL, false, true },
	{ "v1 bare LF", B("PROXY TCP4 203.0.113.7 192.0.2.1 5555 8443\n"), PROXY_INVALID, 0, 1,
	  NO_ADDR, NULL, NULL, false, false },
	{ "v1 CR CR LF", B("PROXY TCP4 203.0.113.7 192.0.2.1 5555 8443\r\r\n"), PROXY_INVALID, 0, 1,
	  NO_ADDR, NULL, NULL, false, false },
	{ "v1 TCP5", B("PROXY TCP5 203.0.113.7 192.0.2.1 5555 8443\r\n"), PROXY_INVALID, 0, 1, NO_ADDR,
	  NULL, NULL, false, false },
	{ "v1 lower case", B("PROXY tcp4 203.0.113.7 192.0.2.1 5555 8443\r\n"), PROXY_INVALID, 0, 1,
	  NO_ADDR, NULL, NULL, false, false },
	{ "v1 signature case", B("proxy TCP4 203.0.113.7 192.0.2.1 5555 8443\r\n"), PROXY_INVALID, 0,
	  0, NO_ADDR, NULL, NULL, false, false },
	{ "v1 no space", B("PROXY\r\n"), PROXY_INVALID, 0, 0, NO_ADDR, NULL, NULL, false, false },
	{ "v1 empty protocol", B("PROXY \r\n"), PROXY_INVALID, 0, 1, NO_ADDR, NULL, NULL, false,
	  false },
	{ "v1 UNKNOWNX", B("PROXY UNKNOWNX\r\n"), PROXY_INVALID, 0, 1, NO_ADDR, NULL, NULL, false,
	  false },
	{ "v1 TCP4 alone", B("PROXY TCP4\r\n"), PROXY_INVALID, 0, 1, NO_ADDR, NULL, NULL, false, false },
	{ "v1 a field missing", B("PROXY TCP4 203.0.113.7 192.0.2.1 5555\r\n"), PROXY_INVALID, 0, 1,
	  NO_ADDR, NULL, NULL, false, false },
	{ "v1 a field too many", B("PROXY TCP4 203.0.113.7 192.0.2.1 5555 8443 1\r\n"), PROXY_INVALID,
	  0, 1, NO_ADDR, NULL, NULL, false, false },
	{ "v1 trailing space", B("PROXY TCP4 203.0.113.7 192.0.2.1 5555 8443 \r\n"), PROXY_INVALID, 0,
	  1, NO_ADDR, NULL, NULL, false, false },
	{ "v1 two spaces", B("PROXY TCP4  203.0.113.7 192.0.2.1 5555 8443\r\n"), PROXY_INVALID, 0, 1,
	  NO_ADDR, NULL, NULL, false, false },
	{ "v1 tab", B("PROXY TCP4 203.0.113.7\t192.0.2.1 5555 8443\r\n"), PROXY_INVALID, 0, 1,
	  NO_ADDR, NULL, NULL, false, false },
	{ "v1 port 65536", B("PROXY TCP4 203.0.113.7 192.0.2.1 65536 8443\r\n"), PROXY_INVALID, 0, 1,
	  NO_ADDR, NULL, NULL, false, false },
	{ "v1 port 6 digits", B("PROXY TCP4 203.0.113.7 192.0.2.1 005555 8443\r\n"), PROXY_INVALID, 0,
	  1, NO_ADDR, NULL, NULL, false, false },
	{ "v1 port sign", B("PROXY TCP4 203.0.113.7 192.0.2.1 +555 8443\r\n"), PROXY_INVALID, 0, 1,
	  NO_ADDR, NULL, NULL, false, false },
	{ "v1 port hex", B("PROXY TCP4 203.0.113.7 192.0.2.1 5555 0x20\r\n"), PROXY_INVALID, 0, 1,
	  NO_ADDR, NULL, NULL, false, false },
	{ "v1 short IPv4", B("PROXY TCP4 203.0.113 192.0.2.1 5555 8443\r\n"), PROXY_INVALID, 0, 1,
	  NO_ADDR, NULL, NULL, false, false },
	{ "v1 IPv4 octet 256", B("PROXY TCP4 256.0.113.7 192.0.2.1 5555 8443\r\n"), PROXY_INVALID, 0,
	  1, NO_ADDR, NULL, NULL, false, false },
	{ "v1 IPv4 leading zero", B("PROXY TCP4 203.0.113.07 192.0.2.1 5555 8443\r\n"), PROXY_INVALID,
	  0, 1, NO_ADDR, NULL, NULL, false, false },
	{ "v1 IPv6 in TCP4", B("PROXY TCP4 2001:db8::7 192.0.2.1 5555 8443\r\n"), PROXY_INVALID, 0, 1,
	  NO_ADDR, NULL, NULL, false, false },
	{ "v1 IPv4 in TCP6", B("PROXY TCP6 203.0.113.7 2001:db8::1 5555 8443\r\n"), PROXY_INVALID, 0,
	  1, NO_ADDR, NULL, NULL, false, false },
	{ "v1 IPv6 two ::", B("PROXY TCP6 2001::db8::7 2001:db8::1 5555 8443\r\n"), PROXY_INVALID, 0,
	  1, NO_ADDR, NULL, NULL, false, false },
	{ "v1 IPv6 zone", B("PROXY TCP6 fe80::1%eth0 2001:db8::1 5555 8443\r\n"), PROXY_INVALID, 0, 1,
	  NO_ADDR, NULL, NULL, false, false },
	{ "v1 NUL in an address", B("PROXY TCP4 203.0.113.7\0 192.0.2.1 5555 8443\r\n"),
	  PROXY_INVALID, 0, 1, NO_ADDR, NULL, NULL, false, false },
	{ "v1 host name", B("PROXY TCP4 localhost 192.0.2.1 5555 8443\r\n"), PROXY_INVALID, 0, 1,
	  NO_ADDR, NULL, NULL, false, false },

	/* ---- v2 ---- */
	{ "v2 PROXY TCP4", B(SIG "\x21\x11\x00\x0c" V4_BLOCK), PROXY_DONE, 28, 2, ADDR,
	  "203.0.113.7:5555", "192.0.2.1:8443", false, false },
	{ "v2 PROXY TCP4, ClientHello behind it", B(SIG "\x21\x11\x00\x0c" V4_BLOCK "\x16\x03\x01\x02"),
	  PROXY_DONE, 28, 2, ADDR, "203.0.113.7:5555", "192.0.2.1:8443", false, false },
	{ "v2 PROXY TCP4 with TLVs", B(SIG "\x21\x11\x00\x29" V4_BLOCK
				       "\x01\x00\x08" "http/1.1"	/* ALPN */
				       "\x02\x00\x09" "localhost"	/* authority */
				       "\x04\x00\x03" "\0\0\0"),	/* NOOP */
	  PROXY_DONE, 57, 2, ADDR, "203.0.113.7:5555", "192.0.2.1:8443", false, false },
	{ "v2 PROXY TCP4, an empty TLV", B(SIG "\x21\x11\x00\x0f" V4_BLOCK "\xe0\x00\x00"),
	  PROXY_DONE, 31, 2, ADDR, "203.0.113.7:5555", "192.0.2.1:8443", false, false },
	{ "v2 PROXY TCP6", B(SIG "\x21\x21\x00\x24" V6_BLOCK), PROXY_DONE, 52, 2, ADDR,
	  "[2001:db8::7]:54321", "[2001:db8::1]:443", false, false },
	{ "v2 PROXY TCP6 with a TLV", B(SIG "\x21\x21\x00\x29" V6_BLOCK "\x05\x00\x02" "id"),
	  PROXY_DONE, 57, 2, ADDR, "[2001:db8::7]:54321", "[2001:db8::1]:443", false, false },
	{ "v2 LOCAL", B(SIG "\x20\x00\x00\x00"), PROXY_DONE, 16, 2, NO_ADDR, NULL, NULL, true, false },
	{ "v2 LOCAL, a block and a family ignored", B(SIG "\x20\x77\x00\x03" "abc"), PROXY_DONE, 19,
	  2, NO_ADDR, NULL, NULL, true, false },
	{ "v2 LOCAL with a TCP4 block", B(SIG "\x20\x11\x00\x0c" V4_BLOCK "\x16"), PROXY_DONE, 28, 2,
	  NO_ADDR, NULL, NULL, true, false },
	{ "v2 PROXY UNSPEC", B(SIG "\x21\x00\x00\x02" "\xff\xff"), PROXY_DONE, 18, 2, NO_ADDR, NULL,
	  NULL, false, false },
	{ "v2 TCP4 block too short", B(SIG "\x21\x11\x00\x0b" "\xcb\x00\x71\x07\xc0\x00\x02\x01\x15\xb3\x20"),
	  PROXY_INVALID, 0, 2, NO_ADDR, NULL, NULL, false, false },
	{ "v2 TCP6 block too short", B(SIG "\x21\x21\x00\x0c" V4_BLOCK), PROXY_INVALID, 0, 2, NO_ADDR,
	  NULL, NULL, false, false },
	{ "v2 TLV cut short", B(SIG "\x21\x11\x00\x0e" V4_BLOCK "\x01\x00"), PROXY_INVALID, 0, 2,
	  NO_ADDR, NULL, NULL, false, false },
	{ "v2 TLV longer than the header", B(SIG "\x21\x11\x00\x10" V4_BLOCK "\x01\x00\x02" "h"),
	  PROXY_INVALID, 0, 2, NO_ADDR, NULL, NULL, false, false },
	{ "v2 version 1", B(SIG "\x11\x11\x00\x0c" V4_BLOCK), PROXY_INVALID, 0, 2, NO_ADDR, NULL, NULL,
	  false, false },
	{ "v2 version 3", B(SIG "\x31\x11\x00\x0c" V4_BLOCK), PROXY_INVALID, 0, 2, NO_ADDR, NULL, NULL,
	  false, false },
	{ "v2 command 2", B(SIG "\x22\x11\x00\x0c" V4_BLOCK), PROXY_INVALID, 0, 2, NO_ADDR, NULL, NULL,
	  false, false },
	{ "v2 command 15", B(SIG "\x2f\x11\x00\x0c" V4_BLOCK), PROXY_INVALID, 0, 2, NO_ADDR, NULL, NULL,
	  false, false },
	{ "v2 family 4", B(SIG "\x21\x41\x00\x0c" V4_BLOCK), PROXY_INVALID, 0, 2, NO_ADDR, NULL, NULL,
	  false, false },
	{ "v2 transport 3", B(SIG "\x21\x13\x00\x0c" V4_BLOCK), PROXY_INVALID, 0, 2, NO_ADDR, NULL,
	  NULL, false, false },
	{ "v2 UDP4", B(SIG "\x21\x12\x00\x0c" V4_BLOCK), PROXY_INVALID, 0, 2, NO_ADDR, NULL, NULL,
	  false, false },
	{ "v2 UDP6", B(SIG "\x21\x22\x00\x24" V6_BLOCK), PROXY_INVALID, 0, 2, NO_ADDR, NULL, NULL,
	  false, false },
	{ "v2 INET with unspecified transport", B(SIG "\x21\x10\x00\x0c" V4_BLOCK), PROXY_INVALID, 0,
	  2, NO_ADDR, NULL, NULL, false, false },
	{ "v2 length 65535", B(SIG "\x21\x11\xff\xff" V4_BLOCK), PROXY_INVALID, 0, 2, NO_ADDR, NULL,
	  NULL, false, true },
	{ "v2 length 1025", B(SIG "\x21\x11\x04\x01" V4_BLOCK), PROXY_INVALID, 0, 2, NO_ADDR, NULL,
	  NULL, false, true },
	{ "v2 LOCAL length 65535", B(SIG "\x20\x00\xff\xff"), PROXY_INVALID, 0, 2, NO_ADDR, NULL, NULL,
	  false, true },
	{ "v2 signature wrong at byte 5", B("\r\n\r\n\0\n\nQUIT\n\x21\x11\x00\x0c" V4_BLOCK),
	  PROXY_INVALID, 0, 0, NO_ADDR, NULL, NULL, false, false },
	{ "v2 signature wrong at byte 11", B("\r\n\r\n\0\r\nQUIT\r\x21\x11\x00\x0c" V4_BLOCK),
	  PROXY_INVALID, 0, 0, NO_ADDR, NULL, NULL, false, false },

	/* ---- neither ---- */
	{ "a TLS ClientHello", B("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), PROXY_INVALID, 0, 0,
	  NO_ADDR, NULL, NULL, false, false },
	{ "plain HTTP", B("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), PROXY_INVALID, 0, 0, NO_ADDR, NULL,
	  NULL, false, false },
	{ "blank lines", B("\r\n\r\n\r\n"), PROXY_INVALID, 0, 0, NO_ADDR, NULL, NULL, false, false },
	{ "a CRLF: maybe v2", B("\r\n"), PROXY_NEED_MORE, 0, 0, NO_ADDR, NULL, NULL, false, false },
	{ "v1 prefix", B("PROXY TCP4 203.0.1"), PROXY_NEED_MORE, 0, 1, NO_ADDR, NULL, NULL, false,
	  false },
	{ "v2 prefix", B(SIG "\x21\x11\x00\x0c" "\xcb\x00"), PROXY_NEED_MORE, 0, 2, NO_ADDR, NULL,
	  NULL, false, false },
	{ "a NUL", B("\0"), PROXY_INVALID, 0, 0, NO_ADDR, NULL, NULL, false, false },
};

static void format(const struct sockaddr_storage *ss, char *out, size_t outsz)
{
	char a[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)ss;
		inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
		snprintf(out, outsz, "%s:%u", a, ntohs(s->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)ss;
		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
		snprintf(out, outsz, "[%s]:%u", a, ntohs(s->sin6_port));
	} else {
		snprintf(out, outsz, "family %d", ss->ss_family);
	}
}

/* Parse in[0..len) from a fresh heap copy (so ASan sees any read past len). */
static enum proxy_status parse_copy(const uint8_t *in, size_t len, struct proxy_result *res)
{
	uint8_t *copy = malloc(len ? len : 1);
	enum proxy_status st;

	assert(copy != NULL);
	memcpy(copy, in, len);
	st = proxy_parse(copy, len, res);
	free(copy);
	return st;
}

static void check_whole(const struct proxy_case *c, const struct proxy_result *res,
			enum proxy_status st)
{
	char src[80], dst[80];

	if (st != c->st || (st == PROXY_DONE && res->len != c->hlen) || res->version != c->version)
		fprintf(stderr, "case \"%s\": status %d len %zu version %d (%s), expected %d len %zu "
			"version %d\n", c->name, (int)st, res->len, res->version,
			res->reason ? res->reason : "-", (int)c->st, c->hlen, c->version);
	assert(st == c->st);
	assert(res->version == c->version);
	if (st == PROXY_NEED_MORE) {
		assert(res->reason == NULL && !res->oversized && c->len < PROXY_HEADER_MAX);
		return;
	}
	if (st == PROXY_INVALID) {
		assert(res->reason != NULL && res->reason[0] != '\0');
		assert(res->oversized == c->oversized);
		return;
	}
	assert(res->reason == NULL && !res->oversized);
	assert(res->len == c->hlen && res->len <= c->len && res->len <= PROXY_HEADER_MAX);
	assert(res->local == c->local);
	assert(res->has_addr == (c->addr == ADDR));
	if (c->addr == NO_ADDR)
		return;
	format(&res->src, src, sizeof(src));
	format(&res->dst, dst, sizeof(dst));
	if (strcmp(src, c->src) != 0 || strcmp(dst, c->dst) != 0)
		fprintf(stderr, "case \"%s\": %s -> %s, expected %s -> %s\n", c->name, src, dst,
			c->src, c->dst);
	assert(strcmp(src, c->src) == 0 && strcmp(dst, c->dst) == 0);
}

static void run_case(const struct proxy_case *c)
{
	struct proxy_result res, part;
	enum proxy_status st = parse_copy(c->in, c->len, &res);
	size_t upto = st == PROXY_DONE ? res.len : c->len;
	bool failed_early = false;

	check_whole(c, &res, st);
	/* Every shorter prefix of a header asks for more: the caller may consume it all. An
	 * invalid input may fail on a prefix already, then with every longer one too. */
	for (size_t n = 0; n < upto; n++) {
		enum proxy_status p = parse_copy(c->in, n, &part);
		if (st == PROXY_DONE || !failed_early) {
			if (p == PROXY_INVALID && st == PROXY_INVALID) {
				failed_early = true;
				continue;
			}
			if (p != PROXY_NEED_MORE)
				fprintf(stderr, "case \"%s\": prefix of %zu bytes gave %d (%s)\n", c->name,
					n, (int)p, part.reason ? part.reason : "-");
			assert(p == PROXY_NEED_MORE);
			assert(n < PROXY_HEADER_MAX);
		} else {
			assert(p == PROXY_INVALID);
		}
	}
	/* what follows a complete header is not looked at */
	if (st == PROXY_DONE) {
		uint8_t more[PROXY_HEADER_MAX + 64];
		assert(res.len + 64 <= sizeof(more));
		memcpy(more, c->in, res.len);
		memset(more + res.len, 0xee, 64);
		assert(parse_copy(more, res.len + 64, &part) == PROXY_DONE && part.len == res.len);
		assert(part.has_addr == res.has_addr && part.local == res.local);
	}
}

/* The longest v2 header accepted: length 1024, a NOOP TLV filling it. One more byte of
 * length is oversized, seen from the 16 fixed bytes alone. */
static void test_v2_bounds(void)
{
	uint8_t h[PROXY_HEADER_MAX + 1];
	struct proxy_result res;
	size_t tlv = PROXY_V2_MAX_LEN - 12 - 3;

	memcpy(h, SIG, 12);
	h[12] = 0x21;
	h[13] = 0x11;
	h[14] = PROXY_V2_MAX_LEN >> 8;
	h[15] = PROXY_V2_MAX_LEN & 0xff;
	memcpy(h + 16, V4_BLOCK, 12);
	h[28] = 0x04;
	h[29] = (uint8_t)(tlv >> 8);
	h[30] = (uint8_t)(tlv & 0xff);
	memset(h + 31, 0, tlv);
	assert(parse_copy(h, PROXY_HEADER_MAX, &res) == PROXY_DONE && res.len == PROXY_HEADER_MAX);
	assert(res.has_addr);
	assert(parse_copy(h, PROXY_HEADER_MAX - 1, &res) == PROXY_NEED_MORE);
	h[15]++;
	assert(parse_copy(h, 16, &res) == PROXY_INVALID && res.oversized);
	/* AF_UNIX: 216 bytes of addresses, nothing shown */
	h[13] = 0x31;
	h[14] = 0;
	h[15] = 216;
	memset(h + 16, 'u', 216);
	assert(parse_copy(h, 16 + 216, &res) == PROXY_DONE && res.len == 232 && !res.has_addr);
	h[15] = 215;
	assert(parse_copy(h, 16 + 215, &res) == PROXY_INVALID);
}

/* ---- trusted sources -------------------------------------------------- */

struct cidr_case {
	const char *text;
	bool ok;
	int family;
	unsigned bits;
};

static const struct cidr_case cidr_cases[] = {
	{ "127.0.0.0/8", true, AF_INET, 8 },
	{ "0.0.0.0/0", true, AF_INET, 0 },
	{ "192.0.2.1", true, AF_INET, 32 },
	{ "192.0.2.1/32", true, AF_INET, 32 },
	{ "198.51.100.128/25", true, AF_INET, 25 },
	{ "::1/128", true, AF_INET6, 128 },
	{ "::1", true, AF_INET6, 128 },
	{ "::/0", true, AF_INET6, 0 },
	{ "2001:db8::/32", true, AF_INET6, 32 },
	{ "2001:db8:8000::/33", true, AF_INET6, 33 },
	{ "10.0.0.1/8", false, 0, 0 },		/* host bits */
	{ "198.51.100.129/25", false, 0, 0 },
	{ "2001:db8::1/64", false, 0, 0 },
	{ "10.0.0.0/33", false, 0, 0 },
	{ "::/129", false, 0, 0 },
	{ "10.0.0.0/", false, 0, 0 },
	{ "10.0.0.0/-1", false, 0, 0 },
	{ "10.0.0.0/+8", false, 0, 0 },
	{ "10.0.0.0/8x", false, 0, 0 },
	{ "10.0.0.0/0008", false, 0, 0 },
	{ "/8", false, 0, 0 },
	{ "", false, 0, 0 },
	{ "10.0.0/8", false, 0, 0 },
	{ "localhost/8", false, 0, 0 },
	{ "10.0.0.0/8/8", false, 0, 0 },
	{ "fe80::1%lo/128", false, 0, 0 },
};

static void run_cidr_case(const struct cidr_case *c)
{
	struct proxy_cidr out;
	const char *why = "unset";
	int rc = proxy_cidr_parse(c->text, &out, &why);

	if ((rc == 0) != c->ok)
		fprintf(stderr, "cidr \"%s\": rc %d (%s)\n", c->text, rc, why ? why : "-");
	assert((rc == 0) == c->ok);
	if (!c->ok) {
		assert(why != NULL && why[0] != '\0');
		return;
	}
	assert(why == NULL && out.family == c->family && out.bits == c->bits);
	/* the text form parses back to the same block */
	{
		char text[64];
		struct proxy_cidr back;
		proxy_cidr_format(&out, text, sizeof(text));
		assert(proxy_cidr_parse(text, &back, &why) == 0);
		assert(memcmp(&back, &out, sizeof(out)) == 0);
		assert(strchr(c->text, '/') == NULL || strcmp(text, c->text) == 0);
	}
}

static struct sockaddr_storage sa(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
	} else {
		assert(inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1);
		ss.ss_family = AF_INET6;
	}
	return ss;
}

static void test_cidr_match(void)
{
	static const char *const blocks[] = { "127.0.0.0/8", "198.51.100.128/25", "::1/128",
		"2001:db8:8000::/33" };
	static const struct { const char *ip; bool in; } probes[] = {
		{ "127.0.0.1", true }, { "127.255.255.255", true }, { "126.255.255.255", false },
		{ "128.0.0.0", false }, { "198.51.100.128", true }, { "198.51.100.255", true },
		{ "198.51.100.127", false }, { "::1", true }, { "::2", false }, { "::", false },
		{ "2001:db8:8000::1", true }, { "2001:db8:ffff:ffff::", true },
		{ "2001:db8:7fff::1", false }, { "2001:db9:8000::", false },
		/* IPv4-mapped sources count as IPv4; IPv4 never matches an IPv6 block */
		{ "::ffff:127.0.0.1", true }, { "::ffff:198.51.100.1", false },
		{ "::ffff:198.51.100.200", true }, { "::127.0.0.1", false },
	};
	struct proxy_cidr list[ARRAY_LEN(blocks)], any4, any6;
	const char *why;
	struct sockaddr_storage ss;
	struct sockaddr un = { .sa_family = AF_UNIX };

	for (size_t i = 0; i < ARRAY_LEN(blocks); i++)
		assert(proxy_cidr_parse(blocks[i], &list[i], &why) == 0);
	for (size_t i = 0; i < ARRAY_LEN(probes); i++) {
		ss = sa(probes[i].ip);
		if (proxy_cidr_match(list, ARRAY_LEN(list), (struct sockaddr *)&ss) != probes[i].in)
			fprintf(stderr, "match %s: expected %d\n", probes[i].ip, probes[i].in);
		assert(proxy_cidr_match(list, ARRAY_LEN(list), (struct sockaddr *)&ss) == probes[i].in);
	}
	ss = sa("127.0.0.1");
	assert(!proxy_cidr_match(list, 0, (struct sockaddr *)&ss));
	assert(!proxy_cidr_match(list, ARRAY_LEN(list), &un));
	assert(proxy_cidr_parse("0.0.0.0/0", &any4, &why) == 0 &&
	       proxy_cidr_parse("::/0", &any6, &why) == 0);
	ss = sa("203.0.113.7");
	assert(proxy_cidr_match(&any4, 1, (struct sockaddr *)&ss));
	assert(!proxy_cidr_match(&any6, 1, (struct sockaddr *)&ss));
	ss = sa("2001:db8::7");
	assert(proxy_cidr_match(&any6, 1, (struct sockaddr *)&ss));
	assert(!proxy_cidr_match(&any4, 1, (struct sockaddr *)&ss));
}

static void test_reject_names(void)
{
	assert(strcmp(proxy_reject_name(PROXY_REJECT_UNTRUSTED), "untrusted") == 0);
	assert(strcmp(proxy_reject_name(PROXY_REJECT_CLOSED), "closed") == 0);
	assert(strcmp(proxy_reject_name(PROXY_REJECT_MAX), "?") == 0);
}

int main(void)
{
	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		run_case(&cases[i]);
	test_v2_bounds();
	for (size_t i = 0; i < ARRAY_LEN(cidr_cases); i++)
		run_cidr_case(&cidr_cases[i]);
	test_cidr_match();
	test_reject_names();
	printf("test_proxy: %zu header cases (each with its prefixes), %zu CIDR cases and 3 more "
	       "tests passed\n", ARRAY_LEN(cases), ARRAY_LEN(cidr_cases));
	return 0;
}
