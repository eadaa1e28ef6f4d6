/*
 * outbox.h - accounting records made durable with what they report.
 *
 * Every accounting record (reception, delivery, transient, bounce,
 * expiration, feedback, suppressed...) is put with outbox_put() by the
 * apply() of the spool request whose state change it reports, so it
 * commits in that same LMDB transaction: database "outbox", one entry per
 * transaction that put records, key = a sequence number (u64 big-endian,
 * increasing), value = its records packed by acct_event_pack()
 * (core/acct_pack.h), in order. There is no other way a record reaches the
 * log: new record types go through outbox_put() too.
 *
 * After each batch the writer thread calls outbox_flush(): the entries
 * not yet handed to the log are unpacked, in sequence order, written with
 * acct_log_write() (and so to its CSV tap) and flushed (the last commit's
 * records from memory, older ones read back). An entry counts as
 * written when acct_log_flush() returned 0: write(2) put every byte of it
 * into the file. The log is not fsync'ed (acct_log.h), so this survives a
 * kill -9 of salvod, not a power cut, like the rest of the log. Written
 * entries are deleted by outbox_trim(), which the writer runs at the
 * start of its next batch transaction (one range delete per batch, no
 * transaction of its own). So a crash between a commit and the flush (or
 * before the trim) leaves entries that the next start writes again with
 * outbox_flush() before anything else writes to the log: a record may be
 * logged twice (the same line, so the same event_id), never lost.
 *
 * A failed log write (disk full, EIO): the log keeps the records it was
 * given (acct_log.h); outbox_flush() hands it no more and retries the
 * flush on each later call; the entries stay in the outbox until a flush
 * succeeds. Should the log have dropped records meanwhile, they are fed
 * again from the outbox.
 *
 * Headroom: outbox pages and the open transaction's staged records count
 * in the map reserve check, outbox bytes in the disk reserve estimate of
 * spool_put_msg() (queue/spool.c), so a reception record put before its
 * message is refused with the message.
 *
 * Threads: the writer thread only (or, before the writer starts and after
 * it stops, the thread that owns the spool).
 */
#ifndef SALVO_OUTBOX_H
#define SALVO_OUTBOX_H

#include <stdint.h>

#include "core/acct_log.h"
#include "queue/spool.h"

/* Inside a write transaction: add one record to the transaction's entry
 * (its strings are copied; the entry is stored by spool_wtxn_commit()).
 * 0, -EINVAL (type out of range), -ENOMEM, or the error that poisoned the
 * transaction. */
int outbox_put(struct spool_wtxn *t, const struct acct_event *ev);

/* Hand every committed entry not yet handed over to log, then flush it.
 * *n (may be NULL) gets how many records were handed over. 0 when
 * everything handed over is in the file; else the log's -errno (the
 * entries stay; the next call retries) or a read error of the spool. */
int outbox_flush(struct spool *s, struct acct_log *log, uint64_t *n);

/* Inside a write transaction: delete the entries outbox_flush() saw
 * written. *upto gets the last sequence deleted (0: nothing to do); once
 * the transaction commits, pass it to outbox_trimmed(). */
int outbox_trim(struct spool_wtxn *t, uint64_t *upto);
void outbox_trimmed(struct spool *s, uint64_t upto);

/* outbox_trim() in a transaction of its own (at start-up and shutdown). */
int outbox_trim_now(struct spool *s);

/* Entries stored (committed transactions' records not known written),
 * for tests and metrics. Any thread. */
int outbox_count(struct spool *s, uint64_t *n);

#endif
