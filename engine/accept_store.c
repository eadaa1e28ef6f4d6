/*
 * accept_store.c - storing an accepted message (see accept_store.h): sign,
 * submit, commit, log, route; start-up recovery; and the store thread that
 * keeps slow follow-up work off the spool writer.
 *
 * Why a thread of its own: the writer is the single LMDB writer, so every
 * millisecond it spends on anything but committing is added to every
 * SMTP client's wait for its 250. Rendering and RSA-signing the next 256
 * messages of an HTTP injection used to run there; it runs here now.
 *
 * Diagnostics: "out of memory scheduling ID; it goes out after a restart"
 * (the recipient is durable but not queued in memory), once per message.
 */
#include "engine/accept_store.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/acct_log.h"
#include "core/config.h"
#include "engine/acct_headers.h"
#include "engine/campaign.h"
#include "engine/dkim.h"
#include "engine/engine.h"
#include "queue/outbox.h"

#define RECOVER_ROUTE_CHUNK 1024 /* recovered recipients per mailbox post */

static const char *addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : addr;
}

/* ---- the store thread ----------------------------------------------------------- */

static void *store_main(void *arg)
{
	struct accept_store *st = arg;

	pthread_mutex_lock(&st->mu);
	for (;;) {
		struct accept_job *job = st->head;

		if (!job) {
			if (st->stopping) {
				st->running = false; /* later defers run inline */
				break;
			}
			pthread_cond_wait(&st->cv, &st->mu);
			continue;
		}
		st->head = job->next;
		if (!st->head)
			st->tail = NULL;
		pthread_mutex_unlock(&st->mu);
		job->run(job);
		pthread_mutex_lock(&st->mu);
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

int accept_store_start(struct accept_store *st)
{
	sigset_t all, old;
	int ret;

	memset(st, 0, sizeof(*st));
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	st->running = true;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = -pthread_create(&st->thread, NULL, store_main, st);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	st->started = ret == 0;
	if (!st->started)
		st->running = false;
	return ret;
}

void accept_store_stop(struct accept_store *st)
{
	if (!st->started)
		return;
	pthread_mutex_lock(&st->mu);
	__atomic_store_n(&st->stopping, true, __ATOMIC_RELEASE);
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
	pthread_join(st->thread, NULL);
	st->started = false;
}

bool accept_store_stopping(struct accept_store *st)
{
	return __atomic_load_n(&st->stopping, __ATOMIC_ACQUIRE);
}

void accept_store_defer(struct accept_store *st, struct accept_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&st->mu);
	if (!st->running) {
		/* the thread is gone (or never started): nobody else will run it */
		pthread_mutex_unlock(&st->mu);
		job->run(job);
		return;
	}
	if (st->tail)
		st->tail->next = job;
	else
		st->head = job;
	st->tail = job;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
}

/* ---- signing -------------------------------------------------------------------- */

void accept_store_sign(struct engine *eng, size_t pool, struct accept_msg *m)
{
	static int reported;
	struct config_gen *g = engine_config_get(eng);
	const struct config_pool *pl;
	char *hdr = NULL, *signed_body, err[256];
	size_t hl = 0, vmta = SIZE_MAX;
	int rc;

	if (!g->dkim || !dkim_keys_count(g->dkim) || !g->cfg.domains[0].dkim_sign) {
		config_gen_put(g);
		return;
	}
	/* per-vmta keys: the message's pool decides (pools only grow across
	 * reloads, so the index names the same pool here) */
	if (dkim_keys_per_vmta(g->dkim)) {
		pl = pool < g->cfg.n_pools ? &g->cfg.pools[pool] : &g->cfg.pools[0];
		switch (dkim_choose(g->dkim, pl->vmtas, pl->n_vmtas, m->body, m->len, &vmta)) {
		case DKIM_NONE:
			config_gen_put(g);
			return;
		case DKIM_PER_VMTA:
			m->dkim_at_delivery = true;
			config_gen_put(g);
			return;
		case DKIM_SAME:
			break;
		}
	}
	rc = dkim_sign_vmta(g->dkim, vmta, m->body, m->len, wall_now_ms() / 1000, &hdr, &hl, err, sizeof(err));
	config_gen_put(g);
	if (rc < 0 && !__atomic_exchange_n(&reported, 1, __ATOMIC_RELAXED))
		fprintf(stderr, "salvod: DKIM signing failed, sending unsigned: %s\n", err);
	if (rc != 0)
		return;
	if ((signed_body = malloc(hl + m->len))) {
		memcpy(signed_body, hdr, hl);
		memcpy(signed_body + hl, m->body, m->len);
		free(m->body);
		m->body = signed_body;
		m->len += hl;
	}
	free(hdr);
}

/* The pool of the batch's address i. */
static size_t accept_rcpt_pool(const struct accept_batch *b, size_t i)
{
	return b->rcpt_pools ? b->rcpt_pools[i] : b->pool;
}

/* A message's reception records, one per recipient, committed with it. */
static int put_receptions(struct spool_wtxn *t, const struct config *cfg, const struct accept_batch *b,
			  const struct accept_msg *m)
{
	char *headers = acct_headers_take(cfg, m->body, m->len);
	int ret = 0;

	for (size_t k = 0; k < m->count && !ret; k++) {
		const char *rcpt = b->rcpts[m->first + k];
		struct acct_event ev = {
			.type = ACCT_RECEPTION,
			.time_ms = b->arrival_ms,
			.id = m->id,
			.sender = b->sender,
			.recipient = rcpt,
			.queue = addr_domain(rcpt),
			.source_ip = b->source_ip,
			.campaign = b->campaign && b->campaign[0] ? b->campaign : NULL,
			.size = m->len,
			.has_size = true,
			.src_type = spool_src_name(b->src_type),
			.pool = accept_rcpt_pool(b, m->first + k) && accept_rcpt_pool(b, m->first + k) < cfg->n_pools
					? cfg->pools[accept_rcpt_pool(b, m->first + k)].name : NULL,
			.headers = headers,
			.envid = m->envid && m->envid[0] ? m->envid : NULL,
			.orcpt = b->rcpt_orcpt ? b->rcpt_orcpt[m->first + k] : NULL,
		};

		ret = outbox_put(t, &ev);
	}
	free(headers);
	return ret;
}

/* ---- the commit ----------------------------------------------------------------- */

int accept_store_put(struct accept_batch *b, struct spool_wtxn *t)
{
	struct config_gen *g = engine_config_get(b->eng);
	const struct config *cfg = &g->cfg;
	/* pools only grow across reloads (reload_diff.h): an index taken
	 * under an earlier generation names the same pool here */
	const char *pool = b->pool && b->pool < cfg->n_pools ? cfg->pools[b->pool].name : "";
	int ret = 0;

	for (size_t i = 0; i < b->n_msgs && !ret; i++) {
		struct accept_msg *m = &b->msgs[i];
		struct spool_msg sm = {0};

		if (!b->ids_given && (ret = spool_alloc_id(t, &m->id)))
			break;
		sm.id = m->id;
		sm.arrival_ms = b->arrival_ms;
		sm.n_rcpt = (uint32_t)m->count;
		sm.sender = b->sender;
		sm.campaign = b->campaign;
		sm.source_ip = b->source_ip;
		sm.src_type = b->src_type;
		sm.body = m->body;
		sm.body_len = m->len;
		sm.smtputf8 = m->smtputf8;
		sm.no_verp = m->no_verp;
		sm.envid = m->envid;
		sm.dkim_at_delivery = m->dkim_at_delivery;
		sm.ret = m->ret;
		/* records first: spool_put_msg()'s headroom check then counts them */
		if (b->received && (ret = put_receptions(t, cfg, b, m)))
			break;
		ret = b->reserve ? spool_put_msg_reserve(t, &sm) : spool_put_msg(t, &sm);
		for (size_t k = 0; !ret && k < m->count; k++) {
			struct spool_rcpt r = {
				.msg_id = m->id,
				.idx = (uint32_t)k,
				.next_attempt_ms = b->due_ms,
				.queued_ms = b->arrival_ms,
				.addr = b->rcpts[m->first + k],
				.last_response = "",
				.pool = pool,
			};
			size_t rp = accept_rcpt_pool(b, m->first + k);

			if (b->rcpt_pools)
				r.pool = rp && rp < cfg->n_pools ? cfg->pools[rp].name : "";
			if (b->rcpt_notify)
				r.notify = b->rcpt_notify[m->first + k];
			if (b->rcpt_orcpt)
				r.orcpt = b->rcpt_orcpt[m->first + k];
			ret = spool_put_rcpt(t, &r);
		}
		/* the campaign's durable totals, in the same commit */
		if (!ret && b->received && b->campaign && b->campaign[0]) {
			struct campaign_totals tot = {.first_ms = b->arrival_ms, .last_ms = b->arrival_ms,
						      .received = m->count};

			ret = campaign_stats_add(t, b->campaign, &tot);
		}
	}
	config_gen_put(g);
	return ret;
}

/* One message's recipients to their shards (one post per shard). */
static void route_msg(struct engine *eng, const struct accept_batch *b, const struct accept_msg *m)
{
	struct sched_rcpt **rs = calloc(m->count, sizeof(*rs));
	uint32_t campaign = campaign_intern(eng->campaigns, b->campaign);
	bool lost = false;

	campaign_note_queued(eng->campaigns, campaign, m->count, 0, b->arrival_ms);
	if (b->received) {
		struct campaign_totals tot = {.received = m->count};

		campaign_note_totals(eng->campaigns, campaign, &tot);
	}
	for (size_t k = 0; k < m->count; k++) {
		struct sched_rcpt *r = sched_rcpt_new(m->id, (uint32_t)k, addr_domain(b->rcpts[m->first + k]),
						      b->due_ms, b->arrival_ms, 0,
						      (uint16_t)accept_rcpt_pool(b, m->first + k));

		if (r)
			r->campaign = campaign;
		if (r && rs)
			rs[k] = r;
		else if (r)
			engine_route_rcpt(eng, r);
		else
			lost = true;
	}
	if (rs)
		engine_route_rcpts(eng, rs, m->count);
	free(rs);
	if (lost)
		fprintf(stderr, "salvod: out of memory scheduling %016llx; it goes out after a restart\n",
			(unsigned long long)m->id);
}

/* Writer thread, after the commit (the reception records committed with
 * the messages: put_receptions()). */
void accept_store_committed(struct accept_batch *b)
{
	struct engine *eng = b->eng;

	for (size_t i = 0; i < b->n_msgs; i++) {
		const struct accept_msg *m = &b->msgs[i];

		if (b->received) {
			__atomic_fetch_add(&eng->counters.messages_received, 1, __ATOMIC_RELAXED);
			__atomic_fetch_add(&eng->counters.recipients_received, m->count, __ATOMIC_RELAXED);
		}
		route_msg(eng, b, m);
	}
}

static int store_apply(struct spool_req *req, struct spool_wtxn *t, void *ctx)
{
	(void)ctx;
	return accept_store_put(container_of(req, struct accept_batch, req), t);
}

static void store_done(struct spool_req *req, int result, void *ctx)
{
	struct accept_batch *b = container_of(req, struct accept_batch, req);

	(void)ctx;
	if (result == 0)
		accept_store_committed(b);
	b->done(b, result);
}

void accept_store_submit(struct accept_batch *b)
{
	if (b->sign)
		for (size_t i = 0; i < b->n_msgs; i++)
			accept_store_sign(b->eng, b->pool, &b->msgs[i]);
	b->req.apply = store_apply;
	b->req.done = store_done;
	spool_writer_submit(&b->eng->writer, &b->req);
}

/* ---- recovery ------------------------------------------------------------------- */

/* Recovery reads each recipient's campaign from its message: a small cache
 * of message id -> campaign id, since a message's recipients tend to come
 * together (one lookup in "msg" per message, not per recipient, mostly). */
#define RECOVER_CACHE 256
struct recover_ctx {
	struct engine *eng;
	struct accept_recovered *out;
	struct spool_rtxn *rt;     /* for the messages; NULL: campaigns unknown */
	struct config_gen *gen;    /* the walk's configuration (pool names) */
	uint64_t ids[RECOVER_CACHE];
	uint32_t camps[RECOVER_CACHE];
};

static uint32_t recover_campaign(struct recover_ctx *x, uint64_t msg_id)
{
	size_t slot = (size_t)(msg_id ^ (msg_id >> 17)) % RECOVER_CACHE;
	struct spool_msg m;

	if (x->ids[slot] == msg_id && msg_id)
		return x->camps[slot];
	x->ids[slot] = msg_id;
	x->camps[slot] = x->rt && spool_get_msg(x->rt, msg_id, &m) == 0 ? campaign_intern(x->eng->campaigns, m.campaign)
									  : CAMPAIGN_NONE;
	return x->camps[slot];
}

static int recover_one(void *arg, const struct spool_rcpt *r)
{
	struct recover_ctx *x = arg;
	struct engine *eng = x->eng;
	struct accept_recovered *out = x->out;
	ssize_t pool = r->pool && r->pool[0] ? config_pool_find(&x->gen->cfg, r->pool) : 0;
	struct sched_rcpt *sr;

	if (out->n == out->cap) {
		size_t cap = out->cap ? out->cap * 2 : 4096;
		struct sched_rcpt **nr = realloc(out->r, cap * sizeof(*nr));

		if (!nr)
			return -ENOMEM;
		out->r = nr;
		out->cap = cap;
	}
	sr = sched_rcpt_new(r->msg_id, r->idx, addr_domain(r->addr), r->next_attempt_ms, r->queued_ms, r->attempts,
			    pool > 0 && pool <= UINT16_MAX ? (uint16_t)pool : 0);
	if (!sr)
		return -ENOMEM;
	sr->campaign = recover_campaign(x, r->msg_id);
	campaign_note_queued(eng->campaigns, sr->campaign, 1, r->attempts > 0, r->queued_ms);
	out->r[out->n++] = sr;
	return 0;
}

int accept_store_recover(struct engine *eng, struct accept_recovered *out)
{
	struct recover_ctx *x = calloc(1, sizeof(*x));
	int ret;

	memset(out, 0, sizeof(*out));
	if (!x)
		return -ENOMEM;
	x->eng = eng;
	x->out = out;
	x->gen = engine_config_get(eng);
	if (spool_rtxn_begin(eng->spool, &x->rt) != 0)
		x->rt = NULL;
	ret = spool_recover(eng->spool, recover_one, x);
	if (x->rt)
		spool_rtxn_end(x->rt);
	config_gen_put(x->gen);
	free(x);
	if (ret)
		accept_store_free_recovered(out);
	return ret;
}

void accept_store_free_recovered(struct accept_recovered *rec)
{
	for (size_t i = 0; i < rec->n; i++)
		free(rec->r[i]);
	free(rec->r);
	memset(rec, 0, sizeof(*rec));
}

/* In chunks, so no worker spends one long turn adopting a huge spool while
 * its listeners wait. Consumes rec. */
void accept_store_route_recovered(struct engine *eng, struct accept_recovered *rec)
{
	for (size_t i = 0; i < rec->n; i += RECOVER_ROUTE_CHUNK)
		engine_route_rcpts(eng, rec->r + i, rec->n - i < RECOVER_ROUTE_CHUNK ? rec->n - i : RECOVER_ROUTE_CHUNK);
	free(rec->r);
	memset(rec, 0, sizeof(*rec));
}
