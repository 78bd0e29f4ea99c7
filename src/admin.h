/* admin.h — the stats endpoint: plain HTTP on a (loopback) admin listener, served by
 * libevent's evhttp. GET /stats, /stats/recent (JSON), /metrics (Prometheus). */
#ifndef KTLSD_ADMIN_H
#define KTLSD_ADMIN_H

#include "common.h"

/* Start listening on srv->site->cfg->stats.listen. Returns -1 with err on failure. */
int admin_start(struct server *srv, char *err, size_t errlen);

/* Stop listening (stop/exit). NULL-safe on a server without one. */
void admin_stop(struct server *srv);

#endif
