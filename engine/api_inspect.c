/*
 * api_inspect.c - looking into the spool from the HTTP API (read-only):
 *
 *   GET /api/v1/queues/{q}/recipients?limit=N&after=CURSOR
 *       the queued recipients whose domain goes to queue q (its own queue or
 *       its queue-to), in spool order, one page at a time: message id,
 *       recipient, sender, campaign, attempts, next attempt, last response,
 *       queued time; `next` is the cursor for the following page (null at the
 *       end). A page looks at a bounded number of spool records, so a page
 *       may hold fewer than `limit` recipients and still have a `next`.
 *   GET /api/v1/messages/{id}
 *       one message: sender, campaign, source, size, arrival, its header
 *       block, and every recipient's state (queued with its attempts, or
 *       finished: delivered, bounced, expired or removed).
 *
 * Both read a snapshot (an LMDB read transaction on the API's thread): they
 * never touch a worker, and what they show is what a restart would find.
 * Errors answer JSON naming the field (`limit`, `after`, `id`).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/acct_log.h"
#include "core/config.h"
#include "engine/api.h"
#include "engine/engine.h"
#include "net/http_server.h"
#include "queue/spool.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX 1000
#define PAGE_SCAN 200000   /* spool records one page may look at */
#define HEADERS_MAX 65536

struct page {
	struct engine *eng;
	struct spool_rtxn *rt;
	const char *queue;
	size_t limit;
	json_t *out;
	int err;
};

static json_t *time_or_null(int64_t ms)
{
	char buf[40];

	if (ms <= 0 || acct_time_rfc3339(ms, buf, sizeof(buf)) < 0)
		return json_null();
	return json_string(buf);
}

/* A string from the spool as JSON: invalid UTF-8 would make jansson refuse it. */
static json_t *text(const char *s)
{
	json_t *j = json_string(s ? s : "");

	return j ? j : json_stringn("(not UTF-8)", 11);
}

