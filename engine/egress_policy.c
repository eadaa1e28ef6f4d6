/*
 * egress_policy.c - how fast and from where a queue may send: the units
 * (one per queue and virtual MTA) with their connection caps and GCRA rate
 * limits, backoff mode, the reply patterns that switch it, the timers that
 * wake a throttled or idle queue, and the operator's actions.
 *
 * Limits in force (PowerMTA's meanings):
 *   max-smtp-out, max-msg-rate, max-connect-rate   per (queue, virtual MTA)
 *   backoff-max-smtp-out, backoff-max-msg-rate     instead, in backoff mode
 * A queue enters backoff when a reply matches a `mode=backoff` pattern and
 * returns to normal after backoff-to-normal-after without another such
 * reply (or at once on `mode=normal`, or by the operator). Times here are
 * the loop's monotonic milliseconds.
 *
 * Under the cap, how many sessions a unit opens follows its backlog and the
 * destination's answers (conn_window.h): a queue opens one more only while
 * its ready recipients exceed what its sessions carry in about a second,
 * and a unit only within its window.
 *
 * A socket that cannot be made (out of descriptors, a source address that
 * is not ours, no buffers) is a local failure, not the destination's: the
 * unit waits OPEN_BACKOFF_MIN_MS, doubling up to OPEN_BACKOFF_MAX_MS, before
 * its next session (the recipients stay ready, no attempt is counted), each
 * failure counts in salvo_connect_resource_errors_total, and the log says
 * so at most once per OPEN_LOG_INTERVAL_MS per unit. Out of descriptors
 * (EMFILE, ENFILE), every worker QUITs its idle sessions (egress_tick).
 */
#include "engine/egress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/pcre_re.h"
#include "net/smtp_client.h"
#include "queue/pause.h"

#define OPEN_BACKOFF_MIN_MS 100
#define OPEN_BACKOFF_MAX_MS 10000
#define OPEN_LOG_INTERVAL_MS 10000

int egress_units_init(struct egress_queue *eq)
{
	size_t n = eq->w->cfg->n_vmtas ? eq->w->cfg->n_vmtas : 1;

	eq->units = calloc(n, sizeof(*eq->units));
	if (!eq->units)
		return -1;
	eq->n_units = n;
	for (size_t i = 0; i < n; i++)
		conn_window_init(&eq->units[i].cw);
	/* A pause outlives the queue (the shard keeps paused names). */
	eq->paused = sched_is_paused(&eq->w->sched, eq->q->domain);
	return 0;
}

int egress_units_grow(struct egress_queue *eq, size_t n_vmtas)
{
	struct egress_unit *u;

	if (n_vmtas <= eq->n_units)
		return 0;
	if (!(u = realloc(eq->units, n_vmtas * sizeof(*u))))
		return -1;
	memset(u + eq->n_units, 0, (n_vmtas - eq->n_units) * sizeof(*u));
	for (size_t i = eq->n_units; i < n_vmtas; i++)
		conn_window_init(&u[i].cw);
	eq->units = u;
	eq->n_units = n_vmtas;
	return 0;
}

bool egress_queue_can_free(struct sched_queue *q, void *arg)
{
	struct egress_queue *eq = q->egress;
	int64_t now = (int64_t)loop_now_ms();

	(void)arg;
	if (!eq)
		return true;
	/* Something still points at it, or state that matters is running. */
	if (eq->n_conns || eq->n_connecting || eq->resolving || eq->on_timers || eq->freeing)
		return false;
	if (eq->mode == EGRESS_BACKOFF && eq->backoff_until_ms > now)
		return false;
	for (size_t i = 0; i < sizeof(eq->clear) / sizeof(eq->clear[0]); i++)
		if (eq->clear[i].until_ms > now)
			return false; /* a host whose TLS failed: it stays in clear for its hour */
	for (size_t i = 0; i < eq->n_units; i++) {
		const struct egress_unit *u = &eq->units[i];

		if (u->disabled_until_ms > now || u->msg_rate.tat_us > now * 1000 ||
		    u->connect_rate.tat_us > now * 1000 || u->open_after_ms > now)
			return false; /* a fresh queue would forget a rate or a socket backoff still in force */
	}
	return true;
}

