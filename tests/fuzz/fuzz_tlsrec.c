/* fuzz_tlsrec.c — libFuzzer harness for the TLS 1.3 record layer (tlsrec.h).
 *
 *   printf '#define _GNU_SOURCE 1\n' >autoconf.h   (tlsrec.c wants configure's header)
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Isrc tests/fuzz/fuzz_tlsrec.c \
 *         src/tlsrec.c -lssl -lcrypto
 *
 * Two tlsrec_start() ends with fixed secrets on a non-blocking socketpair: "srv" reads
 * what the "cli" end sends. Input: byte 0 picks the suite; then operations, each an op
 * byte, a 16-bit length and that many bytes (fewer at the end of the input):
 *   op % 8 = 0  the bytes raw on the wire (the outer layer: headers, lengths, garbage)
 *            1  cli's tlsrec_write of the bytes (application data)
 *            2  the same, a KeyUpdate of cli's first
 *            3  one record sealed here with EVP: bytes[0] the inner type, bytes[1] the
 *               padding, the rest the content (alerts, handshake bytes, odd types, sizes)
 *            4  the same, one byte of the sealed record flipped
 *            5  srv's tlsrec_write of the bytes; cli reads them
 *            6  tlsrec_inner() alone, on a third end: bytes[0] the type, the rest the body
 *            7  EOF from cli; the input ends here
 *   op >> 3 picks srv's read size (1 byte .. 64 KiB); op & 0x40 a tlsrec_release() first.
 * After each operation srv reads until it stops returning data.
 *
 * abort() on any broken promise: a result other than the four io_results, IO_OK without
 * data or with more than asked, data after IO_ERROR or IO_PEER_GONE, IO_ERROR without a
 * reason, tlsrec_inner() outside its contract; and while every record so far was valid
 * (application data, valid KeyUpdates, user_canceled), srv must deliver exactly the bytes
 * cli sent, and hold nothing when idle. Leaks show at tlsrec_free() at the end of each
 * input (LeakSanitizer). */
#include "tlsrec.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct { const char *name, *aead; } suites[] = {
	{ "TLS_AES_128_GCM_SHA256", "AES-128-GCM" },
	{ "TLS_AES_256_GCM_SHA384", "AES-256-GCM" },
	{ "TLS_CHACHA20_POLY1305_SHA256", "ChaCha20-Poly1305" },
};
#define NSUITES (sizeof(suites) / sizeof(suites[0]))
#define OP_MAX 20000		/* bytes of one operation: records over the 2^14 limit too */

/* fetched once, reachable until exit: not a leak */
static EVP_CIPHER *ciphers[NSUITES];

static void fuzz_check(bool ok)
{
	if (!ok)
		abort();
}

static bool valid_result(enum io_result r)
{
	return r == IO_OK || r == IO_AGAIN || r == IO_PEER_GONE || r == IO_ERROR;
}

/* A record under d (the sequence advances), sealed here, independently of tlsrec.c:
 * outer type 23, inner plaintext = content, type, pad zeros. Returns its size. */
static size_t seal(unsigned suite, struct tlsrec_dir *d, uint8_t type, const uint8_t *content,
		   size_t len, size_t pad, uint8_t *out)
{
	static uint8_t inner[OP_MAX + 1 + 255];
	EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
	size_t plen = len + 1 + pad, clen = plen + 16;
	uint8_t iv[TLSREC_IV];
	int l = 0, l2 = 0;

	fuzz_check(x != NULL && len <= OP_MAX && pad <= 255);
	if (len > 0)
		memcpy(inner, content, len);
	inner[len] = type;
	memset(inner + len + 1, 0, pad);
	out[0] = 23;
	out[1] = 3;
	out[2] = 3;
	out[3] = (uint8_t)(clen >> 8);
	out[4] = (uint8_t)clen;
	memcpy(iv, d->iv, TLSREC_IV);
	for (int i = 0; i < 8; i++)
		iv[TLSREC_IV - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
	fuzz_check(EVP_EncryptInit_ex2(x, ciphers[suite], d->key, iv, NULL) == 1 &&
		   EVP_EncryptUpdate(x, NULL, &l, out, 5) == 1 &&
		   EVP_EncryptUpdate(x, out + 5, &l, inner, (int)plen) == 1 &&
		   EVP_EncryptFinal_ex(x, out + 5 + l, &l2) == 1 &&
		   EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, out + 5 + plen) == 1);
	d->seq++;
	EVP_CIPHER_CTX_free(x);
	return 5 + clen;
}

struct fz {
	unsigned suite;
	struct tlsrec srv, cli, lone;
	int s, c;
	bool clean;		/* every record so far valid: srv's output is exactly sent[] */
	unsigned without_data;	/* valid records in a row without data (srv ends at 33) */
	bool ended;		/* srv said IO_ERROR or IO_PEER_GONE */
	bool eof;		/* cli shut its side */
	uint8_t *sent;		/* application data cli sent; srv delivered ngot of it */
	size_t nsent, ngot;
};

