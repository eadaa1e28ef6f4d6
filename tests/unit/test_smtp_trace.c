/* test_smtp_trace.c - the transcript hook (net/smtp_trace.c): redaction of
 * SASL payloads (AUTH arguments, 334 challenges, the answers to them),
 * malformed AUTH lines, pipelined lines cut into events, every input cut at
 * every byte against a guard page, and the generation check that keeps an
 * untraced session on its one branch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "guard_page.h"

#include "net/smtp_trace.h"

#define SECRET "AGFsaWNlAHMzY3JldA=="

/* ---- a recording sink ------------------------------------------------------ */

struct rec {
	char lines[32][2048];
	int ev[32];
	int n;
	int refreshes;
	unsigned flags;            /* what refresh answers */
};

static struct rec rec;

static unsigned rec_refresh(struct smtp_trace *t)
{
	(void)t;
	rec.refreshes++;
	return rec.flags;
}

static void rec_line(struct smtp_trace *t, enum smtp_trace_ev ev, const char *text, size_t len)
{
	(void)t;
	assert_true(rec.n < 32);
	assert_true(len < sizeof(rec.lines[0]));
	memcpy(rec.lines[rec.n], text, len);
	rec.lines[rec.n][len] = '\0';
	rec.ev[rec.n++] = ev;
}

static const struct smtp_trace_sink rec_sink = {rec_refresh, rec_line, NULL};

static struct smtp_trace new_trace(void)
{
	struct smtp_trace t = {.sink = &rec_sink, .flags = SMTP_TRACE_CMDS | SMTP_TRACE_CONN,
			       .gen = __atomic_load_n(&smtp_trace_gen, __ATOMIC_RELAXED)};

	memset(&rec, 0, sizeof(rec));
	return t;
}

/* Report s (a C string) as one event, from a buffer ending at a guard page. */
static void event(struct smtp_trace *t, enum smtp_trace_ev ev, const char *s)
{
	smtp_trace_event(t, ev, at_guard(s, strlen(s)), strlen(s));
}

/* ---- one line ----------------------------------------------------------------- */

static const char *redact(enum smtp_trace_ev ev, const char *line, bool *after)
{
	static char out[2048];
	size_t n = strlen(line);
	size_t got = smtp_trace_redact(ev, at_guard(line, n), n, after, out, sizeof(out));

	assert_int_equal(got, strlen(out));
	return out;
}

static void cmd_is(const char *line, const char *want)
{
	bool after = false;

	assert_string_equal(redact(SMTP_TRACE_EV_CMD, line, &after), want);
	assert_false(after);
}

static void test_auth_lines(void **state)
{
	(void)state;
	cmd_is("AUTH PLAIN " SECRET, "AUTH PLAIN [redacted]");
	cmd_is("auth plain " SECRET, "auth plain [redacted]");
	cmd_is("AUTH LOGIN dXNlcg==", "AUTH LOGIN [redacted]");
	cmd_is("AUTH\tPLAIN\t" SECRET, "AUTH PLAIN [redacted]");
	cmd_is("  AUTH PLAIN " SECRET, "AUTH PLAIN [redacted]");
	cmd_is("AUTH PLAIN =", "AUTH PLAIN [redacted]");
	cmd_is("AUTH PLAIN   " SECRET "   ", "AUTH PLAIN [redacted]");
	cmd_is("AUTH XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciB4eHgBAQ==", "AUTH XOAUTH2 [redacted]");
	/* no initial response: shown whole */
	cmd_is("AUTH LOGIN", "AUTH LOGIN");
	cmd_is("AUTH PLAIN   ", "AUTH PLAIN");
	cmd_is("AUTH", "AUTH");
	cmd_is("AUTH   ", "AUTH");
	/* malformed: the mechanism left out, the payload where it should be */
	cmd_is("AUTH " SECRET, "AUTH [redacted]");
	cmd_is("AUTH YWxpY2U", "AUTH [redacted]");
	cmd_is("AUTH PLAINX " SECRET, "AUTH [redacted]");
	/* not AUTH commands */
	cmd_is("AUTHX " SECRET, "AUTHX " SECRET);
	cmd_is("MAIL FROM:<a@b.test> AUTH=<>", "MAIL FROM:<a@b.test> AUTH=<>");
	cmd_is("AUT", "AUT");
	cmd_is("", "");
}

