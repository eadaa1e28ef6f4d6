/*
 * bounce_text.c - the bounces that are not RFC 3464: Postfix, Exim, qmail,
 * Exchange, Notes, provider-specific texts. Rather than one parser per MTA,
 * what they share: a human-readable part that names each failed address
 * and, on the same or the next lines, the remote server's reply (an SMTP
 * code, often an enhanced status code, a text).
 *
 * The scan: the readable text before the quoted original message (its
 * start is recognised by the usual separators or the first Received/
 * Return-Path header), the addresses in it that are not the bounce's own
 * sender or receiver, an MTA role account or a header's ("> " quoting and
 * indentation aside), and for each the reply found in its paragraph (else
 * in the whole text). When that names no one: the same without skipping
 * the bounce's own parties (mail to oneself), then the quoted original's
 * To. A delay warning marks its recipients "delayed". Quoted-printable and
 * base64 parts are decoded first.
 *
 * The explanation (bounce_text_explain), for every report, standard or
 * not: the readable part's reason for recipients whose own reply says
 * nothing, the rest of a multi-line reply the Diagnostic-Code cut, and
 * which command the reply answered, where the text says (Postfix's "in
 * reply to RCPT TO command" / "end of DATA command", Exim's "after RCPT
 * TO:" / "after end of data", a Sendmail transcript's ">>> RCPT" or
 * ">>> DATA", the latter read as pipelined RCPT replies when a 503 or "no
 * valid recipients" follows).
 */
#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/bounce_report.h"

#define TEXT_MAX (256 * 1024)

static const char *const original_starts[] = {
	"content-type: message/rfc822", "content-type: text/rfc822-headers", "------ this is a copy",
	"--- below this line is a copy", "----- original message", "original message follows",
	"--- the header of the original message", "------ original message", "------- returned message",
	"-- returned mail follows", "original message headers", "content-description: undelivered message",
	"--- original message", "----- unsent message follows",
};

static const char *const role_accounts[] = {"mailer-daemon", "postmaster", "noreply", "no-reply", "root",
					     "abuse", "daemon", "bounce"};

/* Decode quoted-printable soft breaks and =XX in place. */
static size_t qp_decode(char *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '=' && i + 1 < n && (s[i + 1] == '\n' || s[i + 1] == '\r')) {
			i += s[i + 1] == '\r' && i + 2 < n && s[i + 2] == '\n' ? 2 : 1;
		} else if (s[i] == '=' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) && isxdigit((unsigned char)s[i + 2])) {
			char h[3] = {s[i + 1], s[i + 2], 0};
			s[o++] = (char)strtol(h, NULL, 16);
			i += 2;
		} else {
			s[o++] = s[i];
		}
	}
	return o;
}

/* The body text with base64/QP parts decoded, lower-case copy alongside. */
static char *readable_text(const char *msg, size_t len, size_t *out_len)
{
	char *t = malloc(len < TEXT_MAX ? len + 1 : TEXT_MAX + 1);
	size_t n = 0, off = 0;
	const char *body = NULL;

	if (!t)
		return NULL;
	/* skip the bounce's own header block */
	for (size_t i = 0; i + 1 < len; i++)
		if (msg[i] == '\n' && (msg[i + 1] == '\n' || (msg[i + 1] == '\r' && i + 2 < len && msg[i + 2] == '\n'))) {
			body = msg + i + 1;
			break;
		}
	if (!body)
		body = msg;
	off = (size_t)(body - msg);
	while (off < len && n < TEXT_MAX) {
		const char *p = msg + off, *nl = memchr(p, '\n', len - off);
		size_t l = nl ? (size_t)(nl - p) + 1 : len - off;

		/* a base64 block: decode it when it looks like one (long lines of base64 only) */
		if (l >= 40 && l <= 80) {
			size_t k = 0, end = off;
			bool b64 = true;

			while (end < len && b64) {
				const char *q = msg + end, *qnl = memchr(q, '\n', len - end);
				size_t ql = qnl ? (size_t)(qnl - q) : len - end, w = ql;

				if (w && q[w - 1] == '\r')
					w--;
				if (!w)
					break;
				for (size_t j = 0; j < w && b64; j++)
					b64 = isalnum((unsigned char)q[j]) || q[j] == '+' || q[j] == '/' || q[j] == '=';
				if (!b64 || w % 4)
					break;
				k++;
				end += ql + (qnl ? 1 : 0);
			}
			if (k >= 2) {
				char *clean = malloc(end - off + 4);
				unsigned char *dec = clean ? malloc((end - off) / 4 * 3 + 4) : NULL;
				size_t m = 0;

				for (size_t j = off; clean && j < end; j++)
					if (!isspace((unsigned char)msg[j]))
						clean[m++] = msg[j];
				int d = dec ? EVP_DecodeBlock(dec, (unsigned char *)clean, (int)(m - m % 4)) : -1;

				for (int j = 0; j < d && n < TEXT_MAX; j++)
					if (dec[j])
						t[n++] = (char)dec[j];
				free(clean);
				free(dec);
				off = end;
				continue;
			}
		}
		memcpy(t + n, p, l < TEXT_MAX - n ? l : TEXT_MAX - n);
		n += l < TEXT_MAX - n ? l : TEXT_MAX - n;
		off += l;
	}
	n = qp_decode(t, n);
	t[n] = '\0';
	*out_len = n;
	return t;
}

