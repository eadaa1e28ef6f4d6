/* test_smtp_cmd.c - intake command framing (smtp_line_find), command parsing
 * (smtp_cmd_parse), mailbox syntax (smtp_mailbox_check) and the error texts.
 *
 * Every input is placed right before a PROT_NONE page, so reading one byte
 * past len faults; framing is also checked on every prefix of its input. */
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

#include "net/smtp_cmd.h"


static int parse(const char *s, struct smtp_cmd *c)
{
	size_t n = strlen(s);

	return smtp_cmd_parse(at_guard(s, n), n, c);
}

static int mbox(const char *s, bool utf8)
{
	size_t n = strlen(s);

	return smtp_mailbox_check(at_guard(s, n), n, utf8);
}

static void expect_path(const char *line, int verb, const char *path)
{
	struct smtp_cmd c;
	int err = parse(line, &c);

	if (err != SMTP_CMD_OK)
		fail_msg("\"%s\": %d (%s)", line, err, smtp_cmd_strerror(err));
	assert_int_equal(c.verb, verb);
	assert_int_equal(c.path_len, strlen(path));
	assert_memory_equal(c.path, path, c.path_len);
}

static void expect_err(const char *line, int want)
{
	struct smtp_cmd c;
	int err = parse(line, &c);

	if (err != want)
		fail_msg("\"%s\": got %d want %d", line, err, want);
}

static void expect_mbox(const char *s, bool utf8, int want)
{
	int err = mbox(s, utf8);

	if (err != want)
		fail_msg("mailbox \"%s\" utf8=%d: got %d want %d", s, utf8, err, want);
}

/* A string of n copies of ch. */
static char *rep(char *buf, char ch, size_t n)
{
	memset(buf, ch, n);
	buf[n] = 0;
	return buf;
}

/* ---- smtp_line_find ----------------------------------------------------------- */

static ssize_t find(const char *s, size_t n, size_t max, size_t *ll)
{
	return smtp_line_find(at_guard(s, n), n, max, ll);
}

static void test_line_basic(void **state)
{
	size_t ll = 99;

	assert_int_equal(find("NOOP\r\n", 6, 512, &ll), 6);
	assert_int_equal(ll, 4);
	assert_int_equal(find("NOOP\n", 5, 512, &ll), 5);
	assert_int_equal(ll, 4);
	assert_int_equal(find("\r\n", 2, 512, &ll), 2);
	assert_int_equal(ll, 0);
	assert_int_equal(find("\n", 1, 512, &ll), 1);
	assert_int_equal(ll, 0);
	/* Only the CR right before the LF belongs to the terminator. */
	assert_int_equal(find("a\r\r\n", 4, 512, &ll), 4);
	assert_int_equal(ll, 2);
	assert_int_equal(find("a\rb\r\n", 5, 512, &ll), 5);
	assert_int_equal(ll, 3);
	/* First line only. */
	assert_int_equal(find("RSET\r\nQUIT\r\n", 12, 512, &ll), 6);
	assert_int_equal(ll, 4);
	/* Need more. */
	assert_int_equal(find("", 0, 512, &ll), 0);
	assert_int_equal(find("NOOP", 4, 512, &ll), 0);
	assert_int_equal(find("NOOP\r", 5, 512, &ll), 0);
}

static void test_line_limits(void **state)
{
	char buf[1100];
	size_t ll;

	/* 510 octets + CRLF = 512: the longest command line RFC 5321 allows. */
	memset(buf, 'a', sizeof(buf));
	memcpy(buf + 510, "\r\n", 2);
	assert_int_equal(find(buf, 512, 512, &ll), 512);
	assert_int_equal(ll, 510);
	/* 510 + bare LF is fine too. */
	memcpy(buf + 510, "\n", 1);
	assert_int_equal(find(buf, 511, 512, &ll), 511);
	assert_int_equal(ll, 510);
	/* 511 + LF or 511 + CRLF: too long. */
	memset(buf, 'a', sizeof(buf));
	memcpy(buf + 511, "\n", 1);
	assert_int_equal(find(buf, 512, 512, &ll), -1);
	memcpy(buf + 511, "\r\n", 2);
	assert_int_equal(find(buf, 513, 512, &ll), -1);
	assert_int_equal(find(buf, 512, 512, &ll), -1);
	/* No LF: need more up to max_line - 1 bytes, then too long. */
	memset(buf, 'a', sizeof(buf));
	assert_int_equal(find(buf, 511, 512, &ll), 0);
	assert_int_equal(find(buf, 512, 512, &ll), -1);
	assert_int_equal(find(buf, 1100, 512, &ll), -1);
	/* 510 + CR, LF not yet here: need more, not too long. */
	buf[510] = '\r';
	assert_int_equal(find(buf, 511, 512, &ll), 0);
	/* An LF beyond max_line is never looked at. */
	buf[700] = '\n';
	assert_int_equal(find(buf, 701, 512, &ll), -1);
	/* Degenerate limits. */
	assert_int_equal(find("\r\n", 2, 2, &ll), 2);
	assert_int_equal(find("a\n", 2, 2, &ll), -1);
	assert_int_equal(find("\n", 1, 1, &ll), -1);
	assert_int_equal(find("\n", 1, 0, &ll), -1);
}

