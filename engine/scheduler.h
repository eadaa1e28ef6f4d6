/*
 * scheduler.h - a shard's in-memory scheduling state: recipients waiting for a
 * due time (a binary min-heap) and per-destination queues with FIFO ready
 * lists that connections drain.
 *
 * The spool is the truth; this is the working set, rebuilt from the spool at
 * start. A waiting recipient costs one struct sched_rcpt (64 bytes plus its
 * domain) and one heap slot: no per-recipient timers, and between due
 * times the cost is zero (the worker sleeps until the heap's minimum).
 *
 * A queue is named by its destination: the recipient's domain, or what
 * that domain's `queue-to` says, or (moved there by egress once the MX
 * hosts are known) an mx-rollup queue. Its ready recipients wait in one
 * FIFO per virtual MTA pool, so a connection bound to one source IP takes
 * only recipients whose pool includes that IP.
 *
 * Lifetime: a queue exists while it has work or state worth keeping. The
 * shard's sweep (sched_sweep) visits a bounded number of queues per call
 * and frees one that has been empty (nothing ready, waiting or in flight)
 * for idle_ms and whose egress state agrees (no connection, no lookup, no
 * throttle or backoff still running). A pause is not kept in the queue but
 * in the shard's set of paused names (sched_pause_set), so a freed queue,
 * or one never created, stays paused.
 *
 * Ownership: a struct sched_rcpt is malloc'd by whoever creates it (intake
 * commit, recovery, outcome) and owned by exactly one place at a time: a
 * mailbox in transit, the shard's heap, a queue's ready list, or an egress
 * transaction; it is freed when its recipient is done. Single-threaded: a
 * struct sched belongs to its worker.
 */
#ifndef SALVO_SCHEDULER_H
#define SALVO_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/mailbox.h"

struct config;
struct config_domain;

struct sched_queue;

struct sched_rcpt {
	struct mailbox_item link;   /* mailbox transit and ready-list link */
	struct sched_queue *queue;  /* set once the shard adopts it */
	uint64_t msg_id;
	int64_t due_ms;             /* next attempt: wall clock in transit (as stored),
				     * the loop's monotonic clock once a shard holds it
				     * (sched_due_mono()), so a stepped wall clock does
				     * not move a retry */
	int64_t queued_ms;          /* wall clock: accepted */
	uint32_t idx;
	uint16_t attempts;          /* saturates at UINT16_MAX */
	uint16_t pool;              /* index into cfg->pools */
	uint32_t campaign;          /* interned id (engine/campaign.h), 0: none */
	char domain[];              /* lower-case destination domain */
};

struct sched_fifo {
	struct sched_rcpt *head, *tail;
	size_t n;
};

/* queue-priority 0-100 in bands of ten (100 joins 90-99): the kick order */
#define SCHED_PRIO_BANDS 10
#define SCHED_PRIO_BAND(p) ((p) >= 90 ? 9u : (unsigned)(p) / 10u)

struct sched_queue {
	struct sched_queue *hnext;  /* hash chain */
	char *domain;               /* the queue's name (see above) */
	const struct config_domain *cfg;
	struct sched_fifo *fifos;   /* one per pool (cfg->n_pools) */
	size_t n_fifos;
	size_t n_ready;             /* sum over the fifos */
	size_t n_waiting;           /* in the heap */
	size_t n_inflight;          /* handed to a connection */
	struct sched_fifo parked;   /* ready, but their campaign is paused */
	void *egress;               /* egress state, owned by egress.c */
	bool kicked;                /* already on the shard's kick list */
	struct sched_queue *kick_next;
	int64_t empty_since_ms;     /* seen empty by the sweep since (0: not) */
};

/* A paused queue name (a small set: operators pause a few queues). */
struct sched_paused {
	struct sched_paused *next;
	char name[];
};

struct sched {
	const struct config *cfg;
	struct sched_queue **buckets;
	size_t n_buckets, n_queues;
	struct sched_rcpt **heap;
	size_t heap_len, heap_cap;
	/* queues with new ready work this turn, one list per queue-priority
	 * band (SCHED_PRIO_BAND), popped highest band first: when a turn's
	 * capacity runs out, the higher-priority queues had it first */
	struct sched_queue *kick_head[SCHED_PRIO_BANDS];
	uint16_t kick_bands;           /* bit b: kick_head[b] is not empty */
	struct sched_paused *paused;   /* queue names paused by the operator */
	size_t sweep_bucket;           /* where the next sweep goes on */
	uint64_t queues_freed;         /* by the sweep, since start */
	const struct campaigns *campaigns; /* pause flags by id; NULL: none */
	size_t n_parked;               /* sum of the queues' parked lists */
};

int sched_init(struct sched *s, const struct config *cfg);
/* Frees every queue and every recipient still held (heap and ready lists).
 * queue_free is called for each queue's egress state first (may be NULL). */
void sched_fini(struct sched *s, void (*queue_free)(struct sched_queue *q));

