/*
 * smtp_cmd.c - intake-side SMTP command framing and parsing (RFC 5321 4.1,
 * 4.5.3.1; RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 3461 DSN
 * parameters, RFC 4954 AUTH=, RFC 3030 BDAT).
 *
 * Owns: the line-length rule (smtp_line_find), the verb table, MAIL/RCPT
 * path and parameter syntax, and mailbox syntax (smtp_mailbox_check). It does
 * not own policy: whether a sender or recipient is acceptable, size limits,
 * command sequencing are the server's (smtp_server.c).
 *
 * Invariants: every function reads only buf[0..len), writes only its out
 * arguments, allocates nothing and keeps no state; results point into the
 * caller's buffer. Work is linear in len: lines are framed with memchr, the
 * per-byte loops are table lookups over the (short) argument.
 *
 * Diagnostics are the enum smtp_cmd_err codes; smtp_cmd_strerror() gives the
 * text the server puts after "Syntax error: ". Length limits (path, local
 * part, domain, label) are always SMTP_CMD_ETOOLONG; everything else about a
 * path is SMTP_CMD_EPATH.
 *
 * Decisions a reader might want to change, and why they are as they are:
 *  - "MAIL FROM: <a@b>" (space after the colon) is accepted: common clients
 *    send it. A path without angle brackets is not (EPATH).
 *  - The path limit of 256 octets counts the angle brackets and any source
 *    route, as RFC 5321 4.5.3.1.3 says ("including the punctuation").
 *  - RCPT paths are checked with UTF-8 allowed; the server re-checks with the
 *    transaction's SMTPUTF8 flag, which this parser cannot know. MAIL paths
 *    are checked against the command's own SMTPUTF8 parameter.
 *  - "RCPT TO:<Postmaster>" (no domain, any case) is accepted as RFC 5321
 *    4.1.1.3 requires; smtp_mailbox_check() alone rejects it (no '@').
 *  - DSN parameters (RET=, ENVID= on MAIL; NOTIFY=, ORCPT= on RCPT) are
 *    checked (xtext that decodes to printable ASCII; NEVER alone) and
 *    handed to the server in struct smtp_cmd; AUTH= on MAIL is checked for
 *    syntax and ignored, so an AUTH-aware client is not refused; XVERP[=...] on MAIL asks for VERP
 *    (a <source> with verp-default no otherwise sends without); any other
 *    parameter is EPARAM.
 *  - HELO/EHLO take exactly one argument, a domain or an address literal.
 *    Underscores and leading/trailing hyphens are tolerated in the HELO name
 *    (Windows host names have them; the name is only logged), control and
 *    space characters are not (the name is copied into a Received: header).
 */
#include "net/smtp_cmd.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

/* ---- character classes ---------------------------------------------------- */

enum {
	CH_ATEXT = 1 << 0,         /* RFC 5322 atext */
	CH_QTEXT = 1 << 1,         /* RFC 5321 qtextSMTP: 32..126 but '"' and '\\' */
	CH_LDH = 1 << 2,           /* letter, digit, hyphen */
	CH_DIGIT = 1 << 3,
	CH_ALNUM = 1 << 4,
	CH_VALUE = 1 << 5,         /* esmtp-value: 33..126 but '=' */
};

#define AQV (CH_ATEXT | CH_QTEXT | CH_VALUE)
/* Non-overlapping ranges (GNU range designators) so -Woverride-init stays quiet. */
static const unsigned char ch_class[256] = {
	[' '] = CH_QTEXT,
	['!'] = AQV,
	['"'] = CH_VALUE,
	['#' ... '\''] = AQV,
	['(' ... ')'] = CH_QTEXT | CH_VALUE,
	['*' ... '+'] = AQV,
	[','] = CH_QTEXT | CH_VALUE,
	['-'] = AQV | CH_LDH,
	['.'] = CH_QTEXT | CH_VALUE,
	['/'] = AQV,
	['0' ... '9'] = AQV | CH_LDH | CH_DIGIT | CH_ALNUM,
	[':' ... '<'] = CH_QTEXT | CH_VALUE,
	['='] = CH_ATEXT | CH_QTEXT,
	['>'] = CH_QTEXT | CH_VALUE,
	['?'] = AQV,
	['@'] = CH_QTEXT | CH_VALUE,
	['A' ... 'Z'] = AQV | CH_LDH | CH_ALNUM,
	['['] = CH_QTEXT | CH_VALUE,
	['\\'] = CH_VALUE,
	[']'] = CH_QTEXT | CH_VALUE,
	['^' ... '`'] = AQV,
	['a' ... 'z'] = AQV | CH_LDH | CH_ALNUM,
	['{' ... '~'] = AQV,
};
#undef AQV

