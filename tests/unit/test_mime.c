/* test_mime.c — table-driven tests for mime_load() / mime_lookup() / mime_free().
 * Temporary files go to $TMPDIR or /tmp, never into the source or build tree. */
#undef NDEBUG
#define _POSIX_C_SOURCE 200809L	/* mkstemp() */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mime.h"

#define OCTET "application/octet-stream"
#define UTF8 "; charset=utf-8"

struct mime_case {
	const char *name;
	const char *type;
};

/* A mime.types with good, bad and odd lines; see mime_file_cases for the expected
 * result of each.  The NUL byte and the very long line are added by mime_write_sample(). */
static const char mime_sample[] =
	"# comment line\n"
	"   # indented comment\n"
	"\n"
	"   \t \n"
	"text/html\thtml htm\n"
	"text/plain txt   # trailing comment mentioning fake/type ext0\n"
	"image/png png PNG\n"
	"image/x-dup png dup\n"		/* png: the first entry wins */
	"application/json json\n"
	"application/gzip gz\n"
	"application/noext\n"		/* no extensions: nothing to add */
	"badtype ext1\n"		/* no '/' */
	"/nosub ext2\n"
	"a/b/c ext3\n"
	"text/ ext4\n"
	"x/y\x01 ext5\n"		/* control byte in the type */
	"text/foo ext6 ext\x01" "bad\n"	/* control byte in an extension: whole line */
	"text/h\"tml ext7\n"		/* not an RFC 6838 name */
	"-text/x ext8\n"
	"text/css css\r\n"		/* CRLF */
	"application/x-dotted cwl.json dotted\n"	/* "cwl.json" cannot match */
	"TEXT/XML xml\n"
	"application/javascript js\n"
	"text/x-sh sh\n"
	"  video/mp4   mp4  \n"
	"text/markdown md\n"
	"application/x-trash ~ %\n"
	"application/x-hash #notanext\n"	/* '#' starting a token is a comment */
	"application/x-mid a#b\n";		/* ... but not inside one */

static const struct mime_case mime_file_cases[] = {
	{ "index.html", "text/html" UTF8 },
	{ "dir/INDEX.HTML", "text/html" UTF8 },
	{ "a.HtM", "text/html" UTF8 },
	{ "x.txt", "text/plain" UTF8 },
	{ "x.ext0", OCTET },
	{ "img.png", "image/png" },
	{ "img.PNG", "image/png" },
	{ "f.dup", "image/x-dup" },
	{ "f.json", "application/json" UTF8 },
	{ "a.tar.gz", "application/gzip" },
	{ "f.noext", OCTET },
	{ "f.ext1", OCTET },
	{ "f.ext2", OCTET },
	{ "f.ext3", OCTET },
	{ "f.ext4", OCTET },
	{ "f.ext5", OCTET },
	{ "f.ext6", OCTET },
	{ "f.ext7", OCTET },
	{ "f.ext8", OCTET },
	{ "s.css", "text/css" UTF8 },
	{ "a.cwl.json", "application/json" UTF8 },
	{ "a.dotted", "application/x-dotted" },
	{ "a.xml", "TEXT/XML" UTF8 },
	{ "a.js", "application/javascript" UTF8 },
	{ "a.sh", "text/x-sh" },
	{ "v.mp4", "video/mp4" },
	{ "r.md", "text/markdown" },
	{ "backup.~", "application/x-trash" },
	{ "f.%", "application/x-trash" },
	{ "f.notanext", OCTET },
	{ "f.a#b", "application/x-mid" },
	{ "g.gif", OCTET },		/* line with a NUL byte */
	{ "f.longext", OCTET },		/* on the over-long line */
	{ "f.after", "text/after" },	/* the line after it */
	{ "f.wide99", "text/x-wide" },	/* long but within the limit */
	{ "f.woff2", "font/woff2" },	/* last line, no newline */
	/* which part of the name counts */
	{ "dir/file", OCTET },
	{ "file", OCTET },
	{ ".bashrc", OCTET },
	{ "dir/.bashrc", OCTET },
	{ ".html", OCTET },
	{ "..html", "text/html" UTF8 },
	{ "dir.html/file", OCTET },
	{ "a.html/", OCTET },
	{ "file.", OCTET },
	{ "", OCTET },
	{ "/", OCTET },
	{ ".", OCTET },
	{ "..", OCTET },
	{ "a.b.c.html", "text/html" UTF8 },
	{ "x/y/z.PnG", "image/png" },
	{ "f.htmlx", OCTET },
	{ "f.htm ", OCTET },
};

