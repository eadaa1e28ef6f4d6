/* test_suppress.c - the suppression list and the delivered-recipient index in
 * the spool's LMDB environment: normalisation, sources and the soft-bounce
 * threshold, paging, persistence across reopen, the VERP key, pruning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue/sent.h"
#include "queue/spool.h"
#include "queue/suppress.h"

struct fx {
	char dir[64];
	struct spool *s;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/test_suppress.XXXXXX");
	if (!mkdtemp(f->dir) || spool_open(&f->s, f->dir, 0) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	spool_close(f->s);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void test_normalize(void **state)
{
	char out[SUPPRESS_ADDR_MAX], big[400];
	(void)state;

	assert_int_equal(suppress_normalize(" <John.Doe@Example.COM> ", out), 0);
	assert_string_equal(out, "John.Doe@example.com");
	assert_int_equal(suppress_normalize("a@b@C.d", out), 0);
	assert_string_equal(out, "a@b@c.d");
	assert_int_equal(suppress_normalize("nobody", out), -EINVAL);
	assert_int_equal(suppress_normalize("@x.test", out), -EINVAL);
	assert_int_equal(suppress_normalize("x@", out), -EINVAL);
	assert_int_equal(suppress_normalize("a b@x.test", out), -EINVAL);
	assert_int_equal(suppress_normalize("", out), -EINVAL);
	memset(big, 'a', sizeof(big));
	memcpy(big + 390, "@x.test", 8);
	assert_int_equal(suppress_normalize(big, out), -EINVAL);
}

static void put(struct spool *s, const char *addr, enum suppress_source src, const char *reason, int64_t t,
		unsigned soft, bool *active)
{
	struct spool_wtxn *w;

	assert_int_equal(spool_wtxn_begin(s, &w), 0);
	assert_int_equal(suppress_put(w, addr, src, reason, t, soft, active), 0);
	assert_int_equal(spool_wtxn_commit(w), 0);
}

static void test_put_get_del(void **state)
{
	struct fx *f = *state;
	struct spool_rtxn *rt;
	struct spool_wtxn *w;
	struct suppress_entry e;
	bool active;

	put(f->s, "User@Bad.Test", SUPPRESS_SYNC_BOUNCE, "550 5.1.1 no such user", 1000, 3, &active);
	assert_true(active);
	put(f->s, "User@BAD.TEST", SUPPRESS_SYNC_BOUNCE, "again", 2000, 3, &active);
	/* soft bounces: counted, active at the third */
	put(f->s, "soft@x.test", SUPPRESS_SOFT_BOUNCE, "452 full", 10, 3, &active);
	assert_false(active);
	put(f->s, "soft@x.test", SUPPRESS_SOFT_BOUNCE, "452 full", 20, 3, &active);
	assert_false(active);
	put(f->s, "soft@x.test", SUPPRESS_SOFT_BOUNCE, "452 full", 30, 3, &active);
	assert_true(active);
	/* a soft bounce does not weaken a hard entry */
	put(f->s, "User@bad.test", SUPPRESS_SOFT_BOUNCE, "451", 3000, 3, &active);
	assert_true(active);

	assert_int_equal(spool_rtxn_begin(f->s, &rt), 0);
	assert_int_equal(suppress_get(rt, "<User@bad.TEST>", &e), 0);
	assert_string_equal(e.addr, "User@bad.test");
	assert_int_equal(e.source, SUPPRESS_SYNC_BOUNCE);
	assert_int_equal(e.count, 3);
	assert_int_equal(e.first_ms, 1000);
	assert_int_equal(e.last_ms, 3000);
	assert_string_equal(e.reason, "451");
	assert_true(suppress_check(rt, "User@bad.test"));
	/* the local part is case-sensitive */
	assert_false(suppress_check(rt, "USER@bad.test"));
	assert_int_equal(suppress_get(rt, "nobody@bad.test", &e), SPOOL_NOTFOUND);
	assert_false(suppress_check(rt, "nobody@bad.test"));
	assert_false(suppress_check(rt, "garbage"));
	spool_rtxn_end(rt);

	assert_int_equal(spool_wtxn_begin(f->s, &w), 0);
	assert_int_equal(suppress_del(w, "soft@X.test"), 0);
	assert_int_equal(suppress_del(w, "soft@x.test"), SPOOL_NOTFOUND);
	assert_int_equal(suppress_put(w, "bad", SUPPRESS_MANUAL, "", 1, 1, NULL), -EINVAL);
	assert_int_equal(spool_wtxn_commit(w), 0);
	assert_int_equal(spool_rtxn_begin(f->s, &rt), 0);
	assert_false(suppress_check(rt, "soft@x.test"));
	spool_rtxn_end(rt);
}

