/* test_tlsrec.c — unit tests for the TLS 1.3 record layer of tlsrec.h.
 *
 * Contract under test (tlsrec.h): after OpenSSL's server handshake, tlsrec_take() alone
 * carries the connection — data both ways byte-exact with a stock OpenSSL client, the
 * write sequence right whatever the number of session tickets, KeyUpdate both ways,
 * close_notify both ways; hostile records end in IO_ERROR with an alert, never in data;
 * an idle connection holds no buffer and no AEAD context; tlsrec_free() leaks nothing
 * (the CI runs this under ASan + LeakSanitizer).
 *
 * Two set-ups, both on a non-blocking AF_UNIX socketpair in one thread:
 *   - a real handshake: server SSL with the ktlsd settings, a plain OpenSSL client;
 *   - two tlsrec_start() ends with fixed secrets (secrets swapped), for the records an
 *     OpenSSL client never sends. Records of any inner type are sealed here with EVP
 *     directly (seal_rec), an implementation independent of tlsrec.c's own, and the
 *     server's alerts are opened here (open_rec) to check their description.
 * assert() aborts on the first failure. */
#undef NDEBUG
#include "tlsrec.h"

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define BUF_CAP (1536u * 1024)	/* more than the largest transfer (1 MiB) */

static const char *const suites[] = {
	"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
};

static const char *aead_name(const char *suite)
{
	if (strcmp(suite, "TLS_AES_128_GCM_SHA256") == 0)
		return "AES-128-GCM";
	if (strcmp(suite, "TLS_AES_256_GCM_SHA384") == 0)
		return "AES-256-GCM";
	return "ChaCha20-Poly1305";
}

/* A deterministic pattern, so that a lost, doubled or reordered record shows. */
static void fill(uint8_t *p, size_t n, unsigned salt)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 131 + (i >> 8) * 7 + salt) & 0xff);
}

static void nonblocking_pair(int sv[2])
{
	assert(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	for (int i = 0; i < 2; i++)
		assert(fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK) == 0);
}

/* Everything readable on fd now (non-blocking), appended to buf. */
static size_t drain(int fd, uint8_t *buf, size_t cap)
{
	size_t have = 0;
	ssize_t k;

	while (have < cap && (k = read(fd, buf + have, cap - have)) > 0)
		have += (size_t)k;
	return have;
}

static void write_all(int fd, const void *p, size_t n)
{
	assert(write(fd, p, n) == (ssize_t)n);
}

/* ---- records sealed and opened here, with EVP, not with tlsrec.c -------------------- */

static void rec_nonce(const struct tlsrec_dir *d, uint8_t iv[TLSREC_IV])
{
	memcpy(iv, d->iv, TLSREC_IV);
	for (int i = 0; i < 8; i++)
		iv[TLSREC_IV - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

/* One record under d (its sequence advances): outer type 23, inner plaintext = data,
 * then the inner type unless type < 0, then pad zeros. Returns its size. */
static size_t seal_rec(const char *suite, struct tlsrec_dir *d, int type, const void *data,
		       size_t len, size_t pad, uint8_t *out)
{
	EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, aead_name(suite), NULL);
	EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
	size_t plen = len + (type >= 0) + pad, clen = plen + 16;
	uint8_t *inner = malloc(plen + 1), iv[TLSREC_IV];
	int l = 0, l2 = 0;

	assert(c != NULL && x != NULL && inner != NULL);
	if (len > 0)
		memcpy(inner, data, len);
	if (type >= 0)
		inner[len] = (uint8_t)type;
	memset(inner + len + (type >= 0), 0, pad);
	out[0] = 23;
	out[1] = 3;
	out[2] = 3;
	out[3] = (uint8_t)(clen >> 8);
	out[4] = (uint8_t)clen;
	rec_nonce(d, iv);
	assert(EVP_EncryptInit_ex2(x, c, d->key, iv, NULL) == 1);
	assert(EVP_EncryptUpdate(x, NULL, &l, out, 5) == 1);
	assert(EVP_EncryptUpdate(x, out + 5, &l, inner, (int)plen) == 1);
	assert(EVP_EncryptFinal_ex(x, out + 5 + l, &l2) == 1 && (size_t)(l + l2) == plen);
	assert(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, out + 5 + plen) == 1);
	d->seq++;
	free(inner);
	EVP_CIPHER_CTX_free(x);
	EVP_CIPHER_free(c);
	return 5 + clen;
}

/* Open the record at in under d (its sequence advances): the inner type and content,
 * padding stripped. Returns the record's size. */
static size_t open_rec(const char *suite, struct tlsrec_dir *d, const uint8_t *in, size_t have,
		       uint8_t *type, uint8_t *out, size_t *outlen)
{
	EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, aead_name(suite), NULL);
	EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
	size_t clen, p;
	uint8_t iv[TLSREC_IV];
	int l = 0, l2 = 0;

	assert(have >= 5 && in[0] == 23 && in[1] == 3 && in[2] == 3);
	clen = (size_t)in[3] << 8 | in[4];
	assert(clen >= 17 && have >= 5 + clen);
	rec_nonce(d, iv);
	assert(EVP_DecryptInit_ex2(x, c, d->key, iv, NULL) == 1);
	assert(EVP_DecryptUpdate(x, NULL, &l, in, 5) == 1);
	assert(EVP_DecryptUpdate(x, out, &l, in + 5, (int)(clen - 16)) == 1);
	assert(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, 16, (void *)(in + 5 + clen - 16)) == 1);
	assert(EVP_DecryptFinal_ex(x, out + l, &l2) == 1);
	d->seq++;
	p = clen - 16;
	while (p > 0 && out[p - 1] == 0)
		p--;
	assert(p > 0);
	*type = out[p - 1];
	*outlen = p - 1;
	EVP_CIPHER_CTX_free(x);
	EVP_CIPHER_free(c);
	return 5 + clen;
}

/* ---- two tlsrec_start() ends --------------------------------------------------------- */

