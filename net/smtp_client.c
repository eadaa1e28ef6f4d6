/*
 * smtp_client.c - the outbound SMTP session state machine (see smtp_client.h).
 *
 * A transaction is a list of commands (MAIL, RCPT..., DATA) answered in
 * order. With PIPELINING they go out in one send; without it, one at a time.
 * Replies are matched to commands by position: reply k answers command k.
 * After DATA's 354 the stuffed body goes out, and the final reply applies to
 * every accepted recipient. When the server offers CHUNKING and the owner
 * gave the message in chunk form, "BDAT <size> LAST" and the message take
 * DATA's place as the last command: with PIPELINING the whole transaction is
 * one send and one round trip, and BDAT's reply is the final one.
 *
 * Invariants: at most one send and one recv in flight; `ops` counts those
 * plus the timer and the connect; the client is freed once it is DEAD and
 * ops is zero; hooks.closed() runs exactly once, on entering DEAD.
 */
#include "net/smtp_client.h"
#include "net/smtp_trace.h"
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/loop.h"
#include "net/smtp_cmd.h"
#include "net/smtp_reply.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <strings.h>

#define CLI_IN_CAP (64 * 1024)
#define CLI_CMD_CAP 1024           /* the command buffer between transactions */
#define CLI_INLINE_BODY (64 * 1024) /* a BDAT message up to this goes in the commands' buffer */
#define CLI_TLS_CHUNK (64 * 1024)  /* plaintext handed to TLS at a time */

enum cli_state {
	CLI_CONNECTING,
	CLI_BANNER,
	CLI_EHLO,
	CLI_HELO,
	CLI_STARTTLS,  /* STARTTLS sent, waiting for its 220 */
	CLI_HANDSHAKE, /* TLS handshake in progress */
	CLI_AUTH,      /* AUTH PLAIN, or LOGIN's password, sent: waiting for 235 */
	CLI_AUTH_USER, /* AUTH LOGIN sent: waiting for the 334 that asks the user name */
	CLI_AUTH_PASS, /* the user name sent: waiting for the 334 that asks the password */
	CLI_IDLE,
	CLI_TXN,       /* MAIL/RCPT/DATA replies outstanding */
	CLI_BODY,      /* body sent or sending; waiting for the final reply */
	CLI_RSET,
	CLI_QUIT,
	CLI_DEAD,
};

static const char *const cli_state_name[] = {
	[CLI_CONNECTING] = "connect", [CLI_BANNER] = "banner", [CLI_EHLO] = "EHLO", [CLI_HELO] = "HELO",
	[CLI_STARTTLS] = "STARTTLS", [CLI_HANDSHAKE] = "TLS handshake", [CLI_AUTH] = "AUTH",
	[CLI_AUTH_USER] = "AUTH LOGIN", [CLI_AUTH_PASS] = "AUTH LOGIN", [CLI_IDLE] = "idle",
	[CLI_TXN] = "MAIL/RCPT/DATA", [CLI_BODY] = "end of data", [CLI_RSET] = "RSET", [CLI_QUIT] = "QUIT",
	[CLI_DEAD] = "dead",
};

struct smtp_client {
	struct loop *loop;
	int fd;
	enum cli_state state;
	unsigned ops;
	bool recv_armed, send_armed, timer_armed, connecting, closed_called, reached_ready;
	bool closing;              /* the peer closed: finish what it said, take no more work */
	uint64_t deadline;         /* monotonic ms: the current step must end by then */
	uint64_t timer_at;         /* when the armed timer fires */
	uint64_t txn_deadline;     /* the whole transaction must end by then (0: none) */
	struct loop_op connect_op, recv_op, send_op, timer_op;
	struct loop_orphan orphan;  /* listed while dead and waiting for its ops */
	struct sockaddr_storage peer;
	socklen_t peerlen;
	char peer_ip[64];
	char helo_name[256];
	struct smtp_client_timeouts tmo;
	struct smtp_client_hooks hooks;
	void *owner;
	struct smtp_trace trace;   /* transcripts (smtp_trace.h); off unless the owner sets it */
	unsigned exts;
	uint64_t size_limit;       /* the server's SIZE (0: none given) */

	/* the transaction */
	struct smtp_txn *txn;
	size_t n_cmds;             /* MAIL + n RCPT + DATA */
	size_t sent_cmds;          /* commands already on the wire */
	size_t replied;            /* replies received */
	size_t accepted;
	bool mail_ok;
	bool need_rset;            /* the last transaction ended before its body: the server may still hold its MAIL */
	bool rset_first;           /* CLI_RSET is clearing that state before this transaction */
	struct smtp_result mail_fail;

	/* TLS (STARTTLS) */
	SSL_CTX *tls_ctx;          /* NULL: never */
	bool require_tls;
	char sni[256];
	struct tls_conn *tls;
	bool tls_failed;           /* the handshake failed (the owner may retry in clear) */
	char *tls_out;             /* ciphertext being sent */
	size_t tls_out_cap;

	/* outbound AUTH (smtp_client_set_auth): owned copies, wiped when freed */
	char *auth_user, *auth_pass;
	bool auth_clear_ok;        /* PLAIN/LOGIN without TLS allowed */
	bool authed;
	unsigned auth_mechs;       /* AUTH_MECH_* the server offers */

	char in[CLI_IN_CAP];
	size_t in_len;
	char *cmd;                 /* command text being sent */
	size_t cmd_len, cmd_cap;
	/* Output: up to two segments of plaintext (the commands, then a large
	 * message sent from the owner's buffer, never copied). In clear they go
	 * to the socket as they are; under TLS they are encrypted
	 * CLI_TLS_CHUNK at a time as the socket takes them, so no second copy
	 * of a message builds up in OpenSSL or in tls_out. */
	const char *seg_ptr[2];
	size_t seg_len[2];
	unsigned n_seg;
	bool body_sending;         /* the message is still going out */
	const char *send_ptr;      /* bytes on the socket now (plaintext or tls_out) */
	size_t send_left;
};

/* One branch when tracing is off (smtp_trace.h). */
static inline void cli_trace(struct smtp_client *c, unsigned what, enum smtp_trace_ev ev, const char *p, size_t n)
{
	if (smtp_trace_on(&c->trace, what))
		smtp_trace_event(&c->trace, ev, p, n);
}
enum { AUTH_MECH_PLAIN = 1u << 0, AUTH_MECH_LOGIN = 1u << 1 };

