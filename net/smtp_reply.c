/*
 * smtp_reply.c - server replies as the delivery client sees them (RFC 5321
 * 4.2, RFC 3463 / RFC 2034 enhanced status codes, RFC 1869 EHLO keywords).
 *
 * Owns: reply framing (where one reply ends in a stream of them), the
 * enhanced-code rule, the EHLO keyword table and the log form of a reply.
 * Does not own what a code means for delivery (outcome_*).
 *
 * Reply grammar accepted, per line: three digits, the first 2..5; then ' '
 * (last line), '-' (more lines follow) or the end of the line (last line,
 * "250" alone is a complete reply); then any text. Text may hold 8-bit bytes
 * (servers answer in their own language): they are kept here;
 * smtp_reply_flatten() keeps valid UTF-8 and masks only invalid bytes.
 * Lines end in CRLF or a bare LF. Every line of a reply must carry the
 * same code. A line may be at most SMTP_MAX_REPLY_LINE
 * octets with its CRLF (the smtp_line_find() rule); a reply at most
 * SMTP_MAX_REPLY_LINES lines.
 *
 * An enhanced code "c.s.d" (c one digit, s and d 1..3 digits) is taken from
 * the first line, or from the last when the first has none, only when c
 * equals the reply code's first digit and the code is followed by a space
 * or the end of the line; otherwise it is text.
 *
 * Invariants: reads only buf[0..len); smtp_reply_parse() is linear in len
 * (one memchr per line), so calling it again as the buffer grows costs
 * O(len) per call; it decides "malformed" as early as the bytes allow, but
 * never for a prefix of a well-formed reply.
 */
#include "net/smtp_reply.h"

#include <string.h>
#include <strings.h>

#include "core/json_str.h"         /* json_utf8_seq(): one UTF-8 rule */
#include "net/smtp_cmd.h"          /* smtp_line_find(): one line-length rule */

static inline bool is_digit(unsigned char c)
{
	return (unsigned)c - '0' < 10u;
}

/* Check the first min(n, 4) bytes of a line: code digits, code equal to
 * want (0 = any), separator. Returns the code, or -1 when malformed. For a
 * line shorter than 4 bytes, only what is there is checked. In a partial
 * line (its LF not here yet) a CR may follow the code: "250\r" + "\n". */
static int line_head(const unsigned char *l, size_t n, int want, bool partial)
{
	int code = 0;

	for (size_t i = 0; i < 3 && i < n; i++) {
		if (!is_digit(l[i]) || (i == 0 && (l[0] < '2' || l[0] > '5')))
			return -1;
		code = code * 10 + (l[i] - '0');
	}
	if (n < 3)
		return 0;
	if (want && code != want)
		return -1;
	if (n > 3 && l[3] != ' ' && l[3] != '-' && !(partial && l[3] == '\r'))
		return -1;
	return code;
}

/* Enhanced status code at t[0..n) whose class must be cls, the reply code's
 * first digit; RFC 3463 classes are only 2, 4 and 5 (a 3xx has none).
 * Returns its length (0 when there is none) and copies it to out. */
static size_t enhanced_parse(const char *t, size_t n, char cls, char out[16])
{
	size_t i = 2;

	if (n < 5 || t[0] != cls || (cls != '2' && cls != '4' && cls != '5') || t[1] != '.')
		return 0;
	for (int part = 0; part < 2; part++) {
		size_t start = i;

		while (i < n && is_digit((unsigned char)t[i]))
			i++;
		if (i == start || i - start > 3)
			return 0;
		if (part == 0) {
			if (i >= n || t[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < n && t[i] != ' ')
		return 0;
	if (out) {
		memcpy(out, t, i);         /* at most "5.999.999": 9 bytes */
		out[i] = 0;
	}
	return i;
}

/* Text of one reply line l[0..n) (n >= 3): after code and separator, and
 * after an enhanced code of the reply's class and the spaces following it. */
static const char *line_text(const char *l, size_t n, size_t *tlen, char enh[16])
{
	size_t i = n > 3 ? 4 : 3;
	size_t e = enhanced_parse(l + i, n - i, l[0], enh);

	if (e) {
		i += e;
		while (i < n && l[i] == ' ')
			i++;
	}
	*tlen = n - i;
	return l + i;
}

ssize_t smtp_reply_parse(const char *buf, size_t len, struct smtp_reply *out)
{
	size_t pos = 0, first_len = 0, last_off = 0, last_len = 0;
	unsigned n_lines = 0;
	int code = 0;

	for (;;) {
		const unsigned char *l = (const unsigned char *)buf + pos;
		size_t ll;
		ssize_t m = smtp_line_find(buf + pos, len - pos, SMTP_MAX_REPLY_LINE, &ll);

		if (m < 0)
			return -1;
		if (m == 0) {
			/* Partial line: refuse garbage now rather than after 2 KiB. */
			size_t avail = len - pos;

			return line_head(l, avail < 4 ? avail : 4, code, true) < 0 ? -1 : 0;
		}
		if (ll < 3)
			return -1;
		int c = line_head(l, ll, code, false);

		if (c < 0)
			return -1;
		if (n_lines++ == 0) {
			code = c;
			first_len = ll;
		}
		last_off = pos;
		last_len = ll;
		pos += (size_t)m;
		if (ll == 3 || l[3] == ' ')
			break;
		if (n_lines >= SMTP_MAX_REPLY_LINES)
			return -1;         /* a continuation line cannot be line 256 */
	}
	out->code = code;
	out->enhanced[0] = 0;
	out->text = line_text(buf, first_len, &out->text_len, out->enhanced);
	if (!out->enhanced[0] && n_lines > 1) {
		/* Some servers give the code on the last line only. */
		size_t tl;

		line_text(buf + last_off, last_len, &tl, out->enhanced);
	}
	out->raw = buf;
	out->raw_len = pos;
	out->n_lines = n_lines;
	return (ssize_t)pos;
}

/* Iterate the lines of a parsed reply: *n gets the line's length without
 * its terminator; returns the next line's start. */
static const char *next_line(const char *p, const char *end, size_t *n)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));
	size_t ll;

	if (!lf)                           /* not from smtp_reply_parse(); be safe */
		lf = end;
	ll = (size_t)(lf - p);
	if (ll && p[ll - 1] == '\r')
		ll--;
	*n = ll;
	return lf < end ? lf + 1 : end;
}

