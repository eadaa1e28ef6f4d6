/*
 * smtp_trace.h - the hook through which an SMTP session (smtp_client.c,
 * smtp_server.c) reports its dialogue to a transcript sink (engine/trace.c:
 * `log-commands` files and live `GET /api/v1/trace` subscribers).
 *
 * Cost when off: each event site is `if (smtp_trace_on(t, WHAT))`, one
 * predictable branch over two words of the session and one relaxed load of
 * a process-wide generation number; nothing is formatted, nothing locked.
 * The generation changes when a live subscriber comes or goes: each
 * session then takes the slow path once, asks its sink (refresh) what it
 * should report now, and is back on the fast path.
 *
 * What a sink receives: one call per line, already cut at CRLF/LF and with
 * SASL payloads redacted (smtp_trace_redact): the argument of `AUTH MECH
 * ARG`, every client line the session knows to be a SASL response, the text
 * of every 334 challenge, and (for sessions that cannot tell) the client
 * line that follows a 334. Data lines are reported only under
 * SMTP_TRACE_DATA.
 *
 * Threads: a struct smtp_trace belongs to its session's thread; the sink's
 * functions are called on that thread. smtp_trace_bump() may be called from
 * any thread.
 */
#ifndef SALVO_SMTP_TRACE_H
#define SALVO_SMTP_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a session reports (bits). */
enum {
	SMTP_TRACE_CONN = 1u << 0, /* connect, TLS established, close */
	SMTP_TRACE_CMDS = 1u << 1, /* every command and reply line */
	SMTP_TRACE_DATA = 1u << 2, /* the message's lines too */
	SMTP_TRACE_TLS = 1u << 3,  /* the TLS line alone (log-tls) */
};

enum smtp_trace_ev {
	SMTP_TRACE_EV_CONNECT, /* text: "" or the listener */
	SMTP_TRACE_EV_TLS,     /* text: protocol and cipher */
	SMTP_TRACE_EV_CLOSE,   /* text: the reason */
	SMTP_TRACE_EV_CMD,     /* a client line (sent when outbound, received inbound) */
	SMTP_TRACE_EV_SECRET,  /* a client line the session knows is a SASL response */
	SMTP_TRACE_EV_REPLY,   /* a server line */
	SMTP_TRACE_EV_DATA,    /* a line of the message (as on the wire) */
};

struct smtp_trace;

struct smtp_trace_sink {
	/* What t should report now (SMTP_TRACE_* bits): its configured flags
	 * and any live subscriber's. Called on the slow path only. */
	unsigned (*refresh)(struct smtp_trace *t);
	/* One line (no CRLF), redacted; len may be 0. */
	void (*line)(struct smtp_trace *t, enum smtp_trace_ev ev, const char *text, size_t len);
	/* The session is gone: free what the sink hung on t (state). */
	void (*release)(struct smtp_trace *t);
};

/* Embedded in each session; zeroed = off for good (no sink). */
struct smtp_trace {
	unsigned flags;            /* SMTP_TRACE_* reported now */
	unsigned gen;              /* smtp_trace_gen when flags were computed */
	const struct smtp_trace_sink *sink; /* NULL: never traced */
	void *sink_ctx;            /* the sink's (e.g. its registry) */
	void *state;               /* the sink's per-session state, lazily made */
	const char *queue;         /* outbound: the queue (lives as long as the session) */
	unsigned cfg_flags;        /* from log-connections/-commands/-data */
	int fd;                    /* the session's socket (peer and local names) */
	bool inbound;
	bool after_334;            /* redaction: the last server line was a 334 */
	bool tls_noted;            /* the TLS event was reported */
};

extern unsigned smtp_trace_gen; /* read relaxed; changed by smtp_trace_bump() */

/* A subscriber came or went: every session re-asks its sink. */
void smtp_trace_bump(void);

/* Slow path of smtp_trace_on(): refresh when the generation moved. */
bool smtp_trace_check(struct smtp_trace *t, unsigned what);

static inline bool smtp_trace_on(struct smtp_trace *t, unsigned what)
{
	if (__builtin_expect(((t->flags & what) | (t->gen ^ __atomic_load_n(&smtp_trace_gen, __ATOMIC_RELAXED))) != 0,
			     0))
		return smtp_trace_check(t, what);
	return false;
}

/* Report p[0..n): cut into lines (CRLF or LF; a last line without one
 * too), each redacted and passed to the sink. Call only after
 * smtp_trace_on() said yes for the event's kind. */
void smtp_trace_event(struct smtp_trace *t, enum smtp_trace_ev ev, const char *p, size_t n);

/* The session ends: the sink frees its state. Safe on a zeroed trace. */
void smtp_trace_end(struct smtp_trace *t);

/* Redaction of one line (pure; exported for tests). Writes the line as it
 * may be shown into out (at most cap - 1 bytes, NUL-terminated) and
 * returns its length; *after_334 is the redaction state of the session
 * (updated). */
size_t smtp_trace_redact(enum smtp_trace_ev ev, const char *line, size_t len, bool *after_334, char *out,
			 size_t cap);

#define SMTP_TRACE_REDACTED "[redacted]"

#endif
