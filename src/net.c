/* net.c — see net.h. */
#include "autoconf.h"
#include "net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>

void net_format(const struct sockaddr *sa, char *hp, size_t hplen, char *a, size_t alen)
{
	char buf[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s->sin_addr, buf, sizeof(buf));
		snprintf(hp, hplen, "%s:%u", buf, (unsigned)ntohs(s->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof(buf));
		snprintf(hp, hplen, "[%s]:%u", buf, (unsigned)ntohs(s->sin6_port));
	} else {
		snprintf(hp, hplen, "?");
	}
	if (a != NULL)
		snprintf(a, alen, "%s", buf);
}

int net_local(int fd, char *hp, size_t hplen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1) {
		snprintf(hp, hplen, "?");
		return -1;
	}
	net_format((struct sockaddr *)&ss, hp, hplen, NULL, 0);
	return 0;
}
