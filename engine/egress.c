/*
 * egress.c - a shard's connections and the transactions they carry (see
 * egress.h for the split with egress_route.c and egress_policy.c).
 *
 * Flow: egress_kick(q) -> paused? stop -> member of a rollup? move the
 * recipients there -> route known (else resolve and come back) -> idle
 * connections take work first -> then, while the ready backlog is more than
 * the open sessions carry in about a second (conn_window.h), open
 * connections on the virtual MTA the policy picks (rotating across the
 * pool, within each unit's window, max-smtp-out and connect rate) -> on
 * txn_done: reply patterns, outcomes to the writer, deferred recipients back
 * into the heap, the unit's window and carry estimate fed -> next
 * transaction if the message cap, the mode and the rate allow, else idle
 * (kept for reuse until idle-timeout) or QUIT.
 *
 * The kick never loops on a failure: a session whose socket cannot be made
 * backs its unit off (egress_open_failed) and the policy does not pick that
 * unit again before the backoff ends; sessions that fail later fail through
 * the ring, and a session that never started does not kick.
 *
 * Connections start at the queue's last good MX and fall over to the next
 * target (by preference) when a host does not answer or refuses the session;
 * when every target failed and no connection is alive, the ready recipients
 * are deferred with the last error.
 */
#include "engine/egress.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "engine/acct_headers.h"
#include "engine/delete.h"
#include "engine/outcome.h"
#include "engine/trace.h"
#include "engine/verp.h"
#include "queue/suppress.h"
#include "engine/dkim.h"
#include "net/dot_stuff.h"
#include "net/smtp_client.h"
#include "net/smtp_reply.h"

#define TXN_WINDOW 1000

struct egress_txn {
	struct smtp_txn t;
	uint64_t msg_id;
	size_t pool;
	char *sender;              /* the original envelope sender */
	char *campaign;
	char verp[VERP_MAX];       /* the return path when bounce-domain is set */
	size_t size;
	int64_t queued_ms;
	int64_t started_us;        /* monotonic: handed to the session */
	struct sched_rcpt **rcpts;
	char **addrs;
	struct smtp_result *results;
	char *wire;
	uint8_t src_type;          /* SPOOL_SRC_*: for the records' srcType */
	bool no_verp;              /* the message goes with its own return path */
	char *envid;               /* the message's ENVID; NULL when none */
	char *acct_headers;        /* acct_headers_take(): header_NAME for the records */
	uint8_t *notify;           /* per recipient: RFC 3461 NOTIFY (passed on with DSN) */
	char **orcpt;              /* per recipient: ORCPT "type;address" or NULL */
};

static void conn_open(struct egress_queue *eq, struct egress_conn *c);

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- queue state ------------------------------------------------------------ */

struct egress_queue *egress_queue_of(struct worker *w, struct sched_queue *q)
{
	struct egress_queue *eq = q->egress;

	if (eq)
		return eq;
	eq = calloc(1, sizeof(*eq));
	if (!eq)
		return NULL;
	eq->q = q;
	eq->w = w;
	eq->rate_at_ms = (int64_t)loop_now_ms(); /* rates count from the queue's birth */
	if (egress_units_init(eq) < 0) {
		free(eq);
		return NULL;
	}
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
		free(x->orcpt ? x->orcpt[i] : NULL);
	}
	free(x->notify);
	free(x->orcpt);
	free(x->addrs);
	free(x->rcpts);
	free(x->results);
	free(x->wire);
	free(x->sender);
	free(x->campaign);
	free(x->envid);
	free(x->acct_headers);
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
		config_gen_put(c->gen);
		free(c);
	}
	egress_units_free(eq);
	free(eq->targets);
	free(eq->hosts_tmp);
	free(eq->redirect);
	egress_rollup_free(eq);
	free(eq);
	q->egress = NULL;
}

/* ---- outcomes ------------------------------------------------------------- */

static const char *pool_name(const struct config *cfg, size_t pool)
{
	return pool < cfg->n_pools && pool ? cfg->pools[pool].name : "";
}

/* Cut an incomplete UTF-8 sequence off the end of s (a byte limit may
 * have split a character of a reply's text; the API's JSON needs whole
 * ones). */
/* The EHLO extensions for the records' dlvEsmtpAvailable: "PIPELINING,SIZE,...". */
static const char *esmtp_list(unsigned exts, char *buf, size_t cap)
{
	static const char *const names[] = {"PIPELINING", "SIZE", "8BITMIME", "STARTTLS", "SMTPUTF8",
					    "ENHANCEDSTATUSCODES", "CHUNKING", "AUTH", "DSN"};
	size_t n = 0;

	buf[0] = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && n < cap; i++)
		if (exts & (1u << i))
			n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "," : "", names[i]);
	return buf[0] ? buf : NULL;
}

static void utf8_trim_tail(char *s)
{
	size_t n = strlen(s), k = 0;
	unsigned char lead;
	size_t want;

	while (k < 3 && k < n && ((unsigned char)s[n - 1 - k] & 0xc0) == 0x80)
		k++;
	if (k == n)
		return;
	lead = (unsigned char)s[n - 1 - k];
	if (lead < 0xc0)
		return;
	want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
	if (k + 1 < want)
		s[n - 1 - k] = 0;
}

static void note_error(struct egress_queue *eq, const struct smtp_result *res)
{
	if (res->code)
		snprintf(eq->last_error, sizeof(eq->last_error), "%d %s%s%.120s", res->code, res->enhanced,
			 res->enhanced[0] ? " " : "", res->text);
	else
		snprintf(eq->last_error, sizeof(eq->last_error), "%.150s", res->text);
	utf8_trim_tail(eq->last_error);
}

/* own: res is this recipient's own reply on a session that went on (not
 * the connection's failure): retry-recipients-after applies to a 4xx. */