static void test_challenges(void **state)
{
	bool after = false;

	(void)state;
	/* AUTH LOGIN: challenge, answer, challenge, answer, verdict, then commands */
	assert_string_equal(redact(SMTP_TRACE_EV_CMD, "AUTH LOGIN", &after), "AUTH LOGIN");
	assert_string_equal(redact(SMTP_TRACE_EV_REPLY, "334 VXNlcm5hbWU6", &after), "334 [redacted]");
	assert_true(after);
	assert_string_equal(redact(SMTP_TRACE_EV_CMD, "YWxpY2U=", &after), "[redacted]");
	assert_false(after);
	assert_string_equal(redact(SMTP_TRACE_EV_REPLY, "334 UGFzc3dvcmQ6", &after), "334 [redacted]");
	assert_string_equal(redact(SMTP_TRACE_EV_CMD, "MAIL FROM:<looks@like.a.command>", &after), "[redacted]");
	assert_string_equal(redact(SMTP_TRACE_EV_REPLY, "235 2.7.0 Authentication successful", &after),
			    "235 2.7.0 Authentication successful");
	assert_false(after);
	assert_string_equal(redact(SMTP_TRACE_EV_CMD, "MAIL FROM:<a@b.test>", &after), "MAIL FROM:<a@b.test>");
	/* PLAIN's empty challenge, a multi-line one, a bare code */
	assert_string_equal(redact(SMTP_TRACE_EV_REPLY, "334 ", &after), "334 ");
	assert_true(after);
	assert_string_equal(redact(SMTP_TRACE_EV_CMD, "*", &after), "[redacted]");
	assert_string_equal(redact(SMTP_TRACE_EV_REPLY, "334-c2VjcmV0", &after), "334-[redacted]");
	assert_string_equal(redact(SMTP_TRACE_EV_REPLY, "334", &after), "334");
	assert_true(after);
	/* not 334s: no state */
	after = false;
	assert_string_equal(redact(SMTP_TRACE_EV_REPLY, "3345 x", &after), "3345 x");
	assert_false(after);
	assert_string_equal(redact(SMTP_TRACE_EV_REPLY, "250 334 ok", &after), "250 334 ok");
	assert_false(after);
	/* a line the session knows is an answer, whatever came before */
	assert_string_equal(redact(SMTP_TRACE_EV_SECRET, "EHLO looks.harmless", &after), "[redacted]");
	/* data never touches the state */
	after = true;
	assert_string_equal(redact(SMTP_TRACE_EV_DATA, "AUTH PLAIN x", &after), "AUTH PLAIN x");
	assert_true(after);
}

/* Over-long lines are cut, never cut open: the redaction decides on the
 * whole line, so no part of a long secret shows. */
static void test_long_lines(void **state)
{
	static char line[6000], out[64];
	bool after = false;
	size_t n;

	(void)state;
	memcpy(line, "AUTH PLAIN ", 11);
	memset(line + 11, 'Q', sizeof(line) - 12);
	line[sizeof(line) - 1] = '\0';
	cmd_is(line, "AUTH PLAIN [redacted]");
	memset(line, 'Q', sizeof(line) - 1);
	memcpy(line, "AUTH ", 5);
	cmd_is(line, "AUTH [redacted]");
	after = true;
	assert_string_equal(redact(SMTP_TRACE_EV_CMD, line + 5, &after), "[redacted]");
	/* a small output buffer: cut, terminated */
	n = smtp_trace_redact(SMTP_TRACE_EV_CMD, "MAIL FROM:<a-rather-long-address@example.test>", 46, &after, out, 10);
	assert_int_equal(n, 9);
	assert_string_equal(out, "MAIL FROM");
	n = smtp_trace_redact(SMTP_TRACE_EV_CMD, "AUTH PLAIN " SECRET, 11 + strlen(SECRET), &after, out, 14);
	assert_string_equal(out, "AUTH PLAIN [r");
	assert_int_equal(n, 13);
}

/* Every prefix of an AUTH line (a line cut anywhere): no over-read, and no
 * byte of the payload is ever shown. */
static void test_every_cut(void **state)
{
	const char *full = "AUTH PLAIN " SECRET;
	size_t len = strlen(full);

	(void)state;
	for (size_t k = 0; k <= len; k++) {
		char out[256];
		bool after = false;

		smtp_trace_redact(SMTP_TRACE_EV_CMD, at_guard(full, k), k, &after, out, sizeof(out));
		if (k > 11)
			assert_string_equal(out, "AUTH PLAIN [redacted]");
		else if (k == 11 || k == 10)
			assert_string_equal(out, "AUTH PLAIN");
		else if (k > 5)
			assert_string_equal(out, "AUTH [redacted]"); /* "PL".."PLAI": no known mechanism */
		assert_null(strstr(out, "AGF"));
	}
}

