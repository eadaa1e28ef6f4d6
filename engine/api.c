/*
 * api.c - the HTTP management API: routing, and the status, queue, virtual
 * MTA and operator-action endpoints (JSON via jansson). Injection and the
 * suppression list have their own files; /metrics is metrics.c.
 *
 *   GET  /api/v1/status
 *   GET  /api/v1/queues                      every queue (?mode=backoff|paused|normal)
 *   GET  /api/v1/queues/{name}               one queue, 404 when unknown
 *   POST /api/v1/queues/{name}/pause|resume|retry
 *   POST /api/v1/queues/{name}/mode          {"mode": "normal"|"backoff"}
 *   GET  /api/v1/queues/{name}/recipients    the spool's recipients for it, paged (api_inspect.c)
 *   GET  /api/v1/messages/{id}               one message (api_inspect.c)
 *   GET  /api/v1/vmtas
 *   GET  /api/v1/campaigns[/{id}], POST /api/v1/campaigns/{id}/pause|resume (api_campaigns.c)
 *   GET  /api/v1/webhooks                    per webhook: sent, failures, backlog (webhook_api.c)
 *   POST /api/v1/delete                      remove queued recipients by filter (api_delete.c)
 *   GET  /api/v1/trace                       live SMTP transcripts, streamed (api_trace.c)
 *   GET  /metrics
 *
 * Who may call what (api_access, asked by http_server before a request's
 * body is read): admin everything, monitor GET and HEAD only.
 *
 * Handlers run on libmicrohttpd's threads and read only the workers'
 * published snapshots (stats.h) and atomics; actions travel to the owning
 * worker through its mailbox (engine_queue_action) and take effect within
 * one loop turn.
 */
#include "engine/api.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "engine/webhook.h"
#include "engine/engine.h"
#include "net/http_server.h"

/* ---- snapshots ---------------------------------------------------------------- */

void api_snapshot_free(struct api_snapshot *s)
{
	for (unsigned i = 0; i < s->n_snaps; i++)
		stats_snap_put(s->snaps[i]);
	free(s->snaps);
	free(s->q);
	memset(s, 0, sizeof(*s));
}

int api_snapshot(struct engine *eng, struct api_snapshot *out)
{
	size_t n = 0;

	memset(out, 0, sizeof(*out));
	if (!(out->snaps = calloc(eng->n_workers ? eng->n_workers : 1, sizeof(*out->snaps))))
		return -1;
	out->n_snaps = eng->n_workers;
	for (unsigned w = 0; w < eng->n_workers; w++) {
		struct stats_snap *sn = worker_stats_get(&eng->workers[w].stats);

		out->snaps[w] = sn;
		if (!sn)
			continue;
		n += sn->n;
		if (sn->published_ms > out->at_ms)
			out->at_ms = sn->published_ms;
		out->gone.delivered += sn->gone.delivered;
		out->gone.deferred += sn->gone.deferred;
		out->gone.bounced += sn->gone.bounced;
		out->gone.expired += sn->gone.expired;
		out->gone.queues += sn->gone.queues;
	}
	if (!(out->q = malloc((n ? n : 1) * sizeof(*out->q)))) {
		api_snapshot_free(out);
		return -1;
	}
	for (unsigned w = 0; w < out->n_snaps; w++)
		for (size_t i = 0; out->snaps[w] && i < out->snaps[w]->n; i++)
			out->q[out->n++] = &out->snaps[w]->queues[i];
	return 0;
}

const char *api_queue_mode(const struct queue_stat *q)
{
	return q->paused ? "paused" : q->backoff ? "backoff" : "normal";
}

/* ---- replies ---------------------------------------------------------------- */

void api_reply_json(struct http_request *req, unsigned status, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (!text) {
		http_reply_error(req, 500, "out of memory", NULL);
		return;
	}
	http_reply(req, status, "application/json", text, strlen(text));
	free(text);
}

static char *iso_time(int64_t ms, char *buf, size_t n)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&s, &tm);
	snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	return buf;
}