/* Where the quoted original begins (or the end). */
static size_t text_end(const char *t, size_t n)
{
	size_t end = n;

	for (size_t i = 0; i < sizeof(original_starts) / sizeof(original_starts[0]); i++) {
		const char *p = strcasestr(t, original_starts[i]);

		if (p && (size_t)(p - t) < end && p - t > 20)
			end = (size_t)(p - t);
	}
	/* quoted headers of the original */
	for (size_t i = 0; i + 10 < end; i++)
		if ((i == 0 || t[i - 1] == '\n') && (!strncasecmp(t + i, "Received: ", 10) ||
						     !strncasecmp(t + i, "Return-Path: ", 13) ||
						     !strncasecmp(t + i, "DKIM-Signature:", 15)) && i > 40) {
			end = i;
			break;
		}
	return end;
}

static bool addr_char(char c)
{
	return isalnum((unsigned char)c) || strchr(".!#$%&'*+-/=?^_`{|}~", c);
}

/* The next address in t[from..end): [*s, *e). */
static bool next_addr(const char *t, size_t end, size_t *from, size_t *s, size_t *e)
{
	for (size_t i = *from; i < end; i++) {
		if (t[i] != '@' || i == 0)
			continue;
		size_t a = i, b = i + 1;
		bool dot = false;

		while (a > 0 && addr_char(t[a - 1]))
			a--;
		while (b < end && (isalnum((unsigned char)t[b]) || t[b] == '-' || t[b] == '.' || t[b] == '_')) {
			dot = dot || t[b] == '.';
			b++;
		}
		while (b > i + 1 && t[b - 1] == '.')
			b--;
		*from = b;
		/* 'quoted' in prose; Exchange's "SMTP=user@host" address type */
		while (a < i && t[a] == '\'' && b < end && t[b] == '\'')
			a++;
		if (i - a > 5 && !strncasecmp(t + a, "smtp", 4) && (t[a + 4] == '=' || t[a + 4] == ':'))
			a += 5;
		if (a == i || b == i + 1 || !dot || b - a > 254)
			continue;
		*s = a;
		*e = b;
		return true;
	}
	return false;
}

static bool role_account(const char *addr)
{
	for (size_t i = 0; i < sizeof(role_accounts) / sizeof(role_accounts[0]); i++)
		if (!strncasecmp(addr, role_accounts[i], strlen(role_accounts[i])))
			return true;
	return false;
}

/* The SMTP code and enhanced status in ctx (first found). */
static void find_reply(const char *ctx, int *code, char *status, size_t cap)
{
	for (const char *p = ctx; *p; p++) {
		if (!status[0] && (p[0] == '4' || p[0] == '5') && p[1] == '.' && isdigit((unsigned char)p[2]) &&
		    (p == ctx || !isalnum((unsigned char)p[-1]))) {
			int a, b;

			if (sscanf(p, "%*d.%d.%d", &a, &b) == 2 && a < 8 && b < 1000)
				snprintf(status, cap, "%c.%d.%d", p[0], a % 10, b % 1000);
		}
		if (!*code && (p[0] == '4' || p[0] == '5') && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
		    (p == ctx || !isalnum((unsigned char)p[-1])) && !isalnum((unsigned char)p[3]) && p[3] != '.' &&
		    p[1] <= '5')
			*code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	}
}

