/* test_bounce_phase.c - the SMTP stage a bounce's reply answered
 * (engine/bounce_text.c: Postfix's "in reply to" note, Exim's "after
 * RCPT TO:", Sendmail transcripts with and without pipelining) and what it
 * changes (engine/bounce_category.c: "user unknown" is a bad mailbox only
 * when an X.1.x code or the RCPT stage corroborates it; synchronous
 * replies know their stage). Synthetic messages; truncations and byte
 * flips of each must not crash (run under ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bounce_report.h"

/* Postfix: a standard DSN whose readable part says which command each
 * reply answered; 5.2.1 "User Unknown" at RCPT, "Unknown user" after DATA. */
static const char POSTFIX[] =
	"From: MAILER-DAEMON@mx.example (Mail Delivery System)\n"
	"Subject: Undelivered Mail Returned to Sender\n"
	"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n"
	"--B\n"
	"Content-Type: text/plain\n\n"
	"<a@one.example>: host mx.one.example[192.0.2.1] said: 550 5.2.1\n"
	"    <a@one.example>... User Unknown (in reply to RCPT TO command)\n\n"
	"<b@two.example>: host mx.two.example[192.0.2.2] said: 550 Unknown user\n"
	"    b@two.example (in reply to end of DATA command)\n\n"
	"--B\n"
	"Content-Type: message/delivery-status\n\n"
	"Reporting-MTA: dns; mx.example\n\n"
	"Final-Recipient: rfc822; a@one.example\n"
	"Action: failed\n"
	"Status: 5.2.1\n"
	"Diagnostic-Code: smtp; 550 5.2.1 <a@one.example>... User Unknown\n\n"
	"Final-Recipient: rfc822; b@two.example\n"
	"Action: failed\n"
	"Status: 5.0.0\n"
	"Diagnostic-Code: smtp; 550 Unknown user b@two.example\n\n"
	"--B--\n";

/* Sendmail: two transcripts. At one.example the DATA went out pipelined
 * after a refused RCPT (the 503 says no recipient was accepted): the 550
 * answered RCPT. At two.example the 550 answered DATA. */
static const char SENDMAIL[] =
	"From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example>\n"
	"Subject: Returned mail: see transcript for details\n"
	"Content-Type: multipart/report; report-type=delivery-status; boundary=\"S\"\n\n"
	"--S\n\n"
	"   ----- Transcript of session follows -----\n"
	"... while talking to mx.one.example.:\n"
	">>> DATA\n"
	"<<< 550 <a@one.example>: User unknown\n"
	"550 5.1.1 <a@one.example>... User unknown\n"
	"<<< 503 5.0.0 Need RCPT (recipient)\n\n"
	"... while talking to mx.two.example.:\n"
	">>> DATA\n"
	"<<< 550 : User unknown here\n"
	"554 5.0.0 Service unavailable\n\n"
	"--S\n"
	"Content-Type: message/delivery-status\n\n"
	"Reporting-MTA: dns; mx.example\n\n"
	"Final-Recipient: RFC822; a@one.example\n"
	"Action: failed\n"
	"Status: 5.0.0\n"
	"Diagnostic-Code: SMTP; 550 <a@one.example>: User unknown\n\n"
	"Final-Recipient: RFC822; b@two.example\n"
	"Action: failed\n"
	"Status: 5.0.0\n"
	"Diagnostic-Code: SMTP; 550 : User unknown here\n\n"
	"--S--\n";

/* Exim: the stage is in the recipient's own paragraph. */
static const char EXIM_RCPT[] =
	"From: Mail Delivery System <Mailer-Daemon@mx.example>\n"
	"To: sender@example.org\n"
	"Subject: Mail delivery failed: returning message to sender\n"
	"X-Failed-Recipients: a@one.example\n\n"
	"This message was created automatically by mail delivery software.\n\n"
	"A message that you sent could not be delivered to one or more of its\n"
	"recipients. This is a permanent error. The following address(es) failed:\n\n"
	"  a@one.example\n"
	"    SMTP error from remote mail server after RCPT TO:<a@one.example>:\n"
	"    host mx.one.example [192.0.2.1]: 550 5.2.1 <a@one.example>... User Unknown\n\n"
	"------ This is a copy of the message, including all the headers. ------\n\n"
	"To: a@one.example\n\nhi\n";

static void test_phase_postfix_note(void **state)
{
	struct bounce_report r;
	(void)state;

	assert_int_equal(bounce_report_parse(POSTFIX, strlen(POSTFIX), &r), BOUNCE_KIND_DSN);
	assert_int_equal(r.n_rcpts, 2);
	assert_int_equal(r.rcpts[0].phase, BOUNCE_PHASE_RCPT);
	assert_int_equal(r.rcpts[1].phase, BOUNCE_PHASE_DATA);
}

