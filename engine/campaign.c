/*
 * campaign.c - the campaign intern table, pause flags and counters (see
 * campaign.h).
 *
 * Invariants: chunks[id / CAMPAIGN_CHUNK][id % CAMPAIGN_CHUNK] is the entry
 * of every id in 1..n; a chunk pointer is published (release) before any
 * id in it is, and n is published (release) after its entry is complete,
 * so a lock-free reader that sees an id sees its entry. The hash (names ->
 * entries) is touched only under mu.
 */
#include "engine/campaign.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_str.h"

struct campaigns {
	pthread_mutex_t mu;
	struct campaign **buckets;      /* under mu */
	size_t n_buckets;
	uint32_t n;                     /* ids handed out (atomic) */
	bool full_logged;
	struct campaign **chunks[CAMPAIGN_CHUNKS];
};

static uint64_t name_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

int campaigns_new(struct campaigns **out)
{
	struct campaigns *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->n_buckets = 64;
	if (!(c->buckets = calloc(c->n_buckets, sizeof(*c->buckets)))) {
		free(c);
		return -ENOMEM;
	}
	pthread_mutex_init(&c->mu, NULL);
	*out = c;
	return 0;
}

void campaigns_free(struct campaigns *c)
{
	if (!c)
		return;
	for (uint32_t id = 1; id <= c->n; id++)
		free(campaign_get(c, id));
	for (size_t i = 0; i < CAMPAIGN_CHUNKS && c->chunks[i]; i++)
		free(c->chunks[i]);
	free(c->buckets);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

struct campaign *campaign_get(const struct campaigns *c, uint32_t id)
{
	struct campaign **chunk;

	if (!c || id == CAMPAIGN_NONE || id > __atomic_load_n(&c->n, __ATOMIC_ACQUIRE))
		return NULL;
	chunk = __atomic_load_n(&c->chunks[id / CAMPAIGN_CHUNK], __ATOMIC_ACQUIRE);
	return chunk ? chunk[id % CAMPAIGN_CHUNK] : NULL;
}

uint32_t campaigns_count(const struct campaigns *c)
{
	return c ? __atomic_load_n(&c->n, __ATOMIC_ACQUIRE) : 0;
}

static struct campaign *find_locked(struct campaigns *c, const char *name, size_t len, uint64_t h)
{
	for (struct campaign *e = c->buckets[h & (c->n_buckets - 1)]; e; e = e->hnext)
		if (strncmp(e->name, name, len) == 0 && e->name[len] == '\0')
			return e;
	return NULL;
}

static void grow_locked(struct campaigns *c)
{
	size_t nb = c->n_buckets * 2;
	struct campaign **b = calloc(nb, sizeof(*b));

	if (!b)
		return; /* longer chains; still correct */
	for (size_t i = 0; i < c->n_buckets; i++)
		while (c->buckets[i]) {
			struct campaign *e = c->buckets[i];
			size_t k = name_hash(e->name, strlen(e->name)) & (nb - 1);

			c->buckets[i] = e->hnext;
			e->hnext = b[k];
			b[k] = e;
		}
	free(c->buckets);
	c->buckets = b;
	c->n_buckets = nb;
}

bool campaign_name_ok(const char *s, size_t n)
{
	if (!s || !n || n > CAMPAIGN_NAME_MAX)
		return false;
	for (size_t i = 0; i < n;) {
		const unsigned char *p = (const unsigned char *)s + i;
		size_t len = 1, skip;

		if (*p < 0x20 || *p == 0x7f)
			return false;
		/* not UTF-8: JSON (the API, the accounting log) could not name it */
		if (*p >= 0x80 && (len = json_utf8_seq(p, n - i, &skip)) == 0)
			return false;
		/* C1 controls (U+0080..U+009F) are control characters too */
		if (len == 2 && p[0] == 0xc2 && p[1] < 0xa0)
			return false;
		i += len;
	}
	return true;
}

static uint32_t lookup(struct campaigns *c, const char *name, bool make)
{
	size_t len = name ? strlen(name) : 0;
	uint64_t h;
	struct campaign *e;
	uint32_t id = CAMPAIGN_NONE, next;

	if (!c || !campaign_name_ok(name, len))
		return CAMPAIGN_NONE;
	h = name_hash(name, len);
	pthread_mutex_lock(&c->mu);
	if ((e = find_locked(c, name, len, h))) {
		id = e->id;
		goto out;
	}
	if (!make)
		goto out;
	next = c->n + 1;
	if (next > CAMPAIGN_MAX) {
		if (!c->full_logged)
			fprintf(stderr, "salvod: more than %u campaigns; new ones are counted as none\n", CAMPAIGN_MAX);
		c->full_logged = true;
		goto out;
	}
	if (!c->chunks[next / CAMPAIGN_CHUNK]) {
		struct campaign **chunk = calloc(CAMPAIGN_CHUNK, sizeof(*chunk));

		if (!chunk)
			goto out;
		__atomic_store_n(&c->chunks[next / CAMPAIGN_CHUNK], chunk, __ATOMIC_RELEASE);
	}
	if (!(e = calloc(1, sizeof(*e) + len + 1)))
		goto out;
	memcpy(e->name, name, len + 1);
	e->id = next;
	c->chunks[next / CAMPAIGN_CHUNK][next % CAMPAIGN_CHUNK] = e;
	e->hnext = c->buckets[h & (c->n_buckets - 1)];
	c->buckets[h & (c->n_buckets - 1)] = e;
	__atomic_store_n(&c->n, next, __ATOMIC_RELEASE);
	if (next > c->n_buckets)
		grow_locked(c);
	id = next;
out:
	pthread_mutex_unlock(&c->mu);
	return id;
}

uint32_t campaign_intern(struct campaigns *c, const char *name)
{
	return lookup(c, name, true);
}

uint32_t campaign_find(struct campaigns *c, const char *name)
{
	return lookup(c, name, false);
}

bool campaign_paused(const struct campaigns *c, uint32_t id)
{
	struct campaign *e = campaign_get(c, id);

	return e && __atomic_load_n(&e->paused, __ATOMIC_ACQUIRE);
}

uint32_t campaign_set_paused(struct campaigns *c, const char *name, bool paused)
{
	uint32_t id = campaign_intern(c, name);
	struct campaign *e = campaign_get(c, id);

	if (e)
		__atomic_store_n(&e->paused, paused, __ATOMIC_RELEASE);
	return id;
}

static void time_min(int64_t *v, int64_t t)
{
	int64_t cur = __atomic_load_n(v, __ATOMIC_RELAXED);

	while ((cur == 0 || t < cur) && !__atomic_compare_exchange_n(v, &cur, t, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static void time_max(int64_t *v, int64_t t)
{
	int64_t cur = __atomic_load_n(v, __ATOMIC_RELAXED);

	while (t > cur && !__atomic_compare_exchange_n(v, &cur, t, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

void campaign_note_queued(struct campaigns *c, uint32_t id, uint64_t n, uint64_t already_deferred, int64_t at_ms)
{
	struct campaign *e = campaign_get(c, id);

	if (!e)
		return;
	__atomic_fetch_add(&e->queued, (int64_t)n, __ATOMIC_RELAXED);
	if (already_deferred)
		__atomic_fetch_add(&e->deferred, (int64_t)already_deferred, __ATOMIC_RELAXED);
	if (at_ms > 0) {
		time_min(&e->first_ms, at_ms);
		time_max(&e->last_ms, at_ms);
	}
}

void campaign_note_totals(struct campaigns *c, uint32_t id, const struct campaign_totals *t)
{
	struct campaign *e = campaign_get(c, id);

	if (!e)
		return;
	__atomic_fetch_add(&e->received, t->received, __ATOMIC_RELAXED);
	__atomic_fetch_add(&e->delivered, t->delivered, __ATOMIC_RELAXED);
	__atomic_fetch_add(&e->bounced, t->bounced, __ATOMIC_RELAXED);
	__atomic_fetch_add(&e->expired, t->expired, __ATOMIC_RELAXED);
	__atomic_fetch_add(&e->suppressed, t->suppressed, __ATOMIC_RELAXED);
	if (t->first_ms > 0)
		time_min(&e->first_ms, t->first_ms);
	if (t->last_ms > 0)
		time_max(&e->last_ms, t->last_ms);
}

void campaign_note_end(struct campaigns *c, uint32_t id, enum campaign_end end, bool was_deferred)
{
	struct campaign *e = campaign_get(c, id);

	if (!e)
		return;
	if (end == CAMPAIGN_END_DEFERRED) {
		if (!was_deferred)
			__atomic_fetch_add(&e->deferred, 1, __ATOMIC_RELAXED);
		return;
	}
	__atomic_fetch_sub(&e->queued, 1, __ATOMIC_RELAXED);
	if (was_deferred)
		__atomic_fetch_sub(&e->deferred, 1, __ATOMIC_RELAXED);
	switch (end) {
	case CAMPAIGN_END_DELIVERED:
		__atomic_fetch_add(&e->delivered, 1, __ATOMIC_RELAXED);
		break;
	case CAMPAIGN_END_EXPIRED: /* an expiry is a bounce too */
		__atomic_fetch_add(&e->expired, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&e->bounced, 1, __ATOMIC_RELAXED);
		break;
	case CAMPAIGN_END_BOUNCED:
		__atomic_fetch_add(&e->bounced, 1, __ATOMIC_RELAXED);
		break;
	case CAMPAIGN_END_SUPPRESSED:
		__atomic_fetch_add(&e->suppressed, 1, __ATOMIC_RELAXED);
		break;
	default:
		break;
	}
}