/* srv reads what cli writes: srv's read secret is cli's write secret. s is srv's socket
 * end, c cli's; bytes written raw to c reach srv as if from the client. */
struct rpair {
	const char *suite;
	struct tlsrec srv, cli;
	int s, c;
};

static void rpair_start(struct rpair *p, const char *suite)
{
	uint8_t cs[TLSREC_MAX_SECRET], ss[TLSREC_MAX_SECRET];
	int sv[2];

	for (size_t i = 0; i < sizeof(cs); i++) {
		cs[i] = (uint8_t)i;
		ss[i] = (uint8_t)(0x80 + i);
	}
	memset(p, 0, sizeof(*p));
	p->suite = suite;
	assert(tlsrec_start(&p->srv, suite, cs, ss, 0) == 0);
	assert(tlsrec_start(&p->cli, suite, ss, cs, 0) == 0);
	nonblocking_pair(sv);
	p->s = sv[0];
	p->c = sv[1];
}

static void rpair_end(struct rpair *p)
{
	tlsrec_free(&p->srv);
	tlsrec_free(&p->cli);
	close(p->s);
	close(p->c);
}

/* srv reads until it stops returning data: its last result, the data in buf. */
static enum io_result srv_read_all(struct rpair *p, uint8_t *buf, size_t cap, size_t *got)
{
	enum io_result res;
	size_t n;

	*got = 0;
	while ((res = tlsrec_read(&p->srv, p->s, buf + *got, cap - *got, &n)) == IO_OK) {
		assert(n > 0 && n <= cap - *got);
		*got += n;
	}
	return res;
}

/* The one alert srv sent to c, opened with srv's write keys (a copy of them from before). */
static uint8_t alert_received(struct rpair *p, struct tlsrec_dir *srv_wr)
{
	uint8_t in[256], out[256], type;
	size_t n = drain(p->c, in, sizeof(in)), len;

	assert(n > 0);
	assert(open_rec(p->suite, srv_wr, in, n, &type, out, &len) == n);
	assert(type == 21 && len == 2 && out[0] == 2);
	return out[1];
}

/* ---- tlsrec_inner: the inner-plaintext step alone ------------------------------------ */

static int inner(struct tlsrec *r, uint8_t type, const uint8_t *b, size_t len, uint8_t *alert)
{
	*alert = 0xff;
	return tlsrec_inner(r, type, b, len, alert);
}

static void test_inner(const char *suite)
{
	static const uint8_t ku0[] = { 24, 0, 0, 1, 0 }, ku1[] = { 24, 0, 0, 1, 1 };
	struct rpair p;
	struct tlsrec *r = &p.srv;
	uint8_t a, secret[TLSREC_MAX_SECRET], key[TLSREC_MAX_KEY];

	rpair_start(&p, suite);
	/* application data stays where it is */
	assert(inner(r, 23, (const uint8_t *)"abc", 3, &a) == 0);
	assert(inner(r, 23, NULL, 0, &a) == 1);		/* zero-length: consumed */
	/* a whole KeyUpdate: a new read generation, sequence 0, nothing asked of us */
	r->rd.seq = 7;
	memcpy(secret, r->rd.secret, sizeof(secret));
	memcpy(key, r->rd.key, sizeof(key));
	assert(inner(r, 22, ku0, sizeof(ku0), &a) == 1);
	assert(memcmp(secret, r->rd.secret, sizeof(secret)) != 0 && memcmp(key, r->rd.key, sizeof(key)) != 0);
	assert(r->rd.seq == 0 && !r->update_due && r->hs_have == 0);
	/* split over records: the header in one, its byte in the next; then split anyhow */
	memcpy(secret, r->rd.secret, sizeof(secret));
	assert(inner(r, 22, ku1, 4, &a) == 1 && r->hs_have == 4);
	assert(memcmp(secret, r->rd.secret, sizeof(secret)) == 0);
	assert(inner(r, 22, ku1 + 4, 1, &a) == 1 && r->hs_have == 0 && r->update_due);
	assert(memcmp(secret, r->rd.secret, sizeof(secret)) != 0);
	r->update_due = false;
	memcpy(secret, r->rd.secret, sizeof(secret));
	assert(inner(r, 22, ku0, 1, &a) == 1);
	assert(inner(r, 22, ku0 + 1, 2, &a) == 1);
	assert(inner(r, 22, ku0 + 3, 2, &a) == 1 && r->hs_have == 0 && !r->update_due);
	assert(memcmp(secret, r->rd.secret, sizeof(secret)) != 0);
	rpair_end(&p);

	/* each violation: -1, its alert, a reason */
	struct { uint8_t type; uint8_t b[8]; size_t len; uint8_t alert; } bad[] = {
		{ 22, { 24, 0, 0, 1, 0, 0 }, 6, 10 },	/* bytes after a KeyUpdate in its record */
		{ 22, { 24, 0, 0, 1, 0, 24 }, 6, 10 },	/* even a second KeyUpdate */
		{ 22, { 24, 0, 0, 1, 2 }, 5, 47 },	/* request_update 2 */
		{ 22, { 24, 0, 0, 1, 255 }, 5, 47 },
		{ 22, { 24, 0, 0, 2, 0, 0 }, 6, 50 },	/* wrong length */
		{ 22, { 24, 0, 0, 0 }, 4, 50 },
		{ 22, { 24, 1, 0, 1, 0 }, 5, 50 },
		{ 22, { 4, 0, 0, 4, 0, 0, 0, 0 }, 8, 10 },	/* NewSessionTicket */
		{ 22, { 13, 0, 0, 0 }, 4, 10 },	/* CertificateRequest */
		{ 22, { 0 }, 0, 10 },			/* empty handshake record */
		{ 21, { 2 }, 1, 50 },			/* alert of length 1 */
		{ 21, { 1, 0, 0 }, 3, 50 },
		{ 21, { 0 }, 0, 50 },
		{ 24, { 1 }, 1, 10 },			/* unknown type 24 (heartbeat) */
		{ 20, { 1 }, 1, 10 },			/* change_cipher_spec after the handshake */
		{ 0, { 1 }, 1, 10 },
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		rpair_start(&p, suite);
		assert(inner(r, bad[i].type, bad[i].b, bad[i].len, &a) == -1);
		if (a != bad[i].alert) {
			fprintf(stderr, "inner case %zu: alert %u, expected %u\n", i, a, bad[i].alert);
			assert(0);
		}
		assert(r->error != NULL);
		rpair_end(&p);
	}

	/* a handshake message half-read, then anything but handshake bytes */
	for (uint8_t t = 20; t <= 24; t++) {
		if (t == 22)
			continue;
		rpair_start(&p, suite);
		assert(inner(r, 22, ku0, 2, &a) == 1);
		assert(inner(r, t, (const uint8_t *)"\x01\x00", 2, &a) == -1 && a == 10);
		rpair_end(&p);
	}
	/* a half-read header of another message is refused once it is complete */
	rpair_start(&p, suite);
	assert(inner(r, 22, (const uint8_t *)"\x04", 1, &a) == 1);
	assert(inner(r, 22, (const uint8_t *)"\x00\x00\x04", 3, &a) == -1 && a == 10);
	rpair_end(&p);

	/* alerts: close_notify and any other are "gone"; user_canceled is only a warning */
	rpair_start(&p, suite);
	assert(inner(r, 21, (const uint8_t *)"\x01\x5a", 2, &a) == 1 && !r->closed);
	assert(inner(r, 21, (const uint8_t *)"\x01\x00", 2, &a) == 2 && r->closed && r->error == NULL);
	rpair_end(&p);
	rpair_start(&p, suite);
	assert(inner(r, 21, (const uint8_t *)"\x02\x28", 2, &a) == 2 && r->closed && r->error != NULL);
	rpair_end(&p);

	/* KeyUpdate asking for ours while the kernel holds the write key: internal_error */
	rpair_start(&p, suite);
	r->ktls_tx = true;
	assert(inner(r, 22, ku1, sizeof(ku1), &a) == -1 && a == 80);
	r->ktls_tx = false;
	rpair_end(&p);
}

