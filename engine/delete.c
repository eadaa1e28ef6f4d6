/*
 * delete.c - an operator's delete: the tombstone set, the request (the
 * spool walk), the workers' part (see delete.h). The commit that removes
 * the recipients is delete_commit.c; what they share, delete_internal.h.
 */
#include "engine/delete.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_str.h"
#include "engine/api.h"
#include "engine/delete_filter.h"
#include "engine/delete_internal.h"
#include "engine/engine.h"
#include "net/http_server.h"

#define DELETE_BUCKETS_MIN 1024

/* ---- the tombstone set ------------------------------------------------------------ */

static size_t key_hash(uint64_t id, uint32_t idx)
{
	uint64_t x = id ^ ((uint64_t)idx * 0x9e3779b97f4a7c15ull);

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (size_t)x;
}

void delete_how_put(struct delete_how *h)
{
	if (h && __atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(h);
}

struct delete_how *delete_how_get(struct delete_how *h)
{
	__atomic_add_fetch(&h->refs, 1, __ATOMIC_RELAXED);
	return h;
}

int delete_state_new(struct delete_state **out)
{
	struct delete_state *st = calloc(1, sizeof(*st));

	if (!st || !(st->buckets = calloc(DELETE_BUCKETS_MIN, sizeof(*st->buckets)))) {
		free(st);
		return -ENOMEM;
	}
	st->n_buckets = DELETE_BUCKETS_MIN;
	pthread_mutex_init(&st->mu, NULL);
	*out = st;
	return 0;
}

void delete_state_free(struct delete_state *st)
{
	if (!st)
		return;
	for (size_t b = 0; b < st->n_buckets; b++)
		while (st->buckets[b]) {
			struct delete_tomb *t = st->buckets[b];

			st->buckets[b] = t->next;
			delete_how_put(t->how);
			free(t);
		}
	free(st->buckets);
	pthread_mutex_destroy(&st->mu);
	free(st);
}

size_t delete_state_count(const struct delete_state *st)
{
	return st ? __atomic_load_n(&st->n, __ATOMIC_ACQUIRE) : 0;
}

/* Under mu. The link that points at the tombstone of (id, idx), or at the
 * NULL ending its chain. */
struct delete_tomb **delete_tomb_find(struct delete_state *st, uint64_t id, uint32_t idx)
{
	struct delete_tomb **pp = &st->buckets[key_hash(id, idx) & (st->n_buckets - 1)];

	while (*pp && ((*pp)->msg_id != id || (*pp)->idx != idx))
		pp = &(*pp)->next;
	return pp;
}

static void tomb_grow(struct delete_state *st)
{
	size_t nb = st->n_buckets * 2;
	struct delete_tomb **b = calloc(nb, sizeof(*b));

	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < st->n_buckets; i++)
		while (st->buckets[i]) {
			struct delete_tomb *t = st->buckets[i];
			size_t h = key_hash(t->msg_id, t->idx) & (nb - 1);

			st->buckets[i] = t->next;
			t->next = b[h];
			b[h] = t;
		}
	free(st->buckets);
	st->buckets = b;
	st->n_buckets = nb;
}

/* Under mu. 1 added, 0 already there (an earlier delete has it), -ENOMEM. */
static int tomb_add(struct delete_state *st, uint64_t id, uint32_t idx, struct delete_how *how)
{
	struct delete_tomb **pp, *t;

	if (st->n >= st->n_buckets)
		tomb_grow(st);
	pp = delete_tomb_find(st, id, idx);
	if (*pp)
		return 0;
	if (!(t = malloc(sizeof(*t))))
		return -ENOMEM;
	*t = (struct delete_tomb){.msg_id = id, .idx = idx, .how = delete_how_get(how)};
	*pp = t;
	__atomic_store_n(&st->n, st->n + 1, __ATOMIC_RELEASE);
	return 1;
}

/* Under mu: remove the tombstone of (id, idx); its how reference is the
 * caller's (NULL: there was none). */
