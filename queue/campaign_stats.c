/*
 * campaign_stats.c - the "campaign" database: durable per-campaign totals
 * (see campaign_stats.h).
 */
#include "queue/campaign_stats.h"

#include <errno.h>
#include <string.h>

#include "queue/spool_internal.h"

#define REC_VERSION 1
#define REC_LEN 64

static void encode(uint8_t *p, const struct campaign_totals *c)
{
	memset(p, 0, REC_LEN);
	put_le(p, REC_VERSION, 4);
	put_le(p + 8, (uint64_t)c->first_ms, 8);
	put_le(p + 16, (uint64_t)c->last_ms, 8);
	put_le(p + 24, c->received, 8);
	put_le(p + 32, c->delivered, 8);
	put_le(p + 40, c->bounced, 8);
	put_le(p + 48, c->expired, 8);
	put_le(p + 56, c->suppressed, 8);
}

static int decode(const MDB_val *v, struct campaign_totals *c)
{
	const uint8_t *p = v->mv_data;

	if (v->mv_size < REC_LEN || get_le(p, 4) < REC_VERSION)
		return -EBADMSG;
	c->first_ms = (int64_t)get_le(p + 8, 8);
	c->last_ms = (int64_t)get_le(p + 16, 8);
	c->received = get_le(p + 24, 8);
	c->delivered = get_le(p + 32, 8);
	c->bounced = get_le(p + 40, 8);
	c->expired = get_le(p + 48, 8);
	c->suppressed = get_le(p + 56, 8);
	return 0;
}

int campaign_stats_add(struct spool_wtxn *t, const char *name, const struct campaign_totals *d)
{
	size_t n = name ? strlen(name) : 0;
	MDB_val k = {.mv_size = n, .mv_data = (void *)name}, v;
	struct campaign_totals c = {0};
	uint8_t b[REC_LEN];
	int rc;

	if (!n || n > CAMPAIGN_STATS_NAME_MAX)
		return -EINVAL;
	rc = mdb_get(t->txn, t->s->dbi_campaign, &k, &v);
	if (rc && rc != MDB_NOTFOUND)
		return wtxn_fail(t, rc);
	if (rc == 0 && decode(&v, &c) != 0)
		memset(&c, 0, sizeof(c)); /* not ours: start again */
	if (d->first_ms && (!c.first_ms || d->first_ms < c.first_ms))
		c.first_ms = d->first_ms;
	if (d->last_ms > c.last_ms)
		c.last_ms = d->last_ms;
	c.received += d->received;
	c.delivered += d->delivered;
	c.bounced += d->bounced;
	c.expired += d->expired;
	c.suppressed += d->suppressed;
	encode(b, &c);
	v = (MDB_val){.mv_size = REC_LEN, .mv_data = b};
	rc = mdb_put(t->txn, t->s->dbi_campaign, &k, &v, 0);
	return rc ? wtxn_fail(t, rc) : 0;
}

int campaign_stats_each(struct spool *s, int (*cb)(void *arg, const char *name, const struct campaign_totals *tot),
			void *arg)
{
	struct spool_rtxn *rt;
	MDB_cursor *c;
	MDB_val k, v;
	char name[CAMPAIGN_STATS_NAME_MAX + 1];
	struct campaign_totals tot;
	int rc, ret;

	if ((ret = spool_rtxn_begin(s, &rt)))
		return ret;
	if ((rc = mdb_cursor_open(rt->txn, s->dbi_campaign, &c))) {
		spool_rtxn_end(rt);
		return lmdb_err(rc);
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (!k.mv_size || k.mv_size > CAMPAIGN_STATS_NAME_MAX || memchr(k.mv_data, 0, k.mv_size) ||
		    decode(&v, &tot) != 0)
			continue;
		memcpy(name, k.mv_data, k.mv_size);
		name[k.mv_size] = '\0';
		ret = cb(arg, name, &tot);
	}
	mdb_cursor_close(c);
	spool_rtxn_end(rt);
	if (rc && rc != MDB_NOTFOUND && ret == 0)
		ret = lmdb_err(rc);
	return ret;
}
