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
#include "engine/scheduler.h"

void worker_stats_init(struct worker_stats *ws)
{
	memset(ws, 0, sizeof(*ws));
	pthread_mutex_init(&ws->mu, NULL);
}

static void snap_free(struct stats_snap *sn);

/* After the API stopped: no reader holds a snapshot any more. */
void worker_stats_fini(struct worker_stats *ws)
{
	stats_snap_put(ws->cur);
	snap_free(ws->spare);
	ws->cur = ws->spare = NULL;
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
	st->connection_limit = egress_max_out(eq, 0);
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

static void snap_free(struct stats_snap *sn)
{
	if (!sn)
		return;
	free(sn->queues);
	free(sn->units);
	free(sn);
}

void stats_snap_put(struct stats_snap *sn)
{
	if (sn && __atomic_sub_fetch(&sn->refs, 1, __ATOMIC_ACQ_REL) == 0)
		snap_free(sn);
}

struct stats_snap *worker_stats_get(struct worker_stats *ws)
{
	struct stats_snap *sn;

	pthread_mutex_lock(&ws->mu);
	sn = ws->cur;
	if (sn)
		__atomic_add_fetch(&sn->refs, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_unlock(&ws->mu);
	return sn;
}

/* A snapshot for need queues: the spare when no reader holds it, its
 * arrays resized only when too small or four times too large. */
static struct stats_snap *snap_take(struct worker_stats *ws, size_t need, size_t n_units)
{
	struct stats_snap *sn = ws->spare;
	size_t cap;

	ws->spare = NULL;
	if (!sn && !(sn = calloc(1, sizeof(*sn))))
		return NULL;
	if (sn->cap < need || sn->cap > 4 * need + 64 || sn->n_units != n_units) {
		cap = need + need / 4 + 16;
		free(sn->queues);
		free(sn->units);
		sn->queues = malloc(cap * sizeof(*sn->queues));
		sn->units = malloc(cap * (n_units ? n_units : 1) * sizeof(*sn->units));
		sn->cap = sn->queues && sn->units ? cap : 0;
		sn->n_units = n_units;
		if (!sn->cap) {
			snap_free(sn);
			return NULL;
		}
	}
	sn->refs = 1;
	return sn;
}

/* A paused name with no queue: shown as an empty paused queue. */
static void fill_paused(struct queue_stat *st, const char *name, const struct config *cfg, size_t n_units)
{
	snprintf(st->name, sizeof(st->name), "%s", name);
	st->n_units = n_units;
	st->connection_limit = config_domain_for(cfg, name)->max_smtp_out;
	st->paused = true;
	st->no_queue = true;
}

void worker_stats_publish(struct worker *w)
{
	struct sched *s = &w->sched;
	size_t n_units = w->cfg->n_vmtas, need = s->n_queues, i = 0;
	int64_t mono = (int64_t)loop_now_ms(), wall = wall_now_ms();
	struct stats_snap *sn, *old;

	for (const struct sched_paused *p = s->paused; p; p = p->next)
		need += !sched_queue_find(s, p->name);
	if (!(sn = snap_take(&w->stats, need, n_units)))
		return; /* the last snapshot stays; try again next time */
	for (size_t b = 0; b < s->n_buckets; b++)
		for (struct sched_queue *q = s->buckets[b]; q && i < need; q = q->hnext, i++) {
			memset(&sn->queues[i], 0, sizeof(sn->queues[i]));
			sn->queues[i].units = sn->units + i * n_units;
			memset(sn->queues[i].units, 0, n_units * sizeof(struct unit_stat));
			fill(&sn->queues[i], q, n_units, mono, wall);
		}
	for (const struct sched_paused *p = s->paused; p && i < need; p = p->next) {
		if (sched_queue_find(s, p->name))
			continue;
		memset(&sn->queues[i], 0, sizeof(sn->queues[i]));
		sn->queues[i].units = sn->units + i * n_units;
		memset(sn->queues[i].units, 0, n_units * sizeof(struct unit_stat));
		fill_paused(&sn->queues[i++], p->name, w->cfg, n_units);
	}
	sn->n = i;
	sn->gone = w->stats.gone;
	sn->published_ms = wall;
	pthread_mutex_lock(&w->stats.mu);
	old = w->stats.cur;
	w->stats.cur = sn;
	pthread_mutex_unlock(&w->stats.mu);
	/* No reader can take old any more: reuse it unless one still holds it. */
	if (old && __atomic_load_n(&old->refs, __ATOMIC_ACQUIRE) == 1)
		w->stats.spare = old;
	else
		stats_snap_put(old);
}