struct delete_how *delete_tomb_take(struct delete_state *st, uint64_t id, uint32_t idx)
{
	struct delete_tomb **pp = delete_tomb_find(st, id, idx), *t = *pp;
	struct delete_how *how;

	if (!t)
		return NULL;
	*pp = t->next;
	how = t->how;
	free(t);
	__atomic_store_n(&st->n, st->n - 1, __ATOMIC_RELEASE);
	return how;
}

int delete_metrics(const struct delete_state *st, struct json_buf *b)
{
	return json_buf_printf(b, "# HELP salvo_deletes_total Operator deletes (POST /api/v1/delete) committed.\n"
			       "# TYPE salvo_deletes_total counter\nsalvo_deletes_total %llu\n",
			       (unsigned long long)(st ? __atomic_load_n(&st->deletes, __ATOMIC_RELAXED) : 0)) |
	       json_buf_printf(b, "# HELP salvo_cancelled_total Recipients cancelled by deletes (cancelled records).\n"
			       "# TYPE salvo_cancelled_total counter\nsalvo_cancelled_total %llu\n",
			       (unsigned long long)(st ? __atomic_load_n(&st->cancelled, __ATOMIC_RELAXED) : 0)) |
	       json_buf_printf(b, "# HELP salvo_delete_in_flight Recipients a delete matched in flight, not decided yet.\n"
			       "# TYPE salvo_delete_in_flight gauge\nsalvo_delete_in_flight %zu\n",
			       delete_state_count(st));
}

/* ---- the request ------------------------------------------------------------------ */

void delete_job_free(struct delete_job *job)
{
	for (unsigned i = 0; job->mails && i < job->eng->n_workers; i++) {
		for (size_t k = 0; k < job->mails[i].n; k++)
			delete_how_put(job->mails[i].got[k].how);
		free(job->mails[i].got);
	}
	free(job->mails);
	free(job->cands);
	delete_how_put(job->how);
	free(job);
}

/* Answer and free the job (j consumed; NULL: an error). */
void delete_job_answer(struct delete_job *job, unsigned status, json_t *j, const char *err)
{
	struct engine *eng = job->eng;

	if (j)
		api_reply_json(job->http, status, j);
	else
		http_reply_error(job->http, status == 200 ? 500 : status, err ? err : "out of memory", NULL);
	__atomic_sub_fetch(&eng->http_inflight, 1, __ATOMIC_RELEASE);
	delete_job_free(job);
}

struct walk {
	struct engine *eng;
	const struct config *cfg;  /* the generation current at the walk's start */
	struct spool_rtxn *rt;
	const struct delete_filter *f;
	struct delete_job *job;
	int64_t now_ms;
	uint64_t msg_id;           /* the message read last */
	bool have_msg;
	struct spool_msg m;
	int err;
};

static int walk_one(void *arg, const struct spool_rcpt *r)
{
	struct walk *wk = arg;
	struct delete_job *job = wk->job;
	struct delete_state *st = wk->eng->deletes;
	char dom[256];
	int ret;

	if (!wk->have_msg || wk->msg_id != r->msg_id) {
		wk->msg_id = r->msg_id;
		wk->have_msg = spool_get_msg(wk->rt, r->msg_id, &wk->m) == 0;
	}
	if (!wk->have_msg)
		return 0; /* a recipient without its message: spool_verify's business */
	delete_domain_of(r->addr, dom, sizeof(dom));
	if (!delete_filter_match(wk->f, engine_queue_name(wk->cfg, dom), dom, wk->m.sender, wk->m.campaign, r->addr,
				 r->queued_ms, wk->now_ms))
		return 0;
	if (job->n_cands == job->cap_cands) {
		size_t cap = job->cap_cands ? job->cap_cands * 2 : 256;
		struct delete_key *k = realloc(job->cands, cap * sizeof(*k));

		if (!k) {
			wk->err = -ENOMEM;
			return 1;
		}
		job->cands = k;
		job->cap_cands = cap;
	}
	pthread_mutex_lock(&st->mu);
	ret = tomb_add(st, r->msg_id, r->idx, job->how);
	pthread_mutex_unlock(&st->mu);
	if (ret < 0) {
		wk->err = ret;
		return 1;
	}
	if (ret > 0)
		job->cands[job->n_cands++] = (struct delete_key){r->msg_id, r->idx};
	return 0;
}

