/*
 * bounce_report.c - standard bounce and complaint reports (see
 * bounce_report.h): a bounded MIME walk that reads the
 * message/delivery-status, message/feedback-report and quoted-original
 * parts (and delivery-status fields a broken MIME structure left loose,
 * Exim's X-Failed-Recipients, Microsoft's JMRP complaints, Google Groups'
 * refusals). What a report means (its categories) is bounce_category.c's;
 * the non-standard texts are bounce_text.c's.
 */
#include "engine/bounce_report.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_DEPTH 6
#define MAX_PARTS 64

struct span {
	const char *p;
	size_t n;
};

/* ---- header blocks ------------------------------------------------------------ */

static size_t line_len(const char *p, size_t n, size_t *next)
{
	const char *nl = memchr(p, '\n', n);
	size_t l = nl ? (size_t)(nl - p) : n;

	*next = nl ? l + 1 : n;
	return l && p[l - 1] == '\r' ? l - 1 : l;
}

/* Split at the first empty line: headers and body. */
static void split_part(struct span in, struct span *hdr, struct span *body)
{
	size_t off = 0, next;

	while (off < in.n) {
		size_t l = line_len(in.p + off, in.n - off, &next);

		if (l == 0) {
			*hdr = (struct span){in.p, off};
			*body = (struct span){in.p + off + next, in.n - off - next};
			return;
		}
		off += next;
	}
	*hdr = in;
	*body = (struct span){in.p + in.n, 0};
}

/* The unfolded value of the first `name:` field in hdr, into out. */
static bool header_get(struct span hdr, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name), off = 0, next;

	while (off < hdr.n) {
		const char *p = hdr.p + off;
		size_t l = line_len(p, hdr.n - off, &next);

		if (l > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			size_t o = 0;

			off += next;
			p += nl + 1;
			l -= nl + 1;
			for (;;) {
				for (size_t i = 0; i < l && o + 1 < cap; i++)
					out[o++] = p[i] == '\t' ? ' ' : p[i];
				if (off >= hdr.n || (hdr.p[off] != ' ' && hdr.p[off] != '\t'))
					break;
				p = hdr.p + off;
				l = line_len(p, hdr.n - off, &next);
				off += next;
				/* a fold is one space, however it was indented */
				while (l && (*p == ' ' || *p == '\t'))
					p++, l--;
				if (o + 1 < cap)
					out[o++] = ' ';
			}
			out[o] = '\0';
			/* trim */
			size_t s = 0;
			while (out[s] == ' ')
				s++;
			memmove(out, out + s, o - s + 1);
			for (o = strlen(out); o && out[o - 1] == ' '; o--)
				out[o - 1] = '\0';
			return true;
		}
		off += next;
	}
	if (cap)
		out[0] = '\0';
	return false;
}

/* A parameter of a Content-Type value (quoted or not), into out. */
static bool param_get(const char *ct, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);

	for (const char *p = strchr(ct, ';'); p; p = strchr(p + 1, ';')) {
		const char *q = p + 1;

		while (*q == ' ')
			q++;
		if (strncasecmp(q, name, nl) || q[nl] != '=')
			continue;
		q += nl + 1;
		size_t o = 0;
		if (*q == '"') {
			for (q++; *q && *q != '"' && o + 1 < cap; q++)
				out[o++] = *q;
		} else {
			for (; *q && *q != ';' && *q != ' ' && o + 1 < cap; q++)
				out[o++] = *q;
		}
		out[o] = '\0';
		return o > 0;
	}
	return false;
}

/* "rfc822; user@example.com" -> "user@example.com" (angle brackets off).
 * A quoted local part ("john doe"@example.com, "a..b"@example.com) is
 * kept whole, quotes and all: RFC 5321 needs them where the local part is
 * not a dot-string, the address we sent to had them, and the suppression
 * list keys on the local part as given. */