void egress_queue_freed(struct sched_queue *q, void *arg)
{
	struct worker *w = arg;
	struct egress_queue *eq = q->egress;

	w->stats.gone.queues++;
	if (eq) {
		w->stats.gone.delivered += eq->delivered;
		w->stats.gone.deferred += eq->deferred;
		w->stats.gone.bounced += eq->bounced;
		w->stats.gone.expired += eq->expired;
	}
	egress_queue_free(q);
}

void egress_open_failed(struct egress_queue *eq, size_t vmta, int err, const char *target, int64_t now_ms)
{
	const struct config *cfg = eq->w->cfg;
	struct egress_unit *u = &eq->units[vmta];
	int64_t wait = OPEN_BACKOFF_MIN_MS;

	for (unsigned i = 0; i < u->open_fails && wait < OPEN_BACKOFF_MAX_MS; i++)
		wait *= 2;
	if (wait > OPEN_BACKOFF_MAX_MS)
		wait = OPEN_BACKOFF_MAX_MS;
	if (u->open_fails < UINT32_MAX)
		u->open_fails++;
	u->open_after_ms = now_ms + wait;
	egress_wake_at(eq, u->open_after_ms);
	__atomic_add_fetch(&eq->w->eng->counters.connect_resource_errors, 1, __ATOMIC_RELAXED);
	if (u->open_logged_ms && now_ms - u->open_logged_ms < OPEN_LOG_INTERVAL_MS) {
		u->open_unlogged++;
		return;
	}
	fprintf(stderr,
		"salvod: queue %s, virtual-mta %s: cannot make a socket for %s: %s; new sessions wait %lld ms "
		"(%u more such failures since the last report)\n",
		eq->q->domain, vmta < cfg->n_vmtas ? cfg->vmtas[vmta].name : "?", target ? target : "?",
		strerror(-err), (long long)wait, u->open_unlogged);
	u->open_logged_ms = now_ms;
	u->open_unlogged = 0;
}

void egress_open_ok(struct egress_queue *eq, size_t vmta)
{
	eq->units[vmta].open_fails = 0;
}

enum egress_mode egress_mode_now(struct egress_queue *eq, int64_t now_ms)
{
	if (eq->mode == EGRESS_BACKOFF && now_ms >= eq->backoff_until_ms) {
		eq->mode = EGRESS_NORMAL;
		fprintf(stderr, "salvod: queue %s returns to normal mode\n", eq->q->domain);
	}
	return eq->mode;
}

/* The unit's max-cold-virtual-mta-msg (unset, unlimited or unreadable: no
 * cap) and reroute-to-virtual-mta (a vmta of cfg, else none) from its
 * settings d. */
static void cold_read(const struct config *cfg, struct egress_unit *u, const struct config_domain *d)
{
	const char *v = config_domain_value(d, "max-cold-virtual-mta-msg");

	if (!v || config_parse_rate(v, &u->cold_max) < 0)
		u->cold_max = (struct config_rate){0};
	u->reroute = -1;
	if ((v = config_domain_value(d, "reroute-to-virtual-mta")))
		for (size_t i = 0; i < cfg->n_vmtas; i++)
			if (!strcasecmp(cfg->vmtas[i].name, v))
				u->reroute = (ssize_t)i;
	u->cold_max_known = true;
}

