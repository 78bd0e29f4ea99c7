/* tls.h — the OpenSSL side: SSL_CTX (TLS 1.3 only, ALPN http/1.1, certificate) and the
 * handshake step mapped to enum io_result. After the handshake the records are
 * tlsrec.h's. */
#ifndef KTLSD_TLS_H
#define KTLSD_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

#include "common.h"

/* Build the server SSL_CTX from c: the certificate files, or with c->demo and no files a
 * fresh self-signed ECDSA P-256 certificate for localhost/127.0.0.1/::1 made in memory.
 * Returns NULL with the reason in err. */
SSL_CTX *tls_ctx_new(const struct config *c, char *err, size_t errlen);

/* One step of the server handshake on ssl. IO_OK: done. IO_AGAIN: *want_write says which
 * event to wait for. IO_PEER_GONE / IO_ERROR: close (reason logged at info). */
enum io_result tls_handshake(SSL *ssl, int *want_write);

/* Short names for logs and stats: "TLS_AES_256_GCM_SHA384". */
const char *tls_cipher_name(const SSL *ssl);

#endif
