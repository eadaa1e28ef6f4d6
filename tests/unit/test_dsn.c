/*
 * test_dsn.c - the DSN builder: required headers and fields, MIME
 * structure (one boundary delimiting exactly three parts), CRLF line ends,
 * no line over 998 octets, header injection through remote text or
 * addresses, originals without a header/body separator, the header cap,
 * boundary collisions, 8-bit data and the refusals (null sender...).
 *
 * Every generated DSN goes through check_dsn(), a small structural parser
 * that owns the invariants every output must keep.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bounce_dsn.h"

#define T0 1795341662345LL /* Sun, 22 Nov 2026 10:01:02 +0000 */
#define Q0 1795341480000LL /* Sun, 22 Nov 2026 09:58:00 +0000 */

static const char orig_msg[] =
	"Received: from client (client [192.0.2.7])\r\n"
	"\tby mta.example.com with ESMTP\r\n"
	"From: Alice <alice@example.com>\r\n"
	"To: Nobody <nobody@example.net>\r\n"
	"Subject: hello\r\n"
	"Message-ID: <abc@example.com>\r\n"
	"\r\n"
	"secret body line\r\n";

/* ---- a small structural parser -------------------------------------------------------- */

struct span {
	const char *p;
	size_t n;
};

struct dsn {
	char *msg;
	size_t len;
	struct span head;     /* top-level header section, with its last CRLF */
	char boundary[128];
	struct span part_head[3], part_body[3];
};

static const char *find(struct span s, const char *needle)
{
	return memmem(s.p, s.n, needle, strlen(needle));
}

/* Does some line of s start with prefix? */
static bool has_line(struct span s, const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *p = s.p; p < s.p + s.n;) {
		const char *e = memmem(p, (size_t)(s.p + s.n - p), "\r\n", 2);
		size_t len = e ? (size_t)(e - p) : (size_t)(s.p + s.n - p);

		if (len >= n && memcmp(p, prefix, n) == 0)
			return true;
		p += len + 2;
	}
	return false;
}

/* Number of lines of s starting with prefix. */
static int count_lines(struct span s, const char *prefix)
{
	int k = 0;
	size_t n = strlen(prefix);

	for (const char *p = s.p; p < s.p + s.n;) {
		const char *e = memmem(p, (size_t)(s.p + s.n - p), "\r\n", 2);
		size_t len = e ? (size_t)(e - p) : (size_t)(s.p + s.n - p);

		k += len >= n && memcmp(p, prefix, n) == 0;
		p += len + 2;
	}
	return k;
}

/* The exact line (without CRLF) must exist in s. */
static void assert_line(struct span s, const char *line)
{
	char *want = malloc(strlen(line) + 5);

	assert_non_null(want);
	sprintf(want, "\r\n%s\r\n", line);
	/* a line at the very start of s has no CRLF before it */
	if (!(s.n >= strlen(line) + 2 && memcmp(s.p, line, strlen(line)) == 0 &&
	      memcmp(s.p + strlen(line), "\r\n", 2) == 0)) {
		if (!find(s, want))
			fail_msg("missing line \"%s\" in:\n%.*s", line, (int)s.n, s.p);
	}
	free(want);
}

static void check_crlf_and_length(const char *m, size_t len)
{
	size_t col = 0;

	for (size_t i = 0; i < len; i++) {
		if (m[i] == '\r') {
			assert_true(i + 1 < len && m[i + 1] == '\n');
			assert_true(col <= DSN_LINE_MAX);
			col = 0;
			i++;
		} else {
			assert_int_not_equal(m[i], '\n'); /* no bare LF */
			assert_int_not_equal(m[i], 0);
			col++;
		}
	}
	assert_int_equal(col, 0); /* ends with CRLF */
}

static void parse_boundary(struct dsn *d)
{
	const char *b = find(d->head, "boundary=\"");
	const char *e;

	assert_non_null(b);
	b += 10;
	e = memchr(b, '"', (size_t)(d->head.p + d->head.n - b));
	assert_non_null(e);
	assert_true(e - b > 0 && e - b < 71); /* RFC 2046: 1 to 70 characters */
	memcpy(d->boundary, b, (size_t)(e - b));
	d->boundary[e - b] = 0;
}