static void cli_pump(struct smtp_client *c);
static int cli_release_held(struct smtp_client *c);
static bool sni_usable(const char *s);
static void cli_send_tls(struct smtp_client *c);
static void cli_fail(struct smtp_client *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void smtp_client_default_timeouts(struct smtp_client_timeouts *t)
{
	t->connect_ms = 30000;
	t->banner_ms = 300000;
	t->helo_ms = 300000;
	t->mail_ms = 300000;
	t->rcpt_ms = 300000;
	t->data_ms = 120000;
	t->body_ms = 180000;
	t->dot_ms = 600000;
	t->quit_ms = 60000;
}

static uint64_t cli_state_timeout(const struct smtp_client *c)
{
	switch (c->state) {
	case CLI_CONNECTING: return c->tmo.connect_ms;
	case CLI_BANNER: return c->tmo.banner_ms;
	case CLI_EHLO: case CLI_HELO: case CLI_RSET: case CLI_STARTTLS: case CLI_HANDSHAKE:
	case CLI_AUTH: case CLI_AUTH_USER: case CLI_AUTH_PASS: return c->tmo.helo_ms;
	case CLI_TXN:
		/* with BDAT the message goes with the commands: first its sending
		 * (data-send-timeout), then the wait for its reply
		 * (smtp-data-termination-timeout) */
		if (c->body_sending)
			return c->tmo.body_ms;
		return c->txn && c->txn->chunked && c->sent_cmds == c->n_cmds ? c->tmo.dot_ms : c->tmo.rcpt_ms;
	case CLI_BODY: return c->body_sending ? c->tmo.body_ms : c->tmo.dot_ms;
	case CLI_QUIT: return c->tmo.quit_ms;
	default: return 0;
	}
}

/* ---- lifetime ------------------------------------------------------------ */

static void auth_forget(struct smtp_client *c)
{
	if (c->auth_pass)
		OPENSSL_cleanse(c->auth_pass, strlen(c->auth_pass));
	free(c->auth_pass);
	free(c->auth_user);
	c->auth_pass = c->auth_user = NULL;
}

static void cli_orphan_free(struct loop_orphan *o)
{
	smtp_client_free(container_of(o, struct smtp_client, orphan));
}

static void cli_maybe_free(struct smtp_client *c)
{
	if (c->state == CLI_DEAD && c->ops > 0)
		loop_orphan_add(c->loop, &c->orphan, cli_orphan_free); /* freed by its last op */
	if (c->state == CLI_DEAD && c->ops == 0) {
		loop_orphan_del(c->loop, &c->orphan);
		smtp_trace_end(&c->trace);
		auth_forget(c);
		tls_conn_free(c->tls);
		c->tls = NULL;
		free(c->tls_out);
		c->tls_out = NULL;
		close(c->fd);
		free(c->cmd);
		free(c);
	}
}

/* Cut every in-flight op short; the completions drain `ops`. */
static void cli_kill(struct smtp_client *c)
{
	shutdown(c->fd, SHUT_RDWR);
	if (c->timer_armed) {
		struct io_uring_sqe *sqe = loop_sqe(c->loop, NULL);
		io_uring_prep_timeout_remove(sqe, (__u64)(uintptr_t)&c->timer_op, 0);
		io_uring_sqe_set_data(sqe, NULL);
	}
	if (c->connecting) /* shutdown() does not interrupt a connect: cancel it */
		loop_cancel(c->loop, NULL, &c->connect_op);
}

static void result_set(struct smtp_result *r, int code, const char *enhanced, const char *text)
{
	r->code = code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced ? enhanced : "");
	snprintf(r->text, sizeof(r->text), "%s", text);
	r->after_data = false;
	r->at_mail = false;
}

/* End the session: finish a cut-short transaction, then closed(). */
static void cli_end(struct smtp_client *c, const struct smtp_result *why)
{
	struct smtp_txn *t = c->txn;

	if (c->state == CLI_DEAD)
		return;
	/* DEAD first: hooks called from here see a client that takes no work;
	 * the socket is shut first: a send still queued from the owner's
	 * buffer fails instead of reading it after txn_done(). */
	c->state = CLI_DEAD;
	c->txn = NULL;
	c->n_seg = 0;
	cli_kill(c);
	cli_trace(c, SMTP_TRACE_CONN, SMTP_TRACE_EV_CLOSE, why->text, strlen(why->text));
	if (t) {
		/* Recipients without a final answer get the reason the session died. */
		for (size_t i = 0; i < t->n_rcpts; i++)
			if (t->results[i].code == 0 && !t->results[i].text[0])
				t->results[i] = *why;
		c->hooks.txn_done(c->owner, c, t);
	}
	if (!c->closed_called) {
		c->closed_called = true;
		c->hooks.closed(c->owner, c, c->reached_ready, why);
	}
	cli_maybe_free(c);
}

static void cli_fail(struct smtp_client *c, int code, const char *fmt, ...)
{
	struct smtp_result why;
	va_list ap;

	memset(&why, 0, sizeof(why));
	why.code = code;
	va_start(ap, fmt);
	vsnprintf(why.text, sizeof(why.text), fmt, ap);
	va_end(ap);
	cli_end(c, &why);
}

/* ---- timer -------------------------------------------------------------- */

static void cli_arm_timer(struct smtp_client *c)
{
	uint64_t now = loop_now_ms();

	if (c->state == CLI_DEAD)
		return;
	if (c->timer_armed) {
		/* A timer set for a later deadline is cut short; its completion
		 * (-ECANCELED) re-arms for this one. */
		if (c->timer_at > c->deadline) {
			struct io_uring_sqe *sqe = loop_sqe(c->loop, NULL);

			io_uring_prep_timeout_remove(sqe, (__u64)(uintptr_t)&c->timer_op, 0);
			io_uring_sqe_set_data(sqe, NULL);
			c->timer_at = c->deadline;
		}
		return;
	}
	c->ops++;
	c->timer_armed = true;
	c->timer_at = c->deadline > now ? c->deadline : now;
	loop_timeout(c->loop, &c->timer_op, c->deadline > now ? c->deadline - now : 0);
}

/* A step starts: its deadline runs from now (monotonic clock), never past
 * the transaction's. Only steps set deadlines: bytes arriving do not
 * extend them, so a peer that drips its reply a byte at a time cannot
 * hold a session past them. */
static void cli_touch(struct smtp_client *c)
{
	c->deadline = loop_now_ms() + cli_state_timeout(c);
	if (c->txn && c->txn_deadline && c->deadline > c->txn_deadline)
		c->deadline = c->txn_deadline;
	cli_arm_timer(c);
}

