/*
 * sent_prune.h - keeps the "sent" index (sent.h) to its retention: a timer
 * asks, and the spool writer deletes what is older than
 * bounce-verp-retention, SENT_PRUNE_BATCH records per transaction, one
 * transaction after another (other requests commit in between) until
 * nothing old is left.
 *
 * Threads: sent_pruner_tick() on any one thread (salvod's main thread, once
 * a second); the requests run on the writer. The counters are atomics.
 */
#ifndef SALVO_SENT_PRUNE_H
#define SALVO_SENT_PRUNE_H

#include <stdbool.h>
#include <stdint.h>

#include "queue/spool_writer.h"

struct sent_pruner {
	struct spool_req req;
	struct spool_writer *w;
	int64_t retention_ms;
	int64_t cutoff_ms;         /* of the pass in progress */
	size_t last_n;             /* deleted by the last transaction */
	bool busy;                 /* a pass is in progress (atomic) */
	uint64_t pruned;           /* records deleted since start (atomic) */
	uint64_t passes;           /* transactions made (atomic) */
};

void sent_pruner_init(struct sent_pruner *p, struct spool_writer *w, int64_t retention_ms);
/* Start a pass when none runs and the oldest record is past the retention
 * (a read transaction; no write when there is nothing to do). */
void sent_pruner_tick(struct sent_pruner *p, int64_t now_ms);

#endif
