/* test_shard.c - the domain -> shard hash: stable, case-insensitive, spread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "engine/shard.h"

static void test_known_values(void **state)
{
	/* FNV-1a 64 reference values: the hash must never change, or queues
	 * would move between shards across an upgrade. */
	assert_int_equal(shard_hash("", 0), 0xcbf29ce484222325ULL);
	assert_int_equal(shard_hash("a", 1), 0xaf63dc4c8601ec8cULL);
	assert_int_equal(shard_hash("foobar", 6), 0x85944171f73967e8ULL);
}

static void test_case_insensitive(void **state)
{
	assert_int_equal(shard_hash("Example.COM", 11), shard_hash("example.com", 11));
	for (unsigned n = 1; n < 9; n++)
		assert_int_equal(shard_for("GMAIL.com", 9, n), shard_for("gmail.com", 9, n));
}

static void test_range_and_spread(void **state)
{
	unsigned counts[4] = {0};
	char dom[32];

	for (unsigned i = 0; i < 4000; i++) {
		int n = snprintf(dom, sizeof(dom), "d%u.test", i);
		unsigned s = shard_for(dom, (size_t)n, 4);

		assert_true(s < 4);
		counts[s]++;
	}
	/* A fair hash puts 1000 +- a few dozen in each of 4 shards. */
	for (unsigned s = 0; s < 4; s++) {
		assert_true(counts[s] > 850);
		assert_true(counts[s] < 1150);
	}
	assert_int_equal(shard_for("anything.test", 13, 1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_values),
		cmocka_unit_test(test_case_insensitive),
		cmocka_unit_test(test_range_and_spread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