static void rcpt_outcome(struct egress_queue *eq, struct outcome_batch *b, struct sched_rcpt *r,
			 const char *addr, const struct smtp_result *res, bool force_bounce, bool own, int64_t now)
{
	struct worker *w = eq->w;
	const struct config_domain *dom = r->queue->cfg;
	bool backoff = egress_mode_now(eq, loop_now_ms()) == EGRESS_BACKOFF;
	uint32_t attempts = (uint32_t)r->attempts + 1;
	int64_t next = 0;
	enum outcome_kind k;

	if (r->attempts < UINT16_MAX)
		r->attempts++;
	k = outcome_decide(res, attempts, r->queued_ms, now, dom, backoff, &next);
	if (k == OUTCOME_DEFERRED && own)
		outcome_rcpt_retry(dom, r->queued_ms, now, &next);
	if (force_bounce && (k == OUTCOME_DEFERRED || k == OUTCOME_EXPIRED))
		k = OUTCOME_BOUNCED;
	outcome_batch_add(b, r->idx, addr, k, attempts, r->queued_ms, next, res);
	if (k == OUTCOME_DELIVERED)
		eq->delivered++;
	else if (k == OUTCOME_DEFERRED)
		eq->deferred++;
	else if (k == OUTCOME_EXPIRED)
		eq->expired++;
	else
		eq->bounced++;
	if (k != OUTCOME_DELIVERED)
		note_error(eq, res);
	if (k == OUTCOME_DEFERRED) {
		/* stored: wall clock (next); waited for: the monotonic clock */
		int64_t mono = (int64_t)loop_now_ms();

		if (delete_catch(w, r))
			return; /* deleted while in flight: cancelled now it is back */

		r->due_ms = sched_due_mono(next, now, mono);
		if (sched_add(&w->sched, r, mono) == 0)
			return;
		/* No memory for the heap: the spool still has it; a restart retries. */
		fprintf(stderr, "salvod: out of memory re-queueing a deferred recipient\n");
	}
	free(r);
}

static void fail_one(struct egress_queue *eq, struct spool_rtxn *rt, struct sched_rcpt *r,
		     const struct smtp_result *res, const char *mx_host, int64_t now, bool force_bounce)
{
	struct worker *w = eq->w;
	struct spool_msg m;
	struct spool_rcpt sr;
	struct outcome_batch *b;
	char *headers;
	struct outcome_route route = {
		.queue = eq->q->domain,
		.mx_host = mx_host,
		.pool = pool_name(w->cfg, r->pool),
	};

	if (!rt || spool_get_msg(rt, r->msg_id, &m) != 0 || spool_get_rcpt(rt, r->msg_id, r->idx, &sr) != 0) {
		fprintf(stderr, "salvod: recipient %016llx/%u vanished from the spool\n", (unsigned long long)r->msg_id,
			r->idx);
		free(r);
		return;
	}
	route.campaign = m.campaign; /* its records and counters name it */
	route.envid = m.envid;
	route.src_type = spool_src_name(m.src_type);
	route.headers = headers = acct_headers_take(w->cfg, m.body, m.body_len);
	b = outcome_batch_new(w->eng, r->msg_id, m.sender, r->queued_ms, m.body_len, &route, 1);
	free(headers);
	if (!b) {
		free(r);
		return;
	}
	rcpt_outcome(eq, b, r, sr.addr, res, force_bounce, false, now);
	outcome_batch_submit(b);
}

void egress_fail_ready(struct egress_queue *eq, const struct smtp_result *res, const char *mx_host)
{
	struct spool_rtxn *rt = NULL;
	int64_t now = wall_now_ms();
	struct sched_rcpt *r;

	if (spool_rtxn_begin(eq->w->eng->spool, &rt) != 0)
		rt = NULL;
	while ((r = sched_ready_pop(eq->q)))
		fail_one(eq, rt, r, res, mx_host, now, false);
	if (rt)
		spool_rtxn_end(rt);
}

/* A reply that matched a `reply /REGEX/ defer-queue` rule, as the transient
 * failure it stands for: a 5xx becomes the 4xx of the same text (the queue
 * is deferred, nobody bounces). */
static void defer_form(struct smtp_result *res)
{
	if (res->code >= 500 && res->code < 600)
		res->code -= 100;
	if (res->enhanced[0] == '5')
		res->enhanced[0] = '4';
}

/* PowerMTA's queue-wide reply actions, after the reply's own recipient was
 * handled: bounce-queue bounces every recipient of the queue that is not
 * in flight (ready, or waiting for a retry) with that reply; defer-queue
 * defers every ready one with it, each to its next retry (the queue's
 * retry-after schedule), and retires the queue's sessions. */
static void queue_action(struct egress_queue *eq, unsigned act, const struct smtp_result *res, const char *mx_host)
{
	struct spool_rtxn *rt = NULL;
	struct smtp_result r2 = *res;
	int64_t now = wall_now_ms();
	struct sched_rcpt *r;
	size_t n = 0;

	if (!(act & (CONFIG_PAT_BOUNCE_QUEUE | CONFIG_PAT_DEFER_QUEUE)) || eq->freeing)
		return;
	if (act & CONFIG_PAT_BOUNCE_QUEUE)
		sched_retry_now(&eq->w->sched, eq->q); /* the waiting ones too */
	else
		defer_form(&r2);
	if (spool_rtxn_begin(eq->w->eng->spool, &rt) != 0)
		rt = NULL;
	while ((r = sched_ready_pop(eq->q))) {
		fail_one(eq, rt, r, &r2, mx_host, now, (act & CONFIG_PAT_BOUNCE_QUEUE) != 0);
		n++;
	}
	if (rt)
		spool_rtxn_end(rt);
	if (act & CONFIG_PAT_DEFER_QUEUE)
		for (struct egress_conn *c = eq->conns; c; c = c->next)
			c->retire = true;
	fprintf(stderr, "salvod: queue %s: %s, %zu more recipient(s): %.200s\n", eq->q->domain,
		act & CONFIG_PAT_BOUNCE_QUEUE ? "bounce-queue bounces" : "defer-queue defers", n, res->text);
}

