/*
 * stats.h - what the engine tells its operators: per-queue snapshots that
 * each worker publishes once a second, and process-wide counters.
 *
 * A worker owns its queues outright, so readers (the HTTP API threads) never
 * touch them: every STATS_PUBLISH_MS the worker fills a snapshot (struct
 * stats_snap) of its shard and swaps it in under a mutex; the mutex guards
 * only the pointer swap and the reference count. A reader takes a
 * reference under the mutex and reads the snapshot after unlocking, so it
 * never holds up the worker, however many queues it reads. The worker
 * fills the snapshot it swapped out last time when no reader holds it
 * (else a new one), growing its arrays only when the shard grew and
 * shrinking them when it shrank to a quarter: no allocation per queue, and
 * none at all in the steady state. Rates are per minute, exponentially smoothed over about ten
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
	bool no_queue;             /* a paused name with no queue (nothing held) */
	char redirect[256];        /* a rollup member: its rollup queue */
	char last_error[160];
	struct unit_stat *units;   /* n_units (cfg->n_vmtas), inside the snapshot block */
	size_t n_units;
};

/* Counters of the queues freed while idle (so totals never go down). */
struct gone_stat {
	uint64_t delivered, deferred, bounced, expired, queues;
};

struct stats_snap {
	unsigned refs;             /* atomic: the publication's and the readers' */
	size_t n, cap;             /* queues filled, queues allocated */
	size_t n_units;            /* per queue */
	struct queue_stat *queues; /* cap */
	struct unit_stat *units;   /* cap * n_units */
	struct gone_stat gone;
	int64_t published_ms;      /* wall clock */
};

struct worker_stats {
	pthread_mutex_t mu;        /* guards cur (the pointer and taking a ref) */
	struct stats_snap *cur;
	struct stats_snap *spare;  /* worker thread only: the last one swapped out */
	struct gone_stat gone;     /* worker thread only */
};

/* Process-wide counters (atomics; any thread). */
struct engine_counters {
	uint64_t messages_received;
	uint64_t recipients_received;
	uint64_t injection_refused; /* 4xx/5xx at DATA end for storage reasons */
	uint64_t connections_opened; /* outbound sessions started (a socket made) */
	uint64_t connect_resource_errors; /* outbound sockets not made: EMFILE, EADDRNOTAVAIL... */
	uint64_t fd_shortages;     /* of those, EMFILE/ENFILE: every worker sheds its idle sessions */
	uint64_t fd_yields;        /* sessions put off near the descriptor limit for a higher
				    * queue-priority queue waiting for one (egress_prio.c) */
	uint64_t reports_unmatched; /* bounce-domain reports naming no delivery of ours */
	uint64_t reports_refused;   /* refused: over bounce-max-reports-per-ip */
};

struct worker;
struct engine;

void worker_stats_init(struct worker_stats *ws);
void worker_stats_fini(struct worker_stats *ws);
/* On the worker's thread: rebuild and swap in its snapshot. */
void worker_stats_publish(struct worker *w);
/* Any thread: a reference to the worker's current snapshot (NULL before
 * the first publication); give it back with stats_snap_put(). */
struct stats_snap *worker_stats_get(struct worker_stats *ws);
void stats_snap_put(struct stats_snap *sn);

#endif