static void cli_timer_fired(struct smtp_client *c)
{
	if (c->state == CLI_DEAD || c->state == CLI_IDLE)
		return; /* idle time is the owner's business */
	if (loop_now_ms() < c->deadline) {
		cli_arm_timer(c);
		return;
	}
	if (cli_release_held(c) < 0)
		return;
	if (c->txn && c->txn_deadline && loop_now_ms() >= c->txn_deadline)
		cli_fail(c, 0, "transaction deadline passed in %s", cli_state_name[c->state]);
	else
		cli_fail(c, 0, "timeout after %s", cli_state_name[c->state]);
}

static void cli_timer_done(struct loop_op *op, int res, unsigned flags)
{
	struct smtp_client *c = container_of(op, struct smtp_client, timer_op);

	/* counted in ops until handled, like a recv (cli_recv_done) */
	c->timer_armed = false;
	cli_timer_fired(c);
	c->ops--;
	cli_maybe_free(c);
}

/* ---- output ------------------------------------------------------------- */

static void cli_send_done(struct loop_op *op, int res, unsigned flags);
static void cli_flush(struct smtp_client *c);

static void cli_send_more(struct smtp_client *c)
{
	c->ops++;
	c->send_armed = true;
	loop_send(c->loop, &c->send_op, c->fd, c->send_ptr, c->send_left);
}

/* Everything queued has left: a message that was going out now waits for
 * its reply (smtp-data-termination-timeout from now). */
static void cli_out_drained(struct smtp_client *c)
{
	if (!c->body_sending)
		return;
	c->body_sending = false;
	cli_touch(c);
	cli_pump(c); /* a final reply held back meanwhile */
}

/* The message's final reply waits until all of the message has left:
 * the owner's buffer is never released (txn_done) while a send still reads
 * it, and nothing of it can follow as part of the next transaction. A peer
 * that answers early and stops reading meets data-send-timeout. */
static bool cli_hold_reply(const struct smtp_client *c)
{
	if (!c->body_sending)
		return false;
	return c->state == CLI_BODY || (c->state == CLI_TXN && c->replied + 1 >= c->n_cmds);
}

static void cli_send_done(struct loop_op *op, int res, unsigned flags)
{
	struct smtp_client *c = container_of(op, struct smtp_client, send_op);

	c->ops--;
	c->send_armed = false;
	if (c->state == CLI_DEAD) {
		cli_maybe_free(c);
		return;
	}
	if (res <= 0) {
		cli_fail(c, 0, "connection lost while sending in %s: %s", cli_state_name[c->state],
			 res == 0 ? "closed" : strerror(-res));
		return;
	}
	c->send_ptr += res;
	c->send_left -= (size_t)res;
	if (c->send_left)
		cli_send_more(c);
	else
		cli_flush(c);
}

/* Take the next plaintext bytes (at most max) off the segments. */
static size_t seg_take(struct smtp_client *c, const char **p, size_t max)
{
	size_t n;

	while (c->n_seg && !c->seg_len[0]) {
		c->seg_ptr[0] = c->seg_ptr[1];
		c->seg_len[0] = c->seg_len[1];
		c->n_seg--;
	}
	if (!c->n_seg)
		return 0;
	n = c->seg_len[0] < max ? c->seg_len[0] : max;
	*p = c->seg_ptr[0];
	c->seg_ptr[0] += n;
	c->seg_len[0] -= n;
	return n;
}

static bool seg_empty(struct smtp_client *c)
{
	return !c->n_seg || (!c->seg_len[0] && (c->n_seg < 2 || !c->seg_len[1]));
}

/* Keep the socket busy with what is queued: plaintext as it is, or under
 * TLS a chunk at a time through OpenSSL (records queued meanwhile, the
 * handshake's last flight say, go first). */
static void cli_flush(struct smtp_client *c)
{
	const char *p;
	size_t n;

	if (c->send_armed || c->state == CLI_DEAD)
		return;
	if (!c->tls || !tls_established(c->tls)) {
		if (c->tls && tls_pending(c->tls)) {
			n = tls_pending(c->tls);
			goto cipher; /* handshake records */
		}
		if (!(n = seg_take(c, &p, SIZE_MAX))) {
			cli_out_drained(c);
			return;
		}
		c->send_ptr = p;
		c->send_left = n;
		cli_send_more(c);
		return;
	}
	while (tls_pending(c->tls) < CLI_TLS_CHUNK && (n = seg_take(c, &p, CLI_TLS_CHUNK))) {
		if (tls_write(c->tls, p, n) < 0) {
			cli_fail(c, 0, "%s", tls_error(c->tls));
			return;
		}
	}
	n = tls_pending(c->tls);
	if (!n) {
		cli_out_drained(c);
		return;
	}
cipher:
	if (n > c->tls_out_cap) {
		char *q = realloc(c->tls_out, n);

		if (!q) {
			cli_fail(c, 0, "out of memory");
			return;
		}
		c->tls_out = q;
		c->tls_out_cap = n;
	}
	c->send_ptr = c->tls_out;
	c->send_left = tls_take(c->tls, c->tls_out, n);
	if (c->send_left)
		cli_send_more(c);
}

/* Ciphertext the TLS connection has to send (handshake records). */
static void cli_send_tls(struct smtp_client *c)
{
	cli_flush(c);
}

/* Queue p[0..n) and then q[0..qn) (q may be NULL) for sending. */
static void cli_send2(struct smtp_client *c, const char *p, size_t n, const char *q, size_t qn)
{
	if (!seg_empty(c) || (c->send_armed && (!c->tls || !tls_established(c->tls)))) {
		/* A reply overtook our own send: the peer answered what we had not
		 * finished sending. Nothing sane can follow. */
		cli_fail(c, 0, "reply before our %s was sent", cli_state_name[c->state]);
		return;
	}
	c->seg_ptr[0] = p;
	c->seg_len[0] = n;
	c->seg_ptr[1] = q;
	c->seg_len[1] = q ? qn : 0;
	c->n_seg = q && qn ? 2 : 1;
	cli_flush(c);
}

static void cli_send(struct smtp_client *c, const char *p, size_t n)
{
	cli_send2(c, p, n, NULL, 0);
}

