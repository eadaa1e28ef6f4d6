/* test_msg_headers.c - taking X-Virtual-MTA / X-Job out of a header block,
 * one name or several in one pass, and a header block of 200,000 such fields
 * (which took one move of the rest of the message per field before). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/acct_log.h"
#include "core/config.h"
#include "engine/acct_headers.h"
#include "engine/msg_headers.h"

static void take(const char *in, const char *name, const char *want_msg, const char *want_val, size_t want_n)
{
	size_t len = strlen(in);
	char *buf = malloc(len + 1), val[64];

	memcpy(buf, in, len + 1);
	assert_int_equal(msg_header_take(buf, &len, name, val, sizeof(val)), want_n);
	assert_int_equal(len, strlen(want_msg));
	assert_memory_equal(buf, want_msg, len);
	assert_string_equal(val, want_val);
	free(buf);
}

static void test_take(void **state)
{
	(void)state;
	take("From: a@b\r\nX-Virtual-MTA: blast\r\nSubject: s\r\n\r\nbody\r\n", "x-virtual-mta",
	     "From: a@b\r\nSubject: s\r\n\r\nbody\r\n", "blast", 1);
	/* folded value, every copy removed, the first one wins */
	take("x-job:  camp\r\n  aign 7 \r\nA: 1\r\nX-JOB: other\r\n\r\n", "X-Job", "A: 1\r\n\r\n", "camp aign 7", 2);
	/* only the header block: a body line that looks like a header stays */
	take("A: 1\n\nX-Job: body\n", "X-Job", "A: 1\n\nX-Job: body\n", "", 0);
	/* name must be followed by the colon */
	take("X-Jobs: 1\r\nX-Job : 2\r\n\r\n", "X-Job", "X-Jobs: 1\r\nX-Job : 2\r\n\r\n", "", 0);
	/* no body separator, last line without LF */
	take("A: 1\r\nX-Job: end", "X-Job", "A: 1\r\n", "end", 1);
	take("", "X-Job", "", "", 0);
}

/* acct_headers_take(): the header_NAME fields the <acct-file>s ask for, from
 * the header block only; first of a name, unfolded, control characters out,
 * cut inside the bound without splitting UTF-8; malformed blocks end it. */
static void test_acct_headers(void **state)
{
	struct config cfg = {0};
	struct config_acct_file af[2] = {{.records = 1}, {.records = 1}};
	char *h, *msg, big[ACCT_HEADER_MAX * 3];
	(void)state;

	/* no file asks: nothing read */
	assert_null(acct_headers_take(&cfg, "Subject: x\r\n\r\n", 14));
	af[0].record_fields[0] = "rcpt,header_Subject,!orcpt,header_X-Id";
	af[1].record_fields[4] = "header_subject,header_Empty";
	cfg.acct_files = af;
	cfg.n_acct_files = 2;
	msg = "x-id: one\r\n two\r\n\tthree\r\nSubject: a\x01" "b\r\nSubject: second\r\nEmpty:\r\n"
	      "Nocolon line\r\n\r\nSubject: in the body\r\n";
	h = acct_headers_take(&cfg, msg, strlen(msg));
	assert_non_null(h);
	assert_string_equal(h, "X-Id: one two three\nSubject: a b\nEmpty: \n");
	free(h);
	/* only the body has it; LF-only lines; no end of the header block */
	assert_null(acct_headers_take(&cfg, "From: a\n\nSubject: x\n", 21));
	h = acct_headers_take(&cfg, "From: a\nSubject: lf", 20);
	assert_string_equal(h, "Subject: lf\n");
	free(h);
	/* a long value is cut below ACCT_HEADER_MAX, never inside a UTF-8 sequence */
	strcpy(big, "Subject: ");
	for (size_t i = strlen(big); i + 2 < sizeof(big) - 8; i += 2)
		memcpy(big + i, "\xc3\xa9", 2), big[i + 2] = 0;
	strcat(big, "\r\n\r\n");
	h = acct_headers_take(&cfg, big, strlen(big));
	assert_non_null(h);
	assert_true(strlen(h) - strlen("Subject: \n") <= ACCT_HEADER_MAX - 1);
	assert_int_equal((strlen(h) - strlen("Subject: \n")) % 2, 0);
	free(h);
}

