/* tlsrec.c — see tlsrec.h. */
#include "autoconf.h"
#include "tlsrec.h"

#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef HAVE_LINUX_TLS_H
#include <linux/tls.h>
#endif

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef SOL_TLS
#define SOL_TLS 282
#endif

#define HDR 5
#define TAG 16
#define CT_MAX (TLSREC_PLAIN_MAX + 256)		/* RFC 8446 §5.2: ciphertext length limit */
#define IN_CAP (HDR + CT_MAX)
#define REC_MAX (HDR + TLSREC_PLAIN_MAX + 1 + TAG)
#define KEYUPDATE_REC (HDR + 5 + 1 + TAG)
#define OUT_CAP (KEYUPDATE_REC + TLSREC_WRITE_RECORDS * REC_MAX)

/* RFC 8446 §5 content types and §6 alerts */
enum { CT_ALERT = 21, CT_HANDSHAKE = 22, CT_APPDATA = 23 };
enum {
	AL_CLOSE_NOTIFY = 0, AL_UNEXPECTED_MESSAGE = 10, AL_BAD_RECORD_MAC = 20,
	AL_RECORD_OVERFLOW = 22, AL_ILLEGAL_PARAMETER = 47, AL_DECODE_ERROR = 50,
	AL_INTERNAL_ERROR = 80, AL_USER_CANCELED = 90,
};
#define HS_KEY_UPDATE 24

struct tlsrec_suite {
	const char *name;	/* OpenSSL's name */
	uint16_t id;		/* IANA */
	const char *aead, *digest;
	uint8_t keylen, hashlen;
	unsigned idx;		/* in ciphers[] */
};

static const struct tlsrec_suite suites[] = {
	{ "TLS_AES_128_GCM_SHA256", 0x1301, "AES-128-GCM", "SHA256", 16, 32, 0 },
	{ "TLS_AES_256_GCM_SHA384", 0x1302, "AES-256-GCM", "SHA384", 32, 48, 1 },
	{ "TLS_CHACHA20_POLY1305_SHA256", 0x1303, "ChaCha20-Poly1305", "SHA256", 32, 32, 2 },
};

/* Fetched once: an implicit fetch at every EVP_CipherInit would search the providers
 * for every record. */
static EVP_CIPHER *ciphers[KTLSD_ARRAY_LEN(suites)];
static EVP_KDF *kdf;

static void *wiping_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return malloc(n);
}

static void wiping_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	if (p != NULL)
		OPENSSL_cleanse(p, malloc_usable_size(p));
	free(p);
}

/* realloc() may move the block and free the old one: move it here, wiping the old. */
static void *wiping_realloc(void *p, size_t n, const char *file, int line)
{
	size_t old = p != NULL ? malloc_usable_size(p) : 0;
	void *q;

	if (p == NULL)
		return malloc(n);
	if (n == 0) {
		wiping_free(p, file, line);
		return NULL;
	}
	if (n <= old)
		return p;	/* shrinking in place: the tail stays ours until freed */
	q = malloc(n);
	if (q == NULL)
		return NULL;
	memcpy(q, p, old);
	wiping_free(p, file, line);
	return q;
}

bool tlsrec_wipe_openssl_frees(void)
{
	return CRYPTO_set_mem_functions(wiping_malloc, wiping_realloc, wiping_free) == 1;
}

int tlsrec_global_init(void)
{
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(suites); i++)
		if (ciphers[i] == NULL && (ciphers[i] = EVP_CIPHER_fetch(NULL, suites[i].aead, NULL)) == NULL)
			return -1;
	if (kdf == NULL && (kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_TLS1_3_KDF, NULL)) == NULL)
		return -1;
	return 0;
}

void tlsrec_global_fini(void)
{
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(suites); i++) {
		EVP_CIPHER_free(ciphers[i]);
		ciphers[i] = NULL;
	}
	EVP_KDF_free(kdf);
	kdf = NULL;
}

bool tlsrec_suite_supported(const char *name)
{
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(suites); i++)
		if (strcmp(suites[i].name, name) == 0)
			return true;
	return false;
}

/* ---- during the handshake: what OpenSSL tells the callbacks ---------------------- */

/* "CLIENT_TRAFFIC_SECRET_0 <client random> <secret>" (NSS key log format): the first
 * application traffic secrets, which is all the record layer needs. */
