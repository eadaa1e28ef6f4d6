/*
 * delete.h - an operator's delete (POST /api/v1/delete): removing queued
 * recipients that match a filter, durably, with a `cancelled` accounting
 * record each and, when asked, a DSN to the sender.
 *
 * How one delete runs:
 *   1. HTTP thread (delete_start): walk the spool in one read snapshot;
 *      every matching recipient gets a tombstone, (message id, index) in a
 *      set shared by the engine (struct delete_state, one mutex).
 *   2. Every worker gets a WORKER_MAIL_DELETE and, on its own thread, takes
 *      out of its scheduler (heap and ready lists) each recipient that has
 *      a tombstone, taking the tombstone with it (delete_worker_mail).
 *   3. When the last worker is done, one spool writer request removes the
 *      taken recipients in one commit (like a bounce: spool_del_rcpt), adds
 *      one DSN per message when asked, and after the commit writes the
 *      `cancelled` records and answers {"deleted": N, "in_flight": M}.
 *
 * A recipient no worker held waiting was in flight: in an SMTP transaction,
 * parked for a rollup lookup, or in a mailbox between shards. Its tombstone
 * stays, and the worker decides when it next sees it (delete_catch, called
 * where a recipient would be re-queued or sent): one that comes back
 * deferred, or reaches a transaction, is cancelled then (its own commit and
 * record); one that finished (delivered, bounced, expired) only drops the
 * tombstone once its outcome is committed (delete_forget). So no recipient is both delivered and
 * cancelled. `deleted` counts the `cancelled` records written for this
 * request when it answers (its commit's, and those of recipients a worker
 * caught on their way before it); `in_flight` the ones still undecided
 * (their records come when they return, unless they are delivered).
 * The request's commit also writes each in-flight one to the spool
 * (queue/cancel_pending.h), so a restart before it comes back cancels it
 * at start (delete_recover), unless its delivery was committed first.
 * A recipient matched by two overlapping
 * deletes belongs to the first.
 *
 * Threads: the tombstone set is the only shared state; workers look at it
 * only while it is non-empty (delete_pending: one atomic load otherwise).
 */
#ifndef SALVO_DELETE_H
#define SALVO_DELETE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct engine;
struct worker;
struct sched_rcpt;
struct mailbox_item;
struct http_request;
struct delete_filter;

struct delete_tomb;

/* The tombstones: a hash by (message id, index), under mu. */
struct delete_state {
	size_t n;                  /* tombstones; written under mu, read atomically */
	pthread_mutex_t mu;
	struct delete_tomb **buckets;
	size_t n_buckets;
	uint64_t deletes;          /* requests answered 200 (atomic) */
	uint64_t cancelled;        /* cancelled records committed (atomic) */
};

int delete_state_new(struct delete_state **out);
void delete_state_free(struct delete_state *st);   /* NULL is a no-op */
/* Tombstones waiting (any thread; a snapshot). */
size_t delete_state_count(const struct delete_state *st);

/* salvo_deletes_total, salvo_cancelled_total and salvo_delete_pending for
 * /metrics (json_buf from core/json_str.h). 0, or non-zero out of memory. */
struct json_buf;
int delete_metrics(const struct delete_state *st, struct json_buf *b);

/* Is any tombstone waiting? The workers' fast path. */
static inline bool delete_pending(const struct delete_state *st)
{
	return st && __atomic_load_n(&st->n, __ATOMIC_ACQUIRE) != 0;
}

/* Step 1 (HTTP thread): f is consumed. 0: the request is answered later,
 * from another thread; else -errno and nothing happened (the caller
 * answers). */
int delete_start(struct engine *eng, struct delete_filter *f, struct http_request *req);

/* Step 2, on the worker that got the mail. */
void delete_worker_mail(struct worker *w, struct mailbox_item *it);
/* A worker's mail never delivered (shutdown). */
void delete_mail_discard(struct mailbox_item *it);

/* On the owning worker, for a recipient about to be queued again or sent:
 * when it has a tombstone, it is cancelled (r is freed, its commit
 * submitted) and true is returned; else false and r is untouched. */
bool delete_catch(struct worker *w, struct sched_rcpt *r);
/* A recipient finished (delivered, bounced, expired, suppressed) and its
 * outcome is in the spool (outcome.c, writer thread): its tombstone, if
 * any, goes. Until that commit it stays, so a delete answered meanwhile
 * counts it in flight: a kill -9 before the commit leaves it queued, and
 * the delete's durable entry cancels it at the restart. */
void delete_forget(struct engine *eng, uint64_t msg_id, uint32_t idx);

/* At start, after the spool writer and before recovery: cancel the
 * recipients that deletes matched in flight before the last stop
 * (delete_recover.c). Waits for the commit; *n_cancelled says how many
 * were still queued and are now cancelled. 0 or a spool error. */
int delete_recover(struct engine *eng, size_t *n_cancelled);

#endif
