/*
 * bounce_dsn.c - builds RFC 3464 delivery status notifications (contract
 * in bounce_dsn.h).
 *
 * The three part bodies are built first, each in its own buffer; then a
 * boundary is chosen that occurs in none of them, and the message is
 * assembled. Everything that comes from outside (remote replies,
 * addresses, the original's headers) passes through clean_text() or
 * put_orig_line() on its way in, which is what keeps CR/LF out of places
 * where it would start a header or a part.
 *
 * Owns nothing beyond one call: the part buffers are freed before
 * dsn_build() returns; the result belongs to the caller.
 */
#include "engine/bounce_dsn.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/json_str.h"

#define DSN_FOLD_AT 78   /* preferred line length when folding */
#define DSN_HOST_MAX 255 /* a DNS name */

struct dsn_ctx {
	const struct dsn_info *in;
	char host[DSN_HOST_MAX + 1]; /* reporting MTA, cleaned */
	bool any_failed, any_delayed;
	bool full;                   /* message/rfc822 with the whole original (RET=FULL) */
	struct json_buf text, status, headers; /* the three part bodies */
	struct json_buf scratch;
};

/* ---- cleaning untrusted text ------------------------------------------------------- */

/* Append s with control characters (CR, LF, TAB, DEL, ...) turned into
 * spaces, white space runs collapsed, both ends trimmed, at most cap bytes
 * taken from s; bytes >= 0x80 kept as they are (keep_8bit), or else kept
 * when they form valid UTF-8 (whole characters within cap) and made '?'
 * one per byte when they do not. */
static int clean_text(struct json_buf *b, const char *s, size_t cap, bool keep_8bit)
{
	bool space = false;
	size_t start = b->len, n = strnlen(s, cap);
	int ret;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t len = 1, skip;

		if (c < 0x20 || c == 0x7f || c == ' ') {
			space = b->len > start;
			continue;
		}
		if (c >= 0x80 && !keep_8bit) {
			len = json_utf8_seq((const unsigned char *)s + i, n - i, &skip);
			if (len < 2) {
				len = 1;
				c = '?';
			}
		}
		if (space && (ret = json_buf_putc(b, ' ')) < 0)
			return ret;
		space = false;
		if ((ret = len > 1 ? json_buf_put(b, s + i, len) : json_buf_putc(b, (char)c)) < 0)
			return ret;
		i += len - 1;
	}
	return 0;
}

/* A host name as it may appear in Message-ID and "dns;" fields: letters,
 * digits and . - _ : [ ] only (IP literals included), at most 255. */
static void clean_host(const char *s, char *out, size_t cap)
{
	static const char ok[] = ".-_:[]";
	size_t n = 0;

	for (; s && *s && n + 1 < cap; s++) {
		char c = *s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr(ok, c))
			out[n++] = c;
	}
	out[n] = 0;
}

/* scratch := cleaned s, NUL-terminated; returns its text (valid until the
 * next use of scratch) or NULL on ENOMEM. */
static const char *scratch_clean(struct dsn_ctx *x, const char *s, size_t cap, bool keep_8bit)
{
	x->scratch.len = 0;
	if (clean_text(&x->scratch, s, cap, keep_8bit) < 0 || json_buf_putc(&x->scratch, 0) < 0)
		return NULL;
	return x->scratch.data;
}

static bool has_8bit(const struct json_buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if ((unsigned char)b->data[i] >= 0x80)
			return true;
	return false;
}

/* ---- line output -------------------------------------------------------------------- */

/*
 * prefix + s[0..n) + CRLF, folded: s is single-spaced text (clean_text);
 * a line longer than DSN_FOLD_AT breaks before a space (unfolding gives
 * the text back), and a word that cannot fit in DSN_LINE_MAX is split
 * with CRLF SP (which adds a space to it: the only change to the text).
 */
