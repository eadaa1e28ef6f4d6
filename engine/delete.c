/*
 * delete.c - an operator's delete: tombstones, the workers' part, the
 * commit that removes the recipients (see delete.h).
 *
 * Ownership: a struct delete_how (the filter's text and dsn flag) is
 * shared, reference-counted, by the tombstones and commit items made from
 * one request. A struct delete_job lives from delete_start until its commit
 * answered the HTTP request; a struct delete_commit from its submit until
 * its done(). The spool writer only borrows a commit.
 *
 * A commit that fails goes back to the writer after a growing delay, like an
 * outcome (outcome.c), until it succeeds or the error is fatal; then its
 * recipients, already out of the scheduler, stay in the spool and come back
 * after a restart (nothing is recorded as cancelled).
 */
#include "engine/delete.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/acct_log.h"
#include "core/config.h"
#include "engine/accept_store.h"
#include "engine/api.h"
#include "engine/bounce_dsn.h"
#include "engine/campaign.h"
#include "engine/delete_filter.h"
#include "engine/engine.h"
#include "net/http_server.h"
#include "queue/spool_writer.h"

#define DELETE_BUCKETS_MIN 1024
#define DELETE_RETRY_MIN_MS 20
#define DELETE_RETRY_MAX_MS 5000
#define DELETE_DIAG "deleted by the operator"

struct delete_how {
	unsigned refs;             /* atomic */
	bool dsn;
	size_t cancelled;          /* recorded as cancelled so far (writer thread) */
	size_t caught;             /* tombstones taken by delete_catch, not yet
				    * recorded (changed under the state's mu) */
	char text[];               /* the filter as compact JSON */
};

struct delete_tomb {
	struct delete_tomb *next;
	uint64_t msg_id;
	uint32_t idx;
	struct delete_how *how;    /* one reference */
};

struct delete_key {
	uint64_t msg_id;
	uint32_t idx;
};

/* One recipient to cancel; the rest is filled by the commit's apply. */
struct cancel_item {
	uint64_t msg_id;
	uint32_t idx;
	struct delete_how *how;    /* one reference */
	bool done;                 /* found and removed in this commit */
	char *addr, *sender, *campaign, *queue;
	int64_t queued_ms;
	uint32_t attempts;
	uint64_t size;
	uint64_t dsn_id;
};

struct cancel_dsn {
	uint64_t id;
	char *body;
	size_t len;
	char *sender;
};

struct delete_job;

struct delete_commit {
	struct spool_req req;
	struct engine *eng;
	struct delete_job *job;    /* the request's commit; NULL for a late one */
	struct cancel_item *items; /* sorted by (message id, index) */
	size_t n;
	struct cancel_dsn *dsns;
	size_t n_dsns;
	int64_t time_ms;
	unsigned tries;
};

/* Each worker's part of a job: its mail, then what it took. */
struct delete_mail {
	struct mailbox_item link;
	struct delete_job *job;
	struct cancel_item *got;
	size_t n, cap;
	bool oom;
};

struct delete_job {
	struct engine *eng;
	struct http_request *http;
	struct delete_how *how;    /* one reference */
	struct delete_key *cands;  /* matched at the walk */
	size_t n_cands, cap_cands;
	unsigned left;             /* workers yet to answer (atomic) */
	bool oom;
	struct delete_mail *mails; /* one per worker */
};

/* ---- the tombstone set ------------------------------------------------------------ */

static size_t key_hash(uint64_t id, uint32_t idx)
{
	uint64_t x = id ^ ((uint64_t)idx * 0x9e3779b97f4a7c15ull);

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (size_t)x;
}

static void how_put(struct delete_how *h)
{
	if (h && __atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(h);
}

static struct delete_how *how_get(struct delete_how *h)
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
			how_put(t->how);
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
static struct delete_tomb **tomb_find(struct delete_state *st, uint64_t id, uint32_t idx)
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
	pp = tomb_find(st, id, idx);
	if (*pp)
		return 0;
	if (!(t = malloc(sizeof(*t))))
		return -ENOMEM;
	*t = (struct delete_tomb){.msg_id = id, .idx = idx, .how = how_get(how)};
	*pp = t;
	__atomic_store_n(&st->n, st->n + 1, __ATOMIC_RELEASE);
	return 1;
}

/* Under mu: remove the tombstone of (id, idx); its how reference is the
 * caller's (NULL: there was none). */
static struct delete_how *tomb_take(struct delete_state *st, uint64_t id, uint32_t idx)
{
	struct delete_tomb **pp = tomb_find(st, id, idx), *t = *pp;
	struct delete_how *how;

