/* test_throttle.c - GCRA rate limiting: bursts, spacing, long-run rate, waits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/config.h"
#include "engine/throttle.h"

#define SEC 1000000LL

static int passes(struct throttle *t, const struct config_rate *r, int64_t from, int64_t to, int64_t step)
{
	int n = 0;

	for (int64_t now = from; now < to; now += step)
		n += throttle_take(t, r, now, NULL);
	return n;
}

static void test_burst_sizes(void **state)
{
	struct config_rate r;
	(void)state;

	assert_int_equal(config_parse_rate("20/s", &r), 0);
	assert_int_equal(throttle_burst(&r), 20);
	assert_int_equal(config_parse_rate("3600/h", &r), 0);
	assert_int_equal(throttle_burst(&r), 1);
	assert_int_equal(config_parse_rate("100/h", &r), 0);
	assert_int_equal(throttle_burst(&r), 1);
	assert_int_equal(config_parse_rate("83/10m", &r), 0);
	assert_int_equal(throttle_burst(&r), 1);
	assert_int_equal(config_parse_rate("600/m", &r), 0);
	assert_int_equal(throttle_burst(&r), 10);
}

static void test_rate_over_time(void **state)
{
	struct config_rate r;
	struct throttle t = {0};
	int n;
	(void)state;

	/* 20/s probed every ms for 10 s: the burst plus 20 per second */
	assert_int_equal(config_parse_rate("20/s", &r), 0);
	n = passes(&t, &r, 5 * SEC, 15 * SEC, 1000);
	assert_in_range(n, 200, 220);
	/* a rested bucket lets exactly the burst through at one instant */
	t.tat_us = 0;
	assert_int_equal(passes(&t, &r, 100 * SEC, 100 * SEC + 1, 1), 1);
	for (int i = 0; i < 19; i++)
		assert_true(throttle_take(&t, &r, 100 * SEC, NULL));
	assert_false(throttle_take(&t, &r, 100 * SEC, NULL));
	/* 83/10m over an hour: 6 * 83 (+ 1 for the burst) */
	assert_int_equal(config_parse_rate("83/10m", &r), 0);
	t.tat_us = 0;
	n = passes(&t, &r, 0, 3600 * SEC, SEC / 10);
	assert_in_range(n, 490, 499); /* probes up to 0.1 s late lose that time */
}

static void test_wait(void **state)
{
	struct config_rate r;
	struct throttle t = {0};
	int64_t wait = -1;
	(void)state;

	assert_int_equal(config_parse_rate("1/s", &r), 0);
	assert_true(throttle_take(&t, &r, 10 * SEC, &wait));
	assert_false(throttle_take(&t, &r, 10 * SEC + 250000, &wait));
	assert_int_equal(wait, 750000);
	assert_false(throttle_peek(&t, &r, 10 * SEC + 999999, &wait));
	assert_int_equal(wait, 1);
	assert_true(throttle_peek(&t, &r, 11 * SEC, NULL));
	assert_true(throttle_take(&t, &r, 11 * SEC, NULL));
}

static void test_unlimited(void **state)
{
	struct config_rate r = {0, 0};
	struct throttle t = {0};
	(void)state;

	for (int i = 0; i < 100000; i++)
		assert_true(throttle_take(&t, &r, 5, NULL));
	assert_int_equal(t.tat_us, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_sizes),
		cmocka_unit_test(test_rate_over_time),
		cmocka_unit_test(test_wait),
		cmocka_unit_test(test_unlimited),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