static inline int cls(unsigned char c, int mask)
{
	return ch_class[c] & mask;
}

/* Length of the well-formed UTF-8 sequence starting at p[0] (a byte >= 0x80)
 * within n bytes; 0 when it is malformed, overlong, a surrogate, above
 * U+10FFFF or truncated. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0];

	if (c < 0xC2 || c > 0xF4)
		return 0;
	if (c < 0xE0)
		return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c < 0xF0) {
		if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
			return 0;
		if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0))
			return 0;
		return 3;
	}
	if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
		return 0;
	if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
		return 0;
	return 4;
}

/* Case-insensitive compare of p[0..n) with the lower-case ASCII word w. */
static bool word_eq(const char *p, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(p, w, n) == 0;
}

/* Decimal digits only, 1..20 of them, fitting in uint64_t. */
static bool parse_u64(const char *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned char)p[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* ---- framing -------------------------------------------------------------- */

/*
 * The line-length rule: max_line counts the whole line with its CR LF, as RFC
 * 5321 4.5.3.1.4 counts the 512 octets of a command line. A line is too long
 * when its length without the terminator exceeds max_line - 2, whichever
 * terminator it uses; so with max_line 512 a line of 510 octets is accepted
 * with CRLF or bare LF and one of 511 is refused either way. Only the first
 * max_line bytes are searched: with no LF among them the answer is -1, and
 * with fewer bytes than that buffered and no LF the answer is 0, so every
 * prefix of an acceptable line gives 0 and the verdict never flips as more
 * input arrives.
 */
ssize_t smtp_line_find(const char *buf, size_t len, size_t max_line, size_t *line_len)
{
	size_t window = len < max_line ? len : max_line;
	const char *lf = memchr(buf, '\n', window);
	size_t n, content;

	if (!lf)
		return len >= max_line ? -1 : 0;
	n = (size_t)(lf - buf);
	content = n > 0 && buf[n - 1] == '\r' ? n - 1 : n;
	if (max_line < 2 || content > max_line - 2)
		return -1;
	*line_len = content;
	return (ssize_t)(n + 1);
}

/* ---- mailboxes ------------------------------------------------------------ */

enum dom_flags {
	DOM_UTF8 = 1 << 0,         /* U-labels: well-formed UTF-8 in labels */
	DOM_HELO = 1 << 1,         /* tolerate '_' and edge hyphens (HELO names) */
};

/* IPv4 dotted quad, RFC 5321 IPv4-address-literal: 4 x Snum (1*3DIGIT, 0..255). */
static bool ipv4_check(const unsigned char *p, size_t n)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0, digits = 0;

		if (part > 0) {
			if (i >= n || p[i] != '.')
				return false;
			i++;
		}
		while (i < n && cls(p[i], CH_DIGIT) && digits < 4) {
			v = v * 10 + (p[i] - '0');
			digits++;
			i++;
		}
		if (digits == 0 || digits > 3 || v > 255)
			return false;
	}
	return i == n;
}

/* "[1.2.3.4]" or "[IPv6:...]"; the General-address-literal form is refused
 * (nothing routes to it). */
static int literal_check(const unsigned char *p, size_t n)
{
	char tmp[64];

	if (n < 3 || p[0] != '[' || p[n - 1] != ']')
		return SMTP_CMD_EPATH;
	p++;
	n -= 2;
	if (n > 5 && strncasecmp((const char *)p, "IPv6:", 5) == 0) {
		struct in6_addr a6;

		p += 5;
		n -= 5;
		if (n >= sizeof(tmp))
			return SMTP_CMD_EPATH;
		memcpy(tmp, p, n);
		tmp[n] = 0;
		/* inet_pton stops at the NUL we wrote; an embedded NUL would
		 * hide trailing bytes, so refuse it. */
		if (memchr(p, 0, n) || inet_pton(AF_INET6, tmp, &a6) != 1)
			return SMTP_CMD_EPATH;
		return SMTP_CMD_OK;
	}
	return ipv4_check(p, n) ? SMTP_CMD_OK : SMTP_CMD_EPATH;
}

