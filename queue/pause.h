/*
 * pause.h - the operator's queue pauses, kept in the spool (database "pause"
 * in its LMDB environment) so that they outlive both the queue (freed while
 * idle) and the process: salvod re-applies them at start, before recovery
 * hands out any recipient.
 *
 * Key: the queue name, lower case, as given (a domain, a queue-to target or
 * an mx-rollup queue). Value: when it was paused (i64 ms, little-endian).
 * Writes go through the spool writer like everything else.
 *
 * Campaign pauses share the database under keys that no queue name can
 * have: the byte 0x01, then the campaign id as given (case kept).
 */
#ifndef SALVO_PAUSE_H
#define SALVO_PAUSE_H

#include <stdint.h>

#include "queue/spool.h"

#define PAUSE_NAME_MAX 255

/* -EINVAL for an empty or over-long name. */
int pause_put(struct spool_wtxn *t, const char *name, int64_t now_ms);
/* Not paused: 0 all the same. */
int pause_del(struct spool_wtxn *t, const char *name);
/* cb for every paused name (its own read txn); a non-zero return stops the
 * walk and is returned. */
int pause_each(struct spool *s, int (*cb)(void *arg, const char *name), void *arg);

/* The same for campaigns (pause_each never reports these). */
int pause_campaign_put(struct spool_wtxn *t, const char *campaign, int64_t now_ms);
int pause_campaign_del(struct spool_wtxn *t, const char *campaign);
int pause_campaign_each(struct spool *s, int (*cb)(void *arg, const char *campaign), void *arg);

#endif
