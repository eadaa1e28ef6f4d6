/*
 * test_dsn_params.c - RFC 3461 DSN parameters at intake: xtext decoding
 * and encoding (smtp_xtext_decode/encode), the NOTIFY parser
 * (smtp_notify_parse), ORCPT decoding (smtp_orcpt_decode), and what
 * smtp_cmd_parse() hands the server for RET=, ENVID=, NOTIFY=, ORCPT=.
 * Every input is placed against a guard page, so an over-read faults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "guard_page.h"

#include "net/smtp_cmd.h"

static ssize_t xdec(const char *s, char *out, size_t cap)
{
	size_t n = strlen(s);

	return smtp_xtext_decode(at_guard(s, n), n, out, cap);
}

static int notify(const char *s, unsigned *bits)
{
	size_t n = strlen(s);

	return smtp_notify_parse(at_guard(s, n), n, bits);
}

static ssize_t odec(const char *s, char *out, size_t cap)
{
	size_t n = strlen(s);

	return smtp_orcpt_decode(at_guard(s, n), n, out, cap);
}

static int parse(const char *s, struct smtp_cmd *c)
{
	size_t n = strlen(s);

	return smtp_cmd_parse(at_guard(s, n), n, c);
}

static void test_xtext_ok(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(xdec("a@b.example", out, sizeof(out)), 11);
	assert_string_equal(out, "a@b.example");
	/* '+' and '=' and space travel encoded */
	assert_int_equal(xdec("a+2Bb+3Dc+20d@x", out, sizeof(out)), 9);
	assert_string_equal(out, "a+b=c d@x");
	assert_int_equal(xdec("+7E", out, sizeof(out)), 1);
	assert_string_equal(out, "~");
	/* exactly fills the buffer with its NUL */
	assert_int_equal(xdec("abc", out, 4), 3);
}

static void test_xtext_malformed(void **state)
{
	char out[64];
	char big[SMTP_MAX_ORCPT + 10];

	(void)state;
	assert_int_equal(xdec("", out, sizeof(out)), -1);          /* empty */
	assert_int_equal(xdec("abc+", out, sizeof(out)), -1);      /* '+' at the end */
	assert_int_equal(xdec("abc+4", out, sizeof(out)), -1);     /* one hex digit */
	assert_int_equal(xdec("a+4G", out, sizeof(out)), -1);      /* not hex */
	assert_int_equal(xdec("a+2b", out, sizeof(out)), -1);      /* lower-case hex */
	assert_int_equal(xdec("a+ZZb", out, sizeof(out)), -1);
	assert_int_equal(xdec("a=b", out, sizeof(out)), -1);       /* raw '=' */
	assert_int_equal(xdec("a b", out, sizeof(out)), -1);       /* raw space */
	assert_int_equal(xdec("a\x7f", out, sizeof(out)), -1);     /* raw DEL */
	assert_int_equal(xdec("a\xc3\xa9", out, sizeof(out)), -1); /* raw 8-bit */
	/* decodes to something that is not printable ASCII */
	assert_int_equal(xdec("a+0D+0AX-Evil:+20yes", out, sizeof(out)), -1);
	assert_int_equal(xdec("a+00b", out, sizeof(out)), -1);
	assert_int_equal(xdec("a+09b", out, sizeof(out)), -1);
	assert_int_equal(xdec("a+7Fb", out, sizeof(out)), -1);
	assert_int_equal(xdec("a+C3+A9", out, sizeof(out)), -1);
	/* too long for the buffer: refused, not cut */
	assert_int_equal(xdec("abcd", out, 4), -1);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(xdec(big, out, sizeof(out)), -1);
	assert_int_equal(xdec("a", out, 0), -1);
}

static void test_xtext_encode(void **state)
{
	char enc[64], dec[64];
	const char *in = "we+ird=addr ess@x\x01";

	(void)state;
	assert_int_equal(smtp_xtext_encode(in, strlen(in), enc, sizeof(enc)), 26);
	assert_string_equal(enc, "we+2Bird+3Daddr+20ess@x+01");
	assert_int_equal(smtp_xtext_encode("abc", 3, enc, 3), -1); /* no room for the NUL */
	assert_int_equal(smtp_xtext_encode("a+", 2, enc, 4), -1);
	/* printable text round-trips */
	in = "a+b=c d@[127.0.0.1]";
	assert_true(smtp_xtext_encode(in, strlen(in), enc, sizeof(enc)) > 0);
	assert_int_equal(xdec(enc, dec, sizeof(dec)), (ssize_t)strlen(in));
	assert_string_equal(dec, in);
}

