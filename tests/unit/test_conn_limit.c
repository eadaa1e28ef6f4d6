/*
 * test_conn_limit.c - the inbound caps (net/conn_limit.c) and the per-address
 * event windows (net/addr_window.c): trusted sessions counted apart, IPv6
 * counted per /64, slots freed at zero, check-and-count in one step.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "net/addr_window.h"
#include "net/conn_limit.h"

static struct sockaddr_storage v4(const char *ip)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *s = (struct sockaddr_in *)&ss;

	s->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, ip, &s->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

	s->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, ip, &s->sin6_addr), 1);
	return ss;
}

#define SA(x) ((const struct sockaddr *)&(x))

static void untrusted_caps(void **state)
{
	struct conn_limit cl;
	struct sockaddr_storage a = v4("192.0.2.1"), b = v4("192.0.2.2");

	(void)state;
	assert_int_equal(conn_limit_init(&cl, 3, 2), 0);
	assert_int_equal(conn_limit_acquire(&cl, SA(a), false, 0), CONN_OK);
	assert_int_equal(conn_limit_acquire(&cl, SA(a), false, 0), CONN_OK);
	assert_int_equal(conn_limit_acquire(&cl, SA(a), false, 0), CONN_TOO_MANY_FROM_IP);
	assert_int_equal(conn_limit_acquire(&cl, SA(b), false, 0), CONN_OK);
	assert_int_equal(conn_limit_acquire(&cl, SA(b), false, 0), CONN_TOO_MANY);
	conn_limit_release(&cl, SA(a), false);
	assert_int_equal(conn_limit_acquire(&cl, SA(b), false, 0), CONN_OK);
	/* a source's own cap replaces the default */
	conn_limit_release(&cl, SA(b), false);
	assert_int_equal(conn_limit_acquire(&cl, SA(b), false, 1), CONN_TOO_MANY_FROM_IP);
	conn_limit_fini(&cl);
}

static void trusted_apart(void **state)
{
	struct conn_limit cl;
	struct sockaddr_storage esp = v4("10.0.0.5"), x = v4("198.51.100.7");

	(void)state;
	assert_int_equal(conn_limit_init(&cl, 2, 1), 0);
	assert_int_equal(conn_limit_acquire(&cl, SA(x), false, 0), CONN_OK);
	assert_int_equal(conn_limit_acquire(&cl, SA(x), false, 0), CONN_TOO_MANY_FROM_IP);
	/* strangers at their caps do not lock out the trusted injector */
	for (int i = 0; i < 500; i++)
		assert_int_equal(conn_limit_acquire(&cl, SA(esp), true, 0), CONN_OK);
	assert_int_equal(cl.total, 1);
	assert_int_equal(cl.total_trusted, 500);
	for (int i = 0; i < 500; i++)
		conn_limit_release(&cl, SA(esp), true);
	/* unless its source sets a cap */
	assert_int_equal(conn_limit_acquire(&cl, SA(esp), true, 2), CONN_OK);
	assert_int_equal(conn_limit_acquire(&cl, SA(esp), true, 2), CONN_OK);
	assert_int_equal(conn_limit_acquire(&cl, SA(esp), true, 2), CONN_TOO_MANY_FROM_IP);
	conn_limit_release(&cl, SA(esp), true);
	conn_limit_release(&cl, SA(esp), true);
	conn_limit_release(&cl, SA(x), false);
	assert_int_equal(cl.total, 0);
	assert_int_equal(cl.total_trusted, 0);
	for (size_t i = 0; i < cl.n_buckets; i++)
		assert_null(cl.buckets[i]); /* nothing left behind */
	conn_limit_fini(&cl);
}

static void ipv6_per_64(void **state)
{
	struct conn_limit cl;
	struct sockaddr_storage a = v6("2001:db8:1:2::1"), b = v6("2001:db8:1:2:ffff:1:2:3"),
				c = v6("2001:db8:1:3::1"), m = v6("::ffff:192.0.2.1"), m4 = v4("192.0.2.1");
	uint8_t k1[16], k2[16];

	(void)state;
	assert_int_equal(conn_limit_init(&cl, 0, 1), 0);
	assert_int_equal(conn_limit_acquire(&cl, SA(a), false, 0), CONN_OK);
	/* another address of the same /64 is the same client */
	assert_int_equal(conn_limit_acquire(&cl, SA(b), false, 0), CONN_TOO_MANY_FROM_IP);
	assert_int_equal(conn_limit_acquire(&cl, SA(c), false, 0), CONN_OK);
	conn_limit_release(&cl, SA(b), false); /* released by any address of the /64 */
	assert_int_equal(conn_limit_acquire(&cl, SA(a), false, 0), CONN_OK);
	conn_limit_release(&cl, SA(a), false);
	conn_limit_release(&cl, SA(c), false);
	conn_limit_fini(&cl);
	/* a v4-mapped address is the IPv4 client, whole */
	addr_window_key(SA(m), k1);
	addr_window_key(SA(m4), k2);
	assert_memory_equal(k1, k2, 16);
	assert_int_equal(k1[15], 1);
}

static void window_counts(void **state)
{
	struct addr_window w;
	struct sockaddr_storage a = v4("203.0.113.9"), b = v4("203.0.113.10");

	(void)state;
	assert_int_equal(addr_window_init(&w, 3, 1000), 0);
	assert_true(addr_window_take(&w, SA(a), 0));
	assert_true(addr_window_take(&w, SA(a), 10));
	assert_false(addr_window_full(&w, SA(a), 20));
	assert_true(addr_window_take(&w, SA(a), 20));
	assert_true(addr_window_full(&w, SA(a), 30));
	assert_false(addr_window_take(&w, SA(a), 30)); /* refused, not counted */
	assert_false(addr_window_full(&w, SA(b), 30));
	addr_window_give(&w, SA(a));
	assert_false(addr_window_full(&w, SA(a), 40));
	assert_true(addr_window_take(&w, SA(a), 40));
	assert_false(addr_window_take(&w, SA(a), 999));
	/* the window is over: a fresh count */
	assert_false(addr_window_full(&w, SA(a), 1000));
	assert_true(addr_window_take(&w, SA(a), 1000));
	addr_window_fini(&w);
}

/* A flood of distinct addresses reuses slots: memory stays bounded and the
 * table keeps working. */
static void window_flood(void **state)
{
	struct addr_window w;

	(void)state;
	assert_int_equal(addr_window_init(&w, 1, 60000), 0);
	for (uint32_t i = 0; i < 100000; i++) {
		struct sockaddr_storage ss = {0};
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;

		s->sin_family = AF_INET;
		s->sin_addr.s_addr = htonl(0x0a000000u + i);
		assert_true(addr_window_take(&w, SA(ss), 5));
	}
	struct sockaddr_storage last = v4("10.1.134.159"); /* 10.0.0.0 + 99999 */
	assert_false(addr_window_take(&w, SA(last), 6));
	addr_window_fini(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(untrusted_caps), cmocka_unit_test(trusted_apart), cmocka_unit_test(ipv6_per_64),
		cmocka_unit_test(window_counts), cmocka_unit_test(window_flood),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
