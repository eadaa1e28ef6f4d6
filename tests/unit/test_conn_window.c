/* test_conn_window.c - a unit's session window (grows on success while in
 * use, shrinks on failure, capped) and sessions by backlog (carry estimate,
 * want-one-more), alone and driven like a queue would drive them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/conn_window.h"

/* How many sessions a unit ends up with when the queue opens one whenever
 * the backlog wants it and the window allows, and every session delivers
 * `rounds` transactions of us_per_txn each (one recipient). */
static unsigned drive(struct conn_window *cw, size_t ready, unsigned max, int64_t us_per_txn, unsigned rounds)
{
	unsigned open = 0;

	for (unsigned r = 0; r < rounds; r++) {
		while (conn_window_want(ready, open * conn_window_carry(cw)) && conn_window_allows(cw, open, max))
			open++;
		for (unsigned s = 0; s < open; s++) {
			conn_window_sample(cw, 1, us_per_txn);
			conn_window_success(cw, open, max);
		}
	}
	return open;
}

static void test_starts_at_one(void **state)
{
	struct conn_window cw;
	(void)state;

	conn_window_init(&cw);
	assert_true(conn_window_allows(&cw, 0, 20));
	assert_false(conn_window_allows(&cw, 1, 20));
	assert_false(conn_window_allows(&cw, 0, 0));
}

static void test_grows_only_in_use(void **state)
{
	struct conn_window cw;
	(void)state;

	conn_window_init(&cw);
	conn_window_success(&cw, 1, 20); /* 1 + 1/1 */
	assert_true(conn_window_allows(&cw, 1, 20));
	assert_false(conn_window_allows(&cw, 2, 20));
	/* Still one session open: a thousand successes on it earn nothing more. */
	for (int i = 0; i < 1000; i++)
		conn_window_success(&cw, 1, 20);
	assert_false(conn_window_allows(&cw, 2, 20));
	/* Two open: 2 -> 2.5 -> 2.9 -> 3.24: the third session after three. */
	conn_window_success(&cw, 2, 20);
	conn_window_success(&cw, 2, 20);
	assert_false(conn_window_allows(&cw, 2, 20));
	conn_window_success(&cw, 2, 20);
	assert_true(conn_window_allows(&cw, 2, 20));
}

static void test_never_above_max(void **state)
{
	struct conn_window cw;
	(void)state;

	conn_window_init(&cw);
	for (unsigned i = 0; i < 10000; i++)
		conn_window_success(&cw, 20, 5);
	assert_true(cw.window <= 5.0);
	assert_true(conn_window_allows(&cw, 4, 5));
	assert_false(conn_window_allows(&cw, 5, 5));
	/* A cap lowered later (backoff) still rules. */
	assert_false(conn_window_allows(&cw, 2, 2));
}

static void test_failure_shrinks(void **state)
{
	struct conn_window cw;
	(void)state;

	conn_window_init(&cw);
	for (unsigned n = 1; n < 8; n++)
		while (!conn_window_allows(&cw, n, 20))
			conn_window_success(&cw, n, 20);
	assert_true(conn_window_allows(&cw, 7, 20));
	/* About one session per window's worth of failures. */
	for (int i = 0; i < 8; i++)
		conn_window_failure(&cw);
	assert_false(conn_window_allows(&cw, 7, 20));
	assert_true(conn_window_allows(&cw, 6, 20));
	for (int i = 0; i < 1000; i++)
		conn_window_failure(&cw);
	assert_true(conn_window_allows(&cw, 0, 20));
	assert_false(conn_window_allows(&cw, 1, 20)); /* floor: one session */
}

static void test_carry_estimate(void **state)
{
	struct conn_window cw;
	(void)state;

	conn_window_init(&cw);
	assert_int_equal((int)conn_window_carry(&cw), 1000000 / (int)CONN_WINDOW_START_US);
	for (int i = 0; i < 20; i++)
		conn_window_sample(&cw, 1, 2000);
	assert_in_range((int)conn_window_carry(&cw), 495, 505);
	/* Per recipient: 5 recipients in 5 ms is 1 ms each. */
	for (int i = 0; i < 60; i++)
		conn_window_sample(&cw, 5, 5000);
	assert_in_range((int)conn_window_carry(&cw), 990, 1010);
	/* One slow transaction moves the mean, it does not replace it. */
	conn_window_sample(&cw, 1, 1000000);
	assert_in_range((int)conn_window_carry(&cw), 5, 200);
	assert_true(conn_window_carry(&cw) >= 1);
	/* Nonsense samples are ignored; a zero duration is not infinite. */
	conn_window_init(&cw);
	conn_window_sample(&cw, 0, 100);
	conn_window_sample(&cw, 3, -5);
	assert_int_equal(cw.samples, 0);
	for (int i = 0; i < 20; i++)
		conn_window_sample(&cw, 1, 0);
	assert_true(conn_window_carry(&cw) <= 1000000);
}

static void test_want(void **state)
{
	(void)state;
	assert_false(conn_window_want(0, 0));
	assert_true(conn_window_want(1, 0));        /* work and no session */
	assert_false(conn_window_want(13, 100));    /* a long tail: one session is plenty */
	assert_true(conn_window_want(101, 100));
	assert_false(conn_window_want(100, 100));
}

/* Thirteen messages for a domain whose sessions do 5 ms transactions: one
 * session, however long it runs. */
static void test_long_tail_one_session(void **state)
{
	struct conn_window cw;
	(void)state;

	conn_window_init(&cw);
	assert_int_equal(drive(&cw, 13, 20, 5000, 50), 1);
}

/* A deep backlog grows to what it needs: 4,000 ready, 5 ms per transaction
 * (200 a second per session) wants 20 sessions; capped at max-smtp-out. */
static void test_backlog_grows_to_cap(void **state)
{
	struct conn_window cw;
	(void)state;

	conn_window_init(&cw);
	assert_int_equal(drive(&cw, 4000, 20, 5000, 100), 20);
	conn_window_init(&cw);
	assert_int_equal(drive(&cw, 4000, 8, 5000, 100), 8);
	/* 1,000 ready at 200 a second: 5 sessions, not the cap. */
	conn_window_init(&cw);
	assert_int_equal(drive(&cw, 1000, 20, 5000, 100), 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_starts_at_one),
		cmocka_unit_test(test_grows_only_in_use),
		cmocka_unit_test(test_never_above_max),
		cmocka_unit_test(test_failure_shrinks),
		cmocka_unit_test(test_carry_estimate),
		cmocka_unit_test(test_want),
		cmocka_unit_test(test_long_tail_one_session),
		cmocka_unit_test(test_backlog_grows_to_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
