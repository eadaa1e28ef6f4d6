/* micro.h - helpers shared by the salvo-micro benchmarks (bench/micro/). */
#ifndef SALVO_MICRO_H
#define SALVO_MICRO_H

#include <cstdint>
#include <string>

namespace micro {

/* A fresh directory /tmp/salvo-micro.XXXXXX; throws on failure. */
std::string make_temp_dir();
/* rm -r dir (nftw, no shell). */
void remove_tree(const std::string &dir);

/* A plain RFC 5322 message of exactly `size` bytes (CRLF lines: a header
 * with From news@FROM_DOMAIN, To, Subject, Date, Message-ID, MIME-Version,
 * Content-Type; then text lines of up to 76 characters). */
std::string text_message(size_t size, const char *from_domain);

/* xorshift64: cheap, deterministic pseudo-random numbers for workloads. */
struct rng {
	uint64_t x = 88172645463325252ull;
	uint64_t next()
	{
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		return x;
	}
};

} // namespace micro

#endif