static void on_keylog(const SSL *ssl, const char *line)
{
	static const char cl[] = "CLIENT_TRAFFIC_SECRET_0 ", sv[] = "SERVER_TRAFFIC_SECRET_0 ";
	struct tlsrec *r = SSL_get_app_data(ssl);
	struct tlsrec_dir *d;
	const char *hex;
	unsigned char *bin;
	long len;
	uint8_t bit;

	if (r == NULL)
		return;
	if (strncmp(line, cl, sizeof(cl) - 1) == 0) {
		d = &r->rd;
		bit = 1;
	} else if (strncmp(line, sv, sizeof(sv) - 1) == 0) {
		d = &r->wr;
		bit = 2;
	} else {
		return;
	}
	hex = strrchr(line, ' ');
	if (hex == NULL || (bin = OPENSSL_hexstr2buf(hex + 1, &len)) == NULL)
		return;
	if (len > 0 && len <= TLSREC_MAX_SECRET) {
		memcpy(d->secret, bin, (size_t)len);
		r->have |= bit;
	}
	OPENSSL_clear_free(bin, (size_t)len);
}

/* Counts the records OpenSSL writes after its Finished: those are under the server
 * application key (the session tickets), so their count is our first write sequence. */
static void on_msg(int write_p, int version, int content_type, const void *buf, size_t len,
		   SSL *ssl, void *arg)
{
	struct tlsrec *r = arg;

	(void)version;
	(void)ssl;
	if (!write_p || r == NULL)
		return;
	if (content_type == SSL3_RT_HANDSHAKE && len > 0 &&
	    ((const uint8_t *)buf)[0] == SSL3_MT_FINISHED)
		r->finished_written = true;
	else if (content_type == SSL3_RT_HEADER && r->finished_written)
		r->written_after++;
}

void tlsrec_ctx_setup(SSL_CTX *ctx)
{
	SSL_CTX_set_keylog_callback(ctx, on_keylog);
}

void tlsrec_attach(struct tlsrec *r, SSL *ssl)
{
	SSL_set_app_data(ssl, r);
	SSL_set_msg_callback(ssl, on_msg);
	SSL_set_msg_callback_arg(ssl, r);
}

/* HKDF-Expand-Label(secret, label, "", len) of RFC 8446 §7.1, by OpenSSL's TLS13-KDF. */
static int expand_label(const struct tlsrec_suite *s, const uint8_t *secret, const char *label,
			uint8_t *out, size_t len)
{
	EVP_KDF_CTX *k = EVP_KDF_CTX_new(kdf);
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, ok;
	OSSL_PARAM p[] = {
		OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)s->digest, 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, s->hashlen),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, (void *)"tls13 ", 6),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, (void *)label, strlen(label)),
		OSSL_PARAM_construct_end(),
	};

	ok = k != NULL && EVP_KDF_derive(k, out, len, p) == 1;
	EVP_KDF_CTX_free(k);
	return ok ? 0 : -1;
}

/* key and iv from the direction's secret (§7.3); the sequence restarts. */
static int derive(const struct tlsrec_suite *s, struct tlsrec_dir *d)
{
	d->seq = 0;
	if (expand_label(s, d->secret, "key", d->key, s->keylen) == -1 ||
	    expand_label(s, d->secret, "iv", d->iv, TLSREC_IV) == -1)
		return -1;
	return 0;
}

/* KeyUpdate (§7.2): the next secret, then its key and iv. */
static int next_generation(const struct tlsrec_suite *s, struct tlsrec_dir *d)
{
	uint8_t next[TLSREC_MAX_SECRET];

	if (expand_label(s, d->secret, "traffic upd", next, s->hashlen) == -1)
		return -1;
	memcpy(d->secret, next, s->hashlen);
	OPENSSL_cleanse(next, sizeof(next));
	return derive(s, d);
}

