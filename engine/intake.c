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
 * (process-x-virtual-mta, process-x-job; the job header's name is the
 * source's jobid-header), and removed from the stored message (they are for
 * the MTA, not the recipient) unless the source retains them (retain-x-job,
 * retain-x-virtual-mta). Without a valid X-Virtual-MTA the first matching
 * rule of the source's <pattern-list> chooses (per recipient when a rule
 * looks at it), else the source's default-virtual-mta, else the default pool.
 *
 * Header edits (add-message-id-header, add-received-header,
 * hide-message-source, remove-received-headers) run only for a source that
 * sets one (src->header_edits): one pass over the header block. verp-default
 * no marks the message to go with the client's return path (unless MAIL had
 * XVERP).
 *
 * Storage: a message becomes an intake_req, one accept_store batch (message
 * body once, one record per recipient, all due now), signed on this worker
 * and committed in the writer's next group commit; accept_store logs and
 * routes it, then the request returns to the session's worker, which sends
 * the reply.
 *
 * Ownership: the intake_req owns the envelope and body from submit until the
 * batch's done(), which frees them; the req itself is freed by the worker
 * once the reply is out (or by intake_discard() at shutdown).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/config.h"
#include "engine/accept_store.h"
#include "engine/auth.h"
#include "engine/campaign.h"
#include "engine/engine.h"
#include "engine/msg_headers.h"
#include "engine/trace.h"
#include "net/smtp_cmd.h"
#include "queue/suppress.h"
#include "net/smtp_server.h"
#include "net/addr_window.h"
#include <netinet/in.h>

_Static_assert((int)SPOOL_NOTIFY_NEVER == (int)SMTP_NOTIFY_NEVER && (int)SPOOL_NOTIFY_SUCCESS == (int)SMTP_NOTIFY_SUCCESS &&
		       (int)SPOOL_NOTIFY_FAILURE == (int)SMTP_NOTIFY_FAILURE &&
		       (int)SPOOL_NOTIFY_DELAY == (int)SMTP_NOTIFY_DELAY && (int)SPOOL_NOTIFY_GIVEN == (int)SMTP_NOTIFY_GIVEN &&
		       (int)SPOOL_RET_FULL == (int)SMTP_RET_FULL && (int)SPOOL_RET_HDRS == (int)SMTP_RET_HDRS,
	       "the spool stores the parser's DSN parameter values");

struct intake_req {
	struct accept_batch batch;  /* one message, all its recipients */
	struct accept_msg msg;
	struct mailbox_item link;
	struct worker *worker;
	struct smtp_session *session;
	struct smtp_envelope *env;
	uint64_t msg_id;
	size_t pool;
	uint16_t *rcpt_pools;       /* per recipient, from a pattern-list's rcpt-to rules; NULL: pool */
	char campaign[128];
	char envid[101];            /* X-Envid (process-x-envid); "" for none */
	int result;
};

static const char *addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : addr;
}

bool intake_is_bounce_rcpt(const struct config *cfg, const char *addr)
{
	return (cfg->bounce_domain && strcasecmp(addr_domain(addr), cfg->bounce_domain) == 0) ||
	       config_processor_address(cfg, addr);
}

/* The session's <source>: its listener's `source=NAME`, else the one of
 * the client's address; after AUTH the user's `source {name}` (else
 * `<source {auth}>`): PowerMTA's named sources. */
static const struct config_source *session_source(const struct config *cfg, struct smtp_session *s)
{
	return config_source_after_auth(cfg, smtp_session_user(s),
					config_source_for_listener(cfg, smtp_session_listener(s), smtp_session_peer(s)));
}

/* Is addr's domain a `relay-domain` (PowerMTA's inbound relay)? An
 * address literal never is. */
static bool intake_is_relay_domain(const struct config *cfg, const char *addr)
{
	const char *at = strrchr(addr, '@');

	return cfg->n_relay_domains && at && at[1] && at[1] != '[' && config_relay_domain(cfg, at + 1);
}

