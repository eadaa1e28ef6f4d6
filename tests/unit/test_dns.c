/* test_dns.c - the raw DNS answer walker that gives MX answers their TTL:
 * valid answers, compression, and hostile packets (truncation at every byte,
 * pointer loops, lengths past the end) placed against a guard page. */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_min_ttl),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_no_answers),
		cmocka_unit_test(test_pointer_loop_and_bad_labels),
		cmocka_unit_test(test_status_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
