/* test_smtp_reply.c - reply framing (smtp_reply_parse), enhanced codes,
 * EHLO keywords (smtp_reply_ehlo_exts) and the log form (smtp_reply_flatten).
 *
 * Every input sits right before a PROT_NONE page so an over-read faults, and
 * every proper prefix of a valid reply must say "need more". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "guard_page.h"

#include "net/smtp_reply.h"


static ssize_t parse_n(const char *s, size_t n, struct smtp_reply *r)
{
	return smtp_reply_parse(at_guard(s, n), n, r);
}

static ssize_t parse(const char *s, struct smtp_reply *r)
{
	return parse_n(s, strlen(s), r);
}

/* Parse a whole reply: every proper prefix needs more, the whole is one
 * reply of exactly n bytes. */
static void parse_ok(const char *s, struct smtp_reply *r)
{
	size_t n = strlen(s);

	for (size_t k = 0; k < n; k++) {
		ssize_t got = parse_n(s, k, r);

		if (got != 0)
			fail_msg("prefix %zu of \"%s\": %zd, want 0", k, s, got);
	}
	ssize_t got = parse_n(s, n, r);

	if (got != (ssize_t)n)
		fail_msg("\"%s\": %zd, want %zu", s, got, n);
	assert_ptr_equal(r->raw, at_guard(s, n));
	assert_int_equal(r->raw_len, n);
}

static void expect_text(const struct smtp_reply *r, const char *text)
{
	assert_int_equal(r->text_len, strlen(text));
	assert_memory_equal(r->text, text, r->text_len);
}

static void bad(const char *s)
{
	struct smtp_reply r;
	ssize_t got = parse(s, &r);

	if (got != -1)
		fail_msg("\"%s\": %zd, want -1", s, got);
}

/* ---- single and multi-line --------------------------------------------------- */

static void test_single(void **state)
{
	struct smtp_reply r;

	parse_ok("250 OK\r\n", &r);
	assert_int_equal(r.code, 250);
	assert_int_equal(r.n_lines, 1);
	assert_string_equal(r.enhanced, "");
	expect_text(&r, "OK");

	parse_ok("220 mx.example.com ESMTP ready\r\n", &r);
	assert_int_equal(r.code, 220);
	expect_text(&r, "mx.example.com ESMTP ready");

	/* A code alone is a complete reply. */
	parse_ok("250\r\n", &r);
	assert_int_equal(r.code, 250);
	expect_text(&r, "");
	parse_ok("354\n", &r);
	assert_int_equal(r.code, 354);
	parse_ok("250 \r\n", &r);
	expect_text(&r, "");

	/* Bare LF. */
	parse_ok("221 bye\n", &r);
	expect_text(&r, "bye");
	parse_ok("599 x\r\n", &r);
	assert_int_equal(r.code, 599);
	parse_ok("200 x\r\n", &r);
	assert_int_equal(r.code, 200);
}

static void test_multi(void **state)
{
	struct smtp_reply r;
	const char *gmail = "550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
			    "550-5.1.1 double-checking the recipient's email address for typos or\r\n"
			    "550-5.1.1 unnecessary spaces. Learn more at\r\n"
			    "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser x1si123 - gsmtp\r\n";

	parse_ok(gmail, &r);
	assert_int_equal(r.code, 550);
	assert_int_equal(r.n_lines, 4);
	assert_string_equal(r.enhanced, "5.1.1");
	expect_text(&r, "The email account that you tried to reach does not exist. Please try");

	parse_ok("250-first\n250-second\r\n250 last\n", &r);
	assert_int_equal(r.n_lines, 3);
	expect_text(&r, "first");
	parse_ok("250-\r\n250\r\n", &r);
	assert_int_equal(r.n_lines, 2);
	expect_text(&r, "");
}

/* Two replies in one buffer (pipelining): each parse takes exactly one. */
static void test_pipelined(void **state)
{
	const char *s = "250 2.1.0 Ok\r\n250-2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End data\r\n";
	const char *b = at_guard(s, strlen(s));
	size_t len = strlen(s), off = 0;
	struct smtp_reply r;
	int codes[3];
	ssize_t n;

	for (int i = 0; i < 3; i++) {
		n = smtp_reply_parse(b + off, len - off, &r);
		assert_true(n > 0);
		codes[i] = r.code;
		off += (size_t)n;
	}
	assert_int_equal(off, len);
	assert_int_equal(codes[0], 250);
	assert_int_equal(codes[1], 250);
	assert_int_equal(codes[2], 354);
	assert_int_equal(smtp_reply_parse(b + off, 0, &r), 0);
	/* A complete reply followed by part of the next. */
	n = parse("250 ok\r\n25", &r);
	assert_int_equal(n, 8);
	n = parse("250 ok\r\n250-more", &r);
	assert_int_equal(n, 8);
}

