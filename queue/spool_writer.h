/*
 * spool_writer.h - the one thread that writes the spool, with group commit.
 *
 * Producers (intake sessions, delivery outcomes) hand requests to the writer;
 * it gathers everything queued, applies the batch in one LMDB write
 * transaction, commits it (one fsync for the whole batch), then calls each
 * request's done() with the result. The batch grows under load and is a
 * single request when idle, so latency stays low when traffic is light.
 *
 * A request is owned by its producer; the writer only borrows it between
 * spool_writer_submit() and the done() call, which runs ON THE WRITER THREAD:
 * done() typically posts the request back to the producer's mailbox.
 *
 * Gathering: when the previous commit ended less than SPOOL_GATHER_BUSY_US
 * ago (the spool is busy) and fewer than SPOOL_GATHER_MIN requests are
 * queued, the writer waits gather_us before taking the batch. A steady
 * trickle (DKIM signing paces arrivals) then makes fewer, larger commits:
 * fewer fsyncs and fewer wake-ups of a writer that would otherwise preempt
 * the workers several times per message. An idle spool commits a lone
 * request at once; a busy one already has its batch. gather_us 0: never.
 *
 * apply() runs inside the batch transaction and must only touch the spool
 * through the wtxn it is given. If the batch fails (an apply() or the
 * commit), it is aborted and split in halves, each tried on its own, down
 * to single requests: one failing request among n costs about 2 log2(n)
 * tries, not n, and only its own done() sees the error (result < 0).
 *
 * Each batch's first try also deletes the accounting records the outbox
 * has seen written to the log (outbox_trim(), queue/outbox.h): no
 * transaction of its own, and a split batch's halves skip it.
 *
 * Fatal errors (spool_is_fatal(): MDB_PANIC, EIO...) are not split: the
 * batch fails with the error, the writer stops writing for good (every
 * later request fails with SPOOL_STOPPED, without touching LMDB) and
 * on_fatal() is called once, on the writer thread, to say why and have the
 * process restarted.
 *
 * Retries: a producer whose request failed for a passing reason (a full
 * disk, the fault hook) may hand it back with spool_writer_retry() from its
 * done(): the writer keeps it and applies it again after the delay, ahead
 * of nothing else. Retry refuses (false) once the writer stops or failed;
 * the producer then gives up on the request.
 */
#ifndef SALVO_SPOOL_WRITER_H
#define SALVO_SPOOL_WRITER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "queue/spool.h"

struct spool_req;
typedef int (*spool_apply_fn)(struct spool_req *req, struct spool_wtxn *t, void *ctx);
typedef void (*spool_done_fn)(struct spool_req *req, int result, void *ctx);

struct spool_req {
	struct spool_req *next;    /* writer's queue link */
	spool_apply_fn apply;
	spool_done_fn done;
	uint64_t due_us;           /* retries only: when to apply again */
};

/* Commit latency buckets (upper bounds in microseconds; the last is +Inf). */
#define SPOOL_COMMIT_BUCKETS 12
#define SPOOL_GATHER_MIN 8
#define SPOOL_GATHER_BUSY_US 5000
extern const uint64_t spool_commit_bucket_us[SPOOL_COMMIT_BUCKETS - 1];

/* Written by the writer thread, read by anyone with __atomic loads. */
struct spool_writer_stats {
	uint64_t commits;
	uint64_t requests;
	uint64_t max_batch;
	uint64_t commit_hist[SPOOL_COMMIT_BUCKETS]; /* not cumulative */
	uint64_t commit_us_sum;
	uint64_t gathers;          /* batches that waited gather_us for more */
	uint64_t failures;         /* commits (or applies) that failed */
	uint64_t retries;          /* requests handed back by spool_writer_retry() */
	int fatal;                 /* the error that stopped the writer, or 0 */
};

struct spool_writer {
	struct spool *spool;
	void *ctx;                 /* passed to apply/done (the engine's context) */
	void (*after_batch)(void *ctx); /* after each batch's done()s (e.g. flush logs) */
	/* Set before the first submit (optional): the writer met a fatal error. */
	void (*on_fatal)(void *ctx, int err);
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct spool_req *head, *tail;
	struct spool_req *later;   /* retries, by due time (mono_us in due_us) */
	bool stopping;
	bool failed;               /* a fatal error: nothing is written any more */
	bool idle_waiting;         /* in the cond wait: a submit must signal */
	unsigned max_batch;
	unsigned gather_us;
	uint64_t last_end_us;      /* when the last commit ended (writer thread) */
	struct spool_writer_stats stats;
};

int spool_writer_start(struct spool_writer *w, struct spool *s, void *ctx,
		       void (*after_batch)(void *ctx), unsigned gather_us);
/* Any thread. */
void spool_writer_submit(struct spool_writer *w, struct spool_req *req);
/* Any thread: has a fatal error stopped the writer? */
static inline bool spool_writer_failed(struct spool_writer *w)
{
	return __atomic_load_n(&w->stats.fatal, __ATOMIC_ACQUIRE) != 0;
}

/* From a done() (writer thread): apply req again in delay_ms. false when
 * the writer is stopping or failed: the request is not taken. */
bool spool_writer_retry(struct spool_writer *w, struct spool_req *req, unsigned delay_ms);
/* Drains what is queued (retries included, once more each, at once), then
 * joins the thread. */
void spool_writer_stop(struct spool_writer *w);

#endif
