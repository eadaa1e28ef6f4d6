/*
 * smtp_server.c - intake ESMTP sessions over io_uring (see smtp_server.h).
 *
 * Flow per session: accept -> banner -> commands (pipelined: every complete
 * line in the input buffer is answered before one send) -> DATA (streamed
 * through the dot-unstuffer into the body buffer) or BDAT chunks (counted
 * bytes, RFC 3030) -> submit hook -> wait for the durable commit -> "250"
 * -> next transaction.
 *
 * Message data (the smuggling rules): only CRLF "." CRLF ends DATA. A bare
 * CR or LF in DATA refuses the message with 550 5.5.2 once its end has been
 * read (the session stays in sync, as Postfix's smtpd_forbid_bare_newline),
 * unless the normalize_bare_newlines hook says to store it as CRLF. A BDAT
 * chunk is exactly its announced byte count, whatever it holds: its bytes
 * can never become commands, so bare CR/LF there are data (the outbound
 * wire forms write them as CRLF). Every syntactically valid BDAT has its
 * chunk read, also when it is refused; a refused chunk fails the whole
 * transaction (later BDATs get 503 until a new MAIL, RFC 3030 2).
 *
 * Invariants:
 *   - at most one recv and one send in flight; `ops` counts every in-flight
 *     op (recv, send, timer, cancel) plus a pending submission; the session
 *     is freed when it is closing and ops reaches zero;
 *   - replies accumulate in `pend` while `out` is on the wire; they swap when
 *     the send completes, so a buffer is never reallocated under the kernel;
 *   - input is parsed only in states READY and DATA; in WAIT_COMMIT the
 *     bytes stay in `in` until the reply is out (pipelined commands after
 *     the final "." are answered in order).
 */
#include "net/smtp_server.h"
#include "net/conn_limit.h"
#include "net/smtp_trace.h"
#include "net/tls.h"
#include <openssl/evp.h>

#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "core/config.h"
#include "net/dot_stuff.h"
#include "net/loop.h"
#include "net/smtp_cmd.h"

#define IN_CAP (64 * 1024)
#define PEND_MAX (64 * 1024)
#define BODY_INIT (64 * 1024)

enum sess_state {
	SESS_READY,        /* reading commands */
	SESS_DATA,         /* reading the message */
	SESS_BDAT,         /* reading a BDAT chunk (chunk_left bytes to go) */
	SESS_WAIT_COMMIT,  /* message handed to the spool; waiting for durability */
	SESS_WAIT_AUTH,    /* credentials being checked off the loop */
	SESS_CLOSING,      /* flushing the last reply, then close */
	SESS_DEAD,         /* fd shut; waiting for in-flight ops to drain */
};

static const char *const sess_state_name[] = {"ready", "data", "bdat", "wait-commit", "wait-auth", "closing", "dead"};

struct listener {
	struct smtp_server *srv;
	int fd;
	bool implicit_tls;         /* TLS from the first byte (port 465 style) */
	struct loop_op accept_op;
	struct loop_op pause_op;   /* backs off after a failed accept (EMFILE...) */
	/* Removed by smtp_server_listen(): its armed op (accept or pause) is
	 * cancelled; it goes once that and the cancel itself completed. */
	bool closing;
	bool paused;               /* pause_op, not accept_op, is the armed one */
	unsigned closing_ops;
	struct loop_op cancel_op;
	struct listener *next_closing;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	char text[64];
	size_t index;              /* its place in the config's listener list (the
				    * smtp-listener ... source= of sessions it accepts);
				    * a reload renumbers it */
};

struct smtp_session {
	struct smtp_server *srv;
	struct smtp_session *prev, *next;
	int fd;
	enum sess_state state;
	unsigned ops;
	bool recv_armed, send_armed, timer_armed;
	bool discarding;           /* dropping an over-long line up to its LF */
	bool quit_after_send;
	bool line_bare_lf;         /* the command line just read ended in a bare LF */
	bool in_pump;              /* sess_pump() is on the stack: hooks that
				    * answer at once must not re-enter it */
	unsigned errors;
	uint64_t deadline;
	uint64_t end_by;           /* overall session deadline now (0: none) */
	uint64_t pol_end_by;       /* the policy's deadline, for when AUTH is forgotten */
	struct loop_op recv_op, send_op, timer_op;
	struct smtp_peer_policy pol;
	uint64_t max_size;         /* the message size limit now */
	struct smtp_trace trace;   /* transcripts (smtp_trace.h); hooks.trace_start sets it */

	struct sockaddr_storage peer;
	char peer_ip[64];
	bool counted;              /* holds a slot in lim.conns */
	bool esmtp;
	char helo[256];

	/* TLS (STARTTLS or an implicit-TLS listener) */
	struct tls_conn *tls;
	bool starttls_after_flush; /* the 220 for STARTTLS is going out in clear */
	bool greeted;              /* implicit TLS: the banner waits for the handshake */
	/* AUTH */
	enum { AUTH_NONE, AUTH_PLAIN_WAIT, AUTH_LOGIN_USER, AUTH_LOGIN_PASS } auth_step;
	char auth_user[256];
	char *user;                /* authenticated as */
	uint64_t auth_max_size;    /* after AUTH; 0: the listener's */
	bool auth_limits;          /* after AUTH: these replace the policy's (0: the server's) */
	unsigned auth_max_rcpts;
	uint64_t auth_command_ms, auth_data_ms;

	/* transaction */
	struct smtp_envelope *env;
	bool has_mail;
	struct dot_unstuff unstuff;
	char *body;
	size_t body_len, body_cap;
	bool body_too_big;
	/* BDAT (RFC 3030) */
	bool bdat;                 /* this transaction's data comes by BDAT */
	bool chunk_take;           /* the chunk being read goes into the body */
	bool chunk_last;
	uint64_t chunk_left;       /* bytes of the current chunk still to read */
	uint64_t bdat_bytes;       /* the client's bytes taken so far */
	const char *chunk_refusal; /* reply once a refused chunk is read */

	char in[IN_CAP];
	size_t in_len;
	char *out, *pend;
	size_t out_len, out_off, pend_len, pend_cap, out_cap;
};

struct smtp_server {
	struct loop *loop;
	struct listener **listeners; /* each allocated alone: ops point into them */
	size_t n_listeners;
	struct listener *closing;    /* removed, waiting for their ops */
	struct smtp_server_limits lim;
	struct smtp_server_hooks hooks;
	void *ctx;
	struct smtp_session *sessions;
};

static void sess_pump(struct smtp_session *s);
static void sess_close(struct smtp_session *s);
static void sess_flush(struct smtp_session *s);

/* One branch when tracing is off (smtp_trace.h). */
static inline void sess_trace(struct smtp_session *s, unsigned what, enum smtp_trace_ev ev, const char *p, size_t n)
{
	if (smtp_trace_on(&s->trace, what))
		smtp_trace_event(&s->trace, ev, p, n);
}

/* ---- envelope ---------------------------------------------------------- */

void smtp_envelope_free(struct smtp_envelope *env)
{
	if (!env)
		return;
	for (size_t i = 0; i < env->n_rcpts; i++) {
		free(env->rcpts[i]);
		free(env->orcpt ? env->orcpt[i] : NULL);
	}
	free(env->rcpts);
	free(env->notify);
	free(env->orcpt);
	free(env->sender);
	free(env);
}