static const struct mime_case mime_builtin_cases[] = {
	{ "index.html", "text/html" UTF8 },
	{ "a.htm", "text/html" UTF8 },
	{ "a.css", "text/css" UTF8 },
	{ "a.js", "text/javascript" UTF8 },
	{ "a.mjs", "text/javascript" UTF8 },
	{ "a.json", "application/json" UTF8 },
	{ "a.txt", "text/plain" UTF8 },
	{ "a.xml", "application/xml" UTF8 },
	{ "a.png", "image/png" },
	{ "a.JPG", "image/jpeg" },
	{ "a.jpeg", "image/jpeg" },
	{ "a.gif", "image/gif" },
	{ "a.svg", "image/svg+xml" },
	{ "a.webp", "image/webp" },
	{ "favicon.ico", "image/vnd.microsoft.icon" },
	{ "a.pdf", "application/pdf" },
	{ "a.wasm", "application/wasm" },
	{ "a.mp4", "video/mp4" },
	{ "a.woff2", "font/woff2" },
	{ "a.zip", "application/zip" },
	{ "a.tar.gz", "application/gzip" },
	{ "a.tar", "application/x-tar" },
	{ "a.md", "text/markdown" },
	{ "a.unknown", OCTET },
	{ ".bashrc", OCTET },
	{ "Makefile", OCTET },
};

/* Only checked when /etc/mime.types exists (Debian's media-types package). */
static const struct mime_case mime_system_cases[] = {
	{ "index.html", "text/html" UTF8 },
	{ "a.png", "image/png" },
	{ "a.css", "text/css" UTF8 },
	{ "a.js", "text/javascript" UTF8 },
	{ "a.json", "application/json" UTF8 },
	{ "a.txt", "text/plain" UTF8 },
	{ "a.xml", "application/xml" UTF8 },
	{ "a.jpg", "image/jpeg" },
	{ "a.svg", "image/svg+xml" },
	{ "a.wasm", "application/wasm" },
	{ "a.tar.gz", "application/gzip" },
	{ "a.unknown-ext", OCTET },
	{ ".bashrc", OCTET },
};

static unsigned mime_count;

static int mime_check(const struct mime_table *t, const char *what, const struct mime_case *c,
		      size_t n)
{
	int fails = 0;

	for (size_t i = 0; i < n; i++, mime_count++) {
		const char *got = mime_lookup(t, c[i].name);

		if (strcmp(got, c[i].type) != 0) {
			fprintf(stderr, "FAIL %s: \"%s\": got \"%s\", want \"%s\"\n", what,
				c[i].name, got, c[i].type);
			fails++;
		}
	}
	return fails;
}

/* Write data to a new temporary file; its name goes to path (>= 4096 bytes). */
static void mime_write_temp(char *path, const char *data, size_t len)
{
	const char *dir = getenv("TMPDIR");
	ssize_t w;
	int fd, rc;

	if (!dir || !*dir)
		dir = "/tmp";
	snprintf(path, 4096, "%s/test_mime.XXXXXX", dir);
	fd = mkstemp(path);
	assert(fd >= 0);
	w = write(fd, data, len);
	assert(w == (ssize_t)len);
	rc = close(fd);
	assert(rc == 0);
}

/* mime_sample plus lines that a string literal cannot hold conveniently. */
static void mime_write_sample(char *path)
{
	enum { LONG = 100000 };
	static const char nul_line[] = "image/gif gif\0 evil\n";
	size_t cap = sizeof(mime_sample) + sizeof(nul_line) + LONG + 4096, n = 0;
	char *buf = malloc(cap);

	assert(buf);
	memcpy(buf, mime_sample, sizeof(mime_sample) - 1);
	n += sizeof(mime_sample) - 1;
	memcpy(buf + n, nul_line, sizeof(nul_line) - 1);
	n += sizeof(nul_line) - 1;
	/* a line far longer than any real one, then one that must still parse */
	n += (size_t)sprintf(buf + n, "text/long ");
	memset(buf + n, 'x', LONG);
	n += LONG;
	n += (size_t)sprintf(buf + n, " longext\ntext/after after\n");
	/* about 900 bytes: long, but a plausible line */
	n += (size_t)sprintf(buf + n, "text/x-wide");
	for (int i = 0; i < 100; i++)
		n += (size_t)sprintf(buf + n, " wide%d", i);
	n += (size_t)sprintf(buf + n, "\nfont/woff2 woff2");
	assert(n < cap);
	mime_write_temp(path, buf, n);
	free(buf);
}

