/*
 * api_suppress.c - the suppression list over HTTP:
 *
 *   GET    /api/v1/suppressions?limit=N&after=ADDR&all=1   a page, in address order
 *   GET    /api/v1/suppressions/{address}                  one entry; 404 when not suppressed
 *   POST   /api/v1/suppressions  {"address":…, "reason":…}  add (manual)
 *   DELETE /api/v1/suppressions/{address}                  remove; 404 when absent
 *   POST   /api/v1/suppressions/import   text/csv: address,reason[,source] per line
 *   GET    /api/v1/suppressions/export   text/csv of every entry
 *
 * Reads use a spool read transaction on the HTTP thread. Writes become one
 * spool writer request each: the answer goes out from the writer thread
 * after the commit, so a 200 means the change is durable and the next
 * injection sees it. An import is committed IMPORT_BATCH lines at a time,
 * each batch queued behind whatever else waits for the writer, so a big
 * file never holds the single writer (and every SMTP client's 250) in one
 * long transaction. A batch that fails ends the import: the lines before
 * it stay imported and the rest are listed as failed ("not stored").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_str.h"
#include "engine/api.h"
#include "engine/engine.h"
#include "net/http_server.h"
#include "queue/suppress.h"

#define LIST_DEFAULT 100
#define LIST_MAX 10000
#define IMPORT_BATCH 1000

enum sup_op { SUP_ADD, SUP_DEL, SUP_IMPORT };

struct sup_row {
	char addr[SUPPRESS_ADDR_MAX];
	char reason[SUPPRESS_REASON_MAX];
	enum suppress_source source;
	int line;
};

struct sup_req {
	struct spool_req req;
	struct engine *eng;
	struct http_request *http;
	enum sup_op op;
	struct sup_row *rows;
	size_t n;
	size_t off, end;           /* this commit's rows: rows[off .. end) */
	size_t applied;            /* in this commit */
	size_t imported;           /* SUP_IMPORT: in the commits before */
	bool missing;              /* SUP_DEL: there was nothing to delete */
	json_t *failed;            /* SUP_IMPORT: lines that could not be stored */
};

static char *iso(int64_t ms, char *buf, size_t n)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&s, &tm);
	snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	return buf;
}

static json_t *entry_json(const struct suppress_entry *e)
{
	char a[64], b[64];

	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:b}", "address", e->addr, "reason", e->reason, "source",
			 suppress_source_name(e->source), "first", iso(e->first_ms, a, sizeof(a)), "last",
			 iso(e->last_ms, b, sizeof(b)), "count", (json_int_t)e->count, "suppressed", e->active);
}

/* ---- writes ---------------------------------------------------------------------- */

static int sup_apply(struct spool_req *req, struct spool_wtxn *t, void *ctx)
{
	struct sup_req *r = container_of(req, struct sup_req, req);
	int64_t now = wall_now_ms();
	int rc = 0;

	r->applied = 0;
	r->missing = false;
	for (size_t i = r->off; i < r->end && !rc; i++) {
		if (r->op == SUP_DEL) {
			rc = suppress_del(t, r->rows[i].addr);
			if (rc == SPOOL_NOTFOUND) {
				r->missing = true;
				rc = 0;
			}
		} else {
			rc = suppress_put(t, r->rows[i].addr, r->rows[i].source, r->rows[i].reason, now, 1, NULL);
		}
		r->applied += rc == 0;
	}
	return rc;
}

