/* test_dns.c - the raw DNS answer walker that gives MX answers their TTL:
 * valid answers, compression, and hostile packets (truncation at every byte,
 * pointer loops, lengths past the end) placed against a guard page; and the
 * route cache's stale-while-error decisions and retry backoff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "guard_page.h"

#include "net/dns.h"

/* example.test MX: question + two MX answers (TTL 300 and 120), the second
 * answer's owner name compressed to the question's name. */
static const unsigned char mx_answer[] = {
	0x12, 0x34, 0x81, 0x80, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
	/* question: example.test MX IN */
	7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 4, 't', 'e', 's', 't', 0, 0x00, 0x0f, 0x00, 0x01,
	/* answer 1: example.test (uncompressed) MX IN ttl 300, rdlen 9: pref 10, mx.test */
	7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 4, 't', 'e', 's', 't', 0,
	0x00, 0x0f, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x0b,
	0x00, 0x0a, 2, 'm', 'x', 4, 't', 'e', 's', 't', 0,
	/* answer 2: name pointer to offset 12, ttl 120, rdlen 4: pref 20, pointer */
	0xc0, 0x0c, 0x00, 0x0f, 0x00, 0x01, 0x00, 0x00, 0x00, 0x78, 0x00, 0x04,
	0x00, 0x14, 0xc0, 0x0c,
};

static void test_min_ttl(void **state)
{
	const unsigned char *p = (const unsigned char *)at_guard(mx_answer, sizeof(mx_answer));

	assert_int_equal(dns_answer_min_ttl(p, sizeof(mx_answer)), 120);
}

static void test_truncated_everywhere(void **state)
{
	/* Every strict prefix is malformed (or has no complete answers). */
	for (size_t n = 0; n < sizeof(mx_answer); n++) {
		const unsigned char *p = (const unsigned char *)at_guard(mx_answer, n);

		assert_int_equal(dns_answer_min_ttl(p, n), -1);
	}
}

static void test_no_answers(void **state)
{
	unsigned char pkt[sizeof(mx_answer)];

	memcpy(pkt, mx_answer, sizeof(pkt));
	pkt[7] = 0; /* ANCOUNT 0 */
	assert_int_equal(dns_answer_min_ttl(pkt, sizeof(pkt)), -1);
}

static void test_pointer_loop_and_bad_labels(void **state)
{
	unsigned char loop[] = {0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0,
				0xc0, 0x0c, 0, 15, 0, 1, /* question name points at itself */
				0xc0, 0x0c, 0, 15, 0, 1, 0, 0, 0, 5, 0, 0};
	/* A pointer is two bytes and ends the name, so a self-pointer is still
	 * bounded; what matters is no over-read: */
	const unsigned char *p = (const unsigned char *)at_guard(loop, sizeof(loop));

	assert_int_equal(dns_answer_min_ttl(p, sizeof(loop)), 5);

	/* Reserved label type 0x40/0x80 is malformed. */
	unsigned char bad[sizeof(mx_answer)];
	memcpy(bad, mx_answer, sizeof(bad));
	bad[12] = 0x47;
	assert_int_equal(dns_answer_min_ttl(bad, sizeof(bad)), -1);

	/* A label running past the end. */
	memcpy(bad, mx_answer, sizeof(bad));
	bad[12] = 63;
	p = (const unsigned char *)at_guard(bad, 40);
	assert_int_equal(dns_answer_min_ttl(p, 40), -1);

	/* RDLENGTH past the end of the packet. */
	memcpy(bad, mx_answer, sizeof(bad));
	bad[sizeof(bad) - 5] = 0x40;
	p = (const unsigned char *)at_guard(bad, sizeof(bad));
	assert_int_equal(dns_answer_min_ttl(p, sizeof(bad)), -1);
}

static void test_status_strings(void **state)
{
	assert_string_equal(dns_status_str(DNS_NULL_MX), "domain accepts no mail (null MX)");
	assert_string_equal(dns_status_str(DNS_NXDOMAIN), "domain does not exist");
	assert_string_equal(dns_status_str(DNS_TEMPFAIL), "temporary DNS failure");
}

static enum dns_cache_use use_at(uint64_t expires, uint64_t stale_until, uint64_t retry_at, bool positive,
				  uint64_t now)
{
	struct dns_cache_times t = {.expires = expires, .stale_until = stale_until, .retry_at = retry_at,
				    .positive = positive};

	return dns_cache_use(&t, now);
}

static void test_cache_use(void **state)
{
	/* positive: TTL until 1000, stale window until 1000 + 1 h */
	uint64_t exp = 1000, stale = exp + DNS_STALE_MAX_MS;

	assert_int_equal(use_at(exp, stale, 0, true, 0), DNS_USE_FRESH);
	assert_int_equal(use_at(exp, stale, 0, true, 999), DNS_USE_FRESH);
	/* expired: ask again, the old answer kept as the fallback */
	assert_int_equal(use_at(exp, stale, 0, true, 1000), DNS_USE_REFRESH);
	assert_int_equal(use_at(exp, stale, 0, true, stale - 1), DNS_USE_REFRESH);
	/* a refresh failed: stale until the retry is due, then ask again */
	assert_int_equal(use_at(exp, stale, 7000, true, 2000), DNS_USE_STALE);
	assert_int_equal(use_at(exp, stale, 7000, true, 6999), DNS_USE_STALE);
	assert_int_equal(use_at(exp, stale, 7000, true, 7000), DNS_USE_REFRESH);
	/* never past the bound, whatever the retry time says */
	assert_int_equal(use_at(exp, stale, stale + 5000, true, stale), DNS_USE_DROP);
	assert_int_equal(use_at(exp, stale, 0, true, UINT64_MAX), DNS_USE_DROP);
	/* negative answers are never served stale */
	assert_int_equal(use_at(exp, exp, 0, false, 999), DNS_USE_FRESH);
	assert_int_equal(use_at(exp, exp, 0, false, 1000), DNS_USE_DROP);
	assert_int_equal(use_at(exp, stale, 9000, false, 2000), DNS_USE_DROP);
	/* invalidated (expires 0): refresh at once, still a fallback */
	assert_int_equal(use_at(0, stale, 0, true, 500), DNS_USE_REFRESH);
}

static void test_stale_retry_backoff(void **state)
{
	assert_int_equal(dns_stale_retry_ms(0), 5000);
	assert_int_equal(dns_stale_retry_ms(1), 5000);
	assert_int_equal(dns_stale_retry_ms(2), 10000);
	assert_int_equal(dns_stale_retry_ms(3), 20000);
	assert_int_equal(dns_stale_retry_ms(6), 160000);
	assert_int_equal(dns_stale_retry_ms(7), 300000);
	assert_int_equal(dns_stale_retry_ms(100), 300000);
	assert_int_equal(dns_stale_retry_ms(UINT32_MAX), 300000);
	for (unsigned i = 1; i < 40; i++)
		assert_true(dns_stale_retry_ms(i + 1) >= dns_stale_retry_ms(i));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_min_ttl),
		cmocka_unit_test(test_cache_use),
		cmocka_unit_test(test_stale_retry_backoff),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_no_answers),
		cmocka_unit_test(test_pointer_loop_and_bad_labels),
		cmocka_unit_test(test_status_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
