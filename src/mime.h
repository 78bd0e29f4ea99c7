/* mime.h — Content-Type by file name extension, from a mime.types file. */
#ifndef KTLSD_MIME_H
#define KTLSD_MIME_H

#include <stddef.h>

struct mime_table;

/* Load a mime.types file (format of Debian's /etc/mime.types: "type ext ext ...", '#'
 * comments). path NULL, or a file that cannot be opened, gives the built-in table of
 * common types (html, css, js, json, txt, png, jpg, gif, svg, webp, ico, pdf, wasm, mp4,
 * woff2, xml, zip, gz, tar, ...). A file that opens but is malformed in places: bad lines
 * are skipped. Returns NULL only on allocation failure; then err (errlen bytes) says why.
 * Text types get "; charset=utf-8" appended as nginx's charset directive would, only
 * for text/html, text/plain, text/css, text/javascript, application/javascript,
 * application/json, application/xml and text/xml. */
struct mime_table *mime_load(const char *path, char *err, size_t errlen);

/* Content-Type for filename (a path; only the part after the last '/' and then the last
 * '.' counts, compared case-insensitively). Unknown or no extension:
 * "application/octet-stream". t must not be NULL. The string lives as long as t. */
const char *mime_lookup(const struct mime_table *t, const char *filename);

/* Free a table from mime_load; NULL is allowed. */
void mime_free(struct mime_table *t);

#endif
