/* mime.c — extension → Content-Type table loaded from a mime.types file (see mime.h).
 *
 * All strings live in one growable pool and the hash table (open addressing,
 * linear probing) refers to them by offset, so a table is three allocations
 * and the pool may move while loading without dangling pointers. */
#include "mime.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest line we parse.  Debian's longest is about 100 bytes; anything longer
 * is not a plausible mime.types line and is skipped whole rather than cut. */
#define MIME_LINE_MAX 1024
/* RFC 6838 4.2: type and subtype names are at most 127 characters each. */
#define MIME_NAME_MAX 127
#define MIME_SLOTS_MIN 256

static const char mime_default[] = "application/octet-stream";
static const char mime_charset[] = "; charset=utf-8";

/* Types that get mime_charset appended, as nginx's charset directive would. */
static const char *const mime_text_types[] = {
	"text/html", "text/plain", "text/css", "text/javascript",
	"application/javascript", "application/json", "application/xml", "text/xml",
};

/* Used when no file can be read; same syntax as mime.types. */
static const char *const mime_builtin[] = {
	"text/html html htm",
	"text/css css",
	"text/javascript js mjs",
	"application/json json",
	"text/plain txt text asc",
	"text/markdown md",
	"text/csv csv",
	"application/xml xml",
	"application/xhtml+xml xhtml",
	"application/atom+xml atom",
	"application/rss+xml rss",
	"image/png png",
	"image/jpeg jpg jpeg",
	"image/gif gif",
	"image/svg+xml svg svgz",
	"image/webp webp",
	"image/avif avif",
	"image/bmp bmp",
	"image/tiff tif tiff",
	"image/vnd.microsoft.icon ico",
	"application/pdf pdf",
	"application/wasm wasm",
	"video/mp4 mp4 m4v",
	"video/webm webm",
	"audio/mpeg mp3",
	"audio/ogg ogg oga",
	"audio/wav wav",
	"font/woff woff",
	"font/woff2 woff2",
	"font/ttf ttf",
	"font/otf otf",
	"application/zip zip",
	"application/gzip gz",
	"application/x-tar tar",
	"application/x-xz xz",
	"application/x-bzip2 bz2",
};

/* ext == 0 marks an empty slot: pool offset 0 holds a dummy byte. */
struct mime_slot {
	size_t ext;
	size_t type;
};

struct mime_table {
	char *pool;
	size_t pool_len, pool_cap;
	struct mime_slot *slots;
	size_t nslots;	/* power of two */
	size_t nused;
};

static unsigned char mime_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* ASCII-only, so the result does not depend on the locale. */
static bool mime_eq_nocase(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (mime_lower((unsigned char)a[i]) != mime_lower((unsigned char)b[i]))
			return false;
	return true;
}

/* FNV-1a over the lower-cased extension. */
static uint32_t mime_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		h ^= mime_lower((unsigned char)s[i]);
		h *= 16777619u;
	}
	return h;
}

/* Append n bytes and a NUL to the pool; returns the offset, 0 on failure. */
static size_t mime_pool_add(struct mime_table *t, const char *s, size_t n, const char *suffix)
{
	size_t slen = suffix ? strlen(suffix) : 0;
	size_t need = n + slen + 1, off = t->pool_len;

	if (t->pool_cap - t->pool_len < need) {
		size_t cap = t->pool_cap;
		char *p;

		while (cap - t->pool_len < need) {
			if (cap > SIZE_MAX / 2)
				return 0;
			cap *= 2;
		}
		p = realloc(t->pool, cap);
		if (!p)
			return 0;
		t->pool = p;
		t->pool_cap = cap;
	}
	memcpy(t->pool + off, s, n);
	if (slen)
		memcpy(t->pool + off + n, suffix, slen);
	t->pool[off + n + slen] = '\0';
	t->pool_len += need;
	return off;
}

/* Slot holding ext, or the empty slot where it would go. */
static struct mime_slot *mime_find(const struct mime_table *t, const char *ext, size_t n)
{
	size_t mask = t->nslots - 1, i = mime_hash(ext, n) & mask;