void egress_fail_rcpt(struct egress_queue *eq, struct sched_rcpt *r, const struct smtp_result *res)
{
	struct spool_rtxn *rt = NULL;

	if (spool_rtxn_begin(eq->w->eng->spool, &rt) != 0)
		rt = NULL;
	r->queue = eq->q;
	fail_one(eq, rt, r, res, NULL, wall_now_ms(), false);
	if (rt)
		spool_rtxn_end(rt);
}

/* ---- transactions ----------------------------------------------------------- */

/* A queued recipient whose address was suppressed after it was accepted:
 * dropped with a `suppressed` record instead of sent. */
static void drop_suppressed(struct egress_queue *eq, struct outcome_batch **sup, const struct spool_msg *m,
			    struct sched_rcpt *r, const char *addr)
{
	const struct config *cfg = eq->w->cfg;
	struct smtp_result res = {.code = 0};
	struct outcome_route route = {
		.queue = eq->q->domain,
		.pool = pool_name(cfg, r->pool),
		.campaign = m->campaign,
		.envid = m->envid,
	};

	snprintf(res.text, sizeof(res.text), "recipient is on the suppression list");
	if (!*sup)
		*sup = outcome_batch_new(eq->w->eng, m->id, m->sender, r->queued_ms, m->body_len, &route, m->n_rcpt);
	if (*sup)
		outcome_batch_add(*sup, r->idx, addr, OUTCOME_SUPPRESSED, r->attempts, r->queued_ms, 0, &res);
	free(r);
}

/* Any byte with the high bit set? Eight bytes per step: a byte loop here
 * was 3% of salvod on 4 KiB messages. */
static bool has_8bit(const char *p, size_t n)
{
	uint64_t acc = 0, w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		acc |= w;
	}
	for (; i < n; i++)
		acc |= (unsigned char)p[i];
	return (acc & 0x8080808080808080ull) != 0;
}

/* The DKIM-Signature for m sent through vmta (a malloc'd header in *hdr,
 * its length in *len), or nothing when no key applies, the domain has
 * dkim-sign no, or signing fails (logged once: it goes unsigned, as at
 * intake). */
static void sign_for_vmta(struct worker *w, const struct config_domain *dom, size_t vmta, const struct spool_msg *m,
			  char **hdr, size_t *len)
{
	static int reported;
	char err[256];

	*hdr = NULL;
	*len = 0;
	if (!w->gen->dkim || !dom->dkim_sign)
		return;
	if (dkim_sign_vmta(w->gen->dkim, vmta, m->body, m->body_len, wall_now_ms() / 1000, hdr, len, err,
			   sizeof(err)) < 0) {
		if (!__atomic_exchange_n(&reported, 1, __ATOMIC_RELAXED))
			fprintf(stderr, "salvod: DKIM signing failed, sending unsigned: %s\n", err);
	}
	if (!*hdr)
		*len = 0;
}

/* The next transaction for a connection on vmta: the first ready recipient
 * of a pool that includes it, plus up to max-rcpt-per-message more of the
 * same message, in chunk form when the connection speaks BDAT. NULL when
 * nothing may go now. */
static struct egress_txn *txn_build(struct egress_queue *eq, size_t vmta, bool chunked)
{
	struct worker *w = eq->w;
	const struct config *cfg = w->cfg;
	struct sched_queue *q = eq->q;
	const struct config_domain *dom = egress_unit_dom(eq, vmta);
	unsigned max = dom->max_rcpt_per_message ? dom->max_rcpt_per_message : 100;
	struct outcome_batch *sup = NULL;
	struct spool_rtxn *rt;
	struct spool_msg m;
	struct egress_txn *x;
	struct sched_rcpt *r;
	ssize_t pool;
	char *dkim_hdr = NULL;
	size_t dkim_len = 0;

