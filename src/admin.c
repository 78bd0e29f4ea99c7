/* admin.c — see admin.h. */
#include "autoconf.h"
#include "admin.h"
#include "config.h"
#include "conn.h"
#include "daemon.h"
#include "experiment.h"
#include "fcache.h"
#include "log.h"
#include "net.h"
#include "server.h"
#include "stats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

static void reply(struct evhttp_request *req, int code, const char *type, struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(req, code, code == 200 ? "OK" : code == 404 ? "Not Found" :
			  "Method Not Allowed", body);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct daemon *d = arg;
	struct evbuffer *body = evbuffer_new();
	void *mem = NULL;
	struct stats_view v;
	const char *uri = evhttp_request_get_uri(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	size_t plen = strcspn(uri, "?");

	/* only /stats and /stats/text list the live connections */
	bool records = (plen == 6 && strncmp(uri, "/stats", 6) == 0) ||
		       (plen == 11 && strncmp(uri, "/stats/text", 11) == 0);

	/* every worker copies its records on its own thread; one busy for longer than a
	 * second is left out of this view (it says how many answered) */
	if (body == NULL || daemon_view(d, &v, &mem, records, 1000) == -1) {
		evhttp_send_error(req, 500, NULL);
		if (body != NULL)
			evbuffer_free(body);
		daemon_view_free(mem);
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		evbuffer_add_printf(body, "only GET and HEAD\n");
		reply(req, 405, "text/plain", body);
	} else if (plen == 6 && strncmp(uri, "/stats", 6) == 0) {
		stats_json(&v, body);
		reply(req, 200, "application/json", body);
	} else if (plen == 11 && strncmp(uri, "/stats/text", 11) == 0) {
		stats_text(&v, body);
		reply(req, 200, "text/plain; charset=utf-8", body);
	} else if (plen == 13 && strncmp(uri, "/stats/recent", 13) == 0) {
		stats_json_recent(body);
		reply(req, 200, "application/json", body);
	} else if (plen == 8 && strncmp(uri, "/metrics", 8) == 0) {
		stats_prometheus(&v, body);
		reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", body);
	} else if (plen == 17 && strncmp(uri, "/stats/experiment", 17) == 0) {
		experiment_json(d->site->cfg, body);
		evbuffer_add_printf(body, "\n");
		reply(req, 200, "application/json", body);
	} else if (plen == 22 && strncmp(uri, "/stats/experiment/text", 22) == 0) {
		experiment_text(d->site->cfg, body);
		reply(req, 200, "text/plain; charset=utf-8", body);
	} else {
		evbuffer_add_printf(body, "not found; try /stats, /stats/recent or /metrics\n");
		reply(req, 404, "text/plain", body);
	}
	evbuffer_free(body);
	daemon_view_free(mem);
}

int admin_start(struct daemon *d, char *err, size_t errlen)
{
	const struct config *cfg = d->site->cfg;
	const struct listen_addr *la = &cfg->stats.listen;
	struct evhttp_bound_socket *bs;
	int one = 1;
	int fd;

	if (!cfg->stats.enabled)
		return 0;
	d->admin = evhttp_new(d->base);
	if (d->admin == NULL) {
		snprintf(err, errlen, "stats: evhttp_new failed");
		return -1;
	}
	/* bounded like every other input: small requests, short timeouts */
	evhttp_set_max_headers_size(d->admin, 8192);
	evhttp_set_max_body_size(d->admin, 4096);	/* so POST gets 405, not 413 */
	evhttp_set_timeout(d->admin, 10);
	evhttp_set_allowed_methods(d->admin, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
	evhttp_set_gencb(d->admin, on_request, d);
	fd = socket(la->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(fd, (const struct sockaddr *)&la->ss, la->len) == -1 || listen(fd, 64) == -1) {
		snprintf(err, errlen, "stats listen %s: %s", la->text, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	bs = evhttp_accept_socket_with_handle(d->admin, fd);
	if (bs == NULL) {
		close(fd);
		snprintf(err, errlen, "stats listen %s: evhttp_accept_socket failed", la->text);
		return -1;
	}
	{
		char hp[64];
		net_local(fd, hp, sizeof(hp));
		log_msg(LOG_LEVEL_NOTICE, "stats on http://%s/stats (bound %s)", la->text, hp);
	}
	return 0;
}

void admin_stop(struct daemon *d)
{
	if (d->admin != NULL) {
		evhttp_free(d->admin);
		d->admin = NULL;
	}
}