static void addr_value(const char *v, char *out, size_t cap)
{
	const char *semi = strchr(v, ';'), *dq = strchr(v, '"');
	const char *s = semi && (!dq || semi < dq) ? semi + 1 : v;
	bool quoted = false;
	size_t o = 0;

	while (*s == ' ' || *s == '<')
		s++;
	for (; *s && o + 1 < cap; s++) {
		if (*s == '"')
			quoted = !quoted;
		else if (quoted && *s == '\\' && s[1] && o + 2 < cap)
			out[o++] = *s++;
		else if (!quoted && (*s == '>' || *s == ' '))
			break;
		out[o++] = *s;
	}
	out[o] = '\0';
}

/* ---- report parts -------------------------------------------------------------- */

/* A recipient address field: Original-Recipient when it is an address in
 * a domain (the address the sender gave, so the one we mailed and keep
 * suppression under; Final-Recipient may be where an alias or forward
 * led), else Final-Recipient. */
static void rcpt_addr(struct span blk, char *out, size_t cap)
{
	char v[512], o[320] = "";
	const char *oat;

	if (header_get(blk, "Original-Recipient", v, sizeof(v)))
		addr_value(v, o, sizeof(o));
	oat = strchr(o, '@');
	if (oat && o[0] != '@' && oat > o && strchr(oat, '.')) {
		snprintf(out, cap, "%s", o);
		return;
	}
	out[0] = '\0';
	if (header_get(blk, "Final-Recipient", v, sizeof(v)))
		addr_value(v, out, cap);
}

/* One per-recipient block of a delivery-status body. */
static void parse_dsn_block(struct span blk, struct bounce_rcpt *x)
{
	char v[512];

	memset(x, 0, sizeof(*x));
	rcpt_addr(blk, x->addr, sizeof(x->addr));
	header_get(blk, "Action", x->action, sizeof(x->action));
	if (header_get(blk, "Status", v, sizeof(v)))
		sscanf(v, "%15[0-9.]", x->status);
	if (header_get(blk, "Diagnostic-Code", v, sizeof(v))) {
		const char *d = strchr(v, ';');

		d = d ? d + 1 : v;
		while (*d == ' ')
			d++;
		if (isdigit((unsigned char)d[0]) && isdigit((unsigned char)d[1]) && isdigit((unsigned char)d[2]))
			x->code = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
		snprintf(x->diag, sizeof(x->diag), "%s", d);
	}
}

/* The per-recipient blocks of a message/delivery-status body (the first
 * block is the per-message one unless skip_first is false). */
static void parse_dsn_blocks(struct span body, struct bounce_report *r, bool skip_first)
{
	size_t off = 0, next = 0, start = 0;
	bool first = skip_first;

	if (r->kind != BOUNCE_KIND_ARF) /* a DSN quoted inside a complaint stays a complaint */
		r->kind = BOUNCE_KIND_DSN;
	while (off <= body.n) {
		size_t l = off < body.n ? line_len(body.p + off, body.n - off, &next) : 0;

		if (off >= body.n || l == 0) {
			struct span blk = {body.p + start, off - start};

			if (blk.n && !first && r->n_rcpts < BOUNCE_MAX_RCPTS) {
				parse_dsn_block(blk, &r->rcpts[r->n_rcpts]);
				if (r->rcpts[r->n_rcpts].addr[0])
					r->n_rcpts++;
			}
			if (blk.n)
				first = false;
			if (off >= body.n)
				break;
			start = off + next;
		}
		off += next;
	}
}

static void parse_dsn(struct span body, struct bounce_report *r)
{
	parse_dsn_blocks(body, r, true);
}

/* Delivery-status fields outside a well-formed message/delivery-status part
 * (a lost Content-Type, a mangled boundary): from the first line that
 * starts a recipient block to the quoted original. */
