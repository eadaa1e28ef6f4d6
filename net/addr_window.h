/*
 * addr_window.h - per-client-address event counts over a fixed window, for
 * throttles that must hold across sessions and workers: failed AUTH
 * attempts, bounce reports per client. IPv4 counts per address; IPv6 per
 * /64 (one customer's prefix: counting each /128 apart lets one host rotate
 * addresses forever).
 *
 * The table is bounded (a few thousand slots, probed 8 deep): when every
 * probed slot holds a live count, the oldest is reused, so a flood of new
 * addresses can only make the throttle forget, never grow memory.
 *
 * Thread-safe (one mutex, taken once per event). addr_window_take() checks
 * and counts in one step, so concurrent sessions from one address cannot
 * all pass a check before any of them counts.
 */
#ifndef SALVO_ADDR_WINDOW_H
#define SALVO_ADDR_WINDOW_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct addr_window_slot;

struct addr_window {
	pthread_mutex_t mu;
	struct addr_window_slot *slots;
	size_t n;
	uint64_t window_ms;
	unsigned limit;
};

/* The client key: 16 bytes, IPv4 as ::ffff:a.b.c.d, IPv6 masked to /64. */
void addr_window_key(const struct sockaddr *sa, uint8_t k[16]);

int addr_window_init(struct addr_window *w, unsigned limit, uint64_t window_ms);
void addr_window_fini(struct addr_window *w);
/* Count one event for addr at now_ms when its window holds fewer than
 * `limit`: true. At the limit: false, nothing counted. */
bool addr_window_take(struct addr_window *w, const struct sockaddr *addr, uint64_t now_ms);
/* Undo one take (a provisional count that turned out not to be an event). */
void addr_window_give(struct addr_window *w, const struct sockaddr *addr);
/* Is addr at its limit now? */
bool addr_window_full(struct addr_window *w, const struct sockaddr *addr, uint64_t now_ms);

#endif
