/* fcache.c — see fcache.h. */
#include "autoconf.h"
#include "fcache.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

LIST_HEAD(fc_bucket, file_ref);
TAILQ_HEAD(fc_age, file_ref);

struct fcache {
	struct fc_bucket *buckets;
	size_t nbuckets;	/* a power of two, >= 2 * capacity */
	struct fc_age age;
	unsigned n, capacity, valid_ms;
	struct fcache_stats st;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	/* coarse: a vDSO read of the last tick, a few ms of resolution is plenty here */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static size_t hash_key(const char *s, bool slash)
{
	uint64_t h = 1469598103934665603ull;	/* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	h = (h ^ (slash ? 1u : 0u)) * 1099511628211ull;
	return (size_t)(h ^ (h >> 32));
}

/* Each entry holds a descriptor: leave most of them to connections. The quarter of the
 * limit is the process's, shared by the caches of all its workers. */
static unsigned fd_cap(unsigned want, unsigned shares)
{
	struct rlimit rl;

	if (shares == 0)
		shares = 1;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur / 4 / shares < want)
		return (unsigned)(rl.rlim_cur / 4 / shares);
	return want;
}

int fcache_configure(struct fcache *fc, unsigned entries, unsigned valid_ms, unsigned shares)
{
	size_t nb = 1;
	struct fc_bucket *b = NULL;
	int rc = 0;

	fcache_flush(fc);
	entries = fd_cap(entries, shares);
	if (entries > 0) {
		while (nb < 2 * (size_t)entries)
			nb <<= 1;
		b = calloc(nb, sizeof(*b));
		if (b == NULL) {
			entries = 0;	/* off until a configure succeeds */
			rc = -1;
		}
		for (size_t i = 0; b != NULL && i < nb; i++)
			LIST_INIT(&b[i]);
	}
	free(fc->buckets);
	fc->buckets = b;
	fc->nbuckets = b != NULL ? nb : 0;
	fc->capacity = entries;
	fc->valid_ms = valid_ms > 0 ? valid_ms : 1;
	return rc;
}

struct fcache *fcache_new(void)
{
	struct fcache *fc = calloc(1, sizeof(*fc));

	if (fc == NULL)
		return NULL;
	TAILQ_INIT(&fc->age);
	fc->valid_ms = 1;
	return fc;
}

static void unref(struct file_ref *h)
{
	if (--h->refs > 0)
		return;
	close(h->fi.fd);
	free(h->key);
	free(h);
}

/* Take h out of the table; its users keep it until they release it. */
static void drop(struct fcache *fc, struct file_ref *h)
{
	LIST_REMOVE(h, chain);
	TAILQ_REMOVE(&fc->age, h, age);
	fc->n--;
	unref(h);
}

void fcache_flush(struct fcache *fc)
{
	struct file_ref *h;

	while ((h = TAILQ_FIRST(&fc->age)) != NULL)
		drop(fc, h);
}

void fcache_free(struct fcache *fc)
{
	if (fc == NULL)
		return;
	fcache_flush(fc);
	free(fc->buckets);
	free(fc);
}

void fcache_release(struct file_ref *h)
{
	if (h != NULL)
		unref(h);
}

void fcache_sweep(struct fcache *fc)
{
	uint64_t now = now_ms();
	struct file_ref *h;

	/* the age list is in opening order: stop at the first one still valid */
	while ((h = TAILQ_FIRST(&fc->age)) != NULL && now - h->born_ms >= fc->valid_ms)
		drop(fc, h);
}

unsigned fcache_sweep_ms(const struct fcache *fc)
{
	return fc->valid_ms < 100 ? 100 : fc->valid_ms;
}

void fcache_get_stats(const struct fcache *fc, struct fcache_stats *st)
{
	*st = fc->st;
	st->entries = fc->n;
	st->capacity = fc->capacity;
}

/* Still the file the entry describes, and still there? A rewrite in place shows in size
 * or mtime (what the ETag is made of); a delete, or a rename over it (how deployments
 * replace files), drops its last link. */
static bool unchanged(struct file_ref *h, uint64_t now)
{
	struct stat st;

	if (fstat(h->fi.fd, &st) == 0 && st.st_nlink > 0 && st.st_size == h->fi.st.st_size &&
	    st.st_mtim.tv_sec == h->fi.st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == h->fi.st.st_mtim.tv_nsec) {
		h->checked_ms = now;
		return true;
	}
	return false;
}

static enum file_result open_fresh(struct fcache *fc, int rootfd, const char *rel, bool slash,
				   const char *index_name, struct file_info *fi)
{
	enum file_result r = file_open(rootfd, rel, slash, index_name, fi);

	if (r == FILE_UNAVAILABLE && fc->n > 0) {
		/* out of descriptors: the cache's are the ones that can go */
		log_msg(LOG_LEVEL_WARN, "out of file descriptors: emptying the open-file cache "
			"(%u files)", fc->n);
		fcache_flush(fc);
		r = file_open(rootfd, rel, slash, index_name, fi);
	}
	return r;
}

enum file_result fcache_open(struct fcache *fc, uint64_t site, int rootfd, const char *rel,
			     bool trailing_slash, const char *index_name,
			     struct file_ref **out)
{
	struct file_ref *h = NULL;
	struct fc_bucket *b = NULL;
	struct file_info fi;
	enum file_result r;

	*out = NULL;
	if (fc->capacity > 0) {
		b = &fc->buckets[hash_key(rel, trailing_slash) & (fc->nbuckets - 1)];
		LIST_FOREACH(h, b, chain) {
			if (h->slash == trailing_slash && strcmp(h->key, rel) == 0)
				break;
		}
		if (h != NULL) {
			uint64_t now = now_ms();
			bool valid = h->site == site && now - h->born_ms < fc->valid_ms;
			if (valid &&
			    (now - h->checked_ms < FCACHE_RECHECK_MS || unchanged(h, now))) {
				fc->st.hits++;
				h->refs++;
				*out = h;
				return FILE_OK;
			}
			if (valid)	/* changed under the cache, not merely expired */
				fc->st.reopened++;
			drop(fc, h);
		}
		fc->st.misses++;
	}
	r = open_fresh(fc, rootfd, rel, trailing_slash, index_name, &fi);
	if (r != FILE_OK && r != FILE_DIRECTORY)
		return r;
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		close(fi.fd);
		return FILE_ERROR;
	}
	h->fi = fi;
	h->refs = 1;
	if (r == FILE_OK && b != NULL && (h->key = strdup(rel)) != NULL) {
		if (fc->n >= fc->capacity) {
			fc->st.evicted++;
			drop(fc, TAILQ_FIRST(&fc->age));
		}
		h->refs++;
		h->site = site;
		h->slash = trailing_slash;
		h->born_ms = h->checked_ms = now_ms();
		LIST_INSERT_HEAD(b, h, chain);
		TAILQ_INSERT_TAIL(&fc->age, h, age);
		fc->n++;
	}
	*out = h;
	return r;
}
