/*
 * api_campaigns.c - campaigns from the HTTP API, and campaign pauses:
 *
 *   GET  /api/v1/campaigns                 every campaign seen since start
 *                                          (and every paused one), paged:
 *                                          ?limit=N&after=CURSOR, `next`
 *   GET  /api/v1/campaigns/{id}            one campaign, 404 when unknown
 *   POST /api/v1/campaigns/{id}/pause      its recipients are not attempted
 *   POST /api/v1/campaigns/{id}/resume
 *
 * A pause is recorded in the spool (queue/pause.h, campaign keys) before
 * the answer, so it survives kill -9 once answered; the flag is set at
 * once (new and due recipients park from then on) and every worker parks
 * the campaign's ready recipients (sched_campaign_park). A resume clears
 * the flag and puts them back. Pausing a campaign that has no mail records
 * the pause and makes no queue. At start, engine_restore_campaigns() loads
 * the durable totals (queue/campaign_stats.h) and sets the pause flags
 * before any recipient reaches a shard.
 *
 * Errors answer {"error", "field"}: `id` for a bad campaign id, `body`
 * for a body that is not a JSON object, the name of an unknown field
 * (api_action_body, which the queue actions use too).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/acct_log.h"
#include "core/config.h"
#include "engine/api.h"
#include "engine/campaign.h"
#include "engine/engine.h"
#include "net/http_server.h"
#include "queue/pause.h"

#define CAMPAIGN_PAGE_MAX 10000

struct camp_req {
	struct spool_req req;
	struct engine *eng;
	struct http_request *http;  /* NULL: nobody waits */
	bool pause;
	uint32_t id;
	char name[CAMPAIGN_NAME_MAX + 1];
};

struct camp_mail {
	struct mailbox_item link;
	uint32_t id;
	bool pause;
};

/* ---- the workers' side ---------------------------------------------------------- */

void engine_campaign_mail(struct worker *w, struct mailbox_item *it)
{
	struct camp_mail *m = container_of(it, struct camp_mail, link);

	if (m->pause)
		sched_campaign_park(&w->sched, m->id);
	else
		sched_campaign_unpark(&w->sched, m->id);
	free(m);
}

void engine_campaign_mail_discard(struct mailbox_item *it)
{
	free(container_of(it, struct camp_mail, link));
}

static void post_all(struct engine *eng, uint32_t id, bool pause)
{
	for (unsigned i = 0; i < eng->n_workers; i++) {
		struct camp_mail *m = calloc(1, sizeof(*m));

		if (!m) {
			fprintf(stderr, "salvod: out of memory for a campaign %s\n", pause ? "pause" : "resume");
			continue;
		}
		m->id = id;
		m->pause = pause;
		m->link.kind = WORKER_MAIL_CAMPAIGN;
		mailbox_post(&eng->workers[i].mb, &m->link);
	}
}

/* ---- pause and resume ------------------------------------------------------------ */

static int camp_apply(struct spool_req *req, struct spool_wtxn *t, void *ctx)
{
	struct camp_req *r = container_of(req, struct camp_req, req);

	(void)ctx;
	return r->pause ? pause_campaign_put(t, r->name, wall_now_ms()) : pause_campaign_del(t, r->name);
}

static void camp_done(struct spool_req *req, int result, void *ctx)
{
	struct camp_req *r = container_of(req, struct camp_req, req);
	struct engine *eng = r->eng;

	(void)ctx;
	if (result)
		fprintf(stderr, "salvod: campaign %s: %s not recorded in the spool (%s); applied until a restart\n",
			r->name, r->pause ? "pause" : "resume", spool_strerror(result));
	/* The flag again, in commit order: a pause set it early (at the
	 * request), and a resume committed before it must not leave it clear.
	 * A resume clears it before the workers look (they unpark only what
	 * is no longer paused). */
	if (r->id != CAMPAIGN_NONE)
		__atomic_store_n(&campaign_get(eng->campaigns, r->id)->paused, r->pause, __ATOMIC_RELEASE);
	post_all(eng, r->id, r->pause);
	if (r->http && result) {
		char msg[200];

		/* as for queue pauses: in force now, lost at a restart */
		snprintf(msg, sizeof(msg), "%s applied until a restart but not stored: %s", r->pause ? "pause" : "resume",
			 spool_strerror(result));
		http_reply_error(r->http, spool_is_full(result) ? 503 : 500, msg, NULL);
	} else if (r->http) {
		api_reply_json(r->http, 200, json_pack("{s:s, s:s, s:b}", "campaign", r->name, "action",
						       r->pause ? "pause" : "resume", "paused", r->pause));
	}
	if (r->http)
		__atomic_fetch_sub(&eng->http_inflight, 1, __ATOMIC_RELEASE);
	free(r);
}

