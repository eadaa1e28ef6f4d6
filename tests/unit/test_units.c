/*
 * test_units.c - the configuration value parsers of config_units.c:
 * durations, rates, sizes, integers, booleans, CIDR networks (parsing,
 * masking, IPv4-mapped IPv6, matching, formatting) and socket addresses,
 * each in its valid forms and its malformed ones (empty, junk, signs,
 * whitespace, overflow, unknown units, out-of-range prefixes and ports).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_addr.h"

#include <arpa/inet.h>
#include <string.h>

#include "core/config.h"

#define SEC 1000ULL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

/* for messages: the parsers are also fed NULL */
static const char *str(const char *s)
{
	return s ? s : "(null)";
}

/* ---- durations ---------------------------------------------------------- */

static uint64_t dur(const char *s)
{
	uint64_t ms = 12345;

	assert_int_equal(config_parse_duration(s, &ms), 0);
	return ms;
}

static void dur_bad(const char *s)
{
	uint64_t ms = 0;

	if (config_parse_duration(s, &ms) != -1)
		fail_msg("duration \"%s\" accepted as %llu ms", str(s), (unsigned long long)ms);
}

static void test_duration_valid(void **state)
{
	assert_int_equal(dur("30s"), 30 * SEC);
	assert_int_equal(dur("15m"), 15 * MIN);
	assert_int_equal(dur("4h"), 4 * HOUR);
	assert_int_equal(dur("4d"), 4 * DAY);
	assert_int_equal(dur("2w"), 14 * DAY);
	assert_int_equal(dur("500ms"), 500);
	assert_int_equal(dur("90"), 90 * SEC);   /* bare number: seconds */
	assert_int_equal(dur("0"), 0);
	assert_int_equal(dur("0s"), 0);
	assert_int_equal(dur("007m"), 7 * MIN);
	assert_int_equal(dur("4d12h"), 4 * DAY + 12 * HOUR);
	assert_int_equal(dur("1h30m"), HOUR + 30 * MIN);
	assert_int_equal(dur("1m30s"), MIN + 30 * SEC);
	assert_int_equal(dur("1w2d3h4m5s6ms"), 9 * DAY + 3 * HOUR + 4 * MIN + 5 * SEC + 6);
	assert_int_equal(dur("1s500ms"), 1500);
	/* the largest that fits */
	assert_int_equal(dur("18446744073709551615ms"), UINT64_MAX);
	assert_int_equal(dur("18446744073709551s"), 18446744073709551000ULL);
}

static void test_duration_malformed(void **state)
{
	dur_bad(NULL);
	dur_bad("");
	dur_bad("s");
	dur_bad("ms");
	dur_bad("-5s");
	dur_bad("+5s");
	dur_bad(" 5s");
	dur_bad("5s ");
	dur_bad("5 s");
	dur_bad("15x");
	dur_bad("15M");        /* upper case is not minutes */
	dur_bad("15S");
	dur_bad("15sec");
	dur_bad("15min");
	dur_bad("1.5h");
	dur_bad("1h30");       /* a bare number only on its own */
	dur_bad("30m1h");      /* largest unit first */
	dur_bad("1h1h");       /* each unit once */
	dur_bad("1s1s");
	dur_bad("1ms1s");
	dur_bad("5s,");
	dur_bad("0x10");
	dur_bad("99999999999999999999s"); /* digits overflow */
	dur_bad("99999999999999999999");
	dur_bad("18446744073709551616ms");
	dur_bad("18446744073709552s");     /* the multiplication overflows */
	dur_bad("30600000000w");
	dur_bad("18446744073709551615ms1ms"); /* ms twice */
	dur_bad("213503982334d15h");          /* the sum overflows */
	assert_int_equal(dur("213503982334d14h"), 213503982334ULL * DAY + 14 * HOUR);
}

/* ---- rates -------------------------------------------------------------- */

static void rate_is(const char *s, uint64_t count, uint64_t per_ms)
{
	struct config_rate r = {0, 0};

	if (config_parse_rate(s, &r) != 0)
		fail_msg("rate \"%s\" rejected", s);
	assert_int_equal(r.count, count);
	assert_int_equal(r.per_ms, per_ms);
}

