/* tlsrec.h — the TLS 1.3 record layer of an established connection, without OpenSSL's
 * SSL object.
 *
 * Why: OpenSSL 3.0 keeps ~14 KiB per connection after the handshake (the SSL struct alone
 * is 7.6 KiB, two AEAD contexts 2.3 KiB, the session, a CERT copy, locks), with its
 * buffers already released. An idle keep-alive connection needs none of it: only the two
 * traffic secrets and two sequence numbers. So OpenSSL does the handshake (and the session
 * tickets, in the same flight), then hands over: the traffic secrets come from the keylog
 * callback, the write sequence from counting the records OpenSSL wrote after its Finished
 * (the message callback), the read sequence is 0 because read-ahead is off during the
 * handshake and nothing past the client's Finished was read. The SSL object is freed; the
 * AEAD contexts and the record buffers exist only while bytes are in flight.
 *
 * What stays OpenSSL's: every primitive (EVP AEAD for the records, the TLS13-KDF for
 * HKDF-Expand-Label). What is ours: the record framing of RFC 8446 §5 (header, inner
 * content type and padding, nonce = iv XOR sequence, size limits), alerts, and the one
 * post-handshake message a client may send a server, KeyUpdate (§4.6.3). Post-handshake
 * authentication is never requested, so a client's other handshake messages are
 * unexpected_message. This is also what the kernel's tls_sw does for kTLS connections,
 * and with kTLS TX the write key goes to the kernel from here (setsockopt TLS_TX) and is
 * wiped at once.
 *
 * Suites: TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256
 * (OpenSSL's default TLS 1.3 list, and what kTLS knows); tls.ciphersuites is checked
 * against these at load. */
#ifndef KTLSD_TLSREC_H
#define KTLSD_TLSREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "common.h"

#define TLSREC_MAX_SECRET 48	/* SHA-384 */
#define TLSREC_MAX_KEY 32
#define TLSREC_IV 12
#define TLSREC_PLAIN_MAX 16384	/* 2^14: the largest record plaintext */
/* The most one tlsrec_write() takes: four full records in one write(). One syscall per
 * 16 KiB record was a quarter of a userspace download's CPU time; 64 KiB is what TSO
 * takes in one go. It also bounds the output buffer (partial writes are finished first). */
#define TLSREC_WRITE_RECORDS 4
#define TLSREC_WRITE_MAX (TLSREC_WRITE_RECORDS * TLSREC_PLAIN_MAX)
/* Records sealed under one write key before ktlsd changes it by itself (a KeyUpdate,
 * update_not_requested, before the next data). RFC 8446 §5.5 limits AES-GCM to 2^24.5
 * full records per key; 2^24 (256 GiB of 16 KiB records) keeps a margin and applies to
 * every suite. With kTLS TX the kernel holds the key and 6.1/6.12 cannot change it. */
#define TLSREC_REKEY_RECORDS (UINT64_C(1) << 24)
/* Records in a row that carry no application data (empty ones, KeyUpdates, user_canceled)
 * before the connection is ended: without a bound, a client streaming them would keep
 * tlsrec_read() — and its worker — busy for as long as it likes. OpenSSL's bound for
 * empty records is the same 32. */
#define TLSREC_MAX_RECORDS_WITHOUT_DATA 32

struct tlsrec_suite;

/* One direction's traffic state. */
struct tlsrec_dir {
	uint8_t secret[TLSREC_MAX_SECRET];	/* for KeyUpdate; wiped once the kernel has the key */
	uint8_t key[TLSREC_MAX_KEY];
	uint8_t iv[TLSREC_IV];
	uint64_t seq;
};

struct tlsrec {
	const struct tlsrec_suite *suite;	/* NULL until tlsrec_take() */
	struct tlsrec_dir rd, wr;
	/* AEAD contexts, only while bytes are in flight (tlsrec_release() frees them) */
	void *rctx, *wctx;		/* EVP_CIPHER_CTX */
	/* Received bytes: in[0, in_len); plaintext not yet returned at in[plain_off,
	 * plain_off + plain_len); the next unprocessed record byte at in[pos]. Allocated
	 * while anything is buffered, freed when the last byte is consumed. */
	unsigned char *in;
	uint32_t in_len, pos, plain_off, plain_len;
	/* Records sealed but not yet on the wire, carrying out_plain bytes of the caller's */
	unsigned char *out;
	uint32_t out_len, out_off, out_plain;
	uint8_t hs[4];			/* a KeyUpdate's header arriving in pieces */
	uint8_t hs_have;
	uint8_t without_data;		/* records in a row without application data */
	bool update_due;		/* the peer asked for our KeyUpdate: before our next data */
	bool ktls_tx;			/* the kernel has the write key */
	bool closed;			/* close_notify or an alert came, or we sent a fatal one */
	bool failed;			/* ... we did: reads say IO_ERROR, else IO_PEER_GONE */
	bool close_notify_received;	/* RFC 8446 §6.1: the caller answers with its own */
	/* during the handshake (the callbacks fill these) */
	uint8_t have;			/* bit 0: client secret, bit 1: server secret */
	bool finished_written;
	uint32_t written_after;		/* records OpenSSL wrote after its Finished */
	const char *error;		/* last protocol error, for the log ("bad record MAC") */
};

