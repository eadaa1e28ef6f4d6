/*
 * outcome.c - retry policy and durable outcomes of delivery attempts
 * (see outcome.h).
 *
 * The batch's apply() runs in the writer's group commit: DSN first (it quotes
 * the original's headers, which may disappear with the last recipient), then
 * each recipient's new state or removal. Its done() writes the accounting
 * records and routes the DSN's recipient to its shard; both only after the
 * commit, so the log never claims what the spool does not hold.
 *
 * A batch that fails to commit stays owned here: finished recipients have
 * already left the scheduler, so dropping the batch would strand them until
 * a restart. It goes back to the writer (spool_writer_retry) after a delay
 * that doubles from OUTCOME_RETRY_MIN_MS to OUTCOME_RETRY_MAX_MS, for as
 * long as the error passes (a full disk; DSNs may use the spool's reserve,
 * see spool_put_msg_reserve). Only a fatal error or shutdown ends it: then
 * the spool still holds the old state and the next start retries.
 */
#include "engine/outcome.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/acct_log.h"
#include "core/config.h"
#include "engine/accept_store.h"
#include "engine/bounce_dsn.h"
#include "engine/bounce_report.h"
#include "engine/campaign.h"
#include "engine/delete.h"
#include "engine/engine.h"
#include "queue/outbox.h"
#include "queue/sent.h"
#include "queue/spool_writer.h"
#include "queue/suppress.h"

#define OUTCOME_RETRY_MIN_MS 20
#define OUTCOME_RETRY_MAX_MS 5000

struct outcome_item {
	uint32_t idx;
	enum outcome_kind kind;
	uint32_t attempt;
	int64_t queued_ms;
	int64_t next_ms;
	struct smtp_result res;
	char *addr;
	bool applied;              /* the last apply changed the spool (campaign counts) */
	uint8_t notify;            /* its RFC 3461 NOTIFY (SPOOL_NOTIFY_*), read in apply */
	char *orcpt;               /* its ORCPT "type;address", read in apply; NULL none */
	bool found;                /* its spool record, read in apply, was there */
	uint32_t cur_attempts;     /* and its attempts then */
	bool was_deferred;         /* it had failed attempts before this outcome */
};

struct outcome_batch {
	struct spool_req req;
	struct engine *eng;
	uint64_t msg_id;
	char *sender;
	int64_t queued_ms;
	size_t size;
	char *queue, *mx_host, *mx_ip, *vmta, *source_ip, *pool, *campaign, *tls;
	char *src_type, *esmtp, *headers, *envid;
	bool verp;
	bool peer_dsn;             /* outcome_route.peer_dsn */
	int64_t time_ms;
	/* the DSN, built once even if the batch is re-applied alone */
	char *dsn;
	size_t dsn_len;
	uint64_t dsn_id;
	bool dsn_stored;
	unsigned tries;            /* failed commits so far */
	size_t n, cap;
	struct outcome_item items[];
};

enum outcome_kind outcome_decide(const struct smtp_result *res, uint32_t attempts,
				 int64_t queued_ms, int64_t now_ms,
				 const struct config_domain *dom, bool backoff, int64_t *next_ms)
{
	const uint64_t *retry = dom->retry_after_ms;
	size_t step, n_retry = dom->n_retry_after;

	if (res->code >= 200 && res->code < 300)
		return OUTCOME_DELIVERED;
	if (res->code >= 500 && res->code < 600)
		return OUTCOME_BOUNCED;
	/* 4xx, no reply at all, or nonsense codes: try again later. */
	if (now_ms - queued_ms >= (int64_t)dom->bounce_after_ms)
		return OUTCOME_EXPIRED;
	if (backoff && dom->n_backoff_retry_after) {
		retry = dom->backoff_retry_after_ms;
		n_retry = dom->n_backoff_retry_after;
	}
	step = attempts ? attempts - 1 : 0;
	if (step >= n_retry)
		step = n_retry - 1;
	*next_ms = now_ms + (int64_t)retry[step];
	/* Never schedule past the expiry: the last try happens at bounce-after. */
	if (*next_ms > queued_ms + (int64_t)dom->bounce_after_ms)
		*next_ms = queued_ms + (int64_t)dom->bounce_after_ms;
	return OUTCOME_DEFERRED;
}

