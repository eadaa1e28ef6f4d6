/*
 * conn_limit.c - shared inbound connection counts (see conn_limit.h). The
 * per-IP table holds only addresses with sessions open: a slot goes when
 * its count drops to zero, so a scan of many addresses leaves nothing.
 */
#include "net/conn_limit.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096

struct conn_limit_slot {
	struct conn_limit_slot *next;
	uint8_t addr[16];          /* IPv4 as ::ffff:a.b.c.d */
	unsigned n;
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

static void key_of(const struct sockaddr *sa, uint8_t k[16])
{
	memset(k, 0, 16);
	if (sa && sa->sa_family == AF_INET6) {
		memcpy(k, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	} else if (sa && sa->sa_family == AF_INET) {
		k[10] = k[11] = 0xff;
		memcpy(k + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	}
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

enum conn_limit_verdict conn_limit_acquire(struct conn_limit *cl, const struct sockaddr *addr)
{
	enum conn_limit_verdict v = CONN_OK;
	struct conn_limit_slot **p, *s;
	uint8_t k[16];

	key_of(addr, k);
	pthread_mutex_lock(&cl->mu);
	p = find(cl, k);
	if (cl->max_total && cl->total >= cl->max_total) {
		v = CONN_TOO_MANY;
	} else if (*p && cl->max_per_ip && (*p)->n >= cl->max_per_ip) {
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
		s->n++;
		cl->total++;
	}
	pthread_mutex_unlock(&cl->mu);
	return v;
}

void conn_limit_release(struct conn_limit *cl, const struct sockaddr *addr)
{
	struct conn_limit_slot **p, *s;
	uint8_t k[16];

	key_of(addr, k);
	pthread_mutex_lock(&cl->mu);
	p = find(cl, k);
	if ((s = *p)) {
		cl->total--;
		if (--s->n == 0) {
			*p = s->next;
			free(s);
		}
	}
	pthread_mutex_unlock(&cl->mu);
}