int tlsrec_take(struct tlsrec *r, SSL *ssl, char *err, size_t errlen)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	uint16_t id = c != NULL ? (uint16_t)SSL_CIPHER_get_protocol_id(c) : 0;

	SSL_set_msg_callback(ssl, NULL);
	SSL_set_app_data(ssl, NULL);
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(suites) && r->suite == NULL; i++)
		if (suites[i].id == id)
			r->suite = &suites[i];
	if (r->suite == NULL) {
		snprintf(err, errlen, "no record layer for cipher suite %s",
			 c != NULL ? SSL_CIPHER_get_name(c) : "(none)");
		return -1;
	}
	if (r->have != 3) {
		snprintf(err, errlen, "OpenSSL gave no application traffic secrets");
		return -1;
	}
	if (!r->finished_written) {
		snprintf(err, errlen, "OpenSSL reported no Finished written");
		return -1;
	}
	/* read-ahead is off during the handshake: OpenSSL read nothing past the client's
	 * Finished. Should that ever change, refuse rather than lose those bytes. */
	if (SSL_has_pending(ssl)) {
		snprintf(err, errlen, "OpenSSL buffered bytes past the handshake");
		return -1;
	}
	if (derive(r->suite, &r->rd) == -1 || derive(r->suite, &r->wr) == -1) {
		snprintf(err, errlen, "cannot derive the traffic keys");
		return -1;
	}
	r->wr.seq = r->written_after;
	return 0;
}

int tlsrec_start(struct tlsrec *r, const char *suite, const uint8_t *read_secret,
		 const uint8_t *write_secret, uint64_t write_seq)
{
	for (size_t i = 0; i < KTLSD_ARRAY_LEN(suites) && r->suite == NULL; i++)
		if (strcmp(suites[i].name, suite) == 0)
			r->suite = &suites[i];
	if (r->suite == NULL)
		return -1;
	memcpy(r->rd.secret, read_secret, r->suite->hashlen);
	memcpy(r->wr.secret, write_secret, r->suite->hashlen);
	if (derive(r->suite, &r->rd) == -1 || derive(r->suite, &r->wr) == -1)
		return -1;
	r->wr.seq = write_seq;
	return 0;
}

/* ---- kTLS TX --------------------------------------------------------------------- */

#ifdef HAVE_LINUX_TLS_H
/* only the kernel's crypto_info wants it: without linux/tls.h it would be unused */
static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}
#endif

int tlsrec_attach_ulp(int fd, char *why, size_t whylen)
{
	int e;

	if (setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) == 0)
		return 0;
	e = errno;
	if (e == ENOENT)
		snprintf(why, whylen,
			 "kernel has no tls ULP (ENOENT: CONFIG_TLS off or module not loadable)");
	else
		snprintf(why, whylen, "kernel refused TCP_ULP \"tls\": %s", strerror(e));
	errno = e;
	return -1;
}

int tlsrec_ktls_tx(struct tlsrec *r, int fd, char *why, size_t whylen)
{
#ifdef HAVE_LINUX_TLS_H
	union {
		struct tls12_crypto_info_aes_gcm_128 g128;
		struct tls12_crypto_info_aes_gcm_256 g256;
#ifdef HAVE_TLS_CHACHA
		struct tls12_crypto_info_chacha20_poly1305 cc;
#endif
	} ci;
	socklen_t len;
	int e;

	/* AES-GCM: the kernel takes the 12-byte iv as a 4-byte salt and an 8-byte iv */
#define GCM_INFO(x, type)                                                        \
	do {                                                                     \
		(x).info.version = TLS_1_3_VERSION;                              \
		(x).info.cipher_type = (type);                                   \
		memcpy((x).key, r->wr.key, sizeof((x).key));                     \
		memcpy((x).salt, r->wr.iv, sizeof((x).salt));                    \
		memcpy((x).iv, r->wr.iv + sizeof((x).salt), sizeof((x).iv));     \
		put_be64((x).rec_seq, r->wr.seq);                                \
		len = sizeof(x);                                                 \
	} while (0)

	memset(&ci, 0, sizeof(ci));
	switch (r->suite->id) {
	case 0x1301:
		GCM_INFO(ci.g128, TLS_CIPHER_AES_GCM_128);
		break;
	case 0x1302:
		GCM_INFO(ci.g256, TLS_CIPHER_AES_GCM_256);
		break;
#ifdef HAVE_TLS_CHACHA
	case 0x1303:
		ci.cc.info.version = TLS_1_3_VERSION;
		ci.cc.info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
		memcpy(ci.cc.key, r->wr.key, sizeof(ci.cc.key));
		memcpy(ci.cc.iv, r->wr.iv, sizeof(ci.cc.iv));
		put_be64(ci.cc.rec_seq, r->wr.seq);
		len = sizeof(ci.cc);
		break;
#endif
	default:
		snprintf(why, whylen, "kernel headers have no kTLS %s", r->suite->name);
		errno = EOPNOTSUPP;
		return -1;
	}
	if (tlsrec_attach_ulp(fd, why, whylen) == -1) {
		e = errno;
	} else if (setsockopt(fd, SOL_TLS, TLS_TX, &ci, len) == -1) {
		e = errno;
		snprintf(why, whylen, "kernel refused TLS_TX for %s: %s", r->suite->name,
			 strerror(e));
	} else {
		e = 0;
		r->ktls_tx = true;
		/* the kernel has it; our copy is only a risk from now on (no TX rekey here) */
		OPENSSL_cleanse(&r->wr, sizeof(r->wr));
	}
	OPENSSL_cleanse(&ci, sizeof(ci));
	errno = e;
	return e == 0 ? 0 : -1;
#else
	(void)r;
	(void)fd;
	snprintf(why, whylen, "built without linux/tls.h");
	errno = EOPNOTSUPP;
	return -1;
#endif
}