static void sess_reset_txn(struct smtp_session *s)
{
	smtp_envelope_free(s->env);
	s->env = NULL;
	s->has_mail = false;
	free(s->body);
	s->body = NULL;
	s->body_len = s->body_cap = 0;
	s->body_too_big = false;
	s->bdat = false;
	s->bdat_bytes = 0;
}

/* ---- output ------------------------------------------------------------ */

static void sess_reply(struct smtp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sess_reply(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = s->pend_cap - s->pend_len;

		va_start(ap, fmt);
		n = vsnprintf(s->pend + s->pend_len, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n + 2 < room) {
			sess_trace(s, SMTP_TRACE_CMDS, SMTP_TRACE_EV_REPLY, s->pend + s->pend_len, (size_t)n);
			memcpy(s->pend + s->pend_len + n, "\r\n", 2);
			s->pend_len += (size_t)n + 2;
			return;
		}
		size_t cap = s->pend_cap * 2 + (size_t)n + 2;
		char *p = realloc(s->pend, cap);
		if (!p) {
			s->quit_after_send = true;
			return;
		}
		s->pend = p;
		s->pend_cap = cap;
	}
}

static void sess_forget_auth(struct smtp_session *s)
{
	free(s->user);
	s->user = NULL;
	s->auth_step = AUTH_NONE;
	explicit_bzero(s->auth_user, sizeof(s->auth_user));
	s->max_size = s->pol.max_message_size;
	s->end_by = s->pol_end_by;
}

static void sess_send_done(struct loop_op *op, int res, unsigned flags)
{
	struct smtp_session *s = container_of(op, struct smtp_session, send_op);

	s->ops--;
	s->send_armed = false;
	if (s->state == SESS_DEAD) {
		sess_close(s);
		return;
	}
	if (res <= 0) {
		sess_close(s);
		return;
	}
	s->out_off += (size_t)res;
	if (s->out_off < s->out_len) {
		s->ops++;
		s->send_armed = true;
		loop_send(s->srv->loop, &s->send_op, s->fd, s->out + s->out_off, s->out_len - s->out_off);
		return;
	}
	s->out_len = s->out_off = 0;
	if (s->starttls_after_flush) {
		/* RFC 3207: the 220 went out in clear; TLS starts with the next byte */
		s->starttls_after_flush = false;
		if (!(s->tls = tls_conn_new(s->srv->lim.tls, true, NULL))) {
			sess_close(s);
			return;
		}
		/* RFC 3207 4.2: forget everything the client said in clear,
		 * the authenticated identity included */
		s->helo[0] = 0;
		s->esmtp = false;
		sess_reset_txn(s);
		sess_forget_auth(s);
		s->discarding = false;
	}
	if (s->pend_len || (s->tls && tls_pending(s->tls))) {
		sess_flush(s);
		return;
	}
	if (s->state == SESS_CLOSING || s->quit_after_send) {
		sess_close(s);
		return;
	}
	/* Output drained: input parsing may have paused on a full reply buffer. */
	sess_pump(s);
}

/* TLS: encrypt the pending replies and send the ciphertext waiting in the
 * connection (handshake records too). */
static void sess_flush_tls(struct smtp_session *s)
{
	size_t n;

	if (s->pend_len && tls_established(s->tls)) {
		if (tls_write(s->tls, s->pend, s->pend_len) < 0) {
			sess_close(s);
			return;
		}
		s->pend_len = 0;
	}
	if (s->send_armed || !(n = tls_pending(s->tls)))
		return;
	if (n > s->out_cap) {
		char *p = realloc(s->out, n);

		if (!p) {
			sess_close(s);
			return;
		}
		s->out = p;
		s->out_cap = n;
	}
	s->out_len = tls_take(s->tls, s->out, n);
	s->out_off = 0;
	s->ops++;
	s->send_armed = true;
	loop_send(s->srv->loop, &s->send_op, s->fd, s->out, s->out_len);
}

/* Put the pending replies on the wire (one send in flight at a time). */
static void sess_flush(struct smtp_session *s)
{
	char *tmp;
	size_t cap;

	if (s->state == SESS_DEAD)
		return;
	if (s->tls) {
		sess_flush_tls(s);
		return;
	}
	if (s->send_armed || !s->pend_len)
		return;
	tmp = s->out;
	cap = s->out_cap;
	s->out = s->pend;
	s->out_cap = s->pend_cap;
	s->out_len = s->pend_len;
	s->out_off = 0;
	s->pend = tmp;
	s->pend_cap = cap;
	s->pend_len = 0;
	s->ops++;
	s->send_armed = true;
	loop_send(s->srv->loop, &s->send_op, s->fd, s->out, s->out_len);
}

/* ---- timers ------------------------------------------------------------ */

static void sess_timer_done(struct loop_op *op, int res, unsigned flags);

static void sess_arm_timer(struct smtp_session *s)
{
	uint64_t now = loop_now_ms();

	if (s->timer_armed || s->state == SESS_DEAD)
		return;
	s->ops++;
	s->timer_armed = true;
	loop_timeout(s->srv->loop, &s->timer_op, s->deadline > now ? s->deadline - now : 0);
}

static void sess_touch(struct smtp_session *s)
{
	uint64_t t = s->state == SESS_DATA || s->state == SESS_BDAT ? s->pol.data_timeout_ms
								     : s->pol.command_timeout_ms;

	s->deadline = loop_now_ms() + t;
	if (s->end_by && s->deadline > s->end_by)
		s->deadline = s->end_by;
	sess_arm_timer(s);
}

/* The timer is re-armed lazily: activity only moves the deadline, and a
 * timer that fires early just sleeps again for the remainder. */
static void sess_timer_done(struct loop_op *op, int res, unsigned flags)
{
	struct smtp_session *s = container_of(op, struct smtp_session, timer_op);

	s->ops--;
	s->timer_armed = false;
	if (s->state == SESS_DEAD) {
		sess_close(s);
		return;
	}
	if (s->state == SESS_WAIT_COMMIT || s->state == SESS_WAIT_AUTH) {
		/* Our own disk (or hashing) is slow; the client's patience is
		 * not our timer's. */
		s->deadline = loop_now_ms() + s->srv->lim.command_timeout_ms;
		sess_arm_timer(s);
		return;
	}
	if (loop_now_ms() < s->deadline) {
		sess_arm_timer(s);
		return;
	}
	bool overall = s->end_by && loop_now_ms() >= s->end_by;

	fprintf(stderr, "salvod: smtp session from %s: %s in state %s\n", s->peer_ip,
		overall ? "session time limit reached" : "timeout", sess_state_name[s->state]);
	sess_reply(s, "421 4.4.2 %s Error: %s", s->srv->lim.host_name,
		   overall ? "session time limit exceeded" : "timeout exceeded");
	s->state = SESS_CLOSING;
	sess_flush(s);
	/* Nothing could go out (a TLS session still in its handshake has no
	 * way to say it): close now, or nothing ever would. */
	if (!s->send_armed)
		sess_close(s);
}

/* ---- lifetime ---------------------------------------------------------- */

