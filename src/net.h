/* net.h — socket address formatting, the one place that turns sockaddrs into text. */
#ifndef KTLSD_NET_H
#define KTLSD_NET_H

#include <stddef.h>
#include <sys/socket.h>

/* sa as "a.b.c.d:port" or "[v6]:port" into hp (hplen bytes); the bare address into a
 * (alen bytes) unless a is NULL. Unknown families give "?". */
void net_format(const struct sockaddr *sa, char *hp, size_t hplen, char *a, size_t alen);

/* The local (bound) address of socket fd, formatted as net_format() does.
 * Returns 0, or -1 (hp set to "?") if getsockname() fails. */
int net_local(int fd, char *hp, size_t hplen);

#endif