const struct config_domain *egress_unit_dom(struct egress_queue *eq, size_t vmta)
{
	const struct config *cfg = eq->w->cfg;
	struct egress_unit *u;
	struct config_domain *d;
	const struct config_vmta *vm;
	const struct config_source_limit *lim;

	if (vmta >= eq->n_units || vmta >= cfg->n_vmtas)
		return eq->q->cfg;
	vm = &cfg->vmtas[vmta];
	/* the common case, no nesting and no source-ip-max-* anywhere: no work */
	if (!cfg->n_vdomains && !eq->q->cfg->n_source_limits)
		return eq->q->cfg;
	u = &eq->units[vmta];
	if (u->dom_resolved)
		return u->dom ? u->dom : eq->q->cfg;
	/* once per (queue, vmta), and only where a nested block or a
	 * source-ip-max-* for this vmta's address applies (the long tail of
	 * queues costs nothing); out of memory: the queue's own settings this
	 * time, resolved again next time */
	if (!config_domain_has_nested(cfg, eq->q->domain, vm->name) &&
	    !(vm->has_source && config_domain_source_limit(eq->q->cfg, (const struct sockaddr *)&vm->source.sa))) {
		u->dom_resolved = true;
		return eq->q->cfg;
	}
	if (!(d = calloc(1, sizeof(*d))))
		return eq->q->cfg;
	if (config_domain_resolve(cfg, eq->q->domain, cfg->vmtas[vmta].name, d) < 0) {
		free(d);
		return eq->q->cfg;
	}
	/* PowerMTA's source-ip-max-smtp-out / -msg-rate for this vmta's address */
	if (vm->has_source && (lim = config_domain_source_limit(d, (const struct sockaddr *)&vm->source.sa))) {
		if (lim->max_smtp_out)
			d->max_smtp_out = lim->max_smtp_out;
		if (lim->has_rate)
			d->max_msg_rate = lim->max_msg_rate;
	}
	/* the values as written are for --show only; but the warm-up cap is
	 * read from them (cold_allows) */
	cold_read(cfg, u, d);
	for (size_t k = 0; d->values && config_domain_key_name(k); k++)
		free(d->values[k]);
	free(d->values);
	d->values = NULL;
	u->dom_resolved = true;
	u->dom = d;
	return d;
}

void egress_units_forget_doms(struct egress_queue *eq)
{
	for (size_t i = 0; i < eq->n_units; i++) {
		if (eq->units[i].dom) {
			config_domain_release(eq->units[i].dom);
			free(eq->units[i].dom);
			eq->units[i].dom = NULL;
		}
		eq->units[i].dom_resolved = false;
		eq->units[i].cold_max_known = false; /* read again from the new settings */
	}
}

void egress_units_free(struct egress_queue *eq)
{
	egress_units_forget_doms(eq);
	free(eq->units);
	eq->units = NULL;
	eq->n_units = 0;
}

unsigned egress_max_out(struct egress_queue *eq, size_t vmta)
{
	const struct config_domain *d = egress_unit_dom(eq, vmta);
	if (d->held_by_type)
		return 0; /* type http-delivery, file, ...: held (config_pmta.c) */
	if (eq->mode == EGRESS_BACKOFF && d->backoff_max_smtp_out)
		return d->backoff_max_smtp_out == CONFIG_SMTP_OUT_NONE ? 0 : d->backoff_max_smtp_out;
	return d->max_smtp_out; /* 0: max-smtp-out 0, the queue holds its mail */
}

const struct config_rate *egress_msg_rate(struct egress_queue *eq, size_t vmta)
{
	const struct config_domain *d = egress_unit_dom(eq, vmta);

	if (eq->mode == EGRESS_BACKOFF && d->backoff_max_msg_rate.per_ms) /* set, or 0 */
		return &d->backoff_max_msg_rate;
	return &d->max_msg_rate;
}

bool egress_pool_has(const struct config *cfg, size_t pool, size_t vmta)
{
	const struct config_pool *p = &cfg->pools[pool < cfg->n_pools ? pool : 0];

	for (size_t i = 0; i < p->n_vmtas; i++)
		if (p->vmtas[i] == vmta)
			return true;
	return false;
}

/* ---- warm-up: cold-virtual-mta ------------------------------------------------ */

/* May warm vmta w send one more of its messages through its cold vmta
 * now? Under w's max-cold-virtual-mta-msg for the queue (PowerMTA puts it
 * in the warm vmta's <domain> blocks; unset or unlimited: no cap); the
 * window is the rate's period, restarted when it has passed. */