static void parse_loose_dsn(struct span msg, struct bounce_report *r)
{
	size_t off = 0, next, start = msg.n, stop = msg.n;

	for (; off < msg.n; off += next) {
		const char *p = msg.p + off;
		size_t l = line_len(p, msg.n - off, &next);

		if (start == msg.n && l > 16 && (!strncasecmp(p, "Final-Recipient:", 16) ||
						  (l > 19 && !strncasecmp(p, "Original-Recipient:", 19))))
			start = off;
		else if (start < msg.n && l >= 28 && !strncasecmp(p, "Content-Type: message/rfc822", 28)) {
			stop = off;
			break;
		}
	}
	if (start < stop)
		parse_dsn_blocks((struct span){msg.p + start, stop - start}, r, false);
}

static void parse_arf(struct span body, struct bounce_report *r)
{
	char v[512];

	r->kind = BOUNCE_KIND_ARF;
	header_get(body, "Feedback-Type", r->feedback_type, sizeof(r->feedback_type));
	if (header_get(body, "Original-Rcpt-To", v, sizeof(v)))
		addr_value(v, r->orig_rcpt, sizeof(r->orig_rcpt));
	if (header_get(body, "Original-Mail-From", v, sizeof(v)) && !r->orig_sender[0])
		addr_value(v, r->orig_sender, sizeof(r->orig_sender));
}

static void parse_original(struct span hdrs, struct bounce_report *r)
{
	char v[512];

	if (!r->orig_sender[0] && header_get(hdrs, "Return-Path", v, sizeof(v)))
		addr_value(v, r->orig_sender, sizeof(r->orig_sender));
	if (!r->orig_rcpt[0] && header_get(hdrs, "To", v, sizeof(v))) {
		const char *lt = strchr(v, '<');

		addr_value(lt ? lt : v, r->orig_rcpt, sizeof(r->orig_rcpt));
		if (!strchr(r->orig_rcpt, '@')) /* "undisclosed-recipients:;" */
			r->orig_rcpt[0] = '\0';
	}
	if (!r->orig_message_id[0])
		header_get(hdrs, "Message-ID", r->orig_message_id, sizeof(r->orig_message_id));
	/* Microsoft's complaint feed (JMRP) forwards the original as it was,
	 * with the complaining recipient in its own header: a complaint */
	if (r->kind == BOUNCE_KIND_UNKNOWN && bounce_source_on("microsoft") &&
	    header_get(hdrs, "X-HmXmrOriginalRecipient", v, sizeof(v)) && v[0]) {
		r->kind = BOUNCE_KIND_ARF;
		addr_value(v, r->orig_rcpt, sizeof(r->orig_rcpt));
	}
}

/* ---- the MIME walk -------------------------------------------------------------------- */

struct walk {
	struct bounce_report *r;
	int parts;
};

static void walk(struct walk *w, struct span part, int depth);

static void walk_multipart(struct walk *w, struct span body, const char *boundary, int depth)
{
	size_t bl = strlen(boundary), off = 0, next, start = 0;
	bool inside = false;

	while (off < body.n && w->parts < MAX_PARTS) {
		const char *p = body.p + off;
		size_t l = line_len(p, body.n - off, &next);

		if (l >= bl + 2 && p[0] == '-' && p[1] == '-' && memcmp(p + 2, boundary, bl) == 0) {
			if (inside) {
				/* the part ends before the CRLF that precedes the boundary */
				size_t end = off;

				if (end > start && body.p[end - 1] == '\n')
					end--;
				if (end > start && body.p[end - 1] == '\r')
					end--;
				w->parts++;
				walk(w, (struct span){body.p + start, end - start}, depth + 1);
			}
			if (l >= bl + 4 && p[bl + 2] == '-' && p[bl + 3] == '-')
				return;
			inside = true;
			start = off + next;
		}
		off += next;
	}
	if (inside && start < body.n) /* an unterminated last part still counts */
		walk(w, (struct span){body.p + start, body.n - start}, depth + 1);
}

