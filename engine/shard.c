/*
 * shard.c - the stable domain -> worker hash (see shard.h).
 */
#include "engine/shard.h"

uint64_t shard_hash(const char *domain, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)domain[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h ^= c;
		h *= 0x100000001b3ULL;
	}
	return h;
}

unsigned shard_for(const char *domain, size_t len, unsigned n_shards)
{
	/* Fold the high bits in: FNV's low bits alone are weak for small moduli. */
	uint64_t h = shard_hash(domain, len);

	h ^= h >> 32;
	return (unsigned)(h % n_shards);
}