static void rate_bad(const char *s)
{
	struct config_rate r;

	if (config_parse_rate(s, &r) != -1)
		fail_msg("rate \"%s\" accepted", str(s));
}

static void test_rate(void **state)
{
	rate_is("1000/h", 1000, HOUR);
	rate_is("50/m", 50, MIN);
	rate_is("10/s", 10, SEC);
	rate_is("3/d", 3, DAY);
	rate_is("1/w", 1, 7 * DAY);
	rate_is("5/ms", 5, 1);
	rate_is("83/10m", 83, 10 * MIN);
	rate_is("5/2h", 5, 2 * HOUR);
	rate_is("7/30s", 7, 30 * SEC);
	rate_is("1/1h30m", 1, HOUR + 30 * MIN);
	rate_is("0/h", 0, HOUR);
	rate_is("18446744073709551615/s", UINT64_MAX, SEC);

	rate_bad(NULL);
	rate_bad("");
	rate_bad("/h");
	rate_bad("10");
	rate_bad("10/");
	rate_bad("10/x");
	rate_is("10/hour", 10, HOUR); /* PowerMTA's spellings */
	rate_is("1/min", 1, MIN);
	rate_is("1000/day", 1000, DAY);
	rate_is("10/Day", 10, DAY); /* the words in any case, minute and second too */
	rate_is("10/minute", 10, MIN);
	rate_is("5/Second", 5, SEC);
	rate_bad("10/hours");
	rate_bad("10/minutes");
	rate_bad("10/H");       /* one letter: lower case only (M is not minutes) */
	rate_bad("10/10");     /* denominator needs a unit */
	rate_bad("10/0s");     /* zero denominators */
	rate_bad("10/0m");
	rate_bad("10/0h0m");
	rate_bad("-10/h");
	rate_bad("10/-1h");
	rate_bad("10 /h");
	rate_bad("10/ h");
	rate_bad("10/h ");
	rate_bad("10/h/");
	rate_bad("10/hh");
	rate_bad("10/h1");
	rate_bad("1.5/h");
	rate_bad("99999999999999999999/h");
	rate_bad("1/99999999999999999999h");
}

/* ---- sizes, integers, booleans ------------------------------------------ */

static void size_is(const char *s, uint64_t want)
{
	uint64_t n = 1;

	if (config_parse_size(s, &n) != 0)
		fail_msg("size \"%s\" rejected", s);
	assert_int_equal(n, want);
}

static void size_bad(const char *s)
{
	uint64_t n;

	if (config_parse_size(s, &n) != -1)
		fail_msg("size \"%s\" accepted", str(s));
}

static void test_size(void **state)
{
	size_is("123", 123);
	size_is("0", 0);
	size_is("123B", 123);
	size_is("512k", 512 << 10);
	size_is("512K", 512 << 10);
	size_is("512KB", 512 << 10);
	size_is("10m", 10 << 20);
	size_is("10M", 10 << 20);
	size_is("10MB", 10 << 20);
	size_is("1g", 1ULL << 30);
	size_is("1G", 1ULL << 30);
	size_is("4GB", 4ULL << 30);
	size_is("17179869183G", 17179869183ULL << 30);
	/* PowerMTA's N{b|k|m|g|t} */
	size_is("100b", 100);
	size_is("2t", 2ULL << 40);
	size_is("10T", 10ULL << 40);

	size_bad(NULL);
	size_bad("");
	size_bad("B");
	size_bad("M");
	size_bad("-1");
	size_bad("+1");
	size_bad(" 1M");
	size_bad("1M ");
	size_bad("1 M");
	size_bad("1.5M");
	size_bad("10Q");
	size_bad("16777216t");
	size_bad("10Mb");
	size_bad("10mb");
	size_bad("10MBB");
	size_bad("10bB");
	size_bad("b");
	size_bad("10BM");
	size_bad("10KM");
	size_bad("99999999999999999999");
	size_bad("17179869184G"); /* 2^64 bytes */
}