static void test_notify(void **state)
{
	unsigned b = 99;

	(void)state;
	assert_int_equal(notify("NEVER", &b), SMTP_CMD_OK);
	assert_int_equal(b, SMTP_NOTIFY_GIVEN | SMTP_NOTIFY_NEVER);
	assert_int_equal(notify("never", &b), SMTP_CMD_OK);
	assert_int_equal(b, SMTP_NOTIFY_GIVEN | SMTP_NOTIFY_NEVER);
	assert_int_equal(notify("SUCCESS", &b), SMTP_CMD_OK);
	assert_int_equal(b, SMTP_NOTIFY_GIVEN | SMTP_NOTIFY_SUCCESS);
	assert_int_equal(notify("Failure,DELAY", &b), SMTP_CMD_OK);
	assert_int_equal(b, SMTP_NOTIFY_GIVEN | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
	assert_int_equal(notify("DELAY,SUCCESS,FAILURE", &b), SMTP_CMD_OK);
	assert_int_equal(b, SMTP_NOTIFY_GIVEN | SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
}

static void test_notify_bad(void **state)
{
	static const char *const bad[] = {
		"",                 /* empty */
		"NEVER,SUCCESS",    /* NEVER with anything else: RFC 3461 4.1 */
		"FAILURE,NEVER",
		"NEVER,NEVER",
		"SUCCESS,",         /* trailing comma */
		",SUCCESS",         /* empty word */
		"SUCCESS,,DELAY",
		"SUCCES",           /* unknown word */
		"SUCCESSFAILURE",
		"SUCCESS FAILURE",
		"DELAYS",
	};
	unsigned b;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b = 99;
		if (notify(bad[i], &b) != SMTP_CMD_EPARAM || b != 0)
			fail_msg("NOTIFY=%s accepted (bits %u)", bad[i], b);
	}
}

static void test_orcpt(void **state)
{
	char out[SMTP_MAX_ORCPT + 64];
	char big[SMTP_MAX_ORCPT + 20];

	(void)state;
	assert_int_equal(odec("rfc822;a+2Bb@x.example", out, sizeof(out)), 20);
	assert_string_equal(out, "rfc822;a+b@x.example");
	assert_int_equal(odec("x-local;postmaster", out, sizeof(out)), 18);
	assert_int_equal(odec("rfc822a@b", out, sizeof(out)), -1);   /* no ';' */
	assert_int_equal(odec(";a@b", out, sizeof(out)), -1);         /* no type */
	assert_int_equal(odec("rfc822;", out, sizeof(out)), -1);      /* no address */
	assert_int_equal(odec("rfc 822;a@b", out, sizeof(out)), -1);  /* type not an atom */
	assert_int_equal(odec("rfc(822);a@b", out, sizeof(out)), -1);
	assert_int_equal(odec("rfc822;a+0D+0Ab", out, sizeof(out)), -1); /* CR LF */
	assert_int_equal(odec("rfc822;a+", out, sizeof(out)), -1);
	/* exactly SMTP_MAX_ORCPT decoded is fine, one more is too long */
	memcpy(big, "rfc822;", 7);
	memset(big + 7, 'a', SMTP_MAX_ORCPT - 7);
	big[SMTP_MAX_ORCPT] = 0;
	assert_int_equal(odec(big, out, sizeof(out)), SMTP_MAX_ORCPT);
	big[SMTP_MAX_ORCPT] = 'a';
	big[SMTP_MAX_ORCPT + 1] = 0;
	assert_int_equal(odec(big, out, sizeof(out)), -1);
	/* a short buffer refuses rather than cuts */
	assert_int_equal(odec("rfc822;abcdef", out, 10), -1);
}

static void test_cmd_rcpt(void **state)
{
	struct smtp_cmd c;
	char out[SMTP_MAX_ORCPT + 1];

	(void)state;
	assert_int_equal(parse("RCPT TO:<a@b.example>", &c), SMTP_CMD_OK);
	assert_int_equal(c.notify, 0);
	assert_null(c.orcpt);
	assert_int_equal(parse("RCPT TO:<a@b.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Old+2Bone@c.example", &c),
			 SMTP_CMD_OK);
	assert_int_equal(c.notify, SMTP_NOTIFY_GIVEN | SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY);
	assert_int_equal(c.orcpt_len, strlen("rfc822;Old+2Bone@c.example"));
	assert_int_equal(smtp_orcpt_decode(c.orcpt, c.orcpt_len, out, sizeof(out)), 24);
	assert_string_equal(out, "rfc822;Old+one@c.example");
	assert_int_equal(parse("RCPT TO:<a@b.example> NOTIFY=NEVER", &c), SMTP_CMD_OK);
	assert_int_equal(c.notify, SMTP_NOTIFY_GIVEN | SMTP_NOTIFY_NEVER);
	/* malformed: 555 5.5.4 */
	assert_int_equal(parse("RCPT TO:<a@b.example> NOTIFY=NEVER,FAILURE", &c), SMTP_CMD_EPARAM);
	assert_int_equal(parse("RCPT TO:<a@b.example> NOTIFY=SUCCESS NOTIFY=DELAY", &c), SMTP_CMD_EPARAM);
	assert_int_equal(parse("RCPT TO:<a@b.example> NOTIFY", &c), SMTP_CMD_EPARAM);
	assert_int_equal(parse("RCPT TO:<a@b.example> ORCPT=rfc822;a+4", &c), SMTP_CMD_EPARAM);
	assert_int_equal(parse("RCPT TO:<a@b.example> ORCPT=rfc822;a+0Ab", &c), SMTP_CMD_EPARAM);
	assert_int_equal(parse("RCPT TO:<a@b.example> ORCPT=rfc822;a ORCPT=rfc822;b", &c), SMTP_CMD_EPARAM);
	assert_int_equal(parse("MAIL FROM:<a@b.example> RET=FULL RET=HDRS", &c), SMTP_CMD_EPARAM);
	assert_int_equal(parse("MAIL FROM:<a@b.example> RET=HDRS RET=HDRS", &c), SMTP_CMD_EPARAM);
	assert_int_equal(parse("MAIL FROM:<a@b.example> ENVID=x ENVID=y", &c), SMTP_CMD_EPARAM);
	assert_int_equal(parse("MAIL FROM:<a@b.example> AUTH=<> AUTH=<>", &c), SMTP_CMD_EPARAM);
	assert_int_equal(parse("MAIL FROM:<a@b.example> RET=FULL ENVID=x AUTH=<>", &c), SMTP_CMD_OK);
	assert_int_equal(parse("RCPT TO:<a@b.example> ORCPT=rfc822;caf\xc3\xa9@b", &c), SMTP_CMD_EPARAM);
	/* RCPT does not take MAIL's parameters, nor MAIL RCPT's */
	assert_int_equal(parse("RCPT TO:<a@b.example> RET=FULL", &c), SMTP_CMD_EPARAM);
	assert_int_equal(parse("MAIL FROM:<a@b.example> NOTIFY=NEVER", &c), SMTP_CMD_EPARAM);
}

static void test_cmd_mail(void **state)
{
	struct smtp_cmd c;
	char out[SMTP_MAX_ENVID + 1];
	char line[300];

	(void)state;
	assert_int_equal(parse("MAIL FROM:<a@b.example>", &c), SMTP_CMD_OK);
	assert_int_equal(c.ret, SMTP_RET_UNSPEC);
	assert_null(c.envid);
	assert_int_equal(parse("MAIL FROM:<a@b.example> RET=hdrs ENVID=QQ+2B314159", &c), SMTP_CMD_OK);
	assert_int_equal(c.ret, SMTP_RET_HDRS);
	assert_int_equal(smtp_xtext_decode(c.envid, c.envid_len, out, sizeof(out)), 9);
	assert_string_equal(out, "QQ+314159");
	assert_int_equal(parse("MAIL FROM:<> RET=FULL", &c), SMTP_CMD_OK);
	assert_int_equal(c.ret, SMTP_RET_FULL);
	assert_int_equal(parse("MAIL FROM:<a@b.example> RET=BODY", &c), SMTP_CMD_EPARAM);
	assert_int_equal(parse("MAIL FROM:<a@b.example> ENVID=a+0Db", &c), SMTP_CMD_EPARAM);
	assert_int_equal(parse("MAIL FROM:<a@b.example> ENVID=a+", &c), SMTP_CMD_EPARAM);
	/* ENVID: 100 characters at most (RFC 3461 4.4) */
	snprintf(line, sizeof(line), "MAIL FROM:<a@b.example> ENVID=%0100d", 7);
	assert_int_equal(parse(line, &c), SMTP_CMD_OK);
	snprintf(line, sizeof(line), "MAIL FROM:<a@b.example> ENVID=%0101d", 7);
	assert_int_equal(parse(line, &c), SMTP_CMD_EPARAM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xtext_ok),
		cmocka_unit_test(test_xtext_malformed),
		cmocka_unit_test(test_xtext_encode),
		cmocka_unit_test(test_notify),
		cmocka_unit_test(test_notify_bad),
		cmocka_unit_test(test_orcpt),
		cmocka_unit_test(test_cmd_rcpt),
		cmocka_unit_test(test_cmd_mail),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
