/* notify.h — the systemd readiness protocol (sd_notify) without libsystemd.
 *
 * systemd passes a unix datagram socket in $NOTIFY_SOCKET (a path, or "@name" for the
 * abstract namespace); the service sends "KEY=VALUE\n..." datagrams to it. Everything
 * here is a no-op when NOTIFY_SOCKET is unset, so the calls need no guards. */
#ifndef KTLSD_NOTIFY_H
#define KTLSD_NOTIFY_H

#include <stdbool.h>

/* Read $NOTIFY_SOCKET and open the sending socket. Call once, early, while stderr still
 * reaches the operator: a malformed value is reported there and notification is off.
 * Returns true if notifications will be sent. */
bool notify_init(void);

/* True after a successful notify_init(): a service manager is waiting for READY=1 from
 * this very process, so ktlsd must not fork away from it. */
bool notify_enabled(void);

/* The server is up (listeners bound, privileges dropped): READY=1, with STATUS=status
 * if not NULL. Also used to end a reload, successful or not. */
void notify_ready(const char *status);

/* A reload starts: RELOADING=1 with MONOTONIC_USEC (which Type=notify-reload requires),
 * and STATUS. notify_ready() ends it. */
void notify_reloading(const char *status);

/* A graceful stop starts: STOPPING=1 and STATUS. */
void notify_stopping(const char *status);

/* Only a STATUS= line (shown by `systemctl status`). printf-style. */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Close the socket (at exit; also safe when never opened). */
void notify_close(void);

#endif
