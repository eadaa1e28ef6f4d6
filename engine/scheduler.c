/*
 * scheduler.c - a shard's due heap and destination queues (see scheduler.h).
 *
 * Invariants: heap[0] has the smallest due_ms; a recipient is in at most one
 * of heap / a ready FIFO; q->n_ready and q->n_waiting count exactly the
 * recipients of q in its ready FIFOs and in the heap; a parked recipient
 * (paused campaign) is in q->parked only, counted there and in s->n_parked.
 */
#include "engine/scheduler.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "engine/campaign.h"
#include "engine/shard.h"

#define SCHED_BUCKETS_INIT 1024

int sched_init(struct sched *s, const struct config *cfg)
{
	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->n_buckets = SCHED_BUCKETS_INIT;
	s->buckets = calloc(s->n_buckets, sizeof(*s->buckets));
	return s->buckets ? 0 : -ENOMEM;
}

void sched_fini(struct sched *s, void (*queue_free)(struct sched_queue *q))
{
	for (size_t i = 0; i < s->heap_len; i++)
		free(s->heap[i]);
	free(s->heap);
	for (size_t b = 0; b < s->n_buckets; b++) {
		struct sched_queue *q = s->buckets[b];

		while (q) {
			struct sched_queue *next = q->hnext;
			struct sched_rcpt *r;

			if (queue_free)
				queue_free(q);
			while ((r = sched_ready_pop(q)))
				free(r);
			while ((r = q->parked.head)) {
				q->parked.head = (struct sched_rcpt *)r->link.next;
				free(r);
			}
			free(q->fifos);
			free(q->domain);
			free(q);
			q = next;
		}
	}
	free(s->buckets);
	while (s->paused) {
		struct sched_paused *p = s->paused;

		s->paused = p->next;
		free(p);
	}
	memset(s, 0, sizeof(*s));
}