/* The queue a recipient address goes to first (as the scheduler routes it). */
static const char *queue_of(struct engine *eng, const char *addr, char *dom, size_t cap)
{
	const char *at = strrchr(addr, '@');
	size_t i = 0;

	for (const char *p = at ? at + 1 : addr; *p && i + 1 < cap; p++)
		dom[i++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
	dom[i] = '\0';
	{
		struct config_gen *g = engine_config_get(eng);
		const char *q = engine_queue_name(&g->cfg, dom);

		if (q != dom)
			snprintf(dom, cap, "%s", q);
		config_gen_put(g);
	}
	return dom;
}

static int page_add(void *arg, const struct spool_rcpt *r)
{
	struct page *pg = arg;
	struct spool_msg m = {0};
	char dom[256], id[17];
	json_t *j;

	if (strcmp(queue_of(pg->eng, r->addr, dom, sizeof(dom)), pg->queue) != 0)
		return 0;
	if (spool_get_msg(pg->rt, r->msg_id, &m) != 0)
		m.sender = m.campaign = "";
	snprintf(id, sizeof(id), "%016" PRIx64, r->msg_id);
	j = json_pack("{s:s, s:i, s:o, s:o, s:o, s:i, s:o, s:o, s:o}", "id", id, "index", (json_int_t)r->idx,
		      "recipient", text(r->addr), "sender", text(m.sender), "campaign",
		      m.campaign && m.campaign[0] ? text(m.campaign) : json_null(), "attempts",
		      (json_int_t)r->attempts, "next_attempt", time_or_null(r->next_attempt_ms), "queued",
		      time_or_null(r->queued_ms), "last_response", text(r->last_response));
	if (!j || json_array_append_new(pg->out, j) < 0) {
		pg->err = -1;
		return 1;
	}
	return json_array_size(pg->out) >= pg->limit;
}

/* "0123456789abcdef.7": a message id in hex and a recipient index. */
static int cursor_parse(const char *s, uint64_t *id, uint32_t *idx)
{
	char *end;
	unsigned long long v;
	unsigned long i;

	if (strlen(s) != 16 + 1 + strspn(s + 17, "0123456789") || s[16] != '.' || !s[17] ||
	    strspn(s, "0123456789abcdef") != 16)
		return -1;
	v = strtoull(s, &end, 16);
	if (end != s + 16)
		return -1;
	i = strtoul(s + 17, &end, 10);
	if (*end || i > UINT32_MAX)
		return -1;
	*id = v;
	*idx = (uint32_t)i;
	return 0;
}

void api_inspect_queue(struct engine *eng, struct http_request *req, const char *queue)
{
	const char *lim = http_query(req, "limit"), *after = http_query(req, "after");
	struct page pg = {.eng = eng, .queue = queue, .limit = PAGE_DEFAULT};
	uint64_t after_id = 0, last_id = 0;
	uint32_t after_idx = 0, last_idx = 0;
	bool more = false;
	char cursor[40];
	int ret;

	if (lim) {
		uint64_t v;

		/* digits only: strtoul would take "+5", " 5" and wrap "-1" */
		if (config_parse_uint(lim, 1, PAGE_MAX, &v) < 0) {
			http_reply_error(req, 400, "limit must be a number from 1 to 1000", "limit");
			return;
		}
		pg.limit = (size_t)v;
	}
	if (after && cursor_parse(after, &after_id, &after_idx) < 0) {
		http_reply_error(req, 400, "after must be the `next` cursor of a previous page", "after");
		return;
	}
	if (!(pg.out = json_array())) {
		http_reply_error(req, 500, "out of memory", NULL);
		return;
	}
	if ((ret = spool_rtxn_begin(eng->spool, &pg.rt)) != 0) {
		json_decref(pg.out);
		http_reply_error(req, 503, spool_strerror(ret), NULL);
		return;
	}
	ret = spool_walk_rcpts(pg.rt, after != NULL, after_id, after_idx, PAGE_SCAN, page_add, &pg, &last_id,
			       &last_idx, &more);
	spool_rtxn_end(pg.rt);
	if (ret < 0 || pg.err) {
		json_decref(pg.out);
		http_reply_error(req, 500, ret < 0 ? spool_strerror(ret) : "out of memory", NULL);
		return;
	}
	snprintf(cursor, sizeof(cursor), "%016" PRIx64 ".%" PRIu32, last_id, last_idx);
	api_reply_json(req, 200,
		       json_pack("{s:s, s:o, s:o}", "queue", queue, "recipients", pg.out, "next",
				 more ? json_string(cursor) : json_null()));
}

/* The header block of a stored message (up to its blank line), capped. */
static json_t *headers_of(const struct spool_msg *m)
{
	size_t n = m->body_len;

	for (size_t i = 0; i + 3 < m->body_len; i++)
		if (!memcmp(m->body + i, "\r\n\r\n", 4)) {
			n = i + 2;
			break;
		}
	if (n > HEADERS_MAX)
		n = HEADERS_MAX;
	json_t *j = json_stringn(m->body, n);

	return j ? j : json_string("(not UTF-8)");
}

static void get_message(struct engine *eng, struct http_request *req, const char *hex)
{
	struct spool_rtxn *rt;
	struct spool_msg m;
	json_t *rcpts, *j;
	uint64_t id;
	uint32_t dummy;
	char cur[40];
	int ret;

	/* the id as the API and the log write it; upper-case hex is the same id */
	snprintf(cur, sizeof(cur), "%.16s.0", hex);
	for (char *c = cur; *c; c++)
		if (*c >= 'A' && *c <= 'F')
			*c = (char)(*c - 'A' + 'a');
	if (strlen(hex) != 16 || cursor_parse(cur, &id, &dummy) < 0) {
		http_reply_error(req, 400, "a message id is 16 hex digits", "id");
		return;
	}
	if ((ret = spool_rtxn_begin(eng->spool, &rt)) != 0) {
		http_reply_error(req, 503, spool_strerror(ret), NULL);
		return;
	}
	if ((ret = spool_get_msg(rt, id, &m)) != 0) {
		spool_rtxn_end(rt);
		if (ret == SPOOL_NOTFOUND)
			http_reply_error(req, 404, "no such message in the spool (never, or every recipient finished)",
					 "id");
		else
			http_reply_error(req, 500, spool_strerror(ret), NULL);
		return;
	}
	rcpts = json_array();
	for (uint32_t i = 0; rcpts && i < m.n_rcpt; i++) {
		struct spool_rcpt r;
		json_t *x;

		if (spool_get_rcpt(rt, id, i, &r) == 0)
			x = json_pack("{s:i, s:o, s:s, s:i, s:o, s:o}", "index", (json_int_t)i, "recipient",
				      text(r.addr), "state", "queued", "attempts", (json_int_t)r.attempts, "next_attempt",
				      time_or_null(r.next_attempt_ms), "last_response", text(r.last_response));
		else
			x = json_pack("{s:i, s:s}", "index", (json_int_t)i, "state", "finished");
		if (!x || json_array_append_new(rcpts, x) < 0) {
			json_decref(rcpts);
			rcpts = NULL;
		}
	}
	cur[16] = '\0'; /* the id, lower case */
	j = rcpts ? json_pack("{s:s, s:o, s:o, s:o, s:I, s:o, s:b, s:o, s:o}", "id", cur, "sender", text(m.sender),
			      "campaign", m.campaign[0] ? text(m.campaign) : json_null(), "source_ip",
			      m.source_ip[0] ? text(m.source_ip) : json_null(), "size", (json_int_t)m.body_len,
			      "received", time_or_null(m.arrival_ms), "smtputf8", m.smtputf8, "headers", headers_of(&m),
			      "recipients", rcpts)
		  : NULL;
	spool_rtxn_end(rt);
	if (!j) {
		http_reply_error(req, 500, "out of memory", NULL);
		return;
	}
	api_reply_json(req, 200, j);
}

bool api_inspect_route(struct engine *eng, struct http_request *req)
{
	if (strncmp(req->path, "/api/v1/messages/", 17) != 0)
		return false;
	if (strcmp(req->method, "GET") != 0)
		http_reply_error(req, 405, "use GET", "method");
	else
		get_message(eng, req, req->path + 17);
	return true;
}