	while (q->n_ready && (pool = egress_pick_pool(eq, vmta, loop_now_ms())) >= 0) {
		if (!(r = sched_ready_pop_pool(q, (size_t)pool)))
			return NULL;
		if (sched_rcpt_parked(&w->sched, r)) {
			/* paused since it became ready: parked now (a message's
			 * recipients share its campaign, so the rest park later) */
			sched_ready_push(&w->sched, q, r);
			continue;
		}
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
		/* a message whose pool's vmtas sign with different keys is
		 * signed here, as this vmta (accept_store_sign()); the header
		 * goes in front of the wire form (CRLF lines, no dots) */
		if (m.dkim_at_delivery)
			sign_for_vmta(w, dom, vmta, &m, &dkim_hdr, &dkim_len);
		x = calloc(1, sizeof(*x));
		if (x) {
			x->rcpts = calloc(max, sizeof(*x->rcpts));
			x->addrs = calloc(max, sizeof(*x->addrs));
			x->notify = calloc(max, sizeof(*x->notify));
			x->orcpt = calloc(max, sizeof(*x->orcpt));
			x->sender = strdup(m.sender);
			x->campaign = strdup(m.campaign);
			x->envid = m.envid[0] ? strdup(m.envid) : NULL;
			x->wire = malloc(dkim_len + dot_stuff_bound(m.body_len));
		}
		if (!x || !x->rcpts || !x->addrs || !x->notify || !x->orcpt || !x->sender || !x->campaign || !x->wire ||
		    (m.envid[0] && !x->envid)) {
			spool_rtxn_end(rt);
			free(dkim_hdr);
			txn_free(x);
			sched_ready_push(&w->sched, q, r);
			return NULL;
		}
		x->msg_id = r->msg_id;
		x->pool = (size_t)pool;
		x->size = m.body_len;
		x->queued_ms = r->queued_ms;
		x->t.chunked = chunked;
		if (dkim_len)
			memcpy(x->wire, dkim_hdr, dkim_len);
		free(dkim_hdr);
		dkim_hdr = NULL;
		x->t.wire_len = dkim_len + (chunked ? chunk_form(m.body, m.body_len, x->wire + dkim_len)
						    : dot_stuff(m.body, m.body_len, x->wire + dkim_len));
		if (x->t.wire_len > 64 * 1024) {
			/* the bound is twice the message, untouched mostly; give
			 * back what the wire form did not use (a large block
			 * shrinks in place) */
			char *p = realloc(x->wire, x->t.wire_len);

			if (p)
				x->wire = p;
		}
		x->t.wire = x->wire;
		x->t.sender = x->sender;
		/* SIZE=: the message as it goes, without DATA's dot-stuffing */
		x->t.size = chunked ? x->t.wire_len : dkim_len + m.body_len;
		dkim_len = 0;
		x->t.smtputf8 = m.smtputf8;
		x->t.dsn_ret = m.ret;
		x->src_type = m.src_type;
		x->no_verp = m.no_verp;
		x->acct_headers = acct_headers_take(cfg, m.body, m.body_len);
		/* VERP: one recipient per transaction (the return path is set
		 * below, for the recipient that goes; never for the null sender). */
		if (cfg->bounce_domain && m.sender[0] && !m.no_verp)
			max = 1;
		/* 8-bit content is declared when present, unless the domain's
		 * ignore-8bitmime says its hosts mishandle BODY=8BITMIME. */
		x->t.eightbit = !dom->ignore_8bitmime && has_8bit(m.body, m.body_len);
		do {
			struct spool_rcpt sr;

			if (delete_catch(w, r))
				continue; /* deleted by the operator while it waited elsewhere */
			if (eq->is_rollup && !egress_rollup_admit(eq, r))
				continue; /* parked, sent home or failed (egress_rollup.c) */
			if (spool_get_rcpt(rt, r->msg_id, r->idx, &sr) != 0) {
				free(r);
				continue;
			}
			if (suppress_check(rt, sr.addr)) {
				drop_suppressed(eq, &sup, &m, r, sr.addr);
				continue;
			}
			if (!(x->addrs[x->t.n_rcpts] = strdup(sr.addr))) {
				free(r);
				continue;
			}
			x->notify[x->t.n_rcpts] = sr.notify;
			/* an ORCPT that cannot be copied is not passed on (mail flows) */
			x->orcpt[x->t.n_rcpts] = sr.orcpt[0] ? strdup(sr.orcpt) : NULL;
			x->rcpts[x->t.n_rcpts++] = r;
		} while (x->t.n_rcpts < max && (r = sched_ready_take_msg(q, (size_t)pool, x->msg_id, TXN_WINDOW)));
		spool_rtxn_end(rt);
		if (sup) {
			outcome_batch_submit(sup);
			sup = NULL;
		}
		if (!x->t.n_rcpts) {
			txn_free(x);
			continue;
		}
		/* one reply slot per recipient that goes (not max: the slots are large) */
		if (!(x->results = calloc(x->t.n_rcpts, sizeof(*x->results)))) {
			for (size_t i = 0; i < x->t.n_rcpts; i++) {
				sched_ready_push(&w->sched, q, x->rcpts[i]);
				free(x->addrs[i]);
			}
			x->t.n_rcpts = 0;
			txn_free(x);
			return NULL;
		}
		if (cfg->bounce_domain && x->sender[0] && !x->no_verp &&
		    verp_encode(spool_verp_key(w->eng->spool), x->msg_id, x->rcpts[0]->idx, cfg->bounce_domain, x->verp,
				sizeof(x->verp)) == 0)
			x->t.sender = x->verp;
		x->t.rcpts = (const char *const *)x->addrs;
		x->t.dsn_envid = x->envid;
		x->t.dsn_notify = x->notify;
		x->t.dsn_orcpt = (const char *const *)x->orcpt;
		x->t.results = x->results;
		q->n_inflight += x->t.n_rcpts;
		return x;
	}
	return NULL;
}

/* Where x went, for its outcome records (esmtp: room for the receiver's
 * extensions, which route points into). */
static struct outcome_route txn_route(const struct egress_conn *c, struct smtp_client *cli,
				      const struct egress_txn *x, char *esmtp, size_t cap)
{
	const struct egress_queue *eq = c->eq;
	const struct config *cfg = &c->gen->cfg;
	const struct config_vmta *vm = &cfg->vmtas[c->vmta];
	const struct dns_target *tg = &eq->targets[c->target < eq->n_targets ? c->target : 0];

	return (struct outcome_route){
		.queue = eq->q->domain,
		.mx_host = tg->host,
		.mx_ip = smtp_client_peer_ip(cli),
		.vmta = vm->name,
		.source_ip = vm->has_source ? vm->source.text : NULL,
		.pool = pool_name(cfg, x->pool),
		.campaign = x->campaign,
		.envid = x->envid,
		.verp = x->t.sender == x->verp,
		.tls = smtp_client_tls(cli),
		.src_type = spool_src_name(x->src_type),
		.esmtp = esmtp_list(smtp_client_exts(cli), esmtp, cap),
		.headers = x->acct_headers,
		/* the receiver's own DSNs reach the sender only without VERP */
		.peer_dsn = (smtp_client_exts(cli) & SMTP_EXT_DSN) && x->t.sender != x->verp,
	};
}