/* Split the body at the boundary: exactly three parts, then the close
 * delimiter ending the message. */
static void parse_parts(struct dsn *d, const char *body)
{
	char delim[160], close[160];
	const char *end = d->msg + d->len, *p;
	size_t dl;

	snprintf(delim, sizeof(delim), "\r\n--%s\r\n", d->boundary);
	snprintf(close, sizeof(close), "\r\n--%s--\r\n", d->boundary);
	dl = strlen(delim);
	assert_true(d->len > strlen(close));
	assert_memory_equal(end - strlen(close), close, strlen(close));
	end -= strlen(close);
	p = memmem(body, (size_t)(end - body), delim, dl);
	for (int i = 0; i < 3; i++) {
		const char *start, *next, *sep;

		assert_non_null(p);
		start = p + dl;
		next = memmem(start, (size_t)(end - start), delim, dl);
		if (i < 2)
			assert_non_null(next);
		else
			assert_null(next); /* no fourth part */
		if (!next)
			next = end;
		/* part headers end at the first empty line */
		if (memcmp(start, "\r\n", 2) == 0)
			fail_msg("part %d has no headers", i);
		sep = memmem(start, (size_t)(next - start), "\r\n\r\n", 4);
		assert_non_null(sep);
		d->part_head[i] = (struct span){start, (size_t)(sep + 2 - start)};
		d->part_body[i] = (struct span){sep + 4, (size_t)(next - sep - 4)};
		p = next;
	}
	/* the boundary itself occurs nowhere in the content */
	for (int i = 0; i < 3; i++)
		assert_null(find(d->part_body[i], d->boundary));
}

/* Build, then check what every DSN must be. */
static void build_ok(const struct dsn_info *in, struct dsn *d)
{
	const char *sep;

	memset(d, 0, sizeof(*d));
	assert_int_equal(dsn_build(in, &d->msg, &d->len), 0);
	assert_non_null(d->msg);
	assert_int_equal(strlen(d->msg), d->len); /* NUL after, none inside */
	check_crlf_and_length(d->msg, d->len);
	sep = strstr(d->msg, "\r\n\r\n");
	assert_non_null(sep);
	d->head = (struct span){d->msg, (size_t)(sep + 2 - d->msg)};
	parse_boundary(d);
	parse_parts(d, sep + 2);
}

static void dsn_free(struct dsn *d)
{
	free(d->msg);
}

/* Header field value, unfolded; "" when absent (caller frees). */
static char *header(const struct dsn *d, const char *name)
{
	size_t n = strlen(name);
	char *out = calloc(1, d->head.n + 1);
	size_t k = 0;

	assert_non_null(out);
	for (const char *p = d->head.p; p < d->head.p + d->head.n;) {
		const char *e = strstr(p, "\r\n");

		if (strncmp(p, name, n) == 0 && p[n] == ':') {
			for (p += n + 1; *p == ' '; p++)
				;
			for (;;) {
				memcpy(out + k, p, (size_t)(e - p));
				k += (size_t)(e - p);
				p = e + 2;
				if (*p != ' ' && *p != '\t')
					break;
				e = strstr(p, "\r\n");
			}
			return out;
		}
		p = e + 2;
	}
	return out;
}

static void assert_header(const struct dsn *d, const char *name, const char *want)
{
	char *v = header(d, name);

	assert_string_equal(v, want);
	free(v);
}

/* ---- fixtures -------------------------------------------------------------------------- */

static struct dsn_rcpt rcpt_nobody(void)
{
	return (struct dsn_rcpt){
		.addr = "nobody@example.net",
		.action = "failed",
		.status = "5.1.1",
		.remote_mta = "mx1.example.net",
		.diagnostic = "550 5.1.1 no such user",
		.last_attempt_ms = T0,
	};
}

