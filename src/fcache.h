/* fcache.h — the open-file cache: files being served, shared between requests.
 *
 * Why: a small file costs more in openat2() + fstat() + close() than in sending it (three
 * of six system calls per 4 KiB request). A cached file is opened once and then served by
 * every request for its path until it is `valid` old, as lighttpd's stat cache and nginx's
 * open_file_cache do.
 *
 * What a client can see, and why it is safe:
 *  - A hit re-checks the open file with fstat() when the last check is FCACHE_RECHECK_MS
 *    old: a file rewritten in place (size or mtime changed) is reopened, so Content-Length
 *    and ETag follow the content; a file deleted or renamed over (its last link gone, how
 *    rsync and most deployments replace files) is looked up again. Checking at every hit
 *    would cost 5 % of a small request; a rewrite in place races with any response being
 *    sent anyway, the window only grows by at most 0.1 s.
 *  - Other changes of what a path names (a directory renamed, a symlink swapped, a file
 *    made unreadable, a second hard link removed) are seen when the entry expires, at most
 *    `valid` later. Until then the previous file, which was opened beneath the root, is
 *    served. Never a file outside it.
 *  - Entries are dropped by a sweep once expired, so a deleted file's space is not pinned.
 *  - A reload flushes the cache; entries are tagged with the site they were opened for.
 */
#ifndef KTLSD_FCACHE_H
#define KTLSD_FCACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "file.h"

#define FCACHE_RECHECK_MS 100	/* a hit older than this re-checks its file (fstat) */

/* An open file being served. Read-only for users; released with fcache_release(). */
struct file_ref {
	struct file_info fi;	/* fd, stat, etag */
	/* private */
	unsigned refs;		/* users + 1 while in the cache */
	uint64_t site;		/* site generation it was opened for */
	bool slash;
	char *key;		/* rel path */
	uint64_t born_ms;	/* when opened (monotonic) */
	uint64_t checked_ms;	/* last fstat() that found it unchanged */
	LIST_ENTRY(file_ref) chain;		/* hash bucket */
	TAILQ_ENTRY(file_ref) age;		/* oldest first: eviction and expiry */
};

struct fcache_stats {
	uint64_t hits, misses, reopened, evicted;	/* reopened: changed on a hit */
	unsigned entries, capacity;
};

struct fcache;

/* An empty cache that caches nothing until fcache_configure(). NULL: out of memory. */
struct fcache *fcache_new(void);

/* At most `entries` open files (also capped at a quarter of RLIMIT_NOFILE divided by
 * shares, the number of caches in the process (one per worker), as each entry holds a
 * descriptor; 0: no caching, every open is a fresh file_open()), each trusted for
 * valid_ms after opening. Flushes, keeps the counters; at start and at every reload. -1
 * when out of memory (then the cache stays off until the next successful call). */
int fcache_configure(struct fcache *fc, unsigned entries, unsigned valid_ms, unsigned shares);

/* Drop every entry (files still being sent stay open until released) and free. NULL ok. */
void fcache_free(struct fcache *fc);

/* file_open() through the cache, for the site with generation `site` (its rootfd and
 * index_name). FILE_OK gives *out with one reference for the caller; so does
 * FILE_DIRECTORY (a directory without index), whose handle is never cached: a listing
 * reads the directory anew every time. Other results are never cached. Out of
 * descriptors: the cache is flushed and the open tried once more. */
enum file_result fcache_open(struct fcache *fc, uint64_t site, int rootfd, const char *rel,
			     bool trailing_slash, const char *index_name,
			     struct file_ref **out);

/* Give back the caller's reference; the descriptor closes with the last one. NULL ok. */
void fcache_release(struct file_ref *h);

/* Drop expired entries. Call about every valid_ms (fcache_sweep_ms()). */
void fcache_sweep(struct fcache *fc);
unsigned fcache_sweep_ms(const struct fcache *fc);

/* Drop every entry (out of descriptors, reload). */
void fcache_flush(struct fcache *fc);

void fcache_get_stats(const struct fcache *fc, struct fcache_stats *st);

#endif