static json_t *queue_json(struct engine *eng, const struct queue_stat *q)
{
	struct config_gen *g = engine_config_get(eng);
	const struct config *cfg = &g->cfg;
	json_t *units = json_array();
	char tbuf[64];

	for (size_t i = 0; i < q->n_units && i < cfg->n_vmtas; i++) {
		const struct unit_stat *u = &q->units[i];

		if (!u->connections && !u->delivered && !u->disabled_until_ms)
			continue;
		json_array_append_new(units, json_pack("{s:s, s:s?, s:I, s:I, s:s?}", "vmta", cfg->vmtas[i].name,
						       "source_ip", cfg->vmtas[i].has_source ? cfg->vmtas[i].source.text : NULL,
						       "connections", (json_int_t)u->connections,
						       "delivered", (json_int_t)u->delivered, "disabled_until",
						       u->disabled_until_ms ? iso_time(u->disabled_until_ms, tbuf, sizeof(tbuf)) : NULL));
	}
	config_gen_put(g);
	return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:s, s:s?, s:b, s:s?, s:o}",
			 "domain", q->name,
			 "size", (json_int_t)(q->ready + q->waiting + q->in_flight),
			 "ready", (json_int_t)q->ready,
			 "waiting", (json_int_t)q->waiting,
			 "in_flight", (json_int_t)q->in_flight,
			 "connections", (json_int_t)q->connections,
			 "connection_limit", (json_int_t)q->connection_limit,
			 "delivered", (json_int_t)q->delivered,
			 "deferred", (json_int_t)q->deferred,
			 "bounced", (json_int_t)q->bounced,
			 "expired", (json_int_t)q->expired,
			 "delivered_per_min", q->delivered_per_min,
			 "deferred_per_min", q->deferred_per_min,
			 "bounced_per_min", q->bounced_per_min,
			 "mode", api_queue_mode(q),
			 "last_error", q->last_error[0] ? q->last_error : NULL,
			 "rollup", q->rollup,
			 "rollup_member_of", q->redirect[0] ? q->redirect : NULL,
			 "vmtas", units);
}

/* ---- endpoints ------------------------------------------------------------------ */

static void get_status(struct engine *eng, struct http_request *req)
{
	struct api_snapshot s;
	uint64_t msgs = 0, rcpts = 0, used = 0, map = 0;
	uint64_t conns = 0, queued = 0;
	double dr = 0, fr = 0, br = 0;
	size_t backoff = 0, paused = 0;
	struct config_gen *g;
	char loaded[64];

	if (api_snapshot(eng, &s) < 0) {
		http_reply_error(req, 500, "out of memory", NULL);
		return;
	}
	uint64_t delivered = s.gone.delivered, deferred = s.gone.deferred, bounced = s.gone.bounced,
		 expired = s.gone.expired;

	for (size_t i = 0; i < s.n; i++) {
		const struct queue_stat *q = s.q[i];

		delivered += q->delivered;
		deferred += q->deferred;
		bounced += q->bounced;
		expired += q->expired;
		conns += q->connections;
		queued += q->ready + q->waiting + q->in_flight;
		dr += q->delivered_per_min;
		fr += q->deferred_per_min;
		br += q->bounced_per_min;
		backoff += q->backoff;
		paused += q->paused;
	}
	spool_count(eng->spool, &msgs, &rcpts);
	spool_usage(eng->spool, &used, &map);
	g = engine_config_get(eng);
	api_reply_json(req, 200, json_pack(
		"{s:s, s:s, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:f, s:f, s:f}, s:{s:I, s:I, s:I}, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I}, s:I, s:s}",
		"version", SALVO_VERSION, "host_name", g->cfg.host_name,
		"uptime_s", (json_int_t)((wall_now_ms() - eng->started_ms) / 1000),
		"workers", (json_int_t)eng->n_workers,
		"totals",
		"messages_received", (json_int_t)__atomic_load_n(&eng->counters.messages_received, __ATOMIC_RELAXED),
		"received", (json_int_t)__atomic_load_n(&eng->counters.recipients_received, __ATOMIC_RELAXED),
		"delivered", (json_int_t)delivered, "deferred", (json_int_t)deferred,
		"bounced", (json_int_t)bounced, "expired", (json_int_t)expired,
		"rates_per_min", "delivered", dr, "deferred", fr, "bounced", br,
		"queued", "messages", (json_int_t)msgs, "recipients", (json_int_t)rcpts, "scheduled", (json_int_t)queued,
		"connections", (json_int_t)conns, "queues", (json_int_t)s.n,
		"queues_in_backoff", (json_int_t)backoff, "queues_paused", (json_int_t)paused,
		"spool", "used_bytes", (json_int_t)used, "map_bytes", (json_int_t)map,
		"commits", (json_int_t)__atomic_load_n(&eng->writer.stats.commits, __ATOMIC_RELAXED),
		"max_batch", (json_int_t)__atomic_load_n(&eng->writer.stats.max_batch, __ATOMIC_RELAXED),
		"config_generation", (json_int_t)g->generation,
		"config_loaded_at", iso_time(g->loaded_ms, loaded, sizeof(loaded))));
	config_gen_put(g);
	api_snapshot_free(&s);
}