static struct dsn_info info_for(const struct dsn_rcpt *r, size_t n)
{
	return (struct dsn_info){
		.reporting_mta = "mta.example.com",
		.sender = "alice@example.com",
		.orig_id = 0x4d2,
		.dsn_id = 0x11,
		.orig = orig_msg,
		.orig_len = sizeof(orig_msg) - 1,
		.arrival_ms = Q0,
		.date_ms = T0,
		.rcpts = r,
		.n_rcpts = n,
	};
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_failed_single(void **state)
{
	struct dsn_rcpt r = rcpt_nobody();
	struct dsn_info in = info_for(&r, 1);
	struct dsn d;

	build_ok(&in, &d);
	assert_header(&d, "From", "\"Mail Delivery System\" <MAILER-DAEMON@mta.example.com>");
	assert_header(&d, "To", "<alice@example.com>");
	assert_header(&d, "Subject", "Undelivered Mail Returned to Sender");
	assert_header(&d, "Date", "Sun, 22 Nov 2026 10:01:02 +0000");
	assert_header(&d, "Message-ID", "<0000000000000011.dsn@mta.example.com>");
	assert_header(&d, "Auto-Submitted", "auto-replied");
	assert_header(&d, "MIME-Version", "1.0");
	assert_header(&d, "Content-Transfer-Encoding", "7bit");
	{
		char *ct = header(&d, "Content-Type");
		char want[256];

		snprintf(want, sizeof(want), "multipart/report; report-type=delivery-status;\tboundary=\"%s\"",
			 d.boundary);
		assert_string_equal(ct, want);
		free(ct);
	}
	assert_int_equal(count_lines(d.head, "Subject:"), 1);

	/* part 1: for people */
	assert_line(d.part_head[0], "Content-Type: text/plain; charset=us-ascii");
	assert_line(d.part_body[0], "This is the mail system at host mta.example.com.");
	assert_line(d.part_body[0], "<nobody@example.net>: host mx1.example.net said: 550 5.1.1 no such user");

	/* part 2: for programs */
	assert_line(d.part_head[1], "Content-Type: message/delivery-status");
	assert_line(d.part_body[1], "Reporting-MTA: dns; mta.example.com");
	assert_line(d.part_body[1], "X-Salvo-Queue-ID: 00000000000004d2");
	assert_line(d.part_body[1], "Arrival-Date: Sun, 22 Nov 2026 09:58:00 +0000");
	assert_line(d.part_body[1], "Final-Recipient: rfc822; nobody@example.net");
	assert_line(d.part_body[1], "Action: failed");
	assert_line(d.part_body[1], "Status: 5.1.1");
	assert_line(d.part_body[1], "Remote-MTA: dns; mx1.example.net");
	assert_line(d.part_body[1], "Diagnostic-Code: smtp; 550 5.1.1 no such user");
	assert_line(d.part_body[1], "Last-Attempt-Date: Sun, 22 Nov 2026 10:01:02 +0000");
	/* per-message block, empty line, per-recipient block */
	assert_non_null(find(d.part_body[1], "+0000\r\n\r\nFinal-Recipient:"));

	/* part 3: the original's headers, exactly, and not its body */
	assert_line(d.part_head[2], "Content-Type: text/rfc822-headers");
	assert_int_equal(d.part_body[2].n, strstr(orig_msg, "\r\n\r\n") + 2 - orig_msg);
	assert_memory_equal(d.part_body[2].p, orig_msg, d.part_body[2].n);
	assert_null(strstr(d.msg, "secret body"));
	dsn_free(&d);
}

static void test_delayed(void **state)
{
	struct dsn_rcpt r = rcpt_nobody();
	struct dsn_info in = info_for(&r, 1);
	struct dsn d;

	r.action = "delayed";
	r.status = "4.7.x"; /* malformed: the default for delayed */
	r.diagnostic = "451 4.7.1 try again later";
	build_ok(&in, &d);
	assert_header(&d, "Subject", "Delayed Mail (still being retried)");
	assert_line(d.part_body[1], "Action: delayed");
	assert_line(d.part_body[1], "Status: 4.0.0");
	assert_non_null(find(d.part_body[0], "WARNING ONLY"));
	/* folded before the 78th column */
	assert_non_null(find(d.part_body[0], "\r\n<nobody@example.net>: delivery delayed: host mx1.example.net said: 451 4.7.1\r\n try again later\r\n"));
	dsn_free(&d);
}

static void test_multiple_rcpts(void **state)
{
	struct dsn_rcpt r[3] = {rcpt_nobody(), rcpt_nobody(), rcpt_nobody()};
	struct dsn_info in = info_for(r, 3);
	struct dsn d;

	r[1].addr = "second@example.org";
	r[1].remote_mta = NULL;   /* never reached a host */
	r[1].diagnostic = NULL;
	r[1].status = NULL;
	r[1].last_attempt_ms = 0;
	r[2].addr = "later@example.org";
	r[2].action = "delayed";
	r[2].status = "4.4.1";
	r[2].diagnostic = "connect to mx.example.org: Connection timed out";
	build_ok(&in, &d);
	assert_header(&d, "Subject", "Undelivered Mail Returned to Sender"); /* any failed */
	assert_int_equal(count_lines(d.part_body[1], "Final-Recipient: rfc822; "), 3);
	assert_int_equal(count_lines(d.part_body[1], "Remote-MTA: "), 2);
	assert_int_equal(count_lines(d.part_body[1], "Diagnostic-Code: "), 2);
	assert_int_equal(count_lines(d.part_body[1], "Last-Attempt-Date: "), 2);
	assert_int_equal(count_lines(d.part_body[1], "Reporting-MTA: "), 1);
	/* each recipient's block follows an empty line, in the given order */
	const char *a = find(d.part_body[1], "\r\n\r\nFinal-Recipient: rfc822; nobody@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n");
	const char *b = find(d.part_body[1], "\r\n\r\nFinal-Recipient: rfc822; second@example.org\r\nAction: failed\r\nStatus: 5.0.0\r\n\r\n");
	const char *c = find(d.part_body[1], "\r\n\r\nFinal-Recipient: rfc822; later@example.org\r\nAction: delayed\r\nStatus: 4.4.1\r\n");
	assert_true(a && b && c && a < b && b < c);
	assert_line(d.part_body[0], "<second@example.org>: delivery failed (status 5.0.0)");
	assert_non_null(find(d.part_body[0], "still being"));
	dsn_free(&d);
}

static void test_header_injection(void **state)
{
	struct dsn_rcpt r = rcpt_nobody();
	struct dsn_info in = info_for(&r, 1);
	struct dsn d;

	r.diagnostic = "550 bad\r\nSubject: pwned\r\n\r\n--=_salvo.00000000000004d2.0000000000000011.0\r\nX-Evil: 1\n\rBcc: v@x";
	r.addr = "evil@example.net\r\nBcc: victim@example.org";
	r.remote_mta = "mx.example.net\r\nX-Host-Inject: 1";
	in.sender = "alice@example.com>\r\nX-Inject: 1\r\n";
	build_ok(&in, &d);
	assert_int_equal(count_lines(d.head, "Subject:"), 1);
	assert_header(&d, "Subject", "Undelivered Mail Returned to Sender");
	for (const char *bad = "Subject: pwned\0X-Evil:\0Bcc:\0X-Inject:\0X-Host-Inject:\0"; *bad; bad += strlen(bad) + 1) {
		struct span all = {d.msg, d.len};

		if (has_line(all, bad))
			fail_msg("injected line \"%s\"", bad);
	}
	/* the text is there, harmlessly on one (possibly folded) field */
	assert_non_null(strstr(d.msg, "Diagnostic-Code: smtp; 550 bad Subject: pwned\r\n --=_salvo."));
	assert_line(d.part_body[1], "Final-Recipient: rfc822; evil@example.net Bcc: victim@example.org");
	assert_line(d.part_body[1], "Remote-MTA: dns; mx.example.netX-Host-Inject:1");
	assert_header(&d, "To", "<alice@example.com> X-Inject: 1>");
	dsn_free(&d);
}

static void test_orig_without_separator(void **state)
{
	static const char body_only[] = "just some text, no header at all\r\nsecond line";
	struct dsn_rcpt r = rcpt_nobody();
	struct dsn_info in = info_for(&r, 1);
	struct dsn d;

	in.orig = body_only;
	in.orig_len = sizeof(body_only) - 1;
	build_ok(&in, &d);
	assert_int_equal(d.part_body[2].n, sizeof(body_only) - 1 + 2);
	assert_memory_equal(d.part_body[2].p, "just some text, no header at all\r\nsecond line\r\n", d.part_body[2].n);
	dsn_free(&d);

	/* no original at all */
	in.orig = NULL;
	in.orig_len = 0;
	build_ok(&in, &d);
	assert_int_equal(d.part_body[2].n, 0);
	dsn_free(&d);

	/* starts with the empty line: no headers */
	in.orig = "\r\nbody";
	in.orig_len = 6;
	build_ok(&in, &d);
	assert_int_equal(d.part_body[2].n, 0);
	dsn_free(&d);

	/* LF line ends, a NUL and a bare CR: made CRLF, removed */
	static const char lf[] = "A: 1\nB: 2\0x\rz\n\nbody\n";
	in.orig = lf;
	in.orig_len = sizeof(lf) - 1;
	build_ok(&in, &d);
	assert_int_equal(d.part_body[2].n, 14);
	assert_memory_equal(d.part_body[2].p, "A: 1\r\nB: 2xz\r\n", 14);
	dsn_free(&d);
}

static void test_long_lines(void **state)
{
	struct dsn_rcpt r = rcpt_nobody();
	struct dsn_info in = info_for(&r, 1);
	char *word = malloc(3001), *words = malloc(1501), *addr = malloc(2001), *host = malloc(1001);
	char *orig = malloc(5100);
	struct dsn d;

	assert_true(word && words && addr && host && orig);
	memset(word, 'w', 3000);
	word[3000] = 0;
	for (int i = 0; i < 1500; i++)
		words[i] = i % 7 == 6 ? ' ' : 'a' + i % 7;
	words[1500] = 0;
	memset(addr, 'a', 2000);
	addr[2000] = 0;
	addr[1000] = '@';
	memset(host, 'h', 1000);
	host[1000] = 0;
	memcpy(orig, "X-Long: ", 8);
	memset(orig + 8, 'x', 5000);
	memcpy(orig + 5008, "\r\n\r\nbody\r\n", 10);

	/* one huge word: split (lines <= 998 checked by build_ok), cut at DSN_DIAG_MAX */
	r.diagnostic = word;
	r.addr = addr;
	r.remote_mta = host;
	in.orig = orig;
	in.orig_len = 5018;
	build_ok(&in, &d);
	assert_non_null(strstr(d.msg, "Diagnostic-Code: smtp; www"));
	{
		/* the host name is cut to 255 characters */
		char want[300];

		memcpy(want, "Remote-MTA: dns; ", 17);
		memset(want + 17, 'h', 255);
		strcpy(want + 17 + 255, "\r\n");
		assert_non_null(strstr(d.msg, want));
	}
	{
		/* the word's w's, unfolded, number DSN_DIAG_MAX */
		const char *p = strstr(d.msg, "Diagnostic-Code: smtp; ") + 23;
		size_t ws = 0;

		for (; *p == 'w' || (p[0] == '\r' && p[1] == '\n' && p[2] == ' '); p += *p == 'w' ? 1 : 3)
			ws += *p == 'w';
		assert_int_equal(ws, DSN_DIAG_MAX);
	}
	/* the 5 KB header line is folded, its x's all there */
	{
		const char *p = d.part_body[2].p + 8;
		size_t xs = 0;

		for (; *p == 'x' || (p[0] == '\r' && p[1] == '\n' && p[2] == ' '); p += *p == 'x' ? 1 : 3)
			xs += *p == 'x';
		assert_int_equal(xs, 5000);
	}
	dsn_free(&d);

	/* many words: folded at spaces; unfolding gives the text back */
	r.diagnostic = words;
	r.addr = "nobody@example.net";
	build_ok(&in, &d);
	{
		const char *p = strstr(d.msg, "Diagnostic-Code: smtp; ") + 23;
		const char *e = strstr(p, "\r\nLast-Attempt-Date:");
		char *unfolded = calloc(1, (size_t)(e - p) + 1);
		size_t k = 0;
		int folds = 0;

		assert_non_null(unfolded);
		for (; p < e; p++) {
			if (p[0] == '\r' && p[1] == '\n') {
				assert_int_equal(p[2], ' '); /* continuation starts with WSP */
				assert_true(p[3] != ' ' && p[3] != '\r'); /* never a blank line */
				folds++;
				p++;
				continue;
			}
			unfolded[k++] = *p;
		}
		assert_string_equal(unfolded, words);
		assert_true(folds >= 1500 / 78);
		free(unfolded);
	}
	dsn_free(&d);
	free(word);
	free(words);
	free(addr);
	free(host);
	free(orig);
}

static void test_header_cap(void **state)
{
	const size_t line = 100, n_lines = 2000; /* 200 KB of headers, no body */
	char *orig = malloc(line * n_lines);
	struct dsn_rcpt r = rcpt_nobody();
	struct dsn_info in = info_for(&r, 1);
	struct dsn d;

	assert_non_null(orig);
	for (size_t i = 0; i < n_lines; i++) {
		char *l = orig + i * line;

		memset(l, 'v', line - 2);
		memcpy(l, "X-H: ", 5);
		memcpy(l + line - 2, "\r\n", 2);
	}
	in.orig = orig;
	in.orig_len = line * n_lines;
	build_ok(&in, &d);
	/* 64 KiB of original bytes, line ends not counted */
	assert_int_equal(d.part_body[2].n, DSN_HEADERS_MAX + 2 * (DSN_HEADERS_MAX / (line - 2) + 1));
	assert_memory_equal(d.part_body[2].p, orig, line);
	dsn_free(&d);
	free(orig);
}

static void test_boundary_collision(void **state)
{
	struct dsn_rcpt r = rcpt_nobody();
	struct dsn_info in = info_for(&r, 1);
	char orig[512];
	struct dsn d;

	/* The first choice would be =_salvo.<orig>.<dsn>.0: put it, and the
	 * second, in the original; the diagnostic holds the third. */
	snprintf(orig, sizeof(orig),
		 "Subject: x\r\nX-A: --=_salvo.00000000000004d2.0000000000000011.0\r\n"
		 "X-B: =_salvo.00000000000004d2.0000000000000011.1\r\n\r\n");
	in.orig = orig;
	in.orig_len = strlen(orig);
	r.diagnostic = "550 =_salvo.00000000000004d2.0000000000000011.2";
	build_ok(&in, &d); /* checks the boundary is in no part */
	assert_string_equal(d.boundary, "=_salvo.00000000000004d2.0000000000000011.3");
	dsn_free(&d);

	in.orig = orig_msg;
	in.orig_len = sizeof(orig_msg) - 1;
	r.diagnostic = "550 no";
	build_ok(&in, &d);
	assert_string_equal(d.boundary, "=_salvo.00000000000004d2.0000000000000011.0");
	dsn_free(&d);
}

static void test_8bit(void **state)
{
	struct dsn_rcpt r = rcpt_nobody();
	struct dsn_info in = info_for(&r, 1);
	struct dsn d;

	/* Valid UTF-8 in a reply is kept (RFC 6533 global-delivery-status);
	 * invalid bytes become '?' one each. */
	r.diagnostic = "550 5.1.1 unbekannter Empf\xc3\xa4nger \xd0\x9f\xff\xc3";
	build_ok(&in, &d);
	assert_line(d.part_body[1], "Diagnostic-Code: smtp; 550 5.1.1 unbekannter Empf\xc3\xa4nger \xd0\x9f??");
	assert_non_null(find(d.part_body[0], " Empf\xc3\xa4nger \xd0\x9f??\r\n"));
	assert_header(&d, "Content-Transfer-Encoding", "8bit");
	assert_line(d.part_head[1], "Content-Type: message/global-delivery-status");
	dsn_free(&d);
	/* ASCII only: the classic types, 7bit. */
	r.diagnostic = "550 5.1.1 unknown";
	build_ok(&in, &d);
	assert_header(&d, "Content-Transfer-Encoding", "7bit");
	assert_line(d.part_head[1], "Content-Type: message/delivery-status");
	dsn_free(&d);

	r.addr = "j\xc3\xb6rg@example.net"; /* SMTPUTF8 address: kept */
	build_ok(&in, &d);
	assert_line(d.part_body[1], "Final-Recipient: rfc822; j\xc3\xb6rg@example.net");
	assert_header(&d, "Content-Transfer-Encoding", "8bit");
	assert_line(d.part_head[0], "Content-Type: text/plain; charset=utf-8");
	assert_line(d.part_head[0], "Content-Transfer-Encoding: 8bit");
	assert_line(d.part_head[1], "Content-Transfer-Encoding: 8bit");
	assert_false(has_line(d.part_head[2], "Content-Transfer-Encoding:"));
	assert_false(has_line(d.part_body[1], "Original-Envelope-Id:"));
	dsn_free(&d);
	/* the original's ENVID (process-x-envid): the first per-message field */
	in.envid = "camp7-msg42";
	build_ok(&in, &d);
	assert_line(d.part_body[1], "Original-Envelope-Id: camp7-msg42");
	assert_true(strstr(d.part_body[1].p, "Original-Envelope-Id:") < strstr(d.part_body[1].p, "Reporting-MTA:"));
	dsn_free(&d);
}

/* RFC 3461 in Salvo's own DSNs: Original-Recipient from ORCPT (before
 * Final-Recipient, cleaned), "relayed" reports, RET=FULL returning the
 * whole message as message/rfc822 (failures only, within the bound). */
static void test_dsn_params(void **state)
{
	struct dsn_rcpt r[2] = {rcpt_nobody(), rcpt_nobody()};
	struct dsn_info in = info_for(r, 1);
	struct dsn d;
	char *subj;
	char *big;
	const char *o, *f;

	(void)state;
	r[0].orcpt = "rfc822;Old+One@example.org";
	build_ok(&in, &d);
	assert_line(d.part_body[1], "Original-Recipient: rfc822;Old+One@example.org");
	o = strstr(d.part_body[1].p, "Original-Recipient:");
	f = strstr(d.part_body[1].p, "Final-Recipient:");
	assert_true(o && f && o < f);
	assert_line(d.part_head[2], "Content-Type: text/rfc822-headers");
	assert_null(find(d.part_body[2], "secret body line"));
	dsn_free(&d);
	/* no ORCPT: no field; a hostile one cannot add a line */
	r[0].orcpt = "rfc822;a@b\r\nX-Evil: 1";
	build_ok(&in, &d);
	assert_int_equal(count_lines(d.part_body[1], "Original-Recipient:"), 1);
	assert_false(has_line(d.part_body[1], "X-Evil"));
	dsn_free(&d);
	r[0].orcpt = NULL;
	build_ok(&in, &d);
	assert_false(has_line(d.part_body[1], "Original-Recipient:"));
	dsn_free(&d);

	/* RET=FULL: the whole original; RET=HDRS: headers */
	in.ret = DSN_RET_FULL;
	build_ok(&in, &d);
	assert_line(d.part_head[2], "Content-Type: message/rfc822");
	assert_non_null(find(d.part_body[2], "secret body line"));
	assert_non_null(find(d.part_body[2], "Subject: hello"));
	dsn_free(&d);
	in.ret = DSN_RET_HDRS;
	build_ok(&in, &d);
	assert_line(d.part_head[2], "Content-Type: text/rfc822-headers");
	assert_null(find(d.part_body[2], "secret body line"));
	dsn_free(&d);
	/* over the bound: headers only, whatever RET says */
	big = malloc(DSN_HEADERS_MAX + 200);
	assert_non_null(big);
	memcpy(big, "Subject: big\r\n\r\n", 17);
	memset(big + 17, 'x', DSN_HEADERS_MAX + 200 - 17);
	for (size_t i = 17 + 70; i + 1 < DSN_HEADERS_MAX + 200; i += 72)
		memcpy(big + i, "\r\n", 2);
	in.ret = DSN_RET_FULL;
	in.orig = big;
	in.orig_len = DSN_HEADERS_MAX + 200;
	build_ok(&in, &d);
	assert_line(d.part_head[2], "Content-Type: text/rfc822-headers");
	assert_true(d.part_body[2].n < 100);
	dsn_free(&d);
	free(big);
	in.orig = orig_msg;
	in.orig_len = strlen(orig_msg);

	/* relayed: its own subject and status; FULL does not apply */
	r[0].action = "relayed";
	r[0].status = NULL;
	r[0].diagnostic = "250 2.0.0 Ok: queued";
	r[0].orcpt = "rfc822;x@example.org";
	build_ok(&in, &d);
	subj = header(&d, "Subject");
	assert_string_equal(subj, "Successful Mail Delivery Report");
	free(subj);
	assert_line(d.part_body[1], "Action: relayed");
	assert_line(d.part_body[1], "Status: 2.0.0");
	assert_line(d.part_body[1], "Original-Recipient: rfc822;x@example.org");
	assert_line(d.part_head[2], "Content-Type: text/rfc822-headers");
	assert_null(find(d.part_body[2], "secret body line"));
	dsn_free(&d);
	/* a failure beside a relayed recipient: the failure's subject */
	r[1].action = "failed";
	in.n_rcpts = 2;
	build_ok(&in, &d);
	subj = header(&d, "Subject");
	assert_string_equal(subj, "Undelivered Mail Returned to Sender");
	free(subj);
	assert_line(d.part_head[2], "Content-Type: message/rfc822");
	dsn_free(&d);
	/* an unknown action is still refused */
	r[0].action = "delivered";
	assert_int_equal(dsn_build(&in, &d.msg, &d.len), -EINVAL);
}

static void test_date_now(void **state)
{
	struct dsn_rcpt r = rcpt_nobody();
	struct dsn_info in = info_for(&r, 1);
	struct dsn d;
	char *date;

	in.date_ms = 0;
	in.arrival_ms = 0;
	r.last_attempt_ms = 0;
	build_ok(&in, &d);
	date = header(&d, "Date");
	assert_int_equal(strlen(date), strlen("Sun, 22 Nov 2026 10:01:02 +0000"));
	assert_string_equal(date + strlen(date) - 6, " +0000");
	free(date);
	assert_false(has_line(d.part_body[1], "Arrival-Date:"));
	assert_false(has_line(d.part_body[1], "Last-Attempt-Date:"));
	dsn_free(&d);
}

static void test_errors(void **state)
{
	struct dsn_rcpt r = rcpt_nobody();
	struct dsn_info in = info_for(&r, 1);
	char *out = (char *)0x1;
	size_t len = 7;

	in.sender = "";
	assert_int_equal(dsn_build(&in, &out, &len), -EINVAL); /* never bounce a bounce */
	in.sender = "<>";
	assert_int_equal(dsn_build(&in, &out, &len), -EINVAL);
	in.sender = NULL;
	assert_int_equal(dsn_build(&in, &out, &len), -EINVAL);
	in.sender = "alice@example.com";

	in.n_rcpts = 0;
	assert_int_equal(dsn_build(&in, &out, &len), -EINVAL);
	in.n_rcpts = 1;
	r.action = "delivered";
	assert_int_equal(dsn_build(&in, &out, &len), -EINVAL);
	r.action = NULL;
	assert_int_equal(dsn_build(&in, &out, &len), -EINVAL);
	r.action = "failed";
	r.addr = "";
	assert_int_equal(dsn_build(&in, &out, &len), -EINVAL);
	r.addr = "nobody@example.net";
	in.reporting_mta = "\r\n;;";
	assert_int_equal(dsn_build(&in, &out, &len), -EINVAL);
	in.reporting_mta = NULL;
	assert_int_equal(dsn_build(&in, &out, &len), -EINVAL);
	in.reporting_mta = "mta.example.com";
	in.orig = NULL; /* with a length */
	assert_int_equal(dsn_build(&in, &out, &len), -EINVAL);
	assert_ptr_equal(out, (char *)0x1); /* untouched */
	assert_int_equal(len, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failed_single),
		cmocka_unit_test(test_delayed),
		cmocka_unit_test(test_multiple_rcpts),
		cmocka_unit_test(test_header_injection),
		cmocka_unit_test(test_orig_without_separator),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_header_cap),
		cmocka_unit_test(test_boundary_collision),
		cmocka_unit_test(test_8bit),
		cmocka_unit_test(test_date_now),
		cmocka_unit_test(test_dsn_params),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
