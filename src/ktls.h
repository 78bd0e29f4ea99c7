/* ktls.h — kernel TLS: can this kernel do it, did this connection get it, and how.
 *
 * The keys come from the record layer (tlsrec.h), which takes over from OpenSSL after the
 * handshake to free its ~14 KiB per connection: it derives the write key from the
 * traffic secret with OpenSSL's TLS13-KDF, knows the sequence (the records OpenSSL wrote
 * after its Finished: the session tickets), calls setsockopt(SOL_TLS, TLS_TX) and wipes
 * the key and its crypto_info copy at once. (Before, OpenSSL's SSL_OP_ENABLE_KTLS did
 * this and left the crypto_info on its stack uncleansed.) */
#ifndef KTLSD_KTLS_H
#define KTLSD_KTLS_H

#include <stdbool.h>
#include "config.h"

struct tlsrec;

/* Probe once at start: a loopback TCP pair and TCP_ULP "tls" on it. */
void ktls_probe(void);

/* Result of ktls_probe(): available, and if not, why ("kernel has no tls ULP (ENOENT):
 * CONFIG_TLS off and no module"). */
bool ktls_kernel_available(void);
const char *ktls_kernel_reason(void);

struct ktls_state {
	bool tx;		/* the kernel encrypts what we write to the fd */
	const char *offload;	/* ktls_offload()'s answer once asked; NULL before */
	char reason[128];	/* when !tx: why userspace */
};

/* After the handshake (r has the keys): hand the write key to the kernel when mode wants
 * the kernel and the kernel can; st says what happened and, without kTLS, why. Cheap:
 * the offload is left for ktls_offload(). */
void ktls_start(struct tlsrec *r, int fd, enum send_mode mode, struct ktls_state *st);

/* How the kernel encrypts this connection: "sw", "hw", "hw-record", "?" (sock_diag could
 * not tell), or "-" without kTLS (or before the handshake). Asking costs a blocking
 * netlink round trip (sock_diag, at most 200 ms), which has no place on every handshake:
 * it is asked when someone will see the answer, once, and cached in st. fd: the
 * connection's socket, still open. */
const char *ktls_offload(struct ktls_state *st, int fd);

/* Read /proc/net/tls_stat counter name (e.g. "TlsTxSw"); -1 if absent. */
long long ktls_stat(const char *name);

#endif