/* ---- records ----------------------------------------------------------------------- */

/* §5.3: the per-record nonce is the iv XOR the 64-bit sequence, left-padded. */
static void nonce(const struct tlsrec_dir *d, uint8_t out[TLSREC_IV])
{
	memcpy(out, d->iv, TLSREC_IV);
	for (int i = 0; i < 8; i++)
		out[4 + i] ^= (uint8_t)(d->seq >> (56 - 8 * i));
}

static EVP_CIPHER_CTX *aead(struct tlsrec *r, void **slot, const struct tlsrec_dir *d, int enc)
{
	EVP_CIPHER_CTX *x = *slot;

	if (x != NULL)
		return x;
	x = EVP_CIPHER_CTX_new();
	if (x == NULL || EVP_CipherInit_ex2(x, ciphers[r->suite->idx], d->key, NULL, enc, NULL) != 1) {
		EVP_CIPHER_CTX_free(x);
		return NULL;
	}
	*slot = x;
	return x;
}

static void drop_ctx(void **slot)
{
	EVP_CIPHER_CTX_free(*slot);
	*slot = NULL;
}

/* Seal data (len ≤ 16384) with inner type into dst (room for HDR + len + 1 + TAG).
 * Returns the record's size, or 0 on failure. */
static size_t seal(struct tlsrec *r, uint8_t type, const void *data, size_t len, uint8_t *dst)
{
	EVP_CIPHER_CTX *x = aead(r, &r->wctx, &r->wr, 1);
	size_t clen = len + 1 + TAG;
	uint8_t iv[TLSREC_IV];
	int l1, l2, l3;

	if (x == NULL)
		return 0;
	dst[0] = CT_APPDATA;
	dst[1] = 3;
	dst[2] = 3;
	dst[3] = (uint8_t)(clen >> 8);
	dst[4] = (uint8_t)clen;
	nonce(&r->wr, iv);
	if (EVP_EncryptInit_ex2(x, NULL, NULL, iv, NULL) != 1 ||
	    EVP_EncryptUpdate(x, NULL, &l1, dst, HDR) != 1 ||
	    EVP_EncryptUpdate(x, dst + HDR, &l1, data, (int)len) != 1 ||
	    EVP_EncryptUpdate(x, dst + HDR + l1, &l2, &type, 1) != 1 ||
	    EVP_EncryptFinal_ex(x, dst + HDR + l1 + l2, &l3) != 1 ||
	    EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, TAG, dst + HDR + len + 1) != 1)
		return 0;
	r->wr.seq++;
	return HDR + clen;
}

/* Open the record at rec (header + clen bytes) in place. 0 with the inner plaintext
 * (padding included) at rec + HDR, *plen bytes; -1 if it does not authenticate. */
