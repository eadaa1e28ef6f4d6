/*
 * campaign.h - campaigns (the X-Job header, the HTTP inject `campaign`
 * field): an intern table that gives each campaign name a small id, the
 * id's pause flag, and its counters.
 *
 * A queued recipient carries only the id (struct sched_rcpt.campaign, a
 * uint32): 0 is "no campaign". Ids are handed out in order from 1 and
 * never reused or freed while the table lives (one process): a campaign
 * costs one struct campaign plus its name, whether or not it still has
 * mail. At most CAMPAIGN_MAX campaigns; past that a new name gets id 0
 * (logged once) and its mail flows as if it had no campaign.
 *
 * Threads: interning and name lookups take the table's mutex (the spool
 * writer at each accepted message, recovery, API threads). campaign_paused()
 * and the counters are lock-free atomics, so a worker can test a recipient
 * on its hot path. An entry's address never changes once made (entries
 * live in fixed-size chunks that are never moved), so a pointer from
 * campaign_get() stays valid for the table's life.
 *
 * Counters:
 *   queued     recipients in the spool now (new + recovered - finished)
 *   deferred   of those, ones whose last attempt failed temporarily
 *   received, delivered, bounced (5xx and expired), expired, suppressed:
 *              totals, durable (queue/campaign_stats.h, loaded at start)
 *   first_ms, last_ms: earliest and latest reception (durable too)
 * queued and deferred are counted again at each start by recovery.
 */
#ifndef SALVO_CAMPAIGN_H
#define SALVO_CAMPAIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/campaign_stats.h"

#define CAMPAIGN_NONE 0u
#define CAMPAIGN_NAME_MAX 127           /* bytes; as intake and inject cap it */
#define CAMPAIGN_CHUNK 1024u            /* entries per chunk */
#define CAMPAIGN_CHUNKS 4096u           /* so at most 4M - 1 campaigns */
#define CAMPAIGN_MAX (CAMPAIGN_CHUNK * CAMPAIGN_CHUNKS - 1)

struct campaign {
	struct campaign *hnext;         /* name hash chain (under the mutex) */
	uint32_t id;
	bool paused;                    /* atomic */
	int64_t queued, deferred;       /* atomic; never shown below 0 */
	uint64_t received, delivered, bounced, expired, suppressed; /* atomic */
	int64_t first_ms, last_ms;      /* atomic; 0: none yet */
	char name[];
};

struct campaigns;

int campaigns_new(struct campaigns **out);
void campaigns_free(struct campaigns *c);

/* A campaign id as every entry point takes it: 1..CAMPAIGN_NAME_MAX bytes
 * of well-formed UTF-8, no control character (C0, DEL or C1), so it is safe
 * in a log line, a metrics label, a JSON answer and a delete filter. An
 * X-Job that is not names no campaign. */
bool campaign_name_ok(const char *s, size_t n);

/* The id of name, made on first use. 0 for NULL, "", a name longer than
 * CAMPAIGN_NAME_MAX, ENOMEM or a full table. Any thread. */
uint32_t campaign_intern(struct campaigns *c, const char *name);   /* 0 too for a bad name */
/* The id of a known name, else 0. Any thread. */
uint32_t campaign_find(struct campaigns *c, const char *name);
/* The entry of id (NULL for 0 or an id not handed out). Lock-free. */
struct campaign *campaign_get(const struct campaigns *c, uint32_t id);
/* How many ids were handed out: valid ids are 1..campaigns_count(). */
uint32_t campaigns_count(const struct campaigns *c);

/* Is id paused? Lock-free: one atomic load (false for 0). */
bool campaign_paused(const struct campaigns *c, uint32_t id);
/* Set the flag (interning name); returns the id, 0 on failure. */
uint32_t campaign_set_paused(struct campaigns *c, const char *name, bool paused);

/* n recipients received (or recovered) at at_ms; already_deferred of them
 * have failed attempts behind them (recovery). */
void campaign_note_queued(struct campaigns *c, uint32_t id, uint64_t n, uint64_t already_deferred, int64_t at_ms);

/* Add durable totals (loaded at start, or received now): counts add,
 * first and last reception widen. */
void campaign_note_totals(struct campaigns *c, uint32_t id, const struct campaign_totals *t);

enum campaign_end {
	CAMPAIGN_END_DEFERRED,          /* first temporary failure: still queued */
	CAMPAIGN_END_DELIVERED,
	CAMPAIGN_END_BOUNCED,
	CAMPAIGN_END_EXPIRED,
	CAMPAIGN_END_SUPPRESSED,
	CAMPAIGN_END_REMOVED,           /* taken out otherwise (an operator's delete) */
};
/* A recipient of id left the queue (or, DEFERRED, became deferred);
 * was_deferred: it had failed attempts before. */
void campaign_note_end(struct campaigns *c, uint32_t id, enum campaign_end end, bool was_deferred);

/* Campaigns in /metrics (campaign_metrics.c): per-campaign series for the
 * CAMPAIGN_METRICS_TOP with the most queued, totals for all. 0, or
 * non-zero when out of memory. */
#define CAMPAIGN_METRICS_TOP 100
struct json_buf;
int campaign_metrics(struct campaigns *c, struct json_buf *b);

#endif
