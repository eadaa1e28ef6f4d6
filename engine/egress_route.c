/*
 * egress_route.c - where a queue's connections go: the MX targets of its
 * domain (DNS, looked up again after the answer's TTL, at most
 * EGRESS_ROUTE_TTL_MS) or its configured `route`; and mx-rollups.
 *
 * A refresh that fails temporarily keeps the working route: net/dns.c
 * serves the last answer (stale) with backoff, and should the resolver have
 * nothing, the queue keeps its targets up to DNS_STALE_MAX_MS after the last
 * good answer. Only a queue with no route at all defers its recipients.
 *
 * Rollups: when a domain's MX hosts match an `mx PATTERN QUEUE` line, the
 * domain's queue becomes a member: its ready recipients move to the queue
 * named QUEUE (on whatever shard owns that name), which delivers them
 * through the matching MX hosts of its members and under its own limits
 * (egress_rollup.c decides, per recipient, by its own domain's MX). A
 * recipient deferred there stays in the rollup queue for its retries; one
 * whose domain no longer matches goes back home (egress_send_home()), and
 * its home queue looks its MX up afresh. Moving across shards is one mailbox
 * post per batch, carrying the chain of recipients (they own nothing but
 * themselves).
 */
#include "engine/egress.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

struct rollup_move {
	struct mailbox_item link;
	struct sched_rcpt *head;
	bool home;                 /* back to the domain's own queue */
	char queue[];
};

bool egress_targets_alloc(struct egress_queue *eq)
{
	if (!eq->targets)
		eq->targets = calloc(DNS_MAX_TARGETS, sizeof(*eq->targets));
	return eq->targets != NULL;
}

void egress_route_set_port(const struct egress_queue *eq, struct dns_target *t)
{
	const struct config_domain *dom = eq->q->cfg;
	uint16_t port = dom->has_route || dom->route_host ? dom->route_port : eq->w->cfg->smtp_port;

	if (!port)
		port = 25;
	if (t->addr.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&t->addr)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)&t->addr)->sin_port = htons(port);
}

/* A member of a rollup when any MX host matches a rollup pattern. A stale
 * answer (DNS failing) may make a queue join - its mail then shares the
 * rollup's limits - but never leave or switch, and never join again a rollup
 * that returned its recipients within the stale window: the rollup asked
 * afresh, and sending them back on old data would bounce them between the
 * two. */
static void route_check_rollup(struct egress_queue *eq, bool stale)
{
	const char *rollup;

	if (eq->is_rollup || eq->q->cfg->has_route || eq->q->cfg->disable_mx_rollup)
		return;
	rollup = egress_rollup_for(eq->w->cfg, eq->targets, eq->n_targets, eq->q->domain);
	if (stale && (!rollup || eq->redirect ||
		      (eq->returned_ms && loop_now_ms() - eq->returned_ms < DNS_STALE_MAX_MS)))
		return;
	if (!rollup) {
		free(eq->redirect);
		eq->redirect = NULL;
		return;
	}
	if (eq->redirect && strcmp(eq->redirect, rollup) == 0)
		return;
	free(eq->redirect);
	eq->redirect = strdup(rollup); /* NULL on ENOMEM: delivered unrolled */
}

void egress_route_error(enum dns_status st, const char *domain, const char *error, struct smtp_result *res)
{
	memset(res, 0, sizeof(*res));
	switch (st) {
	case DNS_NXDOMAIN:
		res->code = 550;
		snprintf(res->enhanced, sizeof(res->enhanced), "5.1.2");
		break;
	case DNS_NULL_MX:
		res->code = 556;
		snprintf(res->enhanced, sizeof(res->enhanced), "5.1.10");
		break;
	case DNS_NO_ADDRESS:
		res->code = 550;
		snprintf(res->enhanced, sizeof(res->enhanced), "5.4.4");
		break;
	case DNS_OK:
	case DNS_TEMPFAIL:
	default:
		res->code = 0;
		break;
	}
	snprintf(res->text, sizeof(res->text), "%s: %s", domain, error ? error : dns_status_str(st));
}