/* ---- records through tlsrec_read, between two tlsrec_start() ends --------------------- */

static void test_records(const char *suite)
{
	static uint8_t rec[3 * (TLSREC_PLAIN_MAX + 300)], data[2 * TLSREC_PLAIN_MAX + 10],
		got[2 * TLSREC_PLAIN_MAX + 10];
	struct rpair p;
	struct tlsrec_dir w;
	size_t n, len, k;
	uint8_t type;

	fill(data, sizeof(data), 3);

	/* what tlsrec_write seals is what an independent sealer makes, byte for byte */
	rpair_start(&p, suite);
	p.cli.wr.seq = 5;
	w = p.cli.wr;
	assert(tlsrec_write(&p.cli, p.c, data, 1000, &n) == IO_OK && n == 1000);
	len = seal_rec(suite, &w, 23, data, 1000, 0, rec);
	assert(drain(p.s, got, sizeof(got)) == len && memcmp(got, rec, len) == 0);
	assert(p.cli.wr.seq == 6 && w.seq == 6);
	rpair_end(&p);

	/* appdata records with padding, an empty one, several in one write: read-ahead */
	rpair_start(&p, suite);
	len = seal_rec(suite, &p.cli.wr, 23, data, 10, 200, rec);
	len += seal_rec(suite, &p.cli.wr, 23, NULL, 0, 0, rec + len);
	len += seal_rec(suite, &p.cli.wr, 23, data + 10, 90, 0, rec + len);
	len += seal_rec(suite, &p.cli.wr, 23, data + 100, TLSREC_PLAIN_MAX, 0, rec + len);
	write_all(p.c, rec, len);
	assert(srv_read_all(&p, got, sizeof(got), &n) == IO_AGAIN);
	assert(n == 100 + TLSREC_PLAIN_MAX && memcmp(got, data, n) == 0);
	/* idle again: no buffer, no context */
	assert(p.srv.in == NULL && p.srv.rctx == NULL);
	rpair_end(&p);

	/* records without data: 32 in a row are fine (data after them arrives, which resets
	 * the count), the 33rd in a row ends the connection (a flood would hold the worker) */
	rpair_start(&p, suite);
	len = 0;
	for (int i = 0; i < TLSREC_MAX_RECORDS_WITHOUT_DATA; i++)
		len += seal_rec(suite, &p.cli.wr, 23, NULL, 0, 0, rec + len);
	len += seal_rec(suite, &p.cli.wr, 23, data, 10, 0, rec + len);
	for (int i = 0; i < TLSREC_MAX_RECORDS_WITHOUT_DATA; i++)
		len += seal_rec(suite, &p.cli.wr, 21, "\x01\x5a", 2, 0, rec + len);
	write_all(p.c, rec, len);
	assert(srv_read_all(&p, got, sizeof(got), &n) == IO_AGAIN);
	assert(n == 10 && memcmp(got, data, 10) == 0);
	{
		struct tlsrec_dir before = p.srv.wr;
		len = seal_rec(suite, &p.cli.wr, 23, NULL, 0, 0, rec);
		write_all(p.c, rec, len);
		assert(tlsrec_read(&p.srv, p.s, got, sizeof(got), &n) == IO_ERROR);
		assert(strcmp(p.srv.error, "too many records without data") == 0);
		assert(alert_received(&p, &before) == 10);
	}
	rpair_end(&p);

	/* a record in 1-byte writes: IO_AGAIN (the partial record kept) until the last byte */
	rpair_start(&p, suite);
	len = seal_rec(suite, &p.cli.wr, 23, data, 300, 7, rec);
	for (size_t i = 0; i < len; i++) {
		write_all(p.c, rec + i, 1);
		enum io_result res = tlsrec_read(&p.srv, p.s, got, sizeof(got), &n);
		if (i + 1 < len) {
			assert(res == IO_AGAIN && p.srv.in != NULL);
			tlsrec_release(&p.srv);	/* must keep the partial record */
			assert(p.srv.in != NULL);
		} else {
			assert(res == IO_OK && n == 300 && memcmp(got, data, 300) == 0);
		}
	}
	/* read in small pieces: the rest of a record stays buffered */
	len = seal_rec(suite, &p.cli.wr, 23, data, 5000, 0, rec);
	write_all(p.c, rec, len);
	for (k = 0; k < 5000; k += n) {
		assert(tlsrec_read(&p.srv, p.s, got + k, 7, &n) == IO_OK && n >= 1 && n <= 7);
		if (k + n < 5000) {
			tlsrec_release(&p.srv);	/* must keep the unread plaintext */
			assert(p.srv.in != NULL);
		}
	}
	assert(memcmp(got, data, 5000) == 0);
	assert(tlsrec_read(&p.srv, p.s, got, 1, &n) == IO_AGAIN);
	assert(p.srv.in == NULL && p.srv.rctx == NULL);
	rpair_end(&p);

	/* a flipped ciphertext byte (header, body or tag): bad_record_mac, then nothing */
	for (size_t at = 0; at < 3; at++) {
		rpair_start(&p, suite);
		len = seal_rec(suite, &p.cli.wr, 23, data, 100, 0, rec);
		size_t flip = at == 0 ? 2 : at == 1 ? 50 : len - 1;
		rec[flip] ^= 0x01;
		k = seal_rec(suite, &p.cli.wr, 23, data, 100, 0, rec + len);	/* a good one behind */
		write_all(p.c, rec, len + k);
		w = p.srv.wr;
		assert(srv_read_all(&p, got, sizeof(got), &n) == IO_ERROR && n == 0);
		assert(p.srv.error != NULL && p.srv.closed);
		assert(alert_received(&p, &w) == 20);
		assert(tlsrec_read(&p.srv, p.s, got, sizeof(got), &n) == IO_ERROR);
		rpair_end(&p);
	}
	/* the alert is what the other tlsrec end understands: the peer is gone */
	rpair_start(&p, suite);
	len = seal_rec(suite, &p.cli.wr, 23, data, 100, 0, rec);
	rec[len - 1] ^= 0x80;
	write_all(p.c, rec, len);
	assert(tlsrec_read(&p.srv, p.s, got, sizeof(got), &n) == IO_ERROR);
	assert(tlsrec_read(&p.cli, p.c, got, sizeof(got), &n) == IO_PEER_GONE);
	rpair_end(&p);

	/* outer types other than 23 after the handshake: unexpected_message */
	static const uint8_t outer[] = { 20, 21, 22, 24, 0 };
	for (size_t i = 0; i < ARRAY_LEN(outer); i++) {
		rpair_start(&p, suite);
		len = seal_rec(suite, &p.cli.wr, 23, data, 100, 0, rec);
		rec[0] = outer[i];
		write_all(p.c, rec, len);
		w = p.srv.wr;
		assert(srv_read_all(&p, got, sizeof(got), &n) == IO_ERROR && n == 0);
		assert(alert_received(&p, &w) == 10);
		rpair_end(&p);
	}
	/* decided from the 5-byte header alone, nothing of the body read or awaited: an
	 * unencrypted alert is refused; record_overflow (alert 22) past 16384 + 256; the
	 * limit itself is allowed and the server waits for the body (alert -1: not checked) */
	static const struct {
		const char *hdr;
		enum io_result want;
		int alert;
	} heads[] = {
		{ "\x15\x03\x03\x00\x02", IO_ERROR, -1 },
		{ "\x17\x03\x03\x41\x01", IO_ERROR, 22 },	/* 16384 + 256 + 1 */
		{ "\x17\x03\x03\xff\xff", IO_ERROR, -1 },
		{ "\x17\x03\x03\x41\x00", IO_AGAIN, -1 },
	};
	for (size_t i = 0; i < ARRAY_LEN(heads); i++) {
		rpair_start(&p, suite);
		write_all(p.c, heads[i].hdr, 5);
		w = p.srv.wr;
		assert(tlsrec_read(&p.srv, p.s, got, sizeof(got), &n) == heads[i].want);
		if (heads[i].alert != -1)
			assert(alert_received(&p, &w) == heads[i].alert);
		rpair_end(&p);
	}
	/* a plaintext over 2^14 inside a record of a legal size: record_overflow */
	rpair_start(&p, suite);
	len = seal_rec(suite, &p.cli.wr, 23, data, TLSREC_PLAIN_MAX + 1, 0, rec);
	write_all(p.c, rec, len);
	w = p.srv.wr;
	assert(tlsrec_read(&p.srv, p.s, got, sizeof(got), &n) == IO_ERROR);
	assert(alert_received(&p, &w) == 22);
	rpair_end(&p);
	/* too short to hold a tag and a type; all padding, no type */
	rpair_start(&p, suite);
	write_all(p.c, "\x17\x03\x03\x00\x10" "0123456789abcdef", 21);
	w = p.srv.wr;
	assert(tlsrec_read(&p.srv, p.s, got, sizeof(got), &n) == IO_ERROR);
	assert(alert_received(&p, &w) == 20);
	rpair_end(&p);
	rpair_start(&p, suite);
	len = seal_rec(suite, &p.cli.wr, -1, NULL, 0, 12, rec);
	write_all(p.c, rec, len);
	w = p.srv.wr;
	assert(tlsrec_read(&p.srv, p.s, got, sizeof(got), &n) == IO_ERROR);
	assert(alert_received(&p, &w) == 10);
	rpair_end(&p);

	/* EOF inside a record (header or body): gone, not an error, and no data */
	for (size_t cut = 3; cut <= 60; cut += 57) {
		rpair_start(&p, suite);
		len = seal_rec(suite, &p.cli.wr, 23, data, 100, 0, rec);
		write_all(p.c, rec, cut);
		assert(tlsrec_read(&p.srv, p.s, got, sizeof(got), &n) == IO_AGAIN);
		shutdown(p.c, SHUT_WR);
		assert(tlsrec_read(&p.srv, p.s, got, sizeof(got), &n) == IO_PEER_GONE);
		assert(tlsrec_read(&p.srv, p.s, got, sizeof(got), &n) == IO_PEER_GONE);
		rpair_end(&p);
	}
	/* a clean EOF between records */
	rpair_start(&p, suite);
	shutdown(p.c, SHUT_WR);
	assert(tlsrec_read(&p.srv, p.s, got, sizeof(got), &n) == IO_PEER_GONE);
	rpair_end(&p);

	/* alerts from the peer: data before them arrives, nothing after them */
	rpair_start(&p, suite);
	len = seal_rec(suite, &p.cli.wr, 23, data, 50, 0, rec);
	len += seal_rec(suite, &p.cli.wr, 21, "\x01\x5a", 2, 0, rec + len);	/* user_canceled */
	len += seal_rec(suite, &p.cli.wr, 23, data + 50, 50, 0, rec + len);
	len += seal_rec(suite, &p.cli.wr, 21, "\x01\x00", 2, 3, rec + len);	/* close_notify */
	len += seal_rec(suite, &p.cli.wr, 23, data, 50, 0, rec + len);
	write_all(p.c, rec, len);
	assert(srv_read_all(&p, got, sizeof(got), &n) == IO_PEER_GONE);
	assert(n == 100 && memcmp(got, data, 100) == 0);
	assert(tlsrec_read(&p.srv, p.s, got, sizeof(got), &n) == IO_PEER_GONE);
	assert(p.srv.close_notify_received);
	assert(drain(p.c, got, sizeof(got)) == 0);	/* the reply is the caller's (conn.c) */
	tlsrec_close_notify(&p.srv, p.s);	/* RFC 8446 §6.1: 5 + 2 + 1 + 16 bytes */
	assert(drain(p.c, got, sizeof(got)) == 24);
	rpair_end(&p);
	rpair_start(&p, suite);
	len = seal_rec(suite, &p.cli.wr, 21, "\x02\x28", 2, 0, rec);	/* handshake_failure */
	write_all(p.c, rec, len);
	assert(tlsrec_read(&p.srv, p.s, got, sizeof(got), &n) == IO_PEER_GONE);
	rpair_end(&p);

	/* KeyUpdate split over two records, then data under the new key */
	rpair_start(&p, suite);
	w = p.cli.wr;			/* the old generation */
	p.cli.update_due = true;	/* the "client" end sends a KeyUpdate before its data */
	assert(tlsrec_write(&p.cli, p.c, data, 77, &n) == IO_OK && n == 77);
	k = drain(p.s, rec, sizeof(rec));
	assert(open_rec(suite, &w, rec, k, &type, got, &n) < k && type == 22 && n == 5);
	len = k - (5 + 5 + 1 + 16);	/* the data record under the new key, at the end */
	memmove(rec + 200, rec + (5 + 5 + 1 + 16), len);
	w.seq = 0;
	k = seal_rec(suite, &w, 22, "\x18\x00\x00\x01", 4, 0, rec);
	k += seal_rec(suite, &w, 22, "\x00", 1, 5, rec + k);
	memmove(rec + k, rec + 200, len);
	write_all(p.c, rec, k + len);
	assert(srv_read_all(&p, got, sizeof(got), &n) == IO_AGAIN);
	assert(n == 77 && memcmp(got, data, 77) == 0 && p.srv.rd.seq == 1);
	rpair_end(&p);

	/* KeyUpdate asking for ours: the next write carries our KeyUpdate first, once */
	rpair_start(&p, suite);
	len = seal_rec(suite, &p.cli.wr, 22, "\x18\x00\x00\x01\x01", 5, 0, rec);
	write_all(p.c, rec, len);
	assert(srv_read_all(&p, got, sizeof(got), &n) == IO_AGAIN && n == 0);
	assert(p.srv.update_due);
	w = p.srv.wr;
	assert(tlsrec_write(&p.srv, p.s, data, 3000, &n) == IO_OK && n == 3000);
	assert(!p.srv.update_due && p.srv.wr.seq == 1);
	assert(tlsrec_write(&p.srv, p.s, data + 3000, 3000, &n) == IO_OK && n == 3000);
	/* the "client" end follows: KeyUpdate, then both records under the new key */
	assert(tlsrec_read(&p.cli, p.c, got, 3000, &n) == IO_OK && n == 3000);
	assert(tlsrec_read(&p.cli, p.c, got + 3000, 3000, &n) == IO_OK && n == 3000);
	assert(memcmp(got, data, 6000) == 0 && p.cli.rd.seq == 2);
	assert(memcmp(w.key, p.srv.wr.key, sizeof(w.key)) != 0);
	rpair_end(&p);

	/* near the key's usage limit our KeyUpdate goes first, by itself, once; the peer
	 * follows it and reads every byte */
	rpair_start(&p, suite);
	p.srv.wr.seq = p.cli.rd.seq = TLSREC_REKEY_RECORDS - TLSREC_WRITE_RECORDS - 1;
	w = p.srv.wr;
	assert(tlsrec_write(&p.srv, p.s, data, 1000, &n) == IO_OK && n == 1000);
	assert(tlsrec_write(&p.srv, p.s, data + 1000, 1000, &n) == IO_OK && n == 1000);
	assert(p.srv.wr.seq == TLSREC_REKEY_RECORDS - TLSREC_WRITE_RECORDS + 1 &&
	       memcmp(w.key, p.srv.wr.key, sizeof(w.key)) == 0);
	/* a full batch now would pass the limit: the KeyUpdate comes first */
	assert(tlsrec_write(&p.srv, p.s, data + 2000, 1000, &n) == IO_OK && n == 1000);
	assert(p.srv.wr.seq == 1 && !p.srv.update_due);
	assert(memcmp(w.key, p.srv.wr.key, sizeof(w.key)) != 0);
	assert(tlsrec_write(&p.srv, p.s, data + 3000, 1000, &n) == IO_OK && p.srv.wr.seq == 2);
	for (k = 0; k < 4000; k += n)
		assert(tlsrec_read(&p.cli, p.c, got + k, 4000 - k, &n) == IO_OK);
	assert(memcmp(got, data, 4000) == 0 && p.cli.rd.seq == 2);
	assert(memcmp(p.cli.rd.key, p.srv.wr.key, sizeof(w.key)) == 0);
	rpair_end(&p);

	/* tlsrec_write: an empty write is no record; a large one is records of 2^14, at most
	 * TLSREC_WRITE_RECORDS of them per call, then the rest */
	rpair_start(&p, suite);
	assert(tlsrec_write(&p.srv, p.s, data, 0, &n) == IO_OK && n == 0);
	{
		static uint8_t big[TLSREC_WRITE_MAX + TLSREC_PLAIN_MAX + 7], back[sizeof(big)];
		size_t have = 0;

		fill(big, sizeof(big), 11);
		assert(tlsrec_write(&p.srv, p.s, big, sizeof(big), &n) == IO_OK &&
		       n == TLSREC_WRITE_MAX);
		assert(p.srv.wr.seq == TLSREC_WRITE_RECORDS);
		assert(tlsrec_write(&p.srv, p.s, big + n, sizeof(big) - n, &k) == IO_OK &&
		       k == TLSREC_PLAIN_MAX + 7 && p.srv.wr.seq == TLSREC_WRITE_RECORDS + 2);
		tlsrec_release(&p.srv);
		assert(p.srv.out == NULL && p.srv.wctx == NULL);
		while (have < sizeof(big)) {
			assert(tlsrec_read(&p.cli, p.c, back + have, sizeof(back) - have, &n) ==
			       IO_OK);
			assert(n > 0 && n <= TLSREC_PLAIN_MAX);	/* one record per read */
			have += n;
		}
		assert(memcmp(back, big, sizeof(big)) == 0 &&
		       p.cli.rd.seq == TLSREC_WRITE_RECORDS + 2);
	}
	/* close_notify: the other end sees the peer gone */
	tlsrec_close_notify(&p.srv, p.s);
	assert(tlsrec_read(&p.cli, p.c, got, sizeof(got), &n) == IO_PEER_GONE);
	rpair_end(&p);

	/* a zeroed, never started tlsrec frees cleanly; a fresh one twice */
	{
		struct tlsrec z;
		memset(&z, 0, sizeof(z));
		tlsrec_free(&z);
		tlsrec_free(&z);
	}
	assert(tlsrec_start(&p.srv, "TLS_AES_128_CCM_SHA256", data, data, 0) == -1);
	assert(!tlsrec_suite_supported("TLS_AES_128_CCM_SHA256"));
	assert(tlsrec_suite_supported(suite));
}