static int cmd_append(struct smtp_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int cmd_append(struct smtp_client *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = c->cmd_cap - c->cmd_len;

		va_start(ap, fmt);
		n = vsnprintf(c->cmd + c->cmd_len, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -1;
		if ((size_t)n < room) {
			c->cmd_len += (size_t)n;
			return 0;
		}
		size_t cap = c->cmd_cap * 2 + (size_t)n + 1;
		char *p = realloc(c->cmd, cap);
		if (!p)
			return -1;
		c->cmd = p;
		c->cmd_cap = cap;
	}
}

static int cmd_append_bytes(struct smtp_client *c, const char *p, size_t n)
{
	if (n > c->cmd_cap - c->cmd_len) {
		size_t cap = c->cmd_cap * 2 + n;
		char *q = realloc(c->cmd, cap);

		if (!q)
			return -1;
		c->cmd = q;
		c->cmd_cap = cap;
	}
	memcpy(c->cmd + c->cmd_len, p, n);
	c->cmd_len += n;
	return 0;
}

/* Send one command line (non-pipelined steps): verb, optional argument. */
static void cli_command(struct smtp_client *c, const char *verb, const char *arg)
{
	c->cmd_len = 0;
	if (cmd_append(c, "%s%s%s\r\n", verb, arg ? " " : "", arg ? arg : "") < 0) {
		cli_fail(c, 0, "out of memory");
		return;
	}
	cli_trace(c, SMTP_TRACE_CMDS, SMTP_TRACE_EV_CMD, c->cmd, c->cmd_len);
	cli_send(c, c->cmd, c->cmd_len);
	cli_touch(c);
}

/* RFC 3461 on MAIL, for a server that offers DSN: " RET=..." and
 * " ENVID=<xtext>" as given; an ENVID whose xtext form is over the 100
 * characters RFC 3461 4.4 allows is left out. */
static void mail_dsn_params(const struct smtp_txn *t, char *out, size_t cap)
{
	char x[3 * SMTP_MAX_ENVID + 1];
	size_t n = 0;

	if (t->dsn_ret == SMTP_RET_FULL || t->dsn_ret == SMTP_RET_HDRS)
		n = (size_t)snprintf(out, cap, " RET=%s", t->dsn_ret == SMTP_RET_FULL ? "FULL" : "HDRS");
	if (t->dsn_envid && t->dsn_envid[0] &&
	    smtp_xtext_encode(t->dsn_envid, strlen(t->dsn_envid), x, sizeof(x)) > 0 && strlen(x) <= SMTP_MAX_ENVID)
		snprintf(out + n, cap - n, " ENVID=%s", x);
}

/* RFC 3461 on RCPT i: " NOTIFY=..." and " ORCPT=type;<xtext>" as given.
 * An ORCPT whose encoded form is over SMTP_MAX_ORCPT (the 500 octets RFC
 * 3461 5 lets it add to the line, with NOTIFY) is left out. */
static void rcpt_dsn_params(const struct smtp_txn *t, size_t i, char *out, size_t cap)
{
	unsigned nf = t->dsn_notify ? t->dsn_notify[i] : 0;
	const char *oc = t->dsn_orcpt ? t->dsn_orcpt[i] : NULL;
	const char *semi;
	size_t n = 0;

	out[0] = 0;
	if (nf & SMTP_NOTIFY_NEVER)
		n = (size_t)snprintf(out, cap, " NOTIFY=NEVER");
	else if (nf & (SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY))
		n = (size_t)snprintf(out, cap, " NOTIFY=%s%s%s%s%s", nf & SMTP_NOTIFY_SUCCESS ? "SUCCESS" : "",
				     (nf & SMTP_NOTIFY_SUCCESS) && (nf & (SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY)) ? "," : "",
				     nf & SMTP_NOTIFY_FAILURE ? "FAILURE" : "",
				     (nf & SMTP_NOTIFY_FAILURE) && (nf & SMTP_NOTIFY_DELAY) ? "," : "",
				     nf & SMTP_NOTIFY_DELAY ? "DELAY" : "");
	if (n >= cap)
		n = 0, out[0] = 0;
	if (oc && (semi = strchr(oc, ';')) && semi > oc) {
		size_t tl = (size_t)(semi - oc);
		char x[SMTP_MAX_ORCPT + 1];

		if (tl < SMTP_MAX_ORCPT && smtp_xtext_encode(semi + 1, strlen(semi + 1), x, sizeof(x) - tl - 1) > 0)
			snprintf(out + n, cap - n, " ORCPT=%.*s;%s", (int)tl, oc, x);
	}
}

/* The k-th command of the transaction (0 = MAIL, 1..n = RCPT, n+1 = DATA,
 * or BDAT with the whole message when chunked). */
static int txn_append_cmd(struct smtp_client *c, size_t k)
{
	struct smtp_txn *t = c->txn;

	if (k == 0) {
		char size[32] = "", dsn[3 * SMTP_MAX_ENVID + 24] = "";

		if (c->exts & SMTP_EXT_SIZE) /* RFC 1870: declare it */
			snprintf(size, sizeof(size), " SIZE=%zu", t->size ? t->size : t->wire_len);
		if (c->exts & SMTP_EXT_DSN)
			mail_dsn_params(t, dsn, sizeof(dsn));
		return cmd_append(c, "MAIL FROM:<%s>%s%s%s%s\r\n", t->sender, size,
				  (t->eightbit && (c->exts & SMTP_EXT_8BITMIME)) ? " BODY=8BITMIME" : "",
				  (t->smtputf8 && (c->exts & SMTP_EXT_SMTPUTF8)) ? " SMTPUTF8" : "", dsn);
	}
	if (k <= t->n_rcpts) {
		char dsn[SMTP_MAX_ORCPT + 64] = "";

		if (c->exts & SMTP_EXT_DSN)
			rcpt_dsn_params(t, k - 1, dsn, sizeof(dsn));
		return cmd_append(c, "RCPT TO:<%s>%s\r\n", t->rcpts[k - 1], dsn);
	}
	if (t->chunked) {
		if (cmd_append(c, "BDAT %zu LAST\r\n", t->wire_len) < 0)
			return -1;
		/* A small message is copied behind the commands: one send, one
		 * segment, which costs the receiver far more than the copy costs
		 * us. A large one goes from the owner's buffer (txn_send_cmds). */
		return t->wire_len <= CLI_INLINE_BODY ? cmd_append_bytes(c, t->wire, t->wire_len) : 0;
	}
	return cmd_append(c, "DATA\r\n");
}

/* The command appended at c->cmd + at: its line, and a BDAT's message
 * copied behind it (data); each as the session reports them. */
static void cli_trace_cmd(struct smtp_client *c, size_t at)
{
	const char *p = c->cmd + at, *lf = memchr(p, '\n', c->cmd_len - at);
	size_t line = lf ? (size_t)(lf - p) + 1 : c->cmd_len - at;

	if (c->trace.flags & SMTP_TRACE_CMDS)
		smtp_trace_event(&c->trace, SMTP_TRACE_EV_CMD, p, line);
	if (line < c->cmd_len - at && (c->trace.flags & SMTP_TRACE_DATA))
		smtp_trace_event(&c->trace, SMTP_TRACE_EV_DATA, p + line, c->cmd_len - at - line);
}

static void txn_send_cmds(struct smtp_client *c)
{
	struct smtp_txn *t = c->txn;
	size_t upto = (c->exts & SMTP_EXT_PIPELINING) ? c->n_cmds : c->sent_cmds + 1;
	bool body = false;

	c->cmd_len = 0;
	while (c->sent_cmds < upto) {
		size_t at = c->cmd_len;

		if (txn_append_cmd(c, c->sent_cmds) < 0) {
			cli_fail(c, 0, "out of memory");
			return;
		}
		if (smtp_trace_on(&c->trace, SMTP_TRACE_CMDS | SMTP_TRACE_DATA))
			cli_trace_cmd(c, at);
		c->sent_cmds++;
	}
	if (t->chunked && c->sent_cmds == c->n_cmds) {
		body = t->wire_len > CLI_INLINE_BODY;
		c->body_sending = true;
		if (body)
			cli_trace(c, SMTP_TRACE_DATA, SMTP_TRACE_EV_DATA, t->wire, t->wire_len);
	}
	cli_touch(c);
	cli_send2(c, c->cmd, c->cmd_len, body ? t->wire : NULL, body ? t->wire_len : 0);
}

void smtp_client_send(struct smtp_client *c, struct smtp_txn *t)
{
	const struct smtp_client_timeouts *o = &c->tmo;

	c->txn = t;
	/* the whole transaction: every step's own limit added up, so a peer
	 * that answers each step just in time still cannot hold it longer */
	c->txn_deadline = loop_now_ms() + o->rcpt_ms + o->data_ms + o->body_ms + o->dot_ms +
			  (c->need_rset ? o->helo_ms : 0);
	c->n_cmds = t->n_rcpts + 2;
	c->sent_cmds = 0;
	c->replied = 0;
	c->accepted = 0;
	c->mail_ok = false;
	for (size_t i = 0; i < t->n_rcpts; i++)
		memset(&t->results[i], 0, sizeof(t->results[i]));
	if (t->chunked && !(c->exts & SMTP_EXT_CHUNKING)) {
		/* chunk form has no stuffing or terminator: DATA cannot carry it */
		c->state = CLI_TXN;
		cli_fail(c, 0, "a chunked message for a server without CHUNKING");
		return;
	}
	if (c->need_rset) {
		c->need_rset = false;
		c->rset_first = true;
		c->state = CLI_RSET;
		cli_command(c, "RSET", NULL);
		return;
	}
	c->state = CLI_TXN;
	txn_send_cmds(c);
}

void smtp_client_quit(struct smtp_client *c)
{
	if (c->state != CLI_IDLE) {
		smtp_client_abort(c);
		return;
	}
	c->state = CLI_QUIT;
	cli_command(c, "QUIT", NULL);
}

void smtp_client_abort(struct smtp_client *c)
{
	cli_fail(c, 0, "connection dropped by us");
}

/* ---- replies ------------------------------------------------------------- */

static void reply_to_result(const struct smtp_reply *r, struct smtp_result *out)
{
	char text[256];

	smtp_reply_flatten(r, text, sizeof(text));
	result_set(out, r->code, r->enhanced, text);
}

static void txn_finish(struct smtp_client *c)
{
	struct smtp_txn *t = c->txn;

	/* Only a transaction that got its end-of-data reply is surely closed on
	 * the server side; anything else (MAIL, every RCPT or DATA refused) may
	 * leave its MAIL standing, and a new MAIL would be "nested". */
	c->need_rset = c->state != CLI_BODY && c->state != CLI_RSET;
	c->txn = NULL;
	c->txn_deadline = 0;
	if (c->cmd_cap > CLI_CMD_CAP && !c->send_armed && seg_empty(c)) {
		/* A BDAT transaction carried its message in the command buffer:
		 * an idle connection keeps 1 KiB, not its largest message. */
		char *p = realloc(c->cmd, CLI_CMD_CAP);

		if (p) {
			c->cmd = p;
			c->cmd_cap = CLI_CMD_CAP;
			c->cmd_len = 0;
		}
	}
	c->state = CLI_IDLE;
	c->hooks.txn_done(c->owner, c, t);
}

/* The reply to DATA or to the end of data: the answer for every recipient
 * that has none yet (those accepted at RCPT TO), then the transaction ends. */
static void txn_answer_data(struct smtp_client *c, const struct smtp_reply *r)
{
	struct smtp_txn *t = c->txn;

	for (size_t i = 0; i < t->n_rcpts; i++)
		if (t->results[i].code == 0) {
			reply_to_result(r, &t->results[i]);
			t->results[i].after_data = true;
		}
	txn_finish(c);
}

/* A reply to one of MAIL / RCPT / DATA. */
static void txn_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	struct smtp_txn *t = c->txn;
	size_t k = c->replied++;

	if (k == 0) {
		c->mail_ok = r->code / 100 == 2;
		if (!c->mail_ok) {
			reply_to_result(r, &c->mail_fail);
			c->mail_fail.at_mail = true;
		}
	} else if (k <= t->n_rcpts) {
		if (!c->mail_ok)
			t->results[k - 1] = c->mail_fail;
		else if (r->code / 100 == 2) {
			c->accepted++;
			/* accepted at RCPT: the final answer comes after the body */
		} else
			reply_to_result(r, &t->results[k - 1]);
	} else if (t->chunked) {
		/* BDAT LAST: its reply is the message's. A refusal leaves the
		 * session unsure whether the transaction is gone: RSET first. */
		if (r->code / 100 == 2)
			c->state = CLI_BODY;
		txn_answer_data(c, r);
		return;
	} else {
		/* DATA */
		if (r->code == 354 && c->accepted > 0) {
			c->state = CLI_BODY;
			c->body_sending = true;
			cli_touch(c);
			cli_trace(c, SMTP_TRACE_DATA, SMTP_TRACE_EV_DATA, t->wire, t->wire_len);
			cli_send(c, t->wire, t->wire_len);
			return;
		}
		if (r->code == 354) {
			/* Nothing accepted yet the server wants data: a confused
			 * peer; leave rather than send an empty message. */
			cli_fail(c, 0, "354 after all recipients were refused");
			return;
		}
		txn_answer_data(c, r);
		return;
	}
	if (c->replied < c->sent_cmds)
		return; /* pipelined replies still on their way */
	/* Non-pipelined: decide the next step. */
	if (!c->mail_ok || (c->sent_cmds == c->n_cmds - 1 && c->accepted == 0)) {
		/* Nothing to send: MAIL refused, or every RCPT refused. */
		if (c->mail_ok) {
			c->state = CLI_RSET;
			cli_command(c, "RSET", NULL);
			return;
		}
		for (size_t i = 0; i < t->n_rcpts; i++)
			if (t->results[i].code == 0)
				t->results[i] = c->mail_fail;
		txn_finish(c);
		return;
	}
	if (c->sent_cmds < c->n_cmds)
		txn_send_cmds(c);
}