static int open_record(struct tlsrec *r, uint8_t *rec, size_t clen, size_t *plen)
{
	EVP_CIPHER_CTX *x = aead(r, &r->rctx, &r->rd, 0);
	uint8_t iv[TLSREC_IV];
	int l1, l2;

	if (x == NULL || clen < 1 + TAG)
		return -1;
	nonce(&r->rd, iv);
	if (EVP_DecryptInit_ex2(x, NULL, NULL, iv, NULL) != 1 ||
	    EVP_DecryptUpdate(x, NULL, &l1, rec, HDR) != 1 ||
	    EVP_DecryptUpdate(x, rec + HDR, &l1, rec + HDR, (int)(clen - TAG)) != 1 ||
	    EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, TAG, rec + HDR + clen - TAG) != 1 ||
	    EVP_DecryptFinal_ex(x, rec + HDR + l1, &l2) != 1)
		return -1;
	r->rd.seq++;
	*plen = clen - TAG;
	return 0;
}

/* One record of ours outside the data stream (an alert), one try. With kTLS TX the kernel
 * seals it: a control message names its type. */
static void send_own(struct tlsrec *r, int fd, uint8_t type, const uint8_t *data, size_t len)
{
	uint8_t rec[HDR + 8 + 1 + TAG];

	if (r->suite == NULL || len > 8)
		return;
	if (r->ktls_tx) {
#ifdef HAVE_LINUX_TLS_H
		char cbuf[CMSG_SPACE(sizeof(type))];
		struct iovec iov = { (void *)data, len };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				    .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

		cm->cmsg_level = SOL_TLS;
		cm->cmsg_type = TLS_SET_RECORD_TYPE;
		cm->cmsg_len = CMSG_LEN(sizeof(type));
		memcpy(CMSG_DATA(cm), &type, sizeof(type));
		(void)sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
#endif
		return;
	}
	/* behind a record half on the wire an alert would corrupt the stream: then none */
	if (r->out_off != r->out_len)
		return;
	size_t n = seal(r, type, data, len, rec);
	if (n > 0)
		(void)!write(fd, rec, n);	/* non-blocking socket, SIGPIPE ignored */
}

static enum io_result fail(struct tlsrec *r, int fd, uint8_t alert, const char *why)
{
	const uint8_t a[2] = { 2, alert };	/* fatal */

	if (why != NULL)
		r->error = why;
	send_own(r, fd, CT_ALERT, a, sizeof(a));
	r->closed = true;
	r->failed = true;
	return IO_ERROR;
}

static int protocol_error(struct tlsrec *r, uint8_t *alert, uint8_t code, const char *why)
{
	*alert = code;
	r->error = why;
	return -1;
}

/* The handshake bytes of one record: only KeyUpdate may come (§4.6.3), possibly split
 * over records, and it must end its record (§5.1: no message spans a key change). */
static int inner_handshake(struct tlsrec *r, const uint8_t *p, size_t len, uint8_t *alert)
{
	size_t i = 0;

	if (len == 0)
		return protocol_error(r, alert, AL_UNEXPECTED_MESSAGE, "empty handshake record");
	while (i < len) {
		while (r->hs_have < 4 && i < len)
			r->hs[r->hs_have++] = p[i++];
		if (r->hs_have < 4)
			return 1;
		if (r->hs[0] != HS_KEY_UPDATE)
			return protocol_error(r, alert, AL_UNEXPECTED_MESSAGE,
					      "a handshake message other than KeyUpdate after the handshake");
		if (r->hs[1] != 0 || r->hs[2] != 0 || r->hs[3] != 1)
			return protocol_error(r, alert, AL_DECODE_ERROR, "KeyUpdate of a wrong length");
		if (i == len)
			return 1;	/* its one byte comes in the next record */
		uint8_t req = p[i++];
		r->hs_have = 0;
		if (req > 1)
			return protocol_error(r, alert, AL_ILLEGAL_PARAMETER, "KeyUpdate request not 0 or 1");
		if (i != len)
			return protocol_error(r, alert, AL_UNEXPECTED_MESSAGE,
					      "bytes after a KeyUpdate in its record");
		if (next_generation(r->suite, &r->rd) == -1)
			return protocol_error(r, alert, AL_INTERNAL_ERROR, "cannot derive the next read key");
		drop_ctx(&r->rctx);
		if (req == 1) {
			if (r->ktls_tx)
				/* the kernels this targets (6.1, 6.12) cannot change the TX key */
				return protocol_error(r, alert, AL_INTERNAL_ERROR,
						      "the client asked for a KeyUpdate, which kTLS TX cannot do");
			r->update_due = true;
		}
	}
	return 1;
}