	for (;;) {
		struct mime_slot *s = &t->slots[i];

		if (s->ext == 0 || mime_eq_nocase(t->pool + s->ext, strlen(t->pool + s->ext), ext, n))
			return s;
		i = (i + 1) & mask;
	}
}

static bool mime_grow(struct mime_table *t)
{
	struct mime_slot *old = t->slots;
	size_t oldn = t->nslots, n = oldn ? oldn * 2 : MIME_SLOTS_MIN;

	if (n > SIZE_MAX / sizeof(*old))
		return false;
	t->slots = calloc(n, sizeof(*old));
	if (!t->slots) {
		t->slots = old;
		return false;
	}
	t->nslots = n;
	for (size_t i = 0; i < oldn; i++) {
		if (old[i].ext) {
			const char *e = t->pool + old[i].ext;

			*mime_find(t, e, strlen(e)) = old[i];
		}
	}
	free(old);
	return true;
}

/* RFC 6838 restricted-name "type/subtype".  Checking this also keeps CR, LF and
 * other bytes out of the Content-Type header that the string ends up in. */
static bool mime_type_valid(const char *s, size_t n)
{
	size_t part = 0, slashes = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
			     (c >= 'A' && c <= 'Z');

		if (c == '/') {
			if (part == 0 || ++slashes > 1)
				return false;
			part = 0;
			continue;
		}
		if (!alnum && (part == 0 || !strchr("!#$&-^_.+", c)))
			return false;
		if (++part > MIME_NAME_MAX)
			return false;
	}
	return slashes == 1 && part > 0;
}

static bool mime_wants_charset(const char *type, size_t n)
{
	for (size_t i = 0; i < sizeof(mime_text_types) / sizeof(mime_text_types[0]); i++)
		if (mime_eq_nocase(type, n, mime_text_types[i], strlen(mime_text_types[i])))
			return true;
	return false;
}

static bool mime_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Control bytes (NUL included) mean this is not a text line. */
static bool mime_has_ctl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

/* Next whitespace-separated token of line[*pos..n); false at the end of the
 * line or at a '#' that starts a comment. */
static bool mime_token(const char *line, size_t n, size_t *pos, const char **tok, size_t *tlen)
{
	size_t i = *pos, start;

	while (i < n && mime_is_space(line[i]))
		i++;
	if (i == n || line[i] == '#')
		return false;
	start = i;
	while (i < n && !mime_is_space(line[i]))
		i++;
	*tok = line + start;
	*tlen = i - start;
	*pos = i;
	return true;
}

/* Add ext → type unless ext is already known.  The first entry wins, as in
 * nginx: Debian's mime.types lists some extensions twice (sh, csh, tcl as both
 * application/x-* and text/x-*, several chemical/ and vnd. clashes) with the
 * more common mapping first.  *type_off is the type's pool offset, added on
 * first use so a line whose extensions are all duplicates costs nothing. */
static bool mime_add(struct mime_table *t, const char *ext, size_t elen,
		     const char *type, size_t tlen, size_t *type_off)
{
	struct mime_slot *s;

	if ((t->nused + 1) * 2 > t->nslots && !mime_grow(t))
		return false;
	s = mime_find(t, ext, elen);
	if (s->ext)
		return true;
	if (*type_off == 0) {
		*type_off = mime_pool_add(t, type, tlen,
					  mime_wants_charset(type, tlen) ? mime_charset : NULL);
		if (*type_off == 0)
			return false;
	}
	s->ext = mime_pool_add(t, ext, elen, NULL);
	if (s->ext == 0)
		return false;
	s->type = *type_off;
	t->nused++;
	return true;
}