static void sess_free(struct smtp_session *s)
{
	struct smtp_server *srv = s->srv;

	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	sess_reset_txn(s);
	if (s->counted)
		conn_limit_release(srv->lim.conns, (const struct sockaddr *)&s->peer, s->pol.trusted);
	smtp_trace_end(&s->trace);
	tls_conn_free(s->tls);
	free(s->user);
	free(s->out);
	free(s->pend);
	free(s);
}

/* Shut the socket so in-flight ops complete, then free once they have. */
static void sess_close(struct smtp_session *s)
{
	if (s->state != SESS_DEAD) {
		s->state = SESS_DEAD;
		sess_trace(s, SMTP_TRACE_CONN, SMTP_TRACE_EV_CLOSE, "closed", 6);
		shutdown(s->fd, SHUT_RDWR);
		/* the client's slot is free once the socket is, not when the
		 * last completion drains */
		if (s->counted) {
			conn_limit_release(s->srv->lim.conns, (const struct sockaddr *)&s->peer, s->pol.trusted);
			s->counted = false;
		}
		if (s->timer_armed) {
			/* The cancel's own completion is not tracked: it needs no owner. */
			struct io_uring_sqe *sqe = loop_sqe(s->srv->loop, NULL);
			io_uring_prep_timeout_remove(sqe, (__u64)(uintptr_t)&s->timer_op, 0);
			io_uring_sqe_set_data(sqe, NULL);
		}
	}
	if (s->ops == 0) {
		close(s->fd);
		sess_free(s);
	}
}

/* ---- commands ---------------------------------------------------------- */

static bool sess_error(struct smtp_session *s)
{
	if (++s->errors >= s->srv->lim.max_errors) {
		sess_reply(s, "421 4.7.0 %s Error: too many errors", s->srv->lim.host_name);
		s->state = SESS_CLOSING;
		return false;
	}
	return true;
}

static void cmd_ehlo(struct smtp_session *s, const struct smtp_cmd *c, bool esmtp)
{
	const struct smtp_server_limits *lim = &s->srv->lim;
	size_t n = c->arg_len < sizeof(s->helo) - 1 ? c->arg_len : sizeof(s->helo) - 1;

	memcpy(s->helo, c->arg, n);
	s->helo[n] = 0;
	s->esmtp = esmtp;
	sess_reset_txn(s);
	if (!esmtp) {
		sess_reply(s, "250 %s", lim->host_name);
		return;
	}
	sess_reply(s, "250-%s", lim->host_name);
	sess_reply(s, "250-PIPELINING");
	if (s->max_size == UINT64_MAX)
		sess_reply(s, "250-SIZE");
	else
		sess_reply(s, "250-SIZE %llu", (unsigned long long)s->max_size);
	sess_reply(s, "250-8BITMIME");
	sess_reply(s, "250-DSN");          /* RFC 3461: NOTIFY, ORCPT, RET, ENVID are kept */
	sess_reply(s, "250-SMTPUTF8");
	sess_reply(s, "250-CHUNKING");
	if (lim->tls && !s->tls && !s->pol.no_starttls)
		sess_reply(s, "250-STARTTLS");
	if (!s->user && s->srv->hooks.auth_allowed && s->srv->hooks.auth_allowed(s->srv->ctx, s, s->tls != NULL))
		sess_reply(s, "250-AUTH PLAIN LOGIN");
	sess_reply(s, "250 ENHANCEDSTATUSCODES");
}

static void cmd_starttls(struct smtp_session *s)
{
	if (!s->srv->lim.tls || s->pol.no_starttls) {
		sess_reply(s, "502 5.5.1 Error: TLS not available");
		sess_error(s);
		return;
	}
	if (s->tls) {
		sess_reply(s, "503 5.5.1 Error: TLS already active");
		sess_error(s);
		return;
	}
	sess_reply(s, "220 2.0.0 Ready to start TLS");
	s->starttls_after_flush = true;
}

/* ---- AUTH (RFC 4954: PLAIN, RFC 4616; LOGIN) ---------------------------- */

/* Decode base64 text into out (NUL-terminated); -1 when it is not base64. */
static int b64_decode(const char *in, size_t n, char *out, size_t cap, size_t *out_len)
{
	unsigned char tmp[1024];
	int len;

	while (n && (in[n - 1] == ' ' || in[n - 1] == '\r'))
		n--;
	if (n % 4 || n / 4 * 3 >= sizeof(tmp) || n / 4 * 3 >= cap)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!((in[i] >= 'A' && in[i] <= 'Z') || (in[i] >= 'a' && in[i] <= 'z') || (in[i] >= '0' && in[i] <= '9') ||
		      in[i] == '+' || in[i] == '/' || (in[i] == '=' && i >= n - 2)))
			return -1;
	len = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)n);
	if (len < 0)
		return -1;
	len -= (n && in[n - 1] == '=') + (n > 1 && in[n - 2] == '=');
	memcpy(out, tmp, (size_t)len);
	out[len] = 0;
	*out_len = (size_t)len;
	return 0;
}

/* Hand the credentials to the checker; the session reads nothing more
 * until smtp_session_auth_done(). */
static void auth_finish(struct smtp_session *s, const char *user, const char *pass)
{
	if (user != s->auth_user)
		snprintf(s->auth_user, sizeof(s->auth_user), "%.255s", user);
	s->auth_step = AUTH_NONE;
	s->state = SESS_WAIT_AUTH;
	s->ops++; /* the check keeps the session alive */
	s->srv->hooks.auth_start(s->srv->ctx, s, s->auth_user, pass);
}

void smtp_session_auth_done(struct smtp_session *s, int result)
{
	s->ops--;
	if (s->state == SESS_DEAD) {
		sess_close(s);
		return;
	}
	s->state = SESS_READY;
	if (result == 0) {
		free(s->user);
		s->user = strdup(s->auth_user);
		/* an authenticated client injects: the listener's limits, or
		 * its named source's */
		s->max_size = s->auth_max_size ? s->auth_max_size : s->srv->lim.max_message_size;
		if (s->auth_limits) {
			s->pol.max_rcpts = s->auth_max_rcpts ? s->auth_max_rcpts : s->srv->lim.max_rcpts;
			s->pol.command_timeout_ms = s->auth_command_ms ? s->auth_command_ms
								       : s->srv->lim.command_timeout_ms;
			s->pol.data_timeout_ms = s->auth_data_ms ? s->auth_data_ms : s->srv->lim.data_timeout_ms;
		}
		s->end_by = 0;
		sess_reply(s, "235 2.7.0 Authentication successful");
	} else if (result == 2) {
		sess_reply(s, "454 4.7.0 Too many failed authentication attempts, try again later");
		s->state = SESS_CLOSING;
	} else {
		sess_reply(s, "535 5.7.8 Authentication credentials invalid");
		sess_error(s);
	}
	explicit_bzero(s->auth_user, sizeof(s->auth_user));
	sess_touch(s);
	if (!s->in_pump)
		sess_pump(s);
}

bool smtp_session_trusted(const struct smtp_session *s)
{
	return s->pol.trusted || s->user;
}