static void sup_done(struct spool_req *req, int result, void *ctx)
{
	struct sup_req *r = container_of(req, struct sup_req, req);
	struct engine *eng = r->eng;

	if (r->op == SUP_IMPORT && result == 0 && r->end < r->n) {
		/* the next batch goes to the back of the writer's queue */
		r->off = r->end;
		r->end = r->n - r->off > IMPORT_BATCH ? r->off + IMPORT_BATCH : r->n;
		r->imported += r->applied;
		spool_writer_submit(&eng->writer, &r->req);
		return;
	}
	if (r->op == SUP_IMPORT && result == 0)
		r->imported += r->applied;
	if (r->op == SUP_IMPORT && result != 0 && r->off > 0) {
		/* earlier batches are durable: a partial import, each rest line failed */
		for (size_t i = r->off; i < r->n; i++)
			json_array_append_new(r->failed, json_pack("{s:i, s:s+}", "line", r->rows[i].line, "error",
								   "not stored: ", spool_strerror(result)));
		result = 0;
	}
	if (result != 0)
		http_reply_error(r->http, spool_is_full(result) ? 503 : 500, spool_strerror(result), NULL);
	else if (r->op == SUP_DEL && r->missing)
		http_reply_error(r->http, 404, "not on the suppression list", NULL);
	else if (r->op == SUP_IMPORT)
		api_reply_json(r->http, 200, json_pack("{s:I, s:o}", "imported", (json_int_t)r->imported, "failed",
						       r->failed));
	else
		api_reply_json(r->http, 200, json_pack("{s:s, s:b}", "address", r->rows[0].addr, "suppressed",
						       r->op == SUP_ADD));
	if (r->op != SUP_IMPORT || result != 0)
		json_decref(r->failed);
	free(r->rows);
	free(r);
	__atomic_fetch_sub(&eng->http_inflight, 1, __ATOMIC_RELEASE);
}

static void submit(struct engine *eng, struct sup_req *r)
{
	r->req.apply = sup_apply;
	r->req.done = sup_done;
	r->eng = eng;
	r->off = 0;
	r->end = r->op == SUP_IMPORT && r->n > IMPORT_BATCH ? IMPORT_BATCH : r->n;
	__atomic_fetch_add(&eng->http_inflight, 1, __ATOMIC_ACQUIRE);
	spool_writer_submit(&eng->writer, &r->req);
}

static struct sup_req *new_req(struct http_request *http, enum sup_op op, size_t n)
{
	struct sup_req *r = calloc(1, sizeof(*r));

	if (r && !(r->rows = calloc(n ? n : 1, sizeof(*r->rows)))) {
		free(r);
		r = NULL;
	}
	if (!r) {
		http_reply_error(http, 503, "out of memory", NULL);
		return NULL;
	}
	r->http = http;
	r->op = op;
	r->n = op == SUP_IMPORT ? 0 : 1;
	return r;
}

static void post_one(struct engine *eng, struct http_request *req)
{
	json_error_t jerr;
	json_t *j = json_loads(req->body, 0, &jerr), *a, *why;
	struct sup_req *r;

	if (!j || !json_is_object(j)) {
		json_decref(j);
		http_reply_error(req, 400, j ? "the body must be a JSON object" : jerr.text, NULL);
		return;
	}
	a = json_object_get(j, "address");
	why = json_object_get(j, "reason");
	if (!json_is_string(a)) {
		json_decref(j);
		http_reply_error(req, 400, "address is required (a string)", "address");
		return;
	}
	if (why && !json_is_string(why) && !json_is_null(why)) {
		json_decref(j);
		http_reply_error(req, 400, "reason must be a string", "reason");
		return;
	}
	if (!(r = new_req(req, SUP_ADD, 1))) {
		json_decref(j);
		return;
	}
	if (suppress_normalize(json_string_value(a), r->rows[0].addr) < 0) {
		json_decref(j);
		free(r->rows);
		free(r);
		http_reply_error(req, 400, "not an email address (local@domain)", "address");
		return;
	}
	snprintf(r->rows[0].reason, sizeof(r->rows[0].reason), "%s",
		 json_is_string(why) ? json_string_value(why) : "added by the operator");
	r->rows[0].source = SUPPRESS_MANUAL;
	json_decref(j);
	submit(eng, r);
}

static void delete_one(struct engine *eng, struct http_request *req, const char *addr)
{
	struct sup_req *r = new_req(req, SUP_DEL, 1);

	if (!r)
		return;
	if (suppress_normalize(addr, r->rows[0].addr) < 0) {
		free(r->rows);
		free(r);
		http_reply_error(req, 400, "not an email address (local@domain)", "address");
		return;
	}
	submit(eng, r);
}

