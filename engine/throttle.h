/*
 * throttle.h - rate limits as GCRA (the generic cell rate algorithm: a
 * token bucket kept as one "theoretical arrival time").
 *
 * A rate of `count` per `per_ms` spaces events T = per_ms / count apart and
 * lets a burst of up to B events through at once, B = one second's worth of
 * the rate (at least 1, at most count): `20/s` bursts 20, `3600/h` bursts 1.
 * So over any window of W ms at most B + W / T events pass.
 *
 * Pure and single-threaded: the caller's clock (monotonic microseconds)
 * goes in, a verdict and the wait until the next event would pass come out.
 * A rate with count 0 means unlimited.
 */
#ifndef SALVO_THROTTLE_H
#define SALVO_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

struct config_rate;

struct throttle {
	int64_t tat_us; /* theoretical arrival time of the next event */
};

/* Take one event at now_us if the rate allows it (true); else false and
 * *wait_us (when not NULL) says how long until it would be allowed. */
bool throttle_take(struct throttle *t, const struct config_rate *rate, int64_t now_us, int64_t *wait_us);
/* Would throttle_take() allow an event now? Changes nothing. */
bool throttle_peek(const struct throttle *t, const struct config_rate *rate, int64_t now_us, int64_t *wait_us);
/* The burst a rate allows (events that pass at once from a rested bucket). */
uint64_t throttle_burst(const struct config_rate *rate);

#endif