static const struct {
	const char *name;
	unsigned len;
	unsigned bit;
} ehlo_kw[] = {
	{"PIPELINING", 10, SMTP_EXT_PIPELINING},
	{"SIZE", 4, SMTP_EXT_SIZE},
	{"8BITMIME", 8, SMTP_EXT_8BITMIME},
	{"STARTTLS", 8, SMTP_EXT_STARTTLS},
	{"SMTPUTF8", 8, SMTP_EXT_SMTPUTF8},
	{"ENHANCEDSTATUSCODES", 19, SMTP_EXT_ENHANCEDSTATUSCODES},
	{"CHUNKING", 8, SMTP_EXT_CHUNKING},
	{"AUTH", 4, SMTP_EXT_AUTH},
	{"DSN", 3, SMTP_EXT_DSN},
};

/* SIZE's argument: digits, saturating at UINT64_MAX; 0 when absent or not a
 * number (RFC 1870: "SIZE" alone or "SIZE 0" means no fixed limit). */
static uint64_t size_arg(const char *p, size_t n)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < n && p[i] == ' ')
		i++;
	if (i == n)
		return 0;
	for (; i < n; i++) {
		unsigned d = (unsigned char)p[i] - '0';

		if (d > 9)
			return 0;
		if (v > (UINT64_MAX - d) / 10)
			return UINT64_MAX;
		v = v * 10 + d;
	}
	return v;
}

unsigned smtp_reply_ehlo_exts(const struct smtp_reply *r, uint64_t *size_limit)
{
	const char *p = r->raw, *end = r->raw + r->raw_len;
	unsigned exts = 0;
	size_t n;

	if (size_limit)
		*size_limit = 0;
	if (r->code / 100 != 2 || r->n_lines < 2)
		return 0;
	p = next_line(p, end, &n);         /* line 1 is the greeting */
	while (p < end) {
		const char *l = p;
		const char *kw;
		size_t kn;

		p = next_line(p, end, &n);
		if (n <= 4)
			continue;
		kw = l + 4;
		n -= 4;
		/* Keyword ends at a space or, in the pre-RFC "AUTH=PLAIN" form, '='. */
		for (kn = 0; kn < n && kw[kn] != ' ' && kw[kn] != '='; kn++)
			;
		for (size_t k = 0; k < sizeof(ehlo_kw) / sizeof(ehlo_kw[0]); k++) {
			if (ehlo_kw[k].len != kn || strncasecmp(kw, ehlo_kw[k].name, kn) != 0)
				continue;
			exts |= ehlo_kw[k].bit;
			if (ehlo_kw[k].bit == SMTP_EXT_SIZE && size_limit && kn < n && kw[kn] == ' ')
				*size_limit = size_arg(kw + kn, n - kn);
			break;
		}
	}
	return exts;
}

size_t smtp_reply_flatten(const struct smtp_reply *r, char *out, size_t cap)
{
	const char *p = r->raw, *end = r->raw + r->raw_len;
	size_t o = 0;

	if (cap == 0)
		return 0;
	while (p < end && o + 1 < cap) {
		const char *l = p, *t;
		size_t n, tn;

		p = next_line(p, end, &n);
		if (n < 3)
			continue;
		/* Every line's own enhanced code goes (they repeat the first's). */
		t = line_text(l, n, &tn, NULL);
		if (tn == 0)
			continue;
		if (o > 0) {
			/* A separator only when a byte of text still fits after it. */
			if (o + 3 > cap)
				break;
			out[o++] = ' ';
		}
		for (size_t i = 0; i < tn && o + 1 < cap;) {
			const unsigned char *c = (const unsigned char *)t + i;
			size_t skip, sl = *c >= 0x80 ? json_utf8_seq(c, tn - i, &skip) : 1;

			if (sl > 1) {
				/* a whole character or none: never cut one in half */
				if (o + sl >= cap)
					break;
				memcpy(out + o, c, sl);
				o += sl;
				i += sl;
				continue;
			}
			out[o++] = *c < 0x20 || *c >= 0x7f ? '?' : (char)*c;
			i++;
		}
	}
	out[o] = 0;
	return o;
}
