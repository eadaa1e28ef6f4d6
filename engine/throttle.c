/*
 * throttle.c - GCRA rate limiting (see throttle.h).
 */
#include "engine/throttle.h"

#include "core/config.h"

uint64_t throttle_burst(const struct config_rate *r)
{
	uint64_t b;

	if (!r->count || !r->per_ms)
		return UINT64_MAX;
	b = r->per_ms >= 1000 ? r->count * 1000 / r->per_ms : r->count;
	if (b < 1)
		b = 1;
	return b > r->count ? r->count : b;
}

/* The emission interval T and the tolerance tau = (B - 1) * T, in us. */
static void params(const struct config_rate *r, int64_t *t_us, int64_t *tau_us)
{
	uint64_t t = r->per_ms * 1000 / r->count;

	if (t < 1)
		t = 1;
	*t_us = (int64_t)t;
	*tau_us = (int64_t)((throttle_burst(r) - 1) * t);
}

bool throttle_peek(const struct throttle *th, const struct config_rate *r, int64_t now_us, int64_t *wait_us)
{
	int64_t t, tau, tat;

	if (!r->count || !r->per_ms)
		return true;
	params(r, &t, &tau);
	tat = th->tat_us > now_us ? th->tat_us : now_us;
	if (tat - now_us > tau) {
		if (wait_us)
			*wait_us = tat - tau - now_us;
		return false;
	}
	return true;
}

bool throttle_take(struct throttle *th, const struct config_rate *r, int64_t now_us, int64_t *wait_us)
{
	int64_t t, tau;

	if (!throttle_peek(th, r, now_us, wait_us))
		return false;
	if (!r->count || !r->per_ms)
		return true;
	params(r, &t, &tau);
	th->tat_us = (th->tat_us > now_us ? th->tat_us : now_us) + t;
	return true;
}
