/*
 * cancel_pending.h - an operator's delete that is not finished yet, kept in
 * the spool (database "cancel" in its LMDB environment): the recipients a
 * delete matched while they were in flight. The delete's own commit writes
 * one entry per such recipient; the commit that later cancels it (when it
 * comes back) removes the entry; one that finished instead leaves a stale
 * entry, dropped at the next start. At start, before recovery queues
 * anything, salvod cancels every recipient that still has an entry and is
 * still in the spool (engine/delete_recover.c), so a restart does not
 * forget a delete.
 *
 * Key: message id (u64) and recipient index (u32), big-endian. Value: one
 * flag byte (1: a DSN was asked for), then the filter as compact JSON.
 */
#ifndef SALVO_CANCEL_PENDING_H
#define SALVO_CANCEL_PENDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/spool.h"

#define CANCEL_FILTER_MAX 16384 /* above any filter delete_filter.c passes */

/* -EINVAL for a filter over CANCEL_FILTER_MAX bytes. */
int cancel_pending_put(struct spool_wtxn *t, uint64_t msg_id, uint32_t idx, bool dsn, const char *filter);
/* No entry: 0 all the same. */
int cancel_pending_del(struct spool_wtxn *t, uint64_t msg_id, uint32_t idx);
/* cb for every entry, in key order, from one read txn; a non-zero return
 * stops the walk and is returned. filter is NUL-terminated, valid only
 * during the call. */
int cancel_pending_each(struct spool *s,
			int (*cb)(void *arg, uint64_t msg_id, uint32_t idx, bool dsn, const char *filter), void *arg);

#endif