static bool intake_rcpt(void *ctx, struct smtp_session *s, const char *addr, char *reply, size_t cap)
{
	struct worker *w = ctx;
	const struct config *cfg = w->cfg;
	const struct config_source *src = session_source(cfg, s);
	struct spool_rtxn *rt;
	const char *list;
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
	 * authenticated session; from anyone, a `relay-domain` recipient */
	if (!smtp_session_user(s) && (!src || !src->always_allow_relaying || src->require_auth) &&
	    !intake_is_relay_domain(cfg, addr)) {
		snprintf(reply, cap, "550 5.7.1 <%s>: Relay access denied%s", addr,
			 src && src->require_auth ? " (authentication required)" : "");
		return false;
	}
	/* PowerMTA's `suppression-lists` of the source: refused like Salvo's own list */
	if ((list = config_source_suppressed(cfg, src, addr))) {
		snprintf(reply, cap, "550 5.7.1 <%s>: Recipient address is on suppression list %s", addr, list);
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

/* Writer thread, after the commit (accept_store has logged and routed):
 * the envelope goes, the request returns to the session's worker. */
static void intake_done(struct accept_batch *b, int result)
{
	struct intake_req *ir = container_of(b, struct intake_req, batch);

	ir->result = result;
	ir->msg_id = ir->msg.id;
	free(ir->msg.body);
	ir->msg.body = NULL;
	smtp_envelope_free(ir->env);
	ir->env = NULL;
	ir->link.kind = WORKER_MAIL_INJECTED;
	mailbox_post(&ir->worker->mb, &ir->link);
}

/* The header block of msg[0..len): up to the first empty line. */
static size_t header_block_len(const char *msg, size_t len)
{
	const char *p = msg, *end = msg + len;

	while (p < end) {
		const char *nl;

		if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n'))
			return (size_t)(p - msg);
		if (!(nl = memchr(p, '\n', (size_t)(end - p))))
			return len;
		p = nl + 1;
	}
	return len;
}

/* The source's <pattern-list>: the first matching rule chooses the pool of
 * each recipient the message's X-Virtual-MTA did not choose. With no
 * rcpt-to rule one answer serves every recipient; else ir->rcpt_pools. */
static void intake_pattern_list(const struct config *cfg, const struct config_source *src, struct intake_req *ir)
{
	const struct config_intake_list *l = &cfg->intake_lists[src->intake_list - 1];
	size_t hl = header_block_len(ir->msg.body, ir->msg.len), first = SIZE_MAX;
	ssize_t pool;

	if (!l->has_rcpt_rules) {
		if ((pool = config_intake_match(l, ir->env->sender, NULL, ir->msg.body, hl, &first)) >= 0)
			ir->pool = (size_t)pool;
		return;
	}
	if (!(ir->rcpt_pools = calloc(ir->env->n_rcpts, sizeof(*ir->rcpt_pools))))
		return; /* out of memory: the source's default pool */
	for (size_t i = 0; i < ir->env->n_rcpts; i++) {
		/* the sender and header rules are matched once: first */
		pool = config_intake_match(l, ir->env->sender, ir->env->rcpts[i], ir->msg.body, hl, &first);
		ir->rcpt_pools[i] = (uint16_t)(pool >= 0 && pool <= UINT16_MAX ? (size_t)pool : ir->pool);
	}
}

/* An X-Envid that is its own xtext (RFC 3461: printable ASCII without
 * '+', '=' and space) and at most 100 bytes; others are dropped. */
static bool envid_ok(const char *v)
{
	size_t n = 0;

	for (; v[n]; n++)
		if (v[n] < 33 || v[n] > 126 || v[n] == '+' || v[n] == '=')
			return false;
	return n > 0 && n <= 100;
}

static uint64_t msgid_seq;

/* A source's header edits (msg_headers_edit); its Message-ID is salvod's
 * own: time, a process-wide sequence and the host name. */
static void intake_edit_headers(const struct config *cfg, const struct config_source *src, struct intake_req *ir)
{
	char id[340];
	struct msg_header_edit e = {
		.own_received = true,
		.drop_own_received = src->no_received_header,
		.hide_source = src->hide_message_source,
		.drop_received = src->remove_received,
		.remove = (const char *const *)src->remove_headers,
		.n_remove = src->n_remove_headers,
	};

	if (src->add_message_id) {
		snprintf(id, sizeof(id), "<%llx.%llx.%x@%s>", (unsigned long long)wall_now_ms(),
			 (unsigned long long)__atomic_add_fetch(&msgid_seq, 1, __ATOMIC_RELAXED), (unsigned)getpid(),
			 cfg->host_name ? cfg->host_name : "localhost");
		e.message_id = id;
	}
	if (msg_headers_edit(&ir->msg.body, &ir->msg.len, &e) < 0)
		fprintf(stderr, "salvod: out of memory adding a Message-ID; the message goes without\n");
}

/* X-Virtual-MTA and X-Job (or the source's jobid-header): honoured when the
 * source allows, removed unless it retains them; then the source's
 * pattern-list and header edits. */
static void intake_pool_and_job(const struct config *cfg, const struct config_source *src,
				const struct sockaddr *local, struct intake_req *ir)
{
	char vmta[128], job[sizeof(ir->campaign)], envid[sizeof(ir->envid) + 1];
	ssize_t pool = -1;

	struct msg_header_want w[] = {
		{.name = "X-Virtual-MTA", .out = vmta, .cap = sizeof(vmta)},
		{.name = "X-Job", .out = job, .cap = sizeof(job)},
		{.name = "X-Envid", .out = envid, .cap = sizeof(envid)},
	};

	ir->pool = config_source_pool(cfg, src, local);
	if (src) {
		if (src->jobid_header)
			w[1].name = src->jobid_header;
		w[0].keep = src->retain_x_virtual_mta;
		w[1].keep = src->retain_x_job;
	}
	/* one pass: linear however many (X-Envid only for a source that takes it) */
	msg_headers_take(ir->msg.body, &ir->msg.len, w, src && src->process_x_envid ? 3 : 2);
	if (src && src->process_x_envid && w[2].found && envid_ok(envid)) {
		memcpy(ir->envid, envid, sizeof(ir->envid));
		ir->msg.envid = ir->envid;
	}
	if (w[0].found && src && src->process_x_virtual_mta && (pool = config_pool_find(cfg, vmta)) >= 0)
		ir->pool = (size_t)pool;
	else if (src && src->intake_list)
		intake_pattern_list(cfg, src, ir);
	if (src && src->header_edits)
		intake_edit_headers(cfg, src, ir);
	/* an X-Job with control characters names no campaign (mail flows) */
	if (w[1].found && src && src->process_x_job && campaign_name_ok(job, strlen(job)))
		memcpy(ir->campaign, job, sizeof(job));
	if (ir->pool > UINT16_MAX)
		ir->pool = 0;
}

static void intake_submit(void *ctx, struct smtp_session *s, struct smtp_envelope *env, char *body, size_t len)
{
	struct worker *w = ctx;
	struct intake_req *ir;
	const struct config_source *src;
	size_t n_bounce = 0, k = 0;
	struct sockaddr_storage local;

	for (size_t i = 0; i < env->n_rcpts; i++)
		n_bounce += intake_is_bounce_rcpt(w->cfg, env->rcpts[i]);
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
			if (intake_is_bounce_rcpt(w->cfg, env->rcpts[i])) {
				free(env->rcpts[i]);
				free(env->orcpt[i]);
			} else {
				env->notify[k] = env->notify[i];
				env->orcpt[k] = env->orcpt[i];
				env->rcpts[k++] = env->rcpts[i];
			}
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
	ir->worker = w;
	ir->session = s;
	ir->env = env;
	ir->msg = (struct accept_msg){.body = body, .len = len, .count = env->n_rcpts, .smtputf8 = env->smtputf8};
	src = session_source(w->cfg, s);
	intake_pool_and_job(w->cfg, src, src && src->default_by_source_ip ? smtp_session_local(s, &local) : NULL, ir);
	ir->msg.no_verp = src && src->no_verp && !env->xverp;
	/* RFC 3461: MAIL's ENVID wins over an X-Envid header */
	if (env->envid[0])
		ir->msg.envid = env->envid;
	ir->msg.ret = env->ret;
	ir->batch = (struct accept_batch){
		.eng = w->eng,
		.sender = env->sender,
		.campaign = ir->campaign,
		.source_ip = env->client_ip,
		.pool = ir->pool,
		.rcpt_pools = ir->rcpt_pools,
		.src_type = SPOOL_SRC_SMTP,
		.received = true,
		.sign = true,
		.rcpts = (const char *const *)env->rcpts,
		.rcpt_notify = env->notify,
		.rcpt_orcpt = (const char *const *)env->orcpt,
		.msgs = &ir->msg,
		.n_msgs = 1,
		.done = intake_done,
	};
	ir->batch.arrival_ms = ir->batch.due_ms = wall_now_ms();
	accept_store_submit(&ir->batch); /* signs here, on the worker */
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
	free(ir->rcpt_pools);
	free(ir);
}

void intake_discard(struct mailbox_item *it)
{
	struct intake_req *ir = container_of(it, struct intake_req, link);

	free(ir->rcpt_pools);
	free(ir);
}

/* AUTH is offered over TLS, or in clear to sources that allow it, when
 * there are accounts at all. */
static bool intake_auth_allowed(void *ctx, struct smtp_session *s, bool tls)
{
	struct worker *w = ctx;
	const struct config_source *src = session_source(w->cfg, s);

	return w->cfg->n_smtp_users && (tls || (src && src->allow_unencrypted_auth));
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

	if (j->result)
		fprintf(stderr, "salvod: AUTH %s for \"%.64s\" from %s\n", j->result == 2 ? "throttled" : "failed",
			j->user, smtp_session_tls(j->session) ? "a TLS session" : "a clear session");
	if (j->result == 0) {
		const struct config_source *src = config_source_after_auth(w->cfg, j->user, NULL);

		/* a named source's own max-message-size (else the listener's) */
		smtp_session_set_auth_max_size(j->session, src ? src->max_message_size : 0);
		/* and its max-rcpt-per-message and SMTP timeouts */
		if (src)
			smtp_session_set_auth_limits(j->session, src->max_rcpt_per_message, src->command_timeout_ms,
						     src->data_timeout_ms);
	}
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
	const struct config *cfg = w->cfg;
	const struct config_source *src = config_source_for_listener(cfg, out->listener, peer);

	out->trusted = config_source_trusted(src);
	out->max_per_ip = src ? src->max_connections_per_ip : 0;
	out->max_message_size = config_source_max_message_size(cfg, src);
	out->max_session_ms = out->trusted ? 0 : cfg->smtp_max_session_time_ms;
	if (src && src->max_rcpt_per_message)
		out->max_rcpts = src->max_rcpt_per_message;
	if (src && src->command_timeout_ms)
		out->command_timeout_ms = src->command_timeout_ms;
	if (src && src->data_timeout_ms)
		out->data_timeout_ms = src->data_timeout_ms;
	out->no_starttls = (cfg->smtp_listener_no_tls && out->listener < cfg->n_smtp_listeners &&
			    cfg->smtp_listener_no_tls[out->listener]) ||
			   (src && src->no_starttls);
	out->refuse = src && src->no_smtp_service; /* PowerMTA's smtp-service no */
}

/* bare-newline normalize in the client's <source>; else refuse (550 5.5.2). */
static bool intake_normalize_bare_newlines(void *ctx, struct smtp_session *s)
{
	struct worker *w = ctx;
	const struct config_source *src = session_source(w->cfg, s);

	return src && src->bare_newline_normalize;
}

/* Transcripts: the <source>'s log-connections, log-commands, log-data,
 * and live traces of its network (trace.h). */
static void intake_trace_start(void *ctx, const struct sockaddr *peer, struct smtp_trace *t)
{
	struct worker *w = ctx;
	const struct config_source *src = config_source_for(w->cfg, peer);

	trace_session_in(w->eng->trace, t, src ? src->log_flags : 0);
}

const struct smtp_server_hooks intake_hooks = {
	.rcpt = intake_rcpt,
	.submit = intake_submit,
	.auth_allowed = intake_auth_allowed,
	.auth_start = intake_auth_start,
	.peer_policy = intake_peer_policy,
	.normalize_bare_newlines = intake_normalize_bare_newlines,
	.trace_start = intake_trace_start,
};
