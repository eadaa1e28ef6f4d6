/*
 * api_inject.c - POST /api/inject/v1 (KumoMTA's injection schema) for raw
 * RFC 5322 content: `envelope_sender`, `content` (a string), `recipients`
 * [{email, name, substitutions}], global `substitutions`, and Salvo's
 * `pool`, `campaign`, `deliver_after`.
 *
 * Validation: a broken request (JSON, missing or ill-typed fields) is a 400
 * naming the field and stores nothing; a recipient with a bad address or on
 * the suppression list is listed in failed_recipients and the rest go on.
 *
 * Storage, bounded in memory: content without `{{ }}` placeholders is stored
 * once with all its recipients (one message, one commit). Content with
 * placeholders is rendered per recipient, INJECT_BATCH messages at a time:
 * each batch is one accept_store batch (one writer request), and the next
 * batch is rendered only once the previous one is durable, so a
 * 10,000-recipient request never holds more than one batch of rendered mail.
 * Rendering and DKIM signing run on the store thread (accept_store.h), never
 * on the spool writer, whose commits every SMTP client waits for. The answer
 * goes out after the last commit; a salvod that is stopping stores no more
 * batches and answers with the rest listed as not stored.
 *
 * Placeholders: `{{ var }}` (spaces optional); a recipient's substitutions
 * first, then its predefined `email` and `name`, then the global
 * substitutions; unknown names render empty. Strings render as is, numbers
 * and booleans as JSON text, null as nothing; CR and LF are removed from
 * values that land in the header section (no header injection).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/json_str.h"
#include "engine/accept_store.h"
#include "engine/api.h"
#include "engine/campaign.h"
#include "engine/engine.h"
#include "engine/inject_check.h"
#include "engine/inject_render.h"
#include "engine/mime_build.h"
#include "net/http_server.h"
#include "net/smtp_cmd.h"
#include "queue/suppress.h"

#define INJECT_BATCH 256

struct inj {
	struct accept_batch batch; /* the batch being stored (accept_store) */
	struct accept_job job;     /* render the next batch, or answer */
	struct engine *eng;
	struct http_request *http;
	json_t *root;              /* owns every string the request points into */
	const char *sender;
	const char *content;
	size_t content_len;
	json_t *globals;
	json_t *object;            /* the content object (MIME builder), or NULL */
	char campaign[128];
	size_t pool;
	int64_t due_ms, arrival_ms;
	char client_ip[64];
	bool uniform;
	struct inject_rcpt *r;
	const char **emails;       /* r[i].email, as the batch's addresses */
	size_t n, next;
	struct accept_msg *msgs;   /* INJECT_BATCH */
	json_t *failed, *errors;
	size_t success;
	int result;
};

/* ---- storage --------------------------------------------------------------------- */

static void free_batch(struct inj *x)
{
	for (size_t i = 0; i < x->batch.n_msgs; i++)
		free(x->msgs[i].body);
	x->batch.n_msgs = 0;
}

static void inj_free(struct inj *x)
{
	free_batch(x);
	free(x->msgs);
	free(x->emails);
	free(x->r);
	json_decref(x->failed);
	json_decref(x->errors);
	json_decref(x->root);
	free(x);
}

/* Writer thread, after the commit (accept_store logged and routed the
 * batch): count it and hand the request to the store thread. */
static void inj_done(struct accept_batch *b, int result)
{
	struct inj *x = container_of(b, struct inj, batch);

	if (result == 0)
		for (size_t i = 0; i < b->n_msgs; i++)
			x->success += x->msgs[i].count;
	free_batch(x);
	x->result = result;
	accept_store_defer(x->eng->store, &x->job);
}

static void inj_answer(struct inj *x)
{
	struct engine *eng = x->eng;

	if (x->result != 0 && !x->success) {
		http_reply_error(x->http, spool_is_full(x->result) ? 503 : 500,
				 spool_is_full(x->result) ? "the spool is full, try again later" : spool_strerror(x->result),
				 NULL);
	} else {
		if (x->result != 0)
			for (size_t i = x->success; i < x->n; i++) {
				json_array_append_new(x->failed, json_string(x->r[i].email));
				json_array_append_new(x->errors, json_sprintf("%s: not stored: %s", x->r[i].email,
									       spool_strerror(x->result)));
			}
		api_reply_json(x->http, 200, json_pack("{s:I, s:I, s:O, s:O}", "success_count", (json_int_t)x->success,
						       "fail_count", (json_int_t)json_array_size(x->failed),
						       "failed_recipients", x->failed, "errors", x->errors));
	}
	inj_free(x);
	__atomic_fetch_sub(&eng->http_inflight, 1, __ATOMIC_RELEASE);
}

