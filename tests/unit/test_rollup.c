/* test_rollup.c - the pure parts of mx-rollup routing (engine/egress_rollup.c):
 * which rollup a set of MX hosts belongs to, a member's state from its DNS
 * answer, the verdict for each of its recipients (send, park, home, fail)
 * across its TTL, and the union of members' hosts that a rollup queue
 * connects to (no duplicates, by preference, bounded). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "core/config.h"
#include "engine/egress.h"

static struct dns_target tg(const char *host, const char *ip, unsigned pref)
{
	struct dns_target t;
	struct sockaddr_in *sin = (struct sockaddr_in *)&t.addr;

	memset(&t, 0, sizeof(t));
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
	t.addrlen = sizeof(*sin);
	snprintf(t.host, sizeof(t.host), "%s", host);
	t.pref = pref;
	return t;
}

static void test_rollup_for(void **state)
{
	struct config_rollup rl[] = {
		{.pattern = "*.roll.test", .queue = "roll.q"},
		{.pattern = "*.google.test", .queue = "google.rollup"},
	};
	struct config cfg;
	struct dns_target t[3];

	memset(&cfg, 0, sizeof(cfg));
	cfg.rollups = rl;
	cfg.n_rollups = 2;
	t[0] = tg("mx.other.test", "127.0.0.4", 10);
	t[1] = tg("mx-b.roll.test.", "127.0.0.3", 20); /* a trailing dot is the same host */
	t[2] = tg("aspmx.google.test", "127.0.0.5", 30);
	/* any matching host makes the domain a member; the first in order wins */
	assert_string_equal(egress_rollup_for(&cfg, t, 3, NULL), "roll.q");
	assert_null(egress_rollup_for(&cfg, t, 1, NULL));
	assert_string_equal(egress_rollup_for(&cfg, t + 2, 1, "roll.q"), "google.rollup");
	/* the rollup queue itself is never a member of itself */
	assert_null(egress_rollup_for(&cfg, t + 1, 1, "roll.q"));
	assert_null(egress_rollup_for(&cfg, t, 0, NULL));
	cfg.n_rollups = 0;
	assert_null(egress_rollup_for(&cfg, t, 3, NULL));
}

static void test_merge_union(void **state)
{
	struct dns_target out[4];
	struct dns_target a[] = {tg("mx-a.roll.test", "127.0.0.2", 10), tg("mx-b.roll.test", "127.0.0.3", 20)};
	struct dns_target b[] = {tg("mx-b.roll.test", "127.0.0.3", 20), tg("mx-c.roll.test", "127.0.0.7", 5),
				 tg("mx-d.roll.test", "127.0.0.8", 10)};
	size_t n = 0;

	n = egress_rollup_merge(out, n, 4, a, 2);
	assert_int_equal(n, 2);
	/* the same host from a second member is not added twice */
	n = egress_rollup_merge(out, n, 4, a, 2);
	assert_int_equal(n, 2);
	n = egress_rollup_merge(out, n, 4, b, 3);
	assert_int_equal(n, 4);
	/* by preference; equal preferences keep their arrival order */
	assert_string_equal(out[0].host, "mx-c.roll.test");
	assert_string_equal(out[1].host, "mx-a.roll.test");
	assert_string_equal(out[2].host, "mx-d.roll.test");
	assert_string_equal(out[3].host, "mx-b.roll.test");
}

static void test_merge_full(void **state)
{
	struct dns_target out[2];
	struct dns_target in[] = {tg("a.roll.test", "127.0.0.2", 20), tg("b.roll.test", "127.0.0.3", 30),
				  tg("c.roll.test", "127.0.0.4", 10), tg("d.roll.test", "127.0.0.5", 40)};
	size_t n = egress_rollup_merge(out, 0, 2, in, 4);

	/* full: a better preference pushes the worst out, a worse one is dropped */
	assert_int_equal(n, 2);
	assert_string_equal(out[0].host, "c.roll.test");
	assert_string_equal(out[1].host, "a.roll.test");
	/* same address under another name is another target (SNI, logs) */
	struct dns_target alias = tg("alias.roll.test", "127.0.0.2", 1);
	n = egress_rollup_merge(out, n, 2, &alias, 1);
	assert_int_equal(n, 2);
	assert_string_equal(out[0].host, "alias.roll.test");
	assert_string_equal(out[1].host, "c.roll.test");
	/* nothing in, nothing changes; cap 0 takes nothing */
	assert_int_equal(egress_rollup_merge(out, n, 2, in, 0), 2);
	assert_int_equal(egress_rollup_merge(out, 0, 0, in, 4), 0);
}