	if (!t)
		return NULL;
	*pp = t->next;
	how = t->how;
	free(t);
	__atomic_store_n(&st->n, st->n - 1, __ATOMIC_RELEASE);
	return how;
}

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
		how_put(c->items[i].how);
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
static void domain_of(const char *addr, char *dom, size_t cap)
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
static int message_dsn(struct delete_commit *c, struct spool_wtxn *t, size_t a, size_t b)
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
		.reporting_mta = c->eng->cfg->host_name,
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
static int apply_message(struct delete_commit *c, struct spool_wtxn *t, size_t a, size_t b)
{
	struct spool_msg m;
	int ret = spool_wtxn_get_msg(t, c->items[a].msg_id, &m);
	char dom[256];

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
		domain_of(r.addr, dom, sizeof(dom));
		it->addr = strdup(r.addr);
		it->sender = strdup(m.sender);
		it->campaign = strdup(m.campaign);
		it->queue = strdup(engine_queue_name(c->eng, dom));
		if (!it->addr || !it->sender || !it->campaign || !it->queue)
			return -ENOMEM;
		it->queued_ms = r.queued_ms;
		it->attempts = r.attempts;
		it->size = m.body_len;
		it->done = true;
	}
	if ((ret = message_dsn(c, t, a, b)))
		return ret;
	for (size_t i = a; i < b; i++)
		if (c->items[i].done && (ret = spool_del_rcpt(t, c->items[i].msg_id, c->items[i].idx, NULL)))
			return ret;
	return 0;
}

/* The request's candidates no worker held: a finished one loses its
 * tombstone; the others are in flight (counted by job_in_flight). */
static int sweep_candidates(struct delete_job *job, struct spool_wtxn *t)
{
	struct delete_state *st = job->eng->deletes;

	for (size_t i = 0; i < job->n_cands; i++) {
		struct spool_rcpt r;
		int ret = spool_wtxn_get_rcpt(t, job->cands[i].msg_id, job->cands[i].idx, &r);
		bool still;

		if (ret && ret != SPOOL_NOTFOUND)
			return ret;
		pthread_mutex_lock(&st->mu);
		still = *tomb_find(st, job->cands[i].msg_id, job->cands[i].idx) != NULL;
		if (still && ret == SPOOL_NOTFOUND)
			how_put(tomb_take(st, job->cands[i].msg_id, job->cands[i].idx));
		pthread_mutex_unlock(&st->mu);
	}
	return 0;
}

static int commit_apply(struct spool_req *req, struct spool_wtxn *t, void *ctx)
{
	struct delete_commit *c = container_of(req, struct delete_commit, req);
	size_t a = 0;
	int ret;

	(void)ctx;
	for (size_t i = 0; i < c->n; i++)
		item_clear(&c->items[i]);
	dsns_clear(c);
	while (a < c->n) {
		size_t b = a + 1;

		while (b < c->n && c->items[b].msg_id == c->items[a].msg_id)
			b++;
		if ((ret = apply_message(c, t, a, b)))
			return ret;
		a = b;
	}
	return c->job ? sweep_candidates(c->job, t) : 0;
}

static void job_answer(struct delete_job *job, unsigned status, json_t *j, const char *err);
static void job_free(struct delete_job *job);

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
		struct delete_tomb *t = *tomb_find(st, job->cands[i].msg_id, job->cands[i].idx);

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
			job_answer(c->job, 503, NULL, spool_strerror(result));
		caught_done(c);
		commit_free(c);
		return;
	}
	for (size_t i = 0; i < c->n; i++) {
		const struct cancel_item *it = &c->items[i];
		struct acct_event ev;

		if (!it->done)
			continue;
		it->how->cancelled++;
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
		acct_log_write(eng->acct, &ev);
		if (eng->campaigns && it->campaign[0]) {
			uint32_t id = campaign_find(eng->campaigns, it->campaign);

			if (id != CAMPAIGN_NONE)
				campaign_note_end(eng->campaigns, id, CAMPAIGN_END_REMOVED, it->attempts > 0);
		}
	}
	for (size_t i = 0; i < c->n_dsns; i++) {
		struct accept_batch ab;
		struct accept_msg am;

		accept_store_committed(dsn_accept(c, &c->dsns[i], &ab, &am));
	}
	caught_done(c);
	/* deleted: every recipient recorded as cancelled by this request,
	 * those a worker caught on their way before this commit included */
	if (c->job)
		job_answer(c->job, 200,
			   json_pack("{s:I, s:I}", "deleted", (json_int_t)c->job->how->cancelled, "in_flight",
				     (json_int_t)job_in_flight(c->job)),
			   NULL);
	commit_free(c);
}

