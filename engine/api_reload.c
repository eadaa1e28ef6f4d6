/*
 * api_reload.c - POST /api/v1/reload: re-read the configuration file
 * (engine_reload, reload.c) and say what came of it.
 *
 *   200 {"reloaded":true, "config_generation":N, "config_loaded_at":"...",
 *        "warnings":["FILE:LINE: warning: ...", "X changes on restart only", ...]}
 *   400 {"reloaded":false, "error":"...", "errors":["FILE:LINE: message", ...],
 *        "config_generation":N (the one still in force), "warnings":[...]}
 *
 * Admin role only (a POST: api_access refuses the monitor role with 403).
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine/api.h"
#include "engine/engine.h"
#include "net/http_server.h"

/* "a\nb\n" -> ["a","b"] */
static json_t *lines(const char *text)
{
	json_t *arr = json_array();

	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);

		if (n)
			json_array_append_new(arr, json_stringn(p, n));
		p += n + (nl ? 1 : 0);
	}
	return arr;
}

static const char *rfc3339(int64_t ms, char *buf, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	return buf;
}

void api_reload(struct engine *eng, struct http_request *req)
{
	struct reload_result r;
	char when[64];

	if (strcmp(req->method, "POST") != 0) {
		http_reply_error(req, 405, "reload is POST", NULL);
		return;
	}
	engine_reload(eng, &r);
	if (r.ok)
		api_reply_json(req, 200, json_pack("{s:b, s:I, s:s, s:o}", "reloaded", 1,
						   "config_generation", (json_int_t)r.generation,
						   "config_loaded_at", rfc3339(r.loaded_ms, when, sizeof(when)),
						   "warnings", lines(r.warnings)));
	else
		api_reply_json(req, 400, json_pack("{s:b, s:s, s:o, s:I, s:o}", "reloaded", 0,
						   "error", "the configuration has errors; nothing changed",
						   "errors", lines(r.errors),
						   "config_generation", (json_int_t)r.generation,
						   "warnings", lines(r.warnings)));
	reload_result_free(&r);
}