static int put_folded(struct json_buf *b, const char *prefix, const char *s, size_t n)
{
	size_t col = strlen(prefix), i = 0;
	int ret;

	if ((ret = json_buf_puts(b, prefix)) < 0)
		return ret;
	while (i < n) {
		size_t j = i + (s[i] == ' ');

		while (j < n && s[j] != ' ')
			j++;
		if (s[i] == ' ' && col + (j - i) > DSN_FOLD_AT) {
			if ((ret = json_buf_put(b, "\r\n", 2)) < 0)
				return ret;
			col = 0; /* the word's own space starts the next line */
		}
		while (col + (j - i) > DSN_LINE_MAX) {
			size_t room = DSN_LINE_MAX - col;

			if ((ret = json_buf_put(b, s + i, room)) < 0 || (ret = json_buf_put(b, "\r\n ", 3)) < 0)
				return ret;
			i += room;
			col = 1;
		}
		if ((ret = json_buf_put(b, s + i, j - i)) < 0)
			return ret;
		col += j - i;
		i = j;
	}
	return json_buf_put(b, "\r\n", 2);
}

static int put_foldedz(struct json_buf *b, const char *prefix, const char *s)
{
	return put_folded(b, prefix, s, strlen(s));
}

/* RFC 5322 date-time in UTC, e.g. "Sun, 22 Nov 2026 10:01:02 +0000". */
static int put_date(struct json_buf *b, int64_t ms)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm))
		return -EINVAL;
	return json_buf_printf(b, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
			       months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int put_date_field(struct json_buf *b, const char *name, int64_t ms)
{
	int ret;

	if ((ret = json_buf_printf(b, "%s: ", name)) < 0 || (ret = put_date(b, ms)) < 0)
		return ret;
	return json_buf_put(b, "\r\n", 2);
}

/* ---- recipients ---------------------------------------------------------------------- */

static bool is_failed(const struct dsn_rcpt *r)
{
	return strcmp(r->action, "failed") == 0;
}

static bool is_relayed(const struct dsn_rcpt *r)
{
	return strcmp(r->action, "relayed") == 0;
}

/* "X.Y.Z" with X in 2, 4, 5 and Y, Z of 1 to 3 digits (RFC 3463). */
static bool status_valid(const char *s)
{
	size_t digits = 0, dots = 0;

	if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	for (s += 2; *s; s++) {
		if (*s == '.' && digits > 0 && dots == 0) {
			dots++;
			digits = 0;
		} else if (*s >= '0' && *s <= '9' && digits < 3) {
			digits++;
		} else {
			return false;
		}
	}
	return dots == 1 && digits > 0;
}

static const char *rcpt_status(const struct dsn_rcpt *r)
{
	if (status_valid(r->status))
		return r->status;
	return is_failed(r) ? "5.0.0" : is_relayed(r) ? "2.0.0" : "4.0.0";
}

static int check_info(const struct dsn_info *in)
{
	if (!in->sender || !in->sender[0] || strcmp(in->sender, "<>") == 0)
		return -EINVAL; /* never bounce a bounce */
	if (!in->reporting_mta || !in->rcpts || in->n_rcpts == 0 || (!in->orig && in->orig_len))
		return -EINVAL;
	for (size_t i = 0; i < in->n_rcpts; i++) {
		const struct dsn_rcpt *r = &in->rcpts[i];

		if (!r->addr || !r->addr[0] || !r->action)
			return -EINVAL;
		if (strcmp(r->action, "failed") != 0 && strcmp(r->action, "delayed") != 0 && !is_relayed(r))
			return -EINVAL;
	}
	return 0;
}

/* ---- part 1: text/plain ---------------------------------------------------------------- */

static const char intro_failed[] =
	"I'm sorry to have to inform you that your message could not\r\n"
	"be delivered to one or more recipients. The headers of your\r\n"
	"message are attached below.\r\n";

static const char intro_delayed[] =
	"####### THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #######\r\n"
	"\r\n"
	"Your message could not be delivered yet to one or more recipients.\r\n"
	"The mail system will keep trying, and will tell you if it finally\r\n"
	"gives up. The headers of your message are attached below.\r\n";

static const char intro_relayed[] =
	"Your message was passed on to the next mail server for one or more\r\n"
	"recipients, as you asked. That server does not report delivery status\r\n"
	"(it has no DSN support), so this is the last report you will get for\r\n"
	"them. The headers of your message are attached below.\r\n";

static const char also_delayed[] =
	"\r\n"
	"Delivery to the recipients marked \"delivery delayed\" below is\r\n"
	"still being retried; you need not resend to them.\r\n";

/* "<addr>: [delivery delayed: ][host H said: ]DIAG", one folded paragraph. */
static int text_rcpt(struct dsn_ctx *x, const struct dsn_rcpt *r)
{
	struct json_buf line = {0};
	char mta[DSN_HOST_MAX + 1];
	int ret;

	clean_host(r->remote_mta, mta, sizeof(mta));
	ret = json_buf_putc(&line, '<');
	if (ret == 0)
		ret = clean_text(&line, r->addr, DSN_ADDR_MAX, true);
	if (ret == 0)
		ret = json_buf_puts(&line, is_failed(r) ? ">: " : is_relayed(r) ? ">: relayed: " : ">: delivery delayed: ");
	if (ret == 0 && mta[0])
		ret = json_buf_printf(&line, "host %s said: ", mta);
	if (ret == 0 && r->diagnostic && r->diagnostic[0])
		ret = clean_text(&line, r->diagnostic, DSN_DIAG_MAX, false);
	else if (ret == 0)
		ret = json_buf_printf(&line, "%s (status %s)",
				      is_failed(r) ? "delivery failed" : is_relayed(r) ? "passed on" : "not yet delivered",
				      rcpt_status(r));
	if (ret == 0)
		ret = json_buf_put(&x->text, "\r\n", 2);
	if (ret == 0)
		ret = put_folded(&x->text, "", line.data, line.len);
	json_buf_free(&line);
	return ret;
}

static int build_text(struct dsn_ctx *x)
{
	const struct dsn_info *in = x->in;
	int ret;

	if ((ret = json_buf_printf(&x->text, "This is the mail system at host %s.\r\n\r\n", x->host)) < 0 ||
	    (ret = json_buf_puts(&x->text, x->any_failed    ? intro_failed
					   : x->any_delayed ? intro_delayed
							    : intro_relayed)) < 0)
		return ret;
	if (x->any_failed && x->any_delayed && (ret = json_buf_puts(&x->text, also_delayed)) < 0)
		return ret;
	for (size_t i = 0; i < in->n_rcpts; i++)
		if ((ret = text_rcpt(x, &in->rcpts[i])) < 0)
			return ret;
	return 0;
}

/* ---- part 2: message/delivery-status ------------------------------------------------- */

static int status_rcpt(struct dsn_ctx *x, const struct dsn_rcpt *r)
{
	struct json_buf *b = &x->status;
	char mta[DSN_HOST_MAX + 1];
	const char *s;
	int ret;

	if ((ret = json_buf_put(b, "\r\n", 2)) < 0)
		return ret;
	/* RFC 3464 2.3.1: the ORCPT as given ("type;address"), first */
	if (r->orcpt && r->orcpt[0]) {
		if (!(s = scratch_clean(x, r->orcpt, DSN_ADDR_MAX, false)))
			return -ENOMEM;
		if (s[0] && (ret = put_foldedz(b, "Original-Recipient: ", s)) < 0)
			return ret;
	}
	if (!(s = scratch_clean(x, r->addr, DSN_ADDR_MAX, true)))
		return -ENOMEM;
	if ((ret = put_foldedz(b, "Final-Recipient: rfc822; ", s)) < 0 ||
	    (ret = json_buf_printf(b, "Action: %s\r\nStatus: %s\r\n", r->action, rcpt_status(r))) < 0)
		return ret;
	clean_host(r->remote_mta, mta, sizeof(mta));
	if (mta[0] && (ret = json_buf_printf(b, "Remote-MTA: dns; %s\r\n", mta)) < 0)
		return ret;
	if (r->diagnostic) {
		if (!(s = scratch_clean(x, r->diagnostic, DSN_DIAG_MAX, false)))
			return -ENOMEM;
		if (s[0] && (ret = put_foldedz(b, "Diagnostic-Code: smtp; ", s)) < 0)
			return ret;
	}
	if (r->last_attempt_ms && (ret = put_date_field(b, "Last-Attempt-Date", r->last_attempt_ms)) < 0)
		return ret;
	return 0;
}

static int build_status(struct dsn_ctx *x)
{
	const struct dsn_info *in = x->in;
	int ret;

	/* RFC 3464 2.2.1: first of the per-message fields, the ENVID as text
	 * (decoded from xtext); intake only takes printable ASCII, an X-Envid
	 * only when it is its own xtext */
	if (in->envid && in->envid[0] &&
	    (ret = json_buf_printf(&x->status, "Original-Envelope-Id: %s\r\n", in->envid)) < 0)
		return ret;
	if ((ret = json_buf_printf(&x->status, "Reporting-MTA: dns; %s\r\nX-Salvo-Queue-ID: %016llx\r\n", x->host,
				   (unsigned long long)in->orig_id)) < 0)
		return ret;
	if (in->arrival_ms && (ret = put_date_field(&x->status, "Arrival-Date", in->arrival_ms)) < 0)
		return ret;
	for (size_t i = 0; i < in->n_rcpts; i++)
		if ((ret = status_rcpt(x, &in->rcpts[i])) < 0)
			return ret;
	return 0;
}

/* ---- part 3: text/rfc822-headers ------------------------------------------------------ */

/* One line of the original (without its line end), NULs and CRs removed,
 * folded with CRLF SP when longer than DSN_LINE_MAX. */
static int put_orig_line(struct json_buf *b, const char *s, size_t n)
{
	size_t col = 0;
	int ret;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == 0 || s[i] == '\r')
			continue;
		if (col == DSN_LINE_MAX) {
			if ((ret = json_buf_put(b, "\r\n ", 3)) < 0)
				return ret;
			col = 1;
		}
		if ((ret = json_buf_putc(b, s[i])) < 0)
			return ret;
		col++;
	}
	return json_buf_put(b, "\r\n", 2);
}