/* ---- a real handshake with a stock OpenSSL client -------------------------------------- */

static EVP_PKEY *cert_key;
static X509 *cert;

/* An in-memory self-signed P-256 certificate, as demo_cert() in src/tls.c makes. */
static void make_cert(void)
{
	X509_NAME *name;

	cert_key = EVP_EC_gen("P-256");
	cert = X509_new();
	assert(cert_key != NULL && cert != NULL);
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_set_pubkey(cert, cert_key);
	name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(cert, name);
	assert(X509_sign(cert, cert_key, EVP_sha256()) > 0);
}

/* The client's own view of its write secret, to build records "from the client" here. */
static uint8_t client_secret[TLSREC_MAX_SECRET];
static size_t client_secret_len;

static void client_keylog(const SSL *ssl, const char *line)
{
	static const char cl[] = "CLIENT_TRAFFIC_SECRET_0 ";
	const char *hex = strrchr(line, ' ');
	unsigned char *bin;
	long len;

	(void)ssl;
	if (strncmp(line, cl, sizeof(cl) - 1) != 0 || hex == NULL)
		return;
	bin = OPENSSL_hexstr2buf(hex + 1, &len);
	assert(bin != NULL && len > 0 && len <= TLSREC_MAX_SECRET);
	memcpy(client_secret, bin, (size_t)len);
	client_secret_len = (size_t)len;
	OPENSSL_free(bin);
}