struct sched_rcpt *sched_rcpt_new(uint64_t msg_id, uint32_t idx, const char *domain,
				  int64_t due_ms, int64_t queued_ms, uint32_t attempts, uint16_t pool);

/* The queue a recipient domain is first queued in: its `queue-to`, else
 * the domain itself. */
const char *sched_queue_name_for(const struct config *cfg, const char *domain);

/* A reload: every queue takes its settings from cfg (config_domain_for),
 * and gets a FIFO for each pool cfg adds (pools only grow: reload_diff.h).
 * The caller keeps cfg alive while s uses it. -ENOMEM leaves a queue
 * without its new pools' FIFOs (their recipients go to pool 0). */
int sched_rebind(struct sched *s, const struct config *cfg);

/* The queue of that name (created on first use); NULL only on ENOMEM. */
struct sched_queue *sched_queue_get(struct sched *s, const char *domain);
struct sched_queue *sched_queue_find(struct sched *s, const char *domain);

/* Take ownership of r: ready now if due, else into the heap; into r->queue
 * when already set (a retry stays in its queue), else the queue named by
 * sched_queue_name_for(). -ENOMEM fails without taking it. */
int sched_add(struct sched *s, struct sched_rcpt *r, int64_t now_ms);
/* A wall-clock due time as a monotonic one: as far ahead of mono_now as it
 * is of wall_now (already due: mono_now). */
static inline int64_t sched_due_mono(int64_t due_wall, int64_t wall_now, int64_t mono_now)
{
	int64_t ahead, due;

	if (due_wall <= wall_now)
		return mono_now;
	if (__builtin_sub_overflow(due_wall, wall_now, &ahead) || __builtin_add_overflow(mono_now, ahead, &due))
		return INT64_MAX;
	return due;
}
/* Move every recipient due at now_ms to its queue's ready list. Returns how many. */
size_t sched_run_due(struct sched *s, int64_t now_ms);
/* Milliseconds until the earliest waiting recipient is due (INT64_MAX if none). */
int64_t sched_next_due_in(const struct sched *s, int64_t now_ms);

void sched_ready_push(struct sched *s, struct sched_queue *q, struct sched_rcpt *r);
/* The next ready recipient of any pool (failing a whole queue, shutdown). */
struct sched_rcpt *sched_ready_pop(struct sched_queue *q);
struct sched_rcpt *sched_ready_pop_pool(struct sched_queue *q, size_t pool);
/* Remove and return the first ready recipient of message msg_id among the
 * first `window` entries of a pool's FIFO (batching recipients of one
 * message), or NULL. */
struct sched_rcpt *sched_ready_take_msg(struct sched_queue *q, size_t pool, uint64_t msg_id, size_t window);
/* "Retry now": every recipient of q waiting in the heap becomes ready.
 * O(heap) - an operator action, not a hot path. Returns how many. */
size_t sched_retry_now(struct sched *s, struct sched_queue *q);
/* Every recipient waiting in the heap, on a ready list or parked (its
 * campaign paused) for which take(r, arg) returns true leaves the
 * scheduler; take then owns r (an operator's delete). O(heap + ready +
 * parked), no allocation. Returns how many. */
size_t sched_remove_if(struct sched *s, bool (*take)(struct sched_rcpt *r, void *arg), void *arg);
/* Free empty queues idle for idle_ms: visit at most max_visits queues
 * from where the last sweep stopped. can_free (may be NULL) vetoes a queue
 * (its egress state still matters); on_free is called before it goes (to
 * free that state, fold its counters). Returns how many were freed. */
size_t sched_sweep(struct sched *s, int64_t now_ms, int64_t idle_ms, size_t max_visits,
		   bool (*can_free)(struct sched_queue *q, void *arg),
		   void (*on_free)(struct sched_queue *q, void *arg), void *arg);

/* The operator's pauses, by queue name, whether or not the queue exists.
 * sched_pause_set(..., true) -ENOMEM or 0. */
int sched_pause_set(struct sched *s, const char *name, bool paused);
bool sched_is_paused(const struct sched *s, const char *name);

/* Campaign pauses (engine/campaign.h holds the flags, any thread sets
 * them). A ready recipient of a paused campaign is parked in its queue
 * (sched_ready_push does it) instead of its FIFO: not ready, not
 * attempted, but still queued, and the queue is not freed under it.
 * sched_campaign_park() moves a newly paused campaign's ready recipients
 * aside; sched_campaign_unpark(), after its flag was cleared, puts them
 * back (at the tail of their FIFOs). Both O(ready or parked recipients of
 * the shard): operator actions. Return how many moved. */
size_t sched_campaign_park(struct sched *s, uint32_t campaign);
size_t sched_campaign_unpark(struct sched *s, uint32_t campaign);
/* Would r be parked now (its campaign paused)? */
bool sched_rcpt_parked(const struct sched *s, const struct sched_rcpt *r);

/* Pop the next queue with new ready work (each at most once per kick):
 * the higher queue-priority band first, the last kicked first within one. */
struct sched_queue *sched_next_kicked(struct sched *s);
void sched_kick(struct sched *s, struct sched_queue *q);

#endif
