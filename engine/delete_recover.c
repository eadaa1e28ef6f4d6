/*
 * delete_recover.c - at start, the deletes a restart interrupted: every
 * recipient a delete matched in flight and that is still in the spool is
 * cancelled (its `cancelled` record with the delete's filter, its DSN when
 * asked) before recovery queues anything, so it is never attempted again.
 * One whose delivery (or bounce) was committed before the stop is gone
 * from the spool: its entry is only dropped. See queue/cancel_pending.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/delete.h"
#include "engine/delete_internal.h"
#include "engine/engine.h"
#include "queue/cancel_pending.h"

struct pend_ctx {
	struct delete_commit *c;
	size_t cap;
	struct delete_how *last;   /* entries of one delete share their how */
};

static int pend_one(void *arg, uint64_t msg_id, uint32_t idx, bool dsn, const char *filter)
{
	struct pend_ctx *x = arg;
	struct delete_commit *c = x->c;
	struct delete_how *how = x->last;

	if (c->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 64;
		struct cancel_item *it = realloc(c->items, cap * sizeof(*it));
		struct cancel_dsn *d;

		if (!it)
			return -ENOMEM;
		c->items = it;
		if (!(d = realloc(c->dsns, cap * sizeof(*d))))
			return -ENOMEM;
		c->dsns = d;
		x->cap = cap;
	}
	if (!how || how->dsn != dsn || strcmp(how->text, filter) != 0) {
		size_t n = strlen(filter);

		if (!(how = malloc(sizeof(*how) + n + 1)))
			return -ENOMEM;
		*how = (struct delete_how){.refs = 0, .dsn = dsn};
		memcpy(how->text, filter, n + 1);
		x->last = how;
	}
	how->refs++;   /* one per item; commit_free puts them */
	how->caught++; /* caught_done takes them back */
	c->items[c->n++] = (struct cancel_item){.msg_id = msg_id, .idx = idx, .how = how};
	return 0;
}

static void items_free(struct delete_commit *c)
{
	for (size_t i = 0; i < c->n; i++)
		delete_how_put(c->items[i].how);
	free(c->items);
	free(c->dsns);
	free(c);
}

int delete_recover(struct engine *eng, size_t *n_cancelled)
{
	struct delete_commit *c = calloc(1, sizeof(*c));
	struct pend_ctx x = {.c = c};
	struct delete_wait w = {.done = false};
	int ret;

	*n_cancelled = 0;
	if (!c)
		return -ENOMEM;
	if ((ret = cancel_pending_each(eng->spool, pend_one, &x)) != 0 || !c->n) {
		items_free(c);
		return ret;
	}
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	c->eng = eng;
	c->wait = &w;
	delete_commit_submit(c); /* c is the writer's now; done() frees it */
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	*n_cancelled = w.cancelled;
	return w.result;
}
