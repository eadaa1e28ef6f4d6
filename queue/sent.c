/*
 * sent.c - the delivered-recipient index for bounce and complaint matching
 * (see sent.h).
 *
 * Record: [0] u8 version, [1..3] 0, [4] u16 recipient_len, [6] u16
 * sender_len, [8] i64 time_ms, [16] u16 campaign_len, [18] u16 0, then the
 * three strings (not terminated).
 */
#include "queue/sent.h"

#include <errno.h>
#include <string.h>

#include "queue/spool_internal.h"

#define REC_VERSION 1u
#define REC_HDR 20u

static MDB_val key(uint8_t b[12], uint64_t id, uint32_t idx)
{
	put_be(b, id, 8);
	put_be(b + 8, idx, 4);
	return (MDB_val){.mv_size = 12, .mv_data = b};
}

int sent_put(struct spool_wtxn *t, uint64_t msg_id, uint32_t idx, const char *recipient, const char *sender,
	     const char *campaign, int64_t now_ms)
{
	size_t lr = strnlen(recipient, 319), ls = strnlen(sender ? sender : "", 319),
	       lc = strnlen(campaign ? campaign : "", 127);
	uint8_t kb[12], *p;
	MDB_val k = key(kb, msg_id, idx), v = {.mv_size = REC_HDR + lr + ls + lc, .mv_data = NULL};
	int rc = mdb_put(t->txn, t->s->dbi_sent, &k, &v, MDB_RESERVE);

	if (rc)
		return wtxn_fail(t, rc);
	p = v.mv_data;
	memset(p, 0, REC_HDR);
	p[0] = REC_VERSION;
	put_le(p + 4, lr, 2);
	put_le(p + 6, ls, 2);
	put_le(p + 8, (uint64_t)now_ms, 8);
	put_le(p + 16, lc, 2);
	memcpy(p + REC_HDR, recipient, lr);
	if (ls)
		memcpy(p + REC_HDR + lr, sender, ls);
	if (lc)
		memcpy(p + REC_HDR + lr + ls, campaign, lc);
	return 0;
}

int sent_get(struct spool_rtxn *rt, uint64_t msg_id, uint32_t idx, struct sent_rec *out)
{
	uint8_t kb[12];
	MDB_val k = key(kb, msg_id, idx), v;
	const uint8_t *p;
	size_t lr, ls, lc;
	int rc = mdb_get(rt->txn, rt->s->dbi_sent, &k, &v);

	if (rc == MDB_NOTFOUND)
		return SPOOL_NOTFOUND;
	if (rc)
		return lmdb_err(rc);
	p = v.mv_data;
	if (v.mv_size < REC_HDR || p[0] != REC_VERSION)
		return -EBADMSG;
	lr = (size_t)get_le(p + 4, 2);
	ls = (size_t)get_le(p + 6, 2);
	lc = (size_t)get_le(p + 16, 2);
	if (REC_HDR + lr + ls + lc != v.mv_size || lr >= sizeof(out->recipient) || ls >= sizeof(out->sender) ||
	    lc >= sizeof(out->campaign))
		return -EBADMSG;
	out->time_ms = (int64_t)get_le(p + 8, 8);
	memcpy(out->recipient, p + REC_HDR, lr);
	out->recipient[lr] = '\0';
	memcpy(out->sender, p + REC_HDR + lr, ls);
	out->sender[ls] = '\0';
	memcpy(out->campaign, p + REC_HDR + lr + ls, lc);
	out->campaign[lc] = '\0';
	return 0;
}

int sent_prune(struct spool_wtxn *t, int64_t before_ms, size_t max, size_t *n_deleted)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	*n_deleted = 0;
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi_sent, &c)))
		return wtxn_fail(t, rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && *n_deleted < max;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (v.mv_size >= REC_HDR && (int64_t)get_le((const uint8_t *)v.mv_data + 8, 8) >= before_ms)
			break;
		if ((rc = mdb_cursor_del(c, 0)))
			break;
		(*n_deleted)++;
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : wtxn_fail(t, rc);
}

int sent_first_time(struct spool_rtxn *rt, int64_t *time_ms)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(rt->txn, rt->s->dbi_sent, &c)))
		return lmdb_err(rc);
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	if (rc == 0 && v.mv_size < REC_HDR)
		rc = -EBADMSG;
	else if (rc == 0)
		*time_ms = (int64_t)get_le((const uint8_t *)v.mv_data + 8, 8);
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND)
		return SPOOL_NOTFOUND;
	return lmdb_err(rc);
}

int sent_count(struct spool_rtxn *rt, uint64_t *n)
{
	MDB_stat st;
	int rc = mdb_stat(rt->txn, rt->s->dbi_sent, &st);

	if (rc)
		return lmdb_err(rc);
	*n = st.ms_entries;
	return 0;
}