static bool cold_allows(struct egress_queue *eq, size_t w, int64_t wall_ms)
{
	struct egress_unit *u = &eq->units[w];
	const struct config_domain *d = egress_unit_dom(eq, w); /* may read it (nested blocks) */

	if (!u->cold_max_known)
		cold_read(eq->w->cfg, u, d);
	if (!u->cold_max.count || !u->cold_max.per_ms)
		return true;
	if (wall_ms - u->cold_start_ms >= (int64_t)u->cold_max.per_ms) {
		u->cold_start_ms = wall_ms;
		u->cold_sent = 0;
	}
	return u->cold_sent < u->cold_max.count;
}

/* The vmta that (queue, v)'s mail goes through instead (PowerMTA's
 * reroute-to-virtual-mta), or -1. */
static ssize_t reroute_of(struct egress_queue *eq, size_t v)
{
	struct egress_unit *u = &eq->units[v];
	const struct config_domain *d = egress_unit_dom(eq, v);

	if (!u->cold_max_known)
		cold_read(eq->w->cfg, u, d);
	return u->reroute >= 0 && (size_t)u->reroute < eq->n_units && (size_t)u->reroute != v ? u->reroute : -1;
}

/* Does a member of pool p have its mail rerouted to vmta r? */
static bool reroute_serves(struct egress_queue *eq, size_t pool, size_t r)
{
	const struct config *cfg = eq->w->cfg;
	const struct config_pool *p = &cfg->pools[pool < cfg->n_pools ? pool : 0];

	for (size_t i = 0; i < p->n_vmtas; i++)
		if (p->vmtas[i] < eq->n_units && reroute_of(eq, p->vmtas[i]) == (ssize_t)r)
			return true;
	return false;
}

/* The member of pool p whose cold vmta c is and that may send through it
 * now, or -1. */
static ssize_t cold_serves(struct egress_queue *eq, size_t pool, size_t c, int64_t wall_ms)
{
	const struct config *cfg = eq->w->cfg;
	const struct config_pool *p = &cfg->pools[pool < cfg->n_pools ? pool : 0];

	for (size_t i = 0; i < p->n_vmtas; i++) {
		size_t w = p->vmtas[i];

		if (w < eq->n_units && cfg->vmtas[w].has_cold && cfg->vmtas[w].cold == c && cold_allows(eq, w, wall_ms))
			return (ssize_t)w;
	}
	return -1;
}

void egress_wake_at(struct egress_queue *eq, int64_t when_ms)
{
	struct worker *w = eq->w;

	if (eq->wake_ms && eq->wake_ms <= when_ms)
		return;
	eq->wake_ms = when_ms;
	if (!eq->on_timers) {
		eq->on_timers = true;
		eq->timer_next = w->egress_timers;
		w->egress_timers = eq;
	}
}

/* Remember the shortest wait seen (us) while choosing. */
static void note_wait(int64_t *best, int64_t wait_us)
{
	if (wait_us > 0 && (!*best || wait_us < *best))
		*best = wait_us;
}

/* Can a session open on unit v now? Its disabling, socket backoff,
 * session window, message rate and connect rate (a token is taken). */
static bool unit_ready(struct egress_queue *eq, size_t v, int64_t now_ms, int64_t *wait)
{
	struct egress_unit *u = &eq->units[v];
	unsigned max_out = egress_max_out(eq, v);
	const struct config_rate *rate = egress_msg_rate(eq, v);
	int64_t now_us = now_ms * 1000, w;

	/* PowerMTA's 0 for a cap or a rate: held until a reload changes it
	 * (which kicks the queue), so no wait is noted */
	if (!max_out || config_rate_none(rate) || config_rate_none(&egress_unit_dom(eq, v)->max_connect_rate))
		return false;
	if (u->disabled_until_ms > now_ms) {
		note_wait(wait, (u->disabled_until_ms - now_ms) * 1000);
		return false;
	}
	if (u->open_after_ms > now_ms) {
		note_wait(wait, (u->open_after_ms - now_ms) * 1000);
		return false;
	}
	if (!conn_window_allows(&u->cw, u->n_conns, max_out))
		return false;
	if (!throttle_peek(&u->msg_rate, rate, now_us, &w)) {
		note_wait(wait, w);
		return false;
	}
	if (!throttle_take(&u->connect_rate, &egress_unit_dom(eq, v)->max_connect_rate, now_us, &w)) {
		note_wait(wait, w);
		return false;
	}
	return true;
}

