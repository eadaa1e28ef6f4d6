/*
 * sent_prune.c - the "sent" index's retention, in bounded batches on the
 * spool writer (see sent_prune.h).
 */
#include "queue/sent_prune.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "queue/sent.h"

#define PRUNER_OF(r) ((struct sent_pruner *)((char *)(r) - offsetof(struct sent_pruner, req)))

static int prune_apply(struct spool_req *req, struct spool_wtxn *t, void *ctx)
{
	struct sent_pruner *p = PRUNER_OF(req);

	(void)ctx;
	return sent_prune(t, p->cutoff_ms, SENT_PRUNE_BATCH, &p->last_n);
}

static void prune_done(struct spool_req *req, int result, void *ctx)
{
	struct sent_pruner *p = PRUNER_OF(req);

	(void)ctx;
	__atomic_fetch_add(&p->passes, 1, __ATOMIC_RELAXED);
	if (result == 0) {
		__atomic_fetch_add(&p->pruned, p->last_n, __ATOMIC_RELAXED);
		if (p->last_n == SENT_PRUNE_BATCH) {
			/* more is old: the next batch queues behind what waits now */
			spool_writer_submit(p->w, &p->req);
			return;
		}
	} else {
		fprintf(stderr, "salvod: pruning the sent index failed: %s (tried again later)\n",
			spool_strerror(result));
	}
	__atomic_store_n(&p->busy, false, __ATOMIC_RELEASE);
}

void sent_pruner_init(struct sent_pruner *p, struct spool_writer *w, int64_t retention_ms)
{
	memset(p, 0, sizeof(*p));
	p->w = w;
	p->retention_ms = retention_ms;
	p->req.apply = prune_apply;
	p->req.done = prune_done;
}

void sent_pruner_tick(struct sent_pruner *p, int64_t now_ms)
{
	struct spool_rtxn *rt;
	int64_t first = 0;
	int ret;

	if (__atomic_load_n(&p->busy, __ATOMIC_ACQUIRE) || spool_writer_failed(p->w))
		return;
	if (spool_rtxn_begin(p->w->spool, &rt))
		return;
	ret = sent_first_time(rt, &first);
	spool_rtxn_end(rt);
	if (ret != 0 && ret != -EBADMSG)
		return; /* empty (or unreadable: the writer reports it) */
	if (ret == 0 && first >= now_ms - p->retention_ms)
		return;
	p->cutoff_ms = now_ms - p->retention_ms;
	__atomic_store_n(&p->busy, true, __ATOMIC_RELEASE);
	spool_writer_submit(p->w, &p->req);
}
