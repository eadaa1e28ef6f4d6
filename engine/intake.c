/*
 * intake.c - what the SMTP listener does with mail: relay policy for each
 * RCPT, and durable storage of each message before its "250".
 *
 * Relay control: a recipient is accepted only when the client's address
 * matches a <source> with always-allow-relaying (Salvo has no local
 * mailboxes yet, so every recipient is a relay). Never an open relay.
 *
 * Pool and campaign: X-Virtual-MTA (a pool or virtual MTA name) and X-Job
 * (the campaign id) are honoured when the client's <source> says so
 * (process-x-virtual-mta, process-x-job), and always removed from the
 * stored message: they are for the MTA, not the recipient. Without a valid
 * X-Virtual-MTA a message goes to the source's default-virtual-mta, else
 * the default pool.
 *
 * Storage: a message becomes an intake_req, a spool request that the writer
 * thread applies in its next group commit (message body once, one record per
 * recipient, all due now). After the commit, on the writer thread, the
 * reception records are logged, each recipient goes to its shard, and the
 * request returns to the session's worker, which sends the reply.
 *
 * Ownership: the intake_req owns the envelope and body from submit until the
 * writer's done(), which frees them; the req itself is freed by the worker
 * once the reply is out (or by intake_discard() at shutdown).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/acct_log.h"
#include "core/config.h"
#include "engine/auth.h"
#include "engine/dkim.h"
#include "engine/engine.h"
#include "engine/msg_headers.h"
#include "net/smtp_cmd.h"
#include "queue/suppress.h"
#include "net/smtp_server.h"
#include "net/addr_window.h"
#include <netinet/in.h>

struct intake_req {
	struct spool_req req;
	struct mailbox_item link;
	struct worker *worker;
	struct smtp_session *session;
	struct smtp_envelope *env;
	char *body;
	size_t len;
	uint64_t msg_id;
	int64_t arrival_ms;
	size_t pool;
	char campaign[128];
	int result;
};

static const char *addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : addr;
}

bool intake_is_bounce_rcpt(const struct config *cfg, const char *addr)
{
	return cfg->bounce_domain && strcasecmp(addr_domain(addr), cfg->bounce_domain) == 0;
}

static bool intake_rcpt(void *ctx, struct smtp_session *s, const char *addr, char *reply, size_t cap)
{
	struct worker *w = ctx;
	const struct config *cfg = w->eng->cfg;
	const struct config_source *src = config_source_for(cfg, smtp_session_peer(s));
	struct spool_rtxn *rt;
	bool suppressed = false;

	/* Bounces and complaints for the bounce domain come from anyone: they
	 * go to the bounce processor, never into the queue. Strangers get a
	 * budget of reports per address (bounce-max-reports-per-ip). */
	if (intake_is_bounce_rcpt(cfg, addr)) {
		if (!smtp_session_trusted(s) && w->eng->bounce_reports &&
		    addr_window_full(w->eng->bounce_reports, smtp_session_peer(s), loop_now_ms())) {
			__atomic_fetch_add(&w->eng->counters.reports_refused, 1, __ATOMIC_RELAXED);
			snprintf(reply, cap, "452 4.7.1 <%s>: Too many reports from your address, try again later", addr);
			return false;
		}
		snprintf(reply, cap, "250 2.1.5 Ok");
		return true;
	}
	/* relaying: a source that allows it (and does not demand AUTH), or an
	 * authenticated session */
	if (!smtp_session_user(s) && (!src || !src->always_allow_relaying || src->require_auth)) {
		snprintf(reply, cap, "550 5.7.1 <%s>: Relay access denied%s", addr,
			 src && src->require_auth ? " (authentication required)" : "");
		return false;
	}
	if (spool_rtxn_begin(w->eng->spool, &rt) == 0) {
		suppressed = suppress_check(rt, addr);
		spool_rtxn_end(rt);
	}
	if (suppressed) {
		snprintf(reply, cap, "550 5.7.1 <%s>: Recipient address is on the suppression list", addr);
		return false;
	}
	snprintf(reply, cap, "250 2.1.5 Ok");
	return true;
}