static void test_uint(void **state)
{
	uint64_t n = 0;

	assert_int_equal(config_parse_uint("0", 0, 10, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(config_parse_uint("10", 0, 10, &n), 0);
	assert_int_equal(n, 10);
	assert_int_equal(config_parse_uint("18446744073709551615", 0, UINT64_MAX, &n), 0);
	assert_int_equal(n, UINT64_MAX);
	assert_int_equal(config_parse_uint("11", 0, 10, &n), -1);
	assert_int_equal(config_parse_uint("0", 1, 10, &n), -1);
	assert_int_equal(config_parse_uint("", 0, 10, &n), -1);
	assert_int_equal(config_parse_uint(NULL, 0, 10, &n), -1);
	assert_int_equal(config_parse_uint("-1", 0, 10, &n), -1);
	assert_int_equal(config_parse_uint("+1", 0, 10, &n), -1);
	assert_int_equal(config_parse_uint(" 1", 0, 10, &n), -1);
	assert_int_equal(config_parse_uint("1 ", 0, 10, &n), -1);
	assert_int_equal(config_parse_uint("0x1", 0, 10, &n), -1);
	assert_int_equal(config_parse_uint("18446744073709551616", 0, UINT64_MAX, &n), -1);
}

static void test_bool(void **state)
{
	static const char *const yes[] = {"yes", "YES", "Yes", "true", "True", "on", "ON", "1"};
	static const char *const no[] = {"no", "NO", "false", "FALSE", "off", "Off", "0"};
	static const char *const bad[] = {"", "y", "n", "2", "yess", " yes", "yes ", "enable", "-1"};
	bool b;

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		b = false;
		assert_int_equal(config_parse_bool(yes[i], &b), 0);
		assert_true(b);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		b = true;
		assert_int_equal(config_parse_bool(no[i], &b), 0);
		assert_false(b);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (config_parse_bool(bad[i], &b) != -1)
			fail_msg("bool \"%s\" accepted", bad[i]);
	assert_int_equal(config_parse_bool(NULL, &b), -1);
}

/* ---- CIDR --------------------------------------------------------------- */

/* s parses and formats back as want. */
static void cidr_is(const char *s, const char *want)
{
	struct config_cidr c;
	char buf[64];

	if (config_parse_cidr(s, &c) != 0)
		fail_msg("CIDR \"%s\" rejected", s);
	assert_int_equal(config_cidr_format(&c, buf, sizeof(buf)), 0);
	assert_string_equal(buf, want);
}

static void cidr_bad(const char *s)
{
	struct config_cidr c;

	if (config_parse_cidr(s, &c) != -1)
		fail_msg("CIDR \"%s\" accepted", str(s));
}

static void test_cidr_valid(void **state)
{
	struct config_cidr c;

	assert_int_equal(config_parse_cidr("10.1.2.3/8", &c), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 8);
	assert_memory_equal(c.addr, "\x0a\x00\x00\x00", 4); /* host bits masked */

	cidr_is("127.0.0.1", "127.0.0.1/32");
	cidr_is("10.0.0.0/8", "10.0.0.0/8");
	cidr_is("10/8", "10.0.0.0/8");
	cidr_is("192.168/16", "192.168.0.0/16");
	cidr_is("172.16.5/24", "172.16.5.0/24");
	cidr_is("0/0", "0.0.0.0/0");
	cidr_is("0.0.0.0/0", "0.0.0.0/0");
	cidr_is("255.255.255.255/32", "255.255.255.255/32");
	cidr_is("10.255.255.255/9", "10.128.0.0/9");
	cidr_is("10.1.2.3/31", "10.1.2.2/31");
	cidr_is("1.2.3.4/0", "0.0.0.0/0");
	cidr_is("::1", "::1/128");
	cidr_is("::/0", "::/0");
	cidr_is("2001:db8::/32", "2001:db8::/32");
	cidr_is("2001:db8:ffff::1/33", "2001:db8:8000::/33");
	cidr_is("fe80::1/10", "fe80::/10");
	cidr_is("2001:db8::1/127", "2001:db8::/127");
	/* IPv4-mapped IPv6 networks become the IPv4 network they denote */
	cidr_is("::ffff:10.0.0.0/104", "10.0.0.0/8");
	cidr_is("::ffff:127.0.0.1", "127.0.0.1/32");
	cidr_is("::ffff:0:0/96", "0.0.0.0/0");
	cidr_is("::ffff:0:0/95", "::fffe:0:0/95"); /* wider than mapped space: stays IPv6 */
}

static void test_cidr_malformed(void **state)
{
	static const char *const bad[] = {
		"", "/", "/8", "10/", "10.0.0.0/", "10.0.0.0/33", "10/33", "0/99999999999",
		"::/129", "::1/200", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8/8", "10.0.0.0/8 ",
		" 10.0.0.0/8", "10.0.0.0 /8", "10.0.0.0/ 8", "10.0.0.0/x", "10", "10.1",
		"10.1.2", "256.0.0.0", "10.0.0.256/32", "1.2.3.4.5", "1.2.3.4.5/32", "1..2.3",
		"1.2.3.", ".1.2.3", "010.0.0.0/8", "10.00.0.0/16", "-1.0.0.0/8", "a.b.c.d",
		"example.com", "::g", ":::1", "1::2::3", "::1/0x10", "10.0.0.0/0008",
		"2001:db8::/32x", "[::1]/128",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cidr_bad(bad[i]);
	cidr_bad(NULL);
	/* longer than any address text */
	cidr_bad("0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000/128");
}


static bool matches(const char *net, const char *ip)
{
	struct config_cidr c;
	struct sockaddr_storage ss = sa_of(ip);

	assert_int_equal(config_parse_cidr(net, &c), 0);
	return config_cidr_match(&c, (struct sockaddr *)&ss);
}

static void test_cidr_match(void **state)
{
	assert_true(matches("10/8", "10.200.3.4"));
	assert_false(matches("10/8", "11.0.0.1"));
	assert_true(matches("0/0", "203.0.113.9"));
	assert_true(matches("127.0.0.1", "127.0.0.1"));
	assert_false(matches("127.0.0.1", "127.0.0.2"));
	assert_true(matches("10.128.0.0/9", "10.200.0.1"));
	assert_false(matches("10.128.0.0/9", "10.100.0.1"));
	assert_true(matches("192.168.1.4/30", "192.168.1.7"));
	assert_false(matches("192.168.1.4/30", "192.168.1.8"));
	/* IPv4-mapped IPv6 clients match IPv4 rules */
	assert_true(matches("127.0.0.1", "::ffff:127.0.0.1"));
	assert_true(matches("10/8", "::ffff:10.1.1.1"));
	assert_true(matches("0/0", "::ffff:1.2.3.4"));
	assert_false(matches("10/8", "::ffff:11.1.1.1"));
	/* ... and mapped rules match plain IPv4 clients */
	assert_true(matches("::ffff:10.0.0.0/104", "10.9.9.9"));
	/* families do not mix otherwise */
	assert_false(matches("::/0", "10.1.1.1"));
	assert_false(matches("::/0", "::ffff:10.1.1.1"));
	assert_false(matches("0/0", "::1"));
	assert_true(matches("::/0", "2001:db8::1"));
	assert_true(matches("::1", "::1"));
	assert_false(matches("::1", "::2"));
	assert_true(matches("2001:db8::/33", "2001:db8:7fff::1"));
	assert_false(matches("2001:db8::/33", "2001:db8:8000::1"));

	struct config_cidr c;
	struct sockaddr sa = {.sa_family = AF_UNIX};
	assert_int_equal(config_parse_cidr("0/0", &c), 0);
	assert_false(config_cidr_match(&c, &sa));
	assert_false(config_cidr_match(&c, NULL));

	char small[8];
	assert_int_equal(config_parse_cidr("10/8", &c), 0);
	assert_int_equal(config_cidr_format(&c, small, sizeof(small)), -1);
}

/* ---- addresses ---------------------------------------------------------- */

static void addr_is(const char *s, uint16_t def, int family, const char *text)
{
	struct config_addr a;

	if (config_parse_addr(s, def, &a) != 0)
		fail_msg("address \"%s\" rejected", s);
	assert_string_equal(a.text, text);
	assert_int_equal(a.sa.ss_family, family);
	if (family == AF_INET) {
		assert_int_equal(a.salen, sizeof(struct sockaddr_in));
	} else {
		assert_int_equal(a.salen, sizeof(struct sockaddr_in6));
	}
}

static void addr_bad(const char *s, uint16_t def)
{
	struct config_addr a;

	if (config_parse_addr(s, def, &a) != -1)
		fail_msg("address \"%s\" accepted (default port %u)", str(s), def);
}

static void test_addr_valid(void **state)
{
	struct config_addr a;

	assert_int_equal(config_parse_addr("127.0.0.1:2525", 0, &a), 0);
	assert_string_equal(a.text, "127.0.0.1:2525");
	assert_int_equal(a.salen, sizeof(struct sockaddr_in));
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&a.sa;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 2525);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x7f000001);

	assert_int_equal(config_parse_addr("[::1]:2525", 0, &a), 0);
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a.sa;
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 2525);
	assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	assert_string_equal(a.text, "[::1]:2525");

	assert_int_equal(config_parse_addr("*:25", 0, &a), 0);
	sin = (const struct sockaddr_in *)&a.sa;
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_string_equal(a.text, "0.0.0.0:25");

	addr_is("0.0.0.0:1", 0, AF_INET, "0.0.0.0:1");
	addr_is("10.1.2.3:65535", 0, AF_INET, "10.1.2.3:65535");
	addr_is("[2001:DB8::1]:8025", 0, AF_INET6, "[2001:db8::1]:8025");
	addr_is("[::]:25", 0, AF_INET6, "[::]:25");
	addr_is("[1.2.3.4]:26", 0, AF_INET, "1.2.3.4:26");
	addr_is("127.0.0.1:0025", 0, AF_INET, "127.0.0.1:25");
	/* the default port applies only when the port is left out */
	addr_is("127.0.0.1", 53, AF_INET, "127.0.0.1:53");
	addr_is("127.0.0.1:5353", 53, AF_INET, "127.0.0.1:5353");
	addr_is("[::1]", 53, AF_INET6, "[::1]:53");
	addr_is("::1", 53, AF_INET6, "[::1]:53");
	addr_is("2001:db8::53", 53, AF_INET6, "[2001:db8::53]:53");
	addr_is("*", 25, AF_INET, "0.0.0.0:25");
}