/* ---- enhanced codes -------------------------------------------------------- */

static void enh(const char *s, const char *want_enh, const char *want_text)
{
	struct smtp_reply r;

	parse_ok(s, &r);
	if (strcmp(r.enhanced, want_enh) != 0)
		fail_msg("\"%s\": enhanced \"%s\" want \"%s\"", s, r.enhanced, want_enh);
	expect_text(&r, want_text);
}

static void test_enhanced(void **state)
{
	enh("250 2.1.0 Sender ok\r\n", "2.1.0", "Sender ok");
	enh("550 5.1.1 <x@y>: Recipient address rejected\r\n", "5.1.1", "<x@y>: Recipient address rejected");
	enh("421 4.7.0 Try again later\r\n", "4.7.0", "Try again later");
	enh("452 4.5.3   spaces\r\n", "4.5.3", "spaces");
	enh("250 2.0.0\r\n", "2.0.0", "");
	enh("250 2.0.0 \r\n", "2.0.0", "");
	enh("550 5.999.999 max\r\n", "5.999.999", "max");
	enh("550 5.0.12 two\r\n", "5.0.12", "two");
	/* Class must match the code's first digit. */
	enh("550 2.1.1 mismatch\r\n", "", "2.1.1 mismatch");
	enh("250 5.0.0 mismatch\r\n", "", "5.0.0 mismatch");
	enh("354 3.0.0 no class 3\r\n", "", "3.0.0 no class 3");
	/* Malformed enhanced codes are text. */
	enh("250 2.0 short\r\n", "", "2.0 short");
	enh("250 2.0.\r\n", "", "2.0.");
	enh("250 2..0 x\r\n", "", "2..0 x");
	enh("250 2.1000.0 long\r\n", "", "2.1000.0 long");
	enh("250 2.0.1000 long\r\n", "", "2.0.1000 long");
	enh("250 2.0.0foo\r\n", "", "2.0.0foo");
	enh("250 2.0.0.0 x\r\n", "", "2.0.0.0 x");
	enh("250 22.0.0 x\r\n", "", "22.0.0 x");
	enh("250 2.0.0\tx\r\n", "", "2.0.0\tx");
	enh("250 .2.0.0\r\n", "", ".2.0.0");
	/* The first line's text; the code may come from the last line. */
	enh("250-hello\r\n250 2.0.0 ok\r\n", "2.0.0", "hello");
}

/* ---- malformed ------------------------------------------------------------- */

static void test_malformed(void **state)
{
	bad("\r\n");
	bad("\n");
	bad("2\r\n");
	bad("25\r\n");
	bad("25 OK\r\n");
	bad("2500 OK\r\n");
	bad("250_OK\r\n");
	bad("250\tOK\r\n");
	bad("250:OK\r\n");
	bad("abc\r\n");
	bad("OK 250\r\n");
	bad(" 250 OK\r\n");
	bad("150 x\r\n");
	bad("050 x\r\n");
	bad("650 x\r\n");
	bad("999 x\r\n");
	bad("2a0 x\r\n");
	bad("25a x\r\n");
	/* Mixed codes. */
	bad("250-a\r\n251 b\r\n");
	bad("250-a\r\n550 b\r\n");
	bad("250-a\r\n250-b\r\n252 c\r\n");
	/* A broken continuation line. */
	bad("250-a\r\n\r\n");
	bad("250-a\r\n25\r\n");
	bad("250-a\r\n250+b\r\n");
	/* Garbage is refused before its line ends (no 2 KiB wait). */
	bad("HTTP/1.1 400 Bad Request");
	bad("X");
	bad("2x");
	bad("1");
	bad("250x");
	bad("250-a\r\n251");
	bad("250\r\r\n");             /* CR as separator in a complete line */
	bad("250-a\r\n250\rx\r\n");
}

/* ---- limits ---------------------------------------------------------------- */

