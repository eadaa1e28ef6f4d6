/*
 * stats.c - per-worker queue snapshots for the API (see stats.h).
 */
#include "engine/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "engine/egress.h"

void worker_stats_init(struct worker_stats *ws)
{
	memset(ws, 0, sizeof(*ws));
	pthread_mutex_init(&ws->mu, NULL);
}

void worker_stats_fini(struct worker_stats *ws)
{
	free(ws->queues);
	ws->queues = NULL;
	pthread_mutex_destroy(&ws->mu);
}

/* A per-minute rate, smoothed over about ten seconds so it follows a blast. */
static double ewma(double rate, uint64_t delta, double dt_s)
{
	double inst = dt_s > 0 ? (double)delta * 60.0 / dt_s : 0;
	double a = 1.0 - exp(-dt_s / 10.0);

	return rate + a * (inst - rate);
}

static void fill(struct queue_stat *st, struct sched_queue *q, size_t n_units, int64_t mono, int64_t wall)
{
	struct egress_queue *eq = q->egress;

	snprintf(st->name, sizeof(st->name), "%s", q->domain);
	st->ready = q->n_ready;
	st->waiting = q->n_waiting;
	st->in_flight = q->n_inflight;
	st->n_units = n_units;
	st->connection_limit = q->cfg->max_smtp_out;
	if (!eq)
		return;
	st->connections = eq->n_conns;
	st->connection_limit = egress_max_out(eq);
	st->delivered = eq->delivered;
	st->deferred = eq->deferred;
	st->bounced = eq->bounced;
	st->expired = eq->expired;
	if (eq->rate_at_ms) {
		double dt = (double)(mono - eq->rate_at_ms) / 1000.0;

		eq->delivered_rate = ewma(eq->delivered_rate, eq->delivered - eq->rate_delivered, dt);
		eq->deferred_rate = ewma(eq->deferred_rate, eq->deferred - eq->rate_deferred, dt);
		eq->bounced_rate = ewma(eq->bounced_rate, eq->bounced + eq->expired - eq->rate_bounced, dt);
	}
	eq->rate_at_ms = mono;
	eq->rate_delivered = eq->delivered;
	eq->rate_deferred = eq->deferred;
	eq->rate_bounced = eq->bounced + eq->expired;
	st->delivered_per_min = eq->delivered_rate;
	st->deferred_per_min = eq->deferred_rate;
	st->bounced_per_min = eq->bounced_rate;
	st->paused = eq->paused;
	st->backoff = egress_mode_now(eq, mono) == EGRESS_BACKOFF;
	st->rollup = eq->is_rollup;
	snprintf(st->redirect, sizeof(st->redirect), "%s", eq->redirect ? eq->redirect : "");
	snprintf(st->last_error, sizeof(st->last_error), "%s", eq->last_error);
	for (size_t i = 0; i < n_units && i < eq->n_units; i++) {
		const struct egress_unit *u = &eq->units[i];

		st->units[i].connections = u->n_conns;
		st->units[i].delivered = u->delivered;
		st->units[i].disabled_until_ms = u->disabled_until_ms > mono ? wall + (u->disabled_until_ms - mono) : 0;
	}
}

void worker_stats_publish(struct worker *w)
{
	struct sched *s = &w->sched;
	size_t n = s->n_queues, n_units = w->eng->cfg->n_vmtas, i = 0;
	struct queue_stat *qs = calloc(1, n * sizeof(*qs) + n * n_units * sizeof(struct unit_stat) + 1);
	struct unit_stat *units = (struct unit_stat *)(qs + n);
	int64_t mono = (int64_t)loop_now_ms(), wall = wall_now_ms();
	struct queue_stat *old;

	if (!qs)
		return; /* the last snapshot stays; try again next time */
	for (size_t b = 0; b < s->n_buckets; b++)
		for (struct sched_queue *q = s->buckets[b]; q && i < n; q = q->hnext, i++) {
			qs[i].units = units + i * n_units;
			fill(&qs[i], q, n_units, mono, wall);
		}
	pthread_mutex_lock(&w->stats.mu);
	old = w->stats.queues;
	w->stats.queues = qs;
	w->stats.n_queues = i;
	w->stats.published_ms = wall;
	pthread_mutex_unlock(&w->stats.mu);
	free(old);
}