struct conn {
	const char *suite;
	SSL_CTX *sctx, *cctx;
	SSL *c;
	struct tlsrec r;
	int s, cfd;
	uint8_t *srv_got, *cli_got;	/* what each end received so far */
	size_t srv_n, cli_n;
	enum io_result srv_last;
};

/* Handshake (the client sends early_bytes right after its Finished, before the server
 * has read that Finished, as an HTTP client sends its request), then the hand-over. */
static void conn_open(struct conn *k, const char *suite, int tickets, const char *early_bytes)
{
	SSL *s;
	int sv[2], cdone = 0, sdone = 0, sent = early_bytes == NULL;
	char err[200];

	memset(k, 0, sizeof(*k));
	k->suite = suite;
	k->srv_got = malloc(BUF_CAP);
	k->cli_got = malloc(BUF_CAP);
	assert(k->srv_got != NULL && k->cli_got != NULL);
	nonblocking_pair(sv);
	k->s = sv[0];
	k->cfd = sv[1];

	/* the server as ktlsd sets it up: TLS 1.3 only, no read-ahead, the capture callbacks */
	k->sctx = SSL_CTX_new(TLS_server_method());
	assert(k->sctx != NULL);
	assert(SSL_CTX_set_min_proto_version(k->sctx, TLS1_3_VERSION) == 1);
	assert(SSL_CTX_set_max_proto_version(k->sctx, TLS1_3_VERSION) == 1);
	SSL_CTX_set_read_ahead(k->sctx, 0);
	assert(SSL_CTX_set_num_tickets(k->sctx, (size_t)tickets) == 1);
	assert(SSL_CTX_use_certificate(k->sctx, cert) == 1 && SSL_CTX_use_PrivateKey(k->sctx, cert_key) == 1);
	tlsrec_ctx_setup(k->sctx);

	k->cctx = SSL_CTX_new(TLS_client_method());
	assert(k->cctx != NULL);
	assert(SSL_CTX_set_min_proto_version(k->cctx, TLS1_3_VERSION) == 1);
	assert(SSL_CTX_set_ciphersuites(k->cctx, suite) == 1);
	SSL_CTX_set_verify(k->cctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_keylog_callback(k->cctx, client_keylog);

	s = SSL_new(k->sctx);
	k->c = SSL_new(k->cctx);
	assert(s != NULL && k->c != NULL);
	assert(SSL_set_fd(s, k->s) == 1 && SSL_set_fd(k->c, k->cfd) == 1);
	SSL_set_accept_state(s);
	SSL_set_connect_state(k->c);
	tlsrec_attach(&k->r, s);
	client_secret_len = 0;

	for (int round = 0; !(cdone && sdone && sent); round++) {
		assert(round < 100);
		if (!cdone) {
			int rc = SSL_do_handshake(k->c);
			if (rc == 1)
				cdone = 1;
			else
				assert(SSL_get_error(k->c, rc) == SSL_ERROR_WANT_READ);
		}
		if (cdone && !sent) {
			size_t len = strlen(early_bytes);
			assert(SSL_write(k->c, early_bytes, (int)len) == (int)len);
			sent = 1;
		}
		/* the server's turn only once the client sent its data: it must not be read */
		if (!sdone && (!cdone || sent)) {
			int rc = SSL_do_handshake(s);
			if (rc == 1)
				sdone = 1;
			else
				assert(SSL_get_error(s, rc) == SSL_ERROR_WANT_READ);
		}
	}
	assert(strcmp(SSL_get_cipher_name(s), suite) == 0);
	assert(tlsrec_take(&k->r, s, err, sizeof(err)) == 0);
	SSL_free(s);	/* from here the record layer stands alone */
	assert(k->r.wr.seq == (uint64_t)tickets);
	/* the secret the server captured is the one the client derived */
	assert(client_secret_len > 0 && memcmp(client_secret, k->r.rd.secret, client_secret_len) == 0);
}

static void conn_close(struct conn *k)
{
	SSL_free(k->c);
	SSL_CTX_free(k->cctx);
	SSL_CTX_free(k->sctx);
	tlsrec_free(&k->r);
	close(k->s);
	close(k->cfd);
	free(k->srv_got);
	free(k->cli_got);
}

/* The server reads everything there is (in pieces of various sizes); srv_last is why it
 * stopped. */
static void srv_pump(struct conn *k)
{
	static const size_t sizes[] = { 7000, 1, 16384, 333, 20000 };
	size_t n;
	unsigned i = 0;

	for (;;) {
		size_t want = sizes[i++ % ARRAY_LEN(sizes)];
		if (want > BUF_CAP - k->srv_n)
			want = BUF_CAP - k->srv_n;
		k->srv_last = tlsrec_read(&k->r, k->s, k->srv_got + k->srv_n, want, &n);
		if (k->srv_last != IO_OK)
			return;
		assert(n > 0 && n <= want);
		k->srv_n += n;
	}
}

/* The client reads everything there is; SSL_read's last result. */
static int cli_pump(struct conn *k)
{
	int rc;

	while ((rc = SSL_read(k->c, k->cli_got + k->cli_n, (int)(BUF_CAP - k->cli_n))) > 0)
		k->cli_n += (size_t)rc;
	return SSL_get_error(k->c, rc);
}

static void cli_write(struct conn *k, const uint8_t *p, size_t len)
{
	while (len > 0) {
		int rc = SSL_write(k->c, p, (int)len);
		if (rc > 0) {
			p += rc;
			len -= (size_t)rc;
			continue;
		}
		assert(SSL_get_error(k->c, rc) == SSL_ERROR_WANT_WRITE);
		srv_pump(k);
	}
}

/* The server writes len bytes with tlsrec_write; on IO_AGAIN the client reads and the
 * same bytes go again. Returns how many IO_AGAIN there were. */
static unsigned srv_write(struct conn *k, const uint8_t *p, size_t len)
{
	unsigned again = 0;
	size_t n;

	while (len > 0) {
		enum io_result res = tlsrec_write(&k->r, k->s, p, len, &n);
		if (res == IO_OK) {
			assert(n > 0 && n <= len && n <= TLSREC_WRITE_MAX);
			p += n;
			len -= n;
			continue;
		}
		assert(res == IO_AGAIN && n == 0);
		again++;
		assert(cli_pump(k) == SSL_ERROR_WANT_READ);
	}
	assert(cli_pump(k) == SSL_ERROR_WANT_READ);
	return again;
}

static void test_handshake_tickets(const char *suite)
{
	static const int tickets[] = { 0, 1, 2, 5 };
	struct conn k;

	for (size_t i = 0; i < ARRAY_LEN(tickets); i++) {
		conn_open(&k, suite, tickets[i], i % 2 ? "GET / HTTP/1.1\r\n\r\n" : NULL);
		/* the first record we write decrypts at the client: the sequence is right */
		srv_write(&k, (const uint8_t *)"first", 5);
		assert(k.cli_n == 5 && memcmp(k.cli_got, "first", 5) == 0);
		assert(k.r.wr.seq == (uint64_t)tickets[i] + 1);
		srv_pump(&k);
		assert(k.srv_last == IO_AGAIN);
		if (i % 2)
			assert(k.srv_n == 18 && memcmp(k.srv_got, "GET / HTTP/1.1\r\n\r\n", 18) == 0);
		else
			assert(k.srv_n == 0);
		conn_close(&k);
	}
}

static void test_data(const char *suite)
{
	const size_t big = 1024 * 1024;
	uint8_t *data = malloc(big);
	struct conn k;
	size_t want;

	assert(data != NULL);
	fill(data, big, 11);
	conn_open(&k, suite, 2, NULL);

	/* client to server: a few KiB (one record), then 40 KiB (several) */
	cli_write(&k, data, 5000);
	srv_pump(&k);
	assert(k.srv_last == IO_AGAIN && k.srv_n == 5000 && memcmp(k.srv_got, data, 5000) == 0);
	assert(k.r.in == NULL && k.r.rctx == NULL);	/* idle: released */
	cli_write(&k, data + 5000, 40000);
	srv_pump(&k);
	assert(k.srv_last == IO_AGAIN && k.srv_n == 45000 && memcmp(k.srv_got, data, 45000) == 0);

	/* server to client: 1 MiB, more than the socket holds, so IO_AGAIN and retries */
	assert(srv_write(&k, data, big) > 0);
	assert(k.cli_n == big && memcmp(k.cli_got, data, big) == 0);
	tlsrec_release(&k.r);
	assert(k.r.out == NULL && k.r.wctx == NULL);
	tlsrec_release(&k.r);	/* twice is harmless */

	/* client KeyUpdate, not asking for ours: we read on, and write on under the old key */
	k.srv_n = k.cli_n = 0;
	assert(SSL_key_update(k.c, SSL_KEY_UPDATE_NOT_REQUESTED) == 1);
	cli_write(&k, data, 3000);
	srv_pump(&k);
	assert(k.srv_last == IO_AGAIN && k.srv_n == 3000 && memcmp(k.srv_got, data, 3000) == 0);
	assert(!k.r.update_due && k.r.rd.seq == 1);
	want = k.r.wr.seq + 1;
	srv_write(&k, data, 100);
	assert(k.cli_n == 100 && memcmp(k.cli_got, data, 100) == 0 && k.r.wr.seq == want);

	/* asking for ours: our next data goes under a new key, and the client reads it */
	for (int round = 0; round < 3; round++) {
		uint8_t key[TLSREC_MAX_KEY];
		k.srv_n = k.cli_n = 0;
		assert(SSL_key_update(k.c, SSL_KEY_UPDATE_REQUESTED) == 1);
		cli_write(&k, data + round, 2000);
		srv_pump(&k);
		assert(k.srv_last == IO_AGAIN && k.srv_n == 2000 && memcmp(k.srv_got, data + round, 2000) == 0);
		assert(k.r.update_due);
		memcpy(key, k.r.wr.key, sizeof(key));
		srv_write(&k, data + round, 20000);	/* two records, the KeyUpdate before the first */
		assert(k.cli_n == 20000 && memcmp(k.cli_got, data + round, 20000) == 0);
		assert(!k.r.update_due && k.r.wr.seq == 2 && memcmp(key, k.r.wr.key, sizeof(key)) != 0);
	}
	/* several in a row before we read: one KeyUpdate of ours answers them all */
	k.srv_n = k.cli_n = 0;
	for (int round = 0; round < 4; round++) {
		assert(SSL_key_update(k.c, round % 2 ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED) == 1);
		cli_write(&k, data + 1000 * round, 1000);
	}
	srv_pump(&k);
	assert(k.srv_last == IO_AGAIN && k.srv_n == 4000 && memcmp(k.srv_got, data, 4000) == 0);
	assert(k.r.update_due && k.r.rd.seq == 1);
	srv_write(&k, data, big / 4);
	assert(k.cli_n == big / 4 && memcmp(k.cli_got, data, big / 4) == 0);
	/* and the client still talks to us after all that */
	k.srv_n = 0;
	cli_write(&k, data, 30000);
	srv_pump(&k);
	assert(k.srv_last == IO_AGAIN && k.srv_n == 30000 && memcmp(k.srv_got, data, 30000) == 0);

	/* our close_notify: the client sees a clean TLS close */
	tlsrec_close_notify(&k.r, k.s);
	k.cli_n = 0;
	assert(cli_pump(&k) == SSL_ERROR_ZERO_RETURN && k.cli_n == 0);
	conn_close(&k);

	/* the client's close_notify: gone, and gone again */
	conn_open(&k, suite, 2, NULL);
	cli_write(&k, data, 100);
	assert(SSL_shutdown(k.c) == 0);
	srv_pump(&k);
	assert(k.srv_last == IO_PEER_GONE && k.srv_n == 100 && memcmp(k.srv_got, data, 100) == 0);
	srv_pump(&k);
	assert(k.srv_last == IO_PEER_GONE && k.srv_n == 100);
	conn_close(&k);

	/* a broken record "from the client": the real client receives our bad_record_mac */
	conn_open(&k, suite, 2, NULL);
	{
		struct tlsrec fake;
		uint8_t rec[200];
		size_t len;

		memset(&fake, 0, sizeof(fake));
		/* the client's write keys, from its keylog secret: read/write swapped */
		assert(tlsrec_start(&fake, suite, client_secret, client_secret, 0) == 0);
		len = seal_rec(suite, &fake.wr, 23, "hello", 5, 0, rec);
		write_all(k.cfd, rec, len);
		srv_pump(&k);
		assert(k.srv_last == IO_AGAIN && k.srv_n == 5 && memcmp(k.srv_got, "hello", 5) == 0);
		len = seal_rec(suite, &fake.wr, 23, "hello", 5, 0, rec);
		rec[7] ^= 0x20;
		write_all(k.cfd, rec, len);
		srv_pump(&k);
		assert(k.srv_last == IO_ERROR && k.srv_n == 5);
		ERR_clear_error();
		assert(cli_pump(&k) == SSL_ERROR_SSL);
		assert(ERR_GET_REASON(ERR_peek_error()) == SSL_AD_REASON_OFFSET + SSL_AD_BAD_RECORD_MAC);
		ERR_clear_error();
		tlsrec_free(&fake);
	}
	conn_close(&k);
	free(data);
}

int main(void)
{
	assert(tlsrec_global_init() == 0);
	make_cert();
	for (size_t i = 0; i < ARRAY_LEN(suites); i++) {
		test_inner(suites[i]);
		test_records(suites[i]);
		test_handshake_tickets(suites[i]);
		test_data(suites[i]);
		printf("ok %s\n", suites[i]);
	}
	X509_free(cert);
	EVP_PKEY_free(cert_key);
	tlsrec_global_fini();
	printf("test_tlsrec: all passed\n");
	return 0;
}
