/*
 * egress_route.c - where a queue's connections go: the MX targets of its
 * domain (DNS, cached per ROUTE_TTL and by the resolver per record TTL) or
 * its configured `route`; and mx-rollups.
 *
 * Rollups: when a domain's MX hosts match an `mx PATTERN QUEUE` line, the
 * domain's queue becomes a member: its ready recipients move to the queue
 * named QUEUE (on whatever shard owns that name), which delivers them
 * through the MX hosts of a member domain and under its own limits. A
 * recipient deferred there stays in the rollup queue for its retries.
 * Moving across shards is one mailbox post per batch, carrying the chain of
 * recipients (they own nothing but themselves).
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
	char queue[];
};

/* The targets array, made on first use; false on ENOMEM. */
static bool egress_targets_alloc(struct egress_queue *eq)
{
	if (!eq->targets)
		eq->targets = calloc(DNS_MAX_TARGETS, sizeof(*eq->targets));
	return eq->targets != NULL;
}

static void route_set_port(struct dns_target *t, uint16_t port)
{
	if (t->addr.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&t->addr)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)&t->addr)->sin_port = htons(port);
}

/* A member of a rollup when any MX host matches a rollup pattern. */
static void route_check_rollup(struct egress_queue *eq)
{
	const struct config *cfg = eq->w->eng->cfg;
	const char *rollup = NULL;

	if (eq->is_rollup || eq->q->cfg->has_route)
		return;
	for (size_t i = 0; i < eq->n_targets && !rollup; i++)
		rollup = config_rollup_for(cfg, eq->targets[i].host);
	if (rollup && strcmp(rollup, eq->q->domain) == 0)
		rollup = NULL;
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

static void route_resolved(void *arg, const struct dns_route *route)
{
	struct egress_queue *eq = arg;
	const struct config_domain *dom = eq->q->cfg;
	uint16_t port = dom->has_route || dom->route_host ? dom->route_port : eq->w->eng->cfg->smtp_port;
	struct smtp_result res = {.code = 0};

	eq->resolving = false;
	if (route->status == DNS_OK && !egress_targets_alloc(eq)) {
		res.code = 0;
		snprintf(res.text, sizeof(res.text), "%s: out of memory for its MX hosts", eq->q->domain);
		eq->have_route = false;
		egress_fail_ready(eq, &res, NULL);
		return;
	}
	switch (route->status) {
	case DNS_OK:
		eq->n_targets = route->n_targets;
		memcpy(eq->targets, route->targets, route->n_targets * sizeof(route->targets[0]));
		for (size_t i = 0; i < eq->n_targets; i++)
			route_set_port(&eq->targets[i], port ? port : 25);
		eq->have_route = true;
		eq->route_expires = loop_now_ms() + EGRESS_ROUTE_TTL_MS;
		if (eq->good_target >= eq->n_targets)
			eq->good_target = 0;
		route_check_rollup(eq);
		egress_kick(eq->w, eq->q);
		return;
	case DNS_NXDOMAIN:
		res.code = 550;
		snprintf(res.enhanced, sizeof(res.enhanced), "5.1.2");
		break;
	case DNS_NULL_MX:
		res.code = 556;
		snprintf(res.enhanced, sizeof(res.enhanced), "5.1.10");
		break;
	case DNS_NO_ADDRESS:
		res.code = 550;
		snprintf(res.enhanced, sizeof(res.enhanced), "5.4.4");
		break;
	case DNS_TEMPFAIL:
	default:
		res.code = 0;
		break;
	}
	snprintf(res.text, sizeof(res.text), "%s: %s", eq->q->domain,
		 route->error ? route->error : dns_status_str(route->status));
	eq->have_route = false;
	egress_fail_ready(eq, &res, NULL);
}

/* The domain whose MX a queue uses: its own name, or for a rollup queue the
 * domain of a member's recipient. */
static const char *route_domain(struct egress_queue *eq)
{
	struct sched_queue *q = eq->q;

	if (!eq->is_rollup)
		return q->domain;
	for (size_t i = 0; i < q->n_fifos; i++)
		if (q->fifos[i].head) {
			const char *d = q->fifos[i].head->domain;

			if (!eq->route_domain || strcmp(eq->route_domain, d) != 0) {
				free(eq->route_domain);
				eq->route_domain = strdup(d);
			}
			break;
		}
	return eq->route_domain;
}

bool egress_route_ready(struct egress_queue *eq)
{
	const struct config_domain *dom = eq->q->cfg;
	const char *name;

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
	name = dom->route_host ? dom->route_host : route_domain(eq);
	if (!name)
		return eq->have_route;
	/* An expired route is refreshed in the background; sessions keep using
	 * the old one meanwhile. The answer may come at once (cache). */
	eq->resolving = true;
	dns_resolve_route(eq->w->dns, name, route_resolved, eq);
	return eq->have_route && !eq->freeing;
}

/* ---- moving recipients into a rollup queue ---------------------------------- */

static void adopt(struct worker *w, const char *queue, struct sched_rcpt *head)
{
	struct sched_queue *q = sched_queue_get(&w->sched, queue);
	struct egress_queue *eq = q ? egress_queue_of(w, q) : NULL;

	if (eq)
		eq->is_rollup = true;
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
		sched_ready_push(&w->sched, q, r);
	}
}

void egress_move_to_rollup(struct egress_queue *eq)
{
	struct worker *w = eq->w, *dst = engine_shard(w->eng, eq->redirect);
	struct sched_rcpt *head = NULL, *tail = NULL, *r;
	struct rollup_move *mv;
	size_t n = strlen(eq->redirect);

	while ((r = sched_ready_pop(eq->q))) {
		r->queue = NULL;
		if (tail)
			tail->link.next = &r->link;
		else
			head = r;
		tail = r;
	}
	if (!head)
		return;
	if (dst == w) {
		adopt(w, eq->redirect, head);
		return;
	}
	mv = malloc(sizeof(*mv) + n + 1);
	if (!mv) {
		adopt(w, eq->redirect, head); /* keep them here rather than lose track */
		return;
	}
	memcpy(mv->queue, eq->redirect, n + 1);
	mv->head = head;
	mv->link.kind = WORKER_MAIL_MOVE;
	mailbox_post(&dst->mb, &mv->link);
}

void egress_moved_in(struct worker *w, struct mailbox_item *it)
{
	struct rollup_move *mv = container_of(it, struct rollup_move, link);

	adopt(w, mv->queue, mv->head);
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