static void route_resolved(void *arg, const struct dns_route *route)
{
	struct egress_queue *eq = arg;
	uint64_t now = loop_now_ms(), ttl = route->ttl_ms;
	struct smtp_result res;

	eq->resolving = false;
	if (route->status == DNS_OK && !egress_targets_alloc(eq)) {
		res.code = 0;
		snprintf(res.text, sizeof(res.text), "%s: out of memory for its MX hosts", eq->q->domain);
		eq->have_route = false;
		egress_fail_ready(eq, &res, NULL);
		return;
	}
	if (route->status == DNS_OK && route->n_targets && route->targets[0].implicit_mx &&
	    eq->q->cfg->bounce_upon_no_mx && !eq->q->cfg->route_host) {
		/* PowerMTA's bounce-upon-no-mx: no fallback to the domain's A/AAAA */
		memset(&res, 0, sizeof(res));
		res.code = 550;
		snprintf(res.enhanced, sizeof(res.enhanced), "5.1.2");
		snprintf(res.text, sizeof(res.text), "%s: no MX record (bounce-upon-no-mx)", eq->q->domain);
		eq->have_route = false;
		egress_fail_ready(eq, &res, NULL);
		return;
	}
	if (route->status == DNS_OK) {
		eq->n_targets = route->n_targets;
		memcpy(eq->targets, route->targets, route->n_targets * sizeof(route->targets[0]));
		for (size_t i = 0; i < eq->n_targets; i++)
			egress_route_set_port(eq, &eq->targets[i]);
		eq->have_route = true;
		if (!route->stale)
			eq->route_ok_ms = now;
		eq->route_expires = now + (ttl < 1000 ? 1000 : ttl > EGRESS_ROUTE_TTL_MS ? EGRESS_ROUTE_TTL_MS : ttl);
		if (eq->good_target >= eq->n_targets)
			eq->good_target = 0;
		route_check_rollup(eq, route->stale);
		egress_kick(eq->w, eq->q);
		return;
	}
	if (route->status == DNS_TEMPFAIL && eq->have_route && eq->route_ok_ms &&
	    now - eq->route_ok_ms < DNS_STALE_MAX_MS) {
		/* The resolver had nothing to fall back on: keep what worked. */
		eq->route_expires = now + 30000;
		egress_kick(eq->w, eq->q);
		return;
	}
	egress_route_error(route->status, eq->q->domain, route->error, &res);
	eq->have_route = false;
	egress_fail_ready(eq, &res, NULL);
}

/* ---- smtp-hosts: smarthosts instead of the MX lookup ------------------------- */

static void hosts_step(struct egress_queue *eq);

static void hosts_add(struct egress_queue *eq, const struct sockaddr_storage *addr, socklen_t len,
		      const char *host, uint16_t port)
{
	struct dns_target *t;

	if (eq->hosts_n >= DNS_MAX_TARGETS)
		return;
	t = &eq->hosts_tmp[eq->hosts_n++];
	memset(t, 0, sizeof(*t));
	memcpy(&t->addr, addr, len);
	t->addrlen = len;
	snprintf(t->host, sizeof(t->host), "%s", host);
	if (t->addr.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&t->addr)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)&t->addr)->sin_port = htons(port);
}

static void hosts_resolved(void *arg, const struct dns_route *route)
{
	struct egress_queue *eq = arg;
	const struct config_smtp_host *h = &eq->q->cfg->smtp_hosts[eq->hosts_next - 1];

	if (route->status == DNS_OK)
		for (size_t i = 0; i < route->n_targets; i++)
			hosts_add(eq, &route->targets[i].addr, route->targets[i].addrlen, route->targets[i].host,
				  h->port);
	hosts_step(eq);
}

/* Every host in order (a later `;` group after the earlier ones, so the
 * sessions' target fallback follows PowerMTA's groups); names are looked
 * up one after the other. */
