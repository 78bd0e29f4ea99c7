/* tls.c — see tls.h. */
#include "autoconf.h"
#include "tls.h"
#include "config.h"
#include "log.h"
#include "tlsrec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

/* ALPN wire format: length-prefixed protocol names. */
static const unsigned char alpn_http11[] = "\x08http/1.1";

/* ALPN: we speak HTTP/1.1 only. A client that offers ALPN without http/1.1 (only "h2")
 * gets a fatal no_application_protocol alert, as RFC 7301 §3.2 asks, rather than an
 * HTTP/1.1 answer it would not understand. No ALPN at all is fine (openssl s_client). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel;

	if (SSL_select_next_proto(&sel, outlen, alpn_http11, sizeof(alpn_http11) - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* The reason of OpenSSL's last queued error, never NULL: ERR_reason_error_string() is
 * NULL for an empty queue or a code without a string, and a NULL "%s" is undefined. */
static const char *last_reason(void)
{
	const char *r = ERR_reason_error_string(ERR_peek_last_error());

	return r != NULL ? r : "unknown OpenSSL error";
}

/* An in-memory self-signed certificate for --demo: nothing to create on disk, nothing to
 * clean up, and a new key every start. */
static int demo_cert(SSL_CTX *ctx, char *err, size_t errlen)
{
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	X509_EXTENSION *ext = NULL;
	X509V3_CTX v3;
	int ok = 0;

	if (pkey == NULL || x == NULL)
		goto out;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(time(NULL) & 0x7fffffff));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 30L * 24 * 3600);
	X509_set_pubkey(x, pkey);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"ktlsd demo", -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
				  "DNS:localhost,IP:127.0.0.1,IP:::1");
	if (ext == NULL || !X509_add_ext(x, ext, -1))
		goto out;
	if (!X509_sign(x, pkey, EVP_sha256()))
		goto out;
	if (SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, pkey) != 1)
		goto out;
	ok = 1;
out:
	if (!ok) {
		snprintf(err, errlen, "cannot make the demo certificate: %s",
			 last_reason());
		ERR_clear_error();
	}
	X509_EXTENSION_free(ext);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ok ? 0 : -1;
}

static int load_cert(SSL_CTX *ctx, const char *cert, const char *key, char *err, size_t errlen)
{
	/* OpenSSL reports a missing file as "system lib": say what the system said */
	if (access(cert, R_OK) == -1) {
		snprintf(err, errlen, "cannot read certificate \"%s\": %s", cert,
			 strerror(errno));
		return -1;
	}
	if (access(key, R_OK) == -1) {
		snprintf(err, errlen, "cannot read private key \"%s\": %s", key,
			 strerror(errno));
		return -1;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, errlen, "cannot load certificate \"%s\": %s", cert,
			 last_reason());
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen, "cannot load private key \"%s\": %s", key,
			 last_reason());
		return -1;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "private key \"%s\" does not match certificate \"%s\"",
			 key, cert);
		return -1;
	}
	return 0;
}

/* A context with everything but the certificate: the same for the default one and each
 * SNI one, because after SSL_set_SSL_CTX() OpenSSL takes callbacks from the new one. */
static SSL_CTX *ctx_common(const struct config *c, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		snprintf(err, errlen, "SSL_CTX_new failed");
		return NULL;
	}
	/* TLS 1.3 only: kTLS TX in OpenSSL 3.0 and the product's measurements are about
	 * TLS 1.3 records; older versions are refused at the handshake. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, 0);
	/* Free the 16 KiB+ read/write buffers of idle connections: keep-alive memory. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
			      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* A client closing without close_notify after a complete response is common (curl
	 * does it); treat it as a normal EOF rather than an error worth logging. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	/* No read-ahead: when the handshake ends, every byte past the client's Finished must
	 * still be in the socket, for the record layer that takes over (tlsrec.h). It reads
	 * ahead itself. */
	SSL_CTX_set_read_ahead(ctx, 0);
	tlsrec_ctx_setup(ctx);
	/* config.c allowed only the suites the record layer has (tlsrec.h) */
	if (c->tls.ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, c->tls.ciphersuites) != 1) {
		snprintf(err, errlen, "tls.ciphersuites: \"%s\" names no usable TLS 1.3 suite",
			 c->tls.ciphersuites);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* ---- SNI: more certificates, chosen by the name the client asks for ------------- */

struct sni_entry {
	SSL_CTX *ctx;
	char **names;		/* DNS names (lower case), "*.example.com" wildcards allowed */
	size_t nnames;
};

struct sni_table {
	struct sni_entry e[CONFIG_MAX_SNI];
	size_t n;
};

/* Set by the first tls_ctx_new(), at start on the main thread before any worker runs;
 * read-only afterwards (handshakes on the workers only read it). */
static int sni_index = -1;

static void sni_table_free(struct sni_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++) {
		SSL_CTX_free(t->e[i].ctx);
		for (size_t k = 0; k < t->e[i].nnames; k++)
			free(t->e[i].names[k]);
		free(t->e[i].names);
	}
	free(t);
}

/* ex_data destructor: the table goes with the default context that owns it. */
static void sni_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	sni_table_free(ptr);
}

static bool name_matches(const char *pattern, const char *host)
{
	if (strncmp(pattern, "*.", 2) == 0) {
		const char *dot = strchr(host, '.');	/* the wildcard covers one label */
		return dot != NULL && dot != host && strcasecmp(dot + 1, pattern + 2) == 0;
	}
	return strcasecmp(pattern, host) == 0;
}

