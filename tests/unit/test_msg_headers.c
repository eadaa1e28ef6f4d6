/* test_msg_headers.c - taking X-Virtual-MTA / X-Job out of a header block. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_take),
		cmocka_unit_test(test_long_value_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
