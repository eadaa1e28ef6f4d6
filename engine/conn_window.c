/*
 * conn_window.c - a unit's session window and carry estimate (see
 * conn_window.h for the rules).
 */
#include "engine/conn_window.h"

/* Weight of a new sample in the mean: about the last 8 transactions count. */
#define SAMPLE_WEIGHT 0.125

void conn_window_init(struct conn_window *cw)
{
	cw->window = CONN_WINDOW_INIT;
	cw->us_per_rcpt = CONN_WINDOW_START_US;
	cw->samples = 0;
}

void conn_window_sample(struct conn_window *cw, unsigned n_rcpts, int64_t us)
{
	double per;

	if (!n_rcpts || us < 0)
		return;
	per = (double)us / n_rcpts;
	if (per < 1)
		per = 1; /* a clock that did not move: still not free */
	/* The first samples replace the guess quickly; then a moving mean, so
	 * one slow reply does not open a flood of sessions. */
	if (cw->samples < 4)
		cw->us_per_rcpt = (cw->us_per_rcpt * cw->samples + per) / (cw->samples + 1);
	else
		cw->us_per_rcpt += SAMPLE_WEIGHT * (per - cw->us_per_rcpt);
	if (cw->samples < UINT32_MAX)
		cw->samples++;
}

void conn_window_success(struct conn_window *cw, unsigned n_open, unsigned max)
{
	/* Grow only a window that is being used: success on one session says
	 * nothing about how the destination takes twenty. */
	if (cw->window >= (double)max || cw->window >= n_open + CONN_WINDOW_INIT)
		return;
	cw->window += 1.0 / cw->window;
	if (cw->window > (double)max)
		cw->window = (double)max;
}

void conn_window_failure(struct conn_window *cw)
{
	cw->window -= 1.0 / cw->window;
	if (cw->window < 1.0)
		cw->window = 1.0;
}

bool conn_window_allows(const struct conn_window *cw, unsigned n_open, unsigned max)
{
	/* A window of 2.6 allows 2 sessions: the fraction is progress toward
	 * the next one, not a session. */
	return n_open < max && (double)n_open + 1.0 <= cw->window + 1e-9;
}

double conn_window_carry(const struct conn_window *cw)
{
	double c = CONN_WINDOW_HORIZON_US / cw->us_per_rcpt;

	return c < 1 ? 1 : c;
}

bool conn_window_want(size_t ready, double capacity)
{
	return ready > 0 && (double)ready > capacity;
}
