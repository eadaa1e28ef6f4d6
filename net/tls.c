/*
 * tls.c - TLS over memory BIOs for io_uring sessions (see tls.h).
 */
#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_conn {
	SSL *ssl;
	BIO *rbio, *wbio;          /* owned by ssl */
	bool established;
	char desc[96];
	char error[160];
};

static void ossl_error(char *out, size_t n, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[200];

	ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(out, n, "%.60s: %.120s", what, e ? buf : "unknown error");
	ERR_clear_error();
}

int tls_server_ctx(const char *cert, const char *key, SSL_CTX **out, char *err, size_t errlen)
{
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());

	*out = NULL;
	if (!c) {
		ossl_error(err, errlen, "cannot make a TLS context");
		return -1;
	}
	SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
	SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* DHE suites need parameters: OpenSSL's built-in ones, sized to the key */
	SSL_CTX_set_dh_auto(c, 1);
	if (tls_server_ciphers(c, NULL, NULL, err, errlen) < 0) {
		SSL_CTX_free(c);
		return -1;
	}
	if (SSL_CTX_use_certificate_chain_file(c, cert) != 1) {
		ossl_error(err, errlen, cert);
		SSL_CTX_free(c);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(c) != 1) {
		ossl_error(err, errlen, key);
		SSL_CTX_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

int tls_server_ciphers(SSL_CTX *c, const char *tls12, const char *tls13, char *err, size_t errlen)
{
	if (SSL_CTX_set_cipher_list(c, tls12 ? tls12 : TLS_SERVER_CIPHERS) != 1) {
		ossl_error(err, errlen, "no usable cipher in the TLS 1.2 cipher list");
		return -1;
	}
	if (tls13 && SSL_CTX_set_ciphersuites(c, tls13) != 1) {
		ossl_error(err, errlen, "no usable suite in the TLS 1.3 cipher list");
		return -1;
	}
	return 0;
}

int tls_client_ctx(SSL_CTX **out, char *err, size_t errlen)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());

	*out = NULL;
	if (!c) {
		ossl_error(err, errlen, "cannot make a TLS context");
		return -1;
	}
	SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
	SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL); /* opportunistic: record, do not refuse */
	SSL_CTX_set_default_verify_paths(c);
	*out = c;
	return 0;
}

void tls_ctx_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
}

struct tls_conn *tls_conn_new(SSL_CTX *ctx, bool server, const char *sni)
{
	struct tls_conn *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ssl = SSL_new(ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->rbio || !t->wbio) {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		SSL_free(t->ssl);
		free(t);
		return NULL;
	}
	BIO_set_mem_eof_return(t->rbio, -1); /* an empty read BIO means "more later" */
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	if (server) {
		SSL_set_accept_state(t->ssl);
	} else {
		SSL_set_connect_state(t->ssl);
		if (sni && *sni)
			SSL_set_tlsext_host_name(t->ssl, sni);
	}
	return t;
}

void tls_conn_free(struct tls_conn *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	free(t);
}

int tls_feed(struct tls_conn *t, const void *p, size_t n)
{
	return n && BIO_write(t->rbio, p, (int)n) != (int)n ? -1 : 0;
}

int tls_handshake(struct tls_conn *t)
{
	int r, e;

	if (t->established)
		return 1;
	r = SSL_do_handshake(t->ssl);
	if (r == 1) {
		t->established = true;
		snprintf(t->desc, sizeof(t->desc), "%s %s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
		return 1;
	}
	e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	ossl_error(t->error, sizeof(t->error), "TLS handshake failed");
	return -1;
}

bool tls_established(const struct tls_conn *t)
{
	return t->established;
}

ssize_t tls_read(struct tls_conn *t, void *buf, size_t cap)
{
	int r = SSL_read(t->ssl, buf, (int)(cap > 1 << 30 ? 1 << 30 : cap)), e;

	if (r > 0)
		return r;
	e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	if (e == SSL_ERROR_ZERO_RETURN)
		snprintf(t->error, sizeof(t->error), "the peer closed TLS");
	else
		ossl_error(t->error, sizeof(t->error), "TLS read failed");
	return -1;
}

int tls_write(struct tls_conn *t, const void *p, size_t n)
{
	while (n) {
		int r = SSL_write(t->ssl, p, (int)(n > 1 << 30 ? 1 << 30 : n));

		if (r <= 0) {
			ossl_error(t->error, sizeof(t->error), "TLS write failed");
			return -1;
		}
		p = (const char *)p + r;
		n -= (size_t)r;
	}
	return 0;
}

size_t tls_pending(struct tls_conn *t)
{
	return BIO_ctrl_pending(t->wbio);
}

size_t tls_take(struct tls_conn *t, void *buf, size_t cap)
{
	int r = BIO_read(t->wbio, buf, (int)(cap > 1 << 30 ? 1 << 30 : cap));

	return r > 0 ? (size_t)r : 0;
}

const char *tls_describe(struct tls_conn *t)
{
	return t->desc;
}

void tls_trace_comment(const struct tls_conn *t, char *buf, size_t cap)
{
	int alg = 0, bits = SSL_get_cipher_bits(t->ssl, &alg);

	snprintf(buf, cap, "using %s with cipher %s (%d/%d bits)", SSL_get_version(t->ssl),
		 SSL_get_cipher_name(t->ssl), bits, alg);
}

const char *tls_error(const struct tls_conn *t)
{
	return t->error;
}