/* Start of the line holding t[at], past indentation and "> " quoting. */
static size_t line_start(const char *t, size_t at, size_t *text)
{
	size_t ls = at;

	while (ls > 0 && t[ls - 1] != '\n')
		ls--;
	*text = ls;
	while (t[*text] == ' ' || t[*text] == '\t' || t[*text] == '>')
		(*text)++;
	return ls;
}

/* A header-like line whose address is not a recipient: the bounce's or the
 * original's own fields ("Message-ID:", "From:", Exchange's "To:" summary). */
static bool header_line(const char *l, bool strict)
{
	static const char *const always[] = {"message-id", "from:", "reply-to", "sender", "return-path", "x-",
					     "in-reply-to", "references"};
	static const char *const summary[] = {"to:", "cc:", "subject:", "sent:", "date:"};

	for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++)
		if (!strncasecmp(l, always[i], strlen(always[i])))
			return true;
	for (size_t i = 0; strict && i < sizeof(summary) / sizeof(summary[0]); i++)
		if (!strncasecmp(l, summary[i], strlen(summary[i])))
			return true;
	return false;
}

/* t[0..end) flattened into out: the readable part's own words (MIME
 * boundaries and part headers left out), whitespace runs as one space. */
static void flatten(const char *t, size_t end, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < end && o + 1 < cap; i++) {
		if ((i == 0 || t[i - 1] == '\n') &&
		    ((i + 2 < end && t[i] == '-' && t[i + 1] == '-' && t[i + 2] != ' ' && t[i + 2] != '-') ||
		     (i + 8 < end && !strncasecmp(t + i, "content-", 8)))) {
			while (i + 1 < end && t[i + 1] != '\n')
				i++;
			continue;
		}
		char c = t[i] == '\r' || t[i] == '\n' || t[i] == '\t' ? ' ' : t[i];

		if (c == ' ' && (o == 0 || out[o - 1] == ' '))
			continue;
		out[o++] = c;
	}
	out[o] = '\0';
}

/* A line that names a recipient first thing (after an optional SMTP code):
 * where the previous recipient's paragraph ends. */
static bool recipient_line(const char *t, size_t ls, size_t end)
{
	size_t i = ls;

	while (i < end && (t[i] == ' ' || t[i] == '\t' || t[i] == '>'))
		i++;
	if (i + 3 < end && isdigit((unsigned char)t[i]) && isdigit((unsigned char)t[i + 1]) &&
	    isdigit((unsigned char)t[i + 2]) && t[i + 3] == ' ')
		i += 4;
	if (i < end && (t[i] == '<' || t[i] == '"'))
		i++;
	while (i < end && addr_char(t[i]))
		i++;
	return i < end && t[i] == '@' && i > ls;
}

static bool starts_with_code(const char *t, size_t i, size_t end)
{
	while (i < end && (t[i] == ' ' || t[i] == '\t'))
		i++;
	return i + 3 < end && (t[i] == '4' || t[i] == '5') && isdigit((unsigned char)t[i + 1]) &&
	       isdigit((unsigned char)t[i + 2]) && (t[i + 3] == ' ' || t[i + 3] == '-');
}

/* The paragraph of an address: from its line to a blank line or the next
 * recipient line, 6 lines at most, whitespace flattened. A line that opens
 * with its own reply code (Sendmail's "554 <a@b>... reason") is a
 * paragraph by itself when the next one opens with another. */
static void paragraph(const char *t, size_t ls, size_t e, size_t end, char *ctx, size_t cap)
{
	size_t ce = e, lines = 0;
	bool coded = starts_with_code(t, ls, end);

	while (ce < end && lines < 6) {
		if (t[ce] == '\n') {
			lines++;
			if (ce + 1 < end && (t[ce + 1] == '\n' || (t[ce + 1] == '\r' && ce + 2 < end && t[ce + 2] == '\n')))
				break;
			if (recipient_line(t, ce + 1, end) || (coded && starts_with_code(t, ce + 1, end)))
				break;
		}
		ce++;
	}
	flatten(t + ls, ce - ls, ctx, cap);
}