/* PLAIN: authzid NUL authcid NUL passwd (the authzid must be empty or the same). */
static void auth_plain(struct smtp_session *s, const char *b64, size_t n)
{
	char buf[800];
	size_t len;
	const char *z1, *z2;

	if (b64_decode(b64, n, buf, sizeof(buf), &len) < 0 || !(z1 = memchr(buf, 0, len)) ||
	    !(z2 = memchr(z1 + 1, 0, len - (size_t)(z1 + 1 - buf)))) {
		s->auth_step = AUTH_NONE;
		sess_reply(s, "501 5.5.2 Error: cannot decode the AUTH PLAIN response");
		sess_error(s);
		return;
	}
	if (z1 != buf && strcmp(buf, z1 + 1) != 0) {
		s->auth_step = AUTH_NONE;
		sess_reply(s, "535 5.7.8 Authorization identity not allowed");
		sess_error(s);
		return;
	}
	auth_finish(s, z1 + 1, z2 + 1);
}

/* A line while an AUTH exchange waits for the client. */
static void auth_continue(struct smtp_session *s, const char *line, size_t len)
{
	char buf[600];
	size_t n;

	if (len == 1 && line[0] == '*') {
		s->auth_step = AUTH_NONE;
		sess_reply(s, "501 5.7.0 Authentication cancelled");
		return;
	}
	if (s->auth_step == AUTH_PLAIN_WAIT) {
		auth_plain(s, line, len);
		return;
	}
	if (b64_decode(line, len, buf, sizeof(buf), &n) < 0 || memchr(buf, 0, n)) {
		s->auth_step = AUTH_NONE;
		sess_reply(s, "501 5.5.2 Error: cannot decode the AUTH LOGIN response");
		sess_error(s);
		return;
	}
	if (s->auth_step == AUTH_LOGIN_USER) {
		snprintf(s->auth_user, sizeof(s->auth_user), "%.255s", buf);
		s->auth_step = AUTH_LOGIN_PASS;
		sess_reply(s, "334 UGFzc3dvcmQ6");
		return;
	}
	auth_finish(s, s->auth_user, buf);
}

static void cmd_auth(struct smtp_session *s, const struct smtp_cmd *c)
{
	const char *a = c->arg, *sp;
	size_t n = c->arg_len, mech;

	if (!s->srv->hooks.auth_allowed || !s->srv->hooks.auth_start ||
	    !s->srv->hooks.auth_allowed(s->srv->ctx, s, s->tls != NULL)) {
		sess_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
		sess_error(s);
		return;
	}
	if (s->user || s->has_mail) {
		sess_reply(s, "503 5.5.1 Error: %s", s->user ? "already authenticated" : "AUTH not allowed during a transaction");
		sess_error(s);
		return;
	}
	sp = memchr(a, ' ', n);
	mech = sp ? (size_t)(sp - a) : n;
	if (mech == 5 && !strncasecmp(a, "PLAIN", 5)) {
		if (sp && n - mech - 1 > 0 && !(n - mech - 1 == 1 && sp[1] == '=')) {
			auth_plain(s, sp + 1, n - mech - 1);
		} else {
			s->auth_step = AUTH_PLAIN_WAIT;
			sess_reply(s, "334 ");
		}
	} else if (mech == 5 && !strncasecmp(a, "LOGIN", 5)) {
		s->auth_step = AUTH_LOGIN_USER;
		if (sp && n - mech - 1 > 0) {
			auth_continue(s, sp + 1, n - mech - 1);
		} else {
			sess_reply(s, "334 VXNlcm5hbWU6");
		}
	} else {
		sess_reply(s, "504 5.5.4 Unrecognized authentication type");
		sess_error(s);
	}
}