static void test_line_limit(void **state)
{
	static char buf[4096];
	struct smtp_reply r;

	/* 2046 octets of content + CRLF = 2048: accepted. */
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "250 ", 4);
	memcpy(buf + 2046, "\r\n", 2);
	assert_int_equal(parse_n(buf, 2048, &r), 2048);
	assert_int_equal(r.text_len, 2042);
	/* With a bare LF. */
	buf[2046] = '\n';
	assert_int_equal(parse_n(buf, 2047, &r), 2047);
	/* 2047 + LF, 2047 + CRLF: too long. */
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "250 ", 4);
	buf[2047] = '\n';
	assert_int_equal(parse_n(buf, 2048, &r), -1);
	memcpy(buf + 2047, "\r\n", 2);
	assert_int_equal(parse_n(buf, 2049, &r), -1);
	/* No LF: need more up to 2047 bytes, then malformed. */
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "250 ", 4);
	assert_int_equal(parse_n(buf, 2047, &r), 0);
	assert_int_equal(parse_n(buf, 2048, &r), -1);
	assert_int_equal(parse_n(buf, sizeof(buf), &r), -1);
	/* The same on a later line of a multi-line reply. */
	memcpy(buf, "250-a\r\n250 ", 11);
	assert_int_equal(parse_n(buf, 7 + 2047, &r), 0);
	assert_int_equal(parse_n(buf, 7 + 2048, &r), -1);
}

static size_t build_lines(char *buf, unsigned n_lines, bool last_final)
{
	size_t o = 0;

	for (unsigned i = 0; i < n_lines; i++) {
		bool fin = last_final && i == n_lines - 1;

		o += (size_t)sprintf(buf + o, "250%cline %u\r\n", fin ? ' ' : '-', i);
	}
	return o;
}

static void test_line_count_limit(void **state)
{
	static char buf[300 * 20];
	struct smtp_reply r;
	size_t n;

	/* 256 lines: the most allowed. */
	n = build_lines(buf, 256, true);
	assert_int_equal(parse_n(buf, n, &r), (ssize_t)n);
	assert_int_equal(r.n_lines, 256);
	/* Every prefix of it needs more (and does not over-read). */
	for (size_t k = 0; k < n; k++)
		assert_int_equal(parse_n(buf, k, &r), 0);
	/* 257 lines: malformed, known as soon as line 256 says "more". */
	n = build_lines(buf, 257, true);
	assert_int_equal(parse_n(buf, n, &r), -1);
	n = build_lines(buf, 256, false);
	assert_int_equal(parse_n(buf, n, &r), -1);
	n = build_lines(buf, 255, false);
	assert_int_equal(parse_n(buf, n, &r), 0);
	/* 300 continuation lines. */
	n = build_lines(buf, 300, false);
	assert_int_equal(parse_n(buf, n, &r), -1);
}

/* ---- 8-bit text ------------------------------------------------------------ */

static void test_eight_bit(void **state)
{
	struct smtp_reply r;
	char out[128];

	parse_ok("550 5.7.1 Nachricht abgelehnt: \xc3\xa4\xc3\xb6\xc3\xbc \xff\xfe\r\n", &r);
	assert_int_equal(r.code, 550);
	assert_string_equal(r.enhanced, "5.7.1");
	expect_text(&r, "Nachricht abgelehnt: \xc3\xa4\xc3\xb6\xc3\xbc \xff\xfe");
	smtp_reply_flatten(&r, out, sizeof(out));
	assert_string_equal(out, "Nachricht abgelehnt: \xc3\xa4\xc3\xb6\xc3\xbc ??");
	/* Cyrillic stays whole; invalid bytes (stray continuation, overlong,
	 * surrogate, truncated sequence) become one '?' each. */
	parse_ok("550 5.1.1 \xd0\x9f\xd0\xbe\xd0\xbb\xd1\x8c\xd0\xb7\xd0\xbe\xd0\xb2\xd0\xb0\xd1\x82\xd0\xb5\xd0\xbb\xd1\x8c "
		 "\x80 \xc0\xaf \xed\xa0\x80 \xe2\x82\r\n", &r);
	smtp_reply_flatten(&r, out, sizeof(out));
	assert_string_equal(out, "\xd0\x9f\xd0\xbe\xd0\xbb\xd1\x8c\xd0\xb7\xd0\xbe\xd0\xb2\xd0\xb0\xd1\x82\xd0\xb5\xd0\xbb\xd1\x8c ? ?? ??? ??");
	/* A character that does not fit is left out whole, never cut. */
	parse_ok("550 ab\xe2\x82\xac\r\n", &r);
	assert_int_equal(smtp_reply_flatten(&r, out, 5), 2);
	assert_string_equal(out, "ab");
	assert_int_equal(smtp_reply_flatten(&r, out, 6), 5);
	assert_string_equal(out, "ab\xe2\x82\xac");
	/* A 4-byte character (U+1F600) whole. */
	parse_ok("250 \xf0\x9f\x98\x80\r\n", &r);
	smtp_reply_flatten(&r, out, sizeof(out));
	assert_string_equal(out, "\xf0\x9f\x98\x80");
	/* NUL and controls in text are kept by the parser. */
	assert_int_equal(parse_n("250 a\0b\x01\r\n", 10, &r), 10);
	assert_int_equal(r.text_len, 4);
	smtp_reply_flatten(&r, out, sizeof(out));
	assert_string_equal(out, "a?b?");
}