/* A domain: dot-separated labels of letters, digits and hyphens (each 1..63
 * octets, no hyphen at either end, 255 octets in all; no trailing dot), or an
 * address literal. */
static int domain_check(const unsigned char *p, size_t n, unsigned flags)
{
	size_t i = 0;

	if (n == 0)
		return SMTP_CMD_EPATH;
	if (p[0] == '[')
		return literal_check(p, n);
	if (n > SMTP_MAX_DOMAIN)
		return SMTP_CMD_ETOOLONG;
	for (;;) {
		size_t start = i;

		while (i < n && p[i] != '.') {
			if (cls(p[i], CH_LDH) || (p[i] == '_' && (flags & DOM_HELO))) {
				i++;
			} else if (p[i] >= 0x80 && (flags & DOM_UTF8)) {
				size_t k = utf8_seq(p + i, n - i);

				if (!k)
					return SMTP_CMD_EPATH;
				i += k;
			} else {
				return SMTP_CMD_EPATH;
			}
		}
		if (i == start)
			return SMTP_CMD_EPATH;     /* empty label: "..", leading or trailing dot */
		if (i - start > 63)
			return SMTP_CMD_ETOOLONG;
		if (!(flags & DOM_HELO) && (p[start] == '-' || p[i - 1] == '-'))
			return SMTP_CMD_EPATH;
		if (i == n)
			return SMTP_CMD_OK;
		i++;                               /* the dot */
	}
}

/* The local part at p[0..n): returns its length through *used. Stops at the
 * first byte that cannot continue it (normally the '@'). */
static int local_check(const unsigned char *p, size_t n, bool utf8, size_t *used)
{
	size_t i = 0;

	if (n && p[0] == '"') {
		/* Quoted-string: qtextSMTP or quoted-pairSMTP (RFC 5321 4.1.2). */
		i = 1;
		for (;;) {
			if (i >= n)
				return SMTP_CMD_EPATH;
			if (p[i] == '"')
				break;
			if (p[i] == '\\') {
				if (i + 1 >= n || p[i + 1] < 32 || p[i + 1] > 126)
					return SMTP_CMD_EPATH;
				i += 2;
			} else if (cls(p[i], CH_QTEXT)) {
				i++;
			} else if (p[i] >= 0x80 && utf8) {
				size_t k = utf8_seq(p + i, n - i);

				if (!k)
					return SMTP_CMD_EPATH;
				i += k;
			} else {
				return SMTP_CMD_EPATH;
			}
		}
		i++;                               /* closing quote */
	} else {
		/* Dot-atom: atoms of atext joined by single dots. */
		bool want_atom = true;

		while (i < n) {
			if (cls(p[i], CH_ATEXT)) {
				i++;
				want_atom = false;
			} else if (p[i] >= 0x80 && utf8) {
				size_t k = utf8_seq(p + i, n - i);

				if (!k)
					return SMTP_CMD_EPATH;
				i += k;
				want_atom = false;
			} else if (p[i] == '.' && !want_atom) {
				i++;
				want_atom = true;
			} else {
				break;
			}
		}
		if (want_atom)
			return SMTP_CMD_EPATH;     /* empty, leading, trailing or double dot */
	}
	*used = i;
	return SMTP_CMD_OK;
}

int smtp_mailbox_check(const char *addr, size_t len, bool utf8)
{
	const unsigned char *p = (const unsigned char *)addr;
	size_t local_len;
	int err = local_check(p, len, utf8, &local_len);

	if (err)
		return err;
	if (local_len >= len || p[local_len] != '@')
		return SMTP_CMD_EPATH;
	if (local_len > SMTP_MAX_LOCAL)
		return SMTP_CMD_ETOOLONG;
	return domain_check(p + local_len + 1, len - local_len - 1, utf8 ? DOM_UTF8 : 0);
}

const char *smtp_mailbox_domain(const char *addr, size_t len, size_t *dom_len)
{
	const char *at = memrchr(addr, '@', len);

	if (!at)
		return NULL;
	*dom_len = len - (size_t)(at + 1 - addr);
	return at + 1;
}

/* ---- verbs ---------------------------------------------------------------- */

#define W4(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

/* Why |0x20 is safe as a case fold here: a byte folds onto a lower-case
 * letter only if it is that letter in either case, so no non-letter can
 * match a verb. */