void outcome_rcpt_retry(const struct config_domain *dom, int64_t queued_ms, int64_t now_ms, int64_t *next_ms)
{
	if (!dom->retry_recipients_after_ms)
		return;
	*next_ms = now_ms + (int64_t)dom->retry_recipients_after_ms;
	if (*next_ms > queued_ms + (int64_t)dom->bounce_after_ms)
		*next_ms = queued_ms + (int64_t)dom->bounce_after_ms;
}

/* Synchronous replies use the same categories as asynchronous reports,
 * knowing the stage exactly: a "user unknown" refusing RCPT TO is a bad
 * mailbox, one answering DATA a filter (bounce_reply_category). The
 * operator's <bounce-category-patterns> come first. */
static const char *category_of(const struct config *cfg, const struct smtp_result *r)
{
	char line[320];
	const char *o;

	if (cfg->n_category_patterns) {
		snprintf(line, sizeof(line), "%d %s%s%s", r->code, r->enhanced, r->enhanced[0] ? " " : "", r->text);
		if ((o = config_category_override(cfg, line)))
			return o;
	}
	return bounce_reply_category(r->code, r->enhanced, r->text, r->after_data ? BOUNCE_PHASE_DATA : BOUNCE_PHASE_RCPT);
}

static void batch_free(struct outcome_batch *b);

/* *dst = a copy of src (NULL stays NULL); -1 on ENOMEM. */
static int dup_opt(char **dst, const char *src)
{
	*dst = src ? strdup(src) : NULL;
	return src && !*dst ? -1 : 0;
}

struct outcome_batch *outcome_batch_new(struct engine *eng, uint64_t msg_id, const char *sender,
					int64_t queued_ms, size_t size, const struct outcome_route *route,
					size_t n_max)
{
	struct outcome_batch *b = calloc(1, sizeof(*b) + n_max * sizeof(b->items[0]));

	if (!b)
		return NULL;
	b->eng = eng;
	b->msg_id = msg_id;
	b->queued_ms = queued_ms;
	b->size = size;
	b->cap = n_max;
	b->time_ms = wall_now_ms();
	b->sender = strdup(sender ? sender : "");
	b->queue = strdup(route->queue ? route->queue : "");
	b->verp = route->verp;
	b->peer_dsn = route->peer_dsn;
	if (!b->sender || !b->queue || dup_opt(&b->mx_host, route->mx_host) || dup_opt(&b->mx_ip, route->mx_ip) ||
	    dup_opt(&b->vmta, route->vmta) || dup_opt(&b->source_ip, route->source_ip) ||
	    dup_opt(&b->pool, route->pool) || dup_opt(&b->campaign, route->campaign) || dup_opt(&b->tls, route->tls) ||
	    dup_opt(&b->src_type, route->src_type) || dup_opt(&b->esmtp, route->esmtp) ||
	    dup_opt(&b->headers, route->headers) || dup_opt(&b->envid, route->envid && *route->envid ? route->envid : NULL)) {
		batch_free(b);
		return NULL;
	}
	return b;
}

void outcome_batch_add(struct outcome_batch *b, uint32_t idx, const char *addr,
		       enum outcome_kind kind, uint32_t attempt, int64_t queued_ms, int64_t next_ms,
		       const struct smtp_result *res)
{
	struct outcome_item *it;

	if (b->n >= b->cap) {
		fprintf(stderr, "outcome_batch_add: batch overflow (%zu)\n", b->cap);
		abort();
	}
	it = &b->items[b->n];
	it->addr = strdup(addr);
	if (!it->addr) {
		/* The spool keeps the old state; the attempt is retried after a restart. */
		fprintf(stderr, "salvod: out of memory recording an outcome for %016llx\n",
			(unsigned long long)b->msg_id);
		return;
	}
	it->idx = idx;
	it->kind = kind;
	it->attempt = attempt;
	it->queued_ms = queued_ms;
	it->next_ms = next_ms;
	it->res = *res;
	b->n++;
}

static void batch_free(struct outcome_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->items[i].addr);
		free(b->items[i].orcpt);
	}
	free(b->dsn);
	free(b->sender);
	free(b->queue);
	free(b->mx_host);
	free(b->mx_ip);
	free(b->vmta);
	free(b->source_ip);
	free(b->pool);
	free(b->src_type);
	free(b->esmtp);
	free(b->headers);
	free(b->envid);
	free(b->campaign);
	free(b->tls);
	free(b);
}

