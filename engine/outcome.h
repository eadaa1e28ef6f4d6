/*
 * outcome.h - what happens to a recipient after an attempt, made durable.
 *
 * outcome_decide() is the policy (pure): 2xx delivered; 5xx bounced; 4xx or
 * no reply deferred to the next retry-after step, or expired once the
 * recipient has been queued for bounce-after.
 *
 * A struct outcome_batch carries the outcomes of one attempt on one message
 * (one SMTP transaction, or one routing failure) to the spool writer: in the
 * batch commit each deferred recipient's new state is written and each
 * finished recipient removed; bounced and expired recipients get one DSN per
 * batch to the envelope sender (never for the null sender), injected in the
 * same transaction. RFC 3461 NOTIFY (kept with each recipient in the spool)
 * decides who is in it: without NOTIFY every failure is reported (and
 * nothing else); with it, failures only under FAILURE (none under NEVER),
 * the first deferral under DELAY, and a delivery under SUCCESS when the
 * receiver had no DSN support ("relayed"). Each recipient's ORCPT goes
 * into the DSN and into the records. Bounces also feed the suppression list in that commit
 * (hard categories at once, quota problems after soft-bounce-suppress-after
 * of them), and deliveries made with a VERP return path are indexed for
 * matching later bounces (queue/sent.h). After the commit the accounting
 * records are written and the DSN's recipient goes to its shard. The batch frees itself; the caller
 * forgets it after outcome_batch_submit().
 */
#ifndef SALVO_OUTCOME_H
#define SALVO_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/smtp_client.h"

struct engine;
struct config_domain;

enum outcome_kind {
	OUTCOME_DELIVERED,
	OUTCOME_DEFERRED,
	OUTCOME_BOUNCED,
	OUTCOME_EXPIRED,
	OUTCOME_SUPPRESSED,        /* dropped: the address is on the suppression list */
};

/* attempts: attempts made including this one. Sets *next_ms for DEFERRED.
 * In backoff mode the domain's backoff-retry-after list applies when set. */
enum outcome_kind outcome_decide(const struct smtp_result *res, uint32_t attempts,
				 int64_t queued_ms, int64_t now_ms,
				 const struct config_domain *dom, bool backoff, int64_t *next_ms);

/* `retry-recipients-after`: a recipient whose own RCPT TO or DATA got a 4xx
 * on a session that went on (its failure, not the connection's) is tried
 * again after dom->retry_recipients_after_ms, not the retry-after step that
 * outcome_decide() chose; never past bounce-after. No change when unset. */
void outcome_rcpt_retry(const struct config_domain *dom, int64_t queued_ms, int64_t now_ms, int64_t *next_ms);

struct outcome_batch;

/* Where an attempt went, for the log and the recipients' new state. Any
 * field may be NULL; the strings are copied. */
struct outcome_route {
	const char *queue;
	const char *mx_host;
	const char *mx_ip;
	const char *vmta;
	const char *source_ip;
	const char *pool;          /* kept with a deferred recipient */
	const char *campaign;
	const char *envid;         /* the message's ENVID; NULL or "" when none */
	bool verp;                 /* sent with a VERP return path: index deliveries */
	const char *tls;           /* protocol and cipher when delivered over TLS */
	const char *src_type;      /* how the message came in (spool_src_name) */
	const char *esmtp;         /* the receiver's EHLO extensions, comma-separated */
	const char *headers;       /* acct_headers_take()'s lines for the records */
	bool peer_dsn;             /* the receiver offered DSN (RFC 3461) and the return
				    * path is the sender's own (no VERP): its DSNs reach
				    * the sender, so no "relayed" DSN is due */
};

struct outcome_batch *outcome_batch_new(struct engine *eng, uint64_t msg_id, const char *sender,
					int64_t queued_ms, size_t size, const struct outcome_route *route,
					size_t n_max);
void outcome_batch_add(struct outcome_batch *b, uint32_t idx, const char *addr,
		       enum outcome_kind kind, uint32_t attempt, int64_t queued_ms, int64_t next_ms,
		       const struct smtp_result *res);
void outcome_batch_submit(struct outcome_batch *b);

#endif
