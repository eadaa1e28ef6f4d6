/*
 * egress.c - a shard's outbound side: for each destination queue, its route
 * (MX targets from DNS or a configured `route`), its connections (at most
 * max-smtp-out), and the transactions they carry.
 *
 * Flow: egress_kick(q) -> route known? else resolve ->
 * more ready work than connecting sessions and room
 * under max-smtp-out? open one -> on txn_done: outcomes to the writer,
 * deferred recipients back into the heap -> next transaction, or QUIT.
 *
 * Connections start at the queue's last good MX and fall over to the next
 * target (by preference) when a host does not answer or refuses the session;
 * when every target failed and no connection is alive, the ready recipients
 * are deferred with the last error.
 *
 * Ownership: struct egress_queue hangs off sched_queue.egress; struct
 * egress_conn is owned by its queue's conn list and freed in conn_closed();
 * a transaction's recipients are owned by the transaction until txn_done.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "engine/engine.h"
#include "engine/outcome.h"
#include "net/dns.h"
#include "net/dot_stuff.h"
#include "net/smtp_client.h"

#define ROUTE_TTL_MS 60000
#define TXN_WINDOW 1000

struct egress_conn;

struct egress_queue {
	struct sched_queue *q;
	struct worker *w;
	bool have_route;           /* targets[] is usable */
	bool resolving;            /* a lookup is in flight */
	uint64_t route_expires;
	struct dns_target targets[DNS_MAX_TARGETS];
	size_t n_targets;
	size_t good_target;
	unsigned n_conns, n_connecting;
	struct egress_conn *conns;
	bool freeing;
};

struct egress_txn {
	struct smtp_txn t;
	uint64_t msg_id;
	char *sender;
	size_t size;
	int64_t queued_ms;
	struct sched_rcpt **rcpts;
	char **addrs;
	struct smtp_result *results;
	char *wire;
};

struct egress_conn {
	struct egress_conn *prev, *next;
	struct egress_queue *eq;
	struct smtp_client *cli;
	size_t target;
	unsigned msgs;
	bool ready, idle;
	struct egress_txn *txn;
};

static void conn_open(struct egress_queue *eq, struct egress_conn *c);

/* ---- queue state ------------------------------------------------------------ */

static struct egress_queue *eq_get(struct worker *w, struct sched_queue *q)
{
	struct egress_queue *eq = q->egress;

	if (eq)
		return eq;
	eq = calloc(1, sizeof(*eq));
	if (!eq)
		return NULL;
	eq->q = q;
	eq->w = w;
	q->egress = eq;
	return eq;
}

static void txn_free(struct egress_txn *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->t.n_rcpts; i++) {
		free(x->addrs ? x->addrs[i] : NULL);
		free(x->rcpts ? x->rcpts[i] : NULL);
	}
	free(x->addrs);
	free(x->rcpts);
	free(x->results);
	free(x->wire);
	free(x->sender);
	free(x);
}

void egress_queue_free(struct sched_queue *q)
{
	struct egress_queue *eq = q->egress;

	if (!eq)
		return;
	while (eq->conns) {
		struct egress_conn *c = eq->conns;

		eq->conns = c->next;
		if (c->cli)
			smtp_client_free(c->cli);
		txn_free(c->txn);
		free(c);
	}
	free(eq);
	q->egress = NULL;
}

/* ---- outcomes ------------------------------------------------------------- */

static void rcpt_outcome(struct worker *w, struct outcome_batch *b, struct sched_rcpt *r,
			 const char *addr, const struct smtp_result *res, int64_t now)
{
	const struct config_domain *dom = r->queue->cfg;
	int64_t next = 0;
	enum outcome_kind k;

	r->attempts++;
	k = outcome_decide(res, r->attempts, r->queued_ms, now, dom, &next);
	outcome_batch_add(b, r->idx, addr, k, r->attempts, r->queued_ms, next, res);
	if (k == OUTCOME_DEFERRED) {
		r->due_ms = next;
		if (sched_add(&w->sched, r, now) == 0)
			return;
		/* No memory for the heap: the spool still has it; a restart retries. */
		fprintf(stderr, "salvod: out of memory re-queueing a deferred recipient\n");
	}
	free(r);
}

