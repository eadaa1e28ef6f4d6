/*
 * conn_limit.c - shared inbound connection counts (see conn_limit.h). The
 * per-IP table holds only addresses with sessions open: a slot goes when
 * its counts drop to zero, so a scan of many addresses leaves nothing.
 */
#include "net/conn_limit.h"
#include "net/addr_window.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096

struct conn_limit_slot {
	struct conn_limit_slot *next;
	uint8_t addr[16];          /* addr_window_key(): IPv4 as ::ffff:a.b.c.d, IPv6 /64 */
	unsigned n;                /* untrusted sessions */
	unsigned n_trusted;        /* sessions of sources that may relay */
};

int conn_limit_init(struct conn_limit *cl, unsigned max_total, unsigned max_per_ip)
{
	memset(cl, 0, sizeof(*cl));
	cl->buckets = calloc(BUCKETS, sizeof(*cl->buckets));
	if (!cl->buckets)
		return -ENOMEM;
	cl->n_buckets = BUCKETS;
	cl->max_total = max_total;
	cl->max_per_ip = max_per_ip;
	pthread_mutex_init(&cl->mu, NULL);
	return 0;
}

void conn_limit_fini(struct conn_limit *cl)
{
	if (!cl->buckets)
		return;
	for (size_t i = 0; i < cl->n_buckets; i++)
		while (cl->buckets[i]) {
			struct conn_limit_slot *s = cl->buckets[i];

			cl->buckets[i] = s->next;
			free(s);
		}
	free(cl->buckets);
	cl->buckets = NULL;
	pthread_mutex_destroy(&cl->mu);
}

static struct conn_limit_slot **find(struct conn_limit *cl, const uint8_t k[16])
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 16; i++)
		h = (h ^ k[i]) * 16777619u;
	struct conn_limit_slot **p = &cl->buckets[h % cl->n_buckets];

	while (*p && memcmp((*p)->addr, k, 16) != 0)
		p = &(*p)->next;
	return p;
}

enum conn_limit_verdict conn_limit_acquire(struct conn_limit *cl, const struct sockaddr *addr, bool trusted,
					   unsigned per_ip)
{
	enum conn_limit_verdict v = CONN_OK;
	struct conn_limit_slot **p, *s;
	uint8_t k[16];

	addr_window_key(addr, k);
	pthread_mutex_lock(&cl->mu);
	p = find(cl, k);
	if (!trusted && cl->max_total && cl->total >= cl->max_total) {
		v = CONN_TOO_MANY;
	} else if (!trusted && *p && (per_ip ? per_ip : cl->max_per_ip) &&
		   (*p)->n >= (per_ip ? per_ip : cl->max_per_ip)) {
		v = CONN_TOO_MANY_FROM_IP;
	} else if (trusted && *p && per_ip && (*p)->n_trusted >= per_ip) {
		v = CONN_TOO_MANY_FROM_IP;
	} else {
		if (!(s = *p)) {
			if (!(s = calloc(1, sizeof(*s)))) {
				pthread_mutex_unlock(&cl->mu);
				return CONN_TOO_MANY;
			}
			memcpy(s->addr, k, 16);
			*p = s;
		}
		if (trusted) {
			s->n_trusted++;
			cl->total_trusted++;
		} else {
			s->n++;
			cl->total++;
		}
	}
	pthread_mutex_unlock(&cl->mu);
	return v;
}

void conn_limit_release(struct conn_limit *cl, const struct sockaddr *addr, bool trusted)
{
	struct conn_limit_slot **p, *s;
	uint8_t k[16];

	addr_window_key(addr, k);
	pthread_mutex_lock(&cl->mu);
	p = find(cl, k);
	if ((s = *p)) {
		if (trusted) {
			cl->total_trusted--;
			s->n_trusted--;
		} else {
			cl->total--;
			s->n--;
		}
		if (s->n == 0 && s->n_trusted == 0) {
			*p = s->next;
			free(s);
		}
	}
	pthread_mutex_unlock(&cl->mu);
}