/* What unit v's open sessions carry in about a second: its window's carry
 * per session, but never more than its max-msg-rate. */
static double unit_capacity(struct egress_queue *eq, size_t v)
{
	const struct config_rate *rate = egress_msg_rate(eq, v);
	double cap = rate->count && rate->per_ms ? (double)rate->count * 1000.0 / rate->per_ms : 0;
	double c = eq->units[v].n_conns * conn_window_carry(&eq->units[v].cw);

	return cap && c > cap ? cap : c;
}

/* May unit v's sessions take pool p's recipients (egress_pick_pool's rule):
 * a member whose mail is not rerouted, a reroute target, a cold vmta with
 * its warm member's share left. */
static bool unit_serves_pool(struct egress_queue *eq, const struct config *cfg, size_t p, size_t v, int64_t wall_ms)
{
	return (egress_pool_has(cfg, p, v) && reroute_of(eq, v) < 0) || reroute_serves(eq, p, v) ||
	       cold_serves(eq, p, v, wall_ms) >= 0;
}

/* Does pool p's backlog want one more session? Only sessions that may take
 * its recipients count: one from another pool's vmta, open or idle,
 * carries none of them. */
static bool pool_wants_session(struct egress_queue *eq, const struct config *cfg, size_t p, int64_t wall_ms)
{
	double capacity = 0;

	if (!eq->q->fifos[p].n)
		return false;
	for (size_t v = 0; v < eq->n_units; v++)
		if (eq->units[v].n_conns && unit_serves_pool(eq, cfg, p, v, wall_ms))
			capacity += unit_capacity(eq, v);
	return conn_window_want(eq->q->fifos[p].n, capacity);
}

bool egress_wants_session(struct egress_queue *eq)
{
	const struct config *cfg = eq->w->cfg;
	int64_t wall = wall_now_ms();

	/* A unit under max-msg-rate carries no more than its rate, however
	 * many sessions it has: then the backlog asks for another unit. */
	for (size_t p = 0; p < eq->q->n_fifos; p++)
		if (pool_wants_session(eq, cfg, p, wall))
			return true;
	return false;
}

ssize_t egress_pick_vmta(struct egress_queue *eq, int64_t now_ms)
{
	const struct config *cfg = eq->w->cfg;
	struct sched_queue *q = eq->q;
	int64_t wait = 0, wall = wall_now_ms();

	egress_mode_now(eq, now_ms);
	for (size_t i = 0; i < q->n_fifos; i++) {
		size_t p = (eq->pool_rr + i) % q->n_fifos;
		const struct config_pool *pool = &cfg->pools[p < cfg->n_pools ? p : 0];

		if (!pool_wants_session(eq, cfg, p, wall))
			continue; /* nothing ready, or its own sessions carry it */
		for (size_t k = 0; k < pool->n_vmtas; k++) {
			size_t v = pool->vmtas[(eq->vmta_rr + k) % pool->n_vmtas];
			const struct config_vmta *vm = &cfg->vmtas[v];
			ssize_t r;

			if (v >= eq->n_units)
				continue; /* added by a reload that found no memory for its unit */
			/* reroute-to-virtual-mta: v's mail for this queue goes through r only */
			if ((r = reroute_of(eq, v)) >= 0) {
				if (!unit_ready(eq, (size_t)r, now_ms, &wait))
					continue;
				eq->vmta_rr = (eq->vmta_rr + k + 1) % pool->n_vmtas;
				return r;
			}
			/* warm-up: the cold vmta first, while v's daily share lasts */
			if (vm->has_cold && vm->cold < eq->n_units && cold_allows(eq, v, wall) &&
			    unit_ready(eq, vm->cold, now_ms, &wait)) {
				eq->vmta_rr = (eq->vmta_rr + k + 1) % pool->n_vmtas;
				return (ssize_t)vm->cold;
			}
			if (!unit_ready(eq, v, now_ms, &wait))
				continue;
			eq->vmta_rr = (eq->vmta_rr + k + 1) % pool->n_vmtas;
			return (ssize_t)v;
		}
	}
	if (wait)
		egress_wake_at(eq, now_ms + wait / 1000 + 1);
	return -1;
}