/* The DSN action this outcome reports to the sender, or NULL for none
 * (RFC 3461 4.1): failures unless NOTIFY was given without FAILURE; the
 * first deferral only under NOTIFY=DELAY; a delivery only under
 * NOTIFY=SUCCESS to a receiver that could not take NOTIFY on. */
static const char *item_dsn_action(const struct outcome_batch *b, const struct outcome_item *it)
{
	bool given = it->notify & SPOOL_NOTIFY_GIVEN;

	switch (it->kind) {
	case OUTCOME_BOUNCED:
	case OUTCOME_EXPIRED:
		return !given || (it->notify & SPOOL_NOTIFY_FAILURE) ? "failed" : NULL;
	case OUTCOME_DEFERRED:
		return (it->notify & SPOOL_NOTIFY_DELAY) && it->attempt == 1 ? "delayed" : NULL;
	case OUTCOME_DELIVERED:
		return (it->notify & SPOOL_NOTIFY_SUCCESS) && !b->peer_dsn ? "relayed" : NULL;
	default:
		return NULL;
	}
}

static bool batch_wants_dsn(const struct outcome_batch *b)
{
	if (!b->sender[0])
		return false; /* never bounce a bounce */
	for (size_t i = 0; i < b->n; i++)
		if (item_dsn_action(b, &b->items[i]))
			return true;
	return false;
}

/* Each item's spool record as the apply finds it (before it changes it):
 * there or not, attempts, NOTIFY and ORCPT. A recipient already gone (a
 * duplicate outcome) has none. */
static int batch_read_params(struct outcome_batch *b, struct spool_wtxn *t)
{
	for (size_t i = 0; i < b->n; i++) {
		struct outcome_item *it = &b->items[i];
		struct spool_rcpt cur;
		int ret = spool_wtxn_get_rcpt(t, b->msg_id, it->idx, &cur);

		free(it->orcpt);
		it->orcpt = NULL;
		it->notify = 0;
		it->found = false;
		if (ret == SPOOL_NOTFOUND)
			continue;
		if (ret)
			return ret;
		it->found = true;
		it->cur_attempts = cur.attempts;
		it->notify = cur.notify;
		if (cur.orcpt[0] && !(it->orcpt = strdup(cur.orcpt)))
			return -ENOMEM;
	}
	return 0;
}

static void format_diag(const struct smtp_result *r, char *out, size_t cap)
{
	if (r->code)
		snprintf(out, cap, "%d %s%s%s", r->code, r->enhanced, r->enhanced[0] ? " " : "", r->text);
	else
		snprintf(out, cap, "%s", r->text);
}

static bool category_is_hard(const char *c)
{
	return bounce_category_hard(c);
}

/* What a bounce does to the suppression list (in the outcome's commit). */
static int batch_suppress(struct outcome_batch *b, struct spool_wtxn *t, const struct outcome_item *it)
{
	struct config_gen *g = engine_config_get(b->eng);
	const char *cat = category_of(&g->cfg, &it->res);
	char reason[300];
	int rc = 0;

	if (category_is_hard(cat) || !strcmp(cat, "quota-issues")) {
		format_diag(&it->res, reason, sizeof(reason));
		rc = suppress_put(t, it->addr, category_is_hard(cat) ? SUPPRESS_SYNC_BOUNCE : SUPPRESS_SOFT_BOUNCE,
				  reason, b->time_ms, g->cfg.soft_bounce_suppress_after, NULL);
	}
	config_gen_put(g);
	return rc;
}

struct dsn_scratch {
	char diag[300];
};

/* Remote-MTA (RFC 3464 2.3.5, "dns;"): the host's name without a port; an
 * IP literal in brackets only when there is no name (an IP route, or no
 * name known but the address). NULL when neither is known. */