static void get_queues(struct engine *eng, struct http_request *req, const char *one)
{
	const char *mode = http_query(req, "mode");
	struct api_snapshot s;
	json_t *arr;

	if (mode && strcmp(mode, "normal") && strcmp(mode, "backoff") && strcmp(mode, "paused")) {
		http_reply_error(req, 400, "mode must be normal, backoff or paused", "mode");
		return;
	}
	if (api_snapshot(eng, &s) < 0) {
		http_reply_error(req, 500, "out of memory", NULL);
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < s.n; i++) {
		const struct queue_stat *q = s.q[i];

		if (one && strcasecmp(one, q->name) == 0) {
			api_reply_json(req, 200, queue_json(eng, q));
			json_decref(arr);
			api_snapshot_free(&s);
			return;
		}
		if (!one && (!mode || strcmp(mode, api_queue_mode(q)) == 0))
			json_array_append_new(arr, queue_json(eng, q));
	}
	api_snapshot_free(&s);
	if (one) {
		json_decref(arr);
		http_reply_error(req, 404, "no such queue", "domain");
		return;
	}
	api_reply_json(req, 200, json_pack("{s:o}", "queues", arr));
}

static void get_vmtas(struct engine *eng, struct http_request *req)
{
	struct config_gen *g;
	const struct config *cfg;
	struct api_snapshot s;
	json_t *arr = json_array();
	char tbuf[64];

	if (api_snapshot(eng, &s) < 0) {
		json_decref(arr);
		http_reply_error(req, 500, "out of memory", NULL);
		return;
	}
	g = engine_config_get(eng);
	cfg = &g->cfg;
	for (size_t v = 0; v < cfg->n_vmtas; v++) {
		uint64_t conns = 0, delivered = 0;
		json_t *disabled = json_array();

		for (size_t i = 0; i < s.n; i++) {
			const struct unit_stat *u = v < s.q[i]->n_units ? &s.q[i]->units[v] : NULL;

			if (!u)
				continue;
			conns += u->connections;
			delivered += u->delivered;
			if (u->disabled_until_ms)
				json_array_append_new(disabled, json_pack("{s:s, s:s}", "queue", s.q[i]->name, "until",
									  iso_time(u->disabled_until_ms, tbuf, sizeof(tbuf))));
		}
		json_array_append_new(arr, json_pack("{s:s, s:s?, s:s, s:I, s:I, s:o}", "name", cfg->vmtas[v].name,
						     "source_ip", cfg->vmtas[v].has_source ? cfg->vmtas[v].source.text : NULL,
						     "helo", cfg->vmtas[v].helo ? cfg->vmtas[v].helo : cfg->host_name,
						     "connections", (json_int_t)conns, "delivered", (json_int_t)delivered,
						     "disabled", disabled));
	}
	config_gen_put(g);
	api_snapshot_free(&s);
	api_reply_json(req, 200, json_pack("{s:o}", "vmtas", arr));
}

bool api_valid_queue_name(const char *s, size_t n)
{
	if (!n || n > 253)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '.' || s[i] == '-' || s[i] == '_'))
			return false;
	return true;
}

/* A queue pause or resume is answered after its spool commit (as a
 * campaign's): a 200 survives kill -9; a commit that failed says so. */
struct queue_answer {
	struct engine *eng;
	struct http_request *req;
	bool pause;
	char name[256];
};

static void queue_stored(void *arg, int result)
{
	struct queue_answer *a = arg;

	if (result) {
		char msg[200];

		snprintf(msg, sizeof(msg), "%s applied until a restart but not stored: %s", a->pause ? "pause" : "resume",
			 spool_strerror(result));
		http_reply_error(a->req, spool_is_full(result) ? 503 : 500, msg, NULL);
	} else {
		api_reply_json(a->req, 200, json_pack("{s:s, s:s, s:b}", "queue", a->name, "action",
						      a->pause ? "pause" : "resume", "accepted", 1));
	}
	__atomic_fetch_sub(&a->eng->http_inflight, 1, __ATOMIC_RELEASE);
	free(a);
}

