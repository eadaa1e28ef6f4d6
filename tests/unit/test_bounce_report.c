/* test_bounce_report.c - standard DSN and ARF parsing (engine/bounce_report.c):
 * fields, folding, several recipients, base64 parts, nesting, auto-replies,
 * the category table; and every truncation and many byte flips of a report
 * (no crash, no read past the end: run under ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bounce_report.h"

static const char DSN[] =
	"From: MAILER-DAEMON@mx.example\r\n"
	"Content-Type: multipart/report; report-type=delivery-status;\r\n"
	"\tboundary=\"=_b1\"\r\n"
	"\r\n"
	"--=_b1\r\n"
	"Content-Type: text/plain\r\n\r\nsorry\r\n"
	"--=_b1\r\n"
	"Content-Type: message/delivery-status\r\n\r\n"
	"Reporting-MTA: dns; mx.example\r\n\r\n"
	"Final-Recipient: rfc822; <one@example.com>\r\n"
	"Action: failed\r\n"
	"Status: 5.1.1 (user unknown)\r\n"
	"Diagnostic-Code: smtp; 550 5.1.1 user\r\n"
	"  unknown here\r\n\r\n"
	"Original-Recipient: rfc822;two@example.com\r\n"
	"Action: delayed\r\n"
	"Status: 4.2.2\r\n\r\n"
	"--=_b1\r\n"
	"Content-Type: text/rfc822-headers\r\n\r\n"
	"Return-Path: <b-00000000000000ff-0-aaaaaaaaaaaa@bounces.example>\r\n"
	"To: One <one@example.com>\r\n"
	"Message-ID: <m1@example>\r\n"
	"--=_b1--\r\n";

static void test_dsn(void **state)
{
	struct bounce_report r;
	(void)state;

	assert_int_equal(bounce_report_parse(DSN, strlen(DSN), &r), BOUNCE_KIND_DSN);
	assert_int_equal(r.n_rcpts, 2);
	assert_string_equal(r.rcpts[0].addr, "one@example.com");
	assert_string_equal(r.rcpts[0].action, "failed");
	assert_string_equal(r.rcpts[0].status, "5.1.1");
	assert_int_equal(r.rcpts[0].code, 550);
	assert_non_null(strstr(r.rcpts[0].diag, "user unknown here"));
	assert_string_equal(r.rcpts[1].addr, "two@example.com");
	assert_string_equal(r.rcpts[1].status, "4.2.2");
	assert_string_equal(r.orig_sender, "b-00000000000000ff-0-aaaaaaaaaaaa@bounces.example");
	assert_string_equal(r.orig_rcpt, "one@example.com");
	assert_string_equal(r.orig_message_id, "<m1@example>");
}

static void test_arf_base64_and_autoreply(void **state)
{
	struct bounce_report r;
	const char *arf =
		"Content-Type: multipart/report; report-type=feedback-report; boundary=XX\n\n"
		"--XX\nContent-Type: text/plain\n\nreport\n"
		"--XX\nContent-Type: message/feedback-report\nContent-Transfer-Encoding: base64\n\n"
		/* "Feedback-Type: abuse\nOriginal-Rcpt-To: <c@example.com>\n" */
		"RmVlZGJhY2stVHlwZTogYWJ1c2UKT3JpZ2luYWwtUmNwdC1UbzogPGNAZXhhbXBsZS5jb20+Cg==\n"
		"--XX\nContent-Type: message/rfc822\n\nReturn-Path: <rp@b.example>\nTo: c@example.com\n\nbody\n--XX--\n";
	const char *auto_reply = "From: a@b\nAuto-Submitted: auto-replied\nSubject: Out of office\n\nAway.\n";
	(void)state;

	assert_int_equal(bounce_report_parse(arf, strlen(arf), &r), BOUNCE_KIND_ARF);
	assert_string_equal(r.feedback_type, "abuse");
	assert_string_equal(r.orig_rcpt, "c@example.com");
	assert_string_equal(r.orig_sender, "rp@b.example");
	assert_int_equal(bounce_report_parse(auto_reply, strlen(auto_reply), &r), BOUNCE_KIND_AUTOREPLY);
	assert_int_equal(bounce_report_parse("", 0, &r), BOUNCE_KIND_UNKNOWN);
	assert_int_equal(bounce_report_parse("no headers at all", 17, &r), BOUNCE_KIND_UNKNOWN);
}

