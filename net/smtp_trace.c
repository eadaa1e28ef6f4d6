/*
 * smtp_trace.c - the session side of SMTP transcripts (see smtp_trace.h):
 * the generation check's slow path, cutting reported bytes into lines, and
 * the redaction of SASL payloads. Every line goes through
 * smtp_trace_redact() before a sink sees it, so no sink can forget it.
 */
#include "net/smtp_trace.h"

#include <string.h>
#include <strings.h>

#define TRACE_LINE_MAX 1024 /* a line shown is cut to this (SMTP allows 1000) */

unsigned smtp_trace_gen;

void smtp_trace_bump(void)
{
	__atomic_add_fetch(&smtp_trace_gen, 1, __ATOMIC_RELAXED);
}

bool smtp_trace_check(struct smtp_trace *t, unsigned what)
{
	unsigned g = __atomic_load_n(&smtp_trace_gen, __ATOMIC_RELAXED);

	if (t->gen != g) {
		t->gen = g;
		t->flags = t->sink ? t->sink->refresh(t) : 0;
	}
	return (t->flags & what) != 0;
}

void smtp_trace_end(struct smtp_trace *t)
{
	if (t->sink && t->state && t->sink->release)
		t->sink->release(t);
	t->state = NULL;
}

/* ---- redaction ------------------------------------------------------------ */

static size_t put(char *out, size_t cap, size_t at, const char *p, size_t n)
{
	if (at >= cap)
		return at;
	if (n > cap - 1 - at)
		n = cap - 1 - at;
	memcpy(out + at, p, n);
	out[at + n] = '\0';
	return at + n;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t';
}

/* SASL mechanisms shown by name; anything else after AUTH could be the
 * payload itself (a client that left out the mechanism), so it is not. */
static bool known_mech(const char *m, size_t n)
{
	static const char *const mechs[] = {
		"PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "XOAUTH2", "OAUTHBEARER", "SCRAM-SHA-1",
		"SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS", "EXTERNAL", "GSSAPI", "NTLM", "ANONYMOUS",
	};

	for (size_t i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
		if (strlen(mechs[i]) == n && !strncasecmp(m, mechs[i], n))
			return true;
	return false;
}

/* "AUTH ..." (any case, leading blanks allowed): what may be shown of it,
 * or 0 when the line is no AUTH command. */
static size_t redact_auth(const char *line, size_t len, char *out, size_t cap)
{
	size_t i = 0, m, at;

	while (i < len && is_ws(line[i]))
		i++;
	if (len - i < 4 || strncasecmp(line + i, "AUTH", 4) || (len - i > 4 && !is_ws(line[i + 4])))
		return 0;
	at = put(out, cap, 0, line + i, 4);
	for (i += 4; i < len && is_ws(line[i]); i++)
		;
	if (i == len)
		return at;
	for (m = i; m < len && !is_ws(line[m]); m++)
		;
	if (!known_mech(line + i, m - i))
		return put(out, cap, at, " " SMTP_TRACE_REDACTED, strlen(SMTP_TRACE_REDACTED) + 1);
	at = put(out, cap, at, " ", 1);
	at = put(out, cap, at, line + i, m - i);
	while (m < len && is_ws(line[m]))
		m++;
	if (m < len) /* an initial response */
		at = put(out, cap, at, " " SMTP_TRACE_REDACTED, strlen(SMTP_TRACE_REDACTED) + 1);
	return at;
}

size_t smtp_trace_redact(enum smtp_trace_ev ev, const char *line, size_t len, bool *after_334, char *out,
			 size_t cap)
{
	size_t n;

	if (!cap)
		return 0;
	out[0] = '\0';
	switch (ev) {
	case SMTP_TRACE_EV_SECRET:
		*after_334 = false;
		return put(out, cap, 0, SMTP_TRACE_REDACTED, strlen(SMTP_TRACE_REDACTED));
	case SMTP_TRACE_EV_CMD:
		if (*after_334) {
			/* the answer to a challenge, whatever it looks like */
			*after_334 = false;
			return put(out, cap, 0, SMTP_TRACE_REDACTED, strlen(SMTP_TRACE_REDACTED));
		}
		if ((n = redact_auth(line, len, out, cap)))
			return n;
		return put(out, cap, 0, line, len);
	case SMTP_TRACE_EV_REPLY:
		if (len >= 3 && !memcmp(line, "334", 3) && (len == 3 || line[3] == ' ' || line[3] == '-')) {
			*after_334 = true;
			n = put(out, cap, 0, line, len > 3 ? 4 : 3);
			return len > 4 ? put(out, cap, n, SMTP_TRACE_REDACTED, strlen(SMTP_TRACE_REDACTED)) : n;
		}
		*after_334 = false;
		return put(out, cap, 0, line, len);
	default:
		return put(out, cap, 0, line, len);
	}
}

/* ---- events ----------------------------------------------------------------- */

static void emit_line(struct smtp_trace *t, enum smtp_trace_ev ev, const char *p, size_t n)
{
	char buf[TRACE_LINE_MAX + 1];
	size_t len = smtp_trace_redact(ev, p, n, &t->after_334, buf, sizeof(buf));

	t->sink->line(t, ev == SMTP_TRACE_EV_SECRET ? SMTP_TRACE_EV_CMD : ev, buf, len);
}

void smtp_trace_event(struct smtp_trace *t, enum smtp_trace_ev ev, const char *p, size_t n)
{
	if (!t->sink)
		return;
	if (ev == SMTP_TRACE_EV_CONNECT || ev == SMTP_TRACE_EV_TLS || ev == SMTP_TRACE_EV_CLOSE) {
		emit_line(t, ev, p, n);
		return;
	}
	while (n) {
		const char *lf = memchr(p, '\n', n);
		size_t len = lf ? (size_t)(lf - p) : n, next = lf ? len + 1 : n;

		if (len && p[len - 1] == '\r')
			len--;
		emit_line(t, ev, p, len);
		p += next;
		n -= next;
	}
}