static const char *remote_mta(const char *host, const char *ip, char *buf, size_t cap)
{
	struct in6_addr a6;
	struct in_addr a4;
	size_t n;

	if (host && host[0] == '[') {
		n = strcspn(host, "]");
		if (host[n] == ']' && n + 2 <= cap) {
			memcpy(buf, host, n + 1);
			buf[n + 1] = 0;
			return buf;
		}
		host = NULL;
	}
	if (host && host[0]) {
		/* "name", "name:port", "1.2.3.4:port"; a bare IPv6 address has
		 * more than one colon and is an address, not a name */
		const char *colon = strchr(host, ':');

		n = colon && !strchr(colon + 1, ':') ? (size_t)(colon - host) : strlen(host);
		if (n && n < cap) {
			memcpy(buf, host, n);
			buf[n] = 0;
			if (inet_pton(AF_INET, buf, &a4) != 1 && !strchr(buf, ':'))
				return buf;
			if (n + 3 <= cap) {
				memmove(buf + 1, buf, n);
				buf[0] = '[';
				buf[n + 1] = ']';
				buf[n + 2] = 0;
				return buf;
			}
		}
	}
	if (ip && ip[0] && (inet_pton(AF_INET, ip, &a4) == 1 || inet_pton(AF_INET6, ip, &a6) == 1)) {
		snprintf(buf, cap, "[%s]", ip);
		return buf;
	}
	return NULL;
}

static int batch_build_dsn(struct outcome_batch *b, struct spool_wtxn *t)
{
	char mta[300];
	struct dsn_scratch *sc;
	struct dsn_rcpt *rcpts;
	struct spool_msg m;
	struct dsn_info info;
	struct config_gen *gen;
	size_t n = 0;
	int ret;

	ret = spool_wtxn_get_msg(t, b->msg_id, &m);
	if (ret)
		return ret == SPOOL_NOTFOUND ? 0 : ret;
	sc = calloc(b->n, sizeof(*sc));
	rcpts = calloc(b->n, sizeof(*rcpts));
	if (!sc || !rcpts) {
		free(sc);
		free(rcpts);
		return -ENOMEM;
	}
	for (size_t i = 0; i < b->n; i++) {
		const struct outcome_item *it = &b->items[i];

		const char *action = item_dsn_action(b, it);

		if (!action)
			continue;
		format_diag(&it->res, sc[n].diag, sizeof(sc[n].diag));
		rcpts[n] = (struct dsn_rcpt){
			.addr = it->addr,
			.action = action,
			.orcpt = it->orcpt,
			/* none: bounce_dsn gives the action's (2.0.0, 4.0.0, 5.0.0) */
			.status = it->res.enhanced[0] ? it->res.enhanced : it->kind == OUTCOME_EXPIRED ? "4.4.7" : NULL,
			.remote_mta = remote_mta(b->mx_host, b->mx_ip, mta, sizeof(mta)),
			.diagnostic = sc[n].diag,
			.last_attempt_ms = b->time_ms,
		};
		n++;
	}
	memset(&info, 0, sizeof(info));
	gen = engine_config_get(b->eng);
	info.reporting_mta = gen->cfg.host_name;
	info.sender = b->sender;
	info.orig_id = b->msg_id;
	info.dsn_id = b->dsn_id;
	info.orig = m.body;
	info.orig_len = m.body_len;
	info.arrival_ms = b->queued_ms;
	info.envid = m.envid;
	info.ret = m.ret;
	info.rcpts = rcpts;
	info.n_rcpts = n;
	ret = dsn_build(&info, &b->dsn, &b->dsn_len);
	config_gen_put(gen);
	free(rcpts);
	free(sc);
	return ret;
}

/* The DSN as an accept_store batch: one message, to the original sender,
 * due now, no reception record (it is not mail anybody sent us). */
static struct accept_batch *dsn_accept(struct outcome_batch *b, struct accept_batch *ab, struct accept_msg *am)
{
	*am = (struct accept_msg){.body = b->dsn, .len = b->dsn_len, .id = b->dsn_id, .count = 1};
	*ab = (struct accept_batch){
		.eng = b->eng,
		.sender = "",
		.campaign = "",
		.source_ip = "",
		.src_type = SPOOL_SRC_LOCAL,
		.arrival_ms = b->time_ms,
		.due_ms = b->time_ms,
		.ids_given = true,
		.reserve = true,
		.rcpts = (const char *const *)&b->sender,
		.msgs = am,
		.n_msgs = 1,
	};
	return ab;
}