static void test_classify(void **state)
{
	struct config_rollup rl[] = {{.pattern = "*.roll.test", .queue = "roll.q"},
				     {.pattern = "*.other.test", .queue = "other.q"}};
	struct config cfg;
	struct dns_route route;
	struct dns_target out[DNS_MAX_TARGETS];
	size_t n = 99;

	memset(&cfg, 0, sizeof(cfg));
	cfg.rollups = rl;
	cfg.n_rollups = 2;
	memset(&route, 0, sizeof(route));
	route.status = DNS_OK;
	route.targets[0] = tg("mx.backup.test", "127.0.0.7", 5);
	route.targets[1] = tg("mx-a.roll.test", "127.0.0.2", 10);
	route.targets[2] = tg("mx-b.roll.test", "127.0.0.3", 20);
	route.n_targets = 3;
	/* only the matching hosts are kept, in order */
	assert_int_equal(egress_rollup_classify(&cfg, "roll.q", &route, out, &n), EGRESS_MEMBER_MATCH);
	assert_int_equal(n, 2);
	assert_string_equal(out[0].host, "mx-a.roll.test");
	assert_string_equal(out[1].host, "mx-b.roll.test");
	/* moved elsewhere, or into another rollup: away */
	route.targets[0] = tg("mx.elsewhere.test", "127.0.0.4", 10);
	route.n_targets = 1;
	assert_int_equal(egress_rollup_classify(&cfg, "roll.q", &route, out, &n), EGRESS_MEMBER_AWAY);
	assert_int_equal(n, 0);
	route.targets[0] = tg("mx.other.test", "127.0.0.4", 10);
	assert_int_equal(egress_rollup_classify(&cfg, "roll.q", &route, out, &n), EGRESS_MEMBER_AWAY);
	/* every DNS failure is a failure of that member, whatever targets say */
	enum dns_status bad[] = {DNS_NXDOMAIN, DNS_NULL_MX, DNS_NO_ADDRESS, DNS_TEMPFAIL};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		route.status = bad[i];
		n = 99;
		assert_int_equal(egress_rollup_classify(&cfg, "other.q", &route, out, &n), EGRESS_MEMBER_FAIL);
		assert_int_equal(n, 0);
	}
}

static void test_verdict(void **state)
{
	const int64_t exp = 10000, g = EGRESS_MEMBER_GRACE_MS;

	/* nothing known: wait for the answer */
	assert_int_equal(egress_rollup_verdict(EGRESS_MEMBER_UNKNOWN, true, 0, 5), EGRESS_ADMIT_PARK);
	assert_int_equal(egress_rollup_verdict(EGRESS_MEMBER_UNKNOWN, false, 0, 5), EGRESS_ADMIT_PARK);
	/* within the TTL: the answer decides */
	assert_int_equal(egress_rollup_verdict(EGRESS_MEMBER_MATCH, false, exp, exp - 1), EGRESS_ADMIT_SEND);
	assert_int_equal(egress_rollup_verdict(EGRESS_MEMBER_AWAY, false, exp, exp - 1), EGRESS_ADMIT_HOME);
	assert_int_equal(egress_rollup_verdict(EGRESS_MEMBER_FAIL, false, exp, 0), EGRESS_ADMIT_FAIL);
	/* a member in use being refreshed keeps sending for the grace only */
	assert_int_equal(egress_rollup_verdict(EGRESS_MEMBER_MATCH, true, exp, exp), EGRESS_ADMIT_SEND);
	assert_int_equal(egress_rollup_verdict(EGRESS_MEMBER_MATCH, true, exp, exp + g - 1), EGRESS_ADMIT_SEND);
	assert_int_equal(egress_rollup_verdict(EGRESS_MEMBER_MATCH, true, exp, exp + g), EGRESS_ADMIT_PARK);
	/* an idle member's old answer (long expired) is never trusted */
	assert_int_equal(egress_rollup_verdict(EGRESS_MEMBER_MATCH, true, exp, exp + 60000), EGRESS_ADMIT_PARK);
	assert_int_equal(egress_rollup_verdict(EGRESS_MEMBER_MATCH, false, exp, exp), EGRESS_ADMIT_PARK);
	/* old negative answers neither: a refresh may bring the member back */
	assert_int_equal(egress_rollup_verdict(EGRESS_MEMBER_AWAY, true, exp, exp - 1), EGRESS_ADMIT_PARK);
	assert_int_equal(egress_rollup_verdict(EGRESS_MEMBER_AWAY, false, exp, exp), EGRESS_ADMIT_PARK);
	assert_int_equal(egress_rollup_verdict(EGRESS_MEMBER_FAIL, false, exp, exp + 1), EGRESS_ADMIT_PARK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rollup_for),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_verdict),
		cmocka_unit_test(test_merge_union),
		cmocka_unit_test(test_merge_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
