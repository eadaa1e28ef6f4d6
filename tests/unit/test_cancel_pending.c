/* test_cancel_pending.c - the spool's "cancel" database (queue/cancel_pending.h):
 * entries written, replaced, removed, walked in key order across a reopen;
 * an over-long filter refused; entries this code did not write (bad key or
 * value sizes) skipped by the walk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/cancel_pending.h"
#include "queue/spool.h"
#include "queue/spool_internal.h"
#include "tmp_dir.h"

struct seen {
	size_t n;
	uint64_t id[8];
	uint32_t idx[8];
	bool dsn[8];
	char filter[8][64];
};

static int collect(void *arg, uint64_t msg_id, uint32_t idx, bool dsn, const char *filter)
{
	struct seen *s = arg;

	assert_true(s->n < 8);
	s->id[s->n] = msg_id;
	s->idx[s->n] = idx;
	s->dsn[s->n] = dsn;
	snprintf(s->filter[s->n], sizeof(s->filter[0]), "%s", filter);
	s->n++;
	return 0;
}

static int stop_at_first(void *arg, uint64_t msg_id, uint32_t idx, bool dsn, const char *filter)
{
	(void)msg_id, (void)idx, (void)dsn, (void)filter;
	++*(int *)arg;
	return 7;
}

static void test_put_del_walk(void **state)
{
	char dir[64], *big;
	struct spool *s;
	struct spool_wtxn *t;
	struct seen seen = {0};
	int calls = 0;

	(void)state;
	assert_int_equal(tmp_dir_make(dir, sizeof(dir), "test_cancel_pending"), 0);
	assert_int_equal(spool_open(&s, dir, 0), 0);
	assert_int_equal(cancel_pending_each(s, collect, &seen), 0);
	assert_int_equal(seen.n, 0);

	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	assert_int_equal(cancel_pending_put(t, 0x100000001ull, 3, true, "{\"campaign\":\"c1\"}"), 0);
	assert_int_equal(cancel_pending_put(t, 5, 70000, false, "{\"queue\":\"q.test\"}"), 0);
	assert_int_equal(cancel_pending_put(t, 5, 1, false, "{\"sender\":\"\"}"), 0);
	assert_int_equal(cancel_pending_put(t, 5, 1, true, "{\"sender\":\"a@b\"}"), 0); /* replaces */
	assert_int_equal(cancel_pending_del(t, 9, 9), 0);                                 /* none: fine */
	assert_non_null(big = malloc(CANCEL_FILTER_MAX + 2));
	memset(big, 'x', CANCEL_FILTER_MAX + 1);
	big[CANCEL_FILTER_MAX + 1] = '\0';
	assert_int_equal(cancel_pending_put(t, 6, 0, false, big), -EINVAL);
	free(big);
	/* not ours: a short key, and an empty value */
	{
		uint8_t k3[3] = {1, 2, 3}, k12[12] = {0};
		MDB_val k = {.mv_size = 3, .mv_data = k3}, v = {.mv_size = 1, .mv_data = "x"};

		assert_int_equal(mdb_put(t->txn, s->dbi_cancel, &k, &v, 0), 0);
		k12[11] = 2;
		k = (MDB_val){.mv_size = 12, .mv_data = k12};
		v = (MDB_val){.mv_size = 0, .mv_data = ""};
		assert_int_equal(mdb_put(t->txn, s->dbi_cancel, &k, &v, 0), 0);
	}
	assert_int_equal(spool_wtxn_commit(t), 0);

	/* across a reopen, in key order (message id, then index), bad entries skipped */
	spool_close(s);
	assert_int_equal(spool_open(&s, dir, 0), 0);
	assert_int_equal(cancel_pending_each(s, collect, &seen), 0);
	assert_int_equal(seen.n, 3);
	assert_true(seen.id[0] == 5 && seen.idx[0] == 1 && seen.dsn[0]);
	assert_string_equal(seen.filter[0], "{\"sender\":\"a@b\"}");
	assert_true(seen.id[1] == 5 && seen.idx[1] == 70000 && !seen.dsn[1]);
	assert_string_equal(seen.filter[1], "{\"queue\":\"q.test\"}");
	assert_true(seen.id[2] == 0x100000001ull && seen.idx[2] == 3 && seen.dsn[2]);
	assert_string_equal(seen.filter[2], "{\"campaign\":\"c1\"}");
	/* a non-zero return stops the walk and is returned */
	assert_int_equal(cancel_pending_each(s, stop_at_first, &calls), 7);
	assert_int_equal(calls, 1);

	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	assert_int_equal(cancel_pending_del(t, 5, 1), 0);
	assert_int_equal(cancel_pending_del(t, 0x100000001ull, 3), 0);
	assert_int_equal(spool_wtxn_commit(t), 0);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(cancel_pending_each(s, collect, &seen), 0);
	assert_int_equal(seen.n, 1);
	assert_true(seen.id[0] == 5 && seen.idx[0] == 70000);
	spool_close(s);
	tmp_dir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_del_walk),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
