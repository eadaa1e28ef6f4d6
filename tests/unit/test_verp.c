/* test_verp.c - signed VERP return paths: round trip, forgery, malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "engine/verp.h"

static const uint8_t KEY[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static void test_round_trip(void **state)
{
	char a[VERP_MAX], b[VERP_MAX + 2];
	uint64_t id;
	uint32_t idx;
	(void)state;

	assert_int_equal(verp_encode(KEY, 0x001a2b3c4d5e6f70ull, 17, "bounces.example.com", a, sizeof(a)), 0);
	assert_int_equal(strncmp(a, "b-001a2b3c4d5e6f70-17-", 22), 0);
	assert_non_null(strstr(a, "@bounces.example.com"));
	assert_true(strchr(a, '@') - a <= 64); /* RFC 5321 local-part limit */
	assert_int_equal(verp_decode(KEY, a, &id, &idx), VERP_OK);
	assert_true(id == 0x001a2b3c4d5e6f70ull);
	assert_int_equal(idx, 17);
	/* case and angle brackets do not matter */
	snprintf(b, sizeof(b), "<%s>", a);
	for (char *c = b; *c; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 'a' + 'A');
	b[1] = 'B';
	assert_int_equal(verp_decode(KEY, b, &id, &idx), VERP_OK);
	/* another key does not verify */
	uint8_t other[32];
	memcpy(other, KEY, 32);
	other[0] ^= 1;
	assert_int_equal(verp_decode(other, a, &id, &idx), VERP_BAD_HASH);
	/* too small a buffer */
	assert_int_equal(verp_encode(KEY, 1, 2, "bounces.example.com", a, 20), -1);
}

static void test_forged_and_malformed(void **state)
{
	char a[VERP_MAX];
	uint64_t id;
	uint32_t idx;
	(void)state;

	assert_int_equal(verp_encode(KEY, 42, 3, "b.test", a, sizeof(a)), 0);
	a[strlen("b-000000000000002a-3-")] ^= 1; /* flip a hash character */
	assert_int_equal(verp_decode(KEY, a, &id, &idx), VERP_BAD_HASH);
	assert_int_equal(verp_encode(KEY, 42, 3, "b.test", a, sizeof(a)), 0);
	a[strlen("b-000000000000002")] = 'b'; /* another message id, same hash */
	assert_int_equal(verp_decode(KEY, a, &id, &idx), VERP_BAD_HASH);
	const char *bad[] = {"", "b-", "x-000000000000002a-3-0123456789ab@b.test", "b-00000000000002a-3-0123456789ab@b",
			     "b-000000000000002a--0123456789ab@b", "b-000000000000002a-3-0123456789a@b",
			     "b-000000000000002a-3-0123456789abc@b", "b-000000000000002a-99999999999-0123456789ab@b",
			     "b-00000000000000zz-3-0123456789ab@b", "postmaster@b.test"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(verp_decode(KEY, bad[i], &id, &idx), VERP_NOT_VERP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_forged_and_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
