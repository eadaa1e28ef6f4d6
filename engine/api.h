/*
 * api.h - the HTTP API's engine side (api.c routes; metrics.c, inject and
 * suppression endpoints in their own files). See api.c for the endpoints.
 */
#ifndef SALVO_API_H
#define SALVO_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "engine/stats.h"

struct engine;
struct http_request;

/* All workers' queue snapshots, by reference: taking one costs each worker
 * a pointer copy under its stats mutex, nothing more (see stats.h). q[i]
 * points into the workers' snapshots and is valid until api_snapshot_free. */
struct api_snapshot {
	const struct queue_stat **q;
	size_t n;
	int64_t at_ms;
	struct gone_stat gone;     /* counters of queues freed while idle */
	struct stats_snap **snaps; /* one reference per worker (NULL: none yet) */
	unsigned n_snaps;
};

int api_snapshot(struct engine *eng, struct api_snapshot *out);
void api_snapshot_free(struct api_snapshot *s);
const char *api_queue_mode(const struct queue_stat *q);
/* Serialise j (consumed) as the reply. */
void api_reply_json(struct http_request *req, unsigned status, json_t *j);

/* The http_server handler (ctx: struct engine). */
void api_handle(void *ctx, struct http_request *req);
/* The http_server policy: admin may do everything, monitor only read
 * (GET, HEAD). NULL, or why not (for the 403). */
const char *api_access(void *ctx, enum config_http_role role, const char *method, const char *path);

/* metrics.c */
void api_metrics(struct engine *eng, struct http_request *req);
/* POST /api/v1/reload (api_reload.c). */
void api_reload(struct engine *eng, struct http_request *req);
/* Append a Prometheus label value, escaped (backslash, quote, newline). */
struct json_buf;
int metrics_label(struct json_buf *b, const char *v);
/* Injection and suppression endpoints: true when the path was theirs (and
 * they answered). */
bool api_inject_route(struct engine *eng, struct http_request *req);
bool api_suppress_route(struct engine *eng, struct http_request *req);
/* api_inspect.c: GET /api/v1/messages/{id}, and a queue's recipients */
bool api_inspect_route(struct engine *eng, struct http_request *req);
bool api_campaigns_route(struct engine *eng, struct http_request *req);
/* An operator action's body (api_campaigns.c): empty, or a JSON object
 * whose fields are all in known (NULL-terminated; may be empty). Else it
 * answers 400 naming the field (an unknown one by name, "body" when the
 * body is not a JSON object) and returns false. *out (when out is not
 * NULL) gets the object, or NULL for an empty body; the caller puts it. */
bool api_action_body(struct http_request *req, const char *const *known, json_t **out);
void api_inspect_queue(struct engine *eng, struct http_request *req, const char *queue);
/* api_delete.c: POST /api/v1/delete */
bool api_delete_route(struct engine *eng, struct http_request *req);
/* A queue or domain name as the API takes it: 1-253 of [A-Za-z0-9._-]. */
bool api_valid_queue_name(const char *s, size_t n);
/* api_trace.c: GET /api/v1/trace (live SMTP transcripts, streamed) */
bool api_trace_route(struct engine *eng, struct http_request *req);

#endif