/* Every prefix of a stream of lines: 0 until the LF, then the full line. */
static void test_line_prefixes(void **state)
{
	static const char *inputs[] = {
		"MAIL FROM:<a@b.example> SIZE=100\r\n",
		"RCPT TO:<x@y.example>\n",
		"\r\n",
		"QUIT\r\nNOOP\r\n",
	};
	char big[600];

	for (size_t t = 0; t < sizeof(inputs) / sizeof(inputs[0]); t++) {
		const char *s = inputs[t];
		size_t n = strlen(s), lf = (size_t)(strchr(s, '\n') - s);

		for (size_t k = 0; k <= n; k++) {
			size_t ll = 12345;
			ssize_t r = find(s, k, SMTP_MAX_CMD_LINE, &ll);

			if (k <= lf) {
				assert_int_equal(r, 0);
				assert_int_equal(ll, 12345);   /* untouched on need-more */
			} else {
				assert_int_equal(r, (ssize_t)lf + 1);
				assert_int_equal(ll, lf > 0 && s[lf - 1] == '\r' ? lf - 1 : lf);
			}
		}
	}
	/* Every prefix of an over-long line: 0, then -1 from max_line on. */
	memset(big, 'x', sizeof(big));
	for (size_t k = 0; k <= sizeof(big); k++) {
		size_t ll;

		assert_int_equal(find(big, k, SMTP_MAX_CMD_LINE, &ll), k < SMTP_MAX_CMD_LINE ? 0 : -1);
	}
}

/* ---- verbs and argument rules ------------------------------------------------- */

static void test_verbs(void **state)
{
	static const struct {
		const char *line;
		int verb;
	} ok[] = {
		{"HELO a.example", SMTP_VERB_HELO}, {"helo a.example", SMTP_VERB_HELO},
		{"EHLO a.example", SMTP_VERB_EHLO}, {"eHlO a.example", SMTP_VERB_EHLO},
		{"DATA", SMTP_VERB_DATA}, {"data", SMTP_VERB_DATA}, {"DATA ", SMTP_VERB_DATA},
		{"DATA\t", SMTP_VERB_DATA},
		{"RSET", SMTP_VERB_RSET}, {"rset", SMTP_VERB_RSET},
		{"NOOP", SMTP_VERB_NOOP}, {"NOOP anything at all", SMTP_VERB_NOOP},
		{"QUIT", SMTP_VERB_QUIT}, {"Quit", SMTP_VERB_QUIT},
		{"VRFY", SMTP_VERB_VRFY}, {"VRFY bob", SMTP_VERB_VRFY},
		{"HELP", SMTP_VERB_HELP}, {"help mail", SMTP_VERB_HELP},
		{"STARTTLS", SMTP_VERB_STARTTLS}, {"starttls", SMTP_VERB_STARTTLS},
		{"AUTH PLAIN", SMTP_VERB_AUTH}, {"AUTH PLAIN AHVzZXIAcGFzcw==", SMTP_VERB_AUTH},
		{"BDAT 0", SMTP_VERB_BDAT}, {"BDAT 100 LAST", SMTP_VERB_BDAT},
	};
	static const char *unknown[] = {
		"", " ", "MAILX FROM:<a@b.c>", "MAIL\tFROM:<a@b.c>", " MAIL FROM:<a@b.c>",
		"EXPN list", "TURN", "DAT", "DATAX", "STARTTLSX", "STARTTL", "HELLO a.b",
		"M@IL FROM:<a@b.c>", "\x80\x81\x82\x83", "QUIT\r", "NO\0P",
	};
	struct smtp_cmd c;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int err = parse(ok[i].line, &c);

		if (err != SMTP_CMD_OK || (int)c.verb != ok[i].verb)
			fail_msg("\"%s\": err %d verb %d", ok[i].line, err, c.verb);
	}
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		expect_err(unknown[i], SMTP_CMD_EUNKNOWN);
		assert_int_equal(parse(unknown[i], &c), SMTP_CMD_EUNKNOWN);
		assert_int_equal(c.verb, SMTP_VERB_UNKNOWN);
	}
	/* An embedded NUL ends nothing: the verb is the 4 bytes "NO\0P". */
	assert_int_equal(smtp_cmd_parse(at_guard("NO\0P", 4), 4, &c), SMTP_CMD_EUNKNOWN);
	/* Empty line. */
	assert_int_equal(smtp_cmd_parse(at_guard("", 0), 0, &c), SMTP_CMD_EUNKNOWN);
}

static void test_arguments(void **state)
{
	struct smtp_cmd c;

	/* No argument allowed. */
	expect_err("DATA now", SMTP_CMD_ESYNTAX);
	expect_err("RSET x", SMTP_CMD_ESYNTAX);
	expect_err("QUIT please", SMTP_CMD_ESYNTAX);
	expect_err("STARTTLS x", SMTP_CMD_ESYNTAX);
	/* Argument required. */
	expect_err("HELO", SMTP_CMD_ESYNTAX);
	expect_err("EHLO", SMTP_CMD_ESYNTAX);
	expect_err("EHLO ", SMTP_CMD_ESYNTAX);
	expect_err("AUTH", SMTP_CMD_ESYNTAX);
	expect_err("MAIL", SMTP_CMD_ESYNTAX);
	expect_err("RCPT", SMTP_CMD_ESYNTAX);
	expect_err("BDAT", SMTP_CMD_ESYNTAX);
	/* The argument, spaces skipped, trailing blanks trimmed. */
	assert_int_equal(parse("NOOP   hello there  ", &c), SMTP_CMD_OK);
	assert_int_equal(c.arg_len, 11);
	assert_memory_equal(c.arg, "hello there", 11);
	assert_int_equal(parse("NOOP", &c), SMTP_CMD_OK);
	assert_int_equal(c.arg_len, 0);
	assert_int_equal(parse("VRFY <bob@example.com>", &c), SMTP_CMD_OK);
	assert_int_equal(c.arg_len, 17);
	assert_int_equal(parse("AUTH LOGIN", &c), SMTP_CMD_OK);
	assert_memory_equal(c.arg, "LOGIN", 5);
}