static void walk(struct walk *w, struct span part, int depth)
{
	struct span hdr, body;
	char ct[512], cte[64], boundary[200];
	unsigned char *decoded = NULL;

	if (depth > MAX_DEPTH)
		return;
	split_part(part, &hdr, &body);
	if (!header_get(hdr, "Content-Type", ct, sizeof(ct)))
		snprintf(ct, sizeof(ct), "text/plain");
	header_get(hdr, "Content-Transfer-Encoding", cte, sizeof(cte));
	if (!strcasecmp(cte, "base64") && body.n && strncasecmp(ct, "multipart/", 10)) {
		/* decode, ignoring line breaks; pad a truncated last quantum */
		char *clean = malloc(body.n + 4);
		size_t m = 0;

		for (size_t i = 0; clean && i < body.n; i++)
			if (!isspace((unsigned char)body.p[i]))
				clean[m++] = body.p[i];
		while (clean && m % 4)
			clean[m++] = '=';
		decoded = clean ? malloc(m / 4 * 3 + 1) : NULL;
		if (decoded) {
			int n = EVP_DecodeBlock(decoded, (unsigned char *)clean, (int)m);

			if (n >= 0)
				body = (struct span){(const char *)decoded, (size_t)n};
		}
		free(clean);
	}
	if (!strncasecmp(ct, "multipart/", 10) && param_get(ct, "boundary", boundary, sizeof(boundary)))
		walk_multipart(w, body, boundary, depth);
	else if (!strncasecmp(ct, "message/delivery-status", 23) || !strncasecmp(ct, "message/global-delivery-status", 30))
		parse_dsn(body, w->r);
	else if (!strncasecmp(ct, "message/feedback-report", 23))
		parse_arf(body, w->r);
	else if (!strncasecmp(ct, "text/rfc822-headers", 19) || !strncasecmp(ct, "message/rfc822", 14) ||
		 !strncasecmp(ct, "text/rfc822", 11)) {
		struct span h, b;

		split_part(body, &h, &b);
		parse_original(h, w->r);
		if (!strncasecmp(ct, "message/rfc822", 14))
			walk(w, body, depth + 1);
	}
	free(decoded);
}

/* A delivery failure by its headers: from a mailer daemon, a subject that
 * says so, a report, or Exim's X-Failed-Recipients. */
static bool looks_like_bounce(struct span hdr)
{
	static const char *const subjects[] = {"undeliver", "undelivered", "delivery", "failure", "failed",
					       "returned", "bounce", "not delivered", "rejected", "error",
					       "unable to deliver", "nondeliverable", "non-delivery", "warning",
					       "could not be delivered", "mail system error", "delayed"};
	char v[512];

	if (header_get(hdr, "X-Failed-Recipients", v, sizeof(v)))
		return true;
	if (header_get(hdr, "From", v, sizeof(v)) && (strcasestr(v, "mailer-daemon") || strcasestr(v, "postmaster") ||
						      strcasestr(v, "mail delivery") || strcasestr(v, "mailer")))
		return true;
	if (header_get(hdr, "Content-Type", v, sizeof(v)) && strcasestr(v, "multipart/report"))
		return true;
	if (header_get(hdr, "Subject", v, sizeof(v)))
		for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++)
			if (strcasestr(v, subjects[i]))
				return true;
	return false;
}

/* The address in a header's value, angle brackets preferred. */
static void header_addr(struct span hdr, const char *name, char *out, size_t cap)
{
	char v[512];
	const char *lt;

	out[0] = '\0';
	if (header_get(hdr, name, v, sizeof(v))) {
		lt = strchr(v, '<');
		addr_value(lt ? lt : v, out, cap);
	}
}

