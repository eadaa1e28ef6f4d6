/*
 * pause.c - the "pause" database: paused queue names (see pause.h).
 */
#include "queue/pause.h"

#include <errno.h>
#include <string.h>

#include "queue/spool_internal.h"

static int name_key(const char *name, MDB_val *k)
{
	size_t n = strlen(name);

	if (!n || n > PAUSE_NAME_MAX)
		return -EINVAL;
	*k = (MDB_val){.mv_size = n, .mv_data = (void *)name};
	return 0;
}

int pause_put(struct spool_wtxn *t, const char *name, int64_t now_ms)
{
	uint8_t b[8];
	MDB_val k, v = {.mv_size = 8, .mv_data = b};
	int rc = name_key(name, &k);

	if (rc)
		return rc;
	put_le(b, (uint64_t)now_ms, 8);
	rc = mdb_put(t->txn, t->s->dbi_pause, &k, &v, 0);
	return rc ? wtxn_fail(t, rc) : 0;
}

int pause_del(struct spool_wtxn *t, const char *name)
{
	MDB_val k;
	int rc = name_key(name, &k);

	if (rc)
		return rc;
	rc = mdb_del(t->txn, t->s->dbi_pause, &k, NULL);
	if (rc == MDB_NOTFOUND)
		return 0;
	return rc ? wtxn_fail(t, rc) : 0;
}

#define CAMPAIGN_KEY '\x01'

static int campaign_key(const char *campaign, char *buf, size_t cap)
{
	size_t n = strlen(campaign);

	if (!n || n + 1 > PAUSE_NAME_MAX || n + 2 > cap)
		return -EINVAL;
	buf[0] = CAMPAIGN_KEY;
	memcpy(buf + 1, campaign, n + 1);
	return 0;
}

int pause_campaign_put(struct spool_wtxn *t, const char *campaign, int64_t now_ms)
{
	char key[PAUSE_NAME_MAX + 1];
	int rc = campaign_key(campaign, key, sizeof(key));

	return rc ? rc : pause_put(t, key, now_ms);
}

int pause_campaign_del(struct spool_wtxn *t, const char *campaign)
{
	char key[PAUSE_NAME_MAX + 1];
	int rc = campaign_key(campaign, key, sizeof(key));

	return rc ? rc : pause_del(t, key);
}

/* Every key, or (campaigns) only those with the campaign prefix, given
 * without it. */
static int each_key(struct spool *s, bool campaigns, int (*cb)(void *arg, const char *name), void *arg)
{
	struct spool_rtxn *rt;
	MDB_cursor *c;
	MDB_val k, v;
	char name[PAUSE_NAME_MAX + 1];
	int rc, ret = 0;

	if ((ret = spool_rtxn_begin(s, &rt)))
		return ret;
	if ((rc = mdb_cursor_open(rt->txn, s->dbi_pause, &c))) {
		spool_rtxn_end(rt);
		return lmdb_err(rc);
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (!k.mv_size || k.mv_size > PAUSE_NAME_MAX || memchr(k.mv_data, 0, k.mv_size))
			continue; /* not a name this code wrote */
		if ((((const char *)k.mv_data)[0] == CAMPAIGN_KEY) != campaigns || (campaigns && k.mv_size < 2))
			continue;
		memcpy(name, (const char *)k.mv_data + campaigns, k.mv_size - campaigns);
		name[k.mv_size - campaigns] = '\0';
		ret = cb(arg, name);
	}
	mdb_cursor_close(c);
	spool_rtxn_end(rt);
	if (rc && rc != MDB_NOTFOUND && ret == 0)
		ret = lmdb_err(rc);
	return ret;
}

int pause_each(struct spool *s, int (*cb)(void *arg, const char *name), void *arg)
{
	return each_key(s, false, cb, arg);
}

int pause_campaign_each(struct spool *s, int (*cb)(void *arg, const char *campaign), void *arg)
{
	return each_key(s, true, cb, arg);
}