ssize_t egress_pick_pool(struct egress_queue *eq, size_t vmta, int64_t now_ms)
{
	const struct config *cfg = eq->w->cfg;
	struct sched_queue *q = eq->q;
	struct egress_unit *u = &eq->units[vmta];
	int64_t wait = 0, wall = wall_now_ms();
	const struct config_rate *rate;

	egress_mode_now(eq, now_ms);
	if (u->disabled_until_ms > now_ms)
		return -1;
	rate = egress_msg_rate(eq, vmta); /* after egress_mode_now: backoff has its own */
	for (size_t i = 0; i < q->n_fifos; i++) {
		size_t p = (eq->pool_rr + i) % q->n_fifos;
		ssize_t warm = -1;

		if (!q->fifos[p].n)
			continue;
		/* a member whose mail is rerouted does not take it itself; the
		 * vmta it goes to does, and a cold vmta its warm one's share */
		if (!(egress_pool_has(cfg, p, vmta) && reroute_of(eq, vmta) < 0) && !reroute_serves(eq, p, vmta) &&
		    (warm = cold_serves(eq, p, vmta, wall)) < 0)
			continue;
		if (config_rate_none(rate))
			return -1; /* a rate of 0: held, the session idles out */
		if (!throttle_take(&u->msg_rate, rate, now_ms * 1000, &wait)) {
			egress_wake_at(eq, now_ms + wait / 1000 + 1);
			return -1;
		}
		eq->pool_rr = (p + 1) % q->n_fifos;
		if (warm >= 0)
			eq->units[warm].cold_sent++; /* one of warm's messages goes cold */
		return (ssize_t)p;
	}
	return -1;
}

unsigned egress_patterns(struct egress_queue *eq, struct egress_conn *c, const struct smtp_result *res,
			 int64_t now_ms)
{
	const struct config *cfg = eq->w->cfg;
	const struct config_domain *dom = egress_unit_dom(eq, c->vmta);
	const struct config_pattern_list *list;
	const struct config_pattern *rule = NULL;
	char line[320];

	if (dom->pattern_list < 0 || (res->code >= 200 && res->code < 300) || (!res->code && !res->text[0]))
		return 0;
	list = &cfg->pattern_lists[dom->pattern_list];
	if (res->code)
		snprintf(line, sizeof(line), "%d %s%s%s", res->code, res->enhanced, res->enhanced[0] ? " " : "",
			 res->text);
	else
		snprintf(line, sizeof(line), "%s", res->text);
	for (size_t i = 0; i < list->n_rules && !rule; i++)
		if (pcre_re_match(list->rules[i].re, line))
			rule = &list->rules[i];
	if (!rule)
		return 0;
	if (rule->actions & CONFIG_PAT_MODE_BACKOFF) {
		if (egress_mode_now(eq, now_ms) != EGRESS_BACKOFF)
			fprintf(stderr, "salvod: queue %s enters backoff mode: %.200s\n", eq->q->domain, line);
		eq->mode = EGRESS_BACKOFF;
		eq->backoff_until_ms = now_ms + (int64_t)dom->backoff_to_normal_after_ms;
	}
	if ((rule->actions & CONFIG_PAT_MODE_NORMAL) && eq->mode != EGRESS_NORMAL) {
		eq->mode = EGRESS_NORMAL;
		fprintf(stderr, "salvod: queue %s returns to normal mode: %.200s\n", eq->q->domain, line);
	}
	if (c && (rule->actions & CONFIG_PAT_DISABLE_SOURCE_IP)) {
		struct egress_unit *u = &eq->units[c->vmta];

		u->disabled_until_ms = now_ms + (int64_t)rule->reenable_after_ms;
		c->retire = true;
		egress_wake_at(eq, u->disabled_until_ms);
		fprintf(stderr, "salvod: queue %s: virtual-mta %s disabled for %llu s: %.200s\n", eq->q->domain,
			cfg->vmtas[c->vmta].name, (unsigned long long)(rule->reenable_after_ms / 1000), line);
	}
	if (c && (rule->actions & CONFIG_PAT_SKIP_MX)) {
		c->retire = true;
		if (eq->n_targets > 1)
			eq->good_target = (c->target + 1) % eq->n_targets;
	}
	return rule->actions;
}