/* First thing in main(), before OpenSSL allocates anything: every block OpenSSL frees is
 * zeroed first. Why: OpenSSL 3.0 does not cleanse an SSL's traffic secrets at SSL_free(),
 * and ktlsd frees each SSL right after the handshake — with kTLS the secret from which
 * the kernel's key derives would otherwise stay in freed heap for as long as the memory
 * is not reused. false if OpenSSL had already allocated (then nothing changes). */
bool tlsrec_wipe_openssl_frees(void);

/* Once, before any worker starts: fetch the AEAD and KDF implementations. 0 or -1. */
int tlsrec_global_init(void);
void tlsrec_global_fini(void);

/* On every server SSL_CTX (the default and each SNI one: after SSL_set_SSL_CTX OpenSSL
 * takes the keylog callback from the new one): capture the traffic secrets. */
void tlsrec_ctx_setup(SSL_CTX *ctx);

/* Does suite (an OpenSSL TLS 1.3 suite name) have a record layer here? */
bool tlsrec_suite_supported(const char *name);

/* Before the handshake on ssl: r (zeroed) receives what the callbacks see. ssl's app
 * data is r. */
void tlsrec_attach(struct tlsrec *r, SSL *ssl);

/* After SSL_do_handshake() returned 1: take the traffic state. 0, or -1 with the reason
 * in err (unsupported suite, a secret missing, bytes already buffered in ssl). The caller
 * frees ssl afterwards either way; on success the secrets no longer depend on it. */
int tlsrec_take(struct tlsrec *r, SSL *ssl, char *err, size_t errlen);

/* Attach the kernel's "tls" ULP to the connected TCP socket fd, the first step of kTLS
 * (and the start-up probe's test: it also makes the kernel load the tls module). 0, or -1
 * with errno and the reason in why (ENOENT: no CONFIG_TLS). */
int tlsrec_attach_ulp(int fd, char *why, size_t whylen);

/* Hand the write key to the kernel: TCP_ULP "tls", then TLS_TX with the current
 * sequence. On success the write secret, key and iv are wiped here (and the
 * crypto_info copy) and r->ktls_tx is set: from then on every byte written to fd is
 * encrypted by the kernel, and our own records (alerts) go as control messages. -1 with
 * errno and the reason in why otherwise; the connection goes on in userspace. */
int tlsrec_ktls_tx(struct tlsrec *r, int fd, char *why, size_t whylen);

/* Read up to len bytes of application data from fd (non-blocking). IO_OK with *n > 0
 * (with len 0: *n 0, nothing done);
 * IO_AGAIN once the socket said EAGAIN and nothing is buffered; IO_PEER_GONE on EOF,
 * close_notify or an alert from the peer; IO_ERROR on a protocol violation (a fatal alert
 * was sent, r->error says which). Reads ahead: bytes past the record stay buffered, so
 * after IO_OK call again before waiting for an edge. */
enum io_result tlsrec_read(struct tlsrec *r, int fd, void *buf, size_t len, size_t *n);

/* Write application data in userspace (not with kTLS TX). IO_OK with *n bytes on the
 * wire (at most TLSREC_WRITE_MAX, in one write()); IO_AGAIN when the socket is
 * full, and then the next call must pass at least the same bytes again (the sealed
 * records are finished first, as with SSL_write). A KeyUpdate the peer asked for, or one
 * the key's usage limit calls for (TLSREC_REKEY_RECORDS), goes first. */
enum io_result tlsrec_write(struct tlsrec *r, int fd, const void *buf, size_t len, size_t *n);

/* One try at a close_notify alert (after any sealed record still pending); a full
 * socket buffer just means none. */
void tlsrec_close_notify(struct tlsrec *r, int fd);

/* Idle: give back the AEAD contexts and an empty write buffer; keys stay. */
void tlsrec_release(struct tlsrec *r);

/* Wipe and free everything. r may be zeroed (never used). */
void tlsrec_free(struct tlsrec *r);

/* Start r (zeroed) from known secrets, as tlsrec_take() does after a handshake: suite is
 * an OpenSSL suite name, read_secret the peer's (client's) application traffic secret,
 * write_secret ours, both of the suite's hash length; write_seq the records already sent
 * under it. 0, or -1 for an unknown suite. For tests, fuzzing and a client side. */
int tlsrec_start(struct tlsrec *r, const char *suite, const uint8_t *read_secret,
		 const uint8_t *write_secret, uint64_t write_seq);

/* For tests and fuzzing: process one decrypted record's inner plaintext of inner type
 * type (after padding removal) as tlsrec_read would. Returns 0 (application data: its
 * bytes are at buf[0, len) and stay there), 1 (consumed: a KeyUpdate or an empty record),
 * 2 (close_notify or an alert: the peer is gone), or -1 with the alert to send in *alert
 * (RFC 8446 AlertDescription) and r->error set. */
int tlsrec_inner(struct tlsrec *r, uint8_t type, const uint8_t *buf, size_t len, uint8_t *alert);

#endif
