/*
 * webhook_api.c - the accounting webhooks seen from outside:
 * GET /api/v1/webhooks and the salvo_webhook_* lines of /metrics.
 *
 *   {"webhooks":[{"name":"backend","url":"https://...","records_sent":N,
 *     "batches_sent":N,"failures":N,"failures_in_row":N,"skipped_lines":N,
 *     "duplicates_skipped":N,
 *     "backlog_bytes":N,"backlog_records":N|null,"oldest_unsent_seconds":S,"stalled":false,
 *     "last_success":"RFC 3339"|null,"retry_at":"RFC 3339"|null,
 *     "last_error":"..."|null}]}
 *
 * Reads webhooks_stats() only (a copy taken under the sender's lock).
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "core/acct_log.h"
#include "core/json_str.h"
#include "engine/api.h"
#include "engine/webhook.h"
#include "net/http_server.h"

#define MAX_HOOKS 256

static json_t *time_or_null(int64_t ms)
{
	char t[ACCT_TIME_LEN + 1];

	if (ms <= 0 || acct_time_rfc3339(ms, t, sizeof(t)) < 0)
		return json_null();
	return json_string(t);
}

static size_t snapshot(struct webhooks *wh, struct webhook_stat **out)
{
	size_t n = webhooks_stats(wh, NULL, 0);

	*out = NULL;
	if (n == 0)
		return 0;
	if (n > MAX_HOOKS)
		n = MAX_HOOKS;
	if (!(*out = calloc(n, sizeof(**out))))
		return 0;
	return webhooks_stats(wh, *out, n) < n ? 0 : n;
}

void api_webhooks(struct webhooks *wh, struct http_request *req)
{
	struct webhook_stat *st;
	size_t n = snapshot(wh, &st);
	json_t *arr = json_array();

	for (size_t i = 0; i < n && arr; i++) {
		const struct webhook_stat *s = &st[i];

		json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:f, s:b, s:o, s:o, s:o}",
			"name", s->name, "url", s->url,
			"records_sent", (json_int_t)s->records_sent, "batches_sent", (json_int_t)s->batches_sent,
			"failures", (json_int_t)s->failures, "failures_in_row", (json_int_t)s->failures_in_row,
			"skipped_lines", (json_int_t)s->skipped_lines,
			"duplicates_skipped", (json_int_t)s->duplicates_skipped, "backlog_bytes", (json_int_t)s->backlog_bytes,
			"backlog_records", s->backlog_records < 0 ? json_null() : json_integer(s->backlog_records),
			"oldest_unsent_seconds", (double)s->oldest_unsent_ms / 1000.0, "stalled", s->stalled,
			"last_success", time_or_null(s->last_success_ms), "retry_at", time_or_null(s->retry_at_ms),
			"last_error", s->last_error[0] ? json_string(s->last_error) : json_null()));
	}
	free(st);
	if (!arr) {
		http_reply_error(req, 500, "out of memory", NULL);
		return;
	}
	api_reply_json(req, 200, json_pack("{s:o}", "webhooks", arr));
}

static const struct {
	const char *name, *type, *help;
} metrics[] = {
	{"salvo_webhook_records_sent_total", "counter", "Accounting records acknowledged by the webhook (2xx)."},
	{"salvo_webhook_failures_total", "counter", "Webhook POSTs that failed (non-2xx, timeout, connection, TLS)."},
	{"salvo_webhook_backlog_bytes", "gauge", "Accounting log bytes after the webhook's acknowledged position."},
	{"salvo_webhook_backlog_records", "gauge", "Records of the webhook's types after its acknowledged position "
						   "(NaN while being counted)."},
	{"salvo_webhook_oldest_unsent_seconds", "gauge", "Age of the oldest record the webhook has not delivered."},
	{"salvo_webhook_stalled", "gauge", "1 when the webhook failed 3 times in a row or lags 60 s or more."},
};

static double value(const struct webhook_stat *s, size_t m)
{
	switch (m) {
	case 0: return (double)s->records_sent;
	case 1: return (double)s->failures;
	case 2: return (double)s->backlog_bytes;
	case 3: return s->backlog_records < 0 ? NAN : (double)s->backlog_records;
	case 4: return (double)s->oldest_unsent_ms / 1000.0;
	default: return s->stalled;
	}
}

int webhooks_metrics(struct webhooks *wh, struct json_buf *b)
{
	struct webhook_stat *st;
	size_t n = snapshot(wh, &st);
	int rc = 0;

	for (size_t m = 0; n && m < sizeof(metrics) / sizeof(metrics[0]) && !rc; m++) {
		rc = json_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", metrics[m].name, metrics[m].help, metrics[m].name,
				     metrics[m].type);
		for (size_t i = 0; i < n && !rc; i++) {
			double x = value(&st[i], m);

			rc = json_buf_printf(b, "%s{webhook=\"", metrics[m].name) | metrics_label(b, st[i].name) |
			     (isnan(x) ? json_buf_printf(b, "\"} NaN\n") : json_buf_printf(b, "\"} %.15g\n", x));
		}
	}
	free(st);
	return rc;
}
