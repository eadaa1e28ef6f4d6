/*
 * delete_commit.c - the spool commit of an operator's delete (see delete.h):
 * in the writer's group commit, each recipient still queued is removed
 * (like a bounce: spool_del_rcpt) and, when asked, its message gets one DSN
 * (failed, 5.0.0, "deleted by the operator") in the same transaction; after
 * the commit, a `cancelled` record each, the campaigns' counters, and the
 * request's answer.
 *
 * A commit that fails goes back to the writer after a growing delay, like an
 * outcome (outcome.c), until it succeeds or the error is fatal; then its
 * recipients, already out of the scheduler, stay in the spool and come back
 * after a restart (nothing is recorded as cancelled). apply() may run more
 * than once (a failed batch is split and retried): it starts from scratch
 * each time.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/acct_log.h"
#include "core/config.h"
#include "engine/accept_store.h"
#include "engine/bounce_dsn.h"
#include "engine/campaign.h"
#include "engine/delete_internal.h"
#include "engine/engine.h"
#include "queue/cancel_pending.h"
#include "queue/outbox.h"

#define DELETE_RETRY_MIN_MS 20
#define DELETE_RETRY_MAX_MS 5000
#define DELETE_DIAG "deleted by the operator"

/* ---- the commit ------------------------------------------------------------------ */

static void item_clear(struct cancel_item *it)
{
	free(it->addr);
	free(it->sender);
	free(it->campaign);
	free(it->queue);
	it->addr = it->sender = it->campaign = it->queue = NULL;
	it->done = false;
	it->dsn_id = 0;
}

static void dsns_clear(struct delete_commit *c)
{
	for (size_t i = 0; i < c->n_dsns; i++) {
		free(c->dsns[i].body);
		free(c->dsns[i].sender);
	}
	c->n_dsns = 0;
}

static void commit_free(struct delete_commit *c)
{
	for (size_t i = 0; i < c->n; i++) {
		item_clear(&c->items[i]);
		delete_how_put(c->items[i].how);
	}
	dsns_clear(c);
	free(c->dsns);
	free(c->items);
	free(c);
}