static int on_servername(SSL *ssl, int *al, void *arg)
{
	const struct sni_table *t = arg;
	const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	(void)al;
	if (host == NULL)
		return SSL_TLSEXT_ERR_OK;	/* no SNI: the default certificate */
	for (size_t i = 0; i < t->n; i++)
		for (size_t k = 0; k < t->e[i].nnames; k++)
			if (name_matches(t->e[i].names[k], host)) {
				SSL_set_SSL_CTX(ssl, t->e[i].ctx);
				return SSL_TLSEXT_ERR_OK;
			}
	return SSL_TLSEXT_ERR_OK;	/* unknown name: the default certificate, like nginx */
}

static int add_name(struct sni_entry *e, const char *name, size_t len)
{
	char **p = realloc(e->names, (e->nnames + 1) * sizeof(*p));

	if (p == NULL)
		return -1;
	e->names = p;
	p[e->nnames] = strndup(name, len);
	if (p[e->nnames] == NULL)
		return -1;
	e->nnames++;
	return 0;
}

/* The names a certificate is for: its subjectAltName DNS entries, else its CN. */
static int cert_names(SSL_CTX *ctx, struct sni_entry *e)
{
	X509 *x = SSL_CTX_get0_certificate(ctx);
	GENERAL_NAMES *san = x ? X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL) : NULL;
	int rc = 0;

	for (int i = 0; san != NULL && i < sk_GENERAL_NAME_num(san); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);
		if (g->type == GEN_DNS && rc == 0)
			rc = add_name(e, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
				      (size_t)ASN1_STRING_length(g->d.dNSName));
	}
	GENERAL_NAMES_free(san);
	if (e->nnames == 0 && x != NULL && rc == 0) {
		char cn[256];
		int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
						  sizeof(cn));
		if (n > 0)
			rc = add_name(e, cn, (size_t)n);
	}
	return rc;
}

static int setup_sni(SSL_CTX *ctx, const struct config *c, char *err, size_t errlen)
{
	struct sni_table *t;

	if (c->tls.nsni == 0)
		return 0;
	if (sni_index == -1)
		sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_ex_free);
	t = calloc(1, sizeof(*t));
	if (t == NULL || sni_index == -1) {
		free(t);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	SSL_CTX_set_ex_data(ctx, sni_index, t);		/* freed with ctx from here on */
	for (size_t i = 0; i < c->tls.nsni; i++) {
		struct sni_entry *e = &t->e[t->n];
		e->ctx = ctx_common(c, err, errlen);
		if (e->ctx == NULL)
			return -1;
		t->n++;
		if (load_cert(e->ctx, c->tls.sni[i].certificate, c->tls.sni[i].private_key, err,
			      errlen) || cert_names(e->ctx, e))
			return -1;
		if (e->nnames == 0) {
			snprintf(err, errlen, "tls.sni: certificate \"%s\" names no host (no DNS "
				 "subjectAltName, no CN)", c->tls.sni[i].certificate);
			return -1;
		}
	}
	SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
	SSL_CTX_set_tlsext_servername_arg(ctx, t);
	return 0;
}

SSL_CTX *tls_ctx_new(const struct config *c, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	ctx = ctx_common(c, err, errlen);
	if (ctx == NULL)
		return NULL;
	if (c->tls.certificate != NULL) {
		if (load_cert(ctx, c->tls.certificate, c->tls.private_key, err, errlen))
			goto fail;
	} else if (demo_cert(ctx, err, errlen)) {
		goto fail;
	}
	if (setup_sni(ctx, c, err, errlen))
		goto fail;
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

/* Map the SSL_get_error() code e of an SSL_* call to io_result, in one place. */
static enum io_result map_ssl(int e, int *want_write, const char *what)
{
	*want_write = 0;
	switch (e) {
	case SSL_ERROR_WANT_READ:
		return IO_AGAIN;
	case SSL_ERROR_WANT_WRITE:
		*want_write = 1;
		return IO_AGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return IO_PEER_GONE;
	case SSL_ERROR_SYSCALL:
		if (errno == EAGAIN) {
			ERR_clear_error();
			return IO_AGAIN;
		}
		log_debug("%s: syscall error: %s", what, errno ? strerror(errno) : "unexpected EOF");
		ERR_clear_error();
		return IO_PEER_GONE;
	case SSL_ERROR_SSL:
		if (log_get_level() >= LOG_LEVEL_INFO)
			log_openssl(LOG_LEVEL_INFO, what);
		ERR_clear_error();
		return IO_ERROR;
	default:
		ERR_clear_error();
		return IO_ERROR;
	}
}

/* One handshake step. A call whose socket read or write a signal interrupted (OpenSSL
 * reports EINTR as "want read/write") is made again at once: the events are
 * edge-triggered, and the socket that was ready all along would bring no new edge to end
 * the wait. errno is cleared before each call, so EINTR is this call's. */
enum io_result tls_handshake(SSL *ssl, int *want_write)
{
	int r, e;

	do {
		ERR_clear_error();
		errno = 0;
		r = SSL_do_handshake(ssl);
		if (r == 1) {
			*want_write = 0;
			return IO_OK;
		}
		e = SSL_get_error(ssl, r);
	} while (errno == EINTR && (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ||
				    e == SSL_ERROR_SYSCALL));
	return map_ssl(e, want_write, "TLS handshake");
}

const char *tls_cipher_name(const SSL *ssl)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);

	return c ? SSL_CIPHER_get_name(c) : "-";
}