static void write_all(struct fz *f, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(f->c, p, n);
		if (w <= 0) {
			f->clean = false;	/* full (srv stopped reading) or gone: drop it */
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

/* What srv sent cli (alerts, data): cli reads it, so that the socket never fills. */
static void cli_drain(struct fz *f, const uint8_t *expect, size_t len)
{
	static uint8_t buf[OP_MAX + 1];	/* never full when compared */
	size_t have = 0, n;
	enum io_result r;

	while ((r = tlsrec_read(&f->cli, f->c, buf + have, sizeof(buf) - have, &n)) == IO_OK) {
		fuzz_check(n > 0 && n <= sizeof(buf) - have);
		have += n;
		if (have == sizeof(buf))
			have = 0;	/* only compared when clean, and then len < sizeof(buf) */
	}
	fuzz_check(valid_result(r));
	if (f->clean && expect != NULL)
		fuzz_check(r == IO_AGAIN && have == len && memcmp(buf, expect, len) == 0);
}

/* srv reads until it stops returning data, in pieces of rsize. */
static void srv_drain(struct fz *f, size_t rsize)
{
	static uint8_t buf[65536];
	enum io_result r;
	size_t n;

	for (;;) {
		n = 0xdead;
		r = tlsrec_read(&f->srv, f->s, buf, rsize, &n);
		fuzz_check(valid_result(r));
		if (r != IO_OK)
			break;
		fuzz_check(!f->ended && n > 0 && n <= rsize);
		if (f->clean) {
			fuzz_check(f->ngot + n <= f->nsent &&
				   memcmp(buf, f->sent + f->ngot, n) == 0);
			f->ngot += n;
		}
	}
	if (r == IO_ERROR)
		fuzz_check(f->srv.error != NULL);
	if (r == IO_ERROR || r == IO_PEER_GONE)
		f->ended = true;
	if (f->clean && f->eof)
		fuzz_check(r == IO_PEER_GONE && f->ngot == f->nsent);
	else if (f->clean)
		/* all of it, nothing held while idle (every record written was complete) */
		fuzz_check(r == IO_AGAIN && f->ngot == f->nsent && f->srv.in == NULL &&
			   f->srv.rctx == NULL);
	cli_drain(f, NULL, 0);
}

/* cli's application data through tlsrec_write, all of it (the socket has room). */
static void cli_write(struct fz *f, const uint8_t *p, size_t n)
{
	size_t k;

	memcpy(f->sent + f->nsent, p, n);
	f->nsent += n;
	if (n > 0) {
		/* a KeyUpdate due goes first (a record without data), then the data */
		if (f->cli.update_due && ++f->without_data > TLSREC_MAX_RECORDS_WITHOUT_DATA)
			f->clean = false;
		f->without_data = 0;
	}
	while (n > 0) {
		enum io_result r = tlsrec_write(&f->cli, f->c, p, n, &k);
		fuzz_check(valid_result(r));
		if (r != IO_OK) {
			f->clean = false;
			return;
		}
		fuzz_check(k > 0 && k <= n && k <= TLSREC_WRITE_MAX);
		p += k;
		n -= k;
	}
}

/* cli's write generation follows a KeyUpdate sealed by hand: the next secret, derived by
 * tlsrec_inner() on a scratch end whose read direction is cli's write direction. */
static void cli_next_generation(struct fz *f)
{
	static const uint8_t ku[5] = { 24, 0, 0, 1, 0 };
	struct tlsrec t;
	uint8_t alert;

	memset(&t, 0, sizeof(t));
	t.suite = f->cli.suite;
	t.rd = f->cli.wr;
	fuzz_check(tlsrec_inner(&t, 22, ku, sizeof(ku), &alert) == 1);
	f->cli.wr = t.rd;
	tlsrec_release(&f->cli);	/* the write context of the old key */
	tlsrec_free(&t);
}

static void op_record(struct fz *f, const uint8_t *p, size_t n, bool flip)
{
	static uint8_t rec[5 + OP_MAX + 1 + 255 + 16];
	uint8_t type = n > 0 ? p[0] : 23;
	size_t pad = n > 1 ? p[1] : 0, clen;
	const uint8_t *content = n > 2 ? p + 2 : NULL;
	size_t len = n > 2 ? n - 2 : 0, rlen;

	rlen = seal(f->suite, &f->cli.wr, type, content, len, pad, rec);
	clen = rlen - 5;
	if (flip) {
		rec[(type * 131u + pad) % rlen] ^= (uint8_t)(1u << (len % 8));
		f->clean = false;
	} else if (clen > TLSREC_PLAIN_MAX + 1 + 16) {
		f->clean = false;	/* RFC 8446 5.4: type and padding count: record_overflow */
	} else if (type == 23 && len > 0) {
		memcpy(f->sent + f->nsent, content, len);
		f->nsent += len;
		f->without_data = 0;
	} else if ((type == 23 && len == 0) ||
		   (type == 22 && len == 5 && memcmp(content, "\x18\x00\x00\x01", 4) == 0 &&
		    content[4] <= 1) ||
		   (type == 21 && len == 2 && content[0] == 1 && content[1] == 90)) {
		if (type == 22)
			cli_next_generation(f);	/* srv changes its read key: cli follows */
		if (++f->without_data > TLSREC_MAX_RECORDS_WITHOUT_DATA)
			f->clean = false;	/* srv ends the connection: a flood */
	} else {
		f->clean = false;	/* anything else ends the connection */
	}
	write_all(f, rec, rlen);
}

static void op_inner(struct fz *f, const uint8_t *p, size_t n)
{
	uint8_t alert = 0xff, type = n > 0 ? p[0] : 23;
	const uint8_t *body = n > 1 ? p + 1 : (const uint8_t *)"";
	size_t len = n > 1 ? n - 1 : 0;
	int r = tlsrec_inner(&f->lone, type, body, len, &alert);

	switch (r) {
	case -1:
		fuzz_check(f->lone.error != NULL && (alert == 10 || alert == 47 || alert == 50 ||
						     alert == 80));
		break;
	case 0:
		fuzz_check(type == 23 && len > 0);
		break;
	case 1:
		break;
	case 2:
		fuzz_check(type == 21 && f->lone.closed);
		break;
	default:
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t rsizes[] = { 65536, 1, 7, 100, 4096, 16383, 16384, 16385 };
	uint8_t cs[TLSREC_MAX_SECRET], ss[TLSREC_MAX_SECRET];
	struct fz f;
	int sv[2];
	size_t i = 1;

	if (ciphers[0] == NULL) {
		fuzz_check(tlsrec_global_init() == 0);
		for (size_t k = 0; k < NSUITES; k++)
			fuzz_check((ciphers[k] = EVP_CIPHER_fetch(NULL, suites[k].aead, NULL)) != NULL);
	}
	if (size == 0)
		return 0;
	for (size_t k = 0; k < sizeof(cs); k++) {
		cs[k] = (uint8_t)(k * 3);
		ss[k] = (uint8_t)(k * 5 + 1);
	}
	memset(&f, 0, sizeof(f));
	f.suite = data[0] % NSUITES;
	f.clean = true;
	fuzz_check(tlsrec_start(&f.srv, suites[f.suite].name, cs, ss, data[0] >> 4) == 0);
	fuzz_check(tlsrec_start(&f.cli, suites[f.suite].name, ss, cs, 0) == 0);
	f.cli.rd.seq = data[0] >> 4;	/* srv starts after that many records (the tickets) */
	fuzz_check(tlsrec_start(&f.lone, suites[f.suite].name, cs, ss, 0) == 0);
	fuzz_check(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	f.s = sv[0];
	f.c = sv[1];
	fuzz_check(fcntl(f.s, F_SETFL, O_NONBLOCK) == 0 && fcntl(f.c, F_SETFL, O_NONBLOCK) == 0);
	/* everything cli sends: the input bounds it */
	f.sent = malloc(size);
	fuzz_check(f.sent != NULL);

	while (i < size && !f.eof) {
		uint8_t op = data[i++];
		size_t n = 0;
		if (i + 2 <= size)
			n = (size_t)data[i] << 8 | data[i + 1];
		i += 2;
		if (i > size)
			i = size;
		if (n > size - i)
			n = size - i;
		if (n > OP_MAX)
			n = OP_MAX;
		const uint8_t *p = data + i;
		i += n;

		if (op & 0x40)
			tlsrec_release(&f.srv);
		switch (op % 8) {
		case 0:
			if (n > 0)
				f.clean = false;
			write_all(&f, p, n);
			break;
		case 1:
			cli_write(&f, p, n);
			break;
		case 2:
			f.cli.update_due = n > 0;	/* tlsrec_write sends it before data only */
			cli_write(&f, p, n);
			break;
		case 3:
		case 4:
			op_record(&f, p, n, op % 8 == 4);
			break;
		case 5: {
			size_t k, left = n;
			const uint8_t *q = p;
			while (left > 0) {
				enum io_result r = tlsrec_write(&f.srv, f.s, q, left, &k);
				fuzz_check(valid_result(r));
				if (r != IO_OK)
					break;
				fuzz_check(k > 0 && k <= left && k <= TLSREC_WRITE_MAX);
				q += k;
				left -= k;
			}
			cli_drain(&f, p, n - left);
			break;
		}
		case 6:
			op_inner(&f, p, n);
			continue;	/* nothing on the wire */
		case 7:
			shutdown(f.c, SHUT_WR);
			f.eof = true;
			break;
		}
		srv_drain(&f, rsizes[(op >> 3) % 8]);
	}
	/* the end: EOF, and srv has nothing more to give */
	shutdown(f.c, SHUT_WR);
	{
		uint8_t b[64];
		size_t n = 0;
		enum io_result r = tlsrec_read(&f.srv, f.s, b, sizeof(b), &n);
		fuzz_check(r == IO_PEER_GONE || r == IO_ERROR);
		fuzz_check(tlsrec_read(&f.srv, f.s, b, sizeof(b), &n) != IO_OK);
	}
	tlsrec_release(&f.srv);
	tlsrec_free(&f.srv);
	tlsrec_free(&f.cli);
	tlsrec_free(&f.lone);
	close(f.s);
	close(f.c);
	free(f.sent);
	return 0;
}