static enum smtp_verb verb_lookup(const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p;

	if (n == 8)
		return strncasecmp(p, "starttls", 8) == 0 ? SMTP_VERB_STARTTLS : SMTP_VERB_UNKNOWN;
	if (n != 4)
		return SMTP_VERB_UNKNOWN;
	switch (W4(u[0] | 0x20, u[1] | 0x20, u[2] | 0x20, u[3] | 0x20)) {
	case W4('h', 'e', 'l', 'o'): return SMTP_VERB_HELO;
	case W4('e', 'h', 'l', 'o'): return SMTP_VERB_EHLO;
	case W4('m', 'a', 'i', 'l'): return SMTP_VERB_MAIL;
	case W4('r', 'c', 'p', 't'): return SMTP_VERB_RCPT;
	case W4('d', 'a', 't', 'a'): return SMTP_VERB_DATA;
	case W4('r', 's', 'e', 't'): return SMTP_VERB_RSET;
	case W4('n', 'o', 'o', 'p'): return SMTP_VERB_NOOP;
	case W4('q', 'u', 'i', 't'): return SMTP_VERB_QUIT;
	case W4('v', 'r', 'f', 'y'): return SMTP_VERB_VRFY;
	case W4('h', 'e', 'l', 'p'): return SMTP_VERB_HELP;
	case W4('a', 'u', 't', 'h'): return SMTP_VERB_AUTH;
	case W4('b', 'd', 'a', 't'): return SMTP_VERB_BDAT;
	default: return SMTP_VERB_UNKNOWN;
	}
}
#undef W4

/* ---- MAIL / RCPT ---------------------------------------------------------- */

/* Index of the '>' closing the path that starts with '<' at p[0], honouring
 * quoted local parts ("a>b"@c); -1 when there is none. */
static ssize_t path_end(const char *p, size_t n)
{
	const char *gt = memchr(p, '>', n);
	bool quoted = false;

	if (!gt)
		return -1;
	/* Fast path: no quote before the first '>'. */
	if (!memchr(p, '"', (size_t)(gt - p)))
		return gt - p;
	for (size_t i = 1; i < n; i++) {
		if (quoted && p[i] == '\\')
			i++;
		else if (p[i] == '"')
			quoted = !quoted;
		else if (!quoted && p[i] == '>')
			return (ssize_t)i;
	}
	return -1;
}

/* Index of the ':' ending a source route at p[0..n), skipping the colons of
 * "[IPv6:...]" literals; -1 when there is none. */
static ssize_t route_end(const char *p, size_t n)
{
	bool literal = false;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '[')
			literal = true;
		else if (p[i] == ']')
			literal = false;
		else if (p[i] == ':' && !literal)
			return (ssize_t)i;
	}
	return -1;
}

/* RFC 5321 A-d-l: "@" domain *( "," "@" domain ) ":", at p[0..n). */
static int source_route_check(const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		const unsigned char *comma;
		size_t dl;
		int err;

		if (p[i] != '@')
			return SMTP_CMD_EPATH;
		i++;
		comma = memchr(p + i, ',', n - i);
		dl = comma ? (size_t)(comma - (p + i)) : n - i;
		err = domain_check(p + i, dl, DOM_UTF8);
		if (err)
			return err;
		i += dl;
		if (comma) {
			i++;
			if (i == n)
				return SMTP_CMD_EPATH;     /* trailing comma */
		}
	}
	return SMTP_CMD_OK;
}

/* esmtp-keyword: (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"). */
static bool keyword_ok(const char *p, size_t n)
{
	if (n == 0 || !cls((unsigned char)p[0], CH_ALNUM))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!cls((unsigned char)p[i], CH_LDH))
			return false;
	return true;
}

/* esmtp-value: 1*(%d33-60 / %d62-126), widened to UTF-8 by RFC 6531. */
static bool value_ok(const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n;) {
		if (cls(u[i], CH_VALUE)) {
			i++;
		} else if (u[i] >= 0x80) {
			size_t k = utf8_seq(u + i, n - i);

			if (!k)
				return false;
			i += k;
		} else {
			return false;
		}
	}
	return true;
}