/* Split a CSV line (RFC 4180 quoting) into up to 3 fields, in place. */
static size_t csv_fields(char *line, char *f[3])
{
	size_t n = 0;
	char *w = line, *p = line;

	while (n < 3) {
		f[n++] = w;
		if (*p == '"') {
			for (p++; *p; p++) {
				if (*p == '"' && p[1] == '"')
					*w++ = *p++;
				else if (*p == '"')
					break;
				else
					*w++ = *p;
			}
			if (*p == '"')
				p++;
		} else {
			while (*p && *p != ',')
				*w++ = *p++;
		}
		if (*p != ',') {
			*w = '\0';
			break;
		}
		*w++ = '\0';
		p++;
	}
	return n;
}

static void import_csv(struct engine *eng, struct http_request *req)
{
	size_t lines = 1;
	struct sup_req *r;
	char *text, *save = NULL;
	int lineno = 0;

	for (const char *c = req->body; *c; c++)
		lines += *c == '\n';
	if (!(r = new_req(req, SUP_IMPORT, lines)))
		return;
	if (!(text = strdup(req->body)) || !(r->failed = json_array())) {
		free(text);
		free(r->rows);
		free(r);
		http_reply_error(req, 503, "out of memory", NULL);
		return;
	}
	for (char *ln = strtok_r(text, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
		char *f[3] = {NULL, NULL, NULL};
		size_t nf, len = strlen(ln);
		int src = SUPPRESS_MANUAL;

		lineno++;
		if (len && ln[len - 1] == '\r')
			ln[--len] = '\0';
		if (!len || (lineno == 1 && strncasecmp(ln, "address", 7) == 0))
			continue;
		nf = csv_fields(ln, f);
		if (nf >= 3 && f[2][0] && (src = suppress_source_parse(f[2])) < 0) {
			json_array_append_new(r->failed, json_pack("{s:i, s:s}", "line", lineno, "error", "unknown source"));
			continue;
		}
		if (suppress_normalize(f[0], r->rows[r->n].addr) < 0) {
			json_array_append_new(r->failed, json_pack("{s:i, s:s}", "line", lineno, "error",
								   "not an email address"));
			continue;
		}
		snprintf(r->rows[r->n].reason, sizeof(r->rows[r->n].reason), "%s", nf >= 2 ? f[1] : "imported");
		r->rows[r->n].source = (enum suppress_source)src;
		r->rows[r->n].line = lineno;
		r->n++;
	}
	free(text);
	submit(eng, r);
}

/* ---- reads ------------------------------------------------------------------------- */

struct page {
	json_t *arr;
	char last[SUPPRESS_ADDR_MAX];
	struct json_buf *csv;
	int rc;
};

static int page_cb(void *arg, const struct suppress_entry *e)
{
	struct page *p = arg;

	snprintf(p->last, sizeof(p->last), "%s", e->addr);
	if (p->arr) {
		json_array_append_new(p->arr, entry_json(e));
		return 0;
	}
	char a[64], b[64];
	struct json_buf *c = p->csv;

	/* addresses and reasons are quoted; embedded quotes doubled */
	p->rc |= json_buf_putc(c, '"');
	for (const char *s = e->addr; *s; s++)
		p->rc |= *s == '"' ? json_buf_puts(c, "\"\"") : json_buf_putc(c, *s);
	p->rc |= json_buf_puts(c, "\",\"");
	for (const char *s = e->reason; *s; s++)
		p->rc |= *s == '"' ? json_buf_puts(c, "\"\"") : *s == '\n' || *s == '\r' ? json_buf_putc(c, ' ')
							 : json_buf_putc(c, *s);
	p->rc |= json_buf_printf(c, "\",%s,%s,%s,%u,%s\n", suppress_source_name(e->source), iso(e->first_ms, a, sizeof(a)),
				 iso(e->last_ms, b, sizeof(b)), e->count, e->active ? "yes" : "no");
	return p->rc ? 1 : 0;
}

static void get_list(struct engine *eng, struct http_request *req)
{
	const char *lim = http_query(req, "limit"), *after = http_query(req, "after"), *all = http_query(req, "all");
	struct page p = {0};
	struct spool_rtxn *rt;
	char *end = NULL;
	long n = lim ? strtol(lim, &end, 10) : LIST_DEFAULT;
	uint64_t total = 0;
	int rc;

	if (lim && (*end || n < 1 || n > LIST_MAX)) {
		http_reply_error(req, 400, "limit must be 1-10000", "limit");
		return;
	}
	if ((rc = spool_rtxn_begin(eng->spool, &rt))) {
		http_reply_error(req, 503, spool_strerror(rc), NULL);
		return;
	}
	p.arr = json_array();
	rc = suppress_list(rt, after ? after : "", (size_t)n, !(all && strcmp(all, "1") == 0), page_cb, &p);
	spool_rtxn_end(rt);
	suppress_count(eng->spool, &total);
	if (rc) {
		json_decref(p.arr);
		http_reply_error(req, 500, spool_strerror(rc), NULL);
		return;
	}
	api_reply_json(req, 200, json_pack("{s:o, s:s?, s:I}", "suppressions", p.arr, "next",
					   json_array_size(p.arr) == (size_t)n ? p.last : NULL, "total_entries",
					   (json_int_t)total));
}

static void get_one(struct engine *eng, struct http_request *req, const char *addr)
{
	struct spool_rtxn *rt;
	struct suppress_entry e;
	int rc;

	if ((rc = spool_rtxn_begin(eng->spool, &rt))) {
		http_reply_error(req, 503, spool_strerror(rc), NULL);
		return;
	}
	rc = suppress_get(rt, addr, &e);
	spool_rtxn_end(rt);
	if (rc == -EINVAL)
		http_reply_error(req, 400, "not an email address (local@domain)", "address");
	else if (rc == SPOOL_NOTFOUND || (rc == 0 && !e.active && !http_query(req, "all")))
		http_reply_error(req, 404, "not suppressed", NULL);
	else if (rc)
		http_reply_error(req, 500, spool_strerror(rc), NULL);
	else
		api_reply_json(req, 200, entry_json(&e));
}

static void export_csv(struct engine *eng, struct http_request *req)
{
	struct json_buf csv = {0};
	struct page p = {.csv = &csv};
	struct spool_rtxn *rt;
	int rc;

	if ((rc = spool_rtxn_begin(eng->spool, &rt))) {
		http_reply_error(req, 503, spool_strerror(rc), NULL);
		return;
	}
	p.rc = json_buf_puts(&csv, "address,reason,source,first,last,count,suppressed\n");
	rc = suppress_list(rt, "", SIZE_MAX, false, page_cb, &p);
	spool_rtxn_end(rt);
	if (rc || p.rc)
		http_reply_error(req, 500, rc ? spool_strerror(rc) : "out of memory", NULL);
	else
		http_reply(req, 200, "text/csv; charset=utf-8", csv.data, csv.len);
	json_buf_free(&csv);
}

bool api_suppress_route(struct engine *eng, struct http_request *req)
{
	const char *p = req->path, *m = req->method;

	if (strncmp(p, "/api/v1/suppressions", 20) == 0 && (p[20] == '\0' || p[20] == '/') && strcmp(m, "GET") &&
	    req->role != CONFIG_HTTP_ADMIN) {
		/* http_server's policy refused this already; kept so that a
		 * change there cannot open the list to a monitor */
		http_reply_error(req, 403, "changing the suppression list needs the admin role", NULL);
		return true;
	}
	if (strcmp(p, "/api/v1/suppressions") == 0) {
		if (!strcmp(m, "GET"))
			get_list(eng, req);
		else if (!strcmp(m, "POST"))
			post_one(eng, req);
		else
			http_reply_error(req, 405, "GET or POST", NULL);
		return true;
	}
	if (strncmp(p, "/api/v1/suppressions/", 21) != 0)
		return false;
	p += 21;
	if (!strcmp(p, "import") && !strcmp(m, "POST"))
		import_csv(eng, req);
	else if (!strcmp(p, "export") && !strcmp(m, "GET"))
		export_csv(eng, req);
	else if (!strcmp(m, "GET"))
		get_one(eng, req, p);
	else if (!strcmp(m, "DELETE"))
		delete_one(eng, req, p);
	else
		http_reply_error(req, 405, "GET or DELETE", NULL);
	return true;
}