int tlsrec_inner(struct tlsrec *r, uint8_t type, const uint8_t *buf, size_t len, uint8_t *alert)
{
	if (r->hs_have > 0 && type != CT_HANDSHAKE)
		return protocol_error(r, alert, AL_UNEXPECTED_MESSAGE,
				      "a record inside a split handshake message");
	switch (type) {
	case CT_APPDATA:
		return len > 0 ? 0 : 1;
	case CT_ALERT:
		if (len != 2)
			return protocol_error(r, alert, AL_DECODE_ERROR, "alert of a wrong length");
		if (buf[1] == AL_USER_CANCELED)
			return 1;	/* §6.1: a close_notify should follow */
		r->error = buf[1] == AL_CLOSE_NOTIFY ? NULL : "an alert from the peer";
		r->close_notify_received = buf[1] == AL_CLOSE_NOTIFY;
		r->closed = true;
		return 2;
	case CT_HANDSHAKE:
		return inner_handshake(r, buf, len, alert);
	default:
		return protocol_error(r, alert, AL_UNEXPECTED_MESSAGE,
				      "a record of an unexpected type after the handshake");
	}
}

/* The complete record at in[pos]: open it, strip the padding, act on its type. */
static enum io_result one_record(struct tlsrec *r, int fd, size_t clen)
{
	uint8_t *rec = r->in + r->pos, alert, type;
	size_t p;

	r->pos += HDR + (uint32_t)clen;
	if (open_record(r, rec, clen, &p) == -1)
		return fail(r, fd, AL_BAD_RECORD_MAC, "bad record MAC");
	/* §5.4: the whole TLSInnerPlaintext, padding included, is at most 2^14 + 1 */
	if (p > TLSREC_PLAIN_MAX + 1)
		return fail(r, fd, AL_RECORD_OVERFLOW, "record plaintext over 2^14 bytes");
	while (p > 0 && rec[HDR + p - 1] == 0)	/* §5.4: zeros after the content type */
		p--;
	if (p == 0)
		return fail(r, fd, AL_UNEXPECTED_MESSAGE, "a record without content type");
	type = rec[HDR + --p];
	switch (tlsrec_inner(r, type, rec + HDR, p, &alert)) {
	case 0:
		r->plain_off = (uint32_t)(rec + HDR - r->in);
		r->plain_len = (uint32_t)p;
		r->without_data = 0;
		return IO_OK;
	case 1:
		if (++r->without_data > TLSREC_MAX_RECORDS_WITHOUT_DATA)
			return fail(r, fd, AL_UNEXPECTED_MESSAGE, "too many records without data");
		return IO_OK;
	case 2:
		return IO_PEER_GONE;
	default:
		return fail(r, fd, alert, NULL);
	}
}

enum io_result tlsrec_read(struct tlsrec *r, int fd, void *buf, size_t len, size_t *n)
{
	*n = 0;
	if (len == 0)
		return IO_OK;	/* nothing asked: nothing read, nothing decrypted over */
	for (;;) {
		if (r->plain_len > 0) {
			size_t k = len < r->plain_len ? len : r->plain_len;
			memcpy(buf, r->in + r->plain_off, k);
			r->plain_off += (uint32_t)k;
			r->plain_len -= (uint32_t)k;
			*n = k;
			return IO_OK;
		}
		if (r->closed)
			return r->failed ? IO_ERROR : IO_PEER_GONE;
		size_t avail = r->in_len - r->pos;
		if (avail >= HDR) {
			const uint8_t *h = r->in + r->pos;
			size_t clen = (size_t)h[3] << 8 | h[4];
			/* after the handshake every record is protected: outer type 23 */
			if (h[0] != CT_APPDATA)
				return fail(r, fd, AL_UNEXPECTED_MESSAGE, "an unprotected record after the handshake");
			if (clen > CT_MAX)
				return fail(r, fd, AL_RECORD_OVERFLOW, "record over 2^14 + 256 bytes");
			if (avail >= HDR + clen) {
				enum io_result res = one_record(r, fd, clen);
				if (res != IO_OK)
					return res;
				continue;
			}
		}
		/* more bytes needed: move the partial record to the front, read behind it */
		if (r->pos > 0) {
			memmove(r->in, r->in + r->pos, avail);
			r->in_len = (uint32_t)avail;
			r->pos = 0;
		}
		if (r->in == NULL && (r->in = malloc(IN_CAP)) == NULL) {
			r->error = "out of memory";
			return IO_ERROR;
		}
		ssize_t got = TEMP_FAILURE_RETRY(read(fd, r->in + r->in_len, IN_CAP - r->in_len));
		if (got > 0) {
			r->in_len += (uint32_t)got;
			continue;
		}
		if (got == 0) {
			if (r->in_len > 0)
				r->error = "connection closed inside a record";
			return IO_PEER_GONE;
		}
		enum io_result res = io_from_errno(errno);
		if (res == IO_AGAIN && r->in_len == 0) {
			/* nothing buffered: an idle connection holds no buffer, no context */
			free(r->in);
			r->in = NULL;
			drop_ctx(&r->rctx);
		}
		return res;
	}
}