/* The campaign's durable totals: what this commit finished. */
static int campaign_totals_put(const struct outcome_batch *b, struct spool_wtxn *t)
{
	struct campaign_totals tot = {0};

	if (!b->campaign || !b->campaign[0])
		return 0;
	for (size_t i = 0; i < b->n; i++) {
		const struct outcome_item *it = &b->items[i];

		if (!it->applied)
			continue;
		tot.delivered += it->kind == OUTCOME_DELIVERED;
		tot.bounced += it->kind == OUTCOME_BOUNCED || it->kind == OUTCOME_EXPIRED;
		tot.expired += it->kind == OUTCOME_EXPIRED;
		tot.suppressed += it->kind == OUTCOME_SUPPRESSED;
	}
	if (!tot.delivered && !tot.bounced && !tot.suppressed)
		return 0;
	return campaign_stats_add(t, b->campaign, &tot);
}

static const enum acct_type kind_type[] = {
	[OUTCOME_DELIVERED] = ACCT_DELIVERY,
	[OUTCOME_DEFERRED] = ACCT_TRANSIENT,
	[OUTCOME_BOUNCED] = ACCT_BOUNCE,
	[OUTCOME_EXPIRED] = ACCT_EXPIRATION,
	[OUTCOME_SUPPRESSED] = ACCT_SUPPRESSED,
};

/* The batch's accounting records, one per item, committed with it. */
static int outcome_records(struct outcome_batch *b, struct spool_wtxn *t)
{
	struct config_gen *gen = engine_config_get(b->eng);
	int ret = 0;

	for (size_t i = 0; i < b->n; i++) {
		const struct outcome_item *it = &b->items[i];
		bool failed = it->kind == OUTCOME_BOUNCED || it->kind == OUTCOME_EXPIRED;
		struct acct_event ev = {
			.type = kind_type[it->kind],
			.time_ms = b->time_ms,
			.id = b->msg_id,
			.sender = b->sender,
			.recipient = it->addr,
			.queue = b->queue,
			.mx_host = b->mx_host,
			.mx_ip = b->mx_ip,
			.vmta = b->vmta,
			.source_ip = b->source_ip,
			.campaign = b->campaign && b->campaign[0] ? b->campaign : NULL,
			.tls = b->tls,
			.attempt = it->attempt,
			.queued_time_ms = it->queued_ms,
			.size = b->size,
			.has_size = true,
			.response_code = it->res.code,
			.response_enhanced = it->res.enhanced,
			.response_text = it->res.text,
			.bounce_category = failed ? (it->kind == OUTCOME_EXPIRED ? "message-expired" : category_of(&gen->cfg, &it->res)) : NULL,
			.dsn_id = failed && b->dsn_stored ? b->dsn_id : 0,
			.src_type = b->src_type,
			.pool = b->pool && *b->pool ? b->pool : NULL,
			.esmtp = b->esmtp,
			.headers = b->headers,
			.envid = b->envid,
			.orcpt = it->orcpt,
		};

		if ((ret = outbox_put(t, &ev)))
			break;
	}
	config_gen_put(gen);
	return ret;
}

static int outcome_apply(struct spool_req *req, struct spool_wtxn *t, void *ctx)
{
	struct outcome_batch *b = container_of(req, struct outcome_batch, req);
	int ret;

	b->dsn_stored = false;
	if ((ret = batch_read_params(b, t)))
		return ret;
	if (batch_wants_dsn(b)) {
		ret = spool_alloc_id(t, &b->dsn_id);
		if (ret)
			return ret;
		free(b->dsn);
		b->dsn = NULL;
		ret = batch_build_dsn(b, t);
		if (ret)
			return ret;
		if (b->dsn) {
			struct accept_batch ab;
			struct accept_msg am;

			if ((ret = accept_store_put(dsn_accept(b, &ab, &am), t)))
				return ret;
			b->dsn_stored = true;
		}
	}
	for (size_t i = 0; i < b->n; i++) {
		struct outcome_item *it = &b->items[i];
		bool gone;

		it->applied = false;
		/* attempt counts this one, except for a suppression (no attempt) */
		it->was_deferred = it->attempt > (it->kind == OUTCOME_SUPPRESSED ? 0u : 1u);
		if (it->kind == OUTCOME_DEFERRED) {
			char resp[300];

			/* A retried outcome may come after a newer one: never bring
			 * back a finished recipient, never undo a later attempt
			 * (the record as batch_read_params found it). */
			if (!it->found || it->cur_attempts >= it->attempt)
				continue;

			struct spool_rcpt r = {
				.msg_id = b->msg_id,
				.idx = it->idx,
				.attempts = it->attempt,
				.next_attempt_ms = it->next_ms,
				.queued_ms = it->queued_ms,
				.addr = it->addr,
				.last_response = resp,
				.pool = b->pool,
				.notify = it->notify,
				.orcpt = it->orcpt,
			};

			format_diag(&it->res, resp, sizeof(resp));
			ret = spool_put_rcpt(t, &r);
			it->applied = ret == 0;
			it->was_deferred = it->cur_attempts > 0;
		} else {
			ret = spool_del_rcpt(t, b->msg_id, it->idx, &gone);
			it->applied = ret == 0;
			if (ret == SPOOL_NOTFOUND)
				ret = 0; /* already finished (a duplicate attempt after recovery) */
			if (!ret && it->kind == OUTCOME_BOUNCED)
				ret = batch_suppress(b, t, it);
			else if (!ret && it->kind == OUTCOME_DELIVERED && b->verp)
				ret = sent_put(t, b->msg_id, it->idx, it->addr, b->sender, b->campaign, b->time_ms);
		}
		if (ret)
			return ret;
	}
	if ((ret = campaign_totals_put(b, t)))
		return ret;
	return outcome_records(b, t);
}

