/*
 * egress_rollup.c - an mx-rollup queue's member domains: each member's MX is
 * resolved and cached on its own (for its DNS TTL), and the rollup's targets
 * are the union of its members' MX hosts that match the rollup's patterns.
 *
 * A recipient in a rollup queue carries its domain (sched_rcpt.domain). Right
 * before it goes on the wire (egress_rollup_admit(), from txn_build) its
 * member decides:
 *   MATCH  the domain's MX hosts match this rollup: deliver it here;
 *   AWAY   they do not (any more): it goes back to its own domain's queue
 *          (egress_send_home()), which routes it by its own MX (deferred
 *          instead when its queue-to names this rollup);
 *   FAIL   the domain's lookup failed: NXDOMAIN, null MX or no address
 *          bounce it, a temporary failure defers it - that domain only;
 *   and while the member's answer is unknown or past its TTL, the recipient
 *   waits parked on the member until the (re)lookup answers (a member in
 *   use keeps delivering for up to EGRESS_MEMBER_GRACE_MS past its TTL
 *   while its refresh is in flight).
 * When a member stops matching, its recipients in the ready lists are swept
 * out at once. DNS answers of a refresh that fails temporarily are served
 * stale by net/dns.c (bounded), so a member keeps its route through a DNS
 * hiccup.
 *
 * Ownership: members hang off the rollup's egress_queue (a hash by domain)
 * and are freed with it or when unused for an hour; a parked recipient is
 * owned by its member and counted in the queue's n_inflight. A member's
 * lookup holds a pointer to it: members are freed only when no lookup is in
 * flight, or at shutdown after which dns_free() calls no callback.
 *
 * Diagnostics: one line when a member leaves ("rollup Q: D leaves it (why)").
 * Known limit: the rollup and a member's own queue may sit on different
 * shards, each with its own DNS cache; when they disagree, recipients move
 * once and both ask DNS afresh (dns_route_invalidate()), so they settle on
 * the next answer - a resolver that keeps flipping its answer would keep
 * them moving, at the pace of its answers.
 */
#include "engine/egress.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

#define MEMBER_TTL_MIN_MS 1000
#define MEMBER_TEMPFAIL_MS 5000
#define MEMBER_IDLE_MS 3600000

struct egress_member {
	struct egress_member *next;    /* hash chain */
	struct egress_queue *eq;
	enum egress_member_state state;
	enum dns_status status;        /* FAIL: why */
	char error[80];
	bool resolving;
	int64_t expires, resolved_at, last_used; /* loop clock */
	struct dns_target *targets;    /* MATCH: the matching hosts, port set */
	size_t n_targets;
	struct sched_rcpt *parked, *parked_tail;
	char domain[];
};

/* ---- pure helpers ---------------------------------------------------------------- */

const char *egress_rollup_for(const struct config *cfg, const struct dns_target *t, size_t n, const char *self)
{
	const char *rollup = NULL;

	for (size_t i = 0; i < n && !rollup; i++)
		rollup = config_rollup_for(cfg, t[i].host);
	if (rollup && self && strcmp(rollup, self) == 0)
		rollup = NULL;
	return rollup;
}

static bool target_same(const struct dns_target *a, const struct dns_target *b)
{
	return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0 &&
	       strcmp(a->host, b->host) == 0;
}

size_t egress_rollup_merge(struct dns_target *out, size_t n, size_t cap, const struct dns_target *in, size_t n_in)
{
	for (size_t i = 0; i < n_in; i++) {
		size_t j, at;

		for (j = 0; j < n && !target_same(&out[j], &in[i]); j++)
			;
		if (j < n)
			continue; /* already there */
		for (at = n; at > 0 && out[at - 1].pref > in[i].pref; at--)
			;
		if (at >= cap)
			continue; /* full of better preferences */
		if (n == cap)
			n--; /* the last (worst) one makes room */
		memmove(&out[at + 1], &out[at], (n - at) * sizeof(*out));
		out[at] = in[i];
		n++;
	}
	return n;
}

enum egress_member_state egress_rollup_classify(const struct config *cfg, const char *rollup,
					       const struct dns_route *route, struct dns_target *out, size_t *n_out)
{
	size_t n = 0;

	*n_out = 0;
	if (route->status != DNS_OK)
		return EGRESS_MEMBER_FAIL;
	for (size_t i = 0; i < route->n_targets; i++) {
		const char *rq = config_rollup_for(cfg, route->targets[i].host);

		if (rq && strcmp(rq, rollup) == 0)
			out[n++] = route->targets[i];
	}
	*n_out = n;
	return n ? EGRESS_MEMBER_MATCH : EGRESS_MEMBER_AWAY;
}