static void queue_action(struct engine *eng, struct http_request *req, const char *name, const char *verb)
{
	enum queue_action a;
	const char *mode = verb;

	if (strcmp(verb, "mode") == 0) {
		json_t *body;
		const char *m;

		if (!api_action_body(req, (const char *const[]){"mode", NULL}, &body))
			return;
		m = json_string_value(json_object_get(body, "mode"));
		if (!m || (strcmp(m, "normal") && strcmp(m, "backoff"))) {
			json_decref(body);
			http_reply_error(req, 400, "mode must be \"normal\" or \"backoff\"", "mode");
			return;
		}
		a = strcmp(m, "normal") == 0 ? QUEUE_MODE_NORMAL : QUEUE_MODE_BACKOFF;
		mode = strcmp(m, "normal") == 0 ? "mode normal" : "mode backoff";
		json_decref(body);
	} else if (strcmp(verb, "pause") == 0) {
		a = QUEUE_PAUSE;
	} else if (strcmp(verb, "resume") == 0) {
		a = QUEUE_RESUME;
	} else if (strcmp(verb, "retry") == 0) {
		a = QUEUE_RETRY;
	} else {
		http_reply_error(req, 404, "unknown queue action (pause, resume, retry, mode)", "action");
		return;
	}
	if (a != QUEUE_MODE_NORMAL && a != QUEUE_MODE_BACKOFF && !api_action_body(req, (const char *const[]){NULL}, NULL))
		return; /* pause, resume, retry take no fields */
	if (a == QUEUE_PAUSE || a == QUEUE_RESUME) {
		struct queue_answer *qa = calloc(1, sizeof(*qa));

		if (!qa) {
			http_reply_error(req, 503, "out of memory", NULL);
			return;
		}
		*qa = (struct queue_answer){.eng = eng, .req = req, .pause = a == QUEUE_PAUSE};
		snprintf(qa->name, sizeof(qa->name), "%s", name);
		__atomic_fetch_add(&eng->http_inflight, 1, __ATOMIC_ACQUIRE);
		if (engine_queue_action(eng, name, a, queue_stored, qa) < 0) {
			__atomic_fetch_sub(&eng->http_inflight, 1, __ATOMIC_RELEASE);
			free(qa);
			http_reply_error(req, 503, "out of memory", NULL);
		}
		return;
	}
	if (engine_queue_action(eng, name, a, NULL, NULL) < 0) {
		http_reply_error(req, 503, "out of memory", NULL);
		return;
	}
	api_reply_json(req, 200, json_pack("{s:s, s:s, s:b}", "queue", name, "action", mode, "accepted", 1));
}

/* /api/v1/queues/NAME[/VERB] */
static void route_queue(struct engine *eng, struct http_request *req, const char *rest)
{
	const char *slash = strchr(rest, '/');
	size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
	char name[256];

	if (!api_valid_queue_name(rest, n)) {
		http_reply_error(req, 400, "invalid queue name", "domain");
		return;
	}
	memcpy(name, rest, n);
	name[n] = '\0';
	for (char *c = name; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	if (!slash) {
		if (strcmp(req->method, "GET") != 0)
			http_reply_error(req, 405, "use GET for a queue, POST for its actions", "method");
		else
			get_queues(eng, req, name);
		return;
	}
	if (strcmp(slash + 1, "recipients") == 0) {
		if (strcmp(req->method, "GET") != 0)
			http_reply_error(req, 405, "use GET", "method");
		else
			api_inspect_queue(eng, req, name);
		return;
	}
	if (strcmp(req->method, "POST") != 0) {
		http_reply_error(req, 405, "queue actions are POST", "method");
		return;
	}
	queue_action(eng, req, name, slash + 1);
}

/* Decided on the method alone, so every endpoint added later is covered:
 * reads are GET (and HEAD), everything else changes something. */
const char *api_access(void *ctx, enum config_http_role role, const char *method, const char *path)
{
	(void)ctx;
	(void)path;
	if (role == CONFIG_HTTP_ADMIN)
		return NULL;
	if (role == CONFIG_HTTP_MONITOR && (!strcmp(method, "GET") || !strcmp(method, "HEAD")))
		return NULL;
	return role == CONFIG_HTTP_MONITOR ? "the monitor role may only read (GET)" : "no access to the API";
}

void api_handle(void *ctx, struct http_request *req)
{
	struct engine *eng = ctx;
	const char *p = req->path;
	bool get = strcmp(req->method, "GET") == 0;

	if (strcmp(p, "/metrics") == 0 && get)
		api_metrics(eng, req);
	else if (strcmp(p, "/api/v1/status") == 0 && get)
		get_status(eng, req);
	else if (strcmp(p, "/api/v1/queues") == 0 && get)
		get_queues(eng, req, NULL);
	else if (strncmp(p, "/api/v1/queues/", 15) == 0)
		route_queue(eng, req, p + 15);
	else if (strcmp(p, "/api/v1/vmtas") == 0 && get)
		get_vmtas(eng, req);
	else if (strcmp(p, "/api/v1/webhooks") == 0 && get) {
		pthread_mutex_lock(&eng->webhooks_mu);
		api_webhooks(eng->webhooks, req);
		pthread_mutex_unlock(&eng->webhooks_mu);
	}
	else if (strcmp(p, "/api/v1/reload") == 0)
		api_reload(eng, req);
	else if (api_inject_route(eng, req) || api_suppress_route(eng, req) || api_inspect_route(eng, req) ||
		 api_delete_route(eng, req) || api_trace_route(eng, req))
		return;
	else if (api_campaigns_route(eng, req))
		return;
	else if (!strcmp(p, "/metrics") || !strcmp(p, "/api/v1/status") || !strcmp(p, "/api/v1/queues") ||
		 !strcmp(p, "/api/v1/vmtas") || !strcmp(p, "/api/v1/webhooks"))
		http_reply_error(req, 405, "method not allowed", NULL);
	else
		http_reply_error(req, 404, "no such endpoint", NULL);
}