static void hosts_step(struct egress_queue *eq)
{
	const struct config_domain *dom = eq->q->cfg;
	struct smtp_result res;

	while (eq->hosts_next < dom->n_smtp_hosts) {
		const struct config_smtp_host *h = &dom->smtp_hosts[eq->hosts_next++];

		if (h->is_ip) {
			hosts_add(eq, &h->addr.sa, h->addr.salen, h->host, h->port);
			continue;
		}
		dns_resolve_route(eq->w->dns, h->host, hosts_resolved, eq);
		return;
	}
	eq->resolving = false;
	if (eq->hosts_n) {
		memcpy(eq->targets, eq->hosts_tmp, eq->hosts_n * sizeof(*eq->targets));
		eq->n_targets = eq->hosts_n;
	}
	free(eq->hosts_tmp);
	eq->hosts_tmp = NULL;
	eq->have_route = eq->hosts_n > 0;
	eq->route_expires = loop_now_ms() + (eq->have_route ? EGRESS_ROUTE_TTL_MS : 30000);
	if (eq->good_target >= eq->n_targets)
		eq->good_target = 0;
	if (!eq->have_route) {
		memset(&res, 0, sizeof(res));
		snprintf(res.text, sizeof(res.text), "%s: no address for any of its smtp-hosts", eq->q->domain);
		egress_fail_ready(eq, &res, NULL);
		return;
	}
	if (!eq->hosts_sync)
		egress_kick(eq->w, eq->q);
}

static bool hosts_route_ready(struct egress_queue *eq)
{
	if (eq->resolving || (eq->have_route && loop_now_ms() < eq->route_expires))
		return eq->have_route;
	if (!egress_targets_alloc(eq) || !(eq->hosts_tmp = calloc(DNS_MAX_TARGETS, sizeof(*eq->hosts_tmp))))
		return false; /* out of memory: tried again at the next kick */
	eq->hosts_n = 0;
	eq->hosts_next = 0;
	eq->resolving = true;
	eq->hosts_sync = true;
	hosts_step(eq);
	eq->hosts_sync = false;
	return eq->have_route && !eq->resolving && !eq->freeing;
}

bool egress_route_ready(struct egress_queue *eq)
{
	const struct config_domain *dom = eq->q->cfg;
	const char *name;

	if (!eq->rollup_checked) {
		/* a rollup queue before any member moved in (`queue-to` names it) */
		const struct config *cfg = eq->w->cfg;

		eq->rollup_checked = true;
		for (size_t i = 0; i < cfg->n_rollups && !eq->is_rollup; i++)
			eq->is_rollup = strcmp(cfg->rollups[i].queue, eq->q->domain) == 0;
	}
	if (dom->n_smtp_hosts)
		return hosts_route_ready(eq);
	if (eq->is_rollup && !dom->has_route && !dom->route_host)
		return egress_rollup_route_ready(eq);
	if (eq->resolving || (eq->have_route && loop_now_ms() < eq->route_expires))
		return eq->have_route;
	if (dom->has_route && !dom->route_host) {
		/* `route [ip]:port`: no DNS at all. */
		if (!egress_targets_alloc(eq))
			return false; /* out of memory: tried again at the next kick */
		eq->n_targets = 1;
		memset(&eq->targets[0], 0, sizeof(eq->targets[0]));
		memcpy(&eq->targets[0].addr, &dom->route.sa, dom->route.salen);
		eq->targets[0].addrlen = dom->route.salen;
		snprintf(eq->targets[0].host, sizeof(eq->targets[0].host), "%s", dom->route.text);
		eq->have_route = true;
		eq->route_expires = UINT64_MAX;
		return true;
	}
	name = dom->route_host ? dom->route_host : eq->q->domain;
	/* An expired route is refreshed in the background; sessions keep using
	 * the old one meanwhile. The answer may come at once (cache). */
	eq->resolving = true;
	dns_resolve_route(eq->w->dns, name, route_resolved, eq);
	return eq->have_route && !eq->freeing;
}