/* 0, or -1 when out of memory (or the table is full). */
static int campaign_action(struct engine *eng, struct http_request *http, const char *name, bool pause)
{
	struct camp_req *r = calloc(1, sizeof(*r));

	if (!r)
		return -1;
	/* a pause holds at once: recipients that become ready from now on
	 * park; a resume of a campaign never seen only clears the spool */
	r->id = pause ? campaign_set_paused(eng->campaigns, name, true) : campaign_find(eng->campaigns, name);
	if (pause && r->id == CAMPAIGN_NONE) {
		free(r);
		return -1;
	}
	r->eng = eng;
	r->http = http;
	r->pause = pause;
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->req.apply = camp_apply;
	r->req.done = camp_done;
	if (http)
		__atomic_fetch_add(&eng->http_inflight, 1, __ATOMIC_ACQUIRE);
	spool_writer_submit(&eng->writer, &r->req);
	return 0;
}

static int restore_one(void *arg, const char *name)
{
	struct engine *eng = arg;

	if (campaign_set_paused(eng->campaigns, name, true) == CAMPAIGN_NONE)
		fprintf(stderr, "salvod: paused campaign %s cannot be restored (out of memory or a bad id)\n", name);
	return 0;
}

static int restore_totals(void *arg, const char *name, const struct campaign_totals *tot)
{
	struct engine *eng = arg;

	campaign_note_totals(eng->campaigns, campaign_intern(eng->campaigns, name), tot);
	return 0;
}

int engine_restore_campaigns(struct engine *eng)
{
	int ret = campaign_stats_each(eng->spool, restore_totals, eng);

	return ret ? ret : pause_campaign_each(eng->spool, restore_one, eng);
}

/* ---- reading ---------------------------------------------------------------------- */

static json_t *time_or_null(int64_t ms)
{
	char buf[40];

	if (ms <= 0 || acct_time_rfc3339(ms, buf, sizeof(buf)) < 0)
		return json_null();
	return json_string(buf);
}

static json_t *campaign_json(const struct campaign *e)
{
	int64_t queued = __atomic_load_n(&e->queued, __ATOMIC_RELAXED);
	int64_t deferred = __atomic_load_n(&e->deferred, __ATOMIC_RELAXED);
	json_t *name = json_string(e->name);

	if (!name)
		name = json_stringn("(not UTF-8)", 11);
	return json_pack("{s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:b}", "campaign", name,
			 "received", (json_int_t)__atomic_load_n(&e->received, __ATOMIC_RELAXED),
			 "queued", (json_int_t)(queued > 0 ? queued : 0),
			 "deferred", (json_int_t)(deferred > 0 ? deferred : 0),
			 "delivered", (json_int_t)__atomic_load_n(&e->delivered, __ATOMIC_RELAXED),
			 "bounced", (json_int_t)__atomic_load_n(&e->bounced, __ATOMIC_RELAXED),
			 "expired", (json_int_t)__atomic_load_n(&e->expired, __ATOMIC_RELAXED),
			 "suppressed", (json_int_t)__atomic_load_n(&e->suppressed, __ATOMIC_RELAXED),
			 "first_received", time_or_null(__atomic_load_n(&e->first_ms, __ATOMIC_RELAXED)),
			 "last_received", time_or_null(__atomic_load_n(&e->last_ms, __ATOMIC_RELAXED)),
			 "paused", __atomic_load_n(&e->paused, __ATOMIC_RELAXED));
}

/* GET /api/v1/campaigns[?paused=true|false][&limit=N][&after=CURSOR]: in
 * the order campaigns were first seen; at most limit (CAMPAIGN_PAGE_MAX
 * when not given) and `next`, the cursor of the following page (null at
 * the end). A cursor is the last id shown: valid for one run of salvod. */