/* The mechanisms of the EHLO reply's AUTH line ("250-AUTH PLAIN LOGIN",
 * also the old "250-AUTH=LOGIN"). */
static unsigned auth_mechs_of(const struct smtp_reply *r)
{
	unsigned m = 0;

	for (const char *ln = r->raw, *end = r->raw + r->raw_len; ln < end;) {
		const char *eol = memchr(ln, '\n', (size_t)(end - ln));
		size_t n = eol ? (size_t)(eol - ln) : (size_t)(end - ln);

		if (n > 8 && !strncasecmp(ln + 4, "AUTH", 4) && (ln[8] == ' ' || ln[8] == '=')) {
			for (size_t i = 9; i < n;) {
				size_t w = 0;

				while (i + w < n && ln[i + w] != ' ' && ln[i + w] != '\r')
					w++;
				if (w == 5 && !strncasecmp(ln + i, "PLAIN", 5))
					m |= AUTH_MECH_PLAIN;
				if (w == 5 && !strncasecmp(ln + i, "LOGIN", 5))
					m |= AUTH_MECH_LOGIN;
				i += w + 1;
			}
		}
		ln += n + 1;
	}
	return m;
}

/* "AUTH " + prefix + base64(raw) as the command. */
static void auth_send_b64(struct smtp_client *c, const char *prefix, const char *raw, size_t n)
{
	size_t cap = 4 * ((n + 2) / 3) + 1;
	char *b = malloc(cap);

	if (!b) {
		cli_fail(c, 0, "out of memory");
		return;
	}
	EVP_EncodeBlock((unsigned char *)b, (const unsigned char *)raw, (int)n);
	c->cmd_len = 0;
	if (cmd_append(c, "%s%s\r\n", prefix, b) < 0) {
		OPENSSL_cleanse(b, cap);
		free(b);
		cli_fail(c, 0, "out of memory");
		return;
	}
	OPENSSL_cleanse(b, cap);
	free(b);
	/* "AUTH PLAIN <payload>" is shown "AUTH PLAIN [redacted]", a LOGIN
	 * answer "[redacted]" (smtp_trace_redact) */
	cli_trace(c, SMTP_TRACE_CMDS, *prefix ? SMTP_TRACE_EV_CMD : SMTP_TRACE_EV_SECRET, c->cmd, c->cmd_len);
	cli_send(c, c->cmd, c->cmd_len);
	cli_touch(c);
}

