/*
 * outbox.c - the "outbox" database of the spool: accounting records
 * committed with their state change, written to the log after the commit
 * and deleted once written (contract in outbox.h).
 *
 * Owns: the sequence counters in struct spool (ob_*) and the pack buffer.
 * Invariants (writer thread):
 *   ob_trimmed <= ob_written <= ob_fed < ob_next;
 *   every stored key is > ob_trimmed (once its trim committed) and < ob_next;
 *   keys ob_written+1..ob_fed are in the log's buffer, not known written.
 */
#include "queue/outbox.h"

#include <stdio.h>
#include <string.h>

#include "core/acct_pack.h"
#include "queue/spool_internal.h"

static MDB_val seq_key(uint8_t kb[8], uint64_t seq)
{
	put_be(kb, seq, 8);
	return (MDB_val){8, kb};
}

int outbox_open(struct spool *s, MDB_txn *txn)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_dbi_open(txn, "outbox", MDB_CREATE, &s->dbi_outbox)) ||
	    (rc = mdb_cursor_open(txn, s->dbi_outbox, &c)))
		return lmdb_err(rc);
	rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND) {
		s->ob_next = 1;
		return 0;
	}
	if (rc)
		return lmdb_err(rc);
	if (k.mv_size != 8)
		return -EBADMSG;
	s->ob_next = get_be(k.mv_data, 8) + 1;
	return 0;
}

int outbox_put(struct spool_wtxn *t, const struct acct_event *ev)
{
	struct spool *s = t->s;
	uint8_t kb[8];
	MDB_val k, v;
	int rc;

	if (t->err)
		return t->err;
	s->ob_pack.len = 0;
	if ((rc = acct_event_pack(&s->ob_pack, ev)))
		return rc;
	k = seq_key(kb, s->ob_next);
	v = (MDB_val){s->ob_pack.len, s->ob_pack.data};
	/* keys only grow: appending skips the search and fills pages */
	if ((rc = mdb_put(t->txn, s->dbi_outbox, &k, &v, MDB_APPEND)))
		return wtxn_fail(t, rc);
	s->ob_next++;
	s->disk_since_check += k.mv_size + v.mv_size; /* the disk reserve's estimate */
	return 0;
}

int outbox_count(struct spool *s, uint64_t *n)
{
	struct spool_rtxn *rt;
	MDB_stat st;
	int ret;

	if ((ret = spool_rtxn_begin(s, &rt)))
		return ret;
	ret = lmdb_err(mdb_stat(rt->txn, s->dbi_outbox, &st));
	spool_rtxn_end(rt);
	*n = ret ? 0 : st.ms_entries;
	return ret;
}

/* Hand the entries after ob_fed to the log, in order, until one write
 * fails (the log keeps that one; it is retried with the flush). */
static int feed(struct spool *s, struct acct_log *log, uint64_t *n)
{
	struct spool_rtxn *rt;
	MDB_cursor *c;
	MDB_val k, v;
	uint8_t kb[8];
	int rc, ret = 0;

	if ((ret = spool_rtxn_begin(s, &rt)))
		return ret;
	if ((rc = mdb_cursor_open(rt->txn, s->dbi_outbox, &c))) {
		spool_rtxn_end(rt);
		return lmdb_err(rc);
	}
	k = seq_key(kb, s->ob_fed + 1);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct acct_event ev;
		uint64_t seq = k.mv_size == 8 ? get_be(k.mv_data, 8) : 0;

		if (seq <= s->ob_fed)
			continue; /* not ours (a malformed key): trimmed with the rest */
		if (acct_event_unpack(v.mv_data, v.mv_size, &ev) < 0) {
			fprintf(stderr, "salvod: accounting record %llu in the outbox does not decode: skipped\n",
				(unsigned long long)seq);
			s->ob_fed = seq;
			continue;
		}
		ret = acct_log_write(log, &ev);
		if (ret == -EINVAL) {
			fprintf(stderr, "salvod: accounting record %llu in the outbox cannot be formatted: skipped\n",
				(unsigned long long)seq);
			ret = 0;
		} else if (ret == -ENOMEM) {
			break; /* not taken: fed again next time */
		}
		s->ob_fed = seq;
		(*n)++;
		if (ret < 0)
			break; /* taken, but the file failed: stop feeding */
	}
	mdb_cursor_close(c);
	spool_rtxn_end(rt);
	if (ret == 0 && rc != MDB_NOTFOUND && rc != 0)
		ret = lmdb_err(rc);
	return ret;
}

int outbox_flush(struct spool *s, struct acct_log *log, uint64_t *np)
{
	uint64_t dropped = acct_log_dropped(log), n = 0;
	int ret = 0;

	if (s->ob_fed > s->ob_written) {
		/* a flush failed before: the log retries what it holds first */
		ret = acct_log_flush(log);
		if (ret == 0 && acct_log_dropped(log) == dropped)
			s->ob_written = s->ob_fed;
	}
	if (ret == 0 && s->ob_next - 1 > s->ob_fed)
		ret = feed(s, log, &n);
	if (ret == 0 || ret == -ENOMEM) {
		int fr = acct_log_flush(log);

		if (fr < 0)
			ret = fr;
	}
	if (acct_log_dropped(log) != dropped) {
		/* the log gave up on records it could not write: they are still
		 * here, so hand them over again */
		s->ob_fed = s->ob_written;
		if (ret == 0)
			ret = -EIO;
	} else if (ret == 0) {
		s->ob_written = s->ob_fed;
	}
	if (np)
		*np = n;
	return ret;
}

int outbox_trim(struct spool_wtxn *t, uint64_t *upto)
{
	struct spool *s = t->s;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	*upto = 0;
	if (s->ob_written <= s->ob_trimmed)
		return 0;
	if (t->err)
		return t->err;
	if ((rc = mdb_cursor_open(t->txn, s->dbi_outbox, &c)))
		return wtxn_fail(t, rc);
	while ((rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0) {
		if (k.mv_size == 8 && get_be(k.mv_data, 8) > s->ob_written)
			break;
		if ((rc = mdb_cursor_del(c, 0)))
			break;
	}
	mdb_cursor_close(c);
	if (rc && rc != MDB_NOTFOUND)
		return wtxn_fail(t, rc);
	*upto = s->ob_written;
	return 0;
}

void outbox_trimmed(struct spool *s, uint64_t upto)
{
	if (upto > s->ob_trimmed)
		s->ob_trimmed = upto;
}

int outbox_trim_now(struct spool *s)
{
	struct spool_wtxn *t;
	uint64_t upto;
	int ret;

	if (s->ob_written <= s->ob_trimmed)
		return 0;
	if ((ret = spool_wtxn_begin(s, &t)))
		return ret;
	if ((ret = outbox_trim(t, &upto))) {
		spool_wtxn_abort(t);
		return ret;
	}
	if ((ret = spool_wtxn_commit(t)) == 0)
		outbox_trimmed(s, upto);
	return ret;
}