static int key_update_first(struct tlsrec *r)
{
	static const uint8_t ku[5] = { HS_KEY_UPDATE, 0, 0, 1, 0 };	/* update_not_requested */
	size_t n = seal(r, CT_HANDSHAKE, ku, sizeof(ku), r->out + r->out_len);

	if (n == 0 || next_generation(r->suite, &r->wr) == -1)
		return -1;
	drop_ctx(&r->wctx);
	r->out_len += (uint32_t)n;
	r->update_due = false;
	return 0;
}

enum io_result tlsrec_write(struct tlsrec *r, int fd, const void *buf, size_t len, size_t *n)
{
	*n = 0;
	if (r->out_off == r->out_len) {
		if (len == 0)
			return IO_OK;
		if (r->out == NULL && (r->out = malloc(OUT_CAP)) == NULL)
			return IO_ERROR;
		r->out_off = r->out_len = 0;
		if (r->wr.seq + TLSREC_WRITE_RECORDS > TLSREC_REKEY_RECORDS)
			r->update_due = true;	/* the key's usage limit (§5.5) is near */
		if (r->update_due && key_update_first(r) == -1)
			return IO_ERROR;
		const unsigned char *p = buf;
		for (int i = 0; i < TLSREC_WRITE_RECORDS && len > 0; i++) {
			size_t k = len < TLSREC_PLAIN_MAX ? len : TLSREC_PLAIN_MAX;
			size_t s = seal(r, CT_APPDATA, p, k, r->out + r->out_len);
			if (s == 0)
				return IO_ERROR;
			r->out_len += (uint32_t)s;
			r->out_plain += (uint32_t)k;
			p += k;
			len -= k;
		}
	}
	while (r->out_off < r->out_len) {
		ssize_t w = TEMP_FAILURE_RETRY(write(fd, r->out + r->out_off, r->out_len - r->out_off));
		if (w < 0)
			return io_from_errno(errno);
		r->out_off += (uint32_t)w;
	}
	*n = r->out_plain;
	r->out_plain = 0;
	r->out_off = r->out_len = 0;
	return IO_OK;
}

void tlsrec_close_notify(struct tlsrec *r, int fd)
{
	static const uint8_t a[2] = { 1, AL_CLOSE_NOTIFY };	/* warning */

	if (r->out_off != r->out_len) {
		ssize_t w = write(fd, r->out + r->out_off, r->out_len - r->out_off);
		if (w > 0)
			r->out_off += (uint32_t)w;
	}
	send_own(r, fd, CT_ALERT, a, sizeof(a));
}

void tlsrec_release(struct tlsrec *r)
{
	drop_ctx(&r->wctx);
	if (r->out_off == r->out_len) {
		free(r->out);
		r->out = NULL;
		r->out_off = r->out_len = 0;
	}
	if (r->in_len == r->pos && r->plain_len == 0) {
		free(r->in);
		r->in = NULL;
		r->in_len = r->pos = 0;
		drop_ctx(&r->rctx);
	}
}

void tlsrec_free(struct tlsrec *r)
{
	drop_ctx(&r->rctx);
	drop_ctx(&r->wctx);
	if (r->in != NULL)
		OPENSSL_clear_free(r->in, IN_CAP);
	if (r->out != NULL)
		OPENSSL_clear_free(r->out, OUT_CAP);
	OPENSSL_cleanse(r, sizeof(*r));
}
