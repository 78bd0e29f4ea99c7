/* ktls.c — see ktls.h. */
#include "autoconf.h"
#include "ktls.h"
#include "log.h"
#include "tlsrec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#ifdef HAVE_LINUX_TLS_H
#include <linux/tls.h>
#endif


static bool kernel_ok;
static char kernel_reason[160] = "not probed";

/* A connected loopback pair: TCP_ULP needs an established socket. */
static int loopback_pair(int fds[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	fds[0] = fds[1] = -1;
	if (l == -1)
		return -1;
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) == -1 || listen(l, 1) == -1 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) == -1)
		goto fail;
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fds[0] == -1 || connect(fds[0], (struct sockaddr *)&a, sizeof(a)) == -1)
		goto fail;
	fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (fds[1] == -1)
		goto fail;
	close(l);
	return 0;
fail:
	if (fds[0] != -1)
		close(fds[0]);
	close(l);
	return -1;
}

void ktls_probe(void)
{
	int fds[2];

	if (loopback_pair(fds) == -1) {
		kernel_ok = false;
		snprintf(kernel_reason, sizeof(kernel_reason),
			 "cannot make a loopback TCP pair to probe: %s", strerror(errno));
		return;
	}
	kernel_ok = tlsrec_attach_ulp(fds[1], kernel_reason, sizeof(kernel_reason)) == 0;
	if (kernel_ok)
		snprintf(kernel_reason, sizeof(kernel_reason), "kernel tls ULP present");
	close(fds[0]);
	close(fds[1]);
}

bool ktls_kernel_available(void)
{
	return kernel_ok;
}

const char *ktls_kernel_reason(void)
{
	return kernel_reason;
}

/* ---- sock_diag: what the kernel says of the ULP (software or device offload) ---- */

#ifdef HAVE_TLS_INFO
static const char *txconf_name(unsigned v)
{
	switch (v) {
	case TLS_CONF_SW: return "sw";
	case TLS_CONF_HW: return "hw";
	case TLS_CONF_HW_RECORD: return "hw-record";
	default: return "?";
	}
}

/* Walk nested rtattrs of INET_DIAG_ULP_INFO for TLS_INFO_TXCONF. */
static const char *parse_ulp(struct rtattr *ulp, int len)
{
	for (struct rtattr *a = RTA_DATA(ulp); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if ((a->rta_type & NLA_TYPE_MASK) != INET_ULP_INFO_TLS)
			continue;
		int tlen = (int)RTA_PAYLOAD(a);
		for (struct rtattr *t = RTA_DATA(a); RTA_OK(t, tlen); t = RTA_NEXT(t, tlen))
			if ((t->rta_type & NLA_TYPE_MASK) == TLS_INFO_TXCONF &&
			    RTA_PAYLOAD(t) >= sizeof(__u16))
				return txconf_name(*(__u16 *)RTA_DATA(t));
	}
	return "?";
}

static const char *diag_offload(int fd)
{
	struct sockaddr_storage l, p;
	socklen_t ll = sizeof(l), pl = sizeof(p);
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 r;
	} req;
	char buf[8192];
	const char *res = "?";
	int nl;

	if (getsockname(fd, (struct sockaddr *)&l, &ll) == -1 ||
	    getpeername(fd, (struct sockaddr *)&p, &pl) == -1)
		return res;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nh.nlmsg_flags = NLM_F_REQUEST;
	req.r.sdiag_family = (__u8)l.ss_family;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = ~0u;
	/* the ULP info comes with the "aux" data, which INET_DIAG_INFO asks for */
	req.r.idiag_ext = 1u << (INET_DIAG_INFO - 1);
	req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if (l.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&l, *b = (struct sockaddr_in *)&p;
		req.r.id.idiag_sport = a->sin_port;
		req.r.id.idiag_dport = b->sin_port;
		memcpy(req.r.id.idiag_src, &a->sin_addr, 4);
		memcpy(req.r.id.idiag_dst, &b->sin_addr, 4);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&l, *b = (struct sockaddr_in6 *)&p;
		req.r.id.idiag_sport = a->sin6_port;
		req.r.id.idiag_dport = b->sin6_port;
		memcpy(req.r.id.idiag_src, &a->sin6_addr, 16);
		memcpy(req.r.id.idiag_dst, &b->sin6_addr, 16);
	}
	nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl == -1)
		return res;
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };	/* never hang the loop */
	setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(nl, &req, sizeof(req), 0) == (ssize_t)sizeof(req)) {
		ssize_t n = recv(nl, buf, sizeof(buf), 0);
		struct nlmsghdr *h = (struct nlmsghdr *)buf;
		int hl = (int)n;
		for (; n > 0 && NLMSG_OK(h, (unsigned)hl); h = NLMSG_NEXT(h, hl)) {
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
				break;
			struct inet_diag_msg *m = NLMSG_DATA(h);
			int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
			for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, alen);
			     a = RTA_NEXT(a, alen))
				if (a->rta_type == INET_DIAG_ULP_INFO)
					res = parse_ulp(a, (int)RTA_PAYLOAD(a));
			break;
		}
	}
	close(nl);
	return res;
}
#else
static const char *diag_offload(int fd)
{
	(void)fd;
	return "?";
}
#endif

void ktls_start(struct tlsrec *r, int fd, enum send_mode mode, struct ktls_state *st)
{
	st->reason[0] = '\0';
	st->tx = false;
	if (mode == SEND_MODE_USERSPACE)
		snprintf(st->reason, sizeof(st->reason), "disabled by send mode userspace");
	else if (!kernel_ok)
		snprintf(st->reason, sizeof(st->reason), "%.127s", kernel_reason);
	else
		st->tx = tlsrec_ktls_tx(r, fd, st->reason, sizeof(st->reason)) == 0;
	st->offload = st->tx ? NULL : "-";	/* with kTLS: ktls_offload() asks when needed */
}

const char *ktls_offload(struct ktls_state *st, int fd)
{
	if (st->offload == NULL)
		st->offload = st->tx ? diag_offload(fd) : "-";
	return st->offload;
}

long long ktls_stat(const char *name)
{
	FILE *f = fopen("/proc/net/tls_stat", "re");
	char key[64];
	long long v, res = -1;

	if (f == NULL)
		return -1;
	while (fscanf(f, "%63s %lld", key, &v) == 2)
		if (strcmp(key, name) == 0) {
			res = v;
			break;
		}
	fclose(f);
	return res;
}
