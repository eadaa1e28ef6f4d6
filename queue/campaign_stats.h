/*
 * campaign_stats.h - each campaign's durable totals, kept in the spool
 * (database "campaign" in its LMDB environment) so that GET
 * /api/v1/campaigns counts the same after a restart: recipients received,
 * delivered, bounced, expired and suppressed, first and last reception.
 * What is queued now is not kept here: recovery counts it from the
 * recipients themselves.
 *
 * Key: the campaign id as given (1..CAMPAIGN_STATS_NAME_MAX bytes).
 * Value (little-endian, version 1, 64 bytes): [0] u32 version, [4] u32 0,
 * [8] i64 first_ms, [16] i64 last_ms, [24] u64 received, [32] u64
 * delivered, [40] u64 bounced, [48] u64 expired, [56] u64 suppressed. A
 * longer value (a later version) is read for these fields.
 *
 * Written in the commits that change them (accepting mail, outcomes), one
 * read-modify-write per batch, by the spool writer. Records are not pruned:
 * one per campaign ever seen.
 */
#ifndef SALVO_CAMPAIGN_STATS_H
#define SALVO_CAMPAIGN_STATS_H

#include <stdint.h>

#include "queue/spool.h"

#define CAMPAIGN_STATS_NAME_MAX 127

struct campaign_totals {
	int64_t first_ms, last_ms;  /* 0: none */
	uint64_t received, delivered, bounced, expired, suppressed;
};

/* Add delta to the campaign's record (made on first use): counts add,
 * first_ms and last_ms widen. -EINVAL for an empty or over-long name. */
int campaign_stats_add(struct spool_wtxn *t, const char *name, const struct campaign_totals *delta);
/* cb for every record (its own read txn); a non-zero return stops the walk
 * and is returned. Records that do not decode are skipped. */
int campaign_stats_each(struct spool *s, int (*cb)(void *arg, const char *name, const struct campaign_totals *tot),
			void *arg);

#endif