enum egress_admit egress_rollup_verdict(enum egress_member_state st, bool resolving, int64_t expires, int64_t now)
{
	/* A member in use is refreshed around its expiry (members_check()):
	 * it keeps its place for a moment while the answer comes, rather than
	 * parking its whole backlog on every TTL. An answer older than that
	 * (an idle member's) is never trusted. */
	if (st == EGRESS_MEMBER_MATCH && resolving && now < expires + EGRESS_MEMBER_GRACE_MS)
		return EGRESS_ADMIT_SEND;
	if (resolving || st == EGRESS_MEMBER_UNKNOWN || now >= expires)
		return EGRESS_ADMIT_PARK;
	switch (st) {
	case EGRESS_MEMBER_MATCH:
		return EGRESS_ADMIT_SEND;
	case EGRESS_MEMBER_AWAY:
		return EGRESS_ADMIT_HOME;
	default:
		return EGRESS_ADMIT_FAIL;
	}
}

/* ---- the member table ---------------------------------------------------------- */

static size_t member_hash(const char *s, size_t n_buckets)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 0x100000001b3ULL;
	}
	return (size_t)(h ^ (h >> 32)) & (n_buckets - 1);
}

static struct egress_member *member_find(struct egress_queue *eq, const char *domain)
{
	if (!eq->n_buckets)
		return NULL;
	for (struct egress_member *m = eq->members[member_hash(domain, eq->n_buckets)]; m; m = m->next)
		if (strcmp(m->domain, domain) == 0)
			return m;
	return NULL;
}

static void members_grow(struct egress_queue *eq)
{
	size_t nb = eq->n_buckets ? eq->n_buckets * 2 : 16;
	struct egress_member **b = calloc(nb, sizeof(*b));

	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < eq->n_buckets; i++)
		while (eq->members[i]) {
			struct egress_member *m = eq->members[i];
			size_t h = member_hash(m->domain, nb);

			eq->members[i] = m->next;
			m->next = b[h];
			b[h] = m;
		}
	free(eq->members);
	eq->members = b;
	eq->n_buckets = nb;
}

static struct egress_member *member_get(struct egress_queue *eq, const char *domain)
{
	struct egress_member *m = member_find(eq, domain);
	size_t n = strlen(domain), h;

	if (m)
		return m;
	if (eq->n_members >= eq->n_buckets * 2)
		members_grow(eq);
	if (!eq->n_buckets || !(m = calloc(1, sizeof(*m) + n + 1)))
		return NULL;
	memcpy(m->domain, domain, n + 1);
	m->eq = eq;
	h = member_hash(domain, eq->n_buckets);
	m->next = eq->members[h];
	eq->members[h] = m;
	eq->n_members++;
	return m;
}

/* ---- what happens to one recipient ------------------------------------------------- */

static void park(struct egress_member *m, struct sched_rcpt *r)
{
	r->link.next = NULL;
	if (m->parked_tail)
		m->parked_tail->link.next = &r->link;
	else
		m->parked = r;
	m->parked_tail = r;
	m->eq->q->n_inflight++;
}

/* Recipients (a chain) of a member whose MX went elsewhere: to their own
 * queue - unless `queue-to` names this rollup as their own queue, where
 * sending them "home" would bring them straight back: deferred then. */
static void send_away(struct egress_member *m, struct sched_rcpt *head)
{
	struct egress_queue *eq = m->eq;
	struct smtp_result res = {.code = 0};

	if (strcmp(sched_queue_name_for(eq->w->cfg, m->domain), eq->q->domain) != 0) {
		egress_send_home(eq->w, head);
		return;
	}
	snprintf(res.text, sizeof(res.text), "%s: its MX hosts do not match rollup %s, which its queue-to names",
		 m->domain, eq->q->domain);
	while (head) {
		struct sched_rcpt *r = head;

		head = (struct sched_rcpt *)r->link.next;
		r->link.next = NULL;
		egress_fail_rcpt(eq, r, &res);
	}
}

/* A recipient this rollup does not deliver: home, or its failure. */
static void dispose(struct egress_member *m, struct sched_rcpt *r)
{
	struct smtp_result res;

	if (m->state == EGRESS_MEMBER_FAIL) {
		egress_route_error(m->status, m->domain, m->error, &res);
		egress_fail_rcpt(m->eq, r, &res);
	} else {
		send_away(m, r);
	}
}