/* Undo the walk's tombstones that no worker took (a failed start). */
static void job_untomb(struct delete_job *job)
{
	struct delete_state *st = job->eng->deletes;

	pthread_mutex_lock(&st->mu);
	for (size_t i = 0; i < job->n_cands; i++)
		delete_how_put(delete_tomb_take(st, job->cands[i].msg_id, job->cands[i].idx));
	pthread_mutex_unlock(&st->mu);
}

int delete_start(struct engine *eng, struct delete_filter *f, struct http_request *req)
{
	size_t tlen = strlen(f->text);
	struct delete_job *job = calloc(1, sizeof(*job));
	struct walk wk = {.eng = eng, .f = f, .job = job, .now_ms = wall_now_ms()};
	struct config_gen *gen;
	uint64_t last_id;
	uint32_t last_idx;
	bool more;
	int ret;

	if (!job || !eng->deletes || !(job->how = malloc(sizeof(*job->how) + tlen + 1)) ||
	    !(job->mails = calloc(eng->n_workers, sizeof(*job->mails)))) {
		if (job)
			delete_job_free(job);
		delete_filter_free(f);
		return -ENOMEM;
	}
	job->how->refs = 1;
	job->how->dsn = f->dsn;
	job->how->cancelled = job->how->caught = 0;
	memcpy(job->how->text, f->text, tlen + 1);
	job->eng = eng;
	job->http = req;
	if ((ret = spool_rtxn_begin(eng->spool, &wk.rt)) != 0) {
		delete_job_free(job);
		delete_filter_free(f);
		return ret < 0 ? ret : -EIO;
	}
	gen = engine_config_get(eng);
	wk.cfg = &gen->cfg;
	ret = spool_walk_rcpts(wk.rt, false, 0, 0, 0, walk_one, &wk, &last_id, &last_idx, &more);
	config_gen_put(gen);
	spool_rtxn_end(wk.rt);
	delete_filter_free(f);
	if (ret < 0 || wk.err) {
		job_untomb(job);
		delete_job_free(job);
		return wk.err ? wk.err : ret;
	}
	__atomic_add_fetch(&eng->http_inflight, 1, __ATOMIC_ACQ_REL);
	job->left = eng->n_workers;
	for (unsigned i = 0; i < eng->n_workers; i++) {
		job->mails[i].job = job;
		job->mails[i].link.kind = WORKER_MAIL_DELETE;
		mailbox_post(&eng->workers[i].mb, &job->mails[i].link);
	}
	return 0;
}

/* ---- the workers' part ------------------------------------------------------------- */

struct take_ctx {
	struct delete_state *st;
	struct delete_mail *mail;
};

/* Under st->mu (sched_remove_if's callback). */
static bool take_one(struct sched_rcpt *r, void *arg)
{
	struct take_ctx *tc = arg;
	struct delete_mail *m = tc->mail;
	struct delete_how *how;

	if (!*delete_tomb_find(tc->st, r->msg_id, r->idx))
		return false;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 256;
		struct cancel_item *g = realloc(m->got, cap * sizeof(*g));

		if (!g) {
			m->oom = true;
			return false; /* it stays queued, its tombstone too */
		}
		m->got = g;
		m->cap = cap;
	}
	how = delete_tomb_take(tc->st, r->msg_id, r->idx);
	m->got[m->n++] = (struct cancel_item){.msg_id = r->msg_id, .idx = r->idx, .how = how};
	free(r);
	return true;
}

