/*
 * addr_window.c - per-address event counts in a bounded table (see
 * addr_window.h).
 */
#include "net/addr_window.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 4096
#define PROBES 8

struct addr_window_slot {
	uint8_t key[16];
	uint64_t since_ms;         /* start of this slot's window */
	unsigned count;            /* 0: free */
};

void addr_window_key(const struct sockaddr *sa, uint8_t k[16])
{
	memset(k, 0, 16);
	if (sa && sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		memcpy(k, a, 16);
		if (!IN6_IS_ADDR_V4MAPPED(a))
			memset(k + 8, 0, 8); /* the /64 */
	} else if (sa && sa->sa_family == AF_INET) {
		k[10] = k[11] = 0xff;
		memcpy(k + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	}
}

int addr_window_init(struct addr_window *w, unsigned limit, uint64_t window_ms)
{
	memset(w, 0, sizeof(*w));
	if (!(w->slots = calloc(SLOTS, sizeof(*w->slots))))
		return -ENOMEM;
	w->n = SLOTS;
	w->limit = limit;
	w->window_ms = window_ms;
	pthread_mutex_init(&w->mu, NULL);
	return 0;
}

void addr_window_fini(struct addr_window *w)
{
	if (!w->slots)
		return;
	free(w->slots);
	w->slots = NULL;
	pthread_mutex_destroy(&w->mu);
}

static uint32_t key_hash(const uint8_t k[16])
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 16; i++)
		h = (h ^ k[i]) * 16777619u;
	return h;
}

/* The slot counting k, expired or not, or NULL. */
static struct addr_window_slot *slot_probe(struct addr_window *w, const uint8_t k[16])
{
	uint32_t h = key_hash(k);

	for (size_t i = 0; i < PROBES; i++) {
		struct addr_window_slot *s = &w->slots[(h + i) % w->n];

		if (s->count && !memcmp(s->key, k, 16))
			return s;
	}
	return NULL;
}

/* addr's slot, or NULL; an expired window reads as empty. */
static struct addr_window_slot *slot_find(struct addr_window *w, const uint8_t k[16], uint64_t now_ms)
{
	struct addr_window_slot *s = slot_probe(w, k);

	if (s && now_ms - s->since_ms >= w->window_ms)
		s->count = 0;
	return s && s->count ? s : NULL;
}

/* A slot for a new count: free, expired, else the oldest probed. */
static struct addr_window_slot *slot_claim(struct addr_window *w, const uint8_t k[16], uint64_t now_ms)
{
	uint32_t h = key_hash(k);
	struct addr_window_slot *best = NULL;

	for (size_t i = 0; i < PROBES; i++) {
		struct addr_window_slot *s = &w->slots[(h + i) % w->n];

		if (!s->count || now_ms - s->since_ms >= w->window_ms) {
			best = s;
			break;
		}
		if (!best || s->since_ms < best->since_ms)
			best = s;
	}
	memcpy(best->key, k, 16);
	best->since_ms = now_ms;
	best->count = 0;
	return best;
}

bool addr_window_take(struct addr_window *w, const struct sockaddr *addr, uint64_t now_ms)
{
	struct addr_window_slot *s;
	uint8_t k[16];
	bool ok;

	addr_window_key(addr, k);
	pthread_mutex_lock(&w->mu);
	if (!(s = slot_find(w, k, now_ms)))
		s = slot_claim(w, k, now_ms);
	ok = s->count < w->limit;
	if (ok)
		s->count++;
	pthread_mutex_unlock(&w->mu);
	return ok;
}

void addr_window_give(struct addr_window *w, const struct sockaddr *addr)
{
	struct addr_window_slot *s;
	uint8_t k[16];

	addr_window_key(addr, k);
	pthread_mutex_lock(&w->mu);
	if ((s = slot_probe(w, k)))
		s->count--;
	pthread_mutex_unlock(&w->mu);
}

bool addr_window_full(struct addr_window *w, const struct sockaddr *addr, uint64_t now_ms)
{
	struct addr_window_slot *s;
	uint8_t k[16];
	bool full;

	addr_window_key(addr, k);
	pthread_mutex_lock(&w->mu);
	s = slot_find(w, k, now_ms);
	full = s && s->count >= w->limit;
	pthread_mutex_unlock(&w->mu);
	return full;
}