/* ---- events: lines cut from what was sent or received ---------------------------- */

static void test_pipelined(void **state)
{
	struct smtp_trace t = new_trace();

	(void)state;
	/* a client's pipelined batch, one read */
	event(&t, SMTP_TRACE_EV_CMD, "EHLO c.test\r\nAUTH PLAIN " SECRET "\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n");
	assert_int_equal(rec.n, 4);
	assert_string_equal(rec.lines[0], "EHLO c.test");
	assert_string_equal(rec.lines[1], "AUTH PLAIN [redacted]");
	assert_string_equal(rec.lines[2], "MAIL FROM:<a@b.test>");
	assert_string_equal(rec.lines[3], "RCPT TO:<c@d.test>");
	/* bare LF, a last line without any, an empty line */
	rec.n = 0;
	event(&t, SMTP_TRACE_EV_CMD, "NOOP\n\r\nAUTH LOGIN Zm9v");
	assert_int_equal(rec.n, 3);
	assert_string_equal(rec.lines[0], "NOOP");
	assert_string_equal(rec.lines[1], "");
	assert_string_equal(rec.lines[2], "AUTH LOGIN [redacted]");
	/* a multi-line 334 in one read, then the answer */
	rec.n = 0;
	event(&t, SMTP_TRACE_EV_REPLY, "334-one\r\n334 two\r\n");
	event(&t, SMTP_TRACE_EV_CMD, "c2VjcmV0\r\nQUIT\r\n");
	assert_int_equal(rec.n, 4);
	assert_string_equal(rec.lines[0], "334-[redacted]");
	assert_string_equal(rec.lines[1], "334 [redacted]");
	assert_string_equal(rec.lines[2], "[redacted]");
	assert_string_equal(rec.lines[3], "QUIT");
	/* a secret event is reported as a command */
	rec.n = 0;
	event(&t, SMTP_TRACE_EV_SECRET, "dXNlcg==");
	assert_int_equal(rec.n, 1);
	assert_int_equal(rec.ev[0], SMTP_TRACE_EV_CMD);
	assert_string_equal(rec.lines[0], "[redacted]");
	/* connection events are one line whatever they hold */
	rec.n = 0;
	event(&t, SMTP_TRACE_EV_CLOSE, "reset\r\nby peer");
	assert_int_equal(rec.n, 1);
	assert_int_equal(rec.ev[0], SMTP_TRACE_EV_CLOSE);
	/* nothing: no line */
	rec.n = 0;
	smtp_trace_event(&t, SMTP_TRACE_EV_DATA, "", 0);
	assert_int_equal(rec.n, 0);
}

/* Off stays off without asking anyone until the generation moves; then
 * each session asks once. */
static void test_generation(void **state)
{
	struct smtp_trace t = new_trace(), none = {0};

	(void)state;
	t.flags = 0;
	for (int i = 0; i < 100; i++)
		assert_false(smtp_trace_on(&t, SMTP_TRACE_CMDS));
	assert_int_equal(rec.refreshes, 0);
	rec.flags = SMTP_TRACE_CMDS;
	smtp_trace_bump();
	assert_true(smtp_trace_on(&t, SMTP_TRACE_CMDS));
	assert_false(smtp_trace_on(&t, SMTP_TRACE_DATA));
	assert_true(smtp_trace_on(&t, SMTP_TRACE_CMDS));
	assert_int_equal(rec.refreshes, 1);
	rec.flags = 0;
	smtp_trace_bump();
	assert_false(smtp_trace_on(&t, SMTP_TRACE_CMDS));
	assert_false(smtp_trace_on(&t, SMTP_TRACE_CMDS));
	assert_int_equal(rec.refreshes, 2);
	/* a session without a sink is never traced, and never calls anyone */
	assert_false(smtp_trace_on(&none, SMTP_TRACE_CMDS | SMTP_TRACE_CONN | SMTP_TRACE_DATA));
	smtp_trace_end(&none);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auth_lines),
		cmocka_unit_test(test_challenges),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_every_cut),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_generation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
