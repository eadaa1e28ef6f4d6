/*
 * reload_diff.h - what a reload may change (pure; unit-tested).
 *
 * reload_diff() compares the configuration in force with a newly loaded
 * one and says
 *   - what cannot take effect until a restart (a warning each: "X changes
 *     on restart only"): what salvod builds once at start from the boot
 *     generation (spool, worker threads, listeners and their limits, the
 *     HTTP server and its access rules, TLS contexts, resolvers, log and
 *     accounting files, webhooks); the new value is not used until then;
 *   - what a reload refuses (an error each): virtual MTAs and pools are
 *     indexed by position in every queue, connection and queued recipient,
 *     so existing ones must keep their names and order; new ones may be
 *     added after them.
 */
#ifndef SALVO_RELOAD_DIFF_H
#define SALVO_RELOAD_DIFF_H

#include <stdio.h>

struct config;

/* boot: what salvod started with (what the restart-only settings still
 * are); cur: the generation in force; neu: the candidate. Appends one line
 * per finding to warn / err (either may be NULL: not written). Returns the
 * number of errors. */
unsigned reload_diff(const struct config *boot, const struct config *cur, const struct config *neu, FILE *warn,
		     FILE *err);

#endif