/* Exim's X-Failed-Recipients: the failed addresses, authoritative. */
static int failed_recipients_header(struct span hdr, struct bounce_report *r)
{
	char v[2048];
	int n = 0;

	if (!bounce_source_on("exim") || !header_get(hdr, "X-Failed-Recipients", v, sizeof(v)))
		return 0;
	for (char *save = NULL, *a = strtok_r(v, ", ", &save); a && r->n_rcpts < BOUNCE_MAX_RCPTS;
	     a = strtok_r(NULL, ", ", &save)) {
		struct bounce_rcpt *x = &r->rcpts[r->n_rcpts];

		if (!strchr(a, '@'))
			continue;
		memset(x, 0, sizeof(*x));
		addr_value(a, x->addr, sizeof(x->addr));
		snprintf(x->action, sizeof(x->action), "failed");
		r->n_rcpts++;
		n++;
	}
	return n;
}

/* Google Groups answers a post it refuses with a localised notice (the
 * group may not exist or the sender may not post to it) that names the
 * group as the failed recipient: the group refused the sender. */
static void google_groups_notice(struct span hdr, struct bounce_report *r)
{
	char from[320];

	header_addr(hdr, "From", from, sizeof(from));
	if (!bounce_source_on("gmail") || strncasecmp(from, "mailer-daemon@google", 20))
		return;
	for (size_t i = 0; i < r->n_rcpts; i++) {
		struct bounce_rcpt *x = &r->rcpts[i];
		const char *at = strrchr(x->addr, '@');
		char d[sizeof(x->diag)];

		if (!at || strcasecmp(at, "@googlegroups.com") || x->status[0] || x->code)
			continue;
		snprintf(d, sizeof(d), "Google Groups: the sender is not permitted to post to the group | %s", x->diag);
		memcpy(x->diag, d, sizeof(d));
	}
}

/* AOL's own refusal names its members by screen name alone:
 *   Your mail to the following recipients could not be delivered because
 *   they are not accepting mail from x@example.com:
 *   <TAB>screenname
 * The names (the indented words after the colon) are addresses at the
 * domain of the MAILER-DAEMON that wrote it; they replace whatever else
 * the text names (the sender it quotes). */
static int aol_screen_names(struct span hdr, struct span body, struct bounce_report *r)
{
	static const char intro[] = "your mail to the following recipients could not be delivered";
	char from[320], reason[512];
	const char *dom, *p = NULL;
	size_t off, next, o = 0;
	int n = 0;

	header_addr(hdr, "From", from, sizeof(from));
	if (!bounce_source_on("aol") || strncasecmp(from, "mailer-daemon@", 14) || !(dom = strchr(from, '@')))
		return 0;
	for (off = 0; off < body.n && !p; off += next) {
		size_t l = line_len(body.p + off, body.n - off, &next);

		if (l >= sizeof(intro) - 1 && memmem(body.p + off, l, "could not be delivered", 22)) {
			char line[512];

			snprintf(line, sizeof(line), "%.*s", (int)l, body.p + off);
			if (strcasestr(line, intro))
				p = body.p + off;
		}
	}
	if (!p)
		return 0;
	/* the reason runs to the colon that ends the sentence (QP soft breaks allowed) */
	for (off = (size_t)(p - body.p); off < body.n && body.p[off] != ':' && o + 1 < sizeof(reason); off++)
		if (body.p[off] != '\r' && body.p[off] != '\n' && body.p[off] != '=')
			reason[o++] = body.p[off];
	reason[o] = '\0';
	line_len(body.p + off, body.n - off, &next);
	for (off += next; off < body.n && r->n_rcpts < BOUNCE_MAX_RCPTS; off += next) {
		const char *q = body.p + off;
		size_t l = line_len(q, body.n - off, &next), k = 0;

		if (!l || (*q != '\t' && *q != ' '))
			break;
		while (l && (*q == '\t' || *q == ' '))
			q++, l--;
		while (k < l && (isalnum((unsigned char)q[k]) || q[k] == '.' || q[k] == '_' || q[k] == '-'))
			k++;
		if (!k || k != l || k + strlen(dom) >= sizeof(r->rcpts[0].addr))
			break;
		if (!n)
			r->n_rcpts = 0; /* the names replace what the scan guessed */
		struct bounce_rcpt *x = &r->rcpts[r->n_rcpts++];

		memset(x, 0, sizeof(*x));
		memcpy(x->addr, q, k);
		memcpy(x->addr + k, dom, strlen(dom) + 1);
		snprintf(x->action, sizeof(x->action), "failed");
		snprintf(x->diag, sizeof(x->diag), "%s", reason);
		n++;
	}
	return n;
}