static int mime_test_file(void)
{
	char path[4096], err[128] = "";
	struct mime_table *t;
	int fails;

	mime_write_sample(path);
	t = mime_load(path, err, sizeof(err));
	unlink(path);
	assert(t);
	fails = mime_check(t, "sample", mime_file_cases,
			   sizeof(mime_file_cases) / sizeof(mime_file_cases[0]));
	mime_free(t);
	return fails;
}

/* Enough entries to make the hash table grow several times. */
static int mime_test_many(void)
{
	enum { N = 5000 };
	char path[4096], *buf = malloc(N * 40), name[32], type[32];
	struct mime_table *t;
	size_t n = 0;
	int fails = 0;

	assert(buf);
	for (int i = 0; i < N; i++)
		n += (size_t)sprintf(buf + n, "x-test/t%d e%d E%dB\n", i, i, i);
	mime_write_temp(path, buf, n);
	free(buf);
	t = mime_load(path, NULL, 0);
	unlink(path);
	assert(t);
	for (int i = 0; i < N; i++, mime_count++) {
		snprintf(type, sizeof(type), "x-test/t%d", i);
		snprintf(name, sizeof(name), "f.E%d", i);
		fails += strcmp(mime_lookup(t, name), type) != 0;
		snprintf(name, sizeof(name), "f.e%db", i);
		fails += strcmp(mime_lookup(t, name), type) != 0;
	}
	fails += strcmp(mime_lookup(t, "f.e5000"), OCTET) != 0;
	mime_count++;
	mime_free(t);
	if (fails)
		fprintf(stderr, "FAIL many: %d lookups\n", fails);
	return fails;
}

/* An empty file is a file: no types at all, not the built-in table. */
static int mime_test_empty(void)
{
	char path[4096];
	struct mime_table *t;
	static const struct mime_case c[] = { { "index.html", OCTET }, { "a.png", OCTET } };

	mime_write_temp(path, "", 0);
	t = mime_load(path, NULL, 0);
	unlink(path);
	assert(t);
	int fails = mime_check(t, "empty", c, sizeof(c) / sizeof(c[0]));
	mime_free(t);
	return fails;
}

static int mime_test_builtin(const char *path, const char *what)
{
	char err[128] = "";
	struct mime_table *t = mime_load(path, err, sizeof(err));
	int fails;

	assert(t);
	fails = mime_check(t, what, mime_builtin_cases,
			   sizeof(mime_builtin_cases) / sizeof(mime_builtin_cases[0]));
	mime_free(t);
	return fails;
}

static int mime_test_system(void)
{
	struct mime_table *t;
	int fails;

	if (access("/etc/mime.types", R_OK) != 0) {
		printf("test_mime: no readable /etc/mime.types, skipping that part\n");
		return 0;
	}
	t = mime_load("/etc/mime.types", NULL, 0);
	assert(t);
	fails = mime_check(t, "/etc/mime.types", mime_system_cases,
			   sizeof(mime_system_cases) / sizeof(mime_system_cases[0]));
	mime_free(t);
	return fails;
}

int main(void)
{
	const char *dir = getenv("TMPDIR");
	int fails = 0;

	fails += mime_test_file();
	fails += mime_test_many();
	fails += mime_test_empty();
	fails += mime_test_builtin(NULL, "builtin (NULL)");
	fails += mime_test_builtin("/nonexistent/ktlsd/mime.types", "builtin (missing)");
	/* a directory opens but cannot be read */
	fails += mime_test_builtin(dir && *dir ? dir : "/tmp", "builtin (directory)");
	fails += mime_test_system();
	mime_free(NULL);
	printf("test_mime: %u lookups, %d failed\n", mime_count, fails);
	assert(fails == 0);
	return 0;
}
