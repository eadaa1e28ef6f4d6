/*
 * smtp_server.h - the intake SMTP server: listeners and ESMTP sessions on one
 * worker's io_uring loop (RFC 5321, PIPELINING RFC 2920, SIZE RFC 1870,
 * 8BITMIME RFC 6152, ENHANCEDSTATUSCODES RFC 2034, SMTPUTF8 RFC 6531,
 * CHUNKING RFC 3030).
 *
 * The server speaks the protocol; policy and storage belong to the caller
 * through struct smtp_server_hooks:
 *   - rcpt() decides each RCPT (relay control) and writes the reply line;
 *   - submit() receives a complete message. Ownership of the envelope and of
 *     the body buffer passes to the hook. The session sends nothing more until
 *     the hook calls smtp_session_submitted() (on the session's thread) with
 *     the final reply: "250" only once the message is durable.
 *
 * Each worker thread runs its own smtp_server with its own listening sockets
 * bound with SO_REUSEPORT, so the kernel spreads connections across workers.
 *
 * Sessions: one state enum per session, a deadline per state (command or
 * data timeout) checked by one lazily re-armed timer, at most one recv and
 * one send in flight. A session is freed only when no operation of it is in
 * flight and no submission is pending.
 */
#ifndef SALVO_SMTP_SERVER_H
#define SALVO_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct loop;
struct smtp_session;
struct smtp_trace;
struct config_addr;

/* What the server must know about a client when it connects (the
 * caller's <source> policy). */
struct smtp_peer_policy {
	size_t listener;           /* in: the index of the listener the client came to
				    * (the addrs given to smtp_server_start, then the
				    * implicit-TLS ones) */
	bool trusted;              /* may relay without AUTH: exempt from the caps
				    * meant for strangers (conn_limit.h) */
	unsigned max_per_ip;       /* the source's own per-address cap; 0 = default */
	uint64_t max_message_size; /* until AUTH succeeds (then the listener's) */
	uint64_t max_session_ms;   /* overall deadline until AUTH; 0 = none */
	unsigned max_rcpts;        /* RCPTs per transaction (set to the server's before the hook) */
	uint64_t command_timeout_ms; /* likewise: waiting for a command */
	uint64_t data_timeout_ms;  /* likewise: inactivity within DATA or BDAT */
	bool no_starttls;          /* the listener's `tls=no` or the source's
				    * `allow-starttls no`: STARTTLS neither offered
				    * nor accepted */
	bool refuse;               /* the source's `smtp-service no`: 554 and close */
};

/* A received message's envelope; owned by whoever holds it (see submit). */
struct smtp_envelope {
	char *sender;              /* "" for the null reverse-path */
	char **rcpts;
	size_t n_rcpts;
	char client_ip[64];
	char helo[256];
	bool smtputf8;
	bool eightbit;
	bool xverp;                /* MAIL ... XVERP */
	/* RFC 3461 DSN parameters, decoded from xtext. */
	uint8_t ret;               /* MAIL RET=: SMTP_RET_* (smtp_cmd.h), 0 when absent */
	char envid[101];           /* MAIL ENVID=, "" when absent */
	uint8_t *notify;           /* n_rcpts entries: RCPT NOTIFY= as SMTP_NOTIFY_* bits, 0 absent */
	char **orcpt;              /* n_rcpts entries: RCPT ORCPT= as "type;address", NULL absent */
};

void smtp_envelope_free(struct smtp_envelope *env);

struct smtp_server_hooks {
	/* Decide a RCPT. Write the full reply line (without CRLF) into reply.
	 * Return true when the recipient is accepted. */
	bool (*rcpt)(void *ctx, struct smtp_session *s, const char *addr, char *reply, size_t cap);
	/* A complete message: env and body (malloc'd, len bytes, CRLF lines,
	 * trace header first) now belong to the hook. */
	void (*submit)(void *ctx, struct smtp_session *s, struct smtp_envelope *env,
		       char *body, size_t len);
	/* Optional. May this session use AUTH now (it is over TLS when tls is
	 * true)? NULL: never. */
	bool (*auth_allowed)(void *ctx, struct smtp_session *s, bool tls);
	/* Start checking a user name and password, off the loop (password
	 * hashing is slow on purpose). The session waits, reading nothing,
	 * until smtp_session_auth_done() is called on its thread. */
	void (*auth_start)(void *ctx, struct smtp_session *s, const char *user, const char *pass);
	/* Optional. The client's policy, asked once per accepted connection.
	 * NULL: untrusted, the listener's limits, no session deadline. */
	void (*peer_policy)(void *ctx, const struct sockaddr *peer, struct smtp_peer_policy *out);
	/* Optional. Should a bare CR or LF in this session's DATA be stored
	 * as CRLF (true) rather than refuse the message with 550 5.5.2 (false,
	 * also when NULL)? Asked at each DATA. */
	bool (*normalize_bare_newlines)(void *ctx, struct smtp_session *s);
	/* Optional. Set the session's transcript hook (net/smtp_trace.h: sink,
	 * configured flags) when it is accepted; the server fills fd and
	 * inbound. NULL: never traced. */
	void (*trace_start)(void *ctx, const struct sockaddr *peer, struct smtp_trace *t);
};