static int item_cmp(const void *a, const void *b)
{
	const struct cancel_item *x = a, *y = b;

	if (x->msg_id != y->msg_id)
		return x->msg_id < y->msg_id ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The lower-case domain of an address. */
void delete_domain_of(const char *addr, char *dom, size_t cap)
{
	const char *at = strrchr(addr, '@');
	size_t i = 0;

	for (const char *p = at ? at + 1 : addr; *p && i + 1 < cap; p++)
		dom[i++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
	dom[i] = '\0';
}

static struct accept_batch *dsn_accept(struct delete_commit *c, struct cancel_dsn *d, struct accept_batch *ab,
				       struct accept_msg *am)
{
	*am = (struct accept_msg){.body = d->body, .len = d->len, .id = d->id, .count = 1};
	*ab = (struct accept_batch){
		.eng = c->eng,
		.sender = "",
		.campaign = "",
		.source_ip = "",
		.src_type = SPOOL_SRC_LOCAL,
		.arrival_ms = c->time_ms,
		.due_ms = c->time_ms,
		.ids_given = true,
		.reserve = true,
		.rcpts = (const char *const *)&d->sender,
		.msgs = am,
		.n_msgs = 1,
	};
	return ab;
}

/* One DSN for the items [a, b) of one message that were found and whose
 * filter asked for one, stored in t. */
static int message_dsn(struct delete_commit *c, const struct config *cfg, struct spool_wtxn *t, size_t a, size_t b)
{
	struct dsn_rcpt *rcpts;
	struct dsn_info info;
	struct spool_msg m;
	struct cancel_dsn *d;
	struct accept_batch ab;
	struct accept_msg am;
	const struct cancel_item *first = NULL;
	size_t n = 0;
	int ret;

	for (size_t i = a; i < b; i++)
		if (c->items[i].done && c->items[i].how->dsn) {
			first = first ? first : &c->items[i];
			n++;
		}
	if (!n || !first->sender[0])
		return 0; /* never a DSN to the null sender */
	if (!(rcpts = calloc(n, sizeof(*rcpts))))
		return -ENOMEM;
	d = &c->dsns[c->n_dsns];
	memset(d, 0, sizeof(*d));
	if ((ret = spool_alloc_id(t, &d->id)) || (ret = spool_wtxn_get_msg(t, first->msg_id, &m))) {
		free(rcpts);
		return ret == SPOOL_NOTFOUND ? 0 : ret;
	}
	n = 0;
	for (size_t i = a; i < b; i++)
		if (c->items[i].done && c->items[i].how->dsn)
			rcpts[n++] = (struct dsn_rcpt){
				.addr = c->items[i].addr,
				.action = "failed",
				.status = "5.0.0",
				.diagnostic = DELETE_DIAG,
			};
	info = (struct dsn_info){
		.reporting_mta = cfg->host_name,
		.sender = first->sender,
		.orig_id = first->msg_id,
		.dsn_id = d->id,
		.orig = m.body,
		.orig_len = m.body_len,
		.arrival_ms = first->queued_ms,
		.rcpts = rcpts,
		.n_rcpts = n,
	};
	ret = dsn_build(&info, &d->body, &d->len);
	free(rcpts);
	if (ret)
		return ret;
	if (!(d->sender = strdup(first->sender))) {
		free(d->body);
		return -ENOMEM;
	}
	c->n_dsns++;
	if ((ret = accept_store_put(dsn_accept(c, d, &ab, &am), t)))
		return ret;
	for (size_t i = a; i < b; i++)
		if (c->items[i].done && c->items[i].how->dsn)
			c->items[i].dsn_id = d->id;
	return 0;
}

/* Items [a, b) of one message: read what the records need, DSN, remove. */
static int apply_message(struct delete_commit *c, const struct config *cfg, struct spool_wtxn *t, size_t a, size_t b)
{
	struct spool_msg m;
	int ret;
	char dom[256];

	/* a late or at-start commit settles the delete's durable entry
	 * (queue/cancel_pending.h), whether the recipient is still here or not */
	for (size_t i = a; !c->job && i < b; i++)
		if ((ret = cancel_pending_del(t, c->items[i].msg_id, c->items[i].idx)))
			return ret;
	ret = spool_wtxn_get_msg(t, c->items[a].msg_id, &m);
	if (ret == SPOOL_NOTFOUND)
		return 0; /* every recipient finished meanwhile */
	if (ret)
		return ret;
	for (size_t i = a; i < b; i++) {
		struct cancel_item *it = &c->items[i];
		struct spool_rcpt r;

		if ((ret = spool_wtxn_get_rcpt(t, it->msg_id, it->idx, &r)) == SPOOL_NOTFOUND)
			continue;
		if (ret)
			return ret;
		delete_domain_of(r.addr, dom, sizeof(dom));
		it->addr = strdup(r.addr);
		it->sender = strdup(m.sender);
		it->campaign = strdup(m.campaign);
		it->queue = strdup(engine_queue_name(cfg, dom));
		if (!it->addr || !it->sender || !it->campaign || !it->queue)
			return -ENOMEM;
		it->queued_ms = r.queued_ms;
		it->attempts = r.attempts;
		it->size = m.body_len;
		it->done = true;
	}
	if ((ret = message_dsn(c, cfg, t, a, b)))
		return ret;
	for (size_t i = a; i < b; i++)
		if (c->items[i].done && (ret = spool_del_rcpt(t, c->items[i].msg_id, c->items[i].idx, NULL)))
			return ret;
	return 0;
}

/* The request's candidates no worker held: a finished one loses its
 * tombstone; the others are in flight (counted by job_in_flight), and each
 * gets a durable entry in this commit, so that a restart before it comes
 * back still cancels it (queue/cancel_pending.h). */
static int sweep_candidates(struct delete_job *job, struct spool_wtxn *t)
{
	struct delete_state *st = job->eng->deletes;

	for (size_t i = 0; i < job->n_cands; i++) {
		struct spool_rcpt r;
		int ret = spool_wtxn_get_rcpt(t, job->cands[i].msg_id, job->cands[i].idx, &r);
		bool still;

		if (ret && ret != SPOOL_NOTFOUND)
			return ret;
		if (ret == 0 &&
		    (ret = cancel_pending_put(t, job->cands[i].msg_id, job->cands[i].idx, job->how->dsn, job->how->text)))
			return ret;
		pthread_mutex_lock(&st->mu);
		still = *delete_tomb_find(st, job->cands[i].msg_id, job->cands[i].idx) != NULL;
		if (still && ret == SPOOL_NOTFOUND)
			delete_how_put(delete_tomb_take(st, job->cands[i].msg_id, job->cands[i].idx));
		pthread_mutex_unlock(&st->mu);
	}
	return 0;
}

/* A cancelled record per removed recipient, committed with the removal
 * (queue/outbox.h). */
static int cancelled_records(const struct delete_commit *c, struct spool_wtxn *t)
{
	for (size_t i = 0; i < c->n; i++) {
		const struct cancel_item *it = &c->items[i];
		struct acct_event ev;
		int ret;

		if (!it->done)
			continue;
		ev = (struct acct_event){
			.type = ACCT_CANCELLED,
			.time_ms = c->time_ms,
			.id = it->msg_id,
			.sender = it->sender,
			.recipient = it->addr,
			.queue = it->queue,
			.attempt = it->attempts,
			.queued_time_ms = it->queued_ms,
			.size = it->size,
			.has_size = true,
			.campaign = it->campaign[0] ? it->campaign : NULL,
			.dsn_id = it->dsn_id,
			.filter = it->how->text,
		};
		if ((ret = outbox_put(t, &ev)))
			return ret;
	}
	return 0;
}

static int commit_apply(struct spool_req *req, struct spool_wtxn *t, void *ctx)
{
	struct delete_commit *c = container_of(req, struct delete_commit, req);
	struct config_gen *gen = engine_config_get(c->eng);
	size_t a = 0;
	int ret = 0;

	(void)ctx;
	for (size_t i = 0; i < c->n; i++)
		item_clear(&c->items[i]);
	dsns_clear(c);
	while (a < c->n) {
		size_t b = a + 1;

		while (b < c->n && c->items[b].msg_id == c->items[a].msg_id)
			b++;
		if ((ret = apply_message(c, &gen->cfg, t, a, b)))
			break;
		a = b;
	}
	config_gen_put(gen);
	if (ret || (ret = cancelled_records(c, t)))
		return ret;
	return c->job ? sweep_candidates(c->job, t) : 0;
}

/* After the request's commit (writer thread): its recipients still to be
 * decided - tombstones waiting, and those a worker caught whose commit has
 * not been recorded yet. Every other one it matched is recorded (in
 * how->cancelled) or finished. */
static size_t job_in_flight(struct delete_job *job)
{
	struct delete_state *st = job->eng->deletes;
	size_t n = 0;

	pthread_mutex_lock(&st->mu);
	for (size_t i = 0; i < job->n_cands; i++) {
		struct delete_tomb *t = *delete_tomb_find(st, job->cands[i].msg_id, job->cands[i].idx);

		n += t && t->how == job->how;
	}
	n += job->how->caught;
	pthread_mutex_unlock(&st->mu);
	return n;
}

/* A late commit (delete_catch's) is over, recorded or not. */
static void caught_done(struct delete_commit *c)
{
	struct delete_state *st = c->eng->deletes;

	if (c->job)
		return;
	pthread_mutex_lock(&st->mu);
	for (size_t i = 0; i < c->n; i++)
		c->items[i].how->caught--;
	pthread_mutex_unlock(&st->mu);
}

/* An at-start commit is over: wake delete_recover. */
static void commit_signal(struct delete_commit *c, int result)
{
	struct delete_wait *w = c->wait;

	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->result = result;
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void commit_done(struct spool_req *req, int result, void *ctx)
{
	struct delete_commit *c = container_of(req, struct delete_commit, req);
	struct engine *eng = ctx;

	if (result != 0) {
		unsigned delay = DELETE_RETRY_MIN_MS << (c->tries < 8 ? c->tries : 8);

		if (delay > DELETE_RETRY_MAX_MS)
			delay = DELETE_RETRY_MAX_MS;
		c->tries++;
		if (!spool_is_fatal(result) && spool_writer_retry(&eng->writer, &c->req, delay)) {
			if (c->tries == 1 || c->tries % 20 == 0)
				fprintf(stderr, "salvod: delete of %zu recipients not recorded yet (%s, try %u)\n", c->n,
					spool_strerror(result), c->tries);
			return;
		}
		fprintf(stderr, "salvod: delete of %zu recipients not recorded (%s); they stay queued\n", c->n,
			spool_strerror(result));
		if (c->job)
			delete_job_answer(c->job, 503, NULL, spool_strerror(result));
		caught_done(c);
		commit_signal(c, result);
		commit_free(c);
		return;
	}
	for (size_t i = 0; i < c->n; i++) {
		const struct cancel_item *it = &c->items[i];

		if (!it->done)
			continue;
		it->how->cancelled++;
		__atomic_fetch_add(&eng->deletes->cancelled, 1, __ATOMIC_RELAXED);
		if (c->wait)
			c->wait->cancelled++;
		else if (eng->campaigns && it->campaign[0]) {
			uint32_t id = campaign_find(eng->campaigns, it->campaign);

			if (id != CAMPAIGN_NONE)
				campaign_note_end(eng->campaigns, id, CAMPAIGN_END_REMOVED, it->attempts > 0);
		}
	}
	for (size_t i = 0; !c->wait && i < c->n_dsns; i++) {
		struct accept_batch ab;
		struct accept_msg am;

		accept_store_committed(dsn_accept(c, &c->dsns[i], &ab, &am));
	}
	caught_done(c);
	/* deleted: every recipient recorded as cancelled by this request,
	 * those a worker caught on their way before this commit included */
	if (c->job)
		__atomic_fetch_add(&eng->deletes->deletes, 1, __ATOMIC_RELAXED);
	if (c->job)
		delete_job_answer(c->job, 200,
			   json_pack("{s:I, s:I}", "deleted", (json_int_t)c->job->how->cancelled, "in_flight",
				     (json_int_t)job_in_flight(c->job)),
			   NULL);
	commit_signal(c, 0);
	commit_free(c);
}

void delete_commit_submit(struct delete_commit *c)
{
	qsort(c->items, c->n, sizeof(*c->items), item_cmp); /* a message's items together */
	c->req.apply = commit_apply;
	c->req.done = commit_done;
	c->time_ms = wall_now_ms();
	spool_writer_submit(&c->eng->writer, &c->req);
}
