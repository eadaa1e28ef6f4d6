/*
 * bounce_intake.c - mail for the bounce domain: asynchronous bounces (DSNs)
 * and feedback-loop complaints (ARF). Never queued for delivery.
 *
 * Tying a report to what Salvo sent: the address it was mailed to is our
 * VERP return path b-<id>-<idx>-<hmac>@bounce-domain (or, for complaints
 * sent to a fixed FBL address, the Return-Path inside the quoted original).
 * Only a path whose HMAC verifies is believed: a forged bounce changes
 * nothing. The verified (id, idx) names a delivery in the "sent" index,
 * which gives the recipient, the sender and the campaign.
 *
 * Effects, in one writer commit: a hard DSN failure suppresses the
 * recipient (async-bounce), a quota failure counts as a soft bounce, a
 * complaint suppresses (complaint); `bounce` (kind dsn) and `feedback`
 * (kind arf) records go into the outbox (queue/outbox.h) in the same
 * commit; then the SMTP client gets its 250.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/acct_log.h"
#include "core/config.h"
#include "engine/bounce_report.h"
#include "engine/engine.h"
#include "engine/verp.h"
#include "net/smtp_server.h"
#include "queue/outbox.h"
#include "queue/sent.h"
#include "queue/suppress.h"

#define MAX_MATCHES 8

struct match {
	uint64_t id;
	struct sent_rec sent;
	const struct bounce_rcpt *what;   /* DSN: the recipient block it answers to */
	const char *category;
	bool suppress_hard, suppress_soft;
};

struct bounce_req {
	struct spool_req req;
	struct mailbox_item link;
	struct worker *worker;
	struct smtp_session *session;   /* NULL: no reply owed (mixed envelope) */
	struct bounce_report rep;
	struct match m[MAX_MATCHES];
	size_t n;
	int64_t time_ms;
	int result;
	struct config_gen *gen;         /* the worker's when submitted: m[].category points into it */
};

static void bounce_req_free(struct bounce_req *b)
{
	config_gen_put(b->gen);
	free(b);
}

/* Find what (id, idx) VERP addr names; 0 when it verified and was found. */
static int match_verp(struct engine *eng, struct spool_rtxn *rt, const char *addr, struct match *m)
{
	uint32_t idx;

	if (verp_decode(spool_verp_key(eng->spool), addr, &m->id, &idx) != VERP_OK)
		return -1;
	return sent_get(rt, m->id, idx, &m->sent) == 0 ? 0 : -1;
}

static const struct bounce_rcpt *dsn_block_for(const struct bounce_report *r, const char *rcpt)
{
	for (size_t i = 0; i < r->n_rcpts; i++)
		if (!strcasecmp(r->rcpts[i].addr, rcpt))
			return &r->rcpts[i];
	return r->n_rcpts == 1 ? &r->rcpts[0] : NULL; /* a redacted or rewritten address */
}

static void decide(const struct config *cfg, struct bounce_req *b, struct match *m)
{
	const struct bounce_rcpt *x;
	const char *o;

	if (b->rep.kind == BOUNCE_KIND_ARF) {
		m->category = "complaint";
		m->suppress_hard = true;
		return;
	}
	x = dsn_block_for(&b->rep, m->sent.recipient);
	if (!x)
		return;
	m->what = x;
	if (!bounce_rcpt_failed(x))
		return; /* delayed, delivered, relayed: not a bounce, a remote status (rs) */
	o = config_category_override(cfg, x->diag);
	m->category = o ? o : bounce_rcpt_category(x);
	m->suppress_hard = bounce_category_hard(m->category);
	m->suppress_soft = !m->suppress_hard && !strcmp(m->category, "quota-issues");
}