static bool take_addr(const char *t, size_t s, size_t e, char *addr, size_t cap)
{
	size_t l = e - s < cap - 1 ? e - s : cap - 1;

	memcpy(addr, t + s, l);
	addr[l] = '\0';
	return !strstr(addr, "..") && addr[0] != '.';
}

static bool known(const struct bounce_report *r, const char *addr)
{
	for (size_t i = 0; i < r->n_rcpts; i++)
		if (!strcasecmp(r->rcpts[i].addr, addr))
			return true;
	return false;
}

/* One pass over t[0..end): strict skips the bounce's own parties and
 * summary lines; the lenient pass (when the strict one found nothing) takes
 * any address that is not a role account or a header's. */
static int scan_pass(const char *t, size_t end, const char *skip1, const char *skip2, bool strict,
		     const char *whole_status, int whole_code, struct bounce_report *r)
{
	size_t from = 0, s, e;
	int found = 0;

	while (r->n_rcpts < BOUNCE_MAX_RCPTS && next_addr(t, end, &from, &s, &e)) {
		char addr[320], ctx[1024];
		size_t ls, lt;

		if (!take_addr(t, s, e, addr, sizeof(addr)) || role_account(addr))
			continue;
		if (strict && ((skip1 && !strcasecmp(addr, skip1)) || (skip2 && !strcasecmp(addr, skip2))))
			continue;
		ls = line_start(t, s, &lt);
		if (header_line(t + lt, strict) || known(r, addr))
			continue;
		paragraph(t, ls, e, end, ctx, sizeof(ctx));

		struct bounce_rcpt *x = &r->rcpts[r->n_rcpts++];

		memset(x, 0, sizeof(*x));
		snprintf(x->addr, sizeof(x->addr), "%s", addr);
		find_reply(ctx, &x->code, x->status, sizeof(x->status));
		if (!x->code && !x->status[0]) {
			x->code = whole_code;
			snprintf(x->status, sizeof(x->status), "%s", whole_status);
		}
		snprintf(x->diag, sizeof(x->diag), "%s", ctx);
		snprintf(x->action, sizeof(x->action), "failed");
		found++;
	}
	return found;
}

/* The To: of the quoted original, when the readable part names no one. */
static int original_to(const char *t, size_t from, size_t n, const char *whole_status, int whole_code,
		       const char *text_diag, struct bounce_report *r)
{
	for (size_t i = from; i + 4 < n && r->n_rcpts < BOUNCE_MAX_RCPTS; i++) {
		size_t f, s, e, le;
		char addr[320];

		if ((i && t[i - 1] != '\n') || strncasecmp(t + i, "To:", 3))
			continue;
		for (le = i; le < n && t[le] != '\n'; le++)
			;
		f = i;
		if (!next_addr(t, le, &f, &s, &e) || !take_addr(t, s, e, addr, sizeof(addr)))
			continue;
		struct bounce_rcpt *x = &r->rcpts[r->n_rcpts++];

		memset(x, 0, sizeof(*x));
		snprintf(x->addr, sizeof(x->addr), "%s", addr);
		snprintf(x->status, sizeof(x->status), "%s", whole_status);
		x->code = whole_code;
		snprintf(x->diag, sizeof(x->diag), "%s", text_diag);
		snprintf(x->action, sizeof(x->action), "failed");
		return 1;
	}
	return 0;
}

/* A warning that delivery is late, not that it failed. */
static bool delay_warning(const char *text)
{
	static const char *const phrases[] = {"warning message only", "has been delayed", "will be retried",
					      "delivery is delayed", "delivery delayed", "not yet been delivered",
					      "still trying", "will keep trying", "will continue trying",
					      "still undelivered after", "could not send message for past"};

	for (size_t i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++)
		if (strcasestr(text, phrases[i]))
			return true;
	return false;
}