static void cmd_mail(struct smtp_session *s, const struct smtp_cmd *c)
{
	if (!s->helo[0]) {
		sess_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		sess_error(s);
		return;
	}
	if (s->has_mail) {
		sess_reply(s, "503 5.5.1 Error: nested MAIL command");
		sess_error(s);
		return;
	}
	if (c->path_len && smtp_mailbox_check(c->path, c->path_len, c->smtputf8) != 0) {
		sess_reply(s, "501 5.1.7 Bad sender address syntax");
		sess_error(s);
		return;
	}
	if (c->has_size && c->size > s->max_size) {
		sess_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	s->env = calloc(1, sizeof(*s->env));
	if (!s->env || !(s->env->sender = strndup(c->path, c->path_len))) {
		smtp_envelope_free(s->env);
		s->env = NULL;
		sess_reply(s, "451 4.3.0 Error: out of memory");
		return;
	}
	memcpy(s->env->client_ip, s->peer_ip, sizeof(s->env->client_ip));
	memcpy(s->env->helo, s->helo, sizeof(s->env->helo));
	s->env->smtputf8 = c->smtputf8;
	s->env->xverp = c->xverp;
	s->env->ret = (uint8_t)c->ret;
	if (c->envid)
		smtp_xtext_decode(c->envid, c->envid_len, s->env->envid, sizeof(s->env->envid)); /* checked by the parser */
	s->env->eightbit = c->body == SMTP_BODY_8BITMIME;
	s->has_mail = true;
	sess_reply(s, "250 2.1.0 Ok");
}

/* Room for one more recipient in each of env's parallel arrays. */
static bool rcpt_grow(struct smtp_envelope *env)
{
	size_t n = env->n_rcpts + 1;
	char **rcpts = realloc(env->rcpts, n * sizeof(*rcpts));
	uint8_t *notify;
	char **orcpt;

	if (!rcpts)
		return false;
	env->rcpts = rcpts;
	if (!(notify = realloc(env->notify, n * sizeof(*notify))))
		return false;
	env->notify = notify;
	if (!(orcpt = realloc(env->orcpt, n * sizeof(*orcpt))))
		return false;
	env->orcpt = orcpt;
	return true;
}

static void cmd_rcpt(struct smtp_session *s, const struct smtp_cmd *c)
{
	char reply[512];
	char *addr, *orcpt = NULL;

	if (!s->has_mail) {
		sess_reply(s, "503 5.5.1 Error: need MAIL command");
		sess_error(s);
		return;
	}
	if (c->path_len == 0 || smtp_mailbox_check(c->path, c->path_len, s->env->smtputf8) != 0) {
		sess_reply(s, "501 5.1.3 Bad recipient address syntax");
		sess_error(s);
		return;
	}
	if (s->env->n_rcpts >= s->pol.max_rcpts) {
		sess_reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	addr = strndup(c->path, c->path_len);
	if (!addr) {
		sess_reply(s, "451 4.3.0 Error: out of memory");
		return;
	}
	if (!s->srv->hooks.rcpt(s->srv->ctx, s, addr, reply, sizeof(reply))) {
		free(addr);
		sess_reply(s, "%s", reply);
		return;
	}
	if (c->orcpt) {
		char tmp[SMTP_MAX_ORCPT + 1];
		ssize_t n = smtp_orcpt_decode(c->orcpt, c->orcpt_len, tmp, sizeof(tmp)); /* checked by the parser */

		orcpt = n < 0 ? NULL : strndup(tmp, (size_t)n);
		if (!orcpt) {
			free(addr);
			sess_reply(s, "451 4.3.0 Error: out of memory");
			return;
		}
	}
	if (!rcpt_grow(s->env)) {
		free(addr);
		free(orcpt);
		sess_reply(s, "451 4.3.0 Error: out of memory");
		return;
	}
	s->env->rcpts[s->env->n_rcpts] = addr;
	s->env->notify[s->env->n_rcpts] = (uint8_t)c->notify;
	s->env->orcpt[s->env->n_rcpts] = orcpt;
	s->env->n_rcpts++;
	sess_reply(s, "%s", reply);
}

/* DATA held a bare CR or LF and the session does not normalise them: the
 * message is refused once its end is read. */
static bool bare_refused(const struct smtp_session *s)
{
	return !s->unstuff.normalize && (s->unstuff.bare_cr || s->unstuff.bare_lf);
}

/* Drop what was buffered: the message will be refused, the rest is read
 * and discarded. */
static void body_drop(struct smtp_session *s)
{
	free(s->body);
	s->body = NULL;
	s->body_len = s->body_cap = 0;
}

static void body_append(struct smtp_session *s, const char *p, size_t n)
{
	if (s->body_too_big || bare_refused(s))
		return;
	if (s->max_size != UINT64_MAX && s->body_len + n > s->max_size + 4096) {
		/* The rest is read and dropped: no need to hold what came so far. */
		s->body_too_big = true;
		body_drop(s);
		return;
	}
	if (s->body_len + n > s->body_cap) {
		size_t cap = s->body_cap ? s->body_cap : BODY_INIT;
		char *b;

		while (cap < s->body_len + n)
			cap *= 2;
		b = realloc(s->body, cap);
		if (!b) {
			s->body_too_big = true;
			return;
		}
		s->body = b;
		s->body_cap = cap;
	}
	memcpy(s->body + s->body_len, p, n);
	s->body_len += n;
}

/* RFC 5321 4.4: the trace header goes first, before the client's bytes. */
static void body_start(struct smtp_session *s)
{
	char hdr[1024], date[64], using[256] = "", proto[16];
	bool tls = s->tls && tls_established(s->tls);
	time_t now = time(NULL);
	struct tm tm;
	int n;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	/* RFC 3848 / RFC 6531 with-protocols: S for TLS, A for AUTH */
	snprintf(proto, sizeof(proto), "%s%s%s", s->env->smtputf8 ? "UTF8SMTP" : s->esmtp ? "ESMTP" : "SMTP",
		 (s->env->smtputf8 || s->esmtp) && tls ? "S" : "", (s->env->smtputf8 || s->esmtp) && s->user ? "A" : "");
	if (tls) {
		size_t k;

		memcpy(using, "\t(", 2);
		tls_trace_comment(s->tls, using + 2, sizeof(using) - 8);
		k = strlen(using);
		memcpy(using + k, ")\r\n", 4);
	}
	n = snprintf(hdr, sizeof(hdr), "Received: from %s ([%s])\r\n%s\tby %s (Salvo) with %s;\r\n\t%s\r\n",
		     s->helo, s->peer_ip, using, s->srv->lim.host_name, proto, date);
	memset(&s->unstuff, 0, sizeof(s->unstuff));
	if (n > 0 && (size_t)n < sizeof(hdr))
		body_append(s, hdr, (size_t)n);
}

static void cmd_data(struct smtp_session *s)
{
	if (!s->has_mail) {
		sess_reply(s, "503 5.5.1 Error: need MAIL command");
		sess_error(s);
		return;
	}
	if (s->bdat) {
		sess_reply(s, "503 5.5.1 Error: DATA after BDAT");
		sess_error(s);
		return;
	}
	if (!s->env->n_rcpts) {
		sess_reply(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	sess_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	s->state = SESS_DATA;
	body_start(s);
	if (s->line_bare_lf)
		dot_unstuff_start_midline(&s->unstuff); /* no CRLF yet: "." now is not an end */
	s->unstuff.normalize = s->srv->hooks.normalize_bare_newlines &&
			       s->srv->hooks.normalize_bare_newlines(s->srv->ctx, s);
}

static void bdat_chunk_done(struct smtp_session *s);

/* BDAT chunk-size [LAST]: the chunk is judged now and answered once it has
 * been read (bdat_chunk_done). */
static void cmd_bdat(struct smtp_session *s, const struct smtp_cmd *c)
{
	uint64_t max = s->srv->lim.max_message_size;

	s->chunk_left = c->size;
	s->chunk_last = c->bdat_last;
	s->chunk_take = false;
	s->chunk_refusal = NULL;
	s->state = SESS_BDAT;
	if (!s->has_mail)
		s->chunk_refusal = "503 5.5.1 Error: need MAIL command";
	else if (!s->env->n_rcpts)
		s->chunk_refusal = "503 5.5.1 Error: need RCPT command";
	else if (c->size > max || s->bdat_bytes > max - c->size)
		s->chunk_refusal = "552 5.3.4 Error: message too big";
	if (!s->chunk_refusal) {
		if (!s->bdat) {
			s->bdat = true;    /* the message starts with this chunk */
			body_start(s);
		}
		s->chunk_take = true;
		s->bdat_bytes += c->size;
	}
	if (!c->size)
		bdat_chunk_done(s);        /* nothing to read: answer now */
}



static void sess_command(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_cmd c;
	int err = smtp_cmd_parse(line, len, &c);

	if (err == SMTP_CMD_EUNKNOWN) {
		sess_reply(s, "500 5.5.2 Error: command not recognized");
		sess_error(s);
		return;
	}
	if (err != SMTP_CMD_OK && c.verb == SMTP_VERB_BDAT) {
		/* Its chunk's length is unknown: what follows cannot be told
		 * from commands, so nothing after it is read. */
		sess_reply(s, "501 5.5.4 Syntax: BDAT chunk-size [LAST]; closing");
		s->state = SESS_CLOSING;
		return;
	}
	if (err != SMTP_CMD_OK) {
		const char *code = err == SMTP_CMD_EPARAM ? "555 5.5.4" :
				   err == SMTP_CMD_EPATH ? (c.verb == SMTP_VERB_MAIL ? "501 5.1.7" : "501 5.1.3") :
				   "501 5.5.4";
		sess_reply(s, "%s Syntax error: %s", code, smtp_cmd_strerror(err));
		sess_error(s);
		return;
	}
	switch (c.verb) {
	case SMTP_VERB_EHLO: cmd_ehlo(s, &c, true); break;
	case SMTP_VERB_HELO: cmd_ehlo(s, &c, false); break;
	case SMTP_VERB_MAIL: cmd_mail(s, &c); break;
	case SMTP_VERB_RCPT: cmd_rcpt(s, &c); break;
	case SMTP_VERB_DATA: cmd_data(s); break;
	case SMTP_VERB_BDAT: cmd_bdat(s, &c); break;
	case SMTP_VERB_RSET:
		sess_reset_txn(s);
		sess_reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_VERB_NOOP: sess_reply(s, "250 2.0.0 Ok"); break;
	case SMTP_VERB_QUIT:
		sess_reply(s, "221 2.0.0 Bye");
		s->state = SESS_CLOSING;
		break;
	case SMTP_VERB_VRFY: sess_reply(s, "252 2.0.0 Cannot VRFY user; try RCPT"); break;
	case SMTP_VERB_STARTTLS: cmd_starttls(s); break;
	case SMTP_VERB_AUTH: cmd_auth(s, &c); break;
	case SMTP_VERB_HELP: sess_reply(s, "214 2.0.0 See RFC 5321"); break;
	default:
		sess_reply(s, "502 5.5.1 Error: command not implemented");
		sess_error(s);
		break;
	}
}

static void sess_submit(struct smtp_session *s)
{
	struct smtp_envelope *env = s->env;
	char *body = s->body;
	size_t len = s->body_len;

	if (s->body_too_big) {
		sess_reply(s, "552 5.3.4 Error: message too big");
		sess_reset_txn(s);
		s->state = SESS_READY;
		return;
	}
	if (bare_refused(s)) {
		/* RFC 5321 2.3.8; the reply Postfix gives with smtpd_forbid_bare_newline */
		sess_reply(s, "550 5.5.2 Error: bare <%s> received", s->unstuff.bare_lf ? "LF" : "CR");
		sess_reset_txn(s);
		s->state = SESS_READY;
		return;
	}
	s->env = NULL;
	s->body = NULL;
	s->body_len = s->body_cap = 0;
	s->has_mail = false;
	s->bdat = false;
	s->bdat_bytes = 0;
	s->state = SESS_WAIT_COMMIT;
	s->ops++; /* the submission keeps the session alive */
	s->srv->hooks.submit(s->srv->ctx, s, env, body, len);
}

/* The current chunk has been read: answer it. */
static void bdat_chunk_done(struct smtp_session *s)
{
	s->state = SESS_READY;
	if (s->chunk_refusal) {
		/* RFC 3030 2: a failed chunk fails the transaction */
		sess_reply(s, "%s", s->chunk_refusal);
		if (s->chunk_refusal[0] == '5' && s->chunk_refusal[2] == '3')
			sess_error(s);     /* 503: a client out of step */
		sess_reset_txn(s);
		return;
	}
	if (s->chunk_last) {
		sess_submit(s);
		return;
	}
	sess_reply(s, "250 2.0.0 Ok: %llu octets received", (unsigned long long)s->bdat_bytes);
}

void smtp_session_submitted(struct smtp_session *s, const char *reply)
{
	s->ops--;
	if (s->state == SESS_DEAD) {
		sess_close(s);
		return;
	}
	sess_reply(s, "%s", reply);
	s->state = SESS_READY;
	sess_touch(s);
	if (!s->in_pump)
		sess_pump(s);
}

const struct sockaddr *smtp_session_peer(const struct smtp_session *s)
{
	return (const struct sockaddr *)&s->peer;
}

const struct sockaddr *smtp_session_local(const struct smtp_session *s, struct sockaddr_storage *out)
{
	socklen_t len = sizeof(*out);

	if (s->fd < 0 || getsockname(s->fd, (struct sockaddr *)out, &len) < 0)
		return NULL;
	return (const struct sockaddr *)out;
}

const char *smtp_session_user(const struct smtp_session *s)
{
	return s->user;
}

size_t smtp_session_listener(const struct smtp_session *s)
{
	return s->pol.listener;
}

void smtp_session_set_auth_max_size(struct smtp_session *s, uint64_t max)
{
	s->auth_max_size = max;
}

void smtp_session_set_auth_limits(struct smtp_session *s, unsigned max_rcpts, uint64_t command_timeout_ms,
				  uint64_t data_timeout_ms)
{
	s->auth_limits = true;
	s->auth_max_rcpts = max_rcpts;
	s->auth_command_ms = command_timeout_ms;
	s->auth_data_ms = data_timeout_ms;
}

const char *smtp_session_tls(const struct smtp_session *s)
{
	return s->tls && tls_established(s->tls) ? tls_describe(s->tls) : NULL;
}

size_t smtp_server_session_count(const struct smtp_server *srv)
{
	size_t n = 0;

	for (const struct smtp_session *s = srv->sessions; s; s = s->next)
		n++;
	return n;
}

/* ---- input ------------------------------------------------------------- */

static void sess_consume(struct smtp_session *s, size_t n)
{
	memmove(s->in, s->in + n, s->in_len - n);
	s->in_len -= n;
}

/* Parse what is buffered, answer it, and keep reading when there is room. */
static void sess_pump(struct smtp_session *s)
{
	size_t off = 0;

	s->in_pump = true;

	while (off < s->in_len && s->pend_len < PEND_MAX && !s->starttls_after_flush) {
		if (s->state == SESS_DATA) {
			size_t out_len = 0;
			bool done = false;
			size_t used;
			char tmp[2 * 4096 + 2];
			size_t chunk = s->in_len - off < 4096 ? s->in_len - off : 4096;

			used = dot_unstuff_feed(&s->unstuff, s->in + off, chunk, tmp, &out_len, &done);
			sess_trace(s, SMTP_TRACE_DATA, SMTP_TRACE_EV_DATA, s->in + off, used);
			body_append(s, tmp, out_len);
			if (bare_refused(s) && s->body)
				body_drop(s);      /* refused at the end; nothing kept */
			off += used;
			if (done)
				sess_submit(s);
			continue;
		}
		if (s->state == SESS_BDAT) {
			size_t n = s->in_len - off;

			if (n > s->chunk_left)
				n = (size_t)s->chunk_left;
			sess_trace(s, SMTP_TRACE_DATA, SMTP_TRACE_EV_DATA, s->in + off, n);
			if (s->chunk_take)
				body_append(s, s->in + off, n);
			off += n;
			s->chunk_left -= n;
			if (!s->chunk_left)
				bdat_chunk_done(s);
			continue;
		}
		if (s->state != SESS_READY)
			break;
		size_t line_len;
		ssize_t n = smtp_line_find(s->in + off, s->in_len - off, SMTP_MAX_DSN_CMD_LINE, &line_len);

		if (n == 0)
			break;
		if (n < 0) {
			/* Over-long line: answer once and drop bytes up to its LF. */
			if (!s->discarding) {
				sess_reply(s, "500 5.5.6 Error: line too long");
				if (!sess_error(s))
					break;
			}
			const char *lf = memchr(s->in + off, '\n', s->in_len - off);
			if (!lf) {
				s->discarding = true;
				off = s->in_len;
				break;
			}
			off = (size_t)(lf - s->in) + 1;
			s->discarding = false;
			continue;
		}
		if (s->discarding) {
			s->discarding = false;
			off += (size_t)n;
			continue;
		}
		s->line_bare_lf = (size_t)n == line_len + 1;
		sess_trace(s, SMTP_TRACE_CMDS, s->auth_step != AUTH_NONE ? SMTP_TRACE_EV_SECRET : SMTP_TRACE_EV_CMD,
			   s->in + off, line_len);
		if (s->auth_step != AUTH_NONE)
			auth_continue(s, s->in + off, line_len);
		else
			sess_command(s, s->in + off, line_len);
		off += (size_t)n;
	}
	/* RFC 3207: nothing sent before the TLS handshake may be acted on after it */
	if (s->starttls_after_flush)
		off = s->in_len;
	s->in_pump = false;
	if (off)
		sess_consume(s, off);
	sess_flush(s);
	if (s->state == SESS_CLOSING) {
		if (!s->send_armed)
			sess_close(s);
		return;
	}
	/* Read more only when a whole provided buffer fits: backpressure. */
	if (!s->recv_armed && s->state != SESS_DEAD && IN_CAP - s->in_len >= s->srv->loop->buf_size &&
	    s->pend_len < PEND_MAX && !s->starttls_after_flush) {
		s->ops++;
		s->recv_armed = true;
		loop_recv(s->srv->loop, &s->recv_op, s->fd);
	}
}

/* Handshake, then plaintext into s->in while there is room. -1 when the
 * session was closed (TLS failure or the peer's close_notify). */
static int sess_tls_input(struct smtp_session *s)
{
	int hs = tls_handshake(s->tls);

	if (hs < 0) {
		fprintf(stderr, "salvod: smtp session from %s: %s\n", s->peer_ip, tls_error(s->tls));
		/* let the alert go out, then close */
		sess_flush(s);
		s->state = SESS_CLOSING;
		if (!s->send_armed)
			sess_close(s);
		return -1;
	}
	if (hs == 1 && smtp_trace_on(&s->trace, SMTP_TRACE_CONN | SMTP_TRACE_TLS) && !s->trace.tls_noted) {
		const char *d = tls_describe(s->tls);

		s->trace.tls_noted = true;
		smtp_trace_event(&s->trace, SMTP_TRACE_EV_TLS, d, strlen(d));
	}
	if (hs == 1 && !s->greeted) {
		s->greeted = true;
		sess_reply(s, "220 %s ESMTP Salvo", s->srv->lim.host_name);
	}
	while (hs == 1 && s->in_len < IN_CAP) {
		ssize_t n = tls_read(s->tls, s->in + s->in_len, IN_CAP - s->in_len);

		if (n < 0) {
			s->state = SESS_CLOSING;
			sess_flush(s);
			if (!s->send_armed)
				sess_close(s);
			return -1;
		}
		if (n == 0)
			break;
		s->in_len += (size_t)n;
	}
	sess_flush(s);
	return 0;
}

static void sess_recv_done(struct loop_op *op, int res, unsigned flags)
{
	struct smtp_session *s = container_of(op, struct smtp_session, recv_op);
	struct loop *l = s->srv->loop;

	s->ops--;
	s->recv_armed = false;
	if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
		if (s->state != SESS_DEAD && s->tls) {
			if (tls_feed(s->tls, loop_buf_data(l, flags), (size_t)res) < 0)
				res = -ENOMEM;
		} else if (s->state != SESS_DEAD) {
			memcpy(s->in + s->in_len, loop_buf_data(l, flags), (size_t)res);
			s->in_len += (size_t)res;
		}
		loop_buf_return(l, flags);
	} else if (flags & IORING_CQE_F_BUFFER) {
		loop_buf_return(l, flags);
	}
	if (s->state == SESS_DEAD) {
		sess_close(s);
		return;
	}
	if (res == -ENOBUFS) {
		/* Every provided buffer is in use: try again on the next turn. */
		s->ops++;
		s->recv_armed = true;
		loop_recv(l, &s->recv_op, s->fd);
		return;
	}
	if (res <= 0) {
		if (s->state == SESS_DATA)
			fprintf(stderr, "salvod: smtp session from %s: connection lost during DATA\n", s->peer_ip);
		/* A submission in flight keeps the session (ops) until it completes. */
		sess_close(s);
		return;
	}
	sess_touch(s);
	if (s->tls && sess_tls_input(s) < 0)
		return;
	sess_pump(s);
}

/* ---- listeners --------------------------------------------------------- */

static void listener_drop(struct listener *ls)
{
	struct smtp_server *srv = ls->srv;

	if (--ls->closing_ops)
		return;
	for (struct listener **p = &srv->closing; *p; p = &(*p)->next_closing)
		if (*p == ls) {
			*p = ls->next_closing;
			break;
		}
	close(ls->fd);
	free(ls);
}

static void listener_arm(struct listener *ls)
{
	if (ls->closing) {
		listener_drop(ls); /* its armed op has completed */
		return;
	}
	ls->paused = false;
	ls->peerlen = sizeof(ls->peer);
	loop_accept(ls->srv->loop, &ls->accept_op, ls->fd, (struct sockaddr *)&ls->peer, &ls->peerlen);
}

static void peer_text(const struct sockaddr_storage *sa, char *out, size_t cap)
{
	if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out, (socklen_t)cap);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, out, (socklen_t)cap);
	} else {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
	}
}