/* Parse one line.  Malformed lines are ignored; false means out of memory. */
static bool mime_parse_line(struct mime_table *t, const char *line, size_t n)
{
	const char *type, *ext;
	size_t tlen, elen, pos = 0, type_off = 0, after_type;

	if (!mime_token(line, n, &pos, &type, &tlen) || !mime_type_valid(type, tlen))
		return true;
	/* Validate the whole line before adding anything from it. */
	after_type = pos;
	while (mime_token(line, n, &pos, &ext, &elen))
		if (mime_has_ctl(ext, elen))
			return true;
	pos = after_type;
	while (mime_token(line, n, &pos, &ext, &elen)) {
		/* Lookups take what follows the last '.' of a name without '/', so
		 * tokens like Debian's "cwl.json" could never match: ignore them. */
		if (memchr(ext, '.', elen) || memchr(ext, '/', elen))
			continue;
		if (!mime_add(t, ext, elen, type, tlen, &type_off))
			return false;
	}
	return true;
}

enum mime_read { MIME_LINE, MIME_LONG, MIME_EOF, MIME_ERR };

/* Read one line into buf (without the '\n').  Reading byte by byte rather than
 * with fgets() keeps embedded NUL bytes from confusing the length. */
static enum mime_read mime_read_line(FILE *f, char *buf, size_t *len)
{
	size_t n = 0;
	bool any = false, too_long = false;
	int c;

	while ((c = getc(f)) != EOF) {
		any = true;
		if (c == '\n')
			break;
		if (n < MIME_LINE_MAX)
			buf[n++] = (char)c;
		else
			too_long = true;
	}
	if (c == EOF && ferror(f))
		return MIME_ERR;
	if (!any)
		return MIME_EOF;
	*len = n;
	return too_long ? MIME_LONG : MIME_LINE;
}

static struct mime_table *mime_new(void)
{
	struct mime_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->pool_cap = 4096;
	t->pool = malloc(t->pool_cap);
	if (!t->pool || !mime_grow(t)) {
		mime_free(t);
		return NULL;
	}
	/* Offset 0 is not a real string: ext == 0 marks empty slots. */
	t->pool[0] = '\0';
	t->pool_len = 1;
	return t;
}

static struct mime_table *mime_load_builtin(void)
{
	struct mime_table *t = mime_new();

	for (size_t i = 0; t && i < sizeof(mime_builtin) / sizeof(mime_builtin[0]); i++) {
		if (!mime_parse_line(t, mime_builtin[i], strlen(mime_builtin[i]))) {
			mime_free(t);
			t = NULL;
		}
	}
	return t;
}

/* Returns the table, or NULL with *read_err false on allocation failure and
 * *read_err true if the file could not be read. */
static struct mime_table *mime_load_file(const char *path, bool *read_err)
{
	char line[MIME_LINE_MAX];
	struct mime_table *t;
	FILE *f;
	enum mime_read r;
	size_t n = 0;
	bool ok = true;

	*read_err = false;
	f = fopen(path, "re");
	if (!f) {
		*read_err = true;
		return NULL;
	}
	t = mime_new();
	while (t && ok && (r = mime_read_line(f, line, &n)) != MIME_EOF) {
		if (r == MIME_ERR) {
			/* e.g. a directory: fopen() succeeds, reading fails */
			*read_err = true;
			ok = false;
		} else if (r == MIME_LINE) {
			ok = mime_parse_line(t, line, n);
		}
	}
	fclose(f);
	if (!ok) {
		mime_free(t);
		t = NULL;
	}
	return t;
}

struct mime_table *mime_load(const char *path, char *err, size_t errlen)
{
	struct mime_table *t = NULL;
	bool read_err = true;

	if (path)
		t = mime_load_file(path, &read_err);
	if (!t && read_err)
		t = mime_load_builtin();
	if (!t && err && errlen > 0)
		snprintf(err, errlen, "mime types: out of memory");
	return t;
}

const char *mime_lookup(const struct mime_table *t, const char *filename)
{
	const char *base = strrchr(filename, '/'), *dot;
	const struct mime_slot *s;

	base = base ? base + 1 : filename;
	dot = strrchr(base, '.');
	/* ".bashrc" is a hidden file without an extension, "file." has none either */
	if (!dot || dot == base || dot[1] == '\0')
		return mime_default;
	s = mime_find(t, dot + 1, strlen(dot + 1));
	return s->ext ? t->pool + s->type : mime_default;
}

void mime_free(struct mime_table *t)
{
	if (!t)
		return;
	free(t->pool);
	free(t->slots);
	free(t);
}