int bounce_text_scan(const char *msg, size_t len, const char *skip1, const char *skip2, struct bounce_report *r)
{
	size_t n, end;
	char *t = readable_text(msg, len, &n);
	int whole_code = 0, found;
	char whole_status[16] = "";

	if (!t)
		return 0;
	end = text_end(t, n);
	{
		char save = t[end];

		t[end] = '\0';
		find_reply(t, &whole_code, whole_status, sizeof(whole_status));
		t[end] = save;
	}
	flatten(t, end, r->text_diag, sizeof(r->text_diag));
	found = scan_pass(t, end, skip1, skip2, true, whole_status, whole_code, r);
	if (!found)
		found = scan_pass(t, end, skip1, skip2, false, whole_status, whole_code, r);
	if (!found)
		found = original_to(t, end, n, whole_status, whole_code, r->text_diag, r);
	if (delay_warning(r->text_diag))
		for (size_t i = r->n_rcpts - (size_t)found; i < r->n_rcpts; i++)
			snprintf(r->rcpts[i].action, sizeof(r->rcpts[i].action), "delayed");
	free(t);
	return (int)r->n_rcpts;
}

/* The command a text names as the one a reply answered, the first mention
 * winning: RCPT TO (Postfix's "in reply to RCPT TO command", Exim's
 * "after RCPT TO:<...>", qmail's "RCPT TO response", "[RCPT_TO]",
 * "following RCPT command", a ">>> RCPT To:" transcript line), the end
 * of data ("in reply to end of DATA command", "after end of data") or
 * before any recipient (Exim's "after MAIL FROM:<...>" and "after initial
 * connection", "[MAIL_FROM]", "in reply to MAIL FROM command"). */
static enum bounce_phase phase_named(const char *s)
{
	static const struct {
		const char *says;
		enum bounce_phase phase;
	} names[] = {
		{"rcpt to", BOUNCE_PHASE_RCPT},     {"rcpt_to", BOUNCE_PHASE_RCPT},    {"rcpt command", BOUNCE_PHASE_RCPT},
		{"end of data", BOUNCE_PHASE_DATA}, {"after data", BOUNCE_PHASE_DATA}, {"reply to data", BOUNCE_PHASE_DATA},
		{"after mail from", BOUNCE_PHASE_MAIL}, {"mail from command", BOUNCE_PHASE_MAIL},
		{"[mail_from]", BOUNCE_PHASE_MAIL}, {"after initial connection", BOUNCE_PHASE_MAIL},
		{"reply to helo", BOUNCE_PHASE_MAIL}, {"reply to ehlo", BOUNCE_PHASE_MAIL},
	};
	enum bounce_phase ph = BOUNCE_PHASE_UNKNOWN;
	const char *first = NULL;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *p = strcasestr(s, names[i].says);

		if (p && (!first || p < first)) {
			first = p;
			ph = names[i].phase;
		}
	}
	return ph;
}

/* The command on the ">>> " line nearest before t[at] (20 lines back at
 * most, replies in between allowed), NULL when there is none. */
static const char *command_before(const char *t, size_t at)
{
	size_t e = at;

	for (int lines = 0; e > 0 && lines < 20; lines++) {
		size_t ls = e - 1;
		const char *c;

		while (ls > 0 && t[ls - 1] != '\n')
			ls--;
		c = memmem(t + ls, e - ls, ">>> ", 4);
		if (c)
			return c + 4;
		e = ls;
	}
	return NULL;
}

/* A Sendmail transcript that quotes the reply ("<<< 550 ..."): the command
 * sent last before it decides. A reply read after ">>> DATA" answered DATA,
 * unless a later reply in the same exchange says no recipient was accepted
 * ("503 ... need RCPT", "no valid recipients"): then the DATA was
 * pipelined after refused RCPTs and the reply was a RCPT reply. */
static enum bounce_phase transcript_phase(const char *t, size_t end, const char *diag)
{
	size_t dl = strlen(diag), k = dl < 24 ? dl : 24;