/* Store thread: render and sign the next batch and hand it to the writer,
 * or answer when done (or when salvod is stopping). */
static void inj_next(struct accept_job *job)
{
	struct inj *x = container_of(job, struct inj, job);

	if (x->result == 0 && x->next < x->n && accept_store_stopping(x->eng->store))
		x->result = -ESHUTDOWN;
	if (x->result != 0 || x->next >= x->n) {
		inj_answer(x);
		return;
	}
	size_t n = x->uniform ? 1 : (x->n - x->next < INJECT_BATCH ? x->n - x->next : INJECT_BATCH);
	char host_name[256];
	struct config_gen *g = engine_config_get(x->eng);

	snprintf(host_name, sizeof(host_name), "%s", g->cfg.host_name);
	config_gen_put(g);
	const struct inject_content c = {
		.content = x->content,
		.content_len = x->content_len,
		.object = x->object,
		.globals = x->globals,
		.client_ip = x->client_ip,
		.host_name = host_name,
	};

	for (size_t i = 0; i < n; i++) {
		struct accept_msg *m = &x->msgs[i];
		struct json_buf b = {0};

		/* uniform raw content is stored once, unsubstituted; the object
		 * form is never uniform */
		if (inject_render(&c, x->uniform ? NULL : &x->r[x->next], &b)) {
			json_buf_free(&b);
			free_batch(x);
			x->result = -ENOMEM;
			inj_answer(x);
			return;
		}
		*m = (struct accept_msg){.body = b.data, .len = b.len, .first = x->next, .count = x->uniform ? x->n : 1};
		x->next += m->count;
		x->batch.n_msgs++;
	}
	accept_store_submit(&x->batch); /* signs here, on the store thread */
}

/* ---- the request -------------------------------------------------------------------- */

/* RFC 3339 ("2026-11-22T16:00:00Z", "...+02:00", fractions allowed) to ms. */
static int parse_rfc3339(const char *s, int64_t *ms)
{
	struct tm tm = {0};
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	long off = 0;
	int64_t frac = 0, scale = 1000;

	if (!p)
		return -1;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			if (scale > 1)
				frac += (int64_t)(*p - '0') * (scale /= 10);
	if (*p == 'Z' || *p == 'z')
		p++;
	else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) && p[3] == ':' &&
		 isdigit((unsigned char)p[4]) && isdigit((unsigned char)p[5])) {
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600L + ((p[4] - '0') * 10 + (p[5] - '0')) * 60L;
		off = *p == '-' ? -off : off;
		p += 6;
	} else
		return -1;
	if (*p)
		return -1;
	*ms = ((int64_t)timegm(&tm) - off) * 1000 + frac;
	return 0;
}

static void bad(struct http_request *req, json_t *root, const char *msg, const char *field)
{
	json_decref(root);
	http_reply_error(req, 400, msg, field);
}