/* ---- EHLO keywords ---------------------------------------------------------- */

static void test_ehlo(void **state)
{
	struct smtp_reply r;
	uint64_t size = 1;
	const char *full = "250-mx.example.com Hello client [192.0.2.1]\r\n"
			   "250-PIPELINING\r\n"
			   "250-SIZE 10240000\r\n"
			   "250-8BITMIME\r\n"
			   "250-AUTH PLAIN LOGIN\r\n"
			   "250-STARTTLS\r\n"
			   "250-ENHANCEDSTATUSCODES\r\n"
			   "250-SMTPUTF8\r\n"
			   "250-CHUNKING\r\n"
			   "250-ETRN\r\n"
			   "250 DSN\r\n";

	parse_ok(full, &r);
	assert_int_equal(r.n_lines, 11);
	assert_int_equal(smtp_reply_ehlo_exts(&r, &size),
			 SMTP_EXT_PIPELINING | SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_AUTH | SMTP_EXT_STARTTLS |
				 SMTP_EXT_ENHANCEDSTATUSCODES | SMTP_EXT_SMTPUTF8 | SMTP_EXT_CHUNKING | SMTP_EXT_DSN);
	assert_int_equal(size, 10240000);
	/* NULL size pointer is fine (the client passes it). */
	assert_int_equal(smtp_reply_ehlo_exts(&r, NULL) & SMTP_EXT_SIZE, SMTP_EXT_SIZE);

	/* Case-insensitive, bare LF, old AUTH= form, SIZE without a number. */
	parse_ok("250-mx\n250-pipelining\n250-auth=PLAIN\n250-Size\n250 starttls\n", &r);
	assert_int_equal(smtp_reply_ehlo_exts(&r, &size),
			 SMTP_EXT_PIPELINING | SMTP_EXT_AUTH | SMTP_EXT_SIZE | SMTP_EXT_STARTTLS);
	assert_int_equal(size, 0);

	/* The first line is the greeting, never a keyword. */
	parse_ok("250-PIPELINING\r\n250 8BITMIME\r\n", &r);
	assert_int_equal(smtp_reply_ehlo_exts(&r, NULL), SMTP_EXT_8BITMIME);
	parse_ok("250 PIPELINING\r\n", &r);
	assert_int_equal(smtp_reply_ehlo_exts(&r, &size), 0);
	/* Keywords must match whole. */
	parse_ok("250-mx\r\n250-SIZEX 100\r\n250-PIPELININGX\r\n250-X-STARTTLS\r\n250-DS\r\n250 AUTH2\r\n", &r);
	assert_int_equal(smtp_reply_ehlo_exts(&r, &size), 0);
	assert_int_equal(size, 0);
	/* SIZE arguments: garbage -> 0, overflow saturates, extra spaces ok. */
	parse_ok("250-mx\r\n250 SIZE abc\r\n", &r);
	assert_int_equal(smtp_reply_ehlo_exts(&r, &size), SMTP_EXT_SIZE);
	assert_int_equal(size, 0);
	parse_ok("250-mx\r\n250 SIZE 99999999999999999999999\r\n", &r);
	smtp_reply_ehlo_exts(&r, &size);
	assert_int_equal(size, UINT64_MAX);
	parse_ok("250-mx\r\n250 SIZE   52428800\r\n", &r);
	smtp_reply_ehlo_exts(&r, &size);
	assert_int_equal(size, 52428800);
	parse_ok("250-mx\r\n250 SIZE 0\r\n", &r);
	smtp_reply_ehlo_exts(&r, &size);
	assert_int_equal(size, 0);
	/* Short and empty lines are skipped. */
	parse_ok("250-mx\r\n250-\r\n250-\r\n250\r\n", &r);
	assert_int_equal(smtp_reply_ehlo_exts(&r, &size), 0);
	/* A refusal advertises nothing. */
	parse_ok("502-no\r\n502 PIPELINING\r\n", &r);
	size = 7;
	assert_int_equal(smtp_reply_ehlo_exts(&r, &size), 0);
	assert_int_equal(size, 0);
}