static void get_campaigns(struct engine *eng, struct http_request *req)
{
	uint32_t n = campaigns_count(eng->campaigns), id, after = 0;
	const char *paused = http_query(req, "paused"), *lim = http_query(req, "limit"),
		   *aft = http_query(req, "after");
	uint64_t limit = CAMPAIGN_PAGE_MAX, v;
	json_t *arr, *next = json_null();

	if (paused && strcmp(paused, "true") && strcmp(paused, "false")) {
		http_reply_error(req, 400, "paused must be true or false", "paused");
		return;
	}
	/* digits only (config_parse_uint): strtoul would take "+5" and " 5" */
	if (lim && config_parse_uint(lim, 1, CAMPAIGN_PAGE_MAX, &limit) < 0) {
		http_reply_error(req, 400, "limit must be a number from 1 to 10000", "limit");
		return;
	}
	if (aft) {
		if (config_parse_uint(aft, 0, UINT32_MAX, &v) < 0) {
			http_reply_error(req, 400, "after must be the `next` cursor of a previous page", "after");
			return;
		}
		after = (uint32_t)v;
	}
	if (!(arr = json_array())) {
		http_reply_error(req, 500, "out of memory", NULL);
		return;
	}
	for (id = after + 1; id <= n && id > after; id++) {
		const struct campaign *e = campaign_get(eng->campaigns, id);

		if (!e || (paused && __atomic_load_n(&e->paused, __ATOMIC_RELAXED) != (strcmp(paused, "true") == 0)))
			continue;
		if (json_array_size(arr) == limit) {
			char cur[16];

			snprintf(cur, sizeof(cur), "%u", id - 1);
			next = json_string(cur);
			break;
		}
		json_array_append_new(arr, campaign_json(e));
	}
	api_reply_json(req, 200, json_pack("{s:o, s:o}", "campaigns", arr, "next", next));
}

/* An id as the API takes it (campaign_name_ok). */
static bool valid_id(const char *s, size_t n)
{
	return campaign_name_ok(s, n);
}

bool api_action_body(struct http_request *req, const char *const *known, json_t **out)
{
	json_error_t jerr;
	json_t *j, *v;
	const char *key;

	if (out)
		*out = NULL;
	if (!req->body_len)
		return true;
	if (!(j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr)) || !json_is_object(j)) {
		json_decref(j);
		http_reply_error(req, 400, "the body must be a JSON object (or empty)", "body");
		return false;
	}
	json_object_foreach(j, key, v) {
		char msg[200];
		size_t i = 0;

		while (known[i] && strcmp(known[i], key))
			i++;
		if (known[i])
			continue;
		snprintf(msg, sizeof(msg), "unknown field %.100s", key);
		http_reply_error(req, 400, msg, key);
		json_decref(j);
		return false;
	}
	if (out)
		*out = j;
	else
		json_decref(j);
	return true;
}

bool api_campaigns_route(struct engine *eng, struct http_request *req)
{
	const char *p = req->path, *rest, *slash;
	char name[CAMPAIGN_NAME_MAX + 1];
	bool get = strcmp(req->method, "GET") == 0;
	size_t n;

	if (strcmp(p, "/api/v1/campaigns") == 0) {
		if (get)
			get_campaigns(eng, req);
		else
			http_reply_error(req, 405, "use GET", "method");
		return true;
	}
	if (strncmp(p, "/api/v1/campaigns/", 18) != 0)
		return false;
	rest = p + 18;
	slash = strrchr(rest, '/');
	if (get) {
		/* GET /api/v1/campaigns/{id}: the whole rest is the id */
		uint32_t id;

		n = strlen(rest);
		if (!valid_id(rest, n)) {
			http_reply_error(req, 400, "invalid campaign id (1 to 127 bytes of UTF-8, no control characters)", "id");
			return true;
		}
		id = campaign_find(eng->campaigns, rest);
		if (id == CAMPAIGN_NONE)
			http_reply_error(req, 404, "no such campaign", "id");
		else
			api_reply_json(req, 200, campaign_json(campaign_get(eng->campaigns, id)));
		return true;
	}
	if (strcmp(req->method, "POST") != 0) {
		http_reply_error(req, 405, "campaign actions are POST", "method");
		return true;
	}
	if (!slash || (strcmp(slash + 1, "pause") && strcmp(slash + 1, "resume"))) {
		http_reply_error(req, 404, "unknown campaign action (pause, resume)", "action");
		return true;
	}
	n = (size_t)(slash - rest);
	if (!valid_id(rest, n)) {
		http_reply_error(req, 400, "invalid campaign id (1 to 127 bytes of UTF-8, no control characters)", "id");
		return true;
	}
	if (!api_action_body(req, (const char *const[]){NULL}, NULL))
		return true; /* no fields are defined yet */
	memcpy(name, rest, n);
	name[n] = '\0';
	if (campaign_action(eng, req, name, strcmp(slash + 1, "pause") == 0) < 0)
		http_reply_error(req, 503, "out of memory (or too many campaigns)", NULL);
	return true;
}