static const struct config *eng_cfg(void *ctx)
{
	return ((struct engine *)ctx)->cfg;
}

static int intake_apply(struct spool_req *req, struct spool_wtxn *t, void *ctx)
{
	struct intake_req *ir = container_of(req, struct intake_req, req);
	struct spool_msg m = {0};
	int ret;

	ret = spool_alloc_id(t, &ir->msg_id);
	if (ret)
		return ret;
	m.id = ir->msg_id;
	m.arrival_ms = ir->arrival_ms;
	m.n_rcpt = (uint32_t)ir->env->n_rcpts;
	m.sender = ir->env->sender;
	m.campaign = ir->campaign;
	m.source_ip = ir->env->client_ip;
	m.body = ir->body;
	m.body_len = ir->len;
	ret = spool_put_msg(t, &m);
	for (size_t i = 0; ret == 0 && i < ir->env->n_rcpts; i++) {
		struct spool_rcpt r = {
			.msg_id = ir->msg_id,
			.idx = (uint32_t)i,
			.attempts = 0,
			.next_attempt_ms = ir->arrival_ms,
			.queued_ms = ir->arrival_ms,
			.addr = ir->env->rcpts[i],
			.last_response = "",
			.pool = ir->pool ? eng_cfg(ctx)->pools[ir->pool].name : "",
		};
		ret = spool_put_rcpt(t, &r);
	}
	return ret;
}


/* Writer thread, after the commit. */
static void intake_done(struct spool_req *req, int result, void *ctx)
{
	struct intake_req *ir = container_of(req, struct intake_req, req);
	struct engine *eng = ctx;

	ir->result = result;
	if (result == 0) {
		__atomic_fetch_add(&eng->counters.messages_received, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&eng->counters.recipients_received, ir->env->n_rcpts, __ATOMIC_RELAXED);
		struct sched_rcpt **rs = calloc(ir->env->n_rcpts, sizeof(*rs));

		for (size_t i = 0; i < ir->env->n_rcpts; i++) {
			const char *rcpt = ir->env->rcpts[i];
			struct acct_event ev = {
				.type = ACCT_RECEPTION,
				.time_ms = ir->arrival_ms,
				.id = ir->msg_id,
				.sender = ir->env->sender,
				.recipient = rcpt,
				.queue = addr_domain(rcpt),
				.source_ip = ir->env->client_ip,
				.campaign = ir->campaign[0] ? ir->campaign : NULL,
				.size = ir->len,
				.has_size = true,
			};
			struct sched_rcpt *r;

			acct_log_write(eng->acct, &ev);
			r = sched_rcpt_new(ir->msg_id, (uint32_t)i, addr_domain(rcpt), ir->arrival_ms,
					   ir->arrival_ms, 0, (uint16_t)ir->pool);
			if (r && rs)
				rs[i] = r;
			else if (r)
				engine_route_rcpt(eng, r);
			else
				fprintf(stderr, "salvod: out of memory scheduling %016llx; it goes out after a restart\n",
					(unsigned long long)ir->msg_id);
		}
		if (rs)
			engine_route_rcpts(eng, rs, ir->env->n_rcpts);
		free(rs);
	}
	free(ir->body);
	ir->body = NULL;
	smtp_envelope_free(ir->env);
	ir->env = NULL;
	ir->link.kind = WORKER_MAIL_INJECTED;
	mailbox_post(&ir->worker->mb, &ir->link);
}