static void test_helo(void **state)
{
	char buf[64], line[420];
	struct smtp_cmd c;

	assert_int_equal(parse("EHLO client.example.com", &c), SMTP_CMD_OK);
	assert_int_equal(c.arg_len, 18);
	assert_memory_equal(c.arg, "client.example.com", 18);
	assert_int_equal(parse("HELO localhost", &c), SMTP_CMD_OK);
	assert_int_equal(parse("EHLO [127.0.0.1]", &c), SMTP_CMD_OK);
	assert_int_equal(parse("EHLO [IPv6:::1]", &c), SMTP_CMD_OK);
	assert_int_equal(parse("EHLO [IPv6:2001:db8::25]", &c), SMTP_CMD_OK);
	assert_int_equal(parse("EHLO 192.0.2.1", &c), SMTP_CMD_OK);
	assert_int_equal(parse("EHLO my_pc.corp", &c), SMTP_CMD_OK);       /* tolerated */
	assert_int_equal(parse("EHLO -edge-.example", &c), SMTP_CMD_OK);   /* tolerated */
	assert_int_equal(parse("EHLO mx.b\xc3\xbc" "cher.example", &c), SMTP_CMD_OK);
	expect_err("EHLO a b", SMTP_CMD_ESYNTAX);
	expect_err("EHLO a.example extra", SMTP_CMD_ESYNTAX);
	expect_err("EHLO a\rb", SMTP_CMD_ESYNTAX);
	expect_err("EHLO a\tb", SMTP_CMD_ESYNTAX);
	expect_err("EHLO a..b", SMTP_CMD_ESYNTAX);
	expect_err("EHLO .a", SMTP_CMD_ESYNTAX);
	expect_err("EHLO a.", SMTP_CMD_ESYNTAX);
	expect_err("EHLO <a>", SMTP_CMD_ESYNTAX);
	expect_err("EHLO [1.2.3]", SMTP_CMD_ESYNTAX);
	expect_err("EHLO [1.2.3.4", SMTP_CMD_ESYNTAX);
	expect_err("EHLO [IPv6:zz::1]", SMTP_CMD_ESYNTAX);
	expect_err("EHLO \xff\xfe", SMTP_CMD_ESYNTAX);
	/* Over 255 octets. */
	rep(buf, 'a', 60);
	snprintf(line, sizeof(line), "EHLO %s.%s.%s.%s.%s", buf, buf, buf, buf, buf);
	expect_err(line, SMTP_CMD_ESYNTAX);
	snprintf(line, sizeof(line), "EHLO %s.%s.%s.%s", buf, buf, buf, buf);
	expect_err(line, SMTP_CMD_OK);
}

/* ---- MAIL ------------------------------------------------------------------- */

static void test_mail_ok(void **state)
{
	struct smtp_cmd c;

	expect_path("MAIL FROM:<a@b.example>", SMTP_VERB_MAIL, "a@b.example");
	expect_path("mail from:<a@b.example>", SMTP_VERB_MAIL, "a@b.example");
	expect_path("Mail From:<a@b.example>", SMTP_VERB_MAIL, "a@b.example");
	expect_path("MAIL FROM: <a@b.example>", SMTP_VERB_MAIL, "a@b.example");
	expect_path("MAIL FROM:  <a@b.example>  ", SMTP_VERB_MAIL, "a@b.example");
	expect_path("MAIL  FROM:<a@b.example>", SMTP_VERB_MAIL, "a@b.example");
	expect_path("MAIL FROM:<>", SMTP_VERB_MAIL, "");
	expect_path("MAIL FROM:<first.last+tag@sub.b-c.example>", SMTP_VERB_MAIL, "first.last+tag@sub.b-c.example");
	expect_path("MAIL FROM:<\"john doe\"@example.com>", SMTP_VERB_MAIL, "\"john doe\"@example.com");
	expect_path("MAIL FROM:<\"a>b\"@example.com>", SMTP_VERB_MAIL, "\"a>b\"@example.com");
	expect_path("MAIL FROM:<\"a\\\"> x\"@example.com> SIZE=5", SMTP_VERB_MAIL, "\"a\\\"> x\"@example.com");
	expect_path("MAIL FROM:<u@[192.0.2.1]>", SMTP_VERB_MAIL, "u@[192.0.2.1]");
	expect_path("MAIL FROM:<u@[IPv6:2001:db8::1]>", SMTP_VERB_MAIL, "u@[IPv6:2001:db8::1]");
	/* Source routes are dropped. */
	expect_path("MAIL FROM:<@a.example,@b.example:user@c.example>", SMTP_VERB_MAIL, "user@c.example");
	expect_path("MAIL FROM:<@a.example:user@c.example>", SMTP_VERB_MAIL, "user@c.example");
	expect_path("RCPT TO:<@[IPv6:::1],@b.example:user@c.example>", SMTP_VERB_RCPT, "user@c.example");

	/* Parameters. */
	assert_int_equal(parse("MAIL FROM:<a@b.example>", &c), SMTP_CMD_OK);
	assert_false(c.has_size);
	assert_int_equal(c.body, SMTP_BODY_UNSPEC);
	assert_false(c.smtputf8);
	assert_false(c.xverp);
	/* XVERP (Postfix's, PowerMTA's), with or without delimiters: VERP wanted */
	assert_int_equal(parse("MAIL FROM:<a@b.example> XVERP", &c), SMTP_CMD_OK);
	assert_true(c.xverp);
	assert_int_equal(parse("MAIL FROM:<a@b.example> SIZE=5 xverp=+-", &c), SMTP_CMD_OK);
	assert_true(c.xverp);
	assert_int_equal(parse("MAIL FROM:<a@b.example> SIZE=10240 BODY=8BITMIME SMTPUTF8", &c), SMTP_CMD_OK);
	assert_true(c.has_size);
	assert_int_equal(c.size, 10240);
	assert_int_equal(c.body, SMTP_BODY_8BITMIME);
	assert_true(c.smtputf8);
	assert_int_equal(parse("MAIL FROM:<> size=0 body=7bit", &c), SMTP_CMD_OK);
	assert_true(c.has_size);
	assert_int_equal(c.size, 0);
	assert_int_equal(c.body, SMTP_BODY_7BIT);
	assert_int_equal(c.path_len, 0);
	assert_int_equal(parse("MAIL FROM:<a@b.example>   SIZE=18446744073709551615   BODY=8bitmime", &c), SMTP_CMD_OK);
	assert_int_equal(c.size, UINT64_MAX);
	assert_int_equal(parse("MAIL FROM:<a@b.example> SIZE=00000000000000000001", &c), SMTP_CMD_OK);
	assert_int_equal(c.size, 1);
	/* DSN and AUTH parameters are accepted and ignored. */
	assert_int_equal(parse("MAIL FROM:<a@b.example> RET=HDRS ENVID=QQ314159 AUTH=<>", &c), SMTP_CMD_OK);
	assert_int_equal(parse("MAIL FROM:<a@b.example> ret=full auth=e+3Dmc2@example.com", &c), SMTP_CMD_OK);
	/* UTF-8 addresses need SMTPUTF8 on MAIL. */
	assert_int_equal(parse("MAIL FROM:<jos\xc3\xa9@b\xc3\xbc" "cher.example> SMTPUTF8", &c), SMTP_CMD_OK);
	assert_true(c.smtputf8);
	expect_err("MAIL FROM:<jos\xc3\xa9@example.com>", SMTP_CMD_EPATH);
	/* arg keeps everything after the verb. */
	assert_int_equal(parse("MAIL FROM:<a@b.example> SIZE=1", &c), SMTP_CMD_OK);
	assert_int_equal(c.arg_len, strlen("FROM:<a@b.example> SIZE=1"));
}