static void test_categories(void **state)
{
	(void)state;
	assert_string_equal(bounce_category(550, "5.1.1", "user unknown"), "bad-mailbox");
	assert_string_equal(bounce_category(550, "5.1.2", ""), "bad-domain");
	assert_string_equal(bounce_category(552, "5.2.2", "mailbox full"), "quota-issues");
	assert_string_equal(bounce_category(550, "5.2.1", "account disabled"), "inactive-mailbox");
	assert_string_equal(bounce_category(550, "5.7.1", "message rejected as spam"), "spam-related");
	assert_string_equal(bounce_category(550, "5.7.1", "relay access denied"), "policy-related");
	assert_string_equal(bounce_category(550, "", "No such user here"), "bad-mailbox");
	assert_string_equal(bounce_category(554, "", "blocked using zen.spamhaus.org"), "spam-related");
	assert_string_equal(bounce_category(0, "", "connection timed out"), "no-answer-from-host");
	assert_string_equal(bounce_category(550, "5.4.4", ""), "bad-domain");
	assert_string_equal(bounce_category(554, "5.0.0", "something else"), "other");
	assert_true(bounce_category_hard("bad-mailbox"));
	assert_true(bounce_category_hard("complaint"));
	assert_false(bounce_category_hard("quota-issues"));
	assert_false(bounce_category_hard(NULL));
}

/* Phrase families beyond the enhanced code: synthetic replies. */
static void test_category_phrases(void **state)
{
	(void)state;
	/* sender authentication and rate limits beat a 5.1.x code */
	assert_string_equal(bounce_category(550, "5.1.0", "192.0.2.1 is not allowed to send from <x.example> per its SPF record"),
			    "policy-related");
	assert_string_equal(bounce_category(550, "5.1.1", "<a@x.example> 192.0.2.1 has sent to too many recipients this hour"),
			    "policy-related");
	assert_string_equal(bounce_category(550, "5.7.26", "Access denied, the sending domain fails DMARC"), "policy-related");
	/* a refused sender or sending host */
	assert_string_equal(bounce_category(550, "", "Unroutable sender address"), "invalid-sender");
	assert_string_equal(bounce_category(553, "5.7.1", "Connected to mx but sender was rejected: access denied"),
			    "invalid-sender");
	assert_string_equal(bounce_category(0, "", "You are not a member of this mailing list"), "invalid-sender");
	assert_string_equal(bounce_category(501, "5.0.0", "Connected to mx but my name was rejected"), "spam-related");
	assert_string_equal(bounce_category(550, "5.7.1", "Message content rejected, UBE, id=1-2-3"), "spam-related");
	assert_string_equal(bounce_category(550, "5.7.0", "Please use the SMTP server of your ISP"), "spam-related");
	/* domains and routes */
	assert_string_equal(bounce_category(550, "", "example.org: Domain does not exist"), "bad-domain");
	assert_string_equal(bounce_category(0, "4.0.0", "The domain x.example couldn't be found (null MX)"), "bad-domain");
	assert_string_equal(bounce_category(0, "5.4.4", "Name service error: Malformed or unexpected name server reply"),
			    "routing-errors");
	assert_string_equal(bounce_category(0, "", "Host not found, try again"), "routing-errors");
	assert_string_equal(bounce_category(0, "", "Maximum hop count exceeded. Message probably in a routing loop"),
			    "routing-errors");
	assert_string_equal(bounce_category(0, "4.4.1", "connect to mx.example: No route to host"), "routing-errors");
	/* mailbox state, expiry */
	assert_string_equal(bounce_category(0, "", "the user's mailfolder is full"), "quota-issues");
	assert_string_equal(bounce_category(0, "", "mailbox is full: retry timeout exceeded"), "quota-issues");
	assert_string_equal(bounce_category(552, "5.2.2", "mailbox full: too many messages"), "quota-issues");
	assert_string_equal(bounce_category(0, "", "Delivery has been delayed; it will be retried for 2 more days"),
			    "message-expired");
	assert_string_equal(bounce_category(0, "", "Delivery failed 20 attempts"), "message-expired");
	assert_string_equal(bounce_category(554, "", "No valid recipients"), "bad-mailbox");
	assert_string_equal(bounce_category(0, "", "The recipient name is not recognized"), "bad-mailbox");
}

/* Every prefix, and random byte flips, in exact-size heap copies. */
static void test_truncated_and_garbled(void **state)
{
	size_t n = strlen(DSN);
	struct bounce_report r;
	uint64_t x = 12345;
	(void)state;

	for (size_t cut = 0; cut <= n; cut++) {
		char *p = malloc(cut ? cut : 1);

		memcpy(p, DSN, cut);
		bounce_report_parse(p, cut, &r);
		assert_true(r.n_rcpts <= BOUNCE_MAX_RCPTS);
		free(p);
	}
	for (int i = 0; i < 20000; i++) {
		char *p = malloc(n);

		memcpy(p, DSN, n);
		for (int k = 0; k < 4; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			p[x % n] = (char)(x >> 32);
		}
		bounce_report_parse(p, n, &r);
		free(p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dsn),
		cmocka_unit_test(test_arf_base64_and_autoreply),
		cmocka_unit_test(test_categories),
		cmocka_unit_test(test_category_phrases),
		cmocka_unit_test(test_truncated_and_garbled),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