/* RFC 3461 4.1: "NEVER" or a comma list of SUCCESS, FAILURE, DELAY. */
int smtp_notify_parse(const char *p, size_t n, unsigned *bits)
{
	unsigned b = SMTP_NOTIFY_GIVEN;

	*bits = 0;
	if (word_eq(p, n, "never")) {
		*bits = SMTP_NOTIFY_GIVEN | SMTP_NOTIFY_NEVER;
		return SMTP_CMD_OK;
	}
	while (n) {
		const char *comma = memchr(p, ',', n);
		size_t w = comma ? (size_t)(comma - p) : n;

		if (word_eq(p, w, "success"))
			b |= SMTP_NOTIFY_SUCCESS;
		else if (word_eq(p, w, "failure"))
			b |= SMTP_NOTIFY_FAILURE;
		else if (word_eq(p, w, "delay"))
			b |= SMTP_NOTIFY_DELAY;
		else
			return SMTP_CMD_EPARAM;    /* NEVER among others lands here too */
		if (!comma) {
			*bits = b;
			return SMTP_CMD_OK;
		}
		p += w + 1;
		n -= w + 1;
		if (n == 0)
			return SMTP_CMD_EPARAM;    /* trailing comma */
	}
	return SMTP_CMD_EPARAM;
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;                         /* RFC 3461 4: upper case only */
}

ssize_t smtp_xtext_decode(const char *in, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	if (n == 0 || cap == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '+') {
			int hi, lo;

			if (n - i < 3 || (hi = hex_val(in[i + 1])) < 0 || (lo = hex_val(in[i + 2])) < 0)
				return -1;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return -1;
		}
		if (c < 32 || c > 126 || o + 1 >= cap)
			return -1;                 /* not printable, or too long */
		out[o++] = (char)c;
	}
	out[o] = 0;
	return (ssize_t)o;
}