void engine_dkim_sign(struct engine *eng, char **body, size_t *len)
{
	static int reported;
	char *hdr = NULL, *signed_body, err[256];
	size_t hl = 0;
	int rc;

	if (!eng->dkim || !dkim_keys_count(eng->dkim) || !eng->cfg->domains[0].dkim_sign)
		return;
	rc = dkim_sign(eng->dkim, *body, *len, wall_now_ms() / 1000, &hdr, &hl, err, sizeof(err));
	if (rc < 0 && !__atomic_exchange_n(&reported, 1, __ATOMIC_RELAXED))
		fprintf(stderr, "salvod: DKIM signing failed, sending unsigned: %s\n", err);
	if (rc != 0)
		return;
	if ((signed_body = malloc(hl + *len))) {
		memcpy(signed_body, hdr, hl);
		memcpy(signed_body + hl, *body, *len);
		free(*body);
		*body = signed_body;
		*len += hl;
	}
	free(hdr);
}

/* X-Virtual-MTA and X-Job: honoured when the source allows, always removed. */
static void intake_pool_and_job(const struct config *cfg, const struct config_source *src,
				struct intake_req *ir)
{
	char vmta[128], job[sizeof(ir->campaign)];
	ssize_t pool = -1;

	struct msg_header_want w[] = {
		{.name = "X-Virtual-MTA", .out = vmta, .cap = sizeof(vmta)},
		{.name = "X-Job", .out = job, .cap = sizeof(job)},
	};

	ir->pool = src ? src->default_pool : 0;
	msg_headers_take(ir->body, &ir->len, w, 2);    /* one pass: linear however many */
	if (w[0].found && src && src->process_x_virtual_mta && (pool = config_pool_find(cfg, vmta)) >= 0)
		ir->pool = (size_t)pool;
	if (w[1].found && src && src->process_x_job)
		memcpy(ir->campaign, job, sizeof(job));
	if (ir->pool > UINT16_MAX)
		ir->pool = 0;
}

static void intake_submit(void *ctx, struct smtp_session *s, struct smtp_envelope *env, char *body, size_t len)
{
	struct worker *w = ctx;
	struct intake_req *ir;
	size_t n_bounce = 0, k = 0;

	for (size_t i = 0; i < env->n_rcpts; i++)
		n_bounce += intake_is_bounce_rcpt(w->eng->cfg, env->rcpts[i]);
	if (n_bounce) {
		/* reports for the bounce domain never enter the queue */
		bool only = n_bounce == env->n_rcpts;

		if (!smtp_session_trusted(s) && w->eng->bounce_reports)
			(void)addr_window_take(w->eng->bounce_reports, smtp_session_peer(s), loop_now_ms());

		bounce_intake_submit(w, only ? s : NULL, env, body, len);
		if (only) {
			smtp_envelope_free(env);
			free(body);
			return;
		}
		for (size_t i = 0; i < env->n_rcpts; i++) {
			if (intake_is_bounce_rcpt(w->eng->cfg, env->rcpts[i]))
				free(env->rcpts[i]);
			else
				env->rcpts[k++] = env->rcpts[i];
		}
		env->n_rcpts = k;
	}
	ir = calloc(1, sizeof(*ir));
	if (!ir) {
		smtp_envelope_free(env);
		free(body);
		smtp_session_submitted(s, "451 4.3.0 Error: out of memory");
		return;
	}
	ir->req.apply = intake_apply;
	ir->req.done = intake_done;
	ir->worker = w;
	ir->session = s;
	ir->env = env;
	ir->body = body;
	ir->len = len;
	ir->arrival_ms = wall_now_ms();
	intake_pool_and_job(w->eng->cfg, config_source_for(w->eng->cfg, smtp_session_peer(s)), ir);
	engine_dkim_sign(w->eng, &ir->body, &ir->len);
	spool_writer_submit(&w->eng->writer, &ir->req);
}

