/* test_escape.c — table-driven tests of escape.h: each name in, its HTML text, URI path
 * segment and JSON string body out, byte for byte. Inputs are copied into a buffer of
 * exactly their length, so AddressSanitizer catches any read past the end. Then two
 * properties over pseudo-random bytes: percent-decoding the URI form gives the input
 * back, and the HTML and JSON forms are well-formed UTF-8 with nothing left to escape. */
#undef NDEBUG
#include "escape.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define FFFD "\xef\xbf\xbd"
/* an input that may hold NUL bytes: its length comes from the literal */
#define IN(s) (s), sizeof(s) - 1

struct escape_case {
	const char *in;
	size_t len;
	const char *html, *uri, *json;
};

static const struct escape_case cases[] = {
	{ IN(""), "", "", "" },
	{ IN("plain.txt"), "plain.txt", "plain.txt", "plain.txt" },
	{ IN("A-Z_a.z~0-9"), "A-Z_a.z~0-9", "A-Z_a.z~0-9", "A-Z_a.z~0-9" },
	/* markup and quotes */
	{ IN("<script>"), "&lt;script&gt;", "%3Cscript%3E", "<script>" },
	{ IN("a\"b"), "a&quot;b", "a%22b", "a\\\"b" },
	{ IN("it's"), "it&#39;s", "it%27s", "it's" },
	{ IN("R&D"), "R&amp;D", "R%26D", "R&D" },
	{ IN("&amp;"), "&amp;amp;", "%26amp%3B", "&amp;" },
	{ IN("\"><img src=x onerror=alert(1)>"),
	  "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;",
	  "%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E",
	  "\\\"><img src=x onerror=alert(1)>" },
	/* what would change what a link names */
	{ IN("with space"), "with space", "with%20space", "with space" },
	{ IN("100%"), "100%", "100%25", "100%" },
	{ IN("%2e%2e"), "%2e%2e", "%252e%252e", "%2e%2e" },
	{ IN("a#b"), "a#b", "a%23b", "a#b" },
	{ IN("a?b=c"), "a?b=c", "a%3Fb%3Dc", "a?b=c" },
	{ IN("a/b"), "a/b", "a%2Fb", "a/b" },
	{ IN("a:b;c"), "a:b;c", "a%3Ab%3Bc", "a:b;c" },
	{ IN("javascript:x"), "javascript:x", "javascript%3Ax", "javascript:x" },
	{ IN("a+b,c!d*e(f)g@h$i"), "a+b,c!d*e(f)g@h$i", "a%2Bb%2Cc%21d%2Ae%28f%29g%40h%24i",
	  "a+b,c!d*e(f)g@h$i" },
	{ IN("back\\slash"), "back\\slash", "back%5Cslash", "back\\\\slash" },
	{ IN("`{|}^[]"), "`{|}^[]", "%60%7B%7C%7D%5E%5B%5D", "`{|}^[]" },
	/* UTF-8: 2, 3 and 4 bytes, and the edges of table 3-7 */
	{ IN("h\xc3\xa9llo"), "h\xc3\xa9llo", "h%C3%A9llo", "h\xc3\xa9llo" },
	{ IN("\xe6\x97\xa5\xe6\x9c\xac"), "\xe6\x97\xa5\xe6\x9c\xac", "%E6%97%A5%E6%9C%AC",
	  "\xe6\x97\xa5\xe6\x9c\xac" },
	{ IN("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80", "%F0%9F%98%80", "\xf0\x9f\x98\x80" },
	{ IN("\xc2\x80"), "\xc2\x80", "%C2%80", "\xc2\x80" },
	{ IN("\xe0\xa0\x80"), "\xe0\xa0\x80", "%E0%A0%80", "\xe0\xa0\x80" },
	{ IN("\xed\x9f\xbf"), "\xed\x9f\xbf", "%ED%9F%BF", "\xed\x9f\xbf" },
	{ IN("\xee\x80\x80"), "\xee\x80\x80", "%EE%80%80", "\xee\x80\x80" },
	{ IN("\xef\xbf\xbd"), FFFD, "%EF%BF%BD", FFFD },
	{ IN("\xf4\x8f\xbf\xbf"), "\xf4\x8f\xbf\xbf", "%F4%8F%BF%BF", "\xf4\x8f\xbf\xbf" },
	/* invalid UTF-8: every byte that starts no well-formed sequence is replaced */
	{ IN("\xff"), FFFD, "%FF", "\\ufffd" },
	{ IN("a\xfe" "b"), "a" FFFD "b", "a%FEb", "a\\ufffdb" },
	{ IN("\x80"), FFFD, "%80", "\\ufffd" },
	{ IN("\xc0\xae"), FFFD FFFD, "%C0%AE", "\\ufffd\\ufffd" },		/* overlong '.' */
	{ IN("\xc1\xbf"), FFFD FFFD, "%C1%BF", "\\ufffd\\ufffd" },
	{ IN("\xe0\x80\xae"), FFFD FFFD FFFD, "%E0%80%AE", "\\ufffd\\ufffd\\ufffd" },
	{ IN("\xed\xa0\x80"), FFFD FFFD FFFD, "%ED%A0%80", "\\ufffd\\ufffd\\ufffd" },	/* surrogate */
	{ IN("\xf0\x80\x80\xaf"), FFFD FFFD FFFD FFFD, "%F0%80%80%AF",
	  "\\ufffd\\ufffd\\ufffd\\ufffd" },
	{ IN("\xf4\x90\x80\x80"), FFFD FFFD FFFD FFFD, "%F4%90%80%80",
	  "\\ufffd\\ufffd\\ufffd\\ufffd" },						/* > U+10FFFF */
	{ IN("\xf5\x80\x80\x80"), FFFD FFFD FFFD FFFD, "%F5%80%80%80",
	  "\\ufffd\\ufffd\\ufffd\\ufffd" },
	{ IN("\xe2\x82"), FFFD FFFD, "%E2%82", "\\ufffd\\ufffd" },			/* cut short */
	{ IN("\xe2\x82x"), FFFD FFFD "x", "%E2%82x", "\\ufffd\\ufffdx" },
	{ IN("\xf0\x9f\x98"), FFFD FFFD FFFD, "%F0%9F%98", "\\ufffd\\ufffd\\ufffd" },
	{ IN("\xc3\xa9\xc3"), "\xc3\xa9" FFFD, "%C3%A9%C3", "\xc3\xa9\\ufffd" },
	{ IN("caf\xe9.txt"), "caf" FFFD ".txt", "caf%E9.txt", "caf\\ufffd.txt" },	/* Latin-1 */
	/* control bytes and DEL */
	{ IN("a\0b"), "a" FFFD "b", "a%00b", "a\\u0000b" },
	{ IN("\x01\ttab\n\r"), FFFD FFFD "tab" FFFD FFFD, "%01%09tab%0A%0D",
	  "\\u0001\\u0009tab\\u000a\\u000d" },
	{ IN("\x1f\x7f"), FFFD FFFD, "%1F%7F", "\\u001f\\u007f" },
	/* everything at once */
	{ IN("<a href=\"x\">&'%#? \xc3\xa9\xff</a>"),
	  "&lt;a href=&quot;x&quot;&gt;&amp;&#39;%#? \xc3\xa9" FFFD "&lt;/a&gt;",
	  "%3Ca%20href%3D%22x%22%3E%26%27%25%23%3F%20%C3%A9%FF%3C%2Fa%3E",
	  "<a href=\\\"x\\\">&'%#? \xc3\xa9\\ufffd</a>" },
};

/* Everything in b as a NUL-terminated string (the buffer is emptied). */
static char *take(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	assert(s != NULL);
	assert(evbuffer_remove(b, s, n) == (int)n);
	s[n] = '\0';
	return s;
}

static void show(const char *what, size_t i, const char *got, const char *want)
{
	fprintf(stderr, "case %zu %s:\n  got  \"", i, what);
	for (const char *p = got; *p; p++)
		fprintf(stderr, (unsigned char)*p >= 0x20 && *p != 0x7f ? "%c" : "\\x%02x",
			(unsigned char)*p);
	fprintf(stderr, "\"\n  want \"%s\"\n", want);
}

static void check(const char *what, size_t i, int (*fn)(struct evbuffer *, const char *, size_t),
		  const char *in, size_t len, const char *want)
{
	struct evbuffer *b = evbuffer_new();
	char *copy = malloc(len ? len : 1);
	char *got;

	assert(b != NULL && copy != NULL);
	memcpy(copy, in, len);
	/* something already in the buffer stays in front */
	assert(evbuffer_add(b, "[", 1) == 0);
	assert(fn(b, copy, len) == 0);
	free(copy);
	got = take(b);
	if (strncmp(got, "[", 1) != 0 || strcmp(got + 1, want) != 0) {
		show(what, i, got, want);
		assert(!"unexpected output");
	}
	free(got);
	evbuffer_free(b);
}

static void test_cases(void)
{
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		check("html", i, escape_html, cases[i].in, cases[i].len, cases[i].html);
		check("uri", i, escape_uri_segment, cases[i].in, cases[i].len, cases[i].uri);
		assert(escape_uri_segment_len(cases[i].in, cases[i].len) == strlen(cases[i].uri));
		check("json", i, escape_json, cases[i].in, cases[i].len, cases[i].json);
	}
}