static void test_long_value_cut(void **state)
{
	char in[300], val[8];
	size_t len;
	(void)state;

	memset(in, 'v', sizeof(in));
	memcpy(in, "X-Job: ", 7);
	memcpy(in + 296, "\r\n\r\n", 4);
	len = sizeof(in);
	assert_int_equal(msg_header_take(in, &len, "X-Job", val, sizeof(val)), 1);
	assert_string_equal(val, "vvvvvvv");
	assert_int_equal(len, 2);
}

/* Two names in one pass, interleaved with kept fields and folded lines. */
static void test_take_many(void **state)
{
	char in[] = "X-Job: j1\r\nA: 1\r\nX-Virtual-MTA: pool\r\n b\r\nB: 2\r\n c\r\nx-job: j2\r\n"
		    "X-Virtual-MTA: p2\r\n\r\nX-Job: body\r\n";
	const char want[] = "A: 1\r\nB: 2\r\n c\r\n\r\nX-Job: body\r\n";
	char vmta[32], job[32];
	struct msg_header_want w[] = {
		{.name = "X-Virtual-MTA", .out = vmta, .cap = sizeof(vmta)},
		{.name = "X-Job", .out = job, .cap = sizeof(job)},
	};
	size_t len = sizeof(in) - 1;
	(void)state;

	assert_int_equal(msg_headers_take(in, &len, w, 2), 4);
	assert_int_equal(len, sizeof(want) - 1);
	assert_memory_equal(in, want, len);
	assert_string_equal(vmta, "pool b");
	assert_string_equal(job, "j1");
	assert_int_equal(w[0].found, 2);
	assert_int_equal(w[1].found, 2);
	/* nothing to take: unchanged */
	char plain[] = "A: 1\r\n\r\nbody";
	len = sizeof(plain) - 1;
	assert_int_equal(msg_headers_take(plain, &len, w, 2), 0);
	assert_int_equal(len, sizeof(plain) - 1);
	assert_string_equal(vmta, "");
}

/* 100,000 X-Job and 100,000 X-Virtual-MTA lines among 100,000 kept ones and
 * a body: every MTA field gone, the kept fields and the body byte-exact. */
static void test_take_huge(void **state)
{
	const size_t n = 100000;
	size_t cap = n * 64 + 4096, len = 0, wlen = 0;
	char *msg = malloc(cap), *want = malloc(cap), vmta[32], job[32];
	struct msg_header_want w[] = {
		{.name = "X-Virtual-MTA", .out = vmta, .cap = sizeof(vmta)},
		{.name = "X-Job", .out = job, .cap = sizeof(job)},
	};
	(void)state;

	assert_non_null(msg);
	assert_non_null(want);
	for (size_t i = 0; i < n; i++) {
		len += (size_t)sprintf(msg + len, "X-Job: job%zu\r\nH%zu: v\r\nX-Virtual-MTA: p%zu\r\n", i, i, i);
		wlen += (size_t)sprintf(want + wlen, "H%zu: v\r\n", i);
	}
	for (const char *b = "\r\nX-Job: stays in the body\r\nend\r\n"; *b; b++) {
		msg[len++] = *b;
		want[wlen++] = *b;
	}
	assert_int_equal(msg_headers_take(msg, &len, w, 2), 2 * n);
	assert_int_equal(len, wlen);
	assert_memory_equal(msg, want, wlen);
	assert_string_equal(job, "job0");
	assert_string_equal(vmta, "p0");
	free(msg);
	free(want);
}

/* ---- msg_headers_edit: a <source>'s header settings ----------------------- */

static const char OWN[] = "Received: from helo.client ([192.0.2.7])\r\n\t(using TLSv1.3 with cipher X)\r\n"
			  "\tby mta.test (Salvo) with ESMTPS;\r\n\tMon, 07 Dec 2026 04:00:00 +0000\r\n";
static const char OWN_HIDDEN[] = "Received: by mta.test (Salvo) with ESMTPS;\r\n\tMon, 07 Dec 2026 04:00:00 +0000\r\n";

/* edit(in) == want, through a malloc'd copy (the edit may realloc it) */
static void edit(const char *in, size_t in_len, const struct msg_header_edit *e, const char *want)
{
	size_t len = in_len;
	char *buf = malloc(len ? len : 1);

	assert_non_null(buf);
	memcpy(buf, in, len);
	assert_int_equal(msg_headers_edit(&buf, &len, e), 0);
	if (len != strlen(want) || memcmp(buf, want, len) != 0)
		fail_msg("got %zu bytes:\n%.*s\nwant %zu:\n%s", len, (int)len, buf, strlen(want), want);
	free(buf);
}

