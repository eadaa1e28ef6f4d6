/*
 * stats.h - what the engine tells its operators: per-queue snapshots that
 * each worker publishes once a second, and process-wide counters.
 *
 * A worker owns its queues outright, so readers (the HTTP API threads) never
 * touch them: every STATS_PUBLISH_MS the worker builds a fresh array of
 * struct queue_stat for its shard and swaps it in under a mutex that only
 * readers share. Readers lock one worker's snapshot at a time and copy out
 * what they need. Rates are per minute, exponentially smoothed over about ten
 * seconds from the counters' deltas at each publication.
 *
 * Counters are per recipient, like the accounting log's records: delivered
 * equals the number of `delivery` records, and so on.
 */
#ifndef SALVO_STATS_H
#define SALVO_STATS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATS_PUBLISH_MS 1000

/* One (queue, virtual MTA) unit. */
struct unit_stat {
	unsigned connections;
	uint64_t delivered;        /* transactions with at least one 250 */
	int64_t disabled_until_ms; /* wall clock; 0 = enabled */
};

struct queue_stat {
	char name[256];
	size_t ready, waiting, in_flight;
	unsigned connections, connection_limit;
	uint64_t delivered, deferred, bounced, expired;
	double delivered_per_min, deferred_per_min, bounced_per_min;
	bool paused, backoff;
	bool rollup;               /* the queue of an mx-rollup */
	char redirect[256];        /* a rollup member: its rollup queue */
	char last_error[160];
	struct unit_stat *units;   /* n_units (cfg->n_vmtas), inside the snapshot block */
	size_t n_units;
};

struct worker_stats {
	pthread_mutex_t mu;
	struct queue_stat *queues; /* one malloc block with the units after it */
	size_t n_queues;
	int64_t published_ms;      /* wall clock */
};

/* Process-wide counters (atomics; any thread). */
struct engine_counters {
	uint64_t messages_received;
	uint64_t recipients_received;
	uint64_t injection_refused; /* 4xx/5xx at DATA end for storage reasons */
	uint64_t reports_unmatched; /* bounce-domain reports naming no delivery of ours */
	uint64_t reports_refused;   /* refused: over bounce-max-reports-per-ip */
};

struct worker;
struct engine;

void worker_stats_init(struct worker_stats *ws);
void worker_stats_fini(struct worker_stats *ws);
/* On the worker's thread: rebuild and swap in its snapshot. */
void worker_stats_publish(struct worker *w);

#endif