/* Answer recipient i of x here, without sending (a bounce: res is 5xx). */
static void txn_refuse(struct egress_conn *c, struct egress_txn *x, struct outcome_batch **b, size_t i,
		       const struct smtp_result *res)
{
	struct egress_queue *eq = c->eq;
	char esmtp[160];
	struct outcome_route route = txn_route(c, c->cli, x, esmtp, sizeof(esmtp));

	if (!*b)
		*b = outcome_batch_new(eq->w->eng, x->msg_id, x->sender, x->queued_ms, x->size, &route, x->t.n_rcpts);
	if (!*b) {
		/* No memory for the record: the spool still has the recipient and
		 * a restart retries it (back to the queue, it would come straight
		 * back here). */
		fprintf(stderr, "salvod: out of memory answering %016llx/%u; it goes out after a restart\n",
			(unsigned long long)x->msg_id, x->rcpts[i]->idx);
		free(x->rcpts[i]);
	} else {
		rcpt_outcome(eq, *b, x->rcpts[i], x->addrs[i], res, true, false, wall_now_ms());
	}
	x->rcpts[i] = NULL;
	eq->q->n_inflight--;
}

static void result_make(struct smtp_result *r, int code, const char *enhanced, const char *text)
{
	memset(r, 0, sizeof(*r));
	r->code = code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced);
	snprintf(r->text, sizeof(r->text), "%s", text);
}

/* What this receiver cannot take is answered before anything is sent: a
 * message over the SIZE it advertised (RFC 1870: 552 5.3.4, all
 * recipients, the body never sent), and, from a receiver without SMTPUTF8,
 * recipients whose address needs it (RFC 6531 3.4: 5.6.7; all of them when
 * the sender's does). Returns how many recipients are left to send. */
static size_t txn_precheck(struct egress_conn *c, struct egress_txn *x)
{
	uint64_t limit = smtp_client_size_limit(c->cli);
	bool utf8_ok = smtp_client_exts(c->cli) & SMTP_EXT_SMTPUTF8;
	bool sender_8bit = has_8bit(x->t.sender, strlen(x->t.sender));
	struct outcome_batch *b = NULL;
	struct smtp_result res;
	size_t k = 0;

	/* an 8-bit address needs SMTPUTF8 however the message came in */
	for (size_t i = 0; i < x->t.n_rcpts && !x->t.smtputf8; i++)
		x->t.smtputf8 = has_8bit(x->addrs[i], strlen(x->addrs[i]));
	x->t.smtputf8 |= sender_8bit;
	for (size_t i = 0; i < x->t.n_rcpts; i++) {
		if (limit && x->t.size > limit) {
			char text[160];

			snprintf(text, sizeof(text), "message size %zu exceeds the receiver's limit of %llu (SIZE)",
				 x->t.size, (unsigned long long)limit);
			result_make(&res, 552, "5.3.4", text);
		} else if (x->t.smtputf8 && !utf8_ok && (sender_8bit || has_8bit(x->addrs[i], strlen(x->addrs[i])))) {
			result_make(&res, 553, "5.6.7", "the receiver does not support SMTPUTF8, "
				    "which this address needs (RFC 6531)");
		} else {
			/* goes: keep it, in order */
			x->rcpts[k] = x->rcpts[i];
			if (k != i) {
				x->addrs[k] = x->addrs[i];
				x->addrs[i] = NULL;
			}
			k++;
			continue;
		}
		txn_refuse(c, x, &b, i, &res);
		free(x->addrs[i]);
		x->addrs[i] = NULL;
	}
	if (b)
		outcome_batch_submit(b);
	x->t.n_rcpts = k;
	return k;
}

/* Give c its next transaction; false when there is none for it now. */
static bool conn_give_txn(struct egress_conn *c)
{
	struct egress_queue *eq = c->eq;
	struct egress_txn *x;

	if (eq->paused || c->retire || spool_writer_failed(&eq->w->eng->writer))
		return false; /* never deliver what cannot be recorded */
	for (;;) {
		x = txn_build(eq, c->vmta, smtp_client_exts(c->cli) & SMTP_EXT_CHUNKING);
		if (!x)
			return false;
		if (txn_precheck(c, x))
			break;
		txn_free(x);
	}
	c->idle = false;
	c->txn = x;
	x->started_us = mono_us();
	smtp_client_send(c->cli, &x->t);
	return true;
}

static void conn_set_idle(struct egress_conn *c)
{
	struct egress_queue *eq = c->eq;
	int64_t now = loop_now_ms();

	if (eq->paused || c->retire) {
		smtp_client_quit(c->cli);
		return;
	}
	c->idle = true;
	c->idle_since_ms = now;
	egress_wake_at(eq, now + (int64_t)egress_unit_dom(eq, c->vmta)->idle_timeout_ms);
}

int64_t egress_close_idle(struct egress_queue *eq, int64_t now_ms)
{
	int64_t next = 0;

	for (struct egress_conn *c = eq->conns, *n; c; c = n) {
		int64_t tmo;

		n = c->next;
		if (!c->idle || !c->cli)
			continue;
		tmo = (int64_t)egress_unit_dom(eq, c->vmta)->idle_timeout_ms;
		if (eq->paused || c->retire || now_ms - c->idle_since_ms >= tmo) {
			c->idle = false;
			smtp_client_quit(c->cli);
		} else if (!next || c->idle_since_ms + tmo < next) {
			next = c->idle_since_ms + tmo;
		}
	}
	return next;
}

void egress_shed_idle(struct worker *w)
{
	for (size_t i = 0; i < w->sched.n_buckets; i++)
		for (struct sched_queue *q = w->sched.buckets[i]; q; q = q->hnext) {
			struct egress_queue *eq = q->egress;

			for (struct egress_conn *c = eq ? eq->conns : NULL, *n; c; c = n) {
				n = c->next;
				if (c->idle && c->cli) {
					c->idle = false;
					smtp_client_quit(c->cli);
				}
			}
		}
}

/* The shortages this thread's worker has answered (one worker per thread). */
static _Thread_local uint64_t shortages_seen;

void egress_fd_shortage(struct worker *w)
{
	shortages_seen = __atomic_add_fetch(&w->eng->counters.fd_shortages, 1, __ATOMIC_RELAXED);
	egress_shed_idle(w);
}