	if (dl < 8)
		return BOUNCE_PHASE_UNKNOWN;
	for (const char *p = t; (p = strstr(p, "<<< ")) && (size_t)(p - t) < end; p += 4) {
		const char *cmd, *nl;

		if (strncasecmp(p + 4, diag, k) || !(cmd = command_before(t, (size_t)(p - t))))
			continue;
		if (!strncasecmp(cmd, "RCPT", 4))
			return BOUNCE_PHASE_RCPT;
		if (!strncasecmp(cmd, "MAIL", 4) || !strncasecmp(cmd, "HELO", 4) || !strncasecmp(cmd, "EHLO", 4))
			return BOUNCE_PHASE_MAIL;
		if (strncasecmp(cmd, "DATA", 4))
			return BOUNCE_PHASE_UNKNOWN;
		/* the replies after it, up to the next command */
		for (nl = strchr(p, '\n'); nl && (size_t)(nl - t) + 1 < end; nl = strchr(nl + 1, '\n')) {
			const char *l = nl + 1, *le = strchr(l, '\n'), *r;
			char line[256];
			size_t ll = le ? (size_t)(le - l) : strlen(l);

			while (ll && (l[ll - 1] == '\r' || l[ll - 1] == ' '))
				ll--;
			if (!ll || memmem(l, ll, ">>> ", 4))
				break; /* the exchange ends at a blank line or the next command */
			if (!(r = memmem(l, ll, "<<< ", 4)))
				continue;
			snprintf(line, sizeof(line), "%.*s", (int)(ll - (size_t)(r - l)), r);
			if (!strncmp(r + 4, "503", 3) || strcasestr(line, "rcpt") || strcasestr(line, "no valid recipient"))
				return BOUNCE_PHASE_RCPT;
		}
		return BOUNCE_PHASE_DATA;
	}
	return BOUNCE_PHASE_UNKNOWN;
}

/* The stage the reply in x->diag answered, where the report says: in the
 * reply text itself, in a transcript that quotes it, or in the note
 * Postfix puts after the same reply in the readable part ("(in reply to
 * RCPT TO command)"). flat is the readable part, whitespace flattened. */
static enum bounce_phase reply_phase(const char *t, size_t end, const char *flat, const char *diag)
{
	size_t dl = strlen(diag);
	enum bounce_phase ph = bounce_source_on("sendmail") ? transcript_phase(t, end, diag) : BOUNCE_PHASE_UNKNOWN;
	char head[32];

	if (ph == BOUNCE_PHASE_UNKNOWN)
		ph = phase_named(diag);
	if (ph != BOUNCE_PHASE_UNKNOWN || dl < 8 || !bounce_source_on("postfix"))
		return ph;
	/* the same reply quoted in the readable part, with Postfix's note after it */
	snprintf(head, sizeof(head), "%.24s", dl > 12 && diag[3] == ' ' ? diag + 4 : diag);
	for (const char *p = flat; (p = strcasestr(p, head)); p++) {
		const char *note = strcasestr(p, "in reply to "), *eod;

		if (note && note - p < 400) {
			note += 12;
			if (!strncasecmp(note, "rcpt", 4))
				return BOUNCE_PHASE_RCPT;
			if (!strncasecmp(note, "mail from", 9) || !strncasecmp(note, "helo", 4) || !strncasecmp(note, "ehlo", 4) ||
			    !strncasecmp(note, "initial protocol greeting", 25))
				return BOUNCE_PHASE_MAIL;
			if (!strncasecmp(note, "end of data", 11) || !strncasecmp(note, "data", 4))
				return BOUNCE_PHASE_DATA;
			return BOUNCE_PHASE_UNKNOWN;
		}
		if ((eod = strcasestr(p, "end of data")) && eod - p < 160)
			return BOUNCE_PHASE_DATA;
	}
	return BOUNCE_PHASE_UNKNOWN;
}

/* x's paragraph in the readable text t[0..end), when it is named there. */
static void own_paragraph(const char *t, size_t end, struct bounce_rcpt *x)
{
	const char *at = x->addr[0] ? strcasestr(t, x->addr) : NULL;
	size_t lt, ls;

	if (!at || (size_t)(at - t) >= end)
		return;
	ls = line_start(t, (size_t)(at - t), &lt);
	paragraph(t, ls, (size_t)(at - t) + strlen(x->addr), end, x->diag, sizeof(x->diag));
}