struct collect {
	char addrs[64][SUPPRESS_ADDR_MAX];
	size_t n;
};

static int collect_cb(void *arg, const struct suppress_entry *e)
{
	struct collect *c = arg;

	strcpy(c->addrs[c->n++], e->addr);
	return 0;
}

static void test_list_paging_and_reopen(void **state)
{
	struct fx *f = *state;
	struct spool_rtxn *rt;
	struct collect c = {0};
	char a[64];
	uint64_t n;
	uint8_t key[32];

	for (int i = 0; i < 25; i++) {
		snprintf(a, sizeof(a), "u%02d@page.test", i);
		put(f->s, a, i % 5 ? SUPPRESS_MANUAL : SUPPRESS_SOFT_BOUNCE, "r", i, 3, NULL);
	}
	memcpy(key, spool_verp_key(f->s), sizeof(key));
	spool_close(f->s);
	assert_int_equal(spool_open(&f->s, f->dir, 0), 0);
	assert_memory_equal(key, spool_verp_key(f->s), sizeof(key));
	assert_int_equal(suppress_count(f->s, &n), 0);
	assert_int_equal(n, 25);
	assert_int_equal(spool_rtxn_begin(f->s, &rt), 0);
	assert_int_equal(suppress_list(rt, "", 10, false, collect_cb, &c), 0);
	assert_int_equal(c.n, 10);
	assert_string_equal(c.addrs[9], "u09@page.test");
	assert_int_equal(suppress_list(rt, c.addrs[9], 10, false, collect_cb, &c), 0);
	assert_int_equal(c.n, 20);
	assert_string_equal(c.addrs[10], "u10@page.test");
	c.n = 0;
	assert_int_equal(suppress_list(rt, "", 100, true, collect_cb, &c), 0);
	assert_int_equal(c.n, 20); /* the 5 soft ones are not active */
	spool_rtxn_end(rt);
}

static void test_sent_index(void **state)
{
	struct fx *f = *state;
	struct spool_wtxn *w;
	struct spool_rtxn *rt;
	struct sent_rec r;
	size_t n;

	assert_int_equal(spool_wtxn_begin(f->s, &w), 0);
	for (uint32_t i = 0; i < 10; i++)
		assert_int_equal(sent_put(w, 100 + i, i, "rcpt@x.test", "from@y.test", i % 2 ? "camp" : "", 1000 + i), 0);
	assert_int_equal(spool_wtxn_commit(w), 0);
	assert_int_equal(spool_rtxn_begin(f->s, &rt), 0);
	assert_int_equal(sent_get(rt, 103, 3, &r), 0);
	assert_string_equal(r.recipient, "rcpt@x.test");
	assert_string_equal(r.sender, "from@y.test");
	assert_string_equal(r.campaign, "camp");
	assert_int_equal(r.time_ms, 1003);
	assert_int_equal(sent_get(rt, 103, 4, &r), SPOOL_NOTFOUND);
	spool_rtxn_end(rt);
	assert_int_equal(spool_wtxn_begin(f->s, &w), 0);
	assert_int_equal(sent_prune(w, 1005, 3, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(sent_prune(w, 1005, 100, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(spool_wtxn_commit(w), 0);
	assert_int_equal(spool_rtxn_begin(f->s, &rt), 0);
	assert_int_equal(sent_get(rt, 104, 4, &r), SPOOL_NOTFOUND);
	assert_int_equal(sent_get(rt, 105, 5, &r), 0);
	spool_rtxn_end(rt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalize),
		cmocka_unit_test_setup_teardown(test_put_get_del, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_paging_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sent_index, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
