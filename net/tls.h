/*
 * tls.h - TLS for sessions that do their own I/O on io_uring: OpenSSL with
 * a pair of memory BIOs, no socket inside OpenSSL. The session feeds the
 * bytes it read (ciphertext) in, reads plaintext out, writes plaintext in,
 * and sends whatever ciphertext the connection has pending.
 *
 * Contexts: a server context from a certificate and key (TLS 1.2 minimum;
 * TLS 1.2 offers forward-secret AEAD suites only unless told otherwise:
 * ECDHE or DHE with AES-GCM or ChaCha20-Poly1305, Mozilla's "intermediate"
 * profile; TLS 1.3 suites are all of that kind),
 * a client context for opportunistic STARTTLS (no verification of the
 * peer: the delivery log records the protocol and cipher, and whether the
 * certificate verified against the system store).
 *
 * Ownership: contexts are shared read-only (OpenSSL reference counts them);
 * a struct tls_conn belongs to one session.
 */
#ifndef SALVO_TLS_H
#define SALVO_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct ssl_ctx_st SSL_CTX;
struct tls_conn;

/* 0, or -1 with a message in err. */
/* Mozilla's "intermediate" profile for TLS 1.2: ECDHE/DHE key exchange (forward
 * secrecy) with AEAD ciphers only; no static RSA, no CBC, no SHA-1 MAC. */
#define TLS_SERVER_CIPHERS                                                                      \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"   \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

int tls_server_ctx(const char *cert_file, const char *key_file, SSL_CTX **out, char *err, size_t errlen);
int tls_client_ctx(SSL_CTX **out, char *err, size_t errlen);
void tls_ctx_free(SSL_CTX *ctx);

struct tls_conn *tls_conn_new(SSL_CTX *ctx, bool server, const char *sni);
void tls_conn_free(struct tls_conn *t);

/* Ciphertext that arrived. 0, or -1 (out of memory). */
int tls_feed(struct tls_conn *t, const void *p, size_t n);
/* Drive the handshake: 1 done, 0 wants more input, -1 failed (why in
 * tls_error()). Safe to call again once done. */
int tls_handshake(struct tls_conn *t);
bool tls_established(const struct tls_conn *t);
/* Plaintext available now: > 0 bytes, 0 none yet, -1 error or the peer's
 * close_notify. */
ssize_t tls_read(struct tls_conn *t, void *buf, size_t cap);
/* Queue plaintext for sending (after the handshake). 0 or -1. */
int tls_write(struct tls_conn *t, const void *p, size_t n);
/* Ciphertext waiting to be sent, and taking it (up to cap bytes). */
size_t tls_pending(struct tls_conn *t);
size_t tls_take(struct tls_conn *t, void *buf, size_t cap);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" (empty before the handshake). */
const char *tls_describe(struct tls_conn *t);
/* The trace-header comment for an established session, as Postfix writes
 * it: "using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)". */
void tls_trace_comment(const struct tls_conn *t, char *buf, size_t cap);
/* The inbound cipher policy: OpenSSL cipher lists for TLS 1.2 and for
 * TLS 1.3 (NULL: keep the default, forward-secret AEAD suites only:
 * TLS_SERVER_CIPHERS, TLS 1.3's own). 0, or -1 with the reason in err. */
int tls_server_ciphers(SSL_CTX *c, const char *tls12, const char *tls13, char *err, size_t errlen);
/* The last failure, e.g. "handshake failed: wrong version number". */
const char *tls_error(const struct tls_conn *t);

#endif