static void test_mail_bad(void **state)
{
	struct smtp_cmd c;

	expect_err("MAIL FROM:", SMTP_CMD_ESYNTAX);
	expect_err("MAIL FROM:   ", SMTP_CMD_ESYNTAX);
	expect_err("MAIL FROM", SMTP_CMD_ESYNTAX);
	expect_err("MAIL FROM <a@b.example>", SMTP_CMD_ESYNTAX);
	expect_err("MAIL FROM<a@b.example>", SMTP_CMD_ESYNTAX);
	expect_err("MAIL TO:<a@b.example>", SMTP_CMD_ESYNTAX);
	expect_err("MAIL FRM:<a@b.example>", SMTP_CMD_ESYNTAX);
	expect_err("MAIL FROM:<a@b.example>SIZE=10", SMTP_CMD_ESYNTAX);
	expect_err("MAIL FROM:<a@b.example>>", SMTP_CMD_ESYNTAX);
	expect_err("MAIL FROM:a@b.example", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<a@b.example", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<\"a>@b.example", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<a>", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<@>", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<a@>", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<@b.example>", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<a b@b.example>", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<a@b..example>", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<a@-b.example>", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<a@b_c.example>", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<<a@b.example>", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<<a@b.example>>", SMTP_CMD_ESYNTAX);  /* junk after the path */
	expect_err("MAIL FROM:<@a.example:>", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<@:u@c.example>", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<@a.example,:u@c.example>", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<@a.example,@:u@c.example>", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<@a..example:u@c.example>", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<@a.example u@c.example>", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<a.example:u@c.example>", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<u@[300.1.1.1]>", SMTP_CMD_EPATH);
	expect_err("MAIL FROM:<u@c.example\x01>", SMTP_CMD_EPATH);
	/* Parameters. */
	expect_err("MAIL FROM:<a@b.example> SIZE=", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> SIZE", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> SIZE=abc", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> SIZE=-1", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> SIZE=+1", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> SIZE=1 SIZE=2", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> SIZE=18446744073709551616", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> SIZE=99999999999999999999", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> SIZE=000000000000000000001", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> BODY=BINARYMIME", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> BODY=", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> BODY", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> BODY=7BIT BODY=7BIT", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> SMTPUTF8=yes", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> SMTPUTF8 SMTPUTF8", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> FOO=bar", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> XVERP XVERP", SMTP_CMD_EPARAM);
	expect_err("RCPT TO:<a@b.example> XVERP", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> =10", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> -SIZE=10", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> SIZE=1=2", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> SIZE=1\x01", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> NOTIFY=NEVER", SMTP_CMD_EPARAM);  /* RCPT's */
	expect_err("MAIL FROM:<a@b.example> RET=ALL", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> ENVID=", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> AUTH", SMTP_CMD_EPARAM);
	expect_err("MAIL FROM:<a@b.example> SIZE=\xff", SMTP_CMD_EPARAM);
	/* verb is set even on error (the server picks 5.1.7 vs 5.1.3 from it). */
	assert_int_equal(parse("MAIL FROM:<bad>", &c), SMTP_CMD_EPATH);
	assert_int_equal(c.verb, SMTP_VERB_MAIL);
}

/* ---- RCPT ------------------------------------------------------------------- */

static void test_rcpt(void **state)
{
	struct smtp_cmd c;

	expect_path("RCPT TO:<x@y.example>", SMTP_VERB_RCPT, "x@y.example");
	expect_path("rcpt to:<x@y.example>", SMTP_VERB_RCPT, "x@y.example");
	expect_path("RCPT TO: <x@y.example>", SMTP_VERB_RCPT, "x@y.example");
	expect_path("RCPT TO:<Postmaster>", SMTP_VERB_RCPT, "Postmaster");
	expect_path("RCPT TO:<postmaster>", SMTP_VERB_RCPT, "postmaster");
	expect_path("RCPT TO:<x@y.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y.example", SMTP_VERB_RCPT, "x@y.example");
	expect_path("RCPT TO:<x@y.example> notify=never", SMTP_VERB_RCPT, "x@y.example");
	expect_path("RCPT TO:<x@y.example> NOTIFY=DELAY", SMTP_VERB_RCPT, "x@y.example");
	/* RCPT paths are checked with UTF-8 allowed (the server re-checks). */
	expect_path("RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example>", SMTP_VERB_RCPT,
		    "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example");
	assert_int_equal(parse("RCPT TO:<x@y.example>", &c), SMTP_CMD_OK);
	assert_false(c.has_size);

	expect_err("RCPT TO:<>", SMTP_CMD_EPATH);
	expect_err("RCPT TO:<@a.example:>", SMTP_CMD_EPATH);
	expect_err("RCPT TO:<postmasterx>", SMTP_CMD_EPATH);
	expect_err("RCPT TO:x@y.example", SMTP_CMD_EPATH);
	expect_err("RCPT TO:", SMTP_CMD_ESYNTAX);
	expect_err("RCPT FROM:<x@y.example>", SMTP_CMD_ESYNTAX);
	expect_err("RCPT TO <x@y.example>", SMTP_CMD_ESYNTAX);
	expect_err("RCPT TO:<x@y.example> SIZE=10", SMTP_CMD_EPARAM);
	expect_err("RCPT TO:<x@y.example> SMTPUTF8", SMTP_CMD_EPARAM);
	expect_err("RCPT TO:<x@y.example> BODY=8BITMIME", SMTP_CMD_EPARAM);
	expect_err("RCPT TO:<x@y.example> FOO", SMTP_CMD_EPARAM);
	expect_err("RCPT TO:<x@y.example> NOTIFY=", SMTP_CMD_EPARAM);
	expect_err("RCPT TO:<x@y.example> NOTIFY=SOMETIMES", SMTP_CMD_EPARAM);
	expect_err("RCPT TO:<x@y.example> NOTIFY=SUCCESS,", SMTP_CMD_EPARAM);
	expect_err("RCPT TO:<x@y.example> NOTIFY=,SUCCESS", SMTP_CMD_EPARAM);
	expect_err("RCPT TO:<x@y.example> NOTIFY=NEVER NOTIFY=NEVER", SMTP_CMD_EPARAM);
	expect_err("RCPT TO:<x@y.example> ORCPT=rfc822", SMTP_CMD_EPARAM);
	expect_err("RCPT TO:<x@y.example> ORCPT=;x@y", SMTP_CMD_EPARAM);
	expect_err("RCPT TO:<x@y.example> ORCPT=rfc822;", SMTP_CMD_EPARAM);
	expect_err("RCPT TO:<x@y.example> ORCPT", SMTP_CMD_EPARAM);
	assert_int_equal(parse("RCPT TO:<x@y.example> NOTIFY=bad", &c), SMTP_CMD_EPARAM);
	assert_int_equal(c.verb, SMTP_VERB_RCPT);
}

/* ---- length limits ---------------------------------------------------------- */

static void test_limits(void **state)
{
	char local[70], dom[70], line[700];

	/* Path: 256 octets with the angle brackets is the limit. */
	rep(local, 'l', 64);
	rep(dom, 'd', 63);
	/* <64 @ 63.63.61> = 1 + 64 + 1 + 189 + 1 = 256 */
	snprintf(line, sizeof(line), "MAIL FROM:<%s@%s.%s.%.61s>", local, dom, dom, dom);
	expect_err(line, SMTP_CMD_OK);
	snprintf(line, sizeof(line), "MAIL FROM:<%s@%s.%s.%.62s>", local, dom, dom, dom);
	expect_err(line, SMTP_CMD_ETOOLONG);
	snprintf(line, sizeof(line), "RCPT TO:<%s@%s.%s.%.62s>", local, dom, dom, dom);
	expect_err(line, SMTP_CMD_ETOOLONG);
	/* A source route counts toward the 256. */
	snprintf(line, sizeof(line), "MAIL FROM:<@r.example:%s@%s.%s.%.50s>", local, dom, dom, dom);
	expect_err(line, SMTP_CMD_OK);
	snprintf(line, sizeof(line), "MAIL FROM:<@r.example:%s@%s.%s.%.51s>", local, dom, dom, dom);
	expect_err(line, SMTP_CMD_ETOOLONG);
	/* Local part: 64 fine, 65 too long. */
	snprintf(line, sizeof(line), "MAIL FROM:<%s@b.example>", rep(local, 'l', 64));
	expect_err(line, SMTP_CMD_OK);
	snprintf(line, sizeof(line), "MAIL FROM:<%s@b.example>", rep(local, 'l', 65));
	expect_err(line, SMTP_CMD_ETOOLONG);
	snprintf(line, sizeof(line), "RCPT TO:<\"%s\"@b.example>", rep(local, 'q', 63));
	expect_err(line, SMTP_CMD_ETOOLONG);  /* the quotes count */
	snprintf(line, sizeof(line), "RCPT TO:<\"%s\"@b.example>", rep(local, 'q', 62));
	expect_err(line, SMTP_CMD_OK);
	/* Label: 63 fine, 64 too long. */
	snprintf(line, sizeof(line), "RCPT TO:<a@%s.example>", rep(dom, 'd', 63));
	expect_err(line, SMTP_CMD_OK);
	snprintf(line, sizeof(line), "RCPT TO:<a@%s.example>", rep(dom, 'd', 64));
	expect_err(line, SMTP_CMD_ETOOLONG);
	/* A line much longer than anything (parse itself does not frame). */
	memset(line, 'x', sizeof(line) - 1);
	memcpy(line, "RCPT TO:<", 9);
	line[sizeof(line) - 1] = 0;
	expect_err(line, SMTP_CMD_EPATH);
	line[sizeof(line) - 2] = '>';
	expect_err(line, SMTP_CMD_ETOOLONG);
}

/* ---- mailboxes -------------------------------------------------------------- */

static void test_mailbox_ok(void **state)
{
	static const char *ok[] = {
		"a@b", "a@b.example", "A.B.C@x-y.example", "!#$%&'*+-/=?^_`{|}~@example.com",
		"\"\"@example.com", "\"a b\"@example.com", "\"a\\\"b\"@example.com", "\"a\\\\\"@example.com",
		"\"a@b\"@example.com", "\"a.\"@example.com", "\".a..b\"@example.com",
		"u@[192.0.2.1]", "u@[0.0.0.0]", "u@[255.255.255.255]", "u@[001.02.3.004]",
		"u@[IPv6:::1]", "u@[IPv6:2001:db8::1]", "u@[ipv6:2001:DB8:0:0:0:0:0:1]", "u@[IPv6:::ffff:192.0.2.1]",
		"u@123.example", "u@1-2.example", "u@a.b.c.d.e.f.g",
	};
	static const char *bad[] = {
		"", "@", "a", "a@", "@b", "a@b@c", ".a@b", "a.@b", "a..b@c", "a b@c", "a\x01@b",
		"a@b.", "a@.b", "a@b..c", "a@-b", "a@b-", "a@b-.c", "a@b_c", "a@b c", "a@[1.2.3.4", "a@1.2.3.4]",
		"a@[1.2.3]", "a@[1.2.3.4.5]", "a@[0001.2.3.4]", "a@[1.2.3.0255]", "a@[1.2.3.-1]", "a@[1.2.3.4.]", "a@[256.1.1.1]", "a@[1.2.3.1000]", "a@[1..3.4]", "a@[]",
		"a@[a.b.c.d]", "a@[IPv6:1.2.3.4]", "a@[IPv6:]", "a@[IPv6:::g]", "a@[IPv6:1:2:3:4:5:6:7:8:9]",
		"a@[tag:x]", "a@[IPv6:::1%eth0]", "a@[ 1.2.3.4]", "\"a@b", "\"a\"b@c", "\"a\\", "\"a\x01\"@b",
		"\"a\\\x01\"@b", "\"a\x7f\"@b", "a\x7f@b", "a(c)@b", "a,b@c", "a;b@c", "<a@b>", "a@<b>",
		"a@b:c", "a@b\\c",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		expect_mbox(ok[i], false, SMTP_CMD_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expect_mbox(bad[i], false, SMTP_CMD_EPATH);
		expect_mbox(bad[i], true, SMTP_CMD_EPATH);
	}
	/* Embedded NULs. */
	assert_int_equal(smtp_mailbox_check(at_guard("a\0b@c", 5), 5, true), SMTP_CMD_EPATH);
	assert_int_equal(smtp_mailbox_check(at_guard("ab@c\0", 5), 5, true), SMTP_CMD_EPATH);
	assert_int_equal(smtp_mailbox_check(at_guard("a@[IPv6:::1\0]", 13), 13, true), SMTP_CMD_EPATH);
}

static void test_mailbox_utf8(void **state)
{
	static const char *utf8_ok[] = {
		"jos\xc3\xa9@example.com",                      /* é */
		("a@b\xc3\xbc" "cher.example"),                 /* bücher; split after the hex escape */
		"\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8",
		"\xf0\x9f\x98\x80@example.com",                 /* U+1F600 */
		"\"\xc3\xa9 x\"@example.com",
		"\xef\xbf\xbd@example.com",                     /* U+FFFD */
		"\xf4\x8f\xbf\xbf@example.com",                 /* U+10FFFF */
	};
	static const char *utf8_bad[] = {
		"\xc3(@example.com", "\xc3@example.com", "\xc0\xaf@example.com", "\xc1\xbf@example.com",
		"\xe0\x80\xaf@example.com", "\xed\xa0\x80@example.com", "\xf0\x80\x80\xaf@example.com",
		"\xf4\x90\x80\x80@example.com", "\xf5\x80\x80\x80@example.com", "\xff@example.com",
		"\x80@example.com", "\xf0\x9f\x98@example.com", "a@\xc3", "a@x\xe2\x82", "\"\xc3\"@example.com",
		"a@-\xc3\xa9.example",
	};
	for (size_t i = 0; i < sizeof(utf8_ok) / sizeof(utf8_ok[0]); i++) {
		expect_mbox(utf8_ok[i], true, SMTP_CMD_OK);
		expect_mbox(utf8_ok[i], false, SMTP_CMD_EPATH);
	}
	for (size_t i = 0; i < sizeof(utf8_bad) / sizeof(utf8_bad[0]); i++)
		expect_mbox(utf8_bad[i], true, SMTP_CMD_EPATH);
	/* A truncated sequence right at the guard page must not be read past. */
	assert_int_equal(smtp_mailbox_check(at_guard("a@b\xf0", 4), 4, true), SMTP_CMD_EPATH);
	assert_int_equal(smtp_mailbox_check(at_guard("a@b\xe2\x82", 5), 5, true), SMTP_CMD_EPATH);
	assert_int_equal(smtp_mailbox_check(at_guard("\"\xf0\x9f", 3), 3, true), SMTP_CMD_EPATH);
}

static void test_mailbox_limits(void **state)
{
	char buf[600], l63[64], tmp[300];

	rep(l63, 'd', 63);
	/* Local part 64 / 65. */
	snprintf(buf, sizeof(buf), "%s@b", rep(tmp, 'l', 64));
	expect_mbox(buf, false, SMTP_CMD_OK);
	snprintf(buf, sizeof(buf), "%s@b", rep(tmp, 'l', 65));
	expect_mbox(buf, false, SMTP_CMD_ETOOLONG);
	/* Domain of 255 octets (63.63.63.63) fine, 256 too long. */
	snprintf(buf, sizeof(buf), "a@%s.%s.%s.%s", l63, l63, l63, l63);
	assert_int_equal(strlen(buf), 2 + 255);
	expect_mbox(buf, false, SMTP_CMD_OK);
	snprintf(buf, sizeof(buf), "a@%s.%s.%s.%.62s.b", l63, l63, l63, l63);
	assert_int_equal(strlen(buf), 2 + 256);
	expect_mbox(buf, false, SMTP_CMD_ETOOLONG);
	snprintf(buf, sizeof(buf), "a@%s.%s.%s.%s.b", l63, l63, l63, l63);
	expect_mbox(buf, false, SMTP_CMD_ETOOLONG);
	snprintf(buf, sizeof(buf), "a@%s%s%s%s%s", l63, l63, l63, l63, l63);
	expect_mbox(buf, false, SMTP_CMD_ETOOLONG);
	/* Label of 64. */
	snprintf(buf, sizeof(buf), "a@%sd.example", l63);
	expect_mbox(buf, false, SMTP_CMD_ETOOLONG);
	/* Over-long IPv6 literal text: malformed, and no stack overflow. */
	snprintf(buf, sizeof(buf), "a@[IPv6:%s]", rep(tmp, '1', 200));
	expect_mbox(buf, false, SMTP_CMD_EPATH);
}

static void test_mailbox_domain(void **state)
{
	size_t n = 0;
	const char *d;
	const char *s = at_guard("a@b.example", 11);

	d = smtp_mailbox_domain(s, 11, &n);
	assert_ptr_equal(d, s + 2);
	assert_int_equal(n, 9);
	s = at_guard("\"x@y\"@z.example", 15);
	d = smtp_mailbox_domain(s, 15, &n);
	assert_int_equal(n, 9);
	assert_memory_equal(d, "z.example", 9);
	s = at_guard("a@", 2);
	d = smtp_mailbox_domain(s, 2, &n);
	assert_ptr_equal(d, s + 2);
	assert_int_equal(n, 0);
	assert_null(smtp_mailbox_domain(at_guard("abc", 3), 3, &n));
	assert_null(smtp_mailbox_domain(at_guard("", 0), 0, &n));
}

/* ---- BDAT ------------------------------------------------------------------- */

static void test_bdat(void **state)
{
	struct smtp_cmd c;

	assert_int_equal(parse("BDAT 1000", &c), SMTP_CMD_OK);
	assert_true(c.has_size);
	assert_int_equal(c.size, 1000);
	assert_false(c.bdat_last);
	assert_int_equal(parse("bdat 0 last", &c), SMTP_CMD_OK);
	assert_int_equal(c.size, 0);
	assert_true(c.bdat_last);
	assert_int_equal(parse("BDAT 5  LAST ", &c), SMTP_CMD_OK);
	assert_true(c.bdat_last);
	expect_err("BDAT x", SMTP_CMD_ESYNTAX);
	expect_err("BDAT -1", SMTP_CMD_ESYNTAX);
	expect_err("BDAT 10 FIRST", SMTP_CMD_ESYNTAX);
	expect_err("BDAT 10 LAST x", SMTP_CMD_ESYNTAX);
	expect_err("BDAT 18446744073709551616", SMTP_CMD_ESYNTAX);
	expect_err("BDAT 10x", SMTP_CMD_ESYNTAX);
}

/* ---- error texts ------------------------------------------------------------ */

static void test_strerror(void **state)
{
	assert_string_equal(smtp_cmd_strerror(SMTP_CMD_OK), "ok");
	assert_string_equal(smtp_cmd_strerror(SMTP_CMD_EUNKNOWN), "command not recognized");
	assert_string_equal(smtp_cmd_strerror(SMTP_CMD_ESYNTAX), "bad command arguments");
	assert_string_equal(smtp_cmd_strerror(SMTP_CMD_EPATH), "malformed address");
	assert_string_equal(smtp_cmd_strerror(SMTP_CMD_EPARAM), "unrecognized or malformed parameter");
	assert_string_equal(smtp_cmd_strerror(SMTP_CMD_ETOOLONG), "address too long");
	assert_string_equal(smtp_cmd_strerror(-99), "unknown error");
	assert_string_equal(smtp_cmd_strerror(1), "unknown error");
}

/* ---- every prefix, guard page, random input --------------------------------- */

static bool known_err(int e)
{
	return e == SMTP_CMD_OK || e == SMTP_CMD_EUNKNOWN || e == SMTP_CMD_ESYNTAX || e == SMTP_CMD_EPATH ||
	       e == SMTP_CMD_EPARAM || e == SMTP_CMD_ETOOLONG;
}

static void check_cmd_invariants(const char *line, size_t n, int err, const struct smtp_cmd *c)
{
	assert_true(known_err(err));
	if (err == SMTP_CMD_OK) {
		assert_true(c->verb != SMTP_VERB_UNKNOWN);
		assert_true(c->arg >= line && c->arg + c->arg_len <= line + n);
		if (c->path) {
			assert_true(c->path >= line && c->path + c->path_len <= line + n);
			assert_true(c->path_len + 2 <= SMTP_MAX_PATH);
		}
		if (c->orcpt)
			assert_true(c->orcpt >= line && c->orcpt + c->orcpt_len <= line + n);
		if (c->envid)
			assert_true(c->envid >= line && c->envid + c->envid_len <= line + n);
	}
}

static void test_prefixes_at_guard(void **state)
{
	static const char *lines[] = {
		"MAIL FROM:<@a.example,@[IPv6:::1]:\"q\\\"x\"@b\xc3\xa9.example> SIZE=12345 BODY=8BITMIME SMTPUTF8 RET=FULL ENVID=a+2Bb",
		"RCPT TO:<user@[IPv6:2001:db8::1]> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;us+2Ber@x",
		"RCPT TO:<Postmaster>",
		"EHLO [IPv6:2001:db8::25]",
		"BDAT 123456 LAST",
		"STARTTLS",
		"AUTH PLAIN AHVzZXIAcGFzcw==",
	};
	for (size_t t = 0; t < sizeof(lines) / sizeof(lines[0]); t++) {
		size_t n = strlen(lines[t]);

		for (size_t k = 0; k <= n; k++) {
			struct smtp_cmd c;
			const char *s = at_guard(lines[t], k);
			int err = smtp_cmd_parse(s, k, &c);

			check_cmd_invariants(s, k, err, &c);
			if (k == n && err != SMTP_CMD_OK)
				fail_msg("\"%s\": %d", lines[t], err);
		}
	}
	/* Every prefix of mailboxes too. */
	static const char *boxes[] = {
		"\"a\\\"b\"@[IPv6:2001:db8::1]", "jos\xc3\xa9@\xf0\x9f\x98\x80.example", "u@[192.0.2.1]",
	};
	for (size_t t = 0; t < sizeof(boxes) / sizeof(boxes[0]); t++) {
		size_t n = strlen(boxes[t]);

		for (size_t k = 0; k <= n; k++) {
			int err = smtp_mailbox_check(at_guard(boxes[t], k), k, true);

			assert_true(known_err(err));
			if (k == n)
				assert_int_equal(err, SMTP_CMD_OK);
		}
	}
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Random lines over an SMTP-ish alphabet: no fault, no over-read, every
 * result one of the documented codes, every pointer inside the line. */
static void test_random(void **state)
{
	static const char alpha[] = "<>@.:,;\"\\[]= -_aZ09\xc3\xa9\xff\x01\r\tIPv6FROMTOSIZE";
	static const char *heads[] = {"MAIL FROM:", "RCPT TO:", "EHLO ", "BDAT ", "MAIL FROM:<", "RCPT TO:<@", ""};
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	char line[600];
	int counts[8] = {0};

	for (int iter = 0; iter < 200000; iter++) {
		const char *h = heads[rng_next(&seed) % 7];
		size_t hl = strlen(h), n = hl + rng_next(&seed) % 80;
		struct smtp_cmd c;

		memcpy(line, h, hl);
		for (size_t i = hl; i < n; i++)
			line[i] = alpha[rng_next(&seed) % (sizeof(alpha) - 1)];
		const char *s = at_guard(line, n);
		int err = smtp_cmd_parse(s, n, &c);

		check_cmd_invariants(s, n, err, &c);
		counts[-err]++;
		if (err == SMTP_CMD_OK && c.path && c.path_len && c.verb == SMTP_VERB_MAIL)
			assert_int_equal(smtp_mailbox_check(c.path, c.path_len, c.smtputf8), SMTP_CMD_OK);
		err = smtp_mailbox_check(s, n, iter & 1);
		assert_true(known_err(err));
		size_t ll;
		ssize_t r = smtp_line_find(s, n, 40, &ll);

		assert_true(r >= -1 && r <= 40 && r <= (ssize_t)n);
		if (r > 0)
			assert_true(ll + 2 <= 40 && ll < (size_t)r);
	}
	/* The generator reaches every outcome (a weak check on the test). */
	for (int e = 0; e <= 4; e++)
		assert_true(counts[e] > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_basic),
		cmocka_unit_test(test_line_limits),
		cmocka_unit_test(test_line_prefixes),
		cmocka_unit_test(test_verbs),
		cmocka_unit_test(test_arguments),
		cmocka_unit_test(test_helo),
		cmocka_unit_test(test_mail_ok),
		cmocka_unit_test(test_mail_bad),
		cmocka_unit_test(test_rcpt),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_mailbox_ok),
		cmocka_unit_test(test_mailbox_utf8),
		cmocka_unit_test(test_mailbox_limits),
		cmocka_unit_test(test_mailbox_domain),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_prefixes_at_guard),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
