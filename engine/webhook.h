/*
 * webhook.h - accounting webhooks: every <acct-webhook NAME> block gets the
 * accounting records (the JSON log's lines, event_id included) POSTed to
 * its url as JSON arrays, at least once and in order.
 *
 * Source and durability: the sender tails the accounting log itself
 * (spool-dir/log/acct-*.jsonl archives in name order, then acct.jsonl), so
 * the backlog is the log on disk, never memory. Each webhook's acknowledged
 * position (file inode, offset, name) is in spool-dir/webhooks/NAME.pos,
 * rewritten after every 2xx; after a restart (or kill -9) it resumes there,
 * so only the batch in flight at the crash is sent twice. A new webhook
 * starts at the end of the log as it is when salvod starts; one whose
 * position file is unreadable sends the whole log again. The reading
 * itself (rotations, files gone, cut lines) is engine/webhook_log.h.
 *
 * Sending: one thread drives every webhook with libcurl's multi interface;
 * one batch per webhook in flight. A batch is up to max-batch records of
 * the chosen types; it goes out when full, or max-delay after its first
 * record was read. A 2xx acknowledges it, once its status line and headers
 * are in (the response body is ignored: read up to 64 KiB and for 1 s at
 * most, so an endless or trickling body neither holds the sender nor
 * undoes the acknowledgment); anything else is a failure and retries the
 * same bytes: every other status, 4xx included (at least once: a 400 does
 * not drop events), redirects (3xx: never followed, the url is the one
 * configured), timeouts, refused or reset connections, a reset before the
 * headers are complete, name lookups that fail, TLS errors (an unverified
 * peer is never sent to unless the block says `tls-verify no`). The retry
 * comes after min(retry-max, 250ms * 2^(failures-1)), of which the second
 * half is random (jitter), or after the answer's Retry-After (seconds or a
 * date; 1 h at most) when that is longer. Headers: Content-Type: application/json,
 * X-Salvo-Signature: sha256=<hex HMAC-SHA256 of the body with secret>
 * (when a secret is set), X-Salvo-Webhook: NAME, and the block's headers.
 *
 * A record the log holds twice (the outbox writes the last flush's records
 * again after a kill -9) is sent once: the webhook skips an event_id it
 * took lately (engine/webhook_seen.h; at a start, those of the last 256 KiB
 * before its position count as taken).
 *
 * A webhook is "stalled" when it has failed 3 times in a row or its oldest
 * unsent record is 60 s old or more; the log says so (every 30 s at most).
 */
#ifndef SALVO_WEBHOOK_H
#define SALVO_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

#define WEBHOOK_STALL_FAILURES 3
#define WEBHOOK_STALL_AGE_MS 60000

struct webhooks;

struct webhook_stat {
	const char *name;          /* the config's, valid while the webhooks run */
	const char *url;
	uint64_t records_sent;     /* acknowledged records */
	uint64_t batches_sent;     /* acknowledged POSTs */
	uint64_t failures;         /* failed POSTs */
	uint64_t skipped_lines;    /* log lines that were no record (cut by a crash) */
	uint64_t duplicates_skipped; /* records whose event_id was sent (or batched) already */
	uint64_t failures_in_row;
	uint64_t backlog_bytes;    /* log bytes after the acknowledged position */
	int64_t backlog_records;   /* records of its types after that position;
				    * -1 while not counted yet (webhook_backlog.h) */
	int64_t oldest_unsent_ms;  /* age of the oldest unsent record; 0 = none (as of the copy) */
	int64_t oldest_unsent_at_ms; /* wall clock "time" of that record; 0 = none */
	int64_t last_success_ms;   /* wall clock; 0 = never */
	int64_t retry_at_ms;       /* wall clock of the next retry; 0 = not waiting */
	bool stalled;
	char last_error[128];      /* "" after a success */
};

/* Start the sender thread for cfg's webhooks (none: *out = NULL, 0).
 * log_dir holds the accounting log; state_dir (created) the positions.
 * -1 with a message in err. */
int webhooks_start(struct webhooks **out, const struct config *cfg, const char *log_dir, const char *state_dir,
		   char *err, size_t errlen);
/* Stop and join the thread, free everything. A POST in flight gets 1 s to
 * be answered; one that is not is abandoned (sent again next time). NULL
 * is a no-op. */
void webhooks_stop(struct webhooks *wh);

/* Copy up to cap webhooks' current figures into out (any thread); returns
 * how many webhooks there are. */
size_t webhooks_stats(struct webhooks *wh, struct webhook_stat *out, size_t cap);

/* webhook_api.c: GET /api/v1/webhooks and the /metrics lines. */
struct http_request;
struct json_buf;
void api_webhooks(struct webhooks *wh, struct http_request *req);
int webhooks_metrics(struct webhooks *wh, struct json_buf *b);

#endif