void egress_shed_if_short(struct worker *w)
{
	uint64_t n = __atomic_load_n(&w->eng->counters.fd_shortages, __ATOMIC_RELAXED);

	if (n == shortages_seen)
		return;
	shortages_seen = n;
	egress_shed_idle(w);
}

/* ---- TLS and deadlines per connection -------------------------------------------- */

/* The server name to send (RFC 6066 3): the MX host name for MX routes and
 * host routes; none for an IP route; never a port. */
static const char *tls_server_name(const struct config_domain *dom, const struct dns_target *t, char *buf,
				   size_t cap)
{
	struct in6_addr a6;
	struct in_addr a4;
	size_t n;

	if (dom->has_route && !dom->route_host)
		return NULL;
	n = strcspn(t->host, ":");
	if (!n || n >= cap)
		return NULL;
	memcpy(buf, t->host, n);
	buf[n] = 0;
	if (n > 1 && buf[n - 1] == '.')
		buf[n - 1] = 0;
	if (inet_pton(AF_INET, buf, &a4) == 1 || inet_pton(AF_INET6, buf, &a6) == 1 || buf[0] == '[')
		return NULL;
	return buf;
}

static int clear_slot(const struct egress_queue *eq, const struct dns_target *t)
{
	for (size_t i = 0; i < sizeof(eq->clear) / sizeof(eq->clear[0]); i++)
		if (eq->clear[i].until_ms && !memcmp(&eq->clear[i].addr, &t->addr, t->addrlen))
			return (int)i;
	return -1;
}

/* Was a handshake with this host refused lately (deliver in clear)? */
static bool tls_clear_for(const struct egress_queue *eq, const struct dns_target *t)
{
	int i = clear_slot(eq, t);

	return i >= 0 && (int64_t)loop_now_ms() < eq->clear[i].until_ms;
}

/* A handshake with this host failed: clear to it (only) for an hour. */
static void tls_clear_note(struct egress_queue *eq, const struct dns_target *t)
{
	int i = clear_slot(eq, t);

	if (i < 0) {
		/* a free or the oldest slot */
		i = 0;
		for (size_t k = 1; k < sizeof(eq->clear) / sizeof(eq->clear[0]); k++)
			if (eq->clear[k].until_ms < eq->clear[i].until_ms)
				i = (int)k;
	}
	memset(&eq->clear[i].addr, 0, sizeof(eq->clear[i].addr));
	memcpy(&eq->clear[i].addr, &t->addr, t->addrlen);
	eq->clear[i].until_ms = (int64_t)loop_now_ms() + 3600 * 1000;
}

/* The worker's defaults with the domain's deadlines. */
static void conn_timeouts(const struct config_domain *dom, const struct smtp_client_timeouts *base,
			  struct smtp_client_timeouts *out)
{
	*out = *base;
	out->connect_ms = dom->connect_timeout_ms;
	out->banner_ms = dom->smtp_greeting_timeout_ms;
	out->body_ms = dom->data_send_timeout_ms;
	out->dot_ms = dom->smtp_data_termination_timeout_ms;
}

/* ---- connection hooks -------------------------------------------------------- */

static void conn_ready(void *owner, struct smtp_client *cli)
{
	struct egress_conn *c = owner;
	struct egress_queue *eq = c->eq;

	c->ready = true;
	eq->n_connecting--;
	eq->good_target = c->target;
	egress_open_ok(eq, c->vmta);
	if (!conn_give_txn(c))
		conn_set_idle(c);
}

static void conn_txn_done(void *owner, struct smtp_client *cli, struct smtp_txn *t)
{
	struct egress_conn *c = owner;
	struct egress_queue *eq = c->eq;
	struct egress_txn *x = c->txn;
	struct worker *w = eq->w;
	const struct dns_target *tg = &eq->targets[c->target < eq->n_targets ? c->target : 0];
	int64_t now = wall_now_ms(), mono = loop_now_ms();
	char esmtp[160];
	struct outcome_route route = txn_route(c, cli, x, esmtp, sizeof(esmtp));
	struct egress_unit *u = &eq->units[c->vmta];
	struct outcome_batch *b;
	bool any_ok = false, alive;
	unsigned qact = 0;          /* a bounce-queue/defer-queue rule matched */
	struct smtp_result qres = {0};

	c->txn = NULL;
	/* How long a transaction takes here, from the ones that finished: a
	 * session dying mid-way says nothing about it. */
	if (smtp_client_idle(cli))
		conn_window_sample(&u->cw, (unsigned)x->t.n_rcpts, mono_us() - x->started_us);
	c->msgs++;
	eq->q->n_inflight -= x->t.n_rcpts;
	b = outcome_batch_new(w->eng, x->msg_id, x->sender, x->queued_ms, x->size, &route, x->t.n_rcpts);
	/* the session went on after the transaction: a 4xx (not 421, which
	 * closes it; not MAIL's, the message's) answered the recipient at RCPT
	 * or its data, not the connection */
	alive = smtp_client_idle(cli);
	for (size_t i = 0; i < x->t.n_rcpts; i++) {
		unsigned act = egress_patterns(eq, c, &x->results[i], mono);
		int code;

		if ((act & CONFIG_PAT_BOUNCE_QUEUE) && !(qact & CONFIG_PAT_BOUNCE_QUEUE)) {
			qact = act;
			qres = x->results[i];
		} else if ((act & CONFIG_PAT_DEFER_QUEUE) && !qact) {
			qact = act;
			qres = x->results[i];
		}
		if ((act & CONFIG_PAT_DEFER_QUEUE) && !(act & CONFIG_PAT_BOUNCE_QUEUE))
			defer_form(&x->results[i]);
		code = x->results[i].code;

		any_ok = any_ok || (x->results[i].code >= 200 && x->results[i].code < 300);
		if (x->results[i].code >= 400)
			c->errors++;
		if (b) {
			rcpt_outcome(eq, b, x->rcpts[i], x->addrs[i], &x->results[i],
				     (act & (CONFIG_PAT_BOUNCE_RCPT | CONFIG_PAT_BOUNCE_QUEUE)) != 0,
				     alive && code >= 400 && code < 500 && code != 421 && !x->results[i].at_mail, now);
			x->rcpts[i] = NULL;
		}
	}
	if (any_ok) {
		u->delivered++;
		conn_window_success(&u->cw, u->n_conns, egress_max_out(eq, c->vmta));
		if (eq->mode == EGRESS_BACKOFF && egress_unit_dom(eq, c->vmta)->backoff_to_normal_after_delivery) {
			eq->mode = EGRESS_NORMAL; /* PowerMTA's backoff-to-normal-after-delivery */
			fprintf(stderr, "salvod: queue %s returns to normal mode after a delivery\n", eq->q->domain);
		}
	}
	if (b)
		outcome_batch_submit(b);
	txn_free(x);
	queue_action(eq, qact, &qres, tg->host);
	/* The session goes on while it is healthy and under its message cap;
	 * a dying one (called from its teardown) is left to conn_closed(). */
	if (eq->freeing || !smtp_client_idle(cli))
		return;
	if (eq->units[c->vmta].n_conns > egress_max_out(eq, c->vmta))
		c->retire = true; /* backoff lowered the cap */
	if (c->msgs >= egress_unit_dom(eq, c->vmta)->max_msg_per_connection)
		c->retire = true;
	if (egress_unit_dom(eq, c->vmta)->max_errors_per_connection &&
	    c->errors >= egress_unit_dom(eq, c->vmta)->max_errors_per_connection)
		c->retire = true; /* PowerMTA's max-errors-per-connection */
	if (!conn_give_txn(c))
		conn_set_idle(c);
	/* The window may have grown, or the carry estimate fallen: more
	 * sessions if the backlog wants them (the kick opens none otherwise). */
	if (eq->q->n_ready && egress_wants_session(eq))
		egress_kick(w, eq->q);
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
	eq->units[c->vmta].n_conns--;
	config_gen_put(c->gen);
	free(c);
}