/* The header section: lines up to the first empty one (LF or CRLF line
 * ends), at most DSN_HEADERS_MAX bytes of the original; with x->full the
 * whole original (which dsn_build() checked is within that bound). */
static int build_headers(struct dsn_ctx *x)
{
	const char *p = x->in->orig;
	size_t len = x->in->orig_len, pos = 0;
	size_t budget = DSN_HEADERS_MAX;
	int ret;

	while (pos < len && budget > 0) {
		const char *nl = memchr(p + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - p) : len;
		size_t next = nl ? end + 1 : len;
		size_t n = end - pos;

		if (n > 0 && p[end - 1] == '\r')
			n--;
		if (n == 0 && !x->full)
			break; /* the empty line: the body follows */
		if (n > budget)
			n = budget;
		if ((ret = put_orig_line(&x->headers, p + pos, n)) < 0)
			return ret;
		budget -= n;
		pos = next;
	}
	return 0;
}

/* ---- assembly -------------------------------------------------------------------------- */

static bool in_parts(const struct dsn_ctx *x, const char *s, size_t n)
{
	const struct json_buf *parts[] = {&x->text, &x->status, &x->headers};

	for (size_t i = 0; i < 3; i++)
		if (parts[i]->len && memmem(parts[i]->data, parts[i]->len, s, n))
			return true;
	return false;
}