/* Pull every ready recipient of m's domain out of the rollup's FIFOs. */
static struct sched_rcpt *sweep(struct egress_member *m)
{
	struct sched_queue *q = m->eq->q;
	struct sched_rcpt *head = NULL, **tail = &head;

	for (size_t i = 0; i < q->n_fifos; i++) {
		struct sched_fifo *f = &q->fifos[i];
		struct sched_rcpt *prev = NULL, *r = f->head;

		while (r) {
			struct sched_rcpt *next = (struct sched_rcpt *)r->link.next;

			if (strcmp(r->domain, m->domain) != 0) {
				prev = r;
				r = next;
				continue;
			}
			if (prev)
				prev->link.next = next ? &next->link : NULL;
			else
				f->head = next;
			if (f->tail == r)
				f->tail = prev;
			f->n--;
			q->n_ready--;
			r->link.next = NULL;
			*tail = r;
			tail = (struct sched_rcpt **)&r->link.next;
			r = next;
		}
	}
	return head;
}

static void member_resolve(struct egress_member *m);

static void member_resolved(void *arg, const struct dns_route *route)
{
	struct egress_member *m = arg;
	struct egress_queue *eq = m->eq;
	struct worker *w = eq->w;
	const struct config *cfg = w->cfg;
	int64_t now = (int64_t)loop_now_ms();
	enum egress_member_state was = m->state;
	struct dns_target *t = NULL;
	size_t n = 0;
	uint64_t ttl = route->ttl_ms;
	struct sched_rcpt *r;

	m->resolving = false;
	m->resolved_at = now;
	if (route->status == DNS_OK && !(t = malloc(route->n_targets * sizeof(*t)))) {
		m->state = EGRESS_MEMBER_FAIL; /* no memory: defer, like a DNS hiccup */
		m->status = DNS_TEMPFAIL;
		snprintf(m->error, sizeof(m->error), "out of memory");
		ttl = MEMBER_TEMPFAIL_MS;
	} else {
		m->state = egress_rollup_classify(cfg, eq->q->domain, route, t, &n);
		m->status = route->status;
		snprintf(m->error, sizeof(m->error), "%s", route->error ? route->error : dns_status_str(route->status));
		if (route->status == DNS_TEMPFAIL)
			ttl = MEMBER_TEMPFAIL_MS;
	}
	if (ttl < MEMBER_TTL_MIN_MS)
		ttl = MEMBER_TTL_MIN_MS;
	if (ttl > EGRESS_ROUTE_TTL_MS)
		ttl = EGRESS_ROUTE_TTL_MS;
	m->expires = now + (int64_t)ttl;
	for (size_t i = 0; i < n; i++)
		egress_route_set_port(eq, &t[i]);
	if (n != m->n_targets || (n && memcmp(t, m->targets, n * sizeof(*t)) != 0))
		eq->members_dirty = true;
	free(m->targets);
	m->targets = n ? t : NULL;
	m->n_targets = n;
	if (!n)
		free(t);
	if (was == EGRESS_MEMBER_MATCH && m->state != EGRESS_MEMBER_MATCH) {
		fprintf(stderr, "salvod: rollup %s: %s leaves it (%s)\n", eq->q->domain, m->domain,
			m->state == EGRESS_MEMBER_AWAY ? "its MX hosts no longer match" : m->error);
		if (m->state == EGRESS_MEMBER_AWAY)
			send_away(m, sweep(m)); /* one batch */
		else
			for (struct sched_rcpt *s = sweep(m), *next; s; s = next) {
				next = (struct sched_rcpt *)s->link.next;
				s->link.next = NULL;
				dispose(m, s);
			}
	}
	/* the recipients that waited for this answer */
	while ((r = m->parked)) {
		m->parked = (struct sched_rcpt *)r->link.next;
		if (!m->parked)
			m->parked_tail = NULL;
		r->link.next = NULL;
		eq->q->n_inflight--;
		if (m->state == EGRESS_MEMBER_MATCH)
			sched_ready_push(&w->sched, eq->q, r);
		else
			dispose(m, r);
	}
	if (m->expires < eq->members_check_ms || !eq->members_check_ms)
		eq->members_check_ms = m->expires;
	sched_kick(&w->sched, eq->q);
}

static void member_resolve(struct egress_member *m)
{
	m->resolving = true;
	dns_resolve_route(m->eq->w->dns, m->domain, member_resolved, m); /* may answer at once */
}