/* A non-standard bounce: its recipients from X-Failed-Recipients or the
 * readable text. */
static void parse_text_bounce(const char *msg, size_t len, struct span hdr, struct bounce_report *r)
{
	char to[320], from[320];

	header_addr(hdr, "To", to, sizeof(to));
	header_addr(hdr, "From", from, sizeof(from));
	if (failed_recipients_header(hdr, r) > 0 || bounce_text_scan(msg, len, to, from, r) > 0)
		r->kind = BOUNCE_KIND_DSN;
	{
		struct span h, body;

		split_part((struct span){msg, len}, &h, &body);
		if (aol_screen_names(hdr, body, r) > 0)
			r->kind = BOUNCE_KIND_DSN;
	}
}

/* Feedback-report fields outside a message/feedback-report part (a
 * report whose MIME labels were lost or never written): a line that
 * starts "Feedback-Type:" and, in the same block, a User-Agent or Version
 * field (RFC 5965 3.1 requires both). */
static void parse_loose_arf(struct span msg, struct bounce_report *r)
{
	size_t off = 0, next;

	for (; off < msg.n; off += next) {
		const char *p = msg.p + off;
		size_t l = line_len(p, msg.n - off, &next);
		struct span blk, rest;
		char v[128];

		if (l < 14 || strncasecmp(p, "Feedback-Type:", 14))
			continue;
		split_part((struct span){p, msg.n - off}, &blk, &rest);
		if (header_get(blk, "User-Agent", v, sizeof(v)) || header_get(blk, "Version", v, sizeof(v))) {
			char keep[sizeof(r->orig_rcpt)];

			memcpy(keep, r->orig_rcpt, sizeof(keep));
			parse_arf(blk, r);
			if (!r->orig_rcpt[0])
				memcpy(r->orig_rcpt, keep, sizeof(keep));
		}
		return;
	}
}

/* An auto-reply (RFC 3834 and the usual vacation and out-of-office
 * markers). Auto-Submitted: auto-replied alone is not enough when the
 * message also reads as a bounce: MTAs put it on their bounces too
 * (Postfix does). So, in a message no standard report was found in: the
 * autoresponders' own headers; a subject that an autoresponder writes
 * (Exchange's "Automatic reply:", "Out of Office", "Auto:" ...) from
 * someone who is not a mail system; or Auto-Submitted: auto-replied with
 * such a subject or an absence in the body. weak_ok: Auto-Submitted
 * alone will do (nothing else was found). */
