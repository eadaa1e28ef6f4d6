/*
 * spool_writer.c - the single LMDB writer thread and its group commit
 * (see spool_writer.h for the contract).
 */
#include "queue/spool_writer.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "queue/outbox.h"

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

/* trim: first delete the outbox entries already in the log (outbox.h).
 * Only a batch's first try does: should the deletes be what fails, the
 * halves of the batch still commit without them. */
static int writer_apply_batch(struct spool_writer *w, struct spool_req *batch, bool trim)
{
	struct spool_wtxn *t;
	uint64_t trimmed = 0;
	int ret = spool_wtxn_begin(w->spool, &t);

	if (ret)
		return ret;
	if (trim && (ret = outbox_trim(t, &trimmed))) {
		spool_wtxn_abort(t);
		return ret;
	}
	for (struct spool_req *r = batch; r; r = r->next) {
		ret = r->apply(r, t, w->ctx);
		if (ret) {
			spool_wtxn_abort(t);
			return ret;
		}
	}
	ret = spool_wtxn_commit(t);
	if (ret == 0 && trimmed)
		outbox_trimmed(w->spool, trimmed);
	return ret;
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

static void writer_fail(struct spool_writer *w, int err)
{
	if (w->failed)
		return;
	pthread_mutex_lock(&w->mu);
	w->failed = true;
	pthread_mutex_unlock(&w->mu);
	__atomic_store_n(&w->stats.fatal, err, __ATOMIC_RELEASE);
	fprintf(stderr, "salvod: spool write failed: %s: this error cannot be recovered from here; "
		"the spool takes no more writes (mail is refused, deliveries stop)\n", spool_strerror(err));
	if (w->on_fatal)
		w->on_fatal(w->ctx, err);
}

static void writer_process(struct spool_writer *w, struct spool_req *batch, unsigned n, bool first)
{
	uint64_t t0 = mono_us();
	struct spool_req *second, *last;
	unsigned half;
	int ret;

	if (w->failed) {
		writer_finish(w, batch, SPOOL_STOPPED);
		return;
	}
	ret = writer_apply_batch(w, batch, first);
	count_commit(w, mono_us() - t0);
	__atomic_fetch_add(&w->stats.commits, 1, __ATOMIC_RELAXED);
	if (ret)
		__atomic_fetch_add(&w->stats.failures, 1, __ATOMIC_RELAXED);
	if (ret && spool_is_fatal(ret))
		writer_fail(w, ret);
	if (ret == 0 || n == 1 || w->failed) {
		if (ret && n == 1 && !w->failed)
			fprintf(stderr, "salvod: spool write failed: %s\n", spool_strerror(ret));
		writer_finish(w, batch, ret);
		return;
	}
	/* Isolate the failure by halves: the good half commits in one go. */
	half = n / 2;
	last = batch;
	for (unsigned i = 1; i < half; i++)
		last = last->next;
	second = last->next;
	last->next = NULL;
	writer_process(w, batch, half, false);
	writer_process(w, second, n - half, false);
}

bool spool_writer_retry(struct spool_writer *w, struct spool_req *req, unsigned delay_ms)
{
	struct spool_req **p = &w->later;
	bool ok;

	pthread_mutex_lock(&w->mu);
	ok = !w->stopping && !w->failed;
	pthread_mutex_unlock(&w->mu);
	if (!ok)
		return false;
	req->due_us = mono_us() + (uint64_t)delay_ms * 1000u;
	while (*p && (*p)->due_us <= req->due_us)
		p = &(*p)->next;
	req->next = *p;
	*p = req;
	__atomic_fetch_add(&w->stats.retries, 1, __ATOMIC_RELAXED);
	return true;
}

/* Writer thread: retries that are due (all of them when stopping) join
 * the queue, in front: they are older than what is queued. */
static void take_due_retries(struct spool_writer *w, uint64_t now, bool all)
{
	struct spool_req *head = w->later, *last = NULL;

	while (w->later && (all || w->later->due_us <= now)) {
		last = w->later;
		w->later = w->later->next;
	}
	if (!last)
		return;
	pthread_mutex_lock(&w->mu);
	last->next = w->head;
	w->head = head;
	if (!w->tail)
		w->tail = last;
	pthread_mutex_unlock(&w->mu);
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

		take_due_retries(w, mono_us(), false);
		pthread_mutex_lock(&w->mu);
		while (!w->head && !w->stopping) {
			w->idle_waiting = true;
			if (w->later) {
				/* a retry is due then (CLOCK_MONOTONIC: see start) */
				struct timespec ts = {(time_t)(w->later->due_us / 1000000u),
						      (long)(w->later->due_us % 1000000u) * 1000};

				if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0) {
					w->idle_waiting = false;
					break;
				}
			} else {
				pthread_cond_wait(&w->cv, &w->mu);
			}
			w->idle_waiting = false;
		}
		if (!w->head && !w->stopping) {
			pthread_mutex_unlock(&w->mu);
			continue; /* a retry is due */
		}
		if (!w->head && w->later) {
			pthread_mutex_unlock(&w->mu);
			take_due_retries(w, 0, true); /* stopping: once more each */
			continue;
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

		__atomic_fetch_add(&w->stats.requests, n, __ATOMIC_RELAXED);
		if (n > w->stats.max_batch)
			__atomic_store_n(&w->stats.max_batch, n, __ATOMIC_RELAXED);
		writer_process(w, batch, n, true);
		w->last_end_us = mono_us();
		if (w->after_batch)
			w->after_batch(w->ctx);
	}
	return NULL;
}

int spool_writer_start(struct spool_writer *w, struct spool *s, void *ctx,
		       void (*after_batch)(void *ctx), unsigned gather_us)
{
	pthread_condattr_t ca;

	memset(w, 0, sizeof(*w));
	w->spool = s;
	w->ctx = ctx;
	w->after_batch = after_batch;
	w->max_batch = 4096;
	w->gather_us = gather_us;
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
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