/* ---- timers ------------------------------------------------------------------ */

void egress_tick(struct worker *w)
{
	struct egress_queue *eq = w->egress_timers;
	int64_t now = (int64_t)loop_now_ms();

	w->egress_timers = NULL;
	egress_shed_if_short(w);
	while (eq) {
		struct egress_queue *next = eq->timer_next;
		int64_t idle;

		eq->on_timers = false;
		eq->timer_next = NULL;
		if (eq->wake_ms > now) {
			int64_t when = eq->wake_ms;

			eq->wake_ms = 0;
			egress_wake_at(eq, when);
		} else {
			eq->wake_ms = 0;
			if ((idle = egress_close_idle(eq, now)))
				egress_wake_at(eq, idle);
			egress_kick(w, eq->q);
		}
		eq = next;
	}
}

/* ---- operator actions ------------------------------------------------------------ */

struct queue_action_mail {
	struct mailbox_item link;
	enum queue_action action;
	char queue[];
};

/* Hand an action to the shard that owns the queue. */
static int action_post(struct engine *eng, const char *queue, enum queue_action action)
{
	size_t n = strlen(queue);
	struct queue_action_mail *m = malloc(sizeof(*m) + n + 1);

	if (!m)
		return -1;
	for (size_t i = 0; i <= n; i++)
		m->queue[i] = queue[i] >= 'A' && queue[i] <= 'Z' ? (char)(queue[i] - 'A' + 'a') : queue[i];
	m->action = action;
	m->link.kind = WORKER_MAIL_ACTION;
	mailbox_post(&engine_shard(eng, m->queue)->mb, &m->link);
	return 0;
}

/* A pause or resume is written to the spool first (queue/pause.h), then
 * applied: it outlives the queue and the process. */
struct pause_req {
	struct spool_req req;
	struct engine *eng;
	enum queue_action action;
	void (*stored)(void *arg, int result);  /* the API's answer, or NULL */
	void *arg;
	char queue[];
};

static int pause_apply(struct spool_req *req, struct spool_wtxn *t, void *ctx)
{
	struct pause_req *p = container_of(req, struct pause_req, req);

	(void)ctx;
	return p->action == QUEUE_PAUSE ? pause_put(t, p->queue, wall_now_ms()) : pause_del(t, p->queue);
}

static void pause_done(struct spool_req *req, int result, void *ctx)
{
	struct pause_req *p = container_of(req, struct pause_req, req);

	(void)ctx;
	if (result)
		fprintf(stderr, "salvod: queue %s: %s not recorded in the spool (%s); applied until a restart\n",
			p->queue, p->action == QUEUE_PAUSE ? "pause" : "resume", spool_strerror(result));
	if (action_post(p->eng, p->queue, p->action) < 0)
		fprintf(stderr, "salvod: out of memory for an operator action on %s\n", p->queue);
	if (p->stored)
		p->stored(p->arg, result);
	free(p);
}

