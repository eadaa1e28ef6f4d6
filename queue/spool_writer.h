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
 * through the wtxn it is given. If apply() fails, the whole batch is aborted
 * and every request in it is retried alone, so one failure (say, a full map)
 * fails only its own request (result < 0) and the others still commit.
 */
#ifndef SALVO_SPOOL_WRITER_H
#define SALVO_SPOOL_WRITER_H

#include <pthread.h>
#include <stdbool.h>

#include "queue/spool.h"

struct spool_req;
typedef int (*spool_apply_fn)(struct spool_req *req, struct spool_wtxn *t, void *ctx);
typedef void (*spool_done_fn)(struct spool_req *req, int result, void *ctx);

struct spool_req {
	struct spool_req *next;    /* writer's queue link */
	spool_apply_fn apply;
	spool_done_fn done;
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
};

struct spool_writer {
	struct spool *spool;
	void *ctx;                 /* passed to apply/done (the engine's context) */
	void (*after_batch)(void *ctx); /* after each batch's done()s (e.g. flush logs) */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct spool_req *head, *tail;
	bool stopping;
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
/* Drains what is queued, then joins the thread. */
void spool_writer_stop(struct spool_writer *w);

#endif
