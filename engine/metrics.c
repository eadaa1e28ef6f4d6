/*
 * metrics.c - GET /metrics in the Prometheus text exposition format
 * (version 0.0.4): process-wide counters, per-queue gauges and counters,
 * connections per (queue, virtual MTA), outbound sessions opened and
 * sockets that could not be made, and the spool commit latency
 * histogram. Counters count recipients, like the accounting log's records.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/acct_csv.h"
#include "core/config.h"
#include "core/json_str.h"
#include "engine/api.h"
#include "engine/campaign.h"
#include "engine/delete.h"
#include "engine/engine.h"
#include "engine/trace.h"
#include "engine/webhook.h"
#include "net/http_server.h"
#include "queue/outbox.h"
#include "queue/sent.h"
#include "queue/sent_prune.h"

/* A Prometheus label value (api.h): backslash, quote and newline escaped. */
int metrics_label(struct json_buf *b, const char *v)
{
	int rc = 0;

	for (; *v && !rc; v++) {
		if (*v == '\\' || *v == '"')
			rc = json_buf_putc(b, '\\') | json_buf_putc(b, *v);
		else if (*v == '\n')
			rc = json_buf_puts(b, "\\n");
		else
			rc = json_buf_putc(b, *v);
	}
	return rc;
}

static int head(struct json_buf *b, const char *name, const char *type, const char *help)
{
	return json_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int total(struct json_buf *b, const char *name, const char *help, uint64_t v)
{
	return head(b, name, "counter", help) | json_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* One per-queue series: NAME{queue="Q"} V for every queue. */
static int per_queue(struct json_buf *b, const struct api_snapshot *s, const char *name, const char *type,
		     const char *help, size_t off, int is_size)
{
	int rc = head(b, name, type, help);

	for (size_t i = 0; i < s->n && !rc; i++) {
		const struct queue_stat *q = s->q[i];
		uint64_t v = is_size ? q->ready + q->waiting + q->in_flight : *(const uint64_t *)((const char *)q + off);

		rc = json_buf_printf(b, "%s{queue=\"", name) | metrics_label(b, q->name) |
		     json_buf_printf(b, "\"} %llu\n", (unsigned long long)v);
	}
	return rc;
}

static size_t metrics_real_queues(const struct api_snapshot *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		n += !s->q[i]->no_queue;
	return n;
}

/* The "sent" index and its retention. */
static int metrics_sent(struct json_buf *b, struct engine *eng)
{
	struct spool_rtxn *rt;
	uint64_t n = 0;
	int rc;

	if (spool_rtxn_begin(eng->spool, &rt) == 0) {
		sent_count(rt, &n);
		spool_rtxn_end(rt);
	}
	rc = head(b, "salvo_sent_records", "gauge", "Deliveries kept for matching bounces (the sent index).") |
	     json_buf_printf(b, "salvo_sent_records %llu\n", (unsigned long long)n);
	if (eng->sent_pruner)
		rc |= total(b, "salvo_sent_pruned_total", "Sent-index records deleted after bounce-verp-retention.",
			    __atomic_load_n(&eng->sent_pruner->pruned, __ATOMIC_RELAXED));
	return rc;
}

void api_metrics(struct engine *eng, struct http_request *req)
{
	struct config_gen *g = engine_config_get(eng);
	const struct config *cfg = &g->cfg;
	const struct spool_writer_stats *ws = &eng->writer.stats;
	struct api_snapshot s;
	struct json_buf b = {0};
	uint64_t delivered = 0, deferred = 0, bounced = 0, expired = 0, used = 0, map = 0, msgs = 0, rcpts = 0;
	uint64_t outbox = 0;
	uint64_t cum = 0;
	int rc;

	if (api_snapshot(eng, &s) < 0) {
		config_gen_put(g);
		http_reply_error(req, 500, "out of memory", NULL);
		return;
	}
	delivered = s.gone.delivered;
	deferred = s.gone.deferred;
	bounced = s.gone.bounced;
	expired = s.gone.expired;
	for (size_t i = 0; i < s.n; i++) {
		delivered += s.q[i]->delivered;
		deferred += s.q[i]->deferred;
		bounced += s.q[i]->bounced;
		expired += s.q[i]->expired;
	}
	spool_usage(eng->spool, &used, &map);
	spool_count(eng->spool, &msgs, &rcpts);
	outbox_count(eng->spool, &outbox);
	rc = total(&b, "salvo_messages_received_total", "Messages accepted into the spool.",
		   __atomic_load_n(&eng->counters.messages_received, __ATOMIC_RELAXED));
	rc |= total(&b, "salvo_recipients_received_total", "Recipients accepted into the spool (reception records).",
		    __atomic_load_n(&eng->counters.recipients_received, __ATOMIC_RELAXED));
	rc |= total(&b, "salvo_reports_unmatched_total",
		    "Reports to the bounce domain that named no delivery of ours (not committed).",
		    __atomic_load_n(&eng->counters.reports_unmatched, __ATOMIC_RELAXED));
	rc |= total(&b, "salvo_reports_refused_total",
		    "Report recipients refused: the client was over bounce-max-reports-per-ip.",
		    __atomic_load_n(&eng->counters.reports_refused, __ATOMIC_RELAXED));
	rc |= total(&b, "salvo_messages_delivered_total", "Recipients delivered (delivery records).", delivered);
	rc |= total(&b, "salvo_messages_transient_total", "Attempts deferred with a temporary failure (transient records).",
		    deferred);
	rc |= total(&b, "salvo_messages_bounced_total", "Recipients bounced with a permanent failure (bounce records).",
		    bounced);
	rc |= total(&b, "salvo_messages_expired_total", "Recipients expired after bounce-after (expiration records).",
		    expired);
	rc |= head(&b, "salvo_spool_recipients", "gauge", "Recipients in the spool.") |
	      json_buf_printf(&b, "salvo_spool_recipients %llu\n", (unsigned long long)rcpts);
	rc |= head(&b, "salvo_spool_messages", "gauge", "Messages in the spool.") |
	      json_buf_printf(&b, "salvo_spool_messages %llu\n", (unsigned long long)msgs);
	rc |= head(&b, "salvo_spool_used_bytes", "gauge", "Bytes of the spool's map in use (high-water mark).") |
	      json_buf_printf(&b, "salvo_spool_used_bytes %llu\n", (unsigned long long)used);
	rc |= head(&b, "salvo_acct_outbox_entries", "gauge",
		   "Spool commits whose accounting records are not yet known written to the log (queue/outbox.h).") |
	      json_buf_printf(&b, "salvo_acct_outbox_entries %llu\n", (unsigned long long)outbox);
	rc |= total(&b, "salvo_acct_csv_dropped_total", "<acct-file> records dropped: a pipe's program did not keep up "
		    "(4 MiB waiting), or a file stayed unwritable (64 MiB waiting).", acct_csv_dropped_total());
	rc |= head(&b, "salvo_uptime_seconds", "gauge", "Seconds since salvod started.") |
	      json_buf_printf(&b, "salvo_uptime_seconds %lld\n", (long long)((wall_now_ms() - eng->started_ms) / 1000));
	rc |= per_queue(&b, &s, "salvo_queue_size", "gauge", "Recipients queued (ready, waiting and in flight).", 0, 1);
	rc |= per_queue(&b, &s, "salvo_queue_delivered_total", "counter", "Recipients delivered from the queue.",
			offsetof(struct queue_stat, delivered), 0);
	rc |= per_queue(&b, &s, "salvo_queue_transient_total", "counter", "Deferred attempts in the queue.",
			offsetof(struct queue_stat, deferred), 0);
	rc |= per_queue(&b, &s, "salvo_queue_bounced_total", "counter", "Recipients bounced from the queue.",
			offsetof(struct queue_stat, bounced), 0);
	rc |= head(&b, "salvo_queue_mode", "gauge", "1 for the queue's current mode (normal, backoff, paused).");
	for (size_t i = 0; i < s.n && !rc; i++)
		rc = json_buf_puts(&b, "salvo_queue_mode{queue=\"") | metrics_label(&b, s.q[i]->name) |
		     json_buf_printf(&b, "\",mode=\"%s\"} 1\n", api_queue_mode(s.q[i]));
	rc |= head(&b, "salvo_connections", "gauge", "Open SMTP connections per queue and virtual MTA.");
	for (size_t i = 0; i < s.n && !rc; i++)
		for (size_t v = 0; v < s.q[i]->n_units && v < cfg->n_vmtas && !rc; v++) {
			if (!s.q[i]->units[v].connections)
				continue;
			rc = json_buf_puts(&b, "salvo_connections{queue=\"") | metrics_label(&b, s.q[i]->name) |
			     json_buf_puts(&b, "\",vmta=\"") | metrics_label(&b, cfg->vmtas[v].name) |
			     json_buf_printf(&b, "\"} %u\n", s.q[i]->units[v].connections);
		}
	rc |= total(&b, "salvo_connections_opened_total", "Outbound SMTP sessions started (a socket made).",
		    __atomic_load_n(&eng->counters.connections_opened, __ATOMIC_RELAXED));
	rc |= total(&b, "salvo_connect_resource_errors_total",
		    "Outbound sessions not started because a socket could not be made (EMFILE, EADDRNOTAVAIL...).",
		    __atomic_load_n(&eng->counters.connect_resource_errors, __ATOMIC_RELAXED));
	rc |= total(&b, "salvo_connect_priority_yields_total",
		    "Outbound sessions put off near the descriptor limit for a higher queue-priority queue.",
		    __atomic_load_n(&eng->counters.fd_yields, __ATOMIC_RELAXED));
	rc |= head(&b, "salvo_trace_subscribers", "gauge", "Live SMTP trace streams (GET /api/v1/trace).") |
	      json_buf_printf(&b, "salvo_trace_subscribers %u\n", trace_subscribers(eng->trace));
	rc |= total(&b, "salvo_trace_dropped_total", "Transcript lines dropped: a reader or the file was behind.",
		    trace_dropped(eng->trace));
	rc |= head(&b, "salvo_spool_commit_seconds", "histogram", "Spool group commit latency (apply + fsync).");
	for (size_t i = 0; i < SPOOL_COMMIT_BUCKETS && !rc; i++) {
		cum += __atomic_load_n(&ws->commit_hist[i], __ATOMIC_RELAXED);
		if (i < SPOOL_COMMIT_BUCKETS - 1)
			rc = json_buf_printf(&b, "salvo_spool_commit_seconds_bucket{le=\"%g\"} %llu\n",
					     (double)spool_commit_bucket_us[i] / 1e6, (unsigned long long)cum);
		else
			rc = json_buf_printf(&b, "salvo_spool_commit_seconds_bucket{le=\"+Inf\"} %llu\n",
					     (unsigned long long)cum);
	}
	rc |= json_buf_printf(&b, "salvo_spool_commit_seconds_sum %.6f\nsalvo_spool_commit_seconds_count %llu\n",
			      (double)__atomic_load_n(&ws->commit_us_sum, __ATOMIC_RELAXED) / 1e6,
			      (unsigned long long)cum);
	rc |= total(&b, "salvo_spool_commit_requests_total", "Requests committed by the spool writer.",
		    __atomic_load_n(&ws->requests, __ATOMIC_RELAXED));
	rc |= total(&b, "salvo_spool_commit_gathers_total",
		    "Batches the busy spool writer held for spool-commit-delay to gather more requests.",
		    __atomic_load_n(&ws->gathers, __ATOMIC_RELAXED));
	rc |= total(&b, "salvo_spool_commit_failures_total",
		    "Spool transactions that failed (a failing batch is split in halves and tried again).",
		    __atomic_load_n(&ws->failures, __ATOMIC_RELAXED));
	rc |= total(&b, "salvo_spool_retries_total", "Requests (delivery outcomes) handed back to the writer to try again.",
		    __atomic_load_n(&ws->retries, __ATOMIC_RELAXED));
	rc |= head(&b, "salvo_spool_failed", "gauge", "1 once the spool met an unrecoverable write error (salvod exits).") |
	      json_buf_printf(&b, "salvo_spool_failed %d\n", spool_writer_failed(&eng->writer) ? 1 : 0);
	rc |= metrics_sent(&b, eng);
	rc |= head(&b, "salvo_queues", "gauge", "Destination queues held in memory (idle empty ones are freed).") |
	      json_buf_printf(&b, "salvo_queues %zu\n", metrics_real_queues(&s));
	rc |= total(&b, "salvo_queues_freed_total", "Empty queues freed after queue-free-after idle.", s.gone.queues);
	pthread_mutex_lock(&eng->webhooks_mu);
	rc |= webhooks_metrics(eng->webhooks, &b);
	pthread_mutex_unlock(&eng->webhooks_mu);
	rc |= campaign_metrics(eng->campaigns, &b) | delete_metrics(eng->deletes, &b);
	rc |= head(&b, "salvo_config_generation", "gauge", "The configuration in force: 1 at start, +1 per successful reload.") |
	      json_buf_printf(&b, "salvo_config_generation %llu\n", (unsigned long long)g->generation);
	rc |= head(&b, "salvo_config_loaded_timestamp_seconds", "gauge", "When the configuration in force was read (Unix time).") |
	      json_buf_printf(&b, "salvo_config_loaded_timestamp_seconds %.3f\n", (double)g->loaded_ms / 1000.0);
	rc |= head(&b, "salvo_config_reloads_total", "counter", "Reloads (SIGHUP, POST /api/v1/reload) by result.") |
	      json_buf_printf(&b, "salvo_config_reloads_total{result=\"ok\"} %llu\nsalvo_config_reloads_total{result=\"error\"} %llu\n",
			      (unsigned long long)__atomic_load_n(&eng->reloads_ok, __ATOMIC_RELAXED),
			      (unsigned long long)__atomic_load_n(&eng->reloads_failed, __ATOMIC_RELAXED));
	config_gen_put(g);
	api_snapshot_free(&s);
	if (rc)
		http_reply_error(req, 500, "out of memory", NULL);
	else
		http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
	json_buf_free(&b);
}