static void test_phase_sendmail_transcript(void **state)
{
	struct bounce_report r;
	(void)state;

	assert_int_equal(bounce_report_parse(SENDMAIL, strlen(SENDMAIL), &r), BOUNCE_KIND_DSN);
	assert_int_equal(r.n_rcpts, 2);
	assert_int_equal(r.rcpts[0].phase, BOUNCE_PHASE_RCPT); /* pipelined: a RCPT reply */
	assert_int_equal(r.rcpts[1].phase, BOUNCE_PHASE_DATA);
}

static void test_phase_exim_paragraph(void **state)
{
	struct bounce_report r;
	(void)state;

	assert_int_equal(bounce_report_parse(EXIM_RCPT, strlen(EXIM_RCPT), &r), BOUNCE_KIND_DSN);
	assert_int_equal(r.n_rcpts, 1);
	assert_int_equal(r.rcpts[0].phase, BOUNCE_PHASE_RCPT);
}

/* The stage decides "user unknown" without an X.1.x code. */
static void test_user_unknown_needs_corroboration(void **state)
{
	(void)state;
	/* a synchronous reply to RCPT TO: the mailbox does not exist */
	assert_string_equal(bounce_reply_category(550, "", "User unknown", BOUNCE_PHASE_RCPT), "bad-mailbox");
	assert_string_equal(bounce_reply_category(550, "5.2.1", "<a@b.example>... User Unknown", BOUNCE_PHASE_RCPT),
			    "bad-mailbox");
	/* in answer to DATA, or with nothing to say which: a filter */
	assert_string_equal(bounce_reply_category(550, "", "User unknown", BOUNCE_PHASE_DATA), "policy-related");
	assert_string_equal(bounce_reply_category(550, "", ": User unknown", BOUNCE_PHASE_UNKNOWN), "policy-related");
	assert_string_equal(bounce_reply_category(550, "5.0.0", "No such user here", BOUNCE_PHASE_UNKNOWN), "policy-related");
	assert_string_equal(bounce_reply_category(550, "5.3.0", "Unknown user a@b.example", BOUNCE_PHASE_UNKNOWN),
			    "policy-related");
	assert_string_equal(bounce_reply_category(0, "", "a@b.example on 1/1/01 Recipient Not Found", BOUNCE_PHASE_UNKNOWN),
			    "policy-related");
	/* an X.1.x code confirms it, whatever the stage */
	assert_string_equal(bounce_reply_category(550, "5.1.1", "User unknown", BOUNCE_PHASE_DATA), "bad-mailbox");
	assert_string_equal(bounce_reply_category(550, "5.1.0", "User unknown", BOUNCE_PHASE_UNKNOWN), "bad-mailbox");
	/* a RCPT-style reply confirms it when the code is generic, not when it says something else */
	assert_string_equal(bounce_reply_category(550, "", "<a@b.example>... User not exist", BOUNCE_PHASE_UNKNOWN),
			    "bad-mailbox");
	assert_string_equal(bounce_reply_category(550, "5.0.0", "a@b.example... No such user", BOUNCE_PHASE_UNKNOWN),
			    "bad-mailbox");
	assert_string_equal(bounce_reply_category(550, "5.2.1", "<a@b.example>... User Unknown", BOUNCE_PHASE_UNKNOWN),
			    "policy-related");
	assert_string_equal(bounce_reply_category(550, "", "<a@b.example>... User unknown", BOUNCE_PHASE_DATA),
			    "policy-related");
	/* the delivery program said so */
	assert_string_equal(bounce_reply_category(0, "5.5.0", "mail.local: unknown user: a", BOUNCE_PHASE_UNKNOWN),
			    "bad-mailbox");
	/* other wordings and other categories are not touched */
	assert_string_equal(bounce_reply_category(550, "", "Recipient address does not exist", BOUNCE_PHASE_UNKNOWN),
			    "bad-mailbox");
	assert_string_equal(bounce_reply_category(552, "5.2.2", "mailbox full", BOUNCE_PHASE_DATA), "quota-issues");
	assert_string_equal(bounce_reply_category(550, "5.7.1", "blocked using zen.spamhaus.org", BOUNCE_PHASE_UNKNOWN),
			    "spam-related");
	/* malformed codes and texts */
	assert_string_equal(bounce_reply_category(550, NULL, "User unknown", BOUNCE_PHASE_UNKNOWN), "policy-related");
	assert_string_equal(bounce_reply_category(550, "5.", "User unknown", BOUNCE_PHASE_RCPT), "bad-mailbox");
	assert_string_equal(bounce_reply_category(550, "5", "<a@b>... user unknown", BOUNCE_PHASE_UNKNOWN), "policy-related");
	assert_string_equal(bounce_reply_category(0, "", NULL, BOUNCE_PHASE_UNKNOWN), "other");
	assert_string_equal(bounce_reply_category(0, "", "", BOUNCE_PHASE_DATA), "other");
}

