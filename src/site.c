/* site.c — see site.h. */
#include "autoconf.h"
#include "site.h"
#include "file.h"
#include "mime.h"
#include "tls.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct site *site_new(struct config *cfg, char *err, size_t errlen)
{
	/* reloads run on the main thread only; atomic all the same, so that nothing relies on it */
	static _Atomic uint64_t generation;
	struct site *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->refs = 1;
	s->gen = atomic_fetch_add_explicit(&generation, 1, memory_order_relaxed) + 1;
	s->cfg = config_ref(cfg);
	s->rootfd = file_open_root(cfg->document_root);
	if (s->rootfd == -1) {
		snprintf(err, errlen, "document_root \"%s\": %s", cfg->document_root, strerror(errno));
		goto fail;
	}
	s->ssl_ctx = tls_ctx_new(cfg, err, errlen);
	if (s->ssl_ctx == NULL)
		goto fail;
	s->mime = mime_load(cfg->mime_types, err, errlen);
	if (s->mime == NULL)
		goto fail;
	return s;
fail:
	site_unref(s);
	return NULL;
}

struct site *site_ref(struct site *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void site_unref(struct site *s)
{
	/* acq_rel: whichever worker drops the last reference sees all uses before it */
	if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) > 1)
		return;
	if (s->rootfd >= 0)
		close(s->rootfd);
	SSL_CTX_free(s->ssl_ctx);
	mime_free(s->mime);
	config_unref(s->cfg);
	free(s);
}
