/*
 * config_gen.h - configuration generations: the configuration salvod runs
 * on, reference-counted so that a reload can replace it while threads
 * still use the one before.
 *
 * A struct config_gen is immutable once published. The current one hangs
 * off struct config_current; a thread that reads settings takes a
 * reference (config_gen_get), reads through gen->cfg for as long as it
 * holds it, and drops it (config_gen_put); the last reference frees the
 * generation (config and DKIM keys). Who holds one:
 *   - each worker: its own w->gen, replaced on a WORKER_MAIL_CONFIG mail
 *     (reload.c), so a shard's queues switch between two loop turns;
 *   - each outbound connection (egress_conn.gen): the generation it was
 *     opened under, until it closes (its virtual MTA and HELO stay valid);
 *   - short readers on other threads (API handlers, the writer and store
 *     threads, the AUTH checker): for the length of one call;
 *   - salvod: the boot generation (which borrows salvod's own struct
 *     config: what is built once from it, the HTTP server, TLS contexts,
 *     inbound limits, points there), until it stops.
 * Getting takes a mutex (short, never on a worker's hot path); putting is
 * one atomic decrement.
 */
#ifndef SALVO_CONFIG_GEN_H
#define SALVO_CONFIG_GEN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"

struct dkim_keys;

struct config_gen {
	struct config cfg;
	struct dkim_keys *dkim;    /* domain-key signing keys; NULL when none loaded */
	uint64_t generation;       /* 1 at start, +1 per successful reload */
	int64_t loaded_ms;         /* wall clock: when its file was read */
	unsigned refs;             /* atomic */
	bool borrowed;             /* cfg is a copy of the caller's (config_gen_borrow) */
};

struct config_current {
	pthread_mutex_t mu;
	struct config_gen *gen;    /* under mu; never NULL once published */
};

/* A new generation owning *cfg (moved: *cfg is zeroed) and dkim, with one
 * reference for the caller. NULL on ENOMEM (nothing taken). */
struct config_gen *config_gen_new(struct config *cfg, struct dkim_keys *dkim, uint64_t generation, int64_t loaded_ms);
/* The same over a configuration that stays the caller's (salvod's boot
 * configuration): cfg is copied shallowly, never freed here; the caller
 * frees it after the last reference is gone and changes nothing in it
 * meanwhile. */
struct config_gen *config_gen_borrow(const struct config *cfg, uint64_t generation, int64_t loaded_ms);
void config_gen_ref(struct config_gen *g);
/* Drop one reference (NULL: nothing); the last frees it. */
void config_gen_put(struct config_gen *g);

int config_current_init(struct config_current *c);
/* Makes g current, taking over the caller's reference; the previous
 * generation loses the one it had from being current. */
void config_current_publish(struct config_current *c, struct config_gen *g);
/* The current generation with a reference for the caller. */
struct config_gen *config_current_get(struct config_current *c);
/* Drops the current generation's reference (at shutdown). */
void config_current_fini(struct config_current *c);

#endif