/* Fail every ready recipient of eq without a connection (routing failure or
 * every MX down): outcomes grouped per message. */
static void fail_ready(struct egress_queue *eq, const struct smtp_result *res, const char *mx_host)
{
	struct worker *w = eq->w;
	struct spool_rtxn *rt = NULL;
	int64_t now = wall_now_ms();
	struct sched_rcpt *r;

	if (spool_rtxn_begin(w->eng->spool, &rt) != 0)
		rt = NULL;
	while ((r = sched_ready_pop(eq->q))) {
		struct spool_msg m;
		struct spool_rcpt sr;
		struct outcome_batch *b;

		if (!rt || spool_get_msg(rt, r->msg_id, &m) != 0 ||
		    spool_get_rcpt(rt, r->msg_id, r->idx, &sr) != 0) {
			fprintf(stderr, "salvod: recipient %016llx/%u vanished from the spool\n",
				(unsigned long long)r->msg_id, r->idx);
			free(r);
			continue;
		}
		b = outcome_batch_new(w->eng, r->msg_id, m.sender, r->queued_ms, m.body_len,
				      eq->q->domain, mx_host, NULL, 1);
		if (!b) {
			free(r);
			continue;
		}
		rcpt_outcome(w, b, r, sr.addr, res, now);
		outcome_batch_submit(b);
	}
	if (rt)
		spool_rtxn_end(rt);
}

/* ---- transactions ----------------------------------------------------------- */

/* Build the next transaction from the ready list: the first ready recipient
 * and up to max-rcpt-per-message more of the same message. NULL when there
 * is nothing ready (or everything ready had vanished from the spool). */
static struct egress_txn *txn_build(struct egress_queue *eq)
{
	struct worker *w = eq->w;
	struct sched_queue *q = eq->q;
	unsigned max = q->cfg->max_rcpt_per_message ? q->cfg->max_rcpt_per_message : 100;
	struct spool_rtxn *rt;
	struct spool_msg m;
	struct egress_txn *x;
	struct sched_rcpt *r;

	while ((r = sched_ready_pop(q))) {
		if (spool_rtxn_begin(w->eng->spool, &rt) != 0) {
			sched_ready_push(&w->sched, q, r);
			return NULL;
		}
		if (spool_get_msg(rt, r->msg_id, &m) != 0) {
			spool_rtxn_end(rt);
			fprintf(stderr, "salvod: message %016llx vanished from the spool\n",
				(unsigned long long)r->msg_id);
			free(r);
			continue;
		}
		x = calloc(1, sizeof(*x));
		if (x) {
			x->rcpts = calloc(max, sizeof(*x->rcpts));
			x->addrs = calloc(max, sizeof(*x->addrs));
			x->results = calloc(max, sizeof(*x->results));
			x->sender = strdup(m.sender);
			x->wire = malloc(dot_stuff_bound(m.body_len));
		}
		if (!x || !x->rcpts || !x->addrs || !x->results || !x->sender || !x->wire) {
			spool_rtxn_end(rt);
			txn_free(x);
			sched_ready_push(&w->sched, q, r);
			return NULL;
		}
		x->msg_id = r->msg_id;
		x->size = m.body_len;
		x->queued_ms = r->queued_ms;
		x->t.wire_len = dot_stuff(m.body, m.body_len, x->wire);
		x->t.wire = x->wire;
		x->t.sender = x->sender;
		/* 8-bit content is declared when present; cheap next to the copy above. */
		for (size_t i = 0; i < m.body_len && !x->t.eightbit; i++)
			x->t.eightbit = (unsigned char)m.body[i] >= 0x80;
		do {
			struct spool_rcpt sr;

			if (spool_get_rcpt(rt, r->msg_id, r->idx, &sr) != 0 || !(x->addrs[x->t.n_rcpts] = strdup(sr.addr))) {
				free(r);
				continue;
			}
			x->rcpts[x->t.n_rcpts++] = r;
		} while (x->t.n_rcpts < max && (r = sched_ready_take_msg(q, x->msg_id, TXN_WINDOW)));
		spool_rtxn_end(rt);
		if (!x->t.n_rcpts) {
			txn_free(x);
			continue;
		}
		x->t.rcpts = (const char *const *)x->addrs;
		x->t.results = x->results;
		q->n_inflight += x->t.n_rcpts;
		return x;
	}
	return NULL;
}

