/*
 * spool_writer.c - the single LMDB writer thread and its group commit
 * (see spool_writer.h for the contract).
 */
#include "queue/spool_writer.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

const uint64_t spool_commit_bucket_us[SPOOL_COMMIT_BUCKETS - 1] = {
	250, 500, 1000, 2000, 5000, 10000, 25000, 50000, 100000, 250000, 1000000,
};

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void count_commit(struct spool_writer *w, uint64_t us)
{
	size_t b = 0;

	while (b < SPOOL_COMMIT_BUCKETS - 1 && us > spool_commit_bucket_us[b])
		b++;
	__atomic_fetch_add(&w->stats.commit_hist[b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&w->stats.commit_us_sum, us, __ATOMIC_RELAXED);
}

static int writer_apply_batch(struct spool_writer *w, struct spool_req *batch)
{
	struct spool_wtxn *t;
	int ret = spool_wtxn_begin(w->spool, &t);

	if (ret)
		return ret;
	for (struct spool_req *r = batch; r; r = r->next) {
		ret = r->apply(r, t, w->ctx);
		if (ret) {
			spool_wtxn_abort(t);
			return ret;
		}
	}
	return spool_wtxn_commit(t);
}

static void writer_finish(struct spool_writer *w, struct spool_req *batch, int result)
{
	while (batch) {
		struct spool_req *next = batch->next;

		batch->next = NULL;
		batch->done(batch, result, w->ctx);
		batch = next;
	}
}

static void writer_process(struct spool_writer *w, struct spool_req *batch, unsigned n)
{
	uint64_t t0 = mono_us();
	int ret = writer_apply_batch(w, batch);

	count_commit(w, mono_us() - t0);
	__atomic_fetch_add(&w->stats.requests, n, __ATOMIC_RELAXED);
	if (n > w->stats.max_batch)
		__atomic_store_n(&w->stats.max_batch, n, __ATOMIC_RELAXED);
	if (ret == 0 || n == 1) {
		__atomic_fetch_add(&w->stats.commits, 1, __ATOMIC_RELAXED);
		if (ret)
			fprintf(stderr, "salvod: spool write failed: %s\n", spool_strerror(ret));
		writer_finish(w, batch, ret);
		return;
	}
	/* Isolate the failure: every request of the failed batch goes alone. */
	while (batch) {
		struct spool_req *next = batch->next;

		batch->next = NULL;
		writer_process(w, batch, 1);
		batch = next;
	}
}

/* Under w->mu, with a request queued: wait for company first? */
static bool should_gather(const struct spool_writer *w)
{
	unsigned q = 0;

	if (!w->gather_us || w->stopping || mono_us() - w->last_end_us >= SPOOL_GATHER_BUSY_US)
		return false;
	for (const struct spool_req *r = w->head; r && q < SPOOL_GATHER_MIN; r = r->next)
		q++;
	return q < SPOOL_GATHER_MIN;
}

static void *writer_main(void *arg)
{
	struct spool_writer *w = arg;

	for (;;) {
		struct spool_req *batch, *last;
		unsigned n = 0;

		pthread_mutex_lock(&w->mu);
		while (!w->head && !w->stopping) {
			w->idle_waiting = true;
			pthread_cond_wait(&w->cv, &w->mu);
			w->idle_waiting = false;
		}
		if (!w->head) {
			pthread_mutex_unlock(&w->mu);
			break;
		}
		if (should_gather(w)) {
			/* Submits do not signal meanwhile: the writer looks again
			 * when it wakes. */
			struct timespec ts = {0, (long)w->gather_us * 1000};

			pthread_mutex_unlock(&w->mu);
			nanosleep(&ts, NULL);
			__atomic_fetch_add(&w->stats.gathers, 1, __ATOMIC_RELAXED);
			pthread_mutex_lock(&w->mu);
		}
		/* Take up to max_batch requests: everything that queued up while
		 * the previous commit was on disk. */
		batch = last = w->head;
		n = 1;
		while (last->next && n < w->max_batch) {
			last = last->next;
			n++;
		}
		w->head = last->next;
		if (!w->head)
			w->tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&w->mu);

		writer_process(w, batch, n);
		w->last_end_us = mono_us();
		if (w->after_batch)
			w->after_batch(w->ctx);
	}
	return NULL;
}

int spool_writer_start(struct spool_writer *w, struct spool *s, void *ctx,
		       void (*after_batch)(void *ctx), unsigned gather_us)
{
	memset(w, 0, sizeof(*w));
	w->spool = s;
	w->ctx = ctx;
	w->after_batch = after_batch;
	w->max_batch = 4096;
	w->gather_us = gather_us;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	return -pthread_create(&w->thread, NULL, writer_main, w);
}

void spool_writer_submit(struct spool_writer *w, struct spool_req *req)
{
	req->next = NULL;
	pthread_mutex_lock(&w->mu);
	if (w->tail)
		w->tail->next = req;
	else
		w->head = req;
	w->tail = req;
	if (w->idle_waiting)
		pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void spool_writer_stop(struct spool_writer *w)
{
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
}