static bool auto_reply(struct span hdr, struct span body, bool weak_ok)
{
	static const char *const subjects[] = {"out of office", "out of the office", "automatic reply", "auto:",
					       "autoreply", "auto-reply", "auto reply", "auto response", "autoresponse",
					       "vacation", "away from", "abwesenheit", "absence", "autosvar",
					       "r\xc3\xa9ponse automatique", "respuesta autom\xc3\xa1tica",
					       "risposta automatica"};
	static const char *const absences[] = {"out of the office", "out of office", "on vacation", "on holiday",
					       "on leave", "away from the office", "away from my desk", "be back on",
					       "will be back", "return on", "returning on", "limited access to e",
					       "limited access to my e"};
	char v[256] = "", from[320];
	bool subject = false, absent = false, system;

	if (header_get(hdr, "X-Autoreply", v, sizeof(v)) || header_get(hdr, "X-Autorespond", v, sizeof(v)) ||
	    (header_get(hdr, "Precedence", v, sizeof(v)) && !strncasecmp(v, "auto_reply", 10)))
		return true;
	if (header_get(hdr, "Subject", v, sizeof(v)))
		for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]) && !subject; i++)
			subject = strcasestr(v, subjects[i]) != NULL;
	header_addr(hdr, "From", from, sizeof(from));
	/* a mail system's notice that quotes such a subject is no auto-reply */
	system = !from[0] || strcasestr(from, "mailer-daemon") || strcasestr(from, "postmaster") ||
		 !strncasecmp(v, "Undeliver", 9) || !strncasecmp(v, "Delivery", 8);
	if (subject && !system)
		return true;
	if (!header_get(hdr, "Auto-Submitted", v, sizeof(v)) || strncasecmp(v, "auto-replied", 12))
		return false;
	if (weak_ok)
		return true;
	if (system)
		return false;
	{
		char head[1024];
		size_t n = body.n < sizeof(head) - 1 ? body.n : sizeof(head) - 1;

		memcpy(head, body.p, n);
		for (size_t i = 0; i < n; i++)
			if (!head[i])
				head[i] = ' ';
		head[n] = '\0';
		for (size_t i = 0; i < sizeof(absences) / sizeof(absences[0]) && !absent; i++)
			absent = strcasestr(head, absences[i]) != NULL;
	}
	return absent;
}

enum bounce_kind bounce_report_parse(const char *msg, size_t len, struct bounce_report *out)
{
	struct walk w = {.r = out};
	struct span hdr, body;

	memset(out, 0, sizeof(*out));
	walk(&w, (struct span){msg, len}, 0);
	split_part((struct span){msg, len}, &hdr, &body);
	if (out->kind == BOUNCE_KIND_UNKNOWN)
		parse_loose_arf(body, out);
	if (out->kind == BOUNCE_KIND_UNKNOWN && bounce_source_on("microsoft")) { /* JMRP, the original's header on top */
		char v[512];

		if (header_get(hdr, "X-HmXmrOriginalRecipient", v, sizeof(v)) && strchr(v, '@')) {
			out->kind = BOUNCE_KIND_ARF;
			addr_value(v, out->orig_rcpt, sizeof(out->orig_rcpt));
		}
	}
	if (out->kind != BOUNCE_KIND_ARF && !out->n_rcpts)
		parse_loose_dsn(body, out);
	/* an auto-reply that quotes a failure is still an auto-reply */
	if (out->kind == BOUNCE_KIND_UNKNOWN && auto_reply(hdr, body, false)) {
		out->kind = BOUNCE_KIND_AUTOREPLY;
		return out->kind;
	}
	if ((out->kind == BOUNCE_KIND_UNKNOWN || (out->kind == BOUNCE_KIND_DSN && !out->n_rcpts)) &&
	    (looks_like_bounce(hdr) || bounce_text_says_failed(body.p, body.n)))
		parse_text_bounce(msg, len, hdr, out);
	if (out->kind == BOUNCE_KIND_DSN) {
		bounce_text_explain(msg, len, out);
		google_groups_notice(hdr, out);
	}
	if (out->kind == BOUNCE_KIND_UNKNOWN && auto_reply(hdr, body, true))
		out->kind = BOUNCE_KIND_AUTOREPLY;
	if (out->kind == BOUNCE_KIND_ARF && !out->feedback_type[0])
		snprintf(out->feedback_type, sizeof(out->feedback_type), "abuse");
	/* a complaint that names no one: the address it came back to (our
	 * VERP return path, which names the recipient) */
	if (out->kind == BOUNCE_KIND_ARF && !out->orig_rcpt[0])
		header_addr(hdr, "To", out->orig_rcpt, sizeof(out->orig_rcpt));
	return out->kind;
}