ssize_t smtp_xtext_encode(const char *in, size_t n, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		bool raw = c >= 33 && c <= 126 && c != '+' && c != '=';

		if (o + (raw ? 1 : 3) >= cap)
			return -1;
		if (raw) {
			out[o++] = (char)c;
		} else {
			out[o++] = '+';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (o >= cap)
		return -1;
	out[o] = 0;
	return (ssize_t)o;
}

ssize_t smtp_orcpt_decode(const char *in, size_t n, char *out, size_t cap)
{
	const char *semi = memchr(in, ';', n);
	size_t tl;
	ssize_t al;

	if (!semi || semi == in)
		return -1;
	tl = (size_t)(semi - in);
	for (size_t i = 0; i < tl; i++)
		if (!cls((unsigned char)in[i], CH_ATEXT))
			return -1;                 /* addr-type is an atom */
	if (cap > SMTP_MAX_ORCPT + 1)
		cap = SMTP_MAX_ORCPT + 1;
	if (tl + 2 >= cap)
		return -1;
	memcpy(out, in, tl + 1);
	al = smtp_xtext_decode(semi + 1, n - tl - 1, out + tl + 1, cap - tl - 1);
	if (al < 0)
		return -1;
	return (ssize_t)(tl + 1) + al;
}

/* A repeated parameter is refused: each one's field in out (zeroed
 * before parsing) says whether it came already; AUTH= stores nothing, so
 * *seen carries it. */
enum { P_AUTH = 1 << 0 };

static int mail_param(struct smtp_cmd *out, unsigned *seen, const char *k, size_t kn,
		      const char *v, size_t vn, bool has_v)
{
	if (word_eq(k, kn, "size")) {
		if (out->has_size || !has_v || !parse_u64(v, vn, &out->size))
			return SMTP_CMD_EPARAM;
		out->has_size = true;
	} else if (word_eq(k, kn, "body")) {
		if (out->body != SMTP_BODY_UNSPEC || !has_v)
			return SMTP_CMD_EPARAM;
		if (word_eq(v, vn, "7bit"))
			out->body = SMTP_BODY_7BIT;
		else if (word_eq(v, vn, "8bitmime"))
			out->body = SMTP_BODY_8BITMIME;
		else
			return SMTP_CMD_EPARAM;
	} else if (word_eq(k, kn, "smtputf8")) {
		if (out->smtputf8 || has_v)
			return SMTP_CMD_EPARAM;
		out->smtputf8 = true;
	} else if (word_eq(k, kn, "ret")) {
		if (out->ret != SMTP_RET_UNSPEC || !has_v || !(word_eq(v, vn, "full") || word_eq(v, vn, "hdrs")))
			return SMTP_CMD_EPARAM;
		out->ret = word_eq(v, vn, "full") ? SMTP_RET_FULL : SMTP_RET_HDRS;
	} else if (word_eq(k, kn, "envid")) {
		char tmp[SMTP_MAX_ENVID + 1];

		if (out->envid || !has_v || vn > SMTP_MAX_ENVID || smtp_xtext_decode(v, vn, tmp, sizeof(tmp)) < 0)
			return SMTP_CMD_EPARAM;
		out->envid = v;
		out->envid_len = vn;
	} else if (word_eq(k, kn, "xverp")) {
		if (out->xverp)
			return SMTP_CMD_EPARAM;
		out->xverp = true; /* the value (delimiters) is Salvo's own: b-ID-IDX-HASH */
	} else if (word_eq(k, kn, "auth")) {
		if ((*seen & P_AUTH) || !has_v)
			return SMTP_CMD_EPARAM;
		*seen |= P_AUTH;
	} else {
		return SMTP_CMD_EPARAM;
	}
	return SMTP_CMD_OK;
}

static int rcpt_param(struct smtp_cmd *out, const char *k, size_t kn, const char *v, size_t vn,
		      bool has_v)
{
	if (word_eq(k, kn, "notify")) {
		if (out->notify || !has_v || smtp_notify_parse(v, vn, &out->notify))
			return SMTP_CMD_EPARAM;
	} else if (word_eq(k, kn, "orcpt")) {
		/* addr-type ";" xtext, decoding to printable text of bounded size */
		char tmp[SMTP_MAX_ORCPT + 1];

		if (out->orcpt || !has_v || smtp_orcpt_decode(v, vn, tmp, sizeof(tmp)) < 0)
			return SMTP_CMD_EPARAM;
		out->orcpt = v;
		out->orcpt_len = vn;
	} else {
		return SMTP_CMD_EPARAM;
	}
	return SMTP_CMD_OK;
}

/* arg is "FROM:..." or "TO:..." with trailing blanks already trimmed. */
static int parse_path_cmd(struct smtp_cmd *out, const char *arg, size_t n, bool is_mail)
{
	const char *kw = is_mail ? "from:" : "to:";
	size_t kwl = is_mail ? 5 : 3, i, route = 0;
	unsigned seen = 0;
	ssize_t gt;
	int err;

	if (n < kwl || strncasecmp(arg, kw, kwl) != 0)
		return SMTP_CMD_ESYNTAX;
	i = kwl;
	while (i < n && arg[i] == ' ')
		i++;
	if (i == n)
		return SMTP_CMD_ESYNTAX;           /* no path at all */
	if (arg[i] != '<')
		return SMTP_CMD_EPATH;
	gt = path_end(arg + i, n - i);
	if (gt < 0)
		return SMTP_CMD_EPATH;
	if ((size_t)gt + 1 > SMTP_MAX_PATH)
		return SMTP_CMD_ETOOLONG;
	out->path = arg + i + 1;
	out->path_len = (size_t)gt - 1;
	i += (size_t)gt + 1;

	/* Source route: kept out of the path, checked for syntax only. */
	if (out->path_len && out->path[0] == '@') {
		ssize_t colon = route_end(out->path, out->path_len);

		if (colon < 0)
			return SMTP_CMD_EPATH;
		route = (size_t)colon;
		err = source_route_check((const unsigned char *)out->path, route);
		if (err)
			return err;
		out->path += route + 1;
		out->path_len -= route + 1;
		if (out->path_len == 0)
			return SMTP_CMD_EPATH;     /* "<@a:>" is not a null path */
	}

	/* Parameters: SP-separated keyword[=value]. */
	if (i < n && arg[i] != ' ')
		return SMTP_CMD_ESYNTAX;           /* "<a@b>junk" */
	while (i < n) {
		const char *tok, *sp, *eq;
		size_t tl, kn;

		while (i < n && arg[i] == ' ')
			i++;
		if (i == n)
			break;
		tok = arg + i;
		sp = memchr(tok, ' ', n - i);
		tl = sp ? (size_t)(sp - tok) : n - i;
		eq = memchr(tok, '=', tl);
		kn = eq ? (size_t)(eq - tok) : tl;
		if (!keyword_ok(tok, kn))
			return SMTP_CMD_EPARAM;
		if (eq && !value_ok(eq + 1, tl - kn - 1))
			return SMTP_CMD_EPARAM;
		err = is_mail ? mail_param(out, &seen, tok, kn, eq ? eq + 1 : NULL, eq ? tl - kn - 1 : 0, eq != NULL)
			      : rcpt_param(out, tok, kn, eq ? eq + 1 : NULL, eq ? tl - kn - 1 : 0, eq != NULL);
		if (err)
			return err;
		i += tl;
	}

	if (out->path_len == 0)
		return is_mail && !route ? SMTP_CMD_OK : SMTP_CMD_EPATH;
	if (!is_mail && word_eq(out->path, out->path_len, "postmaster"))
		return SMTP_CMD_OK;
	return smtp_mailbox_check(out->path, out->path_len, is_mail ? out->smtputf8 : true);
}

/* HELO/EHLO: exactly one domain or address literal. */
static int helo_check(const char *arg, size_t n)
{
	if (n == 0)
		return SMTP_CMD_ESYNTAX;
	if (arg[0] == '[')
		return literal_check((const unsigned char *)arg, n) ? SMTP_CMD_ESYNTAX : SMTP_CMD_OK;
	return domain_check((const unsigned char *)arg, n, DOM_HELO | DOM_UTF8) ? SMTP_CMD_ESYNTAX : SMTP_CMD_OK;
}

/* BDAT chunk-size [SP "LAST"] (RFC 3030). */
static int bdat_check(struct smtp_cmd *out, const char *arg, size_t n)
{
	const char *sp = memchr(arg, ' ', n);
	size_t dn = sp ? (size_t)(sp - arg) : n;

	if (!parse_u64(arg, dn, &out->size))
		return SMTP_CMD_ESYNTAX;
	out->has_size = true;
	if (sp) {
		size_t i = dn;

		while (i < n && arg[i] == ' ')
			i++;
		if (!word_eq(arg + i, n - i, "last"))
			return SMTP_CMD_ESYNTAX;
		out->bdat_last = true;
	}
	return SMTP_CMD_OK;
}

int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out)
{
	const char *sp;
	size_t vlen, i;

	memset(out, 0, sizeof(*out));
	/* Trailing blanks are forgiven everywhere ("DATA " is DATA). */
	while (len && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	sp = memchr(line, ' ', len);
	vlen = sp ? (size_t)(sp - line) : len;
	out->verb = verb_lookup(line, vlen);
	if (out->verb == SMTP_VERB_UNKNOWN)
		return SMTP_CMD_EUNKNOWN;
	i = vlen;
	while (i < len && line[i] == ' ')
		i++;
	out->arg = line + i;
	out->arg_len = len > i ? len - i : 0;  /* always len - i; says so to the compiler */

	switch (out->verb) {
	case SMTP_VERB_HELO:
	case SMTP_VERB_EHLO:
		return helo_check(out->arg, out->arg_len);
	case SMTP_VERB_MAIL:
		return parse_path_cmd(out, out->arg, out->arg_len, true);
	case SMTP_VERB_RCPT:
		return parse_path_cmd(out, out->arg, out->arg_len, false);
	case SMTP_VERB_DATA:
	case SMTP_VERB_RSET:
	case SMTP_VERB_QUIT:
	case SMTP_VERB_STARTTLS:
		return out->arg_len ? SMTP_CMD_ESYNTAX : SMTP_CMD_OK;
	case SMTP_VERB_AUTH:
		return out->arg_len ? SMTP_CMD_OK : SMTP_CMD_ESYNTAX;
	case SMTP_VERB_BDAT:
		return bdat_check(out, out->arg, out->arg_len);
	case SMTP_VERB_NOOP:
	case SMTP_VERB_HELP:
	case SMTP_VERB_VRFY:
	default:
		return SMTP_CMD_OK;
	}
}

const char *smtp_cmd_strerror(int err)
{
	switch (err) {
	case SMTP_CMD_OK: return "ok";
	case SMTP_CMD_EUNKNOWN: return "command not recognized";
	case SMTP_CMD_ESYNTAX: return "bad command arguments";
	case SMTP_CMD_EPATH: return "malformed address";
	case SMTP_CMD_EPARAM: return "unrecognized or malformed parameter";
	case SMTP_CMD_ETOOLONG: return "address too long";
	default: return "unknown error";
	}
}
