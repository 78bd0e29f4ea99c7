/* ktls.h — kernel TLS: can this kernel do it, did this connection get it, and how.
 *
 * Choice: we let OpenSSL install the keys (SSL_OP_ENABLE_KTLS) instead of calling
 * setsockopt(SOL_TLS, TLS_TX) ourselves. OpenSSL owns the record sequence number, which
 * moves with every post-handshake message (two NewSessionTickets by default) and it
 * already wires the traffic secret → key/iv derivation for all three TLS 1.3 AEADs; doing
 * it by hand duplicates that and gets the sequence wrong the day OpenSSL sends one more
 * ticket. OpenSSL silently falls back to userspace when the kernel refuses, so we never
 * assume: ktls_inspect() checks BIO_get_ktls_send() on every connection and finds the
 * reason when it is off. (OpenSSL 3.0 builds the kernel's crypto_info on its stack in
 * ktls_configure_crypto() and does not cleanse it; our side holds no key copy at all.) */
#ifndef KTLSD_KTLS_H
#define KTLSD_KTLS_H

#include <stdbool.h>
#include <openssl/ssl.h>

#include "config.h"

/* Probe once at start: a loopback TCP pair and TCP_ULP "tls" on it. */
void ktls_probe(void);

/* Result of ktls_probe(): available, and if not, why ("kernel has no tls ULP (ENOENT):
 * CONFIG_TLS off and no module"). */
bool ktls_kernel_available(void);
const char *ktls_kernel_reason(void);

/* Before the handshake: ask OpenSSL for kTLS TX when mode wants the kernel and the kernel
 * can. */
void ktls_prepare(SSL *ssl, enum send_mode mode);

struct ktls_state {
	bool tx;		/* the kernel encrypts what we write to the fd */
	const char *offload;	/* ktls_offload()'s answer once asked; NULL before */
	char reason[128];	/* when !tx: why userspace */
};

/* After the handshake: what happened on this connection (fd is the socket). Cheap: the
 * offload is left for ktls_offload(). */
void ktls_inspect(SSL *ssl, int fd, enum send_mode mode, struct ktls_state *st);

/* How the kernel encrypts this connection: "sw", "hw", "hw-record", "?" (sock_diag could
 * not tell), or "-" without kTLS (or before the handshake). Asking costs a blocking
 * netlink round trip (sock_diag, at most 200 ms), which has no place on every handshake:
 * it is asked when someone will see the answer, once, and cached in st. fd: the
 * connection's socket, still open. */
const char *ktls_offload(struct ktls_state *st, int fd);

/* Read /proc/net/tls_stat counter name (e.g. "TlsTxSw"); -1 if absent. */
long long ktls_stat(const char *name);

#endif