/* Past EHLO (and STARTTLS): authenticate when asked to, then ready. */
static void cli_ready(struct smtp_client *c)
{
	struct smtp_result res;

	if (c->auth_user && !c->authed) {
		if (!c->tls && !c->auth_clear_ok) {
			result_set(&res, 0, "", "auth-username is set but the session is not encrypted (no STARTTLS): "
				   "the password is not sent in clear");
			cli_end(c, &res);
			return;
		}
		if (!(c->auth_mechs & (AUTH_MECH_PLAIN | AUTH_MECH_LOGIN))) {
			result_set(&res, 0, "", "auth-username is set but the host offers no AUTH PLAIN or LOGIN");
			cli_end(c, &res);
			return;
		}
		if (c->auth_mechs & AUTH_MECH_PLAIN) {
			size_t un = strlen(c->auth_user), pn = strlen(c->auth_pass);
			char raw[2 + 2 * 256];

			/* RFC 4616: [authzid] NUL authcid NUL passwd */
			raw[0] = '\0';
			memcpy(raw + 1, c->auth_user, un);
			raw[1 + un] = '\0';
			memcpy(raw + 2 + un, c->auth_pass, pn);
			c->state = CLI_AUTH;
			auth_send_b64(c, "AUTH PLAIN ", raw, 2 + un + pn);
			OPENSSL_cleanse(raw, sizeof(raw));
		} else {
			c->state = CLI_AUTH_USER;
			cli_command(c, "AUTH", "LOGIN");
		}
		return;
	}
	c->state = CLI_IDLE;
	c->reached_ready = true;
	c->hooks.ready(c->owner, c);
}

static void cli_on_auth_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	struct smtp_result res;

	if (c->state == CLI_AUTH && r->code == 235) {
		c->authed = true;
		cli_ready(c);
		return;
	}
	if (c->state == CLI_AUTH_USER && r->code == 334) {
		c->state = CLI_AUTH_PASS;
		auth_send_b64(c, "", c->auth_user, strlen(c->auth_user));
		return;
	}
	if (c->state == CLI_AUTH_PASS && r->code == 334) {
		c->state = CLI_AUTH;
		auth_send_b64(c, "", c->auth_pass, strlen(c->auth_pass));
		return;
	}
	/* Refused credentials are the sender's configuration, not the
	 * recipients' fault: a session-level failure without a reply code
	 * (deferred, never bounced), the server's reply in the text. */
	{
		char text[256];

		smtp_reply_flatten(r, text, sizeof(text));
		memset(&res, 0, sizeof(res));
		snprintf(res.text, sizeof(res.text), "AUTH refused: %d %.200s", r->code, text);
	}
	cli_end(c, &res);
}