/* The same through a parsed report: the stage each reply answered. */
static void test_reports_by_stage(void **state)
{
	static const char UNSTATED[] =
		"From: MAILER-DAEMON@mx.example\n"
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"U\"\n\n"
		"--U\nContent-Type: message/delivery-status\n\n"
		"Reporting-MTA: dns; mx.example\n\n"
		"Final-Recipient: rfc822; a@one.example\nAction: failed\nStatus: 5.0.0\n"
		"Diagnostic-Code: smtp; 550 user unknown\n\n"
		"Final-Recipient: rfc822; b@two.example\nAction: failed\nStatus: 5.1.1\n"
		"Diagnostic-Code: smtp; 550 user unknown\n\n--U--\n";
	struct bounce_report r;
	(void)state;

	assert_int_equal(bounce_report_parse(POSTFIX, strlen(POSTFIX), &r), BOUNCE_KIND_DSN);
	assert_string_equal(bounce_rcpt_category(&r.rcpts[0]), "bad-mailbox");
	assert_string_equal(bounce_rcpt_category(&r.rcpts[1]), "policy-related");
	assert_int_equal(bounce_report_parse(SENDMAIL, strlen(SENDMAIL), &r), BOUNCE_KIND_DSN);
	assert_string_equal(bounce_rcpt_category(&r.rcpts[0]), "bad-mailbox");
	assert_string_equal(bounce_rcpt_category(&r.rcpts[1]), "policy-related");
	assert_int_equal(bounce_report_parse(EXIM_RCPT, strlen(EXIM_RCPT), &r), BOUNCE_KIND_DSN);
	assert_string_equal(bounce_rcpt_category(&r.rcpts[0]), "bad-mailbox");
	assert_int_equal(bounce_report_parse(UNSTATED, strlen(UNSTATED), &r), BOUNCE_KIND_DSN);
	assert_int_equal(r.n_rcpts, 2);
	assert_int_equal(r.rcpts[0].phase, BOUNCE_PHASE_UNKNOWN);
	assert_string_equal(bounce_rcpt_category(&r.rcpts[0]), "policy-related");
	assert_false(bounce_category_hard(bounce_rcpt_category(&r.rcpts[0])));
	assert_string_equal(bounce_rcpt_category(&r.rcpts[1]), "bad-mailbox");
}

/* Quoted local parts stay whole, quotes and all (RFC 5321: required where
 * the local part is not a dot-string); an unterminated quote is bounded. */
static void test_quoted_local_part(void **state)
{
	static const char DSN_Q[] =
		"From: MAILER-DAEMON@mx.example\n"
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"Q\"\n\n"
		"--Q\nContent-Type: message/delivery-status\n\n"
		"Reporting-MTA: dns; mx.example\n\n"
		"Final-Recipient: rfc822; <\"neko....nyaan....\"@one.example>\nAction: failed\nStatus: 5.1.1\n\n"
		"Final-Recipient: rfc822; \"john doe;x\"@two.example\nAction: failed\nStatus: 5.1.1\n\n"
		"Final-Recipient: rfc822; \"a\\\" b\"@three.example\nAction: failed\nStatus: 5.1.1\n\n"
		"Final-Recipient: rfc822; \"unterminated@four.example\nAction: failed\nStatus: 5.1.1\n\n--Q--\n";
	struct bounce_report r;
	(void)state;

	assert_int_equal(bounce_report_parse(DSN_Q, strlen(DSN_Q), &r), BOUNCE_KIND_DSN);
	assert_int_equal(r.n_rcpts, 4);
	assert_string_equal(r.rcpts[0].addr, "\"neko....nyaan....\"@one.example");
	assert_string_equal(r.rcpts[1].addr, "\"john doe;x\"@two.example");
	assert_string_equal(r.rcpts[2].addr, "\"a\\\" b\"@three.example");
	assert_string_equal(r.rcpts[3].addr, "\"unterminated@four.example");
}

/* Transcript fragments cut anywhere: ">>> " or "<<< " at the very end, a
 * transcript with no newline, a reply with no command before it. */