static void inject_under(struct engine *eng, const struct config *cfg, struct http_request *req)
{
	json_error_t jerr;
	json_t *root = json_loadb(req->body, req->body_len, 0, &jerr), *rc, *v;
	struct spool_rtxn *rt = NULL;
	struct inj *x;
	char field[64];

	if (!root) {
		char msg[300];

		snprintf(msg, sizeof(msg), "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
		http_reply_error(req, 400, msg, NULL);
		return;
	}
	{
		const char *why, *ofield;

		if (inject_check(root, cfg->max_message_size, &why, &ofield) < 0)
			return bad(req, root, why, ofield);
	}
	rc = json_object_get(root, "recipients");
	if (!(x = calloc(1, sizeof(*x))) || !(x->r = calloc(json_array_size(rc), sizeof(*x->r))) ||
	    !(x->emails = calloc(json_array_size(rc) + 1, sizeof(*x->emails))) ||
	    !(x->msgs = calloc(INJECT_BATCH, sizeof(*x->msgs))) || !(x->failed = json_array()) ||
	    !(x->errors = json_array())) {
		if (x)
			inj_free(x);
		json_decref(root);
		http_reply_error(req, 503, "out of memory", NULL);
		return;
	}
	x->root = root;
	x->eng = eng;
	x->http = req;
	x->sender = json_string_value(json_object_get(root, "envelope_sender"));
	x->object = json_is_object(json_object_get(root, "content")) ? json_object_get(root, "content") : NULL;
	x->content = x->object ? "" : json_string_value(json_object_get(root, "content"));
	x->content_len = x->object ? 0 : json_string_length(json_object_get(root, "content"));
	x->globals = json_object_get(root, "substitutions");
	x->arrival_ms = x->due_ms = wall_now_ms();
	/* the object form has a To per recipient: always rendered per recipient */
	x->uniform = !x->object && !strstr(x->content, "{{");
	if ((v = json_object_get(root, "campaign"))) {
		if (!json_is_string(v) || !campaign_name_ok(json_string_value(v), json_string_length(v))) {
			inj_free(x);
			http_reply_error(req, 400, "campaign must be a string of 1 to 127 bytes without control characters",
					 "campaign");
			return;
		}
		snprintf(x->campaign, sizeof(x->campaign), "%s", json_string_value(v));
	}
	if ((v = json_object_get(root, "pool"))) {
		ssize_t p = json_is_string(v) ? config_pool_find(cfg, json_string_value(v)) : -1;

		if (p < 0) {
			inj_free(x);
			http_reply_error(req, 400, "pool is not a virtual-mta-pool or virtual-mta of this salvod", "pool");
			return;
		}
		x->pool = (size_t)p;
	}
	if ((v = json_object_get(root, "deliver_after"))) {
		if (!json_is_string(v) || parse_rfc3339(json_string_value(v), &x->due_ms) < 0) {
			inj_free(x);
			http_reply_error(req, 400, "deliver_after must be an RFC 3339 time", "deliver_after");
			return;
		}
	}
	{
		const struct sockaddr *sa = req->peer;
		char ip[64] = "";

		if (sa && sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
		else if (sa && sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
		snprintf(x->client_ip, sizeof(x->client_ip), "%s", ip);
	}
	if (spool_rtxn_begin(eng->spool, &rt) != 0)
		rt = NULL;
	for (size_t i = 0; i < json_array_size(rc); i++) {
		json_t *e = json_array_get(rc, i), *em = json_object_get(e, "email"), *nm = json_object_get(e, "name"),
		       *sb = json_object_get(e, "substitutions");
		const char *why = NULL;

		if (!json_is_object(e) || !json_is_string(em) || (nm && !json_is_string(nm) && !json_is_null(nm)) ||
		    (sb && !json_is_object(sb) && !json_is_null(sb))) {
			snprintf(field, sizeof(field), !json_is_object(e) ? "recipients[%zu]" : !json_is_string(em) ?
				 "recipients[%zu].email" : nm && !json_is_string(nm) && !json_is_null(nm) ?
				 "recipients[%zu].name" : "recipients[%zu].substitutions", i);
			if (rt)
				spool_rtxn_end(rt);
			inj_free(x);
			http_reply_error(req, 400, "each recipient is an object with email (a string), optional name "
						   "(a string) and substitutions (an object)", field);
			return;
		}
		if (!inject_valid_address(json_string_value(em)))
			why = "invalid address";
		else if (rt && suppress_check(rt, json_string_value(em)))
			why = "suppressed";
		if (why) {
			json_array_append_new(x->failed, json_string(json_string_value(em)));
			json_array_append_new(x->errors, json_sprintf("%s: %s", json_string_value(em), why));
			continue;
		}
		x->emails[x->n] = json_string_value(em);
		x->r[x->n++] = (struct inject_rcpt){.email = json_string_value(em),
						  .name = json_is_string(nm) ? json_string_value(nm) : NULL,
						  .subs = json_is_object(sb) ? sb : NULL};
	}
	if (rt)
		spool_rtxn_end(rt);
	x->batch = (struct accept_batch){
		.eng = eng,
		.sender = x->sender,
		.campaign = x->campaign,
		.source_ip = x->client_ip,
		.pool = x->pool,
		.src_type = SPOOL_SRC_API,
		.arrival_ms = x->arrival_ms,
		.due_ms = x->due_ms,
		.received = true,
		.sign = true,
		.rcpts = x->emails,
		.msgs = x->msgs,
		.done = inj_done,
	};
	x->job.run = inj_next;
	__atomic_fetch_add(&eng->http_inflight, 1, __ATOMIC_ACQUIRE);
	accept_store_defer(eng->store, &x->job); /* rendering never runs on the HTTP or writer thread */
}

/* The request's checks read the configuration in force when it arrived. */
static void inject(struct engine *eng, struct http_request *req)
{
	struct config_gen *g = engine_config_get(eng);

	inject_under(eng, &g->cfg, req);
	config_gen_put(g);
}

bool api_inject_route(struct engine *eng, struct http_request *req)
{
	if (strcmp(req->path, "/api/inject/v1") != 0)
		return false;
	if (strcmp(req->method, "POST") != 0)
		http_reply_error(req, 405, "POST a JSON injection request", NULL);
	else
		inject(eng, req);
	return true;
}