static void cli_on_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	struct smtp_result res;

	switch (c->state) {
	case CLI_BANNER:
		if (r->code != 220) {
			reply_to_result(r, &res);
			cli_end(c, &res);
			return;
		}
		c->state = CLI_EHLO;
		cli_command(c, "EHLO", c->helo_name);
		return;
	case CLI_EHLO:
		if (r->code / 100 != 2) {
			c->state = CLI_HELO;
			cli_command(c, "HELO", c->helo_name);
			return;
		}
		c->exts = smtp_reply_ehlo_exts(r, &c->size_limit);
		c->auth_mechs = (c->exts & SMTP_EXT_AUTH) ? auth_mechs_of(r) : 0;
		if (!c->tls && c->tls_ctx && (c->exts & SMTP_EXT_STARTTLS)) {
			c->state = CLI_STARTTLS;
			cli_command(c, "STARTTLS", NULL);
			return;
		}
		/* fall through */
	case CLI_HELO:
		if (r->code / 100 != 2) {
			reply_to_result(r, &res);
			cli_end(c, &res);
			return;
		}
		if (c->require_tls && !c->tls) {
			result_set(&res, 0, "", "TLS is required (require-starttls) but the host does not offer STARTTLS");
			cli_end(c, &res);
			return;
		}
		cli_ready(c);
		return;
	case CLI_STARTTLS:
		if (r->code != 220) {
			if (c->require_tls) {
				reply_to_result(r, &res);
				cli_end(c, &res);
				return;
			}
			/* refused: carry on in clear, as after an EHLO without STARTTLS */
			cli_ready(c);
			return;
		}
		if (!(c->tls = tls_conn_new(c->tls_ctx, false, c->sni))) {
			cli_fail(c, 0, "out of memory");
			return;
		}
		c->state = CLI_HANDSHAKE; /* cli_pump drops what came after the 220 */
		tls_handshake(c->tls);
		cli_send_tls(c);
		cli_touch(c);
		return;
	case CLI_AUTH:
	case CLI_AUTH_USER:
	case CLI_AUTH_PASS:
		cli_on_auth_reply(c, r);
		return;
	case CLI_TXN:
		txn_reply(c, r);
		return;
	case CLI_BODY:
		txn_answer_data(c, r);
		return;
	case CLI_RSET:
		if (c->rset_first) {
			/* The session is clean again: now the transaction itself. */
			c->rset_first = false;
			c->state = CLI_TXN;
			txn_send_cmds(c);
			return;
		}
		txn_finish(c);
		return;
	case CLI_QUIT:
		result_set(&res, r->code, r->enhanced, "QUIT");
		cli_end(c, &res);
		return;
	case CLI_IDLE:
		/* Unsolicited: typically "421 closing" from an idle timeout. */
		reply_to_result(r, &res);
		cli_end(c, &res);
		return;
	default:
		return;
	}
}

/* Act on the complete replies in c->in; keep the rest. A full buffer
 * without a complete reply in it is a protocol error. */
static void cli_parse(struct smtp_client *c)
{
	size_t off = 0;

	while (c->state != CLI_DEAD && off < c->in_len) {
		struct smtp_reply r;
		ssize_t n;

		if (cli_hold_reply(c))
			break;
		n = smtp_reply_parse(c->in + off, c->in_len - off, &r);
		if (n == 0)
			break;
		if (n < 0) {
			cli_fail(c, 0, "malformed reply in %s", cli_state_name[c->state]);
			return;
		}
		cli_trace(c, SMTP_TRACE_CMDS, SMTP_TRACE_EV_REPLY, c->in + off, (size_t)n);
		off += (size_t)n;
		cli_on_reply(c, &r);
		if (c->state == CLI_HANDSHAKE) {
			/* RFC 3207: nothing sent in clear after the 220 is trusted */
			off = c->in_len;
			break;
		}
	}
	if (c->state == CLI_DEAD)
		return;
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	if (c->in_len == CLI_IN_CAP)
		cli_fail(c, 0, "reply longer than %d bytes in %s", CLI_IN_CAP, cli_state_name[c->state]);
}

/* The session cannot go on while a final reply is held (the peer left,
 * or stopped reading until a deadline): that reply still counts (an early
 * "552 too big", say). The send is stopped first: the owner's buffer is
 * released when the transaction ends. -1 when the session ended. */
static int cli_release_held(struct smtp_client *c)
{
	if (!c->body_sending || !c->in_len)
		return 0;
	shutdown(c->fd, SHUT_RDWR);
	c->closing = true;
	c->body_sending = false;
	c->n_seg = 0;
	cli_parse(c);
	return c->state == CLI_DEAD ? -1 : 0;
}

static void cli_pump(struct smtp_client *c)
{
	cli_parse(c);
	if (c->state == CLI_DEAD)
		return;
	if (!c->recv_armed) {
		c->ops++;
		c->recv_armed = true;
		loop_recv(c->loop, &c->recv_op, c->fd);
	}
}

/* Drive the handshake, then decrypt into c->in. -1 when the session ended. */
static int cli_tls_input(struct smtp_client *c)
{
	int hs = tls_handshake(c->tls);

	cli_send_tls(c);
	if (hs < 0) {
		c->tls_failed = true;
		cli_fail(c, 0, "%s", tls_error(c->tls));
		return -1;
	}
	if (hs == 0)
		return 0;
	if (c->state == CLI_HANDSHAKE) {
		/* RFC 3207: start over with EHLO inside TLS */
		if (smtp_trace_on(&c->trace, SMTP_TRACE_CONN | SMTP_TRACE_TLS)) {
			const char *d = tls_describe(c->tls);

			smtp_trace_event(&c->trace, SMTP_TRACE_EV_TLS, d, strlen(d));
		}
		c->state = CLI_EHLO;
		c->exts = 0;
		cli_command(c, "EHLO", c->helo_name);
	}
	for (;;) {
		ssize_t n;

		if (c->in_len == CLI_IN_CAP) {
			/* full: the complete replies make room (or the session ends) */
			cli_parse(c);
			if (c->state == CLI_DEAD)
				return -1;
		}
		n = tls_read(c->tls, c->in + c->in_len, CLI_IN_CAP - c->in_len);
		if (n < 0) {
			cli_fail(c, 0, "%s", tls_error(c->tls));
			return -1;
		}
		if (n == 0)
			break;
		c->in_len += (size_t)n;
	}
	return 0;
}