static void test_phase_malformed(void **state)
{
	static const char *const bodies[] = {
		">>> ", "<<< ", ">>> DATA", ">>> DATA\n<<< ", ">>> DATA\n<<< 550 user unknown",
		"<<< 550 user unknown\n<<< 503 need RCPT", ">>> RCPT To:<a@b.example>\n<<< 550 5.1.1 user unknown\n>>> ",
		"in reply to ", "said: 550 x (in reply to", ">>>>>>> DATA\n>>> <<< <<< 503",
	};
	struct bounce_report r;
	char msg[512];
	(void)state;

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		int n = snprintf(msg, sizeof(msg),
				 "From: MAILER-DAEMON@mx.example\nSubject: Undeliverable\nX-Failed-Recipients: a@b.example\n\n%s",
				 bodies[i]);

		for (int cut = 0; cut <= n; cut++) {
			char *p = malloc(cut ? (size_t)cut : 1);

			memcpy(p, msg, (size_t)cut);
			bounce_report_parse(p, (size_t)cut, &r);
			for (size_t k = 0; k < r.n_rcpts; k++)
				(void)bounce_rcpt_category(&r.rcpts[k]);
			free(p);
		}
	}
}

/* Every truncation and many byte flips of each sample. */
static void test_phase_truncated_and_garbled(void **state)
{
	static const char *const samples[] = {POSTFIX, SENDMAIL, EXIM_RCPT,
					      "Final-Recipient: rfc822; \"a\\\" b\"@x.example\nAction: failed\n"};
	struct bounce_report r;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	(void)state;

	for (size_t s = 0; s < sizeof(samples) / sizeof(samples[0]); s++) {
		size_t n = strlen(samples[s]);

		for (size_t cut = 0; cut <= n; cut++) {
			char *p = malloc(cut ? cut : 1);

			memcpy(p, samples[s], cut);
			bounce_report_parse(p, cut, &r);
			for (size_t k = 0; k < r.n_rcpts; k++)
				(void)bounce_rcpt_category(&r.rcpts[k]);
			free(p);
		}
		for (int i = 0; i < 3000; i++) {
			char *p = malloc(n);

			memcpy(p, samples[s], n);
			for (int k = 0; k < 4; k++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				p[x % n] = (char)(x >> 32);
			}
			bounce_report_parse(p, n, &r);
			for (size_t k = 0; k < r.n_rcpts; k++)
				(void)bounce_rcpt_category(&r.rcpts[k]);
			free(p);
		}
	}
}

/* Refused before any recipient: the sender or its host, never a hard
 * bounce of the recipient. */
static const char EXIM_MAIL[] =
	"From: Mail Delivery System <Mailer-Daemon@mx.example>\n"
	"Subject: Mail delivery failed: returning message to sender\n"
	"X-Failed-Recipients: reader@one.example\n\n"
	"This message was created automatically by mail delivery software.\n\n"
	"A message that you sent could not be delivered to one or more of its\n"
	"recipients. This is a permanent error. The following address(es) failed:\n\n"
	"  reader@one.example\n"
	"    host mx.one.example [192.0.2.1]\n"
	"    SMTP error from remote mail server after MAIL FROM:<news@example.org> SIZE=1234:\n"
	"    550 Unknown user\n\n"
	"------ This is a copy of the message, including all the headers. ------\n";

static void test_mail_stage(void **state)
{
	struct bounce_report r;
	(void)state;

	assert_int_equal(bounce_report_parse(EXIM_MAIL, strlen(EXIM_MAIL), &r), BOUNCE_KIND_DSN);
	assert_int_equal(r.n_rcpts, 1);
	assert_int_equal(r.rcpts[0].phase, BOUNCE_PHASE_MAIL);
	assert_string_equal(bounce_rcpt_category(&r.rcpts[0]), "invalid-sender");
	assert_string_equal(bounce_reply_category(550, "5.1.1", "User unknown", BOUNCE_PHASE_MAIL), "invalid-sender");
	assert_string_equal(bounce_reply_category(554, "5.7.1", "blocked using zen.spamhaus.org", BOUNCE_PHASE_MAIL),
			    "spam-related");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_phase_postfix_note),
		cmocka_unit_test(test_phase_sendmail_transcript),
		cmocka_unit_test(test_phase_exim_paragraph),
		cmocka_unit_test(test_user_unknown_needs_corroboration),
		cmocka_unit_test(test_reports_by_stage),
		cmocka_unit_test(test_quoted_local_part),
		cmocka_unit_test(test_phase_malformed),
		cmocka_unit_test(test_phase_truncated_and_garbled),
		cmocka_unit_test(test_mail_stage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
