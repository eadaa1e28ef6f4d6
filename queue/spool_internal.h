/*
 * spool_internal.h - internal to queue/: the spool's handles and byte-order
 * helpers, shared by spool.c (messages, recipients, due index) and the
 * stores that live in the same LMDB environment (suppress.c, sent.c,
 * pause.c, cancel_pending.c), so
 * that all of them commit in the writer's one transaction.
 */
#ifndef SALVO_SPOOL_INTERNAL_H
#define SALVO_SPOOL_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/json_str.h"
#include "queue/spool.h"

struct spool_wtxn {
	struct spool *s;
	MDB_txn *txn;
	MDB_cursor *rcpt_cur;      /* lazily opened by spool_del_rcpt() */
	bool active;
	bool ids_used;             /* write "next_id" back at commit */
	int err;                   /* first error that poisoned the LMDB txn */
};

struct spool_rtxn {
	struct spool *s;
	MDB_txn *txn;
	struct spool_rtxn *next;   /* cache link while reset */
};

struct spool {
	MDB_env *env;
	MDB_dbi dbi_msg, dbi_rcpt, dbi_due, dbi_meta;
	MDB_dbi dbi_suppress, dbi_sent; /* suppress.c, sent.c */
	MDB_dbi dbi_pause;         /* pause.c */
	MDB_dbi dbi_campaign;      /* campaign_stats.c */
	MDB_dbi dbi_outbox;        /* outbox.c: accounting records until logged */
	MDB_dbi dbi_cancel;        /* cancel_pending.c: deletes of in-flight recipients */
	uint64_t ob_next;          /* outbox.c, writer thread: next entry's sequence */
	uint64_t ob_fed;           /* last entry handed to the log */
	uint64_t ob_written;       /* last entry the log wrote */
	uint64_t ob_trimmed;       /* last entry deleted (committed) */
	uint64_t ob_last_seq;      /* the entry ob_last holds (0: none) */
	struct json_buf ob_stage;  /* the open txn's records (outbox_put) */
	struct json_buf ob_last;   /* the last committed entry's records */
	uint8_t verp_key[32];      /* meta "verp_key", read-only after open */
	uint64_t next_id;          /* writer thread only */
	int64_t disk_checked_ms;   /* free space check (writer thread only) */
	uint64_t disk_free, disk_reserve, disk_since_check;
	struct spool_wtxn w;       /* the one write transaction */
	/* Fault hook (tests): SALVO_SPOOL_FAIL_COMMITS="N[:ERR][@K]" read at
	 * open: after K good commits, the next N commits fail with ERR
	 * (ENOSPC when not given; EIO, PANIC). Writer thread only. */
	uint64_t fail_skip, fail_left;
	int fail_err;
	pthread_mutex_t rcache_mu;
	struct spool_rtxn *rcache; /* reset read txns, each keeps its reader slot */
	unsigned n_rcache;
};

/* Little-endian, byte by byte: values in the map are not aligned. */
static inline void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

/* Big-endian for keys: LMDB's memcmp order is then numeric order. */
static inline void put_be(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static inline uint64_t get_be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* outbox.c: open "outbox" and learn its next sequence (in open's txn);
 * at commit, store the staged records (before LMDB's commit) and end the
 * staging (after it, or at an abort). */
int outbox_open(struct spool *s, MDB_txn *txn);
int outbox_stage_put(struct spool_wtxn *t);
void outbox_stage_end(struct spool *s, bool committed);

/* LMDB's positive errno values as negative errno; its own codes as is. */
int lmdb_err(int rc);
/* Remember the first error that poisoned the write txn; returns it. */
int wtxn_fail(struct spool_wtxn *t, int rc);

#endif
