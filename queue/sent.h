/*
 * sent.h - what was delivered, kept for a while so that a bounce or a
 * complaint arriving days later can be tied back to the message, its
 * recipient and its campaign (database "sent" in the spool's environment).
 *
 * Key: message id and recipient index (the pair a VERP return path names).
 * Value: the time, the recipient, the envelope sender and the campaign. A
 * record is written in the same commit as the delivery outcome and pruned
 * after the retention period (oldest first: ids grow with time).
 */
#ifndef SALVO_SENT_H
#define SALVO_SENT_H

#include <stddef.h>
#include <stdint.h>

#include "queue/spool.h"

struct sent_rec {
	int64_t time_ms;
	char recipient[320];
	char sender[320];
	char campaign[128];
};

int sent_put(struct spool_wtxn *t, uint64_t msg_id, uint32_t idx, const char *recipient, const char *sender,
	     const char *campaign, int64_t now_ms);
/* 0, SPOOL_NOTFOUND or an error. */
int sent_get(struct spool_rtxn *rt, uint64_t msg_id, uint32_t idx, struct sent_rec *out);
/* Delete up to max records older than before_ms, in key order, stopping at
 * the first younger one; *n_deleted says how many. Ids grow with time, so
 * key order is nearly time order: a recipient delivered late (after retries)
 * holds back the younger-keyed records behind it until it ages out itself,
 * which is at most bounce-after later. Bounded work per call: the caller
 * commits between batches (salvod prunes on a timer, SENT_PRUNE_BATCH at a
 * time). */
int sent_prune(struct spool_wtxn *t, int64_t before_ms, size_t max, size_t *n_deleted);
/* The time of the first record in key order (the next one sent_prune()
 * looks at): SPOOL_NOTFOUND when the index is empty. Lets a caller skip a
 * write transaction when nothing is due for pruning. */
int sent_first_time(struct spool_rtxn *rt, int64_t *time_ms);
/* Records in the index (O(1)). */
int sent_count(struct spool_rtxn *rt, uint64_t *n);

#define SENT_PRUNE_BATCH 1000

#endif