static void cli_recv_input(struct smtp_client *c, int res, unsigned flags)
{
	if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
		const char *data = loop_buf_data(c->loop, flags);

		if (c->state != CLI_DEAD && c->tls) {
			if (tls_feed(c->tls, data, (size_t)res) < 0)
				res = -ENOMEM;
		} else {
			/* all of it, never a cut: when it does not fit, the complete
			 * replies make room; a reply longer than the buffer ends
			 * the session (cli_parse) */
			for (size_t done = 0, n; c->state != CLI_DEAD && done < (size_t)res; done += n) {
				if (c->in_len == CLI_IN_CAP)
					cli_parse(c);
				if (c->state == CLI_DEAD)
					break;
				n = CLI_IN_CAP - c->in_len;
				if (n > (size_t)res - done)
					n = (size_t)res - done;
				memcpy(c->in + c->in_len, data + done, n);
				c->in_len += n;
			}
		}
		loop_buf_return(c->loop, flags);
	} else if (flags & IORING_CQE_F_BUFFER) {
		loop_buf_return(c->loop, flags);
	}
	if (c->state == CLI_DEAD)
		return;
	if (res == -ENOBUFS) {
		cli_pump(c);
		return;
	}
	if (res <= 0) {
		if (cli_release_held(c) < 0)
			return;
		cli_fail(c, 0, "connection %s in %s", res == 0 ? "closed by peer" : strerror(-res),
			 cli_state_name[c->state]);
		return;
	}
	/* no cli_touch(): bytes arriving do not extend a step's deadline */
	if (c->tls && cli_tls_input(c) < 0)
		return;
	cli_pump(c);
}

static void cli_recv_done(struct loop_op *op, int res, unsigned flags)
{
	struct smtp_client *c = container_of(op, struct smtp_client, recv_op);

	/* The completed recv still counts in ops while its input is handled:
	 * a session that ends meanwhile is freed here, after, not under it. */
	c->recv_armed = false;
	cli_recv_input(c, res, flags);
	c->ops--;
	cli_maybe_free(c);
}

/* ---- connect ------------------------------------------------------------- */

static void cli_connect_done(struct loop_op *op, int res, unsigned flags)
{
	struct smtp_client *c = container_of(op, struct smtp_client, connect_op);

	c->ops--;
	c->connecting = false;
	if (c->state == CLI_DEAD) {
		cli_maybe_free(c);
		return;
	}
	if (res < 0) {
		cli_fail(c, 0, "connect to %s: %s", c->peer_ip, strerror(-res));
		return;
	}
	c->state = CLI_BANNER;
	cli_trace(c, SMTP_TRACE_CONN, SMTP_TRACE_EV_CONNECT, "", 0);
	cli_touch(c);
	cli_pump(c);
}

int smtp_client_connect(struct smtp_client **out, struct loop *l,
			const struct sockaddr *addr, socklen_t addrlen,
			const struct sockaddr *source, socklen_t sourcelen,
			const char *helo_name, const struct smtp_client_timeouts *tmo,
			const struct smtp_client_tls *tls,
			const struct smtp_client_hooks *hooks, void *owner)
{
	struct smtp_client *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c)
		return -ENOMEM;
	c->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0) {
		int err = -errno;
		free(c);
		return err;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (source && bind(c->fd, source, sourcelen) < 0) {
		int err = -errno;
		close(c->fd);
		free(c);
		return err;
	}
	c->cmd_cap = CLI_CMD_CAP;
	c->cmd = malloc(c->cmd_cap);
	if (!c->cmd) {
		close(c->fd);
		free(c);
		return -ENOMEM;
	}
	c->loop = l;
	c->trace.fd = c->fd;
	c->tmo = *tmo;
	c->hooks = *hooks;
	c->owner = owner;
	snprintf(c->helo_name, sizeof(c->helo_name), "%s", helo_name);
	if (tls) {
		c->tls_ctx = tls->ctx;
		c->require_tls = tls->require;
		snprintf(c->sni, sizeof(c->sni), "%s", sni_usable(tls->sni) ? tls->sni : "");
	}
	memcpy(&c->peer, addr, addrlen);
	c->peerlen = addrlen;
	if (addr->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, c->peer_ip, sizeof(c->peer_ip));
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, c->peer_ip, sizeof(c->peer_ip));
	loop_op_init(&c->connect_op, cli_connect_done);
	loop_op_init(&c->recv_op, cli_recv_done);
	loop_op_init(&c->send_op, cli_send_done);
	loop_op_init(&c->timer_op, cli_timer_done);
	c->state = CLI_CONNECTING;
	c->connecting = true;
	c->ops++;
	loop_connect(l, &c->connect_op, c->fd, (const struct sockaddr *)&c->peer, c->peerlen);
	cli_touch(c);
	*out = c;
	return 0;
}

void smtp_client_free(struct smtp_client *c)
{
	loop_orphan_del(c->loop, &c->orphan);
	smtp_trace_end(&c->trace);
	auth_forget(c);
	close(c->fd);
	tls_conn_free(c->tls);
	free(c->tls_out);
	free(c->cmd);
	free(c);
}

struct smtp_trace *smtp_client_trace(struct smtp_client *c)
{
	return &c->trace;
}

bool smtp_client_idle(const struct smtp_client *c)
{
	return c->state == CLI_IDLE && !c->closing;
}

unsigned smtp_client_exts(const struct smtp_client *c)
{
	return c->exts;
}

uint64_t smtp_client_size_limit(const struct smtp_client *c)
{
	return (c->exts & SMTP_EXT_SIZE) ? c->size_limit : 0;
}

/* RFC 6066 3: a host name, never an IP literal, never with a port. */
static bool sni_usable(const char *s)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (!s || !*s || strchr(s, ':') || strchr(s, '[') || strchr(s, ']'))
		return false;
	return inet_pton(AF_INET, s, &a4) != 1 && inet_pton(AF_INET6, s, &a6) != 1;
}

int smtp_client_set_auth(struct smtp_client *c, const char *user, const char *pass, bool allow_clear)
{
	if (!user || !pass || strlen(user) > 255 || strlen(pass) > 255)
		return -EINVAL;
	auth_forget(c);
	if (!(c->auth_user = strdup(user)) || !(c->auth_pass = strdup(pass))) {
		auth_forget(c);
		return -ENOMEM;
	}
	c->auth_clear_ok = allow_clear;
	return 0;
}

const char *smtp_client_peer_ip(const struct smtp_client *c)
{
	return c->peer_ip;
}

const char *smtp_client_tls(const struct smtp_client *c)
{
	return c->tls && tls_established(c->tls) ? tls_describe(c->tls) : NULL;
}

bool smtp_client_tls_failed(const struct smtp_client *c)
{
	return c->tls_failed;
}