/* The last worker's answer: every taken recipient in one commit. */
static void job_commit(struct delete_job *job)
{
	struct engine *eng = job->eng;
	struct delete_commit *c = calloc(1, sizeof(*c));
	size_t n = 0;

	for (unsigned i = 0; i < eng->n_workers; i++)
		n += job->mails[i].n;
	if (c && !(c->items = calloc(n ? n : 1, sizeof(*c->items))))
		c->items = NULL;
	if (c && c->items && !(c->dsns = calloc(n ? n : 1, sizeof(*c->dsns)))) {
		free(c->items);
		c->items = NULL;
	}
	if (!c || !c->items) {
		/* Out of memory: what the workers took stays in the spool and
		 * goes out after a restart; the tombstones still catch it here. */
		free(c);
		fprintf(stderr, "salvod: out of memory committing a delete\n");
		delete_job_answer(job, 503, NULL, "out of memory");
		return;
	}
	for (unsigned i = 0; i < eng->n_workers; i++) {
		if (job->mails[i].n) /* got is NULL for a worker that took nothing */
			memcpy(c->items + c->n, job->mails[i].got, job->mails[i].n * sizeof(*c->items));
		c->n += job->mails[i].n;
		job->mails[i].n = 0;
	}
	c->eng = eng;
	c->job = job;
	delete_commit_submit(c);
}

void delete_worker_mail(struct worker *w, struct mailbox_item *it)
{
	struct delete_mail *m = container_of(it, struct delete_mail, link);
	struct delete_job *job = m->job;
	struct take_ctx tc = {.st = w->eng->deletes, .mail = m};

	pthread_mutex_lock(&tc.st->mu);
	sched_remove_if(&w->sched, take_one, &tc);
	pthread_mutex_unlock(&tc.st->mu);
	if (m->oom)
		fprintf(stderr, "salvod: worker %u: out of memory taking recipients for a delete; some stay queued\n",
			w->index);
	if (__atomic_sub_fetch(&job->left, 1, __ATOMIC_ACQ_REL) == 0)
		job_commit(job);
}

void delete_mail_discard(struct mailbox_item *it)
{
	struct delete_mail *m = container_of(it, struct delete_mail, link);
	struct delete_job *job = m->job;

	if (__atomic_sub_fetch(&job->left, 1, __ATOMIC_ACQ_REL) == 0)
		delete_job_answer(job, 503, NULL, "salvod is shutting down");
}

bool delete_catch(struct worker *w, struct sched_rcpt *r)
{
	struct delete_state *st = w->eng->deletes;
	struct delete_commit *c;
	struct delete_how *how;

	if (!delete_pending(st))
		return false;
	pthread_mutex_lock(&st->mu);
	if ((how = delete_tomb_take(st, r->msg_id, r->idx)))
		how->caught++;
	pthread_mutex_unlock(&st->mu);
	if (!how)
		return false;
	if (!(c = calloc(1, sizeof(*c))) || !(c->items = calloc(1, sizeof(*c->items))) ||
	    !(c->dsns = calloc(1, sizeof(*c->dsns)))) {
		if (c)
			free(c->items);
		free(c);
		/* no memory now: the tombstone goes back for the next look */
		pthread_mutex_lock(&st->mu);
		how->caught--;
		tomb_add(st, r->msg_id, r->idx, how);
		pthread_mutex_unlock(&st->mu);
		delete_how_put(how);
		return false;
	}
	c->items[0] = (struct cancel_item){.msg_id = r->msg_id, .idx = r->idx, .how = how};
	c->n = 1;
	c->eng = w->eng;
	free(r);
	delete_commit_submit(c);
	return true;
}

void delete_forget(struct engine *eng, uint64_t msg_id, uint32_t idx)
{
	struct delete_state *st = eng->deletes;

	if (!delete_pending(st))
		return;
	pthread_mutex_lock(&st->mu);
	delete_how_put(delete_tomb_take(st, msg_id, idx));
	pthread_mutex_unlock(&st->mu);
}