static void listener_pause_done(struct loop_op *op, int res, unsigned flags)
{
	listener_arm(container_of(op, struct listener, pause_op));
}


/* A client refused as it connects: the reply queued (replied) goes out,
 * then the session closes; the listener takes the next connection. */
static void refuse_at_accept(struct smtp_session *s, struct listener *ls, bool replied)
{
	s->state = SESS_CLOSING;
	if (replied) {
		sess_touch(s);
		sess_pump(s);
	} else {
		sess_close(s);
	}
	listener_arm(ls);
}
static void listener_accept_done(struct loop_op *op, int res, unsigned flags)
{
	struct listener *ls = container_of(op, struct listener, accept_op);
	struct smtp_server *srv = ls->srv;
	struct smtp_session *s;

	if (res < 0) {
		if (res == -EINTR || res == -ECONNABORTED) {
			listener_arm(ls);
			return;
		}
		if (ls->closing) {
			listener_drop(ls);
			return;
		}
		/* Out of descriptors or memory: retrying at once would spin. */
		fprintf(stderr, "salvod: accept on %s: %s; pausing 100 ms\n", ls->text, strerror(-res));
		ls->paused = true;
		loop_timeout(srv->loop, &ls->pause_op, 100);
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		close(res);
		listener_arm(ls);
		return;
	}
	s->srv = srv;
	s->fd = res;
	s->state = SESS_READY;
	memcpy(&s->peer, &ls->peer, sizeof(s->peer));
	peer_text(&s->peer, s->peer_ip, sizeof(s->peer_ip));
	loop_op_init(&s->recv_op, sess_recv_done);
	loop_op_init(&s->send_op, sess_send_done);
	loop_op_init(&s->timer_op, sess_timer_done);
	s->pend_cap = s->out_cap = 1024;
	s->pend = malloc(s->pend_cap);
	s->out = malloc(s->out_cap);
	if (!s->pend || !s->out) {
		free(s->pend);
		free(s->out);
		free(s);
		close(res);
		listener_arm(ls);
		return;
	}
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	int one = 1;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->pol.max_message_size = srv->lim.max_message_size;
	s->pol.max_rcpts = srv->lim.max_rcpts;
	s->pol.command_timeout_ms = srv->lim.command_timeout_ms;
	s->pol.data_timeout_ms = srv->lim.data_timeout_ms;
	s->pol.listener = ls->index;
	if (srv->hooks.peer_policy)
		srv->hooks.peer_policy(srv->ctx, (const struct sockaddr *)&s->peer, &s->pol);
	s->max_size = s->pol.max_message_size;
	if (srv->hooks.trace_start) {
		srv->hooks.trace_start(srv->ctx, (const struct sockaddr *)&s->peer, &s->trace);
		s->trace.fd = s->fd;
		s->trace.inbound = true;
		sess_trace(s, SMTP_TRACE_CONN, SMTP_TRACE_EV_CONNECT, ls->text, strlen(ls->text));
	}
	if (s->pol.max_session_ms)
		s->end_by = s->pol_end_by = loop_now_ms() + s->pol.max_session_ms;
	if (srv->lim.conns) {
		enum conn_limit_verdict v = conn_limit_acquire(srv->lim.conns, (const struct sockaddr *)&s->peer,
							       s->pol.trusted, s->pol.max_per_ip);

		s->counted = v == CONN_OK;
		if (v != CONN_OK) {
			/* Told why, then closed once the reply is out. */
			sess_reply(s, "421 4.7.0 %s Too many connections%s, try again later", srv->lim.host_name,
				   v == CONN_TOO_MANY_FROM_IP ? " from your address" : "");
			refuse_at_accept(s, ls, true);
			return;
		}
	}
	if (s->pol.refuse) {
		/* a source without SMTP service (told in clear on a plain listener) */
		if (!ls->implicit_tls)
			sess_reply(s, "554 5.7.1 %s No SMTP service for your address", srv->lim.host_name);
		refuse_at_accept(s, ls, !ls->implicit_tls);
		return;
	}
	if (ls->implicit_tls) {
		/* the banner follows the handshake (sess_tls_input) */
		if (!srv->lim.tls || !(s->tls = tls_conn_new(srv->lim.tls, true, NULL))) {
			s->state = SESS_CLOSING;
			sess_close(s);
			listener_arm(ls);
			return;
		}
		sess_touch(s);
		sess_pump(s);
		listener_arm(ls);
		return;
	}
	s->greeted = true;
	sess_reply(s, "220 %s ESMTP Salvo", srv->lim.host_name);
	sess_touch(s);
	sess_pump(s);
	listener_arm(ls);
}

