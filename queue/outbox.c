/*
 * outbox.c - the "outbox" database of the spool: accounting records
 * committed with their state change, written to the log after the commit
 * and deleted once written (contract in outbox.h).
 *
 * One entry per write transaction, not per record: outbox_put() appends
 * the packed record to a staging buffer (ob_stage) and the commit stores
 * the whole buffer under the transaction's sequence number (an overflow
 * page or a few, written whole and freed whole by the trim; one small
 * leaf node), so the outbox adds about a record's bytes to a commit, not
 * the rewrite of two half-full leaf pages. The staged bytes stay in memory
 * after the commit (ob_last), so the usual flush formats them from there;
 * the database is read back only at start-up or after a failed flush.
 *
 * Entry value: records one after the other, each a u32 length (little-
 * endian) then that many bytes of acct_event_pack().
 *
 * Owns: the sequence counters in struct spool (ob_*), the staging and
 * last-commit buffers. Invariants (writer thread):
 *   ob_trimmed <= ob_written <= ob_fed < ob_next;
 *   every stored key is > ob_trimmed (once its trim committed) and < ob_next;
 *   entries ob_written+1..ob_fed are in the log's buffer, not known written;
 *   ob_last holds the value of entry ob_last_seq (0: none).
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
	size_t mark = s->ob_stage.len;
	uint8_t len[4] = {0};
	int rc;

	if (t->err)
		return t->err;
	if ((rc = json_buf_put(&s->ob_stage, len, 4)) || (rc = acct_event_pack(&s->ob_stage, ev))) {
		s->ob_stage.len = mark;
		return rc;
	}
	put_le((uint8_t *)s->ob_stage.data + mark, s->ob_stage.len - mark - 4, 4);
	s->disk_since_check += s->ob_stage.len - mark; /* the disk reserve's estimate */
	return 0;
}

/* spool_wtxn_commit(), before LMDB's commit: the staged records as this
 * transaction's entry. */
int outbox_stage_put(struct spool_wtxn *t)
{
	struct spool *s = t->s;
	uint8_t kb[8];
	MDB_val k, v;
	int rc;

	if (s->ob_stage.len == 0)
		return 0;
	k = seq_key(kb, s->ob_next);
	v = (MDB_val){s->ob_stage.len, NULL};
	/* keys only grow: appending skips the search */
	if ((rc = mdb_put(t->txn, s->dbi_outbox, &k, &v, MDB_APPEND | MDB_RESERVE)))
		return wtxn_fail(t, rc);
	memcpy(v.mv_data, s->ob_stage.data, s->ob_stage.len);
	return 0;
}

/* spool_wtxn_commit() once LMDB's commit returned (ok or not), and abort. */
void outbox_stage_end(struct spool *s, bool committed)
{
	struct json_buf tmp;

	if (committed && s->ob_stage.len) {
		/* the staged bytes become the last commit's (buffers swap: no copy) */
		tmp = s->ob_last;
		s->ob_last = s->ob_stage;
		s->ob_stage = tmp;
		s->ob_last_seq = s->ob_next++;
	}
	s->ob_stage.len = 0;
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

/* Hand one entry's records to the log. A write whose flush fails keeps the
 * record in the log's buffer: the rest of the entry follows it there (one
 * commit's records at most), and *failed says to stop after this entry.
 * -ENOMEM: the entry is not taken (fed again later, perhaps in part twice). */
static int feed_entry(uint64_t seq, const uint8_t *p, size_t n, struct acct_log *log, uint64_t *count, int *failed)
{
	const uint8_t *end = p + n;

	while (p < end) {
		struct acct_event ev;
		uint64_t len;
		int ret;

		if (end - p < 4 || (len = get_le(p, 4)) > (uint64_t)(end - p - 4)) {
			fprintf(stderr, "salvod: accounting outbox entry %llu is cut short: its rest is skipped\n",
				(unsigned long long)seq);
			return 0;
		}
		p += 4;
		if (acct_event_unpack(p, len, &ev) < 0) {
			fprintf(stderr, "salvod: a record in accounting outbox entry %llu does not decode: skipped\n",
				(unsigned long long)seq);
		} else if ((ret = acct_log_write(log, &ev)) == -ENOMEM) {
			return ret;
		} else if (ret == -EINVAL) {
			fprintf(stderr, "salvod: a record in accounting outbox entry %llu cannot be formatted: skipped\n",
				(unsigned long long)seq);
		} else {
			(*count)++;
			if (ret < 0 && !*failed)
				*failed = ret;
		}
		p += len;
	}
	return 0;
}

/* Hand the entries after ob_fed to the log, in order, from the spool. */
static int feed_stored(struct spool *s, struct acct_log *log, uint64_t *n)
{
	struct spool_rtxn *rt;
	MDB_cursor *c;
	MDB_val k, v;
	uint8_t kb[8];
	int rc, ret = 0, failed = 0;

	if ((ret = spool_rtxn_begin(s, &rt)))
		return ret;
	if ((rc = mdb_cursor_open(rt->txn, s->dbi_outbox, &c))) {
		spool_rtxn_end(rt);
		return lmdb_err(rc);
	}
	k = seq_key(kb, s->ob_fed + 1);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && !failed;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		uint64_t seq = k.mv_size == 8 ? get_be(k.mv_data, 8) : 0;

		if (seq <= s->ob_fed)
			continue; /* not ours (a malformed key): trimmed with the rest */
		if ((ret = feed_entry(seq, v.mv_data, v.mv_size, log, n, &failed)))
			break;
		s->ob_fed = seq;
	}
	mdb_cursor_close(c);
	spool_rtxn_end(rt);
	if (ret == 0 && rc != MDB_NOTFOUND && rc != 0 && !failed)
		ret = lmdb_err(rc);
	return ret ? ret : failed;
}

static int feed(struct spool *s, struct acct_log *log, uint64_t *n)
{
	int ret, failed = 0;

	if (s->ob_last_seq != s->ob_fed + 1 || s->ob_last_seq != s->ob_next - 1)
		return feed_stored(s, log, n);
	/* the usual case: just the last commit's entry, still in memory */
	if ((ret = feed_entry(s->ob_last_seq, (const uint8_t *)s->ob_last.data, s->ob_last.len, log, n, &failed)))
		return ret;
	s->ob_fed = s->ob_last_seq;
	return failed;
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