struct sched_rcpt *sched_rcpt_new(uint64_t msg_id, uint32_t idx, const char *domain,
				  int64_t due_ms, int64_t queued_ms, uint32_t attempts, uint16_t pool)
{
	size_t dlen = strlen(domain);
	struct sched_rcpt *r = malloc(sizeof(*r) + dlen + 1);

	if (!r)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->msg_id = msg_id;
	r->idx = idx;
	r->due_ms = due_ms;
	r->queued_ms = queued_ms;
	r->attempts = attempts > UINT16_MAX ? UINT16_MAX : (uint16_t)attempts;
	r->pool = pool;
	for (size_t i = 0; i <= dlen; i++) {
		char c = domain[i];
		r->domain[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	return r;
}

/* ---- queues ------------------------------------------------------------- */

static int sched_grow_buckets(struct sched *s)
{
	size_t nb = s->n_buckets * 2;
	struct sched_queue **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < s->n_buckets; i++) {
		struct sched_queue *q = s->buckets[i];

		while (q) {
			struct sched_queue *next = q->hnext;
			size_t h = shard_hash(q->domain, strlen(q->domain)) & (nb - 1);

			q->hnext = b[h];
			b[h] = q;
			q = next;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->n_buckets = nb;
	return 0;
}

int sched_rebind(struct sched *s, const struct config *cfg)
{
	size_t n_pools = cfg->n_pools ? cfg->n_pools : 1;
	int ret = 0;

	for (size_t b = 0; b < s->n_buckets; b++) {
		for (struct sched_queue *q = s->buckets[b]; q; q = q->hnext) {
			q->cfg = config_domain_for(cfg, q->domain);
			if (q->n_fifos < n_pools) {
				struct sched_fifo *f = realloc(q->fifos, n_pools * sizeof(*f));

				if (!f) {
					ret = -ENOMEM; /* the new pools' recipients wait in pool 0 */
					continue;
				}
				memset(f + q->n_fifos, 0, (n_pools - q->n_fifos) * sizeof(*f));
				q->fifos = f;
				q->n_fifos = n_pools;
			}
		}
	}
	s->cfg = cfg;
	return ret;
}

struct sched_queue *sched_queue_find(struct sched *s, const char *domain)
{
	size_t h = shard_hash(domain, strlen(domain)) & (s->n_buckets - 1);

	for (struct sched_queue *q = s->buckets[h]; q; q = q->hnext)
		if (strcmp(q->domain, domain) == 0)
			return q;
	return NULL;
}

struct sched_queue *sched_queue_get(struct sched *s, const char *domain)
{
	struct sched_queue *q = sched_queue_find(s, domain);
	size_t h;

	if (q)
		return q;
	if (s->n_queues >= s->n_buckets && sched_grow_buckets(s) < 0)
		return NULL;
	q = calloc(1, sizeof(*q));
	if (!q || !(q->domain = strdup(domain)) ||
	    !(q->fifos = calloc(s->cfg->n_pools ? s->cfg->n_pools : 1, sizeof(*q->fifos)))) {
		if (q)
			free(q->domain);
		free(q);
		return NULL;
	}
	q->n_fifos = s->cfg->n_pools ? s->cfg->n_pools : 1;
	q->cfg = config_domain_for(s->cfg, domain);
	h = shard_hash(domain, strlen(domain)) & (s->n_buckets - 1);
	q->hnext = s->buckets[h];
	s->buckets[h] = q;
	s->n_queues++;
	return q;
}

void sched_kick(struct sched *s, struct sched_queue *q)
{
	unsigned b = SCHED_PRIO_BAND(q->cfg ? q->cfg->queue_priority : CONFIG_QUEUE_PRIORITY_DEFAULT);

	if (q->kicked)
		return;
	q->kicked = true;
	q->kick_next = s->kick_head[b];
	s->kick_head[b] = q;
	s->kick_bands |= (uint16_t)(1u << b);
}

struct sched_queue *sched_next_kicked(struct sched *s)
{
	struct sched_queue *q;
	unsigned b;

	if (!s->kick_bands)
		return NULL;
	b = 31u - (unsigned)__builtin_clz(s->kick_bands);
	q = s->kick_head[b];
	s->kick_head[b] = q->kick_next;
	if (!s->kick_head[b])
		s->kick_bands &= (uint16_t)~(1u << b);
	q->kick_next = NULL;
	q->kicked = false;
	return q;
}

static void fifo_append(struct sched_fifo *f, struct sched_rcpt *r)
{
	r->link.next = NULL;
	if (f->tail)
		f->tail->link.next = &r->link;
	else
		f->head = r;
	f->tail = r;
	f->n++;
}

bool sched_rcpt_parked(const struct sched *s, const struct sched_rcpt *r)
{
	return r->campaign != CAMPAIGN_NONE && s->campaigns && campaign_paused(s->campaigns, r->campaign);
}

void sched_ready_push(struct sched *s, struct sched_queue *q, struct sched_rcpt *r)
{
	if (r->pool >= q->n_fifos)
		r->pool = 0; /* a pool that the config no longer has */
	r->queue = q;
	if (sched_rcpt_parked(s, r)) {
		fifo_append(&q->parked, r);
		s->n_parked++;
		return;
	}
	fifo_append(&q->fifos[r->pool], r);
	q->n_ready++;
	sched_kick(s, q);
}

struct sched_rcpt *sched_ready_pop_pool(struct sched_queue *q, size_t pool)
{
	struct sched_fifo *f = pool < q->n_fifos ? &q->fifos[pool] : NULL;
	struct sched_rcpt *r = f ? f->head : NULL;

	if (!r)
		return NULL;
	f->head = (struct sched_rcpt *)r->link.next;
	if (!f->head)
		f->tail = NULL;
	r->link.next = NULL;
	f->n--;
	q->n_ready--;
	return r;
}

struct sched_rcpt *sched_ready_pop(struct sched_queue *q)
{
	for (size_t i = 0; i < q->n_fifos && q->n_ready; i++)
		if (q->fifos[i].n)
			return sched_ready_pop_pool(q, i);
	return NULL;
}

struct sched_rcpt *sched_ready_take_msg(struct sched_queue *q, size_t pool, uint64_t msg_id, size_t window)
{
	struct sched_fifo *f = pool < q->n_fifos ? &q->fifos[pool] : NULL;
	struct sched_rcpt *prev = NULL;

	if (!f)
		return NULL;
	for (struct sched_rcpt *r = f->head; r && window--; prev = r, r = (struct sched_rcpt *)r->link.next) {
		if (r->msg_id != msg_id)
			continue;
		if (prev)
			prev->link.next = r->link.next;
		else
			f->head = (struct sched_rcpt *)r->link.next;
		if (f->tail == r)
			f->tail = prev;
		r->link.next = NULL;
		f->n--;
		q->n_ready--;
		return r;
	}
	return NULL;
}

const char *sched_queue_name_for(const struct config *cfg, const char *domain)
{
	const struct config_domain *d = config_domain_for(cfg, domain);

	return d && d->queue_to ? d->queue_to : domain;
}

/* ---- heap --------------------------------------------------------------- */

static void heap_up(struct sched *s, size_t i)
{
	struct sched_rcpt *r = s->heap[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (s->heap[p]->due_ms <= r->due_ms)
			break;
		s->heap[i] = s->heap[p];
		i = p;
	}
	s->heap[i] = r;
}

static void heap_down(struct sched *s, size_t i)
{
	struct sched_rcpt *r = s->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= s->heap_len)
			break;
		if (c + 1 < s->heap_len && s->heap[c + 1]->due_ms < s->heap[c]->due_ms)
			c++;
		if (r->due_ms <= s->heap[c]->due_ms)
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	s->heap[i] = r;
}

int sched_add(struct sched *s, struct sched_rcpt *r, int64_t now_ms)
{
	struct sched_queue *q = r->queue ? r->queue : sched_queue_get(s, sched_queue_name_for(s->cfg, r->domain));

	if (!q)
		return -ENOMEM;
	r->queue = q;
	if (r->due_ms <= now_ms) {
		sched_ready_push(s, q, r);
		return 0;
	}
	if (s->heap_len == s->heap_cap) {
		size_t cap = s->heap_cap ? s->heap_cap * 2 : 1024;
		struct sched_rcpt **h = realloc(s->heap, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		s->heap = h;
		s->heap_cap = cap;
	}
	s->heap[s->heap_len++] = r;
	heap_up(s, s->heap_len - 1);
	q->n_waiting++;
	return 0;
}

size_t sched_run_due(struct sched *s, int64_t now_ms)
{
	size_t n = 0;

	while (s->heap_len && s->heap[0]->due_ms <= now_ms) {
		struct sched_rcpt *r = s->heap[0];

		s->heap[0] = s->heap[--s->heap_len];
		if (s->heap_len)
			heap_down(s, 0);
		r->queue->n_waiting--;
		sched_ready_push(s, r->queue, r);
		n++;
	}
	return n;
}

int64_t sched_next_due_in(const struct sched *s, int64_t now_ms)
{
	if (!s->heap_len)
		return INT64_MAX;
	return s->heap[0]->due_ms > now_ms ? s->heap[0]->due_ms - now_ms : 0;
}

size_t sched_retry_now(struct sched *s, struct sched_queue *q)
{
	size_t kept = 0, moved = 0;

	/* Take q's recipients out of the array, then restore the heap order of
	 * the rest bottom-up (Floyd): O(heap), no allocation. */
	for (size_t i = 0; i < s->heap_len; i++) {
		struct sched_rcpt *r = s->heap[i];

		if (r->queue == q) {
			q->n_waiting--;
			sched_ready_push(s, q, r);
			moved++;
		} else {
			s->heap[kept++] = r;
		}
	}
	s->heap_len = kept;
	for (size_t i = kept / 2; i-- > 0;)
		heap_down(s, i);
	return moved;
}

/* Unlink every r of f for which take(r) says true (take owns it then). */
static size_t fifo_remove_if(struct sched_fifo *f, bool (*take)(struct sched_rcpt *r, void *arg), void *arg)
{
	struct sched_rcpt *prev = NULL, *r = f->head;
	size_t n = 0;

	while (r) {
		struct sched_rcpt *next = (struct sched_rcpt *)r->link.next;
		bool tail = f->tail == r;

		if (take(r, arg)) {
			if (prev)
				prev->link.next = next ? &next->link : NULL;
			else
				f->head = next;
			if (tail)
				f->tail = prev;
			f->n--;
			n++;
		} else {
			prev = r;
		}
		r = next;
	}
	return n;
}

size_t sched_remove_if(struct sched *s, bool (*take)(struct sched_rcpt *r, void *arg), void *arg)
{
	size_t kept = 0, n = 0;

	for (size_t i = 0; i < s->heap_len; i++) {
		struct sched_rcpt *r = s->heap[i];
		struct sched_queue *q = r->queue;

		if (take(r, arg)) {
			q->n_waiting--;
			n++;
		} else {
			s->heap[kept++] = r;
		}
	}
	s->heap_len = kept;
	for (size_t i = kept / 2; i-- > 0;)
		heap_down(s, i);
	for (size_t b = 0; b < s->n_buckets; b++)
		for (struct sched_queue *q = s->buckets[b]; q; q = q->hnext) {
			size_t k;

			for (size_t p = 0; p < q->n_fifos && q->n_ready; p++) {
				k = fifo_remove_if(&q->fifos[p], take, arg);
				q->n_ready -= k;
				n += k;
			}
			if (q->parked.n) {
				k = fifo_remove_if(&q->parked, take, arg);
				s->n_parked -= k;
				n += k;
			}
		}
	return n;
}

/* ---- idle queues and pauses ---------------------------------------------- */

static void queue_destroy(struct sched *s, struct sched_queue **link)
{
	struct sched_queue *q = *link;

	*link = q->hnext;
	s->n_queues--;
	s->queues_freed++;
	free(q->fifos);
	free(q->domain);
	free(q);
}

size_t sched_sweep(struct sched *s, int64_t now_ms, int64_t idle_ms, size_t max_visits,
		   bool (*can_free)(struct sched_queue *q, void *arg),
		   void (*on_free)(struct sched_queue *q, void *arg), void *arg)
{
	size_t visited = 0, freed = 0, buckets = 0;

	while (visited < max_visits && buckets < s->n_buckets) {
		struct sched_queue **link;

		if (s->sweep_bucket >= s->n_buckets)
			s->sweep_bucket = 0;
		link = &s->buckets[s->sweep_bucket];
		while (*link) {
			struct sched_queue *q = *link;

			visited++;
			if (q->n_ready || q->n_waiting || q->n_inflight || q->parked.n || q->kicked) {
				q->empty_since_ms = 0;
			} else if (!q->empty_since_ms) {
				q->empty_since_ms = now_ms;
			} else if (now_ms - q->empty_since_ms >= idle_ms && (!can_free || can_free(q, arg))) {
				if (on_free)
					on_free(q, arg);
				queue_destroy(s, link);
				freed++;
				continue;
			}
			link = &q->hnext;
		}
		s->sweep_bucket++;
		buckets++;
	}
	return freed;
}

int sched_pause_set(struct sched *s, const char *name, bool paused)
{
	struct sched_paused **pp = &s->paused, *p;
	size_t n = strlen(name);

	for (; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->name, name) == 0)
			break;
	if (!paused) {
		if ((p = *pp)) {
			*pp = p->next;
			free(p);
		}
		return 0;
	}
	if (*pp)
		return 0;
	if (!(p = malloc(sizeof(*p) + n + 1)))
		return -ENOMEM;
	memcpy(p->name, name, n + 1);
	p->next = s->paused;
	s->paused = p;
	return 0;
}

bool sched_is_paused(const struct sched *s, const char *name)
{
	for (const struct sched_paused *p = s->paused; p; p = p->next)
		if (strcmp(p->name, name) == 0)
			return true;
	return false;
}

/* ---- campaign pauses ------------------------------------------------------ */

size_t sched_campaign_park(struct sched *s, uint32_t campaign)
{
	size_t moved = 0;

	if (campaign == CAMPAIGN_NONE)
		return 0;
	for (size_t b = 0; b < s->n_buckets; b++)
		for (struct sched_queue *q = s->buckets[b]; q; q = q->hnext) {
			for (size_t i = 0; i < q->n_fifos && q->n_ready; i++) {
				struct sched_fifo *f = &q->fifos[i], keep = {0};
				struct sched_rcpt *r = f->head, *next;

				for (; r; r = next) {
					next = (struct sched_rcpt *)r->link.next;
					if (r->campaign == campaign) {
						fifo_append(&q->parked, r);
						s->n_parked++;
						q->n_ready--;
						moved++;
					} else {
						fifo_append(&keep, r);
					}
				}
				*f = keep;
			}
		}
	return moved;
}

size_t sched_campaign_unpark(struct sched *s, uint32_t campaign)
{
	size_t moved = 0;

	if (campaign == CAMPAIGN_NONE)
		return 0;
	for (size_t b = 0; b < s->n_buckets && s->n_parked; b++)
		for (struct sched_queue *q = s->buckets[b]; q; q = q->hnext) {
			struct sched_fifo keep = {0};
			struct sched_rcpt *r, *next;

			if (!q->parked.n)
				continue;
			r = q->parked.head;
			q->parked = (struct sched_fifo){0};
			for (; r; r = next) {
				next = (struct sched_rcpt *)r->link.next;
				s->n_parked--;
				if (r->campaign == campaign && !sched_rcpt_parked(s, r)) {
					sched_ready_push(s, q, r);
					moved++;
				} else {
					fifo_append(&keep, r);
					s->n_parked++;
				}
			}
			q->parked = keep;
		}
	return moved;
}
