/*
 * cancel_pending.c - the "cancel" database: deletes waiting for in-flight
 * recipients (see cancel_pending.h).
 */
#include "queue/cancel_pending.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "queue/spool_internal.h"

static void key_make(uint8_t *b, uint64_t msg_id, uint32_t idx)
{
	put_be(b, msg_id, 8);
	put_be(b + 8, idx, 4);
}

int cancel_pending_put(struct spool_wtxn *t, uint64_t msg_id, uint32_t idx, bool dsn, const char *filter)
{
	size_t n = strlen(filter);
	uint8_t kb[12];
	MDB_val k = {.mv_size = sizeof(kb), .mv_data = kb}, v = {.mv_size = n + 1};
	int rc;

	if (n > CANCEL_FILTER_MAX)
		return -EINVAL;
	key_make(kb, msg_id, idx);
	if ((rc = mdb_put(t->txn, t->s->dbi_cancel, &k, &v, MDB_RESERVE)))
		return wtxn_fail(t, rc);
	((uint8_t *)v.mv_data)[0] = dsn ? 1 : 0;
	memcpy((uint8_t *)v.mv_data + 1, filter, n);
	return 0;
}

int cancel_pending_del(struct spool_wtxn *t, uint64_t msg_id, uint32_t idx)
{
	uint8_t kb[12];
	MDB_val k = {.mv_size = sizeof(kb), .mv_data = kb};
	int rc;

	key_make(kb, msg_id, idx);
	rc = mdb_del(t->txn, t->s->dbi_cancel, &k, NULL);
	if (rc == MDB_NOTFOUND)
		return 0;
	return rc ? wtxn_fail(t, rc) : 0;
}

int cancel_pending_each(struct spool *s,
			int (*cb)(void *arg, uint64_t msg_id, uint32_t idx, bool dsn, const char *filter), void *arg)
{
	struct spool_rtxn *rt;
	MDB_cursor *c;
	MDB_val k, v;
	char *filter = malloc(CANCEL_FILTER_MAX + 1);
	int rc, ret = 0;

	if (!filter)
		return -ENOMEM;
	if ((ret = spool_rtxn_begin(s, &rt))) {
		free(filter);
		return ret;
	}
	if ((rc = mdb_cursor_open(rt->txn, s->dbi_cancel, &c))) {
		spool_rtxn_end(rt);
		free(filter);
		return lmdb_err(rc);
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const uint8_t *kb = k.mv_data, *vb = v.mv_data;

		if (k.mv_size != 12 || !v.mv_size || v.mv_size > CANCEL_FILTER_MAX + 1)
			continue; /* not an entry this code wrote */
		memcpy(filter, vb + 1, v.mv_size - 1);
		filter[v.mv_size - 1] = '\0';
		ret = cb(arg, get_be(kb, 8), (uint32_t)get_be(kb + 8, 4), vb[0] != 0, filter);
	}
	mdb_cursor_close(c);
	spool_rtxn_end(rt);
	free(filter);
	if (rc && rc != MDB_NOTFOUND && ret == 0)
		ret = lmdb_err(rc);
	return ret;
}