static void commit_submit(struct delete_commit *c)
{
	c->req.apply = commit_apply;
	c->req.done = commit_done;
	c->time_ms = wall_now_ms();
	spool_writer_submit(&c->eng->writer, &c->req);
}

/* ---- the request ------------------------------------------------------------------ */

static void job_free(struct delete_job *job)
{
	for (unsigned i = 0; job->mails && i < job->eng->n_workers; i++) {
		for (size_t k = 0; k < job->mails[i].n; k++)
			how_put(job->mails[i].got[k].how);
		free(job->mails[i].got);
	}
	free(job->mails);
	free(job->cands);
	how_put(job->how);
	free(job);
}

/* Answer and free the job (j consumed; NULL: an error). */
static void job_answer(struct delete_job *job, unsigned status, json_t *j, const char *err)
{
	struct engine *eng = job->eng;

	if (j)
		api_reply_json(job->http, status, j);
	else
		http_reply_error(job->http, status == 200 ? 500 : status, err ? err : "out of memory", NULL);
	__atomic_sub_fetch(&eng->http_inflight, 1, __ATOMIC_RELEASE);
	job_free(job);
}

struct walk {
	struct engine *eng;
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
	domain_of(r->addr, dom, sizeof(dom));
	if (!delete_filter_match(wk->f, engine_queue_name(wk->eng, dom), dom, wk->m.sender, wk->m.campaign, r->addr,
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
		how_put(tomb_take(st, job->cands[i].msg_id, job->cands[i].idx));
	pthread_mutex_unlock(&st->mu);
}

int delete_start(struct engine *eng, struct delete_filter *f, struct http_request *req)
{
	size_t tlen = strlen(f->text);
	struct delete_job *job = calloc(1, sizeof(*job));
	struct walk wk = {.eng = eng, .f = f, .job = job, .now_ms = wall_now_ms()};
	uint64_t last_id;
	uint32_t last_idx;
	bool more;
	int ret;

	if (!job || !eng->deletes || !(job->how = malloc(sizeof(*job->how) + tlen + 1)) ||
	    !(job->mails = calloc(eng->n_workers, sizeof(*job->mails)))) {
		if (job)
			job_free(job);
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
		job_free(job);
		delete_filter_free(f);
		return ret < 0 ? ret : -EIO;
	}
	ret = spool_walk_rcpts(wk.rt, false, 0, 0, 0, walk_one, &wk, &last_id, &last_idx, &more);
	spool_rtxn_end(wk.rt);
	delete_filter_free(f);
	if (ret < 0 || wk.err) {
		job_untomb(job);
		job_free(job);
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

	if (!*tomb_find(tc->st, r->msg_id, r->idx))
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
	how = tomb_take(tc->st, r->msg_id, r->idx);
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
		job_answer(job, 503, NULL, "out of memory");
		return;
	}
	for (unsigned i = 0; i < eng->n_workers; i++) {
		memcpy(c->items + c->n, job->mails[i].got, job->mails[i].n * sizeof(*c->items));
		c->n += job->mails[i].n;
		job->mails[i].n = 0;
	}
	qsort(c->items, c->n, sizeof(*c->items), item_cmp);
	c->eng = eng;
	c->job = job;
	commit_submit(c);
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
		job_answer(job, 503, NULL, "salvod is shutting down");
}

bool delete_catch(struct worker *w, struct sched_rcpt *r)
{
	struct delete_state *st = w->eng->deletes;
	struct delete_commit *c;
	struct delete_how *how;

	if (!delete_pending(st))
		return false;
	pthread_mutex_lock(&st->mu);
	if ((how = tomb_take(st, r->msg_id, r->idx)))
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
		how_put(how);
		return false;
	}
	c->items[0] = (struct cancel_item){.msg_id = r->msg_id, .idx = r->idx, .how = how};
	c->n = 1;
	c->eng = w->eng;
	free(r);
	commit_submit(c);
	return true;
}

void delete_forget(struct worker *w, uint64_t msg_id, uint32_t idx)
{
	struct delete_state *st = w->eng->deletes;

	if (!delete_pending(st))
		return;
	pthread_mutex_lock(&st->mu);
	how_put(tomb_take(st, msg_id, idx));
	pthread_mutex_unlock(&st->mu);
}
