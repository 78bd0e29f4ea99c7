/* fuzz_proxy.c — libFuzzer harness for proxy_parse() and the trusted-source blocks.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc tests/fuzz/fuzz_proxy.c src/proxy.c
 *
 * Input: the first bytes of a connection. abort() on any broken promise of proxy.h: a
 * header longer than its input or the bound, a prefix of a complete header that is not
 * "need more", a result that changes when bytes follow the header, addresses of another
 * family. The input up to its first NUL (at most 63 bytes) is also parsed as a CIDR block
 * and matched against the header's source. */
#include "proxy.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check(bool ok)
{
	if (!ok)
		abort();
}

/* Parse a heap copy of exactly len bytes, so ASan sees a read past its end. */
static enum proxy_status fuzz_parse(const uint8_t *data, size_t len, struct proxy_result *res)
{
	uint8_t *copy = malloc(len ? len : 1);
	enum proxy_status st;

	if (copy == NULL)
		abort();
	memcpy(copy, data, len);
	st = proxy_parse(copy, len, res);
	free(copy);
	return st;
}

static void fuzz_cidr(const uint8_t *data, size_t size, const struct proxy_result *res)
{
	char text[64];
	size_t n = 0;
	struct proxy_cidr c;
	const char *why = NULL;

	while (n < size && n < sizeof(text) - 1 && data[n] != 0) {
		text[n] = (char)data[n];
		n++;
	}
	text[n] = '\0';
	if (proxy_cidr_parse(text, &c, &why) != 0) {
		fuzz_check(why != NULL);
		return;
	}
	fuzz_check(why == NULL);
	fuzz_check((c.family == AF_INET && c.bits <= 32) || (c.family == AF_INET6 && c.bits <= 128));
	if (res->has_addr)
		(void)proxy_cidr_match(&c, 1, (const struct sockaddr *)&res->src);
	/* a block contains its own address (but an IPv4-mapped one is matched as IPv4) */
	{
		struct sockaddr_storage ss;
		bool mapped = false;
		memset(&ss, 0, sizeof(ss));
		ss.ss_family = (sa_family_t)c.family;
		if (c.family == AF_INET) {
			memcpy(&((struct sockaddr_in *)&ss)->sin_addr, c.addr, 4);
		} else {
			struct in6_addr *a6 = &((struct sockaddr_in6 *)&ss)->sin6_addr;
			memcpy(a6, c.addr, 16);
			mapped = IN6_IS_ADDR_V4MAPPED(a6);
		}
		fuzz_check(mapped || proxy_cidr_match(&c, 1, (struct sockaddr *)&ss));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_result res, again;
	enum proxy_status st = fuzz_parse(data, size, &res);

	switch (st) {
	case PROXY_NEED_MORE:
		fuzz_check(size < PROXY_HEADER_MAX && res.reason == NULL);
		break;
	case PROXY_INVALID:
		fuzz_check(res.reason != NULL && res.reason[0] != '\0');
		break;
	case PROXY_DONE:
		fuzz_check(res.len > 0 && res.len <= size && res.len <= PROXY_HEADER_MAX);
		fuzz_check(res.reason == NULL && !res.oversized);
		fuzz_check(res.version == 1 || res.version == 2);
		fuzz_check(res.version == 2 || (res.len <= PROXY_V1_MAX &&
						data[res.len - 2] == '\r' && data[res.len - 1] == '\n'));
		fuzz_check(!res.local || (res.version == 2 && !res.has_addr));
		if (res.has_addr)
			fuzz_check((res.src.ss_family == AF_INET || res.src.ss_family == AF_INET6) &&
				   res.src.ss_family == res.dst.ss_family);
		/* the header alone gives the same; one byte less asks for more */
		fuzz_check(fuzz_parse(data, res.len, &again) == PROXY_DONE && again.len == res.len &&
			   again.has_addr == res.has_addr && again.local == res.local &&
			   memcmp(&again.src, &res.src, sizeof(res.src)) == 0);
		fuzz_check(fuzz_parse(data, res.len - 1, &again) == PROXY_NEED_MORE);
		break;
	default:
		abort();
	}
	fuzz_cidr(data, size, &res);
	return 0;
}