typedef struct ssl_ctx_st SSL_CTX;

struct smtp_server_limits {
	const char *host_name;
	uint64_t max_message_size;
	unsigned max_rcpts;
	uint64_t command_timeout_ms;
	uint64_t data_timeout_ms;
	unsigned max_errors;       /* protocol errors before 421 and close */
	struct conn_limit *conns;  /* shared caps (all workers); NULL = none */
	SSL_CTX *tls;              /* STARTTLS and implicit-TLS listeners; NULL = no TLS */
};

struct smtp_server;
struct conn_limit;

/* Create a server on loop l, listening on every address (SO_REUSEPORT).
 * Returns 0 or -errno (with the failing address in err). */
int smtp_server_start(struct smtp_server **out, struct loop *l,
		      const struct config_addr *addrs, size_t n_addrs,
		      const struct config_addr *tls_addrs, size_t n_tls_addrs,  /* implicit TLS */
		      const struct smtp_server_limits *limits,
		      const struct smtp_server_hooks *hooks, void *ctx,
		      char *err, size_t errlen);
/* A reload: listen on exactly these addresses from now on. A listener
 * whose address (and kind) is unchanged stays open; new ones are opened
 * (SO_REUSEPORT) and armed; removed ones stop accepting at once (their
 * sessions go on). On the loop's thread. 0, or the first -errno (its
 * address in err; the other addresses are still applied). */
int smtp_server_listen(struct smtp_server *srv, const struct config_addr *addrs, size_t n_addrs,
		       const struct config_addr *tls_addrs, size_t n_tls_addrs, char *err, size_t errlen);
/* Only after the loop has stopped for good: closes every socket and frees
 * every session, whatever was in flight (the ring is torn down after this,
 * so no completion will ever name them). Pending submissions must not call
 * smtp_session_submitted() afterwards. */
void smtp_server_free(struct smtp_server *srv);

/* The verdict of auth_start: 0 good, 1 wrong, 2 too many failures from
 * this client (answered 454 and closed). */
void smtp_session_auth_done(struct smtp_session *s, int result);
/* Does the session's client count as a trusted injector (its source may
 * relay, or it has authenticated)? */
bool smtp_session_trusted(const struct smtp_session *s);

/* The reply to a submitted message ("250 2.0.0 Ok: queued as ..."). */
void smtp_session_submitted(struct smtp_session *s, const char *reply);
const struct sockaddr *smtp_session_peer(const struct smtp_session *s);
/* The address the client connected to (getsockname of the session's
 * socket) in *out, returned as a sockaddr; NULL when unknown. */
const struct sockaddr *smtp_session_local(const struct smtp_session *s, struct sockaddr_storage *out);
/* The index of the listener the session came in on (see smtp_peer_policy). */
size_t smtp_session_listener(const struct smtp_session *s);
/* The user the session authenticated as, or NULL. */
const char *smtp_session_user(const struct smtp_session *s);
/* The message size limit once the AUTH under way succeeds (a named
 * <source>'s max-message-size); 0: the listener's. Call before
 * smtp_session_auth_done(). */
void smtp_session_set_auth_max_size(struct smtp_session *s, uint64_t max);
/* Likewise the RCPT limit and the command and data timeouts once the AUTH
 * under way succeeds (a named <source>'s); 0 in each: the server's. Not
 * called: the connection's policy stays. */
void smtp_session_set_auth_limits(struct smtp_session *s, unsigned max_rcpts, uint64_t command_timeout_ms,
				  uint64_t data_timeout_ms);
/* The TLS protocol and cipher of the session, or NULL when in clear. */
const char *smtp_session_tls(const struct smtp_session *s);
/* Sessions not yet freed (open, closing, or waiting for in-flight ops). */
size_t smtp_server_session_count(const struct smtp_server *srv);

#endif