/* Worker thread: the commit's verdict goes back to the client. */
void intake_injected(struct worker *w, struct mailbox_item *it)
{
	struct intake_req *ir = container_of(it, struct intake_req, link);
	char reply[128];

	if (ir->result == 0)
		snprintf(reply, sizeof(reply), "250 2.0.0 Ok: queued as %016llx", (unsigned long long)ir->msg_id);
	else if (spool_is_full(ir->result))
		snprintf(reply, sizeof(reply), "452 4.3.1 Insufficient system storage");
	else
		snprintf(reply, sizeof(reply), "451 4.3.0 Error: queue file write error");
	smtp_session_submitted(ir->session, reply);
	free(ir);
}

void intake_discard(struct mailbox_item *it)
{
	free(container_of(it, struct intake_req, link));
}

/* AUTH is offered over TLS, or in clear to sources that allow it, when
 * there are accounts at all. */
static bool intake_auth_allowed(void *ctx, struct smtp_session *s, bool tls)
{
	struct worker *w = ctx;
	const struct config_source *src = config_source_for(w->eng->cfg, smtp_session_peer(s));

	return w->eng->cfg->n_smtp_users && (tls || (src && src->allow_unencrypted_auth));
}

/* Worker thread: the credentials go to the checker thread (auth.h). */
static void intake_auth_start(void *ctx, struct smtp_session *s, const char *user, const char *pass)
{
	struct worker *w = ctx;
	struct auth_job *j = calloc(1, sizeof(*j));
	const struct sockaddr *peer = smtp_session_peer(s);

	if (!j) {
		smtp_session_auth_done(s, 1);
		return;
	}
	j->worker = w;
	j->session = s;
	memcpy(&j->peer, peer, peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	snprintf(j->user, sizeof(j->user), "%s", user);
	snprintf(j->pass, sizeof(j->pass), "%s", pass);
	auth_service_submit(w->eng->auth, j);
}

/* Checker thread. */
void intake_auth_done(struct auth_job *j)
{
	j->link.kind = WORKER_MAIL_AUTH;
	mailbox_post(&j->worker->mb, &j->link);
}

/* Worker thread: the verdict goes back to the client. */
void intake_auth_replied(struct worker *w, struct mailbox_item *it)
{
	struct auth_job *j = container_of(it, struct auth_job, link);

	(void)w;
	if (j->result)
		fprintf(stderr, "salvod: AUTH %s for \"%.64s\" from %s\n", j->result == 2 ? "throttled" : "failed",
			j->user, smtp_session_tls(j->session) ? "a TLS session" : "a clear session");
	smtp_session_auth_done(j->session, j->result);
	free(j);
}

void intake_auth_discard(struct mailbox_item *it)
{
	free(container_of(it, struct auth_job, link));
}

/* Trusted injectors (sources that may relay) are exempt from the caps for
 * strangers; strangers can only send reports to the bounce domain, so they
 * get the limits for that (bounce-max-message-size, smtp-max-session-time). */
static void intake_peer_policy(void *ctx, const struct sockaddr *peer, struct smtp_peer_policy *out)
{
	struct worker *w = ctx;
	const struct config *cfg = w->eng->cfg;
	const struct config_source *src = config_source_for(cfg, peer);

	out->trusted = config_source_trusted(src);
	out->max_per_ip = src ? src->max_connections_per_ip : 0;
	out->max_message_size = config_source_max_message_size(cfg, src);
	out->max_session_ms = out->trusted ? 0 : cfg->smtp_max_session_time_ms;
}

/* bare-newline normalize in the client's <source>; else refuse (550 5.5.2). */
static bool intake_normalize_bare_newlines(void *ctx, struct smtp_session *s)
{
	struct worker *w = ctx;
	const struct config_source *src = config_source_for(w->eng->cfg, smtp_session_peer(s));

	return src && src->bare_newline_normalize;
}

const struct smtp_server_hooks intake_hooks = {
	.rcpt = intake_rcpt,
	.submit = intake_submit,
	.auth_allowed = intake_auth_allowed,
	.auth_start = intake_auth_start,
	.peer_policy = intake_peer_policy,
	.normalize_bare_newlines = intake_normalize_bare_newlines,
};