/* The text of one reply line after its "<<< " / "NNN-" / "N.N.N " prefix,
 * when the line carries the given code; NULL otherwise. */
static const char *continuation(const char *line, const char *code, bool *last)
{
	const char *q = line;

	while (*q == ' ' || *q == '\t' || *q == '<' || *q == '>')
		q++;
	if (strncmp(q, code, 3) || (q[3] != '-' && q[3] != ' '))
		return NULL;
	*last = q[3] == ' ';
	q += 4;
	if ((q[0] == '4' || q[0] == '5') && q[1] == '.')
		while (*q && *q != ' ' && *q != '\n')
			q++;
	return q;
}

/* A multi-line reply ("552-5.7.0 ...") that the Diagnostic-Code cut after
 * its first line: the rest from the transcript in the readable part. */
static void join_reply(const char *t, size_t end, struct bounce_rcpt *x)
{
	char head[32], code[4];
	const char *p, *nl;
	bool last = false;

	if (strlen(x->diag) < 12 || !isdigit((unsigned char)x->diag[0]) || x->diag[3] != '-')
		return;
	memcpy(code, x->diag, 3);
	code[3] = '\0';
	snprintf(head, sizeof(head), "%.24s", x->diag + 4);
	/* the first quote of it that goes on, in the transcript */
	for (p = t; (p = strcasestr(p, head)) && (size_t)(p - t) < end; p++) {
		nl = strchr(p, '\n');
		if (nl && continuation(nl + 1, code, &last))
			break;
	}
	if (!p || (size_t)(p - t) >= end)
		return;
	for (nl = strchr(p, '\n'), last = false; nl && !last && (size_t)(nl - t) < end; nl = strchr(nl + 1, '\n')) {
		const char *c = continuation(nl + 1, code, &last);
		size_t dl = strlen(x->diag), cl;

		if (!c)
			break;
		for (cl = 0; c[cl] && c[cl] != '\n' && c[cl] != '\r'; cl++)
			;
		snprintf(x->diag + dl, sizeof(x->diag) - dl, " %.*s", (int)cl, c);
	}
}

/* Neither x's reply text nor a specific status code says why. */
static bool unexplained(const struct bounce_rcpt *x)
{
	int a, b;

	if (strcmp(bounce_category(0, NULL, x->diag), "other"))
		return false;
	return sscanf(x->status, "%*d.%d.%d", &a, &b) != 2 || b == 0;
}

void bounce_text_explain(const char *msg, size_t len, struct bounce_report *r)
{
	size_t n, end;
	char *t = readable_text(msg, len, &n), *flat;

	if (!t)
		return;
	end = text_end(t, n);
	flatten(t, end, r->text_diag, sizeof(r->text_diag));
	flat = malloc(end + 1);
	if (flat)
		flatten(t, end, flat, end + 1);
	for (size_t i = 0; i < r->n_rcpts; i++) {
		struct bounce_rcpt *x = &r->rcpts[i];

		if (!x->diag[0])
			own_paragraph(t, end, x);
		join_reply(t, end, x);
		if (r->n_rcpts == 1 && unexplained(x)) {
			/* the reason is elsewhere in the readable part */
			size_t dl = strlen(x->diag);

			snprintf(x->diag + dl, sizeof(x->diag) - dl, "%s%s", dl ? " | " : "", r->text_diag);
		}
		if (x->phase == BOUNCE_PHASE_UNKNOWN)
			x->phase = reply_phase(t, end, flat ? flat : "", x->diag);
	}
	free(flat);
	free(t);
}

bool bounce_text_says_failed(const char *body, size_t len)
{
	static const char *const phrases[] = {"could not be delivered", "undeliverable", "delivery failed",
					      "delivery has failed", "was not delivered", "wasn't delivered",
					      "not a member of", "permanent error", "delivery to the following"};
	char head[2048];
	size_t n = len < sizeof(head) - 1 ? len : sizeof(head) - 1;

	memcpy(head, body, n);
	for (size_t i = 0; i < n; i++)
		if (!head[i])
			head[i] = ' ';
	head[n] = '\0';
	for (size_t i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++)
		if (strcasestr(head, phrases[i]))
			return true;
	return false;
}