/* ---- flatten --------------------------------------------------------------- */

static void test_flatten(void **state)
{
	struct smtp_reply r;
	char out[256];
	size_t n;

	parse_ok("550-5.1.1 The email account that you tried to reach does not exist.\r\n"
		 "550-5.1.1 Please try double-checking.\r\n"
		 "550 5.1.1 Learn more - gsmtp\r\n", &r);
	n = smtp_reply_flatten(&r, out, sizeof(out));
	assert_string_equal(out, "The email account that you tried to reach does not exist. "
				 "Please try double-checking. Learn more - gsmtp");
	assert_int_equal(n, strlen(out));

	/* Lines without text add nothing, no double spaces. */
	parse_ok("250-a\r\n250-\r\n250-2.0.0\r\n250 b\r\n", &r);
	smtp_reply_flatten(&r, out, sizeof(out));
	assert_string_equal(out, "a b");
	parse_ok("250\r\n", &r);
	assert_int_equal(smtp_reply_flatten(&r, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	/* Controls (tab, DEL) become '?'. */
	parse_ok("421 4.4.2 timeout\texceeded\x7f\r\n", &r);
	smtp_reply_flatten(&r, out, sizeof(out));
	assert_string_equal(out, "timeout?exceeded?");
	/* Enhanced codes of another class are text. */
	parse_ok("550-2.0.0 odd\r\n550 5.0.0 x\r\n", &r);
	smtp_reply_flatten(&r, out, sizeof(out));
	assert_string_equal(out, "2.0.0 odd x");
}

/* The enhanced code on the last line only (some servers put it there). */
static void test_enhanced_last_line(void **state)
{
	struct smtp_reply r;
	char out[128];

	parse_ok("550-Mailbox unavailable\r\n550-see the policy page\r\n550 5.2.1 mailbox disabled\r\n", &r);
	assert_string_equal(r.enhanced, "5.2.1");
	smtp_reply_flatten(&r, out, sizeof(out));
	assert_string_equal(out, "Mailbox unavailable see the policy page mailbox disabled");
	/* The first line's wins when both carry one. */
	parse_ok("450-4.2.0 busy\r\n450 4.7.1 later\r\n", &r);
	assert_string_equal(r.enhanced, "4.2.0");
	/* A last-line code of another class is text, not the code. */
	parse_ok("550-no\r\n550 4.2.1 odd\r\n", &r);
	assert_string_equal(r.enhanced, "");
	/* One line without a code: none. */
	parse_ok("550 no such user\r\n", &r);
	assert_string_equal(r.enhanced, "");
}

static void test_flatten_cap(void **state)
{
	struct smtp_reply r;
	char out[32];

	parse_ok("250-abcdef\r\n250 ghijkl\r\n", &r);
	/* cap 0: nothing written. */
	out[0] = 'Z';
	assert_int_equal(smtp_reply_flatten(&r, out, 0), 0);
	assert_int_equal(out[0], 'Z');
	/* cap 1: just the NUL. */
	assert_int_equal(smtp_reply_flatten(&r, out, 1), 0);
	assert_string_equal(out, "");
	/* Truncation in the first line. */
	assert_int_equal(smtp_reply_flatten(&r, out, 4), 3);
	assert_string_equal(out, "abc");
	/* Exactly the first line: no dangling separator. */
	assert_int_equal(smtp_reply_flatten(&r, out, 7), 6);
	assert_string_equal(out, "abcdef");
	assert_int_equal(smtp_reply_flatten(&r, out, 8), 6);
	assert_string_equal(out, "abcdef");
	assert_int_equal(smtp_reply_flatten(&r, out, 9), 8);
	assert_string_equal(out, "abcdef g");
	assert_int_equal(smtp_reply_flatten(&r, out, 14), 13);
	assert_string_equal(out, "abcdef ghijkl");
	assert_int_equal(smtp_reply_flatten(&r, out, sizeof(out)), 13);
	/* Output right before a guard page: no byte written past cap. */
	for (size_t cap = 1; cap <= 20; cap++) {
		char *o = (char *)at_guard("", 0) - cap;
		size_t n;

		/* r points into the guard area too; re-parse from a safe copy. */
		char src[] = "250-abcdef\r\n250 ghijkl\r\n";
		assert_int_equal(smtp_reply_parse(src, strlen(src), &r), (ssize_t)strlen(src));
		n = smtp_reply_flatten(&r, o, cap);
		assert_true(n < cap);
		assert_int_equal(o[n], 0);
	}
}

/* ---- prefixes, guard page, random ---------------------------------------- */

static void test_prefixes(void **state)
{
	static const char *valid[] = {
		"250 OK\r\n",
		"250\r\n",
		"250\n",
		"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n",
		"550-5.1.1 a\r\n550 5.1.1 b\n",
		"421-4.7.0 \xc3\xa9\xff\r\n421 4.7.0 try again later\r\n",
		"220 \r\n",
	};
	struct smtp_reply r;

	for (size_t t = 0; t < sizeof(valid) / sizeof(valid[0]); t++)
		parse_ok(valid[t], &r);     /* checks every prefix at the guard page */
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Random replies: any result is 0, -1 or a length within the input whose
 * fields point inside it; a result never changes once more input arrives
 * (n > 0 stays n; -1 stays -1). */
static void test_random(void **state)
{
	static const char alpha[] = "2455-0 \r\n\n\n. abc\xff\x01";
	uint64_t seed = 0x1234567887654321ull;
	static char buf[512];
	int seen[3] = {0};

	for (int iter = 0; iter < 30000; iter++) {
		size_t n = rng_next(&seed) % sizeof(buf);
		struct smtp_reply r;
		ssize_t prev = 0;

		/* Mostly well-formed lines with random damage. */
		size_t o = 0;
		while (o < n) {
			if (rng_next(&seed) % 4) {
				int k = snprintf(buf + o, sizeof(buf) - o, "%s%c%s\r\n",
						 rng_next(&seed) % 8 ? "250" : "251", rng_next(&seed) % 3 ? '-' : ' ',
						 rng_next(&seed) % 2 ? "2.0.0 x" : "t");
				o += (size_t)k < sizeof(buf) - o ? (size_t)k : sizeof(buf) - o - 1;
			} else {
				buf[o++] = alpha[rng_next(&seed) % (sizeof(alpha) - 1)];
			}
		}
		for (size_t k = 0; k <= n; k += 1 + rng_next(&seed) % 7) {
			const char *b = at_guard(buf, k);
			ssize_t got = smtp_reply_parse(b, k, &r);

			assert_true(got >= -1 && got <= (ssize_t)k);
			if (prev > 0)
				assert_int_equal(got, prev);
			if (prev < 0)
				assert_int_equal(got, -1);
			if (got > 0) {
				assert_true(r.code >= 200 && r.code <= 599);
				assert_ptr_equal(r.raw, b);
				assert_int_equal(r.raw_len, (size_t)got);
				assert_true(r.text >= b && r.text + r.text_len <= b + got);
				assert_true(r.n_lines >= 1 && r.n_lines <= SMTP_MAX_REPLY_LINES);
				assert_true(strlen(r.enhanced) < sizeof(r.enhanced));
				char out[64];
				size_t fl = smtp_reply_flatten(&r, out, sizeof(out));
				assert_true(fl < sizeof(out) && out[fl] == 0);
				smtp_reply_ehlo_exts(&r, NULL);
			}
			prev = got;
		}
		seen[prev > 0 ? 2 : prev == 0 ? 1 : 0]++;
	}
	assert_true(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single),
		cmocka_unit_test(test_multi),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_enhanced),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_line_limit),
		cmocka_unit_test(test_line_count_limit),
		cmocka_unit_test(test_eight_bit),
		cmocka_unit_test(test_ehlo),
		cmocka_unit_test(test_flatten),
		cmocka_unit_test(test_flatten_cap),
		cmocka_unit_test(test_enhanced_last_line),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
