/*
 * shard.h - which worker owns a destination queue: a stable hash of the
 * lower-cased domain, so a queue's connections, throttles and counters live
 * on one thread with no locks, and the same domain lands on the same shard
 * across restarts (as long as worker-threads is unchanged).
 */
#ifndef SALVO_SHARD_H
#define SALVO_SHARD_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a 64 over the ASCII-lower-cased bytes of domain[0..len). */
uint64_t shard_hash(const char *domain, size_t len);
/* shard in [0, n_shards); n_shards must be > 0. */
unsigned shard_for(const char *domain, size_t len, unsigned n_shards);

#endif