static void conn_closed(void *owner, struct smtp_client *cli, bool reached_ready, const struct smtp_result *why)
{
	struct egress_conn *c = owner;
	struct egress_queue *eq = c->eq;

	if (cli && smtp_client_tls_failed(cli) && !egress_unit_dom(eq, c->vmta)->require_starttls && !eq->freeing &&
	    c->target < eq->n_targets) {
		/* common practice: a failed opportunistic handshake is retried in
		 * clear, with that host only (never under require-starttls) */
		tls_clear_note(eq, &eq->targets[c->target]);
		fprintf(stderr, "salvod: queue %s: STARTTLS with %s failed (%.160s); delivering to that host in clear "
			"for 1 h\n", eq->q->domain, smtp_client_peer_ip(cli), why ? why->text : "");
		if (!reached_ready && eq->q->n_ready) {
			c->cli = NULL;
			conn_open(eq, c); /* the same host again, in clear */
			return;
		}
	}
	c->cli = NULL;
	if (eq->freeing)
		return;
	if (!reached_ready) {
		unsigned act = why ? egress_patterns(eq, c, why, loop_now_ms()) : 0;

		eq->n_connecting--;
		conn_window_failure(&eq->units[c->vmta].cw);
		if (why && why->text[0])
			note_error(eq, why);
		if (why)
			queue_action(eq, act, why, c->target < eq->n_targets ? eq->targets[c->target].host : NULL);
		/* This host did not take a session: fall over to the next target
		 * (unless a pattern took the source IP out of service). */
		if (!(act & CONFIG_PAT_DISABLE_SOURCE_IP) && c->target + 1 < eq->n_targets && eq->q->n_ready) {
			c->target++;
			eq->n_connecting++;
			conn_open(eq, c);
			return;
		}
		if (eq->n_conns == 1 && eq->q->n_ready && !(act & CONFIG_PAT_DISABLE_SOURCE_IP)) {
			struct smtp_result res = *why;
			char text[sizeof(res.text)];
			size_t last = c->target < eq->n_targets ? c->target : eq->n_targets - 1;

			snprintf(text, sizeof(text), "all MX hosts failed, last: %.200s", why->text);
			utf8_trim_tail(text);
			memcpy(res.text, text, sizeof(res.text));
			eq->good_target = 0;
			eq->route_expires = 0; /* look the route up afresh next time */
			egress_fail_ready(eq, &res, eq->n_targets ? eq->targets[last].host : NULL);
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

/* Descriptors open in this process (/proc/self/fd, less the one reading it). */
static long fds_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	long n = -1;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 2; /* "." and "..", and the directory's own descriptor counted by n = -1 */
}

/* Outbound sessions leave the last descriptors to inbound sessions and the
 * API (with none left, nobody could even ask what is wrong; libmicrohttpd
 * busy-waits for one): 1/16 of the limit, 2 to 64. The lowest free
 * descriptor (what a dup gets) at or above limit - reserve means at most
 * `reserve` are free; below it there may still be fewer free, as the
 * descriptors above it can be in use (closed ones leave holes), so near
 * the limit they are counted. -EMFILE when the reserve would be touched;
 * 1 when it would not but the limit is near (queue-priority applies). */
static int fd_reserve_check(void)
{
	struct rlimit rl;
	rlim_t reserve;
	long n;
	int fd;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return 0;
	reserve = rl.rlim_cur / 16;
	reserve = reserve < 2 ? 2 : reserve > 64 ? 64 : reserve;
	fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return errno == EMFILE || errno == ENFILE ? -errno : 0;
	close(fd);
	if ((rlim_t)fd + reserve >= rl.rlim_cur)
		return -EMFILE;
	if ((rlim_t)fd + 4 * reserve + 16 < rl.rlim_cur)
		return 0; /* far from the limit: holes cannot matter */
	n = fds_open();
	return n >= 0 && (rlim_t)n + 1 + reserve > rl.rlim_cur ? -EMFILE : 1;
}

static void conn_open(struct egress_queue *eq, struct egress_conn *c)
{
	struct worker *w = eq->w;
	const struct config *cfg = &c->gen->cfg;
	const struct config_vmta *vm = &cfg->vmtas[c->vmta];
	const char *helo = vm->helo ? vm->helo : cfg->host_name;
	const struct config_domain *dom = egress_unit_dom(eq, c->vmta);
	struct smtp_client_timeouts tmo;

	conn_timeouts(dom, &w->client_tmo, &tmo);
	for (; c->target < eq->n_targets; c->target++) {
		struct dns_target *t = &eq->targets[c->target];
		bool clear = !dom->require_starttls && tls_clear_for(eq, t);
		char sni[256];
		struct smtp_client_tls tls = {
			.ctx = (dom->use_starttls || dom->require_starttls) && !clear ? w->eng->tls_client : NULL,
			.require = dom->require_starttls,
			.sni = tls_server_name(dom, t, sni, sizeof(sni)),
		};
		int ret;

		if (vm->has_source && vm->source.sa.ss_family != t->addr.ss_family)
			continue; /* an IPv4 source cannot reach an IPv6 MX */
		ret = fd_reserve_check();
		if (ret == 1 && egress_prio_yield(dom, (int64_t)loop_now_ms())) {
			/* a higher queue-priority queue waits for a descriptor: leave it this one */
			egress_prio_wait(eq, c->vmta, (int64_t)loop_now_ms());
			eq->n_connecting--;
			conn_unlink(eq, c);
			return;
		}
		if (ret == 1)
			ret = 0;
		if (ret == 0)
			ret = smtp_client_connect(&c->cli, &w->loop, (const struct sockaddr *)&t->addr, t->addrlen,
						  vm->has_source ? (const struct sockaddr *)&vm->source.sa : NULL,
						  vm->has_source ? vm->source.salen : 0, helo, &tmo,
						  tls.ctx || tls.require ? &tls : NULL, &conn_hooks, c);
		if (ret == 0) {
			__atomic_add_fetch(&w->eng->counters.connections_opened, 1, __ATOMIC_RELAXED);
			trace_session_out(w->eng->trace, smtp_client_trace(c->cli), eq->q->domain,
					  trace_domain_flags(cfg, dom));
			/* auth-username/auth-password: AUTH after EHLO (over TLS
			 * unless allow-unencrypted-plain-auth); without memory for
			 * it the session ends as failed rather than go without */
			if (dom->auth_username && dom->auth_password &&
			    smtp_client_set_auth(c->cli, dom->auth_username, dom->auth_password,
						 dom->auth_allow_clear) < 0)
				smtp_client_abort(c->cli);
			return;
		}
		/* A socket or its source address could not be had: ours to lack,
		 * not the host's, so the next target would fail the same way.
		 * The unit waits; its recipients stay ready, no attempt counted. */
		egress_open_failed(eq, c->vmta, ret, t->host, (int64_t)loop_now_ms());
		if (ret == -EMFILE || ret == -ENFILE) {
			egress_fd_shortage(w);
			egress_prio_starved(dom, eq->units[c->vmta].open_after_ms);
		}
		eq->n_connecting--;
		conn_unlink(eq, c);
		return;
	}
	/* No target of a family this source can reach: a failed session; the
	 * unit waits too, so that the kick does not pick it again at once. */
	egress_open_failed(eq, c->vmta, -EAFNOSUPPORT, eq->q->domain, (int64_t)loop_now_ms());
	struct smtp_result why = {.code = 0};
	snprintf(why.text, sizeof(why.text), "no usable address for %s from virtual-mta %s", eq->q->domain,
		 vm->name);
	c->target = eq->n_targets;
	conn_closed(c, NULL, false, &why);
}

/* false when out of memory (the caller stops opening for now) */
static bool conn_new(struct egress_queue *eq, size_t vmta)
{
	struct egress_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return false;
	c->eq = eq;
	c->vmta = vmta;
	config_gen_ref(eq->w->gen);
	c->gen = eq->w->gen;
	c->target = eq->good_target < eq->n_targets ? eq->good_target : 0;
	c->next = eq->conns;
	if (eq->conns)
		eq->conns->prev = c;
	eq->conns = c;
	eq->n_conns++;
	eq->units[vmta].n_conns++;
	eq->n_connecting++;
	conn_open(eq, c);
	return true;
}

/* ---- kick ------------------------------------------------------------------------ */

void egress_kick(struct worker *w, struct sched_queue *q)
{
	struct egress_queue *eq = egress_queue_of(w, q);
	int64_t now;
	ssize_t v;

	if (!eq || eq->freeing || eq->paused || !q->n_ready || spool_writer_failed(&w->eng->writer))
		return;
	if (eq->redirect) {
		egress_move_to_rollup(eq);
		return;
	}
	if (!egress_route_ready(eq) || !q->n_ready)
		return;
	if (eq->redirect) {
		/* the lookup that just answered made it a rollup member */
		egress_move_to_rollup(eq);
		return;
	}
	/* Idle sessions first: they cost nothing to reuse. */
	for (struct egress_conn *c = eq->conns; c && q->n_ready; c = c->next)
		if (c->idle && c->cli && !conn_give_txn(c) && !q->n_ready)
			break;
	now = loop_now_ms();
	/* One more session only while the backlog is more than the open ones
	 * carry in about a second; each pick is a unit within its window whose
	 * sockets are not backed off, so a failure cannot be picked again. */
	while (egress_wants_session(eq) && (v = egress_pick_vmta(eq, now)) >= 0)
		if (!conn_new(eq, (size_t)v))
			break;
}