static int listener_open(struct listener *ls, const struct config_addr *a)
{
	int one = 1;
	int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->sa, a->salen) < 0 || listen(fd, 1024) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	ls->fd = fd;
	snprintf(ls->text, sizeof(ls->text), "%s", a->text);
	return 0;
}

int smtp_server_start(struct smtp_server **out, struct loop *l,
		      const struct config_addr *addrs, size_t n_addrs,
		      const struct config_addr *tls_addrs, size_t n_tls_addrs,
		      const struct smtp_server_limits *limits,
		      const struct smtp_server_hooks *hooks, void *ctx,
		      char *err, size_t errlen)
{
	struct smtp_server *srv = calloc(1, sizeof(*srv));

	if (!srv)
		return -ENOMEM;
	srv->listeners = calloc(n_addrs + n_tls_addrs + 1, sizeof(*srv->listeners));
	for (size_t i = 0; srv->listeners && i < n_addrs + n_tls_addrs; i++)
		if (!(srv->listeners[i] = calloc(1, sizeof(**srv->listeners)))) {
			while (i--)
				free(srv->listeners[i]);
			free(srv->listeners);
			srv->listeners = NULL;
		}
	if (!srv->listeners) {
		free(srv);
		return -ENOMEM;
	}
	srv->loop = l;
	srv->lim = *limits;
	srv->hooks = *hooks;
	srv->ctx = ctx;
	for (size_t i = 0; i < n_addrs + n_tls_addrs; i++) {
		struct listener *ls = srv->listeners[i];
		const struct config_addr *a = i < n_addrs ? &addrs[i] : &tls_addrs[i - n_addrs];
		int ret = listener_open(ls, a);

		ls->implicit_tls = i >= n_addrs;
		ls->index = i;
		if (ret < 0) {
			snprintf(err, errlen, "cannot listen on %s: %s", a->text, strerror(-ret));
			for (size_t j = 0; j < i; j++)
				close(srv->listeners[j]->fd);
			for (size_t j = 0; j < n_addrs + n_tls_addrs; j++)
				free(srv->listeners[j]);
			free(srv->listeners);
			free(srv);
			return ret;
		}
		ls->srv = srv;
		loop_op_init(&ls->accept_op, listener_accept_done);
		loop_op_init(&ls->pause_op, listener_pause_done);
		srv->n_listeners++;
	}
	for (size_t i = 0; i < srv->n_listeners; i++)
		listener_arm(srv->listeners[i]);
	*out = srv;
	return 0;
}

