/*
 * api_delete.c - POST /api/v1/delete: an operator removes queued recipients.
 *
 *   {"queue":"example.com", "campaign":"c1", "sender":"news@b.test",
 *    "recipient":"x@y.test", "older_than":"2h", "dsn":false}
 *   -> 200 {"deleted": N, "in_flight": M}
 *
 * The filter is delete_filter.h's; the work is delete.h's: the answer goes
 * out after the commit that removed the N recipients, so a 200 means they
 * are gone for good (a restart does not bring them back) and their
 * `cancelled` records are written. M recipients matched but were in an SMTP
 * transaction: each is cancelled when it comes back undelivered. A bad
 * filter is a 400 naming the field ({"error":…, "field":…}).
 */
#include <stdio.h>
#include <string.h>

#include "engine/api.h"
#include "engine/delete.h"
#include "engine/delete_filter.h"
#include "engine/engine.h"
#include "net/http_server.h"

static void post_delete(struct engine *eng, struct http_request *req)
{
	struct delete_filter f;
	char err[400], field[64];
	int ret;

	if (delete_filter_parse(req->body, req->body_len, &f, err, sizeof(err), field, sizeof(field)) < 0) {
		/* every refusal names a field ("body", "filter", or the field's
		 * own name, "" for an empty key) */
		http_reply_error(req, 400, err, field);
		return;
	}
	if ((ret = delete_start(eng, &f, req)) < 0)
		http_reply_error(req, 503, spool_strerror(ret), NULL);
}

bool api_delete_route(struct engine *eng, struct http_request *req)
{
	if (strcmp(req->path, "/api/v1/delete") != 0)
		return false;
	if (strcmp(req->method, "POST") != 0)
		http_reply_error(req, 405, "use POST", "method");
	else
		post_delete(eng, req);
	return true;
}
