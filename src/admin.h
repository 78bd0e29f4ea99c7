/* admin.h — the stats endpoint: plain HTTP on a (loopback) admin listener, served by
 * libevent's evhttp. GET /stats, /stats/recent (JSON), /metrics (Prometheus). */
#ifndef KTLSD_ADMIN_H
#define KTLSD_ADMIN_H

#include "common.h"

struct daemon;

/* Start listening on d->site->cfg->stats.listen, on the main thread's loop (d->base).
 * Returns -1 with err on failure. */
int admin_start(struct daemon *d, char *err, size_t errlen);

/* Stop listening (stop/exit). Safe when it was never started. */
void admin_stop(struct daemon *d);

#endif