static void conn_give_txn(struct egress_conn *c)
{
	struct egress_txn *x = txn_build(c->eq);

	if (!x) {
		c->idle = true;
		return;
	}
	c->idle = false;
	c->txn = x;
	smtp_client_send(c->cli, &x->t);
}

/* ---- connection hooks -------------------------------------------------------- */

static void conn_ready(void *owner, struct smtp_client *cli)
{
	struct egress_conn *c = owner;
	struct egress_queue *eq = c->eq;

	c->ready = true;
	eq->n_connecting--;
	eq->good_target = c->target;
	conn_give_txn(c);
	if (c->idle) {
		/* Nothing left for it: other sessions drained the queue. */
		smtp_client_quit(cli);
	}
}

static void conn_txn_done(void *owner, struct smtp_client *cli, struct smtp_txn *t)
{
	struct egress_conn *c = owner;
	struct egress_queue *eq = c->eq;
	struct egress_txn *x = c->txn;
	struct worker *w = eq->w;
	const struct dns_target *tg = &eq->targets[c->target < eq->n_targets ? c->target : 0];
	int64_t now = wall_now_ms();
	struct outcome_batch *b;

	c->txn = NULL;
	c->msgs++;
	eq->q->n_inflight -= x->t.n_rcpts;
	b = outcome_batch_new(w->eng, x->msg_id, x->sender, x->queued_ms, x->size, eq->q->domain,
			      tg->host, smtp_client_peer_ip(cli), x->t.n_rcpts);
	for (size_t i = 0; i < x->t.n_rcpts; i++) {
		if (b) {
			rcpt_outcome(w, b, x->rcpts[i], x->addrs[i], &x->results[i], now);
			x->rcpts[i] = NULL;
		}
	}
	if (b)
		outcome_batch_submit(b);
	txn_free(x);
	/* The session goes on while it is healthy and under its message cap;
	 * a dying one (called from its teardown) is left to conn_closed(). */
	if (eq->freeing || !smtp_client_idle(cli))
		return;
	if (c->msgs < eq->q->cfg->max_msg_per_connection) {
		conn_give_txn(c);
		if (!c->idle)
			return;
	}
	smtp_client_quit(cli);
}

static void conn_unlink(struct egress_queue *eq, struct egress_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		eq->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	eq->n_conns--;
	free(c);
}

static void conn_closed(void *owner, struct smtp_client *cli, bool reached_ready, const struct smtp_result *why)
{
	struct egress_conn *c = owner;
	struct egress_queue *eq = c->eq;

	c->cli = NULL;
	if (eq->freeing)
		return;
	if (!reached_ready) {
		eq->n_connecting--;
		/* This host did not take a session: fall over to the next target. */
		if (c->target + 1 < eq->n_targets && eq->q->n_ready) {
			c->target++;
			eq->n_connecting++;
			conn_open(eq, c);
			return;
		}
		if (eq->n_conns == 1 && eq->q->n_ready) {
			struct smtp_result res = *why;
			char text[sizeof(res.text)];

			snprintf(text, sizeof(text), "all MX hosts failed, last: %.200s", why->text);
			memcpy(res.text, text, sizeof(res.text));
			size_t last = c->target < eq->n_targets ? c->target : eq->n_targets - 1;

			eq->good_target = 0;
			eq->route_expires = 0; /* look the route up afresh next time */
			fail_ready(eq, &res, eq->n_targets ? eq->targets[last].host : NULL);
		}
		/* A session that never started leaves the queue to the others;
		 * kicking here could spin on a host that refuses every socket. */
		conn_unlink(eq, c);
		return;
	}
	conn_unlink(eq, c);
	egress_kick(eq->w, eq->q);
}

static const struct smtp_client_hooks conn_hooks = {
	.ready = conn_ready,
	.txn_done = conn_txn_done,
	.closed = conn_closed,
};

