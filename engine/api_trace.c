/*
 * api_trace.c - GET /api/v1/trace: live SMTP transcripts, streamed.
 *
 *   ?domain=D       outbound sessions of queue D (a domain or rollup queue)
 *   ?source=CIDR    inbound sessions from that network
 *   &seconds=N      how long (default 60, 1..3600)
 *   &data=yes       message lines too (admin role only)
 *
 * The answer is text/plain, chunked, one line per event in the transcript
 * format (trace.h), an empty line now and then while nothing happens, and
 * ends after N seconds or when the client goes away. Errors are JSON
 * naming the field. The stream belongs to the HTTP connection: its done()
 * unsubscribes, so the subscriber lives exactly as long as the stream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "engine/api.h"
#include "engine/engine.h"
#include "engine/trace.h"
#include "net/http_server.h"

static ssize_t stream_read(void *ctx, char *buf, size_t max)
{
	return trace_sub_read(ctx, buf, max);
}

static void stream_done(void *ctx)
{
	trace_unsubscribe(ctx);
}

static void stream_wake(void *arg)
{
	http_stream_wake(arg);
}

static void get_trace(struct engine *eng, struct http_request *req)
{
	const char *domain = http_query(req, "domain"), *source = http_query(req, "source");
	const char *secs = http_query(req, "seconds"), *data = http_query(req, "data");
	struct trace_filter f = {0};
	uint64_t seconds = TRACE_SECONDS_DEFAULT;
	struct trace_sub *sub;
	struct http_stream *hs;
	bool want_data = false;

	if (!eng->trace) {
		http_reply_error(req, 503, "tracing is not running", NULL);
		return;
	}
	if (!domain && !source) {
		http_reply_error(req, 400, "domain or source is required", "domain");
		return;
	}
	if (domain && !api_valid_queue_name(domain, strlen(domain))) {
		http_reply_error(req, 400, "invalid domain (a domain or queue name)", "domain");
		return;
	}
	if (source && config_parse_cidr(source, &f.net) < 0) {
		http_reply_error(req, 400, "invalid source (an address or CIDR network, e.g. 10.0.0.0/8)", "source");
		return;
	}
	if (secs && (config_parse_uint(secs, 1, TRACE_SECONDS_MAX, &seconds) < 0)) {
		http_reply_error(req, 400, "seconds must be a whole number from 1 to 3600", "seconds");
		return;
	}
	if (data && config_parse_bool(data, &want_data) < 0) {
		http_reply_error(req, 400, "data must be yes or no", "data");
		return;
	}
	if (want_data && req->role != CONFIG_HTTP_ADMIN) {
		http_reply_error(req, 403, "message data in a trace needs the admin role", "data");
		return;
	}
	if (domain) {
		snprintf(f.domain, sizeof(f.domain), "%s", domain);
		for (char *c = f.domain; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
	}
	f.has_net = source != NULL;
	f.data = want_data;
	if (!(sub = trace_subscribe(eng->trace, &f, (unsigned)seconds))) {
		char msg[96];

		snprintf(msg, sizeof(msg), "too many live traces (at most %d at once) or out of memory", TRACE_SUBS_MAX);
		http_reply_error(req, 503, msg, NULL);
		return;
	}
	if (!(hs = http_reply_stream(req, 200, "text/plain; charset=utf-8", stream_read, stream_done, sub))) {
		trace_unsubscribe(sub);
		return;
	}
	trace_sub_set_wake(sub, stream_wake, hs);
}

bool api_trace_route(struct engine *eng, struct http_request *req)
{
	if (strcmp(req->path, "/api/v1/trace") != 0)
		return false;
	if (strcmp(req->method, "GET") != 0)
		http_reply_error(req, 405, "use GET", NULL);
	else
		get_trace(eng, req);
	return true;
}