static void edit_s(const char *in, const struct msg_header_edit *e, const char *want)
{
	edit(in, strlen(in), e, want);
}

static char *cat(const char *a, const char *b)
{
	char *out = malloc(strlen(a) + strlen(b) + 1);

	assert_non_null(out);
	strcpy(out, a);
	strcat(out, b);
	return out;
}

static void test_edit_received(void **state)
{
	const struct msg_header_edit hide = {.own_received = true, .hide_source = true};
	const struct msg_header_edit drop_own = {.own_received = true, .drop_own_received = true};
	const struct msg_header_edit drop_rest = {.own_received = true, .drop_received = true};
	const struct msg_header_edit all = {.own_received = true, .drop_own_received = true, .drop_received = true};
	const char *client = "Received: from a (b [10.0.0.1])\r\n\tby c;\r\n Mon, 7 Dec 2026\r\n"
			     "received:from x\r\n  (folded\r\n\t twice)\r\nReceived-SPF: pass\r\n"
			     "Subject: s\r\n\r\nReceived: in the body\r\n";
	char *in = cat(OWN, client), *want;
	(void)state;

	/* hide-message-source: the client's name and address go, the rest stays */
	want = cat(OWN_HIDDEN, client);
	edit_s(in, &hide, want);
	free(want);
	/* add-received-header no: only salvod's own goes */
	edit_s(in, &drop_own, client);
	/* remove-received-headers: every other Received (folded ones whole), not
	 * Received-SPF, not the body's */
	want = cat(OWN, "Received-SPF: pass\r\nSubject: s\r\n\r\nReceived: in the body\r\n");
	edit_s(in, &drop_rest, want);
	free(want);
	edit_s(in, &all, "Received-SPF: pass\r\nSubject: s\r\n\r\nReceived: in the body\r\n");
	free(in);
	/* no own Received (the flag says the first field is ours, it is not):
	 * nothing of the client's is taken for it */
	edit_s("Subject: s\r\nReceived: x\r\n\r\nb\r\n", &drop_own, "Subject: s\r\nReceived: x\r\n\r\nb\r\n");
	/* no header/body separator, last line without LF */
	edit_s("Received: a\r\nReceived: b", &drop_rest, "Received: a\r\n");
	/* bare LF lines */
	edit_s("Received: own\n\tby h (Salvo) with SMTP;\n\tdate\nReceived: x\nA: 1\n\nbody\n", &drop_rest,
	       "Received: own\n\tby h (Salvo) with SMTP;\n\tdate\nA: 1\n\nbody\n");
	edit_s("Received: from h ([1.2.3.4])\n\tby h (Salvo) with SMTP;\n\tdate\nA: 1\n\nbody\n", &hide,
	       "Received: by h (Salvo) with SMTP;\n\tdate\nA: 1\n\nbody\n");
	/* an own line without "\tby " (cannot come from salvod) is kept whole */
	edit_s("Received: odd\r\nA: 1\r\n\r\n", &hide, "Received: odd\r\nA: 1\r\n\r\n");
	/* an empty message */
	edit("", 0, &all, "");
}

/* remove-header: every field so named (any case, folded ones whole) goes in
 * the same pass; a longer name, the body and salvod's own Received stay. */
static void test_edit_remove(void **state)
{
	static const char *const names[] = {"X-Mailer", "x-originating-ip", "Received"};
	const struct msg_header_edit e = {.own_received = true, .remove = names, .n_remove = 3};
	const struct msg_header_edit ids = {.own_received = true, .remove = (const char *const[]){"Message-ID"},
					    .n_remove = 1, .message_id = "<1.2@mta.test>"};
	char *in = cat(OWN, "X-Mailer: m\r\nX-Mailer-Keep: k\r\nX-ORIGINATING-IP: [10.0.0.1]\r\n\tfolded\r\n"
			    "Received: x\r\nSubject: s\r\nX-Mailer: again\r\n\r\nX-Mailer: body\r\n"), *want;
	(void)state;

	want = cat(OWN, "X-Mailer-Keep: k\r\nSubject: s\r\n\r\nX-Mailer: body\r\n");
	edit_s(in, &e, want);
	free(want);
	free(in);
	/* a removed Message-ID is replaced when add-message-id-header asks */
	in = cat(OWN, "Message-ID: <old@x>\r\nSubject: s\r\n\r\nb\r\n");
	want = cat(OWN, "Message-ID: <1.2@mta.test>\r\nSubject: s\r\n\r\nb\r\n");
	edit_s(in, &ids, want);
	free(want);
	free(in);
	/* no header/body separator */
	edit_s("A: 1\r\nX-Mailer: m", &e, "A: 1\r\n");
}