/* A boundary found in no part. Each try differs, and the parts are finite,
 * so this ends (after at most total part bytes / boundary length tries). */
static void pick_boundary(const struct dsn_ctx *x, char *out, size_t cap)
{
	unsigned long long n = 0;
	int len;

	do {
		len = snprintf(out, cap, "=_salvo.%016llx.%016llx.%llu", (unsigned long long)x->in->orig_id,
			       (unsigned long long)x->in->dsn_id, n++);
	} while (in_parts(x, out, (size_t)len));
}

static int put_part(struct json_buf *b, const char *boundary, const char *head, const struct json_buf *body)
{
	int ret;

	if ((ret = json_buf_printf(b, "\r\n--%s\r\n%s", boundary, head)) < 0)
		return ret;
	if (has_8bit(body) && (ret = json_buf_puts(b, "Content-Transfer-Encoding: 8bit\r\n")) < 0)
		return ret;
	if ((ret = json_buf_put(b, "\r\n", 2)) < 0)
		return ret;
	return json_buf_put(b, body->data, body->len);
}

static int put_top_headers(struct dsn_ctx *x, struct json_buf *b, const char *boundary)
{
	const struct dsn_info *in = x->in;
	bool eight = has_8bit(&x->text) || has_8bit(&x->status) || has_8bit(&x->headers);
	const char *to, *type = has_8bit(&x->status) ? "global-delivery-status" : "delivery-status";
	int ret;

	if (!(to = scratch_clean(x, in->sender, DSN_ADDR_MAX, true)))
		return -ENOMEM;
	if ((ret = json_buf_printf(b, "From: \"Mail Delivery System\" <MAILER-DAEMON@%s>\r\n", x->host)) < 0 ||
	    (ret = json_buf_printf(b, "To: <%s>\r\n", to)) < 0 ||
	    (ret = json_buf_printf(b, "Subject: %s\r\n", x->any_failed    ? "Undelivered Mail Returned to Sender"
							: x->any_delayed ? "Delayed Mail (still being retried)"
									 : "Successful Mail Delivery Report")) < 0 ||
	    (ret = put_date_field(b, "Date", in->date_ms ? in->date_ms : (int64_t)time(NULL) * 1000)) < 0)
		return ret;
	return json_buf_printf(b,
			       "Message-ID: <%016llx.dsn@%s>\r\n"
			       "Auto-Submitted: auto-replied\r\n"
			       "MIME-Version: 1.0\r\n"
			       "Content-Type: multipart/report; report-type=%s;\r\n"
			       "\tboundary=\"%s\"\r\n"
			       "Content-Transfer-Encoding: %s\r\n"
			       "\r\n"
			       "This is a MIME-encapsulated message.\r\n",
			       (unsigned long long)in->dsn_id, x->host, type, boundary, eight ? "8bit" : "7bit");
}

