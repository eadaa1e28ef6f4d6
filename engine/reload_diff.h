/*
 * reload_diff.h - what a reload may change (pure; unit-tested).
 *
 * reload_diff() compares the configuration in force with a newly loaded
 * one and says
 *   - what cannot take effect until a restart (a warning each: "X changes
 *     on restart only"): what salvod builds once at start from the boot
 *     generation (spool, worker threads, inbound session limits, the
 *     HTTP server and its access rules, TLS contexts, resolvers, log and
 *     accounting files); the new value is not used until then (webhooks
 *     are restarted by the reload itself: reload.c);
 *   - what a reload refuses (an error each): virtual MTAs are indexed by
 *     position in every queue's units and connections, so existing ones
 *     must keep their names and order (new ones go after them); pools are
 *     indexed in queued recipients and FIFOs, so none may go away
 *     (reload_align_pools() keeps each existing pool's index, wherever the
 *     file puts it).
 */
#ifndef SALVO_RELOAD_DIFF_H
#define SALVO_RELOAD_DIFF_H

#include <stdbool.h>
#include <stdio.h>

struct config;

/* Renumber neu's pools so that each pool cur has keeps its index (the
 * others follow in file order) and fix the sources' default pools: adding
 * a <virtual-mta-pool> or a <virtual-mta> (whose implicit pool comes after
 * the named ones) moves no existing pool. Returns 0, or -1 when a pool of
 * cur is missing from neu (neu unchanged; reload_diff reports it) or on
 * ENOMEM. */
int reload_align_pools(const struct config *cur, struct config *neu);

/* Do two configurations' <acct-webhook> blocks differ? */
bool reload_webhooks_differ(const struct config *a, const struct config *b);

/* boot: what salvod started with (what the restart-only settings still
 * are); cur: the generation in force; neu: the candidate. Appends one line
 * per finding to warn / err (either may be NULL: not written). Returns the
 * number of errors. */
unsigned reload_diff(const struct config *boot, const struct config *cur, const struct config *neu, FILE *warn,
		     FILE *err);

#endif
