/*
 * spool_writer.c - the single LMDB writer thread and its group commit
 * (see spool_writer.h for the contract).
 */
#include "queue/spool_writer.h"

#include <stdio.h>
#include <string.h>

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
	int ret = writer_apply_batch(w, batch);

	w->stats.requests += n;
	if (n > w->stats.max_batch)
		w->stats.max_batch = n;
	if (ret == 0 || n == 1) {
		w->stats.commits++;
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

static void *writer_main(void *arg)
{
	struct spool_writer *w = arg;

	for (;;) {
		struct spool_req *batch, *last;
		unsigned n = 0;

		pthread_mutex_lock(&w->mu);
		while (!w->head && !w->stopping)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->head) {
			pthread_mutex_unlock(&w->mu);
			break;
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
		if (w->after_batch)
			w->after_batch(w->ctx);
	}
	return NULL;
}

int spool_writer_start(struct spool_writer *w, struct spool *s, void *ctx,
		       void (*after_batch)(void *ctx))
{
	memset(w, 0, sizeof(*w));
	w->spool = s;
	w->ctx = ctx;
	w->after_batch = after_batch;
	w->max_batch = 4096;
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
