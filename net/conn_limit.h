/*
 * conn_limit.h - inbound connection caps shared by every worker's listener:
 * at most `max_total` sessions in all and `max_per_ip` from one client
 * address. Workers accept on their own rings (SO_REUSEPORT), so the counts
 * live here behind a mutex; it is taken once per connection, never per
 * command or message.
 */
#ifndef SALVO_CONN_LIMIT_H
#define SALVO_CONN_LIMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct conn_limit_slot;

struct conn_limit {
	pthread_mutex_t mu;
	unsigned max_total, max_per_ip;   /* 0 = no cap */
	unsigned total;            /* untrusted sessions open */
	unsigned total_trusted;
	struct conn_limit_slot **buckets; /* per-IP counts, chained */
	size_t n_buckets;
};

enum conn_limit_verdict {
	CONN_OK = 0,
	CONN_TOO_MANY = -1,        /* max_total reached */
	CONN_TOO_MANY_FROM_IP = -2,
};

int conn_limit_init(struct conn_limit *cl, unsigned max_total, unsigned max_per_ip);
void conn_limit_fini(struct conn_limit *cl);
/* Count a new session from addr, or refuse it (then nothing is counted).
 * per_ip: the client's own source's cap (0: max_per_ip for untrusted
 * clients, none for trusted ones). Out of memory for a new per-IP slot
 * counts as "too many". */
enum conn_limit_verdict conn_limit_acquire(struct conn_limit *cl, const struct sockaddr *addr, bool trusted,
					   unsigned per_ip);
/* Exactly once for every CONN_OK, with the same `trusted`. */
void conn_limit_release(struct conn_limit *cl, const struct sockaddr *addr, bool trusted);

#endif