bool egress_rollup_admit(struct egress_queue *eq, struct sched_rcpt *r)
{
	struct egress_member *m = member_get(eq, r->domain);
	int64_t now = (int64_t)loop_now_ms();

	if (!m) {
		egress_send_home(eq->w, r); /* no memory: its own queue delivers it */
		return false;
	}
	m->last_used = now;
	if (!m->resolving && (m->state == EGRESS_MEMBER_UNKNOWN || now >= m->expires))
		member_resolve(m); /* may answer at once */
	switch (egress_rollup_verdict(m->state, m->resolving, m->expires, now)) {
	case EGRESS_ADMIT_SEND:
		return true;
	case EGRESS_ADMIT_PARK:
		park(m, r);
		return false;
	default:
		dispose(m, r);
		return false;
	}
}

void egress_rollup_adopted(struct egress_queue *eq, const char *domain)
{
	struct egress_member *m = member_find(eq, domain);

	/* The member's own queue sent it here: if we think it is not a member,
	 * one of the two answers is old - ask DNS afresh before deciding. */
	if (m && !m->resolving && m->state != EGRESS_MEMBER_MATCH && m->state != EGRESS_MEMBER_UNKNOWN &&
	    m->expires > (int64_t)loop_now_ms()) {
		m->expires = 0;
		dns_route_invalidate(eq->w->dns, domain);
	}
}

/* ---- the rollup's route ----------------------------------------------------------- */

static void members_check(struct egress_queue *eq, int64_t now)
{
	int64_t next = 0;

	for (size_t b = 0; b < eq->n_buckets; b++) {
		struct egress_member **pp = &eq->members[b];

		while (*pp) {
			struct egress_member *m = *pp;

			if (!m->resolving && !m->parked && now - m->last_used > MEMBER_IDLE_MS) {
				*pp = m->next;
				if (m->n_targets)
					eq->members_dirty = true;
				free(m->targets);
				free(m);
				eq->n_members--;
				continue;
			}
			/* refresh ahead of use: members used since their last answer */
			if (!m->resolving && now >= m->expires && m->last_used >= m->resolved_at)
				member_resolve(m);
			if (!m->resolving && m->expires > now && (!next || m->expires < next))
				next = m->expires;
			pp = &m->next;
		}
	}
	/* at most once a second: between passes, admission refreshes on demand */
	eq->members_check_ms = next > now + 1000 ? next : now + 1000;
	if (!next)
		eq->members_check_ms = now + MEMBER_IDLE_MS;
}

static void members_rebuild(struct egress_queue *eq)
{
	size_t n = 0;

	eq->members_dirty = false;
	if (!egress_targets_alloc(eq)) {
		eq->n_targets = 0;
		eq->have_route = false;
		return;
	}
	for (size_t b = 0; b < eq->n_buckets; b++)
		for (struct egress_member *m = eq->members[b]; m; m = m->next)
			if (m->state == EGRESS_MEMBER_MATCH)
				n = egress_rollup_merge(eq->targets, n, DNS_MAX_TARGETS, m->targets, m->n_targets);
	eq->n_targets = n;
	eq->have_route = n > 0;
	if (eq->good_target >= n)
		eq->good_target = 0;
}

bool egress_rollup_route_ready(struct egress_queue *eq)
{
	struct sched_queue *q = eq->q;
	int64_t now = (int64_t)loop_now_ms();

	if (now >= eq->members_check_ms)
		members_check(eq, now);
	if (eq->members_dirty)
		members_rebuild(eq);
	if (!eq->n_targets && q->n_ready) {
		/* No member known to match yet: sort every ready recipient by its
		 * member (lookups start, others go home or fail). */
		struct sched_rcpt *keep = NULL, **tail = &keep, *r;

		while ((r = sched_ready_pop(q)))
			if (egress_rollup_admit(eq, r)) {
				*tail = r;
				tail = (struct sched_rcpt **)&r->link.next;
			}
		while ((r = keep)) {
			keep = (struct sched_rcpt *)r->link.next;
			sched_ready_push(&eq->w->sched, q, r);
		}
		if (eq->members_dirty)
			members_rebuild(eq);
	}
	return eq->n_targets > 0 && !eq->freeing;
}

void egress_rollup_free(struct egress_queue *eq)
{
	for (size_t b = 0; b < eq->n_buckets; b++)
		while (eq->members[b]) {
			struct egress_member *m = eq->members[b];

			eq->members[b] = m->next;
			while (m->parked) {
				struct sched_rcpt *r = m->parked;

				m->parked = (struct sched_rcpt *)r->link.next;
				free(r); /* the spool still has it */
			}
			free(m->targets);
			free(m);
		}
	free(eq->members);
	eq->members = NULL;
	eq->n_buckets = eq->n_members = 0;
}