static int bounce_apply(struct spool_req *req, struct spool_wtxn *t, void *ctx)
{
	struct bounce_req *b = container_of(req, struct bounce_req, req);
	int rc = 0;

	(void)ctx;
	for (size_t i = 0; i < b->n && !rc; i++) {
		struct match *m = &b->m[i];
		char reason[300];

		if (!m->suppress_hard && !m->suppress_soft)
			continue;
		if (b->rep.kind == BOUNCE_KIND_ARF)
			snprintf(reason, sizeof(reason), "feedback report: %s", b->rep.feedback_type);
		else
			snprintf(reason, sizeof(reason), "%s %.250s", m->what->status, m->what->diag);
		rc = suppress_put(t, m->sent.recipient,
				  b->rep.kind == BOUNCE_KIND_ARF ? SUPPRESS_COMPLAINT
				  : m->suppress_hard		 ? SUPPRESS_ASYNC_BOUNCE
								 : SUPPRESS_SOFT_BOUNCE,
				  reason, b->time_ms, b->gen->cfg.soft_bounce_suppress_after, NULL);
	}
	/* the records, committed with what they report: a bounce or complaint,
	 * or a DSN's other news (delayed, delivered, ...: remote_status) */
	for (size_t i = 0; i < b->n && !rc; i++) {
		const struct match *m = &b->m[i];
		bool arf = b->rep.kind == BOUNCE_KIND_ARF;
		bool status = !arf && !m->category && m->what;
		struct acct_event ev = {
			.type = arf ? ACCT_FEEDBACK : status ? ACCT_REMOTE_STATUS : ACCT_BOUNCE,
			.time_ms = b->time_ms,
			.id = m->id,
			.sender = m->sent.sender,
			.recipient = m->sent.recipient,
			.campaign = m->sent.campaign[0] ? m->sent.campaign : NULL,
			.kind = arf ? "arf" : "dsn",
			.bounce_category = m->category,
			.response_code = m->what ? m->what->code : 0,
			.response_enhanced = m->what ? m->what->status : NULL,
			.response_text = arf ? b->rep.feedback_type : m->what ? m->what->diag : NULL,
			.dsn_action = status ? (m->what->action[0] ? m->what->action : "delayed") : NULL,
		};

		if (m->category || status)
			rc = outbox_put(t, &ev);
	}
	return rc;
}

static void bounce_done(struct spool_req *req, int result, void *ctx)
{
	struct bounce_req *b = container_of(req, struct bounce_req, req);

	(void)ctx;
	b->result = result;
	if (!b->session) {
		bounce_req_free(b);
		return;
	}
	b->link.kind = WORKER_MAIL_BOUNCE;
	mailbox_post(&b->worker->mb, &b->link);
}

void bounce_intake_replied(struct worker *w, struct mailbox_item *it)
{
	struct bounce_req *b = container_of(it, struct bounce_req, link);

	(void)w;
	smtp_session_submitted(b->session, b->result == 0 ? "250 2.0.0 Ok: report received"
					     : "451 4.3.0 Error: cannot record the report, try again");
	bounce_req_free(b);
}

void bounce_intake_discard(struct mailbox_item *it)
{
	bounce_req_free(container_of(it, struct bounce_req, link));
}

void bounce_intake_submit(struct worker *w, struct smtp_session *s, const struct smtp_envelope *env,
			  const char *body, size_t len)
{
	struct engine *eng = w->eng;
	struct bounce_req *b = calloc(1, sizeof(*b));
	struct spool_rtxn *rt = NULL;
	size_t forged = 0;

	if (!b) {
		if (s)
			smtp_session_submitted(s, "451 4.3.0 Error: out of memory");
		return;
	}
	b->worker = w;
	config_gen_ref(w->gen);
	b->gen = w->gen;
	b->session = s;
	b->time_ms = wall_now_ms();
	bounce_report_parse(body, len, &b->rep);
	if ((b->rep.kind == BOUNCE_KIND_DSN || b->rep.kind == BOUNCE_KIND_ARF) &&
	    spool_rtxn_begin(eng->spool, &rt) == 0) {
		for (size_t i = 0; i < env->n_rcpts && b->n < MAX_MATCHES; i++) {
			if (!intake_is_bounce_rcpt(w->cfg, env->rcpts[i]))
				continue;
			if (match_verp(eng, rt, env->rcpts[i], &b->m[b->n]) == 0)
				b->n++;
			else if (!strncasecmp(env->rcpts[i], "b-", 2))
				forged++;
		}
		/* a complaint to a fixed FBL address: the quoted original's Return-Path */
		if (!b->n && b->rep.orig_sender[0] && match_verp(eng, rt, b->rep.orig_sender, &b->m[0]) == 0)
			b->n = 1;
		spool_rtxn_end(rt);
	}
	for (size_t i = 0; i < b->n; i++)
		decide(w->cfg, b, &b->m[i]);
	if (forged && !b->n)
		fprintf(stderr, "salvod: a report for %zu return path(s) that do not verify was ignored (forged?)\n",
			forged);
	if (!b->n) {
		/* Nothing of ours: no commit (the writer is for mail we sent),
		 * only a count. An unmatched report may be anyone's noise. */
		__atomic_fetch_add(&eng->counters.reports_unmatched, 1, __ATOMIC_RELAXED);
		if (s)
			smtp_session_submitted(s, "250 2.0.0 Ok: report received");
		bounce_req_free(b);
		return;
	}
	b->req.apply = bounce_apply;
	b->req.done = bounce_done;
	spool_writer_submit(&eng->writer, &b->req);
}