static void test_utf8_len(void)
{
	static const struct {
		const char *in;
		size_t len, want;
	} u[] = {
		{ IN("a"), 1 }, { IN("\x00"), 1 }, { IN("\x7f"), 1 },
		{ IN("\xc2\x80"), 2 }, { IN("\xdf\xbf"), 2 }, { IN("\xc2"), 0 },
		{ IN("\xc2\x7f"), 0 }, { IN("\xc2\xc0"), 0 }, { IN("\xc1\xbf"), 0 },
		{ IN("\xe0\xa0\x80"), 3 }, { IN("\xe0\x9f\xbf"), 0 }, { IN("\xed\x9f\xbf"), 3 },
		{ IN("\xed\xa0\x80"), 0 }, { IN("\xef\xbf\xbf"), 3 }, { IN("\xe1\x80"), 0 },
		{ IN("\xe1\x80\x7f"), 0 }, { IN("\xf0\x90\x80\x80"), 4 }, { IN("\xf0\x8f\xbf\xbf"), 0 },
		{ IN("\xf4\x8f\xbf\xbf"), 4 }, { IN("\xf4\x90\x80\x80"), 0 },
		{ IN("\xf1\x80\x80"), 0 }, { IN("\xf5\x80\x80\x80"), 0 }, { IN("\xff"), 0 },
		{ IN("\x80"), 0 }, { IN("\xc3\xa9rest"), 2 },
	};

	for (size_t i = 0; i < ARRAY_LEN(u); i++) {
		unsigned char *copy = malloc(u[i].len);
		size_t got;

		assert(copy != NULL);
		memcpy(copy, u[i].in, u[i].len);
		got = escape_utf8_len(copy, u[i].len);
		free(copy);
		if (got != u[i].want)
			fprintf(stderr, "utf8 case %zu: %zu, want %zu\n", i, got, u[i].want);
		assert(got == u[i].want);
	}
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Is s[0..n) well-formed UTF-8 without control bytes, and free of what esc must have
 * escaped (chars)? */
static bool clean_text(const char *s, size_t n, const char *chars)
{
	for (size_t i = 0; i < n;) {
		size_t k = escape_utf8_len((const unsigned char *)s + i, n - i);

		if (k == 0 || (unsigned char)s[i] < 0x20 || s[i] == 0x7f || strchr(chars, s[i]))
			return false;
		i += k;
	}
	return true;
}

/* Pseudo-random names (a fixed LCG: the same every run), weighted towards the bytes that
 * matter: percent-decoding the URI form gives the bytes back, and the HTML and JSON forms
 * hold no raw markup, quote or invalid byte. */
static void test_properties(void)
{
	static const char interesting[] = "%<>&\"'\\/#? \x00\x01\x7f\x80\xbf\xc0\xc3\xe2\xed\xf0\xf4\xff";
	struct evbuffer *b = evbuffer_new();
	unsigned long x = 12345;

	assert(b != NULL);
	for (int round = 0; round < 20000; round++) {
		char in[32], *uri, *html, *json;
		size_t len, n = 0;

		x = x * 6364136223846793005ul + 1442695040888963407ul;
		len = (x >> 33) % sizeof(in);
		for (size_t i = 0; i < len; i++) {
			x = x * 6364136223846793005ul + 1442695040888963407ul;
			in[i] = (x >> 40) % 3 == 0 ? interesting[(x >> 20) % (sizeof(interesting) - 1)]
						   : (char)(x >> 48);
		}
		assert(escape_uri_segment(b, in, len) == 0);
		uri = take(b);
		assert(escape_uri_segment_len(in, len) == strlen(uri));
		for (size_t i = 0; uri[i]; i++) {	/* decode and compare */
			char c = uri[i];
			if (c == '%') {
				assert(hexval(uri[i + 1]) >= 0 && hexval(uri[i + 2]) >= 0);
				c = (char)(hexval(uri[i + 1]) << 4 | hexval(uri[i + 2]));
				i += 2;
			} else {
				assert((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
				       (c >= '0' && c <= '9') || strchr("-._~", c));
			}
			assert(n < len && in[n] == c);
			n++;
		}
		assert(n == len);
		assert(escape_html(b, in, len) == 0);
		html = take(b);
		assert(clean_text(html, strlen(html), "<>\"'"));
		assert(escape_json(b, in, len) == 0);
		json = take(b);
		assert(clean_text(json, strlen(json), ""));
		for (size_t i = 0; json[i]; i++) {	/* every '"' and '\\' is escaped */
			if (json[i] == '\\') {
				assert(strchr("\"\\u", json[i + 1]) != NULL);
				i += json[i + 1] == 'u' ? 5 : 1;
			} else {
				assert(json[i] != '"');
			}
		}
		free(uri);
		free(html);
		free(json);
	}
	evbuffer_free(b);
}

int main(void)
{
	test_cases();
	test_utf8_len();
	test_properties();
	printf("test_escape: %zu cases (html, uri, json), utf-8 lengths and 20000 random names "
	       "passed\n", ARRAY_LEN(cases));
	return 0;
}