static void test_addr_malformed(void **state)
{
	static const char *const bad[] = {
		"", ":", ":25", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:99999999999999999999", "127.0.0.1:-1", "127.0.0.1:+25", "127.0.0.1:2x",
		"127.0.0.1: 25", " 127.0.0.1:25", "127.0.0.1:25 ", "127.0.0.1 :25", "256.0.0.1:25",
		"127.0.0:25", "127.1:25", "localhost:25", "mx.example.com:25", "[::1]:", "[::1]:0",
		"[::1]:65536", "[::1]25", "[::1", "::1]:25", "[]:25", "[*]:25", "[localhost]:25",
		"[::g]:25", "*:", "*:0", "**:25", "x*:25", "1.2.3.4:25:26",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		addr_bad(bad[i], 0);
		addr_bad(bad[i], 25);
	}
	addr_bad(NULL, 25);
	/* a port is required when there is no default */
	addr_bad("127.0.0.1", 0);
	addr_bad("[::1]", 0);
	addr_bad("::1", 0);
	addr_bad("*", 0);
	/* "2001:db8::1:25" is an IPv6 address, not 2001:db8::1 port 25 */
	addr_bad("2001:db8::1:25", 0);
	addr_is("2001:db8::1:25", 53, AF_INET6, "[2001:db8::1:25]:53");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_valid),
		cmocka_unit_test(test_duration_malformed),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_uint),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_cidr_valid),
		cmocka_unit_test(test_cidr_malformed),
		cmocka_unit_test(test_cidr_match),
		cmocka_unit_test(test_addr_valid),
		cmocka_unit_test(test_addr_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