static void conn_open(struct egress_queue *eq, struct egress_conn *c)
{
	struct worker *w = eq->w;
	const struct config *cfg = w->eng->cfg;

	for (; c->target < eq->n_targets; c->target++) {
		struct dns_target *t = &eq->targets[c->target];
		int ret = smtp_client_connect(&c->cli, &w->loop, (const struct sockaddr *)&t->addr, t->addrlen,
					      NULL, 0, cfg->host_name, &w->client_tmo, &conn_hooks, c);
		if (ret == 0)
			return;
		fprintf(stderr, "salvod: cannot make a socket for %s: %s\n", t->host, strerror(-ret));
	}
	/* No target could even get a socket: treat as a failed session. */
	struct smtp_result why = {.code = 0};
	snprintf(why.text, sizeof(why.text), "no usable address for %s", eq->q->domain);
	c->target = eq->n_targets;
	conn_closed(c, NULL, false, &why);
}

static void conn_new(struct egress_queue *eq)
{
	struct egress_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return;
	c->eq = eq;
	c->target = eq->good_target < eq->n_targets ? eq->good_target : 0;
	c->next = eq->conns;
	if (eq->conns)
		eq->conns->prev = c;
	eq->conns = c;
	eq->n_conns++;
	eq->n_connecting++;
	conn_open(eq, c);
}

/* ---- routing ----------------------------------------------------------------- */

static void route_set_port(struct dns_target *t, uint16_t port)
{
	if (t->addr.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&t->addr)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)&t->addr)->sin_port = htons(port);
}

static void route_resolved(void *arg, const struct dns_route *route)
{
	struct egress_queue *eq = arg;
	const struct config_domain *dom = eq->q->cfg;
	uint16_t port = dom->has_route || dom->route_host ? dom->route_port : eq->w->eng->cfg->smtp_port;
	struct smtp_result res = {.code = 0};

	eq->resolving = false;
	switch (route->status) {
	case DNS_OK:
		eq->n_targets = route->n_targets;
		memcpy(eq->targets, route->targets, route->n_targets * sizeof(route->targets[0]));
		for (size_t i = 0; i < eq->n_targets; i++)
			route_set_port(&eq->targets[i], port ? port : 25);
		eq->have_route = true;
		eq->route_expires = loop_now_ms() + ROUTE_TTL_MS;
		if (eq->good_target >= eq->n_targets)
			eq->good_target = 0;
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
	fail_ready(eq, &res, NULL);
}

static void route_resolve(struct egress_queue *eq)
{
	const struct config_domain *dom = eq->q->cfg;

	if (dom->has_route && !dom->route_host) {
		/* `route [ip]:port`: no DNS at all. */
		eq->n_targets = 1;
		memset(&eq->targets[0], 0, sizeof(eq->targets[0]));
		memcpy(&eq->targets[0].addr, &dom->route.sa, dom->route.salen);
		eq->targets[0].addrlen = dom->route.salen;
		snprintf(eq->targets[0].host, sizeof(eq->targets[0].host), "%s", dom->route.text);
		eq->have_route = true;
		eq->route_expires = UINT64_MAX;
		return;
	}
	eq->resolving = true;
	dns_resolve_route(eq->w->dns, dom->route_host ? dom->route_host : eq->q->domain, route_resolved, eq);
}

/* ---- kick ------------------------------------------------------------------------ */

void egress_kick(struct worker *w, struct sched_queue *q)
{
	struct egress_queue *eq = eq_get(w, q);
	unsigned max_out;

	if (!eq || eq->freeing)
		return;
	if (!q->n_ready)
		return;
	/* An expired route is refreshed in the background; sessions keep
	 * using the old one meanwhile. The lookup may answer at once (cache). */
	if (!eq->resolving && (!eq->have_route || loop_now_ms() >= eq->route_expires))
		route_resolve(eq);
	if (!eq->have_route || !q->n_ready)
		return;
	max_out = q->cfg->max_smtp_out ? q->cfg->max_smtp_out : 20;
	/* A connecting session will take at least one message: open more only
	 * for ready work beyond those. */
	while (q->n_ready > eq->n_connecting && eq->n_conns < max_out)
		conn_new(eq);
}