/* 1000 Received lines (some folded) under salvod's own: one pass leaves
 * salvod's and the rest byte-exact. */
static void test_edit_many_received(void **state)
{
	const struct msg_header_edit e = {.own_received = true, .drop_received = true, .hide_source = true};
	size_t cap = 1000 * 64 + 4096, len = 0, wlen = 0;
	char *msg = malloc(cap), *want = malloc(cap);
	(void)state;

	assert_non_null(msg);
	assert_non_null(want);
	len += (size_t)sprintf(msg, "%s", OWN);
	wlen += (size_t)sprintf(want, "%s", OWN_HIDDEN);
	for (int i = 0; i < 1000; i++)
		len += (size_t)sprintf(msg + len, i % 3 ? "Received: from hop%d\r\n" : "Received: from hop%d\r\n\tfolded\r\n", i);
	len += (size_t)sprintf(msg + len, "Subject: kept\r\n\r\nReceived: body\r\n");
	wlen += (size_t)sprintf(want + wlen, "Subject: kept\r\n\r\nReceived: body\r\n");
	edit(msg, len, &e, want);
	free(msg);
	free(want);
}

static void test_edit_message_id(void **state)
{
	const struct msg_header_edit add = {.own_received = true, .message_id = "<1.2@mta.test>"};
	const struct msg_header_edit add_no_own = {.own_received = true, .drop_own_received = true,
						   .message_id = "<1.2@mta.test>"};
	char *in = cat(OWN, "Subject: s\r\n\r\nMessage-ID: <body@x>\r\n"), *want;
	(void)state;

	/* none in the header block (the body's does not count): added after salvod's Received */
	want = cat(OWN, "Message-ID: <1.2@mta.test>\r\nSubject: s\r\n\r\nMessage-ID: <body@x>\r\n");
	edit_s(in, &add, want);
	free(want);
	/* without salvod's Received: at the top */
	edit_s(in, &add_no_own, "Message-ID: <1.2@mta.test>\r\nSubject: s\r\n\r\nMessage-ID: <body@x>\r\n");
	free(in);
	/* the message has one (any case, folded): never a second */
	in = cat(OWN, "message-id:\r\n <mine@x>\r\n\r\nb");
	edit_s(in, &add, in);
	free(in);
	/* no separator at all */
	in = cat(OWN, "Subject: s");
	want = cat(OWN, "Message-ID: <1.2@mta.test>\r\nSubject: s");
	edit_s(in, &add, want);
	free(in);
	free(want);
	/* "Message-IDs:" is another field */
	edit_s("Message-IDs: x\r\n\r\n", &add_no_own, "Message-ID: <1.2@mta.test>\r\nMessage-IDs: x\r\n\r\n");
}

/* retain-x-job / retain-x-virtual-mta: found, value read, left in place */
static void test_take_keep(void **state)
{
	char msg[] = "X-Virtual-MTA: v1\r\nX-Campaign: c7\r\nX-Job: j\r\n\r\n", v[16], j[16];
	size_t len = strlen(msg);
	struct msg_header_want w[] = {
		{.name = "X-Virtual-MTA", .out = v, .cap = sizeof(v), .keep = true},
		{.name = "X-Campaign", .out = j, .cap = sizeof(j)},
	};
	(void)state;

	assert_int_equal(msg_headers_take(msg, &len, w, 2), 1);
	assert_string_equal(v, "v1");
	assert_string_equal(j, "c7");
	assert_int_equal(w[0].found, 1);
	assert_int_equal(len, strlen("X-Virtual-MTA: v1\r\nX-Job: j\r\n\r\n"));
	assert_memory_equal(msg, "X-Virtual-MTA: v1\r\nX-Job: j\r\n\r\n", len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_take),
		cmocka_unit_test(test_acct_headers),
		cmocka_unit_test(test_long_value_cut),
		cmocka_unit_test(test_take_many),
		cmocka_unit_test(test_take_huge),
		cmocka_unit_test(test_edit_received),
		cmocka_unit_test(test_edit_remove),
		cmocka_unit_test(test_edit_many_received),
		cmocka_unit_test(test_edit_message_id),
		cmocka_unit_test(test_take_keep),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
