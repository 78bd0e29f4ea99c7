/* site.h — what one configuration snapshot builds: TLS context, MIME table, document
 * root. Reference counted: a reload builds a new site while connections finish on theirs. */
#ifndef KTLSD_SITE_H
#define KTLSD_SITE_H

#include <stdatomic.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "common.h"
#include "config.h"

/* Everything built from one configuration snapshot. Connections hold a reference, so a
 * reload never changes the settings under a response in flight. */
struct site {
	atomic_int refs;	/* connections of every worker and the workers hold one */
	struct config *cfg;
	SSL_CTX *ssl_ctx;
	struct mime_table *mime;
	int rootfd;		/* O_PATH directory fd of document_root */
	uint64_t gen;		/* unique per site: tags its entries in the open-file cache */
};

/* Build a site from cfg (takes a reference on cfg). NULL with err on failure: certificate
 * or key unreadable, document root missing, ... */
struct site *site_new(struct config *cfg, char *err, size_t errlen);
struct site *site_ref(struct site *s);
void site_unref(struct site *s);

#endif