static const enum campaign_end kind_end[] = {
	[OUTCOME_DELIVERED] = CAMPAIGN_END_DELIVERED,
	[OUTCOME_DEFERRED] = CAMPAIGN_END_DEFERRED,
	[OUTCOME_BOUNCED] = CAMPAIGN_END_BOUNCED,
	[OUTCOME_EXPIRED] = CAMPAIGN_END_EXPIRED,
	[OUTCOME_SUPPRESSED] = CAMPAIGN_END_SUPPRESSED,
};

/* Finished recipients are no longer deletable: their tombstones go, now
 * that the outcome is durable (delete.h); also when it could not be
 * recorded (the recipient then waits for a restart, out of the scheduler). */
static void forget_finished(struct engine *eng, const struct outcome_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->items[i].kind != OUTCOME_DEFERRED)
			delete_forget(eng, b->msg_id, b->items[i].idx);
}

/* What the commit changed, to the campaign's counters. */
static void note_campaign(struct engine *eng, const struct outcome_batch *b)
{
	uint32_t id = b->campaign && b->campaign[0] ? campaign_find(eng->campaigns, b->campaign) : CAMPAIGN_NONE;

	for (size_t i = 0; id != CAMPAIGN_NONE && i < b->n; i++)
		if (b->items[i].applied)
			campaign_note_end(eng->campaigns, id, kind_end[b->items[i].kind], b->items[i].was_deferred);
}

static void outcome_done(struct spool_req *req, int result, void *ctx)
{
	struct outcome_batch *b = container_of(req, struct outcome_batch, req);
	struct engine *eng = ctx;

	if (result != 0) {
		unsigned delay = OUTCOME_RETRY_MIN_MS << (b->tries < 8 ? b->tries : 8);

		if (delay > OUTCOME_RETRY_MAX_MS)
			delay = OUTCOME_RETRY_MAX_MS;
		b->tries++;
		if (!spool_is_fatal(result) && spool_writer_retry(&eng->writer, &b->req, delay)) {
			if (b->tries == 1 || b->tries % 20 == 0)
				fprintf(stderr, "salvod: outcome of %016llx not recorded yet (%s, try %u); trying again in %u ms\n",
					(unsigned long long)b->msg_id, spool_strerror(result), b->tries, delay);
			return;
		}
		fprintf(stderr, "salvod: outcome of %016llx not recorded (%s); it is retried after a restart\n",
			(unsigned long long)b->msg_id, spool_strerror(result));
		forget_finished(eng, b);
		batch_free(b);
		return;
	}
	if (b->tries)
		fprintf(stderr, "salvod: outcome of %016llx recorded after %u failed tries\n",
			(unsigned long long)b->msg_id, b->tries);
	note_campaign(eng, b);
	forget_finished(eng, b);
	if (b->dsn_stored) {
		struct accept_batch ab;
		struct accept_msg am;

		accept_store_committed(dsn_accept(b, &ab, &am));
	}
	batch_free(b);
}

void outcome_batch_submit(struct outcome_batch *b)
{
	if (b->n == 0) {
		batch_free(b);
		return;
	}
	b->req.apply = outcome_apply;
	b->req.done = outcome_done;
	spool_writer_submit(&b->eng->writer, &b->req);
}
