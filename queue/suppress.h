/*
 * suppress.h - the suppression list: addresses Salvo must not mail, in the
 * spool's LMDB environment (database "suppress").
 *
 * Key: the normalised address - the domain lower-cased, the local part as
 * given (RFC 5321: only the receiving host may treat it case-insensitively).
 * Value: where the entry came from (sync-bounce, async-bounce, complaint,
 * manual), the reason text, the first and last time and a count. An entry
 * suppresses when it is `active`: hard bounces, complaints and manual
 * entries are active at once; soft bounces only once their count reaches the
 * configured threshold (until then the entry just counts them).
 *
 * Writes go through the spool writer (a struct spool_wtxn, in its group
 * commit); reads use any read transaction. Errors as in spool.h.
 */
#ifndef SALVO_SUPPRESS_H
#define SALVO_SUPPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/spool.h"

#define SUPPRESS_ADDR_MAX 320
#define SUPPRESS_REASON_MAX 512

enum suppress_source {
	SUPPRESS_MANUAL = 0,
	SUPPRESS_SYNC_BOUNCE,
	SUPPRESS_ASYNC_BOUNCE,
	SUPPRESS_COMPLAINT,
	SUPPRESS_SOFT_BOUNCE,  /* counted; active only at the threshold */
};

struct suppress_entry {
	char addr[SUPPRESS_ADDR_MAX];
	enum suppress_source source;
	bool active;
	uint32_t count;
	int64_t first_ms, last_ms;   /* wall clock */
	char reason[SUPPRESS_REASON_MAX];
};

/* "manual", "sync-bounce", ...; and back (-1 when unknown). */
const char *suppress_source_name(enum suppress_source s);
int suppress_source_parse(const char *name);

/* The key for addr: local part as given, domain lower-cased, surrounding
 * angle brackets and spaces dropped. -EINVAL when it is not local@domain or
 * does not fit. */
int suppress_normalize(const char *addr, char out[SUPPRESS_ADDR_MAX]);

/* Add or update. A soft bounce counts towards soft_threshold (it becomes
 * active when count >= soft_threshold); any other source makes the entry
 * active. *now_active (may be NULL) says whether it suppresses after this. */
int suppress_put(struct spool_wtxn *t, const char *addr, enum suppress_source src, const char *reason,
		 int64_t now_ms, unsigned soft_threshold, bool *now_active);
/* Remove; SPOOL_NOTFOUND when absent. */
int suppress_del(struct spool_wtxn *t, const char *addr);
/* 0 (filled), SPOOL_NOTFOUND, or an error. */
int suppress_get(struct spool_rtxn *rt, const char *addr, struct suppress_entry *out);
/* Is addr suppressed (an active entry)? Errors read as "no" (logged once). */
bool suppress_check(struct spool_rtxn *rt, const char *addr);
/* Entries in key order after `after` ("" = from the start), at most limit;
 * cb returns non-zero to stop. Returns 0 or an error. */
int suppress_list(struct spool_rtxn *rt, const char *after, size_t limit, bool active_only,
		  int (*cb)(void *arg, const struct suppress_entry *e), void *arg);
/* Entries (all, O(1)). */
int suppress_count(struct spool *s, uint64_t *n);

#endif