static int assemble(struct dsn_ctx *x, struct json_buf *b)
{
	const char *text_head = has_8bit(&x->text)
		? "Content-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\n"
		: "Content-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n";
	char boundary[80];
	int ret;

	pick_boundary(x, boundary, sizeof(boundary));
	if ((ret = put_top_headers(x, b, boundary)) < 0 || (ret = put_part(b, boundary, text_head, &x->text)) < 0 ||
	    (ret = put_part(b, boundary,
			    has_8bit(&x->status)
				    /* UTF-8 in it (an address, a reply): RFC 6533 */
				    ? "Content-Description: Delivery report\r\nContent-Type: message/global-delivery-status\r\n"
				    : "Content-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n",
			    &x->status)) < 0 ||
	    (ret = put_part(b, boundary,
			    x->full ? "Content-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n"
				    : x->any_failed
				    ? "Content-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n"
				    : "Content-Description: Message Headers\r\nContent-Type: text/rfc822-headers\r\n",
			    &x->headers)) < 0)
		return ret;
	return json_buf_printf(b, "\r\n--%s--\r\n", boundary);
}

static void ctx_free(struct dsn_ctx *x)
{
	json_buf_free(&x->text);
	json_buf_free(&x->status);
	json_buf_free(&x->headers);
	json_buf_free(&x->scratch);
}

int dsn_build(const struct dsn_info *in, char **out, size_t *out_len)
{
	struct dsn_ctx x = {.in = in};
	struct json_buf msg = {0};
	int ret;

	if ((ret = check_info(in)) < 0)
		return ret;
	clean_host(in->reporting_mta, x.host, sizeof(x.host));
	if (!x.host[0])
		return -EINVAL;
	for (size_t i = 0; i < in->n_rcpts; i++) {
		x.any_failed |= is_failed(&in->rcpts[i]);
		x.any_delayed |= strcmp(in->rcpts[i].action, "delayed") == 0;
	}
	/* RFC 3461 4.3: RET=FULL is for failures; the bound keeps the DSN small */
	x.full = in->ret == DSN_RET_FULL && x.any_failed && in->orig_len <= DSN_HEADERS_MAX;
	ret = build_text(&x);
	if (ret == 0)
		ret = build_status(&x);
	if (ret == 0)
		ret = build_headers(&x);
	if (ret == 0)
		ret = assemble(&x, &msg);
	if (ret == 0)
		ret = json_buf_putc(&msg, 0);
	ctx_free(&x);
	if (ret < 0) {
		json_buf_free(&msg);
		return ret;
	}
	*out = msg.data;
	*out_len = msg.len - 1;
	return 0;
}
