/*
 * smtp_client.h - one outbound SMTP connection over io_uring (RFC 5321
 * client, PIPELINING RFC 2920, CHUNKING RFC 3030), driven by its owner
 * (egress).
 *
 * Life of a connection: smtp_client_connect() -> connect, banner, EHLO (HELO
 * when EHLO is refused), STARTTLS and EHLO again when offered, AUTH when
 * smtp_client_set_auth() asked for it -> hooks.ready() -> the owner gives it transactions
 * with smtp_client_send(); each completes with hooks.txn_done() and the
 * connection is idle again -> smtp_client_quit(). However it ends (QUIT,
 * refusal, timeout, reset), hooks.closed() is called exactly once, after any
 * txn_done() for a transaction cut short; the client frees itself after the
 * hook returns and in-flight operations have drained: the owner must forget
 * the pointer in closed().
 *
 * Every step has a deadline (RFC 5321 4.5.3.2 values by default) that runs
 * on the monotonic clock from the step's start: bytes arriving do not
 * extend it, so a peer dripping a reply cannot hold a session. A
 * transaction also has an overall deadline, the sum of its steps' limits.
 * The message's sending has data-send-timeout (body_ms), its final reply
 * smtp-data-termination-timeout (dot_ms). A reply longer than the receive
 * buffer (64 KiB) ends the session as a protocol error. The final reply to
 * a message is acted on once all of the message has left (an early one is
 * held; it still counts if the peer then closes or stalls). Replies
 * split across packets, multi-line replies and non-ASCII text are handled by
 * smtp_reply_parse(); a malformed reply ends the connection with a classified
 * error, never an abort.
 *
 * Memory: a struct smtp_txn and everything it points to belong to the owner
 * and must stay valid until txn_done() for it; the client fills results[].
 * The message is sent from the owner's wire buffer, not copied (a small BDAT
 * message excepted); under TLS it is encrypted 64 KiB at a time, so a
 * session holds about one copy of its message.
 */
#ifndef SALVO_SMTP_CLIENT_H
#define SALVO_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct loop;
struct smtp_client;

/* A reply as the outcome logic needs it. code 0 = no reply: a network-level
 * failure (refused, reset, timeout) described by text. after_data: the
 * reply answered DATA or the end of the message (the recipient had been
 * accepted at RCPT TO), not the envelope. */
struct smtp_result {
	int code;
	char enhanced[16];
	char text[256];
	bool after_data;
	bool at_mail;              /* the reply to MAIL FROM (every recipient gets it) */
};

struct smtp_txn {
	const char *sender;
	const char *const *rcpts;
	size_t n_rcpts;
	const char *wire;          /* dot-stuffed message with the final ".\r\n", */
	size_t wire_len;           /* or with chunked, chunk_form()'s (no stuffing) */
	bool chunked;              /* send with BDAT: only when smtp_client_exts() has CHUNKING */
	bool eightbit;             /* add BODY=8BITMIME when the server offers it */
	bool smtputf8;             /* add SMTPUTF8 when the server offers it (the owner
				    * checks smtp_client_exts() first: RFC 6531 3.4) */
	size_t size;               /* SIZE= on MAIL FROM (RFC 1870) when offered;
				    * 0: wire_len */
	struct smtp_result *results; /* n_rcpts entries, filled by the client */
	/* RFC 3461 parameters, passed on only to a server that offers DSN:
	 * RET= and ENVID= (text, xtext-encoded here) on MAIL; NOTIFY= and
	 * ORCPT= ("type;address", the address xtext-encoded here) on each
	 * RCPT. 0 / NULL (arrays or entries): not given. */
	uint8_t dsn_ret;           /* 1 FULL, 2 HDRS */
	const char *dsn_envid;
	const uint8_t *dsn_notify; /* SMTP_NOTIFY_* bits (net/smtp_cmd.h) */
	const char *const *dsn_orcpt;
};

struct smtp_client_hooks {
	void (*ready)(void *owner, struct smtp_client *c);
	void (*txn_done)(void *owner, struct smtp_client *c, struct smtp_txn *t);
	/* reached_ready: the session got past EHLO (a later failure is not the
	 * host's fault as a whole). why: the reason it ended. */
	void (*closed)(void *owner, struct smtp_client *c, bool reached_ready, const struct smtp_result *why);
};

struct smtp_client_timeouts {
	uint64_t connect_ms, banner_ms, helo_ms, mail_ms, rcpt_ms, data_ms, body_ms, dot_ms, quit_ms;
};

/* RFC 5321 4.5.3.2 defaults (connect 30 s). */
void smtp_client_default_timeouts(struct smtp_client_timeouts *t);

typedef struct ssl_ctx_st SSL_CTX;

/* Opportunistic STARTTLS: used when the host offers it; with require, a
 * host that does not is a failure (deferred), not a clear session. */
struct smtp_client_tls {
	SSL_CTX *ctx;
	bool require;
	const char *sni;           /* the MX host name; an IP literal or anything with
				    * a port is never sent (RFC 6066 3) */
};

/* Start connecting to addr (port included). Returns 0, or -errno when no
 * socket could be made (then no hook is ever called). source and tls may
 * be NULL. */
int smtp_client_connect(struct smtp_client **out, struct loop *l,
			const struct sockaddr *addr, socklen_t addrlen,
			const struct sockaddr *source, socklen_t sourcelen,
			const char *helo_name, const struct smtp_client_timeouts *tmo,
			const struct smtp_client_tls *tls,
			const struct smtp_client_hooks *hooks, void *owner);
/* Authenticate after EHLO (and STARTTLS) with AUTH PLAIN, else LOGIN, as
 * user/pass (copied; each at most 255 bytes). Only over TLS unless
 * allow_clear: a session that cannot (no TLS, no such mechanism) or is
 * refused ends before ready() with the reason. Call right after
 * smtp_client_connect(). 0, -EINVAL, -ENOMEM. */
int smtp_client_set_auth(struct smtp_client *c, const char *user, const char *pass, bool allow_clear);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" when the session is encrypted, else NULL. */
const char *smtp_client_tls(const struct smtp_client *c);
/* Did the session end in a failed TLS handshake? */
bool smtp_client_tls_failed(const struct smtp_client *c);
/* Only when idle (after ready() or txn_done()). */
void smtp_client_send(struct smtp_client *c, struct smtp_txn *t);
/* Polite close from idle: QUIT, then closed(). */
void smtp_client_quit(struct smtp_client *c);
/* Drop the connection now (shutdown); closed() follows. */
void smtp_client_abort(struct smtp_client *c);
/* Only after the loop stopped for good: free without any hook. */
void smtp_client_free(struct smtp_client *c);

/* True when the session can take a transaction (after ready/txn_done on a
 * healthy session; false inside txn_done for a session that is dying). */
bool smtp_client_idle(const struct smtp_client *c);
unsigned smtp_client_exts(const struct smtp_client *c);
/* The server's SIZE limit in octets (0: none advertised). */
uint64_t smtp_client_size_limit(const struct smtp_client *c);
/* The session's transcript hook (net/smtp_trace.h), zeroed (off): the
 * owner may set its sink right after smtp_client_connect(), before any
 * completion runs. Lives as long as the client. */
struct smtp_trace;
struct smtp_trace *smtp_client_trace(struct smtp_client *c);
/* The peer as text ("127.0.0.2"), for logs. */
const char *smtp_client_peer_ip(const struct smtp_client *c);

#endif