static void listener_cancel_done(struct loop_op *op, int res, unsigned flags)
{
	(void)res;
	(void)flags;
	listener_drop(container_of(op, struct listener, cancel_op));
}

static struct listener *listener_take(struct smtp_server *srv, const char *text, bool implicit_tls)
{
	for (size_t i = 0; i < srv->n_listeners; i++) {
		struct listener *ls = srv->listeners[i];

		if (ls && ls->implicit_tls == implicit_tls && strcmp(ls->text, text) == 0) {
			srv->listeners[i] = NULL;
			return ls;
		}
	}
	return NULL;
}

int smtp_server_listen(struct smtp_server *srv, const struct config_addr *addrs, size_t n_addrs,
		       const struct config_addr *tls_addrs, size_t n_tls_addrs, char *err, size_t errlen)
{
	size_t n = n_addrs + n_tls_addrs, k = 0;
	struct listener **next = calloc(n + 1, sizeof(*next));
	int first = 0;

	if (!next) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const struct config_addr *a = i < n_addrs ? &addrs[i] : &tls_addrs[i - n_addrs];
		bool tls = i >= n_addrs;
		struct listener *ls = listener_take(srv, a->text, tls);
		int ret;

		if (ls) {                  /* unchanged: stays open, nothing refused */
			ls->index = i;
			next[k++] = ls;
			continue;
		}
		if (tls && !srv->lim.tls)
			ret = -EPROTONOSUPPORT; /* implicit TLS without a certificate */
		else if (!(ls = calloc(1, sizeof(*ls))))
			ret = -ENOMEM;
		else
			ret = listener_open(ls, a);
		if (ret < 0) {
			if (!first) {
				first = ret;
				snprintf(err, errlen, "cannot listen on %s: %s", a->text, strerror(-ret));
			}
			free(ls);
			continue;
		}
		ls->srv = srv;
		ls->implicit_tls = tls;
		ls->index = i;
		loop_op_init(&ls->accept_op, listener_accept_done);
		loop_op_init(&ls->pause_op, listener_pause_done);
		listener_arm(ls);
		next[k++] = ls;
	}
	for (size_t i = 0; i < srv->n_listeners; i++) {
		struct listener *ls = srv->listeners[i];

		if (!ls)
			continue;
		/* removed: stop accepting now; freed when its op comes back */
		ls->closing = true;
		ls->closing_ops = 2;
		ls->next_closing = srv->closing;
		srv->closing = ls;
		loop_op_init(&ls->cancel_op, listener_cancel_done);
		loop_cancel(srv->loop, &ls->cancel_op, ls->paused ? &ls->pause_op : &ls->accept_op);
	}
	free(srv->listeners);
	srv->listeners = next;
	srv->n_listeners = k;
	return first;
}

void smtp_server_free(struct smtp_server *srv)
{
	for (size_t i = 0; i < srv->n_listeners; i++) {
		close(srv->listeners[i]->fd);
		free(srv->listeners[i]);
	}
	while (srv->closing) {
		struct listener *ls = srv->closing;

		srv->closing = ls->next_closing;
		close(ls->fd);
		free(ls);
	}
	while (srv->sessions) {
		struct smtp_session *s = srv->sessions;

		srv->sessions = s->next;
		close(s->fd);
		sess_reset_txn(s);
		if (s->counted)
			conn_limit_release(srv->lim.conns, (const struct sockaddr *)&s->peer, s->pol.trusted);
		smtp_trace_end(&s->trace);
		tls_conn_free(s->tls);
		free(s->user);
		free(s->out);
		free(s->pend);
		free(s);
	}
	free(srv->listeners);
	free(srv);
}