int engine_queue_action(struct engine *eng, const char *queue, enum queue_action action,
			void (*stored)(void *arg, int result), void *arg)
{
	size_t n = strlen(queue);
	struct pause_req *p;

	if (action != QUEUE_PAUSE && action != QUEUE_RESUME)
		return action_post(eng, queue, action);
	if (n > PAUSE_NAME_MAX || !(p = malloc(sizeof(*p) + n + 1)))
		return -1;
	for (size_t i = 0; i <= n; i++)
		p->queue[i] = queue[i] >= 'A' && queue[i] <= 'Z' ? (char)(queue[i] - 'A' + 'a') : queue[i];
	p->eng = eng;
	p->action = action;
	p->stored = stored;
	p->arg = arg;
	p->req.apply = pause_apply;
	p->req.done = pause_done;
	spool_writer_submit(&eng->writer, &p->req);
	return 0;
}

static int restore_one(void *arg, const char *name)
{
	return action_post(arg, name, QUEUE_PAUSE);
}

int engine_restore_pauses(struct engine *eng)
{
	return pause_each(eng->spool, restore_one, eng);
}

/* An action on a queue that does not exist: a pause (or resume) is
 * recorded by name, to apply when the queue appears; anything else has
 * nothing to act on. No queue is made for a name. */
static void action_unknown(struct worker *w, const struct queue_action_mail *m)
{
	if (m->action == QUEUE_PAUSE || m->action == QUEUE_RESUME) {
		if (sched_pause_set(&w->sched, m->queue, m->action == QUEUE_PAUSE) < 0)
			fprintf(stderr, "salvod: out of memory for an operator action on %s\n", m->queue);
		else
			fprintf(stderr, "salvod: queue %s (no mail queued): operator action %s recorded\n", m->queue,
				m->action == QUEUE_PAUSE ? "pause" : "resume");
		return;
	}
	fprintf(stderr, "salvod: queue %s: no such queue, operator action ignored\n", m->queue);
}

void egress_action(struct worker *w, struct mailbox_item *it)
{
	struct queue_action_mail *m = container_of(it, struct queue_action_mail, link);
	struct sched_queue *q = sched_queue_find(&w->sched, m->queue);
	struct egress_queue *eq = q ? egress_queue_of(w, q) : NULL;
	int64_t now = (int64_t)loop_now_ms();

	if (!q) {
		action_unknown(w, m);
		free(m);
		return;
	}
	if ((m->action == QUEUE_PAUSE || m->action == QUEUE_RESUME) &&
	    sched_pause_set(&w->sched, m->queue, m->action == QUEUE_PAUSE) < 0)
		eq = NULL;
	if (!eq) {
		fprintf(stderr, "salvod: out of memory for an operator action on %s\n", m->queue);
		free(m);
		return;
	}
	switch (m->action) {
	case QUEUE_PAUSE:
		eq->paused = true;
		egress_close_idle(eq, now);
		break;
	case QUEUE_RESUME:
		eq->paused = false;
		break;
	case QUEUE_RETRY:
		sched_retry_now(&w->sched, q);
		break;
	case QUEUE_MODE_NORMAL:
		eq->mode = EGRESS_NORMAL;
		break;
	case QUEUE_MODE_BACKOFF:
		eq->mode = EGRESS_BACKOFF;
		eq->backoff_until_ms = now + (int64_t)q->cfg->backoff_to_normal_after_ms;
		break;
	}
	fprintf(stderr, "salvod: queue %s: operator action %s\n", m->queue,
		m->action == QUEUE_PAUSE ? "pause" : m->action == QUEUE_RESUME ? "resume" :
		m->action == QUEUE_RETRY ? "retry" : m->action == QUEUE_MODE_NORMAL ? "mode normal" : "mode backoff");
	free(m);
	sched_kick(&w->sched, q);
}

void egress_action_discard(struct mailbox_item *it)
{
	free(container_of(it, struct queue_action_mail, link));
}