/* ---- moving recipients into a rollup queue ---------------------------------- */

/* Recipients arriving in a rollup queue (home = false) or back in their
 * own domain's queue (home = true). */
static void adopt(struct worker *w, const char *queue, struct sched_rcpt *head, bool home)
{
	struct sched_queue *q = sched_queue_get(&w->sched, queue);
	struct egress_queue *eq = q ? egress_queue_of(w, q) : NULL;
	const char *last = NULL;

	if (eq && !home)
		eq->is_rollup = true;
	if (eq && home && eq->redirect) {
		/* The rollup found this domain's MX no longer matching while we
		 * still send it there: one answer is old, look it up afresh. */
		const struct config_domain *dom = q->cfg;

		free(eq->redirect);
		eq->redirect = NULL;
		eq->have_route = false;
		eq->route_expires = 0;
		eq->returned_ms = loop_now_ms();
		dns_route_invalidate(w->dns, dom->route_host ? dom->route_host : q->domain);
	}
	while (head) {
		struct sched_rcpt *r = head;

		head = (struct sched_rcpt *)r->link.next;
		r->link.next = NULL;
		if (!eq) {
			fprintf(stderr, "salvod: out of memory moving %016llx to %s; it goes out after a restart\n",
				(unsigned long long)r->msg_id, queue);
			free(r);
			continue;
		}
		if (!home && (!last || strcmp(last, r->domain) != 0)) {
			egress_rollup_adopted(eq, r->domain);
			last = r->domain;
		}
		r->queue = NULL;
		sched_ready_push(&w->sched, q, r);
	}
}

static void post_move(struct worker *w, struct worker *dst, const char *queue, struct sched_rcpt *head, bool home)
{
	size_t n = strlen(queue);
	struct rollup_move *mv;

	if (dst == w) {
		adopt(w, queue, head, home);
		return;
	}
	mv = malloc(sizeof(*mv) + n + 1);
	if (!mv) {
		adopt(w, queue, head, home); /* keep them here rather than lose track */
		return;
	}
	memcpy(mv->queue, queue, n + 1);
	mv->head = head;
	mv->home = home;
	mv->link.kind = WORKER_MAIL_MOVE;
	mailbox_post(&dst->mb, &mv->link);
}

void egress_send_home(struct worker *w, struct sched_rcpt *head)
{
	while (head) {
		struct sched_rcpt *r = head, *tail = head;
		const char *queue = sched_queue_name_for(w->cfg, r->domain);

		/* one batch per run of the same domain */
		while (tail->link.next && strcmp(((struct sched_rcpt *)tail->link.next)->domain, r->domain) == 0)
			tail = (struct sched_rcpt *)tail->link.next;
		head = (struct sched_rcpt *)tail->link.next;
		tail->link.next = NULL;
		post_move(w, engine_shard(w->eng, queue), queue, r, true);
	}
}

void egress_move_to_rollup(struct egress_queue *eq)
{
	struct worker *w = eq->w;
	struct sched_rcpt *head = NULL, *tail = NULL, *r;

	while ((r = sched_ready_pop(eq->q))) {
		r->queue = NULL;
		if (tail)
			tail->link.next = &r->link;
		else
			head = r;
		tail = r;
	}
	if (head)
		post_move(w, engine_shard(w->eng, eq->redirect), eq->redirect, head, false);
}

void egress_moved_in(struct worker *w, struct mailbox_item *it)
{
	struct rollup_move *mv = container_of(it, struct rollup_move, link);

	adopt(w, mv->queue, mv->head, mv->home);
	free(mv);
}

void egress_move_discard(struct mailbox_item *it)
{
	struct rollup_move *mv = container_of(it, struct rollup_move, link);

	while (mv->head) {
		struct sched_rcpt *r = mv->head;

		mv->head = (struct sched_rcpt *)r->link.next;
		free(r);
	}
	free(mv);
}
