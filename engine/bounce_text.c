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
 * sender or receiver nor an MTA role account, and for each the reply found
 * in its paragraph (else in the whole text). Quoted-printable and base64
 * parts are decoded first.
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
	"--- the header of the original message", "------ original message", "----- the following addresses had",
	"the original message was received", "------- returned message", "-- returned mail follows",
	"original message headers", "----- transcript of session follows", "content-description: undelivered message",
	"--- original message",
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

int bounce_text_scan(const char *msg, size_t len, const char *skip1, const char *skip2, struct bounce_report *r)
{
	size_t n, end, from = 0, s, e;
	char *t = readable_text(msg, len, &n);
	int whole_code = 0;
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
	while (r->n_rcpts < BOUNCE_MAX_RCPTS && next_addr(t, end, &from, &s, &e)) {
		char addr[320];
		size_t l = e - s < sizeof(addr) - 1 ? e - s : sizeof(addr) - 1;
		bool dup = false;

		memcpy(addr, t + s, l);
		addr[l] = '\0';
		if (role_account(addr) || (skip1 && !strcasecmp(addr, skip1)) || (skip2 && !strcasecmp(addr, skip2)) ||
		    strstr(addr, "..") || addr[0] == '.')
			continue;
		/* "Message-ID: <x@y>"-like lines are not recipients */
		size_t ls = s;
		while (ls > 0 && t[ls - 1] != '\n')
			ls--;
		if (!strncasecmp(t + ls, "message-id", 10) || !strncasecmp(t + ls, "from:", 5) ||
		    !strncasecmp(t + ls, "reply-to", 8) || !strncasecmp(t + ls, "sender", 6) ||
		    !strncasecmp(t + ls, "return-path", 11) || !strncasecmp(t + ls, "x-", 2))
			continue;
		for (size_t i = 0; i < r->n_rcpts && !dup; i++)
			dup = !strcasecmp(r->rcpts[i].addr, addr);
		if (dup)
			continue;
		struct bounce_rcpt *x = &r->rcpts[r->n_rcpts++];
		/* its paragraph: from its line to a blank line or the next address line, 6 lines at most */
		size_t ce = e, lines = 0;
		while (ce < end && lines < 6) {
			if (t[ce] == '\n') {
				lines++;
				if (ce + 1 < end && (t[ce + 1] == '\n' || (t[ce + 1] == '\r' && t[ce + 2] == '\n')))
					break;
			}
			ce++;
		}
		char ctx[1024];
		size_t cl = ce - ls < sizeof(ctx) - 1 ? ce - ls : sizeof(ctx) - 1;

		memcpy(ctx, t + ls, cl);
		ctx[cl] = '\0';
		for (char *c = ctx; *c; c++)
			if (*c == '\r' || *c == '\n' || *c == '\t')
				*c = ' ';
		memset(x, 0, sizeof(*x));
		snprintf(x->addr, sizeof(x->addr), "%s", addr);
		find_reply(ctx, &x->code, x->status, sizeof(x->status));
		if (!x->code && !x->status[0]) {
			x->code = whole_code;
			snprintf(x->status, sizeof(x->status), "%s", whole_status);
		}
		snprintf(x->diag, sizeof(x->diag), "%.255s", ctx);
		snprintf(x->action, sizeof(x->action), "failed");
	}
	free(t);
	return (int)r->n_rcpts;
}
